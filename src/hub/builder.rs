//! Making subscriptions: [`ObserverBuilder`], what it matches ([`Matcher`]: one type, or
//! [`Wildcard`](crate::Wildcard)), its policy state ([`DefaultPolicy`] or an
//! [`Overflow`]), and the extension point for delivery kinds defined elsewhere
//! ([`Terminal`]).
//!
//! Typed terminals live here (`inline`, `inline_with_sender`, `weak`, `stream`, `queue`,
//! `forward`); `spawn` lives in `spawn.rs`, `record` in `testkit.rs`, the wildcard terminals in
//! `wildcard.rs`. All of them end in the engine's `Core::subscribe` (or the center's wildcard
//! registry) and return a [`Subscription`], or a handle that owns one.

use std::fmt;
use std::sync::Arc;

use crate::hub::engine::{Filter, Inline, InlineWithSender, Kind, WeakInline};
use crate::hub::queue::{Coalescing, NotificationQueue, PostingStyle};
use crate::hub::stream::NotificationStream;
use crate::hub::subscription::Subscription;
use crate::{Notification, NotificationCenter, Overflow, SenderId};

pub(crate) mod sealed {
    use crate::NotificationCenter;

    /// What a builder needs to know about what it matches.
    pub trait Sealed: Sized + 'static {
        /// Where its subscriptions go: a type's channel, or a name prefix.
        type Target;
        /// The builder's predicate, boxed.
        type Filter;
        fn target(center: &NotificationCenter) -> Self::Target;
    }

    pub trait SealedPolicy {}

    /// A typed builder's target: the type's channel.
    pub struct Channel<N: 'static>(pub(crate) std::sync::Arc<crate::hub::engine::Core<N>>);
}

/// What an [`ObserverBuilder`] matches: a notification type `N` (every type that implements
/// [`Notification`]), or [`Wildcard`](crate::Wildcard) (every notification, or a family by
/// name prefix). Sealed: the hub implements it, nobody else.
///
/// ```
/// use herald::{Matcher, Notification, NotificationCenter, ObserverBuilder, Wildcard};
///
/// struct Saved;
/// impl Notification for Saved {}
///
/// /// Starts a subscription to whatever `M` matches.
/// fn subscribe_to<M: Matcher>(center: &NotificationCenter) -> ObserverBuilder<M> {
///     center.observer::<M>()
/// }
///
/// let center = NotificationCenter::new();
/// let _typed = subscribe_to::<Saved>(&center).inline(|_: &Saved| {}); // a notification type
/// let _every = subscribe_to::<Wildcard>(&center).inline(|_| {}); // or every notification
/// assert_eq!(center.post(Saved).received, 2);
/// ```
pub trait Matcher: sealed::Sealed {}

impl<N: Notification> sealed::Sealed for N {
    type Target = sealed::Channel<N>;
    type Filter = Filter<N>;
    fn target(center: &NotificationCenter) -> sealed::Channel<N> {
        sealed::Channel(center.inner.core::<N>())
    }
}
impl<N: Notification> Matcher for N {}

/// The policy state of a builder on which no [`policy`](ObserverBuilder::policy) was chosen:
/// every terminal is available, and buffered ones use the default policy
/// ([`Overflow::default`], drop-oldest with capacity 1024).
///
/// Choosing a policy moves the builder to the state `ObserverBuilder<N, Overflow<N>>`, which
/// offers only the terminals that have a buffer to apply it to; see
/// [`ObserverBuilder::policy`].
///
/// ```
/// # use herald::{DEFAULT_CAPACITY, DefaultPolicy, Notification, NotificationCenter, ObserverBuilder, Overflow};
/// # struct Ev; impl Notification for Ev {}
/// let center = NotificationCenter::new();
/// let builder: ObserverBuilder<Ev, DefaultPolicy> = center.observer::<Ev>();
/// assert_eq!(builder.stream().capacity(), DEFAULT_CAPACITY); // the default policy
/// let _inline = center.observer::<Ev>().inline(|_| {}); // inline terminals are here too
///
/// let chosen: ObserverBuilder<Ev, Overflow<Ev>> = center.observer::<Ev>().policy(Overflow::Latest);
/// assert_eq!(chosen.stream().capacity(), 1);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultPolicy;

