//! NATS from the outside: black-box tests written from the issue alone.
//!
//! An independent audit of the NATS support (feature `nats`), written from issue 10, the README
//! ("When one process is not enough") and the docs of `herald::nats`: black-box tests against a
//! real `nats-server` (started by `tests/nats_support`), each asserting one behaviour a user
//! relies on and that the other `tests/nats_*.rs` files do not already pin down. The audit's
//! tests that found bugs moved, once fixed, to the file of the part they test
//! (`nats_bridge.rs`, `nats_security.rs`, `nats_push.rs`, `nats_workers.rs`).
//!
//! Runs when `nats-server` is installed, reported ignored otherwise (a failure with
//! `HERALD_REQUIRE_NATS=1`, as `.ci/run` sets), like the other NATS test files.
#![cfg(feature = "nats")]
#![allow(clippy::unwrap_used)]

#[path = "nats_support/mod.rs"]
mod nats_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald::nats::{
    Batching, ConnectionChanged, ConnectionState, ErrorKind, ExportDropped, NatsBridge, Origin,
    RemoteLost, RemoteNotification, RemoteUndecodable,
};
use herald::{Notification, NotificationCenter, SenderId};
use nats_support::{
    Link, NatsServer, PATIENCE, Pipe, bridge, cut_and_wait, len, pipe, pipe_from, record, until,
};
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------------
// Types and helpers.

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Note {
    id: u64,
    text: String,
}
impl Notification for Note {
    fn name() -> &'static str {
        "audit.note"
    }
}

/// A notification whose serialization fails for the value 13 (and only for it).
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Picky(u64);
impl Serialize for Picky {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 == 13 {
            Err(serde::ser::Error::custom("13 cannot be serialized"))
        } else {
            s.serialize_u64(self.0)
        }
    }
}
impl Notification for Picky {
    fn name() -> &'static str {
        "audit.picky"
    }
}

fn note(id: u64) -> Note {
    Note {
        id,
        text: format!("note {id}"),
    }
}

/// Records the senders of every `N` a center receives (wildcard observer).
fn senders_of<N: Notification>(
    center: &NotificationCenter,
) -> (Arc<Mutex<Vec<Option<SenderId>>>>, herald::Subscription) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let sub = center.observer::<herald::Wildcard>().inline(move |n| {
        if n.is::<N>() {
            s.lock().unwrap().push(n.sender());
        }
    });
    (seen, sub)
}

/// The ids of the notes recorded, in order.
fn note_ids(seen: &Mutex<Vec<Note>>) -> Vec<u64> {
    seen.lock().unwrap().iter().map(|n| n.id).collect()
}

/// A bridge to `server` importing `Note` into a new center.
async fn note_import(
    server: &NatsServer,
) -> (NatsBridge, NotificationCenter, herald::nats::Import) {
    let b = bridge(server).await;
    let there = NotificationCenter::new();
    let import = b.import::<Note>(&there).await.unwrap();
    (b, there, import)
}

/// A plain NATS client (not a bridge) to `server`.
async fn plain_client(server: &NatsServer) -> async_nats::Client {
    async_nats::connect(server.url()).await.unwrap()
}

/// Publishes one raw message on `subject` with `reply` as its reply subject.
async fn raw(client: &async_nats::Client, subject: &str, reply: Option<&str>, payload: &[u8]) {
    let payload = bytes::Bytes::copy_from_slice(payload);
    match reply {
        Some(r) => client
            .publish_with_reply(subject.to_owned(), r.to_owned(), payload)
            .await
            .unwrap(),
        None => client.publish(subject.to_owned(), payload).await.unwrap(),
    }
}

// ---------------------------------------------------------------------------------------------
// The same subscription API across processes: typed, with sender and name.

/// The subject prefix applies to exports and imports alike; a typed import gets the value with
/// its origin (bridge and remote sender); a family import posts other names type-erased under
/// the notification's own name (without the prefix); an importer without the prefix sees
/// nothing.
async fn a_subject_prefix_applies_to_both_ends_and_erased_names_are_the_notification_names() {
    let server = NatsServer::start();
    let prefixed = || {
        NatsBridge::builder()
            .subject_prefix("acme.")
            .heartbeat(Duration::from_millis(100))
    };
    let a = prefixed().connect(&server.url()).await.unwrap();
    let b = prefixed().connect(&server.url()).await.unwrap();
    let bare = bridge(&server).await;
    let (here, typed_c, family_c, bare_c) = (
        NotificationCenter::new(),
        NotificationCenter::new(),
        NotificationCenter::new(),
        NotificationCenter::new(),
    );
    let export = here.observer::<Note>().forward(a.publish()).unwrap();
    assert_eq!(export.subject(), "acme.audit.note");
    let typed = b.import::<Note>(&typed_c).await.unwrap();
    assert_eq!(typed.subject(), "acme.audit.note");
    let family = b.import_family("audit.", &family_c).await.unwrap();
    assert_eq!(family.subject(), "acme.audit.>");
    let unprefixed = bare.import::<Note>(&bare_c).await.unwrap();
    let (seen, _s1) = record::<Note>(&typed_c);
    let (senders, _s2) = senders_of::<Note>(&typed_c);
    let (erased, _s3) = record::<RemoteNotification>(&family_c);

    let kitchen = SenderId::from_raw(5);
    here.post_from(kitchen, note(1));
    until("the typed and the erased copy", || {
        len(&seen) == 1 && len(&erased) == 1
    })
    .await;
    assert_eq!(seen.lock().unwrap()[0], note(1));
    let origin = Origin::of(senders.lock().unwrap()[0].unwrap()).unwrap();
    assert_eq!(origin, Origin::new(a.id(), Some(kitchen)));
    let r = erased.lock().unwrap()[0].clone();
    assert_eq!(
        r.name(),
        "audit.note",
        "the notification's name, not the subject"
    );
    assert_eq!(r.decode::<Note>().unwrap(), note(1));
    assert_eq!(*r.origin(), origin);

    bare.ping().await.unwrap();
    a.ping().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        unprefixed.stats().received,
        0,
        "another prefix is another namespace"
    );
}

