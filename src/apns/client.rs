//! [`ApnsClient`]: configuration, `send`, `send_all`, `shutdown`, and the retry policy.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tracing::Instrument as _;

use super::auth::{Certificate, CertificateScope, Environment, TokenKey};
use super::error::{Error, ErrorKind, Msg};
use super::metrics::{Metrics, RetryCause};
use super::pool::{Attempt, BodyUse, Pool, PoolConfig, RequestSpec, Requeue};
use super::push::{Push, PushType};
use super::response::{Accepted, Answer, PushOutcome, Reason, parse_error_body};

/// Where to send pushes.
///
/// ```
/// use herald::apns::Endpoint;
/// assert_eq!(Endpoint::Production.host(), "api.push.apple.com");
/// assert_eq!(Endpoint::SandboxAlt.port(), 2197);
/// let mock = Endpoint::custom("https://127.0.0.1:8443").unwrap();
/// assert_eq!(mock.port(), 8443);
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum Endpoint {
    /// `api.push.apple.com:443`.
    Production,
    /// `api.push.apple.com:2197` (for firewalls that block 443).
    ProductionAlt,
    /// `api.sandbox.push.apple.com:443` (development builds; the default).
    #[default]
    Sandbox,
    /// `api.sandbox.push.apple.com:2197`.
    SandboxAlt,
    /// Any other server (a mock, a relay), optionally trusting its own CA.
    Custom(CustomEndpoint),
}

/// A custom endpoint; see [`Endpoint::custom`].
///
/// ```
/// use herald::apns::Endpoint;
/// let e = Endpoint::custom("https://localhost:9443").unwrap();
/// assert_eq!(e.host(), "localhost");
/// ```
#[derive(Debug, Clone)]
pub struct CustomEndpoint {
    host: String,
    port: u16,
    ca_pem: Option<Vec<u8>>,
    environment: Option<Environment>,
}

impl Endpoint {
    /// A custom endpoint from an `https://host[:port]` URL (port 443 by default). Apple's roots
    /// are trusted unless [`Endpoint::with_ca_pem`] names another CA.
    ///
    /// ```
    /// use herald::apns::Endpoint;
    /// assert!(Endpoint::custom("http://insecure:80").is_err());
    /// assert_eq!(Endpoint::custom("https://[::1]:8443").unwrap().host(), "::1");
    /// ```
    pub fn custom(url: &str) -> Result<Endpoint, Error> {
        let bad = |m: &str| Error::new(ErrorKind::Config, format!("endpoint {url:?}: {m}"));
        let uri: http::Uri = url.parse().map_err(|_| bad("not a URL"))?;
        if uri.scheme_str() != Some("https") {
            return Err(bad("the scheme must be https"));
        }
        let host = uri.host().ok_or_else(|| bad("no host"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        Ok(Endpoint::Custom(CustomEndpoint {
            host,
            port: uri.port_u16().unwrap_or(443),
            ca_pem: None,
            environment: None,
        }))
    }

    /// Trusts only this CA (PEM) for a custom endpoint. No effect on Apple's endpoints.
    ///
    /// ```
    /// use herald::apns::Endpoint;
    /// let e = Endpoint::custom("https://127.0.0.1:8443").unwrap().with_ca_pem("-----BEGIN CERTIFICATE-----...");
    /// # let _ = e;
    /// ```
    pub fn with_ca_pem(self, pem: impl Into<Vec<u8>>) -> Endpoint {
        match self {
            Endpoint::Custom(mut c) => {
                c.ca_pem = Some(pem.into());
                Endpoint::Custom(c)
            }
            other => other,
        }
    }

    /// Which APNs environment a custom endpoint stands for (a mock or relay of sandbox or
    /// production), so that a certificate for the other one is refused before connecting. No
    /// effect on Apple's endpoints, whose environment is known.
    ///
    /// ```
    /// use herald::apns::{Endpoint, Environment};
    /// let e = Endpoint::custom("https://127.0.0.1:8443").unwrap().with_environment(Environment::Production);
    /// assert_eq!(e.environment(), Some(Environment::Production));
    /// ```
    pub fn with_environment(self, environment: Environment) -> Endpoint {
        match self {
            Endpoint::Custom(mut c) => {
                c.environment = Some(environment);
                Endpoint::Custom(c)
            }
            other => other,
        }
    }

    /// The APNs environment: known for Apple's endpoints, as set by
    /// [`with_environment`](Self::with_environment) for a custom one.
    ///
    /// ```
    /// # use herald::apns::{Endpoint, Environment};
    /// assert_eq!(Endpoint::SandboxAlt.environment(), Some(Environment::Sandbox));
    /// assert_eq!(Endpoint::custom("https://localhost:1").unwrap().environment(), None);
    /// ```
    pub fn environment(&self) -> Option<Environment> {
        match self {
            Endpoint::Production | Endpoint::ProductionAlt => Some(Environment::Production),
            Endpoint::Sandbox | Endpoint::SandboxAlt => Some(Environment::Sandbox),
            Endpoint::Custom(c) => c.environment,
        }
    }

    /// The host name.
    ///
    /// ```
    /// # use herald::apns::Endpoint;
    /// assert_eq!(Endpoint::Sandbox.host(), "api.sandbox.push.apple.com");
    /// ```
    pub fn host(&self) -> &str {
        match self {
            Endpoint::Production | Endpoint::ProductionAlt => "api.push.apple.com",
            Endpoint::Sandbox | Endpoint::SandboxAlt => "api.sandbox.push.apple.com",
            Endpoint::Custom(c) => &c.host,
        }
    }

    /// The channel-management server for broadcast channels (iOS 18): Apple's dedicated hosts
    /// (sandbox port 2195, production 2196); a custom endpoint serves both.
    ///
    /// ```
    /// # use herald::apns::Endpoint;
    /// assert_eq!(Endpoint::Sandbox.channel_management(), ("api-manage-broadcast.sandbox.push.apple.com".to_string(), 2195));
    /// ```
    pub fn channel_management(&self) -> (String, u16) {
        match self {
            Endpoint::Production | Endpoint::ProductionAlt => {
                ("api-manage-broadcast.push.apple.com".into(), 2196)
            }
            Endpoint::Sandbox | Endpoint::SandboxAlt => {
                ("api-manage-broadcast.sandbox.push.apple.com".into(), 2195)
            }
            Endpoint::Custom(c) => (c.host.clone(), c.port),
        }
    }

    /// The port.
    ///
    /// ```
    /// # use herald::apns::Endpoint;
    /// assert_eq!(Endpoint::Production.port(), 443);
    /// ```
    pub fn port(&self) -> u16 {
        match self {
            Endpoint::Production | Endpoint::Sandbox => 443,
            Endpoint::ProductionAlt | Endpoint::SandboxAlt => 2197,
            Endpoint::Custom(c) => c.port,
        }
    }
}

/// How to retry 429 and 5xx answers: exponential backoff with jitter, bounded.
///
/// Permanent reasons (BadDeviceToken, Unregistered, ...) and every other 4xx are never retried.
/// Requests that never reached APNs (GOAWAY, REFUSED_STREAM) are retried on another connection
/// without counting against `max_retries` (up to 8 times). A refused request goes back on the
/// connection that refused it only when no other connection can be had (one connection, or the
/// others down or failing to connect).
///
/// ```
/// use herald::apns::RetryPolicy;
/// use std::time::Duration;
/// let p = RetryPolicy { max_retries: 5, initial_backoff: Duration::from_millis(50), ..RetryPolicy::default() };
/// assert_eq!(p.max_backoff, Duration::from_secs(60));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (default 3).
    pub max_retries: u32,
    /// The first delay (default 200 ms); doubles per retry.
    pub initial_backoff: Duration,
    /// The largest delay (default 60 s). Apple suggests backing off up to ~15 minutes on 5xx.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// No retries at all (unsent requests are still moved to another connection).
    ///
    /// ```
    /// # use herald::apns::RetryPolicy;
    /// assert_eq!(RetryPolicy::none().max_retries, 0);
    /// ```
    pub fn none() -> RetryPolicy {
        RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        }
    }

