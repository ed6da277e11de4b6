//! Import: [`NatsBridge::import`], [`NatsBridge::import_family`] ([`FamilyImport`]), the
//! [`Import`] guard, and the task that posts what arrives.

use std::collections::HashMap;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_core::Stream;
use serde::de::DeserializeOwned;

use super::bridge::{CenterRef, Shared, round_trip};
use super::origin::OriginCache;
use super::{
    BridgeId, Error, ErrorKind, NatsBridge, Origin, RemoteLost, RemoteNotification,
    RemoteUndecodable, wire,
};
use crate::{Notification, NotificationCenter, SenderId};

/// Reads one payload as a registered type and posts it with the sender its third argument
/// gives, asked only once the payload has decoded: that records the origin in the
/// process-wide table ([`Origin::sender_id`]), which never forgets one, so a message that
/// cannot be read must not get there.
type Decoder = Arc<
    dyn Fn(&[u8], &NotificationCenter, &mut dyn FnMut() -> SenderId) -> Result<(), String>
        + Send
        + Sync,
>;

fn decoder<N: Notification + DeserializeOwned>() -> Decoder {
    Arc::new(|payload, center, sender| {
        let value: N = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
        center.post_from(sender(), value);
        Ok(())
    })
}

impl NatsBridge {
    /// Imports `N`: what other processes export on `N`'s subject is posted into `center`
    /// with its origin's sender ([`Origin::sender_id`]). Returns once the server holds the
    /// subscription (after a round trip): nothing published after that is missed.
    ///
    /// Refused with [`ErrorKind::InvalidName`] like an export; fails with
    /// [`ErrorKind::Subscribe`] when the server does not confirm in time.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// # let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    /// # let err = run(&format!("nats://127.0.0.1:{port}")).await.unwrap_err(); // no server in doctests
    /// # assert!(err.is_connect(), "{err:?}"); }
    /// # async fn run(closed: &str) -> Result<(), herald::nats::Error> {
    /// use herald::nats::NatsBridge;
    /// use herald::{Notification, NotificationCenter};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Debug, Clone, Serialize, Deserialize)]
    /// struct OrderPlaced { id: u64 }
    /// impl Notification for OrderPlaced {
    ///     fn name() -> &'static str { "shop.order.placed" }
    /// }
    ///
    /// let center = NotificationCenter::new();
    /// let _log = center.observe(|o: &OrderPlaced| println!("order {}", o.id));
    /// let url = "nats://127.0.0.1:4222";
    /// # let url = closed; // no server in doctests: a closed local port
    /// let bridge = NatsBridge::connect(url).await?;
    /// let _import = bridge.import::<OrderPlaced>(&center).await?;
    /// # Ok(()) }
    /// ```
    pub async fn import<N: Notification + DeserializeOwned>(
        &self,
        center: &NotificationCenter,
    ) -> Result<Import, Error> {
        wire::check_type_name::<N>()?;
        let subject = format!("{}{}", self.inner.prefix, N::name());
        let route = Route::Typed(decoder::<N>());
        self.start_import(subject, route, center).await
    }

    /// Imports a family: every subject under `prefix` (`"shop."` is `shop.>`). Types
    /// registered with [`FamilyImport::with`] are posted typed; any other name is posted as a
    /// [`RemoteNotification`] (name and JSON). Await it (or call
    /// [`start`](FamilyImport::start)) to subscribe; it returns once the server holds the
    /// subscription.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// # let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    /// # let err = run(&format!("nats://127.0.0.1:{port}")).await.unwrap_err(); // no server in doctests
    /// # assert!(err.is_connect(), "{err:?}"); }
    /// # async fn run(closed: &str) -> Result<(), herald::nats::Error> {
    /// use herald::nats::{NatsBridge, RemoteNotification};
    /// use herald::{Notification, NotificationCenter};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Debug, Clone, Serialize, Deserialize)]
    /// struct OrderPlaced { id: u64 }
    /// impl Notification for OrderPlaced {
    ///     fn name() -> &'static str { "shop.order.placed" }
    /// }
    ///
    /// let center = NotificationCenter::new();
    /// let url = "nats://127.0.0.1:4222";
    /// # let url = closed; // no server in doctests: a closed local port
    /// let bridge = NatsBridge::connect(url).await?;
    /// let _shop = bridge.import_family("shop.", &center).with::<OrderPlaced>().await?;
    /// let _other = center.observe(|r: &RemoteNotification| println!("{}: {}", r.name(), r.json()));
    /// # Ok(()) }
    /// ```
    pub fn import_family(&self, prefix: &str, center: &NotificationCenter) -> FamilyImport {
        let error = wire::check_prefix(prefix, "the family prefix").err();
        FamilyImport {
            bridge: self.clone(),
            prefix: prefix.to_owned(),
            center: center.clone(),
            typed: HashMap::new(),
            error,
        }
    }

