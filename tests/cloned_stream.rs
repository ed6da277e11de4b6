//! `ClonedStream`: a stream of `Clone` notifications that receives values, not `Arc`s. On the
//! type's value ring (drop-oldest or latest-only, no sender or filter) and on the fallback (a
//! private buffer of `Arc`s, cloned on receive): order, membership, exact loss accounting,
//! closing, replay, re-entrancy, counters, every way to receive, a concurrency stress test
//! that counts live values, and clones that panic.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicIsize, AtomicU32, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex};
use std::task::{Context, Poll};
use std::thread;

use futures::StreamExt;
use futures::task::ArcWake;
use herald::{
    BufferStats, ClonedStream, Lagged, Notification, NotificationCenter, NotificationStream,
    ObserverBuilder, Overflow, PanicPolicy, RecvError, SenderId, TryRecvError,
};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Ev(u32);
impl Notification for Ev {}

/// Everything a cloned stream yields right now, as `"seq"`, `"lag n"` and `"closed"`.
fn yields(stream: &mut ClonedStream<Ev>) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        match stream.try_recv() {
            Ok(v) => out.push(v.0.to_string()),
            Err(TryRecvError::Lagged(n)) => out.push(format!("lag {n}")),
            Err(TryRecvError::Empty) => return out,
            Err(TryRecvError::Closed) => {
                out.push("closed".into());
                return out;
            }
        }
    }
}

/// `"lo"..="hi"` as strings, for expected transcripts.
fn seqs(range: std::ops::RangeInclusive<u32>) -> Vec<String> {
    range.map(|i| i.to_string()).collect()
}

fn on_value_ring<N: Notification + Clone>(stream: &ClonedStream<N>) -> bool {
    format!("{stream:?}").contains("value_ring: true")
}

/// A waker that counts its wake-ups.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl ArcWake for CountingWaker {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.0.fetch_add(1, SeqCst);
    }
}

/// Counts its clones (every copy shares the counter).
#[derive(Debug)]
struct Counted(u32, Arc<AtomicUsize>);
impl Notification for Counted {}

impl Clone for Counted {
    fn clone(&self) -> Self {
        self.1.fetch_add(1, SeqCst);
        Counted(self.0, self.1.clone())
    }
}

/// Counts the live instances: made or cloned +1, dropped -1. A leak leaves the count above
/// zero, a double drop takes it below.
#[derive(Debug)]
struct Tracked {
    poster: u32,
    seq: u32,
    live: Arc<AtomicIsize>,
}
impl Notification for Tracked {}

impl Tracked {
    fn new(poster: u32, seq: u32, live: &Arc<AtomicIsize>) -> Self {
        live.fetch_add(1, SeqCst);
        Tracked {
            poster,
            seq,
            live: live.clone(),
        }
    }
}

impl Clone for Tracked {
    fn clone(&self) -> Self {
        Tracked::new(self.poster, self.seq, &self.live)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.live.fetch_sub(1, SeqCst);
    }
}

/// Its clone panics for the value whose number is in the fuse (`u32::MAX`: never).
#[derive(Debug)]
struct Fragile(u32, Arc<AtomicU32>);
impl Notification for Fragile {}

const DISARMED: u32 = u32::MAX;

impl Clone for Fragile {
    fn clone(&self) -> Self {
        assert_ne!(self.1.load(SeqCst), self.0, "clone of {} refused", self.0);
        Fragile(self.0, self.1.clone())
    }
}

// ---------------------------------------------------------------------------------------------
// Values, in order, to every stream subscribed
// ---------------------------------------------------------------------------------------------

#[test]
fn try_recv_yields_owned_values_in_post_order_then_empty() {
    let center = NotificationCenter::new();
    let mut stream: ClonedStream<Ev> = center.cloned_stream::<Ev>();
    assert!(on_value_ring(&stream));
    assert_eq!(stream.try_recv().unwrap_err(), TryRecvError::Empty);
    for i in 0..5 {
        assert_eq!(center.post(Ev(i)).received, 1);
    }
    for i in 0..5 {
        let v: Ev = stream.try_recv().unwrap();
        assert_eq!(v, Ev(i));
    }
    assert_eq!(stream.try_recv().unwrap_err(), TryRecvError::Empty);
}

#[tokio::test]
async fn recv_await_receives_in_post_order() {
    let center = NotificationCenter::new();
    let mut stream = center
        .observer::<Ev>()
        .policy(Overflow::DropOldest { capacity: 16 })
        .cloned_stream();
    for i in 0..10 {
        center.post(Ev(i));
    }
    for i in 0..10 {
        assert_eq!(stream.recv().await.unwrap(), Ev(i));
    }
    assert!(stream.is_empty());
}

#[test]
fn a_post_clones_once_into_the_ring_and_each_receive_clones_once() {
    let center = NotificationCenter::new();
    let clones = Arc::new(AtomicUsize::new(0));
    let mut streams: Vec<ClonedStream<Counted>> =
        (0..3).map(|_| center.cloned_stream::<Counted>()).collect();
    assert!(streams.iter().all(on_value_ring));
    let report = center.post(Counted(7, clones.clone()));
    assert_eq!(report.received, 3);
    assert_eq!(
        clones.load(SeqCst),
        1,
        "one clone into the ring, for all three"
    );
    for (i, s) in streams.iter_mut().enumerate() {
        assert_eq!(s.try_recv().unwrap().0, 7);
        assert_eq!(clones.load(SeqCst), 2 + i, "one clone per receive");
    }
}

#[test]
fn ring_policies_share_a_value_ring_and_the_others_fall_back() {
    let center = NotificationCenter::new();
    assert!(on_value_ring(&center.cloned_stream::<Ev>()));
    assert!(on_value_ring(
        &center
            .observer::<Ev>()
            .policy(Overflow::Latest)
            .cloned_stream()
    ));
    assert!(on_value_ring(
        &center
            .observer::<Ev>()
            .policy(Overflow::DropOldest { capacity: 1 << 16 })
            .cloned_stream()
    ));
    let fallback = [
        center.observer::<Ev>().filter(|e| e.0 > 1).cloned_stream(),
        center
            .observer::<Ev>()
            .sender(SenderId::new())
            .cloned_stream(),
        center
            .observer::<Ev>()
            .policy(Overflow::DropNewest { capacity: 4 })
            .cloned_stream(),
        center
            .observer::<Ev>()
            .policy(Overflow::Backpressure { capacity: 4 })
            .cloned_stream(),
        center
            .observer::<Ev>()
            .policy(Overflow::coalesce_by_key(4, |e: &Ev| e.0))
            .cloned_stream(),
        center
            .observer::<Ev>()
            .policy(Overflow::DropOldest {
                capacity: (1 << 16) + 1,
            })
            .cloned_stream(),
        // A replayed value would sit beside the ring, outside its capacity.
        center.observer::<Ev>().replay_last().cloned_stream(),
    ];
    for s in &fallback {
        assert!(!on_value_ring(s), "{s:?}");
    }
}

#[test]
fn every_stream_gets_every_post_made_after_it_subscribed() {
    let center = NotificationCenter::new();
    let mut first = center.cloned_stream::<Ev>();
    assert_eq!(center.post(Ev(0)).received, 1);
    assert_eq!(center.post(Ev(1)).received, 1);
    let mut second = center.cloned_stream::<Ev>();
    let mut latest = center
        .observer::<Ev>()
        .policy(Overflow::Latest)
        .cloned_stream();
    assert_eq!(center.post(Ev(2)).received, 3);
    assert_eq!(center.post(Ev(3)).received, 3);
    assert_eq!(yields(&mut first), seqs(0..=3));
    assert_eq!(yields(&mut second), seqs(2..=3));
    assert_eq!(yields(&mut latest), ["3"]);
    let s = second.stats();
    assert_eq!((s.delivered, s.dropped, s.depth), (2, 0, 0));
}

#[test]
fn post_reports_count_streams_on_every_ring_of_the_type() {
    let center = NotificationCenter::new();
    let _inline = center.observe(|_: &Ev| {});
    let mut small = center
        .observer::<Ev>()
        .policy(Overflow::DropOldest { capacity: 2 })
        .cloned_stream();
    let mut small_too = center
        .observer::<Ev>()
        .policy(Overflow::DropOldest { capacity: 2 })
        .cloned_stream();
    let mut big = center.cloned_stream::<Ev>();
    let mut arcs = center
        .observer::<Ev>()
        .policy(Overflow::DropOldest { capacity: 2 })
        .stream();
    let mut reports = Vec::new();
    for i in 0..4 {
        let r = center.post(Ev(i));
        reports.push((r.received, r.dropped));
    }
    // 1 inline + 2 cloned streams of capacity 2 + 1 of 1024 + 1 `Arc` stream of capacity 2;
    // the three of capacity 2 lose one value each on the third and fourth post.
    assert_eq!(reports, [(5, 0), (5, 0), (5, 3), (5, 3)]);
    assert_eq!(yields(&mut small), ["lag 2", "2", "3"]);
    assert_eq!(yields(&mut small_too), ["lag 2", "2", "3"]);
    assert_eq!(yields(&mut big), seqs(0..=3));
    assert_eq!(arcs.try_recv().unwrap_err(), TryRecvError::Lagged(2));
    assert_eq!(*arcs.try_recv().unwrap(), Ev(2));
    assert_eq!(center.stats::<Ev>().dropped, 6);
}

