// chute.js: browser uploads straight to the store through Chute's upload
// API, as a progressive enhancement of a plain file input. One ES module,
// no dependencies, served by `chute serve` at /chute.js.
//
//   <form method="post" action="/profile" enctype="multipart/form-data">
//     <input type="file" name="avatar" data-chute="/api/uploads" data-grant="...">
//     <div data-chute-progress></div>
//     <button>Save</button>
//   </form>
//   <script type="module" src="/chute.js"></script>
//
// On import every `input[type=file][data-chute]` is upgraded: chosen files
// go to the store at once (or on submit with `data-chute-upload="submit"`),
// the form submits one hidden input per file holding its signed receipt
// under the input's name (the file input loses its name, so bytes never
// reach the app), submit waits for uploads in flight and is blocked when
// one failed. Without JavaScript the form posts the file itself.
//
// Events (CustomEvent on the input; they bubble to the form): chute:start,
// chute:progress, chute:retry, chute:complete, chute:error, chute:done,
// chute:pause, chute:resume.
//
// Options beyond the basics: data-checksum="crc32c" (hashed in a Web
// Worker), data-chute-drop="#zone" (drop zone; paste works on the form),
// data-max-width / data-max-height / data-quality (images scaled down
// before upload); pause(input) and resume(input); cancel(input) for every
// file, cancel(input, file) for one (chute:error with code `cancelled`).

/**
 * @typedef {object} ChuteOptions
 * @property {string} endpoint `POST` URL of the upload API (`/api/uploads`).
 * @property {string | null} [grant] Grant JWT sent as `Authorization: Bearer`.
 * @property {number} [parallel] Parts (or files) sent at once (default 4).
 * @property {number} [retries] Retries per part or call (default 5).
 * @property {number} [retryDelay] Base backoff in ms (default 500), doubled per attempt, plus jitter.
 * @property {number | null} [maxSize] Largest file in bytes (`data-max-size`).
 * @property {number | null} [minSize] Smallest file in bytes (`data-min-size`).
 * @property {string} [accept] Accepted types, as the `accept` attribute.
 * @property {boolean} [auto] Upload as soon as files are chosen (default true); false: on submit.
 * @property {Element | null} [progress] Container for per-file `role=progressbar` elements.
 * @property {Storage | null} [storage] Where resumable uploads are remembered (default localStorage).
 * @property {'crc32c' | null} [checksum] Checksum computed in a Web Worker and verified by the store and server (`data-checksum`).
 * @property {number} [multipartThreshold] With a checksum: files above this many bytes go multipart (default 16 MiB, the server's default).
 * @property {Element | null} [drop] Drop zone for files (`data-chute-drop`, a selector).
 * @property {number | null} [maxWidth] Images (JPEG, PNG, WebP) wider than this are scaled down before upload (`data-max-width`).
 * @property {number | null} [maxHeight] Likewise for height (`data-max-height`).
 * @property {number | null} [quality] Encoder quality 0..1 for scaled JPEG and WebP (`data-quality`, default 0.9).
 */

/**
 * @typedef {object} ProgressDetail
 * @property {number} progress Fraction of all chosen bytes sent, 0..1.
 * @property {number} loaded Bytes sent.
 * @property {number} total Bytes to send.
 * @property {File} currentFile The file that last advanced.
 * @property {string} currentFileName Its name.
 * @property {number} currentFileProgress Its fraction sent, 0..1.
 * @property {number} bytesPerSecond Average speed since the start.
 * @property {number | null} secondsLeft Estimated time left.
 */

/**
 * @typedef {object} PartUrl
 * @property {number} number
 * @property {number} size
 * @property {string} url
 * @property {Record<string, string>} headers
 */

/**
 * @typedef {object} Created
 * @property {string} id
 * @property {string} token
 * @property {string} key
 * @property {'post' | 'put' | 'multipart'} method
 * @property {{url: string, fields: Record<string, string>}} [post]
 * @property {{url: string, headers: Record<string, string>}} [put]
 * @property {{upload_id: string, part_size: number, part_count: number, parts: PartUrl[]}} [multipart]
 */

/**
 * @typedef {object} Completed
 * @property {string} receipt
 * @property {Record<string, unknown>} object
 */

/** @typedef {{id: string, token: string, part_size: number, part_count: number, checksum?: string}} Saved */

/** An error with the API's stable `code`. */
export class ChuteError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {number} [status]
   */
  constructor(code, message, status = 0) {
    super(message);
    this.name = 'ChuteError';
    this.code = code;
    this.status = status;
  }
}

const MiB = 1024 * 1024;
const DEFAULTS = { parallel: 4, retries: 5, retryDelay: 500, multipartThreshold: 16 * MiB };

/** @type {WeakMap<HTMLInputElement, Widget>} */
const widgets = new WeakMap();
/** @type {WeakMap<HTMLFormElement, Set<Widget>>} */
const forms = new WeakMap();

/**
 * Upgrades a file input; options default to its data attributes. Upgrading
 * twice returns the same widget.
 * @param {HTMLInputElement} input
 * @param {Partial<ChuteOptions>} [options]
 * @returns {Widget}
 */
export function upgrade(input, options = {}) {
  const existing = widgets.get(input);
  if (existing) return existing;
  const widget = new Widget(input, { ...fromAttributes(input), ...options });
  widgets.set(input, widget);
  return widget;
}

/**
 * Cancels the uploads of an upgraded input and clears its selection; with
 * `file` (a `File` from the input or from an event's `detail.file`), that
 * file only: its requests are aborted, its multipart upload deleted, its
 * resume state forgotten and its receipt (if it was uploaded) taken out of
 * the form; it gets a `chute:error` with code `cancelled` and the other
 * files go on.
 * @param {HTMLInputElement} input
 * @param {File} [file]
 * @returns {boolean} Whether there was something to cancel (always true without `file`).
 */
export function cancel(input, file) {
  const w = widgets.get(input);
  if (!w) return false;
  if (file === undefined) {
    w.cancel();
    return true;
  }
  return w.cancelFile(file);
}

/**
 * Pauses the uploads of an upgraded input: requests in flight are aborted,
 * multipart uploads are kept (with their stored parts) for `resume`.
 * @param {HTMLInputElement} input
 */
export function pause(input) {
  widgets.get(input)?.pause();
}

/**
 * Resumes paused uploads: multipart uploads continue from the parts the
 * store holds; files already uploaded keep their receipts.
 * @param {HTMLInputElement} input
 * @returns {Promise<void>}
 */
