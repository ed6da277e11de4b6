//! Stress for the spawned and queued paths: concurrent posters and enqueuers, every delivery
//! counted. Zero lost, zero duplicated; per poster, in order where the contract says so; a
//! churned spawned handler never starts after its drop returned.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald::{
    Coalescing, Notification, NotificationCenter, NotificationQueue, Overflow, PostingStyle,
    SpawnOptions,
};

const POSTERS: usize = 4;
const PER_POSTER: u64 = 60_000;
const TOTAL: u64 = POSTERS as u64 * PER_POSTER;

#[derive(Debug)]
struct Msg {
    poster: usize,
    seq: u64,
}
impl Notification for Msg {}

/// One bit per (poster, seq): set twice is a duplicate, never set is a loss.
struct Seen {
    bits: Vec<AtomicBool>,
    duplicates: AtomicU64,
}

impl Seen {
    fn new() -> Arc<Self> {
        Arc::new(Seen {
            bits: (0..TOTAL).map(|_| AtomicBool::new(false)).collect(),
            duplicates: AtomicU64::new(0),
        })
    }

    fn mark(&self, poster: usize, seq: u64) {
        if self.bits[poster * PER_POSTER as usize + seq as usize].swap(true, SeqCst) {
            self.duplicates.fetch_add(1, SeqCst);
        }
    }

