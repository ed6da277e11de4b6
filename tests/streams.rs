//! `NotificationStream`: every way to receive (`recv().await`, `try_recv`, `recv_blocking`,
//! `futures::Stream`), waking across threads, cancel safety, and one shared allocation per
//! posted value.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread;
use std::time::Duration;

use futures::StreamExt;
use futures::task::ArcWake;
use herald::{
    Lagged, Notification, NotificationCenter, NotificationStream, Overflow, RecvError, TryRecvError,
};

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

/// Runs `f` on a thread after a short pause (so the receiver is already waiting).
fn later(f: impl FnOnce() + Send + 'static) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        f();
    })
}

// ---------------------------------------------------------------------------------------------
// The four forms
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn recv_await_receives_in_post_order() {
    let center = NotificationCenter::new();
    let mut stream = center.stream::<Ev>();
    for i in 0..5 {
        center.post(Ev(i));
    }
    for i in 0..5 {
        assert_eq!(*stream.recv().await.unwrap(), Ev(i));
    }
    assert!(stream.is_empty());
}

#[test]
fn try_recv_reports_empty_then_value_then_closed() {
    let center = NotificationCenter::new();
    let mut stream = center.stream::<Ev>();
    assert_eq!(stream.try_recv().unwrap_err(), TryRecvError::Empty);
    center.post(Ev(1));
    assert_eq!(*stream.try_recv().unwrap(), Ev(1));
    assert_eq!(stream.try_recv().unwrap_err(), TryRecvError::Empty);
    drop(center);
    assert_eq!(stream.try_recv().unwrap_err(), TryRecvError::Closed);
}

#[test]
fn recv_blocking_waits_for_a_post_from_another_thread() {
    let center = NotificationCenter::new();
    let mut stream = center.stream::<Ev>();
    let poster = {
        let center = center.clone();
        later(move || {
            center.post(Ev(7));
        })
    };
    assert_eq!(*stream.recv_blocking().unwrap(), Ev(7));
    poster.join().unwrap();
}

#[test]
fn recv_blocking_is_woken_when_the_center_goes_away() {
    let center = NotificationCenter::new();
    let mut stream = center.stream::<Ev>();
    let dropper = later(move || drop(center));
    assert_eq!(stream.recv_blocking().unwrap_err(), RecvError::Closed);
    dropper.join().unwrap();
}

#[test]
fn recv_blocking_receives_a_long_sequence_from_another_thread() {
    const N: u32 = 20_000;
    let center = NotificationCenter::new();
    let mut stream = center
        .observer::<Ev>()
        .policy(Overflow::DropOldest {
            capacity: N as usize,
        })
        .stream();
    let poster = {
        let center = center.clone();
        thread::spawn(move || {
            for i in 0..N {
                center.post(Ev(i));
            }
        })
    };
    for i in 0..N {
        assert_eq!(stream.recv_blocking().unwrap().0, i);
    }
    poster.join().unwrap();
}

#[test]
fn recv_blocking_reports_lag() {
    let center = NotificationCenter::new();
    let mut stream = center
        .observer::<Ev>()
        .policy(Overflow::DropOldest { capacity: 1 })
        .stream();
    center.post(Ev(0));
    center.post(Ev(1));
    assert_eq!(stream.recv_blocking().unwrap_err(), RecvError::Lagged(1));
    assert_eq!(*stream.recv_blocking().unwrap(), Ev(1));
}

#[tokio::test]
async fn stream_next_yields_values_lag_then_ends_when_closed() {
    let center = NotificationCenter::new();
    let mut stream = center
        .observer::<Ev>()
        .policy(Overflow::DropOldest { capacity: 2 })
        .stream();
    for i in 0..4 {
        center.post(Ev(i));
    }
    assert_eq!(stream.next().await.unwrap().unwrap_err(), Lagged(2));
    assert_eq!(*stream.next().await.unwrap().unwrap(), Ev(2));
    assert_eq!(*stream.next().await.unwrap().unwrap(), Ev(3));
    center.post(Ev(4));
    drop(center);
    assert_eq!(*stream.next().await.unwrap().unwrap(), Ev(4));
    assert!(stream.next().await.is_none(), "the stream ends once closed");
}

