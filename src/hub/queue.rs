//! The coalescing queue (contract 10): [`NotificationQueue`] (which documents the rules),
//! [`PostingStyle`], [`Coalescing`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Mutex, ReentrantMutex};
use tokio::runtime::Handle;
use tokio::time::Instant;

use crate::{Notification, NotificationCenter, PostReport, SenderId};

/// When a queued notification is posted. See [`NotificationQueue`].
///
/// ```
/// use herald::PostingStyle;
/// assert_ne!(PostingStyle::Asap, PostingStyle::WhenIdle);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PostingStyle {
    /// Coalesce with the pending value, then post at once, before `enqueue` returns.
    Now,
    /// On the next tick of the tokio runtime, or at the next flush point without one.
    Asap,
    /// Once the queue has had no enqueue for its idle period (with a runtime), or at the next
    /// flush point.
    WhenIdle,
}

impl PostingStyle {
    fn urgency(self) -> u8 {
        match self {
            PostingStyle::Now => 2,
            PostingStyle::Asap => 1,
            PostingStyle::WhenIdle => 0,
        }
    }
}

/// Which pending notification a new one merges with. See [`NotificationQueue`].
///
/// ```
/// use herald::Coalescing;
/// assert_ne!(Coalescing::ByType, Coalescing::BySender);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coalescing {
    /// Never merged: each value is posted.
    None,
    /// One pending value for the whole queue (its type).
    ByType,
    /// One pending value per sender ([`enqueue`](NotificationQueue::enqueue) without a sender
    /// counts as one sender of its own).
    BySender,
    /// One pending value per key, extracted by the queue's
    /// [`key`](NotificationQueueBuilder::key) function.
    ///
    /// # Panics
    /// `enqueue` panics when the queue was built without a key function.
    ByKey,
}

/// Where a pending value sits for coalescing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Slot {
    Type,
    Sender(Option<SenderId>),
    Key(u64),
}

struct Pending<N> {
    value: N,
    sender: Option<SenderId>,
    style: PostingStyle,
    slot: Option<Slot>,
}

type KeyFns<N> = (
    Box<dyn Fn(&N) -> u64 + Send + Sync>,
    Box<dyn Fn(&N, &N) -> bool + Send + Sync>,
);
type MergeFn<N> = Box<dyn Fn(N, N) -> N + Send + Sync>;

struct State<N> {
    /// Pending values by the order of their first enqueue.
    pending: BTreeMap<u64, Pending<N>>,
    /// Coalescing slot -> orders of the pending values in it (several only for key hash
    /// collisions).
    slots: HashMap<Slot, Vec<u64>>,
    next: u64,
    shut: bool,
    asap_scheduled: bool,
    idle_scheduled: bool,
    last_enqueue: Option<Instant>,
}

struct Inner<N: Notification> {
    center: NotificationCenter,
    state: Mutex<State<N>>,
    /// Serializes flushes (re-entrant: an observer of a flush may flush).
    flushing: ReentrantMutex<()>,
    key: Option<KeyFns<N>>,
    merge: Option<MergeFn<N>>,
    idle_after: Duration,
    handle: Option<Handle>,
}

