//! [`RedisStore`] (feature `redis`): counters in Redis, one server or a
//! Redis Cluster, shared by every server that uses it. Everything Redis is
//! here: the connection and its failures here, the scripts' calls and
//! answers in `call`.

mod backoff;
mod call;
mod ping;
mod slots;

use std::fmt;
use std::future::ready;
use std::sync::Arc;
use std::time::Duration;

use auth_core::step::EverySecond;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{ErrorKind, RedisError, ServerErrorKind};

use self::backoff::{Backoff, Outage};
use self::call::Call;
use crate::error::{StoreError, ThrottleError};
use crate::key::KeyHasher;
use crate::memory::{DEFAULT_CAPACITY, MemoryStore};
use crate::store::{Batch, Kind, PingFuture, Reply, SharedStore, Store, StoreFuture};

/// Default time one request waits for Redis before the fallback applies.
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);
/// Default prefix of the counters' keys.
const DEFAULT_PREFIX: &str = "auth-throttle";
/// Default time Redis is not asked after it failed (the fallback applies
/// at once meanwhile).
const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);
/// The least time a connection (to every node of a cluster) has to open,
/// in a task of its own; requests meanwhile wait their timeout at most.
const CONNECT_BUDGET: Duration = Duration::from_secs(2);

/// Counters in Redis: one limit across many servers, on one Redis server
/// ([`builder`](Self::builder)) or a Redis Cluster
/// ([`cluster`](Self::cluster)).
///
/// - Keys `<prefix>:{<caller>}:<rule>`: the caller is a keyed hash (the
///   secret, shared by the servers, never leaves them), so no session id or
///   token reaches Redis; the hash tag puts one caller's counters in one
///   hash slot. Counters expire by themselves.
/// - One Lua script ([`SCRIPT`](Self::SCRIPT)) runs the same arithmetic as
///   the in-process store with Redis's own `TIME` as the clock (servers
///   with skewed clocks agree), sent as `EVALSHA`; on `NOSCRIPT` (a
///   restart, a `SCRIPT FLUSH`, a replica just promoted) as `EVAL`, which
///   loads it for the next request, on that node alone.
/// - **One server**: one multiplexed connection (`redis`'s
///   `ConnectionManager`, which reconnects after Redis restarts), one
///   round trip per request for all of its rules, all or nothing.
/// - **A cluster**: the cluster client follows `MOVED` and `ASK` and
///   finds the new primary after a failover. A request's counters are
///   grouped by hash slot (a caller's counters share one), one script call
///   per slot, the calls in flight together (one round trip of latency).
///   All or nothing across slots: each call stores its counters only if
///   all of them allow the request; when one slot denies the request (or
///   fails), the calls that stored theirs are given back before the answer
///   (the refund script takes off what is left of the request's unit, at
///   most one emission interval, once even if sent again). Between the
///   store and the refund (one round trip) another request of those
///   callers may be denied for a unit that is then given back: the race
///   errs towards denying, never towards letting more through. If the
///   refund fails, or a slot's answer is lost (a timeout, or the client
///   sending a call again after a dropped connection), the units stay spent
///   until they expire.
/// - Each script call waits the timeout at most (default 50 ms; a
///   cluster's retries and redirections included), the refund as long
///   again; then the throttle's fallback applies (in-process counting by
///   default), with a warning in the log; never a 500. For the backoff
///   after such a failure (default 1 s) Redis is not asked: the fallback
///   applies at once, so an outage does not add the timeout to every
///   request. On one server the backoff covers the whole store; on a
///   cluster, the slots of the primary whose call failed, so that a dead
///   or stuck primary sends only its own callers to the fallback. Which
///   slots those are, the slot map says (`CLUSTER SLOTS`, asked once
///   connected, after a failure at most once per the longest of the
///   backoff, the timeout and a second, and by every readiness probe); the
///   whole store backs off when the map is not known or does not name the
///   slot, and after a failure to connect. The first connection (to every node,
///   on a cluster) opens in a task of its own with 2 s or the timeout,
///   whichever is longer; requests meanwhile wait their timeout at most.
/// - Refusals that waiting will not mend (`WRONGTYPE` on a key written by
///   something else, `OOM`, a script or command refused, `CROSSSLOT` from
///   pointing [`builder`](Self::builder) at a cluster) are
///   [`StoreError::Refused`]: logged as configuration errors, the fallback
///   for that request, and no backoff (other callers' keys may be fine).
/// - `rediss://` for TLS (rustls; [`tls_root_certificates`](RedisStoreBuilder::tls_root_certificates)
///   for a private CA), `user:password@` in the URL when Redis asks for
///   them.
///
/// ```no_run
/// use auth_throttle::{Quota, RedisStore, Rule, Throttle};
/// use std::time::Duration;
///
/// let secret = std::env::var("THROTTLE_SECRET")?; // the same on every server
/// let redis = RedisStore::builder("redis://127.0.0.1:6379", secret.as_bytes())
///     .timeout(Duration::from_millis(30))
///     .build()?;
/// // Or a cluster, from some of its nodes:
/// let cluster = RedisStore::cluster(
///     ["redis://10.0.0.1:6379", "redis://10.0.0.2:6379"],
///     secret.as_bytes(),
/// )
/// .build()?;
/// let throttle = Throttle::builder(redis)
///     .rule(Rule::new("api", Quota::new(100, Duration::from_secs(60))?)?)
///     .build()?;
/// # drop((throttle, cluster));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    target: Target,
    /// Opened by the first request (it needs the runtime the requests run
    /// on), again after a failed first attempt.
    connection: tokio::sync::OnceCell<Connection>,
    script: redis::Script,
    refund: redis::Script,
    prefix: String,
    timeout: Duration,
    keys: KeyHasher,
    fallback: MemoryStore,
    /// When Redis is not asked after a failure.
    backoff: Backoff,
}

