//! The examples a newcomer runs first still run, and still say what the README says they do.
//!
//! `cargo test` builds every example (it does not run them); this test runs the built binaries
//! from `target/<profile>/examples/` and checks a line or two of what each prints. Only the
//! offline ones: `distributed` needs a NATS server (its code is exercised by the NATS tests).
//! Run through the README's command (`cargo test --all-features`), which builds the examples
//! first; a binary that is missing (a run with `--test examples_run` alone) fails the test with
//! the command to build it, instead of passing. A run with `--test examples_run` alone after an
//! example changed runs the binary of the last build that made it: run the README's command.
//! Under a cross-compiling runner (`target.<triple>.runner`) the examples are started directly,
//! not through the runner.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where cargo put the examples of this build: beside `deps/`, which holds this test, or,
/// with a separate build directory (`build.build-dir`), under the target directory
/// (`CARGO_TARGET_DIR`, or `target/` in the package).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("<profile>/deps/<test>");
    let file = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    let profile = profile_dir.file_name().expect("a profile directory");
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let candidates = [
        profile_dir.join("examples").join(&file),
        target_dir.join(profile).join("examples").join(&file),
    ];
    match candidates.iter().find(|p| p.exists()) {
        Some(path) => path.clone(),
        None => panic!(
            "example {name} is not built (looked for {candidates:?}): run `cargo test \
             --all-features` (it builds the examples) or `cargo build --examples \
             --all-features` first"
        ),
    }
}

/// Runs an example to its end (at most a minute) and returns what it printed; panics, with
/// its output, if it fails. Both pipes are read while it runs, so a talkative example cannot
/// block on a full pipe.
fn run(name: &str) -> String {
    let mut child = Command::new(example(name))
        // Offline: the push demo goes to Apple's sandbox when these are set.
        .env_remove("HERALD_APNS_KEY_FILE")
        .env_remove("HERALD_APNS_KEY_ID")
        .env_remove("HERALD_APNS_TEAM_ID")
        .env_remove("HERALD_APNS_TOPIC")
        .env_remove("HERALD_APNS_DEVICE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the example starts");
    let read = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = read(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = read(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "example {name} still running after a minute:\n{}",
                stdout.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = stdout.join().expect("stdout reader");
    let stderr = stderr.join().expect("stderr reader");
    assert!(
        status.success(),
        "example {name} failed ({status}):\n{stdout}\n{stderr}"
    );
    stdout
}

fn assert_says(name: &str, out: &str, lines: &[&str]) {
    for line in lines {
        assert!(
            out.contains(line),
            "example {name} no longer prints {line:?}:\n{out}"
        );
    }
}

#[test]
fn quickstart_runs() {
    let out = run("quickstart");
    assert_says(
        "quickstart",
        &out,
        &["orders: posted 4, delivered 12, dropped 2, panicked 0, dead 0"],
    );
}

#[test]
fn queue_runs() {
    let out = run("queue");
    assert_says(
        "queue",
        &out,
        &["saved draft: \"bye\"", "dropped the queue"],
    );
}

#[test]
fn spawned_runs() {
    let out = run("spawned");
    assert_says("spawned", &out, &["done: center counted 5 posts"]);
}

#[test]
fn testkit_runs() {
    let out = run("testkit");
    assert_says(
        "testkit",
        &out,
        &["[0] Authorized(500)", "[3] Captured(42)"],
    );
}

#[test]
fn apns_mock_runs() {
    let out = run("apns_mock");
    assert_says("apns_mock", &out, &[": accepted (", ": 410 Unregistered"]);
}

/// The README's first command: the push demo, offline against the built-in mock.
#[test]
fn push_demo_runs_offline() {
    let out = run("push_demo");
    assert_says(
        "push_demo",
        &out,
        &[
            "mode: offline, mock APNs at https://127.0.0.1:",
            "→ 403 {\"error\":\"not_owner\"",
            "pushes sent 5: accepted 3, rejected 2, failed 0; skipped 1; tokens invalidated 1, \
             quarantined 1; messages with no device 1",
            "registry now holds 3 devices",
        ],
    );
}
