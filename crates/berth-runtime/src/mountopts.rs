//! Mount options of the runtime spec, turned into mount(2) flags, propagation changes,
//! recursive mount attributes and filesystem data.

use nix::mount::MsFlags;

/// mount_setattr(2) attribute bits (linux/mount.h).
pub mod attr {
    /// Read-only.
    pub const RDONLY: u64 = 0x0000_0001;
    /// No set-user-id.
    pub const NOSUID: u64 = 0x0000_0002;
    /// No device nodes.
    pub const NODEV: u64 = 0x0000_0004;
    /// No execution.
    pub const NOEXEC: u64 = 0x0000_0008;
    /// Mask of the atime bits.
    pub const ATIME_MASK: u64 = 0x0000_0070;
    /// relatime.
    pub const RELATIME: u64 = 0x0000_0000;
    /// noatime.
    pub const NOATIME: u64 = 0x0000_0010;
    /// strictatime.
    pub const STRICTATIME: u64 = 0x0000_0020;
    /// nodiratime.
    pub const NODIRATIME: u64 = 0x0000_0080;
    /// An id-mapped mount.
    pub const IDMAP: u64 = 0x0010_0000;
    /// No symlink following.
    pub const NOSYMFOLLOW: u64 = 0x0020_0000;
}

/// The parsed options of one mount.
#[derive(Debug, Clone, PartialEq)]
pub struct MountOptions {
    /// Flags passed to mount(2).
    pub flags: MsFlags,
    /// Flags the options explicitly clear (`rw`, `suid`, …).
    pub cleared: MsFlags,
    /// Propagation changes applied after mounting, in order.
    pub propagation: Vec<MsFlags>,
    /// Filesystem-specific options, joined with commas for the data argument.
    pub data: Vec<String>,
    /// mount_setattr attributes to set recursively (`rro`, `rnosuid`, …).
    pub rec_set: u64,
    /// mount_setattr attributes to clear recursively (`rrw`, `rsuid`, …).
    pub rec_clear: u64,
    /// `idmap` or `ridmap`: make an id-mapped mount with the mount's mappings.
    pub idmap: bool,
    /// `ridmap`: the id-mapping applies recursively.
    pub idmap_recursive: bool,
    /// `tmpcopyup`: copy the destination's existing contents into a new tmpfs.
    pub tmpcopyup: bool,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            cleared: MsFlags::empty(),
            propagation: Vec::new(),
            data: Vec::new(),
            rec_set: 0,
            rec_clear: 0,
            idmap: false,
            idmap_recursive: false,
            tmpcopyup: false,
        }
    }
}

impl MountOptions {
    /// Whether this is a bind mount (`bind` or `rbind`).
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }

    /// The data argument for mount(2), if any.
    pub fn data_string(&self) -> Option<String> {
        if self.data.is_empty() {
            None
        } else {
            Some(self.data.join(","))
        }
    }
}