export function resume(input) {
  return widgets.get(input)?.resume() ?? Promise.resolve();
}

/**
 * @param {HTMLInputElement} input
 * @returns {ChuteOptions}
 */
function fromAttributes(input) {
  const d = input.dataset;
  const num = (/** @type {string | undefined} */ v) => (v === undefined || v === '' ? null : Number(v));
  const selector = d.chuteProgress;
  const progress = selector
    ? document.querySelector(selector)
    : input.form?.querySelector('[data-chute-progress]') ?? null;
  return {
    endpoint: d.chute || '/api/uploads',
    grant: d.grant || null,
    parallel: num(d.parallel) ?? DEFAULTS.parallel,
    maxSize: num(d.maxSize),
    minSize: num(d.minSize),
    accept: input.accept,
    auto: d.chuteUpload !== 'submit',
    progress,
    checksum: d.checksum === 'crc32c' ? 'crc32c' : null,
    multipartThreshold: num(d.multipartThreshold) ?? DEFAULTS.multipartThreshold,
    drop: d.chuteDrop ? document.querySelector(d.chuteDrop) : null,
    maxWidth: num(d.maxWidth),
    maxHeight: num(d.maxHeight),
    quality: num(d.quality),
  };
}

/** One upgraded file input. */
export class Widget {
  /**
   * @param {HTMLInputElement} input
   * @param {ChuteOptions} options
   */
  constructor(input, options) {
    this.input = input;
    this.options = { ...DEFAULTS, ...options };
    this.endpoint = new URL(this.options.endpoint, location.href).href.replace(/\/+$/, '');
    this.name = input.name || input.dataset.chuteName || 'file';
    input.dataset.chuteName = this.name;
    // The receipts carry the name from now on; the bytes never go to the app.
    input.removeAttribute('name');
    /** @type {Batch | null} */
    this.batch = null;
    /** @type {File[]} */
    this.pending = [];
    /** @type {string | null} */
    this.invalid = null;
    /** @type {HTMLInputElement[]} */
    this.hidden = [];
    /** Each uploaded file's hidden receipt input. @type {Map<File, HTMLInputElement>} */
    this.receiptOf = new Map();
    /** Files of the paused batch not yet uploaded. @type {File[] | null} */
    this.paused = null;
    /** Remembers multipart uploads when `storage` is null (pause and resume). @type {Map<string, string>} */
    this.memory = new Map();
    input.addEventListener('change', () => this.choose(Array.from(input.files ?? [])));
    const zone = this.options.drop;
    if (zone) {
      zone.addEventListener('dragover', (e) => {
        const ev = /** @type {DragEvent} */ (e);
        if (!ev.dataTransfer?.types.includes('Files')) return;
        ev.preventDefault();
        ev.dataTransfer.dropEffect = 'copy';
        zone.setAttribute('data-chute-over', '');
      });
      zone.addEventListener('dragleave', () => zone.removeAttribute('data-chute-over'));
      zone.addEventListener('drop', (e) => {
        const ev = /** @type {DragEvent} */ (e);
        zone.removeAttribute('data-chute-over');
        const files = Array.from(ev.dataTransfer?.files ?? []);
        if (files.length === 0) return;
        ev.preventDefault();
        this.receive(files);
      });
    }
    const form = input.form;
    if (form) {
      form.addEventListener('paste', (e) => {
        const files = Array.from(/** @type {ClipboardEvent} */ (e).clipboardData?.files ?? []);
        // The form's first upgraded input takes pasted files.
        if (files.length === 0 || firstWidget(form) !== this) return;
        e.preventDefault();
        this.receive(files);
      });
      let set = forms.get(form);
      if (!set) {
        const members = new Set();
        set = members;
        forms.set(form, members);
        form.addEventListener('submit', (e) => onSubmit(form, members, /** @type {SubmitEvent} */ (e)));
      }
      set.add(this);
    }
  }

  /** Whether uploads are in flight. */
  get busy() {
    return this.batch !== null && !this.batch.settled;
  }

  /** Whether the last choice failed validation or upload, or is paused. */
  get failed() {
    return this.invalid !== null || this.paused !== null || (this.batch?.failed ?? false);
  }

  /**
   * Files dropped or pasted: as if chosen (one unless the input is `multiple`).
   * @param {File[]} files
   */
  receive(files) {
    const chosen = this.input.multiple ? files : files.slice(0, 1);
    try {
      // Keep the input's own selection in step where the browser allows it.
      const dt = new DataTransfer();
      for (const f of chosen) dt.items.add(f);
      this.input.files = dt.files;
    } catch {
      /* read-only FileList: the widget uploads them anyway */
    }
    this.choose(chosen);
  }

  /** Pauses uploads in flight; `resume` continues them. */
  pause() {
    const batch = this.batch;
    if (!batch || batch.settled || this.paused) return;
    this.paused = batch.pause();
    this.input.setCustomValidity('uploads are paused');
    this.emit('pause', { files: this.paused });
  }

  /** Continues paused uploads from what the store holds. @returns {Promise<void>} */
  async resume() {
    const files = this.paused;
    if (!files) return;
    // The paused batch must have let go of its requests first.
    await this.batch?.promise;
    this.paused = null;
    this.input.setCustomValidity('');
    this.emit('resume', { files });
    this.batch = new Batch(this, files);
    return this.batch.promise;
  }

  /**
   * Validates and (unless uploads wait for submit) starts `files`.
   * @param {File[]} files
   */
  choose(files) {
    this.batch?.abort();
    this.batch = null;
    this.paused = null;
    this.reset();
    if (files.length === 0) return;
    const rules = this.rules();
    for (const file of files) {
      const problem = validate(file, rules);
      if (problem) {
        this.invalid = problem.message;
        this.input.setCustomValidity(problem.message);
        this.emit('error', { code: problem.code, message: problem.message, file });
        return;
      }
    }
    this.pending = files;
    if (this.options.auto) this.start();
  }

  /** Starts the chosen files. @returns {Promise<void>} */
  start() {
    const files = this.pending;
    this.pending = [];
    this.batch = new Batch(this, files);
    return this.batch.promise;
  }

  /** Cancels uploads in flight (their multipart uploads are aborted) and clears the input. */
  cancel() {
    this.batch?.abort();
    this.batch = null;
    this.paused = null;
    this.pending = [];
    this.reset();
    this.input.value = '';
  }

