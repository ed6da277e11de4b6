//! Who owns which device token: [`DeviceRegistry`], its [`RegistryStore`] seam and the
//! in-memory store.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use crate::bridge::TokenInvalidated;
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
/// (topic) and environment it was issued for, and when it was registered.
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
        }
    }

    pub(crate) fn registered_micros(&self) -> u64 {
        to_micros(self.registered_at)
    }
}

pub(crate) fn to_micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

pub(crate) fn from_micros(us: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(us)
}

/// One change to a store. A [`RegistryStore::apply`] applies a batch of them atomically.
///
/// ```
/// use herald::bridge::{Change, Device, Environment};
/// let c = Change::Put(Device::new("alice", "ab", "com.example.app", Environment::Sandbox));
/// assert!(matches!(c, Change::Put(_)));
/// let c = Change::Delete("ab".into());
/// assert!(matches!(c, Change::Delete(_)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Insert or overwrite the device with this token.
    Put(Device),
    /// Delete the device with this token (no-op when absent).
    Delete(String),
}

/// Where a [`DeviceRegistry`] keeps its devices. Bring your own (Postgres, Redis...) by
/// implementing these four methods; [`DeviceRegistry`] does the ownership checks.
///
/// Contract: `apply` is atomic (all changes or none, even across a crash) and durable when it
/// returns `Ok`; reads see every applied batch. The registry serializes its own writes, so a
/// store need not guard against concurrent `apply` calls from one registry.
///
/// ```
/// use herald::bridge::{Change, Device, DeviceRegistry, MemoryStore, RegistryStore, StoreError};
///
/// // A store that wraps another and counts writes.
/// struct Counting(MemoryStore, std::sync::atomic::AtomicUsize);
/// impl RegistryStore for Counting {
///     fn get(&self, token: &str) -> Result<Option<Device>, StoreError> { self.0.get(token) }
///     fn by_subject(&self, subject: &str) -> Result<Vec<Device>, StoreError> {
///         self.0.by_subject(subject)
///     }
///     fn all(&self) -> Result<Vec<Device>, StoreError> { self.0.all() }
///     fn apply(&self, changes: &[Change]) -> Result<(), StoreError> {
///         self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
///         self.0.apply(changes)
///     }
/// }
/// let registry = DeviceRegistry::with_store(Counting(MemoryStore::new(), Default::default()));
/// assert_eq!(registry.len().unwrap(), 0);
/// ```
pub trait RegistryStore: Send + Sync + 'static {
    /// The device with this token.
    fn get(&self, token: &str) -> Result<Option<Device>, StoreError>;
    /// Every device of a subject, in token order.
    fn by_subject(&self, subject: &str) -> Result<Vec<Device>, StoreError>;
    /// Every device, in token order.
    fn all(&self) -> Result<Vec<Device>, StoreError>;
    /// Applies the changes atomically and durably.
    fn apply(&self, changes: &[Change]) -> Result<(), StoreError>;
}

/// A store failed (I/O, corruption, a user store's own error). Opaque, with the message.
///
/// ```
/// use herald::bridge::StoreError;
/// let e = StoreError::new("disk full");
/// assert_eq!(e.to_string(), "device store: disk full");
/// ```
#[derive(Debug, Clone)]
pub struct StoreError {
    message: String,
}

impl StoreError {
    /// A store error with a message (for user stores).
    ///
    /// ```
    /// # use herald::bridge::StoreError;
    /// assert!(StoreError::new("x").message().contains('x'));
    /// ```
    pub fn new(message: impl Into<String>) -> StoreError {
        StoreError {
            message: message.into(),
        }
    }

    /// The message.
    ///
    /// ```
    /// # use herald::bridge::StoreError;
    /// assert_eq!(StoreError::new("x").message(), "x");
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "device store: {}", self.message)
    }
}

impl std::error::Error for StoreError {}

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
    Store(StoreError),
}

impl RegistryError {
    fn not_owner() -> RegistryError {
        RegistryError {
            kind: RegistryErrorKind::NotOwner,
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
            RegistryErrorKind::NotOwner => None,
        }
    }
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            RegistryErrorKind::NotOwner => f.write_str("the token belongs to another subject"),
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

/// Devices kept in memory: for tests, and for processes that re-learn tokens at startup.
///
/// ```
/// use herald::bridge::{Change, Device, Environment, MemoryStore, RegistryStore};
/// let store = MemoryStore::new();
/// store.apply(&[Change::Put(Device::new("a", "aa", "t", Environment::Sandbox))]).unwrap();
/// assert_eq!(store.by_subject("a").unwrap().len(), 1);
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<MemoryInner>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    by_token: BTreeMap<String, Device>,
    by_subject: BTreeMap<String, BTreeSet<String>>,
}

