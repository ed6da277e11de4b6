//! Apple's notification queue, typed: the two classic uses.
//!
//! 1. Coalescing progress updates: a download reports progress a hundred times; the progress
//!    bar is redrawn once, with the last value, on the runtime's next tick.
//! 2. Batching UI refreshes: one import changes the model three times, with three kinds of
//!    notification; each change asks for a layout, and one `NeedsLayout` is posted when the
//!    outermost post (the import) ends.
//!
//! Then `WhenIdle` (posted once the queue has been quiet for a while), and dropping the queue,
//! which posts whatever is still pending.
//!
//! ```text
//! cargo run --example queue
//! ```

use std::time::Duration;

use herald::{Coalescing, Notification, NotificationCenter, NotificationQueue, PostingStyle};

#[derive(Debug)]
struct Progress {
    download: u32,
    percent: u32,
}
impl Notification for Progress {}

#[derive(Debug)]
struct ItemAdded(&'static str);
impl Notification for ItemAdded {}

#[derive(Debug)]
struct ItemRenamed(&'static str);
impl Notification for ItemRenamed {}

#[derive(Debug)]
struct ItemRemoved(&'static str);
impl Notification for ItemRemoved {}

#[derive(Debug)]
struct NeedsLayout;
impl Notification for NeedsLayout {}

#[derive(Debug)]
struct Import;
impl Notification for Import {}

#[derive(Debug)]
struct DraftChanged(&'static str);
impl Notification for DraftChanged {}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let center = NotificationCenter::new();
    let queue = NotificationQueue::builder(&center)
        .idle_after(Duration::from_millis(50))
        .build();

    // 1. Coalescing progress updates.
    let _bar = center.observe(|p: &Progress| {
        println!("progress bar: download {} at {}%", p.download, p.percent)
    });
    for percent in 1..=100 {
        // One pending entry per download: each enqueue replaces the value, keeps the place.
        let rule = Coalescing::by_key(7_u32);
        queue.enqueue_with(
            Progress {
                download: 7,
                percent,
            },
            PostingStyle::Asap,
            rule,
        );
    }
    println!("enqueued 100 progress updates; pending: {}", queue.len());
    // Enqueued outside any post, `Asap` entries are posted by a task on the runtime's next
    // tick: let it run.
    tokio::task::yield_now().await;
    println!("after the tick; pending: {}", queue.len());

    // 2. Batching UI refreshes. Every model change asks for a layout; `ByType` keeps one.
    let q = queue.clone();
    let _added = center.observe(move |n: &ItemAdded| {
        println!("model: added {}", n.0);
        q.enqueue_with(NeedsLayout, PostingStyle::Asap, Coalescing::ByType);
    });
    let q = queue.clone();
    let _renamed = center.observe(move |n: &ItemRenamed| {
        println!("model: renamed {}", n.0);
        q.enqueue_with(NeedsLayout, PostingStyle::Asap, Coalescing::ByType);
    });
    let q = queue.clone();
    let _removed = center.observe(move |n: &ItemRemoved| {
        println!("model: removed {}", n.0);
        q.enqueue_with(NeedsLayout, PostingStyle::Asap, Coalescing::ByType);
    });
    let _view = center.observe(|_: &NeedsLayout| println!("view: layout (once)"));
    let c = center.clone();
    let _importer = center.observe(move |_: &Import| {
        c.post(ItemAdded("notes.txt"));
        c.post(ItemRenamed("notes.txt -> todo.txt"));
        c.post(ItemRemoved("old.txt"));
        println!("import: done");
    });
    // Inside a post, `Asap` means "when the outermost post ends": after "import: done",
    // with no runtime tick and no flush needed.
    center.post(Import);
    println!("import posted; pending: {}", queue.len());

    // 3. When idle: a draft is saved once typing stops for 50 ms.
    let _saver = center.observe(|d: &DraftChanged| println!("saved draft: {:?}", d.0));
    for draft in ["h", "he", "hel", "hello"] {
        queue.enqueue_with(
            DraftChanged(draft),
            PostingStyle::WhenIdle,
            Coalescing::ByType,
        );
        tokio::time::sleep(Duration::from_millis(10)).await; // typing: not quiet yet
    }
    println!("typing stopped; pending: {}", queue.len());
    tokio::time::sleep(Duration::from_millis(100)).await;
    println!("after 100 ms of quiet; pending: {}", queue.len());

    // 4. Nothing is lost: dropping the last clone posts what is still pending.
    queue.enqueue_with(
        DraftChanged("bye"),
        PostingStyle::WhenIdle,
        Coalescing::ByType,
    );
    let stats = queue.stats();
    println!(
        "before drop: enqueued {}, coalesced {}, posted {}, pending {}",
        stats.enqueued, stats.coalesced, stats.posted, stats.pending
    );
    // The model observers hold clones of the queue: end them first, so that dropping
    // `queue` drops the last clone.
    drop((_added, _renamed, _removed));
    drop(queue);
    println!("dropped the queue");
}
