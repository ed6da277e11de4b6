//! The APNs client (feature `apns`) against servers that are not herald's mock: a scripted
//! HTTP/2 server built on the `h2` crate (to see every request exactly and answer anything,
//! including resets and dropped connections) and a raw frame-level HTTP/2 server (for what `h2`
//! cannot do: a GOAWAY below the streams it received, and counting open streams against the
//! advertised limit). Both run over rustls on loopback, each on its own thread and runtime.
//!
//! Written from `../shared/APNS.md`, issue 5 and the public docs of `herald::apns` only.
//! Timing: no wall-clock budgets. Token ages move with `TokenKey::advance_clock`; the only real
//! waits are timeouts that must fire (asserted from below only), short retry backoffs, and a
//! few generous guards that only turn a hang into a failure.
#![cfg(all(feature = "apns", feature = "mock"))]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use herald::apns::{
    ApnsClient, Endpoint, ErrorKind, Expiration, Failed, Payload, Priority, Push, PushOutcome,
    PushType, Reason, Rejected, RetryPolicy, TokenKey,
};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEY_ID: &str = "ABC123DEFG";
const TEAM: &str = "TEAM123456";
const BUNDLE: &str = "com.example.app";

fn dev(i: usize) -> String {
    format!("{:064x}", 0xbeef_0000_usize + i)
}

// ----------------------------------------------------------------------------------------------
// TLS and keys
// ----------------------------------------------------------------------------------------------

struct Tls {
    acceptor: tokio_rustls::TlsAcceptor,
    ca_pem: String,
}

fn tls() -> Tls {
    tls_with(None)
}

/// A server certificate for 127.0.0.1, offering h2 by ALPN; with `client_ca`, client
/// certificates issued by it are required.
fn tls_with(client_ca: Option<rustls_pki_types::CertificateDer<'static>>) -> Tls {
    tls_offering(client_ca, vec![b"h2".to_vec()])
}

/// `tls_with`, offering the protocols `alpn` (none: the client cannot negotiate h2).
fn tls_offering(
    client_ca: Option<rustls_pki_types::CertificateDer<'static>>,
    alpn: Vec<Vec<u8>>,
) -> Tls {
    use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    config.alpn_protocols = alpn;
    Tls {
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        ca_pem: cert.pem(),
    }
}

/// A non-blocking listener on a free loopback port, and that port.
fn loopback_listener() -> (std::net::TcpListener, u16) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

/// A fresh P-256 key: the herald `TokenKey`, its PKCS#8 DER and its public key.
fn signing_key() -> (TokenKey, Vec<u8>, Vec<u8>) {
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    let rng = ring::rand::SystemRandom::new();
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref(), &rng).unwrap();
    let key = TokenKey::from_pkcs8_der(doc.as_ref(), KEY_ID, TEAM).unwrap();
    (
        key,
        doc.as_ref().to_vec(),
        pair.public_key().as_ref().to_vec(),
    )
}

/// Runs a server future on its own thread and runtime, so that nothing the server does (or
/// logs) happens on the test's thread.
fn spawn_server<F>(make: impl FnOnce() -> F + Send + 'static)
where
    F: std::future::Future<Output = ()> + 'static,
{
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, make());
    });
}

fn client_for(url: &str, ca: &str, key: &TokenKey) -> herald::apns::ApnsClientBuilder {
    ApnsClient::builder()
        .endpoint(Endpoint::custom(url).unwrap().with_ca_pem(ca.to_owned()))
        .token_auth(key.clone())
        .retry(RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
        })
}

/// A fresh signing key and a client of `url` that uses it, with `client_for`'s settings.
fn keyed_client(url: &str, ca: &str) -> (TokenKey, ApnsClient) {
    keyed_client_with(url, ca, |b| b)
}

/// `keyed_client`, its builder changed by `tune` first.
fn keyed_client_with(
    url: &str,
    ca: &str,
    tune: impl FnOnce(herald::apns::ApnsClientBuilder) -> herald::apns::ApnsClientBuilder,
) -> (TokenKey, ApnsClient) {
    let (key, _, _) = signing_key();
    let client = tune(client_for(url, ca, &key)).build().unwrap();
    (key, client)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

// ----------------------------------------------------------------------------------------------
// A scripted server on the h2 crate
// ----------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Req {
    conn: usize,
    method: String,
    scheme: Option<String>,
    path: String,
    headers: http::HeaderMap,
    body: Bytes,
    at: Instant,
    /// The test's simulated clock offset (seconds) when the request arrived.
    offset: u64,
    /// The client certificate presented on the connection (DER), if any.
    client_cert: Option<Vec<u8>>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
    fn apns_id(&self) -> &str {
        self.header("apns-id").unwrap_or("")
    }
}

enum Act {
    Respond(u16, Vec<(&'static str, String)>, Bytes),
    Reset(h2::Reason),
    Hang,
    CloseConnection,
    /// Start h2's graceful shutdown of the connection, then answer 200 after the delay.
    Graceful(Duration),
    /// Wait, then act.
    Delay(Duration, Box<Act>),
    /// Never answer; record the RST_STREAM reason the client sends.
    HangUntilReset(Arc<Mutex<Option<h2::Reason>>>),
}

fn ok() -> Act {
    Act::Respond(200, vec![], Bytes::new())
}

fn ok_echo(r: &Req) -> Act {
    Act::Respond(200, vec![("apns-id", r.apns_id().to_owned())], Bytes::new())
}

fn reason(status: u16, reason: &str) -> Act {
    Act::Respond(
        status,
        vec![("content-type", "application/json".into())],
        Bytes::from(format!(r#"{{"reason":"{reason}"}}"#)),
    )
}

/// A handler that answers the first `n` requests with `first()` and the rest 200 (`ok_echo`).
fn first_then_ok(
    n: usize,
    first: impl Fn() -> Act + Send + Sync + 'static,
) -> impl Fn(&Req, usize) -> Act + Send + Sync + 'static {
    move |r, i| if i < n { first() } else { ok_echo(r) }
}

type Handler = Arc<dyn Fn(&Req, usize) -> Act + Send + Sync>;

struct H2Server {
    url: String,
    ca: String,
    log: Arc<Mutex<Vec<Req>>>,
    conns: Arc<AtomicUsize>,
    offset: Arc<AtomicU64>,
}

impl H2Server {
    fn requests(&self) -> Vec<Req> {
        self.log.lock().clone()
    }
    fn count(&self) -> usize {
        self.log.lock().len()
    }
    fn attempts_of(&self, apns_id: &str) -> Vec<Req> {
        self.requests()
            .into_iter()
            .filter(|r| r.apns_id() == apns_id)
            .collect()
    }
}

fn h2_server(
    max_streams: Option<u32>,
    handler: impl Fn(&Req, usize) -> Act + Send + Sync + 'static,
) -> H2Server {
    h2_server_opts(max_streams, None, false, handler)
}

/// A one-stream server that never answers its first request and answers the rest 200; the slot
/// it returns gets the RST_STREAM reason the client sends for that first request.
fn hang_first_server() -> (H2Server, Arc<Mutex<Option<h2::Reason>>>) {
    let slot: Arc<Mutex<Option<h2::Reason>>> = Arc::default();
    let s2 = slot.clone();
    let server = h2_server(
        Some(1),
        first_then_ok(1, move || Act::HangUntilReset(s2.clone())),
    );
    (server, slot)
}

fn h2_server_window(window: u32) -> H2Server {
    h2_server_opts(None, Some(window), false, |r, _| ok_echo(r))
}

fn h2_server_opts(
    max_streams: Option<u32>,
    window: Option<u32>,
    // Answer as soon as the request's headers are in, without reading its body.
    early: bool,
    handler: impl Fn(&Req, usize) -> Act + Send + Sync + 'static,
) -> H2Server {
    h2_server_tls(tls(), max_streams, window, early, handler)
}

fn h2_server_tls(
    tls: Tls,
    max_streams: Option<u32>,
    window: Option<u32>,
    early: bool,
    handler: impl Fn(&Req, usize) -> Act + Send + Sync + 'static,
) -> H2Server {
    let handler: Handler = Arc::new(handler);
    let Tls { acceptor, ca_pem } = tls;
    let (std_listener, port) = loopback_listener();
    let log = Arc::new(Mutex::new(Vec::new()));
    let conns = Arc::new(AtomicUsize::new(0));
    let offset = Arc::new(AtomicU64::new(0));
    let (log2, conns2, offset2) = (log.clone(), conns.clone(), offset.clone());
    spawn_server(move || async move {
        let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
        let nth = Arc::new(AtomicUsize::new(0));
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let conn_index = conns2.fetch_add(1, Ordering::SeqCst);
            let (acceptor, handler, log, offset, nth) = (
                acceptor.clone(),
                handler.clone(),
                log2.clone(),
                offset2.clone(),
                nth.clone(),
            );
            tokio::task::spawn_local(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let client_cert: Option<Vec<u8>> = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| c.to_vec());
                let mut builder = h2::server::Builder::new();
                if let Some(m) = max_streams {
                    builder.max_concurrent_streams(m);
                }
                if let Some(w) = window {
                    builder.initial_window_size(w);
                    builder.initial_connection_window_size(w);
                }
                let Ok(mut conn) = builder.handshake::<_, Bytes>(tls).await else {
                    return;
                };
                let close = Arc::new(tokio::sync::Notify::new());
                let graceful = Arc::new(tokio::sync::Notify::new());
                loop {
                    let next = tokio::select! {
                        n = conn.accept() => n,
                        _ = close.notified() => break,
                        _ = graceful.notified() => {
                            conn.graceful_shutdown();
                            continue;
                        }
                    };
                    let Some(Ok((request, mut respond))) = next else {
                        break;
                    };
                    let client_cert = client_cert.clone();
                    let (handler, log, offset, nth, close, graceful) = (
                        handler.clone(),
                        log.clone(),
                        offset.clone(),
                        nth.clone(),
                        close.clone(),
                        graceful.clone(),
                    );
                    tokio::task::spawn_local(async move {
                        let (parts, mut body) = request.into_parts();
                        let mut data = Vec::new();
                        while let Some(chunk) = if early { None } else { body.data().await } {
                            let Ok(chunk) = chunk else { return };
                            let _ = body.flow_control().release_capacity(chunk.len());
                            data.extend_from_slice(&chunk);
                        }
                        let req = Req {
                            conn: conn_index,
                            method: parts.method.to_string(),
                            scheme: parts.uri.scheme_str().map(str::to_owned),
                            path: parts.uri.path().to_owned(),
                            headers: parts.headers,
                            body: Bytes::from(data),
                            at: Instant::now(),
                            offset: offset.load(Ordering::SeqCst),
                            client_cert,
                        };
                        let i = nth.fetch_add(1, Ordering::SeqCst);
                        log.lock().push(req.clone());
                        let mut act = handler(&req, i);
                        if let Act::Delay(d, inner) = act {
                            tokio::time::sleep(d).await;
                            act = *inner;
                        }
                        if let Act::Graceful(delay) = act {
                            graceful.notify_one();
                            tokio::time::sleep(delay).await;
                            act = ok_echo(&req);
                        }
                        match act {
                            Act::Respond(status, headers, body) => {
                                let mut response = http::Response::builder().status(status);
                                for (n, v) in headers {
                                    response = response.header(n, v);
                                }
                                let response = response.body(()).unwrap();
                                if let Ok(mut stream) =
                                    respond.send_response(response, body.is_empty())
                                    && !body.is_empty()
                                {
                                    // Large bodies: wait for window capacity as a real server would.
                                    let mut rest = body;
                                    while !rest.is_empty() {
                                        stream.reserve_capacity(rest.len().min(1 << 16));
                                        let cap = match std::future::poll_fn(|cx| {
                                            stream.poll_capacity(cx)
                                        })
                                        .await
                                        {
                                            Some(Ok(c)) => c,
                                            _ => return,
                                        };
                                        let chunk = rest.split_to(cap.min(rest.len()));
                                        let last = rest.is_empty();
                                        if stream.send_data(chunk, last).is_err() {
                                            return;
                                        }
                                    }
                                }
                            }
                            Act::Reset(r) => respond.send_reset(r),
                            Act::Hang => {
                                std::future::pending::<()>().await;
                            }
                            Act::CloseConnection => {
                                // Keep the stream's handle: dropped now, it would send
                                // RST_STREAM(CANCEL) before the connection closes whenever this
                                // task runs first, and the client would see a reset stream on a
                                // live connection, not a closed connection (a flaky test under
                                // load: the next push then went out on the dying connection).
                                close.notify_one();
                                let _respond = respond;
                                std::future::pending::<()>().await;
                            }
                            Act::Graceful(_) | Act::Delay(..) => unreachable!(),
                            Act::HangUntilReset(slot) => {
                                let r = std::future::poll_fn(|cx| respond.poll_reset(cx)).await;
                                *slot.lock() = r.ok();
                            }
                        }
                    });
                }
                drop(conn);
            });
        }
    });
    H2Server {
        url: format!("https://127.0.0.1:{port}"),
        ca: ca_pem,
        log,
        conns,
        offset,
    }
}