// ---------------------------------------------------------------------------------------------
// Drop-oldest and latest-only on the value ring
// ---------------------------------------------------------------------------------------------

/// The issue's example: capacity 8, the receiver has received everything up to 20, then
/// 21..=32 are posted: it hears `Lagged(4)` (21..=24), then 25..=32.
#[test]
fn drop_oldest_issue_example_lags_by_four_then_yields_the_newest_eight() {
    let center = NotificationCenter::new();
    let mut stream = center
        .observer::<Ev>()
        .policy(Overflow::DropOldest { capacity: 8 })
        .cloned_stream();
    assert!(on_value_ring(&stream));
    for i in 0..=20 {
        center.post(Ev(i));
        assert_eq!(stream.try_recv().unwrap(), Ev(i));
    }
    let reports: Vec<u32> = (21..=32).map(|i| center.post(Ev(i)).dropped).collect();
    assert_eq!(reports, [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1]);
    assert_eq!(stream.len(), 8);
    let mut expected = vec!["lag 4".to_string()];
    expected.extend(seqs(25..=32));
    assert_eq!(yields(&mut stream), expected);
    let stats = stream.stats();
    assert_eq!(
        (stats.delivered, stats.dropped, stats.depth, stats.capacity),
        (29, 4, 0, 8)
    );
    assert_eq!(center.stats::<Ev>().dropped, 4);
}

/// The same with receives between the posts (the shape of `tests/streams.rs`'s issue test):
/// 0..=19 received one by one; 20..=22 posted and 20 received; 23..=32 posted. The newest 8
/// survive, so 21..=24 are lost although 21 and 22 were waiting before the burst.
#[test]
fn drop_oldest_issue_example_with_receives_between_posts() {
    let center = NotificationCenter::new();
    let mut stream = center
        .observer::<Ev>()
        .policy(Overflow::DropOldest { capacity: 8 })
        .cloned_stream();
    for i in 0..20 {
        center.post(Ev(i));
        assert_eq!(stream.try_recv().unwrap().0, i);
    }
    for i in 20..=22 {
        center.post(Ev(i));
    }
    assert_eq!(stream.try_recv().unwrap().0, 20);
    assert_eq!(stream.len(), 2);
    let mut dropped = 0;
    for i in 23..=32 {
        let report = center.post(Ev(i));
        assert_eq!(report.received, 1);
        dropped += report.dropped;
        assert!(stream.len() <= 8, "{} values held", stream.len());
    }
    assert_eq!(dropped, 4, "one value lost per post once full");
    let mut expected = vec!["lag 4".to_string()];
    expected.extend(seqs(25..=32));
    assert_eq!(yields(&mut stream), expected);
    let stats = stream.stats();
    assert_eq!((stats.delivered, stats.dropped, stats.depth), (29, 4, 0));
    assert_eq!(center.stats::<Ev>().dropped, 4);
}

/// The same loss, heard through each way to receive: `Lagged(3)`, then 3 and 4.
#[test]
fn lag_is_reported_exactly_by_try_recv_recv_recv_blocking_and_the_stream() {
    let center = NotificationCenter::new();
    let ring = || {
        center
            .observer::<Ev>()
            .policy(Overflow::DropOldest { capacity: 2 })
            .cloned_stream()
    };
    let (mut a, mut b, mut c, mut d) = (ring(), ring(), ring(), ring());
    let dropped: u32 = (0..5).map(|i| center.post(Ev(i)).dropped).sum();
    assert_eq!(dropped, 4 * 3);

    assert_eq!(a.try_recv().unwrap_err(), TryRecvError::Lagged(3));
    assert_eq!(a.try_recv().unwrap(), Ev(3));
    assert_eq!(a.try_recv().unwrap(), Ev(4));

    futures::executor::block_on(async {
        assert_eq!(b.recv().await.unwrap_err(), RecvError::Lagged(3));
        assert_eq!(b.recv().await.unwrap(), Ev(3));
        assert_eq!(b.recv().await.unwrap(), Ev(4));
        assert_eq!(d.next().await.unwrap().unwrap_err(), Lagged(3));
        assert_eq!(d.next().await.unwrap().unwrap(), Ev(3));
        assert_eq!(d.next().await.unwrap().unwrap(), Ev(4));
    });

    assert_eq!(c.recv_blocking().unwrap_err(), RecvError::Lagged(3));
    assert_eq!(c.recv_blocking().unwrap(), Ev(3));
    assert_eq!(c.recv_blocking().unwrap(), Ev(4));

    for s in [&a, &b, &c, &d] {
        let stats = s.stats();
        assert_eq!((stats.delivered, stats.dropped, stats.depth), (2, 3, 0));
    }
    assert_eq!(center.stats::<Ev>().dropped, 12);
}

/// Streams that fall behind by different amounts: each post's `dropped`, the type's counter
/// and every stream's counter and lag reports agree.
#[test]
fn drop_counts_agree_between_post_reports_type_stats_and_stream_stats() {
    let center = NotificationCenter::new();
    let streams: Vec<_> = (0..3)
        .map(|_| {
            center
                .observer::<Ev>()
                .policy(Overflow::DropOldest { capacity: 3 })
                .cloned_stream()
        })
        .collect();
    let mut streams = streams;
    let mut reported = 0u64;
    let mut lags = [0u64; 3];
    let mut got = [0u64; 3];
    for i in 0..40u32 {
        reported += u64::from(center.post(Ev(i)).dropped);
        // Stream k receives one value after every (3k + 1)-th post.
        for (k, s) in streams.iter_mut().enumerate() {
            if i % (k as u32 * 3 + 1) == 0 {
                match s.try_recv() {
                    Ok(_) => got[k] += 1,
                    Err(TryRecvError::Lagged(n)) => lags[k] += n,
                    Err(e) => panic!("{e:?}"),
                }
            }
        }
    }
    for (k, s) in streams.iter_mut().enumerate() {
        for y in yields(s) {
            match y.strip_prefix("lag ") {
                Some(n) => lags[k] += n.parse::<u64>().unwrap(),
                None => got[k] += 1,
            }
        }
        let stats = s.stats();
        assert_eq!(
            (stats.delivered, stats.dropped),
            (got[k], lags[k]),
            "stream {k}"
        );
        assert_eq!(got[k] + lags[k], 40);
    }
    assert_eq!(lags[0], 0, "a receiver that keeps up loses nothing");
    assert!(lags[2] > 0, "a slow receiver loses values");
    assert_eq!(lags.iter().sum::<u64>(), reported);
    let all = center.stats::<Ev>();
    assert_eq!(all.dropped, reported);
    assert_eq!(all.delivered + all.dropped, 3 * 40);
}

#[test]
fn latest_keeps_only_the_newest_silently_and_counts_the_drops() {
    let center = NotificationCenter::new();
    let mut latest = center
        .observer::<Ev>()
        .policy(Overflow::Latest)
        .cloned_stream();
    assert!(on_value_ring(&latest));
    assert_eq!(latest.capacity(), 1);
    let dropped: Vec<u32> = (0..5).map(|i| center.post(Ev(i)).dropped).collect();
    assert_eq!(dropped, [0, 1, 1, 1, 1]);
    assert_eq!(latest.len(), 1);
    assert_eq!(
        latest.try_recv().unwrap(),
        Ev(4),
        "no Lagged: the loss is silent"
    );
    assert_eq!(latest.try_recv().unwrap_err(), TryRecvError::Empty);
    center.post(Ev(5));
    center.post(Ev(6));
    futures::executor::block_on(async {
        assert_eq!(latest.recv().await.unwrap(), Ev(6));
    });
    center.post(Ev(7));
    center.post(Ev(8));
    assert_eq!(latest.recv_blocking().unwrap(), Ev(8));
    let stats = latest.stats();
    assert_eq!((stats.delivered, stats.dropped, stats.depth), (3, 6, 0));
    assert_eq!(center.stats::<Ev>().dropped, 6);
}

