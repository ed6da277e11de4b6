//! [`NatsBridge`]: one connection to a NATS server, its options, health, metrics and shutdown.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::{ConnectOptions, Event};
use parking_lot::Mutex;
use tokio::sync::watch;

use super::export::Outbox;
use super::urls::{Servers, UrlAuth};
use super::{BridgeId, ConnectionChanged, ConnectionState, Error, ErrorKind, wire};
use crate::NotificationCenter;

/// The default capacity of a bridge's outbox (exported notifications waiting for the network).
///
/// ```
/// use herald::nats::{DEFAULT_OUTBOX_CAPACITY, NatsBridge};
///
/// assert_eq!(DEFAULT_OUTBOX_CAPACITY, 65_536);
/// // Ride out longer outages before exports are dropped.
/// let builder = NatsBridge::builder().outbox_capacity(4 * DEFAULT_OUTBOX_CAPACITY);
/// # drop(builder);
/// ```
pub const DEFAULT_OUTBOX_CAPACITY: usize = 65_536;

/// The default capacity of the client's own queue of outgoing messages (see
/// [`NatsBridgeBuilder::client_capacity`]).
///
/// ```
/// use herald::nats::{DEFAULT_CLIENT_CAPACITY, DEFAULT_OUTBOX_CAPACITY};
///
/// // With the defaults, at most this many exports wait for the network.
/// assert_eq!(DEFAULT_CLIENT_CAPACITY + DEFAULT_OUTBOX_CAPACITY, 131_072);
/// ```
pub const DEFAULT_CLIENT_CAPACITY: usize = 65_536;
/// The default of [`NatsBridgeBuilder::import_streams`]: how many streams (origin × subject)
/// one import follows the sequence numbers of.
///
/// ```
/// use herald::nats::{DEFAULT_IMPORT_STREAMS, NatsBridge};
///
/// assert_eq!(DEFAULT_IMPORT_STREAMS, 16_384);
/// let builder = NatsBridge::builder().import_streams(4 * DEFAULT_IMPORT_STREAMS);
/// # drop(builder);
/// ```
pub const DEFAULT_IMPORT_STREAMS: usize = 16_384;
/// The default of [`NatsBridgeBuilder::shutdown_timeout`]: how long
/// [`NatsBridge::shutdown`] waits for the server to take what is queued.
///
/// ```
/// use herald::nats::{DEFAULT_SHUTDOWN_TIMEOUT, NatsBridge};
/// use std::time::Duration;
///
/// assert_eq!(DEFAULT_SHUTDOWN_TIMEOUT, Duration::from_secs(5));
/// // Give a distant server more time to take what is queued.
/// let builder = NatsBridge::builder().shutdown_timeout(2 * DEFAULT_SHUTDOWN_TIMEOUT);
/// # drop(builder);
/// ```
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// The default interval of exporters' heartbeats (the last sequence number sent on each
/// subject, so that importers count a loss at the tail of a burst).
///
/// ```
/// use herald::nats::{DEFAULT_HEARTBEAT, NatsBridge};
/// use std::time::Duration;
///
/// assert_eq!(DEFAULT_HEARTBEAT, Duration::from_secs(2));
/// // Importers learn of a loss at the tail of a burst within about half a second.
/// let builder = NatsBridge::builder().heartbeat(DEFAULT_HEARTBEAT / 4);
/// # drop(builder);
/// ```
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(2);

/// The default byte limit of one batch's payload (see [`Batching::max_bytes`]): 64 KiB.
///
/// ```
/// use herald::nats::{Batching, DEFAULT_BATCH_BYTES};
///
/// assert_eq!(DEFAULT_BATCH_BYTES, 65_536);
/// // Half the default.
/// let batching = Batching::new().max_bytes(DEFAULT_BATCH_BYTES / 2);
/// # drop(batching);
/// ```
pub const DEFAULT_BATCH_BYTES: usize = 64 * 1024;
/// The default item limit of one batch (see [`Batching::max_items`]).
///
/// ```
/// use herald::nats::{Batching, DEFAULT_BATCH_ITEMS};
///
/// assert_eq!(DEFAULT_BATCH_ITEMS, 1024);
/// let batching = Batching::new().max_items(4 * DEFAULT_BATCH_ITEMS);
/// # drop(batching);
/// ```
pub const DEFAULT_BATCH_ITEMS: usize = 1024;

/// Batching of exported notifications, an opt-in setting of
/// [`NatsBridgeBuilder::batching`]: runs of notifications that are already waiting in the
/// outbox, on one subject and from one sender, go out as one NATS message (the
/// [`wire`](super::wire) format's version 2) of at most [`max_bytes`](Self::max_bytes) of
/// payload and [`max_items`](Self::max_items) notifications.
///
/// Defaults: [`DEFAULT_BATCH_BYTES`] and [`DEFAULT_BATCH_ITEMS`]; the byte limit is further
/// capped by the server's `max_payload`. Until the bridge's first connection (see
/// [`NatsBridgeBuilder::retry_initial_connect`]) that is not known, and notifications go out
/// one to a message.
///
/// ```
/// use herald::nats::{Batching, NatsBridge};
///
/// let b = NatsBridge::builder().batching(Batching::default().max_bytes(32 * 1024).max_items(256));
/// # drop(b);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    pub(crate) max_bytes: usize,
    pub(crate) max_items: usize,
}

impl Default for Batching {
    fn default() -> Self {
        Batching {
            max_bytes: DEFAULT_BATCH_BYTES,
            max_items: DEFAULT_BATCH_ITEMS,
        }
    }
}

impl Batching {
    /// Batching with the default limits.
    ///
    /// ```
    /// use herald::nats::{Batching, DEFAULT_BATCH_BYTES, DEFAULT_BATCH_ITEMS, NatsBridge};
    ///
    /// let batching = Batching::new();
    /// assert_eq!(batching, Batching::default());
    /// assert_eq!(
    ///     batching,
    ///     Batching::new().max_bytes(DEFAULT_BATCH_BYTES).max_items(DEFAULT_BATCH_ITEMS)
    /// );
    /// let builder = NatsBridge::builder().batching(batching);
    /// # drop(builder);
    /// ```
    pub fn new() -> Self {
        Batching::default()
    }

    /// The most payload one batch carries, in bytes (each notification's JSON plus a few bytes
    /// of framing), at least 1 (0 is taken as 1). Capped by the server's `max_payload`. A
    /// notification larger than this alone goes out as a message of its own, as without
    /// batching.
    ///
    /// ```
    /// use herald::nats::{Batching, DEFAULT_BATCH_BYTES};
    ///
    /// // Batches of at most 16 KiB of payload.
    /// let small = Batching::new().max_bytes(16 * 1024);
    /// assert_ne!(small, Batching::new());
    /// assert_eq!(Batching::new().max_bytes(DEFAULT_BATCH_BYTES), Batching::new());
    /// ```
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes.max(1);
        self
    }

    /// The most notifications one batch carries (at least 1; 1 turns batching off).
    ///
    /// ```
    /// use herald::nats::Batching;
    ///
    /// let batching = Batching::new().max_items(256);
    /// # drop(batching);
    /// // At least 1: asking for none is the same as 1, which turns batching off.
    /// assert_eq!(Batching::new().max_items(0), Batching::new().max_items(1));
    /// ```
    pub fn max_items(mut self, items: usize) -> Self {
        self.max_items = items.max(1);
        self
    }

    /// The byte limit of a batch on a server that accepts `max_payload` bytes.
    pub(crate) fn byte_limit(&self, max_payload: usize) -> usize {
        self.max_bytes.min(max_payload)
    }
}