#[tokio::test]
async fn stream_combinators_work() {
    let center = NotificationCenter::new();
    let stream = center.stream::<Ev>();
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

#[tokio::test]
async fn recv_reports_lag_and_stays_subscribed() {
    let center = NotificationCenter::new();
    let mut stream = center
        .observer::<Ev>()
        .policy(Overflow::DropOldest { capacity: 1 })
        .stream();
    center.post(Ev(0));
    center.post(Ev(1));
    center.post(Ev(2));
    assert_eq!(stream.recv().await.unwrap_err(), RecvError::Lagged(2));
    assert_eq!(*stream.recv().await.unwrap(), Ev(2));
    center.post(Ev(3));
    assert_eq!(*stream.recv().await.unwrap(), Ev(3));
}

#[test]
fn len_capacity_and_is_empty() {
    let center = NotificationCenter::new();
    let mut stream = center
        .observer::<Ev>()
        .policy(Overflow::DropOldest { capacity: 4 })
        .stream();
    assert_eq!(stream.capacity(), 4);
    assert!(stream.is_empty());
    center.post(Ev(0));
    center.post(Ev(1));
    assert_eq!(stream.len(), 2);
    stream.try_recv().unwrap();
    assert_eq!(stream.len(), 1);
    assert_eq!(center.stream::<Ev>().capacity(), herald::DEFAULT_CAPACITY);
    assert_eq!(
        center
            .observer::<Ev>()
            .policy(Overflow::Latest)
            .stream()
            .capacity(),
        1
    );
    assert_eq!(
        center
            .observer::<Ev>()
            .policy(Overflow::DropNewest { capacity: 0 })
            .stream()
            .capacity(),
        1,
        "a capacity of 0 is treated as 1"
    );
}

#[test]
fn dropping_the_stream_unsubscribes() {
    let center = NotificationCenter::new();
    let stream = center.stream::<Ev>();
    assert_eq!(center.stats::<Ev>().observers, 1);
    drop(stream);
    assert_eq!(center.stats::<Ev>().observers, 0);
    assert!(center.post(Ev(0)).is_dead());
}

#[test]
fn close_unsubscribes_and_keeps_what_was_buffered() {
    let center = NotificationCenter::new();
    let mut stream = center.stream::<Ev>();
    center.post(Ev(1));
    assert!(!stream.is_closed());
    stream.unsubscribe();
    assert!(stream.is_closed());
    assert!(center.post(Ev(2)).is_dead());
    assert_eq!(*stream.try_recv().unwrap(), Ev(1));
    assert_eq!(stream.try_recv().unwrap_err(), TryRecvError::Closed);
}

// ---------------------------------------------------------------------------------------------
// Waking
// ---------------------------------------------------------------------------------------------

#[test]
fn poll_recv_registers_the_waker_and_a_post_wakes_it() {
    let center = NotificationCenter::new();
    let mut stream = center.stream::<Ev>();
    let counter = Arc::new(CountingWaker::default());
    let waker = futures::task::waker(counter.clone());
    let mut cx = Context::from_waker(&waker);

    assert!(stream.poll_recv(&mut cx).is_pending());
    assert_eq!(counter.0.load(SeqCst), 0);
    center.post(Ev(1));
    assert_eq!(
        counter.0.load(SeqCst),
        1,
        "a post wakes the waiting receiver"
    );
    match stream.poll_recv(&mut cx) {
        Poll::Ready(Ok(v)) => assert_eq!(*v, Ev(1)),
        other => panic!("{other:?}"),
    }
    // Not waiting any more: further posts need not wake it.
    center.post(Ev(2));
    assert!(counter.0.load(SeqCst) <= 2);
}

/// A receiver that has just caught up and shares its ring yields a few times (waking itself)
/// before it parks: then a poll registers its waker, and only a post wakes it. The only stream
/// of a ring parks at once, as a receiver of tokio's broadcast does (see `YIELDS` and
/// `YIELDS_ALONE` in `src/hub/ring.rs`).
#[test]
fn a_receiver_that_caught_up_yields_a_few_times_then_waits() {
    for alone in [true, false] {
        let center = NotificationCenter::new();
        let mut stream = center.stream::<Ev>();
        let _other = (!alone).then(|| center.stream::<Ev>());
        let counter = Arc::new(CountingWaker::default());
        let waker = futures::task::waker(counter.clone());
        let mut cx = Context::from_waker(&waker);
        center.post(Ev(1));
        assert!(stream.poll_recv(&mut cx).is_ready());
        let mut polls = 0;
        loop {
            let before = counter.0.load(SeqCst);
            assert!(stream.poll_recv(&mut cx).is_pending());
            polls += 1;
            if counter.0.load(SeqCst) == before {
                break; // parked: this poll did not wake itself
            }
            assert!(polls < 64, "never parks");
        }
        if alone {
            assert_eq!(polls, 1, "the only stream parks at once");
        } else {
            assert!(polls > 1, "yields at least once after receiving");
        }
        let parked = counter.0.load(SeqCst);
        assert!(stream.poll_recv(&mut cx).is_pending());
        assert_eq!(counter.0.load(SeqCst), parked, "no wake without a post");
        center.post(Ev(2));
        assert_eq!(counter.0.load(SeqCst), parked + 1, "the post wakes it");
        assert_eq!(*stream.try_recv().unwrap(), Ev(2));
    }
}

#[test]
fn poll_recv_is_woken_when_closed() {
    let center = NotificationCenter::new();
    let mut stream = center.stream::<Ev>();
    let counter = Arc::new(CountingWaker::default());
    let waker = futures::task::waker(counter.clone());
    let mut cx = Context::from_waker(&waker);
    assert!(stream.poll_recv(&mut cx).is_pending());
    drop(center);
    assert_eq!(counter.0.load(SeqCst), 1);
    assert!(matches!(
        stream.poll_recv(&mut cx),
        Poll::Ready(Err(RecvError::Closed))
    ));
}

#[test]
fn the_latest_waker_is_the_one_woken() {
    let center = NotificationCenter::new();
    let mut stream = center.stream::<Ev>();
    let first = Arc::new(CountingWaker::default());
    let second = Arc::new(CountingWaker::default());
    let w1 = futures::task::waker(first.clone());
    let w2 = futures::task::waker(second.clone());
    assert!(stream.poll_recv(&mut Context::from_waker(&w1)).is_pending());
    assert!(stream.poll_recv(&mut Context::from_waker(&w2)).is_pending());
    center.post(Ev(0));
    assert_eq!(
        second.0.load(SeqCst),
        1,
        "the task that polled last is woken"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recv_is_woken_by_a_post_from_another_thread() {
    let center = NotificationCenter::new();
    let mut stream = center.stream::<Ev>();
    let poster = {
        let center = center.clone();
        later(move || {
            center.post(Ev(3));
        })
    };
    let got = tokio::time::timeout(Duration::from_secs(5), stream.recv())
        .await
        .expect("recv was not woken by a post from another thread");
    assert_eq!(*got.unwrap(), Ev(3));
    poster.join().unwrap();
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
        .stream();
    let receiver = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(item) = stream.next().await {
            got.push(item.expect("no lag with this capacity").0);
            if got.len() == N as usize {
                break;
            }
        }
        got
    });
    let poster = {
        let center = center.clone();
        thread::spawn(move || {
            for i in 0..N {
                center.post(Ev(i));
            }
        })
    };
    poster.join().unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), receiver)
        .await
        .expect("the receiving task stalled")
        .unwrap();
    assert_eq!(got, (0..N).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------------------------
// Cancel safety
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn recv_is_cancel_safe() {
    let center = NotificationCenter::new();
    let mut stream = center.stream::<Ev>();
    tokio::select! {
        _ = stream.recv() => panic!("nothing was posted"),
        _ = tokio::time::sleep(Duration::from_millis(10)) => {}
    }
    center.post(Ev(1));
    assert_eq!(*stream.recv().await.unwrap(), Ev(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recv_cancelled_over_and_over_loses_nothing() {
    const N: u32 = 2_000;
    let center = NotificationCenter::new();
    let mut stream = center
        .observer::<Ev>()
        .policy(Overflow::DropOldest {
            capacity: N as usize,
        })
        .stream();
    let poster = {
        let center = center.clone();
        thread::spawn(move || {
            for i in 0..N {
                center.post(Ev(i));
                if i % 64 == 0 {
                    thread::sleep(Duration::from_micros(200));
                }
            }
        })
    };
    let mut got = Vec::new();
    let mut cancelled = 0;
    while got.len() < N as usize {
        tokio::select! {
            biased;
            _ = tokio::task::yield_now() => cancelled += 1,
            r = stream.recv() => got.push(r.unwrap().0),
        }
    }
    poster.join().unwrap();
    assert_eq!(got, (0..N).collect::<Vec<_>>(), "lost or duplicated values");
    assert!(cancelled > 0);
}

#[tokio::test]
async fn a_recv_future_dropped_after_polling_loses_nothing() {
    // Poll once (registers the waker), post, then drop the future without polling again:
    // the value must still be there.
    let center = NotificationCenter::new();
    let mut stream = center.stream::<Ev>();
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
    assert_eq!(*stream.try_recv().unwrap(), Ev(9));
}

// ---------------------------------------------------------------------------------------------
// One shared allocation per posted value
// ---------------------------------------------------------------------------------------------

#[test]
fn one_arc_per_post_is_shared_by_every_stream() {
    let center = NotificationCenter::new();
    let mut a = center.stream::<Ev>();
    let mut b = center.observer::<Ev>().policy(Overflow::Latest).stream();
    let mut c = center
        .observer::<Ev>()
        .policy(Overflow::coalesce_by_key(4, |e: &Ev| e.0))
        .stream();
    center.post(Ev(1));
    let (va, vb, vc) = (
        a.try_recv().unwrap(),
        b.try_recv().unwrap(),
        c.try_recv().unwrap(),
    );
    assert!(Arc::ptr_eq(&va, &vb));
    assert!(Arc::ptr_eq(&va, &vc));
    assert_eq!(
        Arc::strong_count(&va),
        3,
        "no copy is kept anywhere else once received"
    );
}

/// Inline observers run first and borrow the value; the streams after them share one `Arc`,
/// made once the observers are done (the ring makes it: `ring.rs`, "Moved values").
#[test]
fn streams_after_inline_observers_share_one_allocation() {
    let center = NotificationCenter::new();
    let seen: Arc<Mutex<Vec<Ev>>> = Arc::default();
    let s = seen.clone();
    let _inline = center.observe(move |e: &Ev| s.lock().unwrap().push(e.clone()));
    let mut stream = center.stream::<Ev>();
    let mut other = center.stream::<Ev>();
    assert_eq!(center.post(Ev(1)).received, 3);
    let (value, same) = (stream.try_recv().unwrap(), other.try_recv().unwrap());
    assert!(Arc::ptr_eq(&value, &same));
    assert_eq!(Arc::strong_count(&value), 2, "no copy kept anywhere else");
    assert_eq!(*seen.lock().unwrap(), [Ev(1)]);
}

/// A value that counts its drops and owns heap memory (a double drop or a use after free of
/// a moved value shows as a wrong count, or under Miri).
#[derive(Debug)]
struct Counted(String, Arc<AtomicUsize>);
impl Notification for Counted {}

impl Drop for Counted {
    fn drop(&mut self) {
        self.1.fetch_add(1, SeqCst);
    }
}

fn counted_texts(stream: &mut NotificationStream<Counted>) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        match stream.try_recv() {
            Ok(v) => out.push(v.0.clone()),
            Err(TryRecvError::Lagged(n)) => out.push(format!("lag {n}")),
            Err(TryRecvError::Closed) => {
                out.push("closed".into());
                return out;
            }
            Err(TryRecvError::Empty) => return out,
        }
    }
}

/// A stream alone on its ring, the only subscriber a post hands its value to: the ring moves
/// the value in and the receiver makes the `Arc` (no allocation by the poster, none freed
/// across threads). What the user sees does not change: order, exact lags, inline observers
/// before it, and every value dropped exactly once, whether received, lost, or left behind.
#[test]
fn a_lone_stream_receives_each_value_once_and_each_is_dropped_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    let center = NotificationCenter::new();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s = seen.clone();
    let _inline = center.observe(move |e: &Counted| s.lock().unwrap().push(e.0.clone()));
    let mut stream = center
        .observer::<Counted>()
        .policy(Overflow::DropOldest { capacity: 3 })
        .stream();
    let post = |i: u32| center.post(Counted(format!("v{i}"), drops.clone()));
    let mut dropped = 0;
    for i in 0..8 {
        let report = post(i);
        assert_eq!(report.received, 2);
        dropped += report.dropped;
    }
    assert_eq!(dropped, 5);
    assert_eq!(drops.load(SeqCst), 5, "lost values are dropped by the post");
    assert_eq!(counted_texts(&mut stream), ["lag 5", "v5", "v6", "v7"]);
    assert_eq!(drops.load(SeqCst), 8);
    assert_eq!(seen.lock().unwrap().len(), 8);
    // Around the ring's slots many times, one at a time.
    for i in 8..100 {
        post(i);
        assert_eq!(stream.try_recv().unwrap().0, format!("v{i}"));
    }
    assert_eq!(drops.load(SeqCst), 100);
    // Left behind: kept until received, then the stream closes after them.
    post(100);
    post(101);
    drop(center);
    assert_eq!(counted_texts(&mut stream), ["v100", "v101", "closed"]);
    assert_eq!(drops.load(SeqCst), 102);
    let stats = stream.stats();
    assert_eq!((stats.delivered, stats.dropped), (97, 5));
}

/// Which path a lone stream's post takes: the value moved into the ring (the receiver's `Arc`
/// is its own allocation, not the place the inline observer saw), or, once retention is on
/// (the post keeps the value for `replay_last`), one `Arc` shared by everything.
#[test]
fn a_lone_stream_gets_its_value_moved_unless_the_post_keeps_an_arc() {
    let center = NotificationCenter::new();
    let seen: Arc<Mutex<Vec<usize>>> = Arc::default();
    let s = seen.clone();
    let _inline = center.observe(move |e: &Ev| s.lock().unwrap().push(e as *const Ev as usize));
    let mut stream = center.stream::<Ev>();
    center.post(Ev(1));
    let moved = stream.try_recv().unwrap();
    assert_ne!(seen.lock().unwrap()[0], Arc::as_ptr(&moved) as usize);
    center.retain_last::<Ev>();
    center.post(Ev(2));
    let shared = stream.try_recv().unwrap();
    assert_eq!(seen.lock().unwrap()[1], Arc::as_ptr(&shared) as usize);
    assert_eq!(
        Arc::strong_count(&shared),
        2,
        "the stream's and the retained one"
    );
}

/// A second stream on the ring: from its first post on, both share one `Arc` per post; once
/// it leaves, the first is alone again. Nothing is lost or seen twice across the switches.
#[test]
fn a_second_stream_on_the_ring_shares_each_value_and_the_first_keeps_its_order() {
    let drops = Arc::new(AtomicUsize::new(0));
    let center = NotificationCenter::new();
    let post = |i: u32| center.post(Counted(format!("v{i}"), drops.clone()));
    let mut first = center.stream::<Counted>();
    post(0);
    post(1);
    let mut second = center.stream::<Counted>();
    assert_eq!(post(2).received, 2);
    post(3);
    let a = first.try_recv().unwrap();
    assert_eq!(a.0, "v0");
    let mut shared = Vec::new();
    for _ in 0..2 {
        shared.push(second.try_recv().unwrap());
    }
    assert_eq!(counted_texts(&mut first), ["v1", "v2", "v3"]);
    drop(second);
    post(4);
    assert_eq!(counted_texts(&mut first), ["v4"]);
    assert_eq!(shared[0].0, "v2");
    assert_eq!(
        drops.load(SeqCst),
        2,
        "v1 and v4: v0 is held by `a`, v2 and v3 by `shared`"
    );
    drop((a, shared));
    assert_eq!(drops.load(SeqCst), 5);
}

/// The streams of one ring end the subscriber list, so the post hands the ring its value
/// (no reference of the post's own is dropped after). The first of them is unsubscribed by an
/// inline observer ahead of it during a post: the next stream of the ring takes the value
/// and writes the ring, so the other streams get that post, and each value is dropped once.
#[test]
fn the_first_stream_of_the_last_ring_leaving_during_a_post_hands_the_value_to_the_next() {
    let drops = Arc::new(AtomicUsize::new(0));
    let center = NotificationCenter::new();
    let leader: Arc<Mutex<Option<NotificationStream<Counted>>>> = Arc::new(Mutex::new(Some(
        center.observer::<Counted>().priority(5).stream(),
    )));
    let mut second = center.observer::<Counted>().priority(4).stream();
    let mut third = center.observer::<Counted>().priority(1).stream();
    let l = leader.clone();
    let _closer = center.observer::<Counted>().priority(10).inline(move |e| {
        if e.0 == "v1"
            && let Some(s) = l.lock().unwrap().as_mut()
        {
            s.unsubscribe();
        }
    });
    let post = |i: u32| center.post(Counted(format!("v{i}"), drops.clone()));
    assert_eq!(post(0).received, 4);
    assert_eq!(post(1).received, 3, "the closer, `second` and `third`");
    assert_eq!(post(2).received, 3);
    let mut leader = leader.lock().unwrap().take().unwrap();
    assert_eq!(counted_texts(&mut leader), ["v0", "closed"]);
    assert_eq!(counted_texts(&mut second), ["v0", "v1", "v2"]);
    assert_eq!(drops.load(SeqCst), 0, "`third` holds all three");
    assert_eq!(counted_texts(&mut third), ["v0", "v1", "v2"]);
    assert_eq!(drops.load(SeqCst), 3);
}

/// A value no stream takes (the only stream is closed during the post, so the post hands it
/// to nobody) is dropped once the post is counted, as an `Arc` the post shared was: a
/// panicking drop unwinds out of `post`, and is not reported as the stream's panic.
#[test]
fn a_value_no_stream_took_is_dropped_after_the_post_is_counted() {
    #[derive(Debug)]
    struct Bomb(bool);
    impl Notification for Bomb {}
    impl Drop for Bomb {
        fn drop(&mut self) {
            if self.0 && !thread::panicking() {
                panic!("dropped a live bomb");
            }
        }
    }
    let center = NotificationCenter::new();
    let stream = Arc::new(Mutex::new(Some(center.stream::<Bomb>())));
    let s = stream.clone();
    let _closer = center.observer::<Bomb>().priority(1).inline(move |b| {
        if b.0
            && let Some(s) = s.lock().unwrap().as_mut()
        {
            s.unsubscribe();
        }
    });
    let posted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        center.post(Bomb(true));
    }));
    assert!(posted.is_err(), "the drop's panic comes out of `post`");
    let stats = center.stats::<Bomb>();
    assert_eq!((stats.posted, stats.delivered, stats.panicked), (1, 1, 0));
}