/// Latest-only and drop-oldest of capacity 1 share a ring; only drop-oldest hears the lag.
#[test]
fn latest_and_drop_oldest_of_capacity_one_differ_only_in_lag_reports() {
    let center = NotificationCenter::new();
    let mut latest = center
        .observer::<Ev>()
        .policy(Overflow::Latest)
        .cloned_stream();
    let mut oldest = center
        .observer::<Ev>()
        .policy(Overflow::DropOldest { capacity: 1 })
        .cloned_stream();
    for i in 0..4 {
        center.post(Ev(i));
    }
    assert_eq!(yields(&mut latest), ["3"]);
    assert_eq!(yields(&mut oldest), ["lag 3", "3"]);
    assert_eq!(latest.stats().dropped, 3);
    assert_eq!(oldest.stats().dropped, 3);
}

// ---------------------------------------------------------------------------------------------
// Closing: unsubscribe, drop, the center dropped
// ---------------------------------------------------------------------------------------------

#[test]
fn unsubscribe_keeps_what_was_buffered_then_reports_closed() {
    let center = NotificationCenter::new();
    let mut stream = center.cloned_stream::<Ev>();
    center.post(Ev(1));
    center.post(Ev(2));
    assert!(!stream.is_closed());
    stream.unsubscribe();
    assert!(stream.is_closed());
    assert!(center.post(Ev(3)).is_dead(), "nobody receives it");
    assert_eq!(stream.len(), 2);
    assert_eq!(yields(&mut stream), ["1", "2", "closed"]);
    assert_eq!(stream.try_recv().unwrap_err(), TryRecvError::Closed);
    assert_eq!(stream.recv_blocking().unwrap_err(), RecvError::Closed);
    futures::executor::block_on(async {
        assert_eq!(stream.recv().await.unwrap_err(), RecvError::Closed);
        assert!(stream.next().await.is_none());
    });
    assert_eq!(center.stats::<Ev>().observers, 0);
}

/// While another stream keeps the ring going, one that unsubscribed gets no later post.
#[test]
fn an_unsubscribed_stream_gets_no_later_post_while_the_ring_goes_on() {
    let center = NotificationCenter::new();
    let mut stays = center.cloned_stream::<Ev>();
    let mut leaves = center.cloned_stream::<Ev>();
    center.post(Ev(0));
    center.post(Ev(1));
    leaves.unsubscribe();
    assert_eq!(center.post(Ev(2)).received, 1);
    assert_eq!(center.post(Ev(3)).received, 1);
    assert_eq!(yields(&mut leaves), ["0", "1", "closed"]);
    assert_eq!(yields(&mut stays), seqs(0..=3));
}

#[test]
fn dropping_a_cloned_stream_unsubscribes() {
    let center = NotificationCenter::new();
    let stream = center.cloned_stream::<Ev>();
    let _fallback = center
        .observer::<Ev>()
        .policy(Overflow::DropNewest { capacity: 2 })
        .cloned_stream();
    assert_eq!(center.stats::<Ev>().observers, 2);
    drop(stream);
    assert_eq!(center.stats::<Ev>().observers, 1);
    drop(_fallback);
    assert_eq!(center.stats::<Ev>().observers, 0);
    assert!(center.post(Ev(0)).is_dead());
}

#[test]
fn dropping_the_center_closes_every_form_after_the_buffered_values() {
    let center = NotificationCenter::new();
    let mut by_try = center.cloned_stream::<Ev>();
    let mut by_recv = center.cloned_stream::<Ev>();
    let mut by_next = center.cloned_stream::<Ev>();
    let mut by_blocking = center.cloned_stream::<Ev>();
    let mut fallback = center.observer::<Ev>().filter(|_| true).cloned_stream();
    center.post(Ev(1));
    center.post(Ev(2));
    drop(center);
    for s in [&by_try, &by_recv, &by_next, &by_blocking, &fallback] {
        assert!(s.is_closed());
        assert_eq!(s.len(), 2);
    }
    assert_eq!(yields(&mut by_try), ["1", "2", "closed"]);
    assert_eq!(yields(&mut fallback), ["1", "2", "closed"]);
    futures::executor::block_on(async {
        assert_eq!(by_recv.recv().await.unwrap(), Ev(1));
        assert_eq!(by_recv.recv().await.unwrap(), Ev(2));
        assert_eq!(by_recv.recv().await.unwrap_err(), RecvError::Closed);
        let rest: Vec<_> = (&mut by_next).collect().await;
        assert_eq!(rest, [Ok(Ev(1)), Ok(Ev(2))], "then the stream ends");
    });
    assert_eq!(by_blocking.recv_blocking().unwrap(), Ev(1));
    assert_eq!(by_blocking.recv_blocking().unwrap(), Ev(2));
    assert_eq!(by_blocking.recv_blocking().unwrap_err(), RecvError::Closed);
}

#[test]
fn recv_blocking_is_woken_when_the_center_goes_away() {
    for _ in 0..50 {
        let center = NotificationCenter::new();
        let mut stream = center.cloned_stream::<Ev>();
        let receiver = thread::spawn(move || stream.recv_blocking());
        // Before or after the receiver blocks: either way it must wake and see the end.
        drop(center);
        assert_eq!(receiver.join().unwrap().unwrap_err(), RecvError::Closed);
    }
}

// ---------------------------------------------------------------------------------------------
// replay_last
// ---------------------------------------------------------------------------------------------

#[test]
fn replay_last_yields_the_retained_value_once_then_later_posts() {
    let center = NotificationCenter::new();
    center.retain_last::<Ev>();
    let mut before = center.cloned_stream::<Ev>();
    center.post(Ev(1));
    center.post(Ev(2));
    let mut replayed = center.observer::<Ev>().replay_last().cloned_stream();
    assert_eq!(replayed.len(), 1);
    assert_eq!(center.post(Ev(3)).received, 2);
    assert_eq!(
        yields(&mut replayed),
        ["2", "3"],
        "2 once, although the ring holds it"
    );
    assert_eq!(yields(&mut before), seqs(1..=3));
    let s = replayed.stats();
    assert_eq!((s.delivered, s.dropped, s.depth), (2, 0, 0));
    // Without a retained value: only later posts.
    let other = NotificationCenter::new();
    other.retain_last::<Ev>();
    let mut nothing_yet = other.observer::<Ev>().replay_last().cloned_stream();
    assert!(nothing_yet.is_empty());
    other.post(Ev(9));
    assert_eq!(yields(&mut nothing_yet), ["9"]);
}

/// Replay-last subscribers made while another thread posts: each gets values in order and
/// none twice (the replayed value and the ring must not overlap).
#[test]
fn replay_last_during_concurrent_posts_never_yields_a_value_twice() {
    const N: u32 = 3_000;
    let center = NotificationCenter::new();
    center.retain_last::<Ev>();
    let _steady = center.cloned_stream::<Ev>();
    let poster = {
        let center = center.clone();
        thread::spawn(move || {
            for i in 0..N {
                center.post(Ev(i));
            }
        })
    };
    let mut made = 0;
    while !poster.is_finished() || made < 20 {
        let mut s = center
            .observer::<Ev>()
            .replay_last()
            .policy(Overflow::DropOldest {
                capacity: N as usize,
            })
            .cloned_stream();
        made += 1;
        let mut last = None;
        for _ in 0..50 {
            match s.try_recv() {
                Ok(v) => {
                    assert!(last < Some(v.0), "{:?} then {}", last, v.0);
                    last = Some(v.0);
                }
                Err(TryRecvError::Empty) => thread::yield_now(),
                Err(e) => panic!("{e:?}"),
            }
        }
    }
    poster.join().unwrap();
}

// ---------------------------------------------------------------------------------------------
// Re-entrancy: subscribing and unsubscribing from inside a post
// ---------------------------------------------------------------------------------------------

#[test]
fn a_stream_subscribed_during_a_post_does_not_get_that_post() {
    // The adder runs before the ring entry (priority 1 > 0) and after it (-1 < 0).
    for adder_priority in [1, -1] {
        let center = NotificationCenter::new();
        let mut early = center.cloned_stream::<Ev>();
        let added: Arc<Mutex<Vec<ClonedStream<Ev>>>> = Arc::default();
        let (c, a) = (center.clone(), added.clone());
        let _adder = center
            .observer::<Ev>()
            .priority(adder_priority)
            .inline(move |e| {
                if e.0 == 0 {
                    a.lock().unwrap().push(c.cloned_stream::<Ev>());
                }
            });
        assert_eq!(center.post(Ev(0)).received, 2);
        assert_eq!(center.post(Ev(1)).received, 3);
        let mut late = added.lock().unwrap().pop().unwrap();
        assert_eq!(yields(&mut early), ["0", "1"], "adder at {adder_priority}");
        assert_eq!(yields(&mut late), ["1"], "adder at {adder_priority}");
        let s = late.stats();
        assert_eq!(
            (s.delivered, s.dropped),
            (1, 0),
            "adder at {adder_priority}"
        );
    }
}

