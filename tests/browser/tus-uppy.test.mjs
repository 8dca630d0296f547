// Real Uppy (@uppy/core + @uppy/tus, which drives tus-js-client) in Debian's
// Chromium against Chute's tus 1.0 endpoint /files/, on a page served from
// another loopback origin so CORS is part of what is tested (web security
// stays on). For each store (embedded, and Garage started here) it uploads a
// 5 MiB and a 100 MiB file, checks the Chute-Receipt header reached the page
// (so CORS exposes it), verifies the receipt, and reads both objects back
// over S3 to compare SHA-256s. Also: a 100 MiB file in uneven chunks, a tab
// closed mid-upload and resumed by the next page (Uppy keeps the URL in
// localStorage), and grant refusals (401, 413) readable across origins.
// Chute and Garage are started by ../node/tus-support.mjs (scripts/test
// installs tests/node's packages first).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serveBundledPage } from './chute.mjs';
import { MiB, launchChromium, writeRandom } from './support.mjs';
import { mintGrant, receiptClaims, startBackend, storedObject, verifyReceipt } from '../node/tus-support.mjs';

let work;
let site;
let browser;
const files = {};

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'chute-uppy-tus-'));
  files.five = writeRandom(join(work, 'five.bin'), 5 * MiB);
  files.big = writeRandom(join(work, 'hundred.bin'), 100 * MiB);
  site = await serveBundledPage('tus.html', 'tus-upload');
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await site?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

