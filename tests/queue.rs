//! The coalescing queue (`NotificationQueue`, contract 10): coalescing rules, posting styles,
//! order, nothing posted twice, nothing lost.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald::{
    Coalescing, Enqueued, Notification, NotificationCenter, NotificationQueue, PostingStyle,
    SenderId,
};

use Coalescing::{ByKey, BySender, ByType};
use PostingStyle::{Asap, Now, WhenIdle};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Ev {
    key: u32,
    value: u32,
}
impl Notification for Ev {}

fn ev(key: u32, value: u32) -> Ev {
    Ev { key, value }
}

/// (sender, key, value) of every post of `Ev`, in post order.
type Posted = Arc<Mutex<Vec<(Option<SenderId>, u32, u32)>>>;

/// Records posts of `Ev` with their sender (a sender-filtered observer per known sender, and
/// one unfiltered observer for the rest).
fn record(
    center: &NotificationCenter,
    senders: &[SenderId],
) -> (Posted, Vec<herald::Subscription>) {
    let posted: Posted = Arc::new(Mutex::new(Vec::new()));
    let mut subs = Vec::new();
    let from_known = Arc::new(Mutex::new(0usize));
    for &s in senders {
        let p = posted.clone();
        let k = from_known.clone();
        subs.push(
            center
                .observer::<Ev>()
                .sender(s)
                .priority(1)
                .inline(move |n| {
                    *k.lock().unwrap() += 1;
                    p.lock().unwrap().push((Some(s), n.key, n.value));
                }),
        );
    }
    let p = posted.clone();
    subs.push(center.observe(move |n: &Ev| {
        let mut k = from_known.lock().unwrap();
        if *k > 0 {
            *k -= 1; // already recorded with its sender
        } else {
            p.lock().unwrap().push((None, n.key, n.value));
        }
    }));
    (posted, subs)
}

fn values(posted: &Posted) -> Vec<u32> {
    posted.lock().unwrap().iter().map(|p| p.2).collect()
}

// ---------------------------------------------------------------------------------------------
// Coalescing
// ---------------------------------------------------------------------------------------------

#[test]
fn coalesces_by_sender_exactly_as_documented() {
    let center = NotificationCenter::new();
    let (a, b) = (SenderId::new(), SenderId::new());
    let (posted, _subs) = record(&center, &[a, b]);
    let queue = NotificationQueue::new(&center);

    assert_eq!(
        queue.enqueue_from(a, ev(0, 1), Asap, BySender),
        Enqueued::Queued
    );
    assert_eq!(
        queue.enqueue_from(b, ev(0, 2), Asap, BySender),
        Enqueued::Queued
    );
    assert_eq!(queue.enqueue(ev(0, 3), Asap, BySender), Enqueued::Queued); // no sender: its own
    assert_eq!(
        queue.enqueue_from(a, ev(0, 4), Asap, BySender),
        Enqueued::Coalesced
    );
    assert_eq!(queue.enqueue(ev(0, 5), Asap, BySender), Enqueued::Coalesced);
    assert_eq!(
        queue.enqueue_from(b, ev(0, 6), Asap, BySender),
        Enqueued::Coalesced
    );
    assert_eq!(queue.len(), 3);
    assert!(
        posted.lock().unwrap().is_empty(),
        "nothing posted before a flush point"
    );

    assert_eq!(queue.flush(), 3);
    // Order of first occurrence (a, b, none), each with its last value, posted from its sender.
    assert_eq!(
        *posted.lock().unwrap(),
        [(Some(a), 0, 4), (Some(b), 0, 6), (None, 0, 5)]
    );
    assert_eq!(queue.flush(), 0, "never posted twice");
}

#[test]
fn by_sender_and_none_do_not_merge_with_each_other() {
    let center = NotificationCenter::new();
    let a = SenderId::new();
    let (posted, _subs) = record(&center, &[a]);
    let queue = NotificationQueue::new(&center);
    queue.enqueue_from(a, ev(0, 1), Asap, Coalescing::None);
    queue.enqueue_from(a, ev(0, 2), Asap, BySender);
    queue.enqueue_from(a, ev(0, 3), Asap, Coalescing::None);
    queue.enqueue_from(a, ev(0, 4), Asap, BySender);
    queue.enqueue_from(a, ev(0, 5), Asap, ByType);
    assert_eq!(queue.flush(), 4);
    assert_eq!(values(&posted), [1, 4, 3, 5]);
}

