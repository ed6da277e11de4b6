//! `herald mock`: the mock APNs server, standalone, for app developers and interop tests.
//!
//! A thin face over [`herald::mock::MockApns`]: every option maps to a builder or handle method.
//!
//! Everything is validated before anything is printed: a bad option, an unreadable or invalid
//! key file, a key id or team id that is not 10 letters and digits (as `herald push` checks
//! them), a token that is not hex, an error rate outside 0–1, or options that contradict each
//! other (one key id twice, one bundle id twice with `--push-cert`, a token both known and
//! unregistered, a token for two bundle ids, a key scope for a key that no `--key` or
//! `--generate-key` registers) is a usage error (exit 1), with nothing printed on
//! stdout and nothing left on disk. Once set up, it prints where it listens, its CA file, its
//! keys and tokens, and a ready-to-paste `herald push` command that it will accept (absolute
//! paths, and a URL its certificate names: loopback when it listens on all interfaces); with
//! `--json`, all of that is one JSON object on the first line instead (then one object per
//! push, and one when it stops).
//!
//! Key scopes (Apple's 2025 keys, APNS.md §3): `--key-topics`, `--key-environment` and
//! `--related-keys` map to [`MockApns::restrict_key`], [`MockApns::restrict_key_environment`]
//! and [`MockApns::relate_keys`]. The printed command signs with the first private key the mock
//! accepts in its environment, for a topic the device token takes.
//!
//! Output: when stdout goes away (the reader closed the pipe, as `| head -1` does), the mock
//! says so once on stderr and keeps serving, without printing, until Ctrl-C or SIGTERM. It never
//! panics on a closed stdout or stderr.
//!
//! Files: without `--out-dir`, the CA, generated keys and certificates go to a new directory
//! under the system temp dir, removed when the mock stops (Ctrl-C or SIGTERM) or fails to start.
//! A directory given with `--out-dir` is kept.

use herald::mock::{Environment, Latency, MockApns, RecordedRequest};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::apns_options::{Password, Unechoed, check_key_id, check_team_id, parse_password};
use crate::exit;

/// Appended to `herald mock --help`.
pub(crate) const AFTER_HELP: &str = "\
With no --key, --generate-key or --push-cert, a key HERALDKEY1 (team HERALDTEAM) is generated;
with no --token, one random device token is registered for any bundle id. The printed
`herald push` command uses them: the first push works as is.

--unregistered TOKEN answers 410 Unregistered with the start-up time as its timestamp;
TOKEN@TIME gives the time: RFC 3339 (2026-01-01T00:00:00Z, 2026-01-01T00:00:00.250Z,
2026-01-01T02:00:00+02:00) or milliseconds since 1970 (1767225600000).

Apple's 2025 key scopes: --key-topics, --key-environment and --related-keys name a key that
--key or --generate-key registers, e.g.
  herald mock --generate-key PRODKEY001:TEAM123456 --key-environment PRODKEY001:production
answers that key's tokens 403 BadEnvironmentKeyIdInToken (the mock answers as the sandbox
unless --environment production).
The printed command signs with a key the mock accepts.

Options that contradict each other are refused: one key id given twice, one bundle id given
twice with --push-cert (ignoring case), a token given both with --token and --unregistered, a
token given for two bundle ids, a key scope for a key no --key or --generate-key registers, one
key given two environments or two sets of topics, a key related to two keys.

If stdout is closed (e.g. `herald mock --json | head -1`), the mock says so on stderr and keeps
serving, without printing, until Ctrl-C or SIGTERM.

Exit codes: 0 stopped by Ctrl-C or SIGTERM; 1 usage or start-up error (nothing left behind).";

/// The key generated when the user names no credentials at all.
const DEFAULT_KEY: (&str, &str) = ("HERALDKEY1", "HERALDTEAM");
/// The topic of the printed command when no token or certificate names one.
const DEFAULT_TOPIC: &str = "com.example.app";

/// Options of `herald mock` (boxed: they are many, and `Command` holds them by value).
#[derive(Debug, clap::Args)]
pub(crate) struct MockArgs {
    #[command(flatten)]
    options: Box<MockOptions>,
}

/// `KEY_ID:TEAM_ID:PATH` with the key file read (so a bad path fails before start-up).
#[derive(Debug, Clone)]
struct KeySpec {
    key_id: String,
    team_id: String,
    path: PathBuf,
    bytes: Vec<u8>,
}

/// `KEY_ID:TEAM_ID`.
#[derive(Debug, Clone)]
struct KeyName {
    key_id: String,
    team_id: String,
}

/// `KEY_ID:BUNDLE_ID[,BUNDLE_ID...]`: a topic-specific key.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyTopics {
    key_id: String,
    bundle_ids: Vec<String>,
}

/// `KEY_ID:sandbox|production`: a key for one environment.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyEnvironment {
    key_id: String,
    environment: Environment,
}

/// `HEX[:BUNDLE_ID]`.
#[derive(Debug, Clone)]
struct TokenSpec {
    token: String,
    bundle_id: Option<String>,
}

/// `HEX[@TIME]`.
#[derive(Debug, Clone)]
struct UnregisteredSpec {
    token: String,
    at: Option<SystemTime>,
}

