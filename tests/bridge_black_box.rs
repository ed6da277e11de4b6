//! The push bridge from the outside (sink, registry, stores, lifecycle, endpoint) and the
//! `herald` CLI, written from the issue texts (6 and 12), DESIGN.md / APNS.md, the README and
//! the public API docs. Black-box: only the public API and the built-in mock APNs server.
//!
//! Time: the lifecycle runs on a `ManualClock` where time must move; the endpoint's limiters
//! on tokio's paused clock. Real time is spent only where a real socket needs it (a stalled
//! push waiting for the client's request timeout), never as an assertion.
#![cfg(all(feature = "endpoint", feature = "mock", feature = "testkit"))]

mod bridge_support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use bridge_support::{client_builder_of, sink_for, tokens_of_subject, verifier};
use herald::apns::{ApnsClient, Payload, Reason, RetryPolicy};
use herald::bridge::endpoint::RegistrationEndpoint;
use herald::bridge::{
    ApnsSink, ApnsSinkBuilder, Device, DeviceRegistry, Environment, FaultyStore, Forwarding,
    LifecycleConfig, ManualClock, Message, PushAccepted, PushConfigSuspect, PushFailed,
    PushRejected, PushSkipped, RegistrySubscription, SkipCause, SuspectedCause, TokenInvalidated,
    TokenQuarantined,
};
use herald::mock::{Fault, MockApns, MockClock};
use herald::testkit::Recorder;
use herald::{Notification, NotificationCenter};

const KEY_ID: &str = "AUDITKEY01";
const TEAM_ID: &str = "AUDITTEAM1";
const APP: &str = "com.example.audit";
const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";
/// The address the endpoint tests call from, unless a test is about addresses.
const PEER: &str = "10.0.0.1";

/// A 64-hex-digit token, distinct per `n`.
fn tok(n: u32) -> String {
    format!("{n:08x}").repeat(8)
}

/// `n` tokens, `tok(first)` on.
fn toks(first: u32, n: u32) -> Vec<String> {
    (0..n).map(|i| tok(first + i)).collect()
}

/// Tells `mock` that each of `tokens` is a device of `app`.
fn known_to<'a>(mock: &MockApns, tokens: impl IntoIterator<Item = &'a String>, app: &str) {
    for t in tokens {
        mock.register_device(t, app);
    }
}

fn retry_fast() -> RetryPolicy {
    RetryPolicy {
        max_retries: 2,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
    }
}

/// A client of `mock`, with a key the mock knows.
fn client_for(mock: &MockApns) -> ApnsClient {
    client_builder_of(mock, KEY_ID, TEAM_ID)
        .retry(retry_fast())
        .request_timeout(Duration::from_millis(800))
        .build()
        .unwrap()
}
/// A message for every device of a user.
#[derive(Debug, Clone)]
struct ToUser {
    user: String,
}
impl Notification for ToUser {}

/// A message for one token.
#[derive(Debug, Clone)]
struct ToToken {
    token: String,
}
impl Notification for ToToken {}

/// Every outcome and lifecycle notification the sink posts, recorded on its center.
struct Seen {
    accepted: Recorder<PushAccepted>,
    rejected: Recorder<PushRejected>,
    failed: Recorder<PushFailed>,
    skipped: Recorder<PushSkipped>,
    invalidated: Recorder<TokenInvalidated>,
    quarantined: Recorder<TokenQuarantined>,
    suspect: Recorder<PushConfigSuspect>,
}

impl Seen {
    fn on(center: &NotificationCenter) -> Seen {
        Seen {
            accepted: Recorder::new(center),
            rejected: Recorder::new(center),
            failed: Recorder::new(center),
            skipped: Recorder::new(center),
            invalidated: Recorder::new(center),
            quarantined: Recorder::new(center),
            suspect: Recorder::new(center),
        }
    }
}

/// mock → client → sink → center ← registry, with two forwardings (by user, by token).
struct Rig {
    mock: MockApns,
    center: NotificationCenter,
    registry: DeviceRegistry,
    sink: ApnsSink,
    users: Forwarding,
    tokens: Forwarding,
    seen: Seen,
    _cleanup: RegistrySubscription,
}

impl Rig {
    async fn start(
        mock: MockApns,
        registry: DeviceRegistry,
        configure: impl FnOnce(ApnsSinkBuilder) -> ApnsSinkBuilder,
    ) -> Rig {
        let client = client_for(&mock);
        Rig::with_client(mock, client, registry, configure)
    }

    fn with_client(
        mock: MockApns,
        client: ApnsClient,
        registry: DeviceRegistry,
        configure: impl FnOnce(ApnsSinkBuilder) -> ApnsSinkBuilder,
    ) -> Rig {
        let center = NotificationCenter::new();
        let cleanup = registry.observe(&center);
        let seen = Seen::on(&center);
        let sink = sink_for(client, &registry, APP, configure);
        let users = center
            .observer::<ToUser>()
            .forward(sink.map(|n: &ToUser| Message::to_subject(&n.user, Payload::alert("audit"))));
        let tokens = center
            .observer::<ToToken>()
            .forward(sink.map(|n: &ToToken| Message::to_token(&n.token, Payload::alert("audit"))));
        Rig {
            mock,
            center,
            registry,
            sink,
            users,
            tokens,
            seen,
            _cleanup: cleanup,
        }
    }

