//! Device access rules: written to the v1 devices cgroup, or compiled to an eBPF program of type
//! BPF_PROG_TYPE_CGROUP_DEVICE and attached to the v2 cgroup.
//!
//! Rule semantics are the v1 kernel's, for both: rules apply in order, a later rule overrides an
//! earlier one; an allow rule matches a request whose every access bit it grants, a deny rule a
//! request that wants any bit it denies. The eBPF program therefore tests the rules last to first
//! and returns at the first match; nothing matching means deny.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::error::{Error, Result, invalid};
use crate::fsutil;

const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

/// One rule, checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rule {
    allow: bool,
    /// 'a', 'b' or 'c'.
    typ: char,
    major: Option<i64>,
    minor: Option<i64>,
    /// ACC_* bits.
    access: i32,
}

pub(crate) fn rules(list: &[LinuxDeviceCgroup]) -> Result<Vec<Rule>> {
    list.iter()
        .map(|d| {
            let typ = match d.typ().unwrap_or(LinuxDeviceType::A) {
                LinuxDeviceType::A => 'a',
                LinuxDeviceType::B => 'b',
                LinuxDeviceType::C | LinuxDeviceType::U => 'c',
                LinuxDeviceType::P => {
                    return Err(invalid(
                        "devices",
                        "a fifo (p) cannot be a device cgroup rule",
                    ));
                }
            };
            let mut access = 0;
            for c in d.access().as_deref().unwrap_or("rwm").chars() {
                access |= match c {
                    'r' => ACC_READ,
                    'w' => ACC_WRITE,
                    'm' => ACC_MKNOD,
                    _ => return Err(invalid("devices", format!("unknown access {c:?}"))),
                };
            }
            let wild = |v: Option<i64>| v.filter(|&n| n >= 0);
            Ok(Rule {
                allow: d.allow(),
                typ,
                major: wild(d.major()),
                minor: wild(d.minor()),
                access,
            })
        })
        .collect()
}

fn access_str(a: i32) -> String {
    let mut s = String::new();
    if a & ACC_READ != 0 {
        s.push('r');
    }
    if a & ACC_WRITE != 0 {
        s.push('w');
    }
    if a & ACC_MKNOD != 0 {
        s.push('m');
    }
    s
}

/// Apply rules to a v1 devices cgroup.
pub(crate) fn apply_v1(dir: &Path, rules: &[Rule]) -> Result<()> {
    for r in rules {
        let num = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_else(|| "*".into());
        let line = if r.typ == 'a' && r.major.is_none() && r.minor.is_none() && r.access == 7 {
            "a".to_string()
        } else {
            format!(
                "{} {}:{} {}",
                r.typ,
                num(r.major),
                num(r.minor),
                access_str(r.access)
            )
        };
        fsutil::write(
            dir,
            if r.allow {
                "devices.allow"
            } else {
                "devices.deny"
            },
            line,
        )?;
    }
    Ok(())
}

/// One eBPF instruction.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
pub(crate) struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

// Opcodes (linux/bpf_common.h, linux/bpf.h).
const LDX_MEM_W: u8 = 0x61;
const ALU64_AND_K: u8 = 0x57;
const ALU64_RSH_K: u8 = 0x77;
const ALU64_MOV_K: u8 = 0xb7;
const ALU64_MOV_X: u8 = 0xbf;
const JMP_JNE_K: u8 = 0x55;
const JMP_JEQ_K: u8 = 0x15;
const JMP_EXIT: u8 = 0x95;

