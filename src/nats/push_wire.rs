//! The wire format of queued pushes and their outcomes, version 1 (see [`push`](super::push)).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::RemoteResult;
use crate::apns::{
    self, Accepted, Expiration, Priority, Push, PushOutcome, PushType, Reason, Rejected,
};

/// The schema version of [`Job`] and [`OutcomeRecord`].
pub(crate) const VERSION: u32 = 1;

pub(crate) fn to_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The time `ms` milliseconds after the epoch; a number past what the platform's clock holds
/// (a sender's nonsense: records come from other processes) reads as the epoch, never a panic.
pub(crate) fn from_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::from_millis(ms))
        .unwrap_or(UNIX_EPOCH)
}

/// One push on the work queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Job {
    pub(crate) v: u32,
    pub(crate) apns_id: String,
    pub(crate) token: String,
    pub(crate) topic: String,
    pub(crate) push_type: String,
    pub(crate) priority: u8,
    /// `None`: no `apns-expiration`; `Some(0)`: immediately; otherwise UNIX seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) expiration_s: Option<u64>,
    /// The user's collapse id, or one derived from the push id (the apns-id).
    pub(crate) collapse_id: String,
    /// The payload, as the JSON text APNs receives.
    pub(crate) payload: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) subject: Option<String>,
    pub(crate) enqueued_ms: u64,
}

fn push_type_from(s: &str) -> Option<PushType> {
    [
        PushType::Alert,
        PushType::Background,
        PushType::Voip,
        PushType::Complication,
        PushType::FileProvider,
        PushType::Location,
        PushType::Mdm,
        PushType::LiveActivity,
        PushType::PushToTalk,
        PushType::Widgets,
        PushType::Controls,
    ]
    .into_iter()
    .find(|t| t.as_str() == s)
}

impl Job {
    /// The job for `push`: its apns-id fixed, its collapse id kept or derived from the id.
    pub(crate) fn new(push: &Push, subject: Option<&str>, now: SystemTime) -> Job {
        Job {
            v: VERSION,
            apns_id: push.apns_id().to_owned(),
            token: push.device_token().to_owned(),
            topic: push.topic().to_owned(),
            push_type: push.push_type().as_str().to_owned(),
            priority: push.priority().as_u8(),
            expiration_s: push.expiration().map(|e| match e {
                Expiration::Immediately => 0,
                Expiration::At(t) => (to_ms(t) / 1000).max(1),
            }),
            collapse_id: push
                .collapse_id()
                .unwrap_or_else(|| push.apns_id())
                .to_owned(),
            payload: String::from_utf8_lossy(push.body()).into_owned(),
            subject: subject.map(str::to_owned),
            enqueued_ms: to_ms(now),
        }
    }

    /// The push to send: the same apns-id and collapse id on every delivery of the job.
    pub(crate) fn to_push(&self) -> Result<Push, apns::Error> {
        let push_type = push_type_from(&self.push_type).ok_or_else(|| {
            apns::Error::new(
                apns::ErrorKind::InvalidPush,
                format!("unknown push type {:?}", self.push_type),
            )
        })?;
        let priority = match self.priority {
            10 => Priority::Immediate,
            5 => Priority::PowerAware,
            1 => Priority::Low,
            other => {
                return Err(apns::Error::new(
                    apns::ErrorKind::InvalidPush,
                    format!("priority must be 10, 5 or 1, not {other}"),
                ));
            }
        };
        let mut b = Push::builder(self.token.clone(), self.topic.clone())
            .push_type(push_type)
            .priority(priority)
            .apns_id(self.apns_id.clone())
            .collapse_id(self.collapse_id.clone())
            .raw_payload(self.payload.clone().into_bytes());
        if let Some(s) = self.expiration_s {
            b = b.expiration(if s == 0 {
                Expiration::Immediately
            } else {
                let at = UNIX_EPOCH
                    .checked_add(Duration::from_secs(s))
                    .ok_or_else(|| {
                        apns::Error::new(
                            apns::ErrorKind::InvalidPush,
                            format!("expiration_s {s} is past what a time can hold"),
                        )
                    })?;
                Expiration::At(at)
            });
        }
        b.build()
    }
}

/// An error on the wire: its kind (the name of [`apns::ErrorKind`]'s variant) and message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WireError {
    pub(crate) kind: String,
    pub(crate) message: String,
}

