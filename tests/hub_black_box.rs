//! The in-process hub from the outside: black-box tests written from the issues (2, 3, 11),
//! DESIGN.md's contracts, the README and the public API docs alone, by someone who had not read
//! the code, aimed at edge cases (capacity 1, zero
//! receivers, streams dropped mid-post, many posting threads, nested posts, subscribing during a
//! post, policy counters against `Lagged` counts).

use std::future::Future;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use futures::StreamExt;
use herald::testkit::{AllRecorder, Recorder};
use herald::{
    AnyNotification, BufferStats, ClonedStream, Coalescing, DeadNotification, Enqueued, Matching,
    Notification, NotificationCenter, NotificationQueue, NotificationStream, ObserverBuilder,
    ObserverPanicked, Overflow, PanicPolicy, PostReport, PostingStyle, RecvError, SenderId,
    SpawnOptions, Subscription, TryRecvError, Wildcard,
};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Ev(u32);
impl Notification for Ev {
    fn name() -> &'static str {
        "audit.ev"
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Other(u32);
impl Notification for Other {
    fn name() -> &'static str {
        "audit.other"
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Elsewhere(u32);
impl Notification for Elsewhere {
    fn name() -> &'static str {
        "elsewhere.thing"
    }
}

// =============================================================================================
// Helpers: what observers record, streams read, threads that post
// =============================================================================================

/// Values observers append from any thread, in the order they ran.
struct List<T>(Arc<Mutex<Vec<T>>>);

impl<T> Clone for List<T> {
    fn clone(&self) -> Self {
        List(self.0.clone())
    }
}

impl<T> Default for List<T> {
    fn default() -> Self {
        List(Arc::default())
    }
}

impl<T> List<T> {
    fn push(&self, v: T) {
        self.0.lock().unwrap().push(v);
    }

    /// The last value pushed, taken out.
    fn pop(&self) -> Option<T> {
        self.0.lock().unwrap().pop()
    }

    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

impl<T: Clone> List<T> {
    fn get(&self) -> Vec<T> {
        self.0.lock().unwrap().clone()
    }
}

impl<T: Send + 'static> List<T> {
    /// A typed observer that pushes `value(n)` for each notification `n`.
    fn records<N: Notification>(
        &self,
        value: impl Fn(&N) -> T + Send + Sync + 'static,
    ) -> impl Fn(&N) + Send + Sync + 'static {
        let l = self.clone();
        move |n| l.push(value(n))
    }
}

/// The order observers ran in, by name.
type Log = List<String>;

impl Log {
    /// A typed observer that logs `entry` each time it is called.
    fn logs<N: Notification>(&self, entry: &'static str) -> impl Fn(&N) + Send + Sync + 'static {
        self.records(move |_| entry.into())
    }

    /// A wildcard observer that logs `entry` each time it is called.
    fn logs_any(
        &self,
        entry: &'static str,
    ) -> impl Fn(&AnyNotification<'_>) + Send + Sync + 'static {
        let l = self.clone();
        move |_| l.push(entry.into())
    }
}

/// The delivered and dropped counts of a buffer.
fn delivered_and_dropped(st: BufferStats) -> (u64, u64) {
    (st.delivered, st.dropped)
}

/// A counter observers and probes bump from any thread.
#[derive(Clone, Default)]
struct Count(Arc<AtomicUsize>);

impl Count {
    fn bump(&self) {
        self.0.fetch_add(1, SeqCst);
    }

    fn get(&self) -> usize {
        self.0.load(SeqCst)
    }

    /// A typed observer that counts its calls.
    fn counts<N: Notification>(&self) -> impl Fn(&N) + Send + Sync + 'static {
        let c = self.clone();
        move |_| c.bump()
    }

    /// A value that bumps this count when it is dropped.
    fn probe(&self) -> Probe {
        Probe(self.clone())
    }
}

/// Bumps its count when dropped: held by a closure, it tells when the closure was freed.
struct Probe(Count);

impl Drop for Probe {
    fn drop(&mut self) {
        self.0.bump();
    }
}

/// A typed observer that does nothing but hold `probe`.
fn holding<N: Notification>(probe: Probe) -> impl Fn(&N) + Send + Sync + 'static {
    move |_| {
        let _ = &probe;
    }
}

/// How many calls run at once, and the most that ever did.
#[derive(Clone, Default)]
struct Gauge {
    running: Arc<AtomicUsize>,
    max: Arc<AtomicUsize>,
}

impl Gauge {
    fn enter(&self) {
        let now = self.running.fetch_add(1, SeqCst) + 1;
        self.max.fetch_max(now, SeqCst);
    }

    fn leave(&self) {
        self.running.fetch_sub(1, SeqCst);
    }

    fn max(&self) -> usize {
        self.max.load(SeqCst)
    }
}

/// What both kinds of stream offer, so that one helper serves both; `try_recv_owned` is
/// `try_recv` as a value of its own (a `NotificationStream` hands out an `Arc`).
trait Buffered<N> {
    fn try_recv_owned(&mut self) -> Result<N, TryRecvError>;
    fn len(&self) -> usize;
    fn capacity(&self) -> usize;
    fn stats(&self) -> BufferStats;
}

/// Implements [`Buffered`] for a kind of stream; `$own` makes a value of what its `try_recv`
/// returns.
macro_rules! buffered {
    ($stream:ident, $own:expr) => {
        impl<N: Notification + Clone> Buffered<N> for $stream<N> {
            fn try_recv_owned(&mut self) -> Result<N, TryRecvError> {
                self.try_recv().map($own)
            }

            fn len(&self) -> usize {
                $stream::len(self)
            }

            fn capacity(&self) -> usize {
                $stream::capacity(self)
            }

            fn stats(&self) -> BufferStats {
                $stream::stats(self)
            }
        }
    };
}

buffered!(NotificationStream, |v: Arc<N>| (*v).clone());
buffered!(ClonedStream, |v: N| v);

/// Everything a stream yields right now, as strings ("3", "lag 2", "closed").
fn drain(s: &mut impl Buffered<Ev>) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        match s.try_recv_owned() {
            Ok(v) => out.push(v.0.to_string()),
            Err(TryRecvError::Lagged(n)) => out.push(format!("lag {n}")),
            Err(TryRecvError::Closed) => {
                out.push("closed".into());
                return out;
            }
            Err(TryRecvError::Empty) => return out,
        }
    }
}

/// The values a stream yields until the first lag, empty or closed.
fn received<N>(s: &mut impl Buffered<N>) -> Vec<N> {
    std::iter::from_fn(|| s.try_recv_owned().ok()).collect()
}

/// [`received`] for a stream of `Ev`, as numbers.
fn values(s: &mut impl Buffered<Ev>) -> Vec<u32> {
    received(s).into_iter().map(|e| e.0).collect()
}

fn drop_oldest<N>(capacity: usize) -> Overflow<N> {
    Overflow::DropOldest { capacity }
}

fn drop_newest<N>(capacity: usize) -> Overflow<N> {
    Overflow::DropNewest { capacity }
}

fn backpressure<N>(capacity: usize) -> Overflow<N> {
    Overflow::Backpressure { capacity }
}

/// A stream of what `builder` subscribes, under `policy`.
fn stream_with(builder: ObserverBuilder<Ev>, policy: Overflow<Ev>) -> NotificationStream<Ev> {
    builder.policy(policy).stream()
}

/// A cloned stream of what `builder` subscribes, under `policy`.
fn cloned_with(builder: ObserverBuilder<Ev>, policy: Overflow<Ev>) -> ClonedStream<Ev> {
    builder.policy(policy).cloned_stream()
}

/// An observer of `Ev` with a filter that passes everything: its stream gets a private buffer.
fn private_buffer(center: &NotificationCenter) -> ObserverBuilder<Ev> {
    center.observer::<Ev>().filter(|_| true)
}

/// A stream on the shared ring and one with a private buffer, subscribed in that order.
fn ring_and_private(
    center: &NotificationCenter,
) -> (NotificationStream<Ev>, NotificationStream<Ev>) {
    (center.stream::<Ev>(), private_buffer(center).stream())
}

/// A handler for `spawn`: each call runs `call(e, state)` on a clone of `state` of its own.
fn with_state<S, F>(
    state: S,
    call: impl Fn(Arc<Ev>, S) -> F + Send + 'static,
) -> impl FnMut(Arc<Ev>) -> F + Send + 'static
where
    S: Clone + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    move |e| call(e, state.clone())
}

/// A center that retains the last `Ev`, with `v` posted to it.
fn retaining(v: Ev) -> NotificationCenter {
    let center = NotificationCenter::new();
    center.retain_last::<Ev>();
    center.post(v);
    center
}

fn propagating_center() -> NotificationCenter {
    NotificationCenter::builder()
        .panic_policy(PanicPolicy::Propagate)
        .build()
}

/// Posts `Ev(i)` for each `i` of `values`.
fn post_each(center: &NotificationCenter, values: impl IntoIterator<Item = u32>) {
    for i in values {
        center.post(Ev(i));
    }
}

/// `post_async(v)` in a task of its own, so that the test can watch it wait.
fn post_async_in_task(center: &NotificationCenter, v: Ev) -> tokio::task::JoinHandle<PostReport> {
    let c = center.clone();
    tokio::spawn(async move { c.post_async(v).await })
}

/// Subscribes, at priority 1, an observer of `Ev` that drops what `victim` holds when called;
/// returns its guard and `victim`.
fn dropper<T: Send + 'static>(center: &NotificationCenter) -> (Subscription, List<T>) {
    let victim = List::default();
    let v = victim.clone();
    let sub = center.observer::<Ev>().priority(1).inline(move |_| {
        drop(v.pop());
    });
    (sub, victim)
}

/// Subscribes, at priority 1, an observer of `Ev` that calls `make` during the post of `Ev(0)`
/// and keeps what it made; returns its guard and what it made.
fn adder<S: Send + 'static>(
    center: &NotificationCenter,
    make: impl Fn(&NotificationCenter) -> S + Send + Sync + 'static,
) -> (Subscription, List<S>) {
    let added = List::default();
    let (c, a) = (center.clone(), added.clone());
    let sub = center.observer::<Ev>().priority(1).inline(move |e| {
        if e.0 == 0 {
            a.push(make(&c));
        }
    });
    (sub, added)
}

/// A thread that calls `step(center, i)` for each `i` of `steps` until [`Stopper::stop`].
struct Stopper {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

fn until_stopped(
    center: &NotificationCenter,
    steps: impl Iterator<Item = u32> + Send + 'static,
    mut step: impl FnMut(&NotificationCenter, u32) + Send + 'static,
) -> Stopper {
    let stop = Arc::new(AtomicBool::new(false));
    let (c, s) = (center.clone(), stop.clone());
    let thread = thread::spawn(move || {
        for i in steps {
            if s.load(SeqCst) {
                break;
            }
            step(&c, i);
        }
    });
    Stopper { stop, thread }
}

impl Stopper {
    fn stop(self) {
        self.stop.store(true, SeqCst);
        self.thread.join().unwrap();
    }
}

/// A thread that waits until the returned flag is set, then posts `Ev(i)` for each `i` of
/// `range`.
fn poster_on_go(
    center: &NotificationCenter,
    range: Range<u32>,
) -> (Arc<AtomicBool>, JoinHandle<()>) {
    let go = Arc::new(AtomicBool::new(false));
    let (c, g) = (center.clone(), go.clone());
    let poster = thread::spawn(move || {
        while !g.load(SeqCst) {
            thread::yield_now();
        }
        post_each(&c, range);
    });
    (go, poster)
}

/// Runs `body(center, t)` on a thread of its own for each `t` of `0..n`.
fn on_threads<R: Send + 'static>(
    center: &NotificationCenter,
    n: u32,
    body: impl Fn(&NotificationCenter, u32) -> R + Send + Clone + 'static,
) -> Vec<JoinHandle<R>> {
    (0..n)
        .map(|t| {
            let (c, body) = (center.clone(), body.clone());
            thread::spawn(move || body(&c, t))
        })
        .collect()
}

fn join_all<R>(threads: Vec<JoinHandle<R>>) -> Vec<R> {
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// A thread that runs `f` after `ms` milliseconds.
fn after_ms(ms: u64, f: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    thread::spawn(move || {
        thread::sleep(Duration::from_millis(ms));
        f();
    })
}

/// Contract 3, `rounds` times over: subscribes with `subscribe` an observer that calls the mark
/// it is given, drops its guard, and checks that the observer was not called once the drop
/// returned.
fn assert_quiet_after_drop(
    rounds: usize,
    subscribe: impl Fn(Box<dyn Fn() + Send + Sync>) -> Subscription,
) {
    for _ in 0..rounds {
        let gone = Arc::new(AtomicBool::new(false));
        let bad = Arc::new(AtomicBool::new(false));
        let (g, b) = (gone.clone(), bad.clone());
        let sub = subscribe(Box::new(move || {
            if g.load(SeqCst) {
                b.store(true, SeqCst);
            }
        }));
        drop(sub);
        gone.store(true, SeqCst);
        assert!(!bad.load(SeqCst));
    }
}

fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            if !msg.starts_with("audit:") {
                default(info);
            }
        }));
    });
}

