//! Small concurrent scenarios sized for Miri, which checks the shared ring's `unsafe` ticket
//! code (`src/hub/ring.rs`: strong counts handed out per post, turned into the returned `Arc`
//! by a claim, released by an eviction, moved out when a stream leaves) for undefined
//! behaviour and leaks: a ticket used twice is a use after free, one never released is a leak,
//! and Miri reports both.
//!
//! The `value_ring_*` cases do the same for the value ring of cloned streams
//! (`src/hub/value_ring.rs`), whose slots own the posted values themselves: a slot overwritten
//! twice or read after it was overwritten is a use after free of the value's heap buffer, one
//! never dropped is a leak, and a `Text` counts its live copies as well.
//!
//! Posts here move their values into the ring rather than hand out tickets (`ring.rs`,
//! "Moved values"; `center.post` reaches every stream of the ring), and the first receiver to
//! take each value makes the `Arc` the others share: a value slot written while it is read is
//! a data race, one taken twice a double drop, a reference counted wrong a leak or a use after
//! free. Miri reports each.
//!
//! These tests are only meaningful under Miri: `cargo +nightly miri test --test miri_ring`. In a
//! normal build they are reported **ignored** (the ring's races are covered for real by the
//! stress tests in `tests/streams.rs`, the unit tests in `src/hub/ring.rs` and the loom models
//! in `tests/loom_ring.rs`); `-- --ignored` runs them natively as a smoke test.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicIsize, AtomicU32, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;

use herald::{
    ClonedStream, Notification, NotificationCenter, NotificationStream, Overflow, RecvError,
    TryRecvError,
};

/// Counts its drops: every posted value must be freed exactly once.
#[derive(Debug)]
struct Ev(u32, Arc<AtomicUsize>);
impl Notification for Ev {
    fn name() -> &'static str {
        "miri_ring.ev"
    }
}

impl Drop for Ev {
    fn drop(&mut self) {
        self.1.fetch_add(1, SeqCst);
    }
}

const POSTS: u32 = 40;

/// Receives until `n` values or lags are accounted for; returns (values, lost).
fn receive(stream: &mut NotificationStream<Ev>, n: u64) -> (Vec<u32>, u64) {
    let (mut values, mut lost) = (Vec::new(), 0);
    while values.len() as u64 + lost < n {
        match stream.try_recv() {
            Ok(v) => values.push(v.0),
            Err(TryRecvError::Lagged(k)) => lost += k,
            Err(TryRecvError::Empty) => thread::yield_now(),
            Err(TryRecvError::Closed) => break,
        }
    }
    (values, lost)
}

/// Two posters, two receivers on a ring of capacity 2: claims race evictions all the time.
#[test]
#[cfg_attr(
    not(miri),
    ignore = "run under Miri: cargo +nightly miri test --test miri_ring"
)]
fn claims_race_evictions() {
    let drops = Arc::new(AtomicUsize::new(0));
    let center = NotificationCenter::new();
    let streams: Vec<_> = (0..2)
        .map(|_| {
            center
                .observer::<Ev>()
                .policy(Overflow::DropOldest { capacity: 2 })
                .stream()
        })
        .collect();
    let posters: Vec<_> = (0..2)
        .map(|_| {
            let (center, drops) = (center.clone(), drops.clone());
            thread::spawn(move || {
                (0..POSTS)
                    .map(|i| center.post(Ev(i, drops.clone())).dropped as u64)
                    .sum::<u64>()
            })
        })
        .collect();
    let receivers: Vec<_> = streams
        .into_iter()
        .map(|mut s| {
            thread::spawn(move || {
                let (values, lost) = receive(&mut s, 2 * POSTS as u64);
                assert_eq!(s.stats().dropped, lost);
                (values.len() as u64, lost)
            })
        })
        .collect();
    let reported: u64 = posters.into_iter().map(|p| p.join().unwrap()).sum();
    let counts: Vec<_> = receivers.into_iter().map(|r| r.join().unwrap()).collect();
    assert_eq!(counts.iter().map(|c| c.1).sum::<u64>(), reported);
    drop(center);
    assert_eq!(drops.load(SeqCst), 2 * POSTS as usize);
}

