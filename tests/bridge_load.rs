//! Load: 10^5 notifications, each fanned out to a subject's 10 devices, over 10^4 registered
//! tokens, through the sink to the mock APNs. Every push is accounted for (sent = accepted +
//! rejected + failed, matching the mock and the outcome notifications) and memory stays bounded
//! by the queue and the in-flight limit.
//!
//! Measured (release, 2 shared cores, mock in a child process on the same cores, 2026-12-01):
//! 985,150 pushes (accepted 984,900, rejected 150, failed 100; 4,950 held back from the 50
//! quarantined tokens, 990 messages to subjects whose tokens were all deleted) in 22.9 s, about
//! 43,000 pushes/s; queue depth at most 4096/4096 with backpressure, 0 dropped; 512/512 in
//! flight; RSS 13.3 MiB at start, 21.1 MiB peak.
//!
//! Ignored by default (about a million pushes); `.ci/run` runs it, in release:
//!
//! ```text
//! cargo test --release --features endpoint,mock --test bridge_load -- --ignored --nocapture
//! ```
//!
//! `HERALD_LOAD_NOTIFICATIONS` changes the number of notifications (default 100000).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use herald::apns::{ApnsClient, Endpoint, Payload, TokenKey};
use herald::bridge::{
    ApnsSink, Device, DeviceRegistry, Environment, Message, PushAccepted, PushFailed, PushRejected,
    TokenInvalidated,
};
use herald::mock::{Fault, MockApns};
use herald::{Notification, NotificationCenter, Overflow};

const KEY_ID: &str = "ABC123DEFG";
const TEAM_ID: &str = "TEAM123456";
const BUNDLE: &str = "com.example.app";
const TOKENS: usize = 10_000;
const PER_SUBJECT: usize = 10;
const QUEUE: usize = 4096;
const IN_FLIGHT: usize = 512;

struct Ping {
    subject: usize,
}
impl Notification for Ping {}