    fn delay(&self, retry: u32) -> Duration {
        let d = self
            .initial_backoff
            .saturating_mul(1u32 << retry.min(20))
            .min(self.max_backoff);
        // "Equal jitter": half fixed, half random.
        d.mul_f64(0.5 + rand::random::<f64>() * 0.5)
    }
}

/// Builds an [`ApnsClient`]. See [`ApnsClient::builder`].
///
/// ```
/// use herald::apns::{ApnsClient, Endpoint, RetryPolicy};
/// use std::time::Duration;
/// let client = ApnsClient::builder()
///     .endpoint(Endpoint::Production)
///     .connections(4)
///     .connect_timeout(Duration::from_secs(5))
///     .request_timeout(Duration::from_secs(10))
///     .ping_interval(Duration::from_secs(600))
///     .retry(RetryPolicy::default())
///     .build()
///     .unwrap();
/// # drop(client);
/// ```
#[must_use]
pub struct ApnsClientBuilder {
    endpoint: Endpoint,
    token: Option<TokenKey>,
    certificate: Option<Certificate>,
    connections: usize,
    connect_timeout: Duration,
    request_timeout: Duration,
    ping_interval: Duration,
    ping_timeout: Duration,
    idle_timeout: Option<Duration>,
    retry: RetryPolicy,
    proxy: Option<String>,
    metrics: Option<Arc<dyn Metrics>>,
}

impl std::fmt::Debug for ApnsClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApnsClientBuilder")
            .field("endpoint", &self.endpoint)
            .field("token", &self.token)
            .field("certificate", &self.certificate)
            .field("connections", &self.connections)
            .finish_non_exhaustive()
    }
}

impl ApnsClientBuilder {
    /// The server (default [`Endpoint::Sandbox`]).
    ///
    /// ```
    /// # use herald::apns::{ApnsClient, Endpoint};
    /// let b = ApnsClient::builder().endpoint(Endpoint::Production);
    /// # drop(b);
    /// ```
    pub fn endpoint(mut self, endpoint: Endpoint) -> Self {
        self.endpoint = endpoint;
        self
    }

