//! Read-copy-update for the post path.
//!
//! A post runs inside a *read section* of its center's [`Domain`]. Inside it,
//! [`Guarded::load`] hands out a plain reference to the current value of a cell (the type map,
//! a subscriber snapshot); writers (subscribe, unsubscribe, a new notification type) build a new
//! value under the cell's writer lock, swap it in, and free the old one only after a **grace
//! period**: once every read section that could have loaded it has ended.
//!
//! # The read section
//! Each thread has one [`Slot`] per domain it posts in; no other thread writes it. Its word is
//! `(count << 32) | (depth << 4) | slow`: opening the outermost section stores the next `count`
//! with depth 1 and issues a `SeqCst` fence; a nested section (a post from inside an observer)
//! stores depth + 1; closing stores depth - 1. Every store is `Release` (a plain store on
//! x86), so a writer that reads a word also sees the end of every earlier section of that
//! thread. A writer waits for a thread only while its word shows the same `count` and a depth
//! above 0. The [`SLOW`] bit says the outermost section's end has work to do (collect
//! garbage, run callbacks); it is set from the domain's mode when the section opens, or by the
//! owner inside it, so the end tests its own word only. Nothing
//! on this path reads or writes a cache line that another thread writes: the cost of a section
//! is a load and a store to open it (plus the fence), a load and a store to close it.
//!
//! # Why a grace period is enough (C11 terms)
//! - Reader: `W(slot = active)` ; `fence(SeqCst)` ; `R(ptr)` ... `W(slot = idle)` (`Release`).
//! - Writer: `swap(ptr)` ; `fence(SeqCst)` ; `R(slot)` for every slot, waiting while a slot
//!   still shows the section it first read as open (same number, depth above 0).
//!
//! The two fences are ordered in the single total order of `SeqCst` fences. If the writer's
//! comes first, the reader's `R(ptr)` sees the new pointer (or a later one): it cannot hold the
//! old value. If the reader's comes first, the writer's `R(slot)` sees the active word (or a
//! later one): the writer waits until the word shows that section closed (depth 0) or a later
//! one. That word was written by a `Release` store sequenced after the section's end, which
//! synchronizes with the writer's `Acquire` load, so every use of the old value in that section
//! happens before the free. This is the store-buffering pattern
//! with `SeqCst` fences, which is the form loom checks exactly (loom treats `SeqCst` *accesses*
//! as `AcqRel`, but models `SeqCst` fences): `tests/loom.rs` runs this very code.
//!
//! # Asymmetric fences (Linux)
//! The reader's fence is most of the cost of a post with few observers. On Linux, while no
//! writer is active, readers skip it (a compiler fence only) and writers pay instead: a writer
//! that needs a grace period first sets the `FENCE` bit of the domain's mode and calls
//! `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`, which makes every running thread of the
//! process execute a full barrier (liburcu's "memb" flavour). Why that is enough, for a reader
//! `R` that skipped its fence because it read the flag as clear: the barrier lands in `R` at
//! some point of its program. If that point is before `R`'s load of the flag, the load sees the
//! flag set (the writer set it before the barrier) and `R` fences after all. If it is after
//! `R`'s store of its active word, that store is visible to the writer's scan, which runs after
//! the barrier, so the writer waits for `R`. Every grace period runs inside such an episode,
//! and the flag is cleared only under the episode lock with no writer inside, so the next
//! writer starts a new episode with a new barrier.
//!
//! A barrier interrupts every running thread of the process, so episodes are kept open while
//! writers are busy: a grace period that ends less than [`EPISODE_IDLE`] after the previous
//! one leaves readers fencing, and readers themselves close the episode (every 1024 fenced
//! sections they look) once no writer has been seen for that long. Elsewhere (other systems,
//! loom, Miri, or a kernel without the command) readers always fence.
//!
//! # Writers inside a post
//! A writer running inside a read section (an observer subscribing or unsubscribing) never
//! waits: its own section could not end first, and other threads' posts may be blocked on a lock
//! its observer holds. [`Domain::synchronize`] then returns `None`; the old value is retired
//! instead ([`Retired`]): freed by a later grace period, or at the end of a post that finds no
//! other thread mid-post. A post's end tries that only when the garbage is *pressing*: it
//! holds user code (a removed observer, whose captures the user expects dropped soon), or more
//! than [`PILE`] values or [`PILE_BYTES`] bytes wait. Old snapshots, plain memory, otherwise
//! wait for the next grace period, which the writers that made them run themselves
//! (unsubscribe) or run once they pile up ([`Domain::relieve`], from outside a post). Posts
//! used to help with plain memory inside a writers' episode too (every 64th post's end): a
//! poster then paid, in scans and in cache misses on the mode, for another thread's
//! subscribe/unsubscribe loop whose own grace periods were freeing the same garbage.
//!
//! # Misuse does not compile
//! - A cell's writer-side accessors ([`WriteGuard::current`], [`WriteGuard::replace`]) exist only
//!   on the guard of that cell's own writer lock.
//! - A swapped-out value is a [`Retired`], which has no safe way to be freed early: it is freed
//!   by [`Retired::free`] with a [`GracePeriod`] proof that began after it was retired, and
//!   dropping it defers it to the domain's garbage.
//!
//! Slots are allocated once and recycled, never freed: a slot belongs to one thread in one
//! domain at a time, so the thread can keep a `&'static` to it.

#![allow(unsafe_code)]

use std::any::{Any, TypeId};
use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64 as StdAtomicU64;
use std::sync::{Arc, OnceLock};

use std::time::{Duration, Instant};

use crate::hub::slab::Slab;
use crate::hub::sync::{
    AtomicBool, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Mutex, MutexGuard,
    Ordering, Padded, fence, thread_local,
};

/// How long writers must have been idle before readers stop fencing (module docs).
pub(crate) const EPISODE_IDLE: Duration = Duration::from_millis(1);

/// Fenced read sections between two looks at whether the writers' episode is over.
const EPISODE_CHECK_EVERY: u32 = 1024;

/// Retired values, and bytes of them, beyond which the garbage is pressing: a post's end then
/// tries to collect it, and a writer outside a post runs a grace period (module docs:
/// "Writers inside a post"). Bounds what a subscriber list leaves behind in stale copies of
/// itself, even when every change of it is made from inside a post.
const PILE: usize = 64;
const PILE_BYTES: usize = 64 * 1024;

/// `membarrier(2)`, where it can be used.
#[cfg(all(target_os = "linux", not(herald_loom), not(miri)))]
mod membarrier {
    use std::sync::OnceLock;

    const QUERY: libc::c_long = 0;
    const PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
    const REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

    /// Whether this process can use private expedited barriers (registers it on first call).
    pub(super) fn available() -> bool {
        static AVAILABLE: OnceLock<bool> = OnceLock::new();
        *AVAILABLE.get_or_init(|| {
            // SAFETY: membarrier takes plain integer arguments and touches no memory of ours.
            let commands = unsafe { libc::syscall(libc::SYS_membarrier, QUERY, 0, 0) };
            commands > 0
                && commands & PRIVATE_EXPEDITED != 0
                // SAFETY: as above.
                && unsafe {
                    libc::syscall(libc::SYS_membarrier, REGISTER_PRIVATE_EXPEDITED, 0, 0)
                } == 0
        })
    }

    /// A full memory barrier on every running thread of the process; false if it failed.
    pub(super) fn barrier() -> bool {
        // SAFETY: as above.
        unsafe { libc::syscall(libc::SYS_membarrier, PRIVATE_EXPEDITED, 0, 0) == 0 }
    }
}

#[cfg(not(all(target_os = "linux", not(herald_loom), not(miri))))]
mod membarrier {
    pub(super) fn available() -> bool {
        false
    }
    pub(super) fn barrier() -> bool {
        false
    }
}

/// The writers' side of the asymmetric fences of one domain.
struct Episode {
    /// Whether this domain may let readers skip their fence at all.
    asymmetric: bool,
    /// Writers inside a grace period (or a non-blocking collection) right now.
    writers: usize,
    /// When the last grace period ended.
    last_end: Option<Instant>,
}

/// Per-thread, per-notification-type counters, written only by the owning thread.
#[derive(Default)]
pub(crate) struct TypeCounters {
    pub(crate) posted: StdAtomicU64,
    pub(crate) delivered: StdAtomicU64,
}

impl TypeCounters {
    /// Adds without a read-modify-write: only the owning thread writes.
    #[inline]
    fn add(counter: &StdAtomicU64, n: u64) {
        counter.store(
            counter.load(std::sync::atomic::Ordering::Relaxed) + n,
            std::sync::atomic::Ordering::Relaxed,
        );
    }
}

/// `Domain::mode`: readers fence (module docs: "Asymmetric fences").
const FENCE: u8 = 1;
/// `Domain::mode`: the garbage is pressing: some of it is urgent (see `Garbage::urgent`), or
/// it is over [`PILE`] or [`PILE_BYTES`]. A post's end then tries to collect it. The same bit
/// as [`SLOW`] in a slot's word, so opening a section copies it there without a shift.
///
/// Nothing in the mode says whether there is garbage at all: a bit for that was set by every
/// subscribe and cleared by every grace period, so a thread subscribing and unsubscribing in
/// a loop changed the byte every post reads twice per cycle, a cache miss for every posting
/// thread each time.
const URGENT: u8 = 8;