/// Three bridges: A exports; B imports and exports the same type from the same center (a
/// would-be relay); C imports. C gets A's notification exactly once (never relayed by B),
/// and B's own post once.
async fn a_bridge_that_imports_and_exports_a_type_never_relays_it_to_a_third() {
    let server = NatsServer::start();
    let (a, b, c) = (
        bridge(&server).await,
        bridge(&server).await,
        bridge(&server).await,
    );
    let (ca, cb, cc) = (
        NotificationCenter::new(),
        NotificationCenter::new(),
        NotificationCenter::new(),
    );
    let _ea = ca.observer::<Note>().forward(a.publish()).unwrap();
    let _ib = b.import::<Note>(&cb).await.unwrap();
    let _eb = cb.observer::<Note>().forward(b.publish()).unwrap();
    let ic = c.import::<Note>(&cc).await.unwrap();
    let (at_b, _s1) = record::<Note>(&cb);
    let (at_c, _s2) = record::<Note>(&cc);
    let (senders, _s3) = senders_of::<Note>(&cc);

    ca.post(note(1));
    until("B has A's note", || len(&at_b) == 1).await;
    cb.post(note(2));
    until("C has both", || len(&at_c) >= 2).await;
    for x in [&a, &b, &c] {
        x.ping().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ids: Vec<u64> = at_c.lock().unwrap().iter().map(|n| n.id).collect();
    assert_eq!(ids, [1, 2], "exactly one copy of each, none relayed");
    let origins: Vec<_> = senders
        .lock()
        .unwrap()
        .iter()
        .map(|s| Origin::of(s.unwrap()).unwrap().bridge())
        .collect();
    assert_eq!(origins, [Some(a.id()), Some(b.id())]);
    assert_eq!(b.metrics().not_reexported, 1);
    assert_eq!(b.metrics().published, 1);
    assert_eq!((ic.stats().posted, ic.stats().lost), (2, 0));
}

/// Dropping an import unsubscribes: later notifications are not posted into its center.
async fn dropping_an_import_stops_posting() {
    let server = NatsServer::start();
    let (a, b) = (bridge(&server).await, bridge(&server).await);
    let Pipe {
        here,
        there,
        export: _e,
        import,
    } = pipe::<Note>(&a, &b).await;
    let (seen, _s) = record::<Note>(&there);
    here.post(note(1));
    until("the first", || len(&seen) == 1).await;
    drop(import);
    b.ping().await.unwrap();
    here.post(note(2));
    a.ping().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(len(&seen), 1);
}

// ---------------------------------------------------------------------------------------------
// Disconnects and unreachable servers.

/// The exporter loses its connection (the server stays up, the importer stays subscribed):
/// what it posts meanwhile waits (nothing dropped) and arrives, in order, once it reconnects;
/// connection changes are posted into the exporting center and counted.
async fn exports_posted_while_disconnected_wait_and_arrive_in_order_after_reconnect() {
    let server = NatsServer::start();
    let link = Link::start(server.port(), true).await;
    let (
        a,
        _b,
        Pipe {
            here,
            there,
            export,
            import,
        },
    ) = pipe_from::<Note>(
        NatsBridge::builder()
            .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
            .heartbeat(Duration::from_millis(100)),
        &link.url(),
        &server,
    )
    .await;
    let (seen, _s) = record::<Note>(&there);
    let (changes, _c) = record::<ConnectionChanged>(&here);
    here.post(note(0));
    until("the first", || len(&seen) == 1).await;

    let mut states = cut_and_wait(&a, || link.cut()).await;
    for id in 1..=100 {
        here.post(note(id));
    }
    assert_eq!(export.dropped(), 0, "they wait, they are not dropped");
    link.restore();
    nats_support::wait_for_state(&mut states, ConnectionState::Connected).await;
    until("every post", || len(&seen) == 101).await;
    let ids = note_ids(&seen);
    assert_eq!(ids, (0..=100).collect::<Vec<_>>());
    assert_eq!(import.stats().lost, 0);
    let m = a.metrics();
    assert!(m.disconnects >= 1 && m.reconnects >= 1, "{m:?}");
    assert_eq!((m.exported, m.export_dropped), (101, 0));
    let states: Vec<_> = changes.lock().unwrap().iter().map(|c| c.state).collect();
    assert!(
        states.starts_with(&[ConnectionState::Disconnected, ConnectionState::Connected]),
        "{states:?}"
    );
    assert!(changes.lock().unwrap().iter().all(|c| c.bridge == a.id()));
}

/// `retry_initial_connect(true)`: the bridge is returned at once while the server is
/// unreachable, reports `Disconnected`, and what is exported meanwhile goes out, in order,
/// once the first connection is made.
async fn with_retry_initial_connect_exports_wait_for_the_first_connection() {
    let server = NatsServer::start();
    let link = Link::start(server.port(), false).await;
    let a = tokio::time::timeout(
        PATIENCE,
        NatsBridge::builder()
            .retry_initial_connect(true)
            .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
            .connect(&link.url()),
    )
    .await
    .expect("returns at once")
    .unwrap();
    assert_eq!(a.state(), ConnectionState::Disconnected);
    let b = bridge(&server).await;
    let Pipe {
        here,
        there,
        export: _e,
        import,
    } = pipe::<Note>(&a, &b).await;
    let (seen, _s) = record::<Note>(&there);
    for id in 0..20 {
        here.post(note(id));
    }
    link.restore();
    until("every post", || len(&seen) == 20).await;
    let ids = note_ids(&seen);
    assert_eq!(ids, (0..20).collect::<Vec<_>>());
    assert_eq!(import.stats().lost, 0);
    until("connected", || a.state() == ConnectionState::Connected).await;
}

/// A URL the client cannot use is a configuration error (`ErrorKind::Config`: "a bad URL").
async fn a_bad_url_is_a_config_error() {
    for url in ["nats://127.0.0.1:notaport", "http://127.0.0.1:4222"] {
        let err = NatsBridge::builder()
            .connection_timeout(Duration::from_secs(2))
            .connect(url)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{url}: {err}");
    }
}

/// A credentials file that cannot be read is a configuration error.
async fn an_unreadable_credentials_file_is_a_config_error() {
    let err = NatsBridge::builder()
        .credentials_file("/nonexistent/audit/user.creds")
        .connect("nats://127.0.0.1:1")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
}

// ---------------------------------------------------------------------------------------------
// Secrets.

/// A connected bridge's Debug (and its builder's) never shows its credentials.
async fn a_connected_bridge_debug_shows_no_secret() {
    let server = NatsServer::start_with(&["--user", "herald", "--pass", "dbg-pw-42"]);
    let builder = NatsBridge::builder().user_password("herald", "dbg-pw-42");
    assert!(!format!("{builder:?}").contains("dbg-pw-42"));
    let b = builder.connect(&server.url()).await.unwrap();
    assert!(!format!("{b:?}").contains("dbg-pw-42"), "{b:?}");
    assert!(!format!("{:?}", b.publish()).contains("dbg-pw-42"));
}

// ---------------------------------------------------------------------------------------------
// Counters and typed reports.

/// A notification that cannot be serialized is counted dropped, reported as `ExportDropped`
/// (with the reason), keeps its sequence number, and importers see it as one `RemoteLost`:
/// `posted + lost == sent`.
async fn an_unserializable_export_is_dropped_reported_and_seen_as_a_gap() {
    let server = NatsServer::start();
    let (a, b) = (bridge(&server).await, bridge(&server).await);
    let Pipe {
        here,
        there,
        export,
        import,
    } = pipe::<Picky>(&a, &b).await;
    let (reports, _r) = record::<ExportDropped>(&here);
    let (seen, _s) = record::<Picky>(&there);
    let (lost, _l) = record::<RemoteLost>(&there);
    for n in 1..=20 {
        here.post(Picky(n));
    }
    until("every notification accounted for", || {
        let s = import.stats();
        s.posted + s.lost == 20
    })
    .await;
    assert_eq!(len(&seen), 19);
    assert!(!seen.lock().unwrap().contains(&Picky(13)));
    assert_eq!(export.dropped(), 1);
    until("the drop report", || len(&reports) == 1).await;
    let report = reports.lock().unwrap()[0].clone();
    assert_eq!(
        (report.subject.as_str(), report.dropped),
        ("audit.picky", 1)
    );
    assert!(report.reason.contains("serializ"), "{}", report.reason);
    let lost = lost.lock().unwrap().clone();
    assert_eq!(lost.len(), 1);
    assert_eq!((lost[0].lost, lost[0].origin.bridge()), (1, Some(a.id())));
    let m = a.metrics();
    assert_eq!((m.exported, m.published, m.export_dropped), (20, 19, 1));
}

/// A notification larger than the server accepts is refused by the client: counted dropped,
/// reported as `ExportDropped`, seen by importers as one `RemoteLost`; the next ones arrive.
/// The same with batching (a lone item too large for any batch).
async fn a_notification_larger_than_the_server_accepts_is_dropped_reported_and_seen_lost() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("max_payload.conf");
    std::fs::write(&conf, "max_payload: 1024\n").unwrap();
    let server = NatsServer::start_with(&["-c", conf.to_str().unwrap()]);
    for batching in [None, Some(Batching::new())] {
        let mut builder = NatsBridge::builder().heartbeat(Duration::from_millis(100));
        if let Some(b) = batching {
            builder = builder.batching(b);
        }
        let (
            a,
            _b,
            Pipe {
                here,
                there,
                export,
                import,
            },
        ) = pipe_from::<Note>(builder, &server.url(), &server).await;
        let (seen, _s) = record::<Note>(&there);
        let (reports, _r) = record::<ExportDropped>(&here);
        let (lost, _l) = record::<RemoteLost>(&there);
        here.post(note(1));
        here.post(Note {
            id: 2,
            text: "x".repeat(4_000),
        });
        here.post(note(3));
        until("accounted for", || {
            let s = import.stats();
            s.posted + s.lost == 3
        })
        .await;
        let ids = note_ids(&seen);
        assert_eq!(ids, [1, 3], "batching {batching:?}");
        assert_eq!(export.dropped(), 1);
        until("the report", || len(&reports) == 1).await;
        assert_eq!(lost.lock().unwrap().iter().map(|l| l.lost).sum::<u64>(), 1);
        let m = a.metrics();
        assert_eq!(
            (m.exported, m.published, m.export_dropped),
            (3, 2, 1),
            "{m:?}"
        );
    }
}

