//! Driving network steps off the worker thread: requests on actix's
//! blocking pool (`web::block`), waits for another request's provider call
//! as futures on the worker.

use std::sync::Arc;

use actix_web::rt::time::timeout;
use actix_web::web;
use auth_core::flight::Waiter;
use auth_core::transport::{MAX_WAIT, Transport, TransportError, drive};
use auth_core::{AuthError, Authenticated, Outcome};

use crate::view::ActixView;

/// Drives `outcome` for the request `view`. A local answer (a cache hit,
/// a session cookie) returns at once, without leaving the worker.
pub(crate) async fn resolve(
    outcome: Outcome,
    view: &ActixView<'_>,
    transport: &Arc<dyn Transport>,
) -> Result<Authenticated, AuthError> {
    if let Outcome::Done(result) = outcome {
        return result;
    }
    let send = |request: http::Request<Vec<u8>>| {
        let transport = Arc::clone(transport);
        async move {
            web::block(move || transport.send(request))
                .await
                .unwrap_or_else(|_| Err(TransportError::Other("the transport task failed".into())))
        }
    };
    let wait = |waiter: Waiter| async move {
        // On timeout the continuation sees no answer and says 503.
        let _ = timeout(MAX_WAIT, waiter.wait()).await;
    };
    drive(outcome, view, send, wait).await
}
