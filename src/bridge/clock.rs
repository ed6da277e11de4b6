//! Wall-clock time for the bridge's lifecycle rules, injectable so tests never sleep.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

/// Where the registry and the sink read the time: quarantine timestamps, grace periods, the
/// circuit breaker's window and cool-down, claim expiry. Wall-clock time, because it is stored
/// and compared with APNs' own timestamps.
///
/// [`SystemClock`] is the default; [`ManualClock`] lets tests move time by hand.
///
/// ```
/// use herald::bridge::{Clock, SystemClock};
/// let now = SystemClock.now();
/// assert!(now > std::time::UNIX_EPOCH);
/// ```
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    ///
    /// ```
    /// use herald::bridge::{Clock, Device, DeviceRegistry, Environment, MemoryStore, RegistryStore};
    /// use std::sync::Arc;
    /// use std::time::{Duration, SystemTime, UNIX_EPOCH};
    ///
    /// /// A clock that always reads the same time (a test fixture, say).
    /// struct Frozen(SystemTime);
    /// impl Clock for Frozen {
    ///     fn now(&self) -> SystemTime {
    ///         self.0
    ///     }
    /// }
    ///
    /// let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    /// assert_eq!(Frozen(at).now(), at);
    /// // The registry reads its time from the clock: the token's claim is stamped with it.
    /// let store = Arc::new(MemoryStore::new());
    /// let registry = DeviceRegistry::builder(store.clone()).clock(Frozen(at)).build();
    /// registry.register(Device::new("alice", "aa01", "com.example.app", Environment::Sandbox))?;
    /// assert_eq!(store.read_claim("aa01")?.unwrap().value.claimed_at, at);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn now(&self) -> SystemTime;
}

/// The system's wall clock.
///
/// ```
/// use herald::bridge::{Clock, SystemClock};
/// assert!(SystemClock.now() <= std::time::SystemTime::now());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told: for tests of grace periods and cool-downs without
/// sleeping. Clones share one time.
///
/// ```
/// use herald::bridge::{Clock, ManualClock};
/// use std::time::Duration;
/// let clock = ManualClock::new();
/// let t0 = clock.now();
/// clock.advance(Duration::from_secs(3600));
/// assert_eq!(clock.now().duration_since(t0).unwrap(), Duration::from_secs(3600));
/// ```
#[derive(Clone)]
pub struct ManualClock {
    now: Arc<Mutex<SystemTime>>,
}

impl ManualClock {
    /// A clock standing at the current system time.
    ///
    /// ```
    /// # use herald::bridge::ManualClock;
    /// let clock = ManualClock::new();
    /// # drop(clock);
    /// ```
    pub fn new() -> ManualClock {
        ManualClock::at(SystemTime::now())
    }

    /// A clock standing at `t`.
    ///
    /// ```
    /// # use herald::bridge::{Clock, ManualClock};
    /// let clock = ManualClock::at(std::time::UNIX_EPOCH);
    /// assert_eq!(clock.now(), std::time::UNIX_EPOCH);
    /// ```
    pub fn at(t: SystemTime) -> ManualClock {
        ManualClock {
            now: Arc::new(Mutex::new(t)),
        }
    }

    /// Moves the clock forward.
    ///
    /// ```
    /// # use herald::bridge::{Clock, ManualClock};
    /// let clock = ManualClock::at(std::time::UNIX_EPOCH);
    /// clock.advance(std::time::Duration::from_millis(5));
    /// assert_eq!(clock.now(), std::time::UNIX_EPOCH + std::time::Duration::from_millis(5));
    /// ```
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock();
        *now += by;
    }

    /// Sets the time (forward or back).
    ///
    /// ```
    /// # use herald::bridge::{Clock, ManualClock};
    /// let clock = ManualClock::new();
    /// clock.set(std::time::UNIX_EPOCH);
    /// assert_eq!(clock.now(), std::time::UNIX_EPOCH);
    /// ```
    pub fn set(&self, t: SystemTime) {
        *self.now.lock() = t;
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.now.lock()
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ManualClock").field(&self.now()).finish()
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> SystemTime {
        (**self).now()
    }
}
