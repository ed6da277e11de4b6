//! [`OutcomeImport`]: the workers' push outcomes, read durably from the outcome stream by any
//! process and posted into its center, so a registry that process keeps is pruned by 410s
//! whichever process posted the push.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use async_nats::jetstream::{self, consumer};

use super::push::{PushQueueConfig, get_or_create_consumer, next, queue_error};
use super::push_wire::{OutcomeRecord, VERSION, from_ms};
use super::{Error, NatsBridge};
use crate::apns::Reason;
use crate::bridge::TokenInvalidated;
use crate::{Notification, NotificationCenter};

/// How a push ended, as a worker reported it.
///
/// ```
/// use herald::nats::RemoteResult;
///
/// fn summary(result: &RemoteResult) -> String {
///     match result {
///         RemoteResult::Accepted => "accepted".to_owned(),
///         RemoteResult::Rejected { status, reason, .. } => format!("rejected: {status} {reason}"),
///         RemoteResult::Failed { kind, message } => format!("failed ({kind}): {message}"),
///         _ => "unknown".to_owned(),
///     }
/// }
///
/// assert_eq!(summary(&RemoteResult::Accepted), "accepted");
/// let failed = RemoteResult::Failed { kind: "Timeout".into(), message: "no answer".into() };
/// // A timeout: APNs may have the push, so "failed", not "not sent".
/// assert_eq!(summary(&failed), "failed (Timeout): no answer");
/// // Observed as `RemotePushOutcome::result`.
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemoteResult {
    /// APNs accepted it.
    Accepted,
    /// APNs refused it.
    Rejected {
        /// The HTTP status (410 for a token that is gone).
        status: u16,
        /// Apple's reason.
        reason: Reason,
        /// For a 410: since when the token is invalid.
        timestamp: Option<SystemTime>,
    },
    /// It could not be sent (the worker's error, by kind and message).
    Failed {
        /// The error kind (`Timeout`, `Connect`, ...).
        kind: String,
        /// What happened.
        message: String,
    },
}

/// One push outcome a [`PushWorker`](super::PushWorker) reported, imported by an
/// [`OutcomeImport`] in any process.
///
/// ```
/// use herald::NotificationCenter;
/// use herald::nats::{RemotePushOutcome, RemoteResult};
/// let center = NotificationCenter::new();
/// let _log = center.observe(|o: &RemotePushOutcome| {
///     if let RemoteResult::Rejected { reason, .. } = &o.result {
///         println!("{} refused: {reason}", o.apns_id);
///     }
/// });
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RemotePushOutcome {
    /// The push's apns-id (fixed when it was queued).
    pub apns_id: String,
    /// The device token.
    pub token: String,
    /// The topic.
    pub topic: String,
    /// The subject the token was resolved from, if the push was addressed to one.
    pub subject: Option<String>,
    /// How it ended.
    pub result: RemoteResult,
    /// The worker that sent it.
    pub worker: String,
    /// How many times the queue had handed the job to a worker (1 the first time).
    pub delivery: u64,
    /// When the worker reported it.
    pub at: SystemTime,
}

impl Notification for RemotePushOutcome {
    fn name() -> &'static str {
        "herald.push.outcome.remote"
    }
}

/// What an [`OutcomeImport`] has done.
///
/// ```
/// use herald::nats::OutcomeImportStats;
///
/// /// Whether the import reads everything it is given.
/// fn healthy(s: &OutcomeImportStats) -> bool {
///     s.undecodable == 0 && s.read_errors == 0
/// }
///
/// // An import's counters come from `outcomes.stats()`; a new import's are all zero.
/// let s = OutcomeImportStats::default();
/// assert!(healthy(&s));
/// assert!(s.invalidated <= s.imported);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutcomeImportStats {
    /// Outcomes posted as [`RemotePushOutcome`].
    pub imported: u64,
    /// Of those, 410s also posted as [`TokenInvalidated`].
    pub invalidated: u64,
    /// Records that could not be read (an unknown schema version, bad JSON): acknowledged
    /// and counted, never posted.
    pub undecodable: u64,
    /// Failed reads of the stream (the server away); the import retries.
    pub read_errors: u64,
}

