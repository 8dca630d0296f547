// The tus test page's script, bundled with esbuild: plain Uppy with
// @uppy/tus pointed at Chute's /files/ endpoint. The one Chute-specific line
// is the grant header; the receipt is read from the completing response's
// Chute-Receipt header, once through onAfterResponse and once through the
// XHR Uppy hands to `upload-success` (both need CORS to expose it).
import Uppy from '@uppy/core';
import Tus from '@uppy/tus';

// `stopAt`: answer as soon as that many bytes are up, leaving the upload
// running (the test then closes the page, as a user closing the tab).
window.uploadWithTus = async ({ endpoint, grant, chunkSize, stopAt }) => {
  const uppy = new Uppy({ autoProceed: false });
  const receipts = {}; // upload URL -> receipt seen by onAfterResponse
  const statuses = []; // `${method} ${status}` of every tus response
  const sent = []; // `${method} ${Upload-Offset}` of every tus request
  uppy.use(Tus, {
    endpoint,
    headers: grant ? { authorization: `Bearer ${grant}` } : {},
    ...(chunkSize ? { chunkSize } : {}),
    retryDelays: [0, 500, 1000],
    onBeforeRequest(req) {
      sent.push(`${req.getMethod()} ${req.getHeader('Upload-Offset') ?? ''}`.trim());
    },
    onAfterResponse(req, res) {
      statuses.push(`${req.getMethod()} ${res.getStatus()}`);
      const receipt = res.getHeader('Chute-Receipt');
      if (receipt) receipts[req.getURL()] = receipt;
    },
  });
  const fromSuccess = {};
  uppy.on('upload-success', (file, response) => {
    fromSuccess[file.name] = {
      uploadURL: response.uploadURL ?? null,
      receipt: response.body?.xhr?.getResponseHeader('Chute-Receipt') ?? null,
    };
  });

  for (const file of document.getElementById('files').files) {
    uppy.addFile({ name: file.name, type: file.type, data: file, source: 'test' });
  }
  if (stopAt) {
    return new Promise((resolve) => {
      uppy.on('upload-progress', (file, progress) => {
        if (progress.bytesUploaded >= stopAt) resolve({ stopped: progress.bytesUploaded, sent, statuses });
      });
      uppy.upload();
    });
  }
  const result = await uppy.upload();
  const out = {
    successful: (result?.successful ?? []).map((f) => ({
      name: f.name,
      size: f.size,
      uploadURL: fromSuccess[f.name]?.uploadURL ?? null,
      receipt: fromSuccess[f.name]?.receipt ?? null,
      afterResponseReceipt: receipts[fromSuccess[f.name]?.uploadURL] ?? null,
    })),
    failed: (result?.failed ?? []).map((f) => ({ name: f.name, error: String(f.error) })),
    statuses,
    sent,
  };
  uppy.destroy();
  return out;
};
window.uppyReady = true;
