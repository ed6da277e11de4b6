//! Apple's `NotificationQueue`, typed (contract 10).
//!
//! [`NotificationQueue`] holds notifications of any type in one FIFO order and posts them into
//! its center later, coalescing the ones that say the same thing. Its type documentation is the
//! spec, in four sections: *Posting styles*, *Coalescing*, *Ordering*, *Shutdown*. This module
//! also holds the policies given at each enqueue ([`PostingStyle`], [`Coalescing`] with its
//! [`CoalescingKey`]), the selector of [`dequeue_matching`](NotificationQueue::dequeue_matching)
//! ([`Matching`]) and the counters ([`QueueStats`]).
//!
//! How it is built: a pending entry is a boxed value that posts itself through the center's
//! public [`post`](NotificationCenter::post) / [`post_from`](NotificationCenter::post_from)
//! (so observers cannot tell a queued post from a direct one), plus its coalescing identity
//! (a [`Group`]: the `TypeId`, the sender, the key). Entries sit in a `BTreeMap` by the order
//! of their first enqueue; a map from group to order finds the entry a new value coalesces
//! with. The queue touches the engine in one place, [`at_end_of_outermost_post`].

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Weak};
use std::thread::{self, ThreadId};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use tokio::runtime::Handle;
use tokio::time::Instant;

use crate::{Notification, NotificationCenter, PostReport, SenderId};

/// The default quiet period before [`PostingStyle::WhenIdle`] entries are posted.
///
/// ```
/// use herald::{Coalescing, DEFAULT_IDLE_AFTER, Notification, NotificationCenter, NotificationQueue, PostingStyle};
/// use std::time::Duration;
///
/// struct Saved;
/// impl Notification for Saved {}
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// assert_eq!(DEFAULT_IDLE_AFTER, Duration::from_millis(10));
///
/// // Tokio's clock is paused here (`start_paused`): the sleeps below take no real time.
/// let center = NotificationCenter::new();
/// let saved = center.stream::<Saved>();
/// let queue = NotificationQueue::new(&center); // idle period: DEFAULT_IDLE_AFTER
/// queue.enqueue_with(Saved, PostingStyle::WhenIdle, Coalescing::ByType);
/// tokio::time::sleep(DEFAULT_IDLE_AFTER / 2).await;
/// assert!(saved.is_empty()); // not quiet for long enough yet
/// tokio::time::sleep(DEFAULT_IDLE_AFTER).await;
/// assert_eq!(saved.len(), 1);
/// assert!(queue.is_empty());
/// # }
/// ```
pub const DEFAULT_IDLE_AFTER: Duration = Duration::from_millis(10);

/// When a queued notification is posted (Apple's `NotificationQueue.PostingStyle`). See
/// [*Posting styles*](NotificationQueue#posting-styles).
///
/// The default is [`Asap`](PostingStyle::Asap).
///
/// ```
/// use herald::PostingStyle;
/// assert_eq!(PostingStyle::default(), PostingStyle::Asap);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PostingStyle {
    /// Coalesce with the pending entry of the same group (removing it), then post at once,
    /// before `enqueue` returns (Apple's `.now`: "posted immediately after coalescing").
    Now,
    /// At the end of the outermost post in progress on this thread, or on the next tick of
    /// the runtime when enqueued outside a post (Apple's `.asap`: "at the end of the current
    /// notification callout").
    #[default]
    Asap,
    /// Once the queue has seen no enqueue for its
    /// [`idle_after`](NotificationQueueBuilder::idle_after) period (Apple's `.whenIdle`).
    WhenIdle,
}

impl PostingStyle {
    /// The more urgent of two styles: `Now` before `Asap` before `WhenIdle`.
    fn more_urgent(self, other: PostingStyle) -> PostingStyle {
        let urgency = |s: PostingStyle| match s {
            PostingStyle::Now => 2,
            PostingStyle::Asap => 1,
            PostingStyle::WhenIdle => 0,
        };
        if urgency(other) > urgency(self) {
            other
        } else {
            self
        }
    }
}

/// Which pending entry a new one coalesces with (Apple's `NotificationCoalescing`, plus keys).
/// See [*Coalescing*](NotificationQueue#coalescing).
///
/// The default is [`ByTypeAndSender`](Coalescing::ByTypeAndSender), as Apple's
/// `enqueue(_:postingStyle:)` coalesces on name and sender.
///
/// ```
/// use herald::Coalescing;
/// assert_eq!(Coalescing::default(), Coalescing::ByTypeAndSender);
/// assert_eq!(Coalescing::by_key(7_u32), Coalescing::by_key(7_u32));
/// assert_ne!(Coalescing::by_key(7_u32), Coalescing::by_key(7_u64)); // keys of different types
/// ```
///
/// A key rule carries its key, so a key rule without a key does not compile:
///
/// ```compile_fail,E0308
/// use herald::Coalescing;
/// let rule: Coalescing = Coalescing::ByKey; // error: expected `Coalescing`, found fn item
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Coalescing {
    /// Never coalesced: the entry is posted on its own, and no later enqueue absorbs it
    /// (Apple's `.none`).
    None,
    /// With the pending entry of the same notification type, whatever its sender (Apple's
    /// `.onName`).
    ByType,
    /// With the pending entry of the same sender, whatever its type (Apple's `.onSender`).
    /// Enqueues without a sender count as one sender of their own.
    BySender,
    /// With the pending entry of the same type and the same sender (Apple's
    /// `[.onName, .onSender]`). The default.
    #[default]
    ByTypeAndSender,
    /// With the pending entry of the same type whose key is equal (same key type, `==`).
    /// Made with [`Coalescing::by_key`].
    ByKey(CoalescingKey),
}

impl Coalescing {
    /// Coalesce with the pending entry of the same notification type holding an equal key.
    ///
    /// ```
    /// use herald::{Coalescing, Notification, NotificationCenter, NotificationQueue, PostingStyle};
    ///
    /// struct Progress { job: u32, percent: u8 }
    /// impl Notification for Progress {}
    ///
    /// let queue = NotificationQueue::new(&NotificationCenter::new());
    /// for (job, percent) in [(1, 10), (2, 5), (1, 20)] {
    ///     let rule = Coalescing::by_key(job);
    ///     queue.enqueue_with(Progress { job, percent }, PostingStyle::Asap, rule);
    /// }
    /// assert_eq!(queue.len(), 2); // one entry per job
    /// ```
    pub fn by_key<K: Hash + Eq + Send + Sync + 'static>(key: K) -> Self {
        Coalescing::ByKey(CoalescingKey::new(key))
    }
}

/// The key of a [`Coalescing::ByKey`] rule or of a [`Matching`]: any `Hash + Eq` value,
/// type-erased. Two keys are equal when they have the same type and compare equal.
///
/// ```
/// use herald::CoalescingKey;
/// assert_eq!(CoalescingKey::new("job-1"), CoalescingKey::new("job-1"));
/// assert_ne!(CoalescingKey::new(1_u8), CoalescingKey::new(1_i32));
/// ```
#[derive(Clone)]
pub struct CoalescingKey(Arc<dyn KeyValue>);

