//! Cross-process notification benchmarks: herald's NATS bridge against raw `async-nats`
//! publish/subscribe of the same JSON bytes, both through one real `nats-server` on loopback,
//! measured in the same run.
//!
//! `cargo bench --features nats --bench nats` starts `nats-server` (see `tests/nats_support`;
//! without it the bench prints why and does nothing), runs:
//! - `latency`: one notification at a time, from a post in center A (bridge) or a `publish`
//!   (raw) to the moment an observer in center B (bridge) or a subscriber task (raw) has the
//!   deserialized value. Both ends live in this process, so one clock times the one-way trip.
//!   Criterion reports the median; a separate pass of 5 000 samples per peer gives p50 / p99.
//! - `throughput`: 20 000 notifications as fast as they go, until the last one is received;
//!   criterion's median, and the median of 10 batches per peer run alternately (the ratio).
//!
//! It writes `target/herald-bench/nats.json` (`[{scenario, implementation, median_ns, p50_ns,
//! p99_ns}]`; for throughput, `p50_ns` is the interleaved median per notification) and prints
//! medians and ratios against the goals (bridge latency <= 1.1x raw, throughput >= 0.9x raw).

#[path = "../tests/nats_support/mod.rs"]
mod nats_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::Criterion;
use futures::StreamExt;
use herald::nats::NatsBridge;
use herald::{Notification, NotificationCenter};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// About 100 bytes of JSON, like a small domain event.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tick {
    at_ns: u64,
    seq: u64,
    symbol: String,
    note: String,
}
impl Notification for Tick {
    fn name() -> &'static str {
        "bench.tick"
    }
}

fn tick(epoch: Instant, seq: u64) -> Tick {
    Tick {
        at_ns: epoch.elapsed().as_nanos() as u64,
        seq,
        symbol: "HRLD".into(),
        note: "a small domain event of about one hundred bytes".into(),
    }
}

const THROUGHPUT_BATCH: u64 = 20_000;
const PERCENTILE_SAMPLES: usize = 5_000;
const INTERLEAVED_BATCHES: usize = 10;

/// One peer: send one value, and a channel where the receiving side reports each arrival
/// (the one-way latency in ns).
enum Peer {
    Bridge {
        center: NotificationCenter,
        _export: herald::nats::Export,
        _import: herald::nats::Import,
        _obs: herald::Subscription,
    },
    Raw {
        client: async_nats::Client,
        _task: tokio::task::JoinHandle<()>,
    },
}

struct Setup {
    peer: Peer,
    arrivals: mpsc::UnboundedReceiver<u64>,
    epoch: Instant,
}

impl Setup {
    async fn bridge(url: &str) -> Setup {
        let epoch = Instant::now();
        let a = NatsBridge::connect(url).await.unwrap();
        let b = NatsBridge::connect(url).await.unwrap();
        let (here, there) = (NotificationCenter::new(), NotificationCenter::new());
        let export = here.observer::<Tick>().forward(a.publish()).unwrap();
        let import = b.import::<Tick>(&there).await.unwrap();
        let (tx, arrivals) = mpsc::unbounded_channel();
        let obs = there.observe(move |t: &Tick| {
            let _ = tx.send((epoch.elapsed().as_nanos() as u64).saturating_sub(t.at_ns));
        });
        Setup {
            peer: Peer::Bridge {
                center: here,
                _export: export,
                _import: import,
                _obs: obs,
            },
            arrivals,
            epoch,
        }
    }

