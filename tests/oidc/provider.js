// A real OpenID Provider on loopback for the console's single sign-on tests (node's oidc-provider,
// OpenID-certified), with its own login and consent pages (the library's built-in interactions,
// which accept any password: the accounts are what the test controls).
//
//   node provider.js --port 0 --accounts accounts.json --redirect-uri http://localhost:8000/oidc/callback/
//
// accounts.json: {"<login>": {"email": "...", "name": "...", "groups": ["..."]}}; it is read again at
// every sign-in, so a test changes someone's groups by rewriting it. One static confidential client:
// snowbuddy-console / the secret below (or --client-secret). Prints "listening <issuer>" when ready.
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '0' },
    accounts: { type: 'string' },
    'redirect-uri': { type: 'string', multiple: true, default: [] },
    'client-id': { type: 'string', default: 'snowbuddy-console' },
    'client-secret': { type: 'string', default: 'snowbuddy-console-test-secret' },
  },
});

if (!args.accounts || args['redirect-uri'].length === 0) {
  console.error('usage: node provider.js --port N --accounts FILE --redirect-uri URL [--redirect-uri URL]');
  process.exit(2);
}

function accounts() {
  return JSON.parse(readFileSync(args.accounts, 'utf8'));
}

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });

const configuration = {
  clients: [
    {
      client_id: args['client-id'],
      client_secret: args['client-secret'],
      redirect_uris: args['redirect-uri'],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_post',
    },
  ],
  pkce: { required: () => true },
  scopes: ['openid', 'email', 'profile', 'groups'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  async findAccount(ctx, id) {
    const account = accounts()[id];
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        const current = accounts()[id] || {};
        return {
          sub: id,
          email: current.email,
          email_verified: true,
          name: current.name,
          groups: current.groups || [],
        };
      },
    };
  },
  features: { devInteractions: { enabled: true } },
  jwks: { keys: [{ ...privateKey.export({ format: 'jwk' }), kid: 'test-key', use: 'sig', alg: 'RS256' }] },
  cookies: { keys: ['snowbuddy-test-provider-cookie-key'] },
  ttl: { Session: 3600, Interaction: 600, Grant: 3600, AccessToken: 600, AuthorizationCode: 60, IdToken: 600 },
};

const server = (await import('node:http')).createServer();
server.listen(Number(args.port), args.host, () => {
  const { port } = server.address();
  const issuer = `http://${args.host}:${port}`;
  const provider = new Provider(issuer, configuration);
  // The library's warnings about its development interactions are expected here.
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  server.on('request', provider.callback());
  console.log(`listening ${issuer}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
