//! The subscription matrix: every option of the one builder with every terminal that can honour
//! it, each cell asserting that the option is honoured (issue 11).
//!
//! Typed terminals: `inline`, `inline_with_sender`, `weak`, `stream`, `spawn`, `queue`,
//! `forward` (to an inline terminal, and to a buffering one), `record`. Options: priority,
//! sender, filter, replay, policy (buffered terminals only). Wildcard terminals: `inline`,
//! `weak`, `forward`, `record`, with priority (interleaved with typed observers), sender,
//! filter and family. The combinations that cannot be honoured (a policy on an inline terminal,
//! a wildcard stream, ...) are `compile_fail` doctests on `ObserverBuilder`.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use herald::{
    AnyNotification, BufferPolicy, Coalescing, Notification, NotificationCenter, NotificationQueue,
    NotificationStream, ObserverBuilder, Overflow, PostingStyle, SenderId, SpawnOptions,
    Subscription, Terminal, TryRecvError, Wildcard,
};

#[derive(Debug, Clone, PartialEq)]
struct Ev(u32);
impl Notification for Ev {
    fn name() -> &'static str {
        "matrix.ev"
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Other(u32);
impl Notification for Other {
    fn name() -> &'static str {
        "matrix.other"
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Elsewhere;
impl Notification for Elsewhere {
    fn name() -> &'static str {
        "elsewhere.ev"
    }
}

type Log = Arc<Mutex<Vec<u32>>>;

fn push(log: &Log, v: u32) {
    log.lock().unwrap().push(v);
}

/// A terminal defined outside the hub that delivers inline (default policy state only).
struct LogTo(Log);

impl Terminal<Ev> for LogTo {
    type Output = Subscription;
    fn subscribe(self, builder: ObserverBuilder<Ev>) -> Subscription {
        builder.inline(move |n| push(&self.0, n.0))
    }
}

/// A terminal defined outside the hub that buffers: honours any policy.
struct Buffer;

impl<N: Notification, P: BufferPolicy<N>> Terminal<N, P> for Buffer {
    type Output = NotificationStream<N>;
    fn subscribe(self, builder: ObserverBuilder<N, P>) -> NotificationStream<N> {
        builder.stream()
    }
}

/// A wildcard terminal defined outside the hub.
struct LogAny(Log);

impl Terminal<Wildcard> for LogAny {
    type Output = Subscription;
    fn subscribe(self, builder: ObserverBuilder<Wildcard>) -> Subscription {
        builder.inline(move |n| push(&self.0, value(n)))
    }
}

fn value(n: &AnyNotification<'_>) -> u32 {
    n.downcast_ref::<Ev>()
        .map(|e| e.0)
        .or_else(|| n.downcast_ref::<Other>().map(|o| 1000 + o.0))
        .unwrap_or(u32::MAX)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Term {
    Inline,
    InlineWithSender,
    Weak,
    Stream,
    Spawn,
    Queue,
    Forward,
    ForwardBuffered,
    Record,
}

const TYPED: [Term; 9] = [
    Term::Inline,
    Term::InlineWithSender,
    Term::Weak,
    Term::Stream,
    Term::Spawn,
    Term::Queue,
    Term::Forward,
    Term::ForwardBuffered,
    Term::Record,
];

const BUFFERED: [Term; 3] = [Term::Stream, Term::Spawn, Term::ForwardBuffered];

/// One subscription made with a terminal: how many values it has taken so far (readable from
/// inside a post), and what it received, in order (read once, at the end).
struct Probe {
    count: Arc<dyn Fn() -> usize + Send + Sync>,
    read: Box<dyn FnOnce() -> Vec<u32>>,
}

fn runtime() -> Arc<tokio::runtime::Runtime> {
    Arc::new(
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
    )
}

/// The depth of every buffer of `Ev` in `center` (what buffered terminals hold).
fn buffered(center: &NotificationCenter) -> usize {
    center
        .stats::<Ev>()
        .buffers
        .iter()
        .map(|b| b.depth + b.delivered as usize)
        .sum()
}

/// Subscribes with `term` on a builder in the default policy state.
fn attach(term: Term, builder: ObserverBuilder<Ev>) -> Probe {
    let center = builder.center().clone();
    let log: Log = Arc::default();
    let count_log = {
        let l = log.clone();
        Arc::new(move || l.lock().unwrap().len())
    };
    let read_log = |log: Log| Box::new(move || log.lock().unwrap().clone());
    match term {
        Term::Inline => {
            let l = log.clone();
            let sub = builder.inline(move |n| push(&l, n.0));
            Probe {
                count: count_log,
                read: Box::new(move || {
                    drop(sub);
                    read_log(log)()
                }),
            }
        }
        Term::InlineWithSender => {
            let l = log.clone();
            let sub = builder.inline_with_sender(move |n, _| push(&l, n.0));
            Probe {
                count: count_log,
                read: Box::new(move || {
                    drop(sub);
                    read_log(log)()
                }),
            }
        }
        Term::Weak => {
            let sub = builder.weak(&log, |log, n| push_ref(log, n.0));
            Probe {
                count: count_log,
                read: Box::new(move || {
                    drop(sub);
                    read_log(log)()
                }),
            }
        }
        Term::Forward => {
            let sub = builder.forward(LogTo(log.clone()));
            Probe {
                count: count_log,
                read: Box::new(move || {
                    drop(sub);
                    read_log(log)()
                }),
            }
        }
        Term::Record => {
            let recorder = Arc::new(Mutex::new(builder.record()));
            let r = recorder.clone();
            Probe {
                count: Arc::new(move || r.lock().unwrap().count()),
                read: Box::new(move || {
                    let mut recorder = recorder.lock().unwrap();
                    recorder.unsubscribe();
                    recorder.values().into_iter().map(|e| e.0).collect()
                }),
            }
        }
        Term::Queue => {
            // Into another center: the queue posts there, coalescing nothing.
            let target = NotificationCenter::new();
            let queue = NotificationQueue::new(&target);
            let l = log.clone();
            let seen = target.observe(move |n: &Ev| push(&l, n.0));
            let sub = builder.queue(&queue, PostingStyle::WhenIdle, Coalescing::None);
            let q = queue.clone();
            Probe {
                count: Arc::new(move || q.len()),
                read: Box::new(move || {
                    queue.flush();
                    drop((sub, seen));
                    read_log(log)()
                }),
            }
        }
        Term::Stream | Term::Spawn | Term::ForwardBuffered => {
            buffered_probe(term, builder, &center)
        }
    }
}

fn push_ref(log: &Mutex<Vec<u32>>, v: u32) {
    log.lock().unwrap().push(v);
}

/// Subscribes a buffered terminal, in either policy state.
fn buffered_probe<P: BufferPolicy<Ev>>(
    term: Term,
    builder: ObserverBuilder<Ev, P>,
    center: &NotificationCenter,
) -> Probe {
    let c = center.clone();
    let count = Arc::new(move || buffered(&c));
    match term {
        Term::Stream | Term::ForwardBuffered => {
            let mut stream = if term == Term::Stream {
                builder.stream()
            } else {
                builder.forward(Buffer)
            };
            Probe {
                count,
                read: Box::new(move || {
                    let mut out = Vec::new();
                    loop {
                        match stream.try_recv() {
                            Ok(v) => out.push(v.0),
                            Err(TryRecvError::Lagged(_)) => continue,
                            Err(_) => break,
                        }
                    }
                    out
                }),
            }
        }
        Term::Spawn => {
            let rt = runtime();
            let log: Log = Arc::default();
            let l = log.clone();
            let handler = builder.spawn_with(
                SpawnOptions::new().handle(rt.handle().clone()),
                move |n: Arc<Ev>| {
                    push(&l, n.0);
                    async {}
                },
            );
            Probe {
                count,
                read: Box::new(move || {
                    // The runtime has not run yet: everything is still buffered.
                    rt.block_on(handler.drain());
                    log.lock().unwrap().clone()
                }),
            }
        }
        other => unreachable!("{other:?} is not buffered"),
    }
}

#[test]
fn every_terminal_delivers_in_post_order() {
    for term in TYPED {
        let center = NotificationCenter::new();
        let probe = attach(term, center.observer::<Ev>());
        for i in 1..=3 {
            center.post(Ev(i));
        }
        assert_eq!((probe.read)(), [1, 2, 3], "{term:?}");
    }
}

#[test]
fn priority_is_honoured_by_every_terminal() {
    for term in TYPED {
        for (priority, before_witness) in [(10, true), (-10, false)] {
            let center = NotificationCenter::new();
            let probe = attach(term, center.observer::<Ev>().priority(priority));
            // A witness at priority 0 sees whether the terminal has taken the post yet.
            let seen_by_witness = Arc::new(AtomicUsize::new(usize::MAX));
            let (s, count) = (seen_by_witness.clone(), probe.count.clone());
            let _witness = center.observe(move |_: &Ev| s.store(count(), SeqCst));
            center.post(Ev(1));
            let expected = usize::from(before_witness);
            assert_eq!(
                seen_by_witness.load(SeqCst),
                expected,
                "{term:?} at priority {priority}"
            );
            assert_eq!((probe.read)(), [1], "{term:?}");
        }
    }
}

#[test]
fn sender_is_honoured_by_every_terminal() {
    for term in TYPED {
        let center = NotificationCenter::new();
        let (me, other) = (SenderId::new(), SenderId::new());
        let probe = attach(term, center.observer::<Ev>().sender(me));
        center.post_from(me, Ev(1));
        center.post_from(other, Ev(2));
        center.post(Ev(3));
        center.post_from(me, Ev(4));
        assert_eq!((probe.read)(), [1, 4], "{term:?}");
    }
}

#[test]
fn filter_is_honoured_by_every_terminal() {
    // With `Weak`, this is the cell that the weak-filter bug broke.
    for term in TYPED {
        let center = NotificationCenter::new();
        let probe = attach(term, center.observer::<Ev>().filter(|e| e.0 % 2 == 0));
        for i in 1..=5 {
            center.post(Ev(i));
        }
        assert_eq!((probe.read)(), [2, 4], "{term:?}");
    }
}

#[test]
fn sender_and_filter_combine_on_every_terminal() {
    for term in TYPED {
        let center = NotificationCenter::new();
        let me = SenderId::new();
        let probe = attach(term, center.observer::<Ev>().sender(me).filter(|e| e.0 > 1));
        center.post_from(me, Ev(1));
        center.post_from(me, Ev(2));
        center.post(Ev(3));
        assert_eq!((probe.read)(), [2], "{term:?}");
    }
}

#[test]
fn replay_is_honoured_by_every_terminal() {
    for term in TYPED {
        let center = NotificationCenter::new();
        center.retain_last::<Ev>();
        center.post(Ev(7));
        let probe = attach(term, center.observer::<Ev>().replay_last());
        center.post(Ev(8));
        assert_eq!((probe.read)(), [7, 8], "{term:?}");
    }
}

#[test]
fn replay_per_sender_is_honoured_by_every_terminal() {
    for term in TYPED {
        let center = NotificationCenter::new();
        center.retain_last::<Ev>();
        let (me, other) = (SenderId::new(), SenderId::new());
        center.post_from(me, Ev(5));
        center.post_from(other, Ev(6));
        let probe = attach(term, center.observer::<Ev>().sender(me).replay_last());
        center.post_from(other, Ev(9));
        assert_eq!((probe.read)(), [5], "{term:?}");
    }
}

#[test]
fn replay_with_filter_replays_only_what_passes() {
    for term in TYPED {
        let center = NotificationCenter::new();
        center.retain_last::<Ev>();
        center.post(Ev(3));
        let probe = attach(
            term,
            center
                .observer::<Ev>()
                .filter(|e| e.0 % 2 == 0)
                .replay_last(),
        );
        center.post(Ev(4));
        assert_eq!((probe.read)(), [4], "{term:?}");
    }
}

#[test]
fn policy_is_honoured_by_every_buffered_terminal() {
    for term in BUFFERED {
        // Drop-newest keeps the oldest two.
        let center = NotificationCenter::new();
        let builder = center
            .observer::<Ev>()
            .policy(Overflow::DropNewest { capacity: 2 });
        let probe = buffered_probe(term, builder, &center);
        for i in 1..=4 {
            center.post(Ev(i));
        }
        assert_eq!((probe.read)(), [1, 2], "{term:?} drop-newest");

        // Latest keeps the last one.
        let center = NotificationCenter::new();
        let builder = center.observer::<Ev>().policy(Overflow::Latest);
        let probe = buffered_probe(term, builder, &center);
        for i in 1..=4 {
            center.post(Ev(i));
        }
        assert_eq!((probe.read)(), [4], "{term:?} latest");

        // Drop-oldest keeps the newest two.
        let center = NotificationCenter::new();
        let builder = center
            .observer::<Ev>()
            .policy(Overflow::DropOldest { capacity: 2 });
        let probe = buffered_probe(term, builder, &center);
        for i in 1..=4 {
            center.post(Ev(i));
        }
        assert_eq!((probe.read)(), [3, 4], "{term:?} drop-oldest");
    }
}

#[test]
fn policy_combines_with_every_other_option() {
    for term in BUFFERED {
        let center = NotificationCenter::new();
        center.retain_last::<Ev>();
        let me = SenderId::new();
        center.post_from(me, Ev(10));
        let builder = center
            .observer::<Ev>()
            .sender(me)
            .filter(|e| e.0 % 2 == 0)
            .priority(3)
            .replay_last()
            .policy(Overflow::DropNewest { capacity: 3 });
        let probe = buffered_probe(term, builder, &center);
        for i in 1..=8 {
            center.post_from(me, Ev(i));
        }
        center.post(Ev(100));
        // Replayed 10, then the even values from `me` until the buffer (3) is full.
        assert_eq!((probe.read)(), [10, 2, 4], "{term:?}");
    }
}

#[test]
fn every_guard_unsubscribes_synchronously() {
    for term in TYPED {
        let center = NotificationCenter::new();
        let probe = attach(term, center.observer::<Ev>());
        center.post(Ev(1));
        // Reading ends the subscription (each probe drops or drains its guard).
        assert_eq!((probe.read)(), [1], "{term:?}");
        assert_eq!(center.stats::<Ev>().observers, 0, "{term:?}");
        assert_eq!(center.post(Ev(2)).received, 0, "{term:?}");
    }
}

#[test]
fn explicit_unsubscribe_verbs() {
    let center = NotificationCenter::new();
    let rt = runtime();
    center.observer::<Ev>().inline(|_| {}).unsubscribe();
    let mut stream = center.stream::<Ev>();
    stream.unsubscribe();
    center
        .observer::<Ev>()
        .spawn_with(SpawnOptions::new().handle(rt.handle().clone()), |_| async {
        })
        .unsubscribe();
    let target = Arc::new(());
    center
        .observer::<Ev>()
        .weak(&target, |_, _| {})
        .unsubscribe();
    let mut recorder = center.observer::<Ev>().record();
    recorder.unsubscribe();
    center.observer::<Wildcard>().inline(|_| {}).unsubscribe();
    let mut all = center.observer::<Wildcard>().record();
    all.unsubscribe();
    assert_eq!(center.stats::<Ev>().observers, 0);
    assert_eq!(center.post(Ev(1)).received, 0);
}

#[test]
fn weak_with_filter_expires_and_is_removed() {
    let center = NotificationCenter::new();
    let target: Log = Arc::default();
    center
        .observer::<Ev>()
        .filter(|e| e.0 > 1)
        .weak(&target, |log, n| push_ref(log, n.0))
        .detach();
    center.post(Ev(1));
    center.post(Ev(2));
    assert_eq!(*target.lock().unwrap(), [2]);
    drop(target);
    assert_eq!(center.post(Ev(3)).received, 0);
    assert_eq!(center.stats::<Ev>().observers, 0);
}

#[test]
fn a_weak_observer_whose_filter_refuses_every_later_post_still_goes_with_its_target() {
    let center = NotificationCenter::new();
    let target: Log = Arc::default();
    center
        .observer::<Ev>()
        .filter(|e| e.0 < 10)
        .weak(&target, |log, n| push_ref(log, n.0))
        .detach();
    center
        .observer::<Wildcard>()
        .family("matrix.")
        .filter(|n| value(n) < 10)
        .weak(&target, |log, n| push_ref(log, value(n)))
        .detach();
    center.post(Ev(1));
    assert_eq!(*target.lock().unwrap(), [1, 1]);
    assert_eq!(
        center.post(Ev(10)).received,
        0,
        "refused while the target lives"
    );
    drop(target);
    // Every later post is refused by both filters: the target's absence is found anyway.
    assert_eq!(center.post(Ev(11)).received, 0);
    assert_eq!(center.stats::<Ev>().observers, 0);
}

#[test]
fn inline_with_sender_and_queue_keep_the_sender() {
    let center = NotificationCenter::new();
    let me = SenderId::new();
    let senders = Arc::new(Mutex::new(Vec::new()));
    let s = senders.clone();
    let _sub = center
        .observer::<Ev>()
        .inline_with_sender(move |_, sender| s.lock().unwrap().push(sender));

    let ui = NotificationCenter::new();
    let queue = NotificationQueue::new(&ui);
    let mine = ui.observer::<Ev>().sender(me).record();
    let _feed = center
        .observer::<Ev>()
        .queue(&queue, PostingStyle::WhenIdle, Coalescing::None);
    center.post_from(me, Ev(1));
    center.post(Ev(2));
    queue.flush();
    assert_eq!(*senders.lock().unwrap(), [Some(me), None]);
    mine.assert_values(&[Ev(1)]);
}

// ---- wildcard ----

#[derive(Debug, Clone, Copy, PartialEq)]
enum WildTerm {
    Inline,
    Weak,
    Forward,
    Record,
}

const WILD: [WildTerm; 4] = [
    WildTerm::Inline,
    WildTerm::Weak,
    WildTerm::Forward,
    WildTerm::Record,
];

/// Subscribes a wildcard terminal; the probe reads values (`Other(n)` as `1000 + n`).
fn attach_wild(term: WildTerm, builder: ObserverBuilder<Wildcard>) -> Probe {
    let log: Log = Arc::default();
    let count_log = {
        let l = log.clone();
        Arc::new(move || l.lock().unwrap().len())
    };
    let keep: Box<dyn std::any::Any> = match term {
        WildTerm::Inline => {
            let l = log.clone();
            Box::new(builder.inline(move |n| push(&l, value(n))))
        }
        WildTerm::Weak => Box::new(builder.weak(&log, |log, n| push_ref(log, value(n)))),
        WildTerm::Forward => Box::new(builder.forward(LogAny(log.clone()))),
        WildTerm::Record => {
            // The recorder keeps names and senders; map names to the matrix's values.
            let recorder = Arc::new(Mutex::new(builder.record()));
            let r = recorder.clone();
            return Probe {
                count: Arc::new(move || r.lock().unwrap().count()),
                read: Box::new(move || {
                    let mut recorder = recorder.lock().unwrap();
                    recorder.unsubscribe();
                    recorder
                        .names()
                        .into_iter()
                        .map(|name| match name {
                            "matrix.ev" => 0,
                            "matrix.other" => 1000,
                            _ => u32::MAX,
                        })
                        .collect()
                }),
            };
        }
    };
    Probe {
        count: count_log,
        read: Box::new(move || {
            drop(keep);
            log.lock().unwrap().clone()
        }),
    }
}

/// What a wildcard probe reports for a value (records report names only).
fn wild(term: WildTerm, values: &[u32]) -> Vec<u32> {
    values
        .iter()
        .map(|v| match term {
            WildTerm::Record if *v >= 1000 => 1000,
            WildTerm::Record => 0,
            _ => *v,
        })
        .collect()
}

#[test]
fn wildcard_terminals_see_every_type() {
    for term in WILD {
        let center = NotificationCenter::new();
        let probe = attach_wild(term, center.observer::<Wildcard>());
        center.post(Ev(1));
        center.post(Other(2));
        center.post(Elsewhere);
        let mut expected = wild(term, &[1, 1002]);
        expected.push(u32::MAX);
        assert_eq!((probe.read)(), expected, "{term:?}");
    }
}

#[test]
fn family_is_honoured_by_every_wildcard_terminal() {
    for term in WILD {
        let center = NotificationCenter::new();
        let probe = attach_wild(term, center.observer::<Wildcard>().family("matrix."));
        center.post(Elsewhere);
        center.post(Ev(1));
        center.post(Other(2));
        assert_eq!((probe.read)(), wild(term, &[1, 1002]), "{term:?}");
    }
}

#[test]
fn sender_is_honoured_by_every_wildcard_terminal() {
    for term in WILD {
        let center = NotificationCenter::new();
        let (me, other) = (SenderId::new(), SenderId::new());
        let probe = attach_wild(term, center.observer::<Wildcard>().sender(me));
        center.post_from(me, Ev(1));
        center.post_from(other, Ev(2));
        center.post(Other(3));
        center.post_from(me, Other(4));
        assert_eq!((probe.read)(), wild(term, &[1, 1004]), "{term:?}");
    }
}

#[test]
fn filter_is_honoured_by_every_wildcard_terminal() {
    for term in WILD {
        let center = NotificationCenter::new();
        let probe = attach_wild(
            term,
            center.observer::<Wildcard>().filter(|n| n.is::<Other>()),
        );
        center.post(Ev(1));
        center.post(Other(2));
        let report = center.post(Ev(3));
        assert_eq!(
            report.received, 0,
            "{term:?}: a refused value is not received"
        );
        assert_eq!((probe.read)(), wild(term, &[1002]), "{term:?}");
    }
}

#[test]
fn family_sender_and_filter_combine() {
    for term in WILD {
        let center = NotificationCenter::new();
        let me = SenderId::new();
        let probe = attach_wild(
            term,
            center
                .observer::<Wildcard>()
                .family("matrix.")
                .sender(me)
                .filter(|n| n.is::<Ev>()),
        );
        center.post_from(me, Ev(1));
        center.post_from(me, Other(2));
        center.post_from(me, Elsewhere);
        center.post(Ev(3));
        assert_eq!((probe.read)(), wild(term, &[1]), "{term:?}");
    }
}

#[test]
fn wildcard_priority_interleaves_with_typed_observers() {
    for term in WILD {
        for (priority, expected_at_witness) in [(10, 1), (-10, 0)] {
            let center = NotificationCenter::new();
            let probe = attach_wild(
                term,
                center
                    .observer::<Wildcard>()
                    .family("matrix.")
                    .priority(priority),
            );
            let seen = Arc::new(AtomicUsize::new(usize::MAX));
            let (s, count) = (seen.clone(), probe.count.clone());
            let _typed = center.observe(move |_: &Ev| s.store(count(), SeqCst));
            center.post(Ev(1));
            assert_eq!(
                seen.load(SeqCst),
                expected_at_witness,
                "{term:?} at {priority}"
            );
            assert_eq!((probe.read)(), wild(term, &[1]), "{term:?}");
        }
    }
}

#[test]
fn family_and_typed_observers_of_equal_priority_run_in_registration_order() {
    let center = NotificationCenter::new();
    let order = Arc::new(Mutex::new(Vec::new()));
    let o = order.clone();
    let _a = center.observe(move |_: &Ev| o.lock().unwrap().push("typed 1"));
    let o = order.clone();
    let _f = center
        .observer::<Wildcard>()
        .family("matrix.")
        .inline(move |_| o.lock().unwrap().push("family"));
    let o = order.clone();
    let _b = center.observe(move |_: &Ev| o.lock().unwrap().push("typed 2"));
    let o = order.clone();
    let _high = center
        .observer::<Ev>()
        .priority(1)
        .inline(move |_| o.lock().unwrap().push("typed high"));
    center.post(Ev(1));
    assert_eq!(
        *order.lock().unwrap(),
        ["typed high", "typed 1", "family", "typed 2"]
    );
}

#[test]
fn wildcard_weak_expires_and_is_removed_from_every_type() {
    let center = NotificationCenter::new();
    let target: Log = Arc::default();
    center
        .observer::<Wildcard>()
        .family("matrix.")
        .weak(&target, |log, n| push_ref(log, value(n)))
        .detach();
    center.post(Ev(1));
    center.post(Other(1));
    assert_eq!(*target.lock().unwrap(), [1, 1001]);
    drop(target);
    assert_eq!(center.post(Ev(2)).received, 0);
    assert_eq!(center.stats::<Ev>().observers, 0);
    assert_eq!(center.stats::<Other>().observers, 0);
}

/// A type whose values carry their own names (as a relay's would).
struct Relayed(&'static str);
impl Notification for Relayed {
    fn name() -> &'static str {
        "relay.any"
    }
    const NAMES_VARY: bool = true;
    fn value_name(&self) -> &str {
        self.0
    }
}

#[test]
fn family_matches_each_value_name_of_types_that_name_their_values() {
    for term in WILD {
        let center = NotificationCenter::new();
        let names = Arc::new(Mutex::new(Vec::new()));
        let n = names.clone();
        let _names = center
            .observer::<Wildcard>()
            .family("matrix.")
            .inline(move |any| n.lock().unwrap().push(any.value_name().to_owned()));
        let probe = attach_wild(term, center.observer::<Wildcard>().family("matrix."));
        assert_eq!(
            center.post(Relayed("matrix.remote")).received,
            2,
            "{term:?}"
        );
        assert_eq!(
            center.post(Relayed("elsewhere.remote")).received,
            0,
            "{term:?}"
        );
        center.post(Ev(1));
        assert_eq!(
            *names.lock().unwrap(),
            ["matrix.remote", "matrix.ev"],
            "{term:?}"
        );
        // The probe sees the relayed value (not an `Ev`/`Other`) and the `Ev`.
        let expected = match term {
            WildTerm::Record => vec![u32::MAX, 0],
            _ => vec![u32::MAX, 1],
        };
        assert_eq!((probe.read)(), expected, "{term:?}");
    }
}
