//! The NATS tests' server harness: a real `nats-server -js` on a free loopback port with a
//! temporary store directory, stopped (killed) when dropped.
//!
//! The NATS test files have their own harness (libtest-mimic, `harness = false`), built by
//! [`main`], so the decision to run is made when the tests run and shows in the summary:
//! - `nats-server` found (`$HERALD_NATS_SERVER`, the `PATH`, `/usr/sbin`): the tests run;
//! - not found: every test is reported **ignored**, with a note on stderr saying how to
//!   install it (`-- --ignored` runs them anyway, and they fail saying what is missing);
//! - `HERALD_REQUIRE_NATS=1` (set by `.ci/run`): they always run, and a missing server is a
//!   failure, never a skip.
//!
//! Heavy runs ([`soak`] trials) are ignored unless `HERALD_NATS_SOAK=1`.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Generous: the machine may be loaded.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The `nats-server` binary if there is one: `$HERALD_NATS_SERVER`, the `PATH`, or Debian's
/// `/usr/sbin`.
pub fn find_server_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HERALD_NATS_SERVER") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("nats-server"))
                .collect()
        })
        .unwrap_or_default();
    candidates.push(PathBuf::from("/usr/sbin/nats-server"));
    candidates.push(PathBuf::from("/usr/local/bin/nats-server"));
    candidates.into_iter().find(|p| p.is_file())
}

/// The `nats-server` binary; panics saying how to install it when there is none.
pub fn server_binary() -> PathBuf {
    match find_server_binary() {
        Some(p) => p,
        None => panic!(
            "nats-server not found (HERALD_REQUIRE_NATS={}): install it with \
             `apt-get install -y nats-server`, or set HERALD_NATS_SERVER to its path",
            std::env::var("HERALD_REQUIRE_NATS").unwrap_or_default()
        ),
    }
}

