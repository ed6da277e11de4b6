//! Who the client is: the socket peer, or, behind reverse proxies you trust, the address they
//! recorded in `Forwarded` (RFC 7239) or `X-Forwarded-For`.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use http::HeaderMap;
use ipnet::IpNet;

/// The header your reverse proxies write the client's address into. Name exactly one: a proxy
/// appends to the header it manages and passes any other through untouched, so trusting a header
/// your proxy does not manage would let any client choose its own address.
///
/// ```
/// use herald::bridge::endpoint::{ForwardedHeader, TrustedProxies};
/// use std::net::IpAddr;
///
/// let mut headers = http::HeaderMap::new();
/// headers.insert("forwarded", "for=203.0.113.9".parse()?);
/// headers.insert("x-forwarded-for", "198.51.100.4".parse()?);
/// let peer: IpAddr = "10.0.0.1".parse()?;
/// let client = |header| {
///     let proxies = TrustedProxies::new(header).trust("10.0.0.0/8").unwrap();
///     proxies.client_address(peer, &headers)
/// };
/// // Only the header you name is read; the other is ignored.
/// assert_eq!(client(ForwardedHeader::Forwarded), "203.0.113.9".parse::<IpAddr>()?);
/// assert_eq!(client(ForwardedHeader::XForwardedFor), "198.51.100.4".parse::<IpAddr>()?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `Forwarded: for=192.0.2.60;proto=https, for="[2001:db8::1]:4711"` (RFC 7239).
    Forwarded,
    /// `X-Forwarded-For: 192.0.2.60, 10.0.0.7` (nginx, HAProxy, cloud load balancers).
    XForwardedFor,
}

/// The reverse proxies whose forwarding header is believed, by address or network.
///
/// The client address of a request is found by walking the forwarding chain from the socket
/// peer leftwards: while the hop is a trusted proxy, step to the address it recorded; the first
/// hop that is not trusted is the client. So a client cannot choose its address by sending the
/// header itself: the values it wrote sit left of the untrusted hop its own proxy recorded, and
/// are never read. With no trusted proxy (the default), or when the peer is not one, the client
/// is the socket peer and the header is ignored. A hop the proxy recorded as `unknown`, obfuscated
/// or unparseable stops the walk at the last trusted proxy (nothing is believed past it).
///
/// ```
/// use herald::bridge::endpoint::{ForwardedHeader, TrustedProxies};
///
/// let proxies = TrustedProxies::new(ForwardedHeader::XForwardedFor).trust("10.0.0.0/8")?;
/// let mut headers = http::HeaderMap::new();
/// headers.insert("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.1.2.3".parse()?);
/// // Through two trusted proxies: the client is the right-most untrusted hop.
/// assert_eq!(proxies.client_address("10.0.0.1".parse()?, &headers), "203.0.113.9".parse::<std::net::IpAddr>()?);
/// // From anywhere else, the header is a claim by the client itself: ignored.
/// assert_eq!(proxies.client_address("198.51.100.4".parse()?, &headers), "198.51.100.4".parse::<std::net::IpAddr>()?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
    header: Option<ForwardedHeader>,
}

/// A trusted proxy that is neither an IP address nor a network in CIDR notation.
///
/// ```
/// use herald::bridge::endpoint::{ForwardedHeader, InvalidProxy, TrustedProxies};
///
/// let err: InvalidProxy = TrustedProxies::new(ForwardedHeader::Forwarded)
///     .trust("proxy.internal") // a host name: not accepted
///     .unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     r#""proxy.internal" is not an IP address or a CIDR network (like 10.0.0.0/8 or fd00::/8)"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidProxy {
    input: String,
}

impl fmt::Display for InvalidProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not an IP address or a CIDR network (like 10.0.0.0/8 or fd00::/8)",
            self.input
        )
    }
}

impl std::error::Error for InvalidProxy {}

impl TrustedProxies {
    /// Trusts no proxy: the client is always the socket peer (the default).
    ///
    /// ```
    /// # use herald::bridge::endpoint::TrustedProxies;
    /// assert!(!TrustedProxies::none().trusts("127.0.0.1".parse().unwrap()));
    /// ```
    pub fn none() -> TrustedProxies {
        TrustedProxies::default()
    }