/// After shutdown: a post is dropped and reported as `ExportDropped`, the state change is
/// posted as `ConnectionChanged(Closed)`, and new imports are refused with `Closed`.
async fn after_shutdown_posts_are_reported_dropped_and_imports_refused() {
    let server = NatsServer::start();
    let a = bridge(&server).await;
    let here = NotificationCenter::new();
    let export = here.observer::<Note>().forward(a.publish()).unwrap();
    let (reports, _r) = record::<ExportDropped>(&here);
    let (changes, _c) = record::<ConnectionChanged>(&here);
    a.shutdown().await.unwrap();
    until("the close reported", || {
        changes
            .lock()
            .unwrap()
            .iter()
            .any(|c| c.state == ConnectionState::Closed)
    })
    .await;
    here.post(note(1));
    assert_eq!(export.dropped(), 1);
    until("the drop reported", || len(&reports) == 1).await;
    assert_eq!(reports.lock().unwrap()[0].dropped, 1);
    let err = a.import::<Note>(&here).await.unwrap_err();
    assert!(err.is_closed(), "{err}");
    let err = a.import_family("audit.", &here).await.unwrap_err();
    assert!(err.is_closed(), "{err}");
    let m = a.metrics();
    assert_eq!((m.exported, m.export_dropped), (1, 1));
}

// ---------------------------------------------------------------------------------------------
// Malformed and foreign messages.

