//! Shared by the mock's integration tests: a plain HTTP/2 client over rustls (no herald client
//! code) and a tiny ES256 JWT signer written here, independently of both the mock and the client.
#![allow(dead_code, unreachable_pub)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use herald::mock::{MockApns, PushCertificate};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

pub const KEY_ID: &str = "ABC123DEFG";
pub const TEAM_ID: &str = "TEAM123456";
pub const BUNDLE: &str = "com.example.app";

pub fn token(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Signs `{"alg":"ES256","kid":kid}.{"iss":iss,"iat":iat}` with the PKCS#8 PEM key.
pub fn sign_jwt(p8_pem: &str, kid: &str, iss: &str, iat: i64) -> String {
    sign_jwt_with(p8_pem, kid, iss, iat, false)
}

/// Same, with a DER (ASN.1) signature instead of JWS r||s when `der` is set.
pub fn sign_jwt_with(p8_pem: &str, kid: &str, iss: &str, iat: i64, der: bool) -> String {
    sign_parts(
        p8_pem,
        &format!(r#"{{"alg":"ES256","kid":"{kid}"}}"#),
        &format!(r#"{{"iss":"{iss}","iat":{iat}}}"#),
        der,
    )
}

/// A JWT with an arbitrary header and claims (base64url-encoded here as given), ES256 over them
/// with the PKCS#8 PEM key: JWS r||s, or DER (ASN.1) when `der` is set.
pub fn sign_parts(p8_pem: &str, header: &str, claims: &str, der: bool) -> String {
    let h = URL_SAFE_NO_PAD.encode(header);
    let c = URL_SAFE_NO_PAD.encode(claims);
    let signed = format!("{h}.{c}");
    let sig = es256_key(p8_pem, der)
        .sign(&SystemRandom::new(), signed.as_bytes())
        .unwrap();
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

/// The P-256 key pair in a PKCS#8 PEM `.p8`, signing JWS r||s, or DER (ASN.1) when `der` is set.
pub fn es256_key(p8_pem: &str, der: bool) -> EcdsaKeyPair {
    let key = PrivatePkcs8KeyDer::from_pem_slice(p8_pem.as_bytes()).unwrap();
    let alg = if der {
        &ECDSA_P256_SHA256_ASN1_SIGNING
    } else {
        &ECDSA_P256_SHA256_FIXED_SIGNING
    };
    EcdsaKeyPair::from_pkcs8(alg, key.secret_pkcs8_der(), &SystemRandom::new()).unwrap()
}

pub type Client = h2::client::SendRequest<Bytes>;

/// Opens a TLS + HTTP/2 connection trusting the mock's CA, optionally with a client certificate.
pub async fn connect(mock: &MockApns, cert: Option<&PushCertificate>) -> Client {
    connect_with(mock, cert, Some(b"h2".to_vec())).await
}

pub async fn connect_with(
    mock: &MockApns,
    cert: Option<&PushCertificate>,
    alpn: Option<Vec<u8>>,
) -> Client {
    let tls = tls_to(mock, cert, alpn).await.unwrap();
    let (client, conn) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// One answer as the client saw it.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
    pub data_frames: usize,
    /// True when the HEADERS frame carried END_STREAM.
    pub end_on_headers: bool,
}

impl Answer {
    pub fn reason(&self) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        v.get("reason")?.as_str().map(str::to_owned)
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A request under construction.
pub struct Req {
    pub method: http::Method,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

pub fn push(device: &str) -> Req {
    Req {
        method: http::Method::POST,
        path: format!("/3/device/{device}"),
        headers: vec![
            ("apns-topic".into(), BUNDLE.into()),
            ("apns-push-type".into(), "alert".into()),
        ],
        body: br#"{"aps":{"alert":"hi"}}"#.to_vec(),
    }
}

impl Req {
    pub fn new(method: http::Method, path: &str) -> Req {
        Req {
            method,
            path: path.into(),
            headers: vec![],
            body: vec![],
        }
    }
    pub fn header(mut self, n: &str, v: &str) -> Req {
        self.headers.retain(|(name, _)| name != n);
        self.headers.push((n.into(), v.into()));
        self
    }
    pub fn add_header(mut self, n: &str, v: &str) -> Req {
        self.headers.push((n.into(), v.into()));
        self
    }
    pub fn without(mut self, n: &str) -> Req {
        self.headers.retain(|(name, _)| name != n);
        self
    }
    pub fn bearer(self, jwt: &str) -> Req {
        self.header("authorization", &format!("bearer {jwt}"))
    }
    pub fn body(mut self, b: impl Into<Vec<u8>>) -> Req {
        self.body = b.into();
        self
    }
    pub fn method(mut self, m: http::Method) -> Req {
        self.method = m;
        self
    }

    /// Starts the request and returns the response future without awaiting it.
    pub async fn start(self, client: &mut Client) -> Result<h2::client::ResponseFuture, h2::Error> {
        let ready = client.clone().ready().await?;
        *client = ready;
        let mut b = http::Request::builder()
            .method(self.method)
            .uri(format!("https://localhost{}", self.path));
        for (n, v) in &self.headers {
            b = b.header(n.as_str(), v.as_str());
        }
        let req = b.body(()).unwrap();
        let end = self.body.is_empty();
        let (resp, mut stream) = client.send_request(req, end)?;
        if !end {
            stream.send_data(Bytes::from(self.body), true)?;
        }
        Ok(resp)
    }

    pub async fn send(self, client: &mut Client) -> Result<Answer, h2::Error> {
        let resp = self.start(client).await?;
        read(resp).await
    }

    /// Sends and reads the answer, panicking on an HTTP/2 error.
    pub async fn answer(self, client: &mut Client) -> Answer {
        self.send(client).await.unwrap()
    }

    /// The answer's status, panicking on an HTTP/2 error.
    pub async fn status(self, client: &mut Client) -> u16 {
        self.answer(client).await.status
    }
}

pub async fn read(resp: h2::client::ResponseFuture) -> Result<Answer, h2::Error> {
    let resp = resp.await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut body = resp.into_body();
    let end_on_headers = body.is_end_stream();
    let mut data = Vec::new();
    let mut frames = 0;
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        if !chunk.is_empty() {
            frames += 1;
        }
        data.extend_from_slice(&chunk);
    }
    Ok(Answer {
        status,
        headers,
        body: data,
        data_frames: frames,
        end_on_headers,
    })
}

/// A started mock with one generated key and token 01 registered for BUNDLE.
pub struct Setup {
    pub mock: MockApns,
    pub p8: String,
}

impl Setup {
    pub async fn new() -> Setup {
        Self::with(MockApns::builder()).await
    }
    pub async fn with(builder: herald::mock::MockApnsBuilder) -> Setup {
        let mock = builder.start().await.unwrap();
        let p8 = mock.generate_key(KEY_ID, TEAM_ID).unwrap();
        mock.register_device(&token(1), BUNDLE);
        Setup { mock, p8 }
    }
    pub fn jwt(&self) -> String {
        self.jwt_at(now_secs())
    }
    /// A provider token for the set-up key, issued at `iat` (UNIX seconds).
    pub fn jwt_at(&self, iat: i64) -> String {
        sign_jwt(&self.p8, KEY_ID, TEAM_ID, iat)
    }
    pub async fn client(&self) -> Client {
        connect(&self.mock, None).await
    }
}

/// Waits until `f` holds, or panics after 30 s (a hang guard, not a budget).
pub async fn eventually(mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// ----- frame-level views, written here independently of the mock's frame layer -----

/// One HTTP/2 frame as seen on the wire.
#[derive(Debug, Clone)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

pub const SETTINGS: u8 = 0x4;
pub const GOAWAY: u8 = 0x7;
pub const HEADERS: u8 = 0x1;
pub const DATA: u8 = 0x0;
pub const RST_STREAM: u8 = 0x3;
pub const PING: u8 = 0x6;

impl Frame {
    /// GOAWAY: (last stream id, error code, debug data as text).
    pub fn goaway(&self) -> (u32, u32, String) {
        let p = &self.payload;
        let last = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0x7fff_ffff;
        let code = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
        (last, code, String::from_utf8_lossy(&p[8..]).into_owned())
    }
    /// SETTINGS_MAX_CONCURRENT_STREAMS in a SETTINGS frame.
    pub fn max_streams(&self) -> Option<u32> {
        self.payload
            .chunks_exact(6)
            .filter(|c| u16::from_be_bytes([c[0], c[1]]) == 3)
            .map(|c| u32::from_be_bytes([c[2], c[3], c[4], c[5]]))
            .next_back()
    }
}

/// Splits a byte stream into frames.
#[derive(Default)]
pub struct FrameParser {
    buf: Vec<u8>,
}

impl FrameParser {
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<Frame>) {
        self.buf.extend_from_slice(bytes);
        while self.buf.len() >= 9 {
            let len = u32::from_be_bytes([0, self.buf[0], self.buf[1], self.buf[2]]) as usize;
            if self.buf.len() < 9 + len {
                break;
            }
            let f: Vec<u8> = self.buf.drain(..9 + len).collect();
            out.push(Frame {
                kind: f[3],
                flags: f[4],
                stream: u32::from_be_bytes([f[5], f[6], f[7], f[8]]) & 0x7fff_ffff,
                payload: f[9..].to_vec(),
            });
        }
    }
}

/// Wraps the client's TLS stream and records every frame the server sends.
pub struct Sniff<T> {
    io: T,
    parser: FrameParser,
    pub frames: Arc<parking_lot::Mutex<Vec<Frame>>>,
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Sniff<T> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut this.io).poll_read(cx, buf);
        if let std::task::Poll::Ready(Ok(())) = &r {
            let mut out = Vec::new();
            this.parser.push(&buf.filled()[before..], &mut out);
            this.frames.lock().extend(out);
        }
        r
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Sniff<T> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

pub type Frames = Arc<parking_lot::Mutex<Vec<Frame>>>;

/// True when no GOAWAY is among the recorded frames.
pub fn no_goaway(frames: &Frames) -> bool {
    frames.lock().iter().all(|f| f.kind != GOAWAY)
}

async fn tls_to(
    mock: &MockApns,
    cert: Option<&PushCertificate>,
    alpn: Option<Vec<u8>>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    tls_named(mock, cert, alpn, "localhost").await
}

/// TLS to the mock, verifying its certificate for `name` (SNI and SAN check).
pub async fn tls_named(
    mock: &MockApns,
    cert: Option<&PushCertificate>,
    alpn: Option<Vec<u8>>,
    name: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(mock.ca_pem().as_bytes()) {
        roots.add(der.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match cert {
        None => builder.with_no_client_auth(),
        Some(c) => {
            let chain = vec![CertificateDer::from_pem_slice(c.cert_pem().as_bytes()).unwrap()];
            let key = PrivateKeyDer::from_pem_slice(c.key_pem().as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    config.alpn_protocols = alpn.into_iter().collect();
    let tcp = TcpStream::connect(mock.addr()).await?;
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(name.to_owned()).unwrap(), tcp)
        .await?;
    Ok(tls)
}

/// An h2 client for a server at `addr` whose CA is `ca_pem` (a mock in another process).
pub async fn connect_to(addr: std::net::SocketAddr, ca_pem: &str) -> Client {
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(der.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (client, conn) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// An h2 client authenticating with a DER certificate and PKCS#8 DER key.
pub async fn connect_der(mock: &MockApns, cert: Vec<u8>, key: Vec<u8>) -> Client {
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(mock.ca_pem().as_bytes()) {
        roots.add(der.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![CertificateDer::from(cert)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        )
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(mock.addr()).await.unwrap();
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (client, conn) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// Tries TLS (with an optional client certificate) and HTTP/2; `Err` when either fails.
pub async fn try_connect(
    mock: &MockApns,
    cert: Option<&PushCertificate>,
) -> Result<(Client, Frames), String> {
    let tls = tls_to(mock, cert, Some(b"h2".to_vec()))
        .await
        .map_err(|e| e.to_string())?;
    let frames: Frames = Default::default();
    let io = Sniff {
        io: tls,
        parser: FrameParser::default(),
        frames: frames.clone(),
    };
    let (client, conn) = h2::client::handshake(io).await.map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok((client, frames))
}

/// An h2 client whose received frames the test can inspect.
pub async fn connect_sniffed(mock: &MockApns, cert: Option<&PushCertificate>) -> (Client, Frames) {
    try_connect(mock, cert).await.unwrap()
}

/// Waits for a frame matching `f` among `frames`, up to 30 s (a hang guard).
pub async fn wait_frame(frames: &Frames, f: impl Fn(&Frame) -> bool) -> Frame {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(fr) = frames.lock().iter().find(|x| f(x)).cloned() {
            return fr;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "frame not seen: {:?}",
            frames.lock()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits for a GOAWAY among `frames`, up to 30 s (a hang guard).
pub async fn wait_goaway(frames: &Frames) -> Frame {
    wait_frame(frames, |f| f.kind == GOAWAY).await
}

/// A hand-driven HTTP/2 connection: frames written and read by the test itself, for behaviour a
/// well-behaved client library will not produce (ignoring the stream limit, no `:authority`).
pub struct Raw {
    tls: tokio_rustls::client::TlsStream<TcpStream>,
    parser: FrameParser,
    pending: std::collections::VecDeque<Frame>,
}

impl Raw {
    pub async fn connect(mock: &MockApns, alpn: Option<Vec<u8>>) -> Raw {
        use tokio::io::AsyncWriteExt;
        let mut tls = tls_to(mock, None, alpn).await.unwrap();
        tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        tls.write_all(&[0, 0, 0, SETTINGS, 0, 0, 0, 0, 0])
            .await
            .unwrap();
        tls.flush().await.unwrap();
        Raw {
            tls,
            parser: FrameParser::default(),
            pending: Default::default(),
        }
    }

    pub async fn write_frame(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        use tokio::io::AsyncWriteExt;
        let len = (payload.len() as u32).to_be_bytes();
        let mut f = vec![len[1], len[2], len[3], kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        self.tls.write_all(&f).await.unwrap();
        self.tls.flush().await.unwrap();
    }

    /// The next frame, or `None` at EOF / after 5 s.
    pub async fn next(&mut self) -> Option<Frame> {
        use tokio::io::AsyncReadExt;
        loop {
            if let Some(f) = self.pending.pop_front() {
                return Some(f);
            }
            let mut buf = [0u8; 16384];
            let n = tokio::time::timeout(Duration::from_secs(5), self.tls.read(&mut buf))
                .await
                .ok()?
                .ok()?;
            if n == 0 {
                return None;
            }
            let mut out = Vec::new();
            self.parser.push(&buf[..n], &mut out);
            self.pending.extend(out);
        }
    }

    /// Reads until a frame of `kind` (answering SETTINGS with ACKs on the way).
    pub async fn until(&mut self, kind: u8) -> Option<Frame> {
        while let Some(f) = self.next().await {
            if f.kind == SETTINGS && f.flags & 1 == 0 {
                self.write_frame(SETTINGS, 1, 0, &[]).await;
            }
            if f.kind == kind {
                return Some(f);
            }
        }
        None
    }

    /// HEADERS with literal, never-Huffman header fields (HPACK "literal without indexing").
    pub async fn headers(&mut self, stream: u32, fields: &[(&str, &str)], end_stream: bool) {
        let mut block = Vec::new();
        for (n, v) in fields {
            block.push(0x00);
            hpack_len(&mut block, n.len());
            block.extend_from_slice(n.as_bytes());
            hpack_len(&mut block, v.len());
            block.extend_from_slice(v.as_bytes());
        }
        let flags = 0x4 | if end_stream { 0x1 } else { 0 };
        self.write_frame(HEADERS, flags, stream, &block).await;
    }
}

fn hpack_len(out: &mut Vec<u8>, mut n: usize) {
    if n < 127 {
        out.push(n as u8);
        return;
    }
    out.push(127);
    n -= 127;
    while n >= 128 {
        out.push((n % 128 + 128) as u8);
        n /= 128;
    }
    out.push(n as u8);
}

/// A minimal HTTP CONNECT proxy on loopback: one tunnel per connection, counted; anything
/// but CONNECT is answered 405, a target it cannot reach 502.
pub async fn connect_proxy() -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tunnels = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = tunnels.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if inbound.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let target = head.split_whitespace().nth(1).unwrap_or("").to_owned();
                if !head.starts_with("CONNECT ") {
                    let _ = inbound
                        .write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                        .await;
                    return;
                }
                let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                    let _ = inbound.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    return;
                };
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = inbound
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await;
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    (addr, tunnels)
}