/// A builder's policy state: [`DefaultPolicy`] or an [`Overflow`] chosen with
/// [`policy`](ObserverBuilder::policy). Sealed. A [`Terminal`] that buffers implements itself
/// for every `P: BufferPolicy<N>` and honours it by making its subscription with
/// [`stream`](ObserverBuilder::stream) or [`spawn`](ObserverBuilder::spawn).
///
/// ```
/// use herald::{BufferPolicy, DEFAULT_CAPACITY, Notification, NotificationCenter,
///              NotificationStream, ObserverBuilder, Overflow};
///
/// /// A stream with the policy the caller chose, or the default one.
/// fn buffered<N: Notification, P: BufferPolicy<N>>(
///     builder: ObserverBuilder<N, P>,
/// ) -> NotificationStream<N> {
///     builder.stream()
/// }
///
/// struct Ev;
/// impl Notification for Ev {}
///
/// let center = NotificationCenter::new();
/// let default = buffered(center.observer::<Ev>());
/// let small = buffered(center.observer::<Ev>().policy(Overflow::DropNewest { capacity: 2 }));
/// assert_eq!(default.capacity(), DEFAULT_CAPACITY);
/// assert_eq!(small.capacity(), 2);
/// ```
pub trait BufferPolicy<N>: sealed::SealedPolicy {
    #[doc(hidden)]
    fn into_overflow(self) -> Overflow<N>;
}

impl sealed::SealedPolicy for DefaultPolicy {}
impl<N> BufferPolicy<N> for DefaultPolicy {
    fn into_overflow(self) -> Overflow<N> {
        Overflow::default()
    }
}
impl<N> sealed::SealedPolicy for Overflow<N> {}
impl<N> BufferPolicy<N> for Overflow<N> {
    fn into_overflow(self) -> Overflow<N> {
        self
    }
}

