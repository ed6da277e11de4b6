//! `herald push`: send one push to a real device (or to `herald mock`) and explain the outcome.
//!
//! A thin face over `herald::apns`: every check and every explanation comes from the library.
//! Exit codes: see the crate's `main.rs` (0 accepted, 1 usage, 2 rejected, 3 not sent,
//! 4 no definitive answer). `--timeout` bounds the whole command, connecting and retries
//! included.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use herald::apns::{
    Alert, AlertFields, ApnsClient, Counters, ErrorKind, Expiration, Payload, Priority, Push,
    PushOutcome, PushType, RetryPolicy, Sound,
};

use crate::apns_options::{ApnsOptions, read};
use crate::exit;

/// Options of `herald push`.
#[derive(Debug, clap::Args)]
pub(crate) struct PushArgs {
    /// The device token (hex, any length).
    #[arg(long)]
    device: String,
    /// The app's bundle id (the push type's suffix is added when missing).
    #[arg(long)]
    topic: String,

    /// Credentials, environment, or another server.
    #[command(flatten)]
    apns: ApnsOptions,
    /// Use port 2197 instead of 443.
    #[arg(long)]
    port_2197: bool,
    /// Tunnel through an HTTP proxy (`http://host:port`).
    #[arg(long)]
    proxy: Option<String>,

    /// The push type.
    #[arg(long, value_enum, default_value_t = Kind::Alert)]
    push_type: Kind,
    /// Alert text (the body).
    #[arg(long)]
    alert: Option<String>,
    /// Alert title.
    #[arg(long)]
    title: Option<String>,
    /// Badge count shown on the app icon (0 clears it).
    #[arg(long, value_name = "COUNT", allow_negative_numbers = true, value_parser = parse_badge)]
    badge: Option<u32>,
    /// Sound name (`default` for the system sound).
    #[arg(long)]
    sound: Option<String>,
    /// The whole payload as JSON (or `@file.json`), instead of --alert/--title/--badge/--sound.
    #[arg(long, conflicts_with_all = ["alert", "title", "badge", "sound"])]
    payload: Option<String>,
    /// Priority: 10, 5 or 1.
    #[arg(long)]
    priority: Option<u8>,
    /// Expiration: seconds from now (0: deliver once, do not store).
    #[arg(long)]
    expire_in: Option<u64>,
    /// Collapse id.
    #[arg(long)]
    collapse_id: Option<String>,
    /// The apns-id (a UUID; generated when absent).
    #[arg(long)]
    apns_id: Option<String>,
    /// Give up after this many seconds: bounds the whole command (connecting, sending, retries).
    #[arg(long, value_name = "SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Kind {
    Alert,
    Background,
    Voip,
    Complication,
    Fileprovider,
    Location,
    Mdm,
    Liveactivity,
    Pushtotalk,
    Widgets,
    Controls,
}

impl Kind {
    fn push_type(self) -> PushType {
        match self {
            Kind::Alert => PushType::Alert,
            Kind::Background => PushType::Background,
            Kind::Voip => PushType::Voip,
            Kind::Complication => PushType::Complication,
            Kind::Fileprovider => PushType::FileProvider,
            Kind::Location => PushType::Location,
            Kind::Mdm => PushType::Mdm,
            Kind::Liveactivity => PushType::LiveActivity,
            Kind::Pushtotalk => PushType::PushToTalk,
            Kind::Widgets => PushType::Widgets,
            Kind::Controls => PushType::Controls,
        }
    }
}

/// The badge is an unsigned count; clap's own parser would call `-1` an unknown option.
fn parse_badge(s: &str) -> Result<u32, String> {
    let s = s.trim();
    if s.starts_with('-') && s[1..].bytes().all(|b| b.is_ascii_digit()) && s.len() > 1 {
        return Err(format!(
            "the badge is a count: {s} is negative (use 0 to clear the badge)"
        ));
    }
    s.parse::<u32>().map_err(|_| {
        format!(
            "the badge is a whole number from 0 (clears it) to {}",
            u32::MAX
        )
    })
}

/// Runs `herald push`; returns the exit code.
pub(crate) async fn run(args: PushArgs) -> u8 {
    match run_inner(args).await {
        Ok(code) => code,
        Err(message) => {
            eprintln!("herald push: {message}");
            exit::USAGE
        }
    }
}

