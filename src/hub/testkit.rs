//! The test kit: how to test code that uses herald.
//!
//! Code that posts notifications is tested by recording what it posts. A [`Recorder`]
//! observes one notification type (inline, so a value is recorded before `post` returns) and
//! keeps every value it saw, in post order; its assertions panic with the recorded values in
//! the message. Code that posts from other tasks or threads is tested by waiting, with a
//! timeout: [`Recorder::next_within`], [`Recorder::wait_for`], or the free function
//! [`wait_for`], which subscribes at once and resolves with the first matching post.
//!
//! Recorders are built like every other subscription: [`Recorder::new`] records every value
//! of a type; [`ObserverBuilder::record`] records what the builder lets through (a sender, a
//! filter).
//!
//! ```
//! use herald::testkit::{Recorder, wait_for};
//! use herald::{Notification, NotificationCenter};
//! use std::time::Duration;
//!
//! // The code under test.
//! #[derive(Debug, Clone, PartialEq)]
//! enum Door { Opened, Closed, Locked }
//! impl Notification for Door {}
//!
//! fn open_and_close(center: &NotificationCenter) {
//!     center.post(Door::Opened);
//!     center.post(Door::Closed);
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! // The test.
//! let center = NotificationCenter::new();
//! let doors = Recorder::<Door>::new(&center);
//! open_and_close(&center);
//! doors.assert_posted(|d| *d == Door::Opened);
//! doors.assert_not_posted(|d| *d == Door::Locked);
//! doors.assert_values(&[Door::Opened, Door::Closed]);
//! assert_eq!(doors.count(), 2);
//!
//! // Posted later, from another task: wait for it, with a timeout.
//! let opened = wait_for(&center, |d: &Door| *d == Door::Opened, Duration::from_secs(1));
//! let c = center.clone();
//! tokio::spawn(async move { c.post(Door::Opened); });
//! assert!(opened.await.is_some());
//! # }
//! ```
//!
//! [`AllRecorder`] records every notification whatever its type (or a family, by name prefix),
//! as names and senders: for asserting what was posted, and in what order, across types.

use std::fmt::{self, Debug};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

use crate::{Notification, NotificationCenter, ObserverBuilder, RecvError, Subscription, Wildcard};

struct Log<N> {
    values: Mutex<Vec<N>>,
    /// How many values `next_within` has handed out.
    cursor: Mutex<usize>,
    arrived: Notify,
}

impl<N> Log<N> {
    fn values(&self) -> MutexGuard<'_, Vec<N>> {
        self.values.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Records every posted notification of one type, for assertions in tests.
///
/// Recording is inline: a value is recorded before `post` returns. Dropping the recorder
/// unsubscribes it. See [the module docs](crate::testkit) for a whole test.
///
/// ```
/// use herald::testkit::Recorder;
/// use herald::{Notification, NotificationCenter};
///
/// #[derive(Debug, Clone, PartialEq)]
/// struct Saved(u32);
/// impl Notification for Saved {}
///
/// let center = NotificationCenter::new();
/// let saved = Recorder::new(&center);
/// center.post(Saved(1));
/// center.post(Saved(2));
/// saved.assert_order(&[Saved(1), Saved(2)]);
/// assert_eq!(saved.take(), [Saved(1), Saved(2)]);
/// assert_eq!(saved.count(), 0);
/// ```
#[must_use = "a recorder records nothing once dropped"]
pub struct Recorder<N> {
    log: Arc<Log<N>>,
    subscription: Subscription,
}

impl<N: Notification + Clone> ObserverBuilder<N> {
    /// Records what this builder lets through (sender filter, predicate filter) into a
    /// [`Recorder`]. Values are cloned, inline, on the posting thread.
    ///
    /// ```
    /// use herald::{Notification, NotificationCenter, SenderId};
    ///
    /// #[derive(Debug, Clone)]
    /// struct Moved(i32);
    /// impl Notification for Moved {}
    ///
    /// let center = NotificationCenter::new();
    /// let mouse = SenderId::new();
    /// let moves = center.observer::<Moved>().sender(mouse).record();
    /// center.post_from(mouse, Moved(3));
    /// center.post(Moved(4));
    /// moves.assert_count(1);
    /// ```
    pub fn record(self) -> Recorder<N> {
        let log = Arc::new(Log {
            values: Mutex::new(Vec::new()),
            cursor: Mutex::new(0),
            arrived: Notify::new(),
        });
        let l = log.clone();
        let subscription = self.inline(move |n: &N| {
            l.values().push(n.clone());
            l.arrived.notify_waiters();
        });
        Recorder { log, subscription }
    }
}

impl<N: Notification + Clone> Recorder<N> {
    /// Records every notification of type `N` posted to `center` from now on.
    ///
    /// ```
    /// # use herald::testkit::Recorder;
    /// # use herald::{Notification, NotificationCenter};
    /// # #[derive(Debug, Clone)] struct Ev; impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let events = Recorder::<Ev>::new(&center);
    /// center.post(Ev);
    /// events.assert_count(1);
    /// ```
    pub fn new(center: &NotificationCenter) -> Self {
        center.observer::<N>().record()
    }

