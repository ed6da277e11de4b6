//! `herald mock`: the mock APNs server, standalone, for app developers and interop tests.
//!
//! A thin face over [`herald::mock::MockApns`]: every option maps to a builder or handle method.

use herald::mock::{Latency, MockApns, RecordedRequest};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

/// Options of `herald mock` (boxed: they are many, and `Command` holds them by value).
#[derive(Debug, clap::Args)]
pub(crate) struct MockArgs {
    #[command(flatten)]
    options: Box<MockOptions>,
}

/// The options themselves.
#[derive(Debug, clap::Args)]
struct MockOptions {
    /// Port to listen on (0 = a free port, printed at start-up).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Address to listen on. Loopback unless you ask otherwise.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    bind: IpAddr,
    /// Directory for the CA certificate, generated keys and push certificates
    /// (default: a new directory under the system temp dir).
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Register a provider key: KEY_ID:TEAM_ID:path/to/AuthKey.p8 (or a public key PEM). Repeatable.
    #[arg(long = "key", value_name = "KEY_ID:TEAM_ID:PATH")]
    keys: Vec<String>,
    /// Generate and register a provider key, write it as KEY_ID.p8 in the out dir. Repeatable.
    #[arg(long = "generate-key", value_name = "KEY_ID:TEAM_ID")]
    generate_keys: Vec<String>,
    /// Issue a push certificate for a bundle id; writes BUNDLE.pem (certificate + key) and
    /// BUNDLE.p12 (see --p12-password). Repeatable.
    #[arg(long = "push-cert", value_name = "BUNDLE_ID")]
    push_certs: Vec<String>,
    /// Password of the .p12 files written for --push-cert.
    #[arg(long, default_value = "")]
    p12_password: String,
    /// A known device token, optionally bound to a bundle id (else valid for any). Repeatable.
    #[arg(long = "token", value_name = "HEX[:BUNDLE_ID]")]
    tokens: Vec<String>,
    /// A device token answered 410 Unregistered (timestamp: start-up time). Repeatable.
    #[arg(long = "unregistered", value_name = "HEX")]
    unregistered: Vec<String>,
    /// Accept pushes to unknown (well-formed) device tokens instead of 400 BadDeviceToken.
    #[arg(long)]
    accept_unknown_tokens: bool,
    /// MAX_CONCURRENT_STREAMS after the ramp.
    #[arg(long, default_value_t = 1000)]
    max_streams: u32,
    /// Drop the stream limit to 1 after each rejected push.
    #[arg(long)]
    drop_to_one_after_rejection: bool,
    /// GOAWAY each connection after this many requests.
    #[arg(long)]
    goaway_after: Option<u64>,
    /// GOAWAY (IdleTimeout) connections without requests or PINGs for this many ms.
    #[arg(long, value_name = "MS")]
    idle_timeout_ms: Option<u64>,
    /// Added latency per answer, in ms: N, or MIN-MAX for a uniform draw.
    #[arg(long, value_name = "MS|MIN-MAX")]
    latency_ms: Option<String>,
    /// Fraction (0–1) of otherwise accepted pushes answered 500/503.
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// Print each push as one JSON object per line instead of text.
    #[arg(long)]
    json: bool,
    /// Do not print each push (for load tests: printing costs more than answering).
    #[arg(long, conflicts_with = "json")]
    quiet: bool,
}

fn parse_latency(s: &str) -> Result<Latency, String> {
    let ms = |v: &str| {
        v.trim()
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|e| format!("{v}: {e}"))
    };
    match s.split_once('-') {
        Some((a, b)) => Ok(Latency::Uniform {
            min: ms(a)?,
            max: ms(b)?,
        }),
        None => Ok(Latency::Fixed(ms(s)?)),
    }
}