impl CoalescingKey {
    /// Wraps `key`.
    ///
    /// ```
    /// let key = herald::CoalescingKey::new((42_u64, "upload"));
    /// # let _ = key;
    /// ```
    pub fn new<K: Hash + Eq + Send + Sync + 'static>(key: K) -> Self {
        CoalescingKey(Arc::new(key))
    }
}

/// A key value behind a `dyn`: equality and hashing that include the key's type.
trait KeyValue: Send + Sync {
    fn as_any(&self) -> &dyn Any;
    fn eq_key(&self, other: &dyn Any) -> bool;
    fn hash_key(&self, state: &mut dyn Hasher);
    fn type_name(&self) -> &'static str;
}

impl<K: Hash + Eq + Send + Sync + 'static> KeyValue for K {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn eq_key(&self, other: &dyn Any) -> bool {
        other.downcast_ref::<K>() == Some(self)
    }

    fn hash_key(&self, mut state: &mut dyn Hasher) {
        TypeId::of::<K>().hash(&mut state);
        self.hash(&mut state);
    }

    fn type_name(&self) -> &'static str {
        std::any::type_name::<K>()
    }
}

impl PartialEq for CoalescingKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_key(other.0.as_any())
    }
}

impl Eq for CoalescingKey {}

impl Hash for CoalescingKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash_key(state);
    }
}

impl fmt::Debug for CoalescingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CoalescingKey")
            .field(&self.0.type_name())
            .finish()
    }
}

/// Which pending entries [`NotificationQueue::dequeue_matching`] removes (Apple's
/// `dequeueNotifications(matching:coalesceMask:)`): those of a type, from a sender, with a key,
/// or any combination (all given criteria must hold). Entries match by what they carry,
/// whatever rule they were enqueued with.
///
/// ```
/// use herald::{Matching, Notification, SenderId};
///
/// struct Progress(u8);
/// impl Notification for Progress {}
///
/// let job = SenderId::new();
/// let _everything = Matching::all();
/// let _all_progress = Matching::of_type::<Progress>();
/// let _from_job = Matching::all().sender(job);
/// let _progress_of_job = Matching::of_type::<Progress>().sender(job);
/// let _keyed = Matching::of_type::<Progress>().key(7_u32);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Matching {
    of_type: Option<(TypeId, &'static str)>,
    sender: Option<SenderId>,
    key: Option<CoalescingKey>,
}

impl Matching {
    /// Every pending entry.
    ///
    /// ```
    /// # use herald::{Matching, Notification, NotificationCenter, NotificationQueue};
    /// # struct Ev; impl Notification for Ev {}
    /// let queue = NotificationQueue::new(&NotificationCenter::new());
    /// queue.enqueue(Ev);
    /// assert_eq!(queue.dequeue_matching(&Matching::all()), 1);
    /// ```
    pub fn all() -> Self {
        Matching::default()
    }

    /// The pending entries whose notification is an `N` (Apple's `.onName`).
    ///
    /// ```
    /// # use herald::{Matching, Notification, NotificationCenter, NotificationQueue};
    /// # struct A; impl Notification for A {}
    /// # struct B; impl Notification for B {}
    /// let queue = NotificationQueue::new(&NotificationCenter::new());
    /// queue.enqueue(A);
    /// queue.enqueue(B);
    /// assert_eq!(queue.dequeue_matching(&Matching::of_type::<A>()), 1);
    /// assert_eq!(queue.len(), 1);
    /// ```
    pub fn of_type<N: Notification>() -> Self {
        Matching {
            of_type: Some((TypeId::of::<N>(), N::name())),
            ..Matching::default()
        }
    }

    /// Only entries enqueued from `sender` (Apple's `.onSender`).
    ///
    /// ```
    /// # use herald::{Matching, Notification, NotificationCenter, NotificationQueue, SenderId};
    /// # struct Ev; impl Notification for Ev {}
    /// let queue = NotificationQueue::new(&NotificationCenter::new());
    /// let me = SenderId::new();
    /// queue.enqueue_from(me, Ev);
    /// queue.enqueue(Ev);
    /// assert_eq!(queue.dequeue_matching(&Matching::all().sender(me)), 1);
    /// ```
    pub fn sender(mut self, sender: SenderId) -> Self {
        self.sender = Some(sender);
        self
    }

    /// Only entries enqueued with [`Coalescing::ByKey`] and an equal key.
    ///
    /// ```
    /// # use herald::{Coalescing, Matching, Notification, NotificationCenter, NotificationQueue, PostingStyle};
    /// # struct Ev; impl Notification for Ev {}
    /// let queue = NotificationQueue::new(&NotificationCenter::new());
    /// queue.enqueue_with(Ev, PostingStyle::Asap, Coalescing::by_key("a"));
    /// queue.enqueue_with(Ev, PostingStyle::Asap, Coalescing::by_key("b"));
    /// assert_eq!(queue.dequeue_matching(&Matching::of_type::<Ev>().key("a")), 1);
    /// ```
    pub fn key<K: Hash + Eq + Send + Sync + 'static>(mut self, key: K) -> Self {
        self.key = Some(CoalescingKey::new(key));
        self
    }

    fn matches(&self, entry: &Entry) -> bool {
        self.of_type.is_none_or(|(t, _)| t == entry.type_id)
            && self.sender.is_none_or(|s| entry.sender == Some(s))
            && self.key.as_ref().is_none_or(
                |k| matches!(&entry.group, Some(Group::Key(_, entry_key)) if entry_key == k),
            )
    }
}

/// What an enqueue did with a notification.
///
/// ```
/// use herald::{Enqueued, Notification, NotificationCenter, NotificationQueue, PostingStyle, Coalescing};
///
/// struct Ev;
/// impl Notification for Ev {}
///
/// let queue = NotificationQueue::new(&NotificationCenter::new());
/// assert_eq!(queue.enqueue(Ev), Enqueued::Queued);
/// assert_eq!(queue.enqueue(Ev), Enqueued::Coalesced);
/// let now = queue.enqueue_with(Ev, PostingStyle::Now, Coalescing::default());
/// assert!(matches!(now, Enqueued::Posted(_)));
/// assert!(queue.is_empty());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Pending, as a new entry at the back of the queue.
    Queued,
    /// Merged into a pending entry, which keeps its place and now carries this value.
    Coalesced,
    /// Posted before the enqueue returned (style [`Now`](PostingStyle::Now), or the queue was
    /// [shut down](NotificationQueue::shutdown)), with the post's report.
    Posted(PostReport),
}

