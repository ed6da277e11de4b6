//! The hub → APNs bridge: [`ApnsSink`], the [`Message`]s it sends, the outcome notifications it
//! posts back, and the [`ObserverBuilder::forward`] terminal.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, Semaphore, mpsc, oneshot};
use tracing::Instrument as _;

use crate::apns::{
    ApnsClient, Error, Expiration, Payload, Priority, Push, PushOutcome, PushType, Reason,
};
use crate::bridge::clock::{Clock, SystemClock};
use crate::bridge::lifecycle::{
    Action, Admit, BreakerReport, Lifecycle, LifecycleConfig, Observed, PushSkipped, SkipCause,
    Target as LifecycleTarget, Ticket,
};
use crate::bridge::registry::Quarantine;
use crate::bridge::{DeviceRegistry, Environment, RegistryError};
use crate::{
    BufferPolicy, BufferStats, Notification, NotificationCenter, ObserverBuilder, ObserverId,
    RecvError, Terminal,
};

/// APNs accepted a push the bridge sent. Posted into the center the sink forwards from.
///
/// ```
/// use herald::bridge::PushAccepted;
/// use herald::NotificationCenter;
/// let center = NotificationCenter::new();
/// let _log = center.observe(|n: &PushAccepted| println!("delivered to {}", n.token));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PushAccepted {
    /// The device token.
    pub token: String,
    /// The topic it was sent to.
    pub topic: String,
    /// The subject the token was resolved from, if any.
    pub subject: Option<String>,
    /// The apns-id APNs echoed.
    pub apns_id: String,
}

impl Notification for PushAccepted {
    fn name() -> &'static str {
        "herald.apns.push.accepted"
    }
}

/// APNs rejected a push (any status). The lifecycle notifications it leads to
/// ([`TokenInvalidated`](crate::bridge::TokenInvalidated) on 410,
/// [`TokenQuarantined`](crate::bridge::TokenQuarantined), ...) follow it.
///
/// ```
/// use herald::bridge::PushRejected;
/// use herald::NotificationCenter;
/// let center = NotificationCenter::new();
/// let _log = center.observe(|n: &PushRejected| eprintln!("{} {}: {}", n.status, n.reason, n.reason.explain()));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PushRejected {
    /// The device token.
    pub token: String,
    /// The topic it was sent to.
    pub topic: String,
    /// The subject the token was resolved from, if any.
    pub subject: Option<String>,
    /// The push's apns-id.
    pub apns_id: String,
    /// The HTTP status.
    pub status: u16,
    /// Apple's reason.
    pub reason: Reason,
    /// With 410: when APNs learned the token is invalid.
    pub timestamp: Option<SystemTime>,
    /// The push, handed back (to correct and send again).
    pub push: Push,
}

impl Notification for PushRejected {
    fn name() -> &'static str {
        "herald.apns.push.rejected"
    }
}

/// The bridge got no answer for a push (connection, timeout, retries exhausted, shutdown), or
/// could not build it (an invalid token or topic, a payload too large).
///
/// ```
/// use herald::bridge::PushFailed;
/// use herald::NotificationCenter;
/// let center = NotificationCenter::new();
/// let _log = center.observe(|n: &PushFailed| eprintln!("{}: {}", n.token, n.error));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PushFailed {
    /// The device token (as given, when it could not be built).
    pub token: String,
    /// The topic.
    pub topic: String,
    /// The subject the token was resolved from, if any.
    pub subject: Option<String>,
    /// What went wrong.
    pub error: Error,
    /// The push, handed back to be queued again (`None` when it could not be built).
    pub push: Option<Push>,
}

impl Notification for PushFailed {
    fn name() -> &'static str {
        "herald.apns.push.failed"
    }
}

/// Where an [`ApnsSink`] hands its pushes instead of sending them with its own client (set
/// with [`ApnsSinkBuilder::dispatch`]): a queue that other processes send from, for example
/// `herald::nats::NatsPushQueue` (feature `nats`). Everything else stays with the sink: the
/// registry lookup, the lifecycle's admission (quarantine, circuit breaker), the counters, and
/// the outcome notifications posted back into the center, from the [`PushOutcome`] that
/// [`dispatch`](Self::dispatch) resolves to.
///
/// The future must resolve to exactly one outcome for the push (a failure when it cannot get
/// one, such as a timeout: [`Failed::new`](crate::apns::Failed::new) with
/// [`Error::new`](crate::apns::Error::new)), and it is polled while the push holds one of the sink's
/// [`concurrency`](ApnsSinkBuilder::concurrency) permits.
///
/// ```
/// use herald::apns::{Accepted, ApnsClient, Push, PushOutcome};
/// use herald::bridge::{ApnsSink, DispatchFuture, PushDispatch};
///
/// /// Accepts everything without sending (a stand-in for a real queue).
/// struct Blackhole;
/// impl PushDispatch for Blackhole {
///     fn dispatch(&self, push: Push, _subject: Option<&str>) -> DispatchFuture {
///         Box::pin(async move { PushOutcome::Accepted(Accepted::new(push.apns_id())) })
///     }
/// }
/// let sink = ApnsSink::builder(ApnsClient::builder().build().unwrap())
///     .dispatch(Blackhole)
///     .build();
/// # drop(sink);
/// ```
pub trait PushDispatch: Send + Sync + 'static {
    /// Hands `push` (for a device of `subject`, when it was resolved from one) on, and
    /// resolves to its outcome.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use herald::apns::{Accepted, ApnsClient, Payload, Push, PushOutcome};
    /// use herald::bridge::{ApnsSink, Device, DeviceRegistry, DispatchFuture, Environment, Message,
    ///     PushDispatch};
    /// use herald::{Notification, NotificationCenter};
    /// use std::sync::{Arc, Mutex};
    ///
    /// /// Keeps what it is handed, and accepts it (a stand-in for a real queue).
    /// #[derive(Clone, Default)]
    /// struct Queue(Arc<Mutex<Vec<(String, Option<String>)>>>);
    /// impl PushDispatch for Queue {
    ///     fn dispatch(&self, push: Push, subject: Option<&str>) -> DispatchFuture {
    ///         let entry = (push.device_token().to_owned(), subject.map(str::to_owned));
    ///         self.0.lock().unwrap().push(entry);
    ///         Box::pin(async move { PushOutcome::Accepted(Accepted::new(push.apns_id())) })
    ///     }
    /// }
    ///
    /// #[derive(Debug, Clone)]
    /// struct Shipped;
    /// impl Notification for Shipped {}
    ///
    /// let token = "a1".repeat(32);
    /// let registry = DeviceRegistry::in_memory();
    /// registry.register(Device::new("alice", token.as_str(), "com.example.app", Environment::Production))?;
    /// let queue = Queue::default();
    /// let sink = ApnsSink::builder(ApnsClient::builder().build()?)
    ///     .registry(registry)
    ///     .environment(Environment::Production)
    ///     .dispatch(queue.clone())
    ///     .build();
    /// let center = NotificationCenter::new();
    /// let forwarding = center
    ///     .observer::<Shipped>()
    ///     .forward(sink.map(|_: &Shipped| Message::to_subject("alice", Payload::alert("Shipped"))));
    /// center.post(Shipped);
    /// forwarding.finish().await;
    /// // The sink resolved alice's device and handed the push to the queue, not to APNs.
    /// assert_eq!(*queue.0.lock().unwrap(), [(token, Some("alice".to_owned()))]);
    /// assert_eq!(sink.metrics().accepted, 1); // the outcome the queue resolved to
    /// # Ok(()) }
    /// ```
    fn dispatch(&self, push: Push, subject: Option<&str>) -> DispatchFuture;
}