#[test]
fn coalesces_by_type_into_one_post() {
    let center = NotificationCenter::new();
    let (a, b) = (SenderId::new(), SenderId::new());
    let (posted, _subs) = record(&center, &[a, b]);
    let queue = NotificationQueue::new(&center);
    queue.enqueue_from(a, ev(1, 1), Asap, ByType);
    queue.enqueue_from(b, ev(2, 2), Asap, ByType);
    queue.enqueue(ev(3, 3), Asap, ByType);
    assert_eq!(queue.flush(), 1);
    // The last value, from the last sender.
    assert_eq!(*posted.lock().unwrap(), [(None, 3, 3)]);
}

#[test]
fn coalesces_by_key_with_the_queue_key_function() {
    let center = NotificationCenter::new();
    let (posted, _subs) = record(&center, &[]);
    let queue = NotificationQueue::builder(&center)
        .key(|e: &Ev| e.key)
        .build();
    for (key, value) in [(1, 10), (2, 20), (1, 11), (3, 30), (2, 21), (1, 12)] {
        queue.enqueue(ev(key, value), Asap, ByKey);
    }
    assert_eq!(queue.flush(), 3);
    let posted: Vec<_> = posted.lock().unwrap().iter().map(|p| (p.1, p.2)).collect();
    assert_eq!(posted, [(1, 12), (2, 21), (3, 30)]);
}

#[test]
fn merge_function_combines_coalesced_values() {
    let center = NotificationCenter::new();
    let (posted, _subs) = record(&center, &[]);
    let queue = NotificationQueue::builder(&center)
        .key(|e: &Ev| e.key)
        .merge(|older: Ev, newer: Ev| ev(newer.key, older.value + newer.value))
        .build();
    for (key, value) in [(1, 1), (2, 10), (1, 2), (1, 3), (2, 20)] {
        queue.enqueue(ev(key, value), Asap, ByKey);
    }
    queue.flush();
    let posted: Vec<_> = posted.lock().unwrap().iter().map(|p| (p.1, p.2)).collect();
    assert_eq!(posted, [(1, 6), (2, 30)]);
}

#[test]
#[should_panic(expected = "Coalescing::ByKey needs a key function")]
fn by_key_without_a_key_function_panics_clearly() {
    let queue = NotificationQueue::new(&NotificationCenter::new());
    queue.enqueue(ev(1, 1), Asap, ByKey);
}

// ---------------------------------------------------------------------------------------------
// Posting styles
// ---------------------------------------------------------------------------------------------

#[test]
fn now_coalesces_with_the_pending_value_and_posts_at_once() {
    let center = NotificationCenter::new();
    let (posted, _subs) = record(&center, &[]);
    let queue = NotificationQueue::builder(&center)
        .merge(|older: Ev, newer: Ev| ev(newer.key, older.value + newer.value))
        .build();
    queue.enqueue(ev(0, 1), Asap, ByType);
    queue.enqueue(ev(0, 9), WhenIdle, Coalescing::None);
    let report = queue.enqueue(ev(0, 2), Now, ByType);
    assert!(matches!(report, Enqueued::Posted(r) if r.received == 1));
    assert_eq!(
        values(&posted),
        [3],
        "merged with the pending value, posted at once"
    );
    assert_eq!(queue.len(), 1, "the uncoalesced value stays pending");
    queue.flush();
    assert_eq!(values(&posted), [3, 9]);
}

#[test]
fn asap_without_a_runtime_waits_for_an_explicit_flush() {
    let center = NotificationCenter::new();
    let (posted, _subs) = record(&center, &[]);
    let queue = NotificationQueue::new(&center);
    queue.enqueue(ev(0, 1), Asap, Coalescing::None);
    std::thread::sleep(Duration::from_millis(5));
    assert!(values(&posted).is_empty());
    queue.flush();
    assert_eq!(values(&posted), [1]);
}

