//! The registry's storage seam: [`RegistryStore`], a versioned key-value store with
//! compare-and-set, its records and their wire format, and the in-memory [`MemoryStore`].
//!

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use crate::apns::Reason;
use crate::bridge::registry::{Device, Environment, Quarantine};

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

/// The version of a key's value. Every write of a key (including a delete, and a create
/// after a delete) gives it a revision greater than any it had before, also across restarts.
/// Revisions of different keys need not be related (one counter for the whole store, as NATS
/// key-value's stream sequence, satisfies this).
///
/// ```
/// use herald::bridge::Revision;
/// assert!(Revision::new(2) > Revision::new(1));
/// assert_eq!(Revision::new(7).get(), 7);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision(u64);

impl Revision {
    /// A revision number.
    ///
    /// ```
    /// # use herald::bridge::Revision;
    /// assert_eq!(Revision::new(3).get(), 3);
    /// ```
    pub fn new(n: u64) -> Revision {
        Revision(n)
    }

    /// The number.
    ///
    /// ```
    /// # use herald::bridge::Revision;
    /// assert_eq!(Revision::new(9).get(), 9);
    /// ```
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The condition of a compare-and-set write.
///
/// ```
/// use herald::bridge::{Expect, Revision};
/// let create = Expect::Absent;
/// let update = Expect::At(Revision::new(4));
/// assert_ne!(create, update);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The key must not exist (never written, or deleted).
    Absent,
    /// The key must exist at exactly this revision.
    At(Revision),
}

/// What a compare-and-set write did.
///
/// ```
/// use herald::bridge::{Cas, Revision};
/// assert!(Cas::Written(Revision::new(1)).is_written());
/// assert!(!Cas::Conflict.is_written());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a conflict means nothing was written"]
pub enum Cas {
    /// The condition held; the value (or the delete) is stored at this new revision.
    Written(Revision),
    /// The key was not as expected; nothing changed.
    Conflict,
}

impl Cas {
    /// Whether the write happened.
    ///
    /// ```
    /// # use herald::bridge::Cas;
    /// assert!(!Cas::Conflict.is_written());
    /// ```
    pub fn is_written(self) -> bool {
        matches!(self, Cas::Written(_))
    }
}

/// A value with the revision it was read at.
///
/// ```
/// use herald::bridge::{Revision, Versioned};
/// let v = Versioned { value: "x", revision: Revision::new(1) };
/// assert_eq!(v.value, "x");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    /// The value.
    pub value: T,
    /// Its revision.
    pub revision: Revision,
}

/// A subject's release marker for a token: the subject gave up (or lost) its claim on the
/// token at claim revision `claim`, at time `at`. A registration of the token for this subject
/// must hold a claim newer than `claim`, so a writer that stalled with an old claim can never
/// put the token back. Markers are dropped after the registry's marker retention.
///
/// ```
/// use herald::bridge::{Release, Revision};
/// let r = Release { claim: Revision::new(3), at: std::time::UNIX_EPOCH };
/// assert_eq!(r.claim.get(), 3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release {
    /// The newest claim revision this marker voids.
    pub claim: Revision,
    /// When the marker was written.
    pub at: SystemTime,
}

/// One subject's value in the store: its devices by token, and its release markers.
///
/// ```
/// use herald::bridge::{Device, Environment, SubjectRecord};
/// let mut r = SubjectRecord::default();
/// let d = Device::new("alice", "aa", "com.example.app", Environment::Sandbox);
/// r.devices.insert(d.token.clone(), d);
/// let bytes = r.encode();
/// assert_eq!(SubjectRecord::decode("alice", &bytes).unwrap(), r.normalized());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectRecord {
    /// The subject's devices, by token. Each device's `subject` is the record's subject.
    pub devices: BTreeMap<String, Device>,
    /// Tokens this subject released, by token.
    pub released: BTreeMap<String, Release>,
}

/// Which subject may hold a token: the token → subject index entry.
///
/// ```
/// use herald::bridge::Claim;
/// let c = Claim { subject: "alice".into(), claimed_at: std::time::UNIX_EPOCH };
/// assert_eq!(Claim::decode(&c.encode()).unwrap(), c);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The claiming subject.
    pub subject: String,
    /// When the claim was made (or renewed).
    pub claimed_at: SystemTime,
}

