//! What the gate decided, through the [`metrics`](https://docs.rs/metrics)
//! facade (feature `metrics`; without it nothing here records anything).
//! Nothing is recorded until the application installs a recorder (an
//! exporter, such as `metrics-exporter-prometheus`) and then calls
//! [`enable`]; until then each decision costs one atomic load. Once
//! enabled, the usual label sets are registered once and each decision is
//! an increment of a registered counter.
//!
//! Label values are a small, fixed set: never an identifier, key, address,
//! token or path.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | [`REQUESTS`] `auth_requests_total` | counter | `outcome` (`admitted`, `passed_through`, `refused`), `source` (the backend kind that identified an admitted caller: `ip`, `session`, `anon`, `jwt`, `introspect` or a custom backend's name; `none` otherwise), `status` (a refusal's status code; `none` when the request goes on) |
//! | [`PROVIDER_REQUESTS`] `auth_provider_requests_total` | counter | `kind` (`introspection`, `jwks`, `discovery`), `result` (`ok`: an answer the backend could use, an inactive token's included; `error`: none, or none it could use) |
//! | [`PROVIDER_DURATION`] `auth_provider_request_duration_seconds` | histogram | `kind`, `result` |
//! | [`PROVIDER_IN_FLIGHT`] `auth_provider_in_flight` | gauge | `kind` |
//! | [`CACHE_REQUESTS`] `auth_cache_requests_total` | counter | `cache` (`verified_token`, `introspection`), `result` (`hit`: answered from the cache; `miss`: a token the cache did not have, or had too old to use, that the validator or the provider then answered) |
//! | [`KEYS_UPDATED`] `auth_jwt_keys_updated_timestamp_seconds` | gauge | none: when the JWT key set in service was fetched and installed (Unix seconds; its age is `time() - ` this); with several remote key sets, the oldest |
//!
//! Provider calls are timed from the step's creation to its answer being
//! applied, by the drivers of this crate and the adapters, or yours.

#[cfg(feature = "metrics")]
use crate::Source;
#[cfg(feature = "metrics")]
use crate::decision::{Decision, Proceed};

/// Requests the gate decided: `auth_requests_total{outcome, source,
/// status}`.
pub const REQUESTS: &str = "auth_requests_total";

/// Calls to an identity provider: `auth_provider_requests_total{kind,
/// result}`.
pub const PROVIDER_REQUESTS: &str = "auth_provider_requests_total";
/// Time of a call to an identity provider:
/// `auth_provider_request_duration_seconds{kind, result}`.
pub const PROVIDER_DURATION: &str = "auth_provider_request_duration_seconds";
/// Calls to an identity provider under way: `auth_provider_in_flight{kind}`.
pub const PROVIDER_IN_FLIGHT: &str = "auth_provider_in_flight";
/// Look-ups in a backend's cache: `auth_cache_requests_total{cache,
/// result}`.
pub const CACHE_REQUESTS: &str = "auth_cache_requests_total";
/// When the oldest remote JWT key set in service was fetched and
/// installed, in Unix seconds: `auth_jwt_keys_updated_timestamp_seconds`.
pub const KEYS_UPDATED: &str = "auth_jwt_keys_updated_timestamp_seconds";

/// Turns recording on, once the application has installed a recorder, and
/// describes this crate's metrics to it (their help text and units).
/// Before this call nothing is recorded. Call it once, after installing
/// the recorder: counters registered before would stay with no recorder.
/// Without the feature `metrics` it does nothing.
pub fn enable() {
    #[cfg(feature = "metrics")]
    {
        use metrics::Unit;
        metrics::describe_counter!(
            REQUESTS,
            Unit::Count,
            "Requests the auth gate decided, by outcome, identifying backend and refusal status"
        );
        metrics::describe_counter!(
            PROVIDER_REQUESTS,
            Unit::Count,
            "Calls to an identity provider (introspection, JWKS, OIDC discovery), by result"
        );
        metrics::describe_histogram!(
            PROVIDER_DURATION,
            Unit::Seconds,
            "Time of a call to an identity provider"
        );
        metrics::describe_gauge!(
            PROVIDER_IN_FLIGHT,
            Unit::Count,
            "Calls to an identity provider under way"
        );
        metrics::describe_counter!(
            CACHE_REQUESTS,
            Unit::Count,
            "Look-ups in a backend's cache (verified tokens, introspection answers)"
        );
        metrics::describe_gauge!(
            KEYS_UPDATED,
            Unit::Seconds,
            "When the oldest JWT key set in service was fetched and installed (Unix time)"
        );
        ENABLED.store(true, std::sync::atomic::Ordering::Relaxed);
        // Key sets fetched before the recorder was there.
        let sets = key_sets();
        if let Some(oldest) = sets.oldest() {
            metrics::gauge!(KEYS_UPDATED).set(oldest);
        }
    }
}

