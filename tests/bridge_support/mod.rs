//! Shared by the bridge's integration tests: a raw HTTP/1.1 client (no herald code), and a
//! harness wiring mock APNs → client → sink → center ← registry ← endpoint over real sockets.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use herald::apns::{ApnsClient, ApnsClientBuilder, Endpoint, Payload, TokenKey};
use herald::bridge::endpoint::RegistrationEndpoint;
use herald::bridge::{
    ApnsSink, ApnsSinkBuilder, DeviceRegistry, Forwarding, Message, RegistrySubscription,
    SinkMetrics,
};
use herald::mock::MockApns;
use herald::{Notification, NotificationCenter};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const KEY_ID: &str = "ABC123DEFG";
pub const TEAM_ID: &str = "TEAM123456";
pub const BUNDLE: &str = "com.example.app";

pub fn token(n: u16) -> String {
    format!("{n:04x}").repeat(16)
}

/// One HTTP/1.1 exchange over a fresh connection; returns the status and the JSON body.
pub async fn http(addr: SocketAddr, raw_head: &str, body: &[u8]) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(raw_head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    let json = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
    (status, json)
}

/// POSTs a body with a bearer token (None: no Authorization header).
pub async fn post(
    addr: SocketAddr,
    bearer: Option<&str>,
    content_type: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let auth = bearer
        .map(|b| format!("Authorization: Bearer {b}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "POST /devices HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    http(addr, &head, body.as_bytes()).await
}

/// Form POST as the caller `user-<subject>`.
pub async fn form(addr: SocketAddr, subject: &str, body: &str) -> (u16, serde_json::Value) {
    post(
        addr,
        Some(&format!("user-{subject}")),
        "application/x-www-form-urlencoded",
        body,
    )
    .await
}

/// The verifier used by the tests: `Authorization: Bearer user-<subject>`.
pub fn verifier(req: &http::request::Parts) -> Option<String> {
    let auth = req.headers.get("authorization")?.to_str().ok()?;
    let subject = auth.strip_prefix("Bearer user-")?;
    (!subject.is_empty()).then(|| subject.to_owned())
}

/// Serves an endpoint on a free loopback port.
pub async fn serve(
    endpoint: RegistrationEndpoint<fn(&http::request::Parts) -> Option<String>>,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (addr, tokio::spawn(endpoint.serve(listener)))
}

#[derive(Debug, Clone)]
pub struct Shipped {
    pub user: String,
    pub order: u64,
}
impl Notification for Shipped {}

pub struct Harness {
    pub mock: MockApns,
    pub center: NotificationCenter,
    pub registry: DeviceRegistry,
    pub sink: ApnsSink,
    pub addr: SocketAddr,
    pub forwarding: Forwarding,
    pub cleanup: RegistrySubscription,
    server: tokio::task::JoinHandle<()>,
}

/// A client of `mock`, with the mock's key.
pub fn client_of(mock: &MockApns) -> ApnsClient {
    client_builder_of(mock, KEY_ID, TEAM_ID).build().unwrap()
}

/// A client builder for `mock`: its URL and CA, and a key the mock made for `key_id` of
/// `team_id`.
pub fn client_builder_of(mock: &MockApns, key_id: &str, team_id: &str) -> ApnsClientBuilder {
    let p8 = mock.generate_key(key_id, team_id).unwrap();
    ApnsClient::builder()
        .endpoint(
            Endpoint::custom(&mock.url())
                .unwrap()
                .with_ca_pem(mock.ca_pem()),
        )
        .token_auth(TokenKey::from_p8_pem(p8, key_id, team_id).unwrap())
}

/// A sink that pushes through `client` to `registry`'s devices of `topic`, configured further
/// by `configure`.
pub fn sink_for(
    client: ApnsClient,
    registry: &DeviceRegistry,
    topic: &str,
    configure: impl FnOnce(ApnsSinkBuilder) -> ApnsSinkBuilder,
) -> ApnsSink {
    configure(
        ApnsSink::builder(client)
            .registry(registry.clone())
            .topic(topic),
    )
    .build()
}

/// The tokens `subject` has registered.
pub fn tokens_of_subject(registry: &DeviceRegistry, subject: &str) -> Vec<String> {
    registry
        .devices(subject)
        .unwrap()
        .into_iter()
        .map(|d| d.token)
        .collect()
}

impl Harness {
    pub async fn start(registry: DeviceRegistry) -> Harness {
        Harness::start_with(registry, |b| b).await
    }

    /// With the sink configured further by `configure`.
    pub async fn start_with(
        registry: DeviceRegistry,
        configure: impl FnOnce(ApnsSinkBuilder) -> ApnsSinkBuilder,
    ) -> Harness {
        let mock = MockApns::start().await.unwrap();
        let client = client_of(&mock);
        let center = NotificationCenter::new();
        let cleanup = registry.observe(&center);
        let sink = sink_for(client, &registry, BUNDLE, configure);
        let forwarding = center
            .observer::<Shipped>()
            .forward(sink.map(|n: &Shipped| {
                Message::to_subject(
                    &n.user,
                    Payload::alert(format!("Order {} shipped", n.order)),
                )
            }));
        let endpoint = RegistrationEndpoint::builder(
            registry.clone(),
            verifier as fn(&http::request::Parts) -> Option<String>,
        )
        .topic(BUNDLE)
        .build();
        let (addr, server) = serve(endpoint).await;
        Harness {
            mock,
            center,
            registry,
            sink,
            addr,
            forwarding,
            cleanup,
            server,
        }
    }

    /// Waits until `sent` pushes have all been answered.
    pub async fn settle(&self, sent: u64) -> SinkMetrics {
        settle(&self.sink, sent).await
    }

    pub fn tokens(&self, subject: &str) -> Vec<String> {
        tokens_of_subject(&self.registry, subject)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub async fn settle(sink: &ApnsSink, sent: u64) -> SinkMetrics {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = sink.metrics();
        if m.sent >= sent && m.in_flight == 0 {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "pushes not settled: {m:?}, want {sent} sent"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