    /// Token-based authentication with a `.p8` key (replaces a certificate).
    ///
    /// ```
    /// # use herald::apns::{ApnsClient, TokenKey};
    /// # let tmp: tempfile::TempDir = include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/apns/doc_p8.rs"));
    /// # let dir = tmp.path();
    /// let key = TokenKey::from_p8_file(dir.join("AuthKey_ABC1234567.p8"), "ABC1234567", "TEAM123456")?;
    /// let client = ApnsClient::builder().token_auth(key.clone()).build()?;
    /// assert_eq!(key.tokens_minted(), 0); // the first token is minted for the first push
    /// # drop(client);
    /// # Ok::<(), herald::apns::Error>(())
    /// ```
    pub fn token_auth(mut self, key: TokenKey) -> Self {
        self.token = Some(key);
        self.certificate = None;
        self
    }

    /// Certificate-based authentication (replaces a token key).
    ///
    /// ```
    /// # use herald::apns::{ApnsClient, Certificate, ErrorKind, Payload, Push};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), herald::apns::Error> {
    /// # let tmp = tempfile::tempdir().unwrap();
    /// # let dir = tmp.path();
    /// # let p12: Vec<u8> = include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/apns/doc_push_p12.rs"));
    /// # std::fs::write(dir.join("push.p12"), p12).unwrap();
    /// # let closed: herald::apns::Endpoint = include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/apns/doc_closed_endpoint.rs"));
    /// let client = ApnsClient::builder()
    ///     .certificate(Certificate::from_p12_file(dir.join("push.p12"), "pw")?)
    /// #   .endpoint(closed)
    ///     .build()?;
    /// let push = Push::builder("a1b2c3d4", "com.example.app").payload(&Payload::alert("Hello"))?.build()?;
    /// let outcome = client.send(push).await;
    /// # assert!(outcome.error().is_some_and(|e| e.is_connect()), "{outcome:?}");
    ///
    /// // A topic the certificate does not cover fails before anything is sent.
    /// let other = Push::builder("a1b2c3d4", "com.other.app").payload(&Payload::alert("Hello"))?.build()?;
    /// let outcome = client.send(other).await;
    /// assert_eq!(outcome.error().map(|e| e.kind()), Some(ErrorKind::CertificateMismatch));
    /// # Ok(()) }
    /// ```
    pub fn certificate(mut self, certificate: Certificate) -> Self {
        self.certificate = Some(certificate);
        self.token = None;
        self
    }

    /// Number of HTTP/2 connections (default 1); each carries as many streams as the server allows.
    ///
    /// ```
    /// # use herald::apns::ApnsClient;
    /// let b = ApnsClient::builder().connections(4);
    /// # drop(b);
    /// ```
    pub fn connections(mut self, n: usize) -> Self {
        self.connections = n.max(1);
        self
    }

    /// DNS + TCP + proxy + TLS + HTTP/2 handshake timeout (default 10 s).
    ///
    /// ```
    /// # use herald::apns::ApnsClient;
    /// let b = ApnsClient::builder().connect_timeout(std::time::Duration::from_secs(3));
    /// # drop(b);
    /// ```
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// Timeout of one attempt, from opening the stream to the end of the answer (default 20 s).
    /// A push that times out fails with [`Error::is_timeout`] and is not retried (APNs may have it).
    ///
    /// ```
    /// # use herald::apns::ApnsClient;
    /// let b = ApnsClient::builder().request_timeout(std::time::Duration::from_secs(5));
    /// # drop(b);
    /// ```
    pub fn request_timeout(mut self, t: Duration) -> Self {
        self.request_timeout = t;
        self
    }

    /// Send a PING after this long without traffic (default 10 minutes).
    ///
    /// ```
    /// # use herald::apns::ApnsClient;
    /// let b = ApnsClient::builder().ping_interval(std::time::Duration::from_secs(60));
    /// # drop(b);
    /// ```
    pub fn ping_interval(mut self, t: Duration) -> Self {
        self.ping_interval = t;
        self
    }

    /// How long to wait for a PING's answer before dropping the connection (default 10 s).
    ///
    /// ```
    /// # use herald::apns::ApnsClient;
    /// let b = ApnsClient::builder().ping_timeout(std::time::Duration::from_secs(5));
    /// # drop(b);
    /// ```
    pub fn ping_timeout(mut self, t: Duration) -> Self {
        self.ping_timeout = t;
        self
    }

    /// Close a connection after this long without traffic (default: keep it open; Apple
    /// prefers long-lived connections, and idle ones are kept alive by PINGs).
    ///
    /// ```
    /// # use herald::apns::ApnsClient;
    /// let b = ApnsClient::builder().idle_timeout(std::time::Duration::from_secs(3600));
    /// # drop(b);
    /// ```
    pub fn idle_timeout(mut self, t: Duration) -> Self {
        self.idle_timeout = Some(t);
        self
    }

