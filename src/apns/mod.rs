//! The APNs client (feature `apns`): send pushes to Apple's Push Notification service.
//!
//! - [`ApnsClient`]: HTTP/2 over rustls to production, sandbox (ports 443 or 2197) or a custom
//!   endpoint; a pool of connections following the server's live stream limit; token
//!   ([`TokenKey`], `.p8`) or certificate ([`Certificate`], `.p12` / PEM) authentication.
//! - [`Push`]: one owned, validated notification; [`Payload`] / [`Aps`]: the typed payload.
//! - [`Broadcast`] and channel management (`create_channel`, `read_channel`, `list_channels`,
//!   `delete_channel`, `broadcast`): iOS 18 broadcast push for Live Activities.
//! - [`PushOutcome`]: exactly one per push — accepted, rejected (with an open [`Reason`]), or
//!   failed (with a typed [`Error`]); rejected and failed ones hand the push back.
//!
//! # Guarantees
//!
//! - **One outcome per push.** `send` resolves exactly once; `send_all` yields exactly one
//!   `(Push, PushOutcome)` per input push.
//! - **No duplicates from retries.** Only requests that certainly did not reach APNs (GOAWAY
//!   above `last_stream_id`, REFUSED_STREAM, no connection) and answers Apple says to retry
//!   (429, 5xx, after backoff with jitter; ExpiredProviderToken once, with a new token) are sent
//!   again, always with the same `apns-id`. A request lost with its connection, or timed out,
//!   fails with [`Error::is_connection_lost`] / [`Error::is_timeout`] instead.
//! - **Never more streams than allowed.** A connection opens a stream only while
//!   `in_flight < SETTINGS_MAX_CONCURRENT_STREAMS` (assumed 1 until the server says otherwise).
//! - **Fair queueing.** Pushes wait in one FIFO queue; connections take from it as streams free up.
//! - **Tokens**: one per key, minted lazily, refreshed at ~50 minutes, at most one change per
//!   connection per 20 minutes (see [`TokenKey`]).
//! - **Secrets** (keys, passwords, JWTs) never appear in `Debug`, `Display` or logs.
//!
//! ```no_run
//! use herald::apns::{ApnsClient, Endpoint, Payload, Push, PushOutcome, TokenKey};
//!
//! # async fn run() -> Result<(), herald::apns::Error> {
//! let client = ApnsClient::builder()
//!     .endpoint(Endpoint::Production)
//!     .token_auth(TokenKey::from_p8_file("AuthKey_ABC1234567.p8", "ABC1234567", "TEAM123456")?)
//!     .build()?;
//! let push = Push::builder("a1b2c3d4", "com.example.app")
//!     .payload(&Payload::alert("Hello"))?
//!     .build()?;
//! if let PushOutcome::Rejected(r) = client.send(push).await {
//!     eprintln!("{}: {}", r.reason, r.reason.explain());
//! }
//! client.shutdown().await;
//! # Ok(()) }
//! ```

mod auth;
mod broadcast;
mod client;
mod error;
mod metrics;
mod payload;
mod pool;
mod push;
mod response;

pub use auth::{Certificate, Environment, TokenKey};
pub use broadcast::{Broadcast, BroadcastBuilder, ChannelConfig, ChannelId, MessageStoragePolicy};
pub use client::{ApnsClient, ApnsClientBuilder, CustomEndpoint, Endpoint, Outcomes, RetryPolicy};
pub use error::{Error, ErrorKind, PayloadTooLarge};
pub use metrics::{Counters, CountersSnapshot, Metrics, RetryCause};
pub use payload::{
    Alert, AlertFields, Aps, CriticalSound, InterruptionLevel, LiveActivityEvent, Payload, Sound,
};
pub use push::{
    Expiration, PAYLOAD_LIMIT, Priority, Push, PushBuilder, PushType, VOIP_PAYLOAD_LIMIT,
};
pub use response::{Accepted, Failed, PushOutcome, Reason, Rejected};

/// The first 8 characters of a device token: enough to tell tokens apart in logs, not
/// enough to address a device. herald never logs a whole token.
pub(crate) fn token_prefix(token: &str) -> &str {
    token.get(..8).unwrap_or(token)
}