    async fn raw(url: &str) -> Setup {
        let epoch = Instant::now();
        let a = async_nats::connect(url).await.unwrap();
        let b = async_nats::connect(url).await.unwrap();
        let mut sub = b.subscribe("bench.raw").await.unwrap();
        b.flush().await.unwrap();
        a.flush().await.unwrap();
        let (tx, arrivals) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let _keep = b;
            while let Some(m) = sub.next().await {
                let t: Tick = serde_json::from_slice(&m.payload).unwrap();
                let _ = tx.send((epoch.elapsed().as_nanos() as u64).saturating_sub(t.at_ns));
            }
        });
        // The subscription is in force once a message round-trips.
        a.publish(
            "bench.raw",
            serde_json::to_vec(&tick(epoch, 0)).unwrap().into(),
        )
        .await
        .unwrap();
        let mut s = Setup {
            peer: Peer::Raw {
                client: a,
                _task: task,
            },
            arrivals,
            epoch,
        };
        s.arrivals.recv().await.unwrap();
        s
    }

    async fn send(&self, seq: u64) {
        let value = tick(self.epoch, seq);
        match &self.peer {
            Peer::Bridge { center, .. } => {
                center.post(value);
            }
            Peer::Raw { client, .. } => {
                let bytes = serde_json::to_vec(&value).unwrap();
                client.publish("bench.raw", bytes.into()).await.unwrap();
            }
        }
    }

    /// One value, waited for; returns its one-way latency.
    async fn one(&mut self, seq: u64) -> u64 {
        self.send(seq).await;
        self.arrivals.recv().await.unwrap()
    }

    /// `n` values as fast as they go; returns the time until the last arrived.
    async fn batch(&mut self, n: u64) -> Duration {
        let start = Instant::now();
        for seq in 0..n {
            self.send(seq).await;
        }
        for _ in 0..n {
            self.arrivals.recv().await.unwrap();
        }
        start.elapsed()
    }
}

struct Row {
    scenario: &'static str,
    implementation: &'static str,
    median_ns: f64,
    p50_ns: Option<f64>,
    p99_ns: Option<f64>,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64
}

fn main() {
    if nats_support::find_server_binary().is_none() {
        println!("nats bench skipped: nats-server not found (apt-get install -y nats-server)");
        return;
    }
    let server = nats_support::NatsServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = server.url();
    let mut peers = rt.block_on(async {
        vec![
            ("herald-bridge", Setup::bridge(&url).await),
            ("raw-async-nats", Setup::raw(&url).await),
        ]
    });
    let counter = Arc::new(AtomicU64::new(1));

    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
        .configure_from_args();
    let mut medians: Vec<(&'static str, &'static str, f64)> = Vec::new();
    {
        let mut group = criterion.benchmark_group("nats/latency");
        for (name, setup) in peers.iter_mut() {
            let c = counter.clone();
            group.bench_function(*name, |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let mut total = 0u64;
                        for _ in 0..iters {
                            total += setup.one(c.fetch_add(1, Ordering::Relaxed)).await;
                        }
                        Duration::from_nanos(total)
                    })
                })
            });
            medians.push(("latency", name, criterion_median("nats_latency", name, 1.0)));
        }
        group.finish();
    }
    {
        let mut group = criterion.benchmark_group("nats/throughput");
        group.throughput(criterion::Throughput::Elements(THROUGHPUT_BATCH));
        for (name, setup) in peers.iter_mut() {
            group.bench_function(*name, |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            total += setup.batch(THROUGHPUT_BATCH).await;
                        }
                        total
                    })
                })
            });
            medians.push((
                "throughput",
                name,
                criterion_median("nats_throughput", name, THROUGHPUT_BATCH as f64),
            ));
        }
        group.finish();
    }
    criterion.final_summary();
    // Criterion wrote its estimates when each group finished; read them now.
    for (scenario, name, median) in medians.iter_mut() {
        let (group, per) = match *scenario {
            "latency" => ("nats_latency", 1.0),
            _ => ("nats_throughput", THROUGHPUT_BATCH as f64),
        };
        *median = criterion_median(group, name, per);
    }

    // Percentiles: the peers alternate in blocks so that machine load hits both alike.
    let mut lat: Vec<Vec<u64>> = vec![Vec::new(), Vec::new()];
    rt.block_on(async {
        for _ in 0..(PERCENTILE_SAMPLES / 250) {
            for (i, (_, setup)) in peers.iter_mut().enumerate() {
                for _ in 0..250 {
                    let seq = counter.fetch_add(1, Ordering::Relaxed);
                    lat[i].push(setup.one(seq).await);
                }
            }
        }
    });
    // Throughput, interleaved the same way: batches alternate between the peers.
    let mut thr: Vec<Vec<u64>> = vec![Vec::new(), Vec::new()];
    rt.block_on(async {
        for _ in 0..INTERLEAVED_BATCHES {
            for (i, (_, setup)) in peers.iter_mut().enumerate() {
                let d = setup.batch(THROUGHPUT_BATCH).await;
                thr[i].push(d.as_nanos() as u64 / THROUGHPUT_BATCH);
            }
        }
    });
    let mut rows = Vec::new();
    for (scenario, implementation, median_ns) in medians {
        let i = usize::from(implementation != "herald-bridge");
        let (p50, p99) = if scenario == "latency" {
            lat[i].sort_unstable();
            (
                Some(percentile(&lat[i], 0.5)),
                Some(percentile(&lat[i], 0.99)),
            )
        } else {
            thr[i].sort_unstable();
            (Some(percentile(&thr[i], 0.5)), None)
        };
        rows.push(Row {
            scenario,
            implementation,
            median_ns,
            p50_ns: p50,
            p99_ns: p99,
        });
    }
    report(&rows);
    drop(peers);
    drop(server);
}