/// How a bridge authenticates to its server. Never printed.
#[derive(Clone, Default)]
enum Auth {
    #[default]
    None,
    UserPassword(String, String),
    Token(String),
    NKey(String),
    CredentialsFile(PathBuf),
}

/// Configures and connects a [`NatsBridge`]. Made by [`NatsBridge::builder`].
///
/// Defaults: no subject prefix; reconnect forever with exponential backoff from 50 ms to 5 s
/// (with jitter); fail at once if the first connection fails (see
/// [`retry_initial_connect`](Self::retry_initial_connect)); outbox of
/// [`DEFAULT_OUTBOX_CAPACITY`]; heartbeats every [`DEFAULT_HEARTBEAT`]; no batching (every
/// notification is one NATS message whose payload is its JSON, see
/// [`batching`](Self::batching)); [`shutdown`](NatsBridge::shutdown) waits up to
/// [`DEFAULT_SHUTDOWN_TIMEOUT`] for the server.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// # let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
/// # let err = run(&format!("nats://127.0.0.1:{port}")).await.unwrap_err(); // no server in doctests
/// # assert!(err.is_connect(), "{err:?}"); }
/// # async fn run(closed: &str) -> Result<(), herald::nats::Error> {
/// use herald::nats::NatsBridge;
/// use std::time::Duration;
///
/// let (ca, url) = ("/etc/nats/ca.pem", "tls://nats.internal:4222");
/// # let dir = tempfile::tempdir().unwrap();
/// # let cert = rcgen::generate_simple_self_signed(vec!["nats.internal".into()]).unwrap();
/// # std::fs::write(dir.path().join("ca.pem"), cert.cert.pem()).unwrap();
/// # let (ca, url) = (&dir.path().join("ca.pem"), &closed.replace("nats:", "tls:"));
/// let bridge = NatsBridge::builder()
///     .name("orders-eu-1")
///     .subject_prefix("acme.")
///     .user_password("orders", "s3cret")
///     .ca_file(ca)
///     .require_tls(true)
///     .reconnect_backoff(Duration::from_millis(100), Duration::from_secs(10))
///     .connect(url)
///     .await?;
/// # drop(bridge); Ok(()) }
/// ```
#[derive(Clone)]
pub struct NatsBridgeBuilder {
    name: Option<String>,
    prefix: String,
    auth: Auth,
    ca_files: Vec<PathBuf>,
    client_cert: Option<(PathBuf, PathBuf)>,
    require_tls: bool,
    backoff: (Duration, Duration),
    retry_initial: bool,
    connection_timeout: Duration,
    ping_interval: Duration,
    outbox_capacity: usize,
    subscription_capacity: usize,
    import_streams: usize,
    client_capacity: usize,
    heartbeat: Duration,
    batching: Option<Batching>,
    shutdown_timeout: Duration,
}

impl Default for NatsBridgeBuilder {
    fn default() -> Self {
        NatsBridgeBuilder {
            name: None,
            prefix: String::new(),
            auth: Auth::None,
            ca_files: Vec::new(),
            client_cert: None,
            require_tls: false,
            backoff: (Duration::from_millis(50), Duration::from_secs(5)),
            retry_initial: false,
            connection_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_secs(30),
            outbox_capacity: DEFAULT_OUTBOX_CAPACITY,
            subscription_capacity: 65_536,
            import_streams: DEFAULT_IMPORT_STREAMS,
            client_capacity: DEFAULT_CLIENT_CAPACITY,
            heartbeat: DEFAULT_HEARTBEAT,
            batching: None,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
        }
    }
}

