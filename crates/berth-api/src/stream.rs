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

/// Docker's default detach keys: ctrl-p, ctrl-q.
pub const DEFAULT_DETACH_KEYS: &str = crate::detach::DEFAULT;

/// Detach keys of a request (Docker's syntax), Docker's 400 when they are not.
pub fn detach_keys(spec: &str) -> Result<Vec<u8>, berth_engine::Error> {
    crate::detach::parse(spec)
        .map_err(|_| berth_engine::Error::Invalid(format!("Invalid detach keys ({spec}) provided")))
}

/// Answer `req` with a hijacked stream of the shim (an attach or exec stream), which comes
/// once the client has its answer (101): an attach made before start connects at start, an
/// exec starts its process only then. `on_end` runs once the output has ended. With `detach`
/// (a TTY's stdin, as dockerd only watches a terminal's), the key sequence typed by the client
/// ends the connection and is not passed on; the container runs on.
pub fn hijack_later<B: Send + 'static>(
    req: Request<B>,
    shim: std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<UnixStream, berth_engine::Error>> + Send>,
    >,
    tty: bool,
    detach: Option<Vec<u8>>,
    logged: Vec<u8>,
    on_end: impl FnOnce() + Send + 'static,
) -> Resp {
    hijack_framed(req, shim, tty, false, detach, logged, on_end)
}

/// As [`hijack_later`]; with `frame` a terminal's output (raw from the shim) goes out in
/// Docker's stdout frames, as dockerd sends an exec whose start asked for no TTY.
#[allow(clippy::too_many_arguments)]
pub fn hijack_framed<B: Send + 'static>(
    mut req: Request<B>,
    shim: std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<UnixStream, berth_engine::Error>> + Send>,
    >,
    tty: bool,
    frame: bool,
    detach: Option<Vec<u8>>,
    logged: Vec<u8>,
    on_end: impl FnOnce() + Send + 'static,
) -> Resp {
    let tty = tty && !frame;
    if !wants_upgrade(&req) {
        // No upgrade: the output as the body, no stdin.
        let (resp, tx) = http::stream(200, content_type(tty));
        tokio::spawn(async move {
            if !logged.is_empty() && tx.send(Bytes::from(logged)).await.is_err() {
                return on_end();
            }
            if let Ok(mut shim) = shim.await {
                let mut buf = vec![0u8; 32 * 1024];
                loop {
                    match shim.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let chunk = if frame {
                                crate::containers::frame(1, &buf[..n])
                            } else {
                                Bytes::copy_from_slice(&buf[..n])
                            };
                            if tx.send(chunk).await.is_err() {
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
            Ok(up) => {
                let mut up = TokioIo::new(up);
                if !logged.is_empty() {
                    // A client that reads the answer's head through a buffer (the Python SDK
                    // then takes the raw socket) would swallow bytes that arrive with it: give
                    // it a moment to have read the head first, as the container's own output
                    // normally does.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    if up.write_all(&logged).await.is_err() {
                        return on_end();
                    }
                }
                match shim.await {
                    Ok(shim) => pump(up, shim, detach, frame).await,
                    Err(e) => {
                        tracing::debug!("attach: {e}");
                        let _ = up.shutdown().await;
                    }
                }
            }
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
/// ends the client's connection is closed whatever the client still sends). Typing the
/// `detach` keys closes the client's connection at once, and the shim's without a half-close
/// (the container's stdin stays open for the next attach).
async fn pump<C>(client: C, shim: UnixStream, detach: Option<Vec<u8>>, frame: bool)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut sr, mut sw) = shim.into_split();
    let mut input = tokio::spawn(async move {
        let detached = match detach {
            Some(keys) => copy_escapable(&mut cr, &mut sw, &keys).await,
            None => {
                let _ = tokio::io::copy(&mut cr, &mut sw).await;
                false
            }
        };
        if !detached {
            let _ = sw.shutdown().await;
        }
        (sw, detached)
    });
    // Keep the shim's write half until the output ends.
    let mut held = None;
    {
        let output = async {
            if !frame {
                let _ = tokio::io::copy(&mut sr, &mut cw).await;
                return;
            }
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match sr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if cw
                            .write_all(&crate::containers::frame(1, &buf[..n]))
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            }
        };
        tokio::pin!(output);
        let mut input_done = false;
        loop {
            tokio::select! {
                _ = &mut output => break,
                r = &mut input, if !input_done => {
                    input_done = true;
                    match r {
                        Ok((_, true)) => break,
                        Ok((sw, false)) => held = Some(sw),
                        Err(_) => {}
                    }
                }
            }
        }
    }
    drop(held);
    let _ = cw.flush().await;
    let _ = cw.shutdown().await;
    input.abort();
}

/// Copy `from` to `to` until the end, or until `keys` arrive in a row (true); the sequence
/// is not passed on (`detach::Matcher`).
async fn copy_escapable<R, W>(from: &mut R, to: &mut W, keys: &[u8]) -> bool
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 32 * 1024];
    let mut m = crate::detach::Matcher::new(keys.to_vec());
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = to.write_all(m.pending()).await;
                return false;
            }
            Ok(n) => n,
        };
        let mut out = Vec::with_capacity(n);
        let detached = m.feed(&buf[..n], &mut out);
        if (!out.is_empty() && to.write_all(&out).await.is_err()) || detached {
            return detached;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_sequence_detaches_and_is_not_passed_on() {
        let keys = [16u8, 17];
        let run = |input: &'static [u8]| async move {
            let mut from = input;
            let mut to = Vec::new();
            let detached = copy_escapable(&mut from, &mut to, &keys).await;
            (detached, to)
        };
        assert_eq!(run(b"ab\x10\x11cd").await, (true, b"ab".to_vec()));
        // A start of the sequence that does not go on is passed on whole.
        assert_eq!(run(b"a\x10b").await, (false, b"a\x10b".to_vec()));
        assert_eq!(run(b"\x10\x10\x11").await, (true, b"\x10".to_vec()));
        assert_eq!(run(b"x\x10").await, (false, b"x\x10".to_vec()));
    }
}