  /**
   * Cancels one file (see the module's `cancel(input, file)`).
   * @param {File} file
   * @returns {boolean} Whether `file` was chosen and not cancelled yet.
   */
  cancelFile(file) {
    /** @type {File | null} */
    let target = null;
    const p = this.pending.indexOf(file);
    if (p >= 0) {
      this.pending.splice(p, 1);
      target = file;
    } else if (this.batch) {
      target = this.batch.cancelFile(file);
    }
    // Uploaded by a batch before a pause: only its receipt is left to take back.
    if (!target && this.receiptOf.has(file)) target = file;
    if (!target) return false;
    const done = this.receiptOf.get(target) ?? this.receiptOf.get(file);
    if (done) {
      done.remove();
      this.hidden = this.hidden.filter((h) => h !== done);
      this.receiptOf.delete(target);
      this.receiptOf.delete(file);
    }
    if (this.paused) {
      this.paused = this.paused.filter((f) => f !== target && f !== file);
      if (this.paused.length === 0) {
        this.paused = null;
        this.input.setCustomValidity('');
      }
    }
    this.emit('error', { file: target, code: 'cancelled', message: `${target.name}: the upload was cancelled` });
    return true;
  }

  reset() {
    this.invalid = null;
    this.input.setCustomValidity('');
    for (const h of this.hidden) h.remove();
    this.hidden = [];
    this.receiptOf.clear();
    if (this.options.progress) this.options.progress.replaceChildren();
  }

  /**
   * @param {File} file
   * @param {string} receipt
   */
  addReceipt(file, receipt) {
    const h = document.createElement('input');
    h.type = 'hidden';
    h.name = this.name;
    h.value = receipt;
    h.dataset.chuteReceipt = '';
    (this.hidden.at(-1) ?? this.input).after(h);
    this.hidden.push(h);
    this.receiptOf.set(file, h);
  }

  /** The limits: the input's attributes and what the grant says. */
  rules() {
    const o = this.options;
    const claims = grantClaims(o.grant);
    const num = (/** @type {unknown} */ v) => (typeof v === 'number' ? v : null);
    const strs = (/** @type {unknown} */ v) => (Array.isArray(v) ? v.map(String) : []);
    const sizes = (/** @type {(number | null | undefined)[]} */ vs, /** @type {(a: number, b: number) => number} */ pick) =>
      vs.reduce((/** @type {number | null} */ a, v) => (v == null ? a : a == null ? v : pick(a, v)), null);
    return {
      maxSize: sizes([o.maxSize, num(claims.max_size)], Math.min),
      minSize: sizes([o.minSize, num(claims.min_size)], Math.max),
      accept: splitAccept(o.accept ?? ''),
      types: strs(claims.types),
      extensions: strs(claims.extensions).map((e) => e.toLowerCase()),
    };
  }

  /**
   * @param {string} type
   * @param {object} detail
   */
  emit(type, detail) {
    this.input.dispatchEvent(new CustomEvent(`chute:${type}`, { detail, bubbles: true }));
  }

  /**
   * Calls the upload API.
   * @param {string} method
   * @param {string} url
   * @param {string | null} token
   * @param {unknown} [body]
   * @param {AbortSignal} [signal]
   * @returns {Promise<any>}
   */
  async api(method, url, token, body, signal) {
    /** @type {Record<string, string>} */
    const headers = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res;
    try {
      res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal, mode: 'cors' });
    } catch (e) {
      if (signal?.aborted) throw new ChuteError('cancelled', 'the upload was cancelled');
      throw new ChuteError('network', `${method} ${url}: ${e instanceof Error ? e.message : e}`);
    }
    if (res.status === 204) return null;
    const text = await res.text();
    /** @type {any} */
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      /* not JSON */
    }
    if (!res.ok) {
      const err = json?.error;
      throw new ChuteError(err?.code ?? `http_${res.status}`, err?.message ?? `${method} ${url} answered ${res.status}`, res.status);
    }
    return json;
  }
}

/**
 * The form's submit: waits for uploads in flight, then submits again;
 * blocked while any widget failed.
 * @param {HTMLFormElement} form
 * @param {Set<Widget>} members
 * @param {SubmitEvent} event
 */
async function onSubmit(form, members, event) {
  const all = Array.from(members).filter((w) => w.input.isConnected);
  for (const w of all) if (w.pending.length > 0) w.start();
  const refuse = () => {
    const bad = all.find((w) => w.failed);
    if (!bad) return false;
    if (!bad.invalid) bad.input.setCustomValidity(bad.batch?.firstError ?? 'an upload failed');
    bad.input.reportValidity();
    return true;
  };
  if (refuse()) {
    event.preventDefault();
    return;
  }
  const busy = all.filter((w) => w.busy);
  if (busy.length === 0) return;
  event.preventDefault();
  await Promise.all(busy.map((w) => w.batch?.promise));
  if (refuse()) return;
  form.requestSubmit(event.submitter && form.contains(event.submitter) ? event.submitter : null);
}

/**
 * The form's first upgraded input still in the page.
 * @param {HTMLFormElement} form
 */
function firstWidget(form) {
  for (const w of forms.get(form) ?? []) if (w.input.isConnected) return w;
  return null;
}

/** The uploads of one choice of files. */
class Batch {
  /**
   * @param {Widget} widget
   * @param {File[]} files
   */
  constructor(widget, files) {
    this.widget = widget;
    this.files = files;
    /** The files as chosen (before any downscaling). */
    this.originals = files;
    this.total = files.reduce((n, f) => n + f.size, 0);
    this.loaded = files.map(() => 0);
    this.startLoaded = 0;
    this.lastProgress = -1;
    this.started = performance.now();
    this.controller = new AbortController();
    /** One controller per file, aborted with the batch's or on its own. */
    this.fileControllers = files.map(() => new AbortController());
    this.controller.signal.addEventListener('abort', () => {
      for (const c of this.fileControllers) c.abort();
    }, { once: true });
    /** Indexes of the files cancelled one by one. @type {Set<number>} */
    this.cancelled = new Set();
    /** @type {{file: File, receipt: string}[]} */
    this.receipts = [];
    this.settled = false;
    this.failed = false;
    /** @type {string | null} */
    this.firstError = null;
    /** Each file's multipart upload. @type {Map<number, {id: string, token: string}>} */
    this.multiparts = new Map();
    /** Indexes of the files that failed. @type {Set<number>} */
    this.failedFiles = new Set();
    /** Indexes of the files uploaded. @type {Set<number>} */
    this.completed = new Set();
    this.pausing = false;
    /** @type {(HTMLElement | null)[]} */
    this.bars = files.map((f) => progressBar(widget.options.progress, f));
    this.promise = this.run();
  }

