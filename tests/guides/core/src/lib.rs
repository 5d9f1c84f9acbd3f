//! The core's guides, compiled and run as doctests with the README's
//! dependency lines for a server of your own.

/// IP.
#[cfg(doctest)]
#[doc = include_str!("../../../../docs/guides/ip.md")]
struct Ip;

/// Session cookies.
#[cfg(doctest)]
#[doc = include_str!("../../../../docs/guides/sessions.md")]
struct Sessions;

/// JWT.
#[cfg(doctest)]
#[doc = include_str!("../../../../docs/guides/jwt.md")]
struct Jwt;

/// Introspection.
#[cfg(doctest)]
#[doc = include_str!("../../../../docs/guides/introspection.md")]
struct Introspection;

/// Choosing and chaining backends.
#[cfg(doctest)]
#[doc = include_str!("../../../../docs/guides/chaining.md")]
struct Chaining;

/// Calling the core directly.
#[cfg(doctest)]
#[doc = include_str!("../../../../docs/guides/direct.md")]
struct Direct;

/// Logging.
#[cfg(doctest)]
#[doc = include_str!("../../../../docs/guides/logging.md")]
struct Logging;
