//! Outcomes hand the push back, over a real socket to the mock: a rejected or failed push
//! comes back whole (same apns-id, token, payload), so a caller can correct or requeue it;
//! `herald::http` is the `http` the API speaks.
#![cfg(feature = "mock")]
#![cfg(feature = "apns")]

use herald::apns::{
    ApnsClient, Endpoint, Error, ErrorKind, Failed, Payload, Push, PushOutcome, Reason, Rejected,
    TokenKey,
};
use herald::mock::MockApns;

const BUNDLE: &str = "com.example.app";

async fn client(mock: &MockApns) -> ApnsClient {
    let p8 = mock.generate_key("ABC123DEFG", "TEAM123456").unwrap();
    ApnsClient::builder()
        .endpoint(
            Endpoint::custom(&mock.url())
                .unwrap()
                .with_ca_pem(mock.ca_pem()),
        )
        .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456").unwrap())
        .build()
        .unwrap()
}

fn push(token: &str) -> Push {
    Push::builder(token, BUNDLE)
        .payload(&Payload::alert("hello"))
        .unwrap()
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_rejected_push_comes_back_whole() {
    let mock = MockApns::start().await.unwrap();
    let client = client(&mock).await;
    let p = push(&"ab".repeat(32));
    let id = p.apns_id().to_owned();
    let PushOutcome::Rejected(r) = client.send(p).await else {
        panic!("an unknown token is rejected")
    };
    assert_eq!(r.reason, Reason::BadDeviceToken);
    assert_eq!(r.status_code(), Some(herald::http::StatusCode::BAD_REQUEST));
    assert_eq!(r.push.apns_id(), id);
    assert_eq!(r.push.device_token(), "ab".repeat(32));
    // Corrected (the device registered meanwhile) and sent again, as is.
    mock.register_device(&"ab".repeat(32), BUNDLE);
    let again = client.send(r.push).await;
    assert!(again.is_accepted(), "{again:?}");
    assert_eq!(mock.accepted_count(&id), 1);
    client.shutdown().await;
}

#[tokio::test]
async fn a_failed_push_comes_back_to_be_requeued() {
    let mock = MockApns::start().await.unwrap();
    let client = client(&mock).await;
    client.shutdown().await;
    let p = push(&"cd".repeat(32));
    let id = p.apns_id().to_owned();
    let outcome = client.send(p).await;
    assert!(outcome.error().is_some_and(|e| e.is_shutdown()));
    let back = outcome
        .into_push()
        .expect("a failed outcome hands the push back");
    assert_eq!(back.apns_id(), id);
    // Requeued on a live client, it is delivered once.
    mock.register_device(&"cd".repeat(32), BUNDLE);
    let live = self::client(&mock).await;
    assert!(live.send(back).await.is_accepted());
    assert_eq!(mock.accepted_count(&id), 1);
}

#[tokio::test]
async fn an_accepted_outcome_has_no_push_to_hand_back() {
    let mock = MockApns::start().await.unwrap();
    mock.register_device(&"ef".repeat(32), BUNDLE);
    let client = client(&mock).await;
    let outcome = client.send(push(&"ef".repeat(32))).await;
    assert!(outcome.is_accepted());
    assert!(outcome.push().is_none());
}

/// Outcomes are what callers log. Module docs of `herald::apns`: "No error, `Debug` or log line
/// contains ... a whole device token (only its first 8 characters)": not the push's `Debug`,
/// nor the `Debug` of an outcome that hands it back.
#[test]
fn debug_of_a_push_and_its_outcomes_shows_only_the_tokens_first_8_characters() {
    let token = format!("a1b2c3d4{}", "e5".repeat(28));
    let p = push(&token);
    let rejected = PushOutcome::Rejected(Rejected::new(p.clone(), 400, Reason::BadDeviceToken));
    let failed = PushOutcome::Failed(Failed::new(
        Error::new(ErrorKind::ConnectionLost, "lost"),
        p.clone(),
    ));
    for debug in [
        format!("{p:?}"),
        format!("{rejected:?}"),
        format!("{failed:?}"),
        format!("{:#?}", rejected),
    ] {
        assert!(!debug.contains(&token), "the whole token in {debug}");
        assert!(debug.contains("a1b2c3d4…"), "no token prefix in {debug}");
    }
}

/// The same for a builder, whose token is not validated yet (any case, any characters).
#[test]
fn debug_of_a_push_builder_shows_only_the_tokens_first_8_characters() {
    let hex = format!("A1B2C3D4{}", "E5".repeat(28));
    let wide = "ａｂｃｄｅｆｇｈｉｊｋｌ"; // not hex, and 3 bytes a character
    for token in [hex.as_str(), wide] {
        let debug = format!("{:?}", Push::builder(token, BUNDLE));
        assert!(!debug.contains(token), "the whole token in {debug}");
        let prefix: String = token.chars().take(8).collect();
        assert!(
            debug.contains(&format!("{prefix}…")),
            "no token prefix in {debug}"
        );
        assert!(debug.contains(BUNDLE), "{debug}");
    }
}
