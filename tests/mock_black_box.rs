//! Black-box audit of the mock APNs server (feature `mock`) as a server: a raw HTTP/2 client
//! (`tests/mock_support`, no herald client code) sends it what Apple documents, and each test pins
//! one answer a user relies on, decided from `../shared/APNS.md` and issue 4, not from the mock's
//! implementation. Time moves with the mock's injectable clock; no test asserts a wall-clock budget.
//!
//! A test that found a bug carries a `// BUG:` comment saying what was expected (and where that
//! comes from) and what the mock does.
#![cfg(feature = "mock")]

mod mock_support;

use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use herald::mock::{AuthKind, Fault, MockApns, MockClock, PushCertificateOptions};
use http::Method;
use mock_support::*;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;

macro_rules! assert_rejects {
    ($answer:expr, $status:expr, $reason:expr) => {{
        let a = $answer;
        assert_eq!(
            (a.status, a.reason().as_deref()),
            ($status, Some($reason)),
            "body {:?}",
            String::from_utf8_lossy(&a.body)
        );
        assert_eq!(a.json(), serde_json::json!({ "reason": $reason }), "exact body");
    }};
}

/// `8-4-4-4-12` lowercase hex: Apple's canonical UUID form (APNS.md §2).
fn is_lowercase_canonical_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// A JSON body of exactly `n` bytes, mostly two-byte UTF-8 characters (so bytes != chars).
fn body_of(n: usize) -> String {
    let base = r#"{"aps":{},"x":""}"#.len();
    let fill = n - base;
    let s = format!(
        r#"{{"aps":{{}},"x":"{}{}"}}"#,
        "\u{e9}".repeat(fill / 2),
        "a".repeat(fill % 2)
    );
    assert_eq!(s.len(), n);
    s
}

/// A JWT with an arbitrary header and claims, ES256 (r||s) over them with the `.p8` key.
fn sign_raw(p8_pem: &str, header: &str, claims: &str) -> String {
    let key = PrivatePkcs8KeyDer::from_pem_slice(p8_pem.as_bytes()).unwrap();
    let rng = SystemRandom::new();
    let pair = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        key.secret_pkcs8_der(),
        &rng,
    )
    .unwrap();
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let sig = pair.sign(&rng, signed.as_bytes()).unwrap();
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

fn clock_secs(clock: &MockClock) -> i64 {
    use herald::mock::Clock as _;
    clock.now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A first accepted push, so a token connection is past the one-stream ramp.
async fn warm(c: &mut Client, jwt: &str) {
    let a = push(&token(1)).bearer(jwt).send(c).await.unwrap();
    assert_eq!(a.status, 200, "warm-up: {:?}", a.reason());
}

// ----- apns-id, apns-unique-id -----

/// APNS.md §2: "`apns-id` canonical lowercase UUID (8-4-4-4-12); echoed back; APNs makes one if
/// absent". The one the mock makes must itself be canonical and lowercase, and differ per push.
#[tokio::test]
async fn generated_apns_id_is_a_fresh_lowercase_canonical_uuid() {
    let s = Setup::new().await;
    let mut c = s.client().await;
    let jwt = s.jwt();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let a = push(&token(1)).bearer(&jwt).send(&mut c).await.unwrap();
        assert_eq!(a.status, 200);
        let id = a.header("apns-id").unwrap().to_owned();
        assert!(is_lowercase_canonical_uuid(&id), "{id}");
        assert!(!seen.contains(&id), "apns-id reused: {id}");
        seen.push(id);
    }
    // Also on a rejection without a client id.
    let a = push(&token(9)).bearer(&jwt).send(&mut c).await.unwrap();
    assert_eq!(a.status, 400);
    assert!(is_lowercase_canonical_uuid(a.header("apns-id").unwrap()));
}

/// APNS.md §2: the client's `apns-id` is "echoed back": Apple reports errors with it, so every
/// rejection (400, 403, 410, 413) must carry the id the client sent.
#[tokio::test]
async fn client_apns_id_is_echoed_on_every_kind_of_rejection() {
    let s = Setup::new().await;
    s.mock
        .mark_unregistered(&token(4), UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    let mut c = s.client().await;
    let jwt = s.jwt();
    let id = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
    let cases: Vec<(Req, u16)> = vec![
        (push(&token(1)), 403),              // MissingProviderToken
        (push(&token(9)).bearer(&jwt), 400), // BadDeviceToken
        (push(&token(4)).bearer(&jwt), 410), // Unregistered
        (push(&token(1)).bearer(&jwt).body(body_of(5000)), 413),
    ];
    for (req, status) in cases {
        let a = req.header("apns-id", id).send(&mut c).await.unwrap();
        assert_eq!(a.status, status, "{:?}", a.reason());
        assert_eq!(a.header("apns-id"), Some(id), "status {status}");
    }
}

/// APNS.md §6: `apns-unique-id` is the key for Apple's delivery log: a lowercase UUID, its own
/// value (not the `apns-id`), one per accepted push.
#[tokio::test]
async fn apns_unique_id_is_its_own_lowercase_uuid_per_push() {
    let s = Setup::new().await;
    let mut c = s.client().await;
    let jwt = s.jwt();
    let id = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
    let a = push(&token(1))
        .bearer(&jwt)
        .header("apns-id", id)
        .send(&mut c)
        .await
        .unwrap();
    let b = push(&token(1))
        .bearer(&jwt)
        .header("apns-id", id)
        .send(&mut c)
        .await
        .unwrap();
    let (ua, ub) = (
        a.header("apns-unique-id").unwrap(),
        b.header("apns-unique-id").unwrap(),
    );
    assert!(is_lowercase_canonical_uuid(ua) && is_lowercase_canonical_uuid(ub));
    assert_ne!(ua, id);
    assert_ne!(ua, ub, "one delivery-log key per push");
}

// ----- certificates and environments -----

/// APNS.md §6: `apns-unique-id` is sent by the "development environment only", and a certificate
/// for the other environment is 403 BadCertificateEnvironment: the mock answers as the
/// development environment (every 200 carries `apns-unique-id`), so a production-only push
/// certificate is refused.
#[tokio::test]
async fn production_only_certificate_is_bad_certificate_environment_on_the_sandbox() {
    let s = Setup::new().await;
    let sandbox = s
        .mock
        .issue_push_certificate_with(BUNDLE, &PushCertificateOptions::sandbox_only())
        .unwrap();
    let mut c = connect(&s.mock, Some(&sandbox)).await;
    let a = push(&token(1)).send(&mut c).await.unwrap();
    assert_eq!(a.status, 200);
    assert!(
        a.header("apns-unique-id").is_some(),
        "the mock answers as the development environment"
    );
    let production = s
        .mock
        .issue_push_certificate_with(BUNDLE, &PushCertificateOptions::production_only())
        .unwrap();
    let mut c = connect(&s.mock, Some(&production)).await;
    assert_rejects!(
        push(&token(1)).send(&mut c).await.unwrap(),
        403,
        "BadCertificateEnvironment"
    );
}

/// Module docs, rule 4: "certificate without subject UID: 403 BadCertificate" (APNS.md §4: the
/// subject UID is the bundle id). A certificate from a CA the mock was told to trust.
#[tokio::test]
async fn trusted_certificate_without_subject_uid_is_bad_certificate() {
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, "Apple Push Services: no uid");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();

    let s = Setup::with(MockApns::builder().trust_client_ca_pem(ca_cert.pem())).await;
    let mut c = connect_der(&s.mock, leaf_cert.der().to_vec(), leaf_key.serialize_der()).await;
    assert_rejects!(
        push(&token(1)).send(&mut c).await.unwrap(),
        403,
        "BadCertificate"
    );
}

