//! Several processes around one NATS server: three `herald worker` processes and this test
//! process (which posts, and runs the mock APNs server) deliver pushes addressed through a
//! device registry shared on NATS key-value, while one worker is killed with SIGKILL mid-run
//! (and, in the soak run, the server is restarted mid-run):
//! - every push ends in exactly one reported outcome at the posting side (accepted, rejected,
//!   or a typed failure), counted by apns-id;
//! - a push sent twice (the killed worker's, redelivered) carries the same apns-id and
//!   collapse id both times;
//! - the 410s reach the shared registry: exactly the expected tokens are left, none lost,
//!   none under two subjects.
//!
//! Default run: 500 pushes, one SIGKILL. `HERALD_NATS_SOAK=1` adds 10 000 pushes with a
//! SIGKILL and a server restart. Runs when `nats-server` is installed, reported ignored
//! otherwise (failing instead with `HERALD_REQUIRE_NATS=1`).
//!
//! Also `herald worker` on its own: it stops on SIGTERM with exit 0 even when the server has
//! gone away or nobody reads its output any more, promptly, leaving a push it held
//! unacknowledged for redelivery, and never prints the NATS credentials given in its URL
//! (taken, refused or unreachable).

mod nats_support;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime};

use herald::apns::{ApnsClient, Payload};
use herald::bridge::{
    ApnsSink, Device, DeviceRegistry, Environment, Message, PushAccepted, PushFailed, PushRejected,
    TokenInvalidated, conformance,
};
use herald::mock::MockApns;
use herald::nats::{NatsBridge, NatsKvStore, NatsPushQueue, PushQueueConfig};
use herald::{Notification, NotificationCenter};
use nats_support::{NatsServer, PATIENCE};

const KEY_ID: &str = "ABC123DEFG";
const TEAM_ID: &str = "TEAM123456";
const BUNDLE: &str = "com.example.app";
const PER_SUBJECT: u32 = 5;

fn token(n: u32) -> String {
    format!("{n:08x}").repeat(8)
}

#[derive(Debug, Clone)]
struct Announce {
    subject: String,
}
impl Notification for Announce {}

/// What a worker needs from the mock: its CA (`ca.pem`) and a signing key (`key.p8`), in
/// `dir`.
fn worker_files(mock: &MockApns, dir: &std::path::Path) {
    std::fs::write(
        dir.join("key.p8"),
        mock.generate_key(KEY_ID, TEAM_ID).unwrap(),
    )
    .unwrap();
    mock.write_ca_pem(dir.join("ca.pem")).unwrap();
}

/// A `herald worker` process, killed if still running when dropped. Its stdout lines come
/// through `lines`; its stderr is passed on to the test's, and kept: a failure about a worker
/// says what it printed there (why it exited, say).
struct Worker {
    child: Child,
    lines: mpsc::Receiver<String>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    /// Disconnected once its stderr has ended (the process exited).
    stderr_ended: mpsc::Receiver<()>,
}

impl Worker {
    fn spawn(name: &str, nats: &str, mock: &MockApns, dir: &std::path::Path) -> Worker {
        Worker::command(nats, mock, dir)
            .args(["--name", name])
            .args(["--ack-wait", "1", "--concurrency", "16"])
            .start()
    }

