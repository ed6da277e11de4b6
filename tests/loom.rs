//! Loom models of the engine's races: post against subscribe and unsubscribe.
//!
//! Built only with `--cfg herald_loom`; `tests/loom_runner.rs` builds and runs it as part of
//! the normal test command. Run by hand with:
//! `RUSTFLAGS="--cfg herald_loom" cargo test --release --test loom`
#![cfg(herald_loom)]

mod loom_support;
use loom_support::model;

use herald::{Notification, NotificationCenter};
use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::thread;

#[derive(Debug)]
struct Ev(u32);
impl Notification for Ev {}

/// Contract 3: once the drop of a subscription returns, the observer never runs again, even
/// when a post on another thread loaded the snapshot that still lists it.
#[test]
fn unsubscribe_is_quiescent_against_a_concurrent_post() {
    model(|| {
        let center = NotificationCenter::new();
        let gone = Arc::new(AtomicBool::new(false));
        let calls_after = Arc::new(AtomicUsize::new(0));
        let (g, c) = (gone.clone(), calls_after.clone());
        let sub = center.observe(move |_: &Ev| {
            if g.load(Ordering::SeqCst) {
                c.fetch_add(1, Ordering::SeqCst);
            }
        });
        let poster = {
            let center = center.clone();
            thread::spawn(move || {
                center.post(Ev(1));
            })
        };
        drop(sub);
        gone.store(true, Ordering::SeqCst);
        poster.join().unwrap();
        assert_eq!(
            calls_after.load(Ordering::SeqCst),
            0,
            "called after unsubscribe returned"
        );
    });
}

/// An observer subscribed throughout misses nothing and sees nothing twice while another
/// observer subscribes and unsubscribes concurrently.
#[test]
fn observer_subscribed_throughout_misses_nothing_during_churn() {
    model(|| {
        let center = NotificationCenter::new();
        let seen = Arc::new(AtomicUsize::new(0));
        let s = seen.clone();
        let _steady = center.observe(move |_: &Ev| {
            s.fetch_add(1, Ordering::SeqCst);
        });
        let poster = {
            let center = center.clone();
            thread::spawn(move || {
                center.post(Ev(1));
                center.post(Ev(2));
            })
        };
        let churn = center.observe(|_: &Ev| {});
        drop(churn);
        poster.join().unwrap();
        assert_eq!(seen.load(Ordering::SeqCst), 2);
    });
}

/// An observer subscribing while a post runs gets that post at most once, and every post
/// that starts after its subscribe returned.
#[test]
fn subscribe_racing_post_delivers_at_most_once() {
    model(|| {
        let center = NotificationCenter::new();
        let seen = Arc::new(AtomicUsize::new(0));
        let poster = {
            let center = center.clone();
            thread::spawn(move || {
                center.post(Ev(1));
            })
        };
        let s = seen.clone();
        let sub = center.observe(move |_: &Ev| {
            s.fetch_add(1, Ordering::SeqCst);
        });
        poster.join().unwrap();
        assert!(seen.load(Ordering::SeqCst) <= 1);
        center.post(Ev(2));
        let after = seen.load(Ordering::SeqCst);
        assert!((1..=2).contains(&after));
        drop(sub);
    });
}

/// Contract 6: a `replay_last` stream racing a post gets the posted value exactly once,
/// either replayed or delivered.
#[test]
fn replay_last_racing_post_is_exactly_once() {
    model(|| {
        let center = NotificationCenter::new();
        center.retain_last::<Ev>();
        let poster = {
            let center = center.clone();
            thread::spawn(move || {
                center.post(Ev(7));
            })
        };
        let mut stream = center.observer::<Ev>().replay_last().stream();
        poster.join().unwrap();
        let mut got = Vec::new();
        while let Ok(v) = stream.try_recv() {
            got.push(v.0);
        }
        assert_eq!(got, [7]);
    });
}

/// Two threads unsubscribing the same observer: both return, neither hangs, and the
/// observer is gone.
#[test]
fn concurrent_unsubscribe_of_the_same_stream_and_post() {
    model(|| {
        let center = NotificationCenter::new();
        let mut stream = center.stream::<Ev>();
        let poster = {
            let center = center.clone();
            thread::spawn(move || {
                center.post(Ev(1));
            })
        };
        stream.unsubscribe();
        poster.join().unwrap();
        // Whatever was accepted before the close is still received, then Closed.
        let mut n = 0;
        loop {
            match stream.try_recv() {
                Ok(_) => n += 1,
                Err(e) => {
                    assert_eq!(e, herald::TryRecvError::Closed);
                    break;
                }
            }
        }
        assert!(n <= 1);
        assert_eq!(center.stats::<Ev>().observers, 0);
    });
}

/// Two streams on one shared ring: a post writes the ring at the first of them in the order
/// and jumps over the other. The first one is dropped while another thread posts: whether
/// the post sees it listed, removed, or gone, the other stream gets the value exactly once.
#[test]
fn a_ring_keeps_its_post_when_the_stream_it_is_written_at_leaves() {
    model(|| {
        let center = NotificationCenter::new();
        let mut steady = center.stream::<Ev>();
        let first = center.observer::<Ev>().priority(1).stream();
        let poster = {
            let center = center.clone();
            thread::spawn(move || {
                center.post(Ev(1));
            })
        };
        drop(first);
        poster.join().unwrap();
        assert_eq!(steady.try_recv().map(|e| e.0), Ok(1));
        assert_eq!(steady.try_recv().unwrap_err(), herald::TryRecvError::Empty);
    });
}

