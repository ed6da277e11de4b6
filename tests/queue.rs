//! The coalescing queue (`NotificationQueue`, contract 10), as a spec: one behaviour per test.
//! Sections follow the type's documentation: coalescing, posting styles, ordering, removal,
//! counters, shutdown. Timing goes through tokio's paused clock only.

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use herald::{
    Coalescing, Enqueued, Matching, Notification, NotificationCenter, NotificationQueue,
    PanicPolicy, PostingStyle, QueueStats, SenderId, Subscription,
};

use PostingStyle::{Asap, Now, WhenIdle};

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// Two notification types, in one family so one observer records both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct A(u32);
impl Notification for A {
    fn name() -> &'static str {
        "test.a"
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct B(u32);
impl Notification for B {
    fn name() -> &'static str {
        "test.b"
    }
}

/// One post seen by observers: type name, sender, value.
type Post = (&'static str, Option<SenderId>, u32);

/// Records every post of `A` and `B`, with its sender, in post order.
struct Log {
    posts: Arc<Mutex<Vec<Post>>>,
    _sub: Subscription,
}

impl Log {
    fn new(center: &NotificationCenter) -> Log {
        let posts: Arc<Mutex<Vec<Post>>> = Arc::default();
        let p = posts.clone();
        let sub = center
            .observer::<herald::Wildcard>()
            .family("test.")
            .inline(move |any| {
                let value = match (any.downcast_ref::<A>(), any.downcast_ref::<B>()) {
                    (Some(a), _) => a.0,
                    (_, Some(b)) => b.0,
                    _ => unreachable!("only A and B are in the family"),
                };
                p.lock().unwrap().push((any.name(), any.sender(), value));
            });
        Log { posts, _sub: sub }
    }

    fn posts(&self) -> Vec<Post> {
        self.posts.lock().unwrap().clone()
    }

    fn values(&self) -> Vec<u32> {
        self.posts().into_iter().map(|p| p.2).collect()
    }
}

fn a(value: u32) -> Post {
    ("test.a", None, value)
}

fn b(value: u32) -> Post {
    ("test.b", None, value)
}

fn from(sender: SenderId, post: Post) -> Post {
    (post.0, Some(sender), post.2)
}

/// `(enqueued, coalesced, posted, removed, pending)`.
fn counts(s: QueueStats) -> (u64, u64, u64, u64, usize) {
    (s.enqueued, s.coalesced, s.posted, s.removed, s.pending)
}

/// Lets spawned tasks of a current-thread runtime run.
async fn let_tasks_run() {
    for _ in 0..4 {
        tokio::task::yield_now().await;
    }
}

// ---------------------------------------------------------------------------------------------
// Coalescing
// ---------------------------------------------------------------------------------------------

#[test]
fn enqueue_coalesces_by_type_and_sender_by_default() {
    let center = NotificationCenter::new();
    let log = Log::new(&center);
    let queue = NotificationQueue::new(&center);
    let s = SenderId::new();
    assert_eq!(queue.enqueue(A(1)), Enqueued::Queued);
    assert_eq!(
        queue.enqueue_from(s, A(2)),
        Enqueued::Queued,
        "another sender"
    );
    assert_eq!(queue.enqueue(B(3)), Enqueued::Queued, "another type");
    assert_eq!(queue.enqueue(A(4)), Enqueued::Coalesced);
    assert_eq!(queue.enqueue_from(s, A(5)), Enqueued::Coalesced);
    assert_eq!(queue.flush(), 3);
    assert_eq!(log.posts(), [a(4), from(s, a(5)), b(3)]);
}

#[test]
fn by_type_coalesces_across_senders_with_the_last_value_and_its_sender() {
    let center = NotificationCenter::new();
    let log = Log::new(&center);
    let queue = NotificationQueue::new(&center);
    let (s, t) = (SenderId::new(), SenderId::new());
    queue.enqueue_from_with(s, A(1), Asap, Coalescing::ByType);
    queue.enqueue_with(B(2), Asap, Coalescing::ByType);
    queue.enqueue_from_with(t, A(3), Asap, Coalescing::ByType);
    assert_eq!(queue.flush(), 2);
    assert_eq!(log.posts(), [from(t, a(3)), b(2)]);
}

#[test]
fn by_sender_coalesces_across_types_at_the_first_place() {
    let center = NotificationCenter::new();
    let log = Log::new(&center);
    let queue = NotificationQueue::new(&center);
    let s = SenderId::new();
    queue.enqueue_from_with(s, A(1), Asap, Coalescing::BySender);
    queue.enqueue_with(A(2), Asap, Coalescing::BySender); // no sender: a sender of its own
    queue.enqueue_from_with(s, B(3), Asap, Coalescing::BySender);
    queue.enqueue_with(B(4), Asap, Coalescing::BySender);
    assert_eq!(queue.flush(), 2);
    // The sender's entry is now a `B`, still in the first place.
    assert_eq!(log.posts(), [from(s, b(3)), b(4)]);
}

#[test]
fn by_type_and_sender_keeps_each_sender_and_type_apart() {
    let center = NotificationCenter::new();
    let log = Log::new(&center);
    let queue = NotificationQueue::new(&center);
    let (s, t) = (SenderId::new(), SenderId::new());
    let rule = || Coalescing::ByTypeAndSender;
    for (sender, n) in [(s, 1), (t, 2), (s, 3), (t, 4)] {
        queue.enqueue_from_with(sender, A(n), Asap, rule());
        queue.enqueue_from_with(sender, B(n * 10), Asap, rule());
    }
    assert_eq!(queue.flush(), 4);
    assert_eq!(
        log.posts(),
        [from(s, a(3)), from(s, b(30)), from(t, a(4)), from(t, b(40))]
    );
}

#[test]
fn by_key_coalesces_only_the_same_type_with_an_equal_key() {
    let center = NotificationCenter::new();
    let log = Log::new(&center);
    let queue = NotificationQueue::new(&center);
    queue.enqueue_with(A(1), Asap, Coalescing::by_key(7_u32));
    queue.enqueue_with(A(2), Asap, Coalescing::by_key(8_u32)); // another key
    queue.enqueue_with(B(3), Asap, Coalescing::by_key(7_u32)); // another type
    queue.enqueue_with(A(4), Asap, Coalescing::by_key(7_u64)); // another key type
    assert_eq!(
        queue.enqueue_with(A(5), Asap, Coalescing::by_key(7_u32)),
        Enqueued::Coalesced
    );
    assert_eq!(queue.flush(), 4);
    assert_eq!(log.posts(), [a(5), a(2), b(3), a(4)]);
}

#[test]
fn by_key_ignores_the_sender() {
    let center = NotificationCenter::new();
    let log = Log::new(&center);
    let queue = NotificationQueue::new(&center);
    let (s, t) = (SenderId::new(), SenderId::new());
    queue.enqueue_from_with(s, A(1), Asap, Coalescing::by_key("job"));
    queue.enqueue_from_with(t, A(2), Asap, Coalescing::by_key("job"));
    assert_eq!(queue.flush(), 1);
    assert_eq!(log.posts(), [from(t, a(2))]);
}

#[test]
fn coalescing_none_never_merges_and_is_never_absorbed() {
    let center = NotificationCenter::new();
    let log = Log::new(&center);
    let queue = NotificationQueue::new(&center);
    queue.enqueue_with(A(1), Asap, Coalescing::None);
    queue.enqueue_with(A(2), Asap, Coalescing::ByType);
    assert_eq!(
        queue.enqueue_with(A(3), Asap, Coalescing::None),
        Enqueued::Queued
    );
    queue.enqueue_with(A(4), Asap, Coalescing::ByType);
    assert_eq!(queue.flush(), 3);
    assert_eq!(log.values(), [1, 4, 3]);
}

#[test]
fn rules_never_share_a_group() {
    let center = NotificationCenter::new();
    let log = Log::new(&center);
    let queue = NotificationQueue::new(&center);
    // All of type A, no sender: each rule would match the others' entries, but groups belong
    // to their rule.
    for (n, rule) in [
        Coalescing::ByType,
        Coalescing::BySender,
        Coalescing::ByTypeAndSender,
        Coalescing::by_key(0_u8),
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(
            queue.enqueue_with(A(n as u32), Asap, rule),
            Enqueued::Queued
        );
    }
    assert_eq!(queue.flush(), 4);
    assert_eq!(log.values(), [0, 1, 2, 3]);
}

#[test]
fn coalescing_joins_only_entries_still_pending() {
    let center = NotificationCenter::new();
    let log = Log::new(&center);
    let queue = NotificationQueue::new(&center);
    queue.enqueue(A(1));
    queue.enqueue(B(2));
    queue.flush();
    assert_eq!(queue.enqueue(A(3)), Enqueued::Queued, "A(1) was posted");
    queue.flush();
    assert_eq!(log.posts(), [a(1), b(2), a(3)]);
}

#[test]
fn a_merge_function_combines_values_of_its_type_only() {
    let center = NotificationCenter::new();
    let log = Log::new(&center);
    let queue = NotificationQueue::builder(&center)
        .merge(|pending: &A, newer: A| A(pending.0 + newer.0))
        .build();
    let s = SenderId::new();
    queue.enqueue(A(1));
    queue.enqueue(A(2));
    queue.enqueue(B(10));
    queue.enqueue(B(20)); // no merge for B: the newer wins
    queue.enqueue_from_with(s, B(5), Asap, Coalescing::BySender);
    queue.enqueue_from_with(s, A(6), Asap, Coalescing::BySender); // a B pending: the newer wins
    queue.flush();
    assert_eq!(log.posts(), [a(3), b(20), from(s, a(6))]);
}

#[test]
fn a_panicking_merge_leaves_the_queue_unchanged() {
    let center = NotificationCenter::new();
    let log = Log::new(&center);
    let queue = NotificationQueue::builder(&center)
        .merge(|pending: &A, newer: A| {
            assert_ne!(newer.0, 666, "bad merge");
            A(pending.0 + newer.0)
        })
        .build();
    queue.enqueue(A(1));
    queue.enqueue(B(2));
    let before = queue.stats();
    let q = queue.clone();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| q.enqueue(A(666))));
    assert!(result.is_err());
    assert_eq!(queue.stats(), before, "nothing counted");
    queue.enqueue(A(10)); // merges with the untouched pending A(1)
    queue.flush();
    assert_eq!(log.posts(), [a(11), b(2)]);
}

