//! [`RedisStore`] (feature `redis`): counters in Redis, shared by every
//! server that uses it. Everything Redis is here: the script, the keys
//! and arguments, the reply.

use std::fmt;
use std::future::ready;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, ServerErrorKind};

use crate::error::{StoreError, ThrottleError};
use crate::gcra::Cell;
use crate::key::KeyHasher;
use crate::memory::{DEFAULT_CAPACITY, MemoryStore};
use crate::store::{Batch, Kind, Reply, SharedStore, Store, StoreFuture};

/// Default time one request waits for Redis before the fallback applies.
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);
/// Default prefix of the counters' keys.
const DEFAULT_PREFIX: &str = "auth-throttle";
/// Default time Redis is not asked after it failed (the fallback applies
/// at once meanwhile).
const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);

/// Counters in Redis: one limit across many servers.
///
/// - One multiplexed connection (`redis`'s `ConnectionManager`, which
///   reconnects after Redis restarts), opened by the first request on the
///   runtime requests run on, so a server starts while Redis is down.
/// - One round trip per request for all of its rules: `EVALSHA` of one Lua
///   script (loaded again on `NOSCRIPT`, after a Redis restart), which runs
///   the same arithmetic as the in-process store with Redis's own `TIME`
///   as the clock (servers with skewed clocks agree), all or nothing.
/// - Keys `<prefix>:{<caller>}:<rule>`: the caller is a keyed hash (the
///   secret, shared by the servers, never leaves them), so no session id or
///   token reaches Redis; the hash tag groups a caller's counters.
///   Counters expire by themselves.
/// - One Redis server (or a primary behind a failover proxy): not a Redis
///   Cluster client (a request counted by identity and by address sends
///   two hash tags in one call, which a cluster refuses).
/// - No answer within the timeout (default 50 ms): the throttle's fallback
///   applies (in-process counting by default), with a warning in the log;
///   never a 500. For the backoff after a failure (default 1 s) Redis is
///   not asked: the fallback applies at once, so an outage does not add
///   the timeout to every request.
///
/// ```no_run
/// use auth_throttle::{Quota, RedisStore, Rule, Throttle};
/// use std::time::Duration;
///
/// let secret = std::env::var("THROTTLE_SECRET")?; // the same on every server
/// let redis = RedisStore::builder("redis://127.0.0.1:6379", secret.as_bytes())
///     .timeout(Duration::from_millis(30))
///     .build()?;
/// let throttle = Throttle::builder(redis)
///     .rule(Rule::new("api", Quota::new(100, Duration::from_secs(60))?)?)
///     .build()?;
/// # drop(throttle);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    config: ConnectionManagerConfig,
    /// Opened by the first request (it needs the runtime the requests run
    /// on), again after a failed first attempt.
    connection: tokio::sync::OnceCell<ConnectionManager>,
    script: redis::Script,
    prefix: String,
    timeout: Duration,
    keys: KeyHasher,
    fallback: MemoryStore,
    backoff: Duration,
    /// When this store was built: the clock of `asleep_until`.
    started: Instant,
    /// Milliseconds after `started` before which Redis is not asked.
    asleep_until: AtomicU64,
}

impl RedisStore {
    /// The Lua script the store runs: GCRA over every counter of one
    /// request, all or nothing (the arithmetic of [`Counter::check`](crate::Counter::check),
    /// in integers Lua's numbers hold exactly). `KEYS` are the counters,
    /// `ARGV[1]` `""` for the server's `TIME` (or a time in microseconds),
    /// then each counter's interval and tolerance; it answers `{all allowed,
    /// now, then per counter: allowed, remaining, reset, retry}`.
    pub const SCRIPT: &'static str = include_str!("redis.lua");
    /// Default time one request waits for Redis before the fallback
    /// applies.
    pub const DEFAULT_TIMEOUT: Duration = DEFAULT_TIMEOUT;
    /// Default prefix of the counters' keys.
    pub const DEFAULT_PREFIX: &'static str = DEFAULT_PREFIX;
    /// Default time Redis is not asked after it failed (the fallback
    /// applies at once meanwhile).
    pub const DEFAULT_BACKOFF: Duration = DEFAULT_BACKOFF;

