// Real Uppy (@uppy/core + @uppy/aws-s3 in Companion mode) in Debian's
// Chromium, on a page served from another loopback port than Chute's app,
// so CORS is part of what is tested (web security stays on). It uploads a
// small file through the /s3/params POST form and a 100 MiB file through
// the /s3/multipart routes, then reads both objects back over the S3 API
// and compares SHA-256s.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BUCKET, mintGrant, serveBundledPage, startChute } from './chute.mjs';
import { MiB, embeddedStore, launchChromium, storedObject, verifyReceipt, writeRandom } from './support.mjs';

const BIG = 100 * MiB;

let chute;
let site;
let browser;
let work;
const files = {};

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'chute-uppy-'));
  const small = Buffer.from('Hello from Uppy in Chromium.\n'.repeat(40));
  files.small = { path: join(work, 'small note.txt'), size: small.length, sha256: createHash('sha256').update(small).digest('hex') };
  writeFileSync(files.small.path, small);
  files.big = writeRandom(join(work, 'big.bin'), BIG);

  chute = await startChute();
  site = await serveBundledPage('index.html', 'upload');
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await site?.close();
  const code = await chute?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
  assert.ok(code === null || code === '0', `chute serve exited with ${code} on SIGTERM`);
});

/** A page on the test site that records its calls to Chute's /s3/ routes. */
async function openPage() {
  const page = await browser.newPage();
  const calls = [];
  const logs = [];
  page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
  const pending = [];
  page.on('response', (res) => {
    const req = res.request();
    if (!req.url().startsWith(`${chute.appUrl}/s3/`)) return;
    pending.push(req.allHeaders().then((headers) => calls.push({
      method: req.method(),
      path: new URL(req.url()).pathname,
      query: new URL(req.url()).searchParams,
      status: res.status(),
      authorization: headers.authorization ?? null,
      origin: headers.origin ?? null,
    })));
  });
  await page.goto(site.url);
  await page.waitForFunction(() => window.uppyReady === true);
  // The calls seen so far, once their headers are read.
  const settled = async () => { await Promise.all(pending); return calls; };
  return { page, settled, logs };
}

function upload(page, grant) {
  return page.evaluate(({ endpoint, grant }) => window.uploadWithUppy({ endpoint, grant }), { endpoint: chute.appUrl, grant });
}

test('Uppy uploads a POST-form file and a 100 MiB multipart file through /s3/', async () => {
  const { page, settled, logs } = await openPage();
  const grant = mintGrant({ sub: 'uppy-user', max_size: 128 * MiB });
  await page.setInputFiles('#files', [files.small.path, files.big.path]);
  const started = Date.now();
  const result = await upload(page, grant);
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  const context = () => `${JSON.stringify(result, null, 1)}\n--- page console ---\n${logs.join('\n')}\n--- chute ---\n${chute.output()}`;
  assert.deepEqual(result.failed, [], context());
  assert.equal(result.successful.length, 2, context());
  console.log(`# uploaded 2 files (${files.small.size} B + 100 MiB) in ${seconds} s`);

  const byName = Object.fromEntries(result.successful.map((f) => [f.name, f]));
  const small = byName['small note.txt'];
  const big = byName['big.bin'];
  assert.ok(small && big, context());

  // The server chose both keys.
  assert.match(small.key, /^tmp\/[a-z2-7]{26}\/small_note\.txt$/);
  assert.match(big.key, /^tmp\/[a-z2-7]{26}\/big\.bin$/);

  // The bytes arrived intact.
  for (const [entry, file] of [[small, files.small], [big, files.big]]) {
    const stored = await storedObject(embeddedStore(chute), entry.key);
    assert.equal(stored.size, file.size, entry.key);
    assert.equal(stored.sha256, file.sha256, `${entry.key}: content differs`);
  }

  // Multipart completion answered Companion's `location` plus a receipt the
  // app can verify.
  assert.equal(big.location, `${chute.s3Endpoint}/${BUCKET}/${big.key}`);
  assert.ok(big.receipt, context());
  const verified = await verifyReceipt(chute.appUrl, big.receipt);
  assert.equal(verified.valid, true, JSON.stringify(verified));
  assert.equal(verified.receipt.key, big.key);
  assert.equal(verified.receipt.size, BIG);
  assert.equal(verified.receipt.sub, 'uppy-user');

  // Uppy's part size is the lifecycle's: 20 parts of 5 MiB.
  assert.deepEqual(result.partsUploaded['big.bin'], Array.from({ length: 20 }, (_, i) => i + 1));

  // Every /s3/ call was cross-origin, carried the grant and succeeded; the
  // uploadId in the paths is Chute's signed upload token.
  const calls = await settled();
  assert.ok(calls.length > 0);
  for (const call of calls) {
    assert.equal(call.origin, site.url, `${call.method} ${call.path}`);
    assert.equal(call.authorization, `Bearer ${grant}`, `${call.method} ${call.path}`);
    assert.ok(call.status >= 200 && call.status < 300, `${call.method} ${call.path} -> ${call.status}`);
  }
  const count = (method, re) => calls.filter((c) => c.method === method && re.test(c.path)).length;
  assert.equal(count('GET', /^\/s3\/params$/), 1);
  assert.equal(count('POST', /^\/s3\/multipart$/), 1);
  assert.equal(count('GET', /^\/s3\/multipart\/[^/]+\/\d+$/), 20);
  assert.equal(count('POST', /^\/s3\/multipart\/[^/]+\/complete$/), 1);
  const partCall = calls.find((c) => /^\/s3\/multipart\/[^/]+\/\d+$/.test(c.path));
  assert.equal(partCall.path.split('/')[3].split('.').length, 3, 'uploadId is a JWT');
  assert.equal(partCall.query.get('key'), big.key);
  await page.close();
});

test('without a grant Uppy is refused, readably across origins', async () => {
  const { page, settled, logs } = await openPage();
  await page.setInputFiles('#files', [files.small.path]);
  const result = await upload(page, null);
  const calls = await settled();
  assert.equal(result.successful.length, 0, JSON.stringify(result));
  assert.equal(result.failed.length, 1, `${JSON.stringify(result)}\n${logs.join('\n')}`);
  const params = calls.filter((c) => c.path === '/s3/params');
  assert.ok(params.length >= 1, JSON.stringify(calls));
  assert.ok(params.every((c) => c.status === 401 && c.authorization === null), JSON.stringify(params));
  await page.close();
});

test("a grant's limit reaches Uppy's user as the server's message", async () => {
  const { page, settled } = await openPage();
  await page.setInputFiles('#files', [files.small.path]);
  const result = await upload(page, mintGrant({ sub: 'uppy-user', max_size: 100 }));
  const calls = await settled();
  assert.equal(result.successful.length, 0, JSON.stringify(result));
  // The refusal's JSON body was readable across origins (CORS headers on
  // errors too), and Uppy surfaced its top-level `message`.
  assert.match(result.failed[0]?.error ?? '', /this grant allows at most 100/, JSON.stringify(result));
  assert.deepEqual(calls.map((c) => `${c.method} ${c.path} ${c.status}`), ['GET /s3/params 413']);
  await page.close();
});
