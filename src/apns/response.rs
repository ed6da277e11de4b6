//! What APNs answered: [`PushOutcome`], [`Reason`] and their parsing.
//!
//! Every push ends in exactly one [`PushOutcome`]: accepted, rejected by APNs (with its status,
//! [`Reason`] and, for 410, the instant the token became invalid), or failed locally after
//! retries (with a typed [`Error`]).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::error::Error;
use super::push::Push;

macro_rules! reasons {
    ($( $(#[$m:meta])* $variant:ident = $status:literal, )*) => {
        /// Apple's reason string, as an open enum: unknown reasons survive in [`Reason::Other`].
        ///
        /// ```
        /// use herald::apns::Reason;
        /// assert_eq!(Reason::parse("Unregistered"), Reason::Unregistered);
        /// assert_eq!(Reason::parse("BrandNewReason"), Reason::Other("BrandNewReason".into()));
        /// assert_eq!(Reason::parse("BrandNewReason").as_str(), "BrandNewReason");
        /// ```
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Reason {
            $( $(#[$m])* $variant, )*
            /// A reason herald does not know yet, kept verbatim.
            Other(String),
        }

        impl Reason {
            /// Parses Apple's reason string; never fails.
            ///
            /// ```
            /// # use herald::apns::Reason;
            /// assert_eq!(Reason::parse("BadDeviceToken"), Reason::BadDeviceToken);
            /// ```
            pub fn parse(s: &str) -> Reason {
                match s {
                    $( stringify!($variant) => Reason::$variant, )*
                    other => Reason::Other(other.to_owned()),
                }
            }

            /// Apple's string for this reason.
            ///
            /// ```
            /// # use herald::apns::Reason;
            /// assert_eq!(Reason::TooManyRequests.as_str(), "TooManyRequests");
            /// ```
            pub fn as_str(&self) -> &str {
                match self {
                    $( Reason::$variant => stringify!($variant), )*
                    Reason::Other(s) => s,
                }
            }

            /// The HTTP status Apple documents for this reason (`None` for unknown reasons).
            ///
            /// ```
            /// # use herald::apns::Reason;
            /// assert_eq!(Reason::Unregistered.status(), Some(410));
            /// ```
            pub fn status(&self) -> Option<u16> {
                match self {
                    $( Reason::$variant => Some($status), )*
                    Reason::Other(_) => None,
                }
            }

            /// Every reason herald knows, in Apple's table order.
            ///
            /// ```
            /// # use herald::apns::Reason;
            /// assert!(Reason::known().contains(&Reason::PayloadTooLarge));
            /// ```
            pub fn known() -> &'static [Reason] {
                &[ $( Reason::$variant, )* ]
            }
        }
    };
}

reasons! {
    /// The collapse id is too long.
    BadCollapseId = 400,
    /// The device token is invalid, or from the other environment.
    BadDeviceToken = 400,
    /// `apns-expiration` is bad.
    BadExpirationDate = 400,
    /// `apns-id` is bad.
    BadMessageId = 400,
    /// `apns-priority` is bad.
    BadPriority = 400,
    /// `apns-topic` is bad.
    BadTopic = 400,
    /// The device token does not match the topic.
    DeviceTokenNotForTopic = 400,
    /// A header was repeated.
    DuplicateHeaders = 400,
    /// The connection was idle too long.
    IdleTimeout = 400,
    /// `apns-push-type` is bad.
    InvalidPushType = 400,
    /// No device token in the path.
    MissingDeviceToken = 400,
    /// No `apns-topic` (required here).
    MissingTopic = 400,
    /// The body is empty.
    PayloadEmpty = 400,
    /// Pushing to this topic is not allowed.
    TopicDisallowed = 400,
    /// Broadcast: the feature is not enabled for the app.
    FeatureNotEnabled = 400,
    /// Broadcast: no `apns-channel-id`.
    MissingChannelId = 400,
    /// Broadcast: bad `apns-channel-id`.
    BadChannelId = 400,
    /// Broadcast: the channel does not exist.
    ChannelNotRegistered = 400,
    /// Broadcast: bad request parameters.
    BadRequestParams = 400,
    /// Broadcast: bad request payload.
    BadRequestPayload = 400,
    /// Broadcast: no `apns-push-type`.
    MissingPushType = 400,
    /// Broadcast: the channel configuration cannot be created.
    CannotCreateChannelConfig = 400,
    /// The certificate is bad.
    BadCertificate = 403,
    /// The certificate is for the other environment.
    BadCertificateEnvironment = 403,
    /// The provider token is older than an hour: herald mints a new one and retries once.
    ExpiredProviderToken = 403,
    /// The action is not allowed.
    Forbidden = 403,
    /// The provider token is invalid (signature, key id or team id).
    InvalidProviderToken = 403,
    /// No provider token and no certificate.
    MissingProviderToken = 403,
    /// The key id is not related to this topic or environment.
    UnrelatedKeyIdInToken = 403,
    /// The key id in the provider token does not match the environment: a team key restricted
    /// to sandbox or to production (Apple's 2025 key scopes) used against the other one. Some
    /// servers have been reported to spell it `BadEnvironmentKeyInToken`, which arrives as
    /// [`Reason::Other`], kept as sent (a reason string is never rewritten).
    BadEnvironmentKeyIdInToken = 403,
    /// Broadcast: the topic does not match.
    TopicMismatch = 403,
    /// Bad `:path`.
    BadPath = 404,
    /// Not POST.
    MethodNotAllowed = 405,
    /// The device token has expired.
    ExpiredToken = 410,
    /// The device token is no longer active for the topic.
    Unregistered = 410,
    /// The payload is too large.
    PayloadTooLarge = 413,
    /// The provider token was updated too often.
    TooManyProviderTokenUpdates = 429,
    /// Too many requests to the same device token.
    TooManyRequests = 429,
    /// Apple's internal error.
    InternalServerError = 500,
    /// The service is unavailable.
    ServiceUnavailable = 503,
    /// The server is shutting down.
    Shutdown = 503,
}

impl Reason {
    /// Whether Apple says never to retry this reason as is (the token or request is wrong).
    ///
    /// ```
    /// # use herald::apns::Reason;
    /// assert!(Reason::Unregistered.is_permanent());
    /// assert!(!Reason::ServiceUnavailable.is_permanent());
    /// ```
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Reason::BadDeviceToken
                | Reason::DeviceTokenNotForTopic
                | Reason::Forbidden
                | Reason::ExpiredToken
                | Reason::Unregistered
                | Reason::PayloadTooLarge
        )
    }

    /// Whether the device token should be deleted: only APNs' 410 answers (`Unregistered`,
    /// `ExpiredToken`), which carry the instant the token became invalid. Delete it unless the
    /// app registered it again after that instant.
    ///
    /// `BadDeviceToken` is not one of them: APNs gives it also for a token of the other
    /// environment (a provider deployed against the wrong one), so it is evidence to weigh,
    /// not a verdict; see [`quarantines_token`](Self::quarantines_token).
    ///
    /// ```
    /// # use herald::apns::Reason;
    /// assert!(Reason::Unregistered.invalidates_token());
    /// assert!(Reason::ExpiredToken.invalidates_token());
    /// assert!(!Reason::BadDeviceToken.invalidates_token());
    /// assert!(!Reason::TooManyRequests.invalidates_token());
    /// ```
    pub fn invalidates_token(&self) -> bool {
        matches!(self, Reason::Unregistered | Reason::ExpiredToken)
    }

    /// Whether the rejection names the token, not the request, but without proof that it is
    /// dead: `BadDeviceToken` (invalid, or from the other environment) and
    /// `DeviceTokenNotForTopic` (another app's token, or the wrong topic). herald's bridge puts
    /// such tokens in quarantine instead of deleting them, unless most tokens of the same topic
    /// and environment are rejected alike (then the configuration is the suspect).
    ///
    /// ```
    /// # use herald::apns::Reason;
    /// assert!(Reason::BadDeviceToken.quarantines_token());
    /// assert!(Reason::DeviceTokenNotForTopic.quarantines_token());
    /// assert!(!Reason::Unregistered.quarantines_token());
    /// ```
    pub fn quarantines_token(&self) -> bool {
        matches!(
            self,
            Reason::BadDeviceToken | Reason::DeviceTokenNotForTopic
        )
    }

    /// One sentence explaining the reason, for people.
    ///
    /// ```
    /// # use herald::apns::Reason;
    /// assert!(Reason::BadDeviceToken.explain().contains("environment"));
    /// ```
    pub fn explain(&self) -> &'static str {
        match self {
            Reason::BadCollapseId => "The collapse id is longer than 64 bytes.",
            Reason::BadDeviceToken => {
                "The device token is invalid, or belongs to the other environment (sandbox vs production)."
            }
            Reason::BadExpirationDate => "The apns-expiration header is not a valid UNIX time.",
            Reason::BadMessageId => "The apns-id header is not a canonical UUID.",
            Reason::BadPriority => "The priority is not allowed (background pushes must use 5).",
            Reason::BadTopic => "The topic is not valid for this push.",
            Reason::DeviceTokenNotForTopic => {
                "The device token belongs to a different app (topic) than the one given."
            }
            Reason::DuplicateHeaders => "A request header was sent twice.",
            Reason::IdleTimeout => "The connection was idle too long; reconnect and retry.",
            Reason::InvalidPushType => "The apns-push-type is not valid.",
            Reason::MissingDeviceToken => "No device token was given.",
            Reason::MissingTopic => "The apns-topic header is required here and was missing.",
            Reason::PayloadEmpty => "The payload was empty.",
            Reason::TopicDisallowed => "Pushing to this topic is not allowed.",
            Reason::FeatureNotEnabled => "Broadcast push is not enabled for this app.",
            Reason::MissingChannelId => "The apns-channel-id header is missing.",
            Reason::BadChannelId => "The apns-channel-id is not valid.",
            Reason::ChannelNotRegistered => "The broadcast channel does not exist.",
            Reason::BadRequestParams => "The request parameters are not valid.",
            Reason::BadRequestPayload => "The request payload is not valid.",
            Reason::MissingPushType => "The apns-push-type header is missing.",
            Reason::CannotCreateChannelConfig => "The channel configuration could not be created.",
            Reason::BadCertificate => "The client certificate is not valid.",
            Reason::BadCertificateEnvironment => {
                "The client certificate is for the other environment."
            }
            Reason::ExpiredProviderToken => "The provider token (JWT) is older than one hour.",
            Reason::Forbidden => "The action is not allowed for this key or certificate.",
            Reason::InvalidProviderToken => {
                "The provider token is not valid: check the key id, team id and .p8 key."
            }
            Reason::MissingProviderToken => "Neither a certificate nor a provider token was sent.",
            Reason::UnrelatedKeyIdInToken => {
                "The key is not allowed for this topic or environment."
            }
            Reason::BadEnvironmentKeyIdInToken => "The key is for the other environment.",
            Reason::TopicMismatch => "The topic does not match the channel.",
            Reason::BadPath => "The request path is not valid.",
            Reason::MethodNotAllowed => "Only POST is allowed.",
            Reason::ExpiredToken => "The device token has expired: delete it.",
            Reason::Unregistered => {
                "The device token is no longer active (app uninstalled or notifications off): delete it."
            }
            Reason::PayloadTooLarge => "The payload is larger than APNs allows.",
            Reason::TooManyProviderTokenUpdates => {
                "The provider token was refreshed too often (more than once per 20 minutes)."
            }
            Reason::TooManyRequests => "Too many pushes to the same device in a short time.",
            Reason::InternalServerError => "APNs had an internal error; retry later.",
            Reason::ServiceUnavailable => "APNs is unavailable; retry later.",
            Reason::Shutdown => "The APNs server is shutting down; retry on a new connection.",
            Reason::Other(_) => "A reason herald does not know yet; see Apple's documentation.",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A push APNs accepted.
///
/// ```
/// use herald::apns::Accepted;
/// let a = Accepted::new("x");
/// assert_eq!(a.apns_id, "x");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Accepted {
    /// The apns-id APNs echoed back.
    pub apns_id: String,
    /// `apns-unique-id` (development environment only): the key for Apple's delivery log.
    pub apns_unique_id: Option<String>,
}

impl Accepted {
    /// An accepted answer (for tests of code that handles outcomes).
    ///
    /// ```
    /// # use herald::apns::Accepted;
    /// assert!(Accepted::new("x").apns_unique_id.is_none());
    /// ```
    pub fn new(apns_id: impl Into<String>) -> Accepted {
        Accepted {
            apns_id: apns_id.into(),
            apns_unique_id: None,
        }
    }
}

/// A push APNs rejected, handed back in [`push`](Self::push) so it can be corrected and sent
/// again (as crossbeam's `SendError` hands back the message).
///
/// ```
/// use herald::apns::{Push, Reason, Rejected};
/// let push = Push::builder("a1b2", "com.example.app").build().unwrap();
/// let r = Rejected::new(push, 410, Reason::Unregistered);
/// assert!(r.reason.invalidates_token());
/// assert_eq!(r.push.device_token(), "a1b2");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rejected<P = Push> {
    /// The push's apns-id.
    pub apns_id: String,
    /// The HTTP status.
    pub status: u16,
    /// Apple's reason.
    pub reason: Reason,
    /// With 410: when APNs learned the token is invalid. Delete the token unless the app
    /// registered it again after this instant.
    pub timestamp: Option<SystemTime>,
    /// What was sent: the [`Push`] (or the [`Broadcast`](super::Broadcast)).
    pub push: P,
}

impl Rejected<Push> {
    /// A rejection of `push` without a timestamp (for tests of code that handles outcomes).
    ///
    /// ```
    /// # use herald::apns::{Push, Reason, Rejected};
    /// # let push = Push::builder("a1b2", "com.example.app").build().unwrap();
    /// let r = Rejected::new(push, 400, Reason::BadDeviceToken);
    /// assert!(r.timestamp.is_none());
    /// ```
    pub fn new(push: Push, status: u16, reason: Reason) -> Rejected<Push> {
        Rejected {
            apns_id: push.apns_id().to_owned(),
            status,
            reason,
            timestamp: None,
            push,
        }
    }
}

impl<P> Rejected<P> {
    /// The status as an [`http::StatusCode`](crate::http::StatusCode) (`None` if out of range).
    ///
    /// ```
    /// # use herald::apns::{Push, Reason, Rejected};
    /// # let push = Push::builder("a1b2", "com.example.app").build().unwrap();
    /// let r = Rejected::new(push, 410, Reason::Unregistered);
    /// assert_eq!(r.status_code(), Some(herald::http::StatusCode::GONE));
    /// ```
    pub fn status_code(&self) -> Option<http::StatusCode> {
        http::StatusCode::from_u16(self.status).ok()
    }
}

/// A push that got no answer from APNs (or was refused before sending), handed back in
/// [`push`](Self::push) so it can be queued again.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use herald::apns::{ApnsClient, Push, PushOutcome};
/// let client = ApnsClient::builder().build().unwrap();
/// client.shutdown().await;
/// let push = Push::builder("a1b2", "com.example.app").build().unwrap();
/// let PushOutcome::Failed(f) = client.send(push).await else { panic!() };
/// assert!(f.error.is_shutdown());
/// let again: Push = f.push; // queue it again elsewhere
/// # drop(again);
/// # }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Failed<P = Push> {
    /// What went wrong.
    pub error: Error,
    /// What was sent: the [`Push`] (or the [`Broadcast`](super::Broadcast)).
    pub push: P,
}

