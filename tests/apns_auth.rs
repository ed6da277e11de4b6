//! Credentials: `.p8` keys, `.p12` files and PEM certificates give clear typed errors at
//! construction, and work against the mock when they are good.
#![cfg(all(feature = "apns", feature = "mock"))]

use std::time::{Duration, SystemTime};

use herald::apns::{ApnsClient, Certificate, Endpoint, ErrorKind, Payload, Push, TokenKey};
use herald::mock::MockApns;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

const BUNDLE: &str = "com.example.app";

fn p12_from_pem(cert_pem: &str, key_pem: &str, password: &str) -> Vec<u8> {
    use p12_keystore::{KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
    let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
    let key = match PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap() {
        PrivateKeyDer::Pkcs8(k) => k.secret_pkcs8_der().to_vec(),
        _ => panic!("expected PKCS#8"),
    };
    let chain = PrivateKeyChain::new(
        b"herald-test".to_vec(),
        PrivateKey::from_der(&key).unwrap(),
        [p12_keystore::Certificate::from_der(cert.as_ref()).unwrap()],
    );
    let mut store = KeyStore::new();
    store.add_entry("push", KeyStoreEntry::PrivateKeyChain(chain));
    store.writer(password).write().unwrap()
}

fn push() -> Push {
    Push::builder("ab".repeat(32), BUNDLE)
        .payload(&Payload::alert("hi"))
        .unwrap()
        .build()
        .unwrap()
}

#[tokio::test]
async fn p12_with_password_authenticates_against_the_mock() {
    let mock = MockApns::builder()
        .accept_unknown_tokens(true)
        .start()
        .await
        .unwrap();
    let issued = mock.issue_push_certificate(BUNDLE).unwrap();
    let p12 = p12_from_pem(issued.cert_pem(), issued.key_pem(), "s3cret");
    let cert = Certificate::from_p12(&p12, "s3cret").unwrap();
    assert!(cert.expires_at() > SystemTime::now());
    assert!(!cert.expires_within(Duration::from_secs(60)));
    let debug = format!("{cert:?}");
    assert!(!debug.contains("PRIVATE") && !debug.contains("s3cret"));
    let client = ApnsClient::builder()
        .endpoint(
            Endpoint::custom(&mock.url())
                .unwrap()
                .with_ca_pem(mock.ca_pem()),
        )
        .certificate(cert)
        .build()
        .unwrap();
    let outcome = client.send(push()).await;
    assert!(outcome.is_accepted(), "{outcome:?}");
}

#[tokio::test]
async fn p12_with_the_wrong_password_is_a_typed_error() {
    let mock = MockApns::start().await.unwrap();
    let issued = mock.issue_push_certificate(BUNDLE).unwrap();
    let p12 = p12_from_pem(issued.cert_pem(), issued.key_pem(), "right");
    let err = Certificate::from_p12(&p12, "wrong").unwrap_err();
    assert!(err.is_wrong_password(), "{err:?}");
    assert!(!err.to_string().contains("right"));
}

#[test]
fn garbage_p12_is_bad_certificate() {
    let err = Certificate::from_p12(b"\x30\x03\x02\x01\x03", "pw").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadCertificate);
    let err = Certificate::from_p12_file("/nonexistent/push.p12", "pw").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadCertificate);
}

#[test]
fn expired_certificate_is_rejected_with_its_date() {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["push".into()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2019, 1, 1);
    params.not_after = rcgen::date_time_ymd(2020, 1, 1);
    let cert = params.self_signed(&key).unwrap();
    let err = Certificate::from_pem(cert.pem(), key.serialize_pem()).unwrap_err();
    assert!(err.is_certificate_expired(), "{err:?}");
    let at = err.certificate_expired_at().unwrap();
    assert!(at < SystemTime::now());
}