/// A coalescing queue of one notification type in front of a center (contract 10).
///
/// Cheap to clone (an `Arc` inside); clones are the same queue. Dropping the last clone
/// flushes.
///
/// A queue holds notifications of one type for one center and posts them later, merging the
/// ones that say the same thing. Each [`enqueue`](NotificationQueue::enqueue) names:
///
/// - a [`PostingStyle`]: [`Now`](PostingStyle::Now) (coalesce with what is pending, then
///   post at once), [`Asap`](PostingStyle::Asap) (on the next tick of the tokio runtime, or at
///   the next [`flush`](NotificationQueue::flush)) or [`WhenIdle`](PostingStyle::WhenIdle)
///   (once the queue has seen no enqueue for its
///   [`idle_after`](NotificationQueueBuilder::idle_after) period);
/// - a [`Coalescing`] rule: [`None`](Coalescing::None) (never merged),
///   [`ByType`](Coalescing::ByType) (one pending value for the whole queue),
///   [`BySender`](Coalescing::BySender) (one pending value per sender; sender-less enqueues
///   share one) or [`ByKey`](Coalescing::ByKey) (one per key, extracted by the queue's
///   [`key`](NotificationQueueBuilder::key) function).
///
/// # Coalescing, exactly
/// A value enqueued under a rule merges with the value pending under the *same rule and the
/// same key*, if there is one: the pending entry keeps its place (the enqueue order of its
/// first occurrence) and takes the newer value, or the result of the queue's
/// [`merge`](NotificationQueueBuilder::merge) function, and the newer sender. Its posting
/// style becomes the more urgent of the two (`Now` before `Asap` before `WhenIdle`). Values
/// enqueued with [`Coalescing::None`] never merge.
///
/// # Posting, exactly
/// Every enqueued value is posted once, or merged into exactly one posted value: never twice,
/// never lost. A flush posts the pending values in enqueue order of their first occurrence,
/// from the flushing thread; flushes are serialized, so values are posted in that order even
/// when several threads flush (a flush from inside an observer of a flush is nested, like a
/// nested post). [`flush`](NotificationQueue::flush) posts everything now;
/// [`shutdown`](NotificationQueue::shutdown) flushes and makes later enqueues post at once;
/// dropping the last handle flushes.
///
/// # When `Asap` values are posted
/// Enqueued from inside a post (an observer reacting to a notification), `Asap` values are
/// posted when the outermost post in progress on that thread ends, as in Apple's queue.
/// Otherwise they are posted by a task on the tokio runtime the queue was built in (or the one
/// current at the enqueue, or the one given to [`handle`](NotificationQueueBuilder::handle)),
/// on its next tick; without any runtime they wait for the next explicit flush point:
/// [`flush`](NotificationQueue::flush), `shutdown` or drop. `WhenIdle` values use the runtime
/// the same way.
///
/// ```
/// use herald::{Coalescing, Notification, NotificationCenter, NotificationQueue, PostingStyle, SenderId};
/// use std::sync::{Arc, Mutex};
///
/// #[derive(Debug)]
/// struct Unread { count: u32 }
/// impl Notification for Unread {}
///
/// let center = NotificationCenter::new();
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let s = seen.clone();
/// let _badge = center.observe(move |n: &Unread| s.lock().unwrap().push(n.count));
///
/// let queue = NotificationQueue::<Unread>::new(&center);
/// let (inbox, spam) = (SenderId::new(), SenderId::new());
/// queue.enqueue_from(inbox, Unread { count: 1 }, PostingStyle::Asap, Coalescing::BySender);
/// queue.enqueue_from(spam, Unread { count: 9 }, PostingStyle::Asap, Coalescing::BySender);
/// queue.enqueue_from(inbox, Unread { count: 2 }, PostingStyle::Asap, Coalescing::BySender);
/// assert_eq!(queue.len(), 2);
/// assert_eq!(queue.flush(), 2);
/// // inbox first (its first enqueue came first), with its last value
/// assert_eq!(*seen.lock().unwrap(), [2, 9]);
/// ```
///
/// # Example: a burst becomes one post
/// ```
/// use herald::{Coalescing, Notification, NotificationCenter, NotificationQueue, PostingStyle};
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU32, Ordering};
///
/// struct Layout;
/// impl Notification for Layout {}
///
/// let center = NotificationCenter::new();
/// let layouts = Arc::new(AtomicU32::new(0));
/// let l = layouts.clone();
/// let _view = center.observe(move |_: &Layout| { l.fetch_add(1, Ordering::SeqCst); });
/// let queue = NotificationQueue::new(&center);
/// for _ in 0..100 {
///     queue.enqueue(Layout, PostingStyle::Asap, Coalescing::ByType);
/// }
/// drop(queue); // flushes
/// assert_eq!(layouts.load(Ordering::SeqCst), 1);
/// ```
pub struct NotificationQueue<N: Notification> {
    inner: Arc<Inner<N>>,
}