    /// A store at `url` (`redis://host:port[/db]`, or `rediss://` for TLS,
    /// with `user:password@` when Redis asks for them), its keys hashed under
    /// `key_secret` (at least 16 bytes; the same on every server sharing the
    /// limits).
    pub fn builder(url: &str, key_secret: &[u8]) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.to_owned(),
            keys: KeyHasher::from_secret(key_secret),
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            fallback_capacity: DEFAULT_CAPACITY,
            backoff: DEFAULT_BACKOFF,
            tls_roots: None,
        }
    }

    /// The in-process store the fallback counts in.
    pub fn fallback_store(&self) -> &MemoryStore {
        &self.inner.fallback
    }

    /// Milliseconds since the store was built.
    fn clock(&self) -> u64 {
        u64::try_from(self.inner.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Runs one request's script under the timeout; a failure starts the
    /// backoff.
    async fn run(&self, call: Call) -> Result<Reply, StoreError> {
        let counters = call.keys.len();
        let reply = self
            .ask(&call)
            .await
            .and_then(|reply| parse(&reply, counters));
        if reply.is_err() {
            let backoff = u64::try_from(self.inner.backoff.as_millis()).unwrap_or(u64::MAX);
            let until = self.clock().saturating_add(backoff);
            self.inner.asleep_until.fetch_max(until, Ordering::Relaxed);
        }
        reply
    }

    /// One `EVALSHA` under the timeout; an `EVAL` of the whole script when
    /// Redis does not have it (`NOSCRIPT`: a restart, a `SCRIPT FLUSH`),
    /// which also loads it for the next request.
    async fn ask(&self, call: &Call) -> Result<Vec<i64>, StoreError> {
        let round_trip = async {
            let mut connection = self
                .inner
                .connection
                .get_or_try_init(|| {
                    self.inner
                        .client
                        .get_connection_manager_with_config(self.inner.config.clone())
                })
                .await?
                .clone();
            let hash = self.inner.script.get_hash();
            match call
                .command("EVALSHA", hash)
                .query_async(&mut connection)
                .await
            {
                Err(error) if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    call.command("EVAL", Self::SCRIPT)
                        .query_async(&mut connection)
                        .await
                }
                answer => answer,
            }
        };
        match tokio::time::timeout(self.inner.timeout, round_trip).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(error)) if error.is_timeout() => Err(StoreError::Timeout),
            Ok(Err(error)) => Err(StoreError::Unavailable(error.category().to_owned())),
            Err(_) => Err(StoreError::Timeout),
        }
    }
}

/// One request's script call: `KEYS` `<prefix>:{<caller>}:<rule>` (the
/// hash tag groups one caller's counters), and
/// each counter's emission interval and tolerance in microseconds.
struct Call {
    keys: Vec<String>,
    rates: Vec<u64>,
}

impl Call {
    fn new(prefix: &str, batch: &Batch) -> Self {
        let counters = batch.counters();
        Call {
            keys: counters
                .iter()
                .map(|c| format!("{prefix}:{{{}}}:{}", c.caller(), c.rule()))
                .collect(),
            rates: counters
                .iter()
                .flat_map(|c| [c.interval(), c.tolerance()])
                .collect(),
        }
    }

    /// `EVALSHA <hash>` or `EVAL <script>`, then the keys, `ARGV[1]` `""`
    /// (the server's clock) and the rates.
    fn command(&self, verb: &str, script: &str) -> redis::Cmd {
        let mut command = redis::cmd(verb);
        command
            .arg(script)
            .arg(self.keys.len())
            .arg(&self.keys)
            .arg("")
            .arg(&self.rates);
        command
    }
}

/// The script's answer: `{all_allowed, now, then per counter: allowed,
/// remaining, reset, retry}`.
fn parse(reply: &[i64], counters: usize) -> Result<Reply, StoreError> {
    let unsigned = |v: i64| u64::try_from(v).map_err(|_| StoreError::Unexpected);
    let flag = |v: i64| match v {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(StoreError::Unexpected),
    };
    if reply.len() != 2 + 4 * counters {
        return Err(StoreError::Unexpected);
    }
    let all_allowed = flag(reply[0])?;
    let now = unsigned(reply[1])?;
    let cells = reply[2..]
        .chunks_exact(4)
        .map(|c| {
            Ok(Cell::new(
                flag(c[0])?,
                unsigned(c[1])?,
                unsigned(c[2])?,
                unsigned(c[3])?,
            ))
        })
        .collect::<Result<Vec<Cell>, StoreError>>()?;
    // The script's summary must agree with its cells: anything else is not
    // our script's answer.
    if all_allowed != cells.iter().all(Cell::allowed) {
        return Err(StoreError::Unexpected);
    }
    Ok(Reply::new(now, cells))
}

impl SharedStore for RedisStore {
    fn apply(&self, batch: &Batch) -> StoreFuture {
        // Not asked during the backoff: the fallback at once, without
        // even making the request's keys.
        if self.clock() < self.inner.asleep_until.load(Ordering::Relaxed) {
            return Box::pin(ready(Err(StoreError::Backoff)));
        }
        // The client and its timer live on tokio: outside a runtime (a
        // blocking driver on a plain thread) they would panic. Not Redis's
        // failure: no backoff for the requests that do run on one.
        if tokio::runtime::Handle::try_current().is_err() {
            return Box::pin(ready(Err(StoreError::Unavailable(
                "no tokio runtime: enter one around the gate's blocking driver".to_owned(),
            ))));
        }
        let call = Call::new(&self.inner.prefix, batch);
        let store = self.clone();
        Box::pin(async move { store.run(call).await })
    }
}

