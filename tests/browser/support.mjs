// What the browser tests (and bench/widget.mjs) share, so each test file
// holds only its own cases: Debian's Chromium and its flags, random test
// files with their SHA-256, reading objects back over the S3 API, receipt
// verification, the form app on another loopback origin, and the widget
// page helpers (event log, request log, a part request failed once).
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { createServer } from 'node:http';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { chromium } from 'playwright-core';
import { ACCESS_KEY, BUCKET, SECRET_KEY, freePort } from './chute.mjs';

export const MiB = 1024 * 1024;
/** Debian's Chromium, or $CHROMIUM. */
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
/** Headless, no sandbox (containers), nothing in the background; web security stays on. */
export const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Launches CHROMIUM headless with FLAGS (a playwright-core Browser). */
export function launchChromium() {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
}

/** Writes `size` random bytes to `path`, returning `{path, size, sha256}`. */
export function writeRandom(path, size) {
  const hash = createHash('sha256');
  const fd = openSync(path, 'w');
  for (let left = size; left > 0;) {
    const chunk = randomBytes(Math.min(left, 4 * MiB));
    hash.update(chunk);
    writeSync(fd, chunk);
    left -= chunk.length;
  }
  closeSync(fd);
  return { path, size, sha256: hash.digest('hex') };
}

/**
 * The S3 coordinates of a `startChute()` server's embedded store, in the
 * shape widget-garage.test.mjs's Garage store has:
 * `{endpoint, region, bucket, accessKey, secretKey}`.
 */
export function embeddedStore(chute) {
  return { endpoint: chute.s3Endpoint, region: 'us-east-1', bucket: BUCKET, accessKey: ACCESS_KEY, secretKey: SECRET_KEY };
}

/** A path-style S3 client for `store` (see embeddedStore); destroy it after use. */
export function s3Client(store) {
  return new S3Client({
    endpoint: store.endpoint,
    region: store.region,
    forcePathStyle: true,
    credentials: { accessKeyId: store.accessKey, secretAccessKey: store.secretKey },
  });
}

/** Reads `key` from `store`'s bucket; answers `{size, sha256}` of its bytes. */
export async function storedObject(store, key) {
  const s3 = s3Client(store);
  const got = await s3.send(new GetObjectCommand({ Bucket: store.bucket, Key: key }));
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of got.Body) {
    hash.update(chunk);
    size += chunk.length;
  }
  s3.destroy();
  return { size, sha256: hash.digest('hex') };
}

/** POST /api/receipts/verify on Chute's app at `appUrl`; answers the JSON (`{valid, receipt}` or `{valid, error}`). */
export async function verifyReceipt(appUrl, receipt) {
  const r = await fetch(`${appUrl}/api/receipts/verify`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ receipt }),
  });
  return r.json();
}

/**
 * The test app on a free loopback port (another origin than Chute's): GET /
 * answers `state.html`; POST /submit reads the whole body and answers the
 * HTML `submit(req, body)` resolves to. `state` starts as given plus
 * `html: ''`. Answers `{url, state, close}`.
 */
export async function startFormApp(state, submit) {
  const port = await freePort();
  state = { html: '', ...state };
  const server = createServer(async (req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    if (req.method === 'GET' && path === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(state.html);
      return;
    }
    if (req.method === 'POST' && path === '/submit') {
      const chunks = [];
      for await (const c of req) chunks.push(c);
      const html = await submit(req, Buffer.concat(chunks));
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html);
      return;
    }
    res.writeHead(404).end('not found');
  });
  await new Promise((ok) => server.listen(port, '127.0.0.1', ok));
  return { url: `http://127.0.0.1:${port}`, state, close: () => new Promise((ok) => server.close(ok)) };
}

/**
 * A module script for a widget form page: records the form's `chute:<type>`
 * events (Files as their names) in `window.events`, and the File of each
 * `chute:complete` in `window.files`.
 */
export function eventRecorder(types = ['start', 'progress', 'retry', 'complete', 'error', 'done']) {
  return `<script type="module">
  window.events = [];
  window.files = [];
  const plain = (d) => {
    const out = {};
    for (const [k, v] of Object.entries(d ?? {})) {
      if (v instanceof File) out[k] = v.name;
      else if (Array.isArray(v)) out[k] = v.map((x) => (x instanceof File ? x.name : x?.file instanceof File ? { ...x, file: x.file.name } : x));
      else out[k] = v;
    }
    return out;
  };
  const form = document.querySelector('form');
  for (const t of ${JSON.stringify(types)}) {
    form.addEventListener('chute:' + t, (e) => {
      if (t === 'complete') window.files.push(e.detail.file);
      window.events.push({ type: t, detail: plain(e.detail) });
    });
  }
</script>`;
}

