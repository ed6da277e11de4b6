//! One notification request: [`Push`], built and validated by [`PushBuilder`].
//!
//! A `Push` is owned, `Clone + Send + Sync + 'static` and cheap to clone (one `Arc`): it can be
//! queued across tasks and retried without copying the payload. Everything APNs would reject
//! for its form is rejected at build time instead, with a typed [`Error`]:
//!
//! - the device token must be hex (any even length: 64 is common, 108 and 160 exist);
//! - the topic must be a well-formed bundle id (labels of letters, digits, `-`, `_` joined by
//!   single dots), and gets the push type's suffix (`.voip`, `.push-type.liveactivity`, ...) if
//!   missing;
//! - the priority must be allowed for the push type (background: 5; push-to-talk: 10);
//! - the collapse id is at most 64 bytes;
//! - the payload is checked byte-exact against 4096 bytes (5120 for VoIP).
//!
//! ```
//! use herald::apns::{Payload, Priority, Push, PushType};
//!
//! let push = Push::builder("a1b2c3d4e5f6", "com.example.app")
//!     .push_type(PushType::Voip)
//!     .payload(&Payload::alert("Incoming call"))
//!     .unwrap()
//!     .build()
//!     .unwrap();
//! assert_eq!(push.topic(), "com.example.app.voip");
//! assert_eq!(push.priority(), Priority::Immediate);
//! assert_eq!(push.apns_id().len(), 36);
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::RedactedToken;
use super::error::{Error, ErrorKind};
use super::payload::Payload;

/// The payload limit for most push types, in bytes.
///
/// ```
/// use herald::apns::{PAYLOAD_LIMIT, Push};
/// assert_eq!(PAYLOAD_LIMIT, 4096);
/// // A raw JSON payload of exactly `n` bytes.
/// let json = |n: usize| format!(r#"{{"aps":{{}},"p":"{}"}}"#, "x".repeat(n - 17));
/// let push = |n| Push::builder("00ff", "com.example.app").raw_payload(json(n)).build();
/// assert!(push(PAYLOAD_LIMIT).is_ok());
/// let too_large = push(PAYLOAD_LIMIT + 1).unwrap_err().payload_too_large().unwrap();
/// assert_eq!((too_large.limit, too_large.over_by), (PAYLOAD_LIMIT, 1));
/// ```
pub const PAYLOAD_LIMIT: usize = 4096;
/// The payload limit for VoIP pushes and broadcasts, in bytes.
///
/// ```
/// use herald::apns::{PAYLOAD_LIMIT, Push, PushType, VOIP_PAYLOAD_LIMIT};
/// assert_eq!(VOIP_PAYLOAD_LIMIT, 5120);
/// // A raw JSON payload of exactly `n` bytes.
/// let json = |n: usize| format!(r#"{{"aps":{{}},"p":"{}"}}"#, "x".repeat(n - 17));
/// let push = |t, n| Push::builder("00ff", "com.example.app").push_type(t).raw_payload(json(n)).build();
/// assert!(push(PushType::Voip, VOIP_PAYLOAD_LIMIT).is_ok());
/// let too_large = push(PushType::Voip, VOIP_PAYLOAD_LIMIT + 1).unwrap_err().payload_too_large().unwrap();
/// assert_eq!(too_large.limit, VOIP_PAYLOAD_LIMIT);
/// // The same size is too large for an alert.
/// let too_large = push(PushType::Alert, VOIP_PAYLOAD_LIMIT).unwrap_err().payload_too_large().unwrap();
/// assert_eq!(too_large.limit, PAYLOAD_LIMIT);
/// ```
pub const VOIP_PAYLOAD_LIMIT: usize = 5120;