/// The failure of an outcome that must be `Failed`.
fn expect_failed(outcome: PushOutcome) -> Failed {
    let PushOutcome::Failed(f) = outcome else {
        panic!("not failed")
    };
    f
}

/// The rejection of an outcome that must be `Rejected`.
fn expect_rejected(outcome: PushOutcome) -> Rejected {
    let PushOutcome::Rejected(r) = outcome else {
        panic!("not rejected")
    };
    r
}

/// Asserts that every outcome is `Accepted`.
fn assert_all_accepted(outcomes: &[PushOutcome]) {
    assert!(
        outcomes.iter().all(PushOutcome::is_accepted),
        "{outcomes:?}"
    );
}

fn alert(token: &str) -> Push {
    Push::builder(token, BUNDLE)
        .payload(&Payload::alert("hello"))
        .unwrap()
        .build()
        .unwrap()
}

/// Sends `alert(&dev(i))` for every `i` in `range` at once; the outcomes in that order.
async fn send_alerts(client: &ApnsClient, range: std::ops::Range<usize>) -> Vec<PushOutcome> {
    futures::future::join_all(range.map(|i| client.send(alert(&dev(i))))).await
}

// ----------------------------------------------------------------------------------------------
// A raw HTTP/2 server (frames written by hand)
// ----------------------------------------------------------------------------------------------

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const WINDOW_UPDATE: u8 = 8;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn settings_max_streams(n: u32) -> Vec<u8> {
    let mut p = vec![0x00, 0x03];
    p.extend_from_slice(&n.to_be_bytes());
    frame(SETTINGS, 0, 0, &p)
}

/// `:status 200` (static index 8) and nothing else: no dynamic table touched.
fn response_200(stream: u32) -> Vec<u8> {
    frame(HEADERS, END_HEADERS | END_STREAM, stream, &[0x88])
}

async fn read_frame<R: tokio::io::AsyncRead + Unpin>(
    r: &mut R,
) -> std::io::Result<(u8, u8, u32, Vec<u8>)> {
    let mut head = [0u8; 9];
    r.read_exact(&mut head).await?;
    let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    Ok((head[3], head[4], stream, payload))
}

#[derive(Clone, Copy)]
enum RawMode {
    /// Answer every request 200 after `hold`.
    Answer { hold: Duration },
    /// Answer the first request 200 and close the connection (TLS close_notify + FIN) at once.
    AnswerThenClose,
    /// Answer the first `skip` requests at once; then wait for `wait_for` more complete
    /// requests, send GOAWAY with `last_stream_id` = the stream of the `keep`-th of them, answer
    /// the streams up to it 200 only if `answer_kept`, then close.
    GoAway {
        skip: usize,
        wait_for: usize,
        keep: usize,
        answer_kept: bool,
        close: bool,
    },
    /// Answer after `hold`; after `after` answers lower the limit to `to` (SETTINGS), and
    /// raise it again to `.1` after `.0` if `raise` is set.
    Lower {
        hold: Duration,
        after: usize,
        to: u32,
        raise: Option<(Duration, u32)>,
    },
}

#[derive(Default)]
struct RawLog {
    /// (connection, stream id, body) of every complete request, in arrival order.
    requests: Vec<(usize, u32, Vec<u8>)>,
    /// Streams opened while the limit in force was already reached.
    violations: Vec<String>,
    max_open: usize,
    /// Streams opened after the lowered limit was acknowledged.
    opened_after_lower: usize,
    /// Markers of the pushes at or below / above the GOAWAY's last_stream_id.
    kept: Vec<usize>,
    above: Vec<usize>,
    /// The client acknowledged the SETTINGS that changed the limit.
    lower_acked: bool,
    /// (connection, stream, HPACK block) of every request's HEADERS frame.
    header_blocks: Vec<(usize, u32, Vec<u8>)>,
    /// Set by a test: `Answer` and `Lower` hold every answer (after their `hold`) until this
    /// many streams have been open at once (`max_open`), or a 30 s hang guard expires.
    answer_when_open: Option<usize>,
}