impl<N: Notification> Clone for NotificationQueue<N> {
    fn clone(&self) -> Self {
        NotificationQueue {
            inner: self.inner.clone(),
        }
    }
}

/// What [`NotificationQueue::enqueue`] did with a value.
///
/// ```
/// use herald::{Coalescing, Enqueued, Notification, NotificationCenter, NotificationQueue, PostingStyle};
///
/// struct Ev;
/// impl Notification for Ev {}
///
/// let queue = NotificationQueue::new(&NotificationCenter::new());
/// assert_eq!(queue.enqueue(Ev, PostingStyle::Asap, Coalescing::ByType), Enqueued::Queued);
/// assert_eq!(queue.enqueue(Ev, PostingStyle::Asap, Coalescing::ByType), Enqueued::Coalesced);
/// assert!(matches!(queue.enqueue(Ev, PostingStyle::Now, Coalescing::ByType), Enqueued::Posted(_)));
/// assert!(queue.is_empty());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Pending, as a new entry.
    Queued,
    /// Merged into a pending entry.
    Coalesced,
    /// Posted before `enqueue` returned (style `Now`, or the queue was shut down).
    Posted(PostReport),
}

/// Configures a [`NotificationQueue`]: key function, merge function, idle period, runtime.
///
/// ```
/// use herald::{Coalescing, Notification, NotificationCenter, NotificationQueue, PostingStyle};
/// use std::time::Duration;
///
/// #[derive(Debug)]
/// struct Progress { job: u32, done: u32 }
/// impl Notification for Progress {}
///
/// let center = NotificationCenter::new();
/// let queue = NotificationQueue::builder(&center)
///     .key(|p: &Progress| p.job)
///     .merge(|older, newer| Progress { job: newer.job, done: older.done.max(newer.done) })
///     .idle_after(Duration::from_millis(20))
///     .build();
/// queue.enqueue(Progress { job: 1, done: 50 }, PostingStyle::WhenIdle, Coalescing::ByKey);
/// queue.enqueue(Progress { job: 1, done: 40 }, PostingStyle::WhenIdle, Coalescing::ByKey);
/// assert_eq!(queue.len(), 1);
/// ```
#[must_use = "a builder does nothing until .build()"]
pub struct NotificationQueueBuilder<N: Notification> {
    center: NotificationCenter,
    key: Option<KeyFns<N>>,
    merge: Option<MergeFn<N>>,
    idle_after: Duration,
    handle: Option<Handle>,
}

/// The default quiet period before `WhenIdle` values are posted.
pub const DEFAULT_IDLE_AFTER: Duration = Duration::from_millis(10);

impl<N: Notification> NotificationQueueBuilder<N> {
    /// The key of [`Coalescing::ByKey`]: values with equal keys merge.
    ///
    /// Key comparison runs under the queue's lock: the function must not use the queue.
    ///
    /// ```
    /// # use herald::{Notification, NotificationCenter, NotificationQueue};
    /// # struct Ev { id: u32 } impl Notification for Ev {}
    /// let queue = NotificationQueue::builder(&NotificationCenter::new()).key(|e: &Ev| e.id).build();
    /// # let _ = queue;
    /// ```
    pub fn key<K, F>(mut self, key: F) -> Self
    where
        K: Hash + Eq,
        F: Fn(&N) -> K + Send + Sync + 'static,
    {
        let key = Arc::new(key);
        let hash_key = key.clone();
        let state = std::collections::hash_map::RandomState::new();
        self.key = Some((
            Box::new(move |n| state.hash_one(hash_key(n))),
            Box::new(move |a, b| key(a) == key(b)),
        ));
        self
    }

