//! Stress: several threads post while others subscribe and unsubscribe continuously.
//!
//! Observers subscribed throughout must see every notification exactly once and, per posting
//! thread, in post order. Churned observers must never run after their unsubscribe returned
//! (contract 3), and, per posting thread, see one contiguous run of its posts.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use herald::{Notification, NotificationCenter, Overflow, RecvError, SenderId, TryRecvError};

const POSTERS: usize = 4;
const PER_POSTER: u64 = 50_000;
const TOTAL: u64 = POSTERS as u64 * PER_POSTER;
const CHURNERS: usize = 2;
/// Churned subscriptions of each kind (inline, stream) that must happen while posting.
const MIN_CHURN: usize = 10;

#[derive(Debug)]
struct Msg {
    thread: usize,
    seq: u64,
}
impl Notification for Msg {}

/// One vector of sequence numbers per posting thread.
type PerPoster = Arc<Vec<Mutex<Vec<u64>>>>;

fn per_poster() -> PerPoster {
    Arc::new((0..POSTERS).map(|_| Mutex::new(Vec::new())).collect())
}

/// Every post of every poster, once, in order.
fn assert_exactly_once_in_order(name: &str, seen: &[Vec<u64>]) {
    assert_eq!(seen.len(), POSTERS);
    for (t, seqs) in seen.iter().enumerate() {
        assert_eq!(
            seqs.len() as u64,
            PER_POSTER,
            "{name}: poster {t} delivered {} of {PER_POSTER}",
            seqs.len()
        );
        if let Some(i) = seqs.iter().enumerate().position(|(i, s)| *s != i as u64) {
            panic!(
                "{name}: poster {t} out of order or duplicated at index {i}: {:?}",
                &seqs[i.saturating_sub(2)..(i + 3).min(seqs.len())]
            );
        }
    }
}

/// Per poster: strictly increasing; with `contiguous`, without gaps.
fn assert_increasing(name: &str, seen: &[Vec<u64>], contiguous: bool) {
    for (t, seqs) in seen.iter().enumerate() {
        for w in seqs.windows(2) {
            if contiguous {
                assert_eq!(w[1], w[0] + 1, "{name}: poster {t} not contiguous: {w:?}");
            } else {
                assert!(w[1] > w[0], "{name}: poster {t} not increasing: {w:?}");
            }
        }
    }
}

/// A tiny deterministic generator, so runs are reproducible per churner.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[derive(Default)]
struct ChurnTally {
    inline: AtomicUsize,
    streams: AtomicUsize,
    calls: AtomicU64,
    violations: AtomicUsize,
}

/// Subscribes and unsubscribes inline observers and streams until `stop`.
fn churn(center: &NotificationCenter, id: u64, stop: &AtomicBool, tally: &ChurnTally) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (id + 1));
    while !stop.load(SeqCst) {
        match rng.next() % 5 {
            // An inline observer that must never run once its drop has returned.
            0 | 1 => {
                let gone = Arc::new(AtomicBool::new(false));
                let seen = per_poster();
                let (g, s) = (gone.clone(), seen.clone());
                let violations = Arc::new(AtomicUsize::new(0));
                let v = violations.clone();
                let priority = (rng.next() % 21) as i32 - 10;
                let sub = center
                    .observer::<Msg>()
                    .priority(priority)
                    .inline(move |m| {
                        if g.load(SeqCst) {
                            v.fetch_add(1, SeqCst);
                        }
                        s[m.thread].lock().unwrap().push(m.seq);
                        if g.load(SeqCst) {
                            v.fetch_add(1, SeqCst);
                        }
                    });
                for _ in 0..rng.next() % 50 {
                    thread::yield_now();
                }
                drop(sub);
                gone.store(true, SeqCst);
                // Give any call that (wrongly) outlived the drop a chance to show itself.
                thread::yield_now();
                tally.violations.fetch_add(violations.load(SeqCst), SeqCst);
                let seen: Vec<Vec<u64>> = seen.iter().map(|m| m.lock().unwrap().clone()).collect();
                tally
                    .calls
                    .fetch_add(seen.iter().map(|v| v.len() as u64).sum(), SeqCst);
                assert_increasing("churned inline", &seen, true);
                tally.inline.fetch_add(1, SeqCst);
            }
            // A small lossy stream, read a little, then dropped.
            2 => {
                let mut stream = center
                    .observer::<Msg>()
                    .policy(Overflow::DropOldest { capacity: 64 })
                    .stream();
                let mut seen = vec![Vec::new(); POSTERS];
                for _ in 0..rng.next() % 50 {
                    match stream.try_recv() {
                        Ok(m) => seen[m.thread].push(m.seq),
                        Err(TryRecvError::Empty) => thread::yield_now(),
                        Err(TryRecvError::Lagged(_)) => {}
                        Err(TryRecvError::Closed) => panic!("closed while subscribed"),
                    }
                }
                drop(stream);
                assert_increasing("churned stream", &seen, false);
                tally.streams.fetch_add(1, SeqCst);
            }
            // A backpressure stream that is barely read: `post_async` posters wait on it
            // until it goes away, synchronous posters report it full.
            3 => {
                let mut stream = center
                    .observer::<Msg>()
                    .policy(Overflow::Backpressure { capacity: 8 })
                    .stream();
                let mut seen = vec![Vec::new(); POSTERS];
                for _ in 0..rng.next() % 20 {
                    thread::yield_now();
                    if let Ok(m) = stream.try_recv() {
                        seen[m.thread].push(m.seq);
                    }
                }
                drop(stream);
                assert_increasing("churned backpressure stream", &seen, false);
                tally.streams.fetch_add(1, SeqCst);
            }
            // A sender-filtered inline observer: only its sender's posts.
            _ => {
                let t = (rng.next() % POSTERS as u64) as usize;
                let wrong = Arc::new(AtomicUsize::new(0));
                let w = wrong.clone();
                let sub = center
                    .observer::<Msg>()
                    .sender(SenderId::from_raw(t as u64))
                    .inline(move |m| {
                        if m.thread != t {
                            w.fetch_add(1, SeqCst);
                        }
                    });
                thread::yield_now();
                drop(sub);
                assert_eq!(wrong.load(SeqCst), 0, "sender filter let another sender in");
                tally.inline.fetch_add(1, SeqCst);
            }
        }
    }
}