/// APNS.md §2: `authorization` is "ignored under certificate auth": even a malformed bearer.
#[tokio::test]
async fn authorization_is_ignored_under_certificate_auth() {
    let s = Setup::new().await;
    let cert = s.mock.issue_push_certificate(BUNDLE).unwrap();
    let mut c = connect(&s.mock, Some(&cert)).await;
    let a = push(&token(1))
        .bearer("not.a.jwt")
        .send(&mut c)
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.reason());
}

/// APNS.md §2: `location` and `liveactivity` are "token auth only"; the module docs name the
/// answer under a certificate: 400 TopicDisallowed.
#[tokio::test]
async fn token_auth_only_push_types_are_topic_disallowed_under_a_certificate() {
    let s = Setup::new().await;
    let cert = s.mock.issue_push_certificate_with(
        BUNDLE,
        &PushCertificateOptions::universal().without_topics(),
    );
    let mut c = connect(&s.mock, Some(&cert.unwrap())).await;
    for (ty, topic) in [
        ("location", "com.example.app.location-query"),
        ("liveactivity", "com.example.app.push-type.liveactivity"),
    ] {
        let a = push(&token(1))
            .header("apns-push-type", ty)
            .header("apns-topic", topic)
            .send(&mut c)
            .await
            .unwrap();
        assert_rejects!(a, 400, "TopicDisallowed");
    }
}

// ----- payload -----

/// APNS.md §2: "Payload limits: 4096 bytes; 5120 for VoIP", "byte-exact": the limit is in bytes
/// of the body (here mostly two-byte characters), for every push type.
#[tokio::test]
async fn payload_limit_is_byte_exact_for_each_push_type() {
    let s = Setup::new().await;
    let mut c = s.client().await;
    let jwt = s.jwt();
    warm(&mut c, &jwt).await;
    let types: [(&str, &str, Option<&str>, usize); 7] = [
        ("alert", BUNDLE, None, 4096),
        ("background", BUNDLE, Some("5"), 4096),
        ("complication", "com.example.app.complication", None, 4096),
        (
            "fileprovider",
            "com.example.app.pushkit.fileprovider",
            None,
            4096,
        ),
        ("location", "com.example.app.location-query", None, 4096),
        (
            "liveactivity",
            "com.example.app.push-type.liveactivity",
            None,
            4096,
        ),
        ("voip", "com.example.app.voip", None, 5120),
    ];
    for (ty, topic, priority, limit) in types {
        let req = |n: usize| {
            let mut r = push(&token(1))
                .bearer(&jwt)
                .header("apns-push-type", ty)
                .header("apns-topic", topic)
                .body(body_of(n));
            if let Some(p) = priority {
                r = r.header("apns-priority", p);
            }
            r
        };
        let a = req(limit).send(&mut c).await.unwrap();
        assert_eq!(a.status, 200, "{ty} at {limit}: {:?}", a.reason());
        let a = req(limit + 1).send(&mut c).await.unwrap();
        assert_eq!(
            (a.status, a.reason().as_deref()),
            (413, Some("PayloadTooLarge")),
            "{ty} at {}",
            limit + 1
        );
    }
}

/// Issue 4: "payload non-empty, valid JSON"; module docs rule 8: "400 BadRequestPayload (not a
/// JSON object)". JSON that is not an object, and an object followed by garbage, are refused.
#[tokio::test]
async fn payload_that_is_not_one_json_object_is_refused() {
    let s = Setup::new().await;
    let mut c = s.client().await;
    let jwt = s.jwt();
    warm(&mut c, &jwt).await;
    for body in [
        r#"[{"aps":{}}]"#,
        r#""aps""#,
        "42",
        r#"{"aps":{}} x"#,
        r#"{"aps":{},}"#,
    ] {
        let a = push(&token(1))
            .bearer(&jwt)
            .body(body)
            .send(&mut c)
            .await
            .unwrap();
        assert_eq!(a.status, 400, "{body}: {:?}", a.reason());
        assert_eq!(a.reason().as_deref(), Some("BadRequestPayload"), "{body}");
    }
}

// ----- headers -----

/// APNS.md §2: "`apns-collapse-id` at most 64 bytes, else 400 BadCollapseId": bytes, not chars.
#[tokio::test]
async fn collapse_id_limit_counts_bytes() {
    let s = Setup::new().await;
    let mut c = s.client().await;
    let jwt = s.jwt();
    warm(&mut c, &jwt).await;
    let ok = push(&token(1))
        .bearer(&jwt)
        .header("apns-collapse-id", &"\u{e9}".repeat(32)) // 64 bytes
        .send(&mut c)
        .await
        .unwrap();
    assert_eq!(ok.status, 200, "{:?}", ok.reason());
    let a = push(&token(1))
        .bearer(&jwt)
        .header("apns-collapse-id", &format!("{}a", "\u{e9}".repeat(32))) // 33 chars, 65 bytes
        .send(&mut c)
        .await
        .unwrap();
    assert_rejects!(a, 400, "BadCollapseId");
}

