// @aws-sdk/client-s3, @aws-sdk/s3-presigned-post and @aws-sdk/lib-storage
// against chute serve's embedded store, with the SDK's default checksums
// (CRC32, sent as aws-chunked trailers).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import {
  S3Client, PutObjectCommand, GetObjectCommand, HeadObjectCommand, DeleteObjectCommand,
  ListObjectsV2Command, CreateMultipartUploadCommand, UploadPartCommand,
  CompleteMultipartUploadCommand, AbortMultipartUploadCommand, ListPartsCommand,
  DeleteObjectsCommand, CopyObjectCommand,
} from '@aws-sdk/client-s3';
import { createPresignedPost } from '@aws-sdk/s3-presigned-post';
import { Upload } from '@aws-sdk/lib-storage';
import { startChute, ACCESS_KEY, SECRET_KEY, BUCKET } from './server.mjs';

const MiB = 1024 * 1024;
let chute;
let s3;
const prefix = `node-${randomUUID().slice(0, 8)}/`;

before(async () => {
  chute = await startChute();
  s3 = new S3Client({
    endpoint: chute.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY },
    maxAttempts: 1,
  });
});

after(async () => {
  s3?.destroy();
  await chute?.stop();
});

const md5 = (b) => createHash('md5').update(b).digest('hex');
const bytes = async (out) => Buffer.from(await out.Body.transformToByteArray());

async function keys(p = prefix) {
  const r = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: p }));
  return (r.Contents ?? []).map((o) => o.Key);
}

test('put, get, head, list, copy, delete', async () => {
  const key = `${prefix}hello.txt`;
  const body = Buffer.from('hello from node\n');
  const put = await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body, ContentType: 'text/plain', Metadata: { who: 'node' } }));
  assert.equal(put.ETag, `"${md5(body)}"`);
  const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  assert.deepEqual(await bytes(got), body);
  assert.equal(got.ContentType, 'text/plain');
  assert.deepEqual(got.Metadata, { who: 'node' });
  const ranged = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key, Range: 'bytes=6-9' }));
  assert.equal((await bytes(ranged)).toString(), 'from');
  const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
  assert.equal(head.ContentLength, body.length);
  await s3.send(new CopyObjectCommand({ Bucket: BUCKET, Key: `${prefix}copy.txt`, CopySource: `${BUCKET}/${key}` }));
  assert.deepEqual(await keys(), [`${prefix}copy.txt`, key]);
  await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: key }));
  const del = await s3.send(new DeleteObjectsCommand({ Bucket: BUCKET, Delete: { Objects: [{ Key: `${prefix}copy.txt` }] } }));
  assert.equal(del.Deleted.length, 1);
  assert.deepEqual(await keys(), []);
  await assert.rejects(s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key })), (e) => e.$metadata.httpStatusCode === 404);
  await assert.rejects(s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key })), (e) => e.name === 'NoSuchKey');
});

test('put and get a 3 MiB body with the default CRC32 checksum', async () => {
  // The SDK sends a Buffer with CRC32 trailer; check a larger one as well.
  const key = `${prefix}big.bin`;
  const body = randomBytes(3 * MiB + 17);
  await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));
  const got = await bytes(await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key })));
  assert.equal(md5(got), md5(body));
});