/// Malformed herald metadata (unknown version, bad origin, bad sequence number, bad sender,
/// impossible batch count) is one typed, counted rejection each and never crashes the import;
/// unknown flags are ignored; a foreign request (an inbox reply subject) is imported as
/// foreign; and the import's books balance (`received == posted + undecodable + echoes +
/// heartbeats`).
async fn malformed_metadata_is_rejected_typed_and_counted_and_the_import_goes_on() {
    let server = NatsServer::start();
    let (b, there, import) = note_import(&server).await;
    let (seen, _s) = record::<Note>(&there);
    let (bad, _b) = record::<RemoteUndecodable>(&there);
    let (senders, _o) = senders_of::<Note>(&there);
    let peer = plain_client(&server).await;
    let origin = "0123456789abcdef0123456789abcdef";
    let good = serde_json::to_vec(&note(9)).unwrap();
    let subject = "audit.note";
    for reply in [
        format!("_HERALD.9.{origin}.1"),
        "_HERALD.1.nothex.1".to_owned(),
        format!("_HERALD.1.{origin}.abc"),
        format!("_HERALD.1.{origin}.1.s12x"),
        format!("_HERALD.2.{origin}.1.0"),
    ] {
        raw(&peer, subject, Some(&reply), &good).await;
    }
    // A batch of 500 items in a few bytes.
    raw(
        &peer,
        subject,
        Some(&format!("_HERALD.2.{origin}.1.500")),
        b"1:1,",
    )
    .await;
    // Not UTF-8, from a plain client.
    raw(&peer, subject, None, &[0xff, 0xfe, 0x00]).await;
    // A heartbeat with a flag of a later version: ignored flag, baseline 1.
    raw(
        &peer,
        subject,
        Some(&format!("_HERALD.1.{origin}.1.hb.later-flag")),
        b"",
    )
    .await;
    // A foreign request: its reply subject is an inbox.
    raw(&peer, subject, Some("_INBOX.foreign.1"), &good).await;
    // A good herald message right after the heartbeat's number.
    raw(
        &peer,
        subject,
        Some(&format!("_HERALD.1.{origin}.2")),
        &good,
    )
    .await;
    until("ten messages", || import.stats().received == 10).await;
    let s = import.stats();
    assert_eq!(
        (s.posted, s.undecodable, s.heartbeats, s.lost, s.echoes),
        (2, 7, 1, 0, 0),
        "{s:?}"
    );
    assert_eq!(
        s.received,
        s.posted + s.undecodable + s.echoes + s.heartbeats
    );
    assert_eq!(len(&bad), 7);
    assert!(bad.lock().unwrap().iter().all(|u| u.subject == subject));
    assert_eq!(*seen.lock().unwrap(), [note(9), note(9)]);
    let origins: Vec<Origin> = senders
        .lock()
        .unwrap()
        .iter()
        .map(|s| Origin::of(s.unwrap()).unwrap())
        .collect();
    assert!(origins[0].is_foreign());
    assert_eq!(origins[1].bridge().unwrap().to_string(), origin);
    let m = b.metrics();
    assert_eq!((m.imported, m.undecodable), (2, 7));
}

/// A family import receiving non-JSON under a name with no registered type counts it
/// undecodable (nothing is posted) and goes on.
async fn a_family_import_counts_non_json_under_an_untyped_name_undecodable() {
    let server = NatsServer::start();
    let b = bridge(&server).await;
    let there = NotificationCenter::new();
    let import = b.import_family("audit.", &there).await.unwrap();
    let (erased, _e) = record::<RemoteNotification>(&there);
    let (bad, _b) = record::<RemoteUndecodable>(&there);
    let peer = plain_client(&server).await;
    raw(&peer, "audit.x.y", None, b"not json at all").await;
    raw(&peer, "audit.x.z", None, b"{\"ok\":true}").await;
    until("two messages", || import.stats().received == 2).await;
    until("reports", || len(&bad) == 1 && len(&erased) == 1).await;
    assert_eq!(bad.lock().unwrap()[0].subject, "audit.x.y");
    let r = erased.lock().unwrap()[0].clone();
    assert_eq!((r.name(), r.json()), ("audit.x.z", "{\"ok\":true}"));
    assert!(r.origin().is_foreign());
}

// ---------------------------------------------------------------------------------------------
// Batching (wire version 2).

/// With batching, values whose JSON holds netstring-like text (digits, `:` and `,`), quotes,
/// backslashes, non-ASCII and long strings round-trip exactly and in order, whether they went
/// out in batches or alone (larger than `max_bytes`), to typed and to erased imports.
async fn batched_values_round_trip_exactly_whatever_their_text() {
    let server = NatsServer::start();
    let a = NatsBridge::builder()
        .batching(Batching::new().max_bytes(600).max_items(50))
        .heartbeat(Duration::from_millis(100))
        .connect(&server.url())
        .await
        .unwrap();
    let b = bridge(&server).await;
    let (here, typed_c, family_c) = (
        NotificationCenter::new(),
        NotificationCenter::new(),
        NotificationCenter::new(),
    );
    let _e = here.observer::<Note>().forward(a.publish()).unwrap();
    let typed = b.import::<Note>(&typed_c).await.unwrap();
    let family = b.import_family("audit.", &family_c).await.unwrap();
    let (seen, _s) = record::<Note>(&typed_c);
    let (erased, _r) = record::<RemoteNotification>(&family_c);
    let texts = [
        String::new(),
        "3:abc,".to_owned(),
        "10:{\"id\":1},".to_owned(),
        ",,,:::".to_owned(),
        "quote \" backslash \\ tab \t newline \n".to_owned(),
        "héllo wörld 日本語 🚀".to_owned(),
        "x".repeat(2_000),
        "0:,".to_owned(),
    ];
    let sent: Vec<Note> = (0..400u64)
        .map(|id| Note {
            id,
            text: texts[id as usize % texts.len()].clone(),
        })
        .collect();
    for n in &sent {
        here.post(n.clone());
    }
    until("every note, typed and erased", || {
        len(&seen) == sent.len() && len(&erased) == sent.len()
    })
    .await;
    assert_eq!(*seen.lock().unwrap(), sent);
    let decoded: Vec<Note> = erased
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.decode::<Note>().unwrap())
        .collect();
    assert_eq!(decoded, sent);
    let m = a.metrics();
    assert!(m.batches > 0, "{m:?}");
    assert_eq!(m.published, 400);
    for s in [typed.stats(), family.stats()] {
        assert_eq!((s.posted, s.lost, s.undecodable), (400, 0, 0), "{s:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Loss is never silent; what is exported.

/// An import too slow for its traffic: the client drops messages (its queue of
/// `import_capacity` is full); the drops are counted (`slow_consumers`), posted as
/// `RemoteLost`, and `posted + lost == sent`; what arrives is in order.
async fn a_slow_import_loses_counted_and_reported_never_silently() {
    let server = NatsServer::start();
    let a = bridge(&server).await;
    let b = NatsBridge::builder()
        .import_capacity(4)
        .heartbeat(Duration::from_millis(100))
        .connect(&server.url())
        .await
        .unwrap();
    let Pipe {
        here,
        there,
        export: _e,
        import,
    } = pipe::<Note>(&a, &b).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let _slow = there.observe(move |n: &Note| {
        std::thread::sleep(Duration::from_millis(2));
        s.lock().unwrap().push(n.id);
    });
    let (lost, _l) = record::<RemoteLost>(&there);
    const SENT: u64 = 500;
    for id in 0..SENT {
        here.post(note(id));
    }
    until("every note posted or counted lost", || {
        let s = import.stats();
        s.posted + s.lost == SENT
    })
    .await;
    let stats = import.stats();
    assert!(
        stats.lost > 0,
        "the test did not overflow the import: {stats:?}"
    );
    assert_eq!(
        lost.lock().unwrap().iter().map(|l| l.lost).sum::<u64>(),
        stats.lost
    );
    assert!(b.metrics().slow_consumers >= 1, "{:?}", b.metrics());
    let ids = seen.lock().unwrap().clone();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "order kept");
}

/// An export limited to one sender (`.sender(x)`, Apple's `object:`) sends only that sender's
/// posts, and importers count no false gap for the posts it left out.
async fn an_export_for_one_sender_sends_only_its_posts_without_false_gaps() {
    let server = NatsServer::start();
    let (a, b) = (bridge(&server).await, bridge(&server).await);
    let (here, there) = (NotificationCenter::new(), NotificationCenter::new());
    let (x, y) = (SenderId::new(), SenderId::new());
    let _e = here
        .observer::<Note>()
        .sender(x)
        .forward(a.publish())
        .unwrap();
    let import = b.import::<Note>(&there).await.unwrap();
    let (seen, _s) = record::<Note>(&there);
    let (senders, _o) = senders_of::<Note>(&there);
    for id in 0..20 {
        here.post_from(x, note(id));
        here.post_from(y, note(1000 + id));
        here.post(note(2000 + id));
    }
    until("x's posts", || len(&seen) == 20).await;
    let hb = import.stats().heartbeats;
    until("a heartbeat after them", || {
        import.stats().heartbeats > hb + 1
    })
    .await;
    let ids = note_ids(&seen);
    assert_eq!(ids, (0..20).collect::<Vec<_>>());
    let s = import.stats();
    assert_eq!((s.posted, s.lost), (20, 0), "{s:?}");
    let origin = Origin::of(senders.lock().unwrap()[0].unwrap()).unwrap();
    assert_eq!(origin.remote_sender(), Some(x));
    assert_eq!(a.metrics().exported, 20);
}

/// Dropping an export stops exporting, but what it already queued is still sent.
async fn dropping_an_export_still_sends_what_it_queued() {
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
    ) = pipe_from::<Note>(
        NatsBridge::builder().client_capacity(4),
        &server.url(),
        &server,
    )
    .await;
    let (seen, _s) = record::<Note>(&there);
    // On this current-thread runtime nothing is published during the loop beyond the
    // client's queue: the rest waits in the outbox.
    for id in 0..50 {
        here.post(note(id));
    }
    drop(export);
    here.post(note(999)); // not exported any more
    until("everything queued", || len(&seen) == 50).await;
    a.ping().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ids = note_ids(&seen);
    assert_eq!(ids, (0..50).collect::<Vec<_>>());
    assert_eq!(import.stats().lost, 0);
    let m = a.metrics();
    assert_eq!((m.exported, m.published, m.export_dropped), (50, 50, 0));
}