impl NatsBridgeBuilder {
    /// The connection's name, shown by the server's monitoring (`connz`).
    ///
    /// ```
    /// let builder = herald::nats::NatsBridge::builder().name("orders-eu-1");
    /// # drop(builder);
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// A prefix put before every notification name to make its subject (`"acme."` sends
    /// `shop.order.placed` on `acme.shop.order.placed`), on export and import alike. It must end
    /// with a dot. Default: none.
    ///
    /// ```
    /// use herald::nats::{ErrorKind, NatsBridge};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let staging = NatsBridge::builder().subject_prefix("staging.");
    /// # drop(staging);
    /// // Without the trailing dot it is refused, before any connection is tried.
    /// let err = NatsBridge::builder()
    ///     .subject_prefix("staging")
    ///     .connect("nats://127.0.0.1:4222")
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::InvalidName);
    /// # }
    /// ```
    pub fn subject_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Authenticate with a user name and password.
    ///
    /// ```
    /// use herald::nats::{ErrorKind, NatsBridge};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let builder = NatsBridge::builder().user_password("orders", "s3cret");
    /// assert!(!format!("{builder:?}").contains("s3cret")); // never printed
    /// // The URL may carry them instead, but not as well: refused before connecting.
    /// let err = builder
    ///     .connect("nats://orders:s3cret@127.0.0.1:4222")
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Config);
    /// assert!(!err.to_string().contains("s3cret"));
    /// # }
    /// ```
    pub fn user_password(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.auth = Auth::UserPassword(user.into(), password.into());
        self
    }

    /// Authenticate with a token.
    ///
    /// ```
    /// use herald::nats::NatsBridge;
    ///
    /// let builder = NatsBridge::builder().token("s3cret-t0ken");
    /// assert!(!format!("{builder:?}").contains("s3cret-t0ken")); // never printed
    /// ```
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.auth = Auth::Token(token.into());
        self
    }

    /// Authenticate with an NKey seed (`SU...`).
    ///
    /// ```
    /// use herald::nats::{ErrorKind, NatsBridge};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let seed = std::env::var("NATS_NKEY_SEED").unwrap_or_default();
    /// let builder = NatsBridge::builder().nkey(seed);
    /// # drop(builder);
    /// // A seed that is not one is refused before connecting, and never repeated.
    /// let err = NatsBridge::builder()
    ///     .nkey("SUNOTASEED")
    ///     .connect("nats://127.0.0.1:4222")
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Config);
    /// assert!(!err.to_string().contains("SUNOTASEED"));
    /// # }
    /// ```
    pub fn nkey(mut self, seed: impl Into<String>) -> Self {
        self.auth = Auth::NKey(seed.into());
        self
    }

    /// Authenticate with a credentials file (a user JWT and NKey seed, as `nsc` writes them).
    ///
    /// ```
    /// use herald::nats::{ErrorKind, NatsBridge};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let builder = NatsBridge::builder().credentials_file("/etc/nats/orders.creds");
    /// // Read before connecting: a file that cannot be read fails at once.
    /// let err = NatsBridge::builder()
    ///     .credentials_file("/no/such/orders.creds")
    ///     .connect("nats://127.0.0.1:4222")
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Config);
    /// # drop(builder); }
    /// ```
    pub fn credentials_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.auth = Auth::CredentialsFile(path.into());
        self
    }

    /// Trust the CA certificates in this PEM file for the server's TLS certificate (may be
    /// called more than once). The system's roots are not used.
    ///
    /// ```
    /// use herald::nats::{ErrorKind, NatsBridge};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// // The current CA and the next one, during a rotation.
    /// let builder = NatsBridge::builder()
    ///     .ca_file("/etc/nats/ca.pem")
    ///     .ca_file("/etc/nats/ca-next.pem");
    /// // Read before connecting: a file that cannot be read fails at once.
    /// let err = NatsBridge::builder()
    ///     .ca_file("/no/such/ca.pem")
    ///     .connect("tls://127.0.0.1:4222")
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Config);
    /// # drop(builder); }
    /// ```
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_files.push(path.into());
        self
    }

    /// Present this client certificate and key (PEM files) when the server asks (mutual TLS).
    ///
    /// ```
    /// use herald::nats::{ErrorKind, NatsBridge};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let builder = NatsBridge::builder()
    ///     .ca_file("/etc/nats/ca.pem")
    ///     .client_cert("/etc/nats/orders.pem", "/etc/nats/orders-key.pem");
    /// // Read before connecting: files that cannot be read fail at once.
    /// let err = NatsBridge::builder()
    ///     .client_cert("/no/such/cert.pem", "/no/such/key.pem")
    ///     .connect("tls://127.0.0.1:4222")
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Config);
    /// # drop(builder); }
    /// ```
    pub fn client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.client_cert = Some((cert.into(), key.into()));
        self
    }

    /// Refuse to talk to a server without TLS (default: TLS when the URL says `tls://` or the
    /// server requires it).
    ///
    /// ```
    /// let builder = herald::nats::NatsBridge::builder()
    ///     .ca_file("/etc/nats/ca.pem")
    ///     .require_tls(true);
    /// # drop(builder);
    /// ```
    pub fn require_tls(mut self, required: bool) -> Self {
        self.require_tls = required;
        self
    }

    /// The reconnect backoff: the first retry waits about `min`, each next one twice as long,
    /// up to `max`, each with ±25% jitter. The bridge reconnects forever.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// // About 100 ms, 200 ms, 400 ms, ... then every 10 s.
    /// let builder = herald::nats::NatsBridge::builder()
    ///     .reconnect_backoff(Duration::from_millis(100), Duration::from_secs(10));
    /// # drop(builder);
    /// ```
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff = (min, max.max(min));
        self
    }

    /// When the server is unreachable at [`connect`](Self::connect): `false` (default) fails;
    /// `true` returns a bridge at once that connects in the background with the same backoff
    /// (its [`state`](NatsBridge::state) says when).
    ///
    /// ```
    /// use herald::nats::{ConnectionState, NatsBridge};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), herald::nats::Error> {
    /// // Start even while the server is away (nothing listens on port 1).
    /// let bridge = NatsBridge::builder()
    ///     .retry_initial_connect(true)
    ///     .connect("nats://127.0.0.1:1")
    ///     .await?;
    /// assert_eq!(bridge.state(), ConnectionState::Disconnected);
    /// # Ok(()) }
    /// ```
    pub fn retry_initial_connect(mut self, retry: bool) -> Self {
        self.retry_initial = retry;
        self
    }

    /// How long one connection attempt may take (default 5 s).
    ///
    /// ```
    /// let builder = herald::nats::NatsBridge::builder()
    ///     .connection_timeout(std::time::Duration::from_secs(2));
    /// # drop(builder);
    /// ```
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// How often the client pings an idle server to notice a dead connection (default 30 s).
    ///
    /// ```
    /// // Notice a dead connection within about 10 s of silence.
    /// let builder = herald::nats::NatsBridge::builder()
    ///     .ping_interval(std::time::Duration::from_secs(10));
    /// # drop(builder);
    /// ```
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval;
        self
    }

    /// How many exported notifications may wait in the outbox (default
    /// [`DEFAULT_OUTBOX_CAPACITY`]). An export goes straight into the client's queue when that
    /// has room and nothing older waits (see [`client_capacity`](Self::client_capacity)), into
    /// the outbox otherwise. When the outbox is full, exports are dropped, counted and reported
    /// ([`ExportDropped`](super::ExportDropped)); importers see the gap.
    ///
    /// ```
    /// let b = herald::nats::NatsBridge::builder().outbox_capacity(100_000);
    /// # drop(b);
    /// ```
    pub fn outbox_capacity(mut self, capacity: usize) -> Self {
        self.outbox_capacity = capacity.max(1);
        self
    }

    /// How many outgoing messages the NATS client itself queues for its connection (default
    /// [`DEFAULT_CLIENT_CAPACITY`]). Exports, heartbeats and subscriptions pass through it;
    /// while the connection is down it fills, and exports then wait in the outbox. So at most
    /// `client_capacity + outbox_capacity` exports wait for the network.
    ///
    /// ```
    /// let b = herald::nats::NatsBridge::builder().client_capacity(8_192);
    /// # drop(b);
    /// ```
    pub fn client_capacity(mut self, capacity: usize) -> Self {
        self.client_capacity = capacity.max(1);
        self
    }

    /// How many messages one import may hold before the client drops them (default 65 536).
    /// Drops show as sequence gaps ([`RemoteLost`](super::RemoteLost)).
    ///
    /// ```
    /// // An import whose center is slow to drain at peaks.
    /// let builder = herald::nats::NatsBridge::builder().import_capacity(262_144);
    /// # drop(builder);
    /// ```
    pub fn import_capacity(mut self, capacity: usize) -> Self {
        self.subscription_capacity = capacity.max(1);
        self
    }

    /// How many streams (origin × subject) one import follows the sequence numbers of, to
    /// count losses (default [`DEFAULT_IMPORT_STREAMS`], at least 1). Both come from peers
    /// (a remote bridge's id, a family's subjects), so the number is bounded: past it, the
    /// import forgets the streams seen least recently, counted in
    /// [`ImportStats::forgotten`](super::ImportStats::forgotten); a forgotten stream is
    /// followed again from its next message, and what it lost in between is not counted.
    /// Live bridges keep touching their streams (messages, or [heartbeats](Self::heartbeat)
    /// when idle), so with fewer live streams than this only a flood of new origins or
    /// subjects (which the server's subject permissions should prevent) makes an import
    /// forget them. Each stream costs about 250 bytes plus twice its subject's length.
    ///
    /// ```
    /// // An import of a family with many subjects from many processes.
    /// let builder = herald::nats::NatsBridge::builder().import_streams(100_000);
    /// # drop(builder);
    /// ```
    pub fn import_streams(mut self, limit: usize) -> Self {
        self.import_streams = limit.max(1);
        self
    }

    /// How often exporters send a heartbeat carrying the last sequence number of each subject
    /// (default [`DEFAULT_HEARTBEAT`]): an importer that missed the last messages of a burst
    /// learns it from the next heartbeat instead of the next message.
    ///
    /// ```
    /// let builder = herald::nats::NatsBridge::builder()
    ///     .heartbeat(std::time::Duration::from_millis(500));
    /// # drop(builder);
    /// ```
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        self.heartbeat = interval.max(Duration::from_millis(1));
        self
    }

    /// How long [`NatsBridge::shutdown`] (or the last handle's drop) waits for the server to
    /// take what is queued: the outbox, the last heartbeats and the client's own queue
    /// (default [`DEFAULT_SHUTDOWN_TIMEOUT`]). With the connection up this takes a round trip;
    /// with the server gone, shutdown returns once this time has passed instead of waiting
    /// for it to come back. What the outbox still holds then is dropped, counted in
    /// [`BridgeMetrics::export_dropped`] and reported ([`ExportDropped`](super::ExportDropped));
    /// what the client's queue still holds may never reach the server (importers count it
    /// lost). A bridge that never exported a notification does not wait for a server that is
    /// gone at all (see [`NatsBridge::shutdown`]).
    ///
    /// ```
    /// let b = herald::nats::NatsBridge::builder().shutdown_timeout(std::time::Duration::from_secs(2));
    /// # drop(b);
    /// ```
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Sends runs of exported notifications as batches (default: off).
    ///
    /// With batching on, the task that publishes the outbox packs consecutive notifications
    /// that are already waiting in it, on one subject and from one sender, into one NATS
    /// message (version 2 of the [`wire`](super::wire) format), up to the limits of
    /// [`Batching`]. It never waits for more to arrive: no timer, no added latency. A lone
    /// notification, or one posted while the outbox is idle, goes out at once as a message of
    /// its own, as without batching; batches form only while notifications are posted faster
    /// than they are published. Order per sender and per subject is unchanged, and importers
    /// still count every notification (`posted + lost == sent`). The price: a notification
    /// sent at once also wakes the publishing task (so that the ones posted right after it
    /// wait in the outbox and batch), a little CPU per lone notification.
    /// [`BridgeMetrics::batches`] and [`BridgeMetrics::batched`] tell how much batching
    /// happens.
    ///
    /// **Why it is opt-in.** Without batching every notification is one NATS message whose
    /// payload is exactly its JSON, which any NATS client (a service in another language, the
    /// `nats` CLI) can read. A batch's payload is several notifications framed together,
    /// which only herald's importers read (every herald importer reads both forms, batching or
    /// not). So turn it on when the notifications' subscribers are herald bridges and the
    /// rate is high (thousands per second and more): the server, the clients and herald's
    /// metadata cost per message, and a batch pays that once for many notifications
    /// (measured in `benches/nats.rs`). Importers of a herald version without
    /// batches count each batch as one undecodable message and its notifications as lost.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// # let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    /// # let err = run(&format!("nats://127.0.0.1:{port}")).await.unwrap_err(); // no server in doctests
    /// # assert!(err.is_connect(), "{err:?}"); }
    /// # async fn run(closed: &str) -> Result<(), herald::nats::Error> {
    /// use herald::nats::{Batching, NatsBridge};
    ///
    /// // Herald-to-herald traffic at high rates: batches of up to 64 KiB.
    /// let url = "nats://127.0.0.1:4222";
    /// # let url = closed; // no server in doctests: a closed local port
    /// let bridge = NatsBridge::builder()
    ///     .batching(Batching::new().max_bytes(64 * 1024))
    ///     .connect(url)
    ///     .await?;
    /// # drop(bridge); Ok(()) }
    /// ```
    pub fn batching(mut self, batching: Batching) -> Self {
        self.batching = Some(batching);
        self
    }

    /// Connects to `url` (`nats://host:4222`, `tls://...`; several separated by commas, tried
    /// in turn). Credentials may come in the URL instead of [`user_password`](Self::user_password)
    /// or [`token`](Self::token) (not both): `nats://user:password@host`, `nats://token@host`,
    /// percent-encoded where a URL needs it, the same in every URL of a list. Messages show the
    /// URL only through [`redact_url`](super::redact_url).
    ///
    /// Fails with [`ErrorKind::InvalidName`] for a bad subject prefix, [`ErrorKind::Config`]
    /// for a bad URL or unusable credentials or certificate files (checked before connecting:
    /// a credentials file, CA file, client certificate or key that cannot be read or holds
    /// nothing usable, an NKey seed that is not one), [`ErrorKind::Connect`] when the server
    /// cannot be reached or refuses the credentials. Must run inside a tokio runtime.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// # let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    /// # let err = run(&format!("nats://127.0.0.1:{port}")).await.unwrap_err(); // no server in doctests
    /// # assert!(err.is_connect() && !format!("{err} {err:?}").contains("s3cret"), "{err:?}"); }
    /// # async fn run(closed: &str) -> Result<(), herald::nats::Error> {
    /// use herald::nats::NatsBridge;
    ///
    /// // Two servers of a cluster, tried in turn, with the credentials in the URLs.
    /// let urls = "nats://orders:s3cret@10.0.0.1:4222,nats://orders:s3cret@10.0.0.2:4222";
    /// # let urls = &format!("nats://orders:s3cret@{0},nats://orders:s3cret@{0}", &closed[7..]);
    /// let bridge = NatsBridge::builder()
    ///     .name("orders")
    ///     .connect(urls)
    ///     .await
    ///     .inspect_err(|e| eprintln!("{:?}: {e}", e.kind()))?; // no password in `e`
    /// # drop(bridge); Ok(()) }
    /// ```
    pub async fn connect(self, url: &str) -> Result<NatsBridge, Error> {
        if !self.prefix.is_empty() {
            wire::check_prefix(&self.prefix, "the subject prefix")?;
        }
        let servers = Servers::parse(url)?;
        let auth = match (&self.auth, servers.auth) {
            (auth, None) => auth.clone(),
            (Auth::None, Some(UrlAuth::UserPassword(user, password))) => {
                Auth::UserPassword(user, password)
            }
            (Auth::None, Some(UrlAuth::Token(token))) => Auth::Token(token),
            (_, Some(_)) => {
                return Err(Error::new(
                    ErrorKind::Config,
                    "credentials both in the URL and set on the builder: give them once",
                ));
            }
        };
        let id = BridgeId::random();
        let (state_tx, _) = watch::channel(ConnectionState::Disconnected);
        let shared = Arc::new(Shared {
            id,
            counters: Counters::default(),
            connected_once: AtomicBool::new(false),
            state: state_tx,
            centers: Mutex::new(Vec::new()),
        });
        let mut options = match &auth {
            Auth::None => ConnectOptions::new(),
            Auth::UserPassword(u, p) => {
                ConnectOptions::with_user_and_password(u.clone(), p.clone())
            }
            Auth::Token(t) => ConnectOptions::with_token(t.clone()),
            Auth::NKey(seed) => {
                check_seed(seed)?;
                ConnectOptions::with_nkey(seed.clone())
            }
            Auth::CredentialsFile(path) => ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|e| {
                    Error::with_source(
                        ErrorKind::Config,
                        format!("cannot read the credentials file {}", path.display()),
                        e,
                    )
                })?,
        };
        options = options
            .no_echo()
            .max_reconnects(None)
            .connection_timeout(self.connection_timeout)
            .ping_interval(self.ping_interval)
            .subscription_capacity(self.subscription_capacity)
            .client_capacity(self.client_capacity)
            .require_tls(self.require_tls)
            .reconnect_delay_callback({
                let (min, max) = self.backoff;
                move |attempts| backoff(attempts, min, max)
            })
            .event_callback({
                let shared = shared.clone();
                move |event| {
                    shared.on_event(&event);
                    async {}
                }
            });
        if let Some(name) = &self.name {
            options = options.name(name);
        }
        options = tls::configure(options, &self.ca_files, self.client_cert.as_ref())?;
        if self.retry_initial {
            options = options.retry_on_initial_connect();
        }
        let client = options
            .connect(servers.urls)
            .await
            .map_err(|e| connect_error(e, &super::redact_url(url)))?;
        if client.connection_state() == async_nats::connection::State::Connected {
            shared.set_state(ConnectionState::Connected, "connected");
        }
        let outbox = Arc::new(Outbox::new(
            self.outbox_capacity,
            client.clone(),
            id,
            self.batching.filter(|b| b.max_items > 1),
            self.shutdown_timeout,
        ));
        let publisher = tokio::spawn(super::export::publish_loop(
            client.clone(),
            outbox.clone(),
            shared.clone(),
            self.heartbeat,
        ));
        Ok(NatsBridge {
            inner: Arc::new(Inner {
                id,
                client,
                prefix: self.prefix,
                import_streams: self.import_streams,
                shared,
                outbox,
                publisher: tokio::sync::Mutex::new(Some(publisher)),
            }),
        })
    }
}