/// The options themselves.
#[derive(Debug, clap::Args)]
struct MockOptions {
    /// Port to listen on (0 = a free port, printed at start-up).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    port: u16,
    /// Address to listen on. Loopback unless you ask otherwise. With 0.0.0.0 or :: it listens
    /// on all interfaces and prints a loopback URL (127.0.0.1 or [::1]), which its certificate
    /// names; clients on other machines need --server-name with the name they connect to.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    bind: IpAddr,
    /// An extra DNS name or IP address for the server certificate (beside localhost, 127.0.0.1,
    /// ::1, Apple's host names, and the --bind address), for clients that connect by another
    /// name. Repeatable.
    #[arg(long = "server-name", value_name = "NAME", value_parser = parse_server_name)]
    server_names: Vec<String>,
    /// Directory for the CA certificate, generated keys and push certificates, kept when the
    /// mock stops (default: a new directory under the system temp dir, removed when it stops).
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Register a provider key: KEY_ID:TEAM_ID:path/to/AuthKey.p8 (or a public key PEM). Repeatable.
    #[arg(long = "key", value_name = "KEY_ID:TEAM_ID:PATH", value_parser = Unechoed(parse_key_spec))]
    keys: Vec<KeySpec>,
    /// Generate and register a provider key, write it as KEY_ID.p8 in the out dir. Repeatable.
    #[arg(long = "generate-key", value_name = "KEY_ID:TEAM_ID",
          value_parser = Unechoed(parse_key_name))]
    generate_keys: Vec<KeyName>,
    /// Make a key (of --key or --generate-key) topic-specific: its tokens push only to these
    /// bundle ids (others: 400 TopicDisallowed), and share a connection with no other key but
    /// its related one (403 UnrelatedKeyIdInToken). Repeatable.
    #[arg(long = "key-topics", value_name = "KEY_ID:BUNDLE_ID[,BUNDLE_ID...]",
          value_parser = Unechoed(parse_key_topics))]
    key_topics: Vec<KeyTopics>,
    /// Restrict a key (of --key or --generate-key) to one environment: answering as the other
    /// (--environment), the mock refuses its tokens with 403 BadEnvironmentKeyIdInToken.
    /// Repeatable.
    #[arg(long = "key-environment", value_name = "KEY_ID:sandbox|production",
          value_parser = Unechoed(parse_key_environment))]
    key_environments: Vec<KeyEnvironment>,
    /// Relate two keys (of --key or --generate-key): their tokens may share a connection,
    /// which a topic-specific key otherwise shares with no other key. One related key per key.
    /// Repeatable.
    #[arg(long = "related-keys", value_name = "KEY_ID:KEY_ID",
          value_parser = Unechoed(parse_related_keys))]
    related_keys: Vec<(String, String)>,
    /// Issue a push certificate for a bundle id; writes BUNDLE.pem (certificate + key) and
    /// BUNDLE.p12 (see --p12-password). Repeatable.
    #[arg(long = "push-cert", value_name = "BUNDLE_ID", value_parser = parse_bundle_id)]
    push_certs: Vec<String>,
    /// Password of the .p12 files written for --push-cert (default: none; taken whole, even
    /// when it starts with `-`).
    #[arg(long, default_value = "", hide_default_value = true, allow_hyphen_values = true,
          value_parser = Unechoed(parse_password))]
    p12_password: Password,
    /// A known device token (hex), optionally bound to a bundle id (else valid for any). Repeatable.
    #[arg(long = "token", value_name = "HEX[:BUNDLE_ID]", value_parser = parse_token_spec)]
    tokens: Vec<TokenSpec>,
    /// A device token answered 410 Unregistered, since TIME (RFC 3339 or milliseconds since
    /// 1970; default: the start-up time). Repeatable.
    #[arg(long = "unregistered", value_name = "HEX[@TIME]", value_parser = parse_unregistered)]
    unregistered: Vec<UnregisteredSpec>,
    /// Accept pushes to unknown (well-formed) device tokens instead of 400 BadDeviceToken.
    #[arg(long)]
    accept_unknown_tokens: bool,
    /// MAX_CONCURRENT_STREAMS after the ramp (at least 1).
    #[arg(long, default_value_t = 1000, allow_negative_numbers = true,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_streams: u32,
    /// Drop the stream limit to 1 after each rejected push.
    #[arg(long)]
    drop_to_one_after_rejection: bool,
    /// GOAWAY each connection after this many requests (at least 1).
    #[arg(long, allow_negative_numbers = true, value_parser = clap::value_parser!(u64).range(1..))]
    goaway_after: Option<u64>,
    /// GOAWAY (IdleTimeout) connections without requests or PINGs for this many ms.
    #[arg(long, value_name = "MS", allow_negative_numbers = true,
          value_parser = clap::value_parser!(u64).range(1..))]
    idle_timeout_ms: Option<u64>,
    /// Added latency per answer, in ms: N, or MIN-MAX for a uniform draw.
    #[arg(long, value_name = "MS|MIN-MAX", allow_negative_numbers = true, value_parser = parse_latency)]
    latency_ms: Option<Latency>,
    /// Fraction (0 to 1) of otherwise accepted pushes answered 500/503.
    #[arg(long, value_name = "0..1", default_value_t = 0.0, allow_negative_numbers = true,
          value_parser = parse_rate)]
    error_rate: f64,
    /// Which of Apple's environments to answer as: sandbox (the development environment;
    /// accepted pushes carry apns-unique-id) or production (no apns-unique-id). A push
    /// certificate valid only for the other one is answered 403 BadCertificateEnvironment.
    #[arg(long, value_name = "sandbox|production", default_value = "sandbox",
          value_parser = parse_environment)]
    environment: Environment,
    /// Print JSON: one start-up object (address, CA, keys, tokens, the push command), then one
    /// object per push, then one when stopped.
    #[arg(long)]
    json: bool,
    /// Do not print each push (for load tests: printing costs more than answering). The
    /// start-up and stop lines are still printed; with --json, as JSON.
    #[arg(long)]
    quiet: bool,
}

/// `sandbox` (or `development`, Apple's other name for it) or `production`.
fn parse_environment(s: &str) -> Result<Environment, String> {
    match s.to_ascii_lowercase().as_str() {
        "sandbox" | "development" => Ok(Environment::Sandbox),
        "production" => Ok(Environment::Production),
        _ => Err(format!(
            "{s:?} is not an environment: sandbox or production"
        )),
    }
}

