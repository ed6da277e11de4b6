//! The public handle: start, configure, script, inspect.

use super::clock::{Clock, SystemClock};
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
    config: Config,
    server_names: Vec<String>,
    client_cas: Vec<String>,
}

impl Default for MockApnsBuilder {
    fn default() -> Self {
        MockApnsBuilder {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            clock: Arc::new(SystemClock),
            config: Config::default(),
            server_names: Vec::new(),
            client_cas: Vec::new(),
        }
    }
}

impl MockApnsBuilder {
    /// The address to listen on. Default `127.0.0.1:0` (loopback, a free port). Pass another
    /// address only on purpose: the mock accepts anything its keys sign.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// Keeps the bind address's IP and listens on `port` (0 = a free one).
    pub fn port(mut self, port: u16) -> Self {
        self.bind.set_port(port);
        self
    }

    /// The clock for token rules and timestamps. Default: [`SystemClock`]. Pass a
    /// [`MockClock`](super::MockClock) clone to move time from the test.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// SETTINGS_MAX_CONCURRENT_STREAMS after the ramp (and from the start under certificate
    /// auth). Default 1000.
    pub fn max_streams(mut self, max: u32) -> Self {
        self.config.max_streams = max.max(1);
        self
    }

    /// Drop the advertised limit to 1 after each rejected push, until the next accepted one.
    /// Default off.
    pub fn drop_to_one_after_rejection(mut self, on: bool) -> Self {
        self.config.drop_to_one_after_rejection = on;
        self
    }

    /// Gracefully GOAWAY (`{"reason":"Shutdown"}`) each connection after it has received `n`
    /// requests. Default: never.
    pub fn goaway_after(mut self, n: u64) -> Self {
        self.config.goaway_after = Some(n.max(1));
        self
    }