/// A queue's counters, from [`NotificationQueue::stats`].
///
/// Every enqueued notification is accounted for exactly once:
/// `enqueued == posted + coalesced + removed + pending`.
///
/// ```
/// use herald::{Matching, Notification, NotificationCenter, NotificationQueue};
///
/// struct Ev;
/// impl Notification for Ev {}
///
/// let queue = NotificationQueue::new(&NotificationCenter::new());
/// queue.enqueue(Ev);
/// queue.enqueue(Ev); // coalesced
/// queue.flush();
/// queue.enqueue(Ev);
/// queue.dequeue_matching(&Matching::all());
/// let s = queue.stats();
/// assert_eq!((s.enqueued, s.coalesced, s.posted, s.removed, s.pending), (3, 1, 1, 1, 0));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueStats {
    /// Notifications given to an enqueue method.
    pub enqueued: u64,
    /// Of those, how many merged with a pending entry (one of the two is not posted).
    pub coalesced: u64,
    /// Posts the queue made into its center.
    pub posted: u64,
    /// Entries removed without posting by [`NotificationQueue::dequeue_matching`].
    pub removed: u64,
    /// Entries pending now.
    pub pending: usize,
}

/// A coalescing identity: a rule and what the rule compares. Different rules never meet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Group {
    Type(TypeId),
    Sender(Option<SenderId>),
    TypeAndSender(TypeId, Option<SenderId>),
    Key(TypeId, CoalescingKey),
}

impl Group {
    fn of<N: Notification>(rule: Coalescing, sender: Option<SenderId>) -> Option<Group> {
        let ty = TypeId::of::<N>();
        match rule {
            Coalescing::None => None,
            Coalescing::ByType => Some(Group::Type(ty)),
            Coalescing::BySender => Some(Group::Sender(sender)),
            Coalescing::ByTypeAndSender => Some(Group::TypeAndSender(ty, sender)),
            Coalescing::ByKey(key) => Some(Group::Key(ty, key)),
        }
    }
}

/// A pending value: posts itself into a center through its public API.
trait Erased: Send {
    fn post(self: Box<Self>, center: &NotificationCenter, sender: Option<SenderId>) -> PostReport;
    fn value(&self) -> &dyn Any;
}

struct Typed<N>(N);

impl<N: Notification> Erased for Typed<N> {
    fn post(self: Box<Self>, center: &NotificationCenter, sender: Option<SenderId>) -> PostReport {
        post(center, sender, self.0)
    }

    fn value(&self) -> &dyn Any {
        &self.0
    }
}

fn post<N: Notification>(
    center: &NotificationCenter,
    sender: Option<SenderId>,
    value: N,
) -> PostReport {
    match sender {
        Some(s) => center.post_from(s, value),
        None => center.post(value),
    }
}

struct Entry {
    value: Box<dyn Erased>,
    type_id: TypeId,
    name: &'static str,
    sender: Option<SenderId>,
    style: PostingStyle,
    group: Option<Group>,
}

/// Which entries a flush posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Scope {
    /// The `Asap` entries (the end of a post, the runtime tick).
    Asap,
    /// Everything (`flush`, the idle timer, shutdown, drop).
    All,
}

struct State {
    /// Pending entries by the order of their first enqueue: the FIFO.
    entries: BTreeMap<u64, Entry>,
    /// The orders of the pending `Asap` entries.
    asap: BTreeSet<u64>,
    /// Coalescing group -> order of its pending entry (at most one per group).
    groups: HashMap<Group, u64>,
    next: u64,
    shut: bool,
    /// A runtime task is scheduled to post the `Asap` entries / to wait for idleness.
    asap_task: bool,
    idle_task: bool,
    /// Threads with an end-of-post flush registered (inside a post on the center).
    hooked: Vec<ThreadId>,
    last_enqueue: Instant,
    /// The thread flushing and its nesting depth: one flusher at a time keeps the FIFO.
    flusher: Option<(ThreadId, usize)>,
    /// Flushes asked for while another thread was flushing; its flusher serves them.
    requested: Option<Scope>,
    stats: QueueStats,
}

impl State {
    /// Removes a pending entry with its group and style records.
    fn remove(&mut self, order: u64) -> Option<Entry> {
        let entry = self.entries.remove(&order)?;
        self.asap.remove(&order);
        if let Some(group) = &entry.group {
            self.groups.remove(group);
        }
        Some(entry)
    }
}

type MergeFn<N> = Box<dyn Fn(&N, N) -> N + Send + Sync>;

struct Inner {
    center: NotificationCenter,
    state: Mutex<State>,
    /// Signalled when a flusher gives up the queue.
    flush_done: Condvar,
    /// `TypeId` of `N` -> `MergeFn<N>`.
    merges: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
    idle_after: Duration,
    handle: Option<Handle>,
}

