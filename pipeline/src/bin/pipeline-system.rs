//! `pipeline-system`: the single-process pipeline with system as the only global allocator
//! (through the counting wrapper), to compare with the routing hybrid (`pipeline`).
#![deny(unsafe_code)]

use common::alloc::CountingAlloc;
use common::allocators::{hooks, system::System, Introspect};
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: CountingAlloc<System> = CountingAlloc::new(System, System::NAME);

fn main() -> ExitCode {
    pipeline::main_with(hooks(&GLOBAL), None)
}
