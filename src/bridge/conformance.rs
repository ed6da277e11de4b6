//! Checks that a [`RegistryStore`] keeps its contract, for any implementation (feature
//! `testkit`): run [`check_store`] from a test of your store. herald runs it on
//! [`MemoryStore`](crate::bridge::MemoryStore) and [`RedbStore`](crate::bridge::RedbStore).
//!
//! The checks panic with a message naming the broken rule. They cover compare-and-set and
//! revisions, the registry's rules over the store (ownership, replace, the 410 timestamp rule,
//! quarantine and release), the ownership protocol's crash cases (a claim left by a writer
//! that died, a stalled writer's late write), and concurrency: many threads through several
//! [`DeviceRegistry`] handles sharing one store (as processes would) never lose a
//! registration and never give a token two owners.
//!
//! ```
//! use herald::bridge::{MemoryStore, conformance};
//! conformance::check_store(MemoryStore::new);
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::apns::Reason;
use crate::bridge::{
    Claim, Clock, Device, DeviceRegistry, Environment, Expect, ManualClock, RegistryStore,
    Replaced, SubjectRecord,
};

const TOPIC: &str = "com.example.app";

fn dev(subject: &str, token: &str) -> Device {
    Device::new(subject, token, TOPIC, Environment::Sandbox)
}

fn tokens(r: &DeviceRegistry, subject: &str) -> Vec<String> {
    r.devices(subject)
        .expect("devices")
        .into_iter()
        .map(|d| d.token)
        .collect()
}

/// How much the concurrency checks do.
///
/// ```
/// use herald::bridge::conformance::Scale;
/// let s = Scale { threads: 4, per_thread: 10, registries: 2 };
/// assert_eq!(s.threads * s.per_thread, 40);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    /// Writer threads.
    pub threads: usize,
    /// Operations per thread.
    pub per_thread: usize,
    /// Registry handles sharing the store (the threads are spread over them).
    pub registries: usize,
}

impl Default for Scale {
    fn default() -> Self {
        Scale {
            threads: 8,
            per_thread: 40,
            registries: 4,
        }
    }
}

/// Runs every check, each on a fresh store from `make`, with the default [`Scale`].
///
/// ```
/// use herald::bridge::{MemoryStore, conformance};
/// conformance::check_store(MemoryStore::new);
/// ```
pub fn check_store<S: RegistryStore>(make: impl Fn() -> S) {
    check_store_with(make, Scale::default());
}

/// Runs every check with a given [`Scale`] for the concurrency checks.
///
/// ```
/// use herald::bridge::{MemoryStore, conformance::{self, Scale}};
/// conformance::check_store_with(MemoryStore::new, Scale { threads: 2, per_thread: 5, registries: 2 });
/// ```
pub fn check_store_with<S: RegistryStore>(make: impl Fn() -> S, scale: Scale) {
    compare_and_set(&make());
    revisions_increase(&make());
    records_round_trip(&make());
    registry_rules(make());
    quarantine_rules(make());
    abandoned_claims(make());
    concurrent_registrations_lose_nothing(Arc::new(make()), scale);
    contested_tokens_get_one_owner(Arc::new(make()), scale);
    replacements_under_contention(Arc::new(make()), scale);
}

