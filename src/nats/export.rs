//! Export: [`Publish`] (the terminal), [`Export`] (its guard), the bridge's outbox and the task
//! that publishes it.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::bridge::{CenterRef, Shared};
use super::{Batching, BridgeId, Error, ErrorKind, ExportDropped, NatsBridge, Origin, wire};
use crate::{Notification, NotificationCenter, ObserverBuilder, SenderId, Subscription, Terminal};

/// The export terminal: `center.observer::<N>().forward(bridge.publish())` sends every `N` to
/// the subject named by [`Notification::name`] (after the bridge's subject prefix). Made by
/// [`NatsBridge::publish`].
///
/// The builder's [`sender`](ObserverBuilder::sender), [`filter`](ObserverBuilder::filter)
/// and [`priority`](ObserverBuilder::priority) choose what is exported. The export runs on
/// the posting thread like an inline observer: it serializes the value (JSON) and queues the
/// bytes in the bridge's bounded outbox; a task publishes them in order (several to a message
/// with [`NatsBridgeBuilder::batching`](super::NatsBridgeBuilder::batching)). The builder's
/// [`policy`](ObserverBuilder::policy) does not apply (the outbox's capacity does, see
/// [`NatsBridgeBuilder::outbox_capacity`](super::NatsBridgeBuilder::outbox_capacity)).
/// With [`replay_last`](ObserverBuilder::replay_last), the last value is exported once when
/// the export starts, unless it came from another process (a remote value is never
/// re-exported, replayed or posted).
///
/// Refused with [`ErrorKind::InvalidName`] when `N` has no declared name or the name is not a
/// valid NATS subject, and with [`ErrorKind::Closed`] after [`NatsBridge::shutdown`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> Result<(), herald::nats::Error> {
/// # let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
/// use herald::nats::NatsBridge;
/// use herald::{Notification, NotificationCenter, SenderId};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, Serialize, Deserialize)]
/// struct PriceChanged { sku: String, cents: i64 }
/// impl Notification for PriceChanged {
///     fn name() -> &'static str { "shop.price.changed" }
/// }
///
/// let center = NotificationCenter::new();
/// let url = "nats://127.0.0.1:4222";
/// # let url = &format!("nats://127.0.0.1:{port}"); // no server in doctests: a closed local port
/// let bridge = NatsBridge::builder()
/// #   .retry_initial_connect(true) // which connects in the background
///     .connect(url)
///     .await?;
/// let catalog = SenderId::new();
/// // Only the catalog's posts, with a positive price, are exported.
/// let _export = center
///     .observer::<PriceChanged>()
///     .sender(catalog)
///     .filter(|p| p.cents > 0)
///     .forward(bridge.publish())?;
/// center.post_from(catalog, PriceChanged { sku: "tea".into(), cents: 450 });
/// center.post_from(catalog, PriceChanged { sku: "tea".into(), cents: 0 }); // not exported
/// center.post(PriceChanged { sku: "tea".into(), cents: 399 }); // not the catalog's: not exported
/// assert_eq!(bridge.metrics().exported, 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Publish {
    bridge: NatsBridge,
}

impl fmt::Debug for Publish {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publish")
            .field("bridge", &self.bridge.id())
            .finish()
    }
}

impl NatsBridge {
    /// The export terminal, for [`ObserverBuilder::forward`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> Result<(), herald::nats::Error> {
    /// # let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
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
    /// let url = "nats://127.0.0.1:4222";
    /// # let url = &format!("nats://127.0.0.1:{port}"); // no server in doctests: a closed local port
    /// let bridge = NatsBridge::builder()
    /// #   .retry_initial_connect(true) // which connects in the background
    ///     .connect(url)
    ///     .await?;
    /// let _export = center.observer::<OrderPlaced>().forward(bridge.publish())?;
    /// center.post(OrderPlaced { id: 1 }); // on its way to shop.order.placed
    /// assert_eq!(bridge.metrics().exported, 1); // queued at once, sent once connected
    /// # Ok(()) }
    /// ```
    pub fn publish(&self) -> Publish {
        Publish {
            bridge: self.clone(),
        }
    }
}