/// Contract 3, from inside an observer: observer A drops observer B's subscription during a
/// post (which must not wait, or it could deadlock), while another thread posts. After the
/// drop returns, B is never called by this thread's post nor by any post that starts after
/// it; B's closure is freed exactly once.
#[test]
fn unsubscribe_from_inside_a_post_against_a_concurrent_post() {
    model(|| {
        let center = NotificationCenter::new();
        let dropped = Arc::new(AtomicBool::new(false));
        let started_after_drop = Arc::new(AtomicBool::new(false));
        let violations = Arc::new(AtomicUsize::new(0));
        let b_alive = Arc::new(());
        let b = {
            let (d, s, v, alive) = (
                dropped.clone(),
                started_after_drop.clone(),
                violations.clone(),
                b_alive.clone(),
            );
            let poster_thread = thread::current().id();
            center.observer::<Ev>().priority(0).inline(move |_: &Ev| {
                let _keep = &alive;
                // Called on the thread that dropped it, after the drop: a violation.
                if d.load(Ordering::SeqCst) && thread::current().id() == poster_thread {
                    v.fetch_add(1, Ordering::SeqCst);
                }
                // Called by a post that began after the drop returned: a violation.
                if s.load(Ordering::SeqCst) {
                    v.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        let slot = Arc::new(loom::sync::Mutex::new(Some(b)));
        let a = {
            let (slot, d) = (slot.clone(), dropped.clone());
            let poster_thread = thread::current().id();
            center.observer::<Ev>().priority(1).inline(move |_: &Ev| {
                // Only the first thread's post unsubscribes B.
                if thread::current().id() != poster_thread {
                    return;
                }
                let taken = slot.lock().unwrap().take();
                if let Some(sub) = taken {
                    drop(sub);
                    d.store(true, Ordering::SeqCst);
                }
            })
        };
        let other = {
            let (center, d, s) = (center.clone(), dropped.clone(), started_after_drop.clone());
            thread::spawn(move || {
                center.post(Ev(1));
                if d.load(Ordering::SeqCst) {
                    s.store(true, Ordering::SeqCst);
                    center.post(Ev(2));
                }
            })
        };
        center.post(Ev(0));
        other.join().unwrap();
        assert_eq!(violations.load(Ordering::SeqCst), 0);
        drop(a);
        drop(slot);
        drop(center);
        assert_eq!(Arc::strong_count(&b_alive), 1, "B's closure leaked");
    });
}

/// Snapshots share their array of entries (`rcu::ItemBuf`): a subscription at the end writes
/// the slot after the current entries. Here one thread's post removes the last observer from
/// inside an observer (so the longer snapshot it iterates stays alive, its free deferred)
/// while another thread subscribes. The slot the removed observer had must not be written
/// while that post may still read it: under loom every slot is a tracked cell, and a write
/// not ordered after the post's read is a causality violation. (With the live counts ignored,
/// the subscription writes the slot under the post and this model fails.) The removed
/// observer is never called after its drop, and the post in progress never calls the new one
/// in its place.
#[test]
fn a_subscription_never_writes_a_slot_a_post_in_progress_reads() {
    model(|| {
        let center = NotificationCenter::new();
        let victim_calls_after = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicBool::new(false));
        let victim = {
            let (d, c) = (dropped.clone(), victim_calls_after.clone());
            center.observe(move |_: &Ev| {
                if d.load(Ordering::SeqCst) {
                    c.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        let slot = Arc::new(loom::sync::Mutex::new(Some(victim)));
        let _killer = {
            let (slot, d) = (slot.clone(), dropped.clone());
            center.observer::<Ev>().priority(1).inline(move |_: &Ev| {
                if let Some(sub) = slot.lock().unwrap().take() {
                    drop(sub);
                    d.store(true, Ordering::SeqCst);
                }
            })
        };
        let newcomer_calls = Arc::new(AtomicUsize::new(0));
        let subscriber = {
            let (center, n) = (center.clone(), newcomer_calls.clone());
            thread::spawn(move || {
                center.observe(move |_: &Ev| {
                    n.fetch_add(1, Ordering::SeqCst);
                })
            })
        };
        let report = center.post(Ev(0));
        let newcomer = subscriber.join().unwrap();
        // The post delivered to the killer, and to the newcomer only if it subscribed before
        // the post loaded its snapshot: never to the victim, never twice.
        assert_eq!(victim_calls_after.load(Ordering::SeqCst), 0);
        assert_eq!(
            report.received as usize,
            1 + newcomer_calls.load(Ordering::SeqCst)
        );
        assert!(newcomer_calls.load(Ordering::SeqCst) <= 1);
        drop(newcomer);
    });
}

/// The same slot, freed on a third thread: a post reads the array; another thread removes the
/// last observer (waiting out the post, then freeing the longer snapshot); a third subscribes
/// and may reuse the freed slot. The write must be ordered after the post's read through the
/// free (the live count's release/acquire), or loom reports the slot's cell.
#[test]
fn a_slot_freed_on_another_thread_is_reused_only_after_the_reads() {
    model(|| {
        let center = NotificationCenter::new();
        let _first = center.observe(|_: &Ev| {});
        let last = center.observe(|_: &Ev| {});
        let poster = {
            let center = center.clone();
            thread::spawn(move || {
                center.post(Ev(0));
            })
        };
        let remover = thread::spawn(move || drop(last));
        let newcomer = center.observe(|_: &Ev| {});
        poster.join().unwrap();
        remover.join().unwrap();
        assert_eq!(center.post(Ev(1)).received, 2);
        drop(newcomer);
    });
}
