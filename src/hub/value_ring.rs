//! The shared ring behind cloned streams: values, not `Arc`s.
//!
//! A [`ValueRing`] is the [`Ring`](crate::hub::ring) of a notification type that is `Clone`,
//! for streams that receive their own clone of each value
//! ([`ObserverBuilder::cloned_stream`](crate::ObserverBuilder::cloned_stream)) under
//! drop-oldest or latest-only: its slots hold the posted values themselves, so a post makes no
//! allocation and no reference count moves on either side. A post clones the value once into
//! the next slot; each receiver clones it out. What a value ring keeps is what
//! `tokio::sync::broadcast` keeps: a posted value stays in its slot until a later post
//! overwrites it, every member having received or lost it by then.
//!
//! # Semantics
//! As for the `Arc` ring (`ring.rs`): membership from the post after the join (posts made with
//! an older subscriber snapshot skip the member), drop-oldest exactly (a post at `p` evicts
//! `p - capacity` from every member that has not taken it; the receiver hears `Lagged(n)` with
//! the exact `n`), one claim per position, won by the receiver or by an evicting poster. One
//! difference: a member that leaves (unsubscribe, close, the center dropped) stays in the ring
//! until it has taken what it had not taken; it receives no later post, but a later post may
//! still evict its oldest values, reported as a lag like any other.
//!
//! # The claim
//! The cursor works as in the `Arc` ring: a receiver claims position `q` by a
//! compare-and-swap from `q` to `q + 1`, a poster evicts by a compare-and-swap past the evicted
//! position, and exactly one of them wins each position. What the value ring adds is the clone
//! after the claim, which reads the slot: the receiver announces it in its member's `cloning`
//! word (the position, stored before the claim; [`NOT_CLONING`] after the clone), and a
//! poster does not overwrite a slot that a receiver is cloning from.
//!
//! A poster overwrites the slot of position `o = p - slots` when it writes position `p`. The
//! slot count is `capacity + 1` rounded up to a power of two, so `o + 1 <= p - capacity`: a
//! receiver still cloning `o` has a cursor of at most `o + 1` unless a poster evicted it, and
//! the post evicts every cursor up to `p - capacity`. So every receiver that may be cloning
//! `o` is one a poster evicted, and a poster that evicts a member reads its `cloning` word and,
//! if it is set, keeps the member on the ring's *watch list* ([`Watch`], shared with the `Arc`
//! ring's moved values). Before an overwrite, the poster waits for the watched members cloning
//! from that slot (only a receiver stuck inside one `clone` for a whole ring of posts makes it
//! wait); the common path reads no member at all.
//!
//! # Reading without the tail
//! Each slot carries a stamp, the position it was last written for plus one. A receiver does
//! not load the `tail` to learn what is published: it loads the stamp of its next position,
//! in the line it is about to read the value from anyway. The `tail` is a line the poster
//! writes on every post; a receiver loading it after each value (as one that keeps up with
//! its poster does) made every post wait for that line to come back from the receiver's core
//! (`stream/1` of `herald-cloned` went from about 145 to about 63 ns per item on a host where
//! tokio's broadcast takes about 125). An unstamped next position means nothing new (the
//! `tail` is at it), or that a poster evicted the receiver past it (its cursor says so): the
//! receiver never needs the `tail`, except under the lock to park.
//!
//! # Memory orderings
//! - Slot writes are plain; the poster publishes each with its slot's stamp (release, after
//!   the value), and a receiver reads a slot whose stamp it loaded with acquire. The
//!   member's `end` and skips are written before any later post's stamp, and a receiver loads
//!   them after the stamp.
//! - Both stores of `cloning` are `Release`, and the claim that follows the first is `AcqRel`.
//!   A poster's eviction reads the cursor value of the receiver's latest claim (acquire), so its
//!   next load of `cloning` sees that claim's announcement or a later store; a later store
//!   (`NOT_CLONING`, or the next announcement) is release-ordered after the clone, so a poster
//!   that reads it and then overwrites does so after the clone's reads.
//! - Parking is the `Arc` ring's handshake, under the ring's lock (`ring.rs`).
//!
//! # Invariants (under the ring's lock, between posts)
//! - Every member's cursor is at least `tail - capacity` (a member that left: or its `end`).
//! - `min_cursor` is at most every member's cursor.
//! - A member whose receiver may be cloning a position that a later post could overwrite is on
//!   the watch list with that position.
//! - Slot `i` holds a value once `tail > i` (a slot is written before the `tail` passes it,
//!   and later only overwritten), and its stamp is one more than the last position written
//!   to it.