/// Apple's `NotificationQueue`, typed: a buffer in front of a [`NotificationCenter`] that
/// takes notifications of any type, keeps them in one FIFO order, coalesces the ones that say
/// the same thing, and posts them later (contract 10).
///
/// Cheap to clone (an `Arc` inside); clones are the same queue, usable from any thread.
///
/// Each enqueue names a [`PostingStyle`] (when) and a [`Coalescing`] rule (merged with what):
///
/// | method | sender | style, rule |
/// |---|---|---|
/// | [`enqueue(n)`](Self::enqueue) | none | `Asap`, `ByTypeAndSender` (Apple's default) |
/// | [`enqueue_from(sender, n)`](Self::enqueue_from) | `sender` | `Asap`, `ByTypeAndSender` |
/// | [`enqueue_with(n, style, rule)`](Self::enqueue_with) | none | given |
/// | [`enqueue_from_with(sender, n, style, rule)`](Self::enqueue_from_with) | `sender` | given |
///
/// Every combination that compiles works: a key rule carries its key
/// ([`Coalescing::by_key`]), so there is no rule that needs configuration the queue lacks.
///
/// ```
/// use herald::{Notification, NotificationCenter, NotificationQueue, SenderId};
/// use std::sync::{Arc, Mutex};
///
/// #[derive(Debug)]
/// struct Unread(u32);
/// impl Notification for Unread {}
/// #[derive(Debug)]
/// struct Synced;
/// impl Notification for Synced {}
///
/// let center = NotificationCenter::new();
/// let log = Arc::new(Mutex::new(Vec::new()));
/// let l = log.clone();
/// let _badge = center.observe(move |n: &Unread| l.lock().unwrap().push(format!("unread {}", n.0)));
/// let l = log.clone();
/// let _sync = center.observe(move |_: &Synced| l.lock().unwrap().push("synced".to_string()));
///
/// let queue = NotificationQueue::new(&center);
/// let (inbox, spam) = (SenderId::new(), SenderId::new());
/// queue.enqueue_from(inbox, Unread(1));
/// queue.enqueue(Synced);
/// queue.enqueue_from(spam, Unread(9));
/// queue.enqueue_from(inbox, Unread(2)); // same type and sender: coalesced
/// assert_eq!(queue.len(), 3);
/// assert_eq!(queue.flush(), 3);
/// // One order across types; the inbox's entry kept its first place and took its last value.
/// assert_eq!(*log.lock().unwrap(), ["unread 2", "synced", "unread 9"]);
/// ```
///
/// # Posting styles
/// - [`Now`](PostingStyle::Now): the enqueue first coalesces (the pending entry of its group,
///   if any, is removed, its value given to the [merge](NotificationQueueBuilder::merge)
///   function), then posts on the calling thread before it returns
///   [`Enqueued::Posted`] with the post's report.
/// - [`Asap`](PostingStyle::Asap): enqueued inside a post on the queue's center (an observer
///   reacting to a notification), the entry is posted when the outermost post in progress on
///   this thread ends, after every observer of that post has run: Apple's "end of the current
///   notification callout". Enqueued outside a post, it is posted on the next tick of the
///   tokio runtime: a task spawned on the runtime given to
///   [`handle`](NotificationQueueBuilder::handle), else the one current when the queue was
///   built, else the one current at the enqueue. With no runtime, it waits for the next flush
///   point (below). Each of these flushes posts every pending `Asap` entry, whoever enqueued it.
/// - [`WhenIdle`](PostingStyle::WhenIdle): once the queue has seen no enqueue (of any style)
///   for its [`idle_after`](NotificationQueueBuilder::idle_after) period
///   ([`DEFAULT_IDLE_AFTER`] unless configured), a task on the runtime posts everything
///   pending. With no runtime, it waits for the next flush point.
/// - Flush points: [`flush`](Self::flush), [`shutdown`](Self::shutdown) and dropping the last
///   clone post everything pending, whatever its style.
/// - When entries coalesce, the entry takes the more urgent style (`Now`, then `Asap`, then
///   `WhenIdle`): an `Asap` enqueue hurries a pending `WhenIdle` entry of its group.
///
/// ```
/// use herald::{Coalescing, Notification, NotificationCenter, NotificationQueue, PostingStyle};
/// use std::sync::{Arc, Mutex};
///
/// #[derive(Debug)]
/// struct ItemAdded(u32);
/// impl Notification for ItemAdded {}
/// #[derive(Debug)]
/// struct NeedsLayout;
/// impl Notification for NeedsLayout {}
///
/// let center = NotificationCenter::new();
/// let queue = NotificationQueue::new(&center);
/// let log = Arc::new(Mutex::new(Vec::new()));
/// let (q, l) = (queue.clone(), log.clone());
/// let _model = center.observe(move |n: &ItemAdded| {
///     l.lock().unwrap().push(format!("added {}", n.0));
///     q.enqueue_with(NeedsLayout, PostingStyle::Asap, Coalescing::ByType);
/// });
/// let l = log.clone();
/// let _view = center.observe(move |_: &NeedsLayout| l.lock().unwrap().push("layout".into()));
///
/// #[derive(Debug)]
/// struct Import;
/// impl Notification for Import {}
/// let c = center.clone();
/// let _importer = center.observe(move |_: &Import| {
///     for i in 0..3 {
///         c.post(ItemAdded(i)); // nested posts
///     }
/// });
/// center.post(Import); // no runtime needed: the outermost post's end posts the layout
/// assert_eq!(*log.lock().unwrap(), ["added 0", "added 1", "added 2", "layout"]);
/// ```
///
/// # Coalescing
/// An enqueue coalesces with the pending entry of its *group*, which its rule defines:
///
/// | rule | group: the pending entry with |
/// |---|---|
/// | [`None`](Coalescing::None) | no group: never coalesces, never absorbed |
/// | [`ByType`](Coalescing::ByType) | the same notification type (Apple's `.onName`) |
/// | [`BySender`](Coalescing::BySender) | the same sender, any type (Apple's `.onSender`) |
/// | [`ByTypeAndSender`](Coalescing::ByTypeAndSender) (default) | the same type and sender |
/// | [`ByKey(key)`](Coalescing::by_key) | the same type and an equal key |
///
/// Enqueues without a sender count as one sender of their own. A group belongs to its rule:
/// an entry enqueued `ByType` never absorbs one enqueued `BySender`, even of the same type.
///
/// - A coalesced group is posted **once**, at the place of its **first** enqueue, with the
///   **last** value and **its** sender. (Apple's queue keeps the first notification and drops
///   the later ones; herald keeps the first one's place and the last one's value, which is
///   what a progress bar or a badge wants.) A per-type
///   [`merge`](NotificationQueueBuilder::merge) function can combine the values instead.
/// - Coalescing joins only entries still pending: once a group's entry is posted or
///   [dequeued](Self::dequeue_matching), the next enqueue starts a new entry at the back.
/// - Uncoalesced entries (rule `None`, or groups that never met) are all posted.
///
/// ```
/// use herald::{Coalescing, Notification, NotificationCenter, NotificationQueue, PostingStyle};
/// use std::sync::{Arc, Mutex};
///
/// #[derive(Debug)]
/// struct Progress { job: u32, percent: u8 }
/// impl Notification for Progress {}
///
/// let center = NotificationCenter::new();
/// let shown = Arc::new(Mutex::new(Vec::new()));
/// let s = shown.clone();
/// let _bar = center.observe(move |p: &Progress| s.lock().unwrap().push((p.job, p.percent)));
///
/// let queue = NotificationQueue::new(&center);
/// for percent in 0..=100 {
///     for job in [1, 2] {
///         let rule = Coalescing::by_key(job);
///         queue.enqueue_with(Progress { job, percent }, PostingStyle::Asap, rule);
///     }
/// }
/// assert_eq!(queue.flush(), 2);
/// assert_eq!(*shown.lock().unwrap(), [(1, 100), (2, 100)]);
/// ```
///
/// # Ordering
/// - One FIFO across all types: pending entries are ordered by their first enqueue, and every
///   flush posts them in that order, from the flushing thread.
/// - Flushes are serialized, so observers see that order even when several threads flush. A
///   flush started by an observer of a queued post, on the flushing thread, nests (like a
///   nested post) and goes on in FIFO order. A flush posts the entries pending when it began
///   (and `Asap` entries its own posts enqueue), so a flush always ends.
/// - The flushes made by the end of a post and by the runtime's tasks never wait: if another
///   thread is flushing, that flush posts their entries before it returns.
///   [`flush`](Self::flush), [`shutdown`](Self::shutdown), the drop and `Now` enqueues wait
///   for it. (So an observer of a queued post must not wait for a thread that flushes the
///   same queue or enqueues into it with `Now`.)
/// - `Now` posts go out at once, ahead of entries pending earlier (they are not in the FIFO),
///   but after a post in progress on another thread's flush: the values of a group enqueued
///   by one thread reach observers in that order, so the last value they see is the last one
///   enqueued.
/// - Queued notifications are posted with [`NotificationCenter::post`] or
///   [`post_from`](NotificationCenter::post_from): observers, sender filters, replay and the
///   center's counters cannot tell them from direct posts.
///
/// # Shutdown
/// - Nothing is posted twice and nothing is lost: every enqueued notification is posted,
///   coalesced into a posted entry, or removed by
///   [`dequeue_matching`](Self::dequeue_matching); [`stats`](Self::stats) accounts for each.
/// - [`flush`](Self::flush) posts everything pending now. Dropping the last clone flushes.
///   [`shutdown`](Self::shutdown) flushes and makes every later enqueue (on any clone) post
///   at once.
/// - Runtime tasks hold the queue weakly: they never keep it alive, and a task that finds it
///   gone does nothing (the drop has flushed). A runtime that shuts down first leaves its
///   entries to the flush points.
/// - An observer that holds a clone (to enqueue from inside posts) keeps the queue alive for
///   as long as its subscription: end the subscription before the last other clone, or call
///   [`flush`](Self::flush) / [`shutdown`](Self::shutdown).
/// - If an observer panics and the center propagates panics
///   ([`PanicPolicy::Propagate`](crate::PanicPolicy::Propagate)), the flush still posts the
///   rest, then resumes the first panic (not while the thread is already unwinding).
///
/// ```
/// use herald::{Notification, NotificationCenter, NotificationQueue, PostingStyle, Coalescing};
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU32, Ordering};
///
/// struct Saved;
/// impl Notification for Saved {}
///
/// let center = NotificationCenter::new();
/// let saved = Arc::new(AtomicU32::new(0));
/// let s = saved.clone();
/// let _disk = center.observe(move |_: &Saved| { s.fetch_add(1, Ordering::SeqCst); });
/// let queue = NotificationQueue::new(&center);
/// queue.enqueue_with(Saved, PostingStyle::WhenIdle, Coalescing::None);
/// queue.enqueue_with(Saved, PostingStyle::WhenIdle, Coalescing::None);
/// drop(queue); // the last clone: flushes
/// assert_eq!(saved.load(Ordering::SeqCst), 2);
/// ```
pub struct NotificationQueue {
    inner: Arc<Inner>,
}

