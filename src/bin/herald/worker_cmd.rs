//! `herald worker`: take pushes from a NATS JetStream work queue, send them to APNs (or to
//! `herald mock`), publish each outcome, acknowledge. A thin face over
//! `herald::nats::PushWorker`; see its module docs for the delivery guarantee.
//!
//! Stopping (Ctrl-C or SIGTERM) takes no new pushes and finishes the ones held (send, report,
//! acknowledge). With the NATS server gone, they can be neither reported nor acknowledged:
//! the worker does not wait for it, it leaves them unacknowledged, and the queue gives them to
//! another worker after `--ack-wait` (nothing taken is lost; one APNs already had is sent
//! again, with the same apns-id and collapse id). With the server there, a stop takes as long
//! as the held sends (each bounded by the APNs client's request timeout and retries) plus
//! about a second; with it gone, about two seconds (`herald::nats::ABANDON_AFTER`: a shorter
//! break is a reconnection and gives up nothing). It says what it left: `abandoned` in the
//! `--json` summary, a line on stderr.
//!
//! Exit codes: 0 stopped by Ctrl-C or SIGTERM (every push it held finished, or left for
//! redelivery as above); 1 usage or start-up error (bad option, unreadable key); 3 the NATS
//! server could not be reached or has no JetStream (nothing was taken from the queue).

use std::path::PathBuf;
use std::time::Duration;

use herald::apns::ApnsClient;
use herald::nats::{NatsBridge, PushQueueConfig, PushWorker, redact_url};

use crate::apns_options::ApnsOptions;
use crate::exit;

/// Options of `herald worker`.
#[derive(Debug, clap::Args)]
pub(crate) struct WorkerArgs {
    /// The NATS server (credentials in it, `nats://user:password@host`, are never printed).
    #[arg(
        long,
        env = "HERALD_NATS_URL",
        hide_env_values = true,
        default_value = "nats://127.0.0.1:4222"
    )]
    nats_url: String,
    /// The subject prefix (ending in a dot), as the posting side's bridge.
    #[arg(long, default_value = "")]
    nats_prefix: String,
    /// A NATS credentials file (`.creds`).
    #[arg(long)]
    nats_creds: Option<PathBuf>,
    /// Trust this CA (PEM file) for the NATS server's TLS certificate.
    #[arg(long)]
    nats_ca: Option<PathBuf>,
    /// The work-queue stream.
    #[arg(long, default_value = "HERALD_PUSH")]
    stream: String,
    /// The outcome stream.
    #[arg(long, default_value = "HERALD_PUSH_OUTCOMES")]
    outcome_stream: String,
    /// The durable consumer all workers share.
    #[arg(long, default_value = "herald-workers")]
    consumer: String,
    /// Seconds a taken push may stay unacknowledged before it is given to another worker
    /// (used when the consumer is created).
    #[arg(long, value_name = "SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    ack_wait: u64,
    /// Pushes held and sent at once.
    #[arg(long, default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    concurrency: u64,
    /// The name put in outcomes (default: the connection's id).
    #[arg(long)]
    name: Option<String>,

    /// Credentials, environment, or another server.
    #[command(flatten)]
    apns: ApnsOptions,
    /// Print one JSON line when ready and one with the counters when stopped.
    #[arg(long)]
    json: bool,
}

/// Runs `herald worker`; returns the exit code.
pub(crate) async fn run(args: WorkerArgs) -> u8 {
    match run_inner(args).await {
        Ok(code) => code,
        Err((code, message)) => {
            tell(&format!("herald worker: {message}"));
            code
        }
    }
}

fn client(args: &WorkerArgs) -> Result<ApnsClient, String> {
    let builder = ApnsClient::builder().endpoint(args.apns.endpoint(false)?);
    let (builder, _) = args.apns.authenticate(builder)?;
    builder.build().map_err(|e| e.to_string())
}

