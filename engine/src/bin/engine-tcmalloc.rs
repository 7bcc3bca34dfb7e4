//! `engine-tcmalloc`: the engine with Google's tcmalloc (tcmalloc-better) as the global
//! allocator, through the counting wrapper.
//!
//! With glibc 2.35 or later tcmalloc runs without its per-CPU caches unless the process
//! starts with `GLIBC_TUNABLES=glibc.pthread.rseq=0`; the run manifest records that
//! variable, and the allocator version and statistics say which state the run had
//! (`per-CPU caches on|off`, `tcmalloc.per_cpu_caches_active`). Using these hooks also
//! links the tcmalloc code that switches the per-CPU caches on at start-up, which
//! tcmalloc-better alone leaves out (see `common::allocators::tcmalloc`).
//!
//! tcmalloc-better suggests starting `TCMalloc::process_background_actions_thread()`.
//! This binary does not: in this build tcmalloc reports that it needs no background
//! actions (its `background.cc` is not linked), so the call would start nothing, and a
//! thread that did wake up periodically would add preemptions on a machine without
//! spare cores. `common`'s test `no_background_actions_are_needed` fails if that
//! changes.
#![deny(unsafe_code)]

use common::alloc::CountingAlloc;
use common::allocators::{hooks, tcmalloc::TCMalloc, Introspect};
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: CountingAlloc<TCMalloc> = CountingAlloc::new(TCMalloc, TCMalloc::NAME);

fn main() -> ExitCode {
    engine::main_with(hooks(&GLOBAL))
}
