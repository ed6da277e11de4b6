//! The engine: one `Core<N>` per notification type.
//!
//! - The subscriber list is a copy-on-write snapshot ([`SnapshotCell`]): a post loads it
//!   without a lock; subscribe and unsubscribe build a new one under `writer`.
//! - Each entry has a [`Gate`]: a post enters it around every call, and unsubscribe closes it
//!   and waits for calls in flight on other threads (contract 3, quiescent unsubscribe).
//! - Replay (`replay_last`) and retention share the `last` lock so that a subscriber either
//!   replays a value or receives it, never both and never neither (contract 6).
//!
//! Everything that makes the hub correct under concurrency is in this file and `sync.rs`;
//! `tests/loom.rs` model-checks it.

use std::any::TypeId;
use std::cell::RefCell;
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;

use crate::center::{CenterInner, PanicPolicy};
use crate::stats::{BufferStats, PostReport, Stats};
use crate::stream::{Buffer, PushResult};
use crate::sync::{
    AtomicBool, AtomicU64, AtomicUsize, Condvar, Mutex, Ordering, SnapshotCell, thread_local,
};
use crate::{DeadNotification, Notification, ObserverId, ObserverPanicked, SenderId};

/// A predicate filter on the notification value.
pub(crate) type Filter<N> = Box<dyn Fn(&N) -> bool + Send + Sync>;
/// An inline observer.
pub(crate) type InlineFn<N> = Box<dyn Fn(&N) + Send + Sync>;

/// How an entry receives notifications.
pub(crate) enum Kind<N> {
    /// Called on the posting thread.
    Inline(InlineFn<N>),
    /// Buffered for a receiver on another task or thread.
    Buffered(Arc<Buffer<N>>),
}

/// One subscriber of one type.
pub(crate) struct Entry<N> {
    pub(crate) id: ObserverId,
    priority: i32,
    seq: u64,
    sender: Option<SenderId>,
    filter: Option<Filter<N>>,
    gate: Gate,
    pub(crate) kind: Kind<N>,
}

impl<N> Entry<N> {
    pub(crate) fn new(
        priority: i32,
        sender: Option<SenderId>,
        filter: Option<Filter<N>>,
        kind: Kind<N>,
    ) -> Self {
        Entry {
            id: ObserverId::next(),
            priority,
            seq: 0,
            sender,
            filter,
            gate: Gate::new(),
            kind,
        }
    }

    /// Sorted by priority (higher first), then registration order.
    fn order_key(&self) -> (std::cmp::Reverse<i32>, u64) {
        (std::cmp::Reverse(self.priority), self.seq)
    }
}

/// The immutable subscriber list a post iterates.
pub(crate) struct Snapshot<N> {
    entries: Box<[Arc<Entry<N>>]>,
    /// Whether any entry needs a shared `Arc<N>` (buffered kinds).
    needs_arc: bool,
}

impl<N> Snapshot<N> {
    fn new(entries: Vec<Arc<Entry<N>>>) -> Self {
        let needs_arc = entries.iter().any(|e| matches!(e.kind, Kind::Buffered(_)));
        Snapshot {
            entries: entries.into_boxed_slice(),
            needs_arc,
        }
    }
}

/// In-flight tracking for one entry (contract 3).
///
/// `state` holds a "closed" bit (bit 0) and twice the number of calls in flight. A call enters
/// with one `fetch_add` and leaves with one `fetch_sub`; both are read-modify-writes on the same
/// word as `close`'s `fetch_or`, so they are totally ordered: either a call entered first (and
/// close waits for it) or close came first (and the call sees the bit and skips).
pub(crate) struct Gate {
    state: AtomicUsize,
    lock: Mutex<()>,
    cv: Condvar,
}

const CLOSED: usize = 1;
const ONE_CALL: usize = 2;

impl Gate {
    fn new() -> Self {
        Gate {
            state: AtomicUsize::new(0),
            lock: Mutex::new(()),
            cv: Condvar::new(),
        }
    }

    /// Enters a call; false when the gate is closed (the entry was unsubscribed).
    #[inline]
    fn enter(&self) -> bool {
        let prev = self.state.fetch_add(ONE_CALL, Ordering::Acquire);
        if prev & CLOSED != 0 {
            self.exit();
            return false;
        }
        true
    }

    #[inline]
    fn exit(&self) {
        let prev = self.state.fetch_sub(ONE_CALL, Ordering::Release);
        if prev & CLOSED != 0 {
            // Someone may be waiting in `close`: take the lock so the wake-up cannot be lost.
            drop(self.lock.lock());
            self.cv.notify_all();
        }
    }

