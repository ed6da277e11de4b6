//! [`ClonedStream`]: a stream that receives its own clone of each value, for notifications
//! that are `Clone`, over the type's value ring (`value_ring.rs`) when its policy allows.

use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use crate::hub::engine::{Core, Cx, Delivery, Filter, Kind, Meta, NEEDS_CONTEXT};
use crate::hub::overflow::Overflow;
use crate::hub::ring::Took;
use crate::hub::stats::BufferStats;
use crate::hub::stream::{NotificationStream, Parker, ring_serves};
use crate::hub::subscription::Subscription;
use crate::hub::value_ring::{Member, ValueReader, ValueRing};
use crate::{Lagged, Notification, ObserverId, RecvError, SenderId, TryRecvError};

/// The value-ring delivery kind: the first entry of a value ring that a post reaches clones
/// the value into the ring once, for every stream on it.
pub(crate) struct ValueRinged<N> {
    ring: Arc<ValueRing<N>>,
    member: Arc<Member<N>>,
}

impl<N: Notification + Clone> Kind<N> for ValueRinged<N> {
    fn call(&self, value: &N, cx: &mut Cx<'_, N>, _meta: &Meta) -> Delivery {
        if !cx.first_in_ring(self.ring.bit()) {
            return Delivery::Skipped;
        }
        // Cloned here, before the ring's lock: `clone` is user code.
        cx.ring_posted(self.ring.post(value.clone(), cx.generation()))
    }

    fn needs(&self) -> u8 {
        NEEDS_CONTEXT
    }

    fn retire(&self, sink: &Arc<std::sync::atomic::AtomicU64>) {
        self.ring.leave(&self.member);
        self.member.retire(sink);
    }

    fn buffer_stats(&self, id: ObserverId) -> Option<BufferStats> {
        Some(self.ring.stats(&self.member, id))
    }

    fn ring(&self) -> u64 {
        self.ring.bit()
    }
}

/// A stream's backing: its cursor into the value ring, or a stream of shared values whose
/// receives it clones.
enum Backing<N> {
    Ring {
        reader: ValueReader<N>,
        policy: Overflow<N>,
        parker: Option<(Arc<Parker>, Waker)>,
        subscription: Subscription,
    },
    Shared(NotificationStream<N>),
}

/// Subscribes a cloned stream: on the type's value ring when the policy is drop-oldest or
/// latest-only with no sender or filter and a capacity up to 65 536, else as a
/// [`NotificationStream`] whose receives it clones.
pub(crate) fn subscribe<N: Notification + Clone>(
    core: &Arc<Core<N>>,
    sender: Option<SenderId>,
    filter: Option<Filter<N>>,
    priority: i32,
    replay: bool,
    policy: Overflow<N>,
) -> ClonedStream<N> {
    let ring = if ring_serves(&policy, sender, filter.is_some(), replay) {
        core.rings().values(policy.capacity())
    } else {
        None
    };
    let Some(ring) = ring else {
        let (id, inner, _) =
            crate::hub::stream::subscribe(core, sender, filter, priority, replay, policy);
        let stream = NotificationStream::new(inner, Subscription::of(core, id));
        return ClonedStream {
            backing: Backing::Shared(stream),
        };
    };
    let member = Arc::new(Member::new());
    let kind = ValueRinged {
        ring: ring.clone(),
        member: member.clone(),
    };
    let id = core.subscribe_with(
        core.entry(priority, None, None, kind),
        replay,
        |generation| ring.join(&member, generation),
    );
    let report_lag = matches!(policy, Overflow::DropOldest { .. });
    ClonedStream {
        backing: Backing::Ring {
            reader: ValueReader::new(ring, member, report_lag),
            policy,
            parker: None,
            subscription: Subscription::of(core, id),
        },
    }
}

