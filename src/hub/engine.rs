//! The engine: one [`Core`] per notification type.
//!
//! # The post path
//! A post opens a read section of its center's domain ([`rcu`](crate::hub::rcu)), loads the
//! subscriber [`Snapshot`] (a plain pointer load), and calls each entry in order through one
//! indirect call. The loop isolates panics (`catch_unwind` around it, free unless something
//! unwinds; a panic ends a pass at the entry that panicked, and the next pass starts after
//! it), not each entry: an inline entry's function is then a tail call of its closure. With
//! inline entries only (the common path, [`deliver_common`]) the call goes through the
//! function pointer at the head of the entry ([`Header`]), which removing the entry swaps for
//! [`skip`]; otherwise ([`Core::run`]) through [`Deliver::deliver`], which checks the entry's
//! `removed` flag, and jumps over the streams whose shared ring an earlier stream of the post
//! already wrote ([`Followers`]). Everything an entry may need
//! beyond the call (its sender filter, its predicate, whether its weak target lives, its
//! buffer) is inside that entry's own function: an entry without options costs one load of its
//! header, which shares a cache line with the closure's captures, and its closure call.
//! Counters are the posting thread's own (plain stores, no shared read-modify-write). Snapshot
//! flags send the rare cases (retention for replay, buffered subscribers that need a shared
//! `Arc<N>`) to a separate path, tested with one load.
//!
//! # Writers
//! Subscribe and unsubscribe make a new snapshot under the type's writer lock (sharing the old
//! one's array of entries when the change is at its end: `rcu::ItemBuf`), swap it in, and free
//! the old one after a grace period. Entries live in the type's slab (`slab.rs`), side by side
//! in subscription order. Unsubscribe marks the entry removed before the
//! swap and waits for the grace period before returning: no post can call it afterwards
//! (contract 3, quiescent unsubscribe). From inside a post the wait is skipped (it could
//! deadlock); the swapped header (and the `removed` flag) then keep this thread's own posts in
//! progress from calling the entry, and the old snapshot is retired to a later grace period.
//!
//! # Replay
//! Retention (`replay_last`) and replay share the `last` lock, so a subscriber either replays a
//! value or receives it, never both and never neither (contract 6).
//!
//! Everything that makes the hub correct under concurrency is in this file, `rcu.rs` and
//! `sync.rs`; `tests/loom.rs` model-checks it, `tests/miri.rs` runs it under Miri.

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64 as StdAtomicU64;
use std::sync::{Arc, Weak};

use crate::hub::rcu::{
    Domain, Items, ListSnapshot, Owned, RcuList, ReadGuard, Retired, TypeCounters,
};
use crate::hub::ring::{Posted, Rings};
use crate::hub::slab::Slab;
use crate::hub::stats::{BufferStats, PostReport, Stats};
use crate::hub::sync::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use crate::{
    AnyNotification, DeadNotification, Notification, ObserverId, ObserverPanicked, SenderId,
};

/// What a panicking observer does (contract 4).
///
/// ```
/// use herald::{Notification, NotificationCenter, PanicPolicy};
/// use std::panic::{AssertUnwindSafe, catch_unwind};
///
/// struct Ev;
/// impl Notification for Ev {}
///
/// assert_eq!(PanicPolicy::default(), PanicPolicy::Isolate);
///
/// // Isolate: the panic is caught and counted; the other observers still run.
/// let center = NotificationCenter::new();
/// let _bad = center.observe(|_: &Ev| panic!("boom"));
/// let _good = center.observe(|_: &Ev| {});
/// let report = center.post(Ev);
/// assert_eq!((report.received, report.panicked), (1, 1));
///
/// // Propagate: the panic unwinds out of `post`.
/// let strict = NotificationCenter::builder()
///     .panic_policy(PanicPolicy::Propagate)
///     .build();
/// let _bad = strict.observe(|_: &Ev| panic!("boom"));
/// assert!(catch_unwind(AssertUnwindSafe(|| strict.post(Ev))).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PanicPolicy {
    /// Catch the panic, count it, post [`ObserverPanicked`], and go on with the other
    /// observers. The default.
    #[default]
    Isolate,
    /// Let the panic unwind out of `post` (after the hub's own state is restored). Observers
    /// after the panicking one do not receive that post.
    Propagate,
}

/// The engine's only view of its center: where its reports go.
pub(crate) trait Reports: Send + Sync {
    /// Posts `report` into the center if anyone observes its type.
    fn report(&self, report: HubReport);
}

/// A report the engine posts about itself.
pub(crate) enum HubReport {
    Dead(DeadNotification),
    Panicked(ObserverPanicked),
}

/// What one entry did with one post. The values are chosen so that the delivery loop counts
/// with one addition: bits 0..32 count receivers, bits 32..64 completed inline calls, bits
/// 64..96 panics.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u128)]
pub(crate) enum Delivery {
    /// Not for this entry (sender or predicate filter, removed, expired, closed).
    Skipped = 0,
    /// Accepted into a buffer: counted as delivered when received.
    Accepted = 1,
    /// Delivered and done: an inline call returned.
    Done = 1 | (1 << 32),
    /// The entry's code panicked; the panic was counted and reported (contract 4).
    Panicked = 1 << 64,
}

/// The per-post context an entry may need beyond the value.
///
/// Kept small on the common path (inline observers only): it is built in memory for every
/// post. What only buffered entries, retention and `post_async` need lives in [`CxExt`],
/// present on the general path alone.
pub(crate) struct Cx<'a, N: 'static> {
    core: &'a Core<N>,
    sender: Option<SenderId>,
    ext: Option<&'a mut CxExt<'a, N>>,
    /// On the common path, how far the entries fell short of [`Delivery::Done`] each, in
    /// two lanes of 32 bits (see [`Shortfall`]): only an entry that did not simply complete
    /// writes it.
    shortfall: u64,
}

/// The part of a post's context that only the general path (buffered entries, retention,
/// `post_async`, replay) has.
pub(crate) struct CxExt<'a, N: 'static> {
    /// The post's value in an `Arc`, when an entry needs one (buffered kinds, retention).
    shared: Option<&'a Arc<N>>,
    waiting: Option<&'a mut Waiting<N>>,
    dropped: u32,
    full: u32,
    /// Shared rings (`ring.rs`): the generation of the post's snapshot, the rings this post
    /// has written (one bit each), and receivers counted by a ring beyond the entry that wrote it.
    generation: u64,
    rings_written: u64,
    ring_received: u32,
    /// An entry on a shared ring was found removed: the loop calls every entry from then on
    /// ([`Followers`]).
    ring_entry_removed: bool,
    /// A value handed to a ring that reached nobody ([`OWNED_TAIL`]): dropped with the
    /// context, after the delivery loop, where the shared `Arc` of other posts is dropped
    /// (a panicking drop unwinds out of the post, not into the loop's panic isolation).
    unreceived: Option<Arc<N>>,
}

impl<'a, N: Notification> CxExt<'a, N> {
    fn new(shared: Option<&'a Arc<N>>, waiting: Option<&'a mut Waiting<N>>) -> Self {
        CxExt {
            shared,
            waiting,
            dropped: 0,
            full: 0,
            generation: 0,
            rings_written: 0,
            ring_received: 0,
            ring_entry_removed: false,
            unreceived: None,
        }
    }
}

impl<N> Cx<'_, N> {
    /// Records an entry's delivery on the common path, where each entry counts as
    /// [`Delivery::Done`] unless it says otherwise here.
    #[cold]
    fn not_done(&mut self, delivery: Delivery) {
        self.shortfall += Shortfall::of(delivery);
    }
}

impl<'a, N: Notification> Cx<'a, N> {
    #[inline(always)]
    fn new(core: &'a Core<N>, sender: Option<SenderId>, ext: Option<&'a mut CxExt<'a, N>>) -> Self {
        Cx {
            core,
            sender,
            ext,
            shortfall: 0,
        }
    }

    /// The generation of the snapshot this post iterates.
    #[inline]
    pub(crate) fn generation(&self) -> u64 {
        self.ext.as_ref().map_or(0, |e| e.generation)
    }

    /// True the first time this post reaches the ring with this bit: that entry writes the
    /// ring for every stream on it.
    #[inline]
    pub(crate) fn first_in_ring(&mut self, bit: u64) -> bool {
        match self.ext.as_deref_mut() {
            Some(e) => {
                let first = e.rings_written & bit == 0;
                e.rings_written |= bit;
                first
            }
            None => true,
        }
    }

