// Shared helpers of the browser tests (run by scripts/test-browser.sh, which serves the
// repository root with `medseg serve` and sets MEDSEG_URL).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const SHARED = path.resolve(ROOT, "../shared");
export const OUT = path.join(ROOT, "test-output");
export const SCREENSHOTS = path.join(OUT, "screenshots");
/** Test data copied under the served root by scripts/test-browser.sh. */
export const DATA_URL_PATH = "/test-output/e2e-data";

export const BASE = process.env.MEDSEG_URL;
if (!BASE) throw new Error("MEDSEG_URL is not set: run the browser tests with scripts/test-browser.sh");
export const PAGE = process.env.MEDSEG_PAGE || "/index.html";
export const LITE_URL = process.env.MEDSEG_LITE_URL || "/weights/lite_medsam.safetensors";

export const CHROMIUM = process.env.MEDSEG_CHROMIUM || "/usr/bin/chromium";
export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--enable-unsafe-webgpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export function log(...args) {
  console.log("#", ...args);
}

/**
 * A fresh browser (its own temporary profile) and context. `webgpu: false` starts it
 * without WebGPU (no --enable-unsafe-webgpu, the WebGPU feature off), as a browser
 * without it; `serviceWorkers: "block"` as one whose service worker has not started yet.
 */
export async function launch({ webgpu = true, serviceWorkers = "allow" } = {}) {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "medseg-e2e-"));
  const args = webgpu ? CHROMIUM_ARGS : [...CHROMIUM_ARGS.filter((a) => a !== "--enable-unsafe-webgpu"), "--disable-features=WebGPU"];
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args,
    viewport: { width: 1280, height: 800 },
    serviceWorkers: /** @type {"allow" | "block"} */ (serviceWorkers),
  });
  const close = async () => {
    await context.close().catch(() => {});
    fs.rmSync(userDataDir, { recursive: true, force: true });
  };
  return { context, close };
}

/**
 * Opens the page (on `base`, the test server unless named) and records console errors,
 * page errors and every request. Waits for
 * the UI to finish starting (body[data-state] is "ready" or
 * "engine-failed") when the page has one.
 */
export async function openPage(context, query = "", base = BASE) {
  const page = await context.newPage();
  const errors = [];
  const requests = [];
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
  // The context sees the page's, its workers' and the service worker's requests.
  const onRequest = (r) => requests.push({ url: r.url(), t: Date.now() });
  context.on("request", onRequest);
  page.on("close", () => context.off("request", onRequest));
  page.setDefaultTimeout(0);
  await page.goto(`${base}${PAGE}${query}`);
  await page.waitForFunction(() => typeof window.medseg === "object" && window.medseg !== null, null, { timeout: 30000 });
  await waitReady(page);
  return { page, errors, requests };
}

export async function waitReady(page, timeout = 120000) {
  await page.waitForFunction(
    () => !document.body.dataset.state || ["ready", "engine-failed"].includes(document.body.dataset.state),
    null,
    { timeout },
  );
}

/** Makes `window.__files[name]` a File with the bytes of `localPath` (no request). */
export async function putFile(page, localPath, name = path.basename(localPath)) {
  return putBytes(page, fs.readFileSync(localPath), name);
}

/** As putFile, from raw bytes. */
export async function putBytes(page, bytes, name) {
  const b64 = Buffer.from(bytes).toString("base64");
  await page.evaluate(
    ([b64, name]) => {
      const bin = atob(b64);
      const out = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
      window.__files ??= {};
      window.__files[name] = new File([out], name);
    },
    [b64, name],
  );
  return name;
}

/** The CT volume of the real flow (its ground truth is CT_CASE_gt.nii.gz beside it). */
export const CT_CASE = "CT_Lesion_000001_02_01_008-023";
export const CT_VOLUME = path.join(SHARED, "data/ct-lesion", `${CT_CASE}.nii.gz`);
export const CT_GT = path.join(SHARED, "data/ct-lesion", `${CT_CASE}_gt.nii.gz`);

/** Opens the CT volume through window.medseg.openFile; returns its description. */
export async function openCtVolume(page) {
  await putFile(page, CT_VOLUME, "ct.nii.gz");
  return page.evaluate(() => window.medseg.openFile(window.__files["ct.nii.gz"]));
}

/** Opens the PNG frames of `dir` (sorted by name) as one clip; returns its description. */
export async function openFrameFolder(page, dir) {
  const names = fs.readdirSync(dir).sort();
  for (const f of names) await putFile(page, path.join(dir, f), f);
  return page.evaluate((names) => window.medseg.openFile(names.map((n) => window.__files[n])), names);
}

/** Loads LiteMedSAM (the default weights) through window.medseg.loadModel. */
export function loadLiteMedSam(page) {
  return page.evaluate((url) => window.medseg.loadModel(url, { expect: "lite-medsam" }), LITE_URL);
}

export async function screenshot(page, name) {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  const file = path.join(SCREENSHOTS, name);
  await page.screenshot({ path: file });
  log(`screenshot ${path.relative(ROOT, file)}`);
  return file;
}

