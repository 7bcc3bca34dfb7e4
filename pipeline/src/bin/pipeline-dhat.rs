//! `pipeline-dhat`: the single-process pipeline on dhat-rs's profiling allocator, for
//! `lab profile`: every allocation of every thread is recorded with its full backtrace
//! (under dhat's lock: the run is much slower than the others, and its latencies are
//! not the pipeline's), and the profile is written to `OUT/dhat-heap.json` (owner-only)
//! when both sides have ended. It refuses an output folder that holds one already.
#![deny(unsafe_code)]

use common::alloc::CountingAlloc;
use common::allocators::{dhat::Alloc, hooks, Introspect};
use common::failure::Failure;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: CountingAlloc<Alloc> = CountingAlloc::new(Alloc, Alloc::NAME);

/// The running profiler; dropping it writes the profile, then makes it owner-only.
struct Profiled {
    profiler: Option<dhat::Profiler>,
    path: PathBuf,
}

impl Drop for Profiled {
    fn drop(&mut self) {
        drop(self.profiler.take());
        if let Err(e) = std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(0o600))
        {
            eprintln!("pipeline: warning: {}: {e}", self.path.display());
        }
    }
}

fn main() -> ExitCode {
    pipeline::main_guarded(hooks(&GLOBAL), None, &|args| {
        let path = args.out.join(common::runargs::DHAT_PROFILE);
        if path.exists() {
            return Err(Failure::bad_input(anyhow::anyhow!(
                "{} exists: profile into a new folder",
                path.display()
            )));
        }
        let profiler = dhat::Profiler::builder()
            .file_name(&path)
            .trim_backtraces(None)
            .build();
        Ok(Box::new(Profiled {
            profiler: Some(profiler),
            path,
        }))
    })
}