fn target_dir() -> std::path::PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => std::path::PathBuf::from(d),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
    }
}

/// Criterion's median for one benchmark (ns per iteration), divided by `per`.
fn criterion_median(group: &str, implementation: &str, per: f64) -> f64 {
    let path = target_dir()
        .join("criterion")
        .join(group)
        .join(implementation)
        .join("new/estimates.json");
    let Ok(text) = std::fs::read_to_string(path) else {
        return f64::NAN;
    };
    let median = text.find("\"median\"").and_then(|at| {
        let rest = &text[at..];
        let p = rest.find("\"point_estimate\":")? + "\"point_estimate\":".len();
        let num: String = rest[p..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'))
            .collect();
        num.parse::<f64>().ok()
    });
    median.map_or(f64::NAN, |m| m / per)
}

fn report(rows: &[Row]) {
    let dir = target_dir().join("herald-bench");
    let _ = std::fs::create_dir_all(&dir);
    let opt = |v: Option<f64>| v.map_or("null".to_owned(), |v| format!("{v:.0}"));
    let json: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "  {{\"scenario\": \"{}\", \"implementation\": \"{}\", \"median_ns\": {:.1}, \"p50_ns\": {}, \"p99_ns\": {}}}",
                r.scenario, r.implementation, r.median_ns, opt(r.p50_ns), opt(r.p99_ns)
            )
        })
        .collect();
    let _ = std::fs::write(
        dir.join("nats.json"),
        format!("[\n{}\n]\n", json.join(",\n")),
    );

    let get = |s: &str, i: &str| {
        rows.iter()
            .find(|r| r.scenario == s && r.implementation == i)
    };
    println!(
        "\n== herald over NATS vs raw async-nats, same JSON bytes, one nats-server on loopback =="
    );
    for r in rows {
        match r.scenario {
            "latency" => println!(
                "latency    {:<15} median {:>8.1} us   p50 {:>8.1} us   p99 {:>8.1} us",
                r.implementation,
                r.median_ns / 1e3,
                r.p50_ns.unwrap_or(0.0) / 1e3,
                r.p99_ns.unwrap_or(0.0) / 1e3
            ),
            _ => println!(
                "throughput {:<15} {:>8.0} notifications/s interleaved, {:>8.0}/s criterion",
                r.implementation,
                1e9 / r.p50_ns.unwrap_or(f64::NAN),
                1e9 / r.median_ns
            ),
        }
    }
    if let (Some(b), Some(r)) = (
        get("latency", "herald-bridge"),
        get("latency", "raw-async-nats"),
    ) {
        // p50 and p99 come from the interleaved pass (both peers under the same load); the
        // criterion medians ran one peer after the other.
        let p50 = b.p50_ns.unwrap_or(0.0) / r.p50_ns.unwrap_or(1.0);
        let p99 = b.p99_ns.unwrap_or(0.0) / r.p99_ns.unwrap_or(1.0);
        let median = b.median_ns / r.median_ns;
        println!(
            "latency ratio bridge/raw: p50 {p50:.2}x, p99 {p99:.2}x, criterion median {median:.2}x \
             (goal <= 1.10x): {}",
            if p50 <= 1.1 { "met" } else { "MISSED" }
        );
    }
    if let (Some(b), Some(r)) = (
        get("throughput", "herald-bridge"),
        get("throughput", "raw-async-nats"),
    ) {
        // From the interleaved batches (p50 of ns per notification); criterion's medians ran
        // one peer after the other.
        let ratio = r.p50_ns.unwrap_or(f64::NAN) / b.p50_ns.unwrap_or(f64::NAN);
        println!(
            "throughput ratio bridge/raw: {ratio:.2}x (goal >= 0.90x): {}",
            if ratio >= 0.9 { "met" } else { "MISSED" }
        );
    }
    println!("\nwrote {}", dir.join("nats.json").display());
}
