//! The demo and its framework-free twin, running: the direct server's
//! answers route by route, the three servers answering alike, and a real
//! browser keeping its anonymous session.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod alike;
mod browser;
mod direct;
mod ready;
