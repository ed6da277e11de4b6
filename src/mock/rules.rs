//! Apple's request rules (APNS.md sections 2–6 and 8), as the mock applies them.
//!
//! Checks run in this order; the first failure answers:
//! 1. route: `POST /3/device/<token>` (other methods 405 MethodNotAllowed), `/4/broadcasts/apps/<bundle>`,
//!    `/1/apps/<bundle>/channels`, `/1/apps/<bundle>/all-channels`; anything else 404 BadPath.
//!    The device token must be hex of even, non-zero length (400 BadDeviceToken; empty: MissingDeviceToken).
//!    A query string is ignored, with a warning on the recorded request ([`QUERY_WARNING`]).
//! 2. a scripted [`Fault`](super::Fault), if one is queued (pushes and broadcasts only);
//! 3. 400 DuplicateHeaders when an `apns-*` or `authorization` header appears twice;
//! 4. authentication: token (403 MissingProviderToken, InvalidProviderToken (also for an `iat`
//!    more than an hour ahead),
//!    BadEnvironmentKeyIdInToken for a key restricted to the other environment,
//!    ExpiredProviderToken, UnrelatedKeyIdInToken for a key of another team or scope than the
//!    connection's, or another topic-specific key not related to the connection's;
//!    429 TooManyProviderTokenUpdates) or certificate (403 BadCertificate when the certificate
//!    has no subject UID, BadCertificateEnvironment when it is for the other environment only);
//! 5. 400 BadMessageId (apns-id not 8-4-4-4-12 hex);
//! 6. topic: MissingTopic (token auth), BadTopic (malformed, or suffix not the push type's),
//!    TopicDisallowed (bundle not allowed for the key or certificate, or a token-only push type
//!    under certificate auth); push type: InvalidPushType;
//! 7. BadPriority, BadExpirationDate, BadCollapseId;
//! 8. payload: PayloadEmpty, 413 PayloadTooLarge (4096 bytes; 5120 for voip and broadcasts),
//!    BadRequestPayload (not a JSON object: Apple's /3/device reason table has no entry for
//!    malformed JSON, so the mock answers the reason Apple documents for it on broadcasts);
//! 9. device state: 410 Unregistered (with timestamp), DeviceTokenNotForTopic, BadDeviceToken
//!    (unknown token, unless unknown tokens are accepted);
//! 10. the configured 500/503 error rate; otherwise 200.