    async fn start_import(
        &self,
        subject: String,
        route: Route,
        center: &NotificationCenter,
    ) -> Result<Import, Error> {
        let inner = &self.inner;
        if inner.outbox.is_closed() {
            return Err(Error::new(ErrorKind::Closed, "the bridge is shut down"));
        }
        let subscriber = inner.client.subscribe(subject.clone()).await.map_err(|e| {
            Error::with_source(
                ErrorKind::Subscribe,
                format!("cannot subscribe to {subject}"),
                e,
            )
        })?;
        round_trip(&inner.client, inner.id).await?;
        let stats = Arc::new(ImportCounters::default());
        let task = tokio::spawn(import_loop(
            subscriber,
            Importing {
                route,
                prefix_len: inner.prefix.len(),
                own: inner.id,
                center: center.clone(),
                shared: inner.shared.clone(),
                stats: stats.clone(),
                origins: OriginCache::default(),
                bridges: wire::OriginMemo::default(),
                seqs: SeqTable::new(inner.import_streams),
                names: HashMap::new(),
            },
        ));
        Ok(Import {
            subject,
            task: Some(task),
            stats,
            _center: Some(inner.shared.attach(center)),
            bridge: Some(self.clone()),
        })
    }
}

/// A family import being configured: register types with [`with`](Self::with), then await it.
/// Made by [`NatsBridge::import_family`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// # let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
/// # let err = run(&format!("nats://127.0.0.1:{port}")).await.unwrap_err(); // no server in doctests
/// # assert!(err.is_connect(), "{err:?}"); }
/// # async fn run(closed: &str) -> Result<(), herald::nats::Error> {
/// use herald::nats::{NatsBridge, RemoteNotification};
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
/// let family = bridge.import_family("shop.", &center).with::<OrderPlaced>();
/// let import = family.await?; // subscribed to shop.>
/// let _rest = center.observe(|r: &RemoteNotification| println!("{}", r.name()));
/// assert_eq!(import.subject(), "shop.>");
/// # Ok(()) }
/// ```
#[must_use = "a family import does nothing until awaited (or .start().await)"]
pub struct FamilyImport {
    bridge: NatsBridge,
    prefix: String,
    center: NotificationCenter,
    typed: HashMap<String, Decoder>,
    error: Option<Error>,
}

impl FamilyImport {
    /// Posts notifications named `N::name()` as `N`. `N`'s name must be under the family's
    /// prefix (else the import fails with [`ErrorKind::InvalidName`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> Result<(), herald::nats::Error> {
    /// # let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    /// use herald::nats::NatsBridge;
    /// use herald::{Notification, NotificationCenter};
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Debug, Clone, Serialize, Deserialize)]
    /// # struct OrderPlaced { id: u64 }
    /// # impl herald::Notification for OrderPlaced {
    /// #     fn name() -> &'static str { "shop.order.placed" }
    /// # }
    ///
    /// #[derive(Debug, Clone, Deserialize)]
    /// struct InvoiceSent { number: u64 }
    /// impl Notification for InvoiceSent {
    ///     fn name() -> &'static str { "billing.invoice.sent" }
    /// }
    ///
    /// let center = NotificationCenter::new();
    /// let url = "nats://127.0.0.1:4222";
    /// # let url = &format!("nats://127.0.0.1:{port}"); // no server in doctests: a closed local port
    /// let bridge = NatsBridge::builder()
    /// #   .retry_initial_connect(true) // which connects in the background
    ///     .connect(url)
    ///     .await?;
    /// // Not in the family: refused before anything is subscribed.
    /// let err = bridge
    ///     .import_family("shop.", &center)
    ///     .with::<OrderPlaced>()
    ///     .with::<InvoiceSent>()
    ///     .await
    ///     .unwrap_err();
    /// assert!(err.is_invalid_name());
    /// # Ok(()) }
    /// ```
    pub fn with<N: Notification + DeserializeOwned>(mut self) -> Self {
        if self.error.is_none() {
            if let Err(e) = wire::check_type_name::<N>() {
                self.error = Some(e);
            } else if !N::name().starts_with(&self.prefix) {
                self.error = Some(Error::new(
                    ErrorKind::InvalidName,
                    format!("{} is not in the family {:?}", N::name(), self.prefix),
                ));
            } else {
                self.typed.insert(N::name().to_owned(), decoder::<N>());
            }
        }
        self
    }

    /// Subscribes; returns once the server holds the subscription.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// # let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    /// # let err = run(&format!("nats://127.0.0.1:{port}")).await.unwrap_err(); // no server in doctests
    /// # assert!(err.is_connect(), "{err:?}"); }
    /// # async fn run(closed: &str) -> Result<(), herald::nats::Error> {
    /// use herald::nats::NatsBridge;
    /// use herald::NotificationCenter;
    ///
    /// let center = NotificationCenter::new();
    /// let url = "nats://127.0.0.1:4222";
    /// # let url = closed; // no server in doctests: a closed local port
    /// let bridge = NatsBridge::connect(url).await?;
    /// // The same as awaiting the family import.
    /// let import = bridge.import_family("shop.", &center).start().await?;
    /// assert_eq!(import.subject(), "shop.>");
    /// # Ok(()) }
    /// ```
    pub async fn start(self) -> Result<Import, Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let subject = format!("{}{}>", self.bridge.inner.prefix, self.prefix);
        let route = Route::Family(self.typed);
        self.bridge.start_import(subject, route, &self.center).await
    }
}