#[test]
fn pem_certificate_with_a_bad_key_is_bad_key() {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["push".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let err = Certificate::from_pem(
        cert.pem(),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap_err();
    assert!(err.is_bad_key(), "{err:?}");
    let ok = Certificate::from_pem(cert.pem(), key.serialize_pem()).unwrap();
    assert!(ok.subject().contains("rcgen") || !ok.subject().is_empty());
}

#[test]
fn bad_p8_files_are_bad_key() {
    assert!(
        TokenKey::from_p8_file("/nonexistent/AuthKey.p8", "ABC1234567", "TEAM123456")
            .unwrap_err()
            .is_bad_key()
    );
    assert!(
        TokenKey::from_p8_pem("hello", "ABC1234567", "TEAM123456")
            .unwrap_err()
            .is_bad_key()
    );
    // An Ed25519 key is PKCS#8 but not P-256.
    let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let err = TokenKey::from_p8_pem(ed.serialize_pem(), "ABC1234567", "TEAM123456").unwrap_err();
    assert!(err.is_bad_key(), "{err:?}");
    // Key id and team id are checked too.
    let p256 = rcgen::KeyPair::generate().unwrap();
    assert!(
        TokenKey::from_p8_pem(p256.serialize_pem(), "", "TEAM123456")
            .unwrap_err()
            .is_bad_key()
    );
    let key = TokenKey::from_p8_pem(p256.serialize_pem(), "ABC1234567", "TEAM123456").unwrap();
    let debug = format!("{key:?}");
    assert!(debug.contains("ABC1234567") && !debug.contains("PRIVATE"));
}

/// Apple's key ids and team ids are exactly 10 letters and digits: anything else is refused when
/// the key is made (not answered 403 on the first push), and the error never repeats the value:
/// a `.p8` pasted into the key id must not reach a log.
#[test]
fn a_key_id_or_team_id_that_is_not_ten_letters_and_digits_is_refused_unprinted() {
    let p256 = rcgen::KeyPair::generate().unwrap();
    let pem = p256.serialize_pem();
    let secret_line = pem.lines().nth(1).unwrap().to_owned();
    for (key_id, team_id) in [
        ("ABC123456", "TEAM123456"),
        ("ABC12345678", "TEAM123456"),
        ("ABC1234567", "TEAM12345"),
        ("ABC 234567", "TEAM123456"),
        ("ABC1234567", "TEAM-23456"),
        (pem.as_str(), "TEAM123456"),
    ] {
        let err = TokenKey::from_p8_pem(&pem, key_id, team_id).unwrap_err();
        assert!(err.is_bad_key(), "{err:?}");
        let shown = format!("{err} {err:?}");
        assert!(
            shown.contains("10"),
            "says what Apple's ids look like: {shown}"
        );
        assert!(
            !shown.contains(&secret_line)
                && !shown.contains("ABC12345")
                && !shown.contains("TEAM12345"),
            "repeats the value: {shown}"
        );
    }
    assert!(TokenKey::from_p8_pem(&pem, "ABC1234567", "TEAM123456").is_ok());
}

#[tokio::test]
async fn a_key_the_mock_does_not_know_is_invalid_provider_token() {
    let mock = MockApns::builder()
        .accept_unknown_tokens(true)
        .start()
        .await
        .unwrap();
    let _registered = mock.generate_key("ABC1234567", "TEAM123456").unwrap();
    let other = rcgen::KeyPair::generate().unwrap();
    let key = TokenKey::from_p8_pem(other.serialize_pem(), "ABC1234567", "TEAM123456").unwrap();
    let client = ApnsClient::builder()
        .endpoint(
            Endpoint::custom(&mock.url())
                .unwrap()
                .with_ca_pem(mock.ca_pem()),
        )
        .token_auth(key)
        .build()
        .unwrap();
    let outcome = client.send(push()).await;
    assert_eq!(
        outcome.reason(),
        Some(&herald::apns::Reason::InvalidProviderToken)
    );
}

#[tokio::test]
async fn token_only_push_types_fail_early_under_a_certificate() {
    let mock = MockApns::builder()
        .accept_unknown_tokens(true)
        .start()
        .await
        .unwrap();
    let issued = mock.issue_push_certificate(BUNDLE).unwrap();
    let client = ApnsClient::builder()
        .endpoint(
            Endpoint::custom(&mock.url())
                .unwrap()
                .with_ca_pem(mock.ca_pem()),
        )
        .certificate(Certificate::from_pem(issued.cert_pem(), issued.key_pem()).unwrap())
        .build()
        .unwrap();
    let live = Push::builder("ab".repeat(32), BUNDLE)
        .push_type(herald::apns::PushType::LiveActivity)
        .build()
        .unwrap();
    let outcome = client.send(live).await;
    assert!(
        outcome.error().is_some_and(|e| e.is_invalid_push()),
        "{outcome:?}"
    );
    assert!(mock.pushes().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Apple's certificate extensions: the client reads the environments and topics a push
// certificate covers, and refuses a mismatch before anything is sent.

use herald::apns::{Environment, PushType};
use herald::mock::PushCertificateOptions;

async fn cert_mock() -> MockApns {
    MockApns::builder()
        .accept_unknown_tokens(true)
        .start()
        .await
        .unwrap()
}

fn client_for(
    mock: &MockApns,
    cert: Certificate,
    env: Environment,
) -> Result<ApnsClient, herald::apns::Error> {
    ApnsClient::builder()
        .endpoint(
            Endpoint::custom(&mock.url())
                .unwrap()
                .with_ca_pem(mock.ca_pem())
                .with_environment(env),
        )
        .certificate(cert)
        .build()
}

fn read_both_ways(issued: &herald::mock::PushCertificate) -> [Certificate; 2] {
    let p12 = p12_from_pem(issued.cert_pem(), issued.key_pem(), "pw");
    [
        Certificate::from_p12(&p12, "pw").unwrap(),
        Certificate::from_pem(issued.cert_pem(), issued.key_pem()).unwrap(),
    ]
}

#[tokio::test]
async fn certificate_environments_are_read_and_a_mismatch_is_refused_before_connecting() {
    let mock = cert_mock().await;
    // The mock answers as one environment (the sandbox by default): a client for production
    // talks to a production mock trusting the same push certificates.
    let production = MockApns::builder()
        .accept_unknown_tokens(true)
        .environment(herald::mock::Environment::Production)
        .trust_client_ca_pem(mock.ca_pem())
        .start()
        .await
        .unwrap();
    let cases = [
        (
            PushCertificateOptions::universal(),
            vec![Environment::Sandbox, Environment::Production],
        ),
        (
            PushCertificateOptions::sandbox_only(),
            vec![Environment::Sandbox],
        ),
        (
            PushCertificateOptions::production_only(),
            vec![Environment::Production],
        ),
        (PushCertificateOptions::no_environment(), vec![]),
    ];
    for (options, environments) in cases {
        let issued = mock.issue_push_certificate_with(BUNDLE, &options).unwrap();
        for cert in read_both_ways(&issued) {
            assert_eq!(cert.environments(), environments.as_slice(), "{options:?}");
            assert_eq!(cert.bundle_id(), Some(BUNDLE));
            for env in [Environment::Sandbox, Environment::Production] {
                // No extension at all: nothing to check, APNs decides.
                let covered = environments.is_empty() || environments.contains(&env);
                let server = match env {
                    Environment::Production => &production,
                    _ => &mock,
                };
                match client_for(server, cert.clone(), env) {
                    Ok(client) => {
                        assert!(covered, "{options:?} against {env} was not refused");
                        let outcome = client.send(push()).await;
                        assert!(outcome.is_accepted(), "{options:?} {env}: {outcome:?}");
                    }
                    Err(e) => {
                        assert!(!covered, "{options:?} against {env}: {e}");
                        assert_eq!(e.kind(), ErrorKind::CertificateMismatch);
                        assert!(e.to_string().contains(env.as_str()), "{e}");
                    }
                }
            }
        }
    }
    // Refused mismatches never reached the servers.
    for server in [&mock, &production] {
        assert_eq!(server.stats().requests, server.stats().accepted);
    }
}

#[tokio::test]
async fn apples_default_endpoints_know_their_environment() {
    let mock = cert_mock().await;
    let issued = mock
        .issue_push_certificate_with(BUNDLE, &PushCertificateOptions::sandbox_only())
        .unwrap();
    let cert = Certificate::from_pem(issued.cert_pem(), issued.key_pem()).unwrap();
    for (endpoint, ok) in [
        (Endpoint::Sandbox, true),
        (Endpoint::SandboxAlt, true),
        (Endpoint::Production, false),
        (Endpoint::ProductionAlt, false),
    ] {
        let built = ApnsClient::builder()
            .endpoint(endpoint.clone())
            .certificate(cert.clone())
            .build();
        assert_eq!(built.is_ok(), ok, "{endpoint:?}");
        if let Err(e) = built {
            assert_eq!(e.kind(), ErrorKind::CertificateMismatch);
        }
    }
}

#[tokio::test]
async fn a_push_to_a_topic_the_certificate_does_not_list_fails_before_sending() {
    let mock = cert_mock().await;
    let options = PushCertificateOptions::universal().topics([BUNDLE, "com.example.app.voip"]);
    let issued = mock.issue_push_certificate_with(BUNDLE, &options).unwrap();
    for cert in read_both_ways(&issued) {
        assert_eq!(
            cert.topics(),
            Some(&[BUNDLE.to_owned(), "com.example.app.voip".to_owned()][..])
        );
        assert!(cert.covers_topic("com.example.app.voip"));
        assert!(!cert.covers_topic("com.example.app.complication"));
        let client = client_for(&mock, cert, Environment::Sandbox).unwrap();
        let before = mock.stats().requests;
        let complication = Push::builder("ab".repeat(32), "com.example.app.complication")
            .push_type(PushType::Complication)
            .payload(&Payload::alert("tick"))
            .unwrap()
            .build()
            .unwrap();
        let outcome = client.send(complication).await;
        let err = outcome.error().expect("refused before sending");
        assert_eq!(err.kind(), ErrorKind::CertificateMismatch, "{err}");
        assert_eq!(mock.stats().requests, before, "nothing reached the server");
        let voip = Push::builder("ab".repeat(32), "com.example.app.voip")
            .push_type(PushType::Voip)
            .payload(&Payload::alert("ring"))
            .unwrap()
            .build()
            .unwrap();
        let outcome = client.send(voip).await;
        assert!(outcome.is_accepted(), "{outcome:?}");
        assert!(client.send(push()).await.is_accepted());
    }
}

#[tokio::test]
async fn without_a_topics_extension_the_bundle_id_and_its_suffixes_are_covered() {
    let mock = cert_mock().await;
    let issued = mock
        .issue_push_certificate_with(
            BUNDLE,
            &PushCertificateOptions::universal().without_topics(),
        )
        .unwrap();
    let cert = Certificate::from_pem(issued.cert_pem(), issued.key_pem()).unwrap();
    assert_eq!(cert.topics(), None);
    assert!(cert.covers_topic(BUNDLE) && cert.covers_topic("com.example.app.voip"));
    assert!(!cert.covers_topic("com.other.app") && !cert.covers_topic("com.example.application"));
    let client = client_for(&mock, cert, Environment::Production).unwrap();
    let other = Push::builder("ab".repeat(32), "com.other.app")
        .payload(&Payload::alert("hi"))
        .unwrap()
        .build()
        .unwrap();
    let outcome = client.send(other).await;
    assert_eq!(
        outcome.error().map(|e| e.kind()),
        Some(ErrorKind::CertificateMismatch)
    );
    assert!(client.send(push()).await.is_accepted());
}

#[test]
fn a_certificate_without_apples_extensions_is_not_refused() {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["push".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let cert = Certificate::from_pem(cert.pem(), key.serialize_pem()).unwrap();
    assert!(cert.environments().is_empty());
    assert_eq!((cert.topics(), cert.bundle_id()), (None, None));
    assert!(cert.covers_topic("anything.at.all"));
    for endpoint in [Endpoint::Sandbox, Endpoint::Production] {
        assert!(
            ApnsClient::builder()
                .endpoint(endpoint)
                .certificate(cert.clone())
                .build()
                .is_ok()
        );
    }
}
