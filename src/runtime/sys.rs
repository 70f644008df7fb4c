//! The runtime's unavoidable unsafe: `fork` (and `_exit` in its children) and installing a
//! seccomp filter. Everything else goes through nix's safe wrappers.
#![allow(unsafe_code)]

use nix::unistd::ForkResult;

/// fork(2). Only called from single-threaded processes (the shim, the init and the exec
/// helper are freshly exec'd and never start a thread), where the child may run any code.
pub fn fork() -> nix::Result<ForkResult> {
    // SAFETY: every caller runs in a single-threaded process (see above), so no lock held by
    // another thread can be left locked in the child and the child may allocate freely.
    unsafe { nix::unistd::fork() }
}

/// _exit(2): leave a forked child without running the parent's atexit handlers or flushing
/// its copied stdio buffers.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions; it never returns.
    unsafe { libc::_exit(code) }
}

/// Mark every descriptor from 3 up close-on-exec, so a command never inherits one by
/// accident (youki's habit: every unused fd closed).
pub fn cloexec_from_3() {
    // SAFETY: close_range only changes descriptor flags; with CLOSE_RANGE_CLOEXEC nothing is
    // closed under code that still uses it. Older kernels return ENOSYS, which is ignored.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
    }
}

/// Put every signal back to its default action. Rust ignores SIGPIPE at start-up and an
/// ignored disposition survives execve, so without this a container's command would never
/// die of a broken pipe.
pub fn reset_signal_dispositions() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    for sig in Signal::iterator() {
        if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: SIG_DFL installs no handler, so no async-signal-safety rules apply; the
        // process is single-threaded and about to exec.
        let _ = unsafe { signal(sig, SigHandler::SigDfl) };
    }
}

/// seccomp(SECCOMP_SET_MODE_FILTER, 0, prog): install `filter`, an array of `struct
/// sock_filter` in native byte order, on the calling thread. No flags: the callers (a
/// container's init and exec helper) are single-threaded, so there is nothing to TSYNC, and a
/// child inherits the filter across fork and execve. The kernel requires NO_NEW_PRIVS or
/// CAP_SYS_ADMIN; ordering that is the caller's job.
pub fn seccomp_set_mode_filter(filter: &[u8]) -> nix::Result<()> {
    let insns = filter.len() / size_of::<libc::sock_filter>();
    if insns == 0 || filter.len() % size_of::<libc::sock_filter>() != 0 {
        return Err(nix::errno::Errno::EINVAL);
    }
    let prog = libc::sock_fprog {
        len: u16::try_from(insns).map_err(|_| nix::errno::Errno::EINVAL)?,
        // The kernel copies the array in with copy_from_user, which has no alignment needs,
        // so a byte buffer may stand in for `struct sock_filter *`; Rust never reads it as one.
        filter: filter.as_ptr().cast::<libc::sock_filter>().cast_mut(),
    };
    // SAFETY: `prog` points at `filter`, which holds exactly `prog.len` instructions and is
    // borrowed for the whole call; the kernel only reads both (and copies the program before
    // returning). The syscall changes no memory of this process.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0 as libc::c_uint,
            std::ptr::addr_of!(prog),
        )
    };
    nix::errno::Errno::result(rc).map(drop)
}

/// `struct clone_args` of clone3(2), up to the `cgroup` field (kernel 5.7).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// fork(2), with the child born inside the cgroup v2 directory `cgroup` (clone3 with
/// CLONE_INTO_CGROUP). Placing a process at birth avoids writing `cgroup.procs`, which takes
/// the kernel's cgroup-wide threadgroup lock for writing and costs about a millisecond per
/// hierarchy on this kind of host. Same single-threaded rule as [`fork`].
pub fn fork_into_cgroup(cgroup: std::os::fd::BorrowedFd<'_>) -> nix::Result<ForkResult> {
    use std::os::fd::AsRawFd;
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: clone3 without CLONE_VM and without a new stack behaves like fork: the child
    // gets a copy of the address space and continues here with a zero return value. The
    // caller is single-threaded (see `fork`), so no lock is held by another thread; `args`
    // outlives the call and its size is passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => Err(nix::errno::Errno::last()),
        0 => Ok(ForkResult::Child),
        pid => Ok(ForkResult::Parent {
            child: nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pids fit in i32")),
        }),
    }
}

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;

/// Make the detached mount behind `fd` (from `open_tree(OPEN_TREE_CLONE)`) read-only, nosuid
/// and nodev.
pub fn seal_detached_mount(fd: std::os::fd::BorrowedFd<'_>) -> nix::Result<()> {
    use std::os::fd::AsRawFd;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: mount_setattr reads `size` bytes of `attr`, which lives across the call; the
    // empty path with AT_EMPTY_PATH names the mount behind the open descriptor itself.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            size_of::<MountAttr>(),
        )
    };
    if ret == -1 {
        Err(nix::errno::Errno::last())
    } else {
        Ok(())
    }
}