// ---------------------------------------------------------------------------------------------
// Posting styles
// ---------------------------------------------------------------------------------------------

#[test]
fn now_posts_before_enqueue_returns() {
    let center = NotificationCenter::new();
    let log = Log::new(&center);
    let queue = NotificationQueue::new(&center);
    let outcome = queue.enqueue_with(A(1), Now, Coalescing::None);
    assert!(matches!(outcome, Enqueued::Posted(report) if report.received == 1));
    assert_eq!(log.posts(), [a(1)]);
    assert!(queue.is_empty());
}

#[test]
fn now_coalesces_with_the_pending_entry_of_its_group_then_posts() {
    let center = NotificationCenter::new();
    let log = Log::new(&center);
    let queue = NotificationQueue::builder(&center)
        .merge(|pending: &A, newer: A| A(pending.0 + newer.0))
        .build();
    queue.enqueue_with(A(1), WhenIdle, Coalescing::ByType);
    queue.enqueue_with(B(9), WhenIdle, Coalescing::ByType);
    queue.enqueue_with(A(2), Now, Coalescing::ByType);
    assert_eq!(log.posts(), [a(3)], "merged, posted at once, ahead of B");
    assert_eq!(queue.len(), 1, "the B entry stays pending");
    queue.flush();
    assert_eq!(log.posts(), [a(3), b(9)]);
    assert_eq!(counts(queue.stats()), (3, 1, 2, 0, 0));
}