  /**
   * Stops requests in flight but keeps multipart uploads for a later batch.
   * @returns {File[]} The files not uploaded yet.
   */
  pause() {
    this.pausing = true;
    this.controller.abort();
    const left = this.files.filter((_, i) => !this.completed.has(i));
    this.bars.forEach((bar, i) => {
      if (!this.completed.has(i)) bar?.remove();
    });
    return left;
  }

  abort() {
    if (this.settled) return;
    this.controller.abort();
    for (const m of this.multiparts.values()) this.discard(m);
  }

  /**
   * Cancels one file: aborts its requests, deletes its multipart upload and
   * forgets its resume state; the other files go on.
   * @param {File} file
   * @returns {File | null} The batch's file (downscaled or not), or null when not in this batch or cancelled already.
   */
  cancelFile(file) {
    let i = this.files.indexOf(file);
    if (i < 0) i = this.originals.indexOf(file);
    if (i < 0 || this.cancelled.has(i)) return null;
    const target = this.files[i];
    this.cancelled.add(i);
    this.fileControllers[i].abort();
    const m = this.multiparts.get(i);
    if (m) this.discard(m);
    this.multiparts.delete(i);
    memoStore(this.widget).removeItem(memoKey(this.widget, target));
    this.receipts = this.receipts.filter((r) => r.file !== target);
    // A failed file cancelled no longer blocks the form.
    if (this.failedFiles.delete(i) && this.settled && this.failedFiles.size === 0) {
      this.failed = false;
      this.firstError = null;
      this.widget.input.setCustomValidity('');
    }
    this.total -= target.size;
    this.loaded[i] = 0;
    const bar = this.bars[i];
    if (bar) {
      setBar(bar, null, `${target.name}: cancelled`);
      bar.dataset.chuteCancelled = '';
    }
    return target;
  }

  /**
   * Deletes a multipart upload (its parts, or its object once completed).
   * @param {{id: string, token: string}} m
   */
  discard(m) {
    this.widget.api('DELETE', `${this.widget.endpoint}/${m.id}`, m.token).catch(() => {});
  }

  /**
   * Remembers file `i`'s multipart upload; deletes it at once when the file
   * (or the batch, unless pausing) was cancelled while it was being created.
   * @param {number} i
   * @param {{id: string, token: string}} m
   * @returns {boolean} Whether the upload is still wanted.
   */
  track(i, m) {
    if (this.cancelled.has(i) || (this.controller.signal.aborted && !this.pausing)) {
      this.discard(m);
      return false;
    }
    this.multiparts.set(i, m);
    return true;
  }

  async run() {
    const w = this.widget;
    // Images scaled down first: the batch's sizes are the scaled ones.
    this.files = await Promise.all(this.files.map((f) => downscale(f, w.options)));
    this.total = this.files.reduce((n, f) => n + f.size, 0);
    this.total -= this.files.reduce((n, f, i) => n + (this.cancelled.has(i) ? f.size : 0), 0);
    w.emit('start', { files: this.files, total: this.total });
    /** @type {{file: File, code: string, message: string}[]} */
    const errors = [];
    const queue = this.files.map((_, i) => i);
    // Several files at once, but multipart files bring their own parallelism.
    const worker = async () => {
      for (let i = queue.shift(); i !== undefined; i = queue.shift()) {
        if (this.cancelled.has(i)) continue;
        const file = this.files[i];
        try {
          const done = await this.upload(i);
          if (this.controller.signal.aborted) return;
          if (this.cancelled.has(i)) continue;
          this.receipts.push({ file, receipt: done.receipt });
          this.completed.add(i);
          w.addReceipt(file, done.receipt);
          setBar(this.bars[i], 100, `${file.name}: uploaded`);
          w.emit('complete', { file, receipt: done.receipt, object: done.object });
        } catch (e) {
          // A file cancelled on its own got its chute:error from `cancel`.
          if (this.cancelled.has(i)) continue;
          const err = e instanceof ChuteError ? e : new ChuteError('failed', String(e));
          errors.push({ file, code: err.code, message: err.message });
          this.failedFiles.add(i);
          this.firstError ??= `${file.name}: ${err.message}`;
          setBar(this.bars[i], null, `${file.name}: failed: ${err.message}`);
          if (!this.controller.signal.aborted) w.emit('error', { file, code: err.code, message: err.message });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(w.options.parallel, this.files.length) }, worker));
    this.settled = true;
    this.failed = this.failedFiles.size > 0 && !this.controller.signal.aborted;
    const cancelled = this.files.filter((_, i) => this.cancelled.has(i));
    const failed = errors.filter((e) => !cancelled.includes(e.file));
    if (failed[0]) this.firstError = `${failed[0].file.name}: ${failed[0].message}`;
    if (this.failed && this.firstError) w.input.setCustomValidity(this.firstError);
    if (!this.controller.signal.aborted) w.emit('done', { receipts: this.receipts, errors: failed, cancelled });
  }

  /**
   * Counts `bytes` sent of file `i` and reports progress when it grew.
   * @param {number} i
   * @param {number} bytes
   */
  advance(i, bytes) {
    if (this.cancelled.has(i)) return;
    this.loaded[i] = bytes;
    const file = this.files[i];
    const loaded = this.loaded.reduce((a, b) => a + b, 0);
    const progress = this.total === 0 ? 1 : loaded / this.total;
    const fileProgress = file.size === 0 ? 1 : bytes / file.size;
    setBar(this.bars[i], Math.floor(fileProgress * 100), `${file.name}: ${Math.floor(fileProgress * 100)}%`);
    if (progress <= this.lastProgress) return;
    this.lastProgress = progress;
    const seconds = (performance.now() - this.started) / 1000;
    const bytesPerSecond = seconds > 0 ? (loaded - this.startLoaded) / seconds : 0;
    /** @type {ProgressDetail} */
    const detail = {
      progress,
      loaded,
      total: this.total,
      currentFile: file,
      currentFileName: file.name,
      currentFileProgress: fileProgress,
      bytesPerSecond,
      secondsLeft: bytesPerSecond > 0 ? (this.total - loaded) / bytesPerSecond : null,
    };
    this.widget.emit('progress', detail);
  }