/// `apns-push-type`, with its topic suffix and priority rules.
///
/// ```
/// use herald::apns::PushType;
/// assert_eq!(PushType::LiveActivity.as_str(), "liveactivity");
/// assert_eq!(PushType::LiveActivity.topic_suffix(), ".push-type.liveactivity");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum PushType {
    /// A user-visible alert (the default).
    #[default]
    Alert,
    /// A silent background update (priority 5, `content-available: 1`).
    Background,
    /// A VoIP call (PushKit); payload limit 5120.
    Voip,
    /// A watchOS complication update.
    Complication,
    /// A file provider update.
    FileProvider,
    /// A location query (token auth only).
    Location,
    /// An MDM wake-up (topic from the MDM certificate).
    Mdm,
    /// A Live Activity update (token auth only).
    LiveActivity,
    /// Push to talk.
    PushToTalk,
    /// A widget reload.
    Widgets,
    /// A control reload.
    Controls,
}

impl PushType {
    /// The `apns-push-type` header value.
    ///
    /// ```
    /// # use herald::apns::PushType;
    /// assert_eq!(PushType::PushToTalk.as_str(), "pushtotalk");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            PushType::Alert => "alert",
            PushType::Background => "background",
            PushType::Voip => "voip",
            PushType::Complication => "complication",
            PushType::FileProvider => "fileprovider",
            PushType::Location => "location",
            PushType::Mdm => "mdm",
            PushType::LiveActivity => "liveactivity",
            PushType::PushToTalk => "pushtotalk",
            PushType::Widgets => "widgets",
            PushType::Controls => "controls",
        }
    }

    /// The suffix APNs expects on the bundle id for this push type (empty for alert).
    ///
    /// ```
    /// # use herald::apns::PushType;
    /// assert_eq!(PushType::Alert.topic_suffix(), "");
    /// assert_eq!(PushType::PushToTalk.topic_suffix(), ".voip-ptt");
    /// ```
    pub fn topic_suffix(self) -> &'static str {
        match self {
            PushType::Alert | PushType::Background | PushType::Mdm => "",
            PushType::Voip => ".voip",
            PushType::Complication => ".complication",
            PushType::FileProvider => ".pushkit.fileprovider",
            PushType::Location => ".location-query",
            PushType::LiveActivity => ".push-type.liveactivity",
            PushType::PushToTalk => ".voip-ptt",
            PushType::Widgets => ".push-type.widgets",
            PushType::Controls => ".push-type.controls",
        }
    }

    /// The payload size limit for this push type.
    ///
    /// ```
    /// # use herald::apns::PushType;
    /// assert_eq!(PushType::Voip.payload_limit(), 5120);
    /// assert_eq!(PushType::Alert.payload_limit(), 4096);
    /// ```
    pub fn payload_limit(self) -> usize {
        match self {
            PushType::Voip => VOIP_PAYLOAD_LIMIT,
            _ => PAYLOAD_LIMIT,
        }
    }

    fn default_priority(self) -> Priority {
        match self {
            PushType::Background => Priority::PowerAware,
            _ => Priority::Immediate,
        }
    }
}

/// `apns-priority`.
///
/// ```
/// use herald::apns::Priority;
/// assert_eq!(Priority::PowerAware.as_u8(), 5);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Priority {
    /// `10`: deliver immediately (the default).
    #[default]
    Immediate,
    /// `5`: deliver considering the device's power.
    PowerAware,
    /// `1`: never wake the device.
    Low,
}

impl Priority {
    /// The header value: 10, 5 or 1.
    ///
    /// ```
    /// # use herald::apns::Priority;
    /// assert_eq!(Priority::Low.as_u8(), 1);
    /// ```
    pub fn as_u8(self) -> u8 {
        match self {
            Priority::Immediate => 10,
            Priority::PowerAware => 5,
            Priority::Low => 1,
        }
    }
}

/// `apns-expiration`.
///
/// ```
/// use herald::apns::Expiration;
/// use std::time::{Duration, UNIX_EPOCH};
/// let e = Expiration::At(UNIX_EPOCH + Duration::from_secs(1_900_000_000));
/// assert_eq!(e.header_value(), "1900000000");
/// assert_eq!(Expiration::Immediately.header_value(), "0");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Expiration {
    /// `0`: one delivery attempt, not stored.
    Immediately,
    /// Stored and retried until this instant.
    At(SystemTime),
}