/// A lone stream: the ring moves each value in and the receiver takes it out (`ring.rs`,
/// "Moved values"), at capacity 1, where every post evicts or writes again the value slot the
/// receiver has just read. Meanwhile another stream joins the ring, receives for a while and
/// leaves, so values are taken by one receiver, then shared by two (one makes the `Arc`),
/// then by one again. A value slot written while it is read is a data race, a value taken
/// twice a double free: Miri reports both.
#[test]
#[cfg_attr(
    not(miri),
    ignore = "run under Miri: cargo +nightly miri test --test miri_ring"
)]
fn moved_values_race_posts_and_a_stream_that_joins_and_leaves() {
    let drops = Arc::new(AtomicUsize::new(0));
    let center = NotificationCenter::new();
    let subscribe = |c: &NotificationCenter| {
        c.observer::<Ev>()
            .policy(Overflow::DropOldest { capacity: 1 })
            .stream()
    };
    let mut lone = subscribe(&center);
    let poster = {
        let (center, drops) = (center.clone(), drops.clone());
        thread::spawn(move || {
            (0..POSTS)
                .map(|i| center.post(Ev(i, drops.clone())).dropped as u64)
                .sum::<u64>()
        })
    };
    let visitor = {
        let center = center.clone();
        thread::spawn(move || {
            let mut visiting = subscribe(&center);
            let mut last = None;
            for _ in 0..POSTS / 4 {
                if let Ok(v) = visiting.try_recv() {
                    assert!(last < Some(v.0));
                    last = Some(v.0);
                }
                thread::yield_now();
            }
            visiting.unsubscribe();
            while visiting.try_recv().is_ok() {}
            visiting.stats().dropped
        })
    };
    let (values, lost) = receive(&mut lone, POSTS as u64);
    assert!(values.windows(2).all(|w| w[0] < w[1]));
    let reported = poster.join().unwrap();
    let visitor_lost = visitor.join().unwrap();
    assert_eq!(lost + visitor_lost, reported);
    drop((lone, center));
    assert_eq!(drops.load(SeqCst), POSTS as usize);
}

/// Latest-only receivers racing a poster.
#[test]
#[cfg_attr(
    not(miri),
    ignore = "run under Miri: cargo +nightly miri test --test miri_ring"
)]
fn latest_only_races_posts() {
    let drops = Arc::new(AtomicUsize::new(0));
    let center = NotificationCenter::new();
    let mut latest = center.observer::<Ev>().policy(Overflow::Latest).stream();
    let poster = {
        let (center, drops) = (center.clone(), drops.clone());
        thread::spawn(move || {
            for i in 0..POSTS {
                center.post(Ev(i, drops.clone()));
            }
        })
    };
    let mut last = None;
    while last != Some(POSTS - 1) {
        if let Ok(v) = latest.try_recv() {
            assert!(last < Some(v.0));
            last = Some(v.0);
        }
        thread::yield_now();
    }
    poster.join().unwrap();
    let s = latest.stats();
    assert_eq!(s.delivered + s.dropped, POSTS as u64);
    drop((latest, center));
    assert_eq!(drops.load(SeqCst), POSTS as usize);
}

/// A stream closes (leaves the ring, taking its unclaimed values out) while a poster posts
/// and while it is itself part-way through its values.
#[test]
#[cfg_attr(
    not(miri),
    ignore = "run under Miri: cargo +nightly miri test --test miri_ring"
)]
fn close_races_posts() {
    let drops = Arc::new(AtomicUsize::new(0));
    let center = NotificationCenter::new();
    let mut stream = center
        .observer::<Ev>()
        .policy(Overflow::DropOldest { capacity: 4 })
        .stream();
    let _other = center.stream::<Ev>();
    let poster = {
        let (center, drops) = (center.clone(), drops.clone());
        thread::spawn(move || {
            for i in 0..POSTS {
                center.post(Ev(i, drops.clone()));
            }
        })
    };
    let _ = receive(&mut stream, 3);
    stream.unsubscribe();
    let mut after = 0;
    loop {
        match stream.try_recv() {
            Ok(_) => after += 1,
            Err(TryRecvError::Lagged(_)) => {}
            Err(TryRecvError::Closed) => break,
            Err(TryRecvError::Empty) => panic!("a closed stream is never empty-and-open"),
        }
    }
    assert!(after <= 4, "at most the capacity was held: {after}");
    poster.join().unwrap();
    drop((stream, _other, center));
    assert_eq!(drops.load(SeqCst), POSTS as usize);
}

