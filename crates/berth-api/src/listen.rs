//! Where the API is served: unix sockets (mode 0660, group `berth` if it exists) and TCP
//! (plain on loopback only).

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use berth_engine::{Engine, Error, Subject};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, UnixListener};

use crate::Ctx;

/// An address to serve on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listener {
    /// A unix socket path.
    Unix(PathBuf),
    /// A TCP address.
    Tcp(std::net::SocketAddr),
}

/// Parse a `-H` value as dockerd does: `unix:///path`, `unix://` (the default path),
/// `tcp://host:port`, `fd://` is refused.
pub fn parse_host(s: &str, default_unix: &std::path::Path) -> Result<Listener, Error> {
    if let Some(p) = s.strip_prefix("unix://") {
        return Ok(Listener::Unix(if p.is_empty() {
            default_unix.to_path_buf()
        } else {
            PathBuf::from(p)
        }));
    }
    if let Some(a) = s.strip_prefix("tcp://") {
        let a = a.trim_end_matches('/');
        let a = if a.contains(':') {
            a.to_string()
        } else {
            format!("{a}:2375")
        };
        let addr: std::net::SocketAddr = a
            .parse()
            .or_else(|_| {
                use std::net::ToSocketAddrs;
                a.to_socket_addrs()
                    .ok()
                    .and_then(|mut i| i.next())
                    .ok_or(())
            })
            .map_err(|_| Error::Invalid(format!("invalid tcp address: {s}")))?;
        return Ok(Listener::Tcp(addr));
    }
    if s.starts_with('/') {
        return Ok(Listener::Unix(PathBuf::from(s)));
    }
    Err(Error::Invalid(format!(
        "invalid host {s:?}: want unix:///path or tcp://ADDR:PORT"
    )))
}

fn berth_group() -> Option<nix::unistd::Gid> {
    nix::unistd::Group::from_name("berth")
        .ok()
        .flatten()
        .map(|g| g.gid)
}

async fn serve_conn<I>(engine: Arc<Engine>, who: Subject, io: I)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let ctx = Ctx { engine, who };
    let svc = service_fn(move |req| crate::handle(ctx.clone(), req));
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!("connection: {e}");
    }
}

/// Bind every listener (before anything is served, so a bad address fails the start) and
/// serve them until the process ends.
pub async fn serve(engine: Arc<Engine>, listeners: Vec<Listener>) -> Result<(), Error> {
    let mut tasks = Vec::new();
    for l in listeners {
        match l {
            Listener::Unix(path) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| Error::internal(format!("making {}", dir.display()), e))?;
                }
                // A socket left by a daemon that is gone: nobody answers on it.
                if std::os::unix::net::UnixStream::connect(&path).is_ok() {
                    return Err(Error::Conflict(format!(
                        "{} is in use: is another daemon running?",
                        path.display()
                    )));
                }
                let _ = std::fs::remove_file(&path);
                let ul = UnixListener::bind(&path)
                    .map_err(|e| Error::internal(format!("listening on {}", path.display()), e))?;
                let gid = berth_group();
                let _ = nix::unistd::chown(&path, Some(nix::unistd::Uid::from_raw(0)), gid);
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660))
                    .map_err(|e| Error::internal(format!("protecting {}", path.display()), e))?;
                tracing::info!("API listening on unix://{}", path.display());
                let engine = engine.clone();
                tasks.push(tokio::spawn(async move {
                    loop {
                        match ul.accept().await {
                            Ok((s, _)) => {
                                let engine = engine.clone();
                                tokio::spawn(serve_conn(engine, Subject::local(), s));
                            }
                            Err(e) => {
                                tracing::warn!("accept: {e}");
                                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            }
                        }
                    }
                }));
            }
            Listener::Tcp(addr) => {
                if !addr.ip().is_loopback() {
                    return Err(Error::Invalid(format!(
                        "refusing to serve the API in plain TCP on {addr}: use --tlsverify (plain TCP is for loopback only)"
                    )));
                }
                let tl = TcpListener::bind(addr)
                    .await
                    .map_err(|e| Error::internal(format!("listening on {addr}"), e))?;
                tracing::info!("API listening on tcp://{addr}");
                let engine = engine.clone();
                tasks.push(tokio::spawn(async move {
                    loop {
                        match tl.accept().await {
                            Ok((s, _)) => {
                                let _ = s.set_nodelay(true);
                                let engine = engine.clone();
                                tokio::spawn(serve_conn(engine, Subject::local(), s));
                            }
                            Err(e) => {
                                tracing::warn!("accept: {e}");
                                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            }
                        }
                    }
                }));
            }
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}
