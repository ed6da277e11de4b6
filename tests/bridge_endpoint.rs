//! The registration endpoint over a real socket: what an app may do, and every abuse refused
//! with nothing changed.
#![cfg(all(feature = "endpoint", feature = "mock"))]

mod bridge_support;

use std::net::SocketAddr;
use std::time::Duration;

use bridge_support::*;
use herald::bridge::endpoint::RegistrationEndpoint;
use herald::bridge::{Device, DeviceRegistry};

type Endpoint = RegistrationEndpoint<fn(&http::request::Parts) -> Option<String>>;

fn builder(
    registry: &DeviceRegistry,
) -> herald::bridge::endpoint::RegistrationEndpointBuilder<
    fn(&http::request::Parts) -> Option<String>,
> {
    RegistrationEndpoint::builder(
        registry.clone(),
        verifier as fn(&http::request::Parts) -> Option<String>,
    )
    .topic(BUNDLE)
}

/// A registry where bob owns token(2), and an endpoint serving it.
async fn setup_with(
    f: impl FnOnce(&DeviceRegistry) -> Endpoint,
) -> (DeviceRegistry, SocketAddr, tokio::task::JoinHandle<()>) {
    let registry = DeviceRegistry::in_memory();
    registry
        .register(Device::new(
            "bob",
            token(2),
            BUNDLE,
            herald::bridge::Environment::Sandbox,
        ))
        .unwrap();
    let (addr, server) = serve(f(&registry)).await;
    (registry, addr, server)
}

async fn setup() -> (DeviceRegistry, SocketAddr, tokio::task::JoinHandle<()>) {
    setup_with(|r| builder(r).build()).await
}

fn snapshot(registry: &DeviceRegistry) -> Vec<Device> {
    registry.all().unwrap()
}

