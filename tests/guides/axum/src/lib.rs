//! The README and the axum guides, compiled and run as doctests with the
//! README's dependency lines for an axum application: a snippet that
//! needs anything more does not compile here.

/// The README.
#[cfg(doctest)]
#[doc = include_str!("../../../../README.md")]
struct Readme;

/// The axum quick start.
#[cfg(doctest)]
#[doc = include_str!("../../../../docs/guides/axum.md")]
struct Axum;

/// Rate limits.
#[cfg(doctest)]
#[doc = include_str!("../../../../docs/guides/throttle.md")]
struct Throttle;

/// Metrics.
#[cfg(doctest)]
#[doc = include_str!("../../../../docs/guides/metrics.md")]
struct Metrics;

/// Readiness.
#[cfg(doctest)]
#[doc = include_str!("../../../../docs/guides/health.md")]
struct Health;