/// The one way to subscribe, whatever the delivery and whatever it matches: options, then a
/// terminal.
///
/// Made by [`NotificationCenter::observer`]: `center.observer::<N>()` for one type,
/// `center.observer::<Wildcard>()` for every notification (and
/// [`.family("shop.")`](ObserverBuilder::family) for a family by name prefix). The type
/// parameters say what the builder can still do, so that an option no terminal would honour
/// is a compile error rather than a silent no-op:
///
/// | | `ObserverBuilder<N>` | `ObserverBuilder<N, Overflow<N>>` | `ObserverBuilder<Wildcard>` |
/// |---|---|---|---|
/// | options | [`sender`](Self::sender), [`filter`](Self::filter), [`priority`](Self::priority), [`replay_last`](Self::replay_last), [`policy`](Self::policy) | the same | `sender`, `filter`, `priority`, [`family`](Self::family) |
/// | terminals | [`inline`](Self::inline), [`inline_with_sender`](Self::inline_with_sender), [`weak`](Self::weak), [`queue`](Self::queue), [`stream`](Self::stream), [`spawn`](Self::spawn), [`forward`](Self::forward), `record` (feature `testkit`) | `stream`, `spawn`, `forward` | `inline`, `weak`, `forward`, `record` |
///
/// Why: a policy only means something to a terminal with a buffer, so
/// [`policy`](Self::policy) leaves the inline terminals behind. A wildcard observer is
/// called inline with a borrowed, type-erased value, so it has no buffer (no `policy`,
/// `stream` or `spawn`: receive a typed stream per type instead), and the engine keeps the last
/// value per type, so there is no wildcard `replay_last`.
///
/// Every terminal returns a [`Subscription`], or a handle that owns one and has the same
/// `unsubscribe` verb ([`NotificationStream`], [`SpawnedHandler`](crate::SpawnedHandler),
/// `Recorder`).
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
///
/// A policy with an inline terminal does not compile:
///
/// ```compile_fail
/// # use herald::{NotificationCenter, Notification, Overflow};
/// # struct Ev; impl Notification for Ev {}
/// let center = NotificationCenter::new();
/// let _ = center.observer::<Ev>().policy(Overflow::Latest).inline(|_| {});
/// ```
///
/// Nor with a weak one, a queue, or a recorder:
///
/// ```compile_fail
/// # use herald::{NotificationCenter, Notification, Overflow};
/// # use std::sync::Arc;
/// # struct Ev; impl Notification for Ev {}
/// let center = NotificationCenter::new();
/// let target = Arc::new(());
/// let _ = center.observer::<Ev>().policy(Overflow::Latest).weak(&target, |_, _| {});
/// ```
///
/// ```compile_fail
/// # use herald::{NotificationCenter, Notification, NotificationQueue, Overflow, PostingStyle, Coalescing};
/// # #[derive(Clone)] struct Ev; impl Notification for Ev {}
/// let center = NotificationCenter::new();
/// let queue = NotificationQueue::new(&NotificationCenter::new());
/// let _ = center
///     .observer::<Ev>()
///     .policy(Overflow::Latest)
///     .queue(&queue, PostingStyle::Asap, Coalescing::None);
/// ```
///
/// A wildcard builder has no policy, no replay, no stream and no spawn:
///
/// ```compile_fail
/// # use herald::{NotificationCenter, Overflow, Wildcard};
/// let center = NotificationCenter::new();
/// let _ = center.observer::<Wildcard>().policy(Overflow::Latest);
/// ```
///
/// ```compile_fail
/// # use herald::{NotificationCenter, Wildcard};
/// let center = NotificationCenter::new();
/// let _ = center.observer::<Wildcard>().replay_last();
/// ```
///
/// ```compile_fail
/// # use herald::{NotificationCenter, Wildcard};
/// let center = NotificationCenter::new();
/// let _ = center.observer::<Wildcard>().stream();
/// ```
///
/// ```compile_fail
/// # use herald::{NotificationCenter, Wildcard};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let center = NotificationCenter::new();
/// let _ = center.observer::<Wildcard>().spawn(|_| async {});
/// # }
/// ```
///
/// A family is a wildcard option; a typed builder has none:
///
/// ```compile_fail
/// # use herald::{NotificationCenter, Notification};
/// # struct Ev; impl Notification for Ev {}
/// let center = NotificationCenter::new();
/// let _ = center.observer::<Ev>().family("shop.");
/// ```
///
/// A terminal that does not buffer (such as the NATS bridge's `Publish`) implements
/// [`Terminal`] for the default state only, so a policy before it does not compile either.
#[must_use = "an observer builder does nothing until a terminal such as .inline() or .stream()"]
pub struct ObserverBuilder<M: Matcher, P = DefaultPolicy> {
    pub(crate) center: NotificationCenter,
    pub(crate) target: M::Target,
    pub(crate) sender: Option<SenderId>,
    pub(crate) filter: Option<M::Filter>,
    pub(crate) priority: i32,
    pub(crate) replay: bool,
    pub(crate) policy: P,
}

impl<M: Matcher> ObserverBuilder<M> {
    pub(crate) fn new(center: &NotificationCenter) -> Self {
        ObserverBuilder {
            target: M::target(center),
            center: center.clone(),
            sender: None,
            filter: None,
            priority: 0,
            replay: false,
            policy: DefaultPolicy,
        }
    }
}

impl<M: Matcher, P> ObserverBuilder<M, P> {
    /// Only notifications posted by `sender` (with `post_from`) reach this observer
    /// (contract 8). Without it, the observer sees every sender's posts and sender-less posts.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification, SenderId};
    /// # struct Ev; impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let me = SenderId::new();
    /// let _mine = center.observer::<Ev>().sender(me).inline(|_| {});
    /// assert_eq!(center.post_from(me, Ev).received, 1);
    /// assert_eq!(center.post_from(SenderId::new(), Ev).received, 0);
    /// assert_eq!(center.post(Ev).received, 0);
    /// ```
    pub fn sender(mut self, sender: SenderId) -> Self {
        self.sender = Some(sender);
        self
    }