/// What the store connects to.
enum Target {
    Node {
        client: redis::Client,
        config: ConnectionManagerConfig,
    },
    Cluster(ClusterClient),
}

/// An open connection: both kinds are cheap to clone (multiplexed).
#[derive(Clone)]
enum Connection {
    Node(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Connection {
    async fn query<T: redis::FromRedisValue>(
        &mut self,
        command: &redis::Cmd,
    ) -> redis::RedisResult<T> {
        match self {
            Connection::Node(connection) => command.query_async(connection).await,
            Connection::Cluster(connection) => command.query_async(connection).await,
        }
    }

    /// `command(EVALSHA, hash)`; on `NOSCRIPT`, `command(EVAL, script)`.
    async fn run<T: redis::FromRedisValue>(
        &mut self,
        script: &redis::Script,
        source: &str,
        command: impl Fn(&str, &str) -> redis::Cmd,
    ) -> redis::RedisResult<T> {
        match self.query(&command("EVALSHA", script.get_hash())).await {
            Err(error) if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                self.query(&command("EVAL", source)).await
            }
            answer => answer,
        }
    }
}

/// The store's word for a call's failure: a timeout, a refusal waiting
/// will not mend, or an outage (by its kind, never a key or a URL).
/// `MOVED` is a refusal from one server (it is a cluster node: use
/// [`RedisStore::cluster`]); from a cluster, whose client follows it, one
/// that comes back is an outage (a dead primary's slots, before a replica
/// takes over).
fn store_error(error: &RedisError, target: &Target) -> StoreError {
    let refused = match error.kind() {
        ErrorKind::Server(
            ServerErrorKind::ResponseError
            | ServerErrorKind::ExecAbort
            | ServerErrorKind::CrossSlot
            | ServerErrorKind::NoPerm,
        )
        | ErrorKind::UnexpectedReturnType => true,
        ErrorKind::Server(ServerErrorKind::Moved) => matches!(target, Target::Node { .. }),
        ErrorKind::Extension => matches!(error.code(), Some("WRONGTYPE" | "OOM")),
        _ => false,
    };
    if refused {
        return StoreError::Refused(error.code().unwrap_or(error.category()).to_owned());
    }
    unavailable(error)
}

/// An outage, by the error's kind (an I/O error by its own kind).
fn unavailable(error: &RedisError) -> StoreError {
    if error.is_timeout() {
        return StoreError::Timeout;
    }
    if error.kind() == ErrorKind::Io {
        return StoreError::Unavailable(
            if error.is_connection_refusal() {
                "I/O error: connection refused"
            } else if error.is_connection_dropped() {
                "I/O error: connection dropped"
            } else {
                "I/O error"
            }
            .to_owned(),
        );
    }
    StoreError::Unavailable(match error.code() {
        Some(code) => format!("{} ({code})", error.category()),
        None => error.category().to_owned(),
    })
}

impl RedisStore {
    /// The Lua script the store runs: GCRA over every counter of one call,
    /// all or nothing (the arithmetic of [`Counter::check`](crate::Counter::check),
    /// in integers Lua's numbers hold exactly). `KEYS` are the counters,
    /// `ARGV[1]` `""` for the server's `TIME` (or a time in microseconds),
    /// then each counter's interval and tolerance; it answers `{all allowed,
    /// now, then per counter: allowed, remaining, reset, retry}`.
    pub const SCRIPT: &'static str = include_str!("redis/gcra.lua");
    /// Default time one request waits for Redis before the fallback
    /// applies.
    pub const DEFAULT_TIMEOUT: Duration = DEFAULT_TIMEOUT;
    /// Default prefix of the counters' keys.
    pub const DEFAULT_PREFIX: &'static str = DEFAULT_PREFIX;
    /// Default time Redis is not asked after it failed (the fallback
    /// applies at once meanwhile).
    pub const DEFAULT_BACKOFF: Duration = DEFAULT_BACKOFF;