/// Conditional writes: create only when absent, update and delete only at the current
/// revision; a conflict changes nothing.
///
/// ```
/// use herald::bridge::{Cas, Claim, Expect, MemoryStore, RegistryStore, StoreError, SubjectRecord,
///     Versioned, conformance};
/// use std::panic::{AssertUnwindSafe, catch_unwind};
///
/// conformance::compare_and_set(&MemoryStore::new()); // passes on a fresh store
///
/// /// A broken store: a subject write wins whatever the writer expected (last write wins).
/// struct LastWriteWins(MemoryStore);
/// impl RegistryStore for LastWriteWins {
///     fn read_subject(&self, s: &str) -> Result<Option<Versioned<SubjectRecord>>, StoreError> {
///         self.0.read_subject(s)
///     }
///     fn write_subject(&self, s: &str, _: Expect, r: Option<&SubjectRecord>) -> Result<Cas, StoreError> {
///         let now = self.0.read_subject(s)?.map_or(Expect::Absent, |v| Expect::At(v.revision));
///         self.0.write_subject(s, now, r)
///     }
///     fn read_claim(&self, t: &str) -> Result<Option<Versioned<Claim>>, StoreError> {
///         self.0.read_claim(t)
///     }
///     fn write_claim(&self, t: &str, e: Expect, c: Option<&Claim>) -> Result<Cas, StoreError> {
///         self.0.write_claim(t, e, c)
///     }
///     fn subjects(&self) -> Result<Vec<String>, StoreError> {
///         self.0.subjects()
///     }
/// }
/// let broken = LastWriteWins(MemoryStore::new());
/// let panic = catch_unwind(AssertUnwindSafe(|| conformance::compare_and_set(&broken))).unwrap_err();
/// assert_eq!(panic.downcast_ref::<&str>(), Some(&"create on an existing key must conflict"));
/// ```
pub fn compare_and_set(store: &dyn RegistryStore) {
    let record = SubjectRecord::default();
    let mut one = SubjectRecord::default();
    one.devices.insert("aa".into(), dev("s", "aa"));
    assert!(
        store.read_subject("s").unwrap().is_none(),
        "a new store is empty"
    );
    let r1 = match store
        .write_subject("s", Expect::Absent, Some(&record))
        .unwrap()
    {
        crate::bridge::Cas::Written(r) => r,
        c => panic!("create on an absent key must succeed: {c:?}"),
    };
    assert!(
        !store
            .write_subject("s", Expect::Absent, Some(&one))
            .unwrap()
            .is_written(),
        "create on an existing key must conflict"
    );
    let r2 = match store
        .write_subject("s", Expect::At(r1), Some(&one))
        .unwrap()
    {
        crate::bridge::Cas::Written(r) => r,
        c => panic!("update at the current revision must succeed: {c:?}"),
    };
    assert!(
        !store
            .write_subject("s", Expect::At(r1), Some(&record))
            .unwrap()
            .is_written(),
        "update at a stale revision must conflict"
    );
    let read = store.read_subject("s").unwrap().expect("written");
    assert_eq!(read.revision, r2, "a read returns the latest revision");
    assert_eq!(read.value, one.normalized(), "a conflict changed the value");
    assert!(
        !store
            .write_subject("s", Expect::At(r1), None)
            .unwrap()
            .is_written(),
        "delete at a stale revision must conflict"
    );
    assert!(
        store
            .write_subject("s", Expect::At(r2), None)
            .unwrap()
            .is_written(),
        "delete at the current revision must succeed"
    );
    assert!(store.read_subject("s").unwrap().is_none(), "deleted");
    assert!(
        store.subjects().unwrap().is_empty(),
        "deleted keys are not listed"
    );
    // The same for claims.
    let claim = Claim {
        subject: "s".into(),
        claimed_at: SystemTime::now(),
    };
    let c1 = match store
        .write_claim("aa", Expect::Absent, Some(&claim))
        .unwrap()
    {
        crate::bridge::Cas::Written(r) => r,
        c => panic!("claim create must succeed: {c:?}"),
    };
    assert!(
        !store
            .write_claim("aa", Expect::Absent, Some(&claim))
            .unwrap()
            .is_written(),
        "claim create on an existing key must conflict"
    );
    let got = store.read_claim("aa").unwrap().expect("claim");
    assert_eq!((got.value.subject.as_str(), got.revision), ("s", c1));
    assert!(
        store
            .write_claim("aa", Expect::At(c1), None)
            .unwrap()
            .is_written()
    );
    assert!(store.read_claim("aa").unwrap().is_none());
}