// The slots are `UnsafeCell<MaybeUninit<N>>`: every `unsafe` block below reads, writes or
// drops one, with the claim protocol's argument that nobody else is writing it.
#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::AtomicU64 as StdAtomicU64;
use std::task::Waker;

use crate::ObserverId;
use crate::hub::ring::{
    Joiner, MAX_RING_CAPACITY, Parking, Posted, Roster, SkipCursor, Skips, Slot, Took, Watch,
    skip_newer, wake_parked, yields,
};
use crate::hub::stats::BufferStats;
use crate::hub::sync::{AtomicBool, AtomicU64, AtomicUsize, Mutex, Ordering, Padded};

/// A member's `cloning` word while its receiver is not cloning.
const NOT_CLONING: u64 = u64::MAX;

/// A member's `end` while it has not left the ring.
const OPEN: u64 = u64::MAX;

/// The value ring of one notification type and capacity.
pub(crate) struct ValueRing<N> {
    /// The next position to write. Written under `state`, read by receivers.
    tail: Padded<AtomicU64>,
    /// Members whose parked flag is set.
    parked: Padded<AtomicUsize>,
    state: Padded<Mutex<State<N>>>,
    slots: Box<[Stamped<N>]>,
    mask: u64,
    capacity: u64,
    /// This ring's bit in a post's mask of written rings (shared with the type's `Arc` rings).
    id: u32,
    /// Members that have not left (read by receivers to choose how often to yield).
    members: AtomicUsize,
    ids: Arc<StdAtomicU64>,
}

// SAFETY: the ring owns the `N`s in its slots: it may move to another thread when `N` may.
unsafe impl<N: Send> Send for ValueRing<N> {}
// SAFETY: posters move `N`s in (from any thread: `Send`) and receivers clone them through
// shared references from several threads at once (`Sync`); the claim protocol keeps a slot
// from being written while it is read.
unsafe impl<N: Send + Sync> Sync for ValueRing<N> {}

struct State<N> {
    /// Every member still in the ring: joined, or left with values still to take.
    members: Vec<Joined<N>>,
    /// Members evicted while their receiver was cloning (module docs, "The claim").
    watch: Watch<Member<N>>,
    /// Members that have not left.
    joined: usize,
    /// At most every member's cursor position.
    min_cursor: u64,
    /// The newest snapshot generation any member joined with.
    max_join_gen: u64,
}

/// A value slot and the position it was last written for, plus one (0: never written).
struct Stamped<N> {
    stamp: AtomicU64,
    value: Slot<N>,
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
    fn receives(&self) -> bool {
        self.member.end.load(Ordering::Relaxed) == OPEN
    }
}

impl<N> Roster for State<N> {
    type Member = Joined<N>;
    fn members(&self) -> &[Joined<N>] {
        &self.members
    }
}

/// One cloned stream's place in a value ring.
pub(crate) struct Member<N> {
    /// The first position neither received nor lost, and the position its receiver is
    /// cloning from ([`NOT_CLONING`] when none): both written by the receiver on every
    /// receive, on a line of their own.
    cursor: Padded<Cursor>,
    /// [`OPEN`], or the tail when it left: positions from there on are not its own. Written
    /// under the ring's lock.
    end: AtomicU64,
    parking: Parking,
    /// Values lost to eviction (written by posters under the ring's lock).
    dropped: AtomicU64,
    /// The position it joined at.
    start: AtomicU64,
    skips: Skips,
    /// Once the subscriber left its channel: where its receives are counted, and how many of
    /// them are counted there already.
    sink: Mutex<Option<(Arc<StdAtomicU64>, u64)>>,
    /// Set once it left its channel: each receive from then on is counted into the sink.
    retired: AtomicBool,
    /// The values live in the ring, not here; the type keeps a member to rings of its
    /// notification type.
    _values: PhantomData<fn() -> N>,
}

/// A member's cursor and its `cloning` word.
struct Cursor {
    next: AtomicU64,
    cloning: AtomicU64,
}

impl<N> Member<N> {
    pub(crate) fn new() -> Self {
        Member {
            cursor: Padded(Cursor {
                next: AtomicU64::new(0),
                cloning: AtomicU64::new(NOT_CLONING),
            }),
            end: AtomicU64::new(OPEN),
            parking: Parking::default(),
            dropped: AtomicU64::new(0),
            start: AtomicU64::new(0),
            skips: Skips::default(),
            sink: Mutex::new(None),
            retired: AtomicBool::new(false),
            _values: PhantomData,
        }
    }

