//! Compiled plugins, on disk: compiling a plugin takes a tenth of a second or more, loading a
//! compiled artifact well under a millisecond, so a restarted node is serving at once.
//!
//! An artifact's name is a hash of (the component's hash, the engine's compatibility key),
//! and the key includes wasmtime's version: an artifact built by another engine configuration
//! (say, without NaN canonicalization) is never picked up.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

pub struct ArtifactCache {
    dir: PathBuf,
    compat: String,
}

impl ArtifactCache {
    pub fn new(dir: &Path, compat: String) -> ArtifactCache {
        ArtifactCache { dir: dir.to_path_buf(), compat }
    }

    fn path(&self, code_hash: &str) -> PathBuf {
        let mut h = Sha256::new();
        h.update(code_hash.as_bytes());
        h.update(b"\0");
        h.update(self.compat.as_bytes());
        self.dir.join(format!("{}.cwasm", hex::encode(h.finalize())))
    }

    /// The compiled form of the code whose hash is `code_hash`, if it is on disk.
    pub fn load(&self, engine: &Engine, code_hash: &str) -> Option<Component> {
        let path = self.path(code_hash);
        // Read, not mapped: a mapped file truncated under a running node (by an operator, a
        // full disk) would kill it with SIGBUS (the cache test did exactly that).
        let bytes = std::fs::read(&path).ok()?;
        // SAFETY: the file is one this process kind wrote (below, atomically, under a name that
        // includes the engine's compatibility hash); wasmtime also checks its header.
        #[allow(unsafe_code)]
        match unsafe { Component::deserialize(engine, &bytes) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), "unusable compiled plugin, recompiling: {e}");
                None
            }
        }
    }

    /// Compile `code` (whose hash is `code_hash`) and write the result for next time.
    pub fn compile(&self, engine: &Engine, code_hash: &str, code: &[u8]) -> Result<Component, String> {
        let path = self.path(code_hash);
        let component = Component::new(engine, code).map_err(|e| format!("cannot compile the plugin: {e:#}"))?;
        if let Err(e) = self.save(&path, &component) {
            tracing::warn!(path = %path.display(), "cannot cache a compiled plugin: {e}");
        }
        Ok(component)
    }

    fn save(&self, path: &Path, component: &Component) -> anyhow::Result<()> {
        let bytes = component.serialize().map_err(|e| anyhow::anyhow!("{e}"))?;
        std::fs::create_dir_all(&self.dir)?;
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = path.with_extension(format!("tmp-{}-{n}", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}
