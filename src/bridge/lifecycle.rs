//! A token's life after APNs answers, and the circuit breaker that keeps a misconfiguration
//! from touching any token: [`LifecycleConfig`], the lifecycle notifications, and the rules.
//!
//! # The rules
//!
//! - **Only 410 deletes.** `Unregistered` / `ExpiredToken` post [`TokenInvalidated`] with
//!   Apple's timestamp; [`DeviceRegistry::observe`](crate::bridge::DeviceRegistry::observe)
//!   deletes the token unless it was registered again after that instant.
//! - **`BadDeviceToken` / `DeviceTokenNotForTopic` quarantine, on evidence.** APNs gives
//!   `BadDeviceToken` also for a token of the other environment, so one rejection proves
//!   nothing about the token. The rejection waits (at most one [window](LifecycleConfig::window))
//!   until its topic and environment show that the configuration works: a push to another
//!   token accepted in the window, fewer than [`threshold`](LifecycleConfig::threshold) of the
//!   window's pushes rejected, and the breaker closed. Then [`TokenQuarantined`] is posted:
//!   the token is kept, and the sink sends it nothing (each message for it becomes a
//!   [`PushSkipped`]). A push to the token itself accepted meanwhile drops its waiting
//!   rejection: the token works, and its own acceptance is never evidence against it.
//! - **Probes, then confirmation.** After [`grace`](LifecycleConfig::grace) (since its last
//!   rejection) the next message for a quarantined token is sent as a probe (one at a time).
//!   Accepted: [`TokenReleased`]. Rejected again with other tokens of its topic and environment
//!   accepted since its last rejection: confirmed, [`TokenInvalidated`] (the registry deletes a
//!   token only if it is still in quarantine and was not registered again since). Rejected
//!   without that evidence: stays in quarantine for another grace period. A registration of the
//!   token by the app releases it at once.
//! - **The circuit breaker**, one per (topic, environment), counts the window's accepted
//!   pushes and its rejections that blame the token, the topic or the credentials
//!   (`BadDeviceToken`, `DeviceTokenNotForTopic`, `TopicDisallowed`, `BadTopic`, `MissingTopic`,
//!   `InvalidProviderToken`, `BadCertificate`, `BadCertificateEnvironment`, ...). With at least
//!   [`min_samples`](LifecycleConfig::min_samples) of them and a rejected fraction of at least
//!   `threshold`, it **opens**: it posts one [`PushConfigSuspect`] naming the likely cause with
//!   the evidence, drops the waiting quarantine decisions, quarantines nothing and deletes
//!   nothing (410s aside), and holds that topic and environment's pushes back (each a
//!   [`PushSkipped`], the push handed back). After [`cool_down`](LifecycleConfig::cool_down)
//!   it lets one push through as a probe: accepted, it **closes** and posts
//!   [`PushConfigRecovered`]; rejected alike, it stays open for another cool-down.
//!
//! Times come from the sink's [`Clock`] (the system clock unless
//! [`ApnsSinkBuilder::clock`](crate::bridge::ApnsSinkBuilder::clock) sets one), so tests move
//! time by hand. Breaker state and the evidence are per sink and in memory; quarantine state
//! lives in the registry's store (it survives a restart). Tokens sent without a registry
//! ([`Target::Token`](crate::bridge::Target::Token) of a token the registry does not know)
//! are quarantined in the sink's memory (at most 65,536).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

use crate::Notification;
use crate::apns::{Push, Reason};
use crate::bridge::clock::Clock;
use crate::bridge::registry::{Environment, Quarantine};

/// APNs says a device token is dead: 410 `Unregistered` / `ExpiredToken` (with Apple's
/// timestamp), or a quarantined token's `BadDeviceToken` / `DeviceTokenNotForTopic` confirmed
/// by a probe (with the probe's send time).
/// [`DeviceRegistry::observe`](crate::bridge::DeviceRegistry::observe) deletes the token
/// unless it was registered again after [`since`](Self::since).
///
/// ```
/// use herald::bridge::TokenInvalidated;
/// use herald::NotificationCenter;
/// let center = NotificationCenter::new();
/// let _log = center.observe(|n: &TokenInvalidated| println!("{} is gone ({})", n.token, n.reason));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TokenInvalidated {
    /// The device token.
    pub token: String,
    /// The topic the push was sent to.
    pub topic: String,
    /// The subject the token was resolved from, if any.
    pub subject: Option<String>,
    /// Apple's reason.
    pub reason: Reason,
    /// Since when the token is invalid: a registration after this instant keeps it.
    pub since: SystemTime,
}

impl TokenInvalidated {
    /// An invalidation without a subject (for tests, and for feeding a registry by hand).
    ///
    /// ```
    /// # use herald::{apns::Reason, bridge::TokenInvalidated};
    /// let n = TokenInvalidated::new("aa", "com.example.app", Reason::Unregistered, std::time::SystemTime::now());
    /// assert!(n.subject.is_none());
    /// ```
    pub fn new(
        token: impl Into<String>,
        topic: impl Into<String>,
        reason: Reason,
        since: SystemTime,
    ) -> TokenInvalidated {
        TokenInvalidated {
            token: token.into(),
            topic: topic.into(),
            subject: None,
            reason,
            since,
        }
    }
}

impl Notification for TokenInvalidated {
    fn name() -> &'static str {
        "herald.apns.token.invalidated"
    }
}

/// A token went into quarantine (or was rejected again while in it): APNs answered
/// `BadDeviceToken` or `DeviceTokenNotForTopic` while other tokens of its topic and environment
/// were accepted. It is kept, and sent nothing until a probe or a registration releases it.
///
/// ```
/// use herald::bridge::TokenQuarantined;
/// use herald::NotificationCenter;
/// let center = NotificationCenter::new();
/// let _log = center.observe(|n: &TokenQuarantined| eprintln!("quarantined {} ({})", n.token, n.reason));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TokenQuarantined {
    /// The device token.
    pub token: String,
    /// The topic the push was sent to.
    pub topic: String,
    /// The subject the token was resolved from, if any.
    pub subject: Option<String>,
    /// The environment of the token (as registered, or the sink's), if known.
    pub environment: Option<Environment>,
    /// Apple's reason.
    pub reason: Reason,
    /// When the rejected push was sent (a registration after it keeps the token active).
    pub at: SystemTime,
    /// Whether this rejection was a probe of a token already in quarantine.
    pub again: bool,
}

impl Notification for TokenQuarantined {
    fn name() -> &'static str {
        "herald.apns.token.quarantined"
    }
}

