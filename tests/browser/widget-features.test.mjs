// chute.js features beyond the basic paths, in Debian's Chromium against
// `chute serve`: CRC32C checksums from a Web Worker (verified by the store
// per part and by the server at completion), drag and drop and paste,
// pause/resume, cancelling one file of several, and image downscaling
// before upload.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { BUCKET, mintGrant, startChute } from './chute.mjs';
import {
  MiB, embeddedStore, events, launchChromium, openWidgetPage, s3Client as storeClient,
  startFormApp, waitDone, widgetForm, writeRandom,
} from './support.mjs';

let chute;
let app;
let browser;
let work;

// CRC32C, byte at a time: the reference the worker's slicing-by-8 must match.
const CRC_TABLE = new Uint32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  return c >>> 0;
});
function crc32c(bytes) {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  const out = Buffer.alloc(4);
  out.writeUInt32BE((c ^ 0xffffffff) >>> 0);
  return out.toString('base64');
}

/** Serves the current form page at / on another loopback origin; keeps the bodies posted to /submit. */
function startApp() {
  return startFormApp({ posts: [] }, async (req, body) => {
    app.state.posts.push({ type: req.headers['content-type'], body: body.toString('latin1') });
    return '<!doctype html><title>Saved</title><p>saved</p>';
  });
}

function formPage({ grant, attrs = '', multiple = false }) {
  return widgetForm({
    title: 'Widget features', chuteUrl: chute.appUrl, grant, attrs, multiple,
    above: '<div id="zone" style="border: 2px dashed; padding: 2em">Drop files here</div>\n',
    types: ['start', 'progress', 'retry', 'complete', 'error', 'done', 'pause', 'resume'],
  });
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'chute-widget-features-'));
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

async function openForm(options) {
  app.state.html = formPage(options);
  const { page, requests, context } = await openWidgetPage(browser, app.url, { chute, storeUrl: chute.s3Endpoint, details: true });
  return { page, requests, context };
}

/** The receipt's claims (the payload is read, the server signed it). */
function claims(receipt) {
  return JSON.parse(Buffer.from(receipt.split('.')[1], 'base64url').toString());
}

const s3Client = () => storeClient(embeddedStore(chute));

/** The keys of the bucket's multipart uploads in progress (S3 ListMultipartUploads). */
async function multipartKeys() {
  const s3 = s3Client();
  const out = await s3.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }));
  s3.destroy();
  return (out.Uploads ?? []).map((u) => u.Key);
}

async function storedBytes(key) {
  const s3 = s3Client();
  const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  const bytes = Buffer.from(await got.Body.transformToByteArray());
  s3.destroy();
  return bytes;
}

const isCreate = (r) => r.method === 'POST' && r.url === `${chute.appUrl}/api/uploads`;
const isPart = (r) => r.method === 'PUT' && r.url.startsWith(chute.s3Endpoint);
const partOf = (url) => Number(new URL(url).searchParams.get('partNumber'));

test('crc32c: multipart parts and the whole object are checksummed in a worker and verified', async () => {
  const file = writeRandom(join(work, 'crc.bin'), 23 * MiB + 123);
  const bytes = readFileSync(file.path);
  const { page, requests, context } = await openForm({ grant: mintGrant({ sub: 'crc-user', max_size: 64 * MiB }), attrs: 'data-checksum="crc32c"' });
  // The main thread stays responsive while the worker hashes: long tasks are counted.
  await page.evaluate(() => {
    window.longTasks = [];
    new PerformanceObserver((l) => window.longTasks.push(...l.getEntries().map((e) => e.duration))).observe({ type: 'longtask', buffered: false });
  });
  await page.setInputFiles('input[type=file]', file.path);
  const done = await waitDone(page);
  assert.equal(done.errors.length, 0, `${JSON.stringify(done)}\n${context()}`);
  const create = JSON.parse(requests.find(isCreate).body);
  assert.equal(create.method, 'multipart');
  assert.equal(create.part_checksum_algorithm, 'crc32c');
  assert.deepEqual(create.checksum, { algorithm: 'crc32c', value: crc32c(bytes) });
  // Each part went with its own CRC32C, which the store checked (200).
  const parts = requests.filter(isPart);
  assert.equal(parts.length, 5);
  for (const p of parts) {
    const n = partOf(p.url);
    assert.equal(p.headers['x-amz-checksum-crc32c'], crc32c(bytes.subarray((n - 1) * 5 * MiB, n * 5 * MiB)), `part ${n}`);
  }
  const signs = requests.filter((r) => r.method === 'POST' && r.url.endsWith('/parts'));
  assert.ok(signs.length >= 1 && JSON.parse(signs[0].body).checksums['1'], JSON.stringify(signs));
  const receipt = claims(done.receipts[0].receipt);
  assert.equal(receipt.checksum, `crc32c:${crc32c(bytes)}`);
  assert.equal(createHash('sha256').update(await storedBytes(receipt.key)).digest('hex'), file.sha256);
  const longest = Math.max(0, ...(await page.evaluate(() => window.longTasks)));
  console.log(`# crc32c multipart 23 MiB: longest main-thread task ${longest} ms`);
  await page.close();
});

