//! eBPF plumbing for the device filter: the instruction encoding and the two bpf(2) commands
//! it needs (load a program, attach it to a cgroup). The `bpf_attr` layouts are our own
//! `repr(C)` copies of the kernel UAPI prefixes we use (checked by the tests below); the
//! kernel accepts a shorter `bpf_attr` than its own and treats the missing tail as zero.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

// Instruction classes, sizes, modes and operations (linux/bpf_common.h, linux/bpf.h).
pub const LDX: u8 = 0x01;
pub const ALU: u8 = 0x04;
pub const JMP: u8 = 0x05;
pub const W: u8 = 0x00;
pub const MEM: u8 = 0x60;
/// Source operand: the immediate (`K`) or the source register (`X`).
pub const K: u8 = 0x00;
pub const X: u8 = 0x08;
pub const AND: u8 = 0x50;
pub const RSH: u8 = 0x70;
pub const MOV: u8 = 0xb0;
pub const JNE: u8 = 0x50;
pub const EXIT: u8 = 0x90;

/// `enum bpf_cmd`.
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_QUERY: libc::c_long = 16;
/// Attach flag: a program in a descendant cgroup replaces this one for that subtree.
pub const F_ALLOW_OVERRIDE: u32 = 1;
/// `enum bpf_prog_type`.
pub const PROG_TYPE_CGROUP_DEVICE: u32 = 15;
/// `enum bpf_attach_type`.
pub const ATTACH_CGROUP_DEVICE: u32 = 6;

/// One eBPF instruction (`struct bpf_insn`): destination register in the low nibble of
/// `regs`, source register in the high nibble.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            regs: (src << 4) | (dst & 0x0f),
            off,
            imm,
        }
    }

    #[cfg(test)]
    pub fn dst(self) -> u8 {
        self.regs & 0x0f
    }

    #[cfg(test)]
    pub fn src(self) -> u8 {
        self.regs >> 4
    }

    /// `dst = *(u32 *)(src + off)`
    pub const fn load_word(dst: u8, src: u8, off: i16) -> Insn {
        Insn::new(LDX | MEM | W, dst, src, off, 0)
    }

    /// 32-bit ALU with an immediate (the result is zero-extended to 64 bits).
    pub const fn alu32_imm(op: u8, dst: u8, imm: i32) -> Insn {
        Insn::new(ALU | op | K, dst, 0, 0, imm)
    }

    /// 32-bit ALU with a register (the result is zero-extended to 64 bits).
    pub const fn alu32_reg(op: u8, dst: u8, src: u8) -> Insn {
        Insn::new(ALU | op | X, dst, src, 0, 0)
    }

    /// `if dst <op> imm goto +off`, comparing the full 64-bit register with the
    /// sign-extended immediate.
    pub const fn jump_imm(op: u8, dst: u8, imm: i32, off: i16) -> Insn {
        Insn::new(JMP | op | K, dst, 0, off, imm)
    }

    /// `if dst <op> src goto +off` (64-bit compare).
    pub const fn jump_reg(op: u8, dst: u8, src: u8, off: i16) -> Insn {
        Insn::new(JMP | op | X, dst, src, off, 0)
    }

    pub const fn exit() -> Insn {
        Insn::new(JMP | EXIT, 0, 0, 0, 0)
    }
}

/// The `BPF_PROG_LOAD` part of `union bpf_attr`, up to `expected_attach_type`.
#[repr(C)]
#[derive(Debug, Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The `BPF_PROG_ATTACH` part of `union bpf_attr`, up to `attach_flags` (`replace_bpf_fd`
/// is only read with `BPF_F_REPLACE`).
#[repr(C)]
#[derive(Debug, Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