/// A propagation option's flag, or None when the word is not one.
pub fn propagation_flag(word: &str) -> Option<MsFlags> {
    Some(match word {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

/// MS_NOSYMFOLLOW (Linux 5.10), absent from older libc bindings.
pub const MS_NOSYMFOLLOW: MsFlags = MsFlags::from_bits_retain(256);

/// Parse the options of a mount.
pub fn parse(options: &[String]) -> MountOptions {
    let mut o = MountOptions::default();
    for word in options {
        let set = |o: &mut MountOptions, f: MsFlags| {
            o.flags.insert(f);
            o.cleared.remove(f);
        };
        let clear = |o: &mut MountOptions, f: MsFlags| {
            o.flags.remove(f);
            o.cleared.insert(f);
        };
        match word.as_str() {
            "defaults" => {}
            "ro" => set(&mut o, MsFlags::MS_RDONLY),
            "rw" => clear(&mut o, MsFlags::MS_RDONLY),
            "nosuid" => set(&mut o, MsFlags::MS_NOSUID),
            "suid" => clear(&mut o, MsFlags::MS_NOSUID),
            "nodev" => set(&mut o, MsFlags::MS_NODEV),
            "dev" => clear(&mut o, MsFlags::MS_NODEV),
            "noexec" => set(&mut o, MsFlags::MS_NOEXEC),
            "exec" => clear(&mut o, MsFlags::MS_NOEXEC),
            "sync" => set(&mut o, MsFlags::MS_SYNCHRONOUS),
            "async" => clear(&mut o, MsFlags::MS_SYNCHRONOUS),
            "dirsync" => set(&mut o, MsFlags::MS_DIRSYNC),
            "remount" => set(&mut o, MsFlags::MS_REMOUNT),
            "mand" => set(&mut o, MsFlags::MS_MANDLOCK),
            "nomand" => clear(&mut o, MsFlags::MS_MANDLOCK),
            "noatime" => set(&mut o, MsFlags::MS_NOATIME),
            "atime" => clear(&mut o, MsFlags::MS_NOATIME),
            "nodiratime" => set(&mut o, MsFlags::MS_NODIRATIME),
            "diratime" => clear(&mut o, MsFlags::MS_NODIRATIME),
            "relatime" => set(&mut o, MsFlags::MS_RELATIME),
            "norelatime" => clear(&mut o, MsFlags::MS_RELATIME),
            "strictatime" => set(&mut o, MsFlags::MS_STRICTATIME),
            "nostrictatime" => clear(&mut o, MsFlags::MS_STRICTATIME),
            "lazytime" => set(&mut o, MsFlags::MS_LAZYTIME),
            "nolazytime" => clear(&mut o, MsFlags::MS_LAZYTIME),
            "iversion" => set(&mut o, MsFlags::MS_I_VERSION),
            "noiversion" => clear(&mut o, MsFlags::MS_I_VERSION),
            "silent" => set(&mut o, MsFlags::MS_SILENT),
            "loud" => clear(&mut o, MsFlags::MS_SILENT),
            "nosymfollow" => set(&mut o, MS_NOSYMFOLLOW),
            "symfollow" => clear(&mut o, MS_NOSYMFOLLOW),
            "bind" => set(&mut o, MsFlags::MS_BIND),
            "rbind" => set(&mut o, MsFlags::MS_BIND | MsFlags::MS_REC),
            "rro" => o.rec_set |= attr::RDONLY,
            "rrw" => o.rec_clear |= attr::RDONLY,
            "rnosuid" => o.rec_set |= attr::NOSUID,
            "rsuid" => o.rec_clear |= attr::NOSUID,
            "rnodev" => o.rec_set |= attr::NODEV,
            "rdev" => o.rec_clear |= attr::NODEV,
            "rnoexec" => o.rec_set |= attr::NOEXEC,
            "rexec" => o.rec_clear |= attr::NOEXEC,
            "rnodiratime" => o.rec_set |= attr::NODIRATIME,
            "rdiratime" => o.rec_clear |= attr::NODIRATIME,
            "rnosymfollow" => o.rec_set |= attr::NOSYMFOLLOW,
            "rsymfollow" => o.rec_clear |= attr::NOSYMFOLLOW,
            "rrelatime" => {
                o.rec_clear |= attr::ATIME_MASK;
                o.rec_set |= attr::RELATIME;
            }
            "rnoatime" => {
                o.rec_clear |= attr::ATIME_MASK;
                o.rec_set |= attr::NOATIME;
            }
            "rstrictatime" => {
                o.rec_clear |= attr::ATIME_MASK;
                o.rec_set |= attr::STRICTATIME;
            }
            "ratime" | "rnorelatime" | "rnostrictatime" => {}
            "idmap" => o.idmap = true,
            "ridmap" => {
                o.idmap = true;
                o.idmap_recursive = true;
            }
            "tmpcopyup" => o.tmpcopyup = true,
            other => match propagation_flag(other) {
                Some(p) => o.propagation.push(p),
                None => o.data.push(other.to_string()),
            },
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> MountOptions {
        parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_and_data() {
        let o = p(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(o.data_string().as_deref(), Some("mode=755,size=65536k"));
        assert!(!o.is_bind());
    }

    #[test]
    fn later_words_win() {
        let o = p(&["ro", "rw"]);
        assert!(!o.flags.contains(MsFlags::MS_RDONLY));
        assert!(o.cleared.contains(MsFlags::MS_RDONLY));
    }

    #[test]
    fn bind_and_propagation() {
        let o = p(&["rbind", "rprivate", "ro"]);
        assert!(o.is_bind());
        assert!(o.flags.contains(MsFlags::MS_REC));
        assert_eq!(o.propagation, vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC]);
        assert!(o.data.is_empty());
    }

    #[test]
    fn recursive_attrs() {
        let o = p(&["rro", "rnosuid", "rnoatime", "ridmap"]);
        assert_eq!(o.rec_set, attr::RDONLY | attr::NOSUID | attr::NOATIME);
        assert_eq!(o.rec_clear, attr::ATIME_MASK);
        assert!(o.idmap && o.idmap_recursive);
    }
}
