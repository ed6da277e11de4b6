//! Batching of exported notifications (`NatsBridgeBuilder::batching`, wire version 2) against
//! a real `nats-server` (see `tests/nats_support`): a batched export delivers everything in
//! order with exact counts to typed and family imports; batches never mix subjects or senders
//! and keep within their limits and the server's `max_payload` (none form before the first
//! connection, when it is not known yet); an importer reads each item of
//! a batch on its own (one bad item is one undecodable notification) and its loss accounting
//! is exact across batches and single messages, gaps and duplicates included; without
//! batching (the default) every notification is one message whose payload is its JSON.
//!
//! Most tests run on a current-thread runtime: a loop of posts cannot be interrupted by the
//! bridge's publishing task there, so the first post of a burst goes out on its own and the
//! rest wait in the outbox, and the batches they make are known exactly.
//!
//! Runs when `nats-server` is installed, reported ignored otherwise (failing instead with
//! `HERALD_REQUIRE_NATS=1`); see `tests/nats_support`.

mod nats_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use herald::nats::{
    Batching, NatsBridge, Origin, RemoteLost, RemoteNotification, RemoteUndecodable,
};
use herald::{Notification, NotificationCenter, SenderId};
use nats_support::{NatsServer, bridge, len, record, until};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Numbered {
    sender: u8,
    n: u64,
}
impl Notification for Numbered {
    fn name() -> &'static str {
        "batch.numbered"
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Other {
    n: u64,
}
impl Notification for Other {
    fn name() -> &'static str {
        "batch.other"
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Shipped {
    id: u64,
}
impl Notification for Shipped {
    fn name() -> &'static str {
        "batch.shipped"
    }
}

/// One message as a raw NATS subscriber sees it.
#[derive(Debug, Clone)]
struct Raw {
    subject: String,
    reply: String,
    payload: Vec<u8>,
}

impl Raw {
    /// The reply subject's version token.
    fn version(&self) -> &str {
        self.reply.split('.').nth(1).unwrap_or_default()
    }

    /// A batch's item count (the token after the first sequence number).
    fn count(&self) -> u64 {
        if self.version() == "2" {
            self.reply.split('.').nth(4).unwrap().parse().unwrap()
        } else {
            1
        }
    }

    /// A batch's sender flag, if any (`s<n>`).
    fn sender_flag(&self) -> Option<&str> {
        self.reply.split('.').skip(3).find(|t| t.starts_with('s'))
    }
}

/// A plain NATS client recording every message on `subject` (reply subjects included),
/// heartbeats left out (they come every 100 ms here).
async fn spy(server: &NatsServer, subject: &str) -> (Arc<Mutex<Vec<Raw>>>, async_nats::Client) {
    let client = async_nats::connect(server.url()).await.unwrap();
    let mut sub = client.subscribe(subject.to_owned()).await.unwrap();
    // A flush only empties the socket's buffer; a request the server answers itself ("no
    // responders") comes back after it processed the subscription.
    let answer = client.request("spy.ping", "".into()).await;
    assert!(
        matches!(&answer, Err(e) if e.kind() == async_nats::RequestErrorKind::NoResponders),
        "{answer:?}"
    );
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            if m.reply.as_ref().is_some_and(|r| r.ends_with(".hb")) {
                continue;
            }
            s.lock().unwrap().push(Raw {
                subject: m.subject.to_string(),
                reply: m.reply.map(|r| r.to_string()).unwrap_or_default(),
                payload: m.payload.to_vec(),
            });
        }
    });
    (seen, client)
}

async fn batching_bridge(server: &NatsServer, batching: Batching) -> NatsBridge {
    NatsBridge::builder()
        .batching(batching)
        .heartbeat(Duration::from_millis(100))
        .connect(&server.url())
        .await
        .unwrap()
}