/// A live export: dropping it stops exporting (what is already in the outbox is still sent).
/// It keeps its bridge open: dropping every [`NatsBridge`] handle does not end an export.
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
/// let export = center.observer::<OrderPlaced>().forward(bridge.publish())?;
/// center.post(OrderPlaced { id: 1 }); // exported
/// drop(export);
/// center.post(OrderPlaced { id: 2 }); // not exported
/// assert_eq!(bridge.metrics().exported, 1);
/// # Ok(()) }
/// ```
#[must_use = "dropping an Export stops exporting at once; call .detach() to keep it"]
pub struct Export {
    subscription: Option<Subscription>,
    center: Option<CenterRef>,
    bridge: Option<NatsBridge>,
    state: Arc<ExportState>,
}

impl Export {
    /// The NATS subject this export publishes to.
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
    ///     .subject_prefix("acme.")
    /// #    .retry_initial_connect(true) // which connects in the background
    ///     .connect(url)
    ///     .await?;
    /// let export = center.observer::<OrderPlaced>().forward(bridge.publish())?;
    /// assert_eq!(export.subject(), "acme.shop.order.placed");
    /// # Ok(()) }
    /// ```
    pub fn subject(&self) -> &str {
        &self.state.subject.name
    }

    /// Notifications this export dropped before they reached the server.
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
    /// let export = center.observer::<OrderPlaced>().forward(bridge.publish())?;
    /// // ... later, in a health check:
    /// if export.dropped() > 0 {
    ///     eprintln!("{} notifications on {} never left", export.dropped(), export.subject());
    /// }
    /// # assert_eq!(export.dropped(), 0); // the outbox takes them while the server is away
    /// # Ok(()) }
    /// ```
    pub fn dropped(&self) -> u64 {
        self.state.dropped_total.load(Ordering::Relaxed)
    }

    /// Keeps exporting without a guard, for the life of the center or until the bridge shuts
    /// down, whichever comes first.
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
    /// center.observer::<OrderPlaced>().forward(bridge.publish())?.detach();
    /// center.post(OrderPlaced { id: 1 }); // exported, with no guard to keep
    /// assert_eq!(bridge.metrics().exported, 1);
    /// # Ok(()) }
    /// ```
    pub fn detach(mut self) {
        if let Some(s) = self.subscription.take() {
            s.detach();
        }
        std::mem::forget(self.center.take());
        std::mem::forget(self.bridge.take());
    }
}

impl fmt::Debug for Export {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Export")
            .field("subject", &self.subject())
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl<N: Notification + Serialize> Terminal<N> for Publish {
    type Output = Result<Export, Error>;

    fn subscribe(self, builder: ObserverBuilder<N>) -> Result<Export, Error> {
        wire::check_type_name::<N>()?;
        let inner = self.bridge.inner.clone();
        if inner.outbox.is_closed() {
            return Err(Error::new(ErrorKind::Closed, "the bridge is shut down"));
        }
        let subject = inner
            .outbox
            .subject(&format!("{}{}", inner.prefix, N::name()));
        let center = builder.center().clone();
        let state = Arc::new(ExportState {
            subject: subject.clone(),
            center: center.clone(),
            dropped: AtomicU64::new(0),
            dropped_total: AtomicU64::new(0),
            reason: AtomicU8::new(0),
        });
        inner.outbox.exports.lock().push(Arc::downgrade(&state));
        let outbox = inner.outbox.clone();
        let shared = inner.shared.clone();
        let st = state.clone();
        let subscription = builder.inline_with_sender(move |n: &N, sender| {
            if sender.is_some_and(Origin::is_remote) {
                shared
                    .counters
                    .not_reexported
                    .fetch_add(1, Ordering::Relaxed);
                return;
            }
            shared.counters.exported.fetch_add(1, Ordering::Relaxed);
            let sent = match serde_json::to_vec(n) {
                Ok(json) => outbox.push(&st.subject, sender, Bytes::from(json)),
                Err(_) => {
                    outbox.skip(&st.subject);
                    Err(DropReason::Unserializable)
                }
            };
            match sent {
                Ok(Sent::Published) => {
                    shared.counters.published.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Sent::Queued) => {}
                Err(reason) => {
                    shared
                        .counters
                        .export_dropped
                        .fetch_add(1, Ordering::Relaxed);
                    st.count_drop(reason, 1, &outbox);
                }
            }
        });
        Ok(Export {
            subscription: Some(subscription),
            center: Some(inner.shared.attach(&center)),
            bridge: Some(self.bridge),
            state,
        })
    }
}

#[derive(Clone, Copy, Debug)]
#[repr(u8)]
pub(crate) enum DropReason {
    Full = 1,
    Closed = 2,
    Unserializable = 3,
    PublishFailed = 4,
    ShutdownTimeout = 5,
}

impl DropReason {
    fn from_u8(n: u8) -> &'static str {
        match n {
            1 => "the bridge's outbox is full",
            2 => "the bridge is shut down",
            3 => "the notification could not be serialized",
            4 => "the client refused to publish it (too large, or the connection is closed)",
            5 => "the bridge shut down before the server took it (shutdown_timeout passed)",
            _ => "unknown",
        }
    }
}