/// The future a [`PushDispatch`] returns.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use herald::apns::{Accepted, PushOutcome};
/// use herald::bridge::DispatchFuture;
///
/// let future: DispatchFuture = Box::pin(async { PushOutcome::Accepted(Accepted::new("apns-id")) });
/// assert!(future.await.is_accepted());
/// # }
/// ```
pub type DispatchFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = PushOutcome> + Send + 'static>>;

/// Whom a [`Message`] goes to.
///
/// ```
/// use herald::bridge::Target;
/// let t = Target::Subject("alice".into());
/// assert!(matches!(t, Target::Subject(_)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One device token (sent with the message's or the sink's topic). A token the registry
    /// holds with the other environment than the sink's is not sent: see
    /// [`ApnsSinkBuilder::environment`].
    Token(String),
    /// Every device of a subject in the sink's [`DeviceRegistry`] (each with its own topic,
    /// unless the message or the sink names one: then only devices of that topic).
    Subject(String),
}

/// What a notification becomes: a payload for a [`Target`], plus APNs options. The sink turns
/// it into one [`Push`] per device.
///
/// ```
/// use herald::apns::{Payload, Priority};
/// use herald::bridge::Message;
/// let m = Message::to_subject("alice", Payload::alert("Your order shipped").badge(1))
///     .collapse_id("order-42")
///     .priority(Priority::Immediate);
/// # drop(m);
/// ```
#[derive(Debug, Clone)]
pub struct Message {
    target: Target,
    payload: Payload,
    topic: Option<String>,
    push_type: Option<PushType>,
    priority: Option<Priority>,
    expiration: Option<Expiration>,
    collapse_id: Option<String>,
}

impl Message {
    /// A message for every device of `subject` (resolved through the registry).
    ///
    /// ```
    /// # use herald::{apns::Payload, bridge::Message};
    /// let m = Message::to_subject("alice", Payload::alert("Hi"));
    /// # drop(m);
    /// ```
    pub fn to_subject(subject: impl Into<String>, payload: Payload) -> Message {
        Message::new(Target::Subject(subject.into()), payload)
    }

    /// A message for one device token.
    ///
    /// ```
    /// # use herald::{apns::Payload, bridge::Message};
    /// let m = Message::to_token("a1b2c3", Payload::alert("Hi"));
    /// # drop(m);
    /// ```
    pub fn to_token(token: impl Into<String>, payload: Payload) -> Message {
        Message::new(Target::Token(token.into()), payload)
    }

    /// A message for a target.
    ///
    /// ```
    /// # use herald::{apns::Payload, bridge::{Message, Target}};
    /// let m = Message::new(Target::Token("ab".into()), Payload::background());
    /// # drop(m);
    /// ```
    pub fn new(target: Target, payload: Payload) -> Message {
        Message {
            target,
            payload,
            topic: None,
            push_type: None,
            priority: None,
            expiration: None,
            collapse_id: None,
        }
    }

    /// The topic (bundle id): overrides the sink's, and for a subject selects its devices of
    /// that app only.
    ///
    /// ```
    /// # use herald::{apns::Payload, bridge::Message};
    /// let m = Message::to_subject("alice", Payload::alert("Hi")).topic("com.example.app");
    /// # drop(m);
    /// ```
    pub fn topic(mut self, topic: impl Into<String>) -> Message {
        self.topic = Some(topic.into());
        self
    }

    /// The `apns-push-type` (default: inferred, `alert`).
    ///
    /// ```
    /// # use herald::{apns::{Payload, PushType}, bridge::Message};
    /// let m = Message::to_subject("alice", Payload::background()).push_type(PushType::Background);
    /// # drop(m);
    /// ```
    pub fn push_type(mut self, push_type: PushType) -> Message {
        self.push_type = Some(push_type);
        self
    }

    /// The `apns-priority`.
    ///
    /// ```
    /// # use herald::{apns::{Payload, Priority}, bridge::Message};
    /// let m = Message::to_subject("alice", Payload::alert("Hi")).priority(Priority::PowerAware);
    /// # drop(m);
    /// ```
    pub fn priority(mut self, priority: Priority) -> Message {
        self.priority = Some(priority);
        self
    }

    /// The `apns-expiration`.
    ///
    /// ```
    /// # use herald::{apns::{Expiration, Payload}, bridge::Message};
    /// let m = Message::to_subject("alice", Payload::alert("Hi")).expiration(Expiration::Immediately);
    /// # drop(m);
    /// ```
    pub fn expiration(mut self, expiration: Expiration) -> Message {
        self.expiration = Some(expiration);
        self
    }

    /// The `apns-collapse-id`: a newer push with the same id replaces an undelivered one.
    ///
    /// ```
    /// # use herald::{apns::Payload, bridge::Message};
    /// let m = Message::to_subject("alice", Payload::alert("Hi")).collapse_id("chat-7");
    /// # drop(m);
    /// ```
    pub fn collapse_id(mut self, id: impl Into<String>) -> Message {
        self.collapse_id = Some(id.into());
        self
    }

