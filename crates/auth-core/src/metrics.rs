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

#[cfg(feature = "metrics")]
use crate::decision::{Decision, Proceed};

/// Requests the gate decided: `auth_requests_total{outcome, source,
/// status}`.
pub const REQUESTS: &str = "auth_requests_total";

/// Describes this crate's metrics to the installed recorder (their help
/// text), for an exporter that shows it. Call it once, after installing
/// the recorder.
pub fn describe() {
    #[cfg(feature = "metrics")]
    metrics::describe_counter!(
        REQUESTS,
        metrics::Unit::Count,
        "Requests the auth gate decided, by outcome, identifying backend and refusal status"
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