/// What one export shares with the outbox's reporter.
pub(crate) struct ExportState {
    subject: Arc<SubjectSeq>,
    center: NotificationCenter,
    /// Drops not reported yet.
    dropped: AtomicU64,
    dropped_total: AtomicU64,
    reason: AtomicU8,
}

impl ExportState {
    fn count_drop(&self, reason: DropReason, n: u64, outbox: &Outbox) {
        self.reason.store(reason as u8, Ordering::Relaxed);
        self.dropped_total.fetch_add(n, Ordering::Relaxed);
        if outbox.is_closed() {
            // The reporter has stopped: report these now.
            self.center.post(ExportDropped {
                subject: self.subject.name.clone(),
                dropped: n,
                reason: DropReason::from_u8(reason as u8).to_owned(),
            });
            return;
        }
        if self.dropped.fetch_add(n, Ordering::AcqRel) == 0 {
            outbox.report.notify_one();
        }
    }
}

/// One subject's sequence counter, shared by every export to it. Incremented under the outbox
/// lock, so sequence order is queue order is publish order.
pub(crate) struct SubjectSeq {
    pub(crate) name: String,
    subject: async_nats::Subject,
    last: AtomicU64,
}

/// An exported notification waiting for the network.
struct Outgoing {
    subject: Arc<SubjectSeq>,
    seq: u64,
    sender: Option<SenderId>,
    payload: Bytes,
}

/// Where [`Outbox::push`] put a notification.
pub(crate) enum Sent {
    /// Handed to the client (its queue to the socket) on the posting thread.
    Published,
    /// Queued in the outbox for the publishing task.
    Queued,
}

/// The bridge's bounded queue of exported notifications, in post order.
///
/// A post whose outbox is idle (empty, and the publishing task not in the middle of a batch)
/// hands its message to the client at once, on the posting thread, when the client's queue has
/// room: one hop less, and no task to wake per post. Otherwise (the client's queue full, the
/// connection down, or older messages still waiting) it queues, and the task publishes in order.
/// Both happen under the queue's lock, so sequence order is publish order either way.
///
/// With [`Batching`], a direct hand-off also marks the outbox busy and wakes the task: the
/// posts that follow before the task has looked queue behind it, and the task sends what it
/// finds queued in batches. So a lone post still goes out at once, and a burst is batched from
/// its second notification on.
pub(crate) struct Outbox {
    queue: Mutex<Queue>,
    capacity: usize,
    client: async_nats::Client,
    /// The start of this bridge's reply subjects ([`wire::reply_prefix`]).
    reply_prefix: String,
    /// The start of this bridge's batch reply subjects ([`wire::batch_reply_prefix`]).
    batch_prefix: String,
    batching: Option<Batching>,
    wake: Notify,
    report: Notify,
    closed: AtomicBool,
    exports: Mutex<Vec<Weak<ExportState>>>,
    subjects: Mutex<Vec<Arc<SubjectSeq>>>,
    /// How long the publishing task may go on once the outbox is closed.
    shutdown_timeout: Duration,
    /// When it must stop: set by [`close`](Self::close).
    deadline: watch::Sender<Option<Instant>>,
}

