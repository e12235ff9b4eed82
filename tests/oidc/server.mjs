#!/usr/bin/env node
// Test-only OpenID provider for witness's OIDC tests (DESIGN §9, issue 29).
//
// A real, certified OpenID provider (`oidc-provider`, pinned in package.json)
// with fixed clients and users, on 127.0.0.1. NEVER use it for anything but
// tests: it has hard-coded secrets and passwords, and an unauthenticated
// admin API (`/__test/*`) that re-keys the provider and signs arbitrary
// claims with its private keys. It binds to loopback only and the admin API
// refuses any non-loopback peer.
//
// Start:   node tests/oidc/server.mjs [flags]
// Prints exactly one line on stdout once it is listening, then nothing else:
//   {"issuer":"http://127.0.0.1:PORT","admin":"http://127.0.0.1:PORT/__test"}
// Everything else (oidc-provider's notices, errors) goes to stderr.
// SIGTERM or SIGINT: exits 0.
//
// Flags (each has an environment variable; a flag wins over the variable):
//   --redirect-uri URL        repeatable; redirect URIs of the console client
//                             `witness-console`. Env OIDC_TEST_REDIRECT_URIS
//                             (space- or comma-separated). Default
//                             http://127.0.0.1:8080/auth/callback. Can be
//                             changed later: POST /__test/redirect-uris.
//   --port N                  port on 127.0.0.1 (default 0 = a free one).
//                             Env OIDC_TEST_PORT.
//   --password PW             the password of every user (default
//                             `test-password`). Env OIDC_TEST_PASSWORD.
//   --audience AUD            `aud` of JWT access tokens for the resources
//                             urn:witness* (default `witness`).
//                             Env OIDC_TEST_AUDIENCE.
//   --id-token-ttl S          ID token lifetime in seconds (default 3600).
//                             Env OIDC_TEST_ID_TOKEN_TTL.
//   --access-token-ttl S      access token lifetime in seconds, for users and
//                             machines (default 600). Env OIDC_TEST_ACCESS_TOKEN_TTL.
//   --always-login            every authorization request shows the login page,
//                             even with a provider session (no single sign-on),
//                             so one browser can sign in as alice, then bob.
//                             Env OIDC_TEST_ALWAYS_LOGIN=1. Default: sessions
//                             are remembered, like a real provider.
//   --user SPEC               repeatable; adds or replaces a user.
//                             SPEC = `login:group1,group2` (email
//                             login@example.com) or JSON
//                             `{"login":..,"email":..,"name":..,"groups":[..]}`.
//                             Env OIDC_TEST_USERS (specs separated by `;`).
//   --machine-client SPEC     repeatable; adds or replaces a client_credentials
//                             client. SPEC = `id:secret:group1,group2` or JSON
//                             `{"id":..,"secret":..,"groups":[..],"email":..,
//                               "claims":{..extra token claims..}}`.
//                             Env OIDC_TEST_MACHINE_CLIENTS (separated by `;`).
//
// Clients:
//   witness-console / witness-console-secret: authorization_code (+refresh_token),
//     response_type code, PKCE S256 required, client_secret_basic (client_secret_post
//     is accepted too), ID tokens RS256.
//   ci-bot / ci-bot-secret: client_credentials; JWT access tokens for the
//     resource `urn:witness` (the default when no `resource` is sent), aud
//     `witness`, claims `groups` ["deployers"] and `email` ci-bot@example.com.
//     (A resource indicator must be an absolute URI, so plain `witness` is
//     refused by oidc-provider; `urn:witness` is the name.)
//   Resources: urn:witness (RS256), urn:witness:es256 (ES256),
//     urn:witness:eddsa (EdDSA) all with aud `witness`; urn:other with aud
//     `other` (a real token with the wrong audience).
//
// Users (login page at /interaction/UID: fields `login` and `password`):
//   alice, bob (sre-team), carol (dba-team), mallory (no groups); all with
//   the --password. Unknown logins and wrong passwords get the form again
//   with HTTP 401. No consent page: every requested scope is granted. ID
//   tokens carry sub, email, email_verified, name, preferred_username, groups
//   (per granted scope) and nonce; aud is the client_id. A person whose
//   authorization request has resource=urn:witness also gets a JWT access
//   token with aud `witness`, email and groups.
//
// Admin API under /__test (TEST ONLY, LOOPBACK ONLY, NO AUTHENTICATION):
//   GET  /__test/health               {"ok":true,"issuer":..,"kids":{alg:[current,..older]}}
//   POST /__test/rotate               {"alg"?:"RS256","drop_old"?:bool,"grace_seconds"?:N}
//                                     -> {"kid":NEW,"published":[kids of that alg]}
//   POST /__test/sign                 {"claims"?,"alg"?,"kid"?,"header"?,"sign_with_kid"?,"tamper"?}
//                                     -> {"token":..}   (see signForTest below)
//   GET  /__test/public-pem?kid=K     SPKI PEM of a published public key (text/plain)
//   POST /__test/redirect-uris        {"redirect_uris":[..]} -> {"redirect_uris":[..]}
// Rotation and redirect-URI changes rebuild the oidc-provider instance behind
// the same listener and issuer. Its state (sessions, grants, codes, tokens)
// lives in one oidc-provider in-memory store that every instance shares, and
// the cookie keys are kept, so sessions, codes and tokens SURVIVE a rebuild.

