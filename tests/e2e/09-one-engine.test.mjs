// One engine, two faces: the page's API (window.medseg) and the medseg CLI give the same
// masks for the same input and prompt, because both drive the application core
// (src/app). On the CPU backend:
// - box then point on one frame = `medseg segment --box … --point …` (an image with
//   sam2-small: logits; a clip frame and a volume slice: masks), and undo of the point
//   brings the box-only mask back;
// - a CT stored in Hounsfield units, tracked without naming a window, gives the mask of
//   `medseg track` without --window (LiteMedSAM, and SAM 2 with sam2-small).
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { execFileSync } from "node:child_process";
import { launch, openPage, log, putFile, putBytes, readNifti, dice, maxAbsDiff, blobBytes, errorsText, openFrameFolder, loadLiteMedSam, LITE_URL, ROOT, SHARED, DATA_URL_PATH, CT_VOLUME } from "./lib.mjs";

const FIX = path.join(SHARED, "fixtures/sam2-small");
const SAM2 = path.join(FIX, "weights.safetensors");
// The LiteMedSAM file the page loads (served from the repository root).
const LITE = path.join(ROOT, LITE_URL);
const BIN = process.env.MEDSEG_BIN;
if (!BIN) throw new Error("MEDSEG_BIN is not set: run the browser tests with scripts/test-browser.sh");
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), "medseg-e2e-cli-"));

function medseg(args) {
  return execFileSync(BIN, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** A little-endian float32 .npy as written by `medseg segment --logits`. */
function readNpyF32(file) {
  const b = fs.readFileSync(file);
  const headerLen = b.readUInt16LE(8);
  const start = 10 + headerLen;
  const header = b.subarray(10, start).toString("latin1");
  assert.match(header, /'descr': '<f4'/);
  const out = new Float32Array((b.length - start) / 4);
  for (let i = 0; i < out.length; i++) out[i] = b.readFloatLE(start + 4 * i);
  return out;
}

/** A grey 8-bit PNG (zlib + CRC by hand: Node has no PNG encoder). */
function greyPng(width, height, grey) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const x of buf) c = crcTable[(c ^ x) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, "latin1"), data]);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 0, 0, 0, 0], 8); // 8-bit grey
  const raw = Buffer.alloc((width + 1) * height);
  for (let y = 0; y < height; y++) raw.set(grey.subarray(y * width, (y + 1) * width), y * (width + 1) + 1);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", zlib.deflateSync(raw)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

/** `medseg segment` on `image` with `box` and `points` ([x, y, label]): its logits. */
function cliLogits(model, image, box, points = []) {
  const out = path.join(TMP, "logits.npy");
  const args = ["segment", "--model", model, "--image", image, "--box", box.join(","), "--out", path.join(TMP, "mask.png"), "--logits", out];
  for (const p of points) args.push("--point", p.join(","));
  medseg(args);
  return readNpyF32(out);
}

const binary = (logits) => Array.from(logits, (v) => (v > 0 ? 1 : 0));

function iou(a, b) {
  let inter = 0;
  let union = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] && b[i]) inter++;
    if (a[i] || b[i]) union++;
  }
  return union ? inter / union : 1;
}

/** Box then point on `frame` through the API; then undo. Masks and logits of each. */
async function boxThenPoint(page, frame, box, point) {
  return page.evaluate(
    async ([frame, box, point]) => {
      const m = window.medseg;
      const mask = async () => Array.from((await m.getMask(frame, 1)).data);
      const first = await m.addBox(frame, 1, box);
      const boxMask = await mask();
      const second = await m.addPoints(frame, 1, [point]);
      const both = { mask: await mask(), logits: Array.from((await m.getLogits(frame, 1)) ?? []) };
      const undone = await m.undo();
      const after = { mask: await mask(), logits: Array.from((await m.getLogits(frame, 1)) ?? []) };
      return { first, second, undone, boxMask, both, after };
    },
    [frame, box, point],
  );
}