impl Clone for NotificationQueue {
    fn clone(&self) -> Self {
        NotificationQueue {
            inner: self.inner.clone(),
        }
    }
}

/// Configures a [`NotificationQueue`]: idle period, runtime, merge functions.
///
/// ```
/// use herald::{NotificationCenter, NotificationQueue};
/// use std::time::Duration;
///
/// let queue = NotificationQueue::builder(&NotificationCenter::new())
///     .idle_after(Duration::from_millis(250))
///     .build();
/// assert!(queue.is_empty());
/// ```
#[must_use = "a builder does nothing until .build()"]
pub struct NotificationQueueBuilder {
    center: NotificationCenter,
    merges: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
    idle_after: Duration,
    handle: Option<Handle>,
}

impl NotificationQueueBuilder {
    /// How long the queue must see no enqueue before `WhenIdle` entries are posted (default
    /// [`DEFAULT_IDLE_AFTER`]).
    ///
    /// ```
    /// # use herald::{NotificationCenter, NotificationQueue};
    /// # use std::time::Duration;
    /// let queue = NotificationQueue::builder(&NotificationCenter::new())
    ///     .idle_after(Duration::from_secs(1))
    ///     .build();
    /// # let _ = queue;
    /// ```
    pub fn idle_after(mut self, quiet: Duration) -> Self {
        self.idle_after = quiet;
        self
    }

    /// Posts `Asap` entries enqueued outside a post, and `WhenIdle` entries, from tasks on
    /// this runtime (default: the runtime current at [`build`](Self::build), else the one
    /// current at each enqueue).
    ///
    /// ```
    /// # use herald::{NotificationCenter, NotificationQueue};
    /// let runtime = tokio::runtime::Runtime::new().unwrap();
    /// let queue = NotificationQueue::builder(&NotificationCenter::new())
    ///     .handle(runtime.handle().clone())
    ///     .build();
    /// # drop(queue);
    /// ```
    pub fn handle(mut self, handle: Handle) -> Self {
        self.handle = Some(handle);
        self
    }

    /// How two coalesced values of type `N` become one: `merge(pending, newer)`. Without a
    /// merge function for `N`, the newer value replaces the pending one. Applies only when
    /// both values are `N` (a [`BySender`](Coalescing::BySender) group can mix types: then
    /// the newer value wins). A second call for the same `N` replaces the first.
    ///
    /// The function runs inside the enqueue, under the queue's lock: it must not use the
    /// queue. If it panics, the enqueue panics and the queue is unchanged (the newer value is
    /// dropped, the pending entry stays as it was).
    ///
    /// ```
    /// # use herald::{Notification, NotificationCenter, NotificationQueue};
    /// #[derive(Debug)]
    /// struct NewMail(u32);
    /// impl Notification for NewMail {}
    ///
    /// let queue = NotificationQueue::builder(&NotificationCenter::new())
    ///     .merge(|pending: &NewMail, newer: NewMail| NewMail(pending.0 + newer.0))
    ///     .build();
    /// queue.enqueue(NewMail(2));
    /// queue.enqueue(NewMail(3)); // pending: NewMail(5)
    /// # assert_eq!(queue.len(), 1);
    /// ```
    pub fn merge<N, F>(mut self, merge: F) -> Self
    where
        N: Notification,
        F: Fn(&N, N) -> N + Send + Sync + 'static,
    {
        let merge: MergeFn<N> = Box::new(merge);
        self.merges.insert(TypeId::of::<N>(), Box::new(merge));
        self
    }

    /// Builds the queue.
    ///
    /// ```
    /// # use herald::{NotificationCenter, NotificationQueue};
    /// let queue = NotificationQueue::builder(&NotificationCenter::new()).build();
    /// assert!(queue.is_empty());
    /// ```
    pub fn build(self) -> NotificationQueue {
        NotificationQueue {
            inner: Arc::new(Inner {
                center: self.center,
                state: Mutex::new(State {
                    entries: BTreeMap::new(),
                    asap: BTreeSet::new(),
                    groups: HashMap::new(),
                    next: 0,
                    shut: false,
                    asap_task: false,
                    idle_task: false,
                    hooked: Vec::new(),
                    last_enqueue: Instant::now(),
                    flusher: None,
                    requested: None,
                    stats: QueueStats::default(),
                }),
                flush_done: Condvar::new(),
                merges: self.merges,
                idle_after: self.idle_after,
                handle: self.handle.or_else(|| Handle::try_current().ok()),
            }),
        }
    }
}

impl NotificationQueue {
    /// A queue in front of `center`, with the defaults: [`DEFAULT_IDLE_AFTER`], the current
    /// runtime if any, newer values replace pending ones.
    ///
    /// ```
    /// # use herald::{NotificationCenter, NotificationQueue};
    /// let center = NotificationCenter::new();
    /// let queue = NotificationQueue::new(&center);
    /// assert!(queue.center().same_center(&center));
    /// ```
    pub fn new(center: &NotificationCenter) -> Self {
        Self::builder(center).build()
    }

    /// Configures a queue in front of `center`.
    ///
    /// ```
    /// # use herald::{NotificationCenter, NotificationQueue};
    /// # use std::time::Duration;
    /// let queue = NotificationQueue::builder(&NotificationCenter::new())
    ///     .idle_after(Duration::from_millis(50))
    ///     .build();
    /// # let _ = queue;
    /// ```
    pub fn builder(center: &NotificationCenter) -> NotificationQueueBuilder {
        NotificationQueueBuilder {
            center: center.clone(),
            merges: HashMap::new(),
            idle_after: DEFAULT_IDLE_AFTER,
            handle: None,
        }
    }