    fn build(&self, token: &str, topic: &str) -> Result<Push, Error> {
        let mut b = Push::builder(token, topic).payload(&self.payload)?;
        if let Some(t) = self.push_type {
            b = b.push_type(t);
        }
        if let Some(p) = self.priority {
            b = b.priority(p);
        }
        if let Some(e) = self.expiration {
            b = b.expiration(e);
        }
        if let Some(c) = &self.collapse_id {
            b = b.collapse_id(c.clone());
        }
        b.build()
    }
}

/// A message is a one-message batch, so a [`map`](ApnsSink::map) closure can return a
/// `Message`, an `Option<Message>` or a `Vec<Message>` alike.
///
/// ```
/// # use herald::{apns::Payload, bridge::Message};
/// let batch: Vec<Message> = Message::to_token("ab", Payload::background()).into_iter().collect();
/// assert_eq!(batch.len(), 1);
/// ```
impl IntoIterator for Message {
    type Item = Message;
    type IntoIter = std::iter::Once<Message>;

    fn into_iter(self) -> Self::IntoIter {
        std::iter::once(self)
    }
}

/// How long an [`ApnsSink`] waits out a device registry it cannot read (retrying with
/// backoff) before it gives a subject's message up, counted in [`SinkMetrics::unresolved`].
///
/// ```
/// use herald::bridge::REGISTRY_READ_PATIENCE;
/// assert_eq!(REGISTRY_READ_PATIENCE, std::time::Duration::from_secs(60));
/// ```
pub const REGISTRY_READ_PATIENCE: Duration = Duration::from_secs(60);

/// The bridge's counters. Queue depth and drops are per subscription:
/// [`Forwarding::queue`].
///
/// ```
/// use herald::bridge::SinkMetrics;
/// let m = SinkMetrics::default();
/// assert_eq!(m.sent, m.accepted + m.rejected + m.failed + m.in_flight);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SinkMetrics {
    /// Pushes handed to the client (or refused before sending, counted as failed).
    pub sent: u64,
    /// Accepted by APNs.
    pub accepted: u64,
    /// Rejected by APNs.
    pub rejected: u64,
    /// Failed (no answer, or could not be built).
    pub failed: u64,
    /// Sent and not answered yet.
    pub in_flight: u64,
    /// `TokenInvalidated` posted (410, or a quarantine confirmed by a probe).
    pub invalidated: u64,
    /// `TokenQuarantined` posted.
    pub quarantined: u64,
    /// `TokenReleased` posted (a probe of a quarantined token was accepted).
    pub released: u64,
    /// Pushes held back (`PushSkipped`): token in quarantine, breaker open, or a token
    /// registered for the other environment. Not in `sent`.
    pub skipped: u64,
    /// `PushConfigSuspect` posted (circuit breaker openings).
    pub config_suspect: u64,
    /// Messages for a subject that had no device (nothing sent).
    pub unaddressed: u64,
    /// Messages for a subject whose devices could not be read from the registry for
    /// [`REGISTRY_READ_PATIENCE`] (the store unreachable; nothing sent, logged as an error).
    pub unresolved: u64,
    /// Notifications lost because the map closure panicked on them.
    pub panicked: u64,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
    invalidated: AtomicU64,
    quarantined: AtomicU64,
    released: AtomicU64,
    skipped: AtomicU64,
    config_suspect: AtomicU64,
    unaddressed: AtomicU64,
    unresolved: AtomicU64,
    panicked: AtomicU64,
}

/// The bridge from the hub to APNs: a delivery kind like the hub's own. Map a notification
/// type to [`Message`]s with [`map`](Self::map) and subscribe the result with
/// [`ObserverBuilder::forward`], with any of the builder's options (filter, sender, overflow
/// policy: the queue between `post` and the network).
///
/// - **Posting never waits on the network**: `post` puts the notification in the
///   subscription's bounded buffer; a tokio task maps it, resolves subjects through the
///   [`DeviceRegistry`] and sends with at most [`concurrency`](ApnsSinkBuilder::concurrency)
///   pushes in flight.
/// - **Outcomes come back as notifications** on the same center: [`PushAccepted`],
///   [`PushRejected`], [`PushFailed`] (the last two hand the push back), and the token
///   lifecycle's: [`TokenInvalidated`](crate::bridge::TokenInvalidated) (410 only),
///   [`TokenQuarantined`](crate::bridge::TokenQuarantined),
///   [`TokenReleased`](crate::bridge::TokenReleased), [`PushSkipped`], and from the circuit
///   breaker [`PushConfigSuspect`](crate::bridge::PushConfigSuspect) /
///   [`PushConfigRecovered`](crate::bridge::PushConfigRecovered). A misconfiguration (wrong
///   environment, topic or key) never deletes or quarantines a token: see
///   [`lifecycle`](crate::bridge::lifecycle).
/// - **Every push is counted**: `sent = accepted + rejected + failed + in_flight`
///   ([`metrics`](Self::metrics)); a push leaves `in_flight` only after its outcome
///   notifications were posted (so inline observers such as [`DeviceRegistry::observe`] have
///   run). The queue's depth and drops are [`Forwarding::queue`]. The same numbers go to the
///   `metrics` facade ([`telemetry`](crate::telemetry)).
///
/// Cheap to clone; one sink can forward many notification types.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use herald::apns::{ApnsClient, Endpoint, Payload};
/// use herald::bridge::{ApnsSink, DeviceRegistry, Message};
/// use herald::{Notification, NotificationCenter, Overflow};
///
/// #[derive(Debug, Clone)]
/// struct OrderShipped { user: String, order: u64 }
/// impl Notification for OrderShipped {}
///
/// let center = NotificationCenter::new();
/// let registry = DeviceRegistry::in_memory();
/// let client = ApnsClient::builder().endpoint(Endpoint::Sandbox).build()?;
/// let sink = ApnsSink::builder(client).registry(registry.clone()).build();
///
/// let _local = center.observe(|n: &OrderShipped| println!("order {} shipped", n.order));
/// let _push = center
///     .observer::<OrderShipped>()
///     .policy(Overflow::DropNewest { capacity: 10_000 })
///     .forward(sink.map(|n: &OrderShipped| {
///         Message::to_subject(&n.user, Payload::alert(format!("Order {} shipped", n.order)))
///     }));
/// let _lifecycle = registry.observe(&center); // applies 410s, quarantines, releases
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ApnsSink {
    inner: Arc<SinkInner>,
}