import http from 'node:http';
import crypto from 'node:crypto';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';
// oidc-provider's own in-memory adapter; one store shared by every Provider
// instance this process builds, so a rebuild (rotation) keeps all state.
import { createMemoryAdapter } from 'oidc-provider/lib/adapters/memory_adapter.js';
import * as jose from 'jose';

// oidc-provider prints notices with console.info (stdout); stdout is reserved
// for the one JSON line.
console.info = console.error;
console.log = console.error;

// ---------------------------------------------------------------- options

function envList(name, sep = /[\s,]+/) {
  const v = process.env[name];
  return v ? v.split(sep).map((s) => s.trim()).filter(Boolean) : [];
}

const { values: flags } = parseArgs({
  options: {
    'redirect-uri': { type: 'string', multiple: true },
    port: { type: 'string' },
    password: { type: 'string' },
    audience: { type: 'string' },
    'id-token-ttl': { type: 'string' },
    'access-token-ttl': { type: 'string' },
    user: { type: 'string', multiple: true },
    'machine-client': { type: 'string', multiple: true },
    'always-login': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  },
  strict: true,
});

if (flags.help) {
  process.stderr.write('see the header comment of tests/oidc/server.mjs\n');
  process.exit(0);
}

function intOption(flag, env, dflt) {
  const raw = flags[flag] ?? process.env[env];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) {
    process.stderr.write(`--${flag}: not a non-negative integer: ${raw}\n`);
    process.exit(2);
  }
  return n;
}

const PORT = intOption('port', 'OIDC_TEST_PORT', 0);
const PASSWORD = flags.password ?? process.env.OIDC_TEST_PASSWORD ?? 'test-password';
const AUDIENCE = flags.audience ?? process.env.OIDC_TEST_AUDIENCE ?? 'witness';
const ID_TOKEN_TTL = intOption('id-token-ttl', 'OIDC_TEST_ID_TOKEN_TTL', 3600);
const ACCESS_TOKEN_TTL = intOption('access-token-ttl', 'OIDC_TEST_ACCESS_TOKEN_TTL', 600);
const ALWAYS_LOGIN = flags['always-login'] ?? ['1', 'true', 'yes'].includes(process.env.OIDC_TEST_ALWAYS_LOGIN ?? '');

let redirectUris = flags['redirect-uri'] ?? envList('OIDC_TEST_REDIRECT_URIS');
if (redirectUris.length === 0) redirectUris = ['http://127.0.0.1:8080/auth/callback'];

