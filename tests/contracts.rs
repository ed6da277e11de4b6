//! The hub's contracts (DESIGN.md, `herald::contracts`), one behaviour per test.
//!
//! Each test is named for the promise it pins. Observers record what they see in a shared
//! `Log` (a `Mutex<Vec<_>>`) or in `SeqCst` atomics; the assertions read those.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use herald::{
    DeadNotification, Lagged, Notification, NotificationCenter, ObserverPanicked, Overflow,
    PanicPolicy, RecvError, SenderId, Subscription, TryRecvError,
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
struct Ev(u32);
impl Notification for Ev {}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Other(u32);
impl Notification for Other {}

/// A shared, ordered record of what observers saw.
#[derive(Clone, Default)]
struct Log<T>(Arc<Mutex<Vec<T>>>);

impl<T: Clone> Log<T> {
    fn new() -> Self {
        Log(Arc::new(Mutex::new(Vec::new())))
    }
    fn push(&self, item: T) {
        self.0.lock().unwrap().push(item);
    }
    fn take(&self) -> Vec<T> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
    fn snapshot(&self) -> Vec<T> {
        self.0.lock().unwrap().clone()
    }
}

/// Receives everything buffered right now, as plain values (panics on lag or close).
fn drain<N: Notification + Clone>(stream: &mut herald::NotificationStream<N>) -> Vec<N> {
    let mut out = Vec::new();
    loop {
        match stream.try_recv() {
            Ok(v) => out.push((*v).clone()),
            Err(TryRecvError::Empty) => return out,
            Err(e) => panic!("unexpected {e:?} while draining"),
        }
    }
}

/// The next value of a stream, which must be there.
macro_rules! assert_next {
    ($stream:expr, $expected:expr) => {
        match $stream.try_recv() {
            Ok(v) => assert_eq!(*v, $expected),
            Err(e) => panic!("expected {:?}, got {e:?}", $expected),
        }
    };
}

/// The stream must hold nothing right now.
macro_rules! assert_empty {
    ($stream:expr) => {
        match $stream.try_recv() {
            Err(TryRecvError::Empty) => {}
            other => panic!("expected an empty stream, got {other:?}"),
        }
    };
}

/// Silences the default panic message for panics we provoke on purpose.
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let quiet = info
                .payload()
                .downcast_ref::<&str>()
                .is_some_and(|s| s.starts_with("provoked"))
                || info
                    .payload()
                    .downcast_ref::<String>()
                    .is_some_and(|s| s.starts_with("provoked"));
            if !quiet {
                default(info);
            }
        }));
    });
}

// ---------------------------------------------------------------------------------------------
// 1. Order
// ---------------------------------------------------------------------------------------------

#[test]
fn order_is_priority_then_registration() {
    let center = NotificationCenter::new();
    let log = Log::new();
    let mut subs = Vec::new();
    for (name, priority) in [
        ("a:0", 0),
        ("b:5", 5),
        ("c:-3", -3),
        ("d:0", 0),
        ("e:5", 5),
        ("f:10", 10),
        ("g:-3", -3),
    ] {
        let l = log.clone();
        subs.push(
            center
                .observer::<Ev>()
                .priority(priority)
                .inline(move |_| l.push(name)),
        );
    }
    center.post(Ev(0));
    assert_eq!(
        log.take(),
        ["f:10", "b:5", "e:5", "a:0", "d:0", "c:-3", "g:-3"]
    );
}

#[test]
fn order_survives_unsubscribe_in_the_middle() {
    let center = NotificationCenter::new();
    let log = Log::new();
    let mut subs: Vec<Option<Subscription>> = Vec::new();
    for i in 0..5 {
        let l = log.clone();
        subs.push(Some(center.observe(move |_: &Ev| l.push(i))));
    }
    subs[2] = None;
    let l = log.clone();
    let _late = center.observe(move |_: &Ev| l.push(5));
    center.post(Ev(0));
    assert_eq!(log.take(), [0, 1, 3, 4, 5]);
}