fn token(i: usize) -> String {
    format!("{i:08x}").repeat(8)
}

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load test: about a million pushes; run in release with --ignored"]
async fn a_hundred_thousand_notifications_to_ten_thousand_tokens_all_accounted_for() {
    // Re-invoked as the mock's process (see below).
    if let Some(dir) = std::env::var_os("HERALD_LOAD_MOCK_DIR") {
        return load_mock_child(std::path::PathBuf::from(dir)).await;
    }
    let notifications: usize = std::env::var("HERALD_LOAD_NOTIFICATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let subjects = TOKENS / PER_SUBJECT;

    // The mock runs in a child process (this binary, re-invoked), so this process's memory is
    // the bridge's alone (the mock remembers every accepted apns-id).
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_hundred_thousand_notifications_to_ten_thousand_tokens_all_accounted_for",
            "--ignored",
            "--nocapture",
        ])
        .env("HERALD_LOAD_MOCK_DIR", dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let url = loop {
        let line = lines.next().expect("mock child exited").unwrap();
        if let Some(url) = line.strip_prefix("ready ") {
            break url.to_owned();
        }
    };
    let ca = std::fs::read_to_string(dir.path().join("ca.pem")).unwrap();
    let p8 = std::fs::read_to_string(dir.path().join("key.p8")).unwrap();

    let registry = DeviceRegistry::in_memory();
    for i in 0..TOKENS {
        registry
            .register(Device::new(
                format!("user{}", i % subjects),
                token(i),
                BUNDLE,
                Environment::Sandbox,
            ))
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(5));
    std::fs::write(dir.path().join("go"), b"").unwrap();
    while std::fs::metadata(dir.path().join("marked")).is_err() {
        std::thread::sleep(Duration::from_millis(5));
    }

    let client = ApnsClient::builder()
        .endpoint(Endpoint::custom(&url).unwrap().with_ca_pem(ca))
        .token_auth(TokenKey::from_p8_pem(p8, KEY_ID, TEAM_ID).unwrap())
        .connections(2)
        // Only the stalled first pushes wait for it. Long, so that a loaded host delaying an
        // answer never turns a rejection into a failure (the mock has counted the answer by
        // then, and the counts below would disagree).
        .request_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let center = NotificationCenter::new();
    let _cleanup = registry.observe(&center);
    let counts = Arc::new([const { AtomicU64::new(0) }; 4]);
    let c = counts.clone();
    let _a = center.observe(move |_: &PushAccepted| {
        c[0].fetch_add(1, Ordering::Relaxed);
    });
    let c = counts.clone();
    let _r = center.observe(move |_: &PushRejected| {
        c[1].fetch_add(1, Ordering::Relaxed);
    });
    let c = counts.clone();
    let _f = center.observe(move |_: &PushFailed| {
        c[2].fetch_add(1, Ordering::Relaxed);
    });
    let c = counts.clone();
    let _i = center.observe(move |_: &TokenInvalidated| {
        c[3].fetch_add(1, Ordering::Relaxed);
    });

    let sink = ApnsSink::builder(client.clone())
        .registry(registry.clone())
        .topic(BUNDLE)
        .concurrency(IN_FLIGHT)
        .build();
    let forwarding = center
        .observer::<Ping>()
        .policy(Overflow::Backpressure { capacity: QUEUE })
        .forward(sink.map(|p: &Ping| {
            Message::to_subject(
                format!("user{}", p.subject),
                Payload::alert("load").badge(1),
            )
        }));

    // Sample queue depth, pushes in flight and RSS while it runs.
    let peak_depth = Arc::new(AtomicUsize::new(0));
    let peak_in_flight = Arc::new(AtomicU64::new(0));
    let peak_rss = Arc::new(AtomicU64::new(0));
    let monitor = {
        let (c, s) = (center.clone(), sink.clone());
        let (d, i, r) = (peak_depth.clone(), peak_in_flight.clone(), peak_rss.clone());
        tokio::spawn(async move {
            loop {
                let depth = c.stats::<Ping>().buffers.iter().map(|b| b.depth).max();
                d.fetch_max(depth.unwrap_or(0), Ordering::Relaxed);
                i.fetch_max(s.metrics().in_flight, Ordering::Relaxed);
                r.fetch_max(rss_kib("VmRSS:"), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    let rss_start = rss_kib("VmRSS:");
    let started = Instant::now();
    let mut post_time = Duration::ZERO;
    for n in 0..notifications {
        let t = Instant::now();
        center
            .post_async(Ping {
                subject: n % subjects,
            })
            .await;
        post_time += t.elapsed();
    }
    let posted_in = started.elapsed();
    let queue = forwarding.queue();
    peak_depth.fetch_max(queue.map_or(0, |q| q.depth), Ordering::Relaxed);
    forwarding.finish().await;
    let elapsed = started.elapsed();
    monitor.abort();
    let m = sink.metrics();
    // Ask the child for the mock's counts.
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"stats\n").unwrap();
    let stats = loop {
        let line = lines.next().expect("mock child exited").unwrap();
        if let Some(rest) = line.strip_prefix("stats ") {
            break rest.to_owned();
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let mock_counts: Vec<u64> = stats.split(' ').map(|n| n.parse().unwrap()).collect();
    let (mock_requests, mock_accepted) = (mock_counts[0], mock_counts[1]);
    let rss_end = rss_kib("VmRSS:");

    println!(
        "notifications {notifications}, subjects {subjects} x {PER_SUBJECT} tokens, queue \
         {QUEUE}, in flight <= {IN_FLIGHT}"
    );
    println!(
        "pushes sent {} = accepted {} + rejected {} + failed {}; invalidated {}, quarantined {}; \
         skipped {}; unaddressed {}",
        m.sent,
        m.accepted,
        m.rejected,
        m.failed,
        m.invalidated,
        m.quarantined,
        m.skipped,
        m.unaddressed
    );
    println!(
        "mock (child process): requests {mock_requests}, accepted {mock_accepted}, \
         410 Unregistered {}, 400 BadDeviceToken {}",
        mock_counts[2], mock_counts[3]
    );
    println!(
        "time: posting {posted_in:.2?} (mean post_async {:.2?}), all outcomes {elapsed:.2?}, \
         {:.0} pushes/s",
        post_time / notifications as u32,
        m.sent as f64 / elapsed.as_secs_f64()
    );
    println!(
        "peaks: queue depth {} / {QUEUE}, in flight {} / {IN_FLIGHT}; RSS start {} KiB, peak {} \
         KiB, end {} KiB; queue when posting ended {queue:?}",
        peak_depth.load(Ordering::Relaxed),
        peak_in_flight.load(Ordering::Relaxed),
        rss_start,
        peak_rss.load(Ordering::Relaxed),
        rss_end
    );

    // Every push accounted for, three ways.
    assert_eq!(m.in_flight, 0);
    assert_eq!(m.sent, m.accepted + m.rejected + m.failed);
    assert_eq!(
        mock_requests,
        m.accepted + m.rejected + m.failed,
        "one request per push"
    );
    assert_eq!(
        mock_accepted, m.accepted,
        "the mock accepted what the sink counted"
    );
    let seen: Vec<u64> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    assert_eq!(seen, [m.accepted, m.rejected, m.failed, m.invalidated]);
    // The dead tokens (the mock child's script): every token of subject `k` is `k + j * subjects`,
    // and `subjects` is a multiple of 200, so a subject's tokens all share `k % 200`. Uninstalled
    // (410, `i % 100 == 0`): deleted after their first push, so their subjects' later messages
    // find no device (unaddressed). Unknown to APNs (400 BadDeviceToken, `i % 200 == 1`):
    // quarantined, kept, and skipped by every later message (the grace before a probe is 24 h).
    // The sink has at most IN_FLIGHT pushes out (about 51 messages), far fewer than the
    // `subjects` messages between two rounds, so in practice every answer is in before the
    // subject's next message and the counts below are exact (as printed above). They accept a
    // round of slack: an answer the mock's process was slow to send (a loaded host), still
    // within the request timeout, lets the next round push to the dead token once more.
    let gone = |k: usize| k.is_multiple_of(100);
    let unknown = |k: usize| k % 200 == 1;
    // Subjects that got at least one message, and what their dead tokens are.
    let reached = notifications.min(subjects);
    let uninstalled_tokens = (0..reached).filter(|&k| gone(k)).count() * PER_SUBJECT;
    let quarantined_tokens = (0..reached).filter(|&k| unknown(k)).count() * PER_SUBJECT;
    // Messages after a subject's first (`most`) or second (`least`) one.
    let later = |from: usize, dead: &dyn Fn(usize) -> bool| {
        (from..notifications.max(from))
            .filter(|n| dead(n % subjects))
            .count()
    };
    let within = |got: u64, per_message: usize, dead: &dyn Fn(usize) -> bool, what: &str| {
        let most = per_message * later(subjects, dead);
        let least = per_message * later(2 * subjects, dead);
        assert!(
            (least..=most).contains(&(got as usize)),
            "{what}: {got}, expected {most} (at least {least})"
        );
    };
    within(
        m.unaddressed,
        1,
        &gone,
        "messages to subjects whose tokens were all deleted",
    );
    within(
        m.skipped,
        PER_SUBJECT,
        &unknown,
        "pushes held back from quarantined tokens",
    );
    // Nothing lost to the queue (backpressure).
    assert_eq!(queue.map(|q| q.dropped), Some(0));
    assert!(peak_depth.load(Ordering::Relaxed) <= QUEUE);
    assert!(peak_in_flight.load(Ordering::Relaxed) <= IN_FLIGHT as u64);
    // Every rejection is the mock's, and reached the lifecycle: 410 deletes (each uninstalled
    // token at least once: a push already out to it may report it again), BadDeviceToken
    // quarantines, and only the deleted tokens leave the registry.
    assert_eq!(m.rejected, mock_counts[2] + mock_counts[3]);
    assert!(m.invalidated as usize >= uninstalled_tokens);
    assert!(m.invalidated <= mock_counts[2]);
    assert!(m.quarantined as usize >= quarantined_tokens);
    assert!(m.quarantined <= mock_counts[3]);
    assert_eq!(registry.len().unwrap(), TOKENS - uninstalled_tokens);
    // Memory bounded by the queue and in-flight limit, not by the number of pushes.
    let grown = peak_rss.load(Ordering::Relaxed).saturating_sub(rss_start);
    assert!(grown < 64 * 1024, "RSS grew {grown} KiB");
    client.shutdown().await;
}

/// The mock APNs for the load test, in its own process (the load test re-invoked with
/// `HERALD_LOAD_MOCK_DIR` set): registers the devices, marks the dead ones once the parent
/// registered them, scripts the stalls, and answers `stats` on stdin.
async fn load_mock_child(dir: std::path::PathBuf) {
    let mock = MockApns::builder()
        .record_limit(1000)
        .start()
        .await
        .unwrap();
    let p8 = mock.generate_key(KEY_ID, TEAM_ID).unwrap();
    std::fs::write(dir.join("ca.pem"), mock.ca_pem()).unwrap();
    std::fs::write(dir.join("key.p8"), p8).unwrap();
    // 10^4 tokens: most live; 100 uninstalled (410), 50 unknown to APNs (400 BadDeviceToken),
    // 100 whose first push never gets an answer (the client times out: failed).
    for i in 0..TOKENS {
        let t = token(i);
        if i % 200 != 1 {
            mock.register_device(&t, BUNDLE);
        }
        if i % 100 == 3 {
            mock.script_for_device(&t, Fault::Stall);
        }
    }
    println!("ready {}", mock.url());
    while std::fs::metadata(dir.join("go")).is_err() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // After the parent registered the tokens: the uninstalls happen later than registration.
    for i in (0..TOKENS).filter(|i| i % 100 == 0) {
        mock.mark_unregistered(&token(i), SystemTime::now());
    }
    std::fs::write(dir.join("marked"), b"").unwrap();
    let line = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        line
    })
    .await
    .unwrap();
    if line.trim() == "stats" {
        let s = mock.stats();
        let reason = |r: &str| s.by_reason.get(r).copied().unwrap_or(0);
        println!(
            "stats {} {} {} {}",
            s.requests,
            s.accepted,
            reason("Unregistered"),
            reason("BadDeviceToken")
        );
    }
}