struct Queue {
    items: VecDeque<Outgoing>,
    /// The publishing task holds items it has not finished sending, or (with batching) a post
    /// published directly and the task has not looked at the queue since.
    busy: bool,
    closed: bool,
}

impl Outbox {
    pub(crate) fn new(
        capacity: usize,
        client: async_nats::Client,
        origin: BridgeId,
        batching: Option<Batching>,
        shutdown_timeout: Duration,
    ) -> Self {
        Outbox {
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                busy: false,
                closed: false,
            }),
            capacity,
            client,
            reply_prefix: wire::reply_prefix(origin),
            batch_prefix: wire::batch_reply_prefix(origin),
            batching,
            wake: Notify::new(),
            report: Notify::new(),
            closed: AtomicBool::new(false),
            exports: Mutex::new(Vec::new()),
            subjects: Mutex::new(Vec::new()),
            shutdown_timeout,
            deadline: watch::Sender::new(None),
        }
    }

    pub(crate) fn subject(&self, name: &str) -> Arc<SubjectSeq> {
        let mut subjects = self.subjects.lock();
        if let Some(s) = subjects.iter().find(|s| s.name == name) {
            return s.clone();
        }
        let s = Arc::new(SubjectSeq {
            name: name.to_owned(),
            subject: async_nats::Subject::from(name),
            last: AtomicU64::new(0),
        });
        subjects.push(s.clone());
        s
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Closes the outbox: no new exports; the publishing task sends what is queued until
    /// the shutdown timeout, counted from the first close.
    pub(crate) fn close(&self) {
        self.deadline.send_if_modified(|d| {
            let first = d.is_none();
            if first {
                *d = Some(Instant::now() + self.shutdown_timeout);
            }
            first
        });
        self.queue.lock().closed = true;
        self.closed.store(true, Ordering::Release);
        self.wake.notify_one();
        self.report.notify_one();
    }

    /// When the publishing task stops waiting for the server (`None` until closed).
    pub(crate) fn deadline(&self) -> Option<Instant> {
        *self.deadline.borrow()
    }

    pub(crate) fn shutdown_timeout(&self) -> Duration {
        self.shutdown_timeout
    }

    /// The reply subject that carries one message's metadata.
    fn reply(&self, seq: u64, sender: Option<SenderId>, heartbeat: bool) -> async_nats::Subject {
        let reply = wire::encode(
            &self.reply_prefix,
            seq,
            sender.map(SenderId::as_raw),
            heartbeat,
        );
        async_nats::Subject::from(reply)
    }

    /// Gives the notification the subject's next sequence number and publishes or queues it.
    /// A refused one keeps its number, so importers see the gap.
    fn push(
        &self,
        subject: &Arc<SubjectSeq>,
        sender: Option<SenderId>,
        payload: Bytes,
    ) -> Result<Sent, DropReason> {
        let wake = {
            let mut q = self.queue.lock();
            let seq = subject.last.fetch_add(1, Ordering::Relaxed) + 1;
            if q.closed {
                return Err(DropReason::Closed);
            }
            let idle = q.items.is_empty() && !q.busy;
            if idle {
                match self.try_publish(&subject.subject, seq, sender, &payload) {
                    Some(Ok(())) if self.batching.is_some() => {
                        // The next posts queue until the task has looked: a burst batches.
                        q.busy = true;
                        drop(q);
                        self.wake.notify_one();
                        return Ok(Sent::Published);
                    }
                    Some(Ok(())) => return Ok(Sent::Published),
                    Some(Err(reason)) => return Err(reason),
                    None => {}
                }
            }
            if q.items.len() >= self.capacity {
                return Err(DropReason::Full);
            }
            q.items.push_back(Outgoing {
                subject: subject.clone(),
                seq,
                sender,
                payload,
            });
            idle
        };
        // The first item queued on an idle outbox wakes the publisher; a non-empty or busy
        // queue is already known to it (it re-checks before sleeping).
        if wake {
            self.wake.notify_one();
        }
        Ok(Sent::Queued)
    }

    /// Publishes without waiting: `None` when the client's queue is full (nothing was sent).
    fn try_publish(
        &self,
        subject: &async_nats::Subject,
        seq: u64,
        sender: Option<SenderId>,
        payload: &Bytes,
    ) -> Option<Result<(), DropReason>> {
        // Unconstrained: on a runtime thread, tokio's cooperative budget would otherwise
        // make the channel answer `Pending` after ~128 sends by a task that does not yield
        // (a loop of posts), and every later post would take the outbox's slower path.
        let publish = tokio::task::unconstrained(self.client.publish_with_reply(
            subject.clone(),
            self.reply(seq, sender, false),
            payload.clone(),
        ));
        let mut publish = std::pin::pin!(publish);
        let mut cx = Context::from_waker(Waker::noop());
        match publish.as_mut().poll(&mut cx) {
            // Dropping the pending send withdraws it: the message is not sent.
            Poll::Pending => None,
            Poll::Ready(Ok(())) => Some(Ok(())),
            Poll::Ready(Err(e)) => {
                tracing::warn!(subject = %subject, "nats export dropped: {e}");
                Some(Err(DropReason::PublishFailed))
            }
        }
    }

    /// Uses up a sequence number for a notification that will not be sent.
    fn skip(&self, subject: &SubjectSeq) {
        let _q = self.queue.lock();
        subject.last.fetch_add(1, Ordering::Relaxed);
    }
}

