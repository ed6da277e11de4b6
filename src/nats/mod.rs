//! Beyond one process (feature `nats`): the same notifications across processes and machines,
//! through a NATS server.
//!
//! A [`NatsBridge`] is one connection to a NATS server. It **exports** chosen notification types
//! with the hub's own builder, and **imports** what other processes export into a local center:
//!
//! ```text
//!  process A                                              process B
//!  post(n) ─► center ─► forward(bridge.publish()) ─► NATS subject n::name() ─► bridge.import::<N>(&center) ─► center ─► observers
//! ```
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! # let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
//! # let err = run(&format!("nats://127.0.0.1:{port}")).await.unwrap_err(); // no server in doctests
//! # assert!(err.is_connect(), "{err:?}"); }
//! # async fn run(closed: &str) -> Result<(), herald::nats::Error> {
//! use herald::nats::NatsBridge;
//! use herald::{Notification, NotificationCenter};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! struct OrderPlaced { id: u64 }
//! impl Notification for OrderPlaced {
//!     fn name() -> &'static str { "shop.order.placed" } // the NATS subject
//! }
//!
//! let center = NotificationCenter::new();
//! let url = "nats://127.0.0.1:4222";
//! # let url = closed; // no server in doctests: a closed local port
//! let bridge = NatsBridge::connect(url).await?;
//! let _out = center.observer::<OrderPlaced>().forward(bridge.publish())?; // export
//! let _in = bridge.import::<OrderPlaced>(&center).await?;                  // import
//! center.post(OrderPlaced { id: 1 }); // local observers now, other processes' observers soon
//! # Ok(()) }
//! ```
//!
//! `examples/distributed.rs` runs two processes against a local `nats-server`.
//!
//! # Names
//! A type crosses processes under its [`Notification::name`](crate::Notification::name),
//! which must be declared (the default Rust type name is refused) and be a valid NATS subject:
//! dot-separated tokens of printable ASCII, no spaces, no `*` or `>`. A family prefix ends at a
//! dot: `import_family("shop.", ..)` subscribes to `shop.>`. The bridge's
//! [`subject_prefix`](NatsBridgeBuilder::subject_prefix) is put before every name. Bad names are
//! refused with [`ErrorKind::InvalidName`] when the export or import is made.
//!
//! # Origins
//! Every bridge has a random [`BridgeId`]. Imported notifications are posted with the
//! [`SenderId`](crate::SenderId) of their [`Origin`] (bridge and sender inside it), so a local
//! `.sender(..)` filter never matches a remote notification, `.sender(origin.sender_id())` is
//! an origin filter, and wildcard observers ask [`Origin::of`]`(any.sender()?)`.
//!
//! That origin ↔ sender table is process-wide and **never shrinks**: one entry (150 to 300
//! bytes) per origin (remote bridge × remote sender) that an import posted a notification
//! from, for the life of the process (a message it cannot read records nothing: its
//! [`RemoteUndecodable`] names the origin without it). It cannot forget one: an origin's id
//! must stay the same for the filters made with it, [`Origin::of`] must answer for
//! notifications still queued or buffered, and an export tells an imported notification
//! (never sent again: no loops) by finding its sender there. A bridge restart is a new
//! origin, so it grows slowly with restarts of the exporting processes; but origins are the
//! publisher's word (its message's reply subject): a publisher that forges ever-new ones
//! makes it grow without bound. The defence is the server's: give only herald bridges you
//! trust the right to publish on the subjects you import (NATS subject permissions).
//! Everything else an import keeps per origin or subject is bounded (see
//! [`import_streams`](NatsBridgeBuilder::import_streams)).
//!
//! # No echo, no loops
//! A bridge never imports what it exported itself (the server is asked not to echo, and the
//! importer drops its own origin). An export never sends a notification that a bridge imported
//! (its sender is an origin's): a process that imports and exports the same type relays
//! nothing, so loops between bridges are impossible.
//!
//! # Order
//! Exports run on the posting thread and queue in one outbox per bridge, published by one task
//! in queue order; NATS keeps one connection's order per subject; an import posts in arrival
//! order. So what one thread posts reaches each remote observer in post order. With
//! [batching](NatsBridgeBuilder::batching) (opt-in), a batch holds consecutive notifications of
//! one subject and one sender and its items are posted in order: the same holds.
//!
//! # Loss is never silent
//! NATS core delivery is at most once. Each notification has a sequence number per (origin,
//! subject), which its message carries (a batch carries its first and its count); importers
//! count gaps and post [`RemoteLost`]. A loss at the tail of a burst shows
//! at the next heartbeat ([`NatsBridgeBuilder::heartbeat`]). So for each origin and subject,
//! once an import has seen its first message: `posted + lost == sent` (what an origin sent on
//! a subject before an import saw anything from it is not counted: the import cannot tell a
//! message it missed from one sent before it subscribed), as long as the import follows that
//! stream: an import follows at most
//! [`import_streams`](NatsBridgeBuilder::import_streams) of them, and past that forgets the
//! ones seen least recently, counted in [`ImportStats::forgotten`]; a forgotten stream is
//! followed again from its next message, as a new one. Exports the outbox
//! could not take post [`ExportDropped`]; messages that cannot be decoded post
//! [`RemoteUndecodable`]; connection changes post [`ConnectionChanged`]. Everything is counted
//! in [`BridgeMetrics`] and [`ImportStats`].
//!
//! # Connection
//! The bridge reconnects forever with exponential backoff and jitter; imports are
//! re-subscribed by the client; exports wait in the bounded outbox meanwhile. Credentials
//! (user and password, token, NKey, credentials file) and TLS (custom CAs, client certificate)
//! are options of [`NatsBridgeBuilder`]; a user and password or a token may also come in the
//! URL (`nats://user:password@host`). [`NatsBridge::state`], [`NatsBridge::watch_state`] and
//! [`NatsBridge::ping`] tell its health; [`NatsBridge::shutdown`] sends what is queued and
//! closes, waiting at most [`NatsBridgeBuilder::shutdown_timeout`] for the server. Errors never
//! show secrets: URLs appear only through [`redact_url`].
//!
//! # Wire format
//! Documented, versioned: see [`wire`]. By default one notification is one NATS message whose
//! payload is its JSON, readable by any NATS client; [`Batching`] (opt-in, for herald-to-herald
//! traffic at high rates) sends runs of queued notifications as one message. Every importer
//! reads both.
//!
//! # Type-erased notifications and family observers
//! A family import posts names without a registered type as [`RemoteNotification`]. Its type's
//! hub name is `herald.nats.remote` (the hub names types), but each value keeps the name it was
//! exported under ([`Notification::value_name`](crate::Notification::value_name)):
//! [`Wildcard`](crate::Wildcard) observers see it and read that name
//! ([`AnyNotification::value_name`](crate::AnyNotification::value_name), or
//! [`RemoteNotification::name`] after a downcast), and `observer::<Wildcard>().family("shop.")`
//! sees it when that name is in the family, as it sees the typed ones.

