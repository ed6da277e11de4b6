//! What the mock received and what it answered.

use std::collections::BTreeMap;
use std::time::SystemTime;

/// How the connection a request came on was authenticated.
///
/// ```
/// # #[cfg(not(feature = "apns"))] fn main() {}
/// # #[cfg(feature = "apns")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
/// use herald::apns::Certificate;
/// use herald::mock::{AuthKind, MockApns};
/// let mock = MockApns::start().await?;
/// # let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
/// # let client = ApnsClient::builder()
/// #     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
/// #     .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
/// #     .retry(RetryPolicy::none())
/// #     .build()?;
/// # let push = |token: &str| Push::builder(token, "com.example.app")
/// #     .payload(&Payload::alert("Hi")).and_then(|b| b.build()).unwrap();
/// // `client` is herald's ApnsClient for mock.url(), trusting mock.ca_pem(), with a key from
/// // mock.generate_key; `push(token)` builds an alert for com.example.app.
/// let device = "a1".repeat(32);
/// mock.register_device(&device, "com.example.app");
/// assert!(client.send(push(&device)).await.is_accepted());
/// // The same push from a client with a push certificate the mock issued.
/// let cert = mock.issue_push_certificate("com.example.app")?;
/// let with_cert = ApnsClient::builder()
///     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
///     .certificate(Certificate::from_pem(cert.cert_pem(), cert.key_pem())?)
///     .build()?;
/// assert!(with_cert.send(push(&device)).await.is_accepted());
///
/// let seen = mock.requests();
/// assert_eq!(
///     seen[0].auth,
///     AuthKind::Token { key_id: Some("ABC123DEFG".into()), team_id: Some("TEAM123456".into()) }
/// );
/// assert_eq!(seen[1].auth, AuthKind::Certificate { bundle_id: Some("com.example.app".into()) });
/// # Ok(()) }
/// ```
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
///
/// ```
/// # #[cfg(not(feature = "apns"))] fn main() {}
/// # #[cfg(feature = "apns")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
/// use herald::apns::MessageStoragePolicy;
/// use herald::mock::{self, MockApns};
/// let mock = MockApns::builder().accept_unknown_tokens(true).start().await?;
/// # let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
/// # let client = ApnsClient::builder()
/// #     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
/// #     .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
/// #     .retry(RetryPolicy::none())
/// #     .build()?;
/// # let push = |token: &str| Push::builder(token, "com.example.app")
/// #     .payload(&Payload::alert("Hi")).and_then(|b| b.build()).unwrap();
/// // `client` is herald's ApnsClient for mock.url(), trusting mock.ca_pem(), with a key from
/// // mock.generate_key; `push(token)` builds an alert for com.example.app.
/// assert!(client.send(push(&"a1".repeat(32))).await.is_accepted());
/// client.create_channel("com.example.app", MessageStoragePolicy::MostRecentMessageStored).await?;
/// let seen = mock.requests();
/// assert_eq!(seen[0].endpoint, mock::Endpoint::Push);
/// assert_eq!(seen[1].endpoint, mock::Endpoint::Channels);
/// assert_eq!(mock.pushes().len(), 1); // pushes and broadcasts only
/// # Ok(()) }
/// ```
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
///
/// ```
/// # #[cfg(not(feature = "apns"))] fn main() {}
/// # #[cfg(feature = "apns")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
/// use herald::apns::PushOutcome;
/// use herald::mock::{self, AuthKind, Clock, MockApns, MockClock};
/// use std::time::Duration;
/// let clock = MockClock::starting_now();
/// let mock = MockApns::builder().clock(clock.clone()).start().await?;
/// # let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
/// # let client = ApnsClient::builder()
/// #     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
/// #     .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
/// #     .retry(RetryPolicy::none())
/// #     .build()?;
/// # let push = |token: &str| Push::builder(token, "com.example.app")
/// #     .payload(&Payload::alert("Hi")).and_then(|b| b.build()).unwrap();
/// // `client` is herald's ApnsClient for mock.url(), trusting mock.ca_pem(), with a key from
/// // mock.generate_key; `push(token)` builds an alert for com.example.app.
/// let device = "a1".repeat(32);
/// mock.register_device(&device, "com.example.app");
/// let PushOutcome::Accepted(accepted) = client.send(push(&device)).await else { panic!() };
///
/// let seen = mock.next_push(Duration::from_secs(10)).await.unwrap();
/// assert_eq!((seen.seq, seen.endpoint), (0, mock::Endpoint::Push));
/// assert_eq!(seen.method, "POST");
/// assert_eq!(seen.path, format!("/3/device/{device}"));
/// assert_eq!(seen.device_token.as_deref(), Some(device.as_str()));
/// assert_eq!(seen.topic.as_deref(), Some("com.example.app"));
/// assert_eq!(seen.push_type.as_deref(), Some("alert"));
/// assert_eq!(seen.payload.as_ref().unwrap()["aps"]["alert"], "Hi");
/// assert!(matches!(seen.auth, AuthKind::Token { .. }));
/// assert_eq!((seen.status, seen.reason.as_deref()), (200, None));
/// assert_eq!(seen.apns_id, accepted.apns_id); // what the client got back
/// assert_eq!(seen.received_at, clock.now()); // by the mock's clock
/// assert!(seen.warnings.is_empty()); // herald's JWTs are strict base64url
/// # Ok(()) }
/// ```
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
    /// `:path`, as sent (with its query string, if any).
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
    /// padding) instead of base64url, as the `a2` crate sends it, and a query string on the
    /// `:path` (`/3/device/<token>?x=1`), which Apple documents on none of its paths and whose
    /// answer there is unknown.
    pub warnings: Vec<String>,
}