#[test]
fn asap_inside_a_post_is_posted_when_the_outermost_post_ends() {
    #[derive(Debug)]
    struct Import;
    impl Notification for Import {}

    let center = NotificationCenter::new();
    let log = Log::new(&center);
    let queue = NotificationQueue::new(&center);
    let steps = Arc::new(Mutex::new(Vec::new()));
    let (q, s) = (queue.clone(), steps.clone());
    // A model change enqueues a refresh; an import makes three model changes (nested posts).
    let _model = center.observe(move |n: &A| {
        if n.0 < 100 {
            s.lock().unwrap().push(format!("change {}", n.0));
            q.enqueue_with(A(100 + n.0), Asap, Coalescing::ByType);
        }
    });
    let c = center.clone();
    let s = steps.clone();
    let _import = center.observe(move |_: &Import| {
        for n in 0..3 {
            c.post(A(n));
        }
        s.lock().unwrap().push("import done".into());
    });
    center.post(Import);
    // No runtime, no flush: the end of the outermost post (Import's) posted one refresh.
    assert_eq!(
        *steps.lock().unwrap(),
        ["change 0", "change 1", "change 2", "import done"]
    );
    assert_eq!(log.values(), [0, 1, 2, 102]);
    assert!(queue.is_empty());
}

#[test]
fn asap_inside_a_post_waits_for_every_observer_of_that_post() {
    let center = NotificationCenter::new();
    let queue = NotificationQueue::new(&center);
    let order = Arc::new(Mutex::new(Vec::new()));
    let (q, o) = (queue.clone(), order.clone());
    let _first = center.observe(move |_: &A| {
        o.lock().unwrap().push("first observer of A");
        q.enqueue(B(0));
    });
    let o = order.clone();
    let _second = center.observe(move |_: &A| o.lock().unwrap().push("second observer of A"));
    let o = order.clone();
    let _queued = center.observe(move |_: &B| o.lock().unwrap().push("queued B"));
    center.post(A(0));
    assert_eq!(
        *order.lock().unwrap(),
        ["first observer of A", "second observer of A", "queued B"]
    );
}

