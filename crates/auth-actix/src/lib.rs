//! # auth-actix
//!
//! [actix-web](https://docs.rs/actix-web) adapter for [`auth_core`]: the
//! core decides; this crate renders its decisions in actix's types (the
//! same answers as `auth-axum`) and drives its steps off the worker.
//!
//! | piece | what it does |
//! |---|---|
//! | [`Authentication`] | applies a core `Gate` (a `Policy`, and rate limits with `.throttle`) to every request of an app, scope or resource |
//! | [`Auth`], `Option<Auth>` | the identity (from the middleware, or an [`AuthState`] in `app_data`) |
//! | [`Claims<T>`](Claims) | every claim of the identity, as your type |
//! | [`Scoped<T>`](Scoped) | the identity, if it holds `T`'s scopes |
//! | [`AuthRejection`] | an extractor's refusal, as a `ResponseError` |
//! | [`ActixView`] | the core's request view over actix's request, to call the core yourself |

mod convert;
mod drive;
mod extract;
mod middleware;
mod rejection;
mod view;

pub use extract::{Auth, AuthState, Claims, ExtractFuture, IssuedCookie, Scoped};
pub use middleware::{AuthFuture, Authentication, AuthenticationMiddleware};
pub use rejection::AuthRejection;
pub use view::ActixView;