/**
 * A widget form page: a plain form posting to /submit whose file input
 * `attachment` carries data-chute for Chute at `chuteUrl` and `grant`, plus
 * `attrs`; `fields` go before the input, `above` before the form, and
 * eventRecorder(`types`) records the events.
 */
export function widgetForm({ title, chuteUrl, grant, attrs = '', multiple = false, fields = '', above = '', types }) {
  return `<!doctype html>
<html lang="en"><meta charset="utf-8"><title>${title}</title>
${above}<form method="post" action="/submit" enctype="multipart/form-data">
${fields}  <input type="file" name="attachment" ${multiple ? 'multiple' : ''}
    data-chute="${chuteUrl}/api/uploads" data-grant="${grant}" ${attrs}>
  <div data-chute-progress></div>
  <button type="submit">Save</button>
</form>
${eventRecorder(types)}
<script type="module" src="${chuteUrl}/chute.js"></script>
</html>`;
}

/**
 * Opens `url` (a widget form page) in a new page of `browser` and waits for
 * chute.js to take the file input. Records console lines and page errors,
 * and the requests to `chute` (but chute.js) or to `storeUrl` as
 * `{method, url}` (plus `headers` and a POST's `body` with `details`).
 * Answers `{page, requests, logs, context}`; `context()` is the console and
 * chute's log, for assertion messages.
 */
export async function openWidgetPage(browser, url, { chute, storeUrl, details = false }) {
  const page = await browser.newPage();
  const logs = [];
  const requests = [];
  page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
  page.on('request', (r) => {
    const u = r.url();
    if ((u.startsWith(chute.appUrl) && !u.endsWith('/chute.js')) || u.startsWith(storeUrl)) {
      requests.push(details
        ? { method: r.method(), url: u, headers: r.headers(), body: r.method() === 'POST' ? r.postData() : null }
        : { method: r.method(), url: u });
    }
  });
  await page.goto(url);
  // The module ran: the input lost its name to the receipts.
  await page.waitForFunction(() => document.querySelector('input[type=file]').dataset.chuteName === 'attachment');
  const context = () => `--- page console ---\n${logs.join('\n')}\n--- chute ---\n${chute.output()}`;
  return { page, requests, logs, context };
}

/** The details of the `chute:<type>` events recorded so far (see eventRecorder). */
export async function events(page, type) {
  return page.evaluate((t) => window.events.filter((e) => e.type === t).map((e) => e.detail), type);
}

/** Waits for the `count`th `chute:done` event; answers its detail. */
export async function waitDone(page, count = 1, timeout = 150_000) {
  await page.waitForFunction((n) => window.events.filter((e) => e.type === 'done').length >= n, count, { timeout, polling: 100 });
  return (await events(page, 'done'))[count - 1];
}

/**
 * Routes the page's requests for part `part` at `storeUrl`: the first PUT
 * is handed to `fail(route)`, everything else goes through. Answers a
 * function that tells how many were failed.
 */
export async function failPartOnce(page, storeUrl, part, fail) {
  let failed = 0;
  await page.route((url) => url.href.startsWith(storeUrl) && url.searchParams.get('partNumber') === String(part), async (route) => {
    if (failed === 0 && route.request().method() === 'PUT') {
      failed++;
      await fail(route);
    } else {
      await route.continue();
    }
  });
  return () => failed;
}

/**
 * Sets `file` on the page's file input with the first PUT of part 3 at
 * `storeUrl` cut (connection reset), and waits for chute:done. Asserts the
 * upload ended without errors, the cut happened once and chute.js retried
 * part 3 once (`context()` goes in the failure message). Answers
 * `{done, retries}` (the chute:done detail, the chute:retry details).
 */
export async function uploadWithPart3Cut(page, storeUrl, file, context) {
  const cut = await failPartOnce(page, storeUrl, 3, (route) => route.abort('connectionreset'));
  await page.setInputFiles('input[type=file]', file.path);
  const done = await waitDone(page);
  assert.equal(done.errors.length, 0, `${JSON.stringify(done)}\n${context()}`);
  assert.equal(cut(), 1);
  const retries = await events(page, 'retry');
  assert.equal(retries.length, 1, JSON.stringify(retries));
  assert.equal(retries[0].part, 3);
  return { done, retries };
}
