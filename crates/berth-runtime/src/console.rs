//! Terminals: the container's pty, handed to the caller through a console socket.
//!
//! As runc does: the pty is opened inside the container (its /dev/ptmx), the slave becomes the
//! process's controlling terminal and stdio, and the master is sent with SCM_RIGHTS over the
//! unix socket named by `--console-socket`.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::sys::socket::{self, ControlMessage, ControlMessageOwned, MsgFlags};

use crate::error::{Context, Error, Result};

/// A pty whose slave is about to become the process's terminal.
pub struct Pty {
    /// The master side (sent to the console socket).
    pub master: OwnedFd,
    /// The slave side.
    pub slave: OwnedFd,
    /// The slave's path inside the container, e.g. /dev/pts/0.
    pub slave_path: String,
}

/// Open a new pty from /dev/ptmx of the current root.
pub fn open_pty() -> Result<Pty> {
    let master = nix::fcntl::open(
        "/dev/ptmx",
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_NOCTTY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx(|| "opening /dev/ptmx in the container".into())?;
    // TIOCSPTLCK, TIOCGPTN.
    rustix::pty::unlockpt(&master).map_err(|e| Error::io("unlocking the pty", e.into()))?;
    let name = rustix::pty::ptsname(&master, Vec::new())
        .map_err(|e| Error::io("reading the pty number", e.into()))?;
    // TIOCGPTPEER opens the slave through the master, immune to path tricks.
    use rustix::pty::OpenptFlags;
    let slave = rustix::pty::ioctl_tiocgptpeer(
        &master,
        OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC,
    )
    .map_err(|e| Error::io("opening the pty slave", e.into()))?;
    Ok(Pty {
        master,
        slave,
        slave_path: name.to_string_lossy().into_owned(),
    })
}

/// Set a terminal's window size.
pub fn set_size(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> Result<()> {
    let ws = rustix::termios::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    rustix::termios::tcsetwinsize(fd, ws)
        .map_err(|e| Error::io("setting the terminal size", e.into()))
}

/// Read a terminal's window size.
pub fn get_size(fd: BorrowedFd<'_>) -> Option<(u16, u16)> {
    let ws = rustix::termios::tcgetwinsize(fd).ok()?;
    Some((ws.ws_row, ws.ws_col))
}

/// Make `slave` the controlling terminal and stdin/stdout/stderr of the calling process
/// (which must be a session leader).
pub fn make_controlling(slave: &OwnedFd) -> Result<()> {
    rustix::process::ioctl_tiocsctty(slave)
        .map_err(|e| Error::io("making the pty the controlling terminal", e.into()))?;
    nix::unistd::dup2_stdin(slave)
        .and_then(|()| nix::unistd::dup2_stdout(slave))
        .and_then(|()| nix::unistd::dup2_stderr(slave))
        .ctx(|| "redirecting stdio to the pty".into())
}

/// Connect to a console socket (in the runtime's mount namespace, before forking).
pub fn connect(path: &Path) -> Result<UnixStream> {
    UnixStream::connect(path).ctx(|| format!("connecting to console socket {}", path.display()))
}

/// Send the master over the console socket, with the pty's name as the payload.
pub fn send_master(sock: RawFd, master: &OwnedFd, name: &str) -> Result<()> {
    let fds = [master.as_raw_fd()];
    let iov = [IoSlice::new(name.as_bytes())];
    socket::sendmsg::<()>(
        sock,
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .ctx(|| "sending the pty master to the console socket".into())?;
    Ok(())
}

/// Receive a pty master from a console socket.
pub fn recv_master(sock: RawFd) -> Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let r = socket::recvmsg::<()>(sock, &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC)
        .ctx(|| "receiving the pty master".into())?;
    for c in r.cmsgs().ctx(|| "reading the pty master".into())? {
        if let ControlMessageOwned::ScmRights(fds) = c
            && let Some(&fd) = fds.first()
        {
            // SAFETY: the fd was just installed for us by SCM_RIGHTS.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
    }
    Err(Error::Child("the container did not send a terminal".into()))
}