#[derive(Default)]
struct Counters {
    imported: AtomicU64,
    invalidated: AtomicU64,
    undecodable: AtomicU64,
    read_errors: AtomicU64,
}

/// Reads the push workers' outcomes in any process and posts each into a center as a
/// [`RemotePushOutcome`], and every 410 (a token that is gone) also as
/// [`TokenInvalidated`], so a [`DeviceRegistry`](crate::bridge::DeviceRegistry) observing that
/// center ([`observe`](crate::bridge::DeviceRegistry::observe)) is pruned even when another
/// process posted the push.
///
/// The read is durable: a JetStream consumer named by the importer (`name`) keeps its place,
/// so an import that stops and starts again (the process restarting) continues after the last
/// outcome it acknowledged, within the outcome stream's
/// [`outcome_max_age`](PushQueueConfig::outcome_max_age). A name seen for the first time
/// starts with the outcomes reported from then on. Each outcome is posted, then acknowledged:
/// a process that dies in between posts it again when it restarts (deleting a token twice is
/// harmless). Processes that each need every outcome use different names; processes that share
/// a name share the work. Dropping the import stops it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// # let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
/// # let err = run(&format!("nats://127.0.0.1:{port}")).await.unwrap_err(); // no server in doctests
/// # assert!(err.is_connect(), "{err:?}"); }
/// # async fn run(closed: &str) -> Result<(), herald::nats::Error> {
/// use herald::NotificationCenter;
/// use herald::bridge::DeviceRegistry;
/// use herald::nats::{NatsBridge, OutcomeImport, PushQueueConfig};
///
/// let url = "nats://127.0.0.1:4222";
/// # let url = closed; // no server in doctests: a closed local port
/// let bridge = NatsBridge::connect(url).await?;
/// let center = NotificationCenter::new();
/// let registry = DeviceRegistry::in_memory(); // or a NatsKvStore shared by every process
/// let _prune = registry.observe(&center);
/// let _outcomes =
///     OutcomeImport::start(&bridge, &PushQueueConfig::default(), "registry-keeper", &center)
///         .await?;
/// # Ok(()) }
/// ```
pub struct OutcomeImport {
    name: String,
    counters: Arc<Counters>,
    task: tokio::task::JoinHandle<()>,
}