impl Expiration {
    /// The header value (UNIX seconds).
    ///
    /// ```
    /// # use herald::apns::Expiration;
    /// assert_eq!(Expiration::Immediately.header_value(), "0");
    /// ```
    pub fn header_value(self) -> String {
        match self {
            Expiration::Immediately => "0".to_owned(),
            Expiration::At(t) => t
                .duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO)
                .as_secs()
                .max(1)
                .to_string(),
        }
    }
}

/// A topic APNs can parse: a bundle id (with or without a push type's suffix), in labels of
/// ASCII letters, digits, `-` and `_` joined by single dots. Apple answers 400 `BadTopic` to
/// anything else.
///
/// The mock applies the same rule (`valid_topic` in `src/mock/rules.rs`). The two cannot
/// share one function: the client and the mock never import each other (ARCHITECTURE.md,
/// "Walls"), and the `mock` feature does not build the client. `tests/apns_mock.rs` checks that
/// they agree.
pub(crate) fn is_well_formed_topic(topic: &str) -> bool {
    !topic.is_empty()
        && !topic.starts_with('.')
        && !topic.ends_with('.')
        && !topic.contains("..")
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
}

pub(crate) struct PushInner {
    pub(crate) device_token: String,
    pub(crate) topic: String,
    pub(crate) push_type: PushType,
    pub(crate) priority: Priority,
    pub(crate) expiration: Option<Expiration>,
    pub(crate) collapse_id: Option<String>,
    pub(crate) apns_id: String,
    pub(crate) body: Bytes,
}

/// One notification for one device. Build it with [`Push::builder`].
///
/// ```
/// use herald::apns::{Payload, Push};
/// let push = Push::builder("00aa", "com.example.app").payload(&Payload::alert("hi")).unwrap().build().unwrap();
/// let copy = push.clone(); // cheap: one Arc
/// assert_eq!(copy.apns_id(), push.apns_id());
/// assert_eq!(push.body(), br#"{"aps":{"alert":"hi"}}"#);
/// ```
#[derive(Clone)]
pub struct Push {
    pub(crate) inner: Arc<PushInner>,
}

/// Shows the device token's first 8 characters only (see the [module docs](super)).
impl fmt::Debug for Push {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Push")
            .field("apns_id", &self.inner.apns_id)
            .field("device_token", &RedactedToken(&self.inner.device_token))
            .field("topic", &self.inner.topic)
            .field("push_type", &self.inner.push_type)
            .field("priority", &self.inner.priority)
            .field("bytes", &self.inner.body.len())
            .finish()
    }
}

impl Push {
    /// Starts a push to `device_token` (hex) for `topic` (usually the app's bundle id).
    ///
    /// ```
    /// use herald::apns::Push;
    /// let builder = Push::builder("0f".repeat(80), "com.example.app"); // 160 hex digits is fine
    /// assert!(builder.build().is_ok());
    /// ```
    pub fn builder(device_token: impl Into<String>, topic: impl Into<String>) -> PushBuilder {
        PushBuilder {
            device_token: device_token.into(),
            topic: topic.into(),
            push_type: PushType::Alert,
            priority: None,
            expiration: None,
            collapse_id: None,
            apns_id: None,
            body: None,
        }
    }

    /// The device token, lowercase hex.
    ///
    /// ```
    /// # use herald::apns::Push;
    /// assert_eq!(Push::builder("ABCD", "t").build().unwrap().device_token(), "abcd");
    /// ```
    pub fn device_token(&self) -> &str {
        &self.inner.device_token
    }

    /// The topic, with the push type's suffix.
    ///
    /// ```
    /// # use herald::apns::Push;
    /// assert_eq!(Push::builder("ab", "com.x").build().unwrap().topic(), "com.x");
    /// ```
    pub fn topic(&self) -> &str {
        &self.inner.topic
    }

