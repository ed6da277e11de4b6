//! Memory for a notification type's entries, handed out in address order.
//!
//! A post walks its snapshot and calls each entry, and each call first loads the entry's
//! header. With every entry a separate heap allocation, the entries of one type lie wherever
//! the allocator had room when each was subscribed, among everything else the program
//! allocated in between (snapshot arrays, the observers' own state), and at a few hundred
//! observers a post's loop waits on those scattered lines: the hardware prefetcher cannot
//! guess the next one. A [`Slab`] gives a type's entries consecutive slots (32 or 64 bytes) out
//! of chunks of its own, so entries subscribed one after the other are neighbours in memory, in
//! the order a post visits them, and the prefetcher streams them. Measured with
//! `benches/dispatch.rs` (`inline/1->256`), see the CHANGELOG.
//!
//! An entry larger than the largest slot, or aligned more strictly, is boxed as before
//! ([`Slab::put`] hands the value back). A freed slot is reused by the next entry; chunks are
//! freed with the slab. The type's subscriber list owns the slab, and an entry on its way in
//! or retired (`rcu::Owned`) holds an `Arc` of it, so the chunks outlive every entry in them;
//! an entry in the list holds nothing (when it leaves, the list finds it in its slab with
//! [`Slab::owns`], a look at each chunk's range).
//!
//! Only subscribe and the free after a grace period take the slab's lock; posts never touch
//! the slab itself, only the entries in it.

// Slots are raw memory: `put` writes a value into one, `free` takes it back.
#![allow(unsafe_code)]

use std::alloc::{Layout, alloc, dealloc, handle_alloc_error};
use std::mem::{align_of, size_of};
use std::ptr::NonNull;

use parking_lot::Mutex;

/// The slot sizes, smallest first: a value goes in the smallest slot that fits its size and
/// alignment (a slot is aligned to its size). 32 bytes hold an entry with one captured pointer,
/// two to a cache line; 64 bytes one with up to five.
const SLOTS: [usize; 2] = [32, 64];

/// A chunk's alignment: a cache line.
const CHUNK_ALIGN: usize = 64;
/// The first chunk's bytes; each further chunk of a slot size doubles, up to [`MAX_CHUNK`].
const FIRST_CHUNK: usize = 256;
/// The largest chunk's bytes.
const MAX_CHUNK: usize = 4096;

/// Slots for one type's entries. See the module docs.
pub(crate) struct Slab {
    state: Mutex<[Class; SLOTS.len()]>,
}

/// The slots of one size.
struct Class {
    /// Every chunk, with its size in bytes; the last one is being filled.
    chunks: Vec<(NonNull<u8>, usize)>,
    /// Bytes of the last chunk handed out so far.
    used: usize,
    /// Freed slots, the most recently freed last.
    free: Vec<NonNull<u8>>,
}

// SAFETY: a class holds raw pointers to memory the slab owns; it is only reached under the
// slab's lock, and what lives in the slots is owned (and sent or shared) by its owner.
unsafe impl Send for Class {}

impl Default for Slab {
    fn default() -> Self {
        Slab {
            state: Mutex::new(std::array::from_fn(|_| Class {
                chunks: Vec::new(),
                used: 0,
                free: Vec::new(),
            })),
        }
    }
}

/// The slot size a value of this size and alignment goes in, by index into [`SLOTS`].
const fn class_of(size: usize, align: usize) -> Option<usize> {
    if size == 0 {
        return None;
    }
    let mut class = 0;
    while class < SLOTS.len() {
        if size <= SLOTS[class] && align <= SLOTS[class] {
            return Some(class);
        }
        class += 1;
    }
    None
}

impl Slab {
    /// Moves `value` into a slot of its own and hands back where it lives: the caller owns it
    /// there (drops it in place, then [`free`](Self::free)s the slot), or leaks it. A value
    /// that fits no slot (or takes no room) comes back as `Err`.
    pub(crate) fn put<V>(&self, value: V) -> Result<NonNull<V>, V> {
        let Some(class) = class_of(size_of::<V>(), align_of::<V>()) else {
            return Err(value);
        };
        let at = self.slot(class).cast::<V>();
        // SAFETY: the slot is unused, and `V` fits its size and alignment (`class_of`).
        unsafe { at.as_ptr().write(value) };
        Ok(at)
    }

    /// Gives a slot back.
    ///
    /// # Safety
    /// `at` came from [`put`](Self::put) on this slab of a value of `size` bytes aligned to
    /// `align`, that value was dropped (or moved out), and nothing uses the slot any more.
    pub(crate) unsafe fn free<V: ?Sized>(&self, at: NonNull<V>, size: usize, align: usize) {
        let Some(class) = class_of(size, align) else {
            unreachable!("`put` hands out slots only for values that fit one")
        };
        self.state.lock()[class].free.push(at.cast::<u8>());
    }

    /// Whether `at` lies in one of this slab's chunks (so it came from [`put`](Self::put)
    /// here; anything else is not the slab's).
    pub(crate) fn owns<V: ?Sized>(&self, at: NonNull<V>) -> bool {
        let at = at.cast::<u8>().as_ptr() as usize;
        self.state.lock().iter().any(|c| {
            c.chunks.iter().any(|&(chunk, len)| {
                let start = chunk.as_ptr() as usize;
                (start..start + len).contains(&at)
            })
        })
    }