struct SinkInner {
    client: ApnsClient,
    registry: Option<DeviceRegistry>,
    topic: Option<String>,
    environment: Option<Environment>,
    concurrency: usize,
    counters: Counters,
    lifecycle: Lifecycle,
    dispatch: Option<Arc<dyn PushDispatch>>,
}

impl fmt::Debug for ApnsSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApnsSink")
            .field("topic", &self.inner.topic)
            .field("environment", &self.inner.environment)
            .field("concurrency", &self.inner.concurrency)
            .field("metrics", &self.metrics())
            .finish_non_exhaustive()
    }
}

/// Configures an [`ApnsSink`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use herald::apns::ApnsClient;
/// use herald::bridge::{ApnsSink, DeviceRegistry, Environment, LifecycleConfig};
/// use std::time::Duration;
/// let client = ApnsClient::builder().build().unwrap();
/// let sink = ApnsSink::builder(client)
///     .registry(DeviceRegistry::in_memory())
///     .topic("com.example.app")
///     .environment(Environment::Sandbox)
///     .concurrency(512)
///     .lifecycle(LifecycleConfig::default().grace(Duration::from_secs(6 * 3600)))
///     .build();
/// # drop(sink);
/// # }
/// ```
#[must_use = "call .build() to get the sink"]
pub struct ApnsSinkBuilder {
    client: ApnsClient,
    registry: Option<DeviceRegistry>,
    topic: Option<String>,
    environment: Option<Environment>,
    concurrency: usize,
    lifecycle: LifecycleConfig,
    clock: Arc<dyn Clock>,
    dispatch: Option<Arc<dyn PushDispatch>>,
}

impl fmt::Debug for ApnsSinkBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApnsSinkBuilder")
            .field("topic", &self.topic)
            .field("environment", &self.environment)
            .field("concurrency", &self.concurrency)
            .field("lifecycle", &self.lifecycle)
            .finish_non_exhaustive()
    }
}

impl ApnsSinkBuilder {
    /// Resolves [`Target::Subject`] through this registry (without one, subject messages are
    /// counted as unaddressed), and reads the quarantine state of the tokens it holds.
    ///
    /// ```
    /// # use herald::{apns::ApnsClient, bridge::{ApnsSink, DeviceRegistry}};
    /// # let client = ApnsClient::builder().build().unwrap();
    /// let b = ApnsSink::builder(client).registry(DeviceRegistry::in_memory());
    /// # drop(b);
    /// ```
    pub fn registry(mut self, registry: DeviceRegistry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// The default topic (bundle id): required for [`Target::Token`] messages without their
    /// own; for subjects, only devices of this topic are addressed.
    ///
    /// ```
    /// # use herald::{apns::ApnsClient, bridge::ApnsSink};
    /// # let client = ApnsClient::builder().build().unwrap();
    /// let b = ApnsSink::builder(client).topic("com.example.app");
    /// # drop(b);
    /// ```
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = Some(topic.into());
        self
    }

    /// Only address registered devices of this environment (the one the client talks to).
    /// A [`Target::Token`] message for a token the registry holds with the other environment
    /// is not sent: it is handed back as a [`PushSkipped`] with
    /// [`SkipCause::OtherEnvironment`](crate::bridge::SkipCause::OtherEnvironment) (the server
    /// would answer `BadDeviceToken`, which says nothing about the token). Tokens the registry
    /// does not hold are sent, and the circuit breaker files them under this environment.
    ///
    /// ```
    /// # use herald::{apns::ApnsClient, bridge::{ApnsSink, Environment}};
    /// # let client = ApnsClient::builder().build().unwrap();
    /// let b = ApnsSink::builder(client).environment(Environment::Production);
    /// # drop(b);
    /// ```
    pub fn environment(mut self, environment: Environment) -> Self {
        self.environment = Some(environment);
        self
    }

    /// At most this many pushes in flight per forwarding subscription (default 256).
    ///
    /// ```
    /// # use herald::{apns::ApnsClient, bridge::ApnsSink};
    /// # let client = ApnsClient::builder().build().unwrap();
    /// let b = ApnsSink::builder(client).concurrency(1000);
    /// # drop(b);
    /// ```
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// The token lifecycle and circuit breaker settings (default
    /// [`LifecycleConfig::default`]).
    ///
    /// ```
    /// # use herald::{apns::ApnsClient, bridge::{ApnsSink, LifecycleConfig}};
    /// # let client = ApnsClient::builder().build().unwrap();
    /// let b = ApnsSink::builder(client).lifecycle(LifecycleConfig::default().min_samples(100));
    /// # drop(b);
    /// ```
    pub fn lifecycle(mut self, config: LifecycleConfig) -> Self {
        self.lifecycle = config;
        self
    }

    /// The clock for grace periods, the breaker's window and cool-down, and send times
    /// (default: the system clock). Tests pass a [`ManualClock`](crate::bridge::ManualClock).
    ///
    /// ```
    /// # use herald::{apns::ApnsClient, bridge::{ApnsSink, ManualClock}};
    /// # let client = ApnsClient::builder().build().unwrap();
    /// let b = ApnsSink::builder(client).clock(ManualClock::new());
    /// # drop(b);
    /// ```
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Hands every push to `dispatch` instead of sending it with the sink's client (which is
    /// then unused): see [`PushDispatch`].
    ///
    /// ```
    /// # use herald::apns::{Accepted, ApnsClient, Push, PushOutcome};
    /// # use herald::bridge::{ApnsSink, DispatchFuture, PushDispatch};
    /// # struct Queue;
    /// # impl PushDispatch for Queue {
    /// #     fn dispatch(&self, push: Push, _: Option<&str>) -> DispatchFuture {
    /// #         Box::pin(async move { PushOutcome::Accepted(Accepted::new(push.apns_id())) })
    /// #     }
    /// # }
    /// # let client = ApnsClient::builder().build().unwrap();
    /// let b = ApnsSink::builder(client).dispatch(Queue);
    /// # drop(b);
    /// ```
    pub fn dispatch(mut self, dispatch: impl PushDispatch) -> Self {
        self.dispatch = Some(Arc::new(dispatch));
        self
    }

