//! The wire format of exported notifications, version 1, and the name rules.
//!
//! One notification is one NATS message:
//!
//! | part | content |
//! |---|---|
//! | subject | the bridge's subject prefix (empty by default) followed by [`Notification::name`] |
//! | payload | the notification as JSON (`serde_json`), nothing around it |
//! | reply subject | `_HERALD.1.<origin>.<seq>`, then optional flags, each a token of its own |
//!
//! The reply subject's tokens:
//! - `_HERALD`: marks herald's metadata (the namespace is reserved: no notification is named
//!   in it);
//! - `1`: the schema version;
//! - `<origin>`: the exporting bridge's id, 32 lower-case hex digits;
//! - `<seq>`: decimal sequence number, per (origin, subject), from 1, no gaps at the sender;
//! - `s<n>`: the decimal raw [`SenderId`](crate::SenderId), only for `post_from` posts;
//! - `hb`: a heartbeat, with no payload; `<seq>` is the last sequence number sent.
//!
//! For example `_HERALD.1.9f86d081884c7d659a2feaa0c55ad015.42.s7`.
//!
//! **Why the reply subject, not headers.** JetStream does the same (its acknowledgement
//! subjects carry a message's stream, consumer and sequence numbers). Measured with `async-nats`
//! 0.51 on loopback, one header on every message halves the throughput of raw publish and
//! subscribe (the client parses every message's headers into a map: allocations and hashing
//! on both ends), while a reply subject costs a string. Nobody subscribes to `_HERALD.>`: a
//! client that answers a notification as if it were a request publishes into the void.
//!
//! Importers ignore flags they do not know (a later version may add some); a later,
//! incompatible format will use another version number, and importers of version 1 count such
//! messages as undecodable instead of misreading them. A message whose reply subject is not in
//! `_HERALD.` (none, or a foreign client's inbox) comes from a publisher that is not a herald
//! bridge (any NATS client publishing JSON): it is imported with
//! [`Origin::foreign`](super::Origin), without loss accounting.
//!
//! [`Notification::name`]: crate::Notification::name

use std::fmt::Write as _;

use super::{BridgeId, Error, ErrorKind};

/// The first token of herald's reply subjects.
pub(crate) const NAMESPACE: &str = "_HERALD.";

/// What a message's reply subject says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) bridge: BridgeId,
    pub(crate) seq: u64,
    pub(crate) sender: Option<u64>,
    pub(crate) heartbeat: bool,
}

/// The start of every reply subject of the bridge `origin`: `_HERALD.1.<origin>.`.
pub(crate) fn reply_prefix(origin: BridgeId) -> String {
    format!("{NAMESPACE}1.{origin}.")
}

/// The reply subject of one message; `prefix` is [`reply_prefix`].
pub(crate) fn encode(prefix: &str, seq: u64, sender: Option<u64>, heartbeat: bool) -> String {
    let mut v = String::with_capacity(prefix.len() + 20 + 22 + 3);
    v.push_str(prefix);
    let _ = write!(v, "{seq}");
    if let Some(sender) = sender {
        let _ = write!(v, ".s{sender}");
    }
    if heartbeat {
        v.push_str(".hb");
    }
    v
}

/// The last origin read, so that a run of messages from one bridge parses its id once.
#[derive(Default)]
pub(crate) struct OriginMemo {
    last: Option<([u8; 32], BridgeId)>,
}

impl OriginMemo {
    fn parse(&mut self, token: &str) -> Option<BridgeId> {
        if let Some((text, id)) = &self.last
            && token.as_bytes() == text
        {
            return Some(*id);
        }
        let id = BridgeId::parse(token)?;
        let mut text = [0u8; 32];
        text.copy_from_slice(token.as_bytes());
        self.last = Some((text, id));
        Some(id)
    }
}

/// Reads a message's reply subject: `None` when it is not herald's (no reply subject, or
/// another client's), an error when it is herald's and cannot be read.
pub(crate) fn decode(reply: Option<&str>, memo: &mut OriginMemo) -> Result<Option<Meta>, String> {
    let Some(rest) = reply.and_then(|r| r.strip_prefix(NAMESPACE)) else {
        return Ok(None);
    };
    let bad = |what: &str| format!("bad {what} in herald's reply subject \"{NAMESPACE}{rest}\"");
    let mut tokens = rest.split('.');
    match tokens.next() {
        Some("1") => {}
        v => {
            return Err(format!(
                "wire schema {:?} is not supported (this is version 1)",
                v.unwrap_or_default()
            ));
        }
    }
    let bridge = tokens
        .next()
        .and_then(|t| memo.parse(t))
        .ok_or_else(|| bad("origin"))?;
    let seq = tokens
        .next()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| bad("sequence number"))?;
    let mut meta = Meta {
        bridge,
        seq,
        sender: None,
        heartbeat: false,
    };
    for flag in tokens {
        if flag == "hb" {
            meta.heartbeat = true;
        } else if let Some(n) = flag.strip_prefix('s')
            && n.starts_with(|c: char| c.is_ascii_digit())
        {
            meta.sender = Some(n.parse::<u64>().map_err(|_| bad("sender"))?);
        }
        // Anything else is a flag of a later compatible version: ignored.
    }
    Ok(Some(meta))
}

