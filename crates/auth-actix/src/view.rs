//! The core's request view over actix-web's own request: actix-web 4 uses
//! `http` 0.2 types, so its header map is read in place, never converted.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::ops::ControlFlow;

use actix_web::HttpRequest;
use auth_core::step::RequestView;

/// A borrowed [`RequestView`] of an actix-web request, to call the core's
/// backends and readers from your own handlers.
///
/// The peer address is the connection's (`HttpRequest::peer_addr`); trusted
/// proxies are the core's business (`IpBackend`), never actix's
/// `realip_remote_addr`, which believes the leftmost forwarded value.
#[derive(Clone, Copy, Debug)]
pub struct ActixView<'a>(pub &'a HttpRequest);

impl RequestView for ActixView<'_> {
    fn for_each_header<'a>(&'a self, name: &str, f: &mut dyn FnMut(&'a [u8]) -> ControlFlow<()>) {
        for value in self.0.headers().get_all(name) {
            if f(value.as_bytes()).is_break() {
                return;
            }
        }
    }

    fn peer_addr(&self) -> Option<SocketAddr> {
        self.0.peer_addr()
    }

    fn method(&self) -> &str {
        self.0.method().as_str()
    }

    /// The matched resource's pattern (`/users/{id}`): actix-web matches
    /// it anew on each call, so the core calls this only to write a log
    /// line.
    fn route(&self) -> Option<Cow<'_, str>> {
        self.0.match_pattern().map(Cow::Owned)
    }
}