    /// How two coalesced values become one: `merge(older, newer)`. The default keeps the newer.
    ///
    /// Runs under the queue's lock, inside `enqueue`: it must not use the queue. If it panics,
    /// the panic unwinds out of `enqueue` and the two values it was given are lost (the queue
    /// stays consistent).
    ///
    /// ```
    /// # use herald::{Coalescing, Notification, NotificationCenter, NotificationQueue, PostingStyle};
    /// # #[derive(Debug)] struct Added(u32); impl Notification for Added {}
    /// let queue = NotificationQueue::builder(&NotificationCenter::new())
    ///     .merge(|a: Added, b: Added| Added(a.0 + b.0))
    ///     .build();
    /// queue.enqueue(Added(2), PostingStyle::Asap, Coalescing::ByType);
    /// queue.enqueue(Added(3), PostingStyle::Asap, Coalescing::ByType);
    /// # assert_eq!(queue.len(), 1);
    /// ```
    pub fn merge<F>(mut self, merge: F) -> Self
    where
        F: Fn(N, N) -> N + Send + Sync + 'static,
    {
        self.merge = Some(Box::new(merge));
        self
    }

    /// How long the queue must see no enqueue before `WhenIdle` values are posted (default
    /// [`DEFAULT_IDLE_AFTER`]).
    ///
    /// ```
    /// # use herald::{Notification, NotificationCenter, NotificationQueue};
    /// # use std::time::Duration;
    /// # struct Ev; impl Notification for Ev {}
    /// let queue = NotificationQueue::<Ev>::builder(&NotificationCenter::new())
    ///     .idle_after(Duration::from_millis(100))
    ///     .build();
    /// # let _ = queue;
    /// ```
    pub fn idle_after(mut self, quiet: Duration) -> Self {
        self.idle_after = quiet;
        self
    }

    /// Posts `Asap` and `WhenIdle` values from tasks on this runtime (default: the runtime
    /// current at `build`, else the one current at each enqueue).
    ///
    /// ```
    /// # use herald::{Notification, NotificationCenter, NotificationQueue};
    /// # struct Ev; impl Notification for Ev {}
    /// let runtime = tokio::runtime::Runtime::new().unwrap();
    /// let queue = NotificationQueue::<Ev>::builder(&NotificationCenter::new())
    ///     .handle(runtime.handle().clone())
    ///     .build();
    /// # drop(queue);
    /// ```
    pub fn handle(mut self, handle: Handle) -> Self {
        self.handle = Some(handle);
        self
    }

    /// Builds the queue.
    ///
    /// ```
    /// # use herald::{Notification, NotificationCenter, NotificationQueue};
    /// # struct Ev; impl Notification for Ev {}
    /// let queue = NotificationQueue::<Ev>::builder(&NotificationCenter::new()).build();
    /// assert!(queue.is_empty());
    /// ```
    pub fn build(self) -> NotificationQueue<N> {
        NotificationQueue {
            inner: Arc::new(Inner {
                center: self.center,
                state: Mutex::new(State {
                    pending: BTreeMap::new(),
                    slots: HashMap::new(),
                    next: 0,
                    shut: false,
                    asap_scheduled: false,
                    idle_scheduled: false,
                    last_enqueue: None,
                }),
                flushing: ReentrantMutex::new(()),
                key: self.key,
                merge: self.merge,
                idle_after: self.idle_after,
                handle: self.handle.or_else(|| Handle::try_current().ok()),
            }),
        }
    }
}

impl<N: Notification> NotificationQueue<N> {
    /// A queue in front of `center`, with the defaults (no key function, newer value wins,
    /// [`DEFAULT_IDLE_AFTER`], the current runtime if any).
    ///
    /// ```
    /// # use herald::{Notification, NotificationCenter, NotificationQueue};
    /// # struct Ev; impl Notification for Ev {}
    /// let queue = NotificationQueue::<Ev>::new(&NotificationCenter::new());
    /// # let _ = queue;
    /// ```
    pub fn new(center: &NotificationCenter) -> Self {
        Self::builder(center).build()
    }

