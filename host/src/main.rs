//! The `corral` binary: parse arguments, set up logging, run. Everything else is in the library.

/// mimalloc rather than glibc's malloc: under load a node spends much of its time allocating
/// small, short-lived buffers (frames, log entries, tree keys), and glibc's arenas showed up
/// as ~18% of a follower's CPU (`_int_malloc`, `malloc_consolidate`, `unlink_chunk`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    corral::cli::main()
}