/// Whether a pile of `len` retired values weighing `bytes` is over its bounds.
fn piled_up(len: usize, bytes: usize) -> bool {
    len > PILE || bytes > PILE_BYTES
}

/// The bit of a slot's word that sends the end of the outermost section down the slow path
/// ([`leave_slow`]): garbage waits for collection ([`URGENT`], sampled when the section
/// opens), callbacks wait for the section's end ([`Domain::after_section`]), or this thread
/// retired user code inside the section. The same bit as [`URGENT`] in the mode, so opening
/// a section adds the mode's bit without a shift; and a section's end tests its own word
/// only: the depth is 0 and this bit is set exactly when the low half of the word equals it.
const SLOW: u64 = URGENT as u64;
/// One level of depth: the depth sits above [`SLOW`] in the low half of a slot's word.
const DEPTH_ONE: u64 = 16;
/// The depth bits of a slot's word; the section number is in the high half.
const DEPTH: u64 = ((1 << 32) - 1) & !(DEPTH_ONE - 1);
/// One more section number.
const COUNT_ONE: u64 = 1 << 32;

/// Whether a thread whose word was `seen` is still inside that same outermost section, now that
/// its word is `now`: it was inside one, and neither left it (depth 0) nor opened another
/// (a new number). Nested sections opening and closing change only the depth.
fn still_in(seen: u64, now: u64) -> bool {
    seen & DEPTH != 0 && now & DEPTH != 0 && now >> 32 == seen >> 32
}

/// Types with an index below this count in an array inside the slot; the rest in chunks.
const INLINE_TYPES: usize = 32;
const CHUNK: usize = 64;

/// A thread's read-side state in one domain. On lines of its own (aligned like
/// [`Padded`]): slots are separate allocations, and two threads' slots side by side would
/// otherwise share the line where one ends and the next begins, which both owners write on
/// every post.
#[repr(align(128))]
pub(crate) struct Slot {
    /// `(count << 32) | (depth << 4) | slow`: `count` numbers the thread's outermost sections,
    /// `depth` is how deep it is inside sections right now (0: idle), [`SLOW`] whether the
    /// outermost end has work to do. Written only by the owner, so a section opens and closes
    /// with one load and one store each (module docs).
    state: AtomicU64,
    /// Whether callbacks wait for this thread's outermost section to end (owner only).
    after: Cell<bool>,
    /// Fenced sections opened so far (owner only).
    fenced: Cell<u32>,
    /// The owning thread's token; `FREE` or `POOLED` when unowned.
    owner: AtomicU64,
    /// A value the domain's owner keeps per thread beside the read section (owner only):
    /// the center keeps the channel this thread last posted into by type (`center.rs`).
    memo: Cell<Option<(TypeId, NonNull<()>)>>,
    domain_dead: AtomicBool,
    inline_counters: [TypeCounters; INLINE_TYPES],
    chunks: [OnceLock<Box<[TypeCounters]>>; CHUNK],
}

// SAFETY: the `Cell`s are touched only by the thread whose token is in `owner` (a slot is handed
// to one thread at a time by `Domain::register` and taken back only when that thread exits);
// every other field is atomic or immutable once initialized.
unsafe impl Sync for Slot {}

const FREE: u64 = 0;
const POOLED: u64 = u64::MAX;

