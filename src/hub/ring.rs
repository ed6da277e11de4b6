//! The shared ring behind drop-oldest and latest-only streams.
//!
//! One [`Ring`] per notification type and capacity holds the last `capacity` posted values for
//! every stream subscribed with [`Overflow::DropOldest`](crate::Overflow::DropOldest) or
//! [`Overflow::Latest`](crate::Overflow::Latest) (a ring of capacity 1) and no filter. Each
//! stream has a [`Member`]: a cursor into the ring, its own cache line.
//!
//! # Semantics
//! - **Membership.** A stream is a member from the post after it joined (when its subscription
//!   is made) until it leaves (when the subscription ends: unsubscribe or close, once the grace
//!   period has passed, or the center dropped); what it had not taken then stays its own. A post made with a subscriber snapshot older than
//!   the stream's subscription does not reach it, even if it is written to the ring after the
//!   join (recorded as a *skip* for that member), so a stream added during a post does not get
//!   that post. A `replay_last` stream is never a member: its replayed value would be held
//!   outside the ring's count of `capacity` (`stream::ring_serves`).
//! - **Drop-oldest, exactly.** A post at position `p` evicts position `p - capacity` from every
//!   member that has not taken it yet: each member holds at most `capacity` values, the newest
//!   ones. There is no batch held aside: a receiver takes values straight from the ring, one
//!   claim per value, so nothing it has not returned yet can outlive a newer value.
//! - **Who got what.** A member's cursor is the first position it has neither received nor lost.
//!   The receiver claims position `q` by a compare-and-swap of its own cursor from `q` to `q + 1`;
//!   a poster evicts a lagging member by a compare-and-swap of that member's cursor past the
//!   evicted position. Exactly one of them wins each position, so the poster's
//!   [`PostReport::dropped`](crate::PostReport::dropped), the member's
//!   [`BufferStats::dropped`](crate::BufferStats::dropped) and the `Lagged(n)` the receiver sees
//!   agree exactly. The receiver computes `n` itself, from how far its cursor was moved.
//! - **One allocation per post, no copy kept.** A post hands each member a *ticket*: one strong
//!   count of the post's `Arc<N>`, taken by the poster. The member that claims the position turns
//!   its ticket into the `Arc<N>` it returns (no reference-count traffic on the receiving side);
//!   the poster that evicts it releases the ticket; a member that leaves takes its unclaimed
//!   tickets out of the ring into a private queue. The ring's slots own nothing, so a value is
//!   freed as soon as every member has received or lost it.
//! - **Moved values: no allocation by the poster.** When a post hands the ring its value
//!   itself (the engine's `OWNED_TAIL`: the snapshot ends with this ring's streams, nothing
//!   else needs the value in an `Arc`, and retention is off) and reaches every member (its
//!   snapshot is not older than the newest join), at most [`MAX_MOVED_MEMBERS`], the poster
//!   moves the value into the ring and the first receiver to take it makes the `Arc`, with a reference for each member still to
//!   take it; the others take those references. The post allocates nothing and touches no
//!   reference count, and the `Arc` is made, counted and usually freed on the receiving side,
//!   instead of made by one thread and freed by another (`stream/1->N` in
//!   `benches/dispatch.rs`: see ARCHITECTURE.md). Streams see the same values, order, lags and
//!   counts either way, and the streams of one post still share one `Arc` (an inline observer
//!   of the post does not see its address: it ran before the `Arc` was made). A post made
//!   with a snapshot older than the newest join, or of an `Arc` (retention, or entries after
//!   the streams), or to a ring whose value slots would be too large, shares an `Arc` through
//!   tickets as above, and the positions of both kinds mix in one ring.
//!
//! # Moved values
//! A moved value's position `p` has its value in `values[p & value_mask]`, a second array
//! allocated by the first such post, stamped `p` ([`ValueSlot`]); its pointer slot is not
//! written. A position holds a moved value exactly when its value slot's stamp is itself
//! (with [`SHARED_STAMP`] set when the post reached several members).
//! Each member the post reached holds a ticket for it, won by the cursor as for a shared
//! value: by the receiver whose claim wins, the poster whose eviction wins, or the member's
//! leaving. A post that reached one member leaves the stamp's shared bit clear: its ticket's
//! holder moves the value out (into an `Arc`, or dropped after the lock), with no other
//! word written or read. Otherwise the value slot's sharing word ([`Share`]) counts the tickets
//! still waiting for the value (`Unmade(k)`, set by the post to its member count):
//! - a claim or a leaving turns its ticket into an `Arc` ([`ValueSlot::to_arc`]): with
//!   `Unmade(1)` the ticket is the last, and it moves the value out into its own `Arc`; with
//!   more, it swaps the word to `Making` (a compare-and-swap: one taker wins), moves the value
//!   out into an `Arc` with one reference per waiting ticket, and stores the `Arc`'s pointer
//!   (`Release`); a taker that finds the pointer takes one of its references (`Acquire`), one
//!   that finds `Making` waits for the pointer (another receiver's `Arc::new`: no lock, no
//!   user code);
//! - an eviction releases the tickets it won ([`ValueSlot::release`]): references of a made
//!   `Arc`, dropped after the lock, or, when they were all that waited, the value itself
//!   (dropped after the lock), or else it lowers the count (a compare-and-swap against a
//!   taker's), waiting out a `Making` as a taker does.
//!
//! So the value is moved out exactly once and each ticket becomes exactly one reference or is
//! released once. A value slot is never dropped in place: whoever took the value owns it.
//!
//! Receivers read the value slot (its word, and the value) after their claim, so a later
//! post must not write that value slot while they read. This is the value ring's protocol
//! (`value_ring.rs`, "The claim"): the receiver announces the position in its member's `moving` word before the claim and clears
//! it after the read; there are more value slots than the capacity (`capacity + 1` rounded up
//! to a power of two), so a receiver still reading position `o` when a post writes its value
//! slot again (position `o + value_mask + 1` or later) has been evicted by an earlier post, or
//! by this one before it writes; a poster that evicts (or detaches) a member whose `moving`
//! word is set keeps it on the ring's watch list, and a post that writes a value slot first
//! waits for the watched receivers reading that slot ([`Watch`]): only a receiver
//! stopped inside its read for a whole ring of posts makes a poster wait, and the common path
//! reads no member at all. A ring whose full array of values would exceed
//! [`MAX_MOVED_BYTES`] (large values in large rings) never moves.
//!
//! # Cost
//! A post: the ring's lock, one strong-count increment per member (the tickets; one fewer
//! when the post hands the ring an `Arc` it made, whose own reference is one of them; none for
//! a moved value, whose taker counts them on the receiving side), a slot store,
//! the tail store and one load of the parked count, under the lock (the parking handshake: no
//! fence, so the poster never waits for its stores to reach the receivers' caches). Evicting
//! lagging members and waking parked ones touch only those members; the common case reads one
//! cached minimum. A moved value's post: the value's and its word's stores instead of the
//! increments, and no allocation (the poster's `Arc::new`, and the free on another thread,
//! are gone). A receive: a load of the slot and a compare-and-swap on the
//! receiver's own cursor, uncontended unless a poster is evicting that receiver (a moved
//! value: two more stores to the same line, the announcement and its end, a load of the
//! sharing word; the first taker also moves the value out, makes the `Arc` and counts the
//! other tickets into it, one compare-and-swap and a store on the value's line); the tail is
//! read once per batch (when the receiver has returned everything it knew of), and not at all
//! while the next position's stamp shows a value moved to this member alone. A receiver that
//! has just caught up yields to its executor a few times before it parks (`YIELDS` extra
//! polls): in a burst of posts the next value has usually arrived by then, so the executor's
//! thread does not fall asleep, and need waking by a system call, after every post. The only
//! member of a ring parks at once (`YIELDS_ALONE`): yielding, it would read the line the
//! poster writes next after each value, and the two cores would trade it for every value.
//! Parking takes the ring's lock once; a receiver that finds values never takes it.
//!
//! # Memory orderings
//! - Slot stores are `Relaxed`; the poster publishes them with the `tail` store (release), and
//!   a receiver reads slots below a `tail` it loaded with acquire. Skips are recorded before the
//!   `tail` store too, so a receiver knows every skip below the `tail` it loaded. A moved value
//!   and its stamp are written before the `tail` store too, so the same `tail` publishes them;
//!   the stamp is also a release store after the value (and its sharing word), so a receiver
//!   that loads its next position's stamp with acquire and finds a value moved to it alone
//!   takes it without loading the `tail` ([`Reader::take`]): a lone stream that keeps up with
//!   its poster then never reads the line the poster writes on every post.
//! - Both stores of `moving` are `Release`, and the claim after the first is `AcqRel`. An
//!   eviction (or leaving) reads the cursor of the receiver's latest claim (acquire), so its
//!   next load of `moving` sees that claim's announcement or a later store; a later store
//!   (`NOT_MOVING`, or the next announcement) is release-ordered after the read of the value,
//!   so a poster that loads it and then writes the value slot does so after that read.
//!   `tests/loom_ring.rs` checks this with the value slots as loom cells (a write racing the
//!   read fails the model).
//! - A claim is `AcqRel`: its release half orders the receiver's slot read before any later
//!   overwrite of that slot, because a poster only overwrites a slot after it has loaded every
//!   member's cursor past it with acquire (through the cached minimum, refreshed under the ring's
//!   lock) or evicted them itself. A receiver whose claim succeeds therefore read the pointer of
//!   its own position; one whose claim fails never dereferences what it read.
//! - Parking is ordered by the ring's lock, which a post already holds: the receiver registers
//!   its waker, then, under the lock, reloads `tail` and its cursor and, if neither moved, sets
//!   its parked flag and the ring's parked count (plain stores: every change of either is made
//!   under the lock). A post stores `tail` and loads the parked count under the lock; evicting
//!   and leaving move the cursor under it too. Whichever of the two takes the lock second sees
//!   the other's stores, so no wake-up is lost, with no fence on the posting side. (An earlier
//!   version used a store-buffer handshake with a `SeqCst` fence on each side; the poster's
//!   fence, a full store-buffer drain on every post, was a third of the post's own samples in
//!   `perf annotate`, while receivers park only when idle.) `tests/loom_ring.rs` checks this,
//!   parking against leaving, and the claim/evict race.
//!
//! # Invariants (under the ring's lock, between posts)
//! - Every member's cursor is at least `tail - capacity`: the slots of its unclaimed positions
//!   have not been overwritten (the slot count is `capacity` rounded up to a power of two).
//! - `min_cursor` is at most every member's cursor (cursors only grow).
//! - Each unclaimed, unskipped position of each member holds exactly one ticket: a strong
//!   count of the position's `Arc`, or, for a moved value, one of the tickets its sharing word
//!   counts (or one of the references of the `Arc` a taker made).
//! - A member whose receiver may be reading a moved value whose value slot a later post
//!   could write is on the watch list with that position.

// The tickets are raw strong counts of `Arc<N>`, and moved values live in `UnsafeCell`s: every
// `unsafe` block below is a ticket operation or a move into or out of a value slot, each with
// its ownership argument.
#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::sync::atomic::AtomicU64 as StdAtomicU64;
use std::sync::{Arc, OnceLock, Weak};
use std::task::Waker;

use crate::ObserverId;
use crate::hub::rcu::backoff;
use crate::hub::stats::BufferStats;
use crate::hub::sync::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Mutex, Ordering, Padded};
use crate::hub::value_ring::ValueRing;

/// A stream's entry in its channel: the ring, and its place in it.
pub(crate) struct RingEntry<N> {
    pub(crate) ring: Arc<Ring<N>>,
    pub(crate) member: Arc<Member<N>>,
}

/// How many times a receiver that has just caught up yields to its executor before it parks.
/// Measured on `benches/dispatch.rs`, `stream/1->1` and `1->4` on a 2-core machine: with 0,
/// runs flip between a mode where receivers park after every post (the executor's thread
/// sleeps, and every post pays a system call to wake it) and a fast one; 1 fixes `1->4`, 3
/// also `1->4`.
const YIELDS: u8 = 3;

