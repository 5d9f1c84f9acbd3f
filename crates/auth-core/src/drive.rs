//! Driving a pending decision: the one loop, over a [`Runtime`] (the
//! adapters' tokio and actix, or the blocking one of
//! [`Pending::drive_blocking`](crate::Pending::drive_blocking)).

use std::future::{Future, ready};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, SystemTime};

use crate::backend::Outcome;
use crate::decision::Decision;
use crate::error::{AuthError, TransportError};
use crate::flight::Waiter;
use crate::gate::{Gate, Gated, Pending, Stage};
use crate::request::RequestView;
use crate::step::{Action, Effect};
use crate::transport::{ResponseFuture, Transport};

/// Most network steps authentication may take in one decision before the
/// driver gives up (a backend that keeps asking is a bug, not a reason to
/// loop forever): the decision is then a 503. The limiter's stages
/// (before and after authentication, a refused credential's charge) run
/// once each and do not count.
pub const MAX_STEPS: usize = 8;

/// Longest a driver waits for another request's provider call (that call
/// has its own transport timeout; this is a backstop).
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// How a driver runs a pending decision's steps on its runtime: what the
/// framework adapters implement (tokio, actix), and what your own async
/// server implements to use [`Pending::drive`](crate::Pending::drive).
pub trait Runtime {
    /// Runs `job` where blocking is allowed (a blocking pool). It must run
    /// to completion even if the returned future is dropped (a cancelled
    /// request): the job applies what other requests rely on.
    fn run_blocking(
        &self,
        job: BlockingSend,
    ) -> impl Future<Output = Result<http::Response<Vec<u8>>, TransportError>> + Send;

    /// Runs `send` to completion even if the returned future is dropped (a
    /// spawned task), for the same reason.
    fn spawn(
        &self,
        send: ResponseFuture,
    ) -> impl Future<Output = Result<http::Response<Vec<u8>>, TransportError>> + Send;

    /// Waits for another request's provider call ([`Waiter::wait`]), at
    /// most [`MAX_WAIT`].
    fn wait(&self, waiter: Waiter) -> impl Future<Output = ()> + Send;
}

/// One request to send on a blocking thread, with the effect to apply to
/// its response there: what [`Runtime::run_blocking`] runs.
pub struct BlockingSend {
    transport: Arc<dyn Transport>,
    request: http::Request<Vec<u8>>,
    effect: Option<Effect>,
}

impl BlockingSend {
    /// Sends the request, blocking the calling thread, and applies the
    /// step's effect to the response.
    ///
    /// # Errors
    /// The transport's.
    pub fn run(self) -> Result<http::Response<Vec<u8>>, TransportError> {
        let response = self.transport.send(self.request);
        if let Some(effect) = self.effect {
            effect.apply(&response, SystemTime::now());
        }
        response
    }
}

impl std::fmt::Debug for BlockingSend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingSend")
            .field("uri", &self.request.uri().path())
            .finish_non_exhaustive()
    }
}