impl Slot {
    fn new() -> Self {
        Slot {
            state: AtomicU64::new(0),
            after: Cell::new(false),
            fenced: Cell::new(0),
            owner: AtomicU64::new(FREE),
            memo: Cell::new(None),
            domain_dead: AtomicBool::new(false),
            inline_counters: std::array::from_fn(|_| TypeCounters::default()),
            chunks: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// Sends the end of the owner's outermost section down the slow path (owner only, inside
    /// a section).
    fn mark_slow(&self) {
        let state = self.state.load(Ordering::Relaxed);
        self.state.store(state | SLOW, Ordering::Release);
    }

    /// How deep the owner is inside read sections (owner only).
    fn depth(&self) -> u64 {
        self.state.load(Ordering::Relaxed) & DEPTH
    }

    /// This thread's counters for the type with `index` (owner only).
    #[inline]
    fn counters(&self, index: usize) -> Option<&TypeCounters> {
        if index < INLINE_TYPES {
            return Some(&self.inline_counters[index]);
        }
        self.chunk_counters(index)
    }

    #[cold]
    fn chunk_counters(&self, index: usize) -> Option<&TypeCounters> {
        let i = index.checked_sub(INLINE_TYPES)?;
        let chunk = self.chunks.get(i / CHUNK)?;
        let chunk = chunk.get_or_init(|| (0..CHUNK).map(|_| TypeCounters::default()).collect());
        Some(&chunk[i % CHUNK])
    }

    /// The counters of type `index`, if this slot ever counted it (any thread may read).
    fn peek(&self, index: usize) -> Option<&TypeCounters> {
        if index < INLINE_TYPES {
            return Some(&self.inline_counters[index]);
        }
        let i = index - INLINE_TYPES;
        self.chunks.get(i / CHUNK)?.get().map(|c| &c[i % CHUNK])
    }

    #[cfg_attr(herald_loom, allow(dead_code))]
    fn reset(&self) {
        self.state.store(0, Ordering::Release);
        self.after.set(false);
        self.memo.set(None);
        self.domain_dead.store(false, Ordering::Relaxed);
        let zero = |c: &TypeCounters| {
            c.posted.store(0, std::sync::atomic::Ordering::Relaxed);
            c.delivered.store(0, std::sync::atomic::Ordering::Relaxed);
        };
        self.inline_counters.iter().for_each(zero);
        for chunk in self.chunks.iter().filter_map(|c| c.get()) {
            chunk.iter().for_each(zero);
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
    all: RefCell<Vec<(u64, &'static Slot)>>,
}

impl Drop for Local {
    fn drop(&mut self) {
        // The thread is exiting: forget the cached slot first (later posts from other
        // thread-local destructors take the fallback path), then give every slot back.
        let _ = HOT.try_with(|h| h.set(None));
        for (_, slot) in self.all.get_mut().drain(..) {
            release(slot);
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

#[cfg(not(herald_loom))]
thread_local! {
    /// The most recently used (domain, slot) of this thread: one compare on the hot path.
    /// Const-initialized and without a destructor, so reading it costs one load.
    static HOT: Cell<Option<(u64, &'static Slot)>> = const { Cell::new(None) };
}
#[cfg(herald_loom)]
thread_local! {
    static HOT: Cell<Option<(u64, &'static Slot)>> = Cell::new(None);
}

thread_local! {
    static LOCAL: Local = Local {
        token: NEXT_TOKEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        all: RefCell::new(Vec::new()),
    };
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

/// Memory retired by a writer that could not wait for a grace period.
struct Garbage {
    /// Holds user code (a removed observer and what its closure captured): freed at the end of
    /// the next post even when that costs a barrier. Otherwise plain memory (old snapshots),
    /// freed by the next grace period.
    urgent: bool,
    /// The grace period number current when it was retired: any grace period with a higher
    /// number began after it left its cell.
    generation: u64,
    /// Bytes it holds (an estimate: the value and its heap array, if any).
    weight: usize,
    /// Held only to be dropped at the right time.
    _value: Box<dyn Any + Send>,
}

/// The read-side domain of one center.
pub(crate) struct Domain {
    /// What every read section reads, on lines of its own: the writers' locks and counters
    /// below change at every grace period, and sharing a line with them cost every posting
    /// thread a cache miss each time (see [`Guarded`]).
    hot: Padded<Hot>,
    /// Grace periods started (writers only; readers never read it).
    generation: AtomicU64,
    slots: Mutex<Vec<&'static Slot>>,
    /// Read sections opened without a slot (only while a thread is being torn down).
    fallback: AtomicUsize,
    garbage: Mutex<Vec<Garbage>>,
    /// The sum of the garbage's weights (changed under the `garbage` lock).
    garbage_bytes: AtomicUsize,
    episode: Mutex<Episode>,
    #[cfg(herald_loom)]
    wake_lock: Mutex<()>,
    #[cfg(herald_loom)]
    wake_cv: crate::hub::sync::Condvar,
}

/// The read-mostly part of a [`Domain`].
struct Hot {
    uid: u64,
    /// What a read section must do beyond its store: [`FENCE`], [`URGENT`]. One byte, loaded
    /// once when a section opens. Changed only through [`Hot::set_mode`].
    mode: AtomicU8,
}

impl Hot {
    /// Sets (`on`) or clears `bits` of the mode.
    ///
    /// A change that changes nothing writes nothing: every post loads this byte, and a
    /// successful compare-and-swap, even of a value by itself, takes its cache line away from
    /// every posting thread (a subscribe/unsubscribe loop made several per cycle).
    fn set_mode(&self, bits: u8, on: bool, order: Ordering) {
        let _ = self.mode.fetch_update(order, Ordering::Relaxed, |m| {
            let next = if on { m | bits } else { m & !bits };
            (next != m).then_some(next)
        });
    }
}

/// Proof that a grace period of one domain ran: every read section that was open when it
/// began (number `started`) has ended. Only [`Domain::synchronize`] makes one.
pub(crate) struct GracePeriod<'d> {
    domain: &'d Domain,
    started: u64,
}

impl Domain {
    /// A domain; with `asymmetric`, readers skip their fence while no writer is active, where
    /// the platform allows it (module docs).
    pub(crate) fn new(asymmetric: bool) -> Self {
        let asymmetric = asymmetric && membarrier::available();
        Domain {
            hot: Padded(Hot {
                uid: NEXT_DOMAIN.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                mode: AtomicU8::new(if asymmetric { 0 } else { FENCE }),
            }),
            generation: AtomicU64::new(1),
            slots: Mutex::new(Vec::new()),
            fallback: AtomicUsize::new(0),
            garbage: Mutex::new(Vec::new()),
            garbage_bytes: AtomicUsize::new(0),
            episode: Mutex::new(Episode {
                asymmetric,
                writers: 0,
                last_end: None,
            }),
            #[cfg(herald_loom)]
            wake_lock: Mutex::new(()),
            #[cfg(herald_loom)]
            wake_cv: crate::hub::sync::Condvar::new(),
        }
    }

    /// Opens a read section. Values loaded through it stay valid until it is dropped.
    #[inline]
    pub(crate) fn read(&self) -> ReadGuard<'_> {
        let slot = match HOT.try_with(Cell::get) {
            Ok(Some((uid, slot))) if uid == self.hot.uid => Some(slot),
            _ => self.slot_for_thread(),
        };
        match slot {
            Some(slot) => {
                // Only this thread writes the word: the load reads its own last store.
                let state = slot.state.load(Ordering::Relaxed);
                if state & DEPTH == 0 {
                    // The outermost section: a new number, depth 1, and [`SLOW`] if garbage
                    // waits for collection now (the mode is loaded for the fence anyway).
                    // `Release` (free on x86): a writer that reads this word also sees the end
                    // of the previous section (module docs). [`SLOW`] is clear here: the slow
                    // end of the previous section cleared it.
                    let mode = self.hot.mode.load(Ordering::Relaxed);
                    let slow = u64::from(mode & URGENT);
                    slot.state
                        .store(state + COUNT_ONE + DEPTH_ONE + slow, Ordering::Release);
                    // Orders the store above before every load of the section (module docs),
                    // unless no writer is active: then a writer's barrier does it.
                    if mode & FENCE != 0 {
                        fence(Ordering::SeqCst);
                        self.fenced(slot);
                    } else {
                        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
                    }
                } else {
                    slot.state.store(state + DEPTH_ONE, Ordering::Release);
                }
            }
            None => {
                // SeqCst RMW: a full barrier on every platform; writers wait for it to drop.
                self.fallback.fetch_add(1, Ordering::SeqCst);
            }
        }
        ReadGuard {
            domain: self,
            slot,
            _not_send: PhantomData,
        }
    }

    /// This thread's slot in this domain, registering one on first use; `None` while the
    /// thread is being torn down.
    #[cold]
    fn slot_for_thread(&self) -> Option<&'static Slot> {
        LOCAL
            .try_with(|local| {
                // Slots of centers that are gone go back to the pool, so a long-lived thread
                // that posts into many short-lived centers keeps a short list.
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
                    .find(|(uid, _)| *uid == self.hot.uid)
                    .map(|(_, s)| *s);
                let slot = match found {
                    Some(s) => s,
                    None => {
                        let s = self.register(local.token);
                        local.all.borrow_mut().push((self.hot.uid, s));
                        s
                    }
                };
                let _ = HOT.try_with(|h| h.set(Some((self.hot.uid, slot))));
                slot
            })
            .ok()
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

    /// Whether this thread is inside a read section of any domain (a post in progress).
    fn inside_a_section() -> bool {
        LOCAL
            .try_with(|l| l.all.borrow().iter().any(|(_, s)| s.depth() > 0))
            .unwrap_or(true)
    }

    /// This thread's slot in this domain, if a section of it is open on this thread.
    fn open_slot(&self) -> Option<&'static Slot> {
        LOCAL
            .try_with(|l| {
                l.all
                    .borrow()
                    .iter()
                    .find(|(uid, s)| *uid == self.hot.uid && s.depth() > 0)
                    .map(|(_, s)| *s)
            })
            .ok()
            .flatten()
    }

    /// Runs `f` on this thread when its outermost read section of this domain ends (the end of
    /// the outermost post in progress), or hands `f` back when no section is open here.
    pub(crate) fn after_section(&self, f: Box<dyn FnOnce()>) -> Result<(), Box<dyn FnOnce()>> {
        let Some(slot) = self.open_slot() else {
            return Err(f);
        };
        let uid = self.hot.uid;
        match AFTER.try_with(move |a| a.borrow_mut().push((uid, f))) {
            Ok(()) => {
                slot.after.set(true);
                slot.mark_slow();
                Ok(())
            }
            // Thread teardown: nothing can run later on this thread.
            Err(_) => Ok(()),
        }
    }

    /// Counts a fenced read section; now and then, ends the writers' episode if it is over.
    #[inline]
    fn fenced(&self, slot: &Slot) {
        let n = slot.fenced.get().wrapping_add(1);
        slot.fenced.set(n);
        if n.is_multiple_of(EPISODE_CHECK_EVERY) {
            self.end_idle_episode();
        }
    }

    /// Lets readers stop fencing if no writer has been active for [`EPISODE_IDLE`].
    #[cold]
    fn end_idle_episode(&self) {
        let Some(ep) = self.episode.try_lock() else {
            return;
        };
        if ep.asymmetric
            && ep.writers == 0
            && ep.last_end.is_none_or(|t| t.elapsed() >= EPISODE_IDLE)
        {
            self.hot.set_mode(FENCE, false, Ordering::Relaxed);
        }
    }

    /// Enters the writers' episode, making readers fence (with a barrier on every running
    /// thread if they did not). Every grace period runs inside one.
    fn enter_episode(&self) -> EpisodeGuard<'_> {
        let mut ep = self.episode.lock();
        if self.hot.mode.load(Ordering::Relaxed) & FENCE == 0 {
            self.hot.set_mode(FENCE, true, Ordering::Relaxed);
            // Under the lock: concurrent writers need this barrier before they scan too.
            if !membarrier::barrier() {
                // The command was registered, and then it can only fail on an invalid command:
                // without the barrier no reader that skipped its fence can be proven done.
                eprintln!("herald: membarrier(2) failed after registration; aborting");
                std::process::abort();
            }
        }
        ep.writers += 1;
        EpisodeGuard(self)
    }

    /// Waits until every read section open now has ended and returns the proof. From inside a
    /// read section (an observer subscribing or unsubscribing) it does not wait and returns
    /// `None` (module docs: "Writers inside a post").
    pub(crate) fn synchronize(&self) -> Option<GracePeriod<'_>> {
        if Self::inside_a_section() {
            return None;
        }
        let _episode = self.enter_episode();
        let started = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        // Pairs with the readers' fence (module docs): every pointer swapped before this call
        // is seen by any section whose opening store we read as idle below.
        fence(Ordering::SeqCst);
        let slots: Vec<&'static Slot> = self.slots.lock().clone();
        for slot in slots {
            self.wait_for(slot);
        }
        let mut spins = 0u32;
        while self.fallback.load(Ordering::SeqCst) != 0 {
            backoff(&mut spins);
        }
        self.collect(started);
        Some(GracePeriod {
            domain: self,
            started,
        })
    }

    /// Waits until `slot` has left the read section it is in now, if any.
    #[cfg(not(herald_loom))]
    fn wait_for(&self, slot: &Slot) {
        let seen = slot.state.load(Ordering::Acquire);
        let mut spins = 0u32;
        while still_in(seen, slot.state.load(Ordering::Acquire)) {
            backoff(&mut spins);
        }
    }

    /// Under loom, the same check, but readers leaving a section notify waiting writers
    /// (loom explores spin loops without end).
    #[cfg(herald_loom)]
    fn wait_for(&self, slot: &Slot) {
        let seen = slot.state.load(Ordering::Acquire);
        if !still_in(seen, seen) {
            return;
        }
        let mut guard = self.wake_lock.lock();
        while still_in(seen, slot.state.load(Ordering::Acquire)) {
            guard = self.wake_cv.wait(guard);
        }
    }

    /// The grace period number current after a value left its cell (call it after the swap).
    ///
    /// A read-modify-write, not a load: every grace period that starts later (a `fetch_add` on
    /// the same counter, later in its modification order) then synchronizes with it, so the
    /// swap happens before that grace period's fence even when another thread runs it. A grace
    /// period that started earlier made the counter larger than what this returns, and does
    /// not free the value.
    fn retirement_point(&self) -> u64 {
        self.generation.fetch_add(0, Ordering::AcqRel)
    }

    /// Defers freeing `value` to a later grace period.
    fn defer(&self, generation: u64, urgent: bool, weight: usize, value: Box<dyn Any + Send>) {
        let mut pile = self.garbage.lock();
        pile.push(Garbage {
            urgent,
            generation,
            weight,
            _value: value,
        });
        let bytes = self.garbage_bytes.fetch_add(weight, Ordering::Relaxed) + weight;
        let pressing = urgent || piled_up(pile.len(), bytes);
        drop(pile);
        if pressing {
            self.hot.set_mode(URGENT, true, Ordering::Release);
        }
        // Sections sample [`URGENT`] when they open: one this thread has open now (a writer
        // inside a post) must still try to collect at its end.
        if self.hot.mode.load(Ordering::Relaxed) & URGENT != 0
            && let Some(slot) = self.open_slot()
        {
            slot.mark_slow();
        }
    }

    /// Writers that do not wait for a grace period (subscribe) call this: when retired values
    /// pile up (more than 64 of them, or more than 64 KiB, so that a large subscriber list
    /// does not leave dozens of stale copies of itself behind) and the caller may wait (it is
    /// outside any post), it runs a grace period, so memory stays bounded even while other
    /// threads post without pause.
    pub(crate) fn relieve(&self) {
        if piled_up(
            self.garbage.lock().len(),
            self.garbage_bytes.load(Ordering::Relaxed),
        ) && !Self::inside_a_section()
        {
            let _ = self.synchronize();
        }
    }

    /// Frees garbage retired before the grace period number `started` began.
    fn collect(&self, started: u64) {
        let freed: Vec<Garbage> = {
            let mut g = self.garbage.lock();
            let (old, keep): (Vec<_>, Vec<_>) = g.drain(..).partition(|x| x.generation < started);
            *g = keep;
            let freed_bytes: usize = old.iter().map(|x| x.weight).sum();
            let bytes = self.garbage_bytes.fetch_sub(freed_bytes, Ordering::Relaxed) - freed_bytes;
            if !g.iter().any(|x| x.urgent) && !piled_up(g.len(), bytes) {
                self.hot.set_mode(URGENT, false, Ordering::Release);
            }
            old
        };
        // Dropped outside the lock: destructors of observers may post or subscribe.
        drop(freed);
    }

    /// When the outermost section of a thread closes and garbage waits, tries a grace period
    /// that does not block: it succeeds when no other thread is mid-post. Inside a writers'
    /// episode this costs a scan; outside one, only urgent garbage is worth a barrier.
    #[cold]
    fn collect_at_exit(&self) {
        if Self::inside_a_section() {
            return;
        }
        if let Some(_held) = self.episode.try_lock()
            && self.hot.mode.load(Ordering::Relaxed) & FENCE != 0
        {
            // The lock held through the scan keeps the episode (and readers' fences) on.
            self.collect_if_idle();
            return;
        }
        if self.hot.mode.load(Ordering::Relaxed) & URGENT != 0 {
            let _episode = self.enter_episode();
            self.collect_if_idle();
        }
    }

    /// The non-blocking grace period: collects only if no read section is open now. The
    /// caller keeps an episode open (readers fence).
    fn collect_if_idle(&self) {
        let started = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        fence(Ordering::SeqCst);
        let slots: Vec<&'static Slot> = self.slots.lock().clone();
        if slots
            .iter()
            .any(|s| s.state.load(Ordering::Acquire) & DEPTH != 0)
        {
            return;
        }
        if self.fallback.load(Ordering::SeqCst) != 0 {
            return;
        }
        self.collect(started);
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

/// Waits a little before looking again: spins, then yields, then short sleeps (loom: a yield).
pub(crate) fn backoff(spins: &mut u32) {
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

/// A writer inside the episode; leaving may end it (module docs: "Asymmetric fences").
struct EpisodeGuard<'d>(&'d Domain);

impl Drop for EpisodeGuard<'_> {
    fn drop(&mut self) {
        let mut ep = self.0.episode.lock();
        ep.writers -= 1;
        let now = Instant::now();
        let busy = ep
            .last_end
            .is_some_and(|t| now.saturating_duration_since(t) < EPISODE_IDLE);
        ep.last_end = Some(now);
        if ep.asymmetric && ep.writers == 0 && !busy {
            self.0.hot.set_mode(FENCE, false, Ordering::Relaxed);
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
    /// What this thread last [`remember`](Self::remember)ed in this domain, if anything. It
    /// stays with the domain: a slot that leaves it (to the pool) forgets.
    #[inline(always)]
    pub(crate) fn memo(&self) -> Option<(TypeId, NonNull<()>)> {
        self.slot.and_then(|s| s.memo.get())
    }

    /// Keeps `memo` for this thread in this domain (nothing, in a section without a slot).
    #[inline]
    pub(crate) fn remember(&self, memo: (TypeId, NonNull<()>)) {
        if let Some(s) = self.slot {
            s.memo.set(Some(memo));
        }
    }

    /// Whether this section has the thread's slot (all but those of a thread being torn
    /// down).
    #[inline(always)]
    pub(crate) fn has_slot(&self) -> bool {
        self.slot.is_some()
    }

    /// Counts `posted` posts and `delivered` completed deliveries of the type with `index`
    /// in the posting thread's own counters; `false` when this section has none (the caller
    /// then counts into shared atomics).
    #[inline]
    pub(crate) fn count(&self, index: usize, posted: u64, delivered: u64) -> bool {
        match self.slot.and_then(|s| s.counters(index)) {
            Some(c) => {
                TypeCounters::add(&c.posted, posted);
                TypeCounters::add(&c.delivered, delivered);
                true
            }
            None => false,
        }
    }
}

impl Drop for ReadGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        match self.slot {
            Some(slot) => {
                let state = slot.state.load(Ordering::Relaxed) - DEPTH_ONE;
                // `Release`: every use of a value loaded in the section happens before a
                // writer's free that follows its `Acquire` read of this word (module docs).
                slot.state.store(state, Ordering::Release);
                // The outermost end, with something to do (callbacks, or pressing garbage:
                // see [`SLOW`]). One compare: depth 0 and [`SLOW`].
                if state as u32 == SLOW as u32 {
                    leave_slow(self.domain, slot, state);
                }
                #[cfg(herald_loom)]
                if state & DEPTH == 0 {
                    drop(self.domain.wake_lock.lock());
                    self.domain.wake_cv.notify_all();
                }
            }
            None => {
                self.domain.fallback.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

/// The end of a thread's outermost section when callbacks or garbage wait. Takes its
/// arguments by value, so the guard itself never has to live in memory on the post path.
#[cold]
#[inline(never)]
fn leave_slow(domain: &Domain, slot: &Slot, state: u64) {
    // Cleared first: a callback below may post, and its section must not end slowly for
    // this one's reasons.
    slot.state.store(state & !SLOW, Ordering::Release);
    if slot.after.get() {
        slot.after.set(false);
        run_after(domain.hot.uid);
    }
    if domain.hot.mode.load(Ordering::Relaxed) & URGENT != 0 {
        domain.collect_at_exit();
    }
}

/// A cell that readers load inside a read section and writers replace under the cell's own
/// writer lock, which also guards the writers' state `W`.
///
/// The pointer and the writer lock sit on different cache lines: every post loads the pointer,
/// and a writer that locked, changed its state and unlocked next to it could take the line away
/// from every posting thread at each of those steps (measured with a thread that subscribes and
/// unsubscribes in a loop beside a poster of 16 observers: the poster's time per churn cycle
/// fell by 11-25 % in four interleaved sessions once they were apart).
#[repr(C)]
pub(crate) struct Guarded<W, T> {
    ptr: AtomicPtr<T>,
    writer: Padded<Mutex<W>>,
}

// SAFETY: the cell owns a `T` (a `Box` turned into a raw pointer) and hands out `&T` to any
// thread: it is `Send`/`Sync` exactly when `Box<T>` and `&T` may cross threads. `W` is behind a
// mutex.
unsafe impl<W: Send, T: Send + Sync> Send for Guarded<W, T> {}
// SAFETY: as above.
unsafe impl<W: Send, T: Send + Sync> Sync for Guarded<W, T> {}

impl<W, T: Send + Sync + 'static> Guarded<W, T> {
    pub(crate) fn new(writer: W, value: T) -> Self {
        Guarded {
            ptr: AtomicPtr::new(own_line(value)),
            writer: Padded(Mutex::new(writer)),
        }
    }

    /// The current value, valid for the read section.
    #[inline]
    pub(crate) fn load<'g>(&self, _section: &'g ReadGuard<'_>) -> &'g T {
        // Acquire: the value's contents, written before the writer's swap, are visible. The
        // section's opening fence orders this load after its opening store (module docs).
        let p = self.ptr.load(Ordering::Acquire);
        // SAFETY: `p` came from `own_line` and is never null. A value is freed only after
        // it was swapped out and a grace period that began after the swap ended (`Retired`),
        // and that grace period waits for this section, which was open before `p` was loaded
        // (module docs). So `p` stays valid while `_section` lives.
        unsafe { &*p }
    }

    /// Takes the writer lock.
    pub(crate) fn write(&self) -> WriteGuard<'_, W, T> {
        WriteGuard {
            lock: self.writer.lock(),
            ptr: &self.ptr,
        }
    }
}

impl<W, T> Guarded<W, T> {
    /// The current value, for the owner with exclusive access (no reader or writer is left).
    pub(crate) fn value_mut(&mut self) -> &T {
        let p = self.ptr.load(Ordering::Relaxed);
        // SAFETY: `&mut self` proves no reader holds a reference into the cell and no writer
        // can swap the value out; the pointer came from `own_line` and is never null.
        unsafe { &*p }
    }
}

impl<W, T> Drop for Guarded<W, T> {
    fn drop(&mut self) {
        let p = self.ptr.load(Ordering::Relaxed);
        // SAFETY: `&mut self` proves no reader holds a reference into the cell; the pointer came
        // from `own_line` and is freed only here.
        unsafe { free_line(p) };
    }
}

/// The writer lock of one [`Guarded`] cell: the only way to see the cell's value outside a
/// read section and to replace it.
pub(crate) struct WriteGuard<'a, W, T> {
    lock: MutexGuard<'a, W>,
    ptr: &'a AtomicPtr<T>,
}

impl<W, T: Send + 'static> WriteGuard<'_, W, T> {
    /// The current value. Only this guard's holder can replace (and so retire) it.
    pub(crate) fn current(&self) -> &T {
        let p = self.ptr.load(Ordering::Acquire);
        // SAFETY: this guard holds the cell's writer lock, so no one else can swap this value out
        // and retire it while the borrow of `self` lives.
        unsafe { &*p }
    }

    /// Swaps in `value`; the old value is handed back retired.
    pub(crate) fn replace<'d>(&mut self, domain: &'d Domain, value: T) -> Retired<'d, T> {
        let old = self.ptr.swap(own_line(value), Ordering::AcqRel);
        let generation = domain.retirement_point();
        Retired {
            ptr: old,
            generation,
            urgent: false,
            weight: std::mem::size_of::<Padded<T>>(),
            domain,
        }
    }

    /// The writers' state.
    pub(crate) fn state(&mut self) -> &mut W {
        &mut self.lock
    }
}

/// Moves `value` to cache lines of its own ([`Padded`]) and hands back a pointer to it: for
/// what a writer makes (a snapshot, a type map) and posts then read, and what it frees after a
/// grace period.
///
/// Why: with plain boxes, under a subscriber churn (another thread subscribing and
/// unsubscribing in a loop), `perf` put two thirds of a poster's samples on its observers'
/// own counter updates, and the same build with glibc's per-thread cache turned off ran at
/// about 1.6x its quiet time instead of 2.4x. glibc hands a chunk a thread frees to that
/// thread's next allocation of the same size, so the churner kept reusing chunks that the
/// posting thread had allocated while it subscribed, which lay beside the observers' own
/// state, and every cycle wrote to lines that every post writes. Any program whose observers
/// capture small state has the same neighbours (ARCHITECTURE.md, "Churn and the allocator").
fn own_line<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(Padded(value))).cast()
}

/// Frees a value from [`own_line`].
///
/// # Safety
/// `p` came from [`own_line`] and is freed once.
unsafe fn free_line<T>(p: *mut T) {
    // SAFETY: `Padded` is `repr(C)` with `T` first, so `p` is the `Padded`'s address.
    drop(unsafe { Box::from_raw(p.cast::<Padded<T>>()) });
}

/// A value swapped out of a [`Guarded`] cell; readers may still hold references into it.
///
/// Freed by [`free`](Self::free) after a grace period that began after it was retired. If it is
/// dropped instead, it is deferred to its domain's garbage, freed by a later grace period: there
/// is no way to free it early.
pub(crate) struct Retired<'d, T: Send + 'static> {
    /// Owned: it came from `own_line` and only this value frees it. Kept as a raw pointer
    /// because readers may hold `&T` into it (no `Box`, which asserts uniqueness, may exist).
    ptr: *mut T,
    generation: u64,
    /// See `Garbage::urgent`.
    urgent: bool,
    /// See `Garbage::weight`.
    weight: usize,
    domain: &'d Domain,
}

// SAFETY: a `Retired<T>` owns its `T`, so sending it sends the `T`.
unsafe impl<T: Send> Send for Retired<'_, T> {}

/// A raw owned value on its way to the garbage.
struct Boxed<T>(*mut T);

// SAFETY: owns its `T` (from `own_line`).
unsafe impl<T: Send> Send for Boxed<T> {}

impl<T> Drop for Boxed<T> {
    fn drop(&mut self) {
        // SAFETY: the pointer came from `own_line`; a `Boxed` is dropped once, either by
        // `Retired::free` after a covering grace period or by the domain's garbage collection,
        // which frees it only after a grace period that began after it was retired.
        unsafe { free_line(self.0) };
    }
}

impl<'d, T: Send + 'static> Retired<'d, T> {
    /// The value (readers may be reading it too; it is freed only through `self`).
    pub(crate) fn get(&self) -> &T {
        // SAFETY: `ptr` came from `own_line` and is freed only when `self` is consumed or
        // dropped, which the borrow of `self` prevents; readers hold only shared references.
        unsafe { &*self.ptr }
    }

    /// Frees the value now if `grace` began after it was retired (in the same domain), else
    /// defers it.
    pub(crate) fn free(self, grace: &GracePeriod<'_>) {
        let this = std::mem::ManuallyDrop::new(self);
        let boxed = Boxed(this.ptr);
        if std::ptr::eq(grace.domain, this.domain) && this.generation < grace.started {
            drop(boxed);
        } else {
            this.domain
                .defer(this.generation, this.urgent, this.weight, Box::new(boxed));
        }
    }

    /// Adds `bytes` held on the heap to the weight the garbage counts for it.
    pub(crate) fn weighing(mut self, bytes: usize) -> Self {
        self.weight += bytes;
        self
    }

    /// Frees the value after a grace period: now with `Some(proof)`, else deferred.
    pub(crate) fn release(self, grace: Option<&GracePeriod<'_>>) {
        match grace {
            Some(g) => self.free(g),
            None => drop(self),
        }
    }
}

impl<T: Send + 'static> Drop for Retired<'_, T> {
    fn drop(&mut self) {
        self.domain.defer(
            self.generation,
            self.urgent,
            self.weight,
            Box::new(Boxed(self.ptr)),
        );
    }
}

impl Domain {
    /// Retires a value that readers may still reference but that no new read section can
    /// reach any more (an entry taken out of the snapshots): call it after the swap that
    /// unlinked it.
    pub(crate) fn retire<T: Send + 'static>(&self, value: T) -> Retired<'_, T> {
        Retired {
            ptr: own_line(value),
            generation: self.retirement_point(),
            urgent: true,
            weight: std::mem::size_of::<Padded<T>>(),
            domain: self,
        }
    }
}

/// A list of owned values (boxed, or in the list's [`Slab`]) that posts read through
/// snapshots: the subscriber list of a channel.
///
/// A snapshot is an immutable array of pointers to the values, in the list's order, plus a
/// small summary `X` of them. Readers iterate a snapshot inside a read section without touching
/// any reference count; writers change the list under its lock by swapping in a new snapshot.
///
/// Invariant (what makes [`ListSnapshot::iter`] sound): the list owns exactly the values its
/// current snapshot points to (no other record of them is kept: the snapshot is the list's
/// own). A value leaves the list only together with the swap that installs a snapshot without
/// it, and is then retired (freed only after a grace period that began after that swap). Every
/// older snapshot that still points to it was swapped out no later than that, so a reader
/// holding one is in a read section that began before the value was retired, and that grace
/// period waits for it.
pub(crate) struct RcuList<T: ?Sized + 'static, X> {
    cell: Guarded<(), ListSnapshot<T, X>>,
    /// Where small values live (`slab.rs`); a value outside it is a box.
    slab: Arc<Slab>,
}

impl<T: ?Sized + 'static, X> Drop for RcuList<T, X> {
    fn drop(&mut self) {
        // `&mut self`: no reader or writer is left. The list owns exactly the current
        // snapshot's values.
        let items: Vec<NonNull<T>> = self.cell.value_mut().slice().to_vec();
        for ptr in items {
            drop(self.reclaim(ptr));
        }
    }
}

impl<T: ?Sized + 'static, X> RcuList<T, X> {
    /// Takes back ownership of a value the list held (it left the current snapshot, or the
    /// list is dropped).
    fn reclaim(&self, ptr: NonNull<T>) -> Owned<T> {
        if self.slab.owns(ptr) {
            // SAFETY: the value lies in the list's slab, where only `Slab::put` writes values,
            // and the list owned it until now.
            unsafe { Owned::in_slab(ptr, self.slab.clone()) }
        } else {
            Owned { ptr, slab: None }
        }
    }
}