test("box then point is the CLI's box + point, undo brings the box back (image, clip, volume)", { timeout: 1200000 }, async () => {
  const { context, close } = await launch();
  try {
    const { page, errors } = await openPage(context, "?backend=cpu&model=none");
    await page.evaluate((url) => window.medseg.loadModel(url), `${DATA_URL_PATH}/sam2-small.safetensors`);
    const box = [32, 28.8, 89.6, 76.8];
    const point = [61, 52, 0];

    // An image: logits against `medseg segment`.
    await putFile(page, path.join(FIX, "image.png"), "image.png");
    await page.evaluate(() => window.medseg.openFile(window.__files["image.png"]));
    const img = await boxThenPoint(page, 0, box, point);
    // (The engine holds coordinates as float32.)
    assert.deepEqual(img.second.prompt, { box: box.map(Math.fround), points: [point] }, "the frame's whole prompt: box + point");
    const cliBoth = cliLogits(SAM2, path.join(FIX, "image.png"), box, [point]);
    const cliBox = cliLogits(SAM2, path.join(FIX, "image.png"), box);
    const errBoth = maxAbsDiff(img.both.logits, cliBoth);
    const errBox = maxAbsDiff(img.after.logits, cliBox);
    log(`image: box+point logits vs medseg segment max |Δ| ${errBoth.toExponential(2)}; after undo vs --box only ${errBox.toExponential(2)}`);
    assert.ok(errBoth <= 1e-3 && errBox <= 1e-3, `logits differ: ${errBoth}, ${errBox}`);
    assert.ok(maxAbsDiff(cliBoth, cliBox) > 1e-2, "the point changes the mask (the test can tell)");
    assert.deepEqual(img.undone.prompts, [{ obj: 1, frame: 0, prompt: { box: box.map(Math.fround), points: [] } }]);

    // A clip frame: masks against `medseg segment` on that frame.
    await openFrameFolder(page, path.join(FIX, "frames_png"));
    const clipBox = [30, 25, 95, 80];
    const clipPoint = [60, 50, 1];
    const clip = await boxThenPoint(page, 2, clipBox, clipPoint);
    const frame2 = path.join(FIX, "frames_png/00002.png");
    const clipIou = iou(clip.both.mask, binary(cliLogits(SAM2, frame2, clipBox, [clipPoint])));
    log(`clip frame 2: box+point mask vs medseg segment IoU ${clipIou.toFixed(4)}`);
    assert.ok(clipIou >= 0.99, `clip IoU ${clipIou}`);
    assert.deepEqual(clip.after.mask, clip.boxMask, "undo brings the box-only mask back");

    // A volume slice: the slice as a PNG for the CLI.
    await putFile(page, CT_VOLUME, "ct.nii.gz");
    await page.evaluate(() => window.medseg.openFile(window.__files["ct.nii.gz"]));
    const slice = await page.evaluate(async () => {
      const f = await window.medseg.getFrame(8);
      return { width: f.width, height: f.height, grey: Array.from(f.data.filter((_, i) => i % 4 === 0)) };
    });
    const slicePng = path.join(TMP, "slice8.png");
    fs.writeFileSync(slicePng, greyPng(slice.width, slice.height, Uint8Array.from(slice.grey)));
    const ctBox = [260, 226, 331, 288];
    const ctPoint = [295, 257, 1];
    const vol = await boxThenPoint(page, 8, ctBox, ctPoint);
    const volIou = iou(vol.both.mask, binary(cliLogits(SAM2, slicePng, ctBox, [ctPoint])));
    log(`volume slice 8: box+point mask vs medseg segment IoU ${volIou.toFixed(4)}`);
    assert.ok(volIou >= 0.99, `volume IoU ${volIou}`);
    assert.deepEqual(vol.after.mask, vol.boxMask, "undo brings the box-only mask back");
    assert.deepEqual(errors, [], `console errors:${errorsText(errors)}`);
  } finally {
    await close();
  }
});

/** The shared CT (uint8) as an int16 NIfTI in Hounsfield-like units, air in voxel 0. */
function huNifti() {
  const b = zlib.gunzipSync(fs.readFileSync(CT_VOLUME));
  const voxOffset = Math.round(b.readFloatLE(108));
  assert.equal(b.readInt16LE(70), 2, "the shared CT is uint8");
  const n = b.length - voxOffset;
  const out = Buffer.alloc(voxOffset + 2 * n);
  b.copy(out, 0, 0, voxOffset);
  out.writeInt16LE(4, 70); // datatype int16
  out.writeInt16LE(16, 72); // bitpix
  out.writeFloatLE(1, 112); // scl_slope
  out.writeFloatLE(0, 116); // scl_inter
  for (let i = 0; i < n; i++) {
    const hu = i === 0 ? -1000 : Math.round((b[voxOffset + i] * 400) / 255 - 160);
    out.writeInt16LE(hu, voxOffset + 2 * i);
  }
  return out;
}

test("a Hounsfield-unit CT tracked without a window: the page = medseg track", { timeout: 1800000 }, async () => {
  const hu = path.join(TMP, "ct-hu.nii");
  fs.writeFileSync(hu, huNifti());
  const KEY = 8;
  const BOX = [260, 226, 331, 288];
  const RANGE = [5, 11];
  const { context, close } = await launch();
  try {
    const { page, errors } = await openPage(context, "?backend=cpu&model=none");
    await putBytes(page, fs.readFileSync(hu), "ct-hu.nii");
    /** @type {[string, string, () => Promise<unknown>][]} */
    const models = [
      ["LiteMedSAM", LITE, () => loadLiteMedSam(page)],
      ["sam2-small", SAM2, () => page.evaluate((url) => window.medseg.loadModel(url), `${DATA_URL_PATH}/sam2-small.safetensors`)],
    ];
    for (const [name, model, load] of models) {
      await load();
      const info = await page.evaluate(() => window.medseg.openFile(window.__files["ct-hu.nii"]));
      assert.equal(info.window, "soft", "HU data gets the soft-tissue window");
      const t0 = Date.now();
      const exported = await page.evaluateHandle(
        async ([key, box, range]) => {
          await window.medseg.addBox(key, 1, box);
          await window.medseg.propagate("both", { range });
          return window.medseg.exportNifti();
        },
        [KEY, BOX, RANGE],
      );
      const pageMask = readNifti(await blobBytes(exported)).data;
      const pageMs = Date.now() - t0;
      const out = path.join(TMP, `track-${name}.nii.gz`);
      medseg(["track", "--model", model, "--input", hu, "--frame", String(KEY), "--box", BOX.join(","), "--range", RANGE.join(","), "--out", out]);
      const cliMask = readNifti(fs.readFileSync(out)).data;
      const d = dice(pageMask, cliMask);
      const voxels = cliMask.reduce((a, v) => a + (v > 0 ? 1 : 0), 0);
      log(`${name}: page (${pageMs} ms) vs medseg track without --window: Dice ${d.toFixed(4)}, ${voxels} voxels`);
      assert.ok(voxels > 0, "the CLI found the lesion");
      assert.ok(d >= 0.999, `${name}: Dice ${d}`);
    }
    assert.deepEqual(errors, [], `console errors:${errorsText(errors)}`);
  } finally {
    await close();
  }
});
