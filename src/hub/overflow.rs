//! What a buffered subscriber does when its buffer is full: [`Overflow`].

use std::fmt;
use std::hash::{BuildHasher, Hash};

/// The capacity used when a buffered subscriber does not choose a policy.
///
/// ```
/// # use herald::{DEFAULT_CAPACITY, Notification, NotificationCenter, Overflow};
/// # struct Ev; impl Notification for Ev {}
/// assert_eq!(DEFAULT_CAPACITY, 1024);
/// let center = NotificationCenter::new();
/// assert_eq!(center.stream::<Ev>().capacity(), DEFAULT_CAPACITY);
/// assert_eq!(Overflow::<Ev>::default().capacity(), DEFAULT_CAPACITY);
/// ```
pub const DEFAULT_CAPACITY: usize = 1024;

/// The overflow policy of one buffered subscriber (contract 5: loss is never silent).
///
/// Every stream has a bounded buffer. When a post finds it full, the policy decides what is
/// lost, and the loss is counted in [`Stats::dropped`](crate::Stats::dropped), in the
/// [`PostReport`](crate::PostReport) of that post, and (for the two `Drop*` policies) reported
/// to the receiver as [`RecvError::Lagged`](crate::RecvError::Lagged).
///
/// The default is `DropOldest { capacity: 1024 }`. A capacity of 0 is treated as 1.
///
/// # Exact accounting
/// For every policy, once a stream is drained, `delivered + dropped` equals the posts it was
/// subscribed for ([`BufferStats`](crate::BufferStats)); the type's
/// [`Stats::dropped`](crate::Stats::dropped) is the sum of the per-post
/// [`PostReport::dropped`](crate::PostReport::dropped); and under the two `Drop*` policies the
/// `Lagged(n)` reports add up to the same count. This holds while the receiver runs
/// concurrently with posters: a value is either returned by a receive or counted lost by the
/// post that evicted it, never both and never neither.
///
/// # Shared ring
/// `DropOldest` and `Latest` streams without a sender or predicate filter (and with a
/// capacity up to 65 536) share one ring per notification type and capacity: a post writes the
/// value once, whatever the number of streams, and each stream reads it through its own cursor.
/// The other streams have a private buffer. The semantics above are the same for both; see
/// [`NotificationStream`](crate::NotificationStream#shared-ring) for the one re-entrant corner
/// where sharing shows.
///
/// ```
/// use herald::{NotificationCenter, Notification, Overflow, RecvError};
///
/// #[derive(Debug)]
/// struct Tick(u32);
/// impl Notification for Tick {}
///
/// let center = NotificationCenter::new();
/// let mut ticks = center
///     .observer::<Tick>()
///     .policy(Overflow::DropOldest { capacity: 2 })
///     .stream();
/// for i in 0..5 {
///     center.post(Tick(i));
/// }
/// // 0, 1 and 2 were overwritten: the receiver is told, then gets the newest two.
/// assert_eq!(ticks.try_recv().unwrap_err(), herald::TryRecvError::Lagged(3));
/// assert_eq!(ticks.try_recv().unwrap().0, 3);
/// assert_eq!(ticks.try_recv().unwrap().0, 4);
/// ```
pub enum Overflow<N> {
    /// Keep the newest `capacity` values: a post into a full buffer evicts the oldest value and
    /// the receiver sees `Lagged(n)` before the values that followed the gap.
    ///
    /// "The newest" counts every value the stream holds and has not returned, including values
    /// a private buffer has already handed to the receiver's side in a batch: those are the
    /// oldest, so they are the first to go. With capacity 8, a receiver that has returned 20
    /// while 21 and 22 wait, then 23..=32 posted, yields `Lagged(4)`, then 25..=32.
    ///
    /// ```
    /// use herald::{NotificationCenter, Notification, Overflow, TryRecvError};
    ///
    /// #[derive(Debug)]
    /// struct Tick(u32);
    /// impl Notification for Tick {}
    ///
    /// let center = NotificationCenter::new();
    /// let mut ticks = center
    ///     .observer::<Tick>()
    ///     .policy(Overflow::DropOldest { capacity: 8 })
    ///     .stream();
    /// for i in 20..=22 {
    ///     center.post(Tick(i));
    /// }
    /// assert_eq!(ticks.try_recv().unwrap().0, 20);
    /// let lost: u32 = (23..=32).map(|i| center.post(Tick(i)).dropped).sum();
    /// assert_eq!(lost, 4);
    /// assert_eq!(ticks.try_recv().unwrap_err(), TryRecvError::Lagged(4));
    /// assert_eq!(ticks.try_recv().unwrap().0, 25);
    /// ```
    DropOldest {
        /// How many values the buffer holds.
        capacity: usize,
    },
    /// Keep the oldest `capacity` values: a post into a full buffer is refused for this
    /// subscriber, and the receiver sees `Lagged(n)` once it has drained what it holds.
    DropNewest {
        /// How many values the buffer holds.
        capacity: usize,
    },
    /// Conflate: hold only the most recent value. A new value replaces an unread one (counted
    /// as dropped, not reported as lag: the receiver asked for the latest state only). Without
    /// a filter it is a shared ring of capacity 1.
    Latest,
    /// Coalesce by key: a new value replaces an unread value with the same key, in place (it
    /// keeps the older value's position). When the buffer is full of distinct keys the oldest
    /// value is evicted and reported as lag. Build it with [`Overflow::coalesce_by_key`].
    CoalesceByKey(CoalesceBy<N>),
    /// Backpressure: [`post_async`](crate::NotificationCenter::post_async) waits for room; a
    /// synchronous [`post`](crate::NotificationCenter::post) never blocks and reports this
    /// subscriber in [`PostReport::full`](crate::PostReport::full) instead (the value is not
    /// delivered to it and is counted as dropped).
    Backpressure {
        /// How many values the buffer holds before posters wait.
        capacity: usize,
    },
}

