//! herald in one screen: inline observers with priorities, a sender filter, a wildcard, a
//! stream with a lag policy, a coalescing queue, and the counters.
//!
//! Run it with `cargo run --example quickstart`.

use herald::{Notification, NotificationCenter, NotificationQueue, Overflow, SenderId};

#[derive(Debug, Clone)]
struct OrderPlaced {
    id: u64,
    cents: u64,
}

impl Notification for OrderPlaced {
    fn name() -> &'static str {
        "shop.order.placed"
    }
}

#[derive(Debug, Clone)]
struct StockLow {
    sku: &'static str,
}

impl Notification for StockLow {
    fn name() -> &'static str {
        "shop.stock.low"
    }
}

fn main() {
    let center = NotificationCenter::new();
    let web = SenderId::new();
    let kiosk = SenderId::new();

    // Two inline observers: the higher priority runs first, on the posting thread.
    let _audit = center
        .observer::<OrderPlaced>()
        .priority(10)
        .inline(|o| println!("[audit]    order {} for {} cents", o.id, o.cents));
    let _receipt = center.observe(|o: &OrderPlaced| println!("[receipt]  mailing order {}", o.id));

    // A sender filter: only orders placed at the kiosk.
    let _kiosk = center
        .observer::<OrderPlaced>()
        .sender(kiosk)
        .inline(|o| println!("[kiosk]    print a ticket for order {}", o.id));

    // A family wildcard: everything whose name starts with "shop.stock.".
    let _stock = center
        .observer::<herald::Wildcard>()
        .family("shop.stock.")
        .inline(|n| {
            let sku = n.downcast_ref::<StockLow>().map(|s| s.sku).unwrap_or("?");
            println!("[stock]    {} ({sku})", n.name());
        });

    // A stream for a slow consumer: it keeps the newest 2 orders and is told what it missed.
    let mut analytics = center
        .observer::<OrderPlaced>()
        .policy(Overflow::DropOldest { capacity: 2 })
        .stream();

    for id in 1..=4 {
        let from = if id % 2 == 0 { kiosk } else { web };
        let report = center.post_from(
            from,
            OrderPlaced {
                id,
                cents: 1250 * id,
            },
        );
        println!(
            "posted order {id}: {} received, {} dropped",
            report.received, report.dropped
        );
    }
    center.post(StockLow { sku: "mug-blue" });

    loop {
        match analytics.try_recv() {
            Ok(order) => println!("[analytics] order {}", order.id),
            Err(herald::TryRecvError::Lagged(n)) => println!("[analytics] missed {n} orders"),
            Err(_) => break,
        }
    }
    // In async code, `analytics.recv().await` waits for the next one instead.
    drop(analytics);

    // A coalescing queue (Apple's NotificationQueue): five stock alerts for the same shelf
    // become one post. `enqueue` coalesces on type and sender, as Apple's default does.
    let alerts = NotificationQueue::new(&center);
    for _ in 0..5 {
        alerts.enqueue(StockLow { sku: "mug-red" });
    }
    println!("queue: {} post(s) for 5 alerts", alerts.flush());

    let stats = center.stats::<OrderPlaced>();
    println!(
        "orders: posted {}, delivered {}, dropped {}, panicked {}, dead {}",
        stats.posted, stats.delivered, stats.dropped, stats.panicked, stats.dead
    );
}
