//! Buffered delivery: [`NotificationStream`] and the bounded buffer behind it.

use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use crate::hub::engine::{Cx, Delivery, Kind, Meta, WaitForRoom};
use crate::hub::overflow::{Overflow, PolicyKind};
use crate::hub::stats::BufferStats;
use crate::hub::sync::{AtomicU64, AtomicUsize, Condvar, Mutex, Ordering};
use crate::{Lagged, ObserverId, RecvError, Subscription, TryRecvError};

/// What happened to a value offered to a buffer.
pub(crate) enum PushResult {
    /// Buffered.
    Accepted,
    /// Buffered, and another value was lost to make room (evicted or replaced).
    AcceptedWithLoss,
    /// Refused by the policy (drop-newest).
    Refused,
    /// Refused because a backpressure buffer is full.
    Full,
    /// The subscriber is gone.
    Closed,
}

struct State<N> {
    queue: VecDeque<Arc<N>>,
    /// Key hashes parallel to `queue`, for coalesce-by-key only.
    keys: VecDeque<u64>,
    /// Values lost before the front of the queue (drop-oldest, coalesce): reported first.
    lagged: u64,
    /// Values refused by drop-newest, as (values accepted before the gap, how many lost):
    /// reported when the receiver reaches that point.
    gaps: VecDeque<(u64, u64)>,
    pushed: u64,
    popped: u64,
    closed: bool,
    /// Set when the subscriber left the channel: later receives count here.
    sink: Option<Arc<std::sync::atomic::AtomicU64>>,
    waker: Option<Waker>,
    blocked: usize,
}

/// The bounded buffer shared by posters and one receiver.
pub(crate) struct Buffer<N> {
    state: Mutex<State<N>>,
    cv: Condvar,
    space: tokio::sync::Notify,
    policy: Overflow<N>,
    kind: PolicyKind,
    capacity: usize,
    dropped: AtomicU64,
    /// Values taken by the receiver (into its hand or returned), written under the lock.
    delivered: AtomicU64,
    /// Values the receiver took as a batch and has not returned yet (receiver writes only).
    in_hand: AtomicUsize,
    /// The largest batch the receiver takes at once (0: one at a time).
    batch: usize,
}