impl<P> Failed<P> {
    /// A failure: what went wrong, and the push it happened to (for code that reports an
    /// outcome it got elsewhere, such as a [`PushDispatch`](crate::bridge::PushDispatch)).
    ///
    /// ```
    /// use herald::apns::{Error, ErrorKind, Failed, Push, PushOutcome};
    /// let push = Push::builder("a1b2", "com.example.app").build().unwrap();
    /// let outcome = PushOutcome::Failed(Failed::new(
    ///     Error::new(ErrorKind::ConnectionLost, "the queue went away"),
    ///     push,
    /// ));
    /// assert!(matches!(outcome, PushOutcome::Failed(_)));
    /// ```
    pub fn new(error: Error, push: P) -> Failed<P> {
        Failed { error, push }
    }
}

/// How one push ended. Exactly one per push. Rejected and failed outcomes hand the push
/// back ([`into_push`](Self::into_push)).
///
/// ```
/// use herald::apns::{Accepted, PushOutcome};
/// let o: PushOutcome = PushOutcome::Accepted(Accepted::new("x"));
/// assert!(o.is_accepted());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum PushOutcome<P = Push> {
    /// APNs accepted the push.
    Accepted(Accepted),
    /// APNs rejected it.
    Rejected(Rejected<P>),
    /// herald could not get an answer (connection, timeout, retries exhausted, shutdown, ...).
    Failed(Failed<P>),
}

