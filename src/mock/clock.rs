//! The mock's notion of "now", injectable so tests can cover hours of token refresh in milliseconds.

use parking_lot::Mutex;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Where the mock reads the current time for every time-based rule: JWT `iat` age
/// (ExpiredProviderToken after one hour), token refresh frequency (TooManyProviderTokenUpdates within
/// 20 minutes) and the recorded `received_at` of each request.
///
/// Latency and stalls use real (tokio) time, not this clock.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current instant as wall-clock time.
    fn now(&self) -> SystemTime;
}

/// The real clock ([`SystemTime::now`]). The default.
///
/// ```
/// use herald::mock::{Clock, SystemClock};
/// assert!(SystemClock.now() > std::time::UNIX_EPOCH);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told. Clones share the same time, so a test keeps one clone and
/// hands the other to [`MockApnsBuilder::clock`](crate::mock::MockApnsBuilder::clock).
///
/// ```
/// use herald::mock::{Clock, MockClock};
/// use std::time::{Duration, UNIX_EPOCH};
///
/// let clock = MockClock::at(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
/// let handle = clock.clone();
/// handle.advance(Duration::from_secs(3600));
/// assert_eq!(clock.now(), UNIX_EPOCH + Duration::from_secs(1_700_003_600));
/// ```
#[derive(Debug, Clone)]
pub struct MockClock {
    now: Arc<Mutex<SystemTime>>,
}

impl MockClock {
    /// A clock frozen at `start`.
    pub fn at(start: SystemTime) -> Self {
        MockClock {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// A clock frozen at the current real time.
    pub fn starting_now() -> Self {
        Self::at(SystemTime::now())
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock();
        *now += by;
    }

    /// Sets the clock to `to` (which may be earlier than the current value).
    pub fn set(&self, to: SystemTime) {
        *self.now.lock() = to;
    }
}

impl Default for MockClock {
    fn default() -> Self {
        Self::starting_now()
    }
}

impl Clock for MockClock {
    fn now(&self) -> SystemTime {
        *self.now.lock()
    }
}
