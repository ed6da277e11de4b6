//! The bridge's credentials and TLS options against a real `nats-server` configured to require
//! them: user and password, token, NKey, TLS with a private CA, and mutual TLS. Wrong
//! credentials fail with a connect error that does not repeat the secret, even when they came
//! in the URL; unusable credential and certificate files are configuration errors, found
//! before connecting.
//!
//! Runs when `nats-server` is installed, reported ignored otherwise (failing instead with
//! `HERALD_REQUIRE_NATS=1`); see `tests/nats_support`. Uses `rcgen` (through the `mock` feature) to make certificates.

mod nats_support;

use std::time::Duration;

use herald::nats::{ErrorKind, NatsBridge, NatsBridgeBuilder};
use herald::{Notification, NotificationCenter};
use nats_support::{NatsServer, until};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Hello(u32);
impl Notification for Hello {
    fn name() -> &'static str {
        "test.hello"
    }
}

/// A notification makes it from one bridge to another built the same way.
async fn exchange(url: &str, builder: impl Fn() -> NatsBridgeBuilder) {
    let a = builder().connect(url).await.unwrap();
    let b = builder().connect(url).await.unwrap();
    let (here, there) = (NotificationCenter::new(), NotificationCenter::new());
    let _e = here.observer::<Hello>().forward(a.publish()).unwrap();
    let _i = b.import::<Hello>(&there).await.unwrap();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let s = seen.clone();
    let _o = there.observe(move |h: &Hello| s.store(h.0, std::sync::atomic::Ordering::SeqCst));
    here.post(Hello(7));
    until("the hello", || {
        seen.load(std::sync::atomic::Ordering::SeqCst) == 7
    })
    .await;
}

fn refused(err: &herald::nats::Error, secret: &str) {
    assert!(err.is_connect(), "{err}");
    assert!(
        !err.to_string().contains(secret),
        "the secret leaked: {err}"
    );
    assert!(
        !format!("{err:?}").contains(secret),
        "the secret leaked: {err:?}"
    );
}

fn quick() -> NatsBridgeBuilder {
    NatsBridge::builder().connection_timeout(Duration::from_secs(5))
}

async fn user_and_password() {
    let server = NatsServer::start_with(&["--user", "herald", "--pass", "s3cret-pw"]);
    exchange(&server.url(), || {
        quick().user_password("herald", "s3cret-pw")
    })
    .await;
    let err = quick()
        .user_password("herald", "wrong-pw")
        .connect(&server.url())
        .await
        .unwrap_err();
    refused(&err, "wrong-pw");
    assert!(
        quick()
            .connect(&server.url())
            .await
            .unwrap_err()
            .is_connect()
    );
}

async fn token() {
    let server = NatsServer::start_with(&["--auth", "tok-9f8e7d"]);
    exchange(&server.url(), || quick().token("tok-9f8e7d")).await;
    let err = quick()
        .token("tok-wrong")
        .connect(&server.url())
        .await
        .unwrap_err();
    refused(&err, "tok-wrong");
}

async fn nkey() {
    let user = nkeys::KeyPair::new_user();
    let seed = user.seed().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("nkey.conf");
    std::fs::write(
        &conf,
        format!(
            "authorization {{ users = [ {{ nkey: {} }} ] }}\n",
            user.public_key()
        ),
    )
    .unwrap();
    let server = NatsServer::start_with(&["-c", conf.to_str().unwrap()]);
    exchange(&server.url(), || quick().nkey(seed.clone())).await;
    let other = nkeys::KeyPair::new_user().seed().unwrap();
    let err = quick()
        .nkey(other.clone())
        .connect(&server.url())
        .await
        .unwrap_err();
    refused(&err, &other);
}

/// A private CA: its certificate (PEM) and what signs with it.
fn private_ca() -> (String, Issuer<'static, KeyPair>) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    (ca_cert.pem(), Issuer::new(ca_params, ca_key))
}

/// A certificate for `names` signed by `issuer`, written to `<stem>.pem` and `<stem>-key.pem`
/// in `dir`; returns both paths.
fn signed(
    issuer: &Issuer<'static, KeyPair>,
    names: &[&str],
    dir: &std::path::Path,
    stem: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .unwrap()
        .signed_by(&key, issuer)
        .unwrap();
    let (cert_path, key_path) = (
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}-key.pem")),
    );
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

async fn tls_with_a_private_ca() {
    let (ca_pem, issuer) = private_ca();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let (cert, key) = signed(&issuer, &["127.0.0.1", "localhost"], dir.path(), "server");
    let server = NatsServer::start_with(&[
        "--tls",
        "--tlscert",
        cert.to_str().unwrap(),
        "--tlskey",
        key.to_str().unwrap(),
    ]);
    let url = format!("tls://127.0.0.1:{}", server.port());
    exchange(&url, || quick().ca_file(&ca).require_tls(true)).await;
    // Without the private CA the server's certificate is not trusted.
    let err = quick().require_tls(true).connect(&url).await.unwrap_err();
    assert!(err.is_connect(), "{err}");
}

