//! The push bridge (feature `bridge`): one subscription API for local observers and Apple
//! devices, and APNs' answers back on the same hub.
//!
//! ```text
//! post(n) ──► NotificationCenter ──► local observers
//!                 │         └──────► forward(sink.map(..)) ──► queue ──► ApnsClient ──► APNs
//!                 │                                                                    │
//!                 │  PushAccepted / PushRejected / PushFailed / PushSkipped ◄──────────┤
//!                 │  PushConfigSuspect / PushConfigRecovered (circuit breaker) ◄───────┤
//! DeviceRegistry ◄── TokenInvalidated / TokenQuarantined / TokenReleased ◄─────────────┘
//!        ▲
//!        └── RegistrationEndpoint (feature `endpoint`): the app's oldToken / newToken POST
//! ```
//!
//! - [`ApnsSink`]: maps a notification to [`Message`]s (to device tokens, or to a subject
//!   resolved through the registry) and sends them; subscribed with
//!   [`ObserverBuilder::forward`](crate::ObserverBuilder::forward) like any delivery kind, with
//!   the same bounded buffer and [`Overflow`](crate::Overflow) policy. Posting never waits on
//!   the network.
//! - Outcome notifications: [`PushAccepted`], [`PushRejected`], [`PushFailed`] (the last two
//!   hand the push back), [`PushSkipped`].
//! - [`lifecycle`]: what happens to a token after APNs answers, and the circuit breaker that
//!   keeps a misconfiguration from touching any token: [`TokenInvalidated`] (410 only),
//!   [`TokenQuarantined`], [`TokenReleased`], [`PushConfigSuspect`], [`PushConfigRecovered`],
//!   configured by [`LifecycleConfig`], timed by a [`Clock`].
//! - [`DeviceRegistry`]: subject → devices with their lifecycle state, persistent in a
//!   crash-safe [`RedbStore`] by default, [`MemoryStore`] for tests, any [`RegistryStore`] (a
//!   versioned key-value store with compare-and-set, shareable by several processes). It
//!   observes the lifecycle notifications: deletes on 410 unless the token was registered
//!   again after APNs' timestamp, quarantines and releases.
//! - `conformance` (feature `testkit`): the checks any [`RegistryStore`] must pass; and
//!   `FaultyStore` (feature `testkit`), a store that fails on demand, for testing what a
//!   registry and a sink do while their store is unreachable.
//! - `endpoint` (feature `endpoint`): the registration HTTP endpoint an app calls.
//!
//! # Failure modes
//!
//! - **Posting never waits on the network and never fails because of it.** A forwarded
//!   notification goes into the subscription's bounded buffer (default: drop-oldest, 1024);
//!   when APNs is slower than the posts, the buffer's overflow policy decides what is lost,
//!   and every loss is counted ([`Forwarding::queue`]'s `dropped`, the center's stats).
//!   Choose a drop-newest or backpressure policy where losing an old notification is worse.
//! - **A push that fails is handed back, not retried by the sink.** The client has already
//!   retried what Apple says to retry ([`RetryPolicy`](crate::apns::RetryPolicy)); what is left
//!   arrives as [`PushFailed`] (with the push, and whether APNs may have it) or
//!   [`PushRejected`]. Observe them to re-queue, alert or log.
//! - **Held back, not lost.** A push to a quarantined token, or while a topic's circuit
//!   breaker is open, is a [`PushSkipped`] with the push handed back.
//! - **Counted, not sent**: a message for a subject with no device of the sink's topic and
//!   environment ([`SinkMetrics::unaddressed`]); a notification on which the map closure
//!   panicked ([`SinkMetrics::panicked`], forwarding goes on). A registry that cannot be read
//!   while resolving a subject is logged (`warn`) and counted as unaddressed.
//! - **Registry writes that fail** (a 410 that cannot be applied because the store is
//!   unavailable) are logged (`warn`) and leave the token as it was: the next push to it gets
//!   the same answer and tries again. Nothing is deleted on a guess.
//! - **A misconfiguration touches no token**: see [`lifecycle`]. Only 410 deletes, and only if
//!   the token was not registered again after Apple's timestamp.
//!
//! # Shutdown and cancel safety
//!
//! - Dropping a [`Forwarding`] stops forwarding at once: notifications still in its buffer
//!   are dropped, pushes already sent still get their outcomes posted.
//!   [`Forwarding::finish`] unsubscribes, sends what is buffered and waits for every outcome;
//!   [`Forwarding::idle`] waits without unsubscribing. Dropping the future of either is
//!   safe: `idle` only waits, and a dropped `finish` behaves as dropping the [`Forwarding`].
//! - Outcome notifications are posted from the sink's tokio tasks, so inline observers of them
//!   (the registry's among them) run there: keep them short, or make them buffered.
//! - [`DeviceRegistry`] calls are synchronous and safe from any thread; with [`RedbStore`]
//!   each change is one durable commit (`fsync`), so call them from blocking-friendly code or
//!   accept a few milliseconds on a tokio worker.
//!
//! # Limits
//!
//! - At most [`concurrency`](ApnsSinkBuilder::concurrency) pushes in flight per forwarding
//!   subscription (default 256), over the client's connections.
//! - Tokens sent directly ([`Target::Token`]) that the registry does not know are quarantined
//!   in the sink's memory, at most 65,536 of them.
//! - Circuit-breaker state and its evidence are per sink and in memory (a restart starts with
//!   closed breakers); quarantine state is in the registry's store and survives restarts.
//!
//! The whole loop, offline against the mock server: `cargo run --example push_demo
//! --features endpoint,mock`.
//!
//! ```
//! # #[cfg(not(feature = "mock"))] fn main() {}
//! # #[cfg(feature = "mock")]
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use herald::apns::{ApnsClient, Endpoint, Payload, TokenKey};
//! use herald::bridge::{ApnsSink, Device, DeviceRegistry, Environment, Message, TokenInvalidated};
//! use herald::mock::MockApns;
//! use herald::{Notification, NotificationCenter};
//! use std::time::SystemTime;
//!
//! #[derive(Debug, Clone)]
//! struct OrderShipped { user: String }
//! impl Notification for OrderShipped {}
//!
//! let mock = MockApns::start().await?;
//! let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
//! let (alive, gone) = ("a1".repeat(32), "b2".repeat(32));
//! mock.register_device(&alive, "com.example.app");
//!
//! let center = NotificationCenter::new();
//! let registry = DeviceRegistry::in_memory();
//! for token in [&alive, &gone] {
//!     registry.register(Device::new("alice", token.as_str(), "com.example.app", Environment::Sandbox))?;
//! }
//! // Later, the app is uninstalled from one device: APNs answers 410 from now on.
//! mock.mark_unregistered(&gone, SystemTime::now());
//! let _lifecycle = registry.observe(&center);
//! let client = ApnsClient::builder()
//!     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
//!     .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
//!     .build()?;
//! let sink = ApnsSink::builder(client).registry(registry.clone()).build();
//! let forwarding = center.observer::<OrderShipped>().forward(sink.map(|n: &OrderShipped| {
//!     Message::to_subject(&n.user, Payload::alert("Your order shipped"))
//! }));
//!
//! center.post(OrderShipped { user: "alice".into() });
//! forwarding.finish().await;
//! let m = sink.metrics();
//! assert_eq!((m.sent, m.accepted, m.rejected, m.invalidated), (2, 1, 1, 1));
//! assert_eq!(registry.devices("alice")?.len(), 1); // the uninstalled device is gone
//! # Ok(()) }
//! ```

