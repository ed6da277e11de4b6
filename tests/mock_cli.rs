//! `herald mock` as app developers run it: prints its address, the CA path and each push, and stops
//! cleanly on Ctrl-C (SIGINT).
#![cfg(all(feature = "cli", unix))]

mod mock_support;

use mock_support::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_mock_serves_prints_pushes_and_stops_on_ctrl_c() {
    let out = std::env::temp_dir().join(format!("herald-mock-cli-{}", std::process::id()));
    let device = token(1);
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["mock", "--json", "--out-dir"])
        .arg(&out)
        .args(["--generate-key", &format!("{KEY_ID}:{TEAM_ID}")])
        .args(["--token", &format!("{device}:{BUNDLE}")])
        .args(["--unregistered", &token(2)])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = move || lines.next().unwrap().unwrap();

    let listening = next();
    let url = listening
        .strip_prefix("herald mock: listening on https://")
        .unwrap()
        .to_owned();
    let ca_line = next();
    let ca_path = ca_line
        .strip_prefix("herald mock: CA certificate ")
        .unwrap()
        .to_owned();
    let key_line = next();
    let p8_path = key_line.rsplit(' ').next().unwrap().to_owned();
    assert_eq!(next(), "herald mock: ready (Ctrl-C to stop)");

    // Talk to it with the independent test client, trusting the CA file it wrote.
    let ca = std::fs::read_to_string(&ca_path).unwrap();
    let p8 = std::fs::read_to_string(&p8_path).unwrap();
    let addr: std::net::SocketAddr = url.parse().unwrap();
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
    let gone = push(&token(2)).bearer(&jwt).send(&mut c).await.unwrap();
    assert_eq!(
        (gone.status, gone.reason().as_deref()),
        (410, Some("Unregistered"))
    );

    let first: serde_json::Value = serde_json::from_str(&next()).unwrap();
    assert_eq!(first["status"], 200);
    assert_eq!(first["device_token"], device.as_str());
    assert_eq!(first["payload"]["aps"]["alert"], "hi");
    let second: serde_json::Value = serde_json::from_str(&next()).unwrap();
    assert_eq!(second["reason"], "Unregistered");

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "clean exit on Ctrl-C: {status}");
    assert!(next().starts_with("herald mock: stopped after 2 requests (1 accepted)"));
    let _ = std::fs::remove_dir_all(&out);
}
