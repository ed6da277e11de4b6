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
//! - A third peer, `raw+reply-subject`, is raw `async-nats` sending each message with a reply
//!   subject shaped like the bridge's metadata (`_HERALD.1.<bridge id>.<seq>`): the same bytes
//!   on the wire as the bridge, without herald's code at either end. The report splits the
//!   bridge's throughput gap into what that metadata costs and what herald's code costs.
//! - A fourth peer, `herald-bridge-batched`, is the bridge with
//!   [`batching`](herald::nats::NatsBridgeBuilder::batching) on (opt-in; wire version 2): a
//!   burst's notifications that wait in the outbox go out several to a NATS message. The
//!   default bridge's figures stay reported beside it.
//!
//! - `push_throughput` and `push_throughput_apns_latency` (with features `bridge` and `mock`):
//!   pushes through the JetStream work queue with 1, 2 and 4 `PushWorker`s against the mock APNs
//!   server, and the sink sending directly as the ceiling, with the mock answering at once
//!   (CPU-bound) or after 20 ms (latency-bound, where workers add capacity); median of
//!   interleaved rounds, `target/herald-bench/nats_push.json`.
//!
//! `HERALD_BENCH_ONLY=push` runs the push scenario alone (for profiling).
//!
//! It writes `target/herald-bench/nats.json` (`[{scenario, implementation, median_ns, p50_ns,
//! p99_ns}]`; for throughput, `p50_ns` is the interleaved median per notification) and prints
//! medians and ratios against the goals (bridge latency <= 1.1x raw, throughput >= 0.9x raw),
//! for the default bridge and the batched one.

#[path = "../tests/nats_support/mod.rs"]
mod nats_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::Criterion;
use futures::StreamExt;
use herald::nats::{Batching, NatsBridge};
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
/// Raw `async-nats` carrying the bridge's per-message metadata (its reply subjects): what the
/// wire format costs, apart from herald's code.
const RAW_WITH_REPLY: &str = "raw+reply-subject";
/// The bridge as configured by default (every notification one NATS message).
const BRIDGE: &str = "herald-bridge";
/// The bridge with batching on.
const BRIDGE_BATCHED: &str = "herald-bridge-batched";
const PERCENTILE_SAMPLES: usize = 5_000;
const INTERLEAVED_BATCHES: usize = 10;

/// One peer: send one value, and a channel where the receiving side reports each arrival
/// (the one-way latency in ns).
enum Peer {
    Bridge {
        center: NotificationCenter,
        exporter: NatsBridge,
        _export: herald::nats::Export,
        _import: herald::nats::Import,
        _obs: herald::Subscription,
    },
    Raw {
        client: async_nats::Client,
        subject: &'static str,
        /// With a reply subject shaped like the bridge's (`_HERALD.1.<bridge id>.<seq>`): the
        /// same bytes on the wire as the bridge sends, without herald's code at either end.
        reply_prefix: Option<String>,
        _task: tokio::task::JoinHandle<()>,
    },
}

struct Setup {
    peer: Peer,
    arrivals: mpsc::UnboundedReceiver<u64>,
    epoch: Instant,
}