    /// The retry policy for 429 and 5xx answers.
    ///
    /// ```
    /// # use herald::apns::{ApnsClient, RetryPolicy};
    /// let b = ApnsClient::builder().retry(RetryPolicy::none());
    /// # drop(b);
    /// ```
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Tunnel through an HTTP proxy with CONNECT: `http://host:port` (or `host:port`; an IPv6
    /// address in brackets). The push itself stays TLS end to end; the proxy sees only the
    /// host it is asked to connect to. [`build`](Self::build) refuses anything else with
    /// [`ErrorKind::Config`], never repeating the value (it may hold a password): another
    /// scheme, credentials (`user:password@`, which herald would not send), a path or query,
    /// or a missing port. [`Proxy`](super::Proxy) parses the same way, for a program that
    /// wants to refuse a bad proxy where it reads its configuration.
    ///
    /// ```
    /// # use herald::apns::{ApnsClient, ErrorKind};
    /// let b = ApnsClient::builder().proxy("http://proxy.internal:3128");
    /// # drop(b);
    /// let no_port = ApnsClient::builder().proxy("http://proxy.internal").build();
    /// assert_eq!(no_port.unwrap_err().kind(), ErrorKind::Config);
    /// ```
    pub fn proxy(mut self, url: impl Into<String>) -> Self {
        self.proxy = Some(url.into());
        self
    }

    /// A metrics hook.
    ///
    /// ```
    /// # use herald::apns::{ApnsClient, Counters};
    /// let b = ApnsClient::builder().metrics(std::sync::Arc::new(Counters::default()));
    /// # drop(b);
    /// ```
    pub fn metrics(mut self, metrics: Arc<dyn Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Builds the client. No connection is opened until the first push (nor any token minted).
    /// Under certificate authentication, a certificate whose Apple extensions name environments
    /// other than the endpoint's is refused here ([`ErrorKind::CertificateMismatch`]).
    ///
    /// ```
    /// # use herald::apns::{ApnsClient, Endpoint};
    /// let bad = ApnsClient::builder().endpoint(Endpoint::custom("https://x:1").unwrap().with_ca_pem("junk")).build();
    /// assert!(bad.is_err());
    /// ```
    pub fn build(self) -> Result<ApnsClient, Error> {
        let mut roots = rustls::RootCertStore::empty();
        let custom_ca = match &self.endpoint {
            Endpoint::Custom(c) => c.ca_pem.clone(),
            _ => None,
        };
        match custom_ca {
            Some(pem) => {
                let mut n = 0;
                for cert in CertificateDer::pem_slice_iter(&pem) {
                    let cert = cert.map_err(|e| {
                        Error::new(ErrorKind::Config, "the CA PEM cannot be read")
                            .with_source(Msg(e.to_string()))
                    })?;
                    roots.add(cert).map_err(|e| {
                        Error::new(ErrorKind::Config, "the CA certificate is not usable")
                            .with_source(e)
                    })?;
                    n += 1;
                }
                if n == 0 {
                    return Err(Error::new(
                        ErrorKind::Config,
                        "the CA PEM holds no certificate",
                    ));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::new(ErrorKind::Config, "TLS setup failed").with_source(e))?
            .with_root_certificates(roots);
        if let (Some(c), Some(environment)) = (&self.certificate, self.endpoint.environment()) {
            c.check_environment(environment)?;
        }
        let mut tls = match &self.certificate {
            Some(c) => builder
                .with_client_auth_cert(c.chain.clone(), c.key.clone_key())
                .map_err(|e| {
                    Error::new(
                        ErrorKind::BadKey,
                        "the client certificate or key is not usable",
                    )
                    .with_source(e)
                })?,
            None => builder.with_no_client_auth(),
        };
        tls.alpn_protocols = vec![b"h2".to_vec()];

        let (host, port) = (self.endpoint.host().to_owned(), self.endpoint.port());
        let (server_name, authority) = target(&host, port)?;
        let (m_host, m_port) = self.endpoint.channel_management();
        let (m_server_name, m_authority) = target(&m_host, m_port)?;
        let proxy = self
            .proxy
            .as_deref()
            .map(str::parse::<super::Proxy>)
            .transpose()?;
        // Every client reports to the `metrics` facade, then to the user's hook.
        let metrics: Arc<dyn Metrics> = Arc::new(super::metrics::Facade { user: self.metrics });
        let cfg = PoolConfig {
            host,
            port,
            server_name,
            authority,
            tls: Arc::new(tls),
            proxy,
            connections: self.connections,
            connect_timeout: self.connect_timeout,
            request_timeout: self.request_timeout,
            ping_interval: self.ping_interval,
            ping_timeout: self.ping_timeout,
            idle_timeout: self.idle_timeout,
            token: self.token.clone(),
            metrics: Some(metrics.clone()),
        };
        let manage_config = PoolConfig {
            host: m_host,
            port: m_port,
            server_name: m_server_name,
            authority: m_authority,
            connections: 1,
            metrics: None,
            ..cfg.clone()
        };
        Ok(ApnsClient {
            inner: Arc::new(Inner {
                pool_config: cfg,
                pool: OnceLock::new(),
                manage_config,
                manage_pool: OnceLock::new(),
                token: self.token,
                certificate: self.certificate.as_ref().map(Certificate::scope),
                retry: self.retry,
                metrics: Some(metrics),
                closed: AtomicBool::new(false),
                admitted: AtomicUsize::new(0),
                drained: Notify::new(),
            }),
        })
    }
}

struct Inner {
    pool_config: PoolConfig,
    pool: OnceLock<Pool>,
    manage_config: PoolConfig,
    manage_pool: OnceLock<Pool>,
    token: Option<TokenKey>,
    /// Under certificate auth: the topics the certificate covers (checked before sending).
    certificate: Option<CertificateScope>,
    retry: RetryPolicy,
    metrics: Option<Arc<dyn Metrics>>,
    closed: AtomicBool,
    admitted: AtomicUsize,
    drained: Notify,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for p in [self.pool.get(), self.manage_pool.get()]
            .into_iter()
            .flatten()
        {
            p.begin_close();
        }
    }
}

/// TLS server name and HTTP/2 authority for `host:port`.
fn target(host: &str, port: u16) -> Result<(ServerName<'static>, http::uri::Authority), Error> {
    let server_name = ServerName::try_from(host.to_owned()).map_err(|_| {
        Error::new(
            ErrorKind::Config,
            format!("{host:?} is not a valid server name"),
        )
    })?;
    let authority_str = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let authority: http::uri::Authority = authority_str.parse().map_err(|_| {
        Error::new(
            ErrorKind::Config,
            format!("{authority_str:?} is not a valid authority"),
        )
    })?;
    Ok((server_name, authority))
}

/// The APNs client: a pool of HTTP/2 connections, shared by clones.
///
/// Every push ends in exactly one [`PushOutcome`]. See the [module docs](crate::apns).
///
/// ```
/// use herald::apns::{ApnsClient, Endpoint, Payload, Push, TokenKey};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), herald::apns::Error> {
/// # let tmp: tempfile::TempDir = include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/apns/doc_p8.rs"));
/// # let dir = tmp.path();
/// # let closed: herald::apns::Endpoint = include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/apns/doc_closed_endpoint.rs"));
/// let client = ApnsClient::builder()
///     .endpoint(Endpoint::Production)
/// #   .endpoint(closed)
///     .token_auth(TokenKey::from_p8_file(dir.join("AuthKey_ABC1234567.p8"), "ABC1234567", "TEAM123456")?)
///     .connections(2)
///     .build()?;
/// let push = Push::builder("a1b2c3", "com.example.app").payload(&Payload::alert("Hello"))?.build()?;
/// let outcome = client.send(push).await;
/// println!("{outcome:?}");
/// # assert!(outcome.error().is_some_and(|e| e.is_connect()), "{outcome:?}");
/// client.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ApnsClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ApnsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApnsClient")
            .field("token", &self.inner.token)
            .field("retry", &self.inner.retry)
            .finish_non_exhaustive()
    }
}

struct AdmitGuard<'a>(&'a Inner);

