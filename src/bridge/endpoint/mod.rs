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
//! `oldToken` alone removes. A JSON body is one object whose values are strings or `null`
//! (unknown keys are ignored, a repeated key is refused); anything else is `400 bad_json`.
//!
//! # Who may do what
//! - The [`Verifier`] (your code) reads the request's credentials (bearer token, session
//!   cookie) and returns the caller's subject, or refuses (401). The caller acts only for that
//!   subject: a different `subject` field is 403, and taking, replacing or removing a token
//!   registered to another subject is 403 `not_owner`, with nothing changed.
//! - Bodies are limited (4 KiB by default, 413); requests are rate-limited per subject, and
//!   failed verifications per client address (429).
//! - Errors are JSON: `{"error": "<code>", "message": "<sentence>"}`; success is
//!   `{"result": "registered" | "replaced" | "removed", "subject": ..., "token": ...}`.
//!
//! # Every refusal says when to come back
//! A 429 (rate limit) or 503 (too many connections, store unavailable) carries `Retry-After` in
//! whole seconds, rounded **up** from the limiter's real wait: a client that waits that long is
//! not refused again by the same limit.
//!
//! # Client addresses behind proxies
//! Per-address limits count the *client* address: the socket peer, or, when the peer is one of
//! the [`TrustedProxies`] you configure, the right-most untrusted hop of the one forwarding header
//! you name (`Forwarded` or `X-Forwarded-For`). A forwarding header from anyone else is ignored,
//! so a client cannot pick its own address, and one attacker behind a shared proxy or NAT
//! gateway does not lock out the others behind it. IPv6 clients are counted per /64.
//!
//! # Serving
//! [`RegistrationEndpoint::serve`] runs an HTTP/1.1 server with the limits an exposed server
//! needs: each request (headers **and** body) must arrive within
//! [`request_timeout`](RegistrationEndpointBuilder::request_timeout) of the connection being
//! ready for it (else `408`, or a closed connection if the headers never came); at most
//! [`max_connections`](RegistrationEndpointBuilder::max_connections) are served at once, and
//! the next is answered `503` with `Retry-After` at once, never queued. [`ServeHandle::shutdown`]
//! stops accepting, lets requests in flight finish within a grace period, and returns once the
//! server has let go of the registry (a redb file can be opened again).

mod limit;
mod proxy;
mod server;

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;

use crate::bridge::{Device, DeviceRegistry, Environment, Replaced};
use limit::{FailureLimiter, Limiter, retry_after_secs};
pub use proxy::{ForwardedHeader, InvalidProxy, TrustedProxies};
pub use server::{Serve, ServeHandle, ShutdownReport};

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
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use herald::bridge::endpoint::Verifier;
    ///
    /// // A closure is a verifier: here, `Authorization: Bearer user-<subject>`.
    /// let verifier = |req: &http::request::Parts| {
    ///     let auth = req.headers.get("authorization")?.to_str().ok()?;
    ///     Some(auth.strip_prefix("Bearer user-")?.to_owned())
    /// };
    /// let request = |auth: Option<&str>| {
    ///     let mut builder = http::Request::post("/devices");
    ///     if let Some(auth) = auth {
    ///         builder = builder.header("authorization", auth);
    ///     }
    ///     builder.body(()).unwrap().into_parts().0
    /// };
    /// assert_eq!(verifier.verify(&request(Some("Bearer user-alice"))).await.as_deref(), Some("alice"));
    /// assert_eq!(verifier.verify(&request(None)).await, None); // refused: 401
    /// # }
    /// ```
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
            .field("proxies", &self.inner.proxies)
            .field("request_timeout", &self.inner.request_timeout)
            .field("max_connections", &self.inner.max_connections)
            .finish_non_exhaustive()
    }
}