test('crc32c: a small file by POST form carries its checksum to the store', async () => {
  const file = writeRandom(join(work, 'small-crc.bin'), 70_000);
  const bytes = readFileSync(file.path);
  const { page, requests, context } = await openForm({ grant: mintGrant({ sub: 'crc-user', max_size: 64 * MiB }), attrs: 'data-checksum="crc32c"' });
  await page.setInputFiles('input[type=file]', file.path);
  const done = await waitDone(page);
  assert.equal(done.errors.length, 0, `${JSON.stringify(done)}\n${context()}`);
  assert.equal(JSON.parse(requests.find(isCreate).body).method, 'post');
  assert.equal(claims(done.receipts[0].receipt).checksum, `crc32c:${crc32c(bytes)}`);
  await page.close();
});

test('crc32c: a tampered declared checksum is refused and the widget reports chute:error', async () => {
  for (const size of [12 * MiB + 5, 40_000]) {
    const file = writeRandom(join(work, `tampered-${size}.bin`), size);
    const { page, context } = await openForm({ grant: mintGrant({ sub: 'crc-user', max_size: 64 * MiB }), attrs: 'data-checksum="crc32c" data-multipart-threshold="8388608"' });
    await page.route(`${chute.appUrl}/api/uploads`, async (route) => {
      const req = route.request();
      if (req.method() !== 'POST') return route.continue();
      const body = JSON.parse(req.postData());
      body.checksum.value = 'AAAAAA==';
      await route.continue({ postData: JSON.stringify(body) });
    });
    await page.setInputFiles('input[type=file]', file.path);
    const done = await waitDone(page);
    assert.equal(done.receipts.length, 0, `${JSON.stringify(done)}\n${context()}`);
    const [err] = await events(page, 'error');
    if (size > 8 * MiB) {
      // Parts carry their own (right) checksums; completion compares the whole.
      assert.equal(err.code, 'checksum_mismatch', JSON.stringify(err));
    } else {
      // The POST form binds the checksum: the store refuses the bytes.
      assert.equal(err.code, 'store_refused', JSON.stringify(err));
      assert.match(err.message, /400/);
    }
    assert.notEqual(await page.$eval('input[type=file]', (i) => i.validationMessage), '');
    await page.close();
  }
});

test('crc32c: a part whose declared checksum is wrong is refused by the store', async () => {
  const file = writeRandom(join(work, 'bad-part.bin'), 12 * MiB);
  const { page, requests, context } = await openForm({ grant: mintGrant({ sub: 'crc-user', max_size: 64 * MiB }), attrs: 'data-checksum="crc32c" data-multipart-threshold="8388608"' });
  await page.route((url) => url.href.startsWith(chute.appUrl) && url.pathname.endsWith('/parts'), async (route) => {
    const body = JSON.parse(route.request().postData());
    if (body.checksums['2']) body.checksums['2'] = 'AAAAAA==';
    await route.continue({ postData: JSON.stringify(body) });
  });
  await page.setInputFiles('input[type=file]', file.path);
  const done = await waitDone(page);
  assert.equal(done.receipts.length, 0, `${JSON.stringify(done)}\n${context()}`);
  const [err] = await events(page, 'error');
  assert.equal(err.code, 'store_refused', JSON.stringify(err));
  assert.match(err.message, /400/);
  assert.ok(requests.some((r) => isPart(r) && partOf(r.url) === 2 && r.headers['x-amz-checksum-crc32c'] === 'AAAAAA=='));
  await page.close();
});

