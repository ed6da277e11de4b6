//! Property tests: each overflow policy's accounting, and the order of observers.
//!
//! For random capacities and random interleavings of posts and receives:
//! - nothing is lost uncounted: once drained, delivered + dropped = posted, per subscriber
//!   and per type, and the per-post reports add up to the same drops;
//! - drop-oldest and drop-newest tell the receiver about every drop (`Lagged(n)` sums to the
//!   drop count); latest-only and backpressure never report lag;
//! - coalesce-by-key never holds two unread values with the same key;
//! - latest-only yields only the newest value;
//! - values come out in post order (except coalesce, which replaces in place);
//! - drop-oldest and latest-only yield exactly what a reference model does (the newest
//!   `capacity` values, lag reported before the first value after a gap), on the shared ring
//!   and in a private buffer whose receiver takes batches into its hand.

use std::sync::{Arc, Mutex};

use herald::{Notification, NotificationCenter, Overflow, TryRecvError};
use proptest::prelude::*;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Item {
    key: u8,
    seq: u32,
}
impl Notification for Item {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    DropOldest,
    DropNewest,
    Latest,
    Coalesce,
    Backpressure,
}

impl Policy {
    fn overflow(self, capacity: usize) -> Overflow<Item> {
        match self {
            Policy::DropOldest => Overflow::DropOldest { capacity },
            Policy::DropNewest => Overflow::DropNewest { capacity },
            Policy::Latest => Overflow::Latest,
            Policy::Coalesce => Overflow::coalesce_by_key(capacity, |i: &Item| i.key),
            Policy::Backpressure => Overflow::Backpressure { capacity },
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// Post an item with this key.
    Post(u8),
    /// Try to receive up to this many values.
    Recv(u8),
    /// Receive everything buffered.
    Drain,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..4).prop_map(Op::Post),
        3 => (1u8..4).prop_map(Op::Recv),
        1 => Just(Op::Drain),
    ]
}

fn policy() -> impl Strategy<Value = Policy> {
    prop_oneof![
        Just(Policy::DropOldest),
        Just(Policy::DropNewest),
        Just(Policy::Latest),
        Just(Policy::Coalesce),
        Just(Policy::Backpressure),
    ]
}

/// What the receiver saw.
#[derive(Default)]
struct Seen {
    values: Vec<Item>,
    lagged: u64,
}

/// One receive: `Some(())` if it got something (a value or a lag report).
fn recv_one(
    stream: &mut herald::NotificationStream<Item>,
    seen: &mut Seen,
) -> Result<bool, TestCaseError> {
    match stream.try_recv() {
        Ok(v) => {
            seen.values.push((*v).clone());
            Ok(true)
        }
        Err(TryRecvError::Lagged(n)) => {
            prop_assert!(n > 0, "Lagged(0)");
            seen.lagged += n;
            Ok(true)
        }
        Err(TryRecvError::Empty) => Ok(false),
        Err(TryRecvError::Closed) => Err(TestCaseError::fail("closed while subscribed")),
    }
}

/// Receives everything; returns the values of this drain (lag reports go to `seen`).
fn drain(
    stream: &mut herald::NotificationStream<Item>,
    seen: &mut Seen,
) -> Result<Vec<Item>, TestCaseError> {
    let before = seen.values.len();
    while recv_one(stream, seen)? {}
    Ok(seen.values[before..].to_vec())
}

