//! Loom models of the value ring's races (`src/hub/value_ring.rs`, behind
//! [`ClonedStream`](herald::ClonedStream)), through the public API so they exercise the real
//! atomics of the ring and of the engine around it.
//!
//! - a receiver's claim against a poster's eviction of the same position (drop-oldest and
//!   latest-only): exactly one wins, and the post report, the counters, the receiver's
//!   `Lagged` and the live values agree;
//! - one or two receivers' claims against posts that wrap the ring and overwrite the slot
//!   being cloned: the poster waits for them, so no value is torn or wrong;
//! - parking (`recv().await`, `recv_blocking`) against a post, and against leaving the ring:
//!   no lost wake-up (a lost one shows as a loom deadlock);
//! - leaving the ring (the center dropped, `unsubscribe`) against a claim and against a post
//!   that evicts what the member kept: nothing lost uncounted or seen twice;
//! - subscribing against a post made with an older snapshot: the new stream gets that post at
//!   most once, and every later post exactly once;
//! - `replay_last` on a cloned stream against a post, alone or beside a third thread joining
//!   the ring: exactly once.
//!
//! Every value counts itself alive (made or cloned) until dropped: once the streams and the
//! center are dropped, none is left, so the ring neither leaks a value nor drops one twice.
//! The ring's slots are plain memory, which loom does not track, so each value carries a loom
//! cell that its clones read and its drop writes: loom then checks that a receiver's clone is
//! ordered after the post that wrote the value and before the post that overwrites and frees
//! it. Cloning a clone (what a receiver does with the ring's copy in a slot) also yields to
//! loom halfway through, so another thread runs while a receiver clones a value out of its
//! slot.
//!
//! Built only with `--cfg herald_loom`. Run with:
//! `RUSTFLAGS="--cfg herald_loom" cargo test --release --test loom_value_ring -- --test-threads=1`
//! (with `CARGO_TARGET_DIR=target/loom`, it reuses the build of `tests/loom_runner.rs`).
#![cfg(herald_loom)]

mod loom_support;
use loom_support::model;

use std::sync::PoisonError;
use std::sync::atomic::{AtomicU32 as StdAtomicU32, AtomicUsize as StdAtomicUsize};

use herald::{ClonedStream, Notification, NotificationCenter, Overflow, RecvError, TryRecvError};
use loom::thread;

/// Values alive: +1 when one is made or cloned, -1 when one is dropped.
type Live = std::sync::Arc<StdAtomicUsize>;

/// A `Clone` notification that counts its live instances in `live`.
#[derive(Debug)]
struct Ev {
    /// Atomic so that `clone` really reads it twice (a plain field read through `&self` may
    /// be read once).
    seq: StdAtomicU32,
    live: Live,
    /// Made by `clone`: a ring's copy, or a receiver's.
    copy: bool,
    /// The value's memory, as loom sees it: made with the value, read by each clone, written
    /// by the drop. Loom reports a read or a write that is not ordered after the value's
    /// creation or before its drop (a causality violation), which checks the orderings of the
    /// ring's slots, plain memory it does not track: a receiver must see a slot's value
    /// published, and its clone must happen before the post that overwrites the slot frees
    /// the old value. Behind a std mutex only to make `Ev` `Sync` (loom's cell, like std's,
    /// is not); nothing ever waits on it.
    probe: std::sync::Mutex<loom::cell::UnsafeCell<()>>,
}
impl Notification for Ev {}

impl Ev {
    fn new(seq: u32, live: &Live) -> Self {
        live.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ev {
            seq: StdAtomicU32::new(seq),
            live: live.clone(),
            copy: false,
            probe: std::sync::Mutex::new(loom::cell::UnsafeCell::new(())),
        }
    }