async fn a_batched_export_delivers_everything_in_order_with_exact_counts() {
    let server = NatsServer::start();
    let a = batching_bridge(&server, Batching::new().max_items(100)).await;
    let b = bridge(&server).await;
    let (raw, _spy) = spy(&server, "batch.>").await;
    let here = NotificationCenter::new();
    let _export = here.observer::<Numbered>().forward(a.publish()).unwrap();
    // Three importers: typed, a family with the type registered, a family without it.
    let (typed_c, family_c, erased_c) = (
        NotificationCenter::new(),
        NotificationCenter::new(),
        NotificationCenter::new(),
    );
    let typed = b.import::<Numbered>(&typed_c).await.unwrap();
    let family = b
        .import_family("batch.", &family_c)
        .with::<Numbered>()
        .await
        .unwrap();
    let erased = b.import_family("batch.", &erased_c).await.unwrap();
    let (typed_seen, _t) = record::<Numbered>(&typed_c);
    let (family_seen, _f) = record::<Numbered>(&family_c);
    let (erased_seen, _e) = record::<RemoteNotification>(&erased_c);

    const N: u64 = 1_000;
    for n in 0..N {
        here.post(Numbered { sender: 0, n });
    }
    until("every notification in all three centers", || {
        len(&typed_seen) == N as usize
            && len(&family_seen) == N as usize
            && len(&erased_seen) == N as usize
    })
    .await;
    let want: Vec<u64> = (0..N).collect();
    let got =
        |v: &Arc<Mutex<Vec<Numbered>>>| v.lock().unwrap().iter().map(|x| x.n).collect::<Vec<u64>>();
    assert_eq!(got(&typed_seen), want, "typed import, in order");
    assert_eq!(got(&family_seen), want, "family import, typed, in order");
    let erased_ns: Vec<u64> = erased_seen
        .lock()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r.name(), "batch.numbered");
            assert_eq!(r.origin().bridge(), Some(a.id()));
            r.decode::<Numbered>().unwrap().n
        })
        .collect();
    assert_eq!(erased_ns, want, "family import, type-erased, in order");
    for import in [&typed, &family, &erased] {
        let s = import.stats();
        // Heartbeats (every 100 ms) are received too.
        assert_eq!(
            (s.received - s.heartbeats, s.posted, s.lost, s.undecodable),
            (N, N, 0, 0),
            "{}",
            import.subject()
        );
    }
    let m = a.metrics();
    assert_eq!(
        (m.exported, m.published, m.export_dropped),
        (N, N, 0),
        "the exporter counts notifications, not messages"
    );
    assert_eq!((m.batches, m.batched), (10, N - 1));
    // On the wire: the first post went out alone (version 1, plain JSON); the 999 that
    // queued behind it went in batches of at most 100.
    until("every message at the spy", || {
        raw.lock().unwrap().iter().map(Raw::count).sum::<u64>() == N
    })
    .await;
    let raw = raw.lock().unwrap().clone();
    let counts: Vec<u64> = raw.iter().map(Raw::count).collect();
    let mut want_counts = vec![1];
    want_counts.extend([100; 9]);
    want_counts.push(99);
    assert_eq!(counts, want_counts);
    assert_eq!(raw[0].version(), "1");
    assert_eq!(
        serde_json::from_slice::<Numbered>(&raw[0].payload).unwrap(),
        Numbered { sender: 0, n: 0 }
    );
    let mut first = 2;
    for m in &raw[1..] {
        assert_eq!(m.version(), "2", "{}", m.reply);
        assert_eq!(m.subject, "batch.numbered");
        let seq: u64 = m.reply.split('.').nth(3).unwrap().parse().unwrap();
        assert_eq!(
            seq, first,
            "a batch's first sequence number follows the last"
        );
        first += m.count();
    }
}

async fn batches_keep_within_the_servers_max_payload() {
    // The server accepts at most 1 KiB per message; the bridge asks for 64 KiB batches.
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("max_payload.conf");
    std::fs::write(&conf, "max_payload: 1024\n").unwrap();
    let server = NatsServer::start_with(&["-c", conf.to_str().unwrap()]);
    let a = batching_bridge(&server, Batching::new()).await;
    assert_eq!(a.client().max_payload(), 1024);
    let b = bridge(&server).await;
    let (raw, _spy) = spy(&server, "batch.>").await;
    let here = NotificationCenter::new();
    let there = NotificationCenter::new();
    let _export = here.observer::<Numbered>().forward(a.publish()).unwrap();
    let import = b.import::<Numbered>(&there).await.unwrap();
    let (seen, _s) = record::<Numbered>(&there);
    const N: u64 = 500;
    for n in 0..N {
        here.post(Numbered { sender: 0, n });
    }
    until("every notification", || len(&seen) == N as usize).await;
    assert_eq!(import.stats().lost, 0);
    assert_eq!(a.metrics().export_dropped, 0, "no batch was refused");
    until("every message at the spy", || {
        raw.lock().unwrap().iter().map(Raw::count).sum::<u64>() == N
    })
    .await;
    let raw = raw.lock().unwrap();
    assert!(raw.len() > 10, "batches, and small ones: {}", raw.len());
    for m in raw.iter() {
        assert!(
            m.payload.len() <= 1024,
            "{} bytes: {}",
            m.payload.len(),
            m.reply
        );
    }
    // The batches fill up to the limit (an item takes about 24 bytes).
    let fullest = raw.iter().map(|m| m.payload.len()).max().unwrap();
    assert!(fullest > 1024 - 30, "fullest batch {fullest} bytes");
}

