// tus-js-client (the reference tus 1.0 client) in Node against Chute's
// /files/ endpoint, once on the embedded store and once on Garage: a 20 MB
// upload aborted after 1 MiB and resumed by a new Upload found through
// findPreviousUploads, and one resumed the instant after its abort; two
// clients racing on one upload; termination; chunk sizes that do not
// divide the file; creation-with-upload, creation-defer-length,
// X-HTTP-Method-Override; and parallelUploads (concatenation). Every object
// is read back over S3 and compared by SHA-256; every upload ends with a
// Chute-Receipt that verifies.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createReadStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Readable, Transform } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tus from 'tus-js-client';
import { MiB, mintGrant, receiptClaims, sha256, startBackend, storedKeys, storedObject, verifyReceipt } from './tus-support.mjs';

const SIZE = 20 * 1000 * 1000; // 20 MB: not a multiple of any chunk size below
const RETRIES = [0, 200, 500, 1000, 2000];

let work;
let file; // the bytes, a Buffer: tus-js-client sends Buffer slices with Transfer-Encoding: chunked
let filePath; // the same bytes on disk: an fs.ReadStream's slices go with Content-Length
before(() => {
  work = mkdtempSync(join(tmpdir(), 'chute-tus-node-'));
  file = randomBytes(SIZE);
  filePath = join(work, 'resumed.bin');
  writeFileSync(filePath, file);
});
after(() => { if (work) rmSync(work, { recursive: true, force: true }); });

/**
 * tus-js-client's Node HTTP stack, but request bodies go out at about 6 MB/s
 * (32 KiB every 5 ms), so that on loopback an abort lands near the progress
 * at which it was asked for (progress events come at most every 100 ms).
 */
class SlowHttpStack extends tus.DefaultHttpStack {
  createRequest(method, url) {
    const req = super.createRequest(method, url);
    const send = req.send.bind(req);
    req.send = (body) => {
      if (!(body instanceof Readable)) return send(body);
      const slow = body.pipe(new Transform({
        transform(chunk, _enc, done) {
          const pieces = [];
          for (let at = 0; at < chunk.length; at += 32 * 1024) pieces.push(chunk.subarray(at, at + 32 * 1024));
          const next = () => {
            if (pieces.length === 0) { done(); return; }
            this.push(pieces.shift());
            setTimeout(next, 5);
          };
          next();
        },
      }));
      slow.size = body.size; // keeps Content-Length
      return send(slow);
    };
    return req;
  }
}

/**
 * Runs one tus-js-client Upload of `data` to completion (`hooks.start`, if
 * given, starts it). Records every request as `{method, url, offset,
 * concat}` and every response's status, offset, Chute-Receipt (and body if
 * an error). Answers `{upload, requests, responses, last}`; an error
 * carries `requests` and `responses` too.
 */
function runUpload(data, options, hooks = {}) {
  const requests = [];
  const responses = [];
  return new Promise((ok, fail) => {
    const upload = new tus.Upload(data, {
      retryDelays: RETRIES,
      ...options,
      onBeforeRequest(req) {
        requests.push({
          method: req.getMethod(),
          url: req.getURL(),
          offset: req.getHeader('Upload-Offset') ?? null,
          concat: req.getHeader('Upload-Concat') ?? null,
        });
      },
      onAfterResponse(req, res) {
        responses.push({
          method: req.getMethod(),
          url: req.getURL(),
          status: res.getStatus(),
          offset: res.getHeader('Upload-Offset') ?? null,
          receipt: res.getHeader('Chute-Receipt') ?? null,
          body: res.getStatus() >= 400 ? res.getBody() : undefined,
        });
      },
      onSuccess: ({ lastResponse }) => ok({ upload, requests, responses, last: lastResponse }),
      onError: (err) => fail(Object.assign(err, { requests, responses })),
    });
    hooks.start ? hooks.start(upload) : upload.start();
  });
}