    /// An entry on a shared ring was removed while this post iterates its snapshot: if it
    /// leads its ring, a follower must write it ([`Followers`]).
    #[cold]
    fn ring_entry_removed(&mut self) {
        if let Some(e) = self.ext.as_deref_mut() {
            e.ring_entry_removed = true;
        }
    }

    /// Whether the loop must call every entry from here on ([`Followers`]).
    #[inline]
    fn calls_every_entry(&self) -> bool {
        self.ext.as_ref().is_some_and(|e| e.ring_entry_removed)
    }

    /// Keeps a value that a ring handed back (it reached nobody) until the post is over.
    pub(crate) fn keep_unreceived(&mut self, value: Option<Arc<N>>) {
        if let (Some(e), Some(v)) = (self.ext.as_deref_mut(), value) {
            e.unreceived = Some(v);
        }
    }

    /// Counts what the entry that wrote a ring did with this post (`posted`): one delivery
    /// for the entry, the ring's other receivers beside it, and the values the ring evicted.
    pub(crate) fn ring_posted(&mut self, posted: Posted) -> Delivery {
        for _ in 0..posted.dropped {
            self.count_dropped(false);
        }
        let Some(others) = posted.received.checked_sub(1) else {
            return Delivery::Skipped;
        };
        if let Some(e) = self.ext.as_deref_mut() {
            e.ring_received = e.ring_received.saturating_add(saturate(others));
        }
        Delivery::Accepted
    }

    /// Who posted.
    #[inline]
    pub(crate) fn sender(&self) -> Option<SenderId> {
        self.sender
    }

    /// The post's shared value, for buffered entries (present whenever the snapshot has one).
    #[inline]
    pub(crate) fn shared(&self) -> Option<&'a Arc<N>> {
        self.ext.as_ref().and_then(|e| e.shared)
    }

    /// A buffered entry lost a value to its overflow policy because of this post.
    pub(crate) fn count_dropped(&mut self, full: bool) {
        if let Some(e) = self.ext.as_deref_mut() {
            e.dropped += 1;
            if full {
                e.full += 1;
            }
        }
        self.core.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// A backpressure entry is full: `post_async` waits for room in it when it asked to
    /// (returns true), else the caller counts the value lost.
    pub(crate) fn wait_for(&mut self, target: Arc<dyn WaitForRoom<N>>) -> bool {
        let Some(e) = self.ext.as_deref_mut() else {
            return false;
        };
        match e.waiting.as_deref_mut() {
            Some(w) => {
                w.targets.push(target);
                if w.value.is_none() {
                    w.value = e.shared.cloned();
                }
                true
            }
            None => false,
        }
    }

    /// A weak entry's target is gone: remove it without waiting.
    pub(crate) fn expired(&self, id: ObserverId) {
        self.core.remove_expired(id);
    }
}

/// One subscriber of one type, as the delivery loop sees it.
///
/// # Safety
/// An implementor is `#[repr(C)]` and begins with a [`Header`] whose function may be called
/// with a pointer to the implementor (the common path reaches it through the data half of a
/// `&dyn Deliver`, without a virtual call: see [`Header::deliver`]). [`Obs`] is the only one.
#[allow(unsafe_code)]
pub(crate) unsafe trait Deliver<N>: Send + Sync + 'static {
    /// Order, identity and sender filter.
    fn meta(&self) -> Meta;
    /// Delivers one post. Runs on the posting thread, inside the loop's `catch_unwind`
    /// ([`Core::run`]): a panic leaves it.
    fn deliver(&self, value: &N, cx: &mut Cx<'_, N>) -> Delivery;
    /// Delivers one post by value: an entry of the snapshot's owned tail ([`OWNED_TAIL`]).
    /// `Err` hands the value back untouched (the entry is removed: the next entry of its
    /// ring writes the ring).
    fn deliver_owned(&self, value: N, cx: &mut Cx<'_, N>) -> Result<Delivery, N>;
    /// Marks the entry removed: this thread's post in progress skips it from now on.
    fn mark_removed(&self);
    /// What a post must bring this entry beyond the common path, as snapshot flags:
    /// [`NEEDS_SHARED`] (an `Arc<N>`: buffered kinds), [`NEEDS_CONTEXT`] (the general path's
    /// context without one: value rings), or 0.
    fn needs(&self) -> u8 {
        0
    }
    /// The entry left its channel: close its buffer, if any (what it delivered from now on
    /// counts into `sink`).
    fn retire(&self, _sink: &Arc<StdAtomicU64>) {}
    /// Its buffer's counters, if it has one.
    fn buffer_stats(&self) -> Option<BufferStats> {
        None
    }
    /// The bit of the shared ring this entry writes (`Cx::first_in_ring`), or 0.
    fn ring(&self) -> u64 {
        0
    }
}

/// An entry, owned by its channel's writer list until it is removed and retired.
pub(crate) type Entry<N> = Owned<dyn Deliver<N>>;

/// Order and identity of an entry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta {
    pub(crate) id: ObserverId,
    pub(crate) priority: i32,
    pub(crate) sender: Option<SenderId>,
}

impl Meta {
    pub(crate) fn new(priority: i32, sender: Option<SenderId>) -> Self {
        Meta {
            id: ObserverId::next(),
            priority,
            sender,
        }
    }

    /// Sorted by priority (higher first), then registration order (ids grow).
    fn order_key(&self) -> (std::cmp::Reverse<i32>, u64) {
        (std::cmp::Reverse(self.priority), self.id.as_u64())
    }
}

/// What an entry does with a value it accepted: the part that differs between kinds.
pub(crate) trait Kind<N>: Send + Sync + 'static {
    fn call(&self, value: &N, cx: &mut Cx<'_, N>, meta: &Meta) -> Delivery;
    /// As [`Deliver::deliver_owned`]: a kind that can keep the value itself takes it.
    fn call_owned(&self, value: N, cx: &mut Cx<'_, N>, meta: &Meta) -> Delivery {
        self.call(&value, cx, meta)
    }
    /// As [`Deliver::needs`].
    fn needs(&self) -> u8 {
        0
    }
    fn retire(&self, _sink: &Arc<StdAtomicU64>) {}
    /// The sender this kind accepts only, if it filters by one ([`FromSender`]): the entry
    /// keeps it nowhere else.
    fn sender(&self) -> Option<SenderId> {
        None
    }
    fn buffer_stats(&self, _id: ObserverId) -> Option<BufferStats> {
        None
    }
    /// As [`Deliver::ring`]. Only an unwrapped ring kind has one: a filter in front of the
    /// ring would make its leader's refusal every follower's ([`Followers`]).
    fn ring(&self) -> u64 {
        0
    }
}

/// What the common path calls for one entry: the entry's own delivery, or [`skip`] once the
/// entry is removed. The entry counts as [`Delivery::Done`] unless it records otherwise in
/// `cx`, so the loop sums nothing.
type CommonFn<N> = for<'v, 'c, 'x> unsafe fn(*const Header<N>, &'v N, &'c mut Cx<'x, N>);

/// The first field of every entry: the function the common path calls for it.
///
/// Removing an entry swaps [`skip`] in, which is how a post of this thread that is already
/// iterating a snapshot with the entry (an observer unsubscribing another from inside a post)
/// stops calling it: the entry's own function checks no flag, and the loop one load and one
/// call per entry, like a `Vec<Box<dyn Fn>>`.
#[repr(C)]
pub(crate) struct Header<N: 'static> {
    /// A [`CommonFn<N>`], stored as a plain pointer. Only this thread's own unsubscribe (from
    /// inside an observer) can race with a post's load: the grace period covers every other
    /// thread, so `Relaxed` is enough.
    common: AtomicPtr<()>,
    _n: PhantomData<fn(&N)>,
}