fn kind_name(kind: apns::ErrorKind) -> String {
    format!("{kind:?}")
}

fn kind_from(name: &str) -> apns::ErrorKind {
    use apns::ErrorKind as K;
    match name {
        "InvalidPush" => K::InvalidPush,
        "PayloadTooLarge" => K::PayloadTooLarge,
        "BadKey" => K::BadKey,
        "BadCertificate" => K::BadCertificate,
        "WrongPassword" => K::WrongPassword,
        "CertificateExpired" => K::CertificateExpired,
        "CertificateMismatch" => K::CertificateMismatch,
        "Config" => K::Config,
        "Connect" => K::Connect,
        "Timeout" => K::Timeout,
        "ConnectionLost" => K::ConnectionLost,
        "Protocol" => K::Protocol,
        "RetriesExhausted" => K::RetriesExhausted,
        "Shutdown" => K::Shutdown,
        "Rejected" => K::Rejected,
        _ => K::Other,
    }
}

/// How a queued push ended, as a worker reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OutcomeRecord {
    pub(crate) v: u32,
    pub(crate) apns_id: String,
    pub(crate) token: String,
    pub(crate) topic: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) subject: Option<String>,
    /// `accepted`, `rejected` or `failed`.
    pub(crate) result: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) status: Option<u16>,
    /// Apple's reason string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) timestamp_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<WireError>,
    /// The worker that sent it.
    pub(crate) worker: String,
    /// How many times the queue had delivered the job to a worker (1 the first time).
    pub(crate) delivery: u64,
    pub(crate) at_ms: u64,
}

impl OutcomeRecord {
    pub(crate) fn new(
        job: &Job,
        outcome: &PushOutcome,
        worker: &str,
        delivery: u64,
        now: SystemTime,
    ) -> OutcomeRecord {
        let mut r = OutcomeRecord {
            v: VERSION,
            apns_id: job.apns_id.clone(),
            token: job.token.clone(),
            topic: job.topic.clone(),
            subject: job.subject.clone(),
            result: String::new(),
            status: None,
            reason: None,
            timestamp_ms: None,
            error: None,
            worker: worker.to_owned(),
            delivery,
            at_ms: to_ms(now),
        };
        match outcome {
            PushOutcome::Accepted(_) => r.result = "accepted".into(),
            PushOutcome::Rejected(x) => {
                r.result = "rejected".into();
                r.status = Some(x.status);
                r.reason = Some(x.reason.as_str().to_owned());
                r.timestamp_ms = x.timestamp.map(to_ms);
            }
            PushOutcome::Failed(f) => {
                r.result = "failed".into();
                r.error = Some(WireError {
                    kind: kind_name(f.error.kind()),
                    message: f.error.to_string(),
                });
            }
        }
        r
    }

    /// A push that failed with `error` without an outcome from the client: a job that could
    /// not be turned into a push, or a send that panicked.
    pub(crate) fn failed(
        job: &Job,
        error: &apns::Error,
        worker: &str,
        delivery: u64,
        now: SystemTime,
    ) -> OutcomeRecord {
        let mut r = OutcomeRecord::new(
            job,
            &PushOutcome::Accepted(Accepted::new(&job.apns_id)),
            worker,
            delivery,
            now,
        );
        r.result = "failed".into();
        r.error = Some(WireError {
            kind: kind_name(error.kind()),
            message: error.to_string(),
        });
        r
    }

    /// How the push ended, as the record tells it.
    pub(crate) fn result(&self) -> RemoteResult {
        match self.result.as_str() {
            "accepted" => RemoteResult::Accepted,
            "rejected" => RemoteResult::Rejected {
                status: self.status.unwrap_or(0),
                reason: Reason::parse(self.reason.as_deref().unwrap_or("")),
                timestamp: self.timestamp_ms.map(from_ms),
            },
            _ => {
                let (kind, message) = match &self.error {
                    Some(e) => (e.kind.clone(), e.message.clone()),
                    None => ("Other".to_owned(), "failed in a worker".to_owned()),
                };
                RemoteResult::Failed { kind, message }
            }
        }
    }