/// [`YIELDS`] for the only member of a ring: none, it parks as soon as it has caught up, as a
/// receiver of tokio's broadcast does. A lone receiver that keeps up with its poster catches
/// up after nearly every value, and a yielding one then reads the line the poster writes next
/// after each post, pulling it to its own core, so the two cores trade that line for every
/// value; a parked one lets the poster write a run of values and takes them in one batch
/// when woken. Measured (2026-12-02, one-process harness, `stream/1->1`, medians of 11 runs
/// of 131 072 items, on an Intel host where tokio's broadcast takes 120-134 ns per item
/// quiet): 46-48 ns with 0 yields, 65-71 with 1, 88-92 with 2, 96-99 with 3, 129 with 32;
/// with a third thread spinning on the machine, 63 with 0, 79 with 3 and 408 with 32 (tokio
/// 65-90). An earlier measurement on an AMD host, when a receiver loaded the `tail` to find
/// its next value, had favoured 32 over 3 (75-87 ns against 110-167 with another thread busy,
/// about even quiet); with the stamp read of moved values (module docs, "Memory orderings")
/// it no longer does here. Receivers sharing a ring keep [`YIELDS`]: with 0, `1->4` went from
/// 40 to 42 ns per item and `1->16` from 27.5 to 32.
const YIELDS_ALONE: u8 = 0;

/// Set in a member's cursor once it has left the ring.
const CLOSED: u64 = 1 << 63;

/// A member's `moving` word while its receiver is not moving a value out of the ring.
const NOT_MOVING: u64 = u64::MAX;

/// The most a ring's value slots may take (a value and its stamp, times their count): a ring
/// of larger values, or more of them, shares every post's value instead (module docs, "Moved
/// values"). At this bound a ring of 16 384 values of 8 bytes still moves.
const MAX_MOVED_BYTES: usize = 1 << 20;

/// Set in a value slot's stamp when its value is shared by several tickets, counted in its
/// [`Share`]; clear when one member holds it (the word is then not written, nor read).
/// Positions stay far below it.
const SHARED_STAMP: u64 = 1 << 62;

/// The most members a post moves its value in for. The first taker of a shared moved value
/// counts a reference per other member into its `Arc`, one locked increment each on the
/// receiving side; past this many, the poster's tickets (the same increments, on the posting
/// thread, which has time to spare once the receivers are many) measured faster: one-process
/// harness, `1->64`, 6.8 ns per item with tickets against 10.0 moved (tokio's broadcast 21),
/// while `1->16` was within 10 % either way in the fast mode and much faster moved in the
/// slow one (ARCHITECTURE.md).
const MAX_MOVED_MEMBERS: usize = 16;

/// A value slot's stamp before its first value.
const NO_POSITION: u64 = u64::MAX;

/// One value slot of a ring's moved values: the value, and the position it was moved in for.
/// A position holds a moved value exactly when its value slot is stamped with it; the stamp
/// shares the value's cache line, so a moved post writes one line the receiver reads, as a
/// value ring's post does (a marker in the pointer slot instead made it two, and a poster
/// whose receiver keeps up waits for each such line to come back from the receiver's core).
struct ValueSlot<N> {
    stamp: AtomicU64,
    value: Slot<N>,
    /// Who holds the value now: the tickets still waiting for it, or the `Arc` one of them
    /// made ([`Share`]).
    share: Share<N>,
}

/// A moved value's sharing word (module docs, "Moved values"): `Unmade(k)` while the value is
/// in its slot and `k` members' tickets wait for it, `Making` while one of them moves it out
/// into an `Arc`, then the `Arc`'s pointer, whose strong count holds every ticket that was
/// waiting. A pointer from `Arc::into_raw` is at least 8-aligned (it points past the two
/// counts), so the tags live in the low bits.
struct Share<N>(AtomicPtr<N>);

/// [`Share`]'s tag bits, and their values besides a made `Arc`'s (zero).
const SHARE_TAG: usize = 0b111;
const SHARE_UNMADE: usize = 0b001;
const SHARE_MAKING: usize = 0b010;
/// Where an unmade value's ticket count starts in its word.
const SHARE_COUNT_SHIFT: u32 = 3;

/// What a [`Share`] says.
enum Shared<N> {
    Unmade(usize),
    Making,
    Made(*const N),
}

impl<N> Share<N> {
    /// No tickets: read only once a post has set them ([`set_unmade`](Self::set_unmade)).
    fn new() -> Self {
        Share(AtomicPtr::new(Self::word(0)))
    }

    fn making() -> *mut N {
        std::ptr::without_provenance_mut(SHARE_MAKING)
    }

    fn word(tickets: usize) -> *mut N {
        std::ptr::without_provenance_mut((tickets << SHARE_COUNT_SHIFT) | SHARE_UNMADE)
    }

    /// Sets `tickets` waiting for a value just written (the poster, under the ring's lock,
    /// before the `tail` store that publishes both).
    fn set_unmade(&self, tickets: usize) {
        self.0.store(Self::word(tickets), Ordering::Relaxed);
    }

    fn load(&self) -> (*mut N, Shared<N>) {
        let word = self.0.load(Ordering::Acquire);
        let shared = match word.addr() & SHARE_TAG {
            0 => Shared::Made(word.cast_const()),
            SHARE_UNMADE => Shared::Unmade(word.addr() >> SHARE_COUNT_SHIFT),
            _ => Shared::Making,
        };
        (word, shared)
    }

    fn swap_from(&self, from: *mut N, to: *mut N) -> bool {
        self.0
            .compare_exchange(from, to, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }
}

impl<N> ValueSlot<N> {
    /// Turns one ticket of this slot's moved value into an `Arc`: the value's first taker
    /// moves it out and makes the `Arc` with a reference for every ticket still waiting; the
    /// others take one of those references. `shared`: the stamp's [`SHARED_STAMP`] (else the
    /// ticket is the only one, and the sharing word is not looked at).
    ///
    /// # Safety
    /// The caller holds one of the value's tickets (its claim, or its member's leaving, won
    /// the position), and no post writes the slot before this returns (the receiver's
    /// `moving` announcement, or the ring's lock).
    unsafe fn to_arc(&self, shared: bool) -> Arc<N> {
        let mut spins = 0;
        if shared {
            loop {
                match self.share.load() {
                    // SAFETY: one of the references made for the waiting tickets is ours.
                    (_, Shared::Made(raw)) => return unsafe { Arc::from_raw(raw) },
                    (word, Shared::Unmade(tickets)) if tickets > 1 => {
                        if self.share.swap_from(word, Share::making()) {
                            // SAFETY: the swap made us the value's one taker.
                            let raw = Arc::into_raw(Arc::new(unsafe { self.value.take() }));
                            for _ in 1..tickets {
                                // SAFETY: `raw` is live (our own reference); one per other ticket.
                                unsafe { Arc::increment_strong_count(raw) };
                            }
                            // `Release`: the `Arc` is made before anyone takes a reference of it.
                            self.share.0.store(raw.cast_mut(), Ordering::Release);
                            // SAFETY: our own reference.
                            return unsafe { Arc::from_raw(raw) };
                        }
                    }
                    (_, Shared::Unmade(_)) => break,
                    (_, Shared::Making) => backoff(&mut spins),
                }
            }
        }
        // Ours is the only ticket left (or ever): nobody else reads the word or the value.
        // SAFETY: the value is in the slot (taking it takes a ticket count of its own).
        Arc::new(unsafe { self.value.take() })
    }

    /// Releases `lost` tickets of this slot's moved value without taking it (an eviction).
    /// Returns what the caller must release after the lock: the value, when those were its
    /// last tickets, or the made `Arc`, `lost` of whose references are the caller's.
    ///
    /// # Safety
    /// The caller holds `lost` of the value's tickets (its evictions won the position from
    /// that many members), under the ring's lock.
    unsafe fn release(&self, lost: usize, shared: bool) -> Evicted<N> {
        let mut spins = 0;
        if shared {
            loop {
                match self.share.load() {
                    (_, Shared::Made(raw)) => {
                        return Evicted {
                            lost,
                            tickets: raw,
                            value: None,
                        };
                    }
                    (word, Shared::Unmade(tickets)) if tickets > lost => {
                        if self.share.swap_from(word, Share::word(tickets - lost)) {
                            return Evicted {
                                lost,
                                ..Evicted::default()
                            };
                        }
                    }
                    (_, Shared::Unmade(_)) => break,
                    // A receiver is making the `Arc` (no lock, no user code): wait for it.
                    (_, Shared::Making) => backoff(&mut spins),
                }
            }
        }
        debug_assert!(shared || lost == 1, "one ticket");
        Evicted {
            lost,
            tickets: std::ptr::null(),
            // SAFETY: every ticket left is ours: nobody else reads the value.
            value: Some(unsafe { self.value.take() }),
        }
    }
}

/// A slot that holds a value once written: its ring's claim protocol says who may touch it
/// when. Under loom the cell is loom's, so the models check that protocol too: a write racing
/// a read of the same slot fails the model.
pub(crate) struct Slot<N>(SlotCell<N>);

#[cfg(not(herald_loom))]
type SlotCell<N> = std::cell::UnsafeCell<MaybeUninit<N>>;
#[cfg(herald_loom)]
type SlotCell<N> = loom::cell::UnsafeCell<MaybeUninit<N>>;

impl<N> Slot<N> {
    pub(crate) fn new() -> Self {
        Slot(SlotCell::new(MaybeUninit::uninit()))
    }

    /// Stores `value`, without dropping what the slot held.
    ///
    /// # Safety
    /// Nobody else reads or writes the slot now.
    pub(crate) unsafe fn write(&self, value: N) {
        #[cfg(not(herald_loom))]
        // SAFETY: the caller's: no other access.
        unsafe {
            (*self.0.get()).write(value);
        }
        #[cfg(herald_loom)]
        // SAFETY: as above.
        self.0.with_mut(|p| unsafe {
            (*p).write(value);
        });
    }

    /// Moves the value out: the slot is logically empty after.
    ///
    /// # Safety
    /// The slot holds a value nobody else owns, and nobody writes it now.
    pub(crate) unsafe fn take(&self) -> N {
        #[cfg(not(herald_loom))]
        // SAFETY: the caller's.
        return unsafe { (*self.0.get()).assume_init_read() };
        #[cfg(herald_loom)]
        // SAFETY: as above.
        self.0.with(|p| unsafe { (*p).assume_init_read() })
    }

    /// A clone of the value, which stays in the slot.
    ///
    /// # Safety
    /// The slot holds a value, and nobody writes it now (others may read it: `N: Sync`).
    pub(crate) unsafe fn clone_out(&self) -> N
    where
        N: Clone,
    {
        #[cfg(not(herald_loom))]
        // SAFETY: the caller's.
        return unsafe { (*self.0.get()).assume_init_ref().clone() };
        #[cfg(herald_loom)]
        // SAFETY: as above.
        self.0.with(|p| unsafe { (*p).assume_init_ref().clone() })
    }

    /// Drops the value in place.
    ///
    /// # Safety
    /// The slot holds a value nobody else owns.
    pub(crate) unsafe fn drop_value(&mut self) {
        #[cfg(not(herald_loom))]
        // SAFETY: the caller's.
        unsafe {
            self.0.get_mut().assume_init_drop();
        }
        #[cfg(herald_loom)]
        // SAFETY: as above.
        self.0.with_mut(|p| unsafe { (*p).assume_init_drop() });
    }
}

/// Receivers that may still be reading a slot a later post writes: members a poster evicted,
/// or that left, while their announcement word showed a position (`value_ring.rs`, "The
/// claim"; module docs, "Moved values"). A post that writes a slot first waits for those
/// reading it ([`wait`](Self::wait)). Weak: a member whose stream is gone is reading nothing,
/// and what it holds must not live on here.
pub(crate) struct Watch<M>(Vec<(Weak<M>, u64)>);

impl<M> Default for Watch<M> {
    fn default() -> Self {
        Watch(Vec::new())
    }
}

impl<M> Watch<M> {
    /// How many members it watches (the unit tests').
    #[cfg(all(test, not(herald_loom)))]
    fn len(&self) -> usize {
        self.0.len()
    }

    #[cfg(all(test, not(herald_loom)))]
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Watches `member`, whose word showed `position`.
    pub(crate) fn add(&mut self, member: &Arc<M>, position: u64) {
        self.0.push((Arc::downgrade(member), position));
    }