/// A list item, owned through a raw pointer: from `Box::into_raw`, or a line of a [`Slab`].
/// Kept raw (never as a `Box`, which asserts uniqueness when moved) because snapshots hold
/// shared pointers to it.
pub(crate) struct Owned<T: ?Sized> {
    ptr: NonNull<T>,
    /// The slab whose line holds the value; `None` for a box.
    slab: Option<Arc<Slab>>,
}

// SAFETY: an `Owned<T>` owns its `T`; it is shared only as `&T`.
unsafe impl<T: ?Sized + Send> Send for Owned<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Sync> Sync for Owned<T> {}

impl<T: ?Sized> Owned<T> {
    /// Owns a boxed value.
    pub(crate) fn boxed(value: Box<T>) -> Self {
        Owned {
            ptr: NonNull::from(Box::leak(value)),
            slab: None,
        }
    }

    /// Owns a value [`Slab::put`] wrote into a line of `slab`.
    ///
    /// # Safety
    /// `at` points to the value `slab.put` wrote (unsized, perhaps), which nothing else owns.
    pub(crate) unsafe fn in_slab(at: NonNull<T>, slab: Arc<Slab>) -> Self {
        Owned {
            ptr: at,
            slab: Some(slab),
        }
    }

    /// The value.
    pub(crate) fn get(&self) -> &T {
        // SAFETY: the pointer came from a leaked `Box` or a slab's line, and is freed only by
        // `drop(self)`.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: ?Sized> std::ops::Deref for Owned<T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.get()
    }
}