/// A message that carries the importing bridge's own origin is an echo: dropped and counted,
/// never posted.
async fn a_message_with_the_importers_own_origin_is_counted_as_an_echo_not_posted() {
    let server = NatsServer::start();
    let (b, there, import) = note_import(&server).await;
    let (seen, _s) = record::<Note>(&there);
    let peer = plain_client(&server).await;
    let good = serde_json::to_vec(&note(1)).unwrap();
    raw(
        &peer,
        "audit.note",
        Some(&format!("_HERALD.1.{}.1", b.id())),
        &good,
    )
    .await;
    raw(&peer, "audit.note", None, &good).await; // a marker from a plain client
    until("both", || import.stats().received == 2).await;
    let s = import.stats();
    assert_eq!((s.echoes, s.posted), (1, 1), "{s:?}");
    assert_eq!(len(&seen), 1);
    assert_eq!(b.metrics().echoes, 1);
}

// ---------------------------------------------------------------------------------------------
// Push fan-out over workers.

#[cfg(all(feature = "bridge", feature = "mock"))]
mod push {
    use super::*;
    use crate::nats_support::push::{
        BUNDLE, client_of, mock_apns, push_queue, quick_bridge, start_worker, token,
    };
    use herald::apns::{ApnsClient, Payload, Push, PushOutcome};
    use herald::bridge::PushDispatch;
    use herald::mock::{Latency, MockApns};
    use herald::nats::{
        NatsKvStore, NatsPushQueue, OutcomeImport, PushQueueConfig, PushWorker, RemotePushOutcome,
        RemoteResult,
    };
    use std::net::TcpListener;
    use std::process::{Child, Command, Stdio};
    use std::time::Instant;

    /// A `nats-server` without JetStream, killed on drop.
    struct PlainServer {
        child: Child,
        port: u16,
    }

    impl PlainServer {
        fn start() -> PlainServer {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let child = Command::new(nats_support::server_binary())
                .args(["-a", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let deadline = Instant::now() + PATIENCE;
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "plain nats-server not ready");
                std::thread::sleep(Duration::from_millis(20));
            }
            PlainServer { child, port }
        }

        fn url(&self) -> String {
            format!("nats://127.0.0.1:{}", self.port)
        }
    }

