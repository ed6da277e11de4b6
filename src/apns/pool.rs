//! The connection pool: the concurrency engine of the client, in one file.
//!
//! # Shape
//!
//! A request needs a *lease*: one stream on one connection, counted in that connection's
//! `in_flight`, which never exceeds `current_max_send_streams()`, the server's live
//! `SETTINGS_MAX_CONCURRENT_STREAMS` as h2 tracks it. When nobody is waiting, the caller takes a
//! lease directly from a connection with a free stream (fast path: no other task involved) and
//! runs the request in its own task. Otherwise it waits in one FIFO queue shared by every
//! connection; each connection *slot* runs one task that connects lazily (on demand) and hands
//! leases to waiters, in order, as streams free up. The first SETTINGS are assumed to allow one
//! stream (APNs' ramp: one stream until a token has been accepted, then typically 1000), so the
//! client never opens more streams than allowed, also before the server's SETTINGS arrive, and
//! follows drops as they come. Because connections pull, the queue is served in arrival order
//! (fair) and a slow or dead connection simply stops taking work.
//!
//! # Failure handling
//!
//! - GOAWAY: the streams above `last_stream_id` (h2 reports them as remote GOAWAY errors) and
//!   requests that could not be opened come back as *unsent* and are put back at the head of the
//!   queue for another connection; the slot stops pulling and reconnects.
//! - REFUSED_STREAM: unsent, retried the same way. The retry remembers the connection that
//!   refused it ([`Requeue::Front`]): that connection skips it in the queue while another one can
//!   take it (a live, usable connection, or a slot that will connect now because work is
//!   queued). With no other connection to be had (one slot, or the others down or backing off
//!   after a failed connect), the refusing connection takes it after all; the caller's bound on
//!   unsent retries still applies.
//! - A connection that dies with a request in flight: APNs may have processed it, so the request
//!   fails with `ConnectionLost` instead of risking a duplicate notification.
//! - Connect failures: reconnect with exponential backoff and jitter; when no connection is up,
//!   queued requests come back as unsent (the caller's retry budget applies).
//! - Idle: a PING after `ping_interval` without traffic (failure or timeout closes the
//!   connection); optionally close after `idle_timeout`.
//! - Timeouts: connect (DNS + TCP + proxy + TLS + HTTP/2), and per request attempt; three
//!   request timeouts in a row with no answer between them retire the connection.
//!
//! No lock is held across an await.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use http::{HeaderName, HeaderValue, Method, Request};
use parking_lot::Mutex;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};

use super::auth::{Jwt, TokenKey};
use super::error::{Error, ErrorKind, Msg};
use super::metrics::Metrics;

/// Consecutive request timeouts (without any answer between them) that retire a connection.
const RETIRE_AFTER_TIMEOUTS: u32 = 3;

/// What a request's answer body is for, which sets how much of it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyUse {
    /// A push's answer: nothing, or a small JSON error. Past its [`limit`](Self::limit) the
    /// body is not APNs's and is dropped; the status alone decides the outcome (a 400 stays
    /// a rejection, never "APNs may have it").
    Outcome,
    /// A channel-management answer whose body is the result (a list of up to 10,000 channel
    /// ids, about 300 KB): read whole up to its [`limit`](Self::limit), else a `Protocol` error.
    Result,
}

impl BodyUse {
    /// The most of the body that is read: 64 KiB of a push's answer, 1 MiB of a result.
    fn limit(self) -> usize {
        match self {
            BodyUse::Outcome => 64 * 1024,
            BodyUse::Result => 1024 * 1024,
        }
    }
}

/// Everything the pool needs to open connections and send requests.
#[derive(Clone)]
pub(crate) struct PoolConfig {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) server_name: ServerName<'static>,
    pub(crate) authority: http::uri::Authority,
    pub(crate) tls: Arc<rustls::ClientConfig>,
    pub(crate) proxy: Option<super::Proxy>,
    pub(crate) connections: usize,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) ping_interval: Duration,
    pub(crate) ping_timeout: Duration,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) token: Option<TokenKey>,
    pub(crate) metrics: Option<Arc<dyn Metrics>>,
}

/// One HTTP request, built once per push and reused on every retry.
pub(crate) struct RequestSpec {
    pub(crate) method: Method,
    pub(crate) path: String,
    /// The full URI, built on the first attempt and reused by retries.
    pub(crate) uri: std::sync::OnceLock<http::Uri>,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) body: Bytes,
    pub(crate) answer: BodyUse,
}

