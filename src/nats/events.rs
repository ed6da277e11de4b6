//! What the bridge posts into centers: [`RemoteNotification`] (a notification under an imported
//! family that has no registered type) and the bridge's own reports, so that no loss is silent.

use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::{BridgeId, Origin};
use crate::Notification;

/// A notification imported under a family ([`NatsBridge::import_family`]) whose name has no
/// type registered with [`with`](super::FamilyImport::with): its name, its JSON, its origin.
///
/// It is posted (with its origin's sender) like any imported notification. Its type's
/// [`Notification::name`] is the fixed `"herald.nats.remote"`, because the hub names types, but
/// each value keeps its real [`name`](Self::name) as its
/// [`value_name`](Notification::value_name): a [`Wildcard`](crate::Wildcard) observer sees it
/// under that name ([`AnyNotification::value_name`](crate::AnyNotification::value_name), or
/// [`downcast_ref`](crate::AnyNotification::downcast_ref) and [`name`](Self::name)), and a
/// family observer sees it when that name is in its family (see the module docs).
///
/// ```
/// use herald::nats::RemoteNotification;
/// use herald::NotificationCenter;
///
/// let center = NotificationCenter::new();
/// let _log = center.observer::<herald::Wildcard>().inline(|n| {
///     if let Some(r) = n.downcast_ref::<RemoteNotification>() {
///         println!("{} from {}: {}", r.name(), r.origin(), r.json());
///     }
/// });
/// // Under its own name, in its family: `shop.order.shipped` from another process.
/// let _shop = center
///     .observer::<herald::Wildcard>()
///     .family("shop.")
///     .inline(|n| println!("{} happened", n.value_name()));
/// ```
///
/// [`NatsBridge::import_family`]: super::NatsBridge::import_family
#[derive(Clone)]
pub struct RemoteNotification {
    pub(crate) name: Arc<str>,
    pub(crate) json: Box<str>,
    pub(crate) origin: Arc<Origin>,
}

impl RemoteNotification {
    /// The notification's name as the exporting process declared it (`shop.order.placed`).
    ///
    /// ```
    /// use herald::nats::RemoteNotification;
    /// use herald::NotificationCenter;
    ///
    /// let center = NotificationCenter::new();
    /// let _refunds = center.observe(|r: &RemoteNotification| {
    ///     if r.name().starts_with("shop.refund.") {
    ///         println!("refund event {}", r.name());
    ///     }
    /// });
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its JSON, as received (checked to be valid JSON).
    ///
    /// ```
    /// use herald::nats::RemoteNotification;
    /// use herald::NotificationCenter;
    ///
    /// let center = NotificationCenter::new();
    /// // An audit log of everything the family brings that has no local type.
    /// let _audit = center.observe(|r: &RemoteNotification| println!("{} {}", r.name(), r.json()));
    /// ```
    pub fn json(&self) -> &str {
        &self.json
    }

    /// Where it was posted.
    ///
    /// ```
    /// use herald::nats::RemoteNotification;
    /// use herald::NotificationCenter;
    ///
    /// let center = NotificationCenter::new();
    /// let _log = center.observe(|r: &RemoteNotification| match r.origin().bridge() {
    ///     Some(bridge) => println!("{} from bridge {bridge}", r.name()),
    ///     None => println!("{} from a NATS client that is not herald", r.name()),
    /// });
    /// ```
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Reads the JSON as a `T`.
    ///
    /// ```
    /// use herald::nats::RemoteNotification;
    /// use herald::NotificationCenter;
    /// use serde::Deserialize;
    ///
    /// /// The part of another service's refund event that this process reads.
    /// #[derive(Deserialize)]
    /// struct Refund { order: u64, cents: i64 }
    ///
    /// let center = NotificationCenter::new();
    /// let _refunds = center.observe(|r: &RemoteNotification| {
    ///     if r.name() == "shop.refund.issued" {
    ///         match r.decode::<Refund>() {
    ///             Ok(refund) => println!("order {}: {} cents back", refund.order, refund.cents),
    ///             Err(e) => eprintln!("unexpected refund JSON: {e}"),
    ///         }
    ///     }
    /// });
    /// ```
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.json)
    }
}

impl fmt::Debug for RemoteNotification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteNotification")
            .field("name", &self.name)
            .field("origin", &self.origin)
            .field("json", &self.json)
            .finish()
    }
}

