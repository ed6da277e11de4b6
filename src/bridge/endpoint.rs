//! The registration endpoint (feature `endpoint`): the HTTP call an app makes when it gets a
//! device token, as `oldToken` / `newToken`, form-encoded or JSON.
//!
//! # The request
//! `POST` (any path; mount it where you like) with `Content-Type:
//! application/x-www-form-urlencoded` or `application/json`:
//!
//! | field | meaning |
//! |---|---|
//! | `newToken` | the token the app has now (hex) |
//! | `oldToken` | the token it had before, to replace in one step (optional) |
//! | `subject` | optional: must equal the subject the [`Verifier`] returns |
//! | `topic` | optional: one of the endpoint's topics (default: the first) |
//! | `environment` | optional: `sandbox` or `production` (default: the endpoint's) |
//!
//! `newToken` alone registers; both replace (the old token is never addressed again);
//! `oldToken` alone removes.
//!
//! # Who may do what
//! - The [`Verifier`] (your code) reads the request's credentials (bearer token, session
//!   cookie) and returns the caller's subject, or refuses (401). The caller acts only for that
//!   subject: a different `subject` field is 403, and taking, replacing or removing a token
//!   registered to another subject is 403 `not_owner`, with nothing changed.
//! - Bodies are limited (4 KiB by default, 413); requests are rate-limited per subject, and
//!   failed verifications per IP address (429 with `Retry-After`).
//! - Errors are JSON: `{"error": "<code>", "message": "<sentence>"}`; success is
//!   `{"result": "registered" | "replaced" | "removed", "subject": ..., "token": ...}`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::request::Parts;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;
use parking_lot::Mutex;

use crate::bridge::{Device, DeviceRegistry, Environment, Replaced};

/// Decides who is calling: returns the subject (user or account id) the request's credentials
/// belong to, or `None` to refuse it (401). Implement it for your session store; a closure
/// `Fn(&Parts) -> Option<String>` is one.
///
/// ```
/// use herald::bridge::endpoint::Verifier;
///
/// /// Bearer tokens from a sessions table.
/// struct Sessions(std::collections::HashMap<String, String>);
///
/// impl Verifier for Sessions {
///     async fn verify(&self, request: &http::request::Parts) -> Option<String> {
///         let auth = request.headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
///         self.0.get(auth.strip_prefix("Bearer ")?).cloned()
///     }
/// }
/// ```
pub trait Verifier: Send + Sync + 'static {
    /// The caller's subject, or `None` to refuse.
    fn verify(&self, request: &Parts) -> impl Future<Output = Option<String>> + Send;
}

impl<F> Verifier for F
where
    F: Fn(&Parts) -> Option<String> + Send + Sync + 'static,
{
    fn verify(&self, request: &Parts) -> impl Future<Output = Option<String>> + Send {
        std::future::ready(self(request))
    }
}

/// The registration endpoint: a hyper 1 handler over a [`DeviceRegistry`] (see the
/// [module docs](self) for the request and the rules). Use [`handle`](Self::handle) inside your
/// own server, or [`serve`](Self::serve) on a listener.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use herald::bridge::DeviceRegistry;
/// use herald::bridge::endpoint::RegistrationEndpoint;
///
/// let registry = DeviceRegistry::in_memory();
/// let endpoint = RegistrationEndpoint::builder(registry.clone(), |req: &http::request::Parts| {
///     // Your session check: here, `Authorization: Bearer user-<subject>`.
///     let auth = req.headers.get("authorization")?.to_str().ok()?;
///     Some(auth.strip_prefix("Bearer user-")?.to_owned())
/// })
/// .topic("com.example.app")
/// .build();
///
/// let request = http::Request::post("/devices")
///     .header("authorization", "Bearer user-alice")
///     .header("content-type", "application/x-www-form-urlencoded")
///     .body(http_body_util::Full::new(bytes::Bytes::from(format!("newToken={}", "ab".repeat(32)))))
///     .unwrap();
/// let response = endpoint.handle(request, "127.0.0.1".parse().unwrap()).await;
/// assert_eq!(response.status(), 200);
/// assert_eq!(registry.devices("alice").unwrap().len(), 1);
/// # }
/// ```
pub struct RegistrationEndpoint<V> {
    inner: Arc<Inner<V>>,
}