    fn seq(&self) -> u32 {
        self.seq.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A read of the value's memory, for loom.
    fn read(&self) {
        let probe = self.probe.lock().unwrap_or_else(PoisonError::into_inner);
        probe.with(|_| ());
    }
}

impl Clone for Ev {
    fn clone(&self) -> Self {
        let seq = self.seq();
        self.read();
        if self.copy {
            // A receiver cloning the ring's copy out of its slot: loom runs another thread
            // here, so a poster that overwrote the slot being cloned would show as a changed
            // value. (Not when a poster clones what it posts into the ring: a switch there
            // would hand the thread back to the receiver before the post reaches the ring.)
            thread::yield_now();
            self.read();
            assert_eq!(
                self.seq(),
                seq,
                "the value changed while it was being cloned"
            );
        }
        let mut copy = Ev::new(seq, &self.live);
        copy.copy = true;
        copy
    }
}

impl Drop for Ev {
    fn drop(&mut self) {
        let probe = self.probe.get_mut().unwrap_or_else(PoisonError::into_inner);
        probe.with_mut(|_| ());
        self.live.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

fn live_count(live: &Live) -> usize {
    live.load(std::sync::atomic::Ordering::SeqCst)
}

/// Polls `f` on this loom thread, waiting on a loom `Notify` between polls (as in
/// `tests/loom_ring.rs`).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    struct Notifier(loom::sync::Notify);
    impl std::task::Wake for Notifier {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.notify();
        }
    }
    let notifier = std::sync::Arc::new(Notifier(loom::sync::Notify::new()));
    let waker = std::task::Waker::from(notifier.clone());
    let mut cx = std::task::Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        notifier.0.wait();
    }
}

/// A cloned stream of capacity 1 (two slots): one post evicts, the second wraps the ring.
fn capacity_one(center: &NotificationCenter) -> ClonedStream<Ev> {
    center
        .observer::<Ev>()
        .policy(Overflow::DropOldest { capacity: 1 })
        .cloned_stream()
}

/// What a receiver saw: values (their `seq`), the lag it heard, and whether it closed.
#[derive(Default, Debug)]
struct Seen {
    values: Vec<u32>,
    lagged: u64,
    closed: bool,
}

impl Seen {
    /// Records one `try_recv`; false when there was nothing to take.
    fn record(&mut self, r: Result<Ev, TryRecvError>) -> bool {
        match r {
            Ok(v) => self.values.push(v.seq()),
            Err(TryRecvError::Lagged(n)) => self.lagged += n,
            Err(TryRecvError::Closed) => self.closed = true,
            Err(TryRecvError::Empty) => return false,
        }
        true
    }

    /// Receives until `Empty` or `Closed`.
    fn drain(&mut self, stream: &mut ClonedStream<Ev>) {
        while !self.closed && self.record(stream.try_recv()) {}
    }

    /// Values received and values lost, once each, in posting order.
    fn check(&self, posted: u64) {
        assert!(
            self.values.windows(2).all(|w| w[0] < w[1]),
            "out of order or twice: {self:?}"
        );
        assert!(
            self.values.iter().all(|&v| u64::from(v) < posted),
            "never posted: {self:?}"
        );
        assert_eq!(
            self.values.len() as u64 + self.lagged,
            posted,
            "each value received or lost: {self:?}"
        );
    }
}

/// Capacity 1: a post evicts the value the receiver is claiming at the same moment. Either the
/// receiver gets it, or the post reports it lost and the receiver hears `Lagged(1)`; never both,
/// never neither.
#[test]
fn claim_and_eviction_agree_on_who_got_the_value() {
    model(|| claim_against_eviction(Overflow::DropOldest { capacity: 1 }));
}

/// The same with latest-only, which loses silently: the receiver hears no `Lagged`, and the
/// loss is counted once, in the report and in the stream's counters.
#[test]
fn claim_and_eviction_agree_with_latest_only() {
    model(|| claim_against_eviction(Overflow::Latest));
}

