//! `herald push` against an in-process mock: exit code and the explained outcome.
#![cfg(feature = "cli")]

use std::process::Command;

use herald::mock::MockApns;

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("herald-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_push_sends_with_a_p8_and_explains_rejections() {
    let mock = MockApns::start().await.unwrap();
    let dir = temp_dir("p8");
    let p8 = dir.join("AuthKey.p8");
    std::fs::write(&p8, mock.generate_key("ABC1234567", "TEAM123456").unwrap()).unwrap();
    let ca = dir.join("ca.pem");
    mock.write_ca_pem(&ca).unwrap();
    let token = "ab".repeat(32);
    mock.register_device(&token, "com.example.app");

    let url = mock.url();
    let run = move |device: &str| {
        Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(["push", "--device", device, "--topic", "com.example.app"])
            .args(["--p8".as_ref(), p8.as_os_str()])
            .args(["--key-id", "ABC1234567", "--team-id", "TEAM123456"])
            .args(["--url", &url])
            .args(["--ca".as_ref(), ca.as_os_str()])
            .args(["--alert", "hello"])
            .output()
            .unwrap()
    };
    let ok = tokio::task::spawn_blocking({
        let token = token.clone();
        let run = run.clone();
        move || run(&token)
    })
    .await
    .unwrap();
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(out.starts_with("accepted: apns-id "), "{out}");

    let bad = tokio::task::spawn_blocking(move || run(&"cd".repeat(32)))
        .await
        .unwrap();
    let out = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{out}");
    assert!(out.contains("400 BadDeviceToken"), "{out}");
    assert!(out.contains("other environment"), "{out}");
}

#[test]
fn herald_push_rejects_a_bad_token_before_sending() {
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["push", "--device", "xyz", "--topic", "com.example.app"])
        .args([
            "--p8",
            "/nonexistent.p8",
            "--key-id",
            "ABC1234567",
            "--team-id",
            "TEAM123456",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("herald push:"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_push_sends_with_a_pem_certificate() {
    let mock = MockApns::builder()
        .accept_unknown_tokens(true)
        .start()
        .await
        .unwrap();
    let dir = temp_dir("pem");
    let bundle = dir.join("push.pem");
    mock.issue_push_certificate("com.example.app")
        .unwrap()
        .write_pem_bundle(&bundle)
        .unwrap();
    let ca = dir.join("ca.pem");
    mock.write_ca_pem(&ca).unwrap();
    let url = mock.url();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_herald"))
            .args([
                "push",
                "--device",
                &"ef".repeat(32),
                "--topic",
                "com.example.app",
            ])
            .args(["--cert-pem".as_ref(), bundle.as_os_str()])
            .args(["--url", &url])
            .args(["--ca".as_ref(), ca.as_os_str()])
            .args(["--title", "Hi", "--alert", "there", "--badge", "3"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rec = mock.pushes();
    assert_eq!(
        rec[0].payload.as_ref().unwrap()["aps"]["alert"]["title"],
        "Hi"
    );
    assert_eq!(rec[0].payload.as_ref().unwrap()["aps"]["badge"], 3);
}