/// Whether [`enable`] was called.
#[cfg(feature = "metrics")]
static ENABLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether recording is on: [`enable`] was called (by the application,
/// or by `auth_throttle::metrics::enable`), with the feature `metrics`.
#[inline(always)]
pub fn enabled() -> bool {
    #[cfg(feature = "metrics")]
    return ENABLED.load(std::sync::atomic::Ordering::Relaxed);
    #[cfg(not(feature = "metrics"))]
    false
}

#[cfg(feature = "metrics")]
use enabled as on;

/// Sources whose `auth_requests_total` counter is registered once.
#[cfg(feature = "metrics")]
const SOURCES: [Source; 5] = [
    Source::Ip,
    Source::Session,
    Source::Anonymous,
    Source::Jwt,
    Source::Introspection,
];
/// Refusal statuses likewise.
#[cfg(feature = "metrics")]
const STATUSES: [http::StatusCode; 6] = [
    http::StatusCode::BAD_REQUEST,
    http::StatusCode::UNAUTHORIZED,
    http::StatusCode::FORBIDDEN,
    http::StatusCode::TOO_MANY_REQUESTS,
    http::StatusCode::INTERNAL_SERVER_ERROR,
    http::StatusCode::SERVICE_UNAVAILABLE,
];

/// Counters registered once, after [`enable`].
#[cfg(feature = "metrics")]
struct Handles {
    /// `admitted` by each of [`SOURCES`].
    admitted: [metrics::Counter; SOURCES.len()],
    passed_through: metrics::Counter,
    /// `refused` with each of [`STATUSES`].
    refused: [metrics::Counter; STATUSES.len()],
    /// (cache, hit): verified token miss, hit; introspection miss, hit.
    caches: [metrics::Counter; 4],
}

#[cfg(feature = "metrics")]
fn handles() -> Option<&'static Handles> {
    static HANDLES: std::sync::OnceLock<Handles> = std::sync::OnceLock::new();
    if !on() {
        return None;
    }
    Some(HANDLES.get_or_init(|| Handles {
        admitted: SOURCES.map(|source| {
            metrics::counter!(REQUESTS, "outcome" => "admitted", "source" => source.as_str(), "status" => "none")
        }),
        passed_through: metrics::counter!(
            REQUESTS,
            "outcome" => "passed_through",
            "source" => "none",
            "status" => "none"
        ),
        refused: STATUSES.map(|status| {
            metrics::counter!(REQUESTS, "outcome" => "refused", "source" => "none", "status" => status.as_str().to_owned())
        }),
        caches: [
            ("verified_token", "miss"),
            ("verified_token", "hit"),
            ("introspection", "miss"),
            ("introspection", "hit"),
        ]
        .map(|(cache, result)| metrics::counter!(CACHE_REQUESTS, "cache" => cache, "result" => result)),
    }))
}

/// A call to an identity provider.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Provider {
    Introspection,
    Jwks,
    Discovery,
}

impl Provider {
    #[cfg(feature = "metrics")]
    fn label(self) -> &'static str {
        match self {
            Provider::Introspection => "introspection",
            Provider::Jwks => "jwks",
            Provider::Discovery => "discovery",
        }
    }
}

/// One call to a provider, from its step's creation: in flight until
/// [`finish`](Self::finish)ed or dropped (a step dropped unsent is no
/// call).
pub(crate) struct ProviderCall {
    /// The kind and the start, when recording.
    #[cfg(feature = "metrics")]
    call: Option<(Provider, std::time::Instant)>,
}

