//! The default persistent store: one redb file (ACID, copy-on-write B-trees, crash-safe).

use std::path::Path;

use redb::{Database, MultimapTableDefinition, ReadableDatabase, ReadableTable, TableDefinition};

use crate::bridge::registry::{
    Change, Device, Environment, RegistryStore, StoreError, from_micros,
};

/// token → (subject, topic, environment, registered_at µs), encoded by `encode`.
const DEVICES: TableDefinition<&str, &[u8]> = TableDefinition::new("devices");
/// subject → tokens.
const SUBJECTS: MultimapTableDefinition<&str, &str> = MultimapTableDefinition::new("subjects");

/// A [`RegistryStore`] in one redb file: every [`apply`](RegistryStore::apply) is one write
/// transaction, committed durably before it returns; a crash mid-write leaves the previous
/// commit intact. [`DeviceRegistry::open`](crate::bridge::DeviceRegistry::open) uses it.
///
/// ```
/// use herald::bridge::{Change, Device, Environment, RedbStore, RegistryStore};
/// let dir = tempfile::tempdir().unwrap();
/// let store = RedbStore::open(dir.path().join("devices.redb")).unwrap();
/// store.apply(&[Change::Put(Device::new("a", "aa", "t", Environment::Sandbox))]).unwrap();
/// assert_eq!(store.get("aa").unwrap().unwrap().subject, "a");
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
    /// assert!(store.all().unwrap().is_empty());
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<RedbStore, StoreError> {
        let db = Database::create(path).map_err(err)?;
        let tx = db.begin_write().map_err(err)?;
        tx.open_table(DEVICES).map_err(err)?;
        tx.open_multimap_table(SUBJECTS).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(RedbStore { db })
    }
}

// Layout: [env u8][registered_at µs u64 LE][subject len u32 LE][subject][topic].
fn encode(d: &Device) -> Vec<u8> {
    let mut v = Vec::with_capacity(13 + d.subject.len() + d.topic.len());
    v.push(match d.environment {
        Environment::Sandbox => 0,
        Environment::Production => 1,
    });
    v.extend_from_slice(&d.registered_micros().to_le_bytes());
    let len = u32::try_from(d.subject.len()).unwrap_or(u32::MAX);
    v.extend_from_slice(&len.to_le_bytes());
    v.extend_from_slice(d.subject.as_bytes());
    v.extend_from_slice(d.topic.as_bytes());
    v
}

fn decode(token: &str, v: &[u8]) -> Result<Device, StoreError> {
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
    Ok(Device {
        subject: String::from_utf8(subject.to_vec()).map_err(|_| bad())?,
        token: token.to_owned(),
        topic: String::from_utf8(topic.to_vec()).map_err(|_| bad())?,
        environment,
        registered_at: from_micros(u64::from_le_bytes(*at)),
    })
}

impl RegistryStore for RedbStore {
    fn get(&self, token: &str) -> Result<Option<Device>, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(DEVICES).map_err(err)?;
        match table.get(token).map_err(err)? {
            Some(v) => Ok(Some(decode(token, v.value())?)),
            None => Ok(None),
        }
    }

    fn by_subject(&self, subject: &str) -> Result<Vec<Device>, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        let subjects = tx.open_multimap_table(SUBJECTS).map_err(err)?;
        let devices = tx.open_table(DEVICES).map_err(err)?;
        let mut out = Vec::new();
        for token in subjects.get(subject).map_err(err)? {
            let token = token.map_err(err)?;
            let token = token.value();
            if let Some(v) = devices.get(token).map_err(err)? {
                out.push(decode(token, v.value())?);
            }
        }
        Ok(out)
    }

    fn all(&self) -> Result<Vec<Device>, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        let devices = tx.open_table(DEVICES).map_err(err)?;
        let mut out = Vec::new();
        for row in devices.iter().map_err(err)? {
            let (k, v) = row.map_err(err)?;
            out.push(decode(k.value(), v.value())?);
        }
        Ok(out)
    }

    fn apply(&self, changes: &[Change]) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(err)?;
        {
            let mut devices = tx.open_table(DEVICES).map_err(err)?;
            let mut subjects = tx.open_multimap_table(SUBJECTS).map_err(err)?;
            for change in changes {
                let token = match change {
                    Change::Put(d) => d.token.as_str(),
                    Change::Delete(t) => t.as_str(),
                };
                let old = devices
                    .remove(token)
                    .map_err(err)?
                    .map(|v| decode(token, v.value()))
                    .transpose()?;
                if let Some(old) = old {
                    subjects.remove(old.subject.as_str(), token).map_err(err)?;
                }
                if let Change::Put(d) = change {
                    devices
                        .insert(d.token.as_str(), encode(d).as_slice())
                        .map_err(err)?;
                    subjects
                        .insert(d.subject.as_str(), d.token.as_str())
                        .map_err(err)?;
                }
            }
        }
        tx.commit().map_err(err)
    }
}
