//! [`AxumView`]: the core's request view over axum's request parts, with
//! the peer address read from `ConnectInfo` in place (nothing inserted,
//! nothing copied per request).

use std::net::SocketAddr;
use std::ops::ControlFlow;

use auth_core::request::{PeerAddr, RequestView};
use axum::extract::ConnectInfo;
use http::request::Parts;

/// A borrowed [`RequestView`] of axum's `Parts`: headers from the header
/// map; the peer address from a [`PeerAddr`] extension if you set one,
/// else from axum's `ConnectInfo<SocketAddr>`.
#[derive(Clone, Copy, Debug)]
pub struct AxumView<'a>(pub &'a Parts);

impl RequestView for AxumView<'_> {
    fn for_each_header<'a>(&'a self, name: &str, f: &mut dyn FnMut(&'a [u8]) -> ControlFlow<()>) {
        self.0.for_each_header(name, f);
    }

    fn peer_addr(&self) -> Option<SocketAddr> {
        let extensions = &self.0.extensions;
        extensions
            .get::<PeerAddr>()
            .map(|p| p.0)
            .or_else(|| extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0))
    }
}