    /// Closes the gate and waits until at most `own` calls remain in flight (the calls of this
    /// entry that are running on the current thread, below us on the stack).
    fn close(&self, own: usize) {
        self.state.fetch_or(CLOSED, Ordering::AcqRel);
        let mut guard = self.lock.lock();
        while self.state.load(Ordering::Acquire) / ONE_CALL > own {
            guard = self.cv.wait(guard);
        }
    }
}

thread_local! {
    /// The entries whose inline calls are running on this thread, innermost last.
    static ACTIVE: RefCell<Vec<ObserverId>> = const { RefCell::new(Vec::new()) };
}

fn active_calls_on_this_thread(id: ObserverId) -> usize {
    ACTIVE.with(|a| a.borrow().iter().filter(|x| **x == id).count())
}

/// Pops `ACTIVE` even when the observer panics and the panic propagates.
struct ActiveFrame;

impl ActiveFrame {
    #[inline]
    fn push(id: ObserverId) -> ActiveFrame {
        ACTIVE.with(|a| a.borrow_mut().push(id));
        ActiveFrame
    }
}

impl Drop for ActiveFrame {
    #[inline]
    fn drop(&mut self) {
        ACTIVE.with(|a| {
            a.borrow_mut().pop();
        });
    }
}

/// The last posted values, kept once retention is on (contract 6).
struct Last<N> {
    any: Option<Arc<N>>,
    by_sender: HashMap<SenderId, Arc<N>>,
}

#[cfg(not(herald_loom))]
type LastLock<N> = parking_lot::ReentrantMutex<RefCell<Last<N>>>;
#[cfg(herald_loom)]
type LastLock<N> = crate::sync::Mutex<RefCell<Last<N>>>;

/// The channel of one notification type.
pub(crate) struct Core<N> {
    subs: SnapshotCell<Snapshot<N>>,
    /// Serializes writers (subscribe, unsubscribe). Never held while calling user code.
    writer: Mutex<()>,
    retain: AtomicBool,
    last: LastLock<N>,
    posted: AtomicU64,
    delivered: AtomicU64,
    dropped: AtomicU64,
    panicked: AtomicU64,
    dead: AtomicU64,
    /// Deliveries made by buffered subscribers that have gone.
    retired_delivered: AtomicU64,
    next_seq: AtomicU64,
}

impl<N: Notification> Core<N> {
    pub(crate) fn new() -> Self {
        Core {
            subs: SnapshotCell::new(Arc::new(Snapshot::new(Vec::new()))),
            writer: Mutex::new(()),
            retain: AtomicBool::new(false),
            last: LastLock::new(RefCell::new(Last {
                any: None,
                by_sender: HashMap::new(),
            })),
            posted: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            panicked: AtomicU64::new(0),
            dead: AtomicU64::new(0),
            retired_delivered: AtomicU64::new(0),
            next_seq: AtomicU64::new(0),
        }
    }

    /// Whether anyone observes this type right now.
    pub(crate) fn has_observers(&self) -> bool {
        !self.subs.load().entries.is_empty()
    }

    /// Posts synchronously: inline observers run before this returns.
    #[inline]
    pub(crate) fn post(
        &self,
        center: &CenterInner,
        value: N,
        sender: Option<SenderId>,
    ) -> PostReport {
        self.post_collect(center, value, sender, None)
    }

    /// Posts; backpressure subscribers that were full are pushed into `waiting` (with the
    /// shared value) instead of being reported full, for `post_async` to wait on.
    #[inline]
    pub(crate) fn post_collect(
        &self,
        center: &CenterInner,
        value: N,
        sender: Option<SenderId>,
        waiting: Option<&mut Waiting<N>>,
    ) -> PostReport {
        self.posted.fetch_add(1, Ordering::Relaxed);
        if self.retain.load(Ordering::Acquire) {
            return self.post_retained(center, Arc::new(value), sender, waiting);
        }
        let snap = self.subs.load();
        let report = if snap.needs_arc {
            let shared = Arc::new(value);
            self.deliver(center, &snap, &shared, Some(&shared), sender, waiting)
        } else {
            self.deliver(center, &snap, &value, None, sender, waiting)
        };
        drop(snap);
        self.account(center, report, sender)
    }

