//! Every error of the hub, each handing back what it could not deliver.

use std::fmt;

/// Returned by [`NotificationStream::recv`](crate::NotificationStream::recv) and
/// [`recv_blocking`](crate::NotificationStream::recv_blocking).
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
