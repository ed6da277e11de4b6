//! The bridge's one error type, [`Error`], opaque with queries.

use std::fmt;

/// What kind of failure an [`Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A notification name (or a family prefix, or the bridge's subject prefix) is not a valid
    /// NATS subject, or the type kept the default Rust type name instead of declaring one.
    InvalidName,
    /// A configuration value is unusable (a credentials file that cannot be read, a bad URL).
    Config,
    /// Connecting to the server failed (unreachable, refused credentials, TLS).
    Connect,
    /// The server refused or did not confirm a subscription.
    Subscribe,
    /// The bridge was shut down.
    Closed,
    /// JetStream refused or did not confirm an operation: creating a stream, a consumer or a
    /// key-value bucket (is JetStream enabled on the server, `nats-server -js`?).
    JetStream,
}

/// An error from the NATS bridge: a kind to match on, and a message for people.
///
/// Secrets (passwords, tokens, seeds) never appear in it.
///
/// ```
/// use herald::nats::{ErrorKind, NatsBridge};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let err = NatsBridge::builder()
///     .subject_prefix("no trailing dot")
///     .connect("nats://127.0.0.1:1")
///     .await
///     .unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::InvalidName);
/// assert!(err.is_invalid_name());
/// # }
/// ```
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error {
            kind,
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether a name or prefix was refused.
    pub fn is_invalid_name(&self) -> bool {
        self.kind == ErrorKind::InvalidName
    }

    /// Whether the bridge could not connect.
    pub fn is_connect(&self) -> bool {
        self.kind == ErrorKind::Connect
    }

    /// Whether the bridge was already shut down.
    pub fn is_closed(&self) -> bool {
        self.kind == ErrorKind::Closed
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("source", &self.source.as_ref().map(|s| s.to_string()))
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}