#[tokio::test(start_paused = true)]
async fn asap_outside_a_post_is_posted_on_the_next_runtime_tick() {
    let center = NotificationCenter::new();
    let log = Log::new(&center);
    let queue = NotificationQueue::new(&center);
    queue.enqueue(A(1));
    queue.enqueue(A(2));
    assert!(
        log.posts().is_empty(),
        "not before the enqueuing task yields"
    );
    tokio::task::yield_now().await;
    assert_eq!(log.posts(), [a(2)]);
    assert!(queue.is_empty());
}

#[test]
fn asap_uses_the_runtime_given_to_the_builder() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let center = NotificationCenter::new();
    let log = Log::new(&center);
    let queue = NotificationQueue::builder(&center)
        .handle(runtime.handle().clone())
        .build();
    queue.enqueue(A(1)); // outside any runtime and any post
    assert!(log.posts().is_empty());
    runtime.block_on(let_tasks_run());
    assert_eq!(log.posts(), [a(1)]);
}

#[test]
fn asap_without_a_runtime_waits_for_a_flush_point() {
    let center = NotificationCenter::new();
    let log = Log::new(&center);
    let queue = NotificationQueue::new(&center);
    queue.enqueue(A(1));
    center.post(B(0)); // a post that does not involve the queue does not flush it
    assert_eq!(log.posts(), [b(0)]);
    assert_eq!(queue.len(), 1);
    queue.flush();
    assert_eq!(log.posts(), [b(0), a(1)]);
}

#[tokio::test(start_paused = true)]
async fn when_idle_is_posted_once_the_queue_was_quiet_for_its_period() {
    let center = NotificationCenter::new();
    let log = Log::new(&center);
    let queue = NotificationQueue::builder(&center)
        .idle_after(Duration::from_millis(100))
        .build();
    queue.enqueue_with(A(1), WhenIdle, Coalescing::ByType);
    tokio::time::advance(Duration::from_millis(99)).await;
    let_tasks_run().await;
    assert!(log.posts().is_empty(), "99 ms quiet");
    tokio::time::advance(Duration::from_millis(1)).await;
    let_tasks_run().await;
    assert_eq!(log.posts(), [a(1)]);
}

#[tokio::test(start_paused = true)]
async fn every_enqueue_restarts_the_quiet_period() {
    let center = NotificationCenter::new();
    let log = Log::new(&center);
    let queue = NotificationQueue::builder(&center)
        .idle_after(Duration::from_millis(100))
        .build();
    queue.enqueue_with(A(1), WhenIdle, Coalescing::ByType);
    tokio::time::advance(Duration::from_millis(60)).await;
    queue.enqueue_with(A(2), WhenIdle, Coalescing::ByType); // activity at 60 ms
    tokio::time::advance(Duration::from_millis(60)).await;
    let_tasks_run().await;
    assert!(log.posts().is_empty(), "120 ms in, only 60 ms quiet");
    tokio::time::advance(Duration::from_millis(40)).await;
    let_tasks_run().await;
    assert_eq!(log.posts(), [a(2)]);
    tokio::time::advance(Duration::from_secs(10)).await;
    let_tasks_run().await;
    assert_eq!(log.posts(), [a(2)], "never posted twice");
}

#[tokio::test(start_paused = true)]
async fn the_default_quiet_period_is_ten_milliseconds() {
    assert_eq!(herald::DEFAULT_IDLE_AFTER, Duration::from_millis(10));
    let center = NotificationCenter::new();
    let log = Log::new(&center);
    let queue = NotificationQueue::new(&center);
    queue.enqueue_with(A(1), WhenIdle, Coalescing::None);
    tokio::time::advance(Duration::from_millis(9)).await;
    let_tasks_run().await;
    assert!(log.posts().is_empty());
    tokio::time::advance(Duration::from_millis(1)).await;
    let_tasks_run().await;
    assert_eq!(log.posts(), [a(1)]);
}

#[test]
fn when_idle_without_a_runtime_waits_for_a_flush_point() {
    let center = NotificationCenter::new();
    let log = Log::new(&center);
    let queue = NotificationQueue::new(&center);
    queue.enqueue_with(A(1), WhenIdle, Coalescing::None);
    center.post(B(0));
    assert_eq!(queue.len(), 1);
    queue.flush();
    assert_eq!(log.posts(), [b(0), a(1)]);
}

