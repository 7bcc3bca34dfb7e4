//! The `relay` binary: mimalloc as the global allocator, through the counting wrapper
//! (which proves the receive loop allocation-free). See `net::relay`.
#![deny(unsafe_code)]

use common::alloc::CountingAlloc;
use common::allocators::{hooks, mimalloc::MiMalloc, Introspect};
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: CountingAlloc<MiMalloc> = CountingAlloc::new(MiMalloc, MiMalloc::NAME);

fn main() -> ExitCode {
    net::relay::main_with(hooks(&GLOBAL))
}
