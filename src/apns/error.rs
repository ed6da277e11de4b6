//! The one error type of the APNs client.
//!
//! [`Error`] is opaque: it carries a private kind and an optional source, and answers queries
//! (`is_timeout()`, `is_connect()`, ...). No dependency type appears in its public API, and it
//! never contains a secret (private keys, passwords, JWTs) in its `Debug` or `Display` forms.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use super::response::Reason;

/// What went wrong, in broad strokes. Returned by [`Error::kind`].
///
/// ```
/// use herald::apns::{ErrorKind, Push};
///
/// let err = Push::builder("not hex!", "com.example.app").build().unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::InvalidPush);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The push is malformed (device token, topic, collapse id, priority for its type, ...).
    InvalidPush,
    /// The payload is over APNs' size limit. See [`Error::payload_too_large`].
    PayloadTooLarge,
    /// The signing key (`.p8`) or the certificate key could not be read.
    BadKey,
    /// The certificate file could not be read.
    BadCertificate,
    /// The `.p12` password is wrong.
    WrongPassword,
    /// The client certificate has expired.
    CertificateExpired,
    /// The client certificate does not cover the endpoint's environment or the push's topic
    /// (checked before sending; APNs would answer BadCertificateEnvironment / TopicDisallowed).
    CertificateMismatch,
    /// The client configuration is invalid (endpoint URL, CA file, proxy, ...).
    Config,
    /// Could not establish a connection (DNS, TCP, proxy, TLS, HTTP/2 handshake), including a
    /// connect that did not finish within the connect timeout. Nothing was sent.
    Connect,
    /// A request got no answer within the request timeout. APNs may or may not have received
    /// the push, so herald did not retry it. (A connect that times out is [`ErrorKind::Connect`].)
    Timeout,
    /// The connection was lost, or the server reset the stream (other than REFUSED_STREAM),
    /// while the request was in flight: APNs may or may not have processed it, so herald did not
    /// retry it.
    ConnectionLost,
    /// The server broke the HTTP/2 protocol or answered something unparseable.
    Protocol,
    /// Retries were exhausted on a retryable condition (GOAWAY, REFUSED_STREAM, ...).
    RetriesExhausted,
    /// The client has been shut down.
    Shutdown,
    /// APNs rejected a channel-management request; see [`Error::status`] and [`Error::reason`].
    Rejected,
    /// Anything else.
    Other,
}

/// The sizes behind a [`ErrorKind::PayloadTooLarge`] error.
///
/// ```
/// use herald::apns::{Payload, Push};
///
/// let payload = Payload::alert("x".repeat(5000));
/// let err = Push::builder("00ff", "com.example.app").payload(&payload).unwrap().build().unwrap_err();
/// let too_large = err.payload_too_large().unwrap();
/// assert_eq!(too_large.limit, 4096);
/// assert_eq!(too_large.over_by, too_large.size - 4096);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PayloadTooLarge {
    /// The payload's size in bytes, as it would be sent.
    pub size: usize,
    /// The limit for this push type (4096, or 5120 for VoIP and broadcasts).
    pub limit: usize,
    /// `size - limit`.
    pub over_by: usize,
}

#[derive(Clone)]
pub(crate) enum Detail {
    None,
    TooLarge(PayloadTooLarge),
    Expired(SystemTime),
    Apns(u16, Reason),
}

/// The error of every fallible operation of the APNs client.
///
/// `Send + Sync + 'static`, cheap to clone, and opaque: ask it questions.
///
/// ```
/// use herald::apns::Push;
///
/// let err = Push::builder("abc", "com.example.app").build().unwrap_err();
/// assert!(err.is_invalid_push());
/// assert!(!err.is_timeout());
/// println!("{err}"); // device token must be an even number of hex digits ...
/// ```
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    message: Arc<str>,
    detail: Detail,
    source: Option<Arc<dyn StdError + Send + Sync + 'static>>,
}

