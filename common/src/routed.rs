//! A global allocator that routes by thread role: the hybrid in one process.
//!
//! [`Routed`] sends each allocation of a thread whose route is [`Route::Hot`] to a hot
//! arena ([`HotArena`]: with the `jemalloc` and `mimalloc` features, [`MiArena`], a
//! mimalloc heap per hot thread in one *exclusive* arena reserved at start-up) and every
//! other allocation to the cold allocator (jemalloc in [`Hybrid`]). A thread's route is
//! a `const`-initialised thread-local ([`set_thread_route`]); every thread starts cold.
//!
//! # Guarantees
//!
//! - **A free goes home by address.** `dealloc` and `realloc` look at the pointer, not at
//!   the calling thread: inside the hot arena's address range it belongs to the arena,
//!   anywhere else to the cold allocator. Memory allocated on a hot thread and freed on
//!   a cold one (or the reverse) is returned to the allocator it came from. Changing a
//!   thread's route never moves live memory.
//! - **Realloc follows the calling thread's route.** A block that must move to another
//!   route (a hot thread growing a cold block, or the reverse) is allocated there,
//!   copied and freed where it came from ([`RouteCounts::moved`]).
//! - **What the arena cannot serve falls back** to the cold allocator and is counted
//!   ([`RouteCounts::fallbacks`]): no arena reserved yet, the arena full, an alignment
//!   above [`HOT_MAX_ALIGN`], a size above the threshold ([`Routed::set_hot_max_bytes`]).
//! - **Nothing here allocates, locks or makes a system call** of its own: the counts are
//!   relaxed atomic adds in cache lines of their own per route (a thread mostly writes
//!   its own route's), the route a thread-local read. The arena's first allocation on a
//!   thread creates that thread's heap inside mimalloc (its own metadata, not through
//!   the global allocator).
//!
//! The routing decisions are plain functions of the route, the layout and the address
//! ([`alloc_decision`], [`Routed`] over any [`HotArena`] and any cold `GlobalAlloc`), so
//! they are tested on mock allocators, under Miri too.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};

/// Where a thread's allocations go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// The cold allocator (jemalloc in [`Hybrid`]).
    Cold = 0,
    /// The hot arena (mimalloc in [`Hybrid`]).
    Hot = 1,
}

impl Route {
    /// The route's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Route::Cold => "cold",
            Route::Hot => "hot",
        }
    }
}

/// The thread roles a routing table names (`[routing.roles]` in the configuration):
/// each thread says which it is when it starts ([`enter_role`]); a thread that says
/// nothing is `other`.
pub const ROLES: [&str; 11] = [
    "other",
    "pipeline_main",
    "feed_main",
    "feed_md",
    "feed_history",
    "engine_main",
    "engine_hot",
    "engine_report",
    "engine_orders",
    "engine_recovery",
    "engine_load",
];
/// The roles that run a hot loop: never timed, never adapted.
pub const HOT_ROLES: [&str; 2] = ["feed_md", "engine_hot"];
/// Slot of the role `other`.
const OTHER: u8 = 0;
/// Pseudo-roles whose route never changes: [`set_thread_route`] and the per-type
/// handles ([`Hot`], [`Cold`]) use them.
const FIXED_COLD: u8 = ROLES.len() as u8;
const FIXED_HOT: u8 = FIXED_COLD + 1;

/// The route of each role (and of the two fixed pseudo-roles), read on every
/// allocation: written at start-up ([`set_role_route`]) and by the adaptive router.
static ROUTE_OF: [AtomicU8; ROLES.len() + 2] = {
    let mut t = [const { AtomicU8::new(Route::Cold as u8) }; ROLES.len() + 2];
    t[FIXED_HOT as usize] = AtomicU8::new(Route::Hot as u8);
    // The default table: the hot loops on the arena.
    t[3] = AtomicU8::new(Route::Hot as u8); // feed_md
    t[6] = AtomicU8::new(Route::Hot as u8); // engine_hot
    t
};
const _: () = assert!(matches!(ROLES[3].as_bytes(), b"feed_md"));
const _: () = assert!(matches!(ROLES[6].as_bytes(), b"engine_hot"));

thread_local! {
    static ROLE: Cell<u8> = const { Cell::new(OTHER) };
}

/// The slot of the role named `name` in [`ROLES`].
pub fn role_index(name: &str) -> Option<usize> {
    ROLES.iter().position(|r| *r == name)
}