/// The stream a lone ring's post moves into is unsubscribed by an inline observer ahead of it
/// during that post: the post skips it, drops the value once, and reports it dead.
#[test]
fn a_lone_stream_closed_during_a_post_skips_it_and_the_value_is_dropped_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    let center = NotificationCenter::new();
    let stream: Arc<Mutex<Option<NotificationStream<Counted>>>> =
        Arc::new(Mutex::new(Some(center.stream::<Counted>())));
    let s = stream.clone();
    let _closer = center.observer::<Counted>().priority(1).inline(move |e| {
        if e.0 == "close"
            && let Some(s) = s.lock().unwrap().as_mut()
        {
            s.unsubscribe();
        }
    });
    assert_eq!(center.post(Counted("v0".into(), drops.clone())).received, 2);
    assert_eq!(
        center.post(Counted("close".into(), drops.clone())).received,
        1
    );
    assert_eq!(drops.load(SeqCst), 1, "the skipped post's value");
    let mut stream = stream.lock().unwrap().take().unwrap();
    assert_eq!(counted_texts(&mut stream), ["v0", "closed"]);
    assert_eq!(drops.load(SeqCst), 2);
}

#[test]
fn values_are_released_once_every_stream_has_received_them() {
    let center = NotificationCenter::new();
    let mut a = center.stream::<Ev>();
    let mut b = center.stream::<Ev>();
    center.post(Ev(1));
    let va = a.try_recv().unwrap();
    let weak = Arc::downgrade(&va);
    drop(va);
    assert!(weak.upgrade().is_some(), "b has not received it yet");
    drop(b.try_recv().unwrap());
    assert!(weak.upgrade().is_none(), "the hub keeps no copy");
}

