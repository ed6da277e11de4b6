//! Every error of the hub, each handing back what it could not deliver.

use std::fmt;

/// Returned by [`NotificationStream::recv`](crate::NotificationStream::recv) and
/// [`recv_blocking`](crate::NotificationStream::recv_blocking).
///
/// ```
/// # use herald::{Notification, NotificationCenter, Overflow, RecvError};
/// # #[derive(Debug)] struct Ev(u32); impl Notification for Ev {}
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let center = NotificationCenter::new();
/// let mut events = center
///     .observer::<Ev>()
///     .policy(Overflow::DropOldest { capacity: 1 })
///     .stream();
/// for i in 0..3 {
///     center.post(Ev(i));
/// }
/// assert_eq!(events.recv().await.unwrap_err(), RecvError::Lagged(2)); // 0 and 1 were lost
/// assert_eq!(events.recv().await.unwrap().0, 2); // still subscribed
/// events.unsubscribe();
/// assert_eq!(events.recv().await.unwrap_err(), RecvError::Closed);
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvError {
    /// The stream's buffer overflowed and this many notifications were lost since the last
    /// receive (drop-oldest or drop-newest policy). The stream stays subscribed: receive again.
    Lagged(u64),
    /// The stream was closed: the center is gone, or the stream was unsubscribed, and every
    /// buffered notification has been received.
    Closed,
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Lagged(n) => write!(f, "receiver lagged behind and lost {n} notifications"),
            RecvError::Closed => f.write_str("notification stream closed"),
        }
    }
}

impl std::error::Error for RecvError {}

/// Returned by [`NotificationStream::try_recv`](crate::NotificationStream::try_recv).
///
/// ```
/// # use herald::{Notification, NotificationCenter, Overflow, RecvError, TryRecvError};
/// # #[derive(Debug)] struct Ev(u32); impl Notification for Ev {}
/// let center = NotificationCenter::new();
/// let mut events = center
///     .observer::<Ev>()
///     .policy(Overflow::DropOldest { capacity: 1 })
///     .stream();
/// assert_eq!(events.try_recv().unwrap_err(), TryRecvError::Empty);
/// center.post(Ev(1));
/// center.post(Ev(2)); // evicts 1
/// assert_eq!(events.try_recv().unwrap_err(), TryRecvError::Lagged(1));
/// assert_eq!(events.try_recv().unwrap().0, 2);
/// drop(center);
/// assert_eq!(events.try_recv().unwrap_err(), TryRecvError::Closed);
///
/// // A `RecvError` converts into the same case.
/// assert_eq!(TryRecvError::from(RecvError::Lagged(3)), TryRecvError::Lagged(3));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing is buffered right now.
    Empty,
    /// Notifications were lost to the overflow policy (see [`RecvError::Lagged`]).
    Lagged(u64),
    /// The stream is closed and drained.
    Closed,
}

impl TryRecvError {
    /// Whether the buffer was simply empty.
    ///
    /// ```
    /// # use herald::{Notification, NotificationCenter, Overflow};
    /// # #[derive(Debug)] struct Ev(u32); impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let mut events = center
    ///     .observer::<Ev>()
    ///     .policy(Overflow::DropOldest { capacity: 1 })
    ///     .stream();
    /// assert!(events.try_recv().unwrap_err().is_empty()); // nothing yet: try again later
    /// center.post(Ev(1));
    /// center.post(Ev(2));
    /// assert!(!events.try_recv().unwrap_err().is_empty()); // lagged: not simply empty
    /// ```
    pub fn is_empty(&self) -> bool {
        matches!(self, TryRecvError::Empty)
    }
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("no notification buffered"),
            TryRecvError::Lagged(n) => {
                write!(f, "receiver lagged behind and lost {n} notifications")
            }
            TryRecvError::Closed => f.write_str("notification stream closed"),
        }
    }
}

impl std::error::Error for TryRecvError {}

impl From<RecvError> for TryRecvError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Lagged(n) => TryRecvError::Lagged(n),
            RecvError::Closed => TryRecvError::Closed,
        }
    }
}

/// The item a [`NotificationStream`](crate::NotificationStream) yields as a
/// [`futures_core::Stream`] when notifications were lost: how many.
///
/// ```
/// use futures::StreamExt;
/// # use herald::{Lagged, Notification, NotificationCenter, Overflow};
/// # #[derive(Debug)] struct Ev(u32); impl Notification for Ev {}
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let center = NotificationCenter::new();
/// let mut events = center
///     .observer::<Ev>()
///     .policy(Overflow::DropOldest { capacity: 1 })
///     .stream();
/// for i in 0..3 {
///     center.post(Ev(i));
/// }
/// assert_eq!(events.next().await.unwrap().unwrap_err(), Lagged(2));
/// assert_eq!(events.next().await.unwrap().unwrap().0, 2);
/// drop(center);
/// assert!(events.next().await.is_none()); // closed and drained: the stream ends
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lagged(pub u64);

impl fmt::Display for Lagged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "receiver lagged behind and lost {} notifications",
            self.0
        )
    }
}

impl std::error::Error for Lagged {}