/// The bridge's publishing task: drains the outbox in order, sends heartbeats when idle, and
/// on close sends what is left, a last heartbeat, and flushes, all within the shutdown
/// timeout. Returns whether all that was done before the deadline; when not, it warns once,
/// with how many notifications the deadline dropped (each is counted and reported as it is
/// dropped, without a warning of its own: there may be tens of thousands).
pub(crate) async fn publish_loop(
    client: async_nats::Client,
    outbox: Arc<Outbox>,
    shared: Arc<Shared>,
    heartbeat: Duration,
) -> bool {
    let reporter = tokio::spawn(report_loop(outbox.clone()));
    let mut deadline = outbox.deadline.subscribe();
    let mut tick = tokio::time::interval(heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut batch = VecDeque::new();
    let mut complete = true;
    // Notifications dropped because the shutdown deadline passed before they were sent.
    let mut timed_out: u64 = 0;
    loop {
        let closed = {
            let mut q = outbox.queue.lock();
            std::mem::swap(&mut q.items, &mut batch);
            // Posts publish directly again only once this batch is out.
            q.busy = !batch.is_empty();
            q.closed
        };
        if batch.is_empty() {
            if closed {
                // A bridge that never exported (every export takes a sequence number,
                // sent, queued or dropped) owes importers no last heartbeat and put nothing
                // of its own in the client's queue: with the server gone there is nothing
                // to wait for (a worker's bridge, say).
                if shared.counters.exported.load(Ordering::Relaxed) == 0
                    && client.connection_state() != async_nats::connection::State::Connected
                {
                    break;
                }
                complete &= send_heartbeats(&client, &outbox, &shared, &mut deadline).await;
                let flushed = bounded(&mut deadline, client.flush()).await;
                complete &= matches!(flushed, Some(Ok(())));
                break;
            }
            tokio::select! {
                () = outbox.wake.notified() => {}
                _ = tick.tick() => {
                    send_heartbeats(&client, &outbox, &shared, &mut deadline).await;
                }
            }
            continue;
        }
        // Without batching every run is one notification long; so it is until the first
        // connection, before which the server's `max_payload` is not known (a batch the
        // server refuses costs the connection and what it carried).
        let limits = match outbox.batching {
            Some(batching) if shared.connected_once.load(Ordering::Acquire) => Limits {
                bytes: batching.byte_limit(client.max_payload()),
                items: batching.max_items,
            },
            _ => Limits::ONE,
        };
        let items = batch.make_contiguous();
        let mut start = 0;
        while start < items.len() {
            let end = run_end(items, start, limits);
            let in_time = if end - start == 1 {
                publish_one(&client, &outbox, &shared, &mut items[start], &mut deadline).await
            } else {
                publish_batch(&client, &outbox, &shared, &items[start..end], &mut deadline).await
            };
            if !in_time {
                timed_out += (end - start) as u64;
            }
            complete &= in_time;
            start = end;
        }
        batch.clear();
    }
    if !complete {
        tracing::warn!(
            notifications = timed_out,
            "nats export dropped {timed_out} notifications: shut down without the server"
        );
    }
    let _ = reporter.await;
    complete
}

/// Runs `fut` (a hand-off to the client, or a flush) to its end, unless the outbox is closed
/// and its shutdown deadline passes first: `None` then. A hand-off the client can take at
/// once is never refused, whatever the time.
async fn bounded<F: Future>(
    deadline: &mut watch::Receiver<Option<Instant>>,
    fut: F,
) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    tokio::select! {
        biased;
        out = &mut fut => return Some(out),
        _ = deadline.wait_for(Option::is_some) => {}
    }
    let until = (*deadline.borrow()).unwrap_or_else(Instant::now);
    tokio::time::timeout_at(until, fut).await.ok()
}

