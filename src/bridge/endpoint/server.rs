//! `serve`: the endpoint over HTTP/1.1 on a listener, with a deadline per request, a cap on
//! connections, and a graceful shutdown.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::limit::retry_after_secs;
use super::{RegistrationEndpoint, Verifier};

/// Refusals (`503 overloaded`) being written at once; past this, the answer is written only if
/// the socket takes it without waiting.
const REFUSALS_IN_FLIGHT: usize = 64;
/// How long a refused connection is kept to read what the client sent (so closing does not
/// reset the connection before the client has read the 503).
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// The running server: a future to spawn (or await), from
/// [`RegistrationEndpoint::serve`]. It runs until [`ServeHandle::shutdown`] is called and the
/// shutdown is complete; dropping it (or aborting its task) stops it at once.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use herald::bridge::{DeviceRegistry, endpoint::RegistrationEndpoint};
/// use std::time::Duration;
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// let registry = DeviceRegistry::in_memory();
/// let endpoint = RegistrationEndpoint::builder(registry.clone(), |req: &http::request::Parts| {
///     let auth = req.headers.get("authorization")?.to_str().ok()?;
///     Some(auth.strip_prefix("Bearer user-")?.to_owned())
/// })
/// .topic("com.example.app")
/// .build();
/// let server = endpoint.serve(tokio::net::TcpListener::bind("127.0.0.1:0").await?);
/// let handle = server.handle();
/// tokio::spawn(server);
///
/// // What an app sends when it gets a device token.
/// let body = format!("newToken={}", "ab".repeat(32));
/// let mut app = tokio::net::TcpStream::connect(handle.local_addr().unwrap()).await?;
/// let request = format!(
///     "POST /devices HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer user-alice\r\n\
///      Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
///      Connection: close\r\n\r\n{body}",
///     body.len()
/// );
/// app.write_all(request.as_bytes()).await?;
/// let mut response = String::new();
/// app.read_to_string(&mut response).await?;
/// assert!(response.starts_with("HTTP/1.1 200"), "{response}");
/// assert_eq!(registry.devices("alice").unwrap().len(), 1);
/// handle.shutdown(Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
#[must_use = "a server does nothing unless spawned or awaited"]
pub struct Serve {
    future: Pin<Box<dyn Future<Output = ()> + Send>>,
    handle: ServeHandle,
}

impl fmt::Debug for Serve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Serve").finish_non_exhaustive()
    }
}

impl Serve {
    /// A handle to shut the server down gracefully.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # use herald::bridge::{DeviceRegistry, endpoint::RegistrationEndpoint};
    /// # let endpoint = RegistrationEndpoint::builder(DeviceRegistry::in_memory(), |_: &http::request::Parts| None).build();
    /// let server = endpoint.serve(tokio::net::TcpListener::bind("127.0.0.1:0").await?);
    /// let handle = server.handle();
    /// tokio::spawn(server);
    /// let report = handle.shutdown(std::time::Duration::from_secs(5)).await;
    /// assert_eq!(report.aborted, 0);
    /// # Ok(()) }
    /// ```
    pub fn handle(&self) -> ServeHandle {
        self.handle.clone()
    }
}

impl Future for Serve {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.future.as_mut().poll(cx)
    }
}

/// Shuts a [`Serve`] down: stop accepting, let requests in flight finish within a grace
/// period, cut off the rest, release the registry. Cheap to clone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// # use herald::bridge::{DeviceRegistry, endpoint::RegistrationEndpoint};
/// # let endpoint = RegistrationEndpoint::builder(DeviceRegistry::in_memory(), |_: &http::request::Parts| None).build();
/// use std::time::Duration;
/// let server = endpoint.serve(tokio::net::TcpListener::bind("127.0.0.1:0").await?);
/// let addr = server.handle().local_addr().unwrap();
/// let handle = server.handle();
/// tokio::spawn(server);
/// // Clones shut down the same server: hand one to your signal handler.
/// let on_sigterm = handle.clone();
/// let report = on_sigterm.shutdown(Duration::from_secs(5)).await;
/// assert!(handle.is_shut_down());
/// assert!(tokio::net::TcpStream::connect(addr).await.is_err()); // no longer listening
/// // A second call waits for the first shutdown and reports the same.
/// assert_eq!(handle.shutdown(Duration::from_secs(1)).await, report);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ServeHandle {
    local_addr: Option<SocketAddr>,
    trigger: Arc<watch::Sender<Option<Duration>>>,
    done: watch::Receiver<Option<ShutdownReport>>,
}

impl fmt::Debug for ServeHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeHandle")
            .field("local_addr", &self.local_addr)
            .field("done", &*self.done.borrow())
            .finish()
    }
}