/// A token left quarantine: a probe push to it was accepted.
///
/// ```
/// use herald::bridge::TokenReleased;
/// use herald::NotificationCenter;
/// let center = NotificationCenter::new();
/// let _log = center.observe(|n: &TokenReleased| println!("{} works again", n.token));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TokenReleased {
    /// The device token.
    pub token: String,
    /// The topic.
    pub topic: String,
    /// The subject the token was resolved from, if any.
    pub subject: Option<String>,
}

impl Notification for TokenReleased {
    fn name() -> &'static str {
        "herald.apns.token.released"
    }
}

/// Why the sink did not send a push.
///
/// ```
/// use herald::bridge::SkipCause;
/// assert_eq!(SkipCause::Quarantined.as_str(), "quarantined");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SkipCause {
    /// The token is in quarantine (and no probe is due).
    Quarantined,
    /// The circuit breaker of the push's topic and environment is open.
    BreakerOpen,
    /// A [`Target::Token`](crate::bridge::Target::Token) message for a token the registry holds
    /// with the other environment than the sink's
    /// ([`ApnsSinkBuilder::environment`](crate::bridge::ApnsSinkBuilder::environment)): the
    /// sink's server would answer `BadDeviceToken`. Send it with a sink of that environment.
    OtherEnvironment,
}

impl SkipCause {
    /// `"quarantined"`, `"breaker_open"` or `"other_environment"`.
    ///
    /// ```
    /// # use herald::bridge::SkipCause;
    /// assert_eq!(SkipCause::BreakerOpen.as_str(), "breaker_open");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            SkipCause::Quarantined => "quarantined",
            SkipCause::BreakerOpen => "breaker_open",
            SkipCause::OtherEnvironment => "other_environment",
        }
    }
}

/// The sink held a push back instead of sending it; the push is handed back so it can be
/// sent later (for example once [`PushConfigRecovered`] is posted), or elsewhere (a token of
/// the other environment: [`SkipCause::OtherEnvironment`]).
///
/// ```
/// use herald::bridge::{PushSkipped, SkipCause};
/// use herald::NotificationCenter;
/// let center = NotificationCenter::new();
/// let _held = center.observe(|n: &PushSkipped| {
///     if n.cause == SkipCause::BreakerOpen { /* keep n.push for later */ }
/// });
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PushSkipped {
    /// The push, as it would have been sent.
    pub push: Push,
    /// The subject the token was resolved from, if any.
    pub subject: Option<String>,
    /// Why.
    pub cause: SkipCause,
}

impl Notification for PushSkipped {
    fn name() -> &'static str {
        "herald.apns.push.skipped"
    }
}

/// What a [`PushConfigSuspect`] blames.
///
/// ```
/// use herald::bridge::SuspectedCause;
/// assert!(SuspectedCause::WrongEnvironment.explain().contains("sandbox"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SuspectedCause {
    /// Tokens of one environment sent to the other's server (`BadDeviceToken` for all), or
    /// credentials of the other environment (`BadCertificateEnvironment`).
    WrongEnvironment,
    /// The topic (bundle id) does not match the tokens or the credentials
    /// (`DeviceTokenNotForTopic`, `TopicDisallowed`, `BadTopic`).
    WrongTopic,
    /// The key or certificate is wrong (`InvalidProviderToken`, `BadCertificate`, ...).
    WrongCredentials,
}

impl SuspectedCause {
    /// `"wrong_environment"`, `"wrong_topic"` or `"wrong_credentials"`.
    ///
    /// ```
    /// # use herald::bridge::SuspectedCause;
    /// assert_eq!(SuspectedCause::WrongTopic.as_str(), "wrong_topic");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            SuspectedCause::WrongEnvironment => "wrong_environment",
            SuspectedCause::WrongTopic => "wrong_topic",
            SuspectedCause::WrongCredentials => "wrong_credentials",
        }
    }

    /// What to check, for people.
    ///
    /// ```
    /// # use herald::bridge::SuspectedCause;
    /// assert!(SuspectedCause::WrongCredentials.explain().contains("key"));
    /// ```
    pub fn explain(self) -> &'static str {
        match self {
            SuspectedCause::WrongEnvironment => {
                "Device tokens and server do not match: sandbox (development) tokens sent to \
                 production or the reverse, or credentials for the other environment. Check the \
                 endpoint and the environment the tokens were registered with."
            }
            SuspectedCause::WrongTopic => {
                "The topic does not match: check the bundle id (and push type suffix) against \
                 the app and the key or certificate."
            }
            SuspectedCause::WrongCredentials => {
                "APNs refuses the credentials: check the key id, team id and .p8 key, or the \
                 certificate and its password."
            }
        }
    }

    /// The cause a rejection reason points at, if it blames the configuration or the token.
    fn of(reason: &Reason) -> Option<SuspectedCause> {
        Some(match reason {
            Reason::BadDeviceToken
            | Reason::BadCertificateEnvironment
            | Reason::BadEnvironmentKeyIdInToken => SuspectedCause::WrongEnvironment,
            Reason::DeviceTokenNotForTopic
            | Reason::TopicDisallowed
            | Reason::BadTopic
            | Reason::MissingTopic
            | Reason::TopicMismatch => SuspectedCause::WrongTopic,
            Reason::InvalidProviderToken
            | Reason::BadCertificate
            | Reason::ExpiredProviderToken
            | Reason::MissingProviderToken
            | Reason::UnrelatedKeyIdInToken
            | Reason::Forbidden => SuspectedCause::WrongCredentials,
            _ => return None,
        })
    }
}

impl fmt::Display for SuspectedCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The circuit breaker of a topic and environment opened: most of its recent pushes were
/// rejected for the token, the topic or the credentials. Posted once per opening. Nothing is
/// quarantined or deleted for that topic and environment while it is open, and its pushes are
/// held back ([`PushSkipped`]) until a probe succeeds ([`PushConfigRecovered`]).
///
/// ```
/// use herald::bridge::PushConfigSuspect;
/// use herald::NotificationCenter;
/// let center = NotificationCenter::new();
/// let _alarm = center.observe(|n: &PushConfigSuspect| {
///     eprintln!("APNs config for {} ({:?}) looks wrong: {} ({} of {} rejected, e.g. {:?})",
///         n.topic, n.environment, n.cause.explain(), n.rejected, n.rejected + n.accepted, n.by_reason);
/// });
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PushConfigSuspect {
    /// The topic.
    pub topic: String,
    /// The environment of the tokens (as registered, or the sink's), if known.
    pub environment: Option<Environment>,
    /// The likely cause.
    pub cause: SuspectedCause,
    /// Pushes accepted in the window.
    pub accepted: u64,
    /// Pushes rejected in the window for a reason that blames the token or the configuration.
    pub rejected: u64,
    /// Those rejections by reason, most frequent first.
    pub by_reason: Vec<(Reason, u64)>,
    /// A few rejected tokens (first 8 hex digits only).
    pub sample_tokens: Vec<String>,
    /// The window the counts cover.
    pub window: Duration,
    /// When it opened.
    pub at: SystemTime,
}

