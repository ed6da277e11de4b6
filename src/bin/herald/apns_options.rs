//! The APNs options `herald push` and `herald worker` share: credentials (token or
//! certificate), Apple's environment, or another server (`herald mock`) and its CA.

use std::path::PathBuf;
use std::time::SystemTime;

use herald::apns::{ApnsClientBuilder, Certificate, Endpoint, TokenKey};

/// Credentials and the server to send to.
#[derive(Debug, clap::Args)]
pub(crate) struct ApnsOptions {
    /// Token auth: the `.p8` key file from Apple.
    #[arg(long, requires_all = ["key_id", "team_id"], conflicts_with_all = ["p12", "cert_pem"])]
    p8: Option<PathBuf>,
    /// Token auth: the key id (10 letters and digits, e.g. ABC123DEFG).
    // Values starting with `-` reach the parser: clap would otherwise call a pasted
    // `-----BEGIN PRIVATE KEY-----...` an unexpected argument and print it whole.
    #[arg(long, env = "HERALD_KEY_ID", allow_hyphen_values = true,
          value_parser = Unechoed(parse_key_id))]
    key_id: Option<String>,
    /// Token auth: the team id (10 letters and digits, e.g. DEF123GHIJ).
    #[arg(long, env = "HERALD_TEAM_ID", allow_hyphen_values = true,
          value_parser = Unechoed(parse_team_id))]
    team_id: Option<String>,
    /// Certificate auth: a `.p12` export of the push certificate.
    #[arg(long, conflicts_with = "cert_pem")]
    p12: Option<PathBuf>,
    /// Certificate auth: the `.p12` password (taken whole, even when it starts with `-`).
    #[arg(
        long,
        env = "HERALD_P12_PASSWORD",
        default_value = "",
        hide_env_values = true,
        hide_default_value = true,
        allow_hyphen_values = true,
        value_parser = Unechoed(parse_password)
    )]
    password: Password,
    /// Certificate auth: the PEM certificate (the key may be in the same file).
    #[arg(long)]
    cert_pem: Option<PathBuf>,
    /// Certificate auth: the PEM private key (default: the certificate file).
    #[arg(long)]
    key_pem: Option<PathBuf>,

    /// Apple's environment (not used with --url).
    #[arg(long, value_enum, default_value_t = Env::Sandbox)]
    env: Env,
    /// Send to another server instead, e.g. `herald mock`'s `https://127.0.0.1:8443`.
    #[arg(long)]
    pub(crate) url: Option<String>,
    /// Trust this CA (PEM file) for `--url`.
    #[arg(long, requires = "url")]
    pub(crate) ca: Option<PathBuf>,
    /// Tunnel through an HTTP proxy with CONNECT: `http://HOST:PORT` or `HOST:PORT` (no
    /// credentials, no path; an IPv6 address in brackets: `http://[::1]:3128`).
    #[arg(long, value_name = "URL", value_parser = Unechoed(parse_proxy))]
    proxy: Option<herald::apns::Proxy>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Env {
    Sandbox,
    Production,
}

/// A value parser whose error says what is wrong without repeating the value: clap's own
/// (`invalid value '...' for ...`) would print whatever was given, and a `.p8` pasted into
/// `--key-id`, or a password in a proxy URL, must not end up on the terminal or in a CI log.
/// The function's message names the option itself.
#[derive(Clone, Copy)]
pub(crate) struct Unechoed<T>(pub(crate) fn(&str) -> Result<T, String>);

impl<T: Clone + Send + Sync + 'static> clap::builder::TypedValueParser for Unechoed<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        let refuse = |message: String| {
            cmd.clone()
                .error(clap::error::ErrorKind::ValueValidation, message)
        };
        let Some(value) = value.to_str() else {
            let option = arg
                .and_then(clap::Arg::get_long)
                .map_or_else(|| "an option".to_owned(), |l| format!("--{l}"));
            return Err(refuse(format!("{option}: the value is not valid UTF-8")));
        };
        (self.0)(value).map_err(refuse)
    }
}

/// A password from the command line or the environment: taken whole even when it starts with
/// `-` (clap would otherwise call `-s3cret` an unexpected argument and print it), and never
/// shown: `Debug` hides it, and no message repeats it.
#[derive(Clone, Default)]
pub(crate) struct Password(String);

impl Password {
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(hidden)")
    }
}

/// A [`Password`] option's parser, for [`Unechoed`] (give the option `allow_hyphen_values`):
/// every UTF-8 value is a password. A password left out on the command line
/// (`--password --device ...`, two words) is caught in `main` (`password_left_out`), which
/// sees the words as typed: the same value from the environment or as `--password=--device`
/// is a password.
pub(crate) fn parse_password(s: &str) -> Result<Password, String> {
    Ok(Password(s.to_owned()))
}

/// What is wrong when a password option's value is another option. It does not name that
/// option: it might, after all, be the password.
pub(crate) const PASSWORD_LEFT_OUT: &str = "the password is missing: the word after the option \
    is another option (a password that starts with '-' is taken whole)";

