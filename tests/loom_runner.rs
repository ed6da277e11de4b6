//! Runs the loom models (`tests/loom.rs`) as part of the normal test command.
//!
//! Loom needs the engine compiled with `--cfg herald_loom`, so this test builds a second copy
//! of the crate in `target/loom` and runs the models there. Set `HERALD_SKIP_LOOM=1` to skip
//! (for quick local runs; CI never sets it).

use std::process::Command;

#[test]
fn loom_models_pass() {
    if std::env::var_os("HERALD_SKIP_LOOM").is_some() {
        eprintln!("HERALD_SKIP_LOOM is set: loom models skipped");
        return;
    }
    let manifest_dir = env!("CARGO_MANIFEST_DIR");
    let target = std::path::Path::new(manifest_dir)
        .join("target")
        .join("loom");
    let output = Command::new(env!("CARGO"))
        .args([
            "test",
            "--release",
            "--test",
            "loom",
            "--",
            "--test-threads=1",
        ])
        .current_dir(manifest_dir)
        .env("RUSTFLAGS", "--cfg herald_loom")
        .env("CARGO_TARGET_DIR", &target)
        .env("LOOM_MAX_PREEMPTIONS", "3")
        .output()
        .expect("cargo can be run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "loom models failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("test result: ok. 5 passed"),
        "expected the 5 loom models to run:\n{stdout}"
    );
}
