//! Rate limits by key (governor's GCRA), on tokio's clock so tests can pause and advance time,
//! and a penalty box for addresses that failed verification too often.

use std::collections::HashMap;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::{NoOpMiddleware, StateInformationMiddleware};
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};
use parking_lot::Mutex;

/// Time since the limiter was made, read from tokio's clock (`tokio::time::pause` and
/// `advance` move it in tests; in production it is the monotonic clock).
#[derive(Debug, Clone)]
pub(super) struct TokioClock {
    origin: tokio::time::Instant,
}

impl TokioClock {
    fn new() -> TokioClock {
        TokioClock {
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        tokio::time::Instant::now().saturating_duration_since(self.origin)
    }
}

/// How many keys a limiter holds before it drops those whose bucket is full again.
const PRUNE_AT: usize = 10_000;
/// Checks between two prunings regardless of size.
const PRUNE_EVERY: u64 = 4096;

/// `requests` per `per` as a GCRA quota: a burst of `requests`, one more every `per / requests`.
pub(super) fn quota(requests: u32, per: Duration) -> Quota {
    let burst = NonZeroU32::new(requests).unwrap_or(NonZeroU32::MIN);
    let period = (per / burst.get()).max(Duration::from_nanos(1));
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(burst))
        .allow_burst(burst)
}

type Gcra<K, MW> = RateLimiter<K, HashMapStateStore<K>, TokioClock, MW>;

/// A keyed limiter that says how long to wait when it refuses.
pub(super) struct Limiter<K: Hash + Eq + Clone> {
    gcra: Gcra<K, NoOpMiddleware<Duration>>,
    clock: TokioClock,
    checks: AtomicU64,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    pub(super) fn new(requests: u32, per: Duration) -> Limiter<K> {
        let clock = TokioClock::new();
        Limiter {
            gcra: RateLimiter::new(
                quota(requests, per),
                HashMapStateStore::default(),
                clock.clone(),
            ),
            clock,
            checks: AtomicU64::new(0),
        }
    }

    /// Takes one cell for `key`, or the exact time until one is available.
    pub(super) fn check(&self, key: &K) -> Result<(), Duration> {
        prune(
            &self.checks,
            || self.gcra.len(),
            || self.gcra.retain_recent(),
        );
        self.gcra
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

fn prune(checks: &AtomicU64, len: impl Fn() -> usize, retain: impl Fn()) {
    let n = checks.fetch_add(1, Ordering::Relaxed);
    if n % PRUNE_EVERY == PRUNE_EVERY - 1 || len() > PRUNE_AT {
        retain();
    }
}

/// Failed verifications per key. After the allowance is spent the key is refused before
/// verification until governor would allow one more failure, exactly.
pub(super) struct FailureLimiter<K: Hash + Eq + Clone> {
    gcra: Gcra<K, StateInformationMiddleware>,
    clock: TokioClock,
    /// Keys refused until this time (by `clock`).
    blocked: Mutex<HashMap<K, Duration>>,
    checks: AtomicU64,
}

impl<K: Hash + Eq + Clone> FailureLimiter<K> {
    pub(super) fn new(failures: u32, per: Duration) -> FailureLimiter<K> {
        let clock = TokioClock::new();
        FailureLimiter {
            gcra: Gcra::<K, NoOpMiddleware<Duration>>::new(
                quota(failures, per),
                HashMapStateStore::default(),
                clock.clone(),
            )
            .with_middleware::<StateInformationMiddleware>(),
            clock,
            blocked: Mutex::new(HashMap::new()),
            checks: AtomicU64::new(0),
        }
    }

    /// `Err(wait)` while `key` is refused.
    pub(super) fn blocked(&self, key: &K) -> Result<(), Duration> {
        let now = self.clock.now();
        let mut blocked = self.blocked.lock();
        match blocked.get(key) {
            Some(until) if *until > now => Err(*until - now),
            Some(_) => {
                blocked.remove(key);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Records a failed verification. `Err(wait)` when this failure spent the allowance (the
    /// key is refused from now on for `wait`).
    pub(super) fn failed(&self, key: &K) -> Result<(), Duration> {
        prune(&self.checks, || self.gcra.len(), || self.prune());
        let until = match self.gcra.check_key(key) {
            Ok(state) if state.remaining_burst_capacity() > 0 => return Ok(()),
            // The last failure allowed: ask governor when the next would be (a refused check
            // changes nothing), and refuse the key until then.
            Ok(_) => match self.gcra.check_key(key) {
                Err(not_until) => not_until.earliest_possible(),
                // The clock crossed the boundary between the two checks: one more is allowed.
                Ok(_) => return Ok(()),
            },
            Err(not_until) => not_until.earliest_possible(),
        };
        let now = self.clock.now();
        self.blocked.lock().insert(key.clone(), until);
        if until > now {
            Err(until - now)
        } else {
            Ok(())
        }
    }

    fn prune(&self) {
        self.gcra.retain_recent();
        let now = self.clock.now();
        self.blocked.lock().retain(|_, until| *until > now);
    }
}

/// `Retry-After` in whole seconds, never shorter than `wait` (rounded up, at least 1).
pub(super) fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1900)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_nanos(1)), 1);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_block_exactly_until_governor_allows_one_more() {
        let limiter = FailureLimiter::new(2, Duration::from_secs(3));
        assert!(limiter.failed(&1).is_ok());
        let wait = limiter.failed(&1).unwrap_err();
        assert_eq!(wait, Duration::from_millis(1500));
        assert_eq!(limiter.blocked(&1), Err(wait));
        assert!(limiter.blocked(&2).is_ok());
        tokio::time::advance(wait).await;
        assert!(limiter.blocked(&1).is_ok());
        // The one failure allowed now spends the allowance again.
        assert!(limiter.failed(&1).is_err());
    }
}
