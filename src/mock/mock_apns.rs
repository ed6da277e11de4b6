//! The public handle: start, configure, script, inspect.

use super::clock::{Clock, SystemClock};
use super::environment::Environment;
use super::error::{Kind, MockError};
use super::fault::{Fault, Latency};
use super::keys::{KeyEntry, generate_p8, parse_public_key};
use super::record::{Endpoint, RecordedRequest, Stats};
use super::server::accept_loop;
use super::state::{Config, ConnAuth, ConnCmd, Shared};
use super::tls::{Authority, PushCertificate, PushCertificateOptions};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// Configures a [`MockApns`] before it starts. Every setting has a default; the `set_*` methods
/// on [`MockApns`] change the same settings while it runs.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), herald::mock::MockError> {
/// use herald::mock::{Latency, MockApns, MockClock};
/// use std::time::Duration;
///
/// let clock = MockClock::starting_now();
/// let mock = MockApns::builder()
///     .clock(clock.clone())
///     .max_streams(100)
///     .drop_to_one_after_rejection(true)
///     .goaway_after(1_000)
///     .latency(Latency::Fixed(Duration::from_millis(2)))
///     .accept_unknown_tokens(true)
///     .start()
///     .await?;
/// assert!(mock.addr().ip().is_loopback());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct MockApnsBuilder {
    bind: SocketAddr,
    clock: Arc<dyn Clock>,
    environment: Environment,
    config: Config,
    server_names: Vec<String>,
    client_cas: Vec<String>,
}

impl Default for MockApnsBuilder {
    fn default() -> Self {
        MockApnsBuilder {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            clock: Arc::new(SystemClock),
            environment: Environment::default(),
            config: Config::default(),
            server_names: Vec::new(),
            client_cas: Vec::new(),
        }
    }
}

impl MockApnsBuilder {
    /// The address to listen on. Default `127.0.0.1:0` (loopback, a free port). Pass another
    /// address only on purpose: the mock accepts anything its keys sign.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use herald::mock::MockApns;
    /// let mock = MockApns::builder().bind("127.0.0.1:0".parse()?).start().await?;
    /// assert_eq!(mock.addr().ip().to_string(), "127.0.0.1");
    /// assert_ne!(mock.port(), 0); // 0 asked for a free port
    /// # Ok(()) }
    /// ```
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// Keeps the bind address's IP and listens on `port` (0 = a free one).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use herald::mock::MockApns;
    /// // A fixed port, for a client configured outside the test (here: one that is free).
    /// let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    /// let mock = MockApns::builder().port(port).start().await?;
    /// assert_eq!(mock.port(), port);
    /// # Ok(()) }
    /// ```
    pub fn port(mut self, port: u16) -> Self {
        self.bind.set_port(port);
        self
    }

    /// The clock for token rules and timestamps. Default: [`SystemClock`]. Pass a
    /// [`MockClock`](super::MockClock) clone to move time from the test.
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
    /// use herald::mock::{MockApns, MockClock};
    /// use std::time::Duration;
    /// let clock = MockClock::starting_now();
    /// let mock = MockApns::builder().clock(clock.clone()).accept_unknown_tokens(true).start().await?;
    /// # let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
    /// # let client = ApnsClient::builder()
    /// #     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    /// #     .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
    /// #     .retry(RetryPolicy::none())
    /// #     .build()?;
    /// # let push = |token: &str| Push::builder(token, "com.example.app")
    /// #     .payload(&Payload::alert("Hi")).and_then(|b| b.build()).unwrap();
    /// // `client` is herald's ApnsClient for mock.url(), trusting mock.ca_pem(), with a key from
    /// // mock.generate_key; `push(token)` builds an alert for com.example.app.
    /// // The mock's clock runs two hours ahead of the client's: its tokens look expired.
    /// clock.advance(Duration::from_secs(2 * 3600));
    /// let _ = client.send(push(&"a1".repeat(32))).await;
    /// let answer = mock.next_push(Duration::from_secs(10)).await.unwrap();
    /// assert_eq!(answer.reason.as_deref(), Some("ExpiredProviderToken"));
    /// # Ok(()) }
    /// ```
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The environment the mock answers as (APNS.md §6). Default [`Environment::Sandbox`], the
    /// development environment: accepted pushes carry `apns-unique-id`.
    /// [`Environment::Production`] sends no `apns-unique-id`. In either, a push certificate whose
    /// environment extensions list only the other environment is answered 403
    /// BadCertificateEnvironment (see [`PushCertificateOptions`]), and a provider key restricted
    /// to the other environment 403 BadEnvironmentKeyIdInToken (see
    /// [`MockApns::restrict_key_environment`]).
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use herald::apns::{ApnsClient, Certificate, Endpoint, Payload, Push, PushOutcome, RetryPolicy};
    /// use herald::mock::{Environment, MockApns, PushCertificateOptions};
    /// use std::time::Duration;
    ///
    /// let mock = MockApns::builder().environment(Environment::Production).start().await?;
    /// mock.register_device(&"a1".repeat(32), "com.example.app");
    /// let send = |options: PushCertificateOptions| {
    ///     let cert = mock.issue_push_certificate_with("com.example.app", &options);
    ///     let mock = &mock;
    ///     async move {
    ///         let cert = cert?;
    ///         let client = ApnsClient::builder()
    ///             .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    ///             .certificate(Certificate::from_pem(cert.cert_pem(), cert.key_pem())?)
    ///             .retry(RetryPolicy::none())
    ///             .build()?;
    ///         let push = Push::builder("a1".repeat(32), "com.example.app")
    ///             .payload(&Payload::alert("Hi"))?
    ///             .build()?;
    ///         Ok::<_, Box<dyn std::error::Error>>(client.send(push).await)
    ///     }
    /// };
    /// // A production certificate is accepted, without the development-only apns-unique-id.
    /// let PushOutcome::Accepted(accepted) = send(PushCertificateOptions::production_only()).await?
    /// else {
    ///     panic!("not accepted");
    /// };
    /// assert_eq!(accepted.apns_unique_id, None);
    /// // A sandbox-only certificate is for the other environment.
    /// assert!(!send(PushCertificateOptions::sandbox_only()).await?.is_accepted());
    /// let seen = mock.requests();
    /// assert_eq!(seen[1].reason.as_deref(), Some("BadCertificateEnvironment"));
    /// assert_eq!(seen[1].status, 403);
    /// # Ok(()) }
    /// ```
    pub fn environment(mut self, environment: Environment) -> Self {
        self.environment = environment;
        self
    }

    /// SETTINGS_MAX_CONCURRENT_STREAMS after the ramp (and from the start under certificate
    /// auth). Default 1000.
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
    /// use herald::mock::MockApns;
    /// let mock = MockApns::builder().max_streams(100).start().await?;
    /// # let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
    /// # let client = ApnsClient::builder()
    /// #     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    /// #     .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
    /// #     .retry(RetryPolicy::none())
    /// #     .build()?;
    /// # let push = |token: &str| Push::builder(token, "com.example.app")
    /// #     .payload(&Payload::alert("Hi")).and_then(|b| b.build()).unwrap();
    /// // `client` is herald's ApnsClient for mock.url(), trusting mock.ca_pem(), with a key from
    /// // mock.generate_key; `push(token)` builds an alert for com.example.app.
    /// let device = "a1".repeat(32);
    /// mock.register_device(&device, "com.example.app");
    /// // Token auth: 1 stream until a push is accepted, then the configured limit.
    /// assert!(client.send(push(&device)).await.is_accepted());
    /// let stats = mock.stats();
    /// let conn = stats.connections.values().next().unwrap();
    /// assert_eq!(conn.max_streams, 100);
    /// # Ok(()) }
    /// ```
    pub fn max_streams(mut self, max: u32) -> Self {
        self.config.max_streams = max.max(1);
        self
    }

    /// Drop the advertised limit to 1 after each rejected push, until the next accepted one.
    /// Default off.
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
    /// use herald::mock::MockApns;
    /// let mock = MockApns::builder().drop_to_one_after_rejection(true).start().await?;
    /// # let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
    /// # let client = ApnsClient::builder()
    /// #     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    /// #     .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
    /// #     .retry(RetryPolicy::none())
    /// #     .build()?;
    /// # let push = |token: &str| Push::builder(token, "com.example.app")
    /// #     .payload(&Payload::alert("Hi")).and_then(|b| b.build()).unwrap();
    /// // `client` is herald's ApnsClient for mock.url(), trusting mock.ca_pem(), with a key from
    /// // mock.generate_key; `push(token)` builds an alert for com.example.app.
    /// let device = "a1".repeat(32);
    /// mock.register_device(&device, "com.example.app");
    /// assert!(client.send(push(&device)).await.is_accepted());
    /// assert!(!client.send(push(&"ff".repeat(32))).await.is_accepted()); // unknown: BadDeviceToken
    /// let stats = mock.stats();
    /// assert_eq!(stats.connections.values().next().unwrap().max_streams, 1);
    /// # Ok(()) }
    /// ```
    pub fn drop_to_one_after_rejection(mut self, on: bool) -> Self {
        self.config.drop_to_one_after_rejection = on;
        self
    }

