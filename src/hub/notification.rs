//! What can be posted: [`Notification`], and who posted it: [`SenderId`].

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A value that can be posted to a [`NotificationCenter`](crate::NotificationCenter).
///
/// Any `Send + Sync + 'static` type can be a notification; implementing the trait is one line.
/// Each type has a stable [`name`](Notification::name), used in logs, by
/// [`ObserverPanicked`](crate::ObserverPanicked) and [`DeadNotification`](crate::DeadNotification)
/// reports, and by family (name-prefix) observation. It defaults to the Rust type name; declare
/// a dotted name such as `chat.message.received` when other parts of a system refer to it.
///
/// ```
/// use herald::Notification;
///
/// #[derive(Debug, Clone)]
/// struct MessageReceived {
///     text: String,
/// }
///
/// impl Notification for MessageReceived {
///     fn name() -> &'static str {
///         "chat.message.received"
///     }
/// }
///
/// assert_eq!(MessageReceived::name(), "chat.message.received");
/// ```
pub trait Notification: Send + Sync + 'static {
    /// The notification's stable name. Defaults to [`std::any::type_name`].
    ///
    /// ```
    /// use herald::{Notification, NotificationCenter, Wildcard};
    ///
    /// struct Plain;
    /// impl Notification for Plain {}
    ///
    /// struct Paid;
    /// impl Notification for Paid {
    ///     fn name() -> &'static str {
    ///         "billing.paid"
    ///     }
    /// }
    ///
    /// assert_eq!(Plain::name(), std::any::type_name::<Plain>());
    /// assert_eq!(Paid::name(), "billing.paid");
    ///
    /// // Family observers match on it.
    /// let center = NotificationCenter::new();
    /// let _billing = center.observer::<Wildcard>().family("billing.").inline(|_| {});
    /// assert_eq!(center.post(Paid).received, 1);
    /// assert_eq!(center.post(Plain).received, 0);
    /// ```
    fn name() -> &'static str {
        std::any::type_name::<Self>()
    }

    /// Whether each value has a name of its own ([`value_name`](Self::value_name)), as a
    /// notification relayed from elsewhere under the name it was posted with. Family observers
    /// then match each value's name against their prefix, not the type's. Default: false.
    ///
    /// ```
    /// use herald::{Notification, NotificationCenter, Wildcard};
    ///
    /// /// Relayed from elsewhere, each value under the name it was posted with.
    /// struct Relayed(String);
    /// impl Notification for Relayed {
    ///     fn name() -> &'static str { "relay" }
    ///     const NAMES_VARY: bool = true;
    ///     fn value_name(&self) -> &str { &self.0 }
    /// }
    ///
    /// /// Names its values too, but does not say so: family observers go by the type's name.
    /// struct Unflagged(String);
    /// impl Notification for Unflagged {
    ///     fn name() -> &'static str { "unflagged" }
    ///     fn value_name(&self) -> &str { &self.0 }
    /// }
    ///
    /// assert!(Relayed::NAMES_VARY);
    /// assert!(!Unflagged::NAMES_VARY); // the default
    /// let center = NotificationCenter::new();
    /// let _shop = center.observer::<Wildcard>().family("shop.").inline(|_| {});
    /// assert_eq!(center.post(Relayed("shop.paid".into())).received, 1);
    /// assert_eq!(center.post(Relayed("chat.message".into())).received, 0);
    /// assert_eq!(center.post(Unflagged("shop.paid".into())).received, 0);
    /// ```
    const NAMES_VARY: bool = false;

    /// This value's name: [`name`](Self::name) unless the type's values are named one by one
    /// ([`NAMES_VARY`](Self::NAMES_VARY)). Wildcard observers read it as
    /// [`AnyNotification::value_name`].
    ///
    /// ```
    /// use herald::{Notification, NotificationCenter, Wildcard};
    /// use std::sync::{Arc, Mutex};
    ///
    /// /// A relayed notification that keeps the name it had where it was posted.
    /// struct Relayed { name: String }
    /// impl Notification for Relayed {
    ///     fn name() -> &'static str { "relay.any" }
    ///     const NAMES_VARY: bool = true;
    ///     fn value_name(&self) -> &str { &self.name }
    /// }
    ///
    /// let center = NotificationCenter::new();
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let s = seen.clone();
    /// let _shop = center
    ///     .observer::<Wildcard>()
    ///     .family("shop.")
    ///     .inline(move |n| s.lock().unwrap().push(n.value_name().to_owned()));
    /// center.post(Relayed { name: "shop.order.placed".into() });
    /// center.post(Relayed { name: "chat.message".into() }); // not in the family
    /// assert_eq!(*seen.lock().unwrap(), ["shop.order.placed"]);
    /// ```
    fn value_name(&self) -> &str {
        Self::name()
    }
}

