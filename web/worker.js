// The MedSeg worker: owns the wasm Session (pkg/medseg.js, built by scripts/build-web.sh)
// and runs one request at a time. The page (web/medseg.js) talks to it only by messages:
//
//   page → worker  {id, op, args: [...]}            one request; `cancel` jumps the queue
//   worker → page  {id, ok: true, result}           its answer (buffers transferred)
//                  {id, ok: false, error: {name, message}}
//                  {event: "progress" | "frame" | "notice" | "finetune", ...}   unsolicited
//                  {event: "history", canUndo, canRedo, nextUndo, nextRedo, op, ok}   after
//                  each request that may change what can be undone (HISTORY_OPS), done or
//                  failed (ok: whether it succeeded)
//
// Frames and masks cross as transferable ArrayBuffers. Nothing here reaches the network
// except fetches of same-origin URLs that the page names (the model).

// Two builds of one API (scripts/build-web.sh): pkg/ has WebGPU and the CPU on this
// thread; pkg/threads/ the CPU on a pool of Web Workers (shared memory: only where the page
// is cross-origin isolated; built with relaxed SIMD: only where the browser has it).
// `init` imports the one it runs.
const SINGLE = "../pkg/";
const THREADED = "../pkg/threads/";
/** Pool size when the page asks for none: every core, at most this many. */
const THREAD_CAP = 8;
/** The most a page may ask for (`init({threads})`, `?threads=N`). */
const THREAD_MAX = 64;
// A minimal module with a shared memory and an atomic load: valid only where the browser
// has wasm threads (the test of the wasm-feature-detect package).
const THREADS_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 96, 0, 0, 3, 2, 1, 0, 5, 4, 1, 3, 1, 1, 10, 11, 1, 9, 0, 65, 0, 254, 16, 2, 0, 26, 11]);
// A function of three zero v128 constants into f32x4.relaxed_madd (0xfd 0x105): valid only
// where the browser has relaxed SIMD, which the threaded module is built with.
const RELAXED_SIMD_PROBE = (() => {
  const zero = [0xfd, 0x0c, ...new Array(16).fill(0)];
  const body = [0, ...zero, ...zero, ...zero, 0xfd, 0x85, 0x02, 0x1a, 0x0b];
  return new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 96, 0, 0, 3, 2, 1, 0, 10, body.length + 2, 1, body.length, ...body]);
})();

let session = null;
/** The engine module (its Session and InputBytes classes), once init has run. */
let engine = null;
/** The wasm module's exports (its memory), once init has run. */
let wasm = null;
let cancelRequested = false;
// Two locks. `queue` runs whole operations one after the other (a propagation holds it
// from start to end). `wasmLock` guards each call into the session: an async session call
// keeps its state borrowed until it resolves, so nothing else may enter meanwhile. Reads
// (READS below) take only `wasmLock`, so masks and frames can be fetched between two
// steps of a running propagation.
let queue = Promise.resolve();
let wasmLock = Promise.resolve();

function locked(fn) {
  const run = wasmLock.then(fn);
  wasmLock = run.catch(() => {});
  return run;
}

const READS = new Set(["info", "frameCount", "getFrame", "getFrameValues", "getMask", "getLogits", "objects", "maskFrames", "backend", "threads", "architecture", "exportNifti", "exportPng", "exportPngZip", "exportDicomSeg", "history", "teachState", "engineMemory"]);
// Requests after which the worker says what can be undone and redone now (the "history"
// event), so that a page enables its Undo and Redo from the engine's state.
const HISTORY_OPS = new Set(["openVolume", "openImage", "finishClip", "finishDicom", "addPrompt", "undo", "redo", "propagate", "reset", "setWindow"]);

const post = (msg, transfer = []) => self.postMessage(msg, transfer);
const event = (name, data, transfer = []) => post({ event: name, ...data }, transfer);

function fail(message) {
  throw new Error(message);
}

function need() {
  if (!session) fail("the session is not started: call init first");
  return session;
}

/** `bytes` copied into the engine's memory: room reserved first (InputBytes), so a file
 * that does not fit is a "too-large" message naming it, not a trap in wasm-bindgen's
 * allocator. Passed by value, the engine owns it. */
function input(bytes, name) {
  need();
  return engine.InputBytes.copy(bytes, String(name));
}