    /// Gracefully GOAWAY (`{"reason":"Shutdown"}`) each connection after it has received `n`
    /// requests. Default: never.
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
    /// use herald::mock::MockApns;
    /// let mock = MockApns::builder().goaway_after(2).start().await?;
    /// # let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
    /// # let client = ApnsClient::builder()
    /// #     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    /// #     .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
    /// #     .retry(RetryPolicy::none())
    /// #     .build()?;
    /// # let push = |token: &str| Push::builder(token, "com.example.app")
    /// #     .payload(&Payload::alert("Hi")).and_then(|b| b.build()).unwrap();
    /// // `client` is herald's ApnsClient for mock.url(), trusting mock.ca_pem(), with a key from
    /// // mock.generate_key; `push(token)` builds an alert for com.example.app.
    /// let device = "a1".repeat(32);
    /// mock.register_device(&device, "com.example.app");
    /// for _ in 0..3 {
    ///     // The client moves to a new connection after the GOAWAY: every push is accepted.
    ///     assert!(client.send(push(&device)).await.is_accepted());
    /// }
    /// assert_eq!(mock.stats().goaways, 1);
    /// assert_eq!(mock.stats().connections_opened, 2);
    /// # Ok(()) }
    /// ```
    pub fn goaway_after(mut self, n: u64) -> Self {
        self.config.goaway_after = Some(n.max(1));
        self
    }

    /// Close connections idle for this long (no request, no PING; real time) with a graceful
    /// GOAWAY `{"reason":"IdleTimeout"}`. Default: never.
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
    /// use herald::mock::MockApns;
    /// use std::time::Duration;
    /// let mock = MockApns::builder().idle_timeout(Duration::from_millis(100)).start().await?;
    /// # let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
    /// # let client = ApnsClient::builder()
    /// #     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    /// #     .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
    /// #     .retry(RetryPolicy::none())
    /// #     .build()?;
    /// # let push = |token: &str| Push::builder(token, "com.example.app")
    /// #     .payload(&Payload::alert("Hi")).and_then(|b| b.build()).unwrap();
    /// // `client` is herald's ApnsClient for mock.url(), trusting mock.ca_pem(), with a key from
    /// // mock.generate_key; `push(token)` builds an alert for com.example.app.
    /// let device = "a1".repeat(32);
    /// mock.register_device(&device, "com.example.app");
    /// assert!(client.send(push(&device)).await.is_accepted());
    /// // Nothing more is sent: the mock closes the connection with GOAWAY IdleTimeout.
    /// let mut waited = Duration::ZERO;
    /// while mock.open_connections() > 0 && waited < Duration::from_secs(30) {
    ///     tokio::time::sleep(Duration::from_millis(20)).await;
    ///     waited += Duration::from_millis(20);
    /// }
    /// assert_eq!(mock.open_connections(), 0);
    /// assert_eq!(mock.stats().goaways, 1);
    /// # Ok(()) }
    /// ```
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.config.idle_timeout = Some(idle);
        self
    }

    /// Latency added before every answer. Default none.
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
    /// use herald::mock::{Latency, MockApns};
    /// use std::time::{Duration, Instant};
    /// let mock = MockApns::builder().latency(Latency::Fixed(Duration::from_millis(50))).start().await?;
    /// # let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
    /// # let client = ApnsClient::builder()
    /// #     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    /// #     .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
    /// #     .retry(RetryPolicy::none())
    /// #     .build()?;
    /// # let push = |token: &str| Push::builder(token, "com.example.app")
    /// #     .payload(&Payload::alert("Hi")).and_then(|b| b.build()).unwrap();
    /// // `client` is herald's ApnsClient for mock.url(), trusting mock.ca_pem(), with a key from
    /// // mock.generate_key; `push(token)` builds an alert for com.example.app.
    /// let device = "a1".repeat(32);
    /// mock.register_device(&device, "com.example.app");
    /// let started = Instant::now();
    /// assert!(client.send(push(&device)).await.is_accepted());
    /// assert!(started.elapsed() >= Duration::from_millis(50));
    /// # Ok(()) }
    /// ```
    pub fn latency(mut self, latency: Latency) -> Self {
        self.config.latency = latency;
        self
    }

    /// Fraction (0.0–1.0) of otherwise accepted pushes answered 500 InternalServerError or 503
    /// ServiceUnavailable (half each). Default 0.
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
    /// use herald::mock::MockApns;
    /// use std::time::Duration;
    /// let mock = MockApns::builder().error_rate(1.0).start().await?;
    /// # let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
    /// # let client = ApnsClient::builder()
    /// #     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    /// #     .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
    /// #     .retry(RetryPolicy::none())
    /// #     .build()?;
    /// # let push = |token: &str| Push::builder(token, "com.example.app")
    /// #     .payload(&Payload::alert("Hi")).and_then(|b| b.build()).unwrap();
    /// // `client` is herald's ApnsClient for mock.url(), trusting mock.ca_pem(), with a key from
    /// // mock.generate_key; `push(token)` builds an alert for com.example.app.
    /// let device = "a1".repeat(32);
    /// mock.register_device(&device, "com.example.app");
    /// let _ = client.send(push(&device)).await; // a 5xx: retried by default, not here
    /// let answer = mock.next_push(Duration::from_secs(10)).await.unwrap();
    /// assert!(matches!(answer.status, 500 | 503));
    /// # Ok(()) }
    /// ```
    pub fn error_rate(mut self, rate: f64) -> Self {
        self.config.error_rate = rate.clamp(0.0, 1.0);
        self
    }

    /// Accept pushes to device tokens never registered (still well-formed hex). Default off:
    /// unknown tokens answer 400 BadDeviceToken, like a token from the other environment.
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
    /// use herald::mock::MockApns;
    /// let mock = MockApns::builder().accept_unknown_tokens(true).start().await?;
    /// # let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
    /// # let client = ApnsClient::builder()
    /// #     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    /// #     .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
    /// #     .retry(RetryPolicy::none())
    /// #     .build()?;
    /// # let push = |token: &str| Push::builder(token, "com.example.app")
    /// #     .payload(&Payload::alert("Hi")).and_then(|b| b.build()).unwrap();
    /// // `client` is herald's ApnsClient for mock.url(), trusting mock.ca_pem(), with a key from
    /// // mock.generate_key; `push(token)` builds an alert for com.example.app.
    /// assert!(client.send(push(&"c3".repeat(32))).await.is_accepted()); // never registered
    /// # Ok(()) }
    /// ```
    pub fn accept_unknown_tokens(mut self, on: bool) -> Self {
        self.config.accept_unknown_tokens = on;
        self
    }

    /// How many requests the log keeps: past it the oldest are dropped (counters keep counting,
    /// see [`Stats::evicted`](super::Stats::evicted)). Default 100,000.
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
    /// use herald::mock::MockApns;
    /// let mock = MockApns::builder().record_limit(1).start().await?;
    /// # let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
    /// # let client = ApnsClient::builder()
    /// #     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    /// #     .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
    /// #     .retry(RetryPolicy::none())
    /// #     .build()?;
    /// # let push = |token: &str| Push::builder(token, "com.example.app")
    /// #     .payload(&Payload::alert("Hi")).and_then(|b| b.build()).unwrap();
    /// // `client` is herald's ApnsClient for mock.url(), trusting mock.ca_pem(), with a key from
    /// // mock.generate_key; `push(token)` builds an alert for com.example.app.
    /// let device = "a1".repeat(32);
    /// mock.register_device(&device, "com.example.app");
    /// for _ in 0..2 {
    ///     client.send(push(&device)).await;
    /// }
    /// assert_eq!(mock.requests().len(), 1); // the most recent only
    /// assert_eq!((mock.stats().requests, mock.stats().evicted), (2, 1));
    /// # Ok(()) }
    /// ```
    pub fn record_limit(mut self, n: usize) -> Self {
        self.config.record_limit = n.max(1);
        self
    }

    /// An extra DNS name or IP address for the server certificate.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use herald::mock::MockApns;
    /// // For a client that must connect by another name (a container's host name, say).
    /// let mock = MockApns::builder().server_name("apns.test").start().await?;
    /// assert!(mock.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    /// # Ok(()) }
    /// ```
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_names.push(name.into());
        self
    }

    /// Also trust client certificates issued by this CA (PEM), beside the mock's own.
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use herald::apns::{ApnsClient, Certificate, Endpoint, Payload, Push};
    /// use herald::mock::MockApns;
    ///
    /// // Push certificates issued by another mock (standing in for your own test CA).
    /// let issuer = MockApns::start().await?;
    /// let cert = issuer.issue_push_certificate("com.example.app")?;
    /// let mock = MockApns::builder().trust_client_ca_pem(issuer.ca_pem()).start().await?;
    /// mock.register_device(&"a1".repeat(32), "com.example.app");
    ///
    /// let client = ApnsClient::builder()
    ///     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    ///     .certificate(Certificate::from_pem(cert.cert_pem(), cert.key_pem())?)
    ///     .build()?;
    /// let push = Push::builder("a1".repeat(32), "com.example.app").payload(&Payload::alert("Hi"))?.build()?;
    /// assert!(client.send(push).await.is_accepted());
    /// # Ok(()) }
    /// ```
    pub fn trust_client_ca_pem(mut self, pem: impl Into<String>) -> Self {
        self.client_cas.push(pem.into());
        self
    }

    /// Generates the CA and server certificate, binds, and starts serving on the current tokio
    /// runtime. The server stops when the [`MockApns`] is dropped.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use herald::mock::MockApns;
    /// let mock = MockApns::builder().max_streams(10).start().await?;
    /// assert!(mock.url().starts_with("https://127.0.0.1:"));
    /// drop(mock); // stops the listener and closes every connection
    /// # Ok(()) }
    /// ```
    pub async fn start(self) -> Result<MockApns, MockError> {
        let authority = Authority::generate()?;
        let tls =
            authority.server_config(&self.server_names, &self.client_cas, self.environment)?;
        let listener = TcpListener::bind(self.bind)
            .await
            .map_err(|e| MockError::io("binding", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| MockError::io("local address", e))?;
        let shared = Arc::new(Shared::new(self.clock, self.environment, self.config));
        let (shutdown, rx) = watch::channel(false);
        let acceptor = TlsAcceptor::from(Arc::new(tls));
        tokio::spawn(accept_loop(listener, acceptor, shared.clone(), rx));
        Ok(MockApns {
            shared,
            addr,
            authority: Arc::new(authority),
            _shutdown: shutdown,
        })
    }
}

