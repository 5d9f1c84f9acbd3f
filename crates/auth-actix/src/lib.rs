//! # auth-actix
//!
//! [actix-web](https://docs.rs/actix-web) adapter for [`auth_core`]: the
//! [`Authentication`] middleware and `FromRequest` extractors. The core
//! decides; this crate translates its outcome into actix's idioms, with the
//! same statuses, headers and bodies as `auth-axum`.
//!
//! | piece | what it does |
//! |---|---|
//! | [`Authentication`] | authenticates every request; required or optional; appends issued `Set-Cookie`; preflight passthrough |
//! | [`Auth`], `Option<Auth>` | the identity (from the middleware, or an [`AuthState`] in `app_data`) |
//! | [`Claims<T>`](Claims) | the identity's attributes as your type |
//! | [`Scoped<T>`](Scoped) | the identity, if it holds `T`'s scopes (else 403) |
//! | [`AuthRejection`] | every refusal, as a `ResponseError` |
//! | [`ActixView`] | the core's request view over actix's request, no header copies |

mod drive;
mod extract;
mod middleware;
mod rejection;
mod view;

pub use auth_core;
pub use auth_core::Scope;
pub use extract::{Auth, AuthState, Claims, IssuedCookie, Scoped};
pub use middleware::{AuthFuture, Authentication, AuthenticationMiddleware};
pub use rejection::AuthRejection;
pub use view::ActixView;