/// Whether `value` is exactly one of `cmd`'s options (`--name` or `-c`), or help.
pub(crate) fn is_option(cmd: &clap::Command, value: &str) -> bool {
    if let Some(long) = value.strip_prefix("--") {
        long == "help" || cmd.get_arguments().any(|a| a.get_long() == Some(long))
    } else if let Some(short) = value.strip_prefix('-') {
        let mut chars = short.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => c == 'h' || cmd.get_arguments().any(|a| a.get_short() == Some(c)),
            _ => false,
        }
    } else {
        false
    }
}

/// Checks a key id as Apple issues them, with the library's rule (`TokenKey::check_key_id`),
/// before anything is read or sent, naming the option; an id that is the next option's name
/// says the id was left out. The message never repeats the value (it may be key material
/// pasted into the wrong option).
pub(crate) fn check_key_id(option: &str, id: &str) -> Result<(), String> {
    check_id(option, "key id", id, herald::apns::TokenKey::check_key_id)
}

/// [`check_key_id`] for a team id (`TokenKey::check_team_id`).
pub(crate) fn check_team_id(option: &str, id: &str) -> Result<(), String> {
    check_id(option, "team id", id, herald::apns::TokenKey::check_team_id)
}

fn check_id(
    option: &str,
    what: &str,
    id: &str,
    rule: fn(&str) -> Result<(), herald::apns::Error>,
) -> Result<(), String> {
    if id.starts_with("--") && !id.contains(char::is_whitespace) {
        return Err(format!(
            "{option}: the {what} is missing (another option follows it): Apple's are exactly \
             10 letters and digits"
        ));
    }
    rule(id).map_err(|e| format!("{option}: {e}"))
}

/// The proxy as the library takes it (`herald::apns::Proxy`: `http://HOST:PORT` or
/// `HOST:PORT`), refused here, before anything is read or sent, if it is anything else. The
/// library's messages never repeat the value (it may hold a password).
fn parse_proxy(s: &str) -> Result<herald::apns::Proxy, String> {
    s.parse().map_err(|e| format!("--{e}"))
}

fn parse_key_id(s: &str) -> Result<String, String> {
    check_key_id("--key-id (HERALD_KEY_ID)", s).map(|()| s.to_owned())
}

fn parse_team_id(s: &str) -> Result<String, String> {
    check_team_id("--team-id (HERALD_TEAM_ID)", s).map(|()| s.to_owned())
}

/// Reads a file, saying which one failed.
pub(crate) fn read(path: &PathBuf) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

impl ApnsOptions {
    /// The server: `--url` (trusting `--ca`), or Apple's for `--env`, on port 2197 with
    /// `alt_port`.
    pub(crate) fn endpoint(&self, alt_port: bool) -> Result<Endpoint, String> {
        Ok(match &self.url {
            Some(url) => {
                let e = Endpoint::custom(url).map_err(|e| e.to_string())?;
                match &self.ca {
                    Some(ca) => e.with_ca_pem(read(ca)?),
                    None => e,
                }
            }
            None => match (self.env, alt_port) {
                (Env::Sandbox, false) => Endpoint::Sandbox,
                (Env::Sandbox, true) => Endpoint::SandboxAlt,
                (Env::Production, false) => Endpoint::Production,
                (Env::Production, true) => Endpoint::ProductionAlt,
            },
        })
    }

    /// Adds the credentials (and the proxy) to `builder`; with a certificate, also returns
    /// when it expires.
    pub(crate) fn authenticate(
        &self,
        mut builder: ApnsClientBuilder,
    ) -> Result<(ApnsClientBuilder, Option<SystemTime>), String> {
        if let Some(proxy) = &self.proxy {
            builder = builder.proxy(proxy.to_string());
        }
        if let Some(p8) = &self.p8 {
            let key = TokenKey::from_p8_file(
                p8,
                self.key_id.clone().unwrap_or_default(),
                self.team_id.clone().unwrap_or_default(),
            )
            .map_err(|e| e.to_string())?;
            return Ok((builder.token_auth(key), None));
        }
        let cert = if let Some(p12) = &self.p12 {
            Certificate::from_p12_file(p12, self.password.as_str()).map_err(|e| e.to_string())?
        } else if let Some(cert_pem) = &self.cert_pem {
            let cert_bytes = read(cert_pem)?;
            let key_bytes = match &self.key_pem {
                Some(k) => read(k)?,
                None => cert_bytes.clone(),
            };
            Certificate::from_pem(cert_bytes, key_bytes).map_err(|e| e.to_string())?
        } else {
            return Err("give --p8 with --key-id and --team-id, or --p12, or --cert-pem".into());
        };
        let expires = cert.expires_at();
        Ok((builder.certificate(cert), Some(expires)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxy_is_the_librarys_and_named_as_the_option() {
        assert_eq!(
            parse_proxy("proxy.internal:3128")
                .map(|p| p.to_string())
                .as_deref(),
            Ok("http://proxy.internal:3128")
        );
        let err = parse_proxy("http://user:s3cret@proxy.internal:3128").unwrap_err();
        assert!(
            err.starts_with("--proxy: ") && err.contains("credentials") && !err.contains("s3cret"),
            "{err}"
        );
    }
}
