//! Making subscriptions: [`ObserverBuilder`], and ending them: [`Subscription`].

use std::fmt;
use std::sync::{Arc, Weak};

use crate::hub::engine::{Core, Filter, Inline, WeakInline, entry};
use crate::hub::stream::NotificationStream;
use crate::{Notification, NotificationCenter, ObserverId, Overflow, SenderId};

/// Something a [`Subscription`] can remove itself from.
pub(crate) trait Unsubscribe: Send + Sync {
    fn unsubscribe(&self, id: ObserverId);
}

impl<N: Notification> Unsubscribe for Core<N> {
    fn unsubscribe(&self, id: ObserverId) {
        Core::unsubscribe(self, id);
    }
}

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

    /// This subscription's id.
    pub fn id(&self) -> ObserverId {
        self.id
    }

    /// Unsubscribes now (the same as dropping it).
    pub fn unsubscribe(mut self) {
        self.unsubscribe_now();
    }

    pub(crate) fn unsubscribe_now(&mut self) {
        if let Some(channel) = self.channel.take().and_then(|w| w.upgrade()) {
            channel.unsubscribe(self.id);
        }
    }

    /// Keeps the observer subscribed for the life of the center, without a guard.
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

/// The one way to subscribe, whatever the delivery: options, then a terminal.
///
/// Made by [`NotificationCenter::observer`].
/// Options: [`sender`](Self::sender) (Apple's `object:`), [`filter`](Self::filter),
/// [`priority`](Self::priority), [`replay_last`](Self::replay_last), [`policy`](Self::policy).
/// Terminals: [`inline`](Self::inline) (a closure on the posting thread),
/// [`inline_weak`](Self::inline_weak) (the same, while a target lives),
/// [`stream`](Self::stream) (an async stream with a bounded buffer),
/// [`spawn`](Self::spawn) / [`spawn_with`](Self::spawn_with) (an async handler on tokio), and
/// [`record`](Self::record) (a [`Recorder`](crate::hub::testkit::Recorder) for tests).
///
/// ```
/// use herald::{NotificationCenter, Notification, Overflow, SenderId};
///
/// #[derive(Debug)]
/// struct Temperature(f32);
/// impl Notification for Temperature {}
///
/// let center = NotificationCenter::new();
/// let kitchen = SenderId::new();
/// let _alarm = center
///     .observer::<Temperature>()
///     .sender(kitchen)
///     .filter(|t| t.0 > 60.0)
///     .priority(10)
///     .inline(|t| println!("fire in the kitchen: {}", t.0));
/// let mut log = center
///     .observer::<Temperature>()
///     .policy(Overflow::Latest)
///     .stream();
/// center.post_from(kitchen, Temperature(75.0));
/// assert_eq!(log.try_recv().unwrap().0, 75.0);
/// ```
#[must_use = "an observer builder does nothing until a terminal such as .inline() or .stream()"]
pub struct ObserverBuilder<N: Notification> {
    pub(crate) center: NotificationCenter,
    pub(crate) core: Arc<Core<N>>,
    pub(crate) sender: Option<SenderId>,
    pub(crate) filter: Option<Filter<N>>,
    pub(crate) priority: i32,
    pub(crate) replay: bool,
    pub(crate) policy: Overflow<N>,
}

impl<N: Notification> ObserverBuilder<N> {
    pub(crate) fn new(center: NotificationCenter, core: Arc<Core<N>>) -> Self {
        ObserverBuilder {
            center,
            core,
            sender: None,
            filter: None,
            priority: 0,
            replay: false,
            policy: Overflow::default(),
        }
    }

    /// Only notifications posted by `sender` (with `post_from`) reach this observer
    /// (contract 8). Without it, the observer sees every sender's posts and sender-less posts.
    pub fn sender(mut self, sender: SenderId) -> Self {
        self.sender = Some(sender);
        self
    }

    /// Only notifications for which `predicate` returns true reach this observer. The
    /// predicate runs on the posting thread, with the same panic isolation as an observer.
    pub fn filter<F>(mut self, predicate: F) -> Self
    where
        F: Fn(&N) -> bool + Send + Sync + 'static,
    {
        self.filter = Some(Box::new(predicate));
        self
    }