/// Checks that `name` can be a NATS subject that names one notification type: dot-separated,
/// non-empty tokens of printable ASCII without `*` or `>`, not a system subject.
pub(crate) fn check_name(name: &str, what: &str) -> Result<(), Error> {
    let bad = |why: &str| {
        Err(Error::new(
            ErrorKind::InvalidName,
            format!("{what} {name:?} is not a valid NATS subject: {why}"),
        ))
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if let Some(c) = name.chars().find(|c| !c.is_ascii_graphic()) {
        return bad(&format!(
            "it contains {c:?} (only printable ASCII without spaces)"
        ));
    }
    if name.contains(['*', '>']) {
        return bad("it contains a wildcard (`*` or `>`)");
    }
    if name.split('.').any(str::is_empty) {
        return bad("it has an empty token (a leading, trailing or doubled dot)");
    }
    if name.starts_with('$') || name.starts_with("_INBOX.") || name.starts_with("_HERALD.") {
        return bad("it is in a namespace reserved for the server or the bridge");
    }
    Ok(())
}

/// Checks the name of a type to export or import: a valid subject, and declared (not the
/// default Rust type name, which changes with module paths and is no contract between
/// processes).
pub(crate) fn check_type_name<N: crate::Notification>() -> Result<(), Error> {
    let name = N::name();
    if name == std::any::type_name::<N>() {
        return Err(Error::new(
            ErrorKind::InvalidName,
            format!(
                "{name} has no declared name: implement `Notification::name` with a dotted \
                 name such as \"shop.order.placed\" before sending it across processes"
            ),
        ));
    }
    check_name(name, "the notification name")
}

/// Checks a family prefix (`"shop."`): a valid subject followed by one dot.
pub(crate) fn check_prefix(prefix: &str, what: &str) -> Result<(), Error> {
    match prefix.strip_suffix('.') {
        Some(stem) => check_name(stem, what),
        None => Err(Error::new(
            ErrorKind::InvalidName,
            format!("{what} {prefix:?} must end with a dot (\"shop.\" is the family shop.>)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_nats_subject_rules() {
        for ok in ["shop.order.placed", "a", "chat-1.msg_2", "x.y.z.w"] {
            assert!(check_name(ok, "name").is_ok(), "{ok}");
        }
        for bad in [
            "",
            "shop order",
            "shop.*",
            "shop.>",
            "a..b",
            ".a",
            "a.",
            "tab\t",
            "é",
            "$JS.API",
            "_INBOX.x",
            "_HERALD.x",
        ] {
            let err = check_name(bad, "name").unwrap_err();
            assert!(err.is_invalid_name(), "{bad}");
        }
    }

    #[test]
    fn prefixes_end_at_a_dot() {
        assert!(check_prefix("shop.", "prefix").is_ok());
        assert!(check_prefix("shop.eu.", "prefix").is_ok());
        for bad in ["shop", "shop..", ".", "", "sh op."] {
            assert!(check_prefix(bad, "prefix").is_err(), "{bad}");
        }
    }

    fn decode_once(reply: Option<&str>) -> Result<Option<Meta>, String> {
        decode(reply, &mut OriginMemo::default())
    }

    #[test]
    fn the_origin_memo_never_answers_for_another_origin() {
        let (a, b) = (BridgeId::random(), BridgeId::random());
        let mut memo = OriginMemo::default();
        for id in [a, a, b, a, b, b] {
            let reply = encode(&reply_prefix(id), 1, None, false);
            assert_eq!(decode(Some(&reply), &mut memo).unwrap().unwrap().bridge, id);
        }
        assert!(decode(Some("_HERALD.1.xyz.1"), &mut memo).is_err());
    }

    #[test]
    fn the_reply_subject_round_trips_and_refuses_what_it_cannot_read() {
        let id = BridgeId::random();
        let prefix = reply_prefix(id);
        for (seq, sender, heartbeat) in [
            (1, None, false),
            (u64::MAX, Some(0), false),
            (42, Some(7), true),
            (9, None, true),
        ] {
            let v = encode(&prefix, seq, sender, heartbeat);
            assert!(check_name(&v, "reply").is_err(), "reserved namespace: {v}");
            let meta = decode_once(Some(&v)).unwrap();
            let want = Meta {
                bridge: id,
                seq,
                sender,
                heartbeat,
            };
            assert_eq!(meta, Some(want), "{v}");
        }
        let fixed = BridgeId::parse("0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(
            encode(&reply_prefix(fixed), 42, Some(7), false),
            "_HERALD.1.0123456789abcdef0123456789abcdef.42.s7"
        );
        // Not herald's: none, or another client's inbox.
        assert_eq!(decode_once(None), Ok(None));
        assert_eq!(decode_once(Some("_INBOX.abc.def")), Ok(None));
        // A later compatible version's flags are ignored.
        let later = format!("{prefix}5.priority.hb");
        assert!(decode_once(Some(&later)).unwrap().unwrap().heartbeat);
        let origin = id.to_string();
        for bad in [
            "_HERALD.".to_owned(),
            format!("_HERALD.2.{origin}.5"),
            "_HERALD.1.not-hex.5".to_owned(),
            format!("_HERALD.1.{origin}"),
            format!("_HERALD.1.{origin}.-3"),
            format!("_HERALD.1.{origin}.5.s9x"),
        ] {
            assert!(decode_once(Some(&bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn default_type_names_are_refused() {
        struct Undeclared;
        impl crate::Notification for Undeclared {}
        struct Declared;
        impl crate::Notification for Declared {
            fn name() -> &'static str {
                "test.declared"
            }
        }
        let err = check_type_name::<Undeclared>().unwrap_err();
        assert!(err.to_string().contains("no declared name"), "{err}");
        assert!(check_type_name::<Declared>().is_ok());
    }
}