/** `use(input(bytes, name))`, synchronous, with the copy freed after. */
function withInput(bytes, name, use) {
  const copy = input(bytes, name);
  try {
    return use(copy);
  } finally {
    copy.free();
  }
}

// Lets queued messages (a cancel) in between two model steps.
const yieldToEvents = () => new Promise((r) => setTimeout(r, 0));

async function bytesOf(src, what, onProgress) {
  if (src instanceof ArrayBuffer) return new Uint8Array(src);
  if (ArrayBuffer.isView(src)) return new Uint8Array(src.buffer, src.byteOffset, src.byteLength);
  if (src instanceof Blob) return new Uint8Array(await src.arrayBuffer());
  if (typeof src === "string") {
    const url = new URL(src, self.location.href);
    if (url.origin !== self.location.origin) fail(`${what}: ${url.href} is not on this site; MedSeg loads nothing from other hosts`);
    let res;
    try {
      res = await fetch(url);
    } catch (e) {
      fail(`${what}: could not fetch ${url.pathname} (${e.message})`);
    }
    if (!res.ok) fail(`${what}: ${url.pathname} answered ${res.status} ${res.statusText}`);
    const total = Number(res.headers.get("Content-Length")) || 0;
    if (!res.body || !total) return new Uint8Array(await res.arrayBuffer());
    const out = new Uint8Array(total);
    const reader = res.body.getReader();
    let loaded = 0;
    let last = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (loaded + value.length > out.length) fail(`${what}: ${url.pathname} is longer than its Content-Length`);
      out.set(value, loaded);
      loaded += value.length;
      const now = performance.now();
      if (onProgress && now - last > 100) {
        last = now;
        onProgress(loaded, total);
      }
    }
    if (onProgress) onProgress(loaded, total);
    return loaded === total ? out : out.subarray(0, loaded);
  }
  fail(`${what}: expected a URL, File, Blob or ArrayBuffer`);
}

/** The mask of `obj` on `frame` (or null), for a document of `size` {width, height}. */
function maskMessage(frame, obj, { width, height } = session.info()) {
  const data = session.get_mask(frame, obj);
  return data ? { frame, obj, width, height, data } : null;
}

