//! `herald mock` as app developers run it: validates everything before printing anything, prints
//! its address, CA path, keys, tokens and a `herald push` command that works as pasted (or one
//! JSON start-up object with `--json`), prints each push, stops cleanly on Ctrl-C (SIGINT) or
//! SIGTERM, and leaves no files behind in the temp dir, whether it stopped or failed to start.
//!
//! Each test gives the child its own `TMPDIR`, so "nothing left behind" is checked exactly.
#![cfg(all(feature = "cli", unix))]

mod mock_support;

use mock_support::*;
use std::io::{BufRead, BufReader, Lines};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Output, Stdio};

const HERALD: &str = env!("CARGO_BIN_EXE_herald");

/// `herald mock ARGS` with its own temp dir, stdout piped.
fn spawn_mock(tmp: &Path, args: &[&str]) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = Command::new(HERALD)
        .arg("mock")
        .args(args)
        .env("TMPDIR", tmp)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

fn next(lines: &mut Lines<BufReader<ChildStdout>>) -> String {
    lines.next().expect("herald mock closed stdout").unwrap()
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Sends `sig` to the mock and waits (off the runtime) for its exit, which must be clean.
async fn stop_cleanly(child: Child, sig: &str) {
    signal(&child, sig);
    let status = tokio::task::spawn_blocking(move || {
        let mut child = child;
        child.wait()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(status.success(), "clean exit on {sig}: {status}");
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Splits a command printed for a POSIX shell (plain words and '...' quoting).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                in_word = true;
            }
            ' ' if !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_mock_json_startup_line_serves_pushes_and_stops_on_ctrl_c() {
    let tmp = tempfile::tempdir().unwrap();
    let device = token(1);
    let gone = token(2);
    let (child, mut lines) = spawn_mock(
        tmp.path(),
        &[
            "--json",
            "--generate-key",
            &format!("{KEY_ID}:{TEAM_ID}"),
            "--token",
            &format!("{device}:{BUNDLE}"),
            "--unregistered",
            &format!("{gone}@2025-10-09T08:53:20.123Z"),
        ],
    );

    let start: serde_json::Value = serde_json::from_str(&next(&mut lines)).unwrap();
    assert_eq!(start["event"], "listening");
    assert_eq!(start["environment"], "sandbox", "the default");
    let addr: std::net::SocketAddr = start["address"].as_str().unwrap().parse().unwrap();
    assert_eq!(start["url"], format!("https://{addr}"));
    assert_eq!(start["port"], addr.port());
    assert_eq!(
        (start["key_id"].as_str(), start["team_id"].as_str()),
        (Some(KEY_ID), Some(TEAM_ID))
    );
    assert_eq!(start["tokens"][0]["token"], device.as_str());
    assert_eq!(start["tokens"][0]["bundle_id"], BUNDLE);
    assert_eq!(
        start["unregistered"][0]["since"],
        "2025-10-09T08:53:20.123Z"
    );
    assert_eq!(start["out_dir_removed_on_exit"], true);
    let out_dir = start["out_dir"].as_str().unwrap().to_owned();
    assert!(
        out_dir.starts_with(tmp.path().to_str().unwrap()),
        "{out_dir}"
    );
    let push_args = start["push_args"].as_array().unwrap();
    assert!(push_args.iter().any(|a| a == device.as_str()), "{start}");

    // Talk to it with the independent test client, trusting the CA file it wrote.
    let ca = std::fs::read_to_string(start["ca"].as_str().unwrap()).unwrap();
    let p8 = std::fs::read_to_string(start["key_path"].as_str().unwrap()).unwrap();
    let mut c = connect_to(addr, &ca).await;
    let jwt = sign_jwt(&p8, KEY_ID, TEAM_ID, now_secs());
    assert_eq!(
        push(&device)
            .bearer(&jwt)
            .send(&mut c)
            .await
            .unwrap()
            .status,
        200
    );
    let answer = push(&gone).bearer(&jwt).send(&mut c).await.unwrap();
    assert_eq!(
        (answer.status, answer.reason().as_deref()),
        (410, Some("Unregistered"))
    );
    assert_eq!(
        answer.json()["timestamp"],
        1_760_000_000_123u64,
        "the time given"
    );

    let first: serde_json::Value = serde_json::from_str(&next(&mut lines)).unwrap();
    assert_eq!(first["event"], "push");
    assert_eq!(first["status"], 200);
    assert_eq!(first["device_token"], device.as_str());
    assert_eq!(first["payload"]["aps"]["alert"], "hi");
    let second: serde_json::Value = serde_json::from_str(&next(&mut lines)).unwrap();
    assert_eq!(second["reason"], "Unregistered");

    stop_cleanly(child, "-INT").await;
    let stopped: serde_json::Value = serde_json::from_str(&next(&mut lines)).unwrap();
    assert_eq!(
        (
            &stopped["event"],
            &stopped["requests"],
            &stopped["accepted"]
        ),
        (&"stopped".into(), &2.into(), &1.into())
    );
    assert!(!Path::new(&out_dir).exists(), "{out_dir} left behind");
    assert!(entries(tmp.path()).is_empty(), "{:?}", entries(tmp.path()));
}

/// The newcomer's path: a bare `herald mock` generates a key and a token, and the command it
/// prints, pasted as is, sends a push it accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_herald_mock_prints_a_push_command_that_works_and_cleans_up_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let (child, mut lines) = spawn_mock(tmp.path(), &[]);
    let mut printed = Vec::new();
    let command = loop {
        let line = next(&mut lines);
        printed.push(line.clone());
        if line == "herald mock: send a push with" {
            break next(&mut lines);
        }
        assert!(
            !line.contains("ready"),
            "no push command printed: {printed:#?}"
        );
    };
    assert_eq!(next(&mut lines), "herald mock: ready (Ctrl-C to stop)");
    assert!(
        printed
            .iter()
            .any(|l| l.starts_with("herald mock: key HERALDKEY1 (team HERALDTEAM) written to ")),
        "{printed:#?}"
    );
    let words = shell_words(command.trim());
    assert_eq!(words[0], HERALD, "the program as invoked: {command}");
    let pushed = tokio::task::spawn_blocking(move || {
        Command::new(&words[0]).args(&words[1..]).output().unwrap()
    })
    .await
    .unwrap();
    let out = String::from_utf8_lossy(&pushed.stdout);
    assert_eq!(
        pushed.status.code(),
        Some(0),
        "{command}\n{out}\n{}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    assert!(out.starts_with("accepted: apns-id "), "{out}");
    assert!(
        next(&mut lines).contains(" -> 200 "),
        "the mock printed the push"
    );

    stop_cleanly(child, "-TERM").await;
    assert!(next(&mut lines).starts_with("herald mock: stopped after 1 requests (1 accepted)"));
    assert!(entries(tmp.path()).is_empty(), "{:?}", entries(tmp.path()));
}

/// `--environment production`: the start-up object says so, and an accepted push carries no
/// `apns-unique-id` (only the sandbox sends one, APNS.md §6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_mock_answers_as_production_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let device = token(3);
    let (child, mut lines) = spawn_mock(
        tmp.path(),
        &[
            "--json",
            "--environment",
            "production",
            "--generate-key",
            &format!("{KEY_ID}:{TEAM_ID}"),
            "--token",
            &format!("{device}:{BUNDLE}"),
        ],
    );
    let start: serde_json::Value = serde_json::from_str(&next(&mut lines)).unwrap();
    assert_eq!(start["environment"], "production");
    let addr: std::net::SocketAddr = start["address"].as_str().unwrap().parse().unwrap();
    let ca = std::fs::read_to_string(start["ca"].as_str().unwrap()).unwrap();
    let p8 = std::fs::read_to_string(start["key_path"].as_str().unwrap()).unwrap();
    let mut c = connect_to(addr, &ca).await;
    let jwt = sign_jwt(&p8, KEY_ID, TEAM_ID, now_secs());
    let answer = push(&device).bearer(&jwt).send(&mut c).await.unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("apns-unique-id"),
        None,
        "production sends none"
    );
    stop_cleanly(child, "-INT").await;
}

/// A start-up that fails after writing into a user's `--out-dir` (a key file that is not a
/// key) leaves that directory as it found it: what was there stays, nothing is added, and a
/// directory it created is removed.
#[test]
fn a_failed_start_up_leaves_the_out_dir_as_it_was() {
    let run_dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let garbage = work.path().join("garbage.p8");
    std::fs::write(&garbage, "not a key").unwrap();
    let key = format!("KEYKEYKEY1:TEAMTEAM01:{}", garbage.display());
    let existing = work.path().join("existing");
    std::fs::create_dir(&existing).unwrap();
    std::fs::write(existing.join("mine.txt"), "keep me").unwrap();
    let fresh = work.path().join("fresh");
    for dir in [&existing, &fresh] {
        let out_dir = dir.to_str().unwrap();
        assert_refused_before_printing(run_dir.path(), &["--out-dir", out_dir, "--key", &key], "");
    }
    assert_eq!(entries(&existing), ["mine.txt"]);
    assert!(!fresh.exists(), "{:?}", entries(&fresh));
}

/// Bad input: exit 1 with a message that says what is wrong, nothing on stdout (no listening
/// line before the failure), and nothing left in the temp dir. Returns what it said.
fn assert_refused_before_printing(run_dir: &Path, args: &[&str], says: &str) -> String {
    let out: Output = Command::new(HERALD)
        .arg("mock")
        .args(args)
        .env("TMPDIR", run_dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(
        stderr.contains(says),
        "{args:?} should say {says:?}: {stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "{args:?} printed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        entries(run_dir).is_empty(),
        "{args:?} left {:?}",
        entries(run_dir)
    );
    stderr.into_owned()
}

#[test]
fn herald_mock_rejects_bad_input_before_printing_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let garbage = tmp.path().join("garbage.p8");
    std::fs::write(&garbage, "not a key").unwrap();
    let garbage_key = format!("{KEY_ID}:{TEAM_ID}:{}", garbage.display());
    let run_dir = tempfile::tempdir().unwrap();
    // A start-up failure after validation: the port is taken.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port().to_string();
    let cases: &[(&[&str], &str)] = &[
        (&["--port", &busy_port], "cannot start"),
        (&["--port", &busy_port, "--json"], "cannot start"),
        (&["--token", "zz"], "hex"),
        (&["--token", "abc"], "even number"),
        (&["--unregistered", "zz"], "hex"),
        (&["--unregistered", "abcd@yesterday"], "not a time"),
        (&["--error-rate", "2"], "fraction"),
        (&["--error-rate", "lots"], "fraction"),
        (&["--environment", "prod"], "sandbox or production"),
        (&["--latency-ms", "fast"], "milliseconds"),
        (&["--max-streams", "0"], "max-streams"),
        (&["--key", "K:T:/nonexistent/AuthKey.p8"], "cannot read"),
        (&["--key", &garbage_key], "--key"),
        (&["--generate-key", "no-colon"], "KEY_ID:TEAM_ID"),
        (&["--no-such-option"], "no-such-option"),
    ];
    for (args, says) in cases {
        assert_refused_before_printing(run_dir.path(), args, says);
    }
    drop(busy);
}

/// A time with a multi-byte character where the parser looks at fixed byte offsets (the UTC
/// offset, after whole or fractional seconds) is a usage error like any other bad time, not a
/// panic (exit 101).
#[test]
fn a_non_ascii_unregistered_time_is_not_a_time_and_not_a_crash() {
    let run_dir = tempfile::tempdir().unwrap();
    for time in [
        "2026-01-01T00:00:00é0:00",
        "2026-01-01T00:00:00.5é0:00",
        "2026-01-01T00:00:00+0é:00",
        "2026-01-01T00:00:0é",
    ] {
        let arg = format!("abcd@{time}");
        assert_refused_before_printing(run_dir.path(), &["--unregistered", &arg], "not a time");
    }
}

#[test]
fn herald_help_documents_the_exit_codes() {
    for args in [&["--help"][..], &["push", "--help"], &["mock", "--help"]] {
        let out = Command::new(HERALD).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("Exit codes"), "{args:?}: {help}");
    }
}