// =============================================================================================
// Contract 1: order
// =============================================================================================

#[test]
fn order_mixes_negative_zero_and_positive_priorities_with_registration_order() {
    let center = NotificationCenter::new();
    let l = Log::default();
    let mut subs = Vec::new();
    for (name, prio) in [
        ("a0", 0),
        ("b-5", -5),
        ("c5", 5),
        ("d0", 0),
        ("e5", 5),
        ("f-5", -5),
    ] {
        subs.push(center.observer::<Ev>().priority(prio).inline(l.logs(name)));
    }
    center.post(Ev(0));
    assert_eq!(l.get(), ["c5", "e5", "a0", "d0", "b-5", "f-5"]);
}

#[test]
fn order_holds_for_extreme_priorities() {
    let center = NotificationCenter::new();
    let l = Log::default();
    let _min = center
        .observer::<Ev>()
        .priority(i32::MIN)
        .inline(l.logs("min"));
    let _max = center
        .observer::<Ev>()
        .priority(i32::MAX)
        .inline(l.logs("max"));
    let _zero = center.observer::<Ev>().inline(l.logs("zero"));
    center.post(Ev(0));
    assert_eq!(l.get(), ["max", "zero", "min"]);
}

#[test]
fn a_resubscribed_observer_goes_after_those_registered_before_it() {
    let center = NotificationCenter::new();
    let l = Log::default();
    let first = center.observer::<Ev>().inline(l.logs("first"));
    let _second = center.observer::<Ev>().inline(l.logs("second"));
    drop(first);
    let _again = center.observer::<Ev>().inline(l.logs("again"));
    center.post(Ev(0));
    assert_eq!(l.get(), ["second", "again"]);
}

#[test]
fn posts_from_one_thread_reach_a_stream_and_an_inline_observer_in_post_order() {
    let center = NotificationCenter::new();
    let seen = List::default();
    let _inline = center.observe(seen.records(|e: &Ev| e.0));
    let mut filtered = private_buffer(&center).stream();
    let mut ring = center.stream::<Ev>();
    join_all(on_threads(&center, 1, |c, _| post_each(c, 0..500)));
    let expect: Vec<String> = (0..500).map(|i| i.to_string()).collect();
    assert_eq!(drain(&mut filtered), expect);
    assert_eq!(drain(&mut ring), expect);
    assert_eq!(seen.get(), (0..500).collect::<Vec<_>>());
}

// =============================================================================================
// Contract 2: re-entrancy
// =============================================================================================

#[test]
fn nested_posts_three_deep_are_depth_first() {
    let center = NotificationCenter::new();
    let l = Log::default();
    let (c, a) = (center.clone(), l.clone());
    let _first = center.observer::<Ev>().priority(1).inline(move |e| {
        a.push(format!("first {}", e.0));
        if e.0 < 2 {
            c.post(Ev(e.0 + 1));
        }
    });
    let a = l.clone();
    let _second = center
        .observer::<Ev>()
        .inline(move |e| a.push(format!("second {}", e.0)));
    center.post(Ev(0));
    assert_eq!(
        l.get(),
        [
            "first 0", "first 1", "first 2", "second 2", "second 1", "second 0"
        ]
    );
}

#[test]
fn a_nested_post_of_another_type_reaches_a_private_stream_before_the_outer_post_does() {
    // Private buffers (filtered) receive at their own turn: a nested post made by an observer
    // that runs before the stream is buffered first.
    let center = NotificationCenter::new();
    let c = center.clone();
    let _nester = center.observer::<Ev>().priority(1).inline(move |e| {
        if e.0 == 0 {
            c.post(Ev(1));
        }
    });
    let mut filtered = private_buffer(&center).stream();
    center.post(Ev(0));
    assert_eq!(drain(&mut filtered), ["1", "0"]);
}

#[test]
fn an_observer_subscribed_during_a_post_from_a_nested_post_is_not_called_by_the_outer_post() {
    let center = NotificationCenter::new();
    let calls = List::default();
    let cl = calls.clone();
    let (_adder, _added) = adder(&center, move |c| c.observe(cl.records(|e: &Ev| e.0)));
    center.post(Ev(0));
    center.post(Ev(1));
    assert_eq!(calls.get(), [1]);
}

#[test]
fn a_filtered_stream_subscribed_during_a_post_does_not_get_that_post() {
    let center = NotificationCenter::new();
    let (_adder, added) = adder(&center, |c| private_buffer(c).stream());
    let r0 = center.post(Ev(0));
    center.post(Ev(1));
    let mut late = added.pop().unwrap();
    assert_eq!(drain(&mut late), ["1"]);
    assert_eq!(r0.received, 1);
}

#[test]
fn a_cloned_stream_subscribed_during_a_post_behind_an_existing_one_does_not_get_that_post() {
    // The existing cloned stream comes *after* the adder, so the ring is written after the new
    // member joined: the generation must keep it out.
    let center = NotificationCenter::new();
    let (_adder, added) = adder(&center, |c| c.cloned_stream::<Ev>());
    let mut early = center.cloned_stream::<Ev>();
    center.post(Ev(0));
    center.post(Ev(1));
    let mut late = added.pop().unwrap();
    assert_eq!(drain(&mut early), ["0", "1"]);
    assert_eq!(drain(&mut late), ["1"]);
}

#[test]
fn an_observer_can_unsubscribe_itself_and_post_again_without_deadlock() {
    let center = NotificationCenter::new();
    let slot: List<Subscription> = List::default();
    let calls = Count::default();
    let (c, s, n) = (center.clone(), slot.clone(), calls.clone());
    let sub = center.observe(move |e: &Ev| {
        n.bump();
        if let Some(me) = s.pop() {
            me.unsubscribe();
        }
        if e.0 == 0 {
            c.post(Ev(1)); // must not reach this observer any more
        }
    });
    slot.push(sub);
    center.post(Ev(0));
    center.post(Ev(2));
    assert_eq!(calls.get(), 1);
    assert_eq!(center.stats::<Ev>().observers, 0);
}

#[test]
fn a_stream_dropped_mid_post_by_a_higher_priority_observer_is_not_counted_as_a_receiver() {
    let center = NotificationCenter::new();
    let (_dropper, holder) = dropper(&center);
    holder.push(private_buffer(&center).stream());
    let report = center.post(Ev(0));
    assert_eq!(report.received, 1, "only the dropper received it");
    assert_eq!(center.stats::<Ev>().observers, 1);
}

#[test]
fn a_ring_stream_dropped_mid_post_by_a_higher_priority_observer_is_not_counted() {
    let center = NotificationCenter::new();
    let (_dropper, holder) = dropper(&center);
    holder.push(center.stream::<Ev>());
    let mut keeper = center.stream::<Ev>();
    let report = center.post(Ev(0));
    assert_eq!(report.received, 2, "the dropper and the stream that stayed");
    assert_eq!(drain(&mut keeper), ["0"]);
}

// =============================================================================================
// Contract 3: quiescent unsubscribe
// =============================================================================================

#[test]
fn once_drop_returns_a_stream_observer_on_another_thread_gets_nothing_more() {
    let center = NotificationCenter::new();
    let poster = until_stopped(&center, 0.., |c, i| {
        c.post(Ev(i));
    });
    assert_quiet_after_drop(200, |mark| center.observe(move |_: &Ev| mark()));
    poster.stop();
}

#[test]
fn a_wildcard_unsubscribed_while_another_thread_posts_is_quiescent() {
    let center = NotificationCenter::new();
    let poster = until_stopped(&center, 0.., |c, i| {
        c.post(Ev(i));
        c.post(Other(i));
    });
    assert_quiet_after_drop(100, |mark| {
        center.observer::<Wildcard>().inline(move |_| mark())
    });
    poster.stop();
}

// =============================================================================================
// Contract 4: panics
// =============================================================================================

#[test]
fn two_panicking_observers_are_each_reported_with_their_ids_and_the_rest_run() {
    quiet_panics();
    let center = NotificationCenter::new();
    let reports = List::default();
    let _watch = center.observe(
        reports.records(|p: &ObserverPanicked| (p.notification, p.observer, p.message.clone())),
    );
    let ran = Count::default();
    let bad1 = center.observe(|_: &Ev| panic!("audit: one"));
    let _good = center.observe(ran.counts::<Ev>());
    let bad2 = center.observe(|e: &Ev| panic!("audit: two {}", e.0));
    let _good2 = center.observe(ran.counts::<Ev>());
    let report = center.post(Ev(7));
    assert_eq!((report.received, report.panicked), (2, 2));
    assert_eq!(ran.get(), 2);
    assert_eq!(
        reports.get(),
        [
            ("audit.ev", bad1.id(), "audit: one".to_string()),
            ("audit.ev", bad2.id(), "audit: two 7".to_string())
        ]
    );
    let stats = center.stats::<Ev>();
    assert_eq!((stats.panicked, stats.delivered, stats.dead), (2, 2, 0));
}

#[test]
fn a_post_whose_only_observer_panics_is_not_dead() {
    quiet_panics();
    let center = NotificationCenter::new();
    let dead = Count::default();
    let _watch = center.observe(dead.counts::<DeadNotification>());
    let _bad = center.observe(|_: &Ev| panic!("audit: only"));
    let report = center.post(Ev(0));
    assert!(!report.is_dead());
    assert_eq!(report.panicked, 1);
    assert_eq!(center.stats::<Ev>().dead, 0);
    assert_eq!(dead.get(), 0);
}

#[test]
fn a_panic_next_to_buffered_subscribers_is_isolated_and_counted() {
    quiet_panics();
    let center = NotificationCenter::new();
    let mut ring = center.stream::<Ev>();
    let _bad = center.observe(|_: &Ev| panic!("audit: amid streams"));
    let mut private = stream_with(center.observer(), drop_newest(4));
    let report = center.post(Ev(1));
    assert_eq!((report.received, report.panicked), (2, 1));
    assert_eq!(drain(&mut ring), ["1"]);
    assert_eq!(drain(&mut private), ["1"]);
    assert_eq!(center.stats::<Ev>().panicked, 1);
}

#[test]
fn propagate_unwinds_out_of_post_and_the_center_keeps_working() {
    quiet_panics();
    let center = propagating_center();
    let after = Count::default();
    let bad = center.observer::<Ev>().priority(1).inline(|e| {
        if e.0 == 0 {
            panic!("audit: propagate")
        }
    });
    let _after = center.observe(after.counts::<Ev>());
    let c = center.clone();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.post(Ev(0))));
    assert!(caught.is_err());
    assert_eq!(
        after.get(),
        0,
        "observers after the panicking one miss that post"
    );
    assert_eq!(center.post(Ev(1)).received, 2);
    drop(bad);
    assert_eq!(center.post(Ev(2)).received, 1);
    assert_eq!(after.get(), 2);
    assert_eq!(center.stats::<Ev>().panicked, 1);
}

#[tokio::test]
async fn a_spawned_handler_panic_is_reported_with_the_handler_id() {
    quiet_panics();
    let center = NotificationCenter::new();
    let reports = List::default();
    let _watch =
        center.observe(reports.records(|p: &ObserverPanicked| (p.notification, p.observer)));
    let handler = center.observer::<Ev>().spawn(|e: Arc<Ev>| async move {
        tokio::task::yield_now().await;
        if e.0 == 1 {
            panic!("audit: spawned");
        }
    });
    let id = handler.id();
    post_each(&center, 0..3);
    handler.drain().await;
    assert_eq!(reports.get(), [("audit.ev", id)]);
    assert_eq!(center.stats::<Ev>().panicked, 1);
}

#[tokio::test]
async fn propagate_resumes_a_concurrent_spawned_handler_panic_in_drain() {
    // SpawnedHandler docs: "Under PanicPolicy::Propagate the handler stops instead and the
    // panic resumes in its task; drain and unsubscribe_and_wait resume it in their caller."
    quiet_panics();
    let center = propagating_center();
    let handler = center.observer::<Ev>().spawn_with(
        SpawnOptions::new().concurrency(2),
        |_e: Arc<Ev>| async move {
            tokio::task::yield_now().await;
            panic!("audit: concurrent propagate");
        },
    );
    center.post(Ev(0));
    let drained = tokio::spawn(handler.drain()).await;
    assert!(
        drained.is_err() && drained.unwrap_err().is_panic(),
        "drain should resume the handler's panic under Propagate"
    );
}

