//! Push fan-out over workers and the registry on NATS key-value, against a real `nats-server`
//! (see `tests/nats_support`) and the mock APNs server over real sockets:
//! - an `ApnsSink` with a `NatsPushQueue` delivers through `PushWorker`s: one outcome per push,
//!   posted into the sink's center as without NATS, 410s reaching the registry;
//! - a worker that dies between send and ack: the push is sent again with the same apns-id
//!   and collapse id, and the sink still sees exactly one outcome;
//! - bad jobs, missing workers and shutdown are reported, never silent; a job that is not a
//!   valid push gets one failed outcome and is never redelivered;
//! - one push dispatched twice is sent once; two subject prefixes cannot share stream names;
//!   `WorkerMetrics::in_flight` counts the jobs held; a job that comes while a worker stops
//!   goes to the next worker at once; a worker back from a short outage takes jobs again
//!   within seconds;
//! - `NatsKvStore` passes the registry store conformance suite, several connections
//!   registering at once lose nothing, it waits for a server that is not up yet, and takes
//!   credentials in its URL without ever showing them.
//!
//! Runs when `nats-server` is installed, reported ignored otherwise (failing instead with
//! `HERALD_REQUIRE_NATS=1`).

mod nats_support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_nats::jetstream;
use futures::{FutureExt, StreamExt};
use herald::apns::{ApnsClient, Payload};
use herald::bridge::{
    ApnsSink, Device, DeviceRegistry, Environment, Message, PushAccepted, PushFailed, PushRejected,
    TokenInvalidated, conformance,
};
use herald::mock::MockApns;
use herald::nats::{
    ErrorKind, NatsBridge, NatsKvStore, NatsPushQueue, OutcomeImport, PushQueueConfig, PushWorker,
    RemotePushOutcome, RemoteResult,
};
use herald::{Notification, NotificationCenter};
use nats_support::push::{
    BUNDLE, client_of, mock_apns, push_queue, quick_bridge, start_worker, token,
};
use nats_support::{NatsServer, PATIENCE, record, until};

#[derive(Debug, Clone)]
struct Ping {
    user: String,
    n: u64,
}
impl Notification for Ping {}

/// What the sink's center saw, by apns-id.
#[derive(Default)]
struct Outcomes {
    by_id: Mutex<HashMap<String, Vec<&'static str>>>,
    invalidated: Mutex<Vec<String>>,
    total: AtomicU64,
}

impl Outcomes {
    fn observe(self: &Arc<Self>, center: &NotificationCenter) -> Vec<herald::Subscription> {
        let (a, r, f, i) = (self.clone(), self.clone(), self.clone(), self.clone());
        vec![
            center.observe(move |n: &PushAccepted| a.add(&n.apns_id, "accepted")),
            center.observe(move |n: &PushRejected| r.add(&n.apns_id, "rejected")),
            center.observe(move |n: &PushFailed| {
                let id = n
                    .push
                    .as_ref()
                    .map(|p| p.apns_id().to_owned())
                    .unwrap_or_default();
                f.add(&id, "failed")
            }),
            center.observe(move |n: &TokenInvalidated| {
                i.invalidated.lock().unwrap().push(n.token.clone())
            }),
        ]
    }

    fn add(&self, id: &str, what: &'static str) {
        self.by_id
            .lock()
            .unwrap()
            .entry(id.to_owned())
            .or_default()
            .push(what);
        self.total.fetch_add(1, Ordering::SeqCst);
    }

    fn total(&self) -> u64 {
        self.total.load(Ordering::SeqCst)
    }

    fn assert_one_each(&self) {
        for (id, seen) in self.by_id.lock().unwrap().iter() {
            assert_eq!(seen.len(), 1, "push {id} got {seen:?}");
        }
    }

    fn count(&self, what: &str) -> usize {
        self.by_id
            .lock()
            .unwrap()
            .values()
            .filter(|v| v.first() == Some(&what))
            .count()
    }
}

async fn pushes_through_workers_reach_the_device_once_and_report_back() {
    let server = NatsServer::start();
    let mock = MockApns::start().await.unwrap();
    let registry = DeviceRegistry::in_memory();
    // alice: 3 devices, one of which APNs knows to be gone.
    let alive = [token(1), token(2)];
    let gone = token(3);
    for t in alive.iter().chain([&gone]) {
        mock.register_device(t, BUNDLE);
        registry
            .register(Device::new("alice", t, BUNDLE, Environment::Sandbox))
            .unwrap();
    }
    // Gone since after it registered (an earlier 410 time would keep it: it registered again).
    mock.mark_unregistered(&gone, SystemTime::now() + Duration::from_secs(1));

    let (_posting, queue) = push_queue(&server, PushQueueConfig::default()).await;
    let sink = ApnsSink::builder(ApnsClient::builder().build().unwrap())
        .registry(registry.clone())
        .topic(BUNDLE)
        .dispatch(queue.clone())
        .build();
    let center = NotificationCenter::new();
    let _lifecycle = registry.observe(&center);
    let outcomes = Arc::new(Outcomes::default());
    let _obs = outcomes.observe(&center);
    let forwarding = center.observer::<Ping>().forward(
        sink.map(|p: &Ping| Message::to_subject(&p.user, Payload::alert(format!("ping {}", p.n)))),
    );

    let mut workers = Vec::new();
    let mut bridges = Vec::new();
    for i in 0..2 {
        let (b, worker) = start_worker(
            &server,
            PushWorker::builder(client_of(&mock))
                .name(format!("w{i}"))
                .concurrency(8),
        )
        .await;
        workers.push(worker);
        bridges.push(b);
    }

    center.post(Ping {
        user: "alice".into(),
        n: 1,
    });
    until("three outcomes", || outcomes.total() >= 3).await;
    forwarding.idle().await;
    outcomes.assert_one_each();
    assert_eq!(
        outcomes.count("accepted"),
        2,
        "{:?} {:?}",
        outcomes.by_id.lock().unwrap(),
        mock.pushes()
            .iter()
            .map(|p| (p.status, p.reason.clone()))
            .collect::<Vec<_>>()
    );
    assert_eq!(outcomes.count("rejected"), 1);
    // The 410 reached the registry, as without NATS.
    assert_eq!(*outcomes.invalidated.lock().unwrap(), vec![gone.clone()]);
    let mut left: Vec<String> = registry
        .devices("alice")
        .unwrap()
        .into_iter()
        .map(|d| d.token)
        .collect();
    left.sort();
    assert_eq!(left, alive.to_vec());
    // Each push went out once, with its own apns-id as collapse id.
    let pushes = mock.pushes();
    assert_eq!(pushes.len(), 3);
    for p in &pushes {
        let collapse = p
            .headers
            .iter()
            .find(|(k, _)| k == "apns-collapse-id")
            .map(|(_, v)| v.clone());
        assert_eq!(collapse.as_deref(), Some(p.apns_id.as_str()));
        assert_eq!(mock.accepted_count(&p.apns_id), u32::from(p.status == 200));
    }
    let m = sink.metrics();
    assert_eq!(
        (m.sent, m.accepted, m.rejected, m.invalidated),
        (3, 2, 1, 1)
    );
    let q = queue.metrics();
    assert_eq!((q.enqueued, q.outcomes, q.waiting), (3, 3, 0));
    let received: u64 = workers.iter().map(|w| w.metrics().received).sum();
    assert_eq!(received, 3);
    for w in &workers {
        w.shutdown().await;
    }
}

