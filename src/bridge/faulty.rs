//! [`FaultyStore`]: a registry store that fails on demand, for testing outage handling.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use parking_lot::{Condvar, Mutex};

use crate::bridge::store::{Cas, Claim, Expect, SubjectRecord, Versioned};
use crate::bridge::{MemoryStore, RegistryStore, StoreError};

/// A [`RegistryStore`] that fails on demand: it wraps another store (a [`MemoryStore`] by
/// default) and, while [down](Self::set_down), refuses every call with a [`StoreError`] and
/// counts it. [`stall_next`](Self::stall_next) makes the next call hang until
/// [`release`](Self::release) and then fail, as a store that times out does.
///
/// For testing how code that uses a [`DeviceRegistry`](crate::bridge::DeviceRegistry) behaves
/// when its store is unreachable: the registry queues the lifecycle changes it could not store
/// and retries them in order; a sink delays a message whose subject it cannot resolve.
///
/// ```
/// use herald::bridge::{DeviceRegistry, FaultyStore, RegistryStore};
/// use std::sync::Arc;
///
/// let store = Arc::new(FaultyStore::default());
/// let registry = DeviceRegistry::with_store(store.clone());
/// store.set_down(true);
/// assert!(registry.devices("alice").is_err());
/// assert_eq!(store.refused(), 1);
/// store.set_down(false);
/// assert!(registry.devices("alice")?.is_empty());
/// # Ok::<(), herald::bridge::RegistryError>(())
/// ```
pub struct FaultyStore<S = MemoryStore> {
    inner: S,
    down: AtomicBool,
    refused: AtomicUsize,
    stall_next: AtomicBool,
    stalled: AtomicBool,
    /// Set by `release`; a stalled call waits on `wake` until it is.
    released: Mutex<bool>,
    wake: Condvar,
}

impl Default for FaultyStore<MemoryStore> {
    fn default() -> Self {
        FaultyStore::new(MemoryStore::new())
    }
}

impl<S> fmt::Debug for FaultyStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyStore")
            .field("down", &self.is_down())
            .field("refused", &self.refused())
            .field("stalled", &self.is_stalled())
            .finish_non_exhaustive()
    }
}

impl<S> FaultyStore<S> {
    /// Wraps `inner`, up and answering.
    ///
    /// ```
    /// use herald::bridge::{FaultyStore, MemoryStore};
    /// let store = FaultyStore::new(MemoryStore::new());
    /// assert!(!store.is_down());
    /// ```
    pub fn new(inner: S) -> Self {
        FaultyStore {
            inner,
            down: AtomicBool::new(false),
            refused: AtomicUsize::new(0),
            stall_next: AtomicBool::new(false),
            stalled: AtomicBool::new(false),
            released: Mutex::new(false),
            wake: Condvar::new(),
        }
    }

    /// Takes the store down (every call fails) or brings it back.
    ///
    /// ```
    /// use herald::bridge::{FaultyStore, RegistryStore};
    /// let store = FaultyStore::default();
    /// store.set_down(true);
    /// assert!(store.subjects().is_err());
    /// store.set_down(false);
    /// assert!(store.subjects().is_ok());
    /// ```
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Whether the store is down.
    ///
    /// ```
    /// # use herald::bridge::FaultyStore;
    /// assert!(!FaultyStore::default().is_down());
    /// ```
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    /// Calls refused so far (while down, and stalled calls that timed out).
    ///
    /// ```
    /// # use herald::bridge::{FaultyStore, RegistryStore};
    /// let store = FaultyStore::default();
    /// store.set_down(true);
    /// let _ = store.subjects();
    /// let _ = store.read_subject("alice");
    /// assert_eq!(store.refused(), 2);
    /// ```
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }

    /// Makes the next call hang until [`release`](Self::release), then fail (a timeout).
    ///
    /// ```
    /// use herald::bridge::{FaultyStore, RegistryStore};
    /// use std::sync::Arc;
    ///
    /// let store = Arc::new(FaultyStore::default());
    /// store.stall_next();
    /// let s = store.clone();
    /// let call = std::thread::spawn(move || s.subjects());
    /// while !store.is_stalled() {
    ///     std::thread::yield_now();
    /// }
    /// store.release();
    /// assert!(call.join().unwrap().is_err());
    /// assert!(store.subjects().is_ok()); // only that one call
    /// ```
    pub fn stall_next(&self) {
        *self.released.lock() = false;
        self.stall_next.store(true, Ordering::SeqCst);
    }

    /// Whether a call is hanging now (after [`stall_next`](Self::stall_next)).
    ///
    /// ```
    /// # use herald::bridge::FaultyStore;
    /// assert!(!FaultyStore::default().is_stalled());
    /// ```
    pub fn is_stalled(&self) -> bool {
        self.stalled.load(Ordering::SeqCst)
    }

    /// Lets a stalled call go on (and fail).
    ///
    /// ```
    /// # use herald::bridge::FaultyStore;
    /// FaultyStore::default().release(); // nothing stalled: no effect
    /// ```
    pub fn release(&self) {
        *self.released.lock() = true;
        self.wake.notify_all();
    }

    /// The wrapped store.
    ///
    /// ```
    /// # use herald::bridge::{FaultyStore, MemoryStore, RegistryStore};
    /// let store = FaultyStore::new(MemoryStore::new());
    /// assert!(store.inner().subjects()?.is_empty());
    /// # Ok::<(), herald::bridge::StoreError>(())
    /// ```
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.stall_next.swap(false, Ordering::SeqCst) {
            let mut released = self.released.lock();
            self.stalled.store(true, Ordering::SeqCst);
            while !*released {
                self.wake.wait(&mut released);
            }
            self.stalled.store(false, Ordering::SeqCst);
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::new("timed out (FaultyStore::stall_next)"));
        }
        if self.is_down() {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::new("unreachable (FaultyStore is down)"));
        }
        Ok(())
    }
}

impl<S: RegistryStore> RegistryStore for FaultyStore<S> {
    fn read_subject(&self, subject: &str) -> Result<Option<Versioned<SubjectRecord>>, StoreError> {
        self.check()?;
        self.inner.read_subject(subject)
    }

    fn write_subject(
        &self,
        subject: &str,
        expect: Expect,
        record: Option<&SubjectRecord>,
    ) -> Result<Cas, StoreError> {
        self.check()?;
        self.inner.write_subject(subject, expect, record)
    }

    fn read_claim(&self, token: &str) -> Result<Option<Versioned<Claim>>, StoreError> {
        self.check()?;
        self.inner.read_claim(token)
    }

    fn write_claim(
        &self,
        token: &str,
        expect: Expect,
        claim: Option<&Claim>,
    ) -> Result<Cas, StoreError> {
        self.check()?;
        self.inner.write_claim(token, expect, claim)
    }

    fn subjects(&self) -> Result<Vec<String>, StoreError> {
        self.check()?;
        self.inner.subjects()
    }
}
