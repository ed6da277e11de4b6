//! The mock's one error type.

use std::fmt;

/// Why a [`MockApns`](crate::mock::MockApns) operation failed: start-up (bind, certificate
/// generation, TLS set-up), key registration or certificate issuance. Opaque, with queries.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mock = herald::mock::MockApns::start().await.unwrap();
/// let err = mock.register_key("ABC123DEFG", "TEAM123456", b"not a key").unwrap_err();
/// assert!(err.is_bad_key());
/// # }
/// ```
#[derive(Debug)]
pub struct MockError {
    kind: Kind,
    message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Io,
    Tls,
    Certificate,
    BadKey,
}

impl MockError {
    pub(crate) fn new(kind: Kind, message: impl Into<String>) -> Self {
        MockError {
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn io(context: &str, e: std::io::Error) -> Self {
        Self::new(Kind::Io, format!("{context}: {e}"))
    }

    /// An I/O failure (binding the listener, writing a file).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), herald::mock::MockError> {
    /// use herald::mock::MockApns;
    /// let mock = MockApns::start().await?;
    /// // A second mock on the first one's port cannot bind.
    /// let err = MockApns::builder().bind(mock.addr()).start().await.unwrap_err();
    /// assert!(err.is_io());
    /// assert!(!err.is_bad_key() && !err.is_certificate() && !err.is_tls());
    /// // Nor can a file be written in a directory that does not exist.
    /// assert!(mock.write_ca_pem("/nonexistent/dir/ca.pem").unwrap_err().is_io());
    /// # Ok(()) }
    /// ```
    pub fn is_io(&self) -> bool {
        self.kind == Kind::Io
    }

    /// A key given to [`register_key`](crate::mock::MockApns::register_key) could not be read as a
    /// P-256 public key or PKCS#8 private key, or the key id / team id is empty.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), herald::mock::MockError> {
    /// use herald::mock::MockApns;
    /// let mock = MockApns::start().await?;
    /// let err = mock.register_key("ABC123DEFG", "TEAM123456", b"not a key").unwrap_err();
    /// assert!(err.is_bad_key() && !err.is_io());
    /// assert!(mock.generate_key("", "TEAM123456").unwrap_err().is_bad_key()); // empty key id
    /// assert!(mock.generate_key("ABC123DEFG", "TEAM123456").is_ok());
    /// # Ok(()) }
    /// ```
    pub fn is_bad_key(&self) -> bool {
        self.kind == Kind::BadKey
    }

    /// Generating or parsing a certificate failed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), herald::mock::MockError> {
    /// use herald::mock::MockApns;
    /// let mock = MockApns::start().await?;
    /// let err = mock.issue_push_certificate("").unwrap_err(); // no bundle id
    /// assert!(err.is_certificate() && !err.is_bad_key());
    /// assert!(mock.issue_push_certificate("com.example.app").is_ok());
    /// # Ok(()) }
    /// ```
    pub fn is_certificate(&self) -> bool {
        self.kind == Kind::Certificate
    }

    /// Building the TLS configuration failed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use herald::mock::MockApns;
    /// // A client CA to trust that is not a certificate.
    /// let bogus = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    /// let err = MockApns::builder().trust_client_ca_pem(bogus).start().await.unwrap_err();
    /// assert!(err.is_tls() && !err.is_certificate());
    /// # }
    /// ```
    pub fn is_tls(&self) -> bool {
        self.kind == Kind::Tls
    }
}

impl fmt::Display for MockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mock APNs: {}", self.message)
    }
}

impl std::error::Error for MockError {}