fn check_policy(policy: Policy, capacity: usize, ops: &[Op]) -> Result<(), TestCaseError> {
    let center = NotificationCenter::new();
    let mut stream = center
        .observer::<Item>()
        .policy(policy.overflow(capacity))
        .stream();
    let mut seen = Seen::default();
    let mut posted = 0u64;
    let mut reported_dropped = 0u64;
    let mut reported_full = 0u64;
    // Latest-only: the newest value not yet received.
    let mut newest_unread: Option<u32> = None;

    for op in ops {
        match op {
            Op::Post(key) => {
                let seq = posted as u32;
                let report = center.post(Item { key: *key, seq });
                posted += 1;
                prop_assert!(report.dropped <= 1 && report.received <= 1, "{report:?}");
                prop_assert!(report.received + report.dropped >= 1, "{report:?}");
                reported_dropped += report.dropped as u64;
                reported_full += report.full as u64;
                if policy != Policy::Backpressure {
                    prop_assert_eq!(report.full, 0);
                }
                newest_unread = Some(seq);
            }
            Op::Recv(n) => {
                for _ in 0..*n {
                    let before = seen.values.len();
                    if !recv_one(&mut stream, &mut seen)? {
                        if policy == Policy::Latest {
                            prop_assert_eq!(newest_unread, None, "latest lost its value");
                        }
                        break;
                    }
                    if policy == Policy::Latest && seen.values.len() > before {
                        let got = seen.values.last().unwrap().seq;
                        prop_assert_eq!(Some(got), newest_unread, "latest gave a stale value");
                        newest_unread = None;
                    }
                }
            }
            Op::Drain => {
                let drained = drain(&mut stream, &mut seen)?;
                if policy == Policy::Coalesce {
                    let mut keys: Vec<u8> = drained.iter().map(|i| i.key).collect();
                    keys.sort_unstable();
                    let n = keys.len();
                    keys.dedup();
                    prop_assert_eq!(keys.len(), n, "two unread values with one key");
                }
                if policy == Policy::Latest {
                    prop_assert!(drained.len() <= 1);
                    if let Some(v) = drained.first() {
                        prop_assert_eq!(Some(v.seq), newest_unread);
                    }
                    newest_unread = None;
                }
            }
        }
        // Buffered values never exceed the capacity, counting a batch in the receiver's hand.
        prop_assert!(stream.len() <= stream.capacity(), "{}", stream.len());
    }

    let last = drain(&mut stream, &mut seen)?;
    if policy == Policy::Coalesce {
        let mut keys: Vec<u8> = last.iter().map(|i| i.key).collect();
        keys.sort_unstable();
        let n = keys.len();
        keys.dedup();
        prop_assert_eq!(keys.len(), n, "two unread values with one key");
    }

    // Accounting: every (post, subscriber) pair is delivered or dropped.
    let mine = stream.stats();
    let delivered = seen.values.len() as u64;
    prop_assert_eq!(mine.delivered, delivered);
    prop_assert_eq!(mine.delivered + mine.dropped, posted, "per subscriber");
    prop_assert_eq!(mine.depth, 0);
    let all = center.stats::<Item>();
    prop_assert_eq!(all.posted, posted);
    prop_assert_eq!(all.delivered + all.dropped, posted, "per type: {:?}", all);
    prop_assert_eq!(all.dropped, reported_dropped, "post reports vs counters");

    // Lag reports.
    match policy {
        Policy::DropOldest | Policy::DropNewest => {
            prop_assert_eq!(seen.lagged, mine.dropped, "every drop reported as lag")
        }
        Policy::Latest => prop_assert_eq!(seen.lagged, 0),
        Policy::Coalesce => prop_assert!(seen.lagged <= mine.dropped),
        Policy::Backpressure => {
            prop_assert_eq!(seen.lagged, 0);
            prop_assert_eq!(
                reported_full,
                mine.dropped,
                "every backpressure drop is a full"
            );
        }
    }

    // Order: post order, except coalesce (in-place replacement).
    if policy != Policy::Coalesce {
        let seqs: Vec<u32> = seen.values.iter().map(|i| i.seq).collect();
        prop_assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "out of order: {:?}",
            seqs
        );
    } else {
        // Each received value is distinct.
        let mut seqs: Vec<u32> = seen.values.iter().map(|i| i.seq).collect();
        seqs.sort_unstable();
        let n = seqs.len();
        seqs.dedup();
        prop_assert_eq!(seqs.len(), n, "a value received twice");
    }

    // Without overflow nothing is dropped: the values are exactly the posts.
    if mine.dropped == 0 {
        prop_assert_eq!(delivered, posted);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_policy_accounts_for_every_post(
        policy in policy(),
        capacity in 0usize..6,
        ops in prop::collection::vec(op(), 0..80),
    ) {
        check_policy(policy, capacity, &ops)?;
    }

    #[test]
    fn drop_oldest_accounts_for_every_post(
        capacity in 0usize..6,
        ops in prop::collection::vec(op(), 0..80),
    ) {
        check_policy(Policy::DropOldest, capacity, &ops)?;
    }

    #[test]
    fn drop_newest_accounts_for_every_post(
        capacity in 0usize..6,
        ops in prop::collection::vec(op(), 0..80),
    ) {
        check_policy(Policy::DropNewest, capacity, &ops)?;
    }

    #[test]
    fn latest_yields_only_the_newest(ops in prop::collection::vec(op(), 0..80)) {
        check_policy(Policy::Latest, 1, &ops)?;
    }

    #[test]
    fn coalesce_never_holds_two_unread_values_with_one_key(
        capacity in 0usize..6,
        ops in prop::collection::vec(op(), 0..80),
    ) {
        check_policy(Policy::Coalesce, capacity, &ops)?;
    }

    #[test]
    fn backpressure_sync_posts_report_every_full_buffer(
        capacity in 0usize..6,
        ops in prop::collection::vec(op(), 0..80),
    ) {
        check_policy(Policy::Backpressure, capacity, &ops)?;
    }

    /// With several streams of mixed policies, the type's counters account for every
    /// (post, subscriber) pair, and each stream's own counters for its share.
    #[test]
    fn mixed_policies_account_per_type_and_per_subscriber(
        setup in prop::collection::vec((policy(), 0usize..5), 1..5),
        ops in prop::collection::vec((op(), 0usize..5), 0..120),
    ) {
        let center = NotificationCenter::new();
        let mut streams: Vec<_> = setup
            .iter()
            .map(|(p, c)| center.observer::<Item>().policy(p.overflow(*c)).stream())
            .collect();
        let mut seen: Vec<Seen> = setup.iter().map(|_| Seen::default()).collect();
        let mut posted = 0u64;
        for (op, which) in &ops {
            let i = which % streams.len();
            match op {
                Op::Post(key) => {
                    center.post(Item { key: *key, seq: posted as u32 });
                    posted += 1;
                }
                Op::Recv(n) => {
                    for _ in 0..*n {
                        recv_one(&mut streams[i], &mut seen[i])?;
                    }
                }
                Op::Drain => {
                    drain(&mut streams[i], &mut seen[i])?;
                }
            }
        }
        let mut dropped = 0;
        for (stream, seen) in streams.iter_mut().zip(seen.iter_mut()) {
            drain(stream, seen)?;
            let s = stream.stats();
            prop_assert_eq!(s.delivered, seen.values.len() as u64);
            prop_assert_eq!(s.delivered + s.dropped, posted);
            dropped += s.dropped;
        }
        let all = center.stats::<Item>();
        prop_assert_eq!(all.dropped, dropped);
        prop_assert_eq!(all.delivered + all.dropped, posted * streams.len() as u64);
        prop_assert_eq!(all.buffers.len(), streams.len());
    }

    /// Observers run in (priority desc, registration asc) order, whatever the priorities and
    /// whichever observers were unsubscribed in between.
    #[test]
    fn call_order_is_priority_then_registration(
        priorities in prop::collection::vec(-3i32..4, 1..24),
        removed in prop::collection::vec(any::<bool>(), 24),
        late in prop::collection::vec(-3i32..4, 0..6),
    ) {
        let center = NotificationCenter::new();
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut subs = Vec::new();
        let mut expected: Vec<(i32, usize)> = Vec::new();
        let all = priorities.iter().chain(late.iter());
        for (registration, &priority) in all.enumerate() {
            let l = log.clone();
            subs.push(Some(
                center
                    .observer::<Item>()
                    .priority(priority)
                    .inline(move |_| l.lock().unwrap().push(registration)),
            ));
            expected.push((priority, registration));
            // Remove some of the first batch once the late ones start arriving.
            if registration + 1 == priorities.len() {
                for (i, gone) in removed.iter().take(priorities.len()).enumerate() {
                    if *gone {
                        subs[i] = None;
                        expected.retain(|(_, r)| *r != i);
                    }
                }
            }
        }
        expected.sort_by_key(|&(p, r)| (std::cmp::Reverse(p), r));
        let report = center.post(Item { key: 0, seq: 0 });
        let order = log.lock().unwrap().clone();
        let expected: Vec<usize> = expected.into_iter().map(|(_, r)| r).collect();
        prop_assert_eq!(report.received as usize, expected.len());
        prop_assert_eq!(order, expected);
    }
}

