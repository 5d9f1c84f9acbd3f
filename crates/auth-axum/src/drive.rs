//! Driving network steps without blocking the executor: requests go to
//! tokio's blocking pool (the ureq transport blocks), waits for another
//! request's provider call are async.

use std::sync::Arc;

use crate::view::AxumView;
use auth_core::flight::Waiter;
use auth_core::transport::{MAX_WAIT, Transport, TransportError, drive};
use auth_core::{AuthError, Authenticated, Outcome};

/// Drives `outcome` for the request `view`. A local answer (a cache hit,
/// a session cookie) returns at once, without leaving the task.
pub(crate) async fn resolve(
    outcome: Outcome,
    view: &AxumView<'_>,
    transport: &Arc<dyn Transport>,
) -> Result<Authenticated, AuthError> {
    if let Outcome::Done(result) = outcome {
        return result;
    }
    let send = |request: http::Request<Vec<u8>>| {
        let transport = Arc::clone(transport);
        async move {
            tokio::task::spawn_blocking(move || transport.send(request))
                .await
                .unwrap_or_else(|_| Err(TransportError::Other("the transport task failed".into())))
        }
    };
    let wait = |waiter: Waiter| async move {
        // On timeout the continuation sees no answer and says 503.
        let _ = tokio::time::timeout(MAX_WAIT, waiter.wait()).await;
    };
    drive(outcome, view, send, wait).await
}
