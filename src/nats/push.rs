//! Push fan-out over workers (features `nats` and `bridge`): an
//! [`ApnsSink`](crate::bridge::ApnsSink) hands its pushes
//! to a JetStream work queue ([`NatsPushQueue`]); any number of [`PushWorker`]s (or
//! `herald worker` processes) take them, send them through their own
//! [`ApnsClient`], publish the outcome, then acknowledge.
//!
//! ```text
//!  posting process                      NATS (JetStream)                        worker processes
//!  center ─► forward(sink.map(..))      stream HERALD_PUSH (work queue)
//!            ApnsSink ─ dispatch ─────► <prefix>herald.push.job ─► consumer herald-workers ─► PushWorker ─► APNs
//!            ◄── outcome (matched by apns-id) ◄── stream HERALD_PUSH_OUTCOMES ◄── <prefix>herald.push.outcome
//!  center ◄─ PushAccepted / PushRejected / TokenInvalidated ... (posted by the sink, as without NATS)
//! ```
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! # let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
//! # let err = run(&format!("nats://127.0.0.1:{port}")).await.unwrap_err(); // no server in doctests
//! # assert!(err.downcast_ref::<herald::nats::Error>().is_some_and(|e| e.is_connect()), "{err:?}"); }
//! # async fn run(closed: &str) -> Result<(), Box<dyn std::error::Error>> {
//! use herald::apns::{ApnsClient, Payload};
//! use herald::bridge::{ApnsSink, DeviceRegistry, Message};
//! use herald::nats::{NatsBridge, NatsPushQueue, PushQueueConfig};
//! use herald::{Notification, NotificationCenter};
//!
//! struct Shipped { user: String }
//! impl Notification for Shipped {}
//!
//! let url = "nats://127.0.0.1:4222";
//! # let url = closed; // no server in doctests: a closed local port
//! let bridge = NatsBridge::connect(url).await?;
//! let queue = NatsPushQueue::start(&bridge, PushQueueConfig::default()).await?;
//! let registry = DeviceRegistry::in_memory();
//! // The sink's own client is not used: the workers send.
//! let sink = ApnsSink::builder(ApnsClient::builder().build()?)
//!     .registry(registry.clone())
//!     .dispatch(queue.clone())
//!     .build();
//! let center = NotificationCenter::new();
//! let _lifecycle = registry.observe(&center); // 410s reported by workers still reach it
//! let _push = center.observer::<Shipped>().forward(
//!     sink.map(|s: &Shipped| Message::to_subject(&s.user, Payload::alert("Shipped"))),
//! );
//! # Ok(()) }
//! ```
//!
//! # Delivery guarantee
//!
//! - **Enqueue** is confirmed by the server (a JetStream publish acknowledgement) before the
//!   sink counts the push as handed off; the job carries `Nats-Msg-Id` = the push's apns-id,
//!   so a retried enqueue within the stream's duplicate window is stored once.
//! - **Between send and ack, at least once.** A worker sends the push, publishes its outcome,
//!   and only then acknowledges the job. A worker that dies (or loses the server, or is shut
//!   down while the server is gone: see [`WorkerHandle::shutdown`]) before its
//!   acknowledgement leaves the job unacknowledged: after
//!   [`ack_wait`](PushQueueConfig::ack_wait) the queue gives it to another worker, which sends
//!   it **again**. Both sends carry the same apns-id and the same `apns-collapse-id` (the
//!   user's, or one derived from the apns-id when the push had none), so a device that gets
//!   both shows one notification (APNs and the device replace a notification by a newer one
//!   with the same collapse id).
//! - **One outcome per push.** Outcomes are published with `Nats-Msg-Id` = apns-id into a
//!   stream with a duplicate window ([`PushQueueConfig::duplicate_window`], default 2 min,
//!   which must exceed `ack_wait` plus a send): the second outcome of a redelivered push is
//!   dropped by the server, and the posting side waits for exactly one per push. (Had the
//!   first worker died *before* publishing its outcome, the second worker's is the only one.)
//! - **A posting side that gives up.** The sink waits [`outcome_timeout`](PushQueueConfig::outcome_timeout)
//!   for an outcome (default 5 min: workers may be restarting), then reports the push failed
//!   with [`ErrorKind::Timeout`](crate::apns::ErrorKind::Timeout): "APNs may or may not have
//!   it" — the job stays queued and a worker may still send it later.
//! - **Enqueue retries.** A job whose publish the server did not confirm is published again
//!   until [`enqueue_timeout`](PushQueueConfig::enqueue_timeout) (default 10 s, riding out a
//!   reconnect or a server restart; the stream stores it once thanks to its `Nats-Msg-Id`). Still unconfirmed, the push is reported
//!   failed with [`ErrorKind::ConnectionLost`](crate::apns::ErrorKind::ConnectionLost) ("may
//!   or may not be queued"); refused by the server (no such stream, too large), with
//!   [`ErrorKind::Connect`](crate::apns::ErrorKind::Connect) (nothing was queued).
//! - A job a worker cannot decode is terminated (never redelivered) and counted in
//!   [`WorkerMetrics::undecodable`]; a job that decodes but is not a valid push gets a failed
//!   outcome ([`ErrorKind::InvalidPush`](crate::apns::ErrorKind::InvalidPush)), and so does
//!   one whose building or sending panics (the latter with
//!   [`ErrorKind::Other`](crate::apns::ErrorKind::Other): APNs may or may not have it): each
//!   is reported and acknowledged, never redelivered.
//! - **The same push twice.** The stream keeps one job per apns-id within its duplicate
//!   window. Dispatches of one push (one apns-id: a clone keeps it) while an earlier dispatch
//!   of it still waits share its job and its outcome: APNs gets it once, and each dispatch
//!   gets the outcome. Dispatched again within the window once no dispatch of it waits here
//!   any more (it got its outcome, or gave up), it is not queued again and never gets an
//!   outcome: it fails at once with
//!   [`ErrorKind::InvalidPush`](crate::apns::ErrorKind::InvalidPush), counted in
//!   [`QueueMetrics::duplicates`]. A push meant to be sent again needs a new apns-id.
//!
//! # Wire format (version 1)
//!
//! | subject | payload (JSON) | headers |
//! |---|---|---|
//! | `<prefix>herald.push.job` | `{"v":1,"apns_id","token","topic","push_type":"alert","priority":10,"expiration_s"?,"collapse_id","payload":"<APNs JSON text>","subject"?,"enqueued_ms"}` | `Nats-Msg-Id: <apns-id>` |
//! | `<prefix>herald.push.outcome` | `{"v":1,"apns_id","token","topic","subject"?,"result":"accepted"\|"rejected"\|"failed","status"?,"reason"?:"Unregistered","timestamp_ms"?,"error"?:{"kind":"Timeout","message"},"worker","delivery","at_ms"}` | `Nats-Msg-Id: <apns-id>` |
//!
//! Times are milliseconds since the Unix epoch (`expiration_s`: seconds, 0 = immediately);
//! reasons are Apple's strings; error kinds are the names of
//! [`crate::apns::ErrorKind`]'s variants. Readers refuse a `v` they do not know.

use std::collections::HashMap;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures_core::Stream;
use parking_lot::Mutex;
use tokio::sync::{Semaphore, oneshot, watch};

use super::push_wire::{Job, OutcomeRecord, VERSION};
use super::{ConnectionState, Error, ErrorKind, NatsBridge};
use crate::apns::{self, ApnsClient, Push, PushOutcome};
use crate::bridge::{DispatchFuture, PushDispatch};
use crate::hub::engine::panic_message;
use crate::hub::spawn::CatchUnwind;

/// Where the queue lives on the server: stream, subject and consumer names, and timings.
/// The posting side and every worker must use the same values.
///
/// ```
/// use herald::nats::PushQueueConfig;
/// use std::time::Duration;
/// let config = PushQueueConfig::default()
///     .stream("EU_PUSH")
///     .outcome_stream("EU_PUSH_OUTCOMES")
///     .ack_wait(Duration::from_secs(10));
/// assert_eq!(config.job_subject("eu."), "eu.herald.push.job");
/// ```
#[derive(Debug, Clone)]
pub struct PushQueueConfig {
    stream: String,
    outcome_stream: String,
    consumer: String,
    ack_wait: Duration,
    duplicate_window: Duration,
    outcome_timeout: Duration,
    outcome_max_age: Duration,
    max_deliver: i64,
    enqueue_timeout: Duration,
}