/// The error of a failed connect to `shown` (a URL already passed through
/// [`redact_url`](super::redact_url)): a server list that does not parse is
/// [`Config`](ErrorKind::Config), anything else [`Connect`](ErrorKind::Connect).
pub(super) fn connect_error(e: async_nats::ConnectError, shown: &str) -> Error {
    let kind = match e.kind() {
        async_nats::ConnectErrorKind::ServerParse => ErrorKind::Config,
        _ => ErrorKind::Connect,
    };
    Error::with_source(kind, format!("cannot connect to NATS at {shown}"), e)
}

/// Refuses an NKey seed the client could not use, before connecting. The seed is never
/// repeated.
fn check_seed(seed: &str) -> Result<(), Error> {
    nkeys::KeyPair::from_seed(seed).map(drop).map_err(|e| {
        Error::new(
            ErrorKind::Config,
            format!("the NKey seed is not a valid seed ({})", e.kind()),
        )
    })
}

/// TLS files, read and checked before connecting.
mod tls {
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    use async_nats::ConnectOptions;
    use async_nats::rustls::pki_types::pem::PemObject;
    use async_nats::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use async_nats::rustls::{self, ClientConfig, RootCertStore};

    use super::{Error, ErrorKind};

    fn config_error(what: &str, path: &Path, why: impl std::fmt::Display) -> Error {
        Error::new(
            ErrorKind::Config,
            format!("cannot use the {what} {}: {why}", path.display()),
        )
    }

