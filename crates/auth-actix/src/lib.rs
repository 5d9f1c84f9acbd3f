//! # auth-actix
//!
//! actix-web middleware and `FromRequest` extractors over [`auth_core`]. The
//! adapter itself lands with its own issue; until then this crate re-exports
//! the core so that the workspace layout is final.

pub use auth_core;
