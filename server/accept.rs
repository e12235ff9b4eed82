//! The accept loop (issue #14.2): idle connections must not exhaust file
//! descriptors before anyone authenticates. Each accepted connection holds
//! one of `max_connections` permits until it closes, and is handed to the
//! HTTP server only once it has sent the start of a handshake (the HTTP/2
//! preface, an HTTP/1 request line or a TLS record) within
//! `handshake_timeout`. Accept errors (EMFILE) back off instead of spinning,
//! and are logged once per burst; connections already open keep being served.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_stream::wrappers::ReceiverStream;

/// Bounds on connections, from `[limits]`.
#[derive(Debug, Clone, Copy)]
pub struct AcceptLimits {
    pub handshake_timeout: Duration,
    pub max_connections: usize,
    /// Expect a TLS ClientHello rather than HTTP.
    pub tls: bool,
}

/// An accepted connection; its permit is released when it is dropped.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
}

/// Accepts on `listener` in its own task; yields connections ready to serve.
/// The stream never yields an error, so the server never stops accepting.
pub fn incoming(
    listener: TcpListener,
    limits: AcceptLimits,
    open: Arc<Semaphore>,
) -> ReceiverStream<io::Result<Conn>> {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(accept_loop(listener, limits, open, tx));
    ReceiverStream::new(rx)
}

/// A semaphore for `max_connections`, shared by every listener.
pub fn connection_permits(max_connections: usize) -> Arc<Semaphore> {
    Arc::new(Semaphore::new(max_connections.min(Semaphore::MAX_PERMITS)))
}

async fn accept_loop(
    listener: TcpListener,
    limits: AcceptLimits,
    open: Arc<Semaphore>,
    tx: mpsc::Sender<io::Result<Conn>>,
) {
    let mut failures: u64 = 0;
    let mut refused: u64 = 0;
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            _ = tx.closed() => return,
            r = listener.accept() => r,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) if per_connection(&e) => continue,
            Err(e) => {
                if failures == 0 {
                    tracing::warn!(error = %e, "accept failed; backing off (existing connections are still served)");
                }
                failures += 1;
                // Without a pause a full fd table makes accept fail at once,
                // forever: a spinning core.
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
                continue;
            }
        };
        if failures > 0 {
            tracing::info!(failures, "accepting again after accept errors");
            failures = 0;
            backoff = Duration::from_millis(5);
        }
        let Ok(permit) = open.clone().try_acquire_owned() else {
            if refused == 0 {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    "refusing new connections: [limits] max_connections reached"
                );
            }
            refused += 1;
            drop(stream);
            continue;
        };
        if refused > 0 {
            tracing::info!(refused, "accepting connections again after refusing some");
            refused = 0;
        }
        // Small stream frames would otherwise wait for delayed ACKs.
        let _ = stream.set_nodelay(true);
        let tx = tx.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(limits.handshake_timeout, handshake(&stream, limits.tls))
                .await
            {
                Ok(true) => {
                    let _ = tx
                        .send(Ok(Conn {
                            stream,
                            _permit: permit,
                        }))
                        .await;
                }
                Ok(false) => {}
                Err(_) => tracing::debug!("closed a connection that sent no handshake in time"),
            }
        });
    }
}

/// Errors about one connection (it went away before accept), not the listener.
fn per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Waits (by peeking, so nothing is consumed) until the peer has sent the
/// start of a handshake; false when it closed first.
async fn handshake(stream: &TcpStream, tls: bool) -> bool {
    let mut buf = vec![0u8; 8192];
    let mut pause = Duration::from_millis(2);
    loop {
        let n = match stream.peek(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        if started(&buf[..n], tls) {
            return true;
        }
        // peek returns at once while any byte is buffered, so wait a little
        // before looking again; the caller's timeout bounds this.
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// True once a handshake has begun (or the bytes are for the TLS or HTTP
/// stack to refuse); false while more bytes are needed.
fn started(b: &[u8], tls: bool) -> bool {
    if tls {
        // A TLS record header: handshake (22), then version and length.
        // Anything else goes to rustls at once, which answers with an alert
        // (a plaintext client then learns why it failed).
        if b[0] != 0x16 {
            return true;
        }
        if b.len() < 5 {
            return false;
        }
        let len = u16::from_be_bytes([b[3], b[4]]) as usize;
        return b.len() >= 5 + len || b.len() >= 8192;
    }
    if H2_PREFACE.starts_with(&b[..b.len().min(H2_PREFACE.len())]) {
        return b.len() >= H2_PREFACE.len();
    }
    // HTTP/1: the request line is complete, or the buffer is full and hyper
    // will reject it.
    b.contains(&b'\n') || b.len() >= 8192
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;
    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit and logs both, so the
/// common soft limit of 1,024 does not cap connections.
#[cfg(unix)]
pub fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        tracing::warn!(error = %io::Error::last_os_error(), "cannot read RLIMIT_NOFILE");
        return;
    }
    let before = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        } else {
            tracing::warn!(error = %io::Error::last_os_error(), "cannot raise RLIMIT_NOFILE");
        }
    }
    tracing::info!(
        soft_was = before,
        soft = lim.rlim_cur,
        hard = lim.rlim_max,
        "open file limit (RLIMIT_NOFILE)"
    );
}

#[cfg(not(unix))]
pub fn raise_fd_limit() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_starts() {
        assert!(!started(b"PRI * HTTP", false));
        assert!(started(H2_PREFACE, false));
        assert!(started(b"POST /x HTTP/1.1\r\n", false));
        assert!(!started(b"POST /x HT", false));
        assert!(!started(b"\x16\x03\x01", true));
        assert!(!started(b"\x16\x03\x01\x00\x03ab", true));
        assert!(started(b"\x16\x03\x01\x00\x02ab", true));
        assert!(started(b"GET / HTTP/1.1\r\n", true), "rustls refuses it");
    }
}