impl<T: ?Sized> Drop for Owned<T> {
    fn drop(&mut self) {
        let Some(slab) = self.slab.take() else {
            // SAFETY: the pointer came from a leaked `Box`; this is its only owner, and it is
            // dropped once (after a grace period, when it was in a list: see `RcuList`).
            drop(unsafe { Box::from_raw(self.ptr.as_ptr()) });
            return;
        };
        /// Gives the slot back once the value is dropped, even if its drop panics.
        struct GiveBack<'s, T: ?Sized>(&'s Slab, NonNull<T>, usize, usize);
        impl<T: ?Sized> Drop for GiveBack<'_, T> {
            fn drop(&mut self) {
                // SAFETY: the slot came from this slab for a value of this size and alignment
                // (`Owned::in_slab`), and the value has just been dropped.
                unsafe { self.0.free(self.1, self.2, self.3) };
            }
        }
        let value = self.get();
        let (size, align) = (std::mem::size_of_val(value), std::mem::align_of_val(value));
        let _give_back = GiveBack(&slab, self.ptr, size, align);
        // SAFETY: this is the value's only owner, dropping it once (after a grace period, as
        // above); the slot stays allocated until `_give_back` returns it.
        unsafe { self.ptr.as_ptr().drop_in_place() };
    }
}

