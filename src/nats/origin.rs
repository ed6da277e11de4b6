//! Where a remote notification comes from: [`BridgeId`], [`Origin`], and the process-wide table
//! that maps each origin to the [`SenderId`] its notifications are posted with.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::RwLock;

use crate::SenderId;

/// The identity of one [`NatsBridge`](super::NatsBridge): 128 random bits, fresh for every
/// bridge (two bridges in one process have different ids). On the wire it is 32 lower-case
/// hex digits (in the reply subject of each message, see [`wire`](super::wire)).
///
/// ```
/// use herald::nats::BridgeId;
/// let a = BridgeId::random();
/// let b = BridgeId::random();
/// assert_ne!(a, b);
/// assert_eq!(BridgeId::parse(&a.to_string()), Some(a));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BridgeId(u128);

impl BridgeId {
    /// A new random id (from the process's random hash keys, the clock, the process id and a
    /// counter).
    ///
    /// ```
    /// use herald::nats::BridgeId;
    ///
    /// let id = BridgeId::random();
    /// assert_ne!(id, BridgeId::random());
    /// assert_eq!(id.to_string().len(), 32); // its wire form
    /// ```
    pub fn random() -> BridgeId {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let half = |salt: u64| {
            let mut h = std::hash::RandomState::new().build_hasher();
            h.write_u64(salt);
            h.write_u64(n);
            h.write_u128(nanos);
            h.write_u32(std::process::id());
            h.finish()
        };
        BridgeId((u128::from(half(0x6865_7261_6c64)) << 64) | u128::from(half(0x6e61_7473)))
    }

    /// Reads the wire form (32 hex digits; upper case is read too, though the wire writes
    /// lower case).
    ///
    /// ```
    /// use herald::nats::BridgeId;
    ///
    /// let id = BridgeId::parse("9f86d081884c7d659a2feaa0c55ad015").unwrap();
    /// assert_eq!(id.to_string(), "9f86d081884c7d659a2feaa0c55ad015");
    /// assert_eq!(BridgeId::parse("9f86d081"), None); // too short
    /// assert_eq!(BridgeId::parse("not-a-bridge-id-not-a-bridge-id!"), None);
    /// ```
    pub fn parse(s: &str) -> Option<BridgeId> {
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u128::from_str_radix(s, 16).ok().map(BridgeId)
    }

    /// The id as a number.
    ///
    /// ```
    /// use herald::nats::BridgeId;
    ///
    /// let id = BridgeId::parse("0000000000000000000000000000002a").unwrap();
    /// assert_eq!(id.as_u128(), 42);
    /// ```
    pub fn as_u128(self) -> u128 {
        self.0
    }
}

impl fmt::Display for BridgeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for BridgeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BridgeId({:032x})", self.0)
    }
}

/// Where an imported notification was posted: the bridge that exported it and the sender that
/// posted it there (a raw [`SenderId`] of that process, when it was posted with `post_from`).
///
/// Imported notifications are posted into the local center with
/// [`post_from`](crate::NotificationCenter::post_from) and the [`SenderId`] of their origin
/// ([`Origin::sender_id`]), one fresh id per origin for the life of the process. So:
/// - a local `.sender(id)` filter never matches a remote notification (no local poster holds
///   that id; ids made by [`SenderId::new`] are unique in the process);
/// - an origin filter is the same option: `.sender(origin.sender_id())`;
/// - wildcard observers read [`AnyNotification::sender`](crate::AnyNotification::sender) and
///   ask [`Origin::of`] which process it came from.
///
/// ```
/// use herald::nats::{BridgeId, Origin};
/// use herald::SenderId;
///
/// let remote = Origin::new(BridgeId::random(), Some(SenderId::from_raw(7)));
/// let id = remote.sender_id();
/// assert_eq!(id, remote.sender_id()); // stable
/// assert_eq!(Origin::of(id), Some(remote.clone()));
/// assert_eq!(Origin::of(SenderId::new()), None); // a local sender
/// assert_ne!(id, SenderId::from_raw(7)); // never the remote process's own number
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    bridge: Option<BridgeId>,
    sender: Option<SenderId>,
}

impl Origin {
    /// The origin of notifications exported by `bridge`, posted there by `sender` (`None`:
    /// posted without a sender).
    ///
    /// ```
    /// use herald::nats::{BridgeId, Origin};
    /// use herald::SenderId;
    ///
    /// let bridge = BridgeId::random();
    /// let origin = Origin::new(bridge, Some(SenderId::from_raw(7)));
    /// assert_eq!(origin.bridge(), Some(bridge));
    /// assert_eq!(origin.remote_sender(), Some(SenderId::from_raw(7)));
    /// assert!(!origin.is_foreign());
    /// ```
    pub fn new(bridge: BridgeId, sender: Option<SenderId>) -> Origin {
        Origin {
            bridge: Some(bridge),
            sender,
        }
    }

    /// The origin of messages from a NATS publisher that is not a herald bridge.
    ///
    /// ```
    /// use herald::nats::Origin;
    ///
    /// let foreign = Origin::foreign();
    /// assert!(foreign.is_foreign());
    /// assert_eq!(foreign.bridge(), None);
    /// assert_eq!(foreign.to_string(), "foreign publisher");
    /// ```
    pub fn foreign() -> Origin {
        Origin {
            bridge: None,
            sender: None,
        }
    }

