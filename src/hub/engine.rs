//! The engine: one `Core<N>` per notification type.
//!
//! - The subscriber list is a copy-on-write snapshot in an [`RcuCell`]: a post loads it inside
//!   a read section of its center's [`Domain`] (no lock, no reference count, no allocation);
//!   subscribe and unsubscribe build a new one under `writer`, swap it in, and wait for a grace
//!   period before freeing the old one.
//! - Unsubscribe marks the entry removed, swaps it out, then waits for the grace period: every
//!   post that could still see it has finished (contract 3, quiescent unsubscribe). The
//!   `removed` flag covers the one post that cannot be waited for: this thread's own, when an
//!   observer unsubscribes from inside a post.
//! - Replay (`replay_last`) and retention share the `last` lock so that a subscriber either
//!   replays a value or receives it, never both and never neither (contract 6).
//!
//! Everything that makes the hub correct under concurrency is in this file, `rcu.rs` and
//! `sync.rs`; `tests/loom.rs` model-checks it.

use std::any::TypeId;
use std::cell::RefCell;
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;

use crate::hub::center::{CenterInner, PanicPolicy};
use crate::hub::rcu::{Domain, RcuCell, ReadGuard, Retired, TypeCounters};
use crate::hub::ring::{RingEntry, Rings};
use crate::hub::stats::{BufferStats, PostReport, Stats};
use crate::hub::stream::{Buffer, PushResult};
use crate::hub::sync::{AtomicBool, AtomicU64, Mutex, Ordering};
use crate::hub::wildcard::{AnyNotification, WildSpec};
use crate::{DeadNotification, Notification, ObserverId, ObserverPanicked, SenderId};

/// A predicate filter on the notification value.
pub(crate) type Filter<N> = Box<dyn Fn(&N) -> bool + Send + Sync>;
/// An inline observer.
pub(crate) type InlineFn<N> = Box<dyn Fn(&N) + Send + Sync>;

/// A weak observer: returns false once its target is gone.
pub(crate) type WeakFn<N> = Box<dyn Fn(&N) -> bool + Send + Sync>;

/// How an entry receives notifications.
pub(crate) enum Kind<N> {
    /// Called on the posting thread.
    Inline(InlineFn<N>),
    /// Called on the posting thread while its target lives; removed the first time it is not.
    Weak(WeakFn<N>),
    /// A wildcard or family observer, shared by every channel it observes.
    Wildcard(Arc<WildSpec>),
    /// Buffered for a receiver on another task or thread, in its own buffer.
    Buffered(Arc<Buffer<N>>),
    /// Buffered in the type's shared ring for this capacity (`ring.rs`): a post writes the
    /// ring once, at the turn of the first of its entries.
    Ring(RingEntry<N>),
}

/// One subscriber of one type.
///
/// Aligned to a cache line so that its fields, which every post reads, do not share a line
/// with the `Arc` reference counts, which every snapshot rebuild writes (a subscribe/unsubscribe
/// storm would otherwise make each post miss the cache once per observer).
#[repr(align(64))]
pub(crate) struct Entry<N> {
    pub(crate) id: ObserverId,
    priority: i32,
    seq: u64,
    sender: Option<SenderId>,
    filter: Option<Filter<N>>,
    removed: AtomicBool,
    pub(crate) kind: Kind<N>,
}

impl<N> Entry<N> {
    pub(crate) fn new(
        priority: i32,
        sender: Option<SenderId>,
        filter: Option<Filter<N>>,
        kind: Kind<N>,
    ) -> Self {
        let id = ObserverId::next();
        Entry {
            id,
            priority,
            // Ids grow with every subscription in the process: registration order.
            seq: id.as_u64(),
            sender,
            filter,
            removed: AtomicBool::new(false),
            kind,
        }
    }

