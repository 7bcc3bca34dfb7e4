//! A fixed-size-block memory pool for the engine's per-tick scratch memory: the order
//! intents and the encoded order messages come out of pre-allocated blocks and go back
//! to them, recycled, instead of going to the global allocator every tick.
//!
//! [`Pool`] has a few *size classes* (by default [`ENGINE_CLASSES`]: 64, 256 and 1024
//! bytes). Each class owns one contiguous region of equal blocks, all carved out of one
//! big allocation made (and touched once, so that its pages are resident) by
//! [`Pool::new`], and keeps its free blocks in an intrusive LIFO free list: a free block's
//! first word points to the next free block. `&Pool` implements allocator-api2's
//! [`Allocator`], so `Vec<T, &Pool>` and `Box<T, &Pool>` use it like any other scratch
//! allocator.
//!
//! - **Allocates only at construction.** [`Allocator::allocate`] pops a block off the
//!   free list of the smallest class that fits the layout (size *and* alignment: a block
//!   of `n` bytes is aligned to `n`); [`Allocator::deallocate`] pushes it back onto the
//!   list of the class whose region holds the address. Both are a few loads and stores.
//! - **Exhaustion is visible, never silent.** When the smallest fitting class has no free
//!   block, or the layout is larger (or more aligned) than the largest class, the request
//!   goes to the global allocator and is counted in [`Pool::fallbacks`]; deallocation
//!   recognises such a block (its address is outside every region) and frees it
//!   globally. Per class, [`Pool::stats`] reports the blocks in use and the high-water
//!   mark, so a pool that is too small shows up in the run summary.
//! - **Never blocks**: no lock, no system call (the fallback path does whatever the global
//!   allocator does).
//! - **Single thread.** The counters and free lists are `Cell`s: a pool is `Send` but not
//!   `Sync`, it belongs to the engine's hot thread.
//!
//! ```
//! use allocator_api2::{boxed::Box, vec::Vec};
//! use common::pool::Pool;
//!
//! let pool = Pool::new(&[(64, 4), (256, 2)]);
//! let mut v: Vec<u64, &Pool> = Vec::with_capacity_in(6, &pool); // 48 bytes: a 64-byte block
//! v.extend([1, 2, 3]);
//! let msg = Box::new_in([7u8; 200], &pool); // a 256-byte block
//! assert_eq!(pool.in_use(), 2);
//! drop((v, msg));
//! assert_eq!(pool.in_use(), 0);
//! let big = Box::new_in([0u8; 4096], &pool); // larger than every class: the global heap
//! assert_eq!(pool.fallbacks(), 1);
//! drop(big);
//! assert_eq!(pool.stats().classes[0].high_water, 1);
//! ```

use allocator_api2::alloc::{AllocError, Allocator, Global};
use serde::{Deserialize, Serialize};
use std::alloc::Layout;
use std::cell::Cell;
use std::ptr::{self, NonNull};

/// The engine's size classes, bytes. What the engine asks for: a `Vec` of `2 × levels`
/// 24-byte order intents (144 bytes at the default 3 levels, up to 768 at 16) and, per
/// order, a 208-byte body buffer and a 240-byte message buffer. The 64-byte class takes
/// the odd small request (a single level's intents, 48 bytes).
pub const ENGINE_CLASSES: [usize; 3] = [64, 256, 1024];

/// The smallest block: it must hold the free-list link.
pub const MIN_BLOCK: usize = size_of::<Option<NonNull<u8>>>();

/// The largest block (and so the largest region alignment).
pub const MAX_BLOCK: usize = 1 << 20;

/// A free block's first word: the next free block of its class, if any.
type Link = Option<NonNull<u8>>;

/// One size class: a contiguous region of `blocks` blocks of `block` bytes.
struct Class {
    /// Block size and alignment, bytes (a power of two).
    block: usize,
    /// Blocks in the region.
    blocks: usize,
    /// Address of the first block.
    start: usize,
    /// Address one past the last block.
    end: usize,
    /// Head of the intrusive free list.
    free: Cell<Link>,
    /// Blocks handed out and not yet returned.
    in_use: Cell<usize>,
    /// Most blocks in use at once.
    high_water: Cell<usize>,
}