/// Identifies who posted a notification: Apple's `object:` parameter, typed.
///
/// Observers built with [`ObserverBuilder::sender`](crate::ObserverBuilder::sender) only see
/// what that sender posted with [`NotificationCenter::post_from`](crate::NotificationCenter::post_from).
/// A `SenderId` is a plain copyable id: make a fresh one with [`SenderId::new`], derive one from
/// an `Arc`'s address with [`SenderId::of`], or use your own numbering with [`SenderId::from_raw`].
///
/// ```
/// use herald::SenderId;
/// use std::sync::Arc;
///
/// let a = SenderId::new();
/// let b = SenderId::new();
/// assert_ne!(a, b);
///
/// let session = Arc::new("session");
/// assert_eq!(SenderId::of(&session), SenderId::of(&session.clone()));
/// assert_eq!(SenderId::from_raw(7).as_raw(), 7);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SenderId(u64);

/// Fresh ids count down from the top so they never meet small user-chosen raw ids.
static NEXT_SENDER: AtomicU64 = AtomicU64::new(u64::MAX);

impl SenderId {
    /// A new id, distinct from every other id made by `new` in this process.
    ///
    /// ```
    /// # use herald::{Notification, NotificationCenter, SenderId};
    /// # struct Ev; impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let (left, right) = (SenderId::new(), SenderId::new());
    /// assert_ne!(left, right);
    /// let _left_only = center.observer::<Ev>().sender(left).inline(|_| {});
    /// assert_eq!(center.post_from(left, Ev).received, 1);
    /// assert_eq!(center.post_from(right, Ev).received, 0);
    /// ```
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        SenderId(NEXT_SENDER.fetch_sub(1, Ordering::Relaxed))
    }

    /// The id of the object an `Arc` points to (its address): every clone of the `Arc` gives
    /// the same id while the object lives.
    ///
    /// ```
    /// # use herald::{Notification, NotificationCenter, SenderId};
    /// # use std::sync::Arc;
    /// # struct Ev; impl Notification for Ev {}
    /// struct Session { user: u32 }
    ///
    /// let center = NotificationCenter::new();
    /// let session = Arc::new(Session { user: 1 });
    /// let _mine = center
    ///     .observer::<Ev>()
    ///     .sender(SenderId::of(&session))
    ///     .inline(|_| {});
    /// let same = session.clone();
    /// assert_eq!(center.post_from(SenderId::of(&same), Ev).received, 1); // any clone
    /// let other = Arc::new(Session { user: 2 });
    /// assert_ne!(SenderId::of(&other), SenderId::of(&session));
    /// assert_eq!(center.post_from(SenderId::of(&other), Ev).received, 0);
    /// # let _ = (session.user, other.user);
    /// ```
    pub fn of<T: ?Sized>(object: &Arc<T>) -> Self {
        SenderId(Arc::as_ptr(object).cast::<()>() as usize as u64)
    }

    /// An id from your own numbering (a user id, a connection number...).
    ///
    /// ```
    /// # use herald::{Notification, NotificationCenter, SenderId};
    /// # struct Ev; impl Notification for Ev {}
    /// const ADMIN: SenderId = SenderId::from_raw(0); // usable in constants
    ///
    /// let center = NotificationCenter::new();
    /// let _user_42 = center
    ///     .observer::<Ev>()
    ///     .sender(SenderId::from_raw(42))
    ///     .inline(|_| {});
    /// assert_eq!(SenderId::from_raw(42), SenderId::from_raw(42));
    /// assert_eq!(center.post_from(SenderId::from_raw(42), Ev).received, 1);
    /// assert_eq!(center.post_from(ADMIN, Ev).received, 0);
    /// ```
    pub const fn from_raw(raw: u64) -> Self {
        SenderId(raw)
    }

    /// The raw number inside.
    ///
    /// ```
    /// use herald::SenderId;
    ///
    /// assert_eq!(SenderId::from_raw(42).as_raw(), 42);
    /// // Round-trips, e.g. through a wire format.
    /// let fresh = SenderId::new();
    /// assert_eq!(SenderId::from_raw(fresh.as_raw()), fresh);
    /// ```
    pub const fn as_raw(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for SenderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SenderId({:#x})", self.0)
    }
}

/// Reported when an observer panicked while handling a notification (contract 4).
///
/// Posted into the same center, so any observer can log or count it. A panic inside an
/// observer of `ObserverPanicked` itself is counted but not reported again.
///
/// ```
/// use herald::{Notification, NotificationCenter, ObserverPanicked};
/// use std::sync::{Arc, Mutex};
///
/// struct Ev;
/// impl Notification for Ev { fn name() -> &'static str { "doc.ev" } }
///
/// let center = NotificationCenter::new();
/// let reports = Arc::new(Mutex::new(Vec::new()));
/// let r = reports.clone();
/// let _log = center.observe(move |p: &ObserverPanicked| r.lock().unwrap().push(p.clone()));
/// let faulty = center.observe(|_: &Ev| panic!("boom"));
/// assert_eq!(center.post(Ev).panicked, 1);
///
/// let reports = reports.lock().unwrap();
/// assert_eq!(reports.len(), 1);
/// assert_eq!(reports[0].notification, "doc.ev");
/// assert_eq!(reports[0].observer, faulty.id());
/// assert_eq!(reports[0].message, "boom");
/// ```
#[derive(Debug, Clone)]
pub struct ObserverPanicked {
    /// [`Notification::name`] of the notification being delivered.
    pub notification: &'static str,
    /// The observer that panicked.
    pub observer: crate::ObserverId,
    /// The panic message, when the payload was a string.
    pub message: String,
}

impl Notification for ObserverPanicked {
    fn name() -> &'static str {
        "herald.observer.panicked"
    }
}

