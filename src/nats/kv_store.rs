//! One device registry for all processes: a [`RegistryStore`] on NATS key-value (JetStream KV).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, kv, stream};
use bytes::Bytes;
use futures_core::Stream as _;
use tokio::sync::{mpsc, oneshot};

use super::push::queue_error;
use super::urls::{Servers, UrlAuth};
use super::{Error, ErrorKind};
use crate::bridge::{
    Cas, Claim, Expect, RegistryStore, Revision, StoreError, SubjectRecord, Versioned,
};

/// Default bucket of [`NatsKvStore`]: `herald_registry`.
///
/// ```
/// use herald::nats::{DEFAULT_BUCKET, NatsKvStore};
///
/// assert_eq!(DEFAULT_BUCKET, "herald_registry");
///
/// /// Every process opens the same bucket, and so shares one registry.
/// async fn shared_store() -> Result<NatsKvStore, herald::nats::Error> {
///     NatsKvStore::connect("nats://127.0.0.1:4222", DEFAULT_BUCKET).await
/// }
/// ```
pub const DEFAULT_BUCKET: &str = "herald_registry";

/// A [`RegistryStore`] on a NATS key-value bucket, shared by every process that opens the same
/// bucket: give each process's [`DeviceRegistry`](crate::bridge::DeviceRegistry) one, and
/// they all see one registry, with the embedded registry's rules (replace old → new in one
/// step, the 410 timestamp rule, a subject never takes another subject's token, concurrent
/// registrations never lost).
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), herald::nats::Error> {
/// use herald::bridge::DeviceRegistry;
/// use herald::nats::NatsKvStore;
/// let store = NatsKvStore::connect("nats://127.0.0.1:4222", "herald_registry").await?;
/// let registry = DeviceRegistry::with_store(store);
/// # drop(registry); Ok(()) }
/// ```
///
/// # Layout
///
/// One bucket (stream `KV_<bucket>` on `$KV.<bucket>.>`, history 1, file storage), two key
/// spaces, values in the registry's own [wire format](RegistryStore#wire-format):
///
/// | key | value |
/// |---|---|
/// | `s.<hex of the subject's UTF-8>` | the subject's [`SubjectRecord`]: replace, delete on 410, quarantine and release are each one compare-and-set of this key |
/// | `t.<hex of the token>` | the token's [`Claim`] (the token → subject index) |
///
/// A [`Revision`] is the stream sequence of the key's last write. Compare-and-set is the
/// server's `Nats-Expected-Last-Subject-Sequence` check, so it is atomic across processes;
/// [`Expect::Absent`] reads the key's last operation and writes expecting it (0 when never
/// written, a delete marker's sequence after a delete), so it fails if anyone wrote in
/// between. Deletes are delete markers (`KV-Operation: DEL`) written the same way.
///
/// The bucket's stream is created directly (not with `create_key_value`, whose reply parsing
/// fails against nats-server 2.9) and bound with `get_key_value`; it relies on no server
/// feature newer than 2.9.
///
/// # Blocking
///
/// [`RegistryStore`] is synchronous: each call blocks the calling thread for one server round
/// trip (up to [`NatsKvStoreBuilder::timeout`], then it fails with a [`StoreError`], and a
/// write that timed out may or may not have happened, as the trait allows). The requests run
/// on the store's own thread and connection, so calling from inside a tokio runtime, even a
/// current-thread one, cannot deadlock.
///
/// # Durability
///
/// A write returns once the server stored it (file storage). nats-server syncs its files to
/// disk periodically (`sync_interval`, default 2 min) unless configured `sync: always`: a
/// crash of the *server machine* can lose the last writes, a crash of a herald process cannot.
pub struct NatsKvStore {
    jobs: mpsc::UnboundedSender<KvJob>,
    bucket: String,
    timeout: Duration,
}

type KvFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
type KvJob = Box<dyn FnOnce(kv::Store, jetstream::Context) -> KvFuture + Send>;

impl fmt::Debug for NatsKvStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsKvStore")
            .field("bucket", &self.bucket)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Configures a [`NatsKvStore`].
///
/// ```
/// use herald::nats::NatsKvStore;
/// use std::time::Duration;
/// let b = NatsKvStore::builder("eu_registry").timeout(Duration::from_secs(2));
/// # drop(b);
/// ```
#[must_use = "call .connect(url) to open the store"]
pub struct NatsKvStoreBuilder {
    bucket: String,
    timeout: Duration,
    options: Option<async_nats::ConnectOptions>,
}

impl fmt::Debug for NatsKvStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsKvStoreBuilder")
            .field("bucket", &self.bucket)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl NatsKvStoreBuilder {
    /// How long one store call may take (default 5 s), and how long
    /// [`connect`](Self::connect) waits for the server (see [`options`](Self::options)).
    ///
    /// ```
    /// # use herald::nats::NatsKvStore;
    /// let b = NatsKvStore::builder("registry").timeout(std::time::Duration::from_secs(1));
    /// # drop(b);
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The client's connection options (credentials, TLS, reconnects): the store has its own
    /// connection. Default: `async_nats::ConnectOptions::new()` retrying the first connect,
    /// so [`connect`](Self::connect) rides out a server that is not up yet (or restarting)
    /// for up to the store's [`timeout`](Self::timeout). Options without
    /// `retry_on_initial_connect` fail at once when the server cannot be reached.
    ///
    /// ```
    /// # use herald::nats::NatsKvStore;
    /// let b = NatsKvStore::builder("registry")
    ///     .options(async_nats::ConnectOptions::with_user_and_password("herald".into(), "s3cret".into()));
    /// # drop(b);
    /// ```
    pub fn options(mut self, options: async_nats::ConnectOptions) -> Self {
        self.options = Some(options);
        self
    }

    /// Connects, creates the bucket when missing, and binds to it. Fails with
    /// [`ErrorKind::Connect`] when there is no connection within the store's
    /// [`timeout`](Self::timeout) (at once with options that do not retry the first connect),
    /// and with [`ErrorKind::JetStream`] when the server has no JetStream or refuses the bucket.
    /// The URL may be a comma-separated list, and may hold credentials
    /// (`nats://user:password@host`, `nats://token@host`, as for
    /// [`NatsBridgeBuilder::connect`](super::NatsBridgeBuilder::connect)), used on top of
    /// the [`options`](Self::options); errors never show them.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// # let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    /// # let err = run(&format!("nats://127.0.0.1:{port}")).await.unwrap_err(); // no server in doctests
    /// # assert!(err.is_connect(), "{err:?}"); }
    /// # async fn run(closed: &str) -> Result<(), herald::nats::Error> {
    /// # use herald::nats::NatsKvStore;
    /// let url = "nats://127.0.0.1:4222";
    /// # let url = closed; // no server in doctests: a closed local port...
    /// let store = NatsKvStore::builder("registry")
    /// #   .timeout(std::time::Duration::from_millis(50)) // ...where the store gives up soon
    ///     .connect(url)
    ///     .await?;
    /// # drop(store); Ok(()) }
    /// ```
    pub async fn connect(self, url: &str) -> Result<NatsKvStore, Error> {
        let bucket = self.bucket;
        if bucket.is_empty()
            || !bucket
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(Error::new(
                ErrorKind::InvalidName,
                format!("bucket name {bucket:?} must be letters, digits, `_` or `-`"),
            ));
        }
        let servers = Servers::parse(url)?;
        let mut options = self
            .options
            .unwrap_or_else(|| async_nats::ConnectOptions::new().retry_on_initial_connect());
        match servers.auth {
            Some(UrlAuth::UserPassword(user, password)) => {
                options = options.user_and_password(user, password);
            }
            Some(UrlAuth::Token(token)) => options = options.token(token),
            None => {}
        }
        let servers = servers.urls;
        let shown = super::redact_url(url);
        let timeout = self.timeout;
        let (ready_tx, ready_rx) = oneshot::channel::<Result<(), Error>>();
        let (jobs, mut job_rx) = mpsc::unbounded_channel::<KvJob>();
        let thread_bucket = bucket.clone();
        std::thread::Builder::new()
            .name(format!("herald-kv-{bucket}"))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(Error::with_source(
                            ErrorKind::Config,
                            "could not start the store's runtime",
                            e,
                        )));
                        return;
                    }
                };
                rt.block_on(async move {
                    let opened = open(options, servers, &shown, &thread_bucket, timeout).await;
                    let (store, js) = match opened {
                        Ok(x) => x,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    while let Some(job) = job_rx.recv().await {
                        tokio::spawn(job(store.clone(), js.clone()));
                    }
                });
            })
            .map_err(|e| Error::with_source(ErrorKind::Config, "could not start a thread", e))?;
        match ready_rx.await {
            Ok(Ok(())) => Ok(NatsKvStore {
                jobs,
                bucket,
                timeout: self.timeout,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::new(
                ErrorKind::Connect,
                "the store's thread ended before connecting",
            )),
        }
    }
}

