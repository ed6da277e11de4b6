//! herald's whole loop in one run: one `post` reaches local observers and Apple devices, and
//! APNs' answers come back as notifications that keep the device registry clean.
//!
//! ```text
//! cargo run --example push_demo --features endpoint,mock
//! ```
//!
//! Offline (the default), it starts herald's mock APNs server, a persistent device registry
//! (in a temporary directory) and the registration endpoint on loopback; registers devices over
//! HTTP as an app would (one replacing its old token); posts domain notifications that local
//! observers print and that become pushes; has one device uninstall the app (the mock answers
//! 410); shows the registry dropping that token; shows a token APNs does not know
//! (`BadDeviceToken`) put in quarantine rather than deleted; and ends with a summary.
//!
//! With Apple credentials in the environment it sends one real push through Apple's sandbox
//! instead of the mock:
//!
//! | variable | value |
//! |---|---|
//! | `HERALD_APNS_KEY_FILE` | path to the `AuthKey_XXXXXXXXXX.p8` file |
//! | `HERALD_APNS_KEY_ID` | the key's 10-character id |
//! | `HERALD_APNS_TEAM_ID` | your 10-character team id |
//! | `HERALD_APNS_TOPIC` | the app's bundle id |
//! | `HERALD_APNS_DEVICE` | a development (sandbox) device token of that app |

use std::error::Error;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use herald::apns::{ApnsClient, Endpoint, Payload, TokenKey};
use herald::bridge::endpoint::RegistrationEndpoint;
use herald::bridge::{
    ApnsSink, DeviceRegistry, Environment, Message, PushAccepted, PushConfigSuspect, PushFailed,
    PushRejected, PushSkipped, TokenInvalidated, TokenQuarantined,
};
use herald::mock::MockApns;
use herald::{Notification, NotificationCenter, Overflow};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The domain notification: plain Rust data, no push concepts.
#[derive(Debug, Clone)]
struct OrderShipped {
    user: String,
    order: u64,
}

impl Notification for OrderShipped {
    fn name() -> &'static str {
        "shop.order.shipped"
    }
}

const KEY_ID: &str = "DEMOKEY123";
const TEAM_ID: &str = "DEMOTEAM12";
const DEMO_TOPIC: &str = "com.example.shop";

/// Where pushes go: the mock (offline) or Apple's sandbox.
struct Target {
    client: ApnsClient,
    topic: String,
    mock: Option<MockApns>,
    apple_device: Option<String>,
}

async fn target() -> Result<Target, Box<dyn Error>> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let (Some(file), Some(kid), Some(team), Some(topic), Some(device)) = (
        var("HERALD_APNS_KEY_FILE"),
        var("HERALD_APNS_KEY_ID"),
        var("HERALD_APNS_TEAM_ID"),
        var("HERALD_APNS_TOPIC"),
        var("HERALD_APNS_DEVICE"),
    ) {
        println!("mode: Apple's sandbox (api.sandbox.push.apple.com), topic {topic}");
        let client = ApnsClient::builder()
            .endpoint(Endpoint::Sandbox)
            .token_auth(TokenKey::from_p8_file(file, &kid, &team)?)
            .build()?;
        return Ok(Target {
            client,
            topic,
            mock: None,
            apple_device: Some(device),
        });
    }
    let mock = MockApns::start().await?;
    println!(
        "mode: offline, mock APNs at {} (set HERALD_APNS_* to use Apple's sandbox)",
        mock.url()
    );
    let p8 = mock.generate_key(KEY_ID, TEAM_ID)?;
    let client = ApnsClient::builder()
        .endpoint(Endpoint::custom(&mock.url())?.with_ca_pem(mock.ca_pem()))
        .token_auth(TokenKey::from_p8_pem(p8, KEY_ID, TEAM_ID)?)
        .build()?;
    Ok(Target {
        client,
        topic: DEMO_TOPIC.to_owned(),
        mock: Some(mock),
        apple_device: None,
    })
}

/// The host app's session check: `Authorization: Bearer session-<user>`.
fn verify(request: &http::request::Parts) -> Option<String> {
    let auth = request.headers.get("authorization")?.to_str().ok()?;
    let user = auth.strip_prefix("Bearer session-")?;
    (!user.is_empty()).then(|| user.to_owned())
}