/// Every write of a key, deletes and re-creates included, gives a greater revision.
///
/// ```
/// use herald::bridge::{FaultyStore, MemoryStore, conformance};
/// use std::panic::{AssertUnwindSafe, catch_unwind};
///
/// conformance::revisions_increase(&MemoryStore::new());
/// // A store that cannot be reached fails the check.
/// let down = FaultyStore::default();
/// down.set_down(true);
/// assert!(catch_unwind(AssertUnwindSafe(|| conformance::revisions_increase(&down))).is_err());
/// ```
pub fn revisions_increase(store: &dyn RegistryStore) {
    let record = SubjectRecord::default();
    let mut last = None;
    for round in 0..3 {
        let r = match store
            .write_subject("k", Expect::Absent, Some(&record))
            .unwrap()
        {
            crate::bridge::Cas::Written(r) => r,
            c => panic!("round {round}: create must succeed: {c:?}"),
        };
        assert!(last.is_none_or(|l| r > l), "revision did not increase");
        let r2 = match store
            .write_subject("k", Expect::At(r), Some(&record))
            .unwrap()
        {
            crate::bridge::Cas::Written(r2) => r2,
            c => panic!("update must succeed: {c:?}"),
        };
        assert!(r2 > r, "an update must raise the revision");
        let r3 = match store.write_subject("k", Expect::At(r2), None).unwrap() {
            crate::bridge::Cas::Written(r3) => r3,
            c => panic!("delete must succeed: {c:?}"),
        };
        assert!(r3 > r2, "a delete must raise the revision");
        last = Some(r3);
    }
}

/// Devices, quarantine and markers come back as written (times at millisecond precision).
///
/// ```
/// use herald::bridge::{FaultyStore, MemoryStore, conformance};
/// use std::panic::{AssertUnwindSafe, catch_unwind};
///
/// conformance::records_round_trip(&MemoryStore::new());
/// // A store that cannot be reached fails the check.
/// let down = FaultyStore::default();
/// down.set_down(true);
/// assert!(catch_unwind(AssertUnwindSafe(|| conformance::records_round_trip(&down))).is_err());
/// ```
pub fn records_round_trip(store: &dyn RegistryStore) {
    let mut record = SubjectRecord::default();
    let mut a = dev("alice", "aa01");
    a.registered_at = SystemTime::UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
    let mut b = Device::new(
        "alice",
        "bb02",
        "com.example.watch",
        Environment::Production,
    );
    b.quarantine = Some(crate::bridge::Quarantine::new(
        Reason::Other("SomethingNew".into()),
        SystemTime::now(),
    ));
    record.devices.insert(a.token.clone(), a);
    record.devices.insert(b.token.clone(), b);
    record.released.insert(
        "cc03".into(),
        crate::bridge::Release {
            claim: crate::bridge::Revision::new(41),
            at: SystemTime::now(),
        },
    );
    assert!(
        store
            .write_subject("alice", Expect::Absent, Some(&record))
            .unwrap()
            .is_written()
    );
    let read = store.read_subject("alice").unwrap().expect("written");
    assert_eq!(
        read.value,
        record.normalized(),
        "the record did not round-trip"
    );
    assert_eq!(store.subjects().unwrap(), ["alice"]);
}

/// The registry's rules over this store: ownership, replace in one step, the 410 timestamp
/// rule.
///
/// ```
/// use herald::bridge::{FaultyStore, MemoryStore, conformance};
/// use std::panic::{AssertUnwindSafe, catch_unwind};
///
/// conformance::registry_rules(MemoryStore::new());
/// // A store that cannot be reached fails the check.
/// let down = FaultyStore::default();
/// down.set_down(true);
/// assert!(catch_unwind(AssertUnwindSafe(|| conformance::registry_rules(down))).is_err());
/// ```
pub fn registry_rules<S: RegistryStore>(store: S) {
    let r = DeviceRegistry::with_store(store);
    r.register(dev("alice", "aa01")).unwrap();
    r.register(dev("bob", "bb01")).unwrap();
    assert!(
        r.register(dev("mallory", "aa01"))
            .unwrap_err()
            .is_not_owner()
    );
    assert!(
        r.replace("bb01", dev("mallory", "ee01"))
            .unwrap_err()
            .is_not_owner()
    );
    assert!(r.remove("mallory", "aa01").unwrap_err().is_not_owner());
    assert_eq!(
        r.replace("aa01", dev("alice", "aa02")).unwrap(),
        Replaced::Replaced
    );
    assert_eq!(tokens(&r, "alice"), ["aa02"]);
    assert!(r.device("aa01").unwrap().is_none());
    // The released token is free for anyone at once.
    r.register(dev("carol", "aa01")).unwrap();
    assert_eq!(tokens(&r, "carol"), ["aa01"]);
    // 410: a registration after the timestamp keeps the token.
    let before = SystemTime::now() - Duration::from_secs(60);
    assert!(!r.invalidate("bb01", before).unwrap());
    assert!(r.invalidate("bb01", SystemTime::now()).unwrap());
    assert!(tokens(&r, "bob").is_empty());
    assert!(r.remove("carol", "aa01").unwrap());
    assert!(!r.remove("carol", "aa01").unwrap());
    assert_eq!(r.len().unwrap(), 1);
    assert_consistent(&r);
}

