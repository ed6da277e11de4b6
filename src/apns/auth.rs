//! Authentication: provider tokens ([`TokenKey`], `.p8`) and client certificates ([`Certificate`],
//! `.p12` or PEM).
//!
//! # Token lifetime
//!
//! One [`TokenKey`] mints one JWT at a time, shared by every connection that uses the key (clone
//! the `TokenKey` to share it between clients). Tokens are minted lazily, at the first request
//! that needs one — never by a timer started early. A connection keeps its token until the token
//! is 50 minutes old, then adopts the shared current one; a token older than 30 minutes is never
//! adopted by a connection (a fresh one is minted instead), so a connection changes tokens at most
//! once per 20 minutes and never sends a token older than an hour. When APNs answers
//! `ExpiredProviderToken`, the token is retired and the push is retried once with a new one.
//!
//! Secrets never appear in `Debug` output, errors or logs.
//!
//! # What a push certificate covers
//!
//! Apple marks a push certificate with the environments it may connect to (extension
//! `1.2.840.113635.100.6.3.1`: sandbox, `…3.2`: production) and the topics it may push to
//! (`…3.6`: the bundle id, `.voip`, `.complication`...). [`Certificate`] reads them, and the
//! client refuses, before sending anything, a certificate that does not cover the endpoint's
//! environment ([`ApnsClientBuilder::build`](super::ApnsClientBuilder::build)) or a push to a
//! topic it does not list ([`ErrorKind::CertificateMismatch`]). A certificate without these
//! extensions is not refused (only the topic's bundle id is compared with the subject UID).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use parking_lot::Mutex;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::time::Instant;

use super::error::{Error, ErrorKind, Msg};

/// A connection holds its token until it is this old.
pub(crate) const REFRESH_AFTER: Duration = Duration::from_secs(50 * 60);
/// A connection never adopts a token older than this (so it can keep it ≥ 20 minutes).
pub(crate) const ADOPT_MAX_AGE: Duration = Duration::from_secs(30 * 60);

/// Wall-clock time derived from tokio's clock, so that paused-time tests see `iat` advance.
#[derive(Debug, Clone, Copy)]
struct Clock {
    wall: SystemTime,
    mono: Instant,
}

impl Clock {
    fn new() -> Clock {
        Clock {
            wall: SystemTime::now(),
            mono: Instant::now(),
        }
    }

    fn unix_secs(&self, at: Instant) -> u64 {
        (self.wall + at.saturating_duration_since(self.mono))
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs()
    }
}

/// A minted provider token.
pub(crate) struct Jwt {
    /// `bearer <jwt>`.
    pub(crate) bearer: http::HeaderValue,
    pub(crate) minted: Instant,
    pub(crate) generation: u64,
}

impl fmt::Debug for Jwt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwt")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

struct TokenInner {
    key_id: String,
    team_id: String,
    key: EcdsaKeyPair,
    rng: SystemRandom,
    clock: Clock,
    current: Mutex<Option<Arc<Jwt>>>,
    next_generation: AtomicU64,
    /// Tokens with a generation below this were reported expired by APNs.
    retired_below: AtomicU64,
    minted: AtomicU64,
    /// Simulated time added to the clock, in milliseconds (see `TokenKey::advance_clock`).
    skew_ms: AtomicU64,
}

/// A provider-token signing key: the `.p8` file from Apple, its key id and your team id.
///
/// Cheap to clone; clones share the current token (one token per team).
///
/// ```
/// use herald::apns::TokenKey;
/// # let tmp: tempfile::TempDir = include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/apns/doc_p8.rs"));
/// # let dir = tmp.path();
/// let key = TokenKey::from_p8_file(dir.join("AuthKey_ABC1234567.p8"), "ABC1234567", "TEAM123456")?;
/// let shared = key.clone(); // for another client: both send the same token
/// assert_eq!(shared.key_id(), "ABC1234567");
/// # Ok::<(), herald::apns::Error>(())
/// ```
#[derive(Clone)]
pub struct TokenKey {
    inner: Arc<TokenInner>,
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKey")
            .field("key_id", &self.inner.key_id)
            .field("team_id", &self.inner.team_id)
            .finish_non_exhaustive()
    }
}

