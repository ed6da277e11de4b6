//! The whole loop over real sockets: the app registers through the HTTP endpoint, a posted
//! notification becomes pushes that the mock APNs receives, a 410 comes back as
//! `TokenInvalidated` and the registry drops the token.
#![cfg(all(feature = "endpoint", feature = "mock"))]

mod bridge_support;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use bridge_support::*;
use herald::bridge::{DeviceRegistry, PushAccepted, TokenInvalidated};

fn addressed(h: &Harness) -> Vec<String> {
    h.mock
        .pushes()
        .into_iter()
        .filter_map(|r| r.device_token)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_post_410_drops_token_and_next_post_skips_it() {
    let h = Harness::start(DeviceRegistry::in_memory()).await;
    let (phone, tablet) = (token(1), token(2));
    for t in [&phone, &tablet] {
        h.mock.register_device(t, BUNDLE);
        let (status, body) = form(h.addr, "alice", &format!("newToken={t}")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["result"], "registered");
    }
    assert_eq!(h.tokens("alice"), [phone.clone(), tablet.clone()]);
    let mut accepted = h.center.stream::<PushAccepted>();
    let mut invalidated = h.center.stream::<TokenInvalidated>();

    // Post once: both devices get the push.
    h.center.post(Shipped {
        user: "alice".into(),
        order: 1,
    });
    let m = h.settle(2).await;
    assert_eq!((m.accepted, m.rejected, m.failed), (2, 0, 0));
    let got: BTreeSet<_> = addressed(&h).into_iter().collect();
    assert_eq!(got, BTreeSet::from([phone.clone(), tablet.clone()]));
    assert_eq!(
        accepted.recv().await.unwrap().subject.as_deref(),
        Some("alice")
    );
    let payload = h.mock.pushes()[0].payload.clone().unwrap();
    assert_eq!(payload["aps"]["alert"], "Order 1 shipped");

    // The tablet uninstalls the app: APNs answers 410 with a timestamp after registration.
    let gone_at = SystemTime::now();
    h.mock.mark_unregistered(&tablet, gone_at);
    h.center.post(Shipped {
        user: "alice".into(),
        order: 2,
    });
    let m = h.settle(4).await;
    assert_eq!((m.accepted, m.rejected, m.invalidated), (3, 1, 1));
    let inv = invalidated.recv().await.unwrap();
    assert_eq!(inv.token, tablet);
    assert_eq!(inv.reason, herald::apns::Reason::Unregistered);
    assert_eq!(h.tokens("alice"), std::slice::from_ref(&phone));

    // The next post addresses the phone only.
    let before = h.mock.pushes().len();
    h.center.post(Shipped {
        user: "alice".into(),
        order: 3,
    });
    h.settle(5).await;
    assert_eq!(&addressed(&h)[before..], [phone]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_token_is_never_addressed_again() {
    let h = Harness::start(DeviceRegistry::in_memory()).await;
    let (old, new) = (token(10), token(11));
    h.mock.register_device(&old, BUNDLE);
    h.mock.register_device(&new, BUNDLE);
    assert_eq!(form(h.addr, "bob", &format!("newToken={old}")).await.0, 200);
    let (status, body) = form(h.addr, "bob", &format!("oldToken={old}&newToken={new}")).await;
    assert_eq!((status, body["result"].as_str()), (200, Some("replaced")));
    assert_eq!(h.tokens("bob"), std::slice::from_ref(&new));

    for order in 0..5 {
        h.center.post(Shipped {
            user: "bob".into(),
            order,
        });
    }
    let m = h.settle(5).await;
    assert_eq!(m.accepted, 5);
    assert!(addressed(&h).iter().all(|t| *t == new));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_after_the_410_timestamp_keeps_the_token() {
    let h = Harness::start(DeviceRegistry::in_memory()).await;
    let t = token(20);
    // APNs learned the token was dead an hour ago; the app registered it again just now.
    h.mock
        .mark_unregistered(&t, SystemTime::now() - Duration::from_secs(3600));
    assert_eq!(form(h.addr, "carol", &format!("newToken={t}")).await.0, 200);
    let mut invalidated = h.center.stream::<TokenInvalidated>();

    h.center.post(Shipped {
        user: "carol".into(),
        order: 1,
    });
    let m = h.settle(1).await;
    assert_eq!((m.rejected, m.invalidated), (1, 1));
    assert_eq!(invalidated.recv().await.unwrap().token, t);
    assert_eq!(h.tokens("carol"), [t], "re-registered after the 410: kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_device_token_and_wrong_topic_never_delete_the_token() {
    let h = Harness::start(DeviceRegistry::in_memory()).await;
    let (unknown, other_app) = (token(30), token(31));
    h.mock.register_device(&other_app, "com.other.app");
    for t in [&unknown, &other_app] {
        assert_eq!(form(h.addr, "dave", &format!("newToken={t}")).await.0, 200);
    }
    h.center.post(Shipped {
        user: "dave".into(),
        order: 1,
    });
    let m = h.settle(2).await;
    // No push to dave's topic was accepted: the rejections prove nothing about the tokens.
    assert_eq!((m.rejected, m.invalidated, m.quarantined), (2, 0, 0));
    assert_eq!(h.tokens("dave").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posting_never_waits_on_the_network() {
    let h = Harness::start(DeviceRegistry::in_memory()).await;
    let t = token(40);
    h.mock.register_device(&t, BUNDLE);
    assert_eq!(form(h.addr, "erin", &format!("newToken={t}")).await.0, 200);
    // Every answer takes 2 s: had a post waited for the network, an outcome would be in by the
    // time the posts return. (No clock is read: a slow machine only makes posting slower, and
    // posting 50 notifications stays far below 2 s.)
    h.mock
        .set_latency(herald::mock::Latency::Fixed(Duration::from_secs(2)));
    for order in 0..50 {
        h.center.post(Shipped {
            user: "erin".into(),
            order,
        });
    }
    let m = h.sink.metrics();
    assert_eq!(
        (m.accepted, m.rejected, m.failed),
        (0, 0, 0),
        "post waited: {m:?}"
    );
    let m = h.settle(50).await;
    assert_eq!(m.accepted, 50);
    let q = h.forwarding.queue().unwrap();
    assert_eq!((q.depth, q.dropped), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_registry_serves_the_loop_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("devices.redb");
    let t = token(50);
    {
        let h = Harness::start(DeviceRegistry::open(&path).unwrap()).await;
        assert_eq!(form(h.addr, "frank", &format!("newToken={t}")).await.0, 200);
    }
    // Aborted tasks release their registry handles asynchronously: retry the open briefly.
    let mut reopened = DeviceRegistry::open(&path);
    for _ in 0..200 {
        if reopened.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        reopened = DeviceRegistry::open(&path);
    }
    let h = Harness::start(reopened.unwrap()).await;
    h.mock.register_device(&t, BUNDLE);
    h.center.post(Shipped {
        user: "frank".into(),
        order: 1,
    });
    assert_eq!(h.settle(1).await.accepted, 1);
    assert_eq!(addressed(&h), [t]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_map_loses_that_notification_only() {
    use herald::apns::Payload;
    use herald::bridge::Message;
    let h = Harness::start(DeviceRegistry::in_memory()).await;
    let t = token(60);
    h.mock.register_device(&t, BUNDLE);
    assert_eq!(form(h.addr, "gina", &format!("newToken={t}")).await.0, 200);
    let forwarding = h
        .center
        .observer::<Shipped>()
        .forward(h.sink.map(|n: &Shipped| {
            assert!(n.order != 13, "unlucky order");
            Message::to_subject(&n.user, Payload::alert("again"))
        }));
    for order in [12, 13, 14] {
        h.center.post(Shipped {
            user: "gina".into(),
            order,
        });
    }
    forwarding.finish().await;
    // The harness's own forwarding sent all three; this one sent two and counted the panic.
    let m = h.settle(5).await;
    assert_eq!((m.accepted, m.panicked), (5, 1));
}

#[test]
fn public_handles_and_futures_are_send_and_sync() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    fn is_send_sync<T: Send + Sync>() {}
    is_send_sync::<herald::bridge::ApnsSink>();
    is_send_sync::<herald::bridge::DeviceRegistry>();
    is_send_sync::<herald::bridge::Forwarding>();
    is_send_sync::<herald::bridge::SinkMap<Shipped>>();
    is_send_sync::<herald::bridge::RedbStore>();
    is_send_sync::<herald::bridge::MemoryStore>();
    is_send_sync::<herald::bridge::PushAccepted>();
    is_send_sync::<herald::bridge::PushRejected>();
    is_send_sync::<herald::bridge::PushFailed>();
    is_send_sync::<herald::bridge::TokenInvalidated>();
    is_send_sync::<herald::bridge::TokenQuarantined>();
    is_send_sync::<herald::bridge::TokenReleased>();
    is_send_sync::<herald::bridge::PushSkipped>();
    is_send_sync::<herald::bridge::PushConfigSuspect>();
    is_send_sync::<herald::bridge::PushConfigRecovered>();
    is_send_sync::<herald::bridge::RegistrySubscription>();
    is_send_sync::<herald::bridge::ManualClock>();
    is_send_sync::<herald::bridge::RegistryError>();
    let registry = DeviceRegistry::in_memory();
    let endpoint = herald::bridge::endpoint::RegistrationEndpoint::builder(
        registry,
        verifier as fn(&http::request::Parts) -> Option<String>,
    )
    .build();
    send_sync(&endpoint);
    let request = http::Request::post("/")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let handling = endpoint.handle(request, "127.0.0.1".parse().unwrap());
    send(&handling);
    drop(handling);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        send(&endpoint.clone().serve(listener));
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_waits_for_every_outcome_and_stays_subscribed() {
    let h = Harness::start(DeviceRegistry::in_memory()).await;
    let t = token(70);
    h.mock.register_device(&t, BUNDLE);
    assert_eq!(form(h.addr, "hal", &format!("newToken={t}")).await.0, 200);
    h.mock
        .set_latency(herald::mock::Latency::Fixed(Duration::from_millis(20)));
    for round in 1..=2u64 {
        for order in 0..25 {
            h.center.post(Shipped {
                user: "hal".into(),
                order,
            });
        }
        h.forwarding.idle().await;
        // Everything posted before `idle` was sent and answered, with nothing in flight.
        let m = h.sink.metrics();
        assert_eq!(
            (m.sent, m.accepted, m.in_flight),
            (25 * round, 25 * round, 0)
        );
        assert_eq!(h.forwarding.in_flight(), 0);
        assert_eq!(h.forwarding.queue().unwrap().depth, 0);
    }
}