    /// Observers of one type run by priority, higher first, then in registration order
    /// (contract 1); wildcard observers take their place among them by the same rule. The
    /// default is 0.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # use std::sync::{Arc, Mutex};
    /// # struct Ev; impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let order = Arc::new(Mutex::new(Vec::new()));
    /// let (a, b) = (order.clone(), order.clone());
    /// let _late = center.observer::<Ev>().inline(move |_| a.lock().unwrap().push("late"));
    /// let _first = center
    ///     .observer::<Ev>()
    ///     .priority(5)
    ///     .inline(move |_| b.lock().unwrap().push("first"));
    /// center.post(Ev);
    /// assert_eq!(*order.lock().unwrap(), ["first", "late"]);
    /// ```
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// The center this subscription is made in (for terminals that post back into it).
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # struct Ev; impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// assert!(center.observer::<Ev>().center().same_center(&center));
    /// ```
    pub fn center(&self) -> &NotificationCenter {
        &self.center
    }

    /// Hands the subscription to a [`Terminal`]: a delivery kind defined outside the hub (the
    /// bridge's `ApnsSink`, the NATS bridge's `Publish`, a user's own). What it returns is the
    /// terminal's choice: a [`Subscription`] or a handle that owns one.
    ///
    /// ```
    /// use herald::{Notification, NotificationCenter, ObserverBuilder, Subscription, Terminal};
    /// use std::sync::{Arc, Mutex};
    ///
    /// /// Appends every value's debug form to a shared log.
    /// struct LogTo(Arc<Mutex<Vec<String>>>);
    ///
    /// impl<N: Notification + std::fmt::Debug> Terminal<N> for LogTo {
    ///     type Output = Subscription;
    ///     fn subscribe(self, builder: ObserverBuilder<N>) -> Subscription {
    ///         builder.inline(move |n| self.0.lock().unwrap().push(format!("{n:?}")))
    ///     }
    /// }
    ///
    /// #[derive(Debug)]
    /// struct Saved(u8);
    /// impl Notification for Saved {}
    ///
    /// let center = NotificationCenter::new();
    /// let log = Arc::new(Mutex::new(Vec::new()));
    /// let _sub = center.observer::<Saved>().forward(LogTo(log.clone()));
    /// center.post(Saved(1));
    /// assert_eq!(*log.lock().unwrap(), ["Saved(1)"]);
    /// ```
    pub fn forward<T: Terminal<M, P>>(self, terminal: T) -> T::Output {
        terminal.subscribe(self)
    }
}

impl<N: Notification, P> ObserverBuilder<N, P> {
    /// Only notifications for which `predicate` returns true reach this observer. The
    /// predicate runs on the posting thread, with the same panic isolation as an observer.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # struct Level(u8); impl Notification for Level {}
    /// let center = NotificationCenter::new();
    /// let _loud = center.observer::<Level>().filter(|l| l.0 > 5).inline(|_| {});
    /// assert_eq!(center.post(Level(9)).received, 1);
    /// assert_eq!(center.post(Level(1)).received, 0);
    /// ```
    pub fn filter<F>(mut self, predicate: F) -> Self
    where
        F: Fn(&N) -> bool + Send + Sync + 'static,
    {
        self.filter = Some(Box::new(predicate));
        self
    }

    /// Deliver the last value posted before subscribing first (per sender when
    /// [`sender`](Self::sender) is set), atomically with the subscription: no post is missed or
    /// seen twice in between (contract 6).
    ///
    /// Values are retained from the moment retention is on for the type: after
    /// [`NotificationCenter::retain_last`] or the type's first `replay_last` subscription.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # struct Mode(u8); impl Notification for Mode {}
    /// let center = NotificationCenter::new();
    /// center.retain_last::<Mode>();
    /// center.post(Mode(3));
    /// let mut late = center.observer::<Mode>().replay_last().stream();
    /// assert_eq!(late.try_recv().unwrap().0, 3);
    /// ```
    pub fn replay_last(mut self) -> Self {
        self.replay = true;
        self
    }