impl IntoFuture for FamilyImport {
    type Output = Result<Import, Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<Import, Error>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.start())
    }
}

impl fmt::Debug for FamilyImport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FamilyImport")
            .field("prefix", &self.prefix)
            .field("typed", &self.typed.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// A live import: dropping it unsubscribes. It keeps its bridge open: dropping every
/// [`NatsBridge`] handle does not end an import.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), herald::nats::Error> {
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
/// let _log = center.observe(|o: &OrderPlaced| println!("order {}", o.id));
/// let bridge = NatsBridge::connect("nats://127.0.0.1:4222").await?;
/// let import = bridge.import::<OrderPlaced>(&center).await?;
/// // ... orders from other processes are posted into `center` ...
/// drop(import); // unsubscribed
/// # Ok(()) }
/// ```
#[must_use = "dropping an Import unsubscribes at once; call .detach() to keep it"]
pub struct Import {
    subject: String,
    task: Option<tokio::task::JoinHandle<()>>,
    stats: Arc<ImportCounters>,
    _center: Option<CenterRef>,
    bridge: Option<NatsBridge>,
}

impl Import {
    /// The NATS subject (or wildcard subject) imported.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), herald::nats::Error> {
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
    /// let bridge = NatsBridge::builder()
    ///     .subject_prefix("acme.")
    ///     .connect("nats://127.0.0.1:4222")
    ///     .await?;
    /// let orders = bridge.import::<OrderPlaced>(&center).await?;
    /// assert_eq!(orders.subject(), "acme.shop.order.placed");
    /// let shop = bridge.import_family("shop.", &center).await?;
    /// assert_eq!(shop.subject(), "acme.shop.>");
    /// # Ok(()) }
    /// ```
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// What this import counted so far.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), herald::nats::Error> {
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
    /// let bridge = NatsBridge::connect("nats://127.0.0.1:4222").await?;
    /// let import = bridge.import::<OrderPlaced>(&center).await?;
    /// // ... later:
    /// let s = import.stats();
    /// println!("{}: {} posted, {} lost", import.subject(), s.posted, s.lost);
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> ImportStats {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let s = &self.stats;
        ImportStats {
            received: l(&s.received),
            posted: l(&s.posted),
            lost: l(&s.lost),
            undecodable: l(&s.undecodable),
            echoes: l(&s.echoes),
            heartbeats: l(&s.heartbeats),
            streams: l(&s.streams),
            forgotten: l(&s.forgotten),
        }
    }

    /// Keeps importing until the bridge shuts down, without a guard.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), herald::nats::Error> {
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
    /// let bridge = NatsBridge::connect("nats://127.0.0.1:4222").await?;
    /// bridge.import::<OrderPlaced>(&center).await?.detach();
    /// // ... imports until `bridge.shutdown()`.
    /// # Ok(()) }
    /// ```
    pub fn detach(mut self) {
        self.task.take();
        std::mem::forget(self._center.take());
        std::mem::forget(self.bridge.take());
    }
}

impl Drop for Import {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl fmt::Debug for Import {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Import")
            .field("subject", &self.subject)
            .field("stats", &self.stats())
            .finish()
    }
}

/// What one import counted, in notifications: a batch (see [`wire`](super::wire)) counts
/// each of its items. Every notification received is posted, undecodable, an echo, and
/// every heartbeat is counted: `received == posted + undecodable + echoes + heartbeats`.
///
/// ```
/// use herald::nats::ImportStats;
///
/// /// The balance every import keeps.
/// fn balanced(s: &ImportStats) -> bool {
///     s.received == s.posted + s.undecodable + s.echoes + s.heartbeats
/// }
///
/// // An import's counters come from `import.stats()`; a new import's are all zero.
/// assert!(balanced(&ImportStats::default()));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportStats {
    /// Notifications received (a message of one, or the items of a batch), heartbeats,
    /// messages whose metadata cannot be read, and unreadable bytes after a batch's items
    /// (each counted once, as undecodable).
    pub received: u64,
    /// Notifications posted into the center.
    pub posted: u64,
    /// Notifications known missed (sequence gaps, found by later messages or heartbeats).
    pub lost: u64,
    /// Notifications that could not be read (a bad item of a batch is one), and messages
    /// whose metadata could not be read.
    pub undecodable: u64,
    /// Own notifications that came back.
    pub echoes: u64,
    /// Heartbeats received.
    pub heartbeats: u64,
    /// Streams (origin × subject) whose sequence numbers the import follows now: at most
    /// [`NatsBridgeBuilder::import_streams`](super::NatsBridgeBuilder::import_streams).
    pub streams: u64,
    /// Streams the import stopped following to stay within that limit, the least recently
    /// seen first. A forgotten stream is followed again from its next message, as a new one:
    /// notifications it lost in between are not counted in `lost` (see the
    /// [module](super) on loss). Zero unless more streams than the limit came.
    pub forgotten: u64,
}

