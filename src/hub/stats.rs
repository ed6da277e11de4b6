//! What the hub counts: [`PostReport`] per post, [`Stats`] per notification type.

use crate::ObserverId;

/// What one post did. Returned by every `post` (contract 5: loss is never silent).
///
/// Four `u32` counts, sixteen bytes: posts are inlined into their caller, where the report
/// stays in registers (a count above `u32::MAX` would need four billion subscribers of one
/// type).
///
/// ```
/// use herald::{NotificationCenter, Notification};
///
/// struct Ping;
/// impl Notification for Ping {}
///
/// let center = NotificationCenter::new();
/// assert!(center.post(Ping).is_dead());
/// let _a = center.observe(|_: &Ping| {});
/// let _b = center.observe(|_: &Ping| {});
/// let report = center.post(Ping);
/// assert_eq!(report.received, 2);
/// assert_eq!(report.dropped, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PostReport {
    /// Observers that received the notification: inline observers called, buffered subscribers
    /// that accepted it into their buffer.
    pub received: u32,
    /// Buffered subscribers that lost a value to their overflow policy because of this post
    /// (an evicted older value, a refused or replaced value, or a full backpressure buffer).
    pub dropped: u32,
    /// Of `dropped`: backpressure subscribers that were full during a synchronous `post`.
    pub full: u32,
    /// Inline observers that panicked (each also reported as
    /// [`ObserverPanicked`](crate::ObserverPanicked)).
    pub panicked: u32,
}

impl PostReport {
    /// Whether this notification reached no observer at all (a dead notification, contract
    /// 7): nothing received it, no buffer lost it to its policy, and no observer panicked on
    /// it. So `received == 0` alone does not make a post dead: one that a full buffer refused
    /// (`dropped`) reached that subscriber, and counts as lost, not dead.
    ///
    /// ```
    /// # use herald::{Notification, NotificationCenter, Overflow};
    /// # struct Ev(u32); impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// assert!(center.post(Ev(1)).is_dead()); // nobody observes `Ev`
    ///
    /// let _full = center
    ///     .observer::<Ev>()
    ///     .policy(Overflow::DropNewest { capacity: 1 })
    ///     .stream();
    /// assert!(!center.post(Ev(2)).is_dead());
    /// // Refused by the full buffer: lost (and counted as dropped), not dead.
    /// let report = center.post(Ev(3));
    /// assert_eq!((report.received, report.dropped), (0, 1));
    /// assert!(!report.is_dead());
    /// assert_eq!(center.stats::<Ev>().dead, 1);
    /// ```
    pub fn is_dead(&self) -> bool {
        self.received == 0 && self.dropped == 0 && self.panicked == 0
    }
}

/// Counters of one notification type, read with
/// [`NotificationCenter::stats`](crate::NotificationCenter::stats).
///
/// `delivered + dropped` accounts for every (notification, buffered subscriber) pair once the
/// buffers are drained: nothing is lost without being counted.
///
/// ```
/// use herald::{NotificationCenter, Notification};
///
/// struct Saved;
/// impl Notification for Saved {}
///
/// let center = NotificationCenter::new();
/// center.post(Saved); // nobody listens: dead
/// let _log = center.observe(|_: &Saved| {});
/// center.post(Saved);
/// let stats = center.stats::<Saved>();
/// assert_eq!((stats.posted, stats.delivered, stats.dead), (2, 1, 1));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Notifications of this type posted.
    pub posted: u64,
    /// Deliveries completed: inline observer calls that returned, buffered values received.
    pub delivered: u64,
    /// (notification, subscriber) pairs lost to an overflow policy.
    pub dropped: u64,
    /// Observer calls that panicked.
    pub panicked: u64,
    /// Posts that reached no observer.
    pub dead: u64,
    /// Observers subscribed now.
    pub observers: usize,
    /// One entry per buffered subscriber subscribed now.
    pub buffers: Vec<BufferStats>,
}

/// Counters of one buffered subscriber.
///
/// Read with [`NotificationStream::stats`](crate::NotificationStream::stats), or for every
/// buffered subscriber of a type in [`Stats::buffers`].
///
/// ```
/// # use herald::{Notification, NotificationCenter, Overflow};
/// # struct Ev(u32); impl Notification for Ev {}
/// let center = NotificationCenter::new();
/// let mut events = center
///     .observer::<Ev>()
///     .policy(Overflow::DropNewest { capacity: 2 })
///     .stream();
/// for i in 0..3 {
///     center.post(Ev(i)); // the third finds the buffer full and is refused
/// }
/// events.try_recv().unwrap();
/// let stats = events.stats();
/// assert_eq!(stats.observer, events.id());
/// assert_eq!((stats.capacity, stats.depth, stats.delivered, stats.dropped), (2, 1, 1, 1));
/// assert_eq!(center.stats::<Ev>().buffers, [stats]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BufferStats {
    /// The subscriber.
    pub observer: ObserverId,
    /// Values waiting to be received (queue depth).
    pub depth: usize,
    /// The buffer's capacity.
    pub capacity: usize,
    /// Values received by the subscriber.
    pub delivered: u64,
    /// Values this subscriber lost to its overflow policy.
    pub dropped: u64,
}