impl<V> Clone for RegistrationEndpoint<V> {
    fn clone(&self) -> Self {
        RegistrationEndpoint {
            inner: self.inner.clone(),
        }
    }
}

impl<V> fmt::Debug for RegistrationEndpoint<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistrationEndpoint")
            .field("topics", &self.inner.topics)
            .field("environment", &self.inner.environment)
            .field("body_limit", &self.inner.body_limit)
            .finish_non_exhaustive()
    }
}

struct Inner<V> {
    registry: DeviceRegistry,
    verifier: V,
    topics: Vec<String>,
    environment: Environment,
    body_limit: usize,
    per_subject: Limiter,
    failures_per_ip: Limiter,
}

/// Configures a [`RegistrationEndpoint`].
///
/// ```
/// use herald::bridge::{DeviceRegistry, Environment};
/// use herald::bridge::endpoint::RegistrationEndpoint;
/// use std::time::Duration;
///
/// let endpoint = RegistrationEndpoint::builder(DeviceRegistry::in_memory(), |_: &http::request::Parts| None)
///     .topic("com.example.app")
///     .topic("com.example.app.watch")
///     .environment(Environment::Production)
///     .body_limit(2048)
///     .rate_limit(20, Duration::from_secs(60))
///     .build();
/// # drop(endpoint);
/// ```
#[must_use = "call .build() to get the endpoint"]
pub struct RegistrationEndpointBuilder<V> {
    registry: DeviceRegistry,
    verifier: V,
    topics: Vec<String>,
    environment: Environment,
    body_limit: usize,
    rate: (u32, Duration),
    failure_rate: (u32, Duration),
}

impl<V> fmt::Debug for RegistrationEndpointBuilder<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistrationEndpointBuilder")
            .field("topics", &self.topics)
            .finish_non_exhaustive()
    }
}

impl<V: Verifier> RegistrationEndpointBuilder<V> {
    /// Allows a topic (bundle id); the first one is the default for requests without `topic`.
    /// Without any, requests must name no topic and are refused (400 `no_topic`).
    ///
    /// ```
    /// # use herald::bridge::{DeviceRegistry, endpoint::RegistrationEndpoint};
    /// let b = RegistrationEndpoint::builder(DeviceRegistry::in_memory(), |_: &http::request::Parts| None)
    ///     .topic("com.example.app");
    /// # drop(b);
    /// ```
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topics.push(topic.into());
        self
    }

    /// The environment of requests without `environment` (default: sandbox).
    ///
    /// ```
    /// # use herald::bridge::{DeviceRegistry, Environment, endpoint::RegistrationEndpoint};
    /// let b = RegistrationEndpoint::builder(DeviceRegistry::in_memory(), |_: &http::request::Parts| None)
    ///     .environment(Environment::Production);
    /// # drop(b);
    /// ```
    pub fn environment(mut self, environment: Environment) -> Self {
        self.environment = environment;
        self
    }

    /// The largest body accepted, in bytes (default 4096); larger ones get 413.
    ///
    /// ```
    /// # use herald::bridge::{DeviceRegistry, endpoint::RegistrationEndpoint};
    /// let b = RegistrationEndpoint::builder(DeviceRegistry::in_memory(), |_: &http::request::Parts| None)
    ///     .body_limit(1024);
    /// # drop(b);
    /// ```
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// At most `requests` per subject per `per` (a token bucket; default 30 per minute).
    ///
    /// ```
    /// # use herald::bridge::{DeviceRegistry, endpoint::RegistrationEndpoint};
    /// # use std::time::Duration;
    /// let b = RegistrationEndpoint::builder(DeviceRegistry::in_memory(), |_: &http::request::Parts| None)
    ///     .rate_limit(5, Duration::from_secs(10));
    /// # drop(b);
    /// ```
    pub fn rate_limit(mut self, requests: u32, per: Duration) -> Self {
        self.rate = (requests, per);
        self
    }

    /// At most `failures` refused verifications per IP address per `per` before that address
    /// gets 429 without being verified (default 20 per minute).
    ///
    /// ```
    /// # use herald::bridge::{DeviceRegistry, endpoint::RegistrationEndpoint};
    /// # use std::time::Duration;
    /// let b = RegistrationEndpoint::builder(DeviceRegistry::in_memory(), |_: &http::request::Parts| None)
    ///     .failed_auth_limit(3, Duration::from_secs(60));
    /// # drop(b);
    /// ```
    pub fn failed_auth_limit(mut self, failures: u32, per: Duration) -> Self {
        self.failure_rate = (failures, per);
        self
    }

    /// Builds the endpoint.
    ///
    /// ```
    /// # use herald::bridge::{DeviceRegistry, endpoint::RegistrationEndpoint};
    /// let e = RegistrationEndpoint::builder(DeviceRegistry::in_memory(), |_: &http::request::Parts| None).build();
    /// # drop(e);
    /// ```
    pub fn build(self) -> RegistrationEndpoint<V> {
        RegistrationEndpoint {
            inner: Arc::new(Inner {
                registry: self.registry,
                verifier: self.verifier,
                topics: self.topics,
                environment: self.environment,
                body_limit: self.body_limit,
                per_subject: Limiter::new(self.rate.0, self.rate.1),
                failures_per_ip: Limiter::new(self.failure_rate.0, self.failure_rate.1),
            }),
        }
    }
}