    /// Configures a queue in front of `center`.
    ///
    /// ```
    /// # use herald::{Notification, NotificationCenter, NotificationQueue};
    /// # struct Ev(u32); impl Notification for Ev {}
    /// let queue = NotificationQueue::builder(&NotificationCenter::new()).key(|e: &Ev| e.0).build();
    /// # let _ = queue;
    /// ```
    pub fn builder(center: &NotificationCenter) -> NotificationQueueBuilder<N> {
        NotificationQueueBuilder {
            center: center.clone(),
            key: None,
            merge: None,
            idle_after: DEFAULT_IDLE_AFTER,
            handle: None,
        }
    }

    /// Enqueues a notification without a sender.
    ///
    /// ```
    /// # use herald::{Coalescing, Notification, NotificationCenter, NotificationQueue, PostingStyle};
    /// # struct Ev; impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let queue = NotificationQueue::new(&center);
    /// queue.enqueue(Ev, PostingStyle::Asap, Coalescing::None);
    /// queue.enqueue(Ev, PostingStyle::Asap, Coalescing::None);
    /// assert_eq!(queue.flush(), 2);
    /// ```
    pub fn enqueue(
        &self,
        notification: N,
        style: PostingStyle,
        coalescing: Coalescing,
    ) -> Enqueued {
        self.enqueue_inner(None, notification, style, coalescing)
    }

    /// Enqueues a notification from `sender`; it is posted with
    /// [`post_from`](NotificationCenter::post_from).
    ///
    /// ```
    /// # use herald::{Coalescing, Notification, NotificationCenter, NotificationQueue, PostingStyle, SenderId};
    /// # struct Ev; impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let me = SenderId::new();
    /// let mut mine = center.observer::<Ev>().sender(me).stream();
    /// let queue = NotificationQueue::new(&center);
    /// queue.enqueue_from(me, Ev, PostingStyle::Asap, Coalescing::BySender);
    /// queue.flush();
    /// assert!(mine.try_recv().is_ok());
    /// ```
    pub fn enqueue_from(
        &self,
        sender: SenderId,
        notification: N,
        style: PostingStyle,
        coalescing: Coalescing,
    ) -> Enqueued {
        self.enqueue_inner(Some(sender), notification, style, coalescing)
    }

