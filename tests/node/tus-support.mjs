// What the tus client suites share (tests/node/tus.test.mjs and
// tests/browser/tus-uppy.test.mjs; widget-garage.test.mjs starts its Garage
// here too): Chute on its embedded store or on a
// single-node Garage started by `scripts/garage start`, always with a grant
// secret and no open grants (the creation POST must carry a grant), HS256
// grant minting, the receipt's claims, and reading an object back over S3.
import { createHash, createHmac } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GetObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { spawnChute } from './server.mjs';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const GARAGE_SCRIPT = join(repo, 'scripts', 'garage');
const GARAGE_BIN = process.env.CHUTE_GARAGE_BIN
  || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'chute', 'garage-2.5.0', 'bin', 'garage');

export const MiB = 1024 * 1024;
export const ACCESS_KEY = 'chutetusaccess';
export const SECRET_KEY = 'chute-tus-secret-0123456789abcdef';
export const BUCKET = 'uploads';
const GRANT_KID = 'tus';
const GRANT_SECRET = 'tus-test-grant-secret-0123456789abcdef';

const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** A grant JWT as an app would sign it with CHUTE_GRANT_SECRET. */
export function mintGrant(claims = {}) {
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT', kid: GRANT_KID }));
  const payload = b64url(JSON.stringify({ aud: 'chute', exp: Math.floor(Date.now() / 1000) + 600, ...claims }));
  const sig = createHmac('sha256', GRANT_SECRET).update(`${header}.${payload}`).digest('base64url');
  return `${header}.${payload}.${sig}`;
}

/** The claims of a receipt JWT, its HS256 signature checked with the grant secret. */
export function receiptClaims(receipt) {
  const [h, p, s] = String(receipt).split('.');
  const want = createHmac('sha256', GRANT_SECRET).update(`${h}.${p}`).digest('base64url');
  if (s !== want) throw new Error(`receipt signature does not verify: ${receipt}`);
  return JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
}