/// A refusal: status, code, message.
struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<Duration>,
}

fn refuse(status: StatusCode, code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        code,
        message: message.into(),
        retry_after: None,
    }
}

#[derive(Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Fields {
    subject: Option<String>,
    old_token: Option<String>,
    new_token: Option<String>,
    topic: Option<String>,
    environment: Option<String>,
}

impl<V: Verifier> RegistrationEndpoint<V> {
    /// Starts configuring an endpoint over `registry`, with `verifier` deciding who calls.
    ///
    /// ```
    /// # use herald::bridge::{DeviceRegistry, endpoint::RegistrationEndpoint};
    /// let e = RegistrationEndpoint::builder(DeviceRegistry::in_memory(), |_: &http::request::Parts| None)
    ///     .topic("com.example.app")
    ///     .build();
    /// # drop(e);
    /// ```
    pub fn builder(registry: DeviceRegistry, verifier: V) -> RegistrationEndpointBuilder<V> {
        RegistrationEndpointBuilder {
            registry,
            verifier,
            topics: Vec::new(),
            environment: Environment::Sandbox,
            body_limit: 4096,
            rate: (30, Duration::from_secs(60)),
            failure_rate: (20, Duration::from_secs(60)),
        }
    }

    /// Handles one request from `peer` (the client's address, for rate-limiting failed
    /// verifications). Never fails: refusals are JSON error responses.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # use herald::bridge::{DeviceRegistry, endpoint::RegistrationEndpoint};
    /// let e = RegistrationEndpoint::builder(DeviceRegistry::in_memory(), |_: &http::request::Parts| None).build();
    /// let req = http::Request::post("/").body(http_body_util::Empty::<bytes::Bytes>::new()).unwrap();
    /// let res = e.handle(req, "10.0.0.1".parse().unwrap()).await;
    /// assert_eq!(res.status(), 401);
    /// # }
    /// ```
    pub async fn handle<B>(&self, request: Request<B>, peer: IpAddr) -> Response<Full<Bytes>>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        match self.try_handle(request, peer).await {
            Ok((result, subject, token)) => json_response(
                StatusCode::OK,
                serde_json::json!({ "result": result, "subject": subject, "token": token }),
                None,
            ),
            Err(r) => json_response(
                r.status,
                serde_json::json!({ "error": r.code, "message": r.message }),
                r.retry_after,
            ),
        }
    }

    async fn try_handle<B>(
        &self,
        request: Request<B>,
        peer: IpAddr,
    ) -> Result<(&'static str, String, String), Refusal>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let inner = &*self.inner;
        let (parts, body) = request.into_parts();
        if parts.method != Method::POST {
            return Err(refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "use POST",
            ));
        }
        let ip_key = format!("ip:{peer}");
        if let Some(wait) = inner.failures_per_ip.exhausted(&ip_key) {
            return Err(too_many(
                wait,
                "too many refused requests from this address",
            ));
        }
        let Some(subject) = inner.verifier.verify(&parts).await else {
            let _ = inner.failures_per_ip.take(&ip_key);
            return Err(refuse(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the request's credentials were not accepted",
            ));
        };
        if let Err(wait) = inner.per_subject.take(&format!("subject:{subject}")) {
            return Err(too_many(wait, "too many registrations for this subject"));
        }

        // Body: size first (declared, then actual), then type.
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let too_large = || {
            refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the body must be at most {} bytes", inner.body_limit),
            )
        };
        if declared.is_some_and(|n| n > inner.body_limit as u64) {
            return Err(too_large());
        }
        let bytes = match Limited::new(body, inner.body_limit).collect().await {
            Ok(c) => c.to_bytes(),
            Err(e)
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                return Err(too_large());
            }
            Err(_) => {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    "bad_body",
                    "the body could not be read",
                ));
            }
        };
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let fields = match content_type.as_str() {
            "application/json" => serde_json::from_slice::<Fields>(&bytes).map_err(|_| {
                refuse(
                    StatusCode::BAD_REQUEST,
                    "bad_json",
                    "the body is not a JSON object with string fields",
                )
            })?,
            "application/x-www-form-urlencoded" => parse_form(&bytes)?,
            _ => {
                return Err(refuse(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "send application/x-www-form-urlencoded or application/json",
                ));
            }
        };

        if let Some(claimed) = non_empty(fields.subject)
            && claimed != subject
        {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "subject_mismatch",
                "the caller may only register devices for its own subject",
            ));
        }
        let topic = match non_empty(fields.topic) {
            Some(t) if inner.topics.contains(&t) => t,
            Some(_) => {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    "unknown_topic",
                    "the topic is not one this server sends to",
                ));
            }
            None => inner.topics.first().cloned().ok_or_else(|| {
                refuse(
                    StatusCode::BAD_REQUEST,
                    "no_topic",
                    "this endpoint has no topic configured",
                )
            })?,
        };
        let environment = match non_empty(fields.environment) {
            Some(e) => Environment::parse(&e).ok_or_else(|| {
                refuse(
                    StatusCode::BAD_REQUEST,
                    "bad_environment",
                    "environment must be sandbox or production",
                )
            })?,
            None => inner.environment,
        };
        let old = non_empty(fields.old_token)
            .map(|t| valid_token(&t, "oldToken"))
            .transpose()?;
        let new = non_empty(fields.new_token)
            .map(|t| valid_token(&t, "newToken"))
            .transpose()?;

        let registry = &inner.registry;
        let result = match (old, new) {
            (None, None) => {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    "missing_token",
                    "send newToken (and oldToken to replace it), or oldToken alone to remove it",
                ));
            }
            (None, Some(new)) => registry
                .register(Device::new(&subject, &new, topic, environment))
                .map(|()| ("registered", new)),
            (Some(old), Some(new)) => registry
                .replace(&old, Device::new(&subject, &new, topic, environment))
                .map(|r| match r {
                    Replaced::Replaced => ("replaced", new),
                    Replaced::Registered => ("registered", new),
                }),
            (Some(old), None) => match registry.remove(&subject, &old) {
                Ok(true) => Ok(("removed", old)),
                Ok(false) => {
                    return Err(refuse(
                        StatusCode::NOT_FOUND,
                        "not_registered",
                        "oldToken is not registered",
                    ));
                }
                Err(e) => Err(e),
            },
        };
        match result {
            Ok((what, token)) => Ok((what, subject, token)),
            Err(e) if e.is_not_owner() => Err(refuse(
                StatusCode::FORBIDDEN,
                "not_owner",
                "a token in the request is registered to another subject",
            )),
            Err(e) => {
                tracing::error!(error = %e, "registration endpoint: device store failed");
                Err(refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the device store failed; try again later",
                ))
            }
        }
    }

    /// Serves the endpoint over HTTP/1.1 on `listener` until the future is dropped (spawn it,
    /// abort it to stop). Each connection gets 10 s to send its request headers.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// use herald::bridge::{DeviceRegistry, endpoint::RegistrationEndpoint};
    /// let endpoint = RegistrationEndpoint::builder(DeviceRegistry::in_memory(), |_: &http::request::Parts| None)
    ///     .topic("com.example.app")
    ///     .build();
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// println!("POST http://{}/devices", listener.local_addr()?);
    /// let server = tokio::spawn(endpoint.serve(listener));
    /// server.abort();
    /// # Ok(()) }
    /// ```
    pub async fn serve(self, listener: tokio::net::TcpListener) {
        loop {
            let (stream, peer): (_, SocketAddr) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "registration endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let endpoint = self.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let endpoint = endpoint.clone();
                    async move { Ok::<_, Infallible>(endpoint.handle(req, peer.ip()).await) }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .serve_connection(io, service)
                    .await;
            });
        }
    }
}

