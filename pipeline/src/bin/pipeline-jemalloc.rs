//! `pipeline-jemalloc`: the single-process pipeline with jemalloc as the only global allocator
//! (through the counting wrapper), to compare with the routing hybrid (`pipeline`).
#![deny(unsafe_code)]

use common::alloc::CountingAlloc;
use common::allocators::{hooks, jemalloc::Jemalloc, Introspect};
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: CountingAlloc<Jemalloc> = CountingAlloc::new(Jemalloc, Jemalloc::NAME);

fn main() -> ExitCode {
    pipeline::main_with(hooks(&GLOBAL), None)
}
