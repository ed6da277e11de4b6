//! The token lifecycle end to end, over real sockets to the mock APNs: a misconfiguration
//! never deletes or quarantines a token and raises one alarm; real bad tokens are quarantined,
//! skipped, probed and then released or deleted; only 410 deletes at once. Time moves by hand
//! (a `ManualClock`), so grace periods and cool-downs cost nothing.
#![cfg(all(feature = "endpoint", feature = "mock", feature = "testkit"))]

mod bridge_support;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use bridge_support::*;
use herald::apns::{Payload, Reason};
use herald::bridge::{
    ApnsSink, Device, DeviceRegistry, Environment, LifecycleConfig, ManualClock, Message,
    PushConfigRecovered, PushConfigSuspect, PushSkipped, SkipCause, SuspectedCause,
    TokenInvalidated, TokenQuarantined, TokenReleased,
};
use herald::mock::{Fault, MockApns};
use herald::testkit::Recorder;
use herald::{Notification, NotificationCenter};

const GRACE: Duration = Duration::from_secs(3600);

/// The sink's clock: moved by hand, and a second ahead of the registrations the test makes
/// with the system clock (`Device::new`, the endpoint), as a push is sent after the device it
/// goes to was registered.
fn clock() -> ManualClock {
    ManualClock::at(SystemTime::now() + Duration::from_secs(1))
}

fn config() -> LifecycleConfig {
    LifecycleConfig::default()
        .grace(GRACE)
        .window(Duration::from_secs(300))
        .cool_down(Duration::from_secs(60))
        .min_samples(20)
}

/// Every lifecycle notification, recorded.
struct Seen {
    suspect: Recorder<PushConfigSuspect>,
    recovered: Recorder<PushConfigRecovered>,
    quarantined: Recorder<TokenQuarantined>,
    released: Recorder<TokenReleased>,
    invalidated: Recorder<TokenInvalidated>,
    skipped: Recorder<PushSkipped>,
}

impl Seen {
    fn on(center: &NotificationCenter) -> Seen {
        Seen {
            suspect: Recorder::new(center),
            recovered: Recorder::new(center),
            quarantined: Recorder::new(center),
            released: Recorder::new(center),
            invalidated: Recorder::new(center),
            skipped: Recorder::new(center),
        }
    }
}

fn tokens_of<N: Notification + Clone>(
    r: &Recorder<N>,
    f: impl Fn(&N) -> String,
) -> BTreeSet<String> {
    r.values().iter().map(f).collect()
}

fn pushed(mock: &MockApns) -> Vec<String> {
    mock.pushes()
        .into_iter()
        .filter_map(|r| r.device_token)
        .collect()
}

