// The bad-input corpus (tests/bad-input/, run against the CLI by tests/bad_input.rs)
// through the page: a representative third of it, every format, through openFile /
// loadModel and a few through the page's own file inputs. After each refusal the error
// names the problem, and the document, its mask and the model are still there and usable.
// Then two files that do not fit in the engine's memory, made at run time (a volume of
// 2 GB of float64 voxels, a model of 1.5 GB whose tensors need 3 GB as float32): each is a
// "too-large" message, not a WebAssembly trap.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { launch, openPage, log, putFile, putBytes, screenshot, SHARED, ROOT, DATA_URL_PATH, errorsText, pickBadFile } from "./lib.mjs";

const CORPUS = path.join(ROOT, "tests/bad-input");
const FIX = path.join(SHARED, "fixtures/sam2-small");

/** cases.tsv's rows by name: {file, expected} (the file its ARGS name under files/). */
function manifest() {
  const rows = new Map();
  for (const line of fs.readFileSync(path.join(CORPUS, "cases.tsv"), "utf8").split("\n")) {
    if (!line.trim() || line.startsWith("#")) continue;
    const [name, format, args, expected] = line.split("\t");
    const file = args.split(" ").find((a) => a.startsWith("files/") && !a.startsWith("files/valid/"));
    rows.set(name, { format, file, expected });
  }
  return rows;
}

const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

// [case, how the page takes it, the message when the page words it otherwise than the CLI]
/** @type {[string, "open" | "model", RegExp?][]} */
const PAGE_CASES = [
  ["st-empty", "model"],
  ["st-header-beyond-file", "model"],
  ["st-offsets-overlap", "model"],
  ["st-terabyte-tensor", "model"],
  ["st-not-a-model", "model"],
  ["pt-no-data-pkl", "model"],
  ["pt-unknown-opcode", "model"],
  ["pt-storage-too-short", "model"],
  ["pt-deep-nesting", "model"],
  ["nii-bad-sizeof-hdr", "open"],
  ["nii-huge-dims", "open"],
  ["nii-dims-vs-little-data", "open"],
  ["nii-truncated-gz", "open"],
  ["nii-unknown-datatype", "open"],
  ["npz-no-imgs", "open"],
  ["npz-object-dtype", "open"],
  ["npz-huge-shape", "open"],
  ["img-text-named-png", "open"],
  ["img-huge-dimensions", "open"],
  ["img-truncated-jpg", "open"],
  ["img-garbage-webp", "open"],
  ["frames-mixed-sizes", "open", /frame 2 \(frame_002\.png\) is 32×32, the clip is 64×48/i],
  ["frames-non-image", "open", /frame_002\.png/i],
  ["dcm-no-pixel-data", "open"],
  ["dcm-huge-element-length", "open"],
  ["dcm-jpeg-ls-corrupt-scan", "open"],
  ["dcm-unsupported-syntax", "open"],
  ["dcm-structured-report", "open"],
];

async function rejection(page, how, names) {
  return page.evaluate(
    async ([how, names]) => {
      try {
        const files = names.map((n) => window.__files[n]);
        if (how === "model") await window.medseg.loadModel(files[0]);
        else await window.medseg.openFile(files.length === 1 ? files[0] : files);
        return { ok: true };
      } catch (e) {
        return { ok: false, isError: e instanceof Error, message: e.message, kind: e.kind };
      }
    },
    [how, names],
  );
}

/** A NIfTI-1 float64 volume of `[x, y, z]` zeros, gzipped, as concatenated gzip members
 * (one of the header, then one 64 MB member of zeros repeated): MB of file for GB of
 * voxels, made in a second. */
function zeroVolumeGz([x, y, z]) {
  const h = Buffer.alloc(352);
  h.writeInt32LE(348, 0);
  [3, x, y, z, 1, 1, 1, 1].forEach((d, i) => h.writeInt16LE(d, 40 + 2 * i));
  h.writeInt16LE(64, 70); // datatype float64
  h.writeInt16LE(64, 72); // bitpix
  for (let i = 0; i < 8; i++) h.writeFloatLE(1, 76 + 4 * i);
  h.writeFloatLE(352, 108);
  h.writeFloatLE(1, 112);
  h.write("n+1\0", 344, "latin1");
  const chunk = 64 << 20;
  const bytes = x * y * z * 8;
  assert.equal(bytes % chunk, 0);
  const zeros = zlib.gzipSync(Buffer.alloc(chunk));
  return Buffer.concat([zlib.gzipSync(h), ...new Array(bytes / chunk).fill(zeros)]);
}

/** A safetensors model of `k` half-precision tensors of `mb` MB each, made in the page. */
function bigModelInPage([k, mb]) {
  const each = mb << 20;
  const table = {};
  for (let i = 0; i < k; i++) table[`t${i}`] = { dtype: "F16", shape: [each / 2], data_offsets: [i * each, (i + 1) * each] };
  let json = JSON.stringify(table);
  while (json.length % 8) json += " ";
  const head = new Uint8Array(8 + json.length);
  new DataView(head.buffer).setBigUint64(0, BigInt(json.length), true);
  head.set(new TextEncoder().encode(json), 8);
  window.__files["big.safetensors"] = new File([head, new Uint8Array(k * each)], "big.safetensors");
}

const maskSum = (page) => page.evaluate(async () => (await window.medseg.getMask(0, 1))?.data.reduce((a, b) => a + b, 0) ?? null);

