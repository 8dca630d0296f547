// chute.js (served by `chute serve` at /chute.js) in Debian's Chromium, on
// a form served by a tiny app on another loopback port (web security on).
// The app verifies the receipts the form posts with POST
// /api/receipts/verify; the objects are read back over the S3 API.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mintGrant, startChute } from './chute.mjs';
import {
  MiB, embeddedStore, events, failPartOnce, launchChromium, openWidgetPage,
  startFormApp, storedObject as readObject, uploadWithPart3Cut, verifyReceipt, waitDone, widgetForm, writeRandom,
} from './support.mjs';

let chute;
let app;
let browser;
let work;

/**
 * The test app: GET / answers the current form; POST /submit reads the
 * posted receipts, verifies each with Chute and answers them as JSON.
 */
function startApp() {
  return startFormApp({ submissions: [] }, async (req, body) => {
    const form = await new Request('http://x/', { method: 'POST', headers: { 'content-type': req.headers['content-type'] }, body }).formData();
    const posted = form.getAll('attachment');
    const verified = [];
    for (const value of posted) {
      if (typeof value !== 'string') {
        verified.push({ valid: false, error: 'file bytes were posted' });
        continue;
      }
      verified.push(await verifyReceipt(chute.appUrl, value));
    }
    const submission = { title: form.get('title'), bytes: body.length, verified };
    app.state.submissions.push(submission);
    return `<!doctype html><title>saved</title><pre id="result">${JSON.stringify(submission).replace(/</g, '\\u003c')}</pre>`;
  });
}

/** The form page: a plain form whose file input carries data-chute. */
function formPage({ grant, attrs = '', multiple = false }) {
  return widgetForm({
    title: 'Widget test', chuteUrl: chute.appUrl, grant, attrs, multiple,
    fields: '  <input name="title" value="hello">\n',
  });
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'chute-widget-'));
  chute = await startChute();
  app = await startApp();
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await app?.close();
  const code = await chute?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
  assert.ok(code === null || code === '0', `chute serve exited with ${code} on SIGTERM`);
});

/** Opens the form page; records requests to Chute and the store. */
async function openForm(options) {
  app.state.html = formPage(options);
  return openWidgetPage(browser, app.url, { chute, storeUrl: chute.s3Endpoint });
}

/** Submits the form and answers what the app received. */
async function submit(page) {
  const before = app.state.submissions.length;
  await Promise.all([page.waitForURL(`${app.url}/submit`), page.click('button[type=submit]')]);
  assert.equal(app.state.submissions.length, before + 1);
  return app.state.submissions.at(-1);
}

/** The object in Chute's embedded store: `{size, sha256}`. */
const storedObject = (key) => readObject(embeddedStore(chute), key);

test('one small file: uploaded on choice, the form posts a receipt the app verifies', async () => {
  const file = writeRandom(join(work, 'note.txt'), 3000);
  const { page, context } = await openForm({ grant: mintGrant({ sub: 'widget-user', max_size: 10 * MiB }) });
  await page.setInputFiles('input[type=file]', file.path);
  const done = await waitDone(page);
  assert.equal(done.errors.length, 0, `${JSON.stringify(done)}\n${context()}`);
  assert.equal(done.receipts.length, 1);
  const [complete] = await events(page, 'complete');
  assert.equal(complete.file, 'note.txt');
  // Accessible progress without CSS: a progressbar at 100.
  const bar = await page.getAttribute('[role=progressbar]', 'aria-valuenow');
  assert.equal(bar, '100');
  const progress = await events(page, 'progress');
  assert.equal(progress.at(-1).progress, 1);
  assert.equal(progress.at(-1).currentFileName, 'note.txt');

  const posted = await submit(page);
  assert.equal(posted.title, 'hello');
  assert.ok(posted.bytes < 3000, `the form posted ${posted.bytes} bytes: file bytes went to the app`);
  assert.equal(posted.verified.length, 1);
  const [v] = posted.verified;
  assert.equal(v.valid, true, JSON.stringify(v));
  assert.equal(v.receipt.sub, 'widget-user');
  assert.equal(v.receipt.size, 3000);
  const stored = await storedObject(v.receipt.key);
  assert.equal(stored.sha256, file.sha256);
  await page.close();
});