/// A mock APNs server. See the [module docs](super) for what it checks and reproduces.
///
/// Dropping it stops the listener and closes every connection.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), herald::mock::MockError> {
/// use herald::mock::MockApns;
/// use std::time::{Duration, SystemTime};
///
/// let mock = MockApns::start().await?;
/// let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;    // PKCS#8 PEM for the client
/// let cert = mock.issue_push_certificate("com.example.app")?; // certificate auth
/// mock.register_device(&"ab".repeat(32), "com.example.app");
/// mock.mark_unregistered(&"cd".repeat(32), SystemTime::now());
///
/// // ... point a client at mock.url() trusting mock.ca_pem() ...
///
/// assert!(mock.next_push(Duration::from_millis(10)).await.is_none());
/// assert_eq!(mock.stats().requests, 0);
/// # let _ = (p8, cert);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct MockApns {
    shared: Arc<Shared>,
    addr: SocketAddr,
    authority: Arc<Authority>,
    _shutdown: watch::Sender<bool>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authority")
    }
}

impl MockApns {
    /// Starts a mock with default settings on `127.0.0.1` and a free port.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use herald::mock::MockApns;
    /// let mock = MockApns::start().await?;
    /// assert!(mock.addr().ip().is_loopback());
    /// # Ok(()) }
    /// ```
    pub async fn start() -> Result<MockApns, MockError> {
        Self::builder().start().await
    }

    /// A builder for non-default settings.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use herald::mock::MockApns;
    /// let mock = MockApns::builder().accept_unknown_tokens(true).start().await?;
    /// # drop(mock);
    /// # Ok(()) }
    /// ```
    pub fn builder() -> MockApnsBuilder {
        MockApnsBuilder::default()
    }

    // ----- where it is -----

    /// The listening address.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use herald::mock::MockApns;
    /// let mock = MockApns::start().await?;
    /// assert_eq!(mock.addr().port(), mock.port());
    /// # Ok(()) }
    /// ```
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The listening port.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use herald::mock::MockApns;
    /// let mock = MockApns::start().await?;
    /// assert!(mock.url().ends_with(&format!(":{}", mock.port())));
    /// # Ok(()) }
    /// ```
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `https://<ip>:<port>` (IPv6 in brackets). The certificate is also valid for `localhost`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use herald::mock::MockApns;
    /// let mock = MockApns::start().await?;
    /// assert_eq!(mock.url(), format!("https://127.0.0.1:{}", mock.port()));
    /// # Ok(()) }
    /// ```
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The CA certificate (PEM) that signed the server certificate and the push certificates.
    /// Trust it in the client.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use herald::mock::MockApns;
    /// let mock = MockApns::start().await?;
    /// assert!(mock.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    /// // Each mock has its own CA: trust the one you talk to.
    /// assert_ne!(mock.ca_pem(), MockApns::start().await?.ca_pem());
    /// # Ok(()) }
    /// ```
    pub fn ca_pem(&self) -> &str {
        &self.authority.ca_pem
    }

    /// Writes [`ca_pem`](Self::ca_pem) to `path`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use herald::mock::MockApns;
    /// let mock = MockApns::start().await?;
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("ca.pem");
    /// mock.write_ca_pem(&path)?; // for another process: `herald push --ca`, curl --cacert, ...
    /// assert_eq!(std::fs::read_to_string(&path)?, mock.ca_pem());
    /// # Ok(()) }
    /// ```
    pub fn write_ca_pem(&self, path: impl AsRef<Path>) -> Result<(), MockError> {
        std::fs::write(path, self.ca_pem()).map_err(|e| MockError::io("writing CA PEM", e))
    }