/// Waits (polling, at most 30 s) until `log.max_open` reached `log.answer_when_open`, if set.
async fn wait_for_open_streams(log: &Mutex<RawLog>) {
    for _ in 0..3000 {
        let waiting = {
            let l = log.lock();
            matches!(l.answer_when_open, Some(n) if l.max_open < n)
        };
        if !waiting {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits (polling, at most 30 s) until the client acknowledged the limit change.
async fn wait_for_settings_ack(server: &RawServer) {
    for _ in 0..3000 {
        if server.log.lock().lower_acked {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the client never acknowledged the SETTINGS that changed the stream limit");
}

struct RawServer {
    url: String,
    ca: String,
    log: Arc<Mutex<RawLog>>,
}

impl RawServer {
    /// The log, asserted free of streams opened beyond the limit or after a GOAWAY.
    fn log_without_violations(&self) -> parking_lot::MutexGuard<'_, RawLog> {
        let log = self.log.lock();
        assert!(log.violations.is_empty(), "{:?}", log.violations);
        log
    }
}

impl RawLog {
    /// The markers (`marked`) of the requests on connections after the first, in arrival order.
    fn later_markers(&self) -> Vec<usize> {
        self.requests
            .iter()
            .filter(|r| r.0 > 0)
            .map(|r| marker_of(&r.2))
            .collect()
    }
}

/// A server (`RawMode::Lower` on every connection) whose limit starts at `initial_limit` and
/// becomes `to` after `after` answers, each held `hold` (then `raise`); and a client whose first
/// push (`marked(0)`) it accepted, so that the client learnt the initial limit.
async fn limit_changing_server(
    initial_limit: u32,
    hold: Duration,
    after: usize,
    to: u32,
    raise: Option<(Duration, u32)>,
) -> (RawServer, ApnsClient) {
    let mode = RawMode::Lower {
        hold,
        after,
        to,
        raise,
    };
    let server = raw_server(initial_limit, vec![mode]);
    let (_, client) = keyed_client(&server.url, &server.ca);
    assert!(client.send(marked(0)).await.is_accepted());
    (server, client)
}

/// `modes[i]` serves the i-th connection; later connections use the last mode.
fn raw_server(initial_limit: u32, modes: Vec<RawMode>) -> RawServer {
    let Tls { acceptor, ca_pem } = tls();
    let (std_listener, port) = loopback_listener();
    let log = Arc::new(Mutex::new(RawLog::default()));
    let log2 = log.clone();
    spawn_server(move || async move {
        let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
        let mut index = 0usize;
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let mode = modes[index.min(modes.len() - 1)];
            let conn = index;
            index += 1;
            let (acceptor, log) = (acceptor.clone(), log2.clone());
            tokio::task::spawn_local(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = raw_connection(tls, conn, initial_limit, mode, log).await;
            });
        }
    });
    RawServer {
        url: format!("https://127.0.0.1:{port}"),
        ca: ca_pem,
        log,
    }
}

struct RawState {
    open: HashSet<u32>,
    limit: usize,
    answered: usize,
    lowered_acked: bool,
}

async fn raw_connection(
    tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    conn: usize,
    initial_limit: u32,
    mode: RawMode,
    log: Arc<Mutex<RawLog>>,
) -> std::io::Result<()> {
    let (mut rd, wr) = tokio::io::split(tls);
    let wr = Arc::new(tokio::sync::Mutex::new(wr));
    let mut preface = [0u8; 24];
    rd.read_exact(&mut preface).await?;
    assert_eq!(&preface, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    wr.lock()
        .await
        .write_all(&settings_max_streams(initial_limit))
        .await?;
    // Until the client acknowledges our SETTINGS it cannot know the limit: herald's documented
    // assumption (1 stream) is what it must follow meanwhile.
    let state = Arc::new(Mutex::new(RawState {
        open: HashSet::new(),
        limit: 1,
        answered: 0,
        lowered_acked: false,
    }));
    let mut settings_acks = 0usize;
    let mut lowered_pending = false;
    let mut bodies: HashMap<u32, Vec<u8>> = HashMap::new();
    let mut complete: Vec<u32> = Vec::new();
    let mut goaway_last: Option<u32> = None;

    loop {
        let (kind, flags, stream, payload) = read_frame(&mut rd).await?;
        let mut finished = None;
        match kind {
            HEADERS => {
                {
                    let mut st = state.lock();
                    if !st.open.contains(&stream) {
                        let mut l = log.lock();
                        if let Some(last) = goaway_last
                            && stream > last
                        {
                            l.violations.push(format!(
                                "conn {conn}: stream {stream} opened after GOAWAY({last})"
                            ));
                        }
                        if st.open.len() >= st.limit {
                            l.violations.push(format!(
                                "conn {conn}: stream {stream} opened with {} open, limit {}",
                                st.open.len(),
                                st.limit
                            ));
                        }
                        if st.lowered_acked {
                            l.opened_after_lower += 1;
                        }
                        st.open.insert(stream);
                        l.max_open = l.max_open.max(st.open.len());
                    }
                }
                let mut block = &payload[..];
                if flags & PADDED != 0 {
                    let pad = usize::from(block[0]);
                    block = &block[1..block.len() - pad];
                }
                if flags & 0x20 != 0 {
                    block = &block[5..];
                }
                log.lock()
                    .header_blocks
                    .push((conn, stream, block.to_vec()));
                bodies.entry(stream).or_default();
                if flags & END_STREAM != 0 {
                    finished = Some(stream);
                }
            }
            DATA => {
                let data = if flags & PADDED != 0 {
                    let pad = usize::from(payload[0]);
                    payload[1..payload.len() - pad].to_vec()
                } else {
                    payload.clone()
                };
                bodies.entry(stream).or_default().extend_from_slice(&data);
                if !payload.is_empty() {
                    let inc = (payload.len() as u32).to_be_bytes();
                    wr.lock()
                        .await
                        .write_all(&frame(WINDOW_UPDATE, 0, 0, &inc))
                        .await?;
                }
                if flags & END_STREAM != 0 {
                    finished = Some(stream);
                }
            }
            SETTINGS => {
                if flags & ACK == 0 {
                    wr.lock()
                        .await
                        .write_all(&frame(SETTINGS, ACK, 0, &[]))
                        .await?;
                } else {
                    settings_acks += 1;
                    if settings_acks == 1 {
                        state.lock().limit = initial_limit as usize;
                    }
                    if lowered_pending && settings_acks >= 2 {
                        if let RawMode::Lower { to, .. } = mode {
                            let mut st = state.lock();
                            st.limit = to as usize;
                            st.lowered_acked = true;
                            log.lock().lower_acked = true;
                        }
                        lowered_pending = false;
                    }
                }
            }
            PING if flags & ACK == 0 => {
                wr.lock()
                    .await
                    .write_all(&frame(PING, ACK, 0, &payload))
                    .await?;
            }
            RST_STREAM => {
                state.lock().open.remove(&stream);
            }
            GOAWAY => return Ok(()),
            _ => {}
        }
        let Some(stream) = finished else { continue };
        let body = bodies.remove(&stream).unwrap_or_default();
        log.lock().requests.push((conn, stream, body));
        complete.push(stream);
        match mode {
            RawMode::AnswerThenClose => {
                let mut w = wr.lock().await;
                w.write_all(&response_200(stream)).await?;
                w.shutdown().await?;
                return Ok(());
            }
            RawMode::Answer { hold } | RawMode::Lower { hold, .. } => {
                let (wr, state, log) = (wr.clone(), state.clone(), log.clone());
                tokio::task::spawn_local(async move {
                    tokio::time::sleep(hold).await;
                    wait_for_open_streams(&log).await;
                    let lower = {
                        let mut st = state.lock();
                        st.open.remove(&stream);
                        st.answered += 1;
                        match mode {
                            RawMode::Lower { after, to, .. } if st.answered == after => Some(to),
                            _ => None,
                        }
                    };
                    let mut w = wr.lock().await;
                    let _ = w.write_all(&response_200(stream)).await;
                    if let Some(to) = lower {
                        // A raise may be used as soon as it is read; a drop only once acknowledged.
                        {
                            let mut st = state.lock();
                            st.limit = st.limit.max(to as usize);
                        }
                        let _ = w.write_all(&settings_max_streams(to)).await;
                    }
                    let _ = w.flush().await;
                    drop(w);
                    if let (
                        Some(_),
                        RawMode::Lower {
                            raise: Some((after, n)),
                            ..
                        },
                    ) = (lower, mode)
                    {
                        tokio::time::sleep(after).await;
                        let mut w = wr.lock().await;
                        state.lock().limit = n as usize;
                        let _ = w.write_all(&settings_max_streams(n)).await;
                        let _ = w.flush().await;
                    }
                    drop(log);
                });
                if let RawMode::Lower { after, .. } = mode {
                    // Remember that a lowering SETTINGS is (or will be) in flight: its ACK
                    // is the client's second SETTINGS ACK.
                    if complete.len() == after {
                        lowered_pending = true;
                    }
                }
            }
            RawMode::GoAway {
                skip,
                wait_for,
                keep,
                answer_kept,
                close,
            } => {
                if goaway_last.is_some() {
                    continue;
                }
                if complete.len() <= skip {
                    state.lock().open.remove(&stream);
                    wr.lock().await.write_all(&response_200(stream)).await?;
                    continue;
                }
                if complete.len() < skip + wait_for {
                    continue;
                }

                let waiting = &complete[skip..];
                let last = if keep == 0 { 0 } else { waiting[keep - 1] };
                goaway_last = Some(last);
                {
                    let mut l = log.lock();
                    let mine: Vec<(u32, usize)> = l
                        .requests
                        .iter()
                        .filter(|r| r.0 == conn && waiting.contains(&r.1))
                        .map(|r| (r.1, marker_of(&r.2)))
                        .collect();
                    l.kept = mine.iter().filter(|x| x.0 <= last).map(|x| x.1).collect();
                    l.above = mine.iter().filter(|x| x.0 > last).map(|x| x.1).collect();
                }
                let mut p = last.to_be_bytes().to_vec();
                p.extend_from_slice(&0u32.to_be_bytes());
                p.extend_from_slice(br#"{"reason":"Shutdown"}"#);
                let mut w = wr.lock().await;
                w.write_all(&frame(GOAWAY, 0, 0, &p)).await?;
                if answer_kept {
                    for s in waiting.iter().filter(|s| **s <= last) {
                        w.write_all(&response_200(*s)).await?;
                    }
                }
                w.flush().await?;
                drop(w);
                if !close {
                    continue;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                wr.lock().await.shutdown().await?;
                return Ok(());
            }
        }
    }
}

// ----------------------------------------------------------------------------------------------
// Requests on the wire
// ----------------------------------------------------------------------------------------------

/// Every push type goes out as POST /3/device/<token> with exactly the headers APNS.md §2
/// lists, the topic suffix of its table, its priority, and the body byte for byte.
#[tokio::test]
async fn each_push_type_goes_out_with_apples_headers_and_its_body() {
    let server = h2_server(None, |r, _| ok_echo(r));
    let (_, client) = keyed_client(&server.url, &server.ca);
    let at = UNIX_EPOCH + Duration::from_secs(1_900_000_000);
    let alert = Payload::alert("hi");
    let la = br#"{"aps":{"timestamp":1700000000,"event":"update","content-state":{"n":1}}}"#;
    let changed = br#"{"aps":{"content-changed":true}}"#;
    // (push type, topic APNS.md expects, priority expected, body)
    let cases: Vec<(PushType, String, &str, Vec<u8>)> = vec![
        (
            PushType::Alert,
            BUNDLE.into(),
            "10",
            alert.to_json().unwrap(),
        ),
        (
            PushType::Background,
            BUNDLE.into(),
            "5",
            Payload::background().to_json().unwrap(),
        ),
        (
            PushType::Voip,
            format!("{BUNDLE}.voip"),
            "10",
            alert.to_json().unwrap(),
        ),
        (
            PushType::Complication,
            format!("{BUNDLE}.complication"),
            "10",
            alert.to_json().unwrap(),
        ),
        (
            PushType::FileProvider,
            format!("{BUNDLE}.pushkit.fileprovider"),
            "10",
            br#"{"aps":{}}"#.to_vec(),
        ),
        (
            PushType::Location,
            format!("{BUNDLE}.location-query"),
            "10",
            br#"{"aps":{}}"#.to_vec(),
        ),
        (
            PushType::Mdm,
            BUNDLE.into(),
            "10",
            br#"{"mdm":"00000000-1111-2222-3333-444444444444"}"#.to_vec(),
        ),
        (
            PushType::LiveActivity,
            format!("{BUNDLE}.push-type.liveactivity"),
            "10",
            la.to_vec(),
        ),
        (
            PushType::PushToTalk,
            format!("{BUNDLE}.voip-ptt"),
            "10",
            br#"{"aps":{}}"#.to_vec(),
        ),
        (
            PushType::Widgets,
            format!("{BUNDLE}.push-type.widgets"),
            "10",
            changed.to_vec(),
        ),
        (
            PushType::Controls,
            format!("{BUNDLE}.push-type.controls"),
            "10",
            changed.to_vec(),
        ),
    ];
    for (i, (push_type, topic, priority, body)) in cases.into_iter().enumerate() {
        let token = format!("{}{:02}", "AB".repeat(31), i); // upper case: sent lower case
        let apns_id = format!("123e4567-e89b-12d3-a456-4266141740{i:02}");
        let mut b = Push::builder(&token, BUNDLE)
            .push_type(push_type)
            .raw_payload(body.clone())
            .apns_id(apns_id.to_uppercase())
            .collapse_id(format!("c{i}"));
        b = if push_type == PushType::PushToTalk {
            b.expiration(Expiration::Immediately)
        } else {
            b.expiration(Expiration::At(at))
        };
        let push = b
            .build()
            .unwrap_or_else(|e| panic!("{push_type:?} does not build: {e}"));
        let outcome = client.send(push).await;
        assert!(outcome.is_accepted(), "{push_type:?}: {outcome:?}");
        let reqs = server.attempts_of(&apns_id);
        assert_eq!(
            reqs.len(),
            1,
            "{push_type:?}: one request with the lowercase apns-id"
        );
        let r = &reqs[0];
        assert_eq!(r.method, "POST");
        assert_eq!(r.scheme.as_deref(), Some("https"));
        assert_eq!(r.path, format!("/3/device/{}", token.to_lowercase()));
        assert_eq!(
            r.header("apns-topic"),
            Some(topic.as_str()),
            "{push_type:?}"
        );
        assert_eq!(r.header("apns-push-type"), Some(push_type.as_str()));
        assert_eq!(r.header("apns-priority"), Some(priority), "{push_type:?}");
        let exp = if push_type == PushType::PushToTalk {
            "0"
        } else {
            "1900000000"
        };
        assert_eq!(r.header("apns-expiration"), Some(exp));
        assert_eq!(r.header("apns-collapse-id"), Some(format!("c{i}").as_str()));
        assert_eq!(
            r.body.as_ref(),
            body.as_slice(),
            "{push_type:?}: body sent as built"
        );
        if let Some(cl) = r.header("content-length") {
            assert_eq!(cl, body.len().to_string());
        }
        let auth = r
            .header("authorization")
            .expect("authorization under token auth");
        assert!(auth.starts_with("bearer "), "{auth:.7}");
        for name in [
            "apns-id",
            "apns-topic",
            "apns-push-type",
            "apns-priority",
            "authorization",
        ] {
            assert_eq!(
                r.headers.get_all(name).iter().count(),
                1,
                "{name} repeated (DuplicateHeaders)"
            );
        }
    }
}

/// Unset optional headers are absent (APNS.md §2: an absent apns-expiration means Apple's
/// storage policy, `0` means one attempt); a lower priority goes out as 5 or 1; the generated
/// apns-id is a canonical lowercase UUID and equals `Push::apns_id`.
#[tokio::test]
async fn unset_headers_are_absent_and_the_generated_apns_id_is_canonical() {
    let server = h2_server(None, |r, _| ok_echo(r));
    let (_, client) = keyed_client(&server.url, &server.ca);
    for (p, want) in [(Priority::PowerAware, "5"), (Priority::Low, "1")] {
        let push = Push::builder(dev(1), BUNDLE).priority(p).build().unwrap();
        let id = push.apns_id().to_owned();
        assert!(client.send(push).await.is_accepted());
        let r = &server.attempts_of(&id)[0];
        assert_eq!(r.header("apns-priority"), Some(want));
        assert!(
            r.header("apns-expiration").is_none(),
            "expiration sent though unset"
        );
        assert!(
            r.header("apns-collapse-id").is_none(),
            "collapse id sent though unset"
        );
        let ok = id.len() == 36
            && id.chars().enumerate().all(|(i, c)| {
                if [8, 13, 18, 23].contains(&i) {
                    c == '-'
                } else {
                    c.is_ascii_digit() || ('a'..='f').contains(&c)
                }
            });
        assert!(ok, "apns-id {id:?} is not a canonical lowercase UUID");
    }
}

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap_or_else(|e| panic!("not base64url without padding: {s:?}: {e}"))
}

/// The JWT is strict JWS (APNS.md §3): header {"alg":"ES256","kid":...}, claims {"iss","iat"},
/// base64url without padding, a raw 64-byte r||s signature that verifies with the key's public
/// half, `iat` now.
#[tokio::test]
async fn the_jwt_is_strict_es256_jws_that_verifies_with_the_public_key() {
    let server = h2_server(None, |r, _| ok_echo(r));
    let (key, _, public) = signing_key();
    let client = client_for(&server.url, &server.ca, &key).build().unwrap();
    let before = unix_now();
    assert!(client.send(alert(&dev(1))).await.is_accepted());
    let after = unix_now();
    let r = &server.requests()[0];
    let jwt = r
        .header("authorization")
        .unwrap()
        .strip_prefix("bearer ")
        .unwrap()
        .to_owned();
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    assert!(!jwt.contains('='), "padding in {jwt}");
    let header: serde_json::Value = serde_json::from_slice(&b64(parts[0])).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&b64(parts[1])).unwrap();
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["kid"], KEY_ID);
    assert_eq!(claims["iss"], TEAM);
    let iat = claims["iat"].as_i64().expect("iat is an integer");
    assert!(
        iat >= before - 1 && iat <= after + 1,
        "iat {iat} not now ({before}..{after})"
    );
    let sig = b64(parts[2]);
    assert_eq!(sig.len(), 64, "raw r||s, not DER");
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, &public)
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
        .expect("the signature verifies with the .p8 key's public half");
}

/// Three simulated hours over two connections (the key's injectable clock moved in 5-minute
/// steps): on each connection a token is kept at least 20 minutes, is never older than an hour
/// when sent, and the key mints about one token per 50 minutes, shared by the connections
/// (APNS.md §3, the `TokenKey` docs).
#[tokio::test]
async fn over_three_simulated_hours_tokens_change_at_most_every_20_minutes_and_never_age_past_an_hour()
 {
    let server = h2_server(Some(2), |r, _| ok_echo(r));
    let (key, client) = keyed_client_with(&server.url, &server.ca, |b| b.connections(2));
    simulate_rounds(&server, &client, &key, 37, 5 * 60, |_| 6).await;
    let per_conn = check_token_discipline(&server.requests());
    assert_eq!(per_conn.len(), 2, "both connections carried pushes");
    let distinct = server_tokens(&server);
    let minted = key.tokens_minted();
    assert_eq!(
        distinct.len() as u64,
        minted,
        "every minted token was used, none per connection"
    );
    assert!(
        (3..=5).contains(&minted),
        "{minted} tokens in 3 hours (about one per 50 min expected)"
    );
}

/// Simulated time: `rounds` rounds of `pushes(round)` alerts sent at once, all accepted, each
/// round followed by a step of `step` seconds on the key's clock and the server's offset.
async fn simulate_rounds(
    server: &H2Server,
    client: &ApnsClient,
    key: &TokenKey,
    rounds: usize,
    step: u64,
    pushes: impl Fn(usize) -> usize,
) {
    let mut offset = 0u64;
    for n in 0..rounds {
        let outcomes = send_alerts(client, 0..pushes(n)).await;
        assert_all_accepted(&outcomes);
        offset += step;
        key.advance_clock(Duration::from_secs(step));
        server.offset.store(offset, Ordering::SeqCst);
    }
}

/// Checks APNS.md §3 per connection: a token is kept at least 20 minutes (of the key's clock)
/// and is never older than an hour when sent. Returns the requests' tokens per connection.
fn check_token_discipline(reqs: &[Req]) -> BTreeMap<usize, Vec<(u64, String, i64)>> {
    let mut per_conn: BTreeMap<usize, Vec<(u64, String, i64)>> = BTreeMap::new();
    for r in reqs {
        let jwt = r.header("authorization").unwrap().to_owned();
        let claims: serde_json::Value =
            serde_json::from_slice(&b64(jwt.split('.').nth(1).unwrap())).unwrap();
        let iat = claims["iat"].as_i64().unwrap();
        // The client's "now" at that request: real time plus the simulated offset.
        let now = unix_now() - (r.at.elapsed().as_secs() as i64) + r.offset as i64;
        assert!(
            now - iat < 3600,
            "a token {}s old was sent (limit: 1 hour)",
            now - iat
        );
        assert!(iat <= now + 5, "iat in the future");
        per_conn
            .entry(r.conn)
            .or_default()
            .push((r.offset, jwt, iat));
    }
    for (conn, seq) in &per_conn {
        let mut since = seq[0].0;
        for w in seq.windows(2) {
            if w[0].1 != w[1].1 {
                assert!(
                    w[1].0 - since >= 20 * 60,
                    "connection {conn} changed tokens after {} minutes (TooManyProviderTokenUpdates)",
                    (w[1].0 - since) / 60
                );
                since = w[1].0;
            }
        }
    }
    per_conn
}

fn server_tokens(server: &H2Server) -> HashSet<String> {
    server
        .requests()
        .iter()
        .filter_map(|r| r.header("authorization").map(str::to_owned))
        .collect()
}

/// Four simulated hours in 7-minute steps over a pool of three one-stream connections that the
/// server keeps closing (a graceful GOAWAY every 9th request), so that connections open at all
/// token ages: each connection still keeps a token at least 20 minutes, never sends one older
/// than an hour, and the key mints at most one token per 30 minutes (the `TokenKey` docs: a
/// token older than 30 minutes is never adopted, a fresh one is minted instead).
#[tokio::test]
async fn connections_opened_at_any_token_age_keep_the_20_and_60_minute_rules() {
    let server = h2_server(Some(1), |r, i| {
        if i % 9 == 8 {
            Act::Graceful(Duration::ZERO)
        } else {
            ok_echo(r)
        }
    });
    let (key, client) = keyed_client_with(&server.url, &server.ca, |b| b.connections(3));
    simulate_rounds(&server, &client, &key, 35, 7 * 60, |n| 1 + n % 3).await;
    let per_conn = check_token_discipline(&server.requests());
    assert!(
        per_conn.len() >= 6,
        "only {} connections were opened",
        per_conn.len()
    );
    let minted = key.tokens_minted();
    assert!(minted <= 9, "{minted} tokens in 245 simulated minutes");
}

// ----------------------------------------------------------------------------------------------
// Answers
// ----------------------------------------------------------------------------------------------

/// A 200 is accepted (APNS.md §6). `Accepted::apns_id` is documented as "the apns-id APNs
/// echoed back"; when the server leaves it out, the push's own id is the only honest value.
#[tokio::test]
async fn a_200_without_apns_id_is_accepted_with_the_pushs_own_id() {
    let server = h2_server(None, |_, _| ok());
    let (_, client) = keyed_client(&server.url, &server.ca);
    let push = alert(&dev(1));
    let id = push.apns_id().to_owned();
    match client.send(push).await {
        PushOutcome::Accepted(a) => {
            assert_eq!(a.apns_id, id);
            assert!(a.apns_unique_id.is_none());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.count(), 1);
}

/// `apns-unique-id` (development only) is handed to the user; a 200 with a (non-JSON) body is
/// still accepted.
#[tokio::test]
async fn a_200_with_apns_unique_id_and_a_stray_body_is_accepted_with_it() {
    let server = h2_server(None, |r, _| {
        Act::Respond(
            200,
            vec![
                ("apns-id", r.apns_id().to_owned()),
                (
                    "apns-unique-id",
                    "00b21af8-7c60-4626-ae62-17c21a75d103".into(),
                ),
            ],
            Bytes::from_static(b"not json at all"),
        )
    });
    let (_, client) = keyed_client(&server.url, &server.ca);
    match client.send(alert(&dev(1))).await {
        PushOutcome::Accepted(a) => {
            assert_eq!(
                a.apns_unique_id.as_deref(),
                Some("00b21af8-7c60-4626-ae62-17c21a75d103")
            )
        }
        other => panic!("{other:?}"),
    }
}

/// 410 with `timestamp` (ms): rejected once, never retried (APNS.md §6), the instant kept to the
/// millisecond; without a timestamp it is still a 410 rejection, with `timestamp: None`.
#[tokio::test]
async fn a_410_carries_its_millisecond_timestamp_and_one_without_has_none() {
    let server = h2_server(None, |r, _| {
        let body = if r.path.ends_with("01") {
            r#"{"reason":"Unregistered","timestamp":1700000000123}"#
        } else {
            r#"{"reason":"ExpiredToken"}"#
        };
        Act::Respond(
            410,
            vec![("apns-id", r.apns_id().to_owned())],
            Bytes::from(body),
        )
    });
    let (_, client) = keyed_client(&server.url, &server.ca);
    let r = expect_rejected(client.send(alert(&format!("{:062x}01", 7))).await);
    assert_eq!((r.status, &r.reason), (410, &Reason::Unregistered));
    assert_eq!(
        r.timestamp,
        Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123))
    );
    assert!(r.reason.invalidates_token());
    let r = expect_rejected(client.send(alert(&format!("{:062x}02", 7))).await);
    assert_eq!(
        (r.status, &r.reason, r.timestamp),
        (410, &Reason::ExpiredToken, None)
    );
    assert_eq!(server.count(), 2, "410s are never retried");
}