impl Class {
    /// Whether `addr` lies in this class's region.
    #[inline(always)]
    fn owns(&self, addr: usize) -> bool {
        self.start <= addr && addr < self.end
    }

    /// Takes a free block, if there is one.
    #[inline(always)]
    fn pop(&self) -> Option<NonNull<u8>> {
        let head = self.free.get()?;
        // SAFETY: [1] every pointer on the free list is a block of this class's region
        // (put there by `Pool::new` or `push`), derived from the pool's base pointer and
        // so valid for reads of the block; [2] a free block's first word holds the link
        // that `Pool::new` or `push` wrote, and nobody else writes a free block; [3] the
        // block is aligned to `self.block >= MIN_BLOCK >= align_of::<Link>()`.
        let next = unsafe { head.cast::<Link>().read() };
        self.free.set(next);
        let n = self.in_use.get() + 1;
        self.in_use.set(n);
        if n > self.high_water.get() {
            self.high_water.set(n);
        }
        Some(head)
    }

    /// Returns a block to the free list.
    ///
    /// # Safety
    ///
    /// [1] `block` is a block of this class's region that `pop` handed out and that is
    /// not on the free list; [2] nothing uses its memory any more; [3] it carries the
    /// provenance `pop` gave it (or one derived from it), so it may be written.
    #[inline(always)]
    unsafe fn push(&self, block: NonNull<u8>) {
        debug_assert!(self.owns(block.addr().get()), "block outside the class");
        debug_assert_eq!(
            (block.addr().get() - self.start) % self.block,
            0,
            "pointer is not the start of a block"
        );
        debug_assert!(
            self.in_use.get() > 0,
            "more blocks returned than handed out"
        );
        // SAFETY: by [1] and [3] the block is writable and aligned for a `Link` (see
        // `pop`); by [2] overwriting its first word destroys nothing in use.
        unsafe { block.cast::<Link>().write(self.free.get()) };
        self.free.set(Some(block));
        self.in_use.set(self.in_use.get() - 1);
    }
}

/// A single-threaded pool of fixed-size blocks in a few size classes; see the
/// [module documentation](self).
pub struct Pool {
    /// Start of the one region that holds every class (dangling if it is empty).
    base: NonNull<u8>,
    /// Layout of that region; size 0 if no class has a block.
    layout: Layout,
    /// Size classes, smallest first.
    classes: Box<[Class]>,
    /// Requests served by the global allocator.
    fallbacks: Cell<u64>,
    /// Blocks from the global allocator not yet returned.
    fallbacks_in_use: Cell<u64>,
}

// SAFETY: a `Pool` exclusively owns its region and its free lists (raw pointers into
// that region), so moving it to another thread moves all of it; blocks handed out as
// `&Pool` allocations borrow the pool and cannot outlive a move. It is not `Sync`: the
// `Cell`s allow only one thread to use it at a time.
unsafe impl Send for Pool {}