async fn run_inner(args: PushArgs) -> Result<u8, String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout);
    let endpoint = args.apns.endpoint(args.port_2197)?;
    let host = endpoint.host().to_owned();
    let counters = Arc::new(Counters::default());
    let mut builder = ApnsClient::builder()
        .endpoint(endpoint)
        .request_timeout(Duration::from_secs(args.timeout))
        .connect_timeout(Duration::from_secs(args.timeout.min(10)))
        .metrics(counters.clone())
        .retry(RetryPolicy {
            max_retries: 2,
            ..RetryPolicy::default()
        });
    if let Some(proxy) = &args.proxy {
        builder = builder.proxy(proxy.clone());
    }
    let (builder, cert_expiry) = args.apns.authenticate(builder)?;
    if let Some(at) = cert_expiry
        && let Ok(left) = at.duration_since(SystemTime::now())
    {
        let days = left.as_secs() / 86_400;
        if days < 30 {
            eprintln!("warning: the push certificate expires in {days} days");
        }
    }
    let client = builder.build().map_err(|e| e.to_string())?;

    let mut push = Push::builder(args.device.clone(), args.topic.clone())
        .push_type(args.push_type.push_type());
    push = match &args.payload {
        Some(p) => {
            let json = match p.strip_prefix('@') {
                Some(file) => read(&PathBuf::from(file))?,
                None => p.clone().into_bytes(),
            };
            push.raw_payload(json)
        }
        None => {
            let mut payload = if matches!(args.push_type, Kind::Background) {
                Payload::background()
            } else {
                Payload::default()
            };
            payload.aps.alert = match (&args.title, &args.alert) {
                (None, None) if matches!(args.push_type, Kind::Alert) => {
                    Some(Alert::from("Hello from herald"))
                }
                (None, None) => None,
                (None, Some(body)) => Some(Alert::from(body.as_str())),
                (title, body) => Some(Alert::Fields(AlertFields {
                    title: title.clone(),
                    body: body.clone(),
                    ..AlertFields::default()
                })),
            };
            payload.aps.badge = args.badge;
            payload.aps.sound = args.sound.clone().map(Sound::Named);
            push.payload(&payload).map_err(|e| e.to_string())?
        }
    };
    if let Some(p) = args.priority {
        push = push.priority(match p {
            10 => Priority::Immediate,
            5 => Priority::PowerAware,
            1 => Priority::Low,
            other => return Err(format!("--priority must be 10, 5 or 1, not {other}")),
        });
    }
    if let Some(secs) = args.expire_in {
        push = push.expiration(if secs == 0 {
            Expiration::Immediately
        } else {
            Expiration::At(SystemTime::now() + Duration::from_secs(secs))
        });
    }
    if let Some(c) = &args.collapse_id {
        push = push.collapse_id(c.clone());
    }
    if let Some(id) = &args.apns_id {
        push = push.apns_id(id.clone());
    }
    let push = push.build().map_err(|e| e.to_string())?;

    let ca_given = args.apns.ca.is_some();
    let custom = args.apns.url.is_some();
    let Ok(outcome) = tokio::time::timeout_at(deadline, client.send(push.clone())).await else {
        // The deadline cut the attempt short. Whether anything was sent follows from whether a
        // connection was ever made. (No graceful shutdown: it would outlive the deadline.)
        return Ok(if counters.snapshot().connections == 0 {
            println!(
                "failed: could not connect to {host} within {}s: nothing was sent.",
                args.timeout
            );
            println!("Check the network, the proxy and the endpoint (--url).");
            exit::NOT_SENT
        } else {
            println!(
                "failed: no answer within {}s (apns-id {}).",
                args.timeout,
                push.apns_id()
            );
            println!("APNs may or may not have received the push.");
            exit::NO_ANSWER
        });
    };
    let _ = tokio::time::timeout_at(deadline, client.shutdown()).await;
    Ok(report(&push, &outcome, custom, ca_given))
}

/// True when a connect error is the server's certificate not being trusted.
fn untrusted_certificate(e: &herald::apns::Error) -> bool {
    let text = e.to_string();
    [
        "UnknownIssuer",
        "invalid peer certificate",
        "certificate verify",
        "BadSignature",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

fn report(push: &Push, outcome: &PushOutcome, custom: bool, ca_given: bool) -> u8 {
    match outcome {
        PushOutcome::Accepted(a) => {
            println!("accepted: apns-id {}", a.apns_id);
            if let Some(u) = &a.apns_unique_id {
                println!("apns-unique-id {u} (look it up in Apple's delivery log)");
            }
            exit::OK
        }
        PushOutcome::Rejected(r) => {
            println!(
                "rejected: {} {} (apns-id {})",
                r.status,
                r.reason,
                push.apns_id()
            );
            println!("{}", r.reason.explain());
            if let Some(t) = r.timestamp {
                println!(
                    "APNs has known the token to be invalid since {}.",
                    crate::time::format_millis(t)
                );
            }
            exit::REJECTED
        }
        PushOutcome::Failed(f) => {
            let e = &f.error;
            println!("failed: {e}");
            if e.is_connect() {
                let untrusted = untrusted_certificate(e);
                if untrusted {
                    if custom && !ca_given {
                        println!(
                            "The server's certificate is not trusted, so nothing was sent. For \
                             `herald mock`, pass --ca with the CA file it printed (ca.pem in its \
                             out dir)."
                        );
                    } else if custom {
                        println!(
                            "The server's certificate is not signed by the CA given with --ca, \
                             so nothing was sent (is the file from an earlier run of `herald \
                             mock`?)."
                        );
                    } else {
                        println!(
                            "The server's certificate is not trusted, so nothing was sent (a \
                             TLS-intercepting proxy?)."
                        );
                    }
                }
                if !untrusted {
                    println!(
                        "Could not reach the server: nothing was sent. Check the network, the \
                         proxy and the endpoint."
                    );
                }
                exit::NOT_SENT
            } else if e.is_timeout() || e.is_connection_lost() {
                println!("No answer: APNs may or may not have received the push.");
                exit::NO_ANSWER
            } else if e.is_retries_exhausted() {
                println!(
                    "APNs did not take the push (it kept answering 429/5xx): try again later."
                );
                exit::NO_ANSWER
            } else if matches!(
                e.kind(),
                ErrorKind::InvalidPush
                    | ErrorKind::PayloadTooLarge
                    | ErrorKind::BadKey
                    | ErrorKind::BadCertificate
                    | ErrorKind::WrongPassword
                    | ErrorKind::CertificateExpired
                    | ErrorKind::CertificateMismatch
                    | ErrorKind::Config
            ) {
                // Refused before anything went out.
                exit::USAGE
            } else if e.is_shutdown() {
                exit::NOT_SENT
            } else {
                exit::NO_ANSWER
            }
        }
        other => {
            println!("unexpected outcome: {other:?}");
            exit::NO_ANSWER
        }
    }
}
