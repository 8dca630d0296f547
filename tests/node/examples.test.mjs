// examples/node/chute-tokens.mjs (jose) against the real `chute serve`: a
// grant minted by the example creates an upload and the server enforces
// its limits; the receipt Chute answers verifies with the example; forged,
// tampered, expired, foreign and wrong-algorithm tokens are refused by the
// example and by Chute alike. jose is pinned here (to forge tokens) and in
// examples/node/package.json (the example's own dependency, `npm ci` there).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac, randomUUID } from 'node:crypto';
import { SignJWT, decodeJwt, decodeProtectedHeader } from 'jose';
import { ReceiptError, keysFromEnv, mintGrant, parseKey, verifyReceipt } from '../../examples/node/chute-tokens.mjs';
import { ACCESS_KEY, SECRET_KEY, spawnChute } from './server.mjs';

const KID = 'node1';
const SECRET = 'node-example-grant-secret-0123456789abcdef';
const KEYS = [parseKey(`${KID}:${SECRET}`)];
const PNG = Buffer.from(
  '89504e470d0a1a0a0000000d4948445200000001000000010806000000' +
  '1f15c4890000000d49444154789c63f8ffff3f0005fe02fea73581840000000049454e44ae426082',
  'hex',
);

let chute;
before(async () => {
  chute = await spawnChute({
    prefix: 'chute-examples-',
    env: { CHUTE_S3_ACCESS_KEY: ACCESS_KEY, CHUTE_S3_SECRET_KEY: SECRET_KEY, CHUTE_GRANT_SECRET: `${KID}:${SECRET}` },
  });
});
after(async () => { if (chute) await chute.stop(); });

async function api(server, method, path, { token, json } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (json) headers['content-type'] = 'application/json';
  const r = await fetch(`${server.appUrl}${path}`, { method, headers, body: json && JSON.stringify(json) });
  return { status: r.status, body: await r.json() };
}

const create = (server, grant, { data = PNG, filename = 'me.png', type = 'image/png' } = {}) =>
  api(server, 'POST', '/api/uploads', { token: grant, json: { filename, size: data.length, type } });

/** Creates an upload with `grant`, posts the bytes with its form to the
 * embedded store, completes it: `{ receipt, created }`. */
async function upload(server, grant, { data = PNG, filename = 'me.png', type = 'image/png' } = {}) {
  const c = await create(server, grant, { data, filename, type });
  assert.equal(c.status, 201, JSON.stringify(c.body));
  const form = new FormData();
  for (const [k, v] of Object.entries(c.body.post.fields)) form.append(k, v);
  form.append('file', new Blob([data], { type }), filename);
  const sent = await fetch(c.body.post.url, { method: 'POST', body: form });
  assert.ok(sent.status >= 200 && sent.status < 300, await sent.text());
  const done = await api(server, 'POST', `/api/uploads/${c.body.id}/complete`, { token: c.body.token });
  assert.equal(done.status, 200, JSON.stringify(done.body));
  return { receipt: done.body.receipt, created: c.body };
}

/** Chute's own word on a receipt: null when valid, else its error code. */
async function chuteVerdict(token) {
  const r = await api(chute, 'POST', '/api/receipts/verify', { json: { receipt: token } });
  return r.status === 200 ? null : r.body.error.code;
}

async function refusal(token, options = {}) {
  try {
    await verifyReceipt(token, { keys: KEYS, ...options });
  } catch (e) {
    assert.ok(e instanceof ReceiptError, `not a ReceiptError: ${e.stack}`);
    return e.code;
  }
  assert.fail(`accepted: ${token}`);
}

