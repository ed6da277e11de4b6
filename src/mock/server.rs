//! The listener, the connection tasks and the per-request handler.

use super::environment::Environment;
use super::fault::Fault;
use super::frames::{FrameIo, StreamControl};
use super::record::{AuthKind, Endpoint, RecordedRequest};
use super::rules::{self, Action, Decision, Identity, Rej, Route, Served, is_uuid};
use super::state::{Conn, ConnAuth, ConnCmd, Shared};
use super::tls::{certificate_environments, certificate_topics, certificate_uid};
use bytes::Bytes;
use h2::server::SendResponse;
use http::{Request, Response};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// Bodies above this are answered 413 without reading further.
const MAX_BODY: usize = 64 * 1024;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection closed after a GOAWAY keeps reading what the client still sends.
const LINGER: Duration = Duration::from_secs(2);

type Tls = tokio_rustls::server::TlsStream<TcpStream>;

/// The connection's socket, closed the way a server that sent GOAWAY closes it: the client may
/// have sent more before it read the GOAWAY, and a socket closed with unread input is reset
/// (RFC 9293 §3.10.7.1), which discards what the client had not read yet, the GOAWAY
/// included. The client then cannot tell the streams the server never processed from those it
/// did (it saw a broken pipe on a request the mock never read), and reports them lost. So once
/// `lingering` is set (the connection ended after a GOAWAY), dropping the socket hands it to a
/// task that reads and discards until the client closes, for at most [`LINGER`] (nginx's
/// "lingering close"). A connection dropped without a GOAWAY (`ConnCmd::Drop`, a fault) is
/// still dropped at once.
struct Lingering {
    tls: Option<Tls>,
    lingering: Arc<AtomicBool>,
}

impl Drop for Lingering {
    fn drop(&mut self) {
        if !self.lingering.load(Ordering::Acquire) {
            return;
        }
        let (Some(tls), Ok(rt)) = (self.tls.take(), tokio::runtime::Handle::try_current()) else {
            return;
        };
        rt.spawn(async move {
            let (mut tcp, _) = tls.into_inner();
            let mut sink = [0u8; 4096];
            let _ = tokio::time::timeout(LINGER, async {
                while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {}
            })
            .await;
        });
    }
}

impl Lingering {
    fn tls(&mut self) -> Pin<&mut Tls> {
        // Taken only in `drop`.
        match self.tls.as_mut() {
            Some(tls) => Pin::new(tls),
            None => unreachable!("the socket is taken only when the connection is dropped"),
        }
    }
}

impl AsyncRead for Lingering {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.tls().poll_read(cx, buf)
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.tls().poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.tls().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.tls().poll_shutdown(cx)
    }
}

pub(crate) async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    let _ = tcp.set_nodelay(true);
                    tokio::spawn(serve_connection(
                        shared.clone(), tcp, acceptor.clone(), shutdown.clone(),
                    ));
                }
                Err(e) => {
                    tracing::debug!("mock APNs: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
        }
    }
}