impl<N: 'static> Header<N> {
    fn new(common: CommonFn<N>) -> Self {
        Header {
            common: AtomicPtr::new(common as *mut ()),
            _n: PhantomData,
        }
    }

    /// The header of `entry`, with the provenance of the whole entry.
    #[inline(always)]
    fn of(entry: &dyn Deliver<N>) -> *const Header<N> {
        (entry as *const dyn Deliver<N>).cast::<Header<N>>()
    }

    /// Calls the entry's common-path function.
    ///
    /// # Safety
    /// `header` comes from [`Header::of`] on an entry that is alive for the call.
    #[allow(unsafe_code)]
    #[inline(always)]
    unsafe fn deliver(header: *const Header<N>, value: &N, cx: &mut Cx<'_, N>) {
        // SAFETY: the caller's entry is alive, and every `Deliver` begins with its header.
        let common = unsafe { &(*header).common }.load(Ordering::Relaxed);
        // SAFETY: `common` only ever holds a `CommonFn<N>` (`Header::new`, `mark_removed`);
        // a function pointer round-trips through a data pointer of the same size.
        let common = unsafe { std::mem::transmute::<*mut (), CommonFn<N>>(common) };
        // SAFETY: the function is the entry's own (or `skip`), given its own header.
        unsafe { common(header, value, cx) }
    }
}

/// The common path's delivery loop: for each entry, one load of its function and one call,
/// like a `Vec<Box<dyn Fn>>`.
///
/// Panics are isolated here, around the loop, and not in each entry's function: that function
/// then has no landing pad and nothing to do after the observer returns, so an inline
/// observer's closure is reached by a tail call ([`Obs::common`]). A pass stops at the entry
/// that panicked; the panic is counted and reported, the entry counts as
/// [`Delivery::Panicked`], and the next pass starts after it. The loop walks the array with one
/// pointer, which is also how the landing pad knows where the pass was. Under
/// [`PanicPolicy::Propagate`] posts take the general path, so a panic never leaves this loop.
#[inline(always)]
fn deliver_common<N: Notification>(
    items: Items<'_, dyn Deliver<N>>,
    value: &N,
    cx: &mut Cx<'_, N>,
) {
    if let Err((at, payload)) = deliver_pass(items, 0, value, cx) {
        after_panic(items, at, payload, value, cx);
    }
}

/// One pass of [`deliver_common`] from `from`: `Err` with the position of the entry that
/// panicked, and its payload.
#[inline(always)]
fn deliver_pass<N: Notification>(
    items: Items<'_, dyn Deliver<N>>,
    from: usize,
    value: &N,
    cx: &mut Cx<'_, N>,
) -> Result<(), (Option<usize>, Box<dyn Any + Send>)> {
    let calling = std::cell::Cell::new(std::ptr::null());
    catch_unwind(AssertUnwindSafe(|| {
        for (place, entry) in items.starting_at(from) {
            calling.set(place);
            // SAFETY: the entry is in the snapshot the caller's read section loaded: alive
            // for the call.
            #[allow(unsafe_code)]
            unsafe {
                Header::deliver(Header::of(entry), value, cx);
            }
        }
    }))
    // Always found: a pass sets `calling` before each call.
    .map_err(|payload| (items.index_of(calling.get()), payload))
}

/// The rest of a [`deliver_common`] after the entry at `at` panicked, out of the common path's
/// way: counts and reports the panic (never resumes it: `Propagate` takes the general path),
/// then goes on with the next entry, as often as entries panic.
#[cold]
#[inline(never)]
fn after_panic<N: Notification>(
    items: Items<'_, dyn Deliver<N>>,
    mut at: Option<usize>,
    mut payload: Box<dyn Any + Send>,
    value: &N,
    cx: &mut Cx<'_, N>,
) {
    loop {
        // It resumes the panic when the pass stopped at no entry: below, `at` is known.
        cx.core
            .entry_panicked(at.and_then(|at| items.get(at)), payload);
        cx.not_done(Delivery::Panicked);
        let Some(done) = at else { return };
        match deliver_pass(items, done + 1, value, cx) {
            Ok(()) => return,
            Err((next, next_payload)) => (at, payload) = (next, next_payload),
        }
    }
}

/// The common-path function of a removed entry.
#[allow(unsafe_code)]
unsafe fn skip<N: 'static>(_: *const Header<N>, _: &N, cx: &mut Cx<'_, N>) {
    cx.not_done(Delivery::Skipped);
}

/// An entry: its header, the kind, its order and the `removed` flag. The fields every post
/// reads (the header and the kind's captures) come first, in a slot of its type's slab that no
/// writer touches while it is subscribed (snapshots hold plain pointers to it, not reference
/// counts). The [`Meta`] is kept field by field, the flag in what would be its padding, and
/// the sender only in the kind that filters by it: an entry with one captured pointer takes
/// 32 bytes, two to a cache line (at 256 observers, half the lines of 64-byte entries for a
/// post to walk; see `slab.rs`).
#[repr(C)]
pub(crate) struct Obs<N: 'static, K> {
    header: Header<N>,
    kind: K,
    id: ObserverId,
    priority: i32,
    removed: AtomicBool,
}

impl<N: Notification, K: Kind<N>> Obs<N, K> {
    pub(crate) fn new(meta: Meta, kind: K) -> Self {
        // The sender is kept in the kind (`FromSender`) only.
        debug_assert_eq!(meta.sender, kind.sender());
        Obs {
            header: Header::new(Self::common),
            kind,
            id: meta.id,
            priority: meta.priority,
            removed: AtomicBool::new(false),
        }
    }

    /// Whether the entry is removed (then a ring it leads is written by a follower).
    #[inline]
    fn is_removed(&self, cx: &mut Cx<'_, N>) -> bool {
        // Only this thread's own unsubscribe (from inside an observer) can race here: the
        // grace period covers every other thread, so `Relaxed` is enough.
        if self.removed.load(Ordering::Relaxed) {
            if self.kind.ring() != 0 {
                cx.ring_entry_removed();
            }
            return true;
        }
        false
    }

    #[inline(always)]
    fn unpacked(&self) -> Meta {
        Meta {
            id: self.id,
            priority: self.priority,
            sender: self.kind.sender(),
        }
    }

    /// This entry's [`CommonFn`]. It does not catch panics: the common path's loop does
    /// ([`deliver_common`]), so that for an inline observer this is the closure's call and
    /// nothing else. With no landing pad and no result to check after it, the compiler makes
    /// it a tail call, even to a closure that calls code it cannot see or inline: such an
    /// observer costs one call, as in a `Vec<Box<dyn Fn>>`, not a call into a frame that
    /// saves registers, calls the closure and tests what it returned.
    ///
    /// # Safety
    /// `header` points to the header of a live `Obs<N, K>`, with its provenance.
    #[allow(unsafe_code)]
    unsafe fn common(header: *const Header<N>, value: &N, cx: &mut Cx<'_, N>) {
        // SAFETY: the header is this type's first field (`repr(C)`), and the pointer carries
        // the whole entry's provenance (`Header::of`).
        let this = unsafe { &*header.cast::<Self>() };
        let delivery = this.kind.call(value, cx, &this.unpacked());
        if !matches!(delivery, Delivery::Done) {
            cx.not_done(delivery);
        }
    }
}

// SAFETY: `Obs` is `repr(C)` and begins with a `Header<N>` holding `Obs::<N, K>::common` or
// `skip`, both of which accept a pointer to it.
#[allow(unsafe_code)]
unsafe impl<N: Notification, K: Kind<N>> Deliver<N> for Obs<N, K> {
    fn meta(&self) -> Meta {
        self.unpacked()
    }

    #[inline]
    fn deliver(&self, value: &N, cx: &mut Cx<'_, N>) -> Delivery {
        if self.is_removed(cx) {
            return Delivery::Skipped;
        }
        // No panic guard here either: the general path's loop isolates panics (`Core::run`).
        self.kind.call(value, cx, &self.unpacked())
    }

    fn deliver_owned(&self, value: N, cx: &mut Cx<'_, N>) -> Result<Delivery, N> {
        if self.is_removed(cx) {
            return Err(value);
        }
        Ok(self.kind.call_owned(value, cx, &self.unpacked()))
    }

    fn mark_removed(&self) {
        // Both: the general path reads the flag, the common path calls the header. Whether
        // the header holds `skip` cannot stand in for the flag (one generic function can have
        // several addresses, one per codegen unit).
        self.removed.store(true, Ordering::Relaxed);
        self.header
            .common
            .store(skip::<N> as CommonFn<N> as *mut (), Ordering::Relaxed);
    }

    fn needs(&self) -> u8 {
        self.kind.needs()
    }

    fn retire(&self, sink: &Arc<StdAtomicU64>) {
        self.kind.retire(sink);
    }

    fn buffer_stats(&self) -> Option<BufferStats> {
        self.kind.buffer_stats(self.id)
    }

    fn ring(&self) -> u64 {
        self.kind.ring()
    }
}

