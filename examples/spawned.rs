//! Spawned async handlers: one sequential, one with a concurrency limit, drained on close.
//!
//! ```text
//! cargo run --example spawned
//! ```

use std::sync::Arc;
use std::time::Duration;

use herald::{Notification, NotificationCenter, ObserverPanicked, SpawnOptions};

#[derive(Debug)]
struct OrderPlaced {
    order: u32,
}
impl Notification for OrderPlaced {}

#[tokio::main]
async fn main() {
    // The hub reports handler panics itself (below): keep the default hook quiet.
    std::panic::set_hook(Box::new(|_| {}));
    let center = NotificationCenter::new();
    let _panics = center.observe(|p: &ObserverPanicked| {
        println!(
            "reported: {} panicked on {}: {}",
            p.observer, p.notification, p.message
        )
    });

    // One call at a time, in post order.
    let ledger = center
        .observer::<OrderPlaced>()
        .spawn(|n: Arc<OrderPlaced>| async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            println!("ledger: booked order {}", n.order);
        });

    // Up to three emails at once; order 3 has a bad address and panics (isolated, reported).
    let mailer = center.observer::<OrderPlaced>().spawn_with(
        SpawnOptions::new().concurrency(3),
        |n: Arc<OrderPlaced>| async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            assert_ne!(n.order, 3, "bad address for order 3");
            println!("mailer: sent confirmation for order {}", n.order);
        },
    );

    for order in 1..=5 {
        let report = center.post(OrderPlaced { order });
        println!(
            "posted order {order}: {} subscribers took it",
            report.received
        );
    }

    // Handle everything already posted, then stop.
    ledger.drain().await;
    mailer.drain().await;
    println!(
        "done: center counted {} posts",
        center.stats::<OrderPlaced>().posted
    );
}