#[test]
fn observers_subscribed_throughout_see_every_post_once_in_order_under_churn() {
    let started = Instant::now();
    let center = NotificationCenter::new();
    let channel = center.poster::<Msg>();

    // Subscribed throughout: two inline observers around the churned ones' priorities...
    let high = per_poster();
    let h = high.clone();
    let _high = center.observer::<Msg>().priority(100).inline(move |m| {
        h[m.thread].lock().unwrap().push(m.seq);
        if m.seq % 16 == 0 {
            // Now and then a post pauses here, with its snapshot loaded and the churned
            // observers still ahead of it: a churner may remove one of them meanwhile,
            // and the post must then skip it.
            thread::yield_now();
        }
    });
    let low = per_poster();
    let l = low.clone();
    let _low = center
        .observer::<Msg>()
        .priority(-100)
        .inline(move |m| l[m.thread].lock().unwrap().push(m.seq));
    // ...one filtered on poster 1's sender...
    let only_one = Arc::new(Mutex::new(Vec::new()));
    let o = only_one.clone();
    let _only_one = center
        .observer::<Msg>()
        .sender(SenderId::from_raw(1))
        .inline(move |m: &Msg| o.lock().unwrap().push((m.thread, m.seq)));
    // ...and a stream big enough never to overflow, drained by its own thread.
    let mut stream = center
        .observer::<Msg>()
        .policy(Overflow::DropOldest {
            capacity: TOTAL as usize,
        })
        .stream();
    let drainer = thread::spawn(move || {
        let mut seen = vec![Vec::new(); POSTERS];
        let mut received = 0;
        while received < TOTAL {
            match stream.recv_blocking() {
                Ok(m) => {
                    seen[m.thread].push(m.seq);
                    received += 1;
                }
                Err(RecvError::Lagged(n)) => panic!("the steady stream lost {n} values"),
                // The center is dropped once the posts are done: a stream that missed some
                // ends here instead of waiting for them forever.
                Err(RecvError::Closed) => {
                    panic!(
                        "the steady stream missed {} of {TOTAL} posts",
                        TOTAL - received
                    )
                }
            }
        }
        assert!(stream.try_recv().unwrap_err().is_empty());
        seen
    });

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(ChurnTally::default());
    let churners: Vec<_> = (0..CHURNERS as u64)
        .map(|id| {
            let (center, stop, tally) = (center.clone(), stop.clone(), tally.clone());
            thread::spawn(move || churn(&center, id, &stop, &tally))
        })
        .collect();

    // Posters use, in turn: `post_from`, the typed handle, and `post_async` through each.
    let posters: Vec<_> = (0..POSTERS)
        .map(|t| {
            let (center, channel, tally) = (center.clone(), channel.clone(), tally.clone());
            thread::spawn(move || {
                let sender = SenderId::from_raw(t as u64);
                for seq in 0..PER_POSTER {
                    if seq == PER_POSTER / 2 {
                        // Halfway: make sure the churn really overlaps the posting, however
                        // the scheduler treats the churners.
                        while tally.inline.load(SeqCst) < MIN_CHURN
                            || tally.streams.load(SeqCst) < MIN_CHURN
                        {
                            thread::yield_now();
                        }
                    }
                    let msg = Msg { thread: t, seq };
                    let report = match t % 4 {
                        0 => center.post_from(sender, msg),
                        1 => channel.post_from(sender, msg),
                        2 => futures::executor::block_on(channel.post_async_from(sender, msg)),
                        // The center's async form has no sender: this poster's posts are
                        // sender-less.
                        _ => futures::executor::block_on(center.post_async(msg)),
                    };
                    assert!(report.received >= 3, "{report:?}");
                    if seq % 32 == 0 {
                        // Leave the churners (2 cores are shared by 7 threads) some room.
                        thread::yield_now();
                    }
                }
            })
        })
        .collect();

    for p in posters {
        p.join().unwrap();
    }
    stop.store(true, SeqCst);
    for c in churners {
        c.join().unwrap();
    }
    let stats = center.stats::<Msg>();
    drop((center, channel));
    let streamed = drainer.join().unwrap();

    let collect =
        |p: &PerPoster| -> Vec<Vec<u64>> { p.iter().map(|m| m.lock().unwrap().clone()).collect() };
    assert_exactly_once_in_order("high-priority inline", &collect(&high));
    assert_exactly_once_in_order("low-priority inline", &collect(&low));
    assert_exactly_once_in_order("steady stream", &streamed);
    let only_one = only_one.lock().unwrap();
    assert_eq!(
        *only_one,
        (0..PER_POSTER).map(|s| (1, s)).collect::<Vec<_>>(),
        "sender-filtered observer"
    );

    assert_eq!(
        tally.violations.load(SeqCst),
        0,
        "a churned observer ran after its unsubscribe returned"
    );
    let (inline, streams) = (tally.inline.load(SeqCst), tally.streams.load(SeqCst));
    assert!(
        inline >= MIN_CHURN && streams >= MIN_CHURN,
        "too little churn: {inline} inline, {streams} streams"
    );

    assert_eq!(stats.posted, TOTAL);
    assert_eq!(stats.dead, 0);
    assert_eq!(stats.panicked, 0);
    assert_eq!(stats.observers, 3, "churned observers left behind");
    eprintln!(
        "stress: {TOTAL} posts, {inline} inline and {streams} stream subscriptions churned \
         ({} churned calls), {:?}",
        tally.calls.load(SeqCst),
        started.elapsed()
    );
}