/// An inline observer: called on the posting thread.
pub(crate) struct Inline<F>(pub(crate) F);

impl<N: Notification, F: Fn(&N) + Send + Sync + 'static> Kind<N> for Inline<F> {
    #[inline]
    fn call(&self, value: &N, _: &mut Cx<'_, N>, _: &Meta) -> Delivery {
        (self.0)(value);
        Delivery::Done
    }
}

/// An inline observer that also receives the post's sender.
pub(crate) struct InlineWithSender<F>(pub(crate) F);

impl<N: Notification, F: Fn(&N, Option<SenderId>) + Send + Sync + 'static> Kind<N>
    for InlineWithSender<F>
{
    #[inline]
    fn call(&self, value: &N, cx: &mut Cx<'_, N>, _: &Meta) -> Delivery {
        (self.0)(value, cx.sender());
        Delivery::Done
    }
}

/// An inline observer of a weakly held target: removed the first time the target is gone.
/// `f` says whether it took the value (its filter, asked only while the target lives).
pub(crate) struct WeakInline<T, F> {
    pub(crate) target: Weak<T>,
    pub(crate) f: F,
}

impl<N, T, F> Kind<N> for WeakInline<T, F>
where
    N: Notification,
    T: Send + Sync + 'static,
    F: Fn(&T, &N) -> bool + Send + Sync + 'static,
{
    fn call(&self, value: &N, cx: &mut Cx<'_, N>, meta: &Meta) -> Delivery {
        match self.target.upgrade() {
            Some(t) if (self.f)(&t, value) => Delivery::Done,
            Some(_) => Delivery::Skipped,
            None => {
                cx.expired(meta.id);
                Delivery::Skipped
            }
        }
    }
}

/// A type-erased observer's closure, shared by every channel it observes. It returns whether
/// it delivered (false: its filter refused the value, or its weak target is gone).
pub(crate) type AnyFn = Arc<dyn Fn(&AnyNotification<'_>) -> bool + Send + Sync>;

/// A type-erased observer (wildcard or family).
pub(crate) struct AnyInline(pub(crate) AnyFn);

impl<N: Notification> Kind<N> for AnyInline {
    fn call(&self, value: &N, cx: &mut Cx<'_, N>, _: &Meta) -> Delivery {
        if (self.0)(&AnyNotification::new(value, cx.sender())) {
            Delivery::Done
        } else {
            Delivery::Skipped
        }
    }
}

/// One wildcard subscription, shared by every channel it observes.
pub(crate) struct WildSpec {
    pub(crate) meta: Meta,
    pub(crate) prefix: Option<String>,
    pub(crate) f: AnyFn,
}

impl WildSpec {
    /// Whether a notification type with `name` is observed (for a type whose values are
    /// named one by one, `names_vary`: always, and its observer checks each value's name).
    pub(crate) fn matches(&self, name: &str, names_vary: bool) -> bool {
        names_vary || self.prefix.as_deref().is_none_or(|p| name.starts_with(p))
    }
}

/// Something a subscription guard can remove itself from: a type's channel, or the center
/// (for wildcard subscriptions, which span channels).
pub(crate) trait Unsubscribe: Send + Sync {
    fn unsubscribe(&self, id: ObserverId);
}

impl<N: Notification> Unsubscribe for Core<N> {
    fn unsubscribe(&self, id: ObserverId) {
        Core::unsubscribe(self, id);
    }
}

/// Only what one sender posted (contract 8).
pub(crate) struct FromSender<K>(pub(crate) SenderId, pub(crate) K);

impl<N: Notification, K: Kind<N>> Kind<N> for FromSender<K> {
    #[inline]
    fn call(&self, value: &N, cx: &mut Cx<'_, N>, meta: &Meta) -> Delivery {
        if cx.sender() != Some(self.0) {
            return Delivery::Skipped;
        }
        self.1.call(value, cx, meta)
    }
    fn needs(&self) -> u8 {
        self.1.needs()
    }
    fn retire(&self, sink: &Arc<StdAtomicU64>) {
        self.1.retire(sink);
    }
    fn sender(&self) -> Option<SenderId> {
        Some(self.0)
    }
    fn buffer_stats(&self, id: ObserverId) -> Option<BufferStats> {
        self.1.buffer_stats(id)
    }
}

/// Only values a predicate accepts. The predicate runs on the posting thread, with the same
/// panic isolation as an observer.
pub(crate) struct Filtered<P, K>(pub(crate) P, pub(crate) K);

impl<N, P, K> Kind<N> for Filtered<P, K>
where
    N: Notification,
    P: Fn(&N) -> bool + Send + Sync + 'static,
    K: Kind<N>,
{
    #[inline]
    fn call(&self, value: &N, cx: &mut Cx<'_, N>, meta: &Meta) -> Delivery {
        if !(self.0)(value) {
            return Delivery::Skipped;
        }
        self.1.call(value, cx, meta)
    }
    fn needs(&self) -> u8 {
        self.1.needs()
    }
    fn retire(&self, sink: &Arc<StdAtomicU64>) {
        self.1.retire(sink);
    }
    fn sender(&self) -> Option<SenderId> {
        self.1.sender()
    }
    fn buffer_stats(&self, id: ObserverId) -> Option<BufferStats> {
        self.1.buffer_stats(id)
    }
}

/// A boxed predicate, as the builder collects it.
pub(crate) type Filter<N> = Box<dyn Fn(&N) -> bool + Send + Sync>;

/// Wraps `kind` with the sender and predicate filters a subscription asked for, and makes the
/// entry: each combination is its own type, so an entry without filters pays nothing for them.
fn entry<N: Notification, K: Kind<N>>(
    slab: &Arc<Slab>,
    meta: Meta,
    filter: Option<Filter<N>>,
    kind: K,
) -> Entry<N> {
    match (meta.sender, filter) {
        (None, None) => place(slab, Obs::new(meta, kind)),
        (Some(s), None) => place(slab, Obs::new(meta, FromSender(s, kind))),
        (None, Some(f)) => place(slab, Obs::new(meta, Filtered(f, kind))),
        (Some(s), Some(f)) => place(slab, Obs::new(meta, FromSender(s, Filtered(f, kind)))),
    }
}

/// Makes an entry in the type's slab, next to the entries subscribed before it (`slab.rs`),
/// or boxed if it does not fit a line.
fn place<N: Notification, E: Deliver<N>>(slab: &Arc<Slab>, entry: E) -> Entry<N> {
    match slab.put(entry) {
        Ok(at) => {
            let at: NonNull<dyn Deliver<N>> = at;
            // SAFETY: `at` is where `put` wrote the entry, and nothing else owns it.
            #[allow(unsafe_code)]
            unsafe {
                Owned::in_slab(at, slab.clone())
            }
        }
        Err(entry) => Owned::boxed(Box::new(entry)),
    }
}

/// The immutable subscriber list a post iterates, and its summary.
pub(crate) type Snapshot<N> = ListSnapshot<dyn Deliver<N>, Summary>;

/// A snapshot's flags, and its generation: one more than the snapshot it replaced (shared
/// rings skip streams that joined after the snapshot a post iterates).
#[derive(Debug, Clone, Default)]
pub(crate) struct Summary {
    flags: u8,
    generation: u64,
    /// When some entries follow another entry of the same shared ring: for each entry, the
    /// next one the general path's loop calls ([`Followers`]).
    next: Option<Arc<[u32]>>,
    /// With [`OWNED_TAIL`]: where the tail starts (its ring's first entry).
    tail: u32,
}

/// Which entries a post must call when several streams share a ring.
///
/// The first entry of a ring that a post reaches (its *leader*, the first in the snapshot's
/// order) writes the value once for every stream on the ring; the others (its *followers*)
/// have nothing to do (`Cx::first_in_ring`). A post used to call every follower anyway, one
/// virtual call each to learn that: at 16 streams on one ring, 15 calls of nothing on every
/// post, a third of the poster's time. A snapshot with followers keeps, for each entry, the
/// index of the next entry that is not one, and the loop jumps over them.
///
/// One case needs the followers after all: a leader removed while a post is iterating its
/// snapshot (an observer of this thread unsubscribing it, or another thread's unsubscribe
/// still waiting for its grace period) skips, and its ring is then written by the next stream
/// of it that the post reaches, as before. The removed leader says so (`Cx::ring_entry_removed`),
/// and the loop calls every entry from there on.
struct Followers;

impl Followers {
    /// The jump table of a snapshot whose entries write the rings `bits` (one per entry, in
    /// order; 0 for an entry on no ring), or `None` if no entry follows another (then nothing
    /// is allocated: subscribe and unsubscribe make a summary every time).
    fn next(bits: impl Iterator<Item = u64>) -> Option<Arc<[u32]>> {
        let mut rings = 0u64;
        let mut len = 0;
        let mut followers = Vec::new();
        for (i, bit) in bits.enumerate() {
            if rings & bit != 0 {
                followers.push(i);
            }
            rings |= bit;
            len = i + 1;
        }
        if followers.is_empty() {
            return None;
        }
        // Backwards: each entry's next is the one after it, unless that one follows, in which
        // case it is that one's next. The end is `len`.
        let mut next = vec![0u32; len];
        let mut after = saturate(len);
        for i in (0..len).rev() {
            next[i] = after;
            if followers.last() == Some(&i) {
                followers.pop();
            } else {
                after = saturate(i);
            }
        }
        Some(next.into())
    }
}

/// Some entry needs the post's shared `Arc<N>` (buffered kinds).
pub(crate) const NEEDS_SHARED: u8 = 1;
/// Some entry needs the general path's context but no `Arc<N>` (value rings).
pub(crate) const NEEDS_CONTEXT: u8 = 8;
/// Retention is on: posts store their value for `replay_last`.
const RETAIN: u8 = 2;
/// The center's panic policy is `Propagate`: posts take the general path, which counts what
/// was delivered before a panic unwinds out of `post`.
const PROPAGATE: u8 = 4;
/// The snapshot ends with the entries of one shared ring (its *owned tail*, from the ring's
/// first entry on), no other entry needs the post's value in an `Arc`, and retention is off:
/// nothing after the ring's first entry reads the value. The post delivers the other entries
/// first, borrowing the value, then hands the value itself to the tail's first entry that is
/// not removed ([`Deliver::deliver_owned`]), which writes the ring: the ring moves the value
/// in for a lone member, and otherwise makes the `Arc` itself and keeps the post's reference
/// as one of its tickets (`ring.rs`, "Moved values"). The post then makes no `Arc` and drops
/// none.
const OWNED_TAIL: u8 = 16;

/// The summary of a snapshot of `entries` replacing one summarized by `previous`: keeps
/// `RETAIN` and `PROPAGATE`, counts one more generation.
fn flags<N: 'static>(
    previous: &Summary,
    entries: &mut dyn Iterator<Item = &dyn Deliver<N>>,
) -> Summary {
    flags_with(previous, 0, entries)
}