fn claim_against_eviction(policy: Overflow<Ev>) {
    let silent = matches!(policy, Overflow::Latest);
    let live = Live::default();
    let center = NotificationCenter::new();
    let mut stream = center.observer::<Ev>().policy(policy).cloned_stream();
    center.post(Ev::new(0, &live));
    let poster = {
        let (center, live) = (center.clone(), live.clone());
        thread::spawn(move || center.post(Ev::new(1, &live)).dropped)
    };
    let mut seen = Seen::default();
    seen.record(stream.try_recv());
    let reported = u64::from(poster.join().unwrap());
    seen.drain(&mut stream);
    let stats = stream.stats();
    if silent {
        assert_eq!(seen.lagged, 0, "latest-only reports no lag");
        // What the receiver would have heard as `Lagged`.
        seen.lagged = stats.dropped;
    }
    seen.check(2);
    assert_eq!(seen.values.last(), Some(&1), "the newest is never lost");
    assert_eq!(reported, seen.lagged);
    assert_eq!(
        (stats.delivered, stats.dropped),
        (seen.values.len() as u64, seen.lagged)
    );
    assert_eq!(center.stats::<Ev>().dropped, seen.lagged);
    drop((stream, center));
    assert_eq!(live_count(&live), 0, "a value leaked or was dropped twice");
}

/// Capacity 1 (two slots) and two posts while the receiver claims the oldest values: the
/// second post reuses the slot of the first value, so it must wait for a clone of it to end
/// (`Ev::clone` checks its value did not change under it, and loom that the clone's reads are
/// ordered before the drop of the overwritten value). Every value received is the one posted
/// at its position, in order, and each is received or counted lost once.
#[test]
fn a_clone_in_progress_is_never_overwritten() {
    model(|| {
        let live = Live::default();
        let center = NotificationCenter::new();
        let mut stream = capacity_one(&center);
        center.post(Ev::new(0, &live));
        let poster = {
            let (center, live) = (center.clone(), live.clone());
            thread::spawn(move || {
                let first = center.post(Ev::new(1, &live)).dropped;
                first + center.post(Ev::new(2, &live)).dropped
            })
        };
        let mut seen = Seen::default();
        // Two receives: the second lets the receiver move past a slot before the post that
        // overwrites it looks at its cursor (that look must still order the clone before the
        // overwrite).
        seen.record(stream.try_recv());
        seen.record(stream.try_recv());
        let reported = u64::from(poster.join().unwrap());
        seen.drain(&mut stream);
        seen.check(3);
        assert_eq!(seen.values.last(), Some(&2), "the newest is never lost");
        assert_eq!(reported, seen.lagged);
        assert_eq!(stream.stats().dropped, seen.lagged);
        drop((stream, center));
        assert_eq!(live_count(&live), 0, "a value leaked or was dropped twice");
    });
}

/// Two receivers on two threads clone the oldest value while a poster wraps the ring: the
/// overwriting post waits for both clones (several receivers read one slot at once), and each
/// receiver gets each value or counts it lost, once.
#[test]
fn two_receivers_clone_one_slot_while_it_is_reused() {
    model(|| {
        let live = Live::default();
        let center = NotificationCenter::new();
        let mut a = capacity_one(&center);
        let mut b = capacity_one(&center);
        center.post(Ev::new(0, &live));
        let other = thread::spawn(move || {
            let mut seen = Seen::default();
            seen.record(b.try_recv());
            (b, seen)
        });
        let poster = {
            let (center, live) = (center.clone(), live.clone());
            thread::spawn(move || {
                let first = center.post(Ev::new(1, &live)).dropped;
                first + center.post(Ev::new(2, &live)).dropped
            })
        };
        let mut seen_a = Seen::default();
        seen_a.record(a.try_recv());
        let (mut b, mut seen_b) = other.join().unwrap();
        let reported = u64::from(poster.join().unwrap());
        for (stream, seen) in [(&mut a, &mut seen_a), (&mut b, &mut seen_b)] {
            seen.drain(stream);
            seen.check(3);
            assert_eq!(seen.values.last(), Some(&2), "the newest is never lost");
            assert_eq!(stream.stats().dropped, seen.lagged);
        }
        assert_eq!(reported, seen_a.lagged + seen_b.lagged);
        drop((a, b, center));
        assert_eq!(live_count(&live), 0, "a value leaked or was dropped twice");
    });
}

