//! The NATS bridge against a real `nats-server` (see `tests/nats_support`): export, import,
//! origins, no echo, no loops, order, names, families, loss accounting (forged sequence
//! numbers included), URL lists, health and shutdown (with the server gone too).
//! Two bridges in one process stand for two processes (each has its own connection and id);
//! `tests/nats_processes.rs` does it across real processes.
//!
//! Runs when `nats-server` is installed, reported ignored otherwise (failing instead with
//! `HERALD_REQUIRE_NATS=1`); see `tests/nats_support`.

mod nats_support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald::nats::{
    Batching, ConnectionChanged, ConnectionState, ErrorKind, ExportDropped, NatsBridge,
    NatsBridgeBuilder, Origin, RemoteLost, RemoteNotification, RemoteUndecodable,
};
use herald::{Notification, NotificationCenter, SenderId};
use nats_support::{
    NatsServer, Pipe, SlowLink, bridge, cut_and_wait, len, pipe, pipe_from, record, until,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct OrderPlaced {
    id: u64,
    item: String,
}
impl Notification for OrderPlaced {
    fn name() -> &'static str {
        "shop.order.placed"
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct OrderShipped {
    id: u64,
}
impl Notification for OrderShipped {
    fn name() -> &'static str {
        "shop.order.shipped"
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Numbered {
    sender: u8,
    n: u64,
}
impl Notification for Numbered {
    fn name() -> &'static str {
        "test.numbered"
    }
}

async fn a_notification_posted_in_one_center_reaches_observers_of_another() {
    let server = NatsServer::start();
    let (a, b) = (bridge(&server).await, bridge(&server).await);
    let (here, there) = (NotificationCenter::new(), NotificationCenter::new());
    let export = here.observer::<OrderPlaced>().forward(a.publish()).unwrap();
    assert_eq!(export.subject(), "shop.order.placed");
    let _import = b.import::<OrderPlaced>(&there).await.unwrap();
    let (seen, _s) = record::<OrderPlaced>(&there);

    let order = OrderPlaced {
        id: 7,
        item: "tea".into(),
    };
    here.post(order.clone());
    until("the order in the other center", || len(&seen) == 1).await;
    assert_eq!(seen.lock().unwrap()[0], order);
}

async fn import_is_in_force_when_it_returns() {
    // The importer sits behind a slow link (its SUB reaches the server 100 ms late); the
    // publisher is direct and publishes the moment import returns. A socket flush would not
    // be enough: only a server round trip makes this pass.
    let server = NatsServer::start();
    let link = SlowLink::start(server.port(), Duration::from_millis(100)).await;
    let b = NatsBridge::connect(&link.url()).await.unwrap();
    let peer = async_nats::connect(server.url()).await.unwrap();
    for round in 0..5u64 {
        let there = NotificationCenter::new();
        let import = b.import::<OrderShipped>(&there).await.unwrap();
        let (seen, _s) = record::<OrderShipped>(&there);
        peer.publish("shop.order.shipped", format!("{{\"id\":{round}}}").into())
            .await
            .unwrap();
        peer.flush().await.unwrap();
        until("the message published right after import returned", || {
            len(&seen) == 1
        })
        .await;
        assert_eq!(seen.lock().unwrap()[0].id, round);
        drop(import);
    }
}

async fn a_bridge_never_imports_what_it_exported() {
    let server = NatsServer::start();
    let (a, b) = (bridge(&server).await, bridge(&server).await);
    let (here, there) = (NotificationCenter::new(), NotificationCenter::new());
    let _export = here
        .observer::<OrderShipped>()
        .forward(a.publish())
        .unwrap();
    let own_import = a.import::<OrderShipped>(&here).await.unwrap();
    let _import = b.import::<OrderShipped>(&there).await.unwrap();
    let (mine, _s1) = record::<OrderShipped>(&here);
    let (theirs, _s2) = record::<OrderShipped>(&there);

    here.post(OrderShipped { id: 1 });
    until("the remote copy", || len(&theirs) == 1).await;
    // A ping is a round trip: anything the server would echo has arrived by then.
    a.ping().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(len(&mine), 1, "only the local post, no echo");
    assert_eq!(own_import.stats().posted, 0);
}

async fn two_bridges_that_export_and_import_the_same_type_do_not_loop() {
    let server = NatsServer::start();
    let (a, b) = (bridge(&server).await, bridge(&server).await);
    let (ca, cb) = (NotificationCenter::new(), NotificationCenter::new());
    let _ea = ca.observer::<OrderShipped>().forward(a.publish()).unwrap();
    let _eb = cb.observer::<OrderShipped>().forward(b.publish()).unwrap();
    let _ia = a.import::<OrderShipped>(&ca).await.unwrap();
    let _ib = b.import::<OrderShipped>(&cb).await.unwrap();
    let (in_a, _s1) = record::<OrderShipped>(&ca);
    let (in_b, _s2) = record::<OrderShipped>(&cb);

    ca.post(OrderShipped { id: 1 });
    cb.post(OrderShipped { id: 2 });
    until("each center has both", || {
        len(&in_a) == 2 && len(&in_b) == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.ping().await.unwrap();
    b.ping().await.unwrap();
    assert_eq!((len(&in_a), len(&in_b)), (2, 2), "nothing came back around");
    let (ma, mb) = (a.metrics(), b.metrics());
    assert_eq!((ma.published, mb.published), (1, 1));
    assert_eq!((ma.not_reexported, mb.not_reexported), (1, 1));
}

async fn a_remote_notification_carries_its_origin_and_only_origin_filters_match_it() {
    let server = NatsServer::start();
    let (a, b) = (bridge(&server).await, bridge(&server).await);
    let (here, there) = (NotificationCenter::new(), NotificationCenter::new());
    let _export = here
        .observer::<OrderShipped>()
        .forward(a.publish())
        .unwrap();
    let _import = b.import::<OrderShipped>(&there).await.unwrap();

    let kitchen = SenderId::from_raw(42);
    let origin = Origin::new(a.id(), Some(kitchen));
    let by_origin = Arc::new(AtomicU64::new(0));
    let by_local_id = Arc::new(AtomicU64::new(0));
    let senders = Arc::new(Mutex::new(Vec::new()));
    let (o, l, s) = (by_origin.clone(), by_local_id.clone(), senders.clone());
    let _f1 = there
        .observer::<OrderShipped>()
        .sender(origin.sender_id())
        .inline(move |_| {
            o.fetch_add(1, Ordering::SeqCst);
        });
    // The remote process's own number means nothing here.
    let _f2 = there
        .observer::<OrderShipped>()
        .sender(kitchen)
        .inline(move |_| {
            l.fetch_add(1, Ordering::SeqCst);
        });
    let _all = there.observer::<herald::Wildcard>().inline(move |n| {
        if n.is::<OrderShipped>() {
            s.lock().unwrap().push(n.sender());
        }
    });

    here.post_from(kitchen, OrderShipped { id: 1 });
    here.post(OrderShipped { id: 2 });
    until("both posts", || senders.lock().unwrap().len() == 2).await;
    assert_eq!(by_origin.load(Ordering::SeqCst), 1);
    assert_eq!(by_local_id.load(Ordering::SeqCst), 0);
    let senders = senders.lock().unwrap().clone();
    let first = Origin::of(senders[0].unwrap()).unwrap();
    assert_eq!(first.bridge(), Some(a.id()));
    assert_eq!(first.remote_sender(), Some(kitchen));
    let second = Origin::of(senders[1].unwrap()).unwrap();
    assert_eq!(
        (second.bridge(), second.remote_sender()),
        (Some(a.id()), None)
    );
}

async fn each_senders_posts_arrive_in_post_order() {
    posts_arrive_in_post_order(NatsBridge::builder()).await;
}

/// With a client queue of four messages, posts keep switching between the direct hand-off
/// and the outbox (and its publishing task) while three threads post: order must survive
/// every switch.
async fn order_survives_switching_between_the_direct_path_and_the_outbox() {
    posts_arrive_in_post_order(NatsBridge::builder().client_capacity(4)).await;
}

/// The same with batching on: runs of queued posts go out as batches, and order and counts
/// survive them too.
async fn order_and_counts_survive_concurrent_posters_with_batching() {
    posts_arrive_in_post_order(
        NatsBridge::builder()
            .batching(Batching::new().max_items(64))
            .client_capacity(4),
    )
    .await;
}

async fn posts_arrive_in_post_order(builder: NatsBridgeBuilder) {
    let server = NatsServer::start();
    let (
        a,
        _b,
        Pipe {
            here,
            there,
            export: _export,
            import,
        },
    ) = pipe_from::<Numbered>(builder, &server.url(), &server).await;
    let (seen, _s) = record::<Numbered>(&there);

    const PER_SENDER: u64 = 5_000;
    let threads: Vec<_> = (0..3u8)
        .map(|sender| {
            let here = here.clone();
            std::thread::spawn(move || {
                for n in 0..PER_SENDER {
                    here.post_from(
                        SenderId::from_raw(u64::from(sender)),
                        Numbered { sender, n },
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    until("every post", || len(&seen) == 3 * PER_SENDER as usize).await;
    let mut next = [0u64; 3];
    for n in seen.lock().unwrap().iter() {
        assert_eq!(
            n.n, next[n.sender as usize],
            "sender {} out of order",
            n.sender
        );
        next[n.sender as usize] += 1;
    }
    let m = a.metrics();
    assert_eq!(m.export_dropped, 0);
    assert_eq!((m.exported, m.published), (3 * PER_SENDER, 3 * PER_SENDER));
    let s = import.stats();
    assert_eq!((s.posted, s.lost, s.undecodable), (3 * PER_SENDER, 0, 0));
}

#[derive(Debug, Serialize, Deserialize)]
struct Undeclared;
impl Notification for Undeclared {}

#[derive(Debug, Serialize, Deserialize)]
struct Spaced;
impl Notification for Spaced {
    fn name() -> &'static str {
        "shop order"
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Wild;
impl Notification for Wild {
    fn name() -> &'static str {
        "shop.*"
    }
}

async fn names_that_are_not_nats_subjects_are_refused_with_a_typed_error() {
    let server = NatsServer::start();
    let a = bridge(&server).await;
    let center = NotificationCenter::new();
    let undeclared = center
        .observer::<Undeclared>()
        .forward(a.publish())
        .unwrap_err();
    assert_eq!(undeclared.kind(), ErrorKind::InvalidName);
    assert!(
        undeclared.to_string().contains("no declared name"),
        "{undeclared}"
    );
    let spaced = center
        .observer::<Spaced>()
        .forward(a.publish())
        .unwrap_err();
    assert!(spaced.is_invalid_name(), "{spaced}");
    let wild = center.observer::<Wild>().forward(a.publish()).unwrap_err();
    assert!(wild.to_string().contains("wildcard"), "{wild}");
    assert!(
        a.import::<Wild>(&center)
            .await
            .unwrap_err()
            .is_invalid_name()
    );
    let no_dot = a.import_family("shop", &center).await.unwrap_err();
    assert!(
        no_dot.to_string().contains("must end with a dot"),
        "{no_dot}"
    );
    let outside = a
        .import_family("billing.", &center)
        .with::<OrderPlaced>()
        .await
        .unwrap_err();
    assert!(outside.is_invalid_name(), "{outside}");
    // A refused export subscribed nothing.
    assert_eq!(center.stats::<Undeclared>().observers, 0);
}

async fn a_family_import_posts_registered_types_typed_and_other_names_type_erased() {
    let server = NatsServer::start();
    let (a, b) = (bridge(&server).await, bridge(&server).await);
    let (here, there) = (NotificationCenter::new(), NotificationCenter::new());
    let _e1 = here.observer::<OrderPlaced>().forward(a.publish()).unwrap();
    let _e2 = here
        .observer::<OrderShipped>()
        .forward(a.publish())
        .unwrap();
    let import = b
        .import_family("shop.", &there)
        .with::<OrderPlaced>()
        .await
        .unwrap();
    assert_eq!(import.subject(), "shop.>");
    let (typed, _s1) = record::<OrderPlaced>(&there);
    let (erased, _s2) = record::<RemoteNotification>(&there);
    let family = Arc::new(Mutex::new(Vec::new()));
    let everything = Arc::new(Mutex::new(Vec::new()));
    let (f, e) = (family.clone(), everything.clone());
    let _fam = there
        .observer::<herald::Wildcard>()
        .family("shop.")
        .inline(move |n| f.lock().unwrap().push(n.value_name().to_owned()));
    let _all = there.observer::<herald::Wildcard>().inline(move |n| {
        let name = match n.downcast_ref::<RemoteNotification>() {
            Some(r) => r.name().to_owned(),
            None => n.name().to_owned(),
        };
        e.lock().unwrap().push(name);
    });

    here.post(OrderPlaced {
        id: 1,
        item: "tea".into(),
    });
    here.post(OrderShipped { id: 1 });
    until("both", || len(&typed) == 1 && len(&erased) == 1).await;
    let r = erased.lock().unwrap()[0].clone();
    assert_eq!(r.name(), "shop.order.shipped");
    assert_eq!(r.decode::<OrderShipped>().unwrap(), OrderShipped { id: 1 });
    assert_eq!(r.origin().bridge(), Some(a.id()));
    // A family observer sees the type-erased one too, under the name it was posted with.
    until("the family", || len(&family) == 2).await;
    assert_eq!(
        *family.lock().unwrap(),
        ["shop.order.placed", "shop.order.shipped"]
    );
    assert_eq!(
        *everything.lock().unwrap(),
        ["shop.order.placed", "shop.order.shipped"]
    );
}

/// Publishes raw messages with herald's metadata (the reply subject), as a peer would.
async fn raw_publish(
    client: &async_nats::Client,
    subject: &str,
    origin: &str,
    seq: u64,
    payload: &str,
    heartbeat: bool,
) {
    let flag = if heartbeat { ".hb" } else { "" };
    client
        .publish_with_reply(
            subject.to_owned(),
            format!("_HERALD.1.{origin}.{seq}{flag}"),
            payload.to_owned().into(),
        )
        .await
        .unwrap();
}

/// A [`bridge`] to `server` importing `OrderShipped` into a new center, with what the center
/// receives of it recorded, and a plain NATS client of `server` to publish to it with.
async fn order_import(
    server: &NatsServer,
) -> (
    NatsBridge,
    NotificationCenter,
    herald::nats::Import,
    (Arc<Mutex<Vec<OrderShipped>>>, herald::Subscription),
    async_nats::Client,
) {
    let b = bridge(server).await;
    let there = NotificationCenter::new();
    let import = b.import::<OrderShipped>(&there).await.unwrap();
    let seen = record::<OrderShipped>(&there);
    let peer = async_nats::connect(server.url()).await.unwrap();
    (b, there, import, seen, peer)
}

async fn sequence_gaps_are_counted_and_posted_as_remote_lost() {
    let server = NatsServer::start();
    let (b, there, import, (seen, _s), peer) = order_import(&server).await;
    let (lost, _l) = record::<RemoteLost>(&there);
    let origin = "0123456789abcdef0123456789abcdef";
    for seq in [1, 2, 5, 6] {
        raw_publish(
            &peer,
            "shop.order.shipped",
            origin,
            seq,
            &format!("{{\"id\":{seq}}}"),
            false,
        )
        .await;
    }
    // The tail: 7 and 8 never sent; the heartbeat says 8 was the last.
    raw_publish(&peer, "shop.order.shipped", origin, 8, "", true).await;
    until("the heartbeat", || import.stats().heartbeats == 1).await;
    assert_eq!(len(&seen), 4);
    let lost = lost.lock().unwrap().clone();
    assert_eq!(lost.iter().map(|l| l.lost).collect::<Vec<_>>(), [2, 2]);
    assert!(lost.iter().all(|l| l.subject == "shop.order.shipped"));
    assert_eq!(lost[0].origin.bridge().unwrap().to_string(), origin);
    let stats = import.stats();
    assert_eq!((stats.posted, stats.lost), (4, 4));
    assert_eq!(stats.posted + stats.lost, 8, "seen + lost == sent");
    assert_eq!(b.metrics().lost, 4);
}

/// Origins and subjects come from peers: a flood of messages from ever-new origins keeps an
/// import's loss tracking within its `import_streams` limit, forgetting the streams seen
/// least recently (counted), while a live stream among them keeps exact accounting: every
/// notification is posted, and only its real gap is counted lost.
async fn a_flood_of_new_origins_keeps_the_loss_tracking_bounded_and_exact_for_live_streams() {
    let server = NatsServer::start();
    let b = NatsBridge::builder()
        .import_streams(64)
        .connect(&server.url())
        .await
        .unwrap();
    let there = NotificationCenter::new();
    let import = b.import::<OrderShipped>(&there).await.unwrap();
    let (lost, _l) = record::<RemoteLost>(&there);
    let peer = async_nats::connect(server.url()).await.unwrap();
    let live = "0123456789abcdef0123456789abcdef";
    let (mut live_seq, mut live_sent) = (0, 0);
    let flood = 5_000u64;
    for n in 0..flood {
        // Each forged origin sends its first message: nothing is lost on it.
        let forged = format!("{:032x}", n + 1_000_000);
        raw_publish(&peer, "shop.order.shipped", &forged, 1, "{\"id\":0}", false).await;
        if n % 5 == 0 {
            // The live stream skips three numbers once.
            live_seq += if live_seq == 500 { 4 } else { 1 };
            live_sent += 1;
            raw_publish(
                &peer,
                "shop.order.shipped",
                live,
                live_seq,
                "{\"id\":1}",
                false,
            )
            .await;
        }
    }
    let total = flood + live_sent;
    until("every message", || import.stats().received == total).await;
    let stats = import.stats();
    assert_eq!(stats.posted, total, "{stats:?}");
    assert!(stats.streams <= 64, "bounded: {stats:?}");
    assert!(stats.forgotten > 0, "counted: {stats:?}");
    assert_eq!(stats.streams + stats.forgotten, flood + 1, "{stats:?}");
    assert_eq!(stats.lost, 3, "only the live stream's gap: {stats:?}");
    let lost = lost.lock().unwrap().clone();
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(lost[0].origin.bridge().unwrap().to_string(), live);
}

async fn undecodable_messages_are_counted_and_reported_and_foreign_json_is_imported() {
    let server = NatsServer::start();
    let (_bridge, there, import, (seen, _s), peer) = order_import(&server).await;
    let (bad, _b) = record::<RemoteUndecodable>(&there);
    let senders = Arc::new(Mutex::new(Vec::new()));
    let s = senders.clone();
    let _all = there.observer::<herald::Wildcard>().inline(move |n| {
        if n.is::<OrderShipped>() {
            s.lock().unwrap().push(n.sender());
        }
    });
    let origin = "00000000000000000000000000000001";
    raw_publish(
        &peer,
        "shop.order.shipped",
        origin,
        1,
        "{\"id\":\"not a number\"}",
        false,
    )
    .await;
    raw_publish(&peer, "shop.order.shipped", origin, 2, "not json", false).await;
    // A plain NATS client publishing JSON, no herald headers.
    peer.publish("shop.order.shipped", "{\"id\":9}".into())
        .await
        .unwrap();
    until("three messages", || import.stats().received == 3).await;
    assert_eq!(len(&bad), 2);
    assert!(
        bad.lock()
            .unwrap()
            .iter()
            .all(|u| u.subject == "shop.order.shipped")
    );
    assert_eq!(*seen.lock().unwrap(), [OrderShipped { id: 9 }]);
    let foreign = Origin::of(senders.lock().unwrap()[0].unwrap()).unwrap();
    assert!(foreign.is_foreign());
    let stats = import.stats();
    assert_eq!((stats.posted, stats.undecodable, stats.lost), (1, 2, 0));
}

/// Sequence numbers are the sender's word: one past the range (here `u64::MAX`) is malformed
/// metadata, counted undecodable, and neither it nor an ordinary number after it from the same
/// origin stops the import or makes up a loss.
async fn a_sequence_number_past_the_range_is_undecodable_and_the_import_goes_on() {
    let server = NatsServer::start();
    let (_bridge, there, import, (seen, _s), peer) = order_import(&server).await;
    let (bad, _b) = record::<RemoteUndecodable>(&there);
    let origin = "00000000000000000000000000000abc";
    let subject = "shop.order.shipped";
    raw_publish(&peer, subject, origin, u64::MAX, "{\"id\":1}", false).await;
    raw_publish(&peer, subject, origin, 1, "{\"id\":2}", false).await;
    raw_publish(&peer, subject, origin, 2, "{\"id\":3}", false).await;
    // The same from a plain client: the import must still be alive to post it.
    peer.publish(subject, "{\"id\":4}".into()).await.unwrap();
    until("four messages", || import.stats().received == 4).await;
    until("the last one posted", || len(&seen) == 3).await;
    let ids: Vec<u64> = seen.lock().unwrap().iter().map(|n| n.id).collect();
    assert_eq!(ids, [2, 3, 4]);
    let stats = import.stats();
    assert_eq!(
        (stats.posted, stats.undecodable, stats.lost),
        (3, 1, 0),
        "{stats:?}"
    );
    assert_eq!(len(&bad), 1);
    assert!(bad.lock().unwrap()[0].error.contains("sequence number"));
}

async fn a_full_outbox_drops_counted_reports_them_and_importers_see_the_gap() {
    full_outbox_drops_counted(NatsBridge::builder(), 86..=90).await;
}

/// The same with batching on. Posts queue in the outbox until its task has looked (only the
/// first goes to the client at once), so at most one more is dropped than the outbox holds.
async fn with_batching_a_full_outbox_drops_counted_and_importers_see_the_gap() {
    full_outbox_drops_counted(NatsBridge::builder().batching(Batching::new()), 89..=90).await;
}

async fn full_outbox_drops_counted(
    builder: NatsBridgeBuilder,
    dropped_within: std::ops::RangeInclusive<u64>,
) {
    let server = NatsServer::start();
    let (
        a,
        _b,
        Pipe {
            here,
            there,
            export,
            import,
        },
    ) = pipe_from::<Numbered>(
        builder
            .client_capacity(4)
            .outbox_capacity(10)
            .heartbeat(Duration::from_millis(50)),
        &server.url(),
        &server,
    )
    .await;
    let (reports, _r) = record::<ExportDropped>(&here);
    let (seen, _s) = record::<Numbered>(&there);
    // On this single-threaded runtime neither the client's connection task nor the bridge's
    // publisher can run during the loop: the client's queue takes up to four (fewer if it
    // holds something of its own), the outbox ten, and the rest are dropped.
    for n in 0..100 {
        here.post(Numbered { sender: 0, n });
    }
    let dropped = export.dropped();
    assert!(dropped_within.contains(&dropped), "dropped {dropped}");
    until("the import's accounting", || {
        let s = import.stats();
        s.posted + s.lost == 100
    })
    .await;
    assert_eq!(len(&seen) as u64, 100 - dropped);
    // The ones that got through are the first ones, in order.
    let first: Vec<u64> = seen.lock().unwrap().iter().map(|n| n.n).collect();
    assert_eq!(first, (0..100 - dropped).collect::<Vec<_>>());
    until("the drop report", || reported_drops(&reports) == dropped).await;
    let m = a.metrics();
    assert_eq!(
        (m.exported, m.published, m.export_dropped),
        (100, 100 - dropped, dropped)
    );
}

async fn shutdown_sends_what_is_queued_then_closes() {
    let server = NatsServer::start();
    let (a, b) = (bridge(&server).await, bridge(&server).await);
    let Pipe {
        here,
        there: _there,
        export,
        import,
    } = pipe::<Numbered>(&a, &b).await;
    for n in 0..2_000 {
        here.post(Numbered { sender: 0, n });
    }
    a.shutdown().await.unwrap();
    assert_eq!(a.state(), ConnectionState::Closed);
    let m = a.metrics();
    assert_eq!((m.exported, m.published), (2_000, 2_000));
    until("everything", || import.stats().posted == 2_000).await;
    // After shutdown: refused, and a post is counted as dropped, not lost silently.
    here.post(Numbered {
        sender: 0,
        n: 2_000,
    });
    assert_eq!(export.dropped(), 1);
    let again = here
        .observer::<OrderShipped>()
        .forward(a.publish())
        .unwrap_err();
    assert!(again.is_closed());
    a.shutdown().await.unwrap(); // idempotent
}

/// With the server gone, `shutdown` still returns, within its timeout: what the client took is
/// counted published, what was still in the outbox is counted dropped and reported, and the
/// bridge is closed.
async fn shutdown_returns_within_its_timeout_when_the_server_is_gone() {
    let mut server = NatsServer::start();
    let a = NatsBridge::builder()
        .client_capacity(8)
        .shutdown_timeout(Duration::from_millis(300))
        .connect(&server.url())
        .await
        .unwrap();
    let here = NotificationCenter::new();
    let _export = here.observer::<Numbered>().forward(a.publish()).unwrap();
    let (reports, _r) = record::<ExportDropped>(&here);
    cut_and_wait(&a, || server.kill()).await;
    // More than the client's queue holds while nobody drains it: the rest waits in the outbox.
    for n in 0..100 {
        here.post(Numbered { sender: 0, n });
    }
    let err = tokio::time::timeout(nats_support::PATIENCE, a.shutdown())
        .await
        .expect("shutdown returns with the server gone")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
    assert_eq!(a.state(), ConnectionState::Closed);
    let m = a.metrics();
    assert_eq!(m.exported, 100);
    assert_eq!(m.published + m.export_dropped, 100, "{m:?}");
    assert!(m.export_dropped > 0, "the outbox held some: {m:?}");
    until("the drops reported", || {
        reported_drops(&reports) == m.export_dropped
    })
    .await;
    assert!(
        reports.lock().unwrap()[0].reason.contains("shut down"),
        "{:?}",
        reports.lock().unwrap()
    );
    a.shutdown().await.unwrap(); // idempotent
}

/// A bridge that never exported a notification owes importers no last heartbeat: with the
/// server gone, its shutdown does not wait for it (here a minute) and succeeds, as its
/// imports and unused exports lose nothing. (A push worker's bridge is one.)
async fn shutdown_without_anything_exported_does_not_wait_for_a_server_that_is_gone() {
    let mut server = NatsServer::start();
    let a = NatsBridge::builder()
        .shutdown_timeout(Duration::from_secs(60))
        .connect(&server.url())
        .await
        .unwrap();
    let here = NotificationCenter::new();
    let _unused = here.observer::<Numbered>().forward(a.publish()).unwrap();
    let _import = a.import::<OrderPlaced>(&here).await.unwrap();
    cut_and_wait(&a, || server.kill()).await;
    tokio::time::timeout(nats_support::PATIENCE, a.shutdown())
        .await
        .expect("shutdown does not wait out its minute")
        .unwrap();
    assert_eq!(a.state(), ConnectionState::Closed);
    assert_eq!(a.metrics().export_dropped, 0);
}

/// `connect` takes a comma-separated list of URLs and tries them in turn.
async fn a_list_of_urls_is_tried_in_turn() {
    let server = NatsServer::start();
    let a = NatsBridge::builder()
        .connection_timeout(Duration::from_secs(2))
        .connect(&format!("nats://127.0.0.1:1, {}", server.url()))
        .await
        .unwrap();
    assert_eq!(a.state(), ConnectionState::Connected);
    for bad in ["", "nats://127.0.0.1:1,,nats://127.0.0.1:2"] {
        let err = NatsBridge::connect(bad).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{bad:?}: {err}");
    }
}

async fn a_server_restart_is_survived_reported_and_losses_are_counted() {
    let mut server = NatsServer::start();
    let (a, b) = (bridge(&server).await, bridge(&server).await);
    let Pipe {
        here,
        there,
        export: _export,
        import,
    } = pipe::<Numbered>(&a, &b).await;
    let (changes, _c) = record::<ConnectionChanged>(&there);
    let (seen, _s) = record::<Numbered>(&there);
    here.post(Numbered { sender: 0, n: 0 });
    until("the first", || len(&seen) == 1).await;

    let mut states = cut_and_wait(&b, || server.kill()).await;
    // Posted while the server is down: queued or lost, never silently.
    for n in 1..500 {
        here.post(Numbered { sender: 0, n });
    }
    server.restart();
    nats_support::wait_for_state(&mut states, ConnectionState::Connected).await;
    until("the other bridge back", || {
        a.state() == ConnectionState::Connected
    })
    .await;
    // The client re-subscribed; a round trip makes sure the server has it.
    b.ping().await.unwrap();
    for n in 500..1_000 {
        here.post(Numbered { sender: 0, n });
    }
    until("every post seen or counted lost", || {
        let s = import.stats();
        s.posted + s.lost == 1_000
    })
    .await;
    let mut last = None;
    for n in seen.lock().unwrap().iter() {
        assert!(last < Some(n.n), "order kept across the restart");
        last = Some(n.n);
    }
    let states: Vec<_> = changes.lock().unwrap().iter().map(|c| c.state).collect();
    assert!(
        states.starts_with(&[ConnectionState::Disconnected, ConnectionState::Connected]),
        "{states:?}"
    );
    let (ma, mb) = (a.metrics(), b.metrics());
    assert!(mb.disconnects >= 1 && mb.reconnects >= 1, "{mb:?}");
    assert_eq!(ma.exported, 1_000);
    eprintln!(
        "restart: seen {}, lost {}, exporter dropped {}",
        import.stats().posted,
        import.stats().lost,
        ma.export_dropped
    );
}

async fn health_is_observable() {
    let server = NatsServer::start();
    let a = bridge(&server).await;
    assert_eq!(a.state(), ConnectionState::Connected);
    let rtt = a.ping().await.unwrap();
    assert!(rtt < nats_support::PATIENCE);
    let err = NatsBridge::builder()
        .connection_timeout(Duration::from_secs(2))
        .connect("nats://127.0.0.1:1")
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err}");
}

async fn exports_and_imports_keep_their_bridge_open() {
    let server = NatsServer::start();
    let (here, there) = (NotificationCenter::new(), NotificationCenter::new());
    // No handle to either bridge is kept: the guards are enough.
    let _export = here
        .observer::<OrderShipped>()
        .forward(bridge(&server).await.publish())
        .unwrap();
    let _import = bridge(&server)
        .await
        .import::<OrderShipped>(&there)
        .await
        .unwrap();
    let (seen, _s) = record::<OrderShipped>(&there);
    here.post(OrderShipped { id: 3 });
    until("the post", || len(&seen) == 1).await;
}

async fn replay_last_exports_the_last_local_value_once_and_never_a_remote_one() {
    let server = NatsServer::start();
    let (a, b, c, d) = (
        bridge(&server).await,
        bridge(&server).await,
        bridge(&server).await,
        bridge(&server).await,
    );
    // A local last value: exported once when the export starts.
    let (here, there) = (NotificationCenter::new(), NotificationCenter::new());
    here.retain_last::<OrderPlaced>();
    there.retain_last::<OrderPlaced>();
    let local = OrderPlaced {
        id: 1,
        item: "tea".into(),
    };
    here.post(local.clone());
    let _import = b.import::<OrderPlaced>(&there).await.unwrap();
    let (seen, _s) = record::<OrderPlaced>(&there);
    let _export = here
        .observer::<OrderPlaced>()
        .replay_last()
        .forward(a.publish())
        .unwrap();
    until("the replayed local value", || len(&seen) == 1).await;
    assert_eq!(seen.lock().unwrap()[0], local);

    // `there` now holds a remote last value (from `a`): replaying it to an export must not
    // send it on. A local post afterwards is the marker that the export works.
    let far = NotificationCenter::new();
    let _far_import = d.import::<OrderPlaced>(&far).await.unwrap();
    let (far_seen, _f) = record::<OrderPlaced>(&far);
    let _relay = there
        .observer::<OrderPlaced>()
        .replay_last()
        .forward(c.publish())
        .unwrap();
    let marker = OrderPlaced {
        id: 2,
        item: "marker".into(),
    };
    there.post(marker.clone());
    until("the marker", || len(&far_seen) >= 1).await;
    assert_eq!(*far_seen.lock().unwrap(), [marker]);
}

/// How many notifications the `ExportDropped` reports recorded so far say were dropped.
fn reported_drops(reports: &Mutex<Vec<ExportDropped>>) -> u64 {
    reports.lock().unwrap().iter().map(|r| r.dropped).sum()
}

fn main() {
    nats_support::main(
        "nats_bridge",
        vec![
            nats_support::test(
                "a_notification_posted_in_one_center_reaches_observers_of_another",
                a_notification_posted_in_one_center_reaches_observers_of_another,
            ),
            nats_support::test(
                "replay_last_exports_the_last_local_value_once_and_never_a_remote_one",
                replay_last_exports_the_last_local_value_once_and_never_a_remote_one,
            ),
            nats_support::test(
                "import_is_in_force_when_it_returns",
                import_is_in_force_when_it_returns,
            ),
            nats_support::test(
                "a_bridge_never_imports_what_it_exported",
                a_bridge_never_imports_what_it_exported,
            ),
            nats_support::test(
                "two_bridges_that_export_and_import_the_same_type_do_not_loop",
                two_bridges_that_export_and_import_the_same_type_do_not_loop,
            ),
            nats_support::test(
                "a_remote_notification_carries_its_origin_and_only_origin_filters_match_it",
                a_remote_notification_carries_its_origin_and_only_origin_filters_match_it,
            ),
            nats_support::test(
                "each_senders_posts_arrive_in_post_order",
                each_senders_posts_arrive_in_post_order,
            ),
            nats_support::multi(
                "order_survives_switching_between_the_direct_path_and_the_outbox",
                order_survives_switching_between_the_direct_path_and_the_outbox,
            ),
            nats_support::multi(
                "order_and_counts_survive_concurrent_posters_with_batching",
                order_and_counts_survive_concurrent_posters_with_batching,
            ),
            nats_support::test(
                "names_that_are_not_nats_subjects_are_refused_with_a_typed_error",
                names_that_are_not_nats_subjects_are_refused_with_a_typed_error,
            ),
            nats_support::test(
                "a_family_import_posts_registered_types_typed_and_other_names_type_erased",
                a_family_import_posts_registered_types_typed_and_other_names_type_erased,
            ),
            nats_support::test(
                "sequence_gaps_are_counted_and_posted_as_remote_lost",
                sequence_gaps_are_counted_and_posted_as_remote_lost,
            ),
            nats_support::test(
                "a_flood_of_new_origins_keeps_the_loss_tracking_bounded_and_exact_for_live_streams",
                a_flood_of_new_origins_keeps_the_loss_tracking_bounded_and_exact_for_live_streams,
            ),
            nats_support::test(
                "undecodable_messages_are_counted_and_reported_and_foreign_json_is_imported",
                undecodable_messages_are_counted_and_reported_and_foreign_json_is_imported,
            ),
            nats_support::test(
                "a_sequence_number_past_the_range_is_undecodable_and_the_import_goes_on",
                a_sequence_number_past_the_range_is_undecodable_and_the_import_goes_on,
            ),
            nats_support::test(
                "a_full_outbox_drops_counted_reports_them_and_importers_see_the_gap",
                a_full_outbox_drops_counted_reports_them_and_importers_see_the_gap,
            ),
            nats_support::test(
                "with_batching_a_full_outbox_drops_counted_and_importers_see_the_gap",
                with_batching_a_full_outbox_drops_counted_and_importers_see_the_gap,
            ),
            nats_support::test(
                "shutdown_sends_what_is_queued_then_closes",
                shutdown_sends_what_is_queued_then_closes,
            ),
            nats_support::test(
                "shutdown_returns_within_its_timeout_when_the_server_is_gone",
                shutdown_returns_within_its_timeout_when_the_server_is_gone,
            ),
            nats_support::test(
                "shutdown_without_anything_exported_does_not_wait_for_a_server_that_is_gone",
                shutdown_without_anything_exported_does_not_wait_for_a_server_that_is_gone,
            ),
            nats_support::test(
                "a_list_of_urls_is_tried_in_turn",
                a_list_of_urls_is_tried_in_turn,
            ),
            nats_support::test(
                "a_server_restart_is_survived_reported_and_losses_are_counted",
                a_server_restart_is_survived_reported_and_losses_are_counted,
            ),
            nats_support::test("health_is_observable", health_is_observable),
            nats_support::test(
                "exports_and_imports_keep_their_bridge_open",
                exports_and_imports_keep_their_bridge_open,
            ),
        ],
    )
}
