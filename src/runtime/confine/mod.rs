//! Confinement: what a container's processes may do. Docker's defaults and options, resolved
//! by the agent into one [`Confinement`] per container and applied by the runtime to every
//! process of the container (its init, its command, every exec).
//!
//! - `caps`: capability names, Docker's default set and the `--cap-add/--cap-drop` rules.
//! - `seccomp`: profiles in Docker's JSON format, Warren's built-in default (equivalent to
//!   Docker's) and their compilation to a BPF program, done once per profile and capability
//!   set by the agent; the runtime only loads the compiled program.
//! - `devices`: which device nodes a container may open or create (a BPF program on its
//!   cgroup v2 directory; the v1 devices controller where there is no v2 hierarchy).

mod bpf;
pub mod caps;
pub mod devices;
pub mod seccomp;