/// What the app does: POST oldToken / newToken, form-encoded, with its session.
async fn app_registers(
    addr: SocketAddr,
    user: &str,
    request_body: &str,
) -> Result<(u16, String), Box<dyn Error>> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let request = format!(
        "POST /devices HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer session-{user}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{request_body}",
        request_body.len()
    );
    s.write_all(request.as_bytes()).await?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).await?;
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = raw.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    let shown = body.replace('\n', "");
    println!(
        "  app {user:<7} POST {:<44} → {status} {shown}",
        abbreviate(request_body)
    );
    Ok((status, body))
}

/// `newToken=a1a1a1a1…` instead of 64 hex digits.
fn abbreviate(form: &str) -> String {
    form.split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => format!("{k}={}", tok(v)),
            None => kv.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn tok(t: &str) -> String {
    format!("{}…", &t[..8.min(t.len())])
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let started = Instant::now();
    let target = target().await?;
    let topic = target.topic.clone();

    // 1. The hub, the persistent registry, the sink, the endpoint.
    let center = NotificationCenter::new();
    let dir = tempfile_dir()?;
    let registry = DeviceRegistry::open(dir.join("devices.redb"))?;
    // The registry applies what APNs' answers mean: 410 deletes, BadDeviceToken quarantines.
    let _lifecycle = registry.observe(&center);
    let sink = ApnsSink::builder(target.client.clone())
        .registry(registry.clone())
        .topic(topic.clone())
        .environment(Environment::Sandbox)
        .build();

    let _audit = center.observe(|n: &OrderShipped| {
        println!(
            "  [local observer] order {} shipped for {}",
            n.order, n.user
        )
    });
    let forwarding = center
        .observer::<OrderShipped>()
        .policy(Overflow::DropNewest { capacity: 1024 })
        .forward(sink.map(|n: &OrderShipped| {
            Message::to_subject(
                &n.user,
                Payload::alert(format!("Your order {} has shipped", n.order)).badge(1),
            )
            .collapse_id(format!("order-{}", n.order))
        }));
    let _accepted = center.observe(|n: &PushAccepted| {
        println!(
            "  [outcome] accepted  {} ({})",
            tok(&n.token),
            n.subject.as_deref().unwrap_or("-")
        )
    });
    let _rejected = center.observe(|n: &PushRejected| {
        println!(
            "  [outcome] rejected  {} {} {} — {}",
            tok(&n.token),
            n.status,
            n.reason,
            n.reason.explain()
        )
    });
    let _failed = center
        .observe(|n: &PushFailed| println!("  [outcome] failed    {}: {}", tok(&n.token), n.error));
    let _invalid = center.observe(|n: &TokenInvalidated| {
        println!(
            "  [outcome] token invalidated {} ({}) → the registry deletes it",
            tok(&n.token),
            n.reason
        )
    });
    let _quarantined = center.observe(|n: &TokenQuarantined| {
        println!(
            "  [outcome] token quarantined {} ({}) → kept, but sent nothing until a probe or \
             a new registration",
            tok(&n.token),
            n.reason
        )
    });
    let _skipped = center.observe(|n: &PushSkipped| {
        println!(
            "  [outcome] skipped   {} ({})",
            tok(n.push.device_token()),
            n.cause.as_str()
        )
    });
    let _alarm = center.observe(|n: &PushConfigSuspect| {
        println!(
            "  [ALARM] push configuration suspect for {}: {}",
            n.topic,
            n.cause.explain()
        )
    });

    let endpoint = RegistrationEndpoint::builder(registry.clone(), verify)
        .topic(topic.clone())
        .environment(Environment::Sandbox)
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(endpoint.serve(listener));
    println!("registration endpoint: POST http://{addr}/devices\n");

    if let Some(device) = &target.apple_device {
        println!("1. the app registers its device");
        app_registers(addr, "alice", &format!("newToken={device}")).await?;
        println!("\n2. post a notification");
        center.post(OrderShipped {
            user: "alice".into(),
            order: 1,
        });
        forwarding.finish().await;
        summary(&sink, &registry, None)?;
        server.abort();
        target.client.shutdown().await;
        return Ok(());
    }
    let Some(mock) = &target.mock else {
        return Ok(());
    };

    // 2. Devices: alice's phone (reinstalled: old → new token), alice's watch, bob's tablet,
    //    and carol's, whose token APNs does not know.
    let (phone_old, phone, watch, tablet, stray) = (
        "a1".repeat(32),
        "a2".repeat(32),
        "a3".repeat(32),
        "b1".repeat(32),
        "c1".repeat(32),
    );
    for t in [&phone, &watch, &tablet] {
        mock.register_device(t, &topic);
    }
    println!("1. apps register their devices through the endpoint");
    app_registers(addr, "alice", &format!("newToken={phone_old}")).await?;
    app_registers(addr, "alice", &format!("newToken={watch}")).await?;
    app_registers(addr, "bob", &format!("newToken={tablet}")).await?;
    println!("   alice reinstalls the app on her phone: it sends old and new token");
    app_registers(
        addr,
        "alice",
        &format!("oldToken={phone_old}&newToken={phone}"),
    )
    .await?;
    println!("   mallory tries to take bob's tablet token:");
    app_registers(addr, "mallory", &format!("newToken={tablet}")).await?;
    print_registry(&registry)?;

    // 3. Post domain notifications: local observers run, pushes go out.
    println!("\n2. post OrderShipped for alice and bob");
    center.post(OrderShipped {
        user: "alice".into(),
        order: 1001,
    });
    center.post(OrderShipped {
        user: "bob".into(),
        order: 1002,
    });
    forwarding.idle().await;

    // 4. Bob uninstalls the app: APNs now answers 410 for the tablet.
    println!("\n3. bob uninstalls the app (APNs will answer 410 Unregistered)");
    mock.mark_unregistered(&tablet, SystemTime::now());
    center.post(OrderShipped {
        user: "bob".into(),
        order: 1003,
    });
    forwarding.idle().await;
    print_registry(&registry)?;

    // 4. A token APNs answers BadDeviceToken for: kept in quarantine, not deleted (APNs says
    //    the same for a token of the other environment, so one answer proves nothing).
    println!("\n4. carol's token is unknown to APNs (BadDeviceToken)");
    app_registers(addr, "carol", &format!("newToken={stray}")).await?;
    center.post(OrderShipped {
        user: "carol".into(),
        order: 1004,
    });
    forwarding.idle().await;
    center.post(OrderShipped {
        user: "carol".into(),
        order: 1005,
    });
    forwarding.idle().await;
    print_registry(&registry)?;

    println!("\n5. post for bob again: no device left, nothing sent");
    center.post(OrderShipped {
        user: "bob".into(),
        order: 1006,
    });
    forwarding.finish().await;

    let addressed: Vec<String> = mock
        .pushes()
        .into_iter()
        .filter_map(|r| r.device_token)
        .collect();
    assert!(
        !addressed.contains(&phone_old),
        "the replaced token was addressed"
    );
    assert_eq!(addressed.iter().filter(|t| **t == tablet).count(), 2);
    assert_eq!(
        addressed.iter().filter(|t| **t == stray).count(),
        1,
        "a quarantined token was sent to"
    );
    assert!(registry.device(&stray)?.is_some_and(|d| d.is_quarantined()));
    summary(&sink, &registry, Some(mock))?;
    server.abort();
    target.client.shutdown().await;
    drop((sink, registry, _lifecycle));
    let _ = std::fs::remove_dir_all(&dir);
    println!("done in {:.1?}", started.elapsed());
    Ok(())
}

fn print_registry(registry: &DeviceRegistry) -> Result<(), Box<dyn Error>> {
    println!("   registry:");
    for d in registry.all()? {
        println!(
            "     {:<7} {} {} {}{}",
            d.subject,
            tok(&d.token),
            d.topic,
            d.environment,
            d.quarantine
                .map(|q| format!(" (quarantined: {})", q.reason))
                .unwrap_or_default()
        );
    }
    Ok(())
}

fn summary(
    sink: &ApnsSink,
    registry: &DeviceRegistry,
    mock: Option<&MockApns>,
) -> Result<(), Box<dyn Error>> {
    let m = sink.metrics();
    println!("\nsummary");
    println!(
        "  pushes sent {}: accepted {}, rejected {}, failed {}; skipped {}; tokens invalidated \
         {}, quarantined {}; messages with no device {}",
        m.sent,
        m.accepted,
        m.rejected,
        m.failed,
        m.skipped,
        m.invalidated,
        m.quarantined,
        m.unaddressed
    );
    if let Some(mock) = mock {
        let s = mock.stats();
        println!(
            "  mock APNs received {} requests, accepted {}, by reason {:?}",
            s.requests, s.accepted, s.by_reason
        );
    }
    println!("  registry now holds {} devices", registry.len()?);
    Ok(())
}

/// A fresh directory under the system temp dir for the registry file.
fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("herald-demo-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