    /// Copies of every recorded value, in post order.
    ///
    /// ```
    /// # use herald::testkit::Recorder;
    /// # use herald::{Notification, NotificationCenter};
    /// # #[derive(Debug, Clone, PartialEq)] struct Ev(u8); impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let events = Recorder::<Ev>::new(&center);
    /// center.post(Ev(1));
    /// assert_eq!(events.values(), [Ev(1)]);
    /// assert_eq!(events.count(), 1); // values() does not consume
    /// ```
    pub fn values(&self) -> Vec<N> {
        self.log.values().clone()
    }

    /// The last recorded value.
    ///
    /// ```
    /// # use herald::testkit::Recorder;
    /// # use herald::{Notification, NotificationCenter};
    /// # #[derive(Debug, Clone, PartialEq)] struct Ev(u8); impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let events = Recorder::<Ev>::new(&center);
    /// assert_eq!(events.last(), None);
    /// center.post(Ev(1));
    /// center.post(Ev(2));
    /// assert_eq!(events.last(), Some(Ev(2)));
    /// ```
    pub fn last(&self) -> Option<N> {
        self.log.values().last().cloned()
    }

    /// Waits up to `timeout` for the next value this method has not returned yet (recorded
    /// before or after the call), in post order. `None` on timeout. Needs a tokio runtime
    /// with time enabled.
    ///
    /// ```
    /// # use herald::testkit::Recorder;
    /// # use herald::{Notification, NotificationCenter};
    /// # use std::time::Duration;
    /// # #[derive(Debug, Clone, PartialEq)] struct Ev(u8); impl Notification for Ev {}
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let center = NotificationCenter::new();
    /// let events = Recorder::<Ev>::new(&center);
    /// center.post(Ev(1));
    /// let c = center.clone();
    /// tokio::spawn(async move { c.post(Ev(2)); });
    /// let wait = Duration::from_secs(1);
    /// assert_eq!(events.next_within(wait).await, Some(Ev(1)));
    /// assert_eq!(events.next_within(wait).await, Some(Ev(2)));
    /// assert_eq!(events.next_within(Duration::from_millis(10)).await, None);
    /// # }
    /// ```
    pub async fn next_within(&self, timeout: Duration) -> Option<N> {
        let next = async {
            loop {
                let arrived = self.log.arrived.notified();
                let mut arrived = std::pin::pin!(arrived);
                arrived.as_mut().enable();
                {
                    let values = self.log.values();
                    let mut cursor = self.log.cursor.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(v) = values.get(*cursor) {
                        *cursor += 1;
                        return v.clone();
                    }
                }
                arrived.await;
            }
        };
        tokio::time::timeout(timeout, next).await.ok()
    }

