// The test page's script, bundled with esbuild: plain Uppy with
// @uppy/aws-s3 in Companion mode, pointed at Chute's app URL. The two
// Chute-specific lines are the grant header and the `size` meta field.
import Uppy from '@uppy/core';
import AwsS3 from '@uppy/aws-s3';

const MiB = 1024 * 1024;

window.uploadWithUppy = async ({ endpoint, grant }) => {
  const uppy = new Uppy({ autoProceed: false });
  uppy.use(AwsS3, {
    endpoint,
    headers: grant ? { authorization: `Bearer ${grant}` } : {},
    // Uppy's default is multipart above 100 MiB; Chute's own threshold is 16 MiB.
    shouldUseMultipart: (file) => file.size > 16 * MiB,
  });
  // Chute signs exact sizes, and Uppy does not send them: add the size meta field.
  uppy.on('file-added', (file) => uppy.setFileMeta(file.id, { size: file.size }));
  const parts = {};
  uppy.on('s3-multipart:part-uploaded', (file, part) => {
    (parts[file.name] ??= []).push(part.PartNumber);
  });

  for (const file of document.getElementById('files').files) {
    uppy.addFile({ name: file.name, type: file.type, data: file, source: 'test' });
  }
  const result = await uppy.upload();
  const out = {
    successful: (result?.successful ?? []).map((f) => ({
      name: f.name,
      size: f.size,
      key: f.response?.body?.key ?? null,
      location: f.response?.body?.location ?? null,
      receipt: f.response?.body?.receipt ?? null,
      uploadURL: f.response?.uploadURL ?? null,
    })),
    failed: (result?.failed ?? []).map((f) => ({ name: f.name, error: String(f.error) })),
    partsUploaded: Object.fromEntries(Object.entries(parts).map(([k, v]) => [k, v.sort((a, b) => a - b)])),
  };
  uppy.destroy();
  return out;
};
window.uppyReady = true;
