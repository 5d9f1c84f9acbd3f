//! [`Throttling`] (feature `throttle`): an `auth-throttle` decision for
//! every request, after [`Authentication`](crate::Authentication) found who
//! it is.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::{Error, HttpMessage};
use auth_core::Verdict;
use auth_throttle::{Allowance, Checked, Throttle, Throttled};
use pin_project_lite::pin_project;

use crate::convert;
use crate::rejection::render;
use crate::respond::{AddTo, Responding};
use crate::view::ActixView;

/// Applies an [`auth_throttle::Throttle`] to each request of an app,
/// scope or resource: wrap it *inside* [`Authentication`](crate::Authentication)
/// (actix runs the last `wrap` first, so add `Throttling` before
/// `Authentication`), and it reads the identity the middleware left. The
/// same answers as `auth-axum`'s `ThrottleLayer`.
///
/// ```
/// use actix_web::{App, web};
/// use auth_actix::{Auth, Authentication, Throttling};
/// use auth_core::AnonSessionBackend;
/// use auth_throttle::{MemoryStore, Quota, Rule, Throttle};
/// use std::time::Duration;
///
/// let throttle = Throttle::builder(MemoryStore::default())
///     .rule(Rule::new("per-caller", Quota::new(3, Duration::from_secs(10)))?)
///     .build()?;
/// let app = App::new().service(
///     web::scope("/limited")
///         .wrap(Throttling::new(throttle))
///         .wrap(Authentication::new(AnonSessionBackend::new("anon")?))
///         .route("", web::get().to(|Auth(who): Auth| async move { who.key() })),
/// );
/// # drop(app);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Throttling {
    throttle: Throttle,
}

impl Throttling {
    /// Applies `throttle`.
    pub fn new(throttle: Throttle) -> Self {
        Throttling { throttle }
    }
}

impl<S, B> Transform<S, ServiceRequest> for Throttling
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = ThrottlingMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(ThrottlingMiddleware {
            service: Rc::new(service),
            throttle: self.throttle.clone(),
        }))
    }
}

/// The service [`Throttling`] wraps around the app.
pub struct ThrottlingMiddleware<S> {
    service: Rc<S>,
    throttle: Throttle,
}

impl<S, B> Service<ServiceRequest> for ThrottlingMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = ThrottleFuture<S::Future, B>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let checked = {
            let extensions = req.extensions();
            let verdict = extensions.get::<Verdict>();
            self.throttle
                .check(verdict, &ActixView(req.request()), SystemTime::now())
        };
        let step = match checked {
            Checked::Done(Throttled::Allow(allowance)) => {
                return ThrottleFuture {
                    inner: Responding::handler(self.service.call(req), Some(allowance)),
                };
            }
            Checked::Done(Throttled::Deny(refusal)) => {
                return ThrottleFuture {
                    inner: Responding::ready(
                        req.into_response(render(refusal)).map_into_right_body(),
                    ),
                };
            }
            Checked::Store(step) => step,
        };
        let service = Rc::clone(&self.service);
        ThrottleFuture {
            inner: Responding::boxed(Box::pin(async move {
                match step.run().await {
                    Throttled::Allow(allowance) => {
                        let response = service.call(req).await?;
                        Ok(allowance.add_to(response).map_into_left_body())
                    }
                    Throttled::Deny(refusal) => {
                        Ok(req.into_response(render(refusal)).map_into_right_body())
                    }
                }
            })),
        }
    }
}

/// The allowed request's `RateLimit` fields, appended to its response.
impl AddTo for Allowance {
    fn add_to<B>(self, mut response: ServiceResponse<B>) -> ServiceResponse<B> {
        let map = response.headers_mut();
        for (name, value) in self.into_headers() {
            if let Some((name, value)) = convert::header(&name, &value) {
                map.append(name, value);
            }
        }
        response
    }
}

pin_project! {
    /// The response future of [`ThrottlingMiddleware`]: the handler's own
    /// future (plus the headers to add) or the ready refusal with the
    /// in-process store, unboxed; a boxed future only for a round trip to a
    /// shared store.
    pub struct ThrottleFuture<F, B> {
        #[pin]
        inner: Responding<F, B, Allowance>,
    }
}

impl<F, B> Future for ThrottleFuture<F, B>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
{
    type Output = Result<ServiceResponse<EitherBody<B>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}