impl Pool {
    /// A pool with the given `(block bytes, blocks)` size classes, block sizes powers of
    /// two from [`MIN_BLOCK`] to [`MAX_BLOCK`] in increasing order. Makes one allocation
    /// for all the blocks and writes every byte of it once, so that its pages are
    /// resident before the first tick. A class may have 0 blocks (everything of that
    /// size then falls back to the global allocator).
    ///
    /// # Panics
    ///
    /// If the classes are empty, not increasing, not powers of two in range, or if the
    /// pool would exceed the address space.
    pub fn new(classes: &[(usize, usize)]) -> Pool {
        assert!(!classes.is_empty(), "a pool needs at least one size class");
        let mut offset = 0usize;
        let mut prev = 0usize;
        let mut specs = Vec::with_capacity(classes.len());
        for &(block, _) in classes {
            assert!(
                block.is_power_of_two() && (MIN_BLOCK..=MAX_BLOCK).contains(&block),
                "block size {block} is not a power of two from {MIN_BLOCK} to {MAX_BLOCK}"
            );
            assert!(
                block > prev,
                "size classes must increase, got {block} after {prev}"
            );
            prev = block;
        }
        // Regions largest block first: each then starts at a multiple of its block size
        // (the base is aligned to the largest block), so every block is aligned to its
        // size with no padding between regions.
        for &(block, blocks) in classes.iter().rev() {
            let start = offset.checked_next_multiple_of(block);
            let end = start.and_then(|s| s.checked_add(block.checked_mul(blocks)?));
            let (Some(start), Some(end)) = (start, end) else {
                panic!("pool size overflows");
            };
            specs.push((block, blocks, start));
            offset = end;
        }
        specs.reverse();
        let layout = Layout::from_size_align(offset, prev).expect("pool too large");
        let base = if layout.size() == 0 {
            NonNull::<u8>::dangling()
        } else {
            // SAFETY: the layout's size is not zero.
            let p = unsafe { std::alloc::alloc(layout) };
            let Some(p) = NonNull::new(p) else {
                std::alloc::handle_alloc_error(layout)
            };
            // SAFETY: `p` was just allocated with `layout.size()` bytes. Writing them all
            // faults the pages in now rather than on the hot path.
            unsafe { p.as_ptr().write_bytes(0, layout.size()) };
            p
        };
        let classes: Box<[Class]> = specs
            .into_iter()
            .map(|(block, blocks, offset)| {
                let start = base.addr().get() + offset;
                let class = Class {
                    block,
                    blocks,
                    start,
                    end: start + block * blocks,
                    free: Cell::new(None),
                    in_use: Cell::new(0),
                    high_water: Cell::new(0),
                };
                // Link the blocks lowest address first: push them highest first.
                for i in (0..blocks).rev() {
                    // SAFETY: `offset + i * block` is inside the region (which ends at
                    // `offset + blocks * block <= layout.size()`), so the pointer is in
                    // bounds of the allocation and keeps `base`'s provenance.
                    let b = unsafe { base.add(offset + i * block) };
                    // SAFETY: the block is fresh memory of this class, aligned to `block
                    // >= MIN_BLOCK`, and not on the list yet.
                    unsafe { b.cast::<Link>().write(class.free.get()) };
                    class.free.set(Some(b));
                }
                class
            })
            .collect();
        Pool {
            base,
            layout,
            classes,
            fallbacks: Cell::new(0),
            fallbacks_in_use: Cell::new(0),
        }
    }

    /// A pool with [`ENGINE_CLASSES`] and `blocks` blocks in each class.
    pub fn engine(blocks: usize) -> Pool {
        Pool::new(&ENGINE_CLASSES.map(|b| (b, blocks)))
    }