impl Setup {
    async fn bridge(url: &str, batching: bool) -> Setup {
        let epoch = Instant::now();
        // The batched peer's bridges work under their own subject prefix: the two bridge
        // peers must not receive each other's notifications.
        let (mut exporter, mut importer) = (NatsBridge::builder(), NatsBridge::builder());
        if batching {
            exporter = exporter
                .batching(Batching::new())
                .subject_prefix("batched.");
            importer = importer.subject_prefix("batched.");
        }
        let a = exporter.connect(url).await.unwrap();
        let b = importer.connect(url).await.unwrap();
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
                exporter: a,
                _export: export,
                _import: import,
                _obs: obs,
            },
            arrivals,
            epoch,
        }
    }

    async fn raw(url: &str, with_reply: bool) -> Setup {
        let epoch = Instant::now();
        let a = async_nats::connect(url).await.unwrap();
        let b = async_nats::connect(url).await.unwrap();
        let (subject, reply_prefix) = if with_reply {
            let id = "0123456789abcdef0123456789abcdef";
            ("bench.raw-reply", Some(format!("_HERALD.1.{id}.")))
        } else {
            ("bench.raw", None)
        };
        let mut sub = b.subscribe(subject).await.unwrap();
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
        a.publish(subject, serde_json::to_vec(&tick(epoch, 0)).unwrap().into())
            .await
            .unwrap();
        let mut s = Setup {
            peer: Peer::Raw {
                client: a,
                subject,
                reply_prefix,
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
            Peer::Raw {
                client,
                subject,
                reply_prefix,
                ..
            } => {
                let bytes = serde_json::to_vec(&value).unwrap();
                match reply_prefix {
                    Some(prefix) => client
                        .publish_with_reply(*subject, format!("{prefix}{seq}"), bytes.into())
                        .await
                        .unwrap(),
                    None => client.publish(*subject, bytes.into()).await.unwrap(),
                }
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
    if std::env::var("HERALD_BENCH_ONLY").is_ok_and(|v| v == "push") {
        #[cfg(all(feature = "bridge", feature = "mock"))]
        push::run(&rt, &url);
        return;
    }
    let mut peers = rt.block_on(async {
        vec![
            (BRIDGE, Setup::bridge(&url, false).await),
            ("raw-async-nats", Setup::raw(&url, false).await),
            (RAW_WITH_REPLY, Setup::raw(&url, true).await),
            (BRIDGE_BATCHED, Setup::bridge(&url, true).await),
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
    let mut lat: Vec<Vec<u64>> = vec![Vec::new(); peers.len()];
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
    let mut thr: Vec<Vec<u64>> = vec![Vec::new(); peers.len()];
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
        let i = peers
            .iter()
            .position(|(name, _)| *name == implementation)
            .expect("every measured implementation is a peer");
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
    for (name, setup) in &peers {
        if let Peer::Bridge { exporter, .. } = &setup.peer {
            let m = exporter.metrics();
            println!(
                "{name}: {} notifications published over the whole run, {} of them in {} \
                 batches ({:.0} per batch; the latency scenario sends one at a time)",
                m.published,
                m.batched,
                m.batches,
                m.batched as f64 / m.batches.max(1) as f64
            );
        }
    }
    drop(peers);
    #[cfg(all(feature = "bridge", feature = "mock"))]
    push::run(&rt, &url);
    drop(server);
}

/// Push throughput through the JetStream work queue with 1, 2 and 4 in-process workers
/// against the mock APNs server, and the sink sending directly (no NATS) as the ceiling, in
/// two regimes:
/// - `push_throughput`: the mock answers at once and every worker may hold 256 jobs. Here the
///   posting side, the workers, the mock and `nats-server` share one machine's cores, so this
///   measures the queue's CPU cost per push; on a 2-core machine one worker already fills them.
/// - `push_throughput_apns_latency`: the mock takes 20 ms per answer (Apple's servers are
///   tens of ms away) and every worker holds at most 32 jobs, as a worker bounded by its
///   connection's streams is. Each worker then has a ceiling of about 32 / 20 ms, and
///   adding workers should add their ceilings until the machine's: this is the fan-out.
///
/// Median of interleaved rounds, `target/herald-bench/nats_push.json`.
#[cfg(all(feature = "bridge", feature = "mock"))]
mod push {
    use std::time::{Duration, Instant};

    use herald::apns::{ApnsClient, Endpoint, Payload, TokenKey};
    use herald::bridge::{ApnsSink, Message};
    use herald::mock::{Latency, MockApns};
    use herald::nats::{NatsBridge, NatsPushQueue, PushQueueConfig, PushWorker};
    use herald::{Notification, NotificationCenter, Overflow};

    const ROUNDS: usize = 3;

    struct Go(u64);
    impl Notification for Go {}

    /// One regime of the comparison.
    struct Scenario {
        name: &'static str,
        /// Names this scenario's streams and subjects.
        tag: &'static str,
        latency: Duration,
        worker_concurrency: usize,
        pushes: u64,
    }

    const SCENARIOS: [Scenario; 2] = [
        Scenario {
            name: "push_throughput",
            tag: "cpu",
            latency: Duration::ZERO,
            worker_concurrency: 256,
            pushes: 4_000,
        },
        Scenario {
            name: "push_throughput_apns_latency",
            tag: "lat",
            latency: Duration::from_millis(20),
            worker_concurrency: 32,
            pushes: 2_000,
        },
    ];

    fn client_of(mock: &MockApns, p8: &str) -> ApnsClient {
        ApnsClient::builder()
            .endpoint(
                Endpoint::custom(&mock.url())
                    .unwrap()
                    .with_ca_pem(mock.ca_pem()),
            )
            .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456").unwrap())
            .build()
            .unwrap()
    }

    /// One timed round: `pushes` posts until every outcome is back; ns per push.
    async fn round(sink: &ApnsSink, pushes: u64) -> u64 {
        let center = NotificationCenter::new();
        let forwarding =
            center
                .observer::<Go>()
                .policy(Overflow::Backpressure { capacity: 8192 })
                .forward(sink.map(|g: &Go| {
                    Message::to_token(format!("{:064x}", g.0), Payload::alert("bench"))
                }));
        let before = sink.metrics().accepted;
        let started = Instant::now();
        for i in 0..pushes {
            let _ = center.post_async(Go(i)).await;
        }
        forwarding.idle().await;
        let took = started.elapsed();
        assert_eq!(
            sink.metrics().accepted - before,
            pushes,
            "every push accepted"
        );
        took.as_nanos() as u64 / pushes
    }

    /// The rows of one scenario: (implementation, median ns per push).
    async fn scenario(url: &str, sc: &Scenario) -> Vec<(String, u64)> {
        let mock = MockApns::builder()
            .accept_unknown_tokens(true)
            .latency(if sc.latency.is_zero() {
                Latency::None
            } else {
                Latency::Fixed(sc.latency)
            })
            .start()
            .await
            .unwrap();
        // One key for every client: generating it again would replace it.
        let p8 = mock.generate_key("ABC123DEFG", "TEAM123456").unwrap();
        let mut peers: Vec<(String, ApnsSink, Vec<herald::nats::WorkerHandle>)> = Vec::new();
        let direct = ApnsSink::builder(client_of(&mock, &p8))
            .topic("com.example.app")
            .concurrency(1024)
            .build();
        peers.push(("direct (no NATS)".into(), direct, Vec::new()));
        for workers in [1usize, 2, 4] {
            let tag = format!("{}{workers}", sc.tag);
            let prefix = format!("bench{tag}.");
            let config = PushQueueConfig::default()
                .stream(format!("BENCH_PUSH_{tag}"))
                .outcome_stream(format!("BENCH_OUTCOMES_{tag}"));
            let bridge = NatsBridge::builder()
                .subject_prefix(prefix.clone())
                .connect(url)
                .await
                .unwrap();
            let queue = NatsPushQueue::start(&bridge, config.clone()).await.unwrap();
            let sink = ApnsSink::builder(ApnsClient::builder().build().unwrap())
                .topic("com.example.app")
                .concurrency(1024)
                .dispatch(queue)
                .build();
            let mut handles = Vec::new();
            for _ in 0..workers {
                let b = NatsBridge::builder()
                    .subject_prefix(prefix.clone())
                    .connect(url)
                    .await
                    .unwrap();
                handles.push(
                    PushWorker::builder(client_of(&mock, &p8))
                        .config(config.clone())
                        .concurrency(sc.worker_concurrency)
                        .start(&b)
                        .await
                        .unwrap(),
                );
            }
            peers.push((format!("{workers} worker(s)"), sink, handles));
        }
        // Warm-up, then rounds alternating between the peers.
        for (_, sink, _) in &peers {
            round(sink, sc.pushes / 4).await;
        }
        let mut samples: Vec<Vec<u64>> = vec![Vec::new(); peers.len()];
        for _ in 0..ROUNDS {
            for (i, (_, sink, _)) in peers.iter().enumerate() {
                samples[i].push(round(sink, sc.pushes).await);
            }
        }
        let mut rows = Vec::new();
        for ((name, _, handles), mut s) in peers.into_iter().zip(samples) {
            s.sort_unstable();
            rows.push((name, s[s.len() / 2]));
            for h in handles {
                h.shutdown().await;
            }
        }
        rows
    }

    pub(super) fn run(rt: &tokio::runtime::Runtime, url: &str) {
        let mut json = Vec::new();
        for sc in &SCENARIOS {
            let rows = rt.block_on(scenario(url, sc));
            for (name, ns) in &rows {
                json.push(format!(
                    "  {{\"scenario\": \"{}\", \"implementation\": \"{name}\", \"median_ns\": {ns}, \"pushes_per_s\": {:.0}}}",
                    sc.name,
                    1e9 / *ns as f64
                ));
            }
            println!(
                "\n== {}: {} pushes per round, median of {ROUNDS} interleaved rounds, workers in \
                 this process ({} jobs each), mock APNs on loopback answering after {:?} ==",
                sc.name, sc.pushes, sc.worker_concurrency, sc.latency
            );
            let one = rows
                .iter()
                .find(|(n, _)| n.starts_with("1 "))
                .map_or(f64::NAN, |(_, ns)| *ns as f64);
            let direct = rows[0].1 as f64;
            for (name, ns) in &rows {
                println!(
                    "{name:<18} {:>8.0} pushes/s   vs 1 worker {:>5.2}x   vs direct {:>5.2}x",
                    1e9 / *ns as f64,
                    one / *ns as f64,
                    direct / *ns as f64
                );
            }
        }
        let dir = super::target_dir().join("herald-bench");
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(
            dir.join("nats_push.json"),
            format!("[\n{}\n]\n", json.join(",\n")),
        );
        println!("wrote {}", dir.join("nats_push.json").display());
    }
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
                "latency    {:<21} median {:>8.1} us   p50 {:>8.1} us   p99 {:>8.1} us",
                r.implementation,
                r.median_ns / 1e3,
                r.p50_ns.unwrap_or(0.0) / 1e3,
                r.p99_ns.unwrap_or(0.0) / 1e3
            ),
            _ => println!(
                "throughput {:<21} {:>8.0} notifications/s interleaved, {:>8.0}/s criterion",
                r.implementation,
                1e9 / r.p50_ns.unwrap_or(f64::NAN),
                1e9 / r.median_ns
            ),
        }
    }
    for (bridge, label) in [(BRIDGE, "bridge"), (BRIDGE_BATCHED, "bridge-batched")] {
        if let (Some(b), Some(r)) = (get("latency", bridge), get("latency", "raw-async-nats")) {
            // p50 and p99 come from the interleaved pass (every peer under the same load);
            // the criterion medians ran one peer after the other.
            let p50 = b.p50_ns.unwrap_or(0.0) / r.p50_ns.unwrap_or(1.0);
            let p99 = b.p99_ns.unwrap_or(0.0) / r.p99_ns.unwrap_or(1.0);
            let median = b.median_ns / r.median_ns;
            println!(
                "latency ratio {label}/raw: p50 {p50:.2}x, p99 {p99:.2}x, criterion median \
                 {median:.2}x (goal <= 1.10x): {}",
                if p50 <= 1.1 { "met" } else { "MISSED" }
            );
        }
    }
    for (bridge, label) in [(BRIDGE, "bridge"), (BRIDGE_BATCHED, "bridge-batched")] {
        if let (Some(b), Some(r)) = (
            get("throughput", bridge),
            get("throughput", "raw-async-nats"),
        ) {
            // From the interleaved batches (p50 of ns per notification); criterion's medians
            // ran one peer after the other.
            let ratio = r.p50_ns.unwrap_or(f64::NAN) / b.p50_ns.unwrap_or(f64::NAN);
            println!(
                "throughput ratio {label}/raw: {ratio:.2}x (goal >= 0.90x): {}",
                if ratio >= 0.9 { "met" } else { "MISSED" }
            );
        }
    }
    if let (Some(b), Some(r), Some(m)) = (
        get("throughput", BRIDGE),
        get("throughput", "raw-async-nats"),
        get("throughput", RAW_WITH_REPLY),
    ) {
        let p50 = |row: &Row| row.p50_ns.unwrap_or(f64::NAN);
        println!(
            "throughput split: raw with the bridge's reply subjects / raw {:.2}x (the wire \
             format's metadata), bridge / raw with them {:.2}x (herald's own code)",
            p50(r) / p50(m),
            p50(m) / p50(b)
        );
    }
    println!("\nwrote {}", dir.join("nats.json").display());
}
