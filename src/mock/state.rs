//! The mock's shared state: configuration, keys, devices, channels, script, log and counters.

use super::clock::Clock;
use super::environment::Environment;
use super::fault::{Fault, Latency};
use super::frames::StreamControl;
use super::keys::{KeyEntry, TokenClaims};
use super::record::{ConnectionStats, Endpoint, RecordedRequest, Stats};
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::SystemTime;
use tokio::sync::{Notify, mpsc};

/// Client-supplied `apns-id`s remembered for duplicate detection (about 100 MB at most).
pub(crate) const MAX_TRACKED_IDS: usize = 1_000_000;

/// Closed connections whose counters are kept (open ones are always kept).
const MAX_CLOSED_CONNECTIONS: usize = 1024;

/// Settings that can change while the mock runs.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) max_streams: u32,
    pub(crate) drop_to_one_after_rejection: bool,
    pub(crate) goaway_after: Option<u64>,
    pub(crate) latency: Latency,
    pub(crate) error_rate: f64,
    pub(crate) accept_unknown_tokens: bool,
    pub(crate) record_limit: usize,
    pub(crate) idle_timeout: Option<std::time::Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_streams: 1000,
            drop_to_one_after_rejection: false,
            goaway_after: None,
            latency: Latency::None,
            error_rate: 0.0,
            accept_unknown_tokens: false,
            record_limit: 100_000,
            idle_timeout: None,
        }
    }
}

/// A broadcast channel's configuration.
#[derive(Debug, Clone)]
pub(crate) struct ChannelConfig {
    pub(crate) storage_policy: u64,
    pub(crate) push_type: String,
}

/// Commands from handlers and the API to a connection task.
#[derive(Debug)]
pub(crate) enum ConnCmd {
    /// GOAWAY with `{"reason": reason}`; graceful lets in-flight streams finish.
    GoAway { reason: String, graceful: bool },
    /// Close the socket without GOAWAY.
    Drop,
    /// Make h2 write a frame so a pending SETTINGS change goes out.
    Flush,
}

/// How a connection authenticated.
#[derive(Debug, Clone)]
pub(crate) enum ConnAuth {
    Token,
    Certificate {
        bundle_id: Option<String>,
        /// The topics of Apple's topics extension (1.2.840.113635.100.6.3.6), when present.
        topics: Option<Vec<String>>,
        /// The environments its extensions list (empty: it says nothing about its environment).
        environments: Vec<Environment>,
    },
}

/// The provider token in use on a connection.
#[derive(Debug, Clone)]
pub(crate) struct TokenState {
    pub(crate) jwt: String,
    pub(crate) claims: TokenClaims,
    /// The token was not strict base64url (accepted with a warning).
    pub(crate) lenient_base64: bool,
}

/// One connection, as the handlers and the API see it.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) id: u64,
    pub(crate) auth: ConnAuth,
    pub(crate) ctl: Arc<StreamControl>,
    pub(crate) token: Mutex<Option<TokenState>>,
    /// The limit has been raised after an accepted token-auth push (and not dropped since).
    pub(crate) raised: AtomicBool,
    pub(crate) requests: AtomicU64,
    pub(crate) cmd: mpsc::UnboundedSender<ConnCmd>,
    pub(crate) stats: Mutex<ConnectionStats>,
}

/// The request log: the most recent `record_limit` requests.
#[derive(Debug, Default)]
pub(crate) struct Log {
    pub(crate) entries: VecDeque<RecordedRequest>,
    /// Requests evicted from the front so far (the absolute index of `entries[0]`).
    pub(crate) evicted: usize,
    /// Absolute index of the next entry `next_push` looks at.
    pub(crate) cursor: usize,
}

