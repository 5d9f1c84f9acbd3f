//! # auth-core
//!
//! A sans-IO answer to two questions for every HTTP request: **who is
//! this?** and, with a rate limiter such as `auth-throttle`, **how much may
//! they do?** A [`Gate`] applies a [`Policy`] (which backend, required or
//! optional) and optionally a limiter, in a fixed order, and turns one
//! request into one [`Decision`]: proceed to the handler with a
//! [`Verdict`] (an [`AuthData`]: identifier, attributes, the backend that
//! vouched for it, a rate-limiting key) and the [`Additions`] its response
//! must carry, or refuse with a ready [`Refusal`] (status, RFC 6750
//! challenge, body).
//!
//! The core reads a request through
//! [`RequestView`](step::RequestView) (implemented for `http` requests
//! here and for actix-web in `auth-actix`) and does no IO: a backend that
//! needs the network hands out the HTTP request to send and a continuation
//! ([`Gated::Pending`]); a driver moves the bytes.
//!
//! | backend | identifier |
//! |---|---|
//! | [`IpBackend`] | client address, trusted-proxy aware |
//! | [`SessionBackend`] | a session cookie's value |
//! | [`AnonSessionBackend`] | an anonymous session cookie, issued when absent |
//! | [`JwtBackend`] | the `sub` of a verified bearer JWT |
//! | [`IntrospectionBackend`] (with a Keycloak preset) | the `sub` (or another claim) of an RFC 7662 answer |
//! | [`Chain`] | the first backend that finds credentials |
//!
//! Applications name what is at the crate root; [`step`] holds the
//! machinery for code that extends it (custom backends, drivers, limiters).
//!
//! ```
//! use auth_core::{AnonSessionBackend, Backend, Chain, SessionBackend};
//!
//! // Logged-in users by session, everybody else by an anonymous session.
//! let who_is_it = Chain::new()
//!     .or(SessionBackend::new("session")?)
//!     .or(AnonSessionBackend::new("anon")?);
//!
//! let req = auth_core::http::Request::builder().header("cookie", "session=u-42").body(())?;
//! let who = who_is_it.identify(&req)?; // local backends: one call, no network step
//! assert_eq!(who.auth.key(), "session:u-42");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod backend;
mod chain;
mod data;
mod decision;
mod drive;
mod error;
mod flight;
mod gate;
pub mod health;
mod introspect;
mod ip;
mod jwt;
mod log;
pub mod metrics;
mod policy;
mod refusal;
mod request;
mod scopes;
mod session;
pub mod step;
mod transport;

pub use backend::{Authenticated, Backend};
pub use chain::Chain;
pub use data::{AuthData, ClaimsError, Source};
pub use decision::{Additions, Decision, Proceed, Verdict};
pub use error::{AuthError, Challenge, ConfigError, Credential};
pub use gate::{Gate, Gated, Pending};
pub use introspect::{ClientAuth, IntrospectionBackend, IntrospectionBuilder};
pub use ip::{ForwardedHeader, IpBackend};
pub use jwt::{
    IssueError, JwtBackend, JwtBackendBuilder, JwtValidator, JwtValidatorBuilder, TokenIssuer,
};
pub use policy::Policy;
pub use refusal::{Cause, Refusal};
pub use request::PeerAddr;
pub use scopes::{RequireScopes, Scope};
pub use session::{AnonSessionBackend, AnonSessionBuilder, SessionBackend};

/// `jsonwebtoken`'s types that the JWT builders take: the signature
/// algorithms, keys to sign and verify with, JWKs.
pub use jsonwebtoken::jwk::{Jwk, JwkSet};
pub use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};

/// Re-exported so callers can name `SameSite` without depending on `cookie`.
pub use cookie::SameSite;

/// The `http` crate this one is built on (requests, responses, headers):
/// `auth_core::http::Request` is the type the backends take, whichever
/// `http` version your own dependencies pull in.
pub use http;