    /// Builds the sink.
    ///
    /// ```
    /// # use herald::{apns::ApnsClient, bridge::ApnsSink};
    /// # let client = ApnsClient::builder().build().unwrap();
    /// let sink = ApnsSink::builder(client).build();
    /// # drop(sink);
    /// ```
    pub fn build(self) -> ApnsSink {
        ApnsSink {
            inner: Arc::new(SinkInner {
                client: self.client,
                registry: self.registry,
                topic: self.topic,
                environment: self.environment,
                concurrency: self.concurrency,
                counters: Counters::default(),
                lifecycle: Lifecycle::new(self.lifecycle, self.clock),
                dispatch: self.dispatch,
            }),
        }
    }
}

/// One device a message resolved to.
struct Resolved {
    token: String,
    topic: String,
    subject: Option<String>,
    /// The token's environment: its registered one, else the sink's. It differs from the
    /// sink's (both set) only for a registered token of the other environment, which is not
    /// sent ([`SkipCause::OtherEnvironment`]); a subject's devices are filtered to the sink's.
    environment: Option<Environment>,
    /// The registry's state of the token, when it holds it.
    registered: Option<Option<Quarantine>>,
}

impl ApnsSink {
    /// Starts configuring a sink that sends with `client`.
    ///
    /// ```
    /// # use herald::{apns::ApnsClient, bridge::ApnsSink};
    /// let sink = ApnsSink::builder(ApnsClient::builder().build().unwrap()).build();
    /// # drop(sink);
    /// ```
    pub fn builder(client: ApnsClient) -> ApnsSinkBuilder {
        ApnsSinkBuilder {
            client,
            registry: None,
            topic: None,
            environment: None,
            concurrency: 256,
            lifecycle: LifecycleConfig::default(),
            clock: Arc::new(SystemClock),
            dispatch: None,
        }
    }

    /// What each `N` becomes: zero or more [`Message`]s (return a `Message`, an `Option`, a
    /// `Vec`...). Subscribe the result with [`ObserverBuilder::forward`].
    ///
    /// ```
    /// # use herald::{apns::{ApnsClient, Payload}, bridge::{ApnsSink, Message}, Notification};
    /// struct Mention { user: String, muted: bool }
    /// impl Notification for Mention {}
    /// # let sink = ApnsSink::builder(ApnsClient::builder().build().unwrap()).build();
    /// let map = sink.map(|m: &Mention| {
    ///     (!m.muted).then(|| Message::to_subject(&m.user, Payload::alert("You were mentioned")))
    /// });
    /// # drop(map);
    /// ```
    pub fn map<N, F, I>(&self, f: F) -> SinkMap<N>
    where
        N: Notification,
        F: Fn(&N) -> I + Send + Sync + 'static,
        I: IntoIterator<Item = Message>,
    {
        SinkMap {
            sink: self.clone(),
            map: Box::new(move |n| f(n).into_iter().collect()),
        }
    }

    /// A snapshot of the counters.
    ///
    /// ```
    /// # use herald::{apns::ApnsClient, bridge::ApnsSink};
    /// # let sink = ApnsSink::builder(ApnsClient::builder().build().unwrap()).build();
    /// assert_eq!(sink.metrics().sent, 0);
    /// ```
    pub fn metrics(&self) -> SinkMetrics {
        let c = &self.inner.counters;
        // Read the outcomes before `sent` so `in_flight` never underflows.
        let accepted = c.accepted.load(Ordering::Acquire);
        let rejected = c.rejected.load(Ordering::Acquire);
        let failed = c.failed.load(Ordering::Acquire);
        let sent = c.sent.load(Ordering::Acquire);
        SinkMetrics {
            sent,
            accepted,
            rejected,
            failed,
            in_flight: sent.saturating_sub(accepted + rejected + failed),
            invalidated: c.invalidated.load(Ordering::Acquire),
            quarantined: c.quarantined.load(Ordering::Acquire),
            released: c.released.load(Ordering::Acquire),
            skipped: c.skipped.load(Ordering::Acquire),
            config_suspect: c.config_suspect.load(Ordering::Acquire),
            unaddressed: c.unaddressed.load(Ordering::Acquire),
            unresolved: c.unresolved.load(Ordering::Acquire),
            panicked: c.panicked.load(Ordering::Acquire),
        }
    }

    /// The circuit breakers' states, one per topic and environment the sink has sent to.
    ///
    /// ```
    /// # use herald::{apns::ApnsClient, bridge::ApnsSink};
    /// # let sink = ApnsSink::builder(ApnsClient::builder().build().unwrap()).build();
    /// assert!(sink.breakers().iter().all(|b| b.state.is_closed()));
    /// ```
    pub fn breakers(&self) -> Vec<BreakerReport> {
        self.inner.lifecycle.breakers()
    }