#[test]
fn drop_races_posts_from_many_threads_and_is_quiescent() {
    // Many short-lived observers, each dropped while four threads post as fast as they can.
    #[derive(Debug)]
    struct Tick;
    impl Notification for Tick {}

    let center = NotificationCenter::new();
    let stop = Arc::new(AtomicBool::new(false));
    let posters: Vec<_> = (0..POSTERS)
        .map(|_| {
            let (center, stop) = (center.clone(), stop.clone());
            thread::spawn(move || {
                while !stop.load(SeqCst) {
                    center.post(Tick);
                }
            })
        })
        .collect();

    let deadline = Instant::now() + Duration::from_millis(500);
    let mut rounds = 0;
    let mut called = 0;
    while Instant::now() < deadline || rounds < 50 {
        rounds += 1;
        let gone = Arc::new(AtomicBool::new(false));
        let running = Arc::new(AtomicUsize::new(0));
        let calls = Arc::new(AtomicUsize::new(0));
        let late = Arc::new(AtomicUsize::new(0));
        let (g, r, c, la) = (gone.clone(), running.clone(), calls.clone(), late.clone());
        let sub = center.observe(move |_: &Tick| {
            r.fetch_add(1, SeqCst);
            c.fetch_add(1, SeqCst);
            if g.load(SeqCst) {
                la.fetch_add(1, SeqCst);
            }
            r.fetch_sub(1, SeqCst);
        });
        while calls.load(SeqCst) == 0 && rounds % 2 == 0 {
            thread::yield_now();
        }
        drop(sub);
        assert_eq!(running.load(SeqCst), 0, "drop returned while a call ran");
        gone.store(true, SeqCst);
        let after = calls.load(SeqCst);
        thread::yield_now();
        assert_eq!(calls.load(SeqCst), after, "called after drop returned");
        assert_eq!(late.load(SeqCst), 0);
        called += after;
    }
    stop.store(true, SeqCst);
    for p in posters {
        p.join().unwrap();
    }
    assert!(called > 0);
    assert_eq!(center.stats::<Tick>().observers, 0);
}