#[derive(Default)]
struct ImportCounters {
    received: AtomicU64,
    posted: AtomicU64,
    lost: AtomicU64,
    undecodable: AtomicU64,
    echoes: AtomicU64,
    heartbeats: AtomicU64,
    streams: AtomicU64,
    forgotten: AtomicU64,
}

enum Route {
    Typed(Decoder),
    Family(HashMap<String, Decoder>),
}

/// The import task's state.
struct Importing {
    route: Route,
    prefix_len: usize,
    own: BridgeId,
    center: NotificationCenter,
    shared: Arc<Shared>,
    stats: Arc<ImportCounters>,
    origins: OriginCache,
    bridges: wire::OriginMemo,
    /// The last sequence number seen per origin and subject.
    seqs: SeqTable,
    /// Names of type-erased notifications, shared by every value of one subject (at most
    /// [`NAMES_LIMIT`]).
    names: HashMap<Box<str>, Arc<str>>,
}

/// The most type-erased names an import keeps to share.
const NAMES_LIMIT: usize = 4096;

/// The last sequence number seen per (origin, subject), with the stream of the previous
/// message at hand: messages mostly come in runs from one origin on one subject, and a hash
/// of the subject per message showed in profiles. A miss looks the subject up by `&str`
/// (no allocation), so interleaved subjects cost one lookup each, as before.
///
/// Bounded: both keys come from peers (the origin from the reply subject, the subject from a
/// family's wildcard), so at most `limit` streams are tracked. A new stream past the limit
/// first forgets the eighth of them seen least recently (by a clock that every message
/// touching a stream advances); a forgotten stream is tracked again from its next message,
/// as a new one.
struct SeqTable {
    streams: Vec<Tracked>,
    index: HashMap<BridgeId, HashMap<Box<str>, usize>>,
    hot: usize,
    /// Advanced by each message that touches a stream; [`Tracked::seen`] is its value then.
    clock: u64,
    limit: usize,
    /// Streams forgotten so far.
    forgotten: u64,
}

/// One stream's tracking.
struct Tracked {
    bridge: BridgeId,
    subject: Box<str>,
    last: u64,
    /// The clock when a message last touched it (each stream's is different).
    seen: u64,
}