/// How a shutdown went: connections that finished within the grace period, and those cut off
/// at its end.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// # use herald::bridge::{DeviceRegistry, endpoint::RegistrationEndpoint};
/// # let endpoint = RegistrationEndpoint::builder(DeviceRegistry::in_memory(), |_: &http::request::Parts| None).build();
/// use herald::bridge::endpoint::ShutdownReport;
/// use std::time::Duration;
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// let server = endpoint.serve(tokio::net::TcpListener::bind("127.0.0.1:0").await?);
/// let handle = server.handle();
/// tokio::spawn(server);
/// // A client that made one request (refused: no credentials) and keeps its connection open.
/// let mut client = tokio::net::TcpStream::connect(handle.local_addr().unwrap()).await?;
/// client.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").await?;
/// let mut status = [0; 12];
/// client.read_exact(&mut status).await?;
/// assert_eq!(&status, b"HTTP/1.1 401");
/// // Idle when the shutdown begins: closed at once, so it counts as finished.
/// let report: ShutdownReport = handle.shutdown(Duration::from_secs(5)).await;
/// assert_eq!((report.finished, report.aborted), (1, 0));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Connections that closed by themselves after the shutdown began (their request answered,
    /// or idle and closed at once).
    pub finished: usize,
    /// Connections still open at the end of the grace period, closed without an answer.
    pub aborted: usize,
}

impl ServeHandle {
    /// The address the server listens on.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # use herald::bridge::{DeviceRegistry, endpoint::RegistrationEndpoint};
    /// # let endpoint = RegistrationEndpoint::builder(DeviceRegistry::in_memory(), |_: &http::request::Parts| None).build();
    /// let server = endpoint.serve(tokio::net::TcpListener::bind("127.0.0.1:0").await?);
    /// assert!(server.handle().local_addr().is_some());
    /// # Ok(()) }
    /// ```
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Stops accepting connections (new ones are refused by the operating system), closes idle
    /// ones, lets requests in flight finish for up to `grace`, then closes what is left. Returns
    /// once the server has stopped and dropped everything it held, the registry included. A
    /// second call waits for the first shutdown (its `grace` is ignored). If the server future
    /// was dropped instead, returns at once with an empty report. The server must be running
    /// (spawned or awaited) for this to complete.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # use herald::bridge::{DeviceRegistry, endpoint::RegistrationEndpoint};
    /// # let endpoint = RegistrationEndpoint::builder(DeviceRegistry::in_memory(), |_: &http::request::Parts| None).build();
    /// let server = endpoint.serve(tokio::net::TcpListener::bind("127.0.0.1:0").await?);
    /// let handle = server.handle();
    /// let task = tokio::spawn(server);
    /// handle.shutdown(std::time::Duration::from_secs(10)).await;
    /// task.await.unwrap(); // the server future has completed
    /// # Ok(()) }
    /// ```
    pub async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        self.trigger.send_if_modified(|g| {
            if g.is_none() {
                *g = Some(grace);
                true
            } else {
                false
            }
        });
        let mut done = self.done.clone();
        match done.wait_for(Option::is_some).await {
            Ok(report) => report.unwrap_or_default(),
            Err(_) => ShutdownReport::default(),
        }
    }

    /// Whether the server has completed a shutdown.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// # use herald::bridge::{DeviceRegistry, endpoint::RegistrationEndpoint};
    /// # let endpoint = RegistrationEndpoint::builder(DeviceRegistry::in_memory(), |_: &http::request::Parts| None).build();
    /// let server = endpoint.serve(tokio::net::TcpListener::bind("127.0.0.1:0").await?);
    /// let handle = server.handle();
    /// tokio::spawn(server);
    /// assert!(!handle.is_shut_down());
    /// handle.shutdown(std::time::Duration::from_secs(5)).await;
    /// assert!(handle.is_shut_down());
    /// # Ok(()) }
    /// ```
    pub fn is_shut_down(&self) -> bool {
        self.done.borrow().is_some()
    }
}

impl<V: Verifier> RegistrationEndpoint<V> {
    /// Serves the endpoint over HTTP/1.1 on `listener`: spawn the returned future (or await
    /// it), and keep its [`handle`](Serve::handle) to shut it down gracefully. Each request
    /// must arrive within the [`request_timeout`](super::RegistrationEndpointBuilder::request_timeout);
    /// at most [`max_connections`](super::RegistrationEndpointBuilder::max_connections) are
    /// served at once, one more is answered `503` with `Retry-After` and closed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// use herald::bridge::{DeviceRegistry, endpoint::RegistrationEndpoint};
    /// use std::time::Duration;
    /// let endpoint = RegistrationEndpoint::builder(DeviceRegistry::in_memory(), |_: &http::request::Parts| None)
    ///     .topic("com.example.app")
    ///     .build();
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// println!("POST http://{}/devices", listener.local_addr()?);
    /// let server = endpoint.serve(listener);
    /// let handle = server.handle();
    /// tokio::spawn(server);
    /// // ... on SIGTERM:
    /// let report = handle.shutdown(Duration::from_secs(5)).await;
    /// println!("{} connections finished, {} cut off", report.finished, report.aborted);
    /// # Ok(()) }
    /// ```
    pub fn serve(self, listener: TcpListener) -> Serve {
        let (trigger, trigger_rx) = watch::channel(None::<Duration>);
        let trigger = Arc::new(trigger);
        let (done_tx, done) = watch::channel(None::<ShutdownReport>);
        let handle = ServeHandle {
            local_addr: listener.local_addr().ok(),
            trigger: trigger.clone(),
            done,
        };
        Serve {
            future: Box::pin(run(self, listener, trigger, trigger_rx, done_tx)),
            handle,
        }
    }
}

