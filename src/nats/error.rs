//! The bridge's one error type, [`Error`], opaque with queries.

use std::fmt;

/// What kind of failure an [`Error`] is.
///
/// ```
/// use herald::nats::{ErrorKind, NatsBridge};
///
/// /// Whether to retry later rather than report a mistake: configuration and names need a
/// /// change; a failed connection may be the server's absence (or refused credentials,
/// /// which the message says), a subscription or JetStream refusal the server's state.
/// fn worth_retrying(kind: ErrorKind) -> bool {
///     matches!(kind, ErrorKind::Connect | ErrorKind::Subscribe | ErrorKind::JetStream)
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let err = NatsBridge::builder()
///     .credentials_file("/no/such/orders.creds")
///     .connect("nats://127.0.0.1:4222")
///     .await
///     .unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Config);
/// assert!(!worth_retrying(err.kind()));
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A notification name (or a family prefix, or the bridge's subject prefix) is not a valid
    /// NATS subject, or the type kept the default Rust type name instead of declaring one.
    InvalidName,
    /// A configuration value is unusable (a credentials file that cannot be read, a bad URL).
    Config,
    /// Connecting to the server failed (unreachable, refused credentials, TLS), or a
    /// shutdown could not hand what was queued to the server within its timeout (the server
    /// was gone; what was dropped is counted in the bridge's metrics).
    Connect,
    /// The server refused or did not confirm a subscription, or a round trip to it
    /// ([`NatsBridge::ping`](super::NatsBridge::ping), which also confirms the subscriptions
    /// made before it) got no answer.
    Subscribe,
    /// The bridge was shut down (an operation after `shutdown`), or its shutdown could not
    /// drain the connection.
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
    ///
    /// ```
    /// use herald::nats::{ErrorKind, NatsBridge};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let err = NatsBridge::connect("").await.unwrap_err();
    /// match err.kind() {
    ///     ErrorKind::Connect => eprintln!("retry later: {err}"),
    ///     ErrorKind::Config | ErrorKind::InvalidName => eprintln!("fix the configuration: {err}"),
    ///     _ => eprintln!("{err}"),
    /// }
    /// assert_eq!(err.kind(), ErrorKind::Config); // an empty URL list
    /// # }
    /// ```
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether a name or prefix was refused.
    ///
    /// ```
    /// use herald::nats::NatsBridge;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let err = NatsBridge::builder()
    ///     .subject_prefix("acme") // no trailing dot
    ///     .connect("nats://127.0.0.1:4222")
    ///     .await
    ///     .unwrap_err();
    /// assert!(err.is_invalid_name());
    /// # }
    /// ```
    pub fn is_invalid_name(&self) -> bool {
        self.kind == ErrorKind::InvalidName
    }

    /// Whether this is [`ErrorKind::Connect`]: the bridge could not connect, or a shutdown
    /// could not hand what was queued to the server in time.
    ///
    /// ```
    /// use herald::nats::NatsBridge;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// // Nothing listens on port 1.
    /// let err = NatsBridge::connect("nats://127.0.0.1:1").await.unwrap_err();
    /// assert!(err.is_connect());
    /// # }
    /// ```
    pub fn is_connect(&self) -> bool {
        self.kind == ErrorKind::Connect
    }

    /// Whether this is [`ErrorKind::Closed`]: the bridge was already shut down, or its
    /// shutdown could not drain the connection.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> Result<(), herald::nats::Error> {
    /// # let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    /// use herald::nats::NatsBridge;
    /// use herald::NotificationCenter;
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Debug, Clone, Serialize, Deserialize)]
    /// # struct OrderPlaced { id: u64 }
    /// # impl herald::Notification for OrderPlaced {
    /// #     fn name() -> &'static str { "shop.order.placed" }
    /// # }
    ///
    /// let center = NotificationCenter::new();
    /// let url = "nats://127.0.0.1:4222";
    /// # let url = &format!("nats://127.0.0.1:{port}"); // no server in doctests: a closed local port
    /// let bridge = NatsBridge::builder()
    /// #   .retry_initial_connect(true) // which connects in the background
    ///     .connect(url)
    ///     .await?;
    /// bridge.shutdown().await?;
    /// let err = bridge.import::<OrderPlaced>(&center).await.unwrap_err();
    /// assert!(err.is_closed());
    /// # Ok(()) }
    /// ```
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
