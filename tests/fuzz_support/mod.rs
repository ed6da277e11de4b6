//! One entry point per parser a remote peer (or a file from one) feeds, shared by the proptest
//! smoke run (`tests/fuzz_smoke.rs`) and the libFuzzer targets (`fuzz/`). Each entry point
//! takes raw bytes and asserts that the input yields a typed answer and never a panic.
#![allow(dead_code, unreachable_pub)]

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use herald::apns::{ApnsClient, Certificate, Endpoint, ErrorKind, Push, RetryPolicy, TokenKey};
use herald::bridge::DeviceRegistry;
use herald::bridge::endpoint::{ForwardedHeader, RegistrationEndpoint, TrustedProxies};
use http::{HeaderMap, HeaderName, HeaderValue};
use parking_lot::Mutex;

/// A tiny cursor over fuzz input: pieces of it as lengths, bytes and strings.
pub struct Input<'a>(pub &'a [u8]);

impl<'a> Input<'a> {
    pub fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    pub fn bytes(&mut self, max: usize) -> &'a [u8] {
        let n = (self.byte() as usize).min(max).min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }

    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

// ----- registration bodies (form and JSON), device tokens, through the endpoint -----

type Verify = fn(&http::request::Parts) -> Option<String>;

fn verify(parts: &http::request::Parts) -> Option<String> {
    let auth = parts.headers.get("authorization")?.to_str().ok()?;
    Some(auth.strip_prefix("Bearer user-")?.to_owned())
}

fn endpoint() -> &'static RegistrationEndpoint<Verify> {
    static E: OnceLock<RegistrationEndpoint<Verify>> = OnceLock::new();
    E.get_or_init(|| {
        RegistrationEndpoint::builder(DeviceRegistry::in_memory(), verify as Verify)
            .topic("com.example.app")
            .topic("com.example.app.watch")
            .rate_limit(u32::MAX, std::time::Duration::from_secs(1))
            .failed_auth_limit(u32::MAX, std::time::Duration::from_secs(1))
            .build()
    })
}

/// A registration request: the first byte picks the content type and the credentials, the
/// rest is the body.
pub fn registration(data: &[u8]) {
    let mut input = Input(data);
    let selector = input.byte();
    let content_type: &[u8] = match selector % 4 {
        0 => b"application/x-www-form-urlencoded",
        1 => b"application/json; charset=utf-8",
        2 => b"application/x-www-form-urlencoded;charset=utf-8",
        _ => input.bytes(40),
    };
    let body = Bytes::copy_from_slice(input.rest());
    let mut request = http::Request::post("/devices");
    if let Ok(value) = HeaderValue::from_bytes(content_type) {
        request = request.header("content-type", value);
    }
    if selector & 0x80 == 0 {
        request = request.header("authorization", format!("Bearer user-u{}", selector % 7));
    }
    let request = request.body(http_body_util::Full::new(body)).unwrap();
    let response = runtime().block_on(endpoint().handle(request, IpAddr::from([192, 0, 2, 1])));
    assert!(
        [200, 400, 401, 403, 404, 408, 413, 415, 429, 503].contains(&response.status().as_u16()),
        "unexpected status {}",
        response.status()
    );
    assert_eq!(
        response.headers().get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/json"[..])
    );
}

/// A device token and topic as the client's `Push` builder validates them.
pub fn device_token(data: &[u8]) {
    let mut input = Input(data);
    let token = String::from_utf8_lossy(input.bytes(255)).into_owned();
    let topic = String::from_utf8_lossy(input.rest()).into_owned();
    match Push::builder(token.clone(), topic).build() {
        Ok(push) => {
            assert!(!push.device_token().is_empty());
            assert!(push.device_token().bytes().all(|b| b.is_ascii_hexdigit()));
        }
        Err(e) => assert_eq!(e.kind(), ErrorKind::InvalidPush, "{token:?}: {e}"),
    }
}

/// `Forwarded` / `X-Forwarded-For` values from a trusted proxy, or from anyone.
pub fn forwarded(data: &[u8]) {
    let mut input = Input(data);
    let selector = input.byte();
    let (header, name) = if selector & 1 == 0 {
        (ForwardedHeader::Forwarded, "forwarded")
    } else {
        (ForwardedHeader::XForwardedFor, "x-forwarded-for")
    };
    let proxies = TrustedProxies::new(header)
        .trust("10.0.0.0/8")
        .unwrap()
        .trust("fd00::/8")
        .unwrap();
    let mut headers = HeaderMap::new();
    while !input.0.is_empty() {
        if let Ok(v) = HeaderValue::from_bytes(input.bytes(200)) {
            headers.append(HeaderName::from_static(name), v);
        }
    }
    let untrusted: IpAddr = [203, 0, 113, 9].into();
    assert_eq!(proxies.client_address(untrusted, &headers), untrusted);
    let trusted: IpAddr = [10, 0, 0, 1].into();
    let _ = proxies.client_address(trusted, &headers);
}