/// An error body that is not JSON: one typed outcome, not accepted, not retried (the docs:
/// "a body that is not JSON or has no reason gives `Reason::Other` with the status as text";
/// `Protocol` is "answered something unparseable").
#[tokio::test]
async fn an_error_body_that_is_not_json_is_one_typed_outcome() {
    let server = h2_server(None, |_, _| {
        Act::Respond(400, vec![], Bytes::from_static(b"<html>Bad Request</html>"))
    });
    let (_, client) = keyed_client(&server.url, &server.ca);
    let o = client.send(alert(&dev(1))).await;
    match o {
        PushOutcome::Rejected(r) => {
            assert_eq!(r.status, 400);
            assert!(matches!(r.reason, Reason::Other(_)), "{:?}", r.reason);
        }
        PushOutcome::Failed(f) => assert_eq!(f.error.kind(), ErrorKind::Protocol, "{}", f.error),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.count(), 1);
}

/// A reason string Apple adds later survives verbatim on any status (APNS.md §6, §9.11), and a
/// 403 with it is not retried.
#[tokio::test]
async fn an_unknown_reason_on_403_is_kept_verbatim_and_not_retried() {
    let server = h2_server(None, |_, _| reason(403, "BrandNewReason2027"));
    let (_, client) = keyed_client(&server.url, &server.ca);
    let PushOutcome::Rejected(r) = client.send(alert(&dev(1))).await else {
        panic!()
    };
    assert_eq!(r.status, 403);
    assert_eq!(r.reason, Reason::Other("BrandNewReason2027".into()));
    assert_eq!(r.reason.as_str(), "BrandNewReason2027");
    assert_eq!(server.count(), 1);
}