    /// Requests served by the global allocator because their class was empty or they fit
    /// no class (0 if the pool was large enough).
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.get()
    }

    /// Bytes reserved for all the blocks (the one allocation made at construction).
    pub fn region_bytes(&self) -> usize {
        self.layout.size()
    }

    /// Pool blocks handed out and not yet returned, over all classes (fallback blocks
    /// are not included; see [`PoolStats::fallbacks_in_use`]).
    pub fn in_use(&self) -> usize {
        self.classes.iter().map(|c| c.in_use.get()).sum()
    }

    /// Counters of every class. Allocates the result: call it off the hot path.
    pub fn stats(&self) -> PoolStats {
        PoolStats {
            region_bytes: self.layout.size() as u64,
            fallbacks: self.fallbacks.get(),
            fallbacks_in_use: self.fallbacks_in_use.get(),
            classes: self
                .classes
                .iter()
                .map(|c| ClassStats {
                    block_bytes: c.block as u64,
                    blocks: c.blocks as u64,
                    in_use: c.in_use.get() as u64,
                    high_water: c.high_water.get() as u64,
                })
                .collect(),
        }
    }

    /// The class whose region holds `ptr`, if any.
    #[inline(always)]
    fn class_of(&self, ptr: NonNull<u8>) -> Option<&Class> {
        let addr = ptr.addr().get();
        let base = self.base.addr().get();
        if addr < base || addr - base >= self.layout.size() {
            return None;
        }
        self.classes.iter().find(|c| c.owns(addr))
    }

    /// Serves `layout` from the global allocator and counts it.
    #[cold]
    #[inline(never)]
    fn fall_back(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let p = Global.allocate(layout)?;
        self.fallbacks.set(self.fallbacks.get() + 1);
        self.fallbacks_in_use.set(self.fallbacks_in_use.get() + 1);
        Ok(p)
    }

    /// Moves a block to a new one of `new` layout, copying `len` bytes.
    ///
    /// # Safety
    ///
    /// `ptr` is currently allocated by this pool with a layout `old` fits, and `len` is at
    /// most both `old.size()` and `new.size()`.
    unsafe fn relocate(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
        len: usize,
    ) -> Result<NonNull<[u8]>, AllocError> {
        debug_assert!(len <= old.size() && len <= new.size());
        let to = self.allocate(new)?;
        // SAFETY: [1] the old block is valid for reads of `old.size() >= len` bytes and
        // the new one for writes of `new.size() >= len`; [2] the new block was just
        // handed out while the old one is still allocated, so they do not overlap;
        // [3] the caller's contract is `deallocate`'s.
        unsafe {
            ptr::copy_nonoverlapping(ptr.as_ptr(), to.cast::<u8>().as_ptr(), len);
            self.deallocate(ptr, old);
        }
        Ok(to)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if self.layout.size() != 0 {
            // SAFETY: `base` was allocated in `new` with exactly this layout. Blocks
            // handed out borrow the pool (or own it), so none is in use any more.
            unsafe { std::alloc::dealloc(self.base.as_ptr(), self.layout) };
        }
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("region_bytes", &self.region_bytes())
            .field("in_use", &self.in_use())
            .field("fallbacks", &self.fallbacks())
            .finish_non_exhaustive()
    }
}

/// The smallest class a block for `layout` must come from: its size and alignment both
/// fit the block (blocks are aligned to their size).
#[inline(always)]
fn need(layout: Layout) -> usize {
    layout.size().max(layout.align())
}

/// A well-aligned dangling pointer for a zero-sized `layout`: its address is the
/// alignment, never inside a region, and it has no provenance (it is never dereferenced).
#[inline(always)]
fn dangling(layout: Layout) -> NonNull<u8> {
    NonNull::new(ptr::without_provenance_mut(layout.align())).unwrap_or(NonNull::dangling())
}