/// Load a program. `name` is what bpftool shows (at most 15 bytes of `[A-Za-z0-9_.]`); `log`,
/// when given, receives the verifier's log (level 1).
pub fn prog_load(
    prog_type: u32,
    insns: &[Insn],
    license: &CStr,
    name: &str,
    log: Option<&mut [u8]>,
) -> Result<OwnedFd, Errno> {
    let mut attr = ProgLoadAttr {
        prog_type,
        insn_cnt: u32::try_from(insns.len()).map_err(|_| Errno::E2BIG)?,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..Default::default()
    };
    let name = name.as_bytes();
    let n = name.len().min(attr.prog_name.len() - 1);
    attr.prog_name[..n].copy_from_slice(&name[..n]);
    if let Some(buf) = log {
        attr.log_level = 1;
        attr.log_size = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        attr.log_buf = buf.as_mut_ptr() as u64;
    }
    // SAFETY: `attr` is a valid BPF_PROG_LOAD attribute of the size passed; the pointers in
    // it (instructions, license, log buffer) refer to live buffers of the stated lengths that
    // outlive the call, and the kernel writes only into the log buffer, within `log_size`.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &mut attr as *mut ProgLoadAttr,
            size_of::<ProgLoadAttr>(),
        )
    };
    let fd = Errno::result(ret)?;
    let fd = i32::try_from(fd).map_err(|_| Errno::EBADF)?;
    // SAFETY: a successful BPF_PROG_LOAD returns a new descriptor (close-on-exec) that
    // nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Attach a loaded program to `target` (a cgroup directory for cgroup programs).
pub fn prog_attach(
    target: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    attach_type: u32,
    flags: u32,
) -> Result<(), Errno> {
    let attr = ProgAttachAttr {
        target_fd: fd_u32(target),
        attach_bpf_fd: fd_u32(prog),
        attach_type,
        attach_flags: flags,
    };
    // SAFETY: `attr` is a valid BPF_PROG_ATTACH attribute of the size passed, holding two
    // descriptors borrowed for the duration of the call; the kernel only reads it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            &attr as *const ProgAttachAttr,
            size_of::<ProgAttachAttr>(),
        )
    };
    Errno::result(ret).map(drop)
}

/// The `BPF_PROG_QUERY` part of `union bpf_attr`, up to `prog_cnt`.
#[repr(C)]
#[derive(Debug, Default)]
struct ProgQueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

/// How many programs of `attach_type` are attached to `target` itself (not inherited).
pub fn prog_count(target: BorrowedFd<'_>, attach_type: u32) -> Result<u32, Errno> {
    let mut attr = ProgQueryAttr {
        target_fd: fd_u32(target),
        attach_type,
        ..Default::default()
    };
    // SAFETY: `attr` is a valid BPF_PROG_QUERY attribute of the size passed; with no id
    // buffer (`prog_ids` 0) the kernel only writes the count and flags back into `attr`.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_QUERY,
            &mut attr as *mut ProgQueryAttr,
            size_of::<ProgQueryAttr>(),
        )
    };
    Errno::result(ret).map(|_| attr.prog_cnt)
}

/// An open descriptor is never negative.
fn fd_u32(fd: BorrowedFd<'_>) -> u32 {
    fd.as_raw_fd().unsigned_abs()
}

#[cfg(test)]
mod tests {
    use std::mem::offset_of;

    use super::*;

    #[test]
    fn attr_layouts_match_the_kernel_uapi() {
        // Offsets from linux/bpf.h (x86_64 and every other 64-bit-aligned ABI alike).
        assert_eq!(size_of::<Insn>(), 8);
        assert_eq!(offset_of!(ProgQueryAttr, prog_ids), 16);
        assert_eq!(offset_of!(ProgQueryAttr, prog_cnt), 24);
        assert_eq!(offset_of!(ProgLoadAttr, insns), 8);
        assert_eq!(offset_of!(ProgLoadAttr, license), 16);
        assert_eq!(offset_of!(ProgLoadAttr, log_level), 24);
        assert_eq!(offset_of!(ProgLoadAttr, log_buf), 32);
        assert_eq!(offset_of!(ProgLoadAttr, kern_version), 40);
        assert_eq!(offset_of!(ProgLoadAttr, prog_name), 48);
        assert_eq!(offset_of!(ProgLoadAttr, expected_attach_type), 68);
        assert_eq!(size_of::<ProgLoadAttr>(), 72);
        assert_eq!(offset_of!(ProgAttachAttr, attach_flags), 12);
        assert_eq!(size_of::<ProgAttachAttr>(), 16);
    }

    #[test]
    fn registers_pack_into_one_byte() {
        let insn = Insn::jump_reg(JNE, 3, 7, 2);
        assert_eq!(insn.code, 0x5d);
        assert_eq!(insn.regs, 0x73);
        assert_eq!((insn.dst(), insn.src()), (3, 7));
        assert_eq!(Insn::load_word(2, 1, 4).code, 0x61);
        assert_eq!(Insn::exit().code, 0x95);
    }
}