impl SeqTable {
    /// A table of at most `limit` streams (at least one).
    fn new(limit: usize) -> SeqTable {
        SeqTable {
            streams: Vec::new(),
            index: HashMap::new(),
            hot: 0,
            clock: 0,
            limit: limit.max(1),
            forgotten: 0,
        }
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn last(&mut self, bridge: BridgeId, subject: &str) -> Option<&mut u64> {
        let hit = self
            .streams
            .get(self.hot)
            .is_some_and(|t| t.bridge == bridge && *t.subject == *subject);
        if !hit {
            self.hot = *self.index.get(&bridge)?.get(subject)?;
        }
        let now = self.tick();
        self.streams.get_mut(self.hot).map(|t| {
            t.seen = now;
            &mut t.last
        })
    }

    /// Tracks a new stream (one [`last`](Self::last) did not find), forgetting the least
    /// recently seen ones first when the table is full.
    fn insert(&mut self, bridge: BridgeId, subject: &str, seq: u64) {
        if self.streams.len() >= self.limit {
            self.forget_least_recent();
        }
        let seen = self.tick();
        self.hot = self.streams.len();
        self.streams.push(Tracked {
            bridge,
            subject: subject.into(),
            last: seq,
            seen,
        });
        self.index
            .entry(bridge)
            .or_default()
            .insert(subject.into(), self.hot);
    }

    /// Forgets the eighth of the streams (at least one) seen least recently. Costs a pass
    /// over the table, once per eighth of the limit of new streams: a flood of new streams
    /// costs a few steps per message, not a scan each.
    fn forget_least_recent(&mut self) {
        let drop = (self.limit / 8).clamp(1, self.streams.len());
        let mut seen: Vec<u64> = self.streams.iter().map(|t| t.seen).collect();
        let (_, &mut threshold, _) = seen.select_nth_unstable(drop - 1);
        self.streams.retain(|t| t.seen > threshold);
        // The kept streams moved down: index them afresh (a pass the retain made anyway).
        self.index.clear();
        for (at, t) in self.streams.iter().enumerate() {
            self.index
                .entry(t.bridge)
                .or_default()
                .insert(t.subject.clone(), at);
        }
        self.hot = 0;
        self.forgotten += u64::try_from(drop).unwrap_or(u64::MAX);
    }

    /// Streams tracked now.
    fn len(&self) -> usize {
        self.streams.len()
    }
}

/// Where the notifications of one message come from, as the wire says (its [`SenderId`] is
/// asked for only once one of them decodes).
struct Source<'a> {
    subject: &'a str,
    /// The subject without the bridge's prefix.
    name: &'a str,
    bridge: Option<BridgeId>,
    raw_sender: Option<u64>,
}

impl Source<'_> {
    /// The origin, not recorded in the table (for reports of what could not be read).
    fn origin(&self) -> Origin {
        Origin::from_wire(self.bridge, self.raw_sender)
    }
}

async fn import_loop(mut subscriber: async_nats::Subscriber, mut state: Importing) {
    while let Some(message) =
        std::future::poll_fn(|cx| Pin::new(&mut subscriber).poll_next(cx)).await
    {
        state.handle(message);
    }
}

