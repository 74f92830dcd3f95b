//! Hijacked connections (attach, exec start): the client asks to upgrade (`Upgrade: tcp`),
//! gets 101, and the connection carries the container's output (raw with a TTY, Docker's
//! multiplexed frames without) one way and its stdin the other. A client that does not ask
//! to upgrade gets the output as a plain 200 body.

use bytes::Bytes;
use hyper::Request;
use hyper::header::{CONNECTION, CONTENT_TYPE, HeaderValue, UPGRADE};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::http::{self, Resp};

fn content_type(tty: bool) -> &'static str {
    if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    }
}

/// Does the client ask to upgrade its connection?
pub fn wants_upgrade<B>(req: &Request<B>) -> bool {
    req.headers().contains_key(UPGRADE)
}

/// Answer `req` with a hijacked stream of the shim (an attach or exec stream), which comes
/// once the client has its answer (101): an attach made before start connects at start, an
/// exec starts its process only then. `on_end` runs once the output has ended.
pub fn hijack_later<B: Send + 'static>(
    mut req: Request<B>,
    shim: std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<UnixStream, berth_engine::Error>> + Send>,
    >,
    tty: bool,
    on_end: impl FnOnce() + Send + 'static,
) -> Resp {
    if !wants_upgrade(&req) {
        // No upgrade: the output as the body, no stdin.
        let (resp, tx) = http::stream(200, content_type(tty));
        tokio::spawn(async move {
            if let Ok(mut shim) = shim.await {
                let mut buf = vec![0u8; 32 * 1024];
                loop {
                    match shim.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            }
            on_end();
        });
        return resp;
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(up) => match shim.await {
                Ok(shim) => pump(TokioIo::new(up), shim).await,
                Err(e) => tracing::debug!("attach: {e}"),
            },
            Err(e) => tracing::debug!("upgrade: {e}"),
        }
        on_end();
    });
    let mut resp = http::empty(101);
    let h = resp.headers_mut();
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static("tcp"));
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type(tty)));
    resp
}

/// Copy both ways until the output ends: client → shim (stdin; the client's half-close is
/// passed on, so the shim can close the container's stdin), shim → client (output; when it
/// ends the client's connection is closed whatever the client still sends).
async fn pump<C>(client: C, shim: UnixStream)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut sr, mut sw) = shim.into_split();
    let input = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut cr, &mut sw).await;
        let _ = sw.shutdown().await;
        // Keep the shim's write half until the output ends.
        sw
    });
    let _ = tokio::io::copy(&mut sr, &mut cw).await;
    let _ = cw.flush().await;
    let _ = cw.shutdown().await;
    input.abort();
}