impl<N> Buffer<N> {
    pub(crate) fn new(policy: Overflow<N>) -> Self {
        let capacity = policy.capacity();
        // The receiver may take up to a quarter of the capacity at once, for the policies whose
        // values only ever leave from the front. Values in its hand count against the capacity,
        // and with at most a quarter in hand a full buffer always has a queued value to evict.
        let batch = match policy.kind() {
            PolicyKind::DropOldest | PolicyKind::DropNewest | PolicyKind::Backpressure
                if capacity >= 8 =>
            {
                capacity / 4
            }
            _ => 0,
        };
        Buffer {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                keys: VecDeque::new(),
                lagged: 0,
                gaps: VecDeque::new(),
                pushed: 0,
                popped: 0,
                closed: false,
                sink: None,
                waker: None,
                blocked: 0,
            }),
            cv: Condvar::new(),
            space: tokio::sync::Notify::new(),
            kind: policy.kind(),
            policy,
            capacity,
            dropped: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            in_hand: AtomicUsize::new(0),
            batch,
        }
    }

    /// Values buffered: queued, plus in the receiver's hand.
    #[inline]
    fn held(&self, st: &State<N>) -> usize {
        st.queue.len() + self.in_hand.load(Ordering::Acquire)
    }

    /// Offers a value under the overflow policy.
    pub(crate) fn push(&self, value: &Arc<N>) -> PushResult {
        let mut st = self.state.lock();
        if st.closed {
            return PushResult::Closed;
        }
        let result = match self.kind {
            PolicyKind::DropOldest => {
                let lost = self.held(&st) >= self.capacity && !st.queue.is_empty();
                if lost {
                    st.queue.pop_front();
                    st.popped += 1;
                    st.lagged += 1;
                }
                st.queue.push_back(value.clone());
                st.pushed += 1;
                if lost {
                    PushResult::AcceptedWithLoss
                } else {
                    PushResult::Accepted
                }
            }
            PolicyKind::DropNewest => {
                if self.held(&st) >= self.capacity {
                    let at = st.pushed;
                    match st.gaps.back_mut() {
                        Some(gap) if gap.0 == at => gap.1 += 1,
                        _ => st.gaps.push_back((at, 1)),
                    }
                    PushResult::Refused
                } else {
                    st.queue.push_back(value.clone());
                    st.pushed += 1;
                    PushResult::Accepted
                }
            }
            PolicyKind::Backpressure => {
                if self.held(&st) >= self.capacity {
                    return PushResult::Full;
                }
                st.queue.push_back(value.clone());
                st.pushed += 1;
                PushResult::Accepted
            }
            PolicyKind::Latest => {
                let lost = st.queue.pop_front().is_some();
                st.queue.push_back(value.clone());
                st.pushed += 1;
                if lost {
                    st.popped += 1;
                }
                if lost {
                    PushResult::AcceptedWithLoss
                } else {
                    PushResult::Accepted
                }
            }
            PolicyKind::Coalesce => self.push_coalesced(&mut st, value),
        };
        if matches!(result, PushResult::AcceptedWithLoss | PushResult::Refused) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        self.wake(st);
        result
    }

    fn push_coalesced(&self, st: &mut State<N>, value: &Arc<N>) -> PushResult {
        let Overflow::CoalesceByKey(by) = &self.policy else {
            return PushResult::Closed;
        };
        let hash = (by.hash)(value);
        let found = st
            .keys
            .iter()
            .zip(st.queue.iter())
            .position(|(h, v)| *h == hash && (by.same)(v, value));
        if let Some(i) = found {
            st.queue[i] = value.clone();
            return PushResult::AcceptedWithLoss;
        }
        let lost = st.queue.len() >= self.capacity;
        if lost {
            st.queue.pop_front();
            st.keys.pop_front();
            st.popped += 1;
            st.lagged += 1;
        }
        st.queue.push_back(value.clone());
        st.keys.push_back(hash);
        st.pushed += 1;
        if lost {
            PushResult::AcceptedWithLoss
        } else {
            PushResult::Accepted
        }
    }

    /// Waits for room in a backpressure buffer, then pushes. False if the stream closed first.
    pub(crate) async fn push_wait(&self, value: &Arc<N>) -> bool {
        loop {
            let notified = self.space.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            match self.push(value) {
                PushResult::Full => notified.await,
                PushResult::Closed => return false,
                _ => return true,
            }
        }
    }

    /// Counts a value lost outside `push` (a full backpressure buffer on a synchronous post).
    pub(crate) fn count_dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    fn wake(&self, mut st: crate::hub::sync::MutexGuard<'_, State<N>>) {
        let waker = st.waker.take();
        let blocked = st.blocked != 0;
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
        if blocked {
            self.cv.notify_all();
        }
    }

    /// Takes the buffer out of its channel: no more pushes, the receiver drains then sees
    /// `Closed`. What it received so far, and receives from now on, counts into `sink` (the
    /// channel's total for subscribers that have left).
    pub(crate) fn retire(&self, sink: &Arc<std::sync::atomic::AtomicU64>) {
        let mut st = self.state.lock();
        if st.sink.is_none() {
            sink.fetch_add(
                self.delivered.load(Ordering::Relaxed),
                std::sync::atomic::Ordering::Relaxed,
            );
            st.sink = Some(sink.clone());
        }
        st.closed = true;
        self.wake(st);
        self.space.notify_waiters();
    }

    pub(crate) fn stats(&self, observer: ObserverId) -> BufferStats {
        let (depth, delivered) = {
            let st = self.state.lock();
            let in_hand = self.in_hand.load(Ordering::Acquire);
            (
                st.queue.len() + in_hand,
                self.delivered.load(Ordering::Relaxed) - in_hand as u64,
            )
        };
        BufferStats {
            observer,
            depth,
            capacity: self.capacity,
            delivered,
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

/// What a receive attempt found.
enum Took<N> {
    Value(Arc<N>),
    Lagged(u64),
    Closed,
    Empty,
}

/// An async stream of one notification type: the buffered delivery kind.
///
/// Made by [`ObserverBuilder::stream`](crate::ObserverBuilder::stream) or
/// [`NotificationCenter::subscribe`](crate::NotificationCenter::subscribe). One handle offers
/// every way to receive: [`recv`](Self::recv)`.await`, [`try_recv`](Self::try_recv),
/// [`recv_blocking`](Self::recv_blocking) and [`futures_core::Stream`] (items are
/// `Result<Arc<N>, Lagged>`; the stream ends when closed). Values are shared: one `Arc<N>` per
/// post, whatever the number of streams.
///
/// Dropping the stream unsubscribes it. It is closed when the center is dropped, after the
/// buffered values have been received.
///
/// ```
/// use herald::{NotificationCenter, Notification};
///
/// #[derive(Debug)]
/// struct Job(u32);
/// impl Notification for Job {}
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let center = NotificationCenter::new();
/// let mut jobs = center.subscribe::<Job>();
/// center.post(Job(1));
/// center.post(Job(2));
/// assert_eq!(jobs.recv().await.unwrap().0, 1);
/// assert_eq!(jobs.try_recv().unwrap().0, 2);
/// assert!(jobs.try_recv().unwrap_err().is_empty());
/// # }
/// ```
#[must_use = "a stream receives nothing once dropped"]
pub struct NotificationStream<N> {
    buffer: Arc<Buffer<N>>,
    /// Values taken from the buffer in one batch, returned one by one.
    local: VecDeque<Arc<N>>,
    subscription: Subscription,
}

impl<N: crate::Notification> NotificationStream<N> {
    pub(crate) fn new(buffer: Arc<Buffer<N>>, subscription: Subscription) -> Self {
        NotificationStream {
            buffer,
            local: VecDeque::new(),
            subscription,
        }
    }

    /// Takes the next value; when there is none, registers `waker` under the same lock.
    fn take(&mut self, waker: Option<&Waker>) -> Took<N> {
        if let Some(value) = self.local.pop_front() {
            self.buffer
                .in_hand
                .store(self.local.len(), Ordering::Release);
            if self.buffer.kind == PolicyKind::Backpressure {
                self.buffer.space.notify_waiters();
            }
            return Took::Value(value);
        }
        let mut st = self.buffer.state.lock();
        if st.lagged != 0 {
            let n = std::mem::take(&mut st.lagged);
            return Took::Lagged(n);
        }
        if let Some(&(at, n)) = st.gaps.front()
            && at == st.popped
        {
            st.gaps.pop_front();
            return Took::Lagged(n);
        }
        let Some(value) = st.queue.pop_front() else {
            if st.closed {
                return Took::Closed;
            }
            if let Some(w) = waker {
                match &st.waker {
                    Some(old) if old.will_wake(w) => {}
                    _ => st.waker = Some(w.clone()),
                }
            }
            return Took::Empty;
        };
        st.keys.pop_front();
        // Take a batch into the receiver's hand: one lock for many receives.
        // Never past a drop-newest gap: the receiver must meet it where it is.
        let before_gap = match st.gaps.front() {
            Some(&(at, _)) => (at.saturating_sub(st.popped + 1)) as usize,
            None => usize::MAX,
        };
        let extra = self.buffer.batch.min(st.queue.len()).min(before_gap);
        self.local.extend(st.queue.drain(..extra));
        let taken = 1 + extra as u64;
        st.popped += taken;
        self.buffer.in_hand.store(extra, Ordering::Release);
        // Only the receiver writes `delivered`, under the lock: no read-modify-write needed.
        let d = &self.buffer.delivered;
        d.store(d.load(Ordering::Relaxed) + taken, Ordering::Relaxed);
        if let Some(sink) = &st.sink {
            sink.fetch_add(taken, std::sync::atomic::Ordering::Relaxed);
        }
        drop(st);
        if self.buffer.kind == PolicyKind::Backpressure {
            self.buffer.space.notify_waiters();
        }
        Took::Value(value)
    }

    /// Receives the next notification, waiting for one.
    ///
    /// Returns `Err(RecvError::Lagged(n))` once after `n` values were lost to the overflow
    /// policy (the stream stays usable) and `Err(RecvError::Closed)` when the stream is closed
    /// and drained. Cancel-safe: dropping the future loses nothing.
    pub async fn recv(&mut self) -> Result<Arc<N>, RecvError> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next notification (the building block of [`recv`](Self::recv)).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Arc<N>, RecvError>> {
        match self.take(Some(cx.waker())) {
            Took::Value(v) => Poll::Ready(Ok(v)),
            Took::Lagged(n) => Poll::Ready(Err(RecvError::Lagged(n))),
            Took::Closed => Poll::Ready(Err(RecvError::Closed)),
            Took::Empty => Poll::Pending,
        }
    }

    /// Receives without waiting.
    pub fn try_recv(&mut self) -> Result<Arc<N>, TryRecvError> {
        match self.take(None) {
            Took::Value(v) => Ok(v),
            Took::Lagged(n) => Err(TryRecvError::Lagged(n)),
            Took::Closed => Err(TryRecvError::Closed),
            Took::Empty => Err(TryRecvError::Empty),
        }
    }

    /// Receives, blocking the current thread until a notification arrives. Do not call it
    /// from async code (use [`recv`](Self::recv) there).
    pub fn recv_blocking(&mut self) -> Result<Arc<N>, RecvError> {
        loop {
            match self.take(None) {
                Took::Value(v) => return Ok(v),
                Took::Lagged(n) => return Err(RecvError::Lagged(n)),
                Took::Closed => return Err(RecvError::Closed),
                Took::Empty => {}
            }
            let mut st = self.buffer.state.lock();
            while st.queue.is_empty() && st.lagged == 0 && !st.closed {
                st.blocked += 1;
                st = self.buffer.cv.wait(st);
                st.blocked -= 1;
            }
        }
    }

    /// Values waiting to be received (queue depth).
    pub fn len(&self) -> usize {
        self.buffer.state.lock().queue.len() + self.local.len()
    }

    /// Whether nothing is waiting to be received.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffer's capacity.
    pub fn capacity(&self) -> usize {
        self.buffer.capacity
    }

    /// This subscriber's counters (depth, delivered, dropped).
    pub fn stats(&self) -> BufferStats {
        self.buffer.stats(self.subscription.id())
    }

    /// The subscription's id.
    pub fn id(&self) -> ObserverId {
        self.subscription.id()
    }

    /// Whether the stream is closed (it may still hold values to receive).
    pub fn is_closed(&self) -> bool {
        self.buffer.state.lock().closed
    }

    /// Unsubscribes now; values already buffered can still be received.
    pub fn close(&mut self) {
        self.subscription.unsubscribe_now();
    }
}

impl<N: crate::Notification> futures_core::Stream for NotificationStream<N> {
    type Item = Result<Arc<N>, Lagged>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.get_mut().poll_recv(cx) {
            Poll::Ready(Ok(v)) => Poll::Ready(Some(Ok(v))),
            Poll::Ready(Err(RecvError::Lagged(n))) => Poll::Ready(Some(Err(Lagged(n)))),
            Poll::Ready(Err(RecvError::Closed)) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<N> fmt::Debug for NotificationStream<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotificationStream")
            .field("id", &self.subscription.id())
            .field("capacity", &self.buffer.capacity)
            .field("policy", &self.buffer.policy)
            .finish_non_exhaustive()
    }
}

/// The buffered delivery kind: a post hands the shared `Arc<N>` to the buffer.
pub(crate) struct Buffered<N>(pub(crate) Arc<Buffer<N>>);

impl<N: crate::Notification> Kind<N> for Buffered<N> {
    fn call(&self, _value: &N, cx: &mut Cx<'_, N>, _meta: &Meta) -> Delivery {
        let Some(shared) = cx.shared() else {
            // Unreachable by construction: snapshots with buffers post an `Arc`.
            return Delivery::Skipped;
        };
        match self.0.push(shared) {
            PushResult::Accepted => Delivery::Accepted,
            PushResult::AcceptedWithLoss => {
                cx.count_dropped(false);
                Delivery::Accepted
            }
            PushResult::Refused => {
                cx.count_dropped(false);
                Delivery::Skipped
            }
            PushResult::Full => {
                if !cx.wait_for(self.0.clone()) {
                    self.0.count_dropped();
                    cx.count_dropped(true);
                }
                Delivery::Skipped
            }
            PushResult::Closed => Delivery::Skipped,
        }
    }

    fn needs_shared(&self) -> bool {
        true
    }

    fn retire(&self, sink: &Arc<std::sync::atomic::AtomicU64>) {
        self.0.retire(sink);
    }

    fn buffer_stats(&self, id: ObserverId) -> Option<BufferStats> {
        Some(self.0.stats(id))
    }
}

impl<N: crate::Notification> WaitForRoom<N> for Buffer<N> {
    fn push_wait<'a>(
        &'a self,
        value: &'a Arc<N>,
    ) -> Pin<Box<dyn std::future::Future<Output = bool> + Send + Sync + 'a>> {
        Box::pin(Buffer::push_wait(self, value))
    }

    fn count_lost(&self) {
        self.count_dropped();
    }
}
