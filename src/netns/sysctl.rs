//! Network sysctls of a given namespace. /proc/sys/net files show the namespace of whoever
//! *opens* them, so the open happens on a thread inside the target namespace.

use std::fs;
use std::path::{Path, PathBuf};

use super::{run_in, NetnsError};

/// `/proc/sys/...` for a key in dotted (`net.ipv4.ip_forward`) or slashed
/// (`net/ipv4/conf/eth0.100/forwarding`) form. The slashed form lets a component contain a
/// dot, as interface names may. No component may be empty, `.` or `..`.
pub fn sysctl_path(key: &str) -> Result<PathBuf, NetnsError> {
    let invalid = |reason| NetnsError::InvalidSysctlKey {
        key: key.to_owned(),
        reason,
    };
    if key.contains('\0') {
        return Err(invalid("must not contain NUL"));
    }
    let separator = if key.contains('/') { '/' } else { '.' };
    let mut path = PathBuf::from("/proc/sys");
    for part in key.split(separator) {
        match part {
            "" => return Err(invalid("empty component")),
            "." | ".." => return Err(invalid("must not contain \".\" or \"..\" components")),
            _ => path.push(part),
        }
    }
    Ok(path)
}

fn in_ns<T: Send>(
    ns: Option<&Path>,
    f: impl FnOnce() -> Result<T, NetnsError> + Send,
) -> Result<T, NetnsError> {
    match ns {
        Some(path) => run_in(path, f)?,
        None => f(),
    }
}

/// Write a sysctl inside the namespace at `ns` (`None`: the caller's own namespace).
pub fn sysctl_set(ns: Option<&Path>, key: &str, value: &str) -> Result<(), NetnsError> {
    let path = sysctl_path(key)?;
    in_ns(ns, || {
        fs::write(&path, value).map_err(|source| NetnsError::WriteSysctl {
            key: key.to_owned(),
            source,
        })
    })
}

/// Read a sysctl (trimmed) inside the namespace at `ns` (`None`: the caller's own).
pub fn sysctl_get(ns: Option<&Path>, key: &str) -> Result<String, NetnsError> {
    let path = sysctl_path(key)?;
    in_ns(ns, || {
        fs::read_to_string(&path)
            .map(|s| s.trim_end().to_owned())
            .map_err(|source| NetnsError::ReadSysctl {
                key: key.to_owned(),
                source,
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ErrorKind, HasKind};

    #[test]
    fn keys_map_to_proc_sys_paths() {
        assert_eq!(
            sysctl_path("net.ipv4.ip_forward").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/ip_forward")
        );
        assert_eq!(
            sysctl_path("net/ipv4/conf/eth0.100/forwarding").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/conf/eth0.100/forwarding")
        );
    }

    #[test]
    fn traversal_and_empty_components_are_invalid() {
        for key in [
            "",
            "net..ipv4",
            "net/../etc",
            "../x",
            "net.ipv4.",
            "/net/ipv4",
            "a\0b",
        ] {
            let err = sysctl_path(key).expect_err(key);
            assert_eq!(err.kind(), ErrorKind::Invalid, "{key:?}");
        }
    }

    #[test]
    fn reads_own_namespace() {
        let v = sysctl_get(Some(Path::new("/proc/self/ns/net")), "net.ipv4.ip_forward").unwrap();
        assert!(v == "0" || v == "1");
        let err = sysctl_get(None, "net.ipv4.no_such_key").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
    }
}