test('drag and drop onto data-chute-drop, and paste onto the form, upload the files', async () => {
  const { page, context } = await openForm({ grant: mintGrant({ sub: 'drop-user', max_size: MiB }), attrs: 'data-chute-drop="#zone"', multiple: true });
  await page.evaluate(() => {
    const dt = new DataTransfer();
    dt.items.add(new File(['dropped one'], 'dropped-1.txt', { type: 'text/plain' }));
    dt.items.add(new File(['dropped two!'], 'dropped-2.txt', { type: 'text/plain' }));
    const zone = document.querySelector('#zone');
    const over = new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true });
    zone.dispatchEvent(over);
    window.overAccepted = over.defaultPrevented && zone.hasAttribute('data-chute-over');
    zone.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  });
  assert.equal(await page.evaluate(() => window.overAccepted), true, 'dragover is accepted and marks the zone');
  const dropped = await waitDone(page);
  assert.equal(dropped.errors.length, 0, `${JSON.stringify(dropped)}\n${context()}`);
  assert.deepEqual(dropped.receipts.map((r) => r.file).sort(), ['dropped-1.txt', 'dropped-2.txt']);
  assert.equal(await page.$eval('input[type=file]', (i) => i.files.length), 2, 'the input holds the dropped files');

  await page.evaluate(() => {
    const dt = new DataTransfer();
    dt.items.add(new File(['pasted bytes'], 'pasted.txt', { type: 'text/plain' }));
    document.querySelector('input[type=file]').dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
  });
  const pasted = await waitDone(page, 2);
  assert.equal(pasted.errors.length, 0, `${JSON.stringify(pasted)}\n${context()}`);
  assert.deepEqual(pasted.receipts.map((r) => r.file), ['pasted.txt']);
  assert.equal(claims(pasted.receipts[0].receipt).size, 'pasted bytes'.length);
  // The form now carries the pasted file's receipt only.
  assert.equal(await page.locator('input[type=hidden][data-chute-receipt]').count(), 1);
  await page.close();
});

