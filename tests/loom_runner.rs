//! Runs the loom models (`tests/loom.rs`, `tests/loom_ring.rs`) as part of the normal test command.
//!
//! Loom needs the engine compiled with `--cfg herald_loom`, so this test builds a second copy
//! of the crate (release, in `$CARGO_TARGET_DIR/loom`, or `target/loom` when the variable is
//! unset) and runs the models there.
//!
//! `HERALD_SKIP_LOOM=1` skips them for quick local runs: the test is then reported **ignored**
//! in the summary (this file has its own harness, libtest-mimic, so the decision is made at
//! run time), and `-- --ignored` runs it anyway. CI never sets the variable.

use std::path::{Path, PathBuf};
use std::process::Command;

use libtest_mimic::{Arguments, Failed, Trial};

/// The loom test files and how many models each holds: a model that stops compiling or
/// running fails here.
const MODELS: [(&str, usize); 2] = [("loom", 6), ("loom_ring", 7)];

/// Where the loom build goes: beside the normal build, whatever target directory that uses.
fn loom_target_dir() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let base = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                manifest_dir.join(dir)
            }
        }
        _ => manifest_dir.join("target"),
    };
    base.join("loom")
}

fn loom_models_pass() -> Result<(), Failed> {
    let manifest_dir = env!("CARGO_MANIFEST_DIR");
    let output = Command::new(env!("CARGO"))
        .args(["test", "--release"])
        .args(MODELS.iter().flat_map(|(file, _)| ["--test", file]))
        .args(["--", "--test-threads=1"])
        .current_dir(manifest_dir)
        .env("RUSTFLAGS", "--cfg herald_loom")
        .env("CARGO_TARGET_DIR", loom_target_dir())
        .env("LOOM_MAX_PREEMPTIONS", "3")
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    if !output.status.success() {
        return Err(format!("loom models failed:\n{stdout}\n{stderr}").into());
    }
    // Each file prints its own result line, in the order the files were given.
    let passed: Vec<usize> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("test result: ok. "))
        .filter_map(|rest| rest.split(' ').next()?.parse().ok())
        .collect();
    let expected: Vec<usize> = MODELS.iter().map(|(_, m)| *m).collect();
    if passed != expected {
        let files: Vec<String> = MODELS
            .iter()
            .map(|(f, m)| format!("tests/{f}.rs: {m}"))
            .collect();
        return Err(format!(
            "expected these loom models to run ({}), saw passes {passed:?}:\n{stdout}",
            files.join(", ")
        )
        .into());
    }
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let skip = std::env::var_os("HERALD_SKIP_LOOM").is_some_and(|v| !v.is_empty() && v != "0");
    if skip {
        eprintln!("loom_runner: HERALD_SKIP_LOOM is set: the loom models are ignored");
    }
    let trials = vec![Trial::test("loom_models_pass", loom_models_pass).with_ignored_flag(skip)];
    libtest_mimic::run(&args, trials).exit();
}