    /// This channel's entry for a wildcard subscription.
    fn wildcard(spec: &Arc<WildSpec>) -> Self {
        Entry {
            id: spec.id,
            priority: spec.priority,
            seq: spec.id.as_u64(),
            sender: spec.sender,
            filter: None,
            removed: AtomicBool::new(false),
            kind: Kind::Wildcard(spec.clone()),
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
    /// Grows with every snapshot of the channel: rings skip members that joined after the
    /// snapshot a post uses.
    generation: u64,
}

impl<N> Snapshot<N> {
    fn new(entries: Vec<Arc<Entry<N>>>, generation: u64) -> Self {
        let needs_arc = entries
            .iter()
            .any(|e| matches!(e.kind, Kind::Buffered(_) | Kind::Ring(_)));
        Snapshot {
            entries: entries.into_boxed_slice(),
            needs_arc,
            generation,
        }
    }
}

/// An entry taken out of the snapshot, and the snapshot it was taken from.
type Removed<N> = (Arc<Entry<N>>, Retired<Snapshot<N>>);

/// The last posted values, kept once retention is on (contract 6).
struct Last<N> {
    any: Option<Arc<N>>,
    by_sender: HashMap<SenderId, Arc<N>>,
}

#[cfg(not(herald_loom))]
type LastLock<N> = parking_lot::ReentrantMutex<RefCell<Last<N>>>;
#[cfg(herald_loom)]
type LastLock<N> = crate::hub::sync::Mutex<RefCell<Last<N>>>;

/// The channel of one notification type.
pub(crate) struct Core<N> {
    domain: Arc<Domain>,
    /// This type's index in its center (for per-thread counters).
    index: usize,
    subs: RcuCell<Snapshot<N>>,
    /// Serializes writers (subscribe, unsubscribe). Never held while calling user code or
    /// waiting for a grace period.
    writer: Mutex<()>,
    retain: AtomicBool,
    last: LastLock<N>,
    /// Counters for posts made without a per-thread slot (beyond `MAX_LOCAL_TYPES` types,
    /// or while a thread is being torn down).
    shared: TypeCounters,
    dropped: AtomicU64,
    panicked: AtomicU64,
    dead: AtomicU64,
    /// Deliveries made by buffered subscribers that have left the snapshot.
    retired_delivered: Arc<std::sync::atomic::AtomicU64>,
    /// The shared rings of drop-oldest and latest-only streams, by capacity.
    rings: Rings<N>,
}

/// Counts a post's inline deliveries even when a propagated panic unwinds through `deliver`.
struct Tally<'a> {
    counters: Option<&'a TypeCounters>,
    shared: &'a TypeCounters,
    inline_done: u64,
}

impl Drop for Tally<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.inline_done == 0 {
            return;
        }
        match self.counters {
            Some(c) => TypeCounters::add(&c.delivered, self.inline_done),
            None => {
                self.shared
                    .delivered
                    .fetch_add(self.inline_done, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

impl<N: Notification> Core<N> {
    pub(crate) fn new(domain: Arc<Domain>, index: usize) -> Self {
        Core {
            domain,
            index,
            subs: RcuCell::new(Snapshot::new(Vec::new(), 0)),
            writer: Mutex::new(()),
            retain: AtomicBool::new(false),
            last: LastLock::new(RefCell::new(Last {
                any: None,
                by_sender: HashMap::new(),
            })),
            shared: TypeCounters::default(),
            dropped: AtomicU64::new(0),
            panicked: AtomicU64::new(0),
            dead: AtomicU64::new(0),
            retired_delivered: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            rings: Rings::default(),
        }
    }

    /// The shared rings of this type.
    pub(crate) fn rings(&self) -> &Rings<N> {
        &self.rings
    }

    /// Whether anyone observes this type right now.
    pub(crate) fn has_observers(&self, guard: &ReadGuard<'_>) -> bool {
        !self.subs.load(guard).entries.is_empty()
    }

    /// Posts synchronously: inline observers run before this returns.
    #[inline]
    pub(crate) fn post(
        &self,
        center: &CenterInner,
        guard: &ReadGuard<'_>,
        value: N,
        sender: Option<SenderId>,
    ) -> PostReport {
        self.post_collect(center, guard, value, sender, None)
    }

    /// Posts; backpressure subscribers that were full are pushed into `waiting` (with the
    /// shared value) instead of being reported full, for `post_async` to wait on.
    #[inline]
    pub(crate) fn post_collect(
        &self,
        center: &CenterInner,
        guard: &ReadGuard<'_>,
        value: N,
        sender: Option<SenderId>,
        waiting: Option<&mut Waiting<N>>,
    ) -> PostReport {
        let counters = guard.counters(self.index);
        match counters {
            Some(c) => TypeCounters::add(&c.posted, 1),
            None => {
                self.shared
                    .posted
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let mut tally = Tally {
            counters,
            shared: &self.shared,
            inline_done: 0,
        };
        if self.retain.load(Ordering::Acquire) {
            return self.post_retained(center, guard, Arc::new(value), sender, waiting, &mut tally);
        }
        let snap = self.subs.load(guard);
        let report = if snap.needs_arc {
            let shared = Arc::new(value);
            self.deliver(
                center,
                snap,
                &shared,
                Some(&shared),
                sender,
                waiting,
                &mut tally,
            )
        } else {
            self.deliver(center, snap, &value, None, sender, waiting, &mut tally)
        };
        drop(tally);
        self.account(center, guard, report, sender)
    }

    #[cold]
    fn post_retained(
        &self,
        center: &CenterInner,
        guard: &ReadGuard<'_>,
        shared: Arc<N>,
        sender: Option<SenderId>,
        waiting: Option<&mut Waiting<N>>,
        tally: &mut Tally<'_>,
    ) -> PostReport {
        // Store and load the snapshot under `last`, deliver outside it: a concurrent
        // `replay_last` subscriber either sees this value in `last` or is in the snapshot.
        let snap = {
            let lock = self.last.lock();
            let mut last = lock.borrow_mut();
            last.any = Some(shared.clone());
            if let Some(s) = sender {
                last.by_sender.insert(s, shared.clone());
            }
            self.subs.load(guard)
        };
        let report = self.deliver(center, snap, &shared, Some(&shared), sender, waiting, tally);
        self.account(center, guard, report, sender)
    }

    #[inline]
    fn account(
        &self,
        center: &CenterInner,
        guard: &ReadGuard<'_>,
        report: PostReport,
        sender: Option<SenderId>,
    ) -> PostReport {
        if report.received != 0 || report.panicked != 0 || report.dropped != 0 {
            return report;
        }
        self.dead.fetch_add(1, Ordering::Relaxed);
        if TypeId::of::<N>() != TypeId::of::<DeadNotification>() {
            center.post_if_observed(
                guard,
                DeadNotification {
                    notification: N::name(),
                    sender,
                },
            );
        }
        report
    }

    /// The delivery loop: one pass over the snapshot, no lock, no allocation.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn deliver(
        &self,
        center: &CenterInner,
        snap: &Snapshot<N>,
        value: &N,
        shared: Option<&Arc<N>>,
        sender: Option<SenderId>,
        mut waiting: Option<&mut Waiting<N>>,
        tally: &mut Tally<'_>,
    ) -> PostReport {
        let mut report = PostReport::default();
        // The rings this post has written (one bit per ring).
        let mut rings_written = 0u64;
        for entry in snap.entries.iter() {
            if entry.sender.is_some() && entry.sender != sender {
                continue;
            }
            // Only this thread's own unsubscribe (from inside an observer) can race here; the
            // grace period covers every other thread.
            if entry.removed.load(Ordering::Acquire) {
                continue;
            }
            match &entry.kind {
                Kind::Inline(f) => {
                    let called = self.call(center, entry, value, |n| {
                        if let Some(filter) = &entry.filter
                            && !filter(n)
                        {
                            return false;
                        }
                        f(n);
                        true
                    });
                    match called {
                        Called::Ran => {
                            report.received += 1;
                            tally.inline_done += 1;
                        }
                        Called::Skipped => {}
                        Called::Panicked => report.panicked += 1,
                    }
                }
                Kind::Weak(f) => {
                    let mut alive = true;
                    let called = self.call(center, entry, value, |n| {
                        alive = f(n);
                        alive
                    });
                    match called {
                        Called::Ran => {
                            report.received += 1;
                            tally.inline_done += 1;
                        }
                        Called::Panicked => report.panicked += 1,
                        // The target is gone: remove the entry without waiting.
                        Called::Skipped if !alive => self.remove_expired(entry.id),
                        Called::Skipped => {}
                    }
                }
                Kind::Wildcard(spec) => {
                    let any = AnyNotification::new(value, sender);
                    match self.call(center, entry, value, |_| {
                        (spec.f)(&any);
                        true
                    }) {
                        Called::Ran => {
                            report.received += 1;
                            tally.inline_done += 1;
                        }
                        Called::Skipped => {}
                        Called::Panicked => report.panicked += 1,
                    }
                }
                Kind::Buffered(buffer) => {
                    if let Some(filter) = &entry.filter {
                        match self.call(center, entry, value, |n| filter(n)) {
                            Called::Ran => {}
                            Called::Skipped => continue,
                            Called::Panicked => {
                                report.panicked += 1;
                                continue;
                            }
                        }
                    }
                    let Some(shared) = shared else {
                        // Unreachable by construction: snapshots with buffers post an Arc.
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
                Kind::Ring(r) => {
                    if rings_written & r.ring.bit() != 0 {
                        continue;
                    }
                    rings_written |= r.ring.bit();
                    let Some(shared) = shared else {
                        continue;
                    };
                    let posted = r.ring.post(shared, snap.generation);
                    report.received += posted.received;
                    if posted.dropped != 0 {
                        report.dropped += posted.dropped;
                        self.dropped
                            .fetch_add(posted.dropped as u64, Ordering::Relaxed);
                    }
                }
            }
        }
        if let Some(w) = waiting {
            report.received += w.entries.len();
        }
        report
    }

    /// Runs user code for `entry` with panic isolation.
    #[inline]
    fn call(
        &self,
        center: &CenterInner,
        entry: &Entry<N>,
        value: &N,
        f: impl FnOnce(&N) -> bool,
    ) -> Called {
        match catch_unwind(AssertUnwindSafe(|| f(value))) {
            Ok(true) => Called::Ran,
            Ok(false) => Called::Skipped,
            Err(payload) => self.panicked(center, entry, payload),
        }
    }

    #[cold]
    fn panicked(
        &self,
        center: &CenterInner,
        entry: &Entry<N>,
        payload: Box<dyn std::any::Any + Send>,
    ) -> Called {
        self.panicked.fetch_add(1, Ordering::Relaxed);
        if center.panic_policy() == PanicPolicy::Propagate {
            resume_unwind(payload);
        }
        if TypeId::of::<N>() != TypeId::of::<ObserverPanicked>() {
            let message = panic_message(payload.as_ref());
            let guard = self.domain.read();
            center.post_if_observed(
                &guard,
                ObserverPanicked {
                    notification: N::name(),
                    observer: entry.id,
                    message,
                },
            );
        }
        Called::Panicked
    }

    /// Adds an entry. With `replay`, the last retained value (per sender when the entry has a
    /// sender filter) is delivered to it first, atomically with the subscription.
    pub(crate) fn subscribe(
        &self,
        center: &CenterInner,
        entry: Entry<N>,
        replay: bool,
    ) -> ObserverId {
        let entry = Arc::new(entry);
        if !replay {
            let id = entry.id;
            let retired = self.insert(entry);
            let full = self.domain.synchronize();
            retired.release(&self.domain, full);
            return id;
        }
        self.retain.store(true, Ordering::Release);
        let lock = self.last.lock();
        let last = {
            let last = lock.borrow();
            match entry.sender {
                Some(s) => last.by_sender.get(&s).cloned(),
                None => last.any.clone(),
            }
        };
        if let (Some(value), Kind::Ring(r)) = (&last, &entry.kind) {
            // Handed to the member before it joins the ring; posts made with snapshots older
            // than its subscription skip it, so the replayed value is not received twice.
            r.member.replay(value.clone());
        } else if let Some(value) = last {
            // Delivered while `last` is held: no post of this type can slip in between the
            // replayed value and the subscription (a nested post on this thread re-enters).
            let snap = Snapshot {
                entries: Box::new([entry.clone()]),
                needs_arc: true,
                generation: 0,
            };
            let mut tally = Tally {
                counters: None,
                shared: &self.shared,
                inline_done: 0,
            };
            self.deliver(
                center,
                &snap,
                &value,
                Some(&value),
                entry.sender,
                None,
                &mut tally,
            );
        }
        let id = entry.id;
        let retired = self.insert(entry);
        drop(lock);
        // Wait for the grace period only once `last` is released: posts inside their read
        // sections may be waiting for it.
        let full = self.domain.synchronize();
        retired.release(&self.domain, full);
        id
    }

    /// Swaps in a snapshot with `entry`; the caller retires the old one after a grace period.
    fn insert(&self, entry: Arc<Entry<N>>) -> Retired<Snapshot<N>> {
        let w = self.writer.lock();
        let current = self.subs.current(&w);
        let mut entries: Vec<Arc<Entry<N>>> = current.entries.to_vec();
        let generation = current.generation + 1;
        if let Kind::Ring(r) = &entry.kind {
            r.ring.join(&r.member, generation);
        }
        let at = entries.partition_point(|e| e.order_key() <= entry.order_key());
        entries.insert(at, entry);
        self.subs.replace(Snapshot::new(entries, generation))
    }

    /// Swaps in a snapshot without the entry `id`, marked removed (so a post of this thread
    /// already iterating the old snapshot skips it); the caller retires the old snapshot.
    fn remove(&self, id: ObserverId) -> Option<Removed<N>> {
        let w = self.writer.lock();
        let current = self.subs.current(&w);
        let pos = current.entries.iter().position(|e| e.id == id)?;
        let mut entries: Vec<Arc<Entry<N>>> = current.entries.to_vec();
        let removed = entries.remove(pos);
        removed.removed.store(true, Ordering::Release);
        if let Kind::Ring(r) = &removed.kind {
            // From the next post on it gets nothing; what it had not taken stays its own.
            r.ring.leave(&r.member);
        }
        let generation = current.generation + 1;
        Some((
            removed,
            self.subs.replace(Snapshot::new(entries, generation)),
        ))
    }

    /// Removes an entry and waits until no post that could call it is still running.
    pub(crate) fn unsubscribe(&self, id: ObserverId) {
        let Some((removed, retired)) = self.remove(id) else {
            return;
        };
        let full = self.domain.synchronize();
        match &removed.kind {
            Kind::Buffered(buffer) => buffer.retire(&self.retired_delivered),
            Kind::Ring(r) => r.member.retire(&self.retired_delivered),
            _ => {}
        }
        drop(removed);
        retired.release(&self.domain, full);
    }

    /// Removes an expired weak observer from inside a post, without waiting for a grace
    /// period: the old snapshot is freed once no post can see it any more.
    #[cold]
    fn remove_expired(&self, id: ObserverId) {
        if let Some((_, retired)) = self.remove(id) {
            retired.release(&self.domain, false);
        }
    }

    /// Counts a panic caught outside the delivery loop (a spawned handler's).
    pub(crate) fn count_panicked(&self) {
        self.panicked.fetch_add(1, Ordering::Relaxed);
    }

    /// Turns retention on (contract 6) without subscribing.
    pub(crate) fn retain_last(&self) {
        self.retain.store(true, Ordering::Release);
    }

    /// Forgets the retained value of one sender.
    pub(crate) fn forget_sender(&self, sender: SenderId) {
        let lock = self.last.lock();
        lock.borrow_mut().by_sender.remove(&sender);
    }

    pub(crate) fn stats(&self) -> Stats {
        let guard = self.domain.read();
        let snap = self.subs.load(&guard);
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
                Kind::Ring(r) => {
                    let s = r.ring.stats(&r.member, e.id);
                    buffered_delivered += s.delivered;
                    Some(s)
                }
                _ => None,
            })
            .collect();
        let observers = snap.entries.len();
        drop(guard);
        let (posted, delivered) = self.domain.sum_counters(self.index);
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        Stats {
            posted: posted + self.shared.posted.load(relaxed),
            delivered: delivered
                + self.shared.delivered.load(relaxed)
                + self.retired_delivered.load(relaxed)
                + buffered_delivered,
            dropped: self.dropped.load(Ordering::Relaxed),
            panicked: self.panicked.load(Ordering::Relaxed),
            dead: self.dead.load(Ordering::Relaxed),
            observers,
            buffers,
        }
    }

    /// Counts values a `post_async` could not hand to a backpressure subscriber after all.
    pub(crate) fn count_dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// The center's read domain.
    pub(crate) fn domain(&self) -> &Domain {
        &self.domain
    }
}

impl<N> Drop for Core<N> {
    fn drop(&mut self) {
        // The center is gone: close every stream so receivers see `Closed` after draining.
        let sink = self.retired_delivered.clone();
        for e in self.subs.get_mut().entries.iter() {
            match &e.kind {
                Kind::Buffered(b) => b.retire(&sink),
                Kind::Ring(r) => {
                    r.ring.leave(&r.member);
                    r.member.retire(&sink);
                }
                _ => {}
            }
        }
    }
}

/// What the center needs from a channel whatever its type: its name, and wildcard entries.
pub(crate) trait ErasedChannel: Send + Sync {
    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync);
    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync>;
    fn name(&self) -> &'static str;
    /// Adds a wildcard entry; the caller retires the old snapshot after a grace period.
    fn add_wildcard(&self, spec: &Arc<WildSpec>) -> Box<dyn std::any::Any + Send>;
    /// Removes a wildcard entry, if present; same contract.
    fn remove_wildcard(&self, id: ObserverId) -> Option<Box<dyn std::any::Any + Send>>;
}

impl<N: Notification> ErasedChannel for Core<N> {
    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }
    fn name(&self) -> &'static str {
        N::name()
    }
    fn add_wildcard(&self, spec: &Arc<WildSpec>) -> Box<dyn std::any::Any + Send> {
        Box::new(self.insert(Arc::new(Entry::wildcard(spec))))
    }
    fn remove_wildcard(&self, id: ObserverId) -> Option<Box<dyn std::any::Any + Send>> {
        self.remove(id)
            .map(|(_, retired)| Box::new(retired) as Box<dyn std::any::Any + Send>)
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

/// The message of a panic payload, when it is a string.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "observer panicked with a non-string payload".to_owned()
    }
}
