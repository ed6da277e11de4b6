//! The notification payload: the typed `aps` dictionary plus custom keys beside it.
//!
//! Every field of `aps` that Apple documents is here, optional, with Apple's key names on the
//! wire (`thread-id`, `content-available`, ...). Custom keys go beside `aps`, never inside it
//! (APNs ignores them there): use [`Payload::custom`].
//!
//! ```
//! use herald::apns::{Alert, Payload, Sound};
//!
//! let payload = Payload::alert(Alert::title_body("Order shipped", "Your order #42 is on its way"))
//!     .badge(1)
//!     .sound(Sound::named("default"))
//!     .custom("order_id", 42)
//!     .unwrap();
//! let json = payload.to_json().unwrap();
//! assert_eq!(
//!     String::from_utf8(json).unwrap(),
//!     r#"{"aps":{"alert":{"title":"Order shipped","body":"Your order #42 is on its way"},"badge":1,"sound":"default"},"order_id":42}"#
//! );
//! ```

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::{Error, ErrorKind, Msg};

/// A complete notification payload: `{"aps": {...}, <custom keys>...}`.
///
/// ```
/// use herald::apns::Payload;
/// let p = Payload::background();
/// assert_eq!(p.to_json().unwrap(), br#"{"aps":{"content-available":1}}"#);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    /// Apple's dictionary.
    pub aps: Aps,
    /// Custom keys, serialized beside `aps`.
    #[serde(flatten)]
    pub custom: Map<String, Value>,
}

/// The `aps` dictionary. All fields are optional; unset ones are not sent.
///
/// ```
/// use herald::apns::{Aps, InterruptionLevel, Payload};
/// let payload = Payload {
///     aps: Aps {
///         alert: Some("Hi".into()),
///         interruption_level: Some(InterruptionLevel::TimeSensitive),
///         relevance_score: Some(0.5),
///         ..Aps::default()
///     },
///     ..Payload::default()
/// };
/// assert!(String::from_utf8(payload.to_json().unwrap()).unwrap().contains(r#""interruption-level":"time-sensitive""#));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Aps {
    /// The alert: a string, or a dictionary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<Alert>,
    /// The badge number; 0 clears it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub badge: Option<u32>,
    /// The sound: a name, or a critical-alert dictionary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sound: Option<Sound>,
    /// Groups notifications.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    /// The notification category (actions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// `1` for a background update.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_available: Option<u8>,
    /// `1` lets a notification service extension modify the content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mutable_content: Option<u8>,
    /// The window to bring forward.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_content_id: Option<String>,
    /// Importance and delivery timing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interruption_level: Option<InterruptionLevel>,
    /// 0.0 ..= 1.0, for notification summaries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relevance_score: Option<f64>,
    /// Focus filter criteria.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_criteria: Option<String>,
    /// Live Activity: the UNIX time (seconds) of this update.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<u64>,
    /// Live Activity: start, update or end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<LiveActivityEvent>,
    /// Live Activity: the app's content state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_state: Option<Value>,
    /// Live Activity: UNIX time after which the content is stale.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale_date: Option<u64>,
    /// Live Activity: UNIX time at which an ended activity leaves the lock screen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dismissal_date: Option<u64>,
    /// Live Activity (start): the attributes type name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes_type: Option<String>,
    /// Live Activity (start): the attributes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Value>,
    /// Live Activity (start): request a push token for the new activity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_push_token: Option<u8>,
    /// Live Activity (start): subscribe the new activity to a broadcast channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_push_channel: Option<String>,
    /// Widgets / controls: `true` when the content changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_changed: Option<bool>,
}

/// The alert: a plain string or a dictionary.
///
/// ```
/// use herald::apns::Alert;
/// let a: Alert = "Hello".into();
/// assert_eq!(serde_json::to_string(&a).unwrap(), r#""Hello""#);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
// Built once per payload and serialized at once: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Alert {
    /// `"alert": "text"`.
    Body(String),
    /// `"alert": {...}`.
    Fields(AlertFields),
}

impl Alert {
    /// A dictionary alert with a title and a body.
    ///
    /// ```
    /// use herald::apns::Alert;
    /// let a = Alert::title_body("Hi", "there");
    /// assert_eq!(serde_json::to_string(&a).unwrap(), r#"{"title":"Hi","body":"there"}"#);
    /// ```
    pub fn title_body(title: impl Into<String>, body: impl Into<String>) -> Alert {
        Alert::Fields(AlertFields {
            title: Some(title.into()),
            body: Some(body.into()),
            ..AlertFields::default()
        })
    }
}

impl From<&str> for Alert {
    fn from(s: &str) -> Alert {
        Alert::Body(s.to_owned())
    }
}

impl From<String> for Alert {
    fn from(s: String) -> Alert {
        Alert::Body(s)
    }
}

impl From<AlertFields> for Alert {
    fn from(f: AlertFields) -> Alert {
        Alert::Fields(f)
    }
}