/// The loop: each stage's step, on `runtime`, until a decision. Sends use
/// the policy's async transport when `async_sends` and it has one, else its
/// blocking transport.
pub(crate) async fn drive<R: RequestView>(
    gate: Gate,
    mut stage: Stage,
    req: &R,
    runtime: &impl Runtime,
    async_sends: bool,
) -> Decision {
    let mut steps = 0;
    loop {
        let next = match stage {
            Stage::Admit(future) => {
                let limited = future.await;
                gate.admitted(limited, req, SystemTime::now())
            }
            Stage::Limit {
                future,
                verdict,
                additions,
            } => {
                let limited = future.await;
                gate.limited(limited, verdict, additions)
            }
            Stage::Charge { future, refusal } => {
                future.await;
                return Decision::Refuse(refusal);
            }
            Stage::Auth { step, additions } => {
                steps += 1;
                if steps > MAX_STEPS {
                    return gate.refuse_error(AuthError::provider_unavailable("too many steps"));
                }
                let (action, mut resume) = step.into_parts();
                let outcome = match action {
                    Action::Send(request) => {
                        let effect = resume.take_effect();
                        let response = send(&gate, request, effect, runtime, async_sends).await;
                        if let Err(e) = &response {
                            tracing::debug!(error = %e, "authentication network step failed");
                        }
                        resume.resume(response, req, SystemTime::now())
                    }
                    Action::Wait(waiter) => {
                        runtime.wait(waiter).await;
                        resume.woken(req, SystemTime::now())
                    }
                };
                match outcome {
                    Outcome::Done(result) => {
                        gate.authenticated(result, req, SystemTime::now(), additions)
                    }
                    Outcome::Send(step) => {
                        Gated::Pending(Pending::new(gate.clone(), Stage::Auth { step, additions }))
                    }
                }
            }
        };
        match next {
            Gated::Done(decision) => return decision,
            Gated::Pending(pending) => stage = pending.into_stage(),
        }
    }
}

/// Sends one request of a network step, applying its effect where the
/// response arrives.
async fn send(
    gate: &Gate,
    request: http::Request<Vec<u8>>,
    effect: Option<Effect>,
    runtime: &impl Runtime,
    async_sends: bool,
) -> Result<http::Response<Vec<u8>>, TransportError> {
    // A network step comes from the policy's backend.
    let Some(policy) = gate.policy() else {
        return Err(TransportError::Other("no policy to send with".into()));
    };
    match policy.async_transport_ref().filter(|_| async_sends) {
        Some(transport) => {
            let send = transport.send(request);
            runtime
                .spawn(Box::pin(async move {
                    let response = send.await;
                    if let Some(effect) = effect {
                        effect.apply(&response, SystemTime::now());
                    }
                    response
                }))
                .await
        }
        None => {
            runtime
                .run_blocking(BlockingSend {
                    transport: Arc::clone(policy.blocking_transport()),
                    request,
                    effect,
                })
                .await
        }
    }
}

/// The calling thread as the runtime: sends and waits block it.
struct Blocking;

impl Runtime for Blocking {
    fn run_blocking(
        &self,
        job: BlockingSend,
    ) -> impl Future<Output = Result<http::Response<Vec<u8>>, TransportError>> + Send {
        ready(job.run())
    }

    fn spawn(
        &self,
        send: ResponseFuture,
    ) -> impl Future<Output = Result<http::Response<Vec<u8>>, TransportError>> + Send {
        ready(block_on(send))
    }

    fn wait(&self, waiter: Waiter) -> impl Future<Output = ()> + Send {
        waiter.wait_blocking(MAX_WAIT);
        ready(())
    }
}

/// The loop on the calling thread.
pub(crate) fn drive_blocking(gate: Gate, stage: Stage, req: &dyn RequestView) -> Decision {
    block_on(drive(gate, stage, &req, &Blocking, false))
}

/// Wakes a thread parked in [`block_on`].
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `future` to its end on the calling thread, parking it while the
/// future waits (a limiter's store round trip; the blocking runtime's own
/// steps are ready at once).
fn block_on<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_on_waits_for_a_wake_from_another_thread() {
        let (tx, rx) = std::sync::mpsc::channel::<Waker>();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&done);
        let waker_thread = thread::spawn(move || {
            if let Ok(waker) = rx.recv() {
                thread::sleep(Duration::from_millis(20));
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
                waker.wake();
            }
        });
        let mut sent = false;
        let seen = block_on(std::future::poll_fn(|cx| {
            if done.load(std::sync::atomic::Ordering::SeqCst) {
                return Poll::Ready(7);
            }
            if !sent {
                sent = tx.send(cx.waker().clone()).is_ok();
            }
            Poll::Pending
        }));
        assert_eq!(seen, 7);
        assert!(waker_thread.join().is_ok());
    }
}