/// A receiver parks (`recv().await` with nothing there) while a post arrives: it is woken.
#[test]
fn a_parked_receiver_is_always_woken() {
    model(|| {
        let live = Live::default();
        let center = NotificationCenter::new();
        let mut stream = center.cloned_stream::<Ev>();
        let poster = {
            let (center, live) = (center.clone(), live.clone());
            thread::spawn(move || {
                center.post(Ev::new(1, &live));
            })
        };
        assert_eq!(block_on(stream.recv()).unwrap().seq(), 1);
        poster.join().unwrap();
        drop((stream, center));
        assert_eq!(live_count(&live), 0);
    });
}

/// The same with a thread blocked in `recv_blocking`.
#[test]
fn a_blocked_receiver_is_always_woken() {
    model(|| {
        let live = Live::default();
        let center = NotificationCenter::new();
        let mut stream = center.cloned_stream::<Ev>();
        let poster = {
            let (center, live) = (center.clone(), live.clone());
            thread::spawn(move || {
                center.post(Ev::new(1, &live));
            })
        };
        assert_eq!(stream.recv_blocking().unwrap().seq(), 1);
        poster.join().unwrap();
        drop((stream, center));
        assert_eq!(live_count(&live), 0);
    });
}

/// A receiver parks while the center is dropped (its stream leaves the ring): leaving takes
/// the ring's lock like parking does, so the receiver either sees its `end` before it parks or
/// is woken by the leave; `recv` returns `Closed` (a lost wake-up shows as a loom deadlock).
#[test]
fn a_parked_receiver_is_woken_by_leaving() {
    model(|| {
        let center = NotificationCenter::new();
        let mut stream = center.cloned_stream::<Ev>();
        let dropper = thread::spawn(move || drop(center));
        assert_eq!(block_on(stream.recv()).unwrap_err(), RecvError::Closed);
        dropper.join().unwrap();
    });
}

/// The same with a thread blocked in `recv_blocking`.
#[test]
fn a_blocked_receiver_is_woken_by_leaving() {
    model(|| {
        let center = NotificationCenter::new();
        let mut stream = center.cloned_stream::<Ev>();
        let dropper = thread::spawn(move || drop(center));
        assert_eq!(stream.recv_blocking().unwrap_err(), RecvError::Closed);
        dropper.join().unwrap();
    });
}

/// The center is dropped (the stream leaves the ring, keeping what it had not taken) while
/// the receiver claims: it gets every value once, then `Closed`, and the ring is freed.
#[test]
fn leaving_the_ring_races_a_claim_without_loss() {
    model(|| {
        let live = Live::default();
        let center = NotificationCenter::new();
        let mut stream = center.cloned_stream::<Ev>();
        center.post(Ev::new(0, &live));
        center.post(Ev::new(1, &live));
        let dropper = thread::spawn(move || drop(center));
        let mut seen = Seen::default();
        seen.record(stream.try_recv());
        dropper.join().unwrap();
        seen.drain(&mut stream);
        assert!(seen.closed, "{seen:?}");
        assert_eq!((seen.values.as_slice(), seen.lagged), (&[0, 1][..], 0));
        assert_eq!(block_on(stream.recv()).unwrap_err(), RecvError::Closed);
        drop(stream);
        assert_eq!(live_count(&live), 0, "a value leaked or was dropped twice");
    });
}

/// A stream unsubscribes (keeping what it had not taken) while a post for another stream
/// evicts the oldest value: the post reaches it only if it came before the leave; what it
/// kept is received or counted lost once (a member evicted past its end leaves the ring), and
/// the post's report agrees with both streams' counters.
#[test]
fn unsubscribing_races_an_evicting_post() {
    model(|| {
        let live = Live::default();
        let center = NotificationCenter::new();
        let mut stays = capacity_one(&center);
        let mut leaves = capacity_one(&center);
        center.post(Ev::new(0, &live));
        let poster = {
            let (center, live) = (center.clone(), live.clone());
            thread::spawn(move || {
                let r = center.post(Ev::new(1, &live));
                (r.received, u64::from(r.dropped))
            })
        };
        leaves.unsubscribe();
        let mut left = Seen::default();
        while !left.closed {
            assert!(
                left.record(leaves.try_recv()),
                "a stream that left is never empty"
            );
        }
        let (received, dropped) = poster.join().unwrap();
        let mut stayed = Seen::default();
        stayed.drain(&mut stays);
        stayed.check(2);
        assert_eq!(stayed.values, [1]);
        // The post reached the leaving stream only if it came before the leave.
        let reached = match received {
            2 => 1,
            1 => 0,
            n => panic!("the post reached {n} streams"),
        };
        left.check(1 + reached);
        assert_eq!(dropped, stayed.lagged + left.lagged);
        assert_eq!(leaves.stats().dropped, left.lagged);
        assert_eq!(stays.stats().dropped, stayed.lagged);
        assert_eq!(center.stats::<Ev>().dropped, dropped);
        drop((stays, leaves, center));
        assert_eq!(live_count(&live), 0, "a value leaked or was dropped twice");
    });
}

