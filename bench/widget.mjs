// Browser upload benchmark: the widget (chute.js; as served, and with
// data-checksum="crc32c") vs Uppy (@uppy/aws-s3 via Chute's /s3/ endpoints)
// in Debian's Chromium, all uploading the same random file (1 GiB by
// default) to the embedded store of a release `chute serve`, in rotating
// order, N runs each; the bucket is emptied after every upload. Reports
// MiB/s (median, min, max) and the longest main-thread long task (Long
// Tasks API, observer registered before the upload) seen during each
// upload, with the scripts of the longest animation frames as a hint on
// stderr. Prints a markdown table (see BENCHMARKS.md). Run through bench/widget, which
// builds the release binary and installs tests/browser's packages.
//
// Usage: node bench/widget.mjs [--runs N] [--size-mib N]
import { createRequire } from 'node:module';
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { execFileSync } from 'node:child_process';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const browserTests = join(repo, 'tests', 'browser');
process.env.CHUTE_BIN = resolve(process.env.CHUTE_BIN || join(process.env.CARGO_TARGET_DIR || join(repo, 'target'), 'release', 'chute'));

// Dependencies come from tests/browser's node_modules (npm ci there).
const require = createRequire(join(browserTests, 'package.json'));
const { build } = require('esbuild');
const { DeleteObjectCommand, ListObjectsV2Command } = require('@aws-sdk/client-s3');
const { BUCKET, mintGrant, serveStatic, startChute } = await import(pathToFileURL(join(browserTests, 'chute.mjs')).href);
const { CHROMIUM, MiB, embeddedStore, launchChromium, s3Client } = await import(pathToFileURL(join(browserTests, 'support.mjs')).href);

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const RUNS = opt('--runs', 3);
const SIZE_MIB = opt('--size-mib', 1024);
const SIZE = SIZE_MIB * MiB;

/** The pid of the `chute serve` whose command line has --listen 127.0.0.1:PORT. */
function pidListeningOn(port) {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const argv = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      if (argv.includes('serve') && argv.includes(`127.0.0.1:${port}`)) return Number(d);
    } catch {
      // gone meanwhile
    }
  }
  throw new Error(`no chute serve process listening on 127.0.0.1:${port}`);
}

/** Samples pid's VmRSS every 20 ms until stop(), which returns the peak (KiB). */
function sampleRss(pid) {
  let peak = 0;
  const once = () => {
    const m = /^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    peak = Math.max(peak, m ? Number(m[1]) : 0);
  };
  once();
  const timer = setInterval(once, 20);
  return { stop: () => { clearInterval(timer); once(); return peak; } };
}

/** Registered first on every page: long tasks and the upload's bounds. */
const OBSERVER = `<script>
  window.longTasks = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.longTasks.push({ start: e.startTime, duration: e.duration });
  }).observe({ type: 'longtask', buffered: true });
  // Long animation frames name the scripts that ran in them: the hint at
  // what a long task was.
  window.frames = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      window.frames.push({
        start: e.startTime,
        duration: e.duration,
        scripts: e.scripts.map((s) => ({ duration: Math.round(s.duration), what: s.invoker + ' @ ' + (s.sourceURL.split('/').pop() || '?') + ':' + (s.sourceFunctionName || '?') })),
      });
    }
  }).observe({ type: 'long-animation-frame', buffered: true });
  window.hintBetween = (t0, t1) => {
    const scripts = window.frames.filter((f) => f.start + f.duration >= t0 && f.start <= t1).flatMap((f) => f.scripts);
    scripts.sort((a, b) => b.duration - a.duration);
    return scripts.slice(0, 3).map((s) => s.duration + ' ms ' + s.what).join('; ');
  };
  window.longestBetween = (t0, t1) => Math.max(0, ...window.longTasks
    .filter((t) => t.start + t.duration >= t0 && t.start <= t1).map((t) => t.duration));
</script>`;

function widgetPage(appUrl, grant, checksum) {
  return `<!doctype html><html lang="en"><meta charset="utf-8"><title>bench: widget</title>${OBSERVER}
<form method="post" action="/submit" enctype="multipart/form-data">
  <input type="file" name="attachment" data-chute="${appUrl}/api/uploads" data-grant="${grant}"${checksum ? ` data-checksum="${checksum}"` : ''}>
  <div data-chute-progress></div>
</form>
<script>
  // Capture phase on the document: runs before the widget's own listener.
  document.addEventListener('change', () => { window.t0 = performance.now(); }, true);
  document.addEventListener('chute:error', (e) => { window.failure = JSON.stringify(e.detail); });
  document.addEventListener('chute:done', (e) => {
    window.t1 = performance.now();
    window.result = { errors: e.detail.errors.map((x) => String(x.error ?? x.message ?? JSON.stringify(x))) };
  });
</script>
<script type="module" src="${appUrl}/chute.js"></script>
</html>`;
}