    /// The refund script (a Redis Cluster only): one emission interval off
    /// each of a call's counters.
    const REFUND: &'static str = include_str!("redis/refund.lua");

    /// A store on one Redis server at `url` (`redis://host:port[/db]`, or
    /// `rediss://` for TLS, with `user:password@` when Redis asks for them),
    /// its keys hashed under `key_secret` (at least 16 bytes; the same on
    /// every server sharing the limits).
    pub fn builder(url: &str, key_secret: &[u8]) -> RedisStoreBuilder {
        RedisStoreBuilder::new(Nodes::One(url.to_owned()), key_secret)
    }

    /// A store on a Redis Cluster, found from `nodes` (some of its nodes'
    /// URLs, as for [`builder`](Self::builder); every one `redis://` or
    /// every one `rediss://`, with the same credentials). The cluster's
    /// other nodes are learned from them.
    pub fn cluster<I, S>(nodes: I, key_secret: &[u8]) -> RedisStoreBuilder
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let nodes = nodes.into_iter().map(|n| n.as_ref().to_owned()).collect();
        RedisStoreBuilder::new(Nodes::Cluster(nodes), key_secret)
    }

    /// The in-process store the fallback counts in.
    pub fn fallback_store(&self) -> &MemoryStore {
        &self.inner.fallback
    }

    /// Runs one request's calls; a failure other than a refusal starts the
    /// backoff (a call's, even when another call's denial is the answer):
    /// for its primary's slots on a cluster, and then the slot map is asked
    /// for again.
    async fn run(&self, calls: Vec<Call>) -> Result<Reply, StoreError> {
        let (reply, outages) = self.round_trip(&calls).await;
        let now = self.inner.backoff.now();
        for &outage in &outages {
            self.inner.backoff.failed(outage, now);
        }
        if !outages.is_empty() {
            self.refresh_map();
        }
        reply
    }

    /// Asks a node for the slot map, in a task of its own, if one is due
    /// (a cluster, connected, at most once per [`Backoff::map_due`]'s
    /// interval, which is longer than an ask may take); the map stays as
    /// it was if the node does not answer within the timeout.
    fn refresh_map(&self) {
        // Not connected yet: the connecting task asks once connected.
        let Some(Connection::Cluster(cluster)) = self.inner.connection.get() else {
            return;
        };
        if !self.inner.backoff.map_due() {
            return;
        }
        let (mut cluster, inner) = (cluster.clone(), Arc::clone(&self.inner));
        tokio::spawn(async move {
            let fetch = slots::fetch(&mut cluster, &inner.target);
            if let Ok(Ok(map)) = tokio::time::timeout(inner.timeout, fetch).await {
                inner.backoff.set_map(map);
            }
        });
    }