/// Names one connection (unique within the process), so that a request it refused can be kept
/// off it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnId(u64);

impl ConnId {
    fn next() -> ConnId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        ConnId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// Where a request waits for its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Requeue {
    /// A first attempt: a free stream right away if nobody is waiting, else the back of the
    /// queue.
    Back,
    /// A request that never reached APNs: the head of the queue, and not on `avoid` (the
    /// connection that refused it) while another connection can take it.
    Front { avoid: Option<ConnId> },
}

/// What one attempt produced.
pub(crate) enum Attempt {
    /// The server answered.
    Response {
        status: u16,
        headers: http::HeaderMap,
        body: Bytes,
        token: Option<Arc<Jwt>>,
        conn: ConnHandle,
    },
    /// The request certainly did not reach the application: safe to retry elsewhere.
    /// `refused_by` is the connection that refused it (none when no stream could be had,
    /// which calls for a backoff before the retry).
    Unsent {
        error: Error,
        refused_by: Option<ConnId>,
    },
    /// No answer, and the request may have been processed.
    Failed(Error),
}

/// What a waiter is handed: a stream, or the reason none can be had now.
enum Grant {
    Lease(Lease),
    Unsent(Error),
}

struct Job {
    reply: oneshot::Sender<Grant>,
    /// The connection that refused this request: it leaves the job to another one if it can.
    avoid: Option<ConnId>,
}

/// One stream's worth of a connection's capacity. Dropping it frees the stream.
pub(crate) struct Lease {
    conn: Arc<LiveConn>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let st = &self.conn.state;
        st.touch();
        st.in_flight.fetch_sub(1, Ordering::AcqRel);
        if st.slot_waiting.load(Ordering::Acquire) {
            st.capacity_freed.notify_one();
        }
    }
}

/// A connection as seen by callers: its request handle and state.
struct LiveConn {
    send: SendRequest<Bytes>,
    state: Arc<ConnState>,
}

impl LiveConn {
    /// Takes a stream if one is free (never more than the server allows).
    fn try_lease(self: &Arc<Self>) -> Option<Lease> {
        let st = &self.state;
        if st.broken.load(Ordering::Acquire) {
            return None;
        }
        let max = self.send.current_max_send_streams();
        let mut cur = st.in_flight.load(Ordering::Acquire);
        loop {
            if cur >= max {
                return None;
            }
            match st.in_flight.compare_exchange_weak(
                cur,
                cur + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(Lease { conn: self.clone() }),
                Err(now) => cur = now,
            }
        }
    }
}

struct Shared {
    cfg: PoolConfig,
    conns: parking_lot::RwLock<Vec<Arc<LiveConn>>>,
    next_conn: AtomicUsize,
    queue: Mutex<VecDeque<Job>>,
    job_ready: Notify,
    closing: AtomicBool,
    close_signal: Notify,
    live: AtomicUsize,
    /// Slots waiting out their backoff after a failed connect.
    backing_off: AtomicUsize,
}

impl Shared {
    /// The first job `me` may serve, in queue order: every job except those `me` refused
    /// while another connection can take them. Jobs whose caller gave up are dropped.
    fn pop_for(&self, me: &ConnState) -> Option<Job> {
        let mut q = self.queue.lock();
        let mut another: Option<bool> = None;
        let mut i = 0;
        while i < q.len() {
            if q[i].reply.is_closed() {
                q.remove(i);
                continue;
            }
            if q[i].avoid == Some(me.id)
                && *another.get_or_insert_with(|| self.another_can_serve(me))
            {
                i += 1;
                continue;
            }
            return q.remove(i);
        }
        None
    }

    /// Whether a connection other than `me` can take a job: a live, usable one, or a slot
    /// that will connect because work is queued (one not backing off after a failed connect).
    fn another_can_serve(&self, me: &ConnState) -> bool {
        if self.is_closing() {
            return false;
        }
        let usable = self
            .conns
            .read()
            .iter()
            .any(|c| c.state.id != me.id && !c.state.broken.load(Ordering::Acquire));
        if usable {
            return true;
        }
        let busy = self.live.load(Ordering::Acquire) + self.backing_off.load(Ordering::Acquire);
        self.cfg.connections.max(1) > busy
    }

