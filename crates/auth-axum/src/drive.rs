//! Driving a pending decision on tokio without blocking the executor:
//! blocking sends on the blocking pool, waits for another request's
//! provider call as futures under a timeout.

use auth_core::Decision;
use auth_core::Pending;
use auth_core::request::RequestView;
use auth_core::transport::{MAX_WAIT, TransportError};

pub(crate) async fn drive<R: RequestView + Sync>(pending: Pending, view: &R) -> Decision {
    pending
        .drive(
            view,
            |job| async move {
                tokio::task::spawn_blocking(move || job.run())
                    .await
                    .unwrap_or_else(|_| {
                        Err(TransportError::Other("the transport task failed".into()))
                    })
            },
            |waiter| async move {
                // On timeout the continuation sees no answer and says 503.
                let _ = tokio::time::timeout(MAX_WAIT, waiter.wait()).await;
            },
        )
        .await
}
