//! Driving a pending decision off the worker thread: blocking sends on
//! actix's blocking pool (`web::block`), waits for another request's
//! provider call as futures on the worker.

use actix_web::rt::time::timeout;
use actix_web::web;
use auth_core::Decision;
use auth_core::Pending;
use auth_core::transport::{MAX_WAIT, TransportError};

use crate::view::ActixView;

pub(crate) async fn drive(pending: Pending, view: &ActixView<'_>) -> Decision {
    pending
        .drive(
            view,
            |job| async move {
                web::block(move || job.run()).await.unwrap_or_else(|_| {
                    Err(TransportError::Other("the transport task failed".into()))
                })
            },
            |waiter| async move {
                // On timeout the continuation sees no answer and says 503.
                let _ = timeout(MAX_WAIT, waiter.wait()).await;
            },
        )
        .await
}
