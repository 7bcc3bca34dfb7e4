//! `engine-jemalloc`: the engine with jemalloc (tikv-jemallocator) as the global
//! allocator, through the counting wrapper, to compare with mimalloc in the hot role.
#![deny(unsafe_code)]

use common::alloc::CountingAlloc;
use common::allocators::{hooks, jemalloc::Jemalloc, Introspect};
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: CountingAlloc<Jemalloc> = CountingAlloc::new(Jemalloc, Jemalloc::NAME);

fn main() -> ExitCode {
    engine::main_with(hooks(&GLOBAL))
}