    impl Drop for PlainServer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// A worker stopped gracefully while it holds pushes finishes them (send, report, ack);
    /// a new worker takes the rest: every push is sent to APNs exactly once and its dispatch
    /// resolves to exactly one outcome, and nothing is redelivered (even after `ack_wait`).
    pub(super) async fn each_push_is_sent_once_with_one_outcome_across_a_graceful_worker_restart() {
        let server = NatsServer::start();
        let mock = MockApns::builder()
            .accept_unknown_tokens(true)
            .latency(Latency::Fixed(Duration::from_millis(40)))
            .start()
            .await
            .unwrap();
        let config = PushQueueConfig::default()
            .ack_wait(Duration::from_secs(1))
            .outcome_timeout(Duration::from_secs(25));
        let (_posting, queue) = push_queue(&server, config.clone()).await;
        let (_wb1, first) = start_worker(
            &server,
            PushWorker::builder(client_of(&mock))
                .config(config.clone())
                .concurrency(4)
                .name("first"),
        )
        .await;

        const N: u32 = 40;
        let mut ids = Vec::new();
        let mut waits = Vec::new();
        for n in 0..N {
            let push = Push::builder(token(n), BUNDLE)
                .payload(&Payload::alert(format!("push {n}")))
                .unwrap()
                .build()
                .unwrap();
            ids.push(push.apns_id().to_owned());
            waits.push(tokio::spawn(queue.dispatch(push, None)));
        }
        until("some pushes sent by the first worker", || {
            mock.pushes().len() >= 8
        })
        .await;
        first.shutdown().await;
        let m1 = first.metrics();
        assert_eq!(m1.in_flight, 0, "{m1:?}");
        assert_eq!(m1.acked, m1.received, "what it held was finished: {m1:?}");
        let (_wb2, second) = start_worker(
            &server,
            PushWorker::builder(client_of(&mock))
                .config(config)
                .concurrency(4)
                .name("second"),
        )
        .await;
        let mut outcomes = Vec::new();
        for w in waits {
            outcomes.push(
                tokio::time::timeout(PATIENCE, w)
                    .await
                    .expect("an outcome for every push")
                    .unwrap(),
            );
        }
        for (o, id) in outcomes.iter().zip(&ids) {
            assert!(
                matches!(o, PushOutcome::Accepted(a) if a.apns_id == *id),
                "{id}: {o:?}"
            );
        }
        // Longer than ack_wait: a job left unacknowledged would have come back by now.
        tokio::time::sleep(Duration::from_millis(1_800)).await;
        for id in &ids {
            assert_eq!(mock.accepted_count(id), 1, "{id} sent more than once");
        }
        assert_eq!(mock.pushes().len(), N as usize);
        let m2 = second.metrics();
        assert_eq!(m2.redelivered, 0, "{m2:?}");
        assert_eq!(m1.received + m2.received, u64::from(N));
        let q = queue.metrics();
        assert_eq!(
            (q.enqueued, q.outcomes, q.waiting),
            (u64::from(N), u64::from(N), 0)
        );
        second.shutdown().await;
    }

    /// A job that decodes but is not a valid push gets exactly one failed outcome whose error
    /// kind is the `apns::ErrorKind` name (`InvalidPush`), without reaching APNs; a job of an
    /// unknown schema version is terminated, counted, never redelivered and gets no outcome.
    pub(super) async fn invalid_jobs_get_a_typed_failed_outcome_and_unknown_versions_are_terminated()
     {
        let server = NatsServer::start();
        let mock = mock_apns().await;
        let config = PushQueueConfig::default().ack_wait(Duration::from_millis(500));
        let keeper_bridge = quick_bridge(&server).await;
        let keeper = NotificationCenter::new();
        let (seen, _s) = record::<RemotePushOutcome>(&keeper);
        let import = OutcomeImport::start(&keeper_bridge, &config, "audit-keeper", &keeper)
            .await
            .unwrap();
        let js = async_nats::jetstream::new(keeper_bridge.client().clone());
        let publish = |id: &str, body: serde_json::Value| {
            let js = js.clone();
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", id);
            async move {
                js.publish_with_headers("herald.push.job", headers, body.to_string().into())
                    .await
                    .unwrap()
                    .await
                    .unwrap();
            }
        };
        let bad_priority = "4a1b6f1e-0000-4000-8000-000000000001";
        publish(
            bad_priority,
            serde_json::json!({
                "v": 1, "apns_id": bad_priority, "token": token(1), "topic": BUNDLE,
                "push_type": "alert", "priority": 7, "collapse_id": bad_priority,
                "payload": "{\"aps\":{}}", "enqueued_ms": 1
            }),
        )
        .await;
        let future_version = "4a1b6f1e-0000-4000-8000-000000000002";
        publish(
            future_version,
            serde_json::json!({
                "v": 2, "apns_id": future_version, "token": token(2), "topic": BUNDLE,
                "push_type": "alert", "priority": 10, "collapse_id": future_version,
                "payload": "{\"aps\":{}}", "enqueued_ms": 1
            }),
        )
        .await;
        let (_wb, worker) = start_worker(
            &server,
            PushWorker::builder(client_of(&mock))
                .config(config)
                .name("auditor"),
        )
        .await;
        until("the failed outcome imported", || {
            import.stats().imported == 1
        })
        .await;
        let o = seen.lock().unwrap()[0].clone();
        assert_eq!(o.apns_id, bad_priority);
        assert_eq!((o.worker.as_str(), o.delivery), ("auditor", 1));
        match &o.result {
            RemoteResult::Failed { kind, .. } => assert_eq!(kind, "InvalidPush"),
            other => panic!("expected a failed outcome, got {other:?}"),
        }
        until("both jobs settled", || {
            let m = worker.metrics();
            m.acked == 1 && m.undecodable == 1
        })
        .await;
        // Longer than ack_wait: neither job comes back.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let m = worker.metrics();
        assert_eq!((m.received, m.redelivered, m.failed), (2, 0, 1), "{m:?}");
        assert_eq!(import.stats().imported, 1);
        assert!(mock.pushes().is_empty());
        worker.shutdown().await;
    }

