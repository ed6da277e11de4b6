//! `herald push`: send one push to a real device (or to `herald mock`) and explain the outcome.
//!
//! A thin face over `herald::apns`: every check and every explanation comes from the library.
//! Exit codes: see the crate's `main.rs` (0 accepted, 1 usage, 2 rejected, 3 not sent,
//! 4 no definitive answer). `--timeout` bounds the whole command, connecting and retries
//! included. Retries are the library's: `RetryPolicy::default()` (429 and 5xx answers retried
//! 3 times, backoff from 200 ms doubling, the same apns-id), so the command behaves as a
//! client built with the defaults; `--help` says so under `--timeout`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use herald::apns::{
    Alert, AlertFields, ApnsClient, Counters, ErrorKind, Expiration, Payload, Priority, Push,
    PushOutcome, PushType, Sound,
};

use crate::apns_options::{ApnsOptions, read};
use crate::exit;

/// Options of `herald push`.
#[derive(Debug, clap::Args)]
pub(crate) struct PushArgs {
    /// The device token (hex: an even number of digits, any length).
    #[arg(long)]
    device: String,
    /// The app's bundle id (the push type's suffix is added when missing).
    #[arg(long)]
    topic: String,

    /// Credentials, environment, or another server.
    #[command(flatten)]
    apns: ApnsOptions,
    /// Use port 2197 instead of 443 (Apple's servers; not used with --url).
    #[arg(long)]
    port_2197: bool,

    /// The push type.
    #[arg(long, value_enum, default_value_t = Kind::Alert)]
    push_type: Kind,
    /// Alert text (the body). Default, for --push-type alert with neither --alert nor
    /// --title: "Hello from herald".
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
    #[arg(long, allow_negative_numbers = true)]
    priority: Option<u8>,
    /// Expiration: seconds from now (0: deliver once, do not store).
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true, value_parser = parse_expire_in)]
    expire_in: Option<u64>,
    /// Collapse id.
    #[arg(long)]
    collapse_id: Option<String>,
    /// The apns-id (a UUID; generated when absent).
    #[arg(long)]
    apns_id: Option<String>,
    /// Give up after this many seconds: bounds the whole command (connecting, sending, and
    /// the retries: a 429 or 5xx answer is retried up to 3 times, with the same apns-id,
    /// after backoffs from 200 ms doubling, as the library's default RetryPolicy).
    #[arg(long, value_name = "SECONDS", default_value_t = 30, allow_negative_numbers = true,
          value_parser = parse_timeout)]
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