#[test]
fn stream_debug_names_its_policy() {
    let center = NotificationCenter::new();
    let stream: NotificationStream<Ev> = center
        .observer::<Ev>()
        .policy(Overflow::DropNewest { capacity: 3 })
        .stream();
    let debug = format!("{stream:?}");
    assert!(debug.contains("DropNewest"), "{debug}");
}

/// Batched receiving (the receiver takes several values under one lock) must still meet a
/// drop-newest gap exactly where it is, and keep the capacity bound with values in hand.
#[test]
fn large_buffers_report_drop_newest_gaps_in_place_and_keep_the_bound() {
    use herald::{Overflow, TryRecvError};
    let center = NotificationCenter::new();
    let mut s = center
        .observer::<Ev>()
        .policy(Overflow::DropNewest { capacity: 16 })
        .stream();
    for i in 0..20 {
        center.post(Ev(i)); // 16 kept, 4 refused
    }
    assert_eq!(s.try_recv().unwrap().0, 0); // takes a batch into its hand
    for i in 20..22 {
        center.post(Ev(i)); // one value left the buffer: one more is accepted, one refused
    }
    assert!(s.len() <= 16, "at most capacity values held: {}", s.len());
    let mut seen = Vec::new();
    loop {
        match s.try_recv() {
            Ok(v) => seen.push(format!("{}", v.0)),
            Err(TryRecvError::Lagged(n)) => seen.push(format!("lag {n}")),
            Err(_) => break,
        }
    }
    let expected: Vec<String> = (1..16)
        .map(|i| i.to_string())
        .chain(["lag 4".to_string(), "20".to_string(), "lag 1".to_string()])
        .collect();
    assert_eq!(seen, expected);
}