    /// Values it received from the ring so far.
    fn ring_delivered(&self) -> u64 {
        let cursor = self.cursor.next.load(Ordering::Acquire);
        let start = self.start.load(Ordering::Relaxed);
        let lost = self.dropped.load(Ordering::Acquire) + self.skips.count_in(start, cursor);
        (cursor - start).saturating_sub(lost)
    }

    /// Counts what this subscriber received into `sink`: what it received so far now, the
    /// rest when it finishes (it left its channel).
    pub(crate) fn retire(&self, sink: &Arc<StdAtomicU64>) {
        let mut held = self.sink.lock();
        if held.is_none() {
            let before = self.ring_delivered();
            sink.fetch_add(before, std::sync::atomic::Ordering::Relaxed);
            *held = Some((sink.clone(), before));
            self.retired.store(true, Ordering::Release);
        }
    }

    /// Brings its sink up to date: after each receive once it left its channel, and when it
    /// finishes. (A receive that races the retirement is counted by the next settle.)
    fn settle(&self) {
        let mut held = self.sink.lock();
        let total = self.ring_delivered();
        if let Some((sink, counted)) = &mut *held {
            sink.fetch_add(total - *counted, std::sync::atomic::Ordering::Relaxed);
            *counted = total;
        }
    }
}

impl<N> ValueRing<N> {
    pub(crate) fn new(capacity: usize, id: u32, ids: Arc<StdAtomicU64>) -> Self {
        let capacity = capacity.clamp(1, MAX_RING_CAPACITY);
        let len = (capacity + 1).next_power_of_two();
        ValueRing {
            tail: Padded(AtomicU64::new(0)),
            parked: Padded(AtomicUsize::new(0)),
            state: Padded(Mutex::new(State {
                members: Vec::new(),
                watch: Watch::default(),
                joined: 0,
                min_cursor: u64::MAX,
                max_join_gen: 0,
            })),
            slots: (0..len)
                .map(|_| Stamped {
                    stamp: AtomicU64::new(0),
                    value: Slot::new(),
                })
                .collect(),
            mask: len as u64 - 1,
            capacity: capacity as u64,
            id,
            members: AtomicUsize::new(0),
            ids,
        }
    }

    /// This ring's bit in a post's mask of rings written.
    #[inline]
    pub(crate) fn bit(&self) -> u64 {
        1 << self.id
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity as usize
    }

    fn yields(&self) -> u8 {
        yields(self.members.load(Ordering::Relaxed))
    }

    #[inline]
    fn stamped(&self, position: u64) -> &Stamped<N> {
        &self.slots[(position & self.mask) as usize]
    }

    #[inline]
    fn slot(&self, position: u64) -> &Slot<N> {
        &self.stamped(position).value
    }

    /// Whether `position` is written (its slot stamped with it).
    #[inline]
    fn published(&self, position: u64) -> bool {
        self.stamped(position).stamp.load(Ordering::Acquire) == position + 1
    }

    /// Adds `member` from the next post on; posts made with snapshots older than
    /// `generation` skip it.
    pub(crate) fn join(&self, member: &Arc<Member<N>>, generation: u64) {
        let mut st = self.state.lock();
        let tail = self.tail.load(Ordering::Relaxed);
        member.start.store(tail, Ordering::Relaxed);
        member.cursor.next.store(tail, Ordering::Release);
        st.min_cursor = st.min_cursor.min(tail);
        st.max_join_gen = st.max_join_gen.max(generation);
        st.members.push(Joined {
            member: member.clone(),
            join_gen: generation,
        });
        st.joined += 1;
        self.members.store(st.joined, Ordering::Relaxed);
    }