/// The calling thread is the role `name` (one of [`ROLES`]) from now on: its
/// allocations take that role's route. Returns `false` (and changes nothing) for a
/// name that is not a role. Memory it allocated before stays where it is.
pub fn enter_role(name: &str) -> bool {
    match role_index(name) {
        Some(i) => {
            let _ = ROLE.try_with(|r| r.set(i as u8));
            true
        }
        None => false,
    }
}

/// Routes the role in slot `role` of [`ROLES`] from now on (its threads' next
/// allocations). Live memory does not move: frees still go home by address.
pub fn set_role_route(role: usize, route: Route) {
    if role < ROLES.len() {
        ROUTE_OF[role].store(route as u8, Ordering::Relaxed);
    }
}

/// The route the role in slot `role` of [`ROLES`] has before any configuration: the
/// hot loops ([`HOT_ROLES`]) on the arena, every other role cold.
pub fn default_route(role: usize) -> Route {
    match ROLES.get(role) {
        Some(r) if HOT_ROLES.contains(r) => Route::Hot,
        _ => Route::Cold,
    }
}

/// The route of the role in slot `role` of [`ROLES`].
pub fn role_route(role: usize) -> Route {
    match ROUTE_OF.get(role).map(|r| r.load(Ordering::Relaxed)) {
        Some(1) => Route::Hot,
        _ => Route::Cold,
    }
}

/// Routes the calling thread's allocations to `route` from now on, whatever its role's
/// route (a thread of its own route, outside the table); returns the route it had.
/// Memory it allocated before stays where it is.
pub fn set_thread_route(route: Route) -> Route {
    let fixed = match route {
        Route::Hot => FIXED_HOT,
        Route::Cold => FIXED_COLD,
    };
    ROLE.try_with(|r| r.replace(fixed))
        .map(route_of_slot)
        .unwrap_or(Route::Cold)
}

#[inline(always)]
fn route_of_slot(slot: u8) -> Route {
    match ROUTE_OF[(slot as usize).min(ROUTE_OF.len() - 1)].load(Ordering::Relaxed) {
        1 => Route::Hot,
        _ => Route::Cold,
    }
}

/// The calling thread's route: its role's (cold while the thread is being torn down).
#[inline]
pub fn thread_route() -> Route {
    match ROLE.try_with(Cell::get) {
        Ok(slot) => route_of_slot(slot),
        Err(_) => Route::Cold,
    }
}

/// Whether cold roles' allocator calls are to be timed for the adaptive router (set
/// by the single-process pipeline before its threads start; read by
/// [`crate::budget::ColdThread::enter`]).
static PROFILING: AtomicBool = AtomicBool::new(false);

/// Asks every cold thread started from now on to time its allocator calls, for the
/// adaptive router.
pub fn request_profiling() {
    PROFILING.store(true, Ordering::Relaxed);
}

/// Whether [`request_profiling`] was called.
pub fn profiling_requested() -> bool {
    PROFILING.load(Ordering::Relaxed)
}

/// Runs `f` with the calling thread on the fixed `slot`, then restores its role. Where
/// that route is not the role's, the call is left untimed: it is not the role's
/// allocator, so it must not count as the role's evidence (the adaptive router's).
#[inline(always)]
fn on_fixed<R>(slot: u8, f: impl FnOnce() -> R) -> R {
    let before = ROLE.try_with(|r| r.replace(slot)).ok();
    let v = match before {
        Some(b) if route_of_slot(b) != route_of_slot(slot) => crate::alloc::without_timing(f),
        _ => f(),
    };
    if let Some(b) = before {
        let _ = ROLE.try_with(|r| r.set(b));
    }
    v
}

