//! The accept loop (issue #14.2, #28.1): idle or half-sent connections must
//! not exhaust file descriptors or memory. Each accepted connection holds
//! one of `max_connections` permits until it closes, and is handed to the
//! HTTP server only once it has sent the start of a handshake (the HTTP/2
//! preface, an HTTP/1 request line or a TLS record) within
//! `handshake_timeout`. Accept errors (EMFILE) back off instead of spinning,
//! and are logged once per burst; connections already open keep being served.
//!
//! Each connection also carries a [`ConnState`], which the request guard
//! (`crate::guard`) reaches through the request's [`ConnInfo`] extension:
//! - until a request on it authenticates it counts as unauthenticated; past
//!   `max_unauthenticated_connections` the oldest such connection is
//!   closed, so strangers cannot crowd out a newcomer or a health check;
//! - with no request in flight for `idle_timeout` it is closed.

use futures::task::AtomicWaker;
use std::collections::VecDeque;
use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_stream::wrappers::ReceiverStream;

/// Bounds on connections, from `[limits]`.
#[derive(Debug, Clone, Copy)]
pub struct AcceptLimits {
    pub handshake_timeout: Duration,
    pub max_connections: usize,
    pub idle_timeout: Duration,
    /// Expect a TLS ClientHello rather than HTTP.
    pub tls: bool,
}

/// An accepted connection; its permit is released when it is dropped.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    state: Admitted,
    idle_timeout: Duration,
    /// Armed while no request is in flight.
    idle: Pin<Box<Sleep>>,
    _permit: OwnedSemaphorePermit,
}

const UNAUTHENTICATED: u8 = 0;
const AUTHENTICATED: u8 = 1;
/// Closed by eviction, or gone.
const ENDED: u8 = 2;

/// What the request guard knows about, and does to, one connection.
#[derive(Debug)]
pub struct ConnState {
    phase: AtomicU8,
    in_flight: AtomicUsize,
    /// When the last request finished (ms since `epoch`), or the accept.
    idle_since_ms: AtomicU64,
    epoch: Instant,
    /// The connection's task, woken to notice an eviction or an idle start.
    waker: AtomicWaker,
    evicted: Notify,
    registry: Arc<Unauthenticated>,
}

impl ConnState {
    fn new(registry: Arc<Unauthenticated>) -> Arc<ConnState> {
        Arc::new(ConnState {
            phase: AtomicU8::new(UNAUTHENTICATED),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            waker: AtomicWaker::new(),
            evicted: Notify::new(),
            registry,
        })
    }