for (const backendName of ['embedded', 'garage']) {
  describe(`tus-js-client on ${backendName}`, () => {
    let b;
    before(async () => { b = await startBackend(backendName); });
    after(async () => {
      const problems = await b?.stop();
      assert.deepEqual(problems ?? [], []);
    });

    const context = (extra) => `${extra ? `${JSON.stringify(extra, null, 1)}\n` : ''}--- chute ---\n${b.chute.output()}`;

    /** The receipt verifies, names tmp/<id>/<name>, and the stored object is `data`. */
    async function checkStored(receipt, name, data, sub) {
      assert.ok(receipt, context('no Chute-Receipt on the completing response'));
      const claims = receiptClaims(receipt);
      assert.match(claims.key, new RegExp(`^tmp/[^/]+/${name.replace('.', '\\.')}$`), JSON.stringify(claims));
      assert.equal(claims.size, data.length, JSON.stringify(claims));
      assert.ok(claims.etag, JSON.stringify(claims));
      if (sub) assert.equal(claims.sub, sub);
      const verified = await verifyReceipt(b.chute.appUrl, receipt);
      assert.equal(verified.valid, true, JSON.stringify(verified));
      const stored = await storedObject(b.store, claims.key);
      assert.equal(stored.size, data.length, claims.key);
      assert.equal(stored.sha256, sha256(data), `${claims.key}: content differs`);
      return claims;
    }

    test('a 20 MB upload aborted after 1 MiB resumes through findPreviousUploads, byte-identical', async () => {
      const urlStorage = new tus.FileUrlStorage(join(work, `urls-${backendName}.json`));
      const grant = mintGrant({ sub: 'tus-node' });
      const options = {
        endpoint: b.filesUrl,
        headers: { authorization: `Bearer ${grant}` },
        metadata: { filename: 'resumed.bin', filetype: 'application/octet-stream' },
        urlStorage,
      };

      // First Upload: the whole file in one PATCH (no chunkSize), sent
      // slowly and aborted once more than 1 MiB has left the client.
      const first = { requests: [], url: null, progress: 0 };
      await new Promise((ok, fail) => {
        const upload = new tus.Upload(createReadStream(filePath), {
          ...options,
          httpStack: new SlowHttpStack(),
          retryDelays: null,
          onBeforeRequest: (req) => first.requests.push(`${req.getMethod()} ${req.getURL()}`),
          onProgress(sent) {
            first.progress = sent;
            if (sent > MiB && first.url === null) {
              first.url = upload.url;
              upload.abort().then(ok, fail);
            }
          },
          onSuccess: () => fail(new Error('the first upload finished before it was aborted')),
          onError: fail,
        });
        upload.start();
      });
      assert.ok(first.url?.startsWith(b.filesUrl), `upload URL ${first.url} is not under ${b.filesUrl}`);
      assert.deepEqual(first.requests.map((r) => r.split(' ')[0]), ['POST', 'PATCH'], JSON.stringify(first.requests));

      // The server notices the broken-off body and keeps what arrived (tus
      // core: "SHOULD store as much of the received data as possible").
      // It may take a moment: until then a HEAD still answers the old offset.
      let kept = 0;
      for (const until = Date.now() + 15_000; kept === 0 && Date.now() < until;) {
        const h = await fetch(first.url, { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0' } });
        assert.equal(h.status, 200, context(`HEAD ${first.url} -> ${h.status}`));
        kept = Number(h.headers.get('upload-offset'));
        if (kept === 0) await new Promise((r) => setTimeout(r, 100));
      }
      // (Progress events are throttled, so more than `first.progress` may have left.)
      assert.ok(kept > 0 && kept < SIZE, `server offset ${kept} after ${first.progress} bytes were sent`);

      // Second Upload: a new object that knows only what the URL storage kept.
      const { upload, requests, responses, last } = await runUpload(createReadStream(filePath), options, {
        async start(upload) {
          const previous = await upload.findPreviousUploads();
          assert.equal(previous.length, 1, JSON.stringify(previous));
          assert.equal(previous[0].uploadUrl, first.url);
          upload.resumeFromPreviousUpload(previous[0]);
          upload.start();
        },
      });
      assert.equal(upload.url, first.url);
      // It asked the server where to continue, and continued there.
      assert.equal(requests[0].method, 'HEAD', JSON.stringify(requests));
      const head = responses[0];
      assert.equal(head.status, 200, context(responses));
      const resumedAt = Number(head.offset);
      assert.ok(first.progress < 4 * MiB, `the abort came late, after ${first.progress} bytes`);
      assert.equal(resumedAt, kept);
      const patches = requests.filter((r) => r.method === 'PATCH');
      assert.equal(patches[0].offset, String(resumedAt), JSON.stringify(requests));
      assert.ok(responses.every((r) => r.status < 400), context(responses));
      console.log(`# ${backendName}: aborted after ${first.progress} bytes sent; server offset ${resumedAt}`);

      await checkStored(last.getHeader('Chute-Receipt'), 'resumed.bin', file, 'tus-node');
    });

    test('an Upload resumed the moment the previous one was aborted still ends byte-identical', async () => {
      // No waiting for the server to notice the broken-off PATCH: the new
      // Upload's HEAD may see the old offset and its PATCH may meet the lock
      // or a 409; tus-js-client's retries must get it through all the same.
      const grant = mintGrant({ sub: 'tus-node' });
      const options = {
        endpoint: b.filesUrl,
        chunkSize: 2 * MiB + 1,
        headers: { authorization: `Bearer ${grant}` },
        metadata: { filename: 'at-once.bin', filetype: 'application/octet-stream' },
      };
      let url = null;
      await new Promise((ok, fail) => {
        const upload = new tus.Upload(createReadStream(filePath), {
          ...options,
          httpStack: new SlowHttpStack(),
          retryDelays: null,
          onProgress(sent) {
            if (sent > 3 * MiB && url === null) {
              url = upload.url;
              upload.abort().then(ok, fail);
            }
          },
          onSuccess: () => fail(new Error('the first upload finished before it was aborted')),
          onError: fail,
        });
        upload.start();
      });
      assert.ok(url);
      const { upload, responses, last } = await runUpload(createReadStream(filePath), { ...options, uploadUrl: url });
      assert.equal(upload.url, url);
      const receipts = responses.filter((r) => r.receipt);
      assert.equal(receipts.length, 1, context(responses));
      // Whatever went wrong on the way was a conflict to retry, nothing worse.
      for (const r of responses.filter((x) => x.status >= 400)) {
        assert.ok([409, 423].includes(r.status), context(responses));
      }
      console.log(`# ${backendName}: resumed at once: ${responses.map((r) => `${r.method} ${r.status} ${r.offset ?? ''}`).join(', ')}`);
      await checkStored(last.getHeader('Chute-Receipt'), 'at-once.bin', file, 'tus-node');
    });

    test('two Upload objects on one URL at once (two tabs): the per-upload lock keeps the object intact', async () => {
      const grant = mintGrant({ sub: 'tus-node' });
      const options = {
        endpoint: b.filesUrl,
        chunkSize: 2 * MiB + 1,
        headers: { authorization: `Bearer ${grant}` },
        metadata: { filename: 'two-tabs.bin', filetype: 'application/octet-stream' },
      };
      // Create the upload with its first chunk, then let two clients race.
      let url = null;
      await new Promise((ok, fail) => {
        const upload = new tus.Upload(file, {
          ...options,
          retryDelays: null,
          onChunkComplete() {
            if (url === null) {
              url = upload.url;
              upload.abort().then(ok, fail);
            }
          },
          onError: fail,
        });
        upload.start();
      });
      const racers = await Promise.all([0, 1].map(() => runUpload(file, { ...options, uploadUrl: url, retryDelays: [0, 100, 200, 400, 800, 1600, 3200] })));
      const all = racers.flatMap((r) => r.responses);
      for (const r of all.filter((x) => x.status >= 400)) {
        assert.ok([409, 423].includes(r.status), context(all));
      }
      // Exactly one PATCH completed the upload; the other client learnt it
      // was done from a HEAD (with the same receipt) or a 409.
      const completing = all.filter((r) => r.method === 'PATCH' && r.receipt);
      assert.equal(completing.length, 1, context(all));
      for (const r of racers) {
        const receipt = r.last.getHeader('Chute-Receipt');
        if (receipt) assert.equal(receipt, completing[0].receipt);
      }
      console.log(`# ${backendName}: two racers: ${racers.map((r) => r.responses.map((x) => `${x.method[0]}${x.status}`).join(' ')).join(' | ')}`);
      await checkStored(completing[0].receipt, 'two-tabs.bin', file, 'tus-node');
    });

    test('tus.Upload.terminate: the server forgets the upload and the store keeps nothing of it', async () => {
      const grant = mintGrant({ sub: 'tus-node' });
      const options = {
        endpoint: b.filesUrl,
        chunkSize: 6 * MiB,
        headers: { authorization: `Bearer ${grant}` },
        metadata: { filename: 'terminated.bin', filetype: 'application/octet-stream' },
        retryDelays: null,
      };
      // Pause after the first 6 MiB chunk (a stored part and a tail).
      let url = null;
      await new Promise((ok, fail) => {
        const upload = new tus.Upload(file, {
          ...options,
          onChunkComplete(_size, sent) {
            if (sent >= 6 * MiB && url === null) {
              url = upload.url;
              upload.abort().then(ok, fail);
            }
          },
          onSuccess: () => fail(new Error('the upload finished before it was paused')),
          onError: fail,
        });
        upload.start();
      });
      assert.ok(url?.startsWith(b.filesUrl), url);
      const id = url.slice(b.filesUrl.length);
      // The upload's state lives in the store, next to its multipart upload
      // (see crates/chute-tus/src/state.rs, STATE_PREFIX).
      const state = `.chute/tus/${id}/`;
      const mine = (k) => k.endsWith('/terminated.bin');
      const before = await storedKeys(b.store, state);
      assert.ok(before.objects.length > 0, `no tus state under ${state}: ${JSON.stringify(before)}`);
      assert.equal((await storedKeys(b.store, 'tmp/')).uploads.filter(mine).length, 1, 'one open multipart upload');

      await tus.Upload.terminate(url, options); // DELETE
      const head = await fetch(url, { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0' } });
      assert.ok([404, 410].includes(head.status), `HEAD after termination -> ${head.status}`);
      const patch = await fetch(url, {
        method: 'PATCH',
        headers: { 'Tus-Resumable': '1.0.0', 'Upload-Offset': String(6 * MiB), 'Content-Type': 'application/offset+octet-stream' },
        body: file.subarray(6 * MiB, 6 * MiB + 10),
      });
      assert.ok([404, 410].includes(patch.status), `PATCH after termination -> ${patch.status}`);
      // Nothing of it is left: no state, no object, no open multipart upload.
      assert.deepEqual(await storedKeys(b.store, state), { objects: [], uploads: [] });
      const left = await storedKeys(b.store, 'tmp/');
      assert.deepEqual(left.objects.filter(mine), [], JSON.stringify(left));
      assert.deepEqual(left.uploads.filter(mine), [], JSON.stringify(left));
    });

    for (const chunkSize of [3 * MiB + 7, 5 * MiB + 1]) {
      test(`chunkSize ${chunkSize} on a 20 MB file: every PATCH at the right offset, byte-identical`, async () => {
        const name = `chunks-${chunkSize}.bin`;
        const { requests, responses, last } = await runUpload(file, {
          endpoint: b.filesUrl,
          chunkSize,
          headers: { authorization: `Bearer ${mintGrant({ sub: 'tus-node' })}` },
          metadata: { filename: name, filetype: 'application/octet-stream' },
        });
        assert.ok(responses.every((r) => r.status < 400), context(responses));
        const patches = requests.filter((r) => r.method === 'PATCH');
        const want = [];
        for (let at = 0; at < SIZE; at += chunkSize) want.push(String(at));
        assert.deepEqual(patches.map((p) => p.offset), want, 'one PATCH per chunk, no retries');
        // Each PATCH answered the new offset.
        const answered = responses.filter((r) => r.method === 'PATCH').map((r) => r.offset);
        assert.deepEqual(answered, [...want.slice(1), String(SIZE)]);
        // Only the last PATCH completed the upload.
        const receipts = responses.filter((r) => r.receipt);
        assert.equal(receipts.length, 1, context(responses));
        assert.equal(last.getHeader('Chute-Receipt'), receipts[0].receipt);
        await checkStored(receipts[0].receipt, name, file, 'tus-node');
      });
    }

    test('creation-with-upload: the POST carries the first chunk', async () => {
      const name = 'with-upload.bin';
      const chunkSize = 4 * MiB + 1;
      const { requests, responses, last } = await runUpload(file, {
        endpoint: b.filesUrl,
        chunkSize,
        uploadDataDuringCreation: true,
        headers: { authorization: `Bearer ${mintGrant({ sub: 'tus-node' })}` },
        metadata: { filename: name, filetype: 'application/octet-stream' },
      });
      assert.ok(responses.every((r) => r.status < 400), context(responses));
      assert.equal(requests[0].method, 'POST');
      assert.equal(responses[0].status, 201);
      assert.equal(responses[0].offset, String(chunkSize), 'the POST answered the offset of the bytes it took');
      const patches = requests.filter((r) => r.method === 'PATCH').map((r) => r.offset);
      const want = [];
      for (let at = chunkSize; at < SIZE; at += chunkSize) want.push(String(at));
      assert.deepEqual(patches, want);
      await checkStored(last.getHeader('Chute-Receipt'), name, file, 'tus-node');
    });

    test('creation-defer-length: a stream of unknown length, its length sent with the last PATCH', async () => {
      const name = 'deferred.bin';
      // A plain Readable (not a file): tus-js-client cannot know its size.
      const stream = Readable.from((function* () {
        for (let at = 0; at < SIZE; at += 1_000_000) yield file.subarray(at, at + 1_000_000);
      })());
      const { requests, responses, last } = await runUpload(stream, {
        endpoint: b.filesUrl,
        chunkSize: 5 * MiB + 3,
        uploadLengthDeferred: true,
        headers: { authorization: `Bearer ${mintGrant({ sub: 'tus-node' })}` },
        metadata: { filename: name, filetype: 'application/octet-stream' },
      });
      assert.ok(responses.every((r) => r.status < 400), context(responses));
      assert.equal(requests[0].method, 'POST');
      await checkStored(last.getHeader('Chute-Receipt'), name, file, 'tus-node');
    });

    test('X-HTTP-Method-Override: PATCHes sent as POSTs', async () => {
      const name = 'override.bin';
      const { requests, responses, last } = await runUpload(file, {
        endpoint: b.filesUrl,
        chunkSize: 6 * MiB + 5,
        overridePatchMethod: true,
        headers: { authorization: `Bearer ${mintGrant({ sub: 'tus-node' })}` },
        metadata: { filename: name, filetype: 'application/octet-stream' },
      });
      assert.ok(responses.every((r) => r.status < 400), context(responses));
      assert.equal(requests.filter((r) => r.method === 'PATCH').length, 0);
      assert.equal(requests.filter((r) => r.method === 'POST').length, 1 + Math.ceil(SIZE / (6 * MiB + 5)));
      await checkStored(last.getHeader('Chute-Receipt'), name, file, 'tus-node');
    });

    test('sizes around the 5 MiB part size, 0 and 1 byte, at once: each byte-identical with a receipt', async () => {
      const sizes = [0, 1, 5 * MiB - 1, 5 * MiB, 5 * MiB + 1, 10 * MiB, 10 * MiB + 1];
      const grant = mintGrant({ sub: 'tus-node' });
      const results = await Promise.all(sizes.map((size) => runUpload(file.subarray(0, size), {
        endpoint: b.filesUrl,
        chunkSize: 5 * MiB,
        headers: { authorization: `Bearer ${grant}` },
        metadata: { filename: `size-${size}.bin`, filetype: 'application/octet-stream' },
      })));
      for (const [i, size] of sizes.entries()) {
        const { responses, last } = results[i];
        assert.ok(responses.every((r) => r.status < 400), context(responses));
        // An empty upload completes at creation: the receipt is on the POST.
        if (size === 0) assert.equal(last.getStatus(), 201, context(responses));
        await checkStored(last.getHeader('Chute-Receipt'), `size-${size}.bin`, file.subarray(0, size), 'tus-node');
      }
    });

    test("the grant's types apply to Upload-Metadata's filetype and to the bytes", async () => {
      const PNG = Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c63f8ffff3f0005fe02fea73581840000000049454e44ae426082', 'hex');
      const grant = mintGrant({ sub: 'tus-node', types: ['image/*'] });
      const upload = (data, filename, filetype) => runUpload(data, {
        endpoint: b.filesUrl,
        headers: { authorization: `Bearer ${grant}` },
        metadata: { filename, filetype },
        retryDelays: null,
      }).then((r) => ({ ok: true, ...r }), (e) => ({ ok: false, status: e.originalResponse?.getStatus(), body: e.originalResponse?.getBody(), responses: e.responses }));
      const show = (r) => context({ ok: r.ok, status: r.status, body: r.body, responses: r.responses });

      const png = await upload(PNG, 'pixel.png', 'image/png');
      assert.ok(png.ok, show(png));
      const claims = await checkStored(png.last.getHeader('Chute-Receipt'), 'pixel.png', PNG, 'tus-node');
      assert.equal(claims.type, 'image/png');

      // A type the grant does not allow is refused at creation.
      const pdf = await upload(Buffer.from('%PDF-1.4\n%âãÏÓ\n1 0 obj\n'), 'doc.pdf', 'application/pdf');
      assert.equal(pdf.ok, false, show(pdf));
      assert.deepEqual(pdf.responses.map((r) => r.method), ['POST'], show(pdf));
      assert.ok(pdf.status >= 400 && pdf.status < 500, show(pdf));

      // Bytes that are not the declared image: the completing PATCH is
      // refused and nothing is stored.
      const fake = await upload(file.subarray(0, 70_000), 'fake.png', 'image/png');
      assert.equal(fake.ok, false, show(fake));
      assert.equal(fake.responses.at(-1).method, 'PATCH', show(fake));
      assert.equal(fake.status, 422, show(fake));
      assert.ok(fake.responses.every((r) => !r.receipt));
      const left = await storedKeys(b.store, 'tmp/');
      assert.deepEqual(left.objects.filter((k) => k.endsWith('/fake.png')), [], JSON.stringify(left));
      assert.deepEqual(left.uploads.filter((k) => k.endsWith('/fake.png')), [], JSON.stringify(left));
    });

    test('parallelUploads: three partial uploads concatenated into a final upload', async () => {
      const opt = await fetch(b.filesUrl, { method: 'OPTIONS', headers: { 'Tus-Resumable': '1.0.0' } });
      const extensions = (opt.headers.get('tus-extension') ?? '').split(',').map((s) => s.trim());
      // Issue 5: concatenation on every store.
      assert.ok(extensions.includes('concatenation'), `Tus-Extension: ${opt.headers.get('tus-extension')}`);

      // Boundaries on 5 MiB multiples except the last, plus uneven ones.
      const name = 'concatenated.bin';
      const grant = mintGrant({ sub: 'tus-node' });
      const { requests, responses, last } = await runUpload(file, {
        endpoint: b.filesUrl,
        parallelUploads: 3,
        chunkSize: 4 * MiB + 3,
        headers: { authorization: `Bearer ${grant}` },
        metadata: { filename: name, filetype: 'application/octet-stream' },
      });
      assert.ok(responses.every((r) => r.status < 400), context(responses));
      const posts = requests.filter((r) => r.method === 'POST');
      assert.equal(posts.filter((p) => p.concat === 'partial').length, 3);
      const final = posts.find((p) => p.concat?.startsWith('final;'));
      assert.ok(final, JSON.stringify(posts));
      await checkStored(last.getHeader('Chute-Receipt'), name, file, 'tus-node');
    });
  });
}
