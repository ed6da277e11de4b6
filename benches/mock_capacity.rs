//! Capacity of the mock APNs server: accepted pushes per second over one and over four
//! connections, each pipelining up to 100 streams, with token auth on the real validation path
//! (JWT checked once per connection, then every header, payload and device rule per request).
//!
//! This is the ceiling the client benchmark is measured against. The load client runs in the same
//! process and shares the cores with the server, so the figure is a lower bound; `h2load` from
//! Debian's `nghttp2-client` gives the same measurement from outside (see the mock's module docs).
//!
//! `cargo bench --features mock --bench mock_capacity` (optional: `HERALD_BENCH_SECS`, default 3).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use herald::mock::MockApns;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const BUNDLE: &str = "com.example.bench";
const PAYLOAD: &str =
    r#"{"aps":{"alert":{"title":"Hello","body":"A capacity measurement push"},"badge":1},"id":42}"#;
const IN_FLIGHT: usize = 100;

fn jwt(p8: &str) -> String {
    let key = PrivatePkcs8KeyDer::from_pem_slice(p8.as_bytes()).expect("p8");
    let rng = SystemRandom::new();
    let pair = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        key.secret_pkcs8_der(),
        &rng,
    )
    .expect("key");
    let iat = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let h = URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","kid":"BENCHKEY01"}"#);
    let c = URL_SAFE_NO_PAD.encode(format!(r#"{{"iss":"BENCHTEAM1","iat":{iat}}}"#));
    let signed = format!("{h}.{c}");
    let sig = pair.sign(&rng, signed.as_bytes()).expect("sign");
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

async fn connect(mock: &MockApns) -> h2::client::SendRequest<Bytes> {
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(mock.ca_pem().as_bytes()) {
        roots.add(der.expect("ca")).expect("ca");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("tls")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(mock.addr()).await.expect("tcp");
    let _ = tcp.set_nodelay(true);
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("tls");
    let (client, conn) = h2::client::handshake(tls).await.expect("h2");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

async fn one(client: &mut h2::client::SendRequest<Bytes>, path: &str, auth: &str) -> u16 {
    let Ok(ready) = client.clone().ready().await else {
        return 0;
    };
    *client = ready;
    let req = http::Request::post(path)
        .header("authorization", auth)
        .header("apns-topic", BUNDLE)
        .header("apns-push-type", "alert")
        .body(())
        .expect("request");
    let Ok((resp, mut body)) = client.send_request(req, false) else {
        return 0;
    };
    if body
        .send_data(Bytes::from_static(PAYLOAD.as_bytes()), true)
        .is_err()
    {
        return 0;
    }
    match resp.await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

async fn run(connections: usize, secs: u64) -> (f64, u64) {
    let mock = MockApns::builder()
        .record_limit(1)
        .start()
        .await
        .expect("mock");
    let p8 = mock.generate_key("BENCHKEY01", "BENCHTEAM1").expect("key");
    let device = "ab".repeat(32);
    mock.register_device(&device, BUNDLE);
    let auth = format!("bearer {}", jwt(&p8));
    let path = format!("https://localhost/3/device/{device}");
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let mut client = connect(&mock).await;
        // The first accepted push raises the stream limit from 1.
        assert_eq!(one(&mut client, &path, &auth).await, 200);
        for _ in 0..IN_FLIGHT {
            let (mut client, path, auth) = (client.clone(), path.clone(), auth.clone());
            let (done, failed) = (done.clone(), failed.clone());
            tasks.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    match one(&mut client, &path, &auth).await {
                        200 => done.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            }));
        }
    }
    let start = Instant::now();
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let ok = done.load(Ordering::Relaxed);
    assert_eq!(mock.stats().accepted, ok + connections as u64);
    (ok as f64 / elapsed, failed.load(Ordering::Relaxed))
}

fn main() {
    // `cargo test --benches` runs this with `--bench` absent: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let secs = std::env::var("HERALD_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for connections in [1, 4] {
        let (rate, failed) = rt.block_on(run(connections, secs));
        println!(
            "mock_capacity/token-auth/{connections}-conn x {IN_FLIGHT} streams: {rate:>9.0} pushes/s ({failed} failed)"
        );
    }
}
