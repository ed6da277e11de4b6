//! Stress for the spawned and queued paths: concurrent posters and enqueuers, every delivery
//! counted. Zero lost, zero duplicated; per poster, in order where the contract says so; a
//! churned spawned handler never starts after its drop returned; a coalesced group never goes
//! back to an older value and always ends with its last one.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald::{
    Coalescing, Matching, Notification, NotificationCenter, NotificationQueue, Overflow,
    PostingStyle, SenderId, SpawnOptions,
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
    seq_handler.drain().await;
    conc_handler.drain().await;

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

// ---------------------------------------------------------------------------------------------
// The queue: several types, every coalescing rule and posting style, enqueued from several
// threads while another flushes, runtime tasks post, observers enqueue from inside posts and a
// thread dequeues; then the last clones are dropped from several threads at once.
// ---------------------------------------------------------------------------------------------

const ENQUEUERS: usize = 4;
const PER_ENQUEUER: u64 = 20_000;
/// Not a multiple of the four styles' cycle, so each group mixes every style.
const GROUPS: u64 = 7;

/// Enqueued uncoalesced: each must be posted exactly once.
#[derive(Debug)]
struct Job {
    poster: usize,
    seq: u64,
}
impl Notification for Job {}

/// Enqueued `by_key((poster, seq % GROUPS))`, or `BySender` alternating with `Beat`: per group,
/// posted values must go forward and the group's last value must be posted.
#[derive(Debug)]
struct Tick {
    poster: usize,
    seq: u64,
    by_sender: bool,
}
impl Notification for Tick {}

#[derive(Debug)]
struct Beat {
    poster: usize,
    seq: u64,
}
impl Notification for Beat {}

/// Enqueued `Asap` by an observer of `Job`, from inside the post (the end-of-post path).
#[derive(Debug)]
struct Echo;
impl Notification for Echo {}

/// Enqueued uncoalesced while a thread dequeues them: each is posted or removed, never both.
#[derive(Debug)]
struct Doomed;
impl Notification for Doomed {}

/// The last posted seq of each group, checking that it only goes forward.
struct Groups {
    last: Mutex<std::collections::HashMap<(usize, u64, bool), u64>>,
    backwards: AtomicU64,
}

impl Groups {
    fn posted(&self, group: (usize, u64, bool), seq: u64) {
        let mut last = self.last.lock().unwrap();
        if let Some(prev) = last.insert(group, seq)
            && prev >= seq
        {
            self.backwards.fetch_add(1, SeqCst);
        }
    }
}

