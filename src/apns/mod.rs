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
//! # Building a push
//!
//! [`Push::builder`]`(device_token, topic)` takes the token (hex, any length; normalised to
//! lowercase) and the topic (the bundle id; the push type's suffix, such as `.voip`, is added
//! when missing). Headers are typed ([`PushType`], [`Priority`], [`Expiration`], collapse id,
//! `apns-id`), the payload is a [`Payload`] (or raw JSON with `raw_payload`), and `build`
//! checks everything Apple would reject about the request itself: a token that is not hex, a
//! malformed topic (`BadTopic`: anything but labels of letters, digits, `-` and `_` joined by
//! single dots), a priority the push type does not allow (`background` must be 5), a collapse id over 64
//! bytes, a payload over the limit ([`Error::payload_too_large`] says by how much). A [`Push`]
//! that built is one APNs can only refuse for reasons outside it (the token, the credentials,
//! the environment).
//!
//! # Failure modes
//!
//! Every push ends in exactly one [`PushOutcome`]:
//!
//! - [`PushOutcome::Accepted`]: APNs took it (200). It will try to deliver it; APNs does not
//!   report delivery.
//! - [`PushOutcome::Rejected`]: APNs answered with a [`Reason`] (400, 403, 404, 405, 410, 413):
//!   [`Reason::explain`] says what it means, [`Reason::invalidates_token`] (410 only: delete
//!   the token unless it was registered again after [`Rejected::timestamp`]) and
//!   [`Reason::quarantines_token`] (`BadDeviceToken`, `DeviceTokenNotForTopic`: suspect, not
//!   proof) what to do with the token. 429 and 5xx are retried, not returned as rejections.
//! - [`PushOutcome::Failed`] with an [`Error`], whose [`ErrorKind`] tells whether APNs can have
//!   the push:
//!   - **nothing was sent**: [`ErrorKind::InvalidPush`], [`ErrorKind::PayloadTooLarge`],
//!     [`ErrorKind::CertificateMismatch`] (checked before sending), [`ErrorKind::Connect`] (no connection could be made within the connect
//!     timeout), [`ErrorKind::Shutdown`] (sent after [`ApnsClient::shutdown`]). Sending the
//!     push again cannot duplicate it.
//!   - **APNs may have it**: [`ErrorKind::Timeout`] (no answer within the request timeout),
//!     [`ErrorKind::ConnectionLost`] (the connection died with the request in flight),
//!     [`ErrorKind::Protocol`]. herald does not resend these itself, so that a device never
//!     shows a notification twice; if you resend, give the push a collapse id.
//!   - **APNs kept refusing for now**: [`ErrorKind::RetriesExhausted`], with the last status
//!     and reason ([`Error::status`], [`Error::reason`]): 429 / 5xx after every retry of the
//!     [`RetryPolicy`], or streams refused more often than the pool can move them.
//!
//! Configuration errors ([`ErrorKind::Config`], [`ErrorKind::BadKey`],
//! [`ErrorKind::BadCertificate`], [`ErrorKind::WrongPassword`], [`ErrorKind::CertificateExpired`])
//! come from the builders and constructors, before any push. No error, `Debug` or log line contains a key, a password,
//! a JWT or a whole device token (only its first 8 characters).
//!
//! # Cancel safety
//!
//! [`ApnsClient::send`] is not cancel safe in the sense that matters here: dropping its future
//! before the push has been given a stream (it is still waiting in the queue) sends nothing,
//! but dropping it after the request was written resets the stream (RST_STREAM CANCEL) and
//! APNs may or may not have processed the push. Either way the stream is freed and the
//! client stays usable. To bound the wait, configure
//! [`request_timeout`](ApnsClientBuilder::request_timeout) rather than wrapping `send` in a
//! timeout: the client's own timeout reports [`ErrorKind::Timeout`] and counts it. The
//! [`Outcomes`] of [`ApnsClient::send_all`] / [`ApnsClient::send_stream`] run each push in
//! its own task: dropping `Outcomes` stops taking pushes from the input (the one being taken
//! at that moment is dropped unsent), while pushes already started run to their end and their
//! outcomes are discarded. [`Outcomes::next`] is
//! cancel safe: an outcome not yet returned stays queued for the next call.
//!
//! # Limits and defaults
//!
//! - Payload: [`PAYLOAD_LIMIT`] (4096 bytes), [`VOIP_PAYLOAD_LIMIT`] (5120) for VoIP pushes and
//!   broadcasts.
//! - Streams per connection: what the server advertises, 1 until it says more (Apple raises it,
//!   typically to 1000, after a first accepted push, and may lower it again).
//! - Connections: 1 by default ([`connections`](ApnsClientBuilder::connections)); pushes beyond
//!   the open streams wait in one FIFO queue, unbounded (bound it with `send_all`'s
//!   `concurrency`, or the bridge's).
//! - Timeouts: connect 10 s, request 20 s, an idle connection PINGed every 10 minutes and
//!   dropped when a PING is not answered within 10 s.
//! - Retries ([`RetryPolicy`]): 3 retries of 429 / 5xx, backoff from 200 ms doubling to 60 s,
//!   with equal jitter; requests that certainly did not reach APNs are moved to another
//!   connection up to 8 times, not counted as retries (a refused request goes back on the
//!   connection that refused it only when no other connection can be had). `ExpiredProviderToken` is retried once
//!   with a freshly minted token. herald does not read a `Retry-After` header (APNs documents
//!   none).
//! - Provider tokens: minted per key, refreshed after about 50 minutes (Apple rejects tokens
//!   older than an hour), never more often than once per 20 minutes on one connection (Apple
//!   answers `TooManyProviderTokenUpdates`).
//!
//! ```
//! use herald::apns::{ApnsClient, Endpoint, Payload, Push, PushOutcome, TokenKey};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), herald::apns::Error> {
//! # let tmp: tempfile::TempDir = include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/apns/doc_p8.rs"));
//! # let dir = tmp.path();
//! # // No network in doctests: the client sends to a closed local port instead of Apple.
//! # let closed: Endpoint = include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/apns/doc_closed_endpoint.rs"));
//! let client = ApnsClient::builder()
//!     .endpoint(Endpoint::Production)
//! #   .endpoint(closed)
//!     .token_auth(TokenKey::from_p8_file(dir.join("AuthKey_ABC1234567.p8"), "ABC1234567", "TEAM123456")?)
//!     .build()?;
//! let push = Push::builder("a1b2c3d4", "com.example.app")
//!     .payload(&Payload::alert("Hello"))?
//!     .build()?;
//! let outcome = client.send(push).await;
//! match &outcome {
//!     PushOutcome::Rejected(r) => eprintln!("{}: {}", r.reason, r.reason.explain()),
//!     PushOutcome::Failed(f) if f.error.is_connect() => eprintln!("nothing was sent: {}", f.error),
//!     _ => {}
//! }
//! # assert!(outcome.error().is_some_and(|e| e.is_connect()), "{outcome:?}");
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
mod proxy;
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
pub use proxy::Proxy;
pub use push::{
    Expiration, PAYLOAD_LIMIT, Priority, Push, PushBuilder, PushType, VOIP_PAYLOAD_LIMIT,
};
pub use response::{Accepted, Failed, PushOutcome, Reason, Rejected};

/// The first 8 characters of a device token: enough to tell tokens apart in logs, not
/// enough to address a device. herald never logs a whole token. Counted in characters, so that a token not yet validated (a builder's) is cut too.
pub(crate) fn token_prefix(token: &str) -> &str {
    match token.char_indices().nth(8) {
        Some((end, _)) => &token[..end],
        None => token,
    }
}

/// A device token for `Debug` output: its [`token_prefix`] and an ellipsis, quoted like a
/// string (`"a1b2c3d4…"`). Every `Debug` that would show a token shows this instead.
pub(crate) struct RedactedToken<'a>(pub(crate) &'a str);

impl std::fmt::Debug for RedactedToken<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "\"{}…\"", token_prefix(self.0).escape_debug())
    }
}
