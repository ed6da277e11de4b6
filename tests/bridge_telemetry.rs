//! Operational signals: the `metrics` facade's counters and gauges move as pushes, lifecycle
//! decisions and registry writes happen (read with `metrics-util`'s debugging recorder), and
//! the `tracing` spans of a push carry its apns-id, topic and a token prefix, never a whole
//! token or a provider token.
//!
//! One test per binary: the recorder and the subscriber are process-wide.
#![cfg(all(feature = "endpoint", feature = "mock", feature = "testkit"))]

mod bridge_support;

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bridge_support::*;
use herald::bridge::{Device, DeviceRegistry, Environment, LifecycleConfig, ManualClock};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

/// Every span and event, as `target name field=value...` lines.
struct Capture {
    lines: Mutex<Vec<String>>,
    next: AtomicU64,
}

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut f = Fields(format!(
            "{} span {}",
            attrs.metadata().target(),
            attrs.metadata().name()
        ));
        attrs.record(&mut f);
        self.lines.lock().unwrap().push(f.0);
        tracing::span::Id::from_u64(self.next.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut f = Fields("record".into());
        values.record(&mut f);
        self.lines.lock().unwrap().push(f.0);
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut f = Fields(format!("{} event", event.metadata().target()));
        event.record(&mut f);
        self.lines.lock().unwrap().push(f.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

static CAPTURE: Capture = Capture {
    lines: Mutex::new(Vec::new()),
    next: AtomicU64::new(0),
};

struct Forward;

impl tracing::Subscriber for Forward {
    fn enabled(&self, m: &tracing::Metadata<'_>) -> bool {
        CAPTURE.enabled(m)
    }
    fn new_span(&self, a: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        CAPTURE.new_span(a)
    }
    fn record(&self, id: &tracing::span::Id, r: &tracing::span::Record<'_>) {
        CAPTURE.record(id, r)
    }
    fn record_follows_from(&self, a: &tracing::span::Id, b: &tracing::span::Id) {
        CAPTURE.record_follows_from(a, b)
    }
    fn event(&self, e: &tracing::Event<'_>) {
        CAPTURE.event(e)
    }
    fn enter(&self, id: &tracing::span::Id) {
        CAPTURE.enter(id)
    }
    fn exit(&self, id: &tracing::span::Id) {
        CAPTURE.exit(id)
    }
}

/// One reading of the recorder (reading resets its counters: take one per phase).
struct Snap(Vec<(metrics_util::CompositeKey, DebugValue)>);

impl Snap {
    fn take(snapshotter: &Snapshotter) -> Snap {
        Snap(
            snapshotter
                .snapshot()
                .into_vec()
                .into_iter()
                .map(|(k, _, _, v)| (k, v))
                .collect(),
        )
    }
}

fn value(snap: &Snap, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut total = 0.0;
    for (key, v) in &snap.0 {
        let k = key.key();
        if k.name() != name {
            continue;
        }
        let all = labels
            .iter()
            .all(|(n, want)| k.labels().any(|l| l.key() == *n && l.value() == *want));
        if !all {
            continue;
        }
        total += match v {
            DebugValue::Counter(n) => *n as f64,
            DebugValue::Gauge(g) => g.into_inner(),
            DebugValue::Histogram(h) => h.len() as f64,
        };
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_and_spans_never_show_a_whole_token() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::set_global_recorder(recorder).expect("the only recorder in this binary");
    tracing::subscriber::set_global_default(Forward).expect("the only subscriber");
    herald::telemetry::describe();

    let clock = ManualClock::at(std::time::SystemTime::now() + Duration::from_secs(1));
    let registry = DeviceRegistry::in_memory();
    let h = Harness::start_with(registry.clone(), |b| {
        b.lifecycle(LifecycleConfig::default().min_samples(20))
            .clock(clock.clone())
    })
    .await;
    let (good, bad, gone) = (token(700), token(701), token(702));
    for t in [&good, &gone] {
        h.mock.register_device(t, BUNDLE);
    }
    for t in [&good, &bad, &gone] {
        registry
            .register(Device::new("lea", t.as_str(), BUNDLE, Environment::Sandbox))
            .unwrap();
    }
    h.mock
        .mark_unregistered(&gone, std::time::SystemTime::now());
    h.center.post(Shipped {
        user: "lea".into(),
        order: 1,
    });
    h.forwarding.idle().await;
    clock.advance(Duration::from_secs(1));
    h.center.post(Shipped {
        user: "lea".into(),
        order: 2,
    });
    h.forwarding.idle().await;
    let snap = Snap::take(&snapshotter);

    // The sink.
    assert_eq!(
        value(&snap, "herald_sink_pushes_total", &[("outcome", "sent")]),
        4.0
    );
    assert_eq!(
        value(
            &snap,
            "herald_sink_pushes_total",
            &[("outcome", "accepted")]
        ),
        2.0
    );
    assert_eq!(
        value(
            &snap,
            "herald_sink_pushes_total",
            &[("outcome", "rejected")]
        ),
        2.0
    );
    assert_eq!(
        value(
            &snap,
            "herald_sink_rejected_total",
            &[("reason", "Unregistered")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &snap,
            "herald_sink_rejected_total",
            &[("reason", "BadDeviceToken")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &snap,
            "herald_sink_skipped_total",
            &[("cause", "quarantined")]
        ),
        1.0
    );
    assert_eq!(
        value(&snap, "herald_tokens_total", &[("event", "quarantined")]),
        1.0
    );
    assert_eq!(
        value(&snap, "herald_tokens_total", &[("event", "invalidated")]),
        1.0
    );
    assert_eq!(value(&snap, "herald_sink_in_flight", &[]), 0.0);
    assert_eq!(
        value(
            &snap,
            "herald_sink_queue_depth",
            &[("notification", std::any::type_name::<Shipped>())]
        ),
        0.0
    );
    // The client.
    assert_eq!(value(&snap, "herald_apns_sent_total", &[]), 4.0);
    assert_eq!(
        value(
            &snap,
            "herald_apns_outcomes_total",
            &[("outcome", "accepted")]
        ),
        2.0
    );
    assert_eq!(
        value(
            &snap,
            "herald_apns_outcomes_total",
            &[("outcome", "rejected"), ("reason", "BadDeviceToken")]
        ),
        1.0
    );
    assert_eq!(value(&snap, "herald_apns_in_flight", &[]), 0.0);
    assert!(value(&snap, "herald_apns_connections_opened_total", &[]) >= 1.0);
    assert_eq!(value(&snap, "herald_apns_latency_seconds", &[]), 2.0);
    // The registry.
    assert_eq!(
        value(
            &snap,
            "herald_registry_operations_total",
            &[("op", "register"), ("result", "changed")]
        ),
        3.0
    );
    assert_eq!(
        value(
            &snap,
            "herald_registry_operations_total",
            &[("op", "invalidate"), ("result", "changed")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &snap,
            "herald_registry_operations_total",
            &[("op", "quarantine"), ("result", "changed")]
        ),
        1.0
    );

    // The breaker: a topic whose tokens are all rejected.
    let strangers: Vec<String> = (0..20).map(|i| token(800 + i)).collect();
    for t in &strangers {
        registry
            .register(Device::new(
                "max",
                t.as_str(),
                BUNDLE,
                Environment::Production,
            ))
            .unwrap();
    }
    h.center.post(Shipped {
        user: "max".into(),
        order: 3,
    });
    h.forwarding.idle().await;
    let snap = Snap::take(&snapshotter);
    assert_eq!(
        value(
            &snap,
            "herald_breaker_trips_total",
            &[
                ("cause", "wrong_environment"),
                ("environment", "production")
            ]
        ),
        1.0
    );
    assert_eq!(
        value(
            &snap,
            "herald_breaker_open",
            &[("topic", BUNDLE), ("environment", "production")]
        ),
        1.0
    );
    assert_eq!(
        value(&snap, "herald_breaker_open", &[("environment", "sandbox")]),
        0.0
    );

    // The spans: every push has one, with its apns-id, topic and a token prefix.
    let lines = CAPTURE.lines.lock().unwrap().clone();
    let ours: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("herald::apns") || l.starts_with("herald::bridge"))
        .collect();
    let push_spans: Vec<&&String> = ours
        .iter()
        .filter(|l| l.contains("span herald.push"))
        .collect();
    assert_eq!(
        push_spans.len(),
        4 + 1 + 20,
        "one span per push (the skipped one too)"
    );
    assert!(
        push_spans
            .iter()
            .all(|l| l.contains("apns_id=") && l.contains("topic="))
    );
    assert!(
        push_spans
            .iter()
            .any(|l| l.contains(&format!("token={}", &good[..8])))
    );
    for event in ["queued", "sent", "accepted", "rejected", "skipped"] {
        assert!(
            ours.iter()
                .any(|l| l.contains("event") && l.contains(event)),
            "no {event} event"
        );
    }
    for t in [&good, &bad, &gone].into_iter().chain(&strangers) {
        assert!(
            ours.iter().all(|l| !l.contains(t.as_str())),
            "a whole token in a span or event"
        );
    }
    assert!(
        ours.iter().all(|l| !l.contains("eyJ")),
        "a JWT in a span or event"
    );
}