impl Notification for PushConfigSuspect {
    fn name() -> &'static str {
        "herald.apns.config.suspect"
    }
}

/// The circuit breaker of a topic and environment closed again: a probe push was accepted.
///
/// ```
/// use herald::bridge::PushConfigRecovered;
/// use herald::NotificationCenter;
/// let center = NotificationCenter::new();
/// let _log = center.observe(|n: &PushConfigRecovered| println!("{} recovered after {:?}", n.topic, n.open_for));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PushConfigRecovered {
    /// The topic.
    pub topic: String,
    /// The environment, if known.
    pub environment: Option<Environment>,
    /// How long it was open.
    pub open_for: Duration,
    /// Pushes held back while it was open.
    pub skipped: u64,
}

impl Notification for PushConfigRecovered {
    fn name() -> &'static str {
        "herald.apns.config.recovered"
    }
}

/// Default [`LifecycleConfig::grace`]: 24 hours.
///
/// ```
/// use herald::bridge::{DEFAULT_GRACE, LifecycleConfig};
/// use std::time::Duration;
/// assert_eq!(DEFAULT_GRACE, Duration::from_secs(24 * 3600));
/// assert_eq!(LifecycleConfig::default().get_grace(), DEFAULT_GRACE);
/// ```
pub const DEFAULT_GRACE: Duration = Duration::from_secs(24 * 3600);
/// Default [`LifecycleConfig::window`]: 5 minutes.
///
/// ```
/// use herald::bridge::{DEFAULT_WINDOW, LifecycleConfig};
/// use std::time::Duration;
/// assert_eq!(DEFAULT_WINDOW, Duration::from_secs(5 * 60));
/// assert_eq!(LifecycleConfig::default().get_window(), DEFAULT_WINDOW);
/// ```
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(300);
/// Default [`LifecycleConfig::cool_down`]: 1 minute.
///
/// ```
/// use herald::bridge::{DEFAULT_COOL_DOWN, LifecycleConfig};
/// use std::time::Duration;
/// assert_eq!(DEFAULT_COOL_DOWN, Duration::from_secs(60));
/// assert_eq!(LifecycleConfig::default().get_cool_down(), DEFAULT_COOL_DOWN);
/// ```
pub const DEFAULT_COOL_DOWN: Duration = Duration::from_secs(60);
/// Default [`LifecycleConfig::threshold`]: 80 %.
///
/// ```
/// use herald::bridge::{DEFAULT_THRESHOLD, LifecycleConfig};
/// assert_eq!(DEFAULT_THRESHOLD, 0.8);
/// assert_eq!(LifecycleConfig::default().get_threshold(), DEFAULT_THRESHOLD);
/// ```
pub const DEFAULT_THRESHOLD: f64 = 0.8;
/// Default [`LifecycleConfig::min_samples`]: 20 pushes.
///
/// ```
/// use herald::bridge::{DEFAULT_MIN_SAMPLES, LifecycleConfig};
/// assert_eq!(DEFAULT_MIN_SAMPLES, 20);
/// assert_eq!(LifecycleConfig::default().get_min_samples(), DEFAULT_MIN_SAMPLES);
/// ```
pub const DEFAULT_MIN_SAMPLES: u64 = 20;

/// The token lifecycle and circuit breaker settings of an [`ApnsSink`](crate::bridge::ApnsSink).
/// See the [module docs](self) for the rules.
///
/// ```
/// use herald::bridge::LifecycleConfig;
/// use std::time::Duration;
/// let config = LifecycleConfig::default()
///     .grace(Duration::from_secs(6 * 3600))
///     .window(Duration::from_secs(120))
///     .threshold(0.9)
///     .min_samples(50)
///     .cool_down(Duration::from_secs(30));
/// assert_eq!(config.get_min_samples(), 50);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LifecycleConfig {
    grace: Duration,
    window: Duration,
    threshold: f64,
    min_samples: u64,
    cool_down: Duration,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            grace: DEFAULT_GRACE,
            window: DEFAULT_WINDOW,
            threshold: DEFAULT_THRESHOLD,
            min_samples: DEFAULT_MIN_SAMPLES,
            cool_down: DEFAULT_COOL_DOWN,
        }
    }
}

impl LifecycleConfig {
    /// How long a quarantined token gets no push before the next message probes it (default
    /// [`DEFAULT_GRACE`], 24 h).
    ///
    /// ```
    /// # use herald::bridge::LifecycleConfig;
    /// let c = LifecycleConfig::default().grace(std::time::Duration::from_secs(3600));
    /// assert_eq!(c.get_grace().as_secs(), 3600);
    /// ```
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The breaker's window: the span of recent outcomes it weighs, and how long a rejection
    /// waits for evidence before it is dropped undecided (default [`DEFAULT_WINDOW`], 5 min).
    ///
    /// ```
    /// # use herald::bridge::LifecycleConfig;
    /// let c = LifecycleConfig::default().window(std::time::Duration::from_secs(60));
    /// assert_eq!(c.get_window().as_secs(), 60);
    /// ```
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window.max(Duration::from_millis(10));
        self
    }

    /// The rejected fraction of the window that opens the breaker (default
    /// [`DEFAULT_THRESHOLD`], 0.8), clamped to `0.0..=1.0`.
    ///
    /// ```
    /// # use herald::bridge::LifecycleConfig;
    /// assert_eq!(LifecycleConfig::default().threshold(2.0).get_threshold(), 1.0);
    /// ```
    pub fn threshold(mut self, threshold: f64) -> Self {
        self.threshold = if threshold.is_nan() {
            DEFAULT_THRESHOLD
        } else {
            threshold.clamp(0.0, 1.0)
        };
        self
    }

    /// The fewest counted pushes in the window before the breaker may open (default
    /// [`DEFAULT_MIN_SAMPLES`], 20; at least 1): two bad tokens out of two pushes prove
    /// nothing.
    ///
    /// ```
    /// # use herald::bridge::LifecycleConfig;
    /// assert_eq!(LifecycleConfig::default().min_samples(0).get_min_samples(), 1);
    /// ```
    pub fn min_samples(mut self, n: u64) -> Self {
        self.min_samples = n.max(1);
        self
    }

    /// How long an open breaker holds pushes back before it lets one through as a probe
    /// (default [`DEFAULT_COOL_DOWN`], 1 min).
    ///
    /// ```
    /// # use herald::bridge::LifecycleConfig;
    /// let c = LifecycleConfig::default().cool_down(std::time::Duration::from_secs(5));
    /// assert_eq!(c.get_cool_down().as_secs(), 5);
    /// ```
    pub fn cool_down(mut self, cool_down: Duration) -> Self {
        self.cool_down = cool_down;
        self
    }

    /// The grace period.
    ///
    /// ```
    /// # use herald::bridge::{LifecycleConfig, DEFAULT_GRACE};
    /// assert_eq!(LifecycleConfig::default().get_grace(), DEFAULT_GRACE);
    /// ```
    pub fn get_grace(&self) -> Duration {
        self.grace
    }

    /// The window.
    ///
    /// ```
    /// # use herald::bridge::{LifecycleConfig, DEFAULT_WINDOW};
    /// assert_eq!(LifecycleConfig::default().get_window(), DEFAULT_WINDOW);
    /// ```
    pub fn get_window(&self) -> Duration {
        self.window
    }

    /// The threshold.
    ///
    /// ```
    /// # use herald::bridge::{LifecycleConfig, DEFAULT_THRESHOLD};
    /// assert_eq!(LifecycleConfig::default().get_threshold(), DEFAULT_THRESHOLD);
    /// ```
    pub fn get_threshold(&self) -> f64 {
        self.threshold
    }

    /// The minimum sample size.
    ///
    /// ```
    /// # use herald::bridge::{LifecycleConfig, DEFAULT_MIN_SAMPLES};
    /// assert_eq!(LifecycleConfig::default().get_min_samples(), DEFAULT_MIN_SAMPLES);
    /// ```
    pub fn get_min_samples(&self) -> u64 {
        self.min_samples
    }

    /// The cool-down.
    ///
    /// ```
    /// # use herald::bridge::{LifecycleConfig, DEFAULT_COOL_DOWN};
    /// assert_eq!(LifecycleConfig::default().get_cool_down(), DEFAULT_COOL_DOWN);
    /// ```
    pub fn get_cool_down(&self) -> Duration {
        self.cool_down
    }
}