    /// Waits up to `timeout` until some recorded value (recorded before or after the call)
    /// matches `predicate`, and returns the first that does. `None` on timeout.
    ///
    /// ```
    /// # use herald::testkit::Recorder;
    /// # use herald::{Notification, NotificationCenter};
    /// # use std::time::Duration;
    /// # #[derive(Debug, Clone, PartialEq)] struct Ev(u8); impl Notification for Ev {}
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let center = NotificationCenter::new();
    /// let events = Recorder::<Ev>::new(&center);
    /// let c = center.clone();
    /// tokio::spawn(async move { for i in 0..5 { c.post(Ev(i)); } });
    /// let four = events.wait_for(|e| e.0 == 4, Duration::from_secs(1)).await;
    /// assert_eq!(four, Some(Ev(4)));
    /// # }
    /// ```
    pub async fn wait_for<P>(&self, predicate: P, timeout: Duration) -> Option<N>
    where
        P: Fn(&N) -> bool,
    {
        let found = async {
            loop {
                let arrived = self.log.arrived.notified();
                let mut arrived = std::pin::pin!(arrived);
                arrived.as_mut().enable();
                if let Some(v) = self.log.values().iter().find(|n| predicate(n)) {
                    return v.clone();
                }
                arrived.await;
            }
        };
        tokio::time::timeout(timeout, found).await.ok()
    }
}

impl<N> Recorder<N> {
    /// How many values were recorded (and not taken).
    ///
    /// ```
    /// # use herald::testkit::Recorder;
    /// # use herald::{Notification, NotificationCenter};
    /// # #[derive(Debug, Clone)] struct Ev; impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let events = Recorder::<Ev>::new(&center);
    /// assert_eq!(events.count(), 0);
    /// ```
    pub fn count(&self) -> usize {
        self.log.values().len()
    }

    /// Whether nothing was recorded (or everything was taken).
    ///
    /// ```
    /// # use herald::testkit::Recorder;
    /// # use herald::{Notification, NotificationCenter};
    /// # #[derive(Debug, Clone)] struct Ev; impl Notification for Ev {}
    /// assert!(Recorder::<Ev>::new(&NotificationCenter::new()).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// Takes every recorded value out, in post order; the recorder starts empty again.
    ///
    /// ```
    /// # use herald::testkit::Recorder;
    /// # use herald::{Notification, NotificationCenter};
    /// # #[derive(Debug, Clone, PartialEq)] struct Ev(u8); impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let events = Recorder::<Ev>::new(&center);
    /// center.post(Ev(1));
    /// assert_eq!(events.take(), [Ev(1)]);
    /// assert!(events.is_empty());
    /// ```
    pub fn take(&self) -> Vec<N> {
        let mut values = self.log.values();
        *self.log.cursor.lock().unwrap_or_else(|e| e.into_inner()) = 0;
        std::mem::take(&mut *values)
    }

    /// Unsubscribes: stops recording (the same as dropping the recorder, but keeps the values).
    ///
    /// ```
    /// # use herald::testkit::Recorder;
    /// # use herald::{Notification, NotificationCenter};
    /// # #[derive(Debug, Clone)] struct Ev; impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let mut events = Recorder::<Ev>::new(&center);
    /// center.post(Ev);
    /// events.unsubscribe();
    /// center.post(Ev);
    /// events.assert_count(1);
    /// ```
    pub fn unsubscribe(&mut self) {
        self.subscription.unsubscribe_now();
    }
}

impl<N: Notification + Debug> Recorder<N> {
    /// Panics unless some recorded value matches `predicate`.
    ///
    /// ```
    /// # use herald::testkit::Recorder;
    /// # use herald::{Notification, NotificationCenter};
    /// # #[derive(Debug, Clone)] struct Ev(u8); impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let events = Recorder::<Ev>::new(&center);
    /// center.post(Ev(7));
    /// events.assert_posted(|e| e.0 == 7);
    /// ```
    #[track_caller]
    pub fn assert_posted<P: Fn(&N) -> bool>(&self, predicate: P) {
        let values = self.log.values();
        if !values.iter().any(predicate) {
            panic!(
                "expected a posted `{}` matching the predicate, but none of the {} recorded did:{}",
                N::name(),
                values.len(),
                Listing(&values)
            );
        }
    }

    /// Panics if some recorded value matches `predicate`.
    ///
    /// ```
    /// # use herald::testkit::Recorder;
    /// # use herald::{Notification, NotificationCenter};
    /// # #[derive(Debug, Clone)] struct Ev(u8); impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let events = Recorder::<Ev>::new(&center);
    /// center.post(Ev(7));
    /// events.assert_not_posted(|e| e.0 == 8);
    /// ```
    #[track_caller]
    pub fn assert_not_posted<P: Fn(&N) -> bool>(&self, predicate: P) {
        let values = self.log.values();
        if let Some(i) = values.iter().position(predicate) {
            panic!(
                "expected no posted `{}` matching the predicate, but [{i}] {:?} did:{}",
                N::name(),
                values[i],
                Listing(&values)
            );
        }
    }