/// An async stream of one `Clone` notification type that receives values, not `Arc`s.
///
/// Made by [`ObserverBuilder::cloned_stream`](crate::ObserverBuilder::cloned_stream) or
/// [`NotificationCenter::cloned_stream`](crate::NotificationCenter::cloned_stream). It offers
/// what [`NotificationStream`] offers, with `N` in place of `Arc<N>`:
/// [`recv`](Self::recv)`.await`, [`try_recv`](Self::try_recv),
/// [`recv_blocking`](Self::recv_blocking), and [`futures_core::Stream`] (items are
/// `Result<N, Lagged>`).
///
/// # Values, not `Arc`s
/// With drop-oldest (the default) or latest-only, no sender or filter, and a capacity up to
/// 65 536, cloned streams of one type and capacity share a *value ring*: a post clones the
/// value into the ring once, and each stream clones it out. No allocation per post and no
/// reference count moves, which is what a small notification (an id, a few numbers) wants:
/// this is `tokio::sync::broadcast`'s model. Unlike tokio, which drops a value once every
/// receiver has read it (a shared count each read decrements), the ring counts no reads and
/// keeps each value until a later post overwrites its slot (up to about twice the capacity of
/// values), and a [`NotificationStream`] frees a value as soon as every stream has taken it:
/// for large values, prefer the `Arc`s.
///
/// Other policies (and filtered streams) buffer `Arc<N>` privately, as a
/// [`NotificationStream`] does, and clone on receive.
///
/// A stream that is unsubscribed (or whose center is dropped) receives no later post and
/// keeps what it had not taken, until taken; on a value ring a later post can still evict the
/// oldest of those values, reported as `Lagged` like any loss. `N::clone` must not post or
/// subscribe to the same notification type: it runs while the ring is being read.
///
/// ```
/// use herald::{NotificationCenter, Notification};
///
/// #[derive(Debug, Clone, PartialEq)]
/// struct Price(u32);
/// impl Notification for Price {}
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let center = NotificationCenter::new();
/// let mut prices = center.cloned_stream::<Price>();
/// center.post(Price(10));
/// center.post(Price(11));
/// assert_eq!(prices.recv().await.unwrap(), Price(10));
/// assert_eq!(prices.try_recv().unwrap(), Price(11));
/// # }
/// ```
#[must_use = "a stream receives nothing once dropped"]
pub struct ClonedStream<N> {
    backing: Backing<N>,
}

impl<N: Notification + Clone> ClonedStream<N> {
    fn take(&mut self, waker: Option<&Waker>) -> Took<N> {
        match &mut self.backing {
            Backing::Ring { reader, .. } => reader.take(waker),
            Backing::Shared(s) => match waker {
                Some(w) => match s.poll_recv(&mut Context::from_waker(w)) {
                    Poll::Ready(Ok(v)) => Took::Value(Arc::unwrap_or_clone(v)),
                    Poll::Ready(Err(RecvError::Lagged(n))) => Took::Lagged(n),
                    Poll::Ready(Err(RecvError::Closed)) => Took::Closed,
                    Poll::Pending => Took::Empty,
                },
                None => match s.try_recv() {
                    Ok(v) => Took::Value(Arc::unwrap_or_clone(v)),
                    Err(TryRecvError::Lagged(n)) => Took::Lagged(n),
                    Err(TryRecvError::Closed) => Took::Closed,
                    Err(TryRecvError::Empty) => Took::Empty,
                },
            },
        }
    }

    /// Receives the next notification, waiting for one. Errors and cancel-safety as for
    /// [`NotificationStream::recv`].
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # #[derive(Clone)] struct Ev(u32); impl Notification for Ev {}
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let center = NotificationCenter::new();
    /// let mut events = center.cloned_stream::<Ev>();
    /// center.post(Ev(1));
    /// assert_eq!(events.recv().await.unwrap().0, 1);
    /// # }
    /// ```
    pub async fn recv(&mut self) -> Result<N, RecvError> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next notification (the building block of [`recv`](Self::recv)).
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # #[derive(Clone)] struct Ev(u32); impl Notification for Ev {}
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let center = NotificationCenter::new();
    /// let mut events = center.cloned_stream::<Ev>();
    /// center.post(Ev(1));
    /// let v = std::future::poll_fn(|cx| events.poll_recv(cx)).await.unwrap();
    /// assert_eq!(v.0, 1);
    /// # }
    /// ```
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<N, RecvError>> {
        match self.take(Some(cx.waker())) {
            Took::Value(v) => Poll::Ready(Ok(v)),
            Took::Lagged(n) => Poll::Ready(Err(RecvError::Lagged(n))),
            Took::Closed => Poll::Ready(Err(RecvError::Closed)),
            Took::Empty => Poll::Pending,
        }
    }

    /// Receives without waiting.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # #[derive(Clone)] struct Ev(u32); impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let mut events = center.cloned_stream::<Ev>();
    /// assert!(matches!(events.try_recv(), Err(e) if e.is_empty()));
    /// center.post(Ev(1));
    /// assert_eq!(events.try_recv().unwrap().0, 1);
    /// ```
    pub fn try_recv(&mut self) -> Result<N, TryRecvError> {
        match self.take(None) {
            Took::Value(v) => Ok(v),
            Took::Lagged(n) => Err(TryRecvError::Lagged(n)),
            Took::Closed => Err(TryRecvError::Closed),
            Took::Empty => Err(TryRecvError::Empty),
        }
    }

    /// Receives, blocking the current thread until a notification arrives. Do not call it
    /// from async code (use [`recv`](Self::recv) there).
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # #[derive(Clone)] struct Ev(u32); impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let mut events = center.cloned_stream::<Ev>();
    /// let poster = center.clone();
    /// std::thread::spawn(move || poster.post(Ev(5)));
    /// assert_eq!(events.recv_blocking().unwrap().0, 5);
    /// ```
    pub fn recv_blocking(&mut self) -> Result<N, RecvError> {
        match &mut self.backing {
            Backing::Shared(s) => s.recv_blocking().map(Arc::unwrap_or_clone),
            Backing::Ring { reader, parker, .. } => loop {
                let (parker, waker) = parker.get_or_insert_with(|| {
                    let parker = Arc::new(Parker::default());
                    (parker.clone(), Waker::from(parker))
                });
                return match reader.take(Some(waker)) {
                    Took::Empty => {
                        parker.wait();
                        continue;
                    }
                    Took::Value(v) => Ok(v),
                    Took::Lagged(n) => Err(RecvError::Lagged(n)),
                    Took::Closed => Err(RecvError::Closed),
                };
            },
        }
    }

