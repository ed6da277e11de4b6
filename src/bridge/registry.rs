//! Who owns which device token: [`DeviceRegistry`] and the protocol it runs over a
//! [`RegistryStore`].

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::{Duration, SystemTime};

use crate::apns::Reason;
use crate::bridge::clock::{Clock, SystemClock};
use crate::bridge::lifecycle::{TokenInvalidated, TokenQuarantined, TokenReleased};
use crate::bridge::store::{
    Cas, Claim, Expect, MemoryStore, RegistryStore, Release, Revision, StoreError, SubjectRecord,
    to_ms,
};
use crate::{NotificationCenter, Subscription};

/// Which APNs environment a device token belongs to. A sandbox token sent to production (or the
/// reverse) is rejected with `BadDeviceToken`.
///
/// ```
/// use herald::bridge::Environment;
/// assert_eq!(Environment::parse("sandbox"), Some(Environment::Sandbox));
/// assert_eq!(Environment::Production.as_str(), "production");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Environment {
    /// Development builds (`api.sandbox.push.apple.com`).
    Sandbox,
    /// App Store and TestFlight builds (`api.push.apple.com`).
    Production,
}

impl Environment {
    /// `"sandbox"` or `"production"`.
    ///
    /// ```
    /// # use herald::bridge::Environment;
    /// assert_eq!(Environment::Sandbox.as_str(), "sandbox");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Sandbox => "sandbox",
            Environment::Production => "production",
        }
    }

    /// Parses `"sandbox"` / `"development"` or `"production"` (any case).
    ///
    /// ```
    /// # use herald::bridge::Environment;
    /// assert_eq!(Environment::parse("Development"), Some(Environment::Sandbox));
    /// assert_eq!(Environment::parse("staging"), None);
    /// ```
    pub fn parse(s: &str) -> Option<Environment> {
        match s.to_ascii_lowercase().as_str() {
            "sandbox" | "development" => Some(Environment::Sandbox),
            "production" => Some(Environment::Production),
            _ => None,
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One registered device: a token, the subject (user or account id) it belongs to, the app
/// (topic) and environment it was issued for, when it was registered, and whether it is in
/// quarantine.
///
/// ```
/// use herald::bridge::{Device, Environment};
/// let d = Device::new("alice", "a1b2c3d4", "com.example.app", Environment::Sandbox);
/// assert_eq!(d.subject, "alice");
/// assert_eq!(d.token, "a1b2c3d4");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The subject that owns the token.
    pub subject: String,
    /// The device token (lowercase hex).
    pub token: String,
    /// The app's bundle id (the APNs topic).
    pub topic: String,
    /// Sandbox or production.
    pub environment: Environment,
    /// When the token was (last) registered: a 410 older than this does not delete it.
    pub registered_at: SystemTime,
    /// `Some` while the token is in quarantine (see [`DeviceRegistry::quarantine`]): the sink
    /// sends it nothing but probes. A registration clears it.
    pub quarantine: Option<Quarantine>,
}

/// Why and since when a token is in quarantine: APNs rejected it with `BadDeviceToken` or
/// `DeviceTokenNotForTopic` while other tokens of its topic and environment were accepted.
/// Such a token is not deleted at once (a wrong environment also answers `BadDeviceToken`);
/// it gets no pushes, and is deleted only when a probe confirms the rejection (see
/// [`LifecycleConfig`](crate::bridge::LifecycleConfig)).
///
/// ```
/// use herald::apns::Reason;
/// use herald::bridge::Quarantine;
/// use std::time::UNIX_EPOCH;
/// let q = Quarantine::new(Reason::BadDeviceToken, UNIX_EPOCH);
/// assert_eq!((q.rejections, q.since, q.last_rejected), (1, UNIX_EPOCH, UNIX_EPOCH));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Quarantine {
    /// The latest rejection's reason.
    pub reason: Reason,
    /// When the first rejected push was sent.
    pub since: SystemTime,
    /// When the latest rejected push was sent.
    pub last_rejected: SystemTime,
    /// How many rejections put or kept it here.
    pub rejections: u32,
}

impl Quarantine {
    /// A quarantine after one rejection of a push sent at `at`.
    ///
    /// ```
    /// # use herald::{apns::Reason, bridge::Quarantine};
    /// let q = Quarantine::new(Reason::DeviceTokenNotForTopic, std::time::SystemTime::now());
    /// assert_eq!(q.reason, Reason::DeviceTokenNotForTopic);
    /// ```
    pub fn new(reason: Reason, at: SystemTime) -> Quarantine {
        Quarantine {
            reason,
            since: at,
            last_rejected: at,
            rejections: 1,
        }
    }
}

impl Device {
    /// A device registered now. The token is lowercased.
    ///
    /// ```
    /// # use herald::bridge::{Device, Environment};
    /// let d = Device::new("bob", "ABCD", "com.example.app", Environment::Production);
    /// assert_eq!(d.token, "abcd");
    /// ```
    pub fn new(
        subject: impl Into<String>,
        token: impl Into<String>,
        topic: impl Into<String>,
        environment: Environment,
    ) -> Device {
        Device {
            subject: subject.into(),
            token: token.into().to_ascii_lowercase(),
            topic: topic.into(),
            environment,
            registered_at: SystemTime::now(),
            quarantine: None,
        }
    }

    /// Whether the token is in quarantine.
    ///
    /// ```
    /// # use herald::bridge::{Device, Environment};
    /// assert!(!Device::new("a", "aa", "t", Environment::Sandbox).is_quarantined());
    /// ```
    pub fn is_quarantined(&self) -> bool {
        self.quarantine.is_some()
    }
}

/// What [`DeviceRegistry::replace`] did.
///
/// ```
/// use herald::bridge::{Device, DeviceRegistry, Environment, Replaced};
/// let r = DeviceRegistry::in_memory();
/// let new = Device::new("alice", "bb", "com.example.app", Environment::Sandbox);
/// assert_eq!(r.replace("aa", new).unwrap(), Replaced::Registered);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replaced {
    /// The old token was the subject's and is gone; the new one is registered.
    Replaced,
    /// The old token was unknown (or equal to the new one); the new one is registered.
    Registered,
}

/// Why a registry operation was refused. Nothing changed when one is returned.
///
/// ```
/// use herald::bridge::{Device, DeviceRegistry, Environment, RegistryError};
/// let registry = DeviceRegistry::in_memory();
/// registry.register(Device::new("alice", "aa", "com.example.app", Environment::Sandbox)).unwrap();
/// let err = registry
///     .register(Device::new("mallory", "aa", "com.example.app", Environment::Sandbox))
///     .unwrap_err();
/// assert!(err.is_not_owner());
/// ```
#[derive(Debug, Clone)]
pub struct RegistryError {
    kind: RegistryErrorKind,
}

#[derive(Debug, Clone)]
enum RegistryErrorKind {
    NotOwner,
    Contended,
    Store(StoreError),
}

impl RegistryError {
    fn not_owner() -> RegistryError {
        RegistryError {
            kind: RegistryErrorKind::NotOwner,
        }
    }

