//! The mock's connection behaviour: stream-limit ramp, GOAWAY, faults, token timing with an
//! injected clock, certificate auth, recording. Over real TLS + HTTP/2 sockets.

mod mock_support;

use herald::mock::{AuthKind, Fault, Latency, MockApns, MockClock};
use mock_support::*;
use std::time::{Duration, Instant};

// ----- stream-limit ramp -----

#[tokio::test]
async fn token_connection_allows_one_stream_until_a_push_is_accepted() {
    let s = Setup::with(MockApns::builder().max_streams(500)).await;
    let (mut c, frames) = connect_sniffed(&s.mock, None).await;
    let jwt = s.jwt();
    let a = push(&token(9)).bearer(&jwt).send(&mut c).await.unwrap();
    assert_eq!(a.status, 400);
    assert_eq!(
        c.current_max_send_streams(),
        1,
        "still one stream after a rejection"
    );
    let preface = wait_frame(&frames, |f| f.kind == SETTINGS && f.flags & 1 == 0).await;
    assert_eq!(preface.max_streams(), Some(1));
    assert_eq!(
        push(&token(1))
            .bearer(&jwt)
            .send(&mut c)
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        c.current_max_send_streams(),
        500,
        "raised once a valid token push succeeded"
    );
    assert_eq!(
        s.mock
            .stats()
            .connections
            .values()
            .next()
            .unwrap()
            .max_streams,
        500
    );
}

