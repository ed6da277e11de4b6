//! The mock answers like Apple: each request rule, with Apple's status and reason string, over a
//! real TLS + HTTP/2 socket.

mod mock_support;

use http::Method;
use mock_support::*;

macro_rules! assert_rejects {
    ($answer:expr, $status:expr, $reason:expr) => {{
        let a = $answer;
        assert_eq!(a.status, $status, "status; body {:?}", String::from_utf8_lossy(&a.body));
        assert_eq!(a.reason().as_deref(), Some($reason));
        assert_eq!(a.json(), serde_json::json!({ "reason": $reason }), "exact body");
    }};
}

#[tokio::test]
async fn accepted_push_is_headers_with_end_stream_and_no_data() {
    let s = Setup::new().await;
    let mut c = s.client().await;
    let id = "123e4567-e89b-12d3-a456-42661417400a";
    let a = push(&token(1))
        .bearer(&s.jwt())
        .header("apns-id", id)
        .send(&mut c)
        .await
        .unwrap();
    assert_eq!(a.status, 200);
    assert!(a.end_on_headers);
    assert_eq!(a.data_frames, 0);
    assert_eq!(a.header("apns-id"), Some(id));
    assert!(a.header("apns-unique-id").is_some_and(|u| u.len() == 36));
}

#[tokio::test]
async fn generated_apns_id_when_absent() {
    let s = Setup::new().await;
    let mut c = s.client().await;
    let a = push(&token(1)).bearer(&s.jwt()).send(&mut c).await.unwrap();
    assert_eq!(a.status, 200);
    assert!(a.header("apns-id").is_some_and(|u| u.len() == 36));
}

#[tokio::test]
async fn method_and_path() {
    let s = Setup::new().await;
    let mut c = s.client().await;
    let jwt = s.jwt();
    // First an accepted push, so the stream limit is raised.
    assert_eq!(
        push(&token(1))
            .bearer(&jwt)
            .send(&mut c)
            .await
            .unwrap()
            .status,
        200
    );
    let a = push(&token(1))
        .bearer(&jwt)
        .method(Method::GET)
        .body(vec![])
        .send(&mut c)
        .await;
    assert_rejects!(a.unwrap(), 405, "MethodNotAllowed");
    let a = Req::new(Method::POST, "/3/devices/abcd")
        .bearer(&jwt)
        .send(&mut c)
        .await;
    assert_rejects!(a.unwrap(), 404, "BadPath");
    let a = Req::new(Method::POST, "/").bearer(&jwt).send(&mut c).await;
    assert_rejects!(a.unwrap(), 404, "BadPath");
    let a = push("").bearer(&jwt).send(&mut c).await;
    assert_rejects!(a.unwrap(), 400, "MissingDeviceToken");
}

#[tokio::test]
async fn device_tokens_are_hex_of_any_even_length() {
    let s = Setup::with(herald::mock::MockApns::builder().accept_unknown_tokens(true)).await;
    let mut c = s.client().await;
    let jwt = s.jwt();
    for len in [64, 108, 160, 200] {
        let a = push(&"a".repeat(len))
            .bearer(&jwt)
            .send(&mut c)
            .await
            .unwrap();
        assert_eq!(a.status, 200, "length {len}");
    }
    for bad in ["abc", "zz", "0g"] {
        assert_rejects!(
            push(bad).bearer(&jwt).send(&mut c).await.unwrap(),
            400,
            "BadDeviceToken"
        );
    }
}