/// Cloned streams dropped by an inline observer during a post, before and after that post
/// reached their ring: no panic, the report counts whom the ring was written for, the
/// remaining stream gets everything, and the type's counters add up.
#[test]
fn cloned_streams_dropped_by_an_inline_observer_during_a_post() {
    // (dropper priority, the post's expected `received`): at 10 the dropper runs before
    // every stream; at -5 after every stream (the ring is written for all three).
    for (dropper, expected) in [(10, 2), (-5, 4)] {
        let center = NotificationCenter::new();
        let victims: Arc<Mutex<Vec<ClonedStream<Ev>>>> = Arc::new(Mutex::new(vec![
            // The first ring entry in priority order, so the one that would write the ring.
            center.observer::<Ev>().priority(5).cloned_stream(),
            center.observer::<Ev>().priority(-1).cloned_stream(),
        ]));
        let mut keeper = center.observer::<Ev>().priority(0).cloned_stream();
        let v = victims.clone();
        let _dropper = center.observer::<Ev>().priority(dropper).inline(move |e| {
            if e.0 == 1 {
                v.lock().unwrap().clear();
            }
        });
        assert_eq!(center.post(Ev(0)).received, 4);
        let report = center.post(Ev(1));
        assert_eq!(
            (report.received, report.dropped, report.panicked),
            (expected, 0, 0),
            "dropper at {dropper}"
        );
        assert_eq!(center.post(Ev(2)).received, 2, "dropper at {dropper}");
        assert_eq!(yields(&mut keeper), seqs(0..=2), "dropper at {dropper}");
        let stats = center.stats::<Ev>();
        assert_eq!(
            (stats.observers, stats.buffers.len(), stats.dropped),
            (2, 1, 0)
        );
        // The dropper's 3 calls and the keeper's 3 values; the victims received nothing.
        assert_eq!(stats.delivered, 6, "dropper at {dropper}: {stats:?}");
    }
}

/// A cloned stream that unsubscribes itself from an inline observer during a post, before
/// the post reaches the ring: it keeps what it had, not that post, then closes.
#[test]
fn a_cloned_stream_unsubscribed_by_an_inline_observer_during_a_post() {
    let center = NotificationCenter::new();
    let mut keeper = center.observer::<Ev>().priority(-1).cloned_stream();
    let leaver: Arc<Mutex<ClonedStream<Ev>>> = Arc::new(Mutex::new(
        center.observer::<Ev>().priority(0).cloned_stream(),
    ));
    let l = leaver.clone();
    let _closer = center.observer::<Ev>().priority(1).inline(move |e| {
        if e.0 == 2 {
            l.lock().unwrap().unsubscribe();
        }
    });
    center.post(Ev(0));
    center.post(Ev(1));
    assert_eq!(center.post(Ev(2)).received, 2, "the closer and the keeper");
    center.post(Ev(3));
    let mut leaver = leaver.lock().unwrap();
    assert!(leaver.is_closed());
    assert_eq!(yields(&mut leaver), ["0", "1", "closed"]);
    assert_eq!(yields(&mut keeper), seqs(0..=3));
}

/// As documented on `NotificationStream` for its shared ring: streams on one ring all receive
/// a post at the turn of the first of them, so a nested post made by an observer between them
/// comes after it for both.
#[test]
fn streams_on_one_value_ring_see_a_nested_post_after_the_outer_one() {
    let center = NotificationCenter::new();
    let mut first = center.observer::<Ev>().priority(10).cloned_stream();
    let c = center.clone();
    let _nester = center.observer::<Ev>().priority(5).inline(move |e| {
        if e.0 == 0 {
            c.post(Ev(1));
        }
    });
    let mut last = center.observer::<Ev>().priority(0).cloned_stream();
    center.post(Ev(0));
    assert_eq!(yields(&mut first), ["0", "1"]);
    assert_eq!(yields(&mut last), ["0", "1"]);
}

/// A stream added during a post is skipped by that post although the ring is written after it
/// joined; the skipped position is not a loss when later posts evict around it.
#[test]
fn a_skipped_post_is_not_counted_as_lost_when_the_stream_lags() {
    let center = NotificationCenter::new();
    let _early = center
        .observer::<Ev>()
        .policy(Overflow::DropOldest { capacity: 2 })
        .cloned_stream();
    let added: Arc<Mutex<Vec<ClonedStream<Ev>>>> = Arc::default();
    let (c, a) = (center.clone(), added.clone());
    let _adder = center.observer::<Ev>().priority(1).inline(move |e| {
        if e.0 == 0 {
            a.lock().unwrap().push(
                c.observer::<Ev>()
                    .policy(Overflow::DropOldest { capacity: 2 })
                    .cloned_stream(),
            );
        }
    });
    for i in 0..5 {
        center.post(Ev(i));
    }
    let mut late = added.lock().unwrap().pop().unwrap();
    // Posts 1..=4 are its own; capacity 2 keeps 3 and 4.
    assert_eq!(yields(&mut late), ["lag 2", "3", "4"]);
    let s = late.stats();
    assert_eq!((s.delivered, s.dropped, s.depth), (2, 2, 0));
}

/// Documented on `ClonedStream`: a stream that left the ring keeps what it had not taken, but
/// later posts (for the streams still on it) may evict its oldest values, reported as a lag.
/// The losses are counted like any other.
#[test]
fn a_stream_that_left_can_still_lose_its_oldest_values_to_later_posts() {
    let center = NotificationCenter::new();
    let ring = || {
        center
            .observer::<Ev>()
            .policy(Overflow::DropOldest { capacity: 2 })
            .cloned_stream()
    };
    let (mut stays, mut leaves) = (ring(), ring());
    center.post(Ev(0));
    center.post(Ev(1));
    leaves.unsubscribe();
    assert_eq!(leaves.len(), 2);
    let report = center.post(Ev(2));
    assert_eq!(
        (report.received, report.dropped),
        (1, 2),
        "0 evicted from both"
    );
    assert_eq!(yields(&mut leaves), ["lag 1", "1", "closed"]);
    assert_eq!(yields(&mut stays), ["lag 1", "1", "2"]);
    assert_eq!(leaves.stats().dropped, 1);
    assert_eq!(center.stats::<Ev>().dropped, 2);
}

// ---------------------------------------------------------------------------------------------
// Counters
// ---------------------------------------------------------------------------------------------

#[test]
fn stats_len_and_is_empty_track_depth_deliveries_and_losses() {
    let center = NotificationCenter::new();
    let mut stream = center
        .observer::<Ev>()
        .policy(Overflow::DropOldest { capacity: 4 })
        .cloned_stream();
    let stats = |s: &ClonedStream<Ev>| {
        let b = s.stats();
        assert_eq!(b.observer, s.id());
        (b.depth, b.delivered, b.dropped, b.capacity)
    };
    assert_eq!(stream.capacity(), 4);
    assert!(stream.is_empty());
    assert_eq!(stats(&stream), (0, 0, 0, 4));
    center.post(Ev(0));
    center.post(Ev(1));
    assert_eq!((stream.len(), stream.is_empty()), (2, false));
    assert_eq!(stats(&stream), (2, 0, 0, 4));
    stream.try_recv().unwrap();
    assert_eq!(stream.len(), 1);
    assert_eq!(stats(&stream), (1, 1, 0, 4));
    for i in 2..8 {
        center.post(Ev(i));
    }
    assert_eq!(stream.len(), 4);
    assert_eq!(stats(&stream), (4, 1, 3, 4));
    yields(&mut stream);
    assert!(stream.is_empty());
    assert_eq!(stats(&stream), (0, 5, 3, 4));
    assert_eq!(center.stats::<Ev>().buffers, [stream.stats()]);
    assert_eq!(
        center.cloned_stream::<Ev>().capacity(),
        herald::DEFAULT_CAPACITY
    );
    assert_eq!(
        center
            .observer::<Ev>()
            .policy(Overflow::DropOldest { capacity: 0 })
            .cloned_stream()
            .capacity(),
        1,
        "a capacity of 0 is treated as 1"
    );
}

