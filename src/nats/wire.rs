//! The wire format of exported notifications, version 1, and the name rules.
//!
//! One notification is one NATS message:
//!
//! | part | content |
//! |---|---|
//! | subject | the bridge's subject prefix (empty by default) followed by [`Notification::name`] |
//! | payload | the notification as JSON (`serde_json`), nothing around it |
//! | `Herald-Origin` | the exporting bridge's id: 32 lower-case hex digits |
//! | `Herald-Seq` | decimal sequence number, per (origin, subject), from 1, no gaps at the sender |
//! | `Herald-Sender` | decimal raw [`SenderId`](crate::SenderId), only for `post_from` posts |
//! | `Herald-Heartbeat` | `1` on a heartbeat: no payload, `Herald-Seq` is the last sequence sent |
//!
//! A message without `Herald-Origin` comes from a publisher that is not a herald bridge (any
//! NATS client publishing JSON): it is imported with [`Origin::foreign`](super::Origin), without
//! loss accounting. Version 1 is the absence of a `Herald-Schema` header; a later, incompatible
//! version will add `Herald-Schema: 2` and importers of version 1 count such messages as
//! undecodable instead of misreading them.
//!
//! [`Notification::name`]: crate::Notification::name

use super::{Error, ErrorKind};

pub(crate) const ORIGIN: &str = "Herald-Origin";
pub(crate) const SEQ: &str = "Herald-Seq";
pub(crate) const SENDER: &str = "Herald-Sender";
pub(crate) const HEARTBEAT: &str = "Herald-Heartbeat";
pub(crate) const SCHEMA: &str = "Herald-Schema";

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
