//! Contract 9: wildcard and family observation, and weak observers.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;

use herald::{AnyNotification, Notification, NotificationCenter, ObserverPanicked, SenderId};

#[derive(Debug, Clone, PartialEq)]
struct Received(u64);
impl Notification for Received {
    fn name() -> &'static str {
        "chat.message.received"
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Joined(&'static str);
impl Notification for Joined {
    fn name() -> &'static str {
        "chat.member.joined"
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Tick;
impl Notification for Tick {
    fn name() -> &'static str {
        "clock.tick"
    }
}

fn log() -> (
    Arc<Mutex<Vec<String>>>,
    impl Fn(String) + Send + Sync + Clone + 'static,
) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    (log, move |s: String| l.lock().unwrap().push(s))
}

#[test]
fn observe_all_sees_every_type_with_name_and_downcast() {
    let center = NotificationCenter::new();
    let (log, push) = log();
    let _all = center
        .observer::<herald::Wildcard>()
        .inline(move |n: &AnyNotification<'_>| {
            let detail = if let Some(r) = n.downcast_ref::<Received>() {
                format!("received {}", r.0)
            } else if let Some(j) = n.downcast_ref::<Joined>() {
                format!("joined {}", j.0)
            } else {
                "other".to_owned()
            };
            push(format!("{}: {detail}", n.name()));
        });
    center.post(Received(7));
    center.post(Joined("ada"));
    center.post(Tick);
    assert_eq!(
        *log.lock().unwrap(),
        [
            "chat.message.received: received 7",
            "chat.member.joined: joined ada",
            "clock.tick: other"
        ]
    );
}

#[test]
fn family_observer_sees_only_its_prefix() {
    let center = NotificationCenter::new();
    let (log, push) = log();
    let _chat = center
        .observer::<herald::Wildcard>()
        .family("chat.")
        .inline(move |n| push(n.name().to_owned()));
    center.post(Tick);
    center.post(Received(1));
    center.post(Joined("x"));
    assert_eq!(
        *log.lock().unwrap(),
        ["chat.message.received", "chat.member.joined"]
    );
    assert!(center.post(Tick).is_dead());
}

#[test]
fn wildcard_sees_types_created_after_it() {
    #[derive(Debug)]
    struct Late;
    impl Notification for Late {
        fn name() -> &'static str {
            "chat.late"
        }
    }
    let center = NotificationCenter::new();
    let seen = Arc::new(AtomicUsize::new(0));
    let s = seen.clone();
    let _chat = center
        .observer::<herald::Wildcard>()
        .family("chat.")
        .inline(move |_| {
            s.fetch_add(1, SeqCst);
        });
    // `Late` has never been posted or observed: its channel is made by this post.
    assert_eq!(center.post(Late).received, 1);
    assert_eq!(seen.load(SeqCst), 1);
}

#[test]
fn wildcard_interleaves_with_typed_observers_by_priority_then_registration() {
    let center = NotificationCenter::new();
    let (log, push) = log();
    let p = push.clone();
    let _typed_first = center.observe(move |_: &Received| p("typed, registered first".into()));
    let p = push.clone();
    let _wild = center
        .observer::<herald::Wildcard>()
        .inline(move |_| p("wildcard, registered second".into()));
    let p = push.clone();
    let _high = center
        .observer::<herald::Wildcard>()
        .family("chat.")
        .priority(5)
        .inline(move |_| p("family, high priority".into()));
    let p = push.clone();
    let _typed_last = center.observe(move |_: &Received| p("typed, registered last".into()));
    center.post(Received(1));
    assert_eq!(
        *log.lock().unwrap(),
        [
            "family, high priority",
            "typed, registered first",
            "wildcard, registered second",
            "typed, registered last"
        ]
    );
}

#[test]
fn wildcard_sender_filter() {
    let center = NotificationCenter::new();
    let (alice, bob) = (SenderId::new(), SenderId::new());
    let (log, push) = log();
    let _from_alice = center
        .observer::<herald::Wildcard>()
        .sender(alice)
        .inline(move |n| push(format!("{} {:?}", n.name(), n.sender() == Some(alice))));
    center.post_from(bob, Received(1));
    center.post_from(alice, Received(2));
    center.post(Tick);
    assert_eq!(*log.lock().unwrap(), ["chat.message.received true"]);
}

#[test]
fn wildcard_panic_is_isolated_and_reported() {
    let center = NotificationCenter::new();
    let reports = Arc::new(Mutex::new(Vec::new()));
    let r = reports.clone();
    let _watch = center.observe(move |p: &ObserverPanicked| {
        r.lock().unwrap().push((p.notification, p.message.clone()))
    });
    let _bad = center
        .observer::<herald::Wildcard>()
        .family("chat.")
        .inline(|_| panic!("wild boom"));
    let ok = Arc::new(AtomicUsize::new(0));
    let o = ok.clone();
    let _good = center.observe(move |_: &Received| {
        o.fetch_add(1, SeqCst);
    });
    let report = center.post(Received(1));
    assert_eq!((report.received, report.panicked), (1, 1));
    assert_eq!(ok.load(SeqCst), 1);
    assert_eq!(
        *reports.lock().unwrap(),
        [("chat.message.received", "wild boom".to_owned())]
    );
}

#[test]
fn dropping_a_wildcard_unsubscribes_it_from_every_type() {
    let center = NotificationCenter::new();
    let seen = Arc::new(AtomicUsize::new(0));
    let s = seen.clone();
    let all = center.observer::<herald::Wildcard>().inline(move |_| {
        s.fetch_add(1, SeqCst);
    });
    center.post(Received(1));
    center.post(Tick);
    drop(all);
    center.post(Received(2));
    center.post(Tick);
    assert_eq!(seen.load(SeqCst), 2);
    assert_eq!(center.stats::<Received>().observers, 0);
    assert_eq!(center.stats::<Tick>().observers, 0);
}