#[tokio::test]
async fn propagate_resumes_a_sequential_spawned_handler_panic_in_drain() {
    quiet_panics();
    let center = propagating_center();
    let handler = center.observer::<Ev>().spawn(|_e: Arc<Ev>| async move {
        tokio::task::yield_now().await;
        panic!("audit: sequential propagate");
    });
    center.post(Ev(0));
    let drained = tokio::spawn(handler.drain()).await;
    assert!(drained.is_err() && drained.unwrap_err().is_panic());
}

// =============================================================================================
// Contract 5: every overflow policy
// =============================================================================================

fn received_and_dropped(
    center: &NotificationCenter,
    range: std::ops::Range<u32>,
) -> Vec<(u32, u32)> {
    range
        .map(|i| {
            let r = center.post(Ev(i));
            (r.received, r.dropped)
        })
        .collect()
}

#[test]
fn drop_oldest_capacity_one_on_the_ring_reports_exact_lag() {
    let center = NotificationCenter::new();
    let mut s = stream_with(center.observer(), drop_oldest(1));
    assert_eq!(s.capacity(), 1);
    let reports = received_and_dropped(&center, 0..4);
    assert_eq!(reports, [(1, 0), (1, 1), (1, 1), (1, 1)]);
    assert_eq!(drain(&mut s), ["lag 3", "3"]);
    let st = s.stats();
    assert_eq!((st.delivered, st.dropped, st.depth), (1, 3, 0));
    let t = center.stats::<Ev>();
    assert_eq!((t.posted, t.delivered, t.dropped, t.dead), (4, 1, 3, 0));
}

#[test]
fn drop_oldest_capacity_zero_is_treated_as_one() {
    let center = NotificationCenter::new();
    let mut s = stream_with(center.observer(), drop_oldest(0));
    assert_eq!(s.capacity(), 1);
    center.post(Ev(1));
    center.post(Ev(2));
    assert_eq!(drain(&mut s), ["lag 1", "2"]);
}

#[test]
fn drop_oldest_capacity_one_in_a_private_buffer_reports_exact_lag() {
    let center = NotificationCenter::new();
    let mut s = stream_with(private_buffer(&center), drop_oldest(1));
    let reports = received_and_dropped(&center, 0..4);
    assert_eq!(reports, [(1, 0), (1, 1), (1, 1), (1, 1)]);
    assert_eq!(drain(&mut s), ["lag 3", "3"]);
    let st = s.stats();
    assert_eq!((st.delivered, st.dropped, st.depth), (1, 3, 0));
    assert_eq!(center.stats::<Ev>().dropped, 3);
}

#[test]
fn drop_oldest_private_buffer_with_a_filter_counts_only_passing_values() {
    let center = NotificationCenter::new();
    let even = center.observer::<Ev>().filter(|e| e.0 % 2 == 0);
    let mut s = stream_with(even, drop_oldest(2));
    post_each(&center, 0..10);
    // Even values 0,2,4,6,8: the newest two kept, three lost.
    assert_eq!(drain(&mut s), ["lag 3", "6", "8"]);
    assert_eq!(s.stats().dropped, 3);
}

#[test]
fn drop_oldest_lag_then_more_lag_accumulates_until_received() {
    let center = NotificationCenter::new();
    let mut s = stream_with(center.observer(), drop_oldest(2));
    post_each(&center, 0..5);
    assert_eq!(s.try_recv().unwrap_err(), TryRecvError::Lagged(3));
    assert_eq!(s.try_recv().unwrap().0, 3);
    post_each(&center, 5..9);
    // Held: 4 (then 5..8 posted): 4,5,6 lost, 7 and 8 kept.
    assert_eq!(drain(&mut s), ["lag 3", "7", "8"]);
    assert_eq!(s.stats().dropped, 6);
}

#[test]
fn drop_newest_capacity_one_keeps_the_oldest_and_reports_the_gap_after_it() {
    let center = NotificationCenter::new();
    let mut s = stream_with(center.observer(), drop_newest(1));
    let reports = received_and_dropped(&center, 0..4);
    assert_eq!(reports, [(1, 0), (0, 1), (0, 1), (0, 1)]);
    assert_eq!(drain(&mut s), ["0", "lag 3"]);
    center.post(Ev(9));
    assert_eq!(drain(&mut s), ["9"]);
    let st = s.stats();
    assert_eq!((st.delivered, st.dropped), (2, 3));
    let t = center.stats::<Ev>();
    assert_eq!((t.posted, t.dropped, t.dead), (5, 3, 0));
}

#[test]
fn drop_newest_two_gaps_are_reported_each_at_its_place() {
    let center = NotificationCenter::new();
    let mut s = stream_with(center.observer(), drop_newest(2));
    center.post(Ev(0));
    center.post(Ev(1));
    center.post(Ev(2)); // refused
    assert_eq!(s.try_recv().unwrap().0, 0);
    center.post(Ev(3)); // accepted after the gap
    center.post(Ev(4)); // refused
    center.post(Ev(5)); // refused
    assert_eq!(drain(&mut s), ["1", "lag 1", "3", "lag 2"]);
}

#[test]
fn drop_newest_gap_in_a_large_buffer_with_batches_is_exact() {
    let center = NotificationCenter::new();
    let mut s = stream_with(center.observer(), drop_newest(8));
    post_each(&center, 0..8);
    assert_eq!(s.try_recv().unwrap().0, 0); // takes a batch into its hand
    center.post(Ev(8)); // room for one
    center.post(Ev(9)); // refused
    center.post(Ev(10)); // refused
    let mut expect: Vec<String> = (1..=8).map(|i| i.to_string()).collect();
    expect.push("lag 2".into());
    assert_eq!(drain(&mut s), expect);
    center.post(Ev(11));
    assert_eq!(drain(&mut s), ["11"]);
}

#[test]
fn recv_blocking_reports_a_drop_newest_gap_without_blocking() {
    let center = NotificationCenter::new();
    let mut s = stream_with(center.observer(), drop_newest(1));
    center.post(Ev(0));
    center.post(Ev(1));
    assert_eq!(s.recv_blocking().unwrap().0, 0);
    assert_eq!(s.recv_blocking().unwrap_err(), RecvError::Lagged(1));
}

#[test]
fn latest_on_the_ring_and_in_a_private_buffer_keep_only_the_newest_silently() {
    let center = NotificationCenter::new();
    let mut ring = center.observer::<Ev>().policy(Overflow::Latest).stream();
    let mut private = stream_with(private_buffer(&center), Overflow::Latest);
    let reports = received_and_dropped(&center, 0..3);
    assert_eq!(reports, [(2, 0), (2, 2), (2, 2)]);
    assert_eq!(drain(&mut ring), ["2"]);
    assert_eq!(drain(&mut private), ["2"]);
    assert_eq!(delivered_and_dropped(ring.stats()), (1, 2));
    assert_eq!(delivered_and_dropped(private.stats()), (1, 2));
    assert_eq!(center.stats::<Ev>().dropped, 4);
}

#[test]
fn latest_recv_blocking_in_a_private_buffer_gets_the_newest() {
    let center = NotificationCenter::new();
    let one = center.observer().sender(SenderId::from_raw(1));
    let mut s = stream_with(one, Overflow::Latest);
    for i in 0..3 {
        center.post_from(SenderId::from_raw(1), Ev(i));
    }
    assert_eq!(s.recv_blocking().unwrap().0, 2);
    assert!(s.try_recv().unwrap_err().is_empty());
}

#[test]
fn coalesce_by_key_capacity_one() {
    let center = NotificationCenter::new();
    let mut s = stream_with(
        center.observer(),
        Overflow::coalesce_by_key(1, |e: &Ev| e.0 / 10),
    );
    assert_eq!(s.capacity(), 1);
    let r1 = center.post(Ev(10));
    let r2 = center.post(Ev(11)); // same key: replaces
    assert_eq!((r1.received, r1.dropped), (1, 0));
    assert_eq!((r2.received, r2.dropped), (1, 1));
    assert_eq!(drain(&mut s), ["11"]);
    center.post(Ev(20));
    center.post(Ev(30)); // another key into a full buffer: evicts 20, reported as lag
    assert_eq!(drain(&mut s), ["lag 1", "30"]);
    let st = s.stats();
    assert_eq!((st.delivered, st.dropped), (2, 2));
    assert_eq!(center.stats::<Ev>().dropped, 2);
}

#[test]
fn coalesce_by_key_keeps_the_first_place_of_each_key() {
    let center = NotificationCenter::new();
    let mut s = stream_with(
        center.observer(),
        Overflow::coalesce_by_key(8, |e: &Ev| e.0 % 3),
    );
    post_each(&center, [0, 1, 2, 3, 4, 6]);
    // keys: 0 -> 6 (first at place 0), 1 -> 4 (place 1), 2 -> 2 (place 2).
    assert_eq!(drain(&mut s), ["6", "4", "2"]);
    assert_eq!(s.stats().dropped, 3);
}

#[test]
fn backpressure_capacity_one_sync_post_reports_full_and_counts_everywhere() {
    let center = NotificationCenter::new();
    let mut s = stream_with(center.observer(), backpressure(1));
    let r1 = center.post(Ev(1));
    let r2 = center.post(Ev(2));
    let r3 = center.post(Ev(3));
    assert_eq!((r1.received, r1.dropped, r1.full), (1, 0, 0));
    assert_eq!((r2.received, r2.dropped, r2.full), (0, 1, 1));
    assert_eq!((r3.received, r3.dropped, r3.full), (0, 1, 1));
    assert!(!r2.is_dead());
    assert_eq!(drain(&mut s), ["1"]);
    let st = s.stats();
    assert_eq!((st.delivered, st.dropped), (1, 2));
    let t = center.stats::<Ev>();
    assert_eq!((t.posted, t.delivered, t.dropped, t.dead), (3, 1, 2, 0));
}