    /// The connection, opened on first use by a task of its own (with
    /// [`CONNECT_BUDGET`] or the timeout, whichever is longer), so that a
    /// request's timeout does not cut a connect that takes longer (a
    /// cluster connects to every node) and the next request starts over.
    /// Any failure to connect is an outage (it starts the backoff).
    async fn connection(&self) -> Result<Connection, StoreError> {
        if let Some(connection) = self.inner.connection.get() {
            return Ok(connection.clone());
        }
        let inner = Arc::clone(&self.inner);
        let connecting = tokio::spawn(async move {
            let budget = inner.timeout.max(CONNECT_BUDGET);
            let connect = inner.connection.get_or_try_init(|| async {
                match &inner.target {
                    Target::Node { client, config } => client
                        .get_connection_manager_with_config(config.clone())
                        .await
                        .map(Connection::Node),
                    Target::Cluster(client) => {
                        client.get_async_connection().await.map(Connection::Cluster)
                    }
                }
            });
            let connected = match tokio::time::timeout(budget, connect).await {
                Ok(Ok(connection)) => Ok(connection.clone()),
                Ok(Err(error)) => Err(unavailable(&error)),
                Err(_) => Err(StoreError::Timeout),
            };
            if connected.is_ok() {
                // The slot map the backoff needs, from the start (here: the
                // requests that wait for this task may have given up).
                RedisStore { inner }.refresh_map();
            }
            connected
        });
        connecting
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("connecting stopped".to_owned())))
    }

    /// The calls in flight together, each under the timeout, then, if one
    /// denied or failed, the refund of those that stored their counters
    /// (under a timeout of its own, in a task of its own: a client that
    /// hangs up does not keep its units). The answer, and the outages
    /// (a failure to connect is the whole store's).
    async fn round_trip(&self, calls: &[Call]) -> (Result<Reply, StoreError>, Vec<Outage>) {
        let connection = match tokio::time::timeout(self.inner.timeout, self.connection()).await {
            Ok(Ok(connection)) => connection,
            Ok(Err(error)) => return (Err(error), vec![Outage::Store]),
            Err(_) => return (Err(StoreError::Timeout), vec![Outage::Store]),
        };
        let target = &self.inner.target;
        let answers = futures_util::future::join_all(calls.iter().map(|call| {
            let mut connection = connection.clone();
            let ask = async move {
                let reply: Vec<i64> = connection
                    .run(&self.inner.script, Self::SCRIPT, |verb, script| {
                        call.command(verb, script)
                    })
                    .await
                    .map_err(|e| store_error(&e, target))?;
                call::parse(&reply, call.keys.len())
            };
            async move {
                tokio::time::timeout(self.inner.timeout, ask)
                    .await
                    .unwrap_or(Err(StoreError::Timeout))
            }
        }))
        .await;
        let outages = call::outages(calls, &answers);
        let (reply, refunds) = call::combine(calls, answers);
        if !refunds.is_empty() {
            let inner = Arc::clone(&self.inner);
            let giving_back = tokio::spawn(async move {
                let target = &inner.target;
                let given_back = futures_util::future::join_all(refunds.iter().map(|refund| {
                    let mut connection = connection.clone();
                    let script = &inner.refund;
                    async move {
                        connection
                            .run::<i64>(script, Self::REFUND, |verb, source| {
                                refund.command(verb, source)
                            })
                            .await
                            .map_err(|e| store_error(&e, target))
                    }
                }));
                let failed = match tokio::time::timeout(inner.timeout, given_back).await {
                    Ok(results) => results.into_iter().find_map(Result::err),
                    Err(_) => Some(StoreError::Timeout),
                };
                if let Some(error) = failed {
                    warn_refund_failed(&error);
                }
            });
            // Given back before the answer goes out (the task ends within
            // the timeout whether or not this request waits).
            let _ = giving_back.await;
        }
        (reply, outages)
    }
}

/// A warning that spent units could not be given back, at most once a
/// second.
fn warn_refund_failed(error: &StoreError) {
    static LOG: EverySecond = EverySecond::new();
    LOG.log(|held| {
        tracing::warn!(
            %error,
            also = held,
            "rate limit store: a denied request's units in another hash slot \
             could not be given back; they stay spent until they expire"
        );
    });
}

