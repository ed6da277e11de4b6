//! NATS server URLs: lists of them, the credentials they may carry, and how they are shown
//! ([`redact_url`]).

use super::{Error, ErrorKind};

/// A NATS server URL (or a comma-separated list of them) with the credentials it carries
/// replaced by `***`, for messages, logs and output: `nats://user:password@host:4222` becomes
/// `nats://user:***@host:4222`, and `nats://token@host` becomes `nats://***@host`. The bridge,
/// the key-value store and `herald worker` show URLs only through it.
///
/// Everything before the last `@` of a URL is its credentials, even characters a URL would
/// have to percent-encode, so a password with an unencoded `@` or `,` is hidden too.
///
/// ```
/// use herald::nats::redact_url;
///
/// assert_eq!(redact_url("nats://herald:s3cret@10.0.0.1:4222"), "nats://herald:***@10.0.0.1:4222");
/// assert_eq!(redact_url("tls://tok3n@nats.internal"), "tls://***@nats.internal");
/// assert_eq!(redact_url("nats://a:4222,nats://u:p@b:4222"), "nats://a:4222,nats://u:***@b:4222");
/// assert_eq!(redact_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
/// ```
pub fn redact_url(url: &str) -> String {
    // The list's items; an item that has credentials but no scheme continues the item
    // before it when that one has a scheme: it may be the rest of a password with an
    // unencoded `,` (`nats://u:pa,ss@host`). A list that mixes schemes with scheme-less items
    // with credentials shows less than it could, never more.
    let mut items: Vec<String> = Vec::new();
    for item in url.split(',') {
        match items.last_mut() {
            Some(last) if item.contains('@') && !item.contains("://") && last.contains("://") => {
                last.push(',');
                last.push_str(item);
            }
            _ => items.push(item.to_owned()),
        }
    }
    let redacted: Vec<String> = items
        .iter()
        .map(|item| match split_credentials(item) {
            None => item.clone(),
            Some((before, credentials, after)) => {
                let shown = match credentials.split_once(':') {
                    Some((user, _)) => format!("{user}:***"),
                    None => "***".to_owned(),
                };
                format!("{before}{shown}{after}")
            }
        })
        .collect();
    redacted.join(",")
}

/// Splits one URL at its credentials: (up to and with `scheme://`, the credentials, from the
/// last `@` on). `None` when it has none.
fn split_credentials(item: &str) -> Option<(&str, &str, &str)> {
    let at = item.rfind('@')?;
    let start = item
        .find("://")
        .map(|i| i + 3)
        .filter(|&s| s <= at)
        .unwrap_or(0);
    Some((&item[..start], &item[start..at], &item[at..]))
}

/// Credentials given in a URL.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum UrlAuth {
    UserPassword(String, String),
    Token(String),
}

/// A URL list read for the client: the servers (without credentials: the client would not
/// use them, and should not see them), and the credentials they carried.
pub(crate) struct Servers {
    pub(crate) urls: Vec<String>,
    pub(crate) auth: Option<UrlAuth>,
}

impl Servers {
    /// Reads `url`: one NATS URL or several separated by commas (tried in turn by the
    /// client). Credentials may be in them (`nats://user:password@host`, `nats://token@host`,
    /// percent-encoded where a URL needs it); URLs that carry some must all carry the same.
    /// Errors never repeat them.
    pub(crate) fn parse(url: &str) -> Result<Servers, Error> {
        let bad = |why: &str| {
            Error::new(
                ErrorKind::Config,
                format!("{:?} is not a NATS URL list: {why}", redact_url(url)),
            )
        };
        let mut urls = Vec::new();
        let mut auth: Option<UrlAuth> = None;
        for item in url.split(',').map(str::trim) {
            if item.is_empty() {
                return Err(bad("an empty URL"));
            }
            let Some((before, credentials, after)) = split_credentials(item) else {
                urls.push(item.to_owned());
                continue;
            };
            urls.push(format!("{before}{}", &after[1..]));
            if credentials.is_empty() {
                continue;
            }
            let decode = |s: &str| {
                percent_decode(s)
                    .ok_or_else(|| bad("credentials that are not percent-encoded UTF-8"))
            };
            let this = match credentials.split_once(':') {
                Some((user, password)) => UrlAuth::UserPassword(decode(user)?, decode(password)?),
                None => UrlAuth::Token(decode(credentials)?),
            };
            match &auth {
                Some(other) if *other != this => {
                    return Err(bad(
                        "URLs with different credentials (the client has one set)",
                    ));
                }
                _ => auth = Some(this),
            }
        }
        Ok(Servers { urls, auth })
    }
}

/// Decodes `%XX` escapes; `None` for a bad escape or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_are_redacted_and_nothing_else_is_touched() {
        for (url, shown) in [
            ("nats://127.0.0.1:4222", "nats://127.0.0.1:4222"),
            ("127.0.0.1", "127.0.0.1"),
            ("", ""),
            ("nats://u:pw@h:4222", "nats://u:***@h:4222"),
            ("nats://tok@h", "nats://***@h"),
            ("u:pw@h", "u:***@h"),
            ("tok@h:4222", "***@h:4222"),
            ("nats://:pw@h", "nats://:***@h"),
            ("nats://u:p@ss@h", "nats://u:***@h"),
            ("nats://u:pa,ss@h", "nats://u:***@h"),
            ("nats://x@y:pa,ss@h", "nats://x@y:***@h"),
            ("nats://u:p/a?s#s@h", "nats://u:***@h"),
            ("nats://a:1,tls://u:pw@b:2", "nats://a:1,tls://u:***@b:2"),
            // A scheme-less item with credentials after one with a scheme may be the rest of
            // a password: shown as part of it.
            ("nats://a:1,tok@c", "nats://a:***@c"),
            ("u:pw@a,tok@b", "u:***@a,***@b"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn a_url_list_is_read_into_servers_without_credentials_and_the_credentials() {
        let s = Servers::parse("nats://u:p%40ss@h1:4222, tls://u:p%40ss@h2").unwrap();
        assert_eq!(s.urls, ["nats://h1:4222", "tls://h2"]);
        assert!(s.auth == Some(UrlAuth::UserPassword("u".into(), "p@ss".into())));
        let s = Servers::parse("tok@h,nats://h2").unwrap();
        assert_eq!(s.urls, ["h", "nats://h2"]);
        assert!(s.auth == Some(UrlAuth::Token("tok".into())));
        for url in ["nats://h:4222", "nats://@h:4222"] {
            let s = Servers::parse(url).unwrap();
            assert_eq!(s.urls, ["nats://h:4222"]);
            assert!(s.auth.is_none());
        }
        // Everything before the last `@` is the credentials, encoded or not.
        let s = Servers::parse("nats://u:a/b@c@h").unwrap();
        assert_eq!(s.urls, ["nats://h"]);
        assert!(s.auth == Some(UrlAuth::UserPassword("u".into(), "a/b@c".into())));
        for bad in [
            "",
            "nats://h,",
            "nats://u:pw1@h1,nats://u:pw2@h2",
            "nats://u:%zz@h",
        ] {
            let err = Servers::parse(bad).err().unwrap();
            assert_eq!(err.kind(), ErrorKind::Config, "{bad:?}");
            for secret in ["pw1", "pw2", "%zz"] {
                assert!(!err.to_string().contains(secret), "{err}");
            }
        }
    }
}
