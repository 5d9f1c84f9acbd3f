//! # auth-throttle
//!
//! How much may a caller do? Rate limits keyed by the identity an
//! [`auth_core`] policy found, with no IO of its own:
//!
//! - [`Rule`]s per route: a [`Quota`] (N requests per window, bursts up to
//!   N), the [`Callers`] it applies to (authenticated, anonymous, new
//!   anonymous sessions, IP identities, requests without identity), an
//!   optional scope and methods, counted by identity or by client address
//!   (trusted-proxy aware). A request is allowed only when every rule that
//!   applies allows it; a denied request consumes none of them.
//! - GCRA: one timestamp per (rule, caller), the same integer arithmetic in
//!   the in-process [`MemoryStore`] (bounded) and in Redis
//!   (`RedisStore`, feature `redis`: one round trip per request, Redis's
//!   clock, keyed hashes, a fallback when it is down).
//! - The decision is data ([`Checked`]): allow with headers to add, deny
//!   with a ready 429 ([`auth_core::Refusal`]: `Retry-After`, the IETF
//!   `RateLimit-Policy` and `RateLimit` fields, a problem+json body), or a
//!   store step to run first. As a gate's [`Limiter`](auth_core::step::Limiter)
//!   (`AuthLayer::new(policy).throttle(t)`), the adapters render it.
//!
//! ```
//! use auth_throttle::{Callers, MemoryStore, Quota, Rule, Throttle};
//! use std::time::Duration;
//!
//! let ten_seconds = Duration::from_secs(10);
//! let throttle = Throttle::builder(MemoryStore::default())
//!     .rule(Rule::new("members", Quota::new(5, ten_seconds)?)?.callers(Callers::AUTHENTICATED))
//!     .rule(Rule::new("visitors", Quota::new(3, ten_seconds)?)?.callers(Callers::ANONYMOUS))
//!     .rule(Rule::new("visitors-ip", Quota::new(20, ten_seconds)?)?.callers(Callers::ANONYMOUS).by_client_ip())
//!     .build()?;
//! # drop(throttle);
//! # Ok::<(), auth_throttle::ThrottleError>(())
//! ```

mod answer;
mod budget;
mod error;
mod gcra;
mod key;
mod memory;
pub mod metrics;
mod probe;
#[cfg(feature = "redis")]
mod redis;
mod rule;
mod store;
mod throttle;

pub use budget::FailureBudget;
pub use error::{StoreError, ThrottleError};
pub use gcra::Cell;
pub use key::{CallerKey, MIN_KEY_SECRET_LEN};
pub use memory::MemoryStore;
#[cfg(feature = "redis")]
pub use redis::{RedisStore, RedisStoreBuilder};
pub use rule::{Callers, Quota, Rule};
pub use store::{Batch, Counter, PingFuture, Reply, SharedStore, Store, StoreFuture};
pub use throttle::{Checked, Fallback, StoreStep, Throttle, ThrottleBuilder, Throttled};