  /**
   * Uploads file `i`: resumes a remembered multipart upload or creates one.
   * @param {number} i
   * @returns {Promise<Completed>}
   */
  async upload(i) {
    const w = this.widget;
    const file = this.files[i];
    const signal = this.fileControllers[i].signal;
    const storage = memoStore(w);
    const memo = memoKey(w, file);
    const resumed = await this.resume(storage, memo, signal);
    const algorithm = w.options.checksum ?? null;
    /** @type {{id: string, token: string}} */
    let auth;
    if (resumed) {
      auth = resumed.saved;
      if (!this.track(i, resumed.saved)) throw new ChuteError('cancelled', 'the upload was cancelled');
      // Part URLs of a checksummed upload need each part's checksum again.
      const sums = resumed.saved.checksum ? (await checksums(file, resumed.saved.part_size, signal)).parts : null;
      await this.multipart(i, resumed.saved, new Map(), resumed.stored, sums);
    } else {
      /** @type {Record<string, unknown>} */
      const body = { filename: file.name, size: file.size, type: file.type || undefined };
      /** @type {string[] | null} */
      let sums = null;
      if (algorithm) {
        // The checksums are bound at create, so the client picks the method
        // and part size the server would (max(5 MiB, size / 10,000)).
        const multi = file.size > (w.options.multipartThreshold ?? DEFAULTS.multipartThreshold);
        const partSize = multi ? Math.max(5 * MiB, Math.ceil(file.size / 10_000)) : null;
        const sum = await checksums(file, partSize, signal);
        body.checksum = { algorithm, value: sum.value };
        body.method = multi ? 'multipart' : 'post';
        if (multi) {
          body.part_size = partSize;
          body.part_checksum_algorithm = algorithm;
          sums = sum.parts;
        }
      }
      /** @type {Created} */
      const created = await retrying(w, file, () => w.api('POST', w.endpoint, w.options.grant ?? null, body, signal));
      auth = created;
      if (created.method === 'multipart' && created.multipart) {
        const m = created.multipart;
        /** @type {Saved} */
        const saved = { id: created.id, token: created.token, part_size: m.part_size, part_count: m.part_count };
        if (sums) saved.checksum = algorithm ?? undefined;
        if (!this.track(i, saved)) throw new ChuteError('cancelled', 'the upload was cancelled');
        storage.setItem(memo, JSON.stringify(saved));
        await this.multipart(i, saved, new Map(m.parts.map((p) => [p.number, p])), new Set(), sums);
      } else {
        await this.single(i, created);
      }
    }
    if (signal.aborted) throw new ChuteError('cancelled', 'the upload was cancelled');
    const { id, token } = auth;
    /** @type {Completed} */
    const done = await retrying(w, file, () => w.api('POST', `${w.endpoint}/${id}/complete`, token, undefined, signal));
    storage.removeItem(memo);
    return done;
  }

  /**
   * A remembered multipart upload of the same file, with the parts the store holds.
   * @param {Memo} storage
   * @param {string} memo
   * @param {AbortSignal} signal
   * @returns {Promise<{saved: Saved, stored: Set<number>} | null>}
   */
  async resume(storage, memo, signal) {
    const raw = storage.getItem(memo);
    if (!raw) return null;
    try {
      /** @type {Saved} */
      const saved = JSON.parse(raw);
      const status = await this.widget.api('GET', `${this.widget.endpoint}/${saved.id}`, saved.token, undefined, signal);
      if (status?.state !== 'uploading' || status.part_size !== saved.part_size) throw new Error('not resumable');
      const stored = new Set(
        /** @type {{number: number, size: number}[]} */ (status.parts)
          .filter((p) => p.size === partSize(saved, p.number, status.size))
          .map((p) => p.number),
      );
      return { saved, stored };
    } catch {
      storage.removeItem(memo);
      return null;
    }
  }

  /**
   * A POST form or PUT upload of file `i`.
   * @param {number} i
   * @param {Created} created
   */
  async single(i, created) {
    const file = this.files[i];
    const signal = this.fileControllers[i].signal;
    await retrying(this.widget, file, async () => {
      let res;
      if (created.post) {
        const form = new FormData();
        for (const [k, v] of Object.entries(created.post.fields)) form.append(k, v);
        form.append('file', file);
        res = await send('POST', created.post.url, {}, form, signal, (n) => this.advance(i, Math.min(n, file.size)));
      } else if (created.put) {
        res = await send('PUT', created.put.url, created.put.headers, file, signal, (n) => this.advance(i, n));
      } else {
        throw new ChuteError('bad_answer', `unknown upload method ${created.method}`);
      }
      if (res.status < 200 || res.status >= 300) throw storeError(res);
      this.advance(i, file.size);
    });
  }