/// A batch's limits, the server's `max_payload` applied.
#[derive(Clone, Copy)]
struct Limits {
    bytes: usize,
    items: usize,
}

impl Limits {
    /// No batching: one notification per message.
    const ONE: Limits = Limits { bytes: 0, items: 1 };
}

/// The end of the run that starts at `start`: the items after it on the same subject, from
/// the same sender, with the next sequence numbers (a drop between them ends the run), within
/// the limits.
fn run_end(items: &[Outgoing], start: usize, limits: Limits) -> usize {
    let first = &items[start];
    let mut bytes = wire::framed_len(first.payload.len());
    let mut end = start + 1;
    while let Some(next) = items.get(end) {
        let size = wire::framed_len(next.payload.len());
        if end - start >= limits.items
            || !Arc::ptr_eq(&next.subject, &first.subject)
            || next.sender != first.sender
            || next.seq != items[end - 1].seq + 1
            || bytes + size > limits.bytes
        {
            break;
        }
        bytes += size;
        end += 1;
    }
    end
}

/// Publishes one notification as a message of its own (wire version 1); returns false when
/// the shutdown deadline passed first.
async fn publish_one(
    client: &async_nats::Client,
    outbox: &Outbox,
    shared: &Shared,
    item: &mut Outgoing,
    deadline: &mut watch::Receiver<Option<Instant>>,
) -> bool {
    let reply = outbox.reply(item.seq, item.sender, false);
    let payload = std::mem::take(&mut item.payload);
    let sent = bounded(
        deadline,
        client.publish_with_reply(item.subject.subject.clone(), reply, payload),
    )
    .await;
    published(outbox, shared, &item.subject, 1, sent)
}

/// Publishes a run of notifications (see [`run_end`]) as one batch (wire version 2); returns
/// false when the shutdown deadline passed first.
async fn publish_batch(
    client: &async_nats::Client,
    outbox: &Outbox,
    shared: &Shared,
    run: &[Outgoing],
    deadline: &mut watch::Receiver<Option<Instant>>,
) -> bool {
    let first = &run[0];
    let size = run.iter().map(|i| wire::framed_len(i.payload.len())).sum();
    let mut payload = Vec::with_capacity(size);
    for item in run {
        wire::frame(&mut payload, &item.payload);
    }
    let count = run.len() as u64;
    let reply = wire::encode_batch(
        &outbox.batch_prefix,
        first.seq,
        count,
        first.sender.map(SenderId::as_raw),
    );
    let sent = bounded(
        deadline,
        client.publish_with_reply(
            first.subject.subject.clone(),
            async_nats::Subject::from(reply),
            Bytes::from(payload),
        ),
    )
    .await;
    if matches!(sent, Some(Ok(()))) {
        shared.counters.batched.fetch_add(count, Ordering::Relaxed);
        shared.counters.batches.fetch_add(1, Ordering::Relaxed);
    }
    published(outbox, shared, &first.subject, count, sent)
}