    /// The exporting bridge (`None` for a foreign publisher).
    ///
    /// ```
    /// use herald::nats::{BridgeId, Origin};
    ///
    /// let bridge = BridgeId::random();
    /// assert_eq!(Origin::new(bridge, None).bridge(), Some(bridge));
    /// assert_eq!(Origin::foreign().bridge(), None);
    /// ```
    pub fn bridge(&self) -> Option<BridgeId> {
        self.bridge
    }

    /// The sender inside the exporting process, as that process numbered it.
    ///
    /// ```
    /// use herald::nats::{BridgeId, Origin};
    /// use herald::SenderId;
    ///
    /// let bridge = BridgeId::random();
    /// let origin = Origin::new(bridge, Some(SenderId::from_raw(7)));
    /// assert_eq!(origin.remote_sender(), Some(SenderId::from_raw(7)));
    /// // Not this process's number: here it is posted with `sender_id()`.
    /// assert_ne!(origin.sender_id(), SenderId::from_raw(7));
    /// assert_eq!(Origin::new(bridge, None).remote_sender(), None); // posted with `post`
    /// ```
    pub fn remote_sender(&self) -> Option<SenderId> {
        self.sender
    }

    /// Whether this is a publisher that is not a herald bridge.
    ///
    /// ```
    /// use herald::nats::{BridgeId, Origin};
    ///
    /// assert!(Origin::foreign().is_foreign());
    /// assert!(!Origin::new(BridgeId::random(), None).is_foreign());
    /// ```
    pub fn is_foreign(&self) -> bool {
        self.bridge.is_none()
    }

    /// The [`SenderId`] notifications from this origin are posted with in this process: made
    /// on first use, the same for the life of the process.
    ///
    /// **Memory:** the first use records the origin in a process-wide table that never
    /// shrinks (150 to 300 bytes an origin; imports record every origin they post a
    /// notification from, not the origins of messages they cannot read).
    /// It cannot: this id must stay the same for the filters made with it, [`Origin::of`]
    /// must answer for notifications still queued, and exports find imported notifications
    /// there (never sending them again is what makes loops impossible). Origins are what a
    /// publisher's message says, so a publisher forging ever-new ones grows the table without
    /// bound: let only trusted herald bridges publish on imported subjects (NATS subject
    /// permissions). See the [module](super#origins).
    ///
    /// ```
    /// use herald::nats::{BridgeId, Origin};
    /// use herald::{Notification, NotificationCenter};
    ///
    /// struct OrderPlaced;
    /// impl Notification for OrderPlaced {
    ///     fn name() -> &'static str { "shop.order.placed" }
    /// }
    ///
    /// // The orders a remote bridge exported from plain `post`s (its id from configuration, say).
    /// let eu = Origin::new(BridgeId::parse("9f86d081884c7d659a2feaa0c55ad015").unwrap(), None);
    /// let center = NotificationCenter::new();
    /// let _eu_orders = center.observer::<OrderPlaced>().sender(eu.sender_id()).inline(|_| {});
    /// assert_eq!(eu.sender_id(), eu.sender_id()); // the same for the life of the process
    /// // An import posts the bridge's orders like this:
    /// assert_eq!(center.post_from(eu.sender_id(), OrderPlaced).received, 1);
    /// assert_eq!(center.post(OrderPlaced).received, 0);
    /// ```
    pub fn sender_id(&self) -> SenderId {
        table().sender_id(self)
    }

    /// The origin of a notification posted with `sender`, if it was imported by a bridge.
    /// Answers for every origin this process ever imported from, for the life of the process
    /// (which is why the table behind it never shrinks: see [`Origin::sender_id`]).
    ///
    /// ```
    /// use herald::nats::{BridgeId, Origin};
    /// use herald::{NotificationCenter, SenderId, Wildcard};
    ///
    /// let center = NotificationCenter::new();
    /// let _where = center.observer::<Wildcard>().inline(|n| {
    ///     match n.sender().and_then(Origin::of) {
    ///         Some(origin) => println!("{} from {origin}", n.value_name()),
    ///         None => println!("{} from this process", n.value_name()),
    ///     }
    /// });
    ///
    /// let remote = Origin::new(BridgeId::random(), None);
    /// assert_eq!(Origin::of(remote.sender_id()), Some(remote));
    /// assert_eq!(Origin::of(SenderId::new()), None);
    /// ```
    pub fn of(sender: SenderId) -> Option<Origin> {
        table().by_sender.read().get(&sender).cloned()
    }

    /// Whether `sender` belongs to an imported notification (used by exports: an imported
    /// notification is never exported again, which makes loops impossible).
    pub(crate) fn is_remote(sender: SenderId) -> bool {
        table().by_sender.read().contains_key(&sender)
    }