/// A server that answers with a multi-megabyte error body: the push still gets one typed
/// outcome (well before the request timeout) and the connection remains usable.
#[tokio::test]
async fn a_huge_error_body_is_one_typed_outcome_and_the_client_stays_usable() {
    let server = h2_server(
        None,
        first_then_ok(1, || {
            let mut body = br#"{"reason":"BadDeviceToken","pad":""#.to_vec();
            body.extend(std::iter::repeat_n(b'x', 8 << 20));
            body.extend_from_slice(br#""}"#);
            Act::Respond(400, vec![], Bytes::from(body))
        }),
    );
    let (_, client) = keyed_client_with(&server.url, &server.ca, |b| {
        b.request_timeout(Duration::from_secs(30))
    });
    let outcome = client.send(alert(&dev(1))).await;
    // The status still decides: a 400 is a rejection (not delivered), never "APNs may have
    // it"; the body is not read past its limit, so the reason is the status's.
    let PushOutcome::Rejected(rejected) = &outcome else {
        panic!("a 400 with a huge body must be a rejection: {outcome:?}");
    };
    assert_eq!(rejected.status, 400);
    assert!(client.send(alert(&dev(2))).await.is_accepted());
    assert_eq!(server.count(), 2);
}

// ----------------------------------------------------------------------------------------------
// Retries
// ----------------------------------------------------------------------------------------------

/// 500 and 503 are retried (README: 3 retries by default, from `initial_backoff` doubling, equal
/// jitter so each wait is at least half its step) with the same apns-id and body; when retries
/// run out the one outcome is `Failed` with `is_retries_exhausted()` and the last status/reason.
#[tokio::test]
async fn a_503_storm_is_retried_with_backoff_and_the_same_apns_id_then_fails_with_the_last_reason()
{
    let server = h2_server(None, |_, i| {
        if i % 2 == 0 {
            reason(500, "InternalServerError")
        } else {
            reason(503, "ServiceUnavailable")
        }
    });
    let (_, client) = keyed_client_with(&server.url, &server.ca, |b| {
        b.retry(RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
        })
    });
    let push = alert(&dev(1));
    let id = push.apns_id().to_owned();
    let f = expect_failed(client.send(push).await);
    assert!(f.error.is_retries_exhausted(), "{}", f.error);
    assert_eq!(f.error.status(), Some(503));
    assert_eq!(f.error.reason(), Some(&Reason::ServiceUnavailable));
    let attempts = server.requests();
    assert_eq!(attempts.len(), 4, "1 attempt + 3 retries");
    assert!(
        attempts
            .iter()
            .all(|r| r.apns_id() == id && r.body == attempts[0].body)
    );
    for (n, w) in attempts.windows(2).enumerate() {
        let floor = Duration::from_millis(50 << n); // half of 100, 200, 400 ms
        assert!(
            w[1].at - w[0].at >= floor,
            "retry {n} after {:?} (< {floor:?})",
            w[1].at - w[0].at
        );
    }
}

/// 429 TooManyRequests is retried and then accepted, with the same apns-id.
#[tokio::test]
async fn a_429_too_many_requests_is_retried_and_accepted() {
    let server = h2_server(None, first_then_ok(1, || reason(429, "TooManyRequests")));
    let (_, client) = keyed_client(&server.url, &server.ca);
    let push = alert(&dev(1));
    let id = push.apns_id().to_owned();
    assert!(client.send(push).await.is_accepted());
    assert_eq!(server.attempts_of(&id).len(), 2);
}

/// After 429 TooManyProviderTokenUpdates the retry must not bring yet another new token to that
/// connection (APNS.md §3: a new token more often than every 20 minutes is what draws it).
#[tokio::test]
async fn a_retry_after_too_many_provider_token_updates_keeps_the_same_token() {
    let server = h2_server(
        None,
        first_then_ok(1, || reason(429, "TooManyProviderTokenUpdates")),
    );
    let (key, client) = keyed_client(&server.url, &server.ca);
    assert!(client.send(alert(&dev(1))).await.is_accepted());
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(
        reqs[0].header("authorization"),
        reqs[1].header("authorization")
    );
    assert_eq!(key.tokens_minted(), 1);
}

/// RST_STREAM(INTERNAL_ERROR) on a request in flight: `ConnectionLost` (the docs: "the server
/// reset the stream (other than REFUSED_STREAM)"), not resent; the client stays usable.
#[tokio::test]
async fn a_stream_reset_by_the_server_is_connection_lost_and_not_resent() {
    let server = h2_server(
        None,
        first_then_ok(1, || Act::Reset(h2::Reason::INTERNAL_ERROR)),
    );
    let (_, client) = keyed_client(&server.url, &server.ca);
    let push = alert(&dev(1));
    let id = push.apns_id().to_owned();
    let f = expect_failed(client.send(push).await);
    assert!(f.error.is_connection_lost(), "{:?}", f.error.kind());
    assert!(!f.error.is_connect());
    assert!(client.send(alert(&dev(2))).await.is_accepted());
    assert_eq!(
        server.attempts_of(&id).len(),
        1,
        "a reset request may have been processed: no resend"
    );
}

/// REFUSED_STREAM means not processed (APNS.md §7): resent with the same apns-id and body.
#[tokio::test]
async fn a_refused_stream_is_resent_with_the_same_apns_id_and_body() {
    let server = h2_server(
        None,
        first_then_ok(2, || Act::Reset(h2::Reason::REFUSED_STREAM)),
    );
    let (_, client) = keyed_client_with(&server.url, &server.ca, |b| b.retry(RetryPolicy::none()));
    let push = alert(&dev(1));
    let id = push.apns_id().to_owned();
    assert!(client.send(push).await.is_accepted());
    let reqs = server.requests();
    assert_eq!(reqs.len(), 3);
    assert!(
        reqs.iter()
            .all(|r| r.apns_id() == id && r.body == reqs[0].body)
    );
}

// ----------------------------------------------------------------------------------------------
// Connections failing
// ----------------------------------------------------------------------------------------------

