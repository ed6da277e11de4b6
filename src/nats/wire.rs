//! The wire format of exported notifications (versions 1 and 2), and the name rules.
//!
//! **Version 1: one notification is one NATS message.** This is what a bridge sends by default,
//! and what any NATS client can read (the payload is the notification's JSON, nothing else):
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
//! - `<seq>`: decimal sequence number, per (origin, subject), from 1, no gaps at the sender,
//!   at most [`MAX_SEQ`] (2^63 − 1: at a billion notifications a second an exporter takes
//!   292 years to get there); a larger one is malformed;
//! - `s<n>`: the decimal raw [`SenderId`](crate::SenderId), only for `post_from` posts;
//! - `hb`: a heartbeat, with no payload; `<seq>` is the last sequence number sent.
//!
//! For example `_HERALD.1.9f86d081884c7d659a2feaa0c55ad015.42.s7`.
//!
//! **Version 2: a batch, several notifications in one NATS message.** Sent only by a bridge
//! with [`NatsBridgeBuilder::batching`](super::NatsBridgeBuilder::batching) on, for runs of
//! consecutive notifications on one subject from one sender (an exporter never sends a batch of
//! one: a lone notification is a version 1 message):
//!
//! | part | content |
//! |---|---|
//! | subject | as in version 1: every item of a batch has this subject |
//! | payload | `<count>` items, each a [netstring](https://cr.yp.to/proto/netstrings.txt) of the item's JSON: its length in bytes (decimal ASCII), `:`, the JSON, `,` |
//! | reply subject | `_HERALD.2.<origin>.<first seq>.<count>`, then optional flags |
//!
//! - `<first seq>`: the first item's sequence number; item `i` (from 0) has `<first seq> + i`,
//!   so a batch covers `first..=first + count - 1` (at most [`MAX_SEQ`]) and loss accounting
//!   is per notification, across batches and single messages alike;
//! - `<count>`: how many items, at least 1;
//! - `s<n>`: the sender of every item (a batch never mixes senders);
//! - there are no version 2 heartbeats (`hb` is refused); heartbeats stay version 1.
//!
//! For example, two items: reply subject `_HERALD.2.9f86d081884c7d659a2feaa0c55ad015.43.2.s7`,
//! payload `10:{"id":101},10:{"id":102},`.
//!
//! An importer reads each item on its own: an item that is not valid JSON of the imported type
//! is one undecodable notification and the others are posted. When the framing itself is
//! broken (a bad length, a missing `,`, fewer items than `<count>`), every item from there on
//! is counted undecodable (one each); bytes after the last item count as one more undecodable.
//! A batch whose `<count>` its payload could not hold (more than one item per three bytes) is
//! one undecodable message, and its sequence numbers are not taken: the count is the sender's
//! word, and no importer loops as long as a sender says. Every importer reads both versions, whatever its own bridge's batching setting.
//!
//! **Why the reply subject, not headers.** JetStream does the same (its acknowledgement
//! subjects carry a message's stream, consumer and sequence numbers). Measured with `async-nats`
//! 0.51 on loopback, one header on every message halves the throughput of raw publish and
//! subscribe (the client parses every message's headers into a map: allocations and hashing
//! on both ends), while a reply subject costs a string. Nobody subscribes to `_HERALD.>`: a
//! client that answers a notification as if it were a request publishes into the void.
//!
//! **Why batches.** That string still costs: measured with one `nats-server` on loopback, raw
//! `async-nats` with the bridge's reply subjects runs at about 0.73x the throughput of raw
//! `async-nats` without them, and ~40 bytes of metadata in the payload instead reached only
//! about 0.87x. Any per-message metadata costs that much; a batch pays it once for many
//! notifications. A version 1 importer (herald before batches) counts a version 2 message as
//! one undecodable message and its items as lost at the next message's sequence number: it
//! never misreads one.
//!
//! Importers ignore flags they do not know (a later version may add some); a later,
//! incompatible format will use another version number, and importers count such
//! messages as undecodable instead of misreading them. A message whose reply subject is not in
//! `_HERALD.` (none, or a foreign client's inbox) comes from a publisher that is not a herald
//! bridge (any NATS client publishing JSON): it is imported with
//! [`Origin::foreign`](super::Origin), without loss accounting.
//!
//! [`Notification::name`]: crate::Notification::name

use std::fmt::Write as _;

use super::{BridgeId, Error, ErrorKind};

