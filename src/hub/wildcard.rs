//! Wildcard and family observation (contract 9): one observer for every notification, or for
//! every notification whose name starts with a prefix, receiving a type-erased reference.

use std::fmt;
use std::sync::Arc;

use crate::hub::engine::{AnyFn, Meta};
use crate::hub::subscription::Subscription;
use crate::{AnyNotification, NotificationCenter, SenderId};

/// One wildcard subscription, shared by every channel it observes.
pub(crate) struct WildSpec {
    pub(crate) meta: Meta,
    pub(crate) prefix: Option<String>,
    pub(crate) f: AnyFn,
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
            meta: Meta::new(self.priority, self.sender),
            prefix: self.prefix,
            f: Arc::new(observer),
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