/// [`flags`], with the snapshot-wide flags `add` turned on (retention).
fn flags_with<N: 'static>(
    previous: &Summary,
    add: u8,
    entries: &mut dyn Iterator<Item = &dyn Deliver<N>>,
) -> Summary {
    let mut flags = (previous.flags | add) & (RETAIN | PROPAGATE);
    let mut tail = OwnedTail::default();
    let next = Followers::next(entries.enumerate().map(|(i, e)| {
        let needs = e.needs();
        let ring = e.ring();
        flags |= needs;
        tail.see(i, needs & NEEDS_SHARED != 0, ring);
        ring
    }));
    let tail = match tail.start() {
        Some(start) if flags & RETAIN == 0 => {
            flags |= OWNED_TAIL;
            start
        }
        _ => 0,
    };
    Summary {
        flags,
        generation: previous.generation + 1,
        next,
        tail,
    }
}

/// Whether a snapshot has an owned tail ([`OWNED_TAIL`]), seen one entry at a time.
#[derive(Default)]
struct OwnedTail {
    /// The ring of the entries that need the value shared, and the index of its first entry.
    ring: Option<(u64, usize)>,
    /// An entry rules it out: one needing the value shared off that ring, or any entry after
    /// the ring's first that is not on it.
    spoiled: bool,
}

impl OwnedTail {
    fn see(&mut self, index: usize, shared: bool, ring: u64) {
        match self.ring {
            None if shared => {
                if ring == 0 {
                    self.spoiled = true;
                } else {
                    self.ring = Some((ring, index));
                }
            }
            None => {}
            Some((bit, _)) => self.spoiled |= ring != bit,
        }
    }

    /// Where the owned tail starts, if the snapshot has one.
    fn start(&self) -> Option<u32> {
        match self.ring {
            Some((_, start)) if !self.spoiled => Some(saturate(start)),
            _ => None,
        }
    }
}

/// Where `entry` goes in `snap`: by priority (higher first), then registration order.
fn position<N: 'static>(snap: &Snapshot<N>, entry: &dyn Deliver<N>) -> usize {
    let key = entry.meta().order_key();
    snap.iter()
        .take_while(|e| e.meta().order_key() <= key)
        .count()
}

/// A post's value on the general path: in an `Arc` when an entry keeps one, else as posted.
enum Held<N> {
    Shared(Arc<N>),
    Owned(N),
}

/// The last posted values, kept once retention is on (contract 6); the last value of all
/// keeps who posted it, so a replay reports the same sender the post did.
struct Last<N> {
    any: Option<(Arc<N>, Option<SenderId>)>,
    by_sender: HashMap<SenderId, Arc<N>>,
}

#[cfg(not(herald_loom))]
type LastLock<N> = parking_lot::ReentrantMutex<RefCell<Last<N>>>;
#[cfg(herald_loom)]
type LastLock<N> = crate::hub::sync::Mutex<RefCell<Last<N>>>;

/// The channel of one notification type.
pub(crate) struct Core<N: 'static> {
    domain: Arc<Domain>,
    /// This type's index in its center (for per-thread counters).
    index: usize,
    /// The entries and their snapshot. Its writer lock serializes subscribe and unsubscribe;
    /// it is never held while calling user code or waiting for a grace period.
    subs: RcuList<dyn Deliver<N>, Summary>,
    last: LastLock<N>,
    policy: PanicPolicy,
    reports: Weak<dyn Reports>,
    /// Counters for posts whose thread's slot has no room for this type (see
    /// `rcu::Slot::counters`).
    shared: TypeCounters,
    dropped: AtomicU64,
    panicked: AtomicU64,
    dead: AtomicU64,
    /// Deliveries made by buffered subscribers that have left the snapshot.
    retired_delivered: Arc<StdAtomicU64>,
    /// The shared rings of drop-oldest and latest-only streams, by capacity (`ring.rs`).
    rings: Rings<N>,
}

impl<N: Notification> Core<N> {
    pub(crate) fn new(
        domain: Arc<Domain>,
        index: usize,
        policy: PanicPolicy,
        reports: Weak<dyn Reports>,
    ) -> Self {
        Core {
            domain,
            index,
            subs: RcuList::new(Summary {
                flags: if policy == PanicPolicy::Propagate {
                    PROPAGATE
                } else {
                    0
                },
                generation: 0,
                next: None,
                tail: 0,
            }),
            last: LastLock::new(RefCell::new(Last {
                any: None,
                by_sender: HashMap::new(),
            })),
            policy,
            reports,
            shared: TypeCounters::default(),
            dropped: AtomicU64::new(0),
            panicked: AtomicU64::new(0),
            dead: AtomicU64::new(0),
            retired_delivered: Arc::new(StdAtomicU64::new(0)),
            rings: Rings::default(),
        }
    }

    /// Makes an entry of kind `kind` for this type, with its order and filters.
    pub(crate) fn entry<K: Kind<N>>(
        &self,
        priority: i32,
        sender: Option<SenderId>,
        filter: Option<Filter<N>>,
        kind: K,
    ) -> Entry<N> {
        entry(self.subs.slab(), Meta::new(priority, sender), filter, kind)
    }

    /// The shared rings of this type.
    pub(crate) fn rings(&self) -> &Rings<N> {
        &self.rings
    }

    /// The center's read domain.
    pub(crate) fn domain(&self) -> &Domain {
        &self.domain
    }

    /// Whether anyone observes this type right now.
    pub(crate) fn has_observers(&self, section: &ReadGuard<'_>) -> bool {
        self.subs.load(section).len() != 0
    }