    /// Waits for every watched receiver whose word (`word`) still shows a position of the
    /// slot `position` is about to write (slot `position & mask`), and stops watching those
    /// done with the position they were watched for. Returns the members it looked at, to
    /// drop once the ring's lock is released: one whose stream went away meanwhile may be
    /// dropped with them, and with it what it had not taken (`N`'s drop, user code).
    #[inline]
    #[must_use]
    pub(crate) fn wait(
        &mut self,
        position: u64,
        mask: u64,
        word: impl Fn(&M) -> &AtomicU64,
    ) -> Vec<Arc<M>> {
        if self.0.is_empty() {
            return Vec::new();
        }
        self.wait_cold(position, mask, word)
    }

    #[cold]
    fn wait_cold(
        &mut self,
        position: u64,
        mask: u64,
        word: impl Fn(&M) -> &AtomicU64,
    ) -> Vec<Arc<M>> {
        let mut looked_at = Vec::new();
        self.0.retain(|(m, at)| {
            let Some(m) = m.upgrade() else {
                return false;
            };
            let mut spins = 0u32;
            let keep = loop {
                if word(&m).load(Ordering::Acquire) != *at {
                    break false;
                }
                if (*at ^ position) & mask != 0 {
                    // Still reading a slot a later post writes.
                    break true;
                }
                backoff(&mut spins);
            };
            looked_at.push(m);
            keep
        });
        looked_at
    }
}

/// The largest capacity served by a shared ring; a larger buffer is private to its stream
/// (its slots would be allocated up front, shared or not).
pub(crate) const MAX_RING_CAPACITY: usize = 1 << 16;

/// At most this many rings per notification type (one per distinct capacity): a post marks the
/// rings it has written in a 64-bit mask.
const MAX_RINGS: u32 = 64;

/// What one post did to one ring.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Posted {
    /// Members that were handed the value.
    pub(crate) received: usize,
    /// Members that lost their oldest value to make room.
    pub(crate) dropped: usize,
}

/// What a post evicted, to release once the ring's lock is dropped: the last release of a
/// value runs `N`'s drop, user code.
struct Evicted<N> {
    /// Members that lost the evicted position.
    lost: usize,
    /// The position's `Arc` pointer, whose `lost` tickets are ours (null for none).
    tickets: *const N,
    /// Or its moved value.
    value: Option<N>,
}

impl<N> Default for Evicted<N> {
    fn default() -> Self {
        Evicted {
            lost: 0,
            tickets: std::ptr::null(),
            value: None,
        }
    }
}

impl<N> Evicted<N> {
    /// Releases what was evicted; returns how many members lost it.
    fn release(self) -> usize {
        if !self.tickets.is_null() {
            for _ in 0..self.lost {
                // SAFETY: the eviction compare-and-swaps won `lost` tickets of the value at the
                // evicted position, read from its slot under the lock (`Ring::evict`).
                // Releasing them last, outside the lock, keeps the pointer valid until the
                // final decrement.
                unsafe { Arc::decrement_strong_count(self.tickets) };
            }
        }
        drop(self.value);
        self.lost
    }
}

/// What a won claim holds: the member's ticket (the position's `Arc` pointer), or the value
/// moved in for it.
enum Claimed<N> {
    Ticket(*const N),
    /// A moved value of this member alone, to wrap after the claim.
    Moved(N),
    /// A reference of the `Arc` made for a moved value several members share.
    Shared(Arc<N>),
}

impl<N> Claimed<N> {
    /// The received `Arc`.
    ///
    /// # Safety
    /// The claimed position is one of the member's own (not a skip): a ticket is then its own.
    unsafe fn into_arc(self) -> Arc<N> {
        match self {
            // SAFETY: the caller's; the claim won the member's ticket for its position.
            Claimed::Ticket(ptr) => unsafe { Arc::from_raw(ptr) },
            Claimed::Moved(value) => Arc::new(value),
            Claimed::Shared(arc) => arc,
        }
    }
}

/// What a receive found.
pub(crate) enum Took<T> {
    Value(T),
    Lagged(u64),
    Closed,
    Empty,
}

/// Wakers taken under the ring's lock, woken after it (a small batch, no allocation).
#[derive(Default)]
struct Wakers {
    batch: [Option<Waker>; 8],
    len: usize,
}

impl Wakers {
    /// Adds a waker; false once the batch is full (the waker is kept).
    fn push(&mut self, waker: Waker) -> bool {
        self.batch[self.len] = Some(waker);
        self.len += 1;
        self.len < self.batch.len()
    }

    fn wake(&mut self) {
        for w in self.batch[..self.len].iter_mut() {
            if let Some(w) = w.take() {
                w.wake();
            }
        }
        self.len = 0;
    }
}

/// The ring of one notification type and capacity.
///
/// Laid out so that what every receive reads (the fields without padding, fixed at
/// construction) shares no cache line with what posts write (`tail`, the lock) or what parking
/// writes (`parked`).
pub(crate) struct Ring<N> {
    /// The next position to write. Written under `state`, read by receivers.
    tail: Padded<AtomicU64>,
    /// Members whose parked flag is set.
    parked: Padded<AtomicUsize>,
    state: Padded<Mutex<State<N>>>,
    /// Slot `p & mask` holds the `Arc<N>` pointer posted at position `p` (no reference of its
    /// own: the members' tickets keep it alive), unless `p` holds a moved value.
    slots: Box<[AtomicPtr<N>]>,
    mask: u64,
    capacity: u64,
    /// Values moved in (`post_owned`): position `p`'s in `values[p & value_mask]`, stamped
    /// `p`. Allocated by the first such post (module docs, "Moved values").
    values: OnceLock<Box<[ValueSlot<N>]>>,
    value_mask: u64,
    /// Whether posts may move values in: the values of a full ring fit [`MAX_MOVED_BYTES`].
    movable: bool,
    /// This ring's bit in a post's mask of written rings.
    id: u32,
    /// How many members it has (written under `state`; read by receivers to choose how often
    /// to yield before parking).
    members: AtomicUsize,
    ids: Arc<StdAtomicU64>,
    /// The slots stand for `Arc<N>`s: the ring is `Send`/`Sync` only when they are.
    _values: PhantomData<Arc<N>>,
}

// SAFETY: the ring holds `Arc<N>` tickets and moved `N`s, both handed from posting threads
// to receiving ones: it may be sent and shared as an `Arc<N>` may (`N: Send + Sync`). The
// claim protocol keeps a moved value's slot from being written while it is read.
unsafe impl<N: Send + Sync> Send for Ring<N> {}
// SAFETY: as for `Send`.
unsafe impl<N: Send + Sync> Sync for Ring<N> {}

struct State<N> {
    members: Vec<Joined<N>>,
    /// At most every member's cursor: posts evict nobody while it is above the evicted position.
    min_cursor: u64,
    /// The newest snapshot generation any member joined with: a post made with an older
    /// snapshot must skip the members that joined after it.
    max_join_gen: u64,
    /// Members evicted or left while their receiver was moving a value out.
    watch: Watch<Member<N>>,
}

struct Joined<N> {
    member: Arc<Member<N>>,
    join_gen: u64,
}

impl<N> Joiner for Joined<N> {
    fn parking(&self) -> &Parking {
        &self.member.parking
    }
    fn skips(&self) -> &Skips {
        &self.member.skips
    }
    fn join_gen(&self) -> u64 {
        self.join_gen
    }
}

impl<N> Roster for State<N> {
    type Member = Joined<N>;
    fn members(&self) -> &[Joined<N>] {
        &self.members
    }
}

/// One stream's place in a ring.
pub(crate) struct Member<N> {
    /// The first position neither received nor lost, and the moved value its receiver is
    /// taking out: both written by the receiver, on a line of their own.
    cursor: Padded<Cursor>,
    parking: Parking,
    /// Values lost to eviction (written by posters under the ring's lock).
    dropped: AtomicU64,
    /// The position it joined at.
    start: AtomicU64,
    skips: Skips,
    /// The values it had not yet taken when it left the ring.
    front: Mutex<Front<N>>,
}

/// A member's cursor and its `moving` word.
struct Cursor {
    /// The first position neither received nor lost; `CLOSED` is set once it left the ring.
    at: AtomicU64,
    /// The position whose moved value the receiver is reading ([`NOT_MOVING`] when none):
    /// stored before the claim and cleared after the read (module docs, "Moved values").
    moving: AtomicU64,
}

struct Front<N> {
    queue: VecDeque<Arc<N>>,
    /// Values received from `queue`.
    delivered: u64,
    /// Values received from the ring, fixed when it left the ring.
    ring_delivered: Option<u64>,
    /// Once the subscriber left its channel: where its receives are counted.
    sink: Option<Arc<StdAtomicU64>>,
}

impl<N> Member<N> {
    pub(crate) fn new() -> Self {
        Member {
            cursor: Padded(Cursor {
                at: AtomicU64::new(0),
                moving: AtomicU64::new(NOT_MOVING),
            }),
            parking: Parking::default(),
            dropped: AtomicU64::new(0),
            start: AtomicU64::new(0),
            skips: Skips::default(),
            front: Mutex::new(Front {
                queue: VecDeque::new(),
                delivered: 0,
                ring_delivered: None,
                sink: None,
            }),
        }
    }

    /// Counts what this subscriber received into `sink` from now on (it left its channel).
    pub(crate) fn retire(&self, sink: &Arc<StdAtomicU64>) {
        let mut front = self.front.lock();
        if front.sink.is_none() {
            let before = front.ring_delivered.unwrap_or(0) + front.delivered;
            sink.fetch_add(before, std::sync::atomic::Ordering::Relaxed);
            front.sink = Some(sink.clone());
        }
    }
}

/// Positions inside a member's range written by posts made before it subscribed (ascending):
/// the member skips them (module docs, "Membership"). Written by posters under the ring's lock.
#[derive(Default)]
pub(crate) struct Skips {
    list: Mutex<Vec<u64>>,
    any: AtomicBool,
}

impl Skips {
    /// Records `position` (posts record in ascending order).
    pub(crate) fn push(&self, position: u64) {
        self.list.lock().push(position);
        self.any.store(true, Ordering::Release);
    }

    /// Skipped positions in `from..to`.
    pub(crate) fn count_in(&self, from: u64, to: u64) -> u64 {
        if !self.any.load(Ordering::Acquire) {
            return 0;
        }
        self.list
            .lock()
            .iter()
            .filter(|&&s| s >= from && s < to)
            .count() as u64
    }

    pub(crate) fn contains(&self, position: u64) -> bool {
        self.any.load(Ordering::Acquire) && self.list.lock().contains(&position)
    }
}

/// A reader's private copy of its member's [`Skips`] at or after its next position.
#[derive(Default)]
pub(crate) struct SkipCursor {
    pending: VecDeque<u64>,
    copied: usize,
}

impl SkipCursor {
    /// Whether no skip is pending (the reader's fast path needs none).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Copies the skips recorded since the last copy, those at or after `next`. Inlined: a
    /// receiver calls it whenever it refreshes, usually to find that no skip was ever recorded.
    #[inline]
    pub(crate) fn refresh(&mut self, skips: &Skips, next: u64) {
        if skips.any.load(Ordering::Acquire) {
            self.copy(skips, next);
        }
    }

    #[cold]
    fn copy(&mut self, skips: &Skips, next: u64) {
        let list = skips.list.lock();
        for &s in &list[self.copied..] {
            if s >= next {
                self.pending.push_back(s);
            }
        }
        self.copied = list.len();
    }

    /// Whether `position` is a skip (consumes it, and every pending skip before it).
    pub(crate) fn take_at(&mut self, position: u64) -> bool {
        while let Some(&s) = self.pending.front() {
            if s > position {
                return false;
            }
            self.pending.pop_front();
            if s == position {
                return true;
            }
        }
        false
    }

    /// Consumes the pending skips below `to`; returns how many of them are at or after `from`.
    pub(crate) fn take_below(&mut self, from: u64, to: u64) -> u64 {
        let mut skipped = 0;
        while let Some(&s) = self.pending.front() {
            if s >= to {
                break;
            }
            if s >= from {
                skipped += 1;
            }
            self.pending.pop_front();
        }
        skipped
    }
}

