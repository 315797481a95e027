//! The one wasmtime `Engine` of a process, configured for deterministic execution: every
//! replica must reach the same result, fuel use and trap for the same call.
//!
//! - Fuel (never time) bounds `apply`, `expire`, `timer` and `migrate`; operator costs are pinned
//!   here so a wasmtime upgrade cannot silently change them (they are part of the contract:
//!   out-of-fuel is a replicated outcome).
//! - NaNs are canonicalized (x86 and Arm produce different NaN bits otherwise); threads,
//!   shared memory and relaxed SIMD are off (non-deterministic by nature; threads are not even
//!   compiled into this wasmtime).
//! - Epoch interruption exists for `query` only (it runs on one replica; its result is not
//!   replicated, so a wall-clock deadline is fine there).
//! - The pooling allocator with resident memory makes a fresh instance per call cheap, and
//!   bounds checks in code (no guard pages, no signal handlers) keep it free of `mprotect`
//!   calls: traps are the same either way, and the same on every replica.

use std::time::Duration;

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, OperatorCost, PoolingAllocationConfig};

/// Linear memory a plugin instance may grow to.
pub const MAX_MEMORY_BYTES: usize = 32 << 20;
/// Wasm stack: deep recursion traps (deterministically, on homogeneous replicas).
pub const MAX_WASM_STACK: usize = 512 << 10;
/// How often the epoch advances, and so the granularity of a query's deadline.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Concurrent instances: one apply at a time, plus queries served in parallel.
const POOL_INSTANCES: u32 = 64;

pub fn new_engine() -> anyhow::Result<Engine> {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(POOL_INSTANCES)
        .total_core_instances(POOL_INSTANCES * 8)
        .total_memories(POOL_INSTANCES * 2)
        .total_tables(POOL_INSTANCES * 8)
        .max_core_instances_per_component(16)
        .max_memories_per_component(2)
        .max_tables_per_component(8)
        .max_memory_size(MAX_MEMORY_BYTES)
        .linear_memory_keep_resident(2 << 20)
        .table_keep_resident(64 << 10)
        // With it (Linux 6.7+), resetting a slot touches only the pages the call dirtied, not
        // the whole resident 2 MiB.
        .pagemap_scan(Enabled::Auto);

    let mut cost = OperatorCost::new();
    // Growing memory is real work (zeroed pages): make it cost fuel like a loop that touched them.
    cost.variable.memory_grow_per_page = 64;

    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .consume_fuel(true)
        .operator_cost(cost)
        .epoch_interruption(true)
        .cranelift_nan_canonicalization(true)
        .wasm_relaxed_simd(false)
        .max_wasm_stack(MAX_WASM_STACK)
        // Bounds checks in code, not guard pages. With guard pages, each fresh instance of a
        // plugin that grew its memory in the last call `mprotect`s the slot back to its
        // initial size, and the call grows it again: two TLB shootdowns (an IPI to every
        // core) per call, 3.4% of all samples at plugin x64. Without them the slot stays
        // read-write at the largest size it reached, and reset only zeroes dirtied pages.
        .signals_based_traps(false)
        .memory_guard_size(0)
        .memory_reservation(MAX_MEMORY_BYTES as u64)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config).map_err(|e| anyhow::anyhow!("wasm engine: {e}"))
}

/// Advance `engine`'s epoch every [`EPOCH_TICK`] for as long as the engine lives.
pub fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new().name("wasm-epoch".into()).spawn(move || loop {
        std::thread::sleep(EPOCH_TICK);
        match weak.upgrade() {
            Some(engine) => engine.increment_epoch(),
            None => return,
        }
    });
    if let Err(e) = spawned {
        tracing::error!("no epoch ticker thread ({e}): queries will have no time limit");
    }
}

/// What compiled code depends on besides the wasm bytes: the engine's settings and wasmtime's
/// version. Part of the key of every cached artifact (an artifact compiled without NaN
/// canonicalization would otherwise be accepted by an engine that has it).
pub fn compatibility_key(engine: &Engine) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("{:016x}-wasmtime-48.0.8", h.finish())
}
