//! Runs the loom models (`tests/loom.rs`, `tests/loom_ring.rs`, `tests/loom_value_ring.rs`) as
//! part of the normal test command.
//!
//! Loom needs the engine compiled with `--cfg herald_loom`, so this test builds a second copy
//! of the crate (release, in `$CARGO_TARGET_DIR/loom`, or `target/loom` when the variable is
//! unset) and runs the models there.
//!
//! Two trials:
//! - `loom_models_pass`: every model but the heavy ones, in the normal test command.
//! - `loom_heavy_models_pass`: the models marked `#[ignore]` in the loom files, for a model
//!   too slow for every test run (there is none today: the one that took ten minutes now
//!   takes under a second). It is reported **ignored** unless asked for (`-- --ignored` or
//!   `--include-ignored`); `.ci/run` always asks.
//!
//! `HERALD_SKIP_LOOM=1` skips both for quick local runs: they are then reported **ignored**
//! in the summary (this file has its own harness, libtest-mimic, so the decision is made at
//! run time), and `-- --ignored` runs them anyway. CI never sets the variable.
//!
//! Loom explores every interleaving with at most `HERALD_LOOM_PREEMPTIONS` preemptions
//! (default 2, the bound tokio's CI uses for its own models: most races need one or two, and
//! each more multiplies the run time: `tests/loom.rs` took 16 s at 2 and 155 s at 3 here in
//! a debug build; release builds of today's engine take seconds at 3). A model may fix its own
//! bound (`replay_on_a_ring_is_exactly_once_beside_another_writer` does: 2). `.ci/run` runs
//! the models a second time at 3, heavy ones included.

use std::path::{Path, PathBuf};
use std::process::Command;

use libtest_mimic::{Arguments, Failed, Trial};

/// The loom test files, and how many models each holds that the normal run executes and how
/// many heavy ones it leaves (`#[ignore]`) to `loom_heavy_models_pass`: a model that stops
/// compiling or running, or changes side, fails here.
const MODELS: [(&str, usize, usize); 3] = [
    ("loom", 9, 0),
    ("loom_ring", 12, 0),
    ("loom_value_ring", 13, 0),
];

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

/// The preemption bound: `HERALD_LOOM_PREEMPTIONS`, default 2.
fn preemptions() -> Result<u32, Failed> {
    match std::env::var("HERALD_LOOM_PREEMPTIONS") {
        Err(_) => Ok(2),
        Ok(v) => match v.trim().parse::<u32>() {
            Ok(n) if (1..=5).contains(&n) => Ok(n),
            _ => Err(
                format!("HERALD_LOOM_PREEMPTIONS must be a number from 1 to 5, not {v:?}").into(),
            ),
        },
    }
}

/// The light models, in the normal test command.
fn loom_models_pass() -> Result<(), Failed> {
    let expected: Vec<(usize, usize)> = MODELS
        .iter()
        .map(|(_, run, heavy)| (*run, *heavy))
        .collect();
    run_models(&[], &expected)
}

/// The heavy models only (`#[ignore]` in the loom files).
fn loom_heavy_models_pass() -> Result<(), Failed> {
    let expected: Vec<(usize, usize)> = MODELS.iter().map(|(_, _, heavy)| (*heavy, 0)).collect();
    run_models(&["--ignored"], &expected)
}

/// Builds the loom copy, runs every loom file with `extra` libtest arguments, and checks each
/// file's `(passed, ignored)` counts against `expected`, in `MODELS` order.
fn run_models(extra: &[&str], expected: &[(usize, usize)]) -> Result<(), Failed> {
    let manifest_dir = env!("CARGO_MANIFEST_DIR");
    let preemptions = preemptions()?;
    let output = Command::new(env!("CARGO"))
        .args(["test", "--release"])
        .args(MODELS.iter().flat_map(|(file, _, _)| ["--test", file]))
        .args(["--", "--test-threads=1"])
        .args(extra)
        .current_dir(manifest_dir)
        .env("RUSTFLAGS", "--cfg herald_loom")
        .env("CARGO_TARGET_DIR", loom_target_dir())
        .env("LOOM_MAX_PREEMPTIONS", preemptions.to_string())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("loom models at preemption bound {preemptions}:\n{stdout}");
    if !output.status.success() {
        return Err(format!("loom models failed:\n{stdout}\n{stderr}").into());
    }
    // Each file prints its own result line, in the order the files were given.
    let seen: Vec<(usize, usize)> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("test result: ok. "))
        .filter_map(|rest| {
            let words: Vec<&str> = rest.split([' ', ';']).filter(|w| !w.is_empty()).collect();
            let count = |what: &str| {
                let at = words.iter().position(|w| *w == what)?;
                words.get(at.checked_sub(1)?)?.parse::<usize>().ok()
            };
            Some((count("passed")?, count("ignored")?))
        })
        .collect();
    if seen != expected {
        let files: Vec<String> = MODELS
            .iter()
            .zip(expected)
            .map(|((f, _, _), (run, left))| format!("tests/{f}.rs: {run} run, {left} ignored"))
            .collect();
        return Err(format!(
            "expected these loom models ({}), saw (passed, ignored) {seen:?}:\n{stdout}",
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
    let trials = vec![
        Trial::test("loom_models_pass", loom_models_pass).with_ignored_flag(skip),
        // Always flagged: libtest-mimic runs it under `--ignored` / `--include-ignored` only.
        Trial::test("loom_heavy_models_pass", loom_heavy_models_pass).with_ignored_flag(true),
    ];
    libtest_mimic::run(&args, trials).exit();
}