#[tokio::test(start_paused = true)]
async fn an_asap_enqueue_hurries_the_when_idle_entry_of_its_group() {
    let center = NotificationCenter::new();
    let log = Log::new(&center);
    let queue = NotificationQueue::builder(&center)
        .idle_after(Duration::from_secs(10))
        .build();
    queue.enqueue_with(A(1), WhenIdle, Coalescing::ByType);
    queue.enqueue_with(A(2), Asap, Coalescing::ByType);
    let_tasks_run().await;
    assert_eq!(log.posts(), [a(2)], "posted on the tick, not after 10 s");
}

#[tokio::test(start_paused = true)]
async fn a_when_idle_enqueue_does_not_delay_the_asap_entry_of_its_group() {
    let center = NotificationCenter::new();
    let log = Log::new(&center);
    let queue = NotificationQueue::builder(&center)
        .idle_after(Duration::from_secs(10))
        .build();
    queue.enqueue_with(A(1), Asap, Coalescing::ByType);
    queue.enqueue_with(A(2), WhenIdle, Coalescing::ByType);
    let_tasks_run().await;
    assert_eq!(log.posts(), [a(2)]);
}

#[tokio::test(start_paused = true)]
async fn an_asap_flush_leaves_when_idle_entries_pending() {
    let center = NotificationCenter::new();
    let log = Log::new(&center);
    let queue = NotificationQueue::builder(&center)
        .idle_after(Duration::from_millis(100))
        .build();
    queue.enqueue_with(B(1), WhenIdle, Coalescing::None);
    queue.enqueue_with(A(2), Asap, Coalescing::None);
    let_tasks_run().await;
    assert_eq!(log.posts(), [a(2)]);
    assert_eq!(queue.len(), 1);
    tokio::time::advance(Duration::from_millis(100)).await;
    let_tasks_run().await;
    assert_eq!(log.posts(), [a(2), b(1)]);
}

/// The end of a post never waits for another thread's flush: it leaves its entries to that
/// flush, which posts them before it returns.
#[test]
fn the_end_of_a_post_never_waits_for_another_threads_flush() {
    #[derive(Debug)]
    struct Trigger;
    impl Notification for Trigger {}

    let center = NotificationCenter::new();
    let log = Log::new(&center);
    let queue = NotificationQueue::new(&center);
    let (in_flush_tx, in_flush_rx) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let go_rx = Mutex::new(go_rx);
    // Thread 1 flushes; the observer of its first post holds the flush until told to go.
    let _slow = center.observe(move |n: &A| {
        if n.0 == 1 {
            in_flush_tx.send(()).unwrap();
            go_rx.lock().unwrap().recv().unwrap();
        }
    });
    // Thread 2 posts a Trigger whose observer enqueues `Asap`.
    let q = queue.clone();
    let _trigger = center.observe(move |_: &Trigger| {
        q.enqueue(B(2));
    });
    queue.enqueue(A(1));
    let flusher = {
        let queue = queue.clone();
        std::thread::spawn(move || queue.flush())
    };
    in_flush_rx.recv().unwrap();
    let poster = {
        let center = center.clone();
        std::thread::spawn(move || center.post(Trigger))
    };
    poster.join().unwrap(); // returned while thread 1 is still inside its flush
    assert_eq!(log.posts(), [a(1)], "B(2) waits for the flush in progress");
    go_tx.send(()).unwrap();
    assert_eq!(
        flusher.join().unwrap(),
        2,
        "the flush posted B(2) before returning"
    );
    assert_eq!(log.posts(), [a(1), b(2)]);
}

/// A `Now` post waits for a flush in progress on another thread, so an older value of its
/// group that the flush is posting cannot reach observers after the newer one.
#[test]
fn now_waits_for_the_older_value_of_its_group_in_flight() {
    let center = NotificationCenter::new();
    let log = Log::new(&center);
    let queue = NotificationQueue::new(&center);
    let (in_flush_tx, in_flush_rx) = mpsc::channel::<()>();
    let (enqueuing_tx, enqueuing_rx) = mpsc::channel::<()>();
    let enqueuing_rx = Mutex::new(enqueuing_rx);
    let posts = log.posts.clone();
    // Runs before the log: holds A(1)'s post until the Now enqueue of A(2) has started, then
    // gives it every chance to overtake (without a real-time sleep).
    let _hold = center.observer::<A>().priority(1).inline(move |n: &A| {
        if n.0 == 1 {
            in_flush_tx.send(()).unwrap();
            enqueuing_rx.lock().unwrap().recv().unwrap();
            for _ in 0..20_000 {
                if !posts.lock().unwrap().is_empty() {
                    break; // overtaken
                }
                std::thread::yield_now();
            }
        }
    });
    queue.enqueue(A(1));
    let flusher = {
        let queue = queue.clone();
        std::thread::spawn(move || queue.flush())
    };
    in_flush_rx.recv().unwrap(); // A(1) is out of the queue, its post in progress
    let now = {
        let queue = queue.clone();
        std::thread::spawn(move || {
            enqueuing_tx.send(()).unwrap();
            queue.enqueue_with(A(2), Now, Coalescing::default())
        })
    };
    assert!(matches!(now.join().unwrap(), Enqueued::Posted(_)));
    flusher.join().unwrap();
    assert_eq!(log.posts(), [a(1), a(2)]);
}

