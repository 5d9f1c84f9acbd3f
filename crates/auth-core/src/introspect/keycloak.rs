//! The Keycloak preset: its introspection endpoint, and its role claims on
//! [`AuthData`].

use serde_json::Value;

use super::{IntrospectionBackend, IntrospectionBuilder};
use crate::data::AuthData;

/// Keycloak's token introspection, preset.
///
/// ```
/// use auth_core::introspect::keycloak::KeycloakBackend;
///
/// let url = KeycloakBackend::endpoint("https://sso.example/", "acme", false);
/// assert_eq!(url, "https://sso.example/realms/acme/protocol/openid-connect/token/introspect");
/// let legacy = KeycloakBackend::endpoint("https://sso.example", "acme", true);
/// assert_eq!(legacy, "https://sso.example/auth/realms/acme/protocol/openid-connect/token/introspect");
///
/// let backend = KeycloakBackend::builder("https://sso.example", "acme", "api", "s3cret").build()?;
/// # drop(backend);
/// # Ok::<(), auth_core::ConfigError>(())
/// ```
#[derive(Debug)]
pub struct KeycloakBackend;

impl KeycloakBackend {
    /// `{server_url}/realms/{realm}/protocol/openid-connect/token/introspect`,
    /// with the `/auth` prefix of Keycloak before version 17 when `legacy`.
    pub fn endpoint(server_url: &str, realm: &str, legacy: bool) -> String {
        let prefix = if legacy { "/auth" } else { "" };
        let realm = form_urlencoded::byte_serialize(realm.as_bytes()).collect::<String>();
        format!(
            "{}{prefix}/realms/{realm}/protocol/openid-connect/token/introspect",
            server_url.trim_end_matches('/')
        )
    }

    /// An [`IntrospectionBackend`] builder for a Keycloak realm (identifier
    /// `sub`, `client_secret_basic`); adjust it like any other.
    pub fn builder(
        server_url: &str,
        realm: &str,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> IntrospectionBuilder {
        IntrospectionBackend::builder(
            Self::endpoint(server_url, realm, false),
            client_id,
            client_secret,
        )
    }

    /// The same for a Keycloak older than 17 (`/auth` prefix).
    pub fn legacy_builder(
        server_url: &str,
        realm: &str,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> IntrospectionBuilder {
        IntrospectionBackend::builder(
            Self::endpoint(server_url, realm, true),
            client_id,
            client_secret,
        )
    }
}

fn roles(value: Option<&Value>) -> impl Iterator<Item = &str> {
    value
        .and_then(|v| v.get("roles"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// Keycloak role claims.
impl AuthData {
    /// Realm roles: `realm_access.roles`.
    pub fn realm_roles(&self) -> impl Iterator<Item = &str> {
        roles(self.get("realm_access"))
    }

    /// Roles for one client: `resource_access.<client>.roles`.
    pub fn client_roles<'a>(&'a self, client: &str) -> impl Iterator<Item = &'a str> {
        roles(self.get("resource_access").and_then(|r| r.get(client)))
    }

    /// Whether the realm role `role` was granted.
    pub fn has_realm_role(&self, role: &str) -> bool {
        self.realm_roles().any(|r| r == role)
    }

    /// Whether `client`'s role `role` was granted.
    pub fn has_client_role(&self, client: &str, role: &str) -> bool {
        self.client_roles(client).any(|r| r == role)
    }
}