#[tokio::test]
async fn asap_posts_on_the_next_runtime_tick() {
    let center = NotificationCenter::new();
    let (posted, _subs) = record(&center, &[]);
    let queue = NotificationQueue::new(&center);
    queue.enqueue(ev(0, 1), Asap, ByType);
    queue.enqueue(ev(0, 2), Asap, ByType);
    assert!(
        values(&posted).is_empty(),
        "not before the enqueuing task yields"
    );
    tokio::task::yield_now().await;
    assert_eq!(values(&posted), [2]);
    assert!(queue.is_empty());
}

#[tokio::test]
async fn asap_enqueued_by_an_observer_is_posted_after_the_current_post() {
    #[derive(Debug)]
    struct Trigger;
    impl Notification for Trigger {}

    let center = NotificationCenter::new();
    let order = Arc::new(Mutex::new(Vec::new()));
    let queue = NotificationQueue::new(&center);
    let (q, o) = (queue.clone(), order.clone());
    let _first = center.observe(move |_: &Trigger| {
        o.lock().unwrap().push("first observer");
        q.enqueue(ev(0, 1), Asap, ByType);
    });
    let o = order.clone();
    let _second = center.observe(move |_: &Trigger| o.lock().unwrap().push("second observer"));
    let o = order.clone();
    let _queued = center.observe(move |_: &Ev| o.lock().unwrap().push("queued"));
    center.post(Trigger);
    tokio::task::yield_now().await;
    assert_eq!(
        *order.lock().unwrap(),
        ["first observer", "second observer", "queued"]
    );
}

#[tokio::test(start_paused = true)]
async fn when_idle_waits_for_a_quiet_period() {
    let center = NotificationCenter::new();
    let (posted, _subs) = record(&center, &[]);
    let quiet = Duration::from_millis(100);
    let queue = NotificationQueue::builder(&center)
        .idle_after(quiet)
        .build();

    queue.enqueue(ev(0, 1), WhenIdle, ByType);
    tokio::time::sleep(Duration::from_millis(60)).await;
    queue.enqueue(ev(0, 2), WhenIdle, ByType); // activity: the quiet period restarts
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert!(values(&posted).is_empty(), "120 ms in, only 60 ms quiet");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        values(&posted),
        [2],
        "posted once 100 ms passed without an enqueue"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(values(&posted), [2], "never posted twice");
}

#[tokio::test(start_paused = true)]
async fn asap_coalescing_an_idle_value_makes_it_asap() {
    let center = NotificationCenter::new();
    let (posted, _subs) = record(&center, &[]);
    let queue = NotificationQueue::builder(&center)
        .idle_after(Duration::from_secs(10))
        .build();
    queue.enqueue(ev(0, 1), WhenIdle, ByType);
    queue.enqueue(ev(0, 2), Asap, ByType);
    tokio::task::yield_now().await;
    assert_eq!(values(&posted), [2]);
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(values(&posted), [2]);
}

// ---------------------------------------------------------------------------------------------
// Nothing lost, nothing twice
// ---------------------------------------------------------------------------------------------

#[test]
fn dropping_the_queue_loses_nothing() {
    let center = NotificationCenter::new();
    let (posted, _subs) = record(&center, &[]);
    let queue = NotificationQueue::new(&center);
    let clone = queue.clone();
    queue.enqueue(ev(0, 1), WhenIdle, Coalescing::None);
    clone.enqueue(ev(0, 2), Asap, Coalescing::None);
    drop(queue);
    assert!(values(&posted).is_empty(), "a clone still holds the queue");
    drop(clone);
    assert_eq!(values(&posted), [1, 2]);
}

#[test]
fn shutdown_flushes_and_later_enqueues_post_at_once() {
    let center = NotificationCenter::new();
    let (posted, _subs) = record(&center, &[]);
    let queue = NotificationQueue::new(&center);
    queue.enqueue(ev(0, 1), WhenIdle, ByType);
    assert_eq!(queue.shutdown(), 1);
    assert!(matches!(
        queue.enqueue(ev(0, 2), Asap, ByType),
        Enqueued::Posted(_)
    ));
    assert_eq!(values(&posted), [1, 2]);
    drop(queue);
    assert_eq!(values(&posted), [1, 2]);
}

