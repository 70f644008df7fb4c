//! The agent's side of confinement: a container's security options are checked at create
//! (so a bad one changes nothing) and resolved again at every start against the daemon's
//! defaults; seccomp profiles are compiled here, once per profile and capability set, into
//! files under `<exec-root>/seccomp/` that every start and exec of such a container loads.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::containers::lock;
use super::Agent;
use crate::error::{Error, ErrorKind};
use crate::runtime::confine::caps::CapSet;
use crate::runtime::confine::{Confinement, ProfileSource, SecurityOptions};

/// Compiled seccomp filters of this agent's life, by profile and capability set.
#[derive(Debug)]
pub struct SeccompCache {
    compiled: Mutex<HashMap<(ProfileSource, CapSet), PathBuf>>,
    /// Everything a container may be given on this host (the agent's own bounding set).
    pub everything: CapSet,
}

impl Default for SeccompCache {
    fn default() -> Self {
        SeccompCache {
            compiled: Mutex::new(HashMap::new()),
            everything: CapSet::own_bounding(),
        }
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::msg(ErrorKind::Invalid, message)
}

impl Agent {
    /// Check a container's options now (create) and tell what they resolve to.
    pub(super) fn check_security(
        &self,
        security: &SecurityOptions,
        host_network: bool,
    ) -> Result<(), Error> {
        security
            .resolve(
                &self.config.confinement,
                self.seccomp.everything,
                host_network,
            )
            .map(|_| ())
            .map_err(|e| invalid(e.to_string()))
    }

    /// What the runtime applies to a container about to start: options resolved against the
    /// daemon's defaults, the seccomp filter compiled (or taken from the cache).
    pub(super) fn confinement(
        &self,
        security: &SecurityOptions,
        host_network: bool,
    ) -> Result<Confinement, Error> {
        let resolved = security
            .resolve(
                &self.config.confinement,
                self.seccomp.everything,
                host_network,
            )
            .map_err(|e| invalid(e.to_string()))?;
        let mut confinement = resolved.confinement;
        if let Some(source) = resolved.seccomp {
            confinement.seccomp = Some(self.compiled_filter(source, confinement.capabilities)?);
        }
        Ok(confinement)
    }

    /// The file holding `source` compiled for `caps`; compiled and written on first use
    /// (content-addressed, written atomically, so concurrent starts agree).
    fn compiled_filter(&self, source: ProfileSource, caps: CapSet) -> Result<PathBuf, Error> {
        // Held while compiling: first uses are rare, and one writer per file keeps it whole.
        let mut compiled = lock(&self.seccomp.compiled);
        let key = (source, caps);
        if let Some(path) = compiled.get(&key) {
            return Ok(path.clone());
        }
        let program = key
            .0
            .profile()
            .and_then(|p| {
                p.compile(caps).map_err(|e| {
                    crate::runtime::confine::OptionError(format!(
                        "compile the seccomp profile: {e}"
                    ))
                })
            })
            .map_err(|e| invalid(e.to_string()))?;
        let digest = crate::runtime::image::unpack::hex(&Sha256::digest(program.bytes()));
        let dir = self.config.exec_root.join("seccomp");
        let path = dir.join(format!("{digest}.bpf"));
        if !path.exists() {
            std::fs::create_dir_all(&dir)
                .and_then(|()| crate::runtime::write_atomic(&path, program.bytes()))
                .map_err(|e| {
                    Error::msg(
                        ErrorKind::Internal,
                        format!("write {}: {e}", path.display()),
                    )
                })?;
        }
        compiled.insert(key, path.clone());
        Ok(path)
    }
}
