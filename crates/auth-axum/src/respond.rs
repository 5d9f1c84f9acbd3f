//! The response future both layers return: the handler's own future plus
//! what the layer adds to its response, or a ready refusal, both unboxed;
//! a boxed future only when the decision needed a round trip (network
//! steps, a shared store).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;
use pin_project_lite::pin_project;

/// A decision that had to wait for IO, with the inner service's call.
pub(crate) type Boxed<B, E> = Pin<Box<dyn Future<Output = Result<Response<B>, E>> + Send>>;

/// What a layer adds to the handler's response once it is there.
pub(crate) trait AddTo<B> {
    fn add_to(self, response: Response<B>) -> Response<B>;
}

/// `response` with `add` added, if any.
pub(crate) fn with<B, A: AddTo<B>>(response: Response<B>, add: Option<A>) -> Response<B> {
    match add {
        Some(add) => add.add_to(response),
        None => response,
    }
}

pin_project! {
    #[project = RespondingProj]
    pub(crate) enum Responding<F, B, E, A> {
        Handler { #[pin] future: F, add: Option<A> },
        Ready { response: Option<Response<B>> },
        Boxed { future: Boxed<B, E> },
    }
}

impl<F, B, E, A> Responding<F, B, E, A> {
    pub(crate) fn handler(future: F, add: Option<A>) -> Self {
        Responding::Handler { future, add }
    }

    pub(crate) fn ready(response: Response<B>) -> Self {
        Responding::Ready {
            response: Some(response),
        }
    }

    pub(crate) fn boxed(future: Boxed<B, E>) -> Self {
        Responding::Boxed { future }
    }
}

impl<F, B, E, A> Future for Responding<F, B, E, A>
where
    F: Future<Output = Result<Response<B>, E>>,
    A: AddTo<B>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            RespondingProj::Handler { future, add } => future
                .poll(cx)
                .map_ok(|response| with(response, add.take())),
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