/// Before its first connection a bridge does not know the server's `max_payload`: what is
/// exported meanwhile (`retry_initial_connect`) goes out one notification to a message, not in
/// batches the server might refuse (which would cost the connection and what it carried).
async fn exports_before_the_first_connection_are_not_batched_past_the_servers_max_payload() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("max_payload.conf");
    std::fs::write(&conf, "max_payload: 1024\n").unwrap();
    let mut server = NatsServer::start_with(&["-c", conf.to_str().unwrap()]);
    server.kill();
    let a = NatsBridge::builder()
        .batching(Batching::new())
        .retry_initial_connect(true)
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(100))
        .heartbeat(Duration::from_millis(100))
        .connect(&server.url())
        .await
        .unwrap();
    let here = NotificationCenter::new();
    let _export = here.observer::<Numbered>().forward(a.publish()).unwrap();
    const N: u64 = 200; // about 24 bytes each: far more than 1 KiB together
    for n in 0..N {
        here.post(Numbered { sender: 0, n });
    }
    let server = tokio::task::spawn_blocking(move || {
        server.restart();
        server
    })
    .await
    .unwrap();
    until("connected", || {
        a.state() == herald::nats::ConnectionState::Connected
    })
    .await;
    a.ping().await.unwrap();
    let m = a.metrics();
    assert_eq!((m.exported, m.published, m.batches), (N, N, 0), "{m:?}");
    assert_eq!(m.disconnects, 0, "the server kept the connection: {m:?}");
    // Once connected, batches form again, within the server's limit.
    let b = bridge(&server).await;
    let there = NotificationCenter::new();
    let import = b.import::<Numbered>(&there).await.unwrap();
    for n in N..N + 200 {
        here.post(Numbered { sender: 0, n });
    }
    until("the second burst", || import.stats().posted == 200).await;
    assert_eq!(import.stats().lost, 0);
    assert!(a.metrics().batches > 0, "{:?}", a.metrics());
}

