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
    let key = PrivatePkcs8KeyDer::from_pem_slice(p8_pem.as_bytes()).unwrap();
    let rng = SystemRandom::new();
    let alg = if der {
        &ECDSA_P256_SHA256_ASN1_SIGNING
    } else {
        &ECDSA_P256_SHA256_FIXED_SIGNING
    };
    let pair = EcdsaKeyPair::from_pkcs8(alg, key.secret_pkcs8_der(), &rng).unwrap();
    let h = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"ES256","kid":"{kid}"}}"#));
    let c = URL_SAFE_NO_PAD.encode(format!(r#"{{"iss":"{iss}","iat":{iat}}}"#));
    let signed = format!("{h}.{c}");
    let sig = pair.sign(&rng, signed.as_bytes()).unwrap();
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
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
        sign_jwt(&self.p8, KEY_ID, TEAM_ID, now_secs())
    }
    pub async fn client(&self) -> Client {
        connect(&self.mock, None).await
    }
}

/// Waits until `f` holds, or panics after 5 s.
pub async fn eventually(mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached in 5 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