    /// Chooses the overflow policy of the subscription's buffer (default: drop-oldest,
    /// capacity 1024), and with it a buffered terminal: the builder this returns offers
    /// [`stream`](Self::stream), [`spawn`](Self::spawn) and [`forward`](Self::forward) (to a
    /// terminal that buffers), and no inline terminal, which would have no buffer to apply
    /// it to.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification, Overflow};
    /// # struct Ev(u8); impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let mut latest = center.observer::<Ev>().policy(Overflow::Latest).stream();
    /// center.post(Ev(1));
    /// center.post(Ev(2));
    /// assert_eq!(latest.try_recv().unwrap().0, 2);
    /// ```
    pub fn policy(self, policy: Overflow<N>) -> ObserverBuilder<N, Overflow<N>> {
        ObserverBuilder {
            center: self.center,
            target: self.target,
            sender: self.sender,
            filter: self.filter,
            priority: self.priority,
            replay: self.replay,
            policy,
        }
    }

    /// Subscribes an entry of kind `kind` with the builder's order and filters.
    fn subscribe_kind<K: Kind<N>>(self, kind: K) -> Subscription {
        let e = self
            .target
            .0
            .entry(self.priority, self.sender, self.filter, kind);
        let id = self.target.0.subscribe(e, self.replay);
        Subscription::of(&self.target.0, id)
    }
}

impl<N: Notification, P: BufferPolicy<N>> ObserverBuilder<N, P> {
    /// Buffers notifications for an async (or blocking) receiver, under the builder's overflow
    /// policy. The stream owns its subscription: dropping it, or
    /// [`unsubscribe`](NotificationStream::unsubscribe), ends it.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # struct Job(u32); impl Notification for Job {}
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let center = NotificationCenter::new();
    /// let mut jobs = center.observer::<Job>().stream();
    /// center.post(Job(7));
    /// assert_eq!(jobs.recv().await.unwrap().0, 7);
    /// # }
    /// ```
    pub fn stream(self) -> NotificationStream<N> {
        let core = self.target.0.clone();
        let (id, receiver, _) = self.into_buffered();
        NotificationStream::new(receiver, Subscription::of(&core, id))
    }

    /// Buffers notifications for a receiver that gets its own clone of each value, not an
    /// `Arc`: a [`ClonedStream`](crate::ClonedStream). With drop-oldest or latest-only and no
    /// sender or filter, its streams share a ring of values (no allocation per post); see
    /// its docs for what that keeps alive.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification, Overflow};
    /// #[derive(Clone)]
    /// struct Tick(u64);
    /// impl Notification for Tick {}
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let center = NotificationCenter::new();
    /// let mut ticks = center
    ///     .observer::<Tick>()
    ///     .policy(Overflow::DropOldest { capacity: 64 })
    ///     .cloned_stream();
    /// center.post(Tick(7));
    /// let tick: Tick = ticks.recv().await.unwrap();
    /// assert_eq!(tick.0, 7);
    /// # }
    /// ```
    pub fn cloned_stream(self) -> crate::ClonedStream<N>
    where
        N: Clone,
    {
        crate::hub::cloned::subscribe(
            &self.target.0,
            self.sender,
            self.filter,
            self.priority,
            self.replay,
            self.policy.into_overflow(),
        )
    }

    /// Subscribes a buffered receiver (stream or spawned handler).
    pub(crate) fn into_buffered(
        self,
    ) -> (
        crate::ObserverId,
        crate::hub::stream::NotificationStreamInner<N>,
        Arc<dyn crate::hub::stream::BufferView>,
    ) {
        crate::hub::stream::subscribe(
            &self.target.0,
            self.sender,
            self.filter,
            self.priority,
            self.replay,
            self.policy.into_overflow(),
        )
    }
}

impl<N: Notification> ObserverBuilder<N> {
    /// Calls `observer` on the posting thread, before `post` returns.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # struct Ev; impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let _sub = center.observer::<Ev>().inline(|_| println!("posted"));
    /// assert_eq!(center.post(Ev).received, 1);
    /// ```
    pub fn inline<F>(self, observer: F) -> Subscription
    where
        F: Fn(&N) + Send + Sync + 'static,
    {
        self.subscribe_kind(Inline(observer))
    }