#[tokio::test(start_paused = true)]
async fn backpressure_post_async_report_counts_the_waited_subscriber_as_received() {
    let center = NotificationCenter::new();
    let mut s = stream_with(center.observer(), backpressure(1));
    let _inline = center.observe(|_: &Ev| {});
    center.post_async(Ev(1)).await;
    let waiting = post_async_in_task(&center, Ev(2));
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(!waiting.is_finished(), "post_async waits for room");
    assert_eq!(s.recv().await.unwrap().0, 1);
    let report = waiting.await.unwrap();
    assert_eq!((report.received, report.dropped, report.full), (2, 0, 0));
    assert_eq!(s.recv().await.unwrap().0, 2);
    let t = center.stats::<Ev>();
    assert_eq!((t.posted, t.dropped), (2, 0));
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_post_async_counts_the_value_as_dropped() {
    let center = NotificationCenter::new();
    let mut s = stream_with(center.observer(), backpressure(1));
    center.post(Ev(1));
    let r = tokio::time::timeout(Duration::from_millis(10), center.post_async(Ev(2))).await;
    assert!(r.is_err(), "timed out while waiting");
    assert_eq!(drain(&mut s), ["1"]);
    assert_eq!(s.stats().dropped, 1);
    assert_eq!(center.stats::<Ev>().dropped, 1);
    let st = s.stats();
    assert_eq!(st.delivered + st.dropped, 2);
}

#[tokio::test(start_paused = true)]
async fn post_async_waits_for_two_full_backpressure_streams() {
    let center = NotificationCenter::new();
    let mut a = stream_with(center.observer(), backpressure(1));
    let mut b = stream_with(center.observer(), backpressure(1));
    center.post(Ev(1));
    let waiting = post_async_in_task(&center, Ev(2));
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(a.recv().await.unwrap().0, 1);
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(!waiting.is_finished());
    assert_eq!(b.recv().await.unwrap().0, 1);
    let report = waiting.await.unwrap();
    assert_eq!((report.received, report.dropped), (2, 0));
    assert_eq!(a.recv().await.unwrap().0, 2);
    assert_eq!(b.recv().await.unwrap().0, 2);
}

#[test]
fn lagged_totals_agree_with_policy_counters_under_many_posting_threads() {
    for policy in [drop_oldest(4), drop_newest(4)] {
        let center = NotificationCenter::new();
        let mut s = center.observer::<Ev>().policy(policy).stream();
        let per = 2_000u32;
        let posters = on_threads(&center, 4, move |c, _| {
            let mut dropped = 0u64;
            for i in 0..per {
                dropped += u64::from(c.post(Ev(i)).dropped);
            }
            dropped
        });
        let (mut got, mut lag) = (0u64, 0u64);
        let mut reported = 0u64;
        let mut pending = posters;
        loop {
            match s.try_recv() {
                Ok(_) => got += 1,
                Err(TryRecvError::Lagged(n)) => lag += n,
                Err(TryRecvError::Empty) => {
                    if pending.is_empty() {
                        break;
                    }
                    if pending.iter().all(|h| h.is_finished()) {
                        reported += join_all(std::mem::take(&mut pending))
                            .into_iter()
                            .sum::<u64>();
                    } else {
                        thread::yield_now();
                    }
                }
                Err(TryRecvError::Closed) => unreachable!(),
            }
        }
        let total = 4 * u64::from(per);
        assert_eq!(got + lag, total);
        assert_eq!(lag, reported, "Lagged sum == sum of PostReport::dropped");
        assert_eq!(lag, center.stats::<Ev>().dropped);
        assert_eq!(lag, s.stats().dropped);
        assert_eq!(got, s.stats().delivered);
    }
}

#[test]
fn a_stream_that_lags_then_is_unsubscribed_still_reports_the_lag_then_closed() {
    let center = NotificationCenter::new();
    let mut s = stream_with(center.observer(), drop_oldest(2));
    post_each(&center, 0..5);
    s.unsubscribe();
    center.post(Ev(99));
    assert_eq!(drain(&mut s), ["lag 3", "3", "4", "closed"]);
}

#[test]
fn an_unsubscribed_ring_stream_keeps_its_buffered_values_while_the_ring_goes_on() {
    // NotificationStream::unsubscribe: "values already buffered can still be received; then
    // recv reports Closed".
    let center = NotificationCenter::new();
    let mut leaving = stream_with(center.observer(), drop_oldest(2));
    let mut staying = stream_with(center.observer(), drop_oldest(2));
    center.post(Ev(0));
    center.post(Ev(1));
    leaving.unsubscribe();
    post_each(&center, 2..6);
    assert_eq!(drain(&mut leaving), ["0", "1", "closed"]);
    assert_eq!(drain(&mut staying), ["lag 4", "4", "5"]);
}

#[test]
fn buffer_stats_report_depth_and_capacity_for_each_policy() {
    let center = NotificationCenter::new();
    let _a = stream_with(center.observer(), drop_oldest(3));
    let _b = stream_with(center.observer(), drop_newest(5));
    let _c = center.observer::<Ev>().policy(Overflow::Latest).stream();
    let _d = stream_with(center.observer(), backpressure(2));
    let _e = stream_with(
        center.observer(),
        Overflow::coalesce_by_key(4, |e: &Ev| e.0),
    );
    post_each(&center, 0..4);
    let stats = center.stats::<Ev>();
    let by_cap: Vec<(usize, usize)> = stats
        .buffers
        .iter()
        .map(|b| (b.capacity, b.depth))
        .collect();
    assert_eq!(by_cap, [(3, 3), (5, 4), (1, 1), (2, 2), (4, 4)]);
    // Each buffered subscriber: delivered (0 so far) + depth + dropped == posts.
    for b in &stats.buffers {
        assert_eq!(b.delivered + b.depth as u64 + b.dropped, 4, "{b:?}");
    }
}

// =============================================================================================
// Contract 6: replay_last
// =============================================================================================

#[test]
fn replay_last_via_retain_last_for_every_stream_kind() {
    let center = retaining(Ev(5));
    let mut ring = center.observer::<Ev>().replay_last().stream();
    let mut private = stream_with(center.observer().replay_last(), drop_newest(2));
    let mut cloned = center.observer::<Ev>().replay_last().cloned_stream();
    let mut bp = stream_with(center.observer().replay_last(), backpressure(1));
    center.post(Ev(6));
    assert_eq!(drain(&mut ring), ["5", "6"]);
    assert_eq!(drain(&mut private), ["5", "6"]);
    assert_eq!(drain(&mut cloned), ["5", "6"]);
    assert_eq!(drain(&mut bp), ["5"]); // full at 6: capacity 1
}

#[test]
fn replay_last_inline_with_sender_gets_the_sender_that_posted() {
    let center = NotificationCenter::new();
    center.retain_last::<Ev>();
    let who = SenderId::new();
    center.post_from(who, Ev(1));
    let seen = List::default();
    let s = seen.clone();
    let _sub = center
        .observer::<Ev>()
        .replay_last()
        .inline_with_sender(move |e, sender| s.push((e.0, sender)));
    assert_eq!(seen.get(), [(1, Some(who))]);
}

#[test]
fn replay_last_per_sender_after_forget_last_replays_nothing_but_others_still_replay() {
    let center = NotificationCenter::new();
    center.retain_last::<Ev>();
    let (a, b) = (SenderId::new(), SenderId::new());
    center.post_from(a, Ev(1));
    center.post_from(b, Ev(2));
    center.forget_last::<Ev>(a);
    let mut from_a = center.observer::<Ev>().sender(a).replay_last().stream();
    let mut from_b = center.observer::<Ev>().sender(b).replay_last().stream();
    let mut any = center.observer::<Ev>().replay_last().stream();
    assert_eq!(drain(&mut from_a), Vec::<String>::new());
    assert_eq!(drain(&mut from_b), ["2"]);
    assert_eq!(drain(&mut any), ["2"]);
}

#[test]
fn replay_last_is_not_given_a_sender_less_post_to_a_sender_filtered_subscriber() {
    let center = NotificationCenter::new();
    center.retain_last::<Ev>();
    let a = SenderId::new();
    center.post_from(a, Ev(1));
    center.post(Ev(2)); // no sender: the last overall, not a's
    let mut from_a = center.observer::<Ev>().sender(a).replay_last().stream();
    let mut any = center.observer::<Ev>().replay_last().stream();
    assert_eq!(drain(&mut from_a), ["1"]);
    assert_eq!(drain(&mut any), ["2"]);
}

#[test]
fn first_replay_last_subscription_turns_retention_on_and_survives_unsubscribe() {
    let center = NotificationCenter::new();
    center.post(Ev(0)); // before retention: not kept
    let first = center.observer::<Ev>().replay_last().stream();
    drop(first);
    center.post(Ev(1));
    let mut second = center.observer::<Ev>().replay_last().stream();
    assert_eq!(drain(&mut second), ["1"]);
}

#[test]
fn replay_last_races_posts_from_another_thread_without_loss_or_duplicates() {
    let center = NotificationCenter::new();
    center.retain_last::<Ev>();
    // At most 1000 posts: below the default capacity, so no stream can lag.
    let poster = until_stopped(&center, 0..1000, |c, i| {
        c.post(Ev(i));
        if (i + 1) % 16 == 0 {
            thread::yield_now();
        }
    });
    let mut streams = Vec::new();
    for _ in 0..50 {
        streams.push(private_buffer(&center).replay_last().stream());
        thread::sleep(Duration::from_micros(50));
    }
    poster.stop();
    for s in &mut streams {
        let mut prev: Option<u32> = None;
        loop {
            match s.try_recv() {
                Ok(v) => {
                    if let Some(p) = prev {
                        assert_eq!(v.0, p + 1, "contiguous, no duplicate, no gap");
                    }
                    prev = Some(v.0);
                }
                Err(TryRecvError::Lagged(_)) => panic!("buffer is large enough"),
                Err(_) => break,
            }
        }
    }
}

// =============================================================================================
// Contract 7: dead notifications
// =============================================================================================

#[test]
fn a_post_refused_by_every_filter_is_dead_and_reported_with_its_sender() {
    let center = NotificationCenter::new();
    let dead = List::default();
    let _watch = center.observe(dead.records(|n: &DeadNotification| (n.notification, n.sender)));
    let (a, b) = (SenderId::new(), SenderId::new());
    let _only_a = center.observer::<Ev>().sender(a).inline(|_| {});
    let _odd = center.observer::<Ev>().filter(|e| e.0 % 2 == 1).stream();
    let r = center.post_from(b, Ev(2));
    assert!(r.is_dead());
    assert_eq!(r, PostReport::default());
    assert_eq!(dead.get(), [("audit.ev", Some(b))]);
    assert_eq!(center.stats::<Ev>().dead, 1);
}

#[test]
fn posts_with_no_observer_at_all_are_counted_dead_from_many_threads() {
    let center = NotificationCenter::new();
    join_all(on_threads(&center, 4, |c, _| {
        for i in 0..250 {
            assert!(c.post(Ev(i)).is_dead());
        }
    }));
    let s = center.stats::<Ev>();
    assert_eq!((s.posted, s.dead, s.delivered), (1000, 1000, 0));
}

#[test]
fn a_post_reaching_only_a_closed_or_lagging_ring_is_not_dead() {
    let center = NotificationCenter::new();
    let _s = stream_with(center.observer(), drop_oldest(1));
    assert!(!center.post(Ev(0)).is_dead());
    assert!(!center.post(Ev(1)).is_dead());
    assert_eq!(center.stats::<Ev>().dead, 0);
}

#[test]
fn a_post_only_a_wildcard_sees_is_not_dead() {
    let center = NotificationCenter::new();
    let _all = center
        .observer::<Wildcard>()
        .family("audit.")
        .inline(|_| {});
    assert!(!center.post(Ev(0)).is_dead());
    assert!(center.post(Elsewhere(0)).is_dead());
    assert_eq!(center.stats::<Ev>().dead, 0);
    assert_eq!(center.stats::<Elsewhere>().dead, 1);
}

#[test]
fn poster_posts_are_counted_like_center_posts() {
    let center = NotificationCenter::new();
    let poster = center.poster::<Ev>();
    poster.post(Ev(0));
    let _sub = center.observe(|_: &Ev| {});
    poster.post(Ev(1));
    center.post(Ev(2));
    let s = center.stats::<Ev>();
    assert_eq!((s.posted, s.delivered, s.dead), (3, 2, 1));
    assert_eq!(poster.stats(), s);
}

// =============================================================================================
// Contract 8: sender filter
// =============================================================================================

#[test]
fn sender_filter_applies_to_every_stream_kind_and_inline() {
    let center = NotificationCenter::new();
    let (a, b) = (SenderId::new(), SenderId::new());
    let rec = center.observer::<Ev>().sender(a).record();
    let mut s = center.observer::<Ev>().sender(a).stream();
    let mut cl = center.observer::<Ev>().sender(a).cloned_stream();
    center.post_from(b, Ev(1));
    center.post(Ev(2));
    center.post_from(a, Ev(3));
    rec.assert_values(&[Ev(3)]);
    assert_eq!(drain(&mut s), ["3"]);
    assert_eq!(drain(&mut cl), ["3"]);
}

#[test]
fn sender_of_arc_and_from_raw_identify_the_same_sender_consistently() {
    let center = NotificationCenter::new();
    let obj = Arc::new(5u8);
    let id = SenderId::of(&obj);
    let rec = center.observer::<Ev>().sender(id).record();
    center.post_from(SenderId::of(&obj.clone()), Ev(1));
    center.post_from(SenderId::from_raw(id.as_raw()), Ev(2));
    rec.assert_values(&[Ev(1), Ev(2)]);
}

// =============================================================================================
// Contract 9: wildcard and family
// =============================================================================================

#[test]
fn a_family_observer_sees_types_created_after_it_and_not_others() {
    let center = NotificationCenter::new();
    let all = AllRecorder::family(&center, "audit.");
    center.post(Ev(1));
    center.post(Elsewhere(1));
    center.post(Other(1));
    assert_eq!(all.names(), ["audit.ev", "audit.other"]);
}

#[test]
fn a_wildcard_sender_filter_and_downcast() {
    let center = NotificationCenter::new();
    let who = SenderId::new();
    let seen = List::default();
    let s = seen.clone();
    let _w = center.observer::<Wildcard>().sender(who).inline(move |n| {
        s.push((
            n.name(),
            n.downcast_ref::<Ev>().map(|e| e.0),
            n.is::<Other>(),
        ))
    });
    center.post(Ev(1));
    center.post_from(who, Ev(2));
    center.post_from(who, Other(3));
    center.post_from(SenderId::new(), Other(4));
    assert_eq!(
        seen.get(),
        [("audit.ev", Some(2), false), ("audit.other", None, true)]
    );
}

#[test]
fn wildcard_observers_interleave_by_priority_with_typed_ones_on_a_type_created_later() {
    let center = NotificationCenter::new();
    let l = Log::default();
    let _w = center
        .observer::<Wildcard>()
        .priority(1)
        .inline(l.logs_any("wild p1"));
    let _w0 = center.observer::<Wildcard>().inline(l.logs_any("wild p0"));
    let _t = center
        .observer::<Other>()
        .priority(2)
        .inline(l.logs("typed p2"));
    let _t0 = center.observer::<Other>().inline(l.logs("typed p0"));
    center.post(Other(0));
    assert_eq!(l.get(), ["typed p2", "wild p1", "wild p0", "typed p0"]);
}

#[test]
fn a_wildcard_filter_panic_is_isolated() {
    quiet_panics();
    let center = NotificationCenter::new();
    let _bad = center
        .observer::<Wildcard>()
        .filter(|_| panic!("audit: wild filter"))
        .inline(|_| {});
    let rec = Recorder::<Ev>::new(&center);
    let r = center.post(Ev(1));
    assert_eq!((r.received, r.panicked), (1, 1));
    rec.assert_count(1);
}

#[test]
fn a_wildcard_weak_observer_expires_from_every_type() {
    let center = NotificationCenter::new();
    let target = Arc::new(());
    let calls = Count::default();
    let c = calls.clone();
    center
        .observer::<Wildcard>()
        .weak(&target, move |_, _| c.bump())
        .detach();
    center.post(Ev(0));
    center.post(Other(0));
    assert_eq!(calls.get(), 2);
    drop(target);
    center.post(Ev(1));
    assert_eq!(center.stats::<Ev>().observers, 0);
    assert_eq!(center.stats::<Other>().observers, 0);
    center.post(Elsewhere(0));
    assert_eq!(center.stats::<Elsewhere>().observers, 0);
    assert_eq!(calls.get(), 2);
}

// =============================================================================================
// Streams
// =============================================================================================

#[tokio::test]
async fn futures_stream_yields_values_lag_then_ends_after_unsubscribe() {
    let center = NotificationCenter::new();
    let mut s = stream_with(center.observer(), drop_oldest(2));
    post_each(&center, 0..4);
    s.unsubscribe();
    let items: Vec<String> = s
        .map(|r| match r {
            Ok(v) => v.0.to_string(),
            Err(herald::Lagged(n)) => format!("lag {n}"),
        })
        .collect()
        .await;
    assert_eq!(items, ["lag 2", "2", "3"]);
}

#[tokio::test]
async fn recv_on_a_private_stream_is_woken_by_a_post_from_another_thread() {
    let center = NotificationCenter::new();
    let mut s = stream_with(center.observer(), drop_newest(4));
    let c = center.clone();
    let t = after_ms(10, move || {
        c.post(Ev(3));
    });
    let v = tokio::time::timeout(Duration::from_secs(10), s.recv())
        .await
        .expect("woken")
        .unwrap();
    assert_eq!(v.0, 3);
    t.join().unwrap();
}

#[test]
fn recv_blocking_on_a_private_stream_returns_closed_when_the_center_drops() {
    let center = NotificationCenter::new();
    let mut s = stream_with(center.observer(), drop_newest(4));
    center.post(Ev(1));
    let t = after_ms(10, move || drop(center));
    assert_eq!(s.recv_blocking().unwrap().0, 1);
    assert_eq!(s.recv_blocking().unwrap_err(), RecvError::Closed);
    t.join().unwrap();
}

#[test]
fn dropping_the_center_closes_streams_even_after_many_types_were_created() {
    let center = NotificationCenter::new();
    let (mut ring, mut private) = ring_and_private(&center);
    center.post(Ev(1));
    // Make the center's type map grow (and its old versions be retired).
    macro_rules! types {
        ($($t:ident),*) => {$(
            struct $t;
            impl Notification for $t {}
            center.post($t);
        )*};
    }
    types!(T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12);
    let _sub = center.observe(|_: &Other| {});
    drop(_sub);
    drop(center);
    assert_eq!(drain(&mut ring), ["1", "closed"]);
    assert_eq!(drain(&mut private), ["1", "closed"]);
}

#[test]
fn is_closed_and_len_of_a_private_stream_after_unsubscribe() {
    let center = NotificationCenter::new();
    let mut s = stream_with(center.observer(), drop_newest(4));
    center.post(Ev(1));
    center.post(Ev(2));
    s.unsubscribe();
    assert!(s.is_closed());
    assert_eq!(s.len(), 2);
    center.post(Ev(3));
    assert_eq!(drain(&mut s), ["1", "2", "closed"]);
    assert_eq!(center.stats::<Ev>().observers, 0);
}

#[test]
fn a_stream_with_zero_receivers_reading_holds_at_most_its_capacity() {
    let center = NotificationCenter::new();
    let s = stream_with(center.observer(), drop_oldest(16));
    post_each(&center, 0..1000);
    assert_eq!(s.len(), 16);
    assert_eq!(s.stats().depth, 16);
    assert_eq!(s.stats().dropped, 984);
}

// =============================================================================================
// ClonedStream parity with NotificationStream
// =============================================================================================

#[test]
fn cloned_stream_capacity_one_lag_matches_notification_stream() {
    let center = NotificationCenter::new();
    let mut a = stream_with(center.observer(), drop_oldest(1));
    let mut b = cloned_with(center.observer(), drop_oldest(1));
    let reports = received_and_dropped(&center, 0..4);
    assert_eq!(reports, [(2, 0), (2, 2), (2, 2), (2, 2)]);
    assert_eq!(drain(&mut a), drain(&mut b));
    assert_eq!(a.stats().dropped, b.stats().dropped);
    assert_eq!(a.stats().delivered, b.stats().delivered);
}

#[tokio::test(start_paused = true)]
async fn cloned_stream_backpressure_makes_post_async_wait() {
    let center = NotificationCenter::new();
    let mut s = cloned_with(center.observer(), backpressure(1));
    center.post_async(Ev(1)).await;
    let waiting = post_async_in_task(&center, Ev(2));
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(!waiting.is_finished());
    assert_eq!(s.recv().await.unwrap(), Ev(1));
    assert_eq!(waiting.await.unwrap().received, 1);
    assert_eq!(s.recv().await.unwrap(), Ev(2));
}

#[test]
fn cloned_stream_recv_blocking_and_futures_stream() {
    let center = NotificationCenter::new();
    let mut s = center.cloned_stream::<Ev>();
    let c = center.clone();
    let t = after_ms(5, move || {
        c.post(Ev(4));
    });
    assert_eq!(s.recv_blocking().unwrap(), Ev(4));
    t.join().unwrap();
    center.post(Ev(5));
    s.unsubscribe();
    let items: Vec<_> = futures::executor::block_on(s.collect::<Vec<_>>());
    assert_eq!(items, [Ok(Ev(5))]);
}

#[test]
fn cloned_stream_closes_when_the_center_drops() {
    let center = NotificationCenter::new();
    let mut s = center.cloned_stream::<Ev>();
    let mut f = private_buffer(&center).cloned_stream();
    center.post(Ev(1));
    drop(center);
    assert_eq!(drain(&mut s), ["1", "closed"]);
    assert_eq!(drain(&mut f), ["1", "closed"]);
}

// =============================================================================================
// Spawned handlers
// =============================================================================================

#[tokio::test(start_paused = true)]
async fn spawned_handler_runs_one_call_at_a_time_in_post_order_even_with_awaits() {
    let center = NotificationCenter::new();
    let seen = List::default();
    let gauge = Gauge::default();
    let h = center.observer::<Ev>().spawn(with_state(
        (seen.clone(), gauge.clone()),
        |e, (s, g)| async move {
            g.enter();
            tokio::time::sleep(Duration::from_millis(u64::from(10 - e.0))).await;
            s.push(e.0);
            g.leave();
        },
    ));
    post_each(&center, 0..10);
    h.drain().await;
    assert_eq!(seen.get(), (0..10).collect::<Vec<_>>());
    assert_eq!(gauge.max(), 1);
}

#[tokio::test(start_paused = true)]
async fn spawned_handler_concurrency_limit_is_reached_and_never_exceeded() {
    let center = NotificationCenter::new();
    let gauge = Gauge::default();
    let done = Count::default();
    let h = center.observer::<Ev>().spawn_with(
        SpawnOptions::new().concurrency(3),
        with_state((gauge.clone(), done.clone()), |_e, (g, d)| async move {
            g.enter();
            tokio::time::sleep(Duration::from_millis(10)).await;
            g.leave();
            d.bump();
        }),
    );
    post_each(&center, 0..10);
    h.drain().await;
    assert_eq!(done.get(), 10, "drain returns once the last call finished");
    assert_eq!(gauge.max(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_spawned_handler_never_starts_again_and_discards_its_buffer() {
    let center = NotificationCenter::new();
    let started = List::default();
    let s = started.clone();
    let h = center.observer::<Ev>().spawn(move |e: Arc<Ev>| {
        s.push(e.0);
        async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    post_each(&center, 0..5);
    tokio::time::sleep(Duration::from_millis(1)).await; // the first call starts
    drop(h);
    let at_drop = started.len();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(started.len(), at_drop);
    assert_eq!(at_drop, 1);
    assert_eq!(center.post(Ev(9)).received, 0);
}

#[tokio::test(start_paused = true)]
async fn drain_on_drop_handles_the_buffer_in_the_background() {
    let center = NotificationCenter::new();
    let seen = List::default();
    let h = center.observer::<Ev>().spawn_with(
        SpawnOptions::new().drain_on_drop(true),
        with_state(seen.clone(), |e, s| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            s.push(e.0);
        }),
    );
    post_each(&center, 0..4);
    drop(h);
    assert_eq!(center.post(Ev(9)).received, 0);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(seen.get(), [0, 1, 2, 3]);
}

#[tokio::test(start_paused = true)]
async fn spawned_handler_stats_track_deliveries_and_overflow() {
    let center = NotificationCenter::new();
    let seen = List::default();
    let h = center
        .observer::<Ev>()
        .policy(drop_newest(2))
        .spawn(with_state(seen.clone(), |e, s| async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            s.push(e.0);
        }));
    center.post(Ev(0));
    tokio::time::sleep(Duration::from_millis(1)).await; // the task takes Ev(0)
    post_each(&center, 1..6);
    let st = h.stats();
    assert_eq!(st.capacity, 2);
    assert_eq!((st.delivered, st.depth as u64, st.dropped), (1, 2, 3));
    h.drain().await;
    assert_eq!(seen.get(), [0, 1, 2]);
    let t = center.stats::<Ev>();
    assert_eq!((t.posted, t.delivered, t.dropped), (6, 3, 3));
}

// =============================================================================================
// NotificationQueue
// =============================================================================================

#[test]
fn queue_by_type_coalescing_carries_the_last_value_and_its_sender() {
    let center = NotificationCenter::new();
    let (a, b) = (SenderId::new(), SenderId::new());
    let from_b = center.observer::<Ev>().sender(b).record();
    let all = Recorder::<Ev>::new(&center);
    let q = NotificationQueue::new(&center);
    q.enqueue_from_with(a, Ev(1), PostingStyle::Asap, Coalescing::ByType);
    assert_eq!(
        q.enqueue_from_with(b, Ev(2), PostingStyle::Asap, Coalescing::ByType),
        Enqueued::Coalesced
    );
    assert_eq!(q.flush(), 1);
    all.assert_values(&[Ev(2)]);
    from_b.assert_values(&[Ev(2)]);
}

#[test]
fn queue_now_merges_with_the_pending_entry_then_posts() {
    let center = NotificationCenter::new();
    let rec = Recorder::<Ev>::new(&center);
    let q = NotificationQueue::builder(&center)
        .merge(|p: &Ev, n: Ev| Ev(p.0 + n.0))
        .build();
    q.enqueue(Ev(2));
    q.enqueue(Ev(3));
    let r = q.enqueue_with(Ev(4), PostingStyle::Now, Coalescing::default());
    assert!(matches!(r, Enqueued::Posted(rep) if rep.received == 1));
    rec.assert_values(&[Ev(9)]);
    assert!(q.is_empty());
    assert_eq!(q.flush(), 0);
    let s = q.stats();
    assert_eq!((s.enqueued, s.coalesced, s.posted, s.pending), (3, 2, 1, 0));
}

#[test]
fn queue_asap_from_a_nested_post_is_posted_after_the_outermost_post_ends() {
    let center = NotificationCenter::new();
    let q = NotificationQueue::new(&center);
    let l = Log::default();
    let (qq, a, c) = (q.clone(), l.clone(), center.clone());
    let _outer = center.observe(move |e: &Ev| {
        a.push(format!("ev {}", e.0));
        if e.0 == 0 {
            c.post(Ev(1)); // nested
        } else {
            qq.enqueue(Other(e.0));
        }
    });
    let a = l.clone();
    let _other = center.observe(move |o: &Other| a.push(format!("other {}", o.0)));
    center.post(Ev(0));
    assert_eq!(l.get(), ["ev 0", "ev 1", "other 1"]);
    drop(_outer);
}

#[tokio::test(start_paused = true)]
async fn queue_when_idle_waits_for_the_quiet_period_with_paused_time() {
    let center = NotificationCenter::new();
    let rec = Recorder::<Ev>::new(&center);
    let q = NotificationQueue::builder(&center)
        .idle_after(Duration::from_millis(20))
        .build();
    q.enqueue_with(Ev(1), PostingStyle::WhenIdle, Coalescing::None);
    tokio::time::sleep(Duration::from_millis(15)).await;
    q.enqueue_with(Ev(2), PostingStyle::WhenIdle, Coalescing::None);
    tokio::time::sleep(Duration::from_millis(15)).await;
    rec.assert_count(0);
    tokio::time::sleep(Duration::from_millis(10)).await;
    rec.assert_values(&[Ev(1), Ev(2)]);
    drop(q);
}

#[tokio::test(start_paused = true)]
async fn queue_asap_outside_a_post_goes_out_on_the_next_tick() {
    let center = NotificationCenter::new();
    let rec = Recorder::<Ev>::new(&center);
    let q = NotificationQueue::new(&center);
    q.enqueue(Ev(1));
    q.enqueue(Ev(2)); // coalesced
    q.enqueue_with(Ev(3), PostingStyle::Asap, Coalescing::None);
    rec.assert_count(0);
    tokio::task::yield_now().await;
    tokio::task::yield_now().await;
    rec.assert_values(&[Ev(2), Ev(3)]);
    let s = q.stats();
    assert_eq!((s.enqueued, s.coalesced, s.posted, s.pending), (3, 1, 2, 0));
}

#[test]
fn queue_dequeue_matching_by_key_and_then_a_new_entry_at_the_back() {
    let center = NotificationCenter::new();
    let rec = Recorder::<Ev>::new(&center);
    let q = NotificationQueue::new(&center);
    q.enqueue_with(Ev(1), PostingStyle::WhenIdle, Coalescing::by_key("a"));
    q.enqueue_with(Ev(2), PostingStyle::WhenIdle, Coalescing::by_key("b"));
    assert_eq!(q.dequeue_matching(&Matching::of_type::<Ev>().key("a")), 1);
    q.enqueue_with(Ev(3), PostingStyle::WhenIdle, Coalescing::by_key("a"));
    q.enqueue_with(Ev(4), PostingStyle::WhenIdle, Coalescing::by_key("b"));
    assert_eq!(q.flush(), 2);
    rec.assert_values(&[Ev(4), Ev(3)]);
    let s = q.stats();
    assert_eq!(
        s.enqueued,
        s.posted + s.coalesced + s.removed + s.pending as u64
    );
}

#[test]
fn queue_by_sender_group_mixes_types_and_posts_the_last_type() {
    let center = NotificationCenter::new();
    let all = AllRecorder::new(&center);
    let q = NotificationQueue::new(&center);
    let who = SenderId::new();
    q.enqueue_from_with(who, Ev(1), PostingStyle::Asap, Coalescing::BySender);
    q.enqueue_with(Elsewhere(0), PostingStyle::Asap, Coalescing::None);
    q.enqueue_from_with(who, Other(2), PostingStyle::Asap, Coalescing::BySender);
    assert_eq!(q.flush(), 2);
    assert_eq!(all.names(), ["audit.other", "elsewhere.thing"]);
    assert_eq!(all.seen()[0].sender, Some(who));
}

#[test]
fn queue_shutdown_then_enqueue_posts_at_once_and_counts() {
    let center = NotificationCenter::new();
    let rec = Recorder::<Ev>::new(&center);
    let q = NotificationQueue::new(&center);
    q.enqueue_with(Ev(1), PostingStyle::WhenIdle, Coalescing::None);
    assert_eq!(q.shutdown(), 1);
    assert!(matches!(q.enqueue(Ev(2)), Enqueued::Posted(_)));
    assert!(matches!(q.enqueue(Ev(3)), Enqueued::Posted(_)));
    rec.assert_values(&[Ev(1), Ev(2), Ev(3)]);
    let s = q.stats();
    assert_eq!((s.enqueued, s.posted, s.coalesced, s.pending), (3, 3, 0, 0));
}

#[test]
fn queue_terminal_feeds_another_center_coalesced() {
    let worker = NotificationCenter::new();
    let ui = NotificationCenter::new();
    let rec = Recorder::<Ev>::new(&ui);
    let q = NotificationQueue::new(&ui);
    let who = SenderId::new();
    let _feed =
        worker
            .observer::<Ev>()
            .queue(&q, PostingStyle::WhenIdle, Coalescing::ByTypeAndSender);
    let from_who = ui.observer::<Ev>().sender(who).record();
    worker.post_from(who, Ev(1));
    worker.post_from(who, Ev(2));
    worker.post(Ev(3));
    assert_eq!(q.flush(), 2);
    rec.assert_values(&[Ev(2), Ev(3)]);
    from_who.assert_values(&[Ev(2)]);
}

// =============================================================================================
// Weak observers, guards
// =============================================================================================

#[test]
fn weak_observer_expires_and_frees_its_closure() {
    let center = NotificationCenter::new();
    let freed = Count::default();
    let probe = freed.probe();
    let target = Arc::new(Mutex::new(0u32));
    center
        .observer::<Ev>()
        .weak(&target, move |t, e| {
            let _ = &probe;
            *t.lock().unwrap() += e.0;
        })
        .detach();
    center.post(Ev(2));
    assert_eq!(*target.lock().unwrap(), 2);
    drop(target);
    assert!(center.post(Ev(3)).is_dead());
    assert_eq!(center.stats::<Ev>().observers, 0);
    // A few more posts and subscriptions let deferred frees run.
    for i in 0..10 {
        let _s = center.observe(|_: &Ev| {});
        center.post(Ev(i));
    }
    assert_eq!(freed.get(), 1);
}

#[test]
fn weak_observer_with_sender_filter_only_sees_its_sender() {
    let center = NotificationCenter::new();
    let target = Arc::new(Mutex::new(Vec::new()));
    let who = SenderId::new();
    let _sub = center
        .observer::<Ev>()
        .sender(who)
        .weak(&target, |t, e| t.lock().unwrap().push(e.0));
    center.post(Ev(1));
    center.post_from(who, Ev(2));
    assert_eq!(*target.lock().unwrap(), [2]);
}

#[test]
fn the_guard_of_a_weak_observer_unsubscribes_before_the_target_dies() {
    let center = NotificationCenter::new();
    let target = Arc::new(Mutex::new(0));
    let sub = center
        .observer::<Ev>()
        .weak(&target, |t, _| *t.lock().unwrap() += 1);
    center.post(Ev(0));
    drop(sub);
    center.post(Ev(1));
    assert_eq!(*target.lock().unwrap(), 1);
}

#[test]
fn subscription_is_active_until_unsubscribed_and_survives_the_center_quietly() {
    let center = NotificationCenter::new();
    let sub = center.observe(|_: &Ev| {});
    assert!(sub.is_active());
    let stream = center.stream::<Ev>();
    drop(center);
    assert!(!sub.is_active());
    drop(sub);
    drop(stream);
}

#[test]
fn detached_observers_live_while_other_guards_come_and_go() {
    let center = NotificationCenter::new();
    let calls = Count::default();
    center.observe(calls.counts::<Ev>()).detach();
    for _ in 0..5 {
        let s = center.observe(|_: &Ev| {});
        center.post(Ev(0));
        drop(s);
    }
    assert_eq!(calls.get(), 5);
    assert_eq!(center.stats::<Ev>().observers, 1);
}

// =============================================================================================
// Test kit
// =============================================================================================

#[tokio::test(start_paused = true)]
async fn recorder_next_within_after_take_starts_from_the_new_values() {
    let center = NotificationCenter::new();
    let rec = Recorder::<Ev>::new(&center);
    center.post(Ev(1));
    assert_eq!(rec.next_within(Duration::from_millis(5)).await, Some(Ev(1)));
    assert_eq!(rec.take(), [Ev(1)]);
    center.post(Ev(2));
    assert_eq!(rec.next_within(Duration::from_millis(5)).await, Some(Ev(2)));
    assert_eq!(rec.next_within(Duration::from_millis(5)).await, None);
}

#[tokio::test(start_paused = true)]
async fn free_wait_for_sees_a_post_made_before_the_await_and_times_out_otherwise() {
    let center = NotificationCenter::new();
    let w = herald::testkit::wait_for(&center, |e: &Ev| e.0 == 2, Duration::from_millis(50));
    center.post(Ev(1));
    center.post(Ev(2));
    assert_eq!(w.await.map(|e| e.0), Some(2));
    let never = herald::testkit::wait_for(&center, |e: &Ev| e.0 == 9, Duration::from_millis(50));
    assert!(never.await.is_none());
}

#[test]
fn recorder_with_filter_and_assertions() {
    let center = NotificationCenter::new();
    let rec = center.observer::<Ev>().filter(|e| e.0 > 1).record();
    post_each(&center, 0..4);
    rec.assert_values(&[Ev(2), Ev(3)]);
    rec.assert_order(&[Ev(3)]);
    rec.assert_not_posted(|e| e.0 == 1);
    assert_eq!(rec.last(), Some(Ev(3)));
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rec.assert_count(3)));
    assert!(failed.is_err());
}

// =============================================================================================
// Counters under many threads
// =============================================================================================

#[test]
fn counters_are_exact_after_many_short_lived_posting_threads() {
    let center = NotificationCenter::new();
    let _a = center.observe(|_: &Ev| {});
    let _b = center.observe(|_: &Ev| {});
    for _ in 0..20 {
        join_all(on_threads(&center, 4, |c, _| post_each(c, 0..100)));
    }
    let s = center.stats::<Ev>();
    assert_eq!((s.posted, s.delivered, s.dead), (8000, 16000, 0));
}

#[test]
fn stats_delivered_counts_stream_receives_and_inline_calls_together() {
    let center = NotificationCenter::new();
    let _inline = center.observe(|_: &Ev| {});
    let (mut ring, mut private) = ring_and_private(&center);
    post_each(&center, 0..3);
    assert_eq!(center.stats::<Ev>().delivered, 3);
    drain(&mut ring);
    drain(&mut private);
    assert_eq!(center.stats::<Ev>().delivered, 9);
    drop(ring);
    drop(private);
    assert_eq!(center.stats::<Ev>().delivered, 9);
}

// =============================================================================================
// More edge cases: joins and leaves racing posts, replay into small buffers, big capacities
// =============================================================================================

/// Receives what `s` holds now, checks that it is a contiguous run of increasing integers
/// ending at `last`, and returns it.
fn assert_contiguous_suffix(s: &mut impl Buffered<Ev>, last: u32, what: &str) -> Vec<u32> {
    let values = values(s);
    for w in values.windows(2) {
        assert_eq!(w[1], w[0] + 1, "{what}: gap or duplicate in {:?}..", &w);
    }
    if let Some(&l) = values.last() {
        assert_eq!(l, last, "{what}: ends at the last post");
    }
    values
}

#[test]
fn streams_joining_while_another_thread_posts_see_a_contiguous_suffix() {
    const N: u32 = 20_000;
    let center = NotificationCenter::new();
    let (go, poster) = poster_on_go(&center, 0..N);
    let _anchor = stream_with(center.observer(), drop_oldest(32_768));
    let mut rings = Vec::new();
    let mut cloned = Vec::new();
    let mut private = Vec::new();
    go.store(true, SeqCst);
    for k in 0..60 {
        match k % 3 {
            0 => rings.push(stream_with(center.observer(), drop_oldest(32_768))),
            1 => cloned.push(cloned_with(center.observer(), drop_oldest(32_768))),
            _ => private.push(stream_with(private_buffer(&center), drop_oldest(32_768))),
        }
        thread::sleep(Duration::from_micros(100));
    }
    poster.join().unwrap();
    for s in &mut rings {
        assert_contiguous_suffix(s, N - 1, "ring");
        assert_eq!(s.stats().dropped, 0);
    }
    for s in &mut cloned {
        assert_contiguous_suffix(s, N - 1, "value ring");
    }
    for s in &mut private {
        assert_contiguous_suffix(s, N - 1, "private");
    }
}

#[test]
fn a_stream_subscribed_throughout_misses_nothing_while_ring_leaders_churn() {
    const N: u32 = 20_000;
    let center = NotificationCenter::new();
    // Low priority: the churning streams (higher priority) lead the ring.
    let mut steady = stream_with(center.observer().priority(-1), drop_oldest(32_768));
    let mut steady_cloned = cloned_with(center.observer().priority(-1), drop_oldest(32_768));
    let churner = until_stopped(&center, 0.., |c, _| {
        let a = stream_with(c.observer().priority(5), drop_oldest(32_768));
        let b = cloned_with(c.observer().priority(5), drop_oldest(32_768));
        drop(a);
        drop(b);
    });
    post_each(&center, 0..N);
    churner.stop();
    let v = assert_contiguous_suffix(&mut steady, N - 1, "steady ring");
    assert_eq!(v.len() as u32, N);
    let v = assert_contiguous_suffix(&mut steady_cloned, N - 1, "steady value ring");
    assert_eq!(v.len() as u32, N);
}

#[test]
fn per_thread_post_order_reaches_every_stream_kind() {
    #[derive(Debug, Clone)]
    struct Seq(u32, u32);
    impl Notification for Seq {}
    let center = NotificationCenter::new();
    let mut ring = center
        .observer::<Seq>()
        .policy(drop_oldest(16_384))
        .stream();
    let mut cloned = center
        .observer::<Seq>()
        .policy(drop_oldest(16_384))
        .cloned_stream();
    let mut private = center
        .observer::<Seq>()
        .policy(drop_newest(16_384))
        .stream();
    join_all(on_threads(&center, 4, |c, t| {
        for i in 0..2_000 {
            c.post(Seq(t, i));
        }
    }));
    let check = |vals: Vec<Seq>, what: &str| {
        assert_eq!(vals.len(), 8_000, "{what}");
        let mut next = [0u32; 4];
        for Seq(t, i) in vals {
            assert_eq!(i, next[t as usize], "{what}: thread {t} out of order");
            next[t as usize] += 1;
        }
    };
    check(received(&mut ring), "ring");
    check(received(&mut cloned), "cloned");
    check(received(&mut private), "private");
}

/// After a value was replayed into `s` (capacity one, drop-oldest) and `Ev(6)` was posted with
/// report `r`: the replayed value was evicted, and `s` reports it as a lag.
fn assert_replay_evicted(s: &mut impl Buffered<Ev>, r: PostReport) {
    assert_eq!((r.received, r.dropped), (1, 1));
    assert_eq!(drain(s), ["lag 1", "6"]);
    assert_eq!(delivered_and_dropped(s.stats()), (1, 1));
}

fn assert_within_capacity_one(s: &impl Buffered<Ev>) {
    assert!(s.len() <= s.capacity(), "holds {} > capacity 1", s.len());
}

/// After a value was replayed into `s` (latest-only) and `Ev(6)` was posted: only the post is
/// left, and the replayed value counts as dropped.
fn assert_only_the_post_kept(s: &mut impl Buffered<Ev>) {
    assert_eq!(drain(s), ["6"]);
    assert_eq!(delivered_and_dropped(s.stats()), (1, 1));
}

/// `Overflow::DropOldest`: "Keep the newest `capacity` values: a post into a full buffer
/// evicts the oldest value and the receiver sees `Lagged(n)`". A replayed value is held like
/// any other: with capacity 1, the next post evicts it.
#[test]
fn replay_into_a_capacity_one_drop_oldest_private_stream_then_a_post_reports_the_lag() {
    let center = retaining(Ev(5));
    let mut private = stream_with(private_buffer(&center).replay_last(), drop_oldest(1));
    let r = center.post(Ev(6));
    assert_replay_evicted(&mut private, r);
}

#[test]
fn replay_into_a_capacity_one_drop_oldest_ring_stream_then_a_post_reports_the_lag() {
    let center = retaining(Ev(5));
    let mut ring = stream_with(center.observer().replay_last(), drop_oldest(1));
    assert_eq!(ring.len(), 1);
    let r = center.post(Ev(6));
    assert_within_capacity_one(&ring);
    assert_replay_evicted(&mut ring, r);
}

#[test]
fn replay_into_a_capacity_one_drop_oldest_cloned_stream_then_a_post_reports_the_lag() {
    let center = retaining(Ev(5));
    let mut cloned = cloned_with(center.observer().replay_last(), drop_oldest(1));
    let r = center.post(Ev(6));
    assert_within_capacity_one(&cloned);
    assert_replay_evicted(&mut cloned, r);
}

/// `Overflow::Latest`: "Conflate: hold only the most recent value. A new value replaces an
/// unread one (counted as dropped ...)". The private (filtered) buffer does so after a replay.
#[test]
fn replay_into_a_latest_private_stream_then_a_post_keeps_only_the_post() {
    let center = retaining(Ev(5));
    let mut private = stream_with(private_buffer(&center).replay_last(), Overflow::Latest);
    center.post(Ev(6));
    assert_only_the_post_kept(&mut private);
}

#[test]
fn replay_into_a_latest_ring_stream_then_a_post_keeps_only_the_post() {
    let center = retaining(Ev(5));
    let mut ring = stream_with(center.observer().replay_last(), Overflow::Latest);
    let r = center.post(Ev(6));
    assert_eq!(r.dropped, 1, "the unread replayed value was replaced");
    assert_only_the_post_kept(&mut ring);
}

#[test]
fn replay_into_a_latest_cloned_stream_then_a_post_keeps_only_the_post() {
    let center = retaining(Ev(5));
    let mut cloned = cloned_with(center.observer().replay_last(), Overflow::Latest);
    center.post(Ev(6));
    assert_only_the_post_kept(&mut cloned);
}

#[test]
fn a_drop_oldest_stream_above_the_ring_limit_behaves_the_same() {
    let center = NotificationCenter::new();
    let cap = 70_000;
    let mut s = stream_with(center.observer(), drop_oldest(cap));
    assert_eq!(s.capacity(), cap);
    post_each(&center, 0..(cap as u32 + 3));
    assert_eq!(s.len(), cap);
    assert_eq!(s.try_recv().unwrap_err(), TryRecvError::Lagged(3));
    assert_eq!(s.try_recv().unwrap().0, 3);
    assert_eq!(s.stats().dropped, 3);
}

#[test]
fn two_capacity_one_ring_streams_lag_independently() {
    let center = NotificationCenter::new();
    let mut a = stream_with(center.observer(), drop_oldest(1));
    let mut b = stream_with(center.observer(), drop_oldest(1));
    center.post(Ev(0));
    assert_eq!(drain(&mut a), ["0"]);
    let r = center.post(Ev(1));
    assert_eq!((r.received, r.dropped), (2, 1), "only b lost Ev(0)");
    center.post(Ev(2));
    assert_eq!(drain(&mut a), ["lag 1", "2"]);
    assert_eq!(drain(&mut b), ["lag 2", "2"]);
    assert_eq!(center.stats::<Ev>().dropped, 3);
}

#[tokio::test(start_paused = true)]
async fn backpressure_with_a_batch_in_hand_lets_post_async_in_as_values_are_taken() {
    let center = NotificationCenter::new();
    let mut s = stream_with(center.observer(), backpressure(8));
    for i in 0..8 {
        assert_eq!(center.post(Ev(i)).full, 0);
    }
    assert_eq!(center.post(Ev(99)).full, 1);
    let waiting = post_async_in_task(&center, Ev(8));
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(!waiting.is_finished());
    assert_eq!(s.recv().await.unwrap().0, 0);
    let report = tokio::time::timeout(Duration::from_secs(1), waiting)
        .await
        .expect("room was made")
        .unwrap();
    assert_eq!((report.received, report.full), (1, 0));
    assert_eq!(values(&mut s), [1, 2, 3, 4, 5, 6, 7, 8]);
    let st = s.stats();
    assert_eq!((st.delivered, st.dropped), (9, 1));
}

#[tokio::test(start_paused = true)]
async fn unsubscribe_and_wait_returns_after_the_call_in_flight_and_starts_no_other() {
    let center = NotificationCenter::new();
    let started = List::default();
    let finished = List::default();
    let h = center.observer::<Ev>().spawn(with_state(
        (started.clone(), finished.clone()),
        |e, (s, f)| async move {
            s.push(e.0);
            tokio::time::sleep(Duration::from_millis(10)).await;
            f.push(e.0);
        },
    ));
    post_each(&center, 0..3);
    tokio::time::sleep(Duration::from_millis(1)).await;
    h.unsubscribe_and_wait().await;
    assert_eq!(started.get(), [0]);
    assert_eq!(finished.get(), [0]);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(started.get(), [0]);
}

#[test]
fn reader_fences_always_center_keeps_every_contract_under_churn() {
    let center = NotificationCenter::builder()
        .reader_fences(herald::ReaderFences::Always)
        .build();
    let seen = Count::default();
    let _steady = center.observe(seen.counts::<Ev>());
    let churner = until_stopped(&center, 0.., |c, _| drop(c.observe(|_: &Ev| {})));
    post_each(&center, 0..20_000);
    churner.stop();
    assert_eq!(seen.get(), 20_000);
    assert_eq!(center.stats::<Ev>().posted, 20_000);
}

// =============================================================================================
// The hub's own notifications seen through wildcards
// =============================================================================================

/// `Wildcard`: "Matches every notification ... or a family by name prefix";
/// `ObserverPanicked`: "Posted into the same center, so any observer can log or count it."
#[test]
fn a_wildcard_observer_sees_observer_panicked() {
    quiet_panics();
    let center = NotificationCenter::new();
    let all = AllRecorder::new(&center);
    let _bad = center.observe(|_: &Ev| panic!("audit: seen by a wildcard"));
    center.post(Ev(1));
    all.assert_order(&["audit.ev", "herald.observer.panicked"]);
}

#[test]
fn a_family_observer_of_herald_sees_observer_panicked() {
    quiet_panics();
    let center = NotificationCenter::new();
    let seen = List::default();
    let s = seen.clone();
    let _hub = center
        .observer::<Wildcard>()
        .family("herald.")
        .inline(move |n| {
            let msg = n
                .downcast_ref::<ObserverPanicked>()
                .map(|p| p.message.clone());
            s.push((n.name(), msg))
        });
    let _bad = center.observe(|_: &Ev| panic!("audit: family"));
    center.post(Ev(1));
    assert_eq!(
        seen.get(),
        [(
            "herald.observer.panicked",
            Some("audit: family".to_string())
        )]
    );
}

/// `DeadNotification`: "Posted into the same center only when someone observes
/// `DeadNotification`"; a family observer of `herald.` observes it.
#[test]
fn a_family_observer_of_herald_sees_dead_notifications() {
    let center = NotificationCenter::new();
    let hub = AllRecorder::family(&center, "herald.");
    assert!(center.post(Ev(1)).is_dead());
    hub.assert_posted("herald.notification.dead");
}

#[test]
fn a_family_observer_of_herald_sees_dead_notifications_once_the_type_exists() {
    // Control: once DeadNotification's channel exists (someone observed it once), the family
    // observer does get it.
    let center = NotificationCenter::new();
    drop(center.observe(|_: &DeadNotification| {}));
    let hub = AllRecorder::family(&center, "herald.");
    assert!(center.post(Ev(1)).is_dead());
    hub.assert_posted("herald.notification.dead");
}

#[test]
fn replay_last_on_ring_and_value_ring_streams_races_posts_without_loss_or_duplicates() {
    const N: u32 = 20_000;
    let center = retaining(Ev(0));
    let (go, poster) = poster_on_go(&center, 1..N);
    let replaying = || center.observer().replay_last();
    let mut rings = Vec::new();
    let mut cloned = Vec::new();
    go.store(true, SeqCst);
    for k in 0..40 {
        if k % 2 == 0 {
            rings.push(stream_with(replaying(), drop_oldest(32_768)));
        } else {
            cloned.push(cloned_with(replaying(), drop_oldest(32_768)));
        }
        thread::sleep(Duration::from_micros(100));
    }
    poster.join().unwrap();
    for s in &mut rings {
        let v = assert_contiguous_suffix(s, N - 1, "ring replay");
        assert!(!v.is_empty());
    }
    for s in &mut cloned {
        let v = assert_contiguous_suffix(s, N - 1, "value ring replay");
        assert!(!v.is_empty());
    }
}

#[test]
fn a_wildcard_unsubscribed_by_a_typed_observer_during_a_post_is_not_called_by_it() {
    let center = NotificationCenter::new();
    let calls = Count::default();
    let c = calls.clone();
    let wild = center.observer::<Wildcard>().inline(move |_| c.bump());
    let (_killer, slot) = dropper(&center);
    slot.push(wild);
    let r = center.post(Ev(0));
    assert_eq!(calls.get(), 0);
    assert_eq!(r.received, 1);
    center.post(Other(0));
    assert_eq!(calls.get(), 0);
}

#[test]
fn latest_and_drop_oldest_capacity_one_streams_differ_only_in_lag_reports() {
    let center = NotificationCenter::new();
    let mut latest = center.observer::<Ev>().policy(Overflow::Latest).stream();
    let mut oldest = stream_with(center.observer(), drop_oldest(1));
    post_each(&center, 0..3);
    assert_eq!(drain(&mut latest), ["2"]);
    assert_eq!(drain(&mut oldest), ["lag 2", "2"]);
    assert_eq!(latest.stats().dropped, 2);
    assert_eq!(oldest.stats().dropped, 2);
}

fn recv_blocking_within(mut s: NotificationStream<Ev>) -> Result<Ev, RecvError> {
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(s.recv_blocking().map(|v| (*v).clone()));
    });
    rx.recv_timeout(Duration::from_secs(5))
        .expect("recv_blocking returned")
}