impl OutcomeImport {
    /// Starts importing the outcomes of the queue `config` names (creating its streams when
    /// missing), as the durable consumer `name`, into `center`.
    ///
    /// Fails with [`ErrorKind::JetStream`](super::ErrorKind::JetStream) when the server has no
    /// JetStream or refuses the consumer.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// # let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    /// # let err = run(&format!("nats://127.0.0.1:{port}")).await.unwrap_err(); // no server in doctests
    /// # assert!(err.is_connect(), "{err:?}"); }
    /// # async fn run(closed: &str) -> Result<(), herald::nats::Error> {
    /// use herald::nats::{NatsBridge, OutcomeImport, PushQueueConfig};
    /// use herald::NotificationCenter;
    ///
    /// let url = "nats://127.0.0.1:4222";
    /// # let url = closed; // no server in doctests: a closed local port
    /// let bridge = NatsBridge::connect(url).await?;
    /// let center = NotificationCenter::new();
    /// // The queue's names, as the posting side and the workers have them.
    /// let config = PushQueueConfig::default()
    ///     .stream("EU_PUSH")
    ///     .outcome_stream("EU_PUSH_OUTCOMES");
    /// let outcomes = OutcomeImport::start(&bridge, &config, "registry-keeper", &center).await?;
    /// # drop(outcomes); Ok(()) }
    /// ```
    pub async fn start(
        bridge: &NatsBridge,
        config: &PushQueueConfig,
        name: &str,
        center: &NotificationCenter,
    ) -> Result<OutcomeImport, Error> {
        let prefix = bridge.subject_prefix().to_owned();
        let js = jetstream::new(bridge.client().clone());
        let (_, outcomes) = config.ensure_streams(&js, &prefix).await?;
        let consumer = get_or_create_consumer(
            &outcomes,
            name,
            consumer::pull::Config {
                durable_name: Some(name.to_owned()),
                ack_policy: consumer::AckPolicy::Explicit,
                deliver_policy: consumer::DeliverPolicy::New,
                filter_subject: config.outcome_subject(&prefix),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| queue_error("create the outcome importer's consumer", e))?;
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(read(consumer, center.clone(), counters.clone()));
        Ok(OutcomeImport {
            name: name.to_owned(),
            counters,
            task,
        })
    }

    /// The durable consumer's name.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), herald::nats::Error> {
    /// use herald::nats::{NatsBridge, OutcomeImport, PushQueueConfig};
    /// use herald::NotificationCenter;
    ///
    /// let bridge = NatsBridge::connect("nats://127.0.0.1:4222").await?;
    /// let center = NotificationCenter::new();
    /// let config = PushQueueConfig::default();
    /// let outcomes = OutcomeImport::start(&bridge, &config, "registry-keeper", &center).await?;
    /// assert_eq!(outcomes.name(), "registry-keeper");
    /// # Ok(()) }
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the import has done so far.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), herald::nats::Error> {
    /// use herald::nats::{NatsBridge, OutcomeImport, PushQueueConfig};
    /// use herald::NotificationCenter;
    ///
    /// let bridge = NatsBridge::connect("nats://127.0.0.1:4222").await?;
    /// let center = NotificationCenter::new();
    /// let config = PushQueueConfig::default();
    /// let outcomes = OutcomeImport::start(&bridge, &config, "registry-keeper", &center).await?;
    /// // ... later:
    /// let s = outcomes.stats();
    /// println!("{} outcomes, {} tokens invalidated", s.imported, s.invalidated);
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> OutcomeImportStats {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let c = &self.counters;
        OutcomeImportStats {
            imported: l(&c.imported),
            invalidated: l(&c.invalidated),
            undecodable: l(&c.undecodable),
            read_errors: l(&c.read_errors),
        }
    }
}

impl Drop for OutcomeImport {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl fmt::Debug for OutcomeImport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutcomeImport")
            .field("name", &self.name)
            .field("stats", &self.stats())
            .finish()
    }
}

/// The import's loop: long polls of up to 256 outcomes, each posted then acknowledged.
async fn read(consumer: consumer::PullConsumer, center: NotificationCenter, c: Arc<Counters>) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let batch = consumer
            .batch()
            .max_messages(256)
            .expires(Duration::from_secs(5))
            .messages()
            .await;
        let mut batch = match batch {
            Ok(b) => b,
            Err(e) => {
                c.read_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "outcome import: read failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        backoff = Duration::from_millis(50);
        while let Some(item) = next(&mut batch).await {
            let message = match item {
                Ok(m) => m,
                Err(e) => {
                    c.read_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(error = %e, "outcome import: batch error");
                    break;
                }
            };
            match serde_json::from_slice::<OutcomeRecord>(&message.payload) {
                Ok(record) if record.v == VERSION => post(&center, record, &c),
                Ok(record) => {
                    tracing::warn!(v = record.v, "outcome import: unknown schema version");
                    c.undecodable.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "outcome import: undecodable outcome");
                    c.undecodable.fetch_add(1, Ordering::Relaxed);
                }
            }
            // Not acknowledged (the server away): redelivered after the ack wait, posted
            // again, which is harmless.
            let _ = message.ack().await;
        }
    }
}

fn post(center: &NotificationCenter, r: OutcomeRecord, c: &Counters) {
    let result = r.result();
    let at = from_ms(r.at_ms);
    if let RemoteResult::Rejected {
        reason, timestamp, ..
    } = &result
        && reason.invalidates_token()
    {
        let mut gone =
            TokenInvalidated::new(&r.token, &r.topic, reason.clone(), timestamp.unwrap_or(at));
        gone.subject = r.subject.clone();
        center.post(gone);
        c.invalidated.fetch_add(1, Ordering::Relaxed);
    }
    center.post(RemotePushOutcome {
        apns_id: r.apns_id,
        token: r.token,
        topic: r.topic,
        subject: r.subject,
        result,
        worker: r.worker,
        delivery: r.delivery,
        at,
    });
    c.imported.fetch_add(1, Ordering::Relaxed);
}