#[test]
fn a_flush_from_inside_an_observer_of_a_flush_does_not_deadlock_or_repeat() {
    let center = NotificationCenter::new();
    let queue = NotificationQueue::new(&center);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (q, s) = (queue.clone(), seen.clone());
    let _chain = center.observe(move |n: &Ev| {
        s.lock().unwrap().push(n.value);
        if n.value < 3 {
            q.enqueue(ev(0, n.value + 10), Asap, Coalescing::None);
            q.flush(); // nested, like a nested post
        }
    });
    queue.enqueue(ev(0, 1), Asap, Coalescing::None);
    queue.enqueue(ev(0, 2), Asap, Coalescing::None);
    queue.flush();
    assert_eq!(*seen.lock().unwrap(), [1, 11, 2, 12]);
    assert!(queue.is_empty());
}

#[test]
fn concurrent_flushes_post_each_value_once_in_enqueue_order() {
    let center = NotificationCenter::new();
    let (posted, _subs) = record(&center, &[]);
    let queue = NotificationQueue::new(&center);
    for i in 0..10_000 {
        queue.enqueue(ev(0, i), Asap, Coalescing::None);
    }
    let flushers: Vec<_> = (0..4)
        .map(|_| {
            let q = queue.clone();
            std::thread::spawn(move || while q.flush() > 0 {})
        })
        .collect();
    for f in flushers {
        f.join().unwrap();
    }
    assert_eq!(values(&posted), (0..10_000).collect::<Vec<_>>());
}

#[test]
fn queue_is_send_sync_and_clone() {
    fn check<T: Send + Sync + Clone>() {}
    check::<NotificationQueue<Ev>>();
}

#[test]
fn a_panicking_merge_leaves_the_queue_consistent() {
    let center = NotificationCenter::new();
    let (posted, _subs) = record(&center, &[]);
    let queue = NotificationQueue::builder(&center)
        .key(|e: &Ev| e.key)
        .merge(|older: Ev, newer: Ev| {
            assert_ne!(newer.value, 666, "bad merge");
            ev(newer.key, older.value + newer.value)
        })
        .build();
    queue.enqueue(ev(1, 1), Asap, ByKey);
    queue.enqueue(ev(2, 2), Asap, ByKey);
    let q = queue.clone();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        q.enqueue(ev(1, 666), Asap, ByKey);
    }));
    assert!(panicked.is_err());
    // Key 1's values went with the panic; key 1 starts afresh, key 2 is untouched.
    queue.enqueue(ev(1, 10), Asap, ByKey);
    queue.enqueue(ev(2, 20), Asap, ByKey);
    queue.enqueue(ev(1, 5), Asap, ByKey);
    assert_eq!(queue.flush(), 2);
    let posted: Vec<_> = posted.lock().unwrap().iter().map(|p| (p.1, p.2)).collect();
    assert_eq!(posted, [(2, 22), (1, 15)]);
}

// ---------------------------------------------------------------------------------------------
// Asap from inside a post
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Edited(u32);
impl Notification for Edited {}

/// Like Apple's queue: values enqueued `Asap` by observers are posted, coalesced, when the
/// outermost post in progress ends, with no runtime and no explicit flush.
#[test]
fn asap_from_inside_a_post_is_posted_when_the_outermost_post_ends() {
    let center = NotificationCenter::new();
    let queue = NotificationQueue::<Ev>::new(&center);
    let (posted, _subs) = record(&center, &[]);
    let log: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let (q, l) = (queue.clone(), log.clone());
    let _editor = center.observe(move |e: &Edited| {
        l.lock().unwrap().push(format!("edited {}", e.0));
        q.enqueue(ev(0, e.0), Asap, ByType);
    });
    let l = log.clone();
    let _relayout =
        center.observe(move |e: &Ev| l.lock().unwrap().push(format!("relayout {}", e.value)));
    let c = center.clone();
    let _batch = center.observe(move |n: &EditBatch| {
        for i in 0..n.0 {
            c.post(Edited(i));
        }
    });
    center.post(EditBatch(3));
    // Three edits inside one outer post: one relayout, after all of them, with the last value.
    assert_eq!(
        *log.lock().unwrap(),
        ["edited 0", "edited 1", "edited 2", "relayout 2"]
    );
    assert_eq!(values(&posted), [2]);
    assert_eq!(queue.flush(), 0, "nothing left pending");
}

#[derive(Debug)]
struct EditBatch(u32);
impl Notification for EditBatch {}