    /// `member` receives no later post; it keeps what it had not taken (module docs). Wakes
    /// it if it is parked.
    pub(crate) fn leave(&self, member: &Member<N>) {
        let mut st = self.state.lock();
        if member.end.load(Ordering::Relaxed) != OPEN
            || !st
                .members
                .iter()
                .any(|j| std::ptr::eq(Arc::as_ptr(&j.member), member))
        {
            return;
        }
        member
            .end
            .store(self.tail.load(Ordering::Relaxed), Ordering::Release);
        st.joined -= 1;
        self.members.store(st.joined, Ordering::Relaxed);
        // Under the lock, like parking: a receiver parked before sees its waker taken here,
        // one parking after sees its `end`.
        let waker = member.parking.unpark(&self.parked);
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Takes `member` out of the ring for good (it has taken everything, or its receiver is
    /// gone), and settles its count.
    fn remove(&self, member: &Member<N>) {
        let mut st = self.state.lock();
        if let Some(i) = st
            .members
            .iter()
            .position(|j| std::ptr::eq(Arc::as_ptr(&j.member), member))
        {
            let j = st.members.swap_remove(i);
            if j.member.end.load(Ordering::Relaxed) == OPEN {
                st.joined -= 1;
                self.members.store(st.joined, Ordering::Relaxed);
            }
            // A member parked and gone: its count must not stay in the ring's.
            let waker = j.member.parking.unpark(&self.parked);
            drop(st);
            drop(waker);
        } else {
            drop(st);
        }
        member.settle();
    }

    /// Writes `value` for every member of snapshot generation `generation`, evicting the
    /// oldest value of members that are full, and wakes parked members. `value` is this
    /// ring's own clone (made by the caller, outside the lock).
    pub(crate) fn post(&self, value: N, generation: u64) -> Posted {
        let mut st = self.state.lock();
        let position = self.tail.load(Ordering::Relaxed);
        let mut received = st.joined;
        if generation < st.max_join_gen {
            received -= skip_newer(&st.members, received, position, generation);
        }
        if received == 0 {
            // `value` is dropped after the lock (parameters outlive locals).
            return Posted::default();
        }
        let len = self.mask + 1;
        let mut lost = 0;
        if let Some(oldest) = position.checked_sub(self.capacity)
            && st.min_cursor <= oldest
        {
            lost = self.evict(&mut st, oldest);
        }
        let stamped = self.stamped(position);
        let slot = &stamped.value;
        let looked_at = st.watch.wait(position, self.mask, |m| &m.cursor.cloning);
        // SAFETY: once the tail has passed a whole ring, the slot holds the value posted `len`
        // positions ago. Every member's cursor is past it (`evict` made sure, or the cached
        // minimum says so), so no receiver will claim it, and no receiver is still cloning it
        // (such a receiver was evicted and watched, and the watch waited for it: module docs,
        // "The claim"); posters write under the lock we hold.
        let old = (position >= len).then(|| unsafe { slot.take() });
        // SAFETY: as above: nobody else reads or writes this slot now.
        unsafe { slot.write(value) };
        // `Release`, after the value: what a receiver's acquire load of it publishes.
        stamped.stamp.store(position + 1, Ordering::Release);
        self.tail.store(position + 1, Ordering::Release);
        if self.parked.load(Ordering::Relaxed) == 0 {
            drop(st);
        } else {
            wake_parked(&self.state, st, &self.parked);
        }
        // `N`'s drop is user code: not under the lock.
        drop(old);
        drop(looked_at);
        Posted {
            received,
            dropped: lost,
        }
    }

    /// Moves every member at or before `oldest` past it (members that left: up to their end),
    /// watching those whose receiver is cloning. Returns how many values were lost, drops the
    /// members that left and have nothing more, and refreshes the cached minimum.
    #[cold]
    fn evict(&self, st: &mut State<N>, oldest: u64) -> usize {
        let mut lost = 0;
        let mut min = u64::MAX;
        let mut finished = Vec::new();
        for (i, j) in st.members.iter().enumerate() {
            let m = &j.member;
            let end = m.end.load(Ordering::Relaxed);
            let target = (oldest + 1).min(end);
            let mut cursor = m.cursor.next.load(Ordering::Acquire);
            while cursor < target {
                match m.cursor.next.compare_exchange(
                    cursor,
                    target,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        let n = (target - cursor) - m.skips.count_in(cursor, target);
                        if n != 0 {
                            m.dropped.fetch_add(n, Ordering::Release);
                            lost += n as usize;
                        }
                        // Its receiver may be cloning the position it claimed last (or
                        // announcing a claim that now fails): keep an eye on it.
                        let cloning = m.cursor.cloning.load(Ordering::Acquire);
                        if cloning != NOT_CLONING {
                            st.watch.add(m, cloning);
                        }
                        cursor = target;
                    }
                    Err(now) => cursor = now,
                }
            }
            if cursor >= end {
                // Left, and nothing of its own is left in the ring: its receiver closes.
                finished.push(i);
            } else {
                min = min.min(cursor);
            }
        }
        for i in finished.into_iter().rev() {
            st.members.swap_remove(i);
        }
        st.min_cursor = min;
        lost
    }

    /// Values waiting for `member`, and its counters.
    pub(crate) fn stats(&self, member: &Member<N>, observer: ObserverId) -> BufferStats {
        let cursor = member.cursor.next.load(Ordering::Acquire);
        let end = self
            .tail
            .load(Ordering::Acquire)
            .min(member.end.load(Ordering::Acquire))
            .max(cursor);
        let depth = (end - cursor).saturating_sub(member.skips.count_in(cursor, end));
        BufferStats {
            observer,
            depth: depth as usize,
            capacity: self.capacity as usize,
            delivered: member.ring_delivered(),
            dropped: member.dropped.load(Ordering::Acquire),
        }
    }
}

impl<N> Drop for ValueRing<N> {
    fn drop(&mut self) {
        let written = self.tail.load(Ordering::Relaxed).min(self.mask + 1);
        for slot in self.slots[..written as usize]
            .iter_mut()
            .map(|s| &mut s.value)
        {
            // SAFETY: slots below the tail (at most all of them) hold a value (invariant), and
            // nothing else can reach the ring any more.
            unsafe { slot.drop_value() };
        }
        self.ids
            .fetch_and(!(1 << self.id), std::sync::atomic::Ordering::Relaxed);
    }
}

/// The receiving side of one member.
pub(crate) struct ValueReader<N> {
    ring: Arc<ValueRing<N>>,
    member: Arc<Member<N>>,
    /// The next position to claim (equal to the member's cursor unless a poster moved it).
    next: u64,
    /// Positions below this are published and its own.
    avail: u64,
    skips: SkipCursor,
    /// Its member's `end`, once it has seen it set.
    end: u64,
    /// Took its member out of the ring (after its last value, or on drop).
    removed: bool,
    report_lag: bool,
    /// Times it yielded since it last received something (see `ring.rs`'s `Reader`).
    yielded: u8,
}

impl<N> ValueReader<N> {
    pub(crate) fn new(ring: Arc<ValueRing<N>>, member: Arc<Member<N>>, report_lag: bool) -> Self {
        let next = member.cursor.next.load(Ordering::Acquire);
        ValueReader {
            ring,
            member,
            next,
            avail: next,
            skips: SkipCursor::default(),
            end: OPEN,
            removed: false,
            report_lag,
            yielded: u8::MAX,
        }
    }