/// A DNS name or an IP address, for the server certificate.
fn parse_server_name(s: &str) -> Result<String, String> {
    let dns = |s: &str| {
        !s.is_empty()
            && s.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'*')
            })
    };
    if s.parse::<IpAddr>().is_ok() || dns(s) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "{s:?} is neither a DNS name (e.g. mock.local) nor an IP address"
        ))
    }
}

fn parse_latency(s: &str) -> Result<Latency, String> {
    if s.trim_start().starts_with('-') {
        return Err(format!(
            "{s} is negative: give N or MIN-MAX, in milliseconds from 0"
        ));
    }
    let ms = |v: &str| {
        v.trim()
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| format!("{v:?} is not a whole number of milliseconds"))
    };
    match s.split_once('-') {
        Some((a, b)) => {
            let (min, max) = (ms(a)?, ms(b)?);
            if min > max {
                return Err(format!("{s}: the minimum is above the maximum"));
            }
            Ok(Latency::Uniform { min, max })
        }
        None => Ok(Latency::Fixed(ms(s)?)),
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        Ok(_) => Err("a fraction from 0 (never) to 1 (always), e.g. 0.05".into()),
        Err(_) => Err("not a number: give a fraction from 0 to 1, e.g. 0.05".into()),
    }
}

/// A device token: a non-empty, even number of hex digits (stored lowercase).
fn parse_hex_token(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("a device token is hex digits; this one is empty".into());
    }
    if let Some(bad) = s.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(format!(
            "a device token is hex digits (0-9, a-f); {bad:?} is not one"
        ));
    }
    if !s.len().is_multiple_of(2) {
        return Err(format!(
            "a device token is whole bytes: an even number of hex digits, not {}",
            s.len()
        ));
    }
    Ok(s.to_ascii_lowercase())
}

/// A bundle id as Apple allows them: letters, digits, `-` and `.`, in non-empty parts (a
/// reverse-DNS name such as com.example.app). `--push-cert` names files after it, so anything
/// else (a `/`, `..`) could write outside the out dir.
fn parse_bundle_id(s: &str) -> Result<String, String> {
    let part = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !s.split('.').all(part) {
        return Err(format!(
            "{s:?} is not a bundle id: letters, digits, '-' and '.' (e.g. com.example.app)"
        ));
    }
    Ok(s.to_owned())
}

fn parse_token_spec(s: &str) -> Result<TokenSpec, String> {
    let (hex, bundle) = match s.split_once(':') {
        Some((hex, bundle)) => (hex, Some(parse_bundle_id(bundle)?)),
        None => (s, None),
    };
    Ok(TokenSpec {
        token: parse_hex_token(hex)?,
        bundle_id: bundle,
    })
}

fn parse_unregistered(s: &str) -> Result<UnregisteredSpec, String> {
    let (hex, at) = match s.split_once('@') {
        Some((hex, at)) => (hex, Some(crate::time::parse(at)?)),
        None => (s, None),
    };
    Ok(UnregisteredSpec {
        token: parse_hex_token(hex)?,
        at,
    })
}

fn parse_key_name(s: &str) -> Result<KeyName, String> {
    const OPTION: &str = "--generate-key";
    // As `herald push` checks them: the printed command must be one it takes.
    let (key_id, team_id) = split_key_id(OPTION, "KEY_ID:TEAM_ID", s)?;
    check_team_id(OPTION, team_id)?;
    Ok(KeyName {
        key_id: key_id.to_owned(),
        team_id: team_id.to_owned(),
    })
}

/// `KEY_ID:VALUE` for the key-scope options; the key id checked as `--key` checks it (the
/// message never repeats a value that is not an id: it may be key material).
fn split_key_id<'a>(option: &str, form: &str, s: &'a str) -> Result<(&'a str, &'a str), String> {
    let Some((key_id, value)) = s.split_once(':') else {
        return Err(format!("{option}: expected {form}"));
    };
    check_key_id(option, key_id)?;
    Ok((key_id, value))
}