    /// The push type.
    ///
    /// ```
    /// # use herald::apns::{Push, PushType};
    /// assert_eq!(Push::builder("ab", "com.x").build().unwrap().push_type(), PushType::Alert);
    /// ```
    pub fn push_type(&self) -> PushType {
        self.inner.push_type
    }

    /// The priority.
    ///
    /// ```
    /// # use herald::apns::{Priority, Push};
    /// assert_eq!(Push::builder("ab", "com.x").build().unwrap().priority(), Priority::Immediate);
    /// ```
    pub fn priority(&self) -> Priority {
        self.inner.priority
    }

    /// The expiration, if set.
    ///
    /// ```
    /// # use herald::apns::Push;
    /// assert!(Push::builder("ab", "com.x").build().unwrap().expiration().is_none());
    /// ```
    pub fn expiration(&self) -> Option<Expiration> {
        self.inner.expiration
    }

    /// The collapse id, if set.
    ///
    /// ```
    /// # use herald::apns::Push;
    /// let p = Push::builder("ab", "com.x").collapse_id("score").build().unwrap();
    /// assert_eq!(p.collapse_id(), Some("score"));
    /// ```
    pub fn collapse_id(&self) -> Option<&str> {
        self.inner.collapse_id.as_deref()
    }

    /// The apns-id (lowercase UUID), the same on every retry.
    ///
    /// ```
    /// # use herald::apns::Push;
    /// let p = Push::builder("ab", "com.x").apns_id("123E4567-E89B-12D3-A456-426614174000").build().unwrap();
    /// assert_eq!(p.apns_id(), "123e4567-e89b-12d3-a456-426614174000");
    /// ```
    pub fn apns_id(&self) -> &str {
        &self.inner.apns_id
    }

    /// The payload bytes as they will be sent.
    ///
    /// ```
    /// # use herald::apns::Push;
    /// assert_eq!(Push::builder("ab", "com.x").build().unwrap().body(), br#"{"aps":{}}"#);
    /// ```
    pub fn body(&self) -> &[u8] {
        &self.inner.body
    }
}

/// Builds a [`Push`]; see [`Push::builder`].
///
/// ```
/// use herald::apns::{Expiration, Payload, Priority, Push, PushType};
/// let push = Push::builder("00ff", "com.example.app")
///     .push_type(PushType::Background)
///     .priority(Priority::PowerAware)
///     .expiration(Expiration::Immediately)
///     .collapse_id("sync")
///     .payload(&Payload::background()).unwrap()
///     .build()
///     .unwrap();
/// assert_eq!(push.priority().as_u8(), 5);
/// ```
#[derive(Clone)]
pub struct PushBuilder {
    device_token: String,
    topic: String,
    push_type: PushType,
    priority: Option<Priority>,
    expiration: Option<Expiration>,
    collapse_id: Option<String>,
    apns_id: Option<String>,
    body: Option<(Bytes, Option<Payload>)>,
}

/// Shows the device token's first 8 characters only (see the [module docs](super)), and the
/// payload's size rather than its bytes.
impl fmt::Debug for PushBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushBuilder")
            .field("device_token", &RedactedToken(&self.device_token))
            .field("topic", &self.topic)
            .field("push_type", &self.push_type)
            .field("priority", &self.priority)
            .field("expiration", &self.expiration)
            .field("collapse_id", &self.collapse_id)
            .field("apns_id", &self.apns_id)
            .field("bytes", &self.body.as_ref().map(|(b, _)| b.len()))
            .finish()
    }
}

impl PushBuilder {
    /// Sets the push type (default [`PushType::Alert`]).
    ///
    /// ```
    /// # use herald::apns::{Push, PushType};
    /// let p = Push::builder("ab", "com.x").push_type(PushType::Complication).build().unwrap();
    /// assert_eq!(p.topic(), "com.x.complication");
    /// ```
    pub fn push_type(mut self, push_type: PushType) -> PushBuilder {
        self.push_type = push_type;
        self
    }