impl Drop for AdmitGuard<'_> {
    fn drop(&mut self) {
        if self.0.admitted.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.drained.notify_waiters();
        }
    }
}

impl ApnsClient {
    /// Starts configuring a client.
    ///
    /// ```
    /// use herald::apns::{ApnsClient, Endpoint};
    /// let client = ApnsClient::builder().endpoint(Endpoint::Sandbox).build().unwrap();
    /// # drop(client);
    /// ```
    pub fn builder() -> ApnsClientBuilder {
        ApnsClientBuilder {
            endpoint: Endpoint::Sandbox,
            token: None,
            certificate: None,
            connections: 1,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(20),
            ping_interval: Duration::from_secs(600),
            ping_timeout: Duration::from_secs(10),
            idle_timeout: None,
            retry: RetryPolicy::default(),
            proxy: None,
            metrics: None,
        }
    }

    pub(super) fn manage_pool(&self) -> &Pool {
        self.inner
            .manage_pool
            .get_or_init(|| Pool::start(self.inner.manage_config.clone()))
    }

    pub(super) fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    pub(super) fn pool(&self) -> &Pool {
        self.inner
            .pool
            .get_or_init(|| Pool::start(self.inner.pool_config.clone()))
    }

    /// Sends one push and waits for its outcome (retries included). A rejected or failed
    /// outcome hands the push back ([`PushOutcome::into_push`]), so it can be corrected or
    /// queued again.
    ///
    /// Must be called within a tokio runtime. Never panics on anything a peer sends.
    ///
    /// ```
    /// # use herald::apns::{ApnsClient, Push, PushOutcome};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// # let closed: herald::apns::Endpoint = include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/apns/doc_closed_endpoint.rs"));
    /// # let client = ApnsClient::builder().endpoint(closed).build().unwrap();
    /// # let push = Push::builder("a1b2c3d4", "com.example.app").build().unwrap();
    /// let mut retry_later = Vec::new();
    /// match client.send(push).await {
    ///     PushOutcome::Accepted(a) => println!("accepted {}", a.apns_id),
    ///     PushOutcome::Rejected(r) if r.reason.invalidates_token() => println!("delete the token"),
    ///     PushOutcome::Rejected(r) => println!("rejected: {} ({})", r.reason, r.reason.explain()),
    ///     PushOutcome::Failed(f) => {
    ///         println!("failed: {}", f.error);
    /// #       assert!(f.error.is_connect(), "{:?}", f.error);
    ///         retry_later.push(f.push);
    ///     }
    ///     _ => {}
    /// }
    /// assert_eq!(retry_later[0].device_token(), "a1b2c3d4"); // the failed push came back
    /// # }
    /// ```
    pub async fn send(&self, push: Push) -> PushOutcome {
        let span = tracing::debug_span!(
            "apns.send",
            apns_id = %push.apns_id(),
            topic = %push.topic(),
            token = %crate::apns::token_prefix(push.device_token()),
            push_type = push.push_type().as_str(),
        );
        let answer = self.send_inner(&push).instrument(span).await;
        answer.with(push)
    }

