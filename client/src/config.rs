//! `client.toml`: where the ensemble is and which certificate to present.
//!
//! ```toml
//! endpoints = ["127.0.0.1:7001", "127.0.0.1:7002"]
//! ca = "ca.pem"          # relative paths are relative to this file
//! cert = "client.pem"
//! key = "client.key"
//! timeout_ms = 10000     # optional: how long one request may take, retries included
//! multiplex = true       # optional: all requests on one stream per connection (false: a
//!                        # stream each, as clients before it did)
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ClientError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    pub endpoints: Vec<String>,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Send every request of a connection on one multiplexed stream (see
    /// `corral_proto::mux`) rather than a stream each: less work per request at both ends.
    #[serde(default = "yes")]
    pub multiplex: bool,
}

fn yes() -> bool {
    true
}

fn default_timeout_ms() -> u64 {
    10_000
}

impl ClientConfig {
    /// Read a config file; relative certificate paths are resolved against its directory.
    pub fn load(path: &Path) -> Result<Self, ClientError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ClientError::Config(format!("{}: cannot read: {e}", path.display())))?;
        let mut cfg: ClientConfig = toml::from_str(&text)
            .map_err(|e| ClientError::Config(format!("{}: {}", path.display(), e.message().replace('\n', " "))))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [&mut cfg.ca, &mut cfg.cert, &mut cfg.key] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        if cfg.endpoints.is_empty() {
            return Err(ClientError::Config(format!("{}: field `endpoints` is empty", path.display())));
        }
        Ok(cfg)
    }

    /// The same identity, pinned to one endpoint.
    pub fn pinned(&self, endpoint: &str) -> ClientConfig {
        ClientConfig { endpoints: vec![endpoint.to_string()], ..self.clone() }
    }
}