    /// Enqueues a notification without a sender, [`Asap`](PostingStyle::Asap), coalescing
    /// with the pending one of the same type and no sender
    /// ([`ByTypeAndSender`](Coalescing::ByTypeAndSender)), as Apple's
    /// `enqueue(_:postingStyle:)` does.
    ///
    /// ```
    /// # use herald::{Enqueued, Notification, NotificationCenter, NotificationQueue};
    /// # struct Ev; impl Notification for Ev {}
    /// let queue = NotificationQueue::new(&NotificationCenter::new());
    /// assert_eq!(queue.enqueue(Ev), Enqueued::Queued);
    /// assert_eq!(queue.enqueue(Ev), Enqueued::Coalesced);
    /// assert_eq!(queue.flush(), 1);
    /// ```
    pub fn enqueue<N: Notification>(&self, notification: N) -> Enqueued {
        self.enqueue_inner(
            None,
            notification,
            PostingStyle::Asap,
            Coalescing::default(),
        )
    }

    /// Enqueues a notification from `sender` (posted with
    /// [`post_from`](NotificationCenter::post_from)), [`Asap`](PostingStyle::Asap),
    /// coalescing with the pending one of the same type and sender.
    ///
    /// ```
    /// # use herald::{Enqueued, Notification, NotificationCenter, NotificationQueue, SenderId};
    /// # struct Ev; impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let me = SenderId::new();
    /// let mut mine = center.observer::<Ev>().sender(me).stream();
    /// let queue = NotificationQueue::new(&center);
    /// queue.enqueue_from(me, Ev);
    /// assert_eq!(queue.enqueue_from(SenderId::new(), Ev), Enqueued::Queued); // another sender
    /// queue.flush();
    /// assert!(mine.try_recv().is_ok());
    /// assert!(mine.try_recv().is_err()); // the other sender's post is not for `mine`
    /// ```
    pub fn enqueue_from<N: Notification>(&self, sender: SenderId, notification: N) -> Enqueued {
        self.enqueue_inner(
            Some(sender),
            notification,
            PostingStyle::Asap,
            Coalescing::default(),
        )
    }

    /// Enqueues a notification without a sender, with a posting style and a coalescing rule.
    ///
    /// ```
    /// # use herald::{Coalescing, Notification, NotificationCenter, NotificationQueue, PostingStyle};
    /// # struct Ev; impl Notification for Ev {}
    /// let queue = NotificationQueue::new(&NotificationCenter::new());
    /// queue.enqueue_with(Ev, PostingStyle::WhenIdle, Coalescing::None);
    /// queue.enqueue_with(Ev, PostingStyle::WhenIdle, Coalescing::None);
    /// assert_eq!(queue.flush(), 2);
    /// ```
    pub fn enqueue_with<N: Notification>(
        &self,
        notification: N,
        style: PostingStyle,
        coalescing: Coalescing,
    ) -> Enqueued {
        self.enqueue_inner(None, notification, style, coalescing)
    }

    /// Enqueues a notification from `sender`, with a posting style and a coalescing rule.
    ///
    /// ```
    /// # use herald::{Coalescing, Notification, NotificationCenter, NotificationQueue, PostingStyle, SenderId};
    /// # struct A; impl Notification for A {}
    /// # struct B; impl Notification for B {}
    /// let queue = NotificationQueue::new(&NotificationCenter::new());
    /// let job = SenderId::new();
    /// queue.enqueue_from_with(job, A, PostingStyle::Asap, Coalescing::BySender);
    /// queue.enqueue_from_with(job, B, PostingStyle::Asap, Coalescing::BySender); // replaces A
    /// assert_eq!(queue.len(), 1);
    /// ```
    pub fn enqueue_from_with<N: Notification>(
        &self,
        sender: SenderId,
        notification: N,
        style: PostingStyle,
        coalescing: Coalescing,
    ) -> Enqueued {
        self.enqueue_inner(Some(sender), notification, style, coalescing)
    }

    fn enqueue_inner<N: Notification>(
        &self,
        sender: Option<SenderId>,
        value: N,
        style: PostingStyle,
        coalescing: Coalescing,
    ) -> Enqueued {
        let inner = &*self.inner;
        let group = Group::of::<N>(coalescing, sender);
        // Declared before the lock so that it drops after it: a replaced value's `Drop` never
        // runs under the queue's lock.
        let replaced: Option<Box<dyn Erased>>;
        let mut st = inner.state.lock();
        st.last_enqueue = Instant::now();
        if st.shut {
            st.stats.enqueued += 1;
            st.stats.posted += 1;
            drop(st);
            return Enqueued::Posted(inner.post_now(sender, value));
        }
        let found = group.as_ref().and_then(|g| st.groups.get(g).copied());
        // Merge before counting anything: if the merge function panics, nothing changed.
        let value = match found.and_then(|order| st.entries.get(&order)) {
            Some(pending) => inner.merge(pending.value.value(), value),
            None => value,
        };
        st.stats.enqueued += 1;

        if style == PostingStyle::Now {
            let taken_over = found.and_then(|order| st.remove(order));
            if taken_over.is_some() {
                st.stats.coalesced += 1;
            }
            st.stats.posted += 1;
            drop(st);
            drop(taken_over);
            return Enqueued::Posted(inner.post_now(sender, value));
        }

        let coalesced_into = found.and_then(|order| st.entries.get_mut(&order).map(|e| (order, e)));
        let (order, effective, outcome) = match coalesced_into {
            Some((order, entry)) => {
                replaced = Some(std::mem::replace(&mut entry.value, Box::new(Typed(value))));
                entry.type_id = TypeId::of::<N>();
                entry.name = N::name();
                entry.sender = sender;
                entry.style = entry.style.more_urgent(style);
                let effective = entry.style;
                st.stats.coalesced += 1;
                (order, effective, Enqueued::Coalesced)
            }
            None => {
                replaced = None;
                let order = st.next;
                st.next += 1;
                if let Some(group) = &group {
                    st.groups.insert(group.clone(), order);
                }
                st.entries.insert(
                    order,
                    Entry {
                        value: Box::new(Typed(value)),
                        type_id: TypeId::of::<N>(),
                        name: N::name(),
                        sender,
                        style,
                        group,
                    },
                );
                (order, style, Enqueued::Queued)
            }
        };
        if effective == PostingStyle::Asap {
            st.asap.insert(order);
        }
        let task = self.schedule(&mut st, effective);
        drop(st);
        if let Some((task, handle)) = task {
            let flag = TaskFlag {
                queue: Arc::downgrade(&self.inner),
                task,
                done: false,
            };
            match task {
                Task::Asap => drop(handle.spawn(asap_task(flag))),
                Task::Idle => drop(handle.spawn(idle_task(flag))),
            }
        }
        drop(replaced);
        outcome
    }

