//! Path rules, as ZooKeeper's: absolute, `/`-separated, no empty component, no trailing slash,
//! no NUL or other control characters, no `.` or `..` components.

/// Maximum length of a path in bytes.
pub const MAX_PATH_BYTES: usize = 4096;

/// Why a path is invalid, or `Ok(())`.
pub fn validate(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("path is empty");
    }
    if path.len() > MAX_PATH_BYTES {
        return Err("path is longer than 4096 bytes");
    }
    if !path.starts_with('/') {
        return Err("path must be absolute (start with '/')");
    }
    if path == "/" {
        return Ok(());
    }
    if path.ends_with('/') {
        return Err("path must not end with '/'");
    }
    for component in path[1..].split('/') {
        if component.is_empty() {
            return Err("path has an empty component ('//')");
        }
        if component == "." || component == ".." {
            return Err("path components '.' and '..' are not allowed");
        }
        if component.chars().any(|c| c.is_control()) {
            return Err("path contains a NUL or control character");
        }
    }
    Ok(())
}

/// The parent of a valid, non-root path.
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// The last component of a valid, non-root path.
pub fn name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_good_paths() {
        for p in ["/", "/a", "/a/b", "/a-b_c.d/e f", "/ünïcode"] {
            assert_eq!(validate(p), Ok(()), "{p}");
        }
    }

    #[test]
    fn rejects_bad_paths() {
        for p in ["", "a", "a/b", "/a/", "//", "/a//b", "/a/\0", "/a/./b", "/..", "/a\nb"] {
            assert!(validate(p).is_err(), "{p:?} accepted");
        }
        assert!(validate(&format!("/{}", "x".repeat(MAX_PATH_BYTES))).is_err());
    }

    #[test]
    fn parent_and_name() {
        assert_eq!(parent("/a"), "/");
        assert_eq!(parent("/a/b/c"), "/a/b");
        assert_eq!(name("/a/b/c"), "c");
    }
}