impl Notification for RemoteNotification {
    fn name() -> &'static str {
        "herald.nats.remote"
    }

    // Each value keeps the name it was posted with, so family and wildcard observers match
    // and read it under that name (`shop.order.shipped`), as if it had been posted here.
    const NAMES_VARY: bool = true;

    fn value_name(&self) -> &str {
        &self.name
    }
}

/// Notifications from `origin` on `subject` that never arrived: the sequence numbers jumped
/// (a disconnect, a slow consumer dropping messages in the client, a full outbox at the
/// exporting process). Counted in [`ImportStats::lost`](super::ImportStats) too.
///
/// ```
/// use herald::nats::RemoteLost;
/// use herald::NotificationCenter;
/// let center = NotificationCenter::new();
/// let _alarm = center.observe(|l: &RemoteLost| eprintln!("lost {} on {} from {}", l.lost, l.subject, l.origin));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RemoteLost {
    /// The NATS subject.
    pub subject: String,
    /// Who sent them.
    pub origin: Origin,
    /// How many.
    pub lost: u64,
}

impl Notification for RemoteLost {
    fn name() -> &'static str {
        "herald.nats.lost"
    }
}

/// A message could not be read as the notification its subject names (its JSON does not fit
/// the local type, or it is not JSON, or it is of an unknown wire version). Nothing is posted
/// for it; this report is.
///
/// ```
/// use herald::nats::RemoteUndecodable;
/// use herald::NotificationCenter;
/// let center = NotificationCenter::new();
/// let _alarm = center.observe(|u: &RemoteUndecodable| eprintln!("{} from {}: {}", u.subject, u.origin, u.error));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RemoteUndecodable {
    /// The NATS subject.
    pub subject: String,
    /// Who sent it.
    pub origin: Origin,
    /// Why it could not be read.
    pub error: String,
}

impl Notification for RemoteUndecodable {
    fn name() -> &'static str {
        "herald.nats.undecodable"
    }
}

/// Exported notifications this process dropped before they reached the server: the bridge's
/// outbox was full (the server unreachable for long, or posts faster than the network), or
/// one could not be serialized. Importers see the same loss as a [`RemoteLost`] gap.
///
/// ```
/// use herald::nats::ExportDropped;
/// use herald::NotificationCenter;
/// let center = NotificationCenter::new();
/// let _alarm = center.observe(|d: &ExportDropped| eprintln!("{} not sent on {}", d.dropped, d.subject));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ExportDropped {
    /// The NATS subject.
    pub subject: String,
    /// How many notifications, since the previous report.
    pub dropped: u64,
    /// Why (the last reason seen).
    pub reason: String,
}

impl Notification for ExportDropped {
    fn name() -> &'static str {
        "herald.nats.export.dropped"
    }
}

/// The state of a bridge's connection to its NATS server.
///
/// ```
/// use herald::nats::ConnectionState;
///
/// fn health(state: ConnectionState) -> &'static str {
///     match state {
///         ConnectionState::Connected => "up",
///         ConnectionState::Disconnected => "reconnecting",
///         ConnectionState::Closed => "stopped",
///         _ => "unknown",
///     }
/// }
///
/// assert_eq!(health(ConnectionState::Disconnected), "reconnecting");
/// // With a bridge: `health(bridge.state())`.
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectionState {
    /// Connected: messages flow.
    Connected,
    /// The connection is lost; the bridge reconnects with backoff. Exports wait in the outbox
    /// (bounded); messages published by others meanwhile are missed and counted.
    Disconnected,
    /// Shut down for good.
    Closed,
}

/// A bridge's connection changed state. Posted into every center the bridge imports into or
/// exports from; [`NatsBridge::state`](super::NatsBridge::state) and
/// [`NatsBridge::watch_state`](super::NatsBridge::watch_state) read the same.
///
/// ```
/// use herald::nats::{ConnectionChanged, ConnectionState};
/// use herald::NotificationCenter;
/// let center = NotificationCenter::new();
/// let _health = center.observe(|c: &ConnectionChanged| {
///     if c.state == ConnectionState::Disconnected { eprintln!("NATS down: {}", c.detail) }
/// });
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectionChanged {
    /// The bridge.
    pub bridge: BridgeId,
    /// Its new state.
    pub state: ConnectionState,
    /// What the client said.
    pub detail: String,
}

impl Notification for ConnectionChanged {
    fn name() -> &'static str {
        "herald.nats.connection"
    }
}
