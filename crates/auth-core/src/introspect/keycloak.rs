//! The Keycloak preset: its introspection endpoint
//! ([`IntrospectionBackend::keycloak`]). Its role claims are read with
//! [`AuthData::realm_roles`](crate::AuthData::realm_roles) and
//! [`AuthData::client_roles`](crate::AuthData::client_roles).

use super::{IntrospectionBackend, IntrospectionBuilder};

/// Keycloak's introspection endpoint for `realm`:
/// `{server_url}/realms/{realm}/protocol/openid-connect/token/introspect`,
/// with the `/auth` prefix of Keycloak before version 17 when `legacy`.
pub(crate) fn endpoint(server_url: &str, realm: &str, legacy: bool) -> String {
    let prefix = if legacy { "/auth" } else { "" };
    let realm = form_urlencoded::byte_serialize(realm.as_bytes()).collect::<String>();
    format!(
        "{}{prefix}/realms/{realm}/protocol/openid-connect/token/introspect",
        server_url.trim_end_matches('/')
    )
}

impl IntrospectionBackend {
    /// A builder preset for a Keycloak realm's introspection endpoint,
    /// `{server_url}/realms/{realm}/protocol/openid-connect/token/introspect`
    /// (identifier `sub`, `client_secret_basic`); adjust it like any other.
    ///
    /// ```
    /// use auth_core::IntrospectionBackend;
    ///
    /// let backend = IntrospectionBackend::keycloak("https://sso.example", "acme", "api", "s3cret").build()?;
    /// # drop(backend);
    /// # Ok::<(), auth_core::ConfigError>(())
    /// ```
    pub fn keycloak(
        server_url: &str,
        realm: &str,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> IntrospectionBuilder {
        IntrospectionBackend::builder(endpoint(server_url, realm, false), client_id, client_secret)
    }

    /// The same for a Keycloak older than 17 (`/auth` prefix).
    pub fn keycloak_legacy(
        server_url: &str,
        realm: &str,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> IntrospectionBuilder {
        IntrospectionBackend::builder(endpoint(server_url, realm, true), client_id, client_secret)
    }
}

#[cfg(test)]
mod tests {
    use super::endpoint;

    #[test]
    fn endpoints_with_and_without_the_legacy_prefix() {
        assert_eq!(
            endpoint("https://sso.example/", "acme", false),
            "https://sso.example/realms/acme/protocol/openid-connect/token/introspect"
        );
        assert_eq!(
            endpoint("https://sso.example", "acme", true),
            "https://sso.example/auth/realms/acme/protocol/openid-connect/token/introspect"
        );
        assert_eq!(
            endpoint("https://sso.example", "a/b c", false),
            "https://sso.example/realms/a%2Fb+c/protocol/openid-connect/token/introspect"
        );
    }
}