impl Error {
    /// An error of `kind` with `message`: for code that reports an outcome it got elsewhere,
    /// such as a [`PushDispatch`](crate::bridge::PushDispatch) that hands pushes to a queue
    /// and must report a failure when the queue cannot give it an outcome.
    ///
    /// ```
    /// use herald::apns::{Error, ErrorKind};
    /// let e = Error::new(ErrorKind::Timeout, "no outcome from the queue within 5 min");
    /// assert!(e.is_timeout());
    /// assert_eq!(e.kind(), ErrorKind::Timeout);
    /// ```
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into().into(),
            detail: Detail::None,
            source: None,
        }
    }

    pub(crate) fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Error {
        self.source = Some(Arc::new(source));
        self
    }

    pub(crate) fn too_large(size: usize, limit: usize) -> Error {
        let mut e = Error::new(
            ErrorKind::PayloadTooLarge,
            format!(
                "payload is {size} bytes, over the {limit}-byte limit by {} bytes",
                size - limit
            ),
        );
        e.detail = Detail::TooLarge(PayloadTooLarge {
            size,
            limit,
            over_by: size - limit,
        });
        e
    }

    pub(crate) fn expired(not_after: SystemTime, message: impl Into<String>) -> Error {
        let mut e = Error::new(ErrorKind::CertificateExpired, message);
        e.detail = Detail::Expired(not_after);
        e
    }

    /// The broad category of this error.
    ///
    /// ```
    /// use herald::apns::{ErrorKind, TokenKey};
    /// let err = TokenKey::from_p8_pem("not a key", "ABC1234567", "TEAM123456").unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::BadKey);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub(crate) fn with_apns(mut self, status: u16, reason: Reason) -> Error {
        self.detail = Detail::Apns(status, reason);
        self
    }

    /// The last HTTP status APNs answered, when retries on APNs' answers were exhausted.
    ///
    /// ```
    /// # use herald::apns::Push;
    /// # let err = Push::builder("zz", "t").build().unwrap_err();
    /// assert!(err.status().is_none());
    /// ```
    pub fn status(&self) -> Option<u16> {
        match self.detail {
            Detail::Apns(s, _) => Some(s),
            _ => None,
        }
    }

    /// The last reason APNs gave, when retries on APNs' answers were exhausted.
    ///
    /// ```
    /// # use herald::apns::Push;
    /// # let err = Push::builder("zz", "t").build().unwrap_err();
    /// assert!(err.reason().is_none());
    /// ```
    pub fn reason(&self) -> Option<&Reason> {
        match &self.detail {
            Detail::Apns(_, r) => Some(r),
            _ => None,
        }
    }

    /// Retries were exhausted (on 429/5xx answers, or on refused streams).
    ///
    /// ```
    /// # use herald::apns::Push;
    /// # let err = Push::builder("zz", "t").build().unwrap_err();
    /// assert!(!err.is_retries_exhausted());
    /// ```
    pub fn is_retries_exhausted(&self) -> bool {
        self.kind == ErrorKind::RetriesExhausted
    }

    /// A request timed out: no answer within the request timeout. APNs may or may not have
    /// the push. A connect that times out is [`Error::is_connect`] instead (nothing was sent).
    ///
    /// ```
    /// # use herald::apns::Push;
    /// # let err = Push::builder("zz", "t").build().unwrap_err();
    /// assert!(!err.is_timeout());
    /// ```
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::Timeout
    }

    /// A connection could not be established (refused, TLS, proxy, or the connect timeout
    /// elapsed): nothing was sent.
    ///
    /// ```
    /// # use herald::apns::Push;
    /// # let err = Push::builder("zz", "t").build().unwrap_err();
    /// assert!(!err.is_connect());
    /// ```
    pub fn is_connect(&self) -> bool {
        self.kind == ErrorKind::Connect
    }

    /// The connection died with the request in flight (not retried: APNs may have it).
    ///
    /// ```
    /// # use herald::apns::Push;
    /// # let err = Push::builder("zz", "t").build().unwrap_err();
    /// assert!(!err.is_connection_lost());
    /// ```
    pub fn is_connection_lost(&self) -> bool {
        self.kind == ErrorKind::ConnectionLost
    }

    /// The push itself is malformed.
    ///
    /// ```
    /// # use herald::apns::Push;
    /// let err = Push::builder("zz", "com.example.app").build().unwrap_err();
    /// assert!(err.is_invalid_push());
    /// ```
    pub fn is_invalid_push(&self) -> bool {
        self.kind == ErrorKind::InvalidPush
    }

    /// The payload is too large; see [`Error::payload_too_large`] for the sizes.
    ///
    /// ```
    /// # use herald::apns::Push;
    /// # let err = Push::builder("zz", "t").build().unwrap_err();
    /// assert!(!err.is_payload_too_large());
    /// ```
    pub fn is_payload_too_large(&self) -> bool {
        self.kind == ErrorKind::PayloadTooLarge
    }

    /// The sizes, when the payload is too large.
    ///
    /// ```
    /// # use herald::apns::Push;
    /// # let err = Push::builder("zz", "t").build().unwrap_err();
    /// assert!(err.payload_too_large().is_none());
    /// ```
    pub fn payload_too_large(&self) -> Option<PayloadTooLarge> {
        match self.detail {
            Detail::TooLarge(t) => Some(t),
            _ => None,
        }
    }

    /// The `.p12` password is wrong.
    ///
    /// ```
    /// # use herald::apns::Push;
    /// # let err = Push::builder("zz", "t").build().unwrap_err();
    /// assert!(!err.is_wrong_password());
    /// ```
    pub fn is_wrong_password(&self) -> bool {
        self.kind == ErrorKind::WrongPassword
    }

    /// A key file (`.p8`, or the key of a certificate) could not be used.
    ///
    /// ```
    /// # use herald::apns::TokenKey;
    /// let err = TokenKey::from_p8_pem("garbage", "ABC1234567", "TEAM123456").unwrap_err();
    /// assert!(err.is_bad_key());
    /// ```
    pub fn is_bad_key(&self) -> bool {
        self.kind == ErrorKind::BadKey
    }

    /// The client certificate has expired; [`Error::certificate_expired_at`] says when.
    ///
    /// ```
    /// # use herald::apns::Push;
    /// # let err = Push::builder("zz", "t").build().unwrap_err();
    /// assert!(!err.is_certificate_expired());
    /// ```
    pub fn is_certificate_expired(&self) -> bool {
        self.kind == ErrorKind::CertificateExpired
    }

    /// When the expired certificate stopped being valid.
    ///
    /// ```
    /// # use herald::apns::Push;
    /// # let err = Push::builder("zz", "t").build().unwrap_err();
    /// assert!(err.certificate_expired_at().is_none());
    /// ```
    pub fn certificate_expired_at(&self) -> Option<SystemTime> {
        match self.detail {
            Detail::Expired(t) => Some(t),
            _ => None,
        }
    }

    /// APNs rejected a channel-management request ([`Error::reason`] says why).
    ///
    /// ```
    /// # use herald::apns::Push;
    /// # let err = Push::builder("zz", "t").build().unwrap_err();
    /// assert!(!err.is_rejected());
    /// ```
    pub fn is_rejected(&self) -> bool {
        self.kind == ErrorKind::Rejected
    }

    /// The client was shut down before the push could be sent.
    ///
    /// ```
    /// # use herald::apns::Push;
    /// # let err = Push::builder("zz", "t").build().unwrap_err();
    /// assert!(!err.is_shutdown());
    /// ```
    pub fn is_shutdown(&self) -> bool {
        self.kind == ErrorKind::Shutdown
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(s) = &self.source {
            d.field("source", &s.to_string());
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(s) = &self.source {
            write!(f, ": {s}")?;
        }
        Ok(())
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_ref()
            .map(|s| &**s as &(dyn StdError + 'static))
    }
}

/// A plain message used as an error source (keeps dependency error types out of the API).
#[derive(Debug)]
pub(crate) struct Msg(pub(crate) String);

impl fmt::Display for Msg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Msg {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_send_sync_static_clone() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<Error>();
    }

    #[test]
    fn too_large_says_by_how_much() {
        let e = Error::too_large(4100, 4096);
        assert!(e.to_string().contains("by 4 bytes"));
        assert_eq!(e.payload_too_large().map(|t| t.over_by), Some(4));
    }
}
