//! Terminals: the container's pty, handed to the caller through a console socket.
//!
//! As runc does: the pty is opened inside the container (its /dev/ptmx), the slave becomes the
//! process's controlling terminal and stdio, and the master is sent with SCM_RIGHTS over the
//! unix socket named by `--console-socket`.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
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
    let m = master.as_raw_fd();
    let mut unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads an int from a valid pointer; `m` is an open ptmx fd.
    if unsafe { libc::ioctl(m, libc::TIOCSPTLCK, &mut unlock) } != 0 {
        return Err(Error::io(
            "unlocking the pty",
            std::io::Error::last_os_error(),
        ));
    }
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes an unsigned int into a valid pointer.
    if unsafe { libc::ioctl(m, libc::TIOCGPTN, &mut n) } != 0 {
        return Err(Error::io(
            "reading the pty number",
            std::io::Error::last_os_error(),
        ));
    }
    // TIOCGPTPEER opens the slave through the master, immune to path tricks.
    // SAFETY: TIOCGPTPEER takes open flags as its argument and returns a new fd.
    let s = unsafe {
        libc::ioctl(
            m,
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if s < 0 {
        return Err(Error::io(
            "opening the pty slave",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: `s` is a new fd returned by the kernel and owned by nobody else.
    let slave = unsafe { OwnedFd::from_raw_fd(s) };
    Ok(Pty {
        master,
        slave,
        slave_path: format!("/dev/pts/{n}"),
    })
}

/// Set a terminal's window size.
pub fn set_size(fd: RawFd, rows: u16, cols: u16) -> Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize struct from a valid pointer.
    if unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(Error::io(
            "setting the terminal size",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Read a terminal's window size.
pub fn get_size(fd: RawFd) -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize struct into a valid pointer.
    if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } != 0 {
        return None;
    }
    Some((ws.ws_row, ws.ws_col))
}

/// Make `slave` the controlling terminal and stdin/stdout/stderr of the calling process
/// (which must be a session leader).
pub fn make_controlling(slave: &OwnedFd) -> Result<()> {
    let s = slave.as_raw_fd();
    // SAFETY: TIOCSCTTY takes an integer argument; `s` is an open tty fd.
    if unsafe { libc::ioctl(s, libc::TIOCSCTTY, 0) } != 0 {
        return Err(Error::io(
            "making the pty the controlling terminal",
            std::io::Error::last_os_error(),
        ));
    }
    for target in 0..3 {
        // SAFETY: dup2 of an open fd onto a standard fd number.
        if unsafe { libc::dup2(s, target) } < 0 {
            return Err(Error::io(
                "redirecting stdio to the pty",
                std::io::Error::last_os_error(),
            ));
        }
    }
    Ok(())
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
