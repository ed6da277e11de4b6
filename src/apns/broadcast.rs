//! Broadcast push (iOS 18): channel management and broadcast sends for Live Activities.
//!
//! Channels are managed on Apple's channel-management hosts
//! ([`Endpoint::channel_management`](super::Endpoint::channel_management)); broadcasts are sent
//! on the normal push hosts. Both use the client's authentication and connection settings.
//!
//! ```
//! use herald::apns::{ApnsClient, Broadcast, LiveActivityEvent, MessageStoragePolicy, Payload};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! # let closed: herald::apns::Endpoint = include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/apns/doc_closed_endpoint.rs"));
//! # let client = ApnsClient::builder().endpoint(closed).build().unwrap();
//! # let result = async {
//! let channel = client.create_channel("com.example.app", MessageStoragePolicy::NoMessageStored).await?;
//! let mut payload = Payload::default();
//! payload.aps.event = Some(LiveActivityEvent::Update);
//! payload.aps.timestamp = Some(1_750_000_000);
//! payload.aps.content_state = Some(serde_json::json!({"score": "2-1"}));
//! let broadcast = Broadcast::builder("com.example.app", channel.clone()).payload(&payload)?.build()?;
//! let outcome = client.broadcast(broadcast).await;
//! client.delete_channel("com.example.app", &channel).await?;
//! # Ok::<(), herald::apns::Error>(()) }.await;
//! # assert!(result.unwrap_err().is_connect()); // nothing was sent
//! # }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};

use super::client::ApnsClient;
use super::error::{Error, ErrorKind};
use super::payload::Payload;
use super::pool::{Attempt, BodyUse, RequestSpec, Requeue};
use super::push::{Expiration, Priority, VOIP_PAYLOAD_LIMIT, is_well_formed_topic};
use super::response::{Answer as Reply, PushOutcome, parse_error_body};

/// A broadcast channel id (base64, as APNs assigns it).
///
/// ```
/// use herald::apns::ChannelId;
/// let id = ChannelId::new("dHN0LTEyMzQ1Njc4OTAxMjM0NTY=");
/// assert_eq!(id.as_str(), "dHN0LTEyMzQ1Njc4OTAxMjM0NTY=");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChannelId(String);

impl ChannelId {
    /// Wraps an id you stored earlier.
    ///
    /// ```
    /// # use herald::apns::ChannelId;
    /// let id = ChannelId::new("abc=");
    /// # let _ = id;
    /// ```
    pub fn new(id: impl Into<String>) -> ChannelId {
        ChannelId(id.into())
    }

    /// The id.
    ///
    /// ```
    /// # use herald::apns::ChannelId;
    /// assert_eq!(ChannelId::new("x").as_str(), "x");
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether APNs keeps the latest message of a channel for devices that are offline.
///
/// ```
/// use herald::apns::MessageStoragePolicy;
/// assert_eq!(MessageStoragePolicy::MostRecentMessageStored.as_u8(), 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageStoragePolicy {
    /// `0`: nothing stored; broadcasts must have `apns-expiration: 0`.
    NoMessageStored,
    /// `1`: the most recent message is stored.
    MostRecentMessageStored,
}

impl MessageStoragePolicy {
    /// The wire value.
    ///
    /// ```
    /// # use herald::apns::MessageStoragePolicy;
    /// assert_eq!(MessageStoragePolicy::NoMessageStored.as_u8(), 0);
    /// ```
    pub fn as_u8(self) -> u8 {
        match self {
            MessageStoragePolicy::NoMessageStored => 0,
            MessageStoragePolicy::MostRecentMessageStored => 1,
        }
    }
}

/// A channel's configuration, as read back from APNs.
///
/// ```
/// use herald::apns::{ChannelConfig, MessageStoragePolicy};
/// let c = ChannelConfig { storage_policy: MessageStoragePolicy::NoMessageStored, push_type: "LiveActivity".into() };
/// assert_eq!(c.push_type, "LiveActivity");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelConfig {
    /// The storage policy.
    pub storage_policy: MessageStoragePolicy,
    /// The push type (`LiveActivity`).
    pub push_type: String,
}

struct BroadcastInner {
    bundle_id: String,
    channel: ChannelId,
    priority: Priority,
    expiration: Option<Expiration>,
    apns_id: String,
    body: Bytes,
}

