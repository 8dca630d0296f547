// Starts `chute serve` (target/debug/chute, or $CHUTE_BIN) on free loopback
// ports with a temp data dir, a grant secret and no open grants, so every
// /s3/ call must carry a grant the test signs. Also: a static server for the
// test page on another port, and HS256 grant minting.
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = process.env.CHUTE_BIN || join(repo, 'target', 'debug', 'chute');
export const ACCESS_KEY = 'chutebrowseraccess';
export const SECRET_KEY = 'chute-browser-secret-0123456789abcdef';
export const BUCKET = 'uploads';
const GRANT_KID = 'browser';
const GRANT_SECRET = 'browser-test-grant-secret-0123456789abcdef';

export function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** A grant JWT as an app would sign it with CHUTE_GRANT_SECRET. */
export function mintGrant(claims, secret = GRANT_SECRET) {
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT', kid: GRANT_KID }));
  const payload = b64url(JSON.stringify({ aud: 'chute', exp: Math.floor(Date.now() / 1000) + 600, ...claims }));
  const sig = createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64url');
  return `${header}.${payload}.${sig}`;
}

/** `env` adds to or overrides the environment below (e.g. open grants). */
export async function startChute({ env = {} } = {}) {
  if (!existsSync(BIN)) throw new Error(`chute binary not found at ${BIN}; run cargo build -p chute`);
  const work = mkdtempSync(join(tmpdir(), 'chute-browser-'));
  const appPort = await freePort();
  let s3Port = await freePort();
  while (s3Port === appPort) s3Port = await freePort();
  const errPath = join(work, 'stderr.txt');
  const child = spawn(
    BIN,
    ['serve', '--data-dir', join(work, 'data'), '--listen', `127.0.0.1:${appPort}`, '--s3-listen', `127.0.0.1:${s3Port}`],
    {
      cwd: work,
      env: {
        ...process.env,
        CHUTE_S3_ACCESS_KEY: ACCESS_KEY,
        CHUTE_S3_SECRET_KEY: SECRET_KEY,
        CHUTE_GRANT_SECRET: `${GRANT_KID}:${GRANT_SECRET}`,
        CHUTE_OPEN_GRANTS: 'false',
        RUST_LOG: process.env.RUST_LOG || 'info',
        ...env,
      },
      stdio: ['ignore', openSync(join(work, 'stdout.txt'), 'w'), openSync(errPath, 'w')],
    },
  );
  let exited = null;
  child.on('exit', (code, sig) => { exited = `${code ?? sig}`; });
  const output = () => (existsSync(errPath) ? readFileSync(errPath, 'utf8').slice(-6000) : '');
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited !== null) throw new Error(`chute serve exited (${exited}) before /healthz answered\n${output()}`);
    try {
      const r = await fetch(`http://127.0.0.1:${appPort}/healthz`);
      if (r.status === 200) break;
    } catch { /* not up yet */ }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`chute serve did not answer /healthz within 60 s\n${output()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    appUrl: `http://127.0.0.1:${appPort}`,
    s3Endpoint: `http://127.0.0.1:${s3Port}`,
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