async fn run_inner(args: WorkerArgs) -> Result<u8, (u8, String)> {
    let usage = |m: String| (exit::USAGE, m);
    let client = client(&args).map_err(usage)?;
    let mut stop = crate::mock_cmd::StopSignal::install().map_err(usage)?;
    let mut bridge = NatsBridge::builder()
        .subject_prefix(args.nats_prefix.clone())
        .reconnect_backoff(Duration::from_millis(50), Duration::from_secs(5));
    if let Some(name) = &args.name {
        bridge = bridge.name(name.clone());
    }
    if let Some(creds) = &args.nats_creds {
        bridge = bridge.credentials_file(creds.clone());
    }
    if let Some(ca) = &args.nats_ca {
        bridge = bridge.ca_file(ca.clone());
    }
    let bridge = bridge.connect(&args.nats_url).await.map_err(|e| {
        let code = if e.is_connect() {
            exit::NOT_SENT
        } else {
            exit::USAGE
        };
        (code, e.to_string())
    })?;
    let config = PushQueueConfig::default()
        .stream(args.stream.clone())
        .outcome_stream(args.outcome_stream.clone())
        .consumer(args.consumer.clone())
        .ack_wait(Duration::from_secs(args.ack_wait));
    let mut worker = PushWorker::builder(client.clone())
        .config(config)
        .concurrency(usize::try_from(args.concurrency).unwrap_or(64));
    if let Some(name) = &args.name {
        worker = worker.name(name.clone());
    }
    let worker = worker
        .start(&bridge)
        .await
        .map_err(|e| (exit::NOT_SENT, e.to_string()))?;
    let nats = redact_url(&args.nats_url);
    if args.json {
        say(&serde_json::json!({
            "ready": true,
            "worker": worker.name(),
            "nats": nats,
            "stream": args.stream,
            "consumer": args.consumer,
            "pid": std::process::id(),
        })
        .to_string());
    } else {
        say(&format!(
            "ready: worker {} taking pushes from {} (stream {}, consumer {}); Ctrl-C to stop",
            worker.name(),
            nats,
            args.stream,
            args.consumer
        ));
    }
    stop.wait().await;
    tell("herald worker: stopping: finishing the pushes it holds");
    worker.shutdown().await;
    // Prompt with the server gone too: this bridge exports nothing, so it owes no one a
    // last message.
    let _ = bridge.shutdown().await;
    client.shutdown().await;
    let m = worker.metrics();
    if m.abandoned > 0 {
        let plural = if m.abandoned == 1 { "" } else { "es" };
        tell(&format!(
            "herald worker: the NATS server is gone: {} push{plural} left unacknowledged, for \
             the queue to give to another worker after {} s",
            m.abandoned, args.ack_wait
        ));
    }
    if args.json {
        say(&serde_json::json!({
            "stopped": true,
            "received": m.received,
            "redelivered": m.redelivered,
            "accepted": m.accepted,
            "rejected": m.rejected,
            "failed": m.failed,
            "reported": m.reported,
            "duplicate_outcomes": m.duplicate_outcomes,
            "report_failed": m.report_failed,
            "acked": m.acked,
            "undecodable": m.undecodable,
            "given_back": m.given_back,
            "abandoned": m.abandoned,
        })
        .to_string());
    } else {
        say(&format!(
            "stopped: {} taken ({} redelivered), {} accepted, {} rejected, {} failed, \
             {} left for redelivery",
            m.received, m.redelivered, m.accepted, m.rejected, m.failed, m.abandoned
        ));
    }
    Ok(exit::OK)
}

/// Prints one line on stdout. A stdout nobody reads any more (a closed pipe) is no reason to
/// stop taking pushes, nor to end a graceful stop with a panic instead of exit 0.
fn say(line: &str) {
    write_line(std::io::stdout().lock(), line);
}

/// The same on stderr.
fn tell(line: &str) {
    write_line(std::io::stderr().lock(), line);
}

fn write_line(mut out: impl std::io::Write, line: &str) {
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}