async fn a_worker_that_dies_between_send_and_ack_leads_to_one_resend_and_one_outcome() {
    let server = NatsServer::start();
    let mock = mock_apns().await;
    let config = PushQueueConfig::default().ack_wait(Duration::from_millis(800));
    let (_posting, queue) = push_queue(&server, config.clone()).await;
    let sink = ApnsSink::builder(ApnsClient::builder().build().unwrap())
        .topic(BUNDLE)
        .dispatch(queue.clone())
        .build();
    let center = NotificationCenter::new();
    let outcomes = Arc::new(Outcomes::default());
    let _obs = outcomes.observe(&center);
    let forwarding = center.observer::<Ping>().forward(sink.map(|p: &Ping| {
        Message::to_token(token(p.n as u32), Payload::alert("hi")).collapse_id("mine")
    }));

    // A "worker" that takes the job, sends it, and dies before reporting or acknowledging:
    // the first worker to start creates the shared consumer, with the configured ack_wait.
    let (first, doomed) = start_worker(
        &server,
        PushWorker::builder(client_of(&mock)).config(config.clone()),
    )
    .await;
    doomed.shutdown().await;
    let js = jetstream::new(first.client().clone());
    let consumer = nats_support::push::workers_consumer(&first).await;
    center.post(Ping {
        user: String::new(),
        n: 7,
    });
    let job = loop {
        let mut batch = consumer
            .fetch()
            .max_messages(1)
            .expires(Duration::from_secs(1))
            .messages()
            .await
            .unwrap();
        if let Some(m) = std::future::poll_fn(|cx| {
            futures::Stream::poll_next(std::pin::Pin::new(&mut batch), cx)
        })
        .await
        {
            break m.unwrap();
        }
    };
    let job_json: serde_json::Value = serde_json::from_slice(&job.payload).unwrap();
    let apns_id = job_json["apns_id"].as_str().unwrap().to_owned();
    assert_eq!(
        job_json["collapse_id"], "mine",
        "the user's collapse id is kept"
    );
    let client = client_of(&mock);
    let push = herald::apns::Push::builder(token(7), BUNDLE)
        .apns_id(apns_id.clone())
        .collapse_id("mine")
        .payload(&Payload::alert("hi"))
        .unwrap()
        .build()
        .unwrap();
    assert!(client.send(push).await.is_accepted());
    drop(job); // dies: no outcome, no ack

    // A live worker gets it after ack_wait and sends it again.
    let (_second, worker) = start_worker(
        &server,
        PushWorker::builder(client_of(&mock)).config(config),
    )
    .await;
    until("the outcome", || outcomes.total() >= 1).await;
    forwarding.idle().await;
    assert_eq!(
        mock.accepted_count(&apns_id),
        2,
        "sent twice: at least once"
    );
    let collapse: Vec<String> = mock
        .pushes()
        .iter()
        .filter(|p| p.apns_id == apns_id)
        .filter_map(|p| {
            p.headers
                .iter()
                .find(|(k, _)| k == "apns-collapse-id")
                .map(|(_, v)| v.clone())
        })
        .collect();
    assert_eq!(
        collapse,
        vec!["mine", "mine"],
        "the same collapse id both times"
    );
    outcomes.assert_one_each();
    assert_eq!(outcomes.total(), 1);
    // The worker acknowledges after publishing the outcome (and waits for the server to
    // confirm the ack), so the outcome can be seen here before the ack is counted.
    until("the ack", || worker.metrics().acked >= 1).await;
    let m = worker.metrics();
    assert_eq!((m.received, m.redelivered, m.acked), (1, 1, 1));

    // A worker that reported and died before acknowledging: the redelivered push's second
    // outcome is dropped by the server's duplicate window.
    let outcome_stream = js.get_stream("HERALD_PUSH_OUTCOMES").await.unwrap();
    let before = outcome_stream.get_info().await.unwrap().state.messages;
    assert_eq!(before, 1);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", apns_id.as_str());
    let ack = js
        .publish_with_headers("herald.push.outcome", headers, "{}".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(ack.duplicate, "the outcome stream drops a second outcome");
    worker.shutdown().await;
}

async fn bad_jobs_and_missing_workers_are_reported_not_silent() {
    let server = NatsServer::start();
    let posting = quick_bridge(&server).await;
    let config = PushQueueConfig::default().outcome_timeout(Duration::from_millis(500));
    let queue = NatsPushQueue::start(&posting, config.clone())
        .await
        .unwrap();
    let sink = ApnsSink::builder(ApnsClient::builder().build().unwrap())
        .topic(BUNDLE)
        .dispatch(queue.clone())
        .build();
    let center = NotificationCenter::new();
    let failures = Arc::new(Mutex::new(Vec::new()));
    let f = failures.clone();
    let _obs = center.observe(move |n: &PushFailed| {
        f.lock().unwrap().push(n.error.clone());
    });
    let forwarding = center
        .observer::<Ping>()
        .forward(sink.map(|p: &Ping| Message::to_token(token(p.n as u32), Payload::alert("hi"))));
    // No worker: the push times out, typed, and stays queued.
    center.post(Ping {
        user: String::new(),
        n: 1,
    });
    forwarding.idle().await;
    {
        let f = failures.lock().unwrap();
        assert_eq!(f.len(), 1);
        assert!(f[0].is_timeout(), "{}", f[0]);
    }
    assert_eq!(queue.metrics().timed_out, 1);

    // A job nobody can decode is terminated and counted; the valid one is still delivered.
    let js = jetstream::new(posting.client().clone());
    js.publish("herald.push.job", "not json".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let mock = mock_apns().await;
    let (_b, worker) = start_worker(
        &server,
        PushWorker::builder(client_of(&mock)).config(config),
    )
    .await;
    until("both jobs taken", || worker.metrics().received >= 2).await;
    until("the timed-out push delivered", || mock.pushes().len() == 1).await;
    until("its outcome published", || worker.metrics().reported == 1).await;
    let m = worker.metrics();
    assert_eq!(m.undecodable, 1);
    // Its late outcome matches nothing waiting on the posting side.
    until("the late outcome seen", || queue.metrics().unmatched == 1).await;
    worker.shutdown().await;
    assert_eq!(worker.metrics().in_flight, 0);
}

async fn a_stopped_server_fails_enqueues_with_a_typed_error() {
    let mut server = NatsServer::start();
    let posting = quick_bridge(&server).await;
    let queue = NatsPushQueue::start(
        &posting,
        PushQueueConfig::default().enqueue_timeout(Duration::from_secs(1)),
    )
    .await
    .unwrap();
    let sink = ApnsSink::builder(ApnsClient::builder().build().unwrap())
        .topic(BUNDLE)
        .dispatch(queue.clone())
        .build();
    let center = NotificationCenter::new();
    let failures = Arc::new(Mutex::new(Vec::new()));
    let f = failures.clone();
    let _obs = center.observe(move |n: &PushFailed| f.lock().unwrap().push(n.error.clone()));
    let forwarding = center
        .observer::<Ping>()
        .forward(sink.map(|p: &Ping| Message::to_token(token(p.n as u32), Payload::alert("hi"))));
    server.kill();
    center.post(Ping {
        user: String::new(),
        n: 1,
    });
    forwarding.idle().await;
    let f = failures.lock().unwrap();
    assert_eq!(f.len(), 1);
    assert!(
        f[0].is_connection_lost(),
        "not confirmed: may or may not be queued: {}",
        f[0]
    );
    assert_eq!(queue.metrics().enqueue_failed, 1);
}

/// A job that decodes but is not a valid push (an expiration past what a time holds, which
/// once panicked the worker's task and came back forever) gets exactly one failed outcome
/// (`InvalidPush`), is acknowledged, so never redelivered, and nothing reaches APNs.
async fn a_job_that_is_not_a_valid_push_gets_one_failed_outcome_and_is_acknowledged() {
    let server = NatsServer::start();
    let mock = mock_apns().await;
    let config = PushQueueConfig::default();
    let keeper_bridge = quick_bridge(&server).await;
    let keeper = NotificationCenter::new();
    let (seen, _s) = record::<RemotePushOutcome>(&keeper);
    let import = OutcomeImport::start(&keeper_bridge, &config, "keeper", &keeper)
        .await
        .unwrap();
    let id = "4a1b6f1e-0000-4000-8000-0000000000e1";
    let job = serde_json::json!({
        "v": 1, "apns_id": id, "token": token(3), "topic": BUNDLE,
        "push_type": "alert", "priority": 10, "expiration_s": u64::MAX,
        "collapse_id": id, "payload": "{\"aps\":{}}", "enqueued_ms": 1
    });
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", id);
    jetstream::new(keeper_bridge.client().clone())
        .publish_with_headers("herald.push.job", headers, job.to_string().into())
        .await
        .unwrap()
        .await
        .unwrap();
    let (_b, worker) = start_worker(
        &server,
        PushWorker::builder(client_of(&mock))
            .config(config)
            .name("w"),
    )
    .await;
    // Acknowledged (the server confirmed it): the queue never hands it out again.
    until("the outcome imported and the job acknowledged", || {
        import.stats().imported == 1 && worker.metrics().acked == 1
    })
    .await;
    let o = seen.lock().unwrap()[0].clone();
    assert_eq!((o.apns_id.as_str(), o.delivery), (id, 1));
    match &o.result {
        RemoteResult::Failed { kind, message } => {
            assert_eq!(kind, "InvalidPush");
            assert!(message.contains("expiration"), "{message}");
        }
        other => panic!("expected a failed outcome, got {other:?}"),
    }
    let m = worker.metrics();
    assert_eq!(
        (m.received, m.redelivered, m.failed, m.undecodable),
        (1, 0, 1, 0),
        "{m:?}"
    );
    assert!(mock.pushes().is_empty());
    worker.shutdown().await;
}

/// Waits until a worker's long poll (a pull request) is open on the queue's consumer.
async fn until_a_long_poll_is_open(posting: &NatsBridge) {
    nats_support::push::until_consumer(posting, "a long poll", |info| info.num_waiting > 0).await;
}

/// `WorkerMetrics::in_flight` is "jobs held now": none while the worker waits for jobs (its
/// long poll is open on the server), one while APNs takes its time with a push, none after.
async fn in_flight_counts_the_jobs_held_and_nothing_while_waiting() {
    let server = NatsServer::start();
    let mock = nats_support::push::slow_mock_apns(Duration::from_secs(1)).await;
    let (posting, queue) = push_queue(&server, PushQueueConfig::default()).await;
    let (_b, worker) = start_worker(
        &server,
        PushWorker::builder(client_of(&mock)).concurrency(8),
    )
    .await;
    until_a_long_poll_is_open(&posting).await;
    let m = worker.metrics();
    assert_eq!(
        (m.received, m.in_flight),
        (0, 0),
        "waiting holds nothing: {m:?}"
    );
    let push = herald::apns::Push::builder(token(5), BUNDLE)
        .build()
        .unwrap();
    let sending = tokio::spawn({
        let queue = queue.clone();
        async move { herald::bridge::PushDispatch::dispatch(&queue, push, None).await }
    });
    until("the push held", || worker.metrics().in_flight == 1).await;
    let outcome = tokio::time::timeout(PATIENCE, sending)
        .await
        .unwrap()
        .unwrap();
    assert!(outcome.is_accepted(), "{outcome:?}");
    until("nothing held", || worker.metrics().in_flight == 0).await;
    worker.shutdown().await;
    assert_eq!(worker.metrics().in_flight, 0);
}

/// A job that reaches a worker once it has begun to stop is not started: it is handed back
/// at once (or never delivered), so the next worker gets it without waiting out `ack_wait`
/// (a minute here), and it gets one outcome.
async fn a_job_that_comes_while_a_worker_stops_goes_to_the_next_worker_at_once() {
    use herald::bridge::PushDispatch;
    let server = NatsServer::start();
    let mock = mock_apns().await;
    let config = PushQueueConfig::default().ack_wait(Duration::from_secs(60));
    let (posting, queue) = push_queue(&server, config.clone()).await;
    let (_b, stopping) = start_worker(
        &server,
        PushWorker::builder(client_of(&mock)).config(config.clone()),
    )
    .await;
    until_a_long_poll_is_open(&posting).await;
    // Begin the stop (its first step is synchronous), then queue a job while its long poll
    // is still open.
    let mut shutdown = std::pin::pin!(stopping.shutdown());
    let _ = shutdown.as_mut().now_or_never();
    let push = herald::apns::Push::builder(token(9), BUNDLE)
        .build()
        .unwrap();
    let id = push.apns_id().to_owned();
    let sending = tokio::spawn(queue.dispatch(push, None));
    until("the job queued", || queue.metrics().enqueued == 1).await;
    tokio::time::timeout(PATIENCE, shutdown)
        .await
        .expect("the stop ends with the long poll");
    let m = stopping.metrics();
    assert_eq!((m.received, m.acked, m.abandoned), (0, 0, 0), "{m:?}");
    assert!(m.given_back <= 1, "{m:?}");
    eprintln!("handed back: {}", m.given_back);

    let (_b, next) = start_worker(&server, PushWorker::builder(client_of(&mock))).await;
    let outcome = tokio::time::timeout(PATIENCE, sending)
        .await
        .expect("the next worker took it before ack_wait")
        .unwrap();
    assert!(outcome.is_accepted(), "{outcome:?}");
    assert_eq!(mock.accepted_count(&id), 1);
    assert_eq!(next.metrics().received, 1);
    next.shutdown().await;
}

/// One push (one apns-id) dispatched twice while the first still waits: one job, sent once,
/// and both dispatches get its outcome. Dispatched again once nobody waits for it any more:
/// the stream keeps one job per apns-id within its duplicate window, so it is refused at once,
/// typed, instead of waiting for an outcome that cannot come.
async fn the_same_push_twice_is_sent_once_and_again_later_is_refused_at_once() {
    use herald::apns::{ErrorKind as ApnsErrorKind, Push, PushOutcome};
    use herald::bridge::PushDispatch;
    let server = NatsServer::start();
    let mock = mock_apns().await;
    let (_posting, queue) = push_queue(&server, PushQueueConfig::default()).await;
    let push = Push::builder(token(7), BUNDLE).build().unwrap();
    let id = push.apns_id().to_owned();
    let first = tokio::spawn(queue.dispatch(push.clone(), None));
    let second = tokio::spawn(queue.dispatch(push.clone(), None));
    until("both queued", || {
        let m = queue.metrics();
        m.enqueued == 2 && m.waiting == 2
    })
    .await;
    let (_b, worker) = start_worker(&server, PushWorker::builder(client_of(&mock))).await;
    for dispatch in [first, second] {
        let outcome = tokio::time::timeout(PATIENCE, dispatch)
            .await
            .unwrap()
            .unwrap();
        assert!(
            matches!(&outcome, PushOutcome::Accepted(a) if a.apns_id == id),
            "{outcome:?}"
        );
    }
    assert_eq!(mock.accepted_count(&id), 1, "sent once");
    let again = tokio::time::timeout(PATIENCE, queue.dispatch(push, None))
        .await
        .expect("refused at once, not after the outcome timeout");
    match &again {
        PushOutcome::Failed(f) => {
            assert_eq!(f.error.kind(), ApnsErrorKind::InvalidPush, "{}", f.error);
            assert!(f.error.to_string().contains("new apns-id"), "{}", f.error);
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    let m = queue.metrics();
    assert_eq!(
        (m.duplicates, m.outcomes, m.waiting, m.unmatched),
        (1, 2, 0, 0),
        "{m:?}"
    );
    assert_eq!(worker.metrics().received, 1);
    worker.shutdown().await;
}

/// Two subject prefixes on one server with the default stream names: the second side to
/// start is refused with an error that says what to change, not left publishing into (or
/// reading from) a stream that does not hold its subjects.
async fn two_prefixes_cannot_share_stream_names() {
    let server = NatsServer::start();
    let prefixed = |prefix: &'static str| {
        let url = server.url();
        async move {
            NatsBridge::builder()
                .subject_prefix(prefix)
                .connect(&url)
                .await
                .unwrap()
        }
    };
    let (eu, us) = (prefixed("eu.").await, prefixed("us.").await);
    let _eu_queue = NatsPushQueue::start(&eu, PushQueueConfig::default())
        .await
        .unwrap();
    let err = NatsPushQueue::start(&us, PushQueueConfig::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::JetStream, "{err}");
    assert!(err.to_string().contains("HERALD_PUSH"), "{err}");
    assert!(err.to_string().contains("PushQueueConfig::stream"), "{err}");
    let err = PushWorker::builder(ApnsClient::builder().build().unwrap())
        .start(&us)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::JetStream, "{err}");
    // With stream names of its own, the second prefix works beside the first.
    let own = PushQueueConfig::default()
        .stream("US_PUSH")
        .outcome_stream("US_PUSH_OUTCOMES");
    NatsPushQueue::start(&us, own).await.unwrap();
}

/// Workers and posting sides started together against a server without the queue's streams
/// all start: each finds the streams and the consumer missing and asks to create them, and
/// the server may refuse all but the first creation ("subjects overlap with an existing
/// stream") although what was asked for now exists. Once in a while that made one of two
/// `herald worker`s started together exit with code 3. Many rounds of eight starts, as the
/// refusal needs two creations inside the server at the same moment (about one round in
/// seventy before the fix).
async fn workers_and_posting_sides_starting_together_on_a_new_server_all_start() {
    const STARTS: usize = 8;
    const ROUNDS: usize = 100;
    let server = NatsServer::start();
    let admin = jetstream::new(quick_bridge(&server).await.client().clone());
    let mut bridges = Vec::new();
    for _ in 0..STARTS {
        bridges.push(quick_bridge(&server).await);
    }
    for round in 0..ROUNDS {
        for stream in ["HERALD_PUSH", "HERALD_PUSH_OUTCOMES"] {
            let _ = admin.delete_stream(stream).await;
        }
        let starts: Vec<_> = bridges
            .iter()
            .enumerate()
            .map(|(i, bridge)| {
                let bridge = bridge.clone();
                tokio::spawn(async move {
                    if i % 2 == 0 {
                        PushWorker::builder(ApnsClient::builder().build().unwrap())
                            .start(&bridge)
                            .await
                            .map(Some)
                    } else {
                        NatsPushQueue::start(&bridge, PushQueueConfig::default())
                            .await
                            .map(|_| None)
                    }
                })
            })
            .collect();
        let mut workers = Vec::new();
        for (i, start) in starts.into_iter().enumerate() {
            match start.await.unwrap() {
                Ok(worker) => workers.extend(worker),
                Err(e) => panic!("round {round}: start {i} refused: {e:?}"),
            }
        }
        // Dropped: stopped at once (they hold nothing), not waiting for their pull requests
        // to end as a shutdown does.
        drop(workers);
    }
}

/// A bridge that reaches `link`'s server through it, reconnecting every 20 ms at first and
/// at most every `max_backoff`.
async fn bridge_through(link: &nats_support::Link, max_backoff: Duration) -> NatsBridge {
    NatsBridge::builder()
        .reconnect_backoff(Duration::from_millis(20), max_backoff)
        .connect(&link.url())
        .await
        .unwrap()
}

/// A stopping worker whose connection breaks and comes back (a reconnection, shorter than
/// `ABANDON_AFTER`) gives up nothing: the push it holds is sent, reported and acknowledged,
/// not left to be sent again after `ack_wait`.
async fn a_reconnection_during_a_stop_gives_up_nothing() {
    use herald::bridge::PushDispatch;
    let server = NatsServer::start();
    let link = nats_support::Link::start(server.port(), true).await;
    // APNs takes a while: the push is held while the link breaks and comes back.
    let mock = nats_support::push::slow_mock_apns(Duration::from_millis(1500)).await;
    let (_posting, queue) = push_queue(&server, PushQueueConfig::default()).await;
    let bridge = bridge_through(&link, Duration::from_millis(100)).await;
    let worker = PushWorker::builder(client_of(&mock))
        .start(&bridge)
        .await
        .unwrap();
    let push = herald::apns::Push::builder(token(7), BUNDLE)
        .build()
        .unwrap();
    let sending = tokio::spawn(queue.dispatch(push, None));
    until("the push held", || worker.metrics().in_flight == 1).await;
    // The stop begins (join! polls it first), then the link breaks and comes back.
    let blip = async {
        let mut states = nats_support::cut_and_wait(&bridge, || link.cut()).await;
        link.restore();
        nats_support::wait_for_state(&mut states, herald::nats::ConnectionState::Connected).await;
    };
    let ((), ()) = tokio::time::timeout(PATIENCE, async { tokio::join!(worker.shutdown(), blip) })
        .await
        .unwrap();
    let m = worker.metrics();
    assert_eq!((m.abandoned, m.acked), (0, 1), "{m:?}");
    let outcome = tokio::time::timeout(PATIENCE, sending)
        .await
        .unwrap()
        .unwrap();
    assert!(outcome.is_accepted(), "{outcome:?}");
}

/// A worker whose connection is lost makes no pull request until it is back. It used to make
/// one each time the client ended its open batch on its own timer (the batch's expiry plus
/// 5 s: every 6 s): the client queued each until the reconnection, then sent them all, with
/// a subscription and an unsubscription of its inbox around each, for batches long given up.
/// Counted here as the requests the server receives after the link comes back, from workers
/// that stopped before it did: all of them were made during the outage.
async fn a_worker_makes_no_pull_requests_while_disconnected() {
    const WORKERS: usize = 3;
    let server = NatsServer::start();
    let link = nats_support::Link::start(server.port(), true).await;
    let observer = quick_bridge(&server).await;
    let mut requests = observer
        .client()
        .subscribe("$JS.API.CONSUMER.MSG.NEXT.HERALD_PUSH.herald-workers")
        .await
        .unwrap();
    observer.client().flush().await.unwrap();
    let bridge = bridge_through(&link, Duration::from_millis(200)).await;
    let mock = mock_apns().await;
    let mut workers = Vec::new();
    for i in 0..WORKERS {
        let worker = PushWorker::builder(client_of(&mock))
            .name(format!("w{i}"))
            .start(&bridge)
            .await
            .unwrap();
        workers.push(worker);
    }
    // Each is pulling.
    for _ in 0..WORKERS {
        tokio::time::timeout(PATIENCE, requests.next())
            .await
            .expect("a pull request")
            .unwrap();
    }
    let mut states = nats_support::cut_and_wait(&bridge, || link.cut()).await;
    // Long enough for the client to end each worker's open batch (made at most a second or
    // so before the cut: the server ends an idle one after a second) and for the old loop
    // to make two more requests each (one about every 6 s).
    tokio::time::sleep(Duration::from_secs(14)).await;
    for worker in &workers {
        worker.shutdown().await; // at once: the server is gone
    }
    observer.client().flush().await.unwrap();
    while requests.next().now_or_never().flatten().is_some() {}

    link.restore();
    nats_support::wait_for_state(&mut states, herald::nats::ConnectionState::Connected).await;
    // What the client queued is at the server once a round trip after it is answered, and
    // its copies are here once the observer's round trip is.
    bridge.client().flush().await.unwrap();
    observer.client().flush().await.unwrap();
    let mut stale = 0;
    while requests.next().now_or_never().flatten().is_some() {
        stale += 1;
    }
    // One each could be made as the connection broke, before the client knew; the old loop
    // made two each.
    assert!(
        stale <= WORKERS,
        "{stale} pull requests made during the outage reached the server"
    );
}

/// A short outage does not leave a worker idle. The pull request open when the connection
/// broke never hears its end from the server, and the client ends it only on its own timer,
/// the request's expiry (1 s) plus 5 s: a worker that waited for that took no job for up to
/// 6 s after a blip. It makes a new request once the old one's expiry has passed (and a
/// second for jobs already on their way), so after an outage of 1.5 s a job queued during it
/// is sent about two seconds after the cut. Checked against 4 s, the old wait's least being
/// 5 s (its request made at most a second before the cut).
async fn a_worker_back_from_a_short_outage_takes_jobs_again_within_seconds() {
    use herald::bridge::PushDispatch;
    let server = NatsServer::start();
    let link = nats_support::Link::start(server.port(), true).await;
    let mock = mock_apns().await;
    // The posting side goes straight to the server: only the worker's link is cut.
    let (posting, queue) = push_queue(&server, PushQueueConfig::default()).await;
    let bridge = bridge_through(&link, Duration::from_millis(200)).await;
    let worker = PushWorker::builder(client_of(&mock))
        .start(&bridge)
        .await
        .unwrap();
    until_a_long_poll_is_open(&posting).await;

    let cut = std::time::Instant::now();
    let mut states = nats_support::cut_and_wait(&bridge, || link.cut()).await;
    // Past the open request's expiry: the server ends it while the link is down, and the
    // status that says so is lost with the connection.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    link.restore();
    nats_support::wait_for_state(&mut states, herald::nats::ConnectionState::Connected).await;
    let push = herald::apns::Push::builder(token(11), BUNDLE)
        .build()
        .unwrap();
    let id = push.apns_id().to_owned();
    let outcome = tokio::time::timeout(PATIENCE, queue.dispatch(push, None))
        .await
        .expect("the job was sent");
    let took = cut.elapsed();
    eprintln!("sent {took:?} after the cut");
    assert!(outcome.is_accepted(), "{outcome:?}");
    assert_eq!(mock.accepted_count(&id), 1);
    assert!(
        took < Duration::from_secs(4),
        "the job was sent {took:?} after the cut: the worker waited out its lost request"
    );
    worker.shutdown().await;
    let m = worker.metrics();
    assert_eq!((m.received, m.acked, m.abandoned), (1, 1, 0), "{m:?}");
}

/// With the default options the store's first connect is retried: a store opened before its
/// server is up connects once it is (within the store's timeout); a server that stays away is
/// a typed connect error once the timeout has passed.
async fn the_kv_store_waits_for_a_server_that_is_not_up_yet() {
    let mut server = NatsServer::start();
    let url = server.url();
    server.kill();
    let connecting = tokio::spawn(async move {
        NatsKvStore::builder("late")
            .timeout(PATIENCE)
            .connect(&url)
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let server = tokio::task::spawn_blocking(move || {
        server.restart();
        server
    })
    .await
    .unwrap();
    let store = tokio::time::timeout(PATIENCE * 2, connecting)
        .await
        .expect("connected in time")
        .unwrap()
        .expect("the first connect is retried");
    let registry = DeviceRegistry::with_store(store);
    tokio::task::spawn_blocking(move || {
        registry
            .register(Device::new("dora", token(5), BUNDLE, Environment::Sandbox))
            .unwrap();
        assert_eq!(registry.devices("dora").unwrap().len(), 1);
    })
    .await
    .unwrap();
    drop(server);
    let err = NatsKvStore::builder("never")
        .timeout(Duration::from_millis(300))
        .connect("nats://127.0.0.1:1")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
}

/// The store takes credentials in its URL as the bridge does, and its errors never repeat
/// them: refused (retried until the store's timeout, or at once without retries) or
/// unreachable.
async fn the_kv_store_takes_credentials_in_the_url_and_never_shows_them() {
    let server = NatsServer::start_with(&["--user", "herald", "--pass", "kv-pw-42"]);
    let port = server.port();
    let store = NatsKvStore::connect(&format!("nats://herald:kv-pw-42@127.0.0.1:{port}"), "creds")
        .await
        .unwrap();
    assert_eq!(store.bucket(), "creds");
    let no_retry = || async_nats::ConnectOptions::new().connection_timeout(Duration::from_secs(2));
    for (builder, url, secret) in [
        (
            NatsKvStore::builder("creds").timeout(Duration::from_millis(500)),
            format!("nats://herald:kv-wrong-pw@127.0.0.1:{port}"),
            "kv-wrong-pw",
        ),
        (
            NatsKvStore::builder("creds").options(no_retry()),
            format!("nats://herald:kv-wrong-pw@127.0.0.1:{port}"),
            "kv-wrong-pw",
        ),
        (
            NatsKvStore::builder("creds").options(no_retry()),
            "nats://alice:kv-hunter2@127.0.0.1:1".to_owned(),
            "kv-hunter2",
        ),
    ] {
        let err = builder.connect(&url).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
        assert!(!err.to_string().contains(secret), "{err}");
        assert!(!format!("{err:?}").contains(secret), "{err:?}");
    }
}

static BUCKETS: AtomicU64 = AtomicU64::new(0);

fn kv_conformance() {
    let server = NatsServer::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = server.url();
    conformance::check_store_with(
        || {
            let bucket = format!("conf{}", BUCKETS.fetch_add(1, Ordering::SeqCst));
            rt.block_on(NatsKvStore::connect(&url, &bucket)).unwrap()
        },
        conformance::Scale {
            threads: 4,
            per_thread: 15,
            registries: 2,
        },
    );
}

fn kv_many_connections_registering_at_once_lose_nothing() {
    let server = NatsServer::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Four connections (as four processes), two threads each, registering overlapping
    // subjects and contesting tokens.
    let registries: Vec<DeviceRegistry> = (0..4)
        .map(|_| {
            let store = rt
                .block_on(NatsKvStore::connect(&server.url(), "shared"))
                .unwrap();
            DeviceRegistry::with_store(store)
        })
        .collect();
    let per = 20u32;
    std::thread::scope(|s| {
        for (i, r) in registries.iter().enumerate() {
            for t in 0..2u32 {
                s.spawn(move || {
                    for n in 0..per {
                        let id = (i as u32 * 2 + t) * per + n;
                        let subject = format!("user{}", id % 5);
                        r.register(Device::new(
                            &subject,
                            token(id),
                            BUNDLE,
                            Environment::Sandbox,
                        ))
                        .unwrap();
                        // Everyone also contests one token: one owner in the end.
                        let _ = r.register(Device::new(
                            &subject,
                            token(999_999),
                            BUNDLE,
                            Environment::Sandbox,
                        ));
                    }
                });
            }
        }
    });
    let all: usize = (0..5)
        .map(|u| {
            registries[0]
                .devices(&format!("user{u}"))
                .unwrap()
                .into_iter()
                .filter(|d| d.token != token(999_999))
                .count()
        })
        .sum();
    assert_eq!(all, 4 * 2 * per as usize, "no registration lost");
    let owners = (0..5)
        .filter(|u| {
            registries[1]
                .devices(&format!("user{u}"))
                .unwrap()
                .iter()
                .any(|d| d.token == token(999_999))
        })
        .count();
    assert_eq!(owners, 1, "a contested token has exactly one owner");
    conformance::assert_consistent(&registries[2]);
}

/// A third process (here: its own bridge, center and registry) that neither posts nor sends
/// imports the outcomes: every outcome arrives as `RemotePushOutcome`, a 410 prunes its
/// registry, and a stopped import resumes where it left off.
async fn any_process_imports_outcomes_durably_and_prunes_its_registry() {
    let server = NatsServer::start();
    let mock = MockApns::start().await.unwrap();
    let posting_registry = DeviceRegistry::in_memory();
    let alive = [token(11), token(12)];
    let gone = token(13);
    for t in alive.iter().chain([&gone]) {
        mock.register_device(t, BUNDLE);
        posting_registry
            .register(Device::new("carol", t, BUNDLE, Environment::Sandbox))
            .unwrap();
    }
    mock.mark_unregistered(&gone, SystemTime::now() + Duration::from_secs(1));
    let config = PushQueueConfig::default();

    // The keeper: a registry of its own (as a process with its own store would have).
    let keeper_registry = DeviceRegistry::in_memory();
    keeper_registry
        .register(Device::new("carol", &gone, BUNDLE, Environment::Sandbox))
        .unwrap();
    let keeper = NotificationCenter::new();
    let _prune = keeper_registry.observe(&keeper);
    let seen: Arc<Mutex<Vec<RemotePushOutcome>>> = Arc::default();
    let s = seen.clone();
    let _seen = keeper.observe(move |o: &RemotePushOutcome| s.lock().unwrap().push(o.clone()));
    let keeper_bridge = quick_bridge(&server).await;
    let import = OutcomeImport::start(&keeper_bridge, &config, "keeper", &keeper)
        .await
        .unwrap();

    let (_posting, queue) = push_queue(&server, config.clone()).await;
    let sink = ApnsSink::builder(ApnsClient::builder().build().unwrap())
        .registry(posting_registry.clone())
        .topic(BUNDLE)
        .dispatch(queue)
        .build();
    let center = NotificationCenter::new();
    let _lifecycle = posting_registry.observe(&center);
    let forwarding = center.observer::<Ping>().forward(
        sink.map(|p: &Ping| Message::to_subject(&p.user, Payload::alert(format!("ping {}", p.n)))),
    );
    let (_worker_bridge, worker) =
        start_worker(&server, PushWorker::builder(client_of(&mock))).await;

    center.post(Ping {
        user: "carol".into(),
        n: 1,
    });
    forwarding.idle().await;
    until("the keeper's three outcomes", || {
        import.stats().imported == 3
    })
    .await;
    {
        let seen = seen.lock().unwrap();
        let accepted = seen
            .iter()
            .filter(|o| o.result == RemoteResult::Accepted)
            .count();
        assert_eq!(accepted, 2, "{seen:?}");
        let refused: Vec<_> = seen
            .iter()
            .filter(|o| matches!(o.result, RemoteResult::Rejected { status: 410, .. }))
            .collect();
        assert_eq!(refused.len(), 1, "{seen:?}");
        assert_eq!(refused[0].token, gone);
        assert_eq!(refused[0].subject.as_deref(), Some("carol"));
    }
    assert_eq!(import.stats().invalidated, 1);
    until("the keeper's registry pruned", || {
        keeper_registry.devices("carol").unwrap().is_empty()
    })
    .await;

    // Stopped, then started again under the same name: what was reported meanwhile arrives.
    drop(import);
    center.post(Ping {
        user: "carol".into(),
        n: 2,
    });
    forwarding.idle().await;
    let again = OutcomeImport::start(&keeper_bridge, &config, "keeper", &keeper)
        .await
        .unwrap();
    until("the outcomes reported while stopped", || {
        again.stats().imported == 2
    })
    .await;
    assert_eq!(
        seen.lock().unwrap().len(),
        5,
        "nothing twice, nothing missed"
    );
    assert_eq!(again.stats().undecodable, 0);
    worker.shutdown().await;
}

fn main() {
    nats_support::main(
        "nats_push",
        vec![
            nats_support::multi(
                "pushes_through_workers_reach_the_device_once_and_report_back",
                pushes_through_workers_reach_the_device_once_and_report_back,
            ),
            nats_support::multi(
                "a_worker_that_dies_between_send_and_ack_leads_to_one_resend_and_one_outcome",
                a_worker_that_dies_between_send_and_ack_leads_to_one_resend_and_one_outcome,
            ),
            nats_support::multi(
                "bad_jobs_and_missing_workers_are_reported_not_silent",
                bad_jobs_and_missing_workers_are_reported_not_silent,
            ),
            nats_support::multi(
                "a_stopped_server_fails_enqueues_with_a_typed_error",
                a_stopped_server_fails_enqueues_with_a_typed_error,
            ),
            nats_support::multi(
                "any_process_imports_outcomes_durably_and_prunes_its_registry",
                any_process_imports_outcomes_durably_and_prunes_its_registry,
            ),
            nats_support::multi(
                "a_job_that_is_not_a_valid_push_gets_one_failed_outcome_and_is_acknowledged",
                a_job_that_is_not_a_valid_push_gets_one_failed_outcome_and_is_acknowledged,
            ),
            nats_support::multi(
                "in_flight_counts_the_jobs_held_and_nothing_while_waiting",
                in_flight_counts_the_jobs_held_and_nothing_while_waiting,
            ),
            nats_support::multi(
                "a_job_that_comes_while_a_worker_stops_goes_to_the_next_worker_at_once",
                a_job_that_comes_while_a_worker_stops_goes_to_the_next_worker_at_once,
            ),
            nats_support::multi(
                "the_same_push_twice_is_sent_once_and_again_later_is_refused_at_once",
                the_same_push_twice_is_sent_once_and_again_later_is_refused_at_once,
            ),
            nats_support::multi(
                "two_prefixes_cannot_share_stream_names",
                two_prefixes_cannot_share_stream_names,
            ),
            nats_support::multi(
                "workers_and_posting_sides_starting_together_on_a_new_server_all_start",
                workers_and_posting_sides_starting_together_on_a_new_server_all_start,
            ),
            nats_support::multi(
                "a_reconnection_during_a_stop_gives_up_nothing",
                a_reconnection_during_a_stop_gives_up_nothing,
            ),
            nats_support::multi(
                "a_worker_makes_no_pull_requests_while_disconnected",
                a_worker_makes_no_pull_requests_while_disconnected,
            ),
            nats_support::multi(
                "a_worker_back_from_a_short_outage_takes_jobs_again_within_seconds",
                a_worker_back_from_a_short_outage_takes_jobs_again_within_seconds,
            ),
            nats_support::multi(
                "the_kv_store_waits_for_a_server_that_is_not_up_yet",
                the_kv_store_waits_for_a_server_that_is_not_up_yet,
            ),
            nats_support::multi(
                "the_kv_store_takes_credentials_in_the_url_and_never_shows_them",
                the_kv_store_takes_credentials_in_the_url_and_never_shows_them,
            ),
            nats_support::sync("kv_conformance", kv_conformance),
            nats_support::sync(
                "kv_many_connections_registering_at_once_lose_nothing",
                kv_many_connections_registering_at_once_lose_nothing,
            ),
        ],
    )
}