test("the bad-input corpus through the page keeps the session", { timeout: 900000 }, async () => {
  const rows = manifest();
  const formats = new Set(PAGE_CASES.map(([name]) => rows.get(name)?.format));
  assert.ok(PAGE_CASES.length >= 14 && formats.size >= 7, `${PAGE_CASES.length} cases, formats ${[...formats]}`);
  const { context, close } = await launch();
  try {
    const { page, errors } = await openPage(context, "?backend=cpu&model=none");
    await page.evaluate((url) => window.medseg.loadModel(url), `${DATA_URL_PATH}/sam2-small.safetensors`);
    await putFile(page, path.join(FIX, "image.png"), "image.png");
    await page.evaluate(() => window.medseg.openFile(window.__files["image.png"]));
    await page.evaluate(() => window.medseg.addBox(0, 1, [32, 28.8, 89.6, 76.8]));
    const area = await maskSum(page);
    assert.ok(area > 0, "the box on image.png gives a mask");

    for (const [name, how, pageMessage] of PAGE_CASES) {
      const row = rows.get(name);
      assert.ok(row?.file, `${name} is a case of cases.tsv with a file`);
      const local = path.join(CORPUS, row.file);
      // A folder of frames is opened as its files, in name order.
      const files = fs.statSync(local).isDirectory() ? fs.readdirSync(local).sort().map((f) => path.join(local, f)) : [local];
      const names = [];
      for (const f of files) names.push(await putFile(page, f, path.basename(f)));
      const r = await rejection(page, how, names);
      log(`${name} (${how} ${row.file}): ${r.ok ? "accepted!" : r.message}`);
      assert.equal(r.ok, false, `${row.file} was accepted`);
      assert.equal(r.isError, true, "rejects with an Error");
      assert.match(r.message, pageMessage ?? new RegExp(escape(row.expected), "i"));
      assert.equal(await page.evaluate(() => window.medseg.architecture()), "sam2", `the model after ${name}`);
      assert.equal(await page.evaluate(() => window.medseg.frameCount()), 1, `the document after ${name}`);
      assert.equal(await maskSum(page), area, `the mask changed after ${name}`);
    }
    // Still usable: another box segments.
    const again = await page.evaluate(() => window.medseg.addBox(0, 2, [32, 28.8, 89.6, 76.8]));
    assert.ok(again.area > 0, `segmenting after the errors: area ${again.area}`);

    // Through the page's own inputs: the message is shown, the image and mask stay.
    /** @type {[string, string, boolean][]} */
    const ui = [
      ["#file-input", "nii-dims-vs-little-data", true],
      ["#file-input", "img-huge-dimensions", true],
      ["#model-file", "pt-storage-too-short", false],
    ];
    for (const [input, name, asks] of ui) {
      const row = rows.get(name);
      const buffer = fs.readFileSync(path.join(CORPUS, row.file));
      log(`the page shows: ${await pickBadFile(page, input, path.basename(row.file), buffer, escape(row.expected), asks)}`);
      assert.match(await page.evaluate(() => document.getElementById("file-info").textContent), /image\.png/, `the page still shows the image after ${name}`);
      assert.equal(await maskSum(page), area, `the mask changed after ${name} (page)`);
    }
    assert.equal(await page.evaluate(() => window.medseg.architecture()), "sam2", "the page keeps its model");

    // Files that do not fit in the engine's memory (the module's 4 GB): each is a
    // "too-large" message naming the size, not a WebAssembly trap; nothing is lost.
    const bigVolume = zeroVolumeGz([1024, 1024, 256]);
    await putBytes(page, bigVolume, "f64-volume.nii.gz");
    await page.evaluate(bigModelInPage, [3, 500]);
    /** @type {[string, "open" | "model", RegExp][]} */
    const tooLarge = [
      ["f64-volume.nii.gz", "open", /f64-volume\.nii\.gz: not enough memory: the inflated voxel data needs 2147483648 bytes/],
      ["big.safetensors", "model", /not enough memory: tensor `t\d` needs 1048576000 bytes/],
    ];
    for (const [what, how, pattern] of tooLarge) {
      const r = await rejection(page, how, [what]);
      log(`${what} (too large): ${r.ok ? "accepted!" : `${r.message} [${r.kind}]`}`);
      assert.equal(r.ok, false, `${what} was accepted`);
      assert.equal(r.kind, "too-large", r.message);
      assert.match(r.message, pattern);
      assert.equal(await page.evaluate(() => window.medseg.architecture()), "sam2", `the model after ${what}`);
      assert.equal(await maskSum(page), area, `the mask changed after ${what}`);
    }
    // The same through the page's file input: the message is shown, the image stays.
    log(`the page shows: ${await pickBadFile(page, "#file-input", "f64-volume.nii.gz", bigVolume, "not enough memory", true)}`);
    assert.match(await page.evaluate(() => document.getElementById("file-info").textContent), /image\.png/, "the page still shows the image");
    await screenshot(page, "bad-corpus-too-large-1400x900.png");
    const last = await page.evaluate(() => window.medseg.addBox(0, 3, [32, 28.8, 89.6, 76.8]));
    assert.ok(last.area > 0, `segmenting after the files that do not fit: area ${last.area}`);

    const expected = PAGE_CASES.map(([name]) => path.basename(rows.get(name).file));
    const unexpected = errors.filter((e) => !expected.some((n) => e.includes(n)) && !/bad input|not a model|too large|truncated|unsupported/i.test(e));
    assert.deepEqual(unexpected, [], `console errors:${errorsText(unexpected)}`);
  } finally {
    await close();
  }
});