/// A snapshot's items, as a writer builds them.
type ItemVec<T> = Vec<NonNull<T>>;

/// One version of an [`RcuList`].
pub(crate) struct ListSnapshot<T: ?Sized + 'static, X> {
    /// The first of exactly the items (the first `len` slots of `buf`): a post reads this
    /// address and the length and loops, with no test of where the items live (an array
    /// inline in the snapshot for a few items cost every post that test, seven instructions,
    /// to save one dependent load).
    items: NonNull<NonNull<T>>,
    len: usize,
    /// A summary of the items, computed when the snapshot is made.
    pub(crate) extra: X,
    /// The array `items` points into, which later snapshots may share ([`ItemBuf`]).
    buf: Arc<ItemBuf<T>>,
}

// SAFETY: a snapshot stands for shared references to `T`s (plus an `X`): it may cross threads
// when `&T` and `X` may.
unsafe impl<T: ?Sized + Sync, X: Send> Send for ListSnapshot<T, X> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Sync, X: Sync> Sync for ListSnapshot<T, X> {}

impl<T: ?Sized + 'static, X> ListSnapshot<T, X> {
    /// A snapshot of the first `len` slots of `buf`, which hold items.
    fn on(buf: Arc<ItemBuf<T>>, len: usize, extra: X) -> Self {
        // Counted before the snapshot can be published; only the writer (under the list's
        // lock) makes snapshots, and it reads the counts itself.
        buf.live(len).fetch_add(1, Ordering::Relaxed);
        ListSnapshot {
            items: buf.slots,
            len,
            extra,
            buf,
        }
    }

    /// The items as a slice.
    #[inline]
    fn slice(&self) -> &[NonNull<T>] {
        #[cfg(herald_loom)]
        for cell in &self.buf.shadow[..self.len] {
            cell.with(|_| ());
        }
        // SAFETY: the first `len` slots of the buffer were written before this snapshot was
        // made and are not written again while it lives (`ItemBuf::appendable`); the buffer
        // outlives the snapshot (`buf`).
        unsafe { std::slice::from_raw_parts(self.items.as_ptr(), self.len) }
    }

    /// The items, in order.
    #[inline]
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.slice().iter().map(|p| {
            // SAFETY: a snapshot is reachable only inside a read section (`RcuList::load`),
            // under the list's writer lock, or with `&mut` of the list; in each case its items
            // are alive (the invariant of `RcuList`), and items are only ever shared.
            unsafe { p.as_ref() }
        })
    }

    /// The items, indexable: a copy of the array's address and length, so a loop that calls
    /// out (and may, for all the compiler knows, write memory) keeps both in registers.
    #[inline]
    pub(crate) fn items(&self) -> Items<'_, T> {
        Items(self.slice())
    }

    /// How many items.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl<T: ?Sized + 'static, X> Drop for ListSnapshot<T, X> {
    fn drop(&mut self) {
        // Release: every read of this snapshot's slots (in read sections that a grace period
        // waited for before this free, or by the writer) happens before a writer that sees
        // the count drop reuses a slot past the shorter snapshots' ends.
        self.buf.live(self.len).fetch_sub(1, Ordering::Release);
    }
}

/// The array of item pointers behind one or more snapshots.
///
/// A subscriber churn (another thread subscribing and unsubscribing in a loop) used to copy
/// the whole array twice per cycle into fresh memory, and every post after each swap missed
/// in its cache on every line of the new array. Snapshots now share one array where they
/// can: a snapshot of length `n` reads slots `0..n`, an insert at the end writes slot `n` of
/// the current array (when it has room and no live snapshot reads that slot) and a removal
/// of the last item only shortens the next snapshot. A post then misses on one line of the
/// array per change at most. Anything else copies into a new array with room to grow.
///
/// A slot below the length of any live snapshot is never written: the writer appends at
/// slot `n` only when no snapshot longer than `n` is alive (`live`), and snapshots are
/// counted from when they are made until they are freed, after the grace period that
/// follows their retirement.
#[repr(align(128))]
struct ItemBuf<T: ?Sized> {
    /// `cap` slots; those below a live snapshot's length hold items.
    slots: NonNull<NonNull<T>>,
    cap: usize,
    /// `live(n)`: snapshots of length `n` on this array that are not freed yet.
    live: Box<[Padded<[AtomicU32; LIVE_PER_LINE]>]>,
    /// Under loom, one tracked cell per slot: a post's read of its snapshot's slots and the
    /// writer's write of a slot touch it, so loom reports a write that no release/acquire
    /// chain orders after every read of that slot (it does not see the raw array itself).
    #[cfg(herald_loom)]
    shadow: Box<[loom::cell::UnsafeCell<()>]>,
}

// SAFETY: the array holds pointers that stand for shared references to `T`s; its slots are
// written only by the list's writer, under its lock, where no reader reads them (`ItemBuf`).
unsafe impl<T: ?Sized + Sync> Send for ItemBuf<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Sync> Sync for ItemBuf<T> {}

impl<T: ?Sized> ItemBuf<T> {
    /// A new array holding `items`, with room for `spare` more.
    fn with(items: &[NonNull<T>], spare: usize) -> Arc<Self> {
        let cap = items.len() + spare;
        let slots = if cap == 0 {
            NonNull::dangling()
        } else {
            let layout = Self::layout(cap);
            // SAFETY: the layout is not zero-sized (`cap > 0`, pointers are not zero-sized).
            let p = unsafe { std::alloc::alloc(layout) }.cast::<NonNull<T>>();
            let p = NonNull::new(p).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
            // SAFETY: the allocation holds `cap >= items.len()` slots, and is new.
            unsafe { std::ptr::copy_nonoverlapping(items.as_ptr(), p.as_ptr(), items.len()) };
            p
        };
        Arc::new(ItemBuf {
            slots,
            cap,
            live: (0..=cap / LIVE_PER_LINE)
                .map(|_| Padded(std::array::from_fn(|_| AtomicU32::new(0))))
                .collect(),
            #[cfg(herald_loom)]
            shadow: (0..cap).map(|_| loom::cell::UnsafeCell::new(())).collect(),
        })
    }

    /// A plain array. Padding it to whole [`Padded`] blocks was measured and not kept:
    /// `inline/1->64` about 1.5 % slower in a harness over 16 heap layouts (old, padded and
    /// plain builds interleaved per layout), and the array is what posts read anyway; its
    /// neighbours' writes are what `own_line` keeps away from the snapshots.
    fn layout(cap: usize) -> std::alloc::Layout {
        std::alloc::Layout::array::<NonNull<T>>(cap)
            .unwrap_or_else(|_| unreachable!("no list holds more items than memory"))
    }

    /// The count of live snapshots of length `n`.
    fn live(&self, n: usize) -> &AtomicU32 {
        &self.live[n / LIVE_PER_LINE].0[n % LIVE_PER_LINE]
    }

    /// Whether slot `n` may be written: it exists, and no live snapshot is longer than `n`.
    /// Called by the writer, under the list's lock (no other snapshot can be made meanwhile).
    fn appendable(&self, n: usize) -> bool {
        // Acquire: pairs with the release in `ListSnapshot::drop`.
        n < self.cap && (n + 1..=self.cap).all(|k| self.live(k).load(Ordering::Acquire) == 0)
    }

    /// Writes slot `n`.
    ///
    /// # Safety
    /// The caller holds the list's writer lock and `appendable(n)` held under it.
    unsafe fn write(&self, n: usize, item: NonNull<T>) {
        #[cfg(herald_loom)]
        self.shadow[n].with_mut(|_| ());
        // SAFETY: `n < cap` (the caller checked `appendable`): inside the allocation, and no
        // snapshot reads the slot; the writer lock excludes other writes.
        unsafe { self.slots.as_ptr().add(n).write(item) };
    }

