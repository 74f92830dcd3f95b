//! The channel between the runtime process and the processes it forks.
//!
//! A `SOCK_SEQPACKET` socket pair: every message is one packet holding one JSON-encoded
//! [`Msg`], optionally with file descriptors attached (SCM_RIGHTS). Packets keep message
//! boundaries, so no framing is needed, and a closed peer reads as end-of-file.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    self, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType,
};
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};

/// Messages exchanged while a container (or an exec'd process) is set up.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum Msg {
    /// Parent → stage 1: the cgroup is joined; go on.
    Go,
    /// Stage 1 → parent: a new user namespace exists; write its id maps.
    MapIds,
    /// Parent → stage 1: the maps are written.
    IdsMapped,
    /// Stage 1 → parent: the pid of the final process, in the parent's pid namespace.
    Pid(i32),
    /// Init → parent: mounts are done; run the prestart and createRuntime hooks.
    RunHooks,
    /// Parent → init: hooks done; here is the state for the container's own hooks.
    HooksDone(String),
    /// Init → parent: the seccomp notify fd is attached; pass it to the listener.
    SeccompFd,
    /// Parent → init: the seccomp fd was delivered.
    SeccompDone,
    /// Init → parent: everything is set up; waiting for start (or about to exec).
    Ready,
    /// Any child → parent: setup failed.
    Error(String),
}

/// One end of the channel.
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

/// Make a connected pair (both ends close-on-exec).
pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socket::socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .ctx(|| "creating the setup socket pair".into())?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

const MAX_MSG: usize = 64 * 1024;

impl Channel {
    /// Send a message.
    pub fn send(&self, msg: &Msg) -> Result<()> {
        self.send_with_fds(msg, &[])
    }

    /// Send a message with file descriptors attached.
    pub fn send_with_fds(&self, msg: &Msg, fds: &[RawFd]) -> Result<()> {
        let data = serde_json::to_vec(msg).map_err(|e| Error::Child(e.to_string()))?;
        let iov = [IoSlice::new(&data)];
        let cmsg = [ControlMessage::ScmRights(fds)];
        let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
        loop {
            match socket::sendmsg::<()>(
                self.fd.as_raw_fd(),
                &iov,
                cmsgs,
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Ok(_) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("sending on the setup channel", e)),
            }
        }
    }

    /// Receive a message; `None` when the peer has closed its end.
    pub fn recv(&self) -> Result<Option<(Msg, Vec<OwnedFd>)>> {
        let mut buf = vec![0u8; MAX_MSG];
        let mut cmsg_space = nix::cmsg_space!([RawFd; 4]);
        let (n, fds) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match socket::recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg_space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(r) => {
                    let mut fds = Vec::new();
                    for c in r
                        .cmsgs()
                        .map_err(|e| Error::sys("reading control data", e))?
                    {
                        if let ControlMessageOwned::ScmRights(list) = c {
                            for fd in list {
                                // SAFETY: the kernel just installed this fd for us via
                                // SCM_RIGHTS; nothing else owns it.
                                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                            }
                        }
                    }
                    break (r.bytes, fds);
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("receiving on the setup channel", e)),
            }
        };
        if n == 0 {
            return Ok(None);
        }
        let msg = serde_json::from_slice(&buf[..n])
            .map_err(|e| Error::Child(format!("bad message on the setup channel: {e}")))?;
        Ok(Some((msg, fds)))
    }

    /// Receive a message, treating end-of-file and `Error` as failures.
    pub fn expect(&self, what: &str) -> Result<(Msg, Vec<OwnedFd>)> {
        match self.recv()? {
            Some((Msg::Error(e), _)) => Err(Error::Child(e)),
            Some(m) => Ok(m),
            None => Err(Error::Child(format!(
                "the container process exited before {what}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_with_fd() {
        let (a, b) = pair().unwrap();
        a.send(&Msg::Pid(42)).unwrap();
        assert_eq!(b.recv().unwrap().unwrap().0, Msg::Pid(42));
        let f = std::fs::File::open("/dev/null").unwrap();
        a.send_with_fds(&Msg::SeccompFd, &[f.as_raw_fd()]).unwrap();
        let (m, fds) = b.recv().unwrap().unwrap();
        assert_eq!(m, Msg::SeccompFd);
        assert_eq!(fds.len(), 1);
        drop(a);
        assert!(b.recv().unwrap().is_none());
    }
}