    /// Like [`inline`](Self::inline), and the observer also receives who posted (`None` for
    /// [`post`](NotificationCenter::post)); the value [`replay_last`](Self::replay_last)
    /// delivers on subscribing comes with the sender that posted it. For observers that
    /// forward posts elsewhere and must keep their origin, such as the NATS bridge's export.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification, SenderId};
    /// # use std::sync::{Arc, Mutex};
    /// # struct Ev; impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let s = seen.clone();
    /// let _sub = center
    ///     .observer::<Ev>()
    ///     .inline_with_sender(move |_, sender| s.lock().unwrap().push(sender));
    /// let me = SenderId::new();
    /// center.post_from(me, Ev);
    /// center.post(Ev);
    /// assert_eq!(*seen.lock().unwrap(), [Some(me), None]);
    /// ```
    pub fn inline_with_sender<F>(self, observer: F) -> Subscription
    where
        F: Fn(&N, Option<SenderId>) + Send + Sync + 'static,
    {
        self.subscribe_kind(InlineWithSender(observer))
    }

    /// Calls `observer` with `target` on the posting thread while `target` lives, holding only
    /// a weak reference to it. The first post that finds `target` gone removes the observer
    /// (its closure is freed once no post can still see it); others pay nothing for that.
    /// A [`filter`](Self::filter) is asked only while `target` lives, so an observer whose
    /// filter refuses every later post still goes at the first post of its type (with a
    /// [`sender`](Self::sender) filter: the first post from that sender). The guard ends it
    /// earlier, like any other.
    ///
    /// ```
    /// use herald::{NotificationCenter, Notification};
    /// use std::sync::{Arc, Mutex};
    ///
    /// struct Saved(u32);
    /// impl Notification for Saved {}
    ///
    /// struct Screen { title: Mutex<String> }
    ///
    /// let center = NotificationCenter::new();
    /// let screen = Arc::new(Screen { title: Mutex::new(String::new()) });
    /// center.observer::<Saved>().weak(&screen, |s, n| {
    ///     *s.title.lock().unwrap() = format!("saved #{}", n.0);
    /// }).detach(); // lives as long as the screen
    /// center.post(Saved(1));
    /// assert_eq!(*screen.title.lock().unwrap(), "saved #1");
    /// drop(screen);
    /// center.post(Saved(2)); // finds the screen gone: the observer is removed
    /// assert_eq!(center.stats::<Saved>().observers, 0);
    /// ```
    pub fn weak<T, F>(mut self, target: &Arc<T>, observer: F) -> Subscription
    where
        T: Send + Sync + 'static,
        F: Fn(&T, &N) + Send + Sync + 'static,
    {
        // The filter goes inside, after the target's test: in front of it, a filter that
        // refuses every later post would keep an observer of a dead target forever.
        let filter = self.filter.take();
        self.subscribe_kind(WeakInline {
            target: Arc::downgrade(target),
            f: move |t: &T, n: &N| {
                let wanted = filter.as_ref().is_none_or(|p| p(n));
                if wanted {
                    observer(t, n);
                }
                wanted
            },
        })
    }

    /// Enqueues a clone of each notification into `queue` (with its sender, `style` and
    /// `coalescing`): the queue posts it into its own center later, coalesced. For turning a
    /// burst in one center into fewer posts in another (a UI center fed from a worker's).
    ///
    /// A queue of the same center, fed by an observer of the type it posts, would feed itself
    /// forever: give it another center, or a [`filter`](Self::filter) that its own posts do
    /// not pass.
    ///
    /// ```
    /// use herald::{Coalescing, Notification, NotificationCenter, NotificationQueue, PostingStyle};
    ///
    /// #[derive(Debug, Clone)]
    /// struct Progress(u8);
    /// impl Notification for Progress {}
    ///
    /// let worker = NotificationCenter::new();
    /// let ui = NotificationCenter::new();
    /// let mut shown = ui.stream::<Progress>();
    /// let to_ui = NotificationQueue::new(&ui);
    /// let _feed = worker
    ///     .observer::<Progress>()
    ///     .queue(&to_ui, PostingStyle::WhenIdle, Coalescing::ByType);
    /// for p in [10, 40, 90] {
    ///     worker.post(Progress(p));
    /// }
    /// assert_eq!(to_ui.flush(), 1); // coalesced into the last value
    /// assert_eq!(shown.try_recv().unwrap().0, 90);
    /// ```
    pub fn queue(
        self,
        queue: &NotificationQueue,
        style: PostingStyle,
        coalescing: Coalescing,
    ) -> Subscription
    where
        N: Clone,
    {
        let queue = queue.clone();
        self.inline_with_sender(move |n: &N, sender| {
            let _ = match sender {
                Some(s) => queue.enqueue_from_with(s, n.clone(), style, coalescing.clone()),
                None => queue.enqueue_with(n.clone(), style, coalescing.clone()),
            };
        })
    }
}