    fn assert_exactly_once(&self, name: &str) {
        let missing = self.bits.iter().filter(|b| !b.load(SeqCst)).count();
        assert_eq!(missing, 0, "{name}: {missing} of {TOTAL} lost");
        assert_eq!(self.duplicates.load(SeqCst), 0, "{name}: duplicated");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spawned_handlers_under_concurrent_posters_lose_and_duplicate_nothing() {
    let center = NotificationCenter::new();

    // Sequential: every value once, per poster in post order.
    let sequential = Seen::new();
    let last_seq: Arc<Vec<Mutex<Option<u64>>>> =
        Arc::new((0..POSTERS).map(|_| Mutex::new(None)).collect());
    let (s, l) = (sequential.clone(), last_seq.clone());
    let seq_handler = center
        .observer::<Msg>()
        .policy(Overflow::Backpressure { capacity: 64 })
        .spawn(move |m: Arc<Msg>| {
            s.mark(m.poster, m.seq);
            let mut last = l[m.poster].lock().unwrap();
            assert_eq!(
                *last,
                m.seq.checked_sub(1),
                "poster {} out of order",
                m.poster
            );
            *last = Some(m.seq);
            async {}
        });

    // Concurrent (k = 8): every value once, never more than 8 in flight.
    let concurrent = Seen::new();
    let (in_flight, max_in_flight) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (c, f, m) = (concurrent.clone(), in_flight.clone(), max_in_flight.clone());
    let conc_handler = center
        .observer::<Msg>()
        .policy(Overflow::Backpressure { capacity: 64 })
        .spawn_with(SpawnOptions::new().concurrency(8), move |msg: Arc<Msg>| {
            let (c, f, m) = (c.clone(), f.clone(), m.clone());
            async move {
                let now = f.fetch_add(1, SeqCst) + 1;
                m.fetch_max(now, SeqCst);
                if msg.seq.is_multiple_of(64) {
                    tokio::task::yield_now().await;
                }
                c.mark(msg.poster, msg.seq);
                f.fetch_sub(1, SeqCst);
            }
        });

    // Churn: short-lived handlers that must never start after their drop returned.
    let stop_churn = Arc::new(AtomicBool::new(false));
    let late_starts = Arc::new(AtomicU64::new(0));
    let churned = Arc::new(AtomicU64::new(0));
    let churner = {
        let (center, stop, late, churned) = (
            center.clone(),
            stop_churn.clone(),
            late_starts.clone(),
            churned.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(SeqCst) {
                let gone = Arc::new(AtomicBool::new(false));
                let (g, late) = (gone.clone(), late.clone());
                let handler = center
                    .observer::<Msg>()
                    .policy(Overflow::Backpressure { capacity: 64 })
                    .spawn(move |_| {
                        if g.load(SeqCst) {
                            late.fetch_add(1, SeqCst);
                        }
                        async {}
                    });
                tokio::time::sleep(Duration::from_micros(200)).await;
                drop(handler);
                gone.store(true, SeqCst);
                churned.fetch_add(1, SeqCst);
            }
        })
    };

    let posters: Vec<_> = (0..POSTERS)
        .map(|poster| {
            let center = center.clone();
            tokio::spawn(async move {
                let channel = center.poster::<Msg>();
                for seq in 0..PER_POSTER {
                    let report = channel.post_async(Msg { poster, seq }).await;
                    assert_eq!(report.dropped, 0);
                }
            })
        })
        .collect();
    for p in posters {
        p.await.unwrap();
    }
    stop_churn.store(true, SeqCst);
    churner.await.unwrap();
    seq_handler.close().await;
    conc_handler.close().await;

    sequential.assert_exactly_once("sequential handler");
    concurrent.assert_exactly_once("concurrent handler");
    assert!(
        max_in_flight.load(SeqCst) <= 8,
        "concurrency limit exceeded"
    );
    assert_eq!(
        late_starts.load(SeqCst),
        0,
        "a churned handler started after its drop"
    );
    assert!(churned.load(SeqCst) > 0, "churn happened while posting");
    assert_eq!(center.stats::<Msg>().panicked, 0);
}

#[derive(Debug)]
struct Work {
    poster: usize,
    seq: u64,
    /// Coalesced by `key`: the merge adds amounts.
    key: u64,
    amount: u64,
}
impl Notification for Work {}

#[test]
fn queue_under_concurrent_enqueuers_and_flushers_loses_and_duplicates_nothing() {
    const KEYS: u64 = 16;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let center = NotificationCenter::new();

    // Uncoalesced values: each posted exactly once. Keyed values: the posted amounts add up
    // to the enqueued amounts (a value merged twice, or lost, would break the sum).
    let seen = Seen::new();
    let (keyed_posts, keyed_sum) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (s, kp, ks) = (seen.clone(), keyed_posts.clone(), keyed_sum.clone());
    let _observer = center.observe(move |w: &Work| {
        if w.key == u64::MAX {
            s.mark(w.poster, w.seq);
        } else {
            kp.fetch_add(1, SeqCst);
            ks.fetch_add(w.amount, SeqCst);
        }
    });

    let queue = NotificationQueue::builder(&center)
        .key(|w: &Work| w.key)
        .merge(|older: Work, newer: Work| Work {
            amount: older.amount + newer.amount,
            ..newer
        })
        .idle_after(Duration::from_millis(1))
        .handle(runtime.handle().clone())
        .build();

    let done = Arc::new(AtomicBool::new(false));
    let flusher = {
        let (queue, done) = (queue.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(SeqCst) {
                queue.flush();
                std::thread::yield_now();
            }
        })
    };
    let enqueuers: Vec<_> = (0..POSTERS)
        .map(|poster| {
            let queue = queue.clone();
            std::thread::spawn(move || {
                let styles = [
                    PostingStyle::Asap,
                    PostingStyle::WhenIdle,
                    PostingStyle::Asap,
                    PostingStyle::Now,
                ];
                for seq in 0..PER_POSTER {
                    let style = styles[(seq % 4) as usize];
                    queue.enqueue(
                        Work {
                            poster,
                            seq,
                            key: u64::MAX,
                            amount: 0,
                        },
                        style,
                        Coalescing::None,
                    );
                    queue.enqueue(
                        Work {
                            poster,
                            seq,
                            key: seq % KEYS,
                            amount: 1,
                        },
                        style,
                        Coalescing::ByKey,
                    );
                }
            })
        })
        .collect();
    for e in enqueuers {
        e.join().unwrap();
    }
    done.store(true, SeqCst);
    flusher.join().unwrap();
    drop(queue); // the last handle: flushes whatever is left
    runtime.block_on(async { tokio::time::sleep(Duration::from_millis(20)).await }); // tasks find it gone
    drop(runtime);

    seen.assert_exactly_once("uncoalesced values");
    assert_eq!(
        keyed_sum.load(SeqCst),
        TOTAL,
        "keyed amounts lost or counted twice"
    );
    assert!(keyed_posts.load(SeqCst) <= TOTAL);
    assert!(
        keyed_posts.load(SeqCst) >= KEYS,
        "every key posted at least once"
    );
}
