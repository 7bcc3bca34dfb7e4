//! `feed-mimalloc`: the feed with mimalloc as the global allocator, through the
//! counting wrapper, to compare with jemalloc in the cold-history role.
#![deny(unsafe_code)]

use common::alloc::CountingAlloc;
use common::allocators::{hooks, mimalloc::MiMalloc, Introspect};
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: CountingAlloc<MiMalloc> = CountingAlloc::new(MiMalloc, MiMalloc::NAME);

fn main() -> ExitCode {
    feed::main_with(hooks(&GLOBAL))
}