/// A delivery kind added from outside the hub, subscribed with
/// [`ObserverBuilder::forward`].
///
/// A terminal receives the builder with every option the user chose and makes the
/// subscription through the builder's public terminals: [`inline`](ObserverBuilder::inline)
/// or [`inline_with_sender`](ObserverBuilder::inline_with_sender) for one that delivers on the
/// posting thread, [`stream`](ObserverBuilder::stream) with a task that drains it for one that
/// buffers. The builder's state is the terminal's contract: a terminal implemented for
/// `ObserverBuilder<N>` only (the default `P`) refuses a chosen policy at compile time; one
/// that buffers implements itself for every `P: BufferPolicy<N>` and so honours it. `M` is
/// what it matches: a type `N`, or [`Wildcard`](crate::Wildcard).
///
/// The bridge's `ApnsSink` (buffers; any policy) and the NATS bridge's `Publish` (inline,
/// with the sender) are terminals.
///
/// ```
/// use herald::{BufferPolicy, Notification, NotificationCenter, NotificationStream,
///              ObserverBuilder, Overflow, Terminal};
///
/// /// A stream that says what it subscribed to; honours any policy.
/// struct Named;
///
/// impl<N: Notification, P: BufferPolicy<N>> Terminal<N, P> for Named {
///     type Output = (&'static str, NotificationStream<N>);
///     fn subscribe(self, builder: ObserverBuilder<N, P>) -> Self::Output {
///         (N::name(), builder.stream())
///     }
/// }
///
/// struct Saved;
/// impl Notification for Saved { fn name() -> &'static str { "doc.saved" } }
///
/// let center = NotificationCenter::new();
/// let (name, mut saved) = center
///     .observer::<Saved>()
///     .policy(Overflow::DropNewest { capacity: 4 })
///     .forward(Named);
/// center.post(Saved);
/// assert_eq!(name, "doc.saved");
/// assert_eq!(saved.capacity(), 4);
/// assert!(saved.try_recv().is_ok());
/// ```
pub trait Terminal<M: Matcher, P = DefaultPolicy> {
    /// What the subscription hands back: a guard, or a handle that holds one.
    ///
    /// ```
    /// use herald::{Notification, NotificationCenter, ObserverBuilder, Subscription, Terminal};
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    ///
    /// /// Counts posts: hands back the counter and the guard that keeps it counting.
    /// struct Count;
    ///
    /// impl<N: Notification> Terminal<N> for Count {
    ///     type Output = (Arc<AtomicUsize>, Subscription);
    ///     fn subscribe(self, builder: ObserverBuilder<N>) -> Self::Output {
    ///         let count = Arc::new(AtomicUsize::new(0));
    ///         let c = count.clone();
    ///         let sub = builder.inline(move |_| {
    ///             c.fetch_add(1, Ordering::SeqCst);
    ///         });
    ///         (count, sub)
    ///     }
    /// }
    ///
    /// struct Ev;
    /// impl Notification for Ev {}
    ///
    /// let center = NotificationCenter::new();
    /// let (count, sub) = center.observer::<Ev>().forward(Count);
    /// center.post(Ev);
    /// assert_eq!(count.load(Ordering::SeqCst), 1);
    /// sub.unsubscribe();
    /// center.post(Ev);
    /// assert_eq!(count.load(Ordering::SeqCst), 1);
    /// ```
    type Output;
    /// Makes the subscription, honouring the builder's options.
    ///
    /// ```
    /// use herald::{Notification, NotificationCenter, ObserverBuilder, Subscription, Terminal, Wildcard};
    /// use std::sync::{Arc, Mutex};
    ///
    /// /// Logs the names of what it matches.
    /// struct Names(Arc<Mutex<Vec<&'static str>>>);
    ///
    /// impl Terminal<Wildcard> for Names {
    ///     type Output = Subscription;
    ///     fn subscribe(self, builder: ObserverBuilder<Wildcard>) -> Subscription {
    ///         builder.inline(move |n| self.0.lock().unwrap().push(n.name()))
    ///     }
    /// }
    ///
    /// struct Paid;
    /// impl Notification for Paid { fn name() -> &'static str { "shop.paid" } }
    /// struct Tick;
    /// impl Notification for Tick { fn name() -> &'static str { "clock.tick" } }
    ///
    /// let center = NotificationCenter::new();
    /// let names = Arc::new(Mutex::new(Vec::new()));
    /// // The user's options (here a family) reach the terminal inside the builder.
    /// let _shop = center.observer::<Wildcard>().family("shop.").forward(Names(names.clone()));
    /// // `forward` calls `subscribe`; calling it directly does the same.
    /// let _all = Names(names.clone()).subscribe(center.observer::<Wildcard>());
    /// center.post(Paid);
    /// center.post(Tick);
    /// assert_eq!(*names.lock().unwrap(), ["shop.paid", "shop.paid", "clock.tick"]);
    /// ```
    fn subscribe(self, builder: ObserverBuilder<M, P>) -> Self::Output;
}