/// APNS.md §2 table: each push type's topic is the bundle id plus its suffix; the bare bundle id
/// is BadTopic for the suffixed types.
#[tokio::test]
async fn every_push_type_needs_its_topic_suffix() {
    let s = Setup::new().await;
    let mut c = s.client().await;
    let jwt = s.jwt();
    warm(&mut c, &jwt).await;
    for (ty, suffix) in [
        ("voip", ".voip"),
        ("complication", ".complication"),
        ("fileprovider", ".pushkit.fileprovider"),
        ("location", ".location-query"),
        ("liveactivity", ".push-type.liveactivity"),
        ("pushtotalk", ".voip-ptt"),
        ("widgets", ".push-type.widgets"),
        ("controls", ".push-type.controls"),
    ] {
        let topic = format!("{BUNDLE}{suffix}");
        let a = push(&token(1))
            .bearer(&jwt)
            .header("apns-push-type", ty)
            .header("apns-topic", &topic)
            .header("apns-expiration", "0")
            .send(&mut c)
            .await
            .unwrap();
        assert_eq!(a.status, 200, "{ty} on {topic}: {:?}", a.reason());
        let a = push(&token(1))
            .bearer(&jwt)
            .header("apns-push-type", ty)
            .header("apns-topic", BUNDLE)
            .header("apns-expiration", "0")
            .send(&mut c)
            .await
            .unwrap();
        assert_eq!(
            (a.status, a.reason().as_deref()),
            (400, Some("BadTopic")),
            "{ty} on the bare bundle id"
        );
    }
}

/// Module docs rule 6: "when absent the type is inferred from the topic suffix, else `alert`"
/// (APNS.md §2: the header is required on watchOS only). A complication topic without the
/// header is a complication; a bare bundle id without it is an alert (priority 10 fine).
#[tokio::test]
async fn missing_push_type_is_inferred_from_the_topic() {
    let s = Setup::new().await;
    let mut c = s.client().await;
    let jwt = s.jwt();
    warm(&mut c, &jwt).await;
    let a = push(&token(1))
        .bearer(&jwt)
        .without("apns-push-type")
        .header("apns-topic", "com.example.app.complication")
        .send(&mut c)
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.reason());
    let rec = s.mock.pushes().pop().unwrap();
    assert_eq!(rec.push_type, None, "recorded as sent: no header");
    let a = push(&token(1))
        .bearer(&jwt)
        .without("apns-push-type")
        .header("apns-priority", "10")
        .send(&mut c)
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.reason());
}

/// APNS.md §2: background "priority must be 5" (so 1 is refused too); pushtotalk "priority 10".
#[tokio::test]
async fn priority_rules_per_push_type() {
    let s = Setup::new().await;
    let mut c = s.client().await;
    let jwt = s.jwt();
    warm(&mut c, &jwt).await;
    let a = push(&token(1))
        .bearer(&jwt)
        .header("apns-push-type", "background")
        .header("apns-priority", "1")
        .send(&mut c)
        .await
        .unwrap();
    assert_rejects!(a, 400, "BadPriority");
    let ptt = |p: &str| {
        push(&token(1))
            .bearer(&jwt)
            .header("apns-push-type", "pushtotalk")
            .header("apns-topic", "com.example.app.voip-ptt")
            .header("apns-expiration", "0")
            .header("apns-priority", p)
    };
    assert_rejects!(ptt("5").send(&mut c).await.unwrap(), 400, "BadPriority");
    assert_eq!(ptt("10").send(&mut c).await.unwrap().status, 200);
    // alert: 10 or 5 (and 1, never waking the device).
    for p in ["10", "5", "1"] {
        let a = push(&token(1)).bearer(&jwt).header("apns-priority", p);
        assert_eq!(
            a.send(&mut c).await.unwrap().status,
            200,
            "alert priority {p}"
        );
    }
}

/// APNS.md §2: `apns-id` is 8-4-4-4-12 hex; near misses are 400 BadMessageId.
#[tokio::test]
async fn near_miss_apns_ids_are_bad_message_id() {
    let s = Setup::new().await;
    let mut c = s.client().await;
    let jwt = s.jwt();
    warm(&mut c, &jwt).await;
    for id in [
        "123e4567-e89b-12d3-a456-42661417400g",   // non-hex
        "{123e4567-e89b-12d3-a456-42661417400a}", // braces
        "123e4567-e89b-12d3-a456-42661417400",    // short
        "123e4567-e89b12d3-a456-42661417400a-",   // wrong grouping
        "",
    ] {
        let a = push(&token(1))
            .bearer(&jwt)
            .header("apns-id", id)
            .send(&mut c)
            .await
            .unwrap();
        assert_eq!(
            (a.status, a.reason().as_deref()),
            (400, Some("BadMessageId")),
            "{id:?}"
        );
    }
}

/// APNS.md §2: `apns-expiration` is UNIX seconds: digits only; `0` and a past or far instant are
/// numbers and accepted.
#[tokio::test]
async fn expiration_must_be_decimal_seconds() {
    let s = Setup::new().await;
    let mut c = s.client().await;
    let jwt = s.jwt();
    warm(&mut c, &jwt).await;
    for ok in ["0", "1", "4102444800"] {
        let a = push(&token(1)).bearer(&jwt).header("apns-expiration", ok);
        assert_eq!(a.send(&mut c).await.unwrap().status, 200, "{ok}");
    }
    for bad in ["1.5", "+5", "0x10", "", "1e9"] {
        let a = push(&token(1)).bearer(&jwt).header("apns-expiration", bad);
        let a = a.send(&mut c).await.unwrap();
        assert_eq!(
            (a.status, a.reason().as_deref()),
            (400, Some("BadExpirationDate")),
            "{bad:?}"
        );
    }
}

// ----- method, path, device state -----

/// APNS.md §1: a push is `POST`; the other methods on the push path are 405 MethodNotAllowed.
#[tokio::test]
async fn other_methods_on_the_push_path_are_method_not_allowed() {
    let s = Setup::new().await;
    let mut c = s.client().await;
    let jwt = s.jwt();
    warm(&mut c, &jwt).await;
    for m in [Method::PUT, Method::DELETE, Method::PATCH] {
        let a = push(&token(1))
            .bearer(&jwt)
            .method(m.clone())
            .send(&mut c)
            .await
            .unwrap();
        assert_rejects!(a, 405, "MethodNotAllowed");
    }
}

/// Module docs rule 1: "other methods 405"; RFC 9110 §9.3.2: a server "MUST NOT send content in
/// the response" to HEAD. So a HEAD is 405 MethodNotAllowed, headers only.
#[tokio::test]
async fn head_is_method_not_allowed_without_content() {
    let s = Setup::new().await;
    let mut c = s.client().await;
    let jwt = s.jwt();
    warm(&mut c, &jwt).await;
    let a = push(&token(1))
        .bearer(&jwt)
        .method(Method::HEAD)
        .body(vec![])
        .send(&mut c)
        .await;
    let a = a.expect("an answer, not a stream error");
    assert_eq!((a.status, a.data_frames), (405, 0));
}

