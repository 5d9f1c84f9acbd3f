//! Steps on tokio without blocking the executor: blocking sends on the
//! blocking pool, async sends as tasks (both finish even if the request is
//! dropped), waits for another request's provider call under a timeout.

use std::future::Future;

use auth_core::step::{BlockingSend, MAX_WAIT, ResponseFuture, Runtime, TransportError, Waiter};

/// Tokio, as the runtime `Pending::drive` runs steps on.
pub(crate) struct Tokio;

fn failed<T>(_: T) -> Result<http::Response<Vec<u8>>, TransportError> {
    Err(TransportError::Other("the transport task failed".into()))
}

impl Runtime for Tokio {
    fn run_blocking(
        &self,
        job: BlockingSend,
    ) -> impl Future<Output = Result<http::Response<Vec<u8>>, TransportError>> + Send {
        let task = tokio::task::spawn_blocking(move || job.run());
        async move { task.await.unwrap_or_else(failed) }
    }

    fn spawn(
        &self,
        send: ResponseFuture,
    ) -> impl Future<Output = Result<http::Response<Vec<u8>>, TransportError>> + Send {
        let task = tokio::spawn(send);
        async move { task.await.unwrap_or_else(failed) }
    }

    async fn wait(&self, waiter: Waiter) {
        // On timeout the continuation sees no answer and says 503.
        let _ = tokio::time::timeout(MAX_WAIT, waiter.wait()).await;
    }
}