fn too_many(wait: Duration, message: &str) -> Refusal {
    Refusal {
        retry_after: Some(wait),
        ..refuse(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
    }
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn valid_token(token: &str, field: &str) -> Result<String, Refusal> {
    let ok = (8..=200).contains(&token.len())
        && token.len().is_multiple_of(2)
        && token.bytes().all(|b| b.is_ascii_hexdigit());
    if ok {
        Ok(token.to_ascii_lowercase())
    } else {
        Err(refuse(
            StatusCode::BAD_REQUEST,
            "bad_token",
            format!("{field} must be an even number (8 to 200) of hex digits"),
        ))
    }
}

fn json_response(
    status: StatusCode,
    body: serde_json::Value,
    retry_after: Option<Duration>,
) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from(body.to_string())));
    *res.status_mut() = status;
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    if status == StatusCode::METHOD_NOT_ALLOWED {
        headers.insert(header::ALLOW, header::HeaderValue::from_static("POST"));
    }
    if let Some(wait) = retry_after {
        let secs = wait.as_secs().max(1);
        headers.insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
    }
    res
}

/// `application/x-www-form-urlencoded`: `a=b&c=d`, `+` is a space, `%XX` escapes.
fn parse_form(bytes: &[u8]) -> Result<Fields, Refusal> {
    let bad = || {
        refuse(
            StatusCode::BAD_REQUEST,
            "bad_form",
            "the body is not valid form encoding",
        )
    };
    let mut fields = Fields::default();
    for pair in bytes.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let mut kv = pair.splitn(2, |&b| b == b'=');
        let key = decode(kv.next().unwrap_or_default()).ok_or_else(bad)?;
        let value = decode(kv.next().unwrap_or_default()).ok_or_else(bad)?;
        let slot = match key.as_str() {
            "subject" => &mut fields.subject,
            "oldToken" => &mut fields.old_token,
            "newToken" => &mut fields.new_token,
            "topic" => &mut fields.topic,
            "environment" => &mut fields.environment,
            _ => continue,
        };
        if slot.is_some() {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "duplicate_field",
                format!("{key} appears twice"),
            ));
        }
        *slot = Some(value);
    }
    Ok(fields)
}