/// Quarantine keeps the token, counts rejections, ignores a rejection older than the latest
/// registration; a registration or a release ends it; only a confirmed quarantine deletes.
///
/// ```
/// use herald::bridge::{FaultyStore, MemoryStore, conformance};
/// use std::panic::{AssertUnwindSafe, catch_unwind};
///
/// conformance::quarantine_rules(MemoryStore::new());
/// // A store that cannot be reached fails the check.
/// let down = FaultyStore::default();
/// down.set_down(true);
/// assert!(catch_unwind(AssertUnwindSafe(|| conformance::quarantine_rules(down))).is_err());
/// ```
pub fn quarantine_rules<S: RegistryStore>(store: S) {
    let r = DeviceRegistry::with_store(store);
    r.register(dev("alice", "aa01")).unwrap();
    // Sent after the registration: a time taken before it falls in an earlier millisecond
    // now and then, and the registry then rightly ignores the rejection as stale.
    let sent = SystemTime::now();
    assert!(
        !r.delete_quarantined("aa01", SystemTime::now()).unwrap(),
        "active"
    );
    assert!(r.quarantine("aa01", Reason::BadDeviceToken, sent).unwrap());
    assert!(r.quarantine("aa01", Reason::BadDeviceToken, sent).unwrap());
    let q = r
        .device("aa01")
        .unwrap()
        .unwrap()
        .quarantine
        .expect("quarantined");
    assert_eq!(q.rejections, 2);
    assert_eq!(r.quarantined().unwrap().len(), 1);
    r.register(dev("alice", "aa01")).unwrap();
    assert!(
        !r.device("aa01").unwrap().unwrap().is_quarantined(),
        "registration releases"
    );
    // A rejection of a push sent before the latest registration is stale.
    assert!(
        !r.quarantine(
            "aa01",
            Reason::BadDeviceToken,
            SystemTime::now() - Duration::from_secs(60)
        )
        .unwrap()
    );
    assert!(
        r.quarantine("aa01", Reason::DeviceTokenNotForTopic, SystemTime::now())
            .unwrap()
    );
    assert!(r.release("aa01").unwrap());
    assert!(!r.release("aa01").unwrap());
    assert!(
        r.quarantine("aa01", Reason::BadDeviceToken, SystemTime::now())
            .unwrap()
    );
    assert!(
        !r.delete_quarantined("aa01", SystemTime::now() - Duration::from_secs(60))
            .unwrap(),
        "registered after the confirmation's send time: kept"
    );
    assert!(r.delete_quarantined("aa01", SystemTime::now()).unwrap());
    assert!(r.is_empty().unwrap());
    assert_consistent(&r);
}

/// The ownership protocol's crash cases: a claim left by a writer that died blocks other
/// subjects only for the claim timeout; the takeover fences the dead writer's record so a late
/// write of it conflicts.
///
/// ```
/// use herald::bridge::{FaultyStore, MemoryStore, conformance};
/// use std::panic::{AssertUnwindSafe, catch_unwind};
///
/// conformance::abandoned_claims(MemoryStore::new()); // moves time with a manual clock: no sleep
/// // A store that cannot be reached fails the check.
/// let down = FaultyStore::default();
/// down.set_down(true);
/// assert!(catch_unwind(AssertUnwindSafe(|| conformance::abandoned_claims(down))).is_err());
/// ```
pub fn abandoned_claims<S: RegistryStore>(store: S) {
    let store = Arc::new(store);
    let clock = ManualClock::new();
    let r = DeviceRegistry::builder(store.clone())
        .clock(clock.clone())
        .claim_timeout(Duration::from_secs(30))
        .build();
    // "ghost" claimed the token, read its (empty) record, and died before writing it.
    let claim = Claim {
        subject: "ghost".into(),
        claimed_at: clock.now(),
    };
    assert!(
        store
            .write_claim("dead01", Expect::Absent, Some(&claim))
            .unwrap()
            .is_written()
    );
    let ghost_view = store.read_subject("ghost").unwrap();
    assert!(
        r.register(dev("alice", "dead01"))
            .unwrap_err()
            .is_not_owner(),
        "a fresh claim of another subject blocks"
    );
    clock.advance(Duration::from_secs(31));
    r.register(dev("alice", "dead01")).unwrap();
    assert_eq!(tokens(&r, "alice"), ["dead01"]);
    // The ghost wakes up and writes its record as it read it: it must conflict.
    let mut late = SubjectRecord::default();
    late.devices.insert("dead01".into(), dev("ghost", "dead01"));
    let expect = ghost_view.map_or(Expect::Absent, |v| Expect::At(v.revision));
    assert!(
        !store
            .write_subject("ghost", expect, Some(&late))
            .unwrap()
            .is_written(),
        "the takeover must fence the abandoned claimant's record"
    );
    assert!(
        r.register(dev("ghost", "dead01"))
            .unwrap_err()
            .is_not_owner()
    );
    assert_consistent(&r);
}

