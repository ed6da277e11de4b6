//! The HTTP proxy a client tunnels through ([`ApnsClientBuilder::proxy`]).
//!
//! [`ApnsClientBuilder::proxy`]: super::ApnsClientBuilder::proxy

use std::fmt;
use std::str::FromStr;

use super::error::{Error, ErrorKind};

/// An HTTP proxy's address, as [`ApnsClientBuilder::proxy`] takes it: `http://HOST:PORT` or
/// `HOST:PORT` (an IPv6 address in brackets, an optional trailing `/`). herald speaks plain
/// HTTP `CONNECT` to the proxy; the push itself stays TLS end to end, and the proxy sees only
/// the host it is asked to connect to.
///
/// Parsing refuses, with [`ErrorKind::Config`] and a message that never repeats the value
/// (it may hold a password): another scheme (`https://`, `socks5://`), credentials
/// (`user:password@`, which herald would not send), a path or query, a missing port or port
/// 0, and anything that is not a host name or IP address. The client's builder parses the
/// same way at [`build`](super::ApnsClientBuilder::build); a program that takes the proxy from
/// its own configuration can parse it first, to refuse it where it was given.
///
/// ```
/// use herald::apns::{ErrorKind, Proxy};
///
/// let proxy: Proxy = "proxy.internal:3128".parse()?;
/// assert_eq!((proxy.host(), proxy.port()), ("proxy.internal", 3128));
/// assert_eq!(proxy.to_string(), "http://proxy.internal:3128");
/// assert_eq!("http://[::1]:3128".parse::<Proxy>()?.host(), "::1");
///
/// let err = "http://user:s3cret@proxy.internal:3128".parse::<Proxy>().unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Config);
/// assert!(err.to_string().contains("credentials") && !err.to_string().contains("s3cret"));
/// assert!("http://proxy.internal".parse::<Proxy>().is_err(), "no port: no guess");
/// # Ok::<(), herald::apns::Error>(())
/// ```
///
/// [`ApnsClientBuilder::proxy`]: super::ApnsClientBuilder::proxy
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    /// Without brackets, for an IPv6 address.
    host: String,
    port: u16,
}

impl Proxy {
    /// The host: a name or an IP address (an IPv6 address without its brackets).
    ///
    /// ```
    /// # use herald::apns::Proxy;
    /// assert_eq!("10.0.0.7:8080".parse::<Proxy>()?.host(), "10.0.0.7");
    /// # Ok::<(), herald::apns::Error>(())
    /// ```
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, 1 to 65535.
    ///
    /// ```
    /// # use herald::apns::Proxy;
    /// assert_eq!("http://proxy.internal:3128/".parse::<Proxy>()?.port(), 3128);
    /// # Ok::<(), herald::apns::Error>(())
    /// ```
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl FromStr for Proxy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Proxy, Error> {
        parse(s).map_err(|why| Error::new(ErrorKind::Config, format!("proxy: {why}")))
    }
}

impl fmt::Display for Proxy {
    /// `http://HOST:PORT`, an IPv6 address in brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "http://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "http://{}:{}", self.host, self.port)
        }
    }
}

/// The proxy `s` names, or why not. The messages never repeat the value.
fn parse(s: &str) -> Result<Proxy, String> {
    const FORM: &str = "give http://HOST:PORT or HOST:PORT, e.g. http://proxy.internal:3128";
    let s = s.trim();
    let rest = match s.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {
            return Err(
                "a TLS (https://) proxy is not supported: herald speaks plain HTTP \
                 CONNECT to the proxy (the push itself is still TLS end to end); give \
                 http://HOST:PORT"
                    .into(),
            );
        }
        Some(_) => {
            return Err(format!("only HTTP proxies (http://) are supported: {FORM}"));
        }
        None => s,
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('@') {
        return Err(
            "credentials in the proxy URL (user:password@) are not supported: herald \
             sends none to the proxy"
                .into(),
        );
    }
    if rest.contains(['/', '?', '#']) {
        return Err(format!("a proxy has no path: {FORM}"));
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let Some((ip, port)) = v6.split_once(']') else {
            return Err(format!("an IPv6 address needs its closing ']': {FORM}"));
        };
        if ip.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("not an IPv6 address in the brackets: {FORM}"));
        }
        (ip, port.strip_prefix(':'))
    } else {
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                return Err("put an IPv6 address in brackets, e.g. http://[::1]:3128".into());
            }
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        };
        let plain_host = !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !plain_host {
            return Err(format!("not a host name or IP address: {FORM}"));
        }
        (host, port)
    };
    let Some(port) = port else {
        return Err(format!("the port is missing: {FORM}"));
    };
    match port.parse::<u16>() {
        Ok(port) if port > 0 => Ok(Proxy {
            host: host.to_owned(),
            port,
        }),
        _ => Err(format!("the port is a number from 1 to 65535: {FORM}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proxy_is_http_host_and_port() {
        for (given, taken) in [
            ("http://proxy.internal:3128", "http://proxy.internal:3128"),
            ("HTTP://proxy.internal:3128/", "http://proxy.internal:3128"),
            ("proxy.internal:3128", "http://proxy.internal:3128"),
            ("127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("http://[::1]:3128", "http://[::1]:3128"),
            ("[::1]:3128", "http://[::1]:3128"),
        ] {
            let proxy: Proxy = given.parse().unwrap();
            assert_eq!(proxy.to_string(), taken, "{given}");
        }
        for (given, why) in [
            ("notaurl", "port is missing"),
            ("http://proxy.internal", "port is missing"),
            ("https://proxy.internal:3128", "https://"),
            ("socks5://proxy.internal:1080", "only HTTP"),
            ("http://proxy.internal:3128/path", "no path"),
            ("http://proxy.internal:3128?x=1", "no path"),
            ("proxy.internal:0", "1 to 65535"),
            ("proxy.internal:99999", "1 to 65535"),
            ("proxy.internal:port", "1 to 65535"),
            (":3128", "host name"),
            ("a..b:3128", "host name"),
            ("::1:3128", "brackets"),
            ("[::1:3128", "closing"),
            ("[nope]:3128", "IPv6"),
            ("", "host name"),
        ] {
            let err = given.parse::<Proxy>().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Config, "{given}");
            assert!(err.to_string().contains(why), "{given}: {err}");
        }
        let err = "http://user:s3cret@proxy.internal:3128"
            .parse::<Proxy>()
            .unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(
            shown.contains("credentials") && !shown.contains("s3cret"),
            "{shown}"
        );
    }
}
