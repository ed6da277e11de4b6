//! APNs throughput and latency: herald's client against the mock on loopback, with token auth,
//! over one connection and over a pool of 4; in the same run, the peers a user would otherwise
//! pick (`@parse/node-apn`, `aioapns`) on the same mock, and `h2load` as the ceiling.
//!
//! `cargo bench --features apns,mock --bench apns` writes `target/herald-bench/apns.json`
//! (`[{scenario, implementation, pushes_per_s, p50_us, p99_us}]`) and prints a table and ratios.
//!
//! - `HERALD_BENCH_N`: pushes per scenario (default 20,000).
//! - Peers are found, not installed: the interop install of `bash .ci/setup`
//!   (`.ci/cache/node`, `.ci/cache/venv`) when present; else `node` with `@parse/node-apn` under
//!   `target/herald-bench/peers/node_modules` (`npm install --prefix target/herald-bench/peers
//!   @parse/node-apn@8`) and `python3` with `aioapns` importable (`pip install aioapns==4.0`); and
//!   `h2load` on the PATH (`apt-get install nghttp2-client`); `HERALD_BENCH_PEERS` names another
//!   folder holding `node_modules`. A missing one is skipped with a
//!   message saying what to install.
//! - Latency is per push, from `send` to its outcome, with 256 pushes in flight in every
//!   scenario and for every implementation (closed loop). h2load reports no percentiles: its mean is given as p50 and p99 is left empty.
//! - `HERALD_BENCH_ONLY=herald`: run herald's scenarios only (for profiling).
//! - `h2-crate`: the `h2` crate alone on one connection with the headers herald sends, a
//!   unique `apns-id` per push included (h2load repeats one request, so all its headers are
//!   HPACK-indexed after the first): what herald costs over its own transport.
//! - Memory per in-flight push: resident set growth with 20,000 pushes held in flight by a
//!   slow mock, divided by 20,000; with the mock in process (an upper bound) and, with
//!   `--features apns,mock,cli`, with the mock as a separate `herald mock` process (the client's
//!   own figure).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use futures::StreamExt;
use herald::apns::{ApnsClient, Endpoint, Payload, Push, RetryPolicy, TokenKey};
use herald::mock::{Latency, MockApns};

const BUNDLE: &str = "com.example.app";
const KEY_ID: &str = "ABC123DEFG";
const TEAM: &str = "TEAM123456";
/// Pushes in flight in every scenario, whatever the number of connections (h2load: spread over
/// its connections with `-m`).
const IN_FLIGHT: usize = 256;

#[derive(Debug, Clone)]
struct Row {
    scenario: String,
    implementation: String,
    pushes_per_s: f64,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
}

fn out_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("herald-bench");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

fn device(i: usize) -> String {
    format!("{:064x}", i + 1)
}

fn pushes(n: usize) -> Vec<Push> {
    (0..n)
        .map(|i| {
            Push::builder(device(i % 1000), BUNDLE)
                .payload(&Payload::alert("Benchmark push"))
                .unwrap()
                .build()
                .unwrap()
        })
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx].as_secs_f64() * 1e6
}

async fn run_herald(mock: &MockApns, key: &TokenKey, conns: usize, n: usize) -> Row {
    let client = ApnsClient::builder()
        .endpoint(
            Endpoint::custom(&mock.url())
                .unwrap()
                .with_ca_pem(mock.ca_pem()),
        )
        .token_auth(key.clone())
        .connections(conns)
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let in_flight = IN_FLIGHT;
    // Warm up: connect, ramp the stream limit, fill HPACK tables.
    let warm = pushes(2_000);
    futures::stream::iter(warm)
        .map(|p| client.send(p))
        .buffer_unordered(in_flight)
        .for_each(|_| async {})
        .await;
    let batch = pushes(n);
    let started = Instant::now();
    let mut latencies: Vec<Duration> = futures::stream::iter(batch)
        .map(|p| {
            let client = &client;
            async move {
                let t = Instant::now();
                let o = client.send(p).await;
                assert!(o.is_accepted(), "{o:?}");
                t.elapsed()
            }
        })
        .buffer_unordered(in_flight)
        .collect()
        .await;
    let elapsed = started.elapsed();
    client.shutdown().await;
    latencies.sort();
    Row {
        scenario: format!("{conns}conn"),
        implementation: "herald".into(),
        pushes_per_s: n as f64 / elapsed.as_secs_f64(),
        p50_us: Some(percentile(&latencies, 0.5)),
        p99_us: Some(percentile(&latencies, 0.99)),
    }
}