    /// `herald worker --json` against `nats` and the mock, not started yet.
    fn command(nats: &str, mock: &MockApns, dir: &std::path::Path) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
        command
            .args(["worker", "--json", "--nats-url", nats])
            .args(["--url", &mock.url()])
            .arg("--ca")
            .arg(dir.join("ca.pem"))
            .arg("--p8")
            .arg(dir.join("key.p8"))
            .args(["--key-id", KEY_ID, "--team-id", TEAM_ID])
            .env_remove("HERALD_NATS_URL")
            .stdin(Stdio::null());
        command
    }

    fn expect(&mut self, key: &str) -> serde_json::Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                        && v.get(key).is_some()
                    {
                        return v;
                    }
                }
                Err(e) => {
                    let status = self.child.try_wait();
                    panic!(
                        "worker: no {key} line: {e:?} ({status:?}); its stderr:\n{}",
                        self.stderr()
                    )
                }
            }
        }
    }

    /// What it printed on stderr so far; all of it once it has exited (its pipe ends with
    /// the process; the reader may lag a little).
    fn stderr(&mut self) -> String {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = self.stderr_ended.recv_timeout(PATIENCE);
        }
        self.stderr.lock().unwrap().clone()
    }

    /// SIGTERM, then waits for it to finish what it holds and exit.
    fn stop(mut self) -> (i32, serde_json::Value) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        let summary = self.expect("stopped");
        let code = self.child.wait().unwrap().code().unwrap_or(-1);
        (code, summary)
    }

    /// Waits for it to exit on its own (within [`PATIENCE`]): its exit code, everything it
    /// printed on stdout, and on stderr.
    fn exit(mut self) -> (Option<i32>, String, String) {
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "herald worker still running; its stderr so far:\n{}",
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        // Both pipes end with the process; their readers may lag a little.
        while self.lines.recv_timeout(PATIENCE).is_ok() {}
        let stdout = self.stdout.lock().unwrap().clone();
        let stderr = self.stderr();
        (status.code(), stdout, stderr)
    }
}

/// Starting a worker command, with its output collected.
trait Start {
    /// Spawns it, reading all it prints.
    fn start(&mut self) -> Worker;
    /// Spawns it, reading its stdout up to its first line only, then closing it: nobody
    /// reads what it prints there after that (its stderr is still read).
    fn start_reading_one_line(&mut self) -> Worker;
}

impl Start for Command {
    fn start(&mut self) -> Worker {
        spawn_worker(self, usize::MAX)
    }

    fn start_reading_one_line(&mut self) -> Worker {
        spawn_worker(self, 1)
    }
}

/// Spawns `command` with both pipes read by threads, stdout up to `read_lines` lines.
fn spawn_worker(command: &mut Command, read_lines: usize) -> Worker {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn herald worker");
    let (stdout, stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let (tx, lines) = mpsc::channel();
    let (all_out, all_err) = (
        Arc::new(Mutex::new(String::new())),
        Arc::new(Mutex::new(String::new())),
    );
    let out = all_out.clone();
    std::thread::spawn(move || {
        // Dropping the reader at the end closes the pipe.
        for line in BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .take(read_lines)
        {
            out.lock().unwrap().push_str(&format!("{line}\n"));
            let _ = tx.send(line);
        }
    });
    let err = all_err.clone();
    let (ended, stderr_ended) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            err.lock().unwrap().push_str(&format!("{line}\n"));
        }
        drop(ended);
    });
    Worker {
        child,
        lines,
        stdout: all_out,
        stderr: all_err,
        stderr_ended,
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Default)]
struct Seen {
    by_id: Mutex<HashMap<String, Vec<String>>>,
    total: AtomicU64,
}

impl Seen {
    fn add(&self, id: String, what: String) {
        self.by_id.lock().unwrap().entry(id).or_default().push(what);
        self.total.fetch_add(1, Ordering::SeqCst);
    }
}