fn parse_key_topics(s: &str) -> Result<KeyTopics, String> {
    const OPTION: &str = "--key-topics";
    let (key_id, list) = split_key_id(OPTION, "KEY_ID:BUNDLE_ID[,BUNDLE_ID...]", s)?;
    let bundle_ids = list
        .split(',')
        .map(|b| parse_bundle_id(b).map_err(|e| format!("{OPTION} {key_id}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(KeyTopics {
        key_id: key_id.to_owned(),
        bundle_ids,
    })
}

fn parse_key_environment(s: &str) -> Result<KeyEnvironment, String> {
    const OPTION: &str = "--key-environment";
    let (key_id, environment) = split_key_id(OPTION, "KEY_ID:sandbox or KEY_ID:production", s)?;
    let environment =
        parse_environment(environment).map_err(|e| format!("{OPTION} {key_id}: {e}"))?;
    Ok(KeyEnvironment {
        key_id: key_id.to_owned(),
        environment,
    })
}

fn parse_related_keys(s: &str) -> Result<(String, String), String> {
    const OPTION: &str = "--related-keys";
    let (key_id, related) = split_key_id(OPTION, "KEY_ID:KEY_ID", s)?;
    check_key_id(OPTION, related)?;
    if key_id == related {
        return Err(format!(
            "{OPTION} {key_id}:{related}: a key is not related to itself: give two key ids"
        ));
    }
    Ok((key_id.to_owned(), related.to_owned()))
}

fn parse_key_spec(s: &str) -> Result<KeySpec, String> {
    let mut parts = s.splitn(3, ':');
    let (Some(key_id), Some(team_id), Some(path)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err("--key: expected KEY_ID:TEAM_ID:PATH".into());
    };
    let bytes = std::fs::read(path).map_err(|e| format!("--key: cannot read {path}: {e}"))?;
    // As `herald push` checks them: the printed command may sign with this key.
    check_key_id("--key", key_id)?;
    check_team_id("--key", team_id)?;
    Ok(KeySpec {
        key_id: key_id.to_owned(),
        team_id: team_id.to_owned(),
        // Absolute, so that the printed command works from any directory.
        path: std::path::absolute(path).unwrap_or_else(|_| PathBuf::from(path)),
        bytes,
    })
}

/// Runs `herald mock`; returns the exit code.
pub(crate) async fn run(args: MockArgs) -> u8 {
    match serve(*args.options).await {
        Ok(()) => exit::OK,
        Err(e) => {
            errln!("herald mock: {e}");
            exit::USAGE
        }
    }
}

/// Where the files go: a directory we own (removed on drop) or the user's (kept).
struct OutDir {
    /// The directory, absolute (the printed paths must work from any directory).
    path: PathBuf,
    /// The directory when we own it: dropping it removes it.
    temporary: Option<tempfile::TempDir>,
}

impl OutDir {
    fn path(&self) -> &Path {
        &self.path
    }

    fn is_temporary(&self) -> bool {
        self.temporary.is_some()
    }
}

/// `path`, absolute (relative to the current directory), with the error naming it.
fn absolute(path: &Path) -> Result<PathBuf, String> {
    std::path::absolute(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Refuses options that contradict each other, before anything starts: the mock would keep one
/// of them and the printed command could use the other.
fn check_consistent(args: &MockOptions) -> Result<(), String> {
    // A key id names one key: the mock keeps the last one registered under it, and
    // --generate-key writes KEY_ID.p8.
    let mut key_ids: HashMap<&str, &str> = HashMap::new();
    let given = (args.keys.iter().map(|k| (k.key_id.as_str(), "--key"))).chain(
        args.generate_keys
            .iter()
            .map(|k| (k.key_id.as_str(), "--generate-key")),
    );
    for (id, option) in given {
        if let Some(first) = key_ids.insert(id, option) {
            let how = if first == option {
                format!("twice with {option}")
            } else {
                format!("with {first} and with {option}")
            };
            return Err(format!(
                "key id {id} is given {how}: a key id names one key"
            ));
        }
    }
    check_key_scopes(args, &key_ids)?;
    // A bundle id has one push certificate: the second would overwrite the first's
    // BUNDLE.pem and BUNDLE.p12. Apple's bundle ids are case-insensitive, and so are some file
    // systems (macOS by default): com.example.app and COM.example.app are the same.
    let mut certs: HashMap<String, &str> = HashMap::new();
    for bundle in &args.push_certs {
        if let Some(first) = certs.insert(bundle.to_ascii_lowercase(), bundle) {
            let given = if first == bundle {
                format!("{bundle} is given twice")
            } else {
                format!("{first} and {bundle} are given (bundle ids ignore case)")
            };
            return Err(format!(
                "--push-cert: {given}: a bundle id has one push certificate \
                 ({bundle}.pem and {bundle}.p12); give each bundle id once"
            ));
        }
    }
    // A device token belongs to one app (or, without a bundle id, to any).
    let for_app =
        |b: Option<&str>| b.map_or("any bundle id".to_owned(), |b| format!("bundle id {b}"));
    let mut known: HashMap<&str, Option<&str>> = HashMap::new();
    for t in &args.tokens {
        let bundle = t.bundle_id.as_deref();
        if let Some(first) = known.insert(&t.token, bundle)
            && first != bundle
        {
            return Err(format!(
                "--token {}: given for {}, then for {}: a device token belongs to one app",
                t.token,
                for_app(first),
                for_app(bundle)
            ));
        }
    }
    // A token is known (answered 200) or unregistered (410), not both; and gone since one time.
    let mut gone: HashMap<&str, Option<SystemTime>> = HashMap::new();
    for u in &args.unregistered {
        if known.contains_key(u.token.as_str()) {
            return Err(format!(
                "--unregistered {}: the same token is given with --token: a device token is \
                 either known (--token) or unregistered (--unregistered)",
                u.token
            ));
        }
        if let Some(first) = gone.insert(&u.token, u.at)
            && first != u.at
        {
            return Err(format!(
                "--unregistered {}: given twice with different times",
                u.token
            ));
        }
    }
    Ok(())
}

/// Refuses a key-scope option (`--key-topics`, `--key-environment`, `--related-keys`) for a
/// key id that no `--key` or `--generate-key` registers (the mock would have nothing to
/// restrict), one key given two different scopes of a kind, and a key related to two keys
/// (Apple lets a key have one related key).
fn check_key_scopes(args: &MockOptions, registered: &HashMap<&str, &str>) -> Result<(), String> {
    let known = |option: &str, id: &str| {
        if registered.contains_key(id) {
            Ok(())
        } else {
            Err(format!(
                "{option} {id}: no --key or --generate-key registers this key id (the key \
                 generated when none is given takes no scope): add --generate-key \
                 {id}:TEAM_ID or --key {id}:TEAM_ID:PATH"
            ))
        }
    };
    let mut topics: HashMap<&str, &KeyTopics> = HashMap::new();
    for t in &args.key_topics {
        known("--key-topics", &t.key_id)?;
        if let Some(first) = topics.insert(&t.key_id, t)
            && first != t
        {
            return Err(format!(
                "--key-topics {}: given twice with different bundle ids: give all of the \
                 key's bundle ids in one --key-topics, separated by commas",
                t.key_id
            ));
        }
    }
    let mut environments: HashMap<&str, Environment> = HashMap::new();
    for e in &args.key_environments {
        known("--key-environment", &e.key_id)?;
        if let Some(first) = environments.insert(&e.key_id, e.environment)
            && first != e.environment
        {
            return Err(format!(
                "--key-environment {}: given for sandbox and for production: a key restricted \
                 to one environment is for that one only (leave it out for both)",
                e.key_id
            ));
        }
    }
    let mut related: HashMap<&str, &str> = HashMap::new();
    for (a, b) in &args.related_keys {
        known("--related-keys", a)?;
        known("--related-keys", b)?;
        for (key, other) in [(a, b), (b, a)] {
            if let Some(first) = related.insert(key, other)
                && first != other
            {
                return Err(format!(
                    "--related-keys: key {key} is related to {first} and to {other}: a key has \
                     at most one related key"
                ));
            }
        }
    }
    Ok(())
}

/// The URL a client on this machine reaches the mock at: its own, except that an unspecified
/// bind address (0.0.0.0, ::) becomes loopback, which the certificate names.
fn reach_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("https://{}", SocketAddr::new(ip, addr.port()))
}

/// The extra names of the server certificate: --server-name, and a bind address that is
/// neither unspecified nor one the certificate already names, so that the printed URL works.
fn server_names(args: &MockOptions) -> Vec<String> {
    let mut names = args.server_names.clone();
    let ip = args.bind;
    let named = ip == IpAddr::V4(Ipv4Addr::LOCALHOST) || ip == IpAddr::V6(Ipv6Addr::LOCALHOST);
    if !ip.is_unspecified() && !named {
        names.push(ip.to_string());
    }
    names
}

/// Ctrl-C and (on Unix) SIGTERM, registered before anything is written, so the out dir is
/// removed however the user stops the mock.
pub(crate) struct StopSignal {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl StopSignal {
    pub(crate) fn install() -> Result<StopSignal, String> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let err = |e: std::io::Error| format!("cannot listen for signals: {e}");
            Ok(StopSignal {
                interrupt: signal(SignalKind::interrupt()).map_err(err)?,
                terminate: signal(SignalKind::terminate()).map_err(err)?,
            })
        }
        #[cfg(not(unix))]
        Ok(StopSignal {})
    }

    pub(crate) async fn wait(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Quotes a word for a POSIX shell when it needs it.
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// What the mock knows, gathered before anything is printed.
struct Setup {
    keys: Vec<Value>,
    certificates: Vec<Value>,
    tokens: Vec<TokenSpec>,
    unregistered: Vec<(String, SystemTime)>,
    /// The `herald push` arguments (after the program name) the mock will accept.
    push_args: Option<Vec<String>>,
    /// The key the push command signs with: (key id, team id, path).
    push_key: Option<(String, String, PathBuf)>,
    /// No push command although there are private keys: each is for the other environment, or
    /// for other bundle ids than the token's.
    scoped_out: bool,
}

/// A key's scopes as the options give them (none: team-scoped, both environments).
struct KeyScope<'a> {
    topics: Option<&'a Vec<String>>,
    environment: Option<Environment>,
    related: Option<&'a str>,
}

fn key_scope<'a>(args: &'a MockOptions, key_id: &str) -> KeyScope<'a> {
    KeyScope {
        topics: args
            .key_topics
            .iter()
            .find(|t| t.key_id == key_id)
            .map(|t| &t.bundle_ids),
        environment: args
            .key_environments
            .iter()
            .find(|e| e.key_id == key_id)
            .map(|e| e.environment),
        related: args.related_keys.iter().find_map(|(a, b)| {
            if a == key_id {
                Some(b.as_str())
            } else if b == key_id {
                Some(a.as_str())
            } else {
                None
            }
        }),
    }
}