    /// Posts: inline observers run before this returns.
    ///
    /// The common case, written to be inlined into the caller with the read section it opened:
    /// no buffered subscriber and no retention means no `Arc<N>`, no drop to count and no
    /// backpressure, so only the receivers, the inline calls and the panics are counted.
    #[inline(always)]
    pub(crate) fn post(
        &self,
        section: &ReadGuard<'_>,
        value: N,
        sender: Option<SenderId>,
    ) -> PostReport {
        let snap = self.subs.load(section);
        // Both paths hand back plain counts and the report is built once, at the end: merging
        // two built reports made the compiler copy one through memory on every post. A
        // section without a slot (a thread being torn down) takes the general path too, so
        // the common one counts into the slot and closes the section without testing again.
        let (received, dropped, full, panicked) = if snap.extra.flags != 0 || !section.has_slot() {
            // The general path opens its own (nested) section: handing it this one by
            // reference would make the guard live in memory on the common path too.
            let r = self.post_general(value, sender, None);
            (r.received, r.dropped, r.full, r.panicked)
        } else {
            // Each entry counts as `Done` unless it records otherwise (`Header`): the loop
            // sums nothing, and the counts are the entries less the shortfall.
            let mut cx = Cx::new(self, sender, None);
            // A snapshot holds fewer than 2^32 entries (each one a heap allocation).
            let entries = snap.len() as u32;
            deliver_common(snap.items(), &value, &mut cx);
            let done = Shortfall::done(entries, cx.shortfall);
            self.count(section, done.inline);
            if Shortfall::dead(entries, cx.shortfall) {
                self.dead(sender);
            }
            (done.received, 0, 0, done.panicked)
        };
        PostReport {
            received,
            dropped,
            full,
            panicked,
        }
    }

    /// Posts; backpressure subscribers that were full are pushed into `waiting` (with the
    /// shared value) instead of being reported full, for `post_async` to wait on.
    pub(crate) fn post_waiting(
        &self,
        value: N,
        sender: Option<SenderId>,
        waiting: &mut Waiting<N>,
    ) -> PostReport {
        self.post_general(value, sender, Some(waiting))
    }

    /// Posts with a shared `Arc<N>` (buffered subscribers, retention), or with the context
    /// only (value rings), or for `post_async`.
    #[cold]
    #[inline(never)]
    fn post_general(
        &self,
        value: N,
        sender: Option<SenderId>,
        waiting: Option<&mut Waiting<N>>,
    ) -> PostReport {
        let section = self.domain.read();
        let mut snap = self.subs.load(&section);
        if snap.extra.flags & OWNED_TAIL != 0 {
            // The entries before the tail first, with the value borrowed; then the tail
            // takes it.
            let mut ext = CxExt::new(None, waiting);
            ext.generation = snap.extra.generation;
            let mut cx = Cx::new(self, sender, Some(&mut ext));
            let items = snap.items();
            let tail = snap.extra.tail as usize;
            let next = snap.extra.next.as_deref();
            let before = |i| items.get(i).filter(|_| i < tail);
            let done = self.run(&section, before, next, &value, &mut cx);
            let (done, left) =
                self.run_tail(&section, done, |i| items.get(i), tail, value, &mut cx);
            let report = self.finish(&section, done, cx);
            // Dropped after the post is counted, as the shared `Arc` of other posts is.
            drop(left);
            return report;
        }
        // An `Arc` only for the entries that keep one: value rings clone from the value.
        let held = if snap.extra.flags & (NEEDS_SHARED | RETAIN) != 0 {
            Held::Shared(Arc::new(value))
        } else {
            Held::Owned(value)
        };
        if let Held::Shared(shared) = &held
            && snap.extra.flags & RETAIN != 0
        {
            // Store and load the snapshot under `last`, deliver outside it: a concurrent
            // `replay_last` subscriber either sees this value in `last` or is in the snapshot.
            let lock = self.last.lock();
            let mut last = lock.borrow_mut();
            last.any = Some((shared.clone(), sender));
            if let Some(s) = sender {
                last.by_sender.insert(s, shared.clone());
            }
            snap = self.subs.load(&section);
        }
        let (value, shared) = match &held {
            Held::Shared(s) => (&**s, Some(s)),
            Held::Owned(v) => (v, None),
        };
        let mut ext = CxExt::new(shared, waiting);
        ext.generation = snap.extra.generation;
        let mut cx = Cx::new(self, sender, Some(&mut ext));
        let items = snap.items();
        let next = snap.extra.next.as_deref();
        let done = self.run(&section, |i| items.get(i), next, value, &mut cx);
        self.finish(&section, done, cx)
    }