fn decode(s: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Token buckets by key, pruned when the map grows large.
struct Limiter {
    capacity: f64,
    per_second: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

const MAX_BUCKETS: usize = 100_000;

impl Limiter {
    fn new(requests: u32, per: Duration) -> Limiter {
        let capacity = f64::from(requests.max(1));
        Limiter {
            capacity,
            per_second: capacity / per.as_secs_f64().max(1e-3),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn refill(&self, entry: &mut (f64, Instant), now: Instant) {
        let elapsed = now.saturating_duration_since(entry.1).as_secs_f64();
        entry.0 = (entry.0 + elapsed * self.per_second).min(self.capacity);
        entry.1 = now;
    }

    fn wait_for_one(&self, tokens: f64) -> Duration {
        Duration::from_secs_f64(((1.0 - tokens) / self.per_second).max(0.0))
    }

    /// Takes one token, or says how long until one is available.
    fn take(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock();
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(key) {
            let (cap, rate) = (self.capacity, self.per_second);
            buckets.retain(|_, (t, at)| {
                *t + now.saturating_duration_since(*at).as_secs_f64() * rate < cap
            });
        }
        let entry = buckets
            .entry(key.to_owned())
            .or_insert((self.capacity, now));
        self.refill(entry, now);
        if entry.0 >= 1.0 {
            entry.0 -= 1.0;
            Ok(())
        } else {
            Err(self.wait_for_one(entry.0))
        }
    }

    /// When the key has no token left: how long until it has one.
    fn exhausted(&self, key: &str) -> Option<Duration> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock();
        let entry = buckets.get_mut(key)?;
        self.refill(entry, now);
        (entry.0 < 1.0).then(|| self.wait_for_one(entry.0))
    }
}