    pub(crate) fn ring(&self) -> &Arc<ValueRing<N>> {
        &self.ring
    }

    pub(crate) fn member(&self) -> &Arc<Member<N>> {
        &self.member
    }

    /// Values waiting to be received.
    pub(crate) fn len(&self) -> usize {
        let cursor = self.member.cursor.next.load(Ordering::Acquire);
        let end = self
            .ring
            .tail
            .load(Ordering::Acquire)
            .min(self.member.end.load(Ordering::Acquire))
            .max(cursor);
        (end - cursor).saturating_sub(self.member.skips.count_in(cursor, end)) as usize
    }

    /// Whether it has left the ring (it may still hold values).
    pub(crate) fn is_closed(&self) -> bool {
        self.member.end.load(Ordering::Acquire) != OPEN
    }

    /// Takes the next value; when there is none and `waker` is given, parks with it.
    #[inline]
    pub(crate) fn take(&mut self, waker: Option<&Waker>) -> Took<N>
    where
        N: Clone,
    {
        // A position known published, or its next one stamped: claimed without `take_slow`.
        if (self.next < self.avail || self.refresh()) && self.skips.is_empty() {
            let position = self.next;
            if let Ok(v) = self.claim(position) {
                return Took::Value(v);
            }
        }
        self.take_slow(waker)
    }