    #[cold]
    fn post_retained(
        &self,
        center: &CenterInner,
        shared: Arc<N>,
        sender: Option<SenderId>,
        waiting: Option<&mut Waiting<N>>,
    ) -> PostReport {
        // Store and load the snapshot under `last`, deliver outside it: a concurrent
        // `replay_last` subscriber either sees this value in `last` or is in the snapshot.
        let snap = {
            let guard = self.last.lock();
            let mut last = guard.borrow_mut();
            last.any = Some(shared.clone());
            if let Some(s) = sender {
                last.by_sender.insert(s, shared.clone());
            }
            self.subs.load_full()
        };
        let report = self.deliver(center, &snap, &shared, Some(&shared), sender, waiting);
        self.account(center, report, sender)
    }

    #[inline]
    fn account(
        &self,
        center: &CenterInner,
        report: PostReport,
        sender: Option<SenderId>,
    ) -> PostReport {
        if report.received != 0 || report.panicked != 0 {
            return report;
        }
        if report.dropped == 0 {
            self.dead.fetch_add(1, Ordering::Relaxed);
            if TypeId::of::<N>() != TypeId::of::<DeadNotification>() {
                center.post_if_observed(DeadNotification {
                    notification: N::name(),
                    sender,
                });
            }
        }
        report
    }