/// The center is dropped while a receiver is blocked and another holds values: both drain
/// and see the end.
#[test]
#[cfg_attr(
    not(miri),
    ignore = "run under Miri: cargo +nightly miri test --test miri_ring"
)]
fn center_dropped_under_receivers() {
    let drops = Arc::new(AtomicUsize::new(0));
    let center = NotificationCenter::new();
    let mut blocked = center.stream::<Ev>();
    let mut holding = center.stream::<Ev>();
    let waiter = thread::spawn(move || {
        let mut n = 0;
        while blocked.recv_blocking().is_ok() {
            n += 1;
        }
        n
    });
    for i in 0..4 {
        center.post(Ev(i, drops.clone()));
    }
    drop(center);
    assert_eq!(waiter.join().unwrap(), 4);
    assert_eq!(receive(&mut holding, 5).0, [0, 1, 2, 3]);
    drop(holding);
    assert_eq!(drops.load(SeqCst), 4);
}

/// Streams subscribed from inside a post (ring members, skipped by that post though it writes
/// the ring after they joined), and `replay_last` streams (private buffers: a ring does not
/// serve them), while another thread posts.
#[test]
#[cfg_attr(
    not(miri),
    ignore = "run under Miri: cargo +nightly miri test --test miri_ring"
)]
fn subscribing_during_posts_and_replay() {
    let drops = Arc::new(AtomicUsize::new(0));
    let center = NotificationCenter::new();
    center.retain_last::<Ev>();
    let _steady = center.stream::<Ev>();
    let added: Arc<Mutex<Vec<NotificationStream<Ev>>>> = Arc::default();
    let (c, a) = (center.clone(), added.clone());
    let _adder = center.observer::<Ev>().priority(1).inline(move |e| {
        if e.0 % 8 == 0 {
            a.lock().unwrap().push(c.observer::<Ev>().stream());
        } else if e.0 % 8 == 4 {
            a.lock()
                .unwrap()
                .push(c.observer::<Ev>().replay_last().stream());
        }
    });
    let poster = {
        let (center, drops) = (center.clone(), drops.clone());
        thread::spawn(move || {
            for i in 0..POSTS {
                center.post(Ev(i, drops.clone()));
            }
        })
    };
    for _ in 0..4 {
        let mut s = center.observer::<Ev>().replay_last().stream();
        let _ = s.try_recv();
        thread::yield_now();
    }
    poster.join().unwrap();
    for mut s in std::mem::take(&mut *added.lock().unwrap()) {
        let mut last = None;
        while let Ok(v) = s.try_recv() {
            assert!(last < Some(v.0), "seen twice or out of order");
            last = Some(v.0);
        }
    }
    drop((_steady, _adder, center));
    assert_eq!(drops.load(SeqCst), POSTS as usize);
}

/// A heap-owning `Clone` value for the value ring: counts its live copies (made or cloned +1,
/// dropped -1), and its clone panics, or blocks, for the value whose number is in its fuse.
#[derive(Debug)]
struct Text {
    n: u32,
    text: String,
    live: Arc<AtomicIsize>,
    fuse: Arc<Fuse>,
}
impl Notification for Text {
    fn name() -> &'static str {
        "miri_ring.text"
    }
}

/// No value's clone panics or blocks.
const NO_FUSE: u32 = u32::MAX;

/// Which value's clone panics (every time), and which one blocks (once, between two waits on
/// `barrier`, so a test can act while a receiver is inside the clone).
#[derive(Debug)]
struct Fuse {
    panics: AtomicU32,
    blocks: AtomicU32,
    barrier: Barrier,
}

impl Fuse {
    fn new() -> Arc<Fuse> {
        Arc::new(Fuse {
            panics: AtomicU32::new(NO_FUSE),
            blocks: AtomicU32::new(NO_FUSE),
            barrier: Barrier::new(2),
        })
    }
}

impl Text {
    fn new(n: u32, live: &Arc<AtomicIsize>, fuse: &Arc<Fuse>) -> Self {
        live.fetch_add(1, SeqCst);
        Text {
            n,
            text: format!("text {n}"),
            live: live.clone(),
            fuse: fuse.clone(),
        }
    }
}

impl Clone for Text {
    fn clone(&self) -> Self {
        assert_ne!(self.fuse.panics.load(SeqCst), self.n, "clone refused");
        if self
            .fuse
            .blocks
            .compare_exchange(self.n, NO_FUSE, SeqCst, SeqCst)
            .is_ok()
        {
            self.fuse.barrier.wait(); // inside the clone
            self.fuse.barrier.wait(); // released
        }
        self.live.fetch_add(1, SeqCst);
        Text {
            n: self.n,
            text: self.text.clone(),
            live: self.live.clone(),
            fuse: self.fuse.clone(),
        }
    }
}