async fn batches_never_mix_senders_or_subjects_and_keep_each_items_origin() {
    let server = NatsServer::start();
    let a = batching_bridge(&server, Batching::new()).await;
    let b = bridge(&server).await;
    let (raw, _spy) = spy(&server, "batch.>").await;
    let here = NotificationCenter::new();
    let there = NotificationCenter::new();
    let _e1 = here.observer::<Numbered>().forward(a.publish()).unwrap();
    let _e2 = here.observer::<Other>().forward(a.publish()).unwrap();
    let _import = b
        .import_family("batch.", &there)
        .with::<Numbered>()
        .with::<Other>()
        .await
        .unwrap();
    // Every arrival, in order: (subject name, n, the origin's remote sender).
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let log = arrivals.clone();
    let exporter = a.id();
    let _all = there.observer::<herald::Wildcard>().inline(move |any| {
        let origin = Origin::of(any.sender().unwrap()).unwrap();
        let remote = origin.remote_sender().map(SenderId::as_raw);
        let entry = if let Some(x) = any.downcast_ref::<Numbered>() {
            ("numbered", x.n, remote)
        } else if let Some(x) = any.downcast_ref::<Other>() {
            ("other", x.n, remote)
        } else {
            return;
        };
        assert_eq!(origin.bridge(), Some(exporter));
        log.lock().unwrap().push(entry);
    });
    // The script: runs of one subject and sender, switching.
    let (s1, s2) = (SenderId::from_raw(1), SenderId::from_raw(2));
    let mut script: Vec<(&str, u64, Option<u64>)> = Vec::new();
    let mut n = 0;
    for (subject, sender, run) in [
        ("numbered", None, 1), // goes out alone: the outbox was idle
        ("numbered", Some(s1), 3),
        ("numbered", Some(s2), 2),
        ("numbered", None, 4),
        ("other", None, 3),
        ("numbered", None, 2),
        ("numbered", Some(s1), 1),
        ("other", Some(s1), 2),
    ] {
        for _ in 0..run {
            let _ = match (subject, sender) {
                ("numbered", Some(s)) => here.post_from(s, Numbered { sender: 0, n }),
                ("numbered", None) => here.post(Numbered { sender: 0, n }),
                (_, Some(s)) => here.post_from(s, Other { n }),
                (_, None) => here.post(Other { n }),
            };
            script.push((subject, n, sender.map(SenderId::as_raw)));
            n += 1;
        }
    }
    until("every notification", || len(&arrivals) == script.len()).await;
    assert_eq!(
        *arrivals.lock().unwrap(),
        script,
        "order, subjects and senders"
    );
    until("every message at the spy", || {
        raw.lock().unwrap().iter().map(Raw::count).sum::<u64>() == script.len() as u64
    })
    .await;
    let raw = raw.lock().unwrap();
    let shape: Vec<(&str, u64, Option<&str>)> = raw
        .iter()
        .map(|m| (m.subject.as_str(), m.count(), m.sender_flag()))
        .collect();
    assert_eq!(
        shape,
        [
            ("batch.numbered", 1, None),
            ("batch.numbered", 3, Some("s1")),
            ("batch.numbered", 2, Some("s2")),
            ("batch.numbered", 4, None),
            ("batch.other", 3, None),
            ("batch.numbered", 2, None),
            ("batch.numbered", 1, Some("s1")),
            ("batch.other", 2, Some("s1")),
        ]
    );
    // A run of one is a plain version 1 message; longer runs are batches.
    for m in raw.iter() {
        assert_eq!(m.version(), if m.count() == 1 { "1" } else { "2" });
    }
}

/// Publishes a batch by hand, as a peer would: `items` framed as netstrings, under the reply
/// subject `_HERALD.2.<origin>.<first>.<count>`.
async fn publish_batch(
    client: &async_nats::Client,
    origin: &str,
    first: u64,
    count: u64,
    payload: Vec<u8>,
) {
    client
        .publish_with_reply(
            "batch.shipped",
            format!("_HERALD.2.{origin}.{first}.{count}"),
            payload.into(),
        )
        .await
        .unwrap();
}

fn frames(items: &[&str]) -> Vec<u8> {
    let mut v = Vec::new();
    for item in items {
        v.extend_from_slice(format!("{}:{item},", item.len()).as_bytes());
    }
    v
}

async fn publish_single(client: &async_nats::Client, origin: &str, seq: u64, payload: &str) {
    client
        .publish_with_reply(
            "batch.shipped",
            format!("_HERALD.1.{origin}.{seq}"),
            payload.to_owned().into(),
        )
        .await
        .unwrap();
}