const USERS = new Map();
function addUser(spec) {
  let u;
  if (spec.trim().startsWith('{')) {
    u = JSON.parse(spec);
  } else {
    const i = spec.indexOf(':');
    const login = i < 0 ? spec : spec.slice(0, i);
    const groups = i < 0 ? [] : spec.slice(i + 1).split(',').filter(Boolean);
    u = { login, groups };
  }
  if (!u.login) throw new Error(`user without login: ${spec}`);
  USERS.set(u.login, {
    login: u.login,
    email: u.email ?? `${u.login}@example.com`,
    name: u.name ?? u.login[0].toUpperCase() + u.login.slice(1),
    groups: u.groups ?? [],
  });
}
for (const spec of ['alice:sre-team', 'bob:sre-team', 'carol:dba-team', 'mallory:']) addUser(spec);
for (const spec of [...envList('OIDC_TEST_USERS', /;/), ...(flags.user ?? [])]) addUser(spec);

const MACHINES = new Map();
function addMachine(spec) {
  let m;
  if (spec.trim().startsWith('{')) {
    m = JSON.parse(spec);
  } else {
    const [id, secret, groups = ''] = spec.split(':');
    m = { id, secret, groups: groups.split(',').filter(Boolean) };
  }
  if (!m.id || !m.secret) throw new Error(`machine client needs id and secret: ${spec}`);
  MACHINES.set(m.id, {
    id: m.id,
    secret: m.secret,
    groups: m.groups ?? [],
    email: m.email ?? `${m.id}@example.com`,
    claims: m.claims ?? {},
  });
}
addMachine('ci-bot:ci-bot-secret:deployers');
for (const spec of [...envList('OIDC_TEST_MACHINE_CLIENTS', /;/), ...(flags['machine-client'] ?? [])]) addMachine(spec);

const CONSOLE_CLIENT_ID = 'witness-console';
const CONSOLE_CLIENT_SECRET = 'witness-console-secret';

// ---------------------------------------------------------------- keys

// alg -> [{ kid, alg, privateKey (CryptoKey), privateJwk, publicJwk }], current first.
const KEYS = new Map();
const SIGNING_ALGS = ['RS256', 'ES256', 'EdDSA'];

async function newKey(alg) {
  const { privateKey, publicKey } = await jose.generateKeyPair(alg, { extractable: true });
  const privateJwk = await jose.exportJWK(privateKey);
  const publicJwk = await jose.exportJWK(publicKey);
  const kid = `${alg.toLowerCase()}-${crypto.randomBytes(6).toString('hex')}`;
  for (const jwk of [privateJwk, publicJwk]) Object.assign(jwk, { kid, alg, use: 'sig' });
  return { kid, alg, privateKey, publicKey, privateJwk, publicJwk };
}

function findKey(kid) {
  for (const list of KEYS.values()) {
    const k = list.find((x) => x.kid === kid);
    if (k) return k;
  }
  return undefined;
}

// Current keys of every alg first (oidc-provider signs with the first key
// that fits the alg), then the retired ones that are still published.
function providerJwks() {
  const current = [];
  const older = [];
  for (const list of KEYS.values()) {
    current.push(list[0].privateJwk);
    older.push(...list.slice(1).map((k) => k.privateJwk));
  }
  return { keys: [...current, ...older] };
}

// ---------------------------------------------------------------- provider

const COOKIE_KEYS = [crypto.randomBytes(32).toString('base64url')];
const ADAPTER = createMemoryAdapter(15); // 15 s = oidc-provider's default clockTolerance

const RESOURCES = {
  'urn:witness': { audience: () => AUDIENCE, alg: 'RS256' },
  'urn:witness:es256': { audience: () => AUDIENCE, alg: 'ES256' },
  'urn:witness:eddsa': { audience: () => AUDIENCE, alg: 'EdDSA' },
  'urn:other': { audience: () => 'other', alg: 'RS256' },
};