    /// Close connections idle for this long (no request, no PING; real time) with a graceful
    /// GOAWAY `{"reason":"IdleTimeout"}`. Default: never.
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.config.idle_timeout = Some(idle);
        self
    }

    /// Latency added before every answer. Default none.
    pub fn latency(mut self, latency: Latency) -> Self {
        self.config.latency = latency;
        self
    }

    /// Fraction (0.0–1.0) of otherwise accepted pushes answered 500 InternalServerError or 503
    /// ServiceUnavailable (half each). Default 0.
    pub fn error_rate(mut self, rate: f64) -> Self {
        self.config.error_rate = rate.clamp(0.0, 1.0);
        self
    }

    /// Accept pushes to device tokens never registered (still well-formed hex). Default off:
    /// unknown tokens answer 400 BadDeviceToken, like a token from the other environment.
    pub fn accept_unknown_tokens(mut self, on: bool) -> Self {
        self.config.accept_unknown_tokens = on;
        self
    }

    /// How many requests the log keeps: past it the oldest are dropped (counters keep counting,
    /// see [`Stats::evicted`](super::Stats::evicted)). Default 100,000.
    pub fn record_limit(mut self, n: usize) -> Self {
        self.config.record_limit = n.max(1);
        self
    }

    /// An extra DNS name or IP address for the server certificate.
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_names.push(name.into());
        self
    }

    /// Also trust client certificates issued by this CA (PEM), beside the mock's own.
    pub fn trust_client_ca_pem(mut self, pem: impl Into<String>) -> Self {
        self.client_cas.push(pem.into());
        self
    }

    /// Generates the CA and server certificate, binds, and starts serving on the current tokio
    /// runtime. The server stops when the [`MockApns`] is dropped.
    pub async fn start(self) -> Result<MockApns, MockError> {
        let authority = Authority::generate()?;
        let tls = authority.server_config(&self.server_names, &self.client_cas)?;
        let listener = TcpListener::bind(self.bind)
            .await
            .map_err(|e| MockError::io("binding", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| MockError::io("local address", e))?;
        let shared = Arc::new(Shared::new(self.clock, self.config));
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
    pub async fn start() -> Result<MockApns, MockError> {
        Self::builder().start().await
    }

    /// A builder for non-default settings.
    pub fn builder() -> MockApnsBuilder {
        MockApnsBuilder::default()
    }

    // ----- where it is -----

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The listening port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `https://<ip>:<port>` (IPv6 in brackets). The certificate is also valid for `localhost`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The CA certificate (PEM) that signed the server certificate and the push certificates.
    /// Trust it in the client.
    pub fn ca_pem(&self) -> &str {
        &self.authority.ca_pem
    }

    /// Writes [`ca_pem`](Self::ca_pem) to `path`.
    pub fn write_ca_pem(&self, path: impl AsRef<Path>) -> Result<(), MockError> {
        std::fs::write(path, self.ca_pem()).map_err(|e| MockError::io("writing CA PEM", e))
    }

    /// The clock the mock uses.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.shared.clock.clone()
    }

    // ----- credentials -----

    /// Registers a provider key for `team_id`: `key` is a P-256 public key (PEM `PUBLIC KEY`,
    /// DER SPKI, or a SEC1 point) or the `.p8` private key itself (PKCS#8 PEM or DER), of which only
    /// the public half is kept. Replaces a key with the same id.
    pub fn register_key(&self, key_id: &str, team_id: &str, key: &[u8]) -> Result<(), MockError> {
        if key_id.is_empty() || team_id.is_empty() {
            return Err(MockError::new(Kind::BadKey, "empty key id or team id"));
        }
        let public = parse_public_key(key)?;
        self.shared.keys.write().insert(
            key_id.to_owned(),
            KeyEntry {
                team_id: team_id.to_owned(),
                public,
                topics: None,
            },
        );
        Ok(())
    }

    /// Generates a fresh P-256 key (with ring), registers it for `team_id`, and returns it as the
    /// PKCS#8 PEM text of a `.p8` file, for the client to sign its JWTs with.
    pub fn generate_key(&self, key_id: &str, team_id: &str) -> Result<String, MockError> {
        let (pem, public) = generate_p8()?;
        self.register_key(key_id, team_id, &public)?;
        Ok(pem)
    }

    /// Restricts a registered key to these bundle ids (a topic-specific key): pushes to others
    /// answer 400 TopicDisallowed. Returns false if no such key.
    pub fn restrict_key(&self, key_id: &str, bundle_ids: &[&str]) -> bool {
        match self.shared.keys.write().get_mut(key_id) {
            Some(k) => {
                k.topics = Some(bundle_ids.iter().map(|s| s.to_string()).collect());
                true
            }
            None => false,
        }
    }

    /// Issues a push certificate for `bundle_id` (subject UID = bundle id), signed by the mock's
    /// CA, for certificate-based authentication.
    pub fn issue_push_certificate(&self, bundle_id: &str) -> Result<PushCertificate, MockError> {
        self.authority
            .push_certificate(bundle_id, &PushCertificateOptions::universal())
    }

    /// Issues a push certificate for `bundle_id` with the environment and topic extensions
    /// `options` chooses (a sandbox-only certificate, a certificate for some topics only...).
    /// Under a certificate with a topics extension, a push to a topic it does not list is
    /// answered 400 TopicDisallowed.
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
    pub fn register_device(&self, token: &str, bundle_id: &str) {
        let token = token.to_ascii_lowercase();
        self.shared.unregistered.write().remove(&token);
        self.shared
            .devices
            .write()
            .insert(token, bundle_id.to_owned());
    }

    /// From now on pushes to `token` answer 410 `{"reason":"Unregistered","timestamp":<at, ms>}`.
    pub fn mark_unregistered(&self, token: &str, at: SystemTime) {
        self.shared
            .unregistered
            .write()
            .insert(token.to_ascii_lowercase(), at);
    }

    /// Whether unknown tokens are accepted (see [`MockApnsBuilder::accept_unknown_tokens`]).
    pub fn set_accept_unknown_tokens(&self, on: bool) {
        self.shared.config.write().accept_unknown_tokens = on;
    }

    // ----- faults -----

    /// Queues a scripted answer for the next push or broadcast (any connection).
    pub fn script(&self, fault: Fault) {
        self.shared.script.lock().push_back(fault);
    }

    /// Queues `fault` for the next `n` pushes.
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
    pub fn clear_script(&self) {
        self.shared.script.lock().clear();
        self.shared.device_script.lock().clear();
    }

    /// See [`MockApnsBuilder::latency`].
    pub fn set_latency(&self, latency: Latency) {
        self.shared.config.write().latency = latency;
    }

    /// See [`MockApnsBuilder::error_rate`].
    pub fn set_error_rate(&self, rate: f64) {
        self.shared.config.write().error_rate = rate.clamp(0.0, 1.0);
    }

    /// See [`MockApnsBuilder::goaway_after`]; `None` = never.
    pub fn set_goaway_after(&self, n: Option<u64>) {
        self.shared.config.write().goaway_after = n.map(|n| n.max(1));
    }

    /// See [`MockApnsBuilder::idle_timeout`]; applies to connections opened afterwards.
    pub fn set_idle_timeout(&self, idle: Option<Duration>) {
        self.shared.config.write().idle_timeout = idle;
    }

    /// See [`MockApnsBuilder::drop_to_one_after_rejection`].
    pub fn set_drop_to_one_after_rejection(&self, on: bool) {
        self.shared.config.write().drop_to_one_after_rejection = on;
    }

    /// Changes the limit: open connections already past the ramp (and certificate connections)
    /// get a SETTINGS frame with it right away.
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
    pub fn goaway_all(&self, reason: &str) -> usize {
        self.each_open(|| ConnCmd::GoAway {
            reason: reason.to_owned(),
            graceful: true,
        })
    }

    /// Sends GOAWAY on one connection; `graceful: false` closes it at once, failing in-flight
    /// streams. Returns false if it is not open.
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
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.log.lock().entries.iter().cloned().collect()
    }

    /// Recorded pushes (`/3/device`) and broadcasts only.
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
    pub fn open_connections(&self) -> usize {
        self.shared
            .conns
            .lock()
            .values()
            .filter(|c| c.stats.lock().open)
            .count()
    }
}