    async fn to_user(&self, user: &str) {
        self.center.post(ToUser { user: user.into() });
        self.users.idle().await;
    }

    fn pushed(&self) -> Vec<String> {
        self.mock
            .pushes()
            .into_iter()
            .filter_map(|r| r.device_token)
            .collect()
    }

    /// Asserts that every push sent so far, `n` of them, was rejected.
    fn assert_all_rejected(&self, n: u64) {
        let m = self.sink.metrics();
        assert_eq!((m.sent, m.rejected), (n, n), "{m:?}");
    }
}

fn register_all(registry: &DeviceRegistry, subject: &str, tokens: &[String], env: Environment) {
    for t in tokens {
        registry
            .register(Device::new(subject, t.as_str(), APP, env))
            .unwrap();
    }
}

/// An in-memory registry where `subject` owns `tokens` in `env`.
fn registry_of(subject: &str, tokens: &[String], env: Environment) -> DeviceRegistry {
    let registry = DeviceRegistry::in_memory();
    register_all(&registry, subject, tokens, env);
    registry
}

/// The checks every misconfiguration test makes: nothing deleted, nothing quarantined, in the
/// store or in the notifications.
fn assert_untouched(rig: &Rig, before: &[Device]) {
    assert_eq!(
        rig.registry.all().unwrap(),
        before,
        "the registry changed under a misconfiguration"
    );
    assert!(rig.registry.quarantined().unwrap().is_empty());
    assert!(
        rig.seen.quarantined.is_empty(),
        "quarantined: {:?}",
        rig.seen.quarantined.values()
    );
    assert!(
        rig.seen.invalidated.is_empty(),
        "invalidated: {:?}",
        rig.seen.invalidated.values()
    );
    let m = rig.sink.metrics();
    assert_eq!((m.quarantined, m.invalidated), (0, 0), "{m:?}");
}

/// [`assert_untouched`], and exactly one alarm was raised: it is returned.
fn untouched_with_one_alarm(rig: &Rig, before: &[Device]) -> PushConfigSuspect {
    assert_untouched(rig, before);
    let alarms = rig.seen.suspect.values();
    assert_eq!(alarms.len(), 1, "{alarms:?}");
    alarms.into_iter().next().unwrap()
}

/// The misconfiguration scenario: `subject` owns `tokens` (sandbox), which `mock` was told how
/// to answer; one message to `subject` must have every push rejected without touching the
/// registry, and raise one alarm, which is returned.
async fn one_message_all_rejected(
    mock: MockApns,
    subject: &str,
    tokens: &[String],
) -> PushConfigSuspect {
    let registry = registry_of(subject, tokens, Environment::Sandbox);
    let before = registry.all().unwrap();
    let rig = Rig::start(mock, registry, |b| b).await;

    rig.to_user(subject).await;
    rig.assert_all_rejected(tokens.len() as u64);
    untouched_with_one_alarm(&rig, &before)
}