#[test]
fn recv_blocking_on_an_unsubscribed_empty_stream_reports_closed_at_once() {
    let center = NotificationCenter::new();
    let mut ring = center.stream::<Ev>();
    ring.unsubscribe();
    assert_eq!(recv_blocking_within(ring), Err(RecvError::Closed));
    let mut private = stream_with(center.observer(), drop_newest(2));
    private.unsubscribe();
    assert_eq!(recv_blocking_within(private), Err(RecvError::Closed));
}

#[test]
fn recv_blocking_is_woken_by_unsubscribe_from_another_handle_of_the_center_drop() {
    let center = NotificationCenter::new();
    let ring = center.stream::<Ev>();
    let c = center.clone();
    let t = after_ms(10, move || drop(c));
    drop(center);
    assert_eq!(recv_blocking_within(ring), Err(RecvError::Closed));
    t.join().unwrap();
}

/// Subscribes with `make` from inside the post of `Ev(0)` (see [`adder`]); returns the adder's
/// guard and what `make` made.
fn made_during_the_post_of_ev0<S: Send + 'static>(
    center: &NotificationCenter,
    make: impl Fn(&NotificationCenter) -> S + Send + Sync + 'static,
) -> (Subscription, S) {
    let (adder, added) = adder(center, make);
    center.post(Ev(0));
    (adder, added.pop().unwrap())
}