/// Where a [`DeviceRegistry`](crate::bridge::DeviceRegistry) keeps its devices: a versioned
/// key-value store with compare-and-set, over two key spaces (subjects and tokens).
///
/// # Layout
///
/// Two kinds of keys, each with a [`Revision`]:
///
/// | key | value | role |
/// |---|---|---|
/// | subject | [`SubjectRecord`]: the subject's devices (token, topic, environment, registration time, quarantine) and its release markers | what the sink reads to address a subject; *replace old → new*, *delete on 410*, *quarantine* and *release* are each one compare-and-set of this one key |
/// | token | [`Claim`]: which subject may hold the token | the token → subject index; makes "a subject never takes another subject's token" hold across processes |
///
/// A store does no registry logic: [`DeviceRegistry`](crate::bridge::DeviceRegistry) runs
/// the protocol (described there) over these five methods, so a store for another system
/// (NATS key-value, Redis, a SQL table) is a thin adapter. `conformance` (feature `testkit`)
/// checks an implementation.
///
/// # Wire format
///
/// [`SubjectRecord::encode`] and [`Claim::encode`] give the bytes a store keeps (JSON, with a
/// version field `v`; times as milliseconds since the Unix epoch; reasons as Apple's strings):
///
/// ```text
/// subject record  {"v":1,
///                  "devices":[{"token":"a1b2..","topic":"com.example.app","environment":"sandbox",
///                              "registered_ms":1700000000123,
///                              "quarantine":{"reason":"BadDeviceToken","since_ms":..,
///                                            "last_rejected_ms":..,"rejections":2}}],
///                  "released":[{"token":"c3d4..","claim":41,"at_ms":1700000000456}]}
/// claim           {"v":1,"subject":"alice","claimed_ms":1700000000123}
/// ```
///
/// `quarantine` is omitted for an active device. Readers refuse a `v` they do not know.
///
/// # Contract
///
/// - **Reads** return the latest committed value and its [`Revision`], or `None` when the key
///   does not exist (never written, or deleted).
/// - **Writes** are compare-and-set: `write_*(key, expect, value)` stores `value` (or deletes
///   the key when `value` is `None`) only if the key is as `expect` says
///   ([`Expect::Absent`]: it does not exist; [`Expect::At`]: it exists at exactly that
///   revision), and returns [`Cas::Written`] with the new revision; otherwise it changes
///   nothing and returns [`Cas::Conflict`]. A conditional write on one key is atomic
///   (linearizable) with respect to every other read and write of that key, from any thread
///   or process sharing the store. No multi-key atomicity is needed.
/// - **Revisions** of a key strictly increase with every write of it (including deletes and a
///   create after a delete), also across restarts.
/// - **Durability**: when a subject write returns `Ok`, it survives a crash of the process
///   (for a persistent store), and so does every write that returned before it. A claim write
///   may be made durable only by the next subject write (the protocol never depends on a claim
///   write that no subject write followed: losing one in a crash is harmless). A write that
///   returns `Err` may or may not have happened.
/// - **Round trip**: a value read back equals the value written, except that times may be
///   truncated to milliseconds (the wire format's precision).
/// - `subjects` lists every existing subject key (any order; the registry sorts).
///
/// Stores are shared by `&self` from many threads; they must be `Send + Sync`.
///
/// ```
/// use herald::bridge::{Cas, Claim, DeviceRegistry, Expect, MemoryStore, RegistryStore,
///     StoreError, SubjectRecord, Versioned};
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// // A store that wraps another and counts the writes that won.
/// #[derive(Default)]
/// struct Counting(MemoryStore, AtomicUsize);
/// impl RegistryStore for Counting {
///     fn read_subject(&self, s: &str) -> Result<Option<Versioned<SubjectRecord>>, StoreError> {
///         self.0.read_subject(s)
///     }
///     fn write_subject(&self, s: &str, e: Expect, r: Option<&SubjectRecord>) -> Result<Cas, StoreError> {
///         let cas = self.0.write_subject(s, e, r)?;
///         if cas.is_written() { self.1.fetch_add(1, Ordering::Relaxed); }
///         Ok(cas)
///     }
///     fn read_claim(&self, t: &str) -> Result<Option<Versioned<Claim>>, StoreError> {
///         self.0.read_claim(t)
///     }
///     fn write_claim(&self, t: &str, e: Expect, c: Option<&Claim>) -> Result<Cas, StoreError> {
///         self.0.write_claim(t, e, c)
///     }
///     fn subjects(&self) -> Result<Vec<String>, StoreError> { self.0.subjects() }
/// }
/// let registry = DeviceRegistry::with_store(Counting::default());
/// assert_eq!(registry.len().unwrap(), 0);
/// ```
pub trait RegistryStore: Send + Sync + 'static {
    /// The subject's record and its revision.
    ///
    /// ```
    /// use herald::bridge::{Device, DeviceRegistry, Environment, MemoryStore, RegistryStore};
    /// use std::sync::Arc;
    ///
    /// let store = Arc::new(MemoryStore::new());
    /// assert!(store.read_subject("alice")?.is_none()); // never written
    /// let registry = DeviceRegistry::with_store(store.clone());
    /// registry.register(Device::new("alice", "aa01", "com.example.app", Environment::Sandbox))?;
    /// let record = store.read_subject("alice")?.unwrap();
    /// assert!(record.value.devices.contains_key("aa01"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn read_subject(&self, subject: &str) -> Result<Option<Versioned<SubjectRecord>>, StoreError>;
    /// Compare-and-set of the subject's record (`None`: delete the key).
    ///
    /// ```
    /// use herald::bridge::{Cas, Expect, MemoryStore, RegistryStore, SubjectRecord};
    ///
    /// let store = MemoryStore::new();
    /// let record = SubjectRecord::default();
    /// // Create: only if the key is absent.
    /// let Cas::Written(r1) = store.write_subject("alice", Expect::Absent, Some(&record))? else {
    ///     panic!("an absent key is created");
    /// };
    /// assert_eq!(store.write_subject("alice", Expect::Absent, Some(&record))?, Cas::Conflict);
    /// // Update, then delete: only at the current revision.
    /// let Cas::Written(r2) = store.write_subject("alice", Expect::At(r1), Some(&record))? else {
    ///     panic!("written at the current revision");
    /// };
    /// assert!(r2 > r1);
    /// assert_eq!(store.write_subject("alice", Expect::At(r1), None)?, Cas::Conflict);
    /// assert!(store.write_subject("alice", Expect::At(r2), None)?.is_written());
    /// assert!(store.read_subject("alice")?.is_none());
    /// # Ok::<(), herald::bridge::StoreError>(())
    /// ```
    fn write_subject(
        &self,
        subject: &str,
        expect: Expect,
        record: Option<&SubjectRecord>,
    ) -> Result<Cas, StoreError>;
    /// The token's claim and its revision.
    ///
    /// ```
    /// use herald::bridge::{Device, DeviceRegistry, Environment, MemoryStore, RegistryStore};
    /// use std::sync::Arc;
    ///
    /// let store = Arc::new(MemoryStore::new());
    /// assert!(store.read_claim("aa01")?.is_none()); // no one holds the token
    /// let registry = DeviceRegistry::with_store(store.clone());
    /// registry.register(Device::new("alice", "aa01", "com.example.app", Environment::Sandbox))?;
    /// assert_eq!(store.read_claim("aa01")?.unwrap().value.subject, "alice");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn read_claim(&self, token: &str) -> Result<Option<Versioned<Claim>>, StoreError>;
    /// Compare-and-set of the token's claim (`None`: delete the key).
    ///
    /// ```
    /// use herald::bridge::{Cas, Claim, Expect, MemoryStore, RegistryStore};
    /// use std::time::UNIX_EPOCH;
    ///
    /// let store = MemoryStore::new();
    /// let alice = Claim { subject: "alice".into(), claimed_at: UNIX_EPOCH };
    /// let bob = Claim { subject: "bob".into(), claimed_at: UNIX_EPOCH };
    /// let Cas::Written(r1) = store.write_claim("aa01", Expect::Absent, Some(&alice))? else {
    ///     panic!("an absent key is created");
    /// };
    /// // A second claimant that expected no claim loses; the first claim stays.
    /// assert_eq!(store.write_claim("aa01", Expect::Absent, Some(&bob))?, Cas::Conflict);
    /// assert_eq!(store.read_claim("aa01")?.unwrap().value, alice);
    /// // Taking over (or deleting) needs the current revision.
    /// assert!(store.write_claim("aa01", Expect::At(r1), Some(&bob))?.is_written());
    /// assert_eq!(store.write_claim("aa01", Expect::At(r1), None)?, Cas::Conflict);
    /// assert_eq!(store.read_claim("aa01")?.unwrap().value, bob);
    /// # Ok::<(), herald::bridge::StoreError>(())
    /// ```
    fn write_claim(
        &self,
        token: &str,
        expect: Expect,
        claim: Option<&Claim>,
    ) -> Result<Cas, StoreError>;
    /// Every subject that has a record.
    ///
    /// ```
    /// use herald::bridge::{Cas, Expect, MemoryStore, RegistryStore, SubjectRecord};
    ///
    /// let store = MemoryStore::new();
    /// let record = SubjectRecord::default();
    /// assert!(store.write_subject("bob", Expect::Absent, Some(&record))?.is_written());
    /// let Cas::Written(r) = store.write_subject("alice", Expect::Absent, Some(&record))? else {
    ///     panic!("created");
    /// };
    /// let mut subjects = store.subjects()?;
    /// subjects.sort(); // in any order
    /// assert_eq!(subjects, ["alice", "bob"]);
    /// // A deleted subject is not listed.
    /// assert!(store.write_subject("alice", Expect::At(r), None)?.is_written());
    /// assert_eq!(store.subjects()?, ["bob"]);
    /// # Ok::<(), herald::bridge::StoreError>(())
    /// ```
    fn subjects(&self) -> Result<Vec<String>, StoreError>;
}