    /// Resolves a message to the devices it addresses.
    fn resolve(&self, message: &Message) -> Result<Vec<Resolved>, RegistryError> {
        let inner = &*self.inner;
        let topic = message.topic.as_ref().or(inner.topic.as_ref());
        match &message.target {
            Target::Token(token) => {
                let token = token.trim().to_ascii_lowercase();
                let known = inner.registry.as_ref().and_then(|r| match r.device(&token) {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::warn!(error = %e, "apns sink: could not read the device registry");
                        None
                    }
                });
                // A token is filed under its registered environment, never the sink's: a token
                // of the other environment is not sent at all (its server would answer
                // BadDeviceToken, evidence against nothing; `send_one` holds it back).
                let registered_env = known.as_ref().map(|d| d.environment);
                Ok(vec![Resolved {
                    token,
                    topic: topic.cloned().unwrap_or_default(),
                    subject: None,
                    environment: registered_env.or(inner.environment),
                    registered: known.map(|d| d.quarantine),
                }])
            }
            Target::Subject(subject) => {
                let Some(registry) = &inner.registry else {
                    return Ok(Vec::new());
                };
                Ok(registry
                    .devices(subject)?
                    .into_iter()
                    .filter(|d| inner.environment.is_none_or(|e| e == d.environment))
                    .filter(|d| topic.is_none_or(|t| *t == d.topic))
                    .map(|d| Resolved {
                        token: d.token,
                        topic: d.topic,
                        subject: Some(subject.clone()),
                        environment: Some(d.environment),
                        registered: Some(d.quarantine),
                    })
                    .collect())
            }
        }
    }

    /// [`resolve`](Self::resolve), waiting out a registry that cannot be read (its store
    /// unreachable: a NATS server restarting) for up to [`REGISTRY_READ_PATIENCE`], so that
    /// a message is not dropped for a moment's outage. Later messages wait behind it.
    async fn resolve_patiently(&self, message: &Message) -> Result<Vec<Resolved>, RegistryError> {
        let deadline = tokio::time::Instant::now() + REGISTRY_READ_PATIENCE;
        let mut delay = Duration::from_millis(50);
        loop {
            match self.resolve(message) {
                Ok(targets) => return Ok(targets),
                Err(e) if tokio::time::Instant::now() + delay >= deadline => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, "apns sink: could not read the device registry; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}

/// A notification type mapped to [`Message`]s by an [`ApnsSink`]: subscribe it with
/// [`ObserverBuilder::forward`].
///
/// ```
/// # use herald::{apns::{ApnsClient, Payload}, bridge::{ApnsSink, Message}, Notification};
/// # struct Ping;
/// # impl Notification for Ping {}
/// # let sink = ApnsSink::builder(ApnsClient::builder().build().unwrap()).build();
/// let map = sink.map(|_: &Ping| Message::to_token("ab", Payload::background()));
/// # drop(map);
/// ```
#[must_use = "a mapped sink does nothing until subscribed with ObserverBuilder::forward"]
pub struct SinkMap<N> {
    sink: ApnsSink,
    map: MapFn<N>,
}

type MapFn<N> = Box<dyn Fn(&N) -> Vec<Message> + Send + Sync>;

impl<N> fmt::Debug for SinkMap<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SinkMap")
            .field("sink", &self.sink)
            .finish_non_exhaustive()
    }
}

/// What a forwarding task and its [`Forwarding`] handle share.
struct Shared {
    /// This subscription's pushes sent and not yet reported.
    in_flight: AtomicUsize,
    /// Wakes the task when `in_flight` reaches 0 (a stored permit if it is not waiting).
    settled: Notify,
}

impl<N: Notification, P: BufferPolicy<N>> Terminal<N, P> for SinkMap<N> {
    type Output = Forwarding;

    /// Forwards to APNs: notifications wait in this subscription's bounded buffer (the
    /// builder's [`policy`](ObserverBuilder::policy), default drop-oldest 1024), then a tokio task maps,
    /// resolves and sends them and posts the outcomes back into this center. Needs a tokio
    /// runtime. Dropping the returned guard stops forwarding at once;
    /// [`Forwarding::finish`] drains first.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use herald::apns::{ApnsClient, Payload};
    /// use herald::bridge::{ApnsSink, Message};
    /// use herald::{Notification, NotificationCenter, Overflow};
    ///
    /// struct Alarm { token: String }
    /// impl Notification for Alarm {}
    ///
    /// let center = NotificationCenter::new();
    /// let sink = ApnsSink::builder(ApnsClient::builder().build().unwrap())
    ///     .topic("com.example.app")
    ///     .build();
    /// let forwarding = center
    ///     .observer::<Alarm>()
    ///     .policy(Overflow::DropOldest { capacity: 100 })
    ///     .forward(sink.map(|a: &Alarm| Message::to_token(&a.token, Payload::alert("Wake up"))));
    /// assert_eq!(forwarding.queue().map(|q| q.capacity), Some(100));
    /// # }
    /// ```
    fn subscribe(self, builder: ObserverBuilder<N, P>) -> Forwarding {
        let target = self;
        let center = builder.center().clone();
        let stream = builder.stream();
        let id = stream.id();
        let closing = Arc::new(Notify::new());
        let done = Arc::new(Notify::new());
        let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let shared = Arc::new(Shared {
            in_flight: AtomicUsize::new(0),
            settled: Notify::new(),
        });
        let (idle_tx, idle_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(
            stream,
            target,
            center.clone(),
            Control {
                closing: closing.clone(),
                done: done.clone(),
                finished: finished.clone(),
                shared: shared.clone(),
                idle: idle_rx,
            },
        ));
        let stats_center = center.clone();
        Forwarding {
            id,
            queue: Box::new(move || {
                stats_center
                    .stats::<N>()
                    .buffers
                    .into_iter()
                    .find(|b| b.observer == id)
            }),
            closing,
            done,
            finished,
            shared,
            idle: idle_tx,
            task: Some(task),
        }
    }
}

/// The forwarding task's side of its handle.
struct Control {
    closing: Arc<Notify>,
    done: Arc<Notify>,
    finished: Arc<std::sync::atomic::AtomicBool>,
    shared: Arc<Shared>,
    idle: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
}

async fn run<N: Notification>(
    mut stream: crate::NotificationStream<N>,
    target: SinkMap<N>,
    center: NotificationCenter,
    mut control: Control,
) {
    let sink = target.sink;
    let concurrency = sink.inner.concurrency;
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut closed = false;
    let mut idle_waiters: Vec<oneshot::Sender<()>> = Vec::new();
    loop {
        // Idle: nothing buffered (anything posted before `idle()` was asked is in the buffer
        // or was taken by this loop) and every push taken has been reported.
        if !idle_waiters.is_empty()
            && stream.is_empty()
            && control.shared.in_flight.load(Ordering::Acquire) == 0
        {
            for w in idle_waiters.drain(..) {
                let _ = w.send(());
            }
        }
        let next = tokio::select! {
            r = stream.recv() => r,
            Some(waiter) = control.idle.recv() => {
                idle_waiters.push(waiter);
                continue;
            }
            _ = control.shared.settled.notified(), if !idle_waiters.is_empty() => continue,
            _ = control.closing.notified(), if !closed => {
                closed = true;
                stream.unsubscribe();
                continue;
            }
        };
        let n = match next {
            Ok(n) => n,
            Err(RecvError::Lagged(_)) => continue, // counted by the buffer's stats
            Err(RecvError::Closed) => break,
        };
        crate::telemetry::sink_queue_depth(N::name(), stream.len());
        // A panicking map loses that notification only, as a panicking observer would.
        let mapped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (target.map)(&n)));
        drop(n);
        let Ok(messages) = mapped else {
            sink.inner.counters.panicked.fetch_add(1, Ordering::Relaxed);
            crate::telemetry::sink_map_panic();
            tracing::error!(
                notification = N::name(),
                "apns sink: the map closure panicked"
            );
            continue;
        };
        for message in messages {
            let targets = match sink.resolve_patiently(&message).await {
                Ok(targets) => targets,
                Err(e) => {
                    sink.inner
                        .counters
                        .unresolved
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        error = %e,
                        "apns sink: the device registry stayed unreadable; message not sent"
                    );
                    continue;
                }
            };
            if targets.is_empty() {
                sink.inner
                    .counters
                    .unaddressed
                    .fetch_add(1, Ordering::Relaxed);
                crate::telemetry::sink_unaddressed();
                continue;
            }
            for resolved in targets {
                send_one(
                    &sink,
                    &center,
                    &message,
                    resolved,
                    &permits,
                    &control.shared,
                )
                .await;
            }
        }
    }
    // Wait for every push in flight.
    let all = u32::try_from(concurrency).unwrap_or(u32::MAX);
    let _ = permits.acquire_many(all).await;
    control.finished.store(true, Ordering::Release);
    control.done.notify_waiters();
}