impl<N> Overflow<N> {
    /// Coalesce unread values that share a key, holding at most `capacity` distinct keys.
    ///
    /// ```
    /// use herald::{NotificationCenter, Notification, Overflow};
    ///
    /// #[derive(Debug)]
    /// struct Price { symbol: &'static str, cents: u64 }
    /// impl Notification for Price {}
    ///
    /// let center = NotificationCenter::new();
    /// let mut prices = center
    ///     .observer::<Price>()
    ///     .policy(Overflow::coalesce_by_key(16, |p: &Price| p.symbol))
    ///     .stream();
    /// center.post(Price { symbol: "AAPL", cents: 100 });
    /// center.post(Price { symbol: "MSFT", cents: 200 });
    /// center.post(Price { symbol: "AAPL", cents: 101 });
    /// let first = prices.try_recv().unwrap();
    /// assert_eq!((first.symbol, first.cents), ("AAPL", 101));
    /// assert_eq!(prices.try_recv().unwrap().symbol, "MSFT");
    /// assert!(prices.try_recv().unwrap_err().is_empty());
    /// ```
    pub fn coalesce_by_key<K, F>(capacity: usize, key: F) -> Self
    where
        K: Hash + Eq,
        F: Fn(&N) -> K + Send + Sync + 'static,
    {
        let key = std::sync::Arc::new(key);
        let hash_key = key.clone();
        let state = std::collections::hash_map::RandomState::new();
        Overflow::CoalesceByKey(CoalesceBy {
            capacity,
            hash: Box::new(move |n| state.hash_one(hash_key(n))),
            same: Box::new(move |a, b| key(a) == key(b)),
        })
    }

    /// How many values the buffer holds (at least 1).
    ///
    /// ```
    /// # use herald::{Notification, Overflow};
    /// # struct Ev; impl Notification for Ev {}
    /// assert_eq!(Overflow::<Ev>::DropNewest { capacity: 8 }.capacity(), 8);
    /// assert_eq!(Overflow::<Ev>::DropOldest { capacity: 0 }.capacity(), 1); // 0 is treated as 1
    /// assert_eq!(Overflow::<Ev>::Latest.capacity(), 1);
    /// assert_eq!(Overflow::coalesce_by_key(16, |_: &Ev| ()).capacity(), 16);
    /// ```
    pub fn capacity(&self) -> usize {
        match self {
            Overflow::DropOldest { capacity }
            | Overflow::DropNewest { capacity }
            | Overflow::Backpressure { capacity } => (*capacity).max(1),
            Overflow::Latest => 1,
            Overflow::CoalesceByKey(c) => c.capacity.max(1),
        }
    }

    pub(crate) fn kind(&self) -> PolicyKind {
        match self {
            Overflow::DropOldest { .. } => PolicyKind::DropOldest,
            Overflow::DropNewest { .. } => PolicyKind::DropNewest,
            Overflow::Latest => PolicyKind::Latest,
            Overflow::CoalesceByKey(_) => PolicyKind::Coalesce,
            Overflow::Backpressure { .. } => PolicyKind::Backpressure,
        }
    }
}

impl<N> Default for Overflow<N> {
    fn default() -> Self {
        Overflow::DropOldest {
            capacity: DEFAULT_CAPACITY,
        }
    }
}

impl<N> fmt::Debug for Overflow<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Overflow::DropOldest { capacity } => f
                .debug_struct("DropOldest")
                .field("capacity", capacity)
                .finish(),
            Overflow::DropNewest { capacity } => f
                .debug_struct("DropNewest")
                .field("capacity", capacity)
                .finish(),
            Overflow::Latest => f.write_str("Latest"),
            Overflow::CoalesceByKey(c) => f
                .debug_struct("CoalesceByKey")
                .field("capacity", &c.capacity)
                .finish_non_exhaustive(),
            Overflow::Backpressure { capacity } => f
                .debug_struct("Backpressure")
                .field("capacity", capacity)
                .finish(),
        }
    }
}

/// Whether two values share a coalescing key.
pub(crate) type SameKey<N> = Box<dyn Fn(&N, &N) -> bool + Send + Sync>;

/// The key extraction of [`Overflow::CoalesceByKey`]; made by [`Overflow::coalesce_by_key`].
///
/// ```
/// use herald::{Notification, NotificationCenter, Overflow};
///
/// #[derive(Debug)]
/// struct Price { symbol: &'static str, cents: u64 }
/// impl Notification for Price {}
///
/// let by_symbol = Overflow::coalesce_by_key(4, |p: &Price| p.symbol);
/// assert!(matches!(by_symbol, Overflow::CoalesceByKey(_)));
/// assert_eq!(by_symbol.capacity(), 4);
///
/// let center = NotificationCenter::new();
/// let mut prices = center.observer::<Price>().policy(by_symbol).stream();
/// center.post(Price { symbol: "AAPL", cents: 100 });
/// center.post(Price { symbol: "AAPL", cents: 101 }); // same key: replaces the unread value
/// assert_eq!(prices.len(), 1);
/// assert_eq!(prices.try_recv().unwrap().cents, 101);
/// ```
pub struct CoalesceBy<N> {
    capacity: usize,
    pub(crate) hash: Box<dyn Fn(&N) -> u64 + Send + Sync>,
    pub(crate) same: SameKey<N>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PolicyKind {
    DropOldest,
    DropNewest,
    Latest,
    Coalesce,
    Backpressure,
}