// ---------------------------------------------------------------------------------------------
// Ordering
// ---------------------------------------------------------------------------------------------

#[test]
fn one_fifo_order_across_types_and_styles() {
    let center = NotificationCenter::new();
    let log = Log::new(&center);
    let queue = NotificationQueue::new(&center);
    queue.enqueue_with(A(1), WhenIdle, Coalescing::None);
    queue.enqueue_with(B(2), Asap, Coalescing::None);
    queue.enqueue_with(A(3), Asap, Coalescing::None);
    queue.enqueue_with(B(4), WhenIdle, Coalescing::None);
    assert_eq!(queue.flush(), 4);
    assert_eq!(log.posts(), [a(1), b(2), a(3), b(4)]);
}

#[test]
fn a_flush_from_an_observer_of_a_flush_nests_in_fifo_order() {
    let center = NotificationCenter::new();
    let log = Log::new(&center);
    let queue = NotificationQueue::new(&center);
    let q = queue.clone();
    let _chain = center.observe(move |n: &A| {
        if n.0 < 10 {
            q.enqueue_with(B(n.0 + 10), WhenIdle, Coalescing::None);
            q.flush(); // nested: same thread, no deadlock
        }
    });
    queue.enqueue_with(A(1), WhenIdle, Coalescing::None);
    queue.enqueue_with(A(2), WhenIdle, Coalescing::None);
    queue.flush();
    assert_eq!(log.posts(), [a(1), a(2), b(11), b(12)]);
    assert!(queue.is_empty());
}

#[test]
fn a_flush_ends_even_when_observers_keep_enqueuing() {
    let center = NotificationCenter::new();
    let queue = NotificationQueue::new(&center);
    let q = queue.clone();
    let _echo = center.observe(move |n: &A| {
        q.enqueue_with(A(n.0 + 1), WhenIdle, Coalescing::None);
    });
    queue.enqueue_with(A(0), WhenIdle, Coalescing::None);
    assert_eq!(queue.flush(), 1, "only what was pending when it began");
    assert_eq!(queue.len(), 1);
}

#[test]
fn concurrent_flushes_post_each_entry_once_in_fifo_order() {
    let center = NotificationCenter::new();
    let log = Log::new(&center);
    let queue = NotificationQueue::new(&center);
    for i in 0..10_000 {
        if i % 2 == 0 {
            queue.enqueue_with(A(i), WhenIdle, Coalescing::None);
        } else {
            queue.enqueue_with(B(i), Asap, Coalescing::None);
        }
    }
    let flushers: Vec<_> = (0..4)
        .map(|_| {
            let q = queue.clone();
            std::thread::spawn(move || q.flush())
        })
        .collect();
    let posted: usize = flushers.into_iter().map(|f| f.join().unwrap()).sum();
    assert_eq!(posted, 10_000);
    assert_eq!(log.values(), (0..10_000).collect::<Vec<_>>());
}

#[test]
fn queued_posts_look_like_direct_posts() {
    let center = NotificationCenter::new();
    let queue = NotificationQueue::new(&center);
    let me = SenderId::new();
    let mut mine = center.observer::<A>().sender(me).stream();
    center.retain_last::<A>();
    queue.enqueue_from(me, A(1));
    queue.enqueue(A(2));
    queue.flush();
    // The sender filter sees only the post from `me`; the center counted two posts.
    assert_eq!(mine.try_recv().unwrap().0, 1);
    assert!(mine.try_recv().is_err());
    assert_eq!(center.stats::<A>().posted, 2);
    // A late subscriber's replay sees the last queued value.
    let mut late = center.observer::<A>().replay_last().stream();
    assert_eq!(late.try_recv().unwrap().0, 2);
}

// ---------------------------------------------------------------------------------------------
// Removal without posting (Apple's dequeueNotifications(matching:coalesceMask:))
// ---------------------------------------------------------------------------------------------

#[test]
fn dequeue_matching_a_type_removes_its_entries_without_posting() {
    let center = NotificationCenter::new();
    let log = Log::new(&center);
    let queue = NotificationQueue::new(&center);
    let s = SenderId::new();
    queue.enqueue(A(1));
    queue.enqueue_from(s, A(2));
    queue.enqueue_with(A(3), WhenIdle, Coalescing::None);
    queue.enqueue(B(4));
    assert_eq!(queue.dequeue_matching(&Matching::of_type::<A>()), 3);
    queue.flush();
    assert_eq!(log.posts(), [b(4)]);
}

