// The demo page at / of `chute serve` (development mode, open grants) in
// Debian's Chromium: choose a PNG, watch its row, see the receipt, the
// thumbnail (the server-made `thumb` derivative, loaded from the store
// through a presigned link) and the link;
// cancel one of two files with its row's button.
// Screenshots during and after the upload go to tests/artifacts/.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { crc32, deflateSync } from 'node:zlib';
import { startChute } from './chute.mjs';
import { launchChromium } from './support.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const ARTIFACTS = resolve(here, '..', 'artifacts');
const WIDTH = 480;
const HEIGHT = 320;

let chute;
let browser;
let work;

/** A PNG of noise over a gradient (noise so it stays ~450 KB, not compressible). */
function png(width, height) {
  const chunk = (type, data) => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(data.length, 0);
    head.write(type, 4, 'latin1');
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
    return Buffer.concat([head, data, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const noise = randomBytes(width * height);
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    const row = y * (width * 3 + 1);
    for (let x = 0; x < width; x++) {
      const n = noise[y * width + x] >> 3;
      raw[row + 1 + x * 3] = Math.floor((x / width) * 200) + n;
      raw[row + 2 + x * 3] = 90 + n;
      raw[row + 3 + x * 3] = Math.floor((y / height) * 200) + n;
    }
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'chute-demo-'));
  mkdirSync(ARTIFACTS, { recursive: true });
  chute = await startChute({ env: { CHUTE_OPEN_GRANTS: 'true' } });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await chute?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

/**
 * A 900x900 page whose page errors and console errors land in `problems`,
 * uploading at `uploadThroughput` bytes/s (CDP network emulation, 20 ms).
 */
async function throttledPage(uploadThroughput) {
  const page = await browser.newPage({ viewport: { width: 900, height: 900 } });
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false, latency: 20, downloadThroughput: -1, uploadThroughput,
  });
  return { page, problems, cdp };
}

test('the demo page uploads a PNG and shows its progress, receipt, thumbnail and link', async () => {
  const image = png(WIDTH, HEIGHT);
  const path = join(work, 'gradient <b>&amp;.png');
  writeFileSync(path, image);

  // Slow the upload so the page is caught mid-way: 128 KB/s up.
  const { page, problems, cdp } = await throttledPage(128 * 1024);

  await page.goto(`${chute.appUrl}/`);
  assert.equal(await page.title(), 'Chute: upload demo');
  await page.setInputFiles('#files', path);

  // During: the row exists, its bar has moved but is not full.
  const row = page.locator('#uploads > li').first();
  await row.waitFor();
  await page.waitForFunction(() => {
    const bar = document.querySelector('#uploads > li progress');
    return bar && bar.value > 0 && bar.value < 1;
  }, null, { timeout: 30_000 });
  assert.match(await row.locator('.meta').textContent(), /%/);
  await page.screenshot({ path: join(ARTIFACTS, 'demo-during-upload.png'), fullPage: true });

  // After: thumbnail loaded from the store, receipt and link shown.
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1,
  });
  const thumb = row.locator('img.thumb');
  await thumb.waitFor({ timeout: 60_000 });
  await page.waitForFunction(() => document.querySelector('img.thumb')?.complete, null, { timeout: 30_000 });
  // The open grant's `thumb` derivative: a 200x200 JPEG made by the server.
  assert.deepEqual(await thumb.evaluate((img) => [img.naturalWidth, img.naturalHeight]), [200, 200]);
  assert.match(await thumb.getAttribute('src'), /\/derivatives\/[^/]+\/thumb\.jpg\?/);
  assert.equal(await row.locator('.meta').textContent(), 'uploaded');
  assert.equal(await page.locator('#status').textContent(), 'All uploads finished.');
  // The file name went in as text, not markup.
  assert.equal(await row.locator('label.name').textContent(), 'gradient <b>&amp;.png');
  assert.equal(await row.locator('b').count(), 0);

  await row.locator('summary').click();
  const claims = Object.fromEntries(await row.locator('dl').evaluate((dl) => {
    const terms = [...dl.querySelectorAll('dt')];
    return terms.map((dt) => [dt.textContent, dt.nextElementSibling.textContent]);
  }));
  assert.equal(claims.Type, 'image/png');
  assert.equal(claims.Bucket, 'uploads');
  assert.match(claims.Key, /^tmp\//);
  assert.match(claims.Size, new RegExp(`\\(${image.length} bytes\\)`));

  const href = await row.locator('a').getAttribute('href');
  assert.ok(href.startsWith(`${chute.s3Endpoint}/uploads/tmp/`), href);
  const stored = Buffer.from(await (await fetch(href)).arrayBuffer());
  assert.ok(stored.equals(image), 'the link serves the uploaded bytes');

  // The receipt is also in the form, for the app.
  assert.equal(await page.locator('#demo-form input[type=hidden][name=files]').count(), 1);
  await page.screenshot({ path: join(ARTIFACTS, 'demo-after-upload.png'), fullPage: true });
  assert.deepEqual(problems, []);
  await page.close();
});

test('a row\'s cancel button stops that file only; the other file uploads', async () => {
  const keep = join(work, 'keep.bin');
  const stop = join(work, 'stop.bin');
  writeFileSync(keep, randomBytes(20_000));
  writeFileSync(stop, randomBytes(4_000_000));

  // 256 KB/s up: the 4 MB file is still in flight when its button is pressed.
  const { page, problems } = await throttledPage(256 * 1024);
  await page.goto(`${chute.appUrl}/`);
  await page.setInputFiles('#files', [keep, stop]);

  const rowOf = (name) => page.locator('#uploads > li', { has: page.locator('label.name', { hasText: name }) });
  await rowOf('keep.bin').locator('.meta', { hasText: 'uploaded' }).waitFor({ timeout: 60_000 });
  assert.notEqual(await rowOf('stop.bin').locator('.meta').textContent(), 'uploaded');
  // One keyboard-operable button per row, named after its file.
  const button = page.getByRole('button', { name: 'Cancel upload of stop.bin' });
  assert.equal(await button.isEnabled(), true);
  assert.equal(await page.getByRole('button', { name: 'Cancel upload of keep.bin' }).isDisabled(), true, 'an uploaded file has nothing to cancel');
  await button.focus();
  await page.keyboard.press('Enter');

  await page.waitForFunction(() => document.querySelector('#status').textContent === 'Finished; 1 cancelled.', null, { timeout: 30_000 });
  assert.equal(await rowOf('stop.bin').locator('.meta').textContent(), 'cancelled');
  assert.equal(await button.isDisabled(), true);
  assert.equal(await rowOf('keep.bin').locator('.meta').textContent(), 'uploaded');
  // The form carries the one receipt.
  const receipts = await page.locator('#demo-form input[type=hidden][name=files]').evaluateAll((hs) => hs.map((h) => h.value));
  assert.equal(receipts.length, 1);
  assert.equal(JSON.parse(Buffer.from(receipts[0].split('.')[1], 'base64url').toString()).filename, 'keep.bin');
  await page.screenshot({ path: join(ARTIFACTS, 'demo-cancel-one.png'), fullPage: true });
  assert.deepEqual(problems, []);
  await page.close();
});