    /// Claims `position` and clones its value; on failure, the cursor a poster moved it to.
    #[inline]
    fn claim(&mut self, position: u64) -> Result<N, u64>
    where
        N: Clone,
    {
        let cursor = &self.member.cursor;
        // Announced before the claim (module docs, "Memory orderings").
        cursor.cloning.store(position, Ordering::Release);
        if let Err(now) = cursor.next.compare_exchange(
            position,
            position + 1,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            cursor.cloning.store(NOT_CLONING, Ordering::Release);
            return Err(now);
        }
        self.next = position + 1;
        /// Ends the clone even if `clone` panics (the value then counts as received).
        struct Done<'a>(&'a AtomicU64);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.store(NOT_CLONING, Ordering::Release);
            }
        }
        let done = Done(&cursor.cloning);
        // SAFETY: the slot holds the value of `position` (published: its stamp loaded with
        // acquire), and no poster overwrites it while our `cloning` word shows it: a poster
        // that moved our cursor past it watches us (module docs, "The claim").
        // Shared references from several receivers are fine: `N: Sync`.
        let value = unsafe { self.ring.slot(position).clone_out() };
        drop(done);
        if self.member.retired.load(Ordering::Acquire) {
            self.member.settle();
        }
        Ok(value)
    }

    #[inline(never)]
    fn take_slow(&mut self, waker: Option<&Waker>) -> Took<N>
    where
        N: Clone,
    {
        loop {
            if self.next >= self.avail && !self.refresh() {
                if self.next >= self.end {
                    self.finish();
                    return Took::Closed;
                }
                let now = self.member.cursor.next.load(Ordering::Acquire);
                if now != self.next {
                    if let Some(t) = self.moved(self.next, now) {
                        return t;
                    }
                    continue;
                }
                match waker {
                    Some(w) if self.yielded < self.ring.yields() => {
                        self.yielded += 1;
                        w.wake_by_ref();
                        return Took::Empty;
                    }
                    Some(w) if self.park(w) => continue,
                    _ => return Took::Empty,
                }
            }
            let position = self.next;
            if self.skips.take_at(position) {
                // Not its own: claim it without reading the slot.
                match self.member.cursor.next.compare_exchange(
                    position,
                    position + 1,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => self.next = position + 1,
                    Err(now) => {
                        // An eviction moved past it; the skip is consumed already, so it is
                        // not counted as lost (`moved` counts from the next position).
                        if let Some(t) = self.moved(position + 1, now) {
                            return t;
                        }
                    }
                }
                continue;
            }
            match self.claim(position) {
                Ok(v) => return Took::Value(v),
                Err(now) => {
                    if let Some(t) = self.moved(position, now) {
                        return t;
                    }
                }
            }
        }
    }

    /// A poster moved the cursor from `from` to `now` (evictions).
    fn moved(&mut self, from: u64, now: u64) -> Option<Took<N>> {
        self.skips.refresh(&self.member.skips, self.next);
        let lost = now.saturating_sub(from) - self.skips.take_below(from, now);
        self.next = now;
        (lost != 0 && self.report_lag).then_some(Took::Lagged(lost))
    }

    /// Whether its next position is published (its stamp), and whether it left; true if
    /// there is something to claim, and then it yields again before it next parks. The
    /// `tail` is not loaded (module docs, "Reading without the tail"). The member's `end` and
    /// skips are loaded after the stamp.
    #[inline]
    fn refresh(&mut self) -> bool {
        let published = self.next + u64::from(self.ring.published(self.next));
        if self.end == OPEN {
            self.end = self.member.end.load(Ordering::Acquire);
        }
        self.avail = published.min(self.end);
        self.skips.refresh(&self.member.skips, self.next);
        let found = self.next < self.avail;
        if found {
            self.yielded = 0;
        }
        found
    }

    /// Registers `waker`, then checks again under the ring's lock and parks if nothing
    /// arrived. True if something did: a post, an eviction, or leaving.
    fn park(&mut self, waker: &Waker) -> bool {
        self.member.parking.register(waker);
        {
            let _st = self.ring.state.lock();
            let cursor = self.member.cursor.next.load(Ordering::Acquire);
            let tail = self.ring.tail.load(Ordering::Acquire);
            let end = self.member.end.load(Ordering::Acquire);
            if cursor == self.next && tail <= self.next && end == OPEN {
                self.member.parking.park(&self.ring.parked);
                return false;
            }
        }
        self.refresh();
        true
    }

    /// It has taken everything it had: out of the ring.
    fn finish(&mut self) {
        if !self.removed {
            self.removed = true;
            self.ring.remove(&self.member);
        }
    }
}

impl<N> Drop for ValueReader<N> {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(all(test, not(herald_loom)))]
mod tests {
    use super::*;
    use crate::hub::ring::script::{self, strings};
    use std::sync::atomic::AtomicUsize as StdAtomicUsize;

    /// Counts live values, so tests can check that the ring frees what it holds.
    #[derive(Debug)]
    struct Tracked {
        seq: u64,
        live: Arc<StdAtomicUsize>,
    }

    impl Clone for Tracked {
        fn clone(&self) -> Self {
            self.live.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Tracked {
                seq: self.seq,
                live: self.live.clone(),
            }
        }
    }

