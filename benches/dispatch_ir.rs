//! Instructions per post, counted by valgrind's callgrind: the same inline workload as
//! `benches/dispatch.rs`, measured in a unit that does not depend on how busy the machine is.
//!
//! `cargo bench --bench dispatch_ir` runs every case twice under
//! `valgrind --tool=callgrind` (with two iteration counts, so that start-up cancels out),
//! prints instructions per post and the ratio to the `floor`, and writes
//! `target/herald-bench/dispatch_ir.json` (`[{scenario, n, implementation, instructions}]`).
//! Instructions are not time (a fence is one instruction and tens of cycles; a cache miss is
//! none), so this complements the wall-clock medians of `dispatch.rs`; it does not replace them.
//! Without valgrind it says so and exits.

use std::hint::black_box;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use arc_swap::ArcSwap;
use herald::{Notification, NotificationCenter};

#[derive(Debug, Clone)]
struct Tick(u64);
impl Notification for Tick {}

type Observer = Box<dyn Fn(&Tick) + Send + Sync>;
type SharedObserver = Arc<dyn Fn(&Tick) + Send + Sync>;

const NS: [usize; 5] = [1, 4, 16, 64, 256];
const IMPLS: [&str; 5] = [
    "floor",
    "rwlock-bus",
    "arc-swap-bus",
    "herald-handle",
    "herald-post",
];

fn observer(c: Arc<AtomicU64>) -> impl Fn(&Tick) + Send + Sync + 'static {
    move |t: &Tick| {
        c.fetch_add(t.0, Ordering::Relaxed);
    }
}

fn counters(n: usize) -> Vec<Arc<AtomicU64>> {
    (0..n).map(|_| Arc::new(AtomicU64::new(0))).collect()
}

/// Runs `iters` posts of one implementation with `n` observers (inside callgrind).
fn run_case(implementation: &str, n: usize, iters: u64) {
    match implementation {
        "floor" => {
            let v: Vec<Observer> = counters(n)
                .into_iter()
                .map(|c| Box::new(observer(c)) as Observer)
                .collect();
            for _ in 0..iters {
                let t = Tick(black_box(1));
                for o in v.iter() {
                    o(&t);
                }
            }
        }
        "rwlock-bus" => {
            let bus: RwLock<Vec<Observer>> = RwLock::new(
                counters(n)
                    .into_iter()
                    .map(|c| Box::new(observer(c)) as Observer)
                    .collect(),
            );
            for _ in 0..iters {
                let t = Tick(black_box(1));
                let g = match bus.read() {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
                for o in g.iter() {
                    o(&t);
                }
            }
        }
        "arc-swap-bus" => {
            let bus: ArcSwap<Vec<SharedObserver>> = ArcSwap::from_pointee(
                counters(n)
                    .into_iter()
                    .map(|c| Arc::new(observer(c)) as SharedObserver)
                    .collect(),
            );
            for _ in 0..iters {
                let t = Tick(black_box(1));
                let g = bus.load();
                for o in g.iter() {
                    o(&t);
                }
            }
        }
        "herald-handle" | "herald-post" => {
            let center = NotificationCenter::new();
            let _subs: Vec<_> = counters(n)
                .into_iter()
                .map(|c| center.observe(observer(c)))
                .collect();
            let poster = center.poster::<Tick>();
            if implementation == "herald-handle" {
                for _ in 0..iters {
                    black_box(poster.post(Tick(black_box(1))));
                }
            } else {
                for _ in 0..iters {
                    black_box(center.post(Tick(black_box(1))));
                }
            }
        }
        other => eprintln!("unknown implementation {other}"),
    }
}

/// Total instructions callgrind counted for one run of this binary.
fn instructions(implementation: &str, n: usize, iters: u64) -> Option<u64> {
    let exe = std::env::current_exe().ok()?;
    let out_file = std::env::temp_dir().join(format!(
        "herald-callgrind-{}-{implementation}-{n}-{iters}",
        std::process::id()
    ));
    let output = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out_file.display()))
        .arg(&exe)
        .args(["--run", implementation, &n.to_string(), &iters.to_string()])
        .output()
        .ok()?;
    let _ = std::fs::remove_file(&out_file);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // "==123== Collected : 123456"
    stderr
        .lines()
        .find_map(|l| l.split("Collected :").nth(1))
        .and_then(|v| v.trim().parse().ok())
}

fn target_dir() -> std::path::PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = std::path::PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)
            }
        }
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--run") {
        let implementation = args.get(2).map(String::as_str).unwrap_or("floor");
        let n = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
        let iters = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(1000);
        run_case(implementation, n, iters);
        return;
    }
    if Command::new("valgrind").arg("--version").output().is_err() {
        println!("dispatch_ir: valgrind is not installed (apt-get install valgrind): skipped");
        return;
    }
    // `cargo bench` passes `--bench`; a filter, if any, selects implementations.
    let filter: Vec<&String> = args[1..].iter().filter(|a| !a.starts_with("--")).collect();
    let mut rows = Vec::new();
    println!("instructions per post (callgrind), ratio to floor");
    for &n in &NS {
        let (lo, hi) = (2_000u64, 12_000u64);
        let mut floor = None;
        for implementation in IMPLS {
            if !filter.is_empty()
                && implementation != "floor"
                && !filter.iter().any(|f| implementation.contains(f.as_str()))
            {
                continue;
            }
            let (Some(a), Some(b)) = (
                instructions(implementation, n, lo),
                instructions(implementation, n, hi),
            ) else {
                println!("{implementation} N={n}: callgrind failed");
                continue;
            };
            let per_post = b.saturating_sub(a) as f64 / (hi - lo) as f64;
            if implementation == "floor" {
                floor = Some(per_post);
            }
            let ratio = floor.map(|f| per_post / f).unwrap_or(f64::NAN);
            println!("inline {n:>4} {implementation:<14} {per_post:>10.1} {ratio:>6.2}x floor");
            rows.push(format!(
                "  {{\"scenario\": \"inline\", \"n\": {n}, \"implementation\": \"{implementation}\", \"instructions\": {per_post:.1}}}"
            ));
        }
    }
    let dir = target_dir().join("herald-bench");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("dispatch_ir.json");
    let _ = std::fs::write(&path, format!("[\n{}\n]\n", rows.join(",\n")));
    println!("wrote {}", path.display());
}