impl MemoryStore {
    /// An empty store.
    ///
    /// ```
    /// # use herald::bridge::{MemoryStore, RegistryStore};
    /// assert!(MemoryStore::new().all().unwrap().is_empty());
    /// ```
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }
}

impl RegistryStore for MemoryStore {
    fn get(&self, token: &str) -> Result<Option<Device>, StoreError> {
        Ok(self.inner.lock().by_token.get(token).cloned())
    }

    fn by_subject(&self, subject: &str) -> Result<Vec<Device>, StoreError> {
        let inner = self.inner.lock();
        Ok(inner
            .by_subject
            .get(subject)
            .into_iter()
            .flatten()
            .filter_map(|t| inner.by_token.get(t).cloned())
            .collect())
    }

    fn all(&self) -> Result<Vec<Device>, StoreError> {
        Ok(self.inner.lock().by_token.values().cloned().collect())
    }

    fn apply(&self, changes: &[Change]) -> Result<(), StoreError> {
        let mut inner = self.inner.lock();
        for change in changes {
            let token = match change {
                Change::Put(d) => &d.token,
                Change::Delete(t) => t,
            };
            if let Some(old) = inner.by_token.remove(token.as_str())
                && let Some(set) = inner.by_subject.get_mut(&old.subject)
            {
                set.remove(token.as_str());
                if set.is_empty() {
                    inner.by_subject.remove(&old.subject);
                }
            }
            if let Change::Put(d) = change {
                inner
                    .by_subject
                    .entry(d.subject.clone())
                    .or_default()
                    .insert(d.token.clone());
                inner.by_token.insert(d.token.clone(), d.clone());
            }
        }
        Ok(())
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

/// Subject (user or account id) → device tokens, with topic and environment.
///
/// - [`register`](Self::register), [`replace`](Self::replace) old → new in one atomic step (the
///   app sends both), [`remove`](Self::remove), [`devices`](Self::devices) of a subject.
/// - A subject never touches another subject's token: taking, replacing or removing it fails
///   with [`RegistryError::is_not_owner`] and changes nothing.
/// - [`observe`](Self::observe) a center: on [`TokenInvalidated`] (410 Unregistered,
///   ExpiredToken, BadDeviceToken, DeviceTokenNotForTopic) the token is deleted unless it was
///   registered again after the moment APNs says it became invalid.
/// - Persistent by default ([`open`](Self::open): an embedded crash-safe [redb] file); in memory
///   for tests ([`in_memory`](Self::in_memory)); any [`RegistryStore`].
///
/// Cheap to clone (an `Arc` inside). Store calls are synchronous (a redb commit waits for
/// `fsync`); call them from `spawn_blocking` if your store is slow.
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
    write: Mutex<()>,
}

impl fmt::Debug for DeviceRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceRegistry").finish_non_exhaustive()
    }
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

    /// A registry over your own store.
    ///
    /// ```
    /// # use herald::bridge::{DeviceRegistry, MemoryStore};
    /// let registry = DeviceRegistry::with_store(MemoryStore::new());
    /// # drop(registry);
    /// ```
    pub fn with_store(store: impl RegistryStore) -> DeviceRegistry {
        DeviceRegistry {
            inner: Arc::new(RegistryInner {
                store: Box::new(store),
                write: Mutex::new(()),
            }),
        }
    }

    /// Registers a device for its subject (again: refreshes its topic, environment and
    /// registration time). Refused when the token belongs to another subject.
    ///
    /// ```
    /// # use herald::bridge::{Device, DeviceRegistry, Environment};
    /// let r = DeviceRegistry::in_memory();
    /// r.register(Device::new("alice", "aa", "com.example.app", Environment::Sandbox)).unwrap();
    /// assert_eq!(r.device("aa").unwrap().unwrap().subject, "alice");
    /// ```
    pub fn register(&self, device: Device) -> Result<(), RegistryError> {
        let _w = self.inner.write.lock();
        self.check_owner(&device.subject, &device.token)?;
        self.inner.store.apply(&[Change::Put(device)])?;
        Ok(())
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
        let old_token = old_token.to_ascii_lowercase();
        let _w = self.inner.write.lock();
        self.check_owner(&new.subject, &new.token)?;
        let old = self.inner.store.get(&old_token)?;
        match old {
            Some(old) if old.subject != new.subject => Err(RegistryError::not_owner()),
            Some(_) if old_token != new.token => {
                self.inner
                    .store
                    .apply(&[Change::Delete(old_token), Change::Put(new)])?;
                Ok(Replaced::Replaced)
            }
            _ => {
                self.inner.store.apply(&[Change::Put(new)])?;
                Ok(Replaced::Registered)
            }
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
        let _w = self.inner.write.lock();
        match self.inner.store.get(&token)? {
            None => Ok(false),
            Some(d) if d.subject != subject => Err(RegistryError::not_owner()),
            Some(_) => {
                self.inner.store.apply(&[Change::Delete(token)])?;
                Ok(true)
            }
        }
    }

    /// Deletes `token` because APNs said it became invalid at `since`, unless it was registered
    /// again after `since` (compared in milliseconds, APNs' precision). Returns whether it
    /// was deleted. This is what
    /// [`observe`](Self::observe) calls on [`TokenInvalidated`].
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
        let _w = self.inner.write.lock();
        match self.inner.store.get(&token)? {
            // APNs timestamps have millisecond precision: compare at that precision, so a
            // registration in the same millisecond as the 410 does not outlive it.
            Some(d) if d.registered_micros() / 1000 <= to_micros(since) / 1000 => {
                self.inner.store.apply(&[Change::Delete(token)])?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// The subject's devices, in token order.
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
        Ok(self.inner.store.by_subject(subject)?)
    }

    /// The device with this token.
    ///
    /// ```
    /// # use herald::bridge::DeviceRegistry;
    /// assert!(DeviceRegistry::in_memory().device("aa").unwrap().is_none());
    /// ```
    pub fn device(&self, token: &str) -> Result<Option<Device>, RegistryError> {
        Ok(self.inner.store.get(&token.to_ascii_lowercase())?)
    }

    /// Every device, in token order.
    ///
    /// ```
    /// # use herald::bridge::DeviceRegistry;
    /// assert!(DeviceRegistry::in_memory().all().unwrap().is_empty());
    /// ```
    pub fn all(&self) -> Result<Vec<Device>, RegistryError> {
        Ok(self.inner.store.all()?)
    }

    /// How many devices are registered.
    ///
    /// ```
    /// # use herald::bridge::DeviceRegistry;
    /// assert_eq!(DeviceRegistry::in_memory().len().unwrap(), 0);
    /// ```
    pub fn len(&self) -> Result<usize, RegistryError> {
        Ok(self.inner.store.all()?.len())
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

    /// Deletes tokens that APNs reports invalid: an inline observer of [`TokenInvalidated`]
    /// on `center` that calls [`invalidate`](Self::invalidate). Drop the guard to stop.
    ///
    /// Inline means the deletion runs on the task that received APNs' answer, before the
    /// sink counts the push as answered: once [`SinkMetrics::in_flight`](crate::bridge::SinkMetrics::in_flight)
    /// is 0, every dead token is gone. With the redb store that is one durable commit (a few
    /// milliseconds of `fsync`) per dead token, on a tokio worker.
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
    /// center.post(TokenInvalidated {
    ///     token: "aa".into(),
    ///     topic: "com.example.app".into(),
    ///     subject: Some("alice".into()),
    ///     reason: Reason::Unregistered,
    ///     since: SystemTime::now(),
    /// });
    /// assert!(registry.devices("alice").unwrap().is_empty());
    /// ```
    pub fn observe(&self, center: &NotificationCenter) -> Subscription {
        let registry = self.clone();
        center.observe(move |n: &TokenInvalidated| {
            if let Err(e) = registry.invalidate(&n.token, n.since) {
                tracing::warn!(error = %e, "device registry: could not delete an invalid token");
            }
        })
    }

    fn check_owner(&self, subject: &str, token: &str) -> Result<(), RegistryError> {
        match self.inner.store.get(token)? {
            Some(d) if d.subject != subject => Err(RegistryError::not_owner()),
            _ => Ok(()),
        }
    }
}
