//! The mock's notion of "now", injectable so tests can cover hours of token refresh in milliseconds.

use parking_lot::Mutex;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Where the mock reads the current time: the age of a JWT's `iat` (ExpiredProviderToken
/// after one hour) and the recorded `received_at` of each request. The refresh rule
/// (TooManyProviderTokenUpdates within 20 minutes) compares a new token's `iat` with the
/// connection's previous token's `iat`, so it follows the tokens' own times, not this clock.
///
/// Latency and stalls use real (tokio) time, not this clock.
///
/// [`SystemClock`] and [`MockClock`] cover most tests; implement it to drive the mock from a
/// clock of your own.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), herald::mock::MockError> {
/// use herald::mock::{Clock, MockApns};
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
///
/// // A clock stuck on one instant.
/// #[derive(Debug)]
/// struct Frozen(SystemTime);
///
/// impl Clock for Frozen {
///     fn now(&self) -> SystemTime {
///         self.0
///     }
/// }
///
/// let at = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
/// let mock = MockApns::builder().clock(Frozen(at)).start().await?;
/// assert_eq!(mock.clock().now(), at); // the mock reads its time from it
/// # Ok(()) }
/// ```
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current instant as wall-clock time.
    ///
    /// ```
    /// use herald::mock::{Clock, MockClock, SystemClock};
    /// use std::time::{Duration, UNIX_EPOCH};
    ///
    /// let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    /// // The mock holds its clock as a trait object.
    /// let clocks: [Box<dyn Clock>; 2] = [Box::new(MockClock::at(t)), Box::new(SystemClock)];
    /// assert_eq!(clocks[0].now(), t);
    /// assert!(clocks[1].now() > t); // the real time, after November 2023
    /// ```
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
    ///
    /// ```
    /// use herald::mock::{Clock, MockClock};
    /// use std::time::{Duration, UNIX_EPOCH};
    ///
    /// let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    /// let clock = MockClock::at(start);
    /// assert_eq!(clock.now(), start);
    /// assert_eq!(clock.now(), start); // frozen: it does not move on its own
    /// ```
    pub fn at(start: SystemTime) -> Self {
        MockClock {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// A clock frozen at the current real time.
    ///
    /// ```
    /// use herald::mock::{Clock, MockClock};
    /// use std::time::SystemTime;
    ///
    /// let before = SystemTime::now();
    /// let clock = MockClock::starting_now();
    /// let after = SystemTime::now();
    /// let start = clock.now();
    /// assert!(before <= start && start <= after);
    /// assert_eq!(clock.now(), start); // and stays there until moved
    /// ```
    pub fn starting_now() -> Self {
        Self::at(SystemTime::now())
    }

    /// Moves the clock forward by `by`.
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
    /// use herald::mock::{Clock, MockApns, MockClock};
    /// use std::time::Duration;
    /// let clock = MockClock::starting_now();
    /// let mock = MockApns::builder().clock(clock.clone()).start().await?;
    /// # let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
    /// # let client = ApnsClient::builder()
    /// #     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    /// #     .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
    /// #     .retry(RetryPolicy::none())
    /// #     .build()?;
    /// # let push = |token: &str| Push::builder(token, "com.example.app")
    /// #     .payload(&Payload::alert("Hi")).and_then(|b| b.build()).unwrap();
    /// // `client` is herald's ApnsClient for mock.url(), trusting mock.ca_pem(), with a key from
    /// // mock.generate_key; `push(token)` builds an alert for com.example.app.
    /// let device = "a1".repeat(32);
    /// mock.register_device(&device, "com.example.app");
    /// assert!(client.send(push(&device)).await.is_accepted());
    /// let start = clock.now();
    /// // Two hours pass for the mock in no time: the client's provider token is now too old.
    /// clock.advance(Duration::from_secs(2 * 3600));
    /// assert_eq!(mock.clock().now(), start + Duration::from_secs(2 * 3600));
    /// let _ = client.send(push(&device)).await;
    /// assert_eq!(mock.pushes()[1].reason.as_deref(), Some("ExpiredProviderToken"));
    /// # Ok(()) }
    /// ```
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock();
        *now += by;
    }

    /// Sets the clock to `to` (which may be earlier than the current value).
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
    /// use herald::mock::{Clock, MockApns, MockClock};
    /// use std::time::{Duration, UNIX_EPOCH};
    /// let clock = MockClock::starting_now();
    /// let mock = MockApns::builder().clock(clock.clone()).start().await?;
    /// # let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
    /// # let client = ApnsClient::builder()
    /// #     .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
    /// #     .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
    /// #     .retry(RetryPolicy::none())
    /// #     .build()?;
    /// # let push = |token: &str| Push::builder(token, "com.example.app")
    /// #     .payload(&Payload::alert("Hi")).and_then(|b| b.build()).unwrap();
    /// // `client` is herald's ApnsClient for mock.url(), trusting mock.ca_pem(), with a key from
    /// // mock.generate_key; `push(token)` builds an alert for com.example.app.
    /// let device = "a1".repeat(32);
    /// mock.register_device(&device, "com.example.app");
    /// // Back to November 2023 (earlier than now): requests are stamped with that time, and
    /// // provider tokens are judged by it. The client's token, minted now, is years ahead of
    /// // the mock's clock: 403 InvalidProviderToken (more than an hour from its current time).
    /// let then = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    /// clock.set(then);
    /// assert_eq!(clock.now(), then);
    /// assert!(!client.send(push(&device)).await.is_accepted());
    /// let seen = &mock.requests()[0];
    /// assert_eq!(seen.received_at, then);
    /// assert_eq!((seen.status, seen.reason.as_deref()), (403, Some("InvalidProviderToken")));
    /// // Set back to the present, the next push is accepted.
    /// clock.set(std::time::SystemTime::now());
    /// assert!(client.send(push(&device)).await.is_accepted());
    /// # Ok(()) }
    /// ```
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
