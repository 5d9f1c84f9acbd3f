//! # auth-core
//!
//! A sans-IO answer to one question for every HTTP request: **who is this?**
//! The answer is an [`AuthData`] (an identifier, attributes, the backend that
//! vouched for it and a rate-limiting key) or an [`AuthError`] saying why not,
//! with the HTTP status and RFC 6750 challenge to answer with.
//!
//! The core reads request parts through [`RequestView`](request::RequestView)
//! (implemented for `http` requests here and for actix-web in `auth-actix`)
//! and does no IO: a backend that needs the network returns the HTTP request
//! to send and a continuation ([`Outcome::Send`]); a driver moves the bytes.
//!
//! | backend | identifier | module |
//! |---|---|---|
//! | [`IpBackend`] | client address, trusted-proxy aware | [`ip`] |
//! | [`SessionBackend`] | a session cookie's value | [`session`] |
//! | [`AnonSessionBackend`] | an anonymous session cookie, issued when absent | [`session`] |
//! | [`JwtBackend`] | the `sub` of a verified bearer JWT | [`jwt`] |
//! | [`IntrospectionBackend`] (with a Keycloak preset) | the `sub` (or another claim) of an RFC 7662 answer | [`introspect`] |
//! | [`Chain`] | the first backend that finds credentials | [`backend`] |
//!
//! ```
//! use auth_core::{AnonSessionBackend, Backend, Chain, IpBackend, SessionBackend};
//!
//! // Logged-in users by session, everybody else by an anonymous session.
//! let who_is_it = Chain::new()
//!     .or(SessionBackend::new("session")?)
//!     .or(AnonSessionBackend::new("anon")?);
//!
//! let req = http::Request::builder().header("cookie", "session=u-42").body(())?;
//! let who = who_is_it.identify(&req)?; // local backends: one call, no network step
//! assert_eq!(who.auth.key(), "session:u-42");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod backend;
pub mod data;
pub mod decision;
pub mod error;
pub mod flight;
pub mod introspect;
pub mod ip;
pub mod jwt;
pub mod policy;
pub mod request;
pub mod session;
pub mod transport;

pub use backend::{
    Action, Authenticated, Backend, Chain, Outcome, RequireScopes, Resume, Scope, Step,
};
pub use data::{AuthData, Source};
pub use decision::{Admit, Decision, Refusal, Verdict};
pub use error::{AuthError, Challenge, ConfigError, Credential};
pub use introspect::IntrospectionBackend;
pub use ip::{ForwardedHeader, IpBackend};
pub use jwt::{JwtBackend, JwtValidator, TokenIssuer, TokenValidator};
pub use policy::{Deciding, Pending, Policy};
pub use session::{AnonSessionBackend, AnonSessionBuilder, SessionBackend};

/// Re-exported so callers can name `SameSite` without depending on `cookie`.
pub use cookie::SameSite;

/// The `http` crate this one is built on (requests, responses, headers):
/// `auth_core::http::Request` is the type the backends take, whichever
/// `http` version your own dependencies pull in.
pub use http;
