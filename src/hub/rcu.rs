//! Read-copy-update for the post path: the only `unsafe` code in herald.
//!
//! A post runs inside a *read section* of its center's [`Domain`]. Entering one costs one
//! uncontended atomic swap on a slot owned by the posting thread (no shared cache line, no
//! lock, no reference count); nested posts on the same thread only bump a depth counter.
//! Inside the section, [`RcuCell::load`] hands out a plain reference to the current value.
//!
//! Writers (subscribe, unsubscribe, a new notification type) build a new value, swap it in,
//! and call [`Domain::synchronize`], which waits until every read section that began before
//! the swap has ended. After that, no post can still see the old value: the old value may be
//! freed, and an unsubscribed observer can no longer be called (contract 3).
//!
//! Why it is sound, in C11 terms:
//! - Each slot's word holds a per-slot section counter and an "active" bit. A reader opening
//!   its outermost section bumps its counter and publishes `(count << 1) | 1` with a `SeqCst`
//!   swap, then loads pointers; closing stores `count << 1`.
//! - A writer swaps the pointer (`SeqCst`), then loads each slot (`SeqCst`). If a slot is idle,
//!   the reader's next swap comes after the writer's load in the single total order of `SeqCst`
//!   operations, hence after the writer's pointer swap, and the reader's pointer load (also
//!   `SeqCst`) after that: the reader sees the new value. (Miri, which emulates weak memory,
//!   found the version with `AcqRel`/`Acquire` pointer accesses wrong: `tests/miri.rs`.) If a
//!   slot is active with count `c`, the writer waits until the word changes: that section has
//!   ended (a later one, if any, began after the swap and sees the new value).
//! - Readers never read a shared word that writers write often: a writer storms (subscribe,
//!   unsubscribe in a loop) cost a post only the cache misses of the new snapshot itself.
//! - Under loom (`tests/loom.rs`) the word is a mutex-protected value, see [`SlotState`].
//!
//! Re-entrancy: a writer running inside a post (an observer subscribing or unsubscribing)
//! never waits: its own post could not end first, and other threads' posts may be waiting for
//! a lock its observer holds. It swaps the new value in, marks removed entries, and defers
//! freeing to a later full grace period ([`Domain::retire`]), or to the end of a post that
//! finds no other thread mid-post.
//!
//! Slots are allocated once and recycled (never freed): a slot belongs to one thread in one
//! domain at a time, so a reference to it can live in the thread's local cache as `&'static`.

#![allow(unsafe_code)]

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::sync::OnceLock;
use std::sync::atomic::AtomicU64 as StdAtomicU64;

use crate::hub::sync::{
    AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Mutex, Ordering, thread_local,
};

/// Per-thread, per-notification-type counters, written only by the owning thread.
#[derive(Default)]
pub(crate) struct TypeCounters {
    pub(crate) posted: StdAtomicU64,
    pub(crate) delivered: StdAtomicU64,
}

impl TypeCounters {
    /// Adds without a read-modify-write: only the owning thread writes.
    #[inline]
    pub(crate) fn add(counter: &StdAtomicU64, n: u64) {
        counter.store(
            counter.load(std::sync::atomic::Ordering::Relaxed) + n,
            std::sync::atomic::Ordering::Relaxed,
        );
    }
}

/// A slot's read-section word. Normal builds: one atomic. Under loom: a mutex around the
/// same value, because loom 0.7 lets a read-modify-write read a stale value after a condvar
/// wake-up (seen here with a three-line model), which would make every model deadlock. The
/// models then check the protocol (snapshots, removal flags, grace periods, re-entrancy);
/// the memory-ordering argument for the atomic version is in the module docs.
#[cfg(not(herald_loom))]
struct SlotState(AtomicU64);