/// The largest sequence number (2^63 − 1). The numbers are the sender's word: refusing the
/// top half of the range keeps an importer's arithmetic on them (the next expected number, a
/// gap's size) from overflowing.
///
/// ```
/// use herald::nats::wire::MAX_SEQ;
///
/// assert_eq!(MAX_SEQ, (1 << 63) - 1);
/// // At a billion notifications a second, an exporter needs 292 years to get there.
/// let years = MAX_SEQ / 1_000_000_000 / (365 * 24 * 3600);
/// assert_eq!(years, 292);
/// ```
pub const MAX_SEQ: u64 = u64::MAX >> 1;

/// The first token of herald's reply subjects.
pub(crate) const NAMESPACE: &str = "_HERALD.";

/// What a message's reply subject says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) bridge: BridgeId,
    /// The (first) item's sequence number; for a heartbeat, the last one sent.
    pub(crate) seq: u64,
    /// How many notifications the message carries: 1 for version 1, `<count>` for a batch.
    pub(crate) count: u64,
    pub(crate) sender: Option<u64>,
    pub(crate) heartbeat: bool,
    /// A version 2 message: the payload is `count` netstrings.
    pub(crate) batch: bool,
}

/// The start of every version 1 reply subject of the bridge `origin`: `_HERALD.1.<origin>.`.
pub(crate) fn reply_prefix(origin: BridgeId) -> String {
    format!("{NAMESPACE}1.{origin}.")
}

/// The start of every batch (version 2) reply subject of the bridge `origin`:
/// `_HERALD.2.<origin>.`.
pub(crate) fn batch_reply_prefix(origin: BridgeId) -> String {
    format!("{NAMESPACE}2.{origin}.")
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

/// The reply subject of a batch of `count` items from `first`; `prefix` is
/// [`batch_reply_prefix`].
pub(crate) fn encode_batch(prefix: &str, first: u64, count: u64, sender: Option<u64>) -> String {
    let mut v = String::with_capacity(prefix.len() + 20 + 21 + 22);
    v.push_str(prefix);
    let _ = write!(v, "{first}.{count}");
    if let Some(sender) = sender {
        let _ = write!(v, ".s{sender}");
    }
    v
}

/// The bytes one item of `len` bytes takes in a batch's payload (its netstring).
pub(crate) fn framed_len(len: usize) -> usize {
    let mut digits = 1;
    let mut n = len;
    while n >= 10 {
        n /= 10;
        digits += 1;
    }
    digits + 1 + len + 1
}

/// Appends one item to a batch's payload, as a netstring (`<len>:<json>,`).
pub(crate) fn frame(payload: &mut Vec<u8>, item: &[u8]) {
    let _ = write!(DigitsTo(payload), "{}", item.len());
    payload.push(b':');
    payload.extend_from_slice(item);
    payload.push(b',');
}

/// `fmt::Write` into a byte vector (the length's digits).
struct DigitsTo<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for DigitsTo<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Reads a batch's payload one item at a time. Once the framing is broken, every later item
/// is an error too (its boundaries are unknown).
pub(crate) struct Frames<'a> {
    rest: &'a [u8],
    broken: Option<String>,
}

impl<'a> Frames<'a> {
    pub(crate) fn new(payload: &'a [u8]) -> Self {
        Frames {
            rest: payload,
            broken: None,
        }
    }

    /// The next item's bytes, or why it cannot be read.
    pub(crate) fn next_item(&mut self) -> Result<&'a [u8], String> {
        if let Some(why) = &self.broken {
            return Err(why.clone());
        }
        match split_netstring(self.rest) {
            Ok((item, rest)) => {
                self.rest = rest;
                Ok(item)
            }
            Err(why) => {
                let why = format!("broken batch framing: {why}");
                self.broken = Some(why.clone());
                Err(why)
            }
        }
    }

    /// How many bytes follow the items read so far (0 after the last item of a good batch).
    pub(crate) fn trailing(&self) -> usize {
        if self.broken.is_some() {
            0
        } else {
            self.rest.len()
        }
    }
}

/// The fewest bytes one framed item takes (`0:,`).
const MIN_FRAMED: usize = 3;

/// Whether `count` items could be framed in `payload_len` bytes at all: [`decode`] refuses a
/// batch that claims more (an importer's loop would run as long as the sender says).
fn fits(count: u64, payload_len: usize) -> bool {
    usize::try_from(count).is_ok_and(|count| count <= payload_len / MIN_FRAMED)
}

