//! The demo's Prometheus exposition (`GET /metrics`), with the examples'
//! `metrics` feature; without it, `GET /metrics` is 404.

use crate::{DemoError, not_found};

/// The process's Prometheus recorder, once [`install_metrics`] ran.
#[cfg(feature = "metrics")]
static METRICS: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
    std::sync::OnceLock::new();

/// Installs a Prometheus recorder for the process (the first call; later
/// ones do nothing) and enables the core's and the throttle's metrics, so
/// that `GET /metrics` answers. The histograms have buckets: the
/// store's wait from 0.5 ms to 250 ms, a provider call's from 5 ms to 5 s.
///
/// # Errors
/// Another recorder is installed already, or this was built without the
/// `metrics` feature.
pub fn install_metrics() -> Result<(), DemoError> {
    #[cfg(feature = "metrics")]
    {
        use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
        if METRICS.get().is_some() {
            return Ok(());
        }
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(auth_throttle::metrics::STORE_DURATION.to_owned()),
                &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
            )?
            .set_buckets_for_metric(
                Matcher::Full(auth_core::metrics::PROVIDER_DURATION.to_owned()),
                &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0],
            )?
            .install_recorder()?;
        let _ = METRICS.set(handle);
        auth_throttle::metrics::enable();
        Ok(())
    }
    #[cfg(not(feature = "metrics"))]
    Err("built without the `metrics` feature".into())
}

/// `GET /metrics`: the Prometheus text exposition, or 404 before
/// [`install_metrics`] (always, without the `metrics` feature).
pub fn metrics_response() -> http::Response<String> {
    #[cfg(feature = "metrics")]
    if let Some(handle) = METRICS.get() {
        handle.run_upkeep();
        let mut response = http::Response::new(handle.render());
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        return response;
    }
    not_found()
}