    /// Sets the priority (default: 10, or 5 for background).
    ///
    /// ```
    /// # use herald::apns::{Priority, Push, PushType};
    /// let err = Push::builder("ab", "com.x").push_type(PushType::Background).priority(Priority::Immediate).build();
    /// assert!(err.unwrap_err().is_invalid_push());
    /// ```
    pub fn priority(mut self, priority: Priority) -> PushBuilder {
        self.priority = Some(priority);
        self
    }

    /// Sets the expiration.
    ///
    /// ```
    /// # use herald::apns::{Expiration, Push};
    /// let p = Push::builder("ab", "com.x").expiration(Expiration::Immediately).build().unwrap();
    /// assert_eq!(p.expiration(), Some(Expiration::Immediately));
    /// ```
    pub fn expiration(mut self, expiration: Expiration) -> PushBuilder {
        self.expiration = Some(expiration);
        self
    }

    /// Sets the collapse id (at most 64 bytes).
    ///
    /// ```
    /// # use herald::apns::Push;
    /// assert!(Push::builder("ab", "com.x").collapse_id("x".repeat(65)).build().is_err());
    /// ```
    pub fn collapse_id(mut self, id: impl Into<String>) -> PushBuilder {
        self.collapse_id = Some(id.into());
        self
    }

    /// Sets the apns-id (a UUID, any case); generated when unset.
    ///
    /// ```
    /// # use herald::apns::Push;
    /// assert!(Push::builder("ab", "com.x").apns_id("nope").build().is_err());
    /// ```
    pub fn apns_id(mut self, id: impl Into<String>) -> PushBuilder {
        self.apns_id = Some(id.into());
        self
    }

    /// Sets the typed payload (serialized now; the size is checked at [`PushBuilder::build`]).
    ///
    /// ```
    /// # use herald::apns::{Payload, Push};
    /// let p = Push::builder("ab", "com.x").payload(&Payload::alert("x")).unwrap().build().unwrap();
    /// assert_eq!(p.body(), br#"{"aps":{"alert":"x"}}"#);
    /// ```
    pub fn payload(mut self, payload: &Payload) -> Result<PushBuilder, Error> {
        let json = payload.to_json()?;
        self.body = Some((Bytes::from(json), Some(payload.clone())));
        Ok(self)
    }

    /// Sets the payload from raw JSON bytes, sent as is (must be a JSON object).
    ///
    /// ```
    /// # use herald::apns::Push;
    /// let p = Push::builder("ab", "com.x").raw_payload(r#"{"aps":{"badge":1}}"#).build().unwrap();
    /// assert_eq!(p.body(), br#"{"aps":{"badge":1}}"#);
    /// assert!(Push::builder("ab", "com.x").raw_payload("[1]").build().is_err());
    /// ```
    pub fn raw_payload(mut self, json: impl Into<Vec<u8>>) -> PushBuilder {
        self.body = Some((Bytes::from(json.into()), None));
        self
    }