    fn contended() -> RegistryError {
        RegistryError {
            kind: RegistryErrorKind::Contended,
        }
    }

    /// The token belongs to another subject: a caller may never replace, take or remove it.
    ///
    /// ```
    /// # use herald::bridge::{Device, DeviceRegistry, Environment};
    /// let r = DeviceRegistry::in_memory();
    /// r.register(Device::new("a", "aa", "t", Environment::Sandbox)).unwrap();
    /// assert!(r.remove("b", "aa").unwrap_err().is_not_owner());
    /// ```
    pub fn is_not_owner(&self) -> bool {
        matches!(self.kind, RegistryErrorKind::NotOwner)
    }

    /// Other writers kept winning every compare-and-set for too long (thousands of attempts);
    /// nothing changed. Retrying later is safe.
    ///
    /// ```
    /// # use herald::bridge::DeviceRegistry;
    /// assert!(!DeviceRegistry::in_memory().remove("a", "aa").map(|_| ()).is_err());
    /// ```
    pub fn is_contended(&self) -> bool {
        matches!(self.kind, RegistryErrorKind::Contended)
    }

    /// The store failed.
    ///
    /// ```
    /// # use herald::bridge::{Device, DeviceRegistry, Environment};
    /// let r = DeviceRegistry::in_memory();
    /// assert!(r.remove("b", "aa").is_ok());
    /// ```
    pub fn store_error(&self) -> Option<&StoreError> {
        match &self.kind {
            RegistryErrorKind::Store(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            RegistryErrorKind::NotOwner => f.write_str("the token belongs to another subject"),
            RegistryErrorKind::Contended => {
                f.write_str("device store: too many concurrent writers, nothing changed")
            }
            RegistryErrorKind::Store(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for RegistryError {}

impl From<StoreError> for RegistryError {
    fn from(e: StoreError) -> Self {
        RegistryError {
            kind: RegistryErrorKind::Store(e),
        }
    }
}

/// How many compare-and-set rounds an operation tries before giving up as contended.
const MAX_ATTEMPTS: u32 = 10_000;

/// Default [`RegistryBuilder::claim_timeout`].
///
/// ```
/// use herald::bridge::{Claim, Clock, DEFAULT_CLAIM_TIMEOUT, Device, DeviceRegistry, Environment,
///     Expect, ManualClock, MemoryStore, RegistryStore};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// assert_eq!(DEFAULT_CLAIM_TIMEOUT, Duration::from_secs(30));
/// let store = Arc::new(MemoryStore::new());
/// let clock = ManualClock::new();
/// let registry = DeviceRegistry::builder(store.clone()).clock(clock.clone()).build();
/// // A writer for "ghost" claimed the token, then crashed before storing its device.
/// let claim = Claim { subject: "ghost".into(), claimed_at: clock.now() };
/// assert!(store.write_claim("aa01", Expect::Absent, Some(&claim))?.is_written());
/// let alice = || Device::new("alice", "aa01", "com.example.app", Environment::Sandbox);
/// assert!(registry.register(alice()).unwrap_err().is_not_owner());
/// // Past the claim timeout, the abandoned claim is taken over.
/// clock.advance(DEFAULT_CLAIM_TIMEOUT + Duration::from_secs(1));
/// registry.register(alice())?;
/// assert_eq!(registry.device("aa01")?.unwrap().subject, "alice");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const DEFAULT_CLAIM_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`RegistryBuilder::marker_retention`].
///
/// ```
/// use herald::bridge::{DEFAULT_MARKER_RETENTION, Device, DeviceRegistry, Environment, ManualClock,
///     MemoryStore, RegistryStore};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// assert_eq!(DEFAULT_MARKER_RETENTION, Duration::from_secs(24 * 3600));
/// let store = Arc::new(MemoryStore::new());
/// let clock = ManualClock::new();
/// let registry = DeviceRegistry::builder(store.clone()).clock(clock.clone()).build();
/// let device = |token| Device::new("alice", token, "com.example.app", Environment::Sandbox);
/// registry.register(device("aa01"))?;
/// registry.replace("aa01", device("aa02"))?; // alice gives up aa01: a release marker is kept
/// assert!(store.read_subject("alice")?.unwrap().value.released.contains_key("aa01"));
/// // Past the retention, the next write of alice's record drops the marker.
/// clock.advance(DEFAULT_MARKER_RETENTION + Duration::from_secs(1));
/// registry.register(device("aa03"))?;
/// assert!(store.read_subject("alice")?.unwrap().value.released.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const DEFAULT_MARKER_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// Configures a [`DeviceRegistry`]: the store, the clock, and the two durations of the
/// ownership protocol.
///
/// ```
/// use herald::bridge::{DeviceRegistry, ManualClock, MemoryStore};
/// use std::time::Duration;
/// let registry = DeviceRegistry::builder(MemoryStore::new())
///     .clock(ManualClock::new())
///     .claim_timeout(Duration::from_secs(10))
///     .build();
/// assert!(registry.is_empty().unwrap());
/// ```
#[must_use = "call .build() to get the registry"]
pub struct RegistryBuilder {
    store: Box<dyn RegistryStore>,
    clock: Arc<dyn Clock>,
    claim_timeout: Duration,
    marker_retention: Duration,
}

impl fmt::Debug for RegistryBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryBuilder")
            .field("claim_timeout", &self.claim_timeout)
            .field("marker_retention", &self.marker_retention)
            .finish_non_exhaustive()
    }
}

impl RegistryBuilder {
    /// The clock for registration claims and quarantine times (default: the system clock).
    ///
    /// ```
    /// # use herald::bridge::{DeviceRegistry, ManualClock, MemoryStore};
    /// let b = DeviceRegistry::builder(MemoryStore::new()).clock(ManualClock::new());
    /// # drop(b);
    /// ```
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How long a half-done registration by another subject blocks a token (default
    /// [`DEFAULT_CLAIM_TIMEOUT`], 30 s). A writer that crashed between claiming a token and
    /// storing it leaves a claim that others may take over only after this long; an operation
    /// that takes longer than this starts over with a fresh claim.
    ///
    /// ```
    /// # use herald::bridge::{DeviceRegistry, MemoryStore};
    /// let b = DeviceRegistry::builder(MemoryStore::new()).claim_timeout(std::time::Duration::from_secs(5));
    /// # drop(b);
    /// ```
    pub fn claim_timeout(mut self, timeout: Duration) -> Self {
        self.claim_timeout = timeout;
        self
    }

    /// How long a release marker is kept (default [`DEFAULT_MARKER_RETENTION`], 24 h; at least
    /// the claim timeout). A marker stops a writer that stalled with an old claim from putting
    /// a token back into a subject that gave it up; a write delayed longer than this (in a
    /// process or on the network) is the one case it no longer stops.
    ///
    /// ```
    /// # use herald::bridge::{DeviceRegistry, MemoryStore};
    /// let b = DeviceRegistry::builder(MemoryStore::new()).marker_retention(std::time::Duration::from_secs(3600));
    /// # drop(b);
    /// ```
    pub fn marker_retention(mut self, retention: Duration) -> Self {
        self.marker_retention = retention;
        self
    }

    /// Builds the registry.
    ///
    /// ```
    /// # use herald::bridge::{DeviceRegistry, MemoryStore};
    /// let r = DeviceRegistry::builder(MemoryStore::new()).build();
    /// # drop(r);
    /// ```
    pub fn build(self) -> DeviceRegistry {
        DeviceRegistry {
            inner: Arc::new(RegistryInner {
                store: self.store,
                clock: self.clock,
                claim_timeout: self.claim_timeout,
                marker_retention: self.marker_retention.max(self.claim_timeout),
            }),
        }
    }
}

/// Subject (user or account id) → device tokens, with topic, environment and lifecycle state.
///
/// - [`register`](Self::register), [`replace`](Self::replace) old → new in one atomic step (the
///   app sends both), [`remove`](Self::remove), [`devices`](Self::devices) of a subject.
/// - A subject never touches another subject's token: taking, replacing or removing it fails
///   with [`RegistryError::is_not_owner`] and changes nothing.
/// - **Only APNs' 410 deletes** ([`invalidate`](Self::invalidate)): `Unregistered` /
///   `ExpiredToken`, unless the token was registered again after APNs' timestamp.
/// - **`BadDeviceToken` / `DeviceTokenNotForTopic` quarantine** ([`quarantine`](Self::quarantine)):
///   the token stays, the sink stops sending to it, a registration releases it, and it is
///   deleted only on confirmation ([`delete_quarantined`](Self::delete_quarantined), driven by
///   the sink's rule in [`LifecycleConfig`](crate::bridge::LifecycleConfig)).
/// - [`observe`](Self::observe) a center: applies [`TokenInvalidated`], [`TokenQuarantined`]
///   and [`TokenReleased`] as the sink posts them.
/// - Persistent by default ([`open`](Self::open): an embedded crash-safe [redb] file); in memory
///   for tests ([`in_memory`](Self::in_memory)); any [`RegistryStore`], shared by several
///   processes if the store is.
///
/// Cheap to clone (an `Arc` inside). Store calls are synchronous (a redb commit waits for
/// `fsync`); call them from `spawn_blocking` if your store is slow.
///
/// # Atomicity across processes
///
/// Every operation is a sequence of compare-and-set writes on single keys (the store needs no
/// transactions), retried on conflict; each change a reader can see is one write of one
/// subject's record. The protocol:
///
/// 1. **Claim**: before a token enters subject S's record, S holds the token's claim (the
///    token → subject index). A missing claim is created; S's own claim is reused. Another
///    subject's claim is taken over only when that subject does not hold the token and either
///    released it (a release marker in its record covers the claim's revision) or claimed it
///    more than [`claim_timeout`](RegistryBuilder::claim_timeout) ago (a writer that crashed
///    half-way); the takeover first writes a release marker into the old claimant's record
///    (fencing any late writer there), then moves the claim. Otherwise: `NotOwner`.
/// 2. **Write**: one compare-and-set of S's record adds (or replaces old → new, quarantines,
///    releases, deletes) the device. A token is added only under a claim newer than any
///    release marker S has for it.
/// 3. **Release**: a token leaves S's record together with a release marker for its current
///    claim (same write); then the claim is deleted if unchanged.
///
/// So a token is in at most one subject's record at any time, and a subject's record holds
/// only tokens it claims; a crash between steps leaves at most a claim that expires.
///
/// [redb]: https://www.redb.org
///
/// ```
/// use herald::bridge::{Device, DeviceRegistry, Environment};
///
/// let dir = tempfile::tempdir().unwrap();
/// let registry = DeviceRegistry::open(dir.path().join("devices.redb")).unwrap();
/// let topic = "com.example.app";
/// registry.register(Device::new("alice", "aa01", topic, Environment::Sandbox)).unwrap();
/// // The app reinstalled and got a new token: it sends both.
/// registry.replace("aa01", Device::new("alice", "aa02", topic, Environment::Sandbox)).unwrap();
/// let tokens: Vec<_> = registry.devices("alice").unwrap().into_iter().map(|d| d.token).collect();
/// assert_eq!(tokens, ["aa02"]);
/// drop(registry);
///
/// // Survives a restart.
/// let registry = DeviceRegistry::open(dir.path().join("devices.redb")).unwrap();
/// assert_eq!(registry.devices("alice").unwrap().len(), 1);
/// ```
#[derive(Clone)]
pub struct DeviceRegistry {
    inner: Arc<RegistryInner>,
}

struct RegistryInner {
    store: Box<dyn RegistryStore>,
    clock: Arc<dyn Clock>,
    claim_timeout: Duration,
    marker_retention: Duration,
}

impl fmt::Debug for DeviceRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceRegistry")
            .field("claim_timeout", &self.inner.claim_timeout)
            .finish_non_exhaustive()
    }
}

/// What an edit of a subject's record decided.
enum Edit<T> {
    /// Write the edited record, then return the value.
    Write(T),
    /// Write nothing; return the value.
    Keep(T),
}

/// Compares at APNs' precision (milliseconds): a registration in the same millisecond as a
/// rejection does not outlive it.
fn after(a: SystemTime, b: SystemTime) -> bool {
    to_ms(a) > to_ms(b)
}

impl DeviceRegistry {
    /// Opens (or creates) the persistent registry file at `path` (redb: ACID, crash-safe).
    ///
    /// ```
    /// # use herald::bridge::DeviceRegistry;
    /// let dir = tempfile::tempdir().unwrap();
    /// let registry = DeviceRegistry::open(dir.path().join("devices.redb")).unwrap();
    /// assert_eq!(registry.len().unwrap(), 0);
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<DeviceRegistry, StoreError> {
        Ok(DeviceRegistry::with_store(
            crate::bridge::store_redb::RedbStore::open(path)?,
        ))
    }

    /// A registry kept in memory.
    ///
    /// ```
    /// # use herald::bridge::DeviceRegistry;
    /// assert!(DeviceRegistry::in_memory().is_empty().unwrap());
    /// ```
    pub fn in_memory() -> DeviceRegistry {
        DeviceRegistry::with_store(MemoryStore::new())
    }

    /// A registry over your own store, with the default settings.
    ///
    /// ```
    /// # use herald::bridge::{DeviceRegistry, MemoryStore};
    /// let registry = DeviceRegistry::with_store(MemoryStore::new());
    /// # drop(registry);
    /// ```
    pub fn with_store(store: impl RegistryStore) -> DeviceRegistry {
        DeviceRegistry::builder(store).build()
    }

    /// Configures a registry over `store`. Several registries (in one process or many) may
    /// share one store: pass an `Arc<S>`, or a store that is itself shared (NATS key-value).
    ///
    /// ```
    /// # use herald::bridge::{DeviceRegistry, MemoryStore};
    /// use std::sync::Arc;
    /// let store = Arc::new(MemoryStore::new());
    /// let a = DeviceRegistry::builder(store.clone()).build();
    /// let b = DeviceRegistry::builder(store).build();
    /// # drop((a, b));
    /// ```
    pub fn builder(store: impl RegistryStore) -> RegistryBuilder {
        RegistryBuilder {
            store: Box::new(store),
            clock: Arc::new(SystemClock),
            claim_timeout: DEFAULT_CLAIM_TIMEOUT,
            marker_retention: DEFAULT_MARKER_RETENTION,
        }
    }

    fn store(&self) -> &dyn RegistryStore {
        &*self.inner.store
    }

    fn now(&self) -> SystemTime {
        self.inner.clock.now()
    }

    /// Reads, edits and compare-and-sets one subject's record until the write wins (or the
    /// edit decides to keep it). Expired release markers are dropped on every write.
    fn edit<T>(
        &self,
        subject: &str,
        mut f: impl FnMut(&mut SubjectRecord) -> Result<Edit<T>, RegistryError>,
    ) -> Result<T, RegistryError> {
        for attempt in 0..MAX_ATTEMPTS {
            let current = self.store().read_subject(subject)?;
            let (mut record, expect) = match current {
                Some(v) => (v.value, Expect::At(v.revision)),
                None => (SubjectRecord::default(), Expect::Absent),
            };
            let value = match f(&mut record)? {
                Edit::Keep(v) => return Ok(v),
                Edit::Write(v) => v,
            };
            let now = self.now();
            let keep = self.inner.marker_retention;
            record
                .released
                .retain(|_, m| now.duration_since(m.at).map_or(true, |age| age <= keep));
            let write = (!record.is_empty()).then_some(&record);
            if write.is_none() && expect == Expect::Absent {
                return Ok(value);
            }
            if self
                .store()
                .write_subject(subject, expect, write)?
                .is_written()
            {
                return Ok(value);
            }
            crate::telemetry::registry_conflict();
            backoff(attempt);
        }
        Err(RegistryError::contended())
    }

    /// The subject whose record holds `token`, with the claim's revision.
    fn holder(&self, token: &str) -> Result<Option<(String, Revision)>, RegistryError> {
        let Some(claim) = self.store().read_claim(token)? else {
            return Ok(None);
        };
        let held = self
            .store()
            .read_subject(&claim.value.subject)?
            .is_some_and(|r| r.value.devices.contains_key(token));
        Ok(held.then_some((claim.value.subject, claim.revision)))
    }

    /// Step 1 of the protocol: makes `subject` the claimant of `token`, returning the claim's
    /// revision. `stale`: a revision of our own claim that a release marker voided; the claim
    /// is renewed above it.
    fn claim(
        &self,
        subject: &str,
        token: &str,
        stale: Option<Revision>,
    ) -> Result<Revision, RegistryError> {
        let store = self.store();
        for attempt in 0..MAX_ATTEMPTS {
            let now = self.now();
            let fresh = Claim {
                subject: subject.to_owned(),
                claimed_at: now,
            };
            let cas = match store.read_claim(token)? {
                None => store.write_claim(token, Expect::Absent, Some(&fresh))?,
                Some(c) if c.value.subject == subject => {
                    if stale.is_none_or(|s| c.revision > s) {
                        return Ok(c.revision);
                    }
                    store.write_claim(token, Expect::At(c.revision), Some(&fresh))?
                }
                Some(c) => {
                    let owner = c.value.subject.clone();
                    let record = store.read_subject(&owner)?;
                    let (mut value, expect) = match record {
                        Some(v) => (v.value, Expect::At(v.revision)),
                        None => (SubjectRecord::default(), Expect::Absent),
                    };
                    if value.devices.contains_key(token) {
                        return Err(RegistryError::not_owner());
                    }
                    let released = value
                        .released
                        .get(token)
                        .is_some_and(|m| m.claim >= c.revision);
                    if !released {
                        let age = now.duration_since(c.value.claimed_at).unwrap_or_default();
                        if age < self.inner.claim_timeout {
                            // Another subject is registering it right now.
                            return Err(RegistryError::not_owner());
                        }
                        // A writer crashed half-way: fence its record, then take the claim.
                        value.released.insert(
                            token.to_owned(),
                            Release {
                                claim: c.revision,
                                at: now,
                            },
                        );
                        if !store
                            .write_subject(&owner, expect, Some(&value))?
                            .is_written()
                        {
                            crate::telemetry::registry_conflict();
                            backoff(attempt);
                            continue;
                        }
                    }
                    store.write_claim(token, Expect::At(c.revision), Some(&fresh))?
                }
            };
            if let Cas::Written(r) = cas {
                return Ok(r);
            }
            crate::telemetry::registry_conflict();
            backoff(attempt);
        }
        Err(RegistryError::contended())
    }

    /// Steps 1 and 2 for a token entering `subject`'s record: claims it, then applies `f` to
    /// the record (which must insert the token) unless a release marker voids the claim.
    fn add<T>(
        &self,
        subject: &str,
        token: &str,
        mut f: impl FnMut(&mut SubjectRecord) -> T,
    ) -> Result<T, RegistryError> {
        let mut stale = None;
        for attempt in 0..MAX_ATTEMPTS {
            let started = self.now();
            let claim = self.claim(subject, token, stale)?;
            let timeout = self.inner.claim_timeout;
            let done = self.edit(subject, |record| {
                let voided = record.released.get(token).is_some_and(|m| m.claim >= claim);
                let late = self
                    .now()
                    .duration_since(started)
                    .is_ok_and(|d| d >= timeout);
                if voided || late {
                    return Ok(Edit::Keep(None));
                }
                record.released.remove(token);
                Ok(Edit::Write(Some(f(record))))
            })?;
            match done {
                Some(v) => return Ok(v),
                None => {
                    stale = Some(claim);
                    backoff(attempt);
                }
            }
        }
        Err(RegistryError::contended())
    }

    /// Step 3 for a token that left `subject`'s record: deletes its claim if still ours at
    /// `claim`. A conflict means someone renewed or took it: leave it.
    fn drop_claim(&self, token: &str, claim: Option<Revision>) -> Result<(), RegistryError> {
        if let Some(revision) = claim {
            let _ = self
                .store()
                .write_claim(token, Expect::At(revision), None)?;
        }
        Ok(())
    }

    /// Removes `token` from `subject`'s record if `pred` allows, with its release marker, then
    /// drops the claim. Returns whether it was removed.
    fn take_out(
        &self,
        subject: &str,
        token: &str,
        mut pred: impl FnMut(&Device) -> bool,
    ) -> Result<bool, RegistryError> {
        let claim = self
            .store()
            .read_claim(token)?
            .filter(|c| c.value.subject == subject)
            .map(|c| c.revision);
        let now = self.now();
        let removed = self.edit(subject, |record| {
            match record.devices.get(token) {
                Some(d) if pred(d) => {}
                _ => return Ok(Edit::Keep(false)),
            }
            record.devices.remove(token);
            if let Some(claim) = claim {
                record
                    .released
                    .insert(token.to_owned(), Release { claim, at: now });
            }
            Ok(Edit::Write(true))
        })?;
        if removed {
            self.drop_claim(token, claim)?;
        }
        Ok(removed)
    }

    /// The subject holding `token`, for operations addressed by token alone.
    fn subject_of(&self, token: &str) -> Result<Option<String>, RegistryError> {
        Ok(self.store().read_claim(token)?.map(|c| c.value.subject))
    }

    /// Registers a device for its subject (again: refreshes its topic, environment and
    /// registration time, and releases it from quarantine). Refused when the token belongs to
    /// another subject.
    ///
    /// ```
    /// # use herald::bridge::{Device, DeviceRegistry, Environment};
    /// let r = DeviceRegistry::in_memory();
    /// r.register(Device::new("alice", "aa", "com.example.app", Environment::Sandbox)).unwrap();
    /// assert_eq!(r.device("aa").unwrap().unwrap().subject, "alice");
    /// ```
    pub fn register(&self, device: Device) -> Result<(), RegistryError> {
        let device = normalize(device);
        let result = self.add(&device.subject.clone(), &device.token.clone(), |record| {
            record.devices.insert(device.token.clone(), device.clone());
        });
        crate::telemetry::registry_op("register", &result);
        result
    }

    /// Replaces `old_token` by `new` in one atomic step: after it, `old_token` is never
    /// addressed again. An unknown `old_token` just registers `new`. Refused, with nothing
    /// changed, when either token belongs to another subject.
    ///
    /// ```
    /// # use herald::bridge::{Device, DeviceRegistry, Environment, Replaced};
    /// let r = DeviceRegistry::in_memory();
    /// r.register(Device::new("alice", "aa", "com.example.app", Environment::Sandbox)).unwrap();
    /// let new = Device::new("alice", "bb", "com.example.app", Environment::Sandbox);
    /// assert_eq!(r.replace("aa", new).unwrap(), Replaced::Replaced);
    /// assert!(r.device("aa").unwrap().is_none());
    /// ```
    pub fn replace(&self, old_token: &str, new: Device) -> Result<Replaced, RegistryError> {
        let result = self.replace_inner(&old_token.to_ascii_lowercase(), normalize(new));
        crate::telemetry::registry_op("replace", &result);
        result
    }

    fn replace_inner(&self, old: &str, new: Device) -> Result<Replaced, RegistryError> {
        if old == new.token {
            self.register(new)?;
            return Ok(Replaced::Registered);
        }
        let subject = new.subject.clone();
        if let Some((holder, _)) = self.holder(old)?
            && holder != subject
        {
            return Err(RegistryError::not_owner());
        }
        let old_claim = self
            .store()
            .read_claim(old)?
            .filter(|c| c.value.subject == subject)
            .map(|c| c.revision);
        let now = self.now();
        let token = new.token.clone();
        let had_old = self.add(&subject, &token, |record| {
            let had = record.devices.remove(old).is_some();
            if had && let Some(claim) = old_claim {
                record
                    .released
                    .insert(old.to_owned(), Release { claim, at: now });
            }
            record.devices.insert(new.token.clone(), new.clone());
            had
        })?;
        if had_old {
            self.drop_claim(old, old_claim)?;
            Ok(Replaced::Replaced)
        } else {
            Ok(Replaced::Registered)
        }
    }

    /// Removes `subject`'s token. `Ok(false)` when it was not registered; refused when it
    /// belongs to another subject.
    ///
    /// ```
    /// # use herald::bridge::{Device, DeviceRegistry, Environment};
    /// let r = DeviceRegistry::in_memory();
    /// r.register(Device::new("alice", "aa", "com.example.app", Environment::Sandbox)).unwrap();
    /// assert!(r.remove("alice", "aa").unwrap());
    /// assert!(!r.remove("alice", "aa").unwrap());
    /// ```
    pub fn remove(&self, subject: &str, token: &str) -> Result<bool, RegistryError> {
        let token = token.to_ascii_lowercase();
        let result = match self.holder(&token) {
            Ok(Some((holder, _))) if holder != subject => Err(RegistryError::not_owner()),
            Ok(_) => self.take_out(subject, &token, |_| true),
            Err(e) => Err(e),
        };
        crate::telemetry::registry_op("remove", &result);
        result
    }

    /// Deletes `token` because APNs answered 410 (`Unregistered`, `ExpiredToken`): it became
    /// invalid at `since` (APNs' timestamp). Kept if it was registered again after `since`
    /// (compared in milliseconds, APNs' precision). Returns whether it was deleted. This is
    /// what [`observe`](Self::observe) calls on a 410 [`TokenInvalidated`]; the check and the
    /// delete are one atomic step.
    ///
    /// ```
    /// # use herald::bridge::{Device, DeviceRegistry, Environment};
    /// # use std::time::{Duration, SystemTime};
    /// let r = DeviceRegistry::in_memory();
    /// let long_ago = SystemTime::now() - Duration::from_secs(3600);
    /// r.register(Device::new("alice", "aa", "com.example.app", Environment::Sandbox)).unwrap();
    /// // The app re-registered after the 410: keep the token.
    /// assert!(!r.invalidate("aa", long_ago).unwrap());
    /// assert!(r.invalidate("aa", SystemTime::now()).unwrap());
    /// ```
    pub fn invalidate(&self, token: &str, since: SystemTime) -> Result<bool, RegistryError> {
        let token = token.to_ascii_lowercase();
        let result = match self.subject_of(&token) {
            Ok(Some(subject)) => {
                self.take_out(&subject, &token, |d| !after(d.registered_at, since))
            }
            Ok(None) => Ok(false),
            Err(e) => Err(e),
        };
        crate::telemetry::registry_op("invalidate", &result);
        result
    }

    /// Puts `token` in quarantine because APNs rejected a push sent at `at` with `reason`
    /// (`BadDeviceToken`, `DeviceTokenNotForTopic`): kept, but sent nothing (the sink checks).
    /// Again while in quarantine: counts the rejection. Ignored (`Ok(false)`) when the token is
    /// unknown or was registered again after `at`. One atomic step.
    ///
    /// ```
    /// # use herald::bridge::{Device, DeviceRegistry, Environment};
    /// use herald::apns::Reason;
    /// use std::time::SystemTime;
    /// let r = DeviceRegistry::in_memory();
    /// r.register(Device::new("alice", "aa", "com.example.app", Environment::Sandbox)).unwrap();
    /// assert!(r.quarantine("aa", Reason::BadDeviceToken, SystemTime::now()).unwrap());
    /// let d = r.device("aa").unwrap().unwrap();
    /// assert_eq!(d.quarantine.unwrap().reason, Reason::BadDeviceToken);
    /// // The app registers the token again: released.
    /// r.register(Device::new("alice", "aa", "com.example.app", Environment::Sandbox)).unwrap();
    /// assert!(!r.device("aa").unwrap().unwrap().is_quarantined());
    /// ```
    pub fn quarantine(
        &self,
        token: &str,
        reason: Reason,
        at: SystemTime,
    ) -> Result<bool, RegistryError> {
        let token = token.to_ascii_lowercase();
        let result = match self.subject_of(&token) {
            Ok(Some(subject)) => self.edit(&subject, |record| {
                let Some(d) = record.devices.get_mut(&token) else {
                    return Ok(Edit::Keep(false));
                };
                if after(d.registered_at, at) {
                    return Ok(Edit::Keep(false));
                }
                match &mut d.quarantine {
                    Some(q) => {
                        q.rejections = q.rejections.saturating_add(1);
                        q.last_rejected = q.last_rejected.max(at);
                        q.reason = reason.clone();
                    }
                    None => d.quarantine = Some(Quarantine::new(reason.clone(), at)),
                }
                Ok(Edit::Write(true))
            }),
            Ok(None) => Ok(false),
            Err(e) => Err(e),
        };
        crate::telemetry::registry_op("quarantine", &result);
        result
    }

    /// Releases `token` from quarantine (a probe was accepted). Returns whether it was in
    /// quarantine. A registration releases too.
    ///
    /// ```
    /// # use herald::bridge::{Device, DeviceRegistry, Environment};
    /// # use herald::apns::Reason;
    /// # use std::time::SystemTime;
    /// let r = DeviceRegistry::in_memory();
    /// r.register(Device::new("alice", "aa", "com.example.app", Environment::Sandbox)).unwrap();
    /// r.quarantine("aa", Reason::BadDeviceToken, SystemTime::now()).unwrap();
    /// assert!(r.release("aa").unwrap());
    /// assert!(!r.release("aa").unwrap());
    /// ```
    pub fn release(&self, token: &str) -> Result<bool, RegistryError> {
        let token = token.to_ascii_lowercase();
        let result = match self.subject_of(&token) {
            Ok(Some(subject)) => {
                self.edit(&subject, |record| match record.devices.get_mut(&token) {
                    Some(d) if d.quarantine.is_some() => {
                        d.quarantine = None;
                        Ok(Edit::Write(true))
                    }
                    _ => Ok(Edit::Keep(false)),
                })
            }
            Ok(None) => Ok(false),
            Err(e) => Err(e),
        };
        crate::telemetry::registry_op("release", &result);
        result
    }

    /// Deletes a token in quarantine whose rejection was confirmed at `since` (the confirming
    /// push's send time). Does nothing unless the token is in quarantine and was not
    /// registered again after `since`. One atomic step.
    ///
    /// ```
    /// # use herald::bridge::{Device, DeviceRegistry, Environment};
    /// # use herald::apns::Reason;
    /// # use std::time::SystemTime;
    /// let r = DeviceRegistry::in_memory();
    /// r.register(Device::new("alice", "aa", "com.example.app", Environment::Sandbox)).unwrap();
    /// assert!(!r.delete_quarantined("aa", SystemTime::now()).unwrap()); // active: kept
    /// r.quarantine("aa", Reason::BadDeviceToken, SystemTime::now()).unwrap();
    /// assert!(r.delete_quarantined("aa", SystemTime::now()).unwrap());
    /// assert!(r.device("aa").unwrap().is_none());
    /// ```
    pub fn delete_quarantined(
        &self,
        token: &str,
        since: SystemTime,
    ) -> Result<bool, RegistryError> {
        let token = token.to_ascii_lowercase();
        let result = match self.subject_of(&token) {
            Ok(Some(subject)) => self.take_out(&subject, &token, |d| {
                d.quarantine.is_some() && !after(d.registered_at, since)
            }),
            Ok(None) => Ok(false),
            Err(e) => Err(e),
        };
        crate::telemetry::registry_op("delete_quarantined", &result);
        result
    }

    /// The subject's devices, in token order (those in quarantine included, marked).
    ///
    /// ```
    /// # use herald::bridge::{Device, DeviceRegistry, Environment};
    /// let r = DeviceRegistry::in_memory();
    /// r.register(Device::new("alice", "bb", "com.example.app", Environment::Sandbox)).unwrap();
    /// r.register(Device::new("alice", "aa", "com.example.app", Environment::Sandbox)).unwrap();
    /// let tokens: Vec<_> = r.devices("alice").unwrap().into_iter().map(|d| d.token).collect();
    /// assert_eq!(tokens, ["aa", "bb"]);
    /// ```
    pub fn devices(&self, subject: &str) -> Result<Vec<Device>, RegistryError> {
        Ok(self
            .store()
            .read_subject(subject)?
            .map(|v| v.value.devices.into_values().collect())
            .unwrap_or_default())
    }

    /// The device with this token.
    ///
    /// ```
    /// # use herald::bridge::DeviceRegistry;
    /// assert!(DeviceRegistry::in_memory().device("aa").unwrap().is_none());
    /// ```
    pub fn device(&self, token: &str) -> Result<Option<Device>, RegistryError> {
        let token = token.to_ascii_lowercase();
        let Some(subject) = self.subject_of(&token)? else {
            return Ok(None);
        };
        Ok(self
            .store()
            .read_subject(&subject)?
            .and_then(|mut v| v.value.devices.remove(&token)))
    }

    /// Every device, by subject then token.
    ///
    /// ```
    /// # use herald::bridge::DeviceRegistry;
    /// assert!(DeviceRegistry::in_memory().all().unwrap().is_empty());
    /// ```
    pub fn all(&self) -> Result<Vec<Device>, RegistryError> {
        let mut subjects = self.store().subjects()?;
        subjects.sort();
        let mut out = Vec::new();
        for s in subjects {
            out.extend(self.devices(&s)?);
        }
        Ok(out)
    }

    /// Every device in quarantine.
    ///
    /// ```
    /// # use herald::bridge::DeviceRegistry;
    /// assert!(DeviceRegistry::in_memory().quarantined().unwrap().is_empty());
    /// ```
    pub fn quarantined(&self) -> Result<Vec<Device>, RegistryError> {
        let mut all = self.all()?;
        all.retain(Device::is_quarantined);
        Ok(all)
    }

    /// How many devices are registered.
    ///
    /// ```
    /// # use herald::bridge::DeviceRegistry;
    /// assert_eq!(DeviceRegistry::in_memory().len().unwrap(), 0);
    /// ```
    pub fn len(&self) -> Result<usize, RegistryError> {
        Ok(self.all()?.len())
    }

    /// Whether no device is registered.
    ///
    /// ```
    /// # use herald::bridge::DeviceRegistry;
    /// assert!(DeviceRegistry::in_memory().is_empty().unwrap());
    /// ```
    pub fn is_empty(&self) -> Result<bool, RegistryError> {
        Ok(self.len()? == 0)
    }

    /// Applies the sink's lifecycle notifications on `center`: inline observers that call
    /// [`invalidate`](Self::invalidate) on a 410 [`TokenInvalidated`],
    /// [`delete_quarantined`](Self::delete_quarantined) on a confirmed `BadDeviceToken` /
    /// `DeviceTokenNotForTopic` one, [`quarantine`](Self::quarantine) on
    /// [`TokenQuarantined`] and [`release`](Self::release) on [`TokenReleased`]. Drop the
    /// guard to stop.
    ///
    /// Inline means the change runs on the task that received APNs' answer, before the sink
    /// counts the push as answered: once the sink is idle, the registry is up to date. With the
    /// redb store that is one durable commit (a few milliseconds of `fsync`) per change, on a
    /// tokio worker.
    ///
    /// ```
    /// use herald::NotificationCenter;
    /// use herald::bridge::{Device, DeviceRegistry, Environment, TokenInvalidated};
    /// use herald::apns::Reason;
    /// use std::time::SystemTime;
    ///
    /// let center = NotificationCenter::new();
    /// let registry = DeviceRegistry::in_memory();
    /// let _cleanup = registry.observe(&center);
    /// registry.register(Device::new("alice", "aa", "com.example.app", Environment::Sandbox)).unwrap();
    /// center.post(TokenInvalidated::new("aa", "com.example.app", Reason::Unregistered, SystemTime::now()));
    /// assert!(registry.devices("alice").unwrap().is_empty());
    /// ```
    pub fn observe(&self, center: &NotificationCenter) -> RegistrySubscription {
        let retry = Arc::new(Retry {
            registry: self.clone(),
            counters: Arc::default(),
            queue: OnceLock::new(),
            order: parking_lot::Mutex::new(()),
        });
        let q = retry.clone();
        let invalidated = center.observe(move |n: &TokenInvalidated| {
            let (token, since) = (n.token.clone(), n.since);
            if n.reason.invalidates_token() {
                q.apply(Change::Invalidate { token, since });
            } else if n.reason.quarantines_token() {
                q.apply(Change::DeleteQuarantined { token, since });
            }
        });
        let q = retry.clone();
        let quarantined = center.observe(move |n: &TokenQuarantined| {
            q.apply(Change::Quarantine {
                token: n.token.clone(),
                reason: n.reason.clone(),
                at: n.at,
            });
        });
        let q = retry.clone();
        let released = center.observe(move |n: &TokenReleased| {
            q.apply(Change::Release {
                token: n.token.clone(),
            });
        });
        RegistrySubscription {
            subscriptions: vec![invalidated, quarantined, released],
            retry,
        }
    }
}

/// How long [`DeviceRegistry::observe`] keeps retrying a lifecycle change the store refused
/// (the store unreachable: a NATS server restarting, a disk full) before it gives up.
///
/// ```
/// use herald::bridge::LIFECYCLE_RETRY_FOR;
/// assert_eq!(LIFECYCLE_RETRY_FOR, std::time::Duration::from_secs(10 * 60));
/// ```
pub const LIFECYCLE_RETRY_FOR: Duration = Duration::from_secs(600);

/// One lifecycle change, as the observers apply it.
#[derive(Debug)]
enum Change {
    Invalidate {
        token: String,
        since: SystemTime,
    },
    DeleteQuarantined {
        token: String,
        since: SystemTime,
    },
    Quarantine {
        token: String,
        reason: Reason,
        at: SystemTime,
    },
    Release {
        token: String,
    },
}

impl Change {
    /// Applies the change. A refusal for good (the token is another subject's) is logged and
    /// done with; the error left is the store's, worth another try.
    fn attempt(&self, r: &DeviceRegistry) -> Result<(), RegistryError> {
        let result = match self {
            Change::Invalidate { token, since } => r.invalidate(token, *since),
            Change::DeleteQuarantined { token, since } => r.delete_quarantined(token, *since),
            Change::Quarantine { token, reason, at } => r.quarantine(token, reason.clone(), *at),
            Change::Release { token } => r.release(token),
        };
        match result {
            Err(e) if e.is_not_owner() => {
                tracing::warn!(error = %e, "device registry: could not {}", self.what());
                Ok(())
            }
            other => other.map(drop),
        }
    }

    fn what(&self) -> &'static str {
        match self {
            Change::Invalidate { .. } => "delete an invalid token",
            Change::DeleteQuarantined { .. } => "delete a quarantined token",
            Change::Quarantine { .. } => "quarantine a token",
            Change::Release { .. } => "release a token",
        }
    }
}

/// The observers' way past a failing store: a change the store refuses is queued, and one
/// thread retries the queue in order, with backoff, for up to [`LIFECYCLE_RETRY_FOR`] each.
/// While anything waits, later changes queue behind it, so a release never overtakes the
/// quarantine it undoes.
struct Retry {
    registry: DeviceRegistry,
    counters: Arc<RetryCounters>,
    queue: OnceLock<Option<mpsc::Sender<Change>>>,
    /// Held while a change decides between applying now and queueing (observers run on
    /// whichever thread posted): without it, a change could apply inline while an earlier
    /// one, posted on another thread, was still failing on its way into the queue.
    order: parking_lot::Mutex<()>,
}

#[derive(Default)]
struct RetryCounters {
    /// Changes queued or being retried.
    pending: AtomicUsize,
    given_up: AtomicU64,
}

impl Retry {
    fn apply(&self, change: Change) {
        let c = &self.counters;
        let _order = self.order.lock();
        if c.pending.load(Ordering::Acquire) == 0 {
            match change.attempt(&self.registry) {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        "device registry: could not {}; retrying in the background",
                        change.what()
                    );
                }
            }
        }
        c.pending.fetch_add(1, Ordering::AcqRel);
        let queue = self.queue.get_or_init(|| self.start());
        if queue.as_ref().is_none_or(|q| q.send(change).is_err()) {
            c.pending.fetch_sub(1, Ordering::AcqRel);
            c.given_up.fetch_add(1, Ordering::Relaxed);
            tracing::error!("device registry: cannot start the retry thread; a change is lost");
        }
    }

    fn start(&self) -> Option<mpsc::Sender<Change>> {
        let (tx, rx) = mpsc::channel::<Change>();
        let registry = self.registry.clone();
        let counters = self.counters.clone();
        // The thread ends once every observer (every sender) is gone and the queue is empty.
        let spawned = std::thread::Builder::new()
            .name("herald-registry-retry".into())
            .spawn(move || {
                for change in rx {
                    if !retry(&registry, &change, LIFECYCLE_RETRY_FOR) {
                        counters.given_up.fetch_add(1, Ordering::Relaxed);
                    }
                    counters.pending.fetch_sub(1, Ordering::AcqRel);
                }
            });
        spawned.ok().map(|_| tx)
    }
}