/// Everything the server tasks and the [`MockApns`](super::MockApns) handle share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) clock: Arc<dyn Clock>,
    /// The environment the mock answers as (fixed at start).
    pub(crate) environment: Environment,
    pub(crate) config: RwLock<Config>,
    pub(crate) keys: RwLock<HashMap<String, KeyEntry>>,
    /// Known device tokens (lowercase hex) → bundle id.
    pub(crate) devices: RwLock<HashMap<String, String>>,
    /// Unregistered device tokens (lowercase hex) → when.
    pub(crate) unregistered: RwLock<HashMap<String, SystemTime>>,
    /// Bundle id → channel id → config.
    pub(crate) channels: Mutex<HashMap<String, BTreeMap<String, ChannelConfig>>>,
    pub(crate) script: Mutex<VecDeque<Fault>>,
    /// Device token (lowercase hex) → its own scripted answers.
    pub(crate) device_script: Mutex<HashMap<String, VecDeque<Fault>>>,
    pub(crate) log: Mutex<Log>,
    pub(crate) log_notify: Notify,
    pub(crate) stats: Mutex<Stats>,
    pub(crate) accepted_ids: Mutex<HashMap<String, u32>>,
    pub(crate) conns: Mutex<BTreeMap<u64, Arc<Conn>>>,
    pub(crate) seq: AtomicU64,
    pub(crate) next_conn: AtomicU64,
}

impl Shared {
    pub(crate) fn new(clock: Arc<dyn Clock>, environment: Environment, config: Config) -> Self {
        Shared {
            clock,
            environment,
            config: RwLock::new(config),
            keys: RwLock::default(),
            devices: RwLock::default(),
            unregistered: RwLock::default(),
            channels: Mutex::default(),
            script: Mutex::default(),
            device_script: Mutex::default(),
            log: Mutex::default(),
            log_notify: Notify::new(),
            stats: Mutex::default(),
            accepted_ids: Mutex::default(),
            conns: Mutex::default(),
            seq: AtomicU64::new(0),
            next_conn: AtomicU64::new(1),
        }
    }

    /// Marks a connection closed, forgetting the oldest closed ones past a bound.
    pub(crate) fn connection_closed(&self, conn: &Conn) {
        conn.stats.lock().open = false;
        let mut conns = self.conns.lock();
        let closed: Vec<u64> = conns
            .iter()
            .filter(|(_, c)| !c.stats.lock().open)
            .map(|(id, _)| *id)
            .collect();
        let excess = closed.len().saturating_sub(MAX_CLOSED_CONNECTIONS);
        for id in closed.into_iter().take(excess) {
            conns.remove(&id);
        }
    }

    /// Counts and (within the record limit) logs one answered request.
    pub(crate) fn record(&self, conn: &Conn, rec: RecordedRequest) {
        {
            let mut stats = self.stats.lock();
            stats.requests += 1;
            *stats.by_status.entry(rec.status).or_default() += 1;
            if let Some(reason) = &rec.reason {
                *stats.by_reason.entry(reason.clone()).or_default() += 1;
            }
            let is_push = matches!(rec.endpoint, Endpoint::Push | Endpoint::Broadcast);
            if rec.status == 200 && is_push {
                stats.accepted += 1;
            }
        }
        {
            let mut cs = conn.stats.lock();
            cs.requests += 1;
            match rec.status {
                200..=299 => cs.accepted += 1,
                0 => {}
                _ => cs.rejected += 1,
            }
        }
        if rec.status == 200 && rec.endpoint == Endpoint::Push && rec.header("apns-id").is_some() {
            let mut ids = self.accepted_ids.lock();
            let id = rec.apns_id.to_ascii_lowercase();
            if let Some(n) = ids.get_mut(&id) {
                *n += 1;
            } else if ids.len() < MAX_TRACKED_IDS {
                ids.insert(id, 1);
            }
        }
        let limit = self.config.read().record_limit;
        let mut evicted = 0;
        {
            let mut log = self.log.lock();
            log.entries.push_back(rec);
            while log.entries.len() > limit {
                log.entries.pop_front();
                log.evicted += 1;
                evicted += 1;
            }
        }
        self.log_notify.notify_waiters();
        if evicted > 0 {
            self.stats.lock().evicted += evicted;
        }
    }
}