    impl Drop for Tracked {
        fn drop(&mut self) {
            self.live.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    struct Fixture {
        live: Arc<StdAtomicUsize>,
        generation: u64,
        ids: Arc<StdAtomicU64>,
    }

    impl Fixture {
        fn new() -> Self {
            Fixture {
                live: Arc::default(),
                generation: 0,
                ids: Arc::default(),
            }
        }
        fn ring(&self, capacity: usize) -> Arc<ValueRing<Tracked>> {
            Arc::new(ValueRing::new(capacity, 0, self.ids.clone()))
        }
        fn join(
            &mut self,
            ring: &Arc<ValueRing<Tracked>>,
            report_lag: bool,
        ) -> ValueReader<Tracked> {
            self.generation += 1;
            let member = Arc::new(Member::new());
            ring.join(&member, self.generation);
            ValueReader::new(ring.clone(), member, report_lag)
        }
        fn value(&self, seq: u64) -> Tracked {
            self.live.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Tracked {
                seq,
                live: self.live.clone(),
            }
        }
        fn post(&self, ring: &ValueRing<Tracked>, seq: u64) -> Posted {
            ring.post(self.value(seq), self.generation)
        }
        fn live(&self) -> usize {
            self.live.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    fn drain(reader: &mut ValueReader<Tracked>) -> Vec<String> {
        script::drain(|| reader.take(None), |v| v.seq)
    }

    #[test]
    fn every_member_gets_each_value_in_order() {
        let mut f = Fixture::new();
        let ring = f.ring(4);
        let mut a = f.join(&ring, true);
        let mut b = f.join(&ring, true);
        for i in 0..3 {
            let posted = f.post(&ring, i);
            assert_eq!((posted.received, posted.dropped), (2, 0));
        }
        assert_eq!(drain(&mut a), strings(&["0", "1", "2"]));
        assert_eq!(drain(&mut b), strings(&["0", "1", "2"]));
        assert_eq!(f.live(), 3, "the ring keeps its own copy until overwritten");
    }

    /// The example, on a value ring: capacity 8, 20 received, 21..32 posted: the
    /// newest 8 survive.
    #[test]
    fn drop_oldest_keeps_the_newest_values() {
        let mut f = Fixture::new();
        let ring = f.ring(8);
        let mut r = f.join(&ring, true);
        for i in 0..=20 {
            f.post(&ring, i);
            assert!(matches!(r.take(None), Took::Value(v) if v.seq == i));
        }
        let mut dropped = 0;
        for i in 21..=32 {
            dropped += f.post(&ring, i).dropped;
        }
        assert_eq!(dropped, 4);
        assert_eq!(
            drain(&mut r),
            strings(&["lag 4", "25", "26", "27", "28", "29", "30", "31", "32"])
        );
        let stats = ring.stats(&r.member, ObserverId::next());
        assert_eq!((stats.delivered, stats.dropped, stats.depth), (29, 4, 0));
    }

    #[test]
    fn latest_only_loses_silently() {
        let mut f = Fixture::new();
        let ring = f.ring(1);
        let mut r = f.join(&ring, false);
        for i in 0..5 {
            f.post(&ring, i);
        }
        assert_eq!(drain(&mut r), strings(&["4"]));
        assert_eq!(ring.stats(&r.member, ObserverId::next()).dropped, 4);
    }

    #[test]
    fn leaving_keeps_what_was_not_taken_then_closes() {
        let mut f = Fixture::new();
        let ring = f.ring(4);
        let mut r = f.join(&ring, true);
        f.post(&ring, 0);
        f.post(&ring, 1);
        ring.leave(&r.member);
        assert!(r.is_closed());
        assert_eq!(f.post(&ring, 2).received, 0, "no post after leaving");
        assert_eq!(drain(&mut r), strings(&["0", "1", "closed"]));
        assert_eq!(
            ring.state.lock().members.len(),
            0,
            "out of the ring once drained"
        );
    }

    #[test]
    fn a_member_that_left_still_loses_its_oldest_to_later_posts() {
        let mut f = Fixture::new();
        let ring = f.ring(2);
        let mut stays = f.join(&ring, true);
        let mut left = f.join(&ring, true);
        f.post(&ring, 0);
        f.post(&ring, 1);
        ring.leave(&left.member);
        f.post(&ring, 2);
        assert_eq!(drain(&mut left), strings(&["lag 1", "1", "closed"]));
        f.post(&ring, 3);
        f.post(&ring, 4);
        assert_eq!(drain(&mut stays), strings(&["lag 3", "3", "4"]));
    }

    #[test]
    fn a_member_that_left_is_dropped_from_the_ring_once_evicted_past_its_end() {
        let mut f = Fixture::new();
        let ring = f.ring(2);
        let _stays = f.join(&ring, true);
        let left = f.join(&ring, true);
        f.post(&ring, 0);
        ring.leave(&left.member);
        for i in 1..4 {
            f.post(&ring, i);
        }
        assert_eq!(ring.state.lock().members.len(), 1);
    }

    #[test]
    fn posts_made_before_a_join_skip_the_new_member() {
        let mut f = Fixture::new();
        let ring = f.ring(4);
        let mut old = f.join(&ring, true);
        let old_gen = f.generation;
        let mut new = f.join(&ring, true);
        // A post with the snapshot from before `new` joined.
        let posted = ring.post(f.value(7), old_gen);
        assert_eq!(posted.received, 1);
        f.post(&ring, 8);
        assert_eq!(drain(&mut old), strings(&["7", "8"]));
        assert_eq!(drain(&mut new), strings(&["8"]));
        let stats = ring.stats(&new.member, ObserverId::next());
        assert_eq!((stats.delivered, stats.dropped), (1, 0));
    }

    #[test]
    fn skipped_positions_are_not_counted_as_lost() {
        let mut f = Fixture::new();
        let ring = f.ring(2);
        let _old = f.join(&ring, true);
        let old_gen = f.generation;
        let mut new = f.join(&ring, true);
        ring.post(f.value(0), old_gen);
        for i in 1..5 {
            f.post(&ring, i);
        }
        assert_eq!(drain(&mut new), strings(&["lag 2", "3", "4"]));
        assert_eq!(ring.stats(&new.member, ObserverId::next()).dropped, 2);
    }

    #[test]
    fn dropping_the_ring_drops_what_it_holds() {
        let mut f = Fixture::new();
        {
            let ring = f.ring(3);
            let r = f.join(&ring, true);
            for i in 0..10 {
                f.post(&ring, i);
            }
            drop(r);
            assert_eq!(
                ring.state.lock().members.len(),
                0,
                "a dropped reader leaves"
            );
        }
        assert_eq!(f.live(), 0);
    }

    #[test]
    fn a_panicking_clone_ends_the_claim() {
        #[derive(Debug)]
        struct Boom(bool);
        impl Clone for Boom {
            fn clone(&self) -> Self {
                assert!(!self.0, "boom");
                Boom(self.0)
            }
        }
        let ring = Arc::new(ValueRing::new(2, 0, Arc::default()));
        let member = Arc::new(Member::new());
        ring.join(&member, 1);
        let mut r = ValueReader::new(ring.clone(), member, true);
        ring.post(Boom(true), 1);
        ring.post(Boom(false), 1);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| r.take(None)));
        assert!(caught.is_err());
        assert!(matches!(r.take(None), Took::Value(Boom(false))));
        for _ in 0..4 {
            ring.post(Boom(false), 1);
        }
        assert!(matches!(r.take(None), Took::Lagged(2)));
    }

    #[test]
    fn racing_posters_and_receivers_account_exactly() {
        let mut f = Fixture::new();
        let ring = f.ring(4);
        let readers: Vec<_> = (0..3).map(|_| f.join(&ring, true)).collect();
        let generation = f.generation;
        let total = 20_000u64;
        let counts: Vec<(u64, u64)> = std::thread::scope(|s| {
            let handles: Vec<_> = readers
                .into_iter()
                .map(|mut r| {
                    s.spawn(move || {
                        let (mut got, mut lagged, mut last) = (0u64, 0u64, None::<u64>);
                        loop {
                            match r.take(None) {
                                Took::Value(v) => {
                                    assert!(last.is_none_or(|l| v.seq > l), "in order");
                                    last = Some(v.seq);
                                    got += 1;
                                    if v.seq == total - 1 {
                                        return (got, lagged);
                                    }
                                }
                                Took::Lagged(n) => lagged += n,
                                Took::Closed => unreachable!(),
                                Took::Empty => std::thread::yield_now(),
                            }
                        }
                    })
                })
                .collect();
            let live = f.live.clone();
            for i in 0..total {
                live.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                ring.post(
                    Tracked {
                        seq: i,
                        live: live.clone(),
                    },
                    generation,
                );
            }
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (got, lagged) in counts {
            assert_eq!(got + lagged, total, "every value received or lost, once");
        }
    }
}