    /// The certificates of a PEM file: at least one.
    fn certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|e| config_error(what, path, e))?;
        if certs.is_empty() {
            return Err(config_error(what, path, "no PEM certificate in it"));
        }
        Ok(certs)
    }

    fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
        PrivateKeyDer::from_pem_file(path).map_err(|e| config_error("client key", path, e))
    }

    /// Checks the CA files and the client certificate and key, and sets them on `options`.
    ///
    /// One CA file (or none) is handed to the client by path, as read here. Several are put
    /// in one TLS configuration built here, because the client keeps only the last CA file
    /// it is given (`ConnectOptions::add_root_certificates` replaces the one before).
    pub(super) fn configure(
        mut options: ConnectOptions,
        ca_files: &[PathBuf],
        client_cert: Option<&(PathBuf, PathBuf)>,
    ) -> Result<ConnectOptions, Error> {
        let mut roots = RootCertStore::empty();
        for ca in ca_files {
            for cert in certificates(ca, "CA file")? {
                roots
                    .add(cert)
                    .map_err(|e| config_error("CA file", ca, e))?;
            }
        }
        let client = match client_cert {
            Some((cert, key)) => {
                Some((certificates(cert, "client certificate")?, private_key(key)?))
            }
            None => None,
        };
        if ca_files.len() <= 1 {
            if let Some(ca) = ca_files.first() {
                options = options.add_root_certificates(ca.clone());
            }
            if let Some((cert, key)) = client_cert {
                options = options.add_client_certificate(cert.clone(), key.clone());
            }
            return Ok(options);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::new(ErrorKind::Config, format!("TLS: {e}")))?
            .with_root_certificates(roots);
        let config = match client {
            Some((certs, key)) => builder.with_client_auth_cert(certs, key).map_err(|e| {
                Error::new(
                    ErrorKind::Config,
                    format!("the client certificate and key cannot be used together: {e}"),
                )
            })?,
            None => builder.with_no_client_auth(),
        };
        Ok(options.tls_client_config(config))
    }
}

impl fmt::Debug for NatsBridgeBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match &self.auth {
            Auth::None => "none",
            Auth::UserPassword(..) => "user and password",
            Auth::Token(_) => "token",
            Auth::NKey(_) => "nkey",
            Auth::CredentialsFile(_) => "credentials file",
        };
        f.debug_struct("NatsBridgeBuilder")
            .field("name", &self.name)
            .field("subject_prefix", &self.prefix)
            .field("auth", &auth)
            .field("ca_files", &self.ca_files)
            .field("require_tls", &self.require_tls)
            .field("backoff", &self.backoff)
            .field("retry_initial_connect", &self.retry_initial)
            .field("outbox_capacity", &self.outbox_capacity)
            .field("client_capacity", &self.client_capacity)
            .field("heartbeat", &self.heartbeat)
            .field("batching", &self.batching)
            .finish_non_exhaustive()
    }
}

/// Exponential backoff with ±25% jitter: about `min` for the first retry, doubling to `max`.
fn backoff(attempts: usize, min: Duration, max: Duration) -> Duration {
    if attempts == 0 {
        return Duration::ZERO;
    }
    let exp = u32::try_from(attempts - 1).unwrap_or(u32::MAX).min(20);
    let base = min.saturating_mul(1u32 << exp).min(max);
    // Jitter from the clock's low bits: enough to keep many processes from retrying in step.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let factor = 0.75 + f64::from(nanos % 1000) / 2000.0;
    base.mul_f64(factor)
}