impl<P> PushOutcome<P> {
    /// Accepted by APNs.
    ///
    /// ```
    /// # use herald::apns::{Accepted, PushOutcome};
    /// # let o: PushOutcome = PushOutcome::Accepted(Accepted::new("x"));
    /// assert!(o.is_accepted());
    /// ```
    pub fn is_accepted(&self) -> bool {
        matches!(self, PushOutcome::Accepted(_))
    }

    /// Apple's reason, when rejected.
    ///
    /// ```
    /// # use herald::apns::{Accepted, PushOutcome};
    /// # let o: PushOutcome = PushOutcome::Accepted(Accepted::new("x"));
    /// assert!(o.reason().is_none());
    /// ```
    pub fn reason(&self) -> Option<&Reason> {
        match self {
            PushOutcome::Rejected(r) => Some(&r.reason),
            _ => None,
        }
    }

    /// The local error, when failed.
    ///
    /// ```
    /// # use herald::apns::{Accepted, PushOutcome};
    /// # let o: PushOutcome = PushOutcome::Accepted(Accepted::new("x"));
    /// assert!(o.error().is_none());
    /// ```
    pub fn error(&self) -> Option<&Error> {
        match self {
            PushOutcome::Failed(f) => Some(&f.error),
            _ => None,
        }
    }

