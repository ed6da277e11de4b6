//! Two centers in two processes exchange notifications through a real `nats-server`, and the
//! server is killed and restarted in the middle: both sides reconnect, no echo, each sender's
//! order is kept, and for each direction `seen + lost == sent`, with every loss also posted
//! as a `RemoteLost` notification.
//!
//! The second process is this test binary itself, run with `HERALD_NATS_PEER_URL` set (its
//! `main` then runs [`child_process`] instead of the tests); it talks to the parent over NATS and reports on stdout.
//!
//! Runs when `nats-server` is installed, reported ignored otherwise (failing instead with
//! `HERALD_REQUIRE_NATS=1`); see `tests/nats_support`.

mod nats_support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald::nats::{ConnectionState, NatsBridge, RemoteLost};
use herald::{Notification, NotificationCenter, SenderId};
use nats_support::{NatsServer, PATIENCE};
use serde::{Deserialize, Serialize};

const PEER_URL: &str = "HERALD_NATS_PEER_URL";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct FromParent {
    sender: u8,
    n: u64,
}
impl Notification for FromParent {
    fn name() -> &'static str {
        "xp.from_parent"
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct FromChild {
    sender: u8,
    n: u64,
}
impl Notification for FromChild {
    fn name() -> &'static str {
        "xp.from_child"
    }
}

/// The parent has stopped sending; `sent` is how many it sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stop {
    sent: u64,
}
impl Notification for Stop {
    fn name() -> &'static str {
        "xp.control.stop"
    }
}

/// What one side saw of the other's notifications.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct Tally {
    sent: u64,
    seen: u64,
    lost: u64,
    lost_posted: u64,
    out_of_order: u64,
    echoes: u64,
    disconnects: u64,
    reconnects: u64,
}

/// Per-sender order check and loss tally for one direction.
#[derive(Default)]
struct Receiving {
    next: Mutex<[u64; 2]>,
    seen: AtomicU64,
    out_of_order: AtomicU64,
    lost_posted: AtomicU64,
}

impl Receiving {
    fn observe<N: Notification>(
        self: &Arc<Self>,
        center: &NotificationCenter,
        key: impl Fn(&N) -> (u8, u64) + Send + Sync + 'static,
    ) -> Vec<herald::Subscription> {
        let me = self.clone();
        let a = center.observe(move |value: &N| {
            let (sender, n) = key(value);
            let mut next = me.next.lock().unwrap();
            // Losses skip numbers; anything going backwards is out of order.
            if n < next[sender as usize] {
                me.out_of_order.fetch_add(1, Ordering::Relaxed);
            }
            next[sender as usize] = n + 1;
            me.seen.fetch_add(1, Ordering::Relaxed);
        });
        let me = self.clone();
        let b = center.observe(move |l: &RemoteLost| {
            me.lost_posted.fetch_add(l.lost, Ordering::Relaxed);
        });
        vec![a, b]
    }
}