    fn queue_len(&self) -> usize {
        self.queue.lock().len()
    }

    fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }
}

/// The pool. Started on the first request (inside the caller's runtime).
pub(crate) struct Pool {
    shared: Arc<Shared>,
    slots: Mutex<Vec<JoinHandle<()>>>,
}

impl Pool {
    pub(crate) fn start(cfg: PoolConfig) -> Pool {
        let n = cfg.connections.max(1);
        let shared = Arc::new(Shared {
            cfg,
            conns: parking_lot::RwLock::new(Vec::new()),
            next_conn: AtomicUsize::new(0),
            queue: Mutex::new(VecDeque::new()),
            job_ready: Notify::new(),
            closing: AtomicBool::new(false),
            close_signal: Notify::new(),
            live: AtomicUsize::new(0),
            backing_off: AtomicUsize::new(0),
        });
        let slots = (0..n)
            .map(|i| tokio::spawn(run_slot(shared.clone(), i)))
            .collect();
        Pool {
            shared,
            slots: Mutex::new(slots),
        }
    }

    /// A stream without waiting, if nobody is queued and a connection has one free.
    fn try_lease(&self) -> Option<Lease> {
        if !self.shared.queue.lock().is_empty() {
            return None;
        }
        let conns = self.shared.conns.read();
        let n = conns.len();
        if n == 0 {
            return None;
        }
        let start = self.shared.next_conn.fetch_add(1, Ordering::Relaxed);
        (0..n).find_map(|i| conns[(start + i) % n].try_lease())
    }

    /// Waits for a stream in FIFO order; [`Requeue::Front`] jumps the queue (a retry of an
    /// unsent request) and stays off the connection that refused it while another can serve.
    async fn lease(&self, requeue: Requeue) -> Result<Lease, Error> {
        if requeue == Requeue::Back
            && let Some(l) = self.try_lease()
        {
            return Ok(l);
        }
        let (tx, rx) = oneshot::channel();
        let avoid = match requeue {
            Requeue::Back => None,
            Requeue::Front { avoid } => avoid,
        };
        let job = Job { reply: tx, avoid };
        {
            let mut queue = self.shared.queue.lock();
            match requeue {
                Requeue::Back => queue.push_back(job),
                Requeue::Front { .. } => queue.push_front(job),
            }
        }
        if avoid.is_some() {
            // Wake every connection (and idle slot): the one woken by `notify_one` could be
            // the connection that refused this request, which leaves it to the others.
            self.shared.job_ready.notify_waiters();
        } else {
            self.shared.job_ready.notify_one();
        }
        match rx.await {
            Ok(Grant::Lease(l)) => Ok(l),
            Ok(Grant::Unsent(e)) => Err(e),
            Err(_) => Err(Error::new(ErrorKind::Shutdown, "the client was shut down")),
        }
    }

    /// One attempt of `spec`: take a stream, send, read the answer, within the request timeout.
    pub(crate) async fn execute(&self, spec: &RequestSpec, requeue: Requeue) -> Attempt {
        let cfg = &self.shared.cfg;
        let lease = match self.lease(requeue).await {
            Ok(l) => l,
            Err(error) => {
                if error.is_shutdown() {
                    return Attempt::Failed(error);
                }
                return Attempt::Unsent {
                    error,
                    refused_by: None,
                };
            }
        };
        let st = &lease.conn.state;
        match timeout(cfg.request_timeout, attempt(spec, &lease, cfg)).await {
            Ok(a) => {
                if matches!(a, Attempt::Response { .. }) {
                    st.timeouts_in_a_row.store(0, Ordering::Relaxed);
                }
                a
            }
            Err(_) => {
                // A connection that answers nothing any more is retired (its PINGs only run
                // when it is idle, and it is not).
                if st.timeouts_in_a_row.fetch_add(1, Ordering::AcqRel) + 1 >= RETIRE_AFTER_TIMEOUTS
                {
                    tracing::warn!("APNs connection stopped answering: retiring it");
                    st.broken.store(true, Ordering::Release);
                }
                Attempt::Failed(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "no response within {:?}; APNs may have received the push",
                        cfg.request_timeout
                    ),
                ))
            }
        }
    }

    /// Stops the slots once the queue is empty and in-flight requests are done.
    pub(crate) async fn close(&self) {
        self.begin_close();
        let slots: Vec<JoinHandle<()>> = std::mem::take(&mut *self.slots.lock());
        for s in slots {
            let _ = s.await;
        }
    }

    pub(crate) fn begin_close(&self) {
        self.shared.closing.store(true, Ordering::Release);
        self.shared.close_signal.notify_waiters();
        self.shared.job_ready.notify_waiters();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.begin_close();
    }
}

