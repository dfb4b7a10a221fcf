//! Path rules of DESIGN §2. Each broken rule has its own message so a user knows what to fix.

use crate::{ApiError, ErrorCode};

/// Longest path accepted, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;

fn invalid(path: &str, rule: &str) -> ApiError {
    let shown: String = path.chars().take(80).flat_map(char::escape_debug).collect();
    ApiError::new(ErrorCode::InvalidPath, format!("invalid path \"{shown}\": {rule}"))
}

/// Checks a path against every rule; `Ok` means it is absolute and canonical.
pub fn validate_path(path: &str) -> Result<(), ApiError> {
    if path.len() > MAX_PATH_BYTES {
        return Err(ApiError {
            limit: Some(MAX_PATH_BYTES as u64),
            ..invalid(path, &format!("longer than {MAX_PATH_BYTES} bytes"))
        });
    }
    if !path.starts_with('/') {
        return Err(invalid(path, "must start with '/'"));
    }
    if path == "/" {
        return Ok(());
    }
    if path.ends_with('/') {
        return Err(invalid(path, "must not end with '/'"));
    }
    if path.chars().any(char::is_control) {
        return Err(invalid(path, "must not contain control characters"));
    }
    for segment in path[1..].split('/') {
        match segment {
            "" => return Err(invalid(path, "must not contain an empty segment ('//')")),
            "." | ".." => return Err(invalid(path, "must not contain '.' or '..' segments")),
            _ => {}
        }
    }
    Ok(())
}

/// The parent of a valid non-root path (`/a/b` → `/a`, `/a` → `/`).
pub fn parent_of(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

/// `parent` + `/` + `name`, without doubling the root's slash.
pub fn join_child(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_canonical_paths() {
        for p in ["/", "/a", "/a/b", "/service/élection", "/x.y", "/a..b", "/-_~"] {
            assert!(validate_path(p).is_ok(), "{p}");
        }
    }

    #[test]
    fn names_the_broken_rule() {
        let cases = [
            ("", "start with '/'"),
            ("a/b", "start with '/'"),
            ("/a/", "end with '/'"),
            ("/a//b", "empty segment"),
            ("/a/./b", "'.' or '..'"),
            ("/a/..", "'.' or '..'"),
            ("/a\u{0}b", "control"),
            ("/a\nb", "control"),
        ];
        for (p, rule) in cases {
            let e = validate_path(p).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidPath);
            assert!(e.message.contains(rule), "{p:?}: {}", e.message);
        }
        let long = format!("/{}", "x".repeat(MAX_PATH_BYTES));
        let e = validate_path(&long).unwrap_err();
        assert_eq!(e.limit, Some(MAX_PATH_BYTES as u64));
    }

    #[test]
    fn parents_and_children() {
        assert_eq!(parent_of("/"), None);
        assert_eq!(parent_of("/a"), Some("/"));
        assert_eq!(parent_of("/a/b/c"), Some("/a/b"));
        assert_eq!(join_child("/", "a"), "/a");
        assert_eq!(join_child("/a", "b"), "/a/b");
    }
}