/// Apple's key ids and team ids are exactly 10 ASCII letters and digits (APNs token
/// authentication); anything else would only come back as a 403 on the first push. The message
/// says what is wrong, never the value: a key pasted into the wrong argument must not end up in
/// a log.
fn check_apple_id(what: &str, v: &str) -> Result<(), Error> {
    const RULE: &str = "Apple's are exactly 10 letters and digits (ASCII)";
    let problem = if v.is_empty() {
        "is empty".to_owned()
    } else if !v.bytes().all(|b| b.is_ascii_alphanumeric()) {
        "has a character that is neither a letter nor a digit (a space or line end copied with \
         it?)"
            .to_owned()
    } else if v.len() != 10 {
        let n = v.len();
        format!("has {n} character{}", if n == 1 { "" } else { "s" })
    } else {
        return Ok(());
    };
    Err(Error::new(
        ErrorKind::BadKey,
        format!("the {what} {problem}: {RULE}"),
    ))
}

impl TokenKey {
    /// Checks a key id as Apple issues them: exactly 10 ASCII letters and digits. The
    /// constructors check it too; this is for a program that takes the id from its own
    /// configuration and wants to refuse it there. The error ([`ErrorKind::BadKey`]) says what
    /// is wrong without repeating the value.
    ///
    /// ```
    /// use herald::apns::TokenKey;
    /// assert!(TokenKey::check_key_id("ABC1234567").is_ok());
    /// let err = TokenKey::check_key_id("ABC123456").unwrap_err();
    /// assert!(err.is_bad_key() && err.to_string().contains("9 characters"));
    /// ```
    pub fn check_key_id(key_id: &str) -> Result<(), Error> {
        check_apple_id("key id", key_id)
    }

    /// Checks a team id as Apple issues them: exactly 10 ASCII letters and digits (see
    /// [`check_key_id`](Self::check_key_id)).
    ///
    /// ```
    /// use herald::apns::TokenKey;
    /// assert!(TokenKey::check_team_id("TEAM123456").is_ok());
    /// assert!(TokenKey::check_team_id("TEAM 23456").unwrap_err().is_bad_key());
    /// ```
    pub fn check_team_id(team_id: &str) -> Result<(), Error> {
        check_apple_id("team id", team_id)
    }

    /// Reads a `.p8` file.
    ///
    /// ```
    /// # use herald::apns::TokenKey;
    /// # let tmp: tempfile::TempDir = include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/apns/doc_p8.rs"));
    /// # let dir = tmp.path();
    /// let key = TokenKey::from_p8_file(dir.join("AuthKey_ABC1234567.p8"), "ABC1234567", "TEAM123456")?;
    /// assert_eq!(key.team_id(), "TEAM123456");
    ///
    /// // A missing or unreadable file is a `BadKey` error that names the path.
    /// let err = TokenKey::from_p8_file(dir.join("AuthKey_MISSING000.p8"), "ABC1234567", "TEAM123456")
    ///     .unwrap_err();
    /// assert!(err.is_bad_key());
    /// assert!(err.to_string().contains("AuthKey_MISSING000.p8"));
    /// # Ok::<(), herald::apns::Error>(())
    /// ```
    pub fn from_p8_file(
        path: impl AsRef<std::path::Path>,
        key_id: impl Into<String>,
        team_id: impl Into<String>,
    ) -> Result<TokenKey, Error> {
        let path = path.as_ref();
        let pem = std::fs::read(path).map_err(|e| {
            Error::new(
                ErrorKind::BadKey,
                format!("cannot read the .p8 key file {}", path.display()),
            )
            .with_source(e)
        })?;
        TokenKey::from_p8_pem(pem, key_id, team_id)
    }

    /// Parses the contents of a `.p8` file (PEM, `-----BEGIN PRIVATE KEY-----`).
    ///
    /// ```
    /// # use herald::apns::TokenKey;
    /// let err = TokenKey::from_p8_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "ABC1234567", "TEAM123456");
    /// assert!(err.unwrap_err().is_bad_key());
    /// ```
    pub fn from_p8_pem(
        pem: impl AsRef<[u8]>,
        key_id: impl Into<String>,
        team_id: impl Into<String>,
    ) -> Result<TokenKey, Error> {
        let der =
            rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(pem.as_ref()).map_err(|_| {
                Error::new(
                    ErrorKind::BadKey,
                    "the .p8 key is not a PEM \"PRIVATE KEY\" (PKCS#8)",
                )
            })?;
        TokenKey::from_pkcs8_der(der.secret_pkcs8_der(), key_id, team_id)
    }