/** Reads a safetensors file: name → {dtype, shape, data (Float32Array for F32)}. */
export function readSafetensors(file, names = null) {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString("utf8"));
  const out = {};
  for (const [k, v] of Object.entries(header)) {
    if (k === "__metadata__" || (names && !names.includes(k))) continue;
    const [a, b] = v.data_offsets;
    const bytes = buf.subarray(8 + n + a, 8 + n + b);
    /** @type {Buffer | Float32Array} */
    let data = bytes;
    if (v.dtype === "F32") {
      data = new Float32Array(bytes.length / 4);
      for (let i = 0; i < data.length; i++) data[i] = bytes.readFloatLE(i * 4);
    }
    out[k] = { dtype: v.dtype, shape: v.shape, data };
  }
  return out;
}

/** Parses a NIfTI-1 (.nii or .nii.gz): header fields and the voxels (uint8/int16/float32...). */
export function readNifti(bytes) {
  let b = Buffer.from(bytes);
  if (b[0] === 0x1f && b[1] === 0x8b) b = zlib.gunzipSync(b);
  const le = b.readInt32LE(0) === 348;
  const i16 = (o) => (le ? b.readInt16LE(o) : b.readInt16BE(o));
  const f32 = (o) => (le ? b.readFloatLE(o) : b.readFloatBE(o));
  const dim = Array.from({ length: 8 }, (_, i) => i16(40 + 2 * i));
  const pixdim = Array.from({ length: 8 }, (_, i) => f32(76 + 4 * i));
  const datatype = i16(70);
  const voxOffset = Math.round(f32(108));
  const srow = [280, 296, 312].map((o) => Array.from({ length: 4 }, (_, i) => f32(o + 4 * i)));
  const [nx, ny, nz] = [dim[1], dim[2], Math.max(1, dim[3])];
  const n = nx * ny * nz;
  const readers = {
    2: [1, (o) => b.readUInt8(o)],
    256: [1, (o) => b.readInt8(o)],
    4: [2, (o) => i16(o)],
    512: [2, (o) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o))],
    8: [4, (o) => (le ? b.readInt32LE(o) : b.readInt32BE(o))],
    16: [4, (o) => f32(o)],
    64: [8, (o) => (le ? b.readDoubleLE(o) : b.readDoubleBE(o))],
  };
  const r = readers[datatype];
  if (!r) throw new Error(`NIfTI datatype ${datatype} not handled by the test reader`);
  const data = new Float64Array(n);
  for (let i = 0; i < n; i++) data[i] = r[1](voxOffset + i * r[0]);
  return {
    dims: [nx, ny, nz],
    pixdim,
    datatype,
    qformCode: i16(252),
    sformCode: i16(254),
    srow,
    data,
  };
}

export function dice(a, b) {
  let inter = 0;
  let sa = 0;
  let sb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] > 0;
    const y = b[i] > 0;
    if (x) sa++;
    if (y) sb++;
    if (x && y) inter++;
  }
  return sa + sb === 0 ? 1 : (2 * inter) / (sa + sb);
}