async fn deliver(subjects: u32, restart: bool) {
    let mut server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mock = MockApns::start().await.unwrap();
    worker_files(&mock, dir.path());

    // The shared registry: `subjects` × 5 devices; every 10th token is gone at APNs.
    let store = NatsKvStore::connect(&server.url(), "registry")
        .await
        .unwrap();
    let registry = DeviceRegistry::with_store(store);
    let reg = registry.clone();
    let registered = tokio::task::spawn_blocking(move || {
        let mut all = Vec::new();
        for s in 0..subjects {
            for d in 0..PER_SUBJECT {
                let n = s * PER_SUBJECT + d;
                reg.register(Device::new(
                    format!("user{s}"),
                    token(n),
                    BUNDLE,
                    Environment::Sandbox,
                ))
                .unwrap();
                all.push((format!("user{s}"), token(n)));
            }
        }
        all
    })
    .await
    .unwrap();
    // Gone since after they registered (an earlier 410 time would keep them).
    let gone_at = SystemTime::now() + Duration::from_secs(1);
    for n in 0..subjects * PER_SUBJECT {
        mock.register_device(&token(n), BUNDLE);
        if n % 10 == 9 {
            mock.mark_unregistered(&token(n), gone_at);
        }
    }
    let pushes = u64::from(subjects * PER_SUBJECT);

    let mut workers: Vec<Worker> = (0..3)
        .map(|i| Worker::spawn(&format!("w{i}"), &server.url(), &mock, dir.path()))
        .collect();
    for w in &mut workers {
        w.expect("ready");
    }

    let bridge = NatsBridge::builder()
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(500))
        .connect(&server.url())
        .await
        .unwrap();
    let queue = NatsPushQueue::start(
        &bridge,
        PushQueueConfig::default().outcome_timeout(Duration::from_secs(90)),
    )
    .await
    .unwrap();
    let sink = ApnsSink::builder(ApnsClient::builder().build().unwrap())
        .registry(registry.clone())
        .topic(BUNDLE)
        .concurrency(512)
        .dispatch(queue.clone())
        .build();
    let center = NotificationCenter::new();
    let lifecycle = registry.observe(&center);
    let invalidated = Arc::new(Mutex::new(Vec::new()));
    let inv = invalidated.clone();
    let _i = center.observe(move |n: &TokenInvalidated| inv.lock().unwrap().push(n.token.clone()));
    let seen = Arc::new(Seen::default());
    let (a, r, f) = (seen.clone(), seen.clone(), seen.clone());
    let _a = center.observe(move |n: &PushAccepted| a.add(n.apns_id.clone(), "accepted".into()));
    let _r = center.observe(move |n: &PushRejected| r.add(n.apns_id.clone(), "rejected".into()));
    let _f = center.observe(move |n: &PushFailed| {
        let id = n
            .push
            .as_ref()
            .map(|p| p.apns_id().to_owned())
            .unwrap_or_default();
        f.add(id, format!("failed: {}", n.error));
    });
    let forwarding = center
        .observer::<Announce>()
        .policy(herald::Overflow::Backpressure { capacity: 1024 })
        .forward(sink.map(|a: &Announce| Message::to_subject(&a.subject, Payload::alert("news"))));

    // post_async: a full Backpressure buffer makes the poster wait (a synchronous post
    // would drop for this subscriber instead).
    let poster = {
        let center = center.clone();
        tokio::spawn(async move {
            for s in 0..subjects {
                let _ = center
                    .post_async(Announce {
                        subject: format!("user{s}"),
                    })
                    .await;
            }
        })
    };
    // Mid-run: one worker is killed without a chance to ack what it holds.
    let deadline = Instant::now() + PATIENCE * 4;
    while (mock.pushes().len() as u64) < pushes / 3 {
        assert!(
            Instant::now() < deadline,
            "no progress: {:?}",
            queue.metrics()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut killed = workers.remove(0);
    killed.child.kill().unwrap(); // SIGKILL
    let _ = killed.child.wait();
    if restart {
        while (mock.pushes().len() as u64) < pushes / 2 {
            assert!(
                Instant::now() < deadline,
                "no progress: {:?}",
                queue.metrics()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.restart();
    }
    poster.await.unwrap();
    // A message whose registry read fails (the server restarting) waits for the registry
    // (up to a minute); one that waited longer would be counted unresolved, not lost
    // silently. Subjects all have devices, so nothing is unaddressed.
    let expected = || {
        let m = sink.metrics();
        pushes - u64::from(PER_SUBJECT) * (m.unaddressed + m.unresolved)
    };
    let deadline = Instant::now() + PATIENCE * 8;
    while seen.total.load(Ordering::SeqCst) < expected() {
        assert!(
            Instant::now() < deadline,
            "outcomes missing: {} of {pushes}; queue {:?}; sink {:?}",
            seen.total.load(Ordering::SeqCst),
            queue.metrics(),
            sink.metrics()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    forwarding.idle().await;
    // A lifecycle change the registry's store refused while the server restarted is retried
    // in the background: wait for it to catch up.
    let deadline = Instant::now() + PATIENCE * 8;
    while lifecycle.pending() > 0 {
        assert!(Instant::now() < deadline, "registry changes still pending");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(lifecycle.given_up(), 0);

    // Exactly one outcome per push.
    let by_id = seen.by_id.lock().unwrap().clone();
    let unaddressed = sink.metrics().unaddressed;
    assert_eq!(unaddressed, 0, "every subject has devices");
    let pushes = expected();
    assert_eq!(by_id.len() as u64, pushes, "one apns-id per push");
    for (id, outcomes) in &by_id {
        assert_eq!(outcomes.len(), 1, "push {id}: {outcomes:?}");
    }
    let count = |p: &str| by_id.values().filter(|v| v[0].starts_with(p)).count() as u64;
    let (accepted, rejected, failed) = (count("accepted"), count("rejected"), count("failed"));
    assert_eq!(accepted + rejected + failed, pushes);
    if !restart {
        assert_eq!(failed, 0, "{by_id:?}");
        assert_eq!(rejected, pushes / 10);
    } else {
        // Pushes the server could not take while it was down are failed, typed, not lost.
        for v in by_id.values().filter(|v| v[0].starts_with("failed")) {
            eprintln!("restart: {}", v[0]);
        }
    }

    // Sent twice only when redelivered, and then with the same apns-id and collapse id.
    let recorded = mock.pushes();
    let mut sends: HashMap<String, Vec<Option<String>>> = HashMap::new();
    for p in &recorded {
        let collapse = p
            .headers
            .iter()
            .find(|(k, _)| k == "apns-collapse-id")
            .map(|(_, v)| v.clone());
        sends.entry(p.apns_id.clone()).or_default().push(collapse);
    }
    let mut twice = 0;
    for (id, c) in &sends {
        assert!(
            c.iter().all(|c| c.as_deref() == Some(id.as_str())),
            "{id}: {c:?}"
        );
        if c.len() > 1 {
            twice += 1;
        }
    }
    eprintln!(
        "{pushes} pushes ({unaddressed} messages unaddressed): {accepted} accepted, \
         {rejected} rejected, {failed} failed; {} sends, {twice} sent more than once; queue {:?}",
        recorded.len(),
        queue.metrics()
    );
    if !restart {
        assert!(
            twice <= 16 + 16,
            "more resends than the killed worker could hold: {twice}"
        );
    }

    // The shared registry: the 410s removed exactly the tokens they named, each a gone one,
    // and nothing else (a message given up in the restart, if any, keeps its tokens).
    let invalidated = invalidated.lock().unwrap().clone();
    assert_eq!(
        invalidated.len() as u64,
        rejected,
        "one TokenInvalidated per 410"
    );
    for t in &invalidated {
        let n = u32::from_str_radix(&t[..8], 16).unwrap();
        assert_eq!(n % 10, 9, "only gone tokens are invalidated: {t}");
    }
    let invalidated: HashSet<String> = invalidated.into_iter().collect();
    let expected_left: HashSet<(String, String)> = registered
        .into_iter()
        .filter(|(_, t)| !invalidated.contains(t))
        .collect();
    let check = registry.clone();
    tokio::task::spawn_blocking(move || {
        let mut left = HashSet::new();
        for s in 0..subjects {
            for d in check.devices(&format!("user{s}")).unwrap() {
                assert!(
                    left.insert((d.subject.clone(), d.token.clone())),
                    "doubled {d:?}"
                );
            }
        }
        let lost: Vec<_> = expected_left.difference(&left).collect();
        let extra: Vec<_> = left.difference(&expected_left).collect();
        assert!(
            lost.is_empty() && extra.is_empty(),
            "registry: lost {lost:?}, unexpected {extra:?}"
        );
        conformance::assert_consistent(&check);
    })
    .await
    .unwrap();

    for w in workers {
        let (code, summary) = w.stop();
        assert_eq!(code, 0, "{summary}");
    }
}

/// `herald worker` "stops on Ctrl-C or SIGTERM after finishing the pushes it holds (exit 0)":
/// also when the NATS server has gone away meanwhile (it does not wait for it to come back:
/// holding nothing, it stops at once),
/// and when nobody reads its output any more (a closed pipe is not a crash).
async fn herald_worker_stops_on_sigterm_with_the_server_gone() {
    let mut server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mock = MockApns::start().await.unwrap();
    worker_files(&mock, dir.path());
    // Started together against a new server: both create the queue's streams and consumer
    // (the server refusing one of two simultaneous creations once made one exit here, with
    // code 3, before its ready line).
    let mut read = Worker::spawn("read", &server.url(), &mock, dir.path());
    // The other one's stdout is read up to its ready line, then closed.
    let mut unread = Worker::command(&server.url(), &mock, dir.path())
        .args(["--name", "unread"])
        .start_reading_one_line();
    let (read, unread) = tokio::task::spawn_blocking(move || {
        read.expect("ready");
        unread.expect("ready");
        (read, unread)
    })
    .await
    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    server.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = unread.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let stopping = Instant::now();
    let (code, summary) = tokio::task::spawn_blocking(move || read.stop())
        .await
        .unwrap();
    assert_eq!(code, 0, "{summary}");
    assert_eq!(summary["received"], 0, "{summary}");
    // A hang guard: idle, it waited out two timeouts (11 s); now it has nothing to wait for.
    let took = stopping.elapsed();
    assert!(took < Duration::from_secs(8), "stopped after {took:?}");
    let (code, _, stderr) = tokio::task::spawn_blocking(move || unread.exit())
        .await
        .unwrap();
    assert_eq!(code, Some(0), "its stdout closed; its stderr:\n{stderr}");
}

/// `herald worker` stops promptly on SIGTERM with the server gone while it holds a push (sent
/// to an APNs that takes its time): it does not wait for a server that cannot take the
/// outcome or the acknowledgement, exits 0, and says it left the push. The push is not
/// acknowledged: back on the server, the queue still holds it and gives it to another
/// worker, which sends it and reports it.
async fn herald_worker_stops_promptly_with_the_server_gone_leaving_what_it_holds() {
    use herald::apns::Push;
    use herald::bridge::PushDispatch;
    use herald::nats::PushWorker;
    use nats_support::push::{client_of, start_worker};

    let mut server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    // APNs answers after a minute: the push stays in flight until the stop.
    let slow = nats_support::push::slow_mock_apns(Duration::from_secs(60)).await;
    worker_files(&slow, dir.path());
    let mut worker = Worker::spawn("holding", &server.url(), &slow, dir.path());
    worker.expect("ready");

    let posting = nats_support::push::quick_bridge(&server).await;
    let queue = NatsPushQueue::start(&posting, PushQueueConfig::default())
        .await
        .unwrap();
    let push = Push::builder(token(1), BUNDLE).build().unwrap();
    let apns_id = push.apns_id().to_owned();
    let _waiting = tokio::spawn(queue.dispatch(push, None));
    let js = async_nats::jetstream::new(posting.client().clone());
    nats_support::push::until_consumer(&posting, "the worker taking the push", |info| {
        info.num_ack_pending == 1
    })
    .await;

    server.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopping = Instant::now();
    let (code, summary) = tokio::task::spawn_blocking(move || worker.stop())
        .await
        .unwrap();
    let took = stopping.elapsed();
    eprintln!("stopped in {took:?}: {summary}");
    assert_eq!(code, 0, "{summary}");
    // A hang guard, not a budget: it used to take over 10 s idle, a minute here.
    assert!(took < Duration::from_secs(8), "stopped after {took:?}");
    assert_eq!(summary["received"], 1, "{summary}");
    assert_eq!(summary["abandoned"], 1, "{summary}");
    assert_eq!(summary["acked"], 0, "{summary}");
    assert_eq!(summary["reported"], 0, "{summary}");

    // Not acknowledged: the work queue still holds the job, and gives it to the next worker
    // (once ack_wait has passed). Whether it counts as a redelivery depends on whether the
    // killed server had written down the first delivery; that is the server's business.
    server.restart();
    let deadline = Instant::now() + PATIENCE;
    let stored = loop {
        match js.get_stream("HERALD_PUSH").await {
            Ok(stream) => break stream.get_info().await.unwrap().state.messages,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "no stream after the restart: {e}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(stored, 1, "the held job is still queued");
    let fast = nats_support::push::mock_apns().await;
    let (_b, next) = start_worker(&server, PushWorker::builder(client_of(&fast))).await;
    nats_support::until("the job redelivered and finished", || {
        next.metrics().acked == 1
    })
    .await;
    let m = next.metrics();
    assert_eq!((m.received, m.reported), (1, 1), "{m:?}");
    assert_eq!(fast.accepted_count(&apns_id), 1);
    next.shutdown().await;
}

/// `herald worker` takes NATS credentials in its URL and never prints them: not in its ready
/// line, nor when the server refuses them or cannot be reached (exit 3), nor in its help
/// (which shows where `HERALD_NATS_URL` would go, not its value).
async fn herald_worker_never_prints_the_nats_credentials() {
    let server = NatsServer::start_with(&["--user", "herald", "--pass", "cli-s3cret-pw"]);
    let dir = tempfile::tempdir().unwrap();
    let mock = MockApns::start().await.unwrap();
    worker_files(&mock, dir.path());
    let url = |password: &str| format!("nats://herald:{password}@127.0.0.1:{}", server.port());
    let mut taken = Worker::spawn("creds", &url("cli-s3cret-pw"), &mock, dir.path());
    let ready = taken.expect("ready");
    assert_eq!(
        ready["nats"],
        format!("nats://herald:***@127.0.0.1:{}", server.port())
    );
    let (code, summary) = tokio::task::spawn_blocking(move || taken.stop())
        .await
        .unwrap();
    assert_eq!(code, 0, "{summary}");
    for (nats, secret) in [
        (url("cli-wrong-pw"), "cli-wrong-pw"),
        (
            "nats://herald:cli-unreach-pw@127.0.0.1:1".to_owned(),
            "cli-unreach-pw",
        ),
    ] {
        let worker = Worker::command(&nats, &mock, dir.path()).start();
        let (code, stdout, stderr) = tokio::task::spawn_blocking(move || worker.exit())
            .await
            .unwrap();
        assert_eq!(code, Some(3), "{stderr}");
        assert!(stderr.contains("127.0.0.1"), "says where: {stderr}");
        assert!(!stdout.contains(secret), "printed: {stdout}");
        assert!(!stderr.contains(secret), "printed: {stderr}");
    }
    let help = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["worker", "--help"])
        .env("HERALD_NATS_URL", "nats://herald:cli-env-pw@127.0.0.1:4222")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("HERALD_NATS_URL"), "{help}");
    assert!(!help.contains("cli-env-pw"), "printed: {help}");
}

async fn three_workers_one_killed_every_push_one_outcome() {
    deliver(100, false).await;
}

async fn soak_ten_thousand_pushes_with_a_kill_and_a_server_restart() {
    deliver(2_000, true).await;
}

fn main() {
    nats_support::main(
        "nats_workers",
        vec![
            nats_support::multi(
                "three_workers_one_killed_every_push_one_outcome",
                three_workers_one_killed_every_push_one_outcome,
            ),
            nats_support::multi(
                "herald_worker_stops_on_sigterm_with_the_server_gone",
                herald_worker_stops_on_sigterm_with_the_server_gone,
            ),
            nats_support::multi(
                "herald_worker_stops_promptly_with_the_server_gone_leaving_what_it_holds",
                herald_worker_stops_promptly_with_the_server_gone_leaving_what_it_holds,
            ),
            nats_support::multi(
                "herald_worker_never_prints_the_nats_credentials",
                herald_worker_never_prints_the_nats_credentials,
            ),
            nats_support::soak(
                "soak_ten_thousand_pushes_with_a_kill_and_a_server_restart",
                soak_ten_thousand_pushes_with_a_kill_and_a_server_restart,
            ),
        ],
    )
}