#[tokio::test]
async fn default_raised_limit_is_1000_and_pipelining_works_after_it() {
    let s = Setup::new().await;
    let mut c = s.client().await;
    let jwt = s.jwt();
    assert_eq!(
        push(&token(1))
            .bearer(&jwt)
            .send(&mut c)
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(c.current_max_send_streams(), 1000);
    // Long enough that all 20 are open before the first answer, however loaded the machine.
    s.mock.set_latency(Latency::Fixed(Duration::from_secs(1)));
    let mut pending = Vec::new();
    for _ in 0..20 {
        pending.push(push(&token(1)).bearer(&jwt).start(&mut c).await.unwrap());
    }
    for p in pending {
        assert_eq!(read(p).await.unwrap().status, 200);
    }
    let stats = s.mock.stats();
    let conn = stats.connections.values().next().unwrap();
    assert!(
        conn.peak_streams >= 10,
        "streams were concurrent: peak {}",
        conn.peak_streams
    );
}

#[tokio::test]
async fn limit_drops_to_one_after_a_rejection_when_configured() {
    let s = Setup::with(MockApns::builder().drop_to_one_after_rejection(true)).await;
    let mut c = s.client().await;
    let jwt = s.jwt();
    assert_eq!(
        push(&token(1))
            .bearer(&jwt)
            .send(&mut c)
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(c.current_max_send_streams(), 1000);
    assert_eq!(
        push(&token(7))
            .bearer(&jwt)
            .send(&mut c)
            .await
            .unwrap()
            .status,
        400
    );
    assert_eq!(c.current_max_send_streams(), 1);
    assert_eq!(
        push(&token(1))
            .bearer(&jwt)
            .send(&mut c)
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(c.current_max_send_streams(), 1000);
}

#[tokio::test]
async fn certificate_connection_starts_at_the_configured_limit() {
    let s = Setup::with(MockApns::builder().max_streams(64)).await;
    let cert = s.mock.issue_push_certificate(BUNDLE).unwrap();
    let (_c, frames) = connect_sniffed(&s.mock, Some(&cert)).await;
    let preface = wait_frame(&frames, |f| f.kind == SETTINGS && f.flags & 1 == 0).await;
    assert_eq!(preface.max_streams(), Some(64));
}

#[tokio::test]
async fn set_max_streams_reaches_open_connections() {
    let s = Setup::new().await;
    let mut c = s.client().await;
    assert_eq!(
        push(&token(1))
            .bearer(&s.jwt())
            .send(&mut c)
            .await
            .unwrap()
            .status,
        200
    );
    s.mock.set_max_streams(3);
    eventually(|| c.current_max_send_streams() == 3).await;
    s.mock.set_max_streams(7);
    eventually(|| c.current_max_send_streams() == 7).await;
    s.mock.set_max_streams(2);
    eventually(|| c.current_max_send_streams() == 2).await;
}

#[tokio::test]
async fn exceeding_the_stream_limit_draws_goaway_refused_stream_with_reason() {
    let s = Setup::new().await;
    let mut raw = Raw::connect(&s.mock, Some(b"h2".to_vec())).await;
    let settings = raw.until(SETTINGS).await.unwrap();
    assert_eq!(settings.max_streams(), Some(1));
    // Let the server see our ACK before we misbehave.
    raw.until(SETTINGS).await.unwrap(); // the server's ACK of our SETTINGS
    tokio::time::sleep(Duration::from_millis(50)).await;
    let path = format!("/3/device/{}", token(1));
    let fields = [
        (":method", "POST"),
        (":scheme", "https"),
        (":path", path.as_str()),
        ("host", "localhost"),
    ];
    raw.headers(1, &fields, false).await;
    raw.headers(3, &fields, false).await;
    let goaway = raw.until(GOAWAY).await.expect("GOAWAY");
    let (_, code, debug) = goaway.goaway();
    assert_eq!(code, 7, "REFUSED_STREAM");
    assert_eq!(debug, r#"{"reason":"TooManyRequests"}"#);
}

// ----- GOAWAY -----

#[tokio::test]
async fn goaway_on_command_carries_json_reason() {
    let s = Setup::new().await;
    let (mut c, frames) = connect_sniffed(&s.mock, None).await;
    assert_eq!(
        push(&token(1))
            .bearer(&s.jwt())
            .send(&mut c)
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(s.mock.goaway_all("Shutdown"), 1);
    let g = wait_frame(&frames, |f| f.kind == GOAWAY).await;
    let (_, code, debug) = g.goaway();
    assert_eq!(code, 0);
    assert_eq!(debug, r#"{"reason":"Shutdown"}"#);
    eventually(|| s.mock.open_connections() == 0).await;
}

#[tokio::test]
async fn goaway_after_n_requests() {
    let s = Setup::with(MockApns::builder().goaway_after(2)).await;
    let (mut c, frames) = connect_sniffed(&s.mock, None).await;
    let jwt = s.jwt();
    for _ in 0..2 {
        assert_eq!(
            push(&token(1))
                .bearer(&jwt)
                .send(&mut c)
                .await
                .unwrap()
                .status,
            200
        );
    }
    let g = wait_frame(&frames, |f| f.kind == GOAWAY).await;
    assert_eq!(g.goaway().2, r#"{"reason":"Shutdown"}"#);
    assert_eq!(s.mock.stats().goaways, 1);
}

#[tokio::test]
async fn scripted_goaway_instead_of_an_answer() {
    let s = Setup::new().await;
    let (mut c, frames) = connect_sniffed(&s.mock, None).await;
    s.mock.script(Fault::goaway("InternalServerError"));
    assert!(push(&token(1)).bearer(&s.jwt()).send(&mut c).await.is_err());
    let g = wait_frame(&frames, |f| f.kind == GOAWAY).await;
    assert_eq!(g.goaway().2, r#"{"reason":"InternalServerError"}"#);
}

// ----- faults -----

#[tokio::test]
async fn scripted_answers_come_in_order_then_normal_service() {
    let s = Setup::new().await;
    let mut c = s.client().await;
    let jwt = s.jwt();
    s.mock.script(Fault::reject(500, "InternalServerError"));
    s.mock.script(Fault::reject(429, "TooManyRequests"));
    s.mock.script(Fault::Reject {
        status: 410,
        reason: "ExpiredToken".into(),
        timestamp: Some(std::time::UNIX_EPOCH + Duration::from_millis(42)),
    });
    let a = push(&token(1)).bearer(&jwt).send(&mut c).await.unwrap();
    assert_eq!(
        (a.status, a.reason().as_deref()),
        (500, Some("InternalServerError"))
    );
    let a = push(&token(1)).bearer(&jwt).send(&mut c).await.unwrap();
    assert_eq!(
        (a.status, a.reason().as_deref()),
        (429, Some("TooManyRequests"))
    );
    let a = push(&token(1)).bearer(&jwt).send(&mut c).await.unwrap();
    assert_eq!(
        a.json(),
        serde_json::json!({"reason": "ExpiredToken", "timestamp": 42})
    );
    assert_eq!(
        push(&token(1))
            .bearer(&jwt)
            .send(&mut c)
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(s.mock.scripted(), 0);
}

#[tokio::test]
async fn answers_scripted_for_a_device_apply_to_that_device_only() {
    let s = Setup::with(MockApns::builder().accept_unknown_tokens(true)).await;
    let mut c = s.client().await;
    let jwt = s.jwt();
    assert_eq!(
        push(&token(1))
            .bearer(&jwt)
            .send(&mut c)
            .await
            .unwrap()
            .status,
        200
    );
    s.mock.script_for_device(
        &token(3).to_uppercase(),
        Fault::reject(503, "ServiceUnavailable"),
    );
    s.mock.script(Fault::reject(500, "InternalServerError"));
    // Concurrently: whatever the order, token 3 gets its own answer, token 1 the global one.
    let p1 = push(&token(1)).bearer(&jwt).start(&mut c).await.unwrap();
    let p3 = push(&token(3)).bearer(&jwt).start(&mut c).await.unwrap();
    let (a1, a3) = (read(p1).await.unwrap(), read(p3).await.unwrap());
    assert_eq!(
        (a3.status, a3.reason().as_deref()),
        (503, Some("ServiceUnavailable"))
    );
    assert_eq!(
        (a1.status, a1.reason().as_deref()),
        (500, Some("InternalServerError"))
    );
    assert_eq!(s.mock.scripted(), 0);
}

#[tokio::test]
async fn stalled_stream_is_freed_when_the_client_resets_it() {
    let s = Setup::new().await;
    let mut c = s.client().await;
    let jwt = s.jwt();
    s.mock.script(Fault::Stall);
    let resp = push(&token(1)).bearer(&jwt).start(&mut c).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(200), resp)
            .await
            .is_err(),
        "stalled"
    );
    // The timed-out future was dropped: h2 reset the stream. The single stream slot is free again.
    let a = tokio::time::timeout(
        Duration::from_secs(5),
        push(&token(1)).bearer(&jwt).send(&mut c),
    );
    assert_eq!(a.await.unwrap().unwrap().status, 200);
    assert_eq!(s.mock.stats().goaways, 0, "no stream-limit violation");
}

/// RFC 9113 §5.1: a stream the client reset is closed, at once. A client at a limit of one
/// stream whose request timed out (dropping it resets the stream) and that then sends the next
/// one is within the limit, however late the mock's request handler notices the reset: the
/// mock must not answer it with the stream-limit GOAWAY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_the_client_reset_no_longer_counts_against_the_limit() {
    let s = Setup::with(MockApns::builder().max_streams(1)).await;
    let mut c = s.client().await;
    let jwt = s.jwt();
    for round in 0..40 {
        s.mock.script_for_device(&token(2), Fault::Stall);
        let stalled = push(&token(2)).bearer(&jwt).start(&mut c).await.unwrap();
        // Give up on it as a client's request timeout does: dropping it resets the stream.
        let waited = tokio::time::timeout(Duration::from_millis(5), stalled).await;
        assert!(waited.is_err(), "round {round}: the stall was answered");
        let a = push(&token(1)).bearer(&jwt).send(&mut c).await;
        assert_eq!(a.map(|a| a.status).ok(), Some(200), "round {round}");
    }
    assert_eq!(s.mock.stats().goaways, 0);
}

#[tokio::test]
async fn connection_dropped_mid_request() {
    let s = Setup::new().await;
    let mut c = s.client().await;
    s.mock.script(Fault::DropConnection);
    let err = push(&token(1))
        .bearer(&s.jwt())
        .send(&mut c)
        .await
        .unwrap_err();
    assert!(!err.is_go_away(), "no GOAWAY: {err:?}");
    eventually(|| s.mock.open_connections() == 0).await;
    assert_eq!(s.mock.pushes()[0].status, 0, "recorded as unanswered");
}

#[tokio::test]
async fn refused_stream_is_reset_with_refused_stream() {
    let s = Setup::new().await;
    let mut c = s.client().await;
    s.mock.script(Fault::RefuseStream);
    let err = push(&token(1))
        .bearer(&s.jwt())
        .send(&mut c)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Some(h2::Reason::REFUSED_STREAM));
}

#[tokio::test]
async fn latency_delays_every_answer() {
    let s =
        Setup::with(MockApns::builder().latency(Latency::Fixed(Duration::from_millis(120)))).await;
    let mut c = s.client().await;
    let t0 = Instant::now();
    assert_eq!(
        push(&token(1))
            .bearer(&s.jwt())
            .send(&mut c)
            .await
            .unwrap()
            .status,
        200
    );
    assert!(t0.elapsed() >= Duration::from_millis(120));
}

#[tokio::test]
async fn error_rate_answers_500_or_503() {
    let s = Setup::with(MockApns::builder().error_rate(1.0)).await;
    let mut c = s.client().await;
    let jwt = s.jwt();
    for _ in 0..6 {
        let a = push(&token(1)).bearer(&jwt).send(&mut c).await.unwrap();
        match a.status {
            500 => assert_eq!(a.reason().as_deref(), Some("InternalServerError")),
            503 => assert_eq!(a.reason().as_deref(), Some("ServiceUnavailable")),
            other => panic!("status {other}"),
        }
    }
}

// ----- token timing, with the injected clock -----

/// The mock clock's now in UNIX seconds: the `iat` a token minted now carries, as the mock
/// reads it. (The wall clock read after the mock clock was made could be a second ahead of
/// it, which made "exactly one hour" one second short, about once in 70 runs on a loaded
/// machine.)
fn clock_secs(clock: &MockClock) -> i64 {
    use herald::mock::Clock as _;
    clock
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the mock clock starts after 1970")
        .as_secs() as i64
}

#[tokio::test]
async fn token_expires_after_an_hour_of_mock_time() {
    let clock = MockClock::starting_now();
    let s = Setup::with(MockApns::builder().clock(clock.clone())).await;
    let mut c = s.client().await;
    let t0 = clock_secs(&clock);
    let jwt = sign_jwt(&s.p8, KEY_ID, TEAM_ID, t0);
    assert_eq!(
        push(&token(1))
            .bearer(&jwt)
            .send(&mut c)
            .await
            .unwrap()
            .status,
        200
    );
    clock.advance(Duration::from_secs(3600));
    assert_eq!(
        push(&token(1))
            .bearer(&jwt)
            .send(&mut c)
            .await
            .unwrap()
            .status,
        200,
        "1 h exactly"
    );
    clock.advance(Duration::from_secs(1));
    let a = push(&token(1)).bearer(&jwt).send(&mut c).await.unwrap();
    assert_eq!(
        (a.status, a.reason().as_deref()),
        (403, Some("ExpiredProviderToken"))
    );
    let fresh = sign_jwt(&s.p8, KEY_ID, TEAM_ID, t0 + 3601);
    assert_eq!(
        push(&token(1))
            .bearer(&fresh)
            .send(&mut c)
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test]
async fn new_token_within_20_minutes_is_too_many_provider_token_updates() {
    let clock = MockClock::starting_now();
    let s = Setup::with(MockApns::builder().clock(clock.clone())).await;
    let mut c = s.client().await;
    let t0 = clock_secs(&clock);
    let first = sign_jwt(&s.p8, KEY_ID, TEAM_ID, t0);
    assert_eq!(
        push(&token(1))
            .bearer(&first)
            .send(&mut c)
            .await
            .unwrap()
            .status,
        200
    );
    clock.advance(Duration::from_secs(5 * 60));
    let early = sign_jwt(&s.p8, KEY_ID, TEAM_ID, t0 + 5 * 60);
    let a = push(&token(1)).bearer(&early).send(&mut c).await.unwrap();
    assert_eq!(
        (a.status, a.reason().as_deref()),
        (429, Some("TooManyProviderTokenUpdates"))
    );
    assert_eq!(
        push(&token(1))
            .bearer(&first)
            .send(&mut c)
            .await
            .unwrap()
            .status,
        200,
        "old one kept"
    );
    // The same early token is fine on a fresh connection.
    let mut other = s.client().await;
    assert_eq!(
        push(&token(1))
            .bearer(&early)
            .send(&mut other)
            .await
            .unwrap()
            .status,
        200
    );
    // 50 minutes later (the recommended refresh) is fine on the first connection.
    clock.advance(Duration::from_secs(45 * 60));
    let refreshed = sign_jwt(&s.p8, KEY_ID, TEAM_ID, t0 + 50 * 60);
    assert_eq!(
        push(&token(1))
            .bearer(&refreshed)
            .send(&mut c)
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        s.mock.stats().connections.values().next().unwrap().tokens,
        2
    );
}

#[tokio::test]
async fn token_of_another_team_on_the_same_connection_is_unrelated() {
    let s = Setup::new().await;
    let other = s.mock.generate_key("KEY2222222", "TEAM222222").unwrap();
    let mut c = s.client().await;
    assert_eq!(
        push(&token(1))
            .bearer(&s.jwt())
            .send(&mut c)
            .await
            .unwrap()
            .status,
        200
    );
    let jwt2 = sign_jwt(&other, "KEY2222222", "TEAM222222", now_secs() + 3000);
    let a = push(&token(1)).bearer(&jwt2).send(&mut c).await.unwrap();
    assert_eq!(
        (a.status, a.reason().as_deref()),
        (403, Some("UnrelatedKeyIdInToken"))
    );
}

// ----- certificate auth and TLS -----

#[tokio::test]
async fn certificate_auth_takes_the_topic_from_the_certificate() {
    let s = Setup::new().await;
    let cert = s.mock.issue_push_certificate(BUNDLE).unwrap();
    let mut c = connect(&s.mock, Some(&cert)).await;
    // No authorization header needed; the topic defaults to the certificate's bundle id.
    assert_eq!(push(&token(1)).send(&mut c).await.unwrap().status, 200);
    assert_eq!(
        push(&token(1))
            .without("apns-topic")
            .send(&mut c)
            .await
            .unwrap()
            .status,
        200
    );
    let a = push(&token(1))
        .header("apns-topic", "com.other.app")
        .send(&mut c)
        .await
        .unwrap();
    assert_eq!(
        (a.status, a.reason().as_deref()),
        (400, Some("TopicDisallowed"))
    );
    let rec = s.mock.pushes().remove(0);
    assert_eq!(
        rec.auth,
        AuthKind::Certificate {
            bundle_id: Some(BUNDLE.into())
        }
    );
}

#[tokio::test]
async fn certificate_from_another_ca_is_refused() {
    let s = Setup::new().await;
    let stranger = MockApns::start()
        .await
        .unwrap()
        .issue_push_certificate(BUNDLE)
        .unwrap();
    match try_connect(&s.mock, Some(&stranger)).await {
        Err(_) => {}
        Ok((mut c, _)) => assert!(push(&token(1)).send(&mut c).await.is_err()),
    }
    eventually(|| s.mock.stats().tls_failures == 1).await;
}

#[tokio::test]
async fn server_certificate_covers_loopback_and_apples_host_names() {
    let s = Setup::new().await;
    for name in [
        "localhost",
        "127.0.0.1",
        "::1",
        "api.push.apple.com",
        "api.sandbox.push.apple.com",
        "api.development.push.apple.com",
        "api-manage-broadcast.push.apple.com",
        "api-manage-broadcast.sandbox.push.apple.com",
    ] {
        assert!(
            tls_named(&s.mock, None, Some(b"h2".to_vec()), name)
                .await
                .is_ok(),
            "{name}"
        );
    }
    assert!(tls_named(&s.mock, None, None, "example.com").await.is_err());
}

#[tokio::test]
async fn tls_without_alpn_is_served_as_http2() {
    let s = Setup::new().await;
    let mut c = connect_with(&s.mock, None, None).await;
    assert_eq!(
        push(&token(1))
            .bearer(&s.jwt())
            .send(&mut c)
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test]
async fn no_authority_and_200_is_headers_only() {
    let s = Setup::new().await;
    let mut raw = Raw::connect(&s.mock, None).await;
    let path = format!("/3/device/{}", token(1));
    let jwt = format!("bearer {}", s.jwt());
    let fields = [
        (":method", "POST"),
        (":scheme", "https"),
        (":path", path.as_str()),
        ("host", "localhost"),
        ("authorization", jwt.as_str()),
        ("apns-topic", BUNDLE),
    ];
    raw.headers(1, &fields, false).await;
    raw.write_frame(DATA, 0x1, 1, br#"{"aps":{"alert":"x"}}"#)
        .await;
    let h = raw.until(HEADERS).await.unwrap();
    assert_eq!(h.stream, 1);
    assert_eq!(h.flags & 0x1, 0x1, "END_STREAM on HEADERS");
    assert_eq!(
        h.payload[0], 0x88,
        "`:status: 200` (HPACK static table index 8)"
    );
    // Nothing follows on stream 1: a PING round trip shows no DATA frame was queued before it.
    raw.write_frame(PING, 0, 0, &[7; 8]).await;
    loop {
        let f = raw.next().await.expect("PING ACK");
        assert!(!(f.kind == DATA && f.stream == 1), "DATA frame after a 200");
        if f.kind == PING && f.flags & 1 == 1 {
            break;
        }
    }
}

// ----- recording -----

#[tokio::test]
async fn records_requests_and_counts_accepted_ids() {
    let s = Setup::new().await;
    let mut c = s.client().await;
    let jwt = s.jwt();
    let id = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
    let a = push(&token(1))
        .bearer(&jwt)
        .header("apns-id", id)
        .send(&mut c)
        .await
        .unwrap();
    assert_eq!(a.status, 200);
    let rec = s.mock.next_push(Duration::from_secs(1)).await.unwrap();
    assert_eq!(rec.status, 200);
    assert_eq!(rec.apns_id, id);
    assert_eq!(rec.device_token.as_deref(), Some(token(1).as_str()));
    assert_eq!(rec.topic.as_deref(), Some(BUNDLE));
    assert_eq!(
        rec.payload,
        Some(serde_json::json!({"aps": {"alert": "hi"}}))
    );
    assert_eq!(rec.header("apns-push-type"), Some("alert"));
    assert_eq!(
        rec.auth,
        AuthKind::Token {
            key_id: Some(KEY_ID.into()),
            team_id: Some(TEAM_ID.into())
        }
    );
    assert_eq!(s.mock.accepted_count(id), 1);
    assert!(s.mock.duplicate_accepted().is_empty());
    // The same apns-id accepted again shows up as a duplicate.
    push(&token(1))
        .bearer(&jwt)
        .header("apns-id", id)
        .send(&mut c)
        .await
        .unwrap();
    assert_eq!(s.mock.duplicate_accepted(), vec![(id.to_owned(), 2)]);
    // A rejection is recorded and counted by reason.
    push(&token(5)).bearer(&jwt).send(&mut c).await.unwrap();
    let _ = s.mock.next_push(Duration::from_secs(1)).await.unwrap();
    let rec = s.mock.next_push(Duration::from_secs(1)).await.unwrap();
    assert_eq!(
        (rec.status, rec.reason.as_deref()),
        (400, Some("BadDeviceToken"))
    );
    let stats = s.mock.stats();
    assert_eq!(stats.by_reason.get("BadDeviceToken"), Some(&1));
    assert_eq!(stats.accepted, 2);
    assert_eq!(stats.connections[&rec.connection].requests, 3);
    assert!(s.mock.next_push(Duration::from_millis(20)).await.is_none());
}

#[tokio::test]
async fn next_push_waits_for_a_push() {
    let s = Setup::new().await;
    let jwt = s.jwt();
    let ca = s.mock.ca_pem().to_owned();
    let mock = &s.mock;
    let waiter = mock.next_push(Duration::from_secs(30));
    let sender = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut c = s.client().await;
        push(&token(1)).bearer(&jwt).send(&mut c).await.unwrap()
    };
    let (rec, answer) = tokio::join!(waiter, sender);
    assert_eq!(answer.status, 200);
    assert_eq!(rec.unwrap().status, 200);
    assert!(!ca.is_empty());
}

#[tokio::test]
async fn log_keeps_the_most_recent_requests_within_the_record_limit() {
    let s = Setup::with(MockApns::builder().record_limit(2)).await;
    let mut c = s.client().await;
    let jwt = s.jwt();
    for n in 1..=3u8 {
        let id = format!("00000000-0000-0000-0000-00000000000{n}");
        push(&token(1))
            .bearer(&jwt)
            .header("apns-id", &id)
            .send(&mut c)
            .await
            .unwrap();
    }
    let kept: Vec<String> = s.mock.requests().into_iter().map(|r| r.apns_id).collect();
    assert_eq!(
        kept,
        [
            "00000000-0000-0000-0000-000000000002",
            "00000000-0000-0000-0000-000000000003"
        ]
    );
    let stats = s.mock.stats();
    assert_eq!((stats.requests, stats.evicted), (3, 1));
    let first = s.mock.next_push(Duration::from_secs(1)).await.unwrap();
    assert_eq!(
        first.apns_id, "00000000-0000-0000-0000-000000000002",
        "evicted ones are skipped"
    );
}

#[tokio::test]
async fn push_certificate_as_p12_authenticates() {
    let s = Setup::new().await;
    let issued = s.mock.issue_push_certificate(BUNDLE).unwrap();
    let p12 = issued.to_p12("secret").unwrap();
    let store = p12_keystore::KeyStore::from_pkcs12(
        &p12,
        "secret",
        p12_keystore::Pkcs12ImportPolicy::default(),
    )
    .unwrap();
    let (_, chain) = store.private_key_chain().unwrap();
    assert_eq!(chain.certs().len(), 2, "leaf and CA");
    assert!(
        p12_keystore::KeyStore::from_pkcs12(&p12, "wrong", Default::default()).is_err(),
        "password protected"
    );
    // Authenticate with the certificate and key taken out of the archive.
    let (cert_der, key_der) = (
        chain.certs()[0].as_der().to_vec(),
        chain.key().as_der().to_vec(),
    );
    let mut c = connect_der(&s.mock, cert_der, key_der).await;
    assert_eq!(push(&token(1)).send(&mut c).await.unwrap().status, 200);
}

// ----- hostile input: the server answers or closes, never falls over -----

#[tokio::test]
async fn garbage_never_takes_the_server_down() {
    use tokio::io::AsyncWriteExt;
    let s = Setup::new().await;
    // Not TLS at all.
    let mut tcp = tokio::net::TcpStream::connect(s.mock.addr()).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    drop(tcp);
    // TLS, then no HTTP/2 preface.
    let mut raw = Raw::connect(&s.mock, None).await;
    raw.write_frame(0xff, 0xff, 0x7fff_ffff, &[0xff; 40]).await;
    raw.headers(1, &[(":method", "POST")], true).await; // no :path, :scheme
    raw.write_frame(HEADERS, 0x5, 3, &[0xff, 0xff, 0xff, 0xff])
        .await; // invalid HPACK
    while raw.next().await.is_some() {}
    // A header value that is not text, and an oversized body.
    let mut raw = Raw::connect(&s.mock, None).await;
    let path = format!("/3/device/{}", token(1));
    raw.headers(
        1,
        &[
            (":method", "POST"),
            (":scheme", "https"),
            (":path", path.as_str()),
        ],
        false,
    )
    .await;
    raw.write_frame(DATA, 0, 1, &[b'{'; 16_000]).await;
    raw.write_frame(RST_STREAM, 0, 1, &8u32.to_be_bytes()).await; // CANCEL mid-body
    let mut c = s.client().await;
    let jwt = s.jwt();
    let a = push(&token(1))
        .bearer(&jwt)
        .header("apns-topic", "com.ex\u{e9}mple")
        .send(&mut c)
        .await;
    let a = a.unwrap();
    assert_eq!((a.status, a.reason().as_deref()), (400, Some("BadTopic")));
    let big = vec![b' '; 70 * 1024];
    let a = push(&token(1))
        .bearer(&jwt)
        .body(big)
        .send(&mut c)
        .await
        .unwrap();
    assert_eq!(
        (a.status, a.reason().as_deref()),
        (413, Some("PayloadTooLarge"))
    );
    // Still serving.
    let mut c = s.client().await;
    assert_eq!(
        push(&token(1))
            .bearer(&jwt)
            .send(&mut c)
            .await
            .unwrap()
            .status,
        200
    );
}

// ----- idle connections -----

#[tokio::test]
async fn idle_connection_gets_goaway_idle_timeout() {
    let s = Setup::with(MockApns::builder().idle_timeout(Duration::from_millis(150))).await;
    let (mut c, frames) = connect_sniffed(&s.mock, None).await;
    assert_eq!(
        push(&token(1))
            .bearer(&s.jwt())
            .send(&mut c)
            .await
            .unwrap()
            .status,
        200
    );
    let g = wait_frame(&frames, |f| f.kind == GOAWAY).await;
    assert_eq!(g.goaway().2, r#"{"reason":"IdleTimeout"}"#);
}

#[tokio::test]
async fn pings_keep_a_connection_alive_and_are_counted() {
    // PINGs go out every ~50 ms; the idle timeout leaves a loaded machine ample slack.
    let s = Setup::with(MockApns::builder().idle_timeout(Duration::from_secs(2))).await;
    let mut raw = Raw::connect(&s.mock, Some(b"h2".to_vec())).await;
    for _ in 0..8 {
        raw.write_frame(PING, 0, 0, &[1; 8]).await;
        loop {
            let f = raw.next().await.expect("connection open");
            assert_ne!(f.kind, GOAWAY, "idle timeout despite PINGs");
            if f.kind == SETTINGS && f.flags & 1 == 0 {
                raw.write_frame(SETTINGS, 1, 0, &[]).await;
            }
            if f.kind == PING && f.flags & 1 == 1 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = s.mock.stats();
    assert_eq!(stats.connections.values().next().unwrap().pings, 8);
    assert_eq!(stats.goaways, 0);
}
