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
