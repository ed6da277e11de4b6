//! Small concurrent scenarios sized for Miri, which checks the `unsafe` read-copy-update code
//! in `src/rcu.rs` for undefined behaviour (use after free, aliasing) on every path that frees
//! or defers freeing: unsubscribe from outside and inside a post, weak expiry, wildcards,
//! new types made while posting, a center dropped while threads still hold slots, and panics
//! unwinding out of entries into either delivery loop.
//!
//! These tests are only meaningful under Miri, which `.ci/run` runs on every build (with a fixed
//! seed): `cargo +nightly miri test --test miri`. In a normal build they are reported
//! **ignored** (the scenarios are tiny, and the engine's concurrency is covered for real by
//! `tests/stress.rs` and the loom models); `-- --ignored` runs them natively as a smoke test.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;

use herald::{Notification, NotificationCenter, Subscription};

#[derive(Debug)]
struct A(u32);
impl Notification for A {
    fn name() -> &'static str {
        "miri.a"
    }
}

#[derive(Debug)]
struct B;
impl Notification for B {
    fn name() -> &'static str {
        "miri.b"
    }
}

const POSTS: u32 = 40;

#[test]
#[cfg_attr(
    not(miri),
    ignore = "run under Miri: cargo +nightly miri test --test miri"
)]
fn posts_race_subscribe_and_unsubscribe() {
    let center = NotificationCenter::new();
    let seen = Arc::new(AtomicUsize::new(0));
    let s = seen.clone();
    let _steady = center.observe(move |_: &A| {
        s.fetch_add(1, SeqCst);
    });
    let poster = {
        let center = center.clone();
        thread::spawn(move || {
            for i in 0..POSTS {
                center.post(A(i));
            }
        })
    };
    for _ in 0..10 {
        let sub = center.observe(|a: &A| {
            std::hint::black_box(a.0);
        });
        let mut stream = center.stream::<A>();
        let _ = stream.try_recv();
        drop(sub);
        drop(stream);
    }
    poster.join().unwrap();
    assert_eq!(seen.load(SeqCst), POSTS as usize);
}

#[test]
#[cfg_attr(
    not(miri),
    ignore = "run under Miri: cargo +nightly miri test --test miri"
)]
fn unsubscribe_from_inside_a_post_defers_the_free() {
    let center = NotificationCenter::new();
    let slot: Arc<Mutex<Vec<Subscription>>> = Arc::new(Mutex::new(Vec::new()));
    for _ in 0..4 {
        let s = slot.clone();
        let sub = center.observe(move |_: &A| {
            // Each call drops one subscription (maybe its own) while the post iterates.
            drop(s.lock().unwrap().pop());
        });
        slot.lock().unwrap().push(sub);
    }
    let other = {
        let center = center.clone();
        thread::spawn(move || {
            for i in 0..POSTS {
                center.post(A(i));
            }
        })
    };
    for i in 0..POSTS {
        center.post(A(i));
    }
    other.join().unwrap();
    assert_eq!(center.stats::<A>().observers, 0);
}

#[test]
#[cfg_attr(
    not(miri),
    ignore = "run under Miri: cargo +nightly miri test --test miri"
)]
fn weak_observers_and_wildcards_come_and_go_while_posting() {
    let center = NotificationCenter::new();
    let poster = {
        let center = center.clone();
        thread::spawn(move || {
            for i in 0..POSTS {
                center.post(A(i));
                center.post(B);
            }
        })
    };
    for _ in 0..5 {
        let target = Arc::new(());
        center
            .observer::<A>()
            .weak(&target, |_: &(), a: &A| {
                std::hint::black_box(a.0);
            })
            .detach();
        let family = center
            .observer::<herald::Wildcard>()
            .family("miri.")
            .inline(|any| {
                std::hint::black_box(any.name());
            });
        drop(target);
        drop(family);
    }
    poster.join().unwrap();
    center.post(A(0));
    assert_eq!(center.stats::<A>().observers, 0);
}

#[test]
#[cfg_attr(
    not(miri),
    ignore = "run under Miri: cargo +nightly miri test --test miri"
)]
fn new_types_are_made_while_other_threads_post() {
    #[derive(Debug)]
    struct C<const K: u8>;
    impl<const K: u8> Notification for C<K> {}
    let center = NotificationCenter::new();
    let poster = {
        let center = center.clone();
        thread::spawn(move || {
            for i in 0..POSTS {
                center.post(A(i));
            }
        })
    };
    center.post(C::<1>);
    center.post(C::<2>);
    let _o = center.observe(|_: &C<3>| {});
    center.post(C::<3>);
    poster.join().unwrap();
    assert_eq!(center.stats::<C<3>>().delivered, 1);
}

