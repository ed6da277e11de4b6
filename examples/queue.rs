//! The coalescing queue: a burst of badge updates becomes one post per account.
//!
//! ```text
//! cargo run --example queue
//! ```

use std::time::Duration;

use herald::{Coalescing, Notification, NotificationCenter, NotificationQueue, PostingStyle};

#[derive(Debug)]
struct BadgeChanged {
    account: &'static str,
    unread: u32,
}
impl Notification for BadgeChanged {}

#[tokio::main]
async fn main() {
    let center = NotificationCenter::new();
    let _badge =
        center.observe(|b: &BadgeChanged| println!("badge: {} has {} unread", b.account, b.unread));

    let queue = NotificationQueue::builder(&center)
        .key(|b: &BadgeChanged| b.account)
        .idle_after(Duration::from_millis(50))
        .build();

    // A burst: 100 updates for two accounts, posted as soon as possible, coalesced per account.
    for i in 1..=100 {
        let account = if i % 2 == 0 { "ada" } else { "bob" };
        queue.enqueue(
            BadgeChanged { account, unread: i },
            PostingStyle::Asap,
            Coalescing::ByKey,
        );
    }
    println!("enqueued 100, pending {}", queue.len());
    tokio::task::yield_now().await; // the next tick posts them
    println!("after one tick, pending {}", queue.len());

    // When idle: posted once the queue has been quiet for 50 ms.
    queue.enqueue(
        BadgeChanged {
            account: "ada",
            unread: 0,
        },
        PostingStyle::WhenIdle,
        Coalescing::ByKey,
    );
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Anything still pending is posted by shutdown (or by dropping the queue).
    queue.enqueue(
        BadgeChanged {
            account: "bob",
            unread: 0,
        },
        PostingStyle::WhenIdle,
        Coalescing::ByKey,
    );
    println!("shutdown posted {}", queue.shutdown());
}