// ---------------------------------------------------------------------------------------------
// Drop-oldest keeps the newest values, whatever the receiver holds
// ---------------------------------------------------------------------------------------------

/// Everything a stream yields right now, as `"seq"` and `"lag n"`.
fn yields(stream: &mut NotificationStream<Ev>) -> Vec<String> {
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

/// Issue 9's example. Capacity 8; the receiver has received 0..=19; 20, 21 and 22 are posted
/// and it receives 20 (a private buffer takes 21 and 22 into the receiver's hand with it);
/// then 23..=32 are posted. The buffer must keep the newest 8 values overall: 21..=24 are
/// lost, and values the receiver held but had not returned are the first to go.
fn newest_values_survive_a_held_batch(
    stream: &mut NotificationStream<Ev>,
    center: &NotificationCenter,
) {
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
    expected.extend((25..=32).map(|i| i.to_string()));
    assert_eq!(yields(stream), expected);
    let stats = stream.stats();
    assert_eq!((stats.delivered, stats.dropped, stats.depth), (29, 4, 0));
    assert_eq!(center.stats::<Ev>().dropped, 4);
}

#[test]
fn drop_oldest_keeps_the_newest_values_on_the_shared_ring() {
    let center = NotificationCenter::new();
    let mut stream = center
        .observer::<Ev>()
        .policy(Overflow::DropOldest { capacity: 8 })
        .stream();
    assert!(format!("{stream:?}").contains("shared_ring: true"));
    newest_values_survive_a_held_batch(&mut stream, &center);
}

#[test]
fn drop_oldest_takes_back_a_held_batch_first_in_a_private_buffer() {
    let center = NotificationCenter::new();
    // A filter gives the stream a private buffer, which hands the receiver batches.
    let mut stream = center
        .observer::<Ev>()
        .filter(|_| true)
        .policy(Overflow::DropOldest { capacity: 8 })
        .stream();
    assert!(format!("{stream:?}").contains("shared_ring: false"));
    newest_values_survive_a_held_batch(&mut stream, &center);
}

/// Part of a held batch taken back: the lag is reported before the values still held.
#[test]
fn a_partly_revoked_batch_reports_the_lag_before_the_rest() {
    let center = NotificationCenter::new();
    let mut stream = center
        .observer::<Ev>()
        .filter(|_| true)
        .policy(Overflow::DropOldest { capacity: 8 })
        .stream();
    for i in 0..8 {
        center.post(Ev(i));
    }
    assert_eq!(stream.try_recv().unwrap().0, 0); // 1 and 2 now in the hand
    center.post(Ev(8));
    assert_eq!(center.post(Ev(9)).dropped, 1); // takes 1 back
    assert_eq!(
        yields(&mut stream),
        ["lag 1", "2", "3", "4", "5", "6", "7", "8", "9"]
    );
}

// ---------------------------------------------------------------------------------------------
// The shared ring
// ---------------------------------------------------------------------------------------------

#[test]
fn streams_with_the_default_policy_share_a_ring_and_others_do_not() {
    let center = NotificationCenter::new();
    let shared = |s: &NotificationStream<Ev>| format!("{s:?}").contains("shared_ring: true");
    assert!(shared(&center.stream::<Ev>()));
    assert!(shared(
        &center.observer::<Ev>().policy(Overflow::Latest).stream()
    ));
    let private = [
        center.observer::<Ev>().filter(|e| e.0 > 1).stream(),
        center
            .observer::<Ev>()
            .sender(herald::SenderId::new())
            .stream(),
        center
            .observer::<Ev>()
            .policy(Overflow::DropNewest { capacity: 4 })
            .stream(),
        center
            .observer::<Ev>()
            .policy(Overflow::DropOldest { capacity: 1 << 20 })
            .stream(),
    ];
    assert!(private.iter().all(|s| !shared(s)));
}

#[test]
fn an_evicted_value_is_freed_at_once() {
    let center = NotificationCenter::new();
    let mut a = center
        .observer::<Ev>()
        .policy(Overflow::DropOldest { capacity: 1 })
        .stream();
    let mut b = center.observer::<Ev>().policy(Overflow::Latest).stream();
    center.post(Ev(0));
    let first = a.try_recv().unwrap();
    let weak = Arc::downgrade(&first);
    drop(first);
    center.post(Ev(1)); // evicts Ev(0) from b: nobody holds it any more
    assert!(weak.upgrade().is_none(), "the ring keeps no copy");
    assert_eq!(*b.try_recv().unwrap(), Ev(1));
    assert_eq!(*a.try_recv().unwrap(), Ev(1));
}

#[test]
fn a_stream_subscribed_during_a_post_does_not_get_that_post() {
    let center = NotificationCenter::new();
    let mut early = center.stream::<Ev>();
    let added: Arc<Mutex<Vec<NotificationStream<Ev>>>> = Arc::default();
    let (c, a) = (center.clone(), added.clone());
    // Runs before `early` (higher priority): the post has not reached the ring yet.
    let _adder = center.observer::<Ev>().priority(1).inline(move |e| {
        if e.0 == 0 {
            a.lock().unwrap().push(c.stream::<Ev>());
        }
    });
    center.post(Ev(0));
    center.post(Ev(1));
    let mut late = added.lock().unwrap().pop().unwrap();
    assert_eq!(yields(&mut early), ["0", "1"]);
    assert_eq!(yields(&mut late), ["1"]);
    assert_eq!(late.stats().delivered + late.stats().dropped, 1);
}

/// Documented on `NotificationStream`: streams on one ring all receive a post at the turn of
/// the first of them, so a nested post made by an observer between them comes after it for both.
#[test]
fn streams_on_one_ring_see_a_nested_post_after_the_outer_one() {
    let center = NotificationCenter::new();
    let mut first = center.observer::<Ev>().priority(10).stream();
    let c = center.clone();
    let _nester = center.observer::<Ev>().priority(5).inline(move |e| {
        if e.0 == 0 {
            c.post(Ev(1));
        }
    });
    let mut last = center.observer::<Ev>().priority(0).stream();
    center.post(Ev(0));
    assert_eq!(yields(&mut first), ["0", "1"]);
    assert_eq!(yields(&mut last), ["0", "1"]);
}

/// A post writes each ring once, at its first stream in the order, and jumps over the other
/// streams of that ring. Two rings (two capacities) whose streams are interleaved with inline
/// observers and with each other: every stream gets every value, the inline observers run in
/// order, and the report counts every receiver.
#[test]
fn streams_of_two_rings_among_inline_observers_all_receive_every_post() {
    let center = NotificationCenter::new();
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut streams = Vec::new();
    let mut inline = Vec::new();
    // Priorities 20 down to 1: the ring of capacity 8 at multiples of 3, the ring of 16 at
    // the others but multiples of 5, which are inline observers.
    for p in (1..=20).rev() {
        if p % 5 == 0 {
            let l = log.clone();
            inline.push(center.observer::<Ev>().priority(p).inline(move |e| {
                l.lock().unwrap().push(format!("{p}:{}", e.0));
            }));
        } else {
            let capacity = if p % 3 == 0 { 8 } else { 16 };
            let stream = center
                .observer::<Ev>()
                .priority(p)
                .policy(Overflow::DropOldest { capacity })
                .stream();
            streams.push(stream);
        }
    }
    assert_eq!((streams.len(), inline.len()), (16, 4));
    for i in 0..3 {
        let report = center.post(Ev(i));
        assert_eq!((report.received, report.dropped), (20, 0), "post {i}");
    }
    for (k, s) in streams.iter_mut().enumerate() {
        assert!(format!("{s:?}").contains("shared_ring: true"));
        assert_eq!(yields(s), ["0", "1", "2"], "stream {k}");
    }
    let calls: Vec<String> = (0..3)
        .flat_map(|i| [20, 15, 10, 5].map(|p| format!("{p}:{i}")))
        .collect();
    assert_eq!(*log.lock().unwrap(), calls);
    let stats = center.stats::<Ev>();
    assert_eq!((stats.observers, stats.delivered), (20, 60));
}

/// The first stream of a ring (the one a post writes the ring at) unsubscribed by an inline
/// observer during a post, before the post reaches it: the next stream of that ring writes it,
/// so the streams that stay get that post, and so does a stream of another ring after them.
/// Then the stream that is first now writes the ring.
#[test]
fn the_first_stream_of_a_ring_leaving_during_a_post_leaves_the_ring_to_the_next() {
    let center = NotificationCenter::new();
    let leader: Arc<Mutex<Option<NotificationStream<Ev>>>> = Arc::new(Mutex::new(Some(
        center.observer::<Ev>().priority(5).stream(),
    )));
    let mut second = center.observer::<Ev>().priority(4).stream();
    let mut other = center
        .observer::<Ev>()
        .priority(3)
        .policy(Overflow::DropOldest { capacity: 4 })
        .stream();
    let mut other_too = center
        .observer::<Ev>()
        .priority(2)
        .policy(Overflow::DropOldest { capacity: 4 })
        .stream();
    let mut third = center.observer::<Ev>().priority(1).stream();
    let l = leader.clone();
    let _closer = center.observer::<Ev>().priority(10).inline(move |e| {
        if e.0 == 1
            && let Some(s) = l.lock().unwrap().as_mut()
        {
            s.unsubscribe();
        }
    });
    assert_eq!(center.post(Ev(0)).received, 6);
    // The closer, `second`, `third`, and the other ring's two.
    assert_eq!(center.post(Ev(1)).received, 5);
    assert_eq!(center.post(Ev(2)).received, 5);
    let mut leader = leader.lock().unwrap().take().unwrap();
    assert_eq!(yields(&mut leader), ["0", "closed"]);
    for s in [&mut second, &mut third, &mut other, &mut other_too] {
        assert_eq!(yields(s), ["0", "1", "2"]);
    }
}

/// The same from another thread: streams that come before a steady stream on its ring (so
/// that a post writes the ring at them) are subscribed and dropped in a loop while this thread
/// posts. An inline observer ahead of them pauses now and then, so posts find such a stream
/// removed while they iterate a snapshot that still holds it (its unsubscribe waits for them).
/// The steady stream gets every post, once, in order.
#[test]
fn streams_that_lead_a_ring_and_leave_from_another_thread_cost_the_others_no_post() {
    const POSTS: u32 = 20_000;
    // Above `POSTS`: the steady stream is read after the posts, and loses nothing.
    const CAPACITY: usize = 32_768;
    let center = NotificationCenter::new();
    let mut steady = center
        .observer::<Ev>()
        .policy(Overflow::DropOldest { capacity: CAPACITY })
        .stream();
    assert!(format!("{steady:?}").contains("shared_ring: true"));
    let _pause = center.observer::<Ev>().priority(100).inline(|e| {
        if e.0 % 8 == 0 {
            thread::yield_now();
        }
    });
    let stop = Arc::new(AtomicBool::new(false));
    let churned = Arc::new(AtomicUsize::new(0));
    let churner = {
        let (center, stop, churned) = (center.clone(), stop.clone(), churned.clone());
        thread::spawn(move || {
            while !stop.load(SeqCst) {
                let mut leader = center
                    .observer::<Ev>()
                    .priority(10)
                    .policy(Overflow::DropOldest { capacity: CAPACITY })
                    .stream();
                thread::yield_now();
                let _ = leader.try_recv();
                drop(leader);
                churned.fetch_add(1, SeqCst);
            }
        })
    };
    for i in 0..POSTS {
        if i == POSTS / 2 {
            // However the scheduler treats the churner, it overlaps the posts.
            while churned.load(SeqCst) < 50 {
                thread::yield_now();
            }
        }
        center.post(Ev(i));
    }
    stop.store(true, SeqCst);
    churner.join().unwrap();
    let mut got = Vec::with_capacity(POSTS as usize);
    loop {
        match steady.try_recv() {
            Ok(e) => got.push(e.0),
            Err(TryRecvError::Empty) => break,
            Err(e) => panic!("the steady stream: {e:?}"),
        }
    }
    assert_eq!(got.len(), POSTS as usize, "posts the steady stream missed");
    assert!(got.iter().copied().eq(0..POSTS), "out of order");
}

/// Many receivers park and are woken over and over (posts come in bursts with pauses); none
/// may miss a wake-up. A lost wake-up shows as a receiver that never finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_receivers_are_always_woken() {
    const RECEIVERS: usize = 8;
    const BURSTS: u32 = 200;
    const BURST: u32 = 16;
    let center = NotificationCenter::new();
    let tasks: Vec<_> = (0..RECEIVERS)
        .map(|r| {
            let mut stream = center
                .observer::<Ev>()
                .policy(Overflow::DropOldest {
                    capacity: (BURSTS * BURST) as usize,
                })
                .stream();
            tokio::spawn(async move {
                let mut next = 0;
                while next < BURSTS * BURST {
                    let v = stream.recv().await.expect("no loss with this capacity");
                    assert_eq!(v.0, next, "receiver {r}");
                    next += 1;
                }
            })
        })
        .collect();
    let poster = {
        let center = center.clone();
        thread::spawn(move || {
            for b in 0..BURSTS {
                for i in 0..BURST {
                    center.post(Ev(b * BURST + i));
                }
                if b % 4 == 0 {
                    thread::sleep(Duration::from_micros(100));
                } else {
                    thread::yield_now();
                }
            }
        })
    };
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("a receiver was never woken")
            .unwrap();
    }
    poster.join().unwrap();
}