    /// The general path's delivery loop: one virtual call per entry, no lock, no allocation.
    /// Panics are isolated here, around the loop, as on the common path ([`deliver_common`]):
    /// a pass stops at the entry that panicked, whose panic is counted and reported, and the
    /// next pass starts after it. Under `Propagate` the deliveries this post made before the
    /// panic are counted, and the panic goes on out of `post`. With `follow` (the snapshot's
    /// jump table, [`Followers`]) it calls only the entries that are not ring followers,
    /// unless one of the ring's entries turns out removed.
    fn run<'e>(
        &self,
        section: &ReadGuard<'_>,
        at: impl Fn(usize) -> Option<&'e dyn Deliver<N>>,
        follow: Option<&[u32]>,
        value: &N,
        cx: &mut Cx<'_, N>,
    ) -> Done {
        let step = |i: usize, cx: &Cx<'_, N>| match follow {
            Some(next) if !cx.calls_every_entry() => next.get(i).map_or(i + 1, |&n| n as usize),
            _ => i + 1,
        };
        let mut counted = 0u128;
        let mut next = 0;
        loop {
            let pass = catch_unwind(AssertUnwindSafe(|| {
                while let Some(entry) = at(next) {
                    counted += entry.deliver(value, cx) as u128;
                    next = step(next, cx);
                }
            }));
            let Err(payload) = pass else {
                return Done::from(counted);
            };
            // `next` is the entry that panicked.
            if self.policy == PanicPolicy::Propagate {
                self.count(section, Done::from(counted).inline);
            }
            self.entry_panicked(at(next), payload);
            counted += Delivery::Panicked as u128;
            next = step(next, cx);
        }
    }

    /// Hands the post's value itself to the snapshot's owned tail ([`OWNED_TAIL`]), from
    /// entry `from` on, after `run` delivered it to the entries before (`done`): the first
    /// entry that is not removed takes it (the rest are followers of its ring, with nothing
    /// to do), with the same panic isolation as `run`. A value nobody took (every entry of the
    /// tail removed) comes back, for the caller to drop once the post is counted.
    fn run_tail<'e>(
        &self,
        section: &ReadGuard<'_>,
        done: Done,
        at: impl Fn(usize) -> Option<&'e dyn Deliver<N>>,
        from: usize,
        value: N,
        cx: &mut Cx<'_, N>,
    ) -> (Done, Option<N>) {
        let mut value = value;
        let mut i = from;
        let delivery = loop {
            let Some(entry) = at(i) else {
                return (done, Some(value));
            };
            match catch_unwind(AssertUnwindSafe(|| entry.deliver_owned(value, cx))) {
                Ok(Ok(delivery)) => break delivery,
                Ok(Err(back)) => value = back,
                Err(payload) => {
                    if self.policy == PanicPolicy::Propagate {
                        self.count(section, done.inline);
                    }
                    self.entry_panicked(Some(entry), payload);
                    break Delivery::Panicked;
                }
            }
            i += 1;
        };
        let tail = Done::from(delivery as u128);
        let done = Done {
            received: done.received + tail.received,
            inline: done.inline + tail.inline,
            panicked: done.panicked + tail.panicked,
        };
        (done, None)
    }

    /// Counts the post and reports it dead if nobody received it.
    #[inline]
    fn finish(&self, section: &ReadGuard<'_>, done: Done, cx: Cx<'_, N>) -> PostReport {
        self.count(section, done.inline);
        let (waited, ring_received, dropped, full) = cx.ext.as_deref().map_or((0, 0, 0, 0), |e| {
            let waited = e.waiting.as_ref().map_or(0, |w| saturate(w.targets.len()));
            (waited, e.ring_received, e.dropped, e.full)
        });
        let report = PostReport {
            received: done.received + waited + ring_received,
            dropped,
            full,
            panicked: done.panicked,
        };
        if report.received == 0 && report.dropped == 0 && report.panicked == 0 {
            self.dead(cx.sender);
        }
        report
    }

    /// Counts one post and `inline` completed inline deliveries.
    #[inline]
    fn count(&self, section: &ReadGuard<'_>, inline: u32) {
        if !section.count(self.index, 1, u64::from(inline)) {
            self.count_shared(inline);
        }
    }

    #[cold]
    fn count_shared(&self, inline: u32) {
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        self.shared.posted.fetch_add(1, relaxed);
        self.shared.delivered.fetch_add(u64::from(inline), relaxed);
    }

    #[cold]
    pub(crate) fn dead(&self, sender: Option<SenderId>) {
        self.dead.fetch_add(1, Ordering::Relaxed);
        if TypeId::of::<N>() != TypeId::of::<DeadNotification>()
            && let Some(reports) = self.reports.upgrade()
        {
            reports.report(HubReport::Dead(DeadNotification {
                notification: N::name(),
                sender,
            }));
        }
    }

    /// Counts and reports the panic of `entry`, the one a delivery loop's pass stopped at
    /// (under `Propagate`, resumes it). A pass that stopped at no entry (which cannot happen:
    /// only an entry's code runs inside it) lets the panic go on.
    #[cold]
    fn entry_panicked(&self, entry: Option<&dyn Deliver<N>>, payload: Box<dyn Any + Send>) {
        match entry {
            Some(entry) => self.observer_panicked(entry.meta().id, payload),
            None => resume_unwind(payload),
        }
    }

    /// Counts and reports an observer's panic (contract 4); under `Propagate`, resumes it.
    /// Also used by spawned handlers, whose panics happen on a task.
    #[cold]
    pub(crate) fn observer_panicked(&self, observer: ObserverId, payload: Box<dyn Any + Send>) {
        self.panicked.fetch_add(1, Ordering::Relaxed);
        if self.policy == PanicPolicy::Propagate {
            resume_unwind(payload);
        }
        if TypeId::of::<N>() != TypeId::of::<ObserverPanicked>()
            && let Some(reports) = self.reports.upgrade()
        {
            reports.report(HubReport::Panicked(ObserverPanicked {
                notification: N::name(),
                observer,
                message: panic_message(payload.as_ref()),
            }));
        }
    }

    /// The center's panic policy.
    pub(crate) fn panic_policy(&self) -> PanicPolicy {
        self.policy
    }

    /// Adds an entry. With `replay`, the last retained value (per sender when the entry has a
    /// sender filter) is delivered to it first, atomically with the subscription.
    pub(crate) fn subscribe(&self, entry: Entry<N>, replay: bool) -> ObserverId {
        self.subscribe_with(entry, replay, |_| {})
    }

    /// [`subscribe`](Self::subscribe), then `joined` with the generation of the first snapshot
    /// that holds the entry, before any post can follow the replayed value (a stream joins its
    /// shared ring there).
    pub(crate) fn subscribe_with(
        &self,
        entry: Entry<N>,
        replay: bool,
        joined: impl FnOnce(u64),
    ) -> ObserverId {
        let id = entry.meta().id;
        if !replay {
            // Nothing waits on the old snapshot: a later grace period frees it.
            let retired = self.insert(entry, false);
            joined(retired.get().extra.generation + 1);
            drop(retired);
            self.domain.relieve();
            return id;
        }
        let lock = self.last.lock();
        let last = {
            let last = lock.borrow();
            match entry.meta().sender {
                Some(s) => last.by_sender.get(&s).map(|v| (v.clone(), Some(s))),
                None => last.any.clone(),
            }
        };
        if let Some((value, sender)) = last {
            // Delivered while `last` is held: no post of this type can slip in between the
            // replayed value and the subscription (a nested post on this thread re-enters).
            let section = self.domain.read();
            // Shared rings never serve a `replay_last` subscriber (`ring_serves`): the
            // value goes to this entry's own buffer or observer.
            let mut ext = CxExt::new(Some(&value), None);
            let mut cx = Cx::new(self, sender, Some(&mut ext));
            let one: &dyn Deliver<N> = &*entry;
            let done = self.run(&section, |i| (i == 0).then_some(one), None, &value, &mut cx);
            if done.inline != 0 {
                self.shared
                    .delivered
                    .fetch_add(done.inline as u64, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let retired = self.insert(entry, true);
        joined(retired.get().extra.generation + 1);
        drop(lock);
        drop(retired);
        self.domain.relieve();
        id
    }

    /// Adds `entry` to the writer list and swaps in a snapshot with it; the old snapshot is
    /// handed back retired.
    fn insert(&self, entry: Entry<N>, retain: bool) -> Retired<'_, Snapshot<N>> {
        let retain = if retain { RETAIN } else { 0 };
        self.subs
            .insert(&self.domain, entry, position, |previous, entries| {
                flags_with(previous, retain, entries)
            })
    }

    /// Turns retention on (contract 6) without subscribing.
    pub(crate) fn retain_last(&self) {
        drop(self.subs.resummarize(&self.domain, |previous, entries| {
            flags_with(previous, RETAIN, entries)
        }));
    }

    /// Takes the entry `id` out of the writer list, marked removed first (so a post of this
    /// thread already iterating an old snapshot skips it), and swaps in a snapshot without it.
    /// Both come back retired: readers may still hold them.
    fn remove(&self, id: ObserverId) -> Option<Removed<'_, N>> {
        let (entry, snapshot) = self.subs.remove(
            &self.domain,
            |e| e.meta().id == id,
            |e| e.mark_removed(),
            flags,
        )?;
        Some(Removed { entry, snapshot })
    }

    /// Removes an entry and waits until no post that could call it is still running (from
    /// inside a post: does not wait; see the module docs).
    pub(crate) fn unsubscribe(&self, id: ObserverId) {
        let Some(removed) = self.remove(id) else {
            return;
        };
        let grace = self.domain.synchronize();
        removed.entry.get().get().retire(&self.retired_delivered);
        removed.entry.release(grace.as_ref());
        removed.snapshot.release(grace.as_ref());
    }

    /// Removes an expired weak observer from inside a post, without waiting.
    #[cold]
    fn remove_expired(&self, id: ObserverId) {
        // Dropping the retired values defers them to a later grace period.
        drop(self.remove(id));
    }

    /// Forgets the retained value of one sender.
    pub(crate) fn forget_sender(&self, sender: SenderId) {
        let lock = self.last.lock();
        lock.borrow_mut().by_sender.remove(&sender);
    }

    pub(crate) fn stats(&self) -> Stats {
        let section = self.domain.read();
        let snap = self.subs.load(&section);
        let mut buffered_delivered = 0;
        let buffers: Vec<BufferStats> = snap
            .iter()
            .filter_map(|e| e.buffer_stats())
            .inspect(|s| buffered_delivered += s.delivered)
            .collect();
        let observers = snap.len();
        drop(section);
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
}

impl<N: 'static> Drop for Core<N> {
    fn drop(&mut self) {
        // The center is gone: close every stream so receivers see `Closed` after draining.
        let sink = self.retired_delivered.clone();
        for e in self.subs.items_mut() {
            e.retire(&sink);
        }
    }
}

/// An entry and the snapshot it was removed from, both retired.
struct Removed<'d, N: 'static> {
    entry: Retired<'d, Owned<dyn Deliver<N>>>,
    snapshot: Retired<'d, Snapshot<N>>,
}

/// A count for a [`PostReport`] (which counts in `u32`).
fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// What a delivery loop counted.
#[derive(Default, Clone, Copy)]
struct Done {
    /// Entries that received the post (inline calls and buffers).
    received: u32,
    /// Of those, inline calls that returned.
    inline: u32,
    panicked: u32,
}

/// How far one entry's delivery on the common path fell short of [`Delivery::Done`], in lanes
/// of 32 bits that only ever add up (no lane borrows from the next, unlike a difference of
/// `Delivery` values): bits 0..32 entries that did not receive, bits 32..64 panics.
///
/// On the common path every entry that receives makes an inline call: the entries that accept
/// a value without one (buffered kinds) need the post's shared `Arc`, so their snapshots take
/// the general path (`NEEDS_SHARED`). Received and inline counts are then the same.
struct Shortfall;

impl Shortfall {
    const NOT_RECEIVED: u64 = 1;
    const PANICKED: u64 = 1 << 32;

    /// The shortfall of one delivery on the common path.
    fn of(delivery: Delivery) -> u64 {
        match delivery {
            Delivery::Done => 0,
            Delivery::Accepted => {
                debug_assert!(false, "a buffered entry on the common path");
                0
            }
            Delivery::Skipped => Self::NOT_RECEIVED,
            Delivery::Panicked => Self::NOT_RECEIVED | Self::PANICKED,
        }
    }