impl SharedStore for RedisStore {
    fn apply(&self, batch: &Batch) -> StoreFuture {
        // Not asked during the whole store's backoff: the fallback at
        // once, without even making the request's keys.
        let backoff = &self.inner.backoff;
        let now = backoff.now();
        if backoff.whole_asleep(now) {
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
        let calls = match self.inner.target {
            Target::Node { .. } => Call::whole(&self.inner.prefix, batch),
            Target::Cluster(_) => Call::per_slot(&self.inner.prefix, batch),
        };
        // Nor during its slots' (a cluster's primary that failed).
        if backoff.slots_asleep(now, calls.iter().filter_map(Call::slot)) {
            return Box::pin(ready(Err(StoreError::Backoff)));
        }
        let store = self.clone();
        Box::pin(async move { store.run(calls).await })
    }

    /// `PING` (on a cluster, to every primary in the slot map by address,
    /// every slot served) under the timeout, whether
    /// or not the store is in its backoff; an answer does not end the
    /// backoff (requests find out for themselves).
    fn ping(&self) -> PingFuture {
        if tokio::runtime::Handle::try_current().is_err() {
            return Box::pin(ready(Err(StoreError::Unavailable(
                "no tokio runtime: enter one to ping the store".to_owned(),
            ))));
        }
        let store = self.clone();
        Box::pin(async move {
            let inner = &store.inner;
            let ping = async {
                let connection = store.connection().await?;
                ping::ping(connection, &inner.target, &inner.backoff).await
            };
            tokio::time::timeout(inner.timeout, ping)
                .await
                .unwrap_or(Err(StoreError::Timeout))
        })
    }

    /// `redis`, or `redis-cluster`.
    fn kind(&self) -> &'static str {
        match self.inner.target {
            Target::Node { .. } => "redis",
            Target::Cluster(_) => "redis-cluster",
        }
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
            .field("cluster", &matches!(self.inner.target, Target::Cluster(_)))
            .field("prefix", &self.inner.prefix)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

/// The URLs a builder connects to.
enum Nodes {
    One(String),
    Cluster(Vec<String>),
}

impl Nodes {
    fn urls(&self) -> &[String] {
        match self {
            Nodes::One(url) => std::slice::from_ref(url),
            Nodes::Cluster(urls) => urls,
        }
    }
}

/// Builds a [`RedisStore`]; see [`RedisStore::builder`] and
/// [`RedisStore::cluster`].
#[must_use]
pub struct RedisStoreBuilder {
    nodes: Nodes,
    keys: Result<KeyHasher, ThrottleError>,
    prefix: String,
    timeout: Duration,
    fallback_capacity: usize,
    backoff: Duration,
    tls_roots: Option<Vec<u8>>,
}

impl RedisStoreBuilder {
    fn new(nodes: Nodes, key_secret: &[u8]) -> Self {
        RedisStoreBuilder {
            nodes,
            keys: KeyHasher::from_secret(key_secret),
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            fallback_capacity: DEFAULT_CAPACITY,
            backoff: DEFAULT_BACKOFF,
            tls_roots: None,
        }
    }

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

    /// How long a request waits for Redis, connecting, a cluster's retries
    /// and redirections included (default 50 ms; not zero); then the
    /// throttle's fallback applies. A refund on a cluster has as long
    /// again.
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
    /// A short key secret; a URL `redis` does not take; no cluster node;
    /// TLS roots for URLs without TLS.
    pub fn build(self) -> Result<RedisStore, ThrottleError> {
        let keys = self.keys?;
        if self.timeout.is_zero() {
            return Err(ThrottleError::Invalid {
                name: "timeout",
                reason: "zero: every request would fall back without an answer from Redis",
            });
        }
        let urls = self.nodes.urls();
        if urls.is_empty() {
            return Err(ThrottleError::Invalid {
                name: "cluster nodes",
                reason: "none given: name at least one of the cluster's nodes",
            });
        }
        let tls = urls.iter().any(|url| url.starts_with("rediss://"));
        if self.tls_roots.is_some() && !urls.iter().all(|url| url.starts_with("rediss://")) {
            return Err(ThrottleError::Invalid {
                name: "tls_root_certificates",
                reason: "given for a URL without TLS: use rediss://",
            });
        }
        if tls && rustls::crypto::CryptoProvider::get_default().is_none() {
            // rustls needs a process-wide provider; one the application
            // installed stays (another thread may win this race: fine).
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let certificates = |roots: Vec<u8>| redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(roots),
        };
        let invalid = |e: RedisError| ThrottleError::Store(e.to_string());
        let cluster = matches!(self.nodes, Nodes::Cluster(_));
        let target = match self.nodes {
            Nodes::One(url) => {
                let client = match self.tls_roots {
                    Some(roots) => redis::Client::build_with_tls(url, certificates(roots)),
                    None => redis::Client::open(url),
                }
                .map_err(invalid)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout.max(CONNECT_BUDGET)))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_secs(1));
                Target::Node { client, config }
            }
            Nodes::Cluster(urls) => {
                // Retries and their waits fit in the timeout (the client's
                // defaults are 16 retries and waits of over a second).
                let wait = u64::try_from(self.timeout.as_millis() / 5)
                    .unwrap_or(u64::MAX)
                    .max(1);
                // No per-node response timeout: the client resends a call
                // whose node timed out at once, and a slow node would run
                // the script twice (a caller's unit spent twice). The
                // overall timeout ends the call instead.
                let mut builder = ClusterClientBuilder::new(urls)
                    .connection_timeout(self.timeout.max(CONNECT_BUDGET))
                    .overall_response_timeout(Some(self.timeout))
                    .retries(2)
                    .min_retry_wait(1)
                    .max_retry_wait(wait);
                if let Some(roots) = self.tls_roots {
                    builder = builder.certs(certificates(roots));
                }
                Target::Cluster(builder.build().map_err(invalid)?)
            }
        };
        Ok(RedisStore {
            inner: Arc::new(Inner {
                target,
                connection: tokio::sync::OnceCell::new(),
                script: redis::Script::new(RedisStore::SCRIPT),
                refund: redis::Script::new(RedisStore::REFUND),
                prefix: self.prefix,
                timeout: self.timeout,
                keys,
                fallback: MemoryStore::new(self.fallback_capacity),
                // After a failure, a new slot map is asked for at most once
                // per the longest of the backoff, the timeout (what an ask
                // may take) and a second.
                backoff: Backoff::new(
                    self.backoff,
                    cluster.then(|| self.backoff.max(self.timeout).max(Duration::from_secs(1))),
                ),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server's error reply, as the client gets it.
    fn reply(line: &str) -> RedisError {
        match redis::parse_redis_value(format!("-{line}\r\n").as_bytes())
            .and_then(redis::Value::extract_error)
        {
            Err(error) => error,
            Ok(value) => panic!("not an error: {value:?}"),
        }
    }

    fn node() -> Target {
        Target::Node {
            client: redis::Client::open("redis://127.0.0.1:1").unwrap(),
            config: ConnectionManagerConfig::new(),
        }
    }

    fn cluster() -> Target {
        Target::Cluster(ClusterClient::new(["redis://127.0.0.1:1"]).unwrap())
    }

    #[test]
    fn a_zero_timeout_is_refused_at_build() {
        let built = |timeout| {
            RedisStore::builder("redis://127.0.0.1:1", b"a secret of 16 bytes")
                .timeout(timeout)
                .build()
                .map(drop)
        };
        assert_eq!(
            built(Duration::ZERO).unwrap_err().to_string(),
            "invalid timeout: zero: every request would fall back without an answer from Redis"
        );
        assert!(built(Duration::from_millis(1)).is_ok());
    }

    #[test]
    fn refusals_waiting_will_not_mend_and_outages_are_told_apart() {
        let refused = |line: &str, target: &Target| {
            matches!(store_error(&reply(line), target), StoreError::Refused(_))
        };
        for line in [
            "WRONGTYPE Operation against a key holding the wrong kind of value",
            "OOM command not allowed when used memory > 'maxmemory'.",
            "ERR user_script:1: Script attempted to access nonexistent global variable",
            "CROSSSLOT Keys in request don't hash to the same slot",
            "NOPERM this user has no permissions to run the 'evalsha' command",
        ] {
            assert!(refused(line, &node()), "{line}");
            assert!(refused(line, &cluster()), "{line}");
        }
        // MOVED: a single-server store pointed at a cluster (no waiting
        // mends it); from a cluster's client, which follows it, a dead
        // primary's slots: an outage.
        assert!(refused("MOVED 3999 127.0.0.1:6381", &node()));
        assert!(!refused("MOVED 3999 127.0.0.1:6381", &cluster()));
        for line in [
            "BUSY Redis is busy running a script.",
            "LOADING Redis is loading the dataset in memory",
            "CLUSTERDOWN The cluster is down",
            "TRYAGAIN Multiple keys request during rehashing of slot",
            "MASTERDOWN Link with MASTER is down",
            "READONLY You can't write against a read only replica.",
        ] {
            assert!(!refused(line, &node()), "{line}");
            assert!(!refused(line, &cluster()), "{line}");
        }
        // Named by code, never by the server's text (which may name a key).
        assert_eq!(
            store_error(
                &reply("WRONGTYPE Operation on auth-throttle:{x}:r"),
                &node()
            ),
            StoreError::Refused("WRONGTYPE".to_owned())
        );
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(
            unavailable(&RedisError::from(refused)),
            StoreError::Unavailable("I/O error: connection refused".to_owned())
        );
    }
}
