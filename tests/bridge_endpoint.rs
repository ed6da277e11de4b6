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
    // An invalid escape stays as written (WHATWG form rules): not hex, so not a token.
    assert_refused!(
        registry,
        form(addr, "alice", "newToken=%zz").await,
        400,
        "bad_token"
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

/// A JSON body is one object. serde's derive would also read an array as the fields in
/// declaration order (subject, oldToken, newToken, topic, environment): such a body would
/// register or replace tokens without naming a single field.
#[tokio::test]
async fn a_json_body_must_be_one_object_not_an_array_of_positional_fields() {
    let (registry, addr, _s) = setup().await;
    let positional = [
        (
            "alice",
            format!(r#"["alice", null, "{}", null, null]"#, token(10)),
        ),
        ("alice", format!(r#" ["alice",null,"{}"]"#, token(10))),
        (
            "bob",
            format!(r#"["bob", "{}", "{}"]"#, token(2), token(11)),
        ),
    ];
    for (caller, body) in &positional {
        assert_refused!(
            registry,
            post(
                addr,
                Some(&format!("user-{caller}")),
                "application/json",
                body
            )
            .await,
            400,
            "bad_json"
        );
    }
    // The object's own rules still hold: a repeated key is refused, unknown keys are ignored.
    let repeated = format!(
        r#"{{"newToken":"{}","newToken":"{}"}}"#,
        token(10),
        token(11)
    );
    assert_refused!(
        registry,
        post(addr, Some("user-alice"), "application/json", &repeated).await,
        400,
        "bad_json"
    );
    let extra = format!(r#"{{"newToken":"{}","device":"iPhone"}}"#, token(10));
    let (status, body) = post(addr, Some("user-alice"), "application/json", &extra).await;
    assert_eq!(
        (status, body["result"].as_str()),
        (200, Some("registered")),
        "{body}"
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

// ---------------------------------------------------------------------------------------------
// Hardening: Retry-After, deadlines, the connection cap, trusted proxies, graceful shutdown.
// Time-dependent tests run on tokio's paused clock: no sleeps, no real-time budget.

use herald::bridge::endpoint::{ForwardedHeader, ServeHandle, TrustedProxies, Verifier};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A raw answer: status, lowercase head, JSON body.
struct Answer {
    status: u16,
    head: String,
    json: serde_json::Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            (n.trim() == name).then(|| v.trim())
        })
    }

    fn retry_after(&self) -> u64 {
        self.header("retry-after")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no Retry-After in {}", self.head))
    }
}

async fn read_answer(mut s: impl tokio::io::AsyncRead + Unpin) -> Answer {
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Answer {
        status: head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        head: head.to_ascii_lowercase(),
        json: serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    }
}

/// A form POST with extra header lines (each ending in `\r\n`).
async fn send(addr: SocketAddr, bearer: &str, extra: &str, body: &str) -> Answer {
    let head = format!(
        "POST /devices HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {bearer}\r\n{extra}\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body.as_bytes()).await.unwrap();
    read_answer(s).await
}

fn new_token(n: u16) -> String {
    format!("newToken={}", token(n))
}

#[tokio::test(start_paused = true)]
async fn retry_after_rounds_the_per_subject_wait_up() {
    // One request per 1.9 s: the wait after a request is 1.9 s, which must read "2", not "1".
    let (_registry, addr, _s) = setup_with(|r| {
        builder(r)
            .rate_limit(1, Duration::from_millis(1900))
            .build()
    })
    .await;
    assert_eq!(
        send(addr, "user-alice", "", &new_token(40)).await.status,
        200
    );
    let refused = send(addr, "user-alice", "", &new_token(41)).await;
    assert_eq!(refused.status, 429, "{}", refused.json);
    assert_eq!(refused.retry_after(), 2);
    // 1 s (what the old rounding said) is not enough ...
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        send(addr, "user-alice", "", &new_token(41)).await.status,
        429
    );
    // ... but a client that waits what it was told is served.
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        send(addr, "user-alice", "", &new_token(41)).await.status,
        200
    );
}

#[tokio::test(start_paused = true)]
async fn retry_after_rounds_the_failed_auth_wait_up() {
    // Two failures per 3 s: after both, one more failure is allowed in 1.5 s, announced as 2.
    let (_registry, addr, _s) = setup_with(|r| {
        builder(r)
            .failed_auth_limit(2, Duration::from_secs(3))
            .build()
    })
    .await;
    assert_eq!(send(addr, "guess1", "", &new_token(40)).await.status, 401);
    assert_eq!(send(addr, "guess2", "", &new_token(40)).await.status, 401);
    // From now on refused before verification, even with good credentials, until then.
    let refused = send(addr, "guess3", "", &new_token(40)).await;
    assert_eq!(refused.status, 429, "{}", refused.json);
    assert_eq!(refused.retry_after(), 2);
    tokio::time::advance(Duration::from_millis(1400)).await;
    let blocked = send(addr, "user-alice", "", &new_token(40)).await;
    assert_eq!(blocked.status, 429);
    assert_eq!(blocked.retry_after(), 1, "0.1 s left rounds up to 1");
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        send(addr, "user-alice", "", &new_token(40)).await.status,
        200
    );
}

#[tokio::test(start_paused = true)]
async fn a_trickled_body_is_cut_off_at_the_request_deadline() {
    let (registry, addr, _s) =
        setup_with(|r| builder(r).request_timeout(Duration::from_secs(5)).build()).await;
    let before = snapshot(&registry);
    let started = tokio::time::Instant::now();
    let s = TcpStream::connect(addr).await.unwrap();
    let (read, mut write) = s.into_split();
    let head = "POST /devices HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer user-alice\r\n\
                Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 73\r\n\r\n";
    write.write_all(head.as_bytes()).await.unwrap();
    // One byte a second: 73 s for the body if nobody stopped it.
    let body = new_token(42);
    let trickle = tokio::spawn(async move {
        for b in body.bytes() {
            if write.write_all(&[b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let answer = read_answer(read).await;
    trickle.abort();
    assert_eq!(answer.status, 408, "{}", answer.head);
    assert_eq!(answer.json["error"], "request_timeout");
    assert_eq!(answer.header("connection"), Some("close"));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(6),
        "cut off after {took:?}, want the 5 s deadline"
    );
    assert_eq!(snapshot(&registry), before);
}

#[tokio::test(start_paused = true)]
async fn headers_that_never_finish_are_cut_off_at_the_request_deadline() {
    let (_registry, addr, _s) =
        setup_with(|r| builder(r).request_timeout(Duration::from_secs(5)).build()).await;
    let started = tokio::time::Instant::now();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /devices HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let answer = read_answer(s).await;
    assert_ne!(answer.status, 200);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(6),
        "closed after {took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn connections_over_the_cap_are_refused_at_once_with_retry_after() {
    let (_registry, addr, _s) = setup_with(|r| {
        builder(r)
            .max_connections(2)
            .overload_retry_after(Duration::from_millis(2500))
            .request_timeout(Duration::from_secs(30))
            .build()
    })
    .await;
    // Two clients hold their connections open without sending anything.
    let held = [
        TcpStream::connect(addr).await.unwrap(),
        TcpStream::connect(addr).await.unwrap(),
    ];
    let started = tokio::time::Instant::now();
    let refused = send(addr, "user-alice", "", &new_token(43)).await;
    assert_eq!(refused.status, 503, "{}", refused.head);
    assert_eq!(refused.json["error"], "overloaded");
    assert_eq!(refused.header("content-type"), Some("application/json"));
    assert_eq!(refused.retry_after(), 3, "2.5 s rounds up");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused after {:?}: it waited for a slot",
        started.elapsed()
    );
    // A slot that frees is used again.
    drop(held);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let answer = send(addr, "user-alice", "", &new_token(43)).await;
        if answer.status == 200 {
            break;
        }
        assert_eq!(answer.status, 503);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slots never freed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn behind_proxy(header: ForwardedHeader) -> impl FnOnce(&DeviceRegistry) -> Endpoint {
    move |r| {
        builder(r)
            .failed_auth_limit(2, Duration::from_secs(600))
            .trusted_proxies(TrustedProxies::new(header).trust("127.0.0.0/8").unwrap())
            .build()
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_one_attacker_does_not_lock_out_the_others() {
    for (header, attacker, spoofed, innocent) in [
        (
            ForwardedHeader::XForwardedFor,
            "X-Forwarded-For: 203.0.113.66\r\n",
            "X-Forwarded-For: 198.51.100.1, 203.0.113.66\r\n",
            "X-Forwarded-For: 203.0.113.7\r\n",
        ),
        (
            ForwardedHeader::Forwarded,
            "Forwarded: for=203.0.113.66;proto=https\r\n",
            "Forwarded: for=198.51.100.1\r\nForwarded: for=\"203.0.113.66:4711\"\r\n",
            "Forwarded: for=\"[2001:db8::7]\"\r\n",
        ),
    ] {
        let (_registry, addr, _s) = setup_with(behind_proxy(header)).await;
        for _ in 0..2 {
            assert_eq!(
                send(addr, "guess", attacker, &new_token(44)).await.status,
                401
            );
        }
        assert_eq!(
            send(addr, "guess", attacker, &new_token(44)).await.status,
            429
        );
        // The attacker is refused, even when it prepends an address of its choosing (the
        // proxy appends the real one to the right of it).
        assert_eq!(
            send(addr, "guess", spoofed, &new_token(44)).await.status,
            429,
            "{header:?}"
        );
        // Others behind the same proxy are not.
        assert_eq!(
            send(addr, "user-alice", innocent, &new_token(44))
                .await
                .status,
            200
        );
        assert_eq!(
            send(addr, "typo", innocent, &new_token(45)).await.status,
            401
        );
        assert_eq!(
            send(addr, "user-bob", innocent, &new_token(45))
                .await
                .status,
            200
        );
    }
}

#[tokio::test]
async fn forwarding_headers_from_untrusted_peers_are_ignored() {
    // Proxies are trusted, but not the loopback peer the requests come from.
    let (_registry, addr, _s) = setup_with(|r| {
        builder(r)
            .failed_auth_limit(2, Duration::from_secs(600))
            .trusted_proxies(
                TrustedProxies::new(ForwardedHeader::XForwardedFor)
                    .trust("10.0.0.0/8")
                    .unwrap(),
            )
            .build()
    })
    .await;
    for n in 0..2 {
        let spoof = format!("X-Forwarded-For: 192.0.2.{n}\r\n");
        assert_eq!(
            send(addr, "guess", &spoof, &new_token(46)).await.status,
            401
        );
    }
    // Rotating the claimed address does not escape the limit: the socket address counts.
    let spoof = "X-Forwarded-For: 192.0.2.99\r\n";
    assert_eq!(send(addr, "guess", spoof, &new_token(46)).await.status, 429);
    assert_eq!(
        send(addr, "user-alice", "", &new_token(46)).await.status,
        429
    );
}

/// A verifier that holds each request until the test lets it through.
#[derive(Clone)]
struct Gate {
    entered: Arc<tokio::sync::Semaphore>,
    pass: Arc<tokio::sync::Semaphore>,
}

impl Verifier for Gate {
    async fn verify(&self, request: &http::request::Parts) -> Option<String> {
        self.entered.add_permits(1);
        self.pass.acquire().await.ok()?.forget();
        verifier(request)
    }
}

use std::sync::Arc;

async fn gated_server(
    path: &std::path::Path,
    grace_test: bool,
) -> (Gate, SocketAddr, ServeHandle, tokio::task::JoinHandle<()>) {
    let registry = DeviceRegistry::open(path).unwrap();
    let gate = Gate {
        entered: Arc::new(tokio::sync::Semaphore::new(0)),
        pass: Arc::new(tokio::sync::Semaphore::new(0)),
    };
    let endpoint = RegistrationEndpoint::builder(registry, gate.clone())
        .topic(BUNDLE)
        .request_timeout(Duration::from_secs(if grace_test { 600 } else { 10 }))
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = endpoint.serve(listener);
    let handle = server.handle();
    assert_eq!(handle.local_addr(), Some(addr));
    (gate, addr, handle, tokio::spawn(server))
}

#[tokio::test]
async fn shutdown_finishes_requests_in_flight_then_releases_the_registry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("devices.redb");
    let (gate, addr, handle, task) = gated_server(&path, false).await;
    // An idle keep-alive connection, and a request held inside the verifier.
    let idle = TcpStream::connect(addr).await.unwrap();
    let in_flight = tokio::spawn(async move { send(addr, "user-alice", "", &new_token(47)).await });
    gate.entered.acquire().await.unwrap().forget();

    let shutdown = tokio::spawn({
        let handle = handle.clone();
        async move { handle.shutdown(Duration::from_secs(60)).await }
    });
    // New connections are refused once the server stopped listening.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).await.is_ok() {
        assert!(std::time::Instant::now() < deadline, "still accepting");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!handle.is_shut_down(), "a request is still in flight");
    // The idle connection is closed without waiting for the grace period.
    assert_eq!(read_answer(idle).await.status, 0);

    gate.pass.add_permits(1);
    let answer = in_flight.await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.json);
    let report = shutdown.await.unwrap();
    assert_eq!((report.finished, report.aborted), (2, 0));
    task.await.unwrap();
    // Nothing holds the database any more: it opens again, with the registration in it.
    let reopened = DeviceRegistry::open(&path).unwrap();
    assert_eq!(reopened.devices("alice").unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn shutdown_cuts_off_requests_past_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("devices.redb");
    let (gate, addr, handle, task) = gated_server(&path, true).await;
    let in_flight = tokio::spawn(async move { send(addr, "user-alice", "", &new_token(48)).await });
    gate.entered.acquire().await.unwrap().forget();
    let started = tokio::time::Instant::now();
    let report = handle.shutdown(Duration::from_secs(3)).await;
    assert_eq!((report.finished, report.aborted), (0, 1));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(4),
        "{took:?}"
    );
    // The client gets no answer (the connection closes), and nothing was registered.
    assert_eq!(in_flight.await.unwrap().status, 0);
    task.await.unwrap();
    assert!(handle.is_shut_down());
    let reopened = DeviceRegistry::open(&path).unwrap();
    assert!(reopened.devices("alice").unwrap().is_empty());
}
