//! The kernel's routing netlink, in-process and synchronous: bridges, veth pairs, addresses,
//! routes; network namespaces kept alive by bind mounts; sysctls.
//!
//! Container network setup must take well under 5 ms, so everything here is a plain system
//! call or a single netlink request answered by the kernel's ACK, from ordinary blocking
//! threads. There is no async runtime, no background task and no netlink multicast
//! subscription.
//!
//! ```no_run
//! use std::net::Ipv4Addr;
//! use std::path::Path;
//! use berth_netlink::{Handle, Netns, VethOptions, mac_from_ipv4};
//!
//! # fn main() -> berth_netlink::Result<()> {
//! let mut host = Handle::new()?;
//! let bridge = match host.link_index("br-1234")? {
//!     Some(index) => index,
//!     None => host.add_bridge("br-1234", None)?,
//! };
//! let ip = Ipv4Addr::new(172, 18, 0, 2);
//! let ns = Netns::create(Path::new("/run/berth/netns/c0ffee"))?;
//! let opts = VethOptions { mtu: None, peer_mac: Some(mac_from_ipv4(ip)), master: Some(bridge), up: true };
//! host.add_veth("vethc0ffee", "eth0", ns.fd(), &opts)?;
//! let mut inside = Handle::new_in(&ns)?;
//! let eth0 = inside.link_index("eth0")?.expect("just created");
//! inside.add_address(eth0, ip.into(), 16)?;
//! inside.set_up(eth0)?;
//! inside.add_route(None, Some(Ipv4Addr::new(172, 18, 0, 1).into()), eth0)?;
//! # Ok(())
//! # }
//! ```
//!
//! # Network namespaces are per thread
//!
//! A network namespace belongs to a *thread*, not to a process: `setns(CLONE_NEWNET)` and
//! `unshare(CLONE_NEWNET)` move only the calling thread, and threads inherit the namespace of
//! the thread that spawned them. A socket stays in the namespace it was created in, whatever
//! thread uses it later. Hence:
//!
//! - a [`Handle`] acts in the namespace of the thread that called [`Handle::new`], for its
//!   whole life, even if it is moved to another thread;
//! - [`Netns::run`] runs a closure on a short-lived thread that entered the namespace, so
//!   the caller's thread never moves; [`Handle::new_in`] uses it to make a handle that
//!   acts inside a namespace;
//! - [`sysctl`] and [`set_sysctl`] act on the namespace of the calling thread for `net/*`
//!   (see below).
//!
//! # Sysctls per network namespace
//!
//! For `net/*`, what the kernel does (checked on Linux 6.18 by this crate's tests and by
//! experiment): the entries under `/proc/sys/net` are those of the network namespace of the
//! *thread* that opens the file (`current->nsproxy->net_ns` at lookup), not of the process
//! or of the `/proc` mount. Two threads of one process in different network namespaces read
//! and write their own namespace's values through the same path, and per-interface entries
//! (`net/ipv4/conf/<name>/*`) exist only in the interface's namespace. An open file stays
//! bound to the namespace it was opened in, whichever thread writes to it later. Compare
//! `/proc/net`, a link to `self/net`, which follows the process's main thread (use
//! `/proc/thread-self/net` for the calling thread), and `/sys/class/net`, which shows the
//! namespace of whoever mounted `/sys`.
//!
//! A new network namespace does not inherit the values of the namespace of the thread that
//! creates it (checked): with the default `net/core/devconf_inherit_init_net` = 0 the kernel
//! copies the IPv4 settings (`net/ipv4/ip_forward`, `net/ipv4/conf/{all,default}/*`) from
//! the initial namespace and resets the IPv6 ones to their defaults (the kernel's
//! documentation of that knob; 3 would inherit from the creating task instead). So
//! `ip_forward` must be set in each namespace that forwards.
//!
//! # Errors
//!
//! Every failure is an [`Error`] naming the operation and the object, for example
//! `creating bridge br-1234: File exists`. The kinds callers branch on are
//! [`Error::Exists`] and [`Error::NotFound`]; everything else carries its errno
//! ([`Error::errno`]). When the kernel explains a refusal (netlink extended ACK), its words
//! are appended to the message.

#![warn(missing_docs)]

mod attr;
mod handle;
mod netns;
mod nl;
mod sysctl;

use std::fmt;
use std::net::Ipv4Addr;

