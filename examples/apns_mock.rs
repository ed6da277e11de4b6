//! Send pushes with herald's APNs client to the mock APNs server, and read every outcome.
//!
//! ```text
//! cargo run --example apns_mock --features apns,mock
//! ```
//!
//! Swap the endpoint for `Endpoint::Production` and the key for your `.p8` to talk to Apple.

#[cfg(all(feature = "apns", feature = "mock"))]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    use herald::apns::{ApnsClient, Endpoint, Payload, Push, PushOutcome, TokenKey};
    use herald::mock::MockApns;

    // A mock APNs on loopback, with a signing key and two known devices.
    let mock = MockApns::start().await?;
    let p8 = mock.generate_key("ABC123DEFG", "TEAM123456")?;
    let alice = "a1".repeat(32);
    let bob = "b0".repeat(32);
    mock.register_device(&alice, "com.example.app");
    mock.mark_unregistered(&bob, std::time::SystemTime::now());

    let client = ApnsClient::builder()
        .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
        .token_auth(TokenKey::from_p8_pem(p8, "ABC123DEFG", "TEAM123456")?)
        .connections(2)
        .build()?;

    let pushes = [&alice, &bob].map(|token| {
        Push::builder(token.as_str(), "com.example.app")
            .payload(&Payload::alert("Your order shipped").badge(1))
            .and_then(|b| b.build())
    });
    let pushes: Vec<Push> = pushes.into_iter().collect::<Result<_, _>>()?;

    let mut outcomes = client.send_all(pushes, 64);
    while let Some((push, outcome)) = outcomes.next().await {
        match outcome {
            PushOutcome::Accepted(a) => {
                println!("{}: accepted ({})", push.device_token(), a.apns_id)
            }
            PushOutcome::Rejected(r) => println!(
                "{}: {} {} — {}",
                push.device_token(),
                r.status,
                r.reason,
                r.reason.explain()
            ),
            PushOutcome::Failed(f) => println!("{}: failed: {}", push.device_token(), f.error),
            other => println!("{}: {other:?}", push.device_token()),
        }
    }
    client.shutdown().await;
    Ok(())
}

#[cfg(not(all(feature = "apns", feature = "mock")))]
fn main() {
    eprintln!("run with: cargo run --example apns_mock --features apns,mock");
}
