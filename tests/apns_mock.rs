//! The APNs client against the mock APNs server, over TLS on loopback.
//!
//! Each test names the behaviour it pins. The heavy fault matrix (10^4 pushes) runs in the normal
//! suite: it takes a few seconds on loopback.
//!
//! Timing: these tests talk to the mock over real TLS sockets, so tokio's paused clock cannot
//! stand in for real time. No test relies on an answer arriving within a tight budget: a
//! request timeout that must *not* fire is [`ANSWER_WITHIN`] (generous for a debug build on a
//! loaded 2-core machine), a test that must see something happen polls for it with
//! [`eventually`] (a 30 s hang guard), and a timeout that *must* fire is only ever checked
//! from below (it cannot fire early).
#![cfg(all(feature = "apns", feature = "mock"))]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use herald::apns::{
    ApnsClient, ApnsClientBuilder, Certificate, Counters, Endpoint, Failed, Payload, Push,
    PushOutcome, PushType, Reason, RetryPolicy, TokenKey,
};
use herald::mock::{Fault, Latency, MockApns, MockApnsBuilder, MockClock};

/// A plain HTTP/2 client (no herald client code), to send the mock what the client never would.
mod mock_support;

const BUNDLE: &str = "com.example.app";
const KEY_ID: &str = "ABC123DEFG";
const TEAM: &str = "TEAM123456";

/// A request timeout that an answer the mock does give always beats, even in a debug build on
/// a loaded machine. A stalled push (the mock never answers) costs this much.
const ANSWER_WITHIN: Duration = Duration::from_secs(3);

/// Polls `cond` until it holds; fails after 30 s (a hang guard, not a budget).
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn device(i: usize) -> String {
    format!("{:064x}", i + 1)
}

struct Setup {
    mock: MockApns,
    key: TokenKey,
}

async fn setup_with(builder: MockApnsBuilder) -> Setup {
    let mock = builder.accept_unknown_tokens(true).start().await.unwrap();
    let p8 = mock.generate_key(KEY_ID, TEAM).unwrap();
    let key = TokenKey::from_p8_pem(p8, KEY_ID, TEAM).unwrap();
    Setup { mock, key }
}

async fn setup() -> Setup {
    setup_with(MockApns::builder()).await
}

fn client_for(s: &Setup) -> ApnsClientBuilder {
    ApnsClient::builder()
        .endpoint(
            Endpoint::custom(&s.mock.url())
                .unwrap()
                .with_ca_pem(s.mock.ca_pem()),
        )
        .token_auth(s.key.clone())
        .retry(RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(50),
        })
}

fn push(i: usize) -> Push {
    Push::builder(device(i), BUNDLE)
        .payload(&Payload::alert(format!("hello {i}")))
        .unwrap()
        .build()
        .unwrap()
}

#[tokio::test]
async fn token_auth_push_is_accepted_with_its_apns_id() {
    let s = setup().await;
    let client = client_for(&s).build().unwrap();
    let p = push(0);
    let id = p.apns_id().to_owned();
    match client.send(p).await {
        PushOutcome::Accepted(a) => {
            assert_eq!(a.apns_id, id);
            assert!(a.apns_unique_id.is_some());
        }
        other => panic!("expected accepted, got {other:?}"),
    }
    let rec = s.mock.pushes();
    assert_eq!(rec.len(), 1);
    assert_eq!(rec[0].topic.as_deref(), Some(BUNDLE));
    assert_eq!(rec[0].push_type.as_deref(), Some("alert"));
    assert_eq!(rec[0].header("apns-id"), Some(id.as_str()));
    assert!(
        rec[0]
            .header("authorization")
            .is_some_and(|a| a.starts_with("bearer "))
    );
    assert_eq!(s.key.tokens_minted(), 1);
    client.shutdown().await;
}

#[tokio::test]
async fn certificate_auth_push_is_accepted() {
    let s = setup().await;
    let issued = s.mock.issue_push_certificate(BUNDLE).unwrap();
    let cert = Certificate::from_pem(issued.cert_pem(), issued.key_pem()).unwrap();
    assert!(cert.expires_at() > SystemTime::now());
    let client = ApnsClient::builder()
        .endpoint(
            Endpoint::custom(&s.mock.url())
                .unwrap()
                .with_ca_pem(s.mock.ca_pem()),
        )
        .certificate(cert)
        .build()
        .unwrap();
    let outcome = client.send(push(1)).await;
    assert!(outcome.is_accepted(), "{outcome:?}");
    let rec = s.mock.pushes();
    assert!(rec[0].header("authorization").is_none());
}