    async fn send_inner(&self, push: &Push) -> Answer {
        if self.inner.token.is_none()
            && matches!(
                push.push_type(),
                PushType::Location | PushType::LiveActivity
            )
        {
            let e = Error::new(
                ErrorKind::InvalidPush,
                format!(
                    "{} pushes need token authentication (APNs answers TopicDisallowed under a certificate)",
                    push.push_type().as_str()
                ),
            );
            if let Some(m) = self.inner.metrics.as_deref() {
                m.sent(push);
                m.failed(push, &e);
            }
            return Answer::Failed(e);
        }
        if let Some(Err(e)) = self
            .inner
            .certificate
            .as_ref()
            .map(|c| c.check_topic(push.topic()))
        {
            if let Some(m) = self.inner.metrics.as_deref() {
                m.sent(push);
                m.failed(push, &e);
            }
            return Answer::Failed(e);
        }
        let spec = Arc::new(push_request(push));
        self.deliver(spec, push.apns_id(), Some(push), self.pool())
            .await
    }

    /// Sends one request with Apple's retry table until it has its one outcome.
    pub(super) async fn deliver(
        &self,
        spec: Arc<RequestSpec>,
        own_id: &str,
        push: Option<&Push>,
        pool: &Pool,
    ) -> Answer {
        let inner = &*self.inner;
        let metrics = inner.metrics.as_deref().zip(push);
        if let Some((m, push)) = metrics {
            m.sent(push);
        }
        if inner.closed.load(Ordering::Acquire) {
            let e = Error::new(ErrorKind::Shutdown, "the client is shut down");
            if let Some((m, push)) = metrics {
                m.failed(push, &e);
            }
            return Answer::Failed(e);
        }
        inner.admitted.fetch_add(1, Ordering::AcqRel);
        let _guard = AdmitGuard(inner);
        let started = Instant::now();
        let mut retries = 0u32;
        let mut unsent = 0u32;
        let mut reminted = false;
        let mut requeue = Requeue::Back;
        let outcome = loop {
            let attempt = pool.execute(&spec, requeue).await;
            requeue = Requeue::Back;
            match attempt {
                Attempt::Response {
                    status,
                    headers,
                    body,
                    token,
                    conn,
                } => {
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned)
                    };
                    let apns_id = header("apns-id").unwrap_or_else(|| own_id.to_owned());
                    if status == 200 {
                        if let Some((m, push)) = metrics {
                            m.accepted(push, started.elapsed());
                        }
                        break Answer::Accepted(Accepted {
                            apns_id,
                            apns_unique_id: header("apns-unique-id"),
                        });
                    }
                    let (reason, timestamp) = parse_error_body(status, &body);
                    if reason == Reason::ExpiredProviderToken
                        && !reminted
                        && let (Some(key), Some(token)) = (&inner.token, &token)
                    {
                        reminted = true;
                        key.retire(token);
                        // A new token on the same connection within 20 minutes of the last one
                        // draws TooManyProviderTokenUpdates: carry the new token on a new connection.
                        conn.retire();
                        if let Some((m, push)) = metrics {
                            m.retried(push, RetryCause::TokenExpired);
                        }
                        tracing::debug!("ExpiredProviderToken: retrying once with a new token");
                        continue;
                    }
                    let retryable = (status == 429 || status >= 500) && !reason.is_permanent();
                    if retryable {
                        if retries < inner.retry.max_retries {
                            if let Some((m, push)) = metrics {
                                m.retried(
                                    push,
                                    RetryCause::Rejected {
                                        status,
                                        reason: &reason,
                                    },
                                );
                            }
                            let delay = inner.retry.delay(retries);
                            retries += 1;
                            tracing::debug!(status, %reason, ?delay, retries, "retrying");
                            tokio::time::sleep(delay).await;
                            continue;
                        }
                        let e = Error::new(
                            ErrorKind::RetriesExhausted,
                            format!(
                                "APNs did not take the push after {retries} retries; the last \
                                 answer was {status} {reason}"
                            ),
                        )
                        .with_apns(status, reason);
                        if let Some((m, push)) = metrics {
                            m.failed(push, &e);
                        }
                        break Answer::Failed(e);
                    }
                    if let Some((m, push)) = metrics {
                        m.rejected(push, status, &reason);
                    }
                    break Answer::Rejected {
                        apns_id,
                        status,
                        reason,
                        timestamp,
                    };
                }
                Attempt::Unsent {
                    error,
                    refused_by: None,
                } => {
                    // No connection could be made: counts against the retry budget.
                    if retries < inner.retry.max_retries {
                        if let Some((m, push)) = metrics {
                            m.retried(push, RetryCause::Unsent(&error));
                        }
                        tokio::time::sleep(inner.retry.delay(retries)).await;
                        retries += 1;
                        continue;
                    }
                    if let Some((m, push)) = metrics {
                        m.failed(push, &error);
                    }
                    break Answer::Failed(error);
                }
                Attempt::Unsent {
                    error,
                    refused_by: refused_by @ Some(_),
                } => {
                    // Refused or above a GOAWAY's last stream: straight to the head of the
                    // queue, for another connection than the one that refused it (that one
                    // only takes it back when no other connection can be had).
                    if unsent < 8 {
                        if let Some((m, push)) = metrics {
                            m.retried(push, RetryCause::Unsent(&error));
                        }
                        if unsent >= 2 {
                            tokio::time::sleep(inner.retry.delay(unsent - 2)).await;
                        }
                        unsent += 1;
                        requeue = Requeue::Front { avoid: refused_by };
                        continue;
                    }
                    if let Some((m, push)) = metrics {
                        m.failed(push, &error);
                    }
                    break Answer::Failed(error);
                }
                Attempt::Failed(error) => {
                    if let Some((m, push)) = metrics {
                        m.failed(push, &error);
                    }
                    break Answer::Failed(error);
                }
            }
        };
        match &outcome {
            Answer::Accepted(_) => tracing::debug!("accepted"),
            Answer::Rejected { status, reason, .. } => {
                tracing::debug!(status, %reason, "rejected")
            }
            Answer::Failed(e) => tracing::debug!(error = %e, "failed"),
        }
        outcome
    }

    /// Sends many pushes, at most `concurrency` at a time, and yields `(push, outcome)` for every
    /// one of them as they complete (not in input order). Memory stays bounded by `concurrency`
    /// however long the input is; dropping the stream stops taking new pushes.
    ///
    /// ```
    /// # use herald::apns::{ApnsClient, Push};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// # let closed: herald::apns::Endpoint = include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/apns/doc_closed_endpoint.rs"));
    /// # let client = ApnsClient::builder().endpoint(closed).build().unwrap();
    /// # let pushes: Vec<Push> = (1..=3)
    /// #     .map(|i| Push::builder(format!("a1b2c3d{i}"), "com.example.app").build().unwrap())
    /// #     .collect();
    /// let mut outcomes = client.send_all(pushes, 256);
    /// let mut unsent = Vec::new();
    /// while let Some((push, outcome)) = outcomes.next().await {
    ///     if let Some(reason) = outcome.reason() {
    ///         println!("{}: {reason}", push.device_token());
    ///     } else if outcome.error().is_some_and(|e| e.is_connect()) {
    ///         unsent.push(push); // no connection: nothing was sent, safe to send again
    ///     }
    /// }
    /// # assert_eq!(unsent.len(), 3);
    /// # }
    /// ```
    pub fn send_all<I>(&self, pushes: I, concurrency: usize) -> Outcomes
    where
        I: IntoIterator<Item = Push>,
        I::IntoIter: Send + 'static,
    {
        let mut iter = pushes.into_iter();
        self.send_source(concurrency, move || std::future::ready(iter.next()))
    }

    /// Like [`ApnsClient::send_all`], for pushes that arrive over time: takes them from a
    /// `Stream` (a channel receiver, a database cursor...) only as fast as they can be sent.
    ///
    /// ```
    /// # use herald::apns::{ApnsClient, Push};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), herald::apns::Error> {
    /// # let closed: herald::apns::Endpoint = include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/apns/doc_closed_endpoint.rs"));
    /// # let client = ApnsClient::builder().endpoint(closed).build().unwrap();
    /// let (queue, pushes) = futures::channel::mpsc::unbounded::<Push>();
    /// let mut outcomes = client.send_stream(pushes, 256);
    /// queue.unbounded_send(Push::builder("a1b2c3d4", "com.example.app").build()?).unwrap();
    /// drop(queue); // the stream ends, and so do the outcomes once every push has one
    /// # let mut failed = 0;
    /// while let Some((push, outcome)) = outcomes.next().await {
    ///     if !outcome.is_accepted() {
    ///         println!("{} not accepted: {outcome:?}", push.apns_id());
    /// #       assert!(outcome.error().is_some_and(|e| e.is_connect()), "{outcome:?}");
    /// #       failed += 1;
    ///     }
    /// }
    /// # assert_eq!(failed, 1);
    /// # Ok(()) }
    /// ```
    pub fn send_stream<S>(&self, pushes: S, concurrency: usize) -> Outcomes
    where
        S: futures_core::Stream<Item = Push> + Send + Unpin + 'static,
    {
        let pushes = Arc::new(tokio::sync::Mutex::new(pushes));
        self.send_source(concurrency, move || {
            let pushes = pushes.clone();
            async move {
                let mut s = pushes.lock().await;
                std::future::poll_fn(|cx| Pin::new(&mut *s).poll_next(cx)).await
            }
        })
    }

    fn send_source<F, Fut>(&self, concurrency: usize, mut next: F) -> Outcomes
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Option<Push>> + Send,
    {
        let concurrency = concurrency.max(1);
        let (tx, rx) = mpsc::channel(concurrency);
        let client = self.clone();
        tokio::spawn(async move {
            let permits = Arc::new(tokio::sync::Semaphore::new(concurrency));
            loop {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let Some(push) = next().await else {
                    break;
                };
                if tx.is_closed() {
                    break;
                }
                let tx = tx.clone();
                let client = client.clone();
                tokio::spawn(async move {
                    let outcome = client.send(push.clone()).await;
                    let _ = tx.send((push, outcome)).await;
                    drop(permit);
                });
            }
        });
        Outcomes { rx }
    }

    /// Stops taking pushes (later `send`s fail with [`Error::is_shutdown`]), waits for every
    /// push already sent to end (retries included), then closes the connections.
    ///
    /// ```
    /// # use herald::apns::ApnsClient;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let client = ApnsClient::builder().build().unwrap();
    /// client.shutdown().await;
    /// # }
    /// ```
    pub async fn shutdown(&self) {
        let inner = &*self.inner;
        inner.closed.store(true, Ordering::Release);
        loop {
            let drained = inner.drained.notified();
            if inner.admitted.load(Ordering::Acquire) == 0 {
                break;
            }
            drained.await;
        }
        for pool in [inner.pool.get(), inner.manage_pool.get()]
            .into_iter()
            .flatten()
        {
            pool.close().await;
        }
    }
}