/// Default [`PushQueueConfig::ack_wait`]: 30 s (longer than a send with the client's default
/// timeouts; a send still running is kept alive with progress acknowledgements).
///
/// ```
/// use herald::nats::{DEFAULT_ACK_WAIT, PushQueueConfig};
/// use std::time::Duration;
///
/// assert_eq!(DEFAULT_ACK_WAIT, Duration::from_secs(30));
/// // Slow sends: give each job twice as long, and keep the duplicate window above it.
/// let config = PushQueueConfig::default()
///     .ack_wait(2 * DEFAULT_ACK_WAIT)
///     .duplicate_window(2 * DEFAULT_ACK_WAIT + Duration::from_secs(60));
/// # drop(config);
/// ```
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);

impl Default for PushQueueConfig {
    fn default() -> Self {
        PushQueueConfig {
            stream: "HERALD_PUSH".into(),
            outcome_stream: "HERALD_PUSH_OUTCOMES".into(),
            consumer: "herald-workers".into(),
            ack_wait: DEFAULT_ACK_WAIT,
            duplicate_window: Duration::from_secs(120),
            outcome_timeout: Duration::from_secs(300),
            outcome_max_age: Duration::from_secs(24 * 3600),
            max_deliver: -1,
            enqueue_timeout: Duration::from_secs(10),
        }
    }
}

impl PushQueueConfig {
    /// The work-queue stream's name (default `HERALD_PUSH`).
    ///
    /// ```
    /// # use herald::nats::PushQueueConfig;
    /// let c = PushQueueConfig::default().stream("EU_PUSH");
    /// # drop(c);
    /// ```
    pub fn stream(mut self, name: impl Into<String>) -> Self {
        self.stream = name.into();
        self
    }

    /// The outcome stream's name (default `HERALD_PUSH_OUTCOMES`).
    ///
    /// ```
    /// # use herald::nats::PushQueueConfig;
    /// let c = PushQueueConfig::default().outcome_stream("EU_OUTCOMES");
    /// # drop(c);
    /// ```
    pub fn outcome_stream(mut self, name: impl Into<String>) -> Self {
        self.outcome_stream = name.into();
        self
    }

    /// The durable consumer all workers share (default `herald-workers`).
    ///
    /// ```
    /// # use herald::nats::PushQueueConfig;
    /// let c = PushQueueConfig::default().consumer("eu-workers");
    /// # drop(c);
    /// ```
    pub fn consumer(mut self, name: impl Into<String>) -> Self {
        self.consumer = name.into();
        self
    }

    /// How long a job a worker took may stay unacknowledged before the queue gives it to
    /// another worker (default [`DEFAULT_ACK_WAIT`]). Set when the consumer is created (by the
    /// first worker).
    ///
    /// ```
    /// # use herald::nats::PushQueueConfig;
    /// let c = PushQueueConfig::default().ack_wait(std::time::Duration::from_secs(5));
    /// # drop(c);
    /// ```
    pub fn ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = ack_wait.max(Duration::from_millis(100));
        self
    }

    /// The duplicate window of both streams (default 2 min): must exceed `ack_wait` plus the
    /// longest send, so a redelivered push's second outcome is still recognized.
    ///
    /// ```
    /// # use herald::nats::PushQueueConfig;
    /// let c = PushQueueConfig::default().duplicate_window(std::time::Duration::from_secs(600));
    /// # drop(c);
    /// ```
    pub fn duplicate_window(mut self, window: Duration) -> Self {
        self.duplicate_window = window;
        self
    }

    /// How long the posting side waits for a push's outcome before reporting it failed with a
    /// timeout (default 5 min).
    ///
    /// ```
    /// # use herald::nats::PushQueueConfig;
    /// let c = PushQueueConfig::default().outcome_timeout(std::time::Duration::from_secs(60));
    /// # drop(c);
    /// ```
    pub fn outcome_timeout(mut self, timeout: Duration) -> Self {
        self.outcome_timeout = timeout;
        self
    }

    /// How long the posting side keeps publishing a job the server has not confirmed before
    /// reporting the push failed (default 10 s: rides out a reconnect or a server restart;
    /// the stream stores the job once whatever the number of attempts).
    ///
    /// ```
    /// # use herald::nats::PushQueueConfig;
    /// let c = PushQueueConfig::default().enqueue_timeout(std::time::Duration::from_secs(30));
    /// # drop(c);
    /// ```
    pub fn enqueue_timeout(mut self, timeout: Duration) -> Self {
        self.enqueue_timeout = timeout;
        self
    }

    /// How long the outcome stream keeps outcomes (default 24 h).
    ///
    /// ```
    /// # use herald::nats::PushQueueConfig;
    /// let c = PushQueueConfig::default().outcome_max_age(std::time::Duration::from_secs(3600));
    /// # drop(c);
    /// ```
    pub fn outcome_max_age(mut self, age: Duration) -> Self {
        self.outcome_max_age = age;
        self
    }

    /// The subject jobs are published on, under a bridge's subject prefix.
    ///
    /// ```
    /// # use herald::nats::PushQueueConfig;
    /// assert_eq!(PushQueueConfig::default().job_subject(""), "herald.push.job");
    /// ```
    pub fn job_subject(&self, prefix: &str) -> String {
        format!("{prefix}herald.push.job")
    }

    /// The subject outcomes are published on, under a bridge's subject prefix.
    ///
    /// ```
    /// # use herald::nats::PushQueueConfig;
    /// assert_eq!(PushQueueConfig::default().outcome_subject("eu."), "eu.herald.push.outcome");
    /// ```
    pub fn outcome_subject(&self, prefix: &str) -> String {
        format!("{prefix}herald.push.outcome")
    }

    /// Creates the two streams when missing (idempotent; both sides call it).
    pub(crate) async fn ensure_streams(
        &self,
        js: &jetstream::Context,
        prefix: &str,
    ) -> Result<(jetstream::stream::Stream, jetstream::stream::Stream), Error> {
        let jobs = get_or_create_stream(
            js,
            stream::Config {
                name: self.stream.clone(),
                subjects: vec![self.job_subject(prefix)],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                duplicate_window: self.duplicate_window,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| queue_error("create the work-queue stream", e))?;
        let outcomes = get_or_create_stream(
            js,
            stream::Config {
                name: self.outcome_stream.clone(),
                subjects: vec![self.outcome_subject(prefix)],
                retention: stream::RetentionPolicy::Limits,
                storage: stream::StorageType::File,
                duplicate_window: self.duplicate_window,
                max_age: self.outcome_max_age,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| queue_error("create the outcome stream", e))?;
        for (stream, subject) in [
            (&jobs, self.job_subject(prefix)),
            (&outcomes, self.outcome_subject(prefix)),
        ] {
            let config = &stream.cached_info().config;
            if !config.subjects.iter().any(|s| subject_matches(s, &subject)) {
                return Err(Error::new(
                    ErrorKind::JetStream,
                    format!(
                        "the stream {} exists for {:?}, not {subject}: give each subject \
                         prefix its own stream names (PushQueueConfig::stream, outcome_stream)",
                        config.name, config.subjects
                    ),
                ));
            }
        }
        Ok((jobs, outcomes))
    }
}

/// How many times a creation the server refused is tried again (see
/// [`get_or_create_stream`]).
const CREATE_ATTEMPTS: u32 = 4;

/// Whether the server's refusal to create a stream or a consumer can mean that another client
/// created the same one at the same moment (then it exists now, and looking again finds it).
fn lost_a_creation_race(code: jetstream::ErrorCode) -> bool {
    use jetstream::ErrorCode as C;
    [
        C::STREAM_SUBJECT_OVERLAP,
        C::STREAM_NAME_EXIST,
        C::CONSUMER_NAME_EXIST,
        C::CONSUMER_ALREADY_EXISTS,
        C::CONSUMER_EXISTING_ACTIVE,
    ]
    .contains(&code)
}

/// The stream `config` names, created when missing. Workers and posting sides all call this
/// at start-up, so two of them may find the stream missing at the same moment and both ask to
/// create it: the server (nats-server 2.9) can then refuse the second creation, saying
/// "subjects overlap with an existing stream" (the first one's), although what it asked for
/// now exists. That made one of two `herald worker`s started together against a new server
/// exit with code 3 now and then. A refusal that can come from that race is followed by a
/// second look (a few, with short pauses); a real conflict (another stream holding the
/// subject) is still refused, after them.
async fn get_or_create_stream(
    js: &jetstream::Context,
    config: stream::Config,
) -> Result<jetstream::stream::Stream, jetstream::context::CreateStreamError> {
    use jetstream::context::CreateStreamErrorKind as K;
    looking_again(
        || js.get_or_create_stream(config.clone()),
        |e| matches!(e.kind(), K::JetStream(j) if lost_a_creation_race(j.error_code())),
    )
    .await
}

/// The durable pull consumer `name` of `stream`, created with `config` when missing; safe
/// against another client creating it at the same moment, like [`get_or_create_stream`].
pub(crate) async fn get_or_create_consumer(
    stream: &jetstream::stream::Stream,
    name: &str,
    config: consumer::pull::Config,
) -> Result<consumer::PullConsumer, jetstream::stream::ConsumerError> {
    use jetstream::stream::ConsumerErrorKind as K;
    looking_again(
        || stream.get_or_create_consumer(name, config.clone()),
        |e| matches!(e.kind(), K::JetStream(j) if lost_a_creation_race(j.error_code())),
    )
    .await
}

/// Runs `create` again, after a short pause (20 ms, doubling), while it fails with an error
/// `lost_race` says may come from another client's creation of the same thing, up to
/// [`CREATE_ATTEMPTS`] attempts in all.
async fn looking_again<T, E: std::fmt::Display, F: std::future::Future<Output = Result<T, E>>>(
    mut create: impl FnMut() -> F,
    lost_race: impl Fn(&E) -> bool,
) -> Result<T, E> {
    let mut pause = Duration::from_millis(20);
    let mut attempt = 1;
    loop {
        match create().await {
            Err(e) if attempt < CREATE_ATTEMPTS && lost_race(&e) => {
                tracing::debug!(error = %e, "creation refused, looking again");
            }
            done => return done,
        }
        tokio::time::sleep(pause).await;
        pause *= 2;
        attempt += 1;
    }
}

/// Whether the subject filter `filter` (with `*` and `>` wildcards) matches `subject`.
fn subject_matches(filter: &str, subject: &str) -> bool {
    let mut tokens = subject.split('.');
    for f in filter.split('.') {
        match (f, tokens.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (f, Some(t)) if f == t => {}
            _ => return false,
        }
    }
    tokens.next().is_none()
}

pub(crate) fn queue_error(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::with_source(ErrorKind::JetStream, format!("could not {what}"), e)
}

/// The next item of a stream.
pub(crate) async fn next<S: Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| Pin::new(&mut *s).poll_next(cx)).await
}

