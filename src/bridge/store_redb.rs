//! The default persistent store: one redb file (ACID, copy-on-write B-trees, crash-safe).

use std::path::Path;

use redb::{
    Database, Durability, MultimapTableDefinition, ReadableDatabase, ReadableTable,
    TableDefinition, TableHandle, WriteTransaction,
};

use crate::bridge::registry::{Device, Environment};
use crate::bridge::store::{
    Cas, Claim, Expect, RegistryStore, Revision, StoreError, SubjectRecord, Versioned, from_ms,
};

/// subject → [revision u64 LE][`SubjectRecord::encode`].
const SUBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("subject_records");
/// token → [revision u64 LE][`Claim::encode`].
const CLAIMS: TableDefinition<&str, &[u8]> = TableDefinition::new("token_claims");
/// `"revision"` → the last revision given out.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The first layout (herald 0.1 before compare-and-set): token → device, subject → tokens.
const OLD_DEVICES: TableDefinition<&str, &[u8]> = TableDefinition::new("devices");
const OLD_SUBJECTS: MultimapTableDefinition<&str, &str> = MultimapTableDefinition::new("subjects");

/// A [`RegistryStore`] in one redb file: every compare-and-set is one write transaction; a
/// subject record's is committed durably (`fsync`) before it returns, a claim's with the next
/// subject write (as the [contract](RegistryStore) allows); a crash mid-write leaves the
/// previous commit intact.
/// One process opens the file at a time (redb locks it); for a registry shared by several
/// processes use a shared store. [`DeviceRegistry::open`](crate::bridge::DeviceRegistry::open)
/// uses it. A file in the first layout (before revisions) is converted when opened.
///
/// ```
/// use herald::bridge::{Device, DeviceRegistry, Environment, RedbStore};
/// let dir = tempfile::tempdir().unwrap();
/// let store = RedbStore::open(dir.path().join("devices.redb")).unwrap();
/// let registry = DeviceRegistry::with_store(store);
/// registry.register(Device::new("a", "aa", "t", Environment::Sandbox)).unwrap();
/// assert_eq!(registry.device("aa").unwrap().unwrap().subject, "a");
/// ```
#[derive(Debug)]
pub struct RedbStore {
    db: Database,
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError::new(e.to_string())
}

impl RedbStore {
    /// Opens the file at `path`, creating it (and its tables) when missing.
    ///
    /// ```
    /// # use herald::bridge::{RedbStore, RegistryStore};
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = RedbStore::open(dir.path().join("d.redb")).unwrap();
    /// assert!(store.subjects().unwrap().is_empty());
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<RedbStore, StoreError> {
        let db = Database::create(path).map_err(err)?;
        let tx = db.begin_write().map_err(err)?;
        tx.open_table(SUBJECTS).map_err(err)?;
        tx.open_table(CLAIMS).map_err(err)?;
        tx.open_table(META).map_err(err)?;
        migrate(&tx)?;
        tx.commit().map_err(err)?;
        Ok(RedbStore { db })
    }
}

/// Converts the first layout, in the same transaction as opening (all or nothing).
fn migrate(tx: &WriteTransaction) -> Result<(), StoreError> {
    let exists = tx
        .list_tables()
        .map_err(err)?
        .any(|t| t.name() == OLD_DEVICES.name());
    if !exists {
        return Ok(());
    }
    let mut records: std::collections::BTreeMap<String, SubjectRecord> = Default::default();
    {
        let old = tx.open_table(OLD_DEVICES).map_err(err)?;
        for row in old.iter().map_err(err)? {
            let (k, v) = row.map_err(err)?;
            let device = decode_v0(k.value(), v.value())?;
            records
                .entry(device.subject.clone())
                .or_default()
                .devices
                .insert(device.token.clone(), device);
        }
    }
    let now = std::time::SystemTime::now();
    for (subject, record) in &records {
        put(tx, SUBJECTS, subject, &record.encode())?;
        for token in record.devices.keys() {
            let claim = Claim {
                subject: subject.clone(),
                claimed_at: now,
            };
            put(tx, CLAIMS, token, &claim.encode())?;
        }
    }
    tx.delete_table(OLD_DEVICES).map_err(err)?;
    tx.delete_multimap_table(OLD_SUBJECTS).map_err(err)?;
    tracing::info!(
        subjects = records.len(),
        "device registry: converted the file to the revisioned layout"
    );
    Ok(())
}