/// `s` holds nothing and reports no depth.
fn assert_holds_nothing(s: &mut impl Buffered<Ev>) {
    assert_eq!(s.len(), 0, "len");
    assert_eq!(s.stats().depth, 0, "depth");
    assert_eq!(drain(s), Vec::<String>::new());
}

#[test]
fn a_ring_stream_subscribed_during_a_post_reports_no_depth_for_that_post() {
    let center = NotificationCenter::new();
    let _early = center.stream::<Ev>();
    let (_adder, mut late) = made_during_the_post_of_ev0(&center, |c| c.stream::<Ev>());
    assert!(late.is_empty());
    assert_holds_nothing(&mut late);
    center.post(Ev(1));
    assert_eq!(late.len(), 1);
    assert_eq!(drain(&mut late), ["1"]);
}

#[test]
fn a_cloned_stream_subscribed_during_a_post_reports_no_depth_for_that_post() {
    let center = NotificationCenter::new();
    let _early = center.cloned_stream::<Ev>();
    let (_adder, mut late) = made_during_the_post_of_ev0(&center, |c| c.cloned_stream::<Ev>());
    assert_holds_nothing(&mut late);
}

#[test]
fn ring_len_and_depth_stay_within_capacity_after_lag_and_after_leaving() {
    let center = NotificationCenter::new();
    let mut s = stream_with(center.observer(), drop_oldest(4));
    let _other = stream_with(center.observer(), drop_oldest(4));
    post_each(&center, 0..10);
    assert_eq!(s.len(), 4);
    assert_eq!(s.try_recv().unwrap_err(), TryRecvError::Lagged(6));
    assert_eq!(s.len(), 4);
    assert_eq!(s.try_recv().unwrap().0, 6);
    assert_eq!(s.len(), 3);
    s.unsubscribe();
    assert_eq!(s.len(), 3);
    post_each(&center, 10..20);
    assert_eq!(drain(&mut s), ["7", "8", "9", "closed"]);
    assert_eq!(s.len(), 0);
}

