//! The noise-free costs (see `body`) with Google's tcmalloc (tcmalloc-better) as the
//! global allocator, through the counting wrapper as in the `feed` and `engine`
//! binaries.
//!
//! [`allocator`] reads tcmalloc's version, which links the code that switches its
//! per-CPU caches on at start-up, as in `feed-tcmalloc` and `engine-tcmalloc`. Under
//! valgrind they stay off whatever `GLIBC_TUNABLES` says (valgrind 3.19 does not
//! implement the `rseq` system call they need); every run reports the state it had.

use common::allocators::{tcmalloc::TCMalloc, Introspect};

#[macro_use]
mod body;

// Switches tcmalloc's allocation sampling off on this thread, so that two runs count
// the same: each thread's sampler draws its sampling points from the cycle counter,
// and a sampled allocation takes a slow path of thousands of instructions. Setting the
// interval to 0 leaves the thread's next point (already drawn, about 2 MiB away on
// average) in place; one 256 MiB allocation reaches it, after which the next point is
// fixed 128 MiB ahead. The binaries keep tcmalloc's default (sampling every 2 MiB on
// average), a cost these counts leave out.
costs_main!(TCMalloc, {
    common::allocators::tcmalloc::set_profile_sampling_interval(0);
    drop(std::hint::black_box(Vec::<u8>::with_capacity(256 << 20)));
});
