//! The `corral` binary: parse arguments, set up logging, run. Everything else is in the library.

/// mimalloc rather than glibc's malloc: under load a node spends much of its time allocating
/// small, short-lived buffers (frames, log entries, tree keys), and glibc's arenas showed up
/// as ~18% of a follower's CPU (`_int_malloc`, `malloc_consolidate`, `unlink_chunk`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    keep_freed_memory();
    corral::cli::main()
}

/// Give freed memory back to the OS after a minute instead of mimalloc's default second. The
/// Raft log stays in memory until the next snapshot (about 100 MB per node at 12,000 writes/s),
/// so memory is freed in bulk and needed again within seconds; given back after a second,
/// each regrowth faulted fresh pages in (transparent huge pages, 2 MiB zeroed per fault): 3% of
/// the machine's CPU in write x64. A/B, 2 pairs, with the setting from the environment:
/// write x1 +4-8%, write x64 +2-5%, ephemeral x64 +5%.
fn keep_freed_memory() {
    /// `mi_option_purge_delay`: its place in mimalloc's C enum (v2 and v3 alike); the Rust
    /// bindings name no constant for it.
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    /// mimalloc v3's default for it: anything else means the enum moved, or the user set
    /// `MIMALLOC_PURGE_DELAY`; either way it is left alone.
    const DEFAULT_MS: std::ffi::c_long = 1_000;
    #[allow(unsafe_code)]
    // SAFETY: plain C calls on an option index; called first in `main`, before any other
    // thread exists (mimalloc's option setters are not thread-safe).
    unsafe {
        if libmimalloc_sys::mi_option_get(PURGE_DELAY) == DEFAULT_MS {
            libmimalloc_sys::mi_option_set(PURGE_DELAY, 60_000);
        }
    }
}
