//! Many centers, many threads: per-thread read slots are recycled, not leaked, and counters
//! stay exact when threads come and go.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::thread;

use herald::{Notification, NotificationCenter};

#[derive(Debug)]
struct Ev(u64);
impl Notification for Ev {}

#[test]
fn short_lived_threads_keep_counters_exact() {
    let center = NotificationCenter::new();
    let sum = Arc::new(AtomicU64::new(0));
    let s = sum.clone();
    let _obs = center.observe(move |e: &Ev| {
        s.fetch_add(e.0, SeqCst);
    });
    for round in 0..50 {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let center = center.clone();
                thread::spawn(move || {
                    for i in 0..100 {
                        center.post(Ev(round * 1000 + t * 100 + i));
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    }
    let stats = center.stats::<Ev>();
    assert_eq!(stats.posted, 50 * 4 * 100);
    assert_eq!(stats.delivered, 50 * 4 * 100);
    let expected: u64 = (0..50u64)
        .flat_map(|r| (0..4u64).flat_map(move |t| (0..100u64).map(move |i| r * 1000 + t * 100 + i)))
        .sum();
    assert_eq!(sum.load(SeqCst), expected);
}

#[test]
fn many_short_lived_centers_on_long_lived_threads() {
    let workers: Vec<_> = (0..2)
        .map(|_| {
            thread::spawn(|| {
                for _ in 0..2_000 {
                    let center = NotificationCenter::new();
                    let _o = center.observe(|_: &Ev| {});
                    assert_eq!(center.post(Ev(1)).received, 1);
                    assert_eq!(center.stats::<Ev>().posted, 1);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
}

#[test]
fn a_center_dropped_while_another_thread_still_holds_its_slot() {
    let center = NotificationCenter::new();
    let c = center.clone();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let t = thread::spawn(move || {
        c.post(Ev(1));
        drop(c);
        done_tx.send(()).unwrap();
        rx.recv().unwrap();
        // The old center is gone; a new one on this thread works.
        let fresh = NotificationCenter::new();
        let _o = fresh.observe(|_: &Ev| {});
        assert_eq!(fresh.post(Ev(2)).received, 1);
    });
    done_rx.recv().unwrap();
    drop(center);
    tx.send(()).unwrap();
    t.join().unwrap();
}

/// An observer that unsubscribes while holding a lock another thread's observer is waiting
/// for must not deadlock: unsubscribing from inside a post never waits for other posts.
#[test]
fn unsubscribe_inside_an_observer_holding_a_lock_does_not_deadlock() {
    use std::sync::mpsc;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    #[derive(Debug)]
    struct First;
    impl Notification for First {}
    #[derive(Debug)]
    struct Second;
    impl Notification for Second {}

    let center = NotificationCenter::new();
    let shared = Arc::new(Mutex::new(()));
    let victim = Arc::new(Mutex::new(Some(center.observe(|_: &Ev| {}))));
    let (b_entered_tx, b_entered_rx) = mpsc::channel::<()>();
    let (a_locked_tx, a_locked_rx) = mpsc::channel::<()>();
    // Observers are `Fn + Sync`: the channel ends go behind mutexes.
    let (b_entered_tx, b_entered_rx) = (Mutex::new(b_entered_tx), Mutex::new(b_entered_rx));
    let (a_locked_tx, a_locked_rx) = (Mutex::new(a_locked_tx), Mutex::new(a_locked_rx));

    // Thread B: its observer waits until A holds the lock, then wants the lock too.
    let s = shared.clone();
    let _b_obs = center.observe(move |_: &Second| {
        a_locked_rx.lock().unwrap().recv().unwrap();
        b_entered_tx.lock().unwrap().send(()).unwrap();
        drop(s.lock().unwrap());
    });
    // Thread A: its observer takes the lock, waits for B to be inside its post, then drops a
    // subscription while still holding the lock.
    let (s, v) = (shared.clone(), victim.clone());
    let _a_obs = center.observe(move |_: &First| {
        let _held = s.lock().unwrap();
        a_locked_tx.lock().unwrap().send(()).unwrap();
        b_entered_rx.lock().unwrap().recv().unwrap();
        drop(v.lock().unwrap().take());
    });

    let (done_tx, done_rx) = mpsc::channel::<()>();
    let b = {
        let center = center.clone();
        let done = done_tx.clone();
        thread::spawn(move || {
            center.post(Second);
            done.send(()).unwrap();
        })
    };
    let a = {
        let center = center.clone();
        thread::spawn(move || {
            center.post(First);
            done_tx.send(()).unwrap();
        })
    };
    for _ in 0..2 {
        done_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("deadlock: a re-entrant unsubscribe waited for a post blocked on its lock");
    }
    a.join().unwrap();
    b.join().unwrap();
    assert_eq!(center.stats::<Ev>().observers, 0);
}
