//! `mxguard` executable: everything lives in the library (`mxguard::cli`); this only hands over
//! the process exit code, and chooses the allocator.

/// mimalloc instead of glibc's malloc: the embedded store's write-behind log allocates and
/// frees small buffers on different threads all day, which glibc keeps as free-but-resident
/// arena memory (measured: 246 MB RSS of which 120 MB trimmable, with a million rate-limit
/// keys); mimalloc returns it (docs/architecture.md, "Memory").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    mxguard::cli::main()
}