    /// Panics unless exactly `expected` values were recorded.
    ///
    /// ```
    /// # use herald::testkit::Recorder;
    /// # use herald::{Notification, NotificationCenter};
    /// # #[derive(Debug, Clone)] struct Ev; impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let events = Recorder::<Ev>::new(&center);
    /// events.assert_count(0);
    /// ```
    #[track_caller]
    pub fn assert_count(&self, expected: usize) {
        let values = self.log.values();
        if values.len() != expected {
            panic!(
                "expected {expected} posted `{}`, but {} were recorded:{}",
                N::name(),
                values.len(),
                Listing(&values)
            );
        }
    }
}

impl<N: Notification + Debug + PartialEq> Recorder<N> {
    /// Panics unless the recorded values are exactly `expected`, in this order.
    ///
    /// ```
    /// # use herald::testkit::Recorder;
    /// # use herald::{Notification, NotificationCenter};
    /// # #[derive(Debug, Clone, PartialEq)] struct Ev(u8); impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let events = Recorder::<Ev>::new(&center);
    /// center.post(Ev(1));
    /// center.post(Ev(2));
    /// events.assert_values(&[Ev(1), Ev(2)]);
    /// ```
    #[track_caller]
    pub fn assert_values(&self, expected: &[N]) {
        let values = self.log.values();
        if values.as_slice() != expected {
            panic!(
                "expected exactly these posted `{}`:{}\nbut recorded:{}",
                N::name(),
                Listing(expected),
                Listing(&values)
            );
        }
    }

    /// Panics unless `expected` were all recorded in this order (other values may come
    /// between them).
    ///
    /// ```
    /// # use herald::testkit::Recorder;
    /// # use herald::{Notification, NotificationCenter};
    /// # #[derive(Debug, Clone, PartialEq)] struct Ev(u8); impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let events = Recorder::<Ev>::new(&center);
    /// for i in 0..5 { center.post(Ev(i)); }
    /// events.assert_order(&[Ev(1), Ev(3)]);
    /// ```
    #[track_caller]
    pub fn assert_order(&self, expected: &[N]) {
        let values = self.log.values();
        let mut rest = values.iter();
        for (i, want) in expected.iter().enumerate() {
            if !rest.any(|v| v == want) {
                panic!(
                    "expected posted `{}` in this order:{}\nbut [{i}] {want:?} was not recorded \
                     after the ones before it; recorded:{}",
                    N::name(),
                    Listing(expected),
                    Listing(&values)
                );
            }
        }
    }
}

impl<N> fmt::Debug for Recorder<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder")
            .field("id", &self.subscription.id())
            .field("recorded", &self.count())
            .finish()
    }
}

/// Values listed one a line, for assertion messages.
struct Listing<'a, N>(&'a [N]);

impl<N: Debug> fmt::Display for Listing<'_, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str(" (nothing)");
        }
        for (i, v) in self.0.iter().enumerate() {
            write!(f, "\n  [{i}] {v:?}")?;
        }
        Ok(())
    }
}

/// Subscribes to `N` now and resolves with the first posted value that matches `predicate`,
/// or `None` after `timeout`.
///
/// The subscription is made when `wait_for` is called, not when the future is first polled:
/// call it before the action that should post. Awaiting needs a tokio runtime with time
/// enabled. The subscription buffers up to the default capacity of posts while waiting.
///
/// ```
/// use herald::testkit::wait_for;
/// use herald::{Notification, NotificationCenter};
/// use std::time::Duration;
///
/// #[derive(Debug)]
/// struct Ready { worker: u32 }
/// impl Notification for Ready {}
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let center = NotificationCenter::new();
/// let second = wait_for(&center, |r: &Ready| r.worker == 2, Duration::from_secs(1));
/// for worker in 0..4 {
///     let c = center.clone();
///     tokio::spawn(async move { c.post(Ready { worker }); });
/// }
/// assert_eq!(second.await.unwrap().worker, 2);
/// # }
/// ```
pub fn wait_for<N, P>(
    center: &NotificationCenter,
    predicate: P,
    timeout: Duration,
) -> impl Future<Output = Option<Arc<N>>> + Send + 'static
where
    N: Notification,
    P: Fn(&N) -> bool + Send + 'static,
{
    let mut stream = center.stream::<N>();
    let found = async move {
        loop {
            match stream.recv().await {
                Ok(n) if predicate(&n) => return Some(n),
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return None,
            }
        }
    };
    async move { tokio::time::timeout(timeout, found).await.ok().flatten() }
}