/// A running `nats-server`, killed on drop.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    extra: Vec<String>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl NatsServer {
    /// Starts a server with JetStream on a free port.
    pub fn start() -> NatsServer {
        NatsServer::start_with(&[])
    }

    /// Starts a server with extra command-line arguments (`--user`, `--tls`...).
    pub fn start_with(extra: &[&str]) -> NatsServer {
        let mut last_error = String::new();
        for _ in 0..5 {
            let mut server = NatsServer {
                child: None,
                port: free_port(),
                dir: tempfile::tempdir().expect("a temp dir"),
                extra: extra.iter().map(|s| s.to_string()).collect(),
            };
            match server.spawn() {
                Ok(()) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("nats-server did not start: {last_error}");
    }

    /// A file path inside the server's temporary directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn spawn(&mut self) -> Result<(), String> {
        let store = self.dir.path().join("store");
        let mut cmd = Command::new(server_binary());
        cmd.arg("-a")
            .arg("127.0.0.1")
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-js")
            .arg("-sd")
            .arg(&store)
            .arg("-l")
            .arg(self.log())
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().map_err(|e| format!("spawn: {e}"))?;
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("exited with {status}: {}", self.log_tail()));
            }
            if let Ok(stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                // The server speaks first: an INFO line means it is serving.
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut line = String::new();
                if BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("INFO") {
                    self.child = Some(child);
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("not ready after {PATIENCE:?}: {}", self.log_tail()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (SIGKILL: no goodbye to clients).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same store.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => panic!("restart failed: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// The server's store directory (JetStream).
    pub fn store_dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A bridge to `server` with heartbeats every 100 ms (tests that wait for a gap to show
/// wait on them).
pub async fn bridge(server: &NatsServer) -> herald::nats::NatsBridge {
    herald::nats::NatsBridge::builder()
        .heartbeat(Duration::from_millis(100))
        .connect(&server.url())
        .await
        .unwrap()
}

/// Two centers joined over NATS for one notification type: `here` exports it through one
/// bridge, `there` imports it through another.
pub struct Pipe {
    pub here: herald::NotificationCenter,
    pub there: herald::NotificationCenter,
    pub export: herald::nats::Export,
    pub import: herald::nats::Import,
}

/// Exports `N` from a new center through `from`, then imports it into another through `to`.
pub async fn pipe<N>(from: &herald::nats::NatsBridge, to: &herald::nats::NatsBridge) -> Pipe
where
    N: herald::Notification + serde::Serialize + serde::de::DeserializeOwned,
{
    let (here, there) = (
        herald::NotificationCenter::new(),
        herald::NotificationCenter::new(),
    );
    let export = here.observer::<N>().forward(from.publish()).unwrap();
    let import = to.import::<N>(&there).await.unwrap();
    Pipe {
        here,
        there,
        export,
        import,
    }
}

/// Connects a bridge made by `builder` to `url` and a [`bridge`] to `server`, then joins them
/// with a [`pipe`] of `N` from the first to the second.
pub async fn pipe_from<N>(
    builder: herald::nats::NatsBridgeBuilder,
    url: &str,
    server: &NatsServer,
) -> (herald::nats::NatsBridge, herald::nats::NatsBridge, Pipe)
where
    N: herald::Notification + serde::Serialize + serde::de::DeserializeOwned,
{
    let a = builder.connect(url).await.unwrap();
    let b = bridge(server).await;
    let joined = pipe::<N>(&a, &b).await;
    (a, b, joined)
}

/// Records what a center receives of `N`.
pub fn record<N: herald::Notification + Clone>(
    center: &herald::NotificationCenter,
) -> (
    std::sync::Arc<std::sync::Mutex<Vec<N>>>,
    herald::Subscription,
) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    let sub = center.observe(move |n: &N| s.lock().unwrap().push(n.clone()));
    (seen, sub)
}

/// How many values a [`record`]ing holds.
pub fn len<T>(v: &std::sync::Arc<std::sync::Mutex<Vec<T>>>) -> usize {
    v.lock().unwrap().len()
}

/// Waits until `check` holds, polling; panics with `what` after [`PATIENCE`].
pub async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until a bridge's watched state is `want`; panics after [`PATIENCE`].
pub async fn wait_for_state(
    states: &mut tokio::sync::watch::Receiver<herald::nats::ConnectionState>,
    want: herald::nats::ConnectionState,
) {
    tokio::time::timeout(PATIENCE, states.wait_for(|s| *s == want))
        .await
        .unwrap()
        .unwrap();
}

/// Watches `bridge`'s state, runs `cut` (which takes its connection away) and waits until the
/// bridge is `Disconnected`; returns the watch, to wait on for the reconnection.
pub async fn cut_and_wait(
    bridge: &herald::nats::NatsBridge,
    cut: impl FnOnce(),
) -> tokio::sync::watch::Receiver<herald::nats::ConnectionState> {
    let mut states = bridge.watch_state();
    cut();
    wait_for_state(&mut states, herald::nats::ConnectionState::Disconnected).await;
    states
}

/// A TCP proxy in front of the server that holds everything a client sends for `delay`
/// before passing it on (what the server sends back is passed at once): a slow link, to show
/// what depends on a server round trip.
pub struct SlowLink {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl SlowLink {
    pub async fn start(server_port: u16, delay: Duration) -> SlowLink {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", server_port)).await
                else {
                    continue;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                });
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = cr.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        tokio::time::sleep(delay).await;
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        SlowLink { port, task }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for SlowLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A TCP link in front of the server that can be cut (every connection through it closed,
/// new ones refused) and restored, while the server itself stays up: a network outage for one
/// client only.
pub struct Link {
    port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pipes: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Link {
    /// A link to the server on `server_port`, up or cut from the start.
    pub async fn start(server_port: u16, up: bool) -> Link {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(up));
        let pipes: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> =
            std::sync::Arc::default();
        let (u, p) = (up.clone(), pipes.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !u.load(std::sync::atomic::Ordering::SeqCst) {
                    drop(client); // refused: closed at once
                    continue;
                }
                let Ok(mut server) =
                    tokio::net::TcpStream::connect(("127.0.0.1", server_port)).await
                else {
                    continue;
                };
                let pipe = tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
                p.lock().unwrap().push(pipe);
            }
        });
        Link {
            port,
            up,
            pipes,
            task,
        }
    }

    /// `nats://127.0.0.1:<the link's port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Closes every connection through it, and refuses new ones until [`Link::restore`].
    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for pipe in self.pipes.lock().unwrap().drain(..) {
            pipe.abort();
        }
    }

    /// Takes new connections again.
    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
        for pipe in self.pipes.lock().unwrap().drain(..) {
            pipe.abort();
        }
    }
}

/// What the push tests share: a mock APNs, clients of it, and bridges, queues and workers on
/// the NATS server.
#[cfg(all(feature = "bridge", feature = "mock"))]
pub mod push {
    use std::sync::Mutex;
    use std::time::Duration;

    use herald::apns::{ApnsClient, Endpoint, TokenKey};
    use herald::mock::MockApns;
    use herald::nats::{NatsBridge, NatsPushQueue, PushQueueConfig, WorkerHandle};

    use super::NatsServer;

    pub const KEY_ID: &str = "ABC123DEFG";
    pub const TEAM_ID: &str = "TEAM123456";
    pub const BUNDLE: &str = "com.example.app";

    /// A device token, different for each `n`.
    pub fn token(n: u32) -> String {
        format!("{n:08x}").repeat(8)
    }

    /// A client of `mock`. The key is generated once per mock (a second `generate_key` with
    /// the same id would replace it, and the first client's tokens would be refused).
    pub fn client_of(mock: &MockApns) -> ApnsClient {
        static KEYS: Mutex<Vec<(u16, String)>> = Mutex::new(Vec::new());
        let p8 = {
            let mut keys = KEYS.lock().unwrap();
            match keys.iter().find(|(port, _)| *port == mock.port()) {
                Some((_, p8)) => p8.clone(),
                None => {
                    let p8 = mock.generate_key(KEY_ID, TEAM_ID).unwrap();
                    keys.push((mock.port(), p8.clone()));
                    p8
                }
            }
        };
        ApnsClient::builder()
            .endpoint(
                Endpoint::custom(&mock.url())
                    .unwrap()
                    .with_ca_pem(mock.ca_pem()),
            )
            .token_auth(TokenKey::from_p8_pem(p8, KEY_ID, TEAM_ID).unwrap())
            .build()
            .unwrap()
    }

    /// The push queue's consumer that workers pull from (default names), seen through
    /// `bridge`'s client.
    pub async fn workers_consumer(
        bridge: &NatsBridge,
    ) -> async_nats::jetstream::consumer::PullConsumer {
        async_nats::jetstream::new(bridge.client().clone())
            .get_stream("HERALD_PUSH")
            .await
            .unwrap()
            .get_consumer("herald-workers")
            .await
            .unwrap()
    }

    /// Polls the workers' consumer (fetched once) until `check` holds of its info, for at
    /// most `PATIENCE`.
    pub async fn until_consumer(
        bridge: &NatsBridge,
        what: &str,
        check: impl Fn(&async_nats::jetstream::consumer::Info) -> bool,
    ) {
        let mut consumer = workers_consumer(bridge).await;
        let deadline = std::time::Instant::now() + super::PATIENCE;
        while !check(consumer.info().await.unwrap()) {
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: not after {:?}",
                super::PATIENCE
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A mock APNs that accepts any device token and answers each push after `latency`.
    pub async fn slow_mock_apns(latency: Duration) -> MockApns {
        MockApns::builder()
            .accept_unknown_tokens(true)
            .latency(herald::mock::Latency::Fixed(latency))
            .start()
            .await
            .unwrap()
    }

    /// A mock APNs that accepts any device token.
    pub async fn mock_apns() -> MockApns {
        MockApns::builder()
            .accept_unknown_tokens(true)
            .start()
            .await
            .unwrap()
    }

    /// A bridge to `server` that reconnects quickly (20 ms to 500 ms).
    pub async fn quick_bridge(server: &NatsServer) -> NatsBridge {
        NatsBridge::builder()
            .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(500))
            .connect(&server.url())
            .await
            .unwrap()
    }

    /// A [`quick_bridge`] to `server` and a push queue started on it.
    pub async fn push_queue(
        server: &NatsServer,
        config: PushQueueConfig,
    ) -> (NatsBridge, NatsPushQueue) {
        let posting = quick_bridge(server).await;
        let queue = NatsPushQueue::start(&posting, config).await.unwrap();
        (posting, queue)
    }

    /// A [`quick_bridge`] to `server` and the worker `builder` starts on it.
    pub async fn start_worker(
        server: &NatsServer,
        builder: herald::nats::PushWorkerBuilder,
    ) -> (NatsBridge, WorkerHandle) {
        let b = quick_bridge(server).await;
        let worker = builder.start(&b).await.unwrap();
        (b, worker)
    }
}

/// One test of a NATS test file: a name and an async body, run on its own tokio runtime.
pub struct NatsTest {
    trial: libtest_mimic::Trial,
    soak: bool,
}

fn runtime(multi: bool) -> Result<tokio::runtime::Runtime, libtest_mimic::Failed> {
    let built = if multi {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    };
    built.map_err(|e| format!("cannot start a tokio runtime: {e}").into())
}

fn trial<F>(name: &'static str, multi: bool, body: fn() -> F) -> libtest_mimic::Trial
where
    F: std::future::Future<Output = ()> + 'static,
{
    libtest_mimic::Trial::test(name, move || {
        runtime(multi)?.block_on(body());
        Ok(())
    })
}

/// A test on a current-thread runtime (as `#[tokio::test]`).
pub fn test<F>(name: &'static str, body: fn() -> F) -> NatsTest
where
    F: std::future::Future<Output = ()> + 'static,
{
    NatsTest {
        trial: trial(name, false, body),
        soak: false,
    }
}

/// A test on a two-thread runtime (as `#[tokio::test(flavor = "multi_thread")]`).
pub fn multi<F>(name: &'static str, body: fn() -> F) -> NatsTest
where
    F: std::future::Future<Output = ()> + 'static,
{
    NatsTest {
        trial: trial(name, true, body),
        soak: false,
    }
}

/// A test without a runtime of its own (it may start what it needs).
pub fn sync(name: &'static str, body: fn()) -> NatsTest {
    NatsTest {
        trial: libtest_mimic::Trial::test(name, move || {
            body();
            Ok(())
        }),
        soak: false,
    }
}

/// A heavy run without a runtime of its own: ignored unless `HERALD_NATS_SOAK=1`.
pub fn sync_soak(name: &'static str, body: fn()) -> NatsTest {
    NatsTest {
        trial: libtest_mimic::Trial::test(name, move || {
            body();
            Ok(())
        }),
        soak: true,
    }
}

/// A heavy run (two-thread runtime): ignored unless `HERALD_NATS_SOAK=1`.
pub fn soak<F>(name: &'static str, body: fn() -> F) -> NatsTest
where
    F: std::future::Future<Output = ()> + 'static,
{
    NatsTest {
        trial: trial(name, true, body),
        soak: true,
    }
}

/// Whether the heavy runs are asked for (`HERALD_NATS_SOAK=1`).
pub fn soak_enabled() -> bool {
    std::env::var("HERALD_NATS_SOAK").as_deref() == Ok("1")
}

/// The harness: runs `tests`, reported ignored when `nats-server` is missing (unless
/// `HERALD_REQUIRE_NATS=1`) and, for soak tests, unless `HERALD_NATS_SOAK=1`.
pub fn main(file: &str, tests: Vec<NatsTest>) -> ! {
    let args = libtest_mimic::Arguments::from_args();
    let required = std::env::var("HERALD_REQUIRE_NATS").as_deref() == Ok("1");
    let missing = find_server_binary().is_none();
    let skip_all = missing && !required;
    if skip_all {
        eprintln!(
            "{file}: nats-server not found (install it with `apt-get install -y nats-server`, \
             or set HERALD_NATS_SERVER; set HERALD_REQUIRE_NATS=1 to make this a failure); \
             its tests are ignored"
        );
    }
    let soak = soak_enabled();
    let trials = tests
        .into_iter()
        .map(|t| {
            let ignored = skip_all || (t.soak && !soak);
            t.trial.with_ignored_flag(ignored)
        })
        .collect();
    libtest_mimic::run(&args, trials).exit()
}