    /// The push handed back, when rejected or failed.
    ///
    /// ```
    /// # use herald::apns::{Push, PushOutcome, Reason, Rejected};
    /// # let push = Push::builder("a1b2", "com.example.app").build().unwrap();
    /// let o = PushOutcome::Rejected(Rejected::new(push, 400, Reason::BadTopic));
    /// assert_eq!(o.push().unwrap().device_token(), "a1b2");
    /// ```
    pub fn push(&self) -> Option<&P> {
        match self {
            PushOutcome::Rejected(r) => Some(&r.push),
            PushOutcome::Failed(f) => Some(&f.push),
            PushOutcome::Accepted(_) => None,
        }
    }

    /// Takes the push back, when rejected or failed (to correct it, or queue it again).
    ///
    /// ```
    /// # use herald::apns::{Push, PushOutcome, Reason, Rejected};
    /// # let push = Push::builder("a1b2", "com.example.app").build().unwrap();
    /// let o = PushOutcome::Rejected(Rejected::new(push, 400, Reason::BadTopic));
    /// let fixed_and_sent_again: Push = o.into_push().unwrap();
    /// # drop(fixed_and_sent_again);
    /// ```
    pub fn into_push(self) -> Option<P> {
        match self {
            PushOutcome::Rejected(r) => Some(r.push),
            PushOutcome::Failed(f) => Some(f.push),
            PushOutcome::Accepted(_) => None,
        }
    }
}

