//! What the mock received and what it answered.

use std::collections::BTreeMap;
use std::time::SystemTime;

/// How the connection a request came on was authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthKind {
    /// Token-based: a JWT in `authorization`. `key_id` / `team_id` are those of the JWT when it
    /// parsed (even if it was then rejected), else `None`.
    Token {
        /// The JWT's `kid`.
        key_id: Option<String>,
        /// The JWT's `iss`.
        team_id: Option<String>,
    },
    /// Certificate-based: a TLS client certificate verified against the mock's CA.
    Certificate {
        /// The certificate's subject UID (the bundle id), if it has one.
        bundle_id: Option<String>,
    },
}

/// Which endpoint a request addressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Endpoint {
    /// `POST /3/device/<token>`: a push.
    Push,
    /// `POST /4/broadcasts/apps/<bundle>`: a broadcast (Live Activity channel) push.
    Broadcast,
    /// `/1/apps/<bundle>/channels` and `/1/apps/<bundle>/all-channels`: channel management.
    Channels,
    /// Anything else (answered 404 BadPath).
    Other,
}

/// One request as the mock saw it, and the answer it gave.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RecordedRequest {
    /// Arrival order, from 0, over the mock's lifetime.
    pub seq: u64,
    /// The connection it came on (see [`MockApns::stats`](crate::mock::MockApns::stats)).
    pub connection: u64,
    /// The endpoint addressed.
    pub endpoint: Endpoint,
    /// HTTP method.
    pub method: String,
    /// `:path`.
    pub path: String,
    /// Every header, in order, names lowercase (`authorization` included, verbatim).
    pub headers: Vec<(String, String)>,
    /// The body as received.
    pub body: Vec<u8>,
    /// The body parsed as JSON, when it is JSON.
    pub payload: Option<serde_json::Value>,
    /// Authentication of the connection.
    pub auth: AuthKind,
    /// The device token from the path (`/3/device/<token>`), as sent.
    pub device_token: Option<String>,
    /// The `apns-topic` header.
    pub topic: Option<String>,
    /// The `apns-push-type` header.
    pub push_type: Option<String>,
    /// The `apns-id` answered (echoed or generated).
    pub apns_id: String,
    /// HTTP status answered; 0 when no answer was sent (stall, dropped connection, reset).
    pub status: u16,
    /// The `reason` of an error answer.
    pub reason: Option<String>,
    /// The `timestamp` (ms since the epoch) of a 410 answer.
    pub timestamp_ms: Option<u64>,
    /// When it arrived, by the mock's clock.
    pub received_at: SystemTime,
    /// What the mock accepted but Apple's documentation does not promise, so a test can see it
    /// was accepted leniently: today, a provider token in standard base64 (`+`, `/`, `=`
    /// padding) instead of base64url, as the `a2` crate sends it.
    pub warnings: Vec<String>,
}

impl RecordedRequest {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// True when the mock answered 200.
    pub fn accepted(&self) -> bool {
        self.status == 200
    }
}

/// Counters for one connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionStats {
    /// Requests received on it.
    pub requests: u64,
    /// Requests answered 200.
    pub accepted: u64,
    /// Requests answered with an error status.
    pub rejected: u64,
    /// Distinct provider tokens adopted on it.
    pub tokens: u64,
    /// Whether the connection is still open.
    pub open: bool,
    /// The MAX_CONCURRENT_STREAMS it currently advertises.
    pub max_streams: u32,
    /// Highest number of streams seen open at once.
    pub peak_streams: u32,
    /// PING frames the client sent on it (keep-alives).
    pub pings: u32,
}

/// Counters since start-up. See [`MockApns::stats`](crate::mock::MockApns::stats).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// All requests.
    pub requests: u64,
    /// Answered 200 (pushes and broadcasts; channel management counts under its status).
    pub accepted: u64,
    /// Error answers by reason string (`"BadDeviceToken"` → 3).
    pub by_reason: BTreeMap<String, u64>,
    /// By status code (200, 400, ...; 0 = no answer).
    pub by_status: BTreeMap<u16, u64>,
    /// By connection id.
    pub connections: BTreeMap<u64, ConnectionStats>,
    /// Connections accepted (TLS handshake completed).
    pub connections_opened: u64,
    /// TLS handshakes that failed.
    pub tls_failures: u64,
    /// GOAWAY frames sent (one per connection shut down by the mock).
    pub goaways: u64,
    /// Requests dropped from the front of the log to keep it within the record limit
    /// (counters still count them).
    pub evicted: u64,
}