/// Applies `change` until the store takes it (or refuses it for good), waiting 50 ms, then
/// twice as long each time up to 5 s; false when `patience` ran out first.
fn retry(registry: &DeviceRegistry, change: &Change, patience: Duration) -> bool {
    let deadline = std::time::Instant::now() + patience;
    let mut delay = Duration::from_millis(50);
    loop {
        match change.attempt(registry) {
            Ok(()) => return true,
            Err(e) if std::time::Instant::now() + delay >= deadline => {
                tracing::error!(
                    error = %e,
                    "device registry: could not {} for {patience:?}; giving up",
                    change.what()
                );
                return false;
            }
            Err(_) => {
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

fn normalize(mut device: Device) -> Device {
    device.token = device.token.to_ascii_lowercase();
    device.quarantine = None;
    device
}

fn backoff(attempt: u32) {
    if attempt > 2 {
        std::thread::yield_now();
    }
}

/// The observers [`DeviceRegistry::observe`] installed. Dropping it unsubscribes them all;
/// [`detach`](Self::detach) keeps them for the life of the center.
///
/// ```
/// # use herald::{NotificationCenter, bridge::DeviceRegistry};
/// let center = NotificationCenter::new();
/// let guard = DeviceRegistry::in_memory().observe(&center);
/// guard.detach();
/// ```
#[must_use = "dropping it stops the registry from applying token lifecycle notifications"]
#[derive(Debug)]
pub struct RegistrySubscription {
    subscriptions: Vec<Subscription>,
    retry: Arc<Retry>,
}

impl fmt::Debug for Retry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("pending", &self.counters.pending.load(Ordering::Relaxed))
            .field("given_up", &self.counters.given_up.load(Ordering::Relaxed))
            .finish()
    }
}

impl RegistrySubscription {
    /// Lifecycle changes the store refused that are queued for another try (see
    /// [`LIFECYCLE_RETRY_FOR`]). Zero once the registry has caught up.
    ///
    /// ```
    /// # use herald::{NotificationCenter, bridge::DeviceRegistry};
    /// let center = NotificationCenter::new();
    /// let guard = DeviceRegistry::in_memory().observe(&center);
    /// assert_eq!(guard.pending(), 0);
    /// ```
    pub fn pending(&self) -> usize {
        self.retry.counters.pending.load(Ordering::Acquire)
    }

    /// Lifecycle changes given up after [`LIFECYCLE_RETRY_FOR`] of refusals (each also logged
    /// as an error).
    ///
    /// ```
    /// # use herald::{NotificationCenter, bridge::DeviceRegistry};
    /// let center = NotificationCenter::new();
    /// let guard = DeviceRegistry::in_memory().observe(&center);
    /// assert_eq!(guard.given_up(), 0);
    /// ```
    pub fn given_up(&self) -> u64 {
        self.retry.counters.given_up.load(Ordering::Relaxed)
    }

    /// Keeps the observers for the life of the center.
    ///
    /// ```
    /// # use herald::{NotificationCenter, bridge::DeviceRegistry};
    /// let center = NotificationCenter::new();
    /// DeviceRegistry::in_memory().observe(&center).detach();
    /// ```
    pub fn detach(self) {
        for s in self.subscriptions {
            s.detach();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::bridge::FaultyStore;

    fn until(what: &str, done: impl Fn() -> bool) {
        // Generous: the retry thread backs off up to 5 s between tries.
        let deadline = Instant::now() + Duration::from_secs(120);
        while !done() {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn lifecycle_changes_the_store_refuses_are_retried_in_order_until_it_takes_them() {
        let store = Arc::new(FaultyStore::default());
        let registry = DeviceRegistry::with_store(store.clone());
        let center = NotificationCenter::new();
        let guard = registry.observe(&center);
        let topic = "com.example.app";
        for (subject, token) in [("alice", "aa"), ("bob", "bb")] {
            registry
                .register(Device::new(subject, token, topic, Environment::Sandbox))
                .unwrap();
        }
        let later = SystemTime::now() + Duration::from_secs(3600);

        store.set_down(true);
        // A 410 for alice's token, then bob's token quarantined and released: all refused.
        center.post(TokenInvalidated::new(
            "aa",
            topic,
            Reason::Unregistered,
            later,
        ));
        center.post(TokenQuarantined {
            token: "bb".into(),
            topic: topic.into(),
            subject: Some("bob".into()),
            environment: None,
            reason: Reason::BadDeviceToken,
            at: later,
            again: false,
        });
        center.post(TokenReleased {
            token: "bb".into(),
            topic: topic.into(),
            subject: Some("bob".into()),
        });
        assert_eq!(
            guard.pending(),
            3,
            "nothing is dropped while the store is down"
        );

        store.set_down(false);
        until("the queue drains", || guard.pending() == 0);
        assert_eq!(guard.given_up(), 0);
        assert!(
            registry.devices("alice").unwrap().is_empty(),
            "the 410 applied"
        );
        let bob = registry.devices("bob").unwrap();
        assert_eq!(bob.len(), 1);
        assert!(
            !bob[0].is_quarantined(),
            "the release came after the quarantine, and was applied after it"
        );

        // Caught up: changes apply inline again.
        center.post(TokenInvalidated::new(
            "bb",
            topic,
            Reason::Unregistered,
            later,
        ));
        assert_eq!(guard.pending(), 0);
        assert!(registry.devices("bob").unwrap().is_empty());
    }

    #[test]
    fn a_change_posted_on_another_thread_waits_for_an_earlier_one_still_failing() {
        let store = Arc::new(FaultyStore::default());
        let registry = DeviceRegistry::with_store(store.clone());
        let center = NotificationCenter::new();
        let guard = registry.observe(&center);
        let topic = "com.example.app";
        registry
            .register(Device::new("bob", "bb", topic, Environment::Sandbox))
            .unwrap();

        // The quarantine's first store call hangs, then fails.
        store.stall_next();
        let quarantine = {
            let center = center.clone();
            std::thread::spawn(move || {
                center.post(TokenQuarantined {
                    token: "bb".into(),
                    topic: topic.into(),
                    subject: Some("bob".into()),
                    environment: None,
                    reason: Reason::BadDeviceToken,
                    at: SystemTime::now(),
                    again: false,
                });
            })
        };
        until("the quarantine reaches the store", || store.is_stalled());
        // The release is posted on another thread while the quarantine is still failing; the
        // store itself would take it at once.
        let release = {
            let center = center.clone();
            std::thread::spawn(move || {
                center.post(TokenReleased {
                    token: "bb".into(),
                    topic: topic.into(),
                    subject: Some("bob".into()),
                });
            })
        };
        // Time for a release that did not wait to apply first (the test cannot pass wrongly
        // if it is too short; it would only stop catching the race).
        std::thread::sleep(Duration::from_millis(50));
        store.release();
        quarantine.join().unwrap();
        release.join().unwrap();

        until("the queue drains", || guard.pending() == 0);
        assert_eq!(guard.given_up(), 0);
        let bob = registry.devices("bob").unwrap();
        assert_eq!(bob.len(), 1);
        assert!(
            !bob[0].is_quarantined(),
            "the release was posted after the quarantine and must apply after it"
        );
    }

    #[test]
    fn a_change_refused_past_its_patience_is_given_up_and_counted() {
        let store = Arc::new(FaultyStore::default());
        let registry = DeviceRegistry::with_store(store.clone());
        store.set_down(true);
        let change = Change::Release { token: "aa".into() };
        assert!(!retry(&registry, &change, Duration::from_millis(120)));
        store.set_down(false);
        assert!(retry(&registry, &change, Duration::from_millis(120)));
    }
}
