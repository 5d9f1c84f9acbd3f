//! The core's backends against their inputs and against real HTTP servers
//! on 127.0.0.1 (one test binary; each module is one backend or driver).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// Those that send over the network need the `ureq` transport (CI also runs
// the JWT suite alone, with RustCrypto and no default features).
#[cfg(feature = "ureq")]
mod blocking_driver;
#[cfg(feature = "ureq")]
mod introspection;
mod jwt;
#[cfg(feature = "ureq")]
mod jwt_remote;
mod logs;

#[cfg(feature = "ureq")]
use auth_core::http::HeaderValue;
#[cfg(feature = "ureq")]
use auth_core::step::Transport;
#[cfg(feature = "ureq")]
use auth_core::{AuthData, AuthError, Backend, Cause, Decision, Gate, Policy};

/// What a custom server gets for one request from the gate's blocking
/// driver: the identity and any cookie issued with it.
#[cfg(feature = "ureq")]
#[derive(Debug)]
pub(crate) struct Who {
    pub(crate) auth: AuthData,
    pub(crate) set_cookie: Option<HeaderValue>,
}

/// `backend`'s answer for `req` through a gate and its blocking driver,
/// network steps sent with `transport`: the identity, or the
/// authentication error the refusal answers.
#[cfg(feature = "ureq")]
pub(crate) fn authenticate_blocking<B, T>(
    backend: &B,
    req: &http::Request<()>,
    transport: &T,
) -> Result<Who, AuthError>
where
    B: Backend + Clone + 'static,
    T: Transport + Clone + 'static,
{
    let gate = Gate::new(Policy::new(backend.clone()).transport(transport.clone()));
    match gate.decide_blocking(req) {
        Decision::Proceed(proceed) => Ok(Who {
            auth: proceed.verdict.and_then(|v| v.into_auth()).unwrap(),
            set_cookie: proceed.additions.get("set-cookie").cloned(),
        }),
        Decision::Refuse(refusal) => match refusal.cause() {
            Cause::Auth(error) => Err(error.clone()),
            other => panic!("not an authentication refusal: {other:?}"),
        },
    }
}
