//! Operational signals (feature `apns`): every metric herald emits, in one table, through the
//! [`metrics`](https://docs.rs/metrics) facade, and the `tracing` spans of a push's life.
//!
//! herald records into whatever recorder the program installed (`metrics-exporter-prometheus`,
//! StatsD, OpenTelemetry...); with none installed, recording costs an atomic load. Call
//! [`describe`] once after installing a recorder to attach help texts and units.
//!
//! # Metrics
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `herald_apns_sent_total` | counter | | pushes handed to an [`ApnsClient`](crate::apns::ApnsClient) |
//! | `herald_apns_outcomes_total` | counter | `outcome` (`accepted`, `rejected`, `failed`), `reason` (Apple's reason; `""` when none; `Other` for reasons herald does not know) | final outcome of each push |
//! | `herald_apns_retries_total` | counter | `cause` (`rejected`, `token_expired`, `unsent`) | attempts beyond the first |
//! | `herald_apns_in_flight` | gauge | | pushes sent and not yet answered, client-wide |
//! | `herald_apns_latency_seconds` | histogram | | from `send` to APNs' acceptance, retries included |
//! | `herald_apns_connections_opened_total` | counter | | HTTP/2 connections established |
//! | `herald_apns_pings_total` | counter | | PINGs sent on idle connections |
//! | `herald_sink_pushes_total` | counter | `outcome` (`sent`, `accepted`, `rejected`, `failed`) | pushes of every [`ApnsSink`](crate::bridge::ApnsSink) |
//! | `herald_sink_rejected_total` | counter | `reason` | the sink's rejections by Apple's reason |
//! | `herald_sink_skipped_total` | counter | `cause` (`quarantined`, `breaker_open`, `other_environment`) | pushes not sent (each posted as [`PushSkipped`](crate::bridge::PushSkipped)) |
//! | `herald_sink_unaddressed_total` | counter | | messages for a subject with no device |
//! | `herald_sink_map_panics_total` | counter | | notifications lost to a panicking map closure |
//! | `herald_sink_in_flight` | gauge | | the sink's pushes sent and not yet reported |
//! | `herald_sink_queue_depth` | gauge | `notification` (the type's name) | notifications waiting in a forwarding subscription's buffer |
//! | `herald_tokens_total` | counter | `event` (`quarantined`, `released`, `invalidated`, `confirmed_invalid`) | token lifecycle decisions the sink posted |
//! | `herald_breaker_open` | gauge | `topic`, `environment` | 1 while the circuit breaker of that topic and environment is open |
//! | `herald_breaker_trips_total` | counter | `topic`, `environment`, `cause` (`wrong_environment`, `wrong_topic`, `wrong_credentials`) | breaker openings (one [`PushConfigSuspect`](crate::bridge::PushConfigSuspect) each) |
//! | `herald_registry_operations_total` | counter | `op` (`register`, `replace`, `remove`, `invalidate`, `quarantine`, `release`, `delete_quarantined`), `result` (`changed`, `unchanged`, `not_owner`, `contended`, `error`) | [`DeviceRegistry`](crate::bridge::DeviceRegistry) writes |
//! | `herald_registry_cas_conflicts_total` | counter | | compare-and-set writes another writer won (retried) |
//! | `herald_endpoint_requests_total` | counter | `status` | registration endpoint answers (feature `endpoint`) |
//! | `herald_endpoint_refused_total` | counter | `code` | refusals by the endpoint's error code |
//! | `herald_endpoint_connections` | gauge | | open connections to the endpoint |
//!
//! Labels never carry a device token, a subject or a secret; `topic` is the app's bundle id.
//!
//! # Spans
//!
//! - `herald.push` (debug), one per push an [`ApnsSink`](crate::bridge::ApnsSink) sends, from
//!   the moment it is built (`queued` event) through `sent` to its outcome event (`accepted`,
//!   `rejected` with status and reason, `failed` with the error, or `skipped`). Fields:
//!   `apns_id`, `topic`, `token` (its first 8 hex digits only).
//! - `apns.send` (debug), inside it: the client's attempts and retries, with the same fields.
//!
//! A whole device token, a provider token (JWT) or a key never appears in a span, an event or
//! a metric.
//!
//! ```
//! // With no recorder installed, describing and recording are no-ops.
//! herald::telemetry::describe();
//! ```