#[test]
fn posts_from_one_thread_arrive_in_post_order() {
    let center = NotificationCenter::new();
    let inline = Log::new();
    let l = inline.clone();
    let _inline = center.observe(move |e: &Ev| l.push(e.0));
    let mut stream = center
        .observer::<Ev>()
        .policy(Overflow::DropOldest { capacity: 10_000 })
        .stream();

    let posters: Vec<_> = (0..3u32)
        .map(|t| {
            let center = center.clone();
            thread::spawn(move || {
                for i in 0..1_000u32 {
                    center.post(Ev(t * 1_000_000 + i));
                }
            })
        })
        .collect();
    for p in posters {
        p.join().unwrap();
    }

    let streamed: Vec<u32> = drain(&mut stream).into_iter().map(|e| e.0).collect();
    for seen in [inline.take(), streamed] {
        assert_eq!(seen.len(), 3_000);
        for t in 0..3u32 {
            let from_t: Vec<u32> = seen
                .iter()
                .filter(|v| **v / 1_000_000 == t)
                .map(|v| v % 1_000_000)
                .collect();
            assert_eq!(from_t, (0..1_000).collect::<Vec<_>>(), "thread {t}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Re-entrancy
// ---------------------------------------------------------------------------------------------

#[test]
fn observer_may_post_subscribe_and_unsubscribe_reentrantly() {
    let center = NotificationCenter::new();
    let log = Log::new();
    let held: Arc<Mutex<Vec<Subscription>>> = Arc::default();
    let own: Arc<Mutex<Option<Subscription>>> = Arc::default();

    let (c, l, h, o) = (center.clone(), log.clone(), held.clone(), own.clone());
    let sub = center.observe(move |e: &Ev| {
        l.push(format!("outer {}", e.0));
        // Post another type, and the same type, from inside.
        c.post(Other(e.0));
        if e.0 == 0 {
            c.post(Ev(100));
        }
        // Subscribe from inside.
        let l2 = l.clone();
        h.lock()
            .unwrap()
            .push(c.observe(move |o: &Other| l2.push(format!("late other {}", o.0))));
        // Unsubscribe the earlier of those, and then itself.
        if e.0 == 1 {
            let first = h.lock().unwrap().remove(0);
            drop(first);
            drop(o.lock().unwrap().take());
        }
    });
    *own.lock().unwrap() = Some(sub);

    let l = log.clone();
    let _other = center.observe(move |o: &Other| l.push(format!("other {}", o.0)));

    center.post(Ev(0));
    center.post(Ev(1));
    center.post(Ev(2)); // the outer observer is gone
    center.post(Other(3));

    let log = log.take();
    assert!(log.contains(&"outer 0".to_string()));
    assert!(log.contains(&"outer 100".to_string()));
    assert!(log.contains(&"outer 1".to_string()));
    assert!(!log.contains(&"outer 2".to_string()), "{log:?}");
    // The outer observer made two inline observers of `Other` (during Ev(100) and Ev(0)) and a
    // third during Ev(1), then dropped the first: two remain, and see Other(3).
    let late3 = log.iter().filter(|s| *s == "late other 3").count();
    assert_eq!(late3, 2, "{log:?}");
    assert!(own.lock().unwrap().is_none());
}

#[test]
fn nested_post_is_delivered_depth_first() {
    let center = NotificationCenter::new();
    let log = Log::new();
    let (c, l) = (center.clone(), log.clone());
    let _first = center.observe(move |e: &Ev| {
        l.push(format!("first {}", e.0));
        if e.0 < 2 {
            c.post(Ev(e.0 + 1));
        }
    });
    let l = log.clone();
    let _second = center.observe(move |e: &Ev| l.push(format!("second {}", e.0)));
    center.post(Ev(0));
    assert_eq!(
        log.take(),
        [
            "first 0", "first 1", "first 2", "second 2", "second 1", "second 0"
        ]
    );
}

#[test]
fn observer_added_during_post_does_not_get_that_post() {
    let center = NotificationCenter::new();
    let log = Log::new();
    let added: Arc<Mutex<Vec<Subscription>>> = Arc::default();
    let (c, l, a) = (center.clone(), log.clone(), added.clone());
    let _adder = center.observe(move |e: &Ev| {
        l.push(format!("adder {}", e.0));
        if e.0 == 0 {
            let l = l.clone();
            a.lock()
                .unwrap()
                .push(c.observe(move |e: &Ev| l.push(format!("added {}", e.0))));
        }
    });
    center.post(Ev(0));
    assert_eq!(log.take(), ["adder 0"]);
    center.post(Ev(1));
    assert_eq!(log.take(), ["adder 1", "added 1"]);
}

#[test]
fn observer_added_during_post_gets_a_nested_post() {
    let center = NotificationCenter::new();
    let log = Log::new();
    let added: Arc<Mutex<Vec<Subscription>>> = Arc::default();
    let (c, l, a) = (center.clone(), log.clone(), added.clone());
    let _adder = center.observe(move |e: &Ev| {
        if e.0 == 0 {
            let l = l.clone();
            a.lock().unwrap().push(c.observe(move |e: &Ev| l.push(e.0)));
            c.post(Ev(1)); // a new post: the new observer is subscribed by now
        }
    });
    center.post(Ev(0));
    assert_eq!(log.take(), [1]);
}

#[test]
fn observer_removed_during_post_by_another_observer_is_not_called() {
    let center = NotificationCenter::new();
    let log = Log::new();
    let victim: Arc<Mutex<Option<Subscription>>> = Arc::default();

    let (l, v) = (log.clone(), victim.clone());
    let _killer = center.observer::<Ev>().priority(1).inline(move |_| {
        l.push("killer");
        drop(v.lock().unwrap().take());
    });
    let l = log.clone();
    *victim.lock().unwrap() = Some(center.observe(move |_: &Ev| l.push("victim")));
    let l = log.clone();
    let _bystander = center.observe(move |_: &Ev| l.push("bystander"));

    let report = center.post(Ev(0));
    assert_eq!(log.take(), ["killer", "bystander"]);
    assert_eq!(report.received, 2);
}

#[test]
fn stream_removed_during_post_by_an_observer_does_not_get_that_post() {
    let center = NotificationCenter::new();
    let victim: Arc<Mutex<Option<herald::NotificationStream<Ev>>>> = Arc::default();
    let v = victim.clone();
    let _killer = center.observer::<Ev>().priority(1).inline(move |_| {
        if let Some(s) = v.lock().unwrap().as_mut() {
            s.unsubscribe();
        }
    });
    *victim.lock().unwrap() = Some(center.stream::<Ev>());
    center.post(Ev(0));
    let mut stream = victim.lock().unwrap().take().unwrap();
    assert!(stream.is_closed());
    assert_eq!(stream.try_recv().unwrap_err(), TryRecvError::Closed);
}

// ---------------------------------------------------------------------------------------------
// 3. Quiescent unsubscribe
// ---------------------------------------------------------------------------------------------

#[test]
fn unsubscribe_from_own_callback_finishes_that_call_only() {
    let center = NotificationCenter::new();
    let log = Log::new();
    let me: Arc<Mutex<Option<Subscription>>> = Arc::default();
    let (l, m) = (log.clone(), me.clone());
    let sub = center.observe(move |e: &Ev| {
        l.push(format!("start {}", e.0));
        if e.0 == 1 {
            // Returns at once (no self-deadlock), and this call goes on.
            drop(m.lock().unwrap().take());
        }
        l.push(format!("end {}", e.0));
    });
    *me.lock().unwrap() = Some(sub);
    center.post(Ev(0));
    center.post(Ev(1));
    center.post(Ev(2));
    assert_eq!(log.take(), ["start 0", "end 0", "start 1", "end 1"]);
    assert!(center.post(Ev(3)).is_dead());
}

#[test]
fn unsubscribe_from_own_nested_callback_does_not_deadlock() {
    let center = NotificationCenter::new();
    let log = Log::new();
    let me: Arc<Mutex<Option<Subscription>>> = Arc::default();
    let (c, l, m) = (center.clone(), log.clone(), me.clone());
    let sub = center.observe(move |e: &Ev| {
        l.push(e.0);
        if e.0 < 2 {
            c.post(Ev(e.0 + 1)); // recursion: two frames of this observer below
        } else {
            drop(m.lock().unwrap().take());
        }
    });
    *me.lock().unwrap() = Some(sub);
    center.post(Ev(0));
    center.post(Ev(10));
    assert_eq!(log.take(), [0, 1, 2]);
}

#[test]
fn drop_during_post_on_other_thread_is_quiescent() {
    let center = NotificationCenter::new();
    let in_call = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    let gone = Arc::new(AtomicBool::new(false));
    let violations = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));

    let (ic, n, g, v) = (
        in_call.clone(),
        calls.clone(),
        gone.clone(),
        violations.clone(),
    );
    let sub = center.observe(move |_: &Ev| {
        if g.load(SeqCst) {
            v.fetch_add(1, SeqCst);
        }
        ic.store(true, SeqCst);
        n.fetch_add(1, SeqCst);
        thread::sleep(Duration::from_millis(2));
        if g.load(SeqCst) {
            v.fetch_add(1, SeqCst);
        }
        ic.store(false, SeqCst);
    });

    let poster = {
        let (center, stop) = (center.clone(), stop.clone());
        thread::spawn(move || {
            while !stop.load(SeqCst) {
                center.post(Ev(0));
            }
        })
    };

    // Drop while a call is in flight on the poster thread.
    while !in_call.load(SeqCst) {
        thread::yield_now();
    }
    drop(sub);
    let was_in_call = in_call.load(SeqCst);
    gone.store(true, SeqCst);
    let calls_at_drop = calls.load(SeqCst);

    thread::sleep(Duration::from_millis(30));
    stop.store(true, SeqCst);
    poster.join().unwrap();

    assert!(!was_in_call, "drop returned while a call was still running");
    assert_eq!(
        violations.load(SeqCst),
        0,
        "observer ran after drop returned"
    );
    assert_eq!(
        calls.load(SeqCst),
        calls_at_drop,
        "observer called after drop"
    );
    assert_eq!(center.stats::<Ev>().observers, 0);
}

#[test]
fn unsubscribe_method_is_quiescent_like_drop() {
    let center = NotificationCenter::new();
    let running = Arc::new(AtomicUsize::new(0));
    let entered = Arc::new(AtomicBool::new(false));
    let (r, e) = (running.clone(), entered.clone());
    let sub = center.observe(move |_: &Ev| {
        r.fetch_add(1, SeqCst);
        e.store(true, SeqCst);
        thread::sleep(Duration::from_millis(50));
        r.fetch_sub(1, SeqCst);
    });
    let poster = {
        let center = center.clone();
        thread::spawn(move || center.post(Ev(0)))
    };
    while !entered.load(SeqCst) {
        thread::yield_now();
    }
    sub.unsubscribe();
    assert_eq!(running.load(SeqCst), 0, "unsubscribe returned mid-call");
    poster.join().unwrap();
}

// ---------------------------------------------------------------------------------------------
// 4. Panic isolation
// ---------------------------------------------------------------------------------------------

#[test]
fn panicking_observer_does_not_stop_others() {
    quiet_panics();
    let center = NotificationCenter::new();
    let log = Log::new();
    let l = log.clone();
    let _before = center
        .observer::<Ev>()
        .priority(1)
        .inline(move |_| l.push("before"));
    let _bad = center.observe(|_: &Ev| panic!("provoked"));
    let l = log.clone();
    let _after = center.observe(move |_: &Ev| l.push("after"));
    let mut stream = center.stream::<Ev>();

    let report = center.post(Ev(7));
    assert_eq!(log.take(), ["before", "after"]);
    assert_next!(stream, Ev(7));
    assert_eq!((report.received, report.panicked), (3, 1));
}

#[test]
fn panic_is_reported_as_observer_panicked() {
    quiet_panics();
    let center = NotificationCenter::new();
    let reports: Log<(String, &'static str, u64)> = Log::new();
    let r = reports.clone();
    let _watch = center.observe(move |p: &ObserverPanicked| {
        r.push((p.message.clone(), p.notification, p.observer.as_u64()))
    });
    let bad = center.observe(|e: &Ev| panic!("provoked by {}", e.0));
    let bad_id = bad.id().as_u64();
    let _bad_string = center.observe(|_: &Other| std::panic::panic_any(42u8));

    center.post(Ev(3));
    center.post(Other(0));
    let reports = reports.take();
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[0].0, "provoked by 3");
    assert_eq!(reports[0].1, Ev::name());
    assert_eq!(reports[0].2, bad_id);
    assert_eq!(reports[1].1, Other::name());
    assert!(!reports[1].0.is_empty());
    assert_eq!(center.stats::<Ev>().panicked, 1);
    assert_eq!(center.stats::<Other>().panicked, 1);
}

#[test]
fn panic_does_not_poison_the_center() {
    quiet_panics();
    let center = NotificationCenter::new();
    let count = Arc::new(AtomicUsize::new(0));
    let bad = center.observe(|_: &Ev| panic!("provoked"));
    center.post(Ev(0));
    center.post(Ev(1));

    // Everything still works: subscribe, post, receive, unsubscribe (even the panicker).
    let c = count.clone();
    let _good = center.observe(move |_: &Ev| {
        c.fetch_add(1, SeqCst);
    });
    let mut stream = center.stream::<Ev>();
    let report = center.post(Ev(2));
    assert_eq!((report.received, report.panicked), (2, 1));
    assert_eq!(count.load(SeqCst), 1);
    assert_next!(stream, Ev(2));
    drop(bad);
    let report = center.post(Ev(3));
    assert_eq!((report.received, report.panicked), (2, 0));
    assert_eq!(center.stats::<Ev>().panicked, 3);
    center.post(Other(1)); // other types too
}

#[test]
fn panic_in_observer_of_observer_panicked_is_counted_not_reported_again() {
    quiet_panics();
    let center = NotificationCenter::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let _watch = center.observe(move |_: &ObserverPanicked| {
        c.fetch_add(1, SeqCst);
        panic!("provoked again");
    });
    let _bad = center.observe(|_: &Ev| panic!("provoked"));
    center.post(Ev(0));
    assert_eq!(calls.load(SeqCst), 1);
    assert_eq!(center.stats::<ObserverPanicked>().panicked, 1);
}

#[test]
fn propagate_policy_unwinds_out_of_post() {
    quiet_panics();
    let center = NotificationCenter::builder()
        .panic_policy(PanicPolicy::Propagate)
        .build();
    let log = Log::new();
    let l = log.clone();
    let _first = center
        .observer::<Ev>()
        .priority(1)
        .inline(move |e| l.push(format!("first {}", e.0)));
    let bad = center.observe(|e: &Ev| {
        if e.0 == 0 {
            panic!("provoked");
        }
    });
    let l = log.clone();
    let _last = center
        .observer::<Ev>()
        .priority(-1)
        .inline(move |e| l.push(format!("last {}", e.0)));

    let unwound = catch_unwind(AssertUnwindSafe(|| center.post(Ev(0))));
    let payload = unwound.expect_err("the panic must unwind out of post");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"provoked"));
    assert_eq!(
        log.take(),
        ["first 0"],
        "observers after the panic are skipped"
    );

    // The center still works, and unsubscribing the panicker does not hang.
    let report = center.post(Ev(1));
    assert_eq!(report.received, 3);
    assert_eq!(log.take(), ["first 1", "last 1"]);
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        drop(bad);
        done_tx.send(()).unwrap();
    });
    done_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("unsubscribing the observer that panicked hung");
    assert_eq!(center.post(Ev(2)).received, 2);
    assert_eq!(center.stats::<Ev>().panicked, 1);
}