fn msg_id_headers(apns_id: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("Nats-Msg-Id", apns_id);
    h
}

// ---------------------------------------------------------------------------------------------
// The posting side.

/// The posting side of the work queue: a [`PushDispatch`] for
/// [`ApnsSinkBuilder::dispatch`](crate::bridge::ApnsSinkBuilder::dispatch). Each push is
/// published as a job and its outcome, published by whichever worker sent it, is matched by
/// apns-id and returned to the sink, which posts it (and the lifecycle notifications it leads
/// to) into its center as if it had sent the push itself. See the [module](self) for the
/// guarantees. Cheap to clone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// # let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
/// # let err = run(&format!("nats://127.0.0.1:{port}")).await.unwrap_err(); // no server in doctests
/// # assert!(err.downcast_ref::<herald::nats::Error>().is_some_and(|e| e.is_connect()), "{err:?}"); }
/// # async fn run(closed: &str) -> Result<(), Box<dyn std::error::Error>> {
/// use herald::apns::ApnsClient;
/// use herald::bridge::{ApnsSink, DeviceRegistry};
/// use herald::nats::{NatsBridge, NatsPushQueue, PushQueueConfig};
///
/// let url = "nats://127.0.0.1:4222";
/// # let url = closed; // no server in doctests: a closed local port
/// let bridge = NatsBridge::connect(url).await?;
/// let queue = NatsPushQueue::start(&bridge, PushQueueConfig::default()).await?;
/// let sink = ApnsSink::builder(ApnsClient::builder().build()?)
///     .registry(DeviceRegistry::in_memory())
///     .dispatch(queue.clone()) // the workers send; outcomes come back to this sink
///     .build();
/// # drop(sink);
/// println!("{} pushes waiting for their outcome", queue.metrics().waiting);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct NatsPushQueue {
    inner: Arc<QueueInner>,
}

struct QueueInner {
    js: jetstream::Context,
    job_subject: String,
    outcome_timeout: Duration,
    enqueue_timeout: Duration,
    /// The dispatches waiting for an outcome, by apns-id (several for one push dispatched
    /// more than once).
    pending: Mutex<HashMap<String, Vec<oneshot::Sender<OutcomeRecord>>>>,
    counters: QueueCounters,
    listener: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

#[derive(Default)]
struct QueueCounters {
    enqueued: AtomicU64,
    enqueue_failed: AtomicU64,
    duplicates: AtomicU64,
    outcomes: AtomicU64,
    timed_out: AtomicU64,
    unmatched: AtomicU64,
    undecodable: AtomicU64,
}

/// A [`NatsPushQueue`]'s counters.
///
/// ```
/// let m = herald::nats::QueueMetrics::default();
/// assert_eq!(m.enqueued, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueMetrics {
    /// Jobs the server confirmed.
    pub enqueued: u64,
    /// Jobs the server did not confirm (reported failed to the sink).
    pub enqueue_failed: u64,
    /// Pushes not queued because a job with their apns-id already was, for a dispatch no
    /// longer waiting (reported failed to the sink; see the [module](self) docs).
    pub duplicates: u64,
    /// Outcomes matched to a waiting push.
    pub outcomes: u64,
    /// Pushes whose outcome did not come within the outcome timeout.
    pub timed_out: u64,
    /// Outcomes for pushes this queue is not waiting for (another posting process's, or one
    /// that timed out).
    pub unmatched: u64,
    /// Outcome messages that could not be decoded.
    pub undecodable: u64,
    /// Dispatches waiting for their push's outcome now.
    pub waiting: u64,
}

impl fmt::Debug for NatsPushQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsPushQueue")
            .field("job_subject", &self.inner.job_subject)
            .field("metrics", &self.metrics())
            .finish_non_exhaustive()
    }
}

impl NatsPushQueue {
    /// Creates the streams when missing and starts reading outcomes, on `bridge`'s connection
    /// and under its subject prefix. Outcomes published before this returns are not matched
    /// (no push of this queue can have one yet).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// # let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    /// # let err = run(&format!("nats://127.0.0.1:{port}")).await.unwrap_err(); // no server in doctests
    /// # assert!(err.is_connect(), "{err:?}"); }
    /// # async fn run(closed: &str) -> Result<(), herald::nats::Error> {
    /// use herald::nats::{NatsBridge, NatsPushQueue, PushQueueConfig};
    /// let url = "nats://127.0.0.1:4222";
    /// # let url = closed; // no server in doctests: a closed local port
    /// let bridge = NatsBridge::connect(url).await?;
    /// let queue = NatsPushQueue::start(&bridge, PushQueueConfig::default()).await?;
    /// # drop(queue); Ok(()) }
    /// ```
    pub async fn start(
        bridge: &NatsBridge,
        config: PushQueueConfig,
    ) -> Result<NatsPushQueue, Error> {
        let client = bridge.client().clone();
        let prefix = bridge.subject_prefix().to_owned();
        let js = jetstream::new(client.clone());
        let (_, outcomes) = config.ensure_streams(&js, &prefix).await?;
        let reader = outcomes
            .create_consumer(consumer::push::OrderedConfig {
                deliver_subject: client.new_inbox(),
                filter_subject: config.outcome_subject(&prefix),
                deliver_policy: consumer::DeliverPolicy::New,
                ..Default::default()
            })
            .await
            .map_err(|e| queue_error("create the outcome reader", e))?
            .messages()
            .await
            .map_err(|e| queue_error("start the outcome reader", e))?;
        let inner = Arc::new(QueueInner {
            js,
            job_subject: config.job_subject(&prefix),
            outcome_timeout: config.outcome_timeout,
            enqueue_timeout: config.enqueue_timeout,
            pending: Mutex::new(HashMap::new()),
            counters: QueueCounters::default(),
            listener: Mutex::new(None),
        });
        let task = tokio::spawn(read_outcomes(reader, Arc::downgrade(&inner)));
        *inner.listener.lock() = Some(task);
        Ok(NatsPushQueue { inner })
    }