#[test]
fn dequeue_matching_a_sender_removes_its_entries_of_every_type() {
    let center = NotificationCenter::new();
    let log = Log::new(&center);
    let queue = NotificationQueue::new(&center);
    let (s, t) = (SenderId::new(), SenderId::new());
    queue.enqueue_from(s, A(1));
    queue.enqueue_from(t, A(2));
    queue.enqueue_from(s, B(3));
    queue.enqueue(B(4));
    assert_eq!(queue.dequeue_matching(&Matching::all().sender(s)), 2);
    queue.flush();
    assert_eq!(log.posts(), [from(t, a(2)), b(4)]);
}

#[test]
fn dequeue_matching_requires_every_criterion() {
    let center = NotificationCenter::new();
    let log = Log::new(&center);
    let queue = NotificationQueue::new(&center);
    let (s, t) = (SenderId::new(), SenderId::new());
    queue.enqueue_from_with(s, A(1), Asap, Coalescing::by_key(1_u8)); // the target
    queue.enqueue_from_with(s, A(2), Asap, Coalescing::by_key(2_u8)); // another key
    queue.enqueue_from_with(s, B(3), Asap, Coalescing::by_key(1_u8)); // another type
    queue.enqueue_from(s, A(4)); // no key
    let wrong_sender = Matching::of_type::<A>().sender(t).key(1_u8);
    assert_eq!(queue.dequeue_matching(&wrong_sender), 0);
    let matching = Matching::of_type::<A>().sender(s).key(1_u8);
    assert_eq!(queue.dequeue_matching(&matching), 1);
    queue.flush();
    assert_eq!(log.posts(), [from(s, a(2)), from(s, b(3)), from(s, a(4))]);
}

#[test]
fn a_dequeued_group_starts_afresh_at_the_back() {
    let center = NotificationCenter::new();
    let log = Log::new(&center);
    let queue = NotificationQueue::new(&center);
    queue.enqueue(A(1));
    queue.enqueue(B(2));
    queue.dequeue_matching(&Matching::of_type::<A>());
    assert_eq!(queue.enqueue(A(3)), Enqueued::Queued);
    queue.flush();
    assert_eq!(log.posts(), [b(2), a(3)]);
}

// ---------------------------------------------------------------------------------------------
// Counters
// ---------------------------------------------------------------------------------------------

#[test]
fn stats_account_for_every_enqueue_exactly_once() {
    let center = NotificationCenter::new();
    let queue = NotificationQueue::new(&center);
    queue.enqueue(A(1));
    queue.enqueue(A(2)); // coalesced
    queue.enqueue(B(3));
    queue.enqueue_with(B(4), Now, Coalescing::default()); // takes B(3) over, posts
    queue.enqueue_with(A(5), WhenIdle, Coalescing::None);
    assert_eq!(counts(queue.stats()), (5, 2, 1, 0, 2));
    queue.dequeue_matching(&Matching::of_type::<A>().key(9_u8)); // matches nothing
    queue.dequeue_matching(&Matching::all().sender(SenderId::new())); // nothing either
    assert_eq!(queue.dequeue_matching(&Matching::of_type::<A>()), 2);
    assert_eq!(counts(queue.stats()), (5, 2, 1, 2, 0));
    queue.enqueue(A(6));
    queue.flush();
    let s = queue.stats();
    assert_eq!(counts(s), (6, 2, 2, 2, 0));
    assert_eq!(
        s.enqueued,
        s.posted + s.coalesced + s.removed + s.pending as u64
    );
}

// ---------------------------------------------------------------------------------------------
// Shutdown
// ---------------------------------------------------------------------------------------------

#[test]
fn flush_posts_everything_pending_whatever_its_style() {
    let center = NotificationCenter::new();
    let log = Log::new(&center);
    let queue = NotificationQueue::new(&center);
    queue.enqueue_with(A(1), WhenIdle, Coalescing::ByType);
    queue.enqueue_with(B(2), Asap, Coalescing::ByType);
    assert_eq!(queue.flush(), 2);
    assert_eq!(queue.flush(), 0, "never posted twice");
    assert_eq!(log.posts(), [a(1), b(2)]);
}

#[test]
fn dropping_the_last_clone_flushes() {
    let center = NotificationCenter::new();
    let log = Log::new(&center);
    let queue = NotificationQueue::new(&center);
    let clone = queue.clone();
    queue.enqueue_with(A(1), WhenIdle, Coalescing::None);
    clone.enqueue_with(B(2), Asap, Coalescing::None);
    drop(queue);
    assert!(log.posts().is_empty(), "a clone still holds the queue");
    drop(clone);
    assert_eq!(log.posts(), [a(1), b(2)]);
}

