//! Loom models of the engine's races: post against subscribe and unsubscribe.
//!
//! Built only with `--cfg herald_loom`; `tests/loom_runner.rs` builds and runs it as part of
//! the normal test command. Run by hand with:
//! `RUSTFLAGS="--cfg herald_loom" cargo test --release --test loom`
#![cfg(herald_loom)]

use herald::{Notification, NotificationCenter};
use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::thread;

#[derive(Debug)]
struct Ev(u32);
impl Notification for Ev {}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(f);
}

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
