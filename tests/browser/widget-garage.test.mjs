// chute.js in Debian's Chromium with Garage as Chute's store: `chute serve`
// runs with CHUTE_STORE=s3 on a single-node Garage started by
// `scripts/garage start` (it installs the bucket's CORS rule itself), so the
// browser PUTs and POSTs straight into Garage. The key cases of
// widget.test.mjs: a small file by POST form, a 30 MiB multipart upload,
// a part request cut once, and CRC32C checksums verified by Garage. Objects are read back from Garage over the
// S3 API and compared by SHA-256. Never skipped: without a Garage binary it
// fails and says how to get one (scripts/test builds it first).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { mintGrant, serveStatic, startChute } from './chute.mjs';
import {
  MiB, events, launchChromium, openWidgetPage, s3Client, storedObject, uploadWithPart3Cut,
  verifyReceipt, waitDone, widgetForm, writeRandom,
} from './support.mjs';
import { s3StoreEnv, startGarage, stopGarage } from '../node/tus-support.mjs';

let work;
let garageDir;
let garage; // {endpoint, region, bucket, accessKey, secretKey}
let chute;
let site;
let browser;
// The test site's routes; `/` is the current form page.
const siteRoutes = { '/favicon.ico': { type: 'image/x-icon', body: '' } };

/** The form page: a plain form whose file input carries data-chute. */
function formPage(grant, attrs = '') {
  return widgetForm({ title: 'Widget on Garage', chuteUrl: chute.appUrl, grant, attrs });
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'chute-widget-garage-'));
  garageDir = join(work, 'garage');
  garage = startGarage(garageDir);
  chute = await startChute({ env: s3StoreEnv(garage) });
  site = await serveStatic(siteRoutes);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await site?.close();
  const code = await chute?.stop();
  const stopped = garageDir ? stopGarage(garageDir) : null;
  if (work) rmSync(work, { recursive: true, force: true });
  assert.ok(code === null || code === '0', `chute serve exited with ${code} on SIGTERM`);
  assert.equal(stopped, null);
});

/** Opens the form page; records the requests that reach Chute or Garage. */
async function openForm(grant, attrs = '') {
  siteRoutes['/'] = { type: 'text/html; charset=utf-8', body: formPage(grant, attrs) };
  const { page, requests, context } = await openWidgetPage(browser, site.url, { chute, storeUrl: garage.endpoint });
  return { page, requests, context };
}

/** Verifies the receipt with Chute; answers its claims. */
async function verify(receipt) {
  const v = await verifyReceipt(chute.appUrl, receipt);
  assert.equal(v.valid, true, JSON.stringify(v));
  return v.receipt;
}

test('Garage: one small file goes to Garage by POST form; the receipt verifies', async () => {
  const file = writeRandom(join(work, 'note.txt'), 3000);
  const { page, requests, context } = await openForm(mintGrant({ sub: 'widget-user', max_size: 10 * MiB }));
  await page.setInputFiles('input[type=file]', file.path);
  const done = await waitDone(page);
  assert.equal(done.errors.length, 0, `${JSON.stringify(done)}\n${context()}`);
  assert.equal(done.receipts.length, 1);
  const stores = requests.filter((r) => r.url.startsWith(garage.endpoint));
  assert.deepEqual(stores.map((r) => r.method), ['POST'], JSON.stringify(requests));
  const progress = await events(page, 'progress');
  assert.equal(progress.at(-1).progress, 1);
  const receipt = await verify(done.receipts[0].receipt);
  assert.equal(receipt.sub, 'widget-user');
  assert.equal(receipt.size, 3000);
  assert.deepEqual(await storedObject(garage, receipt.key), { size: 3000, sha256: file.sha256 });
  await page.close();
});

test('Garage: a 30 MiB multipart upload, progress strictly increasing to 1.0, bytes identical', async () => {
  const file = writeRandom(join(work, 'big.bin'), 30 * MiB);
  const { page, requests, context } = await openForm(mintGrant({ sub: 'widget-user', max_size: 64 * MiB }));
  await page.setInputFiles('input[type=file]', file.path);
  const done = await waitDone(page);
  assert.equal(done.errors.length, 0, `${JSON.stringify(done)}\n${context()}`);
  const progress = (await events(page, 'progress')).map((p) => p.progress);
  assert.ok(progress.length > 3, `only ${progress.length} progress events`);
  for (let i = 1; i < progress.length; i++) assert.ok(progress[i] > progress[i - 1], `progress went ${progress[i - 1]} -> ${progress[i]}`);
  assert.equal(progress.at(-1), 1);
  // The parts went straight to Garage: 6 parts of 5 MiB.
  const puts = requests.filter((r) => r.method === 'PUT' && r.url.startsWith(garage.endpoint));
  assert.equal(puts.length, 6, JSON.stringify(requests));
  const receipt = await verify(done.receipts[0].receipt);
  assert.equal(receipt.size, 30 * MiB);
  assert.deepEqual(await storedObject(garage, receipt.key), { size: 30 * MiB, sha256: file.sha256 });
  await page.close();
});

test('Garage: a part request cut once is retried and the object is byte-identical', async () => {
  const file = writeRandom(join(work, 'cut.bin'), 30 * MiB);
  const { page, context } = await openForm(mintGrant({ sub: 'widget-user', max_size: 64 * MiB }));
  const { done } = await uploadWithPart3Cut(page, garage.endpoint, file, context);
  const receipt = await verify(done.receipts[0].receipt);
  assert.deepEqual(await storedObject(garage, receipt.key), { size: 30 * MiB, sha256: file.sha256 });
  await page.close();
});

test('Garage: a 20 MiB multipart upload with data-checksum="crc32c" is verified and byte-identical', async () => {
  const file = writeRandom(join(work, 'summed.bin'), 20 * MiB);
  const { page, requests, context } = await openForm(mintGrant({ sub: 'widget-user', max_size: 64 * MiB }), 'data-checksum="crc32c"');
  await page.setInputFiles('input[type=file]', file.path);
  const done = await waitDone(page);
  assert.equal(done.errors.length, 0, `${JSON.stringify(done)}\n${context()}`);
  const puts = requests.filter((r) => r.method === 'PUT' && r.url.startsWith(garage.endpoint));
  assert.equal(puts.length, 4, JSON.stringify(requests));
  const receipt = await verify(done.receipts[0].receipt);
  assert.ok(receipt.checksum, `the receipt carries the checksum: ${JSON.stringify(receipt)}`);
  const s3 = s3Client(garage);
  const head = await s3.send(new HeadObjectCommand({ Bucket: garage.bucket, Key: receipt.key, ChecksumMode: 'ENABLED' }));
  s3.destroy();
  // Garage took each part's CRC32C (and checked it): it holds the
  // composite checksum over the 4 parts.
  assert.match(head.ChecksumCRC32C ?? '', /^[A-Za-z0-9+/]{6}==-4$/, JSON.stringify(head));
  assert.deepEqual(await storedObject(garage, receipt.key), { size: 20 * MiB, sha256: file.sha256 });
  await page.close();
});