/// One broadcast to a channel: owned, cheap to clone. Build it with [`Broadcast::builder`].
///
/// ```
/// use herald::apns::{Broadcast, ChannelId, Payload};
/// let b = Broadcast::builder("com.example.app", ChannelId::new("abc=")).build().unwrap();
/// assert_eq!(b.apns_id().len(), 36);
/// ```
#[derive(Clone)]
pub struct Broadcast {
    inner: Arc<BroadcastInner>,
}

impl fmt::Debug for Broadcast {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broadcast")
            .field("bundle_id", &self.inner.bundle_id)
            .field("channel", &self.inner.channel)
            .field("apns_id", &self.inner.apns_id)
            .finish_non_exhaustive()
    }
}

impl Broadcast {
    /// Starts a broadcast on `channel` of the app `bundle_id`.
    ///
    /// ```
    /// # use herald::apns::{Broadcast, ChannelId};
    /// let b = Broadcast::builder("com.example.app", ChannelId::new("abc="));
    /// # drop(b);
    /// ```
    pub fn builder(bundle_id: impl Into<String>, channel: ChannelId) -> BroadcastBuilder {
        BroadcastBuilder {
            bundle_id: bundle_id.into(),
            channel,
            priority: Priority::Immediate,
            expiration: None,
            apns_id: None,
            body: None,
        }
    }

    /// The apns-id, the same on every retry.
    ///
    /// ```
    /// # use herald::apns::{Broadcast, ChannelId};
    /// # let b = Broadcast::builder("com.x", ChannelId::new("a=")).build().unwrap();
    /// assert!(!b.apns_id().is_empty());
    /// ```
    pub fn apns_id(&self) -> &str {
        &self.inner.apns_id
    }

    /// The channel.
    ///
    /// ```
    /// # use herald::apns::{Broadcast, ChannelId};
    /// # let b = Broadcast::builder("com.x", ChannelId::new("a=")).build().unwrap();
    /// assert_eq!(b.channel().as_str(), "a=");
    /// ```
    pub fn channel(&self) -> &ChannelId {
        &self.inner.channel
    }
}

/// Builds a [`Broadcast`].
///
/// ```
/// use herald::apns::{Broadcast, ChannelId, Expiration, Priority};
/// let b = Broadcast::builder("com.example.app", ChannelId::new("abc="))
///     .priority(Priority::PowerAware)
///     .expiration(Expiration::Immediately)
///     .build()
///     .unwrap();
/// # drop(b);
/// ```
#[derive(Debug, Clone)]
pub struct BroadcastBuilder {
    bundle_id: String,
    channel: ChannelId,
    priority: Priority,
    expiration: Option<Expiration>,
    apns_id: Option<String>,
    body: Option<Bytes>,
}

impl BroadcastBuilder {
    /// Priority: 10 (default) or 5.
    ///
    /// ```
    /// # use herald::apns::{Broadcast, ChannelId, Priority};
    /// assert!(Broadcast::builder("com.x", ChannelId::new("a=")).priority(Priority::Low).build().is_err());
    /// ```
    pub fn priority(mut self, p: Priority) -> Self {
        self.priority = p;
        self
    }

    /// Expiration (must be [`Expiration::Immediately`] on no-storage channels).
    ///
    /// ```
    /// # use herald::apns::{Broadcast, ChannelId, Expiration};
    /// let b = Broadcast::builder("com.x", ChannelId::new("a=")).expiration(Expiration::Immediately);
    /// # drop(b);
    /// ```
    pub fn expiration(mut self, e: Expiration) -> Self {
        self.expiration = Some(e);
        self
    }

    /// The apns-id (a UUID; generated when unset).
    ///
    /// ```
    /// # use herald::apns::{Broadcast, ChannelId};
    /// assert!(Broadcast::builder("com.x", ChannelId::new("a=")).apns_id("x").build().is_err());
    /// ```
    pub fn apns_id(mut self, id: impl Into<String>) -> Self {
        self.apns_id = Some(id.into());
        self
    }

    /// The payload (Live Activity keys in `aps`).
    ///
    /// ```
    /// # use herald::apns::{Broadcast, ChannelId, Payload};
    /// let b = Broadcast::builder("com.x", ChannelId::new("a=")).payload(&Payload::default()).unwrap();
    /// # drop(b);
    /// ```
    pub fn payload(mut self, payload: &Payload) -> Result<Self, Error> {
        self.body = Some(Bytes::from(payload.to_json()?));
        Ok(self)
    }