#[tokio::test]
async fn device_state() {
    let s = Setup::new().await;
    let mut c = s.client().await;
    let jwt = s.jwt();
    // Unknown token.
    assert_rejects!(
        push(&token(9)).bearer(&jwt).send(&mut c).await.unwrap(),
        400,
        "BadDeviceToken"
    );
    // Registered for another app.
    s.mock.register_device(&token(2), "com.other.app");
    let a = push(&token(2)).bearer(&jwt).send(&mut c).await.unwrap();
    assert_rejects!(a, 400, "DeviceTokenNotForTopic");
    // Unregistered: 410 with the timestamp in ms.
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
    s.mock.mark_unregistered(&token(1), at);
    let a = push(&token(1)).bearer(&jwt).send(&mut c).await.unwrap();
    assert_eq!(a.status, 410);
    assert_eq!(
        a.json(),
        serde_json::json!({"reason": "Unregistered", "timestamp": 1_700_000_000_123u64})
    );
    assert_eq!(
        String::from_utf8(a.body).unwrap(),
        r#"{"reason":"Unregistered","timestamp":1700000000123}"#
    );
    // Re-registering clears it.
    s.mock.register_device(&token(1), BUNDLE);
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

#[tokio::test]
async fn header_rules() {
    let s = Setup::new().await;
    let mut c = s.client().await;
    let jwt = s.jwt();
    let t = token(1);
    let bad_topic = |topic: &str| (push(&t).header("apns-topic", topic), 400, "BadTopic");
    let cases: Vec<(Req, u16, &str)> = vec![
        (
            push(&t).header("apns-id", "not-a-uuid"),
            400,
            "BadMessageId",
        ),
        (
            push(&t).header("apns-id", "123e4567e89b12d3a45642661417400a"),
            400,
            "BadMessageId",
        ),
        (push(&t).without("apns-topic"), 400, "MissingTopic"),
        bad_topic("com..bad"),
        bad_topic("com.example/app"),
        bad_topic(".com.example"),
        (
            push(&t).header("apns-push-type", "telepathy"),
            400,
            "InvalidPushType",
        ),
        (push(&t).header("apns-priority", "7"), 400, "BadPriority"),
        (
            push(&t)
                .header("apns-push-type", "background")
                .header("apns-priority", "10"),
            400,
            "BadPriority",
        ),
        (
            push(&t).header("apns-push-type", "background"),
            400,
            "BadPriority",
        ),
        (
            push(&t).header("apns-collapse-id", &"c".repeat(65)),
            400,
            "BadCollapseId",
        ),
        (
            push(&t).header("apns-expiration", "tomorrow"),
            400,
            "BadExpirationDate",
        ),
        (
            push(&t).header("apns-expiration", "-1"),
            400,
            "BadExpirationDate",
        ),
        (
            push(&t).add_header("apns-topic", BUNDLE),
            400,
            "DuplicateHeaders",
        ),
        (push(&t).body(vec![]), 400, "PayloadEmpty"),
        (push(&t).body("{not json"), 400, "BadRequestPayload"),
        (
            push(&t).body(format!(r#"{{"aps":{{}},"x":"{}"}}"#, "a".repeat(4096))),
            413,
            "PayloadTooLarge",
        ),
    ];
    for (req, status, reason) in cases {
        assert_rejects!(req.bearer(&jwt).send(&mut c).await.unwrap(), status, reason);
    }
    // Boundaries that pass.
    let ok: Vec<Req> = vec![
        push(&t).header("apns-collapse-id", &"c".repeat(64)),
        push(&t).header("apns-expiration", "0"),
        push(&t).header("apns-priority", "5"),
        push(&t).header("apns-priority", "1"),
        push(&t)
            .header("apns-push-type", "background")
            .header("apns-priority", "5"),
        push(&t).header("apns-id", "123E4567-E89B-12D3-A456-42661417400A"),
        // exactly 4096 bytes
        push(&t).body(format!(r#"{{"aps":{{}},"x":"{}"}}"#, "a".repeat(4096 - 18))),
    ];
    for req in ok {
        let a = req.bearer(&jwt).send(&mut c).await.unwrap();
        assert_eq!(a.status, 200, "{:?}", String::from_utf8_lossy(&a.body));
    }
}

/// Rule 3: "400 DuplicateHeaders when an `apns-*` header or `authorization` appears twice",
/// any `apns-*` header, whether Apple defines it or not; other headers may repeat.
#[tokio::test]
async fn any_apns_header_or_authorization_twice_is_duplicate_headers() {
    let s = Setup::new().await;
    let mut c = s.client().await;
    let jwt = s.jwt();
    let t = token(1);
    for name in ["apns-topic", "apns-unique-id", "apns-foo", "authorization"] {
        let req = push(&t)
            .bearer(&jwt)
            .add_header(name, "a")
            .add_header(name, "b");
        assert_rejects!(req.send(&mut c).await.unwrap(), 400, "DuplicateHeaders");
    }
    let twice_topic = push(&t).bearer(&jwt).add_header("apns-topic", BUNDLE);
    assert_rejects!(
        twice_topic.send(&mut c).await.unwrap(),
        400,
        "DuplicateHeaders"
    );
    let other = push(&t)
        .bearer(&jwt)
        .add_header("x-request-tag", "a")
        .add_header("x-request-tag", "b");
    assert_eq!(other.send(&mut c).await.unwrap().status, 200);
}

#[tokio::test]
async fn topic_must_carry_the_push_types_suffix() {
    let s = Setup::new().await;
    let mut c = s.client().await;
    let jwt = s.jwt();
    let t = token(1);
    let voip = |topic: &str| {
        push(&t)
            .header("apns-push-type", "voip")
            .header("apns-topic", topic)
    };
    assert_rejects!(
        voip(BUNDLE).bearer(&jwt).send(&mut c).await.unwrap(),
        400,
        "BadTopic"
    );
    let a = push(&t)
        .header("apns-topic", "com.example.app.voip")
        .bearer(&jwt)
        .send(&mut c)
        .await;
    assert_rejects!(a.unwrap(), 400, "BadTopic");
    assert_eq!(
        voip("com.example.app.voip")
            .bearer(&jwt)
            .send(&mut c)
            .await
            .unwrap()
            .status,
        200
    );
    // VoIP payloads may reach 5120 bytes.
    let big = format!(r#"{{"aps":{{}},"x":"{}"}}"#, "a".repeat(5000));
    let a = voip("com.example.app.voip")
        .body(big.clone())
        .bearer(&jwt)
        .send(&mut c)
        .await
        .unwrap();
    assert_eq!(a.status, 200);
    let a = push(&t).body(big).bearer(&jwt).send(&mut c).await.unwrap();
    assert_rejects!(a, 413, "PayloadTooLarge");
    let bigger = format!(r#"{{"aps":{{}},"x":"{}"}}"#, "a".repeat(5120));
    let a = voip("com.example.app.voip")
        .body(bigger)
        .bearer(&jwt)
        .send(&mut c)
        .await
        .unwrap();
    assert_rejects!(a, 413, "PayloadTooLarge");
    // Live Activities: suffix, priority 5 or 10.
    let la = |p: &str| {
        push(&t)
            .header("apns-push-type", "liveactivity")
            .header("apns-topic", "com.example.app.push-type.liveactivity")
            .header("apns-priority", p)
    };
    assert_eq!(la("5").bearer(&jwt).send(&mut c).await.unwrap().status, 200);
    assert_rejects!(
        la("1").bearer(&jwt).send(&mut c).await.unwrap(),
        400,
        "BadPriority"
    );
    // The push type is inferred from the suffix when the header is absent.
    let a = push(&t)
        .without("apns-push-type")
        .header("apns-topic", "com.example.app.voip");
    assert_eq!(a.bearer(&jwt).send(&mut c).await.unwrap().status, 200);
}

#[tokio::test]
async fn topic_disallowed_for_a_topic_specific_key() {
    let s = Setup::new().await;
    assert!(s.mock.restrict_key(KEY_ID, &["com.other.app"]));
    let mut c = s.client().await;
    let a = push(&token(1)).bearer(&s.jwt()).send(&mut c).await.unwrap();
    assert_rejects!(a, 400, "TopicDisallowed");
}

#[tokio::test]
async fn token_auth_rejections() {
    let s = Setup::new().await;
    let t = token(1);
    let now = now_secs();
    // Each on a fresh connection, so no token is adopted before.
    let other = herald::mock::MockApns::start()
        .await
        .unwrap()
        .generate_key(KEY_ID, TEAM_ID)
        .unwrap();
    // Tamper with the signature (a character in the middle: the last one carries padding bits).
    let mut jwt = s.jwt().into_bytes();
    let i = jwt.len() - 10;
    jwt[i] = if jwt[i] == b'A' { b'B' } else { b'A' };
    let jwt = String::from_utf8(jwt).unwrap();
    let cases: Vec<(Req, u16, &str)> = vec![
        (push(&t), 403, "MissingProviderToken"),
        (
            push(&t).header("authorization", "bearer"),
            403,
            "InvalidProviderToken",
        ),
        (push(&t).bearer("not.a.jwt"), 403, "InvalidProviderToken"),
        (
            push(&t).header("authorization", "basic abc"),
            403,
            "InvalidProviderToken",
        ),
        (
            push(&t).bearer(&sign_jwt(&s.p8, "UNKNOWNKEY", TEAM_ID, now)),
            403,
            "InvalidProviderToken",
        ),
        (
            push(&t).bearer(&sign_jwt(&other, KEY_ID, TEAM_ID, now)),
            403,
            "InvalidProviderToken",
        ),
        (
            push(&t).bearer(&sign_jwt(&s.p8, KEY_ID, "OTHERTEAM1", now)),
            403,
            "InvalidProviderToken",
        ),
        (push(&t).bearer(&jwt), 403, "InvalidProviderToken"),
        (
            push(&t).bearer(&sign_jwt(&s.p8, KEY_ID, TEAM_ID, now - 3601)),
            403,
            "ExpiredProviderToken",
        ),
    ];
    for (req, status, reason) in cases {
        let mut c = s.client().await;
        assert_rejects!(req.send(&mut c).await.unwrap(), status, reason);
    }
    // DER signatures are accepted too.
    let mut c = s.client().await;
    let der = sign_jwt_with(&s.p8, KEY_ID, TEAM_ID, now, true);
    assert_eq!(
        push(&t).bearer(&der).send(&mut c).await.unwrap().status,
        200
    );
}

#[tokio::test]
async fn channels_and_broadcasts() {
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
    let channels = format!("/1/apps/{BUNDLE}/channels");
    let create = |policy: u8| {
        Req::new(Method::POST, &channels).bearer(&jwt).body(format!(
            r#"{{"message-storage-policy":{policy},"push-type":"LiveActivity"}}"#
        ))
    };
    let a = create(0).send(&mut c).await.unwrap();
    assert_eq!(a.status, 201);
    let id = a.header("apns-channel-id").unwrap().to_owned();
    let a = Req::new(Method::GET, &channels)
        .bearer(&jwt)
        .header("apns-channel-id", &id)
        .send(&mut c);
    let a = a.await.unwrap();
    assert_eq!(a.status, 200);
    assert_eq!(
        a.json(),
        serde_json::json!({"message-storage-policy": 0, "push-type": "LiveActivity"})
    );
    let a = Req::new(Method::GET, &format!("/1/apps/{BUNDLE}/all-channels"))
        .bearer(&jwt)
        .send(&mut c);
    assert_eq!(
        a.await.unwrap().json(),
        serde_json::json!({"channels": [id.clone()]})
    );
    let bad = Req::new(Method::POST, &channels)
        .bearer(&jwt)
        .body(r#"{"push-type":"Alert"}"#);
    assert_rejects!(bad.send(&mut c).await.unwrap(), 400, "BadRequestParams");
    let a = Req::new(Method::GET, &channels)
        .bearer(&jwt)
        .send(&mut c)
        .await
        .unwrap();
    assert_rejects!(a, 400, "MissingChannelId");
    let a = Req::new(Method::GET, &channels)
        .bearer(&jwt)
        .header("apns-channel-id", "!!")
        .send(&mut c);
    assert_rejects!(a.await.unwrap(), 400, "BadChannelId");

    // Broadcast.
    let bc = |id: &str| {
        Req::new(Method::POST, &format!("/4/broadcasts/apps/{BUNDLE}"))
            .bearer(&jwt)
            .header("apns-channel-id", id)
            .header("apns-push-type", "liveactivity")
            .header("apns-expiration", "0")
            .body(r#"{"aps":{"event":"update","timestamp":1,"content-state":{}}}"#)
    };
    assert_eq!(bc(&id).send(&mut c).await.unwrap().status, 200);
    let a = bc(&id)
        .header("apns-expiration", "1999999999")
        .send(&mut c)
        .await
        .unwrap();
    assert_rejects!(a, 400, "BadExpirationDate");
    let a = bc(&id)
        .without("apns-push-type")
        .send(&mut c)
        .await
        .unwrap();
    assert_rejects!(a, 400, "MissingPushType");
    let a = bc(&id)
        .without("apns-channel-id")
        .send(&mut c)
        .await
        .unwrap();
    assert_rejects!(a, 400, "MissingChannelId");
    let a = bc(&id)
        .body(format!(r#"{{"aps":{{}},"x":"{}"}}"#, "a".repeat(5120)))
        .send(&mut c);
    assert_rejects!(a.await.unwrap(), 413, "PayloadTooLarge");

    // Delete, then it is gone.
    let a = Req::new(Method::DELETE, &channels)
        .bearer(&jwt)
        .header("apns-channel-id", &id)
        .send(&mut c);
    assert_eq!(a.await.unwrap().status, 204);
    assert_rejects!(
        bc(&id).send(&mut c).await.unwrap(),
        400,
        "ChannelNotRegistered"
    );
}

#[test]
fn public_handles_and_futures_are_send_and_sync() {
    use herald::mock::*;
    fn send_sync<T: Send + Sync + 'static>() {}
    fn send<T: Send>(_: &T) {}
    send_sync::<MockApns>();
    send_sync::<MockApnsBuilder>();
    send_sync::<MockClock>();
    send_sync::<MockError>();
    send_sync::<Fault>();
    send_sync::<Latency>();
    send_sync::<PushCertificate>();
    send_sync::<RecordedRequest>();
    send_sync::<Stats>();
    let mock: Option<MockApns> = None;
    if let Some(m) = &mock {
        send(&m.next_push(std::time::Duration::ZERO));
        send(&MockApns::start());
        send(&MockApns::builder().start());
    }
}