/// Builds, admits and sends one push (its outcome is reported by a spawned task).
async fn send_one(
    sink: &ApnsSink,
    center: &NotificationCenter,
    message: &Message,
    resolved: Resolved,
    permits: &Arc<Semaphore>,
    shared: &Arc<Shared>,
) {
    let counters = &sink.inner.counters;
    let Resolved {
        token,
        topic,
        subject,
        environment,
        registered,
    } = resolved;
    let push = match message.build(&token, &topic) {
        Ok(p) => p,
        Err(error) => {
            counters.sent.fetch_add(1, Ordering::AcqRel);
            crate::telemetry::sink_push("sent");
            center.post(PushFailed {
                token,
                topic,
                subject,
                error,
                push: None,
            });
            counters.failed.fetch_add(1, Ordering::AcqRel);
            crate::telemetry::sink_push("failed");
            return;
        }
    };
    let span = tracing::debug_span!(
        "herald.push",
        apns_id = %push.apns_id(),
        topic = %push.topic(),
        token = %crate::apns::token_prefix(push.device_token()),
    );
    // A token of the other environment (see `Resolved::environment`) is held back.
    let admit = match (environment, sink.inner.environment) {
        (Some(theirs), Some(ours)) if theirs != ours => Admit::Skip(SkipCause::OtherEnvironment),
        _ => sink.inner.lifecycle.admit(&LifecycleTarget {
            token: &token,
            topic: &topic,
            environment,
            registered: registered.as_ref().map(Option::as_ref),
        }),
    };
    let ticket = match admit {
        Admit::Send(ticket) => ticket,
        Admit::Skip(cause) => {
            span.in_scope(|| tracing::debug!(cause = cause.as_str(), "skipped"));
            counters.skipped.fetch_add(1, Ordering::AcqRel);
            crate::telemetry::sink_skipped(cause.as_str());
            center.post(PushSkipped {
                push,
                subject,
                cause,
            });
            return;
        }
    };
    span.in_scope(|| tracing::debug!("queued"));
    let Ok(permit) = permits.clone().acquire_owned().await else {
        return;
    };
    counters.sent.fetch_add(1, Ordering::AcqRel);
    crate::telemetry::sink_push("sent");
    shared.in_flight.fetch_add(1, Ordering::AcqRel);
    let sink = sink.clone();
    let center = center.clone();
    let shared = shared.clone();
    tokio::spawn(
        async move {
            let sent_at = sink.inner.lifecycle.now();
            tracing::debug!("sent");
            let outcome = match &sink.inner.dispatch {
                Some(dispatch) => dispatch.dispatch(push, subject.as_deref()).await,
                None => sink.inner.client.send(push).await,
            };
            report(
                &sink,
                &center,
                outcome,
                Sent {
                    token,
                    topic,
                    subject,
                    sent_at,
                    ticket,
                },
            );
            if shared.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
                shared.settled.notify_one();
            }
            drop(permit);
        }
        .instrument(span),
    );
}

/// A push on its way, as its report needs it.
struct Sent {
    token: String,
    topic: String,
    subject: Option<String>,
    sent_at: SystemTime,
    ticket: Ticket,
}

fn report(sink: &ApnsSink, center: &NotificationCenter, outcome: PushOutcome, sent: Sent) {
    let counters = &sink.inner.counters;
    let lifecycle = &sink.inner.lifecycle;
    let Sent {
        token,
        topic,
        subject,
        sent_at,
        ticket,
    } = sent;
    let (counter, actions) = match outcome {
        PushOutcome::Accepted(a) => {
            tracing::debug!("accepted");
            let actions = lifecycle.record(
                ticket,
                &token,
                subject.as_deref(),
                sent_at,
                Observed::Accepted,
            );
            center.post(PushAccepted {
                token,
                topic,
                subject,
                apns_id: a.apns_id,
            });
            crate::telemetry::sink_push("accepted");
            (&counters.accepted, actions)
        }
        PushOutcome::Rejected(r) => {
            tracing::debug!(status = r.status, reason = %r.reason, "rejected");
            let actions = lifecycle.record(
                ticket,
                &token,
                subject.as_deref(),
                sent_at,
                Observed::Rejected {
                    reason: &r.reason,
                    timestamp: r.timestamp,
                },
            );
            crate::telemetry::sink_rejected(&r.reason);
            center.post(PushRejected {
                token,
                topic,
                subject,
                apns_id: r.apns_id,
                status: r.status,
                reason: r.reason,
                timestamp: r.timestamp,
                push: r.push,
            });
            crate::telemetry::sink_push("rejected");
            (&counters.rejected, actions)
        }
        PushOutcome::Failed(f) => {
            tracing::debug!(error = %f.error, "failed");
            let actions = lifecycle.record(
                ticket,
                &token,
                subject.as_deref(),
                sent_at,
                Observed::Failed,
            );
            center.post(PushFailed {
                token,
                topic,
                subject,
                error: f.error,
                push: Some(f.push),
            });
            crate::telemetry::sink_push("failed");
            (&counters.failed, actions)
        }
    };
    for action in actions {
        match action {
            Action::Quarantined(n) => {
                tracing::info!(reason = %n.reason, again = n.again, "token quarantined");
                counters.quarantined.fetch_add(1, Ordering::AcqRel);
                crate::telemetry::token_event("quarantined");
                center.post(n);
            }
            Action::Released(n) => {
                tracing::info!("token released from quarantine");
                counters.released.fetch_add(1, Ordering::AcqRel);
                crate::telemetry::token_event("released");
                center.post(n);
            }
            Action::Invalidated(n) => {
                let event = if n.reason.invalidates_token() {
                    "invalidated"
                } else {
                    "confirmed_invalid"
                };
                tracing::info!(reason = %n.reason, "token invalidated");
                counters.invalidated.fetch_add(1, Ordering::AcqRel);
                crate::telemetry::token_event(event);
                center.post(n);
            }
            Action::Suspect(n) => {
                counters.config_suspect.fetch_add(1, Ordering::AcqRel);
                center.post(n);
            }
            Action::Recovered(n) => {
                center.post(n);
            }
        }
    }
    // Last: the push leaves `in_flight` only once everything about it was posted.
    counter.fetch_add(1, Ordering::AcqRel);
}