    /// Arranges for an entry of style `style` to be posted; returns a task to spawn (after
    /// the lock is released: spawning on a shut-down runtime drops the task at once, and its
    /// flag's `Drop` takes the lock).
    fn schedule(&self, st: &mut State, style: PostingStyle) -> Option<(Task, Handle)> {
        let inner = &*self.inner;
        let task = match style {
            PostingStyle::Now => return None,
            PostingStyle::Asap => {
                let me = thread::current().id();
                if st.hooked.contains(&me) {
                    return None; // this thread's outermost post will flush
                }
                let queue = Arc::downgrade(&self.inner);
                let hook = Box::new(move || end_of_post(&queue, me));
                if at_end_of_outermost_post(&inner.center, hook).is_ok() {
                    st.hooked.push(me);
                    return None;
                }
                if st.asap_task {
                    return None;
                }
                Task::Asap
            }
            PostingStyle::WhenIdle => {
                if st.idle_task {
                    return None;
                }
                Task::Idle
            }
        };
        let handle = inner
            .handle
            .clone()
            .or_else(|| Handle::try_current().ok())?;
        match task {
            Task::Asap => st.asap_task = true,
            Task::Idle => st.idle_task = true,
        }
        Some((task, handle))
    }

    /// Posts every pending entry now, in FIFO order, from this thread; returns how many
    /// posts it made. Waits for a flush in progress on another thread, if any.
    ///
    /// ```
    /// # use herald::{Coalescing, Notification, NotificationCenter, NotificationQueue, PostingStyle};
    /// # struct Ev; impl Notification for Ev {}
    /// let queue = NotificationQueue::new(&NotificationCenter::new());
    /// queue.enqueue_with(Ev, PostingStyle::WhenIdle, Coalescing::None);
    /// queue.enqueue_with(Ev, PostingStyle::Asap, Coalescing::None);
    /// assert_eq!(queue.flush(), 2);
    /// assert_eq!(queue.flush(), 0);
    /// ```
    pub fn flush(&self) -> usize {
        self.inner.flush(Scope::All, true)
    }

    /// Flushes, then makes every later enqueue (on any clone) post at once, as if
    /// [`Now`](PostingStyle::Now) without coalescing. Returns how many posts the flush made
    /// (including entries that observers enqueued during it).
    ///
    /// ```
    /// # use herald::{Enqueued, Notification, NotificationCenter, NotificationQueue};
    /// # struct Ev; impl Notification for Ev {}
    /// let queue = NotificationQueue::new(&NotificationCenter::new());
    /// queue.enqueue(Ev);
    /// assert_eq!(queue.shutdown(), 1);
    /// assert!(matches!(queue.enqueue(Ev), Enqueued::Posted(_)));
    /// ```
    pub fn shutdown(&self) -> usize {
        let posted = self.inner.flush(Scope::All, true);
        self.inner.state.lock().shut = true;
        posted + self.inner.flush(Scope::All, true)
    }

    /// Removes the pending entries `matching` selects, without posting them (Apple's
    /// `dequeueNotifications(matching:coalesceMask:)`). Returns how many it removed. A
    /// removed group is gone: the next enqueue of that group starts a new entry at the back.
    ///
    /// ```
    /// use herald::{Matching, Notification, NotificationCenter, NotificationQueue, SenderId};
    ///
    /// #[derive(Debug)]
    /// struct Progress(u8);
    /// impl Notification for Progress {}
    /// #[derive(Debug)]
    /// struct Done;
    /// impl Notification for Done {}
    ///
    /// let center = NotificationCenter::new();
    /// let queue = NotificationQueue::new(&center);
    /// let (upload, download) = (SenderId::new(), SenderId::new());
    /// queue.enqueue_from(upload, Progress(40));
    /// queue.enqueue_from(download, Progress(70));
    /// queue.enqueue_from(upload, Done);
    /// // The upload was cancelled: forget what it had queued.
    /// assert_eq!(queue.dequeue_matching(&Matching::all().sender(upload)), 2);
    /// assert_eq!(queue.len(), 1);
    /// ```
    pub fn dequeue_matching(&self, matching: &Matching) -> usize {
        let removed: Vec<Entry>;
        let mut st = self.inner.state.lock();
        let orders: Vec<u64> = st
            .entries
            .iter()
            .filter(|(_, entry)| matching.matches(entry))
            .map(|(order, _)| *order)
            .collect();
        removed = orders.into_iter().filter_map(|o| st.remove(o)).collect();
        st.stats.removed += removed.len() as u64;
        drop(st);
        removed.len()
    }

    /// Entries pending (after coalescing).
    ///
    /// ```
    /// # use herald::{NotificationCenter, NotificationQueue};
    /// assert_eq!(NotificationQueue::new(&NotificationCenter::new()).len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.inner.state.lock().entries.len()
    }

    /// Whether nothing is pending.
    ///
    /// ```
    /// # use herald::{NotificationCenter, NotificationQueue};
    /// assert!(NotificationQueue::new(&NotificationCenter::new()).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The queue's counters: what was enqueued, coalesced, posted, removed, and is pending.
    /// See [`QueueStats`].
    ///
    /// ```
    /// # use herald::{Notification, NotificationCenter, NotificationQueue};
    /// # struct Ev; impl Notification for Ev {}
    /// let queue = NotificationQueue::new(&NotificationCenter::new());
    /// queue.enqueue(Ev);
    /// queue.enqueue(Ev);
    /// let stats = queue.stats();
    /// assert_eq!((stats.enqueued, stats.coalesced, stats.pending), (2, 1, 1));
    /// ```
    pub fn stats(&self) -> QueueStats {
        let st = self.inner.state.lock();
        QueueStats {
            pending: st.entries.len(),
            ..st.stats
        }
    }

    /// The center this queue posts to.
    ///
    /// ```
    /// # use herald::{NotificationCenter, NotificationQueue};
    /// let center = NotificationCenter::new();
    /// assert!(NotificationQueue::new(&center).center().same_center(&center));
    /// ```
    pub fn center(&self) -> &NotificationCenter {
        &self.inner.center
    }
}

/// The one engine hook the queue uses: runs `f` on this thread when its outermost post on
/// `center` ends (after every observer of that post has run). Returns `f` back when this
/// thread is not inside a post on `center`.
fn at_end_of_outermost_post(
    center: &NotificationCenter,
    f: Box<dyn FnOnce()>,
) -> Result<(), Box<dyn FnOnce()>> {
    center.inner.domain().after_section(f)
}

/// The end of the outermost post on `thread`: post the `Asap` entries.
fn end_of_post(queue: &Weak<Inner>, thread: ThreadId) {
    let Some(inner) = queue.upgrade() else {
        return; // dropped, hence flushed
    };
    inner.state.lock().hooked.retain(|t| *t != thread);
    inner.flush(Scope::Asap, false);
}

impl Inner {
    /// `merge(pending, newer)` when a merge function for `N` exists and the pending value is
    /// an `N`; else `newer`.
    fn merge<N: Notification>(&self, pending: &dyn Any, newer: N) -> N {
        let merge = self
            .merges
            .get(&TypeId::of::<N>())
            .and_then(|m| m.downcast_ref::<MergeFn<N>>());
        match (merge, pending.downcast_ref::<N>()) {
            (Some(merge), Some(pending)) => merge(pending, newer),
            _ => newer,
        }
    }

