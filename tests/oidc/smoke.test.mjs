// Smoke test of the test OpenID provider: run with `node --test tests/oidc/`.
// Starts server.mjs as a child process and checks it for real over HTTP:
// discovery, JWKS, machine JWTs, the admin API, key rotation, and the
// authorization-code + PKCE sign-in through the login page without a browser.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

import * as jose from 'jose';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REDIRECT_URI = 'http://127.0.0.1:9/auth/callback';

let child;
let issuer;
let admin;
let discovery;
let stderr = '';

function startProvider(args = []) {
  const proc = spawn(process.execPath, [path.join(HERE, 'server.mjs'), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stderr.on('data', (d) => { stderr += d; });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`provider did not start:\n${stderr}`)), 15000);
    proc.once('exit', (code) => reject(new Error(`provider exited ${code}:\n${stderr}`)));
    const lines = readline.createInterface({ input: proc.stdout });
    lines.once('line', (line) => {
      clearTimeout(timer);
      resolve({ proc, ready: JSON.parse(line), lines });
    });
  });
}

before(async () => {
  const started = await startProvider(['--redirect-uri', REDIRECT_URI]);
  child = started.proc;
  ({ issuer, admin } = started.ready);
  // Nothing but the one JSON line may reach stdout.
  started.lines.on('line', (line) => { throw new Error(`unexpected stdout line: ${line}`); });
  discovery = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
});

after(async () => {
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  child.kill('SIGTERM');
  const { code } = await exited;
  assert.equal(code, 0, 'SIGTERM exits 0');
  assert.doesNotMatch(stderr, /server_error|request failed/, stderr);
});

// ---------------------------------------------------------------- helpers

const basic = (id, secret) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

async function jwks(d = discovery) {
  return (await fetch(d.jwks_uri)).json();
}

async function verify(token, options = {}, d = discovery) {
  const keySet = jose.createLocalJWKSet(await jwks(d));
  return jose.jwtVerify(token, keySet, { issuer: d.issuer, ...options });
}