mod clock;
#[cfg(feature = "testkit")]
pub mod conformance;
#[cfg(feature = "endpoint")]
#[cfg_attr(docsrs, doc(cfg(feature = "endpoint")))]
pub mod endpoint;
#[cfg(any(test, feature = "testkit"))]
mod faulty;
pub mod lifecycle;
mod registry;
mod sink;
mod store;
mod store_redb;

pub use clock::{Clock, ManualClock, SystemClock};
#[cfg(any(test, feature = "testkit"))]
#[cfg_attr(docsrs, doc(cfg(feature = "testkit")))]
pub use faulty::FaultyStore;
pub use lifecycle::{
    BreakerReport, BreakerState, DEFAULT_COOL_DOWN, DEFAULT_GRACE, DEFAULT_MIN_SAMPLES,
    DEFAULT_THRESHOLD, DEFAULT_WINDOW, LifecycleConfig, PushConfigRecovered, PushConfigSuspect,
    PushSkipped, SkipCause, SuspectedCause, TokenInvalidated, TokenQuarantined, TokenReleased,
};
pub use registry::{
    DEFAULT_CLAIM_TIMEOUT, DEFAULT_MARKER_RETENTION, Device, DeviceRegistry, Environment,
    LIFECYCLE_RETRY_FOR, Quarantine, RegistryBuilder, RegistryError, RegistrySubscription,
    Replaced,
};
pub use sink::{
    ApnsSink, ApnsSinkBuilder, DispatchFuture, Forwarding, Message, PushAccepted, PushDispatch,
    PushFailed, PushRejected, REGISTRY_READ_PATIENCE, SinkMap, SinkMetrics, Target,
};
pub use store::{
    Cas, Claim, Expect, MemoryStore, RegistryStore, Release, Revision, StoreError, SubjectRecord,
    Versioned,
};
pub use store_redb::RedbStore;