    /// A push sent through the work queue reaches APNs exactly as the same push sent
    /// directly: token, topic, apns-id, collapse id, priority, push type, expiration and
    /// payload bytes.
    pub(super) async fn a_queued_push_reaches_apns_with_the_same_headers_and_body_as_a_direct_send()
    {
        use herald::apns::{Expiration, Priority, PushType};
        let server = NatsServer::start();
        let mock = mock_apns().await;
        let (_posting, queue) = push_queue(&server, PushQueueConfig::default()).await;
        let (_wb, worker) = start_worker(&server, PushWorker::builder(client_of(&mock))).await;
        let push = Push::builder(token(77), BUNDLE)
            .push_type(PushType::Background)
            .priority(Priority::PowerAware)
            .expiration(Expiration::At(
                std::time::UNIX_EPOCH + Duration::from_secs(1_900_000_000),
            ))
            .collapse_id("order-42")
            .raw_payload(br#"{"aps":{"content-available":1},"k":"v \u00e9 \"q\""}"#.to_vec())
            .build()
            .unwrap();
        let direct = client_of(&mock).send(push.clone()).await;
        assert!(direct.is_accepted(), "{direct:?}");
        let queued = tokio::time::timeout(PATIENCE, queue.dispatch(push.clone(), None))
            .await
            .unwrap();
        assert!(queued.is_accepted(), "{queued:?}");
        let pushes = mock.pushes();
        assert_eq!(pushes.len(), 2);
        let view = |i: usize| {
            let p = &pushes[i];
            let mut h: Vec<(String, String)> = p
                .headers
                .iter()
                .filter(|(k, _)| k != "authorization")
                .cloned()
                .collect();
            h.sort();
            (p.path.clone(), h, p.body.clone())
        };
        assert_eq!(view(1), view(0), "queued vs direct");
        worker.shutdown().await;
    }

    /// Outcome imports: different names each get every outcome; a shared name shares them
    /// (each outcome once in all); a new name starts with the outcomes reported after it
    /// started; a record of an unknown schema version is counted, not posted.
    pub(super) async fn outcome_imports_by_name_each_get_all_or_share_and_start_from_now() {
        let server = NatsServer::start();
        let b = quick_bridge(&server).await;
        let config = PushQueueConfig::default();
        let centers: Vec<NotificationCenter> = (0..5).map(|_| NotificationCenter::new()).collect();
        let mut recs = Vec::new();
        let mut subs = Vec::new();
        for c in &centers {
            let (r, s) = record::<RemotePushOutcome>(c);
            recs.push(r);
            subs.push(s);
        }
        let k1 = OutcomeImport::start(&b, &config, "keeper-one", &centers[0])
            .await
            .unwrap();
        let k2 = OutcomeImport::start(&b, &config, "keeper-two", &centers[1])
            .await
            .unwrap();
        let s1 = OutcomeImport::start(&b, &config, "shared", &centers[2])
            .await
            .unwrap();
        let s2 = OutcomeImport::start(&b, &config, "shared", &centers[3])
            .await
            .unwrap();
        let js = async_nats::jetstream::new(b.client().clone());
        let publish = |id: String, v: u32| {
            let js = js.clone();
            async move {
                let body = serde_json::json!({
                    "v": v, "apns_id": id, "token": token(1), "topic": BUNDLE,
                    "result": "accepted", "worker": "w", "delivery": 1, "at_ms": 1
                });
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Nats-Msg-Id", id.as_str());
                js.publish_with_headers("herald.push.outcome", headers, body.to_string().into())
                    .await
                    .unwrap()
                    .await
                    .unwrap();
            }
        };
        for i in 0..10 {
            publish(format!("00000000-0000-4000-8000-{i:012}"), 1).await;
        }
        publish("00000000-0000-4000-8000-999999999999".into(), 2).await;
        until("every outcome where it belongs", || {
            k1.stats().imported == 10
                && k2.stats().imported == 10
                && s1.stats().imported + s2.stats().imported == 10
                && k1.stats().undecodable == 1
        })
        .await;
        let late = OutcomeImport::start(&b, &config, "late", &centers[4])
            .await
            .unwrap();
        publish("00000000-0000-4000-8000-000000000100".into(), 1).await;
        until("the late one's first", || late.stats().imported == 1).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            late.stats().imported,
            1,
            "starts with what is reported from then on"
        );
        assert_eq!(k1.stats().imported, 11);
        assert_eq!(
            s1.stats().imported + s2.stats().imported,
            11,
            "shared, each once"
        );
        assert_eq!(len(&recs[2]) + len(&recs[3]), 11);
        assert_eq!(len(&recs[0]), 11);
        let mut ids: Vec<String> = recs[2]
            .lock()
            .unwrap()
            .iter()
            .chain(recs[3].lock().unwrap().iter())
            .map(|o| o.apns_id.clone())
            .collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 11);
    }

    /// A send that takes longer than `ack_wait` is kept the worker's own (progress
    /// acknowledgements): the push is not redelivered to another worker, so it is sent once.
    pub(super) async fn a_send_slower_than_ack_wait_is_not_redelivered() {
        let server = NatsServer::start();
        let mock = MockApns::builder()
            .accept_unknown_tokens(true)
            .latency(Latency::Fixed(Duration::from_millis(1_500)))
            .start()
            .await
            .unwrap();
        let config = PushQueueConfig::default().ack_wait(Duration::from_millis(600));
        let (_posting, queue) = push_queue(&server, config.clone()).await;
        let mut workers = Vec::new();
        let mut bridges = Vec::new();
        for name in ["w1", "w2"] {
            let (wb, worker) = start_worker(
                &server,
                PushWorker::builder(client_of(&mock))
                    .config(config.clone())
                    .name(name),
            )
            .await;
            workers.push(worker);
            bridges.push(wb);
        }
        let push = Push::builder(token(9), BUNDLE)
            .payload(&Payload::alert("slow"))
            .unwrap()
            .build()
            .unwrap();
        let id = push.apns_id().to_owned();
        let outcome = tokio::time::timeout(PATIENCE, queue.dispatch(push, None))
            .await
            .unwrap();
        assert!(outcome.is_accepted(), "{outcome:?}");
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        assert_eq!(mock.accepted_count(&id), 1, "sent more than once");
        let redelivered: u64 = workers.iter().map(|w| w.metrics().redelivered).sum();
        assert_eq!(redelivered, 0);
        for w in &workers {
            w.shutdown().await;
        }
    }

    /// The KV store's synchronous calls work from inside a current-thread runtime (no
    /// deadlock): a registry on it registers and reads back.
    pub(super) async fn the_kv_store_works_from_a_current_thread_runtime() {
        use herald::bridge::{Device, DeviceRegistry, Environment};
        let server = NatsServer::start();
        let store = NatsKvStore::connect(&server.url(), "audit_ct")
            .await
            .unwrap();
        let registry = DeviceRegistry::with_store(store);
        registry
            .register(Device::new("dora", token(5), BUNDLE, Environment::Sandbox))
            .unwrap();
        let devices = registry.devices("dora").unwrap();
        assert_eq!(devices.len(), 1);
        assert_eq!(devices[0].token, token(5));
        let other = DeviceRegistry::with_store(
            NatsKvStore::connect(&server.url(), "audit_ct")
                .await
                .unwrap(),
        );
        assert_eq!(
            other.devices("dora").unwrap().len(),
            1,
            "one registry for all"
        );
    }

    /// Without JetStream on the server, the queue, the worker, the outcome import and the KV
    /// store each fail at start with `ErrorKind::JetStream` (typed, not a hang).
    pub(super) async fn without_jetstream_every_jetstream_user_fails_typed() {
        let server = PlainServer::start();
        let b = tokio::time::timeout(PATIENCE, NatsBridge::connect(&server.url()))
            .await
            .unwrap()
            .unwrap();
        let config = PushQueueConfig::default();
        let err = tokio::time::timeout(PATIENCE, NatsPushQueue::start(&b, config.clone()))
            .await
            .expect("no hang")
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::JetStream, "{err}");
        let worker =
            PushWorker::builder(ApnsClient::builder().build().unwrap()).config(config.clone());
        let err = tokio::time::timeout(PATIENCE, worker.start(&b))
            .await
            .expect("no hang")
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::JetStream, "{err}");
        let center = NotificationCenter::new();
        let err = tokio::time::timeout(PATIENCE, OutcomeImport::start(&b, &config, "x", &center))
            .await
            .expect("no hang")
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::JetStream, "{err}");
        let err = tokio::time::timeout(PATIENCE, NatsKvStore::connect(&server.url(), "audit"))
            .await
            .expect("no hang")
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::JetStream, "{err}");
    }

    /// A bucket name that is not letters, digits, `_` or `-` is refused, typed.
    pub(super) async fn a_bad_bucket_name_is_refused_typed() {
        for bucket in ["", "a.b", "with space", "x*"] {
            let err = NatsKvStore::connect("nats://127.0.0.1:1", bucket)
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidName, "{bucket:?}: {err}");
        }
    }
}