/// The start-up object's entry for key `kid`.
fn key_entry<'a>(start: &'a serde_json::Value, kid: &str) -> &'a serde_json::Value {
    start["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["key_id"] == kid))
        .unwrap_or_else(|| panic!("no key {kid}: {start}"))
}

/// The start-up object's `push_args` with the signing key swapped for `kid` (its `.p8` from
/// the start-up object), and `herald push` run with them.
async fn herald_push_with_key(start: &serde_json::Value, kid: &str, topic: &str) -> Output {
    let mut args: Vec<String> = start["push_args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    let mut set = |option: &str, value: &str| {
        let at = args.iter().position(|a| a == option).unwrap();
        args[at + 1] = value.to_owned();
    };
    set("--p8", key_entry(start, kid)["path"].as_str().unwrap());
    set("--key-id", kid);
    set("--topic", topic);
    tokio::task::spawn_blocking(move || Command::new(HERALD).args(args).output().unwrap())
        .await
        .unwrap()
}

/// Apple's 2025 key scopes, from the command line: `--key-environment KEY_ID:production` on a
/// sandbox mock answers that key's tokens 403 BadEnvironmentKeyIdInToken (what `herald push`
/// prints, exit 2), the start-up object says which key is restricted, and the printed command
/// signs with a key the mock accepts, not the first one given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_mock_key_environment_refuses_the_key_in_the_other_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let device = token(4);
    let (child, mut lines) = spawn_mock(
        tmp.path(),
        &[
            "--json",
            "--generate-key",
            &format!("PRODKEY001:{TEAM_ID}"),
            "--generate-key",
            &format!("SANDKEY001:{TEAM_ID}"),
            "--key-environment",
            "PRODKEY001:production",
            "--key-environment",
            "SANDKEY001:sandbox",
            "--token",
            &format!("{device}:{BUNDLE}"),
        ],
    );
    let start: serde_json::Value = serde_json::from_str(&next(&mut lines)).unwrap();
    assert_eq!(start["environment"], "sandbox");
    assert_eq!(key_entry(&start, "PRODKEY001")["environment"], "production");
    assert_eq!(key_entry(&start, "SANDKEY001")["environment"], "sandbox");
    assert_eq!(start["key_id"], "SANDKEY001", "the key the mock accepts");

    let other = herald_push_with_key(&start, "PRODKEY001", BUNDLE).await;
    let stdout = String::from_utf8_lossy(&other.stdout);
    assert_eq!(other.status.code(), Some(2), "rejected: {stdout}");
    assert!(
        stdout.contains("403 BadEnvironmentKeyIdInToken"),
        "{stdout}"
    );
    let this = herald_push_with_key(&start, "SANDKEY001", BUNDLE).await;
    let stdout = String::from_utf8_lossy(&this.stdout);
    assert_eq!(this.status.code(), Some(0), "accepted: {stdout}");

    stop_cleanly(child, "-INT").await;
}