/// The client's answer before the push is put back in (see [`PushOutcome`]).
#[derive(Debug)]
pub(crate) enum Answer {
    Accepted(Accepted),
    Rejected {
        apns_id: String,
        status: u16,
        reason: Reason,
        timestamp: Option<SystemTime>,
    },
    Failed(Error),
}

impl Answer {
    pub(crate) fn with<P>(self, push: P) -> PushOutcome<P> {
        match self {
            Answer::Accepted(a) => PushOutcome::Accepted(a),
            Answer::Rejected {
                apns_id,
                status,
                reason,
                timestamp,
            } => PushOutcome::Rejected(Rejected {
                apns_id,
                status,
                reason,
                timestamp,
                push,
            }),
            Answer::Failed(error) => PushOutcome::Failed(Failed { error, push }),
        }
    }
}

/// Parses an error body `{"reason": "...", "timestamp": <ms>}`. Never panics; a body that is
/// not JSON or has no reason gives `Reason::Other` with the status as text.
pub(crate) fn parse_error_body(status: u16, body: &[u8]) -> (Reason, Option<SystemTime>) {
    #[derive(serde::Deserialize)]
    struct Body {
        reason: Option<String>,
        timestamp: Option<serde_json::Value>,
    }
    let parsed: Option<Body> = serde_json::from_slice(body).ok();
    let reason = match parsed.as_ref().and_then(|b| b.reason.as_deref()) {
        Some(r) => Reason::parse(r),
        None => Reason::Other(format!("HTTP {status} without a reason")),
    };
    let timestamp = parsed
        .and_then(|b| b.timestamp)
        .and_then(|t| t.as_u64())
        .and_then(|ms| UNIX_EPOCH.checked_add(Duration::from_millis(ms)));
    (reason, timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_reason_round_trips() {
        for r in Reason::known() {
            assert_eq!(&Reason::parse(r.as_str()), r);
            assert!(r.status().is_some());
        }
    }

    #[test]
    fn error_body_with_timestamp() {
        let (r, t) = parse_error_body(
            410,
            br#"{"reason":"Unregistered","timestamp":1700000000123}"#,
        );
        assert_eq!(r, Reason::Unregistered);
        assert_eq!(
            t,
            Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123))
        );
    }

    proptest::proptest! {
        #[test]
        fn parsing_any_body_never_panics(status in 0u16..1000, body in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = parse_error_body(status, &body);
        }

        #[test]
        fn any_reason_string_survives(s in ".{0,40}") {
            let r = Reason::parse(&s);
            proptest::prop_assert_eq!(r.as_str(), s.as_str());
        }

        #[test]
        fn json_bodies_keep_reason_and_timestamp(reason in "[A-Za-z]{1,30}", ts in proptest::option::of(0u64..4_000_000_000_000)) {
            let body = match ts {
                Some(t) => format!(r#"{{"reason":"{reason}","timestamp":{t}}}"#),
                None => format!(r#"{{"reason":"{reason}"}}"#),
            };
            let (r, t) = parse_error_body(410, body.as_bytes());
            proptest::prop_assert_eq!(r.as_str(), reason.as_str());
            proptest::prop_assert_eq!(t, ts.map(|ms| UNIX_EPOCH + Duration::from_millis(ms)));
        }
    }

    #[test]
    fn garbage_body_is_other() {
        let (r, t) = parse_error_body(500, b"\xff\x00 not json");
        assert!(matches!(r, Reason::Other(_)));
        assert!(t.is_none());
    }
}