fn jwt(p8_pem: &str) -> String {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use rustls_pki_types::PrivatePkcs8KeyDer;
    use rustls_pki_types::pem::PemObject;
    let der = PrivatePkcs8KeyDer::from_pem_slice(p8_pem.as_bytes()).unwrap();
    let rng = ring::rand::SystemRandom::new();
    let key = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        der.secret_pkcs8_der(),
        &rng,
    )
    .unwrap();
    let iat = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let signing_input = format!(
        "{}.{}",
        B64.encode(format!(r#"{{"alg":"ES256","kid":"{KEY_ID}"}}"#)),
        B64.encode(format!(r#"{{"iss":"{TEAM}","iat":{iat}}}"#))
    );
    let sig = key.sign(&rng, signing_input.as_bytes()).unwrap();
    format!("{signing_input}.{}", B64.encode(sig.as_ref()))
}

/// The `h2` crate alone, with the headers herald sends (a unique `apns-id` per push): herald's
/// transport without herald, to show what herald itself costs.
async fn run_raw_h2(mock: &MockApns, p8: &str, n: usize) -> Row {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(mock.ca_pem().as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(mock.addr()).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
        .connect(name, tcp)
        .await
        .unwrap();
    let (send, conn) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(conn);
    let auth = http::HeaderValue::try_from(format!("bearer {}", jwt(p8))).unwrap();
    let body = bytes::Bytes::from_static(br#"{"aps":{"alert":"Benchmark push"}}"#);
    let one = |send: h2::client::SendRequest<bytes::Bytes>, i: usize, id: String| {
        let mut auth = auth.clone();
        auth.set_sensitive(true);
        let body = body.clone();
        async move {
            let t = Instant::now();
            let req = http::Request::builder()
                .method("POST")
                .uri(format!("https://localhost/3/device/{}", device(i % 1000)))
                .header("authorization", auth)
                .header("apns-push-type", "alert")
                .header("apns-topic", BUNDLE)
                .header("apns-priority", "10")
                .header("apns-id", id)
                .body(())
                .unwrap();
            let mut send = send.ready().await.unwrap();
            let (resp, mut stream) = send.send_request(req, false).unwrap();
            stream.send_data(body, true).unwrap();
            let resp = resp.await.unwrap();
            assert_eq!(resp.status(), 200);
            t.elapsed()
        }
    };
    let ids = |k: usize| -> Vec<String> {
        (0..k)
            .map(|_| uuid::Uuid::new_v4().hyphenated().to_string())
            .collect()
    };
    // Warm up (the stream-limit ramp, HPACK tables).
    let warm = ids(2_000);
    futures::stream::iter(warm.into_iter().enumerate())
        .map(|(i, id)| one(send.clone(), i, id))
        .buffer_unordered(IN_FLIGHT)
        .for_each(|_| async {})
        .await;
    let batch = ids(n);
    let started = Instant::now();
    let mut latencies: Vec<Duration> = futures::stream::iter(batch.into_iter().enumerate())
        .map(|(i, id)| one(send.clone(), i, id))
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let elapsed = started.elapsed();
    latencies.sort();
    Row {
        scenario: "1conn".into(),
        implementation: "h2-crate".into(),
        pushes_per_s: n as f64 / elapsed.as_secs_f64(),
        p50_us: Some(percentile(&latencies, 0.5)),
        p99_us: Some(percentile(&latencies, 0.99)),
    }
}

fn which(bin: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {bin}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run_h2load(mock: &MockApns, p8: &str, conns: usize, n: usize) -> Option<Row> {
    if !which("h2load") {
        eprintln!("skipping h2load: not installed (apt-get install nghttp2-client)");
        return None;
    }
    let dir = out_dir();
    let body = dir.join("payload.json");
    std::fs::write(&body, br#"{"aps":{"alert":"Benchmark push"}}"#).ok()?;
    let url = format!("{}/3/device/{}", mock.url(), device(0));
    let auth = format!("authorization: bearer {}", jwt(p8));
    let out = Command::new("h2load")
        .args(["-n", &n.to_string(), "-c", &conns.to_string()])
        .args(["-m", &(IN_FLIGHT / conns).to_string()])
        .args(["-H", &auth, "-H", "apns-topic: com.example.app"])
        .args(["-H", "apns-push-type: alert"])
        .arg("-d")
        .arg(&body)
        .arg(&url)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text
        .lines()
        .find(|l| l.starts_with("finished in"))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|s| s.trim_end_matches(" req/s").parse::<f64>().ok());
    let mean = text
        .lines()
        .find(|l| l.starts_with("time for request:"))
        .and_then(|l| l.split_whitespace().nth(5))
        .and_then(parse_h2load_time);
    let succeeded = text.contains(&format!("{n} succeeded"));
    match rps {
        Some(rps) if succeeded => Some(Row {
            scenario: format!("{conns}conn"),
            implementation: "h2load".into(),
            pushes_per_s: rps,
            p50_us: mean,
            p99_us: None,
        }),
        _ => {
            eprintln!("h2load did not complete cleanly:\n{text}");
            None
        }
    }
}

fn parse_h2load_time(s: &str) -> Option<f64> {
    if let Some(v) = s.strip_suffix("us") {
        v.parse().ok()
    } else if let Some(v) = s.strip_suffix("ms") {
        v.parse::<f64>().ok().map(|v| v * 1e3)
    } else if let Some(v) = s.strip_suffix('s') {
        v.parse::<f64>().ok().map(|v| v * 1e6)
    } else {
        None
    }
}

const NODE_SCRIPT: &str = r#"
const fs = require('fs');
const apn = require('@parse/node-apn');
const [port, p8, ca, n, inflight] = process.argv.slice(2);
const provider = new apn.Provider({
  token: { key: fs.readFileSync(p8), keyId: 'ABC123DEFG', teamId: 'TEAM123456' },
  production: false, address: '127.0.0.1', port: Number(port), ca: fs.readFileSync(ca),
});
const device = (i) => (i % 1000 + 1).toString(16).padStart(64, '0');
async function run(count) {
  const lat = [];
  let next = 0;
  async function worker() {
    while (next < count) {
      const i = next++;
      const note = new apn.Notification({ alert: 'Benchmark push', topic: 'com.example.app' });
      const t = process.hrtime.bigint();
      const r = await provider.send(note, device(i));
      if (r.failed.length) { console.error(JSON.stringify(r.failed[0])); process.exit(1); }
      lat.push(Number(process.hrtime.bigint() - t) / 1000);
    }
  }
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: Number(inflight) }, worker));
  return [lat, Number(process.hrtime.bigint() - t0) / 1e9];
}
(async () => {
  await run(1000);
  const [lat, secs] = await run(Number(n));
  lat.sort((a, b) => a - b);
  const pct = (p) => lat[Math.round((lat.length - 1) * p)];
  console.log(JSON.stringify({ pps: Number(n) / secs, p50: pct(0.5), p99: pct(0.99) }));
  provider.shutdown();
})();
"#;

const PY_SCRIPT: &str = r#"
import asyncio, json, ssl, sys, time
from aioapns import APNs, NotificationRequest
import aioapns.connection as conn
port, p8, ca, n, inflight = sys.argv[1:]
n, inflight = int(n), int(inflight)
for name in dir(conn):
    cls = getattr(conn, name)
    if isinstance(cls, type):
        if hasattr(cls, 'APNS_SERVER'): cls.APNS_SERVER = '127.0.0.1'
        if hasattr(cls, 'APNS_PORT'): cls.APNS_PORT = int(port)
        if hasattr(cls, 'APNS_DEVELOPMENT_SERVER'): cls.APNS_DEVELOPMENT_SERVER = '127.0.0.1'
async def main():
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = False
    apns = APNs(key=open(p8).read(), key_id='ABC123DEFG', team_id='TEAM123456',
                topic='com.example.app', use_sandbox=True, ssl_context=ctx, max_connections=1)
    device = lambda i: format(i % 1000 + 1, '064x')
    async def run(count):
        lat, nxt = [], [0]
        async def worker():
            while nxt[0] < count:
                i = nxt[0]; nxt[0] += 1
                t = time.perf_counter()
                r = await apns.send_notification(NotificationRequest(
                    device_token=device(i), message={'aps': {'alert': 'Benchmark push'}}))
                if not r.is_successful:
                    print(r.status, r.description, file=sys.stderr); sys.exit(1)
                lat.append((time.perf_counter() - t) * 1e6)
        t0 = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(inflight)])
        return lat, time.perf_counter() - t0
    await run(500)
    lat, secs = await run(n)
    lat.sort()
    pct = lambda p: lat[round((len(lat) - 1) * p)]
    print(json.dumps({'pps': n / secs, 'p50': pct(0.5), 'p99': pct(0.99)}))
asyncio.run(main())
"#;

fn run_peer(implementation: &str, mut cmd: Command, n: usize) -> Option<Row> {
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("skipping {implementation}: {e}");
            return None;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = match text.lines().last().map(serde_json::from_str) {
        Some(Ok(v)) if out.status.success() => v,
        _ => {
            eprintln!(
                "{implementation} failed ({n} pushes):\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            return None;
        }
    };
    Some(Row {
        scenario: "1conn".into(),
        implementation: implementation.into(),
        pushes_per_s: v["pps"].as_f64()?,
        p50_us: v["p50"].as_f64(),
        p99_us: v["p99"].as_f64(),
    })
}

fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

async fn memory_per_in_flight_push(key: &TokenKey) -> Option<f64> {
    let slow = MockApns::builder()
        .accept_unknown_tokens(true)
        .record_limit(0)
        .max_streams(100_000)
        .start()
        .await
        .ok()?;
    let p8 = slow.generate_key(KEY_ID, TEAM).ok()?;
    let key = TokenKey::from_p8_pem(p8, KEY_ID, TEAM).unwrap_or_else(|_| key.clone());
    let client = ApnsClient::builder()
        .endpoint(
            Endpoint::custom(&slow.url())
                .unwrap()
                .with_ca_pem(slow.ca_pem()),
        )
        .token_auth(key)
        .build()
        .ok()?;
    assert!(client.send(pushes(1).remove(0)).await.is_accepted());
    let n = 20_000;
    let batch = pushes(n);
    slow.set_latency(Latency::Fixed(Duration::from_millis(1500)));
    let before = rss_bytes()?;
    let client2 = client.clone();
    let task = tokio::spawn(async move {
        futures::stream::iter(batch)
            .map(|p| client2.send(p))
            .buffer_unordered(n)
            .for_each(|_| async {})
            .await
    });
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let during = rss_bytes()?;
    let _ = task.await;
    client.shutdown().await;
    Some(during.saturating_sub(before) as f64 / n as f64)
}

/// Client-only memory: the slow mock runs as a separate process (`herald mock`, needs the `cli`
/// feature), so the resident-set growth is the client's alone.
#[cfg(feature = "cli")]
async fn memory_per_in_flight_push_client_only() -> Option<f64> {
    use std::io::BufRead;
    let dir = out_dir().join("mock-process");
    let _ = std::fs::create_dir_all(&dir);
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["mock", "--quiet", "--accept-unknown-tokens"])
        .args(["--max-streams", "100000", "--latency-ms", "1500"])
        .args(["--generate-key", &format!("{KEY_ID}:{TEAM}")])
        .arg("--out-dir")
        .arg(&dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    let stdout = child.stdout.take()?;
    let (url, ca) = tokio::task::spawn_blocking(move || {
        let mut url = None;
        let mut ca = None;
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.ok()?;
            if let Some(u) = line.strip_prefix("herald mock: listening on ") {
                url = Some(u.trim().to_owned());
            } else if let Some(c) = line.strip_prefix("herald mock: CA certificate ") {
                ca = Some(c.trim().to_owned());
            } else if line.starts_with("herald mock: ready") {
                break;
            }
        }
        Some((url?, ca?))
    })
    .await
    .ok()??;
    let result = async {
        let p8 = std::fs::read_to_string(dir.join(format!("{KEY_ID}.p8"))).ok()?;
        let ca_pem = std::fs::read(&ca).ok()?;
        let client = ApnsClient::builder()
            .endpoint(Endpoint::custom(&url).ok()?.with_ca_pem(ca_pem))
            .token_auth(TokenKey::from_p8_pem(p8, KEY_ID, TEAM).ok()?)
            .build()
            .ok()?;
        if !client.send(pushes(1).remove(0)).await.is_accepted() {
            return None;
        }
        let n = 20_000;
        let batch = pushes(n);
        let before = rss_bytes()?;
        let client2 = client.clone();
        let task = tokio::spawn(async move {
            futures::stream::iter(batch)
                .map(|p| client2.send(p))
                .buffer_unordered(n)
                .for_each(|_| async {})
                .await
        });
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let during = rss_bytes()?;
        let _ = task.await;
        client.shutdown().await;
        Some(during.saturating_sub(before) as f64 / n as f64)
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    result
}

#[cfg(not(feature = "cli"))]
async fn memory_per_in_flight_push_client_only() -> Option<f64> {
    eprintln!(
        "client-only memory: run with --features apns,mock,cli (the mock then runs as `herald mock`)"
    );
    None
}

fn main() {
    let n: usize = std::env::var("HERALD_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = out_dir();
    let (rows, (memory, client_memory)) = rt.block_on(async {
        let mock = MockApns::builder()
            .accept_unknown_tokens(true)
            .record_limit(0)
            .start()
            .await
            .unwrap();
        let p8 = mock.generate_key(KEY_ID, TEAM).unwrap();
        let p8_path = dir.join("AuthKey_bench.p8");
        let ca_path = dir.join("mock-ca.pem");
        std::fs::write(&p8_path, &p8).unwrap();
        std::fs::write(&ca_path, mock.ca_pem()).unwrap();
        let key = TokenKey::from_p8_pem(&p8, KEY_ID, TEAM).unwrap();
        let mut rows = Vec::new();
        let only_herald = std::env::var("HERALD_BENCH_ONLY").is_ok_and(|v| v == "herald");
        for conns in [1, 4] {
            let row = run_herald(&mock, &key, conns, n).await;
            eprintln!("{row:?}");
            rows.push(row);
            if only_herald {
                continue;
            }
            if let Some(row) = run_h2load(&mock, &p8, conns, n) {
                eprintln!("{row:?}");
                rows.push(row);
            }
        }
        if only_herald {
            return (rows, (None, None));
        }
        let row = run_raw_h2(&mock, &p8, n).await;
        eprintln!("{row:?}");
        rows.push(row);
        let port = mock.port().to_string();
        // The interop install (`bash .ci/setup`) is used when present.
        let interop = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/cache");
        let peers = match std::env::var_os("HERALD_BENCH_PEERS") {
            Some(p) => PathBuf::from(p).join("node_modules"),
            None if interop.join("node/node_modules/@parse/node-apn").exists() => {
                interop.join("node/node_modules")
            }
            None => dir.join("peers").join("node_modules"),
        };
        let venv_python = interop.join("venv/bin/python");
        let python = if venv_python.exists() {
            venv_python.display().to_string()
        } else {
            "python3".to_owned()
        };
        if !which("node") {
            eprintln!("skipping @parse/node-apn: node is not installed");
        } else if !peers.join("@parse").join("node-apn").exists() {
            eprintln!(
                "skipping @parse/node-apn: not found; npm install --prefix {} @parse/node-apn@8",
                dir.join("peers").display()
            );
        } else {
            let script = dir.join("node_apn_bench.js");
            std::fs::write(&script, NODE_SCRIPT).unwrap();
            let mut cmd = Command::new("node");
            cmd.env("NODE_PATH", &peers)
                .arg(&script)
                .args([
                    &port,
                    &p8_path.display().to_string(),
                    &ca_path.display().to_string(),
                ])
                .args([n.to_string(), IN_FLIGHT.to_string()]);
            if let Some(row) = run_peer("node-apn", cmd, n) {
                eprintln!("{row:?}");
                rows.push(row);
            }
        }
        let has_aioapns = Command::new(&python)
            .args(["-c", "import aioapns"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !has_aioapns {
            eprintln!(
                "skipping aioapns: python3 with aioapns not found (pip install aioapns==4.0)"
            );
        } else {
            let script = dir.join("aioapns_bench.py");
            std::fs::write(&script, PY_SCRIPT).unwrap();
            let mut cmd = Command::new(&python);
            cmd.arg(&script)
                .args([
                    &port,
                    &p8_path.display().to_string(),
                    &ca_path.display().to_string(),
                ])
                .args([n.to_string(), IN_FLIGHT.to_string()]);
            if let Some(row) = run_peer("aioapns", cmd, n) {
                eprintln!("{row:?}");
                rows.push(row);
            }
        }
        let memory = memory_per_in_flight_push(&key).await;
        let client_memory = memory_per_in_flight_push_client_only().await;
        (rows, (memory, client_memory))
    });

    let json: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "scenario": r.scenario,
                "implementation": r.implementation,
                "pushes_per_s": r.pushes_per_s,
                "p50_us": r.p50_us,
                "p99_us": r.p99_us,
            })
        })
        .collect();
    let mut doc = serde_json::Value::Array(json);
    if let (Some(m), serde_json::Value::Array(a)) = (memory, &mut doc) {
        a.push(serde_json::json!({
            "scenario": "memory/in-flight (client + in-process mock)",
            "implementation": "herald",
            "bytes_per_in_flight_push": m,
        }));
    }
    if let (Some(m), serde_json::Value::Array(a)) = (client_memory, &mut doc) {
        a.push(serde_json::json!({
            "scenario": "memory/in-flight (client only)",
            "implementation": "herald",
            "bytes_per_in_flight_push": m,
        }));
    }
    let path = dir.join("apns.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();

    println!("\nAPNs, {n} pushes per scenario, token auth, loopback mock");
    println!(
        "{:<10} {:<10} {:>12} {:>10} {:>10}",
        "scenario", "impl", "pushes/s", "p50 µs", "p99 µs"
    );
    for r in &rows {
        let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
        println!(
            "{:<10} {:<10} {:>12.0} {:>10} {:>10}",
            r.scenario,
            r.implementation,
            r.pushes_per_s,
            f(r.p50_us),
            f(r.p99_us)
        );
    }
    let get = |scenario: &str, imp: &str| {
        rows.iter()
            .find(|r| r.scenario == scenario && r.implementation == imp)
            .map(|r| r.pushes_per_s)
    };
    for s in ["1conn", "4conn"] {
        if let (Some(h), Some(c)) = (get(s, "herald"), get(s, "h2load")) {
            println!(
                "{s}: herald / h2load ceiling = {:.2} (target >= 0.8)",
                h / c
            );
        }
    }
    let peer = [get("1conn", "node-apn"), get("1conn", "aioapns")]
        .into_iter()
        .flatten()
        .fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.max(b))));
    if let (Some(h), Some(p)) = (get("1conn", "herald"), peer) {
        println!(
            "1conn: herald / faster of node-apn and aioapns = {:.2} (target >= 3)",
            h / p
        );
    }
    if let Some(m) = memory {
        println!(
            "memory per in-flight push: {m:.0} bytes (client + in-process mock, resident set growth, 20,000 in flight)"
        );
    }
    if let Some(m) = client_memory {
        println!("memory per in-flight push: {m:.0} bytes (client only, mock in its own process)");
    }
    println!("wrote {}", path.display());
}