#[test]
fn propagate_policy_unsubscribe_from_the_panicking_thread_does_not_hang() {
    quiet_panics();
    let center = NotificationCenter::builder()
        .panic_policy(PanicPolicy::Propagate)
        .build();
    let bad = center.observe(|_: &Ev| panic!("provoked"));
    assert!(catch_unwind(AssertUnwindSafe(|| center.post(Ev(0)))).is_err());
    drop(bad); // same thread: the thread-local record of running calls must be clean
    assert!(center.post(Ev(1)).is_dead());
}

// ---------------------------------------------------------------------------------------------
// 5. Loss is never silent
// ---------------------------------------------------------------------------------------------

#[test]
fn drop_oldest_reports_lagged() {
    let center = NotificationCenter::new();
    let mut stream = center
        .observer::<Ev>()
        .policy(Overflow::DropOldest { capacity: 3 })
        .stream();
    let mut dropped = 0;
    for i in 0..8 {
        dropped += center.post(Ev(i)).dropped;
    }
    assert_eq!(dropped, 5);
    assert_eq!(stream.try_recv().unwrap_err(), TryRecvError::Lagged(5));
    assert_eq!(drain(&mut stream), [Ev(5), Ev(6), Ev(7)]);
    // Still subscribed after the lag.
    center.post(Ev(8));
    assert_next!(stream, Ev(8));
    assert_eq!(stream.stats().dropped, 5);
    assert_eq!(center.stats::<Ev>().dropped, 5);
}

#[test]
fn drop_oldest_holds_at_most_capacity_values_while_the_receiver_reads() {
    let center = NotificationCenter::new();
    let mut stream = center
        .observer::<Ev>()
        .policy(Overflow::DropOldest { capacity: 2 })
        .stream();
    center.post(Ev(0));
    center.post(Ev(1));
    assert_next!(stream, Ev(0)); // Ev(1) is the one unread value
    center.post(Ev(2));
    center.post(Ev(3)); // full at 2: Ev(1) is the oldest and must go
    assert!(stream.len() <= 2, "{} values buffered", stream.len());
    assert_eq!(stream.try_recv().unwrap_err(), TryRecvError::Lagged(1));
    assert_eq!(drain(&mut stream), [Ev(2), Ev(3)]);
}

