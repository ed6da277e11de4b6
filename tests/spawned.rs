//! Spawned async handlers (`ObserverBuilder::spawn`): order, concurrency limit, quiescent
//! stop, drain, panic isolation, overflow policies.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald::{
    Notification, NotificationCenter, ObserverPanicked, Overflow, PanicPolicy, SpawnOptions,
};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Ev(u32);
impl Notification for Ev {}

type Log = Arc<Mutex<Vec<u32>>>;

fn log() -> Log {
    Arc::new(Mutex::new(Vec::new()))
}

/// Waits (in real time) until `cond` holds, or fails after 30 s (a hang guard, not a budget).
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Order
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spawned_handler_sees_notifications_in_post_order() {
    let center = NotificationCenter::new();
    let seen = log();
    let s = seen.clone();
    let handler = center.observer::<Ev>().spawn(move |n: Arc<Ev>| {
        let s = s.clone();
        async move {
            // Yield so that a second call could overtake if calls were not sequential.
            tokio::task::yield_now().await;
            s.lock().unwrap().push(n.0);
        }
    });
    for i in 0..500 {
        center.post(Ev(i));
    }
    handler.drain().await;
    assert_eq!(*seen.lock().unwrap(), (0..500).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_call_at_a_time_by_default() {
    let center = NotificationCenter::new();
    let (running, max) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (r, m) = (running.clone(), max.clone());
    let handler = center.observer::<Ev>().spawn(move |_| {
        let (r, m) = (r.clone(), m.clone());
        async move {
            let now = r.fetch_add(1, SeqCst) + 1;
            m.fetch_max(now, SeqCst);
            tokio::time::sleep(Duration::from_micros(200)).await;
            r.fetch_sub(1, SeqCst);
        }
    });
    for i in 0..50 {
        center.post(Ev(i));
    }
    handler.drain().await;
    assert_eq!(max.load(SeqCst), 1);
}

// ---------------------------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrency_limit_is_never_exceeded_and_is_reached() {
    const LIMIT: usize = 3;
    let center = NotificationCenter::new();
    let (running, max, done) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let (r, m, d) = (running.clone(), max.clone(), done.clone());
    let handler =
        center
            .observer::<Ev>()
            .spawn_with(SpawnOptions::new().concurrency(LIMIT), move |_| {
                let (r, m, d) = (r.clone(), m.clone(), d.clone());
                async move {
                    let now = r.fetch_add(1, SeqCst) + 1;
                    m.fetch_max(now, SeqCst);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    r.fetch_sub(1, SeqCst);
                    d.fetch_add(1, SeqCst);
                }
            });
    for i in 0..60 {
        center.post(Ev(i));
    }
    handler.drain().await; // waits for every call, including concurrent ones
    assert_eq!(done.load(SeqCst), 60);
    assert_eq!(running.load(SeqCst), 0);
    assert_eq!(
        max.load(SeqCst),
        LIMIT,
        "at most, and eventually exactly, the limit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_start_in_post_order() {
    let center = NotificationCenter::new();
    let started = log();
    let s = started.clone();
    let handler = center.observer::<Ev>().spawn_with(
        SpawnOptions::new().concurrency(4),
        move |n: Arc<Ev>| {
            let s = s.clone();
            async move {
                s.lock().unwrap().push(n.0); // the synchronous start
                tokio::time::sleep(Duration::from_micros(100)).await;
            }
        },
    );
    for i in 0..200 {
        center.post(Ev(i));
    }
    handler.drain().await;
    assert_eq!(*started.lock().unwrap(), (0..200).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------------------------
// Stopping
// ---------------------------------------------------------------------------------------------

/// Contract: once the drop returns, the handler is never started again; a call already
/// started may finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drop_mid_stream_never_starts_the_handler_again() {
    for round in 0..50 {
        let center = NotificationCenter::new();
        let gone = Arc::new(AtomicBool::new(false));
        let started_after_drop = Arc::new(AtomicUsize::new(0));
        let calls = Arc::new(AtomicUsize::new(0));
        let (g, late, c) = (gone.clone(), started_after_drop.clone(), calls.clone());
        let handler = center.observer::<Ev>().spawn(move |_| {
            let (g, late, c) = (g.clone(), late.clone(), c.clone());
            async move {
                if g.load(SeqCst) {
                    late.fetch_add(1, SeqCst);
                }
                c.fetch_add(1, SeqCst);
                // Slow enough that 2,000 calls outlast the drop below (the drop must land
                // mid-stream for the round to test anything); in flight across the drop: allowed.
                tokio::time::sleep(Duration::from_micros(50)).await;
            }
        });
        let poster = {
            let center = center.clone();
            std::thread::spawn(move || {
                for i in 0..2_000 {
                    center.post(Ev(i));
                }
            })
        };
        // Let some calls happen, then drop mid-stream.
        let c = calls.clone();
        eventually("a first call", || c.load(SeqCst) > round % 5).await;
        drop(handler);
        gone.store(true, SeqCst);
        poster.join().unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert_eq!(
            started_after_drop.load(SeqCst),
            0,
            "round {round}: the handler started after its drop returned"
        );
        assert!(
            calls.load(SeqCst) < 2_000,
            "round {round}: stopped mid-stream"
        );
        // Unsubscribed: later posts do not reach it.
        assert_eq!(center.post(Ev(0)).received, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_flight_call_finishes_after_the_drop() {
    let center = NotificationCenter::new();
    let (entered_tx, entered_rx) = tokio::sync::oneshot::channel::<()>();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let finished = Arc::new(AtomicBool::new(false));
    let slots = Arc::new(Mutex::new(Some((entered_tx, release_rx))));
    let f = finished.clone();
    let handler = center.observer::<Ev>().spawn(move |_| {
        let slot = slots.lock().unwrap().take();
        let f = f.clone();
        async move {
            if let Some((entered, release)) = slot {
                entered.send(()).unwrap();
                release.await.unwrap();
                f.store(true, SeqCst);
            }
        }
    });
    center.post(Ev(1));
    center.post(Ev(2)); // buffered behind the first: discarded by the drop
    entered_rx.await.unwrap();
    drop(handler);
    release_tx.send(()).unwrap();
    let f = finished.clone();
    eventually("the in-flight call", move || f.load(SeqCst)).await;
}

#[tokio::test]
async fn stop_discards_the_buffer_and_waits_for_the_call_in_flight() {
    let center = NotificationCenter::new();
    let seen = log();
    let s = seen.clone();
    let handler = center.observer::<Ev>().spawn(move |n: Arc<Ev>| {
        let s = s.clone();
        async move { s.lock().unwrap().push(n.0) }
    });
    for i in 0..10 {
        center.post(Ev(i));
    }
    handler.unsubscribe_and_wait().await; // on a current-thread runtime, the task has not run yet
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_on_drop_handles_every_buffered_value() {
    let center = NotificationCenter::new();
    let seen = log();
    let s = seen.clone();
    let handler = center.observer::<Ev>().spawn_with(
        SpawnOptions::new().drain_on_drop(true),
        move |n: Arc<Ev>| {
            let s = s.clone();
            async move {
                tokio::time::sleep(Duration::from_micros(50)).await;
                s.lock().unwrap().push(n.0);
            }
        },
    );
    for i in 0..100 {
        center.post(Ev(i));
    }
    drop(handler); // returns at once
    assert_eq!(center.post(Ev(999)).received, 0, "unsubscribed by the drop");
    let s = seen.clone();
    eventually("the drain", move || s.lock().unwrap().len() == 100).await;
    assert_eq!(*seen.lock().unwrap(), (0..100).collect::<Vec<_>>());
}

#[tokio::test]
async fn close_drains_then_returns() {
    let center = NotificationCenter::new();
    let seen = log();
    let s = seen.clone();
    let handler = center.observer::<Ev>().spawn(move |n: Arc<Ev>| {
        let s = s.clone();
        async move {
            tokio::task::yield_now().await;
            s.lock().unwrap().push(n.0);
        }
    });
    for i in 0..20 {
        center.post(Ev(i));
    }
    handler.drain().await;
    assert_eq!(seen.lock().unwrap().len(), 20);
}

#[tokio::test]
async fn detached_handler_runs_for_the_life_of_the_center() {
    let center = NotificationCenter::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    center
        .observer::<Ev>()
        .spawn(move |_| {
            c.fetch_add(1, SeqCst);
            async {}
        })
        .detach();
    assert_eq!(center.post(Ev(1)).received, 1);
    let c = calls.clone();
    eventually("the detached call", move || c.load(SeqCst) == 1).await;
}

#[tokio::test]
async fn dropping_the_center_ends_the_task() {
    let center = NotificationCenter::new();
    let handler = center.observer::<Ev>().spawn(|_| async {});
    center.post(Ev(1));
    drop(center);
    // The buffer is closed with the center: close() returns after the drain.
    tokio::time::timeout(Duration::from_secs(5), handler.drain())
        .await
        .expect("the task ends once the center is gone");
}

#[test]
fn spawn_outside_a_runtime_panics_with_a_clear_message() {
    let center = NotificationCenter::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        center.observer::<Ev>().spawn(|_| async {})
    }));
    let payload = result.unwrap_err();
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap();
    assert!(message.contains("needs a tokio runtime"), "{message}");
    assert_eq!(center.stats::<Ev>().observers, 0, "nothing subscribed");
}

#[test]
fn spawn_with_a_handle_works_outside_a_runtime() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let center = NotificationCenter::new();
    let seen = log();
    let s = seen.clone();
    let handler = center.observer::<Ev>().spawn_with(
        SpawnOptions::new().handle(runtime.handle().clone()),
        move |n: Arc<Ev>| {
            let s = s.clone();
            async move { s.lock().unwrap().push(n.0) }
        },
    );
    center.post(Ev(5));
    runtime.block_on(handler.drain());
    assert_eq!(*seen.lock().unwrap(), [5]);
}

// ---------------------------------------------------------------------------------------------
// Panics
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn panics_are_isolated_reported_and_counted() {
    let center = NotificationCenter::new();
    let reports = Arc::new(Mutex::new(Vec::new()));
    let r = reports.clone();
    let _log = center.observe(move |p: &ObserverPanicked| {
        r.lock()
            .unwrap()
            .push((p.notification, p.observer, p.message.clone()));
    });
    let seen = log();
    let s = seen.clone();
    let handler = center.observer::<Ev>().spawn(move |n: Arc<Ev>| {
        let s = s.clone();
        async move {
            tokio::task::yield_now().await;
            if n.0 == 1 {
                panic!("bad value {}", n.0);
            }
            s.lock().unwrap().push(n.0);
        }
    });
    let id = handler.id();
    for i in 0..3 {
        center.post(Ev(i));
    }
    let other = center.observe(|_: &Ev| {});
    handler.drain().await;
    drop(other);
    assert_eq!(
        *seen.lock().unwrap(),
        [0, 2],
        "the handler went on after the panic"
    );
    let reports = reports.lock().unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].0, Ev::name());
    assert_eq!(reports[0].1, id);
    assert_eq!(reports[0].2, "bad value 1");
}

#[tokio::test]
async fn a_panic_in_the_closure_itself_is_isolated_too() {
    let center = NotificationCenter::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let handler = center.observer::<Ev>().spawn(move |n: Arc<Ev>| {
        c.fetch_add(1, SeqCst);
        assert_ne!(n.0, 0, "synchronous panic");
        async {}
    });
    center.post(Ev(0));
    center.post(Ev(1));
    tokio::task::yield_now().await;
    assert_eq!(handler.panicked(), 1);
    handler.drain().await;
    assert_eq!(calls.load(SeqCst), 2);
    assert_eq!(
        center.stats::<Ev>().panicked,
        1,
        "counted in the type's stats like an inline panic"
    );
}

#[tokio::test]
async fn propagate_policy_stops_the_handler_and_resumes_the_panic_in_close() {
    let center = NotificationCenter::builder()
        .panic_policy(PanicPolicy::Propagate)
        .build();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let handler = center.observer::<Ev>().spawn(move |_| {
        c.fetch_add(1, SeqCst);
        async { panic!("propagated") }
    });
    center.post(Ev(0));
    center.post(Ev(1));
    let joined = tokio::spawn(handler.drain()).await;
    let payload = joined.unwrap_err().into_panic();
    assert_eq!(*payload.downcast_ref::<&str>().unwrap(), "propagated");
    assert_eq!(calls.load(SeqCst), 1, "stopped after the panic");
}

#[tokio::test]
async fn propagate_policy_resumes_a_concurrent_calls_panic_in_drain_and_counts_every_one() {
    let center = NotificationCenter::builder()
        .panic_policy(PanicPolicy::Propagate)
        .build();
    let handler = center.observer::<Ev>().spawn_with(
        SpawnOptions::new().concurrency(2),
        |n: Arc<Ev>| async move {
            // Both calls are past their first poll (on tasks of their own) when they panic.
            tokio::task::yield_now().await;
            panic!("concurrent {}", n.0)
        },
    );
    center.post(Ev(0));
    center.post(Ev(1));
    let joined = tokio::spawn(handler.drain()).await;
    let payload = joined.unwrap_err().into_panic();
    let message = payload.downcast_ref::<String>().unwrap();
    assert!(message.starts_with("concurrent "), "{message}");
    assert_eq!(
        center.stats::<Ev>().panicked,
        2,
        "the panic that is not resumed is counted too"
    );
}

// ---------------------------------------------------------------------------------------------
// Buffering
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn overflow_policy_applies_to_the_handler_buffer() {
    let center = NotificationCenter::new();
    let seen = log();
    let s = seen.clone();
    let handler = center
        .observer::<Ev>()
        .policy(Overflow::DropOldest { capacity: 3 })
        .spawn(move |n: Arc<Ev>| {
            let s = s.clone();
            async move { s.lock().unwrap().push(n.0) }
        });
    for i in 0..10 {
        center.post(Ev(i)); // the task has not run: the buffer overflows
    }
    assert_eq!(handler.stats().dropped, 7);
    assert_eq!(handler.stats().depth, 3);
    handler.drain().await;
    assert_eq!(*seen.lock().unwrap(), [7, 8, 9]);
    assert_eq!(center.stats::<Ev>().dropped, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_makes_post_async_wait_for_the_handler() {
    let center = NotificationCenter::new();
    let seen = log();
    let s = seen.clone();
    let handler = center
        .observer::<Ev>()
        .policy(Overflow::Backpressure { capacity: 2 })
        .spawn(move |n: Arc<Ev>| {
            let s = s.clone();
            async move {
                tokio::time::sleep(Duration::from_micros(100)).await;
                s.lock().unwrap().push(n.0);
            }
        });
    for i in 0..50 {
        let report = center.post_async(Ev(i)).await;
        assert_eq!(report.dropped, 0);
    }
    handler.drain().await;
    assert_eq!(*seen.lock().unwrap(), (0..50).collect::<Vec<_>>());
}

#[tokio::test]
async fn sender_filter_and_predicate_apply() {
    let center = NotificationCenter::new();
    let me = herald::SenderId::new();
    let seen = log();
    let s = seen.clone();
    let handler = center
        .observer::<Ev>()
        .sender(me)
        .filter(|n| n.0 % 2 == 0)
        .spawn(move |n: Arc<Ev>| {
            let s = s.clone();
            async move { s.lock().unwrap().push(n.0) }
        });
    for i in 0..6 {
        center.post_from(me, Ev(i));
        center.post(Ev(100 + i));
    }
    handler.drain().await;
    assert_eq!(*seen.lock().unwrap(), [0, 2, 4]);
}

#[test]
fn spawned_handler_is_send_and_sync() {
    fn is_send_sync<T: Send + Sync>() {}
    is_send_sync::<herald::SpawnedHandler>();
    is_send_sync::<SpawnOptions>();
}

#[tokio::test]
async fn an_unobserved_panic_report_is_not_a_dead_notification() {
    let center = NotificationCenter::new();
    let handler = center
        .observer::<Ev>()
        .spawn(|_| async { panic!("nobody listens") });
    center.post(Ev(0));
    handler.drain().await;
    assert_eq!(center.stats::<ObserverPanicked>().dead, 0);
    assert_eq!(center.stats::<ObserverPanicked>().posted, 0);
}

#[tokio::test]
async fn replay_last_hands_the_retained_value_to_the_handler_first() {
    let center = NotificationCenter::new();
    center.retain_last::<Ev>();
    center.post(Ev(41));
    let seen = log();
    let s = seen.clone();
    let handler = center
        .observer::<Ev>()
        .replay_last()
        .spawn(move |n: Arc<Ev>| {
            let s = s.clone();
            async move { s.lock().unwrap().push(n.0) }
        });
    center.post(Ev(42));
    handler.drain().await;
    assert_eq!(*seen.lock().unwrap(), [41, 42]);
}
