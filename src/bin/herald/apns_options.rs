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
    /// Token auth: the key id (10 characters).
    #[arg(long, env = "HERALD_KEY_ID")]
    key_id: Option<String>,
    /// Token auth: the team id (10 characters).
    #[arg(long, env = "HERALD_TEAM_ID")]
    team_id: Option<String>,
    /// Certificate auth: a `.p12` export of the push certificate.
    #[arg(long, conflicts_with = "cert_pem")]
    p12: Option<PathBuf>,
    /// The `.p12` password.
    #[arg(
        long,
        env = "HERALD_P12_PASSWORD",
        default_value = "",
        hide_env_values = true
    )]
    password: String,
    /// Certificate auth: the PEM certificate (the key may be in the same file).
    #[arg(long)]
    cert_pem: Option<PathBuf>,
    /// Certificate auth: the PEM private key (default: the certificate file).
    #[arg(long)]
    key_pem: Option<PathBuf>,

    /// Apple's environment.
    #[arg(long, value_enum, default_value_t = Env::Sandbox)]
    env: Env,
    /// Send to another server instead, e.g. `herald mock`'s `https://127.0.0.1:8443`.
    #[arg(long)]
    pub(crate) url: Option<String>,
    /// Trust this CA (PEM file) for `--url`.
    #[arg(long, requires = "url")]
    pub(crate) ca: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Env {
    Sandbox,
    Production,
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

    /// Adds the credentials to `builder`; with a certificate, also returns when it expires.
    pub(crate) fn authenticate(
        &self,
        builder: ApnsClientBuilder,
    ) -> Result<(ApnsClientBuilder, Option<SystemTime>), String> {
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
            Certificate::from_p12_file(p12, &self.password).map_err(|e| e.to_string())?
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