/// `--key-topics` makes keys topic-specific and `--related-keys` relates two of them: on one
/// connection (the test's own client, as `herald push` opens one per run), a key's tokens and
/// its related key's are accepted, and a third topic-specific key's are 403
/// UnrelatedKeyIdInToken. A topic-specific key pushing to another topic is 400
/// TopicDisallowed, as `herald push` shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_mock_related_topic_keys_share_a_connection_unrelated_ones_do_not() {
    let tmp = tempfile::tempdir().unwrap();
    let device = token(5);
    let kids = ["TOPICKEY01", "TOPICKEY02", "TOPICKEY03"];
    let mut args: Vec<String> = vec!["--json".into(), "--token".into(), device.clone()];
    for kid in kids {
        args.extend([
            "--generate-key".into(),
            format!("{kid}:{TEAM_ID}"),
            "--key-topics".into(),
            format!("{kid}:{BUNDLE}"),
        ]);
    }
    args.extend(["--related-keys".into(), "TOPICKEY01:TOPICKEY02".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (child, mut lines) = spawn_mock(tmp.path(), &args);
    let start: serde_json::Value = serde_json::from_str(&next(&mut lines)).unwrap();
    let one = key_entry(&start, "TOPICKEY01");
    assert_eq!(
        (&one["topics"], &one["related_key"]),
        (&serde_json::json!([BUNDLE]), &"TOPICKEY02".into())
    );
    assert_eq!(
        key_entry(&start, "TOPICKEY03")["related_key"],
        serde_json::Value::Null
    );

    let addr: std::net::SocketAddr = start["address"].as_str().unwrap().parse().unwrap();
    let ca = std::fs::read_to_string(start["ca"].as_str().unwrap()).unwrap();
    let jwt = |kid: &str, iat: i64| {
        let p8 = std::fs::read_to_string(key_entry(&start, kid)["path"].as_str().unwrap());
        sign_jwt(&p8.unwrap(), kid, TEAM_ID, iat)
    };
    // Each token 22 minutes after the previous one: past the 20-minute rule, within the hour.
    let t0 = now_secs();
    let mut c = connect_to(addr, &ca).await;
    for (kid, iat) in [("TOPICKEY01", t0), ("TOPICKEY02", t0 + 22 * 60)] {
        let a = push(&device).bearer(&jwt(kid, iat)).answer(&mut c).await;
        assert_eq!(a.status, 200, "{kid}: {:?}", a.reason());
    }
    let a = push(&device)
        .bearer(&jwt("TOPICKEY03", t0 + 44 * 60))
        .answer(&mut c)
        .await;
    assert_eq!(
        (a.status, a.reason().as_deref()),
        (403, Some("UnrelatedKeyIdInToken"))
    );

    let elsewhere = herald_push_with_key(&start, "TOPICKEY01", "com.example.other").await;
    let stdout = String::from_utf8_lossy(&elsewhere.stdout);
    assert_eq!(elsewhere.status.code(), Some(2), "rejected: {stdout}");
    assert!(stdout.contains("400 TopicDisallowed"), "{stdout}");

    stop_cleanly(child, "-INT").await;
}

/// A key scope names a key that `--key` or `--generate-key` registers (the generated default
/// key takes none), gives one key one environment, one set of topics and one related key, and
/// says so as a usage error before anything is printed, never repeating a key id that is not
/// one (it may be key material).
#[test]
fn key_scopes_name_a_registered_key_and_do_not_contradict() {
    let run_dir = tempfile::tempdir().unwrap();
    let key = |kid: &str| format!("{kid}:{TEAM_ID}");
    let (a, b, c) = (key("AAAAAAAAAA"), key("BBBBBBBBBB"), key("CCCCCCCCCC"));
    let g = "--generate-key";
    let cases: &[(&[&str], &str)] = &[
        (
            &["--key-environment", "HERALDKEY1:production"],
            "--key-environment HERALDKEY1: no --key or --generate-key registers",
        ),
        (
            &[g, &a, "--key-topics", "NOSUCHKEY0:com.example.app"],
            "--key-topics NOSUCHKEY0: no --key or --generate-key registers",
        ),
        (
            &[g, &a, "--related-keys", "AAAAAAAAAA:NOSUCHKEY0"],
            "--related-keys NOSUCHKEY0: no --key or --generate-key registers",
        ),
        (
            &[g, &a, "--key-environment", "AAAAAAAAAA:prod"],
            "sandbox or production",
        ),
        (
            &[g, &a, "--key-environment", "AAAAAAAAAA=production"],
            "KEY_ID:sandbox",
        ),
        (
            &[g, &a, "--key-topics", "AAAAAAAAAA:com/example"],
            "not a bundle id",
        ),
        (
            &[g, &a, "--related-keys", "AAAAAAAAAA:AAAAAAAAAA"],
            "itself",
        ),
        (
            &[g, &a, "--key-environment", "s3cretkey:sandbox"],
            "9 characters",
        ),
        (
            &[
                g,
                &a,
                "--key-environment",
                "AAAAAAAAAA:sandbox",
                "--key-environment",
                "AAAAAAAAAA:production",
            ],
            "for sandbox and for production",
        ),
        (
            &[
                g,
                &a,
                "--key-topics",
                "AAAAAAAAAA:com.example.app",
                "--key-topics",
                "AAAAAAAAAA:com.example.other",
            ],
            "different bundle ids",
        ),
        (
            &[
                g,
                &a,
                g,
                &b,
                g,
                &c,
                "--related-keys",
                "AAAAAAAAAA:BBBBBBBBBB",
                "--related-keys",
                "CCCCCCCCCC:AAAAAAAAAA",
            ],
            "at most one related key",
        ),
    ];
    for (args, says) in cases {
        let stderr = assert_refused_before_printing(run_dir.path(), args, says);
        assert!(!stderr.contains("s3cretkey"), "{args:?}");
    }
    let help = Command::new(HERALD)
        .args(["mock", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for option in [
        "--key-topics <KEY_ID:BUNDLE_ID",
        "--key-environment <KEY_ID:sandbox|production>",
        "--related-keys <KEY_ID:KEY_ID>",
    ] {
        assert!(help.contains(option), "{option}: {help}");
    }
}