/// A live forwarding subscription (from [`ObserverBuilder::forward`]). Dropping it stops
/// forwarding at once (pushes already sent still get their outcomes);
/// [`idle`](Self::idle) waits until everything posted so far is sent and answered;
/// [`finish`](Self::finish) unsubscribes, sends what is queued and waits for every outcome.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// # use herald::{apns::{ApnsClient, Payload}, bridge::{ApnsSink, Message}, Notification, NotificationCenter};
/// # struct Ping;
/// # impl Notification for Ping {}
/// # let center = NotificationCenter::new();
/// # let sink = ApnsSink::builder(ApnsClient::builder().build().unwrap()).build();
/// let forwarding = center
///     .observer::<Ping>()
///     .forward(sink.map(|_: &Ping| None::<Message>));
/// center.post(Ping);
/// forwarding.finish().await;
/// assert_eq!(sink.metrics().unaddressed, 0);
/// # }
/// ```
#[must_use = "dropping Forwarding stops forwarding at once"]
pub struct Forwarding {
    id: ObserverId,
    queue: Box<dyn Fn() -> Option<BufferStats> + Send + Sync>,
    closing: Arc<Notify>,
    done: Arc<Notify>,
    finished: Arc<std::sync::atomic::AtomicBool>,
    shared: Arc<Shared>,
    idle: mpsc::UnboundedSender<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Forwarding {
    /// The subscription's id.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # use herald::{apns::ApnsClient, bridge::{ApnsSink, Message}, Notification, NotificationCenter};
    /// # struct Ping;
    /// # impl Notification for Ping {}
    /// # let center = NotificationCenter::new();
    /// # let sink = ApnsSink::builder(ApnsClient::builder().build().unwrap()).build();
    /// let f = center.observer::<Ping>().forward(sink.map(|_: &Ping| None::<Message>));
    /// println!("{}", f.id());
    /// # }
    /// ```
    pub fn id(&self) -> ObserverId {
        self.id
    }

    /// The queue between `post` and the network: depth, capacity, values taken, and values
    /// lost to the overflow policy. `None` once unsubscribed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # use herald::{apns::ApnsClient, bridge::{ApnsSink, Message}, Notification, NotificationCenter};
    /// # struct Ping;
    /// # impl Notification for Ping {}
    /// # let center = NotificationCenter::new();
    /// # let sink = ApnsSink::builder(ApnsClient::builder().build().unwrap()).build();
    /// let f = center.observer::<Ping>().forward(sink.map(|_: &Ping| None::<Message>));
    /// let q = f.queue().unwrap();
    /// assert_eq!((q.depth, q.dropped), (0, 0));
    /// # }
    /// ```
    pub fn queue(&self) -> Option<BufferStats> {
        (self.queue)()
    }

    /// This subscription's pushes sent and not yet reported.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # use herald::{apns::ApnsClient, bridge::{ApnsSink, Message}, Notification, NotificationCenter};
    /// # struct Ping;
    /// # impl Notification for Ping {}
    /// # let center = NotificationCenter::new();
    /// # let sink = ApnsSink::builder(ApnsClient::builder().build().unwrap()).build();
    /// let f = center.observer::<Ping>().forward(sink.map(|_: &Ping| None::<Message>));
    /// assert_eq!(f.in_flight(), 0);
    /// # }
    /// ```
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::Acquire)
    }

    /// Waits, without unsubscribing, until this subscription is idle: every notification
    /// posted before the call has been mapped and its pushes sent, and every outcome (with
    /// the notifications it leads to, and their inline observers) has been posted. Returns at
    /// once if forwarding has stopped.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # use herald::{apns::{ApnsClient, Payload}, bridge::{ApnsSink, Message}, Notification, NotificationCenter};
    /// # struct Ping;
    /// # impl Notification for Ping {}
    /// # let center = NotificationCenter::new();
    /// # let sink = ApnsSink::builder(ApnsClient::builder().build().unwrap()).build();
    /// let f = center.observer::<Ping>().forward(sink.map(|_: &Ping| None::<Message>));
    /// center.post(Ping);
    /// f.idle().await;
    /// assert_eq!(f.queue().unwrap().depth, 0);
    /// center.post(Ping); // still subscribed
    /// f.idle().await;
    /// # }
    /// ```
    pub async fn idle(&self) {
        let (tx, rx) = oneshot::channel();
        if self.idle.send(tx).is_ok() {
            let _ = rx.await;
        }
    }

    /// Unsubscribes, sends everything still queued, and waits until every push sent has its
    /// outcome posted.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # use herald::{apns::ApnsClient, bridge::{ApnsSink, Message}, Notification, NotificationCenter};
    /// # struct Ping;
    /// # impl Notification for Ping {}
    /// # let center = NotificationCenter::new();
    /// # let sink = ApnsSink::builder(ApnsClient::builder().build().unwrap()).build();
    /// let f = center.observer::<Ping>().forward(sink.map(|_: &Ping| None::<Message>));
    /// f.finish().await;
    /// assert_eq!(center.post(Ping).received, 0);
    /// # }
    /// ```
    pub async fn finish(mut self) {
        let done = self.done.notified();
        tokio::pin!(done);
        done.as_mut().enable();
        self.closing.notify_one();
        if !self.finished.load(Ordering::Acquire) {
            done.await;
        }
        self.task.take();
    }
}

impl Drop for Forwarding {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl fmt::Debug for Forwarding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Forwarding")
            .field("id", &self.id)
            .field("queue", &self.queue())
            .field("in_flight", &self.in_flight())
            .finish_non_exhaustive()
    }
}
