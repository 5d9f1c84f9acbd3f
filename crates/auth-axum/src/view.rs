//! The core's request view over an `http` request or its parts, read in
//! place (nothing inserted, nothing copied per request).

use std::borrow::Cow;
use std::net::SocketAddr;
use std::ops::ControlFlow;

use auth_core::PeerAddr;
use auth_core::step::RequestView;
use http::Extensions;

/// What the view needs besides the core's own `RequestView` impls.
pub(crate) trait HasExtensions: RequestView {
    fn extensions(&self) -> &Extensions;
}

impl HasExtensions for http::request::Parts {
    fn extensions(&self) -> &Extensions {
        &self.extensions
    }
}

impl<B> HasExtensions for http::Request<B> {
    fn extensions(&self) -> &Extensions {
        http::Request::extensions(self)
    }
}

/// A borrowed [`RequestView`]: headers and method as the core reads them;
/// the peer address from `PeerAddr`, else from `ConnectInfo<SocketAddr>`
/// (feature `axum`); the route from `MatchedPath` (feature
/// `matched-path`).
pub(crate) struct View<'a, T>(pub(crate) &'a T);

impl<T: HasExtensions> RequestView for View<'_, T> {
    fn for_each_header<'a>(&'a self, name: &str, f: &mut dyn FnMut(&'a [u8]) -> ControlFlow<()>) {
        self.0.for_each_header(name, f);
    }

    fn peer_addr(&self) -> Option<SocketAddr> {
        let extensions = self.0.extensions();
        let own = extensions.get::<PeerAddr>().map(|p| p.0);
        #[cfg(feature = "axum")]
        let own = own.or_else(|| {
            extensions
                .get::<axum::extract::ConnectInfo<SocketAddr>>()
                .map(|c| c.0)
        });
        own
    }

    fn method(&self) -> &str {
        self.0.method()
    }

    fn route(&self) -> Option<Cow<'_, str>> {
        #[cfg(feature = "matched-path")]
        let route = (self.0.extensions())
            .get::<axum::extract::MatchedPath>()
            .map(|path| Cow::Borrowed(path.as_str()));
        #[cfg(not(feature = "matched-path"))]
        let route = None;
        route
    }
}