    /// The origin as the wire says it (a foreign publisher's sender token is not its
    /// sender), without recording it in the table.
    pub(crate) fn from_wire(bridge: Option<BridgeId>, sender: Option<u64>) -> Origin {
        Origin {
            bridge,
            sender: bridge.and(sender.map(SenderId::from_raw)),
        }
    }

    /// Whether the table holds this origin (made its [`SenderId`]).
    #[cfg(test)]
    pub(crate) fn is_recorded(&self) -> bool {
        table().by_origin.read().contains_key(self)
    }
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.bridge, self.sender) {
            (None, _) => f.write_str("foreign publisher"),
            (Some(b), None) => write!(f, "bridge {b}"),
            (Some(b), Some(s)) => write!(f, "bridge {b}, sender {:#x}", s.as_raw()),
        }
    }
}

/// The process-wide origin ↔ sender table. It grows by one entry per distinct origin posted
/// from (remote bridge × remote sender; an import records an origin only once a notification
/// from it decoded, so unreadable messages add nothing), 150 to 300 bytes each (two maps of 64-byte entries, at
/// hashbrown's load), and never shrinks. Forgetting an origin would give it a new id on its
/// next message (breaking the filters made with the old one, and `sender_id`'s "the same for
/// the life of the process"), make `Origin::of` answer `None` for its notifications still in
/// queues and stream buffers, and make `is_remote` call them local, so an export would send
/// an imported notification again (breaking the no-loop rule); an idle expiry does not help,
/// as a stream buffer may hold a value for any time. Nor can an origin's id be derived from
/// the origin to survive forgetting it: ids come from `SenderId::new` (unique in the
/// process, which is what keeps remote ids apart from local ones). The keys are
/// peer-controlled: the defence is the server's subject permissions (see the module docs).
struct Table {
    by_origin: RwLock<HashMap<Origin, SenderId>>,
    by_sender: RwLock<HashMap<SenderId, Origin>>,
}

impl Table {
    fn sender_id(&self, origin: &Origin) -> SenderId {
        if let Some(id) = self.by_origin.read().get(origin) {
            return *id;
        }
        let mut by_origin = self.by_origin.write();
        if let Some(id) = by_origin.get(origin) {
            return *id;
        }
        let id = SenderId::new();
        // Readers of `by_sender` must find the id before any notification carries it.
        self.by_sender.write().insert(id, origin.clone());
        by_origin.insert(origin.clone(), id);
        id
    }
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| Table {
        by_origin: RwLock::new(HashMap::new()),
        by_sender: RwLock::new(HashMap::new()),
    })
}

/// The wire's view of an origin: the origin and sender tokens of the reply subject.
type WireOrigin = (Option<BridgeId>, Option<u64>);

/// The most origins an [`OriginCache`] keeps.
const ORIGIN_CACHE_LIMIT: usize = 4096;

/// A per-task cache in front of the table, keyed the way the wire says it, with the last
/// origin at hand (a stream of messages mostly comes from one). At most
/// [`ORIGIN_CACHE_LIMIT`] origins: it starts afresh past that.
#[derive(Default)]
pub(crate) struct OriginCache {
    map: HashMap<WireOrigin, (Arc<Origin>, SenderId)>,
    last: Option<(WireOrigin, SenderId)>,
}

impl OriginCache {
    pub(crate) fn get(
        &mut self,
        bridge: Option<BridgeId>,
        sender: Option<u64>,
    ) -> (Arc<Origin>, SenderId) {
        let key = (bridge, sender);
        if let Some(found) = self.map.get(&key) {
            return found.clone();
        }
        // Keys come from peers: start afresh past the limit. Only a cache: the table
        // answers with the same id again, and a new `Arc` holds an equal origin.
        if self.map.len() >= ORIGIN_CACHE_LIMIT {
            self.map.clear();
        }
        let origin = Origin::from_wire(bridge, sender);
        let id = origin.sender_id();
        let found = (Arc::new(origin), id);
        self.map.insert(key, found.clone());
        found
    }

    /// The [`SenderId`] alone: what a typed import posts with.
    pub(crate) fn sender_id(&mut self, bridge: Option<BridgeId>, sender: Option<u64>) -> SenderId {
        let key = (bridge, sender);
        if let Some((last, id)) = self.last
            && last == key
        {
            return id;
        }
        let (_, id) = self.get(bridge, sender);
        self.last = Some((key, id));
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_cache_stays_bounded_and_answers_the_same_ids_after_starting_afresh() {
        let mut cache = OriginCache::default();
        let first = BridgeId::random();
        let (origin, id) = cache.get(Some(first), Some(7));
        for n in 0..3 * ORIGIN_CACHE_LIMIT as u128 {
            let forged = BridgeId(n);
            let (o, i) = cache.get(Some(forged), None);
            assert_eq!(o.bridge(), Some(forged));
            assert_eq!(cache.sender_id(Some(forged), None), i);
            assert!(cache.map.len() <= ORIGIN_CACHE_LIMIT);
        }
        // Long forgotten by the cache: the same origin and id from the table.
        let (again, same) = cache.get(Some(first), Some(7));
        assert_eq!((*again).clone(), (*origin).clone());
        assert_eq!(same, id);
        assert_eq!(Origin::of(id), Some((*origin).clone()));
    }
}