async fn one_bad_item_of_a_batch_is_one_undecodable_notification_and_the_rest_arrive() {
    let server = NatsServer::start();
    let b = bridge(&server).await;
    let (typed_c, erased_c) = (NotificationCenter::new(), NotificationCenter::new());
    let typed = b.import::<Shipped>(&typed_c).await.unwrap();
    let erased = b.import_family("batch.", &erased_c).await.unwrap();
    let (seen, _s) = record::<Shipped>(&typed_c);
    let (bad, _b) = record::<RemoteUndecodable>(&typed_c);
    let (erased_seen, _e) = record::<RemoteNotification>(&erased_c);
    let (erased_bad, _eb) = record::<RemoteUndecodable>(&erased_c);
    let peer = async_nats::connect(server.url()).await.unwrap();
    let origin = "00000000000000000000000000000001";
    // Items 1..=3: the middle one is JSON but not a `Shipped`.
    publish_batch(
        &peer,
        origin,
        1,
        3,
        frames(&["{\"id\":1}", "{\"id\":\"two\"}", "{\"id\":3}"]),
    )
    .await;
    // Items 4..=6: one good item, then the framing breaks: the two after it are unreadable.
    let mut broken = frames(&["{\"id\":4}"]);
    broken.extend_from_slice(b"99:{\"id\":5},");
    publish_batch(&peer, origin, 4, 3, broken).await;
    // Items 7..=8, then bytes that are no item: one more undecodable.
    let mut trailing = frames(&["{\"id\":7}", "{\"id\":8}"]);
    trailing.extend_from_slice(b"junk");
    publish_batch(&peer, origin, 7, 2, trailing).await;
    // Item 9: not JSON at all.
    publish_batch(&peer, origin, 9, 1, frames(&["not json"])).await;
    publish_single(&peer, origin, 10, "{\"id\":10}").await;
    until("everything at the typed import", || {
        typed.stats().received == 11
    })
    .await;
    until("everything at the family import", || {
        erased.stats().received == 11
    })
    .await;
    let ids: Vec<u64> = seen.lock().unwrap().iter().map(|s| s.id).collect();
    assert_eq!(ids, [1, 3, 4, 7, 8, 10]);
    let s = typed.stats();
    assert_eq!((s.posted, s.undecodable, s.lost), (6, 5, 0), "{s:?}");
    assert_eq!(len(&bad), 5);
    let errors: Vec<String> = bad
        .lock()
        .unwrap()
        .iter()
        .map(|u| u.error.clone())
        .collect();
    assert!(errors[1].contains("framing"), "{errors:?}");
    assert!(errors[3].contains("after the batch"), "{errors:?}");
    assert!(
        bad.lock()
            .unwrap()
            .iter()
            .all(|u| u.origin.bridge().unwrap().to_string() == origin)
    );
    // The type-erased path: any JSON is a notification; the broken framing, the trailing
    // bytes and the non-JSON item are not.
    let erased_ids: Vec<String> = erased_seen
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.json().to_owned())
        .collect();
    assert_eq!(
        erased_ids,
        [
            "{\"id\":1}",
            "{\"id\":\"two\"}",
            "{\"id\":3}",
            "{\"id\":4}",
            "{\"id\":7}",
            "{\"id\":8}",
            "{\"id\":10}"
        ]
    );
    let s = erased.stats();
    assert_eq!((s.posted, s.undecodable, s.lost), (7, 4, 0), "{s:?}");
    assert_eq!(len(&erased_bad), 4);
}

async fn a_batch_claiming_more_items_than_its_payload_holds_is_one_undecodable_message() {
    // The count is the sender's word: an importer must not loop over a trillion items of a
    // nine-byte payload, nor take a trillion sequence numbers from it.
    let server = NatsServer::start();
    let b = bridge(&server).await;
    let center = NotificationCenter::new();
    let import = b.import::<Shipped>(&center).await.unwrap();
    let (seen, _s) = record::<Shipped>(&center);
    let (bad, _b) = record::<RemoteUndecodable>(&center);
    let peer = async_nats::connect(server.url()).await.unwrap();
    let origin = "00000000000000000000000000000003";
    publish_batch(&peer, origin, 1, 1_000_000_000_000, frames(&["{\"id\":1}"])).await;
    publish_single(&peer, origin, 2, "{\"id\":2}").await;
    until("both messages at the import", || {
        import.stats().received == 2
    })
    .await;
    let ids: Vec<u64> = seen.lock().unwrap().iter().map(|s| s.id).collect();
    assert_eq!(ids, [2]);
    let s = import.stats();
    assert_eq!((s.posted, s.undecodable, s.lost), (1, 1, 0), "{s:?}");
    let errors: Vec<String> = bad
        .lock()
        .unwrap()
        .iter()
        .map(|u| u.error.clone())
        .collect();
    assert!(errors[0].contains("1000000000000 items"), "{errors:?}");
}