async fn serve_connection(
    shared: Arc<Shared>,
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    mut shutdown: watch::Receiver<bool>,
) {
    let accept = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
    let tls = match tokio::select! {
        _ = shutdown.changed() => return,
        done = accept => done,
    } {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!("mock APNs: TLS handshake failed: {e}");
            shared.stats.lock().tls_failures += 1;
            return;
        }
        Err(_) => {
            shared.stats.lock().tls_failures += 1;
            return;
        }
    };
    let auth = match tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
        Some(cert) => ConnAuth::Certificate {
            bundle_id: certificate_uid(cert),
            topics: certificate_topics(cert),
            environments: certificate_environments(cert),
        },
        None => ConnAuth::Token,
    };
    let config = shared.config.read().clone();
    let initial = match auth {
        ConnAuth::Token => 1,
        ConnAuth::Certificate { .. } => config.max_streams,
    };
    let ctl = Arc::new(StreamControl::new(initial));
    let lingering = Arc::new(AtomicBool::new(false));
    let io = FrameIo::new(
        Lingering {
            tls: Some(tls),
            lingering: lingering.clone(),
        },
        ctl.clone(),
    );
    let mut builder = h2::server::Builder::new();
    builder.max_header_list_size(64 * 1024);
    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, builder.handshake::<_, Bytes>(io));
    let mut h2conn = tokio::select! {
        _ = shutdown.changed() => return,
        done = handshake => match done {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                tracing::debug!("mock APNs: HTTP/2 handshake failed: {e}");
                return;
            }
            Err(_) => {
                tracing::debug!("mock APNs: no HTTP/2 preface within {HANDSHAKE_TIMEOUT:?}");
                return;
            }
        },
    };
    let mut ping = h2conn.ping_pong();
    let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel();
    let conn = Arc::new(Conn {
        id,
        auth,
        ctl: ctl.clone(),
        token: Default::default(),
        raised: Default::default(),
        requests: Default::default(),
        cmd: cmd_tx,
        stats: Default::default(),
    });
    {
        let mut cs = conn.stats.lock();
        cs.open = true;
        cs.max_streams = initial;
    }
    shared.conns.lock().insert(id, conn.clone());
    shared.stats.lock().connections_opened += 1;

    let mut tasks = JoinSet::new();
    let mut going_away = false;
    // A user PING must be answered (PONG polled) before the next one can be sent.
    let mut ping_pending = false;
    let idle_timeout = config.idle_timeout;
    let far = Duration::from_secs(365 * 24 * 3600);
    let idle = tokio::time::sleep(idle_timeout.unwrap_or(far));
    tokio::pin!(idle);
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(cmd) = cmd_rx.recv() => match cmd {
                ConnCmd::Drop => break,
                ConnCmd::Flush => {
                    if let Some(p) = ping.as_mut()
                        && !ping_pending
                    {
                        ping_pending = p.send_ping(h2::Ping::opaque()).is_ok();
                    }
                }
                ConnCmd::GoAway { reason, graceful } => {
                    if !going_away {
                        going_away = true;
                        shared.stats.lock().goaways += 1;
                        ctl.set_goaway_debug(goaway_debug(&reason));
                        if graceful {
                            h2conn.graceful_shutdown();
                        } else {
                            h2conn.abrupt_shutdown(h2::Reason::NO_ERROR);
                        }
                    }
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = &mut idle, if idle_timeout.is_some() && !going_away => {
                let limit = idle_timeout.unwrap_or(far);
                let deadline = ctl.last_activity() + limit;
                if tokio::time::Instant::now() >= deadline && ctl.active() == 0 {
                    going_away = true;
                    shared.stats.lock().goaways += 1;
                    ctl.set_goaway_debug(goaway_debug("IdleTimeout"));
                    h2conn.graceful_shutdown();
                } else {
                    let next = deadline.max(tokio::time::Instant::now() + limit / 4);
                    idle.as_mut().reset(next);
                }
            }
            _ = std::future::poll_fn(|cx| match ping.as_mut() {
                Some(p) => p.poll_pong(cx),
                None => std::task::Poll::Pending,
            }), if ping_pending => ping_pending = false,
            next = h2conn.accept() => match next {
                None => break,
                Some(Err(e)) => {
                    tracing::debug!("mock APNs: connection {id} ended: {e}");
                    break;
                }
                Some(Ok((req, mut respond))) => {
                    // Judged by the frame layer when the HEADERS arrived, against the streams
                    // open then (a stream the client reset before is closed, RFC 9113 §5.1).
                    let stream = respond.stream_id().as_u32();
                    if let Some(below) = ctl.take_over_limit(stream) {
                        // RST_STREAM(REFUSED_STREAM), written by the frame layer ahead of the
                        // GOAWAY (h2's abrupt shutdown would close with its own reset still
                        // queued); h2's reset keeps its own stream state right.
                        ctl.refuse(stream);
                        respond.send_reset(h2::Reason::REFUSED_STREAM);
                        if !going_away {
                            // Apple answers a stream-limit violation with GOAWAY (error 7). Its
                            // last stream id stays below the refused stream, which was never
                            // processed: the client may retry it (RFC 9113 §6.8).
                            going_away = true;
                            let mut stats = shared.stats.lock();
                            stats.goaways += 1;
                            *stats.by_reason.entry("StreamLimitExceeded".into()).or_default() += 1;
                            drop(stats);
                            ctl.set_goaway_debug(goaway_debug("TooManyRequests"));
                            ctl.cap_goaway_last_stream(below);
                            h2conn.abrupt_shutdown(h2::Reason::REFUSED_STREAM);
                        }
                        continue;
                    }
                    {
                        let mut cs = conn.stats.lock();
                        cs.peak_streams = cs.peak_streams.max(ctl.peak());
                    }
                    tasks.spawn(handle(shared.clone(), conn.clone(), req, respond));
                }
            },
        }
    }
    // Read only when the connection, which owns the socket, is dropped as this function ends.
    lingering.store(going_away, Ordering::Release);
    shared.connection_closed(&conn);
    drop(tasks);
}