/// A receiver's parking state: its flag and waker. Every change of the flag is made under
/// its ring's lock, together with the ring's parked count (module docs, "Memory orderings").
#[derive(Default)]
pub(crate) struct Parking {
    parked: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Parking {
    /// Keeps `waker` for a later wake (outside the ring's lock: cloning or dropping a waker
    /// is executor code).
    pub(crate) fn register(&self, waker: &Waker) {
        let mut slot = self.waker.lock();
        match &*slot {
            Some(old) if old.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }

    /// Sets the parked flag and counts it in `ring_parked`. Under the ring's lock.
    pub(crate) fn park(&self, ring_parked: &AtomicUsize) {
        if !self.parked.load(Ordering::Relaxed) {
            self.parked.store(true, Ordering::Relaxed);
            ring_parked.store(ring_parked.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        }
    }

    /// If the receiver is parked, unparks it and returns its waker (to wake once no lock is
    /// held: a waker is executor code). Under the ring's lock, which orders every change of
    /// the parked flags and count: plain loads and stores, no read-modify-write.
    pub(crate) fn unpark(&self, ring_parked: &AtomicUsize) -> Option<Waker> {
        if self.parked.load(Ordering::Relaxed) {
            self.parked.store(false, Ordering::Relaxed);
            ring_parked.store(ring_parked.load(Ordering::Relaxed) - 1, Ordering::Relaxed);
            return self.waker.lock().take();
        }
        None
    }
}

/// How many times a receiver of a ring with `members` members that has just caught up yields
/// before it parks ([`YIELDS_ALONE`] alone, else [`YIELDS`]).
pub(crate) fn yields(members: usize) -> u8 {
    if members <= 1 { YIELDS_ALONE } else { YIELDS }
}

/// A member's entry in its ring's state, as both kinds of ring keep one.
pub(crate) trait Joiner {
    fn parking(&self) -> &Parking;
    fn skips(&self) -> &Skips;
    /// The snapshot generation it joined with.
    fn join_gen(&self) -> u64;
    /// Whether posts still reach it (a value ring keeps members that left until they drain).
    fn receives(&self) -> bool {
        true
    }
}

/// A ring's state under its lock: its members.
pub(crate) trait Roster {
    type Member: Joiner;
    fn members(&self) -> &[Self::Member];
}

/// Records `position` as a skip for the receiving members newer than `generation` (of
/// `receiving` in all); returns how many. Nothing is recorded when all of them are newer:
/// then nothing is written.
#[cold]
pub(crate) fn skip_newer<J: Joiner>(
    members: &[J],
    receiving: usize,
    position: u64,
    generation: u64,
) -> usize {
    let newer = || {
        members
            .iter()
            .filter(|j| j.join_gen() > generation && j.receives())
    };
    let count = newer().count();
    if count != receiving {
        for j in newer() {
            j.skips().push(position);
        }
    }
    count
}

/// Wakes every parked member of a ring whose state `st` is (its lock `lock`, its parked count
/// `ring_parked`): a batch at a time, each woken outside the lock, which it releases (a waker
/// is executor code).
#[cold]
#[inline(never)]
pub(crate) fn wake_parked<S: Roster>(
    lock: &Mutex<S>,
    st: crate::hub::sync::MutexGuard<'_, S>,
    ring_parked: &AtomicUsize,
) {
    let mut held = Some(st);
    loop {
        let mut wakers = Wakers::default();
        let st = held.take().unwrap_or_else(|| lock.lock());
        let more = st
            .members()
            .iter()
            .filter_map(|j| j.parking().unpark(ring_parked))
            .any(|w| !wakers.push(w));
        drop(st);
        wakers.wake();
        if !more {
            return;
        }
    }
}

/// The rings of one notification type, by capacity.
pub(crate) struct Rings<N> {
    list: Mutex<Vec<Weak<Ring<N>>>>,
    /// The value rings of cloned streams (`value_ring.rs`), by capacity.
    values: Mutex<Vec<Weak<ValueRing<N>>>>,
    /// Ids of the rings alive, of both kinds (one bit each).
    ids: Arc<StdAtomicU64>,
}

impl<N> Default for Rings<N> {
    fn default() -> Self {
        Rings {
            list: Mutex::new(Vec::new()),
            values: Mutex::new(Vec::new()),
            ids: Arc::new(StdAtomicU64::new(0)),
        }
    }
}

/// The ring of `capacity` in `list`, or a new one made by `make` with a free id. `None` when
/// [`MAX_RINGS`] rings are alive. Ids are taken under a list's lock and released by a ring's
/// drop; the lists of both kinds share them through `ids`, whose bits are set and cleared
/// atomically, so a bit is never held twice.
fn ring_of<R>(
    list: &Mutex<Vec<Weak<R>>>,
    ids: &Arc<StdAtomicU64>,
    capacity: usize,
    capacity_of: impl Fn(&R) -> usize,
    make: impl FnOnce(usize, u32, Arc<StdAtomicU64>) -> R,
) -> Option<Arc<R>> {
    let mut list = list.lock();
    list.retain(|w| w.strong_count() > 0);
    if let Some(ring) = list
        .iter()
        .filter_map(Weak::upgrade)
        .find(|r| capacity_of(r) == capacity)
    {
        return Some(ring);
    }
    let relaxed = std::sync::atomic::Ordering::Relaxed;
    let mut used = ids.load(relaxed);
    loop {
        let id = (!used).trailing_zeros();
        if id >= MAX_RINGS {
            return None;
        }
        match ids.compare_exchange(used, used | 1 << id, relaxed, relaxed) {
            Ok(_) => {
                let ring = Arc::new(make(capacity, id, ids.clone()));
                list.push(Arc::downgrade(&ring));
                return Some(ring);
            }
            Err(now) => used = now,
        }
    }
}

impl<N> Rings<N> {
    /// The ring of this capacity, made if needed. `None` when the type already has
    /// [`MAX_RINGS`] rings alive.
    pub(crate) fn get(&self, capacity: usize) -> Option<Arc<Ring<N>>> {
        ring_of(&self.list, &self.ids, capacity, Ring::capacity, Ring::new)
    }

    /// The value ring of this capacity, made if needed (`None` as for [`get`](Self::get)).
    pub(crate) fn values(&self, capacity: usize) -> Option<Arc<ValueRing<N>>> {
        ring_of(
            &self.values,
            &self.ids,
            capacity,
            ValueRing::capacity,
            ValueRing::new,
        )
    }
}

impl<N> Ring<N> {
    fn new(capacity: usize, id: u32, ids: Arc<StdAtomicU64>) -> Self {
        let capacity = capacity.clamp(1, MAX_RING_CAPACITY);
        let len = capacity.next_power_of_two();
        // One more than the capacity (module docs, "Moved values").
        let value_len = (capacity + 1).next_power_of_two();
        let ring = Ring {
            tail: Padded(AtomicU64::new(0)),
            parked: Padded(AtomicUsize::new(0)),
            slots: (0..len)
                .map(|_| AtomicPtr::new(std::ptr::null_mut()))
                .collect(),
            mask: len as u64 - 1,
            capacity: capacity as u64,
            values: OnceLock::new(),
            value_mask: value_len as u64 - 1,
            movable: std::mem::size_of::<ValueSlot<N>>().saturating_mul(value_len)
                <= MAX_MOVED_BYTES,
            id,
            members: AtomicUsize::new(0),
            ids,
            state: Padded(Mutex::new(State {
                members: Vec::new(),
                min_cursor: u64::MAX,
                max_join_gen: 0,
                watch: Watch::default(),
            })),
            _values: PhantomData,
        };
        // Loom does not see the ordering that std's `OnceLock` gives a reader of the value
        // slots' atomics (a receiver probing a stamp may run before any `tail` store): under
        // loom the slots are made with the ring, before any other thread can reach them.
        #[cfg(herald_loom)]
        if ring.movable {
            ring.value_slots();
        }
        ring
    }

    /// The value slots, made by the first call (a ring's first moved post).
    fn value_slots(&self) -> &[ValueSlot<N>] {
        self.values.get_or_init(|| {
            (0..=self.value_mask)
                .map(|_| ValueSlot {
                    stamp: AtomicU64::new(NO_POSITION),
                    value: Slot::new(),
                    share: Share::new(),
                })
                .collect()
        })
    }

    /// This ring's bit in a post's mask of rings written.
    #[inline]
    pub(crate) fn bit(&self) -> u64 {
        1 << self.id
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// How many times a receiver that has just caught up yields before it parks.
    fn yields(&self) -> u8 {
        yields(self.members.load(Ordering::Relaxed))
    }

    #[inline]
    fn slot(&self, position: u64) -> &AtomicPtr<N> {
        &self.slots[(position & self.mask) as usize]
    }

    /// The value slot of `position` (below the `tail`) if it holds a moved value: stamped
    /// with it. Exact under the lock. A receiver that loaded the `tail` with acquire reads its
    /// position's stamp, or a later one: the position was then evicted, and its claim fails.
    /// Also whether its value is shared ([`SHARED_STAMP`]). Each holder of a ticket for it
    /// (who claimed, evicted or detached it) takes the value or a reference with
    /// [`ValueSlot::to_arc`] or [`ValueSlot::release`]; the claim protocol keeps any post from
    /// writing the slot until then (module docs, "Moved values").
    #[inline]
    fn moved_slot(&self, position: u64) -> Option<(&ValueSlot<N>, bool)> {
        let slot = self.value_slot(position)?;
        let stamp = slot.stamp.load(Ordering::Relaxed);
        (stamp & !SHARED_STAMP == position).then_some((slot, stamp & SHARED_STAMP != 0))
    }

    /// Whether `position`, not known to be below the `tail`, holds a value moved to one member
    /// (not shared): its stamp, loaded with acquire, publishes the value as the `tail` would.
    #[inline]
    fn published_lone(&self, position: u64) -> bool {
        self.value_slot(position)
            .is_some_and(|slot| slot.stamp.load(Ordering::Acquire) == position)
    }

    /// `position`'s value slot, once the ring has them.
    #[inline]
    fn value_slot(&self, position: u64) -> Option<&ValueSlot<N>> {
        Some(&self.values.get()?[(position & self.value_mask) as usize])
    }

    /// Adds `member` from the next post on; posts made with snapshots older than `generation` skip it.
    pub(crate) fn join(&self, member: &Arc<Member<N>>, generation: u64) {
        let mut st = self.state.lock();
        let tail = self.tail.load(Ordering::Relaxed);
        member.start.store(tail, Ordering::Relaxed);
        member.cursor.at.store(tail, Ordering::Release);
        st.min_cursor = st.min_cursor.min(tail);
        st.max_join_gen = st.max_join_gen.max(generation);
        st.members.push(Joined {
            member: member.clone(),
            join_gen: generation,
        });
        self.members.store(st.members.len(), Ordering::Relaxed);
    }

    /// Removes `member`: no post reaches it any more, and the values it had not taken move to
    /// its private queue (received after everything else). Wakes it if it is parked.
    pub(crate) fn leave(&self, member: &Member<N>) {
        let mut st = self.state.lock();
        let Some(i) = st
            .members
            .iter()
            .position(|j| std::ptr::eq(Arc::as_ptr(&j.member), member))
        else {
            return;
        };
        let joined = st.members.swap_remove(i);
        self.members.store(st.members.len(), Ordering::Relaxed);
        if let Some(at) = self.detach(&joined.member) {
            // Out of the roster, it is evicted no more: watched from here.
            st.watch.add(&joined.member, at);
        }
        // Under the lock, like parking: a receiver parked before sees its waker taken here,
        // one parking after sees its cursor closed.
        let waker = member.parking.unpark(&self.parked);
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Closes a member's cursor and moves what it had not taken to its private queue. Under
    /// the lock. Returns the position whose moved value its receiver may still be reading.
    fn detach(&self, member: &Member<N>) -> Option<u64> {
        let tail = self.tail.load(Ordering::Relaxed);
        // The private queue first: a receiver whose claim fails on the closed cursor below
        // goes to that queue next, and must find it filled. (Closing the cursor first let it
        // see the queue empty in between and report `Closed` before its last values.)
        let mut front = member.front.lock();
        // From here on its claims fail: every position below `tail` it has not claimed is ours.
        let cursor = member.cursor.at.fetch_or(CLOSED, Ordering::AcqRel) & !CLOSED;
        for position in cursor..tail {
            if member.skips.contains(position) {
                continue;
            }
            // `position` is a member position this member had not claimed (its cursor was
            // below it when we closed the cursor, so no claim can succeed any more), and no
            // poster evicted it (evictions move the cursor). So what it holds for this member
            // is ours. The slot still holds that position's pointer: `cursor >= tail -
            // capacity` (no member lags past the capacity, invariant) and the ring has at
            // least `capacity` slots, and no post runs while we hold the lock.
            let value = if let Some((slot, shared)) = self.moved_slot(position) {
                // SAFETY: as above: the member's ticket for `position`; we hold the lock.
                unsafe { slot.to_arc(shared) }
            } else {
                let ptr = self.slot(position).load(Ordering::Relaxed);
                // SAFETY: as above; the member's ticket for `position`.
                unsafe { Arc::from_raw(ptr) }
            };
            front.queue.push_back(value);
        }
        let start = member.start.load(Ordering::Relaxed);
        let dropped = member.dropped.load(Ordering::Relaxed);
        let skipped = member.skips.count_in(start, cursor);
        front.ring_delivered = Some((cursor - start).saturating_sub(dropped + skipped));
        // The closing above read the cursor of its receiver's last claim (acquire): this load
        // sees that claim's announcement or a later store (module docs, "Moved values").
        let moving = member.cursor.moving.load(Ordering::Acquire);
        (moving != NOT_MOVING).then_some(moving)
    }

    /// Writes `value` for every member of snapshot generation `generation`, evicting the oldest value
    /// of members that are full, and wakes parked members.
    pub(crate) fn post(&self, value: &Arc<N>, generation: u64) -> Posted {
        let st = self.state.lock();
        self.post_tickets(st, Arc::as_ptr(value), generation, false)
            .0
    }

    /// Writes the `Arc` pointer `raw` as a ticket for every member of snapshot generation
    /// `generation` (under the lock `st`, which it releases). `given`: one reference of `raw`
    /// is the caller's, given to the ring: it is one of the tickets, or handed back when the
    /// post reaches nobody. Otherwise the caller keeps its own reference alive for the call.
    fn post_tickets(
        &self,
        mut st: crate::hub::sync::MutexGuard<'_, State<N>>,
        raw: *const N,
        generation: u64,
        given: bool,
    ) -> (Posted, Option<Arc<N>>) {
        let position = self.tail.load(Ordering::Relaxed);
        let mut received = st.members.len();
        if generation < st.max_join_gen {
            received -= skip_newer(&st.members, received, position, generation);
        }
        if received == 0 {
            drop(st);
            // SAFETY: the caller's reference, given to us, and handed back as it was.
            let back = given.then(|| unsafe { Arc::from_raw(raw) });
            return (Posted::default(), back);
        }
        let evicted = self.evict_oldest(&mut st, position);
        for _ in usize::from(given)..received {
            // SAFETY: `raw` comes from a live `Arc` (the caller's, or the one given to us);
            // each increment is one ticket, released exactly once (claimed, evicted, or moved
            // out when leaving), as is the given reference, which is one of them.
            unsafe { Arc::increment_strong_count(raw) };
        }
        self.slot(position).store(raw.cast_mut(), Ordering::Relaxed);
        self.publish(st, position);
        let posted = Posted {
            received,
            dropped: evicted.release(),
        };
        (posted, None)
    }

    /// Writes `value` as [`post`](Self::post) does, moving it into the ring when the post
    /// reaches every member: no `Arc` is made here, the first receiver to take it makes the
    /// one they share (module docs, "Moved values"). Otherwise it makes the `Arc` and shares
    /// it as `post` does, its own reference being one of the tickets (no reference is dropped
    /// after). A value that reaches nobody comes back in an `Arc`, for the caller to drop where it
    /// chooses (`N`'s drop is user code).
    pub(crate) fn post_owned(&self, value: N, generation: u64) -> (Posted, Option<Arc<N>>) {
        let mut st = self.state.lock();
        let received = st.members.len();
        if !self.movable
            || received == 0
            || received > MAX_MOVED_MEMBERS
            || generation < st.max_join_gen
        {
            // Made under the lock (one allocation, no user code), so the post takes it once.
            // (Made before the lock, after a look at the member count, the post took longer at
            // 16 streams in a one-process harness: 29.2 ns per item against 26.7.)
            let raw = Arc::into_raw(Arc::new(value));
            return self.post_tickets(st, raw, generation, true);
        }
        let position = self.tail.load(Ordering::Relaxed);
        let evicted = self.evict_oldest(&mut st, position);
        let values = self.value_slots();
        let looked_at = st
            .watch
            .wait(position, self.value_mask, |m| &m.cursor.moving);
        let slot = &values[(position & self.value_mask) as usize];
        // SAFETY: nobody else reads or writes this value slot now. Its earlier value (if any)
        // was taken: every member's cursor is past its position (`evict_oldest` made sure, or
        // the cached minimum says so, and the value slots number more than `capacity`), so
        // each of its tickets was claimed, evicted or detached, and turned into a reference or
        // released, the value moved out by the first (or the last, when none was turned); a
        // receiver still reading the slot was evicted or detached while announcing it, and is
        // watched, and the watch waited for it. Posters write under the lock we hold. The old
        // value is never dropped here: whoever took it owns it. Every member gets a ticket:
        // the post's snapshot is not older than any join, so none is skipped.
        unsafe { slot.value.write(value) };
        let stamp = if received == 1 {
            position
        } else {
            slot.share.set_unmade(received);
            position | SHARED_STAMP
        };
        // `Release`: a receiver that finds its next position stamped here (acquire) reads the
        // value and its sharing word without loading the `tail` ([`Reader::take`]).
        slot.stamp.store(stamp, Ordering::Release);
        self.publish(st, position);
        drop(looked_at);
        let posted = Posted {
            received,
            dropped: evicted.release(),
        };
        (posted, None)
    }

    /// Stores the `tail` past `position`, releasing the ring's lock, and wakes the parked
    /// members.
    #[inline]
    fn publish(&self, st: crate::hub::sync::MutexGuard<'_, State<N>>, position: u64) {
        self.tail.store(position + 1, Ordering::Release);
        // Receivers park under the lock we hold (see the module docs): the count is exact.
        if self.parked.load(Ordering::Relaxed) == 0 {
            drop(st);
        } else {
            wake_parked(&self.state, st, &self.parked);
        }
    }

    /// Evicts the position a post at `position` pushes out, from the members still at it.
    #[inline]
    fn evict_oldest(&self, st: &mut State<N>, position: u64) -> Evicted<N> {
        match position.checked_sub(self.capacity) {
            Some(oldest) if st.min_cursor <= oldest => self.evict(st, oldest),
            _ => Evicted::default(),
        }
    }

    /// Moves every member still at `oldest` past it, watching those whose receiver is moving a
    /// value out. Returns what they lost there, which the caller now owns.
    #[cold]
    fn evict(&self, st: &mut State<N>, oldest: u64) -> Evicted<N> {
        let mut lost = 0;
        let mut min = u64::MAX;
        for j in &st.members {
            let m = &j.member;
            let mut cursor = m.cursor.at.load(Ordering::Acquire);
            // Members in the list are open, and every earlier post moved them to at least
            // `oldest` (invariant): only a member still exactly at `oldest` lags.
            debug_assert!(
                cursor & CLOSED == 0 && cursor >= oldest,
                "{cursor} < {oldest}"
            );
            while cursor <= oldest {
                match m.cursor.at.compare_exchange(
                    cursor,
                    oldest + 1,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        if !m.skips.contains(oldest) {
                            m.dropped.fetch_add(1, Ordering::Release);
                            lost += 1;
                        }
                        // Its receiver may be reading the moved value it claimed last (or
                        // announcing a claim that now fails): keep an eye on it. The compare-
                        // and-swap read its last claim's cursor (acquire), so this load sees
                        // that claim's announcement or a later store.
                        let moving = m.cursor.moving.load(Ordering::Acquire);
                        if moving != NOT_MOVING {
                            st.watch.add(m, moving);
                        }
                        cursor = oldest + 1;
                    }
                    Err(now) => cursor = now,
                }
            }
            min = min.min(cursor);
        }
        st.min_cursor = min;
        if lost == 0 {
            return Evicted::default();
        }
        if let Some((slot, shared)) = self.moved_slot(oldest) {
            // SAFETY: the evictions won `oldest` from `lost` members, whose tickets are ours,
            // and its value slot is written again only `value_mask + 1 > capacity` positions
            // later, after this eviction; we hold the lock.
            return unsafe { slot.release(lost, shared) };
        }
        // The slot is not yet overwritten: `oldest` is `capacity` positions old and the ring
        // has at least `capacity` slots.
        Evicted {
            lost,
            tickets: self.slot(oldest).load(Ordering::Relaxed),
            value: None,
        }
    }

    /// Values waiting for `member`, and its counters.
    pub(crate) fn stats(&self, member: &Member<N>, observer: ObserverId) -> BufferStats {
        let front = member.front.lock();
        let dropped = member.dropped.load(Ordering::Acquire);
        let (depth, delivered) = match front.ring_delivered {
            Some(d) => (0, d),
            None => {
                let cursor = member.cursor.at.load(Ordering::Acquire) & !CLOSED;
                let tail = self.tail.load(Ordering::Acquire).max(cursor);
                let start = member.start.load(Ordering::Relaxed);
                let depth = (tail - cursor).saturating_sub(member.skips.count_in(cursor, tail));
                let delivered = (cursor.saturating_sub(start))
                    .saturating_sub(dropped + member.skips.count_in(start, cursor));
                (depth as usize, delivered)
            }
        };
        BufferStats {
            observer,
            depth: depth + front.queue.len(),
            capacity: self.capacity as usize,
            delivered: delivered + front.delivered,
            dropped,
        }
    }
}

impl<N> Drop for Ring<N> {
    fn drop(&mut self) {
        // Streams normally leave before their ring goes; close any that did not, so their
        // tickets move to their private queues and are freed with them.
        let members = std::mem::take(&mut self.state.lock().members);
        for j in &members {
            // Nothing can post any more: what a receiver may still be reading is safe.
            let _ = self.detach(&j.member);
        }
        self.ids
            .fetch_and(!(1 << self.id), std::sync::atomic::Ordering::Relaxed);
    }
}

/// The receiving side of one member: the stream's private view of its cursor.
pub(crate) struct Reader<N> {
    ring: Arc<Ring<N>>,
    member: Arc<Member<N>>,
    /// The next position to claim (equal to the member's cursor unless a poster moved it).
    next: u64,
    /// Positions below this are published.
    avail: u64,
    /// Skipped positions at or after `next` (a local copy of the member's list).
    skips: SkipCursor,
    /// Left the ring: only the private queue remains.
    closed: bool,
    /// Report evictions as `Lagged(n)` (drop-oldest) or silently (latest-only).
    report_lag: bool,
    /// Times it yielded since it last received something (`u8::MAX` when it never received, so
    /// an idle stream parks at once; see `take_slow`).
    yielded: u8,
}

impl<N> Reader<N> {
    /// The reader of a member that has joined `ring`.
    pub(crate) fn new(ring: Arc<Ring<N>>, member: Arc<Member<N>>, report_lag: bool) -> Self {
        let next = member.cursor.at.load(Ordering::Acquire) & !CLOSED;
        Reader {
            ring,
            member,
            next,
            avail: next,
            skips: SkipCursor::default(),
            closed: false,
            report_lag,
            yielded: u8::MAX,
        }
    }

    pub(crate) fn ring(&self) -> &Arc<Ring<N>> {
        &self.ring
    }

    pub(crate) fn member(&self) -> &Arc<Member<N>> {
        &self.member
    }

    /// Takes the next value; when there is none and `waker` is given, parks with it.
    #[inline]
    pub(crate) fn take(&mut self, waker: Option<&Waker>) -> Took<Arc<N>> {
        // The common case: a published position, nothing else to look at.
        if !self.closed && (self.next < self.avail || self.refresh()) && self.skips.is_empty() {
            let position = self.next;
            if let Ok(claimed) = self.claim(position) {
                self.next = position + 1;
                // SAFETY: `position` is a member position: every skip below `avail` was
                // copied into `skips` when `avail` was loaded (a poster records a skip before
                // its `tail` store, or its stamp's), and none is pending.
                return Took::Value(unsafe { claimed.into_arc() });
            }
        }
        self.take_slow(waker)
    }

    /// Everything else: the private queue, refreshing the tail, skips, lags, closing, parking.
    #[inline(never)]
    fn take_slow(&mut self, waker: Option<&Waker>) -> Took<Arc<N>> {
        loop {
            if self.closed {
                return match self.take_front() {
                    Some(v) => Took::Value(v),
                    None => Took::Closed,
                };
            }
            if self.next >= self.avail && !self.refresh() {
                // Nothing published: maybe closed, else park (or report empty).
                let now = self.member.cursor.at.load(Ordering::Acquire);
                if now != self.next {
                    if let Some(t) = self.moved(self.next, now) {
                        return t;
                    }
                    continue;
                }
                match waker {
                    Some(w) if self.yielded < self.ring.yields() => {
                        // Caught up after receiving: yield to the executor (`yields()` times)
                        // before parking. A poster in the middle of a burst has usually posted
                        // again by then, so the executor's thread does not fall asleep after
                        // every post.
                        self.yielded += 1;
                        w.wake_by_ref();
                        return Took::Empty;
                    }
                    Some(w) if self.park(w) => continue,
                    _ => return Took::Empty,
                }
            }
            let position = self.next;
            match self.claim(position) {
                Ok(claimed) => {
                    self.next = position + 1;
                    if self.skips.take_at(position) {
                        // Not the member's: no ticket of its own, and never a moved value
                        // (moved only when the post reaches every member).
                        debug_assert!(matches!(claimed, Claimed::Ticket(_)));
                        continue;
                    }
                    // SAFETY: a member position (not a skip).
                    return Took::Value(unsafe { claimed.into_arc() });
                }
                Err(now) => {
                    if let Some(t) = self.moved(position, now) {
                        return t;
                    }
                }
            }
        }
    }

    /// Claims `position` (below the `tail` we loaded): what the member holds there, or the
    /// cursor a poster moved first (evictions, leaving).
    ///
    /// What we read of the position before the claim (its value slot's stamp, its slot's
    /// pointer) is that position's when the claim succeeds: both were written before the
    /// `tail` store we loaded with acquire, and neither is written again before our read, since
    /// a poster does so only after seeing our cursor past `position` (which our claim, released
    /// after the reads, is the first to do) or after evicting us (then the claim fails).
    #[inline]
    fn claim(&self, position: u64) -> Result<Claimed<N>, u64> {
        if let Some((slot, shared)) = self.ring.moved_slot(position) {
            return self.claim_moved(position, slot, shared);
        }
        let ptr = self.ring.slot(position).load(Ordering::Relaxed);
        self.member
            .cursor
            .at
            .compare_exchange(position, position + 1, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| Claimed::Ticket(ptr))
    }

    /// [`claim`](Self::claim) of a moved value: announced in `moving` first, so that a poster
    /// that evicts us from here on watches us, and writes the value slot only once we are done
    /// with it (module docs, "Moved values").
    #[inline]
    fn claim_moved(
        &self,
        position: u64,
        slot: &ValueSlot<N>,
        shared: bool,
    ) -> Result<Claimed<N>, u64> {
        let cursor = &self.member.cursor;
        cursor.moving.store(position, Ordering::Release);
        let claimed = cursor
            .at
            .compare_exchange(position, position + 1, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| {
                // The claim won `position`, a moved value's (see `claim`: the stamp we read
                // was its own), so one of its tickets is ours; no post writes its value slot
                // before we clear `moving` below.
                if shared {
                    // SAFETY: as above.
                    Claimed::Shared(unsafe { slot.to_arc(true) })
                } else {
                    // SAFETY: as above, and the ticket is the value's only one. Wrapped after
                    // `moving` is cleared: the allocation is no part of the read a poster may
                    // wait for.
                    Claimed::Moved(unsafe { slot.value.take() })
                }
            });
        cursor.moving.store(NOT_MOVING, Ordering::Release);
        claimed
    }

    /// The cursor moved from `from` to `now` without us: evictions, and maybe closing.
    fn moved(&mut self, from: u64, now: u64) -> Option<Took<Arc<N>>> {
        let to = now & !CLOSED;
        self.skips.refresh(&self.member.skips, self.next);
        let lost = (to - from) - self.skips.take_below(from, to);
        self.next = to;
        if now & CLOSED != 0 {
            self.closed = true;
        }
        (lost != 0 && self.report_lag).then_some(Took::Lagged(lost))
    }

    /// Loads the tail (unless the next position holds a value moved to this member alone);
    /// true if there is something to claim, and then it yields again before it next parks.
    #[inline]
    fn refresh(&mut self) -> bool {
        self.avail = if self.ring.published_lone(self.next) {
            self.next + 1
        } else {
            self.ring.tail.load(Ordering::Acquire)
        };
        self.skips.refresh(&self.member.skips, self.next);
        let found = self.next < self.avail;
        if found {
            self.yielded = 0;
        }
        found
    }

    fn take_front(&mut self) -> Option<Arc<N>> {
        let mut front = self.member.front.lock();
        let value = front.queue.pop_front()?;
        // The stream's own count, always; the channel's, once it left (its sink).
        front.delivered += 1;
        if let Some(sink) = &front.sink {
            sink.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Some(value)
    }

    /// Registers `waker`, then checks again under the ring's lock and parks if nothing arrived
    /// (the parking handshake, see the module docs). True if something did: a post, an
    /// eviction, or leaving the ring.
    fn park(&mut self, waker: &Waker) -> bool {
        // The waker first, outside the ring's lock (cloning or dropping one is executor code):
        // a poster only takes it once the parked flag below is set, under the lock.
        self.member.parking.register(waker);
        {
            let _st = self.ring.state.lock();
            // No post, eviction or leave is half done while we hold the lock, and every
            // later one takes it after us: either we see its `tail` or cursor store here, or
            // it sees the parked flag we set.
            let cursor = self.member.cursor.at.load(Ordering::Acquire);
            let tail = self.ring.tail.load(Ordering::Acquire);
            if cursor == self.next && tail <= self.next {
                self.member.parking.park(&self.ring.parked);
                return false;
            }
        }
        self.refresh();
        true
    }

    /// Values waiting to be received.
    pub(crate) fn len(&self) -> usize {
        let front = self.member.front.lock().queue.len();
        let cursor = self.member.cursor.at.load(Ordering::Acquire);
        if cursor & CLOSED != 0 {
            return front;
        }
        let tail = self.ring.tail.load(Ordering::Acquire).max(cursor);
        let skipped = self.member.skips.count_in(cursor, tail);
        front + (tail - cursor).saturating_sub(skipped) as usize
    }

    /// Whether it has left the ring.
    pub(crate) fn is_closed(&self) -> bool {
        self.member.cursor.at.load(Ordering::Acquire) & CLOSED != 0
    }
}

/// What the unit tests of both rings read a receiver's output as.
#[cfg(all(test, not(herald_loom)))]
pub(crate) mod script {
    use super::Took;

    /// Everything `take` yields now, as `"seq"`, `"lag n"` and `"closed"`.
    pub(crate) fn drain<V>(
        mut take: impl FnMut() -> Took<V>,
        seq: impl Fn(&V) -> u64,
    ) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            match take() {
                Took::Value(v) => out.push(seq(&v).to_string()),
                Took::Lagged(n) => out.push(format!("lag {n}")),
                Took::Closed => {
                    out.push("closed".into());
                    return out;
                }
                Took::Empty => return out,
            }
        }
    }

    pub(crate) fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }
}

#[cfg(all(test, not(herald_loom)))]
mod tests {
    use super::script::{self, strings};
    use super::*;
    use std::sync::atomic::AtomicUsize as StdAtomicUsize;

    /// Counts drops, so tests can check that every ticket is released exactly once.
    struct Tracked {
        seq: u64,
        drops: Arc<StdAtomicUsize>,
    }

    impl Drop for Tracked {
        fn drop(&mut self) {
            self.drops.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    struct Fixture {
        rings: Rings<Tracked>,
        drops: Arc<StdAtomicUsize>,
        generation: u64,
    }

    impl Fixture {
        fn new() -> Self {
            Fixture {
                rings: Rings::default(),
                drops: Arc::default(),
                generation: 0,
            }
        }
        fn ring(&self, capacity: usize) -> Arc<Ring<Tracked>> {
            self.rings.get(capacity).unwrap()
        }
        fn join(&mut self, ring: &Arc<Ring<Tracked>>, report_lag: bool) -> Reader<Tracked> {
            self.generation += 1;
            let member = Arc::new(Member::new());
            ring.join(&member, self.generation);
            Reader::new(ring.clone(), member, report_lag)
        }
        fn post(&self, ring: &Ring<Tracked>, seq: u64) -> Posted {
            let value = Arc::new(Tracked {
                seq,
                drops: self.drops.clone(),
            });
            ring.post(&value, self.generation)
        }
        fn dropped(&self) -> usize {
            self.drops.load(std::sync::atomic::Ordering::SeqCst)
        }
        /// Posts as the engine does when the stream is the only one that needs the value.
        fn post_owned(&self, ring: &Ring<Tracked>, seq: u64) -> Posted {
            let value = Tracked {
                seq,
                drops: self.drops.clone(),
            };
            ring.post_owned(value, self.generation).0
        }
    }

    fn is_moved<N>(ring: &Ring<N>, position: u64) -> bool {
        ring.moved_slot(position).is_some()
    }

    #[test]
    fn a_lone_member_gets_values_moved_in_and_each_is_dropped_once() {
        let mut f = Fixture::new();
        let ring = f.ring(3);
        let mut r = f.join(&ring, true);
        let mut dropped = 0;
        for i in 0..8 {
            let posted = f.post_owned(&ring, i);
            assert_eq!(posted.received, 1);
            dropped += posted.dropped;
            assert!(is_moved(&ring, i), "moved, no `Arc` made");
        }
        assert_eq!(dropped, 5);
        assert_eq!(
            f.dropped(),
            5,
            "evicted values are dropped by the poster at once"
        );
        assert_eq!(drain(&mut r), strings(&["lag 5", "5", "6", "7"]));
        assert_eq!(
            f.dropped(),
            8,
            "each received value dropped once, by the receiver"
        );
        let stats = ring.stats(&r.member, ObserverId::next());
        assert_eq!((stats.delivered, stats.dropped, stats.depth), (3, 5, 0));
        // Around the value slots more than once (4 of them for capacity 3).
        for i in 8..40 {
            f.post_owned(&ring, i);
            assert!(matches!(r.take(None), Took::Value(v) if v.seq == i));
        }
        assert_eq!(f.dropped(), 40);
    }

    #[test]
    fn moved_and_shared_positions_mix_in_order() {
        let mut f = Fixture::new();
        let ring = f.ring(4);
        let mut a = f.join(&ring, true);
        f.post_owned(&ring, 0);
        f.post_owned(&ring, 1);
        let mut b = f.join(&ring, true);
        assert_eq!(f.post(&ring, 2).received, 2, "an `Arc` posted: shared");
        assert_eq!(
            f.post_owned(&ring, 3).received,
            2,
            "two members: moved, for both"
        );
        assert!(is_moved(&ring, 1) && !is_moved(&ring, 2) && is_moved(&ring, 3));
        assert_eq!(drain(&mut a), strings(&["0", "1", "2", "3"]));
        assert_eq!(f.dropped(), 2, "2 and 3 wait for b");
        assert_eq!(drain(&mut b), strings(&["2", "3"]));
        assert_eq!(f.dropped(), 4);
        // Alone again: moved again.
        ring.leave(&b.member.clone());
        assert_eq!(drain(&mut b), strings(&["closed"]));
        f.post_owned(&ring, 4);
        assert!(is_moved(&ring, 4));
        assert_eq!(drain(&mut a), strings(&["4"]));
        assert_eq!(f.dropped(), 5);
    }

    #[test]
    fn a_stream_joining_with_a_newer_snapshot_is_skipped_not_moved_into() {
        let mut f = Fixture::new();
        let ring = f.ring(4);
        let older = f.generation;
        let mut r = f.join(&ring, true);
        // A post made with the snapshot from before the join: it does not reach the member.
        let (posted, back) = ring.post_owned(
            Tracked {
                seq: 0,
                drops: f.drops.clone(),
            },
            older,
        );
        assert_eq!(posted.received, 0);
        assert_eq!(f.dropped(), 0, "nobody received it: handed back");
        drop(back);
        assert_eq!(f.dropped(), 1);
        f.post_owned(&ring, 1);
        assert_eq!(drain(&mut r), strings(&["1"]));
    }

    #[test]
    fn leaving_takes_the_moved_values_not_taken() {
        let mut f = Fixture::new();
        let ring = f.ring(4);
        let mut r = f.join(&ring, true);
        for i in 0..4 {
            f.post_owned(&ring, i);
        }
        assert!(matches!(r.take(None), Took::Value(v) if v.seq == 0));
        ring.leave(&r.member.clone());
        f.post_owned(&ring, 4);
        assert_eq!(f.dropped(), 2, "0 received; 4 reached nobody");
        assert_eq!(drain(&mut r), strings(&["1", "2", "3", "closed"]));
        assert_eq!(f.dropped(), 5);
    }

    #[test]
    fn a_ring_dropped_with_moved_values_drops_each_once() {
        let mut f = Fixture::new();
        let ring = f.ring(8);
        let r = f.join(&ring, true);
        for i in 0..6 {
            f.post_owned(&ring, i);
        }
        let member = r.member.clone();
        drop(r);
        drop(ring);
        assert_eq!(f.dropped(), 0, "the member keeps what it had not taken");
        drop(member);
        assert_eq!(f.dropped(), 6);
    }

    #[test]
    fn large_rings_of_large_values_share_instead_of_moving() {
        let rings: Rings<[u8; 4096]> = Rings::default();
        let ring = rings.get(MAX_RING_CAPACITY).unwrap();
        assert!(!ring.movable, "2^17 value slots of 4 KiB would be 512 MiB");
        let post = |ring: &Ring<[u8; 4096]>| ring.post_owned([7; 4096], 1).0;
        let member = Arc::new(Member::new());
        ring.join(&member, 1);
        let mut r = Reader::new(ring.clone(), member, true);
        assert_eq!(post(&ring).received, 1);
        assert!(!is_moved(&ring, 0) && ring.values.get().is_none());
        assert!(matches!(r.take(None), Took::Value(v) if v[4095] == 7));
        let small = Rings::<u64>::default();
        assert!(
            small.get(MAX_RING_CAPACITY / 4).unwrap().movable,
            "768 KiB of value slots"
        );
        assert!(
            !small.get(MAX_RING_CAPACITY / 2).unwrap().movable,
            "1.5 MiB"
        );
    }

    #[test]
    fn a_shared_post_evicts_a_moved_value_and_drops_it_once() {
        let mut f = Fixture::new();
        let ring = f.ring(2);
        let mut a = f.join(&ring, true);
        f.post_owned(&ring, 0);
        f.post_owned(&ring, 1);
        let mut b = f.join(&ring, true);
        let posted = f.post(&ring, 2);
        assert_eq!((posted.received, posted.dropped), (2, 1));
        assert!(is_moved(&ring, 1) && !is_moved(&ring, 2));
        assert_eq!(
            f.dropped(),
            1,
            "the moved value 0, dropped by the post that evicted it"
        );
        f.post(&ring, 3);
        assert_eq!(f.dropped(), 2);
        assert_eq!(drain(&mut a), strings(&["lag 2", "2", "3"]));
        assert_eq!(drain(&mut b), strings(&["2", "3"]));
        assert_eq!(f.dropped(), 4);
    }

    /// Several members share each moved value: the first to take it makes the one `Arc`, with
    /// a reference for each member still to take it, and the others take those.
    #[test]
    fn several_members_share_one_arc_made_by_the_first_taker() {
        let mut f = Fixture::new();
        let ring = f.ring(4);
        let mut readers: Vec<_> = (0..3).map(|_| f.join(&ring, true)).collect();
        for i in 0..3 {
            assert_eq!(f.post_owned(&ring, i).received, 3);
            assert!(is_moved(&ring, i));
        }
        let take = |r: &mut Reader<Tracked>| match r.take(None) {
            Took::Value(v) => v,
            _ => panic!("a value"),
        };
        let first = take(&mut readers[1]);
        assert_eq!((first.seq, Arc::strong_count(&first)), (0, 3));
        let second = take(&mut readers[0]);
        let third = take(&mut readers[2]);
        assert!(Arc::ptr_eq(&first, &second) && Arc::ptr_eq(&first, &third));
        drop((first, second));
        assert_eq!(f.dropped(), 0);
        assert_eq!(Arc::strong_count(&third), 1);
        drop(third);
        assert_eq!(f.dropped(), 1, "made once, dropped once");
        for r in &mut readers {
            assert_eq!(drain(r), strings(&["1", "2"]));
        }
        assert_eq!(f.dropped(), 3);
    }

    /// Past [`MAX_MOVED_MEMBERS`] members a post shares an `Arc` through tickets instead.
    #[test]
    fn many_members_share_through_tickets() {
        let mut f = Fixture::new();
        let ring = f.ring(4);
        let mut readers: Vec<_> = (0..MAX_MOVED_MEMBERS)
            .map(|_| f.join(&ring, true))
            .collect();
        f.post_owned(&ring, 0);
        assert!(is_moved(&ring, 0));
        readers.push(f.join(&ring, true));
        assert_eq!(f.post_owned(&ring, 1).received, MAX_MOVED_MEMBERS + 1);
        assert!(!is_moved(&ring, 1));
        for (i, r) in readers.iter_mut().enumerate() {
            let want: &[&str] = if i < MAX_MOVED_MEMBERS {
                &["0", "1"]
            } else {
                &["1"]
            };
            assert_eq!(drain(r), strings(want));
        }
        assert_eq!(f.dropped(), 2);
    }

    /// Evictions release a shared moved value's tickets: the references of an `Arc` a member
    /// made before, or the value itself when no member took it.
    #[test]
    fn evicting_a_shared_moved_value_releases_each_ticket_once() {
        let mut f = Fixture::new();
        let ring = f.ring(2);
        let mut a = f.join(&ring, true);
        let mut b = f.join(&ring, true);
        let mut c = f.join(&ring, true);
        f.post_owned(&ring, 0);
        f.post_owned(&ring, 1);
        let kept = match a.take(None) {
            Took::Value(v) => v,
            _ => panic!("a value"),
        };
        assert_eq!(Arc::strong_count(&kept), 3, "made for a, b and c");
        // 0 evicted from b and c: their references of a's `Arc` go, the value stays with a.
        assert_eq!(f.post_owned(&ring, 2).dropped, 2);
        assert_eq!((Arc::strong_count(&kept), f.dropped()), (1, 0));
        drop(kept);
        assert_eq!(f.dropped(), 1);
        // 1 evicted from b and c, and a keeps up: a takes 1 and 2 first.
        assert_eq!(drain(&mut a), strings(&["1", "2"]));
        assert_eq!(f.post_owned(&ring, 3).dropped, 2);
        assert_eq!(
            f.dropped(),
            2,
            "1: a's reference dropped, b's and c's released"
        );
        // 2 and 3 are a's no more; evicting 2 from b and c before anyone else takes it.
        assert_eq!(f.post_owned(&ring, 4).dropped, 2);
        assert_eq!(f.dropped(), 3, "2 freed by the post, its last tickets");
        assert_eq!(drain(&mut b), strings(&["lag 3", "3", "4"]));
        assert_eq!(drain(&mut c), strings(&["lag 3", "3", "4"]));
        assert_eq!(drain(&mut a), strings(&["3", "4"]));
        assert_eq!(f.dropped(), 5);
    }

    /// A member that leaves takes its share of moved values nobody took yet: it makes their
    /// `Arc`s, and the members that stay take the same ones.
    #[test]
    fn a_member_leaving_makes_the_shared_arcs_the_others_take() {
        let mut f = Fixture::new();
        let ring = f.ring(4);
        let mut a = f.join(&ring, true);
        let mut b = f.join(&ring, true);
        for i in 0..3 {
            f.post_owned(&ring, i);
        }
        ring.leave(&a.member.clone());
        assert_eq!(f.dropped(), 0);
        let mut left = Vec::new();
        while let Took::Value(v) = a.take(None) {
            left.push(v);
        }
        let mut stayed = Vec::new();
        while let Took::Value(v) = b.take(None) {
            stayed.push(v);
        }
        assert_eq!(left.len(), 3);
        assert!(left.iter().zip(&stayed).all(|(l, s)| Arc::ptr_eq(l, s)));
        drop((left, stayed));
        assert_eq!(f.dropped(), 3);
        // b alone now: moved and taken alone.
        f.post_owned(&ring, 3);
        assert_eq!(drain(&mut b), strings(&["3"]));
        assert_eq!(f.dropped(), 4);
    }

    /// A ring dropped with shared moved values no member took: each is dropped once, with
    /// the last member holding it.
    #[test]
    fn a_ring_dropped_with_shared_moved_values_drops_each_once() {
        let mut f = Fixture::new();
        let ring = f.ring(8);
        let mut a = f.join(&ring, true);
        let b = f.join(&ring, true);
        for i in 0..5 {
            f.post_owned(&ring, i);
        }
        assert_eq!(drain(&mut a), strings(&["0", "1", "2", "3", "4"]));
        let (ma, mb) = (a.member.clone(), b.member.clone());
        drop((a, b));
        drop(ring);
        assert_eq!(f.dropped(), 0, "b keeps what it had not taken");
        drop(ma);
        assert_eq!(f.dropped(), 0);
        drop(mb);
        assert_eq!(f.dropped(), 5);
    }

    /// A member that leaves while its receiver is still reading a moved value stays watched
    /// (out of the roster, no post evicts it any more) until it is done; one whose stream is
    /// gone is not waited for, and its values are not kept alive by the watch.
    #[test]
    fn a_member_leaving_while_moving_a_value_out_is_watched_until_done_or_gone() {
        let mut f = Fixture::new();
        let ring = f.ring(1);
        let mut r = f.join(&ring, true);
        f.post_owned(&ring, 0);
        assert!(matches!(r.take(None), Took::Value(v) if v.seq == 0));
        // As a receiver still inside its read of position 0.
        r.member.cursor.moving.store(0, Ordering::Release);
        ring.leave(&r.member.clone());
        assert_eq!(
            ring.state.lock().watch.len(),
            1,
            "left while reading: watched"
        );
        let mut next = f.join(&ring, true);
        r.member.cursor.moving.store(NOT_MOVING, Ordering::Release);
        f.post_owned(&ring, 1);
        // Position 2 writes the value slot of 0 again (two value slots): the read is over.
        f.post_owned(&ring, 2);
        assert!(ring.state.lock().watch.is_empty());
        assert_eq!(drain(&mut next), strings(&["lag 1", "2"]));
        // The same with the stream dropped while its `moving` word still shows a read.
        next.member.cursor.moving.store(2, Ordering::Release);
        let member = next.member.clone();
        ring.leave(&member);
        assert_eq!(ring.state.lock().watch.len(), 1);
        drop((next, member, r));
        let mut last = f.join(&ring, true);
        f.post_owned(&ring, 3);
        f.post_owned(&ring, 4); // writes the value slot of 2: not waited for
        assert!(ring.state.lock().watch.is_empty());
        assert_eq!(drain(&mut last), strings(&["lag 1", "4"]));
        assert_eq!(f.dropped(), 5);
    }

    #[test]
    fn a_member_evicted_while_moving_a_value_out_is_watched_until_done() {
        let mut f = Fixture::new();
        let ring = f.ring(1);
        let r = f.join(&ring, false);
        f.post_owned(&ring, 0);
        // As a receiver does between its announcement and the end of its read.
        r.member.cursor.moving.store(0, Ordering::Release);
        f.post_owned(&ring, 1);
        assert_eq!(ring.state.lock().watch.len(), 1, "evicted while announcing");
        r.member.cursor.moving.store(NOT_MOVING, Ordering::Release);
        // Writes the value slot of 0 again (2 value slots): the watch is over.
        f.post_owned(&ring, 2);
        assert!(ring.state.lock().watch.is_empty());
        assert_eq!(f.dropped(), 2);
    }

    fn drain(reader: &mut Reader<Tracked>) -> Vec<String> {
        script::drain(|| reader.take(None), |v| v.seq)
    }

    #[test]
    fn values_come_out_in_order_and_are_freed_once_received() {
        let mut f = Fixture::new();
        let ring = f.ring(4);
        let mut a = f.join(&ring, true);
        let mut b = f.join(&ring, true);
        for i in 0..3 {
            let posted = f.post(&ring, i);
            assert_eq!((posted.received, posted.dropped), (2, 0));
        }
        assert_eq!(drain(&mut a), strings(&["0", "1", "2"]));
        assert_eq!(f.dropped(), 0, "b still holds its tickets");
        assert_eq!(drain(&mut b), strings(&["0", "1", "2"]));
        assert_eq!(
            f.dropped(),
            3,
            "no copy kept once every member received them"
        );
    }

    #[test]
    fn a_full_member_loses_its_oldest_and_hears_the_exact_count() {
        let mut f = Fixture::new();
        let ring = f.ring(3);
        let mut slow = f.join(&ring, true);
        let mut dropped = 0;
        for i in 0..8 {
            dropped += f.post(&ring, i).dropped;
        }
        assert_eq!(dropped, 5);
        assert_eq!(f.dropped(), 5, "evicted values are freed at once");
        assert_eq!(drain(&mut slow), strings(&["lag 5", "5", "6", "7"]));
        let stats = ring.stats(&slow.member, ObserverId::next());
        assert_eq!((stats.delivered, stats.dropped, stats.depth), (3, 5, 0));
    }

    /// The issue's example: capacity 8, the receiver has returned 20, 21 and 22 are waiting,
    /// and 23..32 are posted. The newest 8 survive: 21..24 are lost, whatever the receiver had
    /// looked at before.
    #[test]
    fn drop_oldest_keeps_the_newest_values() {
        let mut f = Fixture::new();
        let ring = f.ring(8);
        let mut r = f.join(&ring, true);
        for i in 0..=20 {
            f.post(&ring, i);
            assert!(matches!(r.take(None), Took::Value(v) if v.seq == i));
        }
        for i in 21..=32 {
            f.post(&ring, i);
        }
        assert_eq!(
            drain(&mut r),
            strings(&["lag 4", "25", "26", "27", "28", "29", "30", "31", "32"])
        );
    }

    #[test]
    fn latest_only_loses_silently() {
        let mut f = Fixture::new();
        let ring = f.ring(1);
        let mut latest = f.join(&ring, false);
        let reports: Vec<_> = (0..4).map(|i| f.post(&ring, i)).collect();
        assert_eq!(reports[0].dropped, 0);
        assert!(
            reports[1..]
                .iter()
                .all(|r| r.dropped == 1 && r.received == 1)
        );
        assert_eq!(drain(&mut latest), strings(&["3"]));
        assert_eq!(latest.member.dropped.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn leaving_keeps_what_was_not_taken_then_closes() {
        let mut f = Fixture::new();
        let ring = f.ring(4);
        let mut r = f.join(&ring, true);
        let mut other = f.join(&ring, true);
        for i in 0..3 {
            f.post(&ring, i);
        }
        assert!(matches!(r.take(None), Took::Value(v) if v.seq == 0));
        ring.leave(&r.member.clone());
        assert!(r.is_closed());
        assert_eq!(r.len(), 2);
        assert_eq!(f.post(&ring, 3).received, 1, "only the other member");
        assert_eq!(drain(&mut r), strings(&["1", "2", "closed"]));
        assert_eq!(drain(&mut other), strings(&["0", "1", "2", "3"]));
        assert_eq!(f.dropped(), 4);
    }

    #[test]
    fn leaving_after_evictions_reports_the_lag_first() {
        let mut f = Fixture::new();
        let ring = f.ring(2);
        let mut r = f.join(&ring, true);
        for i in 0..5 {
            f.post(&ring, i);
        }
        ring.leave(&r.member.clone());
        assert_eq!(drain(&mut r), strings(&["lag 3", "3", "4", "closed"]));
    }

    #[test]
    fn posts_made_before_a_join_skip_the_new_member() {
        let mut f = Fixture::new();
        let ring = f.ring(4);
        let mut old = f.join(&ring, true);
        let stale = f.generation; // a post that loaded its snapshot before the next join
        let mut new = f.join(&ring, true);
        let value = Arc::new(Tracked {
            seq: 100,
            drops: f.drops.clone(),
        });
        assert_eq!(ring.post(&value, stale).received, 1);
        drop(value);
        f.post(&ring, 101);
        assert_eq!(drain(&mut old), strings(&["100", "101"]));
        assert_eq!(drain(&mut new), strings(&["101"]));
        assert_eq!(f.dropped(), 2);
    }

    #[test]
    fn skipped_positions_are_not_counted_as_lost() {
        let mut f = Fixture::new();
        let ring = f.ring(2);
        let _old = f.join(&ring, true);
        let stale = f.generation;
        let mut new = f.join(&ring, true);
        for seq in 0..2 {
            let v = Arc::new(Tracked {
                seq,
                drops: f.drops.clone(),
            });
            ring.post(&v, stale);
        }
        for seq in 2..6 {
            f.post(&ring, seq);
        }
        // The new member's positions: 2..6, of which 2 and 3 were evicted.
        assert_eq!(drain(&mut new), strings(&["lag 2", "4", "5"]));
        assert_eq!(new.member.dropped.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn dropping_the_ring_frees_every_ticket() {
        let mut f = Fixture::new();
        let ring = f.ring(4);
        let r = f.join(&ring, true);
        let s = f.join(&ring, true);
        for i in 0..6 {
            f.post(&ring, i);
        }
        drop((r, s, ring));
        assert_eq!(f.dropped(), 6);
    }

    #[test]
    fn rings_are_shared_by_capacity_and_ids_are_recycled() {
        let f = Fixture::new();
        let a = f.ring(4);
        assert!(Arc::ptr_eq(&a, &f.ring(4)));
        let b = f.ring(8);
        assert_ne!(a.bit(), b.bit());
        let held: Vec<_> = (100..162).map(|c| f.ring(c)).collect();
        assert!(f.rings.get(1000).is_none(), "64 rings per type at most");
        drop(held);
        assert!(f.rings.get(1000).is_some());
    }

    /// Two posters and two receivers race on a small ring: each receiver's values, lags and
    /// the posters' reports account for every post exactly, in order, and every value is
    /// freed once.
    /// Two posters against `members` receivers on a ring of `capacity`, each receiver on a
    /// thread of its own: per-poster order, every value received or lost once, and counts
    /// that agree. `owned`: the posts move their values in (`post_owned`, a lone member).
    fn race(capacity: usize, members: usize, owned: bool) {
        const POSTS: u64 = if cfg!(miri) { 60 } else { 20_000 };
        let mut f = Fixture::new();
        let ring = f.ring(capacity);
        let readers: Vec<_> = (0..members).map(|_| f.join(&ring, true)).collect();
        let (drops, generation) = (f.drops.clone(), f.generation);
        let reported = Arc::new(StdAtomicUsize::new(0));
        let posters: Vec<_> = (0..2u64)
            .map(|t| {
                let (ring, drops, reported) = (ring.clone(), drops.clone(), reported.clone());
                std::thread::spawn(move || {
                    for i in 0..POSTS {
                        let v = Tracked {
                            seq: t << 32 | i,
                            drops: drops.clone(),
                        };
                        let posted = if owned {
                            ring.post_owned(v, generation).0
                        } else {
                            ring.post(&Arc::new(v), generation)
                        };
                        assert_eq!(posted.received, members);
                        reported.fetch_add(posted.dropped, std::sync::atomic::Ordering::SeqCst);
                    }
                })
            })
            .collect();
        let receivers: Vec<_> = readers
            .into_iter()
            .map(|mut r| {
                std::thread::spawn(move || {
                    let (mut got, mut lost, mut last) = (0u64, 0u64, [None::<u64>; 2]);
                    while got + lost < 2 * POSTS {
                        match r.take(None) {
                            Took::Value(v) => {
                                let (t, i) = ((v.seq >> 32) as usize, v.seq & 0xffff_ffff);
                                assert!(last[t].is_none_or(|l| l < i), "out of order");
                                last[t] = Some(i);
                                got += 1;
                            }
                            Took::Lagged(n) => lost += n,
                            Took::Empty => std::thread::yield_now(),
                            Took::Closed => panic!("closed"),
                        }
                    }
                    let stats = r.ring.stats(&r.member, ObserverId::next());
                    assert_eq!((stats.delivered, stats.dropped), (got, lost));
                    lost
                })
            })
            .collect();
        for p in posters {
            p.join().unwrap();
        }
        let lost: u64 = receivers.into_iter().map(|r| r.join().unwrap()).sum();
        assert_eq!(
            lost,
            reported.load(std::sync::atomic::Ordering::SeqCst) as u64
        );
        drop(ring);
        assert_eq!(f.dropped() as u64, 2 * POSTS, "every value freed once");
    }

    #[test]
    fn racing_posters_and_receivers_account_exactly() {
        race(4, 2, false);
    }

    /// The same for moved values: at capacity 1 (two value slots) every post evicts or writes
    /// again the value slot the receiver has just read, so a post writing a value slot still
    /// being read would show here (and under Miri, as a data race).
    #[test]
    fn racing_posters_and_a_lone_receiver_of_moved_values_account_exactly() {
        race(1, 1, true);
        race(4, 1, true);
    }

    /// And for moved values several receivers share: one of them makes the `Arc` while the
    /// others wait for it, and posters evict from receivers mid-way.
    #[test]
    fn racing_posters_and_receivers_sharing_moved_values_account_exactly() {
        race(1, 3, true);
        race(4, 2, true);
    }

    #[test]
    fn a_parked_reader_is_woken_by_a_post_and_by_leaving() {
        use std::task::Wake;
        struct Count(StdAtomicUsize);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let mut f = Fixture::new();
        let ring = f.ring(4);
        let mut r = f.join(&ring, true);
        let count = Arc::new(Count(StdAtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        assert!(matches!(r.take(Some(&waker)), Took::Empty));
        f.post(&ring, 0);
        f.post(&ring, 1);
        assert_eq!(
            count.0.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "woken once"
        );
        assert_eq!(ring.parked.load(Ordering::SeqCst), 0);
        assert_eq!(drain(&mut r), strings(&["0", "1"]));
        // Caught up after receiving, the only member parks at once: no wake of its own.
        assert_eq!(ring.yields(), 0, "the only member");
        let yielded = 1;
        assert!(matches!(r.take(Some(&waker)), Took::Empty));
        let parked = count.0.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(parked, yielded, "parked");
        ring.leave(&r.member.clone());
        assert_eq!(
            count.0.load(std::sync::atomic::Ordering::SeqCst),
            yielded + 1
        );
        assert!(matches!(r.take(Some(&waker)), Took::Closed));
    }

    /// More parked members than one batch of wakers: one post wakes them all.
    #[test]
    fn one_post_wakes_every_parked_member() {
        use std::task::Wake;
        struct Count(StdAtomicUsize);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let mut f = Fixture::new();
        let ring = f.ring(4);
        let mut readers: Vec<_> = (0..20).map(|_| f.join(&ring, true)).collect();
        let counts: Vec<_> = (0..20)
            .map(|_| Arc::new(Count(StdAtomicUsize::new(0))))
            .collect();
        for (r, c) in readers.iter_mut().zip(&counts) {
            assert!(matches!(r.take(Some(&Waker::from(c.clone()))), Took::Empty));
        }
        f.post(&ring, 0);
        assert!(
            counts
                .iter()
                .all(|c| c.0.load(std::sync::atomic::Ordering::SeqCst) == 1)
        );
        assert_eq!(ring.parked.load(Ordering::SeqCst), 0);
    }
}