async fn loss_accounting_is_exact_across_batches_singles_gaps_and_duplicates() {
    let server = NatsServer::start();
    let b = bridge(&server).await;
    let there = NotificationCenter::new();
    let import = b.import::<Shipped>(&there).await.unwrap();
    let (seen, _s) = record::<Shipped>(&there);
    let (lost, _l) = record::<RemoteLost>(&there);
    let peer = async_nats::connect(server.url()).await.unwrap();
    let origin = "0123456789abcdef0123456789abcdef";
    let items = |range: std::ops::RangeInclusive<u64>| {
        let json: Vec<String> = range.map(|id| format!("{{\"id\":{id}}}")).collect();
        frames(&json.iter().map(String::as_str).collect::<Vec<_>>())
    };
    // Sent: 1..=15. 5..=6 (between batches) and the batch 10..=12 go missing, the batch
    // 7..=8 arrives twice, and 14..=15 at the tail are only known from the heartbeat.
    publish_single(&peer, origin, 1, "{\"id\":1}").await;
    publish_batch(&peer, origin, 2, 3, items(2..=4)).await;
    publish_batch(&peer, origin, 7, 2, items(7..=8)).await;
    publish_single(&peer, origin, 9, "{\"id\":9}").await;
    publish_batch(&peer, origin, 7, 2, items(7..=8)).await;
    publish_single(&peer, origin, 13, "{\"id\":13}").await;
    peer.publish_with_reply(
        "batch.shipped",
        format!("_HERALD.1.{origin}.15.hb"),
        "".into(),
    )
    .await
    .unwrap();
    until("the heartbeat", || import.stats().heartbeats == 1).await;
    let ids: Vec<u64> = seen.lock().unwrap().iter().map(|s| s.id).collect();
    assert_eq!(ids, [1, 2, 3, 4, 7, 8, 9, 7, 8, 13]);
    let reports: Vec<u64> = lost.lock().unwrap().iter().map(|l| l.lost).collect();
    assert_eq!(reports, [2, 3, 2], "5..=6, 10..=12, 14..=15");
    let s = import.stats();
    assert_eq!((s.posted, s.lost, s.undecodable), (10, 7, 0));
    let unique: std::collections::BTreeSet<u64> = ids.into_iter().collect();
    assert_eq!(unique.len() as u64 + s.lost, 15, "seen + lost == sent");
    assert_eq!(b.metrics().lost, 7);
}

async fn without_batching_every_notification_is_one_plain_json_message() {
    let server = NatsServer::start();
    let a = bridge(&server).await;
    let (raw, _spy) = spy(&server, "batch.>").await;
    let here = NotificationCenter::new();
    let _export = here.observer::<Numbered>().forward(a.publish()).unwrap();
    // A burst that a batching bridge would batch (see the first test).
    const N: u64 = 300;
    for n in 0..N {
        here.post(Numbered { sender: 1, n });
    }
    until("every message at the spy", || len(&raw) == N as usize).await;
    assert_eq!((a.metrics().batches, a.metrics().batched), (0, 0));
    for (n, m) in raw.lock().unwrap().iter().enumerate() {
        let want = serde_json::to_vec(&Numbered {
            sender: 1,
            n: n as u64,
        })
        .unwrap();
        assert_eq!(
            m.payload, want,
            "the payload is the JSON, nothing around it"
        );
        assert_eq!(m.version(), "1", "{}", m.reply);
        assert_eq!(m.subject, "batch.numbered");
    }
}

/// Three threads post while the client's queue holds four messages: posts keep switching
/// between the direct hand-off, the outbox and batches; every sender's order must survive.
async fn shutdown_sends_queued_notifications_in_batches() {
    let server = NatsServer::start();
    let a = batching_bridge(&server, Batching::new()).await;
    let b = bridge(&server).await;
    let (here, there) = (NotificationCenter::new(), NotificationCenter::new());
    let _export = here.observer::<Numbered>().forward(a.publish()).unwrap();
    let import = b.import::<Numbered>(&there).await.unwrap();
    let (seen, _s) = record::<Numbered>(&there);
    for n in 0..200 {
        here.post(Numbered { sender: 0, n });
    }
    a.shutdown().await.unwrap();
    until("everything queued before shutdown", || len(&seen) == 200).await;
    assert_eq!(a.metrics().published, 200);
    assert_eq!(import.stats().lost, 0);
}

/// Serializes only when `n % 5 != 3`: the others take a sequence number and are dropped.
#[derive(Debug, Clone, Deserialize)]
struct Picky {
    n: u64,
}
impl Notification for Picky {
    fn name() -> &'static str {
        "batch.picky"
    }
}
impl Serialize for Picky {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.n % 5 == 3 {
            return Err(serde::ser::Error::custom("not this one"));
        }
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Picky", 1)?;
        st.serialize_field("n", &self.n)?;
        st.end()
    }
}