/// One notification seen by an [`AllRecorder`]: its name and its sender.
///
/// ```
/// use herald::testkit::{AllRecorder, Seen};
/// use herald::{Notification, NotificationCenter, SenderId};
///
/// struct Paid;
/// impl Notification for Paid { fn name() -> &'static str { "billing.paid" } }
///
/// let center = NotificationCenter::new();
/// let all = AllRecorder::new(&center);
/// let shop = SenderId::new();
/// center.post_from(shop, Paid);
/// center.post(Paid);
/// assert_eq!(
///     all.seen(),
///     [
///         Seen { name: "billing.paid", sender: Some(shop) },
///         Seen { name: "billing.paid", sender: None },
///     ]
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// [`Notification::name`] of what was posted.
    pub name: &'static str,
    /// Who posted it, if it was posted with `post_from`.
    pub sender: Option<crate::SenderId>,
}

/// Records every notification posted to a center (or every one of a family, by name
/// prefix), whatever its type: names and senders, in post order. Built on a wildcard
/// observer, so it sees types created after it too.
///
/// ```
/// use herald::testkit::AllRecorder;
/// use herald::{Notification, NotificationCenter};
///
/// struct Paid;
/// impl Notification for Paid { fn name() -> &'static str { "billing.paid" } }
/// struct Shipped;
/// impl Notification for Shipped { fn name() -> &'static str { "shop.shipped" } }
///
/// let center = NotificationCenter::new();
/// let all = AllRecorder::new(&center);
/// let billing = AllRecorder::family(&center, "billing.");
/// center.post(Paid);
/// center.post(Shipped);
/// all.assert_order(&["billing.paid", "shop.shipped"]);
/// billing.assert_posted("billing.paid");
/// billing.assert_not_posted("shop.shipped");
/// assert_eq!(all.count(), 2);
/// ```
pub struct AllRecorder {
    seen: Arc<Mutex<Vec<Seen>>>,
    subscription: Subscription,
}

impl AllRecorder {
    /// Records every notification posted to `center` from now on.
    ///
    /// Sugar for `center.observer::<Wildcard>().record()`.
    ///
    /// ```
    /// # use herald::testkit::AllRecorder;
    /// # use herald::{Notification, NotificationCenter};
    /// # struct Paid; impl Notification for Paid { fn name() -> &'static str { "billing.paid" } }
    /// # struct Shipped; impl Notification for Shipped { fn name() -> &'static str { "shop.shipped" } }
    /// let center = NotificationCenter::new();
    /// center.post(Paid); // before the recorder: not recorded
    /// let all = AllRecorder::new(&center);
    /// center.post(Paid);
    /// center.post(Shipped); // a type the center first sees now: recorded too
    /// assert_eq!(all.names(), ["billing.paid", "shop.shipped"]);
    /// ```
    pub fn new(center: &NotificationCenter) -> Self {
        center.observer::<Wildcard>().record()
    }

    /// Records every notification whose name starts with `prefix`.
    ///
    /// Sugar for `center.observer::<Wildcard>().family(prefix).record()`.
    ///
    /// The family is matched on each value's own name ([`Notification::value_name`]), but
    /// what is recorded is the type's name ([`Seen::name`]): for a type that names its values
    /// one by one ([`Notification::NAMES_VARY`], such as notifications relayed from another
    /// process), the recorder holds the type's name, and `assert_posted` takes that name, not
    /// the value's.
    ///
    /// ```
    /// # use herald::testkit::AllRecorder;
    /// # use herald::{Notification, NotificationCenter};
    /// # struct Paid; impl Notification for Paid { fn name() -> &'static str { "billing.paid" } }
    /// # struct Shipped; impl Notification for Shipped { fn name() -> &'static str { "shop.shipped" } }
    /// # struct Refunded; impl Notification for Refunded { fn name() -> &'static str { "billing.refunded" } }
    /// let center = NotificationCenter::new();
    /// let billing = AllRecorder::family(&center, "billing.");
    /// center.post(Paid);
    /// center.post(Shipped);
    /// center.post(Refunded);
    /// assert_eq!(billing.names(), ["billing.paid", "billing.refunded"]);
    /// ```
    pub fn family(center: &NotificationCenter, prefix: &str) -> Self {
        center.observer::<Wildcard>().family(prefix).record()
    }
}

