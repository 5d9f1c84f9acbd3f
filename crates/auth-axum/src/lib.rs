//! # auth-axum
//!
//! axum extractors and a tower `Layer` over [`auth_core`]. The adapter itself
//! lands with its own issue; until then this crate re-exports the core so
//! that the workspace layout is final.

pub use auth_core;
