//! Wildcard and family observation (contract 9): one observer for every notification, or for
//! every notification whose name starts with a prefix, receiving a type-erased reference.

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::Arc;

use crate::hub::subscription::Subscription;
use crate::{Notification, NotificationCenter, ObserverId, SenderId};

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
/// let _log = center.observe_all(|n| {
///     if let Some(m) = n.downcast_ref::<MessageReceived>() {
///         println!("{}: {}", n.name(), m.0);
///     }
/// });
/// assert_eq!(center.post(MessageReceived("hi".into())).received, 1);
/// ```
#[derive(Clone, Copy)]
pub struct AnyNotification<'a> {
    name: &'static str,
    sender: Option<SenderId>,
    value: &'a (dyn Any + Send + Sync),
}

impl<'a> AnyNotification<'a> {
    pub(crate) fn new<N: Notification>(value: &'a N, sender: Option<SenderId>) -> Self {
        AnyNotification {
            name: N::name(),
            sender,
            value,
        }
    }

    /// The notification's [`Notification::name`].
    pub fn name(&self) -> &'static str {
        self.name
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
            .field("name", &self.name)
            .field("sender", &self.sender)
            .finish_non_exhaustive()
    }
}

/// A wildcard observer's callback.
pub(crate) type WildFn = Box<dyn Fn(&AnyNotification<'_>) + Send + Sync>;

/// One wildcard subscription, shared by every channel it observes.
pub(crate) struct WildSpec {
    pub(crate) id: ObserverId,
    pub(crate) prefix: Option<String>,
    pub(crate) sender: Option<SenderId>,
    pub(crate) priority: i32,
    pub(crate) f: WildFn,
}

impl WildSpec {
    /// Whether a notification type with `name` is observed.
    pub(crate) fn matches(&self, name: &str) -> bool {
        self.prefix.as_deref().is_none_or(|p| name.starts_with(p))
    }
}

/// Builds a wildcard subscription: every type, or a family by name prefix.
///
/// Made by [`NotificationCenter::observer_all`] and [`NotificationCenter::observer_family`].
/// The options mean what they mean on [`ObserverBuilder`](crate::ObserverBuilder); wildcard
/// observers keep the same ordering (priority, then registration, interleaved with typed
/// observers), panic isolation and quiescent unsubscribe as typed ones. Types nobody observes
/// by wildcard pay nothing for the wildcards of others.
///
/// ```
/// use herald::{NotificationCenter, Notification};
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
///     .observer_family("chat.")
///     .priority(1)
///     .inline(move |n| s.lock().unwrap().push(n.name()));
/// center.post(Joined);
/// center.post(Tick);
/// assert_eq!(*seen.lock().unwrap(), ["chat.member.joined"]);
/// ```
#[must_use = "a wildcard builder does nothing until .inline()"]
pub struct WildcardBuilder {
    center: NotificationCenter,
    prefix: Option<String>,
    sender: Option<SenderId>,
    priority: i32,
}

impl WildcardBuilder {
    pub(crate) fn new(center: NotificationCenter, prefix: Option<String>) -> Self {
        WildcardBuilder {
            center,
            prefix,
            sender: None,
            priority: 0,
        }
    }

    /// Only notifications posted by `sender` (contract 8).
    pub fn sender(mut self, sender: SenderId) -> Self {
        self.sender = Some(sender);
        self
    }

    /// Priority among all observers of each type (higher first; default 0).
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Calls `observer` on the posting thread for every matching notification.
    pub fn inline<F>(self, observer: F) -> Subscription
    where
        F: Fn(&AnyNotification<'_>) + Send + Sync + 'static,
    {
        let spec = Arc::new(WildSpec {
            id: ObserverId::next(),
            prefix: self.prefix,
            sender: self.sender,
            priority: self.priority,
            f: Box::new(observer),
        });
        self.center.inner.add_wildcard(spec)
    }
}

impl fmt::Debug for WildcardBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WildcardBuilder")
            .field("prefix", &self.prefix)
            .field("sender", &self.sender)
            .field("priority", &self.priority)
            .finish()
    }
}