/// A reference drop-oldest buffer: keeps the newest `capacity` values; a receive reports the
/// values lost since the last receive, if any, before the next value.
struct Model {
    capacity: usize,
    queue: std::collections::VecDeque<u32>,
    lost: u64,
    report_lag: bool,
}

impl Model {
    /// Returns whether the post evicted a value.
    fn post(&mut self, seq: u32) -> bool {
        let evict = self.queue.len() == self.capacity;
        if evict {
            self.queue.pop_front();
            self.lost += 1;
        }
        self.queue.push_back(seq);
        evict
    }
    fn recv(&mut self) -> Option<String> {
        if self.lost != 0 {
            let n = std::mem::take(&mut self.lost);
            if self.report_lag {
                return Some(format!("lag {n}"));
            }
        }
        self.queue.pop_front().map(|s| s.to_string())
    }
}

fn yielded<V: std::ops::Deref<Target = Item>>(r: Result<V, TryRecvError>) -> Option<String> {
    match r {
        Ok(v) => Some(v.seq.to_string()),
        Err(TryRecvError::Lagged(n)) => Some(format!("lag {n}")),
        Err(TryRecvError::Empty) => None,
        Err(TryRecvError::Closed) => Some("closed".into()),
    }
}

/// What backs the stream under test.
#[derive(Debug, Clone, Copy)]
enum Backing {
    /// The type's shared ring of `Arc`s.
    Ring,
    /// A private buffer (a filter that passes everything).
    Private,
    /// A `ClonedStream` on the type's value ring.
    Values,
}