#[test]
fn queue_under_concurrent_enqueuers_flushers_tasks_and_dequeues_loses_and_repeats_nothing() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let center = NotificationCenter::new();
    let queue = NotificationQueue::builder(&center)
        .idle_after(Duration::from_micros(200))
        .handle(runtime.handle().clone())
        .build();

    let jobs: Arc<Vec<AtomicU64>> = Arc::new(
        (0..ENQUEUERS as u64 * PER_ENQUEUER)
            .map(|_| AtomicU64::new(0))
            .collect(),
    );
    let groups = Arc::new(Groups {
        last: Mutex::default(),
        backwards: AtomicU64::new(0),
    });
    let (echoes_enqueued, echoes_posted) =
        (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (doomed_posted, observed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));

    let (j, q, ee, o) = (
        jobs.clone(),
        queue.clone(),
        echoes_enqueued.clone(),
        observed.clone(),
    );
    let _jobs = center.observe(move |n: &Job| {
        o.fetch_add(1, SeqCst);
        j[n.poster * PER_ENQUEUER as usize + n.seq as usize].fetch_add(1, SeqCst);
        if n.seq.is_multiple_of(97) {
            ee.fetch_add(1, SeqCst);
            q.enqueue_with(Echo, PostingStyle::Asap, Coalescing::None);
        }
    });
    let (g, o) = (groups.clone(), observed.clone());
    let _ticks = center.observe(move |n: &Tick| {
        o.fetch_add(1, SeqCst);
        let group = if n.by_sender { 0 } else { n.seq % GROUPS };
        g.posted((n.poster, group, n.by_sender), n.seq);
    });
    let (g, o) = (groups.clone(), observed.clone());
    let _beats = center.observe(move |n: &Beat| {
        o.fetch_add(1, SeqCst);
        g.posted((n.poster, 0, true), n.seq);
    });
    let (ep, o) = (echoes_posted.clone(), observed.clone());
    let _echoes = center.observe(move |_: &Echo| {
        o.fetch_add(1, SeqCst);
        ep.fetch_add(1, SeqCst);
    });
    let (dp, o) = (doomed_posted.clone(), observed.clone());
    let _doomed = center.observe(move |_: &Doomed| {
        o.fetch_add(1, SeqCst);
        dp.fetch_add(1, SeqCst);
    });

    let done = Arc::new(AtomicBool::new(false));
    let doomed_removed = Arc::new(AtomicU64::new(0));
    let flusher = {
        let (queue, done) = (queue.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(SeqCst) {
                queue.flush();
                std::thread::yield_now();
            }
        })
    };
    let dequeuer = {
        let (queue, done, removed) = (queue.clone(), done.clone(), doomed_removed.clone());
        std::thread::spawn(move || {
            while !done.load(SeqCst) {
                let n = queue.dequeue_matching(&Matching::of_type::<Doomed>());
                removed.fetch_add(n as u64, SeqCst);
                std::thread::yield_now();
            }
        })
    };
    let enqueuers: Vec<_> = (0..ENQUEUERS)
        .map(|poster| {
            let queue = queue.clone();
            std::thread::spawn(move || {
                let me = SenderId::from_raw(poster as u64);
                let styles = [
                    PostingStyle::Asap,
                    PostingStyle::WhenIdle,
                    PostingStyle::Asap,
                    PostingStyle::Now,
                ];
                for seq in 0..PER_ENQUEUER {
                    let style = styles[(seq % 4) as usize];
                    queue.enqueue_from_with(me, Job { poster, seq }, style, Coalescing::None);
                    let key = Coalescing::by_key((poster, seq % GROUPS));
                    let tick = Tick {
                        poster,
                        seq,
                        by_sender: false,
                    };
                    queue.enqueue_with(tick, style, key);
                    // BySender mixes two types in one group per poster.
                    if seq.is_multiple_of(2) {
                        let tick = Tick {
                            poster,
                            seq,
                            by_sender: true,
                        };
                        queue.enqueue_from_with(me, tick, style, Coalescing::BySender);
                    } else {
                        let beat = Beat { poster, seq };
                        queue.enqueue_from_with(me, beat, style, Coalescing::BySender);
                    }
                    queue.enqueue_with(Doomed, style, Coalescing::None);
                }
            })
        })
        .collect();
    for e in enqueuers {
        e.join().unwrap();
    }
    done.store(true, SeqCst);
    flusher.join().unwrap();
    dequeuer.join().unwrap();
    drop(runtime); // its tasks stop; they held the queue only weakly
    queue.flush();
    let stats = queue.stats();
    drop(queue); // nothing left to flush

    let lost = jobs.iter().filter(|c| c.load(SeqCst) == 0).count();
    let repeated = jobs.iter().filter(|c| c.load(SeqCst) > 1).count();
    assert_eq!((lost, repeated), (0, 0), "uncoalesced: lost, repeated");
    assert_eq!(groups.backwards.load(SeqCst), 0, "a group went backwards");
    let last = groups.last.lock().unwrap();
    for poster in 0..ENQUEUERS {
        for g in 0..GROUPS {
            let want = (0..PER_ENQUEUER).rev().find(|s| s % GROUPS == g);
            assert_eq!(
                last.get(&(poster, g, false)),
                want.as_ref(),
                "key group's last value"
            );
        }
        assert_eq!(
            last.get(&(poster, 0, true)),
            Some(&(PER_ENQUEUER - 1)),
            "sender group's last value"
        );
    }
    assert_eq!(echoes_posted.load(SeqCst), echoes_enqueued.load(SeqCst));
    assert_eq!(
        doomed_posted.load(SeqCst) + doomed_removed.load(SeqCst),
        ENQUEUERS as u64 * PER_ENQUEUER,
        "doomed: posted + removed"
    );
    assert_eq!(stats.pending, 0);
    assert_eq!(stats.removed, doomed_removed.load(SeqCst));
    assert_eq!(
        stats.posted,
        observed.load(SeqCst),
        "one post per observed delivery"
    );
    assert_eq!(
        stats.enqueued,
        stats.posted + stats.coalesced + stats.removed,
        "every enqueue accounted for once"
    );
}

#[test]
fn clones_dropped_from_several_threads_during_flushes_lose_nothing() {
    const ROUNDS: u64 = 20;
    const PER_THREAD: u64 = 2_000;
    for round in 0..ROUNDS {
        let center = NotificationCenter::new();
        let seen: Arc<Vec<AtomicU64>> = Arc::new(
            (0..ENQUEUERS as u64 * PER_THREAD)
                .map(|_| AtomicU64::new(0))
                .collect(),
        );
        let s = seen.clone();
        let _jobs = center.observe(move |n: &Job| {
            s[n.poster * PER_THREAD as usize + n.seq as usize].fetch_add(1, SeqCst);
        });
        // No runtime: only flushes and the last drop post.
        let queue = NotificationQueue::new(&center);
        let flusher = {
            let queue = queue.clone();
            std::thread::spawn(move || {
                for _ in 0..50 {
                    queue.flush();
                    std::thread::yield_now();
                }
            })
        };
        let enqueuers: Vec<_> = (0..ENQUEUERS)
            .map(|poster| {
                let queue = queue.clone();
                std::thread::spawn(move || {
                    for seq in 0..PER_THREAD {
                        let style = if seq % 2 == 0 {
                            PostingStyle::Asap
                        } else {
                            PostingStyle::WhenIdle
                        };
                        queue.enqueue_with(Job { poster, seq }, style, Coalescing::None);
                    }
                    drop(queue); // one of these, or the flusher, may be the last clone
                })
            })
            .collect();
        drop(queue);
        for e in enqueuers {
            e.join().unwrap();
        }
        flusher.join().unwrap();
        let lost = seen.iter().filter(|c| c.load(SeqCst) == 0).count();
        let repeated = seen.iter().filter(|c| c.load(SeqCst) > 1).count();
        assert_eq!((lost, repeated), (0, 0), "round {round}: lost, repeated");
    }
}
