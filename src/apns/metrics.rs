//! The metrics hook: implement [`Metrics`] to feed your metrics system, or use [`Counters`].
//!
//! ```
//! use herald::apns::{ApnsClient, Counters, Endpoint};
//! use std::sync::Arc;
//!
//! let counters = Arc::new(Counters::default());
//! let client = ApnsClient::builder()
//!     .endpoint(Endpoint::Sandbox)
//!     .metrics(counters.clone())
//!     .build();
//! assert_eq!(counters.snapshot().sent, 0);
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use super::error::Error;
use super::push::Push;
use super::response::Reason;

/// Why a push is being sent again.
///
/// ```
/// use herald::apns::{Reason, RetryCause};
/// let c = RetryCause::Rejected { status: 503, reason: &Reason::ServiceUnavailable };
/// assert!(matches!(c, RetryCause::Rejected { status: 503, .. }));
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum RetryCause<'a> {
    /// APNs answered with a retryable status (429, 5xx).
    Rejected {
        /// The status.
        status: u16,
        /// The reason.
        reason: &'a Reason,
    },
    /// The provider token expired; a new one was minted.
    TokenExpired,
    /// The request never reached APNs (GOAWAY, REFUSED_STREAM, no connection).
    Unsent(&'a Error),
}

/// Receives the client's events. Every method has an empty default; implement what you need.
/// Called inline on the send path: keep it cheap (atomics, not I/O).
///
/// ```
/// use herald::apns::{Metrics, Push, Reason};
/// struct Log;
/// impl Metrics for Log {
///     fn rejected(&self, push: &Push, status: u16, reason: &Reason) {
///         eprintln!("{} rejected: {status} {reason}", push.apns_id());
///     }
/// }
/// ```
pub trait Metrics: Send + Sync + 'static {
    /// A push entered the client.
    ///
    /// ```
    /// use herald::apns::{Counters, Metrics, Payload, Push};
    /// let push = Push::builder("a1b2c3d4", "com.example.app").payload(&Payload::alert("Hi"))?.build()?;
    /// let counters = Counters::default();
    /// // What the client calls as `send` takes the push.
    /// counters.sent(&push);
    /// assert_eq!(counters.snapshot().sent, 1);
    /// # Ok::<(), herald::apns::Error>(())
    /// ```
    fn sent(&self, _push: &Push) {}
    /// APNs accepted it; `latency` is from `send` to the answer, retries included.
    ///
    /// ```
    /// use herald::apns::{Counters, Metrics, Payload, Push};
    /// use std::time::Duration;
    /// let push = Push::builder("a1b2c3d4", "com.example.app").payload(&Payload::alert("Hi"))?.build()?;
    /// let counters = Counters::default();
    /// // What the client calls for a push APNs accepted 12 ms after `send`.
    /// counters.sent(&push);
    /// counters.accepted(&push, Duration::from_millis(12));
    /// let s = counters.snapshot();
    /// assert_eq!((s.sent, s.accepted, s.rejected), (1, 1, 0));
    /// # Ok::<(), herald::apns::Error>(())
    /// ```
    fn accepted(&self, _push: &Push, _latency: Duration) {}
    /// APNs rejected it (final).
    ///
    /// ```
    /// use herald::apns::{Counters, Metrics, Payload, Push, Reason};
    /// let push = Push::builder("a1b2c3d4", "com.example.app").payload(&Payload::alert("Hi"))?.build()?;
    /// let counters = Counters::default();
    /// // What the client calls when APNs answers 400 BadTopic.
    /// counters.sent(&push);
    /// counters.rejected(&push, 400, &Reason::BadTopic);
    /// let s = counters.snapshot();
    /// assert_eq!((s.sent, s.accepted, s.rejected), (1, 0, 1));
    /// assert_eq!(s.rejected_by_reason, [(Reason::BadTopic, 1)]);
    /// # Ok::<(), herald::apns::Error>(())
    /// ```
    fn rejected(&self, _push: &Push, _status: u16, _reason: &Reason) {}
    /// It is being retried.
    ///
    /// ```
    /// use herald::apns::{Counters, Metrics, Payload, Push, RetryCause};
    /// let push = Push::builder("a1b2c3d4", "com.example.app").payload(&Payload::alert("Hi"))?.build()?;
    /// let counters = Counters::default();
    /// // What the client calls when the provider token expired and it sends the push again.
    /// counters.retried(&push, RetryCause::TokenExpired);
    /// assert_eq!(counters.snapshot().retried, 1);
    /// # Ok::<(), herald::apns::Error>(())
    /// ```
    fn retried(&self, _push: &Push, _cause: RetryCause<'_>) {}
    /// It failed locally (final).
    ///
    /// ```
    /// use herald::apns::{Counters, Error, ErrorKind, Metrics, Payload, Push};
    /// let push = Push::builder("a1b2c3d4", "com.example.app").payload(&Payload::alert("Hi"))?.build()?;
    /// let counters = Counters::default();
    /// // What the client calls when a push got no answer in time.
    /// counters.failed(&push, &Error::new(ErrorKind::Timeout, "no answer"));
    /// let s = counters.snapshot();
    /// assert_eq!((s.failed, s.rejected), (1, 0));
    /// # Ok::<(), herald::apns::Error>(())
    /// ```
    fn failed(&self, _push: &Push, _error: &Error) {}
    /// A connection to APNs was established.
    ///
    /// ```
    /// use herald::apns::{Counters, Metrics};
    /// let counters = Counters::default();
    /// assert_eq!(counters.snapshot().connections, 0);
    /// // What the client calls when it has opened a connection (on first use, not at build).
    /// counters.connection_opened();
    /// assert_eq!(counters.snapshot().connections, 1);
    /// ```
    fn connection_opened(&self) {}
    /// A PING was sent on an idle connection.
    ///
    /// ```
    /// use herald::apns::{Counters, Metrics};
    /// let counters = Counters::default();
    /// // What the client calls each time it pings an idle connection.
    /// counters.ping_sent();
    /// counters.ping_sent();
    /// assert_eq!(counters.snapshot().pings, 2);
    /// ```
    fn ping_sent(&self) {}
}