// ----- credentials: .p8, .p12, PEM -----

pub fn p8(data: &[u8]) {
    for result in [
        TokenKey::from_p8_pem(data, "ABC1234567", "TEAM123456"),
        TokenKey::from_pkcs8_der(data, "ABC1234567", "TEAM123456"),
    ] {
        if let Err(e) = result {
            assert_eq!(e.kind(), ErrorKind::BadKey, "{e}");
        }
    }
}

pub fn p12(data: &[u8]) {
    let mut input = Input(data);
    let password = String::from_utf8_lossy(input.bytes(16)).into_owned();
    if let Err(e) = Certificate::from_p12(input.rest(), &password) {
        assert!(
            matches!(
                e.kind(),
                ErrorKind::BadCertificate
                    | ErrorKind::WrongPassword
                    | ErrorKind::BadKey
                    | ErrorKind::CertificateExpired
            ),
            "{e}"
        );
    }
}

pub fn pem(data: &[u8]) {
    let mut input = Input(data);
    let split = (input.byte() as usize * 8).min(input.0.len());
    let (cert, key) = input.rest().split_at(split);
    match Certificate::from_pem(cert, key) {
        Ok(c) => {
            let _ = (
                c.environments(),
                c.topics(),
                c.bundle_id(),
                c.covers_topic("a.b"),
            );
        }
        Err(e) => assert!(
            matches!(
                e.kind(),
                ErrorKind::BadCertificate | ErrorKind::BadKey | ErrorKind::CertificateExpired
            ),
            "{e}"
        ),
    }
}

// ----- APNs responses: status, headers and body as the client reads them off HTTP/2 -----

/// One answer the server gives to every request until changed.
#[derive(Clone, Default)]
struct Script {
    status: u16,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
}

struct ResponseHarness {
    script: Arc<Mutex<Script>>,
    client: ApnsClient,
}

fn response_harness() -> &'static ResponseHarness {
    static H: OnceLock<ResponseHarness> = OnceLock::new();
    H.get_or_init(|| runtime().block_on(start_response_server()))
}

async fn start_response_server() -> ResponseHarness {
    use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = Arc::new(Mutex::new(Script {
        status: 200,
        ..Script::default()
    }));
    let serving = script.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let script = serving.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut conn) = h2::server::handshake(tls).await else {
                    return;
                };
                while let Some(Ok((request, mut respond))) = conn.accept().await {
                    drop(request);
                    let s = script.lock().clone();
                    let mut response = http::Response::builder().status(s.status);
                    for (n, v) in &s.headers {
                        response = response.header(n, v);
                    }
                    let Ok(response) = response.body(()) else {
                        continue;
                    };
                    match respond.send_response(response, s.body.is_empty()) {
                        Ok(mut stream) if !s.body.is_empty() => {
                            let _ = stream.send_data(s.body.clone(), true);
                        }
                        _ => {}
                    }
                }
            });
        }
    });
    let doc = ring::signature::EcdsaKeyPair::generate_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &ring::rand::SystemRandom::new(),
    )
    .unwrap();
    let client = ApnsClient::builder()
        .endpoint(
            Endpoint::custom(&format!("https://127.0.0.1:{port}"))
                .unwrap()
                .with_ca_pem(cert.pem()),
        )
        .token_auth(TokenKey::from_pkcs8_der(doc.as_ref(), "ABC1234567", "TEAM123456").unwrap())
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    ResponseHarness { script, client }
}

/// Headers h2 refuses to send (connection-specific) or that would break the exchange itself.
const UNSENDABLE: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "content-length",
];

/// An APNs answer: the first two bytes are the status (200–999), then header name/value
/// pairs, then the body.
pub fn apns_response(data: &[u8]) {
    let mut input = Input(data);
    let status = 200 + (u16::from_be_bytes([input.byte(), input.byte()]) % 800);
    let mut headers = Vec::new();
    for _ in 0..(input.byte() % 6) {
        let name = HeaderName::from_bytes(input.bytes(24));
        let value = HeaderValue::from_bytes(input.bytes(64));
        if let (Ok(n), Ok(v)) = (name, value)
            && !UNSENDABLE.contains(&n.as_str())
        {
            headers.push((n, v));
        }
    }
    let body = Bytes::copy_from_slice(input.rest());
    let harness = response_harness();
    // One exchange at a time: the script is shared by every caller (tests run in parallel).
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _exclusive = ONE_AT_A_TIME.lock();
    *harness.script.lock() = Script {
        status,
        headers,
        body,
    };
    let push = Push::builder("ab".repeat(32), "com.example.app")
        .raw_payload(br#"{"aps":{"alert":"x"}}"#.to_vec())
        .build()
        .unwrap();
    let outcome = runtime().block_on(harness.client.send(push));
    if status == 200 {
        assert!(outcome.is_accepted(), "200 must be accepted: {outcome:?}");
    } else {
        assert!(!outcome.is_accepted(), "{status} accepted: {outcome:?}");
    }
}