    /// Room to grow for a new array of `len` items.
    fn spare(len: usize) -> usize {
        len / 8 + 1
    }

    /// Whether `len` items would leave an array of `cap` slots mostly empty: a list that
    /// shrank from its peak gets a new, smaller array instead of keeping the large one.
    fn roomy(cap: usize, len: usize) -> bool {
        cap > 16 && len < cap / 4
    }
}

impl<T: ?Sized> Drop for ItemBuf<T> {
    fn drop(&mut self) {
        if self.cap != 0 {
            // SAFETY: allocated in `with` with this layout; every snapshot on it is gone.
            unsafe { std::alloc::dealloc(self.slots.as_ptr().cast(), Self::layout(self.cap)) };
        }
    }
}

/// Counts of [`ItemBuf::live`] per [`Padded`] block: a writer changes two of them per
/// snapshot it makes or frees, and those writes must not land beside a line a post reads.
const LIVE_PER_LINE: usize = 32;

/// The items of a [`ListSnapshot`], by index.
pub(crate) struct Items<'s, T: ?Sized>(&'s [NonNull<T>]);

impl<T: ?Sized> Clone for Items<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: ?Sized> Copy for Items<'_, T> {}

impl<'s, T: ?Sized> Items<'s, T> {
    /// The items from `start` on, each with the address of its place in the array, which
    /// [`Items::index_of`] turns back into its index: a loop that must know where it is (to
    /// resume after a panic) needs no index of its own beside the pointer it walks with.
    #[inline]
    pub(crate) fn starting_at(
        self,
        start: usize,
    ) -> impl Iterator<Item = (*const NonNull<T>, &'s T)> {
        let rest = self.0.get(start..).unwrap_or_default();
        rest.iter().map(|p| {
            // SAFETY: as in `get`: an `Items` borrows its snapshot, whose items are alive.
            (std::ptr::from_ref(p), unsafe { p.as_ref() })
        })
    }

    /// The index of the place `place` (from [`Items::starting_at`]), if it is one of these.
    pub(crate) fn index_of(self, place: *const NonNull<T>) -> Option<usize> {
        self.0.iter().position(|p| std::ptr::eq(p, place))
    }

    /// The item at `index`, if there is one.
    #[inline]
    pub(crate) fn get(self, index: usize) -> Option<&'s T> {
        self.0.get(index).map(|p| {
            // SAFETY: an `Items` borrows its snapshot, so, as in `ListSnapshot::iter`, its
            // items are alive and only ever shared.
            unsafe { p.as_ref() }
        })
    }
}

impl<T: ?Sized + Send + Sync + 'static, X: Send + Sync + 'static> RcuList<T, X> {
    pub(crate) fn new(extra: X) -> Self {
        RcuList {
            cell: Guarded::new((), ListSnapshot::on(ItemBuf::with(&[], 0), 0, extra)),
            slab: Arc::default(),
        }
    }

    /// The slab the list's small values live in: values made in it ([`Slab::put`]) and owned
    /// through [`Owned::in_slab`] may be inserted.
    pub(crate) fn slab(&self) -> &Arc<Slab> {
        &self.slab
    }

    /// The current snapshot, valid for the read section.
    #[inline]
    pub(crate) fn load<'g>(&self, section: &'g ReadGuard<'_>) -> &'g ListSnapshot<T, X> {
        self.cell.load(section)
    }

    /// Inserts `item` at the position `at` chooses in the current snapshot; `summarize` makes
    /// the new snapshot's summary from the old summary and the new items. Hands back the old
    /// snapshot, retired.
    pub(crate) fn insert<'d>(
        &self,
        domain: &'d Domain,
        item: Owned<T>,
        at: impl FnOnce(&ListSnapshot<T, X>, &T) -> usize,
        summarize: impl FnOnce(&X, &mut dyn Iterator<Item = &T>) -> X,
    ) -> Retired<'d, ListSnapshot<T, X>> {
        let item = self.adopt(item);
        let mut w = self.cell.write();
        let current = w.current();
        let n = current.len;
        // SAFETY: the value is alive (just adopted, owned by the list from here on).
        let at = at(current, unsafe { item.as_ref() }).min(n);
        let next = if at == n && current.buf.appendable(n) {
            // SAFETY: we hold the writer lock, and `appendable(n)` holds.
            unsafe { current.buf.write(n, item) };
            // SAFETY: slots `0..n` held the current items, and slot `n` now holds the new one.
            unsafe { Self::snapshot_on(current.buf.clone(), n + 1, &current.extra, summarize) }
        } else {
            // Exactly the items plus room to grow, in one allocation.
            let old = current.slice();
            let mut items = ItemVec::with_capacity(n + 1);
            items.extend_from_slice(&old[..at]);
            items.push(item);
            items.extend_from_slice(&old[at..]);
            Self::snapshot(&items, &current.extra, summarize)
        };
        let heap = Self::heap_bytes(w.current());
        w.replace(domain, next).weighing(heap)
    }

    /// Takes out the first item `matches` accepts: `removing` sees it first (while no new
    /// snapshot has it yet), then the list swaps in a snapshot without it. Hands back the item
    /// and the old snapshot, both retired (readers may still hold them).
    #[allow(clippy::type_complexity)]
    pub(crate) fn remove<'d>(
        &self,
        domain: &'d Domain,
        matches: impl Fn(&T) -> bool,
        removing: impl FnOnce(&T),
        summarize: impl FnOnce(&X, &mut dyn Iterator<Item = &T>) -> X,
    ) -> Option<(Retired<'d, Owned<T>>, Retired<'d, ListSnapshot<T, X>>)> {
        let mut w = self.cell.write();
        let current = w.current();
        // SAFETY: the current snapshot's values are alive (the list owns them; we hold its
        // lock).
        let at = current.iter().position(&matches)?;
        let old = current.slice();
        let ptr = old[at];
        // SAFETY: as above.
        removing(unsafe { ptr.as_ref() });
        let n = old.len();
        let next = if at + 1 == n && !ItemBuf::<T>::roomy(current.buf.cap, n - 1) {
            // The last item: the next snapshot is the same array, one shorter.
            // SAFETY: slots `0..n - 1` hold the current items but the one removed.
            unsafe { Self::snapshot_on(current.buf.clone(), n - 1, &current.extra, summarize) }
        } else {
            let mut items = ItemVec::with_capacity(n - 1);
            items.extend_from_slice(&old[..at]);
            items.extend_from_slice(&old[at + 1..]);
            Self::snapshot(&items, &current.extra, summarize)
        };
        let heap = Self::heap_bytes(w.current());
        let snapshot = w.replace(domain, next).weighing(heap);
        drop(w);
        Some((domain.retire(self.reclaim(ptr)), snapshot))
    }

    /// Swaps in a copy of the current snapshot with a new summary.
    pub(crate) fn resummarize<'d>(
        &self,
        domain: &'d Domain,
        summarize: impl FnOnce(&X, &mut dyn Iterator<Item = &T>) -> X,
    ) -> Retired<'d, ListSnapshot<T, X>> {
        let mut w = self.cell.write();
        let current = w.current();
        // SAFETY: the current snapshot's slots hold the items.
        let next = unsafe {
            Self::snapshot_on(current.buf.clone(), current.len, &current.extra, summarize)
        };
        let heap = Self::heap_bytes(w.current());
        w.replace(domain, next).weighing(heap)
    }

    /// The heap array a snapshot holds.
    fn heap_bytes(snapshot: &ListSnapshot<T, X>) -> usize {
        std::mem::size_of_val::<[NonNull<T>]>(snapshot.slice())
    }

    /// A snapshot of `items` (all alive: the caller holds the writer lock), on a new array.
    fn snapshot(
        items: &[NonNull<T>],
        previous: &X,
        summarize: impl FnOnce(&X, &mut dyn Iterator<Item = &T>) -> X,
    ) -> ListSnapshot<T, X> {
        let buf = ItemBuf::with(items, ItemBuf::<T>::spare(items.len()));
        // SAFETY: the caller holds the lock; the new array holds exactly `items`.
        unsafe { Self::snapshot_on(buf, items.len(), previous, summarize) }
    }

    /// A snapshot of the first `len` slots of `buf`.
    ///
    /// # Safety
    /// The caller holds the writer lock, and the first `len` slots of `buf` hold the list's
    /// items (all alive).
    unsafe fn snapshot_on(
        buf: Arc<ItemBuf<T>>,
        len: usize,
        previous: &X,
        summarize: impl FnOnce(&X, &mut dyn Iterator<Item = &T>) -> X,
    ) -> ListSnapshot<T, X> {
        assert!(
            len <= buf.cap,
            "a snapshot of {len} items on an array of {}",
            buf.cap
        );
        // SAFETY: the first `len` slots hold items (the caller's promise), and `buf` is
        // borrowed for the call.
        let items = unsafe { std::slice::from_raw_parts(buf.slots.as_ptr(), len) };
        let extra = summarize(
            previous,
            &mut items.iter().map(|p| {
                // SAFETY: every pointer is to a live value owned by the writer side (whose lock
                // the caller holds), and values in a list are only ever shared.
                unsafe { p.as_ref() }
            }),
        );
        ListSnapshot::on(buf, len, extra)
    }

    /// The items, for the owner with exclusive access (no reader or writer is left).
    pub(crate) fn items_mut(&mut self) -> impl Iterator<Item = &T> {
        self.cell.value_mut().iter()
    }

    /// Makes `item` the list's: a value in the list's slab, or a box.
    fn adopt(&self, item: Owned<T>) -> NonNull<T> {
        let item = std::mem::ManuallyDrop::new(item);
        if let Some(slab) = &item.slab {
            assert!(
                Arc::ptr_eq(slab, &self.slab),
                "a value made in another slab was inserted into this list"
            );
        }
        let ptr = item.ptr;
        // SAFETY: `item` is not dropped (`ManuallyDrop`); its slab reference is released here,
        // and the list (whose slab it is) owns the value from now on.
        drop(unsafe { std::ptr::read(&item.slab) });
        ptr
    }
}