    /// An unused slot of a class: the most recently freed one, else the next of the last
    /// chunk, else the first of a new chunk.
    fn slot(&self, class: usize) -> NonNull<u8> {
        let slot = SLOTS[class];
        let mut state = self.state.lock();
        let c = &mut state[class];
        if let Some(at) = c.free.pop() {
            return at;
        }
        if let Some(&(chunk, len)) = c.chunks.last()
            && c.used < len
        {
            // SAFETY: `used + slot <= len`: inside the chunk's allocation (chunks are whole
            // slots).
            let at = unsafe { chunk.add(c.used) };
            c.used += slot;
            return at;
        }
        let len = c
            .chunks
            .last()
            .map_or(FIRST_CHUNK, |&(_, len)| (2 * len).min(MAX_CHUNK));
        let layout = chunk_layout(len);
        // SAFETY: the layout is not zero-sized.
        let chunk =
            NonNull::new(unsafe { alloc(layout) }).unwrap_or_else(|| handle_alloc_error(layout));
        c.chunks.push((chunk, len));
        c.used = slot;
        chunk
    }

    /// Bytes of chunks the slab holds.
    #[cfg(all(test, not(herald_loom)))]
    fn bytes(&self) -> usize {
        self.state
            .lock()
            .iter()
            .flat_map(|c| c.chunks.iter().map(|&(_, len)| len))
            .sum()
    }
}

fn chunk_layout(len: usize) -> Layout {
    // A chunk is at most `MAX_CHUNK` bytes, a power of two, like its alignment.
    Layout::from_size_align(len, CHUNK_ALIGN).unwrap_or_else(|_| unreachable!("at most 4 KiB"))
}

impl Drop for Slab {
    fn drop(&mut self) {
        for c in self.state.get_mut() {
            for &(chunk, len) in &c.chunks {
                // SAFETY: allocated in `slot` with this layout; every value in it is gone
                // (each kept the slab alive).
                unsafe { dealloc(chunk.as_ptr(), chunk_layout(len)) };
            }
        }
    }
}

#[cfg(all(test, not(herald_loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts its drops; 40 bytes, so it takes a 64-byte slot.
    struct Counted(Arc<AtomicUsize>, #[allow(dead_code)] [u64; 4]);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn put<V>(slab: &Slab, value: V) -> NonNull<V> {
        match slab.put(value) {
            Ok(at) => at,
            Err(_) => panic!("the value fits a slot"),
        }
    }

    fn drop_and_free<V>(slab: &Slab, at: NonNull<V>) {
        // SAFETY: `at` came from `put` on `slab`, and is dropped once, here.
        unsafe {
            at.as_ptr().drop_in_place();
            slab.free(at, size_of::<V>(), align_of::<V>());
        }
    }

    #[test]
    fn values_put_one_after_another_are_neighbours() {
        let slab = Slab::default();
        let small: Vec<_> = (0..8u64).map(|i| put(&slab, [i; 3])).collect();
        let large: Vec<_> = (0..4u64).map(|i| put(&slab, [i; 5])).collect();
        for pair in small.windows(2) {
            assert_eq!(pair[1].as_ptr() as usize - pair[0].as_ptr() as usize, 32);
        }
        for pair in large.windows(2) {
            assert_eq!(pair[1].as_ptr() as usize - pair[0].as_ptr() as usize, 64);
        }
        for (i, p) in small.iter().enumerate() {
            // SAFETY: written by `put`, not freed.
            assert_eq!(unsafe { p.as_ptr().read() }, [i as u64; 3]);
        }
        for (i, p) in large.iter().enumerate() {
            // SAFETY: as above.
            assert_eq!(unsafe { p.as_ptr().read() }, [i as u64; 5]);
        }
        small.into_iter().for_each(|p| drop_and_free(&slab, p));
        large.into_iter().for_each(|p| drop_and_free(&slab, p));
    }

    #[test]
    fn a_freed_slot_is_reused_before_a_new_one() {
        let slab = Slab::default();
        let a = put(&slab, 1u64);
        let b = put(&slab, 2u64);
        drop_and_free(&slab, a);
        let c = put(&slab, 3u64);
        assert_eq!(c, a);
        drop_and_free(&slab, b);
        drop_and_free(&slab, c);
    }

    #[test]
    fn chunks_double_up_to_the_largest_and_every_value_is_dropped_once() {
        let slab = Slab::default();
        let n = 1000;
        let live = Arc::new(AtomicUsize::new(0));
        let at: Vec<_> = (0..n)
            .map(|_| put(&slab, Counted(live.clone(), [0; 4])))
            .collect();
        // 4 + 8 + 16 + 32 + 64 * 15 slots of 64 bytes hold 1000 values.
        assert_eq!(slab.bytes(), (4 + 8 + 16 + 32 + 64 * 15) * 64);
        for p in at {
            drop_and_free(&slab, p);
        }
        assert_eq!(live.load(Ordering::Relaxed), n);
    }

    #[test]
    fn what_fits_no_slot_comes_back() {
        let slab = Slab::default();
        assert_eq!(slab.put([7u8; 65]).err(), Some([7u8; 65]));
        #[repr(align(128))]
        #[derive(Debug, PartialEq)]
        struct Wide(u8);
        assert_eq!(slab.put(Wide(3)).err(), Some(Wide(3)));
        assert!(slab.put(()).is_err());
        assert_eq!(slab.bytes(), 0);
    }

    #[test]
    fn a_value_aligned_beyond_32_bytes_takes_a_64_byte_slot() {
        #[repr(align(64))]
        struct Aligned(#[allow(dead_code)] u8);
        let slab = Slab::default();
        let a = put(&slab, Aligned(1));
        let b = put(&slab, Aligned(2));
        assert_eq!(a.as_ptr() as usize % 64, 0);
        assert_eq!(b.as_ptr() as usize - a.as_ptr() as usize, 64);
        drop_and_free(&slab, a);
        drop_and_free(&slab, b);
    }
}
