//! Against a real OpenID provider (oidc-provider on Node.js, started per
//! test on a free port): its RS256 `at+jwt` tokens through OIDC discovery,
//! RFC 7662 introspection through the blocking driver, and introspection
//! through both adapters.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod adapters;
mod introspection;
mod jwt;