    /// Validates (priority 5 or 10, payload ≤ 5120 bytes) and builds.
    ///
    /// ```
    /// # use herald::apns::{Broadcast, ChannelId};
    /// assert!(Broadcast::builder("", ChannelId::new("a=")).build().is_err());
    /// ```
    pub fn build(self) -> Result<Broadcast, Error> {
        let invalid = |m: String| Error::new(ErrorKind::InvalidPush, m);
        check_bundle(&self.bundle_id)?;
        if self.channel.0.is_empty() || HeaderValue::from_str(&self.channel.0).is_err() {
            return Err(invalid("bad channel id".into()));
        }
        if self.priority == Priority::Low {
            return Err(invalid("broadcasts must have priority 5 or 10".into()));
        }
        let apns_id = match self.apns_id {
            Some(id) => uuid::Uuid::try_parse(id.trim())
                .map_err(|_| invalid(format!("apns-id must be a UUID, got {id:?}")))?
                .hyphenated()
                .to_string(),
            None => uuid::Uuid::new_v4().hyphenated().to_string(),
        };
        let body = self
            .body
            .unwrap_or_else(|| Bytes::from_static(br#"{"aps":{}}"#));
        if body.len() > VOIP_PAYLOAD_LIMIT {
            return Err(Error::too_large(body.len(), VOIP_PAYLOAD_LIMIT));
        }
        Ok(Broadcast {
            inner: Arc::new(BroadcastInner {
                bundle_id: self.bundle_id,
                channel: self.channel,
                priority: self.priority,
                expiration: self.expiration,
                apns_id,
                body,
            }),
        })
    }
}

fn header(name: &'static str, value: &str) -> Result<(HeaderName, HeaderValue), Error> {
    let v = HeaderValue::from_str(value)
        .map_err(|_| Error::new(ErrorKind::InvalidPush, format!("bad {name} value")))?;
    Ok((HeaderName::from_static(name), v))
}

/// A bundle id goes into the request's path: one that is not a well-formed bundle id (say,
/// with `?`, `#` or `%`, which would end or re-encode the path) is refused before sending.
fn check_bundle(bundle_id: &str) -> Result<(), Error> {
    if !is_well_formed_topic(bundle_id) {
        return Err(Error::new(
            ErrorKind::InvalidPush,
            format!("bad bundle id {bundle_id:?}"),
        ));
    }
    Ok(())
}

struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: Bytes,
}

impl ApnsClient {
    async fn manage(&self, spec: RequestSpec) -> Result<Answer, Error> {
        if self.is_closed() {
            return Err(Error::new(ErrorKind::Shutdown, "the client is shut down"));
        }
        let pool = self.manage_pool();
        let mut tries = 0u32;
        let mut requeue = Requeue::Back;
        loop {
            match pool.execute(&spec, requeue).await {
                Attempt::Response {
                    status,
                    headers,
                    body,
                    ..
                } => {
                    if (200..300).contains(&status) {
                        return Ok(Answer {
                            status,
                            headers,
                            body,
                        });
                    }
                    let (reason, _) = parse_error_body(status, &body);
                    return Err(Error::new(
                        ErrorKind::Rejected,
                        format!("APNs answered {status} {reason}: {}", reason.explain()),
                    )
                    .with_apns(status, reason));
                }
                Attempt::Unsent { error, refused_by } => {
                    if tries >= 3 {
                        return Err(error);
                    }
                    if refused_by.is_none() {
                        tokio::time::sleep(Duration::from_millis(200 << tries)).await;
                    }
                    tries += 1;
                    requeue = Requeue::Front { avoid: refused_by };
                }
                Attempt::Failed(e) => return Err(e),
            }
        }
    }

