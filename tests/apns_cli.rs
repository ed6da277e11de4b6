//! `herald push` against an in-process mock: the explained outcome and the exit codes
//! (0 accepted, 1 usage, 2 rejected, 3 not sent, 4 no definitive answer).
#![cfg(feature = "cli")]

use std::ffi::OsString;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, UNIX_EPOCH};

use herald::apns::RetryPolicy;
use herald::mock::{Fault, MockApns};

mod mock_support;

const HERALD: &str = env!("CARGO_BIN_EXE_herald");
const BUNDLE: &str = "com.example.app";
const KEY_ID: &str = "ABC1234567";
const TEAM_ID: &str = "TEAM123456";

/// A mock with a key and a CA written to a temp dir that is removed when the test ends.
struct Fixture {
    mock: MockApns,
    dir: tempfile::TempDir,
}

impl Fixture {
    /// A fixture whose mock accepts any device token.
    async fn accepting() -> Fixture {
        Fixture::new(
            MockApns::builder()
                .accept_unknown_tokens(true)
                .start()
                .await
                .unwrap(),
        )
        .await
    }

    async fn new(mock: MockApns) -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("herald-cli-")
            .tempdir()
            .unwrap();
        std::fs::write(
            dir.path().join("AuthKey.p8"),
            mock.generate_key(KEY_ID, TEAM_ID).unwrap(),
        )
        .unwrap();
        mock.write_ca_pem(dir.path().join("ca.pem")).unwrap();
        Fixture { mock, dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `herald push` to this mock with the p8 key and the CA, plus `extra`.
    fn args(&self, device: &str, extra: &[&str]) -> Vec<OsString> {
        let mut a: Vec<OsString> = ["push", "--device", device, "--topic", BUNDLE]
            .iter()
            .map(Into::into)
            .collect();
        a.extend(["--p8".into(), self.path("AuthKey.p8").into_os_string()]);
        a.extend(["--key-id", KEY_ID, "--team-id", TEAM_ID, "--url"].map(OsString::from));
        a.push(self.mock.url().into());
        a.extend(["--ca".into(), self.path("ca.pem").into_os_string()]);
        a.extend(extra.iter().map(OsString::from));
        a
    }
}

/// Runs `herald ARGS` off the async runtime (the mock keeps serving meanwhile).
async fn herald(args: Vec<OsString>) -> Output {
    tokio::task::spawn_blocking(move || Command::new(HERALD).args(args).output().unwrap())
        .await
        .unwrap()
}

/// Runs `herald` with `args` and the environment variable `var` set to `value`.
async fn herald_env(args: Vec<OsString>, var: &'static str, value: &'static str) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(HERALD)
            .args(args)
            .env(var, value)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// `args` with the value of `option` replaced.
fn with(mut args: Vec<OsString>, option: &str, value: &str) -> Vec<OsString> {
    let at = args.iter().position(|a| a == option).unwrap();
    args[at + 1] = value.into();
    args
}

/// `args` without `option` and its value.
fn without(mut args: Vec<OsString>, option: &str) -> Vec<OsString> {
    let at = args.iter().position(|a| a == option).unwrap();
    args.drain(at..at + 2);
    args
}

/// Starts `herald mock ARGS` with its output piped, and reads its first line of stdout (empty
/// when it exited without printing one).
fn start_mock(args: &[&std::ffi::OsStr]) -> (std::process::Child, String) {
    let mut child = Command::new(HERALD)
        .arg("mock")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    let stdout = child.stdout.take().unwrap();
    let _ = std::io::BufReader::new(stdout).read_line(&mut first);
    (child, first)
}

/// Runs `herald mock ARGS`, which must refuse them: exit without printing on stdout. A mock
/// that starts instead prints its start-up lines: it is killed at the first one and the test
/// fails (no wait on a clock either way).
fn herald_mock_refusing(args: &[&std::ffi::OsStr]) -> Output {
    let (mut child, first) = start_mock(args);
    if !first.is_empty() {
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!(
            "herald mock started instead of refusing: {first}{}",
            text(&out)
        );
    }
    child.wait_with_output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_push_sends_with_a_p8_and_explains_rejections() {
    let f = Fixture::new(MockApns::start().await.unwrap()).await;
    let token = "ab".repeat(32);
    f.mock.register_device(&token, BUNDLE);

    let ok = herald(f.args(&token, &["--alert", "hello"])).await;
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("accepted: apns-id "));

    let bad = herald(f.args(&"cd".repeat(32), &["--alert", "hello"])).await;
    let out = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(2), "rejected: {}", text(&bad));
    assert!(out.contains("400 BadDeviceToken"), "{out}");
    assert!(out.contains("other environment"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_410_prints_apples_timestamp_with_milliseconds() {
    let f = Fixture::new(MockApns::start().await.unwrap()).await;
    let token = "a0".repeat(32);
    f.mock.register_device(&token, BUNDLE);
    f.mock.mark_unregistered(
        &token,
        UNIX_EPOCH + Duration::from_millis(1_760_000_000_123),
    );
    let out = herald(f.args(&token, &[])).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("410 Unregistered"), "{stdout}");
    assert!(
        stdout.contains("since 2025-10-09T08:53:20.123Z"),
        "{stdout}"
    );
}

#[test]
fn herald_push_rejects_bad_input_before_sending() {
    let out = Command::new(HERALD)
        .args(["push", "--device", "xyz", "--topic", BUNDLE])
        .args([
            "--p8",
            "/nonexistent.p8",
            "--key-id",
            KEY_ID,
            "--team-id",
            TEAM_ID,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("herald push:"));

    let unknown = Command::new(HERALD)
        .args(["push", "--no-such-option"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(1), "usage: {}", text(&unknown));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn badge_zero_clears_and_a_negative_badge_is_a_clear_error() {
    let f = Fixture::accepting().await;
    let token = "b0".repeat(32);
    let negative = herald(f.args(&token, &["--badge", "-1"])).await;
    let stderr = String::from_utf8_lossy(&negative.stderr);
    assert_eq!(negative.status.code(), Some(1), "{}", text(&negative));
    assert!(
        stderr.contains("negative") && stderr.contains("0 to clear"),
        "{stderr}"
    );
    for bad in ["many", "1.5", "4294967296"] {
        let out = herald(f.args(&token, &["--badge", bad])).await;
        assert_eq!(out.status.code(), Some(1), "--badge {bad}: {}", text(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains("whole number"));
    }
    assert!(
        f.mock.pushes().is_empty(),
        "nothing was sent for bad badges"
    );

    let zero = herald(f.args(&token, &["--badge", "0"])).await;
    assert_eq!(zero.status.code(), Some(0), "{}", text(&zero));
    assert_eq!(
        f.mock.pushes()[0].payload.as_ref().unwrap()["aps"]["badge"],
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_push_sends_with_a_pem_certificate() {
    let f = Fixture::accepting().await;
    let bundle = f.path("push.pem");
    f.mock
        .issue_push_certificate(BUNDLE)
        .unwrap()
        .write_pem_bundle(&bundle)
        .unwrap();
    let mut args: Vec<OsString> = ["push", "--device", &"ef".repeat(32), "--topic", BUNDLE]
        .iter()
        .map(Into::into)
        .collect();
    args.extend(["--cert-pem".into(), bundle.into_os_string()]);
    args.extend(["--url".into(), f.mock.url().into()]);
    args.extend(["--ca".into(), f.path("ca.pem").into_os_string()]);
    args.extend(["--title", "Hi", "--alert", "there", "--badge", "3"].map(OsString::from));
    let out = herald(args).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rec = f.mock.pushes();
    assert_eq!(
        rec[0].payload.as_ref().unwrap()["aps"]["alert"]["title"],
        "Hi"
    );
    assert_eq!(rec[0].payload.as_ref().unwrap()["aps"]["badge"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_mock_certificate_hints_at_ca() {
    let f = Fixture::new(MockApns::start().await.unwrap()).await;
    let args: Vec<OsString> = f
        .args(&"ab".repeat(32), &[])
        .into_iter()
        .take_while(|a| a != "--ca")
        .collect();
    let out = herald(args).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "not sent: {}", text(&out));
    assert!(stdout.contains("--ca"), "{stdout}");
    assert!(stdout.contains("nothing was sent"), "{stdout}");
    assert!(f.mock.pushes().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_not_sent() {
    let f = Fixture::new(MockApns::start().await.unwrap()).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://127.0.0.1:{}", closed.local_addr().unwrap().port());
    drop(closed);
    let mut args = f.args(&"ab".repeat(32), &["--timeout", "20"]);
    let at = args.iter().position(|a| a == "--url").unwrap();
    args[at + 1] = url.into();
    let out = herald(args).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(stdout.contains("nothing was sent"), "{stdout}");
    assert!(!stdout.contains("may or may not"), "{stdout}");
}

/// A server that accepts TCP and never answers TLS: the connect times out. `--timeout` bounds
/// the whole command (one connect attempt, not three), and the message says nothing was sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_timeout_says_nothing_was_sent_and_timeout_bounds_the_command() {
    let f = Fixture::new(MockApns::start().await.unwrap()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let silent = tokio::spawn({
        let accepted = accepted.clone();
        async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(socket);
            }
        }
    });
    let mut args = f.args(&"ab".repeat(32), &["--timeout", "2"]);
    let at = args.iter().position(|a| a == "--url").unwrap();
    args[at + 1] = url.into();
    let out = herald(args).await;
    silent.abort();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(stdout.contains("nothing was sent"), "{stdout}");
    assert!(!stdout.contains("may or may not"), "{stdout}");
    // The old behaviour retried the connect three times past the --timeout.
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one connect attempt within --timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answer_within_timeout_may_or_may_not_have_been_received() {
    let f = Fixture::new(MockApns::start().await.unwrap()).await;
    let token = "c0".repeat(32);
    f.mock.register_device(&token, BUNDLE);
    f.mock.script(Fault::Stall);
    let out = herald(f.args(&token, &["--timeout", "2"])).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(stdout.contains("may or may not"), "{stdout}");
}

/// A second `--push-cert` for one bundle id would overwrite the first one's BUNDLE.pem and
/// BUNDLE.p12: refused as a usage error naming the bundle id, before anything is written.
/// Apple's bundle ids ignore case (and so does macOS's file system), so a second spelling is
/// the same bundle id.
#[test]
fn herald_mock_refuses_two_push_certs_for_one_bundle_id() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("out");
    for second in [BUNDLE, "COM.Example.App"] {
        let out = herald_mock_refusing(&[
            "--out-dir".as_ref(),
            out_dir.as_os_str(),
            "--push-cert".as_ref(),
            BUNDLE.as_ref(),
            "--push-cert".as_ref(),
            second.as_ref(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "usage: {}", text(&out));
        assert!(
            stderr.contains("--push-cert") && stderr.contains(BUNDLE) && stderr.contains(second),
            "{stderr}"
        );
        assert!(!out_dir.exists(), "nothing written: {}", text(&out));
    }
}

/// `--push-cert` names files after the bundle id: one with a `/` or `..` is not a bundle id
/// (Apple's are letters, digits, `-` and `.`) and must not write outside the out dir.
#[test]
fn herald_mock_refuses_a_push_cert_bundle_id_that_is_a_path() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("out");
    for bad in ["../escaped", "com.example/app"] {
        let out = herald_mock_refusing(&[
            "--out-dir".as_ref(),
            out_dir.as_os_str(),
            "--push-cert".as_ref(),
            bad.as_ref(),
        ]);
        assert_eq!(out.status.code(), Some(1), "usage: {}", text(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains("bundle id"));
        assert!(!out_dir.exists(), "nothing written: {}", text(&out));
        assert!(!tmp.path().join("escaped.pem").exists());
    }
}

/// Apple's key and team ids are exactly 10 letters and digits (APNS.md §3): any other is
/// refused before anything is read or sent (it used to go out and come back 403
/// InvalidProviderToken), as a usage error, from the option or its environment variable. The
/// message never repeats the value: a `.p8` pasted into `--key-id` stays off the terminal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_id_or_team_id_that_is_not_10_characters_is_refused_unsent_and_unprinted() {
    let f = Fixture::accepting().await;
    let token = "d0".repeat(32);
    let p8 = std::fs::read_to_string(f.path("AuthKey.p8")).unwrap();
    let key_lines: Vec<&str> = p8.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(!key_lines.is_empty());
    let cases = [
        ("--key-id", "ABC123456", "9 characters"),
        ("--key-id", "ABC12345678", "11 characters"),
        ("--key-id", "ABC 234567", "neither a letter nor a digit"),
        ("--team-id", "TEAM12345", "9 characters"),
        ("--key-id", p8.as_str(), "neither a letter nor a digit"),
    ];
    for (option, bad, why) in cases {
        let out = herald(with(f.args(&token, &[]), option, bad)).await;
        let all = text(&out);
        assert_eq!(out.status.code(), Some(1), "{option}: {all}");
        assert!(all.contains(option) && all.contains(why), "{all}");
        assert!(all.contains("10 letters and digits"), "{all}");
        assert!(!all.contains("PRIVATE KEY"), "{all}");
        for line in &key_lines {
            assert!(!all.contains(line), "key material printed: {all}");
        }
    }
    let from_env = without(f.args(&token, &[]), "--key-id");
    let out = herald_env(from_env, "HERALD_KEY_ID", "SHORT").await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HERALD_KEY_ID"));
    assert!(f.mock.requests().is_empty(), "nothing was sent");

    let ok = herald(f.args(&token, &[])).await;
    assert_eq!(
        ok.status.code(),
        Some(0),
        "a 10-character id: {}",
        text(&ok)
    );
}

/// `--proxy` takes `http://HOST:PORT` or `HOST:PORT`: anything else (`notaurl` used to be taken
/// as a host on port 8080) is a usage error naming the option, before anything is sent. A
/// password in a proxy URL is refused (herald sends no proxy credentials) and never printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_that_is_not_host_and_port_is_refused_before_sending() {
    let f = Fixture::accepting().await;
    let token = "e0".repeat(32);
    for bad in [
        "notaurl",
        "http://proxy.invalid",
        "https://proxy.invalid:3128",
        "socks5://proxy.invalid:1080",
        "http://proxy.invalid:3128/path",
        "proxy.invalid:0",
        "http://user:s3cret@proxy.invalid:3128",
    ] {
        let out = herald(f.args(&token, &["--proxy", bad, "--timeout", "20"])).await;
        let all = text(&out);
        assert_eq!(out.status.code(), Some(1), "--proxy {bad}: {all}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--proxy"),
            "{all}"
        );
        assert!(!all.contains("s3cret"), "{all}");
    }
    assert!(f.mock.requests().is_empty(), "nothing was sent");
}

/// `herald worker` takes `--proxy` as `herald push` does (one set of APNs options), refused
/// when it is not host and port before anything connects, never repeating the value.
#[cfg(all(feature = "nats", feature = "bridge"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_worker_takes_the_same_proxy_option() {
    let out = herald(
        ["worker", "--proxy", "http://user:s3cret@squid.corp:3128"]
            .map(OsString::from)
            .to_vec(),
    )
    .await;
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("--proxy") && all.contains("credentials"),
        "{all}"
    );
    assert!(!all.contains("s3cret") && !all.contains("squid"), "{all}");
    let help = herald(["worker", "--help"].map(OsString::from).to_vec()).await;
    assert!(text(&help).contains("--proxy <URL>"), "{}", text(&help));
}

/// Both forms `--proxy` takes reach the mock through an HTTP CONNECT tunnel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_push_tunnels_through_a_proxy_given_as_url_or_host_and_port() {
    let f = Fixture::accepting().await;
    let (proxy, tunnels) = mock_support::connect_proxy().await;
    for (n, given) in [format!("http://{proxy}"), proxy.to_string()]
        .into_iter()
        .enumerate()
    {
        let out = herald(f.args(&"f0".repeat(32), &["--proxy", &given])).await;
        assert_eq!(
            out.status.code(),
            Some(0),
            "--proxy {given}: {}",
            text(&out)
        );
        assert_eq!(tunnels.load(Ordering::SeqCst), n + 1, "--proxy {given}");
    }
}

/// `herald push` retries 429/5xx as the library's default `RetryPolicy` does (it used to stop
/// after 2 retries, where the library and the README say 3), with the same apns-id, and its
/// `--help` says how many times. The mock answers 503 exactly once more than the retries:
/// one retry too few or too many would end differently (the next push is accepted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_push_retries_5xx_as_often_as_the_library_default() {
    let retries = RetryPolicy::default().max_retries as usize;
    let f = Fixture::new(MockApns::start().await.unwrap()).await;
    let token = "a5".repeat(32);
    f.mock.register_device(&token, BUNDLE);
    f.mock
        .script_n(retries + 1, Fault::reject(503, "ServiceUnavailable"));
    let out = herald(f.args(&token, &[])).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(
        stdout.contains(&format!("after {retries} retries")),
        "{stdout}"
    );
    let pushes = f.mock.pushes();
    assert_eq!(pushes.len(), retries + 1, "1 attempt + {retries} retries");
    assert!(
        pushes.iter().all(|p| p.apns_id == pushes[0].apns_id),
        "the same apns-id"
    );

    let help = Command::new(HERALD)
        .args(["push", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains(&format!("retried up to {retries} times")),
        "{help}"
    );
}

/// `herald push --password` takes a password that starts with `-` whole (clap called `-s3cret`
/// an unexpected argument and printed its first characters), from the option or from
/// `HERALD_P12_PASSWORD`; a wrong one is a usage error that does not repeat it; one left out
/// before another option says so; and no refusal prints any part of a password, whatever the
/// mistake around it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_p12_password_that_starts_with_a_dash_is_taken_whole_and_never_printed() {
    let f = Fixture::accepting().await;
    let cert = f.mock.issue_push_certificate(BUNDLE).unwrap();
    let token = "c5".repeat(32);
    // File names that hold no part of a password, so that an error naming the file is no leak.
    let p12_file = |password: &str| format!("{}.p12", password.len());
    let p12_args = |password: &str| {
        let mut a = without(
            without(without(f.args(&token, &[]), "--p8"), "--key-id"),
            "--team-id",
        );
        a.extend(["--p12".into(), f.path(&p12_file(password)).into_os_string()]);
        a
    };
    let accepted_with = |out: Output, how: &str| {
        assert_eq!(out.status.code(), Some(0), "{how}: {}", text(&out));
    };
    for password in ["-s3cret-pw", "--s3cret-pw"] {
        cert.write_p12(f.path(&p12_file(password)), password)
            .unwrap();
        let mut args = p12_args(password);
        args.extend(["--password", password].map(OsString::from));
        accepted_with(herald(args).await, &format!("--password {password}"));
    }
    let from_env = p12_args("-s3cret-pw");
    accepted_with(
        herald_env(from_env, "HERALD_P12_PASSWORD", "-s3cret-pw").await,
        "HERALD_P12_PASSWORD",
    );
    // A password that is another option's name is a password wherever it cannot have been
    // left out: from the environment, or joined to its option with `=`.
    cert.write_p12(f.path(&p12_file("--device")), "--device")
        .unwrap();
    let mut joined = p12_args("--device");
    joined.push("--password=--device".into());
    accepted_with(herald(joined).await, "--password=--device");
    let from_env = p12_args("--device");
    accepted_with(
        herald_env(from_env, "HERALD_P12_PASSWORD", "--device").await,
        "HERALD_P12_PASSWORD=--device",
    );
    let accepted = f.mock.pushes().len();

    let refused: &[(&[&str], &str)] = &[
        (&["--password", "-wr0ng-s3cret"], "password is wrong"),
        (&["--password", "--device"], "password is missing"),
        (&["--pasword", "-s3cret-pw"], "--pasword"),
        (&["--p12-password", "-s3cret-pw"], "--p12-password"),
        (
            &["--password", "-s3cret-pw", "--password", "-s3cret-pw"],
            "cannot be used multiple times",
        ),
    ];
    for (extra, says) in refused {
        let mut args = p12_args("-s3cret-pw");
        args.extend(extra.iter().map(OsString::from));
        let out = herald(args).await;
        let all = text(&out);
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {all}");
        assert!(all.contains(says), "{extra:?} should say {says:?}: {all}");
        for part in ["s3cret", "wr0ng", "-s3", "-wr"] {
            assert!(!all.contains(part), "{extra:?} printed {part:?}: {all}");
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        let mut args = p12_args("-s3cret-pw");
        args.push("--password".into());
        args.push(OsString::from_vec(b"-s3cret\xff".to_vec()));
        let out = herald(args).await;
        let all = text(&out);
        assert_eq!(out.status.code(), Some(1), "not UTF-8: {all}");
        assert!(
            all.contains("not valid UTF-8") && !all.contains("s3cret"),
            "{all}"
        );
    }
    assert_eq!(f.mock.pushes().len(), accepted, "nothing sent when refused");
}

/// `herald mock --p12-password` takes a password that starts with `-` whole: the `.p12` it
/// writes opens with it (`herald push --p12 --password` is accepted), and nothing it prints
/// holds the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_mock_p12_password_may_start_with_a_dash() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("out");
    let mut args: Vec<&std::ffi::OsStr> = [
        "--json",
        "--push-cert",
        BUNDLE,
        "--p12-password",
        "-s3cret-pw",
        "--out-dir",
    ]
    .map(std::ffi::OsStr::new)
    .to_vec();
    args.push(out_dir.as_os_str());
    let (mut child, first) = start_mock(&args);
    if first.is_empty() {
        let out = child.wait_with_output().unwrap();
        panic!("herald mock did not start: {}", text(&out));
    }
    assert!(!first.contains("s3cret"), "{first}");
    let start: serde_json::Value = serde_json::from_str(&first).unwrap();
    let p12 = start["certificates"][0]["p12"].as_str().unwrap().to_owned();
    let mut args: Vec<OsString> = start["push_args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().into())
        .collect();
    args = without(args, "--cert-pem");
    args.extend(["--p12", &p12, "--password", "-s3cret-pw"].map(OsString::from));
    let out = herald(args).await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}
