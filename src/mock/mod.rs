//! A faithful stand-in for Apple's push service (feature `mock`).
//!
//! [`MockApns`] is an HTTP/2-over-TLS server on loopback that validates requests the way APNs does
//! (statuses and reason strings from Apple's tables), verifies ES256 provider tokens against keys
//! you register, accepts TLS client certificates it issued, reproduces APNs' connection behaviour
//! (the stream-limit ramp, GOAWAY with a JSON reason, TooManyProviderTokenUpdates) and faults on
//! demand, and records every request for assertions. It shares no code with herald's APNs client:
//! it is the check on it.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), herald::mock::MockError> {
//! use herald::mock::MockApns;
//!
//! let mock = MockApns::start().await?;                     // 127.0.0.1, free port
//! let p8_pem = mock.generate_key("ABC123DEFG", "TEAM123456")?; // sign JWTs with this
//! mock.register_device(&"ab".repeat(32), "com.example.app");
//! println!("push to {} trusting {} bytes of CA PEM", mock.url(), mock.ca_pem().len());
//! # let _ = p8_pem;
//! # Ok(()) }
//! ```
//!
//! # Connections
//! - TLS 1.2/1.3 (rustls), ALPN `h2`; a client that sends no ALPN (aioapns) is served as HTTP/2 too.
//!   The server certificate is valid for `localhost`, `127.0.0.1`, `::1` and Apple's host names
//!   (its subject alternative names, which clients check), its common name is the host of the
//!   mock's environment (`api.sandbox.push.apple.com`, or `api.push.apple.com` in production),
//!   and it chains to [`MockApns::ca_pem`].
//! - A connection that presents a client certificate issued by the mock's CA (see
//!   [`MockApns::issue_push_certificate`]) uses certificate authentication; one without uses token
//!   authentication. `:authority` is not required (a `host` header is fine).
//! - A 200 is a HEADERS frame with END_STREAM and no DATA; errors carry `{"reason": ...}` (plus
//!   `"timestamp"` on 410) with `content-type: application/json`. Both carry `apns-id` (echoed
//!   exactly as sent, uppercase included, as Apple's response table says: "the same value";
//!   or generated); 200s also `apns-unique-id` in the sandbox environment. The answer to a `HEAD`
//!   (405) has no DATA frame (RFC 9110 §9.3.2).
//!
//! # Environment
//! The mock answers as one of Apple's environments ([`MockApnsBuilder::environment`],
//! [`Environment`]): the sandbox (development) by default, or production. Only the sandbox sends
//! `apns-unique-id` (APNS.md §6). A push certificate whose environment extensions list only the
//! other environment gets 403 BadCertificateEnvironment; one without environment extensions is
//! not judged on its environment.
//!
//! Provider keys have an environment too (Apple's 2025 key scopes: team-scoped and
//! topic-specific keys are each for Sandbox or for Production; keys made before still work in
//! both). A registered key is valid in both until [`MockApns::restrict_key_environment`]
//! restricts it; a token of a key restricted to the other environment gets 403
//! BadEnvironmentKeyIdInToken, the reason Apple's reason table gives for "the key ID in the
//! provider token doesn't match the environment" (APNS.md §3 lists it from third parties; Apple
//! lists it now). One connection is one environment, so a key of the other environment is
//! refused as such wherever it comes, and environments never get to mix on one connection:
//! UnrelatedKeyIdInToken stays the answer for mixed key scopes (see Token rules). Some
//! third parties have seen APNs send the reason spelled `BadEnvironmentKeyInToken`; the mock
//! sends Apple's documented spelling, and [`Fault::Reject`] sends the other one to test a
//! client against it.
//!
//! # Push certificates
//! [`MockApns::issue_push_certificate`] issues a certificate shaped like Apple's universal one:
//! subject UID = bundle id, the sandbox (`1.2.840.113635.100.6.3.1`) and production (`…3.2`)
//! extensions, and the topics extension (`…3.6`: `SEQUENCE { UTF8String topic, SEQUENCE {
//! UTF8String kind } … }` listing the bundle id (`app`), `.voip` and `.complication`).
//! [`MockApns::issue_push_certificate_with`] chooses the environments and topics
//! ([`PushCertificateOptions`]). Under a certificate with a topics extension, a push to a topic
//! it does not list is 400 TopicDisallowed.
//!
//! # The stream-limit ramp
//! A token-authenticated connection advertises SETTINGS_MAX_CONCURRENT_STREAMS = 1 until a push
//! with a valid token has been accepted, then [`MockApnsBuilder::max_streams`] (1000 by default).
//! With [`MockApnsBuilder::drop_to_one_after_rejection`] any rejected push sends it back to 1 until
//! the next accepted push. Certificate connections start at the configured value. A client that opens
//! more streams than it acknowledged gets RST_STREAM(REFUSED_STREAM) for the stream over the limit
//! and GOAWAY(REFUSED_STREAM, error 7) with `{"reason":"TooManyRequests"}`, whose last stream id is
//! below the refused stream: that stream was never processed, and the client may retry it (RFC
//! 9113 §6.8, APNS.md §7). While the connection is already going away (a GOAWAY sent
//! before), an over-limit stream gets only the reset. A stream the client reset first gets
//! no reset back (RFC 9113 §5.4.2). Streams are counted in wire order (RFC 9113 §5.1): one is
//! open from the client's HEADERS until the client resets it or the mock ends or resets it, so a
//! stream the client reset no longer counts when its next HEADERS arrives. (`h2` cannot change
//! SETTINGS on a live connection, so the mock rewrites and injects the SETTINGS frames itself, and
//! counts the streams, below `h2`.)
//!
//! # Faults on demand
//! - GOAWAY with `{"reason": ...}` debug data: [`MockApns::goaway_all`] / [`MockApns::goaway`]
//!   (on command), [`MockApnsBuilder::goaway_after`] (after N requests, reason `Shutdown`),
//!   [`MockApnsBuilder::idle_timeout`] (reason `IdleTimeout`; requests and PINGs are activity),
//!   and on a stream-limit violation (above).
//! - Per request, queued with [`MockApns::script`]: [`Fault::Reject`] (any status and reason),
//!   [`Fault::Stall`] (never answer), [`Fault::DropConnection`] (close the socket mid-request,
//!   no GOAWAY), [`Fault::RefuseStream`], [`Fault::GoAway`], [`Fault::Delay`], [`Fault::Accept`].
//! - Always: [`MockApnsBuilder::latency`] (fixed or uniform) and [`MockApnsBuilder::error_rate`]
//!   (500 InternalServerError / 503 ServiceUnavailable).
//!
//! # Recording
//! Every request is kept ([`RecordedRequest`]: method, path, headers, body and parsed payload,
//! auth kind with key id and team, connection id, the answer and its `apns-id`), up to
//! [`MockApnsBuilder::record_limit`] most recent: [`MockApns::requests`], [`MockApns::pushes`],
//! [`MockApns::next_push`] (awaitable, with a timeout). [`MockApns::stats`] counts by status, by
//! reason and by connection (requests, tokens adopted, advertised limit, peak open streams, client
//! PINGs). [`MockApns::duplicate_accepted`] lists client-supplied `apns-id`s accepted more than once.
//!
//! # Failure modes
//! - Start-up ([`MockApns::start`], [`MockApnsBuilder::start`]) fails with a [`MockError`] only
//!   when the address cannot be bound or the CA cannot be generated; key registration and
//!   certificate issuance fail with one on bad input ([`MockError::is_bad_key`],
//!   [`MockError::is_certificate`]). Nothing a client sends makes the mock panic or stop: a
//!   malformed request gets Apple's answer for it, a TLS handshake that fails is counted
//!   ([`Stats::tls_failures`]), an HTTP/2 protocol error closes that connection only.
//! - The mock never answers what Apple would not: statuses and reasons come from Apple's
//!   tables, except what you script with [`Fault::Reject`] (sent as given).
//! - Dropping the [`MockApns`] stops the listener and closes every connection at once (no
//!   GOAWAY): clients see their in-flight requests fail as lost connections.
//!
//! # Cancel safety
//! [`MockApns::next_push`] is cancel safe: a push is marked as returned only in the same step
//! that returns it, so a `next_push` dropped while waiting (in a `select!`, or by its timeout)
//! loses nothing, and the next call returns that push. Every other method is synchronous.
//!
//! # Time
//! A JWT's age (its `iat` against "now") and each request's `received_at` use the mock's
//! [`Clock`] ([`MockClock`] to move it from a test). The 20-minute refresh rule compares a new
//! token's `iat` with the previous one's on the connection, and a 410's timestamp is the time
//! given to [`MockApns::mark_unregistered`]: neither reads the clock. Latency, [`Fault::Delay`],
//! [`MockApnsBuilder::idle_timeout`] and the timeout of `next_push` use tokio's timer, so
//! they follow a paused tokio clock in tests.
//!
//! # Limits
//! - The request log keeps the most recent [`MockApnsBuilder::record_limit`] requests (default
//!   100,000); counters count everything ([`Stats::evicted`]).
//! - [`MockApns::stats`] reports every open connection and the 1,024 most recently closed.
//! - [`MockApns::accepted_count`] / [`MockApns::duplicate_accepted`] track the first
//!   1,000,000 distinct client-supplied `apns-id`s.
//! - Channels: 10,000 in all (past that, 400 CannotCreateChannelConfig).
//!
//! # Capacity
//! Measured on a 2-core machine shared with other builds, release build, token auth, full validation
//! path, `h2load` against `herald mock --quiet` (client and server on the same two cores): about
//! 9,000 pushes/s over one connection sending one request at a time, 27,000 over four; with 100
//! streams in flight, about 54,000 pushes/s over one connection and 57,000 over four. The in-process
//! `benches/mock_capacity.rs` reports 60,000–75,000. The mock is not the bottleneck of a client
//! benchmark below those figures.
//!
//! # Token rules
//! As strict as Apple, and no stricter: each JWT part may be base64url (strict JWS) or, as the
//! `a2` crate sends it and Apple accepts it, standard base64 (`+`, `/`, `=` padding); the
//! signature is checked over the parts as sent. A request whose token was not strict base64url
//! is accepted and carries a warning in [`RecordedRequest::warnings`].
//! The JWT must be `ES256` with a registered `kid`, signed by that key (64-byte r‖s or DER), with
//! `iss` = the key's team: otherwise 403 InvalidProviderToken. `iat` more than one hour before the
//! mock's [`Clock`] → 403 ExpiredProviderToken; more than one hour after it (a clock far off, an
//! `iat` in milliseconds) → 403 InvalidProviderToken: Apple says the value "must be no more than
//! one hour from the current time" and names no reason for a future one, and such a token is
//! not valid without being stale. Within the hour either way it is accepted. On one
//! connection, a new token whose `iat` is less than 20 minutes after the previous token's → 429
//! TooManyProviderTokenUpdates (the connection keeps the old token); a token of another team, or of a key of another scope (a team-scoped key
//! and a topic-specific one, [`MockApns::restrict_key`], do not mix on one connection: APNS.md §3)
//! → 403 UnrelatedKeyIdInToken. Two different topic-specific keys are mixing too, whether
//! their topics differ or not: Apple lists "an unrelated topic-specific key" among the keys
//! refused after a topic-specific key, and lets each topic-specific key have one related key
//! whose tokens may share its connection ([`MockApns::relate_keys`]). Two team-scoped keys of
//! the team may share a connection. A key restricted to the other environment
//! ([`MockApns::restrict_key_environment`]) → 403 BadEnvironmentKeyIdInToken, checked after the
//! signature and before `iat`: a new token would not help.
//!
//! # Request rules, in the order they are checked
//! 1. route: `POST /3/device/<token>` (other methods 405 MethodNotAllowed), `/4/broadcasts/apps/<bundle>`,
//!    `/1/apps/<bundle>/channels`, `/1/apps/<bundle>/all-channels`, anything else 404 BadPath; the
//!    device token must be hex of even, non-zero length, any length (400 BadDeviceToken; empty: 400
//!    MissingDeviceToken). A query string (`/3/device/<token>?x=1`) is ignored and the request
//!    carries a warning in [`RecordedRequest::warnings`]: Apple documents no query on any of its
//!    paths, and no answer to one has been seen, so the mock neither refuses nor silently
//!    accepts it;
//! 2. a scripted [`Fault`], if one is queued (pushes and broadcasts only);
//! 3. 400 DuplicateHeaders when an `apns-*` header or `authorization` appears twice;
//! 4. authentication (above; key for the other environment: 403 BadEnvironmentKeyIdInToken;
//!    certificate without subject UID: 403 BadCertificate; certificate for the other
//!    environment only: 403 BadCertificateEnvironment);
//! 5. 400 BadMessageId when `apns-id` is not 8-4-4-4-12 hex;
//! 6. 400 MissingTopic (token auth; certificate auth defaults to the certificate's bundle id),
//!    BadTopic (malformed, or its suffix is not the push type's: `voip` needs `<bundle>.voip`, `alert`
//!    needs no suffix…), InvalidPushType (unknown `apns-push-type`; when absent the type is inferred
//!    from the topic suffix, else `alert`), TopicDisallowed (bundle not allowed for the key or the
//!    certificate; `location` / `liveactivity` under certificate auth);
//! 7. 400 BadPriority (not 10/5/1; `background` must be 5, `liveactivity` 5 or 10, `pushtotalk` 10),
//!    BadExpirationDate (not decimal digits), BadCollapseId (more than 64 bytes);
//! 8. 400 PayloadEmpty, 413 PayloadTooLarge (over 4096 bytes; 5120 for `voip` and broadcasts),
//!    400 BadRequestPayload (not a JSON object: Apple's `/3/device` table lists no reason for
//!    malformed JSON and no report of what APNs answers has been found, so the mock uses the
//!    one Apple documents for it on broadcasts; a client should not rely on this reason);
//! 9. device state: 410 Unregistered with `timestamp` ([`MockApns::mark_unregistered`]),
//!    400 DeviceTokenNotForTopic (registered for another bundle), 400 BadDeviceToken (unknown,
//!    unless [`MockApnsBuilder::accept_unknown_tokens`]);
//! 10. the configured 500 InternalServerError / 503 ServiceUnavailable rate; otherwise 200.
//!
//! Channel management and broadcasts (APNS.md §8) are served on the same port: `POST
//! /1/apps/<bundle>/channels` with `{"message-storage-policy":0|1,"push-type":"LiveActivity"}` →
//! 201 + `apns-channel-id` (else 400 BadRequestPayload / BadRequestParams /
//! CannotCreateChannelConfig past 10,000); `GET` with `apns-channel-id` → the config; `DELETE` → 204;
//! `GET /1/apps/<bundle>/all-channels` → `{"channels":[...]}`; missing / malformed / unknown channel
//! id → 400 MissingChannelId / BadChannelId / ChannelNotRegistered. Broadcasts need
//! `apns-push-type: liveactivity` (400 MissingPushType / InvalidPushType) and `apns-expiration` 0 on
//! no-storage channels (400 BadExpirationDate).

mod clock;
mod environment;
mod error;
mod fault;
mod frames;
mod keys;
mod mock_apns;
mod record;
mod rules;
mod server;
mod state;
mod tls;

pub use clock::{Clock, MockClock, SystemClock};
pub use environment::Environment;
pub use error::MockError;
pub use fault::{Fault, Latency};
pub use mock_apns::{MockApns, MockApnsBuilder};
pub use record::{AuthKind, ConnectionStats, Endpoint, RecordedRequest, Stats};
pub use tls::{PushCertificate, PushCertificateOptions};