/// True for `-N` (digits, at least one): a negative whole number.
fn is_negative_integer(s: &str) -> bool {
    s.strip_prefix('-')
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// The badge is an unsigned count; clap's own parser would call `-1` an unknown option (the
/// option takes negative numbers, so that they reach this message).
fn parse_badge(s: &str) -> Result<u32, String> {
    let s = s.trim();
    if is_negative_integer(s) {
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

/// Seconds from now; negative numbers reach this message, as for `--badge`.
fn parse_expire_in(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if is_negative_integer(s) {
        return Err(format!(
            "seconds from now: {s} is negative (use 0 to deliver once, without storing)"
        ));
    }
    s.parse::<u64>()
        .map_err(|_| "a whole number of seconds from now (0: deliver once, do not store)".into())
}

/// The whole command's time limit, 1 to 3600 seconds; negative numbers reach this message.
fn parse_timeout(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if is_negative_integer(s) {
        return Err(format!(
            "{s} is negative: give a whole number of seconds from 1 to 3600"
        ));
    }
    match s.parse::<u64>() {
        Ok(n) if (1..=3600).contains(&n) => Ok(n),
        _ => Err("a whole number of seconds from 1 to 3600".into()),
    }
}

/// The first character of a device token that is not a hex digit (the library would only say
/// that the token is not an even number of hex digits).
fn non_hex_character(token: &str) -> Option<char> {
    token.trim().chars().find(|c| !c.is_ascii_hexdigit())
}

/// Runs `herald push`; returns the exit code.
pub(crate) async fn run(args: PushArgs) -> u8 {
    match run_inner(args).await {
        Ok(code) => code,
        Err(message) => {
            errln!("herald push: {message}");
            exit::USAGE
        }
    }
}

async fn run_inner(args: PushArgs) -> Result<u8, String> {
    if let Some(bad) = non_hex_character(&args.device) {
        return Err(format!(
            "--device: a device token is hex digits (0-9, a-f); {bad:?} is not one"
        ));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout);
    let endpoint = args.apns.endpoint(args.port_2197)?;
    let host = endpoint.host().to_owned();
    let counters = Arc::new(Counters::default());
    let builder = ApnsClient::builder()
        .endpoint(endpoint)
        .request_timeout(Duration::from_secs(args.timeout))
        .connect_timeout(Duration::from_secs(args.timeout.min(10)))
        // Retries: the builder's default `RetryPolicy`, as --timeout's help says.
        .metrics(counters.clone());
    let (builder, cert_expiry) = args.apns.authenticate(builder)?;
    if let Some(at) = cert_expiry
        && let Ok(left) = at.duration_since(SystemTime::now())
    {
        let days = left.as_secs() / 86_400;
        if days < 30 {
            errln!("warning: the push certificate expires in {days} days");
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

    let to = Target {
        host,
        custom: args.apns.url.is_some(),
        ca_given: args.apns.ca.is_some(),
    };
    let Ok(outcome) = tokio::time::timeout_at(deadline, client.send(push.clone())).await else {
        // The deadline cut the attempt short. Whether anything was sent follows from whether a
        // connection was ever made. (No graceful shutdown: it would outlive the deadline.)
        return Ok(if counters.snapshot().connections == 0 {
            outln!(
                "failed: could not connect to {} within {}s: nothing was sent.",
                to.host,
                args.timeout
            );
            outln!("Check the network, the proxy and the endpoint (--url).");
            exit::NOT_SENT
        } else {
            outln!(
                "failed: no answer within {}s (apns-id {}).",
                args.timeout,
                push.apns_id()
            );
            outln!("APNs may or may not have received the push.");
            exit::NO_ANSWER
        });
    };
    let _ = tokio::time::timeout_at(deadline, client.shutdown()).await;
    Ok(report(&push, &outcome, &to))
}

/// Why the server's certificate was refused, when it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CertificateProblem {
    /// Not signed by a CA we trust (rustls' `UnknownIssuer`, `BadSignature`).
    Untrusted,
    /// Signed by a trusted CA, but for other names than the host we connected to
    /// (`NotValidForName`).
    WrongName,
    /// Expired or not valid yet (`Expired`, `NotValidYet`).
    NotValidNow,
    /// Any other reason (revoked, bad encoding, wrong purpose, ...).
    Other,
}

fn classify(e: &rustls::Error) -> Option<CertificateProblem> {
    use rustls::CertificateError as C;
    let rustls::Error::InvalidCertificate(c) = e else {
        return None;
    };
    Some(match c {
        C::UnknownIssuer | C::BadSignature => CertificateProblem::Untrusted,
        C::NotValidForName | C::NotValidForNameContext { .. } => CertificateProblem::WrongName,
        C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. } => {
            CertificateProblem::NotValidNow
        }
        _ => CertificateProblem::Other,
    })
}

/// Why a connect error's TLS handshake refused the server's certificate, if that is what
/// happened: the rustls error in the error's sources (tokio-rustls hands it over inside an
/// `io::Error`).
fn certificate_problem(e: &herald::apns::Error) -> Option<CertificateProblem> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            return classify(r);
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            && let Some(r) = inner.downcast_ref::<rustls::Error>()
        {
            return classify(r);
        }
        next = err.source();
    }
    None
}

/// The hint for a refused server certificate: each reason its own.
fn certificate_hint(problem: CertificateProblem, to: &Target) -> String {
    let host = &to.host;
    match problem {
        CertificateProblem::Untrusted if to.custom && !to.ca_given => {
            "The server's certificate is not trusted, so nothing was sent. For `herald mock`, pass \
             --ca with the CA file it printed (ca.pem in its out dir)."
                .into()
        }
        CertificateProblem::Untrusted if to.custom => {
            "The server's certificate is not signed by the CA given with --ca, so nothing was \
             sent (is the file from an earlier run of `herald mock`?)."
                .into()
        }
        CertificateProblem::Untrusted => "The server's certificate is not trusted, so nothing \
             was sent (a TLS-intercepting proxy?)."
            .into(),
        CertificateProblem::WrongName if to.custom => format!(
            "The server's certificate is not issued for {host}, the host in --url, so nothing \
             was sent. `herald mock`'s certificate names localhost, 127.0.0.1 and ::1 (and \
             --server-name): use the --url it printed, or one of those names."
        ),
        CertificateProblem::WrongName => format!(
            "The server's certificate is not issued for {host}, so nothing was sent (a \
             TLS-intercepting proxy, or a DNS entry pointing elsewhere?)."
        ),
        CertificateProblem::NotValidNow => "The server's certificate has expired or is not \
             valid yet, so nothing was sent: check this machine's clock."
            .into(),
        CertificateProblem::Other => {
            "The server's certificate was refused (see above), so nothing was sent.".into()
        }
    }
}

/// Where the push went, for the hints.
struct Target {
    /// The host connected to.
    host: String,
    /// `--url` was given (another server, such as `herald mock`).
    custom: bool,
    /// `--ca` was given.
    ca_given: bool,
}

fn report(push: &Push, outcome: &PushOutcome, to: &Target) -> u8 {
    match outcome {
        PushOutcome::Accepted(a) => {
            outln!("accepted: apns-id {}", a.apns_id);
            if let Some(u) = &a.apns_unique_id {
                outln!("apns-unique-id {u} (look it up in Apple's delivery log)");
            }
            exit::OK
        }
        PushOutcome::Rejected(r) => {
            outln!(
                "rejected: {} {} (apns-id {})",
                r.status,
                r.reason,
                push.apns_id()
            );
            outln!("{}", r.reason.explain());
            if let Some(t) = r.timestamp {
                outln!(
                    "APNs has known the token to be invalid since {}.",
                    crate::time::format_millis(t)
                );
            }
            exit::REJECTED
        }
        PushOutcome::Failed(f) => {
            let e = &f.error;
            outln!("failed: {e}");
            if e.is_connect() {
                match certificate_problem(e) {
                    Some(problem) => {
                        outln!("{}", certificate_hint(problem, to));
                    }
                    None => {
                        outln!(
                            "Could not reach the server: nothing was sent. Check the network, \
                             the proxy and the endpoint."
                        );
                    }
                }
                exit::NOT_SENT
            } else if e.is_timeout() || e.is_connection_lost() {
                outln!("No answer: APNs may or may not have received the push.");
                exit::NO_ANSWER
            } else if e.is_retries_exhausted() {
                outln!("APNs did not take the push (it kept answering 429/5xx): try again later.");
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
            outln!("unexpected outcome: {other:?}");
            exit::NO_ANSWER
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_numbers_say_negative() {
        assert!(parse_badge("-1").unwrap_err().contains("negative"));
        assert!(parse_expire_in("-5").unwrap_err().contains("negative"));
        assert!(parse_timeout("-5").unwrap_err().contains("negative"));
        assert_eq!(parse_expire_in("0"), Ok(0));
        assert_eq!(parse_timeout("30"), Ok(30));
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("3601").is_err());
    }

    #[test]
    fn the_first_non_hex_character_is_named() {
        assert_eq!(non_hex_character("abzz"), Some('z'));
        assert_eq!(non_hex_character(" ABcd "), None);
        assert_eq!(non_hex_character("abc"), None); // odd length: the library says so
    }

    #[test]
    fn certificate_errors_are_told_apart() {
        use rustls::CertificateError as C;
        let class = |c: C| classify(&rustls::Error::InvalidCertificate(c));
        assert_eq!(class(C::UnknownIssuer), Some(CertificateProblem::Untrusted));
        assert_eq!(class(C::BadSignature), Some(CertificateProblem::Untrusted));
        assert_eq!(
            class(C::NotValidForName),
            Some(CertificateProblem::WrongName)
        );
        assert_eq!(class(C::Expired), Some(CertificateProblem::NotValidNow));
        assert_eq!(class(C::Revoked), Some(CertificateProblem::Other));
        assert_eq!(classify(&rustls::Error::HandshakeNotComplete), None);
    }
}
