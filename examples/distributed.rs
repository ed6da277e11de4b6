//! Two processes, one set of notifications: a shop posts orders, a warehouse in another
//! process observes them and posts shipments back, through a NATS server.
//!
//! Start a server, then run the example (it starts the warehouse as a second process):
//!
//! ```text
//! apt-get install -y nats-server          # or any nats-server 2.9+ (brew install nats-server)
//! nats-server -a 127.0.0.1 -p 4222 &
//! cargo run --example distributed --features nats
//! ```
//!
//! Another server: `NATS_URL=nats://host:4222 cargo run --example distributed --features nats`.
//! Each role can also run alone, in two terminals: `... -- shop` and `... -- warehouse`.

use std::time::Duration;

use herald::nats::{NatsBridge, Origin, RemoteLost};
use herald::{Notification, NotificationCenter, SenderId};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct OrderPlaced {
    id: u64,
    item: String,
}
impl Notification for OrderPlaced {
    fn name() -> &'static str {
        "shop.order.placed" // the NATS subject
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct OrderShipped {
    id: u64,
}
impl Notification for OrderShipped {
    fn name() -> &'static str {
        "shop.order.shipped"
    }
}

const ORDERS: u64 = 3;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    match std::env::args().nth(1).as_deref() {
        Some("warehouse") => warehouse(&url).await,
        Some("shop") => shop(&url, false).await,
        _ => shop(&url, true).await,
    }
}

/// Posts orders; prints the shipments other processes post back.
async fn shop(url: &str, start_warehouse: bool) -> Result<(), Box<dyn std::error::Error>> {
    let center = NotificationCenter::new();
    let bridge = match NatsBridge::builder().name("shop").connect(url).await {
        Ok(bridge) => bridge,
        Err(e) => {
            eprintln!("{e}\nstart a server first: nats-server -a 127.0.0.1 -p 4222");
            return Err(e.into());
        }
    };
    // Every OrderPlaced posted here goes to shop.order.placed; shipments come back typed.
    let _out = center.observer::<OrderPlaced>().forward(bridge.publish())?;
    let _in = bridge.import::<OrderShipped>(&center).await?;
    let _loss = center.observe(|l: &RemoteLost| eprintln!("lost {} from {}", l.lost, l.origin));
    let mut shipped = center.observer::<OrderShipped>().stream();

    let mut warehouse = if start_warehouse {
        let child = tokio::process::Command::new(std::env::current_exe()?)
            .arg("warehouse")
            .env("NATS_URL", url)
            .spawn()?;
        // The warehouse says it is listening by posting a shipment for order 0.
        let ready = shipped.recv().await?;
        assert_eq!(ready.id, 0);
        Some(child)
    } else {
        println!("shop: waiting for a warehouse (run `... -- warehouse`)");
        shipped.recv().await?;
        None
    };

    let till = SenderId::from_raw(1);
    for id in 1..=ORDERS {
        println!("shop: order {id} placed");
        center.post_from(
            till,
            OrderPlaced {
                id,
                item: format!("item {id}"),
            },
        );
    }
    for _ in 0..ORDERS {
        let s = tokio::time::timeout(Duration::from_secs(10), shipped.recv()).await??;
        println!("shop: order {} shipped", s.id);
    }
    bridge.shutdown().await?;
    if let Some(child) = warehouse.as_mut() {
        child.wait().await?;
    }
    Ok(())
}

/// Ships what the shop orders.
async fn warehouse(url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let center = NotificationCenter::new();
    let bridge = NatsBridge::builder().name("warehouse").connect(url).await?;
    let _out = center
        .observer::<OrderShipped>()
        .forward(bridge.publish())?;
    let mut orders = center.observer::<OrderPlaced>().stream();
    // Everything under shop.: orders typed, any other name type-erased.
    let _in = bridge
        .import_family("shop.", &center)
        .with::<OrderPlaced>()
        .await?;
    // Wildcard observers see imported notifications, and where they came from.
    let _log = center.observer::<herald::Wildcard>().inline(|n| {
        if let Some(origin) = n.sender().and_then(Origin::of) {
            println!("warehouse: {} from {origin}", n.name());
        }
    });
    center.post(OrderShipped { id: 0 }); // "ready"
    for _ in 0..ORDERS {
        let order = orders.recv().await?;
        println!("warehouse: packing {} for order {}", order.item, order.id);
        center.post(OrderShipped { id: order.id });
    }
    bridge.shutdown().await?;
    Ok(())
}