  /**
   * Sends the parts of file `i` not in `stored`, `parallel` at once.
   * @param {number} i
   * @param {Saved} up
   * @param {Map<number, PartUrl>} urls
   * @param {Set<number>} stored
   * @param {string[] | null} sums Each part's checksum (base64), when the upload declared them.
   */
  async multipart(i, up, urls, stored, sums) {
    const w = this.widget;
    const file = this.files[i];
    const signal = this.fileControllers[i].signal;
    const auth = { id: up.id, token: up.token };
    /** @type {Map<number, number>} */
    const sent = new Map();
    let base = 0;
    for (const n of stored) base += partSize(up, n, file.size);
    const report = () => {
      let n = base;
      for (const v of sent.values()) n += v;
      this.advance(i, n);
    };
    if (base > 0) {
      this.startLoaded += base;
      report();
    }
    /** @type {number[]} */
    const queue = [];
    for (let n = 1; n <= up.part_count; n++) if (!stored.has(n)) queue.push(n);
    /** @type {Map<number, Promise<void>>} */
    const signing = new Map();
    /** @param {number} n */
    const urlFor = async (n) => {
      for (;;) {
        const have = urls.get(n);
        if (have) return have;
        const inflight = signing.get(n);
        if (inflight) {
          await inflight;
          continue;
        }
        const want = [n, ...queue.filter((m) => !urls.has(m) && !signing.has(m))].slice(0, 50);
        /** @type {{parts: number[], checksums?: Record<string, string>}} */
        const ask = { parts: want };
        if (sums) ask.checksums = Object.fromEntries(want.map((m) => [String(m), sums[m - 1]]));
        const p = w
          .api('POST', `${w.endpoint}/${auth.id}/parts`, auth.token, ask, signal)
          .then((/** @type {{parts: PartUrl[]}} */ r) => {
            for (const part of r.parts) urls.set(part.number, part);
          })
          .finally(() => {
            for (const m of want) signing.delete(m);
          });
        for (const m of want) signing.set(m, p);
        await p;
        if (!urls.has(n)) throw new ChuteError('bad_answer', `no URL for part ${n}`);
      }
    };
    /** @param {number} n */
    const sendPart = async (n) => {
      const start = (n - 1) * up.part_size;
      const blob = file.slice(start, start + partSize(up, n, file.size));
      for (let attempt = 0; ; attempt++) {
        let reason;
        let expired = false;
        try {
          const part = await urlFor(n);
          const res = await send('PUT', part.url, part.headers, blob, signal, (b) => {
            sent.set(n, b);
            report();
          });
          if (res.status >= 200 && res.status < 300) {
            sent.set(n, blob.size);
            report();
            return;
          }
          const err = storeError(res);
          if (res.status === 403) {
            // Most often an expired URL: sign it again.
            urls.delete(n);
            expired = true;
          } else if (res.status < 500 && res.status !== 408 && res.status !== 429) {
            throw err;
          }
          reason = err.message;
        } catch (e) {
          if (!(e instanceof ChuteError) || !retryable(e)) throw e;
          reason = e.message;
        }
        if (signal.aborted) throw new ChuteError('cancelled', 'the upload was cancelled');
        if (attempt >= w.options.retries) throw new ChuteError('part_failed', `part ${n}: ${reason}`);
        sent.set(n, 0);
        const delay = expired && attempt === 0 ? 0 : backoff(w.options.retryDelay, attempt);
        w.emit('retry', { file, part: n, attempt: attempt + 1, delay, reason });
        await sleep(delay, signal);
      }
    };
    const worker = async () => {
      for (let n = queue.shift(); n !== undefined; n = queue.shift()) {
        if (signal.aborted) throw new ChuteError('cancelled', 'the upload was cancelled');
        await sendPart(n);
      }
    };
    const workers = Array.from({ length: Math.max(1, Math.min(w.options.parallel, queue.length)) }, worker);
    const results = await Promise.allSettled(workers);
    const bad = results.find((r) => r.status === 'rejected');
    if (bad && bad.status === 'rejected') {
      queue.length = 0;
      throw bad.reason;
    }
  }
}

/**
 * @param {Saved} up
 * @param {number} n
 * @param {number} size
 */
function partSize(up, n, size) {
  return Math.max(0, Math.min(up.part_size, size - (n - 1) * up.part_size));
}

/** @param {ChuteError} e */
function retryable(e) {
  return e.code === 'network' || e.status >= 500 || e.status === 408 || e.status === 429;
}

/**
 * Runs `fn`, retrying network failures and 5xx answers with backoff.
 * @template T
 * @param {Widget} w
 * @param {File} file
 * @param {() => Promise<T>} fn
 * @returns {Promise<T>}
 */
async function retrying(w, file, fn) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (!(e instanceof ChuteError) || !retryable(e) || attempt >= w.options.retries) throw e;
      const delay = backoff(w.options.retryDelay, attempt);
      w.emit('retry', { file, part: null, attempt: attempt + 1, delay, reason: e.message });
      await sleep(delay);
    }
  }
}

/**
 * Exponential backoff with full jitter on the upper half.
 * @param {number} base
 * @param {number} attempt
 */
function backoff(base, attempt) {
  const cap = Math.min(30_000, base * 2 ** attempt);
  return Math.round(cap / 2 + Math.random() * (cap / 2));
}

/**
 * @param {number} ms
 * @param {AbortSignal} [signal]
 * @returns {Promise<void>}
 */
function sleep(ms, signal) {
  return new Promise((ok) => {
    const t = setTimeout(ok, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      ok();
    }, { once: true });
  });
}

/**
 * An XMLHttpRequest (fetch cannot report upload progress).
 * @param {string} method
 * @param {string} url
 * @param {Record<string, string>} headers
 * @param {XMLHttpRequestBodyInit} body
 * @param {AbortSignal} signal
 * @param {(sent: number) => void} onProgress
 * @returns {Promise<{status: number, text: string}>}
 */
function send(method, url, headers, body, signal, onProgress) {
  return new Promise((ok, fail) => {
    if (signal.aborted) {
      fail(new ChuteError('cancelled', 'the upload was cancelled'));
      return;
    }
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    for (const [k, v] of Object.entries(headers)) {
      if (!/^(host|content-length)$/i.test(k)) xhr.setRequestHeader(k, v);
    }
    xhr.upload.onprogress = (e) => onProgress(e.loaded);
    xhr.onload = () => ok({ status: xhr.status, text: xhr.responseText });
    xhr.onerror = () => fail(new ChuteError('network', `${method} to the store failed (network)`));
    xhr.ontimeout = xhr.onerror;
    const onAbort = () => xhr.abort();
    xhr.onabort = () => fail(new ChuteError('cancelled', 'the upload was cancelled'));
    signal.addEventListener('abort', onAbort, { once: true });
    xhr.onloadend = () => signal.removeEventListener('abort', onAbort);
    xhr.send(body);
  });
}

/**
 * The store's refusal as an error (S3 answers XML with `<Code>` and `<Message>`).
 * @param {{status: number, text: string}} res
 */
function storeError(res) {
  const code = /<Code>([^<]*)<\/Code>/.exec(res.text)?.[1];
  const message = /<Message>([^<]*)<\/Message>/.exec(res.text)?.[1];
  return new ChuteError('store_refused', `the store answered ${res.status}${code ? ` ${code}` : ''}${message ? `: ${message}` : ''}`, res.status);
}

/**
 * The checksum worker's body (run from a Blob URL, never on the main
 * thread): CRC32C, slicing-by-8, streaming over the file in 8 MiB slices.
 * A message `{id, file, partSize}` is answered `{id, value, parts}` (base64
 * big-endian CRCs of the whole file and of each part) or `{id, error}`.
 */
