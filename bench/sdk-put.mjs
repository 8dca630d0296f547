// PutObject throughput with the AWS SDK for JavaScript v3 defaults, which
// stream the body aws-chunked with a CRC32 trailer checksum
// (STREAMING-UNSIGNED-PAYLOAD-TRAILER): the path most browser and Node
// apps take. Uses the SDK pinned for tests/node (run `npm ci` there, or
// scripts/test, first) and a release build of chute.
//
//   cargo build --release -p chute && node bench/sdk-put.mjs [size MiB, default 512] [runs, default 3]
import { createRequire } from 'node:module';
import { spawn } from 'node:child_process';
import { createReadStream, mkdtempSync, openSync, writeSync, closeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const require = createRequire(new URL('../tests/node/package.json', import.meta.url));
const { S3Client, PutObjectCommand } = require('@aws-sdk/client-s3');
const mib = Number(process.argv[2] || 512);
const runs = Number(process.argv[3] || 3);
const bin = process.env.CHUTE_BIN || new URL('../target/release/chute', import.meta.url).pathname;

const freePort = () => new Promise(res => { const s = createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); }); });
const dir = mkdtempSync(join(tmpdir(), 'chute-sdk-put-'));
const file = join(dir, 'body.bin');
const fd = openSync(file, 'w');
for (let i = 0; i < mib; i++) writeSync(fd, randomBytes(1 << 20));
closeSync(fd);

const [s3port, app] = [await freePort(), await freePort()];
const srv = spawn(bin, ['serve', '--data-dir', join(dir, 'data'), '--listen', `127.0.0.1:${app}`, '--s3-listen', `127.0.0.1:${s3port}`],
  { env: { ...process.env, CHUTE_S3_ACCESS_KEY: 'benchkey', CHUTE_S3_SECRET_KEY: 'benchsecret1', CHUTE_LOG: 'warn' }, stdio: 'ignore' });
for (let i = 0; i < 100; i++) {
  try { if ((await fetch(`http://127.0.0.1:${app}/healthz`)).ok) break; } catch { await new Promise(r => setTimeout(r, 100)); }
}
const s3 = new S3Client({ endpoint: `http://127.0.0.1:${s3port}`, region: 'us-east-1', forcePathStyle: true,
  credentials: { accessKeyId: 'benchkey', secretAccessKey: 'benchsecret1' } });
let sent = {};
s3.middlewareStack.add(next => async args => { sent = args.request.headers; return next(args); }, { step: 'finalizeRequest', priority: 'low' });
const speeds = [];
try {
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await s3.send(new PutObjectCommand({ Bucket: 'uploads', Key: `bench/${i}`, Body: createReadStream(file), ContentLength: mib << 20 }));
    speeds.push(mib / ((performance.now() - t) / 1000));
  }
} finally {
  srv.kill();
}
speeds.sort((a, b) => a - b);
console.log(`x-amz-content-sha256: ${sent['x-amz-content-sha256']}, x-amz-trailer: ${sent['x-amz-trailer']}`);
console.log(`SDK PutObject ${mib} MiB, ${runs} runs: ${speeds.map(Math.round).join(', ')} MiB/s; median ${Math.round(speeds[Math.floor(runs / 2)])}`);