// SAFETY: [1] `allocate` hands out either a block that is on no free list and belongs to
// nobody else until `deallocate` puts it back, or a fresh global allocation; both stay
// valid until they are deallocated or the pool is dropped, and the pool cannot be
// dropped (or moved) while `&Pool` copies exist. [2] Copies of `&Pool` are the same
// pool. [3] `deallocate`, `grow` and `shrink` accept any block currently allocated by
// this pool: pool blocks are found by address, the others go to the global allocator
// with the layout that allocated them; zero-sized blocks are dangling pointers that
// need no freeing, as with `Global`.
unsafe impl Allocator for Pool {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if layout.size() == 0 {
            return Ok(NonNull::slice_from_raw_parts(dangling(layout), 0));
        }
        let need = need(layout);
        if let Some(c) = self.classes.iter().find(|c| need <= c.block) {
            if let Some(b) = c.pop() {
                return Ok(NonNull::slice_from_raw_parts(b, layout.size()));
            }
        }
        self.fall_back(layout)
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        if layout.size() == 0 {
            // Zero-sized blocks are never real allocations (see `allocate`; `grow` and
            // `shrink` keep it so).
            return;
        }
        match self.class_of(ptr) {
            Some(c) => {
                debug_assert!(need(layout) <= c.block, "layout does not fit the block");
                // SAFETY: the caller hands back a block this pool allocated and no longer
                // uses it; it lies in `c`'s region, so `c.pop` handed it out.
                unsafe { c.push(ptr) }
            }
            None => {
                debug_assert!(self.fallbacks_in_use.get() > 0, "unknown block freed");
                self.fallbacks_in_use
                    .set(self.fallbacks_in_use.get().saturating_sub(1));
                // SAFETY: a block outside every region came from `fall_back`, that is
                // from `Global` with a layout that the caller's `layout` fits.
                unsafe { Global.deallocate(ptr, layout) }
            }
        }
    }

    #[inline]
    unsafe fn grow(
        &self,
        ptr: NonNull<u8>,
        old_layout: Layout,
        new_layout: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        debug_assert!(new_layout.size() >= old_layout.size());
        if let Some(c) = self.class_of(ptr) {
            if need(new_layout) <= c.block {
                // Still fits its block (which is aligned to its size): grow in place.
                return Ok(NonNull::slice_from_raw_parts(ptr, new_layout.size()));
            }
        }
        // SAFETY: the caller's contract; `old_layout.size() <= new_layout.size()`.
        unsafe { self.relocate(ptr, old_layout, new_layout, old_layout.size()) }
    }

    #[inline]
    unsafe fn shrink(
        &self,
        ptr: NonNull<u8>,
        old_layout: Layout,
        new_layout: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        debug_assert!(new_layout.size() <= old_layout.size());
        if let Some(c) = self.class_of(ptr) {
            // Shrinking to nothing frees the block (`relocate` returns a dangling one).
            if new_layout.size() != 0 && need(new_layout) <= c.block {
                return Ok(NonNull::slice_from_raw_parts(ptr, new_layout.size()));
            }
        }
        // SAFETY: the caller's contract; `new_layout.size() <= old_layout.size()`.
        unsafe { self.relocate(ptr, old_layout, new_layout, new_layout.size()) }
    }
}

/// A pool's counters, for the run summary.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolStats {
    /// Bytes reserved for all the blocks.
    pub region_bytes: u64,
    /// Requests served by the global allocator (class empty, or too large for any class).
    pub fallbacks: u64,
    /// Of those, blocks not yet returned.
    pub fallbacks_in_use: u64,
    /// Per size class, smallest first.
    pub classes: Vec<ClassStats>,
}

