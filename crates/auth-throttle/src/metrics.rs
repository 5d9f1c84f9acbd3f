//! What the throttle decided and how its shared store fared, through the
//! [`metrics`](https://docs.rs/metrics) facade (feature `metrics`; without
//! it nothing here records anything). Nothing is recorded until the
//! application installs a recorder (an exporter, such as
//! `metrics-exporter-prometheus`).
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

/// Describes this crate's metrics to the installed recorder (their help
/// text and units). Call it once, after installing the recorder.
pub fn describe() {
    #[cfg(feature = "metrics")]
    {
        use metrics::Unit;
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

/// `rule` counted a request.
#[inline]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn counted(rule: &crate::Rule, allowed: bool) {
    #[cfg(feature = "metrics")]
    metrics::counter!(
        REQUESTS,
        "rule" => std::sync::Arc::clone(&rule.id),
        "result" => if allowed { "allowed" } else { "denied" }
    )
    .increment(1);
}

/// The shared store of kind `store` failed and `fallback` decided.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn fell_back(store: &'static str, fallback: crate::Fallback) {
    #[cfg(feature = "metrics")]
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

/// A clock for [`STORE_DURATION`], read only when the feature is on.
pub(crate) struct Timer(#[cfg(feature = "metrics")] std::time::Instant);

impl Timer {
    #[inline]
    pub(crate) fn start() -> Self {
        Timer(
            #[cfg(feature = "metrics")]
            std::time::Instant::now(),
        )
    }

    /// The store of kind `store` answered (`ok`) or failed.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn stop(self, store: &'static str, ok: bool) {
        #[cfg(feature = "metrics")]
        metrics::histogram!(
            STORE_DURATION,
            "store" => store,
            "result" => if ok { "ok" } else { "error" }
        )
        .record(self.0.elapsed());
    }
}
