//! The shared ring's parking protocol (`src/hub/ring.rs`): a receiver parks under the ring's
//! lock, and posts, evictions and leaving the ring are seen under the same lock. These tests
//! pin down what that must keep: no lost wake-up (against a post, a burst, an eviction or the
//! stream leaving), one wake-up per park, and exact counts for a receiver woken after it
//! lagged.
//!
//! A lost wake-up shows as a receiver that never finishes; the timeouts below only turn such a
//! hang into a failure, and are generous (minutes), not a performance budget.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::task::{Context, Poll};
use std::thread;
use std::time::Duration;

use futures::task::ArcWake;
use herald::{Notification, NotificationCenter, Overflow, RecvError, TryRecvError};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Ev(u32);
impl Notification for Ev {}

/// A waker that counts its wake-ups.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl ArcWake for CountingWaker {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.0.fetch_add(1, SeqCst);
    }
}

/// Polls until the stream parks: a receiver that has not received yet parks on its first
/// empty poll; one that has yields a few times first (each a wake-up of its own).
fn park(stream: &mut herald::NotificationStream<Ev>, waker: &Arc<CountingWaker>) -> usize {
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

/// Sixteen streams on one ring, on a two-worker runtime, fed in bursts of varying size; the
/// poster waits for every stream to drain a burst, so they park between bursts and every burst
/// must wake them. Each stream gets every value once, in order, and its counters agree.
#[test]
fn bursts_wake_every_parked_stream_and_lose_nothing() {
    const STREAMS: usize = 16;
    const BURSTS: u32 = 300;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let center = NotificationCenter::new();
    let progress: Arc<Vec<AtomicUsize>> =
        Arc::new((0..STREAMS).map(|_| AtomicUsize::new(0)).collect());
    // Burst sizes 1..=37, a fixed pseudo-random sequence (no loss: the capacity holds any burst).
    let sizes: Vec<u32> = (0..BURSTS).map(|b| 1 + (b * 7919) % 37).collect();
    let total: u32 = sizes.iter().sum();
    let tasks: Vec<_> = (0..STREAMS)
        .map(|s| {
            let mut stream = center
                .observer::<Ev>()
                .policy(Overflow::DropOldest { capacity: 64 })
                .stream();
            let progress = progress.clone();
            rt.spawn(async move {
                for expected in 0..total {
                    let v = stream
                        .recv()
                        .await
                        .expect("no loss: the capacity holds a burst");
                    assert_eq!(v.0, expected, "stream {s}");
                    progress[s].store(expected as usize + 1, SeqCst);
                }
                let stats = stream.stats();
                assert_eq!(
                    (stats.delivered, stats.dropped, stats.depth),
                    (total as u64, 0, 0)
                );
            })
        })
        .collect();
    let mut sent = 0u32;
    for size in sizes {
        for _ in 0..size {
            let report = center.post(Ev(sent));
            assert_eq!((report.received as usize, report.dropped), (STREAMS, 0));
            sent += 1;
        }
        // Wait for every stream to drain the burst (they park again afterwards).
        let waiting = std::time::Instant::now();
        while progress.iter().any(|p| p.load(SeqCst) < sent as usize) {
            assert!(
                waiting.elapsed() < Duration::from_secs(300),
                "a parked stream was never woken"
            );
            thread::yield_now();
        }
    }
    rt.block_on(async {
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(300), t)
                .await
                .expect("a receiver never finished")
                .unwrap();
        }
    });
    assert_eq!(center.stats::<Ev>().dropped, 0);
}

/// A receiver parked in `recv().await` while its stream leaves the ring (the center dropped on
/// another thread), over and over: it is always woken and sees `Closed`.
#[test]
fn a_parked_receiver_is_woken_when_its_stream_leaves() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .build()
        .unwrap();
    for round in 0..300 {
        let center = NotificationCenter::new();
        let mut stream = center.stream::<Ev>();
        let task = rt.spawn(async move { stream.recv().await });
        // Sometimes before the receiver parks, sometimes after.
        if round % 2 == 0 {
            thread::yield_now();
        }
        drop(center);
        let got = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(120), task)
                .await
                .expect("the receiver was never woken")
                .unwrap()
        });
        assert_eq!(got.unwrap_err(), RecvError::Closed, "round {round}");
    }
}

/// A parked receiver is woken once by the first post, not once per post, and after the posts
/// evicted most of what it missed it hears the exact loss, then the newest values; the posts'
/// reports, its counters and the type's counters agree.
#[test]
fn a_parked_receiver_that_lagged_hears_the_exact_loss() {
    let center = NotificationCenter::new();
    let mut stream = center
        .observer::<Ev>()
        .policy(Overflow::DropOldest { capacity: 4 })
        .stream();
    let waker = Arc::new(CountingWaker::default());
    let before = park(&mut stream, &waker);
    let reported: u32 = (0..10).map(|i| center.post(Ev(i)).dropped).sum();
    assert_eq!(waker.0.load(SeqCst), before + 1, "woken once for ten posts");
    assert_eq!(reported, 6);
    assert_eq!(stream.try_recv().unwrap_err(), TryRecvError::Lagged(6));
    let rest: Vec<u32> = std::iter::from_fn(|| stream.try_recv().ok().map(|v| v.0)).collect();
    assert_eq!(rest, [6, 7, 8, 9]);
    let stats = stream.stats();
    assert_eq!((stats.delivered, stats.dropped, stats.depth), (4, 6, 0));
    assert_eq!(center.stats::<Ev>().dropped, 6);
}

/// `Latest` on the shared ring: a parked receiver woken after several posts gets only the
/// newest, silently, and the losses are still counted.
#[test]
fn a_parked_latest_receiver_gets_only_the_newest() {
    let center = NotificationCenter::new();
    let mut stream = center.observer::<Ev>().policy(Overflow::Latest).stream();
    let waker = Arc::new(CountingWaker::default());
    let before = park(&mut stream, &waker);
    for i in 0..5 {
        center.post(Ev(i));
    }
    assert_eq!(waker.0.load(SeqCst), before + 1);
    assert_eq!(*stream.try_recv().unwrap(), Ev(4));
    assert!(stream.try_recv().unwrap_err().is_empty());
    assert_eq!(stream.stats().dropped, 4);
    // Parks again, and the next post wakes it again.
    let before = park(&mut stream, &waker);
    center.post(Ev(5));
    assert_eq!(waker.0.load(SeqCst), before + 1);
    let w = futures::task::waker(waker.clone());
    assert!(matches!(
        stream.poll_recv(&mut Context::from_waker(&w)),
        Poll::Ready(Ok(v)) if *v == Ev(5)
    ));
}