/** `scripts/garage start DIR`, its `export` lines parsed into S3 coordinates. */
export function startGarage(dir) {
  if (!existsSync(GARAGE_BIN)) {
    throw new Error(`Garage binary not found at ${GARAGE_BIN}: run \`scripts/garage build\` (scripts/test does) or set CHUTE_GARAGE_BIN`);
  }
  const out = spawnSync(GARAGE_SCRIPT, ['start', dir], { encoding: 'utf8', timeout: 180_000 });
  if (out.status !== 0) throw new Error(`scripts/garage start failed (${out.status ?? out.signal})\n${out.stdout}\n${out.stderr}`);
  const env = {};
  for (const line of out.stdout.split('\n')) {
    const m = /^export ([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) env[m[1]] = m[2].replace(/^['"]|['"]$/g, '');
  }
  for (const k of ['CHUTE_TEST_S3_ENDPOINT', 'CHUTE_TEST_S3_REGION', 'CHUTE_TEST_S3_BUCKET', 'CHUTE_TEST_S3_ACCESS_KEY', 'CHUTE_TEST_S3_SECRET_KEY']) {
    if (!env[k]) throw new Error(`scripts/garage start printed no ${k}\n${out.stdout}\n${out.stderr}`);
  }
  return {
    endpoint: env.CHUTE_TEST_S3_ENDPOINT,
    region: env.CHUTE_TEST_S3_REGION,
    bucket: env.CHUTE_TEST_S3_BUCKET,
    accessKey: env.CHUTE_TEST_S3_ACCESS_KEY,
    secretKey: env.CHUTE_TEST_S3_SECRET_KEY,
  };
}

/** `scripts/garage stop DIR`; answers null or what went wrong. */
export function stopGarage(dir) {
  const out = spawnSync(GARAGE_SCRIPT, ['stop', dir], { encoding: 'utf8', timeout: 60_000 });
  return out.status === 0 ? null : `scripts/garage stop failed (${out.status ?? out.signal}): ${out.stderr}`;
}

/** The environment that makes `chute serve` keep its objects in `store` (a startGarage() answer). */
export function s3StoreEnv(store) {
  return {
    CHUTE_STORE: 's3',
    CHUTE_S3_ENDPOINT: store.endpoint,
    CHUTE_S3_PATH_STYLE: 'true',
    CHUTE_REGION: store.region,
    CHUTE_BUCKET: store.bucket,
    CHUTE_S3_ACCESS_KEY: store.accessKey,
    CHUTE_S3_SECRET_KEY: store.secretKey,
  };
}

/** Stops a spawnChute() server; answers `[]`, or the non-clean exit as a one-problem list. */
async function stopChute(chute) {
  const code = await chute.stop();
  return code === null || code === '0' ? [] : [`chute serve exited with ${code} on SIGTERM`];
}

/**
 * `chute serve` on `backend` ('embedded' or 'garage', which starts its own
 * Garage). Answers `{name, chute, store, filesUrl, stop}`: `store` holds the
 * S3 coordinates the objects land in; `stop()` answers a list of problems
 * (a non-clean exit, Garage failing to stop).
 */
export async function startBackend(backend, { env = {} } = {}) {
  const base = {
    CHUTE_GRANT_SECRET: `${GRANT_KID}:${GRANT_SECRET}`,
    CHUTE_OPEN_GRANTS: 'false',
    RUST_LOG: process.env.RUST_LOG || 'info',
  };
  if (backend === 'embedded') {
    const chute = await spawnChute({
      prefix: 'chute-tus-',
      env: { ...base, CHUTE_S3_ACCESS_KEY: ACCESS_KEY, CHUTE_S3_SECRET_KEY: SECRET_KEY, ...env },
    });
    const store = { endpoint: chute.s3Endpoint, region: 'us-east-1', bucket: BUCKET, accessKey: ACCESS_KEY, secretKey: SECRET_KEY };
    return {
      name: backend,
      chute,
      store,
      filesUrl: `${chute.appUrl}/files/`,
      stop: () => stopChute(chute),
    };
  }
  if (backend !== 'garage') throw new Error(`unknown backend ${backend}`);
  const work = mkdtempSync(join(tmpdir(), 'chute-tus-garage-'));
  const garageDir = join(work, 'garage');
  let store;
  let chute;
  try {
    store = startGarage(garageDir);
    chute = await spawnChute({
      prefix: 'chute-tus-',
      env: {
        ...base,
        ...s3StoreEnv(store),
        ...env,
      },
    });
  } catch (e) {
    if (store) stopGarage(garageDir);
    rmSync(work, { recursive: true, force: true });
    throw e;
  }
  return {
    name: backend,
    chute,
    store,
    filesUrl: `${chute.appUrl}/files/`,
    async stop() {
      const problems = await stopChute(chute);
      const stopped = stopGarage(garageDir);
      if (stopped) problems.push(stopped);
      rmSync(work, { recursive: true, force: true });
      return problems;
    },
  };
}

function s3Client(store) {
  return new S3Client({
    endpoint: store.endpoint,
    region: store.region,
    forcePathStyle: true,
    credentials: { accessKeyId: store.accessKey, secretAccessKey: store.secretKey },
  });
}

/**
 * The keys of `store`'s objects and of its open multipart uploads under
 * `prefix`: `{objects, uploads}` (first page of each, enough for tests).
 */
export async function storedKeys(store, prefix) {
  const s3 = s3Client(store);
  try {
    const objects = await s3.send(new ListObjectsV2Command({ Bucket: store.bucket, Prefix: prefix }));
    const uploads = await s3.send(new ListMultipartUploadsCommand({ Bucket: store.bucket, Prefix: prefix }));
    return {
      objects: (objects.Contents ?? []).map((o) => o.Key),
      uploads: (uploads.Uploads ?? []).map((u) => u.Key),
    };
  } finally {
    s3.destroy();
  }
}

/** Reads `key` from `store`'s bucket; answers `{size, sha256}` of its bytes. */
export async function storedObject(store, key) {
  const s3 = s3Client(store);
  try {
    const got = await s3.send(new GetObjectCommand({ Bucket: store.bucket, Key: key }));
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of got.Body) {
      hash.update(chunk);
      size += chunk.length;
    }
    return { size, sha256: hash.digest('hex') };
  } finally {
    s3.destroy();
  }
}

/** POST /api/receipts/verify on Chute's app; answers the JSON. */
export async function verifyReceipt(appUrl, receipt) {
  const r = await fetch(`${appUrl}/api/receipts/verify`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ receipt }),
  });
  return r.json();
}

/** SHA-256 hex of a buffer. */
export const sha256 = (buf) => createHash('sha256').update(buf).digest('hex');