/// Many threads, through several registries sharing `store`, register distinct tokens for
/// a few subjects (every write of a subject contended): none is lost.
///
/// ```
/// use herald::bridge::conformance::{self, Scale};
/// use herald::bridge::{DeviceRegistry, MemoryStore};
/// use std::sync::Arc;
///
/// let store = Arc::new(MemoryStore::new());
/// let scale = Scale { threads: 4, per_thread: 10, registries: 2 };
/// conformance::concurrent_registrations_lose_nothing(store.clone(), scale);
/// // Every registration of every thread is in the store.
/// assert_eq!(DeviceRegistry::with_store(store).len()?, 4 * 10);
/// # Ok::<(), herald::bridge::RegistryError>(())
/// ```
pub fn concurrent_registrations_lose_nothing<S: RegistryStore>(store: Arc<S>, scale: Scale) {
    let registries: Vec<DeviceRegistry> = (0..scale.registries.max(1))
        .map(|_| DeviceRegistry::with_store(store.clone()))
        .collect();
    std::thread::scope(|s| {
        for t in 0..scale.threads {
            let r = registries[t % registries.len()].clone();
            s.spawn(move || {
                for i in 0..scale.per_thread {
                    let subject = format!("user{}", i % 3);
                    r.register(dev(&subject, &format!("{t:04x}{i:06x}")))
                        .expect("register");
                }
            });
        }
    });
    let r = &registries[0];
    assert_eq!(
        r.len().unwrap(),
        scale.threads * scale.per_thread,
        "a concurrent registration was lost"
    );
    assert_consistent(r);
}

