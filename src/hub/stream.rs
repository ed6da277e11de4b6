//! Buffered delivery: [`NotificationStream`], backed by the type's shared ring or by a
//! private bounded buffer.
//!
//! - Streams with [`Overflow::DropOldest`] (the default) or [`Overflow::Latest`], no sender or
//!   predicate filter, and a capacity up to 65 536 share one ring per notification type and
//!   capacity (`ring.rs`): a post writes the value once, each stream reads it through its own
//!   cursor.
//! - The other streams have a private [`Buffer`]: drop-newest, coalesce-by-key and backpressure
//!   need per-subscriber state, and a filtered stream's capacity counts only the values that
//!   pass its filter, which a shared ring cannot do.
//!
//! Both keep the same contract: the newest (drop-oldest) or oldest (drop-newest) `capacity`
//! values, every loss counted per post, per type and per subscriber, and reported to the
//! receiver as `Lagged(n)` where the policy says so.

use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use crate::hub::engine::{Core, Cx, Delivery, Filter, Kind, Meta, NEEDS_SHARED, WaitForRoom};
use crate::hub::overflow::{Overflow, PolicyKind};
use crate::hub::ring::{MAX_RING_CAPACITY, Member, Reader, RingEntry, Took};
use crate::hub::stats::BufferStats;
use crate::hub::subscription::Subscription;
use crate::hub::sync::{AtomicU64, AtomicUsize, Condvar, Mutex, Ordering};
use crate::{Lagged, ObserverId, RecvError, SenderId, TryRecvError};

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

/// The private bounded buffer of one stream, shared by posters and its receiver.
///
/// The receiver takes up to a quarter of the capacity per lock into its hand. Values in its
/// hand still count against the capacity. Under drop-oldest they are also still the oldest, so
/// they are the first a full buffer evicts: a post takes them back from the hand (a
/// compare-and-swap of `in_hand`, which the receiver also uses to return each one), so the
/// buffer always keeps the newest `capacity` values.
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
    /// Values in the receiver's hand that it may still return: the receiver takes one by a
    /// compare-and-swap, a drop-oldest post revokes the oldest one the same way.
    in_hand: AtomicUsize,
    /// The largest batch the receiver takes at once (0: one at a time).
    batch: usize,
}