#[tokio::test(start_paused = true)]
async fn runtime_tasks_do_not_keep_the_queue_alive() {
    let center = NotificationCenter::new();
    let log = Log::new(&center);
    let queue = NotificationQueue::builder(&center)
        .idle_after(Duration::from_secs(60))
        .build();
    queue.enqueue_with(A(1), WhenIdle, Coalescing::None); // an idle task now waits
    queue.enqueue(B(2)); // an asap task is scheduled
    drop(queue);
    assert_eq!(log.posts(), [a(1), b(2)], "the drop flushed at once");
    tokio::time::advance(Duration::from_secs(120)).await;
    let_tasks_run().await;
    assert_eq!(log.posts(), [a(1), b(2)], "the tasks found the queue gone");
}

#[test]
fn a_queue_that_outlives_its_runtime_leaves_entries_to_the_flush_points() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let center = NotificationCenter::new();
    let log = Log::new(&center);
    let queue = runtime.block_on(async { NotificationQueue::new(&center) });
    drop(runtime);
    queue.enqueue(A(1)); // its task cannot be spawned: no panic, nothing lost
    queue.enqueue_with(B(2), WhenIdle, Coalescing::None);
    assert!(log.posts().is_empty());
    assert_eq!(queue.flush(), 2);
    assert_eq!(log.posts(), [a(1), b(2)]);
}

#[test]
fn shutdown_flushes_then_later_enqueues_post_at_once() {
    let center = NotificationCenter::new();
    let log = Log::new(&center);
    let queue = NotificationQueue::new(&center);
    queue.enqueue_with(A(1), WhenIdle, Coalescing::ByType);
    assert_eq!(queue.shutdown(), 1);
    let clone = queue.clone();
    assert!(matches!(clone.enqueue(B(2)), Enqueued::Posted(_)));
    assert!(
        matches!(clone.enqueue(B(3)), Enqueued::Posted(_)),
        "no coalescing"
    );
    assert_eq!(log.posts(), [a(1), b(2), b(3)]);
    drop((queue, clone));
    assert_eq!(log.posts(), [a(1), b(2), b(3)]);
}

#[test]
fn a_panicking_observer_does_not_lose_the_rest_of_a_flush() {
    let center = NotificationCenter::builder()
        .panic_policy(PanicPolicy::Propagate)
        .build();
    let log = Log::new(&center);
    let _bad = center
        .observer::<A>()
        .priority(-1) // after the log
        .inline(|n: &A| assert_ne!(n.0, 1, "observer failed"));
    let queue = NotificationQueue::new(&center);
    queue.enqueue_with(A(1), Asap, Coalescing::None);
    queue.enqueue_with(A(2), Asap, Coalescing::None);
    queue.enqueue_with(B(3), Asap, Coalescing::None);
    let q = queue.clone();
    let flushed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| q.flush()));
    assert!(flushed.is_err(), "the panic is resumed after the flush");
    assert_eq!(log.posts(), [a(1), a(2), b(3)]);
    assert!(queue.is_empty());
    assert_eq!(queue.stats().posted, 3);
}

#[test]
fn dropping_the_queue_while_unwinding_still_flushes() {
    let center = NotificationCenter::builder()
        .panic_policy(PanicPolicy::Propagate)
        .build();
    let log = Log::new(&center);
    let failed = Arc::new(AtomicBool::new(false));
    let f = failed.clone();
    let _bad = center.observer::<A>().priority(-1).inline(move |_: &A| {
        f.store(true, SeqCst);
        panic!("observer failed");
    });
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let queue = NotificationQueue::new(&center);
        queue.enqueue_with(B(1), Asap, Coalescing::None);
        queue.enqueue_with(A(2), Asap, Coalescing::None);
        queue.enqueue_with(B(3), Asap, Coalescing::None);
        panic!("user code failed"); // unwinding drops the queue
    }));
    assert!(result.is_err());
    assert!(failed.load(SeqCst), "A(2)'s observer ran and panicked");
    // The observer's panic was dropped (no double panic), and nothing was lost.
    assert_eq!(log.posts(), [b(1), a(2), b(3)]);
}

#[test]
fn queue_is_send_sync_clone_and_debug() {
    fn check<T: Send + Sync + Clone + std::fmt::Debug>() {}
    check::<NotificationQueue>();
    check::<Coalescing>();
    check::<Matching>();
    let queue = NotificationQueue::new(&NotificationCenter::new());
    queue.enqueue(A(1));
    let debug = format!("{queue:?}");
    assert!(debug.contains("test.a"), "{debug}");
}