const ops = {
  // → {backend: "webgpu" | "cpu", threads, notice}. `threads`: the CPU pool's size (default
  // every core up to THREAD_CAP; 1: the single-threaded module).
  async init({ backend = "auto", threads = null } = {}) {
    // The page starts a new worker for each init, so this runs once per worker.
    let want = String(backend).toLowerCase();
    const notices = [];
    if (want === "auto" || want === "webgpu") {
      const gpu = await hardwareAdapter();
      if (gpu.adapter && (want === "webgpu" || !gpu.software)) {
        want = "webgpu";
      } else if (want === "webgpu") {
        fail(`WebGPU was asked for but is not available: ${gpu.why}`);
      } else {
        want = "cpu";
        notices.push(`${gpu.why}; running on the CPU`);
      }
    }
    const pool = want === "cpu" ? poolSize(threads) : 1;
    let mod = null;
    if (pool > 1) {
      const why = threadsMissing();
      if (why) {
        notices.push(`${why}, so the CPU backend runs on one thread`);
      } else {
        try {
          mod = await loadModule(THREADED);
          await mod.initThreadPool(pool);
        } catch (e) {
          // E.g. no room for a 4 GiB shared memory, or no Web Workers from a worker.
          mod = null;
          notices.push(`the multi-threaded engine did not start (${e.message}), so the CPU backend runs on one thread`);
        }
      }
    }
    mod ??= await loadModule(SINGLE);
    session = await locked(() => mod.Session.create(want));
    engine = mod;
    if (session.notice()) notices.push(session.notice());
    const notice = notices.length ? notices.join("; ") : null;
    if (notice) event("notice", { message: notice });
    return { backend: session.backend(), threads: session.threads(), notice };
  },

  async loadModel(src, { expect = "" } = {}) {
    const s = need();
    const t0 = performance.now();
    const bytes = await bytesOf(src, "model", (loaded, total) =>
      event("progress", { task: "model", stage: "download", loaded, total, fraction: total ? loaded / total : 0 }),
    );
    const t1 = performance.now();
    const info = await locked(() =>
      s.load_model(input(bytes, src?.name || (typeof src === "string" ? src : "the model file")), expect || undefined, (stage, fraction) => event("progress", { task: "model", stage, fraction })),
    );
    return { ...info, bytes: bytes.length, downloadMs: t1 - t0, loadMs: performance.now() - t1 };
  },

  // → the document's info, or {choose_time_point: {time_points, dims}} (a 4-D NIfTI of
  // several slices and no `timePoint`).
  async openVolume(src, name, { window = "", timePoint = null } = {}) {
    const bytes = await bytesOf(src, name);
    return withInput(bytes, name, (b) => need().open_volume(b, name, window || undefined, timePoint ?? undefined));
  },

  async openImage(src, name) {
    const bytes = await bytesOf(src, name);
    return withInput(bytes, name, (b) => need().open_image(b, name));
  },

  beginClip(name) {
    need().begin_clip(name);
    return null;
  },

  pushFrame({ data, width, height, grey = false }) {
    const bytes = new Uint8Array(data);
    return withInput(bytes, "frame", (b) => need().push_frame_pixels(b, width, height, grey ? 1 : 4));
  },

  async pushFrameImage(src, name) {
    const bytes = await bytesOf(src, name);
    return withInput(bytes, name, (b) => need().push_frame_image(b, name));
  },

  // DICOM: files pushed one at a time (their buffers transferred), then the series opened.
  beginDicom() {
    need().begin_dicom();
    return null;
  },

  pushDicom(buf, name, lenient = false) {
    return withInput(new Uint8Array(buf), name, (b) => need().push_dicom(b, String(name), !!lenient));
  },

  skipDicom(name, why) {
    need().skip_dicom(String(name), String(why));
    return null;
  },

  // → the document's info, or {choose: [series...]} (the files stay for the next call).
  finishDicom(name, series = null) {
    return need().finish_dicom(String(name), series ?? undefined);
  },

  cancelDicom() {
    need().cancel_dicom();
    return null;
  },

  // `segments`: [{obj, label, colour: [r, g, b]}]; `now`: {date: "YYYYMMDD", time: "HHMMSS"}
  // (the page's clock: the engine has none).
  exportDicomSeg(obj, segments, now) {
    const b = need().export_dicom_seg(obj ?? undefined, { segments, date: now.date, time: now.time });
    return { result: b, transfer: [b.buffer] };
  },

  keepLogits(on) {
    need().keep_logits(!!on);
    return null;
  },

  finishClip() {
    return need().finish_clip();
  },

  // The model's input window; with `resegment` the prompted frames are segmented again
  // with it (one undoable action), their results (with masks) come back for the events.
  async setWindow(window, { resegment = false } = {}) {
    const s = need();
    const info = await locked(() => s.set_window(String(window)));
    if (!resegment) return { info, prompts: [] };
    const outs = await locked(() => s.resegment_prompts());
    const prompts = outs.map((o) => ({ ...o, mask: maskMessage(o.frame, o.obj) }));
    return { result: { info, prompts }, transfer: prompts.flatMap((p) => (p.mask ? [p.mask.data.buffer] : [])) };
  },

  info() {
    return session ? session.info() ?? null : null;
  },

  frameCount() {
    return session ? session.frame_count() : 0;
  },

  // `window`: a display window for a volume slice (preset name or {level, width}); none:
  // the frame as the model sees it.
  getFrame(frame, window = null) {
    const s = need();
    const data = s.frame_rgba(frame, window ?? undefined);
    const info = s.info();
    return { result: { width: info.width, height: info.height, data }, transfer: [data.buffer] };
  },

  getFrameValues(frame) {
    const s = need();
    const data = s.frame_values(frame);
    const info = s.info();
    return { result: { width: info.width, height: info.height, data }, transfer: [data.buffer] };
  },

  async prepareFrame(frame) {
    const s = need();
    return locked(() => s.prepare_frame(frame));
  },

  async addPrompt(frame, obj, { box = null, points = [] } = {}) {
    const s = need();
    const t0 = performance.now();
    // The engine keeps each frame's whole prompt: a box starts it afresh, points add to
    // it. The result carries the whole prompt after this call.
    const res = await locked(() => s.add_prompt(frame, obj, { box, points }));
    const mask = maskMessage(frame, obj);
    return { result: { ...res, ms: performance.now() - t0, mask }, transfer: mask ? [mask.data.buffer] : [] };
  },

  // Undo and redo put back masks the engine kept (no model runs): the result lists the
  // (object, frame)s whose masks changed, for the page to read again with getMask.
  undo() {
    return locked(() => need().undo());
  },

  redo() {
    return locked(() => need().redo());
  },

  history() {
    return need().history();
  },

  async propagate(direction = "both", { range = null } = {}) {
    const s = need();
    cancelRequested = false;
    const t0 = performance.now();
    const [first, last] = range ? range : [undefined, undefined];
    const { total } = await locked(() => s.start_propagation(String(direction), first, last));
    // The frame size cannot change during the run (opening files waits in the queue).
    const size = s.info();
    let done = 0;
    const perFrame = [];
    for (;;) {
      await yieldToEvents();
      if (cancelRequested) {
        s.cancel();
        return { frames: done, total, cancelled: true, ms: performance.now() - t0, msPerFrame: median(perFrame) };
      }
      const ts = performance.now();
      const step = await locked(() => s.step());
      if (!step) break;
      const ms = performance.now() - ts;
      perFrame.push(ms);
      done += 1;
      // The frame just segmented comes first; a SAM 2 volume's last step per object also
      // lists the frames its largest-component clean-up changed.
      const masks = step.frames.flatMap((f) => step.objects.map((obj) => maskMessage(f, obj, size))).filter(Boolean);
      event(
        "frame",
        { frame: step.frames[0], frames: step.frames, objects: step.objects, done, total, ms, masks },
        masks.map((m) => m.data.buffer),
      );
    }
    return { frames: done, total, cancelled: false, ms: performance.now() - t0, msPerFrame: median(perFrame) };
  },

  async openLabels(src, name) {
    const bytes = await bytesOf(src, name);
    return withInput(bytes, name, (b) => need().open_labels(b, name));
  },

  closeLabels() {
    need().close_labels();
    return null;
  },

  // A fine-tuning run, one engine step per turn of the event loop so that reads (frames,
  // masks) and a cancel get in between; "finetune" events carry each step's progress.
  async finetune(opts = {}) {
    const s = need();
    cancelRequested = false;
    const t0 = performance.now();
    let progress = await locked(() => s.start_finetune(opts));
    event("finetune", { progress, ms: 0 });
    while (!progress.stopped) {
      await yieldToEvents();
      if (cancelRequested) {
        progress = await locked(() => s.cancel_finetune());
      } else {
        progress = await locked(() => s.finetune_step());
      }
      event("finetune", { progress, ms: performance.now() - t0 });
    }
    return { progress, state: s.teach_state(), ms: performance.now() - t0 };
  },

  useModel(which) {
    return locked(() => need().use_model(String(which)));
  },

  async exportModel() {
    const s = need();
    const b = await locked(() => s.export_tuned());
    return { result: b, transfer: [b.buffer] };
  },

  teachState() {
    return need().teach_state();
  },

  // A wasm memory only grows, so its size is the engine's peak so far.
  engineMemory() {
    return wasm ? wasm.memory.buffer.byteLength : 0;
  },

  getMask(frame, obj) {
    need();
    const m = maskMessage(frame, obj);
    return { result: m && { width: m.width, height: m.height, data: m.data }, transfer: m ? [m.data.buffer] : [] };
  },

  getLogits(frame, obj) {
    const l = need().get_logits(frame, obj);
    return { result: l ?? null, transfer: l ? [l.buffer] : [] };
  },

  objects() {
    return session ? Array.from(session.objects()) : [];
  },

  maskFrames(obj) {
    return Array.from(need().mask_frames(obj));
  },

  reset(obj) {
    need().reset(obj ?? undefined);
    return null;
  },

  exportNifti(obj) {
    const b = need().export_nifti(obj ?? undefined);
    return { result: b, transfer: [b.buffer] };
  },

  exportPngZip(obj) {
    const b = need().export_png_zip(obj ?? undefined);
    return { result: b, transfer: [b.buffer] };
  },

  exportPng(frame, obj) {
    const b = need().export_png(frame, obj ?? undefined);
    return { result: b, transfer: [b.buffer] };
  },

  backend() {
    return session ? session.backend() : null;
  },

  threads() {
    return session ? session.threads() : null;
  },

  architecture() {
    return session ? session.architecture() ?? null : null;
  },

  async bench(iters = 3) {
    const s = need();
    return locked(() => s.bench(iters));
  },
};