struct Inner<V> {
    registry: DeviceRegistry,
    verifier: V,
    topics: Vec<String>,
    environment: Environment,
    body_limit: usize,
    per_subject: Limiter<String>,
    failures: FailureLimiter<IpAddr>,
    proxies: TrustedProxies,
    request_timeout: Duration,
    max_connections: usize,
    overload_retry_after: Duration,
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
///     .request_timeout(Duration::from_secs(5))
///     .max_connections(512)
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
    proxies: TrustedProxies,
    request_timeout: Duration,
    max_connections: usize,
    overload_retry_after: Duration,
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

    /// At most `failures` refused verifications per client address per `per` before that
    /// address gets 429 without being verified, until the limit allows one more (default 20
    /// per minute). The address is the one [`trusted_proxies`](Self::trusted_proxies) yields.
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

    /// The reverse proxies whose forwarding header names the client (default: none, the client
    /// is the socket peer). See [`TrustedProxies`].
    ///
    /// ```
    /// # use herald::bridge::{DeviceRegistry, endpoint::{ForwardedHeader, RegistrationEndpoint, TrustedProxies}};
    /// let b = RegistrationEndpoint::builder(DeviceRegistry::in_memory(), |_: &http::request::Parts| None)
    ///     .trusted_proxies(TrustedProxies::new(ForwardedHeader::XForwardedFor).trust("10.0.0.0/8")?);
    /// # drop(b);
    /// # Ok::<(), herald::bridge::endpoint::InvalidProxy>(())
    /// ```
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.proxies = proxies;
        self
    }

    /// How long a client has to send one whole request, headers and body, from when its
    /// connection is accepted or its previous response was sent (default 10 s). A client that
    /// has not sent its headers by then is disconnected; one that is still sending its body
    /// gets `408 request_timeout` and is disconnected. Under [`handle`](RegistrationEndpoint::handle),
    /// the body must arrive within this time of the call.
    ///
    /// ```
    /// # use herald::bridge::{DeviceRegistry, endpoint::RegistrationEndpoint};
    /// # use std::time::Duration;
    /// let b = RegistrationEndpoint::builder(DeviceRegistry::in_memory(), |_: &http::request::Parts| None)
    ///     .request_timeout(Duration::from_secs(3));
    /// # drop(b);
    /// ```
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The most connections [`serve`](RegistrationEndpoint::serve) keeps open at once (default
    /// 1024). One more is answered `503 overloaded` with `Retry-After` at once and closed.
    ///
    /// ```
    /// # use herald::bridge::{DeviceRegistry, endpoint::RegistrationEndpoint};
    /// let b = RegistrationEndpoint::builder(DeviceRegistry::in_memory(), |_: &http::request::Parts| None)
    ///     .max_connections(100);
    /// # drop(b);
    /// ```
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections.max(1);
        self
    }

    /// The `Retry-After` of a `503 overloaded` answer (default 1 s; rounded up to seconds).
    ///
    /// ```
    /// # use herald::bridge::{DeviceRegistry, endpoint::RegistrationEndpoint};
    /// # use std::time::Duration;
    /// let b = RegistrationEndpoint::builder(DeviceRegistry::in_memory(), |_: &http::request::Parts| None)
    ///     .overload_retry_after(Duration::from_secs(5));
    /// # drop(b);
    /// ```
    pub fn overload_retry_after(mut self, wait: Duration) -> Self {
        self.overload_retry_after = wait;
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
                failures: FailureLimiter::new(self.failure_rate.0, self.failure_rate.1),
                proxies: self.proxies,
                request_timeout: self.request_timeout,
                max_connections: self.max_connections,
                overload_retry_after: self.overload_retry_after,
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

/// A JSON body's [`Fields`], read from a JSON object only. serde's derive would also read a
/// struct from an array, as positional fields (`["alice", null, "<token>"]`): that is not the
/// documented request, so it is refused like any other body that is not an object. Duplicate
/// keys are refused as before (the derive's own check, on the object).
struct JsonObject(Fields);

impl<'de> serde::Deserialize<'de> for JsonObject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Object;
        impl<'de> serde::de::Visitor<'de> for Object {
            type Value = Fields;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Fields, A::Error> {
                serde::Deserialize::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer.deserialize_map(Object).map(JsonObject)
    }
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
            proxies: TrustedProxies::none(),
            request_timeout: Duration::from_secs(10),
            max_connections: 1024,
            overload_retry_after: Duration::from_secs(1),
        }
    }

    /// Handles one request that arrived from `peer` (the socket peer: the client, or a trusted
    /// proxy whose forwarding header names the client; see [`TrustedProxies`]). Never fails:
    /// refusals are JSON error responses. The body must arrive within the
    /// [`request_timeout`](RegistrationEndpointBuilder::request_timeout).
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
        let deadline = tokio::time::Instant::now() + self.inner.request_timeout;
        self.respond(request, peer, deadline).await
    }

    /// [`handle`](Self::handle) with the time by which the body must have arrived.
    async fn respond<B>(
        &self,
        request: Request<B>,
        peer: IpAddr,
        deadline: tokio::time::Instant,
    ) -> Response<Full<Bytes>>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        match self.try_handle(request, peer, deadline).await {
            Ok((result, subject, token)) => json_response(
                StatusCode::OK,
                serde_json::json!({ "result": result, "subject": subject, "token": token }),
                None,
            ),
            Err(r) => {
                let close = r.status == StatusCode::REQUEST_TIMEOUT;
                let mut res = json_response(
                    r.status,
                    serde_json::json!({ "error": r.code, "message": r.message }),
                    r.retry_after,
                );
                if close {
                    res.headers_mut().insert(
                        header::CONNECTION,
                        header::HeaderValue::from_static("close"),
                    );
                }
                res
            }
        }
    }

    async fn try_handle<B>(
        &self,
        request: Request<B>,
        peer: IpAddr,
        deadline: tokio::time::Instant,
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
        let client = inner.proxies.client_address(peer, &parts.headers);
        let client_key = proxy::limit_key(client);
        if let Err(wait) = inner.failures.blocked(&client_key) {
            return Err(too_many(
                wait,
                "too many refused requests from this address",
            ));
        }
        let Some(subject) = inner.verifier.verify(&parts).await else {
            // The failure that spends the allowance is still answered 401 (it was verified);
            // the address is refused before verification from the next request on.
            if let Err(wait) = inner.failures.failed(&client_key) {
                tracing::warn!(%client, ?wait, "registration endpoint: too many failed verifications, address refused for a while");
            }
            return Err(refuse(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the request's credentials were not accepted",
            ));
        };
        if let Err(wait) = inner.per_subject.check(&subject) {
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
        let read = Limited::new(body, inner.body_limit).collect();
        let Ok(read) = tokio::time::timeout_at(deadline, read).await else {
            return Err(refuse(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the request did not arrive in time",
            ));
        };
        let bytes = match read {
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
            "application/json" => {
                serde_json::from_slice::<JsonObject>(&bytes)
                    .map_err(|_| {
                        refuse(
                            StatusCode::BAD_REQUEST,
                            "bad_json",
                            "the body is not a JSON object with string fields",
                        )
                    })?
                    .0
            }
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
                Err(Refusal {
                    retry_after: Some(STORE_RETRY_AFTER),
                    ..refuse(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "store_unavailable",
                        "the device store failed; try again later",
                    )
                })
            }
        }
    }
}

/// `Retry-After` when the device store failed: a guess, since nothing tells when it recovers.
const STORE_RETRY_AFTER: Duration = Duration::from_secs(5);

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
        headers.insert(
            header::RETRY_AFTER,
            header::HeaderValue::from(retry_after_secs(wait)),
        );
    }
    res
}

/// `application/x-www-form-urlencoded` (WHATWG rules: `+` is a space, `%XX` escapes, an invalid
/// escape stays as written, invalid UTF-8 becomes U+FFFD, which no valid field contains).
fn parse_form(bytes: &[u8]) -> Result<Fields, Refusal> {
    let mut fields = Fields::default();
    for (key, value) in form_urlencoded::parse(bytes) {
        let slot = match key.as_ref() {
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
        *slot = Some(value.into_owned());
    }
    Ok(fields)
}