use ::metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};

/// Attaches help texts and units to herald's metrics in the installed recorder. Call once,
/// after installing it; harmless without one.
///
/// ```
/// herald::telemetry::describe();
/// ```
pub fn describe() {
    describe_counter!("herald_apns_sent_total", "Pushes handed to an ApnsClient");
    describe_counter!(
        "herald_apns_outcomes_total",
        "Final outcomes of pushes, by outcome and Apple's reason"
    );
    describe_counter!(
        "herald_apns_retries_total",
        "Push attempts beyond the first, by cause"
    );
    describe_gauge!(
        "herald_apns_in_flight",
        "Pushes sent and not yet answered by APNs"
    );
    describe_histogram!(
        "herald_apns_latency_seconds",
        Unit::Seconds,
        "From send to APNs' acceptance, retries included"
    );
    describe_counter!(
        "herald_apns_connections_opened_total",
        "HTTP/2 connections to APNs established"
    );
    describe_counter!("herald_apns_pings_total", "PINGs sent on idle connections");
    describe_counter!("herald_sink_pushes_total", "ApnsSink pushes by outcome");
    describe_counter!(
        "herald_sink_rejected_total",
        "ApnsSink rejections by Apple's reason"
    );
    describe_counter!(
        "herald_sink_skipped_total",
        "Pushes not sent: token in quarantine, circuit breaker open, or token of the other environment"
    );
    describe_counter!(
        "herald_sink_unaddressed_total",
        "Messages for a subject with no device"
    );
    describe_counter!(
        "herald_sink_map_panics_total",
        "Notifications lost to a panicking map closure"
    );
    describe_gauge!(
        "herald_sink_in_flight",
        "ApnsSink pushes sent and not yet reported"
    );
    describe_gauge!(
        "herald_sink_queue_depth",
        "Notifications waiting in a forwarding subscription's buffer"
    );
    describe_counter!("herald_tokens_total", "Token lifecycle decisions");
    describe_gauge!(
        "herald_breaker_open",
        "1 while the circuit breaker of a topic and environment is open"
    );
    describe_counter!(
        "herald_breaker_trips_total",
        "Circuit breaker openings (PushConfigSuspect notifications)"
    );
    describe_counter!(
        "herald_registry_operations_total",
        "DeviceRegistry writes by operation and result"
    );
    describe_counter!(
        "herald_registry_cas_conflicts_total",
        "Registry compare-and-set writes lost to another writer"
    );
    describe_counter!(
        "herald_endpoint_requests_total",
        "Registration endpoint answers by status"
    );
    describe_counter!(
        "herald_endpoint_refused_total",
        "Registration endpoint refusals by error code"
    );
    describe_gauge!(
        "herald_endpoint_connections",
        "Open connections to the registration endpoint"
    );
}

/// A reason as a bounded label: Apple's string, or `Other` for reasons herald does not know
/// (a peer must not be able to create label values at will).
pub(crate) fn reason_label(reason: &crate::apns::Reason) -> String {
    match reason {
        crate::apns::Reason::Other(_) => "Other".to_owned(),
        r => r.as_str().to_owned(),
    }
}

// ----- the client -----

pub(crate) fn apns_sent() {
    counter!("herald_apns_sent_total").increment(1);
    gauge!("herald_apns_in_flight").increment(1.0);
}

pub(crate) fn apns_outcome(outcome: &'static str, reason: String) {
    counter!("herald_apns_outcomes_total", "outcome" => outcome, "reason" => reason).increment(1);
    gauge!("herald_apns_in_flight").decrement(1.0);
}

pub(crate) fn apns_latency(seconds: f64) {
    histogram!("herald_apns_latency_seconds").record(seconds);
}

pub(crate) fn apns_retry(cause: &'static str) {
    counter!("herald_apns_retries_total", "cause" => cause).increment(1);
}

pub(crate) fn apns_connection_opened() {
    counter!("herald_apns_connections_opened_total").increment(1);
}

pub(crate) fn apns_ping() {
    counter!("herald_apns_pings_total").increment(1);
}

// ----- the sink -----