/// A circuit breaker's state, as [`ApnsSink::breakers`](crate::bridge::ApnsSink::breakers)
/// reports it.
///
/// ```
/// use herald::bridge::BreakerState;
/// assert!(BreakerState::Closed.is_closed());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BreakerState {
    /// Pushes flow; decisions are taken.
    Closed,
    /// Pushes are held back until `retry_at`.
    Open {
        /// When it opened.
        since: SystemTime,
        /// When the next probe may go.
        retry_at: SystemTime,
    },
    /// A probe may go (or is in flight).
    HalfOpen {
        /// When it opened.
        since: SystemTime,
    },
}

impl BreakerState {
    /// Whether pushes flow.
    ///
    /// ```
    /// # use herald::bridge::BreakerState;
    /// let open = BreakerState::HalfOpen { since: std::time::UNIX_EPOCH };
    /// assert!(!open.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(self, BreakerState::Closed)
    }
}

/// One breaker's view, from [`ApnsSink::breakers`](crate::bridge::ApnsSink::breakers).
///
/// ```
/// use herald::bridge::{BreakerReport, BreakerState};
/// fn show(r: &BreakerReport) { println!("{} {:?}: {:?}", r.topic, r.environment, r.state); }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BreakerReport {
    /// The topic.
    pub topic: String,
    /// The environment, if known.
    pub environment: Option<Environment>,
    /// Its state.
    pub state: BreakerState,
    /// Pushes accepted in the current window.
    pub accepted: u64,
    /// Counted rejections in the current window.
    pub rejected: u64,
}

// ----- the engine (crate-private) -----

pub(crate) type Key = (String, Option<Environment>);

/// Buckets per window.
const BUCKETS: u32 = 10;
/// Tokens quarantined in the sink's memory, at most.
const MEMORY_LIMIT: usize = 65_536;
/// Rejections waiting for evidence, per topic and environment, at most.
const PENDING_LIMIT: usize = 4096;

#[derive(Default)]
struct Bucket {
    start: Option<SystemTime>,
    accepted: u64,
    rejected: Vec<(Reason, u64)>,
    samples: Vec<String>,
}

enum Breaker {
    Closed,
    Open {
        since: SystemTime,
        retry_at: SystemTime,
        skipped: u64,
    },
    HalfOpen {
        since: SystemTime,
        probe: Option<SystemTime>,
        skipped: u64,
    },
}

struct Pending {
    token: String,
    topic: String,
    subject: Option<String>,
    reason: Reason,
    at: SystemTime,
    registered: bool,
}

/// A token's latest acceptance.
struct Acceptance {
    token: String,
    at: SystemTime,
}

struct KeyState {
    buckets: VecDeque<Bucket>,
    /// The latest acceptance, and the latest acceptance of a token other than its token:
    /// together they tell, for any token, when *another* token was last accepted (a token's
    /// own acceptance is never evidence against it).
    latest_accepted: Option<Acceptance>,
    runner_up_accepted: Option<Acceptance>,
    pending: Vec<Pending>,
    breaker: Breaker,
}

impl KeyState {
    fn new() -> KeyState {
        KeyState {
            buckets: VecDeque::new(),
            latest_accepted: None,
            runner_up_accepted: None,
            pending: Vec::new(),
            breaker: Breaker::Closed,
        }
    }

    fn prune(&mut self, now: SystemTime, window: Duration) {
        while let Some(b) = self.buckets.front() {
            let old = b
                .start
                .is_some_and(|s| now.duration_since(s).is_ok_and(|age| age >= window));
            if !old {
                break;
            }
            self.buckets.pop_front();
        }
        self.pending
            .retain(|p| now.duration_since(p.at).map_or(true, |age| age < window));
    }

    fn bucket(&mut self, now: SystemTime, window: Duration) -> &mut Bucket {
        let width = window / BUCKETS;
        let fresh = self.buckets.back().is_some_and(|b| {
            b.start
                .is_some_and(|s| now.duration_since(s).map_or(true, |age| age < width))
        });
        if !fresh {
            self.buckets.push_back(Bucket {
                start: Some(now),
                ..Bucket::default()
            });
        }
        // Just pushed one if there was none.
        let last = self.buckets.len() - 1;
        &mut self.buckets[last]
    }

    fn counts(&self) -> (u64, u64) {
        let accepted = self.buckets.iter().map(|b| b.accepted).sum();
        let rejected = self
            .buckets
            .iter()
            .flat_map(|b| b.rejected.iter().map(|(_, n)| n))
            .sum();
        (accepted, rejected)
    }