/// Lets the caller retire the connection an answer came on (no new streams on it).
pub(crate) struct ConnHandle(Arc<ConnState>);

impl ConnHandle {
    /// Stop using this connection: it drains, closes, and the slot reconnects on demand.
    pub(crate) fn retire(&self) {
        self.0.broken.store(true, Ordering::Release);
    }
}

/// Per-connection state shared with its request tasks.
struct ConnState {
    id: ConnId,
    in_flight: AtomicUsize,
    capacity_freed: Notify,
    /// The slot waits for a free stream: wake it when one frees.
    slot_waiting: AtomicBool,
    token: Mutex<Option<Arc<Jwt>>>,
    broken: AtomicBool,
    timeouts_in_a_row: AtomicU32,
    /// Milliseconds since `born` of the last request or PING.
    last_activity_ms: AtomicU64,
    born: Instant,
}

impl ConnState {
    fn touch(&self) {
        let ms = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_activity_ms.store(ms, Ordering::Relaxed);
    }

    fn last_activity(&self) -> Instant {
        self.born + Duration::from_millis(self.last_activity_ms.load(Ordering::Relaxed))
    }
}

struct Conn {
    send: SendRequest<Bytes>,
    ping: Option<h2::PingPong>,
    driver: JoinHandle<Result<(), h2::Error>>,
    state: Arc<ConnState>,
}

fn backoff_delay(failures: u32) -> Duration {
    let base = Duration::from_millis(100).saturating_mul(1u32 << failures.min(9));
    let capped = base.min(Duration::from_secs(10));
    capped.mul_f64(0.5 + rand::random::<f64>() * 0.5)
}