impl Drop for Text {
    fn drop(&mut self) {
        self.live.fetch_sub(1, SeqCst);
    }
}

fn text_ring(center: &NotificationCenter, capacity: usize) -> ClonedStream<Text> {
    center
        .observer::<Text>()
        .policy(Overflow::DropOldest { capacity })
        .cloned_stream()
}

/// Receives until `n` values or lags are accounted for; returns (values, lost).
fn receive_texts(stream: &mut ClonedStream<Text>, n: u64) -> (Vec<u32>, u64) {
    let (mut values, mut lost) = (Vec::new(), 0);
    while values.len() as u64 + lost < n {
        match stream.try_recv() {
            Ok(v) => {
                assert_eq!(v.text, format!("text {}", v.n));
                values.push(v.n);
            }
            Err(TryRecvError::Lagged(k)) => lost += k,
            Err(TryRecvError::Empty) => thread::yield_now(),
            Err(TryRecvError::Closed) => break,
        }
    }
    (values, lost)
}

/// A value ring of capacity 2 (four slots) wraps around three times: every slot is
/// overwritten while one stream keeps up and another lags, and each received `String` is
/// the one posted.
#[test]
#[cfg_attr(
    not(miri),
    ignore = "run under Miri: cargo +nightly miri test --test miri_ring"
)]
fn value_ring_overwrites_heap_values_after_wraparound() {
    let (live, fuse) = (Arc::new(AtomicIsize::new(0)), Fuse::new());
    let center = NotificationCenter::new();
    let mut keeps_up = text_ring(&center, 2);
    let mut lags = text_ring(&center, 2);
    let mut lagged = Vec::new();
    for i in 0..12 {
        center.post(Text::new(i, &live, &fuse));
        let v = keeps_up.try_recv().unwrap();
        assert_eq!((v.n, v.text.as_str()), (i, format!("text {i}").as_str()));
        if i % 5 == 4 || i == 11 {
            loop {
                match lags.try_recv() {
                    Ok(v) => lagged.push(v.text.clone()),
                    Err(TryRecvError::Lagged(k)) => lagged.push(format!("lag {k}")),
                    Err(_) => break,
                }
            }
        }
    }
    assert_eq!(
        lagged,
        [
            "lag 3", "text 3", "text 4", "lag 3", "text 8", "text 9", "text 10", "text 11"
        ]
    );
    assert_eq!(lags.stats().dropped, 6);
    assert_eq!(live.load(SeqCst), 4, "the ring's four slots");
    drop((keeps_up, lags, center));
    assert_eq!(live.load(SeqCst), 0);
}

/// Values never received stay in the ring until it goes: dropped exactly once whichever
/// goes last (the center, a stream that left holding values, a stream still on the ring).
#[test]
#[cfg_attr(
    not(miri),
    ignore = "run under Miri: cargo +nightly miri test --test miri_ring"
)]
fn value_ring_values_left_in_the_ring_are_dropped_once() {
    let (live, fuse) = (Arc::new(AtomicIsize::new(0)), Fuse::new());
    for order in 0..3 {
        let center = NotificationCenter::new();
        let mut left = text_ring(&center, 3);
        let on = text_ring(&center, 3);
        for i in 0..6 {
            center.post(Text::new(i, &live, &fuse));
        }
        assert_eq!(left.try_recv().unwrap_err(), TryRecvError::Lagged(3));
        left.unsubscribe();
        match order {
            0 => drop((center, left, on)),
            1 => drop((on, left, center)),
            _ => {
                drop((center, on));
                assert_eq!(left.try_recv().unwrap().n, 3);
                drop(left);
            }
        }
        assert_eq!(live.load(SeqCst), 0, "order {order}");
    }
}

