// The real flow on a CT volume with LiteMedSAM, on the CPU backend (SwiftShader's WebGPU
// is far too slow for TinyViT): open the NIfTI, box on key slice 8, propagate both ways
// over z 5..11, export the mask as NIfTI and compare it with the ground truth and with the
// official LiteMedSAM recipe's masks.
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import fs from "node:fs";
import { launch, openPage, log, blobBytes, readNifti, readSafetensors, dice, SHARED, OUT, DATA_URL_PATH, errorsText, loadLiteMedSam, CT_CASE as CASE, CT_GT as GT, CT_VOLUME as VOL } from "./lib.mjs";

const REF_DICE = 0.9228324062068677; // dice3d_vs_gt of ../shared/fixtures/lite-medsam/ct-lesion.json
const KEY = 8;
const BOX = [260, 226, 331, 288];
const RANGE = [5, 11];

test("CT lesion: LiteMedSAM box + propagation, NIfTI export (CPU backend)", { timeout: 1200000 }, async () => {
  const { context, close } = await launch();
  try {
    const { page, errors } = await openPage(context, "?backend=cpu&model=none");
    assert.equal(await page.evaluate(() => window.medseg.backend()), "cpu");
    const load = await loadLiteMedSam(page);
    assert.equal(load.architecture, "lite-medsam");
    log(`LiteMedSAM loaded (${(load.bytes / 1e6).toFixed(1)} MB) in ${(load.downloadMs + load.loadMs).toFixed(0)} ms`);

    const info = await page.evaluate(async (url) => {
      const r = await fetch(url);
      const file = new File([await r.blob()], "CT_Lesion_000001_02_01_008-023.nii.gz");
      return window.medseg.openFile(file);
    }, `${DATA_URL_PATH}/ct1.nii.gz`);
    assert.deepEqual([info.kind, info.width, info.height, info.frames], ["volume", 512, 512, 16]);
    assert.equal(await page.evaluate(() => window.medseg.frameCount()), 16);

    // Slice k is x = i (columns), y = j (rows): the displayed frame is the NIfTI slice.
    const vol = readNifti(fs.readFileSync(VOL));
    const frame = await page.evaluate(async (k) => {
      const f = await window.medseg.getFrame(k);
      const grey = new Array(f.width * f.height);
      for (let p = 0; p < grey.length; p++) grey[p] = f.data[4 * p];
      return { width: f.width, height: f.height, grey };
    }, KEY);
    const plane = 512 * 512;
    let same = 0;
    for (let p = 0; p < plane; p++) if (frame.grey[p] === vol.data[KEY * plane + p]) same++;
    assert.equal(same, plane, "getFrame(8) is slice 8 of the NIfTI, row j / column i");

    const t0 = Date.now();
    const key = await page.evaluate(([k, b]) => window.medseg.addBox(k, 1, b), [KEY, BOX]);
    log(`key slice ${KEY}: area ${key.area} px, iou ${key.iou.toFixed(3)}, ${Date.now() - t0} ms`);
    assert.ok(key.area > 1000, "a lesion mask on the key slice");
    const t1 = Date.now();
    const prop = await page.evaluate((r) => window.medseg.propagate("both", { range: r }), RANGE);
    log(`propagation both ways over z ${RANGE}: ${prop.frames} slices in ${Date.now() - t1} ms (${prop.msPerFrame.toFixed(0)} ms/slice)`);
    assert.equal(prop.cancelled, false);
    const frames = await page.evaluate(() => window.medseg.maskFrames(1));
    assert.deepEqual(frames, [5, 6, 7, 8, 9, 10, 11]);

    // Export and compare.
    const bytes = await blobBytes(await page.evaluateHandle(() => window.medseg.exportNifti()));
    fs.mkdirSync(OUT, { recursive: true });
    fs.writeFileSync(path.join(OUT, `${CASE}_mask.nii.gz`), bytes);
    const mask = readNifti(bytes);
    const gt = readNifti(fs.readFileSync(GT));
    assert.deepEqual(mask.dims, vol.dims, "mask dims = volume dims");
    assert.deepEqual(mask.pixdim.slice(1, 4), vol.pixdim.slice(1, 4), "mask voxel size = volume's");
    assert.deepEqual(mask.srow, vol.srow, "mask sform = volume's");
    assert.deepEqual([mask.qformCode, mask.sformCode], [vol.qformCode, vol.sformCode]);
    const d = dice(mask.data, gt.data);
    log(`exported NIfTI: Dice vs ground truth ${d.toFixed(4)} (official LiteMedSAM recipe: ${REF_DICE.toFixed(4)})`);
    assert.ok(Math.abs(d - REF_DICE) <= 0.01, `Dice ${d} not within 0.01 of ${REF_DICE}`);

    // Against the official recipe's masks, slice by slice (npz layout [z][row j][column i]).
    const ref = readSafetensors(path.join(SHARED, "fixtures/lite-medsam/ct-lesion.safetensors"), [`${CASE}.mask3d_lesion_range`]);
    const ref3d = ref[`${CASE}.mask3d_lesion_range`].data;
    const ours = mask.data.subarray(RANGE[0] * plane, (RANGE[1] + 1) * plane);
    const dRef = dice(ours, ref3d);
    log(`exported NIfTI vs the official recipe's 3-D mask over z ${RANGE}: Dice ${dRef.toFixed(4)}`);
    assert.ok(dRef > 0.98, `Dice vs the official recipe ${dRef}`);

    const m8 = await page.evaluate(async (k) => {
      const m = await window.medseg.getMask(k, 1);
      return Array.from(m.data);
    }, KEY);
    let agree = 0;
    for (let p = 0; p < plane; p++) if ((m8[p] > 0) === (mask.data[KEY * plane + p] > 0)) agree++;
    assert.equal(agree, plane, "getMask(8) = slice 8 of the export (row j, column i)");

    // PNG export of a slice.
    const png = await blobBytes(await page.evaluateHandle((k) => window.medseg.exportPng(k, 1), KEY));
    assert.equal(png.subarray(1, 4).toString(), "PNG");

    // A model input window chosen by a script shows in the page (the display window is the page's own).
    await page.evaluate(() => window.medseg.setWindow("bone"));
    assert.equal(await page.textContent("#model-window"), "bone");

    assert.deepEqual(errors, [], `console errors:${errorsText(errors)}`);
  } finally {
    await close();
  }
});