impl ProviderCall {
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn start(kind: Provider) -> Self {
        #[cfg(feature = "metrics")]
        {
            if !on() {
                return ProviderCall { call: None };
            }
            metrics::gauge!(PROVIDER_IN_FLIGHT, "kind" => kind.label()).increment(1.0);
            ProviderCall {
                call: Some((kind, std::time::Instant::now())),
            }
        }
        #[cfg(not(feature = "metrics"))]
        ProviderCall {}
    }

    /// The answer was applied: usable (`ok`) or not.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn finish(self, ok: bool) {
        #[cfg(feature = "metrics")]
        if let Some((kind, started)) = self.call {
            let (kind, result) = (kind.label(), if ok { "ok" } else { "error" });
            metrics::counter!(PROVIDER_REQUESTS, "kind" => kind, "result" => result).increment(1);
            metrics::histogram!(PROVIDER_DURATION, "kind" => kind, "result" => result)
                .record(started.elapsed());
        }
    }
}

impl Drop for ProviderCall {
    fn drop(&mut self) {
        #[cfg(feature = "metrics")]
        if let Some((kind, _)) = self.call {
            metrics::gauge!(PROVIDER_IN_FLIGHT, "kind" => kind.label()).decrement(1.0);
        }
    }
}

/// A cache of a backend.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Cache {
    VerifiedToken,
    Introspection,
}

/// A look-up in `cache`.
#[inline]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn looked_up(cache: Cache, hit: bool) {
    #[cfg(feature = "metrics")]
    if let Some(handles) = handles() {
        let i = match cache {
            Cache::VerifiedToken => 0,
            Cache::Introspection => 2,
        } + usize::from(hit);
        handles.caches[i].increment(1);
    }
}

/// A remote key set's place in `auth_jwt_keys_updated_timestamp_seconds`,
/// which reports the oldest of the sets in service, so that a stale set is
/// not hidden by a fresh one beside it. Leaves with its key store.
#[derive(Debug)]
pub(crate) struct KeySetAge {
    #[cfg(feature = "metrics")]
    id: u64,
}

impl KeySetAge {
    pub(crate) fn new() -> Self {
        #[cfg(feature = "metrics")]
        {
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            KeySetAge {
                id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            }
        }
        #[cfg(not(feature = "metrics"))]
        KeySetAge {}
    }

    /// The store installed a fetched key set at `now`.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn updated(&self, now: std::time::SystemTime) {
        #[cfg(feature = "metrics")]
        {
            let at = now
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            // The gauge is set under the lock (here, on drop and on
            // enabling), so that it ends at the oldest whatever the order
            // of two stores' updates.
            let mut sets = key_sets();
            let oldest = sets.updated(self.id, at);
            if on() {
                metrics::gauge!(KEYS_UPDATED).set(oldest);
            }
        }
    }
}

#[cfg(feature = "metrics")]
impl Drop for KeySetAge {
    fn drop(&mut self) {
        let mut sets = key_sets();
        if let Some(oldest) = sets.remove(self.id)
            && on()
        {
            metrics::gauge!(KEYS_UPDATED).set(oldest);
        }
    }
}

/// The process's remote key sets in service: when each was installed.
#[cfg(feature = "metrics")]
fn key_sets() -> std::sync::MutexGuard<'static, KeySets> {
    static KEY_SETS: std::sync::Mutex<KeySets> = std::sync::Mutex::new(KeySets(Vec::new()));
    KEY_SETS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Key stores by id, with when (Unix seconds) each installed the set it
/// serves; a store that never installed one is not here.
#[cfg(feature = "metrics")]
#[derive(Debug, Default)]
struct KeySets(Vec<(u64, f64)>);

#[cfg(feature = "metrics")]
impl KeySets {
    /// Store `id` installed a set at `at`: the oldest now in service.
    fn updated(&mut self, id: u64, at: f64) -> f64 {
        match self.0.iter_mut().find(|(store, _)| *store == id) {
            Some(entry) => entry.1 = at,
            None => self.0.push((id, at)),
        }
        self.oldest().unwrap_or(at)
    }