    /// The outcome of `push` this record tells.
    pub(crate) fn to_outcome(&self, push: Push) -> PushOutcome {
        match self.result() {
            RemoteResult::Accepted => PushOutcome::Accepted(Accepted::new(&self.apns_id)),
            RemoteResult::Rejected {
                status,
                reason,
                timestamp,
            } => {
                let mut r = Rejected::new(push, status, reason);
                r.timestamp = timestamp;
                PushOutcome::Rejected(r)
            }
            RemoteResult::Failed { kind, message } => PushOutcome::Failed(apns::Failed::new(
                apns::Error::new(
                    kind_from(&kind),
                    format!("{message} (worker {})", self.worker),
                ),
                push,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apns::Payload;

    #[test]
    fn a_job_round_trips_and_keeps_the_ids() {
        let push = Push::builder("a1b2", "com.example.app")
            .payload(&Payload::alert("hi").badge(2))
            .unwrap()
            .priority(Priority::PowerAware)
            .expiration(Expiration::At(
                UNIX_EPOCH + Duration::from_secs(1_900_000_000),
            ))
            .build()
            .unwrap();
        let job = Job::new(&push, Some("alice"), UNIX_EPOCH);
        let json = serde_json::to_string(&job).unwrap();
        let back: Job = serde_json::from_str(&json).unwrap();
        assert_eq!(back, job);
        let again = back.to_push().unwrap();
        assert_eq!(again.apns_id(), push.apns_id());
        assert_eq!(
            again.collapse_id(),
            Some(push.apns_id()),
            "derived collapse id"
        );
        assert_eq!(again.body(), push.body());
        assert_eq!(again.priority(), Priority::PowerAware);
        assert_eq!(again.expiration(), push.expiration());
        let own = Push::builder("a1b2", "com.example.app")
            .collapse_id("order-42")
            .build()
            .unwrap();
        assert_eq!(
            Job::new(&own, None, UNIX_EPOCH)
                .to_push()
                .unwrap()
                .collapse_id(),
            Some("order-42"),
            "a collapse id the user set is kept"
        );
    }

    #[test]
    fn outcomes_round_trip_with_reasons_times_and_error_kinds() {
        let push = Push::builder("a1b2", "com.example.app").build().unwrap();
        let job = Job::new(&push, None, UNIX_EPOCH);
        let mut rejected = Rejected::new(push.clone(), 410, Reason::Unregistered);
        rejected.timestamp = Some(from_ms(1_700_000_000_123));
        let r = OutcomeRecord::new(&job, &PushOutcome::Rejected(rejected), "w", 1, UNIX_EPOCH);
        let back: OutcomeRecord = serde_json::from_slice(&serde_json::to_vec(&r).unwrap()).unwrap();
        let PushOutcome::Rejected(x) = back.to_outcome(push.clone()) else {
            panic!("rejected expected")
        };
        assert_eq!((x.status, x.reason), (410, Reason::Unregistered));
        assert_eq!(x.timestamp, Some(from_ms(1_700_000_000_123)));
        let failed = PushOutcome::Failed(apns::Failed {
            error: apns::Error::new(apns::ErrorKind::Timeout, "no answer"),
            push: push.clone(),
        });
        let r = OutcomeRecord::new(&job, &failed, "w", 2, UNIX_EPOCH);
        let PushOutcome::Failed(f) = r.to_outcome(push) else {
            panic!("failed expected")
        };
        assert!(f.error.is_timeout());
    }

    #[test]
    fn bad_jobs_are_errors_not_panics() {
        let push = Push::builder("a1b2", "com.example.app").build().unwrap();
        let mut job = Job::new(&push, None, UNIX_EPOCH);
        job.push_type = "telepathy".into();
        assert!(job.to_push().unwrap_err().is_invalid_push());
        job.push_type = "alert".into();
        job.priority = 7;
        assert!(job.to_push().unwrap_err().is_invalid_push());
        job.priority = 10;
        job.expiration_s = Some(u64::MAX);
        let err = job.to_push().unwrap_err();
        assert!(err.is_invalid_push(), "{err}");
        assert!(err.to_string().contains("expiration_s"), "{err}");
    }

    #[test]
    fn times_past_the_clocks_range_read_as_the_epoch() {
        assert_eq!(
            from_ms(1_700_000_000_123),
            UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)
        );
        let _ = from_ms(u64::MAX); // no panic, whatever the platform
    }
}