/// APNS.md §7: tokens are hex; the mock registers them "any case": a token sent in uppercase
/// reaches the device registered in lowercase, and the 410 of an unregistered one is served
/// whatever the case.
#[tokio::test]
async fn device_tokens_match_whatever_their_hex_case() {
    let s = Setup::new().await;
    let mut c = s.client().await;
    let jwt = s.jwt();
    let a = push(&token(0xab).to_uppercase())
        .bearer(&jwt)
        .send(&mut c)
        .await
        .unwrap();
    assert_eq!(a.status, 400, "unknown token");
    s.mock.register_device(&token(0xab), BUNDLE);
    let a = push(&token(0xab).to_uppercase())
        .bearer(&jwt)
        .send(&mut c)
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.reason());
    s.mock.mark_unregistered(
        &token(0xab).to_uppercase(),
        UNIX_EPOCH + Duration::from_millis(5),
    );
    let a = push(&token(0xab)).bearer(&jwt).send(&mut c).await.unwrap();
    assert_eq!(
        a.json(),
        serde_json::json!({"reason": "Unregistered", "timestamp": 5})
    );
}

/// `accept_unknown_tokens` accepts only *unknown* tokens: an unregistered one still answers 410
/// with its timestamp, and one registered for another app still DeviceTokenNotForTopic.
#[tokio::test]
async fn accept_unknown_tokens_keeps_known_device_state() {
    let s = Setup::with(MockApns::builder().accept_unknown_tokens(true)).await;
    s.mock.mark_unregistered(
        &token(4),
        UNIX_EPOCH + Duration::from_millis(1_700_000_000_001),
    );
    s.mock.register_device(&token(5), "com.other.app");
    let mut c = s.client().await;
    let jwt = s.jwt();
    assert_eq!(
        push(&token(6))
            .bearer(&jwt)
            .send(&mut c)
            .await
            .unwrap()
            .status,
        200
    );
    let a = push(&token(4)).bearer(&jwt).send(&mut c).await.unwrap();
    assert_eq!(
        (a.status, a.json()),
        (
            410,
            serde_json::json!({"reason": "Unregistered", "timestamp": 1_700_000_000_001u64})
        )
    );
    assert_rejects!(
        push(&token(5)).bearer(&jwt).send(&mut c).await.unwrap(),
        400,
        "DeviceTokenNotForTopic"
    );
    // And switched off at run time, unknown tokens are BadDeviceToken again.
    s.mock.set_accept_unknown_tokens(false);
    assert_rejects!(
        push(&token(6)).bearer(&jwt).send(&mut c).await.unwrap(),
        400,
        "BadDeviceToken"
    );
}

/// `register_device(token, "*")`: "any bundle" — accepted on any app's topic.
#[tokio::test]
async fn a_device_registered_for_any_bundle_takes_every_topic() {
    let s = Setup::new().await;
    s.mock.register_device(&token(7), "*");
    let mut c = s.client().await;
    let jwt = s.jwt();
    for topic in [BUNDLE, "com.other.app"] {
        let a = push(&token(7))
            .bearer(&jwt)
            .header("apns-topic", topic)
            .send(&mut c)
            .await;
        assert_eq!(a.unwrap().status, 200, "{topic}");
    }
}

// ----- provider tokens (JWT) -----