fn main() {
    #[allow(unused_mut)]
    let mut tests = vec![
        nats_support::test(
            "a_subject_prefix_applies_to_both_ends_and_erased_names_are_the_notification_names",
            a_subject_prefix_applies_to_both_ends_and_erased_names_are_the_notification_names,
        ),
        nats_support::test(
            "a_bridge_that_imports_and_exports_a_type_never_relays_it_to_a_third",
            a_bridge_that_imports_and_exports_a_type_never_relays_it_to_a_third,
        ),
        nats_support::test(
            "dropping_an_import_stops_posting",
            dropping_an_import_stops_posting,
        ),
        nats_support::multi(
            "exports_posted_while_disconnected_wait_and_arrive_in_order_after_reconnect",
            exports_posted_while_disconnected_wait_and_arrive_in_order_after_reconnect,
        ),
        nats_support::multi(
            "with_retry_initial_connect_exports_wait_for_the_first_connection",
            with_retry_initial_connect_exports_wait_for_the_first_connection,
        ),
        nats_support::test("a_bad_url_is_a_config_error", a_bad_url_is_a_config_error),
        nats_support::test(
            "an_unreadable_credentials_file_is_a_config_error",
            an_unreadable_credentials_file_is_a_config_error,
        ),
        nats_support::test(
            "a_connected_bridge_debug_shows_no_secret",
            a_connected_bridge_debug_shows_no_secret,
        ),
        nats_support::test(
            "an_unserializable_export_is_dropped_reported_and_seen_as_a_gap",
            an_unserializable_export_is_dropped_reported_and_seen_as_a_gap,
        ),
        nats_support::test(
            "a_notification_larger_than_the_server_accepts_is_dropped_reported_and_seen_lost",
            a_notification_larger_than_the_server_accepts_is_dropped_reported_and_seen_lost,
        ),
        nats_support::test(
            "after_shutdown_posts_are_reported_dropped_and_imports_refused",
            after_shutdown_posts_are_reported_dropped_and_imports_refused,
        ),
        nats_support::test(
            "malformed_metadata_is_rejected_typed_and_counted_and_the_import_goes_on",
            malformed_metadata_is_rejected_typed_and_counted_and_the_import_goes_on,
        ),
        nats_support::test(
            "a_family_import_counts_non_json_under_an_untyped_name_undecodable",
            a_family_import_counts_non_json_under_an_untyped_name_undecodable,
        ),
        nats_support::test(
            "batched_values_round_trip_exactly_whatever_their_text",
            batched_values_round_trip_exactly_whatever_their_text,
        ),
        nats_support::multi(
            "a_slow_import_loses_counted_and_reported_never_silently",
            a_slow_import_loses_counted_and_reported_never_silently,
        ),
        nats_support::test(
            "an_export_for_one_sender_sends_only_its_posts_without_false_gaps",
            an_export_for_one_sender_sends_only_its_posts_without_false_gaps,
        ),
        nats_support::test(
            "dropping_an_export_still_sends_what_it_queued",
            dropping_an_export_still_sends_what_it_queued,
        ),
        nats_support::test(
            "a_message_with_the_importers_own_origin_is_counted_as_an_echo_not_posted",
            a_message_with_the_importers_own_origin_is_counted_as_an_echo_not_posted,
        ),
    ];
    #[cfg(all(feature = "bridge", feature = "mock"))]
    tests.extend([
        nats_support::multi(
            "push::each_push_is_sent_once_with_one_outcome_across_a_graceful_worker_restart",
            push::each_push_is_sent_once_with_one_outcome_across_a_graceful_worker_restart,
        ),
        nats_support::multi(
            "push::invalid_jobs_get_a_typed_failed_outcome_and_unknown_versions_are_terminated",
            push::invalid_jobs_get_a_typed_failed_outcome_and_unknown_versions_are_terminated,
        ),
        nats_support::multi(
            "push::a_queued_push_reaches_apns_with_the_same_headers_and_body_as_a_direct_send",
            push::a_queued_push_reaches_apns_with_the_same_headers_and_body_as_a_direct_send,
        ),
        nats_support::multi(
            "push::outcome_imports_by_name_each_get_all_or_share_and_start_from_now",
            push::outcome_imports_by_name_each_get_all_or_share_and_start_from_now,
        ),
        nats_support::multi(
            "push::a_send_slower_than_ack_wait_is_not_redelivered",
            push::a_send_slower_than_ack_wait_is_not_redelivered,
        ),
        nats_support::test(
            "push::the_kv_store_works_from_a_current_thread_runtime",
            push::the_kv_store_works_from_a_current_thread_runtime,
        ),
        nats_support::test(
            "push::without_jetstream_every_jetstream_user_fails_typed",
            push::without_jetstream_every_jetstream_user_fails_typed,
        ),
        nats_support::test(
            "push::a_bad_bucket_name_is_refused_typed",
            push::a_bad_bucket_name_is_refused_typed,
        ),
    ]);
    nats_support::main("nats_black_box", tests)
}