fn marked(i: usize) -> Push {
    Push::builder(dev(i), BUNDLE)
        .raw_payload(format!(r#"{{"aps":{{"alert":"m{i:03}"}}}}"#))
        .build()
        .unwrap()
}

/// Sends `marked(i)` for every `i` in `range` at once; the outcomes in that order.
async fn send_marked(client: &ApnsClient, range: std::ops::Range<usize>) -> Vec<PushOutcome> {
    futures::future::join_all(range.map(|i| client.send(marked(i)))).await
}

fn marker_of(body: &[u8]) -> usize {
    let s = std::str::from_utf8(body).unwrap();
    let at = s.find("\"m").unwrap();
    s[at + 2..at + 5].parse().unwrap()
}

/// GOAWAY mid-flight with last_stream_id below two of four in-flight streams, the streams up to
/// it answered: every push is accepted, those above last_stream_id are resent on a new
/// connection, those at or below it are not (APNS.md §7; docs: "GOAWAY above last_stream_id
/// ... sent again").
#[tokio::test]
async fn goaway_mid_flight_resends_only_the_streams_above_last_stream_id() {
    goaway_case(true).await;
}

/// The same GOAWAY, but the server closes without answering the streams at or below
/// last_stream_id: those are reported (`ConnectionLost`: APNs may have them), never resent and
/// never lost silently; the ones above it are resent and accepted.
#[tokio::test]
async fn goaway_then_close_reports_processed_streams_lost_and_resends_the_rest() {
    goaway_case(false).await;
}

async fn goaway_case(answer_kept: bool) {
    let server = raw_server(
        100,
        vec![
            RawMode::GoAway {
                skip: 1,
                wait_for: 4,
                keep: 2,
                answer_kept,
                close: true,
            },
            RawMode::Answer {
                hold: Duration::ZERO,
            },
        ],
    );
    let (_, client) = keyed_client_with(&server.url, &server.ca, |b| b.retry(RetryPolicy::none()));
    // A first push, answered at once, lets the connection learn the limit of 100.
    assert!(client.send(marked(0)).await.is_accepted());
    let outcomes = send_marked(&client, 1..5).await;
    let log = server.log.lock();
    let later = log.later_markers();
    let (kept, above) = (log.kept.clone(), log.above.clone());
    drop(log);
    assert_eq!(
        (kept.len(), above.len()),
        (2, 2),
        "the four went out together on the first connection"
    );
    for m in &kept {
        let o = &outcomes[m - 1];
        if answer_kept {
            assert!(o.is_accepted(), "m{m:03} answered before the close: {o:?}");
        } else {
            let e = o
                .error()
                .unwrap_or_else(|| panic!("m{m:03} at/below last_stream_id, unanswered: {o:?}"));
            assert!(e.is_connection_lost(), "m{m:03}: {:?} {e}", e.kind());
        }
        assert!(
            !later.contains(m),
            "m{m:03} was at or below last_stream_id (maybe processed) but sent again"
        );
    }
    for m in &above {
        assert!(
            outcomes[m - 1].is_accepted(),
            "m{m:03} above last_stream_id: {:?}",
            outcomes[m - 1]
        );
        assert_eq!(
            later.iter().filter(|x| *x == m).count(),
            1,
            "m{m:03} above last_stream_id must be resent once"
        );
    }
}

/// The server closes the TCP connection with a request in flight: `ConnectionLost`, not resent
/// (APNs may have it), and the next push reconnects and is accepted.
#[tokio::test]
async fn a_tcp_close_mid_request_is_connection_lost_and_the_next_push_reconnects() {
    let server = h2_server(None, first_then_ok(1, || Act::CloseConnection));
    let (key, client) = keyed_client(&server.url, &server.ca);
    let push = alert(&dev(1));
    let id = push.apns_id().to_owned();
    let f = expect_failed(client.send(push).await);
    assert!(
        f.error.is_connection_lost(),
        "{:?}: {}",
        f.error.kind(),
        f.error
    );
    let next = client.send(alert(&dev(2))).await;
    assert!(
        next.is_accepted(),
        "{next:?}; requests on connections {:?}",
        server.requests().iter().map(|r| r.conn).collect::<Vec<_>>(),
    );
    assert_eq!(server.attempts_of(&id).len(), 1);
    assert_eq!(server.conns.load(Ordering::SeqCst), 2);
    assert_eq!(
        key.tokens_minted(),
        1,
        "the new connection reuses the team's token (one token per team, APNS.md §3)"
    );
}

/// A server that never answers: after the request timeout (not before) the push fails with
/// `is_timeout()` (APNs may have it), is not resent, and the client stays usable.
#[tokio::test]
async fn a_server_that_never_answers_hits_the_request_timeout_typed() {
    // One stream per connection: a timed-out stream the client did not free would block the next.
    let (server, slot) = hang_first_server();
    let timeout = Duration::from_millis(700);
    let (_, client) = keyed_client_with(&server.url, &server.ca, |b| b.request_timeout(timeout));
    let push = alert(&dev(1));
    let id = push.apns_id().to_owned();
    let started = Instant::now();
    let f = expect_failed(client.send(push).await);
    assert!(
        started.elapsed() >= timeout,
        "failed after {:?}",
        started.elapsed()
    );
    assert_eq!(f.error.kind(), ErrorKind::Timeout, "{}", f.error);
    assert!(!f.error.is_connect() && !f.error.is_retries_exhausted());
    assert!(client.send(alert(&dev(2))).await.is_accepted());
    assert_eq!(
        server.attempts_of(&id).len(),
        1,
        "a timed-out push is not resent"
    );
    assert!(
        slot.lock().is_some(),
        "the timed-out stream was never reset (left open on the server)"
    );
}

/// SETTINGS_MAX_CONCURRENT_STREAMS 1: twelve pushes at once never open a second stream while
/// one is open, and all are accepted (docs: "Never more streams than allowed"; APNS.md §9.4).
#[tokio::test]
async fn a_limit_of_one_stream_is_never_exceeded_and_nothing_fails() {
    let server = raw_server(
        1,
        vec![RawMode::Answer {
            hold: Duration::from_millis(15),
        }],
    );
    let (_, client) = keyed_client(&server.url, &server.ca);
    let outcomes = send_marked(&client, 0..12).await;
    assert_all_accepted(&outcomes);
    let log = server.log_without_violations();
    assert_eq!(log.max_open, 1);
    assert_eq!(log.requests.len(), 12);
}

/// The limit drops from 10 to 1 mid-flight (as after a rejection, APNS.md §3): once the client
/// has acknowledged the new SETTINGS it opens no stream while one is open; nothing fails.
#[tokio::test]
async fn a_limit_lowered_mid_flight_is_followed_after_the_settings_ack() {
    // Learn the limit of 10 first.
    let (server, client) = limit_changing_server(10, Duration::from_millis(20), 3, 1, None).await;
    let outcomes = send_marked(&client, 1..30).await;
    assert_all_accepted(&outcomes);
    let log = server.log_without_violations();
    assert!(
        log.opened_after_lower > 0,
        "the lowered limit was never in force"
    );
}

// ----------------------------------------------------------------------------------------------
// Checks before sending
// ----------------------------------------------------------------------------------------------

/// Payload limits are byte-exact (4096; 5120 for VoIP) and refused at build time with the sizes;
/// a payload of exactly the limit goes out whole with its content-length.
#[tokio::test]
async fn payloads_over_the_limit_fail_at_build_by_the_exact_byte_and_at_the_limit_go_out_whole() {
    let server = h2_server(None, |r, _| ok_echo(r));
    let (_, client) = keyed_client(&server.url, &server.ca);
    let sized = |n: usize| {
        let head = br#"{"aps":{"alert":""#.len() + br#""}}"#.len();
        format!(
            r#"{{"aps":{{"alert":"{}"}}}}"#,
            "é".repeat((n - head) / 2) + &"x".repeat((n - head) % 2)
        )
    };
    for (pt, limit) in [(PushType::Alert, 4096), (PushType::Voip, 5120)] {
        let over = sized(limit + 1);
        assert_eq!(over.len(), limit + 1);
        let err = Push::builder(dev(1), BUNDLE)
            .push_type(pt)
            .raw_payload(over)
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PayloadTooLarge);
        let p = err.payload_too_large().unwrap();
        assert_eq!((p.size, p.limit, p.over_by), (limit + 1, limit, 1));
        let exact = sized(limit);
        let push = Push::builder(dev(2), BUNDLE)
            .push_type(pt)
            .raw_payload(exact.clone())
            .build()
            .unwrap();
        let id = push.apns_id().to_owned();
        assert!(client.send(push).await.is_accepted());
        let r = &server.attempts_of(&id)[0];
        assert_eq!(r.body.len(), limit);
        assert_eq!(r.body.as_ref(), exact.as_bytes());
    }
    assert_eq!(
        server.count(),
        2,
        "nothing over the limit reached the server"
    );
}

/// Device tokens that are not hex fail at build time, typed (`InvalidPush`); hex of any even
/// length goes out lower-cased in the path (APNS.md §7: never hard-code 64).
#[tokio::test]
async fn malformed_device_tokens_are_typed_errors_and_any_hex_length_goes_out() {
    let mut accepted = Vec::new();
    for bad in [
        "", "abc", "zz", "ab cd", "<abcd>", "0xabcd", "ab-cd", "ａｂ", "ab/../cd",
    ] {
        match Push::builder(bad, BUNDLE).build() {
            Err(err) => assert_eq!(err.kind(), ErrorKind::InvalidPush, "{bad:?}"),
            Ok(push) => accepted.push(format!("{bad:?} built as {:?}", push.device_token())),
        }
    }
    assert!(accepted.is_empty(), "not hex, yet built: {accepted:?}");
    let server = h2_server(None, |r, _| ok_echo(r));
    let (_, client) = keyed_client(&server.url, &server.ca);
    for n in [2, 64, 108, 160, 200] {
        let token = "aB".repeat(n / 2);
        assert!(
            client.send(alert(&token)).await.is_accepted(),
            "{n} hex digits"
        );
        assert_eq!(
            server.requests().last().unwrap().path,
            format!("/3/device/{}", token.to_lowercase())
        );
    }
}

// ----------------------------------------------------------------------------------------------
// Secrets
// ----------------------------------------------------------------------------------------------

/// Collects every field of every span and event (this thread only).
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<String>>, Arc<AtomicU64>);

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write as _;
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.push_str(field.name());
        self.0.push('=');
        self.0.push_str(value);
        self.0.push(' ');
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        span.record(&mut Fields(&mut self.0.lock()));
        tracing::span::Id::from_u64(self.1.fetch_add(1, Ordering::SeqCst) + 1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        values.record(&mut Fields(&mut self.0.lock()));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut s = self.0.lock();
        s.push_str(event.metadata().target());
        s.push_str(": ");
        event.record(&mut Fields(&mut s));
        s.push('\n');
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Neither the key nor any JWT the server saw appears in `Debug` of the key, the client or the
/// outcomes, in error messages, or in anything logged through `tracing` (README, docs).
#[tokio::test]
async fn keys_and_jwts_never_appear_in_debug_errors_or_logs() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let server = h2_server(None, |r, i| match i {
        0 => reason(403, "InvalidProviderToken"),
        1 => reason(403, "ExpiredProviderToken"),
        2 => Act::Hang,
        _ => ok_echo(r),
    });
    let (key, der, _) = signing_key();
    let client = client_for(&server.url, &server.ca, &key)
        .request_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let mut seen = Vec::new();
    for i in 0..4 {
        let o = client.send(alert(&dev(i))).await;
        seen.push(format!("{o:?}"));
        if let Some(e) = o.error() {
            seen.push(format!("{e} {e:?}"));
        }
        if let Some(r) = o.reason() {
            seen.push(format!("{r} {r:?} {}", r.explain()));
        }
    }
    seen.push(format!("{key:?} {client:?}"));
    seen.push(capture.0.lock().clone());
    let secrets: Vec<String> = server
        .requests()
        .iter()
        .filter_map(|r| r.header("authorization").map(str::to_owned))
        .flat_map(|a| {
            let jwt = a.trim_start_matches("bearer ").to_owned();
            let sig = jwt.rsplit('.').next().unwrap().to_owned();
            [jwt, sig]
        })
        .chain([
            base64::engine::general_purpose::STANDARD.encode(&der)[40..80].to_owned(),
            der[36..68].iter().map(|b| format!("{b:02x}")).collect(),
        ])
        .collect();
    assert!(secrets.len() >= 4);
    assert!(
        !capture.0.lock().is_empty(),
        "the capture saw no log at all (is it wired?)"
    );
    for text in &seen {
        for s in &secrets {
            assert!(
                !text.contains(s.as_str()),
                "a secret leaked into: {}",
                &text[..text.len().min(300)]
            );
        }
    }
}

// ----------------------------------------------------------------------------------------------
// More misbehaviour
// ----------------------------------------------------------------------------------------------

/// A 5xx that is not Apple's (a relay's 502 with an HTML body) is retried like any 5xx (docs:
/// "429 / 5xx after every retry"), then fails with the status kept.
#[tokio::test]
async fn a_relays_502_with_an_html_body_is_retried_then_fails_with_its_status() {
    let server = h2_server(None, |_, _| {
        Act::Respond(
            502,
            vec![("content-type", "text/html".into())],
            Bytes::from_static(b"<html>502 Bad Gateway</html>"),
        )
    });
    let (_, client) = keyed_client(&server.url, &server.ca);
    let f = expect_failed(client.send(alert(&dev(1))).await);
    assert!(
        f.error.is_retries_exhausted(),
        "{:?} {}",
        f.error.kind(),
        f.error
    );
    assert_eq!(f.error.status(), Some(502));
    assert_eq!(server.count(), 4);
}

/// A 400 with an empty body: one rejection with status 400, never accepted, never retried.
#[tokio::test]
async fn a_400_without_a_body_is_one_rejection() {
    let server = h2_server(None, |_, _| Act::Respond(400, vec![], Bytes::new()));
    let (_, client) = keyed_client(&server.url, &server.ca);
    let r = expect_rejected(client.send(alert(&dev(1))).await);
    assert_eq!(r.status, 400);
    assert_eq!(server.count(), 1);
}

/// GOAWAY(last_stream_id 0) on every connection: no request is ever processed, so the pushes are
/// moved (up to 8 times, docs) and then fail typed, each exactly once; nothing hangs.
#[tokio::test]
async fn goaway_zero_on_every_connection_fails_each_push_typed_and_nothing_hangs() {
    let server = raw_server(
        100,
        vec![RawMode::GoAway {
            skip: 0,
            wait_for: 1,
            keep: 0,
            answer_kept: false,
            close: true,
        }],
    );
    let (_, client) = keyed_client(&server.url, &server.ca);
    let outcomes = tokio::time::timeout(Duration::from_secs(120), send_marked(&client, 0..3))
        .await
        .expect("pushes refused by every connection hung");
    for o in &outcomes {
        let e = o.error().unwrap_or_else(|| panic!("{o:?}"));
        assert!(
            e.is_retries_exhausted() || e.is_connect(),
            "never processed, so it must say so: {:?} {e}",
            e.kind()
        );
    }
}

