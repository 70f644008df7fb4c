//! A process to run inside a container (the command, or an `exec`): argv, environment,
//! working directory and user, and the last steps before `execve` — give up privileges
//! (resource limits, capabilities, seccomp, user and groups), change directory, find the
//! program on the container's PATH.

use std::convert::Infallible;
use std::ffi::CString;
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid};
use rustix::thread::{CapabilitySet, CapabilitySets};
use serde::{Deserialize, Serialize};

use super::confine::caps::CapSet;
use super::confine::seccomp::Program;
use super::confine::Confinement;
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
    /// `exec --privileged`: every capability the container could be given.
    #[serde(default)]
    pub privileged: bool,
}

/// Who a process runs as, resolved against the container's /etc/passwd and /etc/group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: the groups listing the user as a member, plus `--group-add`.
    pub groups: Vec<u32>,
    pub home: String,
}

impl Identity {
    /// `user` (and `group_add`) resolved under `root` (the container's root directory).
    pub fn resolve(
        root: &Path,
        user: &str,
        group_add: &[String],
    ) -> Result<Identity, RuntimeError> {
        let (uid, gid, home) = resolve_user(root, user)?;
        let groups_file = std::fs::read_to_string(root.join("etc/group")).unwrap_or_default();
        let entries: Vec<Vec<&str>> = groups_file
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .filter(|f| f.len() >= 3)
            .collect();
        let mut groups = Vec::new();
        // Member groups only when the user was named (a bare uid names no member).
        let name = user.split(':').next().unwrap_or_default();
        let explicit_group = user.contains(':');
        if !name.is_empty() && name.parse::<u32>().is_err() && !explicit_group {
            for f in &entries {
                if f.get(3).is_some_and(|m| m.split(',').any(|m| m == name)) {
                    if let Ok(g) = f[2].parse::<u32>() {
                        groups.push(g);
                    }
                }
            }
        }
        for g in group_add {
            let gid = match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => entries
                    .iter()
                    .find(|f| f[0] == g)
                    .and_then(|f| f[2].parse().ok())
                    .ok_or_else(|| {
                        RuntimeError::Invalid(format!(
                            "Unable to find group {g}: no matching entries in group file"
                        ))
                    })?,
            };
            groups.push(gid);
        }
        if groups.is_empty() {
            groups.push(gid);
        }
        groups.sort_unstable();
        groups.dedup();
        Ok(Identity {
            uid,
            gid,
            groups,
            home: home.unwrap_or_else(|| "/".into()),
        })
    }
}

/// Give up everything the process may not keep, in the order the kernel demands: resource
/// limits (raising one needs CAP_SYS_RESOURCE), the bounding set (CAP_SETPCAP), seccomp when it
/// must be loaded while CAP_SYS_ADMIN is still held (without no_new_privs), groups and ids
/// (CAP_SETGID/CAP_SETUID), the capability sets, no_new_privs, and seccomp last when
/// no_new_privs lets an unprivileged process load it (then a profile may block setuid & co).
/// A root process keeps `capabilities` as permitted and effective; any other user holds none
/// (as under Docker); nothing is inheritable or ambient.
pub fn drop_privileges(
    identity: &Identity,
    confinement: &Confinement,
    capabilities: CapSet,
    seccomp: Option<&Program>,
) -> Result<(), RuntimeError> {
    for limit in &confinement.ulimits {
        let Some(resource) = limit.resource() else {
            continue;
        };
        let value = |v: i64| u64::try_from(v).ok();
        rustix::process::setrlimit(
            resource,
            rustix::process::Rlimit {
                current: value(limit.soft),
                maximum: value(limit.hard),
            },
        )
        .map_err(|e| RuntimeError::StartFailed(format!("set ulimit {}: {e}", limit.name)))?;
    }
    for n in 0..64u32 {
        let cap = CapabilitySet::from_bits_retain(1 << n);
        match rustix::thread::capability_is_in_bounding_set(cap) {
            Ok(true) if !capabilities.contains(CapSet(1 << n)) => {
                rustix::thread::remove_capability_from_bounding_set(cap)
                    .map_err(|e| RuntimeError::StartFailed(format!("drop capability {n}: {e}")))?;
            }
            Ok(_) => {}
            Err(_) => break, // past the kernel's last capability
        }
    }
    let load_seccomp = |program: &Program| {
        program
            .load()
            .map_err(|e| RuntimeError::StartFailed(format!("load the seccomp filter: {e}")))
    };
    if let (Some(program), false) = (seccomp, confinement.no_new_privileges) {
        load_seccomp(program)?;
    }
    let gids: Vec<Gid> = identity.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    nix::unistd::setgroups(&gids).map_err(os_err("setgroups"))?;
    nix::unistd::setgid(Gid::from_raw(identity.gid)).map_err(os_err("setgid"))?;
    // Leaving uid 0 clears the permitted and effective sets (no PR_SET_KEEPCAPS).
    nix::unistd::setuid(Uid::from_raw(identity.uid)).map_err(os_err("setuid"))?;
    let held = if identity.uid == 0 {
        CapabilitySet::from_bits_retain(capabilities.0)
    } else {
        CapabilitySet::empty()
    };
    rustix::thread::set_capabilities(
        None,
        CapabilitySets {
            effective: held,
            permitted: held,
            inheritable: CapabilitySet::empty(),
        },
    )
    .map_err(|e| RuntimeError::StartFailed(format!("set capabilities: {e}")))?;
    rustix::thread::clear_ambient_capability_set()
        .map_err(|e| RuntimeError::StartFailed(format!("clear ambient capabilities: {e}")))?;
    if confinement.no_new_privileges {
        nix::sys::prctl::set_no_new_privs().map_err(os_err("set no_new_privs"))?;
        if let Some(program) = seccomp {
            load_seccomp(program)?;
        }
    }
    Ok(())
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

/// Become `spec` in the current (already containerised and confined) root: environment,
/// directory, then execve. `hostname` feeds `HOSTNAME` (None for `exec`, which inherits it via
/// env); `home` is the user's home directory. Returns only on failure.
pub fn exec(
    spec: &ProcessSpec,
    hostname: Option<&str>,
    home: &str,
) -> Result<Infallible, RuntimeError> {
    let env = environment(&spec.env, hostname, home);
    let cwd = if spec.cwd.is_empty() { "/" } else { &spec.cwd };
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
    fn identities_carry_member_and_added_groups() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:www:/var/www:/bin/false\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nwww:x:33:\nvideo:x:27:www,other\naudio:x:29:\n",
        )
        .unwrap();
        let id = Identity::resolve(dir.path(), "www", &[]).unwrap();
        assert_eq!((id.uid, id.gid, id.groups.clone()), (33, 33, vec![27]));
        assert_eq!(id.home, "/var/www");
        let id = Identity::resolve(dir.path(), "www", &["audio".into(), "1234".into()]).unwrap();
        assert_eq!(id.groups, vec![27, 29, 1234]);
        // A bare uid or an explicit group names no member groups; the primary gid stands in.
        assert_eq!(
            Identity::resolve(dir.path(), "1000", &[]).unwrap().groups,
            vec![0]
        );
        assert_eq!(
            Identity::resolve(dir.path(), "www:audio", &[])
                .unwrap()
                .groups,
            vec![29]
        );
        let err = Identity::resolve(dir.path(), "", &["nogroup".into()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Unable to find group nogroup: no matching entries in group file"
        );
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