/** Imports and instantiates the engine module in `dir` (SINGLE or THREADED). */
async function loadModule(dir) {
  const mod = await import(`${dir}medseg.js`);
  wasm = await mod.default({ module_or_path: new URL(`${dir}medseg_bg.wasm`, import.meta.url) });
  return mod;
}

/**
 * The WebGPU adapter, if any → {adapter, software, why}: `software` when it is a software
 * rasteriser (SwiftShader, llvmpipe, a fallback adapter), which runs the models far slower
 * than the CPU backend (a 13-slice CT propagation took over 18 min there, 115 s on the CPU).
 */
async function hardwareAdapter() {
  if (!self.navigator.gpu) return { adapter: null, software: false, why: "this browser has no WebGPU (navigator.gpu is missing)" };
  let adapter = null;
  try {
    adapter = await self.navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  } catch (e) {
    return { adapter: null, software: false, why: `WebGPU adapter request failed: ${e.message}` };
  }
  if (!adapter) return { adapter: null, software: false, why: "WebGPU found no adapter (GPU blocked or unsupported)" };
  const info = adapter.info ?? {};
  const name = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(" ");
  const software = Boolean(info.isFallbackAdapter ?? adapter.isFallbackAdapter) || /swiftshader|llvmpipe|lavapipe|software|basic render/i.test(name);
  const why = `the only WebGPU adapter is a software renderer (${name || "a fallback adapter"}), slower than the CPU backend`;
  return { adapter, software, why };
}

