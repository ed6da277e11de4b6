//! The bridge's credentials and TLS options against a real `nats-server` configured to require
//! them: user and password, token, NKey, and TLS with a private CA. Wrong credentials fail
//! with a connect error that does not repeat the secret.
//!
//! Runs when `nats-server` is installed, reported ignored otherwise (failing instead with
//! `HERALD_REQUIRE_NATS=1`); see `tests/nats_support`. Uses `rcgen` (through the `mock` feature) to make certificates.

mod nats_support;

use std::time::Duration;

use herald::nats::{NatsBridge, NatsBridgeBuilder};
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

async fn tls_with_a_private_ca() {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = (
        dir.path().join("ca.pem"),
        dir.path().join("server.pem"),
        dir.path().join("server-key.pem"),
    );
    std::fs::write(&ca, ca_cert.pem()).unwrap();
    std::fs::write(&cert, server_cert.pem()).unwrap();
    std::fs::write(&key, server_key.serialize_pem()).unwrap();
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

fn main() {
    nats_support::main(
        "nats_security",
        vec![
            nats_support::test("user_and_password", user_and_password),
            nats_support::test("token", token),
            nats_support::test("nkey", nkey),
            nats_support::test("tls_with_a_private_ca", tls_with_a_private_ca),
        ],
    )
}