/// Runs `herald mock`.
pub(crate) async fn run(args: MockArgs) -> ExitCode {
    match serve(*args.options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("herald mock: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: MockOptions) -> Result<(), String> {
    let mut builder = MockApns::builder()
        .bind(SocketAddr::new(args.bind, args.port))
        .max_streams(args.max_streams)
        .drop_to_one_after_rejection(args.drop_to_one_after_rejection)
        .accept_unknown_tokens(args.accept_unknown_tokens)
        .error_rate(args.error_rate);
    if let Some(n) = args.goaway_after {
        builder = builder.goaway_after(n);
    }
    if let Some(ms) = args.idle_timeout_ms {
        builder = builder.idle_timeout(Duration::from_millis(ms));
    }
    if let Some(l) = &args.latency_ms {
        builder = builder.latency(parse_latency(l)?);
    }
    let mock = builder.start().await.map_err(|e| e.to_string())?;
    let out = match &args.out_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("herald-mock-{}", mock.port())),
    };
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;

    println!("herald mock: listening on {}", mock.url());
    let ca = out.join("ca.pem");
    mock.write_ca_pem(&ca).map_err(|e| e.to_string())?;
    println!("herald mock: CA certificate {}", ca.display());

    for spec in &args.keys {
        let mut parts = spec.splitn(3, ':');
        let (Some(kid), Some(team), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("--key {spec}: expected KEY_ID:TEAM_ID:PATH"));
        };
        let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
        mock.register_key(kid, team, &bytes)
            .map_err(|e| format!("{path}: {e}"))?;
        println!("herald mock: key {kid} (team {team}) from {path}");
    }
    for spec in &args.generate_keys {
        let Some((kid, team)) = spec.split_once(':') else {
            return Err(format!("--generate-key {spec}: expected KEY_ID:TEAM_ID"));
        };
        let pem = mock.generate_key(kid, team).map_err(|e| e.to_string())?;
        let path = out.join(format!("{kid}.p8"));
        std::fs::write(&path, pem).map_err(|e| format!("{}: {e}", path.display()))?;
        println!(
            "herald mock: key {kid} (team {team}) written to {}",
            path.display()
        );
    }
    for bundle in &args.push_certs {
        let cert = mock
            .issue_push_certificate(bundle)
            .map_err(|e| e.to_string())?;
        let path = out.join(format!("{bundle}.pem"));
        cert.write_pem_bundle(&path).map_err(|e| e.to_string())?;
        let p12 = out.join(format!("{bundle}.p12"));
        cert.write_p12(&p12, &args.p12_password)
            .map_err(|e| e.to_string())?;
        println!(
            "herald mock: push certificate for {bundle} written to {} and {}",
            path.display(),
            p12.display()
        );
    }
    for spec in &args.tokens {
        let (hex, bundle) = spec.split_once(':').unwrap_or((spec.as_str(), "*"));
        mock.register_device(hex, bundle);
    }
    let now = SystemTime::now();
    for hex in &args.unregistered {
        mock.mark_unregistered(hex, now);
    }
    println!("herald mock: ready (Ctrl-C to stop)");

    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    if args.quiet {
        let _ = ctrl_c.as_mut().await;
    } else {
        loop {
            tokio::select! {
                _ = &mut ctrl_c => break,
                rec = mock.next_push(Duration::from_secs(3600)) => {
                    if let Some(rec) = rec {
                        println!("{}", describe(&rec, args.json));
                    }
                }
            }
        }
    }
    let stats = mock.stats();
    println!(
        "herald mock: stopped after {} requests ({} accepted) on {} connections",
        stats.requests, stats.accepted, stats.connections_opened
    );
    Ok(())
}

fn describe(rec: &RecordedRequest, json: bool) -> String {
    if json {
        return serde_json::json!({
            "connection": rec.connection,
            "path": rec.path,
            "device_token": rec.device_token,
            "topic": rec.topic,
            "push_type": rec.push_type,
            "apns_id": rec.apns_id,
            "status": rec.status,
            "reason": rec.reason,
            "payload": rec.payload,
        })
        .to_string();
    }
    format!(
        "push conn={} {} -> {}{} topic={} apns-id={} payload={}",
        rec.connection,
        rec.path,
        rec.status,
        rec.reason
            .as_deref()
            .map(|r| format!(" {r}"))
            .unwrap_or_default(),
        rec.topic.as_deref().unwrap_or("-"),
        rec.apns_id,
        rec.payload
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_else(|| "-".into()),
    )
}