impl RecordedRequest {
    /// The first value of header `name` (lowercase).
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
    /// use herald::mock::MockApns;
    /// use std::time::Duration;
    /// let mock = MockApns::start().await?;
    /// # let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
    /// # let client = ApnsClient::builder()
    /// #     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    /// #     .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
    /// #     .retry(RetryPolicy::none())
    /// #     .build()?;
    /// # let push = |token: &str| Push::builder(token, "com.example.app")
    /// #     .payload(&Payload::alert("Hi")).and_then(|b| b.build()).unwrap();
    /// // `client` is herald's ApnsClient for mock.url(), trusting mock.ca_pem(), with a key from
    /// // mock.generate_key; `push(token)` builds an alert for com.example.app.
    /// let device = "a1".repeat(32);
    /// mock.register_device(&device, "com.example.app");
    /// assert!(client.send(push(&device)).await.is_accepted());
    /// let seen = mock.next_push(Duration::from_secs(10)).await.unwrap();
    /// assert_eq!(seen.header("apns-topic"), Some("com.example.app"));
    /// assert!(seen.header("authorization").unwrap().starts_with("bearer "));
    /// assert_eq!(seen.header("APNS-TOPIC"), None); // names are matched as recorded: lowercase
    /// assert_eq!(seen.header("apns-collapse-id"), None); // not sent
    /// # Ok(()) }
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// True when the mock answered 200.
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
    /// use herald::mock::MockApns;
    /// let mock = MockApns::start().await?;
    /// # let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
    /// # let client = ApnsClient::builder()
    /// #     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    /// #     .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
    /// #     .retry(RetryPolicy::none())
    /// #     .build()?;
    /// # let push = |token: &str| Push::builder(token, "com.example.app")
    /// #     .payload(&Payload::alert("Hi")).and_then(|b| b.build()).unwrap();
    /// // `client` is herald's ApnsClient for mock.url(), trusting mock.ca_pem(), with a key from
    /// // mock.generate_key; `push(token)` builds an alert for com.example.app.
    /// let device = "a1".repeat(32);
    /// mock.register_device(&device, "com.example.app");
    /// client.send(push(&device)).await;
    /// client.send(push(&"ff".repeat(32))).await; // unknown token
    /// let pushes = mock.pushes();
    /// assert!(pushes[0].accepted());
    /// assert!(!pushes[1].accepted());
    /// assert_eq!(pushes[1].status, 400);
    /// # Ok(()) }
    /// ```
    pub fn accepted(&self) -> bool {
        self.status == 200
    }
}

/// Counters for one connection.
///
/// ```
/// # #[cfg(not(feature = "apns"))] fn main() {}
/// # #[cfg(feature = "apns")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
/// use herald::mock::MockApns;
/// let mock = MockApns::start().await?;
/// # let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
/// # let client = ApnsClient::builder()
/// #     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
/// #     .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
/// #     .retry(RetryPolicy::none())
/// #     .build()?;
/// # let push = |token: &str| Push::builder(token, "com.example.app")
/// #     .payload(&Payload::alert("Hi")).and_then(|b| b.build()).unwrap();
/// // `client` is herald's ApnsClient for mock.url(), trusting mock.ca_pem(), with a key from
/// // mock.generate_key; `push(token)` builds an alert for com.example.app.
/// let device = "a1".repeat(32);
/// mock.register_device(&device, "com.example.app");
/// assert!(client.send(push(&device)).await.is_accepted());
/// assert!(!client.send(push(&"ff".repeat(32))).await.is_accepted()); // unknown token
/// let stats = mock.stats();
/// assert_eq!(stats.connections.len(), 1); // one connection, by id
/// let conn = stats.connections.values().next().unwrap();
/// assert_eq!((conn.requests, conn.accepted, conn.rejected), (2, 1, 1));
/// assert_eq!(conn.tokens, 1); // one provider token for both pushes
/// assert!(conn.open);
/// assert_eq!(conn.max_streams, 1000); // raised by the first accepted push
/// assert_eq!(conn.peak_streams, 1); // the pushes were sent one after the other
/// # Ok(()) }
/// ```
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
///
/// ```
/// # #[cfg(not(feature = "apns"))] fn main() {}
/// # #[cfg(feature = "apns")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
/// use herald::mock::MockApns;
/// let mock = MockApns::builder().record_limit(2).start().await?;
/// # let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
/// # let client = ApnsClient::builder()
/// #     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
/// #     .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
/// #     .retry(RetryPolicy::none())
/// #     .build()?;
/// # let push = |token: &str| Push::builder(token, "com.example.app")
/// #     .payload(&Payload::alert("Hi")).and_then(|b| b.build()).unwrap();
/// // `client` is herald's ApnsClient for mock.url(), trusting mock.ca_pem(), with a key from
/// // mock.generate_key; `push(token)` builds an alert for com.example.app.
/// let device = "a1".repeat(32);
/// mock.register_device(&device, "com.example.app");
/// client.send(push(&device)).await;
/// client.send(push(&"ff".repeat(32))).await; // unknown token: 400 BadDeviceToken
/// client.send(push(&device)).await;
/// let stats = mock.stats();
/// assert_eq!((stats.requests, stats.accepted), (3, 2));
/// assert_eq!(stats.by_status.get(&200), Some(&2));
/// assert_eq!(stats.by_status.get(&400), Some(&1));
/// assert_eq!(stats.by_reason.get("BadDeviceToken"), Some(&1));
/// assert_eq!((stats.connections_opened, stats.tls_failures, stats.goaways), (1, 0, 0));
/// assert_eq!(stats.evicted, 1); // the log keeps 2 requests, the counters count all 3
/// # Ok(()) }
/// ```
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