/// The keys of an alert dictionary.
///
/// ```
/// use herald::apns::AlertFields;
/// let f = AlertFields { loc_key: Some("GAME_INVITE".into()), loc_args: Some(vec!["Ann".into()]), ..Default::default() };
/// assert_eq!(serde_json::to_string(&f).unwrap(), r#"{"loc-key":"GAME_INVITE","loc-args":["Ann"]}"#);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AlertFields {
    /// Title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Subtitle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subtitle: Option<String>,
    /// Body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Launch image file name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launch_image: Option<String>,
    /// Localized title key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title_loc_key: Option<String>,
    /// Localized title arguments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title_loc_args: Option<Vec<String>>,
    /// Localized subtitle key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subtitle_loc_key: Option<String>,
    /// Localized subtitle arguments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subtitle_loc_args: Option<Vec<String>>,
    /// Localized body key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loc_key: Option<String>,
    /// Localized body arguments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loc_args: Option<Vec<String>>,
}

/// The sound: a file name, or a critical-alert dictionary.
///
/// ```
/// use herald::apns::Sound;
/// let s = Sound::critical("alarm.caf", 0.8);
/// assert_eq!(serde_json::to_string(&s).unwrap(), r#"{"critical":1,"name":"alarm.caf","volume":0.8}"#);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Sound {
    /// `"sound": "name"` (`"default"` for the system sound).
    Named(String),
    /// `"sound": {"critical": 1, "name": ..., "volume": ...}`.
    Critical(CriticalSound),
}

impl Sound {
    /// A named sound.
    ///
    /// ```
    /// # use herald::apns::Sound;
    /// assert_eq!(Sound::named("default"), Sound::Named("default".into()));
    /// ```
    pub fn named(name: impl Into<String>) -> Sound {
        Sound::Named(name.into())
    }

    /// A critical-alert sound with a volume in 0.0 ..= 1.0.
    ///
    /// ```
    /// # use herald::apns::Sound;
    /// let s = Sound::critical("default", 1.0);
    /// assert!(matches!(s, Sound::Critical(_)));
    /// ```
    pub fn critical(name: impl Into<String>, volume: f64) -> Sound {
        Sound::Critical(CriticalSound {
            critical: 1,
            name: name.into(),
            volume: Some(volume),
        })
    }
}

/// A critical-alert sound dictionary.
///
/// ```
/// use herald::apns::CriticalSound;
/// let c = CriticalSound { critical: 1, name: "default".into(), volume: None };
/// assert_eq!(serde_json::to_string(&c).unwrap(), r#"{"critical":1,"name":"default"}"#);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CriticalSound {
    /// `1` for a critical alert.
    pub critical: u8,
    /// The sound file name.
    pub name: String,
    /// 0.0 ..= 1.0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume: Option<f64>,
}

/// `interruption-level`.
///
/// ```
/// use herald::apns::InterruptionLevel;
/// assert_eq!(serde_json::to_string(&InterruptionLevel::TimeSensitive).unwrap(), r#""time-sensitive""#);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InterruptionLevel {
    /// Added silently.
    Passive,
    /// The default.
    Active,
    /// Breaks through Focus.
    TimeSensitive,
    /// Breaks through everything (entitlement required).
    Critical,
}

/// Live Activity `event`.
///
/// ```
/// use herald::apns::LiveActivityEvent;
/// assert_eq!(serde_json::to_string(&LiveActivityEvent::Update).unwrap(), r#""update""#);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LiveActivityEvent {
    /// Start a Live Activity (push-to-start).
    Start,
    /// Update it.
    Update,
    /// End it.
    End,
}

impl Payload {
    /// An alert payload.
    ///
    /// ```
    /// use herald::apns::Payload;
    /// assert_eq!(Payload::alert("Hi").to_json().unwrap(), br#"{"aps":{"alert":"Hi"}}"#);
    /// ```
    pub fn alert(alert: impl Into<Alert>) -> Payload {
        Payload {
            aps: Aps {
                alert: Some(alert.into()),
                ..Aps::default()
            },
            custom: Map::new(),
        }
    }

    /// A background payload: `{"aps":{"content-available":1}}`.
    ///
    /// ```
    /// use herald::apns::Payload;
    /// assert_eq!(Payload::background().aps.content_available, Some(1));
    /// ```
    pub fn background() -> Payload {
        Payload {
            aps: Aps {
                content_available: Some(1),
                ..Aps::default()
            },
            custom: Map::new(),
        }
    }

    /// Sets the badge.
    ///
    /// ```
    /// # use herald::apns::Payload;
    /// assert_eq!(Payload::alert("x").badge(3).aps.badge, Some(3));
    /// ```
    pub fn badge(mut self, badge: u32) -> Payload {
        self.aps.badge = Some(badge);
        self
    }

    /// Sets the sound.
    ///
    /// ```
    /// # use herald::apns::{Payload, Sound};
    /// let p = Payload::alert("x").sound(Sound::named("default"));
    /// assert!(p.aps.sound.is_some());
    /// ```
    pub fn sound(mut self, sound: Sound) -> Payload {
        self.aps.sound = Some(sound);
        self
    }