function checksumWorker() {
  const T = new Uint32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    T[n] = c >>> 0;
  }
  for (let n = 0; n < 256; n++) {
    let c = T[n];
    for (let k = 1; k < 8; k++) {
      c = T[c & 0xff] ^ (c >>> 8);
      T[k * 256 + n] = c;
    }
  }
  const LITTLE = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
  /**
   * @param {number} crc running (inverted) state
   * @param {Uint8Array} b
   */
  const update = (crc, b) => {
    let c = crc;
    let i = 0;
    const len = b.length;
    if (LITTLE && b.byteOffset % 4 === 0) {
      // Two 32-bit loads per 8 bytes instead of eight byte loads.
      const w = new Uint32Array(b.buffer, b.byteOffset, len >>> 3 << 1);
      for (let j = 0; j < w.length; j += 2) {
        const a = w[j] ^ c;
        const d = w[j + 1];
        c =
          T[1792 + (a & 0xff)] ^ T[1536 + ((a >>> 8) & 0xff)] ^ T[1280 + ((a >>> 16) & 0xff)] ^ T[1024 + (a >>> 24)] ^
          T[768 + (d & 0xff)] ^ T[512 + ((d >>> 8) & 0xff)] ^ T[256 + ((d >>> 16) & 0xff)] ^ T[d >>> 24];
      }
      i = w.length * 4;
    }
    for (; i + 8 <= len; i += 8) {
      const a = (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)) ^ c;
      c =
        T[1792 + (a & 0xff)] ^ T[1536 + ((a >>> 8) & 0xff)] ^ T[1280 + ((a >>> 16) & 0xff)] ^ T[1024 + (a >>> 24)] ^
        T[768 + b[i + 4]] ^ T[512 + b[i + 5]] ^ T[256 + b[i + 6]] ^ T[b[i + 7]];
    }
    for (; i < len; i++) c = T[(c ^ b[i]) & 0xff] ^ (c >>> 8);
    return c >>> 0;
  };
  // CRC combination (zlib's crc32_combine, for CRC32C's polynomial): the
  // whole file's CRC from its parts' CRCs, so each byte is hashed once.
  /**
   * a(x) * b(x) mod P(x), bit-reflected.
   * @param {number} a
   * @param {number} b
   */
  const multmodp = (a, b) => {
    let m = 0x80000000;
    let p = 0;
    for (;;) {
      if (a & m) {
        p ^= b;
        if ((a & (m - 1)) === 0) break;
      }
      m >>>= 1;
      b = b & 1 ? (b >>> 1) ^ 0x82f63b78 : b >>> 1;
    }
    return p >>> 0;
  };
  /** x^(2^k) mod P(x), k = 0..31 */
  const X2N = new Uint32Array(32);
  X2N[0] = 0x40000000;
  for (let k = 1; k < 32; k++) X2N[k] = multmodp(X2N[k - 1], X2N[k - 1]);
  /**
   * The CRC of A followed by B from crc(A), crc(B) and B's length.
   * @param {number} crcA
   * @param {number} crcB
   * @param {number} lenB bytes (up to 2^53)
   */
  const combine = (crcA, crcB, lenB) => {
    let p = 0x80000000; // x^0
    let k = 3; // x^(8 lenB) = product of x^(2^(k)) over lenB's set bits, k from 3
    for (let n = lenB; n > 0; n = Math.floor(n / 2), k++) {
      if (n % 2) p = multmodp(X2N[k & 31], p);
    }
    return (multmodp(p, crcA) ^ crcB) >>> 0;
  };
  /** @param {number} crc final CRC */
  const b64 = (crc) => btoa(String.fromCharCode((crc >>> 24) & 0xff, (crc >>> 16) & 0xff, (crc >>> 8) & 0xff, crc & 0xff));
  const SLICE = 8 * 1024 * 1024;
  /** @type {any} */ (self).onmessage = async (/** @type {MessageEvent} */ e) => {
    const { id, file, partSize } = e.data;
    try {
      /** @type {Blob} */
      const blob = file;
      const size = blob.size;
      const step = partSize || size || 1;
      // Each part is hashed once; the whole file's CRC is the parts'
      // CRCs combined (the CRC of no bytes is 0).
      let whole = 0;
      /** @type {string[]} */
      const parts = [];
      for (let start = 0; start < size; start += step) {
        const end = Math.min(size, start + step);
        let part = 0xffffffff;
        for (let at = start; at < end; at += SLICE) {
          part = update(part, new Uint8Array(await blob.slice(at, Math.min(end, at + SLICE)).arrayBuffer()));
        }
        part = (part ^ 0xffffffff) >>> 0;
        whole = start === 0 ? part : combine(whole, part, end - start);
        if (partSize) parts.push(b64(part));
      }
      /** @type {any} */ (self).postMessage({ id, value: b64(whole), parts });
    } catch (err) {
      /** @type {any} */ (self).postMessage({ id, error: String(err) });
    }
  };
}

/** @type {Worker | null} */
let hasher = null;
let hashSeq = 0;
/** @type {Map<number, {ok: (r: {value: string, parts: string[]}) => void, fail: (e: Error) => void}>} */
const hashing = new Map();

/**
 * CRC32C of `file` and of each `partSize` part, computed in a Web Worker.
 * @param {Blob} file
 * @param {number | null} partSize
 * @param {AbortSignal} signal
 * @returns {Promise<{value: string, parts: string[]}>}
 */