/// The outcomes of [`ApnsClient::send_all`]: a `Stream` of `(Push, PushOutcome)`.
///
/// ```
/// # use herald::apns::{ApnsClient, Push};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// # let closed: herald::apns::Endpoint = include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/apns/doc_closed_endpoint.rs"));
/// # let client = ApnsClient::builder().endpoint(closed).build().unwrap();
/// # let pushes: Vec<Push> = (1..=2)
/// #     .map(|i| Push::builder(format!("a1b2c3d{i}"), "com.example.app").build().unwrap())
/// #     .collect();
/// use futures::StreamExt as _;
///
/// let outcomes: Vec<_> = client.send_all(pushes, 64).collect().await;
/// assert_eq!(outcomes.len(), 2); // exactly one outcome per push
/// # assert!(outcomes.iter().all(|(_, o)| o.error().is_some_and(|e| e.is_connect())));
/// # }
/// ```
#[derive(Debug)]
pub struct Outcomes {
    rx: mpsc::Receiver<(Push, PushOutcome)>,
}

impl Outcomes {
    /// The next outcome, or `None` when every push has one.
    ///
    /// ```
    /// # use herald::apns::{ApnsClient, Push};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// # let closed: herald::apns::Endpoint = include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/apns/doc_closed_endpoint.rs"));
    /// # let client = ApnsClient::builder().endpoint(closed).build().unwrap();
    /// # let pushes: Vec<Push> = (1..=2)
    /// #     .map(|i| Push::builder(format!("a1b2c3d{i}"), "com.example.app").build().unwrap())
    /// #     .collect();
    /// let mut outcomes = client.send_all(pushes, 8);
    /// let mut seen = 0;
    /// while let Some((_push, _outcome)) = outcomes.next().await {
    ///     seen += 1;
    /// }
    /// assert_eq!(seen, 2); // one outcome per push, then `None`
    /// # }
    /// ```
    pub async fn next(&mut self) -> Option<(Push, PushOutcome)> {
        self.rx.recv().await
    }
}