#[test]
fn drop_newest_keeps_oldest_and_reports_lagged() {
    let center = NotificationCenter::new();
    let mut stream = center
        .observer::<Ev>()
        .policy(Overflow::DropNewest { capacity: 3 })
        .stream();
    let mut dropped = 0;
    for i in 0..8 {
        dropped += center.post(Ev(i)).dropped;
    }
    assert_eq!(dropped, 5);
    assert_eq!(stream.stats().dropped, 5);
    assert_eq!(center.stats::<Ev>().dropped, 5);
    // Every value comes out, and the lag is reported (once) with the count of refused values.
    let mut values = Vec::new();
    let mut lag = Vec::new();
    loop {
        match stream.try_recv() {
            Ok(v) => values.push(v.0),
            Err(TryRecvError::Lagged(n)) => lag.push(n),
            Err(TryRecvError::Empty) => break,
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(values, [0, 1, 2]);
    assert_eq!(lag, [5]);
}

#[test]
fn drop_newest_reports_lag_after_the_values_it_kept() {
    let center = NotificationCenter::new();
    let mut stream = center
        .observer::<Ev>()
        .policy(Overflow::DropNewest { capacity: 2 })
        .stream();
    for i in 0..5 {
        center.post(Ev(i));
    }
    // Documented on `Overflow::DropNewest`: "the receiver sees Lagged(n) once it has drained
    // what it holds": the kept values come before the gap.
    assert_next!(stream, Ev(0));
    assert_next!(stream, Ev(1));
    assert_eq!(stream.try_recv().unwrap_err(), TryRecvError::Lagged(3));
    assert_empty!(stream);
}

#[test]
fn latest_keeps_only_newest() {
    let center = NotificationCenter::new();
    let mut stream = center.observer::<Ev>().policy(Overflow::Latest).stream();
    let reports: Vec<_> = (0..4).map(|i| center.post(Ev(i))).collect();
    assert_eq!(reports[0].dropped, 0);
    assert!(
        reports[1..]
            .iter()
            .all(|r| r.dropped == 1 && r.received == 1)
    );
    // No lag report: conflation is what the receiver asked for.
    assert_next!(stream, Ev(3));
    assert_empty!(stream);
    assert_eq!(stream.stats().dropped, 3);
    assert_eq!(center.stats::<Ev>().dropped, 3);
    center.post(Ev(4));
    assert_next!(stream, Ev(4));
}

#[test]
fn coalesce_replaces_in_place() {
    #[derive(Debug, Clone, PartialEq)]
    struct Price(&'static str, u32);
    impl Notification for Price {}

    let center = NotificationCenter::new();
    let mut stream = center
        .observer::<Price>()
        .policy(Overflow::coalesce_by_key(8, |p: &Price| p.0))
        .stream();
    center.post(Price("a", 1));
    center.post(Price("b", 1));
    let report = center.post(Price("a", 2));
    assert_eq!((report.received, report.dropped), (1, 1));
    center.post(Price("c", 1));
    center.post(Price("b", 2));
    assert_eq!(
        drain(&mut stream),
        [Price("a", 2), Price("b", 2), Price("c", 1)]
    );
    assert_eq!(stream.stats().dropped, 2);
    // Once read, a key is new again.
    center.post(Price("a", 3));
    assert_next!(stream, Price("a", 3));
}

#[test]
fn coalesce_evicts_oldest_key_when_full_and_reports_lag() {
    let center = NotificationCenter::new();
    let mut stream = center
        .observer::<Ev>()
        .policy(Overflow::coalesce_by_key(2, |e: &Ev| e.0))
        .stream();
    for i in 0..3 {
        center.post(Ev(i));
    }
    assert_eq!(stream.try_recv().unwrap_err(), TryRecvError::Lagged(1));
    assert_eq!(drain(&mut stream), [Ev(1), Ev(2)]);
}

#[test]
fn backpressure_sync_post_reports_full() {
    let center = NotificationCenter::new();
    let mut slow = center
        .observer::<Ev>()
        .policy(Overflow::Backpressure { capacity: 2 })
        .stream();
    let mut fast = center.stream::<Ev>();
    assert_eq!(center.post(Ev(0)).full, 0);
    assert_eq!(center.post(Ev(1)).full, 0);
    let report = center.post(Ev(2)); // never blocks
    assert_eq!(
        (report.received, report.dropped, report.full),
        (1, 1, 1),
        "{report:?}"
    );
    assert_eq!(drain(&mut slow), [Ev(0), Ev(1)]);
    assert_eq!(drain(&mut fast), [Ev(0), Ev(1), Ev(2)]);
    assert_eq!(slow.stats().dropped, 1);
    assert_eq!(center.stats::<Ev>().dropped, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_post_async_waits_for_room() {
    const N: u32 = 200;
    const CAPACITY: u32 = 4;
    let center = NotificationCenter::new();
    let mut slow = center
        .observer::<Ev>()
        .policy(Overflow::Backpressure {
            capacity: CAPACITY as usize,
        })
        .stream();
    let (go, start) = tokio::sync::oneshot::channel::<()>();
    let receiver = tokio::spawn(async move {
        start.await.unwrap();
        let mut got = Vec::new();
        while got.last() != Some(&(N - 1)) {
            match slow.recv().await {
                Ok(v) => got.push(v.0),
                Err(e) => panic!("{e:?}"),
            }
            if got.len() % 16 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        got
    });

    for i in 0..CAPACITY {
        let report = center.post_async(Ev(i)).await;
        assert_eq!((report.received, report.dropped), (1, 0), "{report:?}");
    }
    // The buffer is full and nobody reads yet: a synchronous post does not wait, it reports.
    let sync = center.post(Ev(u32::MAX));
    assert_eq!((sync.received, sync.dropped, sync.full), (0, 1, 1));

    go.send(()).unwrap();
    for i in CAPACITY..N {
        let report = center.post_async(Ev(i)).await;
        assert_eq!((report.received, report.dropped), (1, 0), "{report:?}");
    }
    let got = receiver.await.unwrap();
    assert_eq!(got, (0..N).collect::<Vec<_>>(), "post_async lost values");
    let stats = center.stats::<Ev>();
    assert_eq!((stats.delivered, stats.dropped), (N as u64, 1));
}

#[tokio::test]
async fn backpressure_sync_post_reports_full_while_post_async_waits() {
    let center = NotificationCenter::new();
    let mut slow = center
        .observer::<Ev>()
        .policy(Overflow::Backpressure { capacity: 1 })
        .stream();
    center.post(Ev(0));
    let waiting = {
        let center = center.clone();
        tokio::spawn(async move { center.post_async(Ev(1)).await })
    };
    tokio::task::yield_now().await;
    let report = center.post(Ev(99));
    assert_eq!(report.full, 1);
    assert_next!(slow, Ev(0));
    let report = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("post_async did not finish once there was room")
        .unwrap();
    assert_eq!(report.received, 1);
    assert_eq!(slow.recv().await.unwrap().0, 1);
}

/// Also contract 7: a post whose only subscriber leaves while it waits reached nobody, so it
/// is counted and reported dead like any other post without a receiver.
#[tokio::test]
async fn post_async_returns_when_stream_closes_while_waiting() {
    let center = NotificationCenter::new();
    let dead = Log::new();
    let d = dead.clone();
    let _watch = center.observe(move |n: &DeadNotification| d.push(n.notification));
    let slow = center
        .observer::<Ev>()
        .policy(Overflow::Backpressure { capacity: 1 })
        .stream();
    center.post(Ev(0));
    let waiting = {
        let center = center.clone();
        tokio::spawn(async move { center.post_async(Ev(1)).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!waiting.is_finished(), "post_async did not wait for room");
    drop(slow);
    let report = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("post_async hung after its subscriber went away")
        .unwrap();
    assert!(report.is_dead(), "{report:?}");
    assert_eq!(center.stats::<Ev>().dead, 1);
    assert_eq!(dead.take(), [Ev::name()]);
}

#[tokio::test]
async fn post_async_does_not_wait_for_non_backpressure_subscribers() {
    let center = NotificationCenter::new();
    let _lossy = center
        .observer::<Ev>()
        .policy(Overflow::DropOldest { capacity: 1 })
        .stream();
    for i in 0..10 {
        tokio::time::timeout(Duration::from_secs(5), center.post_async(Ev(i)))
            .await
            .expect("post_async waited on a drop-oldest stream");
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Nothing missed at subscribe
// ---------------------------------------------------------------------------------------------

#[test]
fn replay_last_delivers_last_value_once() {
    let center = NotificationCenter::new();
    center.retain_last::<Ev>();
    center.post(Ev(1));
    center.post(Ev(2));

    let mut stream = center.observer::<Ev>().replay_last().stream();
    let log = Log::new();
    let l = log.clone();
    let _inline = center
        .observer::<Ev>()
        .replay_last()
        .inline(move |e| l.push(e.0));
    assert_eq!(log.snapshot(), [2]);
    assert_next!(stream, Ev(2));
    assert_empty!(stream);

    center.post(Ev(3));
    assert_eq!(log.take(), [2, 3]);
    assert_next!(stream, Ev(3));
    assert_empty!(stream);
}

#[test]
fn replay_last_with_nothing_posted_delivers_nothing() {
    let center = NotificationCenter::new();
    let mut stream = center.observer::<Ev>().replay_last().stream();
    assert_empty!(stream);
    center.post(Ev(1));
    assert_next!(stream, Ev(1));
}

#[test]
fn replay_last_turns_retention_on_for_later_subscribers() {
    let center = NotificationCenter::new();
    let _first = center.observer::<Ev>().replay_last().stream();
    center.post(Ev(5));
    let mut second = center.observer::<Ev>().replay_last().stream();
    assert_next!(second, Ev(5));
}

#[test]
fn replay_last_is_per_sender() {
    let center = NotificationCenter::new();
    center.retain_last::<Ev>();
    let (a, b, silent) = (SenderId::new(), SenderId::new(), SenderId::new());
    center.post_from(a, Ev(1));
    center.post_from(b, Ev(2));
    center.post_from(a, Ev(3));
    center.post(Ev(4)); // no sender: the last value overall, no one's in particular

    let mut from_a = center.observer::<Ev>().sender(a).replay_last().stream();
    let mut from_b = center.observer::<Ev>().sender(b).replay_last().stream();
    let mut from_silent = center
        .observer::<Ev>()
        .sender(silent)
        .replay_last()
        .stream();
    let mut any = center.observer::<Ev>().replay_last().stream();
    assert_eq!(drain(&mut from_a), [Ev(3)]);
    assert_eq!(drain(&mut from_b), [Ev(2)]);
    assert_empty!(from_silent);
    assert_eq!(drain(&mut any), [Ev(4)]);

    center.forget_last::<Ev>(a);
    let mut from_a_again = center.observer::<Ev>().sender(a).replay_last().stream();
    assert_empty!(from_a_again);
}

#[test]
fn replay_last_respects_the_predicate_filter() {
    let center = NotificationCenter::new();
    center.retain_last::<Ev>();
    center.post(Ev(3));
    let mut even = center
        .observer::<Ev>()
        .filter(|e| e.0 % 2 == 0)
        .replay_last()
        .stream();
    assert_empty!(even);
}

#[test]
fn replay_last_races_posts_without_loss_or_duplicates() {
    const POSTS: u64 = 20_000;
    const SUBSCRIBERS: usize = 2;

    #[derive(Debug)]
    struct Seq {
        poster: u64,
        n: u64,
    }
    impl Notification for Seq {}

    let center = NotificationCenter::new();
    center.retain_last::<Seq>();
    let senders = [SenderId::from_raw(0), SenderId::from_raw(1)];
    let done = Arc::new(AtomicBool::new(false));

    let posters: Vec<_> = senders
        .iter()
        .enumerate()
        .map(|(p, &sender)| {
            let center = center.clone();
            thread::spawn(move || {
                for n in 0..POSTS {
                    center.post_from(
                        sender,
                        Seq {
                            poster: p as u64,
                            n,
                        },
                    );
                }
            })
        })
        .collect();

    /// Checks one subscriber's view of one poster: strictly increasing, no gap after the first.
    fn check(seen: &[u64], what: &str) {
        for w in seen.windows(2) {
            assert_eq!(w[1], w[0] + 1, "{what}: gap or duplicate in {:?}", w);
        }
    }

    let subscribers: Vec<_> = (0..SUBSCRIBERS)
        .map(|s| {
            let (center, done) = (center.clone(), done.clone());
            thread::spawn(move || {
                let mut rounds = 0u64;
                while !done.load(SeqCst) || rounds < 3 {
                    rounds += 1;
                    // Alternate: unfiltered stream, per-sender stream, inline observer.
                    match rounds % 3 {
                        0 => {
                            let mut stream = center
                                .observer::<Seq>()
                                .policy(Overflow::DropOldest { capacity: 1 << 20 })
                                .replay_last()
                                .stream();
                            thread::sleep(Duration::from_micros(200));
                            let mut per = [Vec::new(), Vec::new()];
                            loop {
                                match stream.try_recv() {
                                    Ok(v) => per[v.poster as usize].push(v.n),
                                    Err(TryRecvError::Empty) => break,
                                    Err(e) => panic!("{e:?}"),
                                }
                            }
                            drop(stream);
                            for (p, seen) in per.iter().enumerate() {
                                check(seen, &format!("sub {s} any-stream poster {p}"));
                            }
                        }
                        1 => {
                            let p = (rounds / 3 % 2) as usize;
                            let mut stream = center
                                .observer::<Seq>()
                                .sender(SenderId::from_raw(p as u64))
                                .policy(Overflow::DropOldest { capacity: 1 << 20 })
                                .replay_last()
                                .stream();
                            thread::sleep(Duration::from_micros(200));
                            let seen: Vec<u64> = {
                                let mut v = Vec::new();
                                loop {
                                    match stream.try_recv() {
                                        Ok(x) => {
                                            assert_eq!(x.poster, p as u64);
                                            v.push(x.n)
                                        }
                                        Err(TryRecvError::Empty) => break,
                                        Err(e) => panic!("{e:?}"),
                                    }
                                }
                                v
                            };
                            drop(stream);
                            check(&seen, &format!("sub {s} sender-stream poster {p}"));
                        }
                        _ => {
                            let per: Arc<Mutex<[Vec<u64>; 2]>> = Arc::default();
                            let pc = per.clone();
                            let sub = center
                                .observer::<Seq>()
                                .replay_last()
                                .inline(move |v| pc.lock().unwrap()[v.poster as usize].push(v.n));
                            thread::sleep(Duration::from_micros(200));
                            drop(sub);
                            let per = per.lock().unwrap();
                            for (p, seen) in per.iter().enumerate() {
                                check(seen, &format!("sub {s} inline poster {p}"));
                            }
                        }
                    }
                }
                rounds
            })
        })
        .collect();

    for p in posters {
        p.join().unwrap();
    }
    done.store(true, SeqCst);
    let rounds: u64 = subscribers.into_iter().map(|s| s.join().unwrap()).sum();
    assert!(rounds >= 6);
}

#[test]
fn replay_subscriber_sees_replayed_value_then_every_later_post() {
    // The sequential core of the race above: a subscriber that joins between posts gets the
    // last one replayed and every later one exactly once.
    let center = NotificationCenter::new();
    center.retain_last::<Ev>();
    let mut streams = Vec::new();
    for i in 0..5 {
        center.post(Ev(i));
        streams.push(center.observer::<Ev>().replay_last().stream());
    }
    for (i, mut s) in streams.into_iter().enumerate() {
        let got: Vec<u32> = drain(&mut s).into_iter().map(|e| e.0).collect();
        assert_eq!(got, (i as u32..5).collect::<Vec<_>>());
    }
}

// ---------------------------------------------------------------------------------------------
// 7. Dead notifications
// ---------------------------------------------------------------------------------------------

#[test]
fn dead_notifications_are_counted_and_reported() {
    let center = NotificationCenter::new();
    let dead: Log<(&'static str, Option<SenderId>)> = Log::new();
    let d = dead.clone();
    let _watch = center.observe(move |n: &DeadNotification| d.push((n.notification, n.sender)));
    let sender = SenderId::new();

    assert!(center.post(Ev(0)).is_dead());
    assert!(center.post_from(sender, Ev(1)).is_dead());
    assert_eq!(
        dead.take(),
        [(Ev::name(), None), (Ev::name(), Some(sender))]
    );
    assert_eq!(center.stats::<Ev>().dead, 2);

    // With an observer it is no longer dead; a filtered-out post still is.
    let _some = center.observer::<Ev>().sender(sender).inline(|_| {});
    assert!(!center.post_from(sender, Ev(2)).is_dead());
    assert!(center.post(Ev(3)).is_dead());
    assert_eq!(center.stats::<Ev>().dead, 3);
    assert_eq!(center.stats::<Ev>().posted, 4);
    assert_eq!(dead.take().len(), 1);
}

#[test]
fn dead_notifications_are_counted_without_a_watcher() {
    let center = NotificationCenter::new();
    for i in 0..3 {
        center.post(Ev(i));
    }
    assert_eq!(center.stats::<Ev>().dead, 3);
    assert_eq!(center.stats::<DeadNotification>().posted, 0);
}

#[test]
fn a_post_lost_only_to_overflow_is_not_dead() {
    let center = NotificationCenter::new();
    let _full = center
        .observer::<Ev>()
        .policy(Overflow::Backpressure { capacity: 1 })
        .stream();
    center.post(Ev(0));
    let report = center.post(Ev(1));
    assert!(!report.is_dead());
    assert_eq!(center.stats::<Ev>().dead, 0);
}

// ---------------------------------------------------------------------------------------------
// 8. Sender filter, predicate filter
// ---------------------------------------------------------------------------------------------

#[test]
fn sender_filter_only_sees_that_sender() {
    let center = NotificationCenter::new();
    let (a, b) = (SenderId::new(), SenderId::new());
    let log = Log::new();
    let l = log.clone();
    let _inline = center
        .observer::<Ev>()
        .sender(a)
        .inline(move |e| l.push(e.0));
    let mut stream = center.observer::<Ev>().sender(a).stream();
    center.post_from(a, Ev(1));
    center.post_from(b, Ev(2));
    center.post(Ev(3));
    center.post_from(a, Ev(4));
    assert_eq!(log.take(), [1, 4]);
    assert_eq!(drain(&mut stream), [Ev(1), Ev(4)]);
}

#[test]
fn unfiltered_observer_sees_all_senders() {
    let center = NotificationCenter::new();
    let (a, b) = (SenderId::new(), SenderId::new());
    let log = Log::new();
    let l = log.clone();
    let _inline = center.observe(move |e: &Ev| l.push(e.0));
    center.post_from(a, Ev(1));
    center.post_from(b, Ev(2));
    center.post(Ev(3));
    assert_eq!(log.take(), [1, 2, 3]);
}

#[test]
fn sender_id_of_arc_filters_by_object() {
    let center = NotificationCenter::new();
    let session = Arc::new(String::from("session"));
    let other = Arc::new(String::from("other"));
    let mut stream = center
        .observer::<Ev>()
        .sender(SenderId::of(&session))
        .stream();
    center.post_from(SenderId::of(&other), Ev(1));
    center.post_from(SenderId::of(&session.clone()), Ev(2));
    assert_eq!(drain(&mut stream), [Ev(2)]);
}

#[test]
fn predicate_filter() {
    let center = NotificationCenter::new();
    let log = Log::new();
    let l = log.clone();
    let _inline = center
        .observer::<Ev>()
        .filter(|e| e.0 % 2 == 0)
        .inline(move |e| l.push(e.0));
    let mut odd = center.observer::<Ev>().filter(|e| e.0 % 2 == 1).stream();
    let reports: Vec<_> = (0..5).map(|i| center.post(Ev(i))).collect();
    assert_eq!(log.take(), [0, 2, 4]);
    assert_eq!(drain(&mut odd), [Ev(1), Ev(3)]);
    assert!(reports.iter().all(|r| r.received == 1));
}

#[test]
fn predicate_filter_panic_is_isolated() {
    quiet_panics();
    let center = NotificationCenter::new();
    let panics = Arc::new(AtomicUsize::new(0));
    let p = panics.clone();
    let _watch = center.observe(move |_: &ObserverPanicked| {
        p.fetch_add(1, SeqCst);
    });
    let log = Log::new();
    let l = log.clone();
    let _inline = center
        .observer::<Ev>()
        .filter(|e| if e.0 == 1 { panic!("provoked") } else { true })
        .inline(move |e| l.push(e.0));
    let mut stream = center
        .observer::<Ev>()
        .filter(|e| if e.0 == 2 { panic!("provoked") } else { true })
        .stream();
    let l = log.clone();
    let _bystander = center.observe(move |e: &Ev| l.push(100 + e.0));

    let reports: Vec<_> = (0..3).map(|i| center.post(Ev(i))).collect();
    assert_eq!(log.take(), [0, 100, 101, 2, 102]);
    assert_eq!(drain(&mut stream), [Ev(0), Ev(1)]);
    assert_eq!(
        reports.iter().map(|r| r.panicked).collect::<Vec<_>>(),
        [0, 1, 1]
    );
    assert_eq!(panics.load(SeqCst), 2);
    assert_eq!(center.stats::<Ev>().panicked, 2);
}

// ---------------------------------------------------------------------------------------------
// The Subscription guard
// ---------------------------------------------------------------------------------------------

#[test]
fn detach_keeps_observer() {
    let center = NotificationCenter::new();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    center
        .observe(move |_: &Ev| {
            c.fetch_add(1, SeqCst);
        })
        .detach();
    center.post(Ev(0));
    center.post(Ev(1));
    assert_eq!(count.load(SeqCst), 2);
    assert_eq!(center.stats::<Ev>().observers, 1);
}

#[test]
fn dropping_a_subscription_unsubscribes() {
    let center = NotificationCenter::new();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let sub = center.observe(move |_: &Ev| {
        c.fetch_add(1, SeqCst);
    });
    center.post(Ev(0));
    drop(sub);
    assert!(center.post(Ev(1)).is_dead());
    assert_eq!(count.load(SeqCst), 1);
    assert_eq!(center.stats::<Ev>().observers, 0);
}

#[test]
fn subscription_outliving_its_center_drops_quietly() {
    let center = NotificationCenter::new();
    let sub = center.observe(|_: &Ev| {});
    let stream = center.stream::<Ev>();
    drop(center);
    drop(sub);
    drop(stream);
}

#[test]
fn stream_closes_when_center_dropped() {
    let center = NotificationCenter::new();
    let mut stream = center.stream::<Ev>();
    center.post(Ev(1));
    center.post(Ev(2));
    drop(center);
    assert!(stream.is_closed());
    assert_next!(stream, Ev(1));
    assert_eq!(stream.recv_blocking().unwrap().0, 2);
    assert_eq!(stream.try_recv().unwrap_err(), TryRecvError::Closed);
    assert_eq!(stream.recv_blocking().unwrap_err(), RecvError::Closed);
}

#[tokio::test]
async fn stream_closes_when_center_dropped_wakes_a_waiting_receiver() {
    let center = NotificationCenter::new();
    let mut stream = center.stream::<Ev>();
    let receiver = tokio::spawn(async move { stream.recv().await });
    tokio::task::yield_now().await;
    drop(center);
    let got = tokio::time::timeout(Duration::from_secs(5), receiver)
        .await
        .expect("the receiver was not woken when the center went away")
        .unwrap();
    assert_eq!(got.unwrap_err(), RecvError::Closed);
}

#[test]
fn stream_close_keeps_buffered_values() {
    let center = NotificationCenter::new();
    let mut stream = center.stream::<Ev>();
    center.post(Ev(1));
    stream.unsubscribe();
    assert!(center.post(Ev(2)).is_dead());
    assert_next!(stream, Ev(1));
    assert_eq!(stream.try_recv().unwrap_err(), TryRecvError::Closed);
}

// ---------------------------------------------------------------------------------------------
// Counters
// ---------------------------------------------------------------------------------------------

#[test]
fn stats_count_posted_delivered_dropped_panicked_dead() {
    quiet_panics();
    let center = NotificationCenter::new();
    center.post(Ev(0)); // dead
    let _inline = center.observe(|_: &Ev| {});
    let _bad = center.observe(|e: &Ev| {
        if e.0 == 2 {
            panic!("provoked")
        }
    });
    let mut stream = center
        .observer::<Ev>()
        .policy(Overflow::DropOldest { capacity: 1 })
        .stream();
    center.post(Ev(1)); // 2 inline calls + 1 buffered
    center.post(Ev(2)); // 1 inline call, 1 panic, Ev(1) evicted from the stream
    assert_eq!(stream.try_recv().unwrap_err(), TryRecvError::Lagged(1));
    assert_next!(stream, Ev(2));

    let stats = center.stats::<Ev>();
    assert_eq!(stats.posted, 3);
    assert_eq!(stats.dead, 1);
    assert_eq!(stats.panicked, 1);
    assert_eq!(stats.dropped, 1);
    // 3 inline calls that returned + 1 value received from the stream.
    assert_eq!(stats.delivered, 4);
    assert_eq!(stats.observers, 3);
}

#[test]
fn inline_only_posts_count_removed_filtered_and_panicking_entries_exactly() {
    // Without streams or retention a post takes the common path, where each entry counts as
    // delivered unless it says otherwise: every way of saying otherwise, in one post each.
    quiet_panics();
    let center = NotificationCenter::new();
    let victim: Arc<Mutex<Option<Subscription>>> = Arc::default();
    let v = victim.clone();
    let _killer = center.observer::<Ev>().priority(1).inline(move |_| {
        drop(v.lock().unwrap().take());
    });
    *victim.lock().unwrap() = Some(center.observe(|_: &Ev| {}));
    let _odd_only = center
        .observer::<Ev>()
        .filter(|e| e.0 % 2 == 1)
        .inline(|_| {});
    let _bad = center.observe(|e: &Ev| {
        if e.0 == 2 {
            panic!("provoked")
        }
    });
    let _fine = center.observe(|_: &Ev| {});

    // The victim is removed by the killer before its turn: skipped, not counted.
    let r = center.post(Ev(1));
    assert_eq!((r.received, r.panicked), (4, 0));
    // The filter refuses, one observer panics.
    let r = center.post(Ev(2));
    assert_eq!((r.received, r.panicked), (2, 1));
    let s = center.stats::<Ev>();
    assert_eq!((s.posted, s.delivered, s.panicked, s.dead), (2, 6, 1, 0));
}

#[test]
fn an_observer_removed_inside_a_post_is_skipped_by_every_post_in_progress_on_that_thread() {
    // The outer post iterates one snapshot; a post nested in it iterates a newer one (an
    // observer subscribed in between). The victim, in both, is unsubscribed inside the nested
    // post before its turn in either: neither post calls it, and both count it skipped.
    let center = NotificationCenter::new();
    let victim: Arc<Mutex<Option<Subscription>>> = Arc::default();
    let newcomers: Arc<Mutex<Vec<Subscription>>> = Arc::default();
    let reports = Log::new();
    let (c, v, n, r) = (
        center.clone(),
        victim.clone(),
        newcomers.clone(),
        reports.clone(),
    );
    let _killer = center
        .observer::<Ev>()
        .priority(1)
        .inline(move |e: &Ev| match e.0 {
            0 => {
                n.lock().unwrap().push(c.observe(|_: &Ev| {}));
                let nested = c.post(Ev(1));
                r.push(("nested", nested.received));
            }
            1 => drop(v.lock().unwrap().take()),
            _ => {}
        });
    let calls = Arc::new(AtomicUsize::new(0));
    let k = calls.clone();
    *victim.lock().unwrap() = Some(center.observe(move |_: &Ev| {
        k.fetch_add(1, SeqCst);
    }));

    let outer = center.post(Ev(0));
    assert_eq!(calls.load(SeqCst), 0, "a removed observer was called");
    // Outer: the killer only (the newcomer joined after its snapshot). Nested: the killer and
    // the newcomer.
    assert_eq!(outer.received, 1);
    assert_eq!(reports.take(), vec![("nested", 2)]);
    let s = center.stats::<Ev>();
    assert_eq!((s.posted, s.delivered, s.dead, s.observers), (2, 3, 0, 2));

    // Later posts do not see it either.
    assert_eq!(center.post(Ev(2)).received, 2);
    assert_eq!(calls.load(SeqCst), 0);
}

#[test]
fn an_observer_swapped_for_another_inside_a_post_is_not_replaced_in_that_post() {
    // Snapshots share their array of entries where they can: removing the last entry only
    // shortens the next snapshot, and adding one at the end writes the slot after the current
    // ones. Here, inside a post, the first observer removes the last one and subscribes a
    // newcomer, which goes where the removed one was. The post in progress still iterates
    // the older, longer snapshot: it must find the removed observer there (and skip it), not
    // the newcomer, which joined after the post began.
    let center = NotificationCenter::new();
    let last: Arc<Mutex<Option<Subscription>>> = Arc::default();
    let newcomers: Arc<Mutex<Vec<Subscription>>> = Arc::default();
    let removed_calls = Arc::new(AtomicUsize::new(0));
    let newcomer_calls = Arc::new(AtomicUsize::new(0));
    let (c, l, n, k) = (
        center.clone(),
        last.clone(),
        newcomers.clone(),
        newcomer_calls.clone(),
    );
    let _swapper = center.observe(move |e: &Ev| {
        if e.0 == 0 {
            drop(l.lock().unwrap().take());
            let k = k.clone();
            n.lock().unwrap().push(c.observe(move |_: &Ev| {
                k.fetch_add(1, SeqCst);
            }));
        }
    });
    let _middle = center.observe(|_: &Ev| {});
    let r = removed_calls.clone();
    *last.lock().unwrap() = Some(center.observe(move |_: &Ev| {
        r.fetch_add(1, SeqCst);
    }));

    let first = center.post(Ev(0));
    assert_eq!(
        removed_calls.load(SeqCst),
        0,
        "a removed observer was called"
    );
    assert_eq!(
        newcomer_calls.load(SeqCst),
        0,
        "an observer subscribed during a post got that post"
    );
    assert_eq!(first.received, 2);

    // The next post reaches the newcomer, once, and not the removed observer.
    assert_eq!(center.post(Ev(1)).received, 3);
    assert_eq!(newcomer_calls.load(SeqCst), 1);
    assert_eq!(removed_calls.load(SeqCst), 0);

    // Swapping again between posts (outside any post, so the old snapshots are freed at
    // once) reuses the slot: every post sees exactly the current observers.
    for round in 2..40u32 {
        newcomers.lock().unwrap().pop();
        let k = newcomer_calls.clone();
        newcomers
            .lock()
            .unwrap()
            .push(center.observe(move |_: &Ev| {
                k.fetch_add(1, SeqCst);
            }));
        assert_eq!(center.post(Ev(round)).received, 3);
    }
    assert_eq!(newcomer_calls.load(SeqCst), 39);
}

#[test]
fn stats_keep_deliveries_of_streams_that_are_gone() {
    let center = NotificationCenter::new();
    let mut stream = center.stream::<Ev>();
    center.post(Ev(0));
    center.post(Ev(1));
    assert_next!(stream, Ev(0));
    assert_next!(stream, Ev(1));
    drop(stream);
    assert_eq!(center.stats::<Ev>().delivered, 2);
}

#[test]
fn stats_count_values_received_after_stream_close() {
    let center = NotificationCenter::new();
    let mut stream = center.stream::<Ev>();
    center.post(Ev(0));
    center.post(Ev(1));
    stream.unsubscribe(); // documented: values already buffered can still be received
    assert_next!(stream, Ev(0));
    assert_next!(stream, Ev(1));
    let stats = center.stats::<Ev>();
    assert_eq!(
        stats.delivered + stats.dropped,
        stats.posted,
        "a value received after close() is neither delivered nor dropped: {stats:?}"
    );
}

#[test]
fn stats_of_an_unknown_type_are_zero() {
    let center = NotificationCenter::new();
    let stats = center.stats::<Other>();
    assert_eq!((stats.posted, stats.delivered, stats.observers), (0, 0, 0));
    assert!(stats.buffers.is_empty());
}

#[test]
fn queue_depth_is_reported_per_buffered_subscriber() {
    let center = NotificationCenter::new();
    let _inline = center.observe(|_: &Ev| {});
    let mut a = center
        .observer::<Ev>()
        .policy(Overflow::DropOldest { capacity: 8 })
        .stream();
    let b = center
        .observer::<Ev>()
        .policy(Overflow::DropNewest { capacity: 3 })
        .stream();
    for i in 0..5 {
        center.post(Ev(i));
    }
    assert_next!(a, Ev(0));

    let stats = center.stats::<Ev>();
    assert_eq!(stats.buffers.len(), 2, "one entry per buffered subscriber");
    let of = |id| {
        stats
            .buffers
            .iter()
            .find(|s| s.observer == id)
            .copied()
            .unwrap()
    };
    let (sa, sb) = (of(a.id()), of(b.id()));
    assert_eq!(
        (sa.depth, sa.capacity, sa.delivered, sa.dropped),
        (4, 8, 1, 0)
    );
    assert_eq!(
        (sb.depth, sb.capacity, sb.delivered, sb.dropped),
        (3, 3, 0, 2)
    );
    assert_eq!(a.stats().depth, 4);
    assert_eq!(a.len(), 4);
    assert_eq!(b.stats(), sb);
}

// ---------------------------------------------------------------------------------------------
// Handles
// ---------------------------------------------------------------------------------------------

#[test]
fn typed_channel_handle_posts_like_center() {
    let center = NotificationCenter::new();
    let channel = center.poster::<Ev>();
    assert!(channel.center().same_center(&center));
    let log = Log::new();
    let l = log.clone();
    let _via_center = center.observe(move |e: &Ev| l.push(("center", e.0)));
    let l = log.clone();
    let _via_channel = center.observe(move |e: &Ev| l.push(("channel", e.0)));
    let mut stream = center.stream::<Ev>();
    let sender = SenderId::new();
    let mut from_sender = center.observer::<Ev>().sender(sender).stream();

    assert_eq!(channel.post(Ev(1)).received, 3);
    assert_eq!(center.post(Ev(2)).received, 3);
    assert_eq!(channel.post_from(sender, Ev(3)).received, 4);
    assert_eq!(
        log.take(),
        [
            ("center", 1),
            ("channel", 1),
            ("center", 2),
            ("channel", 2),
            ("center", 3),
            ("channel", 3)
        ]
    );
    assert_eq!(drain(&mut stream), [Ev(1), Ev(2), Ev(3)]);
    assert_eq!(drain(&mut from_sender), [Ev(3)]);
    assert_eq!(channel.stats(), center.stats::<Ev>());
    assert_eq!(channel.stats().posted, 3);
}

#[tokio::test]
async fn typed_channel_post_async_waits_like_center() {
    let center = NotificationCenter::new();
    let channel = center.poster::<Ev>();
    let mut slow = center
        .observer::<Ev>()
        .policy(Overflow::Backpressure { capacity: 1 })
        .stream();
    let sender = SenderId::new();
    channel.post_async(Ev(0)).await;
    let waiting = {
        let channel = channel.clone();
        tokio::spawn(async move { channel.post_async_from(sender, Ev(1)).await })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(!waiting.is_finished());
    assert_eq!(slow.recv().await.unwrap().0, 0);
    assert_eq!(waiting.await.unwrap().received, 1);
    assert_eq!(slow.recv().await.unwrap().0, 1);
}

#[test]
fn global_center_is_shared() {
    #[derive(Debug, PartialEq)]
    struct OnlyInGlobalTest(u8);
    impl Notification for OnlyInGlobalTest {}

    let a = NotificationCenter::global();
    let b = NotificationCenter::global();
    assert!(a.same_center(b));
    assert!(!a.same_center(&NotificationCenter::new()));
    let mut stream = a.stream::<OnlyInGlobalTest>();
    let from_thread = thread::spawn(|| NotificationCenter::global().post(OnlyInGlobalTest(9)));
    assert_eq!(from_thread.join().unwrap().received, 1);
    assert_eq!(stream.try_recv().unwrap().0, 9);
}

#[test]
fn clones_are_the_same_center() {
    let center = NotificationCenter::new();
    let clone = center.clone();
    assert!(center.same_center(&clone));
    let mut stream = clone.stream::<Ev>();
    center.post(Ev(1));
    assert_next!(stream, Ev(1));
}

#[test]
fn notification_name_defaults_to_type_name_and_can_be_declared() {
    struct Named;
    impl Notification for Named {
        fn name() -> &'static str {
            "app.named"
        }
    }
    assert_eq!(Named::name(), "app.named");
    assert!(Ev::name().ends_with("Ev"));
    assert_eq!(ObserverPanicked::name(), "herald.observer.panicked");
    assert_eq!(DeadNotification::name(), "herald.notification.dead");
}

#[test]
fn lagged_and_errors_display() {
    assert!(RecvError::Lagged(3).to_string().contains('3'));
    assert!(!RecvError::Closed.to_string().is_empty());
    assert_eq!(
        TryRecvError::from(RecvError::Lagged(2)),
        TryRecvError::Lagged(2)
    );
    assert_eq!(TryRecvError::from(RecvError::Closed), TryRecvError::Closed);
    assert!(TryRecvError::Empty.is_empty());
    assert!(Lagged(4).to_string().contains('4'));
}

#[test]
fn propagate_policy_counts_the_deliveries_before_the_panic() {
    quiet_panics();
    let center = NotificationCenter::builder()
        .panic_policy(PanicPolicy::Propagate)
        .build();
    let _first = center.observer::<Ev>().priority(1).inline(|_| {});
    let _bad = center.observe(|_: &Ev| panic!("provoked"));
    assert!(catch_unwind(AssertUnwindSafe(|| center.post(Ev(0)))).is_err());
    let stats = center.stats::<Ev>();
    // `Stats::delivered`: "inline observer calls that returned". The first one returned.
    assert_eq!((stats.delivered, stats.panicked), (1, 1), "{stats:?}");
}

#[test]
fn observer_panicked_handler_may_unsubscribe_the_panicking_observer() {
    // A natural use of contract 4: drop an observer once it has panicked. The
    // `ObserverPanicked` handler runs on the posting thread while the panicking observer's call
    // is still "in flight" (its gate entered), so the unsubscribe must not wait for it.
    quiet_panics();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let center = NotificationCenter::new();
        let bad: Arc<Mutex<Option<Subscription>>> = Arc::default();
        let b = bad.clone();
        let _reaper = center.observe(move |_: &ObserverPanicked| {
            drop(b.lock().unwrap().take());
        });
        *bad.lock().unwrap() = Some(center.observe(|_: &Ev| panic!("provoked")));
        let first = center.post(Ev(0));
        let second = center.post(Ev(1));
        done_tx.send((first.panicked, second.is_dead())).unwrap();
    });
    let result = done_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("deadlock: unsubscribing the panicking observer from its ObserverPanicked handler");
    assert_eq!(result, (1, true));
}

#[test]
fn observer_panicked_handler_may_close_a_stream_whose_filter_panicked() {
    quiet_panics();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let center = NotificationCenter::new();
        let stream: Arc<Mutex<Option<herald::NotificationStream<Ev>>>> = Arc::default();
        let s = stream.clone();
        let _reaper = center.observe(move |_: &ObserverPanicked| {
            if let Some(s) = s.lock().unwrap().as_mut() {
                s.unsubscribe();
            }
        });
        *stream.lock().unwrap() = Some(
            center
                .observer::<Ev>()
                .filter(|_| panic!("provoked"))
                .stream(),
        );
        center.post(Ev(0));
        done_tx.send(()).unwrap();
    });
    done_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("deadlock: closing a stream from the ObserverPanicked report of its filter");
}

#[tokio::test]
async fn cancelled_post_async_counts_the_value_as_dropped() {
    // Contract 5, loss is never silent: if the caller gives up on `post_async` while it waits
    // for room, the subscriber never gets the value, so it must be counted as dropped.
    let center = NotificationCenter::new();
    let mut slow = center
        .observer::<Ev>()
        .policy(Overflow::Backpressure { capacity: 1 })
        .stream();
    center.post(Ev(0));
    let gave_up = tokio::time::timeout(Duration::from_millis(20), center.post_async(Ev(1))).await;
    assert!(gave_up.is_err(), "post_async should still be waiting");
    assert_eq!(drain(&mut slow), [Ev(0)]);
    let stats = center.stats::<Ev>();
    assert_eq!(
        stats.delivered + stats.dropped,
        stats.posted,
        "the abandoned value is neither delivered nor dropped: {stats:?}"
    );
}

#[test]
fn observer_may_unsubscribe_the_observer_whose_call_posted_to_it() {
    // `outer` is running (below us on this thread's stack) when `inner` drops it: the drop
    // must not wait for that call, which goes on to finish.
    let center = NotificationCenter::new();
    let log = Log::new();
    let outer: Arc<Mutex<Option<Subscription>>> = Arc::default();
    let (c, l) = (center.clone(), log.clone());
    *outer.lock().unwrap() = Some(center.observe(move |e: &Ev| {
        l.push(format!("outer {} start", e.0));
        c.post(Other(e.0));
        l.push(format!("outer {} end", e.0));
    }));
    let (o, l) = (outer.clone(), log.clone());
    let _inner = center.observe(move |x: &Other| {
        l.push(format!("inner {}", x.0));
        drop(o.lock().unwrap().take());
    });
    center.post(Ev(1));
    center.post(Ev(2));
    assert_eq!(log.take(), ["outer 1 start", "inner 1", "outer 1 end"]);
}

/// The delivery loop resumes after each panic at the next observer, whatever the panics'
/// positions (first, adjacent, last), and counts each one.
#[test]
fn delivery_resumes_after_every_panic_in_order() {
    quiet_panics();
    let center = NotificationCenter::new();
    let log = Log::new();
    let mut subs = Vec::new();
    for (i, panics) in [true, false, true, true, false, true]
        .into_iter()
        .enumerate()
    {
        let l = log.clone();
        subs.push(center.observer::<Ev>().inline(move |_: &Ev| {
            if panics {
                panic!("provoked {i}");
            }
            l.push(if i == 1 { "a" } else { "b" });
        }));
    }
    for _ in 0..3 {
        let report = center.post(Ev(1));
        assert_eq!(log.take(), ["a", "b"]);
        assert_eq!((report.received, report.panicked), (2, 4));
    }
}

/// Each panic is reported with the identity of the observer that panicked, in delivery order,
/// however many observers the loop ran in between: the loop, not each observer, catches the
/// panics, and it must name the one it was calling. Both delivery loops: inline observers
/// only (the common path), and beside a stream (the general path).
#[test]
fn each_panic_names_the_observer_that_panicked() {
    for with_stream in [false, true] {
        quiet_panics();
        let center = NotificationCenter::new();
        let reports: Log<u64> = Log::new();
        let r = reports.clone();
        let _watch = center.observe(move |p: &ObserverPanicked| r.push(p.observer.as_u64()));
        let mut stream = with_stream.then(|| center.observer::<Ev>().stream());
        let mut subs = Vec::new();
        let mut panicking = Vec::new();
        for i in 0..9u64 {
            // Panics at 0, 3, 4 and 8; the others filter (odd values only) or complete.
            let sub = match i {
                0 | 3 | 4 | 8 => center.observe(move |_: &Ev| panic!("provoked {i}")),
                5 => center
                    .observer::<Ev>()
                    .filter(|e| e.0 % 2 == 1)
                    .inline(|_| {}),
                _ => center.observe(|_: &Ev| {}),
            };
            if matches!(i, 0 | 3 | 4 | 8) {
                panicking.push(sub.id().as_u64());
            }
            subs.push(sub);
        }
        let report = center.post(Ev(2));
        let streamed = u32::from(with_stream);
        assert_eq!(
            (report.received, report.panicked),
            (4 + streamed, 4),
            "with a stream: {with_stream}"
        );
        assert_eq!(reports.take(), panicking, "with a stream: {with_stream}");
        if let Some(stream) = stream.as_mut() {
            assert_eq!(stream.try_recv().map(|v| v.0).ok(), Some(2));
        }
    }
}

/// A replayed value comes with the sender that posted it, to observers that see senders.
#[test]
fn replay_last_reports_the_sender_that_posted_the_value() {
    let center = NotificationCenter::new();
    center.retain_last::<Ev>();
    let poster = SenderId::new();
    center.post_from(poster, Ev(3));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let _all = center
        .observer::<Ev>()
        .replay_last()
        .inline_with_sender(move |e: &Ev, sender| s.lock().unwrap().push((e.0, sender)));
    let t = seen.clone();
    let _one = center
        .observer::<Ev>()
        .sender(poster)
        .replay_last()
        .inline_with_sender(move |e: &Ev, sender| t.lock().unwrap().push((e.0, sender)));
    assert_eq!(
        *seen.lock().unwrap(),
        [(3, Some(poster)), (3, Some(poster))]
    );
}