async fn run_slot(shared: Arc<Shared>, slot: usize) {
    let mut failures: u32 = 0;
    loop {
        // Wait for demand: connect lazily.
        loop {
            let notified = shared.job_ready.notified();
            if shared.queue_len() > 0 {
                // Let another slot (maybe already connected) see the work too.
                shared.job_ready.notify_one();
                break;
            }
            if shared.is_closing() {
                return;
            }
            notified.await;
        }
        match connect(&shared).await {
            Ok(conn) => {
                failures = 0;
                shared.live.fetch_add(1, Ordering::AcqRel);
                if let Some(m) = &shared.cfg.metrics {
                    m.connection_opened();
                }
                tracing::debug!(slot, "APNs connection up");
                serve(&shared, conn).await;
                shared.live.fetch_sub(1, Ordering::AcqRel);
                tracing::debug!(slot, "APNs connection closed");
            }
            Err(error) => {
                failures += 1;
                tracing::warn!(slot, %error, failures, "APNs connect failed");
                if shared.live.load(Ordering::Acquire) == 0 {
                    // Nobody can serve the queue now: hand the requests back (unsent).
                    let drained: Vec<Job> = shared.queue.lock().drain(..).collect();
                    for job in drained {
                        let _ = job.reply.send(Grant::Unsent(error.clone()));
                    }
                }
                // This slot will not connect for a while: a connection that left a refused
                // request to "another connection" must take it back.
                shared.backing_off.fetch_add(1, Ordering::AcqRel);
                shared.job_ready.notify_waiters();
                let delay = backoff_delay(failures);
                tokio::select! {
                    _ = sleep(delay) => {}
                    _ = shared.close_signal.notified() => {}
                }
                shared.backing_off.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

async fn connect(shared: &Shared) -> Result<Conn, Error> {
    let cfg = &shared.cfg;
    let fut = async {
        let (host, port) = match &cfg.proxy {
            Some(proxy) => (proxy.host(), proxy.port()),
            None => (cfg.host.as_str(), cfg.port),
        };
        // tokio resolves on every call (no cache): one fresh DNS lookup per connection.
        let mut tcp = TcpStream::connect((host, port)).await.map_err(|e| {
            Error::new(
                ErrorKind::Connect,
                format!("cannot connect to {host}:{port}"),
            )
            .with_source(e)
        })?;
        let _ = tcp.set_nodelay(true);
        if cfg.proxy.is_some() {
            proxy_connect(&mut tcp, &cfg.host, cfg.port).await?;
        }
        let tls = tokio_rustls::TlsConnector::from(cfg.tls.clone())
            .connect(cfg.server_name.clone(), tcp)
            .await
            .map_err(|e| {
                Error::new(ErrorKind::Connect, "TLS handshake with APNs failed").with_source(e)
            })?;
        // APNs speaks HTTP/2 only, chosen by ALPN: a server that picked anything else (or
        // nothing) would read the request as garbage, and its answer could not be parsed as a
        // push's outcome. Refused here, before anything is sent.
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err(Error::new(
                ErrorKind::Connect,
                format!(
                    "{}:{} did not agree to HTTP/2 (ALPN h2); APNs speaks nothing else",
                    cfg.host, cfg.port
                ),
            ));
        }
        let (send, mut connection) = h2::client::Builder::new()
            .initial_max_send_streams(1)
            .enable_push(false)
            .max_concurrent_reset_streams(1024)
            .handshake::<_, Bytes>(tls)
            .await
            .map_err(|e| {
                Error::new(ErrorKind::Connect, "HTTP/2 handshake failed")
                    .with_source(Msg(e.to_string()))
            })?;
        let ping = connection.ping_pong();
        let driver = tokio::spawn(connection);
        Ok(Conn {
            send,
            ping,
            driver,
            state: Arc::new(ConnState {
                id: ConnId::next(),
                in_flight: AtomicUsize::new(0),
                capacity_freed: Notify::new(),
                token: Mutex::new(None),
                broken: AtomicBool::new(false),
                timeouts_in_a_row: AtomicU32::new(0),
                slot_waiting: AtomicBool::new(false),
                last_activity_ms: AtomicU64::new(0),
                born: Instant::now(),
            }),
        })
    };
    match timeout(cfg.connect_timeout, fut).await {
        Ok(r) => r,
        // A connect failure, not a request timeout: no request was written on this connection,
        // so nothing was sent (`is_connect()`, never "APNs may have it").
        Err(_) => Err(Error::new(
            ErrorKind::Connect,
            format!(
                "could not connect to {}:{} within {:?} (nothing was sent)",
                cfg.host, cfg.port, cfg.connect_timeout
            ),
        )),
    }
}

/// HTTP CONNECT through a proxy, before TLS.
async fn proxy_connect(tcp: &mut TcpStream, host: &str, port: u16) -> Result<(), Error> {
    let req = format!(
        "CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\nProxy-Connection: Keep-Alive\r\n\r\n"
    );
    let io_err = |e: std::io::Error| {
        Error::new(ErrorKind::Connect, "HTTP CONNECT to the proxy failed").with_source(e)
    };
    tcp.write_all(req.as_bytes()).await.map_err(io_err)?;
    let mut buf = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    // Read byte by byte up to the end of the headers: nothing of the tunnel is consumed.
    while !buf.ends_with(b"\r\n\r\n") {
        if buf.len() > 8192 {
            return Err(Error::new(
                ErrorKind::Connect,
                "the proxy's CONNECT response is too long",
            ));
        }
        let n = tcp.read(&mut byte).await.map_err(io_err)?;
        if n == 0 {
            return Err(Error::new(
                ErrorKind::Connect,
                "the proxy closed the connection during CONNECT",
            ));
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf);
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if !status.starts_with('2') {
        let line = head.lines().next().unwrap_or("").to_owned();
        return Err(Error::new(
            ErrorKind::Connect,
            format!("the proxy refused CONNECT: {line}"),
        ));
    }
    Ok(())
}

/// Polls `poll_ready` once: `Some(true)` ready, `Some(false)` busy, `None` unusable.
async fn ready_now(send: &mut SendRequest<Bytes>) -> Option<bool> {
    std::future::poll_fn(|cx| {
        Poll::Ready(match send.poll_ready(cx) {
            Poll::Ready(Ok(())) => Some(true),
            Poll::Ready(Err(_)) => None,
            Poll::Pending => Some(false),
        })
    })
    .await
}

async fn serve(shared: &Arc<Shared>, mut conn: Conn) {
    let cfg = &shared.cfg;
    let state = conn.state.clone();
    let live = Arc::new(LiveConn {
        send: conn.send.clone(),
        state: state.clone(),
    });
    shared.conns.write().push(live.clone());
    loop {
        if conn.driver.is_finished() || state.broken.load(Ordering::Acquire) {
            break;
        }
        let in_flight = state.in_flight.load(Ordering::Acquire);
        if shared.is_closing() && in_flight == 0 && shared.queue_len() == 0 {
            break;
        }
        let ready = if in_flight < conn.send.current_max_send_streams() {
            ready_now(&mut conn.send).await
        } else {
            Some(false)
        };
        match ready {
            None => {
                state.broken.store(true, Ordering::Release);
                break;
            }
            Some(true) => {
                let notified = shared.job_ready.notified();
                if let Some(job) = shared.pop_for(&state) {
                    match live.try_lease() {
                        Some(lease) => {
                            if let Err(Grant::Lease(unused)) = job.reply.send(Grant::Lease(lease)) {
                                drop(unused);
                            }
                        }
                        None => shared.queue.lock().push_front(job),
                    }
                    continue;
                }
                let idle_since = state.last_activity();
                let ping_at = idle_since + cfg.ping_interval;
                let idle_close_at = cfg.idle_timeout.map(|t| idle_since + t);
                tokio::select! {
                    _ = notified => {}
                    _ = &mut conn.driver => break,
                    _ = shared.close_signal.notified() => {}
                    _ = sleep_until_opt(idle_close_at), if idle_close_at.is_some() => {
                        let idle = state.in_flight.load(Ordering::Acquire) == 0
                            && cfg.idle_timeout.is_some_and(|t| state.last_activity() + t <= Instant::now());
                        if idle {
                            tracing::debug!("closing idle APNs connection");
                            break;
                        }
                    }
                    _ = tokio::time::sleep_until(ping_at) => {
                        let quiet = state.in_flight.load(Ordering::Acquire) == 0
                            && state.last_activity() + cfg.ping_interval <= Instant::now();
                        if quiet && !ping(&mut conn, cfg.ping_timeout, cfg.metrics.as_deref()).await {
                            state.broken.store(true, Ordering::Release);
                            break;
                        }
                    }
                }
            }
            Some(false) => {
                // At the stream limit: wait for a stream to finish, or re-read SETTINGS soon.
                state.slot_waiting.store(true, Ordering::Release);
                tokio::select! {
                    _ = state.capacity_freed.notified() => {}
                    _ = sleep(Duration::from_millis(5)) => {}
                    _ = &mut conn.driver => {
                        state.slot_waiting.store(false, Ordering::Release);
                        break;
                    }
                }
                state.slot_waiting.store(false, Ordering::Release);
            }
        }
    }
    // No new leases here; let in-flight requests finish (their own timeouts bound this).
    state.broken.store(true, Ordering::Release);
    shared.conns.write().retain(|c| !Arc::ptr_eq(c, &live));
    // A connection that left a refused request to this one may have to take it back.
    shared.job_ready.notify_waiters();
    state.slot_waiting.store(true, Ordering::Release);
    while state.in_flight.load(Ordering::Acquire) > 0 && !conn.driver.is_finished() {
        tokio::select! {
            _ = state.capacity_freed.notified() => {}
            _ = sleep(Duration::from_millis(50)) => {}
        }
    }
    drop(live);
    drop(conn.send);
    drop(conn.ping);
    if !conn.driver.is_finished() {
        let _ = timeout(Duration::from_secs(1), &mut conn.driver).await;
        conn.driver.abort();
    }
    // Someone else may need to pick up queued work.
    shared.job_ready.notify_one();
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn ping(conn: &mut Conn, ping_timeout: Duration, metrics: Option<&dyn Metrics>) -> bool {
    let Some(pp) = conn.ping.as_mut() else {
        return true;
    };
    if let Some(m) = metrics {
        m.ping_sent();
    }
    let ok = matches!(
        timeout(ping_timeout, pp.ping(h2::Ping::opaque())).await,
        Ok(Ok(_))
    );
    if ok {
        conn.state.touch();
    } else {
        tracing::warn!("APNs PING failed or timed out: reconnecting");
    }
    ok
}

fn classify(e: h2::Error, state: &ConnState, stage: &str) -> Attempt {
    let refused = e.reason() == Some(h2::Reason::REFUSED_STREAM);
    if (e.is_go_away() && e.is_remote()) || refused {
        if e.is_go_away() {
            state.broken.store(true, Ordering::Release);
        }
        return Attempt::Unsent {
            error: Error::new(
                ErrorKind::RetriesExhausted,
                format!("the server refused the stream ({stage})"),
            )
            .with_source(Msg(e.to_string())),
            refused_by: Some(state.id),
        };
    }
    if e.is_reset() && e.is_remote() {
        // Reset by the server without REFUSED_STREAM: it may have processed the request.
        return Attempt::Failed(
            Error::new(
                ErrorKind::ConnectionLost,
                format!("the server reset the stream with the request in flight ({stage})"),
            )
            .with_source(Msg(e.to_string())),
        );
    }
    if e.is_io() || e.is_go_away() {
        state.broken.store(true, Ordering::Release);
        return Attempt::Failed(
            Error::new(
                ErrorKind::ConnectionLost,
                format!("the connection was lost with the request in flight ({stage})"),
            )
            .with_source(Msg(e.to_string())),
        );
    }
    Attempt::Failed(
        Error::new(ErrorKind::Protocol, format!("HTTP/2 error ({stage})"))
            .with_source(Msg(e.to_string())),
    )
}

async fn attempt(spec: &RequestSpec, lease: &Lease, cfg: &PoolConfig) -> Attempt {
    let state = &lease.conn.state;
    let send = lease.conn.send.clone();
    let token = match &cfg.token {
        Some(key) => match key.token_for(&state.token) {
            Ok(t) => Some(t),
            Err(e) => return Attempt::Failed(e),
        },
        None => None,
    };
    let uri = match spec.uri.get() {
        Some(u) => u.clone(),
        None => match http::Uri::builder()
            .scheme("https")
            .authority(cfg.authority.clone())
            .path_and_query(spec.path.as_str())
            .build()
        {
            Ok(u) => spec.uri.get_or_init(|| u).clone(),
            Err(e) => {
                return Attempt::Failed(
                    Error::new(ErrorKind::InvalidPush, "invalid request path")
                        .with_source(Msg(e.to_string())),
                );
            }
        },
    };
    let mut req = Request::new(());
    *req.method_mut() = spec.method.clone();
    *req.uri_mut() = uri;
    let headers = req.headers_mut();
    headers.reserve(spec.headers.len() + 1);
    for (k, v) in &spec.headers {
        headers.append(k.clone(), v.clone());
    }
    if let Some(t) = &token {
        headers.insert(http::header::AUTHORIZATION, t.bearer.clone());
    }
    let mut send = match send.ready().await {
        Ok(s) => s,
        Err(e) => return unsent(e, state),
    };
    let end = spec.body.is_empty();
    let (response, mut stream) = match send.send_request(req, end) {
        Ok(x) => x,
        Err(e) => return unsent(e, state),
    };
    if !end && let Err(e) = stream.send_data(spec.body.clone(), true) {
        return classify(e, state, "sending the body");
    }
    let response = match response.await {
        Ok(r) => r,
        Err(e) => return classify(e, state, "awaiting the response"),
    };
    let (parts, mut body) = response.into_parts();
    let mut buf = Vec::new();
    let limit = spec.answer.limit();
    while let Some(chunk) = body.data().await {
        match chunk {
            Ok(c) => {
                let _ = body.flow_control().release_capacity(c.len());
                if buf.len() + c.len() > limit {
                    if spec.answer == BodyUse::Result {
                        return Attempt::Failed(Error::new(
                            ErrorKind::Protocol,
                            format!("the response body is larger than {limit} bytes"),
                        ));
                    }
                    // Not APNs's JSON, and not worth reading on; but the status still says
                    // what became of the push. The stream is reset when `body` drops.
                    buf.clear();
                    break;
                }
                buf.extend_from_slice(&c);
            }
            Err(e) => return classify(e, state, "reading the response"),
        }
    }
    Attempt::Response {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: Bytes::from(buf),
        token,
        conn: ConnHandle(state.clone()),
    }
}

fn unsent(e: h2::Error, state: &ConnState) -> Attempt {
    state.broken.store(true, Ordering::Release);
    Attempt::Unsent {
        error: Error::new(
            ErrorKind::RetriesExhausted,
            "the connection cannot open streams",
        )
        .with_source(Msg(e.to_string())),
        refused_by: Some(state.id),
    }
}