async fn a_dropped_notification_ends_a_batch_so_importers_count_it_lost() {
    // Unserializable notifications use up their sequence numbers without being queued: the
    // queued ones around them are not consecutive, and a batch must not claim the gap.
    let server = NatsServer::start();
    let a = batching_bridge(&server, Batching::new()).await;
    let b = bridge(&server).await;
    let (raw, _spy) = spy(&server, "batch.>").await;
    let (here, there) = (NotificationCenter::new(), NotificationCenter::new());
    let _export = here.observer::<Picky>().forward(a.publish()).unwrap();
    let import = b.import::<Picky>(&there).await.unwrap();
    let (lost, _l) = record::<RemoteLost>(&there);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let _obs = there.observe(move |p: &Picky| s.lock().unwrap().push(p.n));
    const N: u64 = 50;
    for n in 0..N {
        here.post(Picky { n });
    }
    let sent: Vec<u64> = (0..N).filter(|n| n % 5 != 3).collect();
    // The last number sent (49) is not a dropped one: no heartbeat needed for the tail.
    until("every serializable notification", || {
        len(&seen) == sent.len()
    })
    .await;
    assert_eq!(*seen.lock().unwrap(), sent);
    until("the import's accounting", || {
        let s = import.stats();
        s.posted + s.lost == N
    })
    .await;
    assert_eq!(import.stats().lost, N / 5, "exactly the dropped ones");
    // Each gap is seen where it is (the next message), not later at a heartbeat.
    let reports: Vec<u64> = lost.lock().unwrap().iter().map(|l| l.lost).collect();
    assert_eq!(reports, [1; 10]);
    let m = a.metrics();
    assert_eq!((m.exported, m.export_dropped), (N, N / 5));
    // Batches of the runs between drops: 0 alone, then 1..=2, 4..=7, 9..=12, ...
    until("every message at the spy", || {
        raw.lock().unwrap().iter().map(Raw::count).sum::<u64>() == sent.len() as u64
    })
    .await;
    let counts: Vec<u64> = raw.lock().unwrap().iter().map(Raw::count).collect();
    let mut want = vec![1, 2];
    want.extend([4; 9]);
    want.push(1);
    assert_eq!(counts, want);
}

fn main() {
    nats_support::main(
        "nats_batching",
        vec![
            nats_support::test(
                "a_batched_export_delivers_everything_in_order_with_exact_counts",
                a_batched_export_delivers_everything_in_order_with_exact_counts,
            ),
            nats_support::test(
                "batches_keep_within_the_servers_max_payload",
                batches_keep_within_the_servers_max_payload,
            ),
            nats_support::test(
                "exports_before_the_first_connection_are_not_batched_past_the_servers_max_payload",
                exports_before_the_first_connection_are_not_batched_past_the_servers_max_payload,
            ),
            nats_support::test(
                "batches_never_mix_senders_or_subjects_and_keep_each_items_origin",
                batches_never_mix_senders_or_subjects_and_keep_each_items_origin,
            ),
            nats_support::test(
                "one_bad_item_of_a_batch_is_one_undecodable_notification_and_the_rest_arrive",
                one_bad_item_of_a_batch_is_one_undecodable_notification_and_the_rest_arrive,
            ),
            nats_support::test(
                "a_batch_claiming_more_items_than_its_payload_holds_is_one_undecodable_message",
                a_batch_claiming_more_items_than_its_payload_holds_is_one_undecodable_message,
            ),
            nats_support::test(
                "loss_accounting_is_exact_across_batches_singles_gaps_and_duplicates",
                loss_accounting_is_exact_across_batches_singles_gaps_and_duplicates,
            ),
            nats_support::test(
                "without_batching_every_notification_is_one_plain_json_message",
                without_batching_every_notification_is_one_plain_json_message,
            ),
            nats_support::test(
                "a_dropped_notification_ends_a_batch_so_importers_count_it_lost",
                a_dropped_notification_ends_a_batch_so_importers_count_it_lost,
            ),
            nats_support::test(
                "shutdown_sends_queued_notifications_in_batches",
                shutdown_sends_queued_notifications_in_batches,
            ),
        ],
    )
}
