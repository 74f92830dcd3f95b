//! Serving containers' sockets.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Mutex, Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::wire::{self, Forward, MAX_MESSAGE, Outcome, Transport};
use crate::{Config, Names, forward};

/// The embedded DNS server: what is shared by the resolvers of all containers.
///
/// Cheap to clone; clones share the [`Names`] and the [`Config`].
#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
}

struct Inner {
    names: Arc<dyn Names>,
    config: Config,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server answering from `names`, with the default [`Config`].
    pub fn new(names: Arc<dyn Names>) -> Server {
        Server::with_config(names, Config::default())
    }

    /// A server answering from `names`, with `config`.
    pub fn with_config(names: Arc<dyn Names>, config: Config) -> Server {
        Server {
            inner: Arc::new(Inner { names, config }),
        }
    }

    /// The server's configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Decides what to do with `packet`, a message from the container `asker`: answer it
    /// from [`Names`], forward it, or drop it. Does not wait and never panics, whatever
    /// the bytes; [`serve`](Self::serve) calls it for every message.
    pub fn respond(&self, asker: &str, packet: &[u8], transport: Transport) -> Outcome {
        wire::respond(
            &*self.inner.names,
            &self.inner.config,
            asker,
            packet,
            transport,
        )
    }

    /// Forwards a query to the asker's [`Names::upstreams`] and returns the answer for the
    /// client (`SERVFAIL` if no upstream answered). Not bounded: [`serve`](Self::serve)
    /// bounds the forwards of each container.
    pub async fn forward(&self, asker: &str, forward: &Forward) -> Vec<u8> {
        let upstreams = self.inner.names.upstreams(asker);
        forward::forward(
            asker,
            forward,
            &upstreams,
            self.inner.config.upstream_timeout,
        )
        .await
    }

    /// Serves the resolver of the container `asker` on its already bound sockets (the
    /// engine binds them to `127.0.0.11:53` in the container's network namespace) until
    /// the returned [`Serving`] is dropped or stopped.
    ///
    /// Must be called within a tokio runtime, which the serving tasks are spawned on (an
    /// error otherwise). The sockets are made non-blocking here.
    pub fn serve(
        &self,
        asker: String,
        udp: std::net::UdpSocket,
        tcp: Option<std::net::TcpListener>,
    ) -> io::Result<Serving> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            io::Error::other("berth-dns: Server::serve must be called within a tokio runtime")
        })?;
        let _entered = runtime.enter();

        udp.set_nonblocking(true)?;
        let udp = UdpSocket::from_std(udp)?;
        let udp_addr = udp.local_addr()?;
        let tcp = match tcp {
            Some(listener) => {
                listener.set_nonblocking(true)?;
                Some(TcpListener::from_std(listener)?)
            }
            None => None,
        };
        let mut own = vec![udp_addr];
        if let Some(listener) = &tcp {
            own.push(listener.local_addr()?);
        }

        let config = &self.inner.config;
        let ctx = Arc::new(Ctx {
            server: self.clone(),
            asker,
            own,
            slots: Semaphore::new(config.max_forwards.max(1)),
            warned: AtomicBool::new(false),
        });
        let (stop, stopped) = watch::channel(());
        let mut tasks = vec![runtime.spawn(serve_udp(ctx.clone(), Arc::new(udp), stopped.clone()))];
        if let Some(listener) = tcp {
            tasks.push(runtime.spawn(serve_tcp(ctx, listener, stopped)));
        }
        Ok(Serving {
            stop: Some(stop),
            tasks,
            udp_addr,
        })
    }
}

/// One container's resolver being served. Dropping it stops serving at once (its tasks
/// are aborted); [`shutdown`](Self::shutdown) also waits until the sockets are closed.
#[derive(Debug)]
#[must_use = "dropping a Serving stops serving"]
pub struct Serving {
    stop: Option<watch::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
    udp_addr: SocketAddr,
}

impl Serving {
    /// The address the UDP socket is bound to.
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    /// Stops serving (the same as dropping it).
    pub fn stop(self) {}

    /// Stops serving and waits until every task has ended and the sockets are closed, so
    /// that the address can be bound again.
    pub async fn shutdown(mut self) {
        // Dropping the sender tells the loops to stop; they end their tasks and return.
        self.stop = None;
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// What the tasks serving one container share.
struct Ctx {
    server: Server,
    asker: String,
    /// The addresses being served, never forwarded to (moby's `filterExtServers`).
    own: Vec<SocketAddr>,
    /// Forwarding slots.
    slots: Semaphore,
    /// Whether the "too many forwards" warning was logged.
    warned: AtomicBool,
}

impl Ctx {
    fn config(&self) -> &Config {
        &self.server.inner.config
    }

    fn respond(&self, packet: &[u8], transport: Transport) -> Outcome {
        self.server.respond(&self.asker, packet, transport)
    }

    /// Forwards within a slot; `REFUSED` if none frees up within the upstream timeout
    /// (as moby's).
    async fn forward(&self, fwd: &Forward) -> Vec<u8> {
        let timeout = self.config().upstream_timeout;
        let permit = match self.slots.try_acquire() {
            Ok(permit) => permit,
            Err(_) => match tokio::time::timeout(timeout, self.slots.acquire()).await {
                Ok(Ok(permit)) => permit,
                _ => return self.refuse(fwd),
            },
        };
        let mut upstreams = self.server.inner.names.upstreams(&self.asker);
        upstreams.retain(|addr| !self.own.contains(addr));
        let answer = forward::forward(&self.asker, fwd, &upstreams, timeout).await;
        drop(permit);
        answer
    }

    fn refuse(&self, fwd: &Forward) -> Vec<u8> {
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                asker = self.asker,
                max = self.config().max_forwards,
                "too many concurrent DNS queries to forward; refusing some"
            );
        }
        fwd.reply(ResponseCode::Refused)
    }
}