    /// The delivery loop: one pass over the snapshot, no lock, no allocation.
    #[inline]
    fn deliver(
        &self,
        center: &CenterInner,
        snap: &Snapshot<N>,
        value: &N,
        shared: Option<&Arc<N>>,
        sender: Option<SenderId>,
        mut waiting: Option<&mut Waiting<N>>,
    ) -> PostReport {
        let mut report = PostReport::default();
        let mut inline_done = 0u64;
        for entry in snap.entries.iter() {
            if entry.sender.is_some() && entry.sender != sender {
                continue;
            }
            if !entry.gate.enter() {
                continue;
            }
            match &entry.kind {
                Kind::Inline(f) => {
                    match self.call(
                        center,
                        entry,
                        |n| {
                            if let Some(filter) = &entry.filter {
                                if !filter(n) {
                                    return false;
                                }
                            }
                            f(n);
                            true
                        },
                        value,
                    ) {
                        Called::Ran => {
                            report.received += 1;
                            inline_done += 1;
                        }
                        Called::Skipped => {}
                        Called::Panicked => report.panicked += 1,
                    }
                }
                Kind::Buffered(buffer) => {
                    let passes = match &entry.filter {
                        None => Called::Ran,
                        Some(filter) => self.call(center, entry, |n| filter(n), value),
                    };
                    match passes {
                        Called::Ran => {}
                        Called::Skipped => {
                            entry.gate.exit();
                            continue;
                        }
                        Called::Panicked => {
                            report.panicked += 1;
                            entry.gate.exit();
                            continue;
                        }
                    }
                    let Some(shared) = shared else {
                        // Unreachable by construction: snapshots with buffers post an Arc.
                        entry.gate.exit();
                        continue;
                    };
                    match buffer.push(shared) {
                        PushResult::Accepted => report.received += 1,
                        PushResult::AcceptedWithLoss => {
                            report.received += 1;
                            report.dropped += 1;
                            self.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                        PushResult::Refused => {
                            report.dropped += 1;
                            self.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                        PushResult::Full => match waiting.as_deref_mut() {
                            Some(w) => {
                                w.entries.push(entry.clone());
                                w.value.get_or_insert_with(|| shared.clone());
                            }
                            None => {
                                report.dropped += 1;
                                report.full += 1;
                                buffer.count_dropped();
                                self.dropped.fetch_add(1, Ordering::Relaxed);
                            }
                        },
                        PushResult::Closed => {}
                    }
                }
            }
            entry.gate.exit();
        }
        if inline_done != 0 {
            self.delivered.fetch_add(inline_done, Ordering::Relaxed);
        }
        if let Some(w) = waiting {
            report.received += w.entries.len();
        }
        report
    }

    /// Runs user code for `entry` with panic isolation. The gate must be entered.
    #[inline]
    fn call(
        &self,
        center: &CenterInner,
        entry: &Entry<N>,
        f: impl FnOnce(&N) -> bool,
        value: &N,
    ) -> Called {
        let frame = ActiveFrame::push(entry.id);
        let result = catch_unwind(AssertUnwindSafe(|| f(value)));
        drop(frame);
        match result {
            Ok(true) => Called::Ran,
            Ok(false) => Called::Skipped,
            Err(payload) => {
                self.panicked.fetch_add(1, Ordering::Relaxed);
                if center.panic_policy() == PanicPolicy::Propagate {
                    entry.gate.exit();
                    resume_unwind(payload);
                }
                if TypeId::of::<N>() != TypeId::of::<ObserverPanicked>() {
                    let message = panic_message(payload.as_ref());
                    center.post_if_observed(ObserverPanicked {
                        notification: N::name(),
                        observer: entry.id,
                        message,
                    });
                }
                Called::Panicked
            }
        }
    }

    /// Adds an entry. With `replay`, the last retained value (per sender when the entry has a
    /// sender filter) is delivered to it first, atomically with the subscription.
    pub(crate) fn subscribe(
        &self,
        center: &CenterInner,
        mut entry: Entry<N>,
        replay: bool,
    ) -> ObserverId {
        entry.seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let entry = Arc::new(entry);
        if !replay {
            return self.insert(entry);
        }
        self.retain.store(true, Ordering::Release);
        let guard = self.last.lock();
        let last = {
            let last = guard.borrow();
            match entry.sender {
                Some(s) => last.by_sender.get(&s).cloned(),
                None => last.any.clone(),
            }
        };
        if let Some(value) = last {
            // Delivered while `last` is held: no post of this type can slip in between the
            // replayed value and the subscription (a nested post on this thread re-enters).
            let snap = Snapshot {
                entries: Box::new([entry.clone()]),
                needs_arc: true,
            };
            self.deliver(center, &snap, &value, Some(&value), entry.sender, None);
        }
        let id = self.insert(entry);
        drop(guard);
        id
    }

    fn insert(&self, entry: Arc<Entry<N>>) -> ObserverId {
        let _w = self.writer.lock();
        let current = self.subs.load_full();
        let mut entries: Vec<Arc<Entry<N>>> = current.entries.to_vec();
        let at = entries.partition_point(|e| e.order_key() <= entry.order_key());
        let id = entry.id;
        entries.insert(at, entry);
        self.subs.store(Arc::new(Snapshot::new(entries)));
        id
    }

    /// Removes an entry and waits until no call of it is in flight on another thread.
    pub(crate) fn unsubscribe(&self, id: ObserverId) {
        let removed = {
            let _w = self.writer.lock();
            let current = self.subs.load_full();
            let Some(pos) = current.entries.iter().position(|e| e.id == id) else {
                return;
            };
            let mut entries: Vec<Arc<Entry<N>>> = current.entries.to_vec();
            let removed = entries.remove(pos);
            self.subs.store(Arc::new(Snapshot::new(entries)));
            removed
        };
        removed.gate.close(active_calls_on_this_thread(id));
        if let Kind::Buffered(buffer) = &removed.kind {
            buffer.close();
            self.retire(buffer);
        }
    }

    fn retire(&self, buffer: &Buffer<N>) {
        self.retired_delivered
            .fetch_add(buffer.delivered(), Ordering::Relaxed);
    }

    /// Turns retention on (contract 6) without subscribing.
    pub(crate) fn retain_last(&self) {
        self.retain.store(true, Ordering::Release);
    }

    /// Forgets the retained value of one sender.
    pub(crate) fn forget_sender(&self, sender: SenderId) {
        let guard = self.last.lock();
        guard.borrow_mut().by_sender.remove(&sender);
    }

    pub(crate) fn stats(&self) -> Stats {
        let snap = self.subs.load_full();
        let mut buffered_delivered = 0;
        let buffers: Vec<BufferStats> = snap
            .entries
            .iter()
            .filter_map(|e| match &e.kind {
                Kind::Buffered(b) => {
                    let s = b.stats(e.id);
                    buffered_delivered += s.delivered;
                    Some(s)
                }
                Kind::Inline(_) => None,
            })
            .collect();
        Stats {
            posted: self.posted.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed)
                + self.retired_delivered.load(Ordering::Relaxed)
                + buffered_delivered,
            dropped: self.dropped.load(Ordering::Relaxed),
            panicked: self.panicked.load(Ordering::Relaxed),
            dead: self.dead.load(Ordering::Relaxed),
            observers: snap.entries.len(),
            buffers,
        }
    }
}

impl<N> Drop for Core<N> {
    fn drop(&mut self) {
        // The center is gone: close every stream so receivers see `Closed` after draining.
        let snap = self.subs.load_full();
        for e in snap.entries.iter() {
            if let Kind::Buffered(b) = &e.kind {
                b.close();
            }
        }
    }
}

/// Backpressure subscribers a `post_async` must wait on, and the value they wait to take.
pub(crate) struct Waiting<N> {
    pub(crate) entries: Vec<Arc<Entry<N>>>,
    pub(crate) value: Option<Arc<N>>,
}

impl<N> Default for Waiting<N> {
    fn default() -> Self {
        Waiting {
            entries: Vec::new(),
            value: None,
        }
    }
}

enum Called {
    Ran,
    Skipped,
    Panicked,
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "observer panicked with a non-string payload".to_owned()
    }
}