for (const backendName of ['embedded', 'garage']) {
  describe(`@uppy/tus in Chromium on ${backendName}`, () => {
    let b;
    before(async () => { b = await startBackend(backendName); });
    after(async () => {
      const problems = await b?.stop();
      assert.deepEqual(problems ?? [], []);
    });

    /** A page on the test site (in `context`, or a new one) recording the requests that reach Chute's /files/. */
    async function openPage(browserContext) {
      const page = await (browserContext ?? browser).newPage();
      const logs = [];
      const calls = [];
      page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
      page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
      const pending = [];
      page.on('request', (req) => {
        if (!req.url().startsWith(b.filesUrl)) return;
        pending.push(req.allHeaders().then((h) => calls.push({ method: req.method(), url: req.url(), origin: h.origin ?? null, authorization: h.authorization ?? null })).catch(() => { /* the page was closed */ }));
      });
      await page.goto(site.url);
      await page.waitForFunction(() => window.uppyReady === true);
      const settled = async () => { await Promise.all(pending); return calls; };
      const context = (result) => `${JSON.stringify(result, null, 1)}\n--- page console ---\n${logs.join('\n')}\n--- chute ---\n${b.chute.output()}`;
      return { page, settled, context };
    }

    test('5 MiB and 100 MiB files upload through /files/; receipts reach the page; objects byte-identical', async () => {
      const { page, settled, context } = await openPage();
      const grant = mintGrant({ sub: 'uppy-tus', max_size: 128 * MiB });
      await page.setInputFiles('#files', [files.five.path, files.big.path]);
      const started = Date.now();
      const result = await page.evaluate(({ endpoint, grant }) => window.uploadWithTus({ endpoint, grant }), { endpoint: b.filesUrl, grant });
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      assert.deepEqual(result.failed, [], context(result));
      assert.equal(result.successful.length, 2, context(result));
      console.log(`# ${backendName}: uploaded 5 MiB + 100 MiB through @uppy/tus in ${seconds} s`);

      const byName = Object.fromEntries(result.successful.map((f) => [f.name, f]));
      for (const file of [files.five, files.big]) {
        const name = file.path.split('/').pop();
        const entry = byName[name];
        assert.ok(entry, context(result));
        assert.ok(entry.uploadURL?.startsWith(b.filesUrl), `${name}: upload URL ${entry.uploadURL}`);
        // The completing PATCH's Chute-Receipt was readable across origins,
        // through tus-js-client's onAfterResponse and Uppy's upload-success.
        assert.ok(entry.receipt, `${name}: no Chute-Receipt in upload-success (Access-Control-Expose-Headers?)\n${context(result)}`);
        assert.equal(entry.afterResponseReceipt, entry.receipt, name);
        const claims = receiptClaims(entry.receipt);
        assert.match(claims.key, new RegExp(`^tmp/[^/]+/${name.replace('.', '\\.')}$`), JSON.stringify(claims));
        assert.equal(claims.size, file.size);
        assert.equal(claims.sub, 'uppy-tus');
        const verified = await verifyReceipt(b.chute.appUrl, entry.receipt);
        assert.equal(verified.valid, true, JSON.stringify(verified));
        const stored = await storedObject(b.store, claims.key);
        assert.equal(stored.size, file.size, claims.key);
        assert.equal(stored.sha256, file.sha256, `${claims.key}: content differs`);
      }

      // One POST and one PATCH per file (Uppy's default chunkSize is the
      // whole file); every call came from the page's origin with the grant.
      assert.equal(result.statuses.filter((s) => s.startsWith('POST ')).length, 2, context(result));
      assert.ok(result.statuses.every((s) => /^(POST 201|PATCH 204|HEAD 200)$/.test(s)), context(result));
      const calls = (await settled()).filter((c) => c.method !== 'OPTIONS');
      assert.ok(calls.length >= 4, JSON.stringify(calls));
      for (const call of calls) {
        assert.equal(call.origin, site.url, `${call.method} ${call.url}`);
        assert.equal(call.authorization, `Bearer ${grant}`, `${call.method} ${call.url}`);
      }
      await page.close();
    });

    test("without a grant, or past the grant's size, Uppy fails with the server's reason, readable across origins", async () => {
      const { page, settled, context } = await openPage();
      await page.setInputFiles('#files', [files.five.path]);
      const none = await page.evaluate((a) => window.uploadWithTus(a), { endpoint: b.filesUrl, grant: null });
      assert.equal(none.successful.length, 0, context(none));
      assert.equal(none.failed.length, 1, context(none));
      // tus-js-client puts the status and body in its error: the refusal
      // carried CORS headers (a CORS failure would read "response code: n/a").
      assert.match(none.failed[0].error, /response code: 401/, context(none));
      assert.deepEqual(none.statuses, ['POST 401'], context(none));

      await page.setInputFiles('#files', [files.five.path]);
      const small = mintGrant({ sub: 'uppy-tus', max_size: MiB });
      const tooBig = await page.evaluate((a) => window.uploadWithTus(a), { endpoint: b.filesUrl, grant: small });
      assert.equal(tooBig.successful.length, 0, context(tooBig));
      assert.match(tooBig.failed[0]?.error ?? '', /response code: 413/, context(tooBig));
      assert.deepEqual(tooBig.statuses, ['POST 413'], context(tooBig));
      const calls = (await settled()).filter((c) => c.method === 'POST');
      assert.equal(calls.length, 2, JSON.stringify(calls));
      await page.close();
    });

    test('a tab closed mid-upload: the next page resumes from the server offset (Uppy finds the URL in localStorage)', async () => {
      const ctx = await browser.newContext(); // one profile: localStorage survives the tab
      try {
        const grant = mintGrant({ sub: 'uppy-tus', max_size: 128 * MiB });
        const chunkSize = 5 * MiB;
        const first = await openPage(ctx);
        await first.page.setInputFiles('#files', [files.big.path]);
        const stopped = await first.page.evaluate((a) => window.uploadWithTus(a), { endpoint: b.filesUrl, grant, chunkSize, stopAt: 30 * MiB });
        await first.page.close(); // the tab goes away with a PATCH in flight
        assert.ok(stopped.stopped >= 30 * MiB && stopped.stopped < files.big.size, JSON.stringify(stopped));

        const second = await openPage(ctx);
        await second.page.setInputFiles('#files', [files.big.path]);
        const result = await second.page.evaluate((a) => window.uploadWithTus(a), { endpoint: b.filesUrl, grant, chunkSize });
        assert.deepEqual(result.failed, [], second.context(result));
        // No new upload: a HEAD, then PATCHes from where the server was.
        assert.equal(result.sent[0], 'HEAD', second.context(result));
        assert.ok(!result.sent.includes('POST'), second.context(result));
        const resumedAt = Number(result.sent.find((r) => r.startsWith('PATCH')).split(' ')[1]);
        // (Where the server was: the chunks it acknowledged, and what arrived of the one cut off.)
        assert.ok(resumedAt >= 30 * MiB - chunkSize && resumedAt < files.big.size, second.context(result));
        const [entry] = result.successful;
        assert.ok(entry?.receipt, second.context(result));
        const claims = receiptClaims(entry.receipt);
        assert.equal(claims.size, files.big.size);
        const stored = await storedObject(b.store, claims.key);
        assert.equal(stored.sha256, files.big.sha256, `${claims.key}: content differs`);
        console.log(`# ${backendName}: tab closed after ${stopped.stopped} bytes; resumed at ${resumedAt}`);
      } finally {
        await ctx.close();
      }
    });

    test('a 100 MiB file in 7 MiB + 3 byte chunks through @uppy/tus is byte-identical', async () => {
      const { page, context } = await openPage();
      const grant = mintGrant({ sub: 'uppy-tus', max_size: 128 * MiB });
      await page.setInputFiles('#files', [files.big.path]);
      const chunkSize = 7 * MiB + 3;
      const result = await page.evaluate((a) => window.uploadWithTus(a), { endpoint: b.filesUrl, grant, chunkSize });
      assert.deepEqual(result.failed, [], context(result));
      const [entry] = result.successful;
      assert.ok(entry?.receipt, context(result));
      assert.equal(result.statuses.filter((s) => s === 'PATCH 204').length, Math.ceil(files.big.size / chunkSize), context(result));
      const claims = receiptClaims(entry.receipt);
      const stored = await storedObject(b.store, claims.key);
      assert.equal(stored.size, files.big.size, claims.key);
      assert.equal(stored.sha256, files.big.sha256, `${claims.key}: content differs`);
      await page.close();
    });
  });
}
