// Starts `chute serve` (target/debug/chute, or $CHUTE_BIN) on free ports
// with a temp data dir and fixed credentials, for the node:test suites.
// tests/browser/chute.mjs starts its servers with spawnChute too.
import { spawn } from 'node:child_process';
import { mkdtempSync, existsSync, rmSync, readFileSync, openSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = process.env.CHUTE_BIN || join(repo, 'target', 'debug', 'chute');
export const ACCESS_KEY = 'chutenodeaccess';
export const SECRET_KEY = 'chute-node-secret-0123456789abcdef';
export const BUCKET = 'uploads';

/** A free loopback TCP port. */
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

/**
 * `chute serve` with `env` added to this process's environment, in a temp
 * dir named from `prefix`; waits for /healthz. Answers `{appUrl,
 * s3Endpoint, output, stop}`; `stop()` answers how it exited (null if it
 * had not exited before SIGTERM).
 */
export async function spawnChute({ env = {}, prefix = 'chute-node-' } = {}) {
  if (!existsSync(BIN)) throw new Error(`chute binary not found at ${BIN}; run cargo build -p chute`);
  const work = mkdtempSync(join(tmpdir(), prefix));
  const appPort = await freePort();
  let s3Port = await freePort();
  while (s3Port === appPort) s3Port = await freePort();
  const errPath = join(work, 'stderr.txt');
  const child = spawn(
    BIN,
    ['serve', '--data-dir', join(work, 'data'), '--listen', `127.0.0.1:${appPort}`, '--s3-listen', `127.0.0.1:${s3Port}`],
    {
      cwd: work,
      env: { ...process.env, ...env },
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

/** The node suites' server: the embedded S3 endpoint with ACCESS_KEY/SECRET_KEY. */
export async function startChute() {
  const chute = await spawnChute({ env: { CHUTE_S3_ACCESS_KEY: ACCESS_KEY, CHUTE_S3_SECRET_KEY: SECRET_KEY } });
  return { endpoint: chute.s3Endpoint, output: chute.output, stop: chute.stop };
}