async fn serve(args: MockOptions) -> Result<(), String> {
    check_consistent(&args)?;
    let mut stop = StopSignal::install()?;
    let mut builder = MockApns::builder()
        .bind(SocketAddr::new(args.bind, args.port))
        .max_streams(args.max_streams)
        .drop_to_one_after_rejection(args.drop_to_one_after_rejection)
        .accept_unknown_tokens(args.accept_unknown_tokens)
        .error_rate(args.error_rate)
        .environment(args.environment);
    for name in server_names(&args) {
        builder = builder.server_name(name);
    }
    if let Some(n) = args.goaway_after {
        builder = builder.goaway_after(n);
    }
    if let Some(ms) = args.idle_timeout_ms {
        builder = builder.idle_timeout(Duration::from_millis(ms));
    }
    if let Some(l) = args.latency_ms {
        builder = builder.latency(l);
    }
    let mock = builder
        .start()
        .await
        .map_err(|e| format!("cannot start on {}:{}: {e}", args.bind, args.port))?;
    let url = reach_url(mock.addr());
    // What a user's --out-dir held before: a failed start-up removes only what it added.
    let before = args.out_dir.as_deref().map(DirBefore::look);
    let out = match &args.out_dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
            OutDir {
                path: absolute(d)?,
                temporary: None,
            }
        }
        None => {
            let dir = tempfile::Builder::new()
                .prefix(&format!("herald-mock-{}-", mock.port()))
                .tempdir()
                .map_err(|e| format!("cannot create a directory under the temp dir: {e}"))?;
            OutDir {
                // Dropping `dir` on this error removes it.
                path: absolute(dir.path())?,
                temporary: Some(dir),
            }
        }
    };
    // From here on, an error drops `out` (removing a temporary directory) before returning.
    let ca = out.path().join("ca.pem");
    let setup = mock
        .write_ca_pem(&ca)
        .map_err(|e| format!("{}: {e}", ca.display()))
        .and_then(|()| set_up(&mock, &args, out.path(), &url));
    let setup = match setup {
        Ok(setup) => setup,
        Err(e) => {
            if let Some(before) = before {
                before.restore();
            }
            return Err(e);
        }
    };

    let startup = if args.json {
        startup_json(&mock, &url, &out, &ca, &setup).to_string()
    } else {
        startup_text(&mock, &url, &out, &ca, &setup)
    };
    // False once stdout is gone: the mock then serves on without printing.
    let mut printing = outln!("{startup}");
    if !printing {
        stdout_gone();
    }
    loop {
        tokio::select! {
            _ = stop.wait() => break,
            rec = mock.next_push(Duration::from_secs(3600)), if printing && !args.quiet => {
                if let Some(rec) = rec
                    && !outln!("{}", describe(&rec, args.json))
                {
                    printing = false;
                    stdout_gone();
                }
            }
        }
    }
    let stats = mock.stats();
    if printing {
        if args.json {
            outln!(
                "{}",
                json!({
                    "event": "stopped",
                    "requests": stats.requests,
                    "accepted": stats.accepted,
                    "connections": stats.connections_opened,
                })
            );
        } else {
            outln!(
                "herald mock: stopped after {} requests ({} accepted) on {} connections",
                stats.requests,
                stats.accepted,
                stats.connections_opened
            );
        }
    }
    drop(out);
    Ok(())
}