#[cfg(feature = "bridge")]
pub(crate) fn sink_push(outcome: &'static str) {
    counter!("herald_sink_pushes_total", "outcome" => outcome).increment(1);
    match outcome {
        "sent" => gauge!("herald_sink_in_flight").increment(1.0),
        _ => gauge!("herald_sink_in_flight").decrement(1.0),
    }
}

#[cfg(feature = "bridge")]
pub(crate) fn sink_rejected(reason: &crate::apns::Reason) {
    counter!("herald_sink_rejected_total", "reason" => reason_label(reason)).increment(1);
}

#[cfg(feature = "bridge")]
pub(crate) fn sink_skipped(cause: &'static str) {
    counter!("herald_sink_skipped_total", "cause" => cause).increment(1);
}

#[cfg(feature = "bridge")]
pub(crate) fn sink_unaddressed() {
    counter!("herald_sink_unaddressed_total").increment(1);
}

#[cfg(feature = "bridge")]
pub(crate) fn sink_map_panic() {
    counter!("herald_sink_map_panics_total").increment(1);
}

#[cfg(feature = "bridge")]
pub(crate) fn sink_queue_depth(notification: &'static str, depth: usize) {
    gauge!("herald_sink_queue_depth", "notification" => notification).set(depth as f64);
}

#[cfg(feature = "bridge")]
pub(crate) fn token_event(event: &'static str) {
    counter!("herald_tokens_total", "event" => event).increment(1);
}

#[cfg(feature = "bridge")]
pub(crate) fn breaker_open(topic: &str, environment: &'static str, cause: Option<&'static str>) {
    let (topic, environment) = (topic.to_owned(), environment);
    match cause {
        Some(cause) => {
            counter!("herald_breaker_trips_total", "topic" => topic.clone(),
                "environment" => environment, "cause" => cause)
            .increment(1);
            gauge!("herald_breaker_open", "topic" => topic, "environment" => environment).set(1.0);
        }
        None => {
            gauge!("herald_breaker_open", "topic" => topic, "environment" => environment).set(0.0)
        }
    }
}

// ----- the registry -----

/// How a registry operation's result is labelled.
#[cfg(feature = "bridge")]
pub(crate) trait RegistryResult {
    fn label(&self) -> &'static str;
}

#[cfg(feature = "bridge")]
impl RegistryResult for () {
    fn label(&self) -> &'static str {
        "changed"
    }
}

#[cfg(feature = "bridge")]
impl RegistryResult for bool {
    fn label(&self) -> &'static str {
        if *self { "changed" } else { "unchanged" }
    }
}

#[cfg(feature = "bridge")]
impl RegistryResult for crate::bridge::Replaced {
    fn label(&self) -> &'static str {
        "changed"
    }
}

#[cfg(feature = "bridge")]
pub(crate) fn registry_op<T: RegistryResult>(
    op: &'static str,
    result: &Result<T, crate::bridge::RegistryError>,
) {
    let label = match result {
        Ok(v) => v.label(),
        Err(e) if e.is_not_owner() => "not_owner",
        Err(e) if e.is_contended() => "contended",
        Err(_) => "error",
    };
    counter!("herald_registry_operations_total", "op" => op, "result" => label).increment(1);
}

#[cfg(feature = "bridge")]
pub(crate) fn registry_conflict() {
    counter!("herald_registry_cas_conflicts_total").increment(1);
}

// ----- the endpoint (its hook: the endpoint calls these) -----

/// The registration endpoint answered with `status`.
#[cfg(feature = "endpoint")]
#[allow(dead_code)] // the endpoint's hook, instrumented with the endpoint's hardening
pub(crate) fn endpoint_request(status: u16) {
    counter!("herald_endpoint_requests_total", "status" => status.to_string()).increment(1);
}

/// The registration endpoint refused a request with its error `code`.
#[cfg(feature = "endpoint")]
#[allow(dead_code)] // the endpoint's hook, instrumented with the endpoint's hardening
pub(crate) fn endpoint_refused(code: &'static str) {
    counter!("herald_endpoint_refused_total", "code" => code).increment(1);
}

/// A connection to the registration endpoint opened (`+1`) or closed (`-1`).
#[cfg(feature = "endpoint")]
#[allow(dead_code)] // the endpoint's hook, instrumented with the endpoint's hardening
pub(crate) fn endpoint_connections(delta: f64) {
    gauge!("herald_endpoint_connections").increment(delta);
}