/// Receivers claim (and clone) while another thread posts and evicts on a ring of capacity
/// 2: one polling with `try_recv`, one blocked in `recv_blocking` until the center goes.
#[test]
#[cfg_attr(
    not(miri),
    ignore = "run under Miri: cargo +nightly miri test --test miri_ring"
)]
fn value_ring_claims_race_posts() {
    let (live, fuse) = (Arc::new(AtomicIsize::new(0)), Fuse::new());
    let center = NotificationCenter::new();
    let mut polling = text_ring(&center, 2);
    let mut blocking = text_ring(&center, 2);
    let poster = {
        let (center, live, fuse) = (center.clone(), live.clone(), fuse.clone());
        thread::spawn(move || {
            (0..POSTS)
                .map(|i| center.post(Text::new(i, &live, &fuse)).dropped as u64)
                .sum::<u64>()
        })
    };
    let waiter = thread::spawn(move || {
        let (mut got, mut lost, mut last) = (0u64, 0u64, None);
        loop {
            match blocking.recv_blocking() {
                Ok(v) => {
                    assert!(last < Some(v.n));
                    assert_eq!(v.text, format!("text {}", v.n));
                    last = Some(v.n);
                    got += 1;
                }
                Err(RecvError::Lagged(k)) => lost += k,
                Err(RecvError::Closed) => break,
            }
        }
        assert_eq!(blocking.stats().dropped, lost);
        (got, lost)
    });
    let (values, lost) = receive_texts(&mut polling, POSTS as u64);
    assert!(values.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(polling.stats().dropped, lost);
    let reported = poster.join().unwrap();
    drop(center);
    let (got, blocked_lost) = waiter.join().unwrap();
    assert_eq!(got + blocked_lost, POSTS as u64);
    assert_eq!(lost + blocked_lost, reported);
    drop(polling);
    assert_eq!(live.load(SeqCst), 0);
}

/// A receiver's clone panics for one value: the receive panics, the value's slot is left
/// intact (dropped once, with the ring), and the stream goes on with the next value.
#[test]
#[cfg_attr(
    not(miri),
    ignore = "run under Miri: cargo +nightly miri test --test miri_ring"
)]
fn value_ring_clone_panics_on_receive() {
    let (live, fuse) = (Arc::new(AtomicIsize::new(0)), Fuse::new());
    let center = NotificationCenter::new();
    let mut stream = text_ring(&center, 2);
    let mut other = text_ring(&center, 2);
    for i in 0..2 {
        center.post(Text::new(i, &live, &fuse));
    }
    fuse.panics.store(0, SeqCst);
    assert!(catch_unwind(AssertUnwindSafe(|| stream.try_recv())).is_err());
    fuse.panics.store(NO_FUSE, SeqCst);
    assert_eq!(stream.try_recv().unwrap().text, "text 1");
    assert_eq!(
        other.try_recv().unwrap().text,
        "text 0",
        "the slot is intact"
    );
    for i in 2..8 {
        center.post(Text::new(i, &live, &fuse));
    }
    assert_eq!(stream.try_recv().unwrap_err(), TryRecvError::Lagged(4));
    assert_eq!(stream.try_recv().unwrap().text, "text 6");
    drop((stream, other, center));
    assert_eq!(live.load(SeqCst), 0);
}

/// A receiver is inside the clone of 0 on a ring of capacity 1 (two slots) while another
/// thread posts 1, 2 and 3: the post of 2 reuses the slot being cloned, so that poster waits
/// for the clone (it must not overwrite the value under it), then evicts as usual.
#[test]
#[cfg_attr(
    not(miri),
    ignore = "run under Miri: cargo +nightly miri test --test miri_ring"
)]
fn value_ring_poster_waits_for_a_clone_of_the_slot_it_reuses() {
    let (live, fuse) = (Arc::new(AtomicIsize::new(0)), Fuse::new());
    let center = NotificationCenter::new();
    let mut stream = text_ring(&center, 1);
    center.post(Text::new(0, &live, &fuse));
    fuse.blocks.store(0, SeqCst);
    let receiver = thread::spawn(move || {
        let v = stream.try_recv().unwrap();
        assert_eq!(
            v.text, "text 0",
            "the slot was not overwritten under the clone"
        );
        drop(v);
        stream
    });
    fuse.barrier.wait(); // the receiver is cloning 0
    let poster = {
        let (center, live, fuse) = (center.clone(), live.clone(), fuse.clone());
        thread::spawn(move || {
            (1..4)
                .map(|i| center.post(Text::new(i, &live, &fuse)).dropped as u64)
                .sum::<u64>()
        })
    };
    // Give the poster a chance to reach the wait (either way the outcome is the same).
    for _ in 0..8 {
        thread::yield_now();
    }
    fuse.barrier.wait();
    let mut stream = receiver.join().unwrap();
    let reported = poster.join().unwrap();
    let (values, lost) = receive_texts(&mut stream, 3);
    assert_eq!(values.last(), Some(&3));
    assert_eq!(values.len() as u64 + lost, 3);
    assert_eq!((stream.stats().dropped, reported), (lost, lost));
    drop((stream, center));
    assert_eq!(live.load(SeqCst), 0);
}