impl futures_core::Stream for Outcomes {
    type Item = (Push, PushOutcome);

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

fn push_request(push: &Push) -> RequestSpec {
    let p = &*push.inner;
    let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::with_capacity(6);
    // Values were validated when the push was built; a failure here just omits the header.
    let mut add = |name: &'static str, value: &str, sensitive: bool| {
        if let Ok(mut v) = HeaderValue::from_str(value) {
            v.set_sensitive(sensitive);
            headers.push((HeaderName::from_static(name), v));
        }
    };
    add("apns-push-type", p.push_type.as_str(), false);
    add("apns-topic", &p.topic, false);
    add("apns-priority", &p.priority.as_u8().to_string(), false);
    // Unique per push: never indexed, so it does not churn the HPACK table.
    add("apns-id", &p.apns_id, true);
    if let Some(e) = p.expiration {
        add("apns-expiration", &e.header_value(), false);
    }
    if let Some(c) = &p.collapse_id {
        add("apns-collapse-id", c, false);
    }
    RequestSpec {
        method: Method::POST,
        path: format!("/3/device/{}", p.device_token),
        headers,
        body: Bytes::clone(&p.body),
        answer: BodyUse::Outcome,
        uri: std::sync::OnceLock::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_send_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<ApnsClient>();
        check::<Outcomes>();
        check::<ApnsClientBuilder>();
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        let p = RetryPolicy {
            max_retries: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        };
        assert!(p.delay(0) <= Duration::from_millis(100));
        assert!(p.delay(0) >= Duration::from_millis(50));
        assert!(p.delay(30) <= Duration::from_secs(1));
        assert!(p.delay(30) >= Duration::from_millis(500));
    }
}