/// A stream of any backing, as the model test drives it.
enum AnyStream {
    Shared(herald::NotificationStream<Item>),
    Cloned(herald::ClonedStream<Item>),
}

impl AnyStream {
    fn try_recv(&mut self) -> Option<String> {
        match self {
            AnyStream::Shared(s) => yielded(s.try_recv()),
            AnyStream::Cloned(s) => yielded(s.try_recv().map(Box::new)),
        }
    }
    fn len(&self) -> usize {
        match self {
            AnyStream::Shared(s) => s.len(),
            AnyStream::Cloned(s) => s.len(),
        }
    }
}

/// Runs `ops` on a stream and on the model; every receive and every post report must match.
fn check_against_model(
    policy: Overflow<Item>,
    backing: Backing,
    ops: &[Op],
) -> Result<(), TestCaseError> {
    let capacity = policy.capacity();
    let report_lag = matches!(policy, Overflow::DropOldest { .. });
    let center = NotificationCenter::new();
    let builder = center.observer::<Item>().policy(policy);
    let mut stream = match backing {
        Backing::Ring => AnyStream::Shared(builder.stream()),
        Backing::Private => AnyStream::Shared(builder.filter(|_| true).stream()),
        Backing::Values => AnyStream::Cloned(builder.cloned_stream()),
    };
    let mut model = Model {
        capacity,
        queue: Default::default(),
        lost: 0,
        report_lag,
    };
    let mut seq = 0u32;
    for op in ops {
        let receives = match op {
            Op::Post(key) => {
                let report = center.post(Item { key: *key, seq });
                let evicted = model.post(seq);
                prop_assert_eq!(report.dropped as usize, evicted as usize, "post {}", seq);
                seq += 1;
                0
            }
            Op::Recv(n) => *n as usize,
            Op::Drain => usize::MAX,
        };
        for _ in 0..receives {
            let got = stream.try_recv();
            prop_assert_eq!(&got, &model.recv());
            if got.is_none() {
                break;
            }
        }
        prop_assert!(stream.len() <= capacity);
    }
    Ok(())
}

fn model_ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        8 => (0u8..4).prop_map(Op::Post),
        3 => (1u8..12).prop_map(Op::Recv),
        1 => Just(Op::Drain),
    ];
    prop::collection::vec(op, 0..160)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Drop-oldest on the shared ring is exactly the reference model.
    #[test]
    fn drop_oldest_on_the_ring_matches_the_model(capacity in 1usize..20, ops in model_ops()) {
        check_against_model(Overflow::DropOldest { capacity }, Backing::Ring, &ops)?;
    }

    /// Drop-oldest on a value ring (`ClonedStream`) is exactly the model.
    #[test]
    fn drop_oldest_on_a_value_ring_matches_the_model(capacity in 1usize..20, ops in model_ops()) {
        check_against_model(Overflow::DropOldest { capacity }, Backing::Values, &ops)?;
    }

    /// Drop-oldest in a private buffer is exactly the model too, although its receiver takes
    /// batches (capacity 8 and more): a held batch is the first thing a full buffer gives up.
    #[test]
    fn drop_oldest_in_a_private_buffer_matches_the_model(
        capacity in 1usize..20,
        ops in model_ops(),
    ) {
        check_against_model(Overflow::DropOldest { capacity }, Backing::Private, &ops)?;
    }

    /// Latest-only, on either ring and in a private buffer: the model with capacity 1, no lag.
    #[test]
    fn latest_matches_the_model(backing in 0..3usize, ops in model_ops()) {
        let backing = [Backing::Ring, Backing::Private, Backing::Values][backing];
        check_against_model(Overflow::Latest, backing, &ops)?;
    }
}
