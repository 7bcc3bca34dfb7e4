//! `pipeline-mimalloc`: the single-process pipeline with mimalloc as the only global allocator
//! (through the counting wrapper), to compare with the routing hybrid (`pipeline`).
#![deny(unsafe_code)]

use common::alloc::CountingAlloc;
use common::allocators::{hooks, mimalloc::MiMalloc, Introspect};
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: CountingAlloc<MiMalloc> = CountingAlloc::new(MiMalloc, MiMalloc::NAME);

fn main() -> ExitCode {
    pipeline::main_with(hooks(&GLOBAL), None)
}
