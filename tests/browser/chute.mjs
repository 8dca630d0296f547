// Starts `chute serve` (target/debug/chute, or $CHUTE_BIN; spawned by
// tests/node/server.mjs) on free loopback ports with a temp data dir, a
// grant secret and no open grants, so every /s3/ call must carry a grant
// the test signs. Also: a static server for the
// test page on another port, and HS256 grant minting.
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { freePort, spawnChute } from '../node/server.mjs';

export { BIN, freePort } from '../node/server.mjs';
export const ACCESS_KEY = 'chutebrowseraccess';
export const SECRET_KEY = 'chute-browser-secret-0123456789abcdef';
export const BUCKET = 'uploads';
const GRANT_KID = 'browser';
const GRANT_SECRET = 'browser-test-grant-secret-0123456789abcdef';

const here = dirname(fileURLToPath(import.meta.url));

const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** A grant JWT as an app would sign it with CHUTE_GRANT_SECRET. */
export function mintGrant(claims, secret = GRANT_SECRET) {
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT', kid: GRANT_KID }));
  const payload = b64url(JSON.stringify({ aud: 'chute', exp: Math.floor(Date.now() / 1000) + 600, ...claims }));
  const sig = createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64url');
  return `${header}.${payload}.${sig}`;
}

/** `env` adds to or overrides the environment below (e.g. open grants). */
export function startChute({ env = {} } = {}) {
  return spawnChute({
    prefix: 'chute-browser-',
    env: {
      CHUTE_S3_ACCESS_KEY: ACCESS_KEY,
      CHUTE_S3_SECRET_KEY: SECRET_KEY,
      CHUTE_GRANT_SECRET: `${GRANT_KID}:${GRANT_SECRET}`,
      CHUTE_OPEN_GRANTS: 'false',
      RUST_LOG: process.env.RUST_LOG || 'info',
      ...env,
    },
  });
}

/** Serves `routes` (path -> {type, body}) on a free loopback port. */
export async function serveStatic(routes) {
  const port = await freePort();
  const server = createHttpServer((req, res) => {
    const route = routes[new URL(req.url, 'http://x').pathname];
    if (!route) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': route.type, 'cache-control': 'no-store' }).end(route.body);
  });
  await new Promise((ok) => server.listen(port, '127.0.0.1', ok));
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise((ok) => server.close(ok)),
  };
}

/**
 * The Uppy test site (serveStatic): page/`html` as /, an empty favicon, and
 * page/`script`.mjs bundled for Chromium by esbuild as /`script`.js.
 */
export async function serveBundledPage(html, script) {
  const bundle = await build({
    entryPoints: [join(here, 'page', `${script}.mjs`)],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'chrome110',
    write: false,
    logLevel: 'warning',
  });
  return serveStatic({
    '/': { type: 'text/html; charset=utf-8', body: readFileSync(join(here, 'page', html)) },
    '/favicon.ico': { type: 'image/x-icon', body: '' },
    [`/${script}.js`]: { type: 'text/javascript; charset=utf-8', body: bundle.outputFiles[0].contents },
  });
}