impl ObserverBuilder<Wildcard> {
    /// Records what this wildcard builder lets through (family, sender, filter) into an
    /// [`AllRecorder`]: names and senders, inline, in post order.
    ///
    /// ```
    /// use herald::testkit::AllRecorder;
    /// use herald::{Notification, NotificationCenter, SenderId, Wildcard};
    ///
    /// struct Paid;
    /// impl Notification for Paid { fn name() -> &'static str { "billing.paid" } }
    ///
    /// let center = NotificationCenter::new();
    /// let shop = SenderId::new();
    /// let from_shop = center.observer::<Wildcard>().sender(shop).record();
    /// center.post_from(shop, Paid);
    /// center.post(Paid);
    /// assert_eq!(from_shop.count(), 1);
    /// ```
    pub fn record(self) -> AllRecorder {
        let builder = self;
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let log = seen.clone();
        let subscription = builder.inline(move |n| {
            let entry = Seen {
                name: n.name(),
                sender: n.sender(),
            };
            match log.lock() {
                Ok(mut l) => l.push(entry),
                Err(p) => p.into_inner().push(entry),
            }
        });
        AllRecorder { seen, subscription }
    }
}

impl AllRecorder {
    /// Unsubscribes: stops recording (the same as dropping the recorder, but keeps what it
    /// recorded).
    ///
    /// ```
    /// # use herald::testkit::AllRecorder;
    /// # use herald::{Notification, NotificationCenter};
    /// # struct Ev; impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let mut all = AllRecorder::new(&center);
    /// center.post(Ev);
    /// all.unsubscribe();
    /// center.post(Ev);
    /// assert_eq!(all.count(), 1);
    /// ```
    pub fn unsubscribe(&mut self) {
        self.subscription.unsubscribe_now();
    }