#[cfg(not(herald_loom))]
impl SlotState {
    fn new() -> Self {
        SlotState(AtomicU64::new(0))
    }
    /// Opens section number `count`.
    #[inline]
    fn enter(&self, count: u64) {
        self.0.swap((count << 1) | 1, Ordering::SeqCst);
    }
    /// Closes section number `count`.
    #[inline]
    fn leave(&self, count: u64) {
        self.0.store(count << 1, Ordering::Release);
    }
    fn peek(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(herald_loom)]
struct SlotState(Mutex<u64>);

#[cfg(herald_loom)]
impl SlotState {
    fn new() -> Self {
        SlotState(Mutex::new(0))
    }
    fn enter(&self, count: u64) {
        *self.0.lock() = (count << 1) | 1;
    }
    fn leave(&self, count: u64) {
        *self.0.lock() = count << 1;
    }
    fn peek(&self) -> u64 {
        *self.0.lock()
    }
}

const CHUNK: usize = 64;
/// Types beyond this many per center count into shared atomics instead.
pub(crate) const MAX_LOCAL_TYPES: usize = CHUNK * CHUNK;

/// A thread's read-side state in one domain.
pub(crate) struct Slot {
    /// `count << 1` when idle; `(count << 1) | 1` while section number `count` is open.
    state: SlotState,
    /// Sections opened so far (owner only).
    count: Cell<u64>,
    /// Whether callbacks wait for this thread's outermost section to end (owner only).
    after: Cell<bool>,
    /// Nesting depth of read sections (owner only).
    depth: Cell<usize>,
    /// The owning thread's token; `FREE` or `POOLED` when unowned.
    owner: AtomicU64,
    domain_dead: AtomicBool,
    counters: [OnceLock<Box<[TypeCounters]>>; CHUNK],
}

// SAFETY: `depth` is a `Cell` touched only by the thread whose token is in `owner` (a slot is
// handed to one thread at a time by `Domain::register`, and taken back only when that thread
// exits); every other field is atomic or immutable once initialized.
unsafe impl Sync for Slot {}

const FREE: u64 = 0;
const POOLED: u64 = u64::MAX;

impl Slot {
    fn new() -> Self {
        Slot {
            state: SlotState::new(),
            count: Cell::new(0),
            after: Cell::new(false),
            depth: Cell::new(0),
            owner: AtomicU64::new(FREE),
            domain_dead: AtomicBool::new(false),
            counters: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// This thread's counters for the type with `index` (owner only).
    #[inline]
    pub(crate) fn counters(&self, index: usize) -> Option<&TypeCounters> {
        if index >= MAX_LOCAL_TYPES {
            return None;
        }
        let chunk = self.counters[index / CHUNK]
            .get_or_init(|| (0..CHUNK).map(|_| TypeCounters::default()).collect());
        Some(&chunk[index % CHUNK])
    }

    /// The counters of type `index`, if this slot ever counted it (any thread may read).
    fn peek(&self, index: usize) -> Option<&TypeCounters> {
        if index >= MAX_LOCAL_TYPES {
            return None;
        }
        self.counters[index / CHUNK]
            .get()
            .map(|c| &c[index % CHUNK])
    }

    #[cfg_attr(herald_loom, allow(dead_code))]
    fn reset(&self) {
        self.count.set(0);
        self.state.leave(0);
        self.depth.set(0);
        self.domain_dead.store(false, Ordering::Relaxed);
        for chunk in self.counters.iter().filter_map(|c| c.get()) {
            for c in chunk.iter() {
                c.posted.store(0, std::sync::atomic::Ordering::Relaxed);
                c.delivered.store(0, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

/// Slots whose domain and thread are both gone, ready for reuse (never under loom: loom
/// objects must not outlive one model execution).
#[cfg(not(herald_loom))]
static POOL: std::sync::Mutex<Vec<&'static Slot>> = std::sync::Mutex::new(Vec::new());

#[cfg(not(herald_loom))]
fn pool_take() -> Option<&'static Slot> {
    let slot = match POOL.lock() {
        Ok(mut p) => p.pop(),
        Err(p) => p.into_inner().pop(),
    }?;
    slot.reset();
    Some(slot)
}

#[cfg(herald_loom)]
fn pool_take() -> Option<&'static Slot> {
    None
}

#[cfg(not(herald_loom))]
fn pool_give(slot: &'static Slot) {
    match POOL.lock() {
        Ok(mut p) => p.push(slot),
        Err(p) => p.into_inner().push(slot),
    }
}

#[cfg(herald_loom)]
fn pool_give(_slot: &'static Slot) {}

static NEXT_TOKEN: StdAtomicU64 = StdAtomicU64::new(1);
static NEXT_DOMAIN: StdAtomicU64 = StdAtomicU64::new(1);

/// This thread's slots, one per domain it posted in.
struct Local {
    token: u64,
    /// The most recently used (domain, slot): one compare on the hot path.
    hot: Cell<Option<(u64, &'static Slot)>>,
    all: RefCell<Vec<(u64, &'static Slot)>>,
}

impl Local {
    fn new() -> Self {
        Local {
            token: NEXT_TOKEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            hot: Cell::new(None),
            all: RefCell::new(Vec::new()),
        }
    }
}

/// Gives a slot back: it stays registered with its domain (its counters still count) and is
/// reused by the next thread that posts there; if the domain is gone, it goes to the pool.
fn release(slot: &'static Slot) {
    slot.owner.store(FREE, Ordering::SeqCst);
    if slot.domain_dead.load(Ordering::SeqCst)
        && slot
            .owner
            .compare_exchange(FREE, POOLED, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    {
        pool_give(slot);
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        // The thread is exiting: give its slots back.
        for (_, slot) in self.all.get_mut().drain(..) {
            release(slot);
        }
    }
}

#[cfg(not(herald_loom))]
thread_local! {
    static LOCAL: Local = Local::new();
}
#[cfg(herald_loom)]
thread_local! {
    static LOCAL: Local = Local::new();
}

/// A callback to run when this thread's outermost section of a domain ends.
type After = (u64, Box<dyn FnOnce()>);

#[cfg(not(herald_loom))]
thread_local! {
    static AFTER: RefCell<Vec<After>> = const { RefCell::new(Vec::new()) };
}
#[cfg(herald_loom)]
thread_local! {
    static AFTER: RefCell<Vec<After>> = RefCell::new(Vec::new());
}

/// Runs the callbacks registered for `domain` on this thread, each with panic isolation.
#[cold]
fn run_after(domain: u64) {
    let due: Vec<After> = AFTER
        .try_with(|a| {
            let mut all = a.borrow_mut();
            let (due, keep): (Vec<After>, Vec<After>) =
                all.drain(..).partition(|(uid, _)| *uid == domain);
            *all = keep;
            due
        })
        .unwrap_or_default();
    for (_, f) in due {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    }
}

/// Memory retired by a writer that could not wait for a full grace period.
struct Garbage {
    generation: u64,
    /// Held only to be dropped at the right time.
    _value: Box<dyn Any + Send>,
}

/// The read-side domain of one center.
pub(crate) struct Domain {
    uid: u64,
    /// Grace periods started (writers only; readers never read it).
    generation: AtomicU64,
    slots: Mutex<Vec<&'static Slot>>,
    /// Read sections opened without a slot (only while a thread is being torn down).
    fallback: AtomicUsize,
    garbage: Mutex<Vec<Garbage>>,
    has_garbage: AtomicBool,
    #[cfg(herald_loom)]
    wake_lock: Mutex<()>,
    #[cfg(herald_loom)]
    wake_cv: crate::hub::sync::Condvar,
}

impl Domain {
    pub(crate) fn new() -> Self {
        Domain {
            uid: NEXT_DOMAIN.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            generation: AtomicU64::new(1),
            slots: Mutex::new(Vec::new()),
            fallback: AtomicUsize::new(0),
            garbage: Mutex::new(Vec::new()),
            has_garbage: AtomicBool::new(false),
            #[cfg(herald_loom)]
            wake_lock: Mutex::new(()),
            #[cfg(herald_loom)]
            wake_cv: crate::hub::sync::Condvar::new(),
        }
    }

    /// Opens a read section. Values loaded through it stay valid until it is dropped.
    #[inline]
    pub(crate) fn read(&self) -> ReadGuard<'_> {
        let slot = LOCAL
            .try_with(|local| match local.hot.get() {
                Some((uid, slot)) if uid == self.uid => slot,
                _ => self.slot_for(local),
            })
            .ok();
        match slot {
            Some(slot) => {
                let depth = slot.depth.get();
                if depth == 0 {
                    let count = slot.count.get() + 1;
                    slot.count.set(count);
                    slot.state.enter(count);
                }
                slot.depth.set(depth + 1);
            }
            None => {
                self.fallback.fetch_add(1, Ordering::AcqRel);
            }
        }
        ReadGuard {
            domain: self,
            slot,
            _not_send: PhantomData,
        }
    }

    #[cold]
    fn slot_for(&self, local: &Local) -> &'static Slot {
        // Slots of centers that are gone go back to the pool, so a long-lived thread that
        // posts into many short-lived centers keeps a short list.
        local.all.borrow_mut().retain(|(_, s)| {
            let dead = s.domain_dead.load(Ordering::SeqCst);
            if dead {
                release(s);
            }
            !dead
        });
        let found = local
            .all
            .borrow()
            .iter()
            .find(|(uid, _)| *uid == self.uid)
            .map(|(_, s)| *s);
        let slot = match found {
            Some(s) => s,
            None => {
                let s = self.register(local.token);
                local.all.borrow_mut().push((self.uid, s));
                s
            }
        };
        local.hot.set(Some((self.uid, slot)));
        slot
    }

    /// Hands a slot of this domain to the thread with `token`.
    fn register(&self, token: u64) -> &'static Slot {
        let mut slots = self.slots.lock();
        for s in slots.iter() {
            if s.owner
                .compare_exchange(FREE, token, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                return s;
            }
        }
        let slot: &'static Slot = match pool_take() {
            Some(s) => s,
            None => Box::leak(Box::new(Slot::new())),
        };
        slot.owner.store(token, Ordering::SeqCst);
        slots.push(slot);
        slot
    }

    /// Runs `f` on this thread when its outermost read section of this domain ends (the end of
    /// the outermost post in progress), or hands `f` back when no section is open here.
    pub(crate) fn after_section(&self, f: Box<dyn FnOnce()>) -> Result<(), Box<dyn FnOnce()>> {
        let slot = LOCAL
            .try_with(|l| {
                l.all
                    .borrow()
                    .iter()
                    .find(|(uid, s)| *uid == self.uid && s.depth.get() > 0)
                    .map(|(_, s)| *s)
            })
            .ok()
            .flatten();
        let Some(slot) = slot else {
            return Err(f);
        };
        let uid = self.uid;
        match AFTER.try_with(move |a| a.borrow_mut().push((uid, f))) {
            Ok(()) => {
                slot.after.set(true);
                Ok(())
            }
            // Thread teardown: nothing can run later on this thread.
            Err(_) => Ok(()),
        }
    }

    /// Waits until every read section that began before this call has ended, and returns
    /// true: a full grace period. Called from inside a read section (an observer subscribing
    /// or unsubscribing), it does not wait at all and returns false: waiting there for other
    /// threads' posts could deadlock on a lock the observer holds, and its own post could
    /// never end. The caller then defers freeing ([`Domain::retire`]) and relies on the
    /// `removed` flag for this thread's own post.
    pub(crate) fn synchronize(&self) -> bool {
        let target = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        let inside_a_post = LOCAL
            .try_with(|l| l.all.borrow().iter().any(|(_, s)| s.depth.get() > 0))
            .unwrap_or(true);
        if inside_a_post {
            return false;
        }
        let slots: Vec<&'static Slot> = self.slots.lock().clone();
        for slot in slots {
            self.wait_for(slot);
        }
        let mut spins = 0u32;
        while self.fallback.load(Ordering::Acquire) != 0 {
            backoff(&mut spins);
        }
        self.collect(target);
        true
    }

    /// Waits until `slot` has left the read section it is in now, if any.
    #[cfg(not(herald_loom))]
    fn wait_for(&self, slot: &Slot) {
        let seen = slot.state.peek();
        if seen & 1 == 0 {
            return;
        }
        let mut spins = 0u32;
        while slot.state.peek() == seen {
            backoff(&mut spins);
        }
    }

    /// Under loom, the same check, but readers leaving a section notify waiting writers
    /// (loom explores spin loops without end).
    #[cfg(herald_loom)]
    fn wait_for(&self, slot: &Slot) {
        let mut guard = self.wake_lock.lock();
        let seen = slot.state.peek();
        loop {
            let now = slot.state.peek();
            if now & 1 == 0 || now != seen {
                return;
            }
            guard = self.wake_cv.wait(guard);
        }
    }

    /// Frees `value` after a full grace period: now if `synchronize` gave one, else later.
    pub(crate) fn retire(&self, value: Box<dyn Any + Send>, full: bool) {
        if full {
            drop(value);
            return;
        }
        let generation = self.generation.load(Ordering::Acquire);
        self.garbage.lock().push(Garbage {
            generation,
            _value: value,
        });
        self.has_garbage.store(true, Ordering::Release);
    }

    /// Frees garbage retired before the grace period that ended at `target`.
    fn collect(&self, target: u64) {
        let freed: Vec<Garbage> = {
            let mut g = self.garbage.lock();
            let (old, keep): (Vec<_>, Vec<_>) = g.drain(..).partition(|x| x.generation < target);
            *g = keep;
            if g.is_empty() {
                self.has_garbage.store(false, Ordering::Release);
            }
            old
        };
        // Dropped outside the lock: destructors of observers may post or subscribe.
        drop(freed);
    }

    /// When the outermost section of a thread closes and garbage waits, try a grace period
    /// that does not block (it succeeds when no other thread is mid-post).
    #[cold]
    fn try_collect(&self) {
        let target = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        let slots: Vec<&'static Slot> = self.slots.lock().clone();
        for slot in slots {
            if slot.state.peek() & 1 == 1 {
                return;
            }
        }
        if self.fallback.load(Ordering::Acquire) != 0 {
            return;
        }
        self.collect(target);
    }

    /// Sums a type's counters over every thread that posted it.
    pub(crate) fn sum_counters(&self, index: usize) -> (u64, u64) {
        let slots = self.slots.lock();
        slots
            .iter()
            .filter_map(|s| s.peek(index))
            .fold((0, 0), |(p, d), c| {
                (
                    p + c.posted.load(std::sync::atomic::Ordering::Relaxed),
                    d + c.delivered.load(std::sync::atomic::Ordering::Relaxed),
                )
            })
    }
}

impl Drop for Domain {
    fn drop(&mut self) {
        let slots = std::mem::take(&mut *self.slots.lock());
        for slot in slots {
            slot.domain_dead.store(true, Ordering::SeqCst);
            if slot
                .owner
                .compare_exchange(FREE, POOLED, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                pool_give(slot);
            }
        }
    }
}

fn backoff(spins: &mut u32) {
    *spins += 1;
    #[cfg(herald_loom)]
    {
        loom::thread::yield_now();
    }
    #[cfg(not(herald_loom))]
    {
        if *spins < 64 {
            std::hint::spin_loop();
        } else if *spins < 128 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
    }
}

/// An open read section (not `Send`: it belongs to the thread that opened it).
pub(crate) struct ReadGuard<'d> {
    domain: &'d Domain,
    slot: Option<&'static Slot>,
    _not_send: PhantomData<*const ()>,
}

impl ReadGuard<'_> {
    /// The posting thread's counters for the type with `index`.
    #[inline]
    pub(crate) fn counters(&self, index: usize) -> Option<&TypeCounters> {
        self.slot.and_then(|s| s.counters(index))
    }
}

impl Drop for ReadGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        match self.slot {
            Some(slot) => {
                let depth = slot.depth.get() - 1;
                slot.depth.set(depth);
                if depth == 0 {
                    slot.state.leave(slot.count.get());
                    if slot.after.get() {
                        slot.after.set(false);
                        run_after(self.domain.uid);
                    }
                    #[cfg(herald_loom)]
                    {
                        drop(self.domain.wake_lock.lock());
                        self.domain.wake_cv.notify_all();
                    }
                    if self.domain.has_garbage.load(Ordering::Relaxed) {
                        self.domain.try_collect();
                    }
                }
            }
            None => {
                self.domain.fallback.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

/// A pointer readers load inside a read section and writers replace (under their own lock).
pub(crate) struct RcuCell<T> {
    ptr: AtomicPtr<T>,
}

// SAFETY: the cell owns a `T` (a `Box` turned into a raw pointer) and hands out `&T` to any
// thread: it is `Send`/`Sync` exactly when `Box<T>` and `&T` may cross threads.
unsafe impl<T: Send + Sync> Send for RcuCell<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for RcuCell<T> {}

impl<T: Send + Sync + 'static> RcuCell<T> {
    pub(crate) fn new(value: T) -> Self {
        RcuCell {
            ptr: AtomicPtr::new(Box::into_raw(Box::new(value))),
        }
    }

    /// The current value, valid for the read section.
    #[inline]
    pub(crate) fn load<'g>(&self, _guard: &'g ReadGuard<'_>) -> &'g T {
        // SeqCst (a plain load on x86 and ARMv8): it must come after the section's opening
        // swap in the single total order, to see any pointer a writer swapped before it read
        // this thread's slot as idle.
        let p = self.ptr.load(Ordering::SeqCst);
        // SAFETY: `p` came from `Box::into_raw` and is never null. A value is freed only after
        // it was swapped out and a full grace period passed (`Domain::synchronize`, `retire`),
        // and the grace period waits for this section, which was open before `p` was loaded
        // (see the module docs). So `p` stays valid while `_guard` lives.
        unsafe { &*p }
    }

    /// The current value for a writer that holds the lock serializing this cell's writers:
    /// only such a writer replaces (and so retires) it.
    pub(crate) fn current<'l, L>(&self, _writer: &'l L) -> &'l T {
        let p = self.ptr.load(Ordering::Acquire);
        // SAFETY: the caller holds the writers' lock, so no one else can swap this value out
        // and retire it while the reference lives.
        unsafe { &*p }
    }

    /// Swaps in `value` (caller holds the writers' lock) and returns the old value, which the
    /// caller must only drop through [`Domain::retire`] after [`Domain::synchronize`].
    pub(crate) fn replace(&self, value: T) -> Retired<T> {
        // SeqCst: the grace period's argument needs this swap in the single total order (see
        // the module docs).
        let old = self
            .ptr
            .swap(Box::into_raw(Box::new(value)), Ordering::SeqCst);
        // Ownership passes to `Retired` as a raw pointer: readers may still hold `&T` into it
        // until a grace period ends, so no `Box` (which asserts uniqueness) may exist before.
        Retired(old)
    }
}

impl<T> RcuCell<T> {
    /// The current value, for the cell's owner with exclusive access.
    pub(crate) fn get_mut(&mut self) -> &T {
        let p = self.ptr.load(Ordering::Acquire);
        // SAFETY: `&mut self` proves no reader or writer holds a reference into the cell.
        unsafe { &*p }
    }
}

impl<T> Drop for RcuCell<T> {
    fn drop(&mut self) {
        let p = self.ptr.load(Ordering::Acquire);
        // SAFETY: `&mut self` proves no reader holds a reference into the cell.
        drop(unsafe { Box::from_raw(p) });
    }
}

/// A value swapped out of an [`RcuCell`], to be freed after a grace period.
///
/// Dropping it frees the value, so it must only be dropped once no reader can hold a
/// reference into it: through [`Retired::release`] (or [`Domain::retire`]) after
/// [`Domain::synchronize`].
pub(crate) struct Retired<T>(*mut T);

// SAFETY: a `Retired<T>` owns its `T` (it came from `Box::into_raw` and no one else frees it),
// so sending it sends the `T`.
unsafe impl<T: Send> Send for Retired<T> {}

impl<T: Send + 'static> Retired<T> {
    /// Frees it through the domain: at once after a full grace period, else deferred.
    pub(crate) fn release(self, domain: &Domain, full: bool) {
        domain.retire(Box::new(self), full);
    }
}

impl<T> Drop for Retired<T> {
    fn drop(&mut self) {
        // SAFETY: the pointer came from `Box::into_raw` in `RcuCell` and is freed only here,
        // once; a `Retired` is dropped only after a grace period (see the type's docs), when no
        // reader holds a reference into the value any more.
        drop(unsafe { Box::from_raw(self.0) });
    }
}
