//! Small concurrent scenarios sized for Miri, which checks the shared ring's `unsafe` ticket
//! code (`src/hub/ring.rs`: strong counts handed out per post, turned into the returned `Arc`
//! by a claim, released by an eviction, moved out when a stream leaves) for undefined
//! behaviour and leaks: a ticket used twice is a use after free, one never released is a leak,
//! and Miri reports both.
//!
//! These tests are only meaningful under Miri: `cargo +nightly miri test --test miri_ring`. In a
//! normal build they are reported **ignored** (the ring's races are covered for real by the
//! stress tests in `tests/streams.rs`, the unit tests in `src/hub/ring.rs` and the loom models
//! in `tests/loom_ring.rs`); `-- --ignored` runs them natively as a smoke test.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;

use herald::{Notification, NotificationCenter, NotificationStream, Overflow, TryRecvError};

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

/// Streams subscribed from inside a post (skipped by that post, though it writes the ring
/// after they joined), and replayed values, while another thread posts.
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