use super::fault::Fault;
use super::keys::{TokenClaims, parse_token, verify_es256};
use super::record::{AuthKind, Endpoint};
use super::state::{ChannelConfig, Conn, ConnAuth, Shared, TokenState};
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, Method};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Recorded on requests whose provider token was not strict base64url (see
/// [`RecordedRequest::warnings`](super::RecordedRequest::warnings)).
pub(crate) const LENIENT_JWT_WARNING: &str = "provider token is not strict base64url (standard base64 alphabet or padding): accepted, as Apple accepts it";

/// Recorded on requests whose `:path` has a query string: Apple documents none on any of its
/// paths, and what it answers to one is unknown, so the mock routes by the path alone and says so.
pub(crate) const QUERY_WARNING: &str = "the :path has a query string: Apple documents none, and its answer to one is unknown; the mock ignored it and routed by the path alone";

/// A rejection: status and reason (and the 410 timestamp).
#[derive(Debug, Clone)]
pub(crate) struct Rej {
    pub(crate) status: u16,
    pub(crate) reason: String,
    pub(crate) timestamp_ms: Option<u64>,
}

fn rej(status: u16, reason: &str) -> Rej {
    Rej {
        status,
        reason: reason.to_owned(),
        timestamp_ms: None,
    }
}

/// A served answer: status, extra headers, body.
pub(crate) type Served = (u16, Vec<(&'static str, String)>, Option<Bytes>);

/// What the handler must do.
#[derive(Debug)]
pub(crate) enum Action {
    Respond {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Option<Bytes>,
    },
    Stall,
    Drop,
    Refuse,
    GoAway(String),
}

/// The result of [`Shared::decide`].
#[derive(Debug)]
pub(crate) struct Decision {
    pub(crate) action: Action,
    pub(crate) delay: Duration,
    /// Send a graceful GOAWAY with this reason after answering.
    pub(crate) goaway_after: Option<String>,
}

/// Push types Apple knows, with their topic suffix.
const PUSH_TYPES: &[(&str, &str)] = &[
    ("alert", ""),
    ("background", ""),
    ("voip", ".voip"),
    ("complication", ".complication"),
    ("fileprovider", ".pushkit.fileprovider"),
    ("location", ".location-query"),
    ("mdm", ""),
    ("liveactivity", ".push-type.liveactivity"),
    ("pushtotalk", ".voip-ptt"),
    ("widgets", ".push-type.widgets"),
    ("controls", ".push-type.controls"),
];

/// Splits a topic into (bundle id, suffix) on the longest known suffix.
fn split_topic(topic: &str) -> (&str, &'static str) {
    let mut best: (&str, &'static str) = (topic, "");
    for (_, suffix) in PUSH_TYPES {
        if !suffix.is_empty()
            && topic.len() > suffix.len()
            && topic.ends_with(suffix)
            && suffix.len() > best.1.len()
        {
            best = (&topic[..topic.len() - suffix.len()], suffix);
        }
    }
    best
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<Result<&'a str, ()>> {
    headers.get(name).map(|v| v.to_str().map_err(|_| ()))
}

pub(crate) fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn is_hex_token(s: &str) -> bool {
    !s.is_empty() && s.len().is_multiple_of(2) && s.bytes().all(|c| c.is_ascii_hexdigit())
}

/// A well-formed topic: labels of ASCII letters, digits, `-` and `_` joined by single dots.
/// The client checks the same rule before sending (`is_well_formed_topic` in
/// `src/apns/push.rs`); the two cannot share code (the mock never imports the client, and the
/// `mock` feature does not build it), so `tests/apns_mock.rs` checks that they agree.
fn valid_topic(t: &str) -> bool {
    !t.is_empty()
        && !t.starts_with('.')
        && !t.ends_with('.')
        && !t.contains("..")
        && t.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-' || c == b'_')
}

pub(crate) fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

pub(crate) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Where a request goes.
#[derive(Debug)]
pub(crate) enum Route {
    Push(String),
    Broadcast(String),
    Channels(String),
    AllChannels(String),
}

/// Step 1: method and path.
pub(crate) fn route(method: &Method, path: &str) -> Result<Route, (Endpoint, Rej)> {
    if let Some(rest) = path.strip_prefix("/3/device") {
        let fail = |r| Err((Endpoint::Push, r));
        if method != Method::POST {
            return fail(rej(405, "MethodNotAllowed"));
        }
        let token = match rest {
            "" | "/" => return fail(rej(400, "MissingDeviceToken")),
            _ => match rest.strip_prefix('/') {
                Some(t) if !t.contains('/') => t,
                _ => return fail(rej(404, "BadPath")),
            },
        };
        if !is_hex_token(token) {
            return fail(rej(400, "BadDeviceToken"));
        }
        return Ok(Route::Push(token.to_owned()));
    }
    if let Some(bundle) = path.strip_prefix("/4/broadcasts/apps/") {
        if bundle.is_empty() || bundle.contains('/') {
            return Err((Endpoint::Broadcast, rej(404, "BadPath")));
        }
        if method != Method::POST {
            return Err((Endpoint::Broadcast, rej(405, "MethodNotAllowed")));
        }
        return Ok(Route::Broadcast(bundle.to_owned()));
    }
    if let Some(rest) = path.strip_prefix("/1/apps/") {
        let fail = |r| Err((Endpoint::Channels, r));
        if let Some(bundle) = rest.strip_suffix("/all-channels") {
            if bundle.is_empty() || bundle.contains('/') {
                return fail(rej(404, "BadPath"));
            }
            if method != Method::GET {
                return fail(rej(405, "MethodNotAllowed"));
            }
            return Ok(Route::AllChannels(bundle.to_owned()));
        }
        if let Some(bundle) = rest.strip_suffix("/channels") {
            if bundle.is_empty() || bundle.contains('/') {
                return fail(rej(404, "BadPath"));
            }
            if ![Method::POST, Method::GET, Method::DELETE].contains(method) {
                return fail(rej(405, "MethodNotAllowed"));
            }
            return Ok(Route::Channels(bundle.to_owned()));
        }
    }
    Err((Endpoint::Other, rej(404, "BadPath")))
}

/// What authentication established for a request.
#[derive(Debug, Default)]
pub(crate) struct Identity {
    /// Bundle ids allowed; `None` = any.
    pub(crate) topics: Option<Vec<String>>,
    pub(crate) certificate: bool,
    /// Under certificate auth with Apple's topics extension: the exact topics allowed.
    pub(crate) cert_topics: Option<Vec<String>>,
}

impl Shared {
    /// Step 4 under token auth.
    fn check_token(
        &self,
        conn: &Conn,
        headers: &HeaderMap,
        auth: &mut AuthKind,
        warnings: &mut Vec<String>,
    ) -> Result<Identity, Rej> {
        let value = match header(headers, "authorization") {
            None => return Err(rej(403, "MissingProviderToken")),
            Some(Err(())) => return Err(rej(403, "InvalidProviderToken")),
            Some(Ok(v)) => v.trim(),
        };
        let jwt = match value.split_once(' ') {
            Some((scheme, jwt)) if scheme.eq_ignore_ascii_case("bearer") => jwt.trim(),
            _ if value.is_empty() => return Err(rej(403, "MissingProviderToken")),
            _ => return Err(rej(403, "InvalidProviderToken")),
        };
        let now = unix_secs(self.clock.now());
        let mut current = conn.token.lock();
        if let Some(cur) = current.as_ref().filter(|c| c.jwt == jwt) {
            *auth = AuthKind::Token {
                key_id: Some(cur.claims.kid.clone()),
                team_id: Some(cur.claims.iss.clone()),
            };
            if cur.lenient_base64 {
                warnings.push(LENIENT_JWT_WARNING.to_owned());
            }
            // The key's scope is read as it is now (keys are never removed); only its
            // topics are copied out of the table.
            let topics = {
                let keys = self.keys.read();
                let key = keys.get(&cur.claims.kid);
                if key.is_some_and(|k| !k.serves(self.environment)) {
                    return Err(rej(403, "BadEnvironmentKeyIdInToken"));
                }
                key.and_then(|k| k.topics.clone())
            };
            check_iat(&cur.claims, now)?;
            return Ok(Identity {
                topics,
                certificate: false,
                cert_topics: None,
            });
        }
        let Some(parsed) = parse_token(jwt) else {
            return Err(rej(403, "InvalidProviderToken"));
        };
        if parsed.lenient_base64 {
            warnings.push(LENIENT_JWT_WARNING.to_owned());
            tracing::warn!(
                kid = %parsed.claims.kid,
                "mock APNs: provider token is not strict base64url (standard alphabet or padding); accepted, as Apple does"
            );
        }
        let parsed_lenient = parsed.lenient_base64;
        let (claims, signed, signature) = (parsed.claims, parsed.signed, parsed.signature);
        *auth = AuthKind::Token {
            key_id: Some(claims.kid.clone()),
            team_id: Some(claims.iss.clone()),
        };
        let Some(key) = self.keys.read().get(&claims.kid).cloned() else {
            return Err(rej(403, "InvalidProviderToken"));
        };
        if !verify_es256(&key.public, signed.as_bytes(), &signature) || claims.iss != key.team_id {
            return Err(rej(403, "InvalidProviderToken"));
        }
        // A key for the other environment is refused whatever the connection's history:
        // Apple's reason table has BadEnvironmentKeyIdInToken, "the key ID in the provider
        // token doesn't match the environment". So environments never get to mix on one
        // connection (one connection, one environment): UnrelatedKeyIdInToken is left for
        // keys that are valid here but not related to the connection's first key.
        if !key.serves(self.environment) {
            return Err(rej(403, "BadEnvironmentKeyIdInToken"));
        }
        check_iat(&claims, now)?;
        if let Some(cur) = current.as_ref() {
            // One team per connection, and keys of one scope (APNS.md §3; Apple,
            // "Establishing a token-based connection to APNs"): after a team-scoped key, no
            // topic-specific key; after a topic-specific key, no other key but its related
            // one. A new token of the same key is never unrelated, even if the key was
            // restricted since; the current key's scope is read as it is now (keys are never
            // removed).
            if cur.claims.iss != claims.iss || !self.keys_mix(&cur.claims.kid, &claims.kid) {
                return Err(rej(403, "UnrelatedKeyIdInToken"));
            }
            if claims.iat.saturating_sub(cur.claims.iat) < 20 * 60 {
                return Err(rej(429, "TooManyProviderTokenUpdates"));
            }
        }
        *current = Some(TokenState {
            jwt: jwt.to_owned(),
            claims,
            lenient_base64: parsed_lenient,
        });
        conn.stats.lock().tokens += 1;
        Ok(Identity {
            topics: key.topics,
            certificate: false,
            cert_topics: None,
        })
    }

    /// Whether tokens of key `first` and then key `next` may share a connection: the same
    /// key; two team-scoped keys; or two keys declared related ([`MockApns::relate_keys`]).
    /// Two different topic-specific keys are not, whatever their topics: Apple names "an
    /// unrelated topic-specific key" among the keys refused after a topic-specific one.
    ///
    /// [`MockApns::relate_keys`]: super::MockApns::relate_keys
    fn keys_mix(&self, first: &str, next: &str) -> bool {
        if first == next {
            return true;
        }
        let keys = self.keys.read();
        let (Some(a), Some(b)) = (keys.get(first), keys.get(next)) else {
            return false;
        };
        (a.topics.is_none() && b.topics.is_none())
            || a.related.as_deref() == Some(next)
            || b.related.as_deref() == Some(first)
    }

    /// Step 4, either kind.
    pub(crate) fn authenticate(
        &self,
        conn: &Conn,
        headers: &HeaderMap,
        auth: &mut AuthKind,
        warnings: &mut Vec<String>,
    ) -> Result<Identity, Rej> {
        match &conn.auth {
            ConnAuth::Token => self.check_token(conn, headers, auth, warnings),
            ConnAuth::Certificate {
                bundle_id: Some(_),
                environments,
                ..
            } if !environments.is_empty() && !environments.contains(&self.environment) => {
                Err(rej(403, "BadCertificateEnvironment"))
            }
            ConnAuth::Certificate {
                bundle_id: Some(b),
                topics,
                ..
            } => Ok(Identity {
                topics: Some(vec![b.clone()]),
                certificate: true,
                cert_topics: topics.clone(),
            }),
            ConnAuth::Certificate {
                bundle_id: None, ..
            } => Err(rej(403, "BadCertificate")),
        }
    }

    /// Steps 5–10 for `POST /3/device/<token>`. Returns the push type on success.
    pub(crate) fn check_push(
        &self,
        identity: &Identity,
        headers: &HeaderMap,
        token: &str,
        body: &[u8],
    ) -> Result<(), Rej> {
        if let Some(id) = header(headers, "apns-id")
            && !id.is_ok_and(is_uuid)
        {
            return Err(rej(400, "BadMessageId"));
        }
        let topic = match header(headers, "apns-topic") {
            Some(Ok(t)) => t.to_owned(),
            Some(Err(())) => return Err(rej(400, "BadTopic")),
            None if identity.certificate => match identity.topics.as_deref() {
                Some([bundle]) => bundle.clone(),
                _ => return Err(rej(400, "MissingTopic")),
            },
            None => return Err(rej(400, "MissingTopic")),
        };
        if !valid_topic(&topic) {
            return Err(rej(400, "BadTopic"));
        }
        let (bundle, suffix) = split_topic(&topic);
        let push_type = match header(headers, "apns-push-type") {
            Some(Ok(t)) => t.to_owned(),
            Some(Err(())) => return Err(rej(400, "InvalidPushType")),
            None => PUSH_TYPES
                .iter()
                .find(|(_, s)| !s.is_empty() && *s == suffix)
                .map_or("alert", |(t, _)| t)
                .to_owned(),
        };
        let Some((_, required)) = PUSH_TYPES.iter().find(|(t, _)| *t == push_type) else {
            return Err(rej(400, "InvalidPushType"));
        };
        if push_type != "mdm" && suffix != *required {
            return Err(rej(400, "BadTopic"));
        }
        if let Some(allowed) = &identity.topics
            && push_type != "mdm"
            && !allowed.iter().any(|b| b == bundle)
        {
            return Err(rej(400, "TopicDisallowed"));
        }
        if let Some(listed) = &identity.cert_topics
            && push_type != "mdm"
            && !listed.contains(&topic)
        {
            return Err(rej(400, "TopicDisallowed"));
        }
        if identity.certificate && matches!(push_type.as_str(), "location" | "liveactivity") {
            return Err(rej(400, "TopicDisallowed"));
        }
        check_priority(headers, &push_type)?;
        check_expiration(headers)?;
        if let Some(c) = headers.get("apns-collapse-id")
            && c.len() > 64
        {
            return Err(rej(400, "BadCollapseId"));
        }
        let limit = if push_type == "voip" { 5120 } else { 4096 };
        check_payload(body, limit)?;
        self.check_device(token, bundle)
    }

    fn check_device(&self, token: &str, bundle: &str) -> Result<(), Rej> {
        let token = token.to_ascii_lowercase();
        if let Some(at) = self.unregistered.read().get(&token) {
            return Err(Rej {
                status: 410,
                reason: "Unregistered".to_owned(),
                timestamp_ms: Some(unix_ms(*at)),
            });
        }
        match self.devices.read().get(&token) {
            Some(b) if b == bundle || b == "*" => Ok(()),
            Some(_) => Err(rej(400, "DeviceTokenNotForTopic")),
            None if self.config.read().accept_unknown_tokens => Ok(()),
            None => Err(rej(400, "BadDeviceToken")),
        }
    }

    /// Steps 5–8 for `POST /4/broadcasts/apps/<bundle>`.
    pub(crate) fn check_broadcast(
        &self,
        identity: &Identity,
        headers: &HeaderMap,
        bundle: &str,
        body: &[u8],
    ) -> Result<(), Rej> {
        if let Some(id) = header(headers, "apns-id")
            && !id.is_ok_and(is_uuid)
        {
            return Err(rej(400, "BadMessageId"));
        }
        if let Some(allowed) = &identity.topics
            && !allowed.iter().any(|b| b == bundle)
        {
            return Err(rej(400, "TopicDisallowed"));
        }
        let channel = self.channel(headers, bundle)?;
        match header(headers, "apns-push-type") {
            None => return Err(rej(400, "MissingPushType")),
            Some(Ok("liveactivity")) => {}
            Some(_) => return Err(rej(400, "InvalidPushType")),
        }
        check_priority(headers, "liveactivity")?;
        let expiration = check_expiration(headers)?;
        if channel.storage_policy == 0 && expiration.is_some_and(|e| e != 0) {
            return Err(rej(400, "BadExpirationDate"));
        }
        check_payload(body, 5120)
    }

    /// The channel named by `apns-channel-id` in `bundle`.
    fn channel(&self, headers: &HeaderMap, bundle: &str) -> Result<ChannelConfig, Rej> {
        let id = match header(headers, "apns-channel-id") {
            None => return Err(rej(400, "MissingChannelId")),
            Some(Ok(id)) if base64::engine::general_purpose::STANDARD.decode(id).is_ok() => id,
            Some(_) => return Err(rej(400, "BadChannelId")),
        };
        self.channels
            .lock()
            .get(bundle)
            .and_then(|c| c.get(id))
            .cloned()
            .ok_or_else(|| rej(400, "ChannelNotRegistered"))
    }

    /// Channel management (`/1/apps/<bundle>/channels`, `/all-channels`) after authentication.
    /// Returns (status, extra headers, body).
    pub(crate) fn manage_channels(
        &self,
        identity: &Identity,
        method: &Method,
        route: &Route,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Served, Rej> {
        let bundle = match route {
            Route::Channels(b) | Route::AllChannels(b) => b.as_str(),
            _ => return Err(rej(404, "BadPath")),
        };
        if let Some(allowed) = &identity.topics
            && !allowed.iter().any(|b| b == bundle)
        {
            return Err(rej(400, "TopicDisallowed"));
        }
        if let Route::AllChannels(_) = route {
            let ids: Vec<String> = self
                .channels
                .lock()
                .get(bundle)
                .map(|c| c.keys().cloned().collect())
                .unwrap_or_default();
            let body = serde_json::json!({ "channels": ids }).to_string();
            return Ok((200, vec![], Some(Bytes::from(body))));
        }
        match *method {
            Method::POST => {
                if body.is_empty() {
                    return Err(rej(400, "BadRequestPayload"));
                }
                let Ok(serde_json::Value::Object(cfg)) = serde_json::from_slice(body) else {
                    return Err(rej(400, "BadRequestPayload"));
                };
                let policy = cfg.get("message-storage-policy").and_then(|v| v.as_u64());
                let push_type = cfg.get("push-type").and_then(|v| v.as_str());
                let (Some(policy @ (0 | 1)), Some(push_type @ "LiveActivity")) =
                    (policy, push_type)
                else {
                    return Err(rej(400, "BadRequestParams"));
                };
                let mut channels = self.channels.lock();
                if channels.values().map(|c| c.len()).sum::<usize>() >= 10_000 {
                    return Err(rej(400, "CannotCreateChannelConfig"));
                }
                let id_bytes: [u8; 16] = rand::random();
                let id = base64::engine::general_purpose::STANDARD.encode(id_bytes);
                channels.entry(bundle.to_owned()).or_default().insert(
                    id.clone(),
                    ChannelConfig {
                        storage_policy: policy,
                        push_type: push_type.to_owned(),
                    },
                );
                Ok((201, vec![("apns-channel-id", id)], None))
            }
            Method::GET => {
                let c = self.channel(headers, bundle)?;
                let body = serde_json::json!({
                    "message-storage-policy": c.storage_policy,
                    "push-type": c.push_type,
                })
                .to_string();
                Ok((200, vec![], Some(Bytes::from(body))))
            }
            _ => {
                self.channel(headers, bundle)?;
                if let (Some(Ok(id)), Some(c)) = (
                    header(headers, "apns-channel-id"),
                    self.channels.lock().get_mut(bundle),
                ) {
                    c.remove(id);
                }
                Ok((204, vec![], None))
            }
        }
    }

    /// Step 2: the next scripted fault, if any: the device's own queue first, then the global one.
    pub(crate) fn next_fault(&self, device: Option<&str>) -> Option<Fault> {
        if let Some(token) = device {
            let mut per_device = self.device_script.lock();
            let token = token.to_ascii_lowercase();
            if let Some(queue) = per_device.get_mut(&token) {
                let fault = queue.pop_front();
                if queue.is_empty() {
                    per_device.remove(&token);
                }
                if fault.is_some() {
                    return fault;
                }
            }
        }
        self.script.lock().pop_front()
    }
}

/// Step 3: `authorization` or any `apns-*` header (known to Apple or not) appearing twice.
pub(crate) fn check_duplicates(headers: &HeaderMap) -> Result<(), Rej> {
    // Header names arrive lowercase (HTTP/2), and `keys` yields each name once.
    for name in headers.keys() {
        let name = name.as_str();
        if (name == "authorization" || name.starts_with("apns-"))
            && headers.get_all(name).iter().nth(1).is_some()
        {
            return Err(rej(400, "DuplicateHeaders"));
        }
    }
    Ok(())
}

/// A token's `iat` against the mock's now (UNIX seconds). Apple: the value "must be no more
/// than one hour from the current time". More than an hour old: 403 ExpiredProviderToken (the
/// reason Apple names). More than an hour ahead (a clock far off, or `iat` in milliseconds):
/// 403 InvalidProviderToken (Apple names no reason for it; the token is not valid, and it is
/// not stale, so a new one minted the same way would not help).
fn check_iat(claims: &TokenClaims, now: i64) -> Result<(), Rej> {
    if now.saturating_sub(claims.iat) > 3600 {
        return Err(rej(403, "ExpiredProviderToken"));
    }
    if claims.iat.saturating_sub(now) > 3600 {
        return Err(rej(403, "InvalidProviderToken"));
    }
    Ok(())
}

fn check_priority(headers: &HeaderMap, push_type: &str) -> Result<(), Rej> {
    let priority = match header(headers, "apns-priority") {
        None => 10,
        Some(Ok("10")) => 10,
        Some(Ok("5")) => 5,
        Some(Ok("1")) => 1,
        Some(_) => return Err(rej(400, "BadPriority")),
    };
    let allowed: &[u8] = match push_type {
        "background" => &[5],
        "pushtotalk" => &[10],
        "liveactivity" => &[5, 10],
        _ => &[10, 5, 1],
    };
    if allowed.contains(&priority) {
        Ok(())
    } else {
        Err(rej(400, "BadPriority"))
    }
}

fn check_expiration(headers: &HeaderMap) -> Result<Option<u64>, Rej> {
    match header(headers, "apns-expiration") {
        None => Ok(None),
        Some(Ok(v)) if !v.is_empty() && v.bytes().all(|c| c.is_ascii_digit()) => v
            .parse()
            .map(Some)
            .map_err(|_| rej(400, "BadExpirationDate")),
        Some(_) => Err(rej(400, "BadExpirationDate")),
    }
}

fn check_payload(body: &[u8], limit: usize) -> Result<(), Rej> {
    if body.is_empty() {
        return Err(rej(400, "PayloadEmpty"));
    }
    if body.len() > limit {
        return Err(rej(413, "PayloadTooLarge"));
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        _ => Err(rej(400, "BadRequestPayload")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_split_on_the_longest_known_suffix() {
        assert_eq!(split_topic("com.a.b"), ("com.a.b", ""));
        assert_eq!(split_topic("com.a.voip"), ("com.a", ".voip"));
        assert_eq!(split_topic("com.a.voip-ptt"), ("com.a", ".voip-ptt"));
        assert_eq!(
            split_topic("com.a.push-type.liveactivity"),
            ("com.a", ".push-type.liveactivity")
        );
        assert_eq!(
            split_topic("com.a.pushkit.fileprovider"),
            ("com.a", ".pushkit.fileprovider")
        );
    }

    #[test]
    fn uuids_are_8_4_4_4_12_hex() {
        assert!(is_uuid("123e4567-e89b-12d3-a456-42661417400a"));
        assert!(is_uuid("123E4567-E89B-12D3-A456-42661417400A"));
        assert!(!is_uuid("123e4567e89b12d3a45642661417400a"));
        assert!(!is_uuid("123e4567-e89b-12d3-a456-42661417400g"));
    }

    #[test]
    fn device_tokens_are_even_length_hex_of_any_length() {
        assert!(is_hex_token(&"ab".repeat(32)));
        assert!(is_hex_token(&"ab".repeat(54)));
        assert!(is_hex_token(&"AB".repeat(80)));
        assert!(!is_hex_token("abc"));
        assert!(!is_hex_token("zz"));
        assert!(!is_hex_token(""));
    }
}