#[test]
fn type_stats_list_each_cloned_stream_like_its_own_stats() {
    let center = NotificationCenter::new();
    let mut a = center
        .observer::<Ev>()
        .policy(Overflow::DropOldest { capacity: 8 })
        .cloned_stream();
    let b = center
        .observer::<Ev>()
        .policy(Overflow::DropNewest { capacity: 3 })
        .cloned_stream();
    for i in 0..5 {
        center.post(Ev(i));
    }
    assert_eq!(a.try_recv().unwrap(), Ev(0));
    let stats = center.stats::<Ev>();
    assert_eq!(stats.buffers.len(), 2);
    let of = |id| -> BufferStats { *stats.buffers.iter().find(|s| s.observer == id).unwrap() };
    let (sa, sb) = (of(a.id()), of(b.id()));
    assert_eq!(
        (sa.depth, sa.capacity, sa.delivered, sa.dropped),
        (4, 8, 1, 0)
    );
    assert_eq!(
        (sb.depth, sb.capacity, sb.delivered, sb.dropped),
        (3, 3, 0, 2)
    );
    assert_eq!((a.stats(), b.stats()), (sa, sb));
    assert_eq!((stats.posted, stats.delivered, stats.dropped), (5, 1, 2));
}

/// As `tests/contracts.rs` asserts for `NotificationStream`: the type's `delivered` keeps the
/// deliveries of streams that are gone.
#[test]
fn type_stats_keep_deliveries_of_cloned_streams_that_are_gone() {
    for fallback in [false, true] {
        let center = NotificationCenter::new();
        let builder = center.observer::<Ev>();
        let mut stream = if fallback {
            builder.filter(|_| true).cloned_stream()
        } else {
            builder.cloned_stream()
        };
        center.post(Ev(0));
        center.post(Ev(1));
        assert_eq!(stream.try_recv().unwrap(), Ev(0));
        assert_eq!(stream.try_recv().unwrap(), Ev(1));
        assert_eq!(center.stats::<Ev>().delivered, 2, "fallback: {fallback}");
        drop(stream);
        assert_eq!(center.stats::<Ev>().delivered, 2, "fallback: {fallback}");
    }
}

/// As `tests/contracts.rs` asserts for `NotificationStream`
/// (`stats_count_values_received_after_stream_close`): values received after `unsubscribe`
/// count as delivered as they are received, before the stream reports `Closed`.
#[test]
fn type_stats_count_values_received_after_unsubscribe() {
    // (fallback, (posted, delivered, dropped) once drained, delivered once `Closed` is seen)
    let results: Vec<(bool, (u64, u64, u64), u64)> = [false, true]
        .into_iter()
        .map(|fallback| {
            let center = NotificationCenter::new();
            let builder = center.observer::<Ev>();
            let mut stream = if fallback {
                builder.filter(|_| true).cloned_stream()
            } else {
                builder.cloned_stream()
            };
            center.post(Ev(0));
            center.post(Ev(1));
            center.post(Ev(2));
            assert_eq!(stream.try_recv().unwrap(), Ev(0));
            stream.unsubscribe();
            assert_eq!(stream.try_recv().unwrap(), Ev(1));
            assert_eq!(stream.try_recv().unwrap(), Ev(2));
            assert!(stream.is_empty());
            let drained = center.stats::<Ev>();
            assert_eq!(stream.try_recv().unwrap_err(), TryRecvError::Closed);
            let closed = center.stats::<Ev>().delivered;
            (
                fallback,
                (drained.posted, drained.delivered, drained.dropped),
                closed,
            )
        })
        .collect();
    assert_eq!(
        results,
        [(false, (3, 3, 0), 3), (true, (3, 3, 0), 3)],
        "a value received after unsubscribe must count as delivered once received"
    );
}

/// Per type, across streams of both kinds: `delivered + dropped` is every (post, stream) pair
/// once drained.
#[test]
fn type_stats_account_for_every_post_and_stream() {
    let center = NotificationCenter::new();
    let mut cloned: Vec<ClonedStream<Ev>> = vec![
        center.cloned_stream::<Ev>(),
        center
            .observer::<Ev>()
            .policy(Overflow::Latest)
            .cloned_stream(),
        center
            .observer::<Ev>()
            .policy(Overflow::DropOldest { capacity: 3 })
            .cloned_stream(),
        center
            .observer::<Ev>()
            .policy(Overflow::DropNewest { capacity: 3 })
            .cloned_stream(),
    ];
    let mut arcs = center.stream::<Ev>();
    let mut reported = 0u64;
    for i in 0..10 {
        reported += u64::from(center.post(Ev(i)).dropped);
    }
    let mut delivered = 0;
    for s in &mut cloned {
        delivered += yields(s).iter().filter(|y| !y.starts_with("lag")).count() as u64;
    }
    while arcs.try_recv().is_ok() {
        delivered += 1;
    }
    let all = center.stats::<Ev>();
    // Latest loses 9, drop-oldest 7, drop-newest 7.
    assert_eq!(reported, 9 + 7 + 7);
    assert_eq!((all.posted, all.dropped), (10, reported));
    assert_eq!(all.delivered, delivered);
    assert_eq!(all.delivered + all.dropped, 10 * 5);
}

// ---------------------------------------------------------------------------------------------
// The fallback, and the value ring, against `NotificationStream`
// ---------------------------------------------------------------------------------------------

/// What both stream kinds offer, for one script run on each.
trait Receiver {
    fn next_value(&mut self) -> Result<u32, TryRecvError>;
    fn depth(&self) -> usize;
    fn counters(&self) -> BufferStats;
    fn close(&mut self);
    fn closed(&self) -> bool;
}

/// Both stream types have the same receiving methods (one yields `Arc<Ev>`, the other `Ev`).
macro_rules! impl_receiver {
    ($($stream:ty),*) => {$(
        impl Receiver for $stream {
            fn next_value(&mut self) -> Result<u32, TryRecvError> {
                self.try_recv().map(|v| v.0)
            }
            fn depth(&self) -> usize {
                self.len()
            }
            fn counters(&self) -> BufferStats {
                self.stats()
            }
            fn close(&mut self) {
                self.unsubscribe();
            }
            fn closed(&self) -> bool {
                self.is_closed()
            }
        }
    )*};
}
impl_receiver!(NotificationStream<Ev>, ClonedStream<Ev>);

type Config = fn(ObserverBuilder<Ev>, SenderId) -> ObserverBuilder<Ev, Overflow<Ev>>;

/// One script, run on a fresh center with a stream made by `config` and `make`: posts (some
/// from `sender`), receives between them, an unsubscribe, and posts after it; with `replay`,
/// retention and two posts before the stream subscribes (with `replay_last`). Returns
/// everything observable, as lines.
fn transcript<S: Receiver>(
    config: Config,
    replay: bool,
    make: fn(ObserverBuilder<Ev, Overflow<Ev>>) -> S,
) -> (Vec<String>, BufferStats, u64) {
    let center = NotificationCenter::new();
    let sender = SenderId::new();
    let mut out = Vec::new();
    if replay {
        center.retain_last::<Ev>();
        center.post_from(sender, Ev(100));
        center.post(Ev(101));
    }
    let mut builder = center.observer::<Ev>();
    if replay {
        builder = builder.replay_last();
    }
    let mut stream = make(config(builder, sender));
    let post = |out: &mut Vec<String>, i: u32| {
        let r = if i.is_multiple_of(2) {
            center.post(Ev(i))
        } else {
            center.post_from(sender, Ev(i))
        };
        out.push(format!(
            "post {i}: received {} dropped {} full {} dead {}",
            r.received,
            r.dropped,
            r.full,
            r.is_dead()
        ));
    };
    let recv = |out: &mut Vec<String>, stream: &mut S, n: usize| {
        for _ in 0..n {
            let got = stream.next_value();
            out.push(format!("recv: {got:?}"));
            if matches!(got, Err(TryRecvError::Empty | TryRecvError::Closed)) {
                return;
            }
        }
    };
    for i in 0..6 {
        post(&mut out, i);
    }
    recv(&mut out, &mut stream, 2);
    for i in 6..16 {
        post(&mut out, i);
    }
    out.push(format!("len {}", stream.depth()));
    recv(&mut out, &mut stream, 3);
    for i in 16..20 {
        post(&mut out, i);
    }
    out.push(format!("len {}", stream.depth()));
    recv(&mut out, &mut stream, 4);
    let s = stream.counters();
    out.push(format!(
        "stream: depth {} delivered {} dropped {} capacity {}",
        s.depth, s.delivered, s.dropped, s.capacity
    ));
    stream.close();
    out.push(format!("closed {} len {}", stream.closed(), stream.depth()));
    for i in 20..22 {
        post(&mut out, i);
    }
    recv(&mut out, &mut stream, 40);
    let all = center.stats::<Ev>();
    out.push(format!(
        "type: posted {} delivered {} dropped {} dead {} observers {}",
        all.posted, all.delivered, all.dropped, all.dead, all.observers
    ));
    // Not compared: once closed, a `NotificationStream` on the shared `Arc` ring leaves out of
    // its own `stats().delivered` the values it received after closing (`Ring::stats` in
    // `src/hub/ring.rs`). The cloned stream's are checked on their own by the caller.
    (out, stream.counters(), all.dropped)
}