pub use handle::{Handle, Link, Route, VethOptions};
pub use netns::Netns;
pub use nix::errno::Errno;
pub use sysctl::{set_sysctl, sysctl};

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failed operation: what was being done (`op`, e.g. `creating bridge br-1234`) and why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The object to create already exists (`EEXIST`).
    #[error("{op}: File exists{}", Detail(.message))]
    Exists {
        /// The operation, naming the object.
        op: String,
        /// The kernel's explanation (netlink extended ACK), if it gave one.
        message: Option<String>,
    },
    /// The object does not exist: a link (`ENODEV`), a file (`ENOENT`), an address
    /// (`EADDRNOTAVAIL`) or a route (`ESRCH`).
    #[error("{op}: {}{}", .errno.desc(), Detail(.message))]
    NotFound {
        /// The operation, naming the object.
        op: String,
        /// The error number the kernel answered.
        errno: Errno,
        /// The kernel's explanation (netlink extended ACK), if it gave one.
        message: Option<String>,
    },
    /// Any other refusal by the kernel or failed system call.
    #[error("{op}: {}{}", .errno.desc(), Detail(.message))]
    Os {
        /// The operation, naming the object.
        op: String,
        /// The error number.
        errno: Errno,
        /// The kernel's explanation (netlink extended ACK), if it gave one.
        message: Option<String>,
    },
    /// An argument was refused before asking the kernel (an interface name too long, a
    /// prefix length too large, mixed address families, ...).
    #[error("{op}: {reason}")]
    InvalidArgument {
        /// The operation, naming the object.
        op: String,
        /// What is wrong with the argument.
        reason: String,
    },
    /// The kernel's reply could not be understood (or a namespace file is not one).
    #[error("{op}: unexpected reply from the kernel: {detail}")]
    Protocol {
        /// The operation, naming the object.
        op: String,
        /// What was wrong with the reply.
        detail: String,
    },
}

impl Error {
    /// The error number behind this error, if there is one (`EEXIST` for [`Error::Exists`]).
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Exists { .. } => Some(Errno::EEXIST),
            Error::NotFound { errno, .. } | Error::Os { errno, .. } => Some(*errno),
            Error::InvalidArgument { .. } => Some(Errno::EINVAL),
            Error::Protocol { .. } => None,
        }
    }

    /// Whether this is [`Error::Exists`].
    pub fn is_exists(&self) -> bool {
        matches!(self, Error::Exists { .. })
    }

    /// Whether this is [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// The operation that failed, naming its object.
    pub fn op(&self) -> &str {
        match self {
            Error::Exists { op, .. }
            | Error::NotFound { op, .. }
            | Error::Os { op, .. }
            | Error::InvalidArgument { op, .. }
            | Error::Protocol { op, .. } => op,
        }
    }

    /// The error for `errno`, sorted into [`Error::Exists`], [`Error::NotFound`] or
    /// [`Error::Os`].
    pub(crate) fn from_errno(op: String, errno: Errno, message: Option<String>) -> Error {
        match errno {
            Errno::EEXIST => Error::Exists { op, message },
            Errno::ENODEV | Errno::ENOENT | Errno::EADDRNOTAVAIL | Errno::ESRCH => {
                Error::NotFound { op, errno, message }
            }
            _ => Error::Os { op, errno, message },
        }
    }

    /// The error for a failed standard-library I/O call.
    pub(crate) fn io(op: String, err: &std::io::Error) -> Error {
        let errno = err.raw_os_error().map_or(Errno::EIO, Errno::from_raw);
        Error::from_errno(op, errno, None)
    }

    pub(crate) fn invalid(op: String, reason: impl Into<String>) -> Error {
        Error::InvalidArgument {
            op,
            reason: reason.into(),
        }
    }
}

/// Formats the kernel's optional explanation as ` (kernel: ...)`.
struct Detail<'a>(&'a Option<String>);

impl fmt::Display for Detail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(message) => write!(f, " (kernel: {message})"),
            None => Ok(()),
        }
    }
}

/// A MAC address made from an IPv4 address the way Docker does: `02:42:a:b:c:d`, a locally
/// administered unicast address that is unique as long as the IPv4 address is.
pub fn mac_from_ipv4(ip: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = ip.octets();
    [0x02, 0x42, a, b, c, d]
}

/// Formats a MAC address as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: [u8; 6]) -> String {
    let [a, b, c, d, e, f] = mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_style_mac() {
        assert_eq!(
            mac_from_ipv4(Ipv4Addr::new(172, 17, 0, 2)),
            [0x02, 0x42, 172, 17, 0, 2]
        );
        assert_eq!(
            format_mac(mac_from_ipv4(Ipv4Addr::new(172, 17, 0, 2))),
            "02:42:ac:11:00:02"
        );
    }

    #[test]
    fn error_messages() {
        let e = Error::from_errno("creating bridge br-1234".into(), Errno::EEXIST, None);
        assert!(e.is_exists());
        assert_eq!(e.to_string(), "creating bridge br-1234: File exists");
        let e = Error::from_errno(
            "deleting link 7".into(),
            Errno::ENODEV,
            Some("bad thing".into()),
        );
        assert!(e.is_not_found());
        assert_eq!(e.errno(), Some(Errno::ENODEV));
        assert_eq!(
            e.to_string(),
            "deleting link 7: No such device (kernel: bad thing)"
        );
        let e = Error::from_errno("x".into(), Errno::EPERM, None);
        assert_eq!(e.to_string(), "x: Operation not permitted");
        assert_eq!(e.op(), "x");
    }
}
