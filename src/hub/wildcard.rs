//! Wildcard and family observation (contract 9): [`Wildcard`], what an
//! [`ObserverBuilder`] matches when it observes every notification, or every notification whose
//! name starts with a prefix; its observers receive a type-erased [`AnyNotification`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use crate::hub::builder::{Matcher, ObserverBuilder, sealed};
use crate::hub::engine::{AnyFn, Meta, Unsubscribe, WildSpec};
use crate::hub::subscription::Subscription;
use crate::{AnyNotification, NotificationCenter};

/// Matches every notification (`center.observer::<Wildcard>()`), or a family by name prefix
/// ([`family`](ObserverBuilder::family)).
///
/// Wildcard observers keep the same ordering as typed ones (priority, then registration,
/// interleaved with the typed observers of each type), the same panic isolation and quiescent
/// unsubscribe. Types nobody observes by wildcard pay nothing for the wildcards of others.
/// Their terminals are [`inline`](ObserverBuilder::inline), [`weak`](ObserverBuilder::weak),
/// [`forward`](ObserverBuilder::forward) and (feature `testkit`) `record`; they see a borrowed,
/// type-erased value, so there is no wildcard stream, spawn, policy or replay (see
/// [`ObserverBuilder`]).
///
/// ```
/// use herald::{NotificationCenter, Notification, Wildcard};
/// use std::sync::{Arc, Mutex};
///
/// struct Joined;
/// impl Notification for Joined { fn name() -> &'static str { "chat.member.joined" } }
/// struct Tick;
/// impl Notification for Tick { fn name() -> &'static str { "clock.tick" } }
///
/// let center = NotificationCenter::new();
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let s = seen.clone();
/// let _chat = center
///     .observer::<Wildcard>()
///     .family("chat.")
///     .priority(1)
///     .inline(move |n| s.lock().unwrap().push(n.name()));
/// center.post(Joined);
/// center.post(Tick);
/// assert_eq!(*seen.lock().unwrap(), ["chat.member.joined"]);
/// ```
#[derive(Debug, Clone, Copy)]
pub enum Wildcard {}

impl sealed::Sealed for Wildcard {
    type Target = Option<String>;
    type Filter = Arc<dyn Fn(&AnyNotification<'_>) -> bool + Send + Sync>;
    fn target(_: &NotificationCenter) -> Option<String> {
        None
    }
}
impl Matcher for Wildcard {}

impl ObserverBuilder<Wildcard> {
    /// Narrows the observer to a family: the notifications whose name starts with `prefix`
    /// (`"chat."` matches `chat.message.received`): the type's
    /// [`name`](crate::Notification::name), or each value's
    /// [`value_name`](crate::Notification::value_name) for types that name their values one by
    /// one. Called again, the last prefix wins.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification, Wildcard};
    /// # struct Paid; impl Notification for Paid { fn name() -> &'static str { "billing.paid" } }
    /// # struct Tick; impl Notification for Tick { fn name() -> &'static str { "clock.tick" } }
    /// let center = NotificationCenter::new();
    /// let _billing = center.observer::<Wildcard>().family("billing.").inline(|_| {});
    /// assert_eq!(center.post(Paid).received, 1);
    /// assert_eq!(center.post(Tick).received, 0);
    /// ```
    pub fn family(mut self, prefix: &str) -> Self {
        self.target = Some(prefix.to_owned());
        self
    }