// =============================================================================================
// The registry is never wiped by a misconfiguration (issue 12, point 1 and "what to build").
// =============================================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_disallowed_for_every_token_touches_no_token_and_raises_one_wrong_topic_alarm() {
    let mock = MockApns::start().await.unwrap();
    let tokens = toks(0x100, 25);
    known_to(&mock, &tokens, APP);
    let registry = registry_of("una", &tokens, Environment::Sandbox);
    let before = registry.all().unwrap();
    let rig = Rig::start(mock, registry, |b| b).await;
    // The key is scoped to another app: APNs answers 400 TopicDisallowed for every push.
    assert!(rig.mock.restrict_key(KEY_ID, &["com.example.other"]));

    rig.to_user("una").await;
    rig.assert_all_rejected(25);
    assert!(
        rig.seen
            .rejected
            .values()
            .iter()
            .all(|r| r.reason == Reason::TopicDisallowed)
    );
    let alarm = untouched_with_one_alarm(&rig, &before);
    assert_eq!(alarm.cause, SuspectedCause::WrongTopic);
    assert_eq!(alarm.topic, APP);

    // While the breaker is open every message still gets exactly one outcome: held back.
    let before_pushes = rig.mock.pushes().len();
    rig.to_user("una").await;
    assert_eq!(rig.mock.pushes().len(), before_pushes);
    let skipped = rig.seen.skipped.values();
    assert_eq!(skipped.len(), 25);
    assert!(skipped.iter().all(|s| s.cause == SkipCause::BreakerOpen));
    assert_untouched(&rig, &before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_another_app_are_never_quarantined_when_every_push_is_not_for_topic() {
    let mock = MockApns::start().await.unwrap();
    let tokens = toks(0x200, 25);
    // The endpoint was configured with the wrong bundle id: every token belongs to another app.
    known_to(&mock, &tokens, "com.example.other");
    let alarm = one_message_all_rejected(mock, "vic", &tokens).await;
    assert_eq!(alarm.cause, SuspectedCause::WrongTopic);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_provider_token_touches_no_token() {
    // The mock's clock runs two hours ahead: every JWT the client mints looks expired.
    let clock = MockClock::starting_now();
    let mock = MockApns::builder()
        .clock(clock.clone())
        .start()
        .await
        .unwrap();
    clock.advance(Duration::from_secs(2 * 3600));
    let tokens = toks(0x300, 25);
    known_to(&mock, &tokens, APP);
    let registry = registry_of("wes", &tokens, Environment::Sandbox);
    let before = registry.all().unwrap();
    let rig = Rig::start(mock, registry, |b| b).await;

    rig.to_user("wes").await;
    let m = rig.sink.metrics();
    assert_eq!(m.accepted, 0, "{m:?}");
    assert_eq!(m.sent, m.rejected + m.failed, "{m:?}");
    let alarm = untouched_with_one_alarm(&rig, &before);
    assert_eq!(alarm.cause, SuspectedCause::WrongCredentials);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_for_every_token_touches_no_token_and_blames_the_credentials() {
    let mock = MockApns::start().await.unwrap();
    let tokens = toks(0x400, 25);
    for t in &tokens {
        mock.register_device(t, APP);
        mock.script_for_device(t, Fault::reject(403, "Forbidden"));
    }
    let alarm = one_message_all_rejected(mock, "xia", &tokens).await;
    assert_eq!(alarm.cause, SuspectedCause::WrongCredentials);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_environment_for_direct_token_messages_touches_no_token() {
    // Production tokens, a sink for production, but the server (the mock) knows none of them:
    // exactly what the sandbox answers for production tokens (BadDeviceToken).
    let mock = MockApns::start().await.unwrap();
    let tokens = toks(0x500, 25);
    let registry = registry_of("yan", &tokens, Environment::Production);
    let before = registry.all().unwrap();
    let rig = Rig::start(mock, registry, |b| b.environment(Environment::Production)).await;

    for t in &tokens {
        rig.center.post(ToToken { token: t.clone() });
    }
    rig.tokens.idle().await;
    rig.assert_all_rejected(25);
    let alarm = untouched_with_one_alarm(&rig, &before);
    assert_eq!(alarm.cause, SuspectedCause::WrongEnvironment);
    assert_eq!(alarm.environment, Some(Environment::Production));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_environment_trickling_below_the_minimum_sample_never_quarantines() {
    // A quiet app on the wrong environment: a few pushes per window, every one rejected, for
    // many windows. Nothing was ever accepted: nothing may be quarantined or deleted.
    let clock = ManualClock::at(SystemTime::now() + Duration::from_secs(1));
    let mock = MockApns::start().await.unwrap();
    let registry = registry_of("zed", &toks(0x600, 5), Environment::Sandbox);
    let before = registry.all().unwrap();
    let config = LifecycleConfig::default()
        .window(Duration::from_secs(300))
        .min_samples(20)
        .grace(Duration::from_secs(3600));
    let rig = Rig::start(mock, registry, |b| b.lifecycle(config).clock(clock.clone())).await;

    for _ in 0..8 {
        rig.to_user("zed").await;
        clock.advance(Duration::from_secs(301));
    }
    rig.assert_all_rejected(40);
    assert_untouched(&rig, &before);
    assert!(rig.seen.suspect.is_empty(), "below the minimum sample");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaker_for_one_environment_holds_back_nothing_of_the_other() {
    // One registry with both environments, a sink without an environment filter talking to a
    // server that knows only the sandbox tokens: the production key is all rejected.
    let mock = MockApns::start().await.unwrap();
    let (dev, prod) = (toks(0x690, 5), toks(0x6a0, 25));
    known_to(&mock, &dev, APP);
    let registry = registry_of("sam", &dev, Environment::Sandbox);
    register_all(&registry, "sam", &prod, Environment::Production);
    let before = registry.all().unwrap();
    let rig = Rig::start(mock, registry, |b| b).await;

    rig.to_user("sam").await;
    rig.to_user("sam").await;
    let alarm = untouched_with_one_alarm(&rig, &before);
    assert_eq!(alarm.environment, Some(Environment::Production));
    assert_eq!(alarm.cause, SuspectedCause::WrongEnvironment);
    assert_eq!(rig.seen.accepted.count(), 10, "sandbox pushes held back");
    assert!(
        rig.seen
            .skipped
            .values()
            .iter()
            .all(|s| prod.iter().any(|p| p == s.push.device_token()))
    );
}

// =============================================================================================
// 410: deletes exactly that token, with Apple's timestamp rule.
// =============================================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_410_deletes_exactly_that_token_and_carries_apples_timestamp() {
    let mock = MockApns::start().await.unwrap();
    let (a, b, c, other) = (tok(0x700), tok(0x701), tok(0x702), tok(0x703));
    known_to(&mock, [&a, &b, &c, &other], APP);
    let registry = registry_of(
        "ann",
        &[a.clone(), b.clone(), c.clone()],
        Environment::Sandbox,
    );
    register_all(
        &registry,
        "ben",
        std::slice::from_ref(&other),
        Environment::Sandbox,
    );
    // Apple learned of the uninstall after the registration.
    let gone_ms = (SystemTime::now() + Duration::from_secs(1))
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let gone_at = UNIX_EPOCH + Duration::from_millis(gone_ms);
    mock.mark_unregistered(&b, gone_at);
    let rig = Rig::start(mock, registry, |b| b).await;

    rig.to_user("ann").await;
    let left = tokens_of_subject(&rig.registry, "ann");
    let mut want = vec![a.clone(), c.clone()];
    want.sort();
    assert_eq!(left, want, "exactly the 410 token is gone");
    assert_eq!(rig.registry.devices("ben").unwrap().len(), 1);
    let inv = rig.seen.invalidated.values();
    assert_eq!(inv.len(), 1, "{inv:?}");
    assert_eq!(inv[0].token, b);
    assert_eq!(inv[0].topic, APP);
    assert_eq!(inv[0].subject.as_deref(), Some("ann"));
    assert_eq!(inv[0].reason, Reason::Unregistered);
    assert_eq!(
        inv[0].since, gone_at,
        "Apple's timestamp, to the millisecond"
    );
    let rej = rig.seen.rejected.values();
    assert_eq!(rej.len(), 1);
    assert_eq!((rej[0].status, rej[0].timestamp), (410, Some(gone_at)));
    assert_eq!(rej[0].push.device_token(), b, "the push is handed back");
}

#[test]
fn the_410_rule_is_decided_at_millisecond_precision() {
    let center = NotificationCenter::new();
    let registry = DeviceRegistry::in_memory();
    let _cleanup = registry.observe(&center);
    let at = UNIX_EPOCH + Duration::from_millis(1_767_225_600_123);
    let mut d = Device::new("cal", tok(0x800), APP, Environment::Sandbox);
    d.registered_at = at;
    registry.register(d).unwrap();

    // APNs learned of it a millisecond before the registration: the app registered again
    // after it, keep the token.
    center.post(TokenInvalidated::new(
        tok(0x800),
        APP,
        Reason::Unregistered,
        at - Duration::from_millis(1),
    ));
    assert_eq!(
        registry.devices("cal").unwrap().len(),
        1,
        "registered after: kept"
    );
    // Registered in the same millisecond: not after it, so deleted.
    center.post(TokenInvalidated::new(
        tok(0x800),
        APP,
        Reason::Unregistered,
        at + Duration::from_micros(999),
    ));
    assert!(
        registry.devices("cal").unwrap().is_empty(),
        "same millisecond: deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_410_without_a_timestamp_deletes_a_token_registered_before_the_push() {
    let mock = MockApns::start().await.unwrap();
    let (t, keep) = (tok(0x900), tok(0x901));
    known_to(&mock, [&t, &keep], APP);
    mock.script_for_device(&t, Fault::reject(410, "ExpiredToken"));
    let registry = registry_of("dot", &[t.clone(), keep.clone()], Environment::Sandbox);
    let rig = Rig::start(mock, registry, |b| b).await;

    rig.to_user("dot").await;
    assert_eq!(tokens_of_subject(&rig.registry, "dot"), [keep]);
    let inv = rig.seen.invalidated.values();
    assert_eq!(inv.len(), 1);
    assert_eq!(inv[0].reason, Reason::ExpiredToken);
}

#[test]
fn a_token_deleted_by_a_410_can_be_registered_again_by_its_app_or_another_subject() {
    let registry = DeviceRegistry::in_memory();
    let t = tok(0xa80);
    registry
        .register(Device::new("fin", t.as_str(), APP, Environment::Sandbox))
        .unwrap();
    assert!(
        registry
            .invalidate(&t, SystemTime::now() + Duration::from_secs(1))
            .unwrap()
    );
    assert!(registry.device(&t).unwrap().is_none());
    // The app was reinstalled and signed in as another user: the token may move.
    registry
        .register(Device::new("gus", t.as_str(), APP, Environment::Sandbox))
        .unwrap();
    assert_eq!(registry.device(&t).unwrap().unwrap().subject, "gus");
    assert!(registry.devices("fin").unwrap().is_empty());
}

#[test]
fn a_confirmation_reason_never_deletes_an_active_token() {
    // `TokenInvalidated` with a quarantine reason deletes only a token in quarantine (a probe
    // confirmed it): an active token is kept.
    let center = NotificationCenter::new();
    let registry = DeviceRegistry::in_memory();
    let _cleanup = registry.observe(&center);
    registry
        .register(Device::new("eve", tok(0xa00), APP, Environment::Sandbox))
        .unwrap();
    center.post(TokenInvalidated::new(
        tok(0xa00),
        APP,
        Reason::BadDeviceToken,
        SystemTime::now() + Duration::from_secs(60),
    ));
    assert_eq!(registry.devices("eve").unwrap().len(), 1);
}

// Outcomes: on the same center, one per push.
// =============================================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_pushes_come_back_on_the_same_center_with_the_apns_id_apns_saw() {
    let mock = MockApns::start().await.unwrap();
    let t = tok(0xb00);
    mock.register_device(&t, APP);
    let registry = registry_of("fay", std::slice::from_ref(&t), Environment::Sandbox);
    let rig = Rig::start(mock, registry, |b| b).await;
    let elsewhere = NotificationCenter::new();
    let foreign: Recorder<PushAccepted> = Recorder::new(&elsewhere);

    rig.to_user("fay").await;
    let acc = rig.seen.accepted.values();
    assert_eq!(acc.len(), 1);
    let seen_by_apns = rig.mock.pushes();
    assert_eq!(seen_by_apns.len(), 1);
    assert_eq!(acc[0].apns_id, seen_by_apns[0].apns_id);
    assert_eq!(acc[0].token, t);
    assert_eq!(acc[0].topic, APP);
    assert_eq!(acc[0].subject.as_deref(), Some("fay"));
    assert!(foreign.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_push_gets_exactly_one_outcome_under_faults() {
    let mock = MockApns::start().await.unwrap();
    let tokens = toks(0xc00, 12);
    known_to(&mock, &tokens, APP);
    let f = |i: usize| tokens[i].as_str();
    mock.script_for_device(f(1), Fault::reject(500, "InternalServerError")); // retried
    for _ in 0..3 {
        mock.script_for_device(f(2), Fault::reject(503, "ServiceUnavailable")); // exhausted
    }
    mock.script_for_device(f(3), Fault::RefuseStream); // retried elsewhere
    mock.script_for_device(f(4), Fault::Stall); // request timeout
    mock.script_for_device(f(5), Fault::reject(400, "BadPriority")); // rejected
    mock.script_for_device(
        f(6),
        Fault::Reject {
            status: 410,
            reason: "Unregistered".into(),
            timestamp: Some(SystemTime::now() + Duration::from_secs(1)),
        },
    );
    mock.script_for_device(f(7), Fault::reject(429, "TooManyRequests")); // retried
    mock.script_for_device(f(8), Fault::Delay(Duration::from_millis(50)));
    let registry = registry_of("gil", &tokens, Environment::Sandbox);
    let rig = Rig::start(mock, registry, |b| b).await;

    // Three rounds, one after the other (the 410 token is gone after the first).
    for _ in 0..3 {
        rig.to_user("gil").await;
    }
    let m = rig.sink.metrics();
    assert_eq!(m.in_flight, 0, "{m:?}");
    assert_eq!(m.sent, m.accepted + m.rejected + m.failed, "{m:?}");

    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for a in rig.seen.accepted.values() {
        *outcomes.entry(a.apns_id).or_default() += 1;
    }
    for r in rig.seen.rejected.values() {
        *outcomes.entry(r.apns_id).or_default() += 1;
    }
    for x in rig.seen.failed.values() {
        let id = x
            .push
            .as_ref()
            .expect("a sent push is handed back")
            .apns_id();
        *outcomes.entry(id.to_owned()).or_default() += 1;
    }
    let total: usize = outcomes.values().sum();
    assert_eq!(
        total as u64, m.sent,
        "one outcome notification per push sent"
    );
    assert!(
        outcomes.values().all(|&n| n == 1),
        "an apns-id with two outcomes: {outcomes:?}"
    );
    // 12 devices, the 410 one gone after the first round: 12 + 11 + 11.
    assert_eq!(m.sent, 34, "{m:?}");
    assert!(rig.mock.duplicate_accepted().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_forwarding_still_reports_the_pushes_already_sent() {
    let mock = MockApns::start().await.unwrap();
    let t = tok(0xd00);
    mock.register_device(&t, APP);
    mock.script_for_device(&t, Fault::Delay(Duration::from_millis(300)));
    let registry = registry_of("hal", std::slice::from_ref(&t), Environment::Sandbox);
    let rig = Rig::start(mock, registry, |b| b).await;
    let Rig {
        center,
        sink,
        users,
        seen,
        ..
    } = rig;

    center.post(ToUser { user: "hal".into() });
    let deadline = Instant::now() + Duration::from_secs(10);
    while sink.metrics().sent == 0 {
        assert!(Instant::now() < deadline, "never sent");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    drop(users);
    let got = seen
        .accepted
        .wait_for(|a| a.token == t, Duration::from_secs(10))
        .await;
    assert!(got.is_some(), "the outcome of a push already sent was lost");
    // The counter moves last, after the notifications were posted.
    while sink.metrics().in_flight != 0 {
        assert!(Instant::now() < deadline, "{:?}", sink.metrics());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(sink.metrics().accepted, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unbuildable_message_is_one_push_failed_without_a_push() {
    let mock = MockApns::start().await.unwrap();
    let rig = Rig::start(mock, DeviceRegistry::in_memory(), |b| b).await;
    rig.center.post(ToToken {
        token: "not-a-token".into(),
    });
    rig.tokens.idle().await;
    let m = rig.sink.metrics();
    assert_eq!((m.sent, m.failed, m.in_flight), (1, 1, 0), "{m:?}");
    let failed = rig.seen.failed.values();
    assert_eq!(failed.len(), 1);
    assert!(failed[0].push.is_none());
    assert!(rig.pushed().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_for_one_environment_addresses_only_that_environments_devices() {
    let mock = MockApns::start().await.unwrap();
    let (dev, prod) = (tok(0xe00), tok(0xe01));
    known_to(&mock, [&dev, &prod], APP);
    let registry = registry_of("ida", std::slice::from_ref(&dev), Environment::Sandbox);
    register_all(
        &registry,
        "ida",
        std::slice::from_ref(&prod),
        Environment::Production,
    );
    let rig = Rig::start(mock, registry, |b| b.environment(Environment::Sandbox)).await;
    rig.to_user("ida").await;
    assert_eq!(rig.pushed(), [dev]);
}

// =============================================================================================
// Persistence across a restart (the durable store).
// =============================================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quarantine_survives_a_restart_and_the_next_sink_holds_the_token_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("devices.redb");
    let t = tok(0xf00);
    let at = UNIX_EPOCH + Duration::from_millis(1_767_225_600_456);
    {
        let registry = DeviceRegistry::open(&path).unwrap();
        let mut d = Device::new("jon", t.as_str(), APP, Environment::Sandbox);
        d.registered_at = at - Duration::from_secs(60);
        registry.register(d).unwrap();
        assert!(registry.quarantine(&t, Reason::BadDeviceToken, at).unwrap());
    }
    let registry = DeviceRegistry::open(&path).unwrap();
    let d = registry
        .device(&t)
        .unwrap()
        .expect("kept across the restart");
    let q = d.quarantine.expect("still in quarantine after the restart");
    assert_eq!(q.reason, Reason::BadDeviceToken);
    assert_eq!((q.since, q.last_rejected, q.rejections), (at, at, 1));

    // A fresh sink (fresh breakers) still sends it nothing before the grace period is over.
    let clock = ManualClock::at(at + Duration::from_secs(10));
    let mock = MockApns::start().await.unwrap();
    mock.register_device(&t, APP);
    let rig = Rig::start(mock, registry, |b| b.clock(clock.clone())).await;
    rig.to_user("jon").await;
    assert!(rig.pushed().is_empty(), "a quarantined token was pushed");
    let skipped = rig.seen.skipped.values();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].cause, SkipCause::Quarantined);
}

#[test]
fn ownership_and_replacement_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("devices.redb");
    let (kept, old, new) = (tok(0x1000), tok(0x1001), tok(0x1002));
    {
        let registry = DeviceRegistry::open(&path).unwrap();
        register_all(
            &registry,
            "kim",
            &[kept.clone(), old.clone()],
            Environment::Sandbox,
        );
        registry
            .replace(
                &old,
                Device::new("kim", new.as_str(), APP, Environment::Sandbox),
            )
            .unwrap();
    }
    let registry = DeviceRegistry::open(&path).unwrap();
    let tokens: BTreeSet<String> = tokens_of_subject(&registry, "kim").into_iter().collect();
    assert_eq!(tokens, BTreeSet::from([kept.clone(), new.clone()]));
    // Still kim's: nobody else may take them.
    let err = registry
        .register(Device::new("mal", kept.as_str(), APP, Environment::Sandbox))
        .unwrap_err();
    assert!(err.is_not_owner());
    assert!(registry.remove("mal", &new).unwrap_err().is_not_owner());
    // The replaced token was given up: another subject may register it.
    registry
        .register(Device::new("lou", old.as_str(), APP, Environment::Sandbox))
        .unwrap();
    assert_eq!(registry.device(&old).unwrap().unwrap().subject, "lou");
}

#[test]
fn the_registration_time_survives_a_restart_for_the_410_rule() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("devices.redb");
    let at = UNIX_EPOCH + Duration::from_millis(1_767_225_600_789);
    let t = tok(0x1100);
    {
        let registry = DeviceRegistry::open(&path).unwrap();
        let mut d = Device::new("max", t.as_str(), APP, Environment::Production);
        d.registered_at = at;
        registry.register(d).unwrap();
    }
    let registry = DeviceRegistry::open(&path).unwrap();
    assert!(
        !registry
            .invalidate(&t, at - Duration::from_millis(1))
            .unwrap()
    );
    assert!(registry.invalidate(&t, at).unwrap());
    assert!(registry.device(&t).unwrap().is_none());
}

// =============================================================================================
// The registration endpoint: abuse is refused with a typed 4xx and nothing changes.
// =============================================================================================

type Verify = fn(&http::request::Parts) -> Option<String>;

type EndpointBuilder = herald::bridge::endpoint::RegistrationEndpointBuilder<Verify>;

/// An endpoint for `APP` over `registry`, configured further by `configure`.
fn endpoint(
    registry: &DeviceRegistry,
    configure: impl FnOnce(EndpointBuilder) -> EndpointBuilder,
) -> RegistrationEndpoint<Verify> {
    configure(RegistrationEndpoint::builder(registry.clone(), verifier as Verify).topic(APP))
        .build()
}

fn request(
    subject: Option<&str>,
    content_type: &str,
    body: impl Into<Bytes>,
) -> http::Request<Full<Bytes>> {
    let mut b = http::Request::post("/devices").header("content-type", content_type);
    if let Some(s) = subject {
        b = b.header("authorization", format!("Bearer user-{s}"));
    }
    b.body(Full::new(body.into())).unwrap()
}

/// A form POST as the caller `user-<subject>`.
fn form(subject: &str, body: impl Into<Bytes>) -> http::Request<Full<Bytes>> {
    request(Some(subject), FORM, body)
}

struct Reply {
    status: u16,
    retry_after: Option<u64>,
    json: serde_json::Value,
}

impl Reply {
    /// Asserts that the request was refused with `status` and the error `error`.
    fn assert_refused(&self, status: u16, error: &str) {
        assert_eq!(
            (self.status, self.json["error"].as_str()),
            (status, Some(error))
        );
    }
}
async fn call<V: herald::bridge::endpoint::Verifier>(
    e: &RegistrationEndpoint<V>,
    req: http::Request<Full<Bytes>>,
    peer: &str,
) -> Reply {
    let res = e.handle(req, peer.parse::<IpAddr>().unwrap()).await;
    let status = res.status().as_u16();
    let retry_after = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    Reply {
        status,
        retry_after,
        json,
    }
}

/// A registry where bob owns tok(2).
fn seeded() -> DeviceRegistry {
    let r = DeviceRegistry::in_memory();
    r.register(Device::new("bob", tok(2), APP, Environment::Sandbox))
        .unwrap();
    r
}

#[tokio::test]
async fn malformed_json_bodies_are_a_typed_400_and_change_nothing() {
    let registry = seeded();
    let e = endpoint(&registry, |b| b);
    let before = registry.all().unwrap();
    let t = tok(10);
    let bodies: Vec<Vec<u8>> = vec![
        format!(r#"{{"newToken":"{t}""#).into_bytes(), // truncated
        b"null".to_vec(),
        br#""newToken""#.to_vec(),
        format!(r#"{{"newToken":{{"x":"{t}"}}}}"#).into_bytes(), // nested object
        format!(r#"{{"newToken":["{t}"]}}"#).into_bytes(),       // array value
        b"{\"newToken\":\"\xff\xfe\"}".to_vec(),                 // invalid UTF-8
        format!(r#"{{"newToken":"{t}","newToken":"{}"}}"#, tok(11)).into_bytes(), // duplicate key
        Vec::new(),
    ];
    for body in bodies {
        let shown = String::from_utf8_lossy(&body).into_owned();
        let r = call(&e, request(Some("alice"), JSON, body), PEER).await;
        assert_eq!(r.status, 400, "{shown}: {}", r.json);
        assert_eq!(r.json["error"], "bad_json", "{shown}: {}", r.json);
        assert!(r.json["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(
            registry.all().unwrap(),
            before,
            "{shown} changed the registry"
        );
    }
}

#[tokio::test]
async fn a_body_at_the_limit_is_read_and_one_byte_more_is_413() {
    let registry = DeviceRegistry::in_memory();
    let body = format!("newToken={}", tok(12));
    let limit = body.len();
    let e = endpoint(&registry, |b| b.body_limit(limit));
    let over = format!("{body}&");
    let r = call(&e, form("amy", over), PEER).await;
    r.assert_refused(413, "body_too_large");
    assert!(registry.all().unwrap().is_empty());
    let r = call(&e, form("amy", body), PEER).await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(registry.devices("amy").unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_client_that_waits_its_retry_after_is_served() {
    let registry = DeviceRegistry::in_memory();
    let e = endpoint(&registry, |b| b.rate_limit(2, Duration::from_secs(7)));
    let register = |n: u32| form("ada", format!("newToken={}", tok(n)));
    assert_eq!(call(&e, register(20), PEER).await.status, 200);
    assert_eq!(call(&e, register(21), PEER).await.status, 200);
    let before = registry.all().unwrap();
    let r = call(&e, register(22), PEER).await;
    r.assert_refused(429, "rate_limited");
    assert_eq!(
        registry.all().unwrap(),
        before,
        "a refused request changed the registry"
    );
    let wait = r.retry_after.expect("429 without Retry-After");
    tokio::time::advance(Duration::from_secs(wait)).await;
    let r = call(&e, register(22), PEER).await;
    assert_eq!(
        r.status, 200,
        "refused again after waiting Retry-After={wait}: {}",
        r.json
    );
}

#[tokio::test(start_paused = true)]
async fn one_address_failing_verification_does_not_lock_out_another() {
    let registry = DeviceRegistry::in_memory();
    let e = endpoint(&registry, |b| {
        b.failed_auth_limit(2, Duration::from_secs(60))
    });
    let body = format!("newToken={}", tok(30));
    let forged = || {
        let mut r = request(None, FORM, body.clone());
        r.headers_mut()
            .insert("authorization", "Bearer nope".parse().unwrap());
        r
    };
    for _ in 0..2 {
        assert_eq!(call(&e, forged(), "198.51.100.7").await.status, 401);
    }
    let r = call(&e, forged(), "198.51.100.7").await;
    assert_eq!(r.status, 429);
    assert!(r.retry_after.is_some());
    let r = call(&e, form("liz", body.clone()), "198.51.100.8").await;
    assert_eq!(
        r.status, 200,
        "an innocent address was locked out: {}",
        r.json
    );
}

#[tokio::test(start_paused = true)]
async fn a_locked_out_address_is_refused_before_verification() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let verifier = move |_: &http::request::Parts| -> Option<String> {
        counted.fetch_add(1, Ordering::SeqCst);
        None
    };
    let registry = DeviceRegistry::in_memory();
    let e = RegistrationEndpoint::builder(registry.clone(), verifier)
        .topic(APP)
        .failed_auth_limit(3, Duration::from_secs(60))
        .build();
    let mk = || request(None, FORM, format!("newToken={}", tok(31)));
    for _ in 0..3 {
        assert_eq!(call(&e, mk(), "203.0.113.5").await.status, 401);
    }
    for _ in 0..5 {
        let r = call(&e, mk(), "203.0.113.5").await;
        assert_eq!(r.status, 429);
        assert!(r.retry_after.is_some_and(|s| s >= 1));
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "the verifier was asked while locked out"
    );
}

#[tokio::test]
async fn a_failing_store_is_503_with_retry_after_and_changes_nothing() {
    let store = Arc::new(FaultyStore::default());
    let registry = DeviceRegistry::with_store(store.clone());
    registry
        .register(Device::new("bob", tok(2), APP, Environment::Sandbox))
        .unwrap();
    let before = registry.all().unwrap();
    let e = endpoint(&registry, |b| b);
    store.set_down(true);
    let body = format!("oldToken={}&newToken={}", tok(2), tok(40));
    let r = call(&e, form("bob", body), PEER).await;
    r.assert_refused(503, "store_unavailable");
    assert!(r.retry_after.is_some_and(|s| s >= 1));
    store.set_down(false);
    assert_eq!(registry.all().unwrap(), before);
}

#[tokio::test]
async fn removing_a_token_nobody_registered_is_404_and_changes_nothing() {
    let registry = seeded();
    let e = endpoint(&registry, |b| b);
    let before = registry.all().unwrap();
    let body = format!("oldToken={}", tok(50));
    let r = call(&e, form("bob", body), PEER).await;
    r.assert_refused(404, "not_registered");
    assert_eq!(registry.all().unwrap(), before);
}

#[tokio::test]
async fn a_replacement_through_the_endpoint_is_one_step_and_the_old_token_is_never_addressed() {
    let registry = DeviceRegistry::in_memory();
    let e = endpoint(&registry, |b| b);
    let (old, new) = (tok(60), tok(61));
    let first = format!(r#"{{"newToken":"{old}"}}"#);
    let r = call(&e, request(Some("ned"), JSON, first), PEER).await;
    assert_eq!(r.status, 200);
    let replace = format!(
        r#"{{"oldToken":"{}","newToken":"{new}","environment":"production"}}"#,
        old.to_uppercase()
    );
    let r = call(&e, request(Some("ned"), JSON, replace), PEER).await;
    assert_eq!(
        (r.status, r.json["result"].as_str()),
        (200, Some("replaced")),
        "{}",
        r.json
    );
    let devices = registry.devices("ned").unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].token, new);
    assert_eq!(devices[0].environment, Environment::Production);
    assert!(registry.device(&old).unwrap().is_none());

    // And a sink addresses the new token only.
    let mock = MockApns::start().await.unwrap();
    known_to(&mock, [&old, &new], APP);
    let rig = Rig::start(mock, registry, |b| b).await;
    rig.to_user("ned").await;
    assert_eq!(rig.pushed(), [new]);
}

// =============================================================================================
// The `herald` CLI.
// =============================================================================================

#[cfg(feature = "cli")]
mod cli {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    const HERALD: &str = env!("CARGO_BIN_EXE_herald");

    #[test]
    fn an_unregistered_time_with_an_offset_is_reported_in_utc() {
        let tmp = tempfile::tempdir().unwrap();
        let mut child = Command::new(HERALD)
            .args([
                "mock",
                "--json",
                "--unregistered",
                &format!("{}@2026-01-01T02:00:00.250+02:00", tok(70)),
            ])
            .env("TMPDIR", tmp.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        child.kill().unwrap();
        let _ = child.wait();
        let start: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            start["unregistered"][0]["token"],
            tok(70).as_str(),
            "{start}"
        );
        assert_eq!(
            start["unregistered"][0]["since"], "2026-01-01T00:00:00.250Z",
            "{start}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn herald_push_to_another_apps_token_exits_2_and_names_the_reason() {
        let mock = MockApns::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p8 = dir.path().join("AuthKey.p8");
        std::fs::write(&p8, mock.generate_key(KEY_ID, TEAM_ID).unwrap()).unwrap();
        let ca = dir.path().join("ca.pem");
        mock.write_ca_pem(&ca).unwrap();
        let t = tok(71);
        mock.register_device(&t, "com.example.other");
        let args: Vec<std::ffi::OsString> = vec![
            "push".into(),
            "--device".into(),
            t.clone().into(),
            "--topic".into(),
            APP.into(),
            "--p8".into(),
            p8.into(),
            "--key-id".into(),
            KEY_ID.into(),
            "--team-id".into(),
            TEAM_ID.into(),
            "--url".into(),
            mock.url().into(),
            "--ca".into(),
            ca.into(),
            "--timeout".into(),
            "20".into(),
        ];
        let out =
            tokio::task::spawn_blocking(move || Command::new(HERALD).args(args).output().unwrap())
                .await
                .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(2), "{stdout}");
        assert!(stdout.contains("400 DeviceTokenNotForTopic"), "{stdout}");
    }
}