const UPPY_PAGE = `<!doctype html><html lang="en"><meta charset="utf-8"><title>bench: uppy</title>${OBSERVER}
<input type="file" id="files">
<script type="module" src="/uppy.js"></script>
</html>`;

// Uppy as the Uppy test page uses it (Companion mode against /s3/), timed
// from addFile to the upload's result.
const UPPY_SCRIPT = `
import Uppy from '@uppy/core';
import AwsS3 from '@uppy/aws-s3';
window.uploadWithUppy = async ({ endpoint, grant }) => {
  const uppy = new Uppy({ autoProceed: false });
  uppy.use(AwsS3, {
    endpoint,
    headers: { authorization: 'Bearer ' + grant },
    shouldUseMultipart: (file) => file.size > 16 * 1024 * 1024,
  });
  uppy.on('file-added', (file) => uppy.setFileMeta(file.id, { size: file.size }));
  const t0 = performance.now();
  for (const file of document.getElementById('files').files) {
    uppy.addFile({ name: file.name, type: file.type, data: file, source: 'bench' });
  }
  const result = await uppy.upload();
  const t1 = performance.now();
  const failed = (result?.failed ?? []).map((f) => String(f.error));
  uppy.destroy();
  return { t0, t1, failed, ok: (result?.successful ?? []).length };
};
window.uppyReady = true;
`;

function writeRandom(path, size) {
  const fd = openSync(path, 'w');
  const chunk = randomBytes(16 * MiB);
  // Fresh random bytes every 16 MiB chunk, so nothing compresses or dedups.
  for (let left = size; left > 0;) {
    const n = Math.min(left, chunk.length);
    writeSync(fd, randomBytes(n), 0, n);
    left -= n;
  }
  closeSync(fd);
}

async function runWidget(browser, chute, site, routes, file, checksum) {
  routes['/'] = { type: 'text/html; charset=utf-8', body: widgetPage(chute.appUrl, mintGrant({ sub: 'bench', max_size: 2 * SIZE }), checksum) };
  const context = await browser.newContext(); // fresh localStorage: no resume
  const page = await context.newPage();
  await page.goto(site.url);
  await page.waitForFunction(() => document.querySelector('input[type=file]').dataset.chuteName === 'attachment');
  await page.setInputFiles('input[type=file]', file);
  await page.waitForFunction(() => window.result || window.failure, null, { timeout: 0, polling: 200 });
  const out = await page.evaluate(() => ({
    result: window.result, failure: window.failure, t0: window.t0, t1: window.t1,
    longest: window.result ? window.longestBetween(window.t0, window.t1) : null,
    count: window.longTasks.filter((t) => t.start + t.duration >= window.t0 && t.start <= window.t1).length,
    hint: window.result ? window.hintBetween(window.t0, window.t1) : '',
  }));
  await context.close();
  if (out.failure || out.result.errors.length) throw new Error(`widget upload failed: ${out.failure ?? out.result.errors.join('; ')}`);
  return { seconds: (out.t1 - out.t0) / 1000, longest: out.longest, count: out.count, hint: out.hint };
}

