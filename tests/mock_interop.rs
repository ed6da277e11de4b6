//! Interoperability: widely used independent APNs clients, pointed at the mock, get the answers
//! Apple would give. Each client sends with token auth and with certificate auth: two accepted
//! pushes, a push to an unregistered token (410 with timestamp) and one to an unknown token
//! (400 BadDeviceToken). The assertions are on what each client itself reported.
//!
//! The clients are installed from the lock files in `.ci/interop/` by `.ci/setup` into
//! `$HERALD_INTEROP_DIR` (default `.ci/cache`). This file has its own harness (libtest-mimic)
//! so that the decision is made when the tests run, and shows in the runner's summary:
//! - a client that is installed: its test runs;
//! - a client that is missing: its test is reported **ignored** (with a note on stderr saying
//!   how to install it); `-- --ignored` runs it anyway, and it fails saying what is missing;
//! - `HERALD_REQUIRE_INTEROP=1` (set by `.ci/run`): both tests always run, and a missing client
//!   is a failure, never a skip.

use herald::mock::{AuthKind, MockApns};
use libtest_mimic::{Arguments, Failed, Trial};
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

/// One independent client: the program that runs its script, and the file that proves the
/// package is installed.
struct Peer {
    name: &'static str,
    program: PathBuf,
    marker: PathBuf,
}

impl Peer {
    fn node_apn(dir: &Path) -> Peer {
        Peer {
            name: "@parse/node-apn",
            program: PathBuf::from("node"),
            marker: dir.join("node/node_modules/@parse/node-apn/package.json"),
        }
    }

    fn aioapns(dir: &Path) -> Peer {
        Peer {
            name: "aioapns",
            program: dir.join("venv/bin/python"),
            marker: dir.join("venv/bin/python"),
        }
    }

    fn installed(&self) -> bool {
        self.marker.exists()
    }

    fn missing(&self) -> String {
        format!(
            "{} is not installed ({} missing): run .ci/setup",
            self.name,
            self.marker.display()
        )
    }

    /// The program, or a failure that says what to install.
    fn require(&self) -> PathBuf {
        assert!(self.installed(), "{}", self.missing());
        self.program.clone()
    }
}

struct Fixture {
    mock: MockApns,
    /// Removed when the fixture drops, pass or fail.
    _dir: tempfile::TempDir,
    config: PathBuf,
    tokens: [String; 3],
}

async fn fixture(name: &str) -> Fixture {
    let mock = MockApns::start().await.unwrap();
    let tmp = tempfile::Builder::new()
        .prefix(&format!("herald-interop-{name}-"))
        .tempdir()
        .unwrap();
    let dir = tmp.path().to_path_buf();
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
        _dir: tmp,
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
}

async fn node_apn_interoperates() {
    let node = Peer::node_apn(&interop_dir()).require();
    let f = fixture("node").await;
    let report = run_client(&node, "node_apn_client.js", &f.config).await;
    assert_eq!(report["client"], json!("node-apn"));
    assert_report(&report, &f);
    assert_recorded(&f, "node-apn");
}

async fn aioapns_interoperates() {
    let python = Peer::aioapns(&interop_dir()).require();
    let f = fixture("aioapns").await;
    let report = run_client(&python, "aioapns_client.py", &f.config).await;
    assert_eq!(report["client"], json!("aioapns"));
    assert_report(&report, &f);
    assert_recorded(&f, "aioapns");
    // aioapns sends `host`, not `:authority`; the mock served it anyway.
}

fn run_async<F: std::future::Future<Output = ()>>(test: fn() -> F) -> Result<(), Failed> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failed::from(format!("cannot start a tokio runtime: {e}")))?;
    runtime.block_on(test());
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let required = std::env::var("HERALD_REQUIRE_INTEROP").as_deref() == Ok("1");
    let dir = interop_dir();
    let mut trials = Vec::new();
    for (peer, test) in [
        (
            Peer::node_apn(&dir),
            Trial::test("node_apn_interoperates", || {
                run_async(node_apn_interoperates)
            }),
        ),
        (
            Peer::aioapns(&dir),
            Trial::test("aioapns_interoperates", || run_async(aioapns_interoperates)),
        ),
    ] {
        let skip = !required && !peer.installed();
        if skip {
            eprintln!(
                "mock_interop: {} (set HERALD_REQUIRE_INTEROP=1 to make this a failure); \
                 its test is ignored",
                peer.missing()
            );
        }
        trials.push(test.with_ignored_flag(skip));
    }
    libtest_mimic::run(&args, trials).exit();
}