macro_rules! route_handle {
    ($name:ident, $slot:expr, $what:literal) => {
        #[doc = concat!("Per-type routing: an `allocator-api2` allocator whose blocks come from the ", $what, " whichever thread allocates them (`Vec<T, ", stringify!($name), ">`).")]
        ///
        /// It calls the global allocator with the calling thread on a fixed route for
        /// the call: under [`Routed`] that picks the allocator; under any other global
        /// allocator it is that allocator. Frees and growth go home by address, as
        /// every free does. No allocation of its own, no lock: thread-local writes
        /// around the call (its route; and, where that is not the role's route, the
        /// timing of its role, which the call does not stand for).
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name;

        // SAFETY: every block comes from the global allocator (`std::alloc`) with the
        // layout asked for and is returned to it with the same layout; a block stays
        // valid until `deallocate`, and the handle is a unit value, so copies of it
        // are interchangeable.
        unsafe impl allocator_api2::alloc::Allocator for $name {
            fn allocate(
                &self,
                layout: Layout,
            ) -> Result<std::ptr::NonNull<[u8]>, allocator_api2::alloc::AllocError> {
                if layout.size() == 0 {
                    let dangling = layout.align() as *mut u8;
                    // SAFETY: an alignment is never zero.
                    let p = unsafe { std::ptr::NonNull::new_unchecked(dangling) };
                    return Ok(std::ptr::NonNull::slice_from_raw_parts(p, 0));
                }
                // SAFETY: `layout` has a non-zero size.
                let p = on_fixed($slot, || unsafe { std::alloc::alloc(layout) });
                std::ptr::NonNull::new(p)
                    .map(|p| std::ptr::NonNull::slice_from_raw_parts(p, layout.size()))
                    .ok_or(allocator_api2::alloc::AllocError)
            }

            unsafe fn deallocate(&self, ptr: std::ptr::NonNull<u8>, layout: Layout) {
                if layout.size() != 0 {
                    // SAFETY: `ptr` came from `allocate` (the global allocator) with
                    // `layout`, as the caller guarantees.
                    unsafe { std::alloc::dealloc(ptr.as_ptr(), layout) }
                }
            }

            unsafe fn grow(
                &self,
                ptr: std::ptr::NonNull<u8>,
                old: Layout,
                new: Layout,
            ) -> Result<std::ptr::NonNull<[u8]>, allocator_api2::alloc::AllocError> {
                if old.size() == 0 || new.align() != old.align() {
                    let p = self.allocate(new)?;
                    // SAFETY: `ptr` is valid for `old.size()` bytes (the caller's
                    // contract), the new block for `new.size()` ≥ that; they differ.
                    unsafe {
                        std::ptr::copy_nonoverlapping(ptr.as_ptr(), p.cast().as_ptr(), old.size());
                        self.deallocate(ptr, old);
                    }
                    return Ok(p);
                }
                // SAFETY: `ptr` came from the global allocator with `old`; `new` has the
                // same alignment and a size the caller guarantees valid.
                let p = on_fixed($slot, || unsafe {
                    std::alloc::realloc(ptr.as_ptr(), old, new.size())
                });
                std::ptr::NonNull::new(p)
                    .map(|p| std::ptr::NonNull::slice_from_raw_parts(p, new.size()))
                    .ok_or(allocator_api2::alloc::AllocError)
            }
        }
    };
}

route_handle!(Cold, FIXED_COLD, "cold allocator (jemalloc in [`Hybrid`])");
route_handle!(Hot, FIXED_HOT, "hot arena (mimalloc in [`Hybrid`])");

/// A vector whose buffer is the cold allocator's whichever thread grows it.
pub type ColdVec<T> = allocator_api2::vec::Vec<T, Cold>;
/// A vector whose buffer is the hot arena's whichever thread grows it.
pub type HotVec<T> = allocator_api2::vec::Vec<T, Hot>;

/// Largest alignment the hot arena is asked for; larger requests go cold (counted).
pub const HOT_MAX_ALIGN: usize = 4096;

/// Why an allocation of a hot thread went to the cold allocator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fallback {
    /// Its alignment is above [`HOT_MAX_ALIGN`].
    Aligned,
    /// Its size is above the hot threshold.
    Large,
    /// The arena could not serve it (not reserved, or full).
    Arena,
}

/// Where an allocation goes before the arena is asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The hot arena (if it returns null: [`Fallback::Arena`]).
    Hot,
    /// The cold allocator, as the thread's route says.
    Cold,
    /// The cold allocator although the thread is hot.
    Fallback(Fallback),
}

/// The routing of an allocation of `layout` by a thread on `route`, with a hot size
/// threshold of `max_bytes`.
#[inline]
pub fn alloc_decision(route: Route, layout: Layout, max_bytes: usize) -> Decision {
    match route {
        Route::Cold => Decision::Cold,
        Route::Hot if layout.align() > HOT_MAX_ALIGN => Decision::Fallback(Fallback::Aligned),
        Route::Hot if layout.size() > max_bytes => Decision::Fallback(Fallback::Large),
        Route::Hot => Decision::Hot,
    }
}