/// Counters of one size class.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassStats {
    /// Block size (and alignment), bytes.
    pub block_bytes: u64,
    /// Blocks in the class.
    pub blocks: u64,
    /// Blocks in use when the counters were read.
    pub in_use: u64,
    /// Most blocks in use at once.
    pub high_water: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use allocator_api2::boxed::Box as ABox;
    use allocator_api2::vec::Vec as AVec;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    /// The offset of `p` from the pool's base, if it is a pool block.
    fn offset(pool: &Pool, p: NonNull<u8>) -> Option<usize> {
        pool.class_of(p)?;
        Some(p.addr().get() - pool.base.addr().get())
    }

    #[test]
    fn round_trips_in_every_class() {
        let pool = Pool::engine(4);
        assert_eq!(pool.region_bytes(), 4 * (64 + 256 + 1024));
        for (size, class) in [
            (1, 0),
            (24, 0),
            (64, 0),
            (65, 1),
            (208, 1),
            (240, 1),
            (256, 1),
        ]
        .into_iter()
        .chain([(257, 2), (768, 2), (1024, 2)])
        {
            let l = layout(size, 1);
            let p = pool.allocate(l).unwrap();
            assert_eq!(p.len(), size);
            let p = p.cast::<u8>();
            let c = &pool.classes[class];
            assert!(c.owns(p.addr().get()), "{size} bytes not in class {class}");
            assert_eq!(c.in_use.get(), 1);
            // SAFETY: the block holds `size` bytes.
            unsafe { p.as_ptr().write_bytes(0xAB, size) };
            // SAFETY: allocated above with `l`.
            unsafe { pool.deallocate(p, l) };
            assert_eq!(pool.in_use(), 0);
        }
        assert_eq!(pool.fallbacks(), 0);
        let s = pool.stats();
        assert_eq!(
            s.classes.iter().map(|c| c.high_water).collect::<Vec<_>>(),
            [1, 1, 1]
        );
    }

    #[test]
    fn freed_block_comes_back_first() {
        let pool = Pool::engine(8);
        let l = layout(200, 8);
        let a = pool.allocate(l).unwrap().cast::<u8>();
        let b = pool.allocate(l).unwrap().cast::<u8>();
        assert_eq!(offset(&pool, b), offset(&pool, a).map(|o| o + 256));
        // SAFETY: `a` was allocated with `l`.
        unsafe { pool.deallocate(a, l) };
        let c = pool.allocate(l).unwrap().cast::<u8>();
        assert_eq!(c.addr(), a.addr(), "LIFO: the block just freed is reused");
        // SAFETY: both allocated with `l`.
        unsafe {
            pool.deallocate(b, l);
            pool.deallocate(c, l);
        }
        // Freed b then c: c is on top, then b.
        let d = pool.allocate(l).unwrap().cast::<u8>();
        let e = pool.allocate(l).unwrap().cast::<u8>();
        assert_eq!((d.addr(), e.addr()), (a.addr(), b.addr()));
        // SAFETY: both allocated with `l`.
        unsafe {
            pool.deallocate(d, l);
            pool.deallocate(e, l);
        }
        assert_eq!(pool.stats().classes[1].high_water, 2);
    }

    #[test]
    fn exhaustion_falls_back_and_counts() {
        let pool = Pool::new(&[(64, 1), (256, 2)]);
        let l = layout(100, 1);
        let a = pool.allocate(l).unwrap().cast::<u8>();
        let b = pool.allocate(l).unwrap().cast::<u8>();
        assert_eq!(pool.fallbacks(), 0);
        // The 256 class is empty: the global allocator, even though nothing is larger.
        let c = pool.allocate(l).unwrap().cast::<u8>();
        assert_eq!(pool.fallbacks(), 1);
        assert!(offset(&pool, c).is_none());
        // Larger than every class.
        let big = layout(4096, 8);
        let d = pool.allocate(big).unwrap().cast::<u8>();
        assert_eq!(pool.fallbacks(), 2);
        assert_eq!(pool.stats().fallbacks_in_use, 2);
        // SAFETY: each with the layout it was allocated with.
        unsafe {
            d.as_ptr().write_bytes(1, 4096);
            pool.deallocate(c, l);
            pool.deallocate(d, big);
            pool.deallocate(a, l);
            pool.deallocate(b, l);
        }
        let s = pool.stats();
        assert_eq!((s.fallbacks, s.fallbacks_in_use), (2, 0));
        assert_eq!(s.classes[1].high_water, 2);
        assert_eq!(pool.in_use(), 0);
        // Through a collection: a Vec that outgrows the largest class moves to the heap
        // and back into the pool when it shrinks.
        let mut v: AVec<u8, &Pool> = AVec::new_in(&pool);
        v.extend(0..=255u8);
        assert_eq!(pool.fallbacks(), 2);
        v.push(0);
        assert_eq!(pool.fallbacks(), 3);
        v.truncate(10);
        v.shrink_to_fit();
        assert!(offset(&pool, NonNull::new(v.as_mut_ptr()).unwrap()).is_some());
        assert_eq!(&v[..], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        drop(v);
        assert_eq!((pool.in_use(), pool.stats().fallbacks_in_use), (0, 0));
    }

    #[test]
    fn alignment_is_honoured() {
        let pool = Pool::engine(4);
        for (size, align, class) in [(8, 64, Some(0)), (8, 128, Some(1)), (300, 128, Some(2))]
            .into_iter()
            .chain([(8, 1024, Some(2)), (8, 2048, None), (48, 8, Some(0))])
        {
            let l = layout(size, align);
            let p = pool.allocate(l).unwrap().cast::<u8>();
            assert_eq!(p.addr().get() % align, 0, "size {size} align {align}");
            match class {
                Some(i) => assert!(pool.classes[i].owns(p.addr().get())),
                None => assert!(offset(&pool, p).is_none()),
            }
            // SAFETY: allocated with `l`.
            unsafe { pool.deallocate(p, l) };
        }
        assert_eq!(pool.fallbacks(), 1);
        #[repr(align(128))]
        struct Wide([u8; 128]);
        let b = ABox::new_in(Wide([3; 128]), &pool);
        assert_eq!((&*b as *const Wide).addr() % 128, 0);
        assert_eq!(b.0[127], 3);
    }

    #[test]
    fn grows_in_place_within_a_block_and_moves_beyond() {
        let pool = Pool::engine(2);
        let mut v: AVec<u64, &Pool> = AVec::with_capacity_in(2, &pool);
        v.extend([1, 2]);
        let first = v.as_ptr();
        v.reserve_exact(6); // 64 bytes: the same block
        assert_eq!(v.as_ptr(), first);
        v.extend(3..=40); // 320 bytes: moves to the 1024-byte class
        assert_eq!(v.iter().sum::<u64>(), (1..=40u64).sum::<u64>());
        assert_eq!(pool.stats().classes[2].in_use, 1);
        assert_eq!(pool.in_use(), 1);
        assert_eq!(pool.fallbacks(), 0);
    }

    #[test]
    fn zero_blocks_and_zero_sizes() {
        let pool = Pool::new(&[(64, 0)]);
        assert_eq!(pool.region_bytes(), 0);
        let l = layout(0, 1);
        let p = pool.allocate(l).unwrap().cast::<u8>();
        // SAFETY: allocated with `l`.
        unsafe { pool.deallocate(p, l) };
        assert_eq!(p.addr().get(), 1, "zero-sized: dangling");
        let l = layout(1, 1);
        let p = pool.allocate(l).unwrap().cast::<u8>();
        // SAFETY: allocated with `l`.
        unsafe { pool.deallocate(p, l) };
        assert_eq!((pool.fallbacks(), pool.stats().fallbacks_in_use), (1, 0));
        let pool = Pool::engine(1);
        let b = ABox::new_in((), &pool);
        drop(b);
        let mut v: AVec<u8, &Pool> = AVec::with_capacity_in(10, &pool);
        v.push(1);
        assert_eq!(pool.in_use(), 1);
        v.clear();
        v.shrink_to_fit(); // to nothing: the block goes back
        assert_eq!(pool.in_use(), 0);
        v.push(2);
        assert_eq!((pool.in_use(), v[0]), (1, 2));
        drop(v);
        assert_eq!((pool.in_use(), pool.fallbacks()), (0, 0));
    }

    #[test]
    #[should_panic(expected = "size classes must increase")]
    fn classes_must_increase() {
        Pool::new(&[(256, 1), (64, 1)]);
    }

    #[test]
    #[should_panic(expected = "not a power of two")]
    fn classes_must_be_powers_of_two() {
        Pool::new(&[(100, 1)]);
    }

    /// A seeded generator (splitmix64), so that a failure replays.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// A live allocation of the randomized test and the byte it is filled with.
    struct Live {
        ptr: NonNull<u8>,
        layout: Layout,
        fill: u8,
    }

    fn check(a: &Live) {
        // SAFETY: `a.ptr` is allocated with `a.layout`, all of it written with `fill`.
        let bytes = unsafe { std::slice::from_raw_parts(a.ptr.as_ptr(), a.layout.size()) };
        assert!(bytes.iter().all(|&b| b == a.fill), "contents damaged");
    }

    #[test]
    fn random_interleavings_keep_contents_and_return_every_block() {
        let rounds = if cfg!(miri) { 300 } else { 20_000 };
        for seed in [1u64, 2, 3] {
            let mut rng = Rng(seed);
            let pool = Pool::new(&[(16, 8), (64, 8), (256, 4), (1024, 2)]);
            let mut live: Vec<Live> = Vec::new();
            for i in 0..rounds {
                let fill = i as u8;
                match rng.below(10) {
                    0..=3 => {
                        let size = [0, 1, 8, 16, 24, 48, 64, 100, 208, 240, 700, 1024, 3000]
                            [rng.below(13) as usize];
                        let align = 1 << rng.below(8);
                        let l = layout(size, align);
                        let p = pool.allocate(l).unwrap();
                        assert!(p.len() >= size);
                        let p = p.cast::<u8>();
                        assert_eq!(p.addr().get() % align, 0);
                        // SAFETY: the block holds `size` bytes.
                        unsafe { p.as_ptr().write_bytes(fill, size) };
                        live.push(Live {
                            ptr: p,
                            layout: l,
                            fill,
                        });
                    }
                    4..=7 if !live.is_empty() => {
                        let a = live.swap_remove(rng.below(live.len() as u64) as usize);
                        check(&a);
                        // SAFETY: allocated with `a.layout` and not freed yet.
                        unsafe { pool.deallocate(a.ptr, a.layout) };
                    }
                    8 | 9 if !live.is_empty() => {
                        let k = rng.below(live.len() as u64) as usize;
                        let a = &mut live[k];
                        check(a);
                        let grow = rng.below(2) == 0;
                        let size = if grow {
                            a.layout.size() + rng.below(600) as usize
                        } else {
                            rng.below(a.layout.size() as u64 + 1) as usize
                        };
                        let l = layout(size, 1 << rng.below(8));
                        // SAFETY: `a.ptr` is allocated with `a.layout`; the sizes are
                        // ordered as `grow` and `shrink` require.
                        let p = unsafe {
                            if grow {
                                pool.grow(a.ptr, a.layout, l)
                            } else {
                                pool.shrink(a.ptr, a.layout, l)
                            }
                        }
                        .unwrap()
                        .cast::<u8>();
                        assert_eq!(p.addr().get() % l.align(), 0);
                        let kept = a.layout.size().min(size);
                        a.ptr = p;
                        a.layout = l;
                        // SAFETY: the first `kept` bytes were preserved; the block holds
                        // `size` bytes.
                        unsafe {
                            let old = std::slice::from_raw_parts(p.as_ptr(), kept);
                            assert!(old.iter().all(|&b| b == a.fill), "contents lost");
                            p.as_ptr().write_bytes(fill, size);
                        }
                        a.fill = fill;
                    }
                    _ => {}
                }
                let real = live.iter().filter(|a| a.layout.size() > 0).count();
                let in_pool = live
                    .iter()
                    .filter(|a| offset(&pool, a.ptr).is_some())
                    .count();
                assert_eq!(pool.in_use(), in_pool);
                assert_eq!(pool.stats().fallbacks_in_use as usize, real - in_pool);
            }
            assert!(pool.fallbacks() > 0, "the test should exhaust some class");
            for a in live.drain(..) {
                check(&a);
                // SAFETY: allocated with `a.layout` and not freed yet.
                unsafe { pool.deallocate(a.ptr, a.layout) };
            }
            let s = pool.stats();
            assert_eq!((pool.in_use(), s.fallbacks_in_use), (0, 0));
            // Every block is back on its free list, each exactly once.
            for c in pool.classes.iter() {
                let mut seen = std::collections::BTreeSet::new();
                let mut next = c.free.get();
                while let Some(b) = next {
                    assert!(c.owns(b.addr().get()));
                    assert!(seen.insert(b.addr()), "block twice on the free list");
                    // SAFETY: a free block's first word is its link.
                    next = unsafe { b.cast::<Link>().read() };
                }
                assert_eq!(seen.len(), c.blocks);
                assert!(c.high_water.get() <= c.blocks);
            }
            assert!(s.classes.iter().all(|c| c.high_water > 0));
        }
    }

    #[test]
    fn stats_serialize() {
        let pool = Pool::engine(1);
        let json = serde_json::to_string(&pool.stats()).unwrap();
        assert!(json.contains("\"fallbacks\":0"), "{json}");
        let back: PoolStats = serde_json::from_str(&json).unwrap();
        assert_eq!(back, pool.stats());
        assert!(format!("{pool:?}").contains("region_bytes: 1344"));
    }
}