    fn enqueue_inner(
        &self,
        sender: Option<SenderId>,
        value: N,
        style: PostingStyle,
        coalescing: Coalescing,
    ) -> Enqueued {
        let inner = &self.inner;
        let slot = match coalescing {
            Coalescing::None => None,
            Coalescing::ByType => Some(Slot::Type),
            Coalescing::BySender => Some(Slot::Sender(sender)),
            Coalescing::ByKey => {
                let Some((hash, _)) = &inner.key else {
                    panic!(
                        "herald: Coalescing::ByKey needs a key function: build the queue with \
                         NotificationQueue::builder(&center).key(|n| ..)"
                    );
                };
                Some(Slot::Key(hash(&value)))
            }
        };
        let mut st = inner.state.lock();
        st.last_enqueue = Some(Instant::now());
        if st.shut {
            drop(st);
            return Enqueued::Posted(inner.post(sender, value));
        }
        let found = slot.and_then(|slot| {
            let orders = st.slots.get(&slot)?;
            orders.iter().copied().find(|o| match (slot, &inner.key) {
                (Slot::Key(_), Some((_, same))) => {
                    st.pending.get(o).is_some_and(|p| same(&p.value, &value))
                }
                _ => true,
            })
        });
        if style == PostingStyle::Now {
            // Coalesce with the pending value, then post at once.
            let value = match found {
                Some(order) => {
                    let old = remove(&mut st, order);
                    inner.merged(old.value, value)
                }
                None => value,
            };
            drop(st);
            let _flush = inner.flushing.lock();
            return Enqueued::Posted(inner.post(sender, value));
        }
        let outcome = match found {
            Some(order) => {
                // Taken out first so that a panicking merge leaves no stale slot behind.
                let p = remove(&mut st, order);
                let merged = Pending {
                    value: inner.merged(p.value, value),
                    sender,
                    style: if style.urgency() > p.style.urgency() {
                        style
                    } else {
                        p.style
                    },
                    slot: p.slot,
                };
                if let Some(slot) = p.slot {
                    st.slots.entry(slot).or_default().push(order);
                }
                st.pending.insert(order, merged);
                Enqueued::Coalesced
            }
            None => {
                let order = st.next;
                st.next += 1;
                st.pending.insert(
                    order,
                    Pending {
                        value,
                        sender,
                        style,
                        slot,
                    },
                );
                if let Some(slot) = slot {
                    st.slots.entry(slot).or_default().push(order);
                }
                Enqueued::Queued
            }
        };
        // Enqueued from inside a post: `Asap` means at the end of that (outermost) post, as in
        // Apple's queue, whatever the runtime.
        if style == PostingStyle::Asap && !st.asap_scheduled {
            let weak = Arc::downgrade(inner);
            let flush_at_end = Box::new(move || {
                if let Some(inner) = weak.upgrade() {
                    inner.state.lock().asap_scheduled = false;
                    inner.flush(|style| style == PostingStyle::Asap);
                }
            });
            if inner
                .center
                .inner
                .domain()
                .after_section(flush_at_end)
                .is_ok()
            {
                st.asap_scheduled = true;
            }
        }
        let handle = inner.handle.clone().or_else(|| Handle::try_current().ok());
        if let Some(handle) = handle {
            let weak = Arc::downgrade(inner);
            match style {
                PostingStyle::Asap if !st.asap_scheduled => {
                    st.asap_scheduled = true;
                    handle.spawn(asap(weak));
                }
                PostingStyle::WhenIdle if !st.idle_scheduled => {
                    st.idle_scheduled = true;
                    handle.spawn(when_idle(weak));
                }
                _ => {}
            }
        }
        outcome
    }

    /// Posts every pending notification now, in enqueue order of first occurrence. Returns
    /// how many were posted.
    ///
    /// ```
    /// # use herald::{Coalescing, Notification, NotificationCenter, NotificationQueue, PostingStyle};
    /// # struct Ev; impl Notification for Ev {}
    /// let queue = NotificationQueue::new(&NotificationCenter::new());
    /// queue.enqueue(Ev, PostingStyle::WhenIdle, Coalescing::None);
    /// assert_eq!(queue.flush(), 1);
    /// assert_eq!(queue.flush(), 0);
    /// ```
    pub fn flush(&self) -> usize {
        self.inner.flush(|_| true)
    }

    /// Flushes, then makes every later enqueue (on any clone) post at once: nothing is left
    /// behind at shutdown. Returns how many were posted by the flush.
    ///
    /// ```
    /// # use herald::{Coalescing, Enqueued, Notification, NotificationCenter, NotificationQueue, PostingStyle};
    /// # struct Ev; impl Notification for Ev {}
    /// let queue = NotificationQueue::new(&NotificationCenter::new());
    /// queue.enqueue(Ev, PostingStyle::WhenIdle, Coalescing::None);
    /// assert_eq!(queue.shutdown(), 1);
    /// assert!(matches!(queue.enqueue(Ev, PostingStyle::Asap, Coalescing::None), Enqueued::Posted(_)));
    /// ```
    pub fn shutdown(&self) -> usize {
        let _flush = self.inner.flushing.lock();
        let posted = self.inner.flush(|_| true);
        self.inner.state.lock().shut = true;
        // Values enqueued by observers of the flush above, before `shut` was set.
        posted + self.inner.flush(|_| true)
    }