export function maxAbsDiff(a, b) {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** The bytes of a Blob in the page (a JSHandle from page.evaluateHandle) as a Buffer. */
export async function blobBytes(handle) {
  const b64 = await handle.evaluate(async (blob) => {
    const u8 = new Uint8Array(await blob.arrayBuffer());
    let s = "";
    for (let i = 0; i < u8.length; i += 0x8000) s += String.fromCharCode(...u8.subarray(i, i + 0x8000));
    return btoa(s);
  });
  await handle.dispose();
  return Buffer.from(b64, "base64");
}

/** The console errors of a page, for an assertion message. */
export function errorsText(errors) {
  return errors.length ? `\n  ${errors.join("\n  ")}` : "";
}

/**
 * Records a synthetic clip in the page: N frames of a bright disk of radius R at
 * centres[i] over speckle, W×H, drawn on a canvas at 10 frames a second and encoded by
 * MediaRecorder from canvas.captureStream: WebM (VP8) by default, or `mimeType` (e.g.
 * "video/mp4;codecs=avc1", H.264). Leaves it in window.__clip (a File "synthetic.webm" or
 * "synthetic.mp4"); returns its size.
 */
export async function makeSyntheticClip(page, { N, W, H, R, centres, mimeType = "video/webm;codecs=vp8" }) {
  return page.evaluate(
    async ({ N, W, H, R, centres, mimeType }) => {
      if (!MediaRecorder.isTypeSupported(mimeType)) throw new Error(`this Chromium cannot record ${mimeType}`);
      const canvas = document.createElement("canvas");
      canvas.width = W;
      canvas.height = H;
      const ctx = canvas.getContext("2d");
      let seed = 1;
      const rnd = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
      const draw = (i) => {
        const img = ctx.createImageData(W, H);
        const [cx, cy] = centres[i];
        for (let y = 0; y < H; y++) {
          for (let x = 0; x < W; x++) {
            const inside = (x - cx) ** 2 + (y - cy) ** 2 < R * R;
            const v = (inside ? 200 : 50) + (rnd() - 0.5) * 60;
            const p = 4 * (y * W + x);
            img.data[p] = img.data[p + 1] = img.data[p + 2] = v;
            img.data[p + 3] = 255;
          }
        }
        ctx.putImageData(img, 0, 0);
      };
      draw(0);
      const stream = canvas.captureStream(0);
      const track = /** @type {CanvasCaptureMediaStreamTrack} */ (stream.getVideoTracks()[0]);
      const rec = new MediaRecorder(stream, { mimeType, videoBitsPerSecond: 4e6 });
      const chunks = [];
      rec.ondataavailable = (e) => e.data.size && chunks.push(e.data);
      const stopped = new Promise((r) => (rec.onstop = r));
      rec.start();
      for (let i = 0; i < N; i++) {
        draw(i);
        track.requestFrame();
        await new Promise((r) => setTimeout(r, 100));
      }
      rec.stop();
      await stopped;
      const type = mimeType.split(";")[0];
      window.__clip = new File(chunks, `synthetic.${type === "video/mp4" ? "mp4" : "webm"}`, { type });
      return window.__clip.size;
    },
    { N, W, H, R, centres, mimeType },
  );
}

/**
 * Polls `fn(arg)` in the page (it may be async) every `interval` ms until it returns a
 * truthy value; returns that value. (page.waitForFunction does not await promises.)
 */
export async function until(page, fn, arg, { timeout = 600000, interval = 250, what = "condition" } = {}) {
  const end = Date.now() + timeout;
  for (;;) {
    const v = await page.evaluate(fn, arg);
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

/** Client coordinates of image pixel (x, y) in the viewer canvas (web/ui/viewer.js fit). */
export async function imageToClient(page, imgW, imgH, aspect = 1) {
  const r = await page.evaluate(() => {
    const c = document.getElementById("view");
    const b = c.getBoundingClientRect();
    return { left: b.left, top: b.top, w: c.parentElement.clientWidth, h: c.parentElement.clientHeight };
  });
  const pad = 8;
  const s = Math.min((r.w - 2 * pad) / imgW, (r.h - 2 * pad) / (imgH * aspect));
  const ox = (r.w - imgW * s) / 2;
  const oy = (r.h - imgH * s * aspect) / 2;
  return (x, y) => [r.left + ox + x * s, r.top + oy + y * s * aspect];
}

/** Drags a box with the mouse from image pixel (x0, y0) to (x1, y1); `to` from imageToClient. */
export async function drawBox(page, to, [x0, y0, x1, y1]) {
  const [ax, ay] = to(x0, y0);
  const [bx, by] = to(x1, y1);
  await page.mouse.move(ax, ay);
  await page.mouse.down();
  await page.mouse.move((ax + bx) / 2, (ay + by) / 2, { steps: 4 });
  await page.mouse.move(bx, by, { steps: 4 });
  await page.mouse.up();
}

/** The id of the first object once it has a mask on `frame` (after a box drawn with the mouse). */
export function firstObjectMasked(page, frame) {
  return until(
    page,
    async (k) => {
      const ids = await window.medseg.objects();
      return ids.length > 0 && (await window.medseg.getMask(k, ids[0])) != null && ids[0];
    },
    frame,
    { timeout: 300000, what: "the box's mask" },
  );
}

/** The DICOM oracle's venv (scripts/setup.sh): pydicom, highdicom and the corpus of test files. */
export const DICOM_VENV = path.join(os.homedir(), ".cache/medseg/dicom-venv");
export const DICOM_PYTHON = path.join(DICOM_VENV, "bin/python");
/** Its site-packages (lib/python3.N/site-packages), or null without the venv. */
export const DICOM_SITE = (() => {
  const lib = path.join(DICOM_VENV, "lib");
  if (!fs.existsSync(lib)) return null;
  const py = fs.readdirSync(lib).find((d) => /^python3/.test(d));
  return py ? path.join(lib, py, "site-packages") : null;
})();
/** pydicom's own test files, and the pydicom-data store (the larger ones). */
export const DICOM_TEST_FILES = DICOM_SITE && path.join(DICOM_SITE, "pydicom/data/test_files");
export const DICOM_DATA_STORE = DICOM_SITE && path.join(DICOM_SITE, "data_store/data");

/**
 * Gives `buffer` as `name` to the page's file input `input` (`#file-input`, `#model-file`)
 * as a user picking it would, confirms the "open without saving" question when `asks`, and
 * waits for an error message matching `pattern` (a RegExp source, case-insensitive) with
 * the page no longer busy; returns the message's text.
 */
export async function pickBadFile(page, input, name, buffer, pattern, asks) {
  await page.setInputFiles(input, { name, mimeType: "application/octet-stream", buffer });
  if (asks) await page.click("#dialog button:has-text('without saving')", { timeout: 30000 });
  const shown = await page.waitForFunction(
    (src) => {
      const re = new RegExp(src, "i");
      const hit = [...document.querySelectorAll("#messages .msg-error .msg-text")].find((e) => re.test(e.textContent));
      return hit && document.body.dataset.busy === "" ? hit.textContent : null;
    },
    pattern,
    { timeout: 60000 },
  );
  return /** @type {string} */ (await shown.jsonValue());
}