/// APNS.md §3: header `{"alg":"ES256","kid":...}`: any other `alg` is 403 InvalidProviderToken,
/// even with a valid ES256 signature over the parts.
#[tokio::test]
async fn jwt_alg_other_than_es256_is_invalid_provider_token() {
    let s = Setup::new().await;
    let claims = format!(r#"{{"iss":"{TEAM_ID}","iat":{}}}"#, now_secs());
    for alg in ["none", "HS256", "ES384", "es256"] {
        let jwt = sign_raw(
            &s.p8,
            &format!(r#"{{"alg":"{alg}","kid":"{KEY_ID}"}}"#),
            &claims,
        );
        let mut c = s.client().await;
        let a = push(&token(1)).bearer(&jwt).send(&mut c).await.unwrap();
        assert_rejects!(a, 403, "InvalidProviderToken");
    }
}

/// APNS.md §3: claims `{"iss":..., "iat": <unix s>}`: without `iat`, or with a non-numeric one,
/// the token is 403 InvalidProviderToken; without `kid` in the header, too.
#[tokio::test]
async fn jwt_without_iat_or_kid_is_invalid_provider_token() {
    let s = Setup::new().await;
    let header = format!(r#"{{"alg":"ES256","kid":"{KEY_ID}"}}"#);
    let now = now_secs();
    for (h, claims) in [
        (header.clone(), format!(r#"{{"iss":"{TEAM_ID}"}}"#)),
        (
            header.clone(),
            format!(r#"{{"iss":"{TEAM_ID}","iat":"{now}"}}"#),
        ),
        (header.clone(), format!(r#"{{"iat":{now}}}"#)),
        (
            r#"{"alg":"ES256"}"#.to_owned(),
            format!(r#"{{"iss":"{TEAM_ID}","iat":{now}}}"#),
        ),
    ] {
        let jwt = sign_raw(&s.p8, &h, &claims);
        let mut c = s.client().await;
        let a = push(&token(1)).bearer(&jwt).send(&mut c).await.unwrap();
        assert_rejects!(a, 403, "InvalidProviderToken");
    }
}

/// RFC 6750 / RFC 9110 §11.1: the auth scheme is case-insensitive; clients send `bearer`
/// (Apple's examples) or `Bearer`.
#[tokio::test]
async fn bearer_scheme_is_case_insensitive() {
    let s = Setup::new().await;
    let mut c = s.client().await;
    let a = push(&token(1))
        .header("authorization", &format!("Bearer {}", s.jwt()))
        .send(&mut c)
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.reason());
}

/// APNS.md §3: "`iat` older than 1 hour → 403 ExpiredProviderToken", by the mock's clock: a
/// token issued 2 h before the mock's now is expired on first use, 59 min is not.
#[tokio::test]
async fn iat_age_is_judged_by_the_mock_clock_on_first_use() {
    let clock = MockClock::starting_now();
    let s = Setup::with(MockApns::builder().clock(clock.clone())).await;
    let now = clock_secs(&clock);
    let mut c = s.client().await;
    let old = sign_jwt(&s.p8, KEY_ID, TEAM_ID, now - 2 * 3600);
    assert_rejects!(
        push(&token(1)).bearer(&old).send(&mut c).await.unwrap(),
        403,
        "ExpiredProviderToken"
    );
    let mut c = s.client().await;
    let fine = sign_jwt(&s.p8, KEY_ID, TEAM_ID, now - 59 * 60);
    assert_eq!(
        push(&token(1))
            .bearer(&fine)
            .send(&mut c)
            .await
            .unwrap()
            .status,
        200
    );
}

/// A client whose clock runs a little ahead (seconds to a minute) mints an `iat` in the mock's
/// future; APNS.md gives no rule against it and Apple serves such clients: accepted.
#[tokio::test]
async fn iat_slightly_in_the_future_is_accepted() {
    let clock = MockClock::starting_now();
    let s = Setup::with(MockApns::builder().clock(clock.clone())).await;
    let jwt = sign_jwt(&s.p8, KEY_ID, TEAM_ID, clock_secs(&clock) + 60);
    let mut c = s.client().await;
    assert_eq!(
        push(&token(1))
            .bearer(&jwt)
            .send(&mut c)
            .await
            .unwrap()
            .status,
        200
    );
}

/// APNS.md §3: "a new token more often than every 20 minutes on one connection → 429
/// TooManyProviderTokenUpdates": one second short of 20 minutes is refused, 20 minutes is not.
#[tokio::test]
async fn token_refresh_boundary_is_twenty_minutes() {
    let clock = MockClock::starting_now();
    let s = Setup::with(MockApns::builder().clock(clock.clone())).await;
    let t0 = clock_secs(&clock);
    let mut c = s.client().await;
    let first = sign_jwt(&s.p8, KEY_ID, TEAM_ID, t0);
    assert_eq!(
        push(&token(1))
            .bearer(&first)
            .send(&mut c)
            .await
            .unwrap()
            .status,
        200
    );
    clock.advance(Duration::from_secs(1199));
    let early = sign_jwt(&s.p8, KEY_ID, TEAM_ID, t0 + 1199);
    assert_rejects!(
        push(&token(1)).bearer(&early).send(&mut c).await.unwrap(),
        429,
        "TooManyProviderTokenUpdates"
    );
    clock.advance(Duration::from_secs(1));
    let on_time = sign_jwt(&s.p8, KEY_ID, TEAM_ID, t0 + 1200);
    let a = push(&token(1)).bearer(&on_time).send(&mut c).await.unwrap();
    assert_eq!(a.status, 200, "{:?}", a.reason());
}

/// APNS.md §3: "One token per team, shared by all connections": the same token on several
/// connections is no update on any of them, and a refresh on one does not count against another.
#[tokio::test]
async fn one_token_shared_by_connections_is_not_an_update() {
    let clock = MockClock::starting_now();
    let s = Setup::with(MockApns::builder().clock(clock.clone())).await;
    let t0 = clock_secs(&clock);
    let first = sign_jwt(&s.p8, KEY_ID, TEAM_ID, t0);
    let mut a = s.client().await;
    let mut b = s.client().await;
    for _ in 0..2 {
        for c in [&mut a, &mut b] {
            assert_eq!(
                push(&token(1)).bearer(&first).send(c).await.unwrap().status,
                200
            );
        }
    }
    clock.advance(Duration::from_secs(50 * 60));
    let next = sign_jwt(&s.p8, KEY_ID, TEAM_ID, t0 + 50 * 60);
    for c in [&mut a, &mut b] {
        assert_eq!(
            push(&token(1)).bearer(&next).send(c).await.unwrap().status,
            200
        );
    }
    let stats = s.mock.stats();
    assert!(
        stats.connections.values().all(|c| c.tokens == 2),
        "{stats:?}"
    );
}

/// APNS.md §3: "Key scopes (2025): team keys per environment, topic-specific keys; mixing scopes
/// or environments on one connection → 403 UnrelatedKeyIdInToken": a topic-specific key's token
/// after a team key's on one connection is refused, not only a key of another team.
#[tokio::test]
async fn topic_specific_key_after_a_team_key_on_one_connection_is_unrelated() {
    let s = Setup::new().await;
    let topic_key = s.mock.generate_key("KEY2222222", TEAM_ID).unwrap();
    assert!(s.mock.restrict_key("KEY2222222", &[BUNDLE]));
    // On its own connection the topic-specific key works.
    let mut alone = s.client().await;
    let jwt2 = sign_jwt(&topic_key, "KEY2222222", TEAM_ID, now_secs());
    assert_eq!(
        push(&token(1))
            .bearer(&jwt2)
            .send(&mut alone)
            .await
            .unwrap()
            .status,
        200
    );
    // Mixed with the team key on one connection.
    let mut c = s.client().await;
    warm(&mut c, &s.jwt()).await;
    let later = sign_jwt(&topic_key, "KEY2222222", TEAM_ID, now_secs() + 22 * 60);
    assert_rejects!(
        push(&token(1)).bearer(&later).send(&mut c).await.unwrap(),
        403,
        "UnrelatedKeyIdInToken"
    );
}

/// `register_key` takes "a P-256 public key (... a SEC1 point)": a JWT signed with the matching
/// private key verifies.
#[tokio::test]
async fn a_key_registered_by_its_public_point_verifies() {
    let s = Setup::new().await;
    let donor = MockApns::start()
        .await
        .unwrap()
        .generate_key("X", "Y")
        .unwrap();
    let der = PrivatePkcs8KeyDer::from_pem_slice(donor.as_bytes()).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        der.secret_pkcs8_der(),
        &SystemRandom::new(),
    )
    .unwrap();
    s.mock
        .register_key("PUBKEY0001", "TEAM999999", pair.public_key().as_ref())
        .unwrap();
    let mut c = s.client().await;
    let jwt = sign_jwt(&donor, "PUBKEY0001", "TEAM999999", now_secs());
    assert_eq!(
        push(&token(1))
            .bearer(&jwt)
            .send(&mut c)
            .await
            .unwrap()
            .status,
        200
    );
}

// ----- streams and GOAWAY -----

/// APNS.md §3: "Exceeding the limit draws GOAWAY (error 7)": the raised limit is enforced, not
/// only the initial 1, and the refused stream is safe to retry (above the GOAWAY's last stream
/// id, or reset with REFUSED_STREAM).
#[tokio::test]
async fn the_raised_limit_is_enforced_and_the_refused_stream_is_retryable() {
    let s = Setup::with(MockApns::builder().max_streams(2)).await;
    let mut raw = Raw::connect(&s.mock, Some(b"h2".to_vec())).await;
    let path = format!("/3/device/{}", token(1));
    let auth = format!("bearer {}", s.jwt());
    let fields = [
        (":method", "POST"),
        (":scheme", "https"),
        (":path", path.as_str()),
        (":authority", "localhost"),
        ("authorization", auth.as_str()),
        ("apns-topic", BUNDLE),
        ("apns-push-type", "alert"),
    ];
    raw.headers(1, &fields, false).await;
    raw.write_frame(DATA, 0x1, 1, br#"{"aps":{"alert":"x"}}"#)
        .await;
    // Read until the 200 and the raised SETTINGS (ACKing every SETTINGS on the way).
    let (mut answered, mut raised) = (false, false);
    while !(answered && raised) {
        let f = raw.next().await.expect("frames");
        if f.kind == SETTINGS && f.flags & 1 == 0 {
            raw.write_frame(SETTINGS, 1, 0, &[]).await;
            raised |= f.max_streams() == Some(2);
        }
        if f.kind == HEADERS && f.stream == 1 {
            assert_eq!(f.payload[0], 0x88, ":status 200");
            answered = true;
        }
    }
    // A PING round trip: the mock has read our SETTINGS ACK.
    raw.write_frame(PING, 0, 0, &[9; 8]).await;
    loop {
        let f = raw.next().await.expect("PING ACK");
        if f.kind == PING && f.flags & 1 == 1 {
            break;
        }
    }
    for id in [3, 5, 7] {
        raw.headers(id, &fields, false).await;
    }
    // Everything the mock sends until it closes the connection.
    let mut seen = Vec::new();
    while let Some(f) = raw.next().await {
        seen.push(f);
    }
    let rst = |id: u32| {
        seen.iter()
            .find(|f| f.kind == RST_STREAM && f.stream == id)
            .map(|f| u32::from_be_bytes(f.payload[..4].try_into().unwrap()))
    };
    assert_eq!(
        (rst(3), rst(5)),
        (None, None),
        "streams within the limit reset: {seen:?}"
    );
    let goaway = seen.iter().find(|f| f.kind == GOAWAY).expect("GOAWAY");
    let (last, code, debug) = goaway.goaway();
    assert_eq!(code, 7, "REFUSED_STREAM");
    assert_eq!(debug, r#"{"reason":"TooManyRequests"}"#);
    // Stream 7 must be safe to retry: above last_stream_id, or reset with REFUSED_STREAM.
    assert!(
        last < 7 || rst(7) == Some(7),
        "stream 7: last_stream_id {last}, RST_STREAM {:?}; frames {:?}",
        rst(7),
        seen.iter()
            .map(|f| (f.kind, f.flags, f.stream))
            .collect::<Vec<_>>()
    );
}

/// Module docs: `goaway_all` is graceful: "in-flight streams are answered, then the connections
/// close"; RFC 9113 §6.8: the GOAWAY's last stream id covers the streams it will still answer.
#[tokio::test]
async fn graceful_goaway_answers_in_flight_streams_it_covers() {
    let s = Setup::new().await;
    let (mut c, frames) = connect_sniffed(&s.mock, None).await;
    let jwt = s.jwt();
    warm(&mut c, &jwt).await;
    s.mock.script(Fault::Delay(Duration::from_millis(500)));
    let resp = push(&token(1)).bearer(&jwt).start(&mut c).await.unwrap();
    let stream = resp.stream_id().as_u32();
    eventually(|| s.mock.stats().requests == 2).await;
    assert_eq!(s.mock.goaway_all("Shutdown"), 1);
    let a = read(resp).await.expect("in-flight stream answered");
    assert_eq!(a.status, 200);
    let g = wait_frame(&frames, |f| f.kind == GOAWAY).await;
    let (last, code, debug) = g.goaway();
    assert_eq!((code, debug.as_str()), (0, r#"{"reason":"Shutdown"}"#));
    assert!(
        last >= stream,
        "last_stream_id {last} < answered stream {stream}"
    );
    eventually(|| s.mock.open_connections() == 0).await;
}

/// `goaway_after(n)` is a graceful GOAWAY; RFC 9113 §6.8 and APNS.md §7 ("retry streams above
/// `last_stream_id` elsewhere"): every stream at or below the GOAWAY's last stream id is answered,
/// and nothing above it is processed (no answer, not accepted by the mock).
#[tokio::test]
async fn goaway_after_n_answers_what_it_covers_and_processes_nothing_above() {
    let s = Setup::with(MockApns::builder().goaway_after(2)).await;
    let (mut c, frames) = connect_sniffed(&s.mock, None).await;
    let jwt = s.jwt();
    warm(&mut c, &jwt).await;
    let mut pending = Vec::new();
    for _ in 0..4 {
        match push(&token(1)).bearer(&jwt).start(&mut c).await {
            Ok(p) => pending.push((p.stream_id().as_u32(), p)),
            Err(_) => break, // the GOAWAY already arrived: h2 opens no more streams
        }
    }
    let mut answers = Vec::new();
    for (id, p) in pending {
        answers.push((id, read(p).await.map(|a| a.status).ok()));
    }
    let g = wait_frame(&frames, |f| f.kind == GOAWAY).await;
    let (last, code, _) = g.goaway();
    assert_eq!(code, 0);
    for (id, status) in &answers {
        if *id <= last {
            assert_eq!(
                *status,
                Some(200),
                "stream {id} <= last {last}: {answers:?}"
            );
        } else {
            assert_eq!(
                *status, None,
                "stream {id} > last {last} answered: {answers:?}"
            );
        }
    }
    let answered = answers.iter().filter(|(_, s)| s.is_some()).count() as u64;
    eventually(|| s.mock.open_connections() == 0).await;
    assert_eq!(s.mock.stats().accepted, 1 + answered, "{answers:?}");
}

/// `set_goaway_after` at run time: the connection that reaches N requests gets GOAWAY Shutdown.
#[tokio::test]
async fn goaway_after_set_at_run_time() {
    let s = Setup::new().await;
    let (mut c, frames) = connect_sniffed(&s.mock, None).await;
    let jwt = s.jwt();
    warm(&mut c, &jwt).await;
    s.mock.set_goaway_after(Some(2));
    assert_eq!(
        push(&token(1))
            .bearer(&jwt)
            .send(&mut c)
            .await
            .unwrap()
            .status,
        200
    );
    let g = wait_frame(&frames, |f| f.kind == GOAWAY).await;
    assert_eq!(g.goaway().2, r#"{"reason":"Shutdown"}"#);
}

/// Module docs: "Dropping the MockApns stops the listener and closes every connection at once
/// (no GOAWAY)".
#[tokio::test]
async fn dropping_the_mock_closes_connections_without_goaway() {
    let Setup { mock, p8 } = Setup::new().await;
    let addr = mock.addr();
    let (mut c, frames) = connect_sniffed(&mock, None).await;
    let jwt = sign_jwt(&p8, KEY_ID, TEAM_ID, now_secs());
    assert_eq!(
        push(&token(1))
            .bearer(&jwt)
            .send(&mut c)
            .await
            .unwrap()
            .status,
        200
    );
    drop(mock);
    let failed = push(&token(1)).bearer(&jwt).send(&mut c).await;
    assert!(failed.is_err(), "{failed:?}");
    assert!(frames.lock().iter().all(|f| f.kind != GOAWAY), "no GOAWAY");
    // The listener closes (polled: the drop may take effect a moment later).
    let closed = async {
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), closed)
        .await
        .expect("listener still accepting after 30 s (hang guard)");
}

/// APNS.md §1: "HTTP/2 only (no HTTP/1 fallback)": a client offering only `http/1.1` by ALPN
/// gets no HTTP/1 answer.
#[tokio::test]
async fn no_http1_fallback() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = Setup::new().await;
    let Ok(mut tls) = tls_named(&s.mock, None, Some(b"http/1.1".to_vec()), "localhost").await
    else {
        return; // refused at the handshake: no fallback
    };
    let req = format!(
        "POST /3/device/{} HTTP/1.1\r\nHost: localhost\r\napns-topic: {BUNDLE}\r\ncontent-length: 2\r\n\r\n{{}}",
        token(1)
    );
    let _ = tls.write_all(req.as_bytes()).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut buf)).await;
    assert!(
        !buf.starts_with(b"HTTP/1"),
        "HTTP/1 answer: {:?}",
        String::from_utf8_lossy(&buf)
    );
}

// ----- scripted faults -----

/// Module docs: a scripted fault is used "pushes and broadcasts only", after the route check
/// (rule 1 before rule 2): a BadPath request or a malformed device token does not consume it.
#[tokio::test]
async fn scripted_faults_are_not_consumed_by_requests_that_fail_routing() {
    let s = Setup::new().await;
    let mut c = s.client().await;
    let jwt = s.jwt();
    warm(&mut c, &jwt).await;
    s.mock.script(Fault::reject(503, "Shutdown"));
    let a = Req::new(Method::POST, "/nowhere")
        .bearer(&jwt)
        .send(&mut c)
        .await
        .unwrap();
    assert_rejects!(a, 404, "BadPath");
    assert_rejects!(
        push("zz").bearer(&jwt).send(&mut c).await.unwrap(),
        400,
        "BadDeviceToken"
    );
    assert_eq!(s.mock.scripted(), 1);
    assert_rejects!(
        push(&token(1)).bearer(&jwt).send(&mut c).await.unwrap(),
        503,
        "Shutdown"
    );
}

/// `Fault::Accept`: "Answer 200 without validating"; `script_n` queues it N times;
/// `clear_script` drops what is left.
#[tokio::test]
async fn fault_accept_script_n_and_clear_script() {
    let s = Setup::new().await;
    let mut c = s.client().await;
    let jwt = s.jwt();
    warm(&mut c, &jwt).await;
    s.mock.script_n(2, Fault::Accept);
    for _ in 0..2 {
        // Unknown device: would be BadDeviceToken.
        assert_eq!(
            push(&token(9))
                .bearer(&jwt)
                .send(&mut c)
                .await
                .unwrap()
                .status,
            200
        );
    }
    assert_rejects!(
        push(&token(9)).bearer(&jwt).send(&mut c).await.unwrap(),
        400,
        "BadDeviceToken"
    );
    s.mock
        .script_n(3, Fault::reject(500, "InternalServerError"));
    s.mock.script_for_device(&token(1), Fault::Stall);
    assert_eq!(s.mock.scripted(), 4);
    s.mock.clear_script();
    assert_eq!(s.mock.scripted(), 0);
    assert_eq!(
        push(&token(1))
            .bearer(&jwt)
            .send(&mut c)
            .await
            .unwrap()
            .status,
        200
    );
}

/// `Fault::Delay`: "Answer after this delay (real time), then validate as usual".
#[tokio::test]
async fn fault_delay_still_validates() {
    let s = Setup::new().await;
    let mut c = s.client().await;
    let jwt = s.jwt();
    warm(&mut c, &jwt).await;
    s.mock.script(Fault::Delay(Duration::from_millis(20)));
    assert_rejects!(
        push(&token(9)).bearer(&jwt).send(&mut c).await.unwrap(),
        400,
        "BadDeviceToken"
    );
}

/// `set_error_rate`: changes the same setting as the builder's, while running.
#[tokio::test]
async fn error_rate_set_at_run_time() {
    let s = Setup::new().await;
    let mut c = s.client().await;
    let jwt = s.jwt();
    warm(&mut c, &jwt).await;
    s.mock.set_error_rate(1.0);
    let a = push(&token(1)).bearer(&jwt).send(&mut c).await.unwrap();
    assert!(matches!(a.status, 500 | 503), "{}", a.status);
    // Only "otherwise accepted pushes": a rejection keeps its own reason.
    assert_rejects!(
        push(&token(9)).bearer(&jwt).send(&mut c).await.unwrap(),
        400,
        "BadDeviceToken"
    );
    s.mock.set_error_rate(0.0);
    assert_eq!(
        push(&token(1))
            .bearer(&jwt)
            .send(&mut c)
            .await
            .unwrap()
            .status,
        200
    );
}

// ----- recording -----

/// Issue 4: every request is recorded with "auth kind, key id, ... answer given": a rejected
/// token's key id and team, a 410's timestamp, a stall's status 0; counters by status agree.
#[tokio::test]
async fn recording_keeps_rejections_timestamps_and_stalls() {
    let clock = MockClock::starting_now();
    let s = Setup::with(MockApns::builder().clock(clock.clone())).await;
    s.mock.mark_unregistered(
        &token(4),
        UNIX_EPOCH + Duration::from_millis(1_600_000_000_321),
    );
    let now = clock_secs(&clock);
    let mut c = s.client().await;
    let old = sign_jwt(&s.p8, KEY_ID, TEAM_ID, now - 7200);
    let a = push(&token(1)).bearer(&old).send(&mut c).await.unwrap();
    assert_eq!(a.reason().as_deref(), Some("ExpiredProviderToken"));
    let rec = s.mock.next_push(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        rec.auth,
        AuthKind::Token {
            key_id: Some(KEY_ID.into()),
            team_id: Some(TEAM_ID.into())
        }
    );
    assert_eq!((rec.status, rec.timestamp_ms), (403, None));

    let jwt = s.jwt();
    let mut c = s.client().await;
    warm(&mut c, &jwt).await;
    let _ = s.mock.next_push(Duration::from_secs(5)).await.unwrap();
    let a = push(&token(4)).bearer(&jwt).send(&mut c).await.unwrap();
    assert_eq!(a.status, 410);
    let rec = s.mock.next_push(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        (rec.status, rec.reason.as_deref(), rec.timestamp_ms),
        (410, Some("Unregistered"), Some(1_600_000_000_321))
    );

    s.mock.script(Fault::Stall);
    let stalled = push(&token(1)).bearer(&jwt).start(&mut c).await.unwrap();
    eventually(|| s.mock.stats().requests == 4).await;
    drop(stalled); // the client gives up: h2 resets the stream
    eventually(|| s.mock.pushes().len() == 4).await;
    assert_eq!(s.mock.pushes()[3].status, 0, "no answer sent");
    let stats = s.mock.stats();
    assert_eq!(stats.by_status.get(&403), Some(&1));
    assert_eq!(stats.by_status.get(&410), Some(&1));
    assert_eq!(stats.by_status.get(&200), Some(&1));
    assert_eq!(stats.by_reason.get("ExpiredProviderToken"), Some(&1));
}

/// A rejected token is never adopted: after an invalid or an expired token, a valid token on the
/// same connection is the connection's first token, not an update (no 429).
#[tokio::test]
async fn a_rejected_token_does_not_count_as_the_connections_token() {
    let clock = MockClock::starting_now();
    let s = Setup::with(MockApns::builder().clock(clock.clone())).await;
    let now = clock_secs(&clock);
    let mut c = s.client().await;
    let expired = sign_jwt(&s.p8, KEY_ID, TEAM_ID, now - 2 * 3600);
    assert_eq!(
        push(&token(1))
            .bearer(&expired)
            .send(&mut c)
            .await
            .unwrap()
            .status,
        403
    );
    let forged = sign_jwt(
        &MockApns::start()
            .await
            .unwrap()
            .generate_key(KEY_ID, TEAM_ID)
            .unwrap(),
        KEY_ID,
        TEAM_ID,
        now - 60,
    );
    assert_eq!(
        push(&token(1))
            .bearer(&forged)
            .send(&mut c)
            .await
            .unwrap()
            .status,
        403
    );
    let good = sign_jwt(&s.p8, KEY_ID, TEAM_ID, now);
    let a = push(&token(1)).bearer(&good).send(&mut c).await.unwrap();
    assert_eq!(a.status, 200, "{:?}", a.reason());
}

/// `set_drop_to_one_after_rejection` changes the builder's setting on a running mock: a rejection
/// on an open, raised connection sends its limit back to 1.
#[tokio::test]
async fn drop_to_one_after_rejection_set_at_run_time() {
    let s = Setup::new().await;
    let mut c = s.client().await;
    let jwt = s.jwt();
    warm(&mut c, &jwt).await;
    assert_eq!(c.current_max_send_streams(), 1000);
    s.mock.set_drop_to_one_after_rejection(true);
    assert_eq!(
        push(&token(9))
            .bearer(&jwt)
            .send(&mut c)
            .await
            .unwrap()
            .status,
        400
    );
    eventually(|| c.current_max_send_streams() == 1).await;
    warm(&mut c, &jwt).await;
    eventually(|| c.current_max_send_streams() == 1000).await;
}

/// `goaway(connection, reason, graceful)`: that connection only gets the GOAWAY with the reason;
/// another stays open and serving.
#[tokio::test]
async fn goaway_of_one_connection_leaves_the_others() {
    let s = Setup::new().await;
    let jwt = s.jwt();
    let (mut first, frames) = connect_sniffed(&s.mock, None).await;
    warm(&mut first, &jwt).await;
    let id = s.mock.pushes()[0].connection;
    let (mut second, other_frames) = connect_sniffed(&s.mock, None).await;
    warm(&mut second, &jwt).await;
    assert!(s.mock.goaway(id, "IdleTimeout", true));
    let g = wait_frame(&frames, |f| f.kind == GOAWAY).await;
    assert_eq!(g.goaway().2, r#"{"reason":"IdleTimeout"}"#);
    eventually(|| s.mock.open_connections() == 1).await;
    warm(&mut second, &jwt).await;
    assert!(other_frames.lock().iter().all(|f| f.kind != GOAWAY));
}

/// `drop_connections`: "Closes every open connection's socket without GOAWAY. Returns how many."
#[tokio::test]
async fn drop_connections_closes_without_goaway() {
    let s = Setup::new().await;
    let jwt = s.jwt();
    let (mut a, frames_a) = connect_sniffed(&s.mock, None).await;
    let (mut b, frames_b) = connect_sniffed(&s.mock, None).await;
    warm(&mut a, &jwt).await;
    warm(&mut b, &jwt).await;
    assert_eq!(s.mock.drop_connections(), 2);
    eventually(|| s.mock.open_connections() == 0).await;
    assert!(push(&token(1)).bearer(&jwt).send(&mut a).await.is_err());
    for f in [frames_a, frames_b] {
        assert!(f.lock().iter().all(|f| f.kind != GOAWAY));
    }
    // The listener still serves new connections.
    let mut c = s.client().await;
    warm(&mut c, &jwt).await;
}

/// `trust_client_ca_pem`: a push certificate (subject UID = bundle id) from the trusted CA
/// authenticates; `server_name` adds a name to the server certificate.
#[tokio::test]
async fn trusted_ca_certificates_and_extra_server_names_work() {
    let issuer = MockApns::start().await.unwrap();
    let cert = issuer.issue_push_certificate(BUNDLE).unwrap();
    let s = Setup::with(
        MockApns::builder()
            .trust_client_ca_pem(issuer.ca_pem())
            .server_name("apns.test"),
    )
    .await;
    let mut c = connect(&s.mock, Some(&cert)).await;
    assert_eq!(push(&token(1)).send(&mut c).await.unwrap().status, 200);
    assert!(
        tls_named(&s.mock, None, Some(b"h2".to_vec()), "apns.test")
            .await
            .is_ok()
    );
}

/// `error_rate`: "answered 500 InternalServerError or 503 ServiceUnavailable (half each)": over
/// 40 answers both appear (chance of not: 2^-39).
#[tokio::test]
async fn error_rate_answers_both_500_and_503() {
    let s = Setup::with(MockApns::builder().error_rate(1.0)).await;
    let mut c = s.client().await;
    let jwt = s.jwt();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let a = push(&token(1)).bearer(&jwt).send(&mut c).await.unwrap();
        seen.insert((a.status, a.reason()));
    }
    let want: std::collections::BTreeSet<_> = [
        (500, Some("InternalServerError".to_owned())),
        (503, Some("ServiceUnavailable".to_owned())),
    ]
    .into();
    assert_eq!(seen, want);
}

/// A device belongs to one bundle id: a topic that merely starts with it is another app
/// (DeviceTokenNotForTopic), while the bundle's own suffixed topics reach it.
#[tokio::test]
async fn a_topic_is_matched_to_the_device_bundle_exactly() {
    let s = Setup::new().await;
    s.mock.register_device(&token(3), "com.example");
    let mut c = s.client().await;
    let jwt = s.jwt();
    let a = push(&token(3))
        .bearer(&jwt)
        .header("apns-push-type", "voip")
        .header("apns-topic", "com.example.voip")
        .send(&mut c)
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.reason());
    for topic in ["com.example.app", "com.examplex"] {
        let a = push(&token(3))
            .bearer(&jwt)
            .header("apns-topic", topic)
            .send(&mut c)
            .await;
        assert_rejects!(a.unwrap(), 400, "DeviceTokenNotForTopic");
    }
}