/// Connects and binds to the bucket, creating its stream when missing. With a first connect
/// that is retried, the client returns before it is connected: this waits (up to `timeout`)
/// until it is, so that a server that is not up yet is waited for, while one that answers
/// with an error (no JetStream) fails at once.
async fn open(
    options: async_nats::ConnectOptions,
    servers: Vec<String>,
    shown: &str,
    bucket: &str,
    timeout: Duration,
) -> Result<(kv::Store, jetstream::Context), Error> {
    let deadline = tokio::time::Instant::now() + timeout;
    let no_connection = || {
        Error::new(
            ErrorKind::Connect,
            format!("could not connect to {shown}: no connection within {timeout:?}"),
        )
    };
    let client = match tokio::time::timeout_at(deadline, options.connect(servers)).await {
        Ok(Ok(client)) => client,
        Ok(Err(e)) => return Err(super::bridge::connect_error(e, shown)),
        Err(_) => return Err(no_connection()),
    };
    // A flush is answered once the connection is up (a retried first connect included).
    match tokio::time::timeout_at(deadline, client.flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            return Err(Error::with_source(
                ErrorKind::Connect,
                format!("could not connect to {shown}"),
                e,
            ));
        }
        Err(_) => return Err(no_connection()),
    }
    let js = jetstream::new(client);
    let name = format!("KV_{bucket}");
    if js.get_stream(&name).await.is_err() {
        let created = js
            .create_stream(stream::Config {
                name: name.clone(),
                subjects: vec![format!("$KV.{bucket}.>")],
                max_messages_per_subject: 1,
                discard: stream::DiscardPolicy::New,
                allow_rollup: true,
                deny_delete: true,
                allow_direct: true,
                storage: stream::StorageType::File,
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await;
        // Another process may have created it meanwhile: binding below tells.
        if let Err(e) = created {
            tracing::debug!(error = %e, "kv store: create the bucket's stream");
        }
    }
    let store = js
        .get_key_value(bucket)
        .await
        .map_err(|e| queue_error("bind to the key-value bucket", e))?;
    Ok((store, js))
}

fn hex(s: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(s.len() * 2);
    for b in s.bytes() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn unhex(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

fn subject_key(subject: &str) -> String {
    format!("s.{}", hex(subject))
}

fn token_key(token: &str) -> String {
    format!("t.{}", hex(token))
}

fn store_error(what: &str, e: impl fmt::Display) -> StoreError {
    StoreError::new(format!("nats kv: {what}: {e}"))
}

impl NatsKvStore {
    /// Connects to `url` and opens (creating it when missing) `bucket`, with the default
    /// options.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), herald::nats::Error> {
    /// let store = herald::nats::NatsKvStore::connect("nats://127.0.0.1:4222", "herald_registry").await?;
    /// # drop(store); Ok(()) }
    /// ```
    pub async fn connect(url: &str, bucket: &str) -> Result<NatsKvStore, Error> {
        NatsKvStore::builder(bucket).connect(url).await
    }

    /// Starts configuring a store on `bucket`.
    ///
    /// ```
    /// let b = herald::nats::NatsKvStore::builder("herald_registry");
    /// # drop(b);
    /// ```
    pub fn builder(bucket: impl Into<String>) -> NatsKvStoreBuilder {
        NatsKvStoreBuilder {
            bucket: bucket.into(),
            timeout: Duration::from_secs(5),
            options: None,
        }
    }

    /// The bucket's name.
    ///
    /// ```no_run
    /// # fn f(s: herald::nats::NatsKvStore) { assert_eq!(s.bucket(), "herald_registry"); }
    /// ```
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Runs `f` on the store's thread and waits for its answer.
    fn call<T, F, Fut>(&self, what: &str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(kv::Store, jetstream::Context) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let (tx, rx) = std_mpsc::sync_channel(1);
        let job: KvJob = Box::new(move |store, js| {
            Box::pin(async move {
                let _ = tx.send(f(store, js).await);
            })
        });
        self.jobs
            .send(job)
            .map_err(|_| StoreError::new("nats kv: the store's thread has stopped"))?;
        // The job gives up at `timeout` itself; the margin covers the hop between threads.
        match rx.recv_timeout(self.timeout + Duration::from_secs(1)) {
            Ok(r) => r,
            Err(std_mpsc::RecvTimeoutError::Timeout) => Err(StoreError::new(format!(
                "nats kv: {what} timed out after {:?}",
                self.timeout
            ))),
            Err(std_mpsc::RecvTimeoutError::Disconnected) => Err(StoreError::new(format!(
                "nats kv: {what}: the store's thread has stopped"
            ))),
        }
    }

    fn read(&self, key: String) -> Result<Option<(Bytes, u64)>, StoreError> {
        let timeout = self.timeout;
        self.call("read", move |store, _| {
            retrying(timeout, move || {
                let store = store.clone();
                let key = key.clone();
                async move {
                    match store.entry(key).await {
                        Ok(Some(e)) if e.operation == kv::Operation::Put => {
                            Ok(Some((e.value, e.revision)))
                        }
                        Ok(_) => Ok(None),
                        Err(e) => Err(store_error("read", e)),
                    }
                }
            })
        })
    }

    fn write(
        &self,
        key: String,
        expect: Expect,
        value: Option<Vec<u8>>,
    ) -> Result<Cas, StoreError> {
        let bucket = self.bucket.clone();
        let timeout = self.timeout;
        self.call("write", move |store, js| {
            retrying(timeout, move || {
                write_once(
                    store.clone(),
                    js.clone(),
                    bucket.clone(),
                    key.clone(),
                    expect,
                    value.clone(),
                )
            })
        })
    }
}

/// Runs `op` until it succeeds or `timeout` has passed, backing off between attempts: a store
/// call rides out a reconnect or a server restart. Retrying a write whose answer was lost is
/// safe: it is a compare-and-set on the revision read before, so if the first attempt landed
/// the retry reports a conflict, and the registry re-reads and goes on as after any conflict.
async fn retrying<T, F, Fut>(timeout: Duration, mut op: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut delay = Duration::from_millis(20);
    loop {
        let attempt = tokio::time::timeout_at(deadline, op()).await;
        match attempt {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) if tokio::time::Instant::now() + delay < deadline => {
                tracing::debug!(error = %e, "kv store: retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(500));
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(StoreError::new(format!(
                    "nats kv: timed out after {timeout:?}"
                )));
            }
        }
    }
}

async fn write_once(
    store: kv::Store,
    js: jetstream::Context,
    bucket: String,
    key: String,
    expect: Expect,
    value: Option<Vec<u8>>,
) -> Result<Cas, StoreError> {
    let expected = match expect {
        Expect::At(r) => r.get(),
        Expect::Absent => match store.entry(key.clone()).await {
            Ok(Some(e)) if e.operation == kv::Operation::Put => return Ok(Cas::Conflict),
            Ok(Some(e)) => e.revision,
            Ok(None) => 0,
            Err(e) => return Err(store_error("read before create", e)),
        },
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        "Nats-Expected-Last-Subject-Sequence",
        expected.to_string().as_str(),
    );
    let payload = match value {
        Some(v) => Bytes::from(v),
        None => {
            headers.insert("KV-Operation", "DEL");
            Bytes::new()
        }
    };
    let subject = format!("$KV.{bucket}.{key}");
    let ack = match js.publish_with_headers(subject, headers, payload).await {
        Ok(ack) => ack.await,
        Err(e) => Err(e),
    };
    match ack {
        Ok(ack) => Ok(Cas::Written(Revision::new(ack.sequence))),
        Err(e) if e.kind() == jetstream::context::PublishErrorKind::WrongLastSequence => {
            Ok(Cas::Conflict)
        }
        Err(e) => Err(store_error("write", e)),
    }
}

impl RegistryStore for NatsKvStore {
    fn read_subject(&self, subject: &str) -> Result<Option<Versioned<SubjectRecord>>, StoreError> {
        match self.read(subject_key(subject))? {
            None => Ok(None),
            Some((bytes, rev)) => Ok(Some(Versioned {
                value: SubjectRecord::decode(subject, &bytes)?,
                revision: Revision::new(rev),
            })),
        }
    }

    fn write_subject(
        &self,
        subject: &str,
        expect: Expect,
        record: Option<&SubjectRecord>,
    ) -> Result<Cas, StoreError> {
        self.write(
            subject_key(subject),
            expect,
            record.map(SubjectRecord::encode),
        )
    }

    fn read_claim(&self, token: &str) -> Result<Option<Versioned<Claim>>, StoreError> {
        match self.read(token_key(token))? {
            None => Ok(None),
            Some((bytes, rev)) => Ok(Some(Versioned {
                value: Claim::decode(&bytes)?,
                revision: Revision::new(rev),
            })),
        }
    }

    fn write_claim(
        &self,
        token: &str,
        expect: Expect,
        claim: Option<&Claim>,
    ) -> Result<Cas, StoreError> {
        self.write(token_key(token), expect, claim.map(Claim::encode))
    }

    fn subjects(&self) -> Result<Vec<String>, StoreError> {
        self.call("list", move |store, _| async move {
            let mut keys = store.keys().await.map_err(|e| store_error("list", e))?;
            let mut out = Vec::new();
            while let Some(key) = std::future::poll_fn(|cx| Pin::new(&mut keys).poll_next(cx)).await
            {
                let key = key.map_err(|e| store_error("list", e))?;
                if let Some(hexed) = key.strip_prefix("s.") {
                    match unhex(hexed) {
                        Some(s) => out.push(s),
                        None => return Err(store_error("list", format!("bad key {key:?}"))),
                    }
                }
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_valid_kv_keys_and_decode() {
        for s in ["alice", "user with spaces/ünïcode", "a.b*c>"] {
            let k = subject_key(s);
            assert!(
                k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_'),
                "{k}"
            );
            assert_eq!(unhex(&k[2..]).as_deref(), Some(s));
        }
        assert_eq!(token_key("ab01"), "t.61623031");
        assert!(unhex("abc").is_none());
        assert!(unhex("zz").is_none());
    }
}
