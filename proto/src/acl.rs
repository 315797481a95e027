//! Access control, as ZooKeeper's: each node has a list of (identity, permissions); `*` is
//! anyone. Identities come from client certificates (`<name>.client.corral` → `name`).
//! Create and delete are checked on the parent, read, write and admin on the node itself.

use serde::{Deserialize, Serialize};

pub const READ: u8 = 1;
pub const WRITE: u8 = 2;
pub const CREATE: u8 = 4;
pub const DELETE: u8 = 8;
pub const ADMIN: u8 = 16;
pub const ALL: u8 = READ | WRITE | CREATE | DELETE | ADMIN;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclEntry {
    /// A client identity, or `*` for anyone.
    pub id: String,
    /// A mask of READ, WRITE, CREATE, DELETE, ADMIN.
    pub perms: u8,
}

/// Whether `acl` grants `identity` the permission `perm`.
pub fn allows(acl: &[AclEntry], identity: &str, perm: u8) -> bool {
    acl.iter().any(|e| (e.id == "*" || e.id == identity) && e.perms & perm != 0)
}

/// The letter for each permission, in order.
const LETTERS: [(char, u8); 5] = [('r', READ), ('w', WRITE), ('c', CREATE), ('d', DELETE), ('a', ADMIN)];

/// Parse `"alice:rw,*:r"`.
pub fn parse(spec: &str) -> Result<Vec<AclEntry>, String> {
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, letters) = part.split_once(':').ok_or_else(|| format!("{part:?}: expected ID:PERMS"))?;
        if id.is_empty() {
            return Err(format!("{part:?}: empty identity"));
        }
        let mut perms = 0;
        for ch in letters.chars() {
            let (_, bit) = LETTERS
                .iter()
                .find(|(l, _)| *l == ch)
                .ok_or_else(|| format!("{part:?}: unknown permission {ch:?} (use r, w, c, d, a)"))?;
            perms |= bit;
        }
        out.push(AclEntry { id: id.to_string(), perms });
    }
    if out.is_empty() {
        return Err("an ACL needs at least one entry".into());
    }
    Ok(out)
}

/// `"alice:rw,*:r"`.
pub fn format(acl: &[AclEntry]) -> String {
    acl.iter()
        .map(|e| {
            let letters: String = LETTERS.iter().filter(|(_, b)| e.perms & b != 0).map(|(l, _)| *l).collect();
            format!("{}:{letters}", e.id)
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_format_and_check() {
        let acl = parse("alice:rw, *:r").expect("parse");
        assert_eq!(format(&acl), "alice:rw,*:r");
        assert!(allows(&acl, "alice", WRITE) && allows(&acl, "bob", READ) && !allows(&acl, "bob", WRITE));
        for bad in ["", "alice", ":r", "alice:rx"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