async function machineToken(body = {}, clientId = 'ci-bot', secret = 'ci-bot-secret') {
  const res = await fetch(discovery.token_endpoint, {
    method: 'POST',
    headers: { authorization: basic(clientId, secret), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', ...body }),
  });
  const json = await res.json();
  assert.equal(res.status, 200, JSON.stringify(json));
  return json;
}

async function adminPost(p, body) {
  const res = await fetch(`${admin}${p}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body ?? {}),
  });
  const json = await res.json();
  return { status: res.status, json };
}

// A minimal cookie jar: one host, names only (cookie paths are ignored,
// sending a cookie to more paths than it asked for does no harm here).
class Jar {
  #cookies = new Map();

  store(res) {
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';').map((s) => s.trim());
      const i = pair.indexOf('=');
      const name = pair.slice(0, i);
      const value = pair.slice(i + 1);
      const expired = attrs.some((a) => /^max-age=0$/i.test(a)
        || (/^expires=/i.test(a) && Date.parse(a.slice(8)) <= Date.now()));
      if (expired || value === '') this.#cookies.delete(name);
      else this.#cookies.set(name, value);
    }
  }

  header() {
    return [...this.#cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

async function step(jar, url, init = {}) {
  const res = await fetch(url, {
    ...init,
    redirect: 'manual',
    headers: { ...(init.headers ?? {}), cookie: jar.header() },
  });
  jar.store(res);
  return res;
}

function pkce() {
  const verifier = crypto.randomBytes(32).toString('base64url');
  const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
  return { verifier, challenge };
}

function authorizeUrl({ challenge, state, nonce, extra = {} }, d = discovery) {
  const u = new URL(d.authorization_endpoint);
  u.search = new URLSearchParams({
    client_id: 'witness-console',
    response_type: 'code',
    scope: 'openid email profile groups',
    redirect_uri: REDIRECT_URI,
    state,
    nonce,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    ...extra,
  });
  return u.href;
}

// Login through the provider's login page, as a browser would: follow the
// redirects by hand, fill the form, post it; returns the redirect back.
async function signIn(jar, login, password = 'test-password', d = discovery, extra = {}) {
  const { issuer } = d;
  const { verifier, challenge } = pkce();
  const state = crypto.randomBytes(16).toString('base64url');
  const nonce = crypto.randomBytes(16).toString('base64url');

  let res = await step(jar, authorizeUrl({ challenge, state, nonce, extra }, d));
  assert.equal(res.status, 303);
  const interaction = new URL(res.headers.get('location'), issuer);
  assert.match(interaction.pathname, /^\/interaction\/[\w-]+$/);

  res = await step(jar, interaction.href);
  assert.equal(res.status, 200);
  const html = await res.text();
  const action = /<form[^>]*action="([^"]+)"[^>]*method="post"/.exec(html)?.[1];
  assert.ok(action, `login form in:\n${html}`);
  assert.match(html, /name="login"/);
  assert.match(html, /name="password"/);
  const prompt = /name="prompt" value="([^"]+)"/.exec(html)[1];

  res = await step(jar, new URL(action, issuer).href, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ prompt, login, password }),
  });
  if (res.status !== 303) return { res, html: await res.text() };
  const resume = new URL(res.headers.get('location'), issuer);
  assert.match(resume.pathname, /^\/auth\/[\w-]+$/);

  res = await step(jar, resume.href);
  assert.equal(res.status, 303);
  const back = new URL(res.headers.get('location'));
  return { res, back, verifier, state, nonce };
}

async function redeem(code, verifier, auth = 'basic', d = discovery) {
  const params = {
    grant_type: 'authorization_code',
    code,
    redirect_uri: REDIRECT_URI,
    code_verifier: verifier,
  };
  const headers = { 'content-type': 'application/x-www-form-urlencoded' };
  if (auth === 'basic') headers.authorization = basic('witness-console', 'witness-console-secret');
  else Object.assign(params, { client_id: 'witness-console', client_secret: 'witness-console-secret' });
  const res = await fetch(d.token_endpoint, { method: 'POST', headers, body: new URLSearchParams(params) });
  return { status: res.status, json: await res.json() };
}

// ---------------------------------------------------------------- tests

test('discovery names the issuer, the JWKS and the endpoints', () => {
  assert.match(issuer, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(admin, `${issuer}/__test`);
  assert.equal(discovery.issuer, issuer);
  assert.equal(discovery.jwks_uri, `${issuer}/jwks`);
  assert.deepEqual(discovery.code_challenge_methods_supported, ['S256']);
  for (const s of ['openid', 'email', 'profile', 'groups']) assert.ok(discovery.scopes_supported.includes(s), s);
  assert.ok(discovery.grant_types_supported.includes('client_credentials'));
});

test('the JWKS publishes an RSA, an EC P-256 and an Ed25519 key, public parts only', async () => {
  const { keys } = await jwks();
  const byAlg = Object.fromEntries(keys.map((k) => [k.alg, k]));
  assert.equal(byAlg.RS256.kty, 'RSA');
  assert.equal(byAlg.ES256.crv, 'P-256');
  assert.equal(byAlg.EdDSA.crv, 'Ed25519');
  for (const k of keys) {
    assert.ok(k.kid);
    assert.equal(k.d, undefined, 'no private part');
  }
});

test('admin health answers', async () => {
  const h = await (await fetch(`${admin}/health`)).json();
  assert.equal(h.ok, true);
  assert.equal(h.issuer, issuer);
  assert.equal(h.kids.RS256.length, 1);
});

test('ci-bot gets a JWT access token for witness with groups and email', async () => {
  const { access_token: token, token_type: type } = await machineToken();
  assert.equal(type, 'Bearer');
  const header = jose.decodeProtectedHeader(token);
  assert.equal(header.alg, 'RS256');
  assert.ok((await jwks()).keys.some((k) => k.kid === header.kid), 'kid is in the JWKS');
  const { payload } = await verify(token, { audience: 'witness' });
  assert.equal(payload.iss, issuer);
  assert.ok([payload.aud].flat().includes('witness'));
  assert.deepEqual(payload.groups, ['deployers']);
  assert.equal(payload.email, 'ci-bot@example.com');
  assert.equal(payload.sub, 'ci-bot');
  assert.equal(payload.client_id, 'ci-bot');

  // An explicit resource gives the same; client_secret_post works too.
  const res = await fetch(discovery.token_endpoint, {
    method: 'POST',
    body: new URLSearchParams({
      grant_type: 'client_credentials', resource: 'urn:witness', client_id: 'ci-bot', client_secret: 'ci-bot-secret',
    }),
  });
  assert.equal(res.status, 200);
  const again = await verify((await res.json()).access_token, { audience: 'witness' });
  assert.deepEqual(again.payload.groups, ['deployers']);
});

test('ES256, EdDSA and wrong-audience resources issue real tokens too', async () => {
  for (const [resource, alg] of [['urn:witness:es256', 'ES256'], ['urn:witness:eddsa', 'EdDSA']]) {
    const { access_token: token } = await machineToken({ resource });
    assert.equal(jose.decodeProtectedHeader(token).alg, alg);
    await verify(token, { audience: 'witness' });
  }
  const { access_token: other } = await machineToken({ resource: 'urn:other' });
  await assert.rejects(verify(other, { audience: 'witness' }), { code: 'ERR_JWT_CLAIM_VALIDATION_FAILED', claim: 'aud' });
});

test('a wrong client secret and an unknown resource are refused', async () => {
  const bad = await fetch(discovery.token_endpoint, {
    method: 'POST',
    headers: { authorization: basic('ci-bot', 'nope') },
    body: new URLSearchParams({ grant_type: 'client_credentials' }),
  });
  assert.equal(bad.status, 401);
  const target = await fetch(discovery.token_endpoint, {
    method: 'POST',
    headers: { authorization: basic('ci-bot', 'ci-bot-secret') },
    body: new URLSearchParams({ grant_type: 'client_credentials', resource: 'urn:nobody' }),
  });
  assert.equal(target.status, 400);
  assert.equal((await target.json()).error, 'invalid_target');
});

test('/__test/sign signs given claims with the trusted keys', async () => {
  for (const alg of ['RS256', 'ES256', 'EdDSA']) {
    const { status, json } = await adminPost('/sign', {
      alg, claims: { sub: 'someone', aud: 'witness', groups: ['sre-team'], email: 'x@example.com' },
    });
    assert.equal(status, 200, JSON.stringify(json));
    const { payload, protectedHeader } = await verify(json.token, { audience: 'witness' });
    assert.equal(protectedHeader.alg, alg);
    assert.equal(payload.sub, 'someone');
    assert.deepEqual(payload.groups, ['sre-team']);
    assert.equal(payload.iss, issuer, 'iss defaults to the issuer');
    assert.ok(payload.exp > payload.iat);
  }

  const now = Math.floor(Date.now() / 1000);
  const expired = (await adminPost('/sign', { claims: { aud: 'witness', iat: now - 600, exp: now - 300 } })).json.token;
  await assert.rejects(verify(expired, { audience: 'witness' }), { code: 'ERR_JWT_EXPIRED' });
  const early = (await adminPost('/sign', { claims: { aud: 'witness', nbf: now + 600 } })).json.token;
  await assert.rejects(verify(early, { audience: 'witness' }), { claim: 'nbf' });
  const wrongIss = (await adminPost('/sign', { claims: { aud: 'witness', iss: 'https://elsewhere.example' } })).json.token;
  await assert.rejects(verify(wrongIss, { audience: 'witness' }), { claim: 'iss' });
  const noExp = (await adminPost('/sign', { claims: { aud: 'witness', exp: null } })).json.token;
  assert.equal(jose.decodeJwt(noExp).exp, undefined);

  const tampered = (await adminPost('/sign', { claims: { aud: 'witness', groups: [] }, tamper: { groups: ['sre-team'] } })).json.token;
  assert.deepEqual(jose.decodeJwt(tampered).groups, ['sre-team']);
  await assert.rejects(verify(tampered, { audience: 'witness' }), { code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' });

  const unknownKid = (await adminPost('/sign', { kid: 'no-such-kid', claims: { aud: 'witness' } })).json.token;
  assert.equal(jose.decodeProtectedHeader(unknownKid).kid, 'no-such-kid');
  await assert.rejects(verify(unknownKid, { audience: 'witness' }), { code: 'ERR_JWKS_NO_MATCHING_KEY' });

  const none = (await adminPost('/sign', { alg: 'none', claims: { aud: 'witness' } })).json.token;
  assert.equal(jose.decodeProtectedHeader(none).alg, 'none');
  assert.ok(none.endsWith('.'));

  // Algorithm confusion: HS256 keyed with the RSA public key's PEM.
  const rsaKid = (await jwks()).keys.find((k) => k.alg === 'RS256').kid;
  const pemRes = await fetch(`${admin}/public-pem?kid=${rsaKid}`);
  assert.equal(pemRes.status, 200);
  const pem = await pemRes.text();
  assert.match(pem, /^-----BEGIN PUBLIC KEY-----/);
  assert.doesNotMatch(pem, /PRIVATE/);
  const hs = (await adminPost('/sign', { alg: 'HS256', claims: { aud: 'witness' } })).json.token;
  assert.equal(jose.decodeProtectedHeader(hs).kid, rsaKid);
  await jose.jwtVerify(hs, new TextEncoder().encode(pem), { algorithms: ['HS256'] });
  await assert.rejects(verify(hs, { audience: 'witness' }));
  // The same token a test could build itself from the public PEM:
  const own = await new jose.SignJWT(jose.decodeJwt(hs)).setProtectedHeader(jose.decodeProtectedHeader(hs))
    .sign(new TextEncoder().encode(pem));
  assert.equal(own, hs);

  assert.equal((await adminPost('/sign', { alg: 'PS512' })).status, 400);
});

test('alice signs in through the login page (authorization code + PKCE, no browser)', async () => {
  const jar = new Jar();
  const { back, verifier, state, nonce } = await signIn(jar, 'alice');
  assert.equal(`${back.origin}${back.pathname}`, REDIRECT_URI);
  assert.equal(back.searchParams.get('state'), state);
  assert.equal(back.searchParams.get('iss'), issuer);
  const code = back.searchParams.get('code');
  assert.ok(code);

  const { status, json } = await redeem(code, verifier);
  assert.equal(status, 200, JSON.stringify(json));
  const { payload, protectedHeader } = await verify(json.id_token, { audience: 'witness-console' });
  assert.equal(protectedHeader.alg, 'RS256');
  assert.equal(payload.sub, 'alice');
  assert.equal(payload.email, 'alice@example.com');
  assert.equal(payload.email_verified, true);
  assert.deepEqual(payload.groups, ['sre-team']);
  assert.equal(payload.nonce, nonce);
  assert.equal(payload.name, 'Alice');

  // Userinfo with the access token gives the same claims.
  const userinfo = () => fetch(discovery.userinfo_endpoint, { headers: { authorization: `Bearer ${json.access_token}` } });
  const meRes = await userinfo();
  const me = await meRes.json();
  assert.equal(meRes.status, 200, JSON.stringify(me));
  assert.equal(me.email, 'alice@example.com');
  assert.deepEqual(me.groups, ['sre-team']);

  // The code is single-use; replaying it revokes what it gave.
  assert.equal((await redeem(code, verifier)).status, 400);
  assert.equal((await userinfo()).status, 401);
});

test('carol and mallory sign in with their own groups; client_secret_post redeems too', async () => {
  for (const [login, groups] of [['carol', ['dba-team']], ['mallory', []]]) {
    const { back, verifier, nonce } = await signIn(new Jar(), login);
    const { status, json } = await redeem(back.searchParams.get('code'), verifier, 'post');
    assert.equal(status, 200, JSON.stringify(json));
    const { payload } = await verify(json.id_token, { audience: 'witness-console' });
    assert.equal(payload.email, `${login}@example.com`);
    assert.deepEqual(payload.groups, groups);
    assert.equal(payload.nonce, nonce);
  }
});

test('a person asking for resource urn:witness gets a JWT access token for witness', async () => {
  const { back, verifier } = await signIn(new Jar(), 'bob', 'test-password', discovery, {
    resource: 'urn:witness', scope: 'openid email groups witness',
  });
  const { status, json } = await redeem(back.searchParams.get('code'), verifier);
  assert.equal(status, 200, JSON.stringify(json));
  const { payload } = await verify(json.access_token, { audience: 'witness' });
  assert.equal(payload.sub, 'bob');
  assert.equal(payload.email, 'bob@example.com');
  assert.deepEqual(payload.groups, ['sre-team']);
  assert.equal(payload.client_id, 'witness-console');
  assert.equal(payload.scope, 'witness');
});

test('a wrong PKCE verifier is refused at the token endpoint', async () => {
  const { back } = await signIn(new Jar(), 'bob');
  const { status, json } = await redeem(back.searchParams.get('code'), pkce().verifier);
  assert.equal(status, 400);
  assert.equal(json.error, 'invalid_grant');
});

test('an authorization request without PKCE is refused', async () => {
  const u = new URL(authorizeUrl({ challenge: 'x', state: 's', nonce: 'n' }));
  u.searchParams.delete('code_challenge');
  u.searchParams.delete('code_challenge_method');
  const res = await fetch(u, { redirect: 'manual' });
  assert.equal(res.status, 303);
  const back = new URL(res.headers.get('location'));
  assert.equal(back.searchParams.get('error'), 'invalid_request');
  assert.match(back.searchParams.get('error_description'), /PKCE/);
});

test('unknown logins and wrong passwords get the form again with 401', async () => {
  for (const [login, password] of [['eve', 'test-password'], ['alice', 'wrong']]) {
    const { res, html } = await signIn(new Jar(), login, password);
    assert.equal(res.status, 401);
    assert.match(html, /Invalid login or password/);
    assert.match(html, /name="password"/);
  }
});

test('rotation publishes a new kid, signs with it, and keeps sessions', async () => {
  // A signed-in session before the rotation.
  const jar = new Jar();
  await signIn(jar, 'alice');

  const before = (await jwks()).keys.filter((k) => k.alg === 'RS256').map((k) => k.kid);
  const { status, json } = await adminPost('/rotate', {});
  assert.equal(status, 200);
  const newKid = json.kid;
  assert.ok(!before.includes(newKid));

  const after = (await jwks()).keys.filter((k) => k.alg === 'RS256').map((k) => k.kid);
  assert.ok(after.includes(newKid), 'new kid published');
  for (const kid of before) assert.ok(after.includes(kid), 'old kid kept through the grace period');

  const { access_token: token } = await machineToken();
  assert.equal(jose.decodeProtectedHeader(token).kid, newKid);
  await verify(token, { audience: 'witness' });
  const signed = (await adminPost('/sign', { claims: { aud: 'witness' } })).json.token;
  assert.equal(jose.decodeProtectedHeader(signed).kid, newKid);
  await verify(signed, { audience: 'witness' });

  // The session survived: a new authorization request needs no login.
  const { verifier, challenge } = pkce();
  const res = await step(jar, authorizeUrl({ challenge, state: 'st', nonce: 'nn' }));
  assert.equal(res.status, 303);
  const back = new URL(res.headers.get('location'), issuer);
  assert.equal(`${back.origin}${back.pathname}`, REDIRECT_URI);
  const redeemed = await redeem(back.searchParams.get('code'), verifier);
  assert.equal(redeemed.status, 200);
  const idToken = redeemed.json.id_token;
  assert.equal(jose.decodeProtectedHeader(idToken).kid, newKid);
  assert.equal((await verify(idToken, { audience: 'witness-console' })).payload.email, 'alice@example.com');

  // drop_old leaves only the newest RSA key.
  const dropped = await adminPost('/rotate', { drop_old: true });
  const rsa = (await jwks()).keys.filter((k) => k.alg === 'RS256').map((k) => k.kid);
  assert.deepEqual(rsa, [dropped.json.kid]);
  await assert.rejects(verify(token, { audience: 'witness' }), { code: 'ERR_JWKS_NO_MATCHING_KEY' });
});

test('rotation with grace_seconds drops the old key later', async () => {
  const oldKid = (await jwks()).keys.find((k) => k.alg === 'ES256').kid;
  const { json } = await adminPost('/rotate', { alg: 'ES256', grace_seconds: 0.3 });
  let es = (await jwks()).keys.filter((k) => k.alg === 'ES256').map((k) => k.kid);
  assert.deepEqual(es, [json.kid, oldKid]);
  await new Promise((r) => setTimeout(r, 600));
  es = (await jwks()).keys.filter((k) => k.alg === 'ES256').map((k) => k.kid);
  assert.deepEqual(es, [json.kid]);
});

test('redirect URIs can be replaced at run time', async () => {
  const other = 'http://127.0.0.1:10/auth/callback';
  const { status } = await adminPost('/redirect-uris', { redirect_uris: [REDIRECT_URI, other] });
  assert.equal(status, 200);
  const { challenge } = pkce();
  const u = new URL(authorizeUrl({ challenge, state: 's', nonce: 'n' }));
  u.searchParams.set('redirect_uri', other);
  const res = await fetch(u, { redirect: 'manual' });
  assert.equal(res.status, 303);
  assert.match(res.headers.get('location'), /^\/interaction\//);

  u.searchParams.set('redirect_uri', 'http://127.0.0.1:11/evil');
  const refused = await fetch(u, { redirect: 'manual' });
  assert.equal(refused.status, 400, 'an unregistered redirect_uri is refused on the provider page');
});

test('--always-login: a second provider asks every time, and its tokens are not the first one\'s', async () => {
  const second = await startProvider(['--always-login', '--redirect-uri', REDIRECT_URI]);
  try {
    const d = await (await fetch(`${second.ready.issuer}/.well-known/openid-configuration`)).json();
    assert.notEqual(d.issuer, issuer);
    const jar = new Jar();
    const first = await signIn(jar, 'alice', 'test-password', d);
    const a = await redeem(first.back.searchParams.get('code'), first.verifier, 'basic', d);
    assert.equal((await verify(a.json.id_token, { audience: 'witness-console' }, d)).payload.email, 'alice@example.com');

    // Same browser, same provider session: the login page comes again, and bob can sign in.
    const again = await signIn(jar, 'bob', 'test-password', d);
    assert.ok(again.back, 'login page shown and bob signed in');
    const b = await redeem(again.back.searchParams.get('code'), again.verifier, 'basic', d);
    const { payload } = await verify(b.json.id_token, { audience: 'witness-console' }, d);
    assert.equal(payload.email, 'bob@example.com');
    assert.deepEqual(payload.groups, ['sre-team']);

    // A token from the second provider does not verify against the first one.
    await assert.rejects(verify(b.json.id_token, { audience: 'witness-console' }));
  } finally {
    const exited = new Promise((resolve) => second.proc.once('exit', resolve));
    second.proc.kill('SIGTERM');
    assert.equal(await exited, 0);
  }
});