test('multipart upload with list parts, complete and abort', async () => {
  const key = `${prefix}mpu.bin`;
  const parts = [randomBytes(5 * MiB), randomBytes(5 * MiB), randomBytes(4321)];
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key }));
  const etags = [];
  for (const [i, p] of parts.entries()) {
    const r = await s3.send(new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId, PartNumber: i + 1, Body: p }));
    assert.equal(r.ETag, `"${md5(p)}"`);
    etags.push(r.ETag);
  }
  const lp = await s3.send(new ListPartsCommand({ Bucket: BUCKET, Key: key, UploadId }));
  assert.deepEqual(lp.Parts.map((p) => [p.PartNumber, p.Size]), [[1, 5 * MiB], [2, 5 * MiB], [3, 4321]]);
  const done = await s3.send(new CompleteMultipartUploadCommand({
    Bucket: BUCKET, Key: key, UploadId,
    MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
  }));
  const want = createHash('md5').update(Buffer.concat(parts.map((p) => createHash('md5').update(p).digest()))).digest('hex');
  assert.equal(done.ETag, `"${want}-3"`);
  const got = await bytes(await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key })));
  assert.equal(md5(got), md5(Buffer.concat(parts)));

  const aborted = `${prefix}aborted.bin`;
  const up2 = await s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: aborted }));
  await s3.send(new UploadPartCommand({ Bucket: BUCKET, Key: aborted, UploadId: up2.UploadId, PartNumber: 1, Body: randomBytes(1000) }));
  await s3.send(new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: aborted, UploadId: up2.UploadId }));
  await assert.rejects(
    s3.send(new ListPartsCommand({ Bucket: BUCKET, Key: aborted, UploadId: up2.UploadId })),
    (e) => e.name === 'NoSuchUpload',
  );
  assert.ok(!(await keys()).includes(aborted));
});

test('lib-storage Upload of 12 MiB (multipart) then GET compare', async () => {
  const key = `${prefix}lib-storage.bin`;
  const body = randomBytes(12 * MiB);
  const upload = new Upload({ client: s3, params: { Bucket: BUCKET, Key: key, Body: body }, partSize: 5 * MiB, queueSize: 2 });
  let progressed = 0;
  upload.on('httpUploadProgress', (p) => { progressed = Math.max(progressed, p.loaded ?? 0); });
  const r = await upload.done();
  assert.match(r.ETag, /-3"$/);
  assert.equal(progressed, body.length);
  const got = await bytes(await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key })));
  assert.equal(got.length, body.length);
  assert.equal(md5(got), md5(body));
});

async function postForm(url, fields, file, filename = 'file.bin') {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  form.append('file', new Blob([file]), filename);
  return fetch(url, { method: 'POST', body: form, redirect: 'manual' });
}

test('createPresignedPost form uploaded with fetch + FormData', async () => {
  const key = `${prefix}post/form.txt`;
  const { url, fields } = await createPresignedPost(s3, {
    Bucket: BUCKET, Key: key, Expires: 300,
    Conditions: [['content-length-range', 1, 1024], ['starts-with', '$Content-Type', 'text/']],
    Fields: { 'Content-Type': 'text/plain', success_action_status: '201' },
  });
  const r = await postForm(url, fields, Buffer.from('posted from node'));
  const text = await r.text();
  assert.equal(r.status, 201, text);
  assert.match(text, /<Key>[^<]*post\/form\.txt<\/Key>/);
  const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  assert.equal((await bytes(got)).toString(), 'posted from node');
  assert.equal(got.ContentType, 'text/plain');
});

test('createPresignedPost form: too large is refused with EntityTooLarge', async () => {
  const key = `${prefix}post/too-large.bin`;
  const { url, fields } = await createPresignedPost(s3, {
    Bucket: BUCKET, Key: key, Expires: 300, Conditions: [['content-length-range', 0, 1024]],
  });
  const r = await postForm(url, fields, randomBytes(4096));
  const text = await r.text();
  assert.equal(r.status, 400, text);
  assert.match(text, /<Code>EntityTooLarge<\/Code>/);
  assert.ok(!(await keys(`${prefix}post/`)).includes(key));
});

test('createPresignedPost with ${filename}', async () => {
  const { url, fields } = await createPresignedPost(s3, {
    Bucket: BUCKET, Key: `${prefix}named/\${filename}`, Expires: 300,
    Conditions: [['starts-with', '$key', `${prefix}named/`]],
  });
  const r = await postForm(url, fields, Buffer.from('x'), 'report.pdf');
  assert.equal(r.status, 204, await r.text());
  assert.deepEqual(await keys(`${prefix}named/`), [`${prefix}named/report.pdf`]);
});