    /// Only notifications for which `predicate` returns true reach this observer. The
    /// predicate runs on the posting thread, with the same panic isolation as an observer.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification, Wildcard};
    /// # struct A; impl Notification for A {}
    /// # struct B; impl Notification for B {}
    /// let center = NotificationCenter::new();
    /// let _only_a = center.observer::<Wildcard>().filter(|n| n.is::<A>()).inline(|_| {});
    /// assert_eq!(center.post(A).received, 1);
    /// assert_eq!(center.post(B).received, 0);
    /// ```
    pub fn filter<F>(mut self, predicate: F) -> Self
    where
        F: Fn(&AnyNotification<'_>) -> bool + Send + Sync + 'static,
    {
        self.filter = Some(Arc::new(predicate));
        self
    }

    /// Calls `observer` on the posting thread for every matching notification.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification, Wildcard};
    /// # struct Ev; impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let _log = center
    ///     .observer::<Wildcard>()
    ///     .inline(|n| println!("{} from {:?}", n.name(), n.sender()));
    /// assert_eq!(center.post(Ev).received, 1);
    /// ```
    pub fn inline<F>(self, observer: F) -> Subscription
    where
        F: Fn(&AnyNotification<'_>) + Send + Sync + 'static,
    {
        let f: AnyFn = match self.filter.clone() {
            None => Arc::new(move |n: &AnyNotification<'_>| {
                observer(n);
                true
            }),
            Some(p) => Arc::new(move |n: &AnyNotification<'_>| {
                if !p(n) {
                    return false;
                }
                observer(n);
                true
            }),
        };
        let meta = Meta::new(self.priority, self.sender);
        self.add(meta, f)
    }

    /// Calls `observer` with `target` for every matching notification while `target` lives,
    /// holding only a weak reference to it. The first post that finds `target` gone removes
    /// the observer from every type it observes. The guard ends it earlier.
    ///
    /// ```
    /// use herald::{NotificationCenter, Notification, Wildcard};
    /// use std::sync::{Arc, Mutex};
    ///
    /// struct Ev;
    /// impl Notification for Ev {}
    ///
    /// let center = NotificationCenter::new();
    /// let log = Arc::new(Mutex::new(Vec::new()));
    /// center
    ///     .observer::<Wildcard>()
    ///     .weak(&log, |log, n| log.lock().unwrap().push(n.name()))
    ///     .detach();
    /// center.post(Ev);
    /// assert_eq!(log.lock().unwrap().len(), 1);
    /// drop(log);
    /// assert_eq!(center.post(Ev).received, 0); // found gone, and removed
    /// assert_eq!(center.stats::<Ev>().observers, 0);
    /// ```
    pub fn weak<T, F>(self, target: &Arc<T>, observer: F) -> Subscription
    where
        T: Send + Sync + 'static,
        F: Fn(&T, &AnyNotification<'_>) + Send + Sync + 'static,
    {
        let meta = Meta::new(self.priority, self.sender);
        let id = meta.id;
        let target = Arc::downgrade(target);
        let filter = self.filter.clone();
        let center: Weak<dyn Unsubscribe> = {
            let w: Weak<crate::hub::center::CenterInner> = Arc::downgrade(&self.center.inner);
            w
        };
        let expired = AtomicBool::new(false);
        let f: AnyFn = Arc::new(move |n: &AnyNotification<'_>| {
            // The target first: a filter in front of it that refuses every later post would
            // keep an observer of a dead target forever.
            match target.upgrade() {
                Some(_) if filter.as_ref().is_some_and(|p| !p(n)) => false,
                Some(t) => {
                    observer(&t, n);
                    true
                }
                None => {
                    // The first post to find it gone removes it (from inside a post the
                    // removal does not wait; the entry is skipped until it is freed).
                    if !expired.swap(true, Ordering::AcqRel)
                        && let Some(center) = center.upgrade()
                    {
                        center.unsubscribe(id);
                    }
                    false
                }
            }
        });
        self.add(meta, f)
    }

    fn add(self, meta: Meta, f: AnyFn) -> Subscription {
        // A family also observes the types whose values are named one by one: check those
        // values' names here (for other types the channel matched the type's name already).
        let f: AnyFn = match self.target.clone() {
            None => f,
            Some(prefix) => Arc::new(move |n: &AnyNotification<'_>| {
                n.value_name().starts_with(prefix.as_str()) && f(n)
            }),
        };
        let spec = Arc::new(WildSpec {
            meta,
            prefix: self.target,
            f,
        });
        self.center.inner.add_wildcard(spec)
    }
}