async function runUppy(browser, chute, site, file) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${site.url}/uppy`);
  await page.waitForFunction(() => window.uppyReady === true);
  await page.setInputFiles('#files', file);
  const grant = mintGrant({ sub: 'bench', max_size: 2 * SIZE });
  const r = await page.evaluate(({ endpoint, grant }) => window.uploadWithUppy({ endpoint, grant }), { endpoint: chute.appUrl, grant });
  const longest = await page.evaluate(({ t0, t1 }) => window.longestBetween(t0, t1), r);
  const count = await page.evaluate(({ t0, t1 }) => window.longTasks.filter((t) => t.start + t.duration >= t0 && t.start <= t1).length, r);
  const hint = await page.evaluate(({ t0, t1 }) => window.hintBetween(t0, t1), r);
  await context.close();
  if (r.failed.length || r.ok !== 1) throw new Error(`Uppy upload failed: ${r.failed.join('; ')}`);
  return { seconds: (r.t1 - r.t0) / 1000, longest, count, hint };
}

/** Deletes every stored object, so each run writes into the same empty store. */
async function emptyBucket() {
  const s3 = s3Client(embeddedStore(chute));
  const listed = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET }));
  for (const o of listed.Contents ?? []) await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: o.Key }));
  s3.destroy();
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const work = mkdtempSync(join(tmpdir(), 'chute-bench-widget-'));
const file = join(work, 'bench.bin');
let chute;
let site;
let browser;
try {
  process.stderr.write(`writing ${SIZE_MIB} MiB of random bytes to ${file}\n`);
  writeRandom(file, SIZE);
  chute = await startChute();
  const chutePid = pidListeningOn(new URL(chute.appUrl).port);
  const bundle = await build({
    stdin: { contents: UPPY_SCRIPT, resolveDir: browserTests, loader: 'js' },
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'chrome110',
    minify: true,
    write: false,
    logLevel: 'warning',
  });
  const routes = {
    '/favicon.ico': { type: 'image/x-icon', body: '' },
    '/uppy': { type: 'text/html; charset=utf-8', body: UPPY_PAGE },
    '/uppy.js': { type: 'text/javascript; charset=utf-8', body: bundle.outputFiles[0].contents },
  };
  site = await serveStatic(routes);
  browser = await launchChromium();
  // The observer must see a long task when there is one: an 80 ms busy loop.
  {
    const page = await browser.newPage();
    await page.goto(`${site.url}/uppy`);
    await page.evaluate(() => {
      setTimeout(() => { const end = performance.now() + 80; while (performance.now() < end); }, 0);
    });
    await page.waitForTimeout(300);
    const seen = await page.evaluate(() => window.longestBetween(0, performance.now()));
    await page.close();
    if (!(seen >= 80)) throw new Error(`the long task observer missed an 80 ms busy loop (saw ${seen} ms)`);
    process.stderr.write(`long task observer check: an 80 ms busy loop was seen as ${seen.toFixed(0)} ms\n`);
  }
  const clients = [
    ['widget', 'chute.js widget (multipart, 4 parallel)', () => runWidget(browser, chute, site, routes, file, null)],
    ['uppy', '@uppy/aws-s3 5.1.0 via /s3/ (default limit)', () => runUppy(browser, chute, site, file)],
    ['widget-crc32c', 'chute.js widget, data-checksum="crc32c"', () => runWidget(browser, chute, site, routes, file, 'crc32c')],
  ];
  const results = Object.fromEntries(clients.map(([who]) => [who, []]));
  for (let i = 0; i < RUNS; i++) {
    // Rotate which goes first, so none always gets the warmer cache.
    const order = clients.map((_, j) => clients[(i + j) % clients.length]);
    for (const [who, , run] of order) {
      const peak = sampleRss(chutePid);
      const r = await run();
      r.rssKiB = peak.stop();
      results[who].push(r);
      process.stderr.write(`run ${i + 1} ${who}: ${(SIZE_MIB / r.seconds).toFixed(1)} MiB/s in ${r.seconds.toFixed(2)} s; longest long task ${r.longest.toFixed(0)} ms (${r.count} long tasks)${r.hint ? `; longest scripts in long frames: ${r.hint}` : ''}\n`);
      await emptyBucket();
    }
  }
  const chromiumVersion = execFileSync(CHROMIUM, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  console.log(`\n${SIZE_MIB} MiB file, ${RUNS} runs each (rotating order), ${chromiumVersion}, chute ${process.env.CHUTE_BIN}\n`);
  console.log('| client | MiB/s median | MiB/s min–max | seconds (median) | longest long task per run (ms) | long tasks per run | chute serve peak RSS (MiB) |');
  console.log('|---|---:|---:|---:|---|---|---:|');
  for (const [who, label] of clients) {
    const rs = results[who];
    const speeds = rs.map((r) => SIZE_MIB / r.seconds);
    console.log(`| ${label} | ${median(speeds).toFixed(1)} | ${Math.min(...speeds).toFixed(1)}–${Math.max(...speeds).toFixed(1)} | ${median(rs.map((r) => r.seconds)).toFixed(2)} | ${rs.map((r) => r.longest.toFixed(0)).join(', ')} | ${rs.map((r) => r.count).join(', ')} | ${(Math.max(...rs.map((r) => r.rssKiB)) / 1024).toFixed(1)} |`);
  }
  // Goal lines, in the form bench/run collects.
  const speed = (who) => median(results[who].map((r) => SIZE_MIB / r.seconds));
  const longest = (who) => Math.max(...results[who].map((r) => r.longest));
  const goal = (what, figure, met) => console.log(`- goal: ${what}: ${figure}, ${met ? 'met' : 'NOT met'}`);
  console.log('');
  for (const who of ['widget', 'widget-crc32c']) {
    const r = speed(who) / speed('uppy');
    goal(`${who} >= 1.0x Uppy's MiB/s`, `${r.toFixed(2)}x`, r >= 1);
  }
  for (const who of ['widget', 'widget-crc32c']) {
    goal(`${who}: longest main-thread long task <= 50 ms`, `${longest(who).toFixed(0)} ms`, longest(who) <= 50);
  }
} finally {
  await browser?.close();
  await site?.close();
  await chute?.stop();
  rmSync(work, { recursive: true, force: true });
}