#[cfg(all(test, not(herald_loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    /// Garbage that records when it is freed.
    struct Freed(Arc<AtomicBool>);

    impl Drop for Freed {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn slots_of_two_threads_never_share_a_cache_line() {
        assert_eq!(std::mem::align_of::<Slot>() % 128, 0);
        assert_eq!(std::mem::size_of::<Slot>() % 128, 0);
    }

    fn retire(domain: &Domain, urgent: bool) -> Arc<AtomicBool> {
        let freed = Arc::new(AtomicBool::new(false));
        let generation = domain.retirement_point();
        domain.defer(generation, urgent, 8, Box::new(Freed(freed.clone())));
        freed
    }

    // A symmetric domain keeps readers fencing: the writers' episode never ends.

    #[test]
    fn plain_garbage_waits_for_a_grace_period_until_it_piles_up() {
        // Symmetric: readers always fence, the writers' episode never ends.
        let domain = Domain::new(false);
        let first = retire(&domain, false);
        for _ in 0..4 * PILE {
            drop(domain.read());
        }
        assert!(
            !first.load(Ordering::SeqCst),
            "a post's end leaves one old snapshot to the writers' next grace period"
        );
        let rest: Vec<_> = (0..PILE).map(|_| retire(&domain, false)).collect();
        drop(domain.read());
        assert!(
            first.load(Ordering::SeqCst) && rest.iter().all(|f| f.load(Ordering::SeqCst)),
            "over {PILE} retired values, the next post's end frees them"
        );
        assert_eq!(domain.hot.mode.load(Ordering::SeqCst) & URGENT, 0);
    }

    /// A list of numbers, its summary how many there are.
    type Numbers = RcuList<u32, usize>;

    fn count(_: &usize, items: &mut dyn Iterator<Item = &u32>) -> usize {
        items.count()
    }

    /// Appends `v` (outside any read section: the old snapshot is freed at once).
    fn push(list: &Numbers, domain: &Domain, v: u32) {
        let old = list.insert(domain, Owned::boxed(Box::new(v)), |s, _| s.len(), count);
        old.release(domain.synchronize().as_ref());
    }

    /// Removes `v`, freeing what it retires at once.
    fn remove(list: &Numbers, domain: &Domain, v: u32) {
        let (item, old) = list
            .remove(domain, |x| *x == v, |_| {}, count)
            .expect("the number is in the list");
        let grace = domain.synchronize();
        item.release(grace.as_ref());
        old.release(grace.as_ref());
    }

    /// The current items, the array's address and its slot count.
    fn current(list: &Numbers, domain: &Domain) -> (Vec<u32>, usize, usize) {
        let section = domain.read();
        let snap = list.load(&section);
        assert_eq!(snap.extra, snap.len());
        (
            snap.iter().copied().collect(),
            snap.items.as_ptr() as usize,
            snap.buf.cap,
        )
    }

    #[test]
    fn changes_at_the_end_of_a_list_share_one_array() {
        let domain = Domain::new(false);
        let list = Numbers::new(0);
        for v in 0..8 {
            push(&list, &domain, v);
        }
        let (items, array, _) = current(&list, &domain);
        assert_eq!(items, (0..8).collect::<Vec<_>>());
        remove(&list, &domain, 7);
        let (items, after_remove, _) = current(&list, &domain);
        assert_eq!((items.len(), after_remove), (7, array));
        push(&list, &domain, 70);
        let (items, after_push, _) = current(&list, &domain);
        assert_eq!(after_push, array, "the freed slot is written again");
        assert_eq!(items, [0, 1, 2, 3, 4, 5, 6, 70]);
        remove(&list, &domain, 3);
        let (items, after_middle, _) = current(&list, &domain);
        assert_ne!(after_middle, array, "a removal in the middle copies");
        assert_eq!(items, [0, 1, 2, 4, 5, 6, 70]);
    }

    #[test]
    fn a_slot_a_live_snapshot_reads_is_never_written() {
        let domain = Domain::new(false);
        let list = Numbers::new(0);
        for v in 0..4 {
            push(&list, &domain, v);
        }
        let (_, array, _) = current(&list, &domain);
        // Remove the last number but keep the old snapshot (which still reads its slot) alive,
        // as a post in progress would.
        let (item, old) = list
            .remove(&domain, |x| *x == 3, |_| {}, count)
            .expect("present");
        push(&list, &domain, 30);
        let (items, after, _) = current(&list, &domain);
        assert_ne!(after, array, "the slot was still read: the push copies");
        assert_eq!(items, [0, 1, 2, 30]);
        assert_eq!(old.get().iter().copied().collect::<Vec<_>>(), [0, 1, 2, 3]);
        let grace = domain.synchronize();
        item.release(grace.as_ref());
        old.release(grace.as_ref());
    }

    #[test]
    fn a_list_that_shrank_from_its_peak_gets_a_smaller_array() {
        let domain = Domain::new(false);
        let list = Numbers::new(0);
        for v in 0..200 {
            push(&list, &domain, v);
        }
        let (_, _, peak) = current(&list, &domain);
        assert!(peak >= 200);
        for v in (3..200).rev() {
            remove(&list, &domain, v);
        }
        let (items, _, cap) = current(&list, &domain);
        assert_eq!(items, [0, 1, 2]);
        assert!(cap <= 16, "{cap} slots kept for 3 items (peak {peak})");
    }

    /// Counts its drops.
    struct Counted(Arc<std::sync::atomic::AtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A `Counted` in the list's slab, or boxed.
    fn counted(
        list: &RcuList<Counted, usize>,
        drops: &Arc<std::sync::atomic::AtomicUsize>,
        boxed: bool,
    ) -> Owned<Counted> {
        let value = Counted(drops.clone());
        if boxed {
            return Owned::boxed(Box::new(value));
        }
        match list.slab().put(value) {
            // SAFETY: `put` wrote it, and nothing else owns it.
            Ok(at) => unsafe { Owned::in_slab(at, list.slab().clone()) },
            Err(_) => panic!("a pointer fits a slot"),
        }
    }

    fn count_counted(_: &usize, items: &mut dyn Iterator<Item = &Counted>) -> usize {
        items.count()
    }

    #[test]
    fn the_list_owns_its_values_in_the_slab_and_boxed_and_frees_each_once() {
        let domain = Domain::new(false);
        let drops = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let list = RcuList::<Counted, usize>::new(0);
        for i in 0..6 {
            let item = counted(&list, &drops, i % 2 == 0);
            let old = list.insert(&domain, item, |s, _| s.len(), count_counted);
            old.release(domain.synchronize().as_ref());
        }
        // Removing one (the first) retires it: freed once, after the grace period.
        let first = Cell::new(true);
        let (item, old) = list
            .remove(&domain, |_| first.replace(false), |_| {}, count_counted)
            .expect("the list is not empty");
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        let grace = domain.synchronize();
        item.release(grace.as_ref());
        old.release(grace.as_ref());
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        // Dropping the list frees the other five, once each.
        drop(list);
        assert_eq!(drops.load(Ordering::SeqCst), 6);
    }

    #[test]
    #[should_panic(expected = "another slab")]
    fn a_value_from_another_lists_slab_is_refused() {
        let domain = Domain::new(false);
        let drops = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let one = RcuList::<Counted, usize>::new(0);
        let other = RcuList::<Counted, usize>::new(0);
        let item = counted(&other, &drops, false);
        drop(one.insert(&domain, item, |s, _| s.len(), count_counted));
    }

    #[test]
    fn a_grace_period_frees_plain_garbage() {
        let domain = Domain::new(true);
        let freed = retire(&domain, false);
        assert!(domain.synchronize().is_some());
        assert!(freed.load(Ordering::SeqCst));
    }

    #[test]
    fn garbage_holding_user_code_is_freed_at_the_next_section_end() {
        let domain = Domain::new(false);
        let freed = retire(&domain, true);
        drop(domain.read());
        assert!(freed.load(Ordering::SeqCst));
    }

    #[test]
    fn a_nested_section_end_frees_nothing() {
        let domain = Domain::new(false);
        let outer = domain.read();
        let freed = retire(&domain, true);
        drop(domain.read());
        assert!(
            !freed.load(Ordering::SeqCst),
            "the outer section is still open"
        );
        drop(outer);
        assert!(freed.load(Ordering::SeqCst));
    }
}