/// Splits one netstring off the front of `bytes`: (its content, what follows).
fn split_netstring(bytes: &[u8]) -> Result<(&[u8], &[u8]), &'static str> {
    if bytes.is_empty() {
        return Err("fewer items than the reply subject says");
    }
    let colon = bytes
        .iter()
        .take(21)
        .position(|&b| b == b':')
        .ok_or("no length")?;
    let digits = &bytes[..colon];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err("the length is not a decimal number");
    }
    let len = std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse::<usize>().ok())
        .ok_or("the length is not a decimal number")?;
    let body = &bytes[colon + 1..];
    if body.len() <= len {
        return Err("an item is longer than the payload");
    }
    if body[len] != b',' {
        return Err("an item does not end with ','");
    }
    Ok((&body[..len], &body[len + 1..]))
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
/// another client's), an error when it is herald's and cannot be read, or claims a batch of
/// more items than the message's `payload_len` bytes could hold.
pub(crate) fn decode(
    reply: Option<&str>,
    payload_len: usize,
    memo: &mut OriginMemo,
) -> Result<Option<Meta>, String> {
    let Some(rest) = reply.and_then(|r| r.strip_prefix(NAMESPACE)) else {
        return Ok(None);
    };
    let bad = |what: &str| format!("bad {what} in herald's reply subject \"{NAMESPACE}{rest}\"");
    let mut tokens = rest.split('.');
    let batch = match tokens.next() {
        Some("1") => false,
        Some("2") => true,
        v => {
            return Err(format!(
                "wire schema {:?} is not supported (this reads versions 1 and 2)",
                v.unwrap_or_default()
            ));
        }
    };
    let bridge = tokens
        .next()
        .and_then(|t| memo.parse(t))
        .ok_or_else(|| bad("origin"))?;
    let seq = tokens
        .next()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|&s| s <= MAX_SEQ)
        .ok_or_else(|| bad("sequence number"))?;
    let count = if batch {
        let count = tokens
            .next()
            .and_then(|s| s.parse::<u64>().ok())
            .filter(|&n| n >= 1 && seq.checked_add(n - 1).is_some_and(|top| top <= MAX_SEQ))
            .ok_or_else(|| bad("item count"))?;
        if !fits(count, payload_len) {
            return Err(format!("a batch of {count} items in {payload_len} bytes"));
        }
        count
    } else {
        1
    };
    let mut meta = Meta {
        bridge,
        seq,
        count,
        sender: None,
        heartbeat: false,
        batch,
    };
    for flag in tokens {
        if flag == "hb" {
            if batch {
                return Err(bad("flag (a batch is never a heartbeat)"));
            }
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

    /// Decodes a reply subject as if its payload could hold any batch.
    fn decode_once(reply: Option<&str>) -> Result<Option<Meta>, String> {
        decode(reply, usize::MAX, &mut OriginMemo::default())
    }

    #[test]
    fn the_origin_memo_never_answers_for_another_origin() {
        let (a, b) = (BridgeId::random(), BridgeId::random());
        let mut memo = OriginMemo::default();
        for id in [a, a, b, a, b, b] {
            let reply = encode(&reply_prefix(id), 1, None, false);
            assert_eq!(
                decode(Some(&reply), usize::MAX, &mut memo)
                    .unwrap()
                    .unwrap()
                    .bridge,
                id
            );
        }
        assert!(decode(Some("_HERALD.1.xyz.1"), usize::MAX, &mut memo).is_err());
    }

    #[test]
    fn the_reply_subject_round_trips_and_refuses_what_it_cannot_read() {
        let id = BridgeId::random();
        let prefix = reply_prefix(id);
        for (seq, sender, heartbeat) in [
            (1, None, false),
            (MAX_SEQ, Some(0), false),
            (42, Some(7), true),
            (9, None, true),
        ] {
            let v = encode(&prefix, seq, sender, heartbeat);
            assert!(check_name(&v, "reply").is_err(), "reserved namespace: {v}");
            let meta = decode_once(Some(&v)).unwrap();
            let want = Meta {
                bridge: id,
                seq,
                count: 1,
                sender,
                heartbeat,
                batch: false,
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
            format!("_HERALD.3.{origin}.5"),
            format!("_HERALD.2.{origin}.5"),
            "_HERALD.1.not-hex.5".to_owned(),
            format!("_HERALD.1.{origin}"),
            format!("_HERALD.1.{origin}.-3"),
            format!("_HERALD.1.{origin}.5.s9x"),
            format!("_HERALD.1.{origin}.{}", MAX_SEQ + 1),
            format!("_HERALD.1.{origin}.{}", u64::MAX),
            format!("_HERALD.1.{origin}.{}.hb", u64::MAX),
            format!("_HERALD.1.{origin}.18446744073709551616"),
        ] {
            assert!(decode_once(Some(&bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_batch_reply_subject_round_trips_and_refuses_what_it_cannot_read() {
        let id = BridgeId::random();
        let prefix = batch_reply_prefix(id);
        for (first, count, sender) in [(1, 2, None), (42, 1000, Some(7)), (MAX_SEQ, 1, Some(0))] {
            let v = encode_batch(&prefix, first, count, sender);
            assert!(check_name(&v, "reply").is_err(), "reserved namespace: {v}");
            let want = Meta {
                bridge: id,
                seq: first,
                count,
                sender,
                heartbeat: false,
                batch: true,
            };
            assert_eq!(decode_once(Some(&v)), Ok(Some(want)), "{v}");
        }
        let fixed = BridgeId::parse("0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(
            encode_batch(&batch_reply_prefix(fixed), 43, 2, Some(7)),
            "_HERALD.2.0123456789abcdef0123456789abcdef.43.2.s7"
        );
        // A later compatible version's flags are ignored.
        let later = format!("{prefix}5.3.priority");
        assert_eq!(decode_once(Some(&later)).unwrap().unwrap().count, 3);
        let origin = id.to_string();
        for bad in [
            format!("_HERALD.2.{origin}.5"),
            format!("_HERALD.2.{origin}.5.0"),
            format!("_HERALD.2.{origin}.5.x"),
            format!("_HERALD.2.{origin}.5.-1"),
            format!("_HERALD.2.{origin}.{}.2", u64::MAX),
            format!("_HERALD.2.{origin}.{}.2", MAX_SEQ),
            format!("_HERALD.2.{origin}.{}.1", MAX_SEQ + 1),
            format!("_HERALD.2.{origin}.5.2.hb"),
            format!("_HERALD.2.{origin}.5.2.s1x"),
            "_HERALD.2.not-hex.5.2".to_owned(),
        ] {
            assert!(decode_once(Some(&bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_count_the_payload_cannot_hold_is_refused() {
        assert!(fits(1, 3));
        assert!(fits(3, 9));
        assert!(!fits(4, 9));
        assert!(!fits(1, 2));
        assert!(!fits(u64::MAX, usize::MAX / 2));
        assert!(!fits(1_000_000_000_000, 10));
        let reply = format!("{}7.1000000000000", batch_reply_prefix(BridgeId::random()));
        let refused = decode(Some(&reply), 10, &mut OriginMemo::default()).unwrap_err();
        assert!(
            refused.contains("1000000000000 items in 10 bytes"),
            "{refused}"
        );
    }

    #[test]
    fn version_1_messages_are_batches_of_one_unframed() {
        let id = BridgeId::random();
        let meta = decode_once(Some(&encode(&reply_prefix(id), 9, Some(3), false)))
            .unwrap()
            .unwrap();
        assert_eq!((meta.count, meta.batch, meta.sender), (1, false, Some(3)));
    }

    #[test]
    fn items_are_framed_as_netstrings_and_read_back_one_by_one() {
        let items: [&[u8]; 4] = [b"{\"id\":101}", b"", b"[1,2,3]", &[b'x'; 1234]];
        let mut payload = Vec::new();
        for item in items {
            let before = payload.len();
            frame(&mut payload, item);
            assert_eq!(payload.len() - before, framed_len(item.len()));
        }
        assert!(payload.starts_with(b"10:{\"id\":101},0:,7:[1,2,3],1234:xxx"));
        let mut frames = Frames::new(&payload);
        for item in items {
            assert_eq!(frames.next_item(), Ok(item));
        }
        assert_eq!(frames.trailing(), 0);
        assert!(frames.next_item().is_err(), "no more items");
        for n in [0, 9, 10, 99, 100, 65_535, 1 << 20] {
            assert_eq!(framed_len(n), n.to_string().len() + 2 + n);
        }
    }

    #[test]
    fn broken_framing_makes_every_later_item_an_error_and_trailing_bytes_are_seen() {
        // One good item, then garbage: the first reads, every later one is an error.
        for broken in [
            &b"3:abc,x"[..],
            b"3:abc,4:abc",
            b"3:abc,4:abcde",
            b"3:abc,:abc,",
            b"3:abc,-1:a,",
            b"3:abc,99999999999999999999999:a,",
            b"3:abc,3abc,",
            b"3:abc,",
        ] {
            let mut frames = Frames::new(broken);
            assert_eq!(frames.next_item(), Ok(&b"abc"[..]), "{broken:?}");
            let first = frames.next_item().unwrap_err();
            assert!(first.contains("framing"), "{first}");
            assert!(frames.next_item().is_err(), "stays broken: {broken:?}");
            assert_eq!(frames.trailing(), 0);
        }
        let mut frames = Frames::new(b"1:a,junk");
        assert_eq!(frames.next_item(), Ok(&b"a"[..]));
        assert_eq!(frames.trailing(), 4);
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
