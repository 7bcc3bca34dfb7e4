//! `engine-system`: the engine with the C library's `malloc` (glibc) as the global
//! allocator, through the counting wrapper; the baseline of the allocator comparisons.
#![deny(unsafe_code)]

use common::alloc::CountingAlloc;
use common::allocators::{hooks, system::System, Introspect};
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: CountingAlloc<System> = CountingAlloc::new(System, System::NAME);

fn main() -> ExitCode {
    engine::main_with(hooks(&GLOBAL))
}
