//! The cache of compiled kernel programs (see [`crate::compile_cached`]).
//!
//! One file per program, named by a 64-bit FNV-1a hash of its key, holding
//! `MAGIC`, the key's length and the key, the program's length and an FNV-1a sum of it, then
//! the program. A lookup compares the whole key (profile, libseccomp version, kernel release,
//! boot ID) and checks the length and sum, so a hash collision, a stale file or a torn one is a
//! miss, never another profile's program. Files are written whole and renamed into place.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use libseccomp::ScmpFilterContext;
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompFilterFlag};

use crate::Error;

const MAGIC: &[u8; 16] = b"berth-seccomp-1\n";
/// A classic BPF instruction: u16 code, u8 jt, u8 jf, u32 k.
const INSN: usize = 8;
/// Larger than any filter the kernel accepts (BPF_MAXINSNS is 4096 per filter).
const MAX_PROGRAM: usize = 1 << 20;

const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
const FLAG_TSYNC: libc::c_ulong = 1;
const FLAG_LOG: libc::c_ulong = 2;
const FLAG_SPEC_ALLOW: libc::c_ulong = 4;
const FLAG_WAIT_KILLABLE_RECV: libc::c_ulong = 32;

/// seccomp(2)'s flags for the profile's `flags`, as libseccomp's load sets them.
pub(crate) fn flags(s: &LinuxSeccomp) -> libc::c_ulong {
    s.flags().iter().flatten().fold(0, |acc, f| {
        acc | match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => FLAG_SPEC_ALLOW,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => FLAG_WAIT_KILLABLE_RECV,
        }
    })
}

/// What a program depends on: the profile, the library that compiled it, the kernel it was
/// compiled for (libseccomp probes the kernel's seccomp features). `None` when the kernel
/// cannot be identified: no caching then.
pub(crate) fn key(s: &LinuxSeccomp) -> Option<Vec<u8>> {
    let mut k = serde_json::to_vec(s).ok()?;
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let version = libseccomp::ScmpVersion::current().ok()?;
    k.extend_from_slice(
        format!(
            "\n{}.{}.{}\n{}\n{}\n{}",
            version.major,
            version.minor,
            version.micro,
            std::env::consts::ARCH,
            release.trim(),
            boot.trim()
        )
        .as_bytes(),
    );
    Some(k)
}

/// 64-bit FNV-1a: a file name and a check sum, not a security boundary (keys are compared).
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn file_name(key: &[u8]) -> String {
    format!("{:016x}", fnv(key))
}

/// The cached program for `key`, if there is a whole one.
pub(crate) fn lookup(dir: &Path, key: &[u8]) -> Option<Vec<u8>> {
    let path = dir.join(file_name(key));
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .ok()?;
    let meta = f.metadata().ok()?;
    // Only a file of the runtime's own user, that nobody else may write, is trusted.
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me || meta.mode() & 0o022 != 0 || !meta.is_file() {
        return None;
    }
    let len = usize::try_from(meta.len()).ok()?;
    if len > MAX_PROGRAM + key.len() + 64 {
        return None;
    }
    let mut buf = Vec::with_capacity(len);
    f.read_to_end(&mut buf).ok()?;
    parse(&buf, key)
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if buf.len() < n {
        return None;
    }
    let (a, b) = buf.split_at(n);
    *buf = b;
    Some(a)
}

fn take_u64(buf: &mut &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(take(buf, 8)?.try_into().ok()?))
}

fn parse(mut buf: &[u8], key: &[u8]) -> Option<Vec<u8>> {
    if take(&mut buf, MAGIC.len())? != MAGIC {
        return None;
    }
    let klen = usize::try_from(take_u64(&mut buf)?).ok()?;
    if take(&mut buf, klen)? != key {
        return None;
    }
    let plen = usize::try_from(take_u64(&mut buf)?).ok()?;
    let sum = take_u64(&mut buf)?;
    let program = take(&mut buf, plen)?;
    let whole = buf.is_empty()
        && plen > 0
        && plen % INSN == 0
        && plen <= MAX_PROGRAM
        && fnv(program) == sum;
    whole.then(|| program.to_vec())
}

