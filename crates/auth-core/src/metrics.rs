//! What the gate decided, through the [`metrics`](https://docs.rs/metrics)
//! facade (feature `metrics`; without it nothing here records anything).
//! Nothing is recorded until the application installs a recorder (an
//! exporter, such as `metrics-exporter-prometheus`); with one, each
//! decision is one counter increment.
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
//! | [`KEYS_UPDATED`] `auth_jwt_keys_updated_timestamp_seconds` | gauge | none: when a JWT backend last installed a fetched key set (Unix seconds; its age is `time() - ` this) |
//!
//! Provider calls are timed from the step's creation to its answer being
//! applied, by the drivers of this crate and the adapters, or yours.

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
/// When a JWT backend last installed a fetched key set, in Unix seconds:
/// `auth_jwt_keys_updated_timestamp_seconds`.
pub const KEYS_UPDATED: &str = "auth_jwt_keys_updated_timestamp_seconds";

/// Describes this crate's metrics to the installed recorder (their help
/// text), for an exporter that shows it. Call it once, after installing
/// the recorder.
pub fn describe() {
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
            "When a JWT backend last installed a fetched key set (Unix time)"
        );
    }
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
    #[cfg(feature = "metrics")]
    kind: Provider,
    #[cfg(feature = "metrics")]
    started: std::time::Instant,
}

impl ProviderCall {
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn start(kind: Provider) -> Self {
        #[cfg(feature = "metrics")]
        metrics::gauge!(PROVIDER_IN_FLIGHT, "kind" => kind.label()).increment(1.0);
        ProviderCall {
            #[cfg(feature = "metrics")]
            kind,
            #[cfg(feature = "metrics")]
            started: std::time::Instant::now(),
        }
    }

    /// The answer was applied: usable (`ok`) or not.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn finish(self, ok: bool) {
        #[cfg(feature = "metrics")]
        {
            let (kind, result) = (self.kind.label(), if ok { "ok" } else { "error" });
            metrics::counter!(PROVIDER_REQUESTS, "kind" => kind, "result" => result).increment(1);
            metrics::histogram!(PROVIDER_DURATION, "kind" => kind, "result" => result)
                .record(self.started.elapsed());
        }
    }
}

impl Drop for ProviderCall {
    fn drop(&mut self) {
        #[cfg(feature = "metrics")]
        metrics::gauge!(PROVIDER_IN_FLIGHT, "kind" => self.kind.label()).decrement(1.0);
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
    metrics::counter!(
        CACHE_REQUESTS,
        "cache" => match cache {
            Cache::VerifiedToken => "verified_token",
            Cache::Introspection => "introspection",
        },
        "result" => if hit { "hit" } else { "miss" }
    )
    .increment(1);
}

/// A JWT backend installed a fetched key set at `now`.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn keys_updated(now: std::time::SystemTime) {
    #[cfg(feature = "metrics")]
    metrics::gauge!(KEYS_UPDATED).set(
        now.duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64()),
    );
}

/// A refusal's status as a label value (the usual ones without an
/// allocation).
#[cfg(feature = "metrics")]
fn status(code: http::StatusCode) -> metrics::SharedString {
    match code.as_u16() {
        400 => "400".into(),
        401 => "401".into(),
        403 => "403".into(),
        429 => "429".into(),
        500 => "500".into(),
        503 => "503".into(),
        _ => code.as_str().to_owned().into(),
    }
}

/// Counts a decision.
#[inline]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn decided(decision: &crate::Decision) {
    #[cfg(feature = "metrics")]
    {
        let (outcome, source, status) = match decision {
            Decision::Proceed(Proceed { verdict, .. }) => {
                match verdict.as_ref().and_then(|v| v.auth()) {
                    Some(auth) => ("admitted", auth.source().as_str(), "none".into()),
                    None => ("passed_through", "none", "none".into()),
                }
            }
            Decision::Refuse(refusal) => ("refused", "none", status(refusal.status())),
        };
        metrics::counter!(
            REQUESTS,
            "outcome" => outcome,
            "source" => source,
            "status" => status
        )
        .increment(1);
    }
}