/// The cloned stream's transcript equals the `NotificationStream`'s, for each policy, with
/// and without replay.
fn assert_same_as_notification_stream(config: Config, ring: bool) -> Vec<String> {
    let center = NotificationCenter::new();
    let probe = config(center.observer::<Ev>(), SenderId::new()).cloned_stream();
    assert_eq!(on_value_ring(&probe), ring, "{probe:?}");
    let mut plain = Vec::new();
    for replay in [false, true] {
        let (arcs, ..) = transcript(config, replay, |b| b.stream());
        let (values, closed, type_dropped) = transcript(config, replay, |b| b.cloned_stream());
        assert_eq!(values, arcs, "replay: {replay}");
        // Once closed and drained, the cloned stream's own counters still hold every value
        // it received and every loss (one stream per center: all the type's losses).
        let received = values.iter().filter(|l| l.starts_with("recv: Ok")).count();
        assert_eq!(
            (closed.depth, closed.delivered, closed.dropped),
            (0, received as u64, type_dropped),
            "replay: {replay}: {values:#?}"
        );
        if !replay {
            plain = values;
        }
    }
    plain
}

#[test]
fn value_ring_drop_oldest_behaves_like_a_notification_stream() {
    let t = assert_same_as_notification_stream(
        |b, _| b.policy(Overflow::DropOldest { capacity: 4 }),
        true,
    );
    // Spot checks, so the comparison cannot pass on two equally wrong transcripts.
    assert!(t.contains(&"recv: Err(Lagged(9))".to_string()), "{t:#?}");
    assert!(t.contains(&"recv: Ok(19)".to_string()), "{t:#?}");
    assert!(t.contains(&"recv: Err(Closed)".to_string()), "{t:#?}");
}

#[test]
fn value_ring_latest_behaves_like_a_notification_stream() {
    let t = assert_same_as_notification_stream(|b, _| b.policy(Overflow::Latest), true);
    assert!(!t.iter().any(|l| l.contains("Lagged")), "{t:#?}");
    assert!(t.contains(&"recv: Ok(15)".to_string()), "{t:#?}");
}

#[test]
fn fallback_drop_newest_behaves_like_a_notification_stream() {
    let t = assert_same_as_notification_stream(
        |b, _| b.policy(Overflow::DropNewest { capacity: 4 }),
        false,
    );
    assert!(t.contains(&"recv: Ok(3)".to_string()), "{t:#?}");
    assert!(t.contains(&"recv: Err(Lagged(2))".to_string()), "{t:#?}");
}

#[test]
fn fallback_filtered_stream_behaves_like_a_notification_stream() {
    let t = assert_same_as_notification_stream(
        |b, _| {
            b.filter(|e| e.0 % 3 != 0)
                .policy(Overflow::DropOldest { capacity: 4 })
        },
        false,
    );
    assert!(!t.contains(&"recv: Ok(0)".to_string()), "{t:#?}");
    assert!(t.contains(&"recv: Ok(1)".to_string()), "{t:#?}");
}

#[test]
fn fallback_sender_stream_behaves_like_a_notification_stream() {
    let t = assert_same_as_notification_stream(
        |b, sender| {
            b.sender(sender)
                .policy(Overflow::DropOldest { capacity: 4 })
        },
        false,
    );
    assert_eq!(
        t[0], "post 0: received 0 dropped 0 full 0 dead true",
        "{t:#?}"
    );
    assert!(t.contains(&"recv: Ok(1)".to_string()), "{t:#?}");
}

#[test]
fn fallback_coalescing_and_backpressure_behave_like_a_notification_stream() {
    assert_same_as_notification_stream(
        |b, _| b.policy(Overflow::coalesce_by_key(4, |e: &Ev| e.0 % 3)),
        false,
    );
    let t = assert_same_as_notification_stream(
        |b, _| b.policy(Overflow::Backpressure { capacity: 4 }),
        false,
    );
    assert!(t.iter().any(|l| l.contains("full 1")), "{t:#?}");
}

#[test]
fn fallback_streams_receive_equal_values_by_every_form() {
    let center = NotificationCenter::new();
    let sender = SenderId::new();
    let mut newest = center
        .observer::<Ev>()
        .policy(Overflow::DropNewest { capacity: 4 })
        .cloned_stream();
    let mut odd = center
        .observer::<Ev>()
        .filter(|v| v.0 % 2 == 1)
        .cloned_stream();
    let mut from = center.observer::<Ev>().sender(sender).cloned_stream();
    for i in 0..6 {
        if i < 3 {
            center.post(Ev(i));
        } else {
            center.post_from(sender, Ev(i));
        }
    }
    assert_eq!(newest.len(), 4);
    assert_eq!(newest.recv_blocking().unwrap(), Ev(0));
    assert_eq!(yields(&mut newest), ["1", "2", "3", "lag 2"]);
    futures::executor::block_on(async {
        assert_eq!(odd.recv().await.unwrap(), Ev(1));
        assert_eq!(odd.next().await.unwrap().unwrap(), Ev(3));
    });
    assert_eq!(yields(&mut odd), ["5"]);
    assert_eq!(yields(&mut from), ["3", "4", "5"]);
    assert_eq!(newest.stats().dropped, 2);
    assert_eq!(center.stats::<Ev>().dropped, 2);
}

/// A type already has the most shared rings it may have (64, here `Arc` rings of 64
/// capacities): a cloned stream of a new capacity falls back, and works.
#[test]
fn with_every_ring_id_taken_a_cloned_stream_falls_back_and_works() {
    let center = NotificationCenter::new();
    let _arc_rings: Vec<NotificationStream<Ev>> = (1..=64)
        .map(|capacity| {
            center
                .observer::<Ev>()
                .policy(Overflow::DropOldest { capacity })
                .stream()
        })
        .collect();
    let mut stream = center
        .observer::<Ev>()
        .policy(Overflow::DropOldest { capacity: 100 })
        .cloned_stream();
    assert!(!on_value_ring(&stream), "{stream:?}");
    assert_eq!(center.post(Ev(1)).received, 65);
    assert_eq!(stream.try_recv().unwrap(), Ev(1));
}

// ---------------------------------------------------------------------------------------------
// Threads and tasks
// ---------------------------------------------------------------------------------------------

#[test]
fn recv_blocking_receives_posts_from_another_thread_in_order() {
    const N: u32 = 5_000;
    let center = NotificationCenter::new();
    let mut stream = center
        .observer::<Ev>()
        .policy(Overflow::DropOldest {
            capacity: N as usize,
        })
        .cloned_stream();
    let receiver = thread::spawn(move || {
        let mut got = Vec::new();
        loop {
            match stream.recv_blocking() {
                Ok(v) => got.push(v.0),
                Err(RecvError::Closed) => return got,
                Err(e) => panic!("{e:?}"),
            }
        }
    });
    for i in 0..N {
        center.post(Ev(i));
    }
    drop(center);
    assert_eq!(receiver.join().unwrap(), (0..N).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawned_task_receives_from_a_posting_thread() {
    const N: u32 = 5_000;
    let center = NotificationCenter::new();
    let mut stream = center
        .observer::<Ev>()
        .policy(Overflow::DropOldest {
            capacity: N as usize,
        })
        .cloned_stream();
    let task = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(v) = stream.next().await {
            got.push(v.unwrap().0);
        }
        got
    });
    let poster = thread::spawn(move || {
        for i in 0..N {
            center.post(Ev(i));
        }
    });
    poster.join().unwrap();
    assert_eq!(task.await.unwrap(), (0..N).collect::<Vec<_>>());
}

/// Polls until the stream parks: a receiver that has just received yields a few times first
/// (each a wake-up of its own). Returns the wake-ups so far.
fn park(stream: &mut ClonedStream<Ev>, waker: &Arc<CountingWaker>) -> usize {
    let w = futures::task::waker(waker.clone());
    let mut cx = Context::from_waker(&w);
    loop {
        let before = waker.0.load(SeqCst);
        assert!(stream.poll_recv(&mut cx).is_pending());
        if waker.0.load(SeqCst) == before {
            return before;
        }
    }
}