/// Makes a center, lets `setup` subscribe closures that hold probes of a count (and keep what
/// it returns), drops the center, and returns how many probes were freed by then, with what
/// `setup` kept, still alive.
fn freed_by_dropping_the_center<K>(
    setup: impl FnOnce(&NotificationCenter, &Count) -> K,
) -> (usize, K) {
    let freed = Count::default();
    let center = NotificationCenter::new();
    let kept = setup(&center, &freed);
    drop(center);
    (freed.get(), kept)
}

/// `Subscription::detach`: "Keeps the observer subscribed for the life of the center". Once
/// the center is gone, nothing can call the closure: it (and what it captured) must be freed.
#[test]
fn a_detached_typed_observer_closure_is_freed_with_its_center() {
    let (freed, ()) = freed_by_dropping_the_center(|center, freed| {
        center.observe(holding::<Ev>(freed.probe())).detach();
        center.post(Ev(0));
    });
    assert_eq!(freed, 1);
}

#[test]
fn a_detached_wildcard_observer_closure_is_freed_with_its_center() {
    let (freed, ()) = freed_by_dropping_the_center(|center, freed| {
        let p = freed.probe();
        center
            .observer::<Wildcard>()
            .inline(move |_| {
                let _ = &p;
            })
            .detach();
        center.post(Ev(0));
    });
    assert_eq!(freed, 1);
}

