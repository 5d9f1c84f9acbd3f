//! What the throttle decided and how its shared store fared, through the
//! [`metrics`](https://docs.rs/metrics) facade (feature `metrics`; without
//! it nothing here records anything). Nothing is recorded until the
//! application installs a recorder (an exporter, such as
//! `metrics-exporter-prometheus`) and then calls [`enable`] (which enables
//! `auth-core`'s too); until then a decision costs one atomic load. Each
//! rule registers its two counters once, at its first count after that.
//!
//! Label values are a small, fixed set: rule ids (set in code), store
//! kinds, fallbacks and results; never a caller, key or address.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | [`REQUESTS`] `auth_throttle_requests_total` | counter | `rule` (a rule's id; the failure budget's steps too), `result` (`allowed`: every rule that counted the request allowed it, and each is counted; `denied`: the rules that denied it, the others spent nothing and are not counted; in log-only mode, over the limit and let through) |
//! | [`STORE_FALLBACKS`] `auth_throttle_store_fallbacks_total` | counter | `store` ([`SharedStore::kind`](crate::SharedStore::kind): `redis`, `redis-cluster`, `shared`), `fallback` (`memory`, `allow`, `deny`) |
//! | [`STORE_DURATION`] `auth_throttle_store_duration_seconds` | histogram | `store`, `result` (`ok`, `error`) |

/// Requests a rule counted: `auth_throttle_requests_total{rule, result}`.
pub const REQUESTS: &str = "auth_throttle_requests_total";
/// Requests the fallback decided because the shared store failed:
/// `auth_throttle_store_fallbacks_total{store, fallback}`.
pub const STORE_FALLBACKS: &str = "auth_throttle_store_fallbacks_total";
/// Time a request waited for the shared store (in
/// [`StoreStep::run`](crate::StoreStep::run)), answer or failure:
/// `auth_throttle_store_duration_seconds{store, result}`.
pub const STORE_DURATION: &str = "auth_throttle_store_duration_seconds";

/// Turns recording on, here and in `auth-core`
/// ([`auth_core::metrics::enable`]), once the application has installed a
/// recorder, and describes the metrics to it (help text and units). Before
/// this call nothing is recorded. Without the feature `metrics` it does
/// nothing.
pub fn enable() {
    #[cfg(feature = "metrics")]
    {
        use metrics::Unit;
        auth_core::metrics::enable();
        metrics::describe_counter!(
            REQUESTS,
            Unit::Count,
            "Requests a rate limit rule counted, allowed or denied"
        );
        metrics::describe_counter!(
            STORE_FALLBACKS,
            Unit::Count,
            "Requests decided by the fallback because the shared store failed"
        );
        metrics::describe_histogram!(
            STORE_DURATION,
            Unit::Seconds,
            "Time a request waited for the shared rate limit store"
        );
    }
}

/// Whether to record: `auth-core`'s switch, which [`enable`] turns on.
#[cfg(feature = "metrics")]
use auth_core::metrics::enabled as on;

/// A rule's two counters (`allowed`, `denied`), registered at its first
/// count after [`enable`].
#[derive(Clone, Default)]
pub(crate) struct RuleCounters(
    #[cfg(feature = "metrics")] std::sync::OnceLock<[metrics::Counter; 2]>,
);

/// `rule` counted a request.
#[inline]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn counted(rule: &crate::Rule, allowed: bool) {
    #[cfg(feature = "metrics")]
    if on() {
        let [allowed_counter, denied_counter] = rule.counters.0.get_or_init(|| {
            ["allowed", "denied"].map(|result| {
                metrics::counter!(
                    REQUESTS,
                    "rule" => std::sync::Arc::clone(&rule.id),
                    "result" => result
                )
            })
        });
        match allowed {
            true => allowed_counter.increment(1),
            false => denied_counter.increment(1),
        }
    }
}

/// The shared store of kind `store` failed and `fallback` decided.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn fell_back(store: &'static str, fallback: crate::Fallback) {
    #[cfg(feature = "metrics")]
    if on() {
        metrics::counter!(
        STORE_FALLBACKS,
        "store" => store,
        "fallback" => match fallback {
            crate::Fallback::Memory => "memory",
            crate::Fallback::Allow => "allow",
                crate::Fallback::Deny => "deny",
            }
        )
        .increment(1);
    }
}

/// Applies `batch` on the shared `store`, timed in [`STORE_DURATION`]:
/// every round trip (the rules' and the failure budget's), not an answer
/// the store gave without asking (its backoff).
pub(crate) async fn timed(
    store: &dyn crate::SharedStore,
    batch: &crate::Batch,
) -> Result<crate::Reply, crate::StoreError> {
    let timer = Timer::start();
    let reply = store.apply(batch).await;
    if !matches!(reply, Err(crate::StoreError::Backoff)) {
        // An answer that stands though a part failed is a failure here.
        timer.stop(
            store.kind(),
            reply.as_ref().is_ok_and(|r| r.failed.is_none()),
        );
    }
    reply
}

/// A clock for [`STORE_DURATION`], read only when recording.
struct Timer(#[cfg(feature = "metrics")] Option<std::time::Instant>);

impl Timer {
    #[inline]
    fn start() -> Self {
        Timer(
            #[cfg(feature = "metrics")]
            on().then(std::time::Instant::now),
        )
    }

    /// The store of kind `store` answered (`ok`) or failed.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    fn stop(self, store: &'static str, ok: bool) {
        #[cfg(feature = "metrics")]
        if let Some(started) = self.0 {
            metrics::histogram!(
                STORE_DURATION,
                "store" => store,
                "result" => if ok { "ok" } else { "error" }
            )
            .record(started.elapsed());
        }
    }
}
