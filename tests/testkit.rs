//! The test kit (`herald::testkit`): what a recorder records, and that its assertions fail
//! with clear messages.

use std::time::Duration;

use herald::testkit::{Recorder, wait_for};
use herald::{Notification, NotificationCenter, SenderId};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Ev(u32);
impl Notification for Ev {
    fn name() -> &'static str {
        "test.ev"
    }
}

fn posted(values: &[u32]) -> (NotificationCenter, Recorder<Ev>) {
    let center = NotificationCenter::new();
    let recorder = Recorder::new(&center);
    for v in values {
        center.post(Ev(*v));
    }
    (center, recorder)
}

// ---------------------------------------------------------------------------------------------
// Recording
// ---------------------------------------------------------------------------------------------

#[test]
fn records_inline_in_post_order() {
    let (center, recorder) = posted(&[1, 2, 3]);
    assert_eq!(recorder.values(), [Ev(1), Ev(2), Ev(3)]);
    assert_eq!(recorder.count(), 3);
    assert_eq!(recorder.last(), Some(Ev(3)));
    assert_eq!(center.stats::<Ev>().observers, 1);
}

#[test]
fn take_empties_the_recorder() {
    let (center, recorder) = posted(&[1, 2]);
    assert_eq!(recorder.take(), [Ev(1), Ev(2)]);
    assert!(recorder.is_empty());
    center.post(Ev(3));
    assert_eq!(recorder.take(), [Ev(3)]);
}

#[test]
fn record_terminal_keeps_the_builder_options() {
    let center = NotificationCenter::new();
    let me = SenderId::new();
    let recorder = center
        .observer::<Ev>()
        .sender(me)
        .filter(|e| e.0 > 1)
        .record();
    center.post_from(me, Ev(1));
    center.post_from(me, Ev(2));
    center.post(Ev(3));
    recorder.assert_values(&[Ev(2)]);
}

#[test]
fn dropping_or_stopping_the_recorder_unsubscribes() {
    let (center, mut recorder) = posted(&[1]);
    recorder.unsubscribe();
    center.post(Ev(2));
    recorder.assert_values(&[Ev(1)]);
    drop(recorder);
    assert_eq!(center.stats::<Ev>().observers, 0);
}

// ---------------------------------------------------------------------------------------------
// Assertions that pass
// ---------------------------------------------------------------------------------------------

#[test]
fn passing_assertions_are_silent() {
    let (_center, recorder) = posted(&[1, 2, 3, 4]);
    recorder.assert_posted(|e| e.0 == 3);
    recorder.assert_not_posted(|e| e.0 == 5);
    recorder.assert_count(4);
    recorder.assert_values(&[Ev(1), Ev(2), Ev(3), Ev(4)]);
    recorder.assert_order(&[Ev(1), Ev(3), Ev(4)]);
    recorder.assert_order(&[]);
}

// ---------------------------------------------------------------------------------------------
// Assertions that fail, with messages
// ---------------------------------------------------------------------------------------------

#[test]
#[should_panic(
    expected = "expected a posted `test.ev` matching the predicate, but none of the 2 recorded did:\n  [0] Ev(1)\n  [1] Ev(2)"
)]
fn assert_posted_lists_what_was_recorded() {
    let (_center, recorder) = posted(&[1, 2]);
    recorder.assert_posted(|e| e.0 == 9);
}

#[test]
#[should_panic(expected = "none of the 0 recorded did: (nothing)")]
fn assert_posted_says_when_nothing_was_recorded() {
    let (_center, recorder) = posted(&[]);
    recorder.assert_posted(|_| true);
}

#[test]
#[should_panic(expected = "expected no posted `test.ev` matching the predicate, but [1] Ev(2) did")]
fn assert_not_posted_names_the_offending_value() {
    let (_center, recorder) = posted(&[1, 2, 3]);
    recorder.assert_not_posted(|e| e.0 % 2 == 0);
}

#[test]
#[should_panic(expected = "expected 3 posted `test.ev`, but 2 were recorded")]
fn assert_count_gives_both_counts() {
    let (_center, recorder) = posted(&[1, 2]);
    recorder.assert_count(3);
}

