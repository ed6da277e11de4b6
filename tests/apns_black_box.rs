//! The APNs client and mock from the outside: black-box tests written from the issues alone
//! (issues 4 and 5, with `../shared/APNS.md` and the public docs), the client (feature `apns`)
//! against the mock APNs server (feature `mock`), each pinning one behaviour a user relies on.
//! Only public API; real HTTP/2 over TLS on loopback.
//!
//! Timing: no wall-clock budgets. Token ages move with the injectable clocks
//! (`MockClock::advance` and `TokenKey::advance_clock`), never with real sleeps; the only real
//! waits are request timeouts that must fire (checked from below only) and short retry backoffs.
#![cfg(all(feature = "apns", feature = "mock"))]

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use herald::apns::{
    ApnsClient, ApnsClientBuilder, Broadcast, Certificate, ChannelId, Endpoint, ErrorKind,
    Expiration, Failed, Payload, Priority, Push, PushOutcome, PushType, Reason, RetryPolicy,
    TokenKey,
};
use herald::mock::{AuthKind, Fault, MockApns, MockApnsBuilder, MockClock};

const BUNDLE: &str = "com.example.app";
const KEY_ID: &str = "ABC123DEFG";
const TEAM: &str = "TEAM123456";

fn dev(i: usize) -> String {
    format!("{:064x}", 0xa0_0000 + i)
}

struct Env {
    mock: MockApns,
    key: TokenKey,
    p8: String,
}

async fn env_with(builder: MockApnsBuilder) -> Env {
    let mock = builder.start().await.unwrap();
    let p8 = mock.generate_key(KEY_ID, TEAM).unwrap();
    let key = TokenKey::from_p8_pem(&p8, KEY_ID, TEAM).unwrap();
    Env { mock, key, p8 }
}

async fn env() -> Env {
    env_with(MockApns::builder().accept_unknown_tokens(true)).await
}

/// An environment whose mock runs on a clock the test moves.
async fn clocked_env() -> (MockClock, Env) {
    let clock = MockClock::starting_now();
    let e = env_with(
        MockApns::builder()
            .clock(clock.clone())
            .accept_unknown_tokens(true),
    )
    .await;
    (clock, e)
}

/// An environment whose mock serves one stream per connection.
async fn single_stream_env() -> Env {
    env_with(
        MockApns::builder()
            .accept_unknown_tokens(true)
            .max_streams(1),
    )
    .await
}

fn endpoint(mock: &MockApns) -> Endpoint {
    Endpoint::custom(&mock.url())
        .unwrap()
        .with_ca_pem(mock.ca_pem())
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        initial_backoff: Duration::from_millis(2),
        max_backoff: Duration::from_millis(10),
    }
}

fn client_with(mock: &MockApns, key: &TokenKey) -> ApnsClientBuilder {
    ApnsClient::builder()
        .endpoint(endpoint(mock))
        .token_auth(key.clone())
        .retry(fast_retries())
}

fn client(e: &Env) -> ApnsClientBuilder {
    client_with(&e.mock, &e.key)
}

/// A client with the fast backoffs but at most `max_retries` retries.
fn client_retrying(e: &Env, max_retries: u32) -> ApnsClient {
    client(e)
        .retry(RetryPolicy {
            max_retries,
            ..fast_retries()
        })
        .build()
        .unwrap()
}

/// The lines of a PEM that carry key material (not the armour, not short lines).
fn key_material_lines(pem: &str) -> Vec<&str> {
    pem.lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 16)
        .collect()
}

fn alert(token: &str) -> Push {
    Push::builder(token, BUNDLE)
        .payload(&Payload::alert("hello"))
        .unwrap()
        .build()
        .unwrap()
}

/// The recorded requests that carried this apns-id.
fn attempts_of(mock: &MockApns, apns_id: &str) -> Vec<herald::mock::RecordedRequest> {
    mock.pushes()
        .into_iter()
        .filter(|r| r.header("apns-id") == Some(apns_id))
        .collect()
}

fn bearer(r: &herald::mock::RecordedRequest) -> String {
    r.header("authorization")
        .expect("an authorization header")
        .to_owned()
}

/// (header, claims) of a `bearer <jwt>` value, decoded as strict JWS.
fn jwt_parts(bearer: &str) -> (serde_json::Value, serde_json::Value, Vec<u8>) {
    let jwt = bearer.strip_prefix("bearer ").expect("bearer scheme");
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "{jwt}");
    let d = |s: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .expect("strict base64url")
    };
    (
        serde_json::from_slice(&d(parts[0])).unwrap(),
        serde_json::from_slice(&d(parts[1])).unwrap(),
        d(parts[2]),
    )
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Moves the mock's clock and the key's clock together.
fn advance(clock: &MockClock, key: &TokenKey, by: Duration) {
    clock.advance(by);
    key.advance_clock(by);
}

// ===================================================================================== secrets

#[tokio::test]
async fn jwts_never_appear_in_debug_display_or_errors() {
    let (clock, e) = clocked_env().await;
    let builder = client(&e);
    let builder_debug = format!("{builder:?}");
    let c = builder.build().unwrap();
    assert!(c.send(alert(&dev(1))).await.is_accepted());
    let jwt = bearer(&e.mock.pushes()[0]);
    let jwt = jwt.strip_prefix("bearer ").unwrap().to_owned();
    let signature = jwt.rsplit('.').next().unwrap().to_owned();
    // Make the next answer a token rejection: the mock's clock runs two hours ahead.
    clock.advance(Duration::from_secs(2 * 3600));
    let outcome = c.send(alert(&dev(2))).await;
    assert_eq!(outcome.reason(), Some(&Reason::ExpiredProviderToken));
    let rejected_jwt = bearer(e.mock.pushes().last().unwrap());
    let mut texts = vec![
        builder_debug,
        format!("{c:?}"),
        format!("{:?}", e.key),
        format!("{outcome:?}"),
    ];
    // A failure that carries an HTTP/2 error as its source.
    e.mock.script(Fault::DropConnection);
    let lost = c.send(alert(&dev(3))).await;
    if let Some(err) = lost.error() {
        texts.push(format!("{err:?}"));
        texts.push(err.to_string());
    }
    texts.push(format!("{lost:?}"));
    let p8_body = key_material_lines(&e.p8);
    for text in &texts {
        assert!(!text.contains(&jwt), "a JWT in {text}");
        assert!(!text.contains(&signature), "a JWT signature in {text}");
        assert!(!text.contains(rejected_jwt.trim_start_matches("bearer ")));
        for line in &p8_body {
            assert!(!text.contains(line), "key material in {text}");
        }
    }
}

// ============================================================================ token auth (.p8)

#[tokio::test]
async fn tokens_are_minted_lazily_once_and_reused_on_a_connection() {
    let e = env().await;
    let c = client(&e).build().unwrap();
    assert_eq!(e.key.tokens_minted(), 0, "minted before the first push");
    for i in 0..3 {
        assert!(c.send(alert(&dev(i))).await.is_accepted());
    }
    assert_eq!(e.key.tokens_minted(), 1);
    let log = e.mock.pushes();
    let first = bearer(&log[0]);
    assert!(log.iter().all(|r| bearer(r) == first));
    let (header, claims, sig) = jwt_parts(&first);
    assert_eq!(header, serde_json::json!({"alg": "ES256", "kid": KEY_ID}));
    assert_eq!(claims["iss"], TEAM);
    let iat = claims["iat"].as_i64().unwrap();
    assert!((iat - unix_now()).abs() <= 60, "iat {iat} is not now");
    assert_eq!(sig.len(), 64, "raw r||s signature");
    let stats = e.mock.stats();
    assert!(stats.connections.values().all(|c| c.tokens == 1));
    assert_eq!(
        log[0].auth,
        AuthKind::Token {
            key_id: Some(KEY_ID.into()),
            team_id: Some(TEAM.into())
        }
    );
}

/// APNS.md §3: "Mint it lazily at first use (a timer started early is a known cause of
/// TooManyProviderTokenUpdates)": a key created long before its first push mints then, not at
/// creation.
#[tokio::test]
async fn a_key_created_early_mints_its_token_at_the_first_push() {
    let (clock, e) = clocked_env().await;
    advance(&clock, &e.key, Duration::from_secs(45 * 60));
    let c = client(&e).build().unwrap();
    assert!(c.send(alert(&dev(1))).await.is_accepted());
    let (_, claims, _) = jwt_parts(&bearer(&e.mock.pushes()[0]));
    let iat = claims["iat"].as_i64().unwrap();
    let expected = unix_now() + 45 * 60;
    assert!(
        (iat - expected).abs() <= 60,
        "iat {iat}: the token was not minted at the first push (expected about {expected})"
    );
}

#[tokio::test]
async fn a_connection_keeps_its_token_for_49_minutes_and_refreshes_at_50() {
    let (clock, e) = clocked_env().await;
    let c = client(&e).build().unwrap();
    assert!(c.send(alert(&dev(1))).await.is_accepted());
    advance(&clock, &e.key, Duration::from_secs(49 * 60));
    assert!(c.send(alert(&dev(2))).await.is_accepted());
    advance(&clock, &e.key, Duration::from_secs(60));
    assert!(c.send(alert(&dev(3))).await.is_accepted());
    let log = e.mock.pushes();
    assert_eq!(log.len(), 3);
    assert_eq!(
        bearer(&log[0]),
        bearer(&log[1]),
        "refreshed before 50 minutes"
    );
    assert_ne!(
        bearer(&log[1]),
        bearer(&log[2]),
        "not refreshed at 50 minutes"
    );
    let iat = |r| jwt_parts(&bearer(r)).1["iat"].as_i64().unwrap();
    assert!(iat(&log[2]) - iat(&log[0]) >= 50 * 60 - 1);
    assert_eq!(e.key.tokens_minted(), 2);
    // All on one connection, which adopted two tokens.
    assert_eq!(log[0].connection, log[2].connection);
    let stats = e.mock.stats();
    assert_eq!(stats.connections[&log[0].connection].tokens, 2);
    assert!(!stats.by_reason.contains_key("TooManyProviderTokenUpdates"));
}

#[tokio::test]
async fn after_an_idle_hour_the_next_push_carries_a_fresh_token() {
    let (clock, e) = clocked_env().await;
    let c = client(&e).retry(RetryPolicy::none()).build().unwrap();
    assert!(c.send(alert(&dev(1))).await.is_accepted());
    advance(&clock, &e.key, Duration::from_secs(70 * 60));
    let o = c.send(alert(&dev(2))).await;
    assert!(o.is_accepted(), "{o:?}");
    let stats = e.mock.stats();
    assert!(
        !stats.by_reason.contains_key("ExpiredProviderToken"),
        "{stats:?}"
    );
    assert_eq!(e.key.tokens_minted(), 2);
}

