//! The hub: the notification center, its engine, and every delivery kind.
//!
//! Always compiled; it imports nothing from the APNs client, the mock, the bridge or the CLI.
//!
//! - [`center`]: `NotificationCenter` (posting, counters, the type map and the wildcard
//!   registry) and `Poster`, its typed post handle.
//! - [`engine`]: one engine per notification type: subscriber snapshots, the delivery loop,
//!   subscribe / unsubscribe, replay, counters. With [`rcu`] and [`sync`], everything that makes
//!   the hub correct under concurrency.
//! - Delivery kinds: [`stream`] (buffered, over the shared [`ring`] or a private buffer), [`spawn`] (async handlers), [`queue`] (Apple's
//!   coalescing queue), [`wildcard`] (type-erased observation of all or a family).
//! - [`builder`]: the one subscription builder, `ObserverBuilder<M, P>` (what it matches, its
//!   policy state), its typed terminals and the public `Terminal` trait; [`wildcard`] adds
//!   what it does for `Wildcard`, [`spawn`] and `testkit` their terminals.
//! - [`subscription`]: the guard every terminal returns.
//!
//! Imports go one way: `engine` ← `subscription` ← `center`, `stream` ← `builder` ←
//! `wildcard`, `spawn`, `testkit`; the engine sees its center only through `Reports` and
//! `Unsubscribe`.

pub(crate) mod builder;
pub(crate) mod center;
pub(crate) mod cloned;
pub mod contracts;
pub(crate) mod engine;
pub(crate) mod error;
pub(crate) mod notification;
pub(crate) mod overflow;
pub(crate) mod queue;
pub(crate) mod rcu;
pub(crate) mod ring;
pub(crate) mod slab;
pub(crate) mod spawn;
pub(crate) mod stats;
pub(crate) mod stream;
pub(crate) mod subscription;
pub(crate) mod sync;
#[cfg(feature = "testkit")]
pub mod testkit;
pub(crate) mod value_ring;
pub(crate) mod wildcard;