/// Says, once, that stdout is gone and the mock serves on without printing.
fn stdout_gone() {
    errln!("herald mock: stdout is closed: serving on without printing, until Ctrl-C or SIGTERM");
}

/// Registers keys, certificates and tokens; picks the push command. Prints nothing.
fn set_up(mock: &MockApns, args: &MockOptions, out: &Path, url: &str) -> Result<Setup, String> {
    let mut keys = Vec::new();
    // Private keys the printed command can sign with: (key id, team id, path).
    let mut signing: Vec<(String, String, PathBuf)> = Vec::new();
    for k in &args.keys {
        mock.register_key(&k.key_id, &k.team_id, &k.bytes)
            .map_err(|e| format!("--key {}: {}: {e}", k.key_id, k.path.display()))?;
        keys.push(json!({
            "key_id": k.key_id, "team_id": k.team_id, "path": k.path, "generated": false,
        }));
        if String::from_utf8_lossy(&k.bytes).contains("PRIVATE KEY") {
            signing.push((k.key_id.clone(), k.team_id.clone(), k.path.clone()));
        }
    }
    let mut generate = args.generate_keys.clone();
    if args.keys.is_empty() && generate.is_empty() && args.push_certs.is_empty() {
        generate.push(KeyName {
            key_id: DEFAULT_KEY.0.into(),
            team_id: DEFAULT_KEY.1.into(),
        });
    }
    let mut generated = Vec::new();
    for k in &generate {
        let pem = mock
            .generate_key(&k.key_id, &k.team_id)
            .map_err(|e| format!("--generate-key {}: {e}", k.key_id))?;
        let path = out.join(format!("{}.p8", k.key_id));
        std::fs::write(&path, pem).map_err(|e| format!("{}: {e}", path.display()))?;
        keys.push(json!({
            "key_id": k.key_id, "team_id": k.team_id, "path": path, "generated": true,
        }));
        generated.push((k.key_id.clone(), k.team_id.clone(), path));
    }
    // A generated key is the surest to sign with: it goes first.
    generated.append(&mut signing);
    let signing = generated;

    // Apple's 2025 key scopes, on keys registered above (check_consistent saw to that).
    let unknown = |option: &str, key_id: &str| format!("{option} {key_id}: no such key");
    for t in &args.key_topics {
        let bundle_ids: Vec<&str> = t.bundle_ids.iter().map(String::as_str).collect();
        if !mock.restrict_key(&t.key_id, &bundle_ids) {
            return Err(unknown("--key-topics", &t.key_id));
        }
    }
    for e in &args.key_environments {
        if !mock.restrict_key_environment(&e.key_id, e.environment) {
            return Err(unknown("--key-environment", &e.key_id));
        }
    }
    for (a, b) in &args.related_keys {
        if !mock.relate_keys(a, b) {
            return Err(format!(
                "--related-keys {a}:{b}: the mock refused to relate them"
            ));
        }
    }
    for k in &mut keys {
        let scope = key_scope(args, k["key_id"].as_str().unwrap_or_default());
        k["topics"] = json!(scope.topics);
        k["environment"] = json!(scope.environment.map(environment_name));
        k["related_key"] = json!(scope.related);
    }

    let mut certificates = Vec::new();
    for bundle in &args.push_certs {
        let cert = mock
            .issue_push_certificate(bundle)
            .map_err(|e| format!("--push-cert {bundle}: {e}"))?;
        let pem = out.join(format!("{bundle}.pem"));
        cert.write_pem_bundle(&pem)
            .map_err(|e| format!("{}: {e}", pem.display()))?;
        let p12 = out.join(format!("{bundle}.p12"));
        cert.write_p12(&p12, args.p12_password.as_str())
            .map_err(|e| format!("{}: {e}", p12.display()))?;
        certificates.push(json!({ "bundle_id": bundle, "pem": pem, "p12": p12 }));
    }

    // Each token once (check_consistent refused a token given for two bundle ids).
    let mut seen = HashSet::new();
    let mut tokens: Vec<TokenSpec> = args
        .tokens
        .iter()
        .filter(|t| seen.insert(t.token.clone()))
        .cloned()
        .collect();
    if tokens.is_empty() {
        let bytes: [u8; 32] = rand::random();
        tokens.push(TokenSpec {
            token: bytes.iter().map(|b| format!("{b:02x}")).collect(),
            bundle_id: None,
        });
    }
    for t in &tokens {
        mock.register_device(&t.token, t.bundle_id.as_deref().unwrap_or("*"));
    }
    let started = SystemTime::now();
    let mut seen = HashSet::new();
    let unregistered: Vec<(String, SystemTime)> = args
        .unregistered
        .iter()
        .filter(|u| seen.insert(u.token.clone()))
        .map(|u| (u.token.clone(), u.at.unwrap_or(started)))
        .collect();
    for (token, at) in &unregistered {
        mock.mark_unregistered(token, *at);
    }

    // The command: the first token, signed with a key, else a certificate for its bundle.
    let token = &tokens[0];
    let ca = out.join("ca.pem");
    let mut push_args: Vec<String> = vec![
        "push".into(),
        "--url".into(),
        url.to_owned(),
        "--ca".into(),
        ca.display().to_string(),
    ];
    let mut push_key = None;
    // The first key whose tokens the mock accepts here, for a topic the token takes.
    let usable = signing.iter().find_map(|(key_id, team_id, path)| {
        let scope = key_scope(args, key_id);
        if scope.environment.is_some_and(|e| e != mock.environment()) {
            return None;
        }
        let topic = match (scope.topics, &token.bundle_id) {
            (Some(topics), Some(bundle)) => topics.contains(bundle).then(|| bundle.clone())?,
            (Some(topics), None) => topics.first()?.clone(),
            (None, Some(bundle)) => bundle.clone(),
            (None, None) => args
                .push_certs
                .first()
                .cloned()
                .unwrap_or_else(|| DEFAULT_TOPIC.into()),
        };
        Some((key_id, team_id, path, topic))
    });
    if let Some((key_id, team_id, path, topic)) = usable {
        push_args.extend([
            "--p8".into(),
            path.display().to_string(),
            "--key-id".into(),
            key_id.clone(),
            "--team-id".into(),
            team_id.clone(),
            "--topic".into(),
            topic,
        ]);
        push_key = Some((key_id.clone(), team_id.clone(), path.clone()));
    } else if let Some(bundle) = args
        .push_certs
        .iter()
        .find(|b| token.bundle_id.as_deref().is_none_or(|t| t == b.as_str()))
    {
        push_args.extend([
            "--cert-pem".into(),
            out.join(format!("{bundle}.pem")).display().to_string(),
            "--topic".into(),
            bundle.clone(),
        ]);
    } else {
        return Ok(Setup {
            keys,
            certificates,
            tokens,
            unregistered,
            push_args: None,
            push_key: None,
            scoped_out: !signing.is_empty(),
        });
    }
    push_args.extend([
        "--device".into(),
        token.token.clone(),
        "--alert".into(),
        "Hello from herald".into(),
    ]);
    Ok(Setup {
        keys,
        certificates,
        tokens,
        unregistered,
        push_args: Some(push_args),
        push_key,
        scoped_out: false,
    })
}

