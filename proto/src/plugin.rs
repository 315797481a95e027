//! Plugin requests' payloads and replies: what a client sees of the plugin platform.

use serde::{Deserialize, Serialize};

/// A deployed plugin, as `plugin ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginInfo {
    pub name: String,
    /// 1 at deploy, +1 per upgrade.
    pub version: u32,
    /// Hex SHA-256 of the component every replica runs.
    pub hash: String,
    /// Bytes of that component.
    pub size: u64,
    /// The log index of the deploy, and of the last upgrade (= deploy if none).
    pub deployed_at: u64,
    pub upgraded_at: u64,
    /// Fuel per call.
    pub fuel: u64,
    /// Bytes its key-value namespace may hold, and holds.
    pub quota: u64,
    pub used: u64,
    /// Who may call (`w`) and query (`r`) it; admins always may.
    pub acl: Vec<crate::AclEntry>,
}

/// A message a plugin sent a session (`notify`), kept in the session's replicated mailbox until
/// the client acknowledges it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Its position: (the log index that sent it, its number within that entry). Increasing.
    pub pos: (u64, u32),
    pub plugin: String,
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

/// A valid plugin name: 1–64 of `a-z 0-9 _ -`, starting with a letter or digit.
pub fn validate_name(name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
    if name.is_empty() || name.len() > 64 {
        return Err(format!("plugin name {name:?} must be 1 to 64 characters"));
    }
    if !name.chars().all(ok_char) || name.starts_with(['_', '-']) {
        return Err(format!(
            "plugin name {name:?} may hold only a-z, 0-9, '_' and '-', and start with a letter or digit"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        assert!(super::validate_name("fair-lock_2").is_ok());
        for bad in ["", "Lock", "-x", "a/b", "a\0b", &"x".repeat(65)] {
            assert!(super::validate_name(bad).is_err(), "{bad:?}");
        }
    }
}
