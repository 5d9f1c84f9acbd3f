//! # auth-axum
//!
//! [axum](https://docs.rs/axum) adapter for [`auth_core`]: a tower
//! [`AuthLayer`] and extractors. The core decides (which backend, fallback,
//! required or optional, scopes); this crate only translates its outcome
//! into axum's idioms.
//!
//! | piece | what it does |
//! |---|---|
//! | [`AuthLayer`] | authenticates every request; required or optional; appends issued `Set-Cookie`; preflight passthrough |
//! | [`Auth`], `Option<Auth>` | the identity the layer found |
//! | [`Claims<T>`](Claims) | the identity's attributes as your type |
//! | [`Scoped<T>`](Scoped) | the identity, if it holds `T`'s scopes (else 403) |
//! | [`AuthState`] + [`StateAuth`] | authentication from the router state, without the layer |
//! | [`AuthRejection`] | every refusal, as a response (status, `WWW-Authenticate`, JSON) |
//!
//! `IpBackend` needs the client address: serve with
//! `into_make_service_with_connect_info::<SocketAddr>()`.

mod drive;
mod extract;
mod layer;
mod rejection;
mod view;

pub use auth_core;
pub use auth_core::Scope;
pub use extract::{Auth, AuthState, Claims, IssuedCookie, Scoped, StateAuth};
pub use layer::{AuthFuture, AuthLayer, AuthService};
pub use rejection::AuthRejection;
pub use view::AxumView;

/// The README's examples (core and axum), compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