function account(login) {
  const u = USERS.get(login);
  if (!u) return undefined;
  return {
    accountId: u.login,
    // oidc-provider filters these by the granted scopes/claims.
    async claims() {
      return {
        sub: u.login,
        email: u.email,
        email_verified: true,
        name: u.name,
        preferred_username: u.login,
        groups: [...u.groups],
      };
    },
  };
}

function buildProvider(issuer) {
  const clients = [
    {
      client_id: CONSOLE_CLIENT_ID,
      client_secret: CONSOLE_CLIENT_SECRET,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: [...redirectUris],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'RS256',
      scope: 'openid email profile groups offline_access',
    },
    ...[...MACHINES.values()].map((m) => ({
      client_id: m.id,
      client_secret: m.secret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
    })),
  ];

  const provider = new Provider(issuer, {
    adapter: ADAPTER,
    clients,
    jwks: providerJwks(),
    cookies: {
      keys: COOKIE_KEYS,
      // Prefixed names: cookies are per host, not per port, so a browser
      // sends these to witness on 127.0.0.1 too; keep them apart from its own.
      names: { session: 'op_session', interaction: 'op_interaction', resume: 'op_interaction_resume' },
    },
    claims: {
      acr: null,
      sid: null,
      auth_time: null,
      iss: null,
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
      groups: ['groups'],
    },
    scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
    // Put the scope-granted claims (email, groups, ...) into the ID token even
    // though an access token is issued too: witness reads them from the ID token.
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    findAccount: async (_ctx, sub) => account(sub),
    // Auto-consent: every client here is first-party, so whatever it asks
    // for is granted without a consent page (one form submit signs in).
    async loadExistingGrant(ctx) {
      const { oidc } = ctx;
      const accountId = oidc.session.accountId;
      const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
      let grant = grantId ? await oidc.provider.Grant.find(grantId) : undefined;
      if (!grant || grant.accountId !== accountId || grant.clientId !== oidc.client.clientId) {
        grant = new oidc.provider.Grant({ accountId, clientId: oidc.client.clientId });
      }
      const scopes = [...oidc.requestParamOIDCScopes];
      if (scopes.length) grant.addOIDCScope(scopes.join(' '));
      const claims = [...oidc.requestParamClaims];
      if (claims.length) grant.addOIDCClaims(claims);
      for (const [indicator, rs] of Object.entries(oidc.resourceServers ?? {})) {
        if (rs.scope) grant.addResourceScope(indicator, rs.scope);
      }
      await grant.save();
      return grant;
    },
    async extraTokenClaims(_ctx, token) {
      if (token.kind === 'ClientCredentials') {
        const m = MACHINES.get(token.clientId);
        if (!m) return undefined;
        return { ...m.claims, email: m.email, groups: [...m.groups] };
      }
      if (token.accountId) {
        const u = USERS.get(token.accountId);
        if (!u) return undefined;
        return { email: u.email, groups: [...u.groups] };
      }
      return undefined;
    },
    features: {
      devInteractions: { enabled: false }, // our own login page below
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // A client_credentials request without `resource` is for witness.
        async defaultResource(ctx, _client, oneOf) {
          if (oneOf) return oneOf;
          if (ctx.oidc.params?.grant_type === 'client_credentials') return 'urn:witness';
          return undefined;
        },
        async getResourceServerInfo(_ctx, resourceIndicator) {
          const r = RESOURCES[resourceIndicator];
          if (!r) throw new errors.InvalidTarget();
          return {
            scope: 'witness',
            audience: r.audience(),
            accessTokenTTL: ACCESS_TOKEN_TTL,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: r.alg } },
          };
        },
        async useGrantedResource() {
          return true;
        },
      },
    },
    interactions: {
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    ttl: {
      AccessToken: ACCESS_TOKEN_TTL,
      ClientCredentials: ACCESS_TOKEN_TTL,
      AuthorizationCode: 60,
      IdToken: ID_TOKEN_TTL,
      RefreshToken: 24 * 3600,
      Interaction: 3600,
      Session: 24 * 3600,
      Grant: 24 * 3600,
    },
    renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = page('Error', `<pre id="error">${escapeHtml(JSON.stringify(out, null, 2))}</pre>`);
    },
  });
  provider.on('server_error', (_ctx, err) => console.error('oidc-provider server_error:', err));
  return provider;
}