fn encode(key: &[u8], program: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + 24 + key.len() + program.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(key.len() as u64).to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&(program.len() as u64).to_le_bytes());
    out.extend_from_slice(&fnv(program).to_le_bytes());
    out.extend_from_slice(program);
    out
}

/// Keep `program` for `key`. Best effort: a cache that cannot be written is only slower.
pub(crate) fn store(dir: &Path, key: &[u8], program: &[u8]) {
    let _ = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir);
    let name = file_name(key);
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .and_then(|mut f| f.write_all(&encode(key, program)));
    if written.is_err() || std::fs::rename(&tmp, dir.join(name)).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// The program libseccomp generates for `ctx` (the one its load would install).
pub(crate) fn export(ctx: &ScmpFilterContext) -> Result<Vec<u8>, Error> {
    let io = |e: std::io::Error| Error::Invalid(format!("exporting the seccomp program: {e}"));
    // seccomp_export_bpf_mem is libseccomp 2.6's; 2.5 writes to an fd only.
    // SAFETY: memfd_create takes a NUL-terminated name and flags; the result is checked.
    let fd = unsafe { libc::memfd_create(c"berth-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io(std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just created and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    ctx.export_bpf(&fd)
        .map_err(crate::lib("exporting the seccomp program"))?;
    let mut file = std::fs::File::from(fd);
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut bpf = Vec::new();
    file.read_to_end(&mut bpf).map_err(io)?;
    if bpf.is_empty() || bpf.len() % INSN != 0 || bpf.len() > MAX_PROGRAM {
        return Err(Error::Invalid(format!(
            "libseccomp exported a program of {} bytes",
            bpf.len()
        )));
    }
    Ok(bpf)
}

/// Install `program` in the calling process (needs no_new_privs or CAP_SYS_ADMIN).
pub(crate) fn load(program: &[u8], flags: libc::c_ulong) -> Result<(), Error> {
    let insns: Vec<libc::sock_filter> = program
        .chunks_exact(INSN)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    let len = u16::try_from(insns.len()).map_err(|_| {
        Error::Invalid(format!(
            "the seccomp program has {} instructions",
            insns.len()
        ))
    })?;
    let prog = libc::sock_fprog {
        len,
        filter: insns.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points at `insns`, which outlives the call; the kernel copies the program.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const libc::sock_fprog,
        )
    };
    if r != 0 {
        return Err(Error::Invalid(format!(
            "loading the seccomp filter: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_damage_is_a_miss() {
        let key = b"profile\nkernel".to_vec();
        let program: Vec<u8> = (0..64u8).collect();
        let enc = encode(&key, &program);
        assert_eq!(parse(&enc, &key).as_deref(), Some(&program[..]));
        // Another key (a collision of names) is a miss.
        assert_eq!(parse(&enc, b"profile\nkernel2"), None);
        // Truncated anywhere, or one byte changed anywhere: a miss.
        for cut in 0..enc.len() {
            assert_eq!(parse(&enc[..cut], &key), None, "cut at {cut}");
        }
        for i in 0..enc.len() {
            let mut bad = enc.clone();
            bad[i] ^= 0x40;
            assert_eq!(parse(&bad, &key), None, "byte {i} changed");
        }
        // Trailing bytes: a miss.
        let mut long = enc.clone();
        long.push(0);
        assert_eq!(parse(&long, &key), None);
    }

    #[test]
    fn store_then_lookup_and_foreign_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let key = b"k".to_vec();
        let program = vec![6u8, 0, 0, 0, 0, 0, 0xff, 0x7f]; // ret ALLOW
        assert_eq!(lookup(&cache, &key), None);
        store(&cache, &key, &program);
        let mode = std::fs::metadata(&cache).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert_eq!(lookup(&cache, &key), Some(program.clone()));
        // A file others may write is not trusted.
        let file = cache.join(file_name(&key));
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .unwrap();
        assert_eq!(lookup(&cache, &key), None);
        // A symlink in its place is not followed.
        std::fs::remove_file(&file).unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::write(&elsewhere, encode(&key, &program)).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &file).unwrap();
        assert_eq!(lookup(&cache, &key), None);
    }
}