    /// Uses a PKCS#8 DER EC P-256 key.
    ///
    /// ```
    /// # use herald::apns::TokenKey;
    /// assert!(TokenKey::from_pkcs8_der(&[0u8; 10], "ABC1234567", "TEAM123456").unwrap_err().is_bad_key());
    /// ```
    pub fn from_pkcs8_der(
        der: &[u8],
        key_id: impl Into<String>,
        team_id: impl Into<String>,
    ) -> Result<TokenKey, Error> {
        let key_id = key_id.into();
        let team_id = team_id.into();
        for (what, v) in [("key id", &key_id), ("team id", &team_id)] {
            check_apple_id(what, v)?;
        }
        let rng = SystemRandom::new();
        let key = match EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng) {
            Ok(k) => k,
            Err(_) => {
                // ring rejects PKCS#8 keys without the embedded public key: re-encode with p256.
                use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey};
                let secret = p256::SecretKey::from_pkcs8_der(der).map_err(|_| {
                    Error::new(
                        ErrorKind::BadKey,
                        "the key is not a PKCS#8 EC P-256 private key (is it the .p8 from Apple?)",
                    )
                })?;
                let full = secret.to_pkcs8_der().map_err(|_| {
                    Error::new(ErrorKind::BadKey, "the EC P-256 key cannot be re-encoded")
                })?;
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, full.as_bytes(), &rng)
                    .map_err(|e| {
                        Error::new(ErrorKind::BadKey, "the EC P-256 key is rejected")
                            .with_source(Msg(e.to_string()))
                    })?
            }
        };
        Ok(TokenKey {
            inner: Arc::new(TokenInner {
                key_id,
                team_id,
                key,
                rng,
                clock: Clock::new(),
                current: Mutex::new(None),
                next_generation: AtomicU64::new(1),
                retired_below: AtomicU64::new(0),
                minted: AtomicU64::new(0),
                skew_ms: AtomicU64::new(0),
            }),
        })
    }

    /// The key id (`kid`).
    ///
    /// ```
    /// # use herald::apns::TokenKey;
    /// # let alg = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    /// # let der = ring::signature::EcdsaKeyPair::generate_pkcs8(alg, &ring::rand::SystemRandom::new()).unwrap();
    /// # let key = TokenKey::from_pkcs8_der(der.as_ref(), "ABC1234567", "TEAM123456")?;
    /// assert_eq!(key.key_id(), "ABC1234567");
    /// # Ok::<(), herald::apns::Error>(())
    /// ```
    pub fn key_id(&self) -> &str {
        &self.inner.key_id
    }

    /// The team id (`iss`).
    ///
    /// ```
    /// # use herald::apns::TokenKey;
    /// # let alg = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    /// # let der = ring::signature::EcdsaKeyPair::generate_pkcs8(alg, &ring::rand::SystemRandom::new()).unwrap();
    /// # let key = TokenKey::from_pkcs8_der(der.as_ref(), "ABC1234567", "TEAM123456")?;
    /// assert_eq!(key.team_id(), "TEAM123456");
    /// # Ok::<(), herald::apns::Error>(())
    /// ```
    pub fn team_id(&self) -> &str {
        &self.inner.team_id
    }

    /// How many tokens this key (and its clones) has minted so far.
    ///
    /// ```
    /// # use herald::apns::TokenKey;
    /// # let alg = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    /// # let der = ring::signature::EcdsaKeyPair::generate_pkcs8(alg, &ring::rand::SystemRandom::new()).unwrap();
    /// # let key = TokenKey::from_pkcs8_der(der.as_ref(), "ABC1234567", "TEAM123456")?;
    /// assert_eq!(key.tokens_minted(), 0); // lazily: nothing before the first push
    /// # Ok::<(), herald::apns::Error>(())
    /// ```
    pub fn tokens_minted(&self) -> u64 {
        self.inner.minted.load(Ordering::Relaxed)
    }

    /// Moves this key's clock (token ages and `iat`) forward by `by`, for tests that simulate
    /// hours of sending against a mock server whose clock is advanced the same way. Shared by clones.
    ///
    /// ```
    /// # use herald::apns::TokenKey;
    /// # let doc = ring::signature::EcdsaKeyPair::generate_pkcs8(&ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING, &ring::rand::SystemRandom::new()).unwrap();
    /// let key = TokenKey::from_pkcs8_der(doc.as_ref(), "ABC1234567", "TEAM123456")?;
    /// key.advance_clock(std::time::Duration::from_secs(3600));
    /// # Ok::<(), herald::apns::Error>(())
    /// ```
    pub fn advance_clock(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.inner.skew_ms.fetch_add(ms, Ordering::AcqRel);
    }

    fn now(&self) -> Instant {
        Instant::now() + Duration::from_millis(self.inner.skew_ms.load(Ordering::Acquire))
    }

    fn mint(&self, now: Instant) -> Result<Arc<Jwt>, Error> {
        let i = &self.inner;
        let header = format!(r#"{{"alg":"ES256","kid":"{}"}}"#, i.key_id);
        let claims = format!(
            r#"{{"iss":"{}","iat":{}}}"#,
            i.team_id,
            i.clock.unix_secs(now)
        );
        let mut jws = String::with_capacity(200);
        URL_SAFE_NO_PAD.encode_string(header, &mut jws);
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(claims, &mut jws);
        let sig = i
            .key
            .sign(&i.rng, jws.as_bytes())
            .map_err(|_| Error::new(ErrorKind::BadKey, "ES256 signing failed"))?;
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(sig.as_ref(), &mut jws);
        let mut bearer = http::HeaderValue::try_from(format!("bearer {jws}"))
            .map_err(|_| Error::new(ErrorKind::BadKey, "the token is not a valid header"))?;
        bearer.set_sensitive(true);
        i.minted.fetch_add(1, Ordering::Relaxed);
        let generation = i.next_generation.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(generation, key_id = %i.key_id, "minted a new APNs provider token");
        Ok(Arc::new(Jwt {
            bearer,
            minted: now,
            generation,
        }))
    }

    /// The token a connection should send now; `held` is the connection's current token.
    pub(crate) fn token_for(&self, held: &Mutex<Option<Arc<Jwt>>>) -> Result<Arc<Jwt>, Error> {
        let now = self.now();
        let retired = self.inner.retired_below.load(Ordering::Acquire);
        let mut held = held.lock();
        if let Some(t) = &*held
            && t.generation >= retired
            && now.saturating_duration_since(t.minted) < REFRESH_AFTER
        {
            return Ok(t.clone());
        }
        let mut current = self.inner.current.lock();
        let fresh = match &*current {
            Some(t)
                if t.generation >= retired
                    && now.saturating_duration_since(t.minted) <= ADOPT_MAX_AGE =>
            {
                t.clone()
            }
            _ => {
                let t = self.mint(now)?;
                *current = Some(t.clone());
                t
            }
        };
        *held = Some(fresh.clone());
        Ok(fresh)
    }

    /// APNs said `token` expired: never use it (or older ones) again.
    pub(crate) fn retire(&self, token: &Jwt) {
        self.inner
            .retired_below
            .fetch_max(token.generation + 1, Ordering::AcqRel);
    }
}