    /// Sets the thread id.
    ///
    /// ```
    /// # use herald::apns::Payload;
    /// assert_eq!(Payload::alert("x").thread_id("chat-1").aps.thread_id.as_deref(), Some("chat-1"));
    /// ```
    pub fn thread_id(mut self, id: impl Into<String>) -> Payload {
        self.aps.thread_id = Some(id.into());
        self
    }

    /// Adds a custom key beside `aps`. Fails if `value` cannot be serialized or `key` is `"aps"`.
    ///
    /// ```
    /// # use herald::apns::Payload;
    /// let p = Payload::alert("x").custom("n", vec![1, 2]).unwrap();
    /// assert_eq!(p.to_json().unwrap(), br#"{"aps":{"alert":"x"},"n":[1,2]}"#);
    /// assert!(Payload::alert("x").custom("aps", 1).is_err());
    /// ```
    pub fn custom(
        mut self,
        key: impl Into<String>,
        value: impl Serialize,
    ) -> Result<Payload, Error> {
        let key = key.into();
        if key == "aps" {
            return Err(Error::new(
                ErrorKind::InvalidPush,
                "custom keys go beside `aps`: the key \"aps\" is reserved",
            ));
        }
        let value = serde_json::to_value(value).map_err(|e| {
            Error::new(ErrorKind::InvalidPush, "custom value cannot be serialized")
                .with_source(Msg(e.to_string()))
        })?;
        self.custom.insert(key, value);
        Ok(self)
    }

    /// The exact bytes that will be sent.
    ///
    /// ```
    /// # use herald::apns::Payload;
    /// assert_eq!(Payload::default().to_json().unwrap(), br#"{"aps":{}}"#);
    /// ```
    pub fn to_json(&self) -> Result<Vec<u8>, Error> {
        if self.custom.contains_key("aps") {
            return Err(Error::new(
                ErrorKind::InvalidPush,
                "custom keys go beside `aps`: the key \"aps\" is reserved",
            ));
        }
        if let Some(score) = self.aps.relevance_score
            && !(0.0..=1.0).contains(&score)
        {
            return Err(Error::new(
                ErrorKind::InvalidPush,
                format!("relevance-score must be within 0.0..=1.0, got {score}"),
            ));
        }
        if let Some(Sound::Critical(c)) = &self.aps.sound
            && let Some(v) = c.volume
            && !(0.0..=1.0).contains(&v)
        {
            return Err(Error::new(
                ErrorKind::InvalidPush,
                format!("critical sound volume must be within 0.0..=1.0, got {v}"),
            ));
        }
        serde_json::to_vec(self).map_err(|e| {
            Error::new(ErrorKind::InvalidPush, "payload cannot be serialized")
                .with_source(Msg(e.to_string()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_aps_key_uses_apples_name() {
        let aps = Aps {
            alert: Some(Alert::Fields(AlertFields {
                title: Some("t".into()),
                subtitle: Some("s".into()),
                body: Some("b".into()),
                launch_image: Some("l".into()),
                title_loc_key: Some("tk".into()),
                title_loc_args: Some(vec![]),
                subtitle_loc_key: Some("sk".into()),
                subtitle_loc_args: Some(vec![]),
                loc_key: Some("k".into()),
                loc_args: Some(vec![]),
            })),
            badge: Some(0),
            sound: Some(Sound::critical("a", 1.0)),
            thread_id: Some("x".into()),
            category: Some("c".into()),
            content_available: Some(1),
            mutable_content: Some(1),
            target_content_id: Some("w".into()),
            interruption_level: Some(InterruptionLevel::Critical),
            relevance_score: Some(1.0),
            filter_criteria: Some("f".into()),
            timestamp: Some(1),
            event: Some(LiveActivityEvent::Start),
            content_state: Some(serde_json::json!({"a": 1})),
            stale_date: Some(2),
            dismissal_date: Some(3),
            attributes_type: Some("T".into()),
            attributes: Some(serde_json::json!({})),
            input_push_token: Some(1),
            input_push_channel: Some("ch".into()),
            content_changed: Some(true),
        };
        let json = serde_json::to_string(&aps).unwrap();
        for key in [
            "launch-image",
            "title-loc-key",
            "title-loc-args",
            "subtitle-loc-key",
            "subtitle-loc-args",
            "loc-key",
            "loc-args",
            "thread-id",
            "content-available",
            "mutable-content",
            "target-content-id",
            "interruption-level",
            "relevance-score",
            "filter-criteria",
            "content-state",
            "stale-date",
            "dismissal-date",
            "attributes-type",
            "input-push-token",
            "input-push-channel",
            "content-changed",
        ] {
            assert!(
                json.contains(&format!("\"{key}\"")),
                "{key} missing in {json}"
            );
        }
        let back: Aps = serde_json::from_str(&json).unwrap();
        assert_eq!(back, aps);
    }

    #[test]
    fn relevance_score_out_of_range_is_typed_error() {
        let mut p = Payload::alert("x");
        p.aps.relevance_score = Some(2.0);
        assert!(p.to_json().unwrap_err().is_invalid_push());
    }
}