    /// Creates a broadcast channel for Live Activities of `bundle_id`.
    ///
    /// ```
    /// # use herald::apns::{ApnsClient, MessageStoragePolicy};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// # let closed: herald::apns::Endpoint = include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/apns/doc_closed_endpoint.rs"));
    /// # let client = ApnsClient::builder().endpoint(closed).build().unwrap();
    /// # let result = async {
    /// let id = client.create_channel("com.example.app", MessageStoragePolicy::MostRecentMessageStored).await?;
    /// println!("store {id}: broadcasts and later calls need it");
    /// # Ok::<(), herald::apns::Error>(()) }.await;
    /// # assert!(result.unwrap_err().is_connect()); // nothing was sent
    /// # }
    /// ```
    pub async fn create_channel(
        &self,
        bundle_id: &str,
        policy: MessageStoragePolicy,
    ) -> Result<ChannelId, Error> {
        check_bundle(bundle_id)?;
        let body = format!(
            r#"{{"message-storage-policy":{},"push-type":"LiveActivity"}}"#,
            policy.as_u8()
        );
        let answer = self
            .manage(RequestSpec {
                method: Method::POST,
                path: format!("/1/apps/{bundle_id}/channels"),
                headers: vec![header(
                    "apns-request-id",
                    &uuid::Uuid::new_v4().to_string(),
                )?],
                body: Bytes::from(body),
                answer: BodyUse::Result,
                uri: std::sync::OnceLock::new(),
            })
            .await?;
        answer
            .headers
            .get("apns-channel-id")
            .and_then(|v| v.to_str().ok())
            .map(ChannelId::new)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Protocol,
                    format!("APNs answered {} without apns-channel-id", answer.status),
                )
            })
    }

    /// Reads a channel's configuration.
    ///
    /// ```
    /// # use herald::apns::{ApnsClient, ChannelId};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// # let closed: herald::apns::Endpoint = include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/apns/doc_closed_endpoint.rs"));
    /// # let client = ApnsClient::builder().endpoint(closed).build().unwrap();
    /// # let result = async {
    /// let id = ChannelId::new("dHN0LTEyMzQ1Njc4OTAxMjM0NTY="); // as create_channel returned it
    /// let config = client.read_channel("com.example.app", &id).await?;
    /// println!("{:?}", config.storage_policy);
    /// # Ok::<(), herald::apns::Error>(()) }.await;
    /// # assert!(result.unwrap_err().is_connect()); // nothing was sent
    /// # }
    /// ```
    pub async fn read_channel(
        &self,
        bundle_id: &str,
        channel: &ChannelId,
    ) -> Result<ChannelConfig, Error> {
        check_bundle(bundle_id)?;
        let answer = self
            .manage(RequestSpec {
                method: Method::GET,
                path: format!("/1/apps/{bundle_id}/channels"),
                headers: vec![
                    header("apns-channel-id", channel.as_str())?,
                    header("apns-request-id", &uuid::Uuid::new_v4().to_string())?,
                ],
                body: Bytes::new(),
                answer: BodyUse::Result,
                uri: std::sync::OnceLock::new(),
            })
            .await?;
        let v: serde_json::Value = serde_json::from_slice(&answer.body).map_err(|_| {
            Error::new(ErrorKind::Protocol, "the channel configuration is not JSON")
        })?;
        let storage_policy = match v.get("message-storage-policy").and_then(|p| p.as_u64()) {
            Some(0) => MessageStoragePolicy::NoMessageStored,
            Some(1) => MessageStoragePolicy::MostRecentMessageStored,
            _ => {
                return Err(Error::new(
                    ErrorKind::Protocol,
                    "the channel configuration has no valid message-storage-policy",
                ));
            }
        };
        let push_type = v
            .get("push-type")
            .and_then(|p| p.as_str())
            .unwrap_or_default()
            .to_owned();
        Ok(ChannelConfig {
            storage_policy,
            push_type,
        })
    }

    /// Lists the channel ids of `bundle_id`.
    ///
    /// ```
    /// # use herald::apns::ApnsClient;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// # let closed: herald::apns::Endpoint = include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/apns/doc_closed_endpoint.rs"));
    /// # let client = ApnsClient::builder().endpoint(closed).build().unwrap();
    /// # let result = async {
    /// for id in client.list_channels("com.example.app").await? {
    ///     println!("{id}");
    /// }
    /// # Ok::<(), herald::apns::Error>(()) }.await;
    /// # assert!(result.unwrap_err().is_connect()); // nothing was sent
    /// # }
    /// ```
    pub async fn list_channels(&self, bundle_id: &str) -> Result<Vec<ChannelId>, Error> {
        check_bundle(bundle_id)?;
        let answer = self
            .manage(RequestSpec {
                method: Method::GET,
                path: format!("/1/apps/{bundle_id}/all-channels"),
                headers: vec![header(
                    "apns-request-id",
                    &uuid::Uuid::new_v4().to_string(),
                )?],
                body: Bytes::new(),
                answer: BodyUse::Result,
                uri: std::sync::OnceLock::new(),
            })
            .await?;
        let v: serde_json::Value = serde_json::from_slice(&answer.body)
            .map_err(|_| Error::new(ErrorKind::Protocol, "the channel list is not JSON"))?;
        Ok(v.get("channels")
            .and_then(|c| c.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|id| id.as_str().map(ChannelId::new))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Deletes a channel.
    ///
    /// ```
    /// # use herald::apns::{ApnsClient, ChannelId};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// # let closed: herald::apns::Endpoint = include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/apns/doc_closed_endpoint.rs"));
    /// # let client = ApnsClient::builder().endpoint(closed).build().unwrap();
    /// # let id = ChannelId::new("dHN0LTEyMzQ1Njc4OTAxMjM0NTY=");
    /// # let result = async {
    /// client.delete_channel("com.example.app", &id).await?;
    /// # Ok::<(), herald::apns::Error>(()) }.await;
    /// # assert!(result.unwrap_err().is_connect()); // nothing was sent
    /// # }
    /// ```
    pub async fn delete_channel(&self, bundle_id: &str, channel: &ChannelId) -> Result<(), Error> {
        check_bundle(bundle_id)?;
        self.manage(RequestSpec {
            method: Method::DELETE,
            path: format!("/1/apps/{bundle_id}/channels"),
            headers: vec![
                header("apns-channel-id", channel.as_str())?,
                header("apns-request-id", &uuid::Uuid::new_v4().to_string())?,
            ],
            body: Bytes::new(),
            answer: BodyUse::Result,
            uri: std::sync::OnceLock::new(),
        })
        .await?;
        Ok(())
    }

    /// Sends a broadcast; like [`ApnsClient::send`], it ends in exactly one [`PushOutcome`],
    /// which hands the broadcast back when rejected or failed.
    ///
    /// ```
    /// # use herald::apns::{ApnsClient, Broadcast, ChannelId};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// # let closed: herald::apns::Endpoint = include!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/apns/doc_closed_endpoint.rs"));
    /// # let client = ApnsClient::builder().endpoint(closed).build().unwrap();
    /// # let b = Broadcast::builder("com.example.app", ChannelId::new("dHN0LTEyMzQ1Njc4OTAxMjM0NTY="))
    /// #     .build()
    /// #     .unwrap();
    /// # let sent_id = b.apns_id().to_owned();
    /// # let mut returned = false;
    /// let outcome = client.broadcast(b).await;
    /// # assert!(outcome.error().is_some_and(|e| e.is_connect()), "{outcome:?}");
    /// if let Some(back) = outcome.into_push() {
    ///     // Rejected or failed: the broadcast comes back, with its apns-id, to fix or resend.
    ///     println!("broadcast {} not delivered", back.apns_id());
    /// #   assert_eq!(back.apns_id(), sent_id);
    /// #   returned = true;
    /// }
    /// # assert!(returned);
    /// # }
    /// ```
    pub async fn broadcast(&self, broadcast: Broadcast) -> PushOutcome<Broadcast> {
        let b = &*broadcast.inner;
        let mut headers = Vec::with_capacity(5);
        let mut add = |name: &'static str, value: &str| {
            if let Ok(h) = header(name, value) {
                headers.push(h);
            }
        };
        add("apns-channel-id", b.channel.as_str());
        add("apns-push-type", "liveactivity");
        add("apns-priority", &b.priority.as_u8().to_string());
        add("apns-id", &b.apns_id);
        if let Some(e) = b.expiration {
            add("apns-expiration", &e.header_value());
        }
        let spec = Arc::new(RequestSpec {
            method: Method::POST,
            path: format!("/4/broadcasts/apps/{}", b.bundle_id),
            headers,
            body: b.body.clone(),
            answer: BodyUse::Outcome,
            uri: std::sync::OnceLock::new(),
        });
        if self.is_closed() {
            return Reply::Failed(Error::new(ErrorKind::Shutdown, "the client is shut down"))
                .with(broadcast);
        }
        let answer = self.deliver(spec, &b.apns_id, None, self.pool()).await;
        answer.with(broadcast)
    }
}