fn goaway_debug(reason: &str) -> Bytes {
    Bytes::from(serde_json::json!({ "reason": reason }).to_string())
}

async fn wait_reset(respond: &mut SendResponse<Bytes>) {
    let _ = std::future::poll_fn(|cx| respond.poll_reset(cx)).await;
}

async fn handle(
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    req: Request<h2::RecvStream>,
    mut respond: SendResponse<Bytes>,
) {
    let (parts, mut body) = req.into_parts();
    // RFC 9110 §9.3.2: no content in the answer to HEAD (the status and headers only).
    let head = parts.method == http::Method::HEAD;
    let mut buf = Vec::new();
    let mut too_big = false;
    while let Some(chunk) = body.data().await {
        let Ok(chunk) = chunk else { return };
        let _ = body.flow_control().release_capacity(chunk.len());
        if buf.len() + chunk.len() > MAX_BODY {
            too_big = true;
            break;
        }
        buf.extend_from_slice(&chunk);
    }
    let decision = shared.decide(&conn, &parts, buf, too_big);
    if !decision.delay.is_zero() {
        tokio::select! {
            _ = tokio::time::sleep(decision.delay) => {}
            _ = wait_reset(&mut respond) => return,
        }
    }
    match decision.action {
        Action::Respond {
            status,
            headers,
            body,
        } => {
            let mut response = Response::builder().status(status);
            for (name, value) in headers {
                response = response.header(name, value);
            }
            let Ok(response) = response.body(()) else {
                return;
            };
            match body {
                None => {
                    let _ = respond.send_response(response, true);
                }
                Some(_) if head => {
                    let _ = respond.send_response(response, true);
                }
                Some(body) => {
                    if let Ok(mut stream) = respond.send_response(response, false) {
                        let _ = stream.send_data(body, true);
                    }
                }
            }
        }
        Action::Stall => {
            wait_reset(&mut respond).await;
            return;
        }
        Action::Drop => {
            let _ = conn.cmd.send(ConnCmd::Drop);
            return;
        }
        Action::Refuse => {
            respond.send_reset(h2::Reason::REFUSED_STREAM);
        }
        Action::GoAway(reason) => {
            let _ = conn.cmd.send(ConnCmd::GoAway {
                reason,
                graceful: false,
            });
            return;
        }
    }
    if let Some(reason) = decision.goaway_after {
        let _ = conn.cmd.send(ConnCmd::GoAway {
            reason,
            graceful: true,
        });
    }
}