/// A server that sends GOAWAY and keeps the TCP connection open: the client opens no stream on
/// it afterwards (RFC 9113 §6.8; APNS.md §7 "stop new streams on that connection") and the
/// next pushes go to a new connection and are accepted.
#[tokio::test]
async fn after_a_goaway_that_keeps_the_socket_open_new_pushes_use_a_new_connection() {
    let server = raw_server(
        100,
        vec![
            RawMode::GoAway {
                skip: 1,
                wait_for: 1,
                keep: 1,
                answer_kept: true,
                close: false,
            },
            RawMode::Answer {
                hold: Duration::ZERO,
            },
        ],
    );
    let (_, client) = keyed_client_with(&server.url, &server.ca, |b| {
        b.request_timeout(Duration::from_secs(5))
    });
    assert!(client.send(marked(0)).await.is_accepted());
    assert!(client.send(marked(1)).await.is_accepted());
    for i in 2..6 {
        let o = client.send(marked(i)).await;
        assert!(o.is_accepted(), "m{i:03}: {o:?}");
    }
    let log = server.log_without_violations();
    let later = log.later_markers();
    assert_eq!(later, vec![2, 3, 4, 5]);
}

/// SETTINGS_MAX_CONCURRENT_STREAMS lowered to 0, raised 300 ms later: the client opens no
/// stream while the limit is 0 (RFC 9113 §5.1.2; docs: "Never more streams than allowed") and
/// sends the push once it is raised.
#[tokio::test]
async fn a_limit_of_zero_is_waited_out_until_the_server_raises_it() {
    let raise = Some((Duration::from_millis(300), 10));
    let (server, client) = limit_changing_server(10, Duration::ZERO, 1, 0, raise).await;
    // Let the SETTINGS(0) that followed the answer be read and acknowledged.
    wait_for_settings_ack(&server).await;
    let o = client.send(marked(1)).await;
    let log = server.log_without_violations();
    assert!(o.is_accepted(), "{o:?}");
    assert_eq!(log.requests.len(), 2);
    assert!(
        log.opened_after_lower >= 1,
        "the limit of 0 was never acknowledged before the push"
    );
}

/// A TLS server that does not negotiate h2 and speaks HTTP/1.1: nothing can have been
/// delivered, so the push fails as a connect error (docs: Connect includes the HTTP/2
/// handshake; APNS.md §1: HTTP/2 only), never accepted.
#[tokio::test]
async fn a_server_without_h2_is_a_connect_error() {
    let Tls { acceptor, ca_pem } = tls_offering(None, vec![]);
    let (std_listener, port) = loopback_listener();
    spawn_server(move || async move {
        let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::task::spawn_local(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 1024];
                let _ = tls.read(&mut buf).await;
                let _ = tls
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    let (_, client) = keyed_client_with(&format!("https://127.0.0.1:{port}"), &ca_pem, |b| {
        b.connect_timeout(Duration::from_secs(5))
    });
    let f = expect_failed(client.send(alert(&dev(1))).await);
    assert!(f.error.is_connect(), "{:?} {}", f.error.kind(), f.error);
}

/// A server with a tiny flow-control window (16 bytes) still receives a 4096-byte payload whole.
#[tokio::test]
async fn a_tiny_flow_control_window_still_delivers_the_whole_payload() {
    let server = h2_server_window(16);
    let (_, client) = keyed_client_with(&server.url, &server.ca, |b| {
        b.request_timeout(Duration::from_secs(10))
    });
    let body = format!(r#"{{"aps":{{"alert":"{}"}}}}"#, "y".repeat(4096 - 20));
    assert_eq!(body.len(), 4096);
    let push = Push::builder(dev(1), BUNDLE)
        .raw_payload(body.clone())
        .build()
        .unwrap();
    let o = client.send(push).await;
    assert!(o.is_accepted(), "{o:?}");
    assert_eq!(server.requests()[0].body.as_ref(), body.as_bytes());
}

/// h2's graceful shutdown (GOAWAY at 2^31-1, then at the last stream) with a push in flight:
/// that push is answered and accepted, the pushes sent meanwhile go out (on a new connection)
/// and are accepted, and no apns-id is accepted twice.
#[tokio::test]
async fn a_graceful_goaway_with_a_push_in_flight_loses_nothing() {
    let server = h2_server(
        None,
        first_then_ok(1, || Act::Graceful(Duration::from_millis(300))),
    );
    let (_, client) = keyed_client(&server.url, &server.ca);
    let first = client.send(alert(&dev(0)));
    let rest = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        send_alerts(&client, 1..6).await
    };
    let (first, rest) = tokio::join!(first, rest);
    assert!(first.is_accepted(), "{first:?}");
    assert_all_accepted(&rest);
    let mut ids = HashMap::new();
    for r in server.requests() {
        *ids.entry(r.apns_id().to_owned()).or_insert(0) += 1;
    }
    assert_eq!(ids.len(), 6);
    assert!(
        ids.values().all(|n| *n == 1),
        "a push went out twice: {ids:?}"
    );
}

/// A status APNs does not document (421 Misdirected Request from a relay): one outcome, never
/// accepted, the status kept.
#[tokio::test]
async fn an_undocumented_status_is_one_outcome_with_the_status_kept() {
    let server = h2_server(None, |_, _| reason(421, "Misdirected"));
    let (_, client) = keyed_client(&server.url, &server.ca);
    let o = client.send(alert(&dev(1))).await;
    match o {
        PushOutcome::Rejected(r) => assert_eq!(r.status, 421),
        PushOutcome::Failed(f) => assert!(
            f.error.status() == Some(421) || f.error.kind() == ErrorKind::Protocol,
            "{:?} {}",
            f.error.kind(),
            f.error
        ),
        other => panic!("{other:?}"),
    }
}

/// A 410 whose timestamp is not a number still carries its reason (the docs only fall back to
/// `Reason::Other` for a body that "is not JSON or has no reason"); the timestamp is `None`.
#[tokio::test]
async fn a_410_with_a_malformed_timestamp_keeps_its_reason() {
    let server = h2_server(None, |_, _| {
        Act::Respond(
            410,
            vec![],
            Bytes::from_static(br#"{"reason":"Unregistered","timestamp":"yesterday"}"#),
        )
    });
    let (_, client) = keyed_client(&server.url, &server.ca);
    let r = expect_rejected(client.send(alert(&dev(1))).await);
    assert_eq!((r.status, &r.reason), (410, &Reason::Unregistered));
    assert!(r.timestamp.is_none());
}

/// ExpiredProviderToken on four pushes in flight together with the same token: each is retried
/// once with the same apns-id, and together they cause ONE new token, not one per push (APNS.md
/// §3: a second change within 20 minutes on a connection draws TooManyProviderTokenUpdates; the
/// `TokenKey` docs: "the token is retired and the push is retried once with a new one").
#[tokio::test]
async fn expired_provider_token_on_pushes_in_flight_together_mints_one_new_token() {
    let first: Arc<Mutex<Option<String>>> = Arc::default();
    let f2 = first.clone();
    let server = h2_server(Some(100), move |r, _| {
        let auth = r.header("authorization").unwrap_or("").to_owned();
        let is_first = f2.lock().get_or_insert_with(|| auth.clone()).clone() == auth;
        if is_first {
            // Hold the answers so that all four are in flight with the first token.
            Act::Delay(
                Duration::from_millis(300),
                Box::new(reason(403, "ExpiredProviderToken")),
            )
        } else {
            ok_echo(r)
        }
    });
    let (key, client) = keyed_client(&server.url, &server.ca);
    let pushes: Vec<Push> = (0..4).map(|i| alert(&dev(i))).collect();
    let ids: Vec<String> = pushes.iter().map(|p| p.apns_id().to_owned()).collect();
    let outcomes = futures::future::join_all(pushes.into_iter().map(|p| client.send(p))).await;
    assert_all_accepted(&outcomes);
    let reqs = server.requests();
    let with_first = reqs
        .iter()
        .filter(|r| r.header("authorization") == first.lock().as_deref())
        .count();
    assert_eq!(with_first, 4, "the four went out with the first token");
    for id in &ids {
        assert_eq!(
            server.attempts_of(id).len(),
            2,
            "{id}: refused once, retried once"
        );
    }
    let distinct: HashSet<&str> = reqs
        .iter()
        .filter_map(|r| r.header("authorization"))
        .collect();
    assert_eq!(
        (distinct.len(), key.tokens_minted()),
        (2, 2),
        "one refused token must be replaced by one new token"
    );
}

/// Dropping `send`'s future after the request went out resets the stream (RST_STREAM CANCEL,
/// documented under "Cancel safety") and frees it: on a one-stream connection the next push is
/// accepted.
#[tokio::test]
async fn a_dropped_send_resets_its_stream_and_frees_it() {
    let (server, slot) = hang_first_server();
    let (_, client) = keyed_client_with(&server.url, &server.ca, |b| {
        b.request_timeout(Duration::from_secs(10))
    });
    let dropped =
        tokio::time::timeout(Duration::from_millis(500), client.send(alert(&dev(0)))).await;
    assert!(dropped.is_err(), "the hung push cannot have an outcome yet");
    // A hang guard, not a budget: a stream that is never freed blocks the next push forever.
    let o = tokio::time::timeout(Duration::from_secs(60), client.send(alert(&dev(1))))
        .await
        .expect("the next push never went out: the dropped push's stream was not freed");
    assert!(o.is_accepted(), "{o:?}");
    // The reset reaches the server. A hang guard, not a budget: polling stops as soon as the
    // server has seen the reset, and gives up only after 30 s.
    for _ in 0..3000 {
        if slot.lock().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(*slot.lock(), Some(h2::Reason::CANCEL));
}

/// A mix of answers through `send_all`: every push gets exactly one outcome of the right kind,
/// and only pushes the server answered 200 are accepted (docs: "exactly one `(Push,
/// PushOutcome)` per input push"; APNS.md §9.9).
#[tokio::test]
async fn send_all_gives_one_outcome_of_the_right_kind_per_push_through_mixed_answers() {
    let attempts: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let a2 = attempts.clone();
    let class = |path: &str| usize::from_str_radix(&path[path.len() - 2..], 16).unwrap() % 7;
    let server = h2_server(Some(4), move |r, _| {
        let n = {
            let mut a = a2.lock();
            let n = a.entry(r.apns_id().to_owned()).or_insert(0);
            *n += 1;
            *n
        };
        match class(&r.path) {
            0 => ok_echo(r),
            1 => Act::Respond(
                410,
                vec![],
                Bytes::from_static(br#"{"reason":"Unregistered","timestamp":1700000000000}"#),
            ),
            2 => reason(400, "BadDeviceToken"),
            3 => Act::Reset(h2::Reason::INTERNAL_ERROR),
            4 if n == 1 => Act::Reset(h2::Reason::REFUSED_STREAM),
            4 => ok_echo(r),
            5 => reason(503, "ServiceUnavailable"),
            _ => Act::Hang,
        }
    });
    let (_, client) = keyed_client_with(&server.url, &server.ca, |b| {
        b.connections(2).request_timeout(Duration::from_millis(800))
    });
    let pushes: Vec<Push> = (0..42)
        .map(|i| alert(&format!("{:062x}{:02x}", 3, i)))
        .collect();
    let mut expected: HashMap<String, usize> = pushes
        .iter()
        .map(|p| (p.apns_id().to_owned(), class(p.device_token())))
        .collect();
    let mut outcomes = client.send_all(pushes, 8);
    while let Some((push, o)) = outcomes.next().await {
        let c = expected
            .remove(push.apns_id())
            .unwrap_or_else(|| panic!("{} has a second outcome or is unknown", push.apns_id()));
        let ok = match (c, &o) {
            (0 | 4, PushOutcome::Accepted(_)) => true,
            (1, PushOutcome::Rejected(r)) => {
                r.status == 410 && r.reason == Reason::Unregistered && r.timestamp.is_some()
            }
            (2, PushOutcome::Rejected(r)) => r.status == 400 && r.reason == Reason::BadDeviceToken,
            (3, PushOutcome::Failed(f)) => f.error.is_connection_lost(),
            (5, PushOutcome::Failed(f)) => {
                f.error.is_retries_exhausted() && f.error.status() == Some(503)
            }
            (6, PushOutcome::Failed(f)) => f.error.is_timeout(),
            _ => false,
        };
        assert!(ok, "class {c}: {o:?}");
    }
    assert!(
        expected.is_empty(),
        "pushes without an outcome: {expected:?}"
    );
    let a = attempts.lock();
    for r in server.requests() {
        let n = a[r.apns_id()];
        match class(&r.path) {
            0 | 1 | 2 | 3 | 6 => assert_eq!(n, 1, "class {} sent {n} times", class(&r.path)),
            4 => assert_eq!(n, 2),
            _ => assert_eq!(n, 4),
        }
    }
}

/// A 200 followed at once by the server closing the connection (a load balancer recycling it):
/// the push is accepted, not reported lost, and the next push reconnects.
#[tokio::test]
async fn a_200_followed_by_an_immediate_close_is_accepted() {
    let server = raw_server(100, vec![RawMode::AnswerThenClose]);
    let (_, client) = keyed_client(&server.url, &server.ca);
    for i in 0..5 {
        let o = client.send(marked(i)).await;
        assert!(o.is_accepted(), "m{i:03}: {o:?}");
    }
    let log = server.log.lock();
    assert_eq!(log.requests.len(), 5, "each push sent once");
}

/// Apple's HPACK advice (APNS.md §1): `authorization` as a literal without indexing, so the
/// JWT never enters the dynamic table. Every request on a connection must carry it literally
/// (static name index 23: `0x0F 0x08` without indexing or `0x1F 0x08` never indexed, then the
/// value's length), never as an index into the dynamic table.
#[tokio::test]
async fn authorization_is_sent_as_a_literal_without_indexing_on_every_request() {
    let server = raw_server(
        100,
        vec![RawMode::Answer {
            hold: Duration::ZERO,
        }],
    );
    let (_, client) = keyed_client(&server.url, &server.ca);
    for i in 0..3 {
        assert!(client.send(marked(i)).await.is_accepted());
    }
    let log = server.log.lock();
    assert_eq!(log.header_blocks.len(), 3);
    for (conn, stream, block) in &log.header_blocks {
        let literal = block
            .windows(3)
            .any(|w| (w[0] == 0x0f || w[0] == 0x1f) && w[1] == 0x08 && (w[2] & 0x7f) >= 50);
        let indexed_once = block
            .windows(2)
            .any(|w| w[0] == 0x57 && (w[1] & 0x7f) >= 50);
        assert!(
            literal,
            "conn {conn} stream {stream}: authorization not sent as a literal without indexing \
             (incremental indexing: {indexed_once}); block {} bytes: {:02x?}",
            block.len(),
            &block[..block.len().min(24)]
        );
    }
}

/// Keys that cannot be used (a P-384 key, a truncated P-256 key, a key with its PEM armour
/// damaged) are `BadKey` errors whose message and `Debug` contain none of the key material; a
/// client builder holding a good key does not show it either.
#[tokio::test]
async fn bad_key_errors_and_builder_debug_never_echo_key_material() {
    use ring::signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
    };
    let rng = ring::rand::SystemRandom::new();
    let pem = |der: &[u8]| {
        let b = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<String> = b
            .as_bytes()
            .chunks(64)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        )
    };
    let p384 = pem(
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng)
            .unwrap()
            .as_ref(),
    );
    let p256_der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .unwrap()
        .as_ref()
        .to_vec();
    let good = pem(&p256_der);
    let truncated = pem(&p256_der[..p256_der.len() - 20]);
    let no_footer = good.replace("-----END PRIVATE KEY-----\n", "");
    for bad in [&p384, &truncated, &no_footer] {
        let err = TokenKey::from_p8_pem(bad, KEY_ID, TEAM).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadKey, "{err}");
        let text = format!("{err} {err:?}");
        for line in bad
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() > 16)
        {
            assert!(
                !text.contains(&line[..16]),
                "key material in the error: {text}"
            );
        }
    }
    let key = TokenKey::from_p8_pem(&good, KEY_ID, TEAM).unwrap();
    let builder = ApnsClient::builder().token_auth(key.clone());
    let text = format!("{builder:?} {key:?}");
    for line in good
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 16)
    {
        assert!(!text.contains(&line[..16]), "key material in Debug: {text}");
    }
}

