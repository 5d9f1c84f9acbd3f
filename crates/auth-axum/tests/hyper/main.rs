//! `AuthLayer` without axum's router: around a plain hyper service over real
//! TCP (CI also runs this without the `axum` feature), and with
//! auth-core's `HyperTransport` for its network steps.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod service;
mod transport;
