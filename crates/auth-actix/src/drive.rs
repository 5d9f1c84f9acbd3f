//! Steps off the worker thread: blocking sends on `web::block`, async sends
//! as tasks (both finish even if the request is dropped), waits for another
//! request's provider call under a timeout.

use std::future::Future;

use actix_web::rt::time::timeout;
use actix_web::web;
use auth_core::step::{BlockingSend, MAX_WAIT, ResponseFuture, Runtime, TransportError, Waiter};

/// actix-web's runtime, as the one `Pending::drive` runs steps on.
pub(crate) struct Actix;

fn failed<T>(_: T) -> Result<http::Response<Vec<u8>>, TransportError> {
    Err(TransportError::Other("the transport task failed".into()))
}

impl Runtime for Actix {
    fn run_blocking(
        &self,
        job: BlockingSend,
    ) -> impl Future<Output = Result<http::Response<Vec<u8>>, TransportError>> + Send {
        let task = web::block(move || job.run());
        async move { task.await.unwrap_or_else(failed) }
    }

    fn spawn(
        &self,
        send: ResponseFuture,
    ) -> impl Future<Output = Result<http::Response<Vec<u8>>, TransportError>> + Send {
        let task = actix_web::rt::spawn(send);
        async move { task.await.unwrap_or_else(failed) }
    }

    async fn wait(&self, waiter: Waiter) {
        // On timeout the continuation sees no answer and says 503.
        let _ = timeout(MAX_WAIT, waiter.wait()).await;
    }
}
