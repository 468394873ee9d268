// 4-D NIfTI in the page (issue 13), on the CPU backend with LiteMedSAM; the fixtures and
// what nibabel reads from them are tests/fixtures/nifti4d (make_nifti4d.py):
// 1. A 4-D NIfTI of several slices (96×96×7, 3 time points) picked through the file
//    input: the time-point picker lists the three, chosen with the keyboard; time point 1
//    opens as a volume of 7 slices whose stored values are nibabel's.
// 2. The API: no timePoint rejects with kind "choose-time-point" (timePoints, dims); one
//    out of range is an error naming the range; the volume shown stays.
// 3. A single-slice sequence (128×128×1, 4 time points) opens as a clip of 4 frames with
//    the volume's windows; a box on frame 2 propagated both ways; "NIfTI masks" gives a
//    4-D (128, 128, 1, 4) mask with the file's sform and time step.
// Screenshot: nifti4d-picker.png.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { launch, openPage, log, screenshot, until, putFile, blobBytes, errorsText, loadLiteMedSam, ROOT } from "./lib.mjs";
import zlib from "node:zlib";

const DIR = path.join(ROOT, "tests/fixtures/nifti4d");
const SERIES = path.join(DIR, "series.nii.gz");
const FRAMES = path.join(DIR, "frames.nii.gz");
const EXPECTED = JSON.parse(fs.readFileSync(path.join(DIR, "expected.json"), "utf8"));

/** dim[0..8], pixdim, srow and the uint8 voxels of a gzipped little-endian NIfTI-1 mask. */
function readMask4d(bytes) {
  const b = zlib.gunzipSync(Buffer.from(bytes));
  const dim = Array.from({ length: 8 }, (_, i) => b.readInt16LE(40 + 2 * i));
  const pixdim = Array.from({ length: 8 }, (_, i) => b.readFloatLE(76 + 4 * i));
  const srow = [280, 296, 312].map((o) => Array.from({ length: 4 }, (_, i) => b.readFloatLE(o + 4 * i)));
  const off = Math.round(b.readFloatLE(108));
  return { dim, pixdim, srow, datatype: b.readInt16LE(70), data: b.subarray(off) };
}

test("4-D NIfTI: the time-point picker, the API's choice, a single-slice sequence as a clip", { timeout: 900000 }, async () => {
  const { context, close } = await launch({ webgpu: false });
  try {
    const { page, errors } = await openPage(context, "?backend=cpu&model=none");
    await loadLiteMedSam(page);

    // 1. Through the file input: the picker.
    await page.setInputFiles("#file-input", SERIES);
    await until(page, () => document.querySelectorAll("#dialog[open] button.pick-row").length > 0, null, { what: "the time-point picker" });
    const rows = await page.evaluate(() => [...document.querySelectorAll("#dialog button.pick-row")].map((b) => [...b.querySelectorAll("span")].map((s) => s.textContent)));
    log(`picker: ${JSON.stringify(rows)}`);
    assert.deepEqual(rows, [["0", "96×96×7"], ["1", "96×96×7"], ["2", "96×96×7"]]);
    await screenshot(page, "nifti4d-picker.png");
    await page.keyboard.press("ArrowDown");
    await page.keyboard.press("Enter");
    await until(page, () => /of 7/.test(document.getElementById("frame-total")?.textContent ?? "") && document.body.dataset.busy === "", null, { what: "time point 1" });
    const info = await page.evaluate(() => window.medseg.info());
    log(`time point 1: ${JSON.stringify(info)}`);
    assert.deepEqual([info.kind, info.width, info.height, info.frames], ["volume", 96, 96, 7]);
    assert.deepEqual(info.time_point, { index: 1, of: 3 });
    // Stored values as nibabel reads them (samples of time point 1).
    const want = EXPECTED["series.nii.gz"].voxels_ijkt_value.filter((s) => s[3] === 1);
    assert.ok(want.length > 0, "samples of time point 1");
    for (const [i, j, k, , v] of want) {
      const got = await page.evaluate(async ([k, i, j]) => {
        const f = await window.medseg.getFrameValues(k);
        return f.data[j * f.width + i];
      }, [k, i, j]);
      assert.equal(got, v, `voxel (${i}, ${j}, ${k}) of time point 1`);
    }

    // 2. The API's choice.
    await putFile(page, SERIES, "series.nii.gz");
    const api = await page.evaluate(async () => {
      const f = window.__files["series.nii.gz"];
      const none = await window.medseg.openFile(f).then(() => null, (e) => ({ kind: e.kind, timePoints: e.timePoints, dims: e.dims, message: e.message }));
      const out = await window.medseg.openFile(f, { timePoint: 3 }).then(() => null, (e) => ({ kind: e.kind ?? null, message: e.message }));
      return { none, out, still: await window.medseg.info() };
    });
    log(`API: ${JSON.stringify(api.none)} / ${api.out?.message}`);
    assert.equal(api.none?.kind, "choose-time-point");
    assert.match(api.none?.message ?? "", /3 time points of 96×96×7 voxels: choose one with the timePoint option \(0\.\.2\)/);
    assert.equal(api.none.timePoints, 3);
    assert.deepEqual(api.none.dims, [96, 96, 7]);
    assert.match(api.out?.message ?? "", /time point 3 is outside the 3 time point\(s\) of the file \(0\.\.2\)/);
    assert.deepEqual(api.still.time_point, { index: 1, of: 3 }, "the volume shown stays");

    // 3. A single-slice sequence as a clip.
    await putFile(page, FRAMES, "frames.nii.gz");
    const clip = await page.evaluate(() => window.medseg.openFile(window.__files["frames.nii.gz"]));
    log(`sequence: ${JSON.stringify(clip)}`);
    assert.deepEqual([clip.kind, clip.width, clip.height, clip.frames], ["clip", 128, 128, 4]);
    assert.ok(clip.values && clip.window, "windowed as a volume");
    await until(page, () => document.body.dataset.busy === "" && !document.getElementById("window-row")?.hidden, null, { what: "the window row of the sequence" });
    const f = EXPECTED["frames.nii.gz"];
    const key = await page.evaluate(([k, b]) => window.medseg.addBox(k, 1, b), [f.key_frame, f.box_xyxy]);
    assert.ok(key.area > 500, `a lesion mask on frame ${f.key_frame} (${key.area} px)`);
    const prop = await page.evaluate(() => window.medseg.propagate("both"));
    assert.equal(prop.cancelled, false);
    assert.equal(await page.evaluate(() => document.getElementById("export-nifti")?.hidden), false, "NIfTI export offered");
    const mask = readMask4d(await blobBytes(await page.evaluateHandle(() => window.medseg.exportNifti())));
    assert.deepEqual(mask.dim.slice(0, 5), [4, 128, 128, 1, 4]);
    assert.deepEqual(mask.srow, f.affine.slice(0, 3).map((r) => r.map((v) => Math.fround(v))));
    assert.equal(mask.pixdim[4], Math.fround(0.05), "the time step");
    const plane = 128 * 128;
    for (let t = 0; t < 4; t++) {
      const area = mask.data.subarray(t * plane, (t + 1) * plane).reduce((n, v) => n + (v ? 1 : 0), 0);
      log(`time point ${t}: ${area} px`);
      assert.ok(area > 0, `a mask on time point ${t}`);
    }
    assert.equal(errorsText(errors), "", "no page errors");
  } finally {
    await close();
  }
});