#[test]
fn poll_recv_registers_the_waker_and_posts_and_closing_wake_it() {
    for ring in [true, false] {
        let center = NotificationCenter::new();
        let mut stream = if ring {
            center.cloned_stream::<Ev>()
        } else {
            center.observer::<Ev>().filter(|_| true).cloned_stream()
        };
        let counter = Arc::new(CountingWaker::default());
        let waker = futures::task::waker(counter.clone());
        let mut cx = Context::from_waker(&waker);
        assert_eq!(park(&mut stream, &counter), 0, "ring: {ring}");
        center.post(Ev(1));
        assert_eq!(counter.0.load(SeqCst), 1, "ring: {ring}: a post wakes it");
        center.post(Ev(2));
        assert_eq!(counter.0.load(SeqCst), 1, "ring: {ring}: once");
        for expected in [1, 2] {
            match stream.poll_recv(&mut cx) {
                Poll::Ready(Ok(v)) => assert_eq!(v, Ev(expected)),
                other => panic!("{other:?}"),
            }
        }
        let before = park(&mut stream, &counter);
        drop(center);
        assert_eq!(
            counter.0.load(SeqCst),
            before + 1,
            "ring: {ring}: closing wakes it"
        );
        assert!(matches!(
            stream.poll_recv(&mut cx),
            Poll::Ready(Err(RecvError::Closed))
        ));
    }
}

/// A receiver on the value ring that has just received and shares the ring yields a few times
/// (waking itself) before it parks, however it found the value (its next position's stamp, or
/// a batch); the only member parks at once.
#[test]
fn a_receiver_that_caught_up_yields_a_few_times_then_waits() {
    for (streams, batch) in [(1, 1), (1, 3), (3, 1), (3, 3)] {
        let center = NotificationCenter::new();
        let mut all: Vec<_> = (0..streams).map(|_| center.cloned_stream::<Ev>()).collect();
        assert!(on_value_ring(&all[0]));
        let counter = Arc::new(CountingWaker::default());
        let waker = futures::task::waker(counter.clone());
        let mut cx = Context::from_waker(&waker);
        for i in 0..batch {
            center.post(Ev(i));
        }
        let stream = &mut all[0];
        for i in 0..batch {
            match stream.poll_recv(&mut cx) {
                Poll::Ready(Ok(v)) => assert_eq!(v, Ev(i)),
                other => panic!("{other:?}"),
            }
        }
        let before = counter.0.load(SeqCst);
        let parked = park(stream, &counter);
        if streams == 1 {
            assert_eq!(
                parked, before,
                "batch {batch}: the only member parks at once"
            );
        } else {
            assert!(
                parked > before,
                "{streams} streams, batch {batch}: yields at least once after receiving"
            );
        }
        assert!(parked - before < 64, "parks after a few yields");
        center.post(Ev(batch));
        assert_eq!(counter.0.load(SeqCst), parked + 1, "the post wakes it");
        assert_eq!(stream.try_recv(), Ok(Ev(batch)));
    }
}

#[tokio::test]
async fn a_recv_future_dropped_after_polling_loses_nothing() {
    let center = NotificationCenter::new();
    let mut stream = center.cloned_stream::<Ev>();
    {
        let mut fut = std::pin::pin!(stream.recv());
        let waker = futures::task::noop_waker();
        assert!(
            fut.as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        center.post(Ev(9));
    }
    assert_eq!(stream.try_recv().unwrap(), Ev(9));
}

#[tokio::test]
async fn stream_combinators_work() {
    let center = NotificationCenter::new();
    let stream = center.cloned_stream::<Ev>();
    for i in 0..6 {
        center.post(Ev(i));
    }
    drop(center);
    let evens: Vec<u32> = stream
        .filter_map(|r| async move { r.ok() })
        .map(|e| e.0)
        .filter(|n| std::future::ready(n % 2 == 0))
        .collect()
        .await;
    assert_eq!(evens, [0, 2, 4]);
}

/// Per receiver: the values of one poster, in order.
#[derive(Default)]
struct Tally {
    got: u64,
    lagged: u64,
    last: [Option<u32>; POSTERS as usize],
}

const POSTERS: u32 = 3;

impl Tally {
    fn value(&mut self, v: &Tracked) {
        let last = &mut self.last[v.poster as usize];
        assert!(
            *last < Some(v.seq),
            "poster {}: {} after {last:?}",
            v.poster,
            v.seq
        );
        *last = Some(v.seq);
        self.got += 1;
    }
}

/// Three posters and four receivers (two blocked in `recv_blocking` on threads, two awaiting
/// `recv` on a two-worker runtime) on a drop-oldest ring of capacity 4, so evictions race
/// claims all the time. Each receiver gets each poster's values in order and accounts for
/// every post (received or heard lost, exactly); posts' reports, the type's counter and the
/// streams' counters agree; every value made is dropped exactly once.
#[test]
fn racing_posters_and_receivers_on_a_small_ring_account_for_every_value() {
    const PER_POSTER: u32 = 20_000;
    const CAPACITY: usize = 4;
    const TOTAL: u64 = (POSTERS * PER_POSTER) as u64;
    let live = Arc::new(AtomicIsize::new(0));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let center = NotificationCenter::new();
    let subscribe = || {
        center
            .observer::<Tracked>()
            .policy(Overflow::DropOldest { capacity: CAPACITY })
            .cloned_stream()
    };
    let blocking: Vec<_> = (0..2)
        .map(|_| {
            let mut s = subscribe();
            thread::spawn(move || {
                let mut t = Tally::default();
                loop {
                    match s.recv_blocking() {
                        Ok(v) => t.value(&v),
                        Err(RecvError::Lagged(n)) => t.lagged += n,
                        Err(RecvError::Closed) => return (t, s),
                    }
                }
            })
        })
        .collect();
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let mut s = subscribe();
            rt.spawn(async move {
                let mut t = Tally::default();
                loop {
                    match s.recv().await {
                        Ok(v) => t.value(&v),
                        Err(RecvError::Lagged(n)) => t.lagged += n,
                        Err(RecvError::Closed) => return (t, s),
                    }
                }
            })
        })
        .collect();
    let posters: Vec<_> = (0..POSTERS)
        .map(|p| {
            let (center, live) = (center.clone(), live.clone());
            thread::spawn(move || {
                let mut dropped = 0u64;
                for seq in 0..PER_POSTER {
                    let r = center.post(Tracked::new(p, seq, &live));
                    assert_eq!(r.received, 4);
                    dropped += u64::from(r.dropped);
                }
                dropped
            })
        })
        .collect();
    let reported: u64 = posters.into_iter().map(|p| p.join().unwrap()).sum();
    let all = center.stats::<Tracked>();
    assert_eq!((all.posted, all.dropped), (TOTAL, reported));
    // The receivers drain what they hold, then see `Closed`.
    drop(center);
    let mut results: Vec<(Tally, ClonedStream<Tracked>)> =
        blocking.into_iter().map(|h| h.join().unwrap()).collect();
    rt.block_on(async {
        for t in tasks {
            results.push(t.await.unwrap());
        }
    });
    let mut lagged = 0;
    for (i, (t, s)) in results.iter().enumerate() {
        assert_eq!(t.got + t.lagged, TOTAL, "receiver {i}");
        let stats = s.stats();
        assert_eq!(
            (stats.delivered, stats.dropped, stats.depth),
            (t.got, t.lagged, 0),
            "receiver {i}"
        );
        assert!(s.is_closed());
        lagged += t.lagged;
    }
    assert_eq!(
        lagged, reported,
        "post reports against the receivers' losses"
    );
    // What is still alive is the ring's own copies (module docs: up to about twice the
    // capacity).
    let kept = live.load(SeqCst);
    assert!((1..=2 * CAPACITY as isize).contains(&kept), "{kept} alive");
    drop(results);
    drop(rt);
    assert_eq!(live.load(SeqCst), 0, "leaked or dropped twice");
}

// ---------------------------------------------------------------------------------------------
// Values the ring keeps, and clones that panic
// ---------------------------------------------------------------------------------------------

#[test]
fn the_ring_keeps_a_value_until_its_slot_is_overwritten_and_frees_all_on_drop() {
    let live = Arc::new(AtomicIsize::new(0));
    let center = NotificationCenter::new();
    let mut a = center
        .observer::<Tracked>()
        .policy(Overflow::DropOldest { capacity: 2 })
        .cloned_stream();
    let b = center
        .observer::<Tracked>()
        .policy(Overflow::DropOldest { capacity: 2 })
        .cloned_stream();
    center.post(Tracked::new(0, 0, &live));
    assert_eq!(
        live.load(SeqCst),
        1,
        "the ring's copy (the posted one is gone)"
    );
    drop(a.try_recv().unwrap());
    assert_eq!(live.load(SeqCst), 1, "kept after it is received");
    for seq in 1..20 {
        center.post(Tracked::new(0, seq, &live));
        while let Ok(v) = a.try_recv() {
            assert_eq!(v.seq, seq);
        }
    }
    let kept = live.load(SeqCst);
    assert!((2..=4).contains(&kept), "{kept}: a bounded number of slots");
    // A stream that left with values not taken, the center, then the streams.
    drop(b);
    drop(center);
    assert!(live.load(SeqCst) > 0, "a still holds the ring");
    drop(a);
    assert_eq!(live.load(SeqCst), 0);
}