    /// Values waiting to be received.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # #[derive(Clone)] struct Ev(u32); impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let events = center.cloned_stream::<Ev>();
    /// center.post(Ev(1));
    /// center.post(Ev(2));
    /// assert_eq!(events.len(), 2);
    /// assert!(!events.is_empty());
    /// ```
    pub fn len(&self) -> usize {
        match &self.backing {
            Backing::Ring { reader, .. } => reader.len(),
            Backing::Shared(s) => s.len(),
        }
    }

    /// Whether nothing is waiting to be received.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # #[derive(Clone)] struct Ev(u32); impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// assert!(center.cloned_stream::<Ev>().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffer's capacity.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification, Overflow};
    /// # #[derive(Clone)] struct Ev(u32); impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let events = center
    ///     .observer::<Ev>()
    ///     .policy(Overflow::DropOldest { capacity: 8 })
    ///     .cloned_stream();
    /// assert_eq!(events.capacity(), 8);
    /// ```
    pub fn capacity(&self) -> usize {
        match &self.backing {
            Backing::Ring { reader, .. } => reader.ring().capacity(),
            Backing::Shared(s) => s.capacity(),
        }
    }

    /// This subscriber's counters (depth, delivered, dropped).
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification, Overflow};
    /// # #[derive(Clone)] struct Ev(u32); impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let events = center.observer::<Ev>().policy(Overflow::Latest).cloned_stream();
    /// center.post(Ev(1));
    /// center.post(Ev(2));
    /// let stats = events.stats();
    /// assert_eq!((stats.depth, stats.dropped), (1, 1));
    /// ```
    pub fn stats(&self) -> BufferStats {
        match &self.backing {
            Backing::Ring {
                reader,
                subscription,
                ..
            } => reader.ring().stats(reader.member(), subscription.id()),
            Backing::Shared(s) => s.stats(),
        }
    }

    /// The subscription's id.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # #[derive(Clone)] struct Ev(u32); impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let events = center.cloned_stream::<Ev>();
    /// assert_eq!(center.stats::<Ev>().buffers[0].observer, events.id());
    /// ```
    pub fn id(&self) -> ObserverId {
        match &self.backing {
            Backing::Ring { subscription, .. } => subscription.id(),
            Backing::Shared(s) => s.id(),
        }
    }

    /// Whether the stream is closed (it may still hold values to receive).
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # #[derive(Clone)] struct Ev(u32); impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let mut events = center.cloned_stream::<Ev>();
    /// assert!(!events.is_closed());
    /// events.unsubscribe();
    /// assert!(events.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        match &self.backing {
            Backing::Ring { reader, .. } => reader.is_closed(),
            Backing::Shared(s) => s.is_closed(),
        }
    }

    /// Unsubscribes now (the same as dropping the stream, except that values already
    /// buffered can still be received; then `recv` reports `Closed`).
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification, TryRecvError};
    /// # #[derive(Clone)] struct Ev(u32); impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let mut events = center.cloned_stream::<Ev>();
    /// center.post(Ev(1));
    /// events.unsubscribe();
    /// center.post(Ev(2)); // not for this stream any more
    /// assert_eq!(events.try_recv().unwrap().0, 1);
    /// assert!(matches!(events.try_recv(), Err(TryRecvError::Closed)));
    /// ```
    pub fn unsubscribe(&mut self) {
        match &mut self.backing {
            Backing::Ring { subscription, .. } => subscription.unsubscribe_now(),
            Backing::Shared(s) => s.unsubscribe(),
        }
    }
}

impl<N: Notification + Clone> futures_core::Stream for ClonedStream<N> {
    type Item = Result<N, Lagged>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.get_mut().poll_recv(cx) {
            Poll::Ready(Ok(v)) => Poll::Ready(Some(Ok(v))),
            Poll::Ready(Err(RecvError::Lagged(n))) => Poll::Ready(Some(Err(Lagged(n)))),
            Poll::Ready(Err(RecvError::Closed)) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<N> fmt::Debug for ClonedStream<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.backing {
            Backing::Ring {
                reader,
                policy,
                subscription,
                ..
            } => f
                .debug_struct("ClonedStream")
                .field("id", &subscription.id())
                .field("capacity", &reader.ring().capacity())
                .field("policy", policy)
                .field("value_ring", &true)
                .finish_non_exhaustive(),
            Backing::Shared(s) => f.debug_tuple("ClonedStream").field(s).finish(),
        }
    }
}
