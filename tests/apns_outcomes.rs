//! Outcomes hand the push back, over a real socket to the mock: a rejected or failed push
//! comes back whole (same apns-id, token, payload), so a caller can correct or requeue it;
//! `herald::http` is the `http` the API speaks.
#![cfg(feature = "mock")]
#![cfg(feature = "apns")]

use herald::apns::{ApnsClient, Endpoint, Payload, Push, PushOutcome, Reason, TokenKey};
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