#[test]
fn a_clone_that_panics_on_receive_panics_the_receiver_and_the_stream_stays_usable() {
    let fuse = Arc::new(AtomicU32::new(DISARMED));
    let center = NotificationCenter::new();
    let mut stream = center
        .observer::<Fragile>()
        .policy(Overflow::DropOldest { capacity: 8 })
        .cloned_stream();
    assert!(on_value_ring(&stream));
    for i in 0..4 {
        center.post(Fragile(i, fuse.clone()));
    }
    // Armed after posting: the ring's own clone was made; receiving 1 and 3 panics.
    assert_eq!(stream.try_recv().unwrap().0, 0);
    fuse.store(1, SeqCst);
    let caught = catch_unwind(AssertUnwindSafe(|| stream.try_recv()));
    assert!(caught.is_err(), "try_recv panics with the clone");
    assert_eq!(stream.try_recv().unwrap().0, 2, "usable, past the value");
    fuse.store(3, SeqCst);
    let caught = catch_unwind(AssertUnwindSafe(|| stream.recv_blocking()));
    assert!(caught.is_err(), "recv_blocking panics with the clone");
    fuse.store(DISARMED, SeqCst);
    center.post(Fragile(4, fuse.clone()));
    assert_eq!(stream.recv_blocking().unwrap().0, 4);
    assert_eq!(stream.try_recv().unwrap_err(), TryRecvError::Empty);
    let s = stream.stats();
    assert_eq!(s.depth, 0);
    assert_eq!(
        s.delivered + s.dropped,
        5,
        "each value accounted for once: {s:?}"
    );
    // Posts after the panics still arrive, on every path.
    for i in 5..15 {
        center.post(Fragile(i, fuse.clone()));
    }
    let rest: Vec<String> = std::iter::from_fn(|| match stream.try_recv() {
        Ok(v) => Some(v.0.to_string()),
        Err(TryRecvError::Lagged(n)) => Some(format!("lag {n}")),
        Err(_) => None,
    })
    .collect();
    let mut expected = vec!["lag 2".to_string()];
    expected.extend(seqs(7..=14));
    assert_eq!(rest, expected);
}

/// The same on the fallback, where the value is shared by two streams (so receiving clones).
#[test]
fn a_clone_that_panics_on_receive_in_a_fallback_stream_leaves_it_usable() {
    let fuse = Arc::new(AtomicU32::new(DISARMED));
    let center = NotificationCenter::new();
    let mut a = center
        .observer::<Fragile>()
        .filter(|_| true)
        .cloned_stream();
    let _b = center
        .observer::<Fragile>()
        .filter(|_| true)
        .cloned_stream();
    assert!(!on_value_ring(&a));
    for i in 0..3 {
        center.post(Fragile(i, fuse.clone()));
    }
    fuse.store(0, SeqCst);
    assert!(catch_unwind(AssertUnwindSafe(|| a.try_recv())).is_err());
    fuse.store(DISARMED, SeqCst);
    assert_eq!(a.try_recv().unwrap().0, 1);
    assert_eq!(a.try_recv().unwrap().0, 2);
}

/// The post's own clone into the ring panics: the post isolates it like an observer's
/// panic (the default policy), no stream receives that value, and later posts arrive.
#[test]
fn a_clone_that_panics_while_posting_is_isolated() {
    let fuse = Arc::new(AtomicU32::new(7));
    let center = NotificationCenter::new();
    let mut a = center.cloned_stream::<Fragile>();
    let mut b = center.cloned_stream::<Fragile>();
    let report = center.post(Fragile(7, fuse.clone()));
    assert_eq!((report.received, report.panicked), (0, 1));
    let report = center.post(Fragile(8, fuse.clone()));
    assert_eq!((report.received, report.panicked), (2, 0));
    assert_eq!(a.try_recv().unwrap().0, 8);
    assert_eq!(b.try_recv().unwrap().0, 8);
    assert!(a.try_recv().unwrap_err().is_empty());
    assert_eq!(center.stats::<Fragile>().panicked, 1);
}

/// Blocks in `clone` for the value whose number is in `blocks` (once), between two waits on
/// `barrier`: the test runs posts while a receiver is inside the clone.
#[derive(Debug)]
struct Gated(u32, Arc<Gate>);
impl Notification for Gated {}

#[derive(Debug)]
struct Gate {
    blocks: AtomicU32,
    barrier: Barrier,
}

impl Clone for Gated {
    fn clone(&self) -> Self {
        if self
            .1
            .blocks
            .compare_exchange(self.0, DISARMED, SeqCst, SeqCst)
            .is_ok()
        {
            self.1.barrier.wait(); // inside the clone
            self.1.barrier.wait(); // released
        }
        Gated(self.0, self.1.clone())
    }
}

/// A receiver is inside the clone of 0 while 1..=7 are posted to its drop-oldest ring of
/// capacity 4 (not so many that a post must overwrite the slot being cloned, where the poster
/// waits, as documented). Drop-oldest, exactly: once 0 is received the stream holds the
/// newest 4 (4..=7), posts 5, 6 and 7 each reported the loss of one older value (1, 2, 3:
/// the receiver was not taking those), and the receiver hears `Lagged(3)`.
#[test]
fn a_receiver_inside_a_slow_clone_still_keeps_only_the_newest_values() {
    let gate = Arc::new(Gate {
        blocks: AtomicU32::new(DISARMED),
        barrier: Barrier::new(2),
    });
    let center = NotificationCenter::new();
    let mut stream = center
        .observer::<Gated>()
        .policy(Overflow::DropOldest { capacity: 4 })
        .cloned_stream();
    center.post(Gated(0, gate.clone()));
    gate.blocks.store(0, SeqCst);
    let receiver = thread::spawn(move || {
        let v = stream.try_recv().unwrap().0;
        (v, stream)
    });
    gate.barrier.wait(); // the receiver is cloning 0
    let dropped: Vec<u32> = (1..=7)
        .map(|i| center.post(Gated(i, gate.clone())).dropped)
        .collect();
    gate.barrier.wait();
    let (v, mut stream) = receiver.join().unwrap();
    assert_eq!(v, 0);
    let held = stream.len();
    let mut rest = Vec::new();
    loop {
        match stream.try_recv() {
            Ok(v) => rest.push(v.0.to_string()),
            Err(TryRecvError::Lagged(n)) => rest.push(format!("lag {n}")),
            Err(_) => break,
        }
    }
    assert_eq!(
        (held, dropped.as_slice(), rest.as_slice()),
        (
            4,
            &[0, 0, 0, 0, 1, 1, 1][..],
            &["lag 3", "4", "5", "6", "7"].map(String::from)[..]
        ),
        "(len, reported drops, what it yields)"
    );
    assert_eq!(center.stats::<Gated>().dropped, 3);
}

/// Under `PanicPolicy::Propagate`, a clone into the ring that panics leaves `post`; the ring
/// is untouched and the next post reaches every stream.
#[test]
fn a_clone_that_panics_while_posting_propagates_under_propagate() {
    let fuse = Arc::new(AtomicU32::new(7));
    let center = NotificationCenter::builder()
        .panic_policy(PanicPolicy::Propagate)
        .build();
    let mut a = center.cloned_stream::<Fragile>();
    let mut b = center.cloned_stream::<Fragile>();
    let posting = catch_unwind(AssertUnwindSafe(|| center.post(Fragile(7, fuse.clone()))));
    assert!(posting.is_err());
    assert_eq!(center.post(Fragile(8, fuse.clone())).received, 2);
    assert_eq!(a.try_recv().unwrap().0, 8);
    assert_eq!(b.try_recv().unwrap().0, 8);
    assert!(a.is_empty() && b.is_empty());
}

/// A `NotificationStream` on the shared `Arc` ring keeps counting its own receives after it
/// unsubscribes (they used to freeze at the moment it left), like a cloned stream.
#[test]
fn an_arc_ring_stream_counts_its_own_receives_after_unsubscribe() {
    #[derive(Debug, Clone)]
    struct Plain(u32);
    impl Notification for Plain {}
    let center = NotificationCenter::new();
    let mut s = center.stream::<Plain>();
    center.post(Plain(0));
    center.post(Plain(1));
    assert_eq!(s.try_recv().unwrap().0, 0);
    s.unsubscribe();
    assert_eq!(s.try_recv().unwrap().0, 1);
    assert_eq!(s.stats().delivered, 2);
    assert_eq!(center.stats::<Plain>().delivered, 2);

    center.retain_last::<Plain>();
    center.post(Plain(2));
    let mut late = center.observer::<Plain>().replay_last().stream();
    assert_eq!(late.try_recv().unwrap().0, 2);
    late.unsubscribe();
    assert_eq!(
        late.stats().delivered,
        1,
        "the replayed value stays counted"
    );
}