    /// Validates everything and builds the push.
    ///
    /// ```
    /// # use herald::apns::Push;
    /// assert!(Push::builder("", "com.x").build().unwrap_err().is_invalid_push());
    /// ```
    pub fn build(self) -> Result<Push, Error> {
        let invalid = |m: String| Error::new(ErrorKind::InvalidPush, m);
        let token = self.device_token.trim();
        if token.is_empty() {
            return Err(invalid("device token is empty".into()));
        }
        if let Some(at) = token.bytes().position(|b| !b.is_ascii_hexdigit()) {
            // The position, not the token: a token is not printed whole anywhere.
            return Err(invalid(format!(
                "device token must be hex digits (0-9, a-f, A-F); character {} of {} is not one",
                at + 1,
                token.chars().count()
            )));
        }
        if !token.len().is_multiple_of(2) {
            return Err(invalid(format!(
                "device token must be an even number of hex digits, got {}",
                token.len()
            )));
        }
        let device_token = token.to_ascii_lowercase();

        let mut topic = self.topic.trim().to_owned();
        if topic.is_empty() {
            return Err(invalid("topic is empty".into()));
        }
        if !is_well_formed_topic(&topic) {
            return Err(invalid(format!(
                "topic must be a bundle id (letters, digits, '-', '_', in labels joined by single dots): {topic:?}"
            )));
        }
        let suffix = self.push_type.topic_suffix();
        if !suffix.is_empty() && !topic.ends_with(suffix) {
            topic.push_str(suffix);
        }

        let priority = self
            .priority
            .unwrap_or_else(|| self.push_type.default_priority());
        match (self.push_type, priority) {
            (PushType::Background, Priority::PowerAware) => {}
            (PushType::Background, p) => {
                return Err(invalid(format!(
                    "background pushes must have priority 5, got {}",
                    p.as_u8()
                )));
            }
            (PushType::PushToTalk, Priority::Immediate) => {}
            (PushType::PushToTalk, p) => {
                return Err(invalid(format!(
                    "push-to-talk pushes must have priority 10, got {}",
                    p.as_u8()
                )));
            }
            (PushType::LiveActivity, Priority::Low) => {
                return Err(invalid(
                    "Live Activity pushes must have priority 5 or 10, got 1".into(),
                ));
            }
            _ => {}
        }

        if let Some(c) = &self.collapse_id {
            if c.len() > 64 {
                return Err(invalid(format!(
                    "collapse id is {} bytes, the limit is 64",
                    c.len()
                )));
            }
            if !c.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                return Err(invalid("collapse id must be printable ASCII".into()));
            }
        }

        let apns_id = match self.apns_id {
            Some(id) => {
                let parsed = uuid::Uuid::try_parse(id.trim())
                    .map_err(|_| invalid(format!("apns-id must be a UUID, got {id:?}")))?;
                parsed.hyphenated().to_string()
            }
            None => uuid::Uuid::new_v4().hyphenated().to_string(),
        };