impl<S: RegistryStore + ?Sized> RegistryStore for Arc<S> {
    fn read_subject(&self, subject: &str) -> Result<Option<Versioned<SubjectRecord>>, StoreError> {
        (**self).read_subject(subject)
    }
    fn write_subject(
        &self,
        subject: &str,
        expect: Expect,
        record: Option<&SubjectRecord>,
    ) -> Result<Cas, StoreError> {
        (**self).write_subject(subject, expect, record)
    }
    fn read_claim(&self, token: &str) -> Result<Option<Versioned<Claim>>, StoreError> {
        (**self).read_claim(token)
    }
    fn write_claim(
        &self,
        token: &str,
        expect: Expect,
        claim: Option<&Claim>,
    ) -> Result<Cas, StoreError> {
        (**self).write_claim(token, expect, claim)
    }
    fn subjects(&self) -> Result<Vec<String>, StoreError> {
        (**self).subjects()
    }
}

impl<S: RegistryStore + ?Sized> RegistryStore for Box<S> {
    fn read_subject(&self, subject: &str) -> Result<Option<Versioned<SubjectRecord>>, StoreError> {
        (**self).read_subject(subject)
    }
    fn write_subject(
        &self,
        subject: &str,
        expect: Expect,
        record: Option<&SubjectRecord>,
    ) -> Result<Cas, StoreError> {
        (**self).write_subject(subject, expect, record)
    }
    fn read_claim(&self, token: &str) -> Result<Option<Versioned<Claim>>, StoreError> {
        (**self).read_claim(token)
    }
    fn write_claim(
        &self,
        token: &str,
        expect: Expect,
        claim: Option<&Claim>,
    ) -> Result<Cas, StoreError> {
        (**self).write_claim(token, expect, claim)
    }
    fn subjects(&self) -> Result<Vec<String>, StoreError> {
        (**self).subjects()
    }
}