    /// Whether nobody received the post and nobody panicked (a dead post): every entry fell
    /// short, none by a panic. One compare: the lanes are exactly `entries` and 0.
    #[inline(always)]
    fn dead(entries: u32, shortfall: u64) -> bool {
        shortfall == u64::from(entries)
    }

    /// What `entries` entries delivered, given the sum of their shortfalls (each lane at most
    /// `entries`, so nothing wraps).
    #[inline(always)]
    fn done(entries: u32, shortfall: u64) -> Done {
        let received = entries.wrapping_sub(shortfall as u32);
        Done {
            received,
            inline: received,
            panicked: (shortfall >> 32) as u32,
        }
    }
}

impl From<u128> for Done {
    /// Splits a sum of [`Delivery`] values.
    #[inline]
    fn from(counted: u128) -> Self {
        Done {
            received: counted as u32,
            inline: (counted >> 32) as u32,
            panicked: (counted >> 64) as u32,
        }
    }
}

/// What the center needs from a channel whatever its type: its name, and wildcard entries.
pub(crate) trait ErasedChannel: Send + Sync {
    fn name(&self) -> &'static str;
    /// Whether the type's values have names of their own (`Notification::NAMES_VARY`).
    fn names_vary(&self) -> bool;
    /// Adds a type-erased (wildcard) entry with the subscription's `meta`.
    fn add_any(&self, meta: Meta, f: &AnyFn);
    /// Removes a wildcard entry, if present. `true` when it was there.
    fn remove_any(&self, id: ObserverId) -> bool;
}

impl<N: Notification> ErasedChannel for Core<N> {
    fn name(&self) -> &'static str {
        N::name()
    }
    fn names_vary(&self) -> bool {
        N::NAMES_VARY
    }
    fn add_any(&self, meta: Meta, f: &AnyFn) {
        let entry = entry(self.subs.slab(), meta, None, AnyInline(f.clone()));
        drop(self.insert(entry, false));
    }
    fn remove_any(&self, id: ObserverId) -> bool {
        // The caller runs one grace period for all channels, which frees what this defers.
        self.remove(id).is_some()
    }
}

/// A buffered subscriber a `post_async` can wait on for room (backpressure).
pub(crate) trait WaitForRoom<N>: Send + Sync {
    /// Waits for room, then pushes; false if the subscriber went away first.
    fn push_wait<'a>(
        &'a self,
        value: &'a Arc<N>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + Sync + 'a>>;
    /// The value could not be handed over after all (the `post_async` was dropped).
    fn count_lost(&self);
}

/// Backpressure subscribers a `post_async` must wait on, and the value they wait to take.
pub(crate) struct Waiting<N> {
    pub(crate) targets: Vec<Arc<dyn WaitForRoom<N>>>,
    pub(crate) value: Option<Arc<N>>,
}

impl<N> Default for Waiting<N> {
    fn default() -> Self {
        Waiting {
            targets: Vec::new(),
            value: None,
        }
    }
}

/// The message of a panic payload, when it is a string.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

#[cfg(all(test, not(herald_loom)))]
mod tests {
    use super::*;

    struct Tick;
    impl Notification for Tick {}

    /// Where the owned tail starts for entries given as (needs the value shared, ring bit).
    fn owned_tail(entries: &[(bool, u64)]) -> Option<u32> {
        let mut tail = OwnedTail::default();
        for (i, &(shared, ring)) in entries.iter().enumerate() {
            tail.see(i, shared, ring);
        }
        tail.start()
    }

    #[test]
    fn a_snapshot_has_an_owned_tail_when_it_ends_with_the_only_ring_that_shares() {
        const INLINE: (bool, u64) = (false, 0);
        const RING_A: (bool, u64) = (true, 1);
        const RING_B: (bool, u64) = (true, 2);
        const PRIVATE_BUFFER: (bool, u64) = (true, 0);
        const VALUE_RING: (bool, u64) = (false, 4);
        assert_eq!(owned_tail(&[]), None, "nothing to hand the value to");
        assert_eq!(owned_tail(&[INLINE, INLINE]), None);
        assert_eq!(owned_tail(&[RING_A]), Some(0));
        assert_eq!(owned_tail(&[INLINE, VALUE_RING, RING_A, RING_A]), Some(2));
        assert_eq!(
            owned_tail(&[RING_A, INLINE]),
            None,
            "an observer after the ring reads the value"
        );
        assert_eq!(
            owned_tail(&[RING_A, VALUE_RING]),
            None,
            "a value ring clones it"
        );
        assert_eq!(
            owned_tail(&[RING_A, RING_B]),
            None,
            "two rings share one `Arc`"
        );
        assert_eq!(owned_tail(&[PRIVATE_BUFFER, RING_A]), None);
        assert_eq!(owned_tail(&[RING_A, PRIVATE_BUFFER]), None);
    }

    /// The entries a post calls with a snapshot's jump table, from the first.
    fn visited(bits: &[u64]) -> Vec<usize> {
        let Some(next) = Followers::next(bits.iter().copied()) else {
            return (0..bits.len()).collect();
        };
        assert_eq!(next.len(), bits.len());
        let mut at = 0;
        let mut seen = Vec::new();
        while at < bits.len() {
            seen.push(at);
            at = next[at] as usize;
        }
        seen
    }

    #[test]
    fn a_post_calls_each_ring_at_its_first_entry_and_every_other_entry() {
        // No ring, or no ring shared: no table.
        assert!(Followers::next([].into_iter()).is_none());
        assert!(Followers::next([0, 0, 0].into_iter()).is_none());
        assert!(Followers::next([1, 2, 0, 4].into_iter()).is_none());
        // One ring of two streams: the second is jumped over.
        assert_eq!(visited(&[1, 1]), [0]);
        // Two rings interleaved with inline entries (0) and each other.
        assert_eq!(visited(&[0, 1, 0, 1, 2, 1, 0, 2, 2]), [0, 1, 2, 4, 6]);
        // Followers at the end, and a run of them.
        assert_eq!(visited(&[4, 0, 4, 4, 4]), [0, 1]);
        assert_eq!(visited(&[8, 8, 8, 0]), [0, 3]);
    }

    #[test]
    fn an_entry_with_one_captured_pointer_is_32_bytes() {
        let counter = Arc::new(StdAtomicU64::new(0));
        let f = move |_: &Tick| {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        };
        let obs = Obs::<Tick, _>::new(Meta::new(0, None), Inline(f));
        assert_eq!(std::mem::size_of_val(&obs), 32);
        let sender = Some(SenderId::from_raw(0));
        let with_sender = Obs::<Tick, _>::new(
            Meta::new(-3, sender),
            FromSender(SenderId::from_raw(0), Inline(|_: &Tick| {})),
        );
        let meta = Deliver::<Tick>::meta(&with_sender);
        assert_eq!((meta.priority, meta.sender), (-3, sender));
    }

    #[test]
    fn an_entry_whose_captures_panic_on_drop_still_gives_its_slot_back() {
        struct Loud;
        impl Drop for Loud {
            fn drop(&mut self) {
                panic!("a capture that panics when dropped");
            }
        }
        let slab = Arc::new(Slab::default());
        let loud = Loud;
        let first = entry(
            &slab,
            Meta::new(0, None),
            None,
            Inline(move |_: &Tick| {
                let _ = &loud;
            }),
        );
        let at = (&*first as *const dyn Deliver<Tick>).cast::<u8>();
        let dropped = std::panic::catch_unwind(AssertUnwindSafe(|| drop(first)));
        assert!(
            dropped.is_err(),
            "the capture's panic reaches whoever drops the entry"
        );
        let next = entry(&slab, Meta::new(0, None), None, Inline(|_: &Tick| {}));
        assert_eq!((&*next as *const dyn Deliver<Tick>).cast::<u8>(), at);
    }

    #[test]
    fn entries_subscribed_one_after_another_are_neighbours_in_the_slab() {
        let slab = Arc::new(Slab::default());
        let entries: Vec<Entry<Tick>> = (0..4)
            .map(|_| entry(&slab, Meta::new(0, None), None, Inline(|_: &Tick| {})))
            .collect();
        let at: Vec<usize> = entries
            .iter()
            .map(|e| (&**e as *const dyn Deliver<Tick>).cast::<u8>() as usize)
            .collect();
        for pair in at.windows(2) {
            assert_eq!(pair[1] - pair[0], 32);
        }
    }
}