enum Event<T> {
    Stop,
    Io(io::Result<T>),
    Reaped,
}

/// Waits a little after an error that may repeat at once (EMFILE, ENOBUFS), so that the
/// loop does not spin.
async fn pause() {
    tokio::time::sleep(Duration::from_millis(10)).await;
}

async fn serve_udp(ctx: Arc<Ctx>, socket: Arc<UdpSocket>, mut stopped: watch::Receiver<()>) {
    let mut buf = vec![0; MAX_MESSAGE + 1];
    // Forwards, each with its client's address; bounded so that a flood of queries to
    // forward makes `REFUSED` answers, not tasks.
    let mut forwards = JoinSet::new();
    let max_tasks = ctx.config().max_forwards.max(1) + ctx.config().max_waiting;
    loop {
        let event = tokio::select! {
            _ = stopped.changed() => Event::Stop,
            received = socket.recv_from(&mut buf) => Event::Io(received),
            Some(_) = forwards.join_next(), if !forwards.is_empty() => Event::Reaped,
        };
        let (len, peer) = match event {
            Event::Stop => break,
            Event::Reaped => continue,
            Event::Io(Ok(received)) => received,
            Event::Io(Err(error)) => {
                tracing::debug!(asker = ctx.asker, %error, "receiving a DNS query failed");
                pause().await;
                continue;
            }
        };
        let answer = match ctx.respond(&buf[..len], Transport::Udp) {
            Outcome::Drop => continue,
            Outcome::Reply(answer) => answer,
            Outcome::Forward(fwd) if forwards.len() >= max_tasks => ctx.refuse(&fwd),
            Outcome::Forward(fwd) => {
                let (ctx, socket) = (ctx.clone(), socket.clone());
                forwards.spawn(async move {
                    let answer = ctx.forward(&fwd).await;
                    send(&ctx, &socket, &answer, peer).await;
                });
                continue;
            }
        };
        send(&ctx, &socket, &answer, peer).await;
    }
    // Wait until every forward has let go of the socket.
    forwards.shutdown().await;
}

async fn send(ctx: &Ctx, socket: &UdpSocket, answer: &[u8], peer: SocketAddr) {
    if let Err(error) = socket.send_to(answer, peer).await {
        tracing::debug!(asker = ctx.asker, %error, "sending a DNS answer failed");
    }
}

async fn serve_tcp(ctx: Arc<Ctx>, listener: TcpListener, mut stopped: watch::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        let event = tokio::select! {
            _ = stopped.changed() => Event::Stop,
            accepted = listener.accept() => Event::Io(accepted),
            Some(_) = connections.join_next(), if !connections.is_empty() => Event::Reaped,
        };
        match event {
            Event::Stop => break,
            Event::Reaped => {}
            Event::Io(Ok((stream, _))) => {
                if connections.len() >= ctx.config().max_tcp_connections.max(1) {
                    tracing::debug!(
                        asker = ctx.asker,
                        "too many DNS connections; closing a new one"
                    );
                    continue;
                }
                connections.spawn(serve_connection(ctx.clone(), stream));
            }
            Event::Io(Err(error)) => {
                tracing::debug!(asker = ctx.asker, %error, "accepting a DNS connection failed");
                pause().await;
            }
        }
    }
    connections.shutdown().await;
}

/// Serves the queries of one TCP connection (RFC 7766): each message after its 2-byte
/// length; forwarded queries are handled concurrently and answered as they complete.
async fn serve_connection(ctx: Arc<Ctx>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let idle = ctx.config().tcp_idle_timeout;
    let pipeline = ctx.config().max_tcp_pipeline.max(1);
    let (mut reader, writer) = stream.into_split();
    let writer = Arc::new(Mutex::new(writer));
    let mut forwards = JoinSet::new();
    let mut buf = vec![0; MAX_MESSAGE];
    loop {
        while forwards.try_join_next().is_some() {}
        if forwards.len() >= pipeline {
            forwards.join_next().await;
            continue;
        }
        let len = match tokio::time::timeout(idle, reader.read_u16()).await {
            Ok(Ok(len)) => usize::from(len),
            // End of stream, error or idle: no more queries.
            _ => break,
        };
        if tokio::time::timeout(idle, reader.read_exact(&mut buf[..len]))
            .await
            .map_or(true, |read| read.is_err())
        {
            break;
        }
        match ctx.respond(&buf[..len], Transport::Tcp) {
            Outcome::Drop => {}
            Outcome::Reply(answer) => {
                if write_frame(&writer, &answer, idle).await.is_err() {
                    break;
                }
            }
            Outcome::Forward(fwd) => {
                let (ctx, writer) = (ctx.clone(), writer.clone());
                forwards.spawn(async move {
                    let answer = ctx.forward(&fwd).await;
                    let _ = write_frame(&writer, &answer, idle).await;
                });
            }
        }
    }
    // Answer what was asked before the client stopped asking.
    while forwards.join_next().await.is_some() {}
}

async fn write_frame(
    writer: &Mutex<OwnedWriteHalf>,
    answer: &[u8],
    idle: Duration,
) -> io::Result<()> {
    let len = u16::try_from(answer.len())
        .map_err(|_| io::Error::other("DNS answer too large for TCP"))?;
    let mut frame = Vec::with_capacity(2 + answer.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(answer);
    let mut writer = writer.lock().await;
    match tokio::time::timeout(idle, writer.write_all(&frame)).await {
        Ok(result) => result,
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}