impl Shared {
    /// Applies the rules (see [`rules`]) and the configured faults to one request, records it,
    /// and moves the stream-limit ramp.
    pub(crate) fn decide(
        &self,
        conn: &Conn,
        parts: &http::request::Parts,
        body: Vec<u8>,
        too_big: bool,
    ) -> Decision {
        let received_at = self.clock.now();
        let headers = &parts.headers;
        // Routed by its path alone; recorded as sent (`:path`, with any query).
        let path = parts.uri.path().to_owned();
        let sent_path = parts
            .uri
            .path_and_query()
            .map_or_else(|| path.clone(), |p| p.as_str().to_owned());
        let mut auth = match &conn.auth {
            ConnAuth::Token => AuthKind::Token {
                key_id: None,
                team_id: None,
            },
            ConnAuth::Certificate { bundle_id, .. } => AuthKind::Certificate {
                bundle_id: bundle_id.clone(),
            },
        };
        let mut warnings = Vec::new();
        if parts.uri.query().is_some() {
            warnings.push(rules::QUERY_WARNING.to_owned());
        }
        let echoed_id = headers
            .get("apns-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| is_uuid(v))
            .map(str::to_owned);
        let apns_id = echoed_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let config = self.config.read().clone();
        let mut delay = config.latency.sample();
        let route = rules::route(&parts.method, &path);
        let endpoint = match &route {
            Ok(Route::Push(_)) => Endpoint::Push,
            Ok(Route::Broadcast(_)) => Endpoint::Broadcast,
            Ok(_) => Endpoint::Channels,
            Err((e, _)) => *e,
        };
        let is_push = matches!(endpoint, Endpoint::Push | Endpoint::Broadcast);

        // Outcome: Ok((status, extra headers, body)) or a rejection, or a fault action.
        let mut fault_action = None;
        let mut result: Result<Served, Rej> = Err(Rej {
            status: 500,
            reason: "InternalServerError".into(),
            timestamp_ms: None,
        });
        let mut fault = match &route {
            Ok(Route::Push(token)) => self.next_fault(Some(token)),
            Ok(Route::Broadcast(_)) => self.next_fault(None),
            _ => None,
        };
        if let Some(Fault::Delay(d)) = fault {
            delay += d;
            fault = None;
        }
        match fault {
            Some(Fault::Reject {
                status,
                reason,
                timestamp,
            }) => {
                result = Err(Rej {
                    status,
                    reason,
                    timestamp_ms: timestamp.map(rules::unix_ms),
                });
            }
            Some(Fault::Stall) => fault_action = Some(Action::Stall),
            Some(Fault::DropConnection) => fault_action = Some(Action::Drop),
            Some(Fault::RefuseStream) => fault_action = Some(Action::Refuse),
            Some(Fault::GoAway { reason }) => fault_action = Some(Action::GoAway(reason)),
            Some(Fault::Accept) => result = Ok((200, vec![], None)),
            Some(Fault::Delay(_)) | None => {
                let mut learned = (auth, warnings);
                result = self.validate(conn, parts, &route, &body, too_big, &mut learned);
                (auth, warnings) = learned;
                if result.is_ok()
                    && is_push
                    && config.error_rate > 0.0
                    && rand::random::<f64>() < config.error_rate
                {
                    let (status, reason) = if rand::random::<bool>() {
                        (500, "InternalServerError")
                    } else {
                        (503, "ServiceUnavailable")
                    };
                    result = Err(Rej {
                        status,
                        reason: reason.into(),
                        timestamp_ms: None,
                    });
                }
            }
        }

        let mut rec = RecordedRequest {
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
            connection: conn.id,
            endpoint,
            method: parts.method.to_string(),
            path: sent_path,
            headers: headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            payload: serde_json::from_slice(&body).ok(),
            body,
            auth,
            device_token: match &route {
                Ok(Route::Push(t)) => Some(t.clone()),
                _ => None,
            },
            topic: headers
                .get("apns-topic")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            push_type: headers
                .get("apns-push-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            apns_id: apns_id.clone(),
            status: 0,
            reason: None,
            timestamp_ms: None,
            received_at,
            warnings,
        };

        let n = conn.requests.fetch_add(1, Ordering::Relaxed) + 1;
        let goaway_after = config
            .goaway_after
            .filter(|&limit| n == limit)
            .map(|_| "Shutdown".to_owned());

        let action = if let Some(action) = fault_action {
            action
        } else {
            let mut headers_out = vec![("apns-id", apns_id)];
            match result {
                Ok((status, extra, body)) => {
                    if is_push {
                        // The key to Apple's delivery log: sent by the development
                        // environment only (APNS.md §6).
                        if self.environment == Environment::Sandbox {
                            headers_out.push(("apns-unique-id", uuid::Uuid::new_v4().to_string()));
                        }
                        self.ramp_up(conn, &config);
                    }
                    headers_out.extend(extra);
                    if body.is_some() {
                        headers_out.push(("content-type", "application/json".to_owned()));
                    }
                    rec.status = status;
                    Action::Respond {
                        status,
                        headers: headers_out,
                        body,
                    }
                }
                Err(r) => {
                    if is_push && config.drop_to_one_after_rejection {
                        self.ramp_down(conn);
                    }
                    let body = match r.timestamp_ms {
                        Some(ts) => serde_json::json!({ "reason": r.reason, "timestamp": ts }),
                        None => serde_json::json!({ "reason": r.reason }),
                    };
                    headers_out.push(("content-type", "application/json".to_owned()));
                    rec.status = r.status;
                    rec.reason = Some(r.reason);
                    rec.timestamp_ms = r.timestamp_ms;
                    Action::Respond {
                        status: r.status,
                        headers: headers_out,
                        body: Some(Bytes::from(body.to_string())),
                    }
                }
            }
        };
        self.record(conn, rec);
        Decision {
            action,
            delay,
            goaway_after,
        }
    }

    fn validate(
        &self,
        conn: &Conn,
        parts: &http::request::Parts,
        route: &Result<Route, (Endpoint, Rej)>,
        body: &[u8],
        too_big: bool,
        // What authentication learns: who the caller is, and what was accepted leniently.
        (auth, warnings): &mut (AuthKind, Vec<String>),
    ) -> Result<Served, Rej> {
        let route = route.as_ref().map_err(|(_, r)| r.clone())?;
        let headers = &parts.headers;
        rules::check_duplicates(headers)?;
        let identity: Identity = self.authenticate(conn, headers, auth, warnings)?;
        if too_big {
            return Err(Rej {
                status: 413,
                reason: "PayloadTooLarge".into(),
                timestamp_ms: None,
            });
        }
        match route {
            Route::Push(token) => {
                self.check_push(&identity, headers, token, body)?;
                Ok((200, vec![], None))
            }
            Route::Broadcast(bundle) => {
                self.check_broadcast(&identity, headers, bundle, body)?;
                Ok((200, vec![], None))
            }
            Route::Channels(_) | Route::AllChannels(_) => {
                self.manage_channels(&identity, &parts.method, route, headers, body)
            }
        }
    }

    /// After an accepted push on a token connection: advertise the configured limit.
    fn ramp_up(&self, conn: &Conn, config: &super::state::Config) {
        if !conn.raised.swap(true, Ordering::AcqRel) || conn.ctl.advertised() != config.max_streams
        {
            conn.ctl.advertise(config.max_streams);
            conn.stats.lock().max_streams = config.max_streams;
        }
    }

    /// After a rejection, when configured: back to one stream until the next accepted push.
    fn ramp_down(&self, conn: &Conn) {
        conn.raised.store(false, Ordering::Release);
        conn.ctl.advertise(1);
        conn.stats.lock().max_streams = 1;
    }
}