    /// The clock the mock uses.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use herald::mock::{MockApns, MockClock};
    /// use std::time::{Duration, UNIX_EPOCH};
    /// let clock = MockClock::at(UNIX_EPOCH + Duration::from_secs(1_800_000_000));
    /// let mock = MockApns::builder().clock(clock.clone()).start().await?;
    /// clock.advance(Duration::from_secs(60));
    /// assert_eq!(mock.clock().now(), UNIX_EPOCH + Duration::from_secs(1_800_000_060));
    /// # Ok(()) }
    /// ```
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.shared.clock.clone()
    }

    /// The environment the mock answers as ([`MockApnsBuilder::environment`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), herald::mock::MockError> {
    /// use herald::mock::{Environment, MockApns};
    /// assert_eq!(MockApns::start().await?.environment(), Environment::Sandbox);
    /// let mock = MockApns::builder().environment(Environment::Production).start().await?;
    /// assert_eq!(mock.environment(), Environment::Production);
    /// # Ok(()) }
    /// ```
    pub fn environment(&self) -> Environment {
        self.shared.environment
    }

    // ----- credentials -----

    /// Registers a provider key for `team_id`: `key` is a P-256 public key (PEM `PUBLIC KEY`,
    /// DER SPKI, or a SEC1 point) or the `.p8` private key itself (PKCS#8 PEM or DER), of which only
    /// the public half is kept. Replaces a key with the same id, and with it the key's
    /// relation ([`relate_keys`](Self::relate_keys)), which its partner loses too. The key starts team-scoped
    /// (any topic of the team) and valid in both environments, like a key made before Apple's
    /// 2025 key scopes: see [`restrict_key`](Self::restrict_key) and
    /// [`restrict_key_environment`](Self::restrict_key_environment).
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use herald::apns::{ApnsClient, Endpoint, Payload, Push, TokenKey};
    /// use herald::mock::MockApns;
    ///
    /// let mock = MockApns::builder().accept_unknown_tokens(true).start().await?;
    /// // Your own test key (here, one another mock generated; any P-256 PKCS#8 .p8 works).
    /// let p8 = MockApns::start().await?.generate_key("KEY1234567", "TEAM123456")?;
    /// mock.register_key("KEY1234567", "TEAM123456", p8.as_bytes())?;
    /// assert!(mock.register_key("KEY2", "TEAM123456", b"not a key").unwrap_err().is_bad_key());
    ///
    /// let client = ApnsClient::builder()
    ///     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    ///     .token_auth(TokenKey::from_p8_pem(p8, "KEY1234567", "TEAM123456")?)
    ///     .build()?;
    /// let push = Push::builder("a1".repeat(32), "com.example.app").payload(&Payload::alert("Hi"))?.build()?;
    /// assert!(client.send(push).await.is_accepted());
    /// # Ok(()) }
    /// ```
    pub fn register_key(&self, key_id: &str, team_id: &str, key: &[u8]) -> Result<(), MockError> {
        if key_id.is_empty() || team_id.is_empty() {
            return Err(MockError::new(Kind::BadKey, "empty key id or team id"));
        }
        let public = parse_public_key(key)?;
        let mut keys = self.shared.keys.write();
        // A key registered again starts afresh, relation included: its partner is free
        // again (a relation held on one side only would still let the two mix, and let the
        // new key take a second partner).
        let partner = keys.get(key_id).and_then(|k| k.related.clone());
        if let Some(partner) = partner
            && let Some(p) = keys.get_mut(&partner)
            && p.related.as_deref() == Some(key_id)
        {
            p.related = None;
        }
        keys.insert(key_id.to_owned(), KeyEntry::team_scoped(team_id, public));
        Ok(())
    }

    /// Generates a fresh P-256 key (with ring), registers it for `team_id`, and returns it as the
    /// PKCS#8 PEM text of a `.p8` file, for the client to sign its JWTs with.
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use herald::apns::{ApnsClient, Endpoint, Payload, Push, TokenKey};
    /// use herald::mock::MockApns;
    ///
    /// let mock = MockApns::start().await?;
    /// let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
    /// assert!(p8.starts_with("-----BEGIN PRIVATE KEY-----"));
    /// mock.register_device(&"a1".repeat(32), "com.example.app");
    ///
    /// let client = ApnsClient::builder()
    ///     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    ///     .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
    ///     .build()?;
    /// let push = Push::builder("a1".repeat(32), "com.example.app").payload(&Payload::alert("Hi"))?.build()?;
    /// assert!(client.send(push).await.is_accepted());
    /// # Ok(()) }
    /// ```
    pub fn generate_key(&self, key_id: &str, team_id: &str) -> Result<String, MockError> {
        let (pem, public) = generate_p8()?;
        self.register_key(key_id, team_id, &public)?;
        Ok(pem)
    }

    /// Restricts a registered key to these bundle ids (a topic-specific key): pushes to others
    /// answer 400 TopicDisallowed. On one connection, a topic-specific key mixes with no other
    /// key but its related one ([`relate_keys`](Self::relate_keys)): 403 UnrelatedKeyIdInToken.
    /// Returns false if no such key.
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
    /// use herald::mock::MockApns;
    /// use std::time::Duration;
    /// let mock = MockApns::start().await?;
    /// # let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
    /// # let client = ApnsClient::builder()
    /// #     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    /// #     .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
    /// #     .retry(RetryPolicy::none())
    /// #     .build()?;
    /// # let push = |token: &str| Push::builder(token, "com.example.app")
    /// #     .payload(&Payload::alert("Hi")).and_then(|b| b.build()).unwrap();
    /// // `client` is herald's ApnsClient for mock.url(), trusting mock.ca_pem(), with a key from
    /// // mock.generate_key; `push(token)` builds an alert for com.example.app.
    /// let device = "a1".repeat(32);
    /// mock.register_device(&device, "com.example.app");
    /// assert!(mock.restrict_key("ABC123DEFG", &["com.example.other"]));
    /// assert!(!mock.restrict_key("NOSUCHKEY0", &["com.example.app"]));
    /// let _ = client.send(push(&device)).await;
    /// let answer = mock.next_push(Duration::from_secs(10)).await.unwrap();
    /// assert_eq!((answer.status, answer.reason.as_deref()), (400, Some("TopicDisallowed")));
    /// # Ok(()) }
    /// ```
    pub fn restrict_key(&self, key_id: &str, bundle_ids: &[&str]) -> bool {
        match self.shared.keys.write().get_mut(key_id) {
            Some(k) => {
                k.topics = Some(bundle_ids.iter().map(|s| s.to_string()).collect());
                true
            }
            None => false,
        }
    }

    /// Declares two registered keys related. Apple lets a topic-specific key have at most one
    /// related key in the same environment, and tokens of a key and of its related key may
    /// share a connection; any other key after a topic-specific one (another topic-specific
    /// key, whatever its topics, or a team-scoped key) is answered 403 UnrelatedKeyIdInToken.
    /// Related keys mix whatever their scopes. Returns false, and changes nothing, if either
    /// key is unknown, both ids are the same, or either key is already related to another key.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), herald::mock::MockError> {
    /// use herald::mock::MockApns;
    /// let mock = MockApns::start().await?;
    /// for kid in ["TOPICKEY01", "TOPICKEY02", "TOPICKEY03"] {
    ///     let _p8 = mock.generate_key(kid, "TEAM123456")?;
    ///     assert!(mock.restrict_key(kid, &["com.example.app"]));
    /// }
    /// // TOPICKEY01 and TOPICKEY02 may now share a connection (a key rotation, say).
    /// assert!(mock.relate_keys("TOPICKEY01", "TOPICKEY02"));
    /// assert!(mock.relate_keys("TOPICKEY02", "TOPICKEY01")); // already so: still true
    /// // One related key each: TOPICKEY03 stays unrelated to both.
    /// assert!(!mock.relate_keys("TOPICKEY01", "TOPICKEY03"));
    /// assert!(!mock.relate_keys("TOPICKEY03", "NOSUCHKEY0"));
    /// # Ok(()) }
    /// ```
    pub fn relate_keys(&self, key_id: &str, related_id: &str) -> bool {
        let mut keys = self.shared.keys.write();
        let free_for = |of: &str, other: &str| {
            keys.get(of)
                .is_some_and(|k| k.related.as_deref().is_none_or(|r| r == other))
        };
        if key_id == related_id || !free_for(key_id, related_id) || !free_for(related_id, key_id) {
            return false;
        }
        for (of, other) in [(key_id, related_id), (related_id, key_id)] {
            if let Some(k) = keys.get_mut(of) {
                k.related = Some(other.to_owned());
            }
        }
        true
    }

    /// Restricts a registered key to one of Apple's environments, as Apple's keys are since
    /// 2025 (team-scoped and topic-specific keys are each for Sandbox or for Production). A
    /// key is valid in both until this is called (keys made before 2025 still are); register
    /// it again to make it valid in both again. Returns false if no such key.
    ///
    /// A token of a key restricted to the other environment than the mock's
    /// ([`MockApnsBuilder::environment`]) is answered 403 BadEnvironmentKeyIdInToken, Apple's
    /// reason for "the key ID in the provider token doesn't match the environment": on a fresh
    /// connection, after another key's token on the same connection, and on connections
    /// already using the key.
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use herald::apns::{ApnsClient, Endpoint, Payload, Push, Reason, RetryPolicy, TokenKey};
    /// use herald::mock::{Environment, MockApns};
    ///
    /// let mock = MockApns::start().await?; // the sandbox
    /// let p8 = mock.generate_key("PRODKEY001", "TEAM123456")?;
    /// assert!(mock.restrict_key_environment("PRODKEY001", Environment::Production));
    /// assert!(!mock.restrict_key_environment("NOSUCHKEY0", Environment::Sandbox));
    /// mock.register_device(&"a1".repeat(32), "com.example.app");
    ///
    /// let client = ApnsClient::builder()
    ///     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    ///     .token_auth(TokenKey::from_p8_pem(p8, "PRODKEY001", "TEAM123456")?)
    ///     .retry(RetryPolicy::none())
    ///     .build()?;
    /// let push = Push::builder("a1".repeat(32), "com.example.app").payload(&Payload::alert("Hi"))?.build()?;
    /// let outcome = client.send(push).await;
    /// assert_eq!(outcome.reason(), Some(&Reason::BadEnvironmentKeyIdInToken));
    /// # Ok(()) }
    /// ```
    pub fn restrict_key_environment(&self, key_id: &str, environment: Environment) -> bool {
        match self.shared.keys.write().get_mut(key_id) {
            Some(k) => {
                k.environment = Some(environment);
                true
            }
            None => false,
        }
    }

    /// Issues a push certificate for `bundle_id` (subject UID = bundle id), signed by the mock's
    /// CA, for certificate-based authentication.
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use herald::apns::{ApnsClient, Certificate, Endpoint, Payload, Push};
    /// use herald::mock::{AuthKind, MockApns};
    /// use std::time::Duration;
    ///
    /// let mock = MockApns::start().await?;
    /// let cert = mock.issue_push_certificate("com.example.app")?;
    /// assert!(cert.sandbox() && cert.production());
    /// mock.register_device(&"a1".repeat(32), "com.example.app");
    ///
    /// // As a .p12 (what Keychain exports), or as PEM with `Certificate::from_pem`.
    /// let p12 = cert.to_p12("secret")?;
    /// let client = ApnsClient::builder()
    ///     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    ///     .certificate(Certificate::from_p12(p12, "secret")?)
    ///     .build()?;
    /// let push = Push::builder("a1".repeat(32), "com.example.app").payload(&Payload::alert("Hi"))?.build()?;
    /// assert!(client.send(push).await.is_accepted());
    /// let seen = mock.next_push(Duration::from_secs(10)).await.unwrap();
    /// assert!(matches!(seen.auth, AuthKind::Certificate { .. }));
    /// # Ok(()) }
    /// ```
    pub fn issue_push_certificate(&self, bundle_id: &str) -> Result<PushCertificate, MockError> {
        self.authority
            .push_certificate(bundle_id, &PushCertificateOptions::universal())
    }

    /// Issues a push certificate for `bundle_id` with the environment and topic extensions
    /// `options` chooses (a sandbox-only certificate, a certificate for some topics only...).
    /// Under a certificate with a topics extension, a push to a topic it does not list is
    /// answered 400 TopicDisallowed; a certificate for the other environment only (see
    /// [`MockApnsBuilder::environment`]) is answered 403 BadCertificateEnvironment.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), herald::mock::MockError> {
    /// use herald::mock::{MockApns, PushCertificateOptions};
    /// let mock = MockApns::start().await?;
    /// let cert = mock.issue_push_certificate_with("com.example.app", &PushCertificateOptions::production_only())?;
    /// assert!(cert.production() && !cert.sandbox());
    /// assert_eq!(cert.topics().unwrap()[1], "com.example.app.voip");
    /// # Ok(()) }
    /// ```
    pub fn issue_push_certificate_with(
        &self,
        bundle_id: &str,
        options: &PushCertificateOptions,
    ) -> Result<PushCertificate, MockError> {
        self.authority.push_certificate(bundle_id, options)
    }

    // ----- devices -----

    /// Registers a device token (hex, any case) for `bundle_id`: pushes to it on that bundle's
    /// topics are accepted, on other bundles answer DeviceTokenNotForTopic (`"*"`: any bundle).
    /// Clears an earlier
    /// [`mark_unregistered`](Self::mark_unregistered).
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
    /// use herald::mock::MockApns;
    /// let mock = MockApns::start().await?;
    /// # let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
    /// # let client = ApnsClient::builder()
    /// #     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    /// #     .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
    /// #     .retry(RetryPolicy::none())
    /// #     .build()?;
    /// # let push = |token: &str| Push::builder(token, "com.example.app")
    /// #     .payload(&Payload::alert("Hi")).and_then(|b| b.build()).unwrap();
    /// // `client` is herald's ApnsClient for mock.url(), trusting mock.ca_pem(), with a key from
    /// // mock.generate_key; `push(token)` builds an alert for com.example.app.
    /// let (mine, theirs) = ("a1".repeat(32), "b2".repeat(32));
    /// mock.register_device(&mine, "com.example.app");
    /// mock.register_device(&theirs, "com.example.other");
    /// assert!(client.send(push(&mine)).await.is_accepted());
    /// assert!(!client.send(push(&theirs)).await.is_accepted()); // another app's token
    /// assert!(!client.send(push(&"c3".repeat(32))).await.is_accepted()); // unknown
    /// let reasons = mock.stats().by_reason;
    /// assert_eq!(reasons.get("DeviceTokenNotForTopic"), Some(&1));
    /// assert_eq!(reasons.get("BadDeviceToken"), Some(&1));
    /// # Ok(()) }
    /// ```
    pub fn register_device(&self, token: &str, bundle_id: &str) {
        let token = token.to_ascii_lowercase();
        self.shared.unregistered.write().remove(&token);
        self.shared
            .devices
            .write()
            .insert(token, bundle_id.to_owned());
    }

    /// From now on pushes to `token` answer 410 `{"reason":"Unregistered","timestamp":<at, ms>}`.
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
    /// use herald::apns::PushOutcome;
    /// use herald::mock::MockApns;
    /// use std::time::{Duration, SystemTime, UNIX_EPOCH};
    /// let mock = MockApns::start().await?;
    /// # let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
    /// # let client = ApnsClient::builder()
    /// #     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    /// #     .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
    /// #     .retry(RetryPolicy::none())
    /// #     .build()?;
    /// # let push = |token: &str| Push::builder(token, "com.example.app")
    /// #     .payload(&Payload::alert("Hi")).and_then(|b| b.build()).unwrap();
    /// // `client` is herald's ApnsClient for mock.url(), trusting mock.ca_pem(), with a key from
    /// // mock.generate_key; `push(token)` builds an alert for com.example.app.
    /// let gone = "d4".repeat(32);
    /// let since = UNIX_EPOCH + Duration::from_millis(1_767_225_600_123);
    /// mock.mark_unregistered(&gone, since);
    /// let PushOutcome::Rejected(r) = client.send(push(&gone)).await else { panic!("not a 410") };
    /// assert_eq!((r.status, r.reason.as_str()), (410, "Unregistered"));
    /// assert_eq!(r.timestamp, Some(since)); // Apple's milliseconds, kept
    /// mock.register_device(&gone, "com.example.app"); // the app registered again
    /// assert!(client.send(push(&gone)).await.is_accepted());
    /// # Ok(()) }
    /// ```
    pub fn mark_unregistered(&self, token: &str, at: SystemTime) {
        self.shared
            .unregistered
            .write()
            .insert(token.to_ascii_lowercase(), at);
    }

    /// Whether unknown tokens are accepted (see [`MockApnsBuilder::accept_unknown_tokens`]).
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
    /// use herald::mock::MockApns;
    /// let mock = MockApns::start().await?;
    /// # let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
    /// # let client = ApnsClient::builder()
    /// #     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    /// #     .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
    /// #     .retry(RetryPolicy::none())
    /// #     .build()?;
    /// # let push = |token: &str| Push::builder(token, "com.example.app")
    /// #     .payload(&Payload::alert("Hi")).and_then(|b| b.build()).unwrap();
    /// // `client` is herald's ApnsClient for mock.url(), trusting mock.ca_pem(), with a key from
    /// // mock.generate_key; `push(token)` builds an alert for com.example.app.
    /// let unknown = "e5".repeat(32);
    /// assert!(!client.send(push(&unknown)).await.is_accepted()); // BadDeviceToken
    /// mock.set_accept_unknown_tokens(true);
    /// assert!(client.send(push(&unknown)).await.is_accepted());
    /// # Ok(()) }
    /// ```
    pub fn set_accept_unknown_tokens(&self, on: bool) {
        self.shared.config.write().accept_unknown_tokens = on;
    }

    // ----- faults -----

    /// Queues a scripted answer for the next push or broadcast (any connection).
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
    /// use herald::apns::PushOutcome;
    /// use herald::mock::{Fault, MockApns};
    /// let mock = MockApns::start().await?;
    /// # let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
    /// # let client = ApnsClient::builder()
    /// #     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    /// #     .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
    /// #     .retry(RetryPolicy::none())
    /// #     .build()?;
    /// # let push = |token: &str| Push::builder(token, "com.example.app")
    /// #     .payload(&Payload::alert("Hi")).and_then(|b| b.build()).unwrap();
    /// // `client` is herald's ApnsClient for mock.url(), trusting mock.ca_pem(), with a key from
    /// // mock.generate_key; `push(token)` builds an alert for com.example.app.
    /// let device = "a1".repeat(32);
    /// mock.register_device(&device, "com.example.app");
    /// mock.script(Fault::reject(400, "BadPriority"));
    /// let PushOutcome::Rejected(r) = client.send(push(&device)).await else { panic!() };
    /// assert_eq!(r.reason.as_str(), "BadPriority");
    /// assert!(client.send(push(&device)).await.is_accepted()); // the script is used up
    /// # Ok(()) }
    /// ```
    pub fn script(&self, fault: Fault) {
        self.shared.script.lock().push_back(fault);
    }

    /// Queues `fault` for the next `n` pushes.
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
    /// use herald::mock::{Fault, MockApns};
    /// let mock = MockApns::start().await?;
    /// # let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
    /// # let client = ApnsClient::builder()
    /// #     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    /// #     .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
    /// #     .retry(RetryPolicy::none())
    /// #     .build()?;
    /// # let push = |token: &str| Push::builder(token, "com.example.app")
    /// #     .payload(&Payload::alert("Hi")).and_then(|b| b.build()).unwrap();
    /// // `client` is herald's ApnsClient for mock.url(), trusting mock.ca_pem(), with a key from
    /// // mock.generate_key; `push(token)` builds an alert for com.example.app.
    /// let device = "a1".repeat(32);
    /// mock.register_device(&device, "com.example.app");
    /// mock.script_n(2, Fault::reject(400, "BadTopic"));
    /// assert_eq!(mock.scripted(), 2);
    /// assert!(!client.send(push(&device)).await.is_accepted());
    /// assert!(!client.send(push(&device)).await.is_accepted());
    /// assert!(client.send(push(&device)).await.is_accepted());
    /// # Ok(()) }
    /// ```
    pub fn script_n(&self, n: usize, fault: Fault) {
        let mut script = self.shared.script.lock();
        script.extend(std::iter::repeat_n(fault, n));
    }

    /// Queues a scripted answer for the next push to this device token (any case), used before
    /// the global queue: per-token outcomes stay deterministic when pushes run concurrently.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use herald::mock::{Fault, MockApns};
    /// let mock = MockApns::start().await.unwrap();
    /// mock.script_for_device(&"ab".repeat(32), Fault::reject(500, "InternalServerError"));
    /// assert_eq!(mock.scripted(), 1);
    /// # }
    /// ```
    pub fn script_for_device(&self, token: &str, fault: Fault) {
        self.shared
            .device_script
            .lock()
            .entry(token.to_ascii_lowercase())
            .or_default()
            .push_back(fault);
    }

    /// Scripted answers not yet used (global and per device).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use herald::mock::{Fault, MockApns};
    /// let mock = MockApns::start().await?;
    /// mock.script(Fault::Accept);
    /// mock.script_for_device(&"ab".repeat(32), Fault::Stall);
    /// assert_eq!(mock.scripted(), 2);
    /// # Ok(()) }
    /// ```
    pub fn scripted(&self) -> usize {
        let per_device: usize = self
            .shared
            .device_script
            .lock()
            .values()
            .map(|q| q.len())
            .sum();
        self.shared.script.lock().len() + per_device
    }

    /// Drops the scripted answers not yet used (global and per device).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use herald::mock::{Fault, MockApns};
    /// let mock = MockApns::start().await?;
    /// mock.script_n(3, Fault::RefuseStream);
    /// mock.clear_script();
    /// assert_eq!(mock.scripted(), 0);
    /// # Ok(()) }
    /// ```
    pub fn clear_script(&self) {
        self.shared.script.lock().clear();
        self.shared.device_script.lock().clear();
    }

    /// See [`MockApnsBuilder::latency`].
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
    /// use herald::mock::{Latency, MockApns};
    /// use std::time::{Duration, Instant};
    /// let mock = MockApns::start().await?;
    /// # let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
    /// # let client = ApnsClient::builder()
    /// #     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    /// #     .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
    /// #     .retry(RetryPolicy::none())
    /// #     .build()?;
    /// # let push = |token: &str| Push::builder(token, "com.example.app")
    /// #     .payload(&Payload::alert("Hi")).and_then(|b| b.build()).unwrap();
    /// // `client` is herald's ApnsClient for mock.url(), trusting mock.ca_pem(), with a key from
    /// // mock.generate_key; `push(token)` builds an alert for com.example.app.
    /// let device = "a1".repeat(32);
    /// mock.register_device(&device, "com.example.app");
    /// mock.set_latency(Latency::Uniform { min: Duration::from_millis(20), max: Duration::from_millis(40) });
    /// let started = Instant::now();
    /// assert!(client.send(push(&device)).await.is_accepted());
    /// assert!(started.elapsed() >= Duration::from_millis(20));
    /// # Ok(()) }
    /// ```
    pub fn set_latency(&self, latency: Latency) {
        self.shared.config.write().latency = latency;
    }

    /// See [`MockApnsBuilder::error_rate`].
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
    /// use herald::mock::MockApns;
    /// use std::time::Duration;
    /// let mock = MockApns::start().await?;
    /// # let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
    /// # let client = ApnsClient::builder()
    /// #     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    /// #     .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
    /// #     .retry(RetryPolicy::none())
    /// #     .build()?;
    /// # let push = |token: &str| Push::builder(token, "com.example.app")
    /// #     .payload(&Payload::alert("Hi")).and_then(|b| b.build()).unwrap();
    /// // `client` is herald's ApnsClient for mock.url(), trusting mock.ca_pem(), with a key from
    /// // mock.generate_key; `push(token)` builds an alert for com.example.app.
    /// let device = "a1".repeat(32);
    /// mock.register_device(&device, "com.example.app");
    /// mock.set_error_rate(1.0); // every otherwise accepted push: 500 or 503
    /// let _ = client.send(push(&device)).await;
    /// assert!(matches!(mock.next_push(Duration::from_secs(10)).await.unwrap().status, 500 | 503));
    /// mock.set_error_rate(0.0);
    /// assert!(client.send(push(&device)).await.is_accepted());
    /// # Ok(()) }
    /// ```
    pub fn set_error_rate(&self, rate: f64) {
        self.shared.config.write().error_rate = rate.clamp(0.0, 1.0);
    }

    /// See [`MockApnsBuilder::goaway_after`]; `None` = never.
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
    /// use herald::mock::MockApns;
    /// let mock = MockApns::start().await?;
    /// # let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
    /// # let client = ApnsClient::builder()
    /// #     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    /// #     .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
    /// #     .retry(RetryPolicy::none())
    /// #     .build()?;
    /// # let push = |token: &str| Push::builder(token, "com.example.app")
    /// #     .payload(&Payload::alert("Hi")).and_then(|b| b.build()).unwrap();
    /// // `client` is herald's ApnsClient for mock.url(), trusting mock.ca_pem(), with a key from
    /// // mock.generate_key; `push(token)` builds an alert for com.example.app.
    /// let device = "a1".repeat(32);
    /// mock.register_device(&device, "com.example.app");
    /// mock.set_goaway_after(Some(1));
    /// assert!(client.send(push(&device)).await.is_accepted());
    /// assert!(client.send(push(&device)).await.is_accepted()); // on a new connection
    /// assert_eq!(mock.stats().connections_opened, 2);
    /// mock.set_goaway_after(None);
    /// # Ok(()) }
    /// ```
    pub fn set_goaway_after(&self, n: Option<u64>) {
        self.shared.config.write().goaway_after = n.map(|n| n.max(1));
    }

    /// See [`MockApnsBuilder::idle_timeout`]; applies to connections opened afterwards.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use herald::mock::MockApns;
    /// use std::time::Duration;
    /// let mock = MockApns::start().await?;
    /// mock.set_idle_timeout(Some(Duration::from_secs(60))); // connections opened from now on
    /// mock.set_idle_timeout(None); // never
    /// # Ok(()) }
    /// ```
    pub fn set_idle_timeout(&self, idle: Option<Duration>) {
        self.shared.config.write().idle_timeout = idle;
    }

    /// See [`MockApnsBuilder::drop_to_one_after_rejection`].
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
    /// use herald::mock::MockApns;
    /// let mock = MockApns::start().await?;
    /// # let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
    /// # let client = ApnsClient::builder()
    /// #     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    /// #     .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
    /// #     .retry(RetryPolicy::none())
    /// #     .build()?;
    /// # let push = |token: &str| Push::builder(token, "com.example.app")
    /// #     .payload(&Payload::alert("Hi")).and_then(|b| b.build()).unwrap();
    /// // `client` is herald's ApnsClient for mock.url(), trusting mock.ca_pem(), with a key from
    /// // mock.generate_key; `push(token)` builds an alert for com.example.app.
    /// let device = "a1".repeat(32);
    /// mock.register_device(&device, "com.example.app");
    /// mock.set_drop_to_one_after_rejection(true);
    /// assert!(client.send(push(&device)).await.is_accepted());
    /// assert!(!client.send(push(&"ff".repeat(32))).await.is_accepted());
    /// assert_eq!(mock.stats().connections.values().next().unwrap().max_streams, 1);
    /// assert!(client.send(push(&device)).await.is_accepted()); // and back up
    /// assert_eq!(mock.stats().connections.values().next().unwrap().max_streams, 1000);
    /// # Ok(()) }
    /// ```
    pub fn set_drop_to_one_after_rejection(&self, on: bool) {
        self.shared.config.write().drop_to_one_after_rejection = on;
    }

    /// Changes the limit: open connections already past the ramp (and certificate connections)
    /// get a SETTINGS frame with it right away.
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
    /// use herald::mock::MockApns;
    /// let mock = MockApns::start().await?;
    /// # let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
    /// # let client = ApnsClient::builder()
    /// #     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    /// #     .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
    /// #     .retry(RetryPolicy::none())
    /// #     .build()?;
    /// # let push = |token: &str| Push::builder(token, "com.example.app")
    /// #     .payload(&Payload::alert("Hi")).and_then(|b| b.build()).unwrap();
    /// // `client` is herald's ApnsClient for mock.url(), trusting mock.ca_pem(), with a key from
    /// // mock.generate_key; `push(token)` builds an alert for com.example.app.
    /// let device = "a1".repeat(32);
    /// mock.register_device(&device, "com.example.app");
    /// assert!(client.send(push(&device)).await.is_accepted());
    /// mock.set_max_streams(8); // sent to the open connection at once
    /// assert_eq!(mock.stats().connections.values().next().unwrap().max_streams, 8);
    /// # Ok(()) }
    /// ```
    pub fn set_max_streams(&self, max: u32) {
        let max = max.max(1);
        self.shared.config.write().max_streams = max;
        for conn in self.shared.conns.lock().values() {
            let past_ramp = conn.raised.load(Ordering::Acquire)
                || matches!(conn.auth, ConnAuth::Certificate { .. });
            if past_ramp && conn.stats.lock().open {
                conn.ctl.advertise(max);
                conn.stats.lock().max_streams = max;
                let _ = conn.cmd.send(ConnCmd::Flush);
            }
        }
    }

    /// Sends GOAWAY (NO_ERROR, `{"reason": reason}`) on every open connection, gracefully:
    /// in-flight streams are answered, then the connections close. Returns how many.
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
    /// use herald::mock::MockApns;
    /// use std::time::Duration;
    /// let mock = MockApns::start().await?;
    /// # let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
    /// # let client = ApnsClient::builder()
    /// #     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    /// #     .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
    /// #     .retry(RetryPolicy::none())
    /// #     .build()?;
    /// # let push = |token: &str| Push::builder(token, "com.example.app")
    /// #     .payload(&Payload::alert("Hi")).and_then(|b| b.build()).unwrap();
    /// // `client` is herald's ApnsClient for mock.url(), trusting mock.ca_pem(), with a key from
    /// // mock.generate_key; `push(token)` builds an alert for com.example.app.
    /// let device = "a1".repeat(32);
    /// mock.register_device(&device, "com.example.app");
    /// assert!(client.send(push(&device)).await.is_accepted());
    /// assert_eq!(mock.goaway_all("Shutdown"), 1); // in-flight pushes are still answered
    /// // The mock closes it; wait for that (the client reconnects on its next push).
    /// tokio::time::timeout(Duration::from_secs(30), async {
    ///     while mock.open_connections() > 0 {
    ///         tokio::time::sleep(Duration::from_millis(10)).await;
    ///     }
    /// })
    /// .await?;
    /// # Ok(()) }
    /// ```
    pub fn goaway_all(&self, reason: &str) -> usize {
        self.each_open(|| ConnCmd::GoAway {
            reason: reason.to_owned(),
            graceful: true,
        })
    }

    /// Sends GOAWAY on one connection; `graceful: false` closes it at once, failing in-flight
    /// streams. Returns false if it is not open.
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
    /// use herald::mock::MockApns;
    /// use std::time::Duration;
    /// let mock = MockApns::start().await?;
    /// # let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
    /// # let client = ApnsClient::builder()
    /// #     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    /// #     .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
    /// #     .retry(RetryPolicy::none())
    /// #     .build()?;
    /// # let push = |token: &str| Push::builder(token, "com.example.app")
    /// #     .payload(&Payload::alert("Hi")).and_then(|b| b.build()).unwrap();
    /// // `client` is herald's ApnsClient for mock.url(), trusting mock.ca_pem(), with a key from
    /// // mock.generate_key; `push(token)` builds an alert for com.example.app.
    /// let device = "a1".repeat(32);
    /// mock.register_device(&device, "com.example.app");
    /// assert!(client.send(push(&device)).await.is_accepted());
    /// let id = *mock.stats().connections.keys().next().unwrap();
    /// assert!(!mock.goaway(id + 1, "IdleTimeout", true)); // no such connection
    /// assert!(mock.goaway(id, "IdleTimeout", false)); // at once: in-flight pushes fail
    /// // The mock closes it; wait for that (the client reconnects on its next push).
    /// tokio::time::timeout(Duration::from_secs(30), async {
    ///     while mock.open_connections() > 0 {
    ///         tokio::time::sleep(Duration::from_millis(10)).await;
    ///     }
    /// })
    /// .await?;
    /// # Ok(()) }
    /// ```
    pub fn goaway(&self, connection: u64, reason: &str, graceful: bool) -> bool {
        let conns = self.shared.conns.lock();
        conns.get(&connection).is_some_and(|c| {
            c.stats.lock().open
                && c.cmd
                    .send(ConnCmd::GoAway {
                        reason: reason.to_owned(),
                        graceful,
                    })
                    .is_ok()
        })
    }

    /// Closes every open connection's socket without GOAWAY. Returns how many.
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
    /// use herald::mock::MockApns;
    /// use std::time::Duration;
    /// let mock = MockApns::start().await?;
    /// # let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
    /// # let client = ApnsClient::builder()
    /// #     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    /// #     .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
    /// #     .retry(RetryPolicy::none())
    /// #     .build()?;
    /// # let push = |token: &str| Push::builder(token, "com.example.app")
    /// #     .payload(&Payload::alert("Hi")).and_then(|b| b.build()).unwrap();
    /// // `client` is herald's ApnsClient for mock.url(), trusting mock.ca_pem(), with a key from
    /// // mock.generate_key; `push(token)` builds an alert for com.example.app.
    /// let device = "a1".repeat(32);
    /// mock.register_device(&device, "com.example.app");
    /// assert!(client.send(push(&device)).await.is_accepted());
    /// assert_eq!(mock.drop_connections(), 1); // no GOAWAY: in-flight pushes are lost
    /// // The mock closes it; wait for that (the client reconnects on its next push).
    /// tokio::time::timeout(Duration::from_secs(30), async {
    ///     while mock.open_connections() > 0 {
    ///         tokio::time::sleep(Duration::from_millis(10)).await;
    ///     }
    /// })
    /// .await?;
    /// # Ok(()) }
    /// ```
    pub fn drop_connections(&self) -> usize {
        self.each_open(|| ConnCmd::Drop)
    }

    fn each_open(&self, cmd: impl Fn() -> ConnCmd) -> usize {
        self.shared
            .conns
            .lock()
            .values()
            .filter(|c| c.stats.lock().open)
            .filter(|c| c.cmd.send(cmd()).is_ok())
            .count()
    }

    // ----- what it saw -----

    /// The recorded requests, in arrival order: the most recent ones, up to the record limit.
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
    /// use herald::mock::{self, MockApns};
    /// let mock = MockApns::start().await?;
    /// # let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
    /// # let client = ApnsClient::builder()
    /// #     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    /// #     .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
    /// #     .retry(RetryPolicy::none())
    /// #     .build()?;
    /// # let push = |token: &str| Push::builder(token, "com.example.app")
    /// #     .payload(&Payload::alert("Hi")).and_then(|b| b.build()).unwrap();
    /// // `client` is herald's ApnsClient for mock.url(), trusting mock.ca_pem(), with a key from
    /// // mock.generate_key; `push(token)` builds an alert for com.example.app.
    /// let device = "a1".repeat(32);
    /// mock.register_device(&device, "com.example.app");
    /// assert!(client.send(push(&device)).await.is_accepted());
    /// let log = mock.requests();
    /// assert_eq!(log.len(), 1);
    /// assert_eq!(log[0].endpoint, mock::Endpoint::Push);
    /// assert_eq!(log[0].path, format!("/3/device/{device}"));
    /// assert_eq!(log[0].header("apns-topic"), Some("com.example.app"));
    /// assert_eq!(log[0].payload.as_ref().unwrap()["aps"]["alert"], "Hi");
    /// # Ok(()) }
    /// ```
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.log.lock().entries.iter().cloned().collect()
    }

    /// Recorded pushes (`/3/device`) and broadcasts only.
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
    /// use herald::mock::MockApns;
    /// let mock = MockApns::start().await?;
    /// # let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
    /// # let client = ApnsClient::builder()
    /// #     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    /// #     .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
    /// #     .retry(RetryPolicy::none())
    /// #     .build()?;
    /// # let push = |token: &str| Push::builder(token, "com.example.app")
    /// #     .payload(&Payload::alert("Hi")).and_then(|b| b.build()).unwrap();
    /// // `client` is herald's ApnsClient for mock.url(), trusting mock.ca_pem(), with a key from
    /// // mock.generate_key; `push(token)` builds an alert for com.example.app.
    /// let device = "a1".repeat(32);
    /// mock.register_device(&device, "com.example.app");
    /// client.send(push(&device)).await;
    /// client.send(push(&"ff".repeat(32))).await;
    /// let pushes = mock.pushes();
    /// assert_eq!(pushes.iter().filter(|p| p.accepted()).count(), 1);
    /// assert_eq!(pushes[1].reason.as_deref(), Some("BadDeviceToken"));
    /// # Ok(()) }
    /// ```
    pub fn pushes(&self) -> Vec<RecordedRequest> {
        self.shared
            .log
            .lock()
            .entries
            .iter()
            .filter(|r| matches!(r.endpoint, Endpoint::Push | Endpoint::Broadcast))
            .cloned()
            .collect()
    }

    /// The next push or broadcast not yet returned by `next_push`, waiting up to `timeout` for
    /// one to arrive; `None` on timeout. Whatever the answer was: check
    /// [`RecordedRequest::status`]. Pushes evicted from the log before being read are skipped.
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
    /// use herald::mock::MockApns;
    /// use std::time::Duration;
    /// let mock = MockApns::start().await?;
    /// # let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
    /// # let client = ApnsClient::builder()
    /// #     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    /// #     .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
    /// #     .retry(RetryPolicy::none())
    /// #     .build()?;
    /// # let push = |token: &str| Push::builder(token, "com.example.app")
    /// #     .payload(&Payload::alert("Hi")).and_then(|b| b.build()).unwrap();
    /// // `client` is herald's ApnsClient for mock.url(), trusting mock.ca_pem(), with a key from
    /// // mock.generate_key; `push(token)` builds an alert for com.example.app.
    /// let device = "a1".repeat(32);
    /// mock.register_device(&device, "com.example.app");
    /// let sending = tokio::spawn({
    ///     let (client, push) = (client.clone(), push(&device));
    ///     async move { client.send(push).await }
    /// });
    /// // Waits for the push to arrive, whatever the answer.
    /// let seen = mock.next_push(Duration::from_secs(10)).await.expect("a push within 10 s");
    /// assert_eq!(seen.device_token.as_deref(), Some(device.as_str()));
    /// assert!(sending.await?.is_accepted());
    /// assert!(mock.next_push(Duration::from_millis(10)).await.is_none()); // each push once
    /// # Ok(()) }
    /// ```
    pub async fn next_push(&self, timeout: Duration) -> Option<RecordedRequest> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.log_notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut log = self.shared.log.lock();
                log.cursor = log.cursor.max(log.evicted);
                while log.cursor < log.evicted + log.entries.len() {
                    let i = log.cursor - log.evicted;
                    log.cursor += 1;
                    if let Some(r) = log.entries.get(i)
                        && matches!(r.endpoint, Endpoint::Push | Endpoint::Broadcast)
                    {
                        return Some(r.clone());
                    }
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// Counters since start-up. `connections` holds every open connection and the 1024 most
    /// recently closed ones.
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
    /// use herald::mock::MockApns;
    /// let mock = MockApns::start().await?;
    /// # let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
    /// # let client = ApnsClient::builder()
    /// #     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    /// #     .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
    /// #     .retry(RetryPolicy::none())
    /// #     .build()?;
    /// # let push = |token: &str| Push::builder(token, "com.example.app")
    /// #     .payload(&Payload::alert("Hi")).and_then(|b| b.build()).unwrap();
    /// // `client` is herald's ApnsClient for mock.url(), trusting mock.ca_pem(), with a key from
    /// // mock.generate_key; `push(token)` builds an alert for com.example.app.
    /// let device = "a1".repeat(32);
    /// mock.register_device(&device, "com.example.app");
    /// client.send(push(&device)).await;
    /// client.send(push(&"ff".repeat(32))).await;
    /// let stats = mock.stats();
    /// assert_eq!((stats.requests, stats.accepted), (2, 1));
    /// assert_eq!(stats.by_status.get(&400), Some(&1));
    /// assert_eq!(stats.by_reason.get("BadDeviceToken"), Some(&1));
    /// let conn = stats.connections.values().next().unwrap();
    /// assert_eq!((conn.requests, conn.tokens), (2, 1)); // one JWT for the connection
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> Stats {
        let mut stats = self.shared.stats.lock().clone();
        for (id, conn) in self.shared.conns.lock().iter() {
            let mut cs = conn.stats.lock().clone();
            cs.pings = conn.ctl.pings();
            stats.connections.insert(*id, cs);
        }
        stats
    }

    /// How many times a push with this client-supplied `apns-id` was answered 200.
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
    /// use herald::mock::MockApns;
    /// let mock = MockApns::start().await?;
    /// # let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
    /// # let client = ApnsClient::builder()
    /// #     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    /// #     .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
    /// #     .retry(RetryPolicy::none())
    /// #     .build()?;
    /// # let push = |token: &str| Push::builder(token, "com.example.app")
    /// #     .payload(&Payload::alert("Hi")).and_then(|b| b.build()).unwrap();
    /// // `client` is herald's ApnsClient for mock.url(), trusting mock.ca_pem(), with a key from
    /// // mock.generate_key; `push(token)` builds an alert for com.example.app.
    /// let device = "a1".repeat(32);
    /// mock.register_device(&device, "com.example.app");
    /// let id = "123e4567-e89b-12d3-a456-426614174000";
    /// let with_id = Push::builder(device.as_str(), "com.example.app").apns_id(id).build()?;
    /// assert!(client.send(with_id).await.is_accepted());
    /// assert_eq!(mock.accepted_count(id), 1);
    /// assert_eq!(mock.accepted_count(&id.to_uppercase()), 1); // any case
    /// # Ok(()) }
    /// ```
    pub fn accepted_count(&self, apns_id: &str) -> u32 {
        self.shared
            .accepted_ids
            .lock()
            .get(&apns_id.to_ascii_lowercase())
            .copied()
            .unwrap_or(0)
    }

    /// Every client-supplied `apns-id` answered 200 more than once, with its count. Empty when no
    /// accepted push was delivered twice. (The first million distinct ids are tracked.)
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
    /// use herald::mock::MockApns;
    /// let mock = MockApns::start().await?;
    /// # let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
    /// # let client = ApnsClient::builder()
    /// #     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    /// #     .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
    /// #     .retry(RetryPolicy::none())
    /// #     .build()?;
    /// # let push = |token: &str| Push::builder(token, "com.example.app")
    /// #     .payload(&Payload::alert("Hi")).and_then(|b| b.build()).unwrap();
    /// // `client` is herald's ApnsClient for mock.url(), trusting mock.ca_pem(), with a key from
    /// // mock.generate_key; `push(token)` builds an alert for com.example.app.
    /// let device = "a1".repeat(32);
    /// mock.register_device(&device, "com.example.app");
    /// for _ in 0..3 {
    ///     client.send(push(&device)).await; // each push has its own apns-id
    /// }
    /// // herald's retries reuse an apns-id: a non-empty list would mean a push was delivered twice.
    /// assert!(mock.duplicate_accepted().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn duplicate_accepted(&self) -> Vec<(String, u32)> {
        let mut dups: Vec<(String, u32)> = self
            .shared
            .accepted_ids
            .lock()
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(id, n)| (id.clone(), *n))
            .collect();
        dups.sort();
        dups
    }

    /// Open connections.
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
    /// use herald::mock::MockApns;
    /// let mock = MockApns::start().await?;
    /// # let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
    /// # let client = ApnsClient::builder()
    /// #     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    /// #     .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
    /// #     .retry(RetryPolicy::none())
    /// #     .build()?;
    /// # let push = |token: &str| Push::builder(token, "com.example.app")
    /// #     .payload(&Payload::alert("Hi")).and_then(|b| b.build()).unwrap();
    /// // `client` is herald's ApnsClient for mock.url(), trusting mock.ca_pem(), with a key from
    /// // mock.generate_key; `push(token)` builds an alert for com.example.app.
    /// let device = "a1".repeat(32);
    /// mock.register_device(&device, "com.example.app");
    /// assert_eq!(mock.open_connections(), 0);
    /// assert!(client.send(push(&device)).await.is_accepted());
    /// assert_eq!(mock.open_connections(), 1);
    /// # Ok(()) }
    /// ```
    pub fn open_connections(&self) -> usize {
        self.shared
            .conns
            .lock()
            .values()
            .filter(|c| c.stats.lock().open)
            .count()
    }
}