#[test]
#[cfg_attr(
    not(miri),
    ignore = "run under Miri: cargo +nightly miri test --test miri"
)]
fn a_center_dropped_while_threads_keep_their_slots() {
    for _ in 0..3 {
        let center = NotificationCenter::new();
        let _o = center.observe(|_: &A| {});
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let center = center.clone();
                thread::spawn(move || {
                    for i in 0..10 {
                        center.post(A(i));
                    }
                })
            })
            .collect();
        drop(center);
        for w in workers {
            w.join().unwrap();
        }
    }
}

/// Entries of every size a type's slab meets (a 32-byte slot, a 64-byte one, one too large
/// for any, so boxed; a sender filter), posted to from another thread while they come and go:
/// freed slots are reused by later subscriptions, and the center is dropped with some still
/// subscribed. Each observer checks its own captures, so a slot handed out twice, or read
/// after its entry was freed, shows up as a wrong count or as Miri's error.
#[test]
#[cfg_attr(
    not(miri),
    ignore = "run under Miri: cargo +nightly miri test --test miri"
)]
fn entries_of_every_size_reuse_their_slots_while_posting() {
    let center = NotificationCenter::new();
    let seen = Arc::new(AtomicUsize::new(0));
    let subscribe = |i: u32| -> Subscription {
        let seen = seen.clone();
        match i % 4 {
            0 => center.observe(move |_: &A| {
                seen.fetch_add(1, SeqCst);
            }),
            1 => {
                let pad = [i; 6];
                center.observe(move |_: &A| {
                    assert_eq!(pad, [i; 6]);
                    seen.fetch_add(1, SeqCst);
                })
            }
            2 => {
                let pad = [u64::from(i); 12];
                center.observe(move |_: &A| {
                    assert_eq!(pad, [u64::from(i); 12]);
                    seen.fetch_add(1, SeqCst);
                })
            }
            _ => center
                .observer::<A>()
                .sender(herald::SenderId::from_raw(1))
                .inline(move |_| {
                    seen.fetch_add(1, SeqCst);
                }),
        }
    };
    let mut subs: Vec<Subscription> = (0..8).map(subscribe).collect();
    let poster = {
        let center = center.clone();
        thread::spawn(move || {
            for i in 0..POSTS {
                center.post(A(i));
                center.post_from(herald::SenderId::from_raw(1), A(i));
            }
        })
    };
    for round in 0..6u32 {
        let gone = subs.remove((round as usize * 3) % subs.len());
        gone.unsubscribe();
        subs.push(subscribe(round + 8));
    }
    poster.join().expect("the poster does not panic");
    let before = seen.load(SeqCst);
    center.post(A(0));
    // Eight are subscribed (the loop above leaves the same ones every run); two of them take
    // only sender 1's posts.
    assert_eq!(seen.load(SeqCst) - before, 6);
    drop(center);
    drop(subs);
}

/// Observers that panic (some after unsubscribing another observer or themselves) on both
/// delivery loops, while another thread posts and subscribes: each panic unwinds out of the
/// entry's function into the loop, which resumes at the next entry. Miri checks that nothing
/// the unwinding passes through, or the pass after it, touches an entry it must not.
#[test]
#[cfg_attr(
    not(miri),
    ignore = "run under Miri: cargo +nightly miri test --test miri"
)]
fn panics_unwind_out_of_entries_into_either_loop() {
    std::panic::set_hook(Box::new(|_| {}));
    for with_stream in [false, true] {
        let center = NotificationCenter::new();
        let seen = Arc::new(AtomicUsize::new(0));
        let victims: Arc<Mutex<Vec<Subscription>>> = Arc::new(Mutex::new(Vec::new()));
        let mut subs = Vec::new();
        for i in 0..6u32 {
            let (s, v) = (seen.clone(), victims.clone());
            subs.push(center.observe(move |a: &A| {
                s.fetch_add(1, SeqCst);
                if i % 2 == 0 {
                    drop(v.lock().unwrap().pop());
                    panic!("provoked {} by {i}", a.0);
                }
            }));
        }
        for _ in 0..3 {
            victims.lock().unwrap().push(center.observe(|a: &A| {
                std::hint::black_box(a.0);
            }));
        }
        let stream = with_stream.then(|| center.stream::<A>());
        let poster = {
            let center = center.clone();
            thread::spawn(move || {
                for i in 0..POSTS / 4 {
                    center.post(A(i));
                }
            })
        };
        for i in 0..POSTS / 4 {
            let report = center.post(A(i));
            assert_eq!(report.panicked, 3);
            drop(center.observe(|_: &A| {}));
        }
        poster.join().unwrap();
        drop(stream);
        assert_eq!(center.stats::<A>().panicked, u64::from(POSTS / 4) * 2 * 3);
        assert_eq!(seen.load(SeqCst), (POSTS / 4) as usize * 2 * 6);
    }
    let _ = std::panic::take_hook();
}