impl<N> Buffer<N> {
    pub(crate) fn new(policy: Overflow<N>) -> Self {
        let capacity = policy.capacity();
        // The receiver may take up to a quarter of the capacity at once, for the policies whose
        // values only ever leave from the front.
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
                let lost = self.evict_oldest(&mut st);
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

    /// Makes room for one value under drop-oldest: the oldest value held goes, the receiver's
    /// hand first (it holds the oldest values). True if a value was lost.
    fn evict_oldest(&self, st: &mut State<N>) -> bool {
        loop {
            let in_hand = self.in_hand.load(Ordering::Acquire);
            if st.queue.len() + in_hand < self.capacity {
                return false;
            }
            if in_hand == 0 {
                st.queue.pop_front();
                st.popped += 1;
                st.lagged += 1;
                return true;
            }
            // Revoke the oldest value in the hand; the receiver may be returning it right now,
            // and exactly one compare-and-swap wins it. On failure, look again.
            if self
                .in_hand
                .compare_exchange(in_hand, in_hand - 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                // It was counted as taken; it is lost instead. The receiver reports it.
                let d = &self.delivered;
                d.store(d.load(Ordering::Relaxed) - 1, Ordering::Relaxed);
                return true;
            }
        }
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

/// A buffered subscriber's counters, whatever its backing (for `Stats` and spawned handlers).
pub(crate) trait BufferView: Send + Sync {
    fn view(&self, id: ObserverId) -> BufferStats;
}

impl<N: Send + Sync> BufferView for Buffer<N> {
    fn view(&self, id: ObserverId) -> BufferStats {
        self.stats(id)
    }
}

impl<N: Send + Sync> BufferView for RingEntry<N> {
    fn view(&self, id: ObserverId) -> BufferStats {
        self.ring.stats(&self.member, id)
    }
}

/// The receiving end of a private buffer.
struct Private<N> {
    buffer: Arc<Buffer<N>>,
    /// Values taken from the buffer in one batch, returned one by one. The oldest
    /// `local.len() - in_hand` of them were taken back by posts (drop-oldest).
    local: VecDeque<Arc<N>>,
    /// Values taken back from the hand, not yet reported.
    revoked: u64,
}

impl<N> Private<N> {
    /// Takes the next value; when there is none, registers `waker` under the same lock.
    fn take(&mut self, waker: Option<&Waker>) -> Took<Arc<N>> {
        let buffer = &*self.buffer;
        while !self.local.is_empty() {
            let in_hand = buffer.in_hand.load(Ordering::Acquire);
            let revoked = self.local.len() - in_hand;
            if revoked != 0 {
                self.local.drain(..revoked);
                self.revoked += revoked as u64;
            }
            if in_hand == 0 {
                break;
            }
            if self.revoked != 0 {
                // Lost values come before the ones still in hand.
                return Took::Lagged(std::mem::take(&mut self.revoked));
            }
            if buffer
                .in_hand
                .compare_exchange(in_hand, in_hand - 1, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                continue; // a post took one back: count again
            }
            let Some(value) = self.local.pop_front() else {
                break;
            };
            if buffer.kind == PolicyKind::Backpressure {
                buffer.space.notify_waiters();
            }
            return Took::Value(value);
        }
        let mut st = buffer.state.lock();
        if st.lagged != 0 || self.revoked != 0 {
            let n = std::mem::take(&mut st.lagged) + std::mem::take(&mut self.revoked);
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
        let extra = buffer.batch.min(st.queue.len()).min(before_gap);
        self.local.extend(st.queue.drain(..extra));
        let taken = 1 + extra as u64;
        st.popped += taken;
        buffer.in_hand.store(extra, Ordering::Release);
        // `delivered` is written under the lock only (by the receiver, and by posts that
        // revoke a value from the hand): no read-modify-write needed.
        let d = &buffer.delivered;
        d.store(d.load(Ordering::Relaxed) + taken, Ordering::Relaxed);
        if let Some(sink) = &st.sink {
            sink.fetch_add(taken, std::sync::atomic::Ordering::Relaxed);
        }
        drop(st);
        if buffer.kind == PolicyKind::Backpressure {
            buffer.space.notify_waiters();
        }
        Took::Value(value)
    }

    fn wait_blocking(&self) {
        let mut st = self.buffer.state.lock();
        while st.queue.is_empty() && st.lagged == 0 && !st.closed {
            st.blocked += 1;
            st = self.buffer.cv.wait(st);
            st.blocked -= 1;
        }
    }

    fn len(&self) -> usize {
        self.buffer.state.lock().queue.len() + self.buffer.in_hand.load(Ordering::Acquire)
    }
}

/// Wakes a thread blocked in `recv_blocking` on a ring stream.
#[derive(Default)]
pub(crate) struct Parker {
    woken: Mutex<bool>,
    cv: Condvar,
}

impl Wake for Parker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        *self.woken.lock() = true;
        self.cv.notify_all();
    }
}

impl Parker {
    pub(crate) fn wait(&self) {
        let mut woken = self.woken.lock();
        while !*woken {
            woken = self.cv.wait(woken);
        }
        *woken = false;
    }
}

/// A stream's backing: its cursor into the shared ring, or its private buffer.
enum Receiver<N> {
    Ring {
        reader: Reader<N>,
        policy: Overflow<N>,
        parker: Option<(Arc<Parker>, Waker)>,
    },
    Private(Private<N>),
}

/// Whether a ring of the type (the `Arc` ring, or a cloned stream's value ring) can serve a
/// stream with these options: drop-oldest or latest-only, no sender or filter, no
/// `replay_last`, a capacity up to 65 536. Else the stream gets a private buffer.
///
/// A replayed value is the stream's alone, so a ring member would hold it beside the ring,
/// where the ring's eviction does not count it: with `Latest`, a post after the replay would
/// leave both values, and with drop-oldest one value more than the capacity, none of it
/// counted as dropped. A private buffer holds it like any other value.
pub(crate) fn ring_serves<N>(
    policy: &Overflow<N>,
    sender: Option<SenderId>,
    filtered: bool,
    replay: bool,
) -> bool {
    matches!(policy, Overflow::DropOldest { .. } | Overflow::Latest)
        && sender.is_none()
        && !filtered
        && !replay
        && policy.capacity() <= MAX_RING_CAPACITY
}

/// Subscribes a buffered receiver with the builder's options: on the type's shared ring when
/// its policy allows (drop-oldest or latest-only, no filter, capacity up to 65 536), else with
/// a private buffer. Returns the subscription's id, the receiving end, and its counters.
pub(crate) fn subscribe<N: crate::Notification>(
    core: &Arc<Core<N>>,
    sender: Option<SenderId>,
    filter: Option<Filter<N>>,
    priority: i32,
    replay: bool,
    policy: Overflow<N>,
) -> (ObserverId, NotificationStreamInner<N>, Arc<dyn BufferView>) {
    if ring_serves(&policy, sender, filter.is_some(), replay)
        && let Some(ring) = core.rings().get(policy.capacity())
    {
        let member = Arc::new(Member::new());
        let kind = Ringed(RingEntry {
            ring: ring.clone(),
            member: member.clone(),
        });
        let view = Arc::new(RingEntry {
            ring: ring.clone(),
            member: member.clone(),
        });
        let id = core.subscribe_with(
            core.entry(priority, None, None, kind),
            replay,
            |generation| ring.join(&member, generation),
        );
        let report_lag = matches!(policy, Overflow::DropOldest { .. });
        let receiver = Receiver::Ring {
            reader: Reader::new(ring, member, report_lag),
            policy,
            parker: None,
        };
        return (id, NotificationStreamInner(receiver), view);
    }
    let buffer = Arc::new(Buffer::new(policy));
    let kind = Buffered(buffer.clone());
    let id = core.subscribe(core.entry(priority, sender, filter, kind), replay);
    let receiver = Receiver::Private(Private {
        buffer: buffer.clone(),
        local: VecDeque::new(),
        revoked: 0,
    });
    (id, NotificationStreamInner(receiver), buffer)
}

/// The receiving end of a subscription, before it is wrapped with its guard.
pub(crate) struct NotificationStreamInner<N>(Receiver<N>);

/// An async stream of one notification type: the buffered delivery kind.
///
/// Made by [`ObserverBuilder::stream`](crate::ObserverBuilder::stream) or
/// [`NotificationCenter::stream`](crate::NotificationCenter::stream). One handle offers
/// every way to receive: [`recv`](Self::recv)`.await`, [`try_recv`](Self::try_recv),
/// [`recv_blocking`](Self::recv_blocking) and [`futures_core::Stream`] (items are
/// `Result<Arc<N>, Lagged>`; the stream ends when closed). Values are shared: one `Arc<N>` per
/// post, whatever the number of streams, and the hub keeps no copy once every stream has
/// received (or lost) it. A post that reaches only one stream on a shared ring (below) and
/// needs no `Arc` for anything else moves the value into the ring instead, and the receiving
/// side makes the `Arc`: the posting thread allocates nothing.
///
/// Dropping the stream unsubscribes it. It is closed when the center is dropped, after the
/// buffered values have been received.
///
/// # Shared ring
/// Streams with the default policy ([`Overflow::DropOldest`]) or [`Overflow::Latest`], no
/// [`sender`](crate::ObserverBuilder::sender) or [`filter`](crate::ObserverBuilder::filter),
/// and a capacity up to 65 536 read one ring per notification type and capacity: a post writes
/// the value once, not once per stream. What that changes, in re-entrant corner cases only:
/// every such stream receives a post at the same moment, the turn of the first of them in
/// priority order. So an observer that runs between two of them (by priority) and posts a
/// nested notification makes both see the outer post first, then the nested one; one that
/// closes a later stream of the same ring during that post does not take the post back from
/// it. Other streams have a private buffer and receive at their own turn.
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
/// let mut jobs = center.stream::<Job>();
/// center.post(Job(1));
/// center.post(Job(2));
/// assert_eq!(jobs.recv().await.unwrap().0, 1);
/// assert_eq!(jobs.try_recv().unwrap().0, 2);
/// assert!(jobs.try_recv().unwrap_err().is_empty());
/// # }
/// ```
#[must_use = "a stream receives nothing once dropped"]
pub struct NotificationStream<N> {
    receiver: Receiver<N>,
    subscription: Subscription,
}

impl<N: crate::Notification> NotificationStream<N> {
    pub(crate) fn new(inner: NotificationStreamInner<N>, subscription: Subscription) -> Self {
        NotificationStream {
            receiver: inner.0,
            subscription,
        }
    }

    fn take(&mut self, waker: Option<&Waker>) -> Took<Arc<N>> {
        match &mut self.receiver {
            Receiver::Ring { reader, .. } => reader.take(waker),
            Receiver::Private(p) => p.take(waker),
        }
    }

    /// Receives the next notification, waiting for one.
    ///
    /// Returns `Err(RecvError::Lagged(n))` once after `n` values were lost to the overflow
    /// policy (the stream stays usable) and `Err(RecvError::Closed)` when the stream is closed
    /// and drained. Cancel-safe: dropping the future loses nothing.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # struct Ev(u32); impl Notification for Ev {}
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let center = NotificationCenter::new();
    /// let mut events = center.stream::<Ev>();
    /// center.post(Ev(1));
    /// assert_eq!(events.recv().await.unwrap().0, 1);
    /// # }
    /// ```
    pub async fn recv(&mut self) -> Result<Arc<N>, RecvError> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next notification (the building block of [`recv`](Self::recv)).
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # struct Ev(u32); impl Notification for Ev {}
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let center = NotificationCenter::new();
    /// let mut events = center.stream::<Ev>();
    /// center.post(Ev(1));
    /// let v = std::future::poll_fn(|cx| events.poll_recv(cx)).await.unwrap();
    /// assert_eq!(v.0, 1);
    /// # }
    /// ```
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Arc<N>, RecvError>> {
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
    /// # struct Ev(u32); impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let mut events = center.stream::<Ev>();
    /// assert!(matches!(events.try_recv(), Err(e) if e.is_empty()));
    /// center.post(Ev(1));
    /// assert_eq!(events.try_recv().unwrap().0, 1);
    /// ```
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
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # struct Ev(u32); impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let mut events = center.stream::<Ev>();
    /// let poster = center.clone();
    /// std::thread::spawn(move || poster.post(Ev(5)));
    /// assert_eq!(events.recv_blocking().unwrap().0, 5);
    /// ```
    pub fn recv_blocking(&mut self) -> Result<Arc<N>, RecvError> {
        loop {
            let took = match &mut self.receiver {
                Receiver::Ring { reader, parker, .. } => {
                    let (parker, waker) = parker.get_or_insert_with(|| {
                        let parker = Arc::new(Parker::default());
                        (parker.clone(), Waker::from(parker))
                    });
                    match reader.take(Some(waker)) {
                        Took::Empty => {
                            parker.wait();
                            continue;
                        }
                        took => took,
                    }
                }
                Receiver::Private(p) => match p.take(None) {
                    Took::Empty => {
                        p.wait_blocking();
                        continue;
                    }
                    took => took,
                },
            };
            return match took {
                Took::Value(v) => Ok(v),
                Took::Lagged(n) => Err(RecvError::Lagged(n)),
                Took::Closed | Took::Empty => Err(RecvError::Closed),
            };
        }
    }

    /// Values waiting to be received (queue depth).
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # struct Ev(u32); impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let events = center.stream::<Ev>();
    /// center.post(Ev(1));
    /// center.post(Ev(2));
    /// assert_eq!(events.len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        match &self.receiver {
            Receiver::Ring { reader, .. } => reader.len(),
            Receiver::Private(p) => p.len(),
        }
    }

    /// Whether nothing is waiting to be received.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # struct Ev(u32); impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let events = center.stream::<Ev>();
    /// assert!(events.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffer's capacity.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # struct Ev(u32); impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let events = center.observer::<Ev>().policy(herald::Overflow::DropNewest { capacity: 8 }).stream();
    /// assert_eq!(events.capacity(), 8);
    /// ```
    pub fn capacity(&self) -> usize {
        match &self.receiver {
            Receiver::Ring { reader, .. } => reader.ring().capacity(),
            Receiver::Private(p) => p.buffer.capacity,
        }
    }

    /// This subscriber's counters (depth, delivered, dropped).
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # struct Ev(u32); impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let events = center.stream::<Ev>();
    /// center.post(Ev(1));
    /// assert_eq!(events.stats().depth, 1);
    /// ```
    pub fn stats(&self) -> BufferStats {
        let id = self.subscription.id();
        match &self.receiver {
            Receiver::Ring { reader, .. } => reader.ring().stats(reader.member(), id),
            Receiver::Private(p) => p.buffer.stats(id),
        }
    }

    /// The subscription's id.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # struct Ev(u32); impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let events = center.stream::<Ev>();
    /// assert_eq!(center.stats::<Ev>().buffers[0].observer, events.id());
    /// ```
    pub fn id(&self) -> ObserverId {
        self.subscription.id()
    }

    /// Whether the stream is closed (it may still hold values to receive).
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # struct Ev(u32); impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let mut events = center.stream::<Ev>();
    /// assert!(!events.is_closed());
    /// events.unsubscribe();
    /// assert!(events.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        match &self.receiver {
            Receiver::Ring { reader, .. } => reader.is_closed(),
            Receiver::Private(p) => p.buffer.state.lock().closed,
        }
    }

    /// Unsubscribes now (the same as dropping the stream, except that values already
    /// buffered can still be received; then `recv` reports `Closed`).
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification, TryRecvError};
    /// # struct Ev(u32); impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let mut events = center.stream::<Ev>();
    /// center.post(Ev(1));
    /// events.unsubscribe();
    /// center.post(Ev(2)); // not for this stream any more
    /// assert_eq!(events.try_recv().unwrap().0, 1);
    /// assert!(matches!(events.try_recv(), Err(TryRecvError::Closed)));
    /// ```
    pub fn unsubscribe(&mut self) {
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
        let (policy, capacity, shared): (&Overflow<N>, usize, bool) = match &self.receiver {
            Receiver::Ring { reader, policy, .. } => (policy, reader.ring().capacity(), true),
            Receiver::Private(p) => (&p.buffer.policy, p.buffer.capacity, false),
        };
        f.debug_struct("NotificationStream")
            .field("id", &self.subscription.id())
            .field("capacity", &capacity)
            .field("policy", policy)
            .field("shared_ring", &shared)
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

    fn needs(&self) -> u8 {
        NEEDS_SHARED
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

/// The shared-ring delivery kind (`ring.rs`): the first entry of a ring that a post reaches
/// writes the value once for every stream on that ring; the others have nothing to do.
pub(crate) struct Ringed<N>(pub(crate) RingEntry<N>);

impl<N: crate::Notification> Kind<N> for Ringed<N> {
    fn call(&self, _value: &N, cx: &mut Cx<'_, N>, _meta: &Meta) -> Delivery {
        let Some(shared) = cx.shared() else {
            // Unreachable by construction: snapshots with buffers post an `Arc`.
            return Delivery::Skipped;
        };
        let ring = &self.0.ring;
        if !cx.first_in_ring(ring.bit()) {
            return Delivery::Skipped;
        }
        cx.ring_posted(ring.post(shared, cx.generation()))
    }

    fn call_owned(&self, value: N, cx: &mut Cx<'_, N>, _meta: &Meta) -> Delivery {
        let ring = &self.0.ring;
        if !cx.first_in_ring(ring.bit()) {
            return Delivery::Skipped;
        }
        let (posted, unreceived) = ring.post_owned(value, cx.generation());
        cx.keep_unreceived(unreceived);
        cx.ring_posted(posted)
    }

    fn needs(&self) -> u8 {
        NEEDS_SHARED
    }

    fn retire(&self, sink: &Arc<std::sync::atomic::AtomicU64>) {
        let RingEntry { ring, member } = &self.0;
        ring.leave(member);
        member.retire(sink);
    }

    fn buffer_stats(&self, id: ObserverId) -> Option<BufferStats> {
        Some(self.0.ring.stats(&self.0.member, id))
    }

    fn ring(&self) -> u64 {
        self.0.ring.bit()
    }
}
