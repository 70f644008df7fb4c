//! A process to run inside a container (the command, or an `exec`): argv, environment,
//! working directory and user, and the last steps before `execve` — switch user, change
//! directory, find the program on the container's PATH.

use std::convert::Infallible;
use std::ffi::CString;
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid};
use serde::{Deserialize, Serialize};

use super::{os_err, RuntimeError};

/// The PATH a container gets when its image sets none (Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessSpec {
    pub args: Vec<String>,
    /// `KEY=VALUE` entries; later entries win.
    pub env: Vec<String>,
    /// Absolute; empty means `/`.
    pub cwd: String,
    /// `user`, `uid`, `user:group` or `uid:gid`; empty means root.
    pub user: String,
}

/// Resolve `user` against `/etc/passwd` and `/etc/group` under `root` (the container's).
/// Returns uid, gid and the home directory from passwd when known.
pub fn resolve_user(root: &Path, user: &str) -> Result<(u32, u32, Option<String>), RuntimeError> {
    if user.is_empty() {
        return Ok((0, 0, Some("/root".into())));
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap_or_default();
    let entry = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 7 && (f[0] == u || (u.parse::<u32>().is_ok() && f[2] == u)));
    let (uid, mut gid, home) = match (&entry, u.parse::<u32>()) {
        (Some(f), _) => (
            f[2].parse().map_err(|_| bad_passwd(u))?,
            f[3].parse().map_err(|_| bad_passwd(u))?,
            Some(f[5].to_string()),
        ),
        (None, Ok(uid)) => (uid, 0, None),
        (None, Err(_)) => {
            return Err(RuntimeError::Invalid(format!(
                "unable to find user {u}: no matching entries in passwd file"
            )))
        }
    };
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                let groups = std::fs::read_to_string(root.join("etc/group")).unwrap_or_default();
                groups
                    .lines()
                    .map(|l| l.split(':').collect::<Vec<_>>())
                    .find(|f| f.len() >= 3 && f[0] == g)
                    .and_then(|f| f[2].parse().ok())
                    .ok_or_else(|| {
                        RuntimeError::Invalid(format!(
                            "unable to find group {g}: no matching entries in group file"
                        ))
                    })?
            }
        };
    }
    Ok((uid, gid, home))
}

fn bad_passwd(user: &str) -> RuntimeError {
    RuntimeError::Invalid(format!("malformed passwd entry for user {user}"))
}

/// The environment a process starts with: defaults, then `env` (later entries win).
pub fn environment(env: &[String], hostname: Option<&str>, home: &str) -> Vec<String> {
    let mut out: Vec<(String, String)> = vec![("PATH".into(), DEFAULT_PATH.into())];
    if let Some(h) = hostname {
        out.push(("HOSTNAME".into(), h.into()));
    }
    out.push(("HOME".into(), home.into()));
    for kv in env {
        let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
        match out.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1 = v.to_string(),
            None => out.push((k.to_string(), v.to_string())),
        }
    }
    out.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// Find `program` like execvp does, but on the container's PATH (from `env`).
pub fn find_program(program: &str, env: &[String]) -> Result<PathBuf, RuntimeError> {
    if program.is_empty() {
        return Err(RuntimeError::Invalid("no command given".into()));
    }
    if program.contains('/') {
        return Ok(PathBuf::from(program));
    }
    let path = env
        .iter()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(program);
        if let Ok(meta) = std::fs::metadata(&candidate) {
            use std::os::unix::fs::PermissionsExt;
            if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                return Ok(candidate);
            }
        }
    }
    Err(RuntimeError::StartFailed(format!(
        "exec: {program:?}: executable file not found in $PATH"
    )))
}

/// Become `spec` in the current (already containerised) root: user, directory, environment,
/// then execve. `hostname` feeds `HOSTNAME` (None for `exec`, which inherits it via env).
/// Returns only on failure.
pub fn exec(spec: &ProcessSpec, hostname: Option<&str>) -> Result<Infallible, RuntimeError> {
    let (uid, gid, home) = resolve_user(Path::new("/"), &spec.user)?;
    let home = home.unwrap_or_else(|| "/".into());
    let env = environment(&spec.env, hostname, &home);
    let cwd = if spec.cwd.is_empty() { "/" } else { &spec.cwd };
    // Docker creates a missing working directory.
    std::fs::create_dir_all(cwd)
        .map_err(|e| RuntimeError::StartFailed(format!("create working directory {cwd}: {e}")))?;
    let program = spec
        .args
        .first()
        .ok_or_else(|| RuntimeError::Invalid("no command given".into()))?;
    let path = find_program(program, &env)?;
    let cstr =
        |s: &str| CString::new(s).map_err(|_| RuntimeError::Invalid(format!("NUL byte in {s:?}")));
    let argv = spec
        .args
        .iter()
        .map(|a| cstr(a))
        .collect::<Result<Vec<_>, _>>()?;
    let envp = env.iter().map(|a| cstr(a)).collect::<Result<Vec<_>, _>>()?;
    let cpath = cstr(&path.to_string_lossy())?;
    if uid != 0 || gid != 0 {
        nix::unistd::setgroups(&[Gid::from_raw(gid)]).map_err(os_err("setgroups"))?;
        nix::unistd::setgid(Gid::from_raw(gid)).map_err(os_err("setgid"))?;
        nix::unistd::setuid(Uid::from_raw(uid)).map_err(os_err("setuid"))?;
    }
    nix::unistd::chdir(cwd)
        .map_err(|e| RuntimeError::StartFailed(format!("chdir to working directory {cwd}: {e}")))?;
    let err = match nix::unistd::execve(&cpath, &argv, &envp) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    Err(RuntimeError::StartFailed(format!(
        "exec: {program:?}: {}",
        err.desc().to_lowercase()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_defaults_and_overrides() {
        let env = environment(
            &["A=1".into(), "PATH=/x".into(), "A=2".into()],
            Some("h"),
            "/root",
        );
        assert_eq!(env, vec!["PATH=/x", "HOSTNAME=h", "HOME=/root", "A=2"]);
    }

    #[test]
    fn users_resolve_from_passwd() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:www:/var/www:/bin/false\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        assert_eq!(resolve_user(dir.path(), "").unwrap().0, 0);
        assert_eq!(
            resolve_user(dir.path(), "www").unwrap(),
            (33, 33, Some("/var/www".into()))
        );
        assert_eq!(resolve_user(dir.path(), "www:staff").unwrap().1, 50);
        assert_eq!(
            resolve_user(dir.path(), "1000:1000").unwrap(),
            (1000, 1000, None)
        );
        assert!(resolve_user(dir.path(), "nobody").is_err());
        assert!(resolve_user(dir.path(), "www:nogroup").is_err());
    }

    #[test]
    fn programs_are_found_on_path_or_refused() {
        assert_eq!(
            find_program("/bin/sh", &[]).unwrap(),
            PathBuf::from("/bin/sh")
        );
        let err = find_program("no-such-program-xyz", &["PATH=/bin".into()]).unwrap_err();
        assert!(
            err.to_string().contains("executable file not found"),
            "{err}"
        );
    }
}
