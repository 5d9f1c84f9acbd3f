// A real OpenID provider for the end-to-end tests: oidc-provider on
// 127.0.0.1 with a random port. Prints `ISSUER=<url>` once it serves.
//
// - Client `auth-tests` / `auth-tests-secret` (client_secret_basic) and
//   `auth-tests-post` / `auth-tests-post-secret` (client_secret_post), both
//   with the client_credentials grant.
// - Resource `urn:opaque`: opaque access tokens (introspection only works on
//   these in oidc-provider). Resource `urn:jwt`: RS256 `at+jwt` tokens
//   (RFC 9068), verified through discovery + JWKS.
// - Introspection and revocation enabled.
import http from 'node:http';
import { generateKeyPair, exportJWK } from 'jose';
import Provider from 'oidc-provider';

const { privateKey } = await generateKeyPair('RS256', { extractable: true });
const signing = { ...(await exportJWK(privateKey)), kid: 'test-rs256', alg: 'RS256', use: 'sig' };

const resources = {
  'urn:opaque': { scope: 'read write', audience: 'urn:opaque', accessTokenFormat: 'opaque' },
  'urn:jwt': {
    scope: 'read write admin',
    audience: 'urn:jwt',
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'RS256' } },
  },
};

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'auth-tests',
      client_secret: 'auth-tests-secret',
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_basic',
    },
    {
      client_id: 'auth-tests-post',
      client_secret: 'auth-tests-post-secret',
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_post',
    },
  ],
  jwks: { keys: [signing] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => 'urn:opaque',
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resourceIndicator) => {
        const info = resources[resourceIndicator];
        if (!info) throw new Provider.errors.InvalidTarget();
        return info;
      },
    },
  },
  ttl: { ClientCredentials: 600 },
});
provider.on('server_error', (ctx, err) => console.error('server_error', err));

server.on('request', provider.callback());
console.log(`ISSUER=${issuer}`);

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