    /// A snapshot of the counters.
    ///
    /// ```no_run
    /// # async fn f(queue: herald::nats::NatsPushQueue) {
    /// let m = queue.metrics();
    /// println!("{} enqueued, {} waiting for their outcome", m.enqueued, m.waiting);
    /// # }
    /// ```
    pub fn metrics(&self) -> QueueMetrics {
        let c = &self.inner.counters;
        QueueMetrics {
            enqueued: c.enqueued.load(Ordering::Relaxed),
            enqueue_failed: c.enqueue_failed.load(Ordering::Relaxed),
            duplicates: c.duplicates.load(Ordering::Relaxed),
            outcomes: c.outcomes.load(Ordering::Relaxed),
            timed_out: c.timed_out.load(Ordering::Relaxed),
            unmatched: c.unmatched.load(Ordering::Relaxed),
            undecodable: c.undecodable.load(Ordering::Relaxed),
            waiting: self
                .inner
                .pending
                .lock()
                .values()
                .map(Vec::len)
                .sum::<usize>() as u64,
        }
    }

    async fn enqueue(inner: Arc<QueueInner>, push: Push, subject: Option<String>) -> PushOutcome {
        let job = Job::new(&push, subject.as_deref(), SystemTime::now());
        let apns_id = job.apns_id.clone();
        let body = match serde_json::to_vec(&job) {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                return failed(push, apns::ErrorKind::InvalidPush, format!("encode: {e}"));
            }
        };
        let (tx, rx) = oneshot::channel();
        // Registered before the job is published: its outcome cannot come first.
        inner
            .pending
            .lock()
            .entry(apns_id.clone())
            .or_default()
            .push(tx);
        // A publish whose acknowledgement was lost may have been stored: publishing again is
        // safe (the stream drops a second copy with the same Nats-Msg-Id), so retry a few
        // times before giving up, to ride out a reconnect or a server restart.
        let mut delay = Duration::from_millis(100);
        let mut attempt = 0;
        let deadline = tokio::time::Instant::now() + inner.enqueue_timeout;
        loop {
            attempt += 1;
            let publish = async {
                inner
                    .js
                    .publish_with_headers(
                        inner.job_subject.clone(),
                        msg_id_headers(&apns_id),
                        body.clone(),
                    )
                    .await?
                    .await
            };
            use jetstream::context::PublishErrorKind as P;
            let (refused, e) = match tokio::time::timeout_at(deadline, publish).await {
                // Stored before this dispatch asked, for a dispatch that no longer waits: the
                // outcome went (or goes) to it, none will come here.
                Ok(Ok(ack)) if ack.duplicate && attempt == 1 && !others_wait(&inner, &apns_id) => {
                    forget(&inner, &apns_id, rx);
                    inner.counters.duplicates.fetch_add(1, Ordering::Relaxed);
                    return failed(
                        push,
                        apns::ErrorKind::InvalidPush,
                        format!(
                            "a push with apns-id {apns_id} was queued already, within the work \
                             queue's duplicate window: it is not queued again (a push sent \
                             again needs a new apns-id)"
                        ),
                    );
                }
                Ok(Ok(_)) => break,
                Ok(Err(e)) => (
                    matches!(e.kind(), P::StreamNotFound | P::MaxPayloadExceeded),
                    e.to_string(),
                ),
                Err(_) => (false, "no confirmation in time".to_owned()),
            };
            if refused || tokio::time::Instant::now() + delay >= deadline {
                forget(&inner, &apns_id, rx);
                inner
                    .counters
                    .enqueue_failed
                    .fetch_add(1, Ordering::Relaxed);
                return if refused {
                    failed(
                        push,
                        apns::ErrorKind::Connect,
                        format!("the work queue refused the push, nothing was sent: {e}"),
                    )
                } else {
                    failed(
                        push,
                        apns::ErrorKind::ConnectionLost,
                        format!(
                            "the work queue did not confirm the push after {attempt} attempts \
                             in {:?}: it may or may not be queued (a worker may still send \
                             it): {e}",
                            inner.enqueue_timeout
                        ),
                    )
                };
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
        inner.counters.enqueued.fetch_add(1, Ordering::Relaxed);
        let mut rx = rx;
        match tokio::time::timeout(inner.outcome_timeout, &mut rx).await {
            Ok(Ok(record)) => {
                inner.counters.outcomes.fetch_add(1, Ordering::Relaxed);
                record.to_outcome(push)
            }
            Ok(Err(_)) => failed(
                push,
                apns::ErrorKind::Shutdown,
                "the push queue stopped reading outcomes".into(),
            ),
            Err(_) => {
                forget(&inner, &apns_id, rx);
                inner.counters.timed_out.fetch_add(1, Ordering::Relaxed);
                failed(
                    push,
                    apns::ErrorKind::Timeout,
                    format!(
                        "no outcome from a worker within {:?}: the push is queued and may \
                         still be sent",
                        inner.outcome_timeout
                    ),
                )
            }
        }
    }
}

/// Whether another dispatch of the push `apns_id` waits for its outcome (besides the one
/// asking).
fn others_wait(inner: &QueueInner, apns_id: &str) -> bool {
    inner
        .pending
        .lock()
        .get(apns_id)
        .is_some_and(|waiters| waiters.iter().filter(|tx| !tx.is_closed()).count() > 1)
}

/// Takes a dispatch that stops waiting out of the waiting ones (with any other whose
/// dispatch was dropped).
fn forget(inner: &QueueInner, apns_id: &str, rx: oneshot::Receiver<OutcomeRecord>) {
    drop(rx);
    let mut pending = inner.pending.lock();
    if let Some(waiters) = pending.get_mut(apns_id) {
        waiters.retain(|tx| !tx.is_closed());
        if waiters.is_empty() {
            pending.remove(apns_id);
        }
    }
}

fn failed(push: Push, kind: apns::ErrorKind, message: String) -> PushOutcome {
    PushOutcome::Failed(apns::Failed::new(apns::Error::new(kind, message), push))
}

impl PushDispatch for NatsPushQueue {
    fn dispatch(&self, push: Push, subject: Option<&str>) -> DispatchFuture {
        Box::pin(NatsPushQueue::enqueue(
            self.inner.clone(),
            push,
            subject.map(str::to_owned),
        ))
    }
}

impl Drop for QueueInner {
    fn drop(&mut self) {
        if let Some(task) = self.listener.get_mut().take() {
            task.abort();
        }
    }
}

async fn read_outcomes(mut reader: consumer::push::Ordered, inner: Weak<QueueInner>) {
    while let Some(item) = next(&mut reader).await {
        let Some(inner) = inner.upgrade() else { return };
        let message = match item {
            Ok(m) => m,
            Err(e) => {
                // The ordered consumer recreates itself; nothing is skipped.
                tracing::debug!(error = %e, "push queue: outcome reader");
                continue;
            }
        };
        match serde_json::from_slice::<OutcomeRecord>(&message.payload) {
            Ok(record) if record.v == VERSION => {
                let waiters = inner.pending.lock().remove(&record.apns_id);
                let mut matched = false;
                for tx in waiters.into_iter().flatten() {
                    matched |= tx.send(record.clone()).is_ok();
                }
                if !matched {
                    inner.counters.unmatched.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(record) => {
                tracing::warn!(v = record.v, "push queue: outcome of an unknown version");
                inner.counters.undecodable.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::warn!(error = %e, "push queue: undecodable outcome");
                inner.counters.undecodable.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The worker side.

/// Takes pushes from the work queue, sends them with its [`ApnsClient`], publishes each
/// outcome, then acknowledges the job. Start with [`PushWorker::builder`]; stop with
/// [`WorkerHandle::shutdown`], which finishes (sends, reports and acknowledges) what the worker
/// holds. See the [module](self) for the guarantees.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// # let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
/// # let err = run(&format!("nats://127.0.0.1:{port}")).await.unwrap_err(); // no server in doctests
/// # assert!(err.downcast_ref::<herald::nats::Error>().is_some_and(|e| e.is_connect()), "{err:?}"); }
/// # async fn run(closed: &str) -> Result<(), Box<dyn std::error::Error>> {
/// use herald::apns::{ApnsClient, Endpoint, TokenKey};
/// use herald::nats::{NatsBridge, PushQueueConfig, PushWorker};
///
/// let url = "nats://127.0.0.1:4222";
/// # let url = closed; // no server in doctests: a closed local port
/// let bridge = NatsBridge::connect(url).await?;
/// let key = TokenKey::from_p8_file("AuthKey_ABC123DEFG.p8", "ABC123DEFG", "DEF123GHIJ")?;
/// let client = ApnsClient::builder().endpoint(Endpoint::Production).token_auth(key).build()?;
/// let worker = PushWorker::builder(client)
///     .config(PushQueueConfig::default())
///     .concurrency(256)
///     .start(&bridge)
///     .await?;
/// tokio::signal::ctrl_c().await?;
/// worker.shutdown().await; // drains in-flight pushes
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct PushWorker;

/// Configures a [`PushWorker`].
///
/// ```
/// # use herald::{apns::ApnsClient, nats::PushWorker};
/// let b = PushWorker::builder(ApnsClient::builder().build().unwrap()).name("worker-1").concurrency(64);
/// # drop(b);
/// ```
#[must_use = "call .start(&bridge) to run the worker"]
pub struct PushWorkerBuilder {
    client: ApnsClient,
    config: PushQueueConfig,
    concurrency: usize,
    name: Option<String>,
}

impl fmt::Debug for PushWorkerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushWorkerBuilder")
            .field("config", &self.config)
            .field("concurrency", &self.concurrency)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl PushWorker {
    /// A worker that sends with `client`.
    ///
    /// ```
    /// # use herald::{apns::ApnsClient, nats::PushWorker};
    /// let b = PushWorker::builder(ApnsClient::builder().build().unwrap());
    /// # drop(b);
    /// ```
    pub fn builder(client: ApnsClient) -> PushWorkerBuilder {
        PushWorkerBuilder {
            client,
            config: PushQueueConfig::default(),
            concurrency: 64,
            name: None,
        }
    }
}

impl PushWorkerBuilder {
    /// The queue's names and timings (the posting side's).
    ///
    /// ```
    /// # use herald::{apns::ApnsClient, nats::{PushQueueConfig, PushWorker}};
    /// let b = PushWorker::builder(ApnsClient::builder().build().unwrap())
    ///     .config(PushQueueConfig::default().stream("EU_PUSH"));
    /// # drop(b);
    /// ```
    pub fn config(mut self, config: PushQueueConfig) -> Self {
        self.config = config;
        self
    }

    /// At most this many pushes held at once, sent concurrently (default 64).
    ///
    /// ```
    /// # use herald::{apns::ApnsClient, nats::PushWorker};
    /// let b = PushWorker::builder(ApnsClient::builder().build().unwrap()).concurrency(500);
    /// # drop(b);
    /// ```
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// The name put in outcomes (default: the bridge's name or id).
    ///
    /// ```
    /// # use herald::{apns::ApnsClient, nats::PushWorker};
    /// let b = PushWorker::builder(ApnsClient::builder().build().unwrap()).name("eu-1");
    /// # drop(b);
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Creates the streams and the shared durable consumer when missing, and starts taking
    /// pushes on `bridge`'s connection (under its subject prefix). Needs a tokio runtime.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// # let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    /// # let err = run(&format!("nats://127.0.0.1:{port}")).await.unwrap_err(); // no server in doctests
    /// # assert!(err.is_connect(), "{err:?}"); }
    /// # async fn run(closed: &str) -> Result<(), herald::nats::Error> {
    /// # use herald::{apns::ApnsClient, nats::{NatsBridge, PushWorker}};
    /// # let bridge = NatsBridge::connect(closed).await?;
    /// let worker = PushWorker::builder(ApnsClient::builder().build().unwrap()).start(&bridge).await?;
    /// # worker.shutdown().await; Ok(()) }
    /// ```
    pub async fn start(self, bridge: &NatsBridge) -> Result<WorkerHandle, Error> {
        let prefix = bridge.subject_prefix().to_owned();
        let js = jetstream::new(bridge.client().clone());
        let (jobs, _) = self.config.ensure_streams(&js, &prefix).await?;
        let consumer = get_or_create_consumer(
            &jobs,
            &self.config.consumer,
            consumer::pull::Config {
                durable_name: Some(self.config.consumer.clone()),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: self.config.ack_wait,
                max_deliver: self.config.max_deliver,
                filter_subject: self.config.job_subject(&prefix),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| queue_error("create the workers' consumer", e))?;
        let shared = Arc::new(WorkerShared {
            name: self.name.unwrap_or_else(|| bridge.id().to_string()),
            client: self.client,
            nats: bridge.client().clone(),
            js,
            outcome_subject: self.config.outcome_subject(&prefix),
            ack_wait: self.config.ack_wait,
            permits: Arc::new(Semaphore::new(self.concurrency)),
            concurrency: self.concurrency,
            in_flight: AtomicU64::new(0),
            phase: watch::Sender::new(Phase::Running),
            connection: bridge.watch_state(),
            counters: WorkerCounters::default(),
        });
        let task = tokio::spawn(work(consumer, shared.clone()));
        Ok(WorkerHandle {
            shared,
            task: Mutex::new(Some(task)),
        })
    }
}

struct WorkerShared {
    name: String,
    client: ApnsClient,
    nats: async_nats::Client,
    js: jetstream::Context,
    outcome_subject: String,
    ack_wait: Duration,
    permits: Arc<Semaphore>,
    concurrency: usize,
    /// Jobs held: taken from the queue and not finished. (Not the permits in use: the pull
    /// loop holds one while it waits for jobs.)
    in_flight: AtomicU64,
    /// Where the worker is in its life; every wait of the pull loop and of the jobs also
    /// waits for the next phase.
    phase: watch::Sender<Phase>,
    /// The bridge's connection state, watched only to wake sooner: the client's own state
    /// decides ([`connected`], [`disconnected`]). A shutdown gives up the jobs it holds once
    /// the server is gone, as they could not be acknowledged anyway.
    connection: watch::Receiver<ConnectionState>,
    counters: WorkerCounters,
}

/// A worker's life, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// Taking and handling jobs.
    Running,
    /// Taking no more jobs (jobs the server delivers now are given back); finishing the held
    /// ones.
    Stopping,
    /// Stopping with the server gone: the held jobs are given up, unacknowledged.
    Abandoning,
}

impl WorkerShared {
    fn phase(&self) -> Phase {
        *self.phase.borrow()
    }

    /// Moves on to `phase` (never back).
    fn enter(&self, phase: Phase) {
        self.phase.send_if_modified(|now| {
            let later = phase > *now;
            if later {
                *now = phase;
            }
            later
        });
    }

    /// Returns once the worker is at `phase` or later. Race-free (a watch, not a `Notify`):
    /// a phase entered before this is called is seen.
    async fn reached(&self, phase: Phase) {
        let mut phases = self.phase.subscribe();
        // The sender lives as long as `self`: `wait_for` cannot fail here.
        let _ = phases.wait_for(|now| *now >= phase).await;
    }
}

#[derive(Default)]
struct WorkerCounters {
    received: AtomicU64,
    redelivered: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
    reported: AtomicU64,
    duplicate_outcomes: AtomicU64,
    report_failed: AtomicU64,
    acked: AtomicU64,
    undecodable: AtomicU64,
    fetch_errors: AtomicU64,
    given_back: AtomicU64,
    abandoned: AtomicU64,
}

/// A [`PushWorker`]'s counters.
///
/// ```
/// let m = herald::nats::WorkerMetrics::default();
/// assert_eq!(m.received, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerMetrics {
    /// Jobs taken from the queue (redeliveries included).
    pub received: u64,
    /// Of those, jobs the queue had given to a worker before (a worker died or was too slow).
    pub redelivered: u64,
    /// Pushes APNs accepted.
    pub accepted: u64,
    /// Pushes APNs rejected.
    pub rejected: u64,
    /// Pushes without an answer, or not valid pushes.
    pub failed: u64,
    /// Outcomes the server stored.
    pub reported: u64,
    /// Outcomes the server recognized as duplicates (a redelivered push already reported).
    pub duplicate_outcomes: u64,
    /// Outcomes the server did not confirm (the job is left unacknowledged, to be redelivered).
    pub report_failed: u64,
    /// Jobs acknowledged.
    pub acked: u64,
    /// Jobs that could not be decoded (terminated, never redelivered).
    pub undecodable: u64,
    /// Failed pulls from the queue (the worker retries).
    pub fetch_errors: u64,
    /// Jobs delivered to the worker but not started when it began to stop (or delivered
    /// since), handed back untouched with a negative acknowledgement once its last pull
    /// request ended (within a second): the queue gives them to another worker then, not
    /// after `ack_wait`. Not counted in `received`.
    pub given_back: u64,
    /// Jobs given up by [`WorkerHandle::shutdown`] because the server was gone: held (taken,
    /// perhaps sent) but neither reported nor acknowledged, or acknowledged without the
    /// server confirming it, or delivered and not started yet (not in `received`), which
    /// could not be handed back. The queue gives each to another worker after
    /// [`ack_wait`](PushQueueConfig::ack_wait), which sends it (again) and reports it; see
    /// the [module](self) on sending twice.
    pub abandoned: u64,
    /// Jobs held now.
    pub in_flight: u64,
}

/// A running [`PushWorker`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// # let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
/// # let err = run(&format!("nats://127.0.0.1:{port}")).await.unwrap_err(); // no server in doctests
/// # assert!(err.downcast_ref::<herald::nats::Error>().is_some_and(|e| e.is_connect()), "{err:?}"); }
/// # async fn run(closed: &str) -> Result<(), Box<dyn std::error::Error>> {
/// use herald::apns::ApnsClient;
/// use herald::nats::{NatsBridge, PushWorker};
///
/// let url = "nats://127.0.0.1:4222";
/// # let url = closed; // no server in doctests: a closed local port
/// let bridge = NatsBridge::connect(url).await?;
/// let worker = PushWorker::builder(ApnsClient::builder().build()?)
///     .name("eu-1")
///     .start(&bridge)
///     .await?;
/// tokio::signal::ctrl_c().await?;
/// let m = worker.metrics();
/// println!("{}: {} accepted, {} in flight", worker.name(), m.accepted, m.in_flight);
/// worker.shutdown().await; // finishes the jobs it holds; the others stay queued
/// # Ok(()) }
/// ```
pub struct WorkerHandle {
    shared: Arc<WorkerShared>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl fmt::Debug for WorkerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerHandle")
            .field("name", &self.shared.name)
            .field("metrics", &self.metrics())
            .finish_non_exhaustive()
    }
}

impl WorkerHandle {
    /// The name the worker puts in outcomes.
    ///
    /// ```no_run
    /// # fn f(w: herald::nats::WorkerHandle) { println!("{}", w.name()); }
    /// ```
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// A snapshot of the counters.
    ///
    /// ```no_run
    /// # fn f(w: herald::nats::WorkerHandle) {
    /// let m = w.metrics();
    /// println!("{} accepted, {} in flight", m.accepted, m.in_flight);
    /// # }
    /// ```
    pub fn metrics(&self) -> WorkerMetrics {
        let c = &self.shared.counters;
        WorkerMetrics {
            received: c.received.load(Ordering::Relaxed),
            redelivered: c.redelivered.load(Ordering::Relaxed),
            accepted: c.accepted.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            reported: c.reported.load(Ordering::Relaxed),
            duplicate_outcomes: c.duplicate_outcomes.load(Ordering::Relaxed),
            report_failed: c.report_failed.load(Ordering::Relaxed),
            acked: c.acked.load(Ordering::Relaxed),
            undecodable: c.undecodable.load(Ordering::Relaxed),
            fetch_errors: c.fetch_errors.load(Ordering::Relaxed),
            given_back: c.given_back.load(Ordering::Relaxed),
            abandoned: c.abandoned.load(Ordering::Relaxed),
            in_flight: self.shared.in_flight.load(Ordering::Relaxed),
        }
    }

    /// Stops taking jobs, finishes the ones held (send, report, acknowledge), and returns.
    /// Jobs not yet taken stay queued for other workers; jobs delivered but not started are
    /// handed back when its last pull request ends ([`WorkerMetrics::given_back`]). With the
    /// server there, this takes as long as the held jobs take (each send bounded by the APNs
    /// client's request timeout and retries, then its outcome and acknowledgement) and at most
    /// about a second more (the pull request still open on the server ends within a second):
    /// size a supervisor's stop timeout for that, since a worker killed mid-job sends that job
    /// again after `ack_wait`.
    ///
    /// **With the server gone** (the bridge not [`Connected`](ConnectionState::Connected) for
    /// [`ABANDON_AFTER`] on end, from the start of the shutdown or at any time before it ends),
    /// nothing held can be reported or acknowledged, so nothing more is waited for: the held
    /// jobs are given up, sends still running included, and left unacknowledged
    /// ([`WorkerMetrics::abandoned`]). The queue keeps them and gives them to another worker
    /// after [`ack_wait`](PushQueueConfig::ack_wait), as if this worker had died: nothing
    /// taken is lost, and one that APNs had already received is sent again with the same
    /// apns-id and collapse id (see the [module](self)). A shorter break (a reconnection)
    /// gives up nothing. So with the server gone the shutdown returns within about
    /// [`ABANDON_AFTER`].
    ///
    /// ```no_run
    /// # async fn f(w: herald::nats::WorkerHandle) {
    /// w.shutdown().await;
    /// let m = w.metrics();
    /// if m.abandoned > 0 {
    ///     eprintln!("{} jobs left for redelivery: the NATS server was gone", m.abandoned);
    /// }
    /// # }
    /// ```
    pub async fn shutdown(&self) {
        let shared = &self.shared;
        shared.enter(Phase::Stopping);
        let task = self.task.lock().take();
        let all = u32::try_from(shared.concurrency).unwrap_or(u32::MAX);
        let finished = async {
            if let Some(task) = task {
                let _ = task.await;
            }
            let _ = shared.permits.acquire_many(all).await;
        };
        let gone = async {
            // Gone: not connected for ABANDON_AFTER on end (a reconnection is not a server
            // gone).
            loop {
                disconnected(shared).await;
                if tokio::time::timeout(ABANDON_AFTER, connected(shared))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        };
        let mut finished = std::pin::pin!(finished);
        tokio::select! {
            biased;
            () = &mut finished => return,
            () = gone => shared.enter(Phase::Abandoning),
        }
        finished.await;
    }
}

impl Drop for WorkerHandle {
    /// Dropping the handle stops taking jobs at once; held jobs are finished in the
    /// background if the runtime lives on, or redelivered after `ack_wait` otherwise.
    fn drop(&mut self) {
        self.shared.enter(Phase::Stopping);
    }
}

/// The pull loop: fetches at most as many jobs as there are free permits, each batch
/// bounded in time, one request at a time and none while the connection is lost
/// ([`connected`]); a request lost with the connection is given up once it has expired
/// ([`Made::dead`]). A stop ends it at once: no job starts after it, and the pull request
/// still open on the server is read to its end (within a second) only to hand back,
/// untouched, what was delivered on it, unless the worker gives up its jobs (the server is
/// gone).
async fn work(consumer: consumer::PullConsumer, shared: Arc<WorkerShared>) {
    let mut backoff = Duration::from_millis(50);
    while shared.phase() == Phase::Running {
        // Wait for a free permit (or a stop).
        let first = tokio::select! {
            p = shared.permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            () = shared.reached(Phase::Stopping) => return,
        };
        // Not while the connection is lost: see `connected`.
        tokio::select! {
            () = connected(&shared) => {}
            () = shared.reached(Phase::Stopping) => return,
        }
        let free = shared.permits.available_permits() + 1;
        let made = Made::now(&shared);
        // A long poll (`batch`, not `fetch`): the server holds the request open and delivers
        // jobs as they come, until `free` arrived or a second passed. `fetch` answers at once
        // when the queue is empty, so an idle or fast worker spun on requests, and more
        // workers made the server slower for everyone.
        let batch = consumer
            .batch()
            .max_messages(free)
            .expires(PULL_EXPIRES)
            .messages();
        let batch = tokio::select! {
            b = batch => b,
            // Not sent, or sent and never read: what the server delivers on it comes back
            // after ack_wait, like a dead worker's (only when the client could not even take
            // the request, which means the server is gone).
            () = shared.reached(Phase::Stopping) => return,
        };
        let mut batch = match batch {
            Ok(b) => b,
            Err(e) => {
                drop(first);
                shared.counters.fetch_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "push worker: fetch failed");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    () = shared.reached(Phase::Stopping) => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        backoff = Duration::from_millis(50);
        let mut permit = Some(first);
        loop {
            // A stop first: no job starts after it.
            let item = tokio::select! {
                biased;
                () = shared.reached(Phase::Stopping) => {
                    return give_back(None, batch, made, &shared).await;
                }
                item = next(&mut batch) => item,
                // Lost with the connection: a new request, not the client's timer.
                () = made.dead(&shared) => break,
            };
            let message = match item {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    shared.counters.fetch_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(error = %e, "push worker: batch error");
                    break;
                }
                None => break,
            };
            let p = match permit.take() {
                Some(p) => p,
                None => tokio::select! {
                    biased;
                    () = shared.reached(Phase::Stopping) => {
                        return give_back(Some(message), batch, made, &shared).await;
                    }
                    p = shared.permits.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => return,
                    },
                },
            };
            let held = Held::new(&shared, p);
            tokio::spawn(handle(message, shared.clone(), held));
        }
    }
}

/// How long a stopping worker waits for a lost connection to come back before it gives up the
/// jobs it holds ([`WorkerHandle::shutdown`]): longer than a reconnection takes, short enough
/// that a supervisor's stop timeout is not spent on a server that is gone.
///
/// ```
/// use herald::nats::{ABANDON_AFTER, DEFAULT_ACK_WAIT};
/// // Jobs given up come back after `ack_wait`, long after a stop has ended.
/// assert!(ABANDON_AFTER < DEFAULT_ACK_WAIT);
/// ```
pub const ABANDON_AFTER: Duration = Duration::from_secs(2);

/// How often [`connection_is`] looks at the client's state, besides when the bridge's changes.
const CONNECTION_RECHECK: Duration = Duration::from_millis(250);

/// How long the server holds a pull request open (a long poll; see [`work`]).
const PULL_EXPIRES: Duration = Duration::from_secs(1);

/// After a pull request's expiry, how long jobs the server delivered on it before then may
/// still be on their way to us (see [`Made::dead`]).
const IN_FLIGHT_MARGIN: Duration = Duration::from_secs(1);

/// When a pull request was made, and on which connection.
#[derive(Clone, Copy)]
struct Made {
    at: tokio::time::Instant,
    /// The client's count of connections made so far, then.
    connects: u64,
}

impl Made {
    fn now(shared: &WorkerShared) -> Made {
        Made {
            at: tokio::time::Instant::now(),
            connects: connects(shared),
        }
    }

    /// Resolves once the request can bring nothing more though it has not ended: the
    /// connection it was made on broke (even if another is up again), and the server's expiry
    /// has passed, with [`IN_FLIGHT_MARGIN`] for what was delivered before it.
    ///
    /// A request made on a connection that breaks never sees its end from the server (the
    /// status that ends it went to the lost connection, or was never sent), so the client
    /// ends it on its own timer, the expiry plus 5 s. A worker that waited for that after a
    /// short outage sat idle for up to 6 s with jobs queued. Ending it sooner is safe once
    /// the server's expiry has passed: nothing more can be delivered on it. (Not at the break:
    /// the client resubscribes the request's inbox when it reconnects, and jobs the server
    /// delivers there before the expiry would be lost until `ack_wait` if nobody read them.)
    async fn dead(self, shared: &WorkerShared) {
        client_until(shared, |s| !is_connected(s) || connects(s) != self.connects).await;
        tokio::time::sleep_until(self.at + PULL_EXPIRES + IN_FLIGHT_MARGIN).await;
    }
}

/// How many connections the client has made (the first one included).
fn connects(shared: &WorkerShared) -> u64 {
    shared.nats.statistics().connects.load(Ordering::Relaxed)
}

/// Returns once the client is connected: at once when it is, else when the connection is back.
///
/// A pull request made while the connection is lost is not refused: the client queues it,
/// with its inbox's subscription, until it reconnects. The batch waiting on it ends on the
/// client's own timer (its expiry plus 5 s), and a loop that then made the next one stacked a
/// request every 6 s of an outage, all sent at the reconnection for batches long given up
/// (the server could deliver jobs to them, to come back only after `ack_wait`). So the loop
/// waits here before each request: at most one can be made as the connection breaks, before
/// the client knows.
async fn connected(shared: &WorkerShared) {
    connection_is(shared, true).await;
}

/// Returns once the client has lost its connection (at once when it has).
async fn disconnected(shared: &WorkerShared) {
    connection_is(shared, false).await;
}

/// Waits until the client's connection is up (`true`) or not. The client's state decides,
/// even once the bridge is shut down: its client goes on reconnecting in the background, and
/// a bridge's state can also go stale (async-nats drops connection events when their channel
/// is full). The bridge's state follows the client's (a little later): wake when it changes,
/// and look again now and then anyway (a closed or dropped bridge says nothing more).
async fn connection_is(shared: &WorkerShared, up: bool) {
    client_until(shared, |s| is_connected(s) == up).await;
}

/// Whether the client is connected now.
fn is_connected(shared: &WorkerShared) -> bool {
    shared.nats.connection_state() == async_nats::connection::State::Connected
}

/// Waits until `done` holds of the client's state, looking when the bridge's state changes
/// and every [`CONNECTION_RECHECK`] (see [`connection_is`]).
async fn client_until(shared: &WorkerShared, done: impl Fn(&WorkerShared) -> bool) {
    let mut bridge = shared.connection.clone();
    while !done(shared) {
        let changed = async {
            if bridge.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = changed => {}
            () = tokio::time::sleep(CONNECTION_RECHECK) => {}
        }
    }
}

/// Reads a stopping worker's open pull request to its end (the server ends it within a
/// second), keeping what is delivered on it (`first`: a job delivered before the stop and
/// not started), then hands it all back with negative acknowledgements, so that other
/// workers get it at once instead of after `ack_wait`. Not before the end: the server would
/// deliver a job handed back to the same open request again. When the worker gives up (the
/// server is gone, so nothing handed back could reach it) what it kept is left to come back
/// after `ack_wait`, counted abandoned.
async fn give_back(
    first: Option<jetstream::Message>,
    mut batch: consumer::pull::Batch,
    made: Made,
    shared: &WorkerShared,
) {
    let mut kept: Vec<jetstream::Message> = first.into_iter().collect();
    loop {
        let item = tokio::select! {
            biased;
            item = next(&mut batch) => item,
            // Lost with the connection: its end never comes.
            () = made.dead(shared) => break,
            () = shared.reached(Phase::Abandoning) => {
                let left = u64::try_from(kept.len()).unwrap_or(u64::MAX);
                shared.counters.abandoned.fetch_add(left, Ordering::Relaxed);
                return;
            }
        };
        match item {
            Some(Ok(message)) => kept.push(message),
            Some(Err(_)) | None => break,
        }
    }
    drop(batch);
    for message in kept {
        hand_back(message, shared).await;
    }
}

/// Hands a job back untouched (a negative acknowledgement, not waiting for the server).
async fn hand_back(message: jetstream::Message, shared: &WorkerShared) {
    if message
        .ack_with(jetstream::AckKind::Nak(None))
        .await
        .is_ok()
    {
        shared.counters.given_back.fetch_add(1, Ordering::Relaxed);
    }
}

/// Acknowledges a job and waits for the server to confirm it. `Message::double_ack` does the
/// same with a fresh subscription per call (a SUB and an UNSUB per job, each invalidating the
/// server's subject cache), which showed in profiles; a request rides the client's one
/// shared reply subscription.
async fn confirmed_ack(
    nats: &async_nats::Client,
    message: &jetstream::Message,
) -> Result<(), Error> {
    let reply = message
        .reply
        .clone()
        .ok_or_else(|| Error::new(ErrorKind::JetStream, "the job has no reply subject"))?;
    nats.request(reply, Bytes::from_static(b"+ACK"))
        .await
        .map(drop)
        .map_err(|e| queue_error("confirm an acknowledgement", e))
}

/// A job held by the worker: its permit, and its place in [`WorkerMetrics::in_flight`], both
/// given back when the job is finished (or its task ends in any other way).
struct Held {
    shared: Arc<WorkerShared>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Held {
    fn new(shared: &Arc<WorkerShared>, permit: tokio::sync::OwnedSemaphorePermit) -> Held {
        shared.in_flight.fetch_add(1, Ordering::Relaxed);
        Held {
            shared: shared.clone(),
            _permit: permit,
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.shared.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One held job: [`finish`]ed, unless a shutdown gives it up first (the server gone): then it
/// is left unacknowledged, for the queue to redeliver, and counted abandoned.
async fn handle(message: jetstream::Message, shared: Arc<WorkerShared>, held: Held) {
    tokio::select! {
        biased;
        () = finish(message, &shared) => {}
        () = shared.reached(Phase::Abandoning) => {
            shared.counters.abandoned.fetch_add(1, Ordering::Relaxed);
        }
    }
    drop(held);
}

/// One job: send, report, acknowledge.
///
/// A job that decodes but cannot be turned into a push gets a failed outcome
/// ([`InvalidPush`](apns::ErrorKind::InvalidPush)); so does one whose building panics, and one
/// whose sending panics gets a failed outcome ([`Other`](apns::ErrorKind::Other), "may or may
/// not have reached APNs"). Either way the job is reported and acknowledged, never left to
/// come back.
async fn finish(message: jetstream::Message, shared: &WorkerShared) {
    let c = &shared.counters;
    c.received.fetch_add(1, Ordering::Relaxed);
    let delivery = message
        .info()
        .map(|i| u64::try_from(i.delivered).unwrap_or(1))
        .unwrap_or(1)
        .max(1);
    if delivery > 1 {
        c.redelivered.fetch_add(1, Ordering::Relaxed);
    }
    let job = match serde_json::from_slice::<Job>(&message.payload) {
        Ok(job) if job.v == VERSION => job,
        other => {
            let why = match other {
                Ok(job) => format!("schema version {} unknown", job.v),
                Err(e) => e.to_string(),
            };
            tracing::warn!(error = %why, "push worker: undecodable job, terminated");
            c.undecodable.fetch_add(1, Ordering::Relaxed);
            let _ = message.ack_with(jetstream::AckKind::Term).await;
            return;
        }
    };
    let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.to_push()))
        .unwrap_or_else(|panic| {
            Err(apns::Error::new(
                apns::ErrorKind::InvalidPush,
                format!("building the push panicked: {}", panic_message(&*panic)),
            ))
        });
    let sent = match built {
        Ok(push) => {
            // A send that panics ends in a failed outcome instead of taking the job's task
            // down with it, which would leave the job to be redelivered, and panic again.
            let mut send = CatchUnwind(Box::pin(shared.client.send(push)));
            // Keep the job ours while APNs takes its time.
            let mut progress = tokio::time::interval(shared.ack_wait / 2);
            progress.tick().await;
            let sent = loop {
                tokio::select! {
                    o = &mut send => break o,
                    _ = progress.tick() => {
                        let _ = message.ack_with(jetstream::AckKind::Progress).await;
                    }
                }
            };
            sent.map_err(|panic| {
                let panic = panic_message(&*panic);
                tracing::error!(apns_id = %job.apns_id, "push worker: the send panicked: {panic}");
                apns::Error::new(
                    apns::ErrorKind::Other,
                    format!("sending the push panicked, APNs may or may not have it: {panic}"),
                )
            })
        }
        Err(e) => Err(e),
    };
    let record = match sent {
        Ok(outcome) => {
            match &outcome {
                PushOutcome::Accepted(_) => c.accepted.fetch_add(1, Ordering::Relaxed),
                PushOutcome::Rejected(_) => c.rejected.fetch_add(1, Ordering::Relaxed),
                PushOutcome::Failed(_) => c.failed.fetch_add(1, Ordering::Relaxed),
            };
            OutcomeRecord::new(&job, &outcome, &shared.name, delivery, SystemTime::now())
        }
        Err(e) => {
            c.failed.fetch_add(1, Ordering::Relaxed);
            OutcomeRecord::failed(&job, &e, &shared.name, delivery, SystemTime::now())
        }
    };
    let Ok(body) = serde_json::to_vec(&record) else {
        return;
    };
    let body = Bytes::from(body);
    // Report before acknowledging: a worker that dies here leaves the job to be redelivered,
    // and the duplicate window drops the second report.
    let mut delay = Duration::from_millis(50);
    for attempt in 0..5 {
        let published = async {
            shared
                .js
                .publish_with_headers(
                    shared.outcome_subject.clone(),
                    msg_id_headers(&job.apns_id),
                    body.clone(),
                )
                .await?
                .await
        }
        .await;
        match published {
            Ok(ack) => {
                if ack.duplicate {
                    c.duplicate_outcomes.fetch_add(1, Ordering::Relaxed);
                } else {
                    c.reported.fetch_add(1, Ordering::Relaxed);
                }
                if confirmed_ack(&shared.nats, &message).await.is_ok() {
                    c.acked.fetch_add(1, Ordering::Relaxed);
                }
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, attempt, "push worker: outcome not confirmed");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }
    // Not acknowledged: the queue redelivers it after ack_wait.
    c.report_failed.fetch_add(1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_inside_a_send_becomes_an_error_with_its_message() {
        let ok = CatchUnwind(Box::pin(async { 7 }))
            .await
            .map_err(|panic| panic_message(&*panic));
        assert_eq!(ok, Ok(7));
        let panicked = CatchUnwind(Box::pin(async {
            tokio::task::yield_now().await;
            if ok.is_ok() {
                panic!("the client broke");
            }
            7
        }))
        .await
        .map_err(|panic| panic_message(&*panic));
        assert_eq!(panicked, Err("the client broke".to_owned()));
    }

    #[test]
    fn stream_subjects_match_like_nats() {
        for (filter, subject) in [
            ("herald.push.job", "herald.push.job"),
            ("*.herald.push.job", "eu.herald.push.job"),
            ("eu.>", "eu.herald.push.job"),
            (">", "herald.push.job"),
        ] {
            assert!(subject_matches(filter, subject), "{filter} {subject}");
        }
        for (filter, subject) in [
            ("eu.herald.push.job", "us.herald.push.job"),
            ("herald.push.job", "eu.herald.push.job"),
            ("herald.push", "herald.push.job"),
            ("herald.push.job.x", "herald.push.job"),
            ("herald.push.job.>", "herald.push.job"),
        ] {
            assert!(!subject_matches(filter, subject), "{filter} {subject}");
        }
    }
}