#[tokio::test]
async fn every_known_reason_is_mapped() {
    let s = setup().await;
    let client = client_for(&s).retry(RetryPolicy::none()).build().unwrap();
    for reason in Reason::known() {
        if *reason == Reason::ExpiredProviderToken {
            continue; // re-minted and retried: its own test
        }
        let status = reason.status().unwrap();
        s.mock.script(Fault::reject(status, reason.as_str()));
        let outcome = client.send(push(2)).await;
        match &outcome {
            PushOutcome::Rejected(r) => {
                assert_eq!(&r.reason, reason);
                assert_eq!(r.status, status);
            }
            PushOutcome::Failed(Failed { error: e, .. }) if status == 429 || status >= 500 => {
                assert!(e.is_retries_exhausted());
                assert_eq!(e.reason(), Some(reason));
                assert_eq!(e.status(), Some(status));
            }
            other => panic!("{reason}: unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn unknown_reason_is_preserved_verbatim() {
    let s = setup().await;
    let client = client_for(&s).build().unwrap();
    s.mock
        .script(Fault::reject(400, "SomethingAppleAddedIn2030"));
    let outcome = client.send(push(3)).await;
    assert_eq!(
        outcome.reason(),
        Some(&Reason::Other("SomethingAppleAddedIn2030".into()))
    );
}

#[tokio::test]
async fn unregistered_carries_the_410_timestamp() {
    let s = setup().await;
    let client = client_for(&s).build().unwrap();
    let at = UNIX_EPOCH + Duration::from_millis(1_750_000_000_123);
    s.mock.mark_unregistered(&device(4), at);
    match client.send(push(4)).await {
        PushOutcome::Rejected(r) => {
            assert_eq!(r.status, 410);
            assert_eq!(r.reason, Reason::Unregistered);
            assert!(r.reason.invalidates_token());
            assert_eq!(r.timestamp, Some(at));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_ramp_is_followed_and_the_limit_never_exceeded() {
    let s = setup_with(
        MockApns::builder()
            .max_streams(20)
            .latency(Latency::Fixed(Duration::from_millis(2))),
    )
    .await;
    let client = client_for(&s).connections(2).build().unwrap();
    let mut outcomes = client.send_all((0..600).map(push), 200);
    let mut n = 0;
    while let Some((_, o)) = outcomes.next().await {
        assert!(o.is_accepted(), "{o:?}");
        n += 1;
    }
    assert_eq!(n, 600);
    let stats = s.mock.stats();
    assert_eq!(stats.goaways, 0);
    assert!(!stats.by_reason.contains_key("TooManyRequests"));
    let mut peak = 0;
    for c in stats.connections.values() {
        assert!(c.peak_streams <= 20, "{c:?}");
        peak = peak.max(c.peak_streams);
    }
    assert!(peak > 1, "the client never ramped up: {stats:?}");
}

#[tokio::test]
async fn limit_drop_after_rejection_is_followed() {
    let s = setup_with(
        MockApns::builder()
            .max_streams(50)
            .drop_to_one_after_rejection(true)
            .latency(Latency::Fixed(Duration::from_millis(1))),
    )
    .await;
    let client = client_for(&s).build().unwrap();
    for i in 0..20 {
        if i % 4 == 0 {
            s.mock.script(Fault::reject(400, "BadTopic"));
        }
    }
    let mut outcomes = client.send_all((0..400).map(push), 100);
    let mut n = 0;
    while let Some((_, o)) = outcomes.next().await {
        assert!(o.is_accepted() || o.reason() == Some(&Reason::BadTopic));
        n += 1;
    }
    assert_eq!(n, 400);
    let stats = s.mock.stats();
    assert_eq!(stats.goaways, 0, "{stats:?}");
    assert!(!stats.by_reason.contains_key("TooManyRequests"));
}

#[tokio::test]
async fn goaway_mid_flight_retries_unprocessed_streams_elsewhere() {
    let s = setup_with(MockApns::builder().latency(Latency::Fixed(Duration::from_millis(5)))).await;
    let client = client_for(&s).connections(2).build().unwrap();
    assert!(client.send(push(0)).await.is_accepted());
    s.mock.script_n(1, Fault::Accept);
    s.mock.script(Fault::goaway("Shutdown"));
    let mut outcomes = client.send_all((1..201).map(push), 100);
    let mut ids = HashSet::new();
    let mut accepted = 0;
    while let Some((p, o)) = outcomes.next().await {
        // The mock's abrupt GOAWAY drops the streams it had taken (at or below last_stream_id):
        // it may have processed them (it may even have answered 200 into the closing socket), so
        // they fail as ConnectionLost rather than risk a duplicate; everything above is retried.
        match &o {
            PushOutcome::Accepted(_) => accepted += 1,
            PushOutcome::Failed(Failed { error: e, .. }) if e.is_connection_lost() => {}
            other => panic!("{other:?}"),
        }
        assert!(ids.insert(p.apns_id().to_owned()));
    }
    assert_eq!(ids.len(), 200);
    assert!(accepted >= 100, "only {accepted} accepted");
    assert!(s.mock.duplicate_accepted().is_empty());
    assert!(s.mock.stats().goaways >= 1);
}

#[tokio::test]
async fn server_initiated_goaway_of_all_connections_is_survived() {
    let s = setup().await;
    let client = client_for(&s).connections(2).build().unwrap();
    assert!(client.send(push(0)).await.is_accepted());
    s.mock.goaway_all("Shutdown");
    tokio::time::sleep(Duration::from_millis(50)).await;
    for i in 1..20 {
        assert!(client.send(push(i)).await.is_accepted());
    }
}

#[tokio::test]
async fn dropped_connection_fails_in_flight_push_once_then_reconnects() {
    let s = setup().await;
    let client = client_for(&s).build().unwrap();
    assert!(client.send(push(0)).await.is_accepted());
    s.mock.script(Fault::DropConnection);
    let p = push(1);
    let outcome = client.send(p.clone()).await;
    match &outcome {
        PushOutcome::Failed(Failed { error: e, .. }) => assert!(e.is_connection_lost(), "{e:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.mock.accepted_count(p.apns_id()), 0);
    assert!(client.send(push(2)).await.is_accepted());
}

#[tokio::test]
async fn refused_stream_is_retried_with_the_same_apns_id() {
    let s = setup().await;
    let client = client_for(&s).build().unwrap();
    s.mock.script(Fault::RefuseStream);
    let p = push(5);
    assert!(client.send(p.clone()).await.is_accepted());
    let ids: Vec<_> = s
        .mock
        .pushes()
        .iter()
        .map(|r| r.header("apns-id").unwrap_or("").to_owned())
        .collect();
    assert!(ids.len() >= 2);
    assert!(ids.iter().all(|i| i == p.apns_id()));
}

/// RetryPolicy docs: "Requests that never reached APNs (GOAWAY, REFUSED_STREAM) are retried on
/// another connection": not on the one that refused it, when another one is open.
#[tokio::test]
async fn a_refused_stream_is_retried_on_another_open_connection() {
    let s =
        setup_with(MockApns::builder().latency(Latency::Fixed(Duration::from_millis(20)))).await;
    let client = client_for(&s).connections(2).build().unwrap();
    // Enough pushes at once to bring both connections up.
    let mut outcomes = client.send_all((0..40).map(push), 40);
    while let Some((_, o)) = outcomes.next().await {
        assert!(o.is_accepted(), "{o:?}");
    }
    assert_eq!(s.mock.open_connections(), 2);
    for i in 100..112 {
        s.mock.script(Fault::RefuseStream);
        let p = push(i);
        let o = client.send(p.clone()).await;
        assert!(o.is_accepted(), "{o:?}");
        let tries: Vec<_> = s
            .mock
            .pushes()
            .into_iter()
            .filter(|r| r.header("apns-id") == Some(p.apns_id()))
            .collect();
        assert_eq!(tries.len(), 2, "push {i}");
        assert_ne!(
            tries[0].connection, tries[1].connection,
            "push {i}: retried on the connection that refused it"
        );
    }
}

#[tokio::test]
async fn a_stall_hits_the_request_timeout() {
    let s = setup().await;
    let client = client_for(&s)
        .request_timeout(ANSWER_WITHIN)
        .build()
        .unwrap();
    s.mock.script(Fault::Stall);
    let started = std::time::Instant::now();
    let outcome = client.send(push(6)).await;
    assert!(
        outcome.error().is_some_and(|e| e.is_timeout()),
        "{outcome:?}"
    );
    assert!(started.elapsed() >= ANSWER_WITHIN, "timed out early");
    assert!(client.send(push(7)).await.is_accepted());
}

#[tokio::test]
async fn connect_timeout_and_refused_connections_fail_typed() {
    // A port with nothing listening: connect errors, retried with backoff, then failed.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let client = ApnsClient::builder()
        .endpoint(Endpoint::custom(&format!("https://127.0.0.1:{port}")).unwrap())
        .retry(RetryPolicy {
            max_retries: 1,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
        })
        .connect_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(20), client.send(push(0)))
        .await
        .unwrap();
    let e = outcome.error().unwrap();
    assert!(e.is_connect() || e.is_timeout(), "{e:?}");
}

/// A connect that times out is a connect failure (nothing was sent), not a request timeout
/// ("APNs may have it"): callers and the CLI tell the user the truth from `is_connect()`.
#[tokio::test]
async fn a_connect_timeout_is_a_connect_error_and_nothing_was_sent() {
    // Accepts TCP connections and never answers the TLS ClientHello.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let client = ApnsClient::builder()
        .endpoint(Endpoint::custom(&format!("https://127.0.0.1:{port}")).unwrap())
        .retry(RetryPolicy::none())
        .connect_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let outcome = client.send(push(0)).await;
    let e = outcome.error().expect("failed");
    assert!(e.is_connect(), "{e:?}");
    assert!(
        !e.is_timeout(),
        "a connect timeout is not a request timeout: {e:?}"
    );
    assert!(e.to_string().contains("nothing was sent"), "{e}");
    silent.abort();
}

#[tokio::test]
async fn service_unavailable_storm_is_retried_then_failed_once_each() {
    let s = setup().await;
    let client = client_for(&s)
        .retry(RetryPolicy {
            max_retries: 2,
            initial_backoff: Duration::from_millis(2),
            max_backoff: Duration::from_millis(10),
        })
        .build()
        .unwrap();
    assert!(client.send(push(0)).await.is_accepted());
    s.mock.set_error_rate(1.0);
    let mut outcomes = client.send_all((1..11).map(push), 10);
    let mut n = 0;
    while let Some((_, o)) = outcomes.next().await {
        let e = o.error().expect("failed");
        assert!(e.is_retries_exhausted());
        assert!(matches!(e.status(), Some(500 | 503)));
        n += 1;
    }
    assert_eq!(n, 10);
    let mut attempts: HashMap<String, usize> = HashMap::new();
    for r in s.mock.pushes().iter().skip(1) {
        *attempts
            .entry(r.header("apns-id").unwrap_or("").to_owned())
            .or_default() += 1;
    }
    assert_eq!(attempts.len(), 10);
    assert!(attempts.values().all(|&n| n == 3), "{attempts:?}");
}

#[tokio::test]
async fn expired_provider_token_is_reminted_once_and_succeeds() {
    let s = setup().await;
    let client = client_for(&s).build().unwrap();
    assert!(client.send(push(0)).await.is_accepted());
    assert_eq!(s.key.tokens_minted(), 1);
    s.mock.script(Fault::reject(403, "ExpiredProviderToken"));
    assert!(client.send(push(1)).await.is_accepted());
    assert_eq!(s.key.tokens_minted(), 2);
    // Twice in a row: re-minted once, then the rejection stands.
    s.mock
        .script_n(2, Fault::reject(403, "ExpiredProviderToken"));
    let o = client.send(push(2)).await;
    assert_eq!(o.reason(), Some(&Reason::ExpiredProviderToken));
}

#[tokio::test]
async fn three_simulated_hours_without_too_many_provider_token_updates() {
    let clock = MockClock::starting_now();
    let s = setup_with(MockApns::builder().clock(clock.clone())).await;
    let client = client_for(&s).connections(2).build().unwrap();
    let step = Duration::from_secs(60);
    for minute in 0..180 {
        for i in 0..2 {
            let o = client.send(push(minute * 2 + i)).await;
            assert!(o.is_accepted(), "minute {minute}: {o:?}");
        }
        clock.advance(step);
        s.key.advance_clock(step);
    }
    let stats = s.mock.stats();
    assert!(!stats.by_reason.contains_key("TooManyProviderTokenUpdates"));
    assert!(!stats.by_reason.contains_key("ExpiredProviderToken"));
    let minted = s.key.tokens_minted();
    assert!((3..=5).contains(&minted), "minted {minted}");
}

#[tokio::test]
async fn idle_connection_is_pinged_and_stays_usable() {
    let s = setup().await;
    let counters = Arc::new(Counters::default());
    let client = client_for(&s)
        .ping_interval(Duration::from_millis(100))
        .metrics(counters.clone())
        .build()
        .unwrap();
    assert!(client.send(push(0)).await.is_accepted());
    let seen_by_mock = || -> u32 { s.mock.stats().connections.values().map(|c| c.pings).sum() };
    eventually("a PING sent by the client and seen by the mock", || {
        counters.snapshot().pings >= 1 && seen_by_mock() >= 1
    })
    .await;
    assert!(client.send(push(1)).await.is_accepted());
    assert_eq!(counters.snapshot().connections, 1);
}

#[tokio::test]
async fn shutdown_drains_in_flight_pushes() {
    let s =
        setup_with(MockApns::builder().latency(Latency::Fixed(Duration::from_millis(150)))).await;
    let client = client_for(&s).build().unwrap();
    assert!(client.send(push(0)).await.is_accepted());
    // A send is admitted when first polled: poll each once, so all 29 are in flight (or queued
    // for a stream) before shutdown begins, however slowly this machine runs them.
    let mut sends: Vec<_> = (1..30).map(|i| Box::pin(client.send(push(i)))).collect();
    for send in &mut sends {
        assert!(futures::poll!(send.as_mut()).is_pending());
    }
    let ((), outcomes) = tokio::join!(client.shutdown(), futures::future::join_all(sends));
    for o in outcomes {
        assert!(o.is_accepted(), "{o:?}");
    }
    let after = client.send(push(99)).await;
    assert!(after.error().is_some_and(|e| e.is_shutdown()));
    eventually("the connection closed", || s.mock.open_connections() == 0).await;
}

#[tokio::test]
async fn push_types_carry_their_topic_suffix_and_limits() {
    let s = setup().await;
    let client = client_for(&s).build().unwrap();
    let voip = Push::builder(device(9), BUNDLE)
        .push_type(PushType::Voip)
        .raw_payload(format!(r#"{{"aps":{{}},"x":"{}"}}"#, "y".repeat(5000)))
        .build()
        .unwrap();
    assert!(client.send(voip).await.is_accepted());
    let bg = Push::builder(device(9), BUNDLE)
        .push_type(PushType::Background)
        .payload(&Payload::background())
        .unwrap()
        .build()
        .unwrap();
    assert!(client.send(bg).await.is_accepted());
    let rec = s.mock.pushes();
    assert_eq!(rec[0].topic.as_deref(), Some("com.example.app.voip"));
    assert_eq!(rec[1].header("apns-priority"), Some("5"));
}

/// Module docs ("Building a push"): a push that built is one APNs can only refuse for reasons
/// outside it, so a topic builds exactly when Apple (here the mock, asked with a plain HTTP/2
/// client) takes it. The client and the mock cannot share their topic rule (they never import
/// each other, see `apns_walls.rs`): this keeps the two equal.
#[tokio::test]
async fn a_topic_builds_exactly_when_apns_would_take_it() {
    let s = setup().await;
    let client = client_for(&s).retry(RetryPolicy::none()).build().unwrap();
    let p8 = s.mock.generate_key("RAWKEY0001", TEAM).unwrap();
    let jwt = mock_support::sign_jwt(&p8, "RAWKEY0001", TEAM, mock_support::now_secs());
    let mut raw = mock_support::connect(&s.mock, None).await;
    let topics = [
        ("com.example.app", true),
        ("com.example-app.my_app2", true),
        ("A", true),
        ("com..example.app", false),
        ("com.example/app", false),
        (".com.example.app", false),
        ("com.example.app.", false),
        ("com.example app", false),
        ("com.example.app!", false),
        ("com:example", false),
        ("com.exa*mple", false),
    ];
    for (topic, well_formed) in topics {
        let answer = mock_support::push(&device(0))
            .header("apns-topic", topic)
            .bearer(&jwt)
            .send(&mut raw)
            .await
            .unwrap();
        let mock_says = (answer.status, answer.reason());
        match well_formed {
            true => assert_eq!(mock_says, (200, None), "the mock refused {topic:?}"),
            false => assert_eq!(
                mock_says,
                (400, Some("BadTopic".into())),
                "the mock took {topic:?}"
            ),
        }
        match Push::builder(device(0), topic).build() {
            Ok(p) => {
                assert!(well_formed, "{topic:?} built, and APNs refuses it");
                let o = client.send(p).await;
                assert!(o.is_accepted(), "{topic:?}: {o:?}");
            }
            Err(e) => {
                assert!(!well_formed, "{topic:?} did not build: {e:?}");
                assert!(e.is_invalid_push(), "{topic:?}: {e:?}");
            }
        }
    }
    // What cannot even be sent as a header value fails the same way.
    for topic in ["com.exämple.app", "com.example\tapp"] {
        let e = Push::builder(device(0), topic).build().unwrap_err();
        assert!(e.is_invalid_push(), "{topic:?}: {e:?}");
    }
}

/// RFC 9113 §5.1: a stream the client reset is closed. A client whose request timed out (it
/// resets the stream) and that then sends the next push is within a limit of one stream, and
/// the mock must not answer it with the stream-limit GOAWAY (which the client would report as
/// a lost connection for a push the mock never saw).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_after_a_timed_out_one_is_within_a_limit_of_one_stream() {
    let s = setup_with(MockApns::builder().max_streams(1)).await;
    let client = client_for(&s)
        .request_timeout(Duration::from_millis(20))
        .build()
        .unwrap();
    for i in 0..40 {
        s.mock.script_for_device(&device(i), Fault::Stall);
        let o = client.send(push(i)).await;
        assert!(o.error().is_some_and(|e| e.is_timeout()), "{o:?}");
        // An answer may miss the short timeout on a loaded machine; it must not be lost.
        let o = client.send(push(1000 + i)).await;
        assert!(
            o.is_accepted() || o.error().is_some_and(|e| e.is_timeout()),
            "round {i}: {o:?}"
        );
    }
    let stats = s.mock.stats();
    assert_eq!(
        stats.by_reason.get("StreamLimitExceeded"),
        None,
        "{stats:?}"
    );
    assert_eq!(stats.goaways, 0, "{stats:?}");
}

/// 10^4 pushes through random faults: exactly one outcome per push, no accepted push twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_one_outcome_per_push_no_duplicates() {
    let n: usize = std::env::var("HERALD_FAULT_MATRIX_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let s = setup_with(MockApns::builder().max_streams(100)).await;
    let client = client_for(&s)
        .connections(4)
        .request_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    assert!(client.send(push(0)).await.is_accepted());
    // A deterministic pseudo-random fault script.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let fault = match x % 1000 {
            0..=19 => Fault::reject(503, "ServiceUnavailable"),
            20..=29 => Fault::reject(500, "InternalServerError"),
            30..=39 => Fault::reject(429, "TooManyRequests"),
            40..=49 => Fault::reject(410, "Unregistered"),
            50..=59 => Fault::reject(400, "BadDeviceToken"),
            60..=69 => Fault::RefuseStream,
            70..=72 => Fault::goaway("Shutdown"),
            73..=74 => Fault::DropConnection,
            75 => Fault::Stall,
            76..=79 => Fault::reject(403, "ExpiredProviderToken"),
            _ => Fault::Accept,
        };
        s.mock.script(fault);
    }
    let started = std::time::Instant::now();
    let mut outcomes = client.send_all((1..=n).map(push), 1000);
    let mut seen = HashSet::new();
    let mut accepted = HashSet::new();
    let mut tally: HashMap<&'static str, usize> = HashMap::new();
    while let Some((p, o)) = outcomes.next().await {
        assert!(
            seen.insert(p.apns_id().to_owned()),
            "two outcomes for one push"
        );
        let k = match &o {
            PushOutcome::Accepted(_) => {
                accepted.insert(p.apns_id().to_owned());
                "accepted"
            }
            PushOutcome::Rejected(_) => "rejected",
            PushOutcome::Failed(Failed { error: e, .. }) if e.is_connection_lost() => {
                "connection lost"
            }
            PushOutcome::Failed(Failed { error: e, .. }) if e.is_timeout() => "timeout",
            PushOutcome::Failed(_) => "failed",
            _ => "another kind of outcome",
        };
        *tally.entry(k).or_default() += 1;
    }
    eprintln!(
        "fault matrix: {n} pushes in {:?}: {tally:?}",
        started.elapsed()
    );
    assert_eq!(seen.len(), n);
    assert!(s.mock.duplicate_accepted().is_empty());
    for id in &accepted {
        assert_eq!(s.mock.accepted_count(id), 1, "{id}");
    }
    client.shutdown().await;
}

#[tokio::test]
async fn pushes_go_through_an_http_connect_proxy() {
    let s = setup().await;
    let (proxy, tunnels) = mock_support::connect_proxy().await;
    let client = client_for(&s)
        .proxy(format!("http://{proxy}"))
        .build()
        .unwrap();
    for i in 0..5 {
        let o = client.send(push(i)).await;
        assert!(o.is_accepted(), "{o:?}");
    }
    assert_eq!(tunnels.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// A proxy the builder cannot use as given is refused at `build`, without repeating the value
/// (it may hold a password), instead of being guessed at: before, `notaurl` became a host on
/// port 8080, a missing port became 8080, and a path or `user:password@` were dropped.
#[tokio::test]
async fn a_proxy_that_is_not_host_and_port_is_refused_at_build() {
    let s = setup().await;
    for bad in [
        "notaurl",
        "http://squid.corp",
        "http://user:s3cret@squid.corp:3128",
        "http://squid.corp:3128/some/path",
        "http://squid.corp:3128?x=1",
        "https://squid.corp:3128",
        "socks5://squid.corp:1080",
        "http://squid.corp:0",
        "http://squid.corp:99999",
        "http://:3128",
    ] {
        let err = match client_for(&s).proxy(bad).build() {
            Ok(_) => panic!("{bad} was accepted"),
            Err(e) => e,
        };
        assert_eq!(err.kind(), herald::apns::ErrorKind::Config, "{bad}: {err}");
        let shown = format!("{err} {err:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("squid.corp"),
            "{shown}"
        );
    }
    let (proxy, tunnels) = mock_support::connect_proxy().await;
    let bare = proxy.to_string();
    for good in [format!("http://{proxy}/"), bare] {
        let client = client_for(&s).proxy(good.clone()).build().unwrap();
        assert!(client.send(push(0)).await.is_accepted(), "{good}");
    }
    assert_eq!(tunnels.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_proxy_that_refuses_connect_is_a_connect_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(b"HTTP/1.1 403 Forbidden\r\n\r\n").await;
        }
    });
    let s = setup().await;
    let client = client_for(&s)
        .proxy(format!("http://{addr}"))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let o = client.send(push(0)).await;
    let e = o.error().expect("failed");
    assert!(e.is_connect(), "{e:?}");
    assert!(e.to_string().contains("403"), "{e}");
}

#[tokio::test]
async fn queued_pushes_are_served_in_arrival_order() {
    let s = setup_with(
        MockApns::builder()
            .max_streams(1)
            .latency(Latency::Fixed(Duration::from_millis(3))),
    )
    .await;
    let client = client_for(&s).build().unwrap();
    assert!(client.send(push(0)).await.is_accepted());
    let mut handles = Vec::new();
    let mut ids = Vec::new();
    for i in 1..=30 {
        let p = push(i);
        ids.push(p.apns_id().to_owned());
        let c = client.clone();
        handles.push(tokio::spawn(async move { c.send(p).await }));
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for h in handles {
        assert!(h.await.unwrap().is_accepted());
    }
    let seen: Vec<String> = s
        .mock
        .pushes()
        .iter()
        .skip(1)
        .map(|r| r.header("apns-id").unwrap_or("").to_owned())
        .collect();
    assert_eq!(seen, ids);
    let stats = s.mock.stats();
    assert!(stats.connections.values().all(|c| c.peak_streams <= 1));
}

#[tokio::test]
async fn idle_timeout_closes_the_connection_and_the_next_push_reconnects() {
    let s = setup().await;
    let counters = Arc::new(Counters::default());
    let client = client_for(&s)
        .idle_timeout(Duration::from_millis(150))
        .metrics(counters.clone())
        .build()
        .unwrap();
    assert!(client.send(push(0)).await.is_accepted());
    eventually("the idle connection closed", || {
        s.mock.open_connections() == 0
    })
    .await;
    assert!(client.send(push(1)).await.is_accepted());
    assert_eq!(counters.snapshot().connections, 2);
}

/// Fan-out with a different scripted answer per device token: every push gets exactly the
/// outcome Apple's retry table says it should, whatever runs concurrently beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_all_gives_each_push_its_own_outcome() {
    let s = setup().await;
    let client = client_for(&s)
        .connections(2)
        .request_timeout(ANSWER_WITHIN)
        .build()
        .unwrap();
    assert!(client.send(push(0)).await.is_accepted());
    let gone = UNIX_EPOCH + Duration::from_millis(1_760_000_000_000);
    let n = 1000;
    let mut expected: HashMap<String, &'static str> = HashMap::new();
    for i in 1..=n {
        let token = device(i);
        let kind = match i % 10 {
            0 => {
                s.mock.script_for_device(
                    &token,
                    Fault::Reject {
                        status: 410,
                        reason: "Unregistered".into(),
                        timestamp: Some(gone),
                    },
                );
                "unregistered"
            }
            1 => {
                s.mock
                    .script_for_device(&token, Fault::reject(400, "BadDeviceToken"));
                "bad token"
            }
            2 => {
                s.mock
                    .script_for_device(&token, Fault::reject(503, "ServiceUnavailable"));
                "accepted"
            }
            3 => {
                for _ in 0..4 {
                    s.mock
                        .script_for_device(&token, Fault::reject(500, "InternalServerError"));
                }
                "exhausted"
            }
            4 => {
                s.mock.script_for_device(&token, Fault::RefuseStream);
                "accepted"
            }
            5 => {
                s.mock
                    .script_for_device(&token, Fault::reject(429, "TooManyRequests"));
                "accepted"
            }
            6 if i % 100 == 6 => {
                s.mock.script_for_device(&token, Fault::Stall);
                "timeout"
            }
            7 => {
                s.mock
                    .script_for_device(&token, Fault::reject(400, "NewReasonFrom2031"));
                "unknown"
            }
            _ => "accepted",
        };
        expected.insert(token, kind);
    }
    let mut outcomes = client.send_all((1..=n).map(push), 200);
    let mut count = 0;
    while let Some((p, o)) = outcomes.next().await {
        count += 1;
        let want = expected[p.device_token()];
        match (want, &o) {
            ("accepted", PushOutcome::Accepted(a)) => assert_eq!(a.apns_id, p.apns_id()),
            ("unregistered", PushOutcome::Rejected(r)) => {
                assert_eq!(r.reason, Reason::Unregistered);
                assert_eq!(r.timestamp, Some(gone));
            }
            ("bad token", PushOutcome::Rejected(r)) => {
                assert_eq!(r.reason, Reason::BadDeviceToken)
            }
            ("exhausted", PushOutcome::Failed(Failed { error: e, .. })) => {
                assert!(e.is_retries_exhausted());
                assert_eq!(e.reason(), Some(&Reason::InternalServerError));
            }
            ("timeout", PushOutcome::Failed(Failed { error: e, .. })) => assert!(e.is_timeout()),
            ("unknown", PushOutcome::Rejected(r)) => {
                assert_eq!(r.reason.as_str(), "NewReasonFrom2031")
            }
            (want, got) => panic!("{}: wanted {want}, got {got:?}", p.device_token()),
        }
    }
    assert_eq!(count, n);
    assert!(s.mock.duplicate_accepted().is_empty());
}

#[tokio::test]
async fn send_stream_takes_pushes_as_they_arrive() {
    let s = setup().await;
    let client = client_for(&s).build().unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel::<Push>(4);
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|p| (p, rx)) });
    let mut outcomes = client.send_stream(Box::pin(stream), 8);
    tokio::spawn(async move {
        for i in 0..50 {
            tx.send(push(i)).await.unwrap();
        }
    });
    let mut n = 0;
    while let Some((_, o)) = outcomes.next().await {
        assert!(o.is_accepted());
        n += 1;
    }
    assert_eq!(n, 50);
}

#[tokio::test]
async fn a_connection_that_stops_answering_is_replaced() {
    let s = setup().await;
    let counters = Arc::new(Counters::default());
    let client = client_for(&s)
        .request_timeout(ANSWER_WITHIN)
        .metrics(counters.clone())
        .build()
        .unwrap();
    assert!(client.send(push(0)).await.is_accepted());
    s.mock.script_n(3, Fault::Stall);
    // Three timeouts with no answer between them (concurrent, so the test waits one timeout).
    let stalled = futures::future::join_all((1..=3).map(|i| client.send(push(i)))).await;
    for o in stalled {
        assert!(o.error().is_some_and(|e| e.is_timeout()), "{o:?}");
    }
    assert!(client.send(push(4)).await.is_accepted());
    assert_eq!(counters.snapshot().connections, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_goaway_every_50_requests_loses_nothing() {
    let s = setup_with(MockApns::builder().goaway_after(50)).await;
    let client = client_for(&s).connections(2).build().unwrap();
    let mut outcomes = client.send_all((0..1000).map(push), 200);
    let mut n = 0;
    while let Some((_, o)) = outcomes.next().await {
        assert!(o.is_accepted(), "{o:?}");
        n += 1;
    }
    assert_eq!(n, 1000);
    assert!(s.mock.duplicate_accepted().is_empty());
    let goaways = s.mock.stats().goaways;
    eprintln!("goaways: {goaways}");
    assert!(goaways >= 2, "{goaways}");
}

#[tokio::test]
async fn dropping_the_last_client_handle_closes_its_connections() {
    let s = setup().await;
    let client = client_for(&s).connections(2).build().unwrap();
    let mut outcomes = client.send_all((0..50).map(push), 50);
    while outcomes.next().await.is_some() {}
    assert!(s.mock.open_connections() >= 1);
    drop(outcomes);
    drop(client);
    eventually("every connection closed", || s.mock.open_connections() == 0).await;
}