#[test]
fn wildcard_may_unsubscribe_itself_from_inside_its_callback() {
    let center = NotificationCenter::new();
    let slot: Arc<Mutex<Option<herald::Subscription>>> = Arc::new(Mutex::new(None));
    let s = slot.clone();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let sub = center.observer::<herald::Wildcard>().inline(move |_| {
        c.fetch_add(1, SeqCst);
        drop(s.lock().unwrap().take());
    });
    *slot.lock().unwrap() = Some(sub);
    center.post(Tick);
    center.post(Tick);
    assert_eq!(calls.load(SeqCst), 1);
}

/// A wildcard added or removed while another thread posts never misses or duplicates a post
/// for the interval it was subscribed: it sees one contiguous run of sequence numbers, and
/// after the drop returns it is never called again.
#[test]
fn wildcard_churn_while_posting_sees_contiguous_runs_and_is_quiescent() {
    const POSTS: u64 = 50_000;
    let center = NotificationCenter::new();
    let done = Arc::new(AtomicBool::new(false));
    let poster = {
        let center = center.clone();
        thread::spawn(move || {
            for i in 0..POSTS {
                center.post(Received(i));
            }
        })
    };
    let mut rounds = 0;
    while !poster.is_finished() || rounds < 3 {
        rounds += 1;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let gone = Arc::new(AtomicBool::new(false));
        let (s, g) = (seen.clone(), gone.clone());
        let sub = center
            .observer::<herald::Wildcard>()
            .family("chat.")
            .inline(move |n| {
                assert!(!g.load(SeqCst), "called after its drop returned");
                if let Some(r) = n.downcast_ref::<Received>() {
                    s.lock().unwrap().push(r.0);
                }
            });
        thread::yield_now();
        drop(sub);
        gone.store(true, SeqCst);
        let seen = seen.lock().unwrap();
        for w in seen.windows(2) {
            assert_eq!(w[1], w[0] + 1, "gap or duplicate: {w:?}");
        }
    }
    done.store(true, SeqCst);
    poster.join().unwrap();
    assert!(rounds >= 3);
}

/// Counts live closures: a weak observer's closure must be freed once it expires.
struct Alive(Arc<AtomicUsize>);
impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

#[test]
fn weak_observer_is_called_while_target_lives() {
    let center = NotificationCenter::new();
    let target = Arc::new(Mutex::new(Vec::new()));
    center
        .observer::<Received>()
        .weak(&target, |t: &Mutex<Vec<u64>>, n: &Received| {
            t.lock().unwrap().push(n.0)
        })
        .detach();
    center.post(Received(1));
    center.post(Received(2));
    assert_eq!(*target.lock().unwrap(), [1, 2]);
    assert_eq!(
        Arc::strong_count(&target),
        1,
        "the hub holds no strong reference"
    );
}

#[test]
fn weak_observer_expires_without_leaking_its_closure() {
    let center = NotificationCenter::new();
    let live = Arc::new(AtomicUsize::new(1));
    let token = Alive(live.clone());
    let target = Arc::new(());
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    center
        .observer::<Received>()
        .weak(&target, move |_: &(), _: &Received| {
            let _keep = &token;
            c.fetch_add(1, SeqCst);
        })
        .detach();
    center.post(Received(1));
    assert_eq!(live.load(SeqCst), 1);
    drop(target);
    let report = center.post(Received(2));
    assert_eq!(
        report.received, 0,
        "an expired observer does not count as received"
    );
    assert_eq!(calls.load(SeqCst), 1);
    assert_eq!(center.stats::<Received>().observers, 0);
    assert_eq!(live.load(SeqCst), 0, "the closure was freed");
    center.post(Received(3));
    assert_eq!(calls.load(SeqCst), 1);
}

#[test]
fn weak_observer_expiry_does_not_disturb_the_others() {
    let center = NotificationCenter::new();
    let (log, push) = log();
    let p = push.clone();
    let _before = center.observe(move |n: &Received| p(format!("before {}", n.0)));
    let target = Arc::new(());
    let p = push.clone();
    center
        .observer::<Received>()
        .weak(&target, move |_: &(), n: &Received| {
            p(format!("weak {}", n.0))
        })
        .detach();
    let p = push.clone();
    let _after = center.observe(move |n: &Received| p(format!("after {}", n.0)));
    center.post(Received(1));
    drop(target);
    center.post(Received(2));
    center.post(Received(3));
    assert_eq!(
        *log.lock().unwrap(),
        [
            "before 1", "weak 1", "after 1", "before 2", "after 2", "before 3", "after 3"
        ]
    );
}

#[test]
fn weak_observers_expire_under_concurrent_posts() {
    let center = NotificationCenter::new();
    let live = Arc::new(AtomicUsize::new(0));
    let mut targets = Vec::new();
    for _ in 0..64 {
        let target = Arc::new(());
        live.fetch_add(1, SeqCst);
        let token = Alive(live.clone());
        center
            .observer::<Received>()
            .weak(&target, move |_: &(), _: &Received| {
                let _keep = &token;
            })
            .detach();
        targets.push(target);
    }
    let posters: Vec<_> = (0..2)
        .map(|_| {
            let center = center.clone();
            thread::spawn(move || {
                for i in 0..5_000 {
                    center.post(Received(i));
                }
            })
        })
        .collect();
    targets.clear();
    for p in posters {
        p.join().unwrap();
    }
    center.post(Received(0));
    assert_eq!(center.stats::<Received>().observers, 0);
    assert_eq!(live.load(SeqCst), 0, "every expired closure was freed");
}