    /// Proxies that write the client address into `header`; add them with [`trust`](Self::trust).
    ///
    /// ```
    /// # use herald::bridge::endpoint::{ForwardedHeader, TrustedProxies};
    /// let p = TrustedProxies::new(ForwardedHeader::Forwarded).trust("127.0.0.1")?.trust("::1")?;
    /// assert!(p.trusts("::1".parse()?));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(header: ForwardedHeader) -> TrustedProxies {
        TrustedProxies {
            nets: Vec::new(),
            header: Some(header),
        }
    }

    /// Trusts a proxy address (`10.0.0.7`, `::1`) or network (`10.0.0.0/8`, `fd00::/8`).
    ///
    /// ```
    /// # use herald::bridge::endpoint::{ForwardedHeader, TrustedProxies};
    /// let p = TrustedProxies::new(ForwardedHeader::Forwarded);
    /// assert!(p.clone().trust("172.16.0.0/12").is_ok());
    /// assert!(p.trust("proxy.internal").is_err());
    /// ```
    pub fn trust(mut self, proxy: &str) -> Result<TrustedProxies, InvalidProxy> {
        let text = proxy.trim();
        let net = match text.parse::<IpNet>() {
            Ok(net) => net.trunc(),
            Err(_) => match text.parse::<IpAddr>() {
                Ok(ip) => IpNet::from(canonical(ip)),
                Err(_) => {
                    return Err(InvalidProxy {
                        input: proxy.to_owned(),
                    });
                }
            },
        };
        self.nets.push(net);
        Ok(self)
    }

    /// The header believed from trusted proxies, if any.
    ///
    /// ```
    /// # use herald::bridge::endpoint::{ForwardedHeader, TrustedProxies};
    /// assert_eq!(TrustedProxies::none().header(), None);
    /// let p = TrustedProxies::new(ForwardedHeader::XForwardedFor);
    /// assert_eq!(p.header(), Some(ForwardedHeader::XForwardedFor));
    /// ```
    pub fn header(&self) -> Option<ForwardedHeader> {
        self.header
    }

    /// Whether `addr` is one of the trusted proxies.
    ///
    /// ```
    /// # use herald::bridge::endpoint::{ForwardedHeader, TrustedProxies};
    /// let p = TrustedProxies::new(ForwardedHeader::Forwarded).trust("10.0.0.0/8")?;
    /// assert!(p.trusts("10.200.0.1".parse()?));
    /// assert!(p.trusts("::ffff:10.0.0.1".parse()?)); // IPv4-mapped IPv6 is the IPv4 address
    /// assert!(!p.trusts("11.0.0.1".parse()?));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn trusts(&self, addr: IpAddr) -> bool {
        let addr = canonical(addr);
        self.nets.iter().any(|n| n.contains(&addr))
    }

    /// The client address of a request that arrived from `peer` with `headers` (see the type's
    /// docs for the walk). Never fails: malformed headers yield the last trusted hop.
    ///
    /// ```
    /// # use herald::bridge::endpoint::{ForwardedHeader, TrustedProxies};
    /// let p = TrustedProxies::new(ForwardedHeader::Forwarded).trust("127.0.0.1")?;
    /// let mut h = http::HeaderMap::new();
    /// h.insert("forwarded", r#"for="[2001:db8::7]:4711";proto=https"#.parse()?);
    /// assert_eq!(p.client_address("127.0.0.1".parse()?, &h), "2001:db8::7".parse::<std::net::IpAddr>()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        let Some(header) = self.header else {
            return peer;
        };
        if !self.trusts(peer) {
            return peer;
        }
        let hops = match header {
            ForwardedHeader::Forwarded => forwarded_for(headers),
            ForwardedHeader::XForwardedFor => x_forwarded_for(headers),
        };
        let mut client = peer;
        for hop in hops.iter().rev() {
            match hop {
                Some(ip) => {
                    client = canonical(*ip);
                    if !self.trusts(client) {
                        return client;
                    }
                }
                // The proxy we trust did not name a usable address: believe nothing further.
                None => return client,
            }
        }
        client
    }
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`, what a dual-stack socket reports) as plain IPv4.
pub(super) fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// The key a per-address limit counts under: the IPv4 address, or the IPv6 /64 (one subscriber
/// line or host gets a whole /64, so counting single IPv6 addresses would let one client rotate
/// through 2^64 of them).
pub(super) fn limit_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
    }
}

/// Every value of header `name`, in order, joined as one comma-separated list. A value that is
/// not visible ASCII makes the whole list unusable (`None`).
fn joined(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut out = String::new();
    for value in headers.get_all(name) {
        let text = value.to_str().ok()?;
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(text);
    }
    Some(out)
}

/// The hops of `X-Forwarded-For`, left (client side) to right; `None` for an unusable entry.
fn x_forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let Some(list) = joined(headers, "x-forwarded-for") else {
        return vec![None];
    };
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse_node)
        .collect()
}

/// The `for=` of each element of `Forwarded`, left to right; `None` for an element without a
/// usable `for` (missing, `unknown`, obfuscated, malformed).
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let Some(list) = joined(headers, "forwarded") else {
        return vec![None];
    };
    split_outside_quotes(&list, ',')
        .into_iter()
        .filter(|e| !e.trim().is_empty())
        .map(|element| {
            let mut found = None;
            for pair in split_outside_quotes(element, ';') {
                let (name, value) = pair.split_once('=')?;
                if name.trim().eq_ignore_ascii_case("for") {
                    if found.is_some() {
                        return None; // two `for`s in one element: malformed
                    }
                    found = Some(unquote(value.trim())?);
                }
            }
            parse_node(&found?)
        })
        .collect()
}

/// Splits on `sep` where it is not inside a quoted-string (with backslash escapes).
fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts
}

/// A token, or a quoted-string without its quotes and escapes. `None` when malformed.
fn unquote(value: &str) -> Option<String> {
    let Some(inner) = value.strip_prefix('"') else {
        return (!value.contains('"')).then(|| value.to_owned());
    };
    let inner = inner.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// A node: `192.0.2.1`, `192.0.2.1:80`, `[2001:db8::1]`, `[2001:db8::1]:80`, or a bare IPv6
/// address (seen in `X-Forwarded-For`). `unknown` and `_obfuscated` names are not addresses.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim();
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sock) = node.parse::<SocketAddr>() {
        return Some(sock.ip());
    }
    let inner = node.strip_prefix('[')?.strip_suffix(']')?;
    inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &'static str, values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(name, v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_elements_quotes_and_ports() {
        let h = headers(
            "forwarded",
            &[
                r#"for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711""#,
                "for=unknown, for=10.0.0.2",
            ],
        );
        assert_eq!(
            forwarded_for(&h),
            vec![
                Some(ip("192.0.2.60")),
                Some(ip("2001:db8:cafe::17")),
                None,
                Some(ip("10.0.0.2"))
            ]
        );
    }

    #[test]
    fn forwarded_malformed_elements_are_unusable() {
        for bad in [
            "for",
            r#"for="1.2.3.4"#,
            "for=1.2.3.4;for=5.6.7.8",
            "for=_hidden",
            r#"for=1.2"3.4"#,
        ] {
            assert_eq!(
                forwarded_for(&headers("forwarded", &[bad])),
                vec![None],
                "{bad}"
            );
        }
        // A comma inside a quoted string does not split elements.
        assert_eq!(
            forwarded_for(&headers("forwarded", &[r#"for="1.2.3.4";x="a,b""#])),
            vec![Some(ip("1.2.3.4"))]
        );
    }

    #[test]
    fn the_walk_stops_at_the_first_untrusted_or_unusable_hop() {
        let p = TrustedProxies::new(ForwardedHeader::XForwardedFor)
            .trust("10.0.0.0/8")
            .unwrap();
        let h = headers("x-forwarded-for", &["1.1.1.1, 2.2.2.2", "10.0.0.9"]);
        assert_eq!(p.client_address(ip("10.0.0.1"), &h), ip("2.2.2.2"));
        let h = headers("x-forwarded-for", &["1.1.1.1, garbage, 10.0.0.9"]);
        assert_eq!(p.client_address(ip("10.0.0.1"), &h), ip("10.0.0.9"));
        let h = headers("x-forwarded-for", &["10.0.0.3"]);
        assert_eq!(p.client_address(ip("10.0.0.1"), &h), ip("10.0.0.3"));
        assert_eq!(
            p.client_address(ip("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
        // The other header is never read.
        let h = headers("forwarded", &["for=1.1.1.1"]);
        assert_eq!(p.client_address(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn ipv6_limits_count_per_64() {
        assert_eq!(
            limit_key(ip("2001:db8::1")),
            limit_key(ip("2001:db8::ffff:1"))
        );
        assert_ne!(
            limit_key(ip("2001:db8::1")),
            limit_key(ip("2001:db8:0:1::1"))
        );
        assert_eq!(limit_key(ip("::ffff:1.2.3.4")), ip("1.2.3.4"));
    }
}