/// TokenKey docs: "clone the TokenKey to share it between clients"; "a token older than 30
/// minutes is never adopted by a connection (a fresh one is minted instead), so a connection
/// changes tokens at most once per 20 minutes".
#[tokio::test]
async fn clients_sharing_a_key_share_its_token_and_never_adopt_an_old_one() {
    let (clock, e) = clocked_env().await;
    let a = client(&e).build().unwrap();
    let b = client(&e).build().unwrap();
    let late = client(&e).build().unwrap();
    assert!(a.send(alert(&dev(1))).await.is_accepted());
    advance(&clock, &e.key, Duration::from_secs(25 * 60));
    assert!(b.send(alert(&dev(2))).await.is_accepted());
    let log = e.mock.pushes();
    assert_eq!(
        bearer(&log[0]),
        bearer(&log[1]),
        "B did not share A's 25-minute-old token"
    );
    assert_eq!(e.key.tokens_minted(), 1);
    advance(&clock, &e.key, Duration::from_secs(10 * 60)); // t = 35 min
    assert!(late.send(alert(&dev(3))).await.is_accepted());
    let log = e.mock.pushes();
    assert_ne!(
        bearer(&log[2]),
        bearer(&log[0]),
        "a 35-minute-old token was adopted"
    );
    assert_eq!(e.key.tokens_minted(), 2);
    advance(&clock, &e.key, Duration::from_secs(15 * 60)); // t = 50 min
    for c in [&a, &b, &late] {
        let o = c.send(alert(&dev(4))).await;
        assert!(o.is_accepted(), "{o:?}");
    }
    let log = e.mock.pushes();
    // A and B refresh to the token minted at 35 minutes; nobody is refused for refreshing.
    assert_eq!(bearer(&log[3]), bearer(&log[2]));
    assert_eq!(bearer(&log[4]), bearer(&log[2]));
    assert_eq!(e.key.tokens_minted(), 2);
    let stats = e.mock.stats();
    assert!(
        !stats.by_reason.contains_key("TooManyProviderTokenUpdates"),
        "{stats:?}"
    );
}

#[tokio::test]
async fn expired_provider_token_is_retried_once_with_a_new_jwt_and_the_same_apns_id() {
    let e = env().await;
    let c = client(&e).build().unwrap();
    assert!(c.send(alert(&dev(1))).await.is_accepted());
    e.mock.script(Fault::reject(403, "ExpiredProviderToken"));
    let p = alert(&dev(2));
    let o = c.send(p.clone()).await;
    assert!(o.is_accepted(), "{o:?}");
    let tries = attempts_of(&e.mock, p.apns_id());
    assert_eq!(tries.len(), 2);
    assert_ne!(
        bearer(&tries[0]),
        bearer(&tries[1]),
        "retried with the expired JWT"
    );
    assert!(
        !e.mock
            .stats()
            .by_reason
            .contains_key("TooManyProviderTokenUpdates")
    );
}

