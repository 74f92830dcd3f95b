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

/// TLS for TCP listeners, as dockerd's `--tls`, `--tlsverify`, `--tlscacert`, `--tlscert`,
/// `--tlskey` (paths default to `DOCKER_CERT_PATH`'s `ca.pem`, `cert.pem`, `key.pem`).
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Serve TLS.
    pub tls: bool,
    /// Serve TLS and require client certificates signed by `ca`.
    pub verify: bool,
    /// The CA of client certificates.
    pub ca: Option<PathBuf>,
    /// The server's certificate chain (PEM).
    pub cert: Option<PathBuf>,
    /// The server's key (PEM).
    pub key: Option<PathBuf>,
}

impl TlsOptions {
    fn path(&self, given: &Option<PathBuf>, name: &str) -> PathBuf {
        given.clone().unwrap_or_else(|| {
            let dir = std::env::var_os("DOCKER_CERT_PATH")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    std::env::var_os("HOME")
                        .map(PathBuf::from)
                        .unwrap_or_else(|| PathBuf::from("/root"))
                        .join(".docker")
                });
            dir.join(name)
        })
    }

    /// The server configuration, or None without TLS.
    pub fn server_config(&self) -> Result<Option<Arc<rustls::ServerConfig>>, Error> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        if !self.tls && !self.verify {
            return Ok(None);
        }
        let bad = |what: &str, p: &std::path::Path, e: &dyn std::fmt::Display| {
            Error::Invalid(format!("TLS: {what} {}: {e}", p.display()))
        };
        let cert_path = self.path(&self.cert, "cert.pem");
        let key_path = self.path(&self.key, "key.pem");
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
            .map_err(|e| bad("reading the certificate", &cert_path, &e))?
            .collect::<Result<_, _>>()
            .map_err(|e| bad("reading the certificate", &cert_path, &e))?;
        if certs.is_empty() {
            return Err(bad("no certificate in", &cert_path, &"empty"));
        }
        let key = PrivateKeyDer::from_pem_file(&key_path)
            .map_err(|e| bad("reading the key", &key_path, &e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Invalid(format!("TLS: {e}")))?;
        let builder = if self.verify {
            let ca_path = self.path(&self.ca, "ca.pem");
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(&ca_path)
                .map_err(|e| bad("reading the CA", &ca_path, &e))?
            {
                let c = c.map_err(|e| bad("reading the CA", &ca_path, &e))?;
                roots
                    .add(c)
                    .map_err(|e| bad("using the CA", &ca_path, &e))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| Error::Invalid(format!("TLS: client verification: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut cfg = builder
            .with_single_cert(certs, key)
            .map_err(|e| Error::Invalid(format!("TLS: the certificate and key: {e}")))?;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some(Arc::new(cfg)))
    }
}

/// The tenant a verified client certificate names: its subject's common name, else the
/// whole subject.
fn tenant_of(cert: &[u8]) -> Option<String> {
    let (_, c) = x509_parser::parse_x509_certificate(cert).ok()?;
    let subject = c.subject();
    let cn = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string);
    Some(cn.unwrap_or_else(|| subject.to_string()))
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
pub async fn serve(
    engine: Arc<Engine>,
    listeners: Vec<Listener>,
    tls: &TlsOptions,
) -> Result<(), Error> {
    let tls_config = tls.server_config()?;
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
                if tls_config.is_none() && !addr.ip().is_loopback() {
                    return Err(Error::Invalid(format!(
                        "refusing to serve the API in plain TCP on {addr}: use --tlsverify (plain TCP is for loopback only)"
                    )));
                }
                let tl = TcpListener::bind(addr)
                    .await
                    .map_err(|e| Error::internal(format!("listening on {addr}"), e))?;
                tracing::info!(
                    "API listening on tcp://{addr}{}",
                    match (&tls_config, tls.verify) {
                        (Some(_), true) => " (TLS, client certificates verified)",
                        (Some(_), false) => " (TLS)",
                        (None, _) => "",
                    }
                );
                let engine = engine.clone();
                let acceptor = tls_config.clone().map(tokio_rustls::TlsAcceptor::from);
                let verify = tls.verify;
                tasks.push(tokio::spawn(async move {
                    loop {
                        match tl.accept().await {
                            Ok((s, peer)) => {
                                let _ = s.set_nodelay(true);
                                let engine = engine.clone();
                                match &acceptor {
                                    None => {
                                        tokio::spawn(serve_conn(engine, Subject::local(), s));
                                    }
                                    Some(acc) => {
                                        let acc = acc.clone();
                                        tokio::spawn(async move {
                                            let stream = match tokio::time::timeout(
                                                std::time::Duration::from_secs(10),
                                                acc.accept(s),
                                            )
                                            .await
                                            {
                                                Ok(Ok(st)) => st,
                                                Ok(Err(e)) => {
                                                    tracing::info!(
                                                        "TLS handshake with {peer}: {e}"
                                                    );
                                                    return;
                                                }
                                                Err(_) => return,
                                            };
                                            let who = if verify {
                                                let tenant = stream
                                                    .get_ref()
                                                    .1
                                                    .peer_certificates()
                                                    .and_then(|c| c.first())
                                                    .and_then(|c| tenant_of(c.as_ref()));
                                                match tenant {
                                                    Some(t) => Subject { tenant: t },
                                                    None => return,
                                                }
                                            } else {
                                                Subject::local()
                                            };
                                            serve_conn(engine, who, stream).await;
                                        });
                                    }
                                }
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
