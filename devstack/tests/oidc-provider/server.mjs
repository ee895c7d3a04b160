// An OpenID provider for devstack's tests: npm's oidc-provider (OpenID-certified, and
// independent of Dex and of the project's own in-test issuer), mounted under /dex like
// Dex, with the device flow, refresh tokens and RS256 ID tokens.
//
//   node server.mjs PORT ACCOUNTS.json
//
// ACCOUNTS.json: [{ "email": ..., "groups": [...] }]. The sign-in pages are the
// provider's development interactions: any password is taken for a listed email, an
// unlisted one is refused. Env DEVICE_CODE_TTL (seconds, default 600) shortens a device
// code's life. Prints "listening <issuer>" once it serves.
import { createServer } from 'node:http';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const [port, accountsFile] = process.argv.slice(2);
if (!port || !accountsFile) {
  console.error('usage: node server.mjs PORT ACCOUNTS.json');
  process.exit(2);
}
const accounts = JSON.parse(readFileSync(accountsFile, 'utf8'));
const mount = '/dex';
const issuer = `http://127.0.0.1:${port}${mount}`;
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const key = { ...privateKey.export({ format: 'jwk' }), kid: 'rs256-test', alg: 'RS256', use: 'sig' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'prism-cli',
    client_name: 'Prism command-line tools',
    token_endpoint_auth_method: 'none',
    grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
    response_types: [],
    redirect_uris: [],
  }],
  jwks: { keys: [key] },
  features: { deviceFlow: { enabled: true }, devInteractions: { enabled: true } },
  scopes: ['openid', 'offline_access', 'email', 'groups'],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], groups: ['groups'] },
  // The claims of the granted scopes in the ID token itself, as Dex puts them.
  conformIdTokenClaims: false,
  ttl: { DeviceCode: Number(process.env.DEVICE_CODE_TTL ?? 600), IdToken: 3600, RefreshToken: 86400 },
  async findAccount(ctx, id) {
    const account = accounts.find((a) => a.email === id);
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: account.email, email_verified: true, groups: account.groups };
      },
    };
  },
});

const callback = provider.callback();
createServer((req, res) => {
  if (!req.url.startsWith(mount)) {
    res.statusCode = 404;
    res.end();
    return;
  }
  // The provider works out its mount path from originalUrl minus url.
  req.originalUrl = req.url;
  req.url = req.url.slice(mount.length) || '/';
  callback(req, res);
}).listen(Number(port), '127.0.0.1', () => console.log(`listening ${issuer}`));