/// A bridge between centers in this process and a NATS server: exports chosen notification
/// types to subjects, imports what other processes export. Cheap to clone.
///
/// See the [module docs](super) for the contract (origins, no echo, order, loss accounting).
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// # let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
/// # let err = run(&format!("nats://127.0.0.1:{port}")).await.unwrap_err(); // no server in doctests
/// # assert!(err.is_connect(), "{err:?}"); }
/// # async fn run(closed: &str) -> Result<(), herald::nats::Error> {
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
/// # let url = closed; // no server in doctests: a closed local port
/// let bridge = NatsBridge::connect(url).await?;
/// let _export = center.observer::<OrderPlaced>().forward(bridge.publish())?;
/// let _import = bridge.import::<OrderPlaced>(&center).await?;
/// // A clone is the same connection and the same origin.
/// let health = bridge.clone();
/// assert_eq!(health.id(), bridge.id());
/// tokio::spawn(async move { println!("{:?}", health.ping().await) });
/// // ... at the end:
/// bridge.shutdown().await?;
/// # Ok(()) }
/// ```
pub struct NatsBridge {
    pub(crate) inner: Arc<Inner>,
}

impl Clone for NatsBridge {
    fn clone(&self) -> Self {
        NatsBridge {
            inner: self.inner.clone(),
        }
    }
}

pub(crate) struct Inner {
    pub(crate) id: BridgeId,
    pub(crate) client: async_nats::Client,
    pub(crate) prefix: String,
    /// [`NatsBridgeBuilder::import_streams`].
    pub(crate) import_streams: usize,
    pub(crate) shared: Arc<Shared>,
    pub(crate) outbox: Arc<Outbox>,
    publisher: tokio::sync::Mutex<Option<tokio::task::JoinHandle<bool>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The publisher drains what is queued, sends the last heartbeats, and stops.
        self.outbox.close();
    }
}

impl NatsBridge {
    /// Configures a bridge.
    ///
    /// ```
    /// use herald::nats::NatsBridge;
    ///
    /// let builder = NatsBridge::builder().name("orders-eu-1").subject_prefix("acme.");
    /// // ...then `builder.connect("nats://127.0.0.1:4222").await?`
    /// # drop(builder);
    /// ```
    pub fn builder() -> NatsBridgeBuilder {
        NatsBridgeBuilder::default()
    }

    /// Connects with the default options (see [`NatsBridgeBuilder`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// # let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    /// # let err = run(&format!("nats://127.0.0.1:{port}")).await.unwrap_err(); // no server in doctests
    /// # assert!(err.is_connect(), "{err:?}"); }
    /// # async fn run(closed: &str) -> Result<(), herald::nats::Error> {
    /// let url = "nats://127.0.0.1:4222";
    /// # let url = closed; // no server in doctests: a closed local port
    /// let bridge = herald::nats::NatsBridge::connect(url).await?;
    /// println!("bridge {} is {:?}", bridge.id(), bridge.state());
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> Result<NatsBridge, Error> {
        NatsBridgeBuilder::default().connect(url).await
    }

    /// This bridge's id: the origin of everything it exports.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> Result<(), herald::nats::Error> {
    /// # let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    /// use herald::nats::NatsBridge;
    ///
    /// let url = "nats://127.0.0.1:4222";
    /// # let url = &format!("nats://127.0.0.1:{port}"); // no server in doctests: a closed local port
    /// let a = NatsBridge::builder()
    /// #   .retry_initial_connect(true) // which connects in the background
    ///     .connect(url)
    ///     .await?;
    /// let b = NatsBridge::builder()
    /// #   .retry_initial_connect(true) // which connects in the background
    ///     .connect(url)
    ///     .await?;
    /// assert_ne!(a.id(), b.id()); // fresh for every bridge, even in one process
    /// println!("exporting as {}", a.id()); // importers see it as `Origin::bridge()`
    /// # Ok(()) }
    /// ```
    pub fn id(&self) -> BridgeId {
        self.inner.id
    }

    /// The subject prefix (empty by default).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> Result<(), herald::nats::Error> {
    /// # let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    /// use herald::nats::NatsBridge;
    ///
    /// let url = "nats://127.0.0.1:4222";
    /// # let url = &format!("nats://127.0.0.1:{port}"); // no server in doctests: a closed local port
    /// let bridge = NatsBridge::builder()
    ///     .subject_prefix("acme.")
    /// #   .retry_initial_connect(true) // which connects in the background
    ///     .connect(url)
    ///     .await?;
    /// assert_eq!(bridge.subject_prefix(), "acme.");
    /// # Ok(()) }
    /// ```
    pub fn subject_prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The connection's state now.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> Result<(), herald::nats::Error> {
    /// # let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    /// use herald::nats::{ConnectionState, NatsBridge};
    ///
    /// let url = "nats://127.0.0.1:4222";
    /// # let url = &format!("nats://127.0.0.1:{port}"); // no server in doctests: a closed local port
    /// let bridge = NatsBridge::builder()
    /// #   .retry_initial_connect(true) // which connects in the background
    ///     .connect(url)
    ///     .await?;
    /// // A readiness probe.
    /// let ready = bridge.state() == ConnectionState::Connected;
    /// println!("ready: {ready}");
    /// # assert!(!ready); // no server in doctests
    /// # Ok(()) }
    /// ```
    pub fn state(&self) -> ConnectionState {
        *self.inner.shared.state.borrow()
    }

    /// A receiver that sees every change of the connection's state (`changed().await`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> Result<(), herald::nats::Error> {
    /// # let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    /// use herald::nats::{ConnectionState, NatsBridge};
    ///
    /// let url = "nats://127.0.0.1:4222";
    /// # let url = &format!("nats://127.0.0.1:{port}"); // no server in doctests: a closed local port
    /// let bridge = NatsBridge::builder()
    /// #   .retry_initial_connect(true) // which connects in the background
    ///     .connect(url)
    ///     .await?;
    /// let mut state = bridge.watch_state();
    /// let watcher = tokio::spawn(async move {
    ///     while state.changed().await.is_ok() {
    ///         let now = *state.borrow_and_update();
    ///         eprintln!("NATS: {now:?}");
    ///         if now == ConnectionState::Closed {
    ///             break;
    ///         }
    ///     }
    /// });
    /// // ... at the end:
    /// bridge.shutdown().await?;
    /// watcher.await.unwrap(); // it saw `Closed`
    /// # Ok(()) }
    /// ```
    pub fn watch_state(&self) -> watch::Receiver<ConnectionState> {
        self.inner.shared.state.subscribe()
    }