/// A Redis store's counters, its callers' keys hashed under its secret,
/// its fallback counting in its in-process store.
impl From<RedisStore> for Store {
    fn from(store: RedisStore) -> Self {
        let keys = store.inner.keys.clone();
        let fallback = store.inner.fallback.clone();
        Store(Kind::Shared {
            store: Arc::new(store),
            keys,
            fallback,
        })
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.inner.prefix)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

/// Builds a [`RedisStore`]; see [`RedisStore::builder`].
#[must_use]
pub struct RedisStoreBuilder {
    url: String,
    keys: Result<KeyHasher, ThrottleError>,
    prefix: String,
    timeout: Duration,
    fallback_capacity: usize,
    backoff: Duration,
    tls_roots: Option<Vec<u8>>,
}

impl RedisStoreBuilder {
    /// Trusts these PEM certificates (a private CA) as the roots of a
    /// `rediss://` server's certificate, instead of the system's roots.
    ///
    /// TLS needs a process-wide rustls crypto provider: `build` installs
    /// rustls' `ring` provider when the process has none yet (install your
    /// own before, if you want another).
    pub fn tls_root_certificates(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_roots = Some(pem.into());
        self
    }

    /// The keys' prefix (default `auth-throttle`).
    pub fn prefix(mut self, prefix: &str) -> Self {
        prefix.clone_into(&mut self.prefix);
        self
    }

    /// How long a request waits for Redis, connecting included (default
    /// 50 ms); then the throttle's fallback applies.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long Redis is not asked after a failure (default 1 s): the
    /// fallback applies at once meanwhile, then the next request tries
    /// again. Zero asks on every request, each waiting up to the timeout
    /// while Redis is away.
    pub fn backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// Counters the fallback's in-process store keeps (default 100,000).
    pub fn fallback_capacity(mut self, capacity: usize) -> Self {
        self.fallback_capacity = capacity;
        self
    }

    /// The store. Connects on first use, not here.
    ///
    /// # Errors
    /// A short key secret; a URL `redis` does not take.
    pub fn build(self) -> Result<RedisStore, ThrottleError> {
        let keys = self.keys?;
        if self.tls_roots.is_some() && !self.url.starts_with("rediss://") {
            return Err(ThrottleError::Invalid {
                name: "tls_root_certificates",
                reason: "given for a URL without TLS: use rediss://",
            });
        }
        if self.url.starts_with("rediss://")
            && rustls::crypto::CryptoProvider::get_default().is_none()
        {
            // rustls needs a process-wide provider; one the application
            // installed stays (another thread may win this race: fine).
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let client = match self.tls_roots {
            Some(roots) => redis::Client::build_with_tls(
                self.url.as_str(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(roots),
                },
            ),
            None => redis::Client::open(self.url.as_str()),
        }
        .map_err(|e| ThrottleError::Store(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        Ok(RedisStore {
            inner: Arc::new(Inner {
                client,
                config,
                connection: tokio::sync::OnceCell::new(),
                script: redis::Script::new(RedisStore::SCRIPT),
                prefix: self.prefix,
                timeout: self.timeout,
                keys,
                fallback: MemoryStore::new(self.fallback_capacity),
                backoff: self.backoff,
                started: Instant::now(),
                asleep_until: AtomicU64::new(0),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn replies_that_are_not_the_scripts_are_refused() {
        // One counter: summary, now, then allowed, remaining, reset, retry.
        assert!(parse(&[1, 10, 1, 4, 5, 0], 1).is_ok());
        assert!(parse(&[0, 10, 0, 0, 5, 3], 1).is_ok());
        for lie in [
            &[1, 10, 1, 4, 5][..],   // short
            &[1, 10, 1, 4, 5, 0, 0], // long
            &[1, 10, 2, 4, 5, 0],    // a flag that is neither 0 nor 1
            &[7, 10, 1, 4, 5, 0],    // a summary flag likewise
            &[1, 10, 0, 0, 5, 3],    // "all allowed" over a denial
            &[0, 10, 1, 4, 5, 0],    // "denied" over allowed cells
            &[1, -1, 1, 4, 5, 0],    // negative time
            &[1, 10, 1, -4, 5, 0],   // negative remaining
        ] {
            assert!(parse(lie, 1).is_err(), "{lie:?} accepted");
        }
    }
}
