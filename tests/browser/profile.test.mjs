// examples/profile (an axum app with Chute embedded through chute-axum)
// in Debian's Chromium: sign in, pick an avatar and two documents, save;
// the page shows the avatar's thumbnail (made by Chute's image
// derivatives) and lists the documents, which download
// intact. A tampered or foreign receipt posted to the form gets a clear
// 4xx and changes nothing, and so does a form posted from another origin
// of the same site (the embedded S3 port).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './chute.mjs';
import { launchChromium } from './support.mjs';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = process.env.PROFILE_BIN || join(repo, 'target', 'debug', 'chute-example-profile');
/** The avatar the test draws, and the thumbnail the page must show of it (the grant's `200x200 crop`). */
const AVATAR = { width: 640, height: 480 };
const SHOWN = { width: 200, height: 200 };

let app;
let browser;

/** Starts the example binary on free ports in a temp dir; waits for /healthz. */
async function startProfile() {
  if (!existsSync(BIN)) throw new Error(`${BIN} not found; run cargo build -p chute-example-profile`);
  const work = mkdtempSync(join(tmpdir(), 'chute-profile-'));
  const port = await freePort();
  let s3Port = await freePort();
  while (s3Port === port) s3Port = await freePort();
  const errPath = join(work, 'stderr.txt');
  const child = spawn(BIN, [], {
    cwd: work,
    env: {
      ...process.env,
      PROFILE_LISTEN: `127.0.0.1:${port}`,
      CHUTE_S3_LISTEN: `127.0.0.1:${s3Port}`,
      CHUTE_DATA_DIR: join(work, 'data'),
      RUST_LOG: process.env.RUST_LOG || 'info',
    },
    stdio: ['ignore', openSync(join(work, 'stdout.txt'), 'w'), openSync(errPath, 'w')],
  });
  let exited = null;
  child.on('exit', (code, sig) => { exited = `${code ?? sig}`; });
  const output = () => (existsSync(errPath) ? readFileSync(errPath, 'utf8').slice(-6000) : '');
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited !== null) throw new Error(`the profile app exited (${exited}) before /healthz answered\n${output()}`);
    try {
      if ((await fetch(`${url}/healthz`)).status === 200) break;
    } catch { /* not up yet */ }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the profile app did not answer /healthz within 60 s\n${output()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    s3Url: `http://127.0.0.1:${s3Port}`,
    output,
    async stop() {
      if (exited === null) {
        const done = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
        await done;
        clearTimeout(timer);
      }
      rmSync(work, { recursive: true, force: true });
      return exited;
    },
  };
}

before(async () => {
  app = await startProfile();
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  const code = await app?.stop();
  assert.ok(code === null || code === '0', `the profile app exited with ${code} on SIGTERM`);
});

/** A new context signed in as `user`; answers its page on the profile. */
async function signIn(user) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const logs = [];
  page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
  await page.goto(app.url);
  await page.fill('input[name=user]', user);
  await Promise.all([page.waitForURL(`${app.url}/`), page.click('button[type=submit]')]);
  await widgetReady(page);
  const context_ = () => `--- page console ---\n${logs.join('\n')}\n--- app ---\n${app.output()}`;
  return { page, context, logs: context_ };
}

/** Waits for chute.js to take both inputs; records their chute:done events. */
async function widgetReady(page) {
  await page.waitForFunction(() => document.querySelector('input[data-chute-name=documents]'));
  await page.evaluate(() => {
    window.done = [];
    document.querySelector('form').addEventListener('chute:done', (e) => {
      window.done.push({ errors: e.detail.errors.map((x) => String(x.error?.message ?? x.error ?? x)), count: e.detail.receipts.length });
    });
  });
}

/** A PNG of `width`x`height` drawn by Chromium. */
async function drawPng(page, { width, height }) {
  const b64 = await page.evaluate(async ([w, h]) => {
    const canvas = new OffscreenCanvas(w, h);
    const g = canvas.getContext('2d');
    g.fillStyle = '#3a6';
    g.fillRect(0, 0, w, h);
    g.fillStyle = '#fc0';
    g.fillRect(w / 4, h / 4, w / 2, h / 2);
    const blob = await canvas.convertToBlob({ type: 'image/png' });
    const bytes = new Uint8Array(await blob.arrayBuffer());
    let s = '';
    for (const b of bytes) s += String.fromCharCode(b);
    return btoa(s);
  }, [width, height]);
  return Buffer.from(b64, 'base64');
}

/** What the profile page shows: name, avatar (src and natural size), documents. */
async function shown(page) {
  await page.waitForFunction(() => {
    const img = document.querySelector('#avatar');
    return !img || (img.complete && img.naturalWidth > 0);
  }, null, { timeout: 30_000 });
  return page.evaluate(() => {
    const img = document.querySelector('#avatar');
    return {
      name: document.querySelector('#display-name').textContent,
      avatar: img && { src: img.getAttribute('src'), original: img.closest('a')?.getAttribute('href'), width: img.naturalWidth, height: img.naturalHeight },
      documents: [...document.querySelectorAll('#documents a')].map((a) => ({ name: a.textContent, href: a.getAttribute('href') })),
    };
  });
}

const TEXT = 'Curriculum vitae <b>not markup</b>\n'.repeat(50);
const PDF = '%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n';

let aliceReceipts = [];