/// APNs' ramp (APNS.md §3): one stream until a first push is accepted, then a higher limit.
/// After the server raises the limit from 1 to 100, concurrent pushes are pipelined on the
/// connection (more than one stream open) and none exceeds the limit.
#[tokio::test]
async fn after_the_ramp_from_one_stream_pushes_are_pipelined() {
    let (server, client) = limit_changing_server(1, Duration::ZERO, 1, 100, None).await;
    wait_for_settings_ack(&server).await;
    // No answer until five streams are open at once (or a hang guard expires): pipelining is
    // shown by concurrency, not by how fast the client opens streams.
    server.log.lock().answer_when_open = Some(5);
    let outcomes = send_marked(&client, 1..21).await;
    assert_all_accepted(&outcomes);
    let log = server.log_without_violations();
    assert!(
        log.max_open >= 5,
        "at most {} streams open after the raise to 100",
        log.max_open
    );
}

/// A server that answers before reading the body (RFC 9113 §8.1: a complete response, then
/// RST_STREAM(NO_ERROR) to stop the upload), here with a tiny window so the upload is cut short:
/// the answer counts — one rejection 413 PayloadTooLarge, not a lost connection, not a retry.
#[tokio::test]
async fn an_answer_before_the_body_is_read_counts() {
    let server = h2_server_opts(None, Some(16), true, |_, _| reason(413, "PayloadTooLarge"));
    let (_, client) = keyed_client_with(&server.url, &server.ca, |b| {
        b.request_timeout(Duration::from_secs(10))
    });
    // The second push certainly meets the 16-byte window the server advertised.
    for i in 0..2 {
        let body = format!(r#"{{"aps":{{"alert":"{}"}}}}"#, "z".repeat(3000));
        let push = Push::builder(dev(i), BUNDLE)
            .raw_payload(body)
            .build()
            .unwrap();
        match client.send(push).await {
            PushOutcome::Rejected(r) => {
                assert_eq!((r.status, &r.reason), (413, &Reason::PayloadTooLarge))
            }
            other => panic!("push {i}: {other:?}"),
        }
    }
    assert_eq!(server.count(), 2);
}

/// Certificate authentication (APNS.md §4): the TLS client certificate is presented, and no
/// `authorization` header is sent ("No JWT is sent"); the other headers are as under token auth.
#[tokio::test]
async fn under_certificate_auth_the_certificate_is_presented_and_no_jwt_is_sent() {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Test Push CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let mut leaf_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf_params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("Apple Push Services: {BUNDLE}"),
    );
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    let cert = herald::apns::Certificate::from_pem(leaf.pem(), leaf_key.serialize_pem()).unwrap();
    let server = h2_server_tls(
        tls_with(Some(ca_cert.der().clone())),
        None,
        None,
        false,
        |r, _| ok_echo(r),
    );
    let client = ApnsClient::builder()
        .endpoint(
            Endpoint::custom(&server.url)
                .unwrap()
                .with_ca_pem(server.ca.clone()),
        )
        .certificate(cert)
        .build()
        .unwrap();
    let push = Push::builder(dev(1), BUNDLE)
        .push_type(PushType::Voip)
        .build()
        .unwrap();
    let o = client.send(push).await;
    assert!(o.is_accepted(), "{o:?}");
    let r = &server.requests()[0];
    assert_eq!(r.client_cert.as_deref(), Some(leaf.der().as_ref()));
    assert!(
        r.header("authorization").is_none(),
        "authorization sent under certificate auth: {:.20}",
        r.header("authorization").unwrap_or("")
    );
    assert_eq!(r.header("apns-topic"), Some("com.example.app.voip"));
    assert_eq!(r.header("apns-push-type"), Some("voip"));
}

/// A token APNs called expired on one connection is retired for the whole key (the `TokenKey`
/// docs: "the token is retired and the push is retried once with a new one"): the pool's other
/// connection does not send it again and so draws no second ExpiredProviderToken.
#[tokio::test]
async fn a_token_refused_as_expired_on_one_connection_is_not_sent_on_the_other() {
    let expired: Arc<Mutex<Option<String>>> = Arc::default();
    let e2 = expired.clone();
    let server = h2_server(Some(1), move |r, _| {
        let auth = r.header("authorization").unwrap_or("");
        if e2.lock().as_deref() == Some(auth) {
            Act::Delay(
                Duration::from_millis(50),
                Box::new(reason(403, "ExpiredProviderToken")),
            )
        } else {
            Act::Delay(Duration::from_millis(50), Box::new(ok_echo(r)))
        }
    });
    let (key, client) = keyed_client_with(&server.url, &server.ca, |b| b.connections(2));
    // Two at once on one-stream connections: both connections carry the first token.
    let o = send_alerts(&client, 0..2).await;
    assert_all_accepted(&o);
    let reqs = server.requests();
    assert_eq!(
        reqs.iter().map(|r| r.conn).collect::<HashSet<_>>().len(),
        2,
        "both connections in use"
    );
    let first = reqs[0].header("authorization").unwrap().to_owned();
    // The server now finds the first token expired (its clock is ahead).
    *expired.lock() = Some(first.clone());
    let one = client.send(alert(&dev(2))).await;
    assert!(one.is_accepted(), "{one:?}");
    let refused_after = server.count();
    assert_eq!(
        refused_after, 4,
        "the third push was refused once and retried"
    );
    let o = send_alerts(&client, 3..7).await;
    assert_all_accepted(&o);
    let reqs = server.requests();
    let stale: Vec<usize> = reqs[refused_after..]
        .iter()
        .filter(|r| r.header("authorization") == Some(first.as_str()))
        .map(|r| r.conn)
        .collect();
    assert!(
        stale.is_empty(),
        "the retired token was sent again on connection(s) {stale:?}"
    );
    assert_eq!(key.tokens_minted(), 2);
}