/// The hot side of a [`Routed`] allocator: an arena with an address range.
///
/// # Safety
///
/// `contains` must be true exactly for addresses of blocks `alloc` and `realloc` return
/// (and false for every block of any other allocator), and stay so while such a block
/// lives; `dealloc` must accept any such block from any thread.
pub unsafe trait HotArena: Sync {
    /// Whether `p` lies in the arena.
    fn contains(&self, p: *const u8) -> bool;
    /// A block of `layout` (zeroed if asked) for the calling thread, or null when the
    /// arena cannot serve it.
    ///
    /// # Safety
    ///
    /// As [`GlobalAlloc::alloc`].
    unsafe fn alloc(&self, layout: Layout, zeroed: bool) -> *mut u8;
    /// Frees `p`, a block of the arena, from any thread.
    ///
    /// # Safety
    ///
    /// As [`GlobalAlloc::dealloc`], for a block `contains` says is the arena's.
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout);
    /// Resizes `p`, a block of the arena, for the calling thread: the new block (in
    /// the arena), or null when the arena cannot (then `p` is untouched).
    ///
    /// # Safety
    ///
    /// As [`GlobalAlloc::realloc`], for a block `contains` says is the arena's.
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8;
}

/// What one route did since the start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RouteCounts {
    /// Blocks this route's allocator handed out (allocations and moved reallocations).
    pub allocs: u64,
    /// Blocks returned to this route's allocator.
    pub frees: u64,
    /// Of them, blocks a thread of the other route freed.
    pub foreign_frees: u64,
    /// Reallocations this route's allocator did in place or within itself.
    pub reallocs: u64,
    /// Bytes requested from this route's allocator.
    pub bytes: u64,
    /// Allocations of hot threads this route's allocator served because the arena
    /// could not (counted on the cold route only).
    pub fallbacks: u64,
    /// Reallocations that moved a block here from the other route.
    pub moved: u64,
}

/// Both routes' counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RouteStats {
    /// The hot arena's.
    pub hot: RouteCounts,
    /// The cold allocator's.
    pub cold: RouteCounts,
}

const ALLOCS: usize = 0;
const FREES: usize = 1;
const FOREIGN: usize = 2;
const REALLOCS: usize = 3;
const BYTES: usize = 4;
const FALLBACKS: usize = 5;
const MOVED: usize = 6;

/// One route's counters, in cache lines of their own.
#[repr(align(128))]
struct Counters([AtomicU64; 7]);

impl Counters {
    const fn new() -> Counters {
        Counters([const { AtomicU64::new(0) }; 7])
    }

    #[inline(always)]
    fn add(&self, i: usize, v: u64) {
        self.0[i].fetch_add(v, Ordering::Relaxed);
    }

    fn read(&self) -> RouteCounts {
        let v = |i: usize| self.0[i].load(Ordering::Relaxed);
        RouteCounts {
            allocs: v(ALLOCS),
            frees: v(FREES),
            foreign_frees: v(FOREIGN),
            reallocs: v(REALLOCS),
            bytes: v(BYTES),
            fallbacks: v(FALLBACKS),
            moved: v(MOVED),
        }
    }
}

/// The routing allocator: hot threads' allocations from `H`, everything else from `C`,
/// every free home by address. See the module documentation.
pub struct Routed<H, C> {
    hot: H,
    cold: C,
    counts: [Counters; 2],
    hot_max_bytes: AtomicUsize,
}

impl<H, C> Routed<H, C> {
    /// Routes hot threads to `hot`, everything else to `cold`, no size threshold.
    pub const fn new(hot: H, cold: C) -> Routed<H, C> {
        Routed {
            hot,
            cold,
            counts: [Counters::new(), Counters::new()],
            hot_max_bytes: AtomicUsize::new(usize::MAX),
        }
    }

    /// The hot arena.
    pub fn hot(&self) -> &H {
        &self.hot
    }