test('pause aborts part requests and keeps the upload; resume sends only the missing parts', async () => {
  const PARTS = 8;
  const file = writeRandom(join(work, 'pause.bin'), PARTS * 5 * MiB);
  const { page, requests, context } = await openForm({ grant: mintGrant({ sub: 'pause-user', max_size: 64 * MiB }), attrs: 'data-parallel="2"' });
  // Parts 1-3 go through; later parts hang until paused.
  await page.route((url) => url.href.startsWith(chute.s3Endpoint) && partOf(url.href) > 3, () => {});
  let stored = 0;
  page.on('response', (r) => {
    if (r.request().method() === 'PUT' && r.url().startsWith(chute.s3Endpoint) && r.status() === 200) stored++;
  });
  await page.setInputFiles('input[type=file]', file.path);
  const deadline = Date.now() + 60_000;
  while (stored < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.equal(stored, 3, context());
  await page.evaluate(async (src) => {
    const { pause } = await import(src);
    pause(document.querySelector('input[type=file]'));
  }, `${chute.appUrl}/chute.js`);
  assert.equal((await events(page, 'pause')).length, 1);
  assert.equal((await events(page, 'error')).length, 0, 'a pause is not an error');
  assert.equal(await page.$eval('input[type=file]', (i) => i.validationMessage), 'uploads are paused');
  // The paused form does not submit.
  await page.click('button[type=submit]');
  await page.waitForTimeout(300);
  assert.equal(page.url(), `${app.url}/`);

  await page.unrouteAll({ behavior: 'ignoreErrors' });
  const before = requests.length;
  await page.evaluate(async (src) => {
    const { resume } = await import(src);
    resume(document.querySelector('input[type=file]'));
  }, `${chute.appUrl}/chute.js`);
  const done = await waitDone(page);
  assert.equal(done.errors.length, 0, `${JSON.stringify(done)}\n${context()}`);
  const later = requests.slice(before);
  assert.equal(later.filter(isCreate).length, 0, 'no new upload');
  assert.equal(requests.filter((r) => r.method === 'DELETE').length, 0, 'the multipart upload was kept');
  const parts = later.filter(isPart).map((r) => partOf(r.url)).sort((a, b) => a - b);
  assert.deepEqual(parts, [4, 5, 6, 7, 8]);
  const receipt = claims(done.receipts[0].receipt);
  assert.equal(createHash('sha256').update(await storedBytes(receipt.key)).digest('hex'), file.sha256);
  assert.equal(await page.$eval('input[type=file]', (i) => i.validationMessage), '');
  await page.close();
});

test('an image over data-max-width is scaled down in the browser before upload', async () => {
  const { page, context } = await openForm({ grant: mintGrant({ sub: 'image-user', max_size: 16 * MiB }), attrs: 'accept="image/*" data-max-width="800" data-max-height="700"' });
  const originalSize = await page.evaluate(async () => {
    const canvas = new OffscreenCanvas(2000, 1000);
    const ctx = canvas.getContext('2d');
    const g = ctx.createLinearGradient(0, 0, 2000, 1000);
    g.addColorStop(0, '#c33');
    g.addColorStop(1, '#33c');
    ctx.fillStyle = g;
    ctx.fillRect(0, 0, 2000, 1000);
    for (let i = 0; i < 400; i++) {
      ctx.fillStyle = `hsl(${i * 7}, 70%, 50%)`;
      ctx.fillRect((i * 97) % 2000, (i * 53) % 1000, 40, 40);
    }
    const blob = await canvas.convertToBlob({ type: 'image/png' });
    const dt = new DataTransfer();
    dt.items.add(new File([blob], 'wide.png', { type: 'image/png' }));
    const input = document.querySelector('input[type=file]');
    input.files = dt.files;
    input.dispatchEvent(new Event('change', { bubbles: true }));
    return blob.size;
  });
  const done = await waitDone(page);
  assert.equal(done.errors.length, 0, `${JSON.stringify(done)}\n${context()}`);
  const dims = await page.evaluate(async () => {
    const b = await createImageBitmap(window.files[0]);
    return { width: b.width, height: b.height, type: window.files[0].type, size: window.files[0].size };
  });
  assert.deepEqual({ width: dims.width, height: dims.height, type: dims.type }, { width: 800, height: 400, type: 'image/png' });
  const receipt = claims(done.receipts[0].receipt);
  assert.equal(receipt.filename, 'wide.png');
  assert.equal(receipt.size, dims.size);
  assert.ok(receipt.size < originalSize, `${receipt.size} >= ${originalSize}`);
  // The stored object is that PNG: its IHDR says 800 x 400.
  const png = await storedBytes(receipt.key);
  assert.equal(png.length, receipt.size);
  assert.equal(png.subarray(1, 4).toString(), 'PNG');
  assert.deepEqual([png.readUInt32BE(16), png.readUInt32BE(20)], [800, 400]);
  await page.close();
});

test('cancel(input, file) stops one file: its multipart upload is deleted, the other file uploads, the form posts one receipt', async () => {
  const big = writeRandom(join(work, 'cancel-big.bin'), 4 * 5 * MiB);
  const small = writeRandom(join(work, 'cancel-small.bin'), 3000);
  const { page, requests, context } = await openForm({ grant: mintGrant({ sub: 'cancel-user', max_size: 64 * MiB }), attrs: 'data-parallel="2"', multiple: true });
  // Part 1 of the big file goes through; the other parts hang until cancelled.
  await page.route((url) => url.href.startsWith(chute.s3Endpoint) && partOf(url.href) > 1, () => {});
  let stored = 0;
  page.on('response', (r) => {
    if (r.request().method() === 'PUT' && r.url().startsWith(chute.s3Endpoint) && r.status() === 200) stored++;
  });
  await page.setInputFiles('input[type=file]', [big.path, small.path]);
  await page.waitForFunction(() => window.events.some((e) => e.type === 'complete' && e.detail.file === 'cancel-small.bin'), null, { timeout: 60_000 });
  const deadline = Date.now() + 60_000;
  while (stored < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.equal(stored, 1, context());
  const before = (await multipartKeys()).filter((k) => k.endsWith('/cancel-big.bin'));
  assert.equal(before.length, 1, `the big file's multipart upload is in progress: ${before}`);
  assert.equal(await page.evaluate(() => Object.keys(localStorage).filter((k) => k.includes('cancel-big.bin')).length), 1);

  const found = await page.evaluate(async (src) => {
    const { cancel } = await import(src);
    const input = document.querySelector('input[type=file]');
    const file = Array.from(input.files).find((f) => f.name === 'cancel-big.bin');
    return cancel(input, file);
  }, `${chute.appUrl}/chute.js`);
  assert.equal(found, true);
  const done = await waitDone(page);
  assert.deepEqual(done.receipts.map((r) => r.file), ['cancel-small.bin'], `${JSON.stringify(done)}\n${context()}`);
  assert.deepEqual(done.errors, []);
  assert.deepEqual(done.cancelled, ['cancel-big.bin']);
  const errors = await events(page, 'error');
  assert.deepEqual(errors.map((e) => [e.file, e.code]), [['cancel-big.bin', 'cancelled']]);
  // The widget DELETEd the upload: the store no longer lists it.
  assert.ok(requests.some((r) => isCreate(r) && JSON.parse(r.body).filename === 'cancel-big.bin'), 'the big file was created');
  const gone = Date.now() + 10_000;
  let left = [];
  do {
    left = (await multipartKeys()).filter((k) => k.endsWith('/cancel-big.bin'));
    if (left.length === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  } while (Date.now() < gone);
  assert.deepEqual(left, [], 'the cancelled multipart upload is aborted in the store');
  assert.ok(requests.some((r) => r.method === 'DELETE' && r.url.startsWith(`${chute.appUrl}/api/uploads/`)), 'DELETE /api/uploads/{id}');
  assert.equal(await page.evaluate(() => Object.keys(localStorage).filter((k) => k.includes('cancel-big.bin')).length), 0, 'resume state forgotten');
  assert.equal(await page.$eval('input[type=file]', (i) => i.validationMessage), '', 'a cancelled file does not block the form');
  // A second cancel of the same file finds nothing.
  assert.equal(await page.evaluate(async (src) => {
    const { cancel } = await import(src);
    const input = document.querySelector('input[type=file]');
    return cancel(input, Array.from(input.files).find((f) => f.name === 'cancel-big.bin'));
  }, `${chute.appUrl}/chute.js`), false);

  await page.unrouteAll({ behavior: 'ignoreErrors' });
  await page.click('button[type=submit]');
  await page.waitForURL(`${app.url}/submit`);
  assert.equal(app.state.posts.length, 1);
  const { body } = app.state.posts[0];
  const fields = [...body.matchAll(/name="attachment"(?:; filename="[^"]*")?\r\n(?:[^\r\n]+\r\n)*\r\n([^\r]*)\r\n/g)].map((m) => m[1]);
  assert.equal(fields.length, 1, body.slice(0, 2000));
  const receipt = claims(fields[0]);
  assert.equal(receipt.filename, 'cancel-small.bin');
  assert.equal(createHash('sha256').update(await storedBytes(receipt.key)).digest('hex'), small.sha256);
  await page.close();
});

test('cancel(input, file) of an uploaded file takes its receipt out of the form', async () => {
  const { page, context } = await openForm({ grant: mintGrant({ sub: 'cancel-user', max_size: MiB }), multiple: true });
  await page.evaluate(() => {
    const dt = new DataTransfer();
    dt.items.add(new File(['first'], 'first.txt', { type: 'text/plain' }));
    dt.items.add(new File(['second'], 'second.txt', { type: 'text/plain' }));
    const input = document.querySelector('input[type=file]');
    input.files = dt.files;
    input.dispatchEvent(new Event('change', { bubbles: true }));
  });
  const done = await waitDone(page);
  assert.equal(done.receipts.length, 2, `${JSON.stringify(done)}\n${context()}`);
  assert.equal(await page.locator('input[type=hidden][data-chute-receipt]').count(), 2);
  await page.evaluate(async (src) => {
    const { cancel } = await import(src);
    const input = document.querySelector('input[type=file]');
    cancel(input, Array.from(input.files).find((f) => f.name === 'first.txt'));
  }, `${chute.appUrl}/chute.js`);
  const receipts = await page.$$eval('input[type=hidden][data-chute-receipt]', (hs) => hs.map((h) => h.value));
  assert.equal(receipts.length, 1);
  assert.equal(claims(receipts[0]).filename, 'second.txt');
  assert.deepEqual((await events(page, 'error')).map((e) => [e.file, e.code]), [['first.txt', 'cancelled']]);
  await page.close();
});