    /// Everything recorded so far, in post order.
    ///
    /// ```
    /// # use herald::testkit::AllRecorder;
    /// # use herald::{Notification, NotificationCenter, SenderId};
    /// # struct Paid; impl Notification for Paid { fn name() -> &'static str { "billing.paid" } }
    /// # struct Shipped; impl Notification for Shipped { fn name() -> &'static str { "shop.shipped" } }
    /// let center = NotificationCenter::new();
    /// let all = AllRecorder::new(&center);
    /// let shop = SenderId::new();
    /// center.post(Paid);
    /// center.post_from(shop, Shipped);
    /// let seen = all.seen();
    /// assert_eq!(seen.len(), 2);
    /// assert_eq!((seen[0].name, seen[0].sender), ("billing.paid", None));
    /// assert_eq!((seen[1].name, seen[1].sender), ("shop.shipped", Some(shop)));
    /// center.post(Paid);
    /// assert_eq!(seen.len(), 2); // a copy: later posts are not in it
    /// ```
    pub fn seen(&self) -> Vec<Seen> {
        match self.seen.lock() {
            Ok(l) => l.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The names recorded so far, in post order.
    ///
    /// ```
    /// # use herald::testkit::AllRecorder;
    /// # use herald::{Notification, NotificationCenter};
    /// # struct Paid; impl Notification for Paid { fn name() -> &'static str { "billing.paid" } }
    /// # struct Shipped; impl Notification for Shipped { fn name() -> &'static str { "shop.shipped" } }
    /// let center = NotificationCenter::new();
    /// let all = AllRecorder::new(&center);
    /// center.post(Shipped);
    /// center.post(Paid);
    /// center.post(Shipped);
    /// assert_eq!(all.names(), ["shop.shipped", "billing.paid", "shop.shipped"]);
    /// ```
    pub fn names(&self) -> Vec<&'static str> {
        self.seen().into_iter().map(|s| s.name).collect()
    }

    /// How many notifications were recorded.
    ///
    /// ```
    /// # use herald::testkit::AllRecorder;
    /// # use herald::{Notification, NotificationCenter};
    /// # struct Paid; impl Notification for Paid { fn name() -> &'static str { "billing.paid" } }
    /// # struct Shipped; impl Notification for Shipped { fn name() -> &'static str { "shop.shipped" } }
    /// let center = NotificationCenter::new();
    /// let all = AllRecorder::new(&center);
    /// assert_eq!(all.count(), 0);
    /// center.post(Paid);
    /// center.post(Paid);
    /// center.post(Shipped);
    /// assert_eq!(all.count(), 3);
    /// ```
    pub fn count(&self) -> usize {
        self.seen().len()
    }

    /// Panics unless a notification named `name` was recorded.
    ///
    /// ```
    /// # use herald::testkit::AllRecorder;
    /// # use herald::{Notification, NotificationCenter};
    /// # struct Paid; impl Notification for Paid { fn name() -> &'static str { "billing.paid" } }
    /// # use std::panic::{AssertUnwindSafe, catch_unwind};
    /// # struct Shipped; impl Notification for Shipped { fn name() -> &'static str { "shop.shipped" } }
    /// let center = NotificationCenter::new();
    /// let all = AllRecorder::new(&center);
    /// center.post(Paid);
    /// all.assert_posted("billing.paid");
    /// let missing = catch_unwind(AssertUnwindSafe(|| all.assert_posted("shop.shipped")));
    /// assert!(missing.is_err());
    /// ```
    #[track_caller]
    pub fn assert_posted(&self, name: &str) {
        let names = self.names();
        assert!(
            names.contains(&name),
            "expected a notification named {name:?}; recorded: {names:?}"
        );
    }

    /// Panics if a notification named `name` was recorded.
    ///
    /// ```
    /// # use herald::testkit::AllRecorder;
    /// # use herald::{Notification, NotificationCenter};
    /// # struct Paid; impl Notification for Paid { fn name() -> &'static str { "billing.paid" } }
    /// # use std::panic::{AssertUnwindSafe, catch_unwind};
    /// # struct Shipped; impl Notification for Shipped { fn name() -> &'static str { "shop.shipped" } }
    /// let center = NotificationCenter::new();
    /// let all = AllRecorder::new(&center);
    /// center.post(Paid);
    /// all.assert_not_posted("shop.shipped");
    /// let found = catch_unwind(AssertUnwindSafe(|| all.assert_not_posted("billing.paid")));
    /// assert!(found.is_err());
    /// ```
    #[track_caller]
    pub fn assert_not_posted(&self, name: &str) {
        let names = self.names();
        assert!(
            !names.contains(&name),
            "expected no notification named {name:?}; recorded: {names:?}"
        );
    }

    /// Panics unless notifications with these names were recorded in this order (others may
    /// come between them).
    ///
    /// ```
    /// # use herald::testkit::AllRecorder;
    /// # use herald::{Notification, NotificationCenter};
    /// # struct Paid; impl Notification for Paid { fn name() -> &'static str { "billing.paid" } }
    /// # use std::panic::{AssertUnwindSafe, catch_unwind};
    /// # struct Shipped; impl Notification for Shipped { fn name() -> &'static str { "shop.shipped" } }
    /// # struct Tick; impl Notification for Tick { fn name() -> &'static str { "clock.tick" } }
    /// let center = NotificationCenter::new();
    /// let all = AllRecorder::new(&center);
    /// center.post(Paid);
    /// center.post(Tick);
    /// center.post(Shipped);
    /// all.assert_order(&["billing.paid", "shop.shipped"]); // the tick between is fine
    /// let swapped = catch_unwind(AssertUnwindSafe(|| {
    ///     all.assert_order(&["shop.shipped", "billing.paid"])
    /// }));
    /// assert!(swapped.is_err());
    /// ```
    #[track_caller]
    pub fn assert_order(&self, expected: &[&str]) {
        let names = self.names();
        let mut rest = names.iter();
        for want in expected {
            assert!(
                rest.any(|n| n == want),
                "expected {expected:?} in this order; recorded: {names:?}"
            );
        }
    }
}

impl fmt::Debug for AllRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AllRecorder")
            .field("count", &self.count())
            .finish_non_exhaustive()
    }
}