    /// A request on this connection authenticated: it no longer counts
    /// against `max_unauthenticated_connections`.
    pub fn authenticated(&self) {
        if self.leave(AUTHENTICATED) {
            self.registry.count.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Counts a request in flight until the returned guard is dropped (with
    /// the response body, so an open stream keeps its connection busy).
    pub fn request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// Moves out of UNAUTHENTICATED; true when this call did.
    fn leave(&self, to: u8) -> bool {
        self.phase
            .compare_exchange(UNAUTHENTICATED, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    fn evicted(&self) -> bool {
        self.phase.load(Ordering::Acquire) == ENDED
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// A request in flight on a connection (see [`ConnState::request`]).
#[derive(Debug)]
pub struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let s = &self.0;
        s.idle_since_ms.store(s.now_ms(), Ordering::Release);
        if s.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The connection's task arms its idle timer when next polled.
            s.waker.wake();
        }
    }
}

/// The request extension through which the guard reaches its connection
/// (tonic inserts a connection's `ConnectInfo` into every request).
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub tcp: tonic::transport::server::TcpConnectInfo,
    pub state: Arc<ConnState>,
}

/// The connections no request has authenticated yet, oldest first.
#[derive(Debug)]
pub struct Unauthenticated {
    cap: usize,
    /// Also holds connections that have since authenticated or ended; they
    /// are skipped, and pruned once the queue grows past twice the cap.
    queue: Mutex<VecDeque<Arc<ConnState>>>,
    count: AtomicUsize,
}

impl Unauthenticated {
    /// Shared by every listener.
    pub fn new(cap: usize) -> Arc<Unauthenticated> {
        Arc::new(Unauthenticated {
            cap: cap.max(1),
            queue: Mutex::new(VecDeque::new()),
            count: AtomicUsize::new(0),
        })
    }

    /// Registers a new connection; evicts the oldest unauthenticated ones
    /// past the cap. Returns how many were evicted.
    fn admit(self: &Arc<Self>) -> (Arc<ConnState>, usize) {
        let state = ConnState::new(self.clone());
        // Nothing panics while holding the lock; a poisoned queue is used
        // as it is, so the count and the queue never disagree.
        let mut queue = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        queue.push_back(state.clone());
        self.count.fetch_add(1, Ordering::AcqRel);
        let mut evicted = 0;
        while self.count.load(Ordering::Acquire) > self.cap {
            let Some(oldest) = queue.pop_front() else {
                break;
            };
            if oldest.leave(ENDED) {
                self.count.fetch_sub(1, Ordering::AcqRel);
                oldest.evicted.notify_one();
                oldest.waker.wake();
                evicted += 1;
            }
        }
        if queue.len() > 2 * self.cap + 16 {
            queue.retain(|c| c.phase.load(Ordering::Acquire) == UNAUTHENTICATED);
        }
        (state, evicted)
    }
}

/// A registered connection, from accept until it closes: leaving the
/// unauthenticated count when it ends.
#[derive(Debug)]
struct Admitted(Arc<ConnState>);

impl Drop for Admitted {
    fn drop(&mut self) {
        if self.0.leave(ENDED) {
            self.0.registry.count.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Accepts on `listener` in its own task; yields connections ready to serve.
/// The stream never yields an error, so the server never stops accepting.
pub fn incoming(
    listener: TcpListener,
    limits: AcceptLimits,
    open: Arc<Semaphore>,
    strangers: Arc<Unauthenticated>,
) -> ReceiverStream<io::Result<Conn>> {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(accept_loop(listener, limits, open, strangers, tx));
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
    strangers: Arc<Unauthenticated>,
    tx: mpsc::Sender<io::Result<Conn>>,
) {
    let mut failures: u64 = 0;
    let mut refused: u64 = 0;
    let mut evictions: u64 = 0;
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
        let (state, evicted) = strangers.admit();
        if evicted > 0 {
            // Logged at the first eviction and then every 1,000, not per
            // connection: a flood must not flood the log too.
            if evictions.is_multiple_of(1000) {
                tracing::warn!(
                    evicted_so_far = evictions + 1,
                    "closing the oldest unauthenticated connections: [limits] \
                     max_unauthenticated_connections reached"
                );
            }
            evictions += evicted as u64;
        }
        let state = Admitted(state);
        // Small stream frames would otherwise wait for delayed ACKs.
        let _ = stream.set_nodelay(true);
        let tx = tx.clone();
        tokio::spawn(async move {
            let started = tokio::select! {
                r = tokio::time::timeout(limits.handshake_timeout, handshake(&stream, limits.tls)) => r,
                () = state.0.evicted.notified() => return,
            };
            match started {
                Ok(true) => {
                    let conn = Conn {
                        stream,
                        state,
                        idle_timeout: limits.idle_timeout,
                        idle: Box::pin(tokio::time::sleep(limits.idle_timeout)),
                        _permit: permit,
                    };
                    let _ = tx.send(Ok(conn)).await;
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

impl Conn {
    /// Ready once the connection has had no request in flight for
    /// `idle_timeout`. Pending (with the timer armed, or the waker
    /// registered for the last request's end) otherwise.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let s = &self.state.0;
        loop {
            if s.in_flight.load(Ordering::Acquire) > 0 {
                return Poll::Pending;
            }
            let since_ms = s.idle_since_ms.load(Ordering::Acquire);
            let deadline = s.epoch + Duration::from_millis(since_ms) + self.idle_timeout;
            if self.idle.deadline() != deadline {
                self.idle.as_mut().reset(deadline);
            }
            if self.idle.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            // A request may have come and gone while the timer ran.
            if s.in_flight.load(Ordering::Acquire) == 0
                && s.idle_since_ms.load(Ordering::Acquire) == since_ms
            {
                return Poll::Ready(());
            }
        }
    }

    /// Why the connection must close now, if it must.
    fn closing(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        self.state.0.waker.register(cx.waker());
        if self.state.0.evicted() {
            return Some(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "closed: max_unauthenticated_connections reached",
            ));
        }
        if self.poll_idle(cx).is_ready() {
            return Some(io::Error::new(
                io::ErrorKind::TimedOut,
                "closed: idle_timeout passed with no request",
            ));
        }
        None
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // The server reads a connection whenever it waits on it (for the
        // next request, or frames on HTTP/2), so closing here is enough.
        if let Some(e) = self.closing(cx) {
            return Poll::Ready(Err(e));
        }
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
    type ConnectInfo = ConnInfo;
    fn connect_info(&self) -> Self::ConnectInfo {
        ConnInfo {
            tcp: self.stream.connect_info(),
            state: self.state.0.clone(),
        }
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
