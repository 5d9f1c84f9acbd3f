//! # auth-axum
//!
//! [axum](https://docs.rs/axum) and tower adapter for [`auth_core`]: the
//! core decides (backends, scopes, rate limits, the wording of refusals);
//! this crate renders its decisions and drives its steps on tokio.
//!
//! | piece | what it does |
//! |---|---|
//! | [`AuthLayer`] | applies a core `Gate` (a `Policy`, and rate limits with `.throttle`) to every request of any tower service taking `http::Request<B>` |
//! | [`Auth`], `Option<Auth>` | the identity the layer found |
//! | [`Claims<T>`](Claims) | every claim of the identity, as your type |
//! | [`Scoped<T>`](Scoped) | the identity, if it holds `T`'s scopes |
//! | [`AuthState`] + [`StateAuth`] | the same decision from the router state, without the layer |
//! | [`AuthRejection`] | an extractor's refusal, as a response |
//!
//! `IpBackend` needs the client address: serve with
//! `into_make_service_with_connect_info::<SocketAddr>()` (feature `axum`,
//! default), or insert an `auth_core::PeerAddr` extension.

mod drive;
mod extract;
mod layer;
mod rejection;
mod view;

pub use extract::{Auth, AuthState, Claims, IssuedCookie, Scoped, StateAuth};
pub use layer::{AuthFuture, AuthLayer, AuthService};
pub use rejection::AuthRejection;