/// An APNs environment: where development builds' tokens live, or App Store / TestFlight ones.
///
/// ```
/// use herald::apns::{Endpoint, Environment};
/// assert_eq!(Endpoint::Production.environment(), Some(Environment::Production));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Environment {
    /// `api.sandbox.push.apple.com` (development).
    Sandbox,
    /// `api.push.apple.com`.
    Production,
}

impl Environment {
    /// `"sandbox"` or `"production"`.
    ///
    /// ```
    /// assert_eq!(herald::apns::Environment::Sandbox.as_str(), "sandbox");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Sandbox => "sandbox",
            Environment::Production => "production",
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Apple's push-certificate extensions (Apple WWDR certification practice statement).
const SANDBOX_EXT: &str = "1.2.840.113635.100.6.3.1";
const PRODUCTION_EXT: &str = "1.2.840.113635.100.6.3.2";
const TOPICS_EXT: &str = "1.2.840.113635.100.6.3.6";
/// X.500 `UID` (userId): the bundle id of a push certificate.
const UID_ATTR: &str = "0.9.2342.19200300.100.1.1";

/// What a certificate may push to: its listed topics, or its bundle id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CertificateScope {
    topics: Option<Vec<String>>,
    bundle_id: Option<String>,
}

impl CertificateScope {
    fn covers(&self, topic: &str) -> bool {
        match (&self.topics, &self.bundle_id) {
            (Some(topics), _) => topics.iter().any(|t| t == topic),
            (None, Some(bundle)) => {
                topic == bundle
                    || topic
                        .strip_prefix(bundle.as_str())
                        .is_some_and(|rest| rest.starts_with('.'))
            }
            (None, None) => true,
        }
    }

