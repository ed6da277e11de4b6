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
    fn name() -> &'static str {
        std::any::type_name::<Self>()
    }

    /// Whether each value has a name of its own ([`value_name`](Self::value_name)), as a
    /// notification relayed from elsewhere under the name it was posted with. Family observers
    /// then match each value's name against their prefix, not the type's. Default: false.
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
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        SenderId(NEXT_SENDER.fetch_sub(1, Ordering::Relaxed))
    }

    /// The id of the object an `Arc` points to (its address): every clone of the `Arc` gives
    /// the same id while the object lives.
    pub fn of<T: ?Sized>(object: &Arc<T>) -> Self {
        SenderId(Arc::as_ptr(object).cast::<()>() as usize as u64)
    }

    /// An id from your own numbering (a user id, a connection number...).
    pub const fn from_raw(raw: u64) -> Self {
        SenderId(raw)
    }

    /// The raw number inside.
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
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObserverId(u64);

static NEXT_OBSERVER: AtomicU64 = AtomicU64::new(1);

impl ObserverId {
    pub(crate) fn next() -> Self {
        ObserverId(NEXT_OBSERVER.fetch_add(1, Ordering::Relaxed))
    }

    /// The id as a number (unique within the process).
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
    /// center.post(Ev);
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
    /// center.post(Ev);
    /// ```
    pub fn value_name(&self) -> &'a str {
        self.value_name
    }

    /// Who posted it, if it was posted with `post_from`.
    pub fn sender(&self) -> Option<SenderId> {
        self.sender
    }

    /// The value, if it is an `N`.
    pub fn downcast_ref<N: Notification>(&self) -> Option<&'a N> {
        self.value.downcast_ref::<N>()
    }

    /// Whether the value is an `N`.
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