/// A server that requires client certificates (mutual TLS): the bridge presents its own, and
/// trusts every CA file it is given, whichever order they come in (a CA being replaced by
/// another: both are trusted for a while).
async fn mutual_tls_with_every_ca_file_trusted() {
    let (ca_pem, issuer) = private_ca();
    let (other_pem, _) = private_ca();
    let dir = tempfile::tempdir().unwrap();
    let (ca, other) = (dir.path().join("ca.pem"), dir.path().join("other.pem"));
    std::fs::write(&ca, ca_pem).unwrap();
    std::fs::write(&other, other_pem).unwrap();
    let (cert, key) = signed(&issuer, &["127.0.0.1"], dir.path(), "server");
    let (client, client_key) = signed(&issuer, &["herald-client"], dir.path(), "client");
    let server = NatsServer::start_with(&[
        "--tlsverify",
        "--tlscert",
        cert.to_str().unwrap(),
        "--tlskey",
        key.to_str().unwrap(),
        "--tlscacert",
        ca.to_str().unwrap(),
    ]);
    let url = format!("tls://127.0.0.1:{}", server.port());
    for cas in [vec![&ca], vec![&ca, &other], vec![&other, &ca]] {
        exchange(&url, || {
            let mut b = quick().require_tls(true).client_cert(&client, &client_key);
            for f in &cas {
                b = b.ca_file(*f);
            }
            b
        })
        .await;
    }
    // Only the other CA: the server's certificate is not trusted.
    let err = quick()
        .require_tls(true)
        .ca_file(&other)
        .client_cert(&client, &client_key)
        .connect(&url)
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err}");
    // No client certificate: the server refuses the connection.
    let err = quick()
        .require_tls(true)
        .ca_file(&ca)
        .ca_file(&other)
        .connect(&url)
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err}");
}

/// Credentials may come in the URL (`nats://user:password@host`, `nats://token@host`), and
/// "secrets (passwords, tokens, seeds) never appear in [an Error]": not even then, whether the
/// server refuses them or cannot be reached.
async fn credentials_in_the_url_work_and_never_appear_in_errors() {
    let server = NatsServer::start_with(&["--user", "herald", "--pass", "url-pw-42"]);
    exchange(
        &format!("nats://herald:url-pw-42@127.0.0.1:{}", server.port()),
        quick,
    )
    .await;
    let token_server = NatsServer::start_with(&["--auth", "url-t%k"]);
    exchange(
        &format!("nats://url-t%25k@127.0.0.1:{}", token_server.port()),
        quick,
    )
    .await;
    let refused_url = format!("nats://herald:wrong-pw-42@127.0.0.1:{}", server.port());
    for (url, secret) in [
        (refused_url.as_str(), "wrong-pw-42"),
        ("nats://alice:hunter2-pw@127.0.0.1:1", "hunter2-pw"),
        ("nats://tok-5ecret-77@127.0.0.1:1", "tok-5ecret-77"),
        (
            "nats://127.0.0.1:1,nats://bob:list-pw-9@127.0.0.1:2",
            "list-pw-9",
        ),
    ] {
        let err = quick().connect(url).await.unwrap_err();
        refused(&err, secret);
        assert!(err.to_string().contains("127.0.0.1"), "says where: {err}");
    }
    // Credentials twice (URL and builder) are a configuration error, still without them.
    let err = quick()
        .user_password("herald", "url-pw-42")
        .connect(&format!(
            "nats://herald:url-pw-42@127.0.0.1:{}",
            server.port()
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(!format!("{err} {err:?}").contains("url-pw-42"), "{err:?}");
}

/// "`ErrorKind::Config` for unusable credentials or certificate files": found before connecting
/// (these would all be connect errors against the unreachable address otherwise), and a bad
/// NKey seed is not repeated.
async fn unusable_credential_and_certificate_files_are_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_pem, issuer) = private_ca();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let (cert, key) = signed(&issuer, &["herald-client"], dir.path(), "client");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let seed = "SUNOTAVALIDSEEDATALLXYZ";
    let cases: Vec<(&str, NatsBridgeBuilder)> = vec![
        ("a malformed NKey seed", quick().nkey(seed)),
        (
            "a missing credentials file",
            quick().credentials_file(&missing),
        ),
        ("a missing CA file", quick().ca_file(&missing)),
        ("a CA file without a certificate", quick().ca_file(&garbage)),
        (
            "one bad CA file of two",
            quick().ca_file(&ca).ca_file(&garbage),
        ),
        (
            "a missing client certificate",
            quick().client_cert(&missing, &key),
        ),
        (
            "a client key that is no key",
            quick().client_cert(&cert, &garbage),
        ),
        (
            "a client key that is no key, two CAs",
            quick()
                .ca_file(&ca)
                .ca_file(&ca)
                .client_cert(&cert, &garbage),
        ),
    ];
    for (what, builder) in cases {
        let err = builder.connect("tls://127.0.0.1:1").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{what}: {err}");
        assert!(!err.to_string().contains(seed), "{what}: {err}");
        assert!(!format!("{err:?}").contains(seed), "{what}: {err:?}");
    }
}

fn main() {
    nats_support::main(
        "nats_security",
        vec![
            nats_support::test("user_and_password", user_and_password),
            nats_support::test("token", token),
            nats_support::test("nkey", nkey),
            nats_support::test("tls_with_a_private_ca", tls_with_a_private_ca),
            nats_support::test(
                "mutual_tls_with_every_ca_file_trusted",
                mutual_tls_with_every_ca_file_trusted,
            ),
            nats_support::test(
                "credentials_in_the_url_work_and_never_appear_in_errors",
                credentials_in_the_url_work_and_never_appear_in_errors,
            ),
            nats_support::test(
                "unusable_credential_and_certificate_files_are_config_errors",
                unusable_credential_and_certificate_files_are_config_errors,
            ),
        ],
    )
}