// The first layout: [env u8][registered_at µs u64 LE][subject len u32 LE][subject][topic].
fn decode_v0(token: &str, v: &[u8]) -> Result<Device, StoreError> {
    let bad = || StoreError::new(format!("corrupt record for token {token}"));
    let (&env, rest) = v.split_first().ok_or_else(bad)?;
    let environment = match env {
        0 => Environment::Sandbox,
        1 => Environment::Production,
        _ => return Err(bad()),
    };
    let (at, rest) = rest.split_first_chunk::<8>().ok_or_else(bad)?;
    let (len, rest) = rest.split_first_chunk::<4>().ok_or_else(bad)?;
    let len = usize::try_from(u32::from_le_bytes(*len)).map_err(|_| bad())?;
    if rest.len() < len {
        return Err(bad());
    }
    let (subject, topic) = rest.split_at(len);
    let mut device = Device::new(
        String::from_utf8(subject.to_vec()).map_err(|_| bad())?,
        token,
        String::from_utf8(topic.to_vec()).map_err(|_| bad())?,
        environment,
    );
    device.registered_at = from_ms(u64::from_le_bytes(*at) / 1000);
    Ok(device)
}

fn split(key: &str, v: &[u8]) -> Result<(Revision, Vec<u8>), StoreError> {
    let (rev, rest) = v
        .split_first_chunk::<8>()
        .ok_or_else(|| StoreError::new(format!("corrupt value at key {key:?}")))?;
    Ok((Revision::new(u64::from_le_bytes(*rev)), rest.to_vec()))
}

/// Writes `payload` at `key` with the next revision, inside `tx`.
fn put(
    tx: &WriteTransaction,
    table: TableDefinition<&str, &[u8]>,
    key: &str,
    payload: &[u8],
) -> Result<Revision, StoreError> {
    let revision = next_revision(tx)?;
    let mut value = Vec::with_capacity(8 + payload.len());
    value.extend_from_slice(&revision.get().to_le_bytes());
    value.extend_from_slice(payload);
    tx.open_table(table)
        .map_err(err)?
        .insert(key, value.as_slice())
        .map_err(err)?;
    Ok(revision)
}

fn next_revision(tx: &WriteTransaction) -> Result<Revision, StoreError> {
    let mut meta = tx.open_table(META).map_err(err)?;
    let last = meta.get("revision").map_err(err)?.map_or(0, |v| v.value());
    let next = last + 1;
    meta.insert("revision", next).map_err(err)?;
    Ok(Revision::new(next))
}

impl RedbStore {
    fn read(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
    ) -> Result<Option<(Revision, Vec<u8>)>, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        let t = tx.open_table(table).map_err(err)?;
        match t.get(key).map_err(err)? {
            Some(v) => Ok(Some(split(key, v.value())?)),
            None => Ok(None),
        }
    }

    /// One compare-and-set, as one write transaction: durable for subject records; for
    /// claims, durable with the next subject write (redb keeps commit order), which the
    /// contract allows and which halves the `fsync`s of a registration.
    fn cas(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
        expect: Expect,
        payload: Option<Vec<u8>>,
    ) -> Result<Cas, StoreError> {
        let mut tx = self.db.begin_write().map_err(err)?;
        if table.name() == CLAIMS.name() {
            tx.set_durability(Durability::None).map_err(err)?;
        }
        let current = {
            let t = tx.open_table(table).map_err(err)?;
            let v = t.get(key).map_err(err)?;
            match v {
                Some(v) => Some(split(key, v.value())?.0),
                None => None,
            }
        };
        let ok = match expect {
            Expect::Absent => current.is_none(),
            Expect::At(r) => current == Some(r),
        };
        if !ok {
            tx.abort().map_err(err)?;
            return Ok(Cas::Conflict);
        }
        let revision = match payload {
            Some(p) => put(&tx, table, key, &p)?,
            None => {
                tx.open_table(table)
                    .map_err(err)?
                    .remove(key)
                    .map_err(err)?;
                next_revision(&tx)?
            }
        };
        tx.commit().map_err(err)?;
        Ok(Cas::Written(revision))
    }
}