/// A stream subscribes while another thread posts with the snapshot from before: it gets that
/// post at most once (as a ring member or skipped), and the next post exactly once.
#[test]
fn subscribing_races_a_post_of_an_older_snapshot() {
    model(|| {
        let live = Live::default();
        let center = NotificationCenter::new();
        let _first = center.cloned_stream::<Ev>();
        let poster = {
            let (center, live) = (center.clone(), live.clone());
            thread::spawn(move || center.post(Ev::new(1, &live)).received)
        };
        let mut late = center.cloned_stream::<Ev>();
        let reached = poster.join().unwrap();
        center.post(Ev::new(2, &live));
        let mut seen = Seen::default();
        seen.drain(&mut late);
        match (seen.values.as_slice(), seen.lagged) {
            ([1, 2], 0) => assert_eq!(reached, 2),
            ([2], 0) => assert_eq!(reached, 1),
            _ => panic!("{seen:?}"),
        }
        let s = late.stats();
        assert_eq!((s.delivered, s.dropped), (seen.values.len() as u64, 0));
        drop((late, _first, center));
        assert_eq!(live_count(&live), 0, "a value leaked or was dropped twice");
    });
}

/// Contract 6 on a cloned stream: a `replay_last` stream racing a post gets the posted value
/// exactly once, either replayed or from the ring.
#[test]
fn replay_on_a_value_ring_is_exactly_once() {
    model(|| {
        let live = Live::default();
        let center = NotificationCenter::new();
        center.retain_last::<Ev>();
        let poster = {
            let (center, live) = (center.clone(), live.clone());
            thread::spawn(move || {
                center.post(Ev::new(7, &live));
            })
        };
        let mut stream = center.observer::<Ev>().replay_last().cloned_stream();
        poster.join().unwrap();
        let mut seen = Seen::default();
        seen.drain(&mut stream);
        assert_eq!((seen.values.as_slice(), seen.lagged), (&[7][..], 0));
        drop((stream, center));
        assert_eq!(live_count(&live), 0, "a value leaked or was dropped twice");
    });
}

/// The same with a third thread subscribing another cloned stream to the ring meanwhile (it
/// changes the subscriber list and joins the ring, so the post may run with any of three
/// snapshots): the `replay_last` stream gets the value exactly once, the other at most once.
#[test]
fn replay_on_a_value_ring_is_exactly_once_beside_another_subscriber() {
    model(|| {
        let live = Live::default();
        let center = NotificationCenter::new();
        center.retain_last::<Ev>();
        let poster = {
            let (center, live) = (center.clone(), live.clone());
            thread::spawn(move || {
                center.post(Ev::new(7, &live));
            })
        };
        let subscriber = {
            let center = center.clone();
            thread::spawn(move || center.cloned_stream::<Ev>())
        };
        let mut stream = center.observer::<Ev>().replay_last().cloned_stream();
        poster.join().unwrap();
        let mut other = subscriber.join().unwrap();
        let mut seen = Seen::default();
        seen.drain(&mut stream);
        assert_eq!((seen.values.as_slice(), seen.lagged), (&[7][..], 0));
        let mut seen_other = Seen::default();
        seen_other.drain(&mut other);
        assert!(
            seen_other.values.len() <= 1 && seen_other.lagged == 0,
            "{seen_other:?}"
        );
        drop((stream, other, center));
        assert_eq!(live_count(&live), 0, "a value leaked or was dropped twice");
    });
}