/// Threads of different subjects race to register the same tokens: each token ends with
/// exactly one owner, the one whose registration succeeded; every other attempt was refused.
///
/// ```
/// use herald::bridge::conformance::{self, Scale};
/// use herald::bridge::{DeviceRegistry, MemoryStore};
/// use std::sync::Arc;
///
/// let store = Arc::new(MemoryStore::new());
/// let scale = Scale { threads: 4, per_thread: 10, registries: 2 };
/// conformance::contested_tokens_get_one_owner(store.clone(), scale);
/// // Four rivals raced for the same ten tokens: ten devices, each with one owner.
/// let registry = DeviceRegistry::with_store(store);
/// assert_eq!(registry.len()?, 10);
/// conformance::assert_consistent(&registry);
/// # Ok::<(), herald::bridge::RegistryError>(())
/// ```
pub fn contested_tokens_get_one_owner<S: RegistryStore>(store: Arc<S>, scale: Scale) {
    let registries: Vec<DeviceRegistry> = (0..scale.registries.max(1))
        .map(|_| DeviceRegistry::with_store(store.clone()))
        .collect();
    let won: Vec<Vec<(String, String)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..scale.threads)
            .map(|t| {
                let r = registries[t % registries.len()].clone();
                s.spawn(move || {
                    let subject = format!("rival{t}");
                    let mut won = Vec::new();
                    for i in 0..scale.per_thread {
                        let token = format!("c0{i:06x}");
                        match r.register(dev(&subject, &token)) {
                            Ok(()) => won.push((token, subject.clone())),
                            Err(e) if e.is_not_owner() => {}
                            Err(e) => panic!("register failed: {e}"),
                        }
                    }
                    won
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut winners: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (token, subject) in won.into_iter().flatten() {
        winners.entry(token).or_default().push(subject);
    }
    let r = &registries[0];
    for (token, subjects) in &winners {
        assert_eq!(subjects.len(), 1, "{token} was registered by {subjects:?}");
        let owner = r.device(token).unwrap().expect("a winner's token is held");
        assert_eq!(
            &owner.subject, &subjects[0],
            "{token} ended with another owner"
        );
    }
    assert_eq!(
        winners.len(),
        scale.per_thread,
        "a contested token has no owner"
    );
    assert_eq!(r.len().unwrap(), scale.per_thread);
    assert_consistent(r);
}

/// Each thread walks its own chain of replacements (old → new) for one shared subject while
/// others do the same: each chain ends with exactly its last token, nothing else survives.
///
/// ```
/// use herald::bridge::conformance::{self, Scale};
/// use herald::bridge::{DeviceRegistry, MemoryStore};
/// use std::sync::Arc;
///
/// let store = Arc::new(MemoryStore::new());
/// let scale = Scale { threads: 4, per_thread: 10, registries: 2 };
/// conformance::replacements_under_contention(store.clone(), scale);
/// // One device per chain is left: the last token of each.
/// assert_eq!(DeviceRegistry::with_store(store).devices("shared")?.len(), 4);
/// # Ok::<(), herald::bridge::RegistryError>(())
/// ```
pub fn replacements_under_contention<S: RegistryStore>(store: Arc<S>, scale: Scale) {
    let registries: Vec<DeviceRegistry> = (0..scale.registries.max(1))
        .map(|_| DeviceRegistry::with_store(store.clone()))
        .collect();
    std::thread::scope(|s| {
        for t in 0..scale.threads {
            let r = registries[t % registries.len()].clone();
            s.spawn(move || {
                r.register(dev("shared", &format!("{t:04x}000000")))
                    .unwrap();
                for i in 0..scale.per_thread {
                    let (old, new) = (format!("{t:04x}{i:06x}"), format!("{t:04x}{:06x}", i + 1));
                    assert_eq!(
                        r.replace(&old, dev("shared", &new)).unwrap(),
                        Replaced::Replaced
                    );
                }
            });
        }
    });
    let r = &registries[0];
    let mut expected: Vec<String> = (0..scale.threads)
        .map(|t| format!("{t:04x}{:06x}", scale.per_thread))
        .collect();
    expected.sort();
    assert_eq!(
        tokens(r, "shared"),
        expected,
        "a replacement was lost or half-applied"
    );
    assert_consistent(r);
}

/// The store's invariants, read through `registry`: every device is in its subject's record
/// under its own token, claimed by that subject, and no token is in two records.
///
/// ```
/// use herald::bridge::{Device, DeviceRegistry, Environment, Expect, MemoryStore, RegistryStore,
///     SubjectRecord, conformance};
/// use std::panic::{AssertUnwindSafe, catch_unwind};
/// use std::sync::Arc;
///
/// let store = Arc::new(MemoryStore::new());
/// let registry = DeviceRegistry::with_store(store.clone());
/// registry.register(Device::new("alice", "aa01", "com.example.app", Environment::Sandbox))?;
/// conformance::assert_consistent(&registry);
///
/// // A store written around the registry: bob's record holds alice's token.
/// let mut bobs = SubjectRecord::default();
/// bobs.devices.insert("aa01".into(), Device::new("bob", "aa01", "com.example.app", Environment::Sandbox));
/// assert!(store.write_subject("bob", Expect::Absent, Some(&bobs))?.is_written());
/// assert!(catch_unwind(AssertUnwindSafe(|| conformance::assert_consistent(&registry))).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn assert_consistent(registry: &DeviceRegistry) {
    let all = registry.all().expect("all");
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for d in &all {
        if let Some(other) = seen.insert(d.token.clone(), d.subject.clone()) {
            panic!("{} is held by {} and {}", d.token, other, d.subject);
        }
        let via_token = registry.device(&d.token).expect("device");
        assert_eq!(
            via_token.as_ref().map(|x| x.subject.as_str()),
            Some(d.subject.as_str()),
            "{}: the token index does not lead to its holder",
            d.token
        );
    }
}