    /// Observers of one type run by priority, higher first, then in registration order
    /// (contract 1). The default is 0.
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Deliver the last value posted before subscribing first (per sender when
    /// [`sender`](Self::sender) is set), atomically with the subscription: no post is missed or
    /// seen twice in between (contract 6).
    ///
    /// Values are retained from the moment retention is on for the type: after
    /// [`NotificationCenter::retain_last`] or the type's first `replay_last` subscription.
    pub fn replay_last(mut self) -> Self {
        self.replay = true;
        self
    }

    /// The overflow policy of a buffered terminal (default: drop-oldest, capacity 1024).
    /// Inline observers have no buffer and ignore it.
    pub fn policy(mut self, policy: Overflow<N>) -> Self {
        self.policy = policy;
        self
    }

    /// The center this subscription is made in (for terminals that post back into it).
    pub fn center(&self) -> &NotificationCenter {
        &self.center
    }

    /// Hands the subscription to a [`Terminal`]: a delivery kind defined outside the hub
    /// (the bridge's `ApnsSink`, a user's own).
    pub fn forward<T: Terminal<N>>(self, terminal: T) -> T::Output {
        terminal.subscribe(self)
    }

    /// Calls `observer` on the posting thread, before `post` returns.
    pub fn inline<F>(self, observer: F) -> Subscription
    where
        F: Fn(&N) + Send + Sync + 'static,
    {
        let entry = entry(self.priority, self.sender, self.filter, Inline(observer));
        let id = self.core.subscribe(entry, self.replay);
        Subscription::new(to_weak(&self.core), id)
    }

    /// Calls `observer` with `target` on the posting thread while `target` lives, holding only
    /// a weak reference to it. The first post that finds `target` gone removes the observer
    /// (its closure is freed once no post can still see it); others pay nothing for that.
    pub fn inline_weak<T, F>(self, target: &Arc<T>, observer: F) -> ObserverId
    where
        T: Send + Sync + 'static,
        F: Fn(&T, &N) + Send + Sync + 'static,
    {
        let kind = WeakInline {
            target: Arc::downgrade(target),
            f: observer,
        };
        let entry = entry(self.priority, self.sender, self.filter, kind);
        self.core.subscribe(entry, self.replay)
    }

    /// Buffers notifications for an async (or blocking) receiver, under the chosen overflow
    /// policy.
    pub fn stream(self) -> NotificationStream<N> {
        let core = self.core.clone();
        let (id, receiver, _) = crate::hub::stream::subscribe(self);
        NotificationStream::new(receiver, Subscription::new(to_weak(&core), id))
    }
}

/// A delivery kind added from outside the hub, subscribed with [`ObserverBuilder::forward`].
///
/// A terminal receives the builder with every option the user chose and makes the
/// subscription through the builder's public terminals (most often
/// [`stream`](ObserverBuilder::stream), with a task that drains it). The bridge's `ApnsSink`
/// and `NatsBridge` are terminals; so can a user's own delivery kind be.
///
/// ```
/// use herald::{Notification, NotificationCenter, NotificationStream, ObserverBuilder, Terminal};
///
/// /// Collects into a stream, and says what it subscribed to.
/// struct Named;
///
/// impl<N: Notification> Terminal<N> for Named {
///     type Output = (&'static str, NotificationStream<N>);
///     fn subscribe(self, builder: ObserverBuilder<N>) -> Self::Output {
///         (N::name(), builder.stream())
///     }
/// }
///
/// struct Saved;
/// impl Notification for Saved { fn name() -> &'static str { "doc.saved" } }
///
/// let center = NotificationCenter::new();
/// let (name, mut saved) = center.observer::<Saved>().forward(Named);
/// center.post(Saved);
/// assert_eq!(name, "doc.saved");
/// assert!(saved.try_recv().is_ok());
/// ```
pub trait Terminal<N: Notification> {
    /// What the subscription hands back: a guard, or a handle that holds one.
    type Output;
    /// Makes the subscription, honouring the builder's options.
    fn subscribe(self, builder: ObserverBuilder<N>) -> Self::Output;
}

pub(crate) fn to_weak<N: Notification>(core: &Arc<Core<N>>) -> Weak<dyn Unsubscribe> {
    let weak: Weak<Core<N>> = Arc::downgrade(core);
    weak
}

impl<N: Notification> fmt::Debug for ObserverBuilder<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObserverBuilder")
            .field("notification", &N::name())
            .field("sender", &self.sender)
            .field("filter", &self.filter.is_some())
            .field("priority", &self.priority)
            .field("replay", &self.replay)
            .field("policy", &self.policy)
            .finish()
    }
}