    /// What the bridge counted so far.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> Result<(), herald::nats::Error> {
    /// # let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    /// use herald::nats::NatsBridge;
    ///
    /// let url = "nats://127.0.0.1:4222";
    /// # let url = &format!("nats://127.0.0.1:{port}"); // no server in doctests: a closed local port
    /// let bridge = NatsBridge::builder()
    /// #   .retry_initial_connect(true) // which connects in the background
    ///     .connect(url)
    ///     .await?;
    /// let m = bridge.metrics();
    /// println!(
    ///     "exported {} (dropped {}), imported {} (lost {}), {} reconnects",
    ///     m.exported, m.export_dropped, m.imported, m.lost, m.reconnects
    /// );
    /// assert_eq!((m.exported, m.imported), (0, 0)); // counted from the bridge's start
    /// # Ok(()) }
    /// ```
    pub fn metrics(&self) -> BridgeMetrics {
        self.inner.shared.counters.snapshot()
    }

    /// The NATS client underneath, for what the bridge does not wrap (requests, JetStream).
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use herald::nats::NatsBridge;
    ///
    /// let bridge = NatsBridge::connect("nats://127.0.0.1:4222").await?;
    /// // A request to a service, on the bridge's connection.
    /// let reply = bridge.client().request("time.now", "".into()).await?;
    /// println!("{}", String::from_utf8_lossy(&reply.payload));
    /// # Ok(()) }
    /// ```
    pub fn client(&self) -> &async_nats::Client {
        &self.inner.client
    }

    /// One round trip to the server (a request the server answers itself): a health check,
    /// and a barrier: every subscription made before it is in force on the server when it
    /// returns. Returns the round-trip time.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> Result<(), herald::nats::Error> {
    /// # let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    /// use herald::nats::NatsBridge;
    ///
    /// let url = "nats://127.0.0.1:4222";
    /// # let url = &format!("nats://127.0.0.1:{port}"); // no server in doctests: a closed local port
    /// let bridge = NatsBridge::builder()
    /// #   .retry_initial_connect(true) // which connects in the background
    ///     .connect(url)
    ///     .await?;
    /// match bridge.ping().await {
    ///     Ok(rtt) => println!("NATS round trip: {rtt:?}"),
    ///     Err(e) => eprintln!("NATS unhealthy: {e}"), // no answer within the request timeout
    /// }
    /// # assert_eq!(bridge.ping().await.unwrap_err().kind(), herald::nats::ErrorKind::Subscribe);
    /// # Ok(()) }
    /// ```
    pub async fn ping(&self) -> Result<Duration, Error> {
        round_trip(&self.inner.client, self.inner.id).await
    }

    /// Stops gracefully: no new exports are accepted (they are counted as dropped), the
    /// outbox is sent, a last heartbeat tells importers the final sequence numbers, imports
    /// stop, and the connection is drained and closed. Idempotent.
    ///
    /// Returns within [`NatsBridgeBuilder::shutdown_timeout`] even when the server is gone:
    /// then what the outbox still holds is dropped (counted and reported as
    /// [`ExportDropped`](super::ExportDropped)), and it fails with [`ErrorKind::Connect`]. The
    /// bridge is closed either way (its client keeps trying to reconnect in the background to
    /// hand over what its own queue holds, for as long as the runtime runs).
    ///
    /// A bridge that never exported a notification (none sent, queued or dropped: the bridge
    /// of a push worker, or one that only imports) owes importers no last heartbeat: with the
    /// server gone at shutdown it does not wait for it, and returns `Ok` at once.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> Result<(), herald::nats::Error> {
    /// # let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    /// use herald::nats::{ConnectionState, NatsBridge};
    ///
    /// let url = "nats://127.0.0.1:4222";
    /// # let url = &format!("nats://127.0.0.1:{port}"); // no server in doctests: a closed local port
    /// let bridge = NatsBridge::builder()
    /// #   .retry_initial_connect(true) // which connects in the background
    ///     .connect(url)
    ///     .await?;
    /// // ... exports and imports ...
    /// if let Err(e) = bridge.shutdown().await {
    ///     eprintln!("shut down without the server: {e}");
    /// }
    /// assert_eq!(bridge.state(), ConnectionState::Closed); // either way
    /// bridge.shutdown().await?; // idempotent
    /// # Ok(()) }
    /// ```
    pub async fn shutdown(&self) -> Result<(), Error> {
        self.inner.outbox.close();
        // The lock also makes a second, concurrent shutdown wait for the first.
        let mut publisher = self.inner.publisher.lock().await;
        let Some(task) = publisher.take() else {
            return Ok(());
        };
        let flushed = task.await.unwrap_or(false);
        let deadline = self
            .inner
            .outbox
            .deadline()
            .unwrap_or_else(tokio::time::Instant::now);
        let drained = tokio::time::timeout_at(deadline, self.inner.client.drain()).await;
        self.inner
            .shared
            .set_state(ConnectionState::Closed, "shut down");
        match drained {
            Ok(Ok(())) if flushed => Ok(()),
            Ok(Err(e)) => Err(Error::with_source(
                ErrorKind::Closed,
                "draining the connection",
                e,
            )),
            _ => Err(Error::new(
                ErrorKind::Connect,
                format!(
                    "shut down without the server: it did not take what was queued within {:?} \
                     (what the outbox held is counted in export_dropped)",
                    self.inner.outbox.shutdown_timeout()
                ),
            )),
        }
    }
}

impl fmt::Debug for NatsBridge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsBridge")
            .field("id", &self.inner.id)
            .field("subject_prefix", &self.inner.prefix)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

/// A request to a subject nobody serves: the server answers "no responders" itself, after it
/// processed everything this connection sent before (subscriptions included).
pub(crate) async fn round_trip(
    client: &async_nats::Client,
    id: BridgeId,
) -> Result<Duration, Error> {
    let start = Instant::now();
    let subject = format!("_HERALD.PING.{id}");
    match client.request(subject, bytes::Bytes::new()).await {
        Ok(_) => Ok(start.elapsed()),
        Err(e) if e.kind() == async_nats::RequestErrorKind::NoResponders => Ok(start.elapsed()),
        Err(e) => Err(Error::with_source(
            ErrorKind::Subscribe,
            "no round trip to the NATS server",
            e,
        )),
    }
}