/// Asserts the refusal and that the registry did not change.
macro_rules! assert_refused {
    ($registry:expr, $call:expr, $status:expr, $code:expr) => {{
        let before = snapshot(&$registry);
        let (status, body) = $call;
        assert_eq!(status, $status, "{body}");
        assert_eq!(body["error"], $code, "{body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(snapshot(&$registry), before, "nothing may change");
    }};
}

#[tokio::test]
async fn form_and_json_register_replace_and_remove() {
    let (registry, addr, _s) = setup().await;
    let (a, b) = (token(10), token(11));
    let (status, body) = form(addr, "alice", &format!("newToken={a}")).await;
    assert_eq!((status, body["result"].as_str()), (200, Some("registered")));
    assert_eq!(body["subject"], "alice");
    let json = format!(r#"{{"oldToken":"{a}","newToken":"{b}","subject":"alice"}}"#);
    let (status, body) = post(addr, Some("user-alice"), "application/json", &json).await;
    assert_eq!((status, body["result"].as_str()), (200, Some("replaced")));
    let tokens: Vec<_> = registry
        .devices("alice")
        .unwrap()
        .into_iter()
        .map(|d| d.token)
        .collect();
    assert_eq!(tokens, std::slice::from_ref(&b));
    let (status, body) = form(addr, "alice", &format!("oldToken={b}")).await;
    assert_eq!((status, body["result"].as_str()), (200, Some("removed")));
    assert!(registry.devices("alice").unwrap().is_empty());
}

#[tokio::test]
async fn uppercase_tokens_and_charset_parameters_are_accepted() {
    let (registry, addr, _s) = setup().await;
    let t = token(12).to_uppercase();
    let (status, _) = post(
        addr,
        Some("user-alice"),
        "application/x-www-form-urlencoded; charset=utf-8",
        &format!("newToken={t}&environment=production"),
    )
    .await;
    assert_eq!(status, 200);
    let d = registry.device(&token(12)).unwrap().unwrap();
    assert_eq!(d.environment, herald::bridge::Environment::Production);
}

#[tokio::test]
async fn missing_or_unknown_credentials_are_refused() {
    let (registry, addr, _s) = setup().await;
    let body = format!("newToken={}", token(10));
    assert_refused!(
        registry,
        post(addr, None, "application/x-www-form-urlencoded", &body).await,
        401,
        "unauthorized"
    );
    assert_refused!(
        registry,
        post(
            addr,
            Some("forged"),
            "application/x-www-form-urlencoded",
            &body
        )
        .await,
        401,
        "unauthorized"
    );
}

#[tokio::test]
async fn a_caller_cannot_claim_another_subject() {
    let (registry, addr, _s) = setup().await;
    assert_refused!(
        registry,
        form(
            addr,
            "mallory",
            &format!("subject=bob&newToken={}", token(10))
        )
        .await,
        403,
        "subject_mismatch"
    );
}

#[tokio::test]
async fn a_caller_cannot_replace_another_subjects_token() {
    let (registry, addr, _s) = setup().await;
    assert_refused!(
        registry,
        form(
            addr,
            "mallory",
            &format!("oldToken={}&newToken={}", token(2), token(66))
        )
        .await,
        403,
        "not_owner"
    );
}

#[tokio::test]
async fn a_caller_cannot_remove_another_subjects_token() {
    let (registry, addr, _s) = setup().await;
    assert_refused!(
        registry,
        form(addr, "mallory", &format!("oldToken={}", token(2))).await,
        403,
        "not_owner"
    );
}

#[tokio::test]
async fn a_caller_cannot_take_another_subjects_token() {
    let (registry, addr, _s) = setup().await;
    assert_refused!(
        registry,
        form(addr, "mallory", &format!("newToken={}", token(2))).await,
        403,
        "not_owner"
    );
    // Nor as the new side of a replacement of its own token.
    form(addr, "mallory", &format!("newToken={}", token(67))).await;
    assert_refused!(
        registry,
        form(
            addr,
            "mallory",
            &format!("oldToken={}&newToken={}", token(67), token(2))
        )
        .await,
        403,
        "not_owner"
    );
}

#[tokio::test]
async fn bad_tokens_are_refused() {
    let (registry, addr, _s) = setup().await;
    for bad in [
        "xyz",
        "abc",
        "zz",
        "ab",
        &"a".repeat(202),
        "ab%00cd",
        "ab cd ef 01",
    ] {
        assert_refused!(
            registry,
            form(addr, "alice", &format!("newToken={bad}")).await,
            400,
            "bad_token"
        );
    }
    assert_refused!(
        registry,
        form(addr, "alice", "").await,
        400,
        "missing_token"
    );
    assert_refused!(
        registry,
        form(
            addr,
            "alice",
            &format!("newToken={}&newToken={}", token(1), token(3))
        )
        .await,
        400,
        "duplicate_field"
    );
    assert_refused!(
        registry,
        form(addr, "alice", "newToken=%zz").await,
        400,
        "bad_form"
    );
}

#[tokio::test]
async fn unknown_topics_and_environments_are_refused() {
    let (registry, addr, _s) = setup().await;
    assert_refused!(
        registry,
        form(
            addr,
            "alice",
            &format!("newToken={}&topic=com.evil.app", token(10))
        )
        .await,
        400,
        "unknown_topic"
    );
    assert_refused!(
        registry,
        form(
            addr,
            "alice",
            &format!("newToken={}&environment=staging", token(10))
        )
        .await,
        400,
        "bad_environment"
    );
}

#[tokio::test]
async fn wrong_method_media_type_and_json_are_refused() {
    let (registry, addr, _s) = setup().await;
    let head = "GET /devices HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer user-alice\r\n\
                Connection: close\r\n\r\n";
    assert_refused!(
        registry,
        http(addr, head, b"").await,
        405,
        "method_not_allowed"
    );
    let body = format!("newToken={}", token(10));
    assert_refused!(
        registry,
        post(addr, Some("user-alice"), "text/plain", &body).await,
        415,
        "unsupported_media_type"
    );
    assert_refused!(
        registry,
        post(addr, Some("user-alice"), "application/json", "[1,2]").await,
        400,
        "bad_json"
    );
    assert_refused!(
        registry,
        post(
            addr,
            Some("user-alice"),
            "application/json",
            r#"{"newToken": 5}"#
        )
        .await,
        400,
        "bad_json"
    );
}

#[tokio::test]
async fn oversized_bodies_are_refused_declared_or_streamed() {
    let (registry, addr, _s) = setup_with(|r| builder(r).body_limit(256).build()).await;
    let big = format!("newToken={}&pad={}", token(10), "x".repeat(300));
    assert_refused!(
        registry,
        form(addr, "alice", &big).await,
        413,
        "body_too_large"
    );
    // Chunked, no Content-Length: refused while reading.
    let head = "POST /devices HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer user-alice\r\n\
                Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\
                Connection: close\r\n\r\n";
    let chunk = format!("{:x}\r\n{big}\r\n0\r\n\r\n", big.len());
    assert_refused!(
        registry,
        http(addr, head, chunk.as_bytes()).await,
        413,
        "body_too_large"
    );
}

#[tokio::test]
async fn each_caller_is_rate_limited() {
    let (registry, addr, _s) =
        setup_with(|r| builder(r).rate_limit(3, Duration::from_secs(60)).build()).await;
    for n in 0..3 {
        assert_eq!(
            form(addr, "alice", &format!("newToken={}", token(20 + n)))
                .await
                .0,
            200
        );
    }
    let before = snapshot(&registry);
    let head = format!(
        "POST /devices HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer user-alice\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        9 + 64
    );
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(format!("newToken={}", token(30)).as_bytes())
        .await
        .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.unwrap();
    assert!(raw.starts_with("HTTP/1.1 429"), "{raw}");
    assert!(raw.to_ascii_lowercase().contains("retry-after: "), "{raw}");
    assert!(raw.contains(r#""error":"rate_limited""#), "{raw}");
    assert_eq!(snapshot(&registry), before);
    // Another caller is not affected.
    assert_eq!(
        form(addr, "bob", &format!("newToken={}", token(31)))
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn repeated_failed_verifications_are_rate_limited_per_address() {
    let (registry, addr, _s) = setup_with(|r| {
        builder(r)
            .failed_auth_limit(2, Duration::from_secs(60))
            .build()
    })
    .await;
    let body = format!("newToken={}", token(10));
    for _ in 0..2 {
        assert_refused!(
            registry,
            post(
                addr,
                Some("guess"),
                "application/x-www-form-urlencoded",
                &body
            )
            .await,
            401,
            "unauthorized"
        );
    }
    assert_refused!(
        registry,
        post(
            addr,
            Some("guess"),
            "application/x-www-form-urlencoded",
            &body
        )
        .await,
        429,
        "rate_limited"
    );
}
