//! Faults the mock reproduces on demand.

use std::time::{Duration, SystemTime};

/// A scripted answer for the next push (or broadcast) request, in place of validation.
/// Queue them with [`MockApns::script`](crate::mock::MockApns::script); they are consumed in
/// order, one per request, whatever connection the request arrives on. Answers scripted for one
/// device token ([`MockApns::script_for_device`](crate::mock::MockApns::script_for_device)) come
/// first for pushes to that token.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use herald::mock::{Fault, MockApns};
/// let mock = MockApns::start().await.unwrap();
/// mock.script(Fault::reject(503, "ServiceUnavailable"));
/// mock.script(Fault::Stall);
/// assert_eq!(mock.scripted(), 2);
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer this status and `{"reason": reason}` (plus `timestamp` when given).
    Reject {
        /// HTTP status.
        status: u16,
        /// The reason string, sent as-is (it need not be one Apple uses today).
        reason: String,
        /// For 410: when the token became invalid.
        timestamp: Option<SystemTime>,
    },
    /// Answer 200 without validating (useful to script a sequence).
    Accept,
    /// Never answer: the stream stays open until the client resets it or the connection closes.
    Stall,
    /// Answer after this delay (real time), then validate as usual.
    Delay(Duration),
    /// Close the TCP connection without a GOAWAY while the request is in flight.
    DropConnection,
    /// Reset the stream with RST_STREAM (REFUSED_STREAM: safe for the client to retry).
    RefuseStream,
    /// Close the connection at once with GOAWAY (NO_ERROR) and `{"reason": reason}` as debug
    /// data, instead of answering: this and every other in-flight request on it fail.
    GoAway {
        /// The debug data's reason.
        reason: String,
    },
}

impl Fault {
    /// Shorthand for [`Fault::Reject`] without timestamp.
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
    /// use herald::mock::{Fault, MockApns};
    /// use std::time::Duration;
    /// let fault = Fault::reject(503, "ServiceUnavailable");
    /// assert_eq!(
    ///     fault,
    ///     Fault::Reject { status: 503, reason: "ServiceUnavailable".to_owned(), timestamp: None }
    /// );
    /// let mock = MockApns::start().await?;
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
    /// mock.script(fault);
    /// assert!(!client.send(push(&device)).await.is_accepted());
    /// let answer = mock.next_push(Duration::from_secs(10)).await.unwrap();
    /// assert_eq!((answer.status, answer.reason.as_deref()), (503, Some("ServiceUnavailable")));
    /// assert_eq!(answer.timestamp_ms, None);
    /// # Ok(()) }
    /// ```
    pub fn reject(status: u16, reason: &str) -> Self {
        Fault::Reject {
            status,
            reason: reason.to_owned(),
            timestamp: None,
        }
    }

    /// Shorthand for [`Fault::GoAway`].
    ///
    /// ```
    /// # #[cfg(not(feature = "apns"))] fn main() {}
    /// # #[cfg(feature = "apns")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
    /// use herald::mock::{Fault, MockApns};
    /// use std::time::Duration;
    /// let fault = Fault::goaway("Shutdown");
    /// assert_eq!(fault, Fault::GoAway { reason: "Shutdown".to_owned() });
    /// let mock = MockApns::start().await?;
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
    /// mock.script(fault);
    /// assert!(!client.send(push(&device)).await.is_accepted()); // the connection closed instead
    /// assert_eq!(mock.next_push(Duration::from_secs(10)).await.unwrap().status, 0); // no answer
    /// assert_eq!(mock.stats().goaways, 1);
    /// # Ok(()) }
    /// ```
    pub fn goaway(reason: &str) -> Self {
        Fault::GoAway {
            reason: reason.to_owned(),
        }
    }
}

/// Added latency before each answer (real time).
///
/// ```
/// use herald::mock::Latency;
/// use std::time::Duration;
/// let l = Latency::Uniform { min: Duration::from_millis(1), max: Duration::from_millis(5) };
/// assert!(l.sample() >= Duration::from_millis(1) && l.sample() <= Duration::from_millis(5));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Latency {
    /// No added latency (the default).
    #[default]
    None,
    /// The same delay for every answer.
    Fixed(Duration),
    /// A delay drawn uniformly from `min..=max` for each answer.
    Uniform {
        /// Shortest delay.
        min: Duration,
        /// Longest delay.
        max: Duration,
    },
}

impl Latency {
    /// One delay drawn from this distribution.
    ///
    /// ```
    /// use herald::mock::Latency;
    /// use std::time::Duration;
    /// let ms = Duration::from_millis;
    /// assert_eq!(Latency::None.sample(), Duration::ZERO);
    /// assert_eq!(Latency::Fixed(ms(5)).sample(), ms(5));
    /// let jitter = Latency::Uniform { min: ms(1), max: ms(5) };
    /// for _ in 0..1000 {
    ///     let d = jitter.sample();
    ///     assert!(ms(1) <= d && d <= ms(5));
    /// }
    /// // A range with `max` below `min` always gives `min`.
    /// assert_eq!(Latency::Uniform { min: ms(5), max: ms(1) }.sample(), ms(5));
    /// ```
    pub fn sample(&self) -> Duration {
        match *self {
            Latency::None => Duration::ZERO,
            Latency::Fixed(d) => d,
            Latency::Uniform { min, max } if max > min => {
                let span = (max - min).as_nanos() as f64;
                min + Duration::from_nanos((rand::random::<f64>() * span) as u64)
            }
            Latency::Uniform { min, .. } => min,
        }
    }
}