// ---------------------------------------------------------------- HTML

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

function page(title, body) {
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>
<body><h1>${escapeHtml(title)}</h1>
${body}
</body></html>`;
}

function loginPage(uid, { login = '', error } = {}) {
  return page('Sign-in', `${error ? `<p id="error" role="alert">${escapeHtml(error)}</p>\n` : ''}<form id="login-form" autocomplete="off" action="/interaction/${escapeHtml(uid)}" method="post">
  <input type="hidden" name="prompt" value="login">
  <label>Login <input id="login" required type="text" name="login" value="${escapeHtml(login)}" autofocus></label>
  <label>Password <input id="password" required type="password" name="password"></label>
  <button id="submit" type="submit" class="login login-submit">Sign-in</button>
</form>
<p><a id="abort" href="/interaction/${escapeHtml(uid)}/abort">Cancel</a></p>`);
}

// ---------------------------------------------------------------- HTTP

const MAX_BODY = 64 * 1024;

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Error('body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function sendJson(res, status, value) {
  const body = `${JSON.stringify(value)}\n`;
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(body);
}

function sendHtml(res, status, html) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(html);
}

function isLoopback(addr = '') {
  return addr === '::1' || addr.startsWith('127.') || addr.startsWith('::ffff:127.');
}

// The interaction (login) routes: GET shows the form, POST checks it.
async function handleInteraction(provider, req, res, uid, rest) {
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (err) {
    sendHtml(res, 400, page('Error', `<p id="error">${escapeHtml(err.message)}</p>`));
    return;
  }
  if (details.uid !== uid) {
    sendHtml(res, 400, page('Error', '<p id="error">interaction mismatch</p>'));
    return;
  }
  const { prompt, params, session } = details;

  if (rest === '/abort' && req.method === 'GET') {
    await provider.interactionFinished(req, res, {
      error: 'access_denied',
      error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
    return;
  }
  if (rest !== '') {
    sendHtml(res, 404, page('Not found', ''));
    return;
  }

  if (prompt.name === 'consent') {
    // Normally loadExistingGrant grants everything; if a check still asks
    // for consent, grant what is missing without a page.
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const d = prompt.details;
    if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
    if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
    if (d.missingResourceScopes) {
      for (const [indicator, scopes] of Object.entries(d.missingResourceScopes)) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
    }
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    return;
  }

  if (prompt.name !== 'login') {
    sendHtml(res, 501, page('Error', `<p id="error">prompt ${escapeHtml(prompt.name)} not implemented</p>`));
    return;
  }

  if (req.method === 'GET') {
    sendHtml(res, 200, loginPage(uid, { login: params.login_hint ?? '' }));
    return;
  }
  if (req.method !== 'POST') {
    sendHtml(res, 405, page('Method not allowed', ''));
    return;
  }
  const form = new URLSearchParams(await readBody(req));
  const login = form.get('login') ?? '';
  const password = form.get('password') ?? '';
  if (!USERS.has(login) || password !== PASSWORD) {
    sendHtml(res, 401, loginPage(uid, { login, error: 'Invalid login or password.' }));
    return;
  }
  await provider.interactionFinished(req, res, {
    login: { accountId: login, amr: ['pwd'] },
  }, { mergeWithLastSubmission: false });
}

// --always-login: the authorization endpoint (/auth and its resume step
// /auth/UID) does not see the provider session cookie, so each authorization
// request starts a fresh session and asks for a login (switching users in one
// browser would otherwise go through oidc-provider's logout-confirmation page).
function forgetProviderSession(req) {
  const { cookie } = req.headers;
  if (!cookie) return;
  const kept = cookie.split(';').map((c) => c.trim())
    .filter((c) => !/^op_session(\.sig)?=/.test(c));
  if (kept.length) req.headers.cookie = kept.join('; ');
  else delete req.headers.cookie;
}

// ---------------------------------------------------------------- admin

// TEST ONLY. LOOPBACK ONLY. NO AUTHENTICATION. Anyone who can reach these can
// mint tokens that any relying party trusting this provider will accept.
async function handleAdmin(state, req, res, path, url) {
  if (!isLoopback(req.socket.remoteAddress)) {
    sendJson(res, 403, { error: 'admin API is loopback-only' });
    return;
  }
  const json = async () => {
    const text = await readBody(req);
    return text.trim() ? JSON.parse(text) : {};
  };

  if (path === '/health' && req.method === 'GET') {
    const kids = {};
    for (const [alg, list] of KEYS) kids[alg] = list.map((k) => k.kid);
    sendJson(res, 200, { ok: true, issuer: state.issuer, kids, redirect_uris: redirectUris });
    return;
  }

  if (path === '/rotate' && req.method === 'POST') {
    const body = await json();
    const alg = body.alg ?? 'RS256';
    if (!KEYS.has(alg)) {
      sendJson(res, 400, { error: `alg must be one of ${SIGNING_ALGS.join(', ')}` });
      return;
    }
    const key = await newKey(alg);
    const old = KEYS.get(alg);
    KEYS.set(alg, body.drop_old ? [key] : [key, ...old]);
    state.rebuild();
    if (!body.drop_old && Number.isFinite(body.grace_seconds) && body.grace_seconds >= 0) {
      const retired = new Set(old.map((k) => k.kid));
      setTimeout(() => {
        KEYS.set(alg, KEYS.get(alg).filter((k, i) => i === 0 || !retired.has(k.kid)));
        state.rebuild();
      }, body.grace_seconds * 1000).unref();
    }
    sendJson(res, 200, { kid: key.kid, published: KEYS.get(alg).map((k) => k.kid) });
    return;
  }

  if (path === '/sign' && req.method === 'POST') {
    const body = await json();
    sendJson(res, 200, { token: await signForTest(state.issuer, body) });
    return;
  }

  if (path === '/public-pem' && req.method === 'GET') {
    const kid = url.searchParams.get('kid');
    const key = kid ? findKey(kid) : KEYS.get('RS256')[0];
    if (!key) {
      sendJson(res, 404, { error: `no published key with kid ${kid}` });
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(await jose.exportSPKI(key.publicKey));
    return;
  }

  if (path === '/redirect-uris' && req.method === 'POST') {
    const body = await json();
    if (!Array.isArray(body.redirect_uris) || body.redirect_uris.length === 0) {
      sendJson(res, 400, { error: 'redirect_uris must be a non-empty list' });
      return;
    }
    redirectUris = body.redirect_uris.map(String);
    state.rebuild();
    sendJson(res, 200, { redirect_uris: redirectUris });
    return;
  }

  sendJson(res, 404, { error: 'unknown admin endpoint' });
}

const b64url = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

// Signs arbitrary claims with the provider's own key, so that only a claim
// check can refuse the token. Claims default to iss=issuer, iat=now,
// exp=now+300; a claim given as null is left out. Extras for refusal tests:
//   alg "none"   -> an unsigned token (header alg none, empty signature);
//   alg "HS256"  -> HMAC-SHA256 keyed with the PEM (SPKI) of the current RSA
//                   public key, or of `sign_with_kid` (algorithm confusion);
//   tamper {..}  -> sign, then replace those claims in the payload, keeping
//                   the original signature.
async function signForTest(issuer, body) {
  const alg = body.alg ?? 'RS256';
  const now = Math.floor(Date.now() / 1000);
  const claims = { iss: issuer, iat: now, exp: now + 300, ...(body.claims ?? {}) };
  for (const [k, v] of Object.entries(claims)) if (v === null) delete claims[k];

  let key;
  if (body.sign_with_kid) {
    key = findKey(body.sign_with_kid);
    if (!key) throw new HttpError(400, `no key with kid ${body.sign_with_kid}`);
  } else if (alg === 'HS256' || alg === 'none') {
    key = KEYS.get('RS256')[0];
  } else {
    key = KEYS.get(alg)?.[0];
    if (!key) throw new HttpError(400, `alg must be one of ${[...SIGNING_ALGS, 'HS256', 'none'].join(', ')}`);
  }
  if (!['HS256', 'none'].includes(alg) && key.alg !== alg) {
    throw new HttpError(400, `key ${key.kid} is ${key.alg}, not ${alg}`);
  }

  const header = { alg, typ: 'JWT', kid: key.kid, ...(body.header ?? {}) };
  if ('kid' in body) header.kid = body.kid;
  for (const [k, v] of Object.entries(header)) if (v === null) delete header[k];
  header.alg = alg;

  let token;
  if (alg === 'none') {
    token = `${b64url(header)}.${b64url(claims)}.`;
  } else if (alg === 'HS256') {
    const pem = await jose.exportSPKI(key.publicKey);
    const input = `${b64url(header)}.${b64url(claims)}`;
    const sig = crypto.createHmac('sha256', pem).update(input).digest('base64url');
    token = `${input}.${sig}`;
  } else {
    token = await new jose.SignJWT(claims).setProtectedHeader(header).sign(key.privateKey);
  }

  if (body.tamper && typeof body.tamper === 'object') {
    const [h, , s] = token.split('.');
    const tampered = { ...claims, ...body.tamper };
    for (const [k, v] of Object.entries(tampered)) if (v === null) delete tampered[k];
    token = `${h}.${b64url(tampered)}.${s}`;
  }
  return token;
}

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// ---------------------------------------------------------------- main

for (const alg of SIGNING_ALGS) KEYS.set(alg, [await newKey(alg)]);

const state = { issuer: undefined, provider: undefined, callback: undefined };
state.rebuild = () => {
  const provider = buildProvider(state.issuer);
  state.provider = provider;
  state.callback = provider.callback();
};

const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, state.issuer);
    const { pathname } = url;
    if (pathname === '/__test' || pathname.startsWith('/__test/')) {
      await handleAdmin(state, req, res, pathname.slice('/__test'.length), url);
      return;
    }
    if (ALWAYS_LOGIN && /^\/auth(\/[\w-]+)?$/.test(pathname)) forgetProviderSession(req);
    const m = /^\/interaction\/([A-Za-z0-9_-]+)(\/abort)?$/.exec(pathname);
    if (m) {
      await handleInteraction(state.provider, req, res, m[1], m[2] ?? '');
      return;
    }
    state.callback(req, res);
  } catch (err) {
    if (!res.headersSent) {
      const status = err instanceof HttpError ? err.status : err instanceof SyntaxError ? 400 : 500;
      sendJson(res, status, { error: err.message });
    } else {
      res.destroy();
    }
    if (!(err instanceof HttpError)) console.error('request failed:', err);
  }
});
server.keepAliveTimeout = 1000;

await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(PORT, '127.0.0.1', resolve);
});
const { port } = server.address();
state.issuer = `http://127.0.0.1:${port}`;
state.rebuild();

function stop() {
  server.close();
  server.closeAllConnections();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

process.stdout.write(`${JSON.stringify({ issuer: state.issuer, admin: `${state.issuer}/__test` })}\n`);