// ----- wire format -----

pub(crate) fn to_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

pub(crate) fn from_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::from_millis(ms))
        .unwrap_or(UNIX_EPOCH)
}

/// `t` truncated to milliseconds (the wire format's precision).
pub(crate) fn truncate_ms(t: SystemTime) -> SystemTime {
    from_ms(to_ms(t))
}

const VERSION: u32 = 1;

#[derive(serde::Serialize, serde::Deserialize)]
struct RecordWire {
    v: u32,
    #[serde(default)]
    devices: Vec<DeviceWire>,
    #[serde(default)]
    released: Vec<ReleaseWire>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct DeviceWire {
    token: String,
    topic: String,
    environment: String,
    registered_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    quarantine: Option<QuarantineWire>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct QuarantineWire {
    reason: String,
    since_ms: u64,
    last_rejected_ms: u64,
    rejections: u32,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ReleaseWire {
    token: String,
    claim: u64,
    at_ms: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ClaimWire {
    v: u32,
    subject: String,
    claimed_ms: u64,
}

impl SubjectRecord {
    /// Whether the record holds neither devices nor markers (the registry deletes such a key).
    ///
    /// ```
    /// # use herald::bridge::SubjectRecord;
    /// assert!(SubjectRecord::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty() && self.released.is_empty()
    }

    /// The record with every time truncated to milliseconds, as it reads back from a store.
    ///
    /// ```
    /// # use herald::bridge::SubjectRecord;
    /// assert_eq!(SubjectRecord::default().normalized(), SubjectRecord::default());
    /// ```
    pub fn normalized(&self) -> SubjectRecord {
        let mut r = self.clone();
        for d in r.devices.values_mut() {
            d.registered_at = truncate_ms(d.registered_at);
            if let Some(q) = &mut d.quarantine {
                q.since = truncate_ms(q.since);
                q.last_rejected = truncate_ms(q.last_rejected);
            }
        }
        for m in r.released.values_mut() {
            m.at = truncate_ms(m.at);
        }
        r
    }

    /// The record in the wire format (see [`RegistryStore`]).
    ///
    /// ```
    /// # use herald::bridge::SubjectRecord;
    /// let bytes = SubjectRecord::default().encode();
    /// assert!(std::str::from_utf8(&bytes).unwrap().starts_with(r#"{"v":1"#));
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        let wire = RecordWire {
            v: VERSION,
            devices: self
                .devices
                .values()
                .map(|d| DeviceWire {
                    token: d.token.clone(),
                    topic: d.topic.clone(),
                    environment: d.environment.as_str().to_owned(),
                    registered_ms: to_ms(d.registered_at),
                    quarantine: d.quarantine.as_ref().map(|q| QuarantineWire {
                        reason: q.reason.as_str().to_owned(),
                        since_ms: to_ms(q.since),
                        last_rejected_ms: to_ms(q.last_rejected),
                        rejections: q.rejections,
                    }),
                })
                .collect(),
            released: self
                .released
                .iter()
                .map(|(t, m)| ReleaseWire {
                    token: t.clone(),
                    claim: m.claim.get(),
                    at_ms: to_ms(m.at),
                })
                .collect(),
        };
        // Serializing plain strings and numbers cannot fail.
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// Reads a record of `subject` from the wire format. Refuses bytes that are not a record
    /// of a known version, with a [`StoreError`] naming the subject.
    ///
    /// ```
    /// # use herald::bridge::SubjectRecord;
    /// assert!(SubjectRecord::decode("alice", b"not json").is_err());
    /// assert!(SubjectRecord::decode("alice", br#"{"v":99}"#).is_err());
    /// assert!(SubjectRecord::decode("alice", br#"{"v":1}"#).unwrap().is_empty());
    /// ```
    pub fn decode(subject: &str, bytes: &[u8]) -> Result<SubjectRecord, StoreError> {
        let bad =
            |why: &str| StoreError::new(format!("corrupt record of subject {subject:?}: {why}"));
        let wire: RecordWire = serde_json::from_slice(bytes).map_err(|e| bad(&e.to_string()))?;
        if wire.v != VERSION {
            return Err(bad(&format!("unknown version {}", wire.v)));
        }
        let mut record = SubjectRecord::default();
        for d in wire.devices {
            let environment = Environment::parse(&d.environment)
                .ok_or_else(|| bad(&format!("unknown environment {:?}", d.environment)))?;
            let device = Device {
                subject: subject.to_owned(),
                token: d.token.clone(),
                topic: d.topic,
                environment,
                registered_at: from_ms(d.registered_ms),
                quarantine: d.quarantine.map(|q| Quarantine {
                    reason: Reason::parse(&q.reason),
                    since: from_ms(q.since_ms),
                    last_rejected: from_ms(q.last_rejected_ms),
                    rejections: q.rejections,
                }),
            };
            record.devices.insert(d.token, device);
        }
        for m in wire.released {
            record.released.insert(
                m.token,
                Release {
                    claim: Revision(m.claim),
                    at: from_ms(m.at_ms),
                },
            );
        }
        Ok(record)
    }
}

impl Claim {
    /// The claim in the wire format.
    ///
    /// ```
    /// # use herald::bridge::Claim;
    /// let c = Claim { subject: "a".into(), claimed_at: std::time::UNIX_EPOCH };
    /// assert_eq!(c.encode(), br#"{"v":1,"subject":"a","claimed_ms":0}"#);
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(&ClaimWire {
            v: VERSION,
            subject: self.subject.clone(),
            claimed_ms: to_ms(self.claimed_at),
        })
        .unwrap_or_default()
    }

    /// Reads a claim from the wire format.
    ///
    /// ```
    /// # use herald::bridge::Claim;
    /// assert!(Claim::decode(b"{}").is_err());
    /// ```
    pub fn decode(bytes: &[u8]) -> Result<Claim, StoreError> {
        let wire: ClaimWire = serde_json::from_slice(bytes)
            .map_err(|e| StoreError::new(format!("corrupt token claim: {e}")))?;
        if wire.v != VERSION {
            return Err(StoreError::new(format!(
                "corrupt token claim: unknown version {}",
                wire.v
            )));
        }
        Ok(Claim {
            subject: wire.subject,
            claimed_at: from_ms(wire.claimed_ms),
        })
    }

    fn normalized(&self) -> Claim {
        Claim {
            subject: self.subject.clone(),
            claimed_at: truncate_ms(self.claimed_at),
        }
    }
}

// ----- the in-memory store -----

/// Devices kept in memory: for tests, and for processes that re-learn tokens at startup.
/// Shared by clones of an `Arc<MemoryStore>` it behaves as one store seen by many processes.
///
/// ```
/// use herald::bridge::{Expect, MemoryStore, RegistryStore, SubjectRecord};
/// let store = MemoryStore::new();
/// let cas = store.write_subject("alice", Expect::Absent, Some(&SubjectRecord::default())).unwrap();
/// assert!(cas.is_written());
/// assert!(!store.write_subject("alice", Expect::Absent, None).unwrap().is_written());
/// assert_eq!(store.subjects().unwrap(), ["alice"]);
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<MemoryInner>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    last: u64,
    subjects: HashMap<String, Versioned<SubjectRecord>>,
    claims: HashMap<String, Versioned<Claim>>,
}

impl MemoryStore {
    /// An empty store.
    ///
    /// ```
    /// # use herald::bridge::{MemoryStore, RegistryStore};
    /// assert!(MemoryStore::new().subjects().unwrap().is_empty());
    /// ```
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }
}

