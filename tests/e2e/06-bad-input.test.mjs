// Bad input: a text file renamed .png, a truncated .nii.gz, an empty file, a volume too
// large for the browser and weights of the wrong model each reject with an Error naming
// the problem, the page shows it, keeps working, and the masks made before stay.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { launch, openPage, log, putFile, putBytes, SHARED, DATA_URL_PATH, errorsText, openCtVolume, loadLiteMedSam, CT_VOLUME as VOL, pickBadFile } from "./lib.mjs";


async function rejection(page, expr, arg) {
  return page.evaluate(
    async ([expr, arg]) => {
      try {
        const f = { open: (n) => window.medseg.openFile(window.__files[n]), model: (n) => window.medseg.loadModel(window.__files[n]), modelAs: ([u, e]) => window.medseg.loadModel(u, { expect: e }) }[expr];
        await f(arg);
        return { ok: true };
      } catch (e) {
        return { ok: false, isError: e instanceof Error, message: e.message };
      }
    },
    [expr, arg],
  );
}

/** A NIfTI-1 header (no voxels) for a uint8 volume of `dims`, 1 mm voxels. */
function niftiHeader(dims) {
  const h = Buffer.alloc(352);
  h.writeInt32LE(348, 0);
  h.writeInt16LE(dims.length, 40);
  dims.forEach((d, i) => h.writeInt16LE(d, 42 + 2 * i));
  h.writeInt16LE(2, 70); // DT_UNSIGNED_CHAR
  h.writeInt16LE(8, 72);
  for (let i = 0; i < 4; i++) h.writeFloatLE(1, 76 + 4 * i);
  h.writeFloatLE(352, 108);
  h.write("n+1\0", 344, "latin1");
  return h;
}

const maskSum = (page) => page.evaluate(async () => (await window.medseg.getMask(8, 1))?.data.reduce((a, b) => a + b, 0) ?? null);

test("bad input gives clear errors and keeps the session", { timeout: 900000 }, async () => {
  const { context, close } = await launch();
  try {
    const { page, errors } = await openPage(context, "?backend=cpu&model=none");
    await loadLiteMedSam(page);
    await openCtVolume(page);
    await page.evaluate(() => window.medseg.addBox(8, 1, [260, 226, 331, 288]));
    const area = await maskSum(page);
    assert.ok(area > 1000);

    const bytes = fs.readFileSync(VOL);
    await putBytes(page, Buffer.from("this is a text file, not an image\n"), "notes.png");
    await putBytes(page, bytes.subarray(0, Math.floor(bytes.length / 3)), "truncated.nii.gz");
    await putBytes(page, Buffer.alloc(0), "empty.nii.gz");
    await putFile(page, path.join(SHARED, "fixtures/sam2-small/fixtures.safetensors"), "not-a-model.safetensors");
    // 1024 × 1024 × 512 voxels: more than a browser can hold (the header alone says so).
    await putBytes(page, niftiHeader([1024, 1024, 512]), "huge.nii");

    /** @type {[string, string | string[], RegExp][]} */
    const cases = [
      ["open", "notes.png", /notes\.png.*not a PNG, JPEG or WebP/i],
      ["open", "truncated.nii.gz", /truncated\.nii\.gz.*(truncated|gzip)/i],
      ["open", "empty.nii.gz", /empty\.nii\.gz.*empty/i],
      ["open", "huge.nii", /huge\.nii.*volume too large: 536870912 voxels exceed the limit of 268435456 \(2\^28\) in the browser/i],
      ["model", "not-a-model.safetensors", /not a model MedSeg knows/i],
      ["modelAs", [`${DATA_URL_PATH}/sam2-small.safetensors`, "lite-medsam"], /wrong model: this file holds a sam2 model, lite-medsam was asked for/i],
    ];
    for (const [kind, arg, pattern] of cases) {
      const r = await rejection(page, kind, arg);
      log(`${kind} ${Array.isArray(arg) ? arg[0] : arg}: ${r.ok ? "accepted!" : r.message}`);
      assert.equal(r.ok, false, `${arg} was accepted`);
      assert.equal(r.isError, true, "rejects with an Error");
      assert.match(r.message, pattern);
      // The session keeps its model, volume and mask.
      assert.equal(await page.evaluate(() => window.medseg.architecture()), "lite-medsam");
      assert.equal(await page.evaluate(() => window.medseg.frameCount()), 16);
      assert.equal(await maskSum(page), area, `the mask on slice 8 changed after ${arg}`);
    }
    // Still works.
    const again = await page.evaluate(() => window.medseg.addBox(9, 1, [262, 228, 330, 286]));
    assert.ok(again.area > 500, `segmenting after the errors: area ${again.area}`);

    // The page, through its own file inputs, shows each error as a message naming the
    // file and the problem, and keeps the volume and mask the script made.
    // The script's mask was not exported: the page asks before another file replaces the
    // volume (`asks`; an empty file is refused before that); opening it anyway fails, and
    // the volume stays.
    /** @type {[string, string, Buffer, RegExp, boolean][]} */
    const ui = [
      ["#file-input", "notes.png", Buffer.from("this is a text file, not an image\n"), /notes\.png.*not a PNG, JPEG or WebP/i, true],
      ["#file-input", "truncated.nii.gz", bytes.subarray(0, Math.floor(bytes.length / 3)), /truncated\.nii\.gz.*(truncated|gzip)/i, true],
      ["#file-input", "empty.nii.gz", Buffer.alloc(0), /empty\.nii\.gz.*empty/i, false],
      ["#model-file", "not-a-model.safetensors", fs.readFileSync(path.join(SHARED, "fixtures/sam2-small/fixtures.safetensors")), /not-a-model\.safetensors.*not a model MedSeg knows/i, false],
    ];
    for (const [input, name, buffer, pattern, asks] of ui) {
      log(`the page shows: ${await pickBadFile(page, input, name, buffer, pattern.source, asks)}`);
      assert.match(await page.evaluate(() => document.getElementById("file-info").textContent), /ct\.nii\.gz/, `the page still shows the volume after ${name}`);
      assert.equal(await maskSum(page), area, `the mask on slice 8 changed after ${name} (page)`);
    }
    assert.match(await page.evaluate(() => document.getElementById("model-state").textContent), /LiteMedSAM/, "the page keeps its model");
    const unexpected = errors.filter((e) => !/notes\.png|truncated|empty|huge|not a model|wrong model/i.test(e));
    assert.deepEqual(unexpected, [], `console errors:${errorsText(unexpected)}`);
  } finally {
    await close();
  }
});