    /// Store `id` is gone: the oldest set left in service, if any (when
    /// none is, the gauge keeps its last value).
    fn remove(&mut self, id: u64) -> Option<f64> {
        let i = self.0.iter().position(|(store, _)| *store == id)?;
        self.0.swap_remove(i);
        self.oldest()
    }

    fn oldest(&self) -> Option<f64> {
        self.0.iter().map(|(_, at)| *at).reduce(f64::min)
    }
}

/// Counts a decision.
#[inline]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn decided(decision: &crate::Decision) {
    #[cfg(feature = "metrics")]
    {
        let Some(handles) = handles() else { return };
        match decision {
            Decision::Proceed(Proceed { verdict, .. }) => {
                match verdict.as_ref().and_then(|v| v.auth()) {
                    Some(auth) => match SOURCES.iter().position(|s| *s == auth.source()) {
                        Some(i) => handles.admitted[i].increment(1),
                        None => metrics::counter!(
                            REQUESTS,
                            "outcome" => "admitted",
                            "source" => auth.source().as_str(),
                            "status" => "none"
                        )
                        .increment(1),
                    },
                    None => handles.passed_through.increment(1),
                }
            }
            Decision::Refuse(refusal) => {
                let status = refusal.status();
                match STATUSES.iter().position(|s| *s == status) {
                    Some(i) => handles.refused[i].increment(1),
                    None => metrics::counter!(
                        REQUESTS,
                        "outcome" => "refused",
                        "source" => "none",
                        "status" => status.as_str().to_owned()
                    )
                    .increment(1),
                }
            }
        }
    }
}

#[cfg(all(test, feature = "metrics"))]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, UNIX_EPOCH};

    use metrics::{Counter, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata, Recorder};

    use super::{KEYS_UPDATED, KeySetAge, KeySets};

    /// Records the last value set on the key-age gauge; nothing else.
    #[derive(Default)]
    struct KeyAge(Arc<Last>);

    #[derive(Default)]
    struct Last(Mutex<Option<f64>>);

    impl GaugeFn for Last {
        fn increment(&self, _: f64) {}
        fn decrement(&self, _: f64) {}
        fn set(&self, value: f64) {
            *self.0.lock().unwrap() = Some(value);
        }
    }

    impl Recorder for KeyAge {
        fn describe_counter(&self, _: KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {
        }
        fn describe_gauge(&self, _: KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
        fn describe_histogram(
            &self,
            _: KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
            Counter::noop()
        }
        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            if key.name() == KEYS_UPDATED {
                Gauge::from_arc(Arc::clone(&self.0))
            } else {
                Gauge::noop()
            }
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    #[test]
    fn enabling_publishes_key_sets_fetched_before() {
        let age = KeySetAge::new();
        age.updated(UNIX_EPOCH + Duration::from_secs(100));
        let recorder = KeyAge::default();
        metrics::with_local_recorder(&recorder, super::enable);
        // Other tests' sets may be older still; none is newer than this one
        // and older than the process.
        let published = *recorder.0.0.lock().unwrap();
        assert!(
            published.is_some_and(|at| at <= 100.0),
            "published {published:?}"
        );
    }

    #[test]
    fn the_key_age_is_the_oldest_set_in_service() {
        let mut sets = KeySets::default();
        assert_eq!(sets.updated(1, 200.0), 200.0, "the only set");
        assert_eq!(sets.updated(2, 100.0), 100.0, "an older set beside it");
        assert_eq!(sets.updated(3, 300.0), 100.0, "a newer one hides nothing");
        assert_eq!(sets.updated(2, 400.0), 200.0, "the oldest refreshed");
        assert_eq!(sets.0.len(), 3, "a refresh replaces its store's entry");
        assert_eq!(sets.remove(1), Some(300.0), "the oldest gone");
        assert_eq!(sets.remove(1), None, "a store that left is not here");
        assert_eq!(sets.remove(3), Some(400.0));
        assert_eq!(sets.remove(2), None, "none left");
    }
}