impl Importing {
    fn handle(&mut self, message: async_nats::Message) {
        let subject = message.subject.as_str();
        let meta = match wire::decode(
            message.reply.as_deref(),
            message.payload.len(),
            &mut self.bridges,
        ) {
            Ok(meta) => meta,
            Err(error) => {
                self.stats.received.fetch_add(1, Ordering::Relaxed);
                return self.undecodable(subject, Origin::foreign(), error);
            }
        };
        let count = meta.map_or(1, |m| m.count);
        self.stats.received.fetch_add(count, Ordering::Relaxed);
        let bridge = meta.map(|m| m.bridge);
        if bridge == Some(self.own) {
            self.stats.echoes.fetch_add(count, Ordering::Relaxed);
            self.shared
                .counters
                .echoes
                .fetch_add(count, Ordering::Relaxed);
            return;
        }
        if let Some(meta) = meta {
            let bridge = meta.bridge;
            let lost = self.track(bridge, subject, meta.seq, meta.count, meta.heartbeat);
            if lost > 0 {
                self.stats.lost.fetch_add(lost, Ordering::Relaxed);
                self.shared.counters.lost.fetch_add(lost, Ordering::Relaxed);
                self.center.post(RemoteLost {
                    subject: subject.to_owned(),
                    origin: Origin::new(bridge, None),
                    lost,
                });
            }
        }
        if meta.is_some_and(|m| m.heartbeat) {
            self.stats.heartbeats.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let raw_sender = meta.and_then(|m| m.sender);
        let name = subject.get(self.prefix_len..).unwrap_or(subject);
        let decode = match &self.route {
            Route::Typed(decode) => Some(decode.clone()),
            Route::Family(typed) => typed.get(name).cloned(),
        };
        let from = Source {
            subject,
            name,
            bridge,
            raw_sender,
        };
        if !meta.is_some_and(|m| m.batch) {
            return self.deliver(&from, decode.as_ref(), &message.payload);
        }
        let mut frames = wire::Frames::new(&message.payload);
        for _ in 0..count {
            match frames.next_item() {
                Ok(item) => self.deliver(&from, decode.as_ref(), item),
                Err(error) => self.undecodable(subject, from.origin(), error),
            }
        }
        let trailing = frames.trailing();
        if trailing > 0 {
            // Not a notification of the batch, but something unreadable was received.
            self.stats.received.fetch_add(1, Ordering::Relaxed);
            self.undecodable(
                subject,
                from.origin(),
                format!("{trailing} bytes after the batch's {count} items"),
            );
        }
    }

    /// Decodes one notification (a whole message's payload, or one item of a batch) and posts
    /// it, or counts it undecodable. Only a notification that decodes records its origin in
    /// the process-wide table (which never forgets one): forged origins on unreadable
    /// messages cost nothing there.
    fn deliver(&mut self, from: &Source<'_>, decode: Option<&Decoder>, payload: &[u8]) {
        let decoded = match decode {
            Some(decode) => {
                let origins = &mut self.origins;
                let (bridge, raw_sender) = (from.bridge, from.raw_sender);
                decode(payload, &self.center, &mut || {
                    origins.sender_id(bridge, raw_sender)
                })
            }
            None => self.post_erased(from, payload),
        };
        match decoded {
            Ok(()) => {
                self.stats.posted.fetch_add(1, Ordering::Relaxed);
                self.shared
                    .counters
                    .imported
                    .fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => self.undecodable(from.subject, from.origin(), error),
        }
    }

    /// Records the numbers `seq..seq + count` for (bridge, subject); returns how many numbers
    /// were skipped before them. The first message seen from an origin on a subject sets the
    /// baseline. A number at or below the last one seen (a duplicate, or a heartbeat that a
    /// direct publish overtook) skips nothing and leaves the last one as it is.
    ///
    /// The numbers are the sender's word: `decode` keeps them at most [`wire::MAX_SEQ`], and
    /// the arithmetic here saturates anyway, so no input can overflow it.
    fn track(
        &mut self,
        bridge: BridgeId,
        subject: &str,
        seq: u64,
        count: u64,
        heartbeat: bool,
    ) -> u64 {
        let top = seq.saturating_add(count.saturating_sub(1));
        let Some(last) = self.seqs.last(bridge, subject) else {
            self.seqs.insert(bridge, subject, top);
            let streams = u64::try_from(self.seqs.len()).unwrap_or(u64::MAX);
            self.stats.streams.store(streams, Ordering::Relaxed);
            self.stats
                .forgotten
                .store(self.seqs.forgotten, Ordering::Relaxed);
            return 0;
        };
        // A heartbeat carries the last number sent; a message its own (first) number.
        let expected = if heartbeat {
            *last
        } else {
            last.saturating_add(1)
        };
        let lost = seq.saturating_sub(expected);
        *last = (*last).max(top);
        lost
    }

    /// Posts a notification of a type the import does not know as a [`RemoteNotification`],
    /// once its payload reads as JSON.
    fn post_erased(&mut self, from: &Source<'_>, payload: &[u8]) -> Result<(), String> {
        let json = std::str::from_utf8(payload).map_err(|e| format!("not UTF-8: {e}"))?;
        serde_json::from_str::<serde::de::IgnoredAny>(json).map_err(|e| e.to_string())?;
        let (origin, sender) = self.origins.get(from.bridge, from.raw_sender);
        let name = from.name;
        let name = match self.names.get(name) {
            Some(shared) => shared.clone(),
            None => {
                // Names come from peers (a family's wildcard): a cache, bounded by starting
                // afresh (a value's name is the same text either way).
                if self.names.len() >= NAMES_LIMIT {
                    self.names.clear();
                }
                let shared: Arc<str> = Arc::from(name);
                self.names.insert(name.into(), shared.clone());
                shared
            }
        };
        self.center.post_from(
            sender,
            RemoteNotification {
                name,
                json: json.into(),
                origin,
            },
        );
        Ok(())
    }

    fn undecodable(&self, subject: &str, origin: Origin, error: String) {
        self.stats.undecodable.fetch_add(1, Ordering::Relaxed);
        self.shared
            .counters
            .undecodable
            .fetch_add(1, Ordering::Relaxed);
        self.center.post(RemoteUndecodable {
            subject: subject.to_owned(),
            origin,
            error,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, serde::Deserialize)]
    struct Order {
        id: u64,
    }
    impl Notification for Order {
        fn name() -> &'static str {
            "shop.order"
        }
    }

    /// An import's task state on its own (no server): messages are handed to
    /// [`Importing::handle`] as the subscription would.
    fn importing(route: Route, center: &NotificationCenter) -> Importing {
        let own = BridgeId::random();
        Importing {
            route,
            prefix_len: 0,
            own,
            center: center.clone(),
            shared: super::super::bridge::Shared::detached(own),
            stats: Arc::new(ImportCounters::default()),
            origins: OriginCache::default(),
            bridges: wire::OriginMemo::default(),
            seqs: SeqTable::new(1024),
            names: HashMap::new(),
        }
    }

    fn message(subject: &str, reply: String, payload: &[u8]) -> async_nats::Message {
        async_nats::Message {
            subject: subject.into(),
            reply: Some(reply.into()),
            payload: bytes::Bytes::copy_from_slice(payload),
            headers: None,
            status: None,
            description: None,
            length: payload.len(),
        }
    }

    /// A bridge id no one else has made: taken from `n` and a random one.
    fn forged(n: u128) -> BridgeId {
        let high = BridgeId::random().as_u128() & !u128::from(u64::MAX);
        BridgeId::parse(&format!("{:032x}", high | n)).unwrap_or_else(BridgeId::random)
    }

    #[test]
    fn unreadable_messages_from_forged_origins_record_nothing_in_the_origin_table() {
        let center = NotificationCenter::new();
        let reports: Arc<parking_lot::Mutex<Vec<RemoteUndecodable>>> = Arc::default();
        let r = reports.clone();
        let _u = center.observe(move |u: &RemoteUndecodable| r.lock().push(u.clone()));
        let losses: Arc<parking_lot::Mutex<Vec<RemoteLost>>> = Arc::default();
        let l = losses.clone();
        let _l = center.observe(move |n: &RemoteLost| l.lock().push(n.clone()));
        let posted = Arc::new(AtomicU64::new(0));
        let p = posted.clone();
        let _o = center.observe(move |o: &Order| {
            p.fetch_add(o.id, Ordering::Relaxed);
        });
        let mut typed = importing(Route::Typed(decoder::<Order>()), &center);
        let mut family = importing(Route::Family(HashMap::new()), &center);

        const ORIGINS: u128 = 500;
        let origins: Vec<BridgeId> = (0..ORIGINS).map(forged).collect();
        for (n, &bridge) in origins.iter().enumerate() {
            let v1 = wire::reply_prefix(bridge);
            let v2 = wire::batch_reply_prefix(bridge);
            // Not an order; not JSON at all; a batch of two bad items and trailing bytes.
            typed.handle(message(
                "shop.order",
                format!("{v1}1.s7"),
                b"{\"id\":\"x\"}",
            ));
            typed.handle(message("shop.order", format!("{v1}5.s7"), b"garbage"));
            typed.handle(message(
                "shop.order",
                format!("{v2}6.2.s7"),
                b"2:{},3:xyz,!!",
            ));
            // A family's type-erased notification that is not JSON.
            family.handle(message(&format!("shop.{n}"), format!("{v1}1.s7"), b"{"));
        }
        for bridge in &origins {
            for sender in [Some(7), None] {
                assert!(
                    !Origin::from_wire(Some(*bridge), sender).is_recorded(),
                    "{bridge:?} recorded"
                );
            }
        }

        // Every other behaviour as before. Each origin sent five unreadable notifications
        // on the typed import (one a message, one a message, two items of a batch, and bytes
        // after it) and one on the family's: each is counted and reported, naming its origin.
        // Loss is still accounted per stream: 2..=4 skipped on each typed one.
        let origins_n = ORIGINS as u64;
        let s = &typed.stats;
        let count = |a: &AtomicU64| a.load(Ordering::Relaxed);
        assert_eq!(count(&s.received), 5 * origins_n);
        assert_eq!(count(&s.undecodable), 5 * origins_n);
        assert_eq!(count(&s.lost), 3 * origins_n);
        assert_eq!(count(&s.posted), 0);
        assert_eq!(count(&family.stats.undecodable), origins_n);
        let reports = reports.lock();
        assert_eq!(reports.len() as u64, 6 * origins_n);
        let first = Origin::new(origins[0], Some(crate::SenderId::from_raw(7)));
        assert!(reports.iter().take(5).all(|u| u.origin == first));
        let losses = losses.lock();
        assert_eq!(losses.len() as u64, origins_n);
        assert_eq!(losses[0].origin, Origin::new(origins[0], None));
        assert_eq!(losses[0].lost, 3);

        // An order that reads is posted with its origin's id, and only it is recorded.
        let good = forged(ORIGINS);
        let v1 = wire::reply_prefix(good);
        typed.handle(message("shop.order", format!("{v1}1.s7"), b"{\"id\":42}"));
        assert_eq!(posted.load(Ordering::Relaxed), 42);
        let origin = Origin::new(good, Some(crate::SenderId::from_raw(7)));
        assert!(origin.is_recorded());
        assert_eq!(Origin::of(origin.sender_id()), Some(origin));
        assert!(!Origin::from_wire(Some(origins[0]), Some(7)).is_recorded());
    }

    #[test]
    fn the_sequence_table_keeps_each_stream_apart_whatever_the_interleaving() {
        let (a, b) = (BridgeId::random(), BridgeId::random());
        let mut t = SeqTable::new(16);
        assert!(t.last(a, "x").is_none());
        t.insert(a, "x", 1);
        t.insert(b, "x", 10);
        t.insert(a, "y", 100);
        for (bridge, subject, want) in [
            (a, "x", 1),
            (a, "x", 1),
            (b, "x", 10),
            (a, "y", 100),
            (a, "x", 1),
        ] {
            assert_eq!(t.last(bridge, subject).copied(), Some(want));
        }
        *t.last(b, "x").unwrap() = 11;
        assert_eq!(t.last(a, "x").copied(), Some(1));
        assert_eq!(t.last(b, "x").copied(), Some(11));
        assert!(t.last(b, "y").is_none());
        // A miss leaves the hot stream a valid one.
        assert_eq!(t.last(a, "y").copied(), Some(100));
    }

    #[test]
    fn a_flood_of_new_streams_is_bounded_and_forgets_the_least_recently_seen_first() {
        let limit = 64;
        let mut t = SeqTable::new(limit);
        let live = BridgeId::random();
        t.insert(live, "shop.order.placed", 1);
        let mut live_seq = 1;
        let mut flood = Vec::new();
        for n in 0..10_000u64 {
            let forged = BridgeId::parse(&format!("{n:032x}")).unwrap();
            // A new origin on each message, and a new subject now and then.
            let subject = format!("shop.{}", n % 100);
            assert!(t.last(forged, &subject).is_none(), "never seen: {n}");
            t.insert(forged, &subject, n);
            flood.push((forged, subject));
            assert!(t.len() <= limit, "{} streams", t.len());
            // A live stream seen every few messages is never among the least recent.
            if n % 4 == 0 {
                let last = t.last(live, "shop.order.placed").expect("still followed");
                assert_eq!(*last, live_seq);
                live_seq += 1;
                *last = live_seq;
            }
        }
        assert_eq!(
            t.len() as u64 + t.forgotten,
            10_001,
            "every stream followed or forgotten"
        );
        // The most recent flood streams are followed, each with its own number, and the
        // table's index agrees with its streams after every forgetting.
        for (n, (bridge, subject)) in flood.iter().enumerate().rev().take(limit / 2) {
            assert_eq!(t.last(*bridge, subject).copied(), Some(n as u64));
        }
        assert!(
            t.last(flood[0].0, &flood[0].1).is_none(),
            "the oldest is forgotten"
        );
        let indexed: usize = t.index.values().map(HashMap::len).sum();
        assert_eq!(indexed, t.len());
        for (at, tracked) in t.streams.iter().enumerate() {
            assert_eq!(t.index[&tracked.bridge][&*tracked.subject], at);
        }
    }

    #[test]
    fn a_table_of_one_stream_forgets_the_other_one() {
        let (a, b) = (BridgeId::random(), BridgeId::random());
        let mut t = SeqTable::new(0); // at least one
        t.insert(a, "x", 1);
        t.insert(b, "x", 2);
        assert_eq!((t.len(), t.forgotten), (1, 1));
        assert!(t.last(a, "x").is_none());
        assert_eq!(t.last(b, "x").copied(), Some(2));
    }
}
