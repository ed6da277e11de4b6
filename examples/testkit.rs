//! The test kit, outside a test: record what code posts, assert on it, wait for a post.
//!
//! ```text
//! cargo run --example testkit
//! ```

use std::time::Duration;

use herald::testkit::{Recorder, wait_for};
use herald::{Notification, NotificationCenter};

#[derive(Debug, Clone, PartialEq)]
enum Payment {
    Authorized(u32),
    Captured(u32),
}
impl Notification for Payment {}

/// The code under test.
fn charge(center: &NotificationCenter, cents: u32) {
    center.post(Payment::Authorized(cents));
    center.post(Payment::Captured(cents));
}

#[tokio::main]
async fn main() {
    let center = NotificationCenter::new();
    let payments = Recorder::<Payment>::new(&center);

    charge(&center, 500);
    payments.assert_values(&[Payment::Authorized(500), Payment::Captured(500)]);
    payments.assert_not_posted(|p| matches!(p, Payment::Captured(c) if *c != 500));
    println!("recorded: {:?}", payments.values());

    // Posted later from another task: wait for it with a timeout.
    let captured = wait_for(
        &center,
        |p: &Payment| matches!(p, Payment::Captured(_)),
        Duration::from_secs(1),
    );
    let c = center.clone();
    tokio::spawn(async move { charge(&c, 42) });
    println!("waited for: {:?}", captured.await);

    // What an assertion failure says (the default panic hook kept quiet for the demo).
    std::panic::set_hook(Box::new(|_| {}));
    let failure = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        payments.assert_count(3);
    }));
    if let Err(payload) = failure {
        println!(
            "a failing assertion reads:\n{}",
            payload.downcast_ref::<String>().unwrap()
        );
    }
}