#[tokio::test]
async fn a_token_the_mock_finds_expired_is_reminted_once_then_the_rejection_stands() {
    let (clock, e) = clocked_env().await;
    let c = client(&e).build().unwrap();
    clock.advance(Duration::from_secs(2 * 3600)); // the server's clock only
    let p = alert(&dev(1));
    match c.send(p.clone()).await {
        PushOutcome::Rejected(r) => {
            assert_eq!((r.status, &r.reason), (403, &Reason::ExpiredProviderToken));
            assert_eq!(r.apns_id, p.apns_id());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(attempts_of(&e.mock, p.apns_id()).len(), 2);
    assert_eq!(e.key.tokens_minted(), 2);
}

#[tokio::test]
async fn a_key_the_server_does_not_know_is_rejected_invalid_provider_token_once() {
    let e = env().await;
    let stranger = MockApns::start().await.unwrap();
    let other_p8 = stranger.generate_key(KEY_ID, TEAM).unwrap();
    let key = TokenKey::from_p8_pem(other_p8, KEY_ID, TEAM).unwrap();
    let c = client_with(&e.mock, &key).build().unwrap();
    let p = alert(&dev(1));
    match c.send(p.clone()).await {
        PushOutcome::Rejected(r) => {
            assert_eq!((r.status, &r.reason), (403, &Reason::InvalidProviderToken))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(attempts_of(&e.mock, p.apns_id()).len(), 1);
}

// ======================================================================================= keys

fn assert_bad_key(r: Result<TokenKey, herald::apns::Error>, what: &str, material: &str) {
    let err = r.expect_err(what);
    assert_eq!(err.kind(), ErrorKind::BadKey, "{what}: {err:?}");
    for line in key_material_lines(material) {
        assert!(!err.to_string().contains(line), "{what}: key in {err}");
        assert!(!format!("{err:?}").contains(line), "{what}: key in {err:?}");
    }
}

#[test]
fn keys_that_are_not_apple_p8_keys_are_typed_bad_key_errors() {
    assert_bad_key(
        TokenKey::from_p8_pem(RSA_PUSH_KEY_PKCS8, KEY_ID, TEAM),
        "an RSA PKCS#8 key",
        RSA_PUSH_KEY_PKCS8,
    );
    assert_bad_key(
        TokenKey::from_p8_pem(RSA_PUSH_KEY_PKCS1, KEY_ID, TEAM),
        "an RSA PKCS#1 key",
        RSA_PUSH_KEY_PKCS1,
    );
    let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let pem = p384.serialize_pem();
    assert_bad_key(
        TokenKey::from_p8_pem(&pem, KEY_ID, TEAM),
        "a P-384 key",
        &pem,
    );
    let p256 = rcgen::KeyPair::generate().unwrap();
    let secret = p256::SecretKey::from_pkcs8_der(&p256.serialize_der()).unwrap();
    let sec1 = secret.to_sec1_pem(p256::pkcs8::LineEnding::LF).unwrap();
    assert_bad_key(
        TokenKey::from_p8_pem(sec1.as_bytes(), KEY_ID, TEAM),
        "a SEC1 `EC PRIVATE KEY`",
        &sec1,
    );
    assert_bad_key(TokenKey::from_p8_pem("", KEY_ID, TEAM), "an empty file", "");
    let dir = tempfile::tempdir().unwrap();
    assert_bad_key(
        TokenKey::from_p8_file(dir.path(), KEY_ID, TEAM),
        "a directory",
        "",
    );
    assert_bad_key(
        TokenKey::from_p8_pem(p256.serialize_pem(), "ABC 123", TEAM),
        "a key id with a space",
        "",
    );
}

use p256::pkcs8::DecodePrivateKey as _;

#[tokio::test]
async fn a_p8_file_with_crlf_line_endings_signs_valid_tokens() {
    let e = env().await;
    let crlf = e.p8.replace('\n', "\r\n");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("AuthKey_ABC123DEFG.p8");
    std::fs::write(&path, &crlf).unwrap();
    let key = TokenKey::from_p8_file(&path, KEY_ID, TEAM).expect("a CRLF .p8 file");
    let c = client_with(&e.mock, &key).build().unwrap();
    let o = c.send(alert(&dev(1))).await;
    assert!(o.is_accepted(), "{o:?}");
}

/// A PKCS#8 EC key without the optional embedded public key (ring refuses those; herald
/// re-encodes): the JWTs it signs must verify against the key's public half.
#[tokio::test]
async fn a_pkcs8_key_without_its_public_half_signs_valid_tokens() {
    let e = env().await;
    let generated = rcgen::KeyPair::generate().unwrap();
    let secret = p256::SecretKey::from_pkcs8_der(&generated.serialize_der()).unwrap();
    let d = secret.to_bytes();
    let mut der = vec![
        0x30, 0x41, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02,
        0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x04, 0x27, 0x30, 0x25,
        0x02, 0x01, 0x01, 0x04, 0x20,
    ];
    der.extend_from_slice(&d);
    assert_eq!(der.len(), 0x43);
    e.mock
        .register_key("MINIMALKEY", TEAM, generated.public_key_pem().as_bytes())
        .unwrap();
    let key = TokenKey::from_pkcs8_der(&der, "MINIMALKEY", TEAM).expect("minimal PKCS#8");
    let c = client_with(&e.mock, &key).build().unwrap();
    let o = c.send(alert(&dev(1))).await;
    assert!(o.is_accepted(), "{o:?}");
}

// ================================================================== certificate auth (.p12)

fn legacy_p12() -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(LEGACY_P12_B64)
        .unwrap()
}

/// A mock that accepts client certificates issued by `RSA_CA_PEM`.
async fn mock_trusting_rsa_ca() -> MockApns {
    MockApns::builder()
        .accept_unknown_tokens(true)
        .trust_client_ca_pem(RSA_CA_PEM)
        .start()
        .await
        .unwrap()
}

fn certificate_client(mock: &MockApns, cert: Certificate) -> ApnsClient {
    ApnsClient::builder()
        .endpoint(endpoint(mock))
        .certificate(cert)
        .build()
        .unwrap()
}

/// README: "With a push certificate exported from Keychain as `.p12`". Keychain writes
/// legacy PKCS#12 (RC2-40 / 3DES, SHA-1 MAC) around an RSA key.
#[tokio::test]
async fn a_keychain_style_legacy_p12_with_an_rsa_key_authenticates() {
    let mock = mock_trusting_rsa_ca().await;
    let cert = Certificate::from_p12(legacy_p12(), "keychain").expect("a legacy .p12");
    assert_eq!(cert.bundle_id(), Some(BUNDLE));
    let until = cert
        .expires_at()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(until, 4_070_908_800, "2099-01-01T00:00:00Z");
    assert!(!cert.expires_within(Duration::from_secs(30 * 86400)));
    let debug = format!("{cert:?}");
    assert!(!debug.contains("keychain") && !debug.contains("PRIVATE"));
    let c = certificate_client(&mock, cert);
    let o = c.send(alert(&dev(1))).await;
    assert!(o.is_accepted(), "{o:?}");
    let seen = mock.pushes();
    assert_eq!(
        seen[0].auth,
        AuthKind::Certificate {
            bundle_id: Some(BUNDLE.into())
        }
    );
    assert!(seen[0].header("authorization").is_none());

    let wrong = Certificate::from_p12(legacy_p12(), "keychainx").unwrap_err();
    assert!(wrong.is_wrong_password(), "{wrong:?}");
    assert!(!wrong.to_string().contains("keychain"));
}

#[tokio::test]
async fn p12_files_with_an_empty_password_or_modern_encryption_authenticate() {
    let mock = mock_trusting_rsa_ca().await;
    let b64 = base64::engine::general_purpose::STANDARD;
    let cases = [
        ("empty password", LEGACY_P12_EMPTY_PASSWORD_B64, ""),
        ("PBES2/AES", MODERN_P12_B64, "keychain"),
    ];
    for (what, data, password) in cases {
        let cert = Certificate::from_p12(b64.decode(data).unwrap(), password)
            .unwrap_or_else(|e| panic!("{what}: {e:?}"));
        assert_eq!(cert.bundle_id(), Some(BUNDLE), "{what}");
        let c = certificate_client(&mock, cert);
        let o = c.send(alert(&dev(1))).await;
        assert!(o.is_accepted(), "{what}: {o:?}");
    }
    // The mock's own .p12 export with an empty password, too.
    let issued = mock.issue_push_certificate(BUNDLE).unwrap();
    let p12 = issued.to_p12("").unwrap();
    let cert = Certificate::from_p12(p12, "").expect("the mock's .p12 with an empty password");
    assert_eq!(cert.bundle_id(), Some(BUNDLE));
}

#[test]
fn rsa_pem_certificates_read_with_pkcs8_and_pkcs1_keys() {
    for key in [RSA_PUSH_KEY_PKCS8, RSA_PUSH_KEY_PKCS1] {
        let cert = Certificate::from_pem(RSA_PUSH_CERT_PEM, key).expect("RSA key");
        assert_eq!(cert.bundle_id(), Some(BUNDLE));
        assert!(cert.covers_topic("com.example.app.voip"));
        assert!(!cert.covers_topic("com.example.other"));
    }
}

/// Issue 5: "Bad key files, wrong passwords and expired certificates give clear typed errors at
/// construction." A key that is not the certificate's own is a bad key file.
#[tokio::test]
async fn a_certificate_with_someone_elses_key_is_refused_at_construction() {
    let other = rcgen::KeyPair::generate().unwrap();
    let constructed =
        Certificate::from_pem(RSA_PUSH_CERT_PEM, other.serialize_pem()).and_then(|cert| {
            ApnsClient::builder()
                .endpoint(Endpoint::Sandbox)
                .certificate(cert)
                .build()
        });
    let err = constructed.expect_err("a certificate with a foreign key was accepted");
    assert!(
        matches!(err.kind(), ErrorKind::BadKey | ErrorKind::BadCertificate),
        "{err:?}"
    );
}

// ===================================================================================== headers

#[tokio::test]
async fn every_header_reaches_apns_as_set() {
    let e = env().await;
    let c = client(&e).build().unwrap();
    let at = UNIX_EPOCH + Duration::from_secs(1_900_000_000);
    let p = Push::builder(dev(1).to_uppercase(), BUNDLE)
        .priority(Priority::PowerAware)
        .expiration(Expiration::At(at))
        .collapse_id("score-42")
        .apns_id("0E0F6C51-3A5B-4C4D-9E8F-0A1B2C3D4E5F")
        .payload(&Payload::alert("hi"))
        .unwrap()
        .build()
        .unwrap();
    let o = c.send(p).await;
    let PushOutcome::Accepted(a) = o else {
        panic!("{o:?}")
    };
    assert_eq!(a.apns_id, "0e0f6c51-3a5b-4c4d-9e8f-0a1b2c3d4e5f");
    let r = &e.mock.pushes()[0];
    assert_eq!(r.path, format!("/3/device/{}", dev(1)));
    assert_eq!(r.method, "POST");
    assert_eq!(r.header("apns-push-type"), Some("alert"));
    assert_eq!(r.header("apns-topic"), Some(BUNDLE));
    assert_eq!(r.header("apns-priority"), Some("5"));
    assert_eq!(r.header("apns-expiration"), Some("1900000000"));
    assert_eq!(r.header("apns-collapse-id"), Some("score-42"));
    assert_eq!(
        r.header("apns-id"),
        Some("0e0f6c51-3a5b-4c4d-9e8f-0a1b2c3d4e5f")
    );
    assert_eq!(r.payload, Some(serde_json::json!({"aps": {"alert": "hi"}})));
    // Defaults: priority 10, no expiration, no collapse id; Immediately is "0".
    let p = Push::builder(dev(2), BUNDLE)
        .expiration(Expiration::Immediately)
        .build()
        .unwrap();
    assert!(c.send(p).await.is_accepted());
    let r = &e.mock.pushes()[1];
    assert_eq!(r.header("apns-priority"), Some("10"));
    assert_eq!(r.header("apns-expiration"), Some("0"));
    assert_eq!(r.header("apns-collapse-id"), None);
    assert!(c.send(alert(&dev(3))).await.is_accepted());
    assert_eq!(e.mock.pushes()[2].header("apns-expiration"), None);
}

/// Every push type herald can build must pass Apple's header rules (topic suffix, priority),
/// as the mock applies them.
#[tokio::test]
async fn every_push_type_that_builds_passes_apples_header_rules() {
    let e = env().await;
    let c = client(&e).retry(RetryPolicy::none()).build().unwrap();
    let types = [
        (PushType::Alert, None),
        (PushType::Background, None),
        (PushType::Voip, None),
        (PushType::Complication, None),
        (PushType::FileProvider, None),
        (PushType::Location, None),
        (PushType::Mdm, None),
        (PushType::LiveActivity, Some(Priority::PowerAware)),
        (PushType::PushToTalk, None),
        (PushType::Widgets, Some(Priority::PowerAware)),
        (PushType::Controls, None),
    ];
    for (i, (t, prio)) in types.into_iter().enumerate() {
        let mut b = Push::builder(dev(i), BUNDLE).push_type(t);
        if let Some(p) = prio {
            b = b.priority(p);
        }
        let payload = if t == PushType::Background {
            Payload::background()
        } else {
            Payload::alert("x")
        };
        let push = b.payload(&payload).unwrap().build().unwrap();
        let topic = push.topic().to_owned();
        let o = c.send(push).await;
        assert!(o.is_accepted(), "{t:?} (topic {topic}): {o:?}");
        let r = e.mock.pushes().pop().unwrap();
        assert_eq!(r.header("apns-push-type"), Some(t.as_str()));
        assert_eq!(r.topic.as_deref(), Some(topic.as_str()));
    }
}

#[tokio::test]
async fn header_values_apple_refuses_are_typed_errors_before_sending() {
    let b = || Push::builder(dev(1), BUNDLE);
    let cases: Vec<(&str, Result<Push, herald::apns::Error>)> = vec![
        (
            "collapse id of 65 bytes",
            b().collapse_id("c".repeat(65)).build(),
        ),
        (
            "collapse id of 65 bytes in 33 characters",
            b().collapse_id("é".repeat(32) + "c").build(),
        ),
        (
            "background at priority 10",
            b().push_type(PushType::Background)
                .priority(Priority::Immediate)
                .build(),
        ),
        (
            "background at priority 1",
            b().push_type(PushType::Background)
                .priority(Priority::Low)
                .build(),
        ),
        (
            "push-to-talk at priority 5",
            b().push_type(PushType::PushToTalk)
                .priority(Priority::PowerAware)
                .build(),
        ),
        (
            "live activity at priority 1",
            b().push_type(PushType::LiveActivity)
                .priority(Priority::Low)
                .build(),
        ),
        ("apns-id not a UUID", b().apns_id("1234").build()),
        ("empty topic", Push::builder(dev(1), "  ").build()),
        (
            "raw payload not a JSON object",
            b().raw_payload("[1,2]").build(),
        ),
        ("raw payload not JSON", b().raw_payload("{nope").build()),
    ];
    for (what, r) in cases {
        let err = r.expect_err(what);
        assert_eq!(err.kind(), ErrorKind::InvalidPush, "{what}: {err:?}");
    }
    // The boundary that passes, end to end.
    let e = env().await;
    let c = client(&e).build().unwrap();
    let p = b().collapse_id("c".repeat(64)).build().unwrap();
    assert!(c.send(p).await.is_accepted());
    assert_eq!(e.mock.stats().requests, 1);
}

// ===================================================================================== payload

fn alert_of_size(
    token: &str,
    size: usize,
    push_type: PushType,
) -> Result<Push, herald::apns::Error> {
    // {"aps":{"alert":""}} is 20 bytes.
    let text = "x".repeat(size - 20);
    Push::builder(token, BUNDLE)
        .push_type(push_type)
        .payload(&Payload::alert(text.as_str()))?
        .build()
}

#[tokio::test]
async fn payload_limits_are_byte_exact_and_checked_before_sending() {
    let e = env().await;
    let c = client(&e).build().unwrap();
    let at_limit = alert_of_size(&dev(1), 4096, PushType::Alert).unwrap();
    assert_eq!(at_limit.body().len(), 4096);
    assert!(c.send(at_limit).await.is_accepted());
    let voip_at_limit = alert_of_size(&dev(2), 5120, PushType::Voip).unwrap();
    assert!(c.send(voip_at_limit).await.is_accepted());

    for (size, t, limit) in [
        (4097, PushType::Alert, 4096),
        (5000, PushType::Background, 4096),
        (4097, PushType::LiveActivity, 4096),
        (5121, PushType::Voip, 5120),
    ] {
        let err = match t {
            PushType::Background => {
                let empty = r#"{"aps":{"content-available":1},"x":""}"#.len();
                let body = format!(
                    r#"{{"aps":{{"content-available":1}},"x":"{}"}}"#,
                    "y".repeat(size - empty)
                );
                assert_eq!(body.len(), size);
                Push::builder(dev(3), BUNDLE)
                    .push_type(t)
                    .raw_payload(body)
                    .build()
                    .unwrap_err()
            }
            _ => alert_of_size(&dev(3), size, t).unwrap_err(),
        };
        assert!(err.is_payload_too_large(), "{t:?}: {err:?}");
        let sizes = err.payload_too_large().unwrap();
        assert_eq!(
            (sizes.size, sizes.limit, sizes.over_by),
            (size, limit, size - limit)
        );
        assert!(
            err.to_string().contains(&(size - limit).to_string()),
            "{err}"
        );
    }
    // Unicode counts in bytes: 2047 two-byte characters + 20 = 4114 bytes.
    let err = Push::builder(dev(4), BUNDLE)
        .payload(&Payload::alert("é".repeat(2047)))
        .unwrap()
        .build()
        .unwrap_err();
    assert_eq!(err.payload_too_large().unwrap().size, 4114);
    // Broadcasts: 5120.
    let big = Payload::alert("x".repeat(5101));
    let err = Broadcast::builder(BUNDLE, ChannelId::new("dGVzdA=="))
        .payload(&big)
        .unwrap()
        .build()
        .unwrap_err();
    assert_eq!(err.payload_too_large().unwrap().over_by, 1);
    assert_eq!(e.mock.stats().requests, 2, "an oversized payload was sent");
}

// =============================================================================== device tokens

#[tokio::test]
async fn malformed_device_tokens_are_typed_errors_and_long_ones_work() {
    for bad in [
        "",
        "abc",
        "zz",
        "a1 b2",
        "<a1b2>",
        "0xab",
        "ａｂ",
        "a1b2c3d4\u{0}",
    ] {
        let err = Push::builder(bad, BUNDLE).build().expect_err(bad);
        assert_eq!(err.kind(), ErrorKind::InvalidPush, "{bad:?}: {err:?}");
    }
    let e = env_with(MockApns::builder()).await; // unknown tokens: BadDeviceToken
    let c = client(&e).build().unwrap();
    for len in [64, 108, 160, 200] {
        let token: String = "Ab".repeat(len / 2);
        e.mock.register_device(&token, BUNDLE);
        let o = c.send(alert(&token)).await;
        assert!(o.is_accepted(), "{len} hex digits: {o:?}");
        let r = e.mock.pushes().pop().unwrap();
        assert_eq!(r.device_token, Some(token.to_ascii_lowercase()));
    }
}

// ===================================================================================== reasons

#[tokio::test]
async fn reasons_the_server_finds_itself_map_to_typed_outcomes_without_retries() {
    let e = env_with(MockApns::builder()).await;
    let c = client(&e).build().unwrap();
    let check = |o: PushOutcome, p: &Push, status: u16, reason: Reason| match o {
        PushOutcome::Rejected(r) => {
            assert_eq!((r.status, &r.reason), (status, &reason));
            assert_eq!(r.apns_id, p.apns_id());
            assert_eq!(r.push.apns_id(), p.apns_id());
            r.timestamp
        }
        other => panic!("{reason}: {other:?}"),
    };
    // Unknown token.
    let p = alert(&dev(1));
    let ts = check(c.send(p.clone()).await, &p, 400, Reason::BadDeviceToken);
    assert_eq!(ts, None);
    assert!(Reason::BadDeviceToken.quarantines_token());
    assert_eq!(attempts_of(&e.mock, p.apns_id()).len(), 1);
    // Another app's token.
    e.mock.register_device(&dev(2), "com.example.other");
    let p = alert(&dev(2));
    check(
        c.send(p.clone()).await,
        &p,
        400,
        Reason::DeviceTokenNotForTopic,
    );
    assert_eq!(attempts_of(&e.mock, p.apns_id()).len(), 1);
    // Gone: 410 with the instant, to the millisecond.
    let since = UNIX_EPOCH + Duration::from_millis(1_780_000_000_987);
    e.mock.mark_unregistered(&dev(3), since);
    let p = alert(&dev(3));
    let ts = check(c.send(p.clone()).await, &p, 410, Reason::Unregistered);
    assert_eq!(ts, Some(since));
    assert_eq!(attempts_of(&e.mock, p.apns_id()).len(), 1);
    // A topic-specific key used for another app.
    e.mock.register_device(&dev(4), BUNDLE);
    assert!(e.mock.restrict_key(KEY_ID, &["com.example.other"]));
    let p = alert(&dev(4));
    check(c.send(p.clone()).await, &p, 400, Reason::TopicDisallowed);
    assert_eq!(attempts_of(&e.mock, p.apns_id()).len(), 1);
}

/// APNS.md §6: never retry the permanent reasons; only 5xx and 429 are retryable (and
/// ExpiredProviderToken, with a new token). Every other answer is one request, one outcome.
#[tokio::test]
async fn non_retryable_answers_are_sent_exactly_once() {
    let e = env().await;
    let c = client(&e).build().unwrap();
    assert!(c.send(alert(&dev(0))).await.is_accepted());
    for reason in Reason::known() {
        let status = reason.status().unwrap();
        if status == 429 || status >= 500 || *reason == Reason::ExpiredProviderToken {
            continue;
        }
        e.mock.script(Fault::reject(status, reason.as_str()));
        let p = alert(&dev(1));
        let o = c.send(p.clone()).await;
        assert_eq!(o.reason(), Some(reason), "{o:?}");
        assert_eq!(
            attempts_of(&e.mock, p.apns_id()).len(),
            1,
            "{reason} was sent again"
        );
    }
}

#[tokio::test]
async fn retryable_answers_are_retried_with_the_same_apns_id_until_accepted() {
    let e = env().await;
    let c = client(&e).build().unwrap();
    e.mock.script(Fault::reject(429, "TooManyRequests"));
    e.mock.script(Fault::reject(500, "InternalServerError"));
    e.mock.script(Fault::reject(503, "ServiceUnavailable"));
    let p = alert(&dev(1));
    let o = c.send(p.clone()).await;
    let PushOutcome::Accepted(a) = o else {
        panic!("{o:?}")
    };
    assert_eq!(a.apns_id, p.apns_id());
    assert_eq!(attempts_of(&e.mock, p.apns_id()).len(), 4);
    assert_eq!(e.mock.accepted_count(p.apns_id()), 1);
}

#[tokio::test]
async fn an_unknown_5xx_reason_is_retried_then_failed_with_the_reason_kept() {
    let e = env().await;
    let c = client_retrying(&e, 2);
    e.mock.script_n(3, Fault::reject(503, "BrandNewOutage"));
    let p = alert(&dev(1));
    let o = c.send(p.clone()).await;
    let err = o.error().expect("failed");
    assert!(err.is_retries_exhausted(), "{err:?}");
    assert_eq!(err.status(), Some(503));
    assert_eq!(err.reason(), Some(&Reason::Other("BrandNewOutage".into())));
    assert_eq!(attempts_of(&e.mock, p.apns_id()).len(), 3);
    // Nothing left over for the next push.
    assert!(c.send(alert(&dev(2))).await.is_accepted());
}

// ======================================================================= connections / streams

/// Module docs: requests that certainly did not reach APNs (REFUSED_STREAM) "are moved to
/// another connection up to 8 times, not counted as retries", with the same apns-id.
#[tokio::test]
async fn refused_streams_are_moved_up_to_eight_times_then_fail_typed() {
    let e = env().await;
    let c = client_retrying(&e, 0);
    e.mock.script_n(8, Fault::RefuseStream);
    let p = alert(&dev(1));
    let o = c.send(p.clone()).await;
    assert!(o.is_accepted(), "{o:?}");
    assert_eq!(attempts_of(&e.mock, p.apns_id()).len(), 9);
    e.mock.script_n(9, Fault::RefuseStream);
    let p = alert(&dev(2));
    let o = c.send(p.clone()).await;
    let err = o.error().expect("failed");
    assert!(err.is_retries_exhausted(), "{err:?}");
    assert_eq!(attempts_of(&e.mock, p.apns_id()).len(), 9);
    assert_eq!(e.mock.accepted_count(p.apns_id()), 0);
}

/// A server hang-up fails the request in flight (it may have been processed) and nothing else:
/// pushes still waiting for a stream were never sent and must go out on a new connection.
#[tokio::test]
async fn pushes_queued_behind_a_dropped_connection_are_still_delivered() {
    let e = single_stream_env().await;
    let c = client(&e).build().unwrap();
    assert!(c.send(alert(&dev(0))).await.is_accepted());
    e.mock.script(Fault::DropConnection);
    let mut outcomes = c.send_all((1..=10).map(|i| alert(&dev(i))), 10);
    let (mut lost, mut accepted, mut ids) = (0, 0, HashSet::new());
    while let Some((p, o)) = outcomes.next().await {
        assert!(
            ids.insert(p.apns_id().to_owned()),
            "two outcomes for one push"
        );
        match &o {
            PushOutcome::Accepted(_) => accepted += 1,
            PushOutcome::Failed(Failed { error, .. }) if error.is_connection_lost() => lost += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((lost, accepted), (1, 9));
    assert!(e.mock.duplicate_accepted().is_empty());
    assert_eq!(e.mock.stats().connections_opened, 2);
}

#[tokio::test]
async fn pushes_queued_behind_a_stalled_push_go_out_after_its_timeout() {
    let e = single_stream_env().await;
    let c = client(&e)
        .request_timeout(Duration::from_millis(400))
        .build()
        .unwrap();
    assert!(c.send(alert(&dev(0))).await.is_accepted());
    e.mock.script(Fault::Stall);
    let mut outcomes = c.send_all((1..=6).map(|i| alert(&dev(i))), 6);
    let (mut timeouts, mut accepted) = (0, 0);
    while let Some((_, o)) = outcomes.next().await {
        match &o {
            PushOutcome::Accepted(_) => accepted += 1,
            PushOutcome::Failed(Failed { error, .. }) if error.is_timeout() => timeouts += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((timeouts, accepted), (1, 5));
    assert!(e.mock.duplicate_accepted().is_empty());
}

#[tokio::test]
async fn an_untrusted_server_is_a_connect_error_and_nothing_is_sent() {
    let e = env().await;
    let other = MockApns::start().await.unwrap();
    let c = ApnsClient::builder()
        .endpoint(
            Endpoint::custom(&e.mock.url())
                .unwrap()
                .with_ca_pem(other.ca_pem()),
        )
        .token_auth(e.key.clone())
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let o = c.send(alert(&dev(1))).await;
    let err = o.error().expect("failed");
    assert!(err.is_connect(), "{err:?}");
    assert_eq!(e.mock.stats().requests, 0);
    assert_eq!(
        e.key.tokens_minted(),
        0,
        "a token was minted for a connection that never came up"
    );
}

/// Issue 5: "a metrics hook (sent, accepted, rejected by reason, retried, latency)": one `sent`
/// per push (not per attempt), and each push counted once in accepted, rejected or failed.
#[tokio::test]
async fn metrics_count_each_push_once_and_each_retry() {
    let e = env_with(MockApns::builder()).await;
    e.mock.register_device(&dev(1), BUNDLE);
    let counters = std::sync::Arc::new(herald::apns::Counters::default());
    let c = client(&e).metrics(counters.clone()).build().unwrap();
    assert!(c.send(alert(&dev(1))).await.is_accepted());
    assert_eq!(
        c.send(alert(&dev(2))).await.reason(),
        Some(&Reason::BadDeviceToken)
    );
    e.mock.script(Fault::reject(503, "ServiceUnavailable"));
    assert!(c.send(alert(&dev(1))).await.is_accepted());
    let bad = Push::builder(dev(1), BUNDLE)
        .push_type(PushType::LiveActivity)
        .build()
        .unwrap();
    assert!(c.send(bad).await.is_accepted());
    let snap = counters.snapshot();
    assert_eq!(
        (
            snap.sent,
            snap.accepted,
            snap.rejected,
            snap.retried,
            snap.failed
        ),
        (4, 3, 1, 1, 0),
        "{snap:?}"
    );
    assert_eq!(snap.rejected_by_reason, vec![(Reason::BadDeviceToken, 1)]);
    assert!(snap.latency_us_total > 0);
    assert_eq!(snap.connections, 1);
}

// ----- fixtures made once with OpenSSL 3.0 (`openssl pkcs12 -export -legacy`, as Keychain exports:
// RC2-40 certificate bag, 3DES key bag, SHA-1 MAC), RSA 2048, valid 2025-01-01 .. 2099-01-01. -----

/// The CA that issued the RSA push certificate below (stands in for Apple WWDR).
const RSA_CA_PEM: &str = "\
-----BEGIN CERTIFICATE-----\n\
MIIC+jCCAeKgAwIBAgICEAAwDQYJKoZIhvcNAQELBQAwHTEbMBkGA1UEAwwSQXVk\n\
aXQgVGVzdCBXV0RSIENBMCAXDTI1MDEwMTAwMDAwMFoYDzIwOTkwMTAxMDAwMDAw\n\
WjAdMRswGQYDVQQDDBJBdWRpdCBUZXN0IFdXRFIgQ0EwggEiMA0GCSqGSIb3DQEB\n\
AQUAA4IBDwAwggEKAoIBAQCzQJ92qJo/8GNMkxtVg/QbgvV4/K88iX17touwZE6b\n\
RBVseniCq7SfHrggdRf2dD2c0xliLZ4jDO/me0TXmilzVLGiN/AIzpniOZgR+An1\n\
FUjRHlUi3tmeOo36hrQWZUq58BfxNhCBWp9XFMggRwr2E5QunlflAApatTcVnjGU\n\
4Qlf/C6G8uj1DcPiatySw+vjB0pDuCQV3+kMFVPDBZVaE7i7GCEWqZ6MuF5hUsKr\n\
1MB7QaXEGCqiqWAUYQ7D5YfahbXCjfjU4QCAdkkMUtoFkbv1bjXT1Eyu8BTzbfm5\n\
0Corca3atGd7M3mDdIjH0WWd/+dViJsebVj0/Vl/mHhzAgMBAAGjQjBAMA8GA1Ud\n\
EwEB/wQFMAMBAf8wDgYDVR0PAQH/BAQDAgEGMB0GA1UdDgQWBBRHyic0Trnev2cr\n\
SxaPxHEOKnNiwDANBgkqhkiG9w0BAQsFAAOCAQEAfoaDrmawzBzIwEH2gem7d9DB\n\
wM782K/O/xH4iuIPijsrkpkx4LAmABdZAxpzFgHeszSQp0en7yamrDQ78rMWwa2A\n\
w/UQyN+hLWlqMQKPBBzGH2JODFq2VLfCfMbAgxnFLRl0TMVFHx9XM4T3mBT0ZFc0\n\
1eEVkoOrg05N6g5pYX8OUZKw1xEefRJEUrE8N6cj5Hz3VJJXVT3mFsh0KlDa2K9v\n\
IcofZN94iHT4IrMpawsztcr+NrmnYR7j3N9RIrkMGCFWsA2mQ/ee71Wt8nhpyLJU\n\
FjZ8cIc3O1fAt8CdJSvxth2Zx1mobzzoOdi7q3lLEiLwPCQsUsgBtYQOis8GWw==\n\
-----END CERTIFICATE-----\n\
";

/// The RSA push certificate: subject UID=com.example.app, no Apple extensions.
const RSA_PUSH_CERT_PEM: &str = "\
-----BEGIN CERTIFICATE-----\n\
MIIDkjCCAnqgAwIBAgICEAEwDQYJKoZIhvcNAQELBQAwHTEbMBkGA1UEAwwSQXVk\n\
aXQgVGVzdCBXV0RSIENBMCAXDTI1MDEwMTAwMDAwMFoYDzIwOTkwMTAxMDAwMDAw\n\
WjCBhDEfMB0GCgmSJomT8ixkAQEMD2NvbS5leGFtcGxlLmFwcDEtMCsGA1UEAwwk\n\
QXBwbGUgUHVzaCBTZXJ2aWNlczogY29tLmV4YW1wbGUuYXBwMRMwEQYDVQQLDApU\n\
RUFNMTIzNDU2MRAwDgYDVQQKDAdFeGFtcGxlMQswCQYDVQQGEwJVUzCCASIwDQYJ\n\
KoZIhvcNAQEBBQADggEPADCCAQoCggEBALgEio1aBe+phANYiHhoIZTLX+K4LIiD\n\
6wdHk1NIqp4XilBx0fn5e8ykFv9mBB1YQE6NcALGJfCoCP8LyI7TBNZ/aGdET78T\n\
4EibhdKzRXeIz2NICnxCXjxJIeMU/RdodPBadxnEH1MCk+ODzDGf+SWD0DwyuEfL\n\
6T+bvkusIWSfyfsMlqGGjz0UXKyTj+xZ7cMzx2Uc4X03STR1UZn9odDmpC5aZ9NR\n\
rC28Gx11EIyQJhxaZZIBzSyVU8h76skoK1gkyeFErCNcPQssmGDHNWsfjiCshFR5\n\
zwZdql/09lcSHpIchZhh+9rweJZZFLKpHRQ8W+8zCJgtHp1KG2fwvGMCAwEAAaNy\n\
MHAwCQYDVR0TBAIwADAOBgNVHQ8BAf8EBAMCB4AwEwYDVR0lBAwwCgYIKwYBBQUH\n\
AwIwHQYDVR0OBBYEFCNu+FEgqBibPqovpJoeTV9sicgrMB8GA1UdIwQYMBaAFEfK\n\
JzROud6/ZytLFo/EcQ4qc2LAMA0GCSqGSIb3DQEBCwUAA4IBAQA50+QJHHJKabLI\n\
KQXi1ggrXCLOsh81uj69UGWTaeKaO/2BwhH9XWpbKJdH7eN8lqNrq3mSAP7Okude\n\
+7Q9cJuiVcC4d1esNX6/W8BnjF1P/X2+D3iG6do8zc0Kw0ElGc21kjFZdEtj/ZxK\n\
M9jLP4uAHeKXeMMEkzZWIbLn6DOPTI2OvRAg3Os2L0JPLgne3j3Sol5U2rewMkvD\n\
MWJ5ZoQKOLNFgHNeM6zUr9EDNoZUwqgot4UcDy8jYKJ0uNg0MttOosyJ4TrMOL+5\n\
wBMoqbjI4GrG70+WvGEw/BDPOrFNxyML4NX8OpsG0ltreKwPK2DdfMTmRtfgRP1u\n\
LLIfsT/s\n\
-----END CERTIFICATE-----\n\
";

/// Its private key, PKCS#8 (`BEGIN PRIVATE KEY`).
const RSA_PUSH_KEY_PKCS8: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC4BIqNWgXvqYQD\n\
WIh4aCGUy1/iuCyIg+sHR5NTSKqeF4pQcdH5+XvMpBb/ZgQdWEBOjXACxiXwqAj/\n\
C8iO0wTWf2hnRE+/E+BIm4XSs0V3iM9jSAp8Ql48SSHjFP0XaHTwWncZxB9TApPj\n\
g8wxn/klg9A8MrhHy+k/m75LrCFkn8n7DJahho89FFysk4/sWe3DM8dlHOF9N0k0\n\
dVGZ/aHQ5qQuWmfTUawtvBsddRCMkCYcWmWSAc0slVPIe+rJKCtYJMnhRKwjXD0L\n\
LJhgxzVrH44grIRUec8GXapf9PZXEh6SHIWYYfva8HiWWRSyqR0UPFvvMwiYLR6d\n\
Shtn8LxjAgMBAAECggEAFdr24wo8cZYjh2DeIdbUQ4ooDZMBjwaD79hmEgUru8e1\n\
9g9JTgl91PSZhU8w0T9oW9axOqhyscjIphSt3EYJvrlhGqq4AfddXaJDBvRNyCr9\n\
M/XGxl1SOJIYWT0RQNTM1rhtNCfhRIhQ15ERZm9xNYMYmfMNhKbI7B9rlCyRxr5+\n\
P7/Oi2qt/0BfXPVRR8cQBAhQH7+akXvEaVgi5bqOatjcVnga6o6T6rTcAPxjothi\n\
y2t7To5npEm0kjK+/aKLrK1gXL/N9Fd1sm5moof3TWBfVQRyS3A7auUusEa0G8aa\n\
las5J9W1Ov2J7x8hNKdLZ8WkBAOGenxfuJ0qgb0GeQKBgQD5MyqGjq8s8nMWc8i5\n\
w0VuocnzVqQzqJICXxyYe49mTYtSfYoHrq5uBlCQI1G3ny4GiJTe+LuUl4GnJjd4\n\
X2oz/ufNE4I9yDsAyCLm6XJs0jyDUbqJucRcv6N7L+xvPCkos1njnFKCm0RqZRSA\n\
+tQvpF47MBhS5dsco8pFOEVBpwKBgQC9CghhVf58ncMeg3Nl1EIOIWRBAY4JJo/h\n\
T6e3KTFC/6XDfPGdMmm8j3p+wiAgLKaZlNChI6Nx6F0AGW0XjJCzQp6fs2M/e9oj\n\
Y96ErEvVCkGep7+VBhYUg/KU1WkAaEZ5muejmvFNC1pIsSD1QNJOLGYqVvKiYREF\n\
vw8C2mcu5QKBgG59s0NKDH2/WiwAVmWXITf2YFaWeeO1wFdw2Hr7fg98HmQK6aKS\n\
XyDFh/8AygDCgWPAN1HNs04lBwWXukyS8cHwKdMR7VN7bj3gfyknJOb/KHmJSU47\n\
occF6XR7QTfo0s8LBrYW37atJV6PRtIRZPdix60ym/ZVmBtQvCSI2JxNAoGAHZ1j\n\
wLPzIVypw67+NhaxnnsWtKRktwRGiBqtgKFAaWmZc22wgFr0e6jSnOcWl1PHacoJ\n\
gSUPJvorD6fsEkNgK+Uk6on0424ot2Ce7JP9cUuhChTni5YfgWlGaJCiWYD8gXKG\n\
FXhhkxtTMo4lRqa4C60i+EEU0+F3BDpxRJYokg0CgYEAvnsJzC9nwInF6dhT4tGh\n\
nfmrcxk3qz2MmyCF3889oeaDIJ/7vrwYbTENvphk4blFmEg5wjJPviCjEFtZ4/w8\n\
CBIaSjJOvsu2eW39cwtamJkczQaMB83jDSzgHrhYH5WXc5l1tyeWthb8ujjqfgc/\n\
6BchMTGxA2wKl6MRysVNsZw=\n\
-----END PRIVATE KEY-----\n\
";

/// The same key, PKCS#1 (`BEGIN RSA PRIVATE KEY`).
const RSA_PUSH_KEY_PKCS1: &str = "\
-----BEGIN RSA PRIVATE KEY-----\n\
MIIEowIBAAKCAQEAuASKjVoF76mEA1iIeGghlMtf4rgsiIPrB0eTU0iqnheKUHHR\n\
+fl7zKQW/2YEHVhATo1wAsYl8KgI/wvIjtME1n9oZ0RPvxPgSJuF0rNFd4jPY0gK\n\
fEJePEkh4xT9F2h08Fp3GcQfUwKT44PMMZ/5JYPQPDK4R8vpP5u+S6whZJ/J+wyW\n\
oYaPPRRcrJOP7FntwzPHZRzhfTdJNHVRmf2h0OakLlpn01GsLbwbHXUQjJAmHFpl\n\
kgHNLJVTyHvqySgrWCTJ4USsI1w9CyyYYMc1ax+OIKyEVHnPBl2qX/T2VxIekhyF\n\
mGH72vB4llkUsqkdFDxb7zMImC0enUobZ/C8YwIDAQABAoIBABXa9uMKPHGWI4dg\n\
3iHW1EOKKA2TAY8Gg+/YZhIFK7vHtfYPSU4JfdT0mYVPMNE/aFvWsTqocrHIyKYU\n\
rdxGCb65YRqquAH3XV2iQwb0Tcgq/TP1xsZdUjiSGFk9EUDUzNa4bTQn4USIUNeR\n\
EWZvcTWDGJnzDYSmyOwfa5Qskca+fj+/zotqrf9AX1z1UUfHEAQIUB+/mpF7xGlY\n\
IuW6jmrY3FZ4GuqOk+q03AD8Y6LYYstre06OZ6RJtJIyvv2ii6ytYFy/zfRXdbJu\n\
ZqKH901gX1UEcktwO2rlLrBGtBvGmpWrOSfVtTr9ie8fITSnS2fFpAQDhnp8X7id\n\
KoG9BnkCgYEA+TMqho6vLPJzFnPIucNFbqHJ81akM6iSAl8cmHuPZk2LUn2KB66u\n\
bgZQkCNRt58uBoiU3vi7lJeBpyY3eF9qM/7nzROCPcg7AMgi5ulybNI8g1G6ibnE\n\
XL+jey/sbzwpKLNZ45xSgptEamUUgPrUL6ReOzAYUuXbHKPKRThFQacCgYEAvQoI\n\
YVX+fJ3DHoNzZdRCDiFkQQGOCSaP4U+ntykxQv+lw3zxnTJpvI96fsIgICymmZTQ\n\
oSOjcehdABltF4yQs0Ken7NjP3vaI2PehKxL1QpBnqe/lQYWFIPylNVpAGhGeZrn\n\
o5rxTQtaSLEg9UDSTixmKlbyomERBb8PAtpnLuUCgYBufbNDSgx9v1osAFZllyE3\n\
9mBWlnnjtcBXcNh6+34PfB5kCumikl8gxYf/AMoAwoFjwDdRzbNOJQcFl7pMkvHB\n\
8CnTEe1Te2494H8pJyTm/yh5iUlOO6HHBel0e0E36NLPCwa2Ft+2rSVej0bSEWT3\n\
YsetMpv2VZgbULwkiNicTQKBgB2dY8Cz8yFcqcOu/jYWsZ57FrSkZLcERogarYCh\n\
QGlpmXNtsIBa9Huo0pznFpdTx2nKCYElDyb6Kw+n7BJDYCvlJOqJ9ONuKLdgnuyT\n\
/XFLoQoU54uWH4FpRmiQolmA/IFyhhV4YZMbUzKOJUamuAutIvhBFNPhdwQ6cUSW\n\
KJINAoGBAL57CcwvZ8CJxenYU+LRoZ35q3MZN6s9jJsghd/PPaHmgyCf+768GG0x\n\
Db6YZOG5RZhIOcIyT74goxBbWeP8PAgSGkoyTr7Ltnlt/XMLWpiZHM0GjAfN4w0s\n\
4B64WB+Vl3OZdbcnlrYW/Lo46n4HP+gXITExsQNsCpejEcrFTbGc\n\
-----END RSA PRIVATE KEY-----\n\
";

/// Certificate + key as a legacy .p12 (password `keychain`), base64.
const LEGACY_P12_B64: &str = "\
MIIKQAIBAzCCCgYGCSqGSIb3DQEHAaCCCfcEggnzMIIJ7zCCBG8GCSqGSIb3DQEHBqCCBGAwggRc\
AgEAMIIEVQYJKoZIhvcNAQcBMBwGCiqGSIb3DQEMAQYwDgQINsQdMWT1UzYCAggAgIIEKD3+rpqb\
jiHoYRNJl+n1geGh8Y8ouRCyCqxJkNGFS7APUtSqyA1tB4JsqHFFbuOgm42yNYh0NlEuAP7h0q7N\
qFyjNfmlQ3R+T0/XpYE8hYnEkRCKQltxZMHR6gQPNLJ48Oqsd9/Chzeog+oS7BbpFECiT1NS/+z0\
xRpsENNYayNLeecYw/j9JoLZplXRa0L8k7BvonemIzXu6ReraMZPhrtutXGYhABXV2qzo+GTC5HX\
zO1tVSSP2TPGqGpJMwtuGfh/b0LPVUotcGQtY4Uz+58j3+YL4do0Fusa65KdBq4a1ZvcSwSIH5ls\
eoQa2eTPPrYjp0kSBPmYkaleFs1h6NA2pXICbq2CtUqzxTDy50EcDssb5hTsOtCSBBWNK5BT+/Xk\
Y4Iz4bMXsvPEaPsG6LQMCiTEnEuXb6cRsvvwX0G/PglJ3UFwXYzk9aUfxOnUdl1UE0CKOI9xyQ1o\
bcS33ThrFXBzgLI2HSc5WuJKGoL3abgph+Hmica4Ssvr6XABg/mDVgH1vQHgQO3bz3GTGnPYlA+4\
j/rv4qQ2I5yqNeBu35H7de3dV8rowrtQTRiZCgIWGtwZN07Yyl2bCbsJ2VTeD/3Tb4ZnxV3VGch7\
adjXHpcoXfngA7jABQ80DvVZqE1pwSp+AIMfH1EcCRzVXKjUj6uEymbild+whSfeXRZW3btQxSna\
ubeznvWsBAmbJ76cZnAThBL6GeI2c0upbaP6jezNeGY1Kt0SJkI1EiaOGhD0dl+N66khdtqrsALK\
x7xlePqE3FE/yjeGwuZ5Q5coiouufKIqAgKVYhKAUWU08J+3ID2mir+V4dRB8mBh3AKTTFxhvXrK\
BuU5XBCmyit4nCjcUXfabRr04MmgrVgfN8ooLiN3jVI8qf/wQag3UEv/GlJPRf3dblTHbvUZmwR2\
es/OLgtAt+fITKXyzW8KCJy5JpL0W+ElEMpwYG0UJP5iLNmuvIp4BBmkCFsXNmy2ZYSAd8s51YMl\
3Bk4eNOZkv/rgxZqAZRpLksMrexaISV7LPhVFOxjJlsOt3qOmYTEQ7jsL0Yf1Y7Xyp4neljGyIje\
y7YWKON+tCT63zgOeqxaRqDfhxXfSyv+Yf2ad2Dpo6cnLl02LQxb/XyCnbDylryzKh8FBSZB2MDR\
MDTpxM078/Rx5/oZ/1IYnJkmYm1XiLxH7vWLY8iteV0RV3x26jffUjT3G5J/FU7ht3czY0ajyETT\
kUOhzt0agYitdeYM4y1z/xXnHM3zoJgECetUozPUtGd61h1ht6VGGCW40TPxqhzjb93F1SZ4MD9M\
xYAVodUk05ot48Q/TWn8cS5zTsg/FI05OnY/eYtAJ+hfHvXH9s36+zWTB/6PGGQdmXvEt9vqlZRy\
P2WOEcwJeEmAFBdFrO6SivrSjmvdeRmuyLu7B0kbqipGMIIFeAYJKoZIhvcNAQcBoIIFaQSCBWUw\
ggVhMIIFXQYLKoZIhvcNAQwKAQKgggTuMIIE6jAcBgoqhkiG9w0BDAEDMA4ECEstlcognP6OAgII\
AASCBMhzURJ8qn40U8Vs52SA4ZSGKlm0GMF5ZyztD19o0fVBH6OpMD/aV9HxRzR/+LIrnAWPmfWy\
uLrrpWOkFNxgPTTtl9Zn5a4Dvh7FLrctekkVeX6G41S9TU0hO8P2HikZ7l44uTWibCPBa33leg7F\
nBfL4K11ebCg8jiPHB/KsxL+VkmQMJZUhie4SuBWxplEkJTqrktiJfmGvmFVX3cxp7EUqrqU0GS3\
AAFXu3Jac1FHF04q3aEKTsiGVHiMQkgJKk6rIXWPyLBh7j0gtMwlopH1fMxiFeQuUJhHWinA8YuL\
rj/UFXp2OmhBtmhpUpRXPntc8bofTGyK0J9hzzyfMu/QNe6vn6qTsQGmmoCQ+WZhIwCHxo+q8Hqj\
50F8B/jdj+VJ1dUv8NcEPJj1VmklEP57LCNNfM23Q4sK1rGYymdyb/ZQWNtKwCuU7tB6rtuK95Mn\
X/Jew86tuBQUgxTJQHqn1i+fzargT5XmEm4fSp82kwpeL/OQ+1B9HNdL81DQir4PDbOiq74gYBbn\
15uR5pSUFDF3WQpLqAsvDNje4HVoVc1f8OGBSVQvL88uEboIdZNOPf83EB5w3UzN7w4rDjOsVtoW\
H7ocHYBQwPpFOB+Ge/IGnvmi9amC4YDEwS8kVm9Shu/1Ui2lTfYlTEDjXMPBF4bAxFV4hoRQ975p\
m70J2bf+QLN9FgPxwrTSe6l5kTwF0uyrJzzUsL7DFaJYc2AsDh8VEz/kAPCmtkFyFmlQZIdl6vg6\
BmoPwdAU9wu74u2FNIq1TVonOQDoJH4enQmyIID+jfCS18dpWk1L4IN/UwT6I/P2HpceK+1GikZX\
pLkANqk7rf+mhfH51A24snWi3GZ141FMfFaUnNjxOEdp77kP0rQidAfBd67XI2p9xtFYrnHXJcmz\
I6Eef/zSjMGxxxKqMExs87Gd3sQ74yautccOFru53jZCFeBANhOJQvXMU3VevB6rHMxyKkAgRKwf\
WczBgjgtJio3tVFDhOR53STzqoN3yJe/2bGEPF/LwpWyTnLuJSuJW5dZIopJ+J/jtssfVwtvEzLV\
Qqyti93mAX/9EAP+J7PnRAxrDMsllBWZtYay8892YXkt9TEXOyCfxk6YeT1q0son45Gg/WZ8HIvG\
ttqb6oIRp7zv4E/dubk1xPcIPFomq5LWI4QtPFUqOivvupaQc+oodWAN6y/pa9OlZVb6w4xoJLO4\
N8OAZfMlAM0bzWgyqmyrPK4ti5wuPBO7aeVfIaBZuO6Pk08Ti4MAs9xF5jGyy5xl9tU3ZXjBLUyt\
eoifwYZhcW7PcGXZjSUTNZlLRo61xNP4XVXfRx77zwdqRFXjQRLyXC43rSEzfKYWiEEw64IoDwaE\
wLx9fOucOnaAHW2nQY+I9BlnRD5nS48MnngOEj31FXFf56M1BZJT/lh9r2AfwP1SvqcyE0wI+O+Y\
bUSppqhi+vD3H7JIqHvXX/RvQepJZQVAmd3k48SMvxZih/XCvAvJgiRP9pnt4Bl3BC6D20M8GGJh\
UPZ9eBZA17LPJpEeM0Eoz8BF6+u/Sgle04LTxTDjHIrHdxvAaoMeVF8m6cKSrYoEGWEljxf+CPiz\
0bqAeqsy67fNwBoVOP/Gu/HbBbZJ2h1kLUTTf13xHMAxXDAjBgkqhkiG9w0BCRUxFgQU+FS2OiC/\
47HajTcFc6tn+GFtArAwNQYJKoZIhvcNAQkUMSgeJgBBAHAAcABsAGUAIABQAHUAcwBoACAAUwBl\
AHIAdgBpAGMAZQBzMDEwITAJBgUrDgMCGgUABBSh/Cbr/v3PizoVNrpNyjZ44wkLVAQIOe7EiFf8\
uGMCAggA\
";

/// The same certificate and key as a legacy .p12 with an empty password (Keychain allows one).
const LEGACY_P12_EMPTY_PASSWORD_B64: &str = "\
MIIKQAIBAzCCCgYGCSqGSIb3DQEHAaCCCfcEggnzMIIJ7zCCBG8GCSqGSIb3DQEHBqCCBGAwggRc\
AgEAMIIEVQYJKoZIhvcNAQcBMBwGCiqGSIb3DQEMAQYwDgQIp1qVzgESCwICAggAgIIEKBZ+y81E\
MzoyI4DVOTEdI3qatA+dy/GCaK7YovjrLM28GhIDtsDEpRKo1Vh7kvZAVpah7enLlcnMvxQIr7cv\
a4UrclP91r41+hYjqEbgF+NHvjz0UaBf88hzxnLOy7JwHLYN2AgK9BHULaqCPKuXVEIVJhUMqYmB\
W5or4b2xUFpXKFBHoZEptLuwN6Q8RQGM06+HmtJwkgg1hcuyV+aaWovDsZcIhAgBXZTXadkz8VnT\
QHvsw/H3W2UyU/TiBgwPbpd2f1azrPGwUBLdgwCOl+gnb+Ja+9vdKtGGyJhnPcx5E3LX28/fm/ab\
hMkr+oQRH4uhAv+C8UCPrgMK9Plp7kWCbiN/kkMMnXHbtu8nMFkHIOmVnEiwab4FcR1s+P+Holdw\
iNoMjK02XWO0oKj8XZzQwDsA7gWtN6VNq2mEqGlnzlo8xFdG57qoYiJ16BMdBJDh+B9DLi6kvP0N\
NbTR6+xp+5rgJA/hO2c9598728tPbzNS9p1EMUx7IMiCre9ioKQllVNVzK1LpiLP6kYJJHSKIFZY\
Q8NszI2xGri9cHkPYNBRn6pFIsKsR10pfVeg5FgrgxC8PE3LILe682O0CPJKCFLN9eotqBmqDUlC\
hsc2AUJ2vyU0u2o4KnySL3IR6TUextAce559cGos10dwH6/jvx0mwV9aF/ZmRh3KCg/4uY2zRLzL\
819H6wQkd6tOoidC7Jc+ak3vF3BxNwb3cpBZFdWMtyzlVh7cB++mfmidik/7Yb3/yFHpsfWka7Xg\
JzmGOEY+fCa9+bqmGPo5ZBXs6yThHUQlXvX2B+FDpab/lXvBOMiocYsVpxtQh820uQIlYCIu1+TL\
tE4datl4ec5uLh0hpSqFg6Yde58n+v7Edd10DMBnX60qVuoHWOuhb4ZifiAmuHJUbPaPRTUq1uX8\
uF9Xa+u8X96k3tdt8XSlkZTk4lUlF7j/l3kSPNKhq5kcJRHvoSb25tQpeULZJaar76QLZxDnjGzL\
X+DWjxSd1bcG+P8JrOmUexoUCmqAZNDac+H+/+0mdEyEJqBQmq75tp1XGrSY1qLwFn7N1m6QJGNc\
KQjew/2WGPwk+I+SslcHVEDH6EEuveaC6/GcBSB9tHZsGnWbAqgnAXFvxfBJvUKqRS4evB420B2r\
T/Rf77+eE7W24qpHORotmoGiCUthixpRlBdzrZy0/ZyTebtBQFr4FMGZDfAlGATgLwycN7fOHLkV\
XVhThdr1pZ6/DglamrdxhUh5g1mrTYc5ziVt+xKyfzZYsB+lYK/euqnzJ8QD9ujf1ws2W1ptou1m\
KjmJNKPGRnUb3mFoJPacnXT2KZLk6TxfPJeKZ9Y0PxSCiO5RVvbQwkPVgRa2dqPoZudtwxcGAVfZ\
RyfNB8lUAWSUjcE5d8eOAw0fjpM80YnR0hhUpvXJX29MMIIFeAYJKoZIhvcNAQcBoIIFaQSCBWUw\
ggVhMIIFXQYLKoZIhvcNAQwKAQKgggTuMIIE6jAcBgoqhkiG9w0BDAEDMA4ECJ76IxeI6Vg2AgII\
AASCBMhjm5vRrwt19VTkoc9FN10LXf1Lrvb3ap+E1TNjvNHDN/F8bKsw7MGwMdNr1ysXDZLkBvqZ\
je6jQPcrfwgoxyFM77Zrc+W7PCdPsa6iS+VbDAxN3zNQ6B90M/HB3I87la4kWEcI2xnJho7y/XjM\
NtH00E1tnedGGgAJb6VhLpttelU8Yp/xjZWAXvyE9IYUWbqHxG5sg/Sjd0fJyQ95sHQXsIDYeVLW\
OfYQppXdnqYOB1AQ74SxIL4YaRAsz8AST9LH8FjCsGPfpi2OL74hNZAFmtaQWNB0xW91LNTkraqe\
rwLEH2SD0B5l5t+simsM17KDMI5juJVY33fSk5iVryaLMIU9QFaZj5SJr8FuHfbREQdMXCGcLXbA\
+eaoSt6Q9jsGeiLIjbYS6JahLE3C9NoHu8tjru9UjuRsMKtorBtpuFf/SeT2I+/MkyCuCNVaU9ux\
nEVCDroorZghnl0eNFv24wYUw7SfGfsEKZ7gku4m/NUaDA1g3uN2AfbTyoDPWH7uJT46uHpq6z3O\
8HQ0NVgqa57Xl++YBQCEy+AICSTPJhQ7G0bGyxEyLeIH3PbfS0JmNy3wVS+SUAsz6VCnFPjb1Zw/\
8XOBZKhf+kTbMdm388fQ1vXrhWbxaGBf76874H+y6c6SxCzoZz27u/JNZxlxxBJWKHS52++T6oLt\
lYGDu5ItuvSs6leVeUmRSr1bsrYXZyVebxfKZDYovXv9o5JQLbZL3V+A3ER+vBA7jeweV1Q4VntZ\
J0MnU3rjczmkp5bOnEI8Tz5howbQvlLR77xPVCQHPUbJmQWvjKvorOiIi037IVUzwo/K3pZL9rpi\
/hZ9bWqiTHhQk56Jyohg7SiyCvBJfpRFe8nin1rZcAMJ+p2h8XhzX5CRbcMzO9hd5QVSyQylcNbE\
JC+FCrbn8dIw4C49sFGmrdRbxKsTfsVMQ5AWvXyVNln0Uw/8zXZmwNTNxIZdmSNf3iQD8gcB9gPt\
HhVDCsY1Mp2/hs8IGBCTeWC95i/tzyqKPKoxqbzDyDYzmOc33ZI1wXU/EjQrqhe94Xvqmj7BzkCw\
64VbR6bqjfloi46MdXuz5nQGAYJJN8MtkDap16b8T7q3nW8tXTyWl20NaeaTQxQ7gPPYssOrCjLW\
bizfAsEyiv37QzrPROWuXS7vzcBBL8oM2AJAQHLnZtLdLNEUjer+zLlvj9hJG6Qq85pFHCse/g7Y\
2CfBdapDhMBQQdRJ0Dkku73lIV3gFugHdpz9xumeEXmUHp7R00VoCFlyVhzUPUQQEYqPlHbApjM2\
dR1impQ4aC/spwq9Rxm1cVESeSGPsd7mw8q5MHcI2cYm9T7jjH5EZVwH4ln96P6eq8wLqawYgBE8\
Rqtg/vx3G5oUKkIAaP9nbOju280wndXNzTbH7mQienjiMKEtgZAGr5dlOwBkGA1Rlxc2amgpJ5Lp\
vCVeNdDa1DifemyIu6F4ap/VK+3cQUSc6RP19fF3Z/ND/O32Uf7CLrd6Jw8u2udwjlfJffo0wb4h\
HDX1Ho0sSH92ATsdrTs2d0jV99dWy7ZP+OYyVkbPkxs9UWjUcl2P4v8vaMY81JMUCZhZL6WpaS/H\
8SlxW03A7bcN3jDqycHPxHekASkhBfQmAMvhfbsWfcwxXDAjBgkqhkiG9w0BCRUxFgQU+FS2OiC/\
47HajTcFc6tn+GFtArAwNQYJKoZIhvcNAQkUMSgeJgBBAHAAcABsAGUAIABQAHUAcwBoACAAUwBl\
AHIAdgBpAGMAZQBzMDEwITAJBgUrDgMCGgUABBRK3F3d22lpjTlZ+WLAGuMXEQ8L0AQIdzkq6ScB\
IAYCAggA\
";

/// The same as an OpenSSL 3 default .p12 (PBES2 AES-256-CBC, SHA-256 MAC), password `keychain`.
const MODERN_P12_B64: &str = "\
MIIK1gIBAzCCCowGCSqGSIb3DQEHAaCCCn0Eggp5MIIKdTCCBLIGCSqGSIb3DQEHBqCCBKMwggSf\
AgEAMIIEmAYJKoZIhvcNAQcBMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAgB5l2Pf44I\
fAICCAAwDAYIKoZIhvcNAgkFADAdBglghkgBZQMEASoEEJCEM4pep12/tk36UFepcq+AggQwGdof\
QV2dwZ2q+XAPdgR91cp91L9/6yDKGLwF4x5b6QuS8oyoWmLPDnuuUXmnbRt3g1WwS39mpjCKRRNG\
bfaasJpgvO43+TOfSLa/FnM3zuO9+2L5Jx5gxGm/INV1Q3rAUxLYOys3uG/uYu4aDvdkN8DLJpTz\
qSwEw3MRMjSJTO43Eu3+DleK++IPgiewyTT5eM25pWFtaoGwSNNTia8QksIbzBedCs6ZPUffKCt2\
6OxMDp9YGv8okk8qCt561Jhy1eZ+JzjwYP6vDBw5Dl8Hu0BX9nO08Nq+g5GjbSfwshDfRL6V6eIn\
SAjHHqTpZesKs8O21rt4/qVLbeZyRBedMrhv38J0N5G2ZKY8+O1S6GCTPHRzPeV/py/HaBXb2jyS\
wB3nzFwSHUzJTLO9M8GGVLjXY9CE7Bd302Hi5+k0urILj0/e72Ow8qveHAHi5HGc6/N6yhoSZD5P\
PfBZdVFoBJm7aUmRJC5g9YTgS6josLjjkN2WJxHRv71XUo2AUEwuHeiD/2jXrsOhBpXyhH6iuEIR\
kP+tzlnpjfUwaCKF3Amnj3pnlmNgOFsiWHhDdZJYLh2rXweuvRYAB9XikKk4GVtQyXHFE5Hz51WG\
NSxKAChwtWuUvzgVoxRBHNkh2z5F50ki1Ki2BhZYU18lx2qlO8n4mAKtxGXO7S5HjZ88rL4/VGqd\
4WK5A4/Y91m39ksOHdE+ztGDAl00JLH4tqcHjSyfr8q6O98wO5JhOuG5gAOaiXUQcCErimA/cVXc\
WQ6N6rKNLywMDMslS7r9PHQxRSKiJ+oBUK9+5JPcxJr7LLHgAEj4ihQdwY78qA1eRqy9oGSFIQVv\
v2rqRUFZZzYz5MRquG38gCNg71NQPcVnPMxkTDPIdE9vk1k2nVxf92uXwbfu+vm3cB6hCaR6yylD\
gwZraw1KlFwbsQkUIXbe2k5glv+pYpmkDvk8+E83cCGLbHZZE1r4Gj0zekvwl+Rr4JIskOrcMmhI\
QF+mNPd79bUYwcDbdjWBy6YsHMhTqSzEdn2TxjhgK7JOK6jo80YFCJZYRpjjE7DC1O7yF8xiodv6\
zxPOUVtYhjfE72XwtcMc1IcyhVe3z1Cdg+AYAcZFwPc8lZAXtvpssGjCA7tQIw5xdGwmP1O7k86C\
FE6Gq9RldNViaATCdOt9rQG2UTrHlgorqBdn8MLafwNGjbaYW1Iq1jsWJ7vA42oXPme6AF+gsQM1\
rcQNBpOxFrdHJdOJ/KCuI3GgvFOwquCQaZAGW2mVFz7VS+T2F7ni6aZ7dxgmMulICJqTpsLiLsv0\
byseVvU7lbfIE+S1GHsDoaqQsAPsNIHk4hmRD9FaTlKljHuHAqlrBXlcTf5XqbWh4Xnr0ocXKK8M\
mT7z06NfsKU5W9Rtl1y+HnO2uW0Cl0Uu/+gItO/h7tF8zPUN3UZCoNhBITCCBbsGCSqGSIb3DQEH\
AaCCBawEggWoMIIFpDCCBaAGCyqGSIb3DQEMCgECoIIFMTCCBS0wVwYJKoZIhvcNAQUNMEowKQYJ\
KoZIhvcNAQUMMBwECDqZ6+U0MYHyAgIIADAMBggqhkiG9w0CCQUAMB0GCWCGSAFlAwQBKgQQWDOG\
tGGSoGGERwJADxjfgwSCBNCOunL5BwskkY/16y3fe/f5QlsXfWdQQgYnAlZr3ruTKmMvE/37+agk\
5IgFezb5uQbL8OsXGvzkgXTXDemiAKrbG7EsfqzV5esVDxsYMwZgcNnTFY8XltcCAtgXGUZfV+cg\
2zo9ggNe9AK6wu6AoYnpO8P9qnQaSjOgv/KkKis/UZ5Yz7KuAngcrV0f0v5fv4MJSDsHL3O0rzgb\
lWFmBJ5Cc8YC0apOCA35BqfqhN4DE6aTeJVQef8wTtfopquz3LvsoXgIoZ7V7e4BIsNaRQSgHtOS\
Iqv1B/0LT+aXcYphqPNAU87jf+p2rX1q4DaIvFq+2fd/YpVeHdfYSqwyfvjx3awEfO36MyWPKmRZ\
/sm4m3QIgiPkmkbpKniYl9AEWiRXpeQjPv8kjSBJax/A3jJldwwN8Gkd/YnTaiJ4pcGF6/dNwF3H\
67BtM1BPbWh7gHcdIUav9nhz6FuaJFqprpuQKRYHI90P2aYby6PWbCzKvi2ET2P86i16Ap4Q5Ol0\
/GOfIGvd+UQR22T8pAi74kqmAtYSovDBq+ClcUAs5MMrkoLgbbfP13djckSVNHo8MJL8Nj18v5yL\
GUeaLYE8Nv41JJ8vEDCPcwgXu9humqCPyYBGOHVfLNvtQGww4TRz2OlLapaRc538XyBa5zIfi38I\
HZ04paMmuRvomHAAG79Ipq+FjDtnBgNKUehEHRodcYhkcdofW0DyO2+AFsWE9HOenQxQX3USPcoa\
CJaI9c4zWjnH9HIyhBa7EjdVDEHN9Rp2ltDSEbC9UTpxop2Oa2TudWhY6lqd+M5tQ6v3U3K5qGZE\
nbjfzyKPHgoDHv1p7JZDnoW4qZCWHfqj6TH77zH8xy1dL2iycs4ScPJ9BJP//U1We2PZFIxlXICL\
cT89S2Sn67oFGRwwG9OqoN4Xux7/JyjRC2dj4DhIkQAJcnbHFAWxRewyQ4Ekggnr0onURqr1vZbG\
vtanxGTxY5iHAPVmB3Ut7U85Ecv2k8LnzCHs7L5NpQ0h9zg7Dp7SjsEsI+kMADgaD96FBEqKbrtz\
eue5KGQHZDa8Za75+bVrMZ543Bs302lTyPGUveCCNXZktlhNvO2C/y8hMci+d4rQlEU1uAVLbY81\
6CAKKB3ebP7F/5edOzWNxaICmnhonCYSrTH2o/CSUIUjUQFx133PpJ5rI3uGluBzUf85ylmuctah\
cRPiaL0ho151LqQwKpVqPZCkEddpNI3oA3XIrPtVzsD2g+fgaNDgmw7d0N4A/I4Cmb+EttKoAeoh\
NuCSw9u5Dl1PYdaeWc2Bg8X3Y8qlzOxSGxz2AQekV1lm+FzxwuMtFyIUBwFMpcL56c9Ynj5P91kd\
zMsYCpkgsP4AlGl7xFhvhL6zmmrHdr50yoJUTrDf6qvoJpJ2GV2acLgGOkmpC/9JtEQwYxDoGIL8\
yhXfV269Y32b6nCHRObf5XUL0wkzIaIgyGJgb9Tscbr4elIK5q2ioXRDt1ObRlA3V76XAqF+ilz/\
iDp15S7ItJOySti60p4Mx259VlbAFT4fwXxRVi+m7VJGIxXy8lH1AyudghChFuoyTRBSoAuZfzfc\
1tk0c5EwnJxNW6EW5S7F3e4f4yDa2HfGyY+I5QxV8TK8rKgMzwbd/L2Iln1ZxFtv3BhkhTFcMCMG\
CSqGSIb3DQEJFTEWBBT4VLY6IL/jsdqNNwVzq2f4YW0CsDA1BgkqhkiG9w0BCRQxKB4mAEEAcABw\
AGwAZQAgAFAAdQBzAGgAIABTAGUAcgB2AGkAYwBlAHMwQTAxMA0GCWCGSAFlAwQCAQUABCDv0C29\
lBPVQJKpHaD5I4Fmsvbmn3UNUHY11+zBrqqrnQQIzWlNn/lddcICAggA\
";
