//! The actix guide, compiled and run as doctests with the README's
//! dependency lines for an actix-web application.

/// The actix quick start.
#[cfg(doctest)]
#[doc = include_str!("../../../../docs/guides/actix.md")]
struct Actix;
