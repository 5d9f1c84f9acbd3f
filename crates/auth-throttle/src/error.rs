//! [`ThrottleError`] (a throttle that cannot be built) and [`StoreError`]
//! (a shared store that did not answer).

/// Why a rule or throttle could not be built. Returned at construction,
/// never at request time.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ThrottleError {
    /// An invalid setting, named.
    #[error("invalid {name}: {reason}")]
    Invalid {
        /// The setting.
        name: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// The shared store could not be set up (a bad Redis URL).
    #[error("store: {0}")]
    Store(String),
}

/// Why a shared store gave no answer: the throttle then applies its
/// [fallback](crate::Fallback), never a 500.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No answer within the store's timeout.
    #[error("the store did not answer in time")]
    Timeout,
    /// The connection failed or was refused.
    #[error("the store is unreachable: {0}")]
    Unavailable(String),
    /// An answer that is not what the script returns.
    #[error("the store answered something unexpected")]
    Unexpected,
    /// The store refused the call for a reason waiting will not mend (a
    /// key of another type, out of memory, a script or command refused):
    /// logged as a configuration error, with no backoff, since other
    /// callers' calls may still succeed. Names the error's code, never a
    /// key.
    #[error("the store refused the call ({0}): a configuration error")]
    Refused(String),
    /// Not asked: it failed moments ago, and the store waits out its
    /// backoff before it asks again.
    #[error("the store failed moments ago; not asked until its backoff ends")]
    Backoff,
}