/// Posts `N`s from two sender threads, paced, until `stop`; returns how many.
fn send_until<N: Notification>(
    center: &NotificationCenter,
    stop: Arc<AtomicBool>,
    make: fn(u8, u64) -> N,
) -> std::thread::JoinHandle<u64> {
    let center = center.clone();
    std::thread::spawn(move || {
        let threads: Vec<_> = (0..2u8)
            .map(|sender| {
                let (center, stop) = (center.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut n = 0;
                    let id = SenderId::from_raw(u64::from(sender));
                    while !stop.load(Ordering::SeqCst) {
                        center.post_from(id, make(sender, n));
                        n += 1;
                        // About 2000 a second per thread: a steady stream, not a flood
                        // (a debug build on a loaded 2-core machine is the target).
                        if n.is_multiple_of(10) {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                    n
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).sum()
    })
}

async fn connect(url: &str) -> NatsBridge {
    NatsBridge::builder()
        .heartbeat(Duration::from_millis(100))
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(500))
        .connect(url)
        .await
        .unwrap()
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "PEER {line}");
    let _ = out.flush();
}

/// The child process's entry point (`main` calls it when `HERALD_NATS_PEER_URL` is set).
fn child_process() {
    let Ok(url) = std::env::var(PEER_URL) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let bridge = connect(&url).await;
        let center = NotificationCenter::new();
        let receiving = Arc::new(Receiving::default());
        let _obs = receiving.observe(&center, |p: &FromParent| (p.sender, p.n));
        let parent_sent = Arc::new(Mutex::new(None::<u64>));
        let ps = parent_sent.clone();
        let _stop = center.observe(move |s: &Stop| {
            *ps.lock().unwrap() = Some(s.sent);
        });
        let import = bridge.import::<FromParent>(&center).await.unwrap();
        let _control = bridge.import::<Stop>(&center).await.unwrap();
        let _export = center
            .observer::<FromChild>()
            .forward(bridge.publish())
            .unwrap();
        let mut states = bridge.watch_state();
        tokio::spawn(async move {
            while states.changed().await.is_ok() {
                let s = *states.borrow();
                say(&format!("STATE {s:?}"));
            }
        });
        say("READY");

        let stop = Arc::new(AtomicBool::new(false));
        let sender = send_until(&center, stop.clone(), |sender, n| FromChild { sender, n });
        let deadline = Instant::now() + PATIENCE * 4;
        let mut said_first = false;
        let parent_total = loop {
            if !said_first && receiving.seen.load(Ordering::SeqCst) > 0 {
                say("FIRST");
                said_first = true;
            }
            if let Some(sent) = *parent_sent.lock().unwrap() {
                break sent;
            }
            assert!(Instant::now() < deadline, "child: no Stop from the parent");
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        stop.store(true, Ordering::SeqCst);
        let sent = tokio::task::spawn_blocking(move || sender.join().unwrap())
            .await
            .unwrap();
        // The parent's heartbeats tell the last number: wait for seen + lost == sent.
        let deadline = Instant::now() + PATIENCE;
        while import.stats().posted + import.stats().lost < parent_total {
            assert!(
                Instant::now() < deadline,
                "child: accounting incomplete: {:?}",
                import.stats()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Sends what is queued and a last heartbeat, so the parent can account for the tail.
        bridge.shutdown().await.unwrap();
        let m = bridge.metrics();
        let tally = Tally {
            sent,
            seen: receiving.seen.load(Ordering::SeqCst),
            lost: import.stats().lost,
            lost_posted: receiving.lost_posted.load(Ordering::SeqCst),
            out_of_order: receiving.out_of_order.load(Ordering::SeqCst),
            echoes: m.echoes,
            disconnects: m.disconnects,
            reconnects: m.reconnects,
        };
        say(&format!(
            "RESULT {}",
            serde_json::to_string(&tally).unwrap()
        ));
    });
}

/// The child process, killed if the test ends early.
struct Peer {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Peer {
    fn spawn(url: &str) -> Peer {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(PEER_URL, url)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(at) = line.find("PEER ") {
                    let _ = tx.send(line[at + 5..].to_owned());
                }
            }
        });
        Peer { child, lines }
    }

    /// Waits for a line starting with `prefix`; returns the rest.
    async fn expect(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + PATIENCE * 2;
        loop {
            match self.lines.try_recv() {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.trim().to_owned();
                    }
                }
                Err(mpsc::TryRecvError::Empty) => {
                    assert!(
                        Instant::now() < deadline,
                        "timed out waiting for {prefix} from the child"
                    );
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(mpsc::TryRecvError::Disconnected) => {
                    let status = self.child.wait();
                    panic!("the child exited before {prefix}: {status:?}");
                }
            }
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn two_processes_exchange_notifications_across_a_server_restart() {
    let mut server = NatsServer::start();
    let bridge = connect(&server.url()).await;
    let center = NotificationCenter::new();
    let receiving = Arc::new(Receiving::default());
    let _obs = receiving.observe(&center, |c: &FromChild| (c.sender, c.n));
    let import = bridge.import::<FromChild>(&center).await.unwrap();
    let _export = center
        .observer::<FromParent>()
        .forward(bridge.publish())
        .unwrap();
    let _control = center.observer::<Stop>().forward(bridge.publish()).unwrap();

    let mut peer = Peer::spawn(&server.url());
    peer.expect("READY").await;
    let stop = Arc::new(AtomicBool::new(false));
    let sender = send_until(&center, stop.clone(), |sender, n| FromParent { sender, n });
    peer.expect("FIRST").await;
    nats_support::until("the child's first", || {
        receiving.seen.load(Ordering::SeqCst) > 0
    })
    .await;

    // Mid-run: the server dies and comes back on the same port.
    server.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.restart();
    let mut states = bridge.watch_state();
    nats_support::wait_for_state(&mut states, ConnectionState::Connected).await;
    // Traffic flows again from the child.
    let before = receiving.seen.load(Ordering::SeqCst);
    nats_support::until("the child's traffic after the restart", || {
        receiving.seen.load(Ordering::SeqCst) > before + 200
    })
    .await;

    stop.store(true, Ordering::SeqCst);
    let sent = tokio::task::spawn_blocking(move || sender.join().unwrap())
        .await
        .unwrap();
    nats_support::until("the outbox sent", || {
        let m = bridge.metrics();
        m.published + m.export_dropped == m.exported
    })
    .await;
    // Stop may be lost like anything else: repeat it until the child answers.
    let deadline = Instant::now() + PATIENCE * 2;
    let child_line = 'answer: loop {
        center.post(Stop { sent });
        tokio::time::sleep(Duration::from_millis(200)).await;
        while let Ok(line) = peer.lines.try_recv() {
            if let Some(rest) = line.strip_prefix("RESULT ") {
                break 'answer rest.to_owned();
            }
        }
        assert!(Instant::now() < deadline, "no RESULT from the child");
    };
    let child: Tally = serde_json::from_str(&child_line).unwrap();

    // The child's last heartbeat (sent by its shutdown) closes the parent's accounting.
    nats_support::until("the parent's accounting", || {
        let s = import.stats();
        s.posted + s.lost == child.sent
    })
    .await;
    let m = bridge.metrics();
    let parent = Tally {
        sent,
        seen: receiving.seen.load(Ordering::SeqCst),
        lost: import.stats().lost,
        lost_posted: receiving.lost_posted.load(Ordering::SeqCst),
        out_of_order: receiving.out_of_order.load(Ordering::SeqCst),
        echoes: m.echoes,
        disconnects: m.disconnects,
        reconnects: m.reconnects,
    };
    eprintln!("parent: {parent:?}\nchild:  {child:?}");

    for (who, me, other) in [("parent", &parent, &child), ("child", &child, &parent)] {
        assert_eq!(me.seen + me.lost, other.sent, "{who}: seen + lost == sent");
        assert_eq!(
            me.lost_posted, me.lost,
            "{who}: every loss posted as RemoteLost"
        );
        assert_eq!(me.out_of_order, 0, "{who}: per-sender order");
        assert_eq!(me.echoes, 0, "{who}: no echo");
        assert!(
            me.disconnects >= 1 && me.reconnects >= 1,
            "{who} reconnected: {me:?}"
        );
        assert!(me.seen > 0 && other.sent > 0);
    }
    let status = peer.child.wait().unwrap();
    assert!(status.success(), "child: {status}");
}

fn main() {
    if std::env::var_os(PEER_URL).is_some() {
        child_process();
        return;
    }
    nats_support::main(
        "nats_processes",
        vec![nats_support::multi(
            "two_processes_exchange_notifications_across_a_server_restart",
            two_processes_exchange_notifications_across_a_server_restart,
        )],
    )
}