    fn by_reason(&self) -> Vec<(Reason, u64)> {
        let mut all: Vec<(Reason, u64)> = Vec::new();
        for (r, n) in self.buckets.iter().flat_map(|b| b.rejected.iter()) {
            match all.iter_mut().find(|(x, _)| x == r) {
                Some((_, m)) => *m += n,
                None => all.push((r.clone(), *n)),
            }
        }
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.as_str().cmp(b.0.as_str())));
        all
    }

    /// Notes that `token` was accepted at `at`.
    fn accepted(&mut self, token: &str, at: SystemTime) {
        // Built only by the arms that store it.
        let new = || Acceptance {
            token: token.to_owned(),
            at,
        };
        match self.latest_accepted.take() {
            None => self.latest_accepted = Some(new()),
            Some(mut latest) if latest.token == token => {
                latest.at = latest.at.max(at);
                self.latest_accepted = Some(latest);
            }
            Some(latest) if at >= latest.at => {
                self.runner_up_accepted = Some(latest);
                self.latest_accepted = Some(new());
            }
            Some(latest) => {
                if self.runner_up_accepted.as_ref().is_none_or(|r| r.at <= at) {
                    self.runner_up_accepted = Some(new());
                }
                self.latest_accepted = Some(latest);
            }
        }
    }

    /// When a token other than `token` was last accepted: the evidence against `token`.
    fn others_accepted(&self, token: &str) -> Option<SystemTime> {
        match &self.latest_accepted {
            Some(latest) if latest.token != token => Some(latest.at),
            Some(_) => self.runner_up_accepted.as_ref().map(|r| r.at),
            None => None,
        }
    }

    /// Evidence that the configuration works: the breaker is closed, a push was accepted in
    /// the window, and the rejected fraction is under the threshold. (A waiting rejection is
    /// decided only if, besides, a push to another token was accepted in the window.)
    fn healthy(&self, threshold: f64) -> bool {
        if !matches!(self.breaker, Breaker::Closed) {
            return false;
        }
        let (accepted, rejected) = self.counts();
        accepted > 0 && (rejected as f64) < threshold * ((accepted + rejected) as f64)
    }
}

#[derive(Default)]
struct State {
    keys: HashMap<Key, KeyState>,
    /// Tokens with a quarantine probe in flight, and since when.
    probing: HashMap<String, SystemTime>,
    /// Quarantine of tokens the registry does not hold.
    memory: HashMap<String, Quarantine>,
}

/// What the sink knows about a push's target when it asks to send.
pub(crate) struct Target<'a> {
    pub(crate) token: &'a str,
    pub(crate) topic: &'a str,
    pub(crate) environment: Option<Environment>,
    /// The registry's device state, when the registry holds the token.
    pub(crate) registered: Option<Option<&'a Quarantine>>,
}

/// Permission to send one push, with what the outcome must be weighed against.
#[derive(Debug)]
pub(crate) struct Ticket {
    key: Key,
    breaker_probe: bool,
    /// A quarantine probe: the quarantine's last rejection.
    token_probe: Option<SystemTime>,
    registered: bool,
}

pub(crate) enum Admit {
    Send(Ticket),
    Skip(SkipCause),
}

/// An outcome, as the lifecycle weighs it.
pub(crate) enum Observed<'a> {
    Accepted,
    Rejected {
        reason: &'a Reason,
        timestamp: Option<SystemTime>,
    },
    Failed,
}

/// A lifecycle notification for the sink to post.
pub(crate) enum Action {
    Quarantined(TokenQuarantined),
    Released(TokenReleased),
    Invalidated(TokenInvalidated),
    Suspect(PushConfigSuspect),
    Recovered(PushConfigRecovered),
}

/// The rules of the [module docs](self), for one sink.
pub(crate) struct Lifecycle {
    config: LifecycleConfig,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

fn env_label(env: Option<Environment>) -> &'static str {
    env.map_or("unknown", Environment::as_str)
}

impl Lifecycle {
    pub(crate) fn new(config: LifecycleConfig, clock: Arc<dyn Clock>) -> Lifecycle {
        Lifecycle {
            config,
            clock,
            state: Mutex::new(State::default()),
        }
    }

    pub(crate) fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// May this push go? Quarantine first (a token in quarantine is skipped unless its probe
    /// is due), then the breaker (open: skipped unless it is time for its probe).
    pub(crate) fn admit(&self, target: &Target<'_>) -> Admit {
        let now = self.clock.now();
        let mut state = self.state.lock();
        let state = &mut *state;
        let quarantine = match target.registered {
            Some(q) => q.cloned(),
            None => state.memory.get(target.token).cloned(),
        };
        let mut token_probe = None;
        if let Some(q) = &quarantine {
            let due = now
                .duration_since(q.last_rejected)
                .is_ok_and(|d| d >= self.config.grace);
            let probing = state.probing.get(target.token).is_some_and(|started| {
                now.duration_since(*started)
                    .map_or(true, |d| d < self.config.grace)
            });
            if !due || probing {
                return Admit::Skip(SkipCause::Quarantined);
            }
            token_probe = Some(q.last_rejected);
        }
        let key = (target.topic.to_owned(), target.environment);
        let cool_down = self.config.cool_down;
        let ks = state.keys.entry(key.clone()).or_insert_with(KeyState::new);
        let mut breaker_probe = false;
        match &mut ks.breaker {
            Breaker::Closed => {}
            Breaker::Open {
                since,
                retry_at,
                skipped,
            } => {
                if now < *retry_at {
                    *skipped += 1;
                    return Admit::Skip(SkipCause::BreakerOpen);
                }
                ks.breaker = Breaker::HalfOpen {
                    since: *since,
                    probe: Some(now),
                    skipped: *skipped,
                };
                breaker_probe = true;
            }
            Breaker::HalfOpen { probe, skipped, .. } => {
                let busy = probe.is_some_and(|started| {
                    now.duration_since(started).map_or(true, |d| d < cool_down)
                });
                if busy {
                    *skipped += 1;
                    return Admit::Skip(SkipCause::BreakerOpen);
                }
                *probe = Some(now);
                breaker_probe = true;
            }
        }
        if token_probe.is_some() {
            state.probing.insert(target.token.to_owned(), now);
        }
        Admit::Send(Ticket {
            key,
            breaker_probe,
            token_probe,
            registered: target.registered.is_some(),
        })
    }