test('the form uploads to the store, submits receipts, and the page shows the avatar thumbnail and the documents', async () => {
  const { page, logs } = await signIn('alice');
  const avatar = await drawPng(page, AVATAR);
  await page.setInputFiles('input[data-chute-name=avatar]', { name: 'me.png', mimeType: 'image/png', buffer: avatar });
  await page.setInputFiles('input[data-chute-name=documents]', [
    { name: 'cv.txt', mimeType: 'text/plain', buffer: Buffer.from(TEXT) },
    { name: 'letter.pdf', mimeType: 'application/pdf', buffer: Buffer.from(PDF) },
  ]);
  await page.waitForFunction(() => window.done.length >= 2, null, { timeout: 60_000 });
  const done = await page.evaluate(() => window.done);
  assert.deepEqual(done.map((d) => d.errors).flat(), [], `${JSON.stringify(done)}\n${logs()}`);
  assert.deepEqual(done.map((d) => d.count).sort(), [1, 2]);
  aliceReceipts = await page.evaluate(() => [...document.querySelectorAll('input[data-chute-receipt]')].map((h) => ({ name: h.name, value: h.value })));
  assert.deepEqual(aliceReceipts.map((r) => r.name).sort(), ['avatar', 'documents', 'documents']);
  await page.fill('input[name=display_name]', 'Alice <Liddell>');
  await Promise.all([page.waitForURL(`${app.url}/`), page.click('button[type=submit]')]);

  const seen = await shown(page);
  assert.equal(seen.name, 'Alice <Liddell>', logs());
  assert.ok(seen.avatar, `no avatar shown\n${logs()}`);
  assert.deepEqual({ width: seen.avatar.width, height: seen.avatar.height }, SHOWN, JSON.stringify(seen.avatar));
  assert.match(seen.avatar.src, /^\/media\/derivatives\/[^/]+\/thumb\.[a-z]+$/);
  assert.match(seen.avatar.original, /^\/media\/avatars\/alice\/[0-9a-f-]+\.png$/);
  const original = await page.evaluate(async (href) => {
    const r = await fetch(href);
    return { status: r.status, type: r.headers.get('content-type'), size: (await r.arrayBuffer()).byteLength };
  }, seen.avatar.original);
  assert.deepEqual(original, { status: 200, type: 'image/png', size: avatar.length });
  assert.deepEqual(seen.documents.map((d) => d.name).sort(), ['cv.txt', 'letter.pdf']);
  for (const doc of seen.documents) {
    assert.match(doc.href, /^\/media\/docs\/alice\/[0-9a-f-]+\.(txt|pdf)\?download=1$/);
    const body = await page.evaluate(async (href) => {
      const r = await fetch(href);
      return { status: r.status, type: r.headers.get('content-type'), text: await r.text() };
    }, doc.href);
    assert.equal(body.status, 200);
    assert.equal(body.text, doc.name === 'cv.txt' ? TEXT : PDF);
    assert.equal(body.type, doc.name === 'cv.txt' ? 'text/plain' : 'application/pdf');
  }
  await page.context().close();
});

/** POSTs `fields` to /profile from `page` (its session); answers status and page text. */
async function postProfile(page, fields) {
  return page.evaluate(async (f) => {
    const r = await fetch('/profile', { method: 'POST', body: new URLSearchParams(f), redirect: 'manual' });
    const html = await r.text();
    const m = html.match(/data-code="([^"]*)"/);
    return { status: r.status, code: m ? m[1] : null, html };
  }, fields);
}

test('a tampered or foreign receipt gets a clear 4xx and changes nothing', async () => {
  assert.ok(aliceReceipts.length === 3, 'the first test stored receipts');
  const { page, context, logs } = await signIn('alice');
  const before = await shown(page);
  const doc = aliceReceipts.find((r) => r.name === 'documents').value;
  // Claims edited to point elsewhere; the signature no longer matches.
  const [h, payload, sig] = doc.split('.');
  const claims = JSON.parse(Buffer.from(payload, 'base64url'));
  claims.size = 1;
  const tampered = [h, Buffer.from(JSON.stringify(claims)).toString('base64url'), sig].join('.');
  let res = await postProfile(page, { display_name: 'Mallory', documents: tampered });
  assert.equal(res.status, 400, res.html);
  assert.equal(res.code, 'token_bad_signature');
  // A document receipt in the avatar field breaks the avatar's constraints.
  res = await postProfile(page, { display_name: 'Mallory', avatar: doc });
  assert.equal(res.status, 422, res.html);
  assert.equal(res.code, 'type_not_allowed');
  await page.reload();
  assert.deepEqual(await shown(page), before, logs());
  await context.close();

  // Bob cannot claim Alice's (valid) receipts.
  const bob = await signIn('bob');
  res = await postProfile(bob.page, { display_name: 'Bob', documents: doc });
  assert.equal(res.status, 403, res.html);
  assert.equal(res.code, 'wrong_subject');
  await bob.page.reload();
  const bobSees = await shown(bob.page);
  assert.equal(bobSees.name, 'bob');
  assert.deepEqual(bobSees.documents, []);
  // Nor read Alice's files.
  for (const href of [before.documents[0].href, before.avatar.src, before.avatar.original]) {
    const peek = await bob.page.evaluate(async (h) => (await fetch(h)).status, href);
    assert.equal(peek, 404, href);
  }
  await bob.context.close();
});

test('a form posted from another origin of the same site (the S3 port) changes nothing', async () => {
  const { page, context, logs } = await signIn('carol');
  // Another port of the same host is the same site: SameSite=Lax sends
  // the session cookie along, so only the app's origin check stops it.
  await page.goto(app.s3Url);
  const sent = await page.evaluate(async (target) => {
    const r = await fetch(`${target}/profile`, {
      method: 'POST', mode: 'no-cors', credentials: 'include',
      body: new URLSearchParams({ display_name: 'Forged' }),
    });
    return r.type;
  }, app.url);
  assert.equal(sent, 'opaque');
  await page.goto(app.url);
  assert.equal((await shown(page)).name, 'carol', logs());
  await context.close();
});