/// Registers `tokens` for `subject` directly (the endpoint is tested elsewhere).
fn register(registry: &DeviceRegistry, subject: &str, tokens: &[String], env: Environment) {
    for t in tokens {
        registry
            .register(Device::new(subject, t.as_str(), BUNDLE, env))
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_on_the_wrong_environment_touches_no_token_and_raises_one_alarm() {
    let clock = clock();
    let registry = DeviceRegistry::in_memory();
    // Production tokens; the mock knows none of them (it plays the sandbox server, which
    // answers BadDeviceToken for tokens of the other environment).
    let all: Vec<String> = (0..30).map(|i| token(100 + i)).collect();
    register(&registry, "erin", &all, Environment::Production);
    let before = registry.all().unwrap();
    let h = Harness::start_with(registry.clone(), |b| {
        b.lifecycle(config()).clock(clock.clone())
    })
    .await;
    let seen = Seen::on(&h.center);

    h.center.post(Shipped {
        user: "erin".into(),
        order: 1,
    });
    h.forwarding.idle().await;
    let m = h.sink.metrics();
    assert_eq!((m.sent, m.rejected), (30, 30));
    assert_eq!((m.quarantined, m.invalidated, m.config_suspect), (0, 0, 1));
    assert_eq!(registry.all().unwrap(), before, "the registry was touched");
    let alarms = seen.suspect.values();
    assert_eq!(alarms.len(), 1, "one alarm per opening");
    let alarm = &alarms[0];
    assert_eq!(alarm.cause, SuspectedCause::WrongEnvironment);
    assert_eq!(alarm.environment, Some(Environment::Production));
    assert_eq!(alarm.topic, BUNDLE);
    assert_eq!(alarm.accepted, 0);
    assert!(alarm.rejected >= 20, "{alarm:?}");
    assert_eq!(alarm.by_reason[0].0, Reason::BadDeviceToken);
    assert!(
        alarm.sample_tokens.iter().all(|t| t.len() == 8),
        "samples are prefixes only: {:?}",
        alarm.sample_tokens
    );
    assert!(!h.sink.breakers()[0].state.is_closed());

    // While open, nothing reaches APNs; every push is handed back as skipped.
    let sent_before = h.mock.pushes().len();
    h.center.post(Shipped {
        user: "erin".into(),
        order: 2,
    });
    h.forwarding.idle().await;
    assert_eq!(
        h.mock.pushes().len(),
        sent_before,
        "pushes went out while open"
    );
    let skipped = seen.skipped.values();
    assert_eq!(skipped.len(), 30);
    assert!(skipped.iter().all(|s| s.cause == SkipCause::BreakerOpen));
    assert_eq!(skipped[0].push.topic(), BUNDLE);
    assert_eq!(seen.suspect.values().len(), 1, "still one alarm");

    // The operator fixes the environment (here: the server now knows the tokens). After the
    // cool-down one push goes through as a probe; accepted, the breaker closes and says so.
    for t in &all {
        h.mock.register_device(t, BUNDLE);
    }
    clock.advance(Duration::from_secs(61));
    h.center.post(Shipped {
        user: "erin".into(),
        order: 3,
    });
    h.forwarding.idle().await;
    assert_eq!(h.mock.pushes().len(), sent_before + 1, "exactly one probe");
    let recovered = seen.recovered.values();
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].skipped, 30 + 29);
    assert!(h.sink.breakers()[0].state.is_closed());

    h.center.post(Shipped {
        user: "erin".into(),
        order: 4,
    });
    h.forwarding.idle().await;
    assert_eq!(h.mock.pushes().len(), sent_before + 1 + 30);
    assert_eq!(registry.all().unwrap(), before);
    assert_eq!(seen.suspect.values().len(), 1);
    assert!(seen.quarantined.values().is_empty());
    assert!(seen.invalidated.values().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_bad_tokens_out_of_two_pushes_prove_nothing() {
    let clock = clock();
    let registry = DeviceRegistry::in_memory();
    register(
        &registry,
        "gus",
        &[token(1), token(2)],
        Environment::Sandbox,
    );
    let h = Harness::start_with(registry.clone(), |b| {
        b.lifecycle(config()).clock(clock.clone())
    })
    .await;
    let seen = Seen::on(&h.center);
    for order in 0..3 {
        h.center.post(Shipped {
            user: "gus".into(),
            order,
        });
        h.forwarding.idle().await;
    }
    let m = h.sink.metrics();
    assert_eq!(
        (m.sent, m.rejected, m.quarantined, m.config_suspect),
        (6, 6, 0, 0)
    );
    assert!(
        seen.suspect.values().is_empty(),
        "tripped below the minimum sample"
    );
    assert_eq!(registry.quarantined().unwrap().len(), 0);
    assert_eq!(registry.devices("gus").unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_and_bad_tokens_mixed_quarantine_exactly_the_bad_ones() {
    let clock = clock();
    let registry = DeviceRegistry::in_memory();
    let h = Harness::start_with(registry.clone(), |b| {
        b.lifecycle(config()).clock(clock.clone())
    })
    .await;
    let good: Vec<String> = (0..10).map(|i| token(200 + i)).collect();
    let (unknown_a, unknown_b, other_app) = (token(300), token(301), token(302));
    for t in &good {
        h.mock.register_device(t, BUNDLE);
    }
    h.mock.register_device(&other_app, "com.other.app");
    register(&registry, "hana", &good, Environment::Sandbox);
    let bad = [unknown_a.clone(), unknown_b.clone(), other_app.clone()];
    register(&registry, "hana", &bad, Environment::Sandbox);
    let seen = Seen::on(&h.center);

    // Round 1: the bad ones are rejected while the good ones are accepted: quarantined.
    h.center.post(Shipped {
        user: "hana".into(),
        order: 1,
    });
    h.forwarding.idle().await;
    let m = h.sink.metrics();
    assert_eq!(
        (m.accepted, m.rejected, m.quarantined, m.invalidated),
        (10, 3, 3, 0)
    );
    let expected: BTreeSet<String> = bad.iter().cloned().collect();
    assert_eq!(tokens_of(&seen.quarantined, |n| n.token.clone()), expected);
    let in_registry: BTreeSet<String> = registry
        .quarantined()
        .unwrap()
        .into_iter()
        .map(|d| d.token)
        .collect();
    assert_eq!(
        in_registry, expected,
        "exactly the bad ones are in quarantine"
    );
    let reason_of = |t: &str| {
        registry
            .device(t)
            .unwrap()
            .unwrap()
            .quarantine
            .unwrap()
            .reason
    };
    assert_eq!(reason_of(&other_app), Reason::DeviceTokenNotForTopic);
    assert_eq!(reason_of(&unknown_a), Reason::BadDeviceToken);
    assert_eq!(
        registry.devices("hana").unwrap().len(),
        13,
        "nothing deleted"
    );
    assert!(seen.suspect.values().is_empty());

    // Round 2: quarantined tokens get no pushes.
    clock.advance(Duration::from_secs(1));
    let before = h.mock.pushes().len();
    h.center.post(Shipped {
        user: "hana".into(),
        order: 2,
    });
    h.forwarding.idle().await;
    let round2: BTreeSet<String> = pushed(&h.mock)[before..].iter().cloned().collect();
    assert_eq!(round2, good.iter().cloned().collect::<BTreeSet<_>>());
    let skipped = tokens_of(&seen.skipped, |n| n.push.device_token().to_owned());
    assert_eq!(skipped, expected);
    assert!(
        seen.skipped
            .values()
            .iter()
            .all(|s| s.cause == SkipCause::Quarantined)
    );

    // Round 3, after the grace period: each quarantined token gets one probe. One of them
    // works again (accepted: released); the others are rejected again while good tokens were
    // accepted since their last rejection: confirmed and deleted.
    h.mock.register_device(&unknown_b, BUNDLE);
    clock.advance(GRACE);
    let before = h.mock.pushes().len();
    h.center.post(Shipped {
        user: "hana".into(),
        order: 3,
    });
    h.forwarding.idle().await;
    assert_eq!(
        h.mock.pushes().len() - before,
        13,
        "one probe per quarantined token"
    );
    assert_eq!(
        tokens_of(&seen.released, |n| n.token.clone()),
        BTreeSet::from([unknown_b.clone()])
    );
    let confirmed = tokens_of(&seen.invalidated, |n| n.token.clone());
    assert_eq!(
        confirmed,
        BTreeSet::from([unknown_a.clone(), other_app.clone()])
    );
    let left: BTreeSet<String> = registry
        .devices("hana")
        .unwrap()
        .into_iter()
        .map(|d| d.token)
        .collect();
    let mut want: BTreeSet<String> = good.iter().cloned().collect();
    want.insert(unknown_b.clone());
    assert_eq!(left, want);
    assert!(registry.quarantined().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_accepted_after_its_rejection_is_not_quarantined_by_its_own_acceptance() {
    // APNs answers BadDeviceToken once (a glitch), then accepts the token. Its own acceptance
    // is no evidence against it: the waiting rejection is dropped, and a later acceptance of
    // another token does not decide it either.
    let clock = clock();
    let registry = DeviceRegistry::in_memory();
    let (flaky, other) = (token(700), token(701));
    register(
        &registry,
        "ray",
        std::slice::from_ref(&flaky),
        Environment::Sandbox,
    );
    register(
        &registry,
        "sue",
        std::slice::from_ref(&other),
        Environment::Sandbox,
    );
    let h = Harness::start_with(registry.clone(), |b| {
        b.lifecycle(config()).clock(clock.clone())
    })
    .await;
    for t in [&flaky, &other] {
        h.mock.register_device(t, BUNDLE);
    }
    h.mock
        .script_for_device(&flaky, Fault::reject(400, "BadDeviceToken"));
    let seen = Seen::on(&h.center);

    for (order, user) in ["ray", "ray", "sue", "ray"].into_iter().enumerate() {
        h.center.post(Shipped {
            user: user.into(),
            order: order as u64,
        });
        h.forwarding.idle().await;
    }
    assert_eq!(
        pushed(&h.mock),
        [flaky.clone(), flaky.clone(), other, flaky.clone()],
        "a token APNs had just accepted was held back"
    );
    let m = h.sink.metrics();
    assert_eq!(
        (m.rejected, m.accepted, m.quarantined, m.skipped),
        (1, 3, 0, 0)
    );
    assert!(seen.quarantined.values().is_empty());
    assert!(registry.quarantined().unwrap().is_empty());
}

/// A message for one device token, as given.
#[derive(Debug, Clone)]
struct Wake {
    token: String,
}
impl Notification for Wake {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_message_to_a_token_of_the_other_environment_is_skipped_never_quarantined() {
    // Pat has a production phone and a development (sandbox) one; the sink talks to
    // production. Sent there, the sandbox token would be answered BadDeviceToken (as the mock,
    // which does not know it, would), which says nothing about the token.
    let clock = clock();
    let registry = DeviceRegistry::in_memory();
    let (prod, sandbox) = (token(710), token(711));
    register(
        &registry,
        "pat",
        std::slice::from_ref(&prod),
        Environment::Production,
    );
    register(
        &registry,
        "pat",
        std::slice::from_ref(&sandbox),
        Environment::Sandbox,
    );
    let before = registry.all().unwrap();
    let h = Harness::start_with(registry.clone(), |b| {
        b.environment(Environment::Production)
            .lifecycle(config())
            .clock(clock.clone())
    })
    .await;
    h.mock.register_device(&prod, BUNDLE);
    let seen = Seen::on(&h.center);
    let direct = h.center.observer::<Wake>().forward(
        h.sink
            .map(|w: &Wake| Message::to_token(&w.token, Payload::alert("Wake up"))),
    );

    // Twice, a grace period apart (when a quarantined token would be probed and confirmed).
    for order in 0..2 {
        h.center.post(Shipped {
            user: "pat".into(),
            order,
        });
        h.forwarding.idle().await;
        h.center.post(Wake {
            token: sandbox.clone(),
        });
        direct.idle().await;
        clock.advance(GRACE + Duration::from_secs(1));
    }
    assert_eq!(
        pushed(&h.mock),
        [prod.clone(), prod],
        "only production's token"
    );
    let skipped = seen.skipped.values();
    assert_eq!(skipped.len(), 2);
    assert!(
        skipped
            .iter()
            .all(|s| s.cause == SkipCause::OtherEnvironment && s.push.device_token() == sandbox)
    );
    assert_eq!(
        registry.all().unwrap(),
        before,
        "kept, and not in quarantine"
    );
    assert!(seen.quarantined.values().is_empty());
    assert!(seen.invalidated.values().is_empty());
    let m = h.sink.metrics();
    assert_eq!((m.sent, m.accepted, m.skipped), (2, 2, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_by_the_app_releases_a_quarantined_token() {
    let clock = clock();
    let h = Harness::start_with(DeviceRegistry::in_memory(), |b| {
        b.lifecycle(config()).clock(clock.clone())
    })
    .await;
    let (good, bad) = (token(400), token(401));
    h.mock.register_device(&good, BUNDLE);
    for t in [&good, &bad] {
        assert_eq!(form(h.addr, "ivan", &format!("newToken={t}")).await.0, 200);
    }
    let seen = Seen::on(&h.center);
    h.center.post(Shipped {
        user: "ivan".into(),
        order: 1,
    });
    h.forwarding.idle().await;
    assert!(h.registry.device(&bad).unwrap().unwrap().is_quarantined());

    // The app registers the token again (say, after the user restored the device).
    clock.advance(Duration::from_secs(5));
    h.mock.register_device(&bad, BUNDLE);
    assert_eq!(
        form(h.addr, "ivan", &format!("newToken={bad}")).await.0,
        200
    );
    assert!(!h.registry.device(&bad).unwrap().unwrap().is_quarantined());
    let before = h.mock.pushes().len();
    h.center.post(Shipped {
        user: "ivan".into(),
        order: 2,
    });
    h.forwarding.idle().await;
    let round2: BTreeSet<String> = pushed(&h.mock)[before..].iter().cloned().collect();
    assert_eq!(round2, BTreeSet::from([good, bad.clone()]));
    assert_eq!(h.sink.metrics().accepted, 3);
    assert!(seen.invalidated.values().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_410_deletes_at_once_with_the_timestamp_rule_beside_quarantines() {
    let clock = clock();
    let registry = DeviceRegistry::in_memory();
    let h = Harness::start_with(registry.clone(), |b| {
        b.lifecycle(config()).clock(clock.clone())
    })
    .await;
    let (good, gone, back, bad) = (token(500), token(501), token(502), token(503));
    for t in [&good, &gone, &back] {
        h.mock.register_device(t, BUNDLE);
    }
    register(
        &registry,
        "jo",
        &[good.clone(), gone.clone(), bad.clone()],
        Environment::Sandbox,
    );
    // `back` was uninstalled an hour ago, and registered again just now.
    h.mock
        .mark_unregistered(&back, SystemTime::now() - Duration::from_secs(3600));
    register(
        &registry,
        "jo",
        std::slice::from_ref(&back),
        Environment::Sandbox,
    );
    h.mock.mark_unregistered(&gone, SystemTime::now());
    let seen = Seen::on(&h.center);
    h.center.post(Shipped {
        user: "jo".into(),
        order: 1,
    });
    h.forwarding.idle().await;
    let invalidated = tokens_of(&seen.invalidated, |n| n.token.clone());
    assert_eq!(invalidated, BTreeSet::from([gone.clone(), back.clone()]));
    assert!(
        seen.invalidated
            .values()
            .iter()
            .all(|n| n.reason == Reason::Unregistered)
    );
    let left: BTreeSet<String> = registry
        .devices("jo")
        .unwrap()
        .into_iter()
        .map(|d| d.token)
        .collect();
    assert_eq!(
        left,
        BTreeSet::from([good, back, bad.clone()]),
        "410 deleted `gone` only; `back` was registered after the timestamp"
    );
    assert!(registry.device(&bad).unwrap().unwrap().is_quarantined());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_opens_the_breaker_blaming_the_credentials() {
    let clock = clock();
    let mock = MockApns::start().await.unwrap();
    let stranger = MockApns::start().await.unwrap();
    // A key the server does not know (same key id, another key).
    let p8 = stranger.generate_key(KEY_ID, TEAM_ID).unwrap();
    let client = herald::apns::ApnsClient::builder()
        .endpoint(
            herald::apns::Endpoint::custom(&mock.url())
                .unwrap()
                .with_ca_pem(mock.ca_pem()),
        )
        .token_auth(herald::apns::TokenKey::from_p8_pem(p8, KEY_ID, TEAM_ID).unwrap())
        .build()
        .unwrap();
    let _ = mock.generate_key(KEY_ID, TEAM_ID).unwrap();
    let registry = DeviceRegistry::in_memory();
    let tokens: Vec<String> = (0..25).map(|i| token(600 + i)).collect();
    for t in &tokens {
        mock.register_device(t, BUNDLE);
    }
    register(&registry, "kim", &tokens, Environment::Sandbox);
    let center = NotificationCenter::new();
    let _lifecycle = registry.observe(&center);
    let suspect: Recorder<PushConfigSuspect> = Recorder::new(&center);
    let sink = ApnsSink::builder(client)
        .registry(registry.clone())
        .topic(BUNDLE)
        .lifecycle(config())
        .clock(clock)
        .build();
    let forwarding = center.observer::<Shipped>().forward(
        sink.map(|n: &Shipped| Message::to_subject(&n.user, herald::apns::Payload::alert("hi"))),
    );
    center.post(Shipped {
        user: "kim".into(),
        order: 1,
    });
    forwarding.idle().await;
    let alarms = suspect.values();
    assert_eq!(alarms.len(), 1);
    assert_eq!(alarms[0].cause, SuspectedCause::WrongCredentials);
    assert_eq!(alarms[0].by_reason[0].0, Reason::InvalidProviderToken);
    assert_eq!(registry.all().unwrap().len(), 25);
    assert!(registry.quarantined().unwrap().is_empty());
    drop(stranger);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_unreadable_for_a_moment_delays_a_message_instead_of_dropping_it() {
    let store = std::sync::Arc::new(herald::bridge::FaultyStore::default());
    let registry = DeviceRegistry::with_store(store.clone());
    let h = Harness::start(registry.clone()).await;
    let t = token(600);
    h.mock.register_device(&t, BUNDLE);
    register(
        &registry,
        "jo",
        std::slice::from_ref(&t),
        Environment::Sandbox,
    );
    store.set_down(true);
    h.center.post(Shipped {
        user: "jo".into(),
        order: 1,
    });
    // The sink tried to read the registry, was refused, and is waiting it out.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while store.refused() == 0 {
        assert!(std::time::Instant::now() < deadline, "no read attempted");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(pushed(&h.mock).is_empty());
    store.set_down(false);
    h.forwarding.idle().await;
    assert_eq!(pushed(&h.mock), [t]);
    let m = h.sink.metrics();
    assert_eq!((m.accepted, m.unaddressed, m.unresolved), (1, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_registry_unreadable_past_the_sinks_patience_gives_the_message_up_counted() {
    use herald::apns::{ApnsClient, Payload};
    let store = std::sync::Arc::new(herald::bridge::FaultyStore::default());
    let registry = DeviceRegistry::with_store(store.clone());
    register(&registry, "jo", &[token(601)], Environment::Sandbox);
    store.set_down(true);
    // Never used: no message reaches the network.
    let sink = ApnsSink::builder(ApnsClient::builder().build().unwrap())
        .registry(registry)
        .topic(BUNDLE)
        .build();
    let center = NotificationCenter::new();
    let forwarding = center
        .observer::<Shipped>()
        .forward(sink.map(|n: &Shipped| Message::to_subject(&n.user, Payload::alert("x"))));
    center.post(Shipped {
        user: "jo".into(),
        order: 1,
    });
    let started = tokio::time::Instant::now();
    forwarding.idle().await;
    assert!(started.elapsed() >= herald::bridge::REGISTRY_READ_PATIENCE / 2);
    let m = sink.metrics();
    assert_eq!((m.sent, m.unaddressed, m.unresolved), (0, 0, 1));
    assert!(store.refused() > 5, "it retried");
}