const b64 = (value) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** A token of any shape with a valid HS256 signature. */
function rawSigned(header, payload, secret = SECRET) {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

function sign(claims, { secret = SECRET, alg = 'HS256', kid = KID } = {}) {
  return new SignJWT(claims).setProtectedHeader({ alg, kid }).sign(new TextEncoder().encode(secret));
}

test('a grant from the example uploads; its receipt verifies and promotes', async () => {
  const grant = await mintGrant('user-7', {
    keys: KEYS, maxSize: 1024, types: ['image/*'], extensions: ['.png'],
    template: 'avatars/{sub}/{uuid}{ext}', metadata: { purpose: 'avatar' },
  });
  assert.deepEqual(decodeProtectedHeader(grant), { alg: 'HS256', typ: 'JWT', kid: KID });
  const { receipt, created } = await upload(chute, grant);
  const claims = await verifyReceipt(receipt, { keys: KEYS, subject: 'user-7', metadata: { purpose: 'avatar' } });
  assert.equal(claims.key, created.key);
  assert.equal(claims.jti, created.id);
  assert.equal(claims.size, PNG.length);
  assert.equal(claims.type, 'image/png');
  assert.equal(claims.etag, createHash('md5').update(PNG).digest('hex'));
  assert.equal(claims.grant.subject, 'user-7');
  assert.equal(claims.grant.max_size, 1024);
  assert.equal(decodeProtectedHeader(receipt).kid, KID);
  assert.equal((await verifyReceipt(receipt, { keys: keysFromEnv({ CHUTE_GRANT_SECRET: `${KID}:${SECRET}` }) })).jti, created.id);
  const p = await api(chute, 'POST', '/api/objects/promote', { json: { receipt } });
  assert.equal(p.status, 200, JSON.stringify(p.body));
  assert.match(p.body.key, /^avatars\/user-7\/.+\.png$/);
});

test('forged, expired, foreign and other-algorithm receipts are refused', async () => {
  const { receipt, created } = await upload(chute, await mintGrant('user-7', { keys: KEYS, metadata: { purpose: 'avatar' } }));
  const [head, body, sig] = receipt.split('.');
  const claims = decodeJwt(receipt);
  const without = (name) => Object.fromEntries(Object.entries(claims).filter(([k]) => k !== name));
  const cases = {
    token_bad_signature: [
      `${head}.${b64({ ...claims, sub: 'admin' })}.${sig}`,
      `${head}.${body}.${sig.slice(0, -4)}${sig.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`,
      await sign(claims, { secret: 'y'.repeat(40) }),
    ],
    token_expired: [await sign({ ...claims, exp: Math.floor(Date.now() / 1000) - 1 })],
    // A grant, and the upload token the browser held before any byte.
    token_wrong_audience: [await mintGrant('user-7', { keys: KEYS }), created.token, await sign(without('aud'))],
    token_wrong_algorithm: [
      `${b64({ alg: 'none', kid: KID })}.${body}.`,
      await sign(claims, { alg: 'HS512' }),
      await sign(claims, { alg: 'HS384' }),
    ],
    token_unknown_key: [await sign(claims, { kid: 'retired-long-ago' }), await sign(claims, { kid: 'ключ' })],
    token_malformed: ['not-a-jwt', `${head}.${body}`, rawSigned([], claims), rawSigned({ alg: 'HS256', kid: 7 }, claims),
      rawSigned({ alg: 'HS256', kid: KID }, [1]),
      await sign(without('grant')), await sign({ ...claims, grant: 'all' })],
  };
  for (const [code, tokens] of Object.entries(cases)) {
    for (const token of tokens) {
      assert.equal(await refusal(token), code, token);
      assert.notEqual(await chuteVerdict(token), null, `Chute accepted ${token}`);
    }
  }
  assert.equal(await refusal(''), 'receipt_missing');
  assert.equal(await refusal(receipt, { keys: [{ kid: KID, secret: new TextEncoder().encode('x'.repeat(40)) }] }), 'token_bad_signature');
  // A genuine receipt, but another user's or another form's.
  assert.equal(await refusal(receipt, { subject: 'user-8' }), 'receipt_wrong_subject');
  assert.equal(await refusal(receipt, { metadata: { purpose: 'document' } }), 'receipt_wrong_grant');
  assert.equal((await verifyReceipt(receipt, { keys: KEYS, subject: 'user-7' })).jti, created.id);
  assert.equal(await chuteVerdict(receipt), null);
  // After a rotation the old key, listed as retired, still verifies it.
  const next = parseKey(`k2:${'n'.repeat(40)}`);
  assert.equal((await verifyReceipt(receipt, { keys: [next, ...KEYS] })).sub, 'user-7');
  assert.equal(await refusal(receipt, { keys: [next] }), 'token_unknown_key');
});

test('the server enforces the limits of a grant minted by the example', async () => {
  const code = (r) => [r.status, r.body.error.code];
  assert.deepEqual(code(await create(chute, await mintGrant('u', { keys: KEYS, maxSize: PNG.length - 1 }))), [413, 'too_large']);
  const images = await mintGrant('u', { keys: KEYS, types: ['image/*'] });
  const text = { data: Buffer.from('hello'), filename: 'notes.png', type: 'text/plain' };
  assert.deepEqual(code(await create(chute, images, text)), [422, 'type_not_allowed']);
  const once = await mintGrant('u', { keys: KEYS, maxFiles: 1 });
  await upload(chute, once);
  assert.deepEqual(code(await create(chute, once)), [403, 'max_files_reached']);
  const forged = await mintGrant('u', { keys: [{ kid: KID, secret: new TextEncoder().encode('z'.repeat(40)) }] });
  assert.equal((await create(chute, forged)).status, 401);
  assert.equal(code(await create(chute, await mintGrant('u', { keys: KEYS, audience: 'someone-else' })))[1], 'token_wrong_audience');
  // A typo is an error here already; Chute refuses unknown claims too.
  await assert.rejects(mintGrant('u', { keys: KEYS, max_size: 10 }), /unknown option max_size/);
  await assert.rejects(mintGrant('u', { keys: KEYS, ttl: 0 }), /ttl/);
  await assert.rejects(mintGrant('u', { keys: KEYS, types: 'image/*' }), /types is an array/);
});

test('a bare secret gets the key id Chute derives', async () => {
  const bare = `a-bare-secret-without-key-id-${randomUUID()}`;
  const key = parseKey(bare);
  assert.equal(key.kid, createHash('sha256').update(bare).digest('hex').slice(0, 8));
  const server = await spawnChute({
    prefix: 'chute-examples-bare-',
    env: { CHUTE_S3_ACCESS_KEY: ACCESS_KEY, CHUTE_S3_SECRET_KEY: SECRET_KEY, CHUTE_GRANT_SECRET: bare },
  });
  try {
    const { receipt } = await upload(server, await mintGrant('user-9', { keys: [key] }));
    assert.equal(decodeProtectedHeader(receipt).kid, key.kid);
    assert.equal((await verifyReceipt(receipt, { keys: [key], subject: 'user-9' })).size, PNG.length);
  } finally {
    await server.stop();
  }
});

test('bad settings are refused before anything is signed', () => {
  assert.throws(() => parseKey('k1:too-short'), /at least 32 bytes/);
  assert.throws(() => keysFromEnv({}), /CHUTE_GRANT_SECRET/);
  // A passphrase with a colon stays whole, as in Chute.
  assert.equal(new TextDecoder().decode(parseKey('my pass:phrase with a colon, long enough to use').secret).slice(0, 8), 'my pass:');
});