fn cas<T: Clone>(
    map: &mut HashMap<String, Versioned<T>>,
    last: &mut u64,
    key: &str,
    expect: Expect,
    value: Option<T>,
) -> Cas {
    let current = map.get(key).map(|v| v.revision);
    let ok = match expect {
        Expect::Absent => current.is_none(),
        Expect::At(r) => current == Some(r),
    };
    if !ok {
        return Cas::Conflict;
    }
    *last += 1;
    let revision = Revision(*last);
    match value {
        Some(value) => {
            map.insert(key.to_owned(), Versioned { value, revision });
        }
        None => {
            map.remove(key);
        }
    }
    Cas::Written(revision)
}

impl RegistryStore for MemoryStore {
    fn read_subject(&self, subject: &str) -> Result<Option<Versioned<SubjectRecord>>, StoreError> {
        Ok(self.inner.lock().subjects.get(subject).cloned())
    }

    fn write_subject(
        &self,
        subject: &str,
        expect: Expect,
        record: Option<&SubjectRecord>,
    ) -> Result<Cas, StoreError> {
        let value = record.map(SubjectRecord::normalized);
        let inner = &mut *self.inner.lock();
        Ok(cas(
            &mut inner.subjects,
            &mut inner.last,
            subject,
            expect,
            value,
        ))
    }

    fn read_claim(&self, token: &str) -> Result<Option<Versioned<Claim>>, StoreError> {
        Ok(self.inner.lock().claims.get(token).cloned())
    }

    fn write_claim(
        &self,
        token: &str,
        expect: Expect,
        claim: Option<&Claim>,
    ) -> Result<Cas, StoreError> {
        let value = claim.map(Claim::normalized);
        let inner = &mut *self.inner.lock();
        Ok(cas(
            &mut inner.claims,
            &mut inner.last,
            token,
            expect,
            value,
        ))
    }

    fn subjects(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.inner.lock().subjects.keys().cloned().collect())
    }
}
