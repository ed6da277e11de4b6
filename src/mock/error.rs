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
    pub fn is_io(&self) -> bool {
        self.kind == Kind::Io
    }

    /// A key given to [`register_key`](crate::mock::MockApns::register_key) could not be read as a
    /// P-256 public key or PKCS#8 private key, or the key id / team id is empty.
    pub fn is_bad_key(&self) -> bool {
        self.kind == Kind::BadKey
    }

    /// Generating or parsing a certificate failed.
    pub fn is_certificate(&self) -> bool {
        self.kind == Kind::Certificate
    }

    /// Building the TLS configuration failed.
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