/// A ready-made [`Metrics`]: atomic counters and rejected-by-reason tallies.
///
/// ```
/// use herald::apns::Counters;
/// let c = Counters::default();
/// let s = c.snapshot();
/// assert_eq!((s.sent, s.accepted, s.rejected, s.retried, s.failed), (0, 0, 0, 0, 0));
/// ```
#[derive(Debug, Default)]
pub struct Counters {
    sent: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
    connections: AtomicU64,
    pings: AtomicU64,
    latency_us_total: AtomicU64,
    by_reason: Mutex<Vec<(Reason, u64)>>,
}

/// A copy of [`Counters`] at one instant.
///
/// ```
/// # use herald::apns::Counters;
/// let s = Counters::default().snapshot();
/// assert!(s.rejected_by_reason.is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CountersSnapshot {
    /// Pushes that entered the client.
    pub sent: u64,
    /// Accepted by APNs.
    pub accepted: u64,
    /// Rejected by APNs (final).
    pub rejected: u64,
    /// Retries (attempts beyond the first).
    pub retried: u64,
    /// Failed locally (final).
    pub failed: u64,
    /// Connections opened.
    pub connections: u64,
    /// PINGs sent.
    pub pings: u64,
    /// Sum of accepted latencies, in microseconds.
    pub latency_us_total: u64,
    /// Rejections by reason.
    pub rejected_by_reason: Vec<(Reason, u64)>,
}

impl Counters {
    /// Reads every counter.
    ///
    /// ```
    /// # use herald::apns::Counters;
    /// assert_eq!(Counters::default().snapshot().pings, 0);
    /// ```
    pub fn snapshot(&self) -> CountersSnapshot {
        CountersSnapshot {
            sent: self.sent.load(Ordering::Relaxed),
            accepted: self.accepted.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            connections: self.connections.load(Ordering::Relaxed),
            pings: self.pings.load(Ordering::Relaxed),
            latency_us_total: self.latency_us_total.load(Ordering::Relaxed),
            rejected_by_reason: self.by_reason.lock().clone(),
        }
    }
}

impl Metrics for Counters {
    fn sent(&self, _push: &Push) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }
    fn accepted(&self, _push: &Push, latency: Duration) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.latency_us_total.fetch_add(
            u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
    fn rejected(&self, _push: &Push, _status: u16, reason: &Reason) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        let mut by = self.by_reason.lock();
        match by.iter_mut().find(|(r, _)| r == reason) {
            Some((_, n)) => *n += 1,
            None => by.push((reason.clone(), 1)),
        }
    }
    fn retried(&self, _push: &Push, _cause: RetryCause<'_>) {
        self.retried.fetch_add(1, Ordering::Relaxed);
    }
    fn failed(&self, _push: &Push, _error: &Error) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }
    fn connection_opened(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }
    fn ping_sent(&self) {
        self.pings.fetch_add(1, Ordering::Relaxed);
    }
}

/// What every client reports through: the `metrics` facade (see [`crate::telemetry`]), then
/// the user's hook, if any.
pub(crate) struct Facade {
    pub(crate) user: Option<std::sync::Arc<dyn Metrics>>,
}

impl Metrics for Facade {
    fn sent(&self, push: &Push) {
        crate::telemetry::apns_sent();
        if let Some(m) = &self.user {
            m.sent(push);
        }
    }
    fn accepted(&self, push: &Push, latency: Duration) {
        crate::telemetry::apns_outcome("accepted", String::new());
        crate::telemetry::apns_latency(latency.as_secs_f64());
        if let Some(m) = &self.user {
            m.accepted(push, latency);
        }
    }
    fn rejected(&self, push: &Push, status: u16, reason: &Reason) {
        crate::telemetry::apns_outcome("rejected", crate::telemetry::reason_label(reason));
        if let Some(m) = &self.user {
            m.rejected(push, status, reason);
        }
    }
    fn retried(&self, push: &Push, cause: RetryCause<'_>) {
        crate::telemetry::apns_retry(match cause {
            RetryCause::Rejected { .. } => "rejected",
            RetryCause::TokenExpired => "token_expired",
            RetryCause::Unsent(_) => "unsent",
        });
        if let Some(m) = &self.user {
            m.retried(push, cause);
        }
    }
    fn failed(&self, push: &Push, error: &Error) {
        let reason = error
            .reason()
            .map(crate::telemetry::reason_label)
            .unwrap_or_default();
        crate::telemetry::apns_outcome("failed", reason);
        if let Some(m) = &self.user {
            m.failed(push, error);
        }
    }
    fn connection_opened(&self) {
        crate::telemetry::apns_connection_opened();
        if let Some(m) = &self.user {
            m.connection_opened();
        }
    }
    fn ping_sent(&self) {
        crate::telemetry::apns_ping();
        if let Some(m) = &self.user {
            m.ping_sent();
        }
    }
}