function checksums(file, partSize, signal) {
  if (!hasher) {
    try {
      const url = URL.createObjectURL(new Blob([`(${checksumWorker.toString()})()`], { type: 'text/javascript' }));
      hasher = new Worker(url);
      hasher.onmessage = (e) => {
        const job = hashing.get(e.data.id);
        hashing.delete(e.data.id);
        if (!job) return;
        if (e.data.error) job.fail(new ChuteError('checksum_failed', `checksum: ${e.data.error}`));
        else job.ok({ value: e.data.value, parts: e.data.parts });
      };
      hasher.onerror = (e) => {
        // A worker that cannot run (a CSP without blob: workers): fail what waits.
        for (const job of hashing.values()) job.fail(new ChuteError('checksum_failed', `checksum worker: ${e.message || 'failed to start'}`));
        hashing.clear();
        hasher = null;
      };
    } catch (e) {
      return Promise.reject(new ChuteError('checksum_failed', `no Web Worker for checksums: ${e instanceof Error ? e.message : e}`));
    }
  }
  const worker = hasher;
  return new Promise((ok, fail) => {
    const id = ++hashSeq;
    const onAbort = () => {
      hashing.delete(id);
      fail(new ChuteError('cancelled', 'the upload was cancelled'));
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    hashing.set(id, {
      ok: (r) => {
        signal.removeEventListener('abort', onAbort);
        ok(r);
      },
      fail: (e) => {
        signal.removeEventListener('abort', onAbort);
        fail(e);
      },
    });
    worker.postMessage({ id, file, partSize });
  });
}

/** @typedef {Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>} Memo */

/**
 * Where `w` remembers multipart uploads for resuming.
 * @param {Widget} w
 * @returns {Memo}
 */
function memoStore(w) {
  return storageOf(w.options) ?? mapStorage(w.memory);
}

/**
 * The resume key of `file` (name, size, lastModified) at `w`'s endpoint.
 * @param {Widget} w
 * @param {File} file
 */
function memoKey(w, file) {
  return `chute:${w.endpoint}:${file.name}:${file.size}:${file.lastModified}`;
}

/**
 * An in-memory stand-in for `localStorage`.
 * @param {Map<string, string>} map
 * @returns {Memo}
 */
function mapStorage(map) {
  return {
    getItem: (k) => map.get(k) ?? null,
    setItem: (k, v) => void map.set(k, v),
    removeItem: (k) => void map.delete(k),
  };
}

/**
 * `file` scaled down to fit `maxWidth` x `maxHeight` when it is a JPEG, PNG
 * or WebP image larger than that (EXIF orientation applied first), as a
 * file of the same name and type; otherwise `file` itself.
 * @param {File} file
 * @param {ChuteOptions} o
 * @returns {Promise<File>}
 */
export async function downscale(file, o) {
  if (!o.maxWidth && !o.maxHeight) return file;
  if (!/^image\/(jpeg|png|webp)$/i.test(file.type) || typeof createImageBitmap !== 'function') return file;
  /** @type {ImageBitmap} */
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: 'from-image' });
  } catch {
    return file; // not decodable here: the server decides
  }
  const scale = Math.min(1, o.maxWidth ? o.maxWidth / bitmap.width : 1, o.maxHeight ? o.maxHeight / bitmap.height : 1);
  if (scale >= 1) {
    bitmap.close();
    return file;
  }
  const width = Math.max(1, Math.floor(bitmap.width * scale));
  const height = Math.max(1, Math.floor(bitmap.height * scale));
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext('2d');
  if (!ctx) {
    bitmap.close();
    return file;
  }
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(bitmap, 0, 0, width, height);
  bitmap.close();
  const blob = await canvas.convertToBlob({ type: file.type, quality: o.quality ?? 0.9 });
  return new File([blob], file.name, { type: file.type, lastModified: file.lastModified });
}

/** @param {ChuteOptions} o */
function storageOf(o) {
  if (o.storage !== undefined) return o.storage;
  try {
    return globalThis.localStorage ?? null;
  } catch {
    return null;
  }
}

/**
 * The grant's claims, read (not verified: the server does that) to refuse
 * files early.
 * @param {string | null | undefined} grant
 * @returns {Record<string, unknown>}
 */
function grantClaims(grant) {
  const payload = grant?.split('.')[1];
  if (!payload) return {};
  try {
    const json = atob(payload.replace(/-/g, '+').replace(/_/g, '/'));
    const claims = JSON.parse(json);
    return claims && typeof claims === 'object' ? claims : {};
  } catch {
    return {};
  }
}

/** @param {string} accept */
function splitAccept(accept) {
  return accept
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
}

/**
 * @param {string} pattern `image/*`, `image/png`
 * @param {string} type
 */
function typeMatches(pattern, type) {
  const p = pattern.toLowerCase();
  const t = type.toLowerCase();
  return p === '*/*' || p === t || (p.endsWith('/*') && t.startsWith(p.slice(0, -1)));
}

/**
 * Why `file` may not be uploaded, or null.
 * @param {File} file
 * @param {{maxSize: number | null, minSize: number | null, accept: string[], types: string[], extensions: string[]}} rules
 * @returns {{code: string, message: string} | null}
 */
export function validate(file, rules) {
  const name = file.name.toLowerCase();
  if (rules.maxSize !== null && file.size > rules.maxSize) {
    return { code: 'too_large', message: `${file.name} is ${formatBytes(file.size)}; at most ${formatBytes(rules.maxSize)} is allowed` };
  }
  if (rules.minSize !== null && file.size < rules.minSize) {
    return { code: 'too_small', message: `${file.name} is ${formatBytes(file.size)}; at least ${formatBytes(rules.minSize)} is required` };
  }
  if (rules.accept.length > 0 && !rules.accept.some((a) => (a.startsWith('.') ? name.endsWith(a) : typeMatches(a, file.type)))) {
    return { code: 'type_not_allowed', message: `${file.name} is not one of the accepted types (${rules.accept.join(', ')})` };
  }
  if (rules.types.length > 0 && !rules.types.some((t) => typeMatches(t, file.type || 'application/octet-stream'))) {
    return { code: 'type_not_allowed', message: `${file.name} is not one of the allowed types (${rules.types.join(', ')})` };
  }
  if (rules.extensions.length > 0 && !rules.extensions.some((e) => name.endsWith(e))) {
    return { code: 'type_not_allowed', message: `${file.name} does not end in one of ${rules.extensions.join(', ')}` };
  }
  return null;
}

/** @param {number} n */
function formatBytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[i]}`;
}

/**
 * A `role=progressbar` element for `file` in `container` (none without one).
 * @param {Element | null | undefined} container
 * @param {File} file
 */
function progressBar(container, file) {
  if (!container) return null;
  const bar = document.createElement('div');
  bar.setAttribute('role', 'progressbar');
  bar.setAttribute('aria-valuemin', '0');
  bar.setAttribute('aria-valuemax', '100');
  bar.setAttribute('aria-valuenow', '0');
  bar.setAttribute('aria-label', `Uploading ${file.name}`);
  bar.dataset.chuteFile = file.name;
  bar.textContent = `${file.name}: 0%`;
  container.append(bar);
  return bar;
}

/**
 * @param {HTMLElement | null} bar
 * @param {number | null} percent
 * @param {string} text
 */
function setBar(bar, percent, text) {
  if (!bar) return;
  if (percent !== null) {
    const now = String(percent);
    if (bar.getAttribute('aria-valuenow') === now && bar.textContent === text) return;
    bar.setAttribute('aria-valuenow', now);
  }
  bar.setAttribute('aria-valuetext', text);
  bar.textContent = text;
}

if (typeof document !== 'undefined') {
  const scan = () => {
    for (const input of document.querySelectorAll('input[type=file][data-chute]')) {
      if (input instanceof HTMLInputElement) upgrade(input);
    }
  };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', scan, { once: true });
  else scan();
}
