//! The WebAssembly plugin runtime of one node: the engine, the host functions, compiled
//! plugins (in memory and on disk). It holds no replicated state: which plugin runs, its code
//! and its key-value namespace all live in the state machine (`state::plugins`), which calls
//! in here to run them. Every replica therefore runs the same code at the same index.
//!
//! - `upload`: what an upload may be; turning it into the component all replicas run.
//! - `engine`: the deterministic engine settings.
//! - `sandbox`: one call (an instance fresh for its entry, fuel, memory limit, host functions).
//! - `view`: the buffered key-value view a call reads and writes.
//! - `cache`: compiled artifacts on disk.

mod cache;
mod engine;
mod sandbox;
mod upload;
mod view;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use wasmtime::component::Linker;
use wasmtime::Engine;

pub use sandbox::{
    CallContext, Compiled, Data, Effects, Export, Outcome, TimerOp, WarmSlot, HOST_CALL_FUEL, MAX_OUTPUT_BYTES,
};
pub use upload::{HOST_INTERFACE, MAX_UPLOAD_BYTES};
pub use view::{KvView, Writes};

/// Fuel per call unless the deployer says otherwise: ~1.5 ms of guest code on this machine kind.
pub const DEFAULT_FUEL: u64 = 10_000_000;
/// The most fuel a deployer may grant a call.
pub const MAX_FUEL: u64 = 1_000_000_000;

/// An upload, validated and compiled: what the leader proposes.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The component form of the upload (what replicas store and run).
    pub code: Vec<u8>,
    /// Hex SHA-256 of `code`.
    pub hash: String,
    pub has_migrate: bool,
}

pub struct Plugins {
    engine: Engine,
    linker: Linker<Data>,
    /// Compiled plugins by code hash. Looked up, never iterated: its order cannot matter.
    compiled: Mutex<HashMap<String, Arc<Compiled>>>,
    cache: cache::ArtifactCache,
}

pub fn code_hash(code: &[u8]) -> String {
    hex::encode(Sha256::digest(code))
}

/// The hash a server will report for this upload once deployed (its component form's).
pub fn upload_hash(upload: &[u8]) -> Result<String, String> {
    upload::to_component(upload).map(|c| code_hash(&c)).map_err(|e| e.0)
}

/// The coordination recipes `corral dev` deploys, each under its own name.
pub const RECIPES: &[&str] =
    &["lock", "election", "counter", "semaphore", "queue", "barrier", "rwlock", "multilock", "registry"];

impl Plugins {
    /// The runtime, with compiled artifacts cached under `cache_dir`.
    pub fn new(cache_dir: &Path) -> anyhow::Result<Arc<Plugins>> {
        let engine = engine::new_engine()?;
        engine::start_epoch_ticker(&engine);
        let linker = sandbox::linker(&engine)?;
        let cache = cache::ArtifactCache::new(cache_dir, engine::compatibility_key(&engine));
        Ok(Arc::new(Plugins { engine, linker, compiled: Mutex::new(HashMap::new()), cache }))
    }

    /// Validate an upload and compile it (on the leader, before proposing): a refusal says why.
    pub fn prepare(&self, upload: &[u8]) -> Result<Prepared, String> {
        let code = upload::to_component(upload).map_err(|e| e.0)?;
        let hash = code_hash(&code);
        let compiled = self.compiled(&hash, || Ok(Some(code.clone())))?;
        sandbox::check_exports(&self.engine, &compiled)?;
        Ok(Prepared { has_migrate: compiled.has_migrate(), code, hash })
    }

    /// The compiled plugin whose code has hash `hash`; `code` fetches the code if this node
    /// has not compiled it yet (after a restart, or a snapshot brought it).
    pub fn compiled(
        &self,
        hash: &str,
        code: impl FnOnce() -> Result<Option<Vec<u8>>, crate::state::StoreError>,
    ) -> Result<Arc<Compiled>, String> {
        if let Some(c) = self.lock().get(hash) {
            return Ok(c.clone());
        }
        let component = match self.cache.load(&self.engine, hash) {
            Some(c) => c,
            None => {
                let code =
                    code().map_err(|e| e.to_string())?.ok_or_else(|| format!("no code for plugin hash {hash}"))?;
                if code_hash(&code) != hash {
                    return Err(format!("the stored code does not have hash {hash}"));
                }
                self.cache.compile(&self.engine, hash, &code)?
            }
        };
        let pre = self.linker.instantiate_pre(&component).map_err(|e| describe_link_error(&e))?;
        let compiled = Arc::new(Compiled::new(pre)?);
        self.lock().insert(hash.to_string(), compiled.clone());
        Ok(compiled)
    }

    /// The most fuel one call of the code with hash `hash` has burned on this node; `None` if
    /// it is not compiled here or no call of it has run yet. Node-local: for placement only.
    pub fn peak_fuel(&self, hash: &str) -> Option<u64> {
        self.lock().get(hash).and_then(|c| c.peak_fuel())
    }

    /// Forget a compiled plugin nothing runs any more.
    pub fn forget(&self, hash: &str) {
        self.lock().remove(hash);
    }

    /// Run a call (see [`sandbox::call`]); `warm`: the entry's instance slot, none for a query.
    pub fn call(
        &self,
        compiled: &Arc<Compiled>,
        data: Data,
        fuel: u64,
        ctx: CallContext,
        export: Export,
        warm: Option<&WarmSlot>,
    ) -> Outcome {
        sandbox::call(&self.engine, compiled, data, fuel, ctx, export, warm)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Compiled>>> {
        self.compiled.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests;

fn describe_link_error(e: &wasmtime::Error) -> String {
    format!("the plugin's imports do not match what the host offers ({HOST_INTERFACE}): {e:#}")
}

/// Where the build put the bundled plugins (`plugins/`, built by `host/build.rs`).
pub const BUNDLED_DIR: &str = env!("CORRAL_PLUGINS_DIR");
