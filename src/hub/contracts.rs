//! The hub's contracts: what herald promises, each with a runnable example.
//!
//! Each contract is pinned by a test of the same name in `tests/contracts.rs`, and the
//! concurrent ones by the loom model (`tests/loom.rs`) and the stress test (`tests/stress.rs`).
//!
//! # 1. Order
//! Observers of one type run in priority order (higher first), then registration order. Posts
//! from one thread reach each observer in post order.
//!
//! ```
//! use herald::{NotificationCenter, Notification};
//! use std::sync::{Arc, Mutex};
//!
//! struct Ev;
//! impl Notification for Ev {}
//!
//! let center = NotificationCenter::new();
//! let log = Arc::new(Mutex::new(Vec::new()));
//! let l = log.clone();
//! let _a = center.observer::<Ev>().inline(move |_| l.lock().unwrap().push("default, first"));
//! let l = log.clone();
//! let _b = center.observer::<Ev>().priority(5).inline(move |_| l.lock().unwrap().push("high"));
//! let l = log.clone();
//! let _c = center.observer::<Ev>().inline(move |_| l.lock().unwrap().push("default, second"));
//! center.post(Ev);
//! assert_eq!(*log.lock().unwrap(), ["high", "default, first", "default, second"]);
//! ```
//!
//! # 2. Re-entrancy
//! An observer may post, subscribe and unsubscribe (itself included) without deadlock. A nested
//! post is delivered depth-first, before the outer post reaches its next observer (as in
//! Apple's center). An observer added during a post does not get that post.
//!
//! ```
//! use herald::{NotificationCenter, Notification};
//! use std::sync::{Arc, Mutex};
//!
//! struct Outer;
//! impl Notification for Outer {}
//! struct Inner;
//! impl Notification for Inner {}
//!
//! let center = NotificationCenter::new();
//! let log = Arc::new(Mutex::new(Vec::new()));
//! let (c, l) = (center.clone(), log.clone());
//! let _first = center.observe(move |_: &Outer| {
//!     l.lock().unwrap().push("outer 1");
//!     c.post(Inner); // nested: delivered now
//! });
//! let l = log.clone();
//! let _second = center.observe(move |_: &Outer| l.lock().unwrap().push("outer 2"));
//! let l = log.clone();
//! let _inner = center.observe(move |_: &Inner| l.lock().unwrap().push("inner"));
//! center.post(Outer);
//! assert_eq!(*log.lock().unwrap(), ["outer 1", "inner", "outer 2"]);
//! ```
//!
//! # 3. Quiescent unsubscribe
//! Once `unsubscribe()` or the drop of a [`Subscription`](crate::Subscription) returns, that
//! observer is never called again: posts already running on other threads finish before it
//! returns. It waits only for posts in progress, never for new ones, so do not hold a lock an
//! observer needs while you unsubscribe.
//!
//! From inside an observer (any post in progress on this thread), unsubscribing never waits:
//! waiting there could deadlock on a lock the observer holds. The observer is then never
//! called again by this thread or by any post that starts after the call returns; only a post
//! that another thread had already begun may still reach it once.
//!
//! ```
//! use herald::{NotificationCenter, Notification};
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicBool, Ordering};
//!
//! struct Tick;
//! impl Notification for Tick {}
//!
//! let center = NotificationCenter::new();
//! let gone = Arc::new(AtomicBool::new(false));
//! let g = gone.clone();
//! let sub = center.observe(move |_: &Tick| assert!(!g.load(Ordering::SeqCst)));
//! let poster = {
//!     let center = center.clone();
//!     std::thread::spawn(move || for _ in 0..10_000 { center.post(Tick); })
//! };
//! drop(sub); // waits for a call in flight on the poster thread, if any
//! gone.store(true, Ordering::SeqCst); // from here on, a call would fail the assert
//! poster.join().unwrap();
//! ```
//!
//! # 4. Panic isolation
//! A panicking observer does not stop the others or poison the hub: the panic is caught,
//! counted ([`Stats::panicked`](crate::Stats::panicked)) and posted as
//! [`ObserverPanicked`](crate::ObserverPanicked). With
//! [`PanicPolicy::Propagate`](crate::PanicPolicy::Propagate) it unwinds out of `post` instead.
//!
//! ```
//! use herald::{NotificationCenter, Notification, ObserverPanicked};
//! use std::sync::{Arc, Mutex};
//!
//! struct Ev;
//! impl Notification for Ev {}
//!
//! let center = NotificationCenter::new();
//! let reports = Arc::new(Mutex::new(Vec::new()));
//! let r = reports.clone();
//! let _log = center.observe(move |p: &ObserverPanicked| r.lock().unwrap().push(p.message.clone()));
//! let _bad = center.observe(|_: &Ev| panic!("boom"));
//! let _good = center.observe(|_: &Ev| {});
//! let report = center.post(Ev);
//! assert_eq!((report.received, report.panicked), (1, 1));
//! assert_eq!(*reports.lock().unwrap(), ["boom"]);
//! assert_eq!(center.stats::<Ev>().panicked, 1);
//! ```
//!
//! # 5. Loss is never silent
//! Every stream has a bounded buffer and an [`Overflow`](crate::Overflow) policy chosen per
//! subscriber: drop-oldest (the receiver sees `Lagged(n)`), drop-newest, latest-only,
//! coalesce-by-key, or backpressure (`post_async` waits; a synchronous `post` reports the
//! subscriber in [`PostReport::full`](crate::PostReport::full)). Drops are counted per post,
//! per type and per subscriber. No unbounded memory by default.
//!
//! ```
//! use herald::{NotificationCenter, Notification, Overflow};
//!
//! struct Sample(u32);
//! impl Notification for Sample {}
//!
//! let center = NotificationCenter::new();
//! let mut slow = center
//!     .observer::<Sample>()
//!     .policy(Overflow::Backpressure { capacity: 1 })
//!     .stream();
//! assert_eq!(center.post(Sample(1)).full, 0);
//! let report = center.post(Sample(2)); // buffer full: reported, never blocks
//! assert_eq!((report.received, report.dropped, report.full), (0, 1, 1));
//! assert_eq!(center.stats::<Sample>().dropped, 1);
//! assert_eq!(slow.try_recv().unwrap().0, 1);
//! ```
//!
//! # 6. Nothing missed at subscribe
//! [`replay_last`](crate::ObserverBuilder::replay_last) subscribes and delivers the last
//! retained value (per type, or per sender with a sender filter) atomically: a post racing the
//! subscription is either the replayed value or delivered after it, never lost, never twice.
//!
//! ```
//! use herald::{NotificationCenter, Notification, SenderId};
//!
//! #[derive(Debug)]
//! struct Battery(u8);
//! impl Notification for Battery {}
//!
//! let center = NotificationCenter::new();
//! center.retain_last::<Battery>();
//! let (phone, watch) = (SenderId::new(), SenderId::new());
//! center.post_from(phone, Battery(80));
//! center.post_from(watch, Battery(30));
//!
//! let mut any = center.observer::<Battery>().replay_last().stream();
//! assert_eq!(any.try_recv().unwrap().0, 30);
//! let mut phone_only = center.observer::<Battery>().sender(phone).replay_last().stream();
//! assert_eq!(phone_only.try_recv().unwrap().0, 80);
//! ```
//!
//! # 7. Dead notifications are counted
//! A post that reaches no observer is counted ([`Stats::dead`](crate::Stats::dead),
//! [`PostReport::is_dead`](crate::PostReport::is_dead)) and, when someone observes it, reported
//! as [`DeadNotification`](crate::DeadNotification).
//!
//! ```
//! use herald::{NotificationCenter, Notification, DeadNotification};
//! use std::sync::{Arc, Mutex};
//!
//! struct Lonely;
//! impl Notification for Lonely { fn name() -> &'static str { "app.lonely" } }
//!
//! let center = NotificationCenter::new();
//! let dead = Arc::new(Mutex::new(Vec::new()));
//! let d = dead.clone();
//! let _watch = center.observe(move |n: &DeadNotification| d.lock().unwrap().push(n.notification));
//! assert!(center.post(Lonely).is_dead());
//! assert_eq!(*dead.lock().unwrap(), ["app.lonely"]);
//! assert_eq!(center.stats::<Lonely>().dead, 1);
//! ```
//!
//! # 8. Sender filter
//! An observer built with [`sender`](crate::ObserverBuilder::sender) only sees what that sender
//! posted with [`post_from`](crate::NotificationCenter::post_from) (Apple's `object:`).
//! Observers without a sender filter see every post.
//!
//! ```
//! use herald::{NotificationCenter, Notification, SenderId};
//!
//! struct Typed(&'static str);
//! impl Notification for Typed {}
//!
//! let center = NotificationCenter::new();
//! let (left, right) = (SenderId::new(), SenderId::new());
//! let mut from_left = center.observer::<Typed>().sender(left).stream();
//! let mut from_anyone = center.stream::<Typed>();
//! center.post_from(right, Typed("r"));
//! center.post_from(left, Typed("l"));
//! center.post(Typed("nobody"));
//! assert_eq!(from_left.try_recv().unwrap().0, "l");
//! assert!(from_left.try_recv().is_err());
//! assert_eq!(from_anyone.len(), 3);
//! ```
//!
//! # 9. Wildcard and family observation
//! [`observer::<Wildcard>()`](crate::Wildcard) sees every notification and
//! [`.family(prefix)`](crate::ObserverBuilder::family) every notification whose
//! [`name`](crate::Notification::name) starts with a prefix, as an
//! [`AnyNotification`](crate::AnyNotification) (name, sender, `downcast_ref`). They keep the
//! ordering, panic and quiescence contracts of typed observers, and see types created after
//! them. A type nobody observes by wildcard pays nothing for the wildcards of others: wildcard
//! entries live only in the subscriber lists of the types they match.
//!
//! ```
//! use herald::{NotificationCenter, Notification};
//! use std::sync::{Arc, Mutex};
//!
//! struct Sent;
//! impl Notification for Sent { fn name() -> &'static str { "mail.sent" } }
//! struct Bounced;
//! impl Notification for Bounced { fn name() -> &'static str { "mail.bounced" } }
//! struct Tick;
//! impl Notification for Tick { fn name() -> &'static str { "clock.tick" } }
//!
//! let center = NotificationCenter::new();
//! let names = Arc::new(Mutex::new(Vec::new()));
//! let n = names.clone();
//! let _mail = center.observer::<herald::Wildcard>().family("mail.").inline(move |any| n.lock().unwrap().push(any.name()));
//! center.post(Sent);
//! center.post(Tick);
//! center.post(Bounced);
//! assert_eq!(*names.lock().unwrap(), ["mail.sent", "mail.bounced"]);
//! ```
//!
//! # 10. Coalescing queue
//! A [`NotificationQueue`](crate::NotificationQueue) (Apple's `NotificationQueue`) takes
//! notifications of any type and keeps them in one FIFO order. Each enqueue names a
//! [`PostingStyle`](crate::PostingStyle): posted now (after coalescing), as soon as possible
//! (at the end of the outermost post in progress on this thread, or on the next runtime tick)
//! or when idle (after a quiet period); and a [`Coalescing`](crate::Coalescing) rule: by type
//! (Apple's `onName`), by sender, by both (the default, as Apple's), by a key given at enqueue
//! ([`Coalescing::by_key`](crate::Coalescing::by_key): a key rule carries its key, so a key
//! rule without one does not compile), or none. A coalesced group is posted once, at the place
//! of its first enqueue, with the last value and its sender; coalescing joins only entries
//! still pending. Nothing is posted twice and nothing is lost: `flush`, `shutdown` and dropping
//! the last clone post everything pending, and the queue's counters account for every enqueue
//! (posted, coalesced, or removed by `dequeue_matching`). The full rules are on the type;
//! `tests/queue.rs` pins each one, `tests/stress_spawn_queue.rs` the concurrent ones.
//!
//! ```
//! use herald::{Coalescing, Notification, NotificationCenter, NotificationQueue, PostingStyle};
//! use std::sync::{Arc, Mutex};
//!
//! #[derive(Debug)]
//! struct Badge(u32);
//! impl Notification for Badge {}
//! #[derive(Debug)]
//! struct Synced;
//! impl Notification for Synced {}
//!
//! let center = NotificationCenter::new();
//! let shown = Arc::new(Mutex::new(Vec::new()));
//! let s = shown.clone();
//! let _icon = center.observe(move |b: &Badge| s.lock().unwrap().push(format!("badge {}", b.0)));
//! let s = shown.clone();
//! let _sync = center.observe(move |_: &Synced| s.lock().unwrap().push("synced".to_string()));
//!
//! let queue = NotificationQueue::new(&center);
//! queue.enqueue_with(Badge(1), PostingStyle::WhenIdle, Coalescing::ByType);
//! queue.enqueue(Synced);
//! for n in 2..=5 {
//!     queue.enqueue_with(Badge(n), PostingStyle::WhenIdle, Coalescing::ByType);
//! }
//! assert_eq!(queue.flush(), 2);
//! // One order across types; the badge kept its first place and took its last value.
//! assert_eq!(*shown.lock().unwrap(), ["badge 5", "synced"]);
//! let stats = queue.stats();
//! assert_eq!((stats.enqueued, stats.coalesced, stats.posted), (6, 4, 2));
//! ```