    /// Posts the pending entries `scope` selects, in FIFO order, as the queue's one flusher.
    /// `wait`: see [`Inner::take_turn`].
    fn flush(&self, scope: Scope, wait: bool) -> usize {
        let Some(turn) = self.take_turn(Some(scope), wait) else {
            return 0;
        };
        let mut tally = Tally::default();
        self.drain(scope, &mut tally);
        self.end_turn(turn, tally)
    }

    /// Posts one value at once (`Now`, or any enqueue after shutdown), in the flusher's turn,
    /// so that it reaches observers after an older value of its group that a flush on another
    /// thread is posting.
    fn post_now<N: Notification>(&self, sender: Option<SenderId>, value: N) -> PostReport {
        let turn = self.take_turn(None, true);
        let mut tally = Tally::default();
        let center = &self.center;
        let report = tally.post(move || post(center, sender, value));
        match turn {
            Some(turn) => {
                self.end_turn(turn, tally);
            }
            None => {
                if let Some(payload) = tally.first_panic {
                    panic::resume_unwind(payload);
                }
            }
        }
        report.unwrap_or_default()
    }

    /// Makes this thread the flusher (nested if it already is). If another thread is: waits
    /// for it (`wait`: `flush`, `shutdown`, drop, `Now`), or leaves the work to it and
    /// returns `None` (the end of a post and the runtime's tasks, which must never wait). The
    /// flusher serves such requests before it ends its turn, under the same lock, so none is
    /// missed.
    fn take_turn(&self, scope: Option<Scope>, wait: bool) -> Option<Turn<'_>> {
        let me = thread::current().id();
        let mut st = self.state.lock();
        loop {
            match &mut st.flusher {
                None => {
                    st.flusher = Some((me, 1));
                    break;
                }
                Some((owner, depth)) if *owner == me => {
                    *depth += 1;
                    break;
                }
                Some(_) if wait => self.flush_done.wait(&mut st),
                Some(_) => {
                    st.requested = st.requested.max(scope);
                    return None;
                }
            }
        }
        Some(Turn {
            inner: self,
            held: true,
        })
    }

    /// Serves the flushes other threads asked for meanwhile (if this is the outermost turn),
    /// ends the turn, then resumes the first observer panic, if any (not while unwinding).
    fn end_turn(&self, mut turn: Turn<'_>, mut tally: Tally) -> usize {
        loop {
            let mut st = self.state.lock();
            if matches!(st.flusher, Some((_, 1)))
                && let Some(more) = st.requested.take()
            {
                drop(st);
                self.drain(more, &mut tally);
                continue;
            }
            turn.end(&mut st);
            break;
        }
        if let Some(payload) = tally.first_panic
            && !thread::panicking()
        {
            panic::resume_unwind(payload);
        }
        tally.posted
    }

    /// Posts, one at a time, the entries `scope` selects that were pending when it began.
    fn drain(&self, scope: Scope, tally: &mut Tally) {
        let bound = self.state.lock().next;
        while let Some(entry) = self.pop(scope, bound) {
            let (center, sender, value) = (&self.center, entry.sender, entry.value);
            tally.post(move || value.post(center, sender));
        }
    }

    /// Takes the first entry `scope` selects that was enqueued before `bound`.
    fn pop(&self, scope: Scope, bound: u64) -> Option<Entry> {
        let mut st = self.state.lock();
        let first = match scope {
            Scope::All => st.entries.keys().next().copied(),
            Scope::Asap => st.asap.first().copied(),
        };
        let order = first.filter(|o| *o < bound)?;
        let entry = st.remove(order)?;
        st.stats.posted += 1;
        Some(entry)
    }
}

/// This thread's turn as the flusher; ended by [`Inner::end_turn`] (or on unwinding).
struct Turn<'a> {
    inner: &'a Inner,
    held: bool,
}

impl Turn<'_> {
    fn end(&mut self, st: &mut State) {
        if !self.held {
            return;
        }
        self.held = false;
        if let Some((_, depth)) = &mut st.flusher {
            *depth -= 1;
            if *depth == 0 {
                st.flusher = None;
                self.inner.flush_done.notify_all();
            }
        }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if self.held {
            let mut st = self.inner.state.lock();
            self.end(&mut st);
        }
    }
}

/// What a turn posted, and the first observer panic it caught (resumed at its end).
#[derive(Default)]
struct Tally {
    posted: usize,
    first_panic: Option<Box<dyn Any + Send>>,
}

impl Tally {
    fn post(&mut self, post: impl FnOnce() -> PostReport) -> Option<PostReport> {
        self.posted += 1;
        match panic::catch_unwind(AssertUnwindSafe(post)) {
            Ok(report) => Some(report),
            Err(payload) => {
                self.first_panic.get_or_insert(payload);
                None
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone, so no other thread can be flushing or enqueueing.
        self.flush(Scope::All, true);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Task {
    Asap,
    Idle,
}

/// A scheduled task's flag (`asap_task` / `idle_task`), cleared when the task takes its turn,
/// or when the task is dropped without running (its runtime shut down).
struct TaskFlag {
    queue: Weak<Inner>,
    task: Task,
    done: bool,
}

impl TaskFlag {
    fn clear(&mut self, st: &mut State) {
        if !self.done {
            self.done = true;
            match self.task {
                Task::Asap => st.asap_task = false,
                Task::Idle => st.idle_task = false,
            }
        }
    }
}

impl Drop for TaskFlag {
    fn drop(&mut self) {
        if !self.done
            && let Some(inner) = self.queue.upgrade()
        {
            let mut st = inner.state.lock();
            self.clear(&mut st);
        }
    }
}

/// Posts the `Asap` entries on the runtime's next tick.
async fn asap_task(mut flag: TaskFlag) {
    let Some(inner) = flag.queue.upgrade() else {
        return; // dropped, hence flushed
    };
    flag.clear(&mut inner.state.lock());
    inner.flush(Scope::Asap, false);
}

/// Waits until the queue has seen no enqueue for its idle period, then posts everything.
async fn idle_task(mut flag: TaskFlag) {
    loop {
        let Some(inner) = flag.queue.upgrade() else {
            return;
        };
        let deadline = {
            let mut st = inner.state.lock();
            let deadline = st.last_enqueue + inner.idle_after;
            if Instant::now() >= deadline {
                flag.clear(&mut st);
                None
            } else {
                Some(deadline)
            }
        };
        match deadline {
            None => {
                inner.flush(Scope::All, false);
                return;
            }
            Some(deadline) => {
                drop(inner); // never keep the queue alive while waiting
                tokio::time::sleep_until(deadline).await;
            }
        }
    }
}

impl fmt::Debug for NotificationQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.state.lock();
        let pending: Vec<&'static str> = st.entries.values().map(|e| e.name).collect();
        f.debug_struct("NotificationQueue")
            .field("pending", &pending)
            .field("stats", &st.stats)
            .field("idle_after", &self.inner.idle_after)
            .field("shut", &st.shut)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for NotificationQueueBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotificationQueueBuilder")
            .field("merges", &self.merges.len())
            .field("idle_after", &self.idle_after)
            .field("runtime", &self.handle.is_some())
            .finish_non_exhaustive()
    }
}