    /// `Err` when a push to `topic` would be refused by APNs under this certificate.
    pub(crate) fn check_topic(&self, topic: &str) -> Result<(), Error> {
        if self.covers(topic) {
            return Ok(());
        }
        let covered = match (&self.topics, &self.bundle_id) {
            (Some(topics), _) => topics.join(", "),
            (None, Some(bundle)) => format!("{bundle} and its suffixes"),
            (None, None) => String::new(),
        };
        Err(Error::new(
            ErrorKind::CertificateMismatch,
            format!("the client certificate does not cover topic {topic:?} (it covers {covered})"),
        ))
    }
}

/// The topics of Apple's topics extension: `SEQUENCE { UTF8String topic, SEQUENCE {
/// UTF8String kind }, ... }`. Strings directly in the sequence are topics; nested kind markers
/// are skipped; a flat list of strings is read as topic, kind, topic, kind. `None` when the
/// value is not a sequence.
fn parse_topics(value: &[u8]) -> Option<Vec<String>> {
    use x509_parser::der_parser::ber::BerObjectContent;
    let (_, seq) = x509_parser::der_parser::parse_der(value).ok()?;
    let BerObjectContent::Sequence(items) = &seq.content else {
        return None;
    };
    let strings: Vec<Option<String>> = items
        .iter()
        .map(|i| i.as_str().ok().map(str::to_owned))
        .collect();
    Some(if strings.iter().all(Option::is_some) {
        strings.into_iter().step_by(2).flatten().collect()
    } else {
        strings.into_iter().flatten().collect()
    })
}

/// A client certificate (certificate-based authentication), with its private key.
///
/// ```
/// use herald::apns::Certificate;
/// # let tmp = tempfile::tempdir().unwrap();
/// # let dir = tmp.path();
/// # let p12: Vec<u8> = include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/apns/doc_push_p12.rs"));
/// # std::fs::write(dir.join("push.p12"), p12).unwrap();
/// let cert = Certificate::from_p12(std::fs::read(dir.join("push.p12"))?, "pw")?;
/// println!("expires at {:?}", cert.expires_at());
/// assert_eq!(cert.bundle_id(), Some("com.example.app"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Certificate {
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: PrivateKeyDer<'static>,
    not_after: SystemTime,
    subject: String,
    environments: Vec<Environment>,
    scope: CertificateScope,
}

impl Clone for Certificate {
    fn clone(&self) -> Certificate {
        Certificate {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            not_after: self.not_after,
            subject: self.subject.clone(),
            environments: self.environments.clone(),
            scope: self.scope.clone(),
        }
    }
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("subject", &self.subject)
            .field("expires_at", &self.not_after)
            .field("environments", &self.environments)
            .field("topics", &self.scope.topics)
            .finish_non_exhaustive()
    }
}

impl Certificate {
    /// Reads a PKCS#12 (`.p12`) export with its password.
    ///
    /// ```
    /// # use herald::apns::Certificate;
    /// assert_eq!(Certificate::from_p12(b"not a p12", "pw").unwrap_err().kind(), herald::apns::ErrorKind::BadCertificate);
    /// ```
    pub fn from_p12(bytes: impl AsRef<[u8]>, password: &str) -> Result<Certificate, Error> {
        use p12_keystore::error::Error as P12Error;
        use p12_keystore::{KeyStore, Pkcs12ImportPolicy};
        let store = KeyStore::from_pkcs12(bytes.as_ref(), password, Pkcs12ImportPolicy::Strict)
            .map_err(|e| match e {
                P12Error::MacError(_) | P12Error::UnpadError => {
                    Error::new(ErrorKind::WrongPassword, "the .p12 password is wrong")
                }
                other => Error::new(ErrorKind::BadCertificate, "the .p12 file cannot be read")
                    .with_source(Msg(other.to_string())),
            })?;
        let (_, chain) = store.private_key_chain().ok_or_else(|| {
            Error::new(
                ErrorKind::BadCertificate,
                "the .p12 file holds no private key with its certificate",
            )
        })?;
        let certs: Vec<CertificateDer<'static>> = chain
            .certs()
            .iter()
            .map(|c| CertificateDer::from(c.as_der().to_vec()))
            .collect();
        let key = PrivateKeyDer::Pkcs8(chain.key().as_der().to_vec().into());
        Certificate::new(certs, key)
    }

