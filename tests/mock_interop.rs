//! Interoperability: widely used independent APNs clients, pointed at the mock, get the answers
//! Apple would give. Each client sends with token auth and with certificate auth: two accepted
//! pushes, a push to an unregistered token (410 with timestamp) and one to an unknown token
//! (400 BadDeviceToken). The assertions are on what each client itself reported.
//!
//! The clients are installed by `.ci/setup-interop` into `$HERALD_INTEROP_DIR` (default
//! `.ci/cache`). Without them these tests print a message and pass, unless
//! `HERALD_REQUIRE_INTEROP=1` (set in CI), in which case they fail.

use herald::mock::{AuthKind, MockApns};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

const KEY_ID: &str = "INTEROP123";
const TEAM_ID: &str = "TEAMINTROP";
const BUNDLE: &str = "com.example.interop";
const UNREGISTERED_AT_MS: u64 = 1_700_000_000_123;

fn interop_dir() -> PathBuf {
    match std::env::var_os("HERALD_INTEROP_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/cache"),
    }
}

/// `Some(program)` when installed; `None` (after printing why) when the test should be skipped.
fn require(what: &str, program: PathBuf, marker: PathBuf) -> Option<PathBuf> {
    if marker.exists() {
        return Some(program);
    }
    let msg = format!(
        "{what} not installed ({} missing): run .ci/setup-interop",
        marker.display()
    );
    if std::env::var("HERALD_REQUIRE_INTEROP").as_deref() == Ok("1") {
        panic!("HERALD_REQUIRE_INTEROP=1 but {msg}");
    }
    eprintln!("skipping interop test: {msg}");
    None
}

struct Fixture {
    mock: MockApns,
    dir: PathBuf,
    config: PathBuf,
    tokens: [String; 3],
}

async fn fixture(name: &str) -> Fixture {
    let mock = MockApns::start().await.unwrap();
    let dir = std::env::temp_dir().join(format!("herald-interop-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p8 = mock.generate_key(KEY_ID, TEAM_ID).unwrap();
    std::fs::write(dir.join("key.p8"), p8).unwrap();
    mock.write_ca_pem(dir.join("ca.pem")).unwrap();
    let cert = mock.issue_push_certificate(BUNDLE).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.cert_pem()).unwrap();
    std::fs::write(dir.join("cert-key.pem"), cert.key_pem()).unwrap();
    cert.write_pem_bundle(dir.join("cert-bundle.pem")).unwrap();
    // Tokens of three lengths: Apple's are not always 64 hex digits.
    let tokens = ["a1".repeat(32), "b2".repeat(54), "c3".repeat(80)];
    mock.register_device(&tokens[0], BUNDLE);
    mock.register_device(&tokens[1], BUNDLE);
    mock.mark_unregistered(
        &tokens[1],
        UNIX_EPOCH + Duration::from_millis(UNREGISTERED_AT_MS),
    );
    let config = dir.join("config.json");
    let cfg = json!({
        "node_modules": interop_dir().join("node/node_modules"),
        "host": "127.0.0.1",
        "port": mock.port(),
        "ca": dir.join("ca.pem"),
        "p8": dir.join("key.p8"),
        "key_id": KEY_ID,
        "team_id": TEAM_ID,
        "topic": BUNDLE,
        "cert": dir.join("cert.pem"),
        "cert_key": dir.join("cert-key.pem"),
        "cert_bundle": dir.join("cert-bundle.pem"),
        "tokens": { "ok": tokens[0], "unregistered": tokens[1], "unknown": tokens[2] },
    });
    std::fs::write(&config, cfg.to_string()).unwrap();
    Fixture {
        mock,
        dir,
        config,
        tokens,
    }
}

async fn run_client(program: &Path, script: &str, config: &Path) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(script);
    let child = tokio::process::Command::new(program)
        .arg(&script)
        .arg(config)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), child)
        .await
        .expect("client finished within 60 s")
        .expect("client started");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} failed: {}\n{stdout}\n{stderr}",
        script.display(),
        out.status
    );
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| {
            panic!(
                "no JSON report from {}:\n{stdout}\n{stderr}",
                script.display()
            )
        });
    eprintln!("{} reported: {line}", script.display());
    serde_json::from_str(line).unwrap()
}

/// What Apple would make each client report, per auth mode.
fn assert_report(report: &Value, f: &Fixture) {
    for mode in ["token", "certificate"] {
        let r = report[mode]
            .as_array()
            .unwrap_or_else(|| panic!("{mode}: {report}"));
        assert_eq!(r.len(), 4, "{mode}: {report}");
        for ok in &r[..2] {
            assert_eq!(ok["sent"], json!(true), "{mode} accepted: {ok}");
            assert_eq!(ok["device"], json!(f.tokens[0]));
        }
        let gone = &r[2];
        assert_eq!(gone["sent"], json!(false), "{mode}: {gone}");
        assert_eq!(gone["status"], json!(410), "{mode}: {gone}");
        assert_eq!(gone["reason"], json!("Unregistered"), "{mode}: {gone}");
        assert_eq!(
            gone["timestamp"],
            json!(UNREGISTERED_AT_MS),
            "{mode}: {gone}"
        );
        let unknown = &r[3];
        assert_eq!(unknown["status"], json!(400), "{mode}: {unknown}");
        assert_eq!(
            unknown["reason"],
            json!("BadDeviceToken"),
            "{mode}: {unknown}"
        );
    }
}

/// The mock's side: 8 pushes, half over each auth kind, answers as reported.
fn assert_recorded(f: &Fixture, client: &str) {
    let pushes = f.mock.pushes();
    assert_eq!(pushes.len(), 8, "{client}: {pushes:#?}");
    let token = pushes
        .iter()
        .filter(|p| matches!(p.auth, AuthKind::Token { .. }))
        .count();
    let cert = pushes
        .iter()
        .filter(|p| {
            p.auth
                == AuthKind::Certificate {
                    bundle_id: Some(BUNDLE.into()),
                }
        })
        .count();
    assert_eq!((token, cert), (4, 4), "{client}");
    let statuses: Vec<u16> = pushes.iter().map(|p| p.status).collect();
    assert_eq!(
        statuses,
        [200, 200, 410, 400, 200, 200, 410, 400],
        "{client}"
    );
    assert!(pushes.iter().all(|p| {
        p.payload
            .as_ref()
            .is_some_and(|v| v["aps"]["alert"].is_string())
    }));
    assert!(f.mock.duplicate_accepted().is_empty(), "{client}");
    let _ = std::fs::remove_dir_all(&f.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_apn_interoperates() {
    let dir = interop_dir();
    let Some(node) = require(
        "@parse/node-apn",
        PathBuf::from("node"),
        dir.join("node/node_modules/@parse/node-apn/package.json"),
    ) else {
        return;
    };
    let f = fixture("node").await;
    let report = run_client(&node, "node_apn_client.js", &f.config).await;
    assert_eq!(report["client"], json!("node-apn"));
    assert_report(&report, &f);
    assert_recorded(&f, "node-apn");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aioapns_interoperates() {
    let dir = interop_dir();
    let Some(python) = require(
        "aioapns",
        dir.join("venv/bin/python"),
        dir.join("venv/bin/python"),
    ) else {
        return;
    };
    let f = fixture("aioapns").await;
    let report = run_client(&python, "aioapns_client.py", &f.config).await;
    assert_eq!(report["client"], json!("aioapns"));
    assert_report(&report, &f);
    assert_recorded(&f, "aioapns");
    // aioapns sends `host`, not `:authority`; the mock served it anyway.
}