test('ten files at once', async () => {
  const files = Array.from({ length: 10 }, (_, i) => writeRandom(join(work, `file-${i}.bin`), 1000 + i * 777));
  const { page, context } = await openForm({ grant: mintGrant({ sub: 'widget-user', max_size: 10 * MiB }), multiple: true });
  await page.setInputFiles('input[type=file]', files.map((f) => f.path));
  const done = await waitDone(page);
  assert.equal(done.errors.length, 0, `${JSON.stringify(done)}\n${context()}`);
  assert.equal(done.receipts.length, 10);
  assert.equal(await page.locator('[role=progressbar][aria-valuenow="100"]').count(), 10);
  const posted = await submit(page);
  assert.equal(posted.verified.length, 10);
  const byName = new Map(posted.verified.map((v) => [v.receipt?.filename, v]));
  for (const f of files) {
    const v = byName.get(f.path.split('/').at(-1));
    assert.ok(v?.valid, `${f.path}: ${JSON.stringify(posted.verified)}`);
    assert.equal((await storedObject(v.receipt.key)).sha256, f.sha256);
  }
  await page.close();
});

test('a 200 MiB file by multipart: progress strictly increases to 1.0, bytes identical', async () => {
  const file = writeRandom(join(work, 'big.bin'), 200 * MiB);
  const { page, requests, context } = await openForm({ grant: mintGrant({ sub: 'widget-user', max_size: 256 * MiB }) });
  const started = Date.now();
  await page.setInputFiles('input[type=file]', file.path);
  const done = await waitDone(page);
  const seconds = (Date.now() - started) / 1000;
  assert.equal(done.errors.length, 0, `${JSON.stringify(done)}\n${context()}`);
  console.log(`# 200 MiB through the widget in ${seconds.toFixed(1)} s (${(200 / seconds).toFixed(0)} MiB/s)`);
  const progress = (await events(page, 'progress')).map((p) => p.progress);
  assert.ok(progress.length > 10, `only ${progress.length} progress events`);
  for (let i = 1; i < progress.length; i++) assert.ok(progress[i] > progress[i - 1], `progress went ${progress[i - 1]} -> ${progress[i]}`);
  assert.equal(progress.at(-1), 1);
  const last = (await events(page, 'progress')).at(-1);
  assert.equal(last.loaded, 200 * MiB);
  assert.equal(last.total, 200 * MiB);
  assert.ok(last.bytesPerSecond > 0);
  // Parts went to the store with PUT: 40 parts of 5 MiB.
  const puts = requests.filter((r) => r.method === 'PUT' && r.url.startsWith(chute.s3Endpoint));
  assert.equal(puts.length, 40);
  const posted = await submit(page);
  const [v] = posted.verified;
  assert.equal(v.valid, true, JSON.stringify(v));
  assert.equal(v.receipt.size, 200 * MiB);
  assert.equal((await storedObject(v.receipt.key)).sha256, file.sha256);
  // Finished: nothing is left to resume.
  assert.equal(await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('chute:')).length), 0);
  await page.close();
});

test('a file over data-max-size or of a refused type is refused before any request; the form does not submit', async () => {
  const file = writeRandom(join(work, 'too-big.bin'), 5000);
  const { page, requests } = await openForm({ grant: mintGrant({ sub: 'widget-user', max_size: 10 * MiB }), attrs: 'data-max-size="4096" accept=".bin,image/*"' });
  await page.setInputFiles('input[type=file]', file.path);
  await page.waitForFunction(() => window.events.some((e) => e.type === 'error'));
  const [err] = await events(page, 'error');
  assert.equal(err.code, 'too_large');
  assert.match(await page.$eval('input[type=file]', (i) => i.validationMessage), /at most 4 KiB/);

  // A type the accept attribute refuses.
  const text = join(work, 'notes.txt');
  writeFileSync(text, 'plain text');
  await page.setInputFiles('input[type=file]', text);
  await page.waitForFunction(() => window.events.filter((e) => e.type === 'error').length === 2);
  assert.equal((await events(page, 'error'))[1].code, 'type_not_allowed');

  const before = app.state.submissions.length;
  await page.click('button[type=submit]');
  await page.waitForTimeout(500);
  assert.equal(page.url(), `${app.url}/`);
  assert.equal(app.state.submissions.length, before);
  assert.deepEqual(requests, [], 'no request reached Chute or the store');
  await page.close();
});

test('a part request cut once is retried and the object is byte-identical', async () => {
  const file = writeRandom(join(work, 'cut.bin'), 30 * MiB);
  const { page, context } = await openForm({ grant: mintGrant({ sub: 'widget-user', max_size: 64 * MiB }) });
  const { retries } = await uploadWithPart3Cut(page, chute.s3Endpoint, file, context);
  assert.equal(retries[0].attempt, 1);
  const posted = await submit(page);
  const [v] = posted.verified;
  assert.equal(v.valid, true, JSON.stringify(v));
  assert.equal((await storedObject(v.receipt.key)).sha256, file.sha256);
  await page.close();
});