mod bridge;
mod error;
mod events;
mod export;
mod import;
#[cfg(feature = "bridge")]
mod kv_store;
mod origin;
#[cfg(feature = "bridge")]
mod outcomes;
#[cfg(feature = "bridge")]
#[cfg_attr(docsrs, doc(cfg(all(feature = "nats", feature = "bridge"))))]
pub mod push;
#[cfg(feature = "bridge")]
mod push_wire;
mod urls;
pub mod wire;

pub use bridge::{
    Batching, BridgeMetrics, DEFAULT_BATCH_BYTES, DEFAULT_BATCH_ITEMS, DEFAULT_CLIENT_CAPACITY,
    DEFAULT_HEARTBEAT, DEFAULT_IMPORT_STREAMS, DEFAULT_OUTBOX_CAPACITY, DEFAULT_SHUTDOWN_TIMEOUT,
    NatsBridge, NatsBridgeBuilder,
};
pub use error::{Error, ErrorKind};
pub use events::{
    ConnectionChanged, ConnectionState, ExportDropped, RemoteLost, RemoteNotification,
    RemoteUndecodable,
};
pub use export::{Export, Publish};
pub use import::{FamilyImport, Import, ImportStats};
#[cfg(feature = "bridge")]
pub use kv_store::{DEFAULT_BUCKET, NatsKvStore, NatsKvStoreBuilder};
pub use origin::{BridgeId, Origin};
#[cfg(feature = "bridge")]
pub use outcomes::{OutcomeImport, OutcomeImportStats, RemotePushOutcome, RemoteResult};
#[cfg(feature = "bridge")]
pub use push::{
    ABANDON_AFTER, DEFAULT_ACK_WAIT, NatsPushQueue, PushQueueConfig, PushWorker, PushWorkerBuilder,
    QueueMetrics, WorkerHandle, WorkerMetrics,
};
pub use urls::redact_url;
