//! Broadcast channels (iOS 18) against the mock: create, read, list, delete, send, and reasons.
#![cfg(all(feature = "apns", feature = "mock"))]

use herald::apns::{
    ApnsClient, Broadcast, ChannelId, Expiration, LiveActivityEvent, MessageStoragePolicy, Payload,
    Reason,
};
use herald::mock::MockApns;

const BUNDLE: &str = "com.example.app";

async fn client() -> (MockApns, ApnsClient) {
    let mock = MockApns::start().await.unwrap();
    let p8 = mock.generate_key("ABC123DEFG", "TEAM123456").unwrap();
    let client = ApnsClient::builder()
        .endpoint(
            herald::apns::Endpoint::custom(&mock.url())
                .unwrap()
                .with_ca_pem(mock.ca_pem()),
        )
        .token_auth(herald::apns::TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456").unwrap())
        .build()
        .unwrap();
    (mock, client)
}

fn update() -> Payload {
    let mut p = Payload::default();
    p.aps.event = Some(LiveActivityEvent::Update);
    p.aps.timestamp = Some(1_750_000_000);
    p.aps.content_state = Some(serde_json::json!({"score": "2-1"}));
    p
}

#[tokio::test]
async fn channel_lifecycle_and_broadcast() {
    let (mock, client) = client().await;
    let id = client
        .create_channel(BUNDLE, MessageStoragePolicy::NoMessageStored)
        .await
        .unwrap();
    let config = client.read_channel(BUNDLE, &id).await.unwrap();
    assert_eq!(config.storage_policy, MessageStoragePolicy::NoMessageStored);
    assert_eq!(config.push_type, "LiveActivity");
    assert_eq!(
        client.list_channels(BUNDLE).await.unwrap(),
        vec![id.clone()]
    );

    let b = Broadcast::builder(BUNDLE, id.clone())
        .expiration(Expiration::Immediately)
        .payload(&update())
        .unwrap()
        .build()
        .unwrap();
    let outcome = client.broadcast(b.clone()).await;
    assert!(outcome.is_accepted(), "{outcome:?}");
    let rec = mock.pushes();
    assert_eq!(
        rec.last().unwrap().header("apns-channel-id"),
        Some(id.as_str())
    );
    assert_eq!(
        rec.last().unwrap().header("apns-push-type"),
        Some("liveactivity")
    );

    // No-storage channels need apns-expiration 0.
    let stored = Broadcast::builder(BUNDLE, id.clone())
        .payload(&update())
        .unwrap()
        .expiration(Expiration::At(
            std::time::SystemTime::now() + std::time::Duration::from_secs(60),
        ))
        .build()
        .unwrap();
    assert_eq!(
        client.broadcast(stored).await.reason(),
        Some(&Reason::BadExpirationDate)
    );

    client.delete_channel(BUNDLE, &id).await.unwrap();
    assert!(client.list_channels(BUNDLE).await.unwrap().is_empty());
    let err = client.read_channel(BUNDLE, &id).await.unwrap_err();
    assert!(err.is_rejected());
    assert_eq!(err.reason(), Some(&Reason::ChannelNotRegistered));
    assert_eq!(
        client.broadcast(b).await.reason(),
        Some(&Reason::ChannelNotRegistered)
    );
}

#[tokio::test]
async fn bad_channel_ids_get_their_reasons() {
    let (_mock, client) = client().await;
    let err = client
        .read_channel(BUNDLE, &ChannelId::new("not base64 !!"))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Some(&Reason::BadChannelId));
    let big = Payload::default().custom("x", "y".repeat(6000)).unwrap();
    let e = Broadcast::builder(BUNDLE, ChannelId::new("abc="))
        .payload(&big)
        .unwrap()
        .build()
        .unwrap_err();
    assert_eq!(e.payload_too_large().unwrap().limit, 5120);
}

/// A bundle id travels in the request's path: one with `?`, `#`, `%`, a space or an empty
/// label is refused before anything is sent, by every channel call and by a broadcast.
#[tokio::test]
async fn malformed_bundle_ids_are_refused_before_sending() {
    let (mock, client) = client().await;
    let channel = ChannelId::new("abc=");
    for bundle in [
        "com.example?x=1",
        "com.example#top",
        "com.ex%2Fample",
        "com example",
        "com..example",
        ".com",
        "",
    ] {
        let refused = |e: herald::apns::Error| assert!(e.is_invalid_push(), "{bundle:?}: {e:?}");
        refused(
            client
                .create_channel(bundle, MessageStoragePolicy::NoMessageStored)
                .await
                .unwrap_err(),
        );
        refused(client.read_channel(bundle, &channel).await.unwrap_err());
        refused(client.list_channels(bundle).await.unwrap_err());
        refused(client.delete_channel(bundle, &channel).await.unwrap_err());
        refused(
            Broadcast::builder(bundle, channel.clone())
                .build()
                .unwrap_err(),
        );
    }
    assert!(
        mock.pushes().is_empty(),
        "a malformed bundle id reached the server"
    );
    // A well-formed one with dashes, underscores and digits is fine.
    assert!(
        Broadcast::builder("com.example-1.app_2", channel)
            .build()
            .is_ok()
    );
}

/// A channel list is the answer's body, and APNs allows 10,000 channels per app (about 300 KB
/// of ids): a list past the 64 KiB a push's answer is read to comes back whole.
#[tokio::test]
async fn a_channel_list_larger_than_a_push_answer_is_read_whole() {
    let (_mock, client) = client().await;
    let made = futures::future::join_all(
        (0..2600).map(|_| client.create_channel(BUNDLE, MessageStoragePolicy::NoMessageStored)),
    )
    .await;
    let made: Vec<ChannelId> = made.into_iter().map(Result::unwrap).collect();
    let listed = client.list_channels(BUNDLE).await.unwrap();
    assert_eq!(listed.len(), made.len());
    let body: usize = listed.iter().map(|c| c.as_str().len() + 3).sum();
    assert!(body > 64 * 1024, "the list is only {body} bytes");
}