impl RegistryStore for RedbStore {
    fn read_subject(&self, subject: &str) -> Result<Option<Versioned<SubjectRecord>>, StoreError> {
        self.read(SUBJECTS, subject)?
            .map(|(revision, bytes)| {
                Ok(Versioned {
                    value: SubjectRecord::decode(subject, &bytes)?,
                    revision,
                })
            })
            .transpose()
    }

    fn write_subject(
        &self,
        subject: &str,
        expect: Expect,
        record: Option<&SubjectRecord>,
    ) -> Result<Cas, StoreError> {
        self.cas(SUBJECTS, subject, expect, record.map(SubjectRecord::encode))
    }

    fn read_claim(&self, token: &str) -> Result<Option<Versioned<Claim>>, StoreError> {
        self.read(CLAIMS, token)?
            .map(|(revision, bytes)| {
                Ok(Versioned {
                    value: Claim::decode(&bytes)?,
                    revision,
                })
            })
            .transpose()
    }

    fn write_claim(
        &self,
        token: &str,
        expect: Expect,
        claim: Option<&Claim>,
    ) -> Result<Cas, StoreError> {
        self.cas(CLAIMS, token, expect, claim.map(Claim::encode))
    }

    fn subjects(&self) -> Result<Vec<String>, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        let t = tx.open_table(SUBJECTS).map_err(err)?;
        let mut out = Vec::new();
        for row in t.iter().map_err(err)? {
            let (k, _) = row.map_err(err)?;
            out.push(k.value().to_owned());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::DeviceRegistry;

    /// A file written by the first layout opens with every device, owned as before.
    #[test]
    fn a_file_in_the_first_layout_is_converted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.redb");
        {
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            {
                let mut devices = tx.open_table(OLD_DEVICES).unwrap();
                let mut subjects = tx.open_multimap_table(OLD_SUBJECTS).unwrap();
                for (token, subject, env) in [("aa01", "alice", 0u8), ("bb01", "bob", 1)] {
                    let mut v = vec![env];
                    v.extend_from_slice(&1_700_000_000_123_456u64.to_le_bytes());
                    v.extend_from_slice(&u32::try_from(subject.len()).unwrap().to_le_bytes());
                    v.extend_from_slice(subject.as_bytes());
                    v.extend_from_slice(b"com.example.app");
                    devices.insert(token, v.as_slice()).unwrap();
                    subjects.insert(subject, token).unwrap();
                }
            }
            tx.commit().unwrap();
        }
        let registry = DeviceRegistry::open(&path).unwrap();
        let all = registry.all().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].subject, "alice");
        assert_eq!(all[0].environment, Environment::Sandbox);
        assert_eq!(all[1].environment, Environment::Production);
        assert_eq!(all[1].topic, "com.example.app");
        assert_eq!(
            crate::bridge::store::to_ms(all[0].registered_at),
            1_700_000_000_123
        );
        let err = registry
            .register(Device::new("mallory", "aa01", "t", Environment::Sandbox))
            .unwrap_err();
        assert!(err.is_not_owner(), "the claim index came along");
        drop(registry);
        // Converted once: opening again changes nothing.
        assert_eq!(DeviceRegistry::open(&path).unwrap().all().unwrap(), all);
    }
}