        let (body, typed) = match self.body {
            Some(b) => b,
            None => (Bytes::from_static(br#"{"aps":{}}"#), None),
        };
        if typed.is_none() {
            match serde_json::from_slice::<serde_json::Value>(&body) {
                Ok(serde_json::Value::Object(_)) => {}
                _ => return Err(invalid("raw payload must be a JSON object".into())),
            }
        }
        if self.push_type == PushType::Background
            && let Some(p) = &typed
            && (p.aps.alert.is_some() || p.aps.badge.is_some() || p.aps.sound.is_some())
        {
            return Err(invalid(
                "background pushes carry no alert, badge or sound".into(),
            ));
        }
        let limit = self.push_type.payload_limit();
        if body.len() > limit {
            return Err(Error::too_large(body.len(), limit));
        }

        Ok(Push {
            inner: Arc::new(PushInner {
                device_token,
                topic,
                push_type: self.push_type,
                priority,
                expiration: self.expiration,
                collapse_id: self.collapse_id,
                apns_id,
                body,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_is_send_sync_static() {
        fn check<T: Clone + Send + Sync + 'static>() {}
        check::<Push>();
        check::<PushBuilder>();
    }

    #[test]
    fn size_check_is_byte_exact() {
        let exact = "x".repeat(PAYLOAD_LIMIT - 20); // {"aps":{"alert":""}} is 20 bytes
        let p = Push::builder("ab", "t")
            .payload(&Payload::alert(exact.as_str()))
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(p.body().len(), PAYLOAD_LIMIT);
        let over = format!("{exact}y");
        let err = Push::builder("ab", "t")
            .payload(&Payload::alert(over.as_str()))
            .unwrap()
            .build()
            .unwrap_err();
        assert_eq!(err.payload_too_large().unwrap().over_by, 1);
    }

    #[test]
    fn voip_limit_is_5120() {
        let body = format!(r#"{{"aps":{{}},"x":"{}"}}"#, "y".repeat(5000));
        assert!(
            Push::builder("ab", "t")
                .raw_payload(body.clone())
                .build()
                .is_err()
        );
        assert!(
            Push::builder("ab", "t")
                .push_type(PushType::Voip)
                .raw_payload(body)
                .build()
                .is_ok()
        );
    }

    proptest::proptest! {
        #[test]
        fn building_never_panics(token in ".{0,200}", topic in ".{0,80}", collapse in proptest::option::of(".{0,80}"), id in proptest::option::of(".{0,40}"), body in proptest::collection::vec(proptest::num::u8::ANY, 0..6000)) {
            let mut b = Push::builder(token.clone(), topic).raw_payload(body);
            if let Some(c) = collapse { b = b.collapse_id(c); }
            if let Some(i) = id { b = b.apns_id(i); }
            match b.build() {
                Ok(p) => {
                    proptest::prop_assert!(p.device_token().len() % 2 == 0);
                    proptest::prop_assert!(p.device_token().bytes().all(|c| c.is_ascii_hexdigit()));
                    proptest::prop_assert!(p.body().len() <= PAYLOAD_LIMIT);
                    proptest::prop_assert!(p.collapse_id().is_none_or(|c| c.len() <= 64));
                    proptest::prop_assert!(uuid::Uuid::try_parse(p.apns_id()).is_ok());
                    proptest::prop_assert!(is_well_formed_topic(p.topic()));
                }
                Err(e) => proptest::prop_assert!(e.is_invalid_push() || e.is_payload_too_large()),
            }
        }

        #[test]
        fn hex_tokens_of_any_even_length_are_accepted(bytes in proptest::collection::vec(proptest::num::u8::ANY, 1..100)) {
            let token: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
            let p = Push::builder(token.clone(), "com.x").build().unwrap();
            proptest::prop_assert_eq!(p.device_token(), token.to_ascii_lowercase());
        }

        #[test]
        fn typed_payloads_serialize_within_limits_or_say_by_how_much(text in ".{0,5000}", badge in proptest::option::of(0u32..1000)) {
            let mut payload = Payload::alert(text.as_str());
            payload.aps.badge = badge;
            let json = payload.to_json().unwrap();
            match Push::builder("ab", "com.x").payload(&payload).unwrap().build() {
                Ok(p) => proptest::prop_assert_eq!(p.body(), &json[..]),
                Err(e) => {
                    let t = e.payload_too_large().unwrap();
                    proptest::prop_assert_eq!(t.size, json.len());
                    proptest::prop_assert_eq!(t.over_by, json.len() - PAYLOAD_LIMIT);
                }
            }
        }
    }

    #[test]
    fn a_malformed_token_is_named_for_what_is_wrong_without_echoing_it() {
        let non_hex = Push::builder("ab12zz34", "com.x").build().unwrap_err();
        let msg = non_hex.to_string();
        assert!(
            msg.contains("hex digits") && msg.contains("character 5 of 8"),
            "{msg}"
        );
        assert!(!msg.contains("ab12zz34"), "{msg}");
        let odd = Push::builder("abc", "com.x")
            .build()
            .unwrap_err()
            .to_string();
        assert!(odd.contains("even number of hex digits, got 3"), "{odd}");
    }

    #[test]
    fn malformed_topics_are_invalid_push() {
        for topic in [
            "com..x", "com.x/y", ".com.x", "com.x.", "com x", "com.x!", "com:x", "cöm.x", "com\t.x",
        ] {
            let err = Push::builder("ab", topic).build().unwrap_err();
            assert!(err.is_invalid_push(), "{topic:?}: {err:?}");
        }
        for topic in ["com.x", "A", "com.my-app.x_y2", "  com.x  "] {
            assert!(Push::builder("ab", topic).build().is_ok(), "{topic:?}");
        }
    }

    #[test]
    fn suffix_not_doubled() {
        let p = Push::builder("ab", "com.x.voip")
            .push_type(PushType::Voip)
            .build()
            .unwrap();
        assert_eq!(p.topic(), "com.x.voip");
    }

    #[test]
    fn background_with_alert_is_rejected() {
        let err = Push::builder("ab", "com.x")
            .push_type(PushType::Background)
            .payload(&Payload::alert("x"))
            .unwrap()
            .build()
            .unwrap_err();
        assert!(err.is_invalid_push());
    }
}