/// Reported when a post reached no observer at all (contract 7).
///
/// Posted into the same center only when someone observes `DeadNotification`; the
/// per-type [`Stats::dead`](crate::Stats::dead) counter counts them either way.
///
/// ```
/// use herald::{DeadNotification, Notification, NotificationCenter, SenderId};
/// use std::sync::{Arc, Mutex};
///
/// struct Lonely;
/// impl Notification for Lonely { fn name() -> &'static str { "app.lonely" } }
///
/// let center = NotificationCenter::new();
/// let dead = Arc::new(Mutex::new(Vec::new()));
/// let d = dead.clone();
/// let _watch = center.observe(move |n: &DeadNotification| {
///     d.lock().unwrap().push((n.notification, n.sender));
/// });
/// let job = SenderId::new();
/// center.post_from(job, Lonely);
/// center.post(Lonely);
/// assert_eq!(*dead.lock().unwrap(), [("app.lonely", Some(job)), ("app.lonely", None)]);
/// assert_eq!(center.stats::<Lonely>().dead, 2);
/// ```
#[derive(Debug, Clone)]
pub struct DeadNotification {
    /// [`Notification::name`] of the notification nobody received.
    pub notification: &'static str,
    /// The sender it was posted from, if any.
    pub sender: Option<SenderId>,
}

impl Notification for DeadNotification {
    fn name() -> &'static str {
        "herald.notification.dead"
    }
}

/// Identifies one subscription, in reports such as [`ObserverPanicked`](crate::ObserverPanicked).
///
/// ```
/// # use herald::{Notification, NotificationCenter};
/// # struct Ev; impl Notification for Ev {}
/// let center = NotificationCenter::new();
/// let a = center.observe(|_: &Ev| {});
/// let b = center.observe(|_: &Ev| {});
/// assert_ne!(a.id(), b.id());
/// // Buffered subscribers are listed by id in the type's counters.
/// let events = center.stream::<Ev>();
/// assert_eq!(center.stats::<Ev>().buffers[0].observer, events.id());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObserverId(u64);

static NEXT_OBSERVER: AtomicU64 = AtomicU64::new(1);

impl ObserverId {
    pub(crate) fn next() -> Self {
        ObserverId(NEXT_OBSERVER.fetch_add(1, Ordering::Relaxed))
    }

    /// The id as a number (unique within the process).
    ///
    /// ```
    /// # use herald::{Notification, NotificationCenter};
    /// # struct Ev; impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let (a, b) = (center.observe(|_: &Ev| {}), center.observe(|_: &Ev| {}));
    /// assert_ne!(a.id().as_u64(), b.id().as_u64());
    /// assert_eq!(a.id().to_string(), format!("observer #{}", a.id().as_u64()));
    /// ```
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for ObserverId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObserverId({})", self.0)
    }
}

impl fmt::Display for ObserverId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "observer #{}", self.0)
    }
}

/// A notification seen through a wildcard observer: its name, its sender, and the value
/// behind a downcast.
///
/// ```
/// use herald::{NotificationCenter, Notification};
///
/// #[derive(Debug)]
/// struct MessageReceived(String);
/// impl Notification for MessageReceived {
///     fn name() -> &'static str { "chat.message.received" }
/// }
///
/// let center = NotificationCenter::new();
/// let _log = center.observer::<herald::Wildcard>().inline(|n| {
///     if let Some(m) = n.downcast_ref::<MessageReceived>() {
///         println!("{}: {}", n.name(), m.0);
///     }
/// });
/// assert_eq!(center.post(MessageReceived("hi".into())).received, 1);
/// ```
#[derive(Clone, Copy)]
pub struct AnyNotification<'a> {
    name: &'static str,
    value_name: &'a str,
    sender: Option<SenderId>,
    value: &'a (dyn Any + Send + Sync),
}

