//! The guard: [`Subscription`], what every terminal of the
//! [`ObserverBuilder`](crate::ObserverBuilder) hands back (directly, or inside the handle it
//! returns: a [`NotificationStream`](crate::NotificationStream), a
//! [`SpawnedHandler`](crate::SpawnedHandler), a recorder).
//!
//! One verb ends a subscription: `unsubscribe` (dropping the guard does the same). One verb
//! keeps it without a guard: `detach`.

use std::fmt;
use std::sync::{Arc, Weak};

use crate::hub::engine::{Core, Unsubscribe};
use crate::{Notification, ObserverId};

/// A live subscription: dropping it unsubscribes (contract 3).
///
/// Once the drop (or [`unsubscribe`](Self::unsubscribe)) returns, the observer is never called
/// again, even by posts running on other threads; those calls finish first. From inside an
/// observer the drop never waits (see [contract 3](crate::contracts#3-quiescent-unsubscribe)).
///
/// ```
/// use herald::{NotificationCenter, Notification};
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// struct Ping;
/// impl Notification for Ping {}
///
/// let center = NotificationCenter::new();
/// let calls = Arc::new(AtomicUsize::new(0));
/// let c = calls.clone();
/// let subscription = center.observe(move |_: &Ping| {
///     c.fetch_add(1, Ordering::SeqCst);
/// });
/// center.post(Ping);
/// drop(subscription);
/// center.post(Ping);
/// assert_eq!(calls.load(Ordering::SeqCst), 1);
///
/// // `detach` keeps an observer for the life of the center.
/// center.observe(|_: &Ping| {}).detach();
/// assert_eq!(center.post(Ping).received, 1);
/// ```
#[must_use = "dropping a Subscription unsubscribes at once; call .detach() to keep it"]
pub struct Subscription {
    channel: Option<Weak<dyn Unsubscribe>>,
    id: ObserverId,
}

impl Subscription {
    pub(crate) fn new(channel: Weak<dyn Unsubscribe>, id: ObserverId) -> Self {
        Subscription {
            channel: Some(channel),
            id,
        }
    }

    /// The guard of an entry in `core`.
    pub(crate) fn of<N: Notification>(core: &Arc<Core<N>>, id: ObserverId) -> Self {
        let weak: Weak<Core<N>> = Arc::downgrade(core);
        Subscription::new(weak, id)
    }

    /// A guard that owns nothing (for a copy of a subscription whose real guard is elsewhere).
    pub(crate) fn inert(id: ObserverId) -> Self {
        Subscription { channel: None, id }
    }

    /// This subscription's id (as in [`ObserverPanicked::observer`](crate::ObserverPanicked)).
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # struct Ev; impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let a = center.observe(|_: &Ev| {});
    /// let b = center.observe(|_: &Ev| {});
    /// assert_ne!(a.id(), b.id());
    /// ```
    pub fn id(&self) -> ObserverId {
        self.id
    }

    /// Whether this guard still owns its subscription (false once detached or unsubscribed).
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # struct Ev; impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let sub = center.observe(|_: &Ev| {});
    /// assert!(sub.is_active());
    /// ```
    pub fn is_active(&self) -> bool {
        self.channel.as_ref().is_some_and(|w| w.strong_count() > 0)
    }

    /// Unsubscribes now: the same as dropping the guard, said out loud. Once it returns, the
    /// observer is never called again.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # struct Ev; impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let sub = center.observe(|_: &Ev| {});
    /// sub.unsubscribe();
    /// assert_eq!(center.post(Ev).received, 0);
    /// ```
    pub fn unsubscribe(mut self) {
        self.unsubscribe_now();
    }

    pub(crate) fn unsubscribe_now(&mut self) {
        if let Some(channel) = self.channel.take().and_then(|w| w.upgrade()) {
            channel.unsubscribe(self.id);
        }
    }

    /// Keeps the observer subscribed for the life of the center, without a guard (the
    /// keep-alive opt-out; there is no way to unsubscribe it afterwards).
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # struct Ev; impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// center.observe(|_: &Ev| {}).detach();
    /// assert_eq!(center.post(Ev).received, 1);
    /// ```
    pub fn detach(mut self) {
        self.channel = None;
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.unsubscribe_now();
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("active", &self.channel.is_some())
            .finish()
    }
}