    /// Reads a `.p12` file.
    ///
    /// ```
    /// # use herald::apns::Certificate;
    /// # let tmp = tempfile::tempdir().unwrap();
    /// # let dir = tmp.path();
    /// # let p12: Vec<u8> = include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/apns/doc_push_p12.rs"));
    /// # std::fs::write(dir.join("push.p12"), p12).unwrap();
    /// let cert = Certificate::from_p12_file(dir.join("push.p12"), "pw")?;
    /// assert_eq!(cert.bundle_id(), Some("com.example.app"));
    ///
    /// // A wrong password is its own kind of error (not `BadCertificate`): ask for it again.
    /// let err = Certificate::from_p12_file(dir.join("push.p12"), "not the password").unwrap_err();
    /// assert!(err.is_wrong_password());
    /// # Ok::<(), herald::apns::Error>(())
    /// ```
    pub fn from_p12_file(
        path: impl AsRef<std::path::Path>,
        password: &str,
    ) -> Result<Certificate, Error> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| {
            Error::new(
                ErrorKind::BadCertificate,
                format!("cannot read {}", path.display()),
            )
            .with_source(e)
        })?;
        Certificate::from_p12(bytes, password)
    }

    /// Reads a PEM certificate chain (leaf first) and its PEM private key.
    ///
    /// ```
    /// # use herald::apns::Certificate;
    /// assert!(Certificate::from_pem("nope", "nope").is_err());
    /// ```
    pub fn from_pem(
        cert_pem: impl AsRef<[u8]>,
        key_pem: impl AsRef<[u8]>,
    ) -> Result<Certificate, Error> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_ref())
            .collect::<Result<_, _>>()
            .map_err(|e| {
                Error::new(
                    ErrorKind::BadCertificate,
                    "the PEM certificate cannot be read",
                )
                .with_source(Msg(e.to_string()))
            })?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_ref()).map_err(|_| {
            Error::new(
                ErrorKind::BadKey,
                "the PEM private key cannot be read (PKCS#8, PKCS#1 or SEC1 expected)",
            )
        })?;
        Certificate::new(certs, key)
    }

    fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Certificate, Error> {
        let leaf = chain
            .first()
            .ok_or_else(|| Error::new(ErrorKind::BadCertificate, "no certificate found"))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref()).map_err(|e| {
            Error::new(
                ErrorKind::BadCertificate,
                "the certificate is not valid X.509",
            )
            .with_source(Msg(e.to_string()))
        })?;
        let secs = parsed.validity().not_after.timestamp();
        let not_after = UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0));
        let subject = parsed.subject().to_string();
        let has = |oid: &str| {
            parsed
                .extensions()
                .iter()
                .any(|e| e.oid.to_id_string() == oid)
        };
        let mut environments = Vec::new();
        if has(SANDBOX_EXT) {
            environments.push(Environment::Sandbox);
        }
        if has(PRODUCTION_EXT) {
            environments.push(Environment::Production);
        }
        let topics = parsed
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == TOPICS_EXT)
            .map(|e| parse_topics(e.value).unwrap_or_default());
        let bundle_id = parsed
            .subject()
            .iter_attributes()
            .find(|a| a.attr_type().to_id_string() == UID_ATTR)
            .and_then(|a| a.as_str().ok())
            .map(str::to_owned);
        let scope = CertificateScope { topics, bundle_id };
        rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| {
            Error::new(
                ErrorKind::BadKey,
                "the certificate's private key is not usable",
            )
            .with_source(Msg(e.to_string()))
        })?;
        if not_after <= SystemTime::now() {
            return Err(Error::expired(
                not_after,
                format!("the client certificate {subject} has expired"),
            ));
        }
        if not_after
            .duration_since(SystemTime::now())
            .is_ok_and(|left| left < Duration::from_secs(30 * 24 * 3600))
        {
            tracing::warn!(%subject, "the APNs client certificate expires within 30 days");
        }
        Ok(Certificate {
            chain,
            key,
            not_after,
            subject,
            environments,
            scope,
        })
    }

    /// The environments the certificate may connect to, from Apple's extensions (sandbox
    /// `1.2.840.113635.100.6.3.1`, production `…3.2`); empty when it carries neither.
    ///
    /// ```
    /// # use herald::apns::{Certificate, Environment};
    /// # let tmp = tempfile::tempdir().unwrap();
    /// # let dir = tmp.path();
    /// # let p12: Vec<u8> = include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/apns/doc_push_p12.rs"));
    /// # std::fs::write(dir.join("push.p12"), p12).unwrap();
    /// let cert = Certificate::from_p12_file(dir.join("push.p12"), "pw")?;
    /// if !cert.environments().contains(&Environment::Production) {
    ///     eprintln!("this certificate cannot push to App Store builds");
    /// }
    /// // A universal ("Sandbox & Production") certificate:
    /// assert_eq!(cert.environments(), [Environment::Sandbox, Environment::Production]);
    /// # Ok::<(), herald::apns::Error>(())
    /// ```
    pub fn environments(&self) -> &[Environment] {
        &self.environments
    }

    /// The topics of Apple's topics extension (`1.2.840.113635.100.6.3.6`), when it has one.
    ///
    /// ```
    /// # use herald::apns::Certificate;
    /// # let tmp = tempfile::tempdir().unwrap();
    /// # let dir = tmp.path();
    /// # let p12: Vec<u8> = include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/apns/doc_push_p12.rs"));
    /// # std::fs::write(dir.join("push.p12"), p12).unwrap();
    /// let cert = Certificate::from_p12_file(dir.join("push.p12"), "pw")?;
    /// println!("may push to {:?}", cert.topics());
    /// let topics = cert.topics().unwrap_or_default();
    /// assert_eq!(topics, ["com.example.app", "com.example.app.voip"]);
    /// # Ok::<(), herald::apns::Error>(())
    /// ```
    pub fn topics(&self) -> Option<&[String]> {
        self.scope.topics.as_deref()
    }

    /// The bundle id (the subject's UID attribute), when it has one.
    ///
    /// ```
    /// # use herald::apns::Certificate;
    /// # let tmp = tempfile::tempdir().unwrap();
    /// # let dir = tmp.path();
    /// # let p12: Vec<u8> = include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/apns/doc_push_p12.rs"));
    /// # std::fs::write(dir.join("push.p12"), p12).unwrap();
    /// let cert = Certificate::from_p12_file(dir.join("push.p12"), "pw")?;
    /// assert_eq!(cert.bundle_id(), Some("com.example.app"));
    /// # Ok::<(), herald::apns::Error>(())
    /// ```
    pub fn bundle_id(&self) -> Option<&str> {
        self.scope.bundle_id.as_deref()
    }

    /// Whether a push to `topic` is covered: listed in the topics extension, or, without one,
    /// the bundle id or one of its suffixes (`<bundle>.voip`). A certificate that says neither
    /// covers everything (APNs decides).
    ///
    /// ```
    /// # use herald::apns::Certificate;
    /// # let tmp = tempfile::tempdir().unwrap();
    /// # let dir = tmp.path();
    /// # let p12: Vec<u8> = include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/apns/doc_push_p12.rs"));
    /// # std::fs::write(dir.join("push.p12"), p12).unwrap();
    /// let cert = Certificate::from_p12_file(dir.join("push.p12"), "pw")?;
    /// assert!(cert.covers_topic("com.example.app"));
    /// assert!(cert.covers_topic("com.example.app.voip"));
    /// // Not listed: a push to it is refused before it is sent (`ErrorKind::CertificateMismatch`).
    /// assert!(!cert.covers_topic("com.example.app.complication"));
    /// assert!(!cert.covers_topic("com.other.app"));
    /// # Ok::<(), herald::apns::Error>(())
    /// ```
    pub fn covers_topic(&self, topic: &str) -> bool {
        self.scope.covers(topic)
    }

    /// `Err(CertificateMismatch)` when the certificate names its environments and `environment`
    /// is not one of them (APNs would answer 403 BadCertificateEnvironment).
    pub(crate) fn check_environment(&self, environment: Environment) -> Result<(), Error> {
        if self.environments.is_empty() || self.environments.contains(&environment) {
            return Ok(());
        }
        let names: Vec<&str> = self.environments.iter().map(|e| e.as_str()).collect();
        Err(Error::new(
            ErrorKind::CertificateMismatch,
            format!(
                "the client certificate {} is for {} only, and the endpoint is {environment}",
                self.subject,
                names.join(" and ")
            ),
        ))
    }

    pub(crate) fn scope(&self) -> CertificateScope {
        self.scope.clone()
    }

    /// When the certificate expires.
    ///
    /// ```
    /// # use herald::apns::Certificate;
    /// # let p12: Vec<u8> = include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/apns/doc_push_p12.rs"));
    /// # let cert = Certificate::from_p12(&p12, "pw")?;
    /// let left = cert.expires_at().duration_since(std::time::SystemTime::now()).unwrap_or_default();
    /// println!("the push certificate expires in {} days", left.as_secs().div_ceil(86400));
    /// assert_eq!(left.as_secs().div_ceil(86400), 90); // this one was made to last 90 days
    /// # Ok::<(), herald::apns::Error>(())
    /// ```
    pub fn expires_at(&self) -> SystemTime {
        self.not_after
    }

    /// Whether it expires within `window` from now.
    ///
    /// ```
    /// # use herald::apns::Certificate;
    /// # use std::time::Duration;
    /// # let p12: Vec<u8> = include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/apns/doc_push_p12.rs"));
    /// # let cert = Certificate::from_p12(&p12, "pw")?;
    /// if cert.expires_within(Duration::from_secs(30 * 86400)) { eprintln!("renew the push certificate"); }
    /// // This one expires in 90 days: not within a month, within a year.
    /// assert!(!cert.expires_within(Duration::from_secs(30 * 86400)));
    /// assert!(cert.expires_within(Duration::from_secs(365 * 86400)));
    /// # Ok::<(), herald::apns::Error>(())
    /// ```
    pub fn expires_within(&self, window: Duration) -> bool {
        SystemTime::now() + window >= self.not_after
    }

    /// The certificate's subject (its UID is the bundle id).
    ///
    /// ```
    /// # use herald::apns::Certificate;
    /// # let p12: Vec<u8> = include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/apns/doc_push_p12.rs"));
    /// # let cert = Certificate::from_p12(&p12, "pw")?;
    /// println!("{}", cert.subject());
    /// assert!(cert.subject().contains("CN=Apple Push Services: com.example.app"));
    /// # Ok::<(), herald::apns::Error>(())
    /// ```
    pub fn subject(&self) -> &str {
        &self.subject
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TokenKey {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        TokenKey::from_pkcs8_der(doc.as_ref(), "ABC1234567", "TEAM123456").unwrap()
    }

    #[test]
    fn jwt_is_strict_jws_with_raw_signature() {
        let k = key();
        let t = k.mint(Instant::now()).unwrap();
        let s = t
            .bearer
            .to_str()
            .unwrap()
            .strip_prefix("bearer ")
            .unwrap()
            .to_owned();
        let parts: Vec<&str> = s.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert!(!s.contains('='));
        let header = URL_SAFE_NO_PAD.decode(parts[0]).unwrap();
        assert_eq!(header, br#"{"alg":"ES256","kid":"ABC1234567"}"#);
        assert_eq!(URL_SAFE_NO_PAD.decode(parts[2]).unwrap().len(), 64);
        assert!(format!("{:?}", t).find(&s).is_none());
        assert!(!format!("{k:?}").contains("PRIVATE"));
    }

    #[tokio::test(start_paused = true)]
    async fn one_token_shared_and_refreshed_at_50_minutes() {
        let k = key();
        let a = Mutex::new(None);
        let b = Mutex::new(None);
        assert_eq!(k.tokens_minted(), 0);
        let t1 = k.token_for(&a).unwrap();
        let t1b = k.token_for(&b).unwrap();
        assert_eq!(t1.generation, t1b.generation);
        tokio::time::advance(Duration::from_secs(49 * 60)).await;
        assert_eq!(k.token_for(&a).unwrap().generation, t1.generation);
        tokio::time::advance(Duration::from_secs(60)).await;
        let t2 = k.token_for(&a).unwrap();
        assert_ne!(t2.generation, t1.generation);
        assert_eq!(k.token_for(&b).unwrap().generation, t2.generation);
        assert_eq!(k.tokens_minted(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn late_connection_gets_fresh_token_not_an_old_one() {
        let k = key();
        let a = Mutex::new(None);
        let t1 = k.token_for(&a).unwrap();
        tokio::time::advance(Duration::from_secs(45 * 60)).await;
        let late = Mutex::new(None);
        let t2 = k.token_for(&late).unwrap();
        assert_ne!(t1.generation, t2.generation);
        // `a` keeps its own token until it is 50 minutes old.
        assert_eq!(k.token_for(&a).unwrap().generation, t1.generation);
    }

    #[tokio::test(start_paused = true)]
    async fn retired_token_is_replaced() {
        let k = key();
        let a = Mutex::new(None);
        let t1 = k.token_for(&a).unwrap();
        k.retire(&t1);
        let t2 = k.token_for(&a).unwrap();
        assert!(t2.generation > t1.generation);
    }

    #[test]
    fn wrong_key_kind_is_bad_key() {
        assert!(
            TokenKey::from_p8_pem("", "A", "B")
                .unwrap_err()
                .is_bad_key()
        );
        let k = key();
        let _ = k;
        assert!(
            TokenKey::from_pkcs8_der(&[1, 2, 3], "ABC", "DEF")
                .unwrap_err()
                .is_bad_key()
        );
    }
}