impl<'a> AnyNotification<'a> {
    pub(crate) fn new<N: Notification>(value: &'a N, sender: Option<SenderId>) -> Self {
        AnyNotification {
            name: N::name(),
            value_name: if N::NAMES_VARY {
                value.value_name()
            } else {
                N::name()
            },
            sender,
            value,
        }
    }

    /// The notification type's [`Notification::name`].
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification, Wildcard};
    /// # struct Ev; impl Notification for Ev { fn name() -> &'static str { "doc.ev" } }
    /// let center = NotificationCenter::new();
    /// let _sub = center.observer::<Wildcard>().inline(|n| assert_eq!(n.name(), "doc.ev"));
    /// // The observer's panic would be isolated and counted: check that it ran, and passed.
    /// let report = center.post(Ev);
    /// assert_eq!((report.received, report.panicked), (1, 0));
    /// ```
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// This value's name ([`Notification::value_name`]): the type's name, unless the type
    /// names its values one by one ([`Notification::NAMES_VARY`]).
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification, Wildcard};
    /// # struct Ev; impl Notification for Ev { fn name() -> &'static str { "doc.ev" } }
    /// let center = NotificationCenter::new();
    /// let _sub = center.observer::<Wildcard>().inline(|n| assert_eq!(n.value_name(), "doc.ev"));
    /// // The observer's panic would be isolated and counted: check that it ran, and passed.
    /// let report = center.post(Ev);
    /// assert_eq!((report.received, report.panicked), (1, 0));
    /// ```
    pub fn value_name(&self) -> &'a str {
        self.value_name
    }

    /// Who posted it, if it was posted with `post_from`.
    ///
    /// ```
    /// # use herald::{Notification, NotificationCenter, SenderId, Wildcard};
    /// # use std::sync::{Arc, Mutex};
    /// # struct Ev; impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let senders = Arc::new(Mutex::new(Vec::new()));
    /// let s = senders.clone();
    /// let _log = center
    ///     .observer::<Wildcard>()
    ///     .inline(move |n| s.lock().unwrap().push(n.sender()));
    /// let job = SenderId::new();
    /// center.post_from(job, Ev);
    /// center.post(Ev);
    /// assert_eq!(*senders.lock().unwrap(), [Some(job), None]);
    /// ```
    pub fn sender(&self) -> Option<SenderId> {
        self.sender
    }

    /// The value, if it is an `N`.
    ///
    /// ```
    /// # use herald::{Notification, NotificationCenter, Wildcard};
    /// # use std::sync::{Arc, Mutex};
    /// struct Price(u64);
    /// impl Notification for Price {}
    /// struct Tick;
    /// impl Notification for Tick {}
    ///
    /// let center = NotificationCenter::new();
    /// let prices = Arc::new(Mutex::new(Vec::new()));
    /// let p = prices.clone();
    /// let _log = center.observer::<Wildcard>().inline(move |n| {
    ///     p.lock().unwrap().push(n.downcast_ref::<Price>().map(|price| price.0));
    /// });
    /// center.post(Price(5));
    /// center.post(Tick);
    /// center.post(Price(7));
    /// assert_eq!(*prices.lock().unwrap(), [Some(5), None, Some(7)]);
    /// ```
    pub fn downcast_ref<N: Notification>(&self) -> Option<&'a N> {
        self.value.downcast_ref::<N>()
    }

    /// Whether the value is an `N`.
    ///
    /// ```
    /// # use herald::{Notification, NotificationCenter, Wildcard};
    /// # use std::sync::Arc;
    /// # use std::sync::atomic::{AtomicU32, Ordering};
    /// # struct Tick; impl Notification for Tick {}
    /// # struct Saved; impl Notification for Saved {}
    /// let center = NotificationCenter::new();
    /// let ticks = Arc::new(AtomicU32::new(0));
    /// let t = ticks.clone();
    /// let _count = center.observer::<Wildcard>().inline(move |n| {
    ///     if n.is::<Tick>() {
    ///         t.fetch_add(1, Ordering::SeqCst);
    ///     }
    /// });
    /// center.post(Tick);
    /// center.post(Saved);
    /// center.post(Tick);
    /// assert_eq!(ticks.load(Ordering::SeqCst), 2);
    /// ```
    pub fn is<N: Notification>(&self) -> bool {
        self.value.type_id() == TypeId::of::<N>()
    }
}

impl fmt::Debug for AnyNotification<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnyNotification")
            .field("name", &self.value_name)
            .field("sender", &self.sender)
            .finish_non_exhaustive()
    }
}