impl<M: Matcher, P: fmt::Debug> fmt::Debug for ObserverBuilder<M, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObserverBuilder")
            .field("matches", &std::any::type_name::<M>())
            .field("sender", &self.sender)
            .field("filter", &self.filter.is_some())
            .field("priority", &self.priority)
            .field("replay", &self.replay)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Making subscriptions from the center: the builder, and its documented short forms.
impl NotificationCenter {
    /// Starts a subscription: to one notification type (`observer::<N>()`), or to every
    /// notification (`observer::<Wildcard>()`, narrowed with
    /// [`family`](ObserverBuilder::family)). Choose options, then a terminal; see
    /// [`ObserverBuilder`].
    ///
    /// ```
    /// use herald::{NotificationCenter, Notification, Wildcard};
    ///
    /// struct Shipped;
    /// impl Notification for Shipped { fn name() -> &'static str { "shop.shipped" } }
    ///
    /// let center = NotificationCenter::new();
    /// let _typed = center.observer::<Shipped>().inline(|_| {});
    /// let _shop = center
    ///     .observer::<Wildcard>()
    ///     .family("shop.")
    ///     .inline(|n| println!("{} happened", n.name()));
    /// assert_eq!(center.post(Shipped).received, 2);
    /// ```
    pub fn observer<M: Matcher>(&self) -> ObserverBuilder<M> {
        ObserverBuilder::new(self)
    }

    /// Observes `N` with an inline closure: sugar for `observer::<N>().inline(observer)`.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # struct Ev; impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let _sub = center.observe(|_: &Ev| println!("posted"));
    /// assert_eq!(center.post(Ev).received, 1);
    /// ```
    pub fn observe<N, F>(&self, observer: F) -> crate::Subscription
    where
        N: Notification,
        F: Fn(&N) + Send + Sync + 'static,
    {
        self.observer::<N>().inline(observer)
    }

    /// A stream of `N` with the default policy: sugar for `observer::<N>().stream()`.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # struct Ev; impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let mut events = center.stream::<Ev>();
    /// center.post(Ev);
    /// assert!(events.try_recv().is_ok());
    /// ```
    pub fn stream<N: Notification>(&self) -> NotificationStream<N> {
        self.observer::<N>().stream()
    }

    /// A cloned stream of `N` with the default policy: sugar for
    /// `observer::<N>().cloned_stream()`.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # #[derive(Clone)] struct Ev(u8); impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let mut events = center.cloned_stream::<Ev>();
    /// center.post(Ev(3));
    /// assert_eq!(events.try_recv().unwrap().0, 3);
    /// ```
    pub fn cloned_stream<N: Notification + Clone>(&self) -> crate::ClonedStream<N> {
        self.observer::<N>().cloned_stream()
    }
}