    /// Weighs an outcome; returns the notifications to post, in order.
    pub(crate) fn record(
        &self,
        ticket: Ticket,
        token: &str,
        subject: Option<&str>,
        sent_at: SystemTime,
        observed: Observed<'_>,
    ) -> Vec<Action> {
        let now = self.clock.now();
        let config = &self.config;
        let mut actions = Vec::new();
        let mut state = self.state.lock();
        let state = &mut *state;
        if ticket.token_probe.is_some() {
            state.probing.remove(token);
        }
        let (topic, environment) = ticket.key.clone();
        let ks = state
            .keys
            .entry(ticket.key.clone())
            .or_insert_with(KeyState::new);
        ks.prune(now, config.window);

        // 1. Count.
        let suspect = match &observed {
            Observed::Rejected { reason, .. } => SuspectedCause::of(reason).is_some(),
            _ => false,
        };
        match &observed {
            Observed::Accepted => {
                ks.bucket(now, config.window).accepted += 1;
                ks.accepted(token, now);
            }
            Observed::Rejected { reason, .. } if suspect => {
                let b = ks.bucket(now, config.window);
                match b.rejected.iter_mut().find(|(r, _)| r == *reason) {
                    Some((_, n)) => *n += 1,
                    None => b.rejected.push(((*reason).clone(), 1)),
                }
                if b.samples.len() < 5 {
                    b.samples.push(crate::apns::token_prefix(token).to_owned());
                }
            }
            _ => {}
        }

        // 2. The breaker.
        if ticket.breaker_probe
            && let Breaker::HalfOpen { since, skipped, .. } = ks.breaker
        {
            match &observed {
                Observed::Accepted => {
                    ks.breaker = Breaker::Closed;
                    ks.buckets.clear();
                    ks.bucket(now, config.window).accepted = 1;
                    crate::telemetry::breaker_open(&topic, env_label(environment), None);
                    tracing::info!(topic = %topic, environment = env_label(environment),
                        "apns sink: circuit breaker closed, a probe was accepted");
                    actions.push(Action::Recovered(PushConfigRecovered {
                        topic: topic.clone(),
                        environment,
                        open_for: now.duration_since(since).unwrap_or_default(),
                        skipped,
                    }));
                }
                _ if suspect => {
                    ks.breaker = Breaker::Open {
                        since,
                        retry_at: now + config.cool_down,
                        skipped,
                    };
                }
                _ => {
                    ks.breaker = Breaker::HalfOpen {
                        since,
                        probe: None,
                        skipped,
                    };
                }
            }
        }
        if matches!(ks.breaker, Breaker::Closed) && suspect {
            let (accepted, rejected) = ks.counts();
            let total = accepted + rejected;
            if total >= config.min_samples && rejected as f64 >= config.threshold * total as f64 {
                let by_reason = ks.by_reason();
                let cause = cause_of(&by_reason);
                let sample_tokens = ks
                    .buckets
                    .iter()
                    .flat_map(|b| b.samples.iter().cloned())
                    .take(5)
                    .collect();
                ks.breaker = Breaker::Open {
                    since: now,
                    retry_at: now + config.cool_down,
                    skipped: 0,
                };
                let dropped = ks.pending.len();
                ks.pending.clear();
                crate::telemetry::breaker_open(
                    &topic,
                    env_label(environment),
                    Some(cause.as_str()),
                );
                tracing::warn!(topic = %topic, environment = env_label(environment),
                    cause = cause.as_str(), accepted, rejected, undecided = dropped,
                    "apns sink: circuit breaker open, the push configuration looks wrong");
                actions.push(Action::Suspect(PushConfigSuspect {
                    topic: topic.clone(),
                    environment,
                    cause,
                    accepted,
                    rejected,
                    by_reason,
                    sample_tokens,
                    window: config.window,
                    at: now,
                }));
            }
        }

        // 3. The token. An acceptance shows that it works: its own waiting rejection is dropped
        // (only other tokens' acceptances are evidence against it).
        if matches!(observed, Observed::Accepted) {
            ks.pending.retain(|p| p.token != token);
        }
        match observed {
            Observed::Rejected { reason, timestamp } if reason.invalidates_token() => {
                if !ticket.registered {
                    state.memory.remove(token);
                }
                actions.push(Action::Invalidated(TokenInvalidated {
                    token: token.to_owned(),
                    topic: topic.clone(),
                    subject: subject.map(str::to_owned),
                    reason: reason.clone(),
                    since: timestamp.unwrap_or(sent_at),
                }));
            }
            Observed::Rejected { reason, .. } if reason.quarantines_token() => {
                let closed = matches!(ks.breaker, Breaker::Closed);
                if let Some(last_rejected) = ticket.token_probe {
                    let evidence =
                        closed && ks.others_accepted(token).is_some_and(|t| t > last_rejected);
                    if evidence {
                        if !ticket.registered {
                            state.memory.remove(token);
                        }
                        actions.push(Action::Invalidated(TokenInvalidated {
                            token: token.to_owned(),
                            topic: topic.clone(),
                            subject: subject.map(str::to_owned),
                            reason: reason.clone(),
                            since: sent_at,
                        }));
                    } else {
                        let q =
                            quarantined(token, &topic, subject, environment, reason, sent_at, true);
                        if !ticket.registered {
                            remember(&mut state.memory, token, reason, sent_at);
                        }
                        actions.push(Action::Quarantined(q));
                    }
                } else if closed {
                    if let Some(p) = ks.pending.iter_mut().find(|p| p.token == token) {
                        p.reason = reason.clone();
                        p.at = p.at.max(sent_at);
                    } else if ks.pending.len() < PENDING_LIMIT {
                        ks.pending.push(Pending {
                            token: token.to_owned(),
                            topic: topic.clone(),
                            subject: subject.map(str::to_owned),
                            reason: reason.clone(),
                            at: sent_at,
                            registered: ticket.registered,
                        });
                    }
                }
            }
            Observed::Accepted if ticket.token_probe.is_some() => {
                if !ticket.registered {
                    state.memory.remove(token);
                }
                actions.push(Action::Released(TokenReleased {
                    token: token.to_owned(),
                    topic: topic.clone(),
                    subject: subject.map(str::to_owned),
                }));
            }
            _ => {}
        }

        // 4. Decide the waiting rejections once the evidence is there: the topic and
        // environment are healthy, and a push to another token was accepted in the window.
        if !ks.pending.is_empty() && ks.healthy(config.threshold) {
            let in_window = |at: SystemTime| {
                now.duration_since(at)
                    .map_or(true, |age| age < config.window)
            };
            let (decided, waiting): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut ks.pending)
                .into_iter()
                .partition(|p| ks.others_accepted(&p.token).is_some_and(in_window));
            ks.pending = waiting;
            for p in decided {
                if !p.registered {
                    remember(&mut state.memory, &p.token, &p.reason, p.at);
                }
                actions.push(Action::Quarantined(quarantined(
                    &p.token,
                    &p.topic,
                    p.subject.as_deref(),
                    environment,
                    &p.reason,
                    p.at,
                    false,
                )));
            }
        }
        actions
    }

    /// Every breaker's state.
    pub(crate) fn breakers(&self) -> Vec<BreakerReport> {
        let now = self.clock.now();
        let mut state = self.state.lock();
        let window = self.config.window;
        let mut out: Vec<BreakerReport> = state
            .keys
            .iter_mut()
            .map(|((topic, environment), ks)| {
                ks.prune(now, window);
                let (accepted, rejected) = ks.counts();
                BreakerReport {
                    topic: topic.clone(),
                    environment: *environment,
                    state: match ks.breaker {
                        Breaker::Closed => BreakerState::Closed,
                        Breaker::Open {
                            since, retry_at, ..
                        } => BreakerState::Open { since, retry_at },
                        Breaker::HalfOpen { since, .. } => BreakerState::HalfOpen { since },
                    },
                    accepted,
                    rejected,
                }
            })
            .collect();
        out.sort_by(|a, b| (&a.topic, a.environment).cmp(&(&b.topic, b.environment)));
        out
    }
}