/** The CPU pool's size for `asked` (null: every core, up to THREAD_CAP). */
function poolSize(asked) {
  if (asked === null || asked === undefined || asked === "") {
    return Math.max(1, Math.min(self.navigator.hardwareConcurrency || 1, THREAD_CAP));
  }
  const n = Number(asked);
  if (!Number.isInteger(n) || n < 1 || n > THREAD_MAX) fail(`threads must be a whole number from 1 to ${THREAD_MAX}, got ${JSON.stringify(asked)}`);
  return n;
}

/** Why the threaded module cannot run here, or null. */
function threadsMissing() {
  if (!self.crossOriginIsolated || typeof SharedArrayBuffer !== "function") return "the page is not cross-origin isolated (the server sends no COOP/COEP headers, and the service worker that adds them is not active yet)";
  if (!WebAssembly.validate(THREADS_PROBE)) return "this browser has no WebAssembly threads";
  if (!WebAssembly.validate(RELAXED_SIMD_PROBE)) return "this browser has no WebAssembly relaxed SIMD, which the multi-threaded engine is built with";
  return null;
}

function median(v) {
  if (!v.length) return null;
  const s = [...v].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function handle({ id, op, args = [] }) {
  let ok = false;
  try {
    const fn = ops[op];
    if (!fn) fail(`unknown operation ${op}`);
    let out = await fn(...args);
    let transfer = [];
    if (out && typeof out === "object" && "result" in out && "transfer" in out) {
      transfer = out.transfer;
      out = out.result;
    }
    post({ id, ok: true, result: out }, transfer);
    ok = true;
  } catch (e) {
    if (e instanceof WebAssembly.RuntimeError) {
      // A trap (an allocation that could not fail softly, or a bug): say what was being
      // done; the engine's state before the call is usually intact, so the page goes on.
      const message = `${op}: the engine stopped inside WebAssembly (${e.message}): out of memory, or a fault in MedSeg. Export your masks, and reload the page if the next step fails too`;
      post({ id, ok: false, error: { name: "MedSegError", message, kind: "engine" } });
    } else {
      const message = e instanceof Error ? e.message : String(e);
      post({ id, ok: false, error: { name: (e && e.name) || "Error", message, kind: (e && e.kind) || null } });
    }
  }
  if (session && HISTORY_OPS.has(op)) {
    // After the answer, and caught, so that it can fail neither the request nor the queue.
    await locked(() => event("history", { ...session.history(), op, ok })).catch((e) => console.error("MedSeg: reading the undo history failed", e));
  }
}

self.onmessage = (ev) => {
  const msg = ev.data;
  if (msg && msg.op === "cancel") {
    cancelRequested = true;
    post({ id: msg.id, ok: true, result: null });
    return;
  }
  if (msg && READS.has(msg.op)) {
    locked(() => handle(msg));
    return;
  }
  queue = queue.then(() => handle(msg));
};