/// What the bridge counts. Every notification exported is, in the end, published or dropped
/// (`exported == published + export_dropped` once the outbox is empty); every notification an
/// import receives (a batch counts each of its items) is posted, counted undecodable, or an
/// echo.
///
/// ```
/// use herald::nats::BridgeMetrics;
///
/// /// Whether every exported notification was published or counted as dropped (true once
/// /// the outbox is empty).
/// fn exports_accounted_for(m: &BridgeMetrics) -> bool {
///     m.exported == m.published + m.export_dropped
/// }
///
/// /// The mean number of notifications per batch, if any batch was sent.
/// fn mean_batch(m: &BridgeMetrics) -> Option<f64> {
///     (m.batches > 0).then(|| m.batched as f64 / m.batches as f64)
/// }
///
/// // A bridge's counters come from `bridge.metrics()`; a new bridge's are all zero.
/// let m = BridgeMetrics::default();
/// assert!(exports_accounted_for(&m));
/// assert_eq!(mean_batch(&m), None);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BridgeMetrics {
    /// Notifications handed to the bridge by exports (each got a sequence number).
    pub exported: u64,
    /// Of those, dropped before publishing (outbox full, shut down, not serializable).
    pub export_dropped: u64,
    /// Of the exported notifications, those handed to the client for its connection: its
    /// queue, which it writes to the socket in order and keeps while disconnected (sending it
    /// after the reconnect). Not proof of delivery: what a connection had not delivered when it broke, and what the
    /// queue still holds when the bridge shuts down without the server (see
    /// [`NatsBridgeBuilder::shutdown_timeout`]), never reaches the server, and importers
    /// count it lost.
    pub published: u64,
    /// Imported notifications that exports skipped (never sent back out: no loops).
    pub not_reexported: u64,
    /// Of the published notifications, those sent in batches (see
    /// [`NatsBridgeBuilder::batching`]); the others went one to a message.
    pub batched: u64,
    /// Batches published: `batched / batches` is their mean size.
    pub batches: u64,
    /// Heartbeats sent.
    pub heartbeats: u64,
    /// Notifications imported and posted.
    pub imported: u64,
    /// Notifications imports know they missed (sequence gaps).
    pub lost: u64,
    /// Notifications (or messages whose metadata is unreadable) imports could not decode.
    pub undecodable: u64,
    /// Own notifications that came back (dropped; the server is told not to echo them).
    pub echoes: u64,
    /// Times the connection was lost.
    pub disconnects: u64,
    /// Times it came back.
    pub reconnects: u64,
    /// Times the client reported an import too slow (messages dropped in the client).
    pub slow_consumers: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) exported: AtomicU64,
    pub(crate) export_dropped: AtomicU64,
    pub(crate) published: AtomicU64,
    pub(crate) not_reexported: AtomicU64,
    pub(crate) batched: AtomicU64,
    pub(crate) batches: AtomicU64,
    pub(crate) heartbeats: AtomicU64,
    pub(crate) imported: AtomicU64,
    pub(crate) lost: AtomicU64,
    pub(crate) undecodable: AtomicU64,
    pub(crate) echoes: AtomicU64,
    pub(crate) disconnects: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) slow_consumers: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> BridgeMetrics {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        BridgeMetrics {
            exported: l(&self.exported),
            export_dropped: l(&self.export_dropped),
            published: l(&self.published),
            not_reexported: l(&self.not_reexported),
            batched: l(&self.batched),
            batches: l(&self.batches),
            heartbeats: l(&self.heartbeats),
            imported: l(&self.imported),
            lost: l(&self.lost),
            undecodable: l(&self.undecodable),
            echoes: l(&self.echoes),
            disconnects: l(&self.disconnects),
            reconnects: l(&self.reconnects),
            slow_consumers: l(&self.slow_consumers),
        }
    }
}

/// What the bridge, its tasks and the client's event callback share.
pub(crate) struct Shared {
    pub(crate) id: BridgeId,
    pub(crate) counters: Counters,
    /// Whether the client has been connected (so knows the server's `max_payload`: before,
    /// it assumes the server default).
    pub(crate) connected_once: AtomicBool,
    state: watch::Sender<ConnectionState>,
    /// Centers with a live import or export, with how many: connection changes are posted
    /// into each.
    centers: Mutex<Vec<(NotificationCenter, usize)>>,
}

impl Shared {
    /// The shared state of a bridge that has no client: for unit tests of what reads it
    /// (an import's task).
    #[cfg(test)]
    pub(crate) fn detached(id: BridgeId) -> Arc<Shared> {
        Arc::new(Shared {
            id,
            counters: Counters::default(),
            connected_once: AtomicBool::new(false),
            state: watch::channel(ConnectionState::Disconnected).0,
            centers: Mutex::new(Vec::new()),
        })
    }

    fn set_state(&self, state: ConnectionState, detail: &str) {
        if state == ConnectionState::Connected {
            self.connected_once.store(true, Ordering::Release);
        }
        let changed = self.state.send_if_modified(|s| {
            let changed = *s != state && *s != ConnectionState::Closed;
            if changed {
                *s = state;
            }
            changed
        });
        if changed {
            let centers: Vec<NotificationCenter> =
                self.centers.lock().iter().map(|(c, _)| c.clone()).collect();
            for center in centers {
                center.post(ConnectionChanged {
                    bridge: self.id,
                    state,
                    detail: detail.to_owned(),
                });
            }
        }
    }

    fn on_event(&self, event: &Event) {
        match event {
            Event::Connected => {
                if *self.state.borrow() == ConnectionState::Disconnected
                    && self.counters.disconnects.load(Ordering::Relaxed) > 0
                {
                    self.counters.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                self.set_state(ConnectionState::Connected, "connected");
            }
            Event::Disconnected => {
                if *self.state.borrow() == ConnectionState::Connected {
                    self.counters.disconnects.fetch_add(1, Ordering::Relaxed);
                }
                self.set_state(ConnectionState::Disconnected, "disconnected");
            }
            Event::Closed => self.set_state(ConnectionState::Closed, "closed"),
            Event::SlowConsumer(_) => {
                self.counters.slow_consumers.fetch_add(1, Ordering::Relaxed);
            }
            other => tracing::warn!(bridge = %self.id, "nats: {other}"),
        }
    }

    /// Registers a center that has an import or export; the guard unregisters it.
    pub(crate) fn attach(self: &Arc<Self>, center: &NotificationCenter) -> CenterRef {
        let mut centers = self.centers.lock();
        match centers.iter_mut().find(|(c, _)| c.same_center(center)) {
            Some((_, n)) => *n += 1,
            None => centers.push((center.clone(), 1)),
        }
        CenterRef {
            shared: self.clone(),
            center: center.clone(),
        }
    }
}

/// Keeps a center registered for connection reports while an import or export lives.
pub(crate) struct CenterRef {
    shared: Arc<Shared>,
    center: NotificationCenter,
}

impl Drop for CenterRef {
    fn drop(&mut self) {
        let mut centers = self.shared.centers.lock();
        if let Some(i) = centers
            .iter()
            .position(|(c, _)| c.same_center(&self.center))
        {
            centers[i].1 -= 1;
            if centers[i].1 == 0 {
                centers.swap_remove(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_bounded_jitter() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(2));
        assert_eq!(backoff(0, min, max), Duration::ZERO);
        for (attempt, base) in [(1, 100), (2, 200), (3, 400), (6, 2000), (60, 2000)] {
            let d = backoff(attempt, min, max).as_secs_f64() * 1000.0;
            let base = f64::from(base);
            assert!(
                d >= base * 0.75 - 1.0 && d <= base * 1.25 + 1.0,
                "{attempt}: {d}"
            );
        }
    }

    #[test]
    fn builder_debug_hides_secrets() {
        let b = NatsBridge::builder()
            .user_password("u", "hunter2")
            .token("tok-123");
        let text = format!("{b:?}");
        assert!(
            !text.contains("hunter2") && !text.contains("tok-123"),
            "{text}"
        );
        let b = NatsBridge::builder().nkey("SUSEEDSECRET");
        assert!(!format!("{b:?}").contains("SUSEEDSECRET"));
    }
}