test('an expired part URL (403) is signed again and the upload succeeds', async () => {
  const file = writeRandom(join(work, 'expired.bin'), 20 * MiB);
  const { page, requests, context } = await openForm({ grant: mintGrant({ sub: 'widget-user', max_size: 64 * MiB }) });
  const refused = await failPartOnce(page, chute.s3Endpoint, 2, (route) => route.fulfill({
    status: 403,
    headers: { 'access-control-allow-origin': app.url, 'content-type': 'application/xml' },
    body: '<?xml version="1.0"?><Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>',
  }));
  await page.setInputFiles('input[type=file]', file.path);
  const done = await waitDone(page);
  assert.equal(done.errors.length, 0, `${JSON.stringify(done)}\n${context()}`);
  assert.equal(refused(), 1);
  const [retry] = await events(page, 'retry');
  assert.equal(retry.part, 2);
  assert.equal(retry.delay, 0, 'an expired URL is signed again at once');
  assert.match(retry.reason, /403 AccessDenied: Request has expired/);
  const signs = requests.filter((r) => r.method === 'POST' && /\/api\/uploads\/[^/]+\/parts$/.test(r.url));
  assert.equal(signs.length, 1, JSON.stringify(requests));
  const posted = await submit(page);
  const [v] = posted.verified;
  assert.equal(v.valid, true, JSON.stringify(v));
  assert.equal((await storedObject(v.receipt.key)).sha256, file.sha256);
  await page.close();
});

test('after a reload mid-upload the same file resumes from the stored parts', async () => {
  const PARTS = 12;
  const file = writeRandom(join(work, 'resume.bin'), PARTS * 5 * MiB);
  const { page, requests, context } = await openForm({ grant: mintGrant({ sub: 'widget-user', max_size: 64 * MiB }) });
  // Parts 1-4 go through; later parts hang until the page goes away.
  const held = [];
  const partOf = (url) => Number(new URL(url).searchParams.get('partNumber'));
  await page.route((url) => url.href.startsWith(chute.s3Endpoint) && partOf(url.href) > 4, (route) => {
    if (route.request().method() === 'PUT') held.push(route);
    else route.continue();
  });
  let stored = 0;
  page.on('response', (r) => {
    if (r.request().method() === 'PUT' && r.url().startsWith(chute.s3Endpoint) && r.status() === 200) stored++;
  });
  await page.setInputFiles('input[type=file]', file.path);
  const deadline = Date.now() + 60_000;
  while ((stored < 4 || held.length < 4) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.equal(stored, 4, context());
  assert.ok(await page.evaluate(() => Object.keys(localStorage).some((k) => k.startsWith('chute:'))), 'the upload is remembered');

  await page.unrouteAll({ behavior: 'ignoreErrors' });
  for (const route of held) route.abort().catch(() => {});
  const before = requests.length;
  await page.reload();
  await page.waitForFunction(() => document.querySelector('input[type=file]').dataset.chuteName === 'attachment');
  await page.setInputFiles('input[type=file]', file.path);
  const done = await waitDone(page);
  assert.equal(done.errors.length, 0, `${JSON.stringify(done)}\n${context()}`);
  const after = requests.slice(before);
  // No new upload: the status call, then only the missing parts.
  assert.equal(after.filter((r) => r.method === 'POST' && r.url === `${chute.appUrl}/api/uploads`).length, 0, JSON.stringify(after));
  assert.ok(after.some((r) => r.method === 'GET' && /\/api\/uploads\/[^/]+$/.test(r.url)), JSON.stringify(after));
  const parts = after.filter((r) => r.method === 'PUT' && r.url.startsWith(chute.s3Endpoint)).map((r) => partOf(r.url));
  // Parts 1-4 are never sent again (held parts may have gone through as
  // the routes were removed; those are not sent again either).
  const unique = [...new Set(parts)].sort((a, b) => a - b);
  assert.ok(unique.length > 0 && unique[0] > 4 && unique.at(-1) === PARTS, JSON.stringify(unique));
  assert.equal(parts.length, unique.length, 'no part sent twice');
  const sentBytes = parts.length * 5 * MiB;
  assert.ok(sentBytes < file.size, `sent ${sentBytes} of ${file.size} bytes after the reload`);
  // Progress resumed from the stored bytes and still ended at 1.0.
  const progress = (await events(page, 'progress')).map((p) => p.progress);
  assert.ok(progress[0] >= 4 / PARTS, `first progress ${progress[0]}`);
  assert.equal(progress.at(-1), 1);
  const posted = await submit(page);
  const [v] = posted.verified;
  assert.equal(v.valid, true, JSON.stringify(v));
  assert.equal((await storedObject(v.receipt.key)).sha256, file.sha256);
  await page.close();
});