    /// Notifications pending (after coalescing).
    ///
    /// ```
    /// # use herald::{Notification, NotificationCenter, NotificationQueue};
    /// # struct Ev; impl Notification for Ev {}
    /// assert_eq!(NotificationQueue::<Ev>::new(&NotificationCenter::new()).len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.inner.state.lock().pending.len()
    }

    /// Whether nothing is pending.
    ///
    /// ```
    /// # use herald::{Notification, NotificationCenter, NotificationQueue};
    /// # struct Ev; impl Notification for Ev {}
    /// assert!(NotificationQueue::<Ev>::new(&NotificationCenter::new()).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The center this queue posts to.
    ///
    /// ```
    /// # use herald::{Notification, NotificationCenter, NotificationQueue};
    /// # struct Ev; impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// assert!(NotificationQueue::<Ev>::new(&center).center().same_center(&center));
    /// ```
    pub fn center(&self) -> &NotificationCenter {
        &self.inner.center
    }
}

/// Removes a pending entry and its slot record.
fn remove<N>(st: &mut State<N>, order: u64) -> Pending<N> {
    let p = st
        .pending
        .remove(&order)
        .unwrap_or_else(|| unreachable!("slots and pending agree"));
    if let Some(slot) = p.slot
        && let Some(orders) = st.slots.get_mut(&slot)
    {
        orders.retain(|o| *o != order);
        if orders.is_empty() {
            st.slots.remove(&slot);
        }
    }
    p
}

impl<N: Notification> Inner<N> {
    fn merged(&self, older: N, newer: N) -> N {
        match &self.merge {
            Some(merge) => merge(older, newer),
            None => newer,
        }
    }

    fn post(&self, sender: Option<SenderId>, value: N) -> PostReport {
        match sender {
            Some(s) => self.center.post_from(s, value),
            None => self.center.post(value),
        }
    }

    /// Posts the pending values `which` selects, in order; serialized with other flushes.
    fn flush(&self, which: impl Fn(PostingStyle) -> bool) -> usize {
        let _flush = self.flushing.lock();
        let batch: Vec<Pending<N>> = {
            let mut st = self.state.lock();
            let orders: Vec<u64> = st
                .pending
                .iter()
                .filter(|(_, p)| which(p.style))
                .map(|(o, _)| *o)
                .collect();
            orders.into_iter().map(|o| remove(&mut st, o)).collect()
        };
        let n = batch.len();
        for p in batch {
            self.post(p.sender, p.value);
        }
        n
    }
}

impl<N: Notification> Drop for Inner<N> {
    fn drop(&mut self) {
        self.flush(|_| true);
    }
}

/// Posts the `Asap` values on the next runtime tick.
async fn asap<N: Notification>(queue: Weak<Inner<N>>) {
    let Some(inner) = queue.upgrade() else {
        return;
    };
    inner.state.lock().asap_scheduled = false;
    inner.flush(|style| style == PostingStyle::Asap);
}

/// Waits for a quiet period, then posts everything pending.
async fn when_idle<N: Notification>(queue: Weak<Inner<N>>) {
    loop {
        let (deadline, idle_after) = {
            let Some(inner) = queue.upgrade() else {
                return;
            };
            let st = inner.state.lock();
            let last = st.last_enqueue.unwrap_or_else(Instant::now);
            (last + inner.idle_after, inner.idle_after)
        };
        tokio::time::sleep_until(deadline).await;
        let Some(inner) = queue.upgrade() else {
            return;
        };
        {
            let mut st = inner.state.lock();
            let quiet_since = st.last_enqueue.unwrap_or_else(Instant::now);
            if Instant::now() < quiet_since + idle_after {
                continue; // an enqueue came in meanwhile
            }
            st.idle_scheduled = false;
        }
        inner.flush(|_| true);
        return;
    }
}

impl<N: Notification> fmt::Debug for NotificationQueue<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotificationQueue")
            .field("notification", &N::name())
            .field("pending", &self.len())
            .field("idle_after", &self.inner.idle_after)
            .finish_non_exhaustive()
    }
}

impl<N: Notification> fmt::Debug for NotificationQueueBuilder<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotificationQueueBuilder")
            .field("notification", &N::name())
            .field("key", &self.key.is_some())
            .field("merge", &self.merge.is_some())
            .field("idle_after", &self.idle_after)
            .finish_non_exhaustive()
    }
}