/// The same with blocking receivers on their own threads.
#[test]
fn blocked_receivers_are_always_woken() {
    const RECEIVERS: usize = 3;
    const N: u32 = 3_000;
    let center = NotificationCenter::new();
    let receivers: Vec<_> = (0..RECEIVERS)
        .map(|_| {
            let mut stream = center
                .observer::<Ev>()
                .policy(Overflow::DropOldest {
                    capacity: N as usize,
                })
                .stream();
            thread::spawn(move || {
                for i in 0..N {
                    assert_eq!(stream.recv_blocking().unwrap().0, i);
                }
            })
        })
        .collect();
    for i in 0..N {
        center.post(Ev(i));
        if i % 100 == 0 {
            thread::sleep(Duration::from_micros(200));
        }
    }
    for r in receivers {
        r.join().unwrap();
    }
}

/// A slow receiver on a small ring: every post is either received or counted lost, exactly,
/// and the per-post reports add up to the counters.
#[test]
fn a_lagging_receiver_accounts_for_every_post_under_concurrency() {
    const N: u32 = 20_000;
    let center = NotificationCenter::new();
    let mut slow = center
        .observer::<Ev>()
        .policy(Overflow::DropOldest { capacity: 16 })
        .stream();
    let mut fast = center
        .observer::<Ev>()
        .policy(Overflow::DropOldest { capacity: 16 })
        .stream();
    let poster = {
        let center = center.clone();
        thread::spawn(move || {
            let mut reported = 0;
            for i in 0..N {
                reported += center.post(Ev(i)).dropped as u64;
            }
            reported
        })
    };
    let (mut got, mut lost, mut last) = (0u64, 0u64, None);
    while got + lost < N as u64 {
        match slow.try_recv() {
            Ok(v) => {
                assert!(last < Some(v.0), "out of order");
                last = Some(v.0);
                got += 1;
                if got % 7 == 0 {
                    thread::yield_now();
                }
            }
            Err(TryRecvError::Lagged(n)) => lost += n,
            Err(TryRecvError::Empty) => thread::yield_now(),
            Err(TryRecvError::Closed) => panic!("closed"),
        }
    }
    let reported = poster.join().unwrap();
    let fast_lost: u64 = yields(&mut fast)
        .iter()
        .filter_map(|s| s.strip_prefix("lag ").map(|n| n.parse::<u64>().unwrap()))
        .sum();
    let s = slow.stats();
    assert_eq!((s.delivered, s.dropped), (got, lost));
    assert_eq!(lost + fast.stats().dropped, reported);
    assert_eq!(fast.stats().dropped, fast_lost);
    let all = center.stats::<Ev>();
    assert_eq!(all.dropped, reported);
    assert_eq!(all.delivered + all.dropped, 2 * N as u64);
}

// ---------------------------------------------------------------- parking on the shared ring
//
// The shared ring's parking protocol (`src/hub/ring.rs`): a receiver parks under the ring's
// lock, and posts, evictions and leaving the ring are seen under the same lock. These tests pin
// down what that must keep: no lost wake-up (against a post, a burst, an eviction or the stream
// leaving), one wake-up per park, and exact counts for a receiver woken after it lagged. A lost
// wake-up shows as a receiver that never finishes; the timeouts below only turn such a hang
// into a failure, and are generous (minutes), not a performance budget.

/// Polls until the stream parks: a receiver that has not received yet parks on its first
/// empty poll; one that has yields a few times first (each a wake-up of its own).
fn park(stream: &mut NotificationStream<Ev>, waker: &Arc<CountingWaker>) -> usize {
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