#[test]
#[should_panic(
    expected = "expected exactly these posted `test.ev`:\n  [0] Ev(2)\n  [1] Ev(1)\nbut recorded:\n  [0] Ev(1)\n  [1] Ev(2)"
)]
fn assert_values_shows_expected_and_recorded() {
    let (_center, recorder) = posted(&[1, 2]);
    recorder.assert_values(&[Ev(2), Ev(1)]);
}

#[test]
#[should_panic(expected = "but [1] Ev(1) was not recorded after the ones before it")]
fn assert_order_names_the_first_value_out_of_order() {
    let (_center, recorder) = posted(&[1, 2, 3]);
    recorder.assert_order(&[Ev(2), Ev(1)]);
}

// ---------------------------------------------------------------------------------------------
// Waiting
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn next_within_returns_each_value_once_in_order() {
    let (center, recorder) = posted(&[1]);
    let c = center.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(5)).await;
        c.post(Ev(2));
    });
    let wait = Duration::from_secs(2);
    assert_eq!(recorder.next_within(wait).await, Some(Ev(1)));
    assert_eq!(recorder.next_within(wait).await, Some(Ev(2)));
    assert_eq!(recorder.count(), 2, "next_within does not consume");
}

#[tokio::test(start_paused = true)]
async fn next_within_times_out_with_none() {
    let (_center, recorder) = posted(&[]);
    assert_eq!(recorder.next_within(Duration::from_secs(3)).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorder_wait_for_sees_posts_from_other_threads() {
    let (center, recorder) = posted(&[]);
    let poster = std::thread::spawn(move || {
        for i in 0..1_000 {
            center.post(Ev(i));
        }
    });
    let found = recorder
        .wait_for(|e| e.0 == 999, Duration::from_secs(30)) // a hang guard, not a budget
        .await;
    assert_eq!(found, Some(Ev(999)));
    poster.join().unwrap();
}

#[tokio::test]
async fn free_wait_for_subscribes_at_the_call() {
    let center = NotificationCenter::new();
    let waiting = wait_for(&center, |e: &Ev| e.0 == 2, Duration::from_secs(2));
    // Posted before the future is first polled: still seen.
    center.post(Ev(1));
    center.post(Ev(2));
    assert_eq!(*waiting.await.unwrap(), Ev(2));
}

#[tokio::test(start_paused = true)]
async fn free_wait_for_times_out_with_none() {
    let center = NotificationCenter::new();
    let waiting = wait_for(&center, |e: &Ev| e.0 == 2, Duration::from_secs(1));
    center.post(Ev(1));
    assert!(waiting.await.is_none());
}

#[test]
fn recorder_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Recorder<Ev>>();
}

mod all_recorder {
    use herald::testkit::AllRecorder;
    use herald::{Notification, NotificationCenter, SenderId};

    struct Paid;
    impl Notification for Paid {
        fn name() -> &'static str {
            "billing.paid"
        }
    }
    struct Refunded;
    impl Notification for Refunded {
        fn name() -> &'static str {
            "billing.refunded"
        }
    }
    struct Tick;
    impl Notification for Tick {
        fn name() -> &'static str {
            "clock.tick"
        }
    }

    #[test]
    fn records_every_type_with_names_and_senders_in_order() {
        let center = NotificationCenter::new();
        let rec = AllRecorder::new(&center);
        let till = SenderId::new();
        center.post(Tick);
        center.post_from(till, Paid);
        center.post(Refunded);
        assert_eq!(
            rec.names(),
            ["clock.tick", "billing.paid", "billing.refunded"]
        );
        assert_eq!(rec.seen()[1].sender, Some(till));
        rec.assert_order(&["clock.tick", "billing.refunded"]);
    }

    #[test]
    fn family_recorder_sees_only_its_prefix() {
        let center = NotificationCenter::new();
        let billing = AllRecorder::family(&center, "billing.");
        center.post(Tick);
        center.post(Paid);
        assert_eq!(billing.count(), 1);
        billing.assert_not_posted("clock.tick");
    }

    #[test]
    #[should_panic(expected = "expected [\"billing.refunded\", \"billing.paid\"] in this order")]
    fn assert_order_fails_with_what_was_recorded() {
        let center = NotificationCenter::new();
        let rec = AllRecorder::new(&center);
        center.post(Paid);
        center.post(Refunded);
        rec.assert_order(&["billing.refunded", "billing.paid"]);
    }
}