    /// Allocations of hot threads larger than `bytes` go to the cold allocator
    /// (counted as fallbacks) from now on.
    pub fn set_hot_max_bytes(&self, bytes: usize) {
        self.hot_max_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Both routes' counts so far (any thread).
    pub fn stats(&self) -> RouteStats {
        RouteStats {
            cold: self.counts[Route::Cold as usize].read(),
            hot: self.counts[Route::Hot as usize].read(),
        }
    }

    #[inline(always)]
    fn count(&self, route: Route, i: usize, v: u64) {
        self.counts[route as usize].add(i, v);
    }
}

impl<H: HotArena, C: GlobalAlloc> Routed<H, C> {
    /// The allocation both `alloc` and `alloc_zeroed` make.
    ///
    /// # Safety
    ///
    /// As [`GlobalAlloc::alloc`].
    #[inline]
    unsafe fn allocate(&self, layout: Layout, zeroed: bool) -> *mut u8 {
        let max = self.hot_max_bytes.load(Ordering::Relaxed);
        let decision = alloc_decision(thread_route(), layout, max);
        if decision == Decision::Hot {
            // SAFETY: the caller upholds `alloc`'s contract for `layout`.
            let p = unsafe { self.hot.alloc(layout, zeroed) };
            if !p.is_null() {
                self.count(Route::Hot, ALLOCS, 1);
                self.count(Route::Hot, BYTES, layout.size() as u64);
                return p;
            }
        }
        if decision != Decision::Cold {
            self.count(Route::Cold, FALLBACKS, 1);
        }
        self.count(Route::Cold, ALLOCS, 1);
        self.count(Route::Cold, BYTES, layout.size() as u64);
        // SAFETY: as above.
        unsafe {
            if zeroed {
                self.cold.alloc_zeroed(layout)
            } else {
                self.cold.alloc(layout)
            }
        }
    }
}

// SAFETY: every block comes from `hot` or `cold`, each of which upholds the
// `GlobalAlloc` contract for it (`HotArena`'s safety contract for `hot`); a block is
// freed or resized only by the allocator `hot.contains` says it came from, which the
// `HotArena` contract makes exact; a block that changes allocator is copied for
// `min(old, new)` bytes into a block of the new layout before the old one is freed.
// Nothing here unwinds or allocates.
unsafe impl<H: HotArena, C: GlobalAlloc> GlobalAlloc for Routed<H, C> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract.
        unsafe { self.allocate(layout, false) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc_zeroed`'s contract.
        unsafe { self.allocate(layout, true) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let here = if self.hot.contains(ptr) {
            Route::Hot
        } else {
            Route::Cold
        };
        self.count(here, FREES, 1);
        if thread_route() != here {
            self.count(here, FOREIGN, 1);
        }
        // SAFETY: `ptr` came from the allocator `contains` names (the `HotArena`
        // contract), with `layout`, as the caller guarantees.
        unsafe {
            match here {
                Route::Hot => self.hot.dealloc(ptr, layout),
                Route::Cold => self.cold.dealloc(ptr, layout),
            }
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let here = if self.hot.contains(ptr) {
            Route::Hot
        } else {
            Route::Cold
        };
        // SAFETY: the caller guarantees a valid layout of `new_size` with `layout`'s
        // alignment.
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let max = self.hot_max_bytes.load(Ordering::Relaxed);
        let want = match alloc_decision(thread_route(), new, max) {
            Decision::Hot => Route::Hot,
            Decision::Cold | Decision::Fallback(_) => Route::Cold,
        };
        if want == here {
            let grew = (new_size as u64).saturating_sub(layout.size() as u64);
            let p = match here {
                // SAFETY: `ptr` is the arena's (`contains`), the caller upholds the rest.
                Route::Hot => unsafe { self.hot.realloc(ptr, layout, new_size) },
                // SAFETY: `ptr` is the cold allocator's, the caller upholds the rest.
                Route::Cold => unsafe { self.cold.realloc(ptr, layout, new_size) },
            };
            if !p.is_null() || here == Route::Cold {
                if !p.is_null() {
                    self.count(here, REALLOCS, 1);
                    self.count(here, BYTES, grew);
                }
                return p;
            }
            // The arena could not grow it: the cold allocator takes it (below).
        }
        // Another route: allocate there (or fall back), copy, free here.
        // SAFETY: `new` has a non-zero size (the caller's contract for `realloc`).
        let p = unsafe { self.allocate(new, false) };
        if p.is_null() {
            return p;
        }
        let to = if self.hot.contains(p) {
            Route::Hot
        } else {
            Route::Cold
        };
        if to != here {
            self.count(to, MOVED, 1);
        }
        // SAFETY: `ptr` is valid for `layout.size()` bytes, `p` for `new_size`, they are
        // different blocks, and `ptr` is freed by the allocator it came from.
        unsafe {
            std::ptr::copy_nonoverlapping(ptr, p, layout.size().min(new_size));
            self.dealloc(ptr, layout);
        }
        p
    }
}

#[cfg(all(feature = "jemalloc", feature = "mimalloc"))]
pub use mi::MiArena;

/// The shipped hybrid: hot threads on a mimalloc arena, everything else on jemalloc.
#[cfg(all(feature = "jemalloc", feature = "mimalloc"))]
pub type Hybrid = Routed<MiArena, tikv_jemallocator::Jemalloc>;

#[cfg(all(feature = "jemalloc", feature = "mimalloc"))]
mod mi {
    use super::HotArena;
    use libmimalloc_sys as sys;
    use std::alloc::Layout;
    use std::cell::Cell;
    use std::ffi::c_void;
    use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
    use std::sync::Mutex;

    extern "C" {
        // In mimalloc.h (v3) but not bound by libmimalloc-sys: the start and size of
        // an arena's memory.
        fn mi_arena_area(arena_id: sys::mi_arena_id_t, size: *mut usize) -> *mut c_void;
    }

    thread_local! {
        // The calling thread's heap in the arena (null until its first hot
        // allocation). Never freed: hot threads live as long as the process.
        static HEAP: Cell<*mut sys::mi_heap_t> = const { Cell::new(std::ptr::null_mut()) };
    }

    /// A mimalloc arena reserved once at start-up ([`MiArena::reserve`]), exclusive to
    /// the heaps made in it, one per hot thread: the hot side of [`super::Hybrid`].
    /// Until it is reserved, every hot allocation falls back.
    pub struct MiArena {
        id: AtomicPtr<c_void>,
        start: AtomicUsize,
        end: AtomicUsize,
        reserving: Mutex<()>,
    }

    impl Default for MiArena {
        fn default() -> MiArena {
            MiArena::new()
        }
    }

    impl MiArena {
        /// No arena yet.
        pub const fn new() -> MiArena {
            MiArena {
                id: AtomicPtr::new(std::ptr::null_mut()),
                start: AtomicUsize::new(0),
                end: AtomicUsize::new(0),
                reserving: Mutex::new(()),
            }
        }

        /// Reserves (and commits) `bytes` of memory from the OS as the arena, before
        /// any hot thread allocates; returns its address range. Errors if an arena is
        /// reserved already or the OS refuses. Start-up only: it makes system calls.
        pub fn reserve(&self, bytes: usize) -> Result<std::ops::Range<usize>, String> {
            let _once = self.reserving.lock().map_err(|_| "poisoned".to_string())?;
            if !self.id.load(Ordering::Acquire).is_null() {
                return Err("the hot arena is reserved already".into());
            }
            let mut id: sys::mi_arena_id_t = std::ptr::null_mut();
            // SAFETY: a plain FFI call; `id` is a valid place for the arena id.
            let rc = unsafe { sys::mi_reserve_os_memory_ex(bytes, true, false, true, &mut id) };
            if rc != 0 || id.is_null() {
                return Err(format!(
                    "cannot reserve a hot arena of {bytes} bytes (mimalloc: error {rc})"
                ));
            }
            let mut size = 0usize;
            // SAFETY: `id` is the arena just reserved; `size` a valid place.
            let start = unsafe { mi_arena_area(id, &mut size) } as usize;
            if start == 0 || size == 0 {
                return Err("mimalloc reports no area for the hot arena".into());
            }
            self.start.store(start, Ordering::Relaxed);
            self.end.store(start + size, Ordering::Relaxed);
            // SYNC POINT: publishes `start` and `end` to threads that see the id; the
            // hot threads are started after this returns in any case.
            self.id.store(id, Ordering::Release);
            Ok(start..start + size)
        }

        /// The arena's address range (empty until reserved).
        pub fn range(&self) -> std::ops::Range<usize> {
            self.start.load(Ordering::Relaxed)..self.end.load(Ordering::Relaxed)
        }

        /// The calling thread's heap in the arena, made on first use; null if there is
        /// no arena or mimalloc cannot make one.
        #[inline]
        fn heap(&self) -> *mut sys::mi_heap_t {
            HEAP.try_with(|h| {
                let heap = h.get();
                if !heap.is_null() {
                    return heap;
                }
                // SYNC POINT: pairs with the release store in `reserve`.
                let id = self.id.load(Ordering::Acquire);
                if id.is_null() {
                    return std::ptr::null_mut();
                }
                // SAFETY: `id` is a reserved arena; mimalloc allocates the heap's
                // metadata itself, not through the Rust global allocator.
                let heap = unsafe { sys::mi_heap_new_in_arena(id) };
                h.set(heap);
                heap
            })
            .unwrap_or(std::ptr::null_mut())
        }
    }

    // SAFETY: `contains` is the reserved arena's exact address range, and the heaps
    // `alloc` and `realloc` use are made in that exclusive arena, so every block they
    // return lies in it and no other allocator's block does; the range never changes
    // once set. `mi_free` accepts a block of any heap from any thread.
    unsafe impl HotArena for MiArena {
        #[inline]
        fn contains(&self, p: *const u8) -> bool {
            let p = p as usize;
            p >= self.start.load(Ordering::Relaxed) && p < self.end.load(Ordering::Relaxed)
        }

        #[inline]
        unsafe fn alloc(&self, layout: Layout, zeroed: bool) -> *mut u8 {
            let heap = self.heap();
            if heap.is_null() {
                return std::ptr::null_mut();
            }
            // SAFETY: `heap` is this thread's heap; mimalloc returns null when the
            // exclusive arena cannot serve the block.
            unsafe {
                if zeroed {
                    sys::mi_heap_zalloc_aligned(heap, layout.size(), layout.align()).cast()
                } else {
                    sys::mi_heap_malloc_aligned(heap, layout.size(), layout.align()).cast()
                }
            }
        }

        #[inline]
        unsafe fn dealloc(&self, p: *mut u8, _layout: Layout) {
            // SAFETY: `p` is a block of a heap in the arena (the caller's contract).
            unsafe { sys::mi_free(p.cast()) }
        }

        #[inline]
        unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let heap = self.heap();
            if heap.is_null() {
                return std::ptr::null_mut();
            }
            // SAFETY: `p` is a block of the arena; a moved block is allocated in this
            // thread's heap (so in the arena), and on failure `p` is left as it was.
            unsafe { sys::mi_heap_realloc_aligned(heap, p.cast(), new_size, layout.align()).cast() }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::System;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn decisions_follow_the_route_the_alignment_and_the_threshold() {
        let l = |size, align| Layout::from_size_align(size, align).unwrap();
        assert_eq!(alloc_decision(Route::Cold, l(64, 8), 1024), Decision::Cold);
        assert_eq!(
            alloc_decision(Route::Cold, l(1 << 20, 8192), 1024),
            Decision::Cold
        );
        assert_eq!(alloc_decision(Route::Hot, l(64, 8), 1024), Decision::Hot);
        assert_eq!(
            alloc_decision(Route::Hot, l(1024, 4096), 1024),
            Decision::Hot
        );
        assert_eq!(
            alloc_decision(Route::Hot, l(1025, 8), 1024),
            Decision::Fallback(Fallback::Large)
        );
        assert_eq!(
            alloc_decision(Route::Hot, l(64, 8192), 1024),
            Decision::Fallback(Fallback::Aligned)
        );
    }

    /// A mock arena: a bump allocator over a buffer of `CAP` bytes (freed with it) that
    /// never reuses memory, counting its calls.
    struct Bump {
        buf: *mut u8,
        next: AtomicUsize,
        frees: AtomicUsize,
        full: AtomicBool,
    }
    // SAFETY: the buffer is only handed out in disjoint pieces through an atomic.
    unsafe impl Sync for Bump {}
    const CAP: usize = 1 << 16;

    impl Drop for Bump {
        fn drop(&mut self) {
            // SAFETY: `buf` came from `Box::into_raw` of a `CAP`-byte boxed slice in
            // `new` and is freed only here.
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.buf, CAP)) });
        }
    }

    impl Bump {
        fn new() -> Bump {
            let buf = Box::into_raw(vec![0u8; CAP].into_boxed_slice()).cast::<u8>();
            Bump {
                buf,
                next: AtomicUsize::new(0),
                frees: AtomicUsize::new(0),
                full: AtomicBool::new(false),
            }
        }
    }

    // SAFETY: `contains` is the buffer's range; blocks are disjoint pieces of it.
    unsafe impl HotArena for Bump {
        fn contains(&self, p: *const u8) -> bool {
            (self.buf as usize..self.buf as usize + CAP).contains(&(p as usize))
        }
        unsafe fn alloc(&self, layout: Layout, zeroed: bool) -> *mut u8 {
            if self.full.load(Ordering::Relaxed) {
                return std::ptr::null_mut();
            }
            let mut at = self.next.load(Ordering::Relaxed);
            loop {
                let start =
                    (self.buf as usize + at).next_multiple_of(layout.align()) - self.buf as usize;
                let end = start + layout.size();
                if end > CAP {
                    return std::ptr::null_mut();
                }
                match self
                    .next
                    .compare_exchange(at, end, Ordering::Relaxed, Ordering::Relaxed)
                {
                    Ok(_) => {
                        // SAFETY: `start..end` lies in the buffer and is this block's.
                        let p = unsafe { self.buf.add(start) };
                        if zeroed {
                            // SAFETY: as above.
                            unsafe { p.write_bytes(0, layout.size()) };
                        }
                        return p;
                    }
                    Err(now) => at = now,
                }
            }
        }
        unsafe fn dealloc(&self, _p: *mut u8, _layout: Layout) {
            self.frees.fetch_add(1, Ordering::Relaxed);
        }
        unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: the caller's contract; a new block, the old one copied and freed.
            unsafe {
                let new = Layout::from_size_align_unchecked(new_size, layout.align());
                let q = self.alloc(new, false);
                if !q.is_null() {
                    std::ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
                    self.dealloc(p, layout);
                }
                q
            }
        }
    }

    fn with_route<T>(route: Route, f: impl FnOnce() -> T) -> T {
        let before = set_thread_route(route);
        let v = f();
        set_thread_route(before);
        v
    }

    /// Blocks go home by address whatever thread frees them; a realloc across routes
    /// keeps the contents; an over-aligned, an over-sized request and a full arena fall
    /// back, each counted.
    #[test]
    fn blocks_go_home_and_fallbacks_are_counted() {
        let r = Routed::new(Bump::new(), System);
        let l = Layout::from_size_align(48, 16).unwrap();
        // SAFETY: every block is used within its layout and freed once with it.
        unsafe {
            let hot = with_route(Route::Hot, || r.alloc(l));
            assert!(r.hot().contains(hot));
            let cold = r.alloc(l);
            assert!(!r.hot().contains(cold));
            // Freed by the other route's threads.
            r.dealloc(hot, l);
            with_route(Route::Hot, || r.dealloc(cold, l));
            let s = r.stats();
            assert_eq!((s.hot.allocs, s.hot.frees, s.hot.foreign_frees), (1, 1, 1));
            assert_eq!(
                (s.cold.allocs, s.cold.frees, s.cold.foreign_frees),
                (1, 1, 1)
            );
            assert_eq!(r.hot().frees.load(Ordering::Relaxed), 1);

            // Realloc across routes: a cold block grown by a hot thread moves into the
            // arena with its contents, and back out when a cold thread grows it.
            let p = r.alloc(l);
            for i in 0..48 {
                *p.add(i) = i as u8;
            }
            let q = with_route(Route::Hot, || r.realloc(p, l, 200));
            assert!(r.hot().contains(q));
            assert!((0..48).all(|i| *q.add(i) == i as u8));
            let l200 = Layout::from_size_align(200, 16).unwrap();
            let back = r.realloc(q, l200, 400);
            assert!(!r.hot().contains(back));
            assert!((0..48).all(|i| *back.add(i) == i as u8));
            r.dealloc(back, Layout::from_size_align(400, 16).unwrap());
            let s = r.stats();
            assert_eq!((s.hot.moved, s.cold.moved), (1, 1));

            // Fallbacks: over-aligned, over the threshold, and a full arena.
            r.set_hot_max_bytes(1024);
            let big = Layout::from_size_align(4096, 8).unwrap();
            let aligned = Layout::from_size_align(64, 2 * HOT_MAX_ALIGN).unwrap();
            with_route(Route::Hot, || {
                for layout in [big, aligned] {
                    let p = r.alloc(layout);
                    assert!(!p.is_null() && !r.hot().contains(p));
                    assert_eq!(p as usize % layout.align(), 0);
                    r.dealloc(p, layout);
                }
                r.hot().full.store(true, Ordering::Relaxed);
                let p = r.alloc(l);
                assert!(!p.is_null() && !r.hot().contains(p));
                r.dealloc(p, l);
            });
            assert_eq!(r.stats().cold.fallbacks, 3);
            assert_eq!(r.stats().hot.allocs, 2, "nothing more from the arena");
        }
    }

    #[test]
    fn a_thread_starts_cold_and_its_route_is_its_own() {
        assert_eq!(thread_route(), Route::Cold);
        assert_eq!(set_thread_route(Route::Hot), Route::Cold);
        let other = std::thread::spawn(thread_route).join().unwrap();
        assert_eq!((thread_route(), other), (Route::Hot, Route::Cold));
        assert_eq!(set_thread_route(Route::Cold), Route::Hot);
    }
}