async fn run<V: Verifier>(
    endpoint: RegistrationEndpoint<V>,
    listener: TcpListener,
    // Kept so that `trigger_rx.changed()` never reports a closed channel while serving.
    _trigger: Arc<watch::Sender<Option<Duration>>>,
    mut trigger_rx: watch::Receiver<Option<Duration>>,
    done: watch::Sender<Option<ShutdownReport>>,
) {
    let inner = endpoint.inner.clone();
    let permits = Arc::new(Semaphore::new(inner.max_connections));
    let refusals = Arc::new(Semaphore::new(REFUSALS_IN_FLIGHT));
    let refusal = overloaded_response(inner.overload_retry_after);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut refusing = JoinSet::new();
    let grace = loop {
        tokio::select! {
            biased;
            changed = trigger_rx.changed() => {
                if changed.is_ok()
                    && let Some(grace) = *trigger_rx.borrow_and_update()
                {
                    break grace;
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            Some(_) = refusing.join_next(), if !refusing.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "registration endpoint: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                match permits.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let endpoint = endpoint.clone();
                        let stop = stop_rx.clone();
                        connections.spawn(async move {
                            let _permit = permit;
                            connection(endpoint, stream, peer, stop).await;
                        });
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "registration endpoint: connection limit reached, refusing");
                        match refusals.clone().try_acquire_owned() {
                            Ok(permit) => {
                                let refusal = refusal.clone();
                                refusing.spawn(async move {
                                    let _permit = permit;
                                    refuse(stream, &refusal).await;
                                });
                            }
                            Err(_) => {
                                let _ = stream.try_write(refusal.as_bytes());
                            }
                        }
                    }
                }
            }
        }
    };

    // Shutting down: no new connections; idle ones close, busy ones finish their request.
    drop(listener);
    let _ = stop_tx.send(true);
    refusing.abort_all();
    let deadline = Instant::now() + grace;
    let mut report = ShutdownReport::default();
    loop {
        match tokio::time::timeout_at(deadline, connections.join_next()).await {
            Ok(Some(_)) => report.finished += 1,
            Ok(None) => break,
            Err(_) => {
                report.aborted = connections.len();
                connections.abort_all();
                while connections.join_next().await.is_some() {}
                break;
            }
        }
    }
    while refusing.join_next().await.is_some() {}
    // Every connection task has completed and dropped its endpoint clone: drop ours, and with
    // them the registry, before telling anyone the shutdown is done.
    drop(inner);
    drop(endpoint);
    if report.aborted > 0 {
        tracing::warn!(
            aborted = report.aborted,
            "registration endpoint: connections cut off at the end of the grace period"
        );
    }
    let _ = done.send(Some(report));
}

/// One connection: HTTP/1.1 with keep-alive, each request within the deadline.
async fn connection<V: Verifier>(
    endpoint: RegistrationEndpoint<V>,
    stream: TcpStream,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
) {
    let timeout = endpoint.inner.request_timeout;
    // When the connection became ready for its current request: accepted, or the previous
    // response handed over. The request's headers and body must arrive by this + timeout.
    let ready_at = Arc::new(Mutex::new(Instant::now()));
    let service = hyper::service::service_fn(move |request| {
        let endpoint = endpoint.clone();
        let ready_at = ready_at.clone();
        async move {
            let deadline = *ready_at.lock() + timeout;
            let response = endpoint.respond(request, peer.ip(), deadline).await;
            *ready_at.lock() = Instant::now();
            Ok::<_, Infallible>(response)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(timeout)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = stop.wait_for(|stop| *stop) => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

fn overloaded_response(retry_after: Duration) -> Arc<str> {
    let body = serde_json::json!({
        "error": "overloaded",
        "message": "the server is at its connection limit; try again later",
    })
    .to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        retry_after_secs(retry_after),
        body.len()
    )
    .into()
}

/// Writes the 503, then reads (and discards) what the client sends for a moment before
/// closing, so the client reads the answer instead of a connection reset.
async fn refuse(mut stream: TcpStream, response: &str) {
    let _ = tokio::time::timeout(REFUSAL_LINGER, async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 1024];
        let mut total = 0usize;
        while total < 64 * 1024 {
            match stream.read(&mut sink).await? {
                0 => break,
                n => total += n,
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
}