fn cause_of(by_reason: &[(Reason, u64)]) -> SuspectedCause {
    let mut tally: Vec<(SuspectedCause, u64)> = Vec::new();
    for (reason, n) in by_reason {
        if let Some(c) = SuspectedCause::of(reason) {
            match tally.iter_mut().find(|(x, _)| *x == c) {
                Some((_, m)) => *m += n,
                None => tally.push((c, *n)),
            }
        }
    }
    tally
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map_or(SuspectedCause::WrongEnvironment, |(c, _)| c)
}

fn quarantined(
    token: &str,
    topic: &str,
    subject: Option<&str>,
    environment: Option<Environment>,
    reason: &Reason,
    at: SystemTime,
    again: bool,
) -> TokenQuarantined {
    TokenQuarantined {
        token: token.to_owned(),
        topic: topic.to_owned(),
        subject: subject.map(str::to_owned),
        environment,
        reason: reason.clone(),
        at,
        again,
    }
}

fn remember(
    memory: &mut HashMap<String, Quarantine>,
    token: &str,
    reason: &Reason,
    at: SystemTime,
) {
    if let Some(q) = memory.get_mut(token) {
        q.rejections = q.rejections.saturating_add(1);
        q.last_rejected = q.last_rejected.max(at);
        q.reason = reason.clone();
        return;
    }
    if memory.len() >= MEMORY_LIMIT {
        // Full: forget the entry rejected longest ago (it will be rejected and decided again).
        if let Some(oldest) = memory
            .iter()
            .min_by_key(|(_, q)| q.last_rejected)
            .map(|(t, _)| t.clone())
        {
            memory.remove(&oldest);
        }
    }
    memory.insert(token.to_owned(), Quarantine::new(reason.clone(), at));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::ManualClock;

    const TOPIC: &str = "com.example.app";

    fn engine(clock: &ManualClock) -> Lifecycle {
        Lifecycle::new(
            LifecycleConfig::default()
                .min_samples(10)
                .threshold(0.8)
                .window(Duration::from_secs(100))
                .cool_down(Duration::from_secs(30))
                .grace(Duration::from_secs(1000)),
            Arc::new(clock.clone()),
        )
    }

    fn target(token: &str) -> Target<'_> {
        Target {
            token,
            topic: TOPIC,
            environment: Some(Environment::Sandbox),
            registered: Some(None),
        }
    }

    /// The token "bad", held by the registry in quarantine `q`.
    fn quarantined_target(q: &Quarantine, environment: Option<Environment>) -> Target<'_> {
        Target {
            token: "bad",
            topic: TOPIC,
            environment,
            registered: Some(Some(q)),
        }
    }

    /// Ten rejections of ten tokens: the minimum sample, all bad, so the breaker opens.
    fn open_breaker(l: &Lifecycle) {
        for i in 0..10 {
            send(l, &format!("t{i}"), bad());
        }
    }

    fn send(l: &Lifecycle, token: &str, observed: Observed<'_>) -> Vec<Action> {
        match l.admit(&target(token)) {
            Admit::Send(t) => l.record(t, token, Some("s"), l.now(), observed),
            Admit::Skip(c) => panic!("{token} skipped: {c:?}"),
        }
    }

    fn bad() -> Observed<'static> {
        Observed::Rejected {
            reason: &Reason::BadDeviceToken,
            timestamp: None,
        }
    }

    fn names(actions: &[Action]) -> Vec<&'static str> {
        actions
            .iter()
            .map(|a| match a {
                Action::Quarantined(_) => "quarantined",
                Action::Released(_) => "released",
                Action::Invalidated(_) => "invalidated",
                Action::Suspect(_) => "suspect",
                Action::Recovered(_) => "recovered",
            })
            .collect()
    }

    #[test]
    fn a_rejection_waits_for_an_acceptance_before_quarantining() {
        let clock = ManualClock::new();
        let l = engine(&clock);
        assert!(send(&l, "bad1", bad()).is_empty(), "no evidence yet");
        let actions = send(&l, "good", Observed::Accepted);
        assert_eq!(names(&actions), ["quarantined"]);
        // With evidence in the window, the next one is decided at once.
        assert_eq!(names(&send(&l, "bad2", bad())), ["quarantined"]);
    }

    #[test]
    fn a_tokens_own_acceptance_is_never_evidence_against_it() {
        let clock = ManualClock::new();
        let l = engine(&clock);
        // Rejected, then accepted: the waiting rejection is dropped, nothing is decided.
        assert!(send(&l, "flaky", bad()).is_empty());
        assert!(send(&l, "flaky", Observed::Accepted).is_empty());
        assert!(send(&l, "good", Observed::Accepted).is_empty(), "dropped");
        // Accepted, then rejected: only another token's acceptance decides it.
        let l = engine(&clock);
        assert!(send(&l, "t", Observed::Accepted).is_empty());
        assert!(send(&l, "t", bad()).is_empty(), "its own acceptance");
        assert_eq!(
            names(&send(&l, "other", Observed::Accepted)),
            ["quarantined"]
        );
    }

    #[test]
    fn a_probe_is_confirmed_only_by_other_tokens_acceptances() {
        let clock = ManualClock::new();
        let l = engine(&clock);
        let q = Quarantine::new(Reason::BadDeviceToken, clock.now());
        let t = quarantined_target(&q, Some(Environment::Sandbox));
        // An acceptance of this very token since its last rejection (a push that was in
        // flight when it went into quarantine) confirms nothing.
        clock.advance(Duration::from_secs(1));
        send(&l, "bad", Observed::Accepted);
        clock.advance(Duration::from_secs(1000));
        let Admit::Send(ticket) = l.admit(&t) else {
            panic!("no probe after grace")
        };
        assert_eq!(
            names(&l.record(ticket, "bad", None, l.now(), bad())),
            ["quarantined"]
        );
    }

    #[test]
    fn undecided_rejections_expire_with_the_window() {
        let clock = ManualClock::new();
        let l = engine(&clock);
        assert!(send(&l, "bad1", bad()).is_empty());
        clock.advance(Duration::from_secs(101));
        assert!(send(&l, "good", Observed::Accepted).is_empty());
    }

    #[test]
    fn most_rejected_opens_once_and_drops_pending_decisions() {
        let clock = ManualClock::new();
        let l = engine(&clock);
        let mut all = Vec::new();
        for i in 0..9 {
            all.extend(names(&send(&l, &format!("t{i}"), bad())));
        }
        assert!(all.is_empty(), "below the minimum sample");
        assert_eq!(names(&send(&l, "t9", bad())), ["suspect"]);
        assert!(matches!(
            l.admit(&target("t10")),
            Admit::Skip(SkipCause::BreakerOpen)
        ));
        // An acceptance of a push already in flight decides nothing while open.
        assert!(l.breakers()[0].state != BreakerState::Closed);
    }

    #[test]
    fn a_mostly_healthy_window_does_not_open() {
        let clock = ManualClock::new();
        let l = engine(&clock);
        for i in 0..20 {
            send(&l, &format!("g{i}"), Observed::Accepted);
        }
        let mut quarantined = 0;
        for i in 0..4 {
            let a = send(&l, &format!("b{i}"), bad());
            assert!(!names(&a).contains(&"suspect"));
            quarantined += a.len();
        }
        assert_eq!(quarantined, 4);
    }

    #[test]
    fn after_the_cool_down_one_probe_closes_or_reopens() {
        let clock = ManualClock::new();
        let l = engine(&clock);
        open_breaker(&l);
        clock.advance(Duration::from_secs(31));
        let Admit::Send(probe) = l.admit(&target("p")) else {
            panic!("no probe after the cool-down")
        };
        assert!(
            matches!(l.admit(&target("q")), Admit::Skip(SkipCause::BreakerOpen)),
            "one probe at a time"
        );
        assert!(
            l.record(probe, "p", None, l.now(), bad()).is_empty(),
            "no second alarm"
        );
        assert!(matches!(
            l.admit(&target("q")),
            Admit::Skip(SkipCause::BreakerOpen)
        ));
        clock.advance(Duration::from_secs(31));
        let Admit::Send(probe) = l.admit(&target("p")) else {
            panic!("no probe after the second cool-down")
        };
        let actions = l.record(probe, "p", None, l.now(), Observed::Accepted);
        assert_eq!(names(&actions), ["recovered"]);
        assert!(matches!(l.admit(&target("q")), Admit::Send(_)));
    }

    #[test]
    fn a_neutral_probe_outcome_lets_the_next_push_probe() {
        let clock = ManualClock::new();
        let l = engine(&clock);
        open_breaker(&l);
        clock.advance(Duration::from_secs(31));
        let Admit::Send(probe) = l.admit(&target("p")) else {
            panic!()
        };
        assert!(
            l.record(probe, "p", None, l.now(), Observed::Failed)
                .is_empty()
        );
        assert!(matches!(l.admit(&target("q")), Admit::Send(_)));
    }

    #[test]
    fn a_quarantined_token_is_probed_after_grace_and_confirmed_on_evidence() {
        let clock = ManualClock::new();
        let l = engine(&clock);
        let q = Quarantine::new(Reason::BadDeviceToken, clock.now());
        let t = quarantined_target(&q, Some(Environment::Sandbox));
        assert!(matches!(l.admit(&t), Admit::Skip(SkipCause::Quarantined)));
        clock.advance(Duration::from_secs(1));
        send(&l, "good", Observed::Accepted);
        clock.advance(Duration::from_secs(1000));
        let Admit::Send(ticket) = l.admit(&t) else {
            panic!("no probe after grace")
        };
        assert!(
            matches!(l.admit(&t), Admit::Skip(SkipCause::Quarantined)),
            "one probe at a time"
        );
        let actions = l.record(ticket, "bad", Some("s"), l.now(), bad());
        assert_eq!(names(&actions), ["invalidated"]);
    }

    #[test]
    fn a_probe_rejected_without_evidence_stays_in_quarantine() {
        let clock = ManualClock::new();
        let l = engine(&clock);
        let q = Quarantine::new(Reason::BadDeviceToken, clock.now());
        let t = quarantined_target(&q, None);
        clock.advance(Duration::from_secs(1000));
        let Admit::Send(ticket) = l.admit(&t) else {
            panic!()
        };
        let actions = l.record(ticket, "bad", None, l.now(), bad());
        assert_eq!(names(&actions), ["quarantined"]);
    }

    #[test]
    fn tokens_the_registry_does_not_hold_are_quarantined_in_memory() {
        let clock = ManualClock::new();
        let l = engine(&clock);
        send(&l, "good", Observed::Accepted);
        let t = Target {
            token: "loose",
            topic: TOPIC,
            environment: Some(Environment::Sandbox),
            registered: None,
        };
        let Admit::Send(ticket) = l.admit(&t) else {
            panic!()
        };
        assert_eq!(
            names(&l.record(ticket, "loose", None, l.now(), bad())),
            ["quarantined"]
        );
        assert!(matches!(l.admit(&t), Admit::Skip(SkipCause::Quarantined)));
        clock.advance(Duration::from_secs(1000));
        let Admit::Send(ticket) = l.admit(&t) else {
            panic!("no probe after grace")
        };
        assert_eq!(
            names(&l.record(ticket, "loose", None, l.now(), Observed::Accepted)),
            ["released"]
        );
        assert!(matches!(l.admit(&t), Admit::Send(_)));
    }

    #[test]
    fn a_410_invalidates_even_while_open() {
        let clock = ManualClock::new();
        let l = engine(&clock);
        open_breaker(&l);
        // A push that was in flight when it opened.
        let ticket = Ticket {
            key: (TOPIC.to_owned(), Some(Environment::Sandbox)),
            breaker_probe: false,
            token_probe: None,
            registered: true,
        };
        let actions = l.record(
            ticket,
            "gone",
            None,
            l.now(),
            Observed::Rejected {
                reason: &Reason::Unregistered,
                timestamp: Some(SystemTime::UNIX_EPOCH),
            },
        );
        assert_eq!(names(&actions), ["invalidated"]);
    }
}
