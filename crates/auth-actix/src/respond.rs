//! The response future both middlewares return: the handler's own future
//! plus what the middleware adds to its response, or a ready refusal, both
//! unboxed; a boxed future only when the decision needed a round trip
//! (network steps, a shared store).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::Error;
use actix_web::body::EitherBody;
use actix_web::dev::ServiceResponse;
use futures_util::future::LocalBoxFuture;
use pin_project_lite::pin_project;

/// The answer of a middleware: the handler's body, or a refusal's.
pub(crate) type Answer<B> = Result<ServiceResponse<EitherBody<B>>, Error>;

/// A decision that had to wait for IO, with the inner service's call.
pub(crate) type Boxed<B> = LocalBoxFuture<'static, Answer<B>>;

/// What a middleware adds to the handler's response once it is there.
pub(crate) trait AddTo {
    fn add_to<B>(self, response: ServiceResponse<B>) -> ServiceResponse<B>;
}

/// `response` with `add` added, if any.
pub(crate) fn with<B, A: AddTo>(
    response: ServiceResponse<B>,
    add: Option<A>,
) -> ServiceResponse<B> {
    match add {
        Some(add) => add.add_to(response),
        None => response,
    }
}

pin_project! {
    #[project = RespondingProj]
    pub(crate) enum Responding<F, B, A> {
        Handler { #[pin] future: F, add: Option<A> },
        Ready { response: Option<ServiceResponse<EitherBody<B>>> },
        Boxed { future: Boxed<B> },
    }
}

impl<F, B, A> Responding<F, B, A> {
    pub(crate) fn handler(future: F, add: Option<A>) -> Self {
        Responding::Handler { future, add }
    }

    pub(crate) fn ready(response: ServiceResponse<EitherBody<B>>) -> Self {
        Responding::Ready {
            response: Some(response),
        }
    }

    pub(crate) fn boxed(future: Boxed<B>) -> Self {
        Responding::Boxed { future }
    }
}

impl<F, B, A> Future for Responding<F, B, A>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
    A: AddTo,
{
    type Output = Answer<B>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            RespondingProj::Handler { future, add } => future
                .poll(cx)
                .map_ok(|response| with(response, add.take()).map_into_left_body()),
            RespondingProj::Ready { response } => {
                #[allow(clippy::expect_used, reason = "the Future contract")]
                let response = response
                    .take()
                    .expect("response future polled after completion");
                Poll::Ready(Ok(response))
            }
            RespondingProj::Boxed { future } => future.as_mut().poll(cx),
        }
    }
}
