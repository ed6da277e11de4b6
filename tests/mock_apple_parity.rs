//! The mock is as strict as Apple, and no stricter: what real clients send and Apple accepts
//! (the `a2` crate's standard-base64 provider tokens) is accepted, with a warning recorded;
//! error answers are typed JSON; push certificates carry Apple's extensions and the mock
//! enforces the topics they list. Over a real TLS + HTTP/2 socket, with a plain h2 client.
#![cfg(feature = "mock")]

mod mock_support;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use herald::mock::PushCertificateOptions;
use mock_support::*;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;

/// A provider token the way the `a2` crate builds it: ES256 over `header.claims`, every part
/// in *standard* base64 with padding (`+`, `/`, `=`), signature raw r‖s.
fn a2_style_jwt(p8_pem: &str, kid: &str, iss: &str, iat: i64) -> String {
    let key = PrivatePkcs8KeyDer::from_pem_slice(p8_pem.as_bytes()).unwrap();
    let rng = SystemRandom::new();
    let pair = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        key.secret_pkcs8_der(),
        &rng,
    )
    .unwrap();
    let h = STANDARD.encode(format!(r#"{{"alg":"ES256","kid":"{kid}"}}"#));
    let c = STANDARD.encode(format!(r#"{{"iss":"{iss}","iat":{iat}}}"#));
    let signed = format!("{h}.{c}");
    let sig = pair.sign(&rng, signed.as_bytes()).unwrap();
    format!("{signed}.{}", STANDARD.encode(sig.as_ref()))
}

#[tokio::test]
async fn a2_style_standard_base64_tokens_are_accepted_with_a_warning() {
    let s = Setup::new().await;
    let jwt = a2_style_jwt(&s.p8, KEY_ID, TEAM_ID, now_secs());
    // 64 signature bytes always pad to `==`: this is not base64url.
    assert!(jwt.ends_with("=="), "{jwt}");
    assert!(
        URL_SAFE_NO_PAD
            .decode(jwt.rsplit('.').next().unwrap())
            .is_err()
    );
    let mut c = s.client().await;
    for _ in 0..2 {
        // The second request reuses the connection's adopted token: still flagged.
        let a = push(&token(1)).bearer(&jwt).send(&mut c).await.unwrap();
        assert_eq!(a.status, 200, "{:?}", a.reason());
    }
    let pushes = s.mock.pushes();
    assert_eq!(pushes.len(), 2);
    for p in &pushes {
        assert!(p.accepted());
        assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
        assert!(p.warnings[0].contains("base64"), "{:?}", p.warnings);
    }
}

#[tokio::test]
async fn strict_base64url_tokens_carry_no_warning() {
    let s = Setup::new().await;
    let mut c = s.client().await;
    let a = push(&token(1)).bearer(&s.jwt()).send(&mut c).await.unwrap();
    assert_eq!(a.status, 200);
    assert!(s.mock.pushes()[0].warnings.is_empty());
}

#[tokio::test]
async fn a_standard_base64_token_with_a_bad_signature_is_still_refused() {
    let s = Setup::new().await;
    let other = rcgen::KeyPair::generate().unwrap().serialize_pem();
    let forged = a2_style_jwt(&other, KEY_ID, TEAM_ID, now_secs());
    let mut c = s.client().await;
    let a = push(&token(1)).bearer(&forged).send(&mut c).await.unwrap();
    assert_eq!(a.status, 403);
    assert_eq!(a.reason().as_deref(), Some("InvalidProviderToken"));
    // Not base64 in either alphabet.
    let a = push(&token(1))
        .bearer("e30*.e30*.AAAA")
        .send(&mut c)
        .await
        .unwrap();
    assert_eq!(a.reason().as_deref(), Some("InvalidProviderToken"));
}

#[tokio::test]
async fn error_answers_are_json_with_a_content_type_and_200s_have_no_body() {
    let s = Setup::new().await;
    let mut c = s.client().await;
    for req in [
        push(&token(1)),             // 403 MissingProviderToken
        push("zz").bearer(&s.jwt()), // 400 BadDeviceToken
        Req::new(http::Method::GET, "/3/device/00").bearer(&s.jwt()), // 405
        Req::new(http::Method::POST, "/nowhere").bearer(&s.jwt()), // 404 BadPath
    ] {
        let a = req.send(&mut c).await.unwrap();
        assert!(a.status >= 400, "{}", a.status);
        assert_eq!(
            a.header("content-type"),
            Some("application/json"),
            "{}",
            a.status
        );
        assert!(a.reason().is_some());
    }
    let ok = push(&token(1)).bearer(&s.jwt()).send(&mut c).await.unwrap();
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("content-type"), None);
    assert!(ok.body.is_empty());
}

#[tokio::test]
async fn issued_certificates_carry_apples_extensions() {
    let s = Setup::new().await;
    for (options, sandbox, production) in [
        (PushCertificateOptions::universal(), true, true),
        (PushCertificateOptions::sandbox_only(), true, false),
        (PushCertificateOptions::production_only(), false, true),
        (PushCertificateOptions::no_environment(), false, false),
    ] {
        let cert = s
            .mock
            .issue_push_certificate_with(BUNDLE, &options)
            .unwrap();
        let der =
            rustls_pki_types::CertificateDer::from_pem_slice(cert.cert_pem().as_bytes()).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
        let oids: Vec<String> = parsed
            .extensions()
            .iter()
            .map(|e| e.oid.to_id_string())
            .collect();
        let has = |oid: &str| oids.iter().any(|o| o == oid);
        assert_eq!(has("1.2.840.113635.100.6.3.1"), sandbox, "{oids:?}");
        assert_eq!(has("1.2.840.113635.100.6.3.2"), production, "{oids:?}");
        assert!(has("1.2.840.113635.100.6.3.6"), "{oids:?}");
        assert_eq!((cert.sandbox(), cert.production()), (sandbox, production));
        // The topics extension, decoded independently here: SEQUENCE of UTF8String topic,
        // SEQUENCE { UTF8String kind }.
        let ext = parsed
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.2.840.113635.100.6.3.6")
            .unwrap();
        let (_, seq) = x509_parser::der_parser::parse_der(ext.value).unwrap();
        let items = seq.as_sequence().unwrap();
        let topics: Vec<&str> = items
            .iter()
            .step_by(2)
            .map(|i| i.as_str().unwrap())
            .collect();
        let kinds: Vec<&str> = items
            .iter()
            .skip(1)
            .step_by(2)
            .map(|i| i.as_sequence().unwrap()[0].as_str().unwrap())
            .collect();
        assert_eq!(
            topics,
            [
                BUNDLE,
                "com.example.app.voip",
                "com.example.app.complication"
            ]
        );
        assert_eq!(kinds, ["app", "voip", "complication"]);
    }
}

#[tokio::test]
async fn under_a_certificate_only_the_listed_topics_are_allowed() {
    let s = Setup::with(herald::mock::MockApns::builder().accept_unknown_tokens(true)).await;
    let options = PushCertificateOptions::universal().topics([BUNDLE, "com.example.app.voip"]);
    let cert = s
        .mock
        .issue_push_certificate_with(BUNDLE, &options)
        .unwrap();
    let mut c = connect(&s.mock, Some(&cert)).await;
    let a = push(&token(1)).send(&mut c).await.unwrap();
    assert_eq!(a.status, 200, "{:?}", a.reason());
    let a = push(&token(1))
        .header("apns-topic", "com.example.app.voip")
        .header("apns-push-type", "voip")
        .send(&mut c)
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{:?}", a.reason());
    let a = push(&token(1))
        .header("apns-topic", "com.example.app.complication")
        .header("apns-push-type", "complication")
        .send(&mut c)
        .await
        .unwrap();
    assert_eq!(a.status, 400);
    assert_eq!(a.reason().as_deref(), Some("TopicDisallowed"));
}