#[test]
fn a_detached_observer_closure_of_a_never_posted_type_is_freed_with_its_center() {
    let (freed, ()) = freed_by_dropping_the_center(|center, freed| {
        center.observe(holding::<Ev>(freed.probe())).detach();
    });
    assert_eq!(freed, 1);
}

#[test]
fn a_guarded_observer_closure_is_freed_when_the_center_drops_first() {
    let (freed, sub) =
        freed_by_dropping_the_center(|center, freed| center.observe(holding::<Ev>(freed.probe())));
    assert_eq!(freed, 1, "freed with the center");
    drop(sub);
}

#[test]
fn an_unsubscribed_observer_closure_is_freed_once_unsubscribe_returns_outside_a_post() {
    let freed = Count::default();
    let center = NotificationCenter::new();
    let sub = center.observe(holding::<Ev>(freed.probe()));
    center.post(Ev(0));
    drop(sub);
    // Quiescent: nothing can call it any more; the closure may be freed lazily, but a few
    // more posts and subscription changes must free it.
    for i in 0..5 {
        drop(center.observe(|_: &Ev| {}));
        center.post(Ev(i));
    }
    assert_eq!(freed.get(), 1);
}

#[test]
fn a_panicking_coalesce_key_is_isolated_and_the_stream_keeps_working() {
    quiet_panics();
    let center = NotificationCenter::new();
    let reports = Count::default();
    let _watch = center.observe(reports.counts::<ObserverPanicked>());
    let key = |e: &Ev| {
        if e.0 == 13 {
            panic!("audit: unlucky key");
        }
        e.0 % 2
    };
    let mut s = stream_with(center.observer(), Overflow::coalesce_by_key(4, key));
    center.post(Ev(1));
    let bad = center.post(Ev(13));
    assert_eq!(bad.panicked, 1);
    center.post(Ev(2));
    center.post(Ev(3));
    assert_eq!(drain(&mut s), ["3", "2"]);
    assert_eq!(reports.get(), 1);
    assert_eq!(center.stats::<Ev>().panicked, 1);
}

#[tokio::test(start_paused = true)]
async fn a_spawned_handler_panic_reaches_a_wildcard_observer() {
    quiet_panics();
    let center = NotificationCenter::new();
    let _exists = center.observe(|_: &ObserverPanicked| {}); // make sure the channel exists
    let all = AllRecorder::family(&center, "herald.");
    let h = center.observer::<Ev>().spawn(|_e: Arc<Ev>| async move {
        panic!("audit: spawned for wildcard");
    });
    center.post(Ev(0));
    h.drain().await;
    all.assert_posted("herald.observer.panicked");
}

/// `NotificationStream`: "It is closed when the center is dropped, after the buffered values
/// have been received"; `RecvError::Closed`: "the center is gone". With one type this holds;
/// a second type (made by a post, no further subscribe or unsubscribe) keeps every channel
/// alive after the last handle of the center is dropped.
#[test]
fn dropping_a_center_that_has_two_types_closes_its_streams() {
    let center = NotificationCenter::new();
    let (mut ring, mut private) = ring_and_private(&center);
    center.post(Ev(0));
    center.post(Other(0)); // a second type
    drop(center);
    assert_eq!(drain(&mut ring), ["0", "closed"]);
    assert_eq!(drain(&mut private), ["0", "closed"]);
}

#[test]
fn dropping_a_center_that_has_two_types_closes_a_stream_of_the_second_type() {
    let center = NotificationCenter::new();
    center.post(Ev(0));
    let mut s = center.stream::<Other>();
    center.post(Other(1));
    drop(center);
    let got: Vec<String> = std::iter::from_fn(|| match s.try_recv() {
        Ok(v) => Some(v.0.to_string()),
        Err(TryRecvError::Closed) => Some("closed".to_string()),
        Err(_) => None,
    })
    .take(3)
    .collect();
    assert_eq!(got, ["1", "closed", "closed"]);
}

#[tokio::test(start_paused = true)]
async fn recv_await_ends_when_a_center_that_has_two_types_is_dropped() {
    let center = NotificationCenter::new();
    let mut s = center.stream::<Ev>();
    center.post(Other(0));
    drop(center);
    let r = tokio::time::timeout(Duration::from_secs(60), s.recv()).await;
    assert_eq!(
        r.ok(),
        Some(Err(RecvError::Closed)),
        "recv must end with Closed, not hang"
    );
}

#[test]
fn dropping_a_center_that_has_two_types_frees_observer_closures() {
    let (freed, _guarded) = freed_by_dropping_the_center(|center, freed| {
        center.observe(holding::<Ev>(freed.probe())).detach();
        center.observe(holding::<Other>(freed.probe()))
    });
    assert_eq!(freed, 2);
}

/// Gives `center` a detached spawned handler of `Ev` whose closure holds a probe, runs
/// `before_drop`, lets the handler's task start, drops the center and waits a second; returns
/// how many of the handler's closures were freed by then.
async fn spawned_closures_freed_after_dropping(
    center: NotificationCenter,
    before_drop: impl FnOnce(&NotificationCenter),
) -> usize {
    let freed = Count::default();
    let p = freed.probe();
    center
        .observer::<Ev>()
        .spawn(move |_e: Arc<Ev>| {
            let _ = &p;
            async {}
        })
        .detach();
    before_drop(&center);
    tokio::time::sleep(Duration::from_millis(1)).await;
    drop(center);
    tokio::time::sleep(Duration::from_secs(1)).await;
    freed.get()
}

/// tests/spawned.rs pins "dropping the center ends the task" with one type; the same with two.
#[tokio::test(start_paused = true)]
async fn a_spawned_handler_task_ends_when_a_center_that_has_two_types_is_dropped() {
    let freed = spawned_closures_freed_after_dropping(NotificationCenter::new(), |c| {
        c.post(Other(0));
    })
    .await;
    assert_eq!(freed, 1, "the task ended and dropped its handler");
}

#[tokio::test(start_paused = true)]
async fn a_spawned_handler_task_ends_when_a_one_type_center_is_dropped() {
    // Control for the test above.
    let freed = spawned_closures_freed_after_dropping(NotificationCenter::new(), |_| {}).await;
    assert_eq!(freed, 1);
}

#[test]
fn two_centers_on_one_thread_keep_their_observers_apart_when_posts_alternate() {
    let a = NotificationCenter::new();
    let b = NotificationCenter::new();
    let ra = Recorder::<Ev>::new(&a);
    let rb = Recorder::<Ev>::new(&b);
    for i in 0..10 {
        if i % 2 == 0 {
            a.post(Ev(i));
        } else {
            b.post(Ev(i));
        }
    }
    ra.assert_values(&[Ev(0), Ev(2), Ev(4), Ev(6), Ev(8)]);
    rb.assert_values(&[Ev(1), Ev(3), Ev(5), Ev(7), Ev(9)]);
    // A center dropped and a new one made on the same thread: nothing leaks across.
    drop(ra);
    drop(a);
    let c = NotificationCenter::new();
    let rc = Recorder::<Ev>::new(&c);
    c.post(Ev(100));
    b.post(Ev(101));
    rc.assert_values(&[Ev(100)]);
    assert_eq!(rb.last(), Some(Ev(101)));
}

#[test]
fn posts_nested_across_two_centers_are_depth_first_and_do_not_deadlock() {
    let a = NotificationCenter::new();
    let b = NotificationCenter::new();
    let l = Log::default();
    let (bb, ll) = (b.clone(), l.clone());
    let _a_ev = a.observer::<Ev>().priority(1).inline(move |e| {
        ll.push(format!("a ev {}", e.0));
        bb.post(Other(e.0));
    });
    let ll = l.clone();
    let _a_ev2 = a.observe(move |e: &Ev| ll.push(format!("a ev2 {}", e.0)));
    let (aa, ll) = (a.clone(), l.clone());
    let unsub: List<Subscription> = List::default();
    let u = unsub.clone();
    let _b_other = b.observe(move |o: &Other| {
        ll.push(format!("b other {}", o.0));
        drop(u.pop()); // unsubscribes an observer of center a
        if o.0 == 0 {
            aa.post(Ev(1));
        }
    });
    unsub.push(a.observe(l.logs::<Elsewhere>("never")));
    a.post(Ev(0));
    a.post(Elsewhere(0));
    assert_eq!(
        l.get(),
        [
            "a ev 0",
            "b other 0",
            "a ev 1",
            "b other 1",
            "a ev2 1",
            "a ev2 0"
        ]
    );
}
