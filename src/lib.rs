//! # herald
//!
//! A typed notification center for Rust, in the spirit of Apple's `NotificationCenter`, and
//! (feature `apns`) the way for a Rust service to reach Apple devices.
//!
//! Parts of a program [`post`](NotificationCenter::post) notifications (plain Rust types that
//! implement [`Notification`]); observers registered for them are called without knowing who
//! posted. Apple's sender filter (`object:`), coalescing and dead-notification reporting are
//! kept; names and `userInfo` dictionaries become types.
//!
//! ```
//! use herald::{NotificationCenter, Notification, Overflow};
//!
//! #[derive(Debug, Clone)]
//! struct OrderShipped { order: u64 }
//! impl Notification for OrderShipped {}
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let center = NotificationCenter::new();
//!
//! // Inline: runs on the posting thread before `post` returns.
//! let _audit = center.observe(|n: &OrderShipped| println!("audit: order {}", n.order));
//!
//! // Buffered: an async stream with a bounded buffer and an overflow policy.
//! let mut mailer = center
//!     .observer::<OrderShipped>()
//!     .policy(Overflow::DropOldest { capacity: 64 })
//!     .stream();
//!
//! let report = center.post(OrderShipped { order: 42 });
//! assert_eq!(report.received, 2);
//! assert_eq!(mailer.recv().await.unwrap().order, 42);
//! # }
//! ```
//!
//! ## Map
//! - [`NotificationCenter`]: post, subscribe, read counters. [`Poster`]: its typed handle for hot paths.
//! - [`ObserverBuilder`]: the one subscription builder, for one type (`observer::<N>()`) or
//!   for all or a family ([`Wildcard`]); terminals `inline`, `weak`, `stream`, `spawn`,
//!   `queue`, `forward` (to a [`Terminal`]), `record`.
//!   Its states: [`Matcher`] (what it matches), [`DefaultPolicy`] / [`BufferPolicy`] (whether a
//!   policy was chosen). [`Terminal`]: delivery kinds added from outside the hub.
//! - [`Subscription`]: the guard; `unsubscribe` (or drop) ends it, `detach` keeps it.
//!   [`NotificationStream`]: the buffered kind, which owns its subscription;
//!   [`ClonedStream`]: the same for `Clone` notifications, receiving values instead of `Arc`s.
//! - [`SpawnedHandler`], [`SpawnOptions`]: async handlers on tokio (terminal `spawn`).
//! - [`NotificationQueue`]: Apple's coalescing queue, any notification type in one FIFO
//!   ([`PostingStyle`], [`Coalescing`], [`Matching`], [`QueueStats`]).
//! - [`testkit`]: [`Recorder`](testkit::Recorder) and `wait_for`, for testing code that uses herald.
//! - [`Overflow`]: what a full buffer does. [`PostReport`], [`Stats`]: what was counted.
//! - [`contracts`]: the promises the hub keeps, each with an example.
//! - [`AnyNotification`]: what wildcard and family observers see.
//! - `apns` (feature `apns`): the APNs client. `mock` (feature `mock`): a mock APNs server.
//!   `bridge` (feature `bridge`): the hub joined to APNs. `telemetry` (feature `apns`): the
//!   metrics and spans herald emits.
//! - `nats` (feature `nats`): the same notifications across processes, through a NATS server.

#![deny(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod hub;

pub use hub::contracts;
#[cfg(feature = "testkit")]
#[cfg_attr(docsrs, doc(cfg(feature = "testkit")))]
pub use hub::testkit;

pub use hub::builder::{BufferPolicy, DefaultPolicy, Matcher, ObserverBuilder, Terminal};
pub use hub::center::{CenterBuilder, NotificationCenter, PanicPolicy, Poster, ReaderFences};
pub use hub::cloned::ClonedStream;
pub use hub::error::{Lagged, RecvError, TryRecvError};
pub use hub::notification::AnyNotification;
pub use hub::notification::{
    DeadNotification, Notification, ObserverId, ObserverPanicked, SenderId,
};
pub use hub::overflow::{CoalesceBy, DEFAULT_CAPACITY, Overflow};
pub use hub::queue::{
    Coalescing, CoalescingKey, DEFAULT_IDLE_AFTER, Enqueued, Matching, NotificationQueue,
    NotificationQueueBuilder, PostingStyle, QueueStats,
};
pub use hub::spawn::{SpawnOptions, SpawnedHandler};
pub use hub::stats::{BufferStats, PostReport, Stats};
pub use hub::stream::NotificationStream;
pub use hub::subscription::Subscription;
pub use hub::wildcard::Wildcard;

#[cfg(feature = "apns")]
#[cfg_attr(docsrs, doc(cfg(feature = "apns")))]
pub mod apns;
/// The [`http`](https://docs.rs/http) crate, as herald uses it: the registration endpoint's
/// signatures take and return its types (`http::request::Parts`, `Request`, `Response`), and
/// [`Rejected::status_code`](apns::Rejected::status_code) gives a `StatusCode`. Use
/// `herald::http` so the versions always match.
#[cfg(feature = "apns")]
pub use http;
#[cfg(feature = "bridge")]
#[cfg_attr(docsrs, doc(cfg(feature = "bridge")))]
pub mod bridge;
#[cfg(feature = "mock")]
#[cfg_attr(docsrs, doc(cfg(feature = "mock")))]
pub mod mock;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "apns")]
pub mod telemetry;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