/// The program name as invoked, so the printed command runs as pasted (`cargo run` gives a
/// full path; an installed `herald` gives `herald`). A relative path (`./herald`) is made
/// absolute, so that the command works from any directory.
fn program() -> String {
    let Some(arg0) = std::env::args_os().next() else {
        return "herald".into();
    };
    let path = PathBuf::from(&arg0);
    let path = if path.is_relative() && path.components().count() > 1 {
        std::path::absolute(&path).unwrap_or(path)
    } else {
        path
    };
    path.to_string_lossy().into_owned()
}

/// A user's `--out-dir` as it was before start-up, so that a failed start-up leaves it so.
struct DirBefore {
    dir: PathBuf,
    existed: bool,
    entries: HashSet<std::ffi::OsString>,
}

impl DirBefore {
    fn look(dir: &Path) -> DirBefore {
        let entries = std::fs::read_dir(dir)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.file_name())).collect())
            .unwrap_or_default();
        DirBefore {
            dir: dir.to_path_buf(),
            existed: dir.exists(),
            entries,
        }
    }

    /// Removes the files added since [`look`](Self::look), and the directory if it is new
    /// (best effort: what cannot be removed is left).
    fn restore(self) {
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                if !self.entries.contains(&e.file_name()) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        if !self.existed {
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

/// The environment's name, as `--environment` takes it.
fn environment_name(environment: Environment) -> &'static str {
    match environment {
        Environment::Production => "production",
        _ => "sandbox",
    }
}

fn push_command(args: &[String]) -> String {
    std::iter::once(program())
        .chain(args.iter().cloned())
        .map(|w| shell_quote(&w))
        .collect::<Vec<_>>()
        .join(" ")
}

fn startup_json(mock: &MockApns, url: &str, out: &OutDir, ca: &Path, setup: &Setup) -> Value {
    let (key_id, team_id, key_path) = match &setup.push_key {
        Some((k, t, p)) => (json!(k), json!(t), json!(p)),
        None => (Value::Null, Value::Null, Value::Null),
    };
    json!({
        "event": "listening",
        "url": url,
        "address": mock.addr().to_string(),
        "port": mock.port(),
        "environment": environment_name(mock.environment()),
        "ca": ca,
        "out_dir": out.path(),
        "out_dir_removed_on_exit": out.is_temporary(),
        "key_id": key_id,
        "team_id": team_id,
        "key_path": key_path,
        "keys": setup.keys,
        "certificates": setup.certificates,
        "tokens": setup.tokens.iter().map(|t| json!({
            "token": t.token, "bundle_id": t.bundle_id,
        })).collect::<Vec<_>>(),
        "unregistered": setup.unregistered.iter().map(|(t, at)| json!({
            "token": t, "since": crate::time::format_millis(*at),
        })).collect::<Vec<_>>(),
        "push_command": setup.push_args.as_deref().map(push_command),
        "push_args": setup.push_args,
    })
}

/// The start-up text, one fact a line (printed in one write).
fn startup_text(mock: &MockApns, url: &str, out: &OutDir, ca: &Path, setup: &Setup) -> String {
    use std::fmt::Write as _;
    let mut text = String::new();
    // Writing to a String cannot fail.
    macro_rules! say {
        ($($arg:tt)*) => {{
            let _ = writeln!(text, $($arg)*);
        }};
    }
    if mock.addr().ip().is_unspecified() {
        say!(
            "herald mock: listening on {} (all interfaces); this machine reaches it at {url}",
            mock.addr()
        );
    } else {
        say!("herald mock: listening on {url}");
    }
    if mock.environment() != Environment::Sandbox {
        say!(
            "herald mock: answering as {} (no apns-unique-id)",
            environment_name(mock.environment())
        );
    }
    say!("herald mock: CA certificate {}", ca.display());
    for k in &setup.keys {
        let how = if k["generated"] == json!(true) {
            "written to"
        } else {
            "from"
        };
        say!(
            "herald mock: key {} (team {}) {how} {}",
            k["key_id"].as_str().unwrap_or_default(),
            k["team_id"].as_str().unwrap_or_default(),
            k["path"].as_str().unwrap_or_default()
        );
    }
    for k in &setup.keys {
        let mut scope = Vec::new();
        if let Some(topics) = k["topics"].as_array() {
            let topics: Vec<&str> = topics.iter().filter_map(Value::as_str).collect();
            scope.push(format!("topic-specific ({})", topics.join(", ")));
        }
        if let Some(e) = k["environment"].as_str() {
            scope.push(format!("{e} only"));
        }
        if let Some(r) = k["related_key"].as_str() {
            scope.push(format!("related to {r}"));
        }
        if !scope.is_empty() {
            say!(
                "herald mock: key {} is {}",
                k["key_id"].as_str().unwrap_or_default(),
                scope.join(", ")
            );
        }
    }
    for c in &setup.certificates {
        say!(
            "herald mock: push certificate for {} written to {} and {}",
            c["bundle_id"].as_str().unwrap_or_default(),
            c["pem"].as_str().unwrap_or_default(),
            c["p12"].as_str().unwrap_or_default()
        );
    }
    for t in &setup.tokens {
        say!(
            "herald mock: device token {} ({})",
            t.token,
            t.bundle_id
                .as_deref()
                .map_or("any bundle id".to_owned(), |b| format!("bundle id {b}"))
        );
    }
    for (t, at) in &setup.unregistered {
        say!(
            "herald mock: device token {t} answers 410 Unregistered since {}",
            crate::time::format_millis(*at)
        );
    }
    if out.is_temporary() {
        say!(
            "herald mock: {} is removed when the mock stops",
            out.path().display()
        );
    }
    match &setup.push_args {
        Some(args) => say!("herald mock: send a push with\n  {}", push_command(args)),
        None if setup.scoped_out => say!(
            "herald mock: no push command: each private key is for the other environment \
             (--key-environment) or for other bundle ids than the token's (--key-topics), and \
             no push certificate matches: add --generate-key KEY_ID:TEAM_ID or --push-cert BUNDLE_ID"
        ),
        None => say!(
            "herald mock: no private key or matching push certificate to send with: \
             add --generate-key KEY_ID:TEAM_ID or --push-cert BUNDLE_ID"
        ),
    }
    text.push_str("herald mock: ready (Ctrl-C to stop)");
    text
}

fn describe(rec: &RecordedRequest, json: bool) -> String {
    if json {
        return json!({
            "event": "push",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_must_be_whole_hex_bytes() {
        assert_eq!(parse_hex_token("ABcd").unwrap(), "abcd");
        assert!(parse_hex_token("zz").unwrap_err().contains("hex"));
        assert!(parse_hex_token("abc").unwrap_err().contains("even"));
        assert!(parse_hex_token("").is_err());
    }

    #[test]
    fn bundle_ids_are_letters_digits_dashes_and_dots() {
        assert_eq!(
            parse_bundle_id("com.example.my-app2").unwrap(),
            "com.example.my-app2"
        );
        for bad in [
            "",
            "com.example/app",
            "../app",
            "com..app",
            ".app",
            "com.app.",
            "a b",
            "a_b",
        ] {
            assert!(parse_bundle_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn error_rate_is_a_fraction() {
        assert_eq!(parse_rate("0.25"), Ok(0.25));
        assert_eq!(parse_rate("1"), Ok(1.0));
        assert!(parse_rate("2").is_err());
        assert!(parse_rate("-0.1").is_err());
        assert!(parse_rate("NaN").is_err());
        assert!(parse_rate("lots").is_err());
    }

    #[test]
    fn unregistered_takes_an_optional_time() {
        let u = parse_unregistered("abcd@1767225600000").unwrap();
        assert_eq!(u.token, "abcd");
        assert_eq!(
            u.at,
            Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1_767_225_600_000))
        );
        assert!(parse_unregistered("abcd").unwrap().at.is_none());
        assert!(parse_unregistered("abcd@yesterday").is_err());
        assert!(parse_unregistered("zz@1").is_err());
    }

    #[test]
    fn environments_are_read_by_name() {
        assert_eq!(parse_environment("sandbox"), Ok(Environment::Sandbox));
        assert_eq!(parse_environment("Development"), Ok(Environment::Sandbox));
        assert_eq!(parse_environment("production"), Ok(Environment::Production));
        let err = parse_environment("prod").unwrap_err();
        assert!(err.contains("sandbox or production"), "{err}");
    }

    #[test]
    fn an_unspecified_bind_address_is_reached_on_loopback() {
        let url = |a: &str| reach_url(a.parse().unwrap());
        assert_eq!(url("0.0.0.0:8443"), "https://127.0.0.1:8443");
        assert_eq!(url("[::]:8443"), "https://[::1]:8443");
        assert_eq!(url("127.0.0.2:8443"), "https://127.0.0.2:8443");
    }

    #[test]
    fn server_names_are_dns_names_or_addresses() {
        assert!(parse_server_name("mock.local").is_ok());
        assert!(parse_server_name("192.168.1.5").is_ok());
        assert!(parse_server_name("fe80::1").is_ok());
        assert!(parse_server_name("").is_err());
        assert!(parse_server_name("a b").is_err());
        assert!(parse_server_name("a..b").is_err());
    }

    #[test]
    fn negative_latency_says_negative() {
        assert!(parse_latency("-5").unwrap_err().contains("negative"));
        assert!(parse_latency("5-1").unwrap_err().contains("minimum"));
    }

    #[test]
    fn shell_quoting_only_where_needed() {
        assert_eq!(shell_quote("/tmp/x/ca.pem"), "/tmp/x/ca.pem");
        assert_eq!(shell_quote("Hello from herald"), "'Hello from herald'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