/// Compile the rules into a device filter program. The context is struct bpf_cgroup_dev_ctx
/// { u32 access_type (access << 16 | type); u32 major; u32 minor; }.
pub(crate) fn program(rules: &[Rule]) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(ALU64_AND_K, 2, 0, 0, 0xffff), // r2 = type
        insn(LDX_MEM_W, 3, 1, 0, 0),
        insn(ALU64_RSH_K, 3, 0, 0, 16), // r3 = access
        insn(LDX_MEM_W, 4, 1, 4, 0),    // r4 = major
        insn(LDX_MEM_W, 5, 1, 8, 0),    // r5 = minor
    ];
    for r in rules.iter().rev() {
        // Each test jumps to the end of this rule's block when the rule does not match.
        let mut block: Vec<(u8, u8, u8, i32, bool)> = Vec::new(); // (code, dst, src, imm, is_jump)
        match r.typ {
            'b' => block.push((JMP_JNE_K, 2, 0, DEV_BLOCK, true)),
            'c' => block.push((JMP_JNE_K, 2, 0, DEV_CHAR, true)),
            _ => {}
        }
        if r.access != 7 || !r.allow {
            block.push((ALU64_MOV_X, 1, 3, 0, false));
            if r.allow {
                block.push((ALU64_AND_K, 1, 0, !r.access & 7, false));
                block.push((JMP_JNE_K, 1, 0, 0, true));
            } else {
                block.push((ALU64_AND_K, 1, 0, r.access, false));
                block.push((JMP_JEQ_K, 1, 0, 0, true));
            }
        }
        if let Some(m) = r.major {
            block.push((JMP_JNE_K, 4, 0, m as i32, true));
        }
        if let Some(m) = r.minor {
            block.push((JMP_JNE_K, 5, 0, m as i32, true));
        }
        let n = block.len();
        for (i, (code, dst, src, imm, jump)) in block.into_iter().enumerate() {
            // Skip the rest of the block plus its two closing instructions.
            let off = if jump { (n - i - 1 + 2) as i16 } else { 0 };
            p.push(insn(code, dst, src, off, imm));
        }
        p.push(insn(ALU64_MOV_K, 0, 0, 0, r.allow as i32));
        p.push(insn(JMP_EXIT, 0, 0, 0, 0));
    }
    p.push(insn(ALU64_MOV_K, 0, 0, 0, 0));
    p.push(insn(JMP_EXIT, 0, 0, 0, 0));
    p
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// union bpf_attr, as raw bytes: every command reads its own fields at fixed offsets.
#[repr(C, align(8))]
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Self {
        Attr([0; 128])
    }
    fn u32(&mut self, off: usize, v: u32) -> &mut Self {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64(&mut self, off: usize, v: u64) -> &mut Self {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn get_u32(&self, off: usize) -> u32 {
        u32::from_ne_bytes(self.0[off..off + 4].try_into().unwrap_or([0; 4]))
    }
}

fn bpf(cmd: libc::c_long, attr: &mut Attr, op: &'static str) -> Result<libc::c_long> {
    // SAFETY: `attr` is a zero-initialised, 8-aligned buffer as large as the kernel's union
    // bpf_attr prefix we use; any pointers stored in it point to live buffers owned by the caller
    // for the duration of the call.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.0.as_mut_ptr(), attr.0.len()) };
    if r < 0 {
        return Err(Error::Bpf {
            op,
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(r)
}

fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: `fd` was just returned by bpf(2) as a new file descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// Load the program for `rules` and make it the only device filter of the cgroup at `dir`.
pub(crate) fn apply_v2(dir: &Path, rules: &[Rule]) -> Result<()> {
    let prog = program(rules);
    let license = c"Apache";
    let mut log = vec![0u8; 64 * 1024];
    let mut attr = Attr::new();
    attr.u32(0, BPF_PROG_TYPE_CGROUP_DEVICE)
        .u32(4, prog.len() as u32)
        .u64(8, prog.as_ptr() as u64)
        .u64(16, license.as_ptr() as u64)
        .u32(24, 1)
        .u32(28, log.len() as u32)
        .u64(32, log.as_mut_ptr() as u64);
    let prog_fd = match bpf(BPF_PROG_LOAD, &mut attr, "loading the program") {
        Ok(fd) => owned(fd),
        Err(Error::Bpf { op, source }) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(0);
            let msg = String::from_utf8_lossy(&log[..end]).trim().to_string();
            return Err(Error::Bpf {
                op,
                source: std::io::Error::new(source.kind(), format!("{source}: {msg}")),
            });
        }
        Err(e) => return Err(e),
    };
    let cg = std::fs::File::open(dir).map_err(|e| crate::error::io("opening", dir, e))?;
    let old = query(&cg)?;
    let mut attr = Attr::new();
    attr.u32(0, cg.as_raw_fd() as u32)
        .u32(4, prog_fd.as_raw_fd() as u32)
        .u32(8, BPF_CGROUP_DEVICE)
        .u32(12, BPF_F_ALLOW_MULTI);
    bpf(BPF_PROG_ATTACH, &mut attr, "attaching the program")?;
    // Then drop the programs this cgroup had before (an update replaces the filter).
    for id in old {
        let mut a = Attr::new();
        a.u32(0, id);
        let Ok(fd) = bpf(BPF_PROG_GET_FD_BY_ID, &mut a, "finding the old program") else {
            continue;
        };
        let fd = owned(fd);
        let mut a = Attr::new();
        a.u32(0, cg.as_raw_fd() as u32)
            .u32(4, fd.as_raw_fd() as u32)
            .u32(8, BPF_CGROUP_DEVICE);
        bpf(BPF_PROG_DETACH, &mut a, "detaching the old program")?;
    }
    Ok(())
}

/// Ids of the device programs attached to the cgroup itself.
fn query(cg: &std::fs::File) -> Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut a = Attr::new();
    a.u32(0, cg.as_raw_fd() as u32)
        .u32(4, BPF_CGROUP_DEVICE)
        .u64(16, ids.as_mut_ptr() as u64)
        .u32(24, ids.len() as u32);
    bpf(BPF_PROG_QUERY, &mut a, "querying attached programs")?;
    let n = a.get_u32(24) as usize;
    ids.truncate(n.min(64));
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run the compiled program in a tiny interpreter of the instructions it uses.
    fn run(p: &[Insn], typ: i32, major: u32, minor: u32, access: i32) -> bool {
        let ctx = [((access << 16) | typ) as u32, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_MEM_W => r[dst] = ctx[i.off as usize / 4] as u64,
                ALU64_AND_K => r[dst] &= i.imm as i64 as u64,
                ALU64_RSH_K => r[dst] >>= i.imm,
                ALU64_MOV_K => r[dst] = i.imm as i64 as u64,
                ALU64_MOV_X => r[dst] = r[src],
                JMP_JNE_K if r[dst] != i.imm as i64 as u64 => pc += i.off as usize,
                JMP_JEQ_K if r[dst] == i.imm as i64 as u64 => pc += i.off as usize,
                JMP_JNE_K | JMP_JEQ_K => {}
                JMP_EXIT => return r[0] == 1,
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    fn rule(allow: bool, typ: char, major: Option<i64>, minor: Option<i64>, access: i32) -> Rule {
        Rule {
            allow,
            typ,
            major,
            minor,
            access,
        }
    }

    #[test]
    fn later_rules_override_earlier_ones() {
        let rules = [
            rule(false, 'a', None, None, 7),
            rule(true, 'c', Some(1), Some(3), 7),
            rule(true, 'c', Some(136), None, ACC_READ | ACC_WRITE),
            rule(false, 'c', Some(1), Some(3), ACC_WRITE),
        ];
        let p = program(&rules);
        assert!(run(&p, DEV_CHAR, 1, 3, ACC_READ));
        assert!(!run(&p, DEV_CHAR, 1, 3, ACC_WRITE));
        assert!(!run(&p, DEV_CHAR, 1, 3, ACC_READ | ACC_WRITE));
        assert!(run(&p, DEV_CHAR, 1, 3, ACC_MKNOD));
        assert!(!run(&p, DEV_BLOCK, 1, 3, ACC_READ));
        assert!(run(&p, DEV_CHAR, 136, 9, ACC_WRITE));
        assert!(!run(&p, DEV_CHAR, 136, 9, ACC_MKNOD));
        assert!(!run(&p, DEV_CHAR, 5, 1, ACC_READ));
        let all = program(&[rule(true, 'a', None, None, 7)]);
        assert!(run(&all, DEV_BLOCK, 8, 0, ACC_MKNOD | ACC_WRITE));
    }
}