/// Counts `n` notifications of one message as published, or as dropped when the client
/// refused the message or the shutdown deadline passed first (`None`); returns false in the
/// latter case.
fn published(
    outbox: &Outbox,
    shared: &Shared,
    subject: &Arc<SubjectSeq>,
    n: u64,
    sent: Option<Result<(), async_nats::PublishError>>,
) -> bool {
    let in_time = sent.is_some();
    let reason = match sent {
        Some(Ok(())) => {
            shared.counters.published.fetch_add(n, Ordering::Relaxed);
            return true;
        }
        Some(Err(e)) => {
            tracing::warn!(subject = %subject.name, notifications = n, "nats export dropped: {e}");
            DropReason::PublishFailed
        }
        // Warned about once, with the total, by `publish_loop`.
        None => DropReason::ShutdownTimeout,
    };
    shared
        .counters
        .export_dropped
        .fetch_add(n, Ordering::Relaxed);
    let exports = outbox.exports.lock().clone();
    if let Some(st) = exports
        .iter()
        .filter_map(Weak::upgrade)
        .find(|s| Arc::ptr_eq(&s.subject, subject))
    {
        st.count_drop(reason, n, outbox);
    }
    in_time
}

/// Tells importers each subject's last sequence number, when nothing is queued or in flight
/// (so every number up to it was published, or dropped). A post may publish directly after
/// the numbers are read: its message then reaches importers before the heartbeat, whose
/// number is lower, which they ignore.
///
/// Returns false when the shutdown deadline passed first.
async fn send_heartbeats(
    client: &async_nats::Client,
    outbox: &Outbox,
    shared: &Shared,
    deadline: &mut watch::Receiver<Option<Instant>>,
) -> bool {
    let lasts: Vec<(async_nats::Subject, u64)> = {
        let q = outbox.queue.lock();
        if !q.items.is_empty() || q.busy {
            return true;
        }
        outbox
            .subjects
            .lock()
            .iter()
            .map(|s| (s.subject.clone(), s.last.load(Ordering::Relaxed)))
            .filter(|(_, last)| *last > 0)
            .collect()
    };
    for (subject, last) in lasts {
        let reply = outbox.reply(last, None, true);
        match bounded(
            deadline,
            client.publish_with_reply(subject, reply, Bytes::new()),
        )
        .await
        {
            Some(Ok(())) => {
                shared.counters.heartbeats.fetch_add(1, Ordering::Relaxed);
            }
            Some(Err(_)) => {}
            None => return false,
        }
    }
    true
}

/// Posts [`ExportDropped`] reports, at most every 100 ms per export, into the export's center.
async fn report_loop(outbox: Arc<Outbox>) {
    loop {
        outbox.report.notified().await;
        let closing = outbox.is_closed();
        if !closing {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let exports: Vec<Arc<ExportState>> = {
            let mut exports = outbox.exports.lock();
            exports.retain(|w| w.strong_count() > 0);
            exports.iter().filter_map(Weak::upgrade).collect()
        };
        for st in exports {
            let dropped = st.dropped.swap(0, Ordering::AcqRel);
            if dropped > 0 {
                st.center.post(ExportDropped {
                    subject: st.subject.name.clone(),
                    dropped,
                    reason: DropReason::from_u8(st.reason.load(Ordering::Relaxed)).to_owned(),
                });
            }
        }
        if closing {
            return;
        }
    }
}
