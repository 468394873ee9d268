// Teaching the model in the page, as a user does it (CPU backend, the default LiteMedSAM,
// mouse and file inputs): a CT lesion volume and its label file opened, the Teach button
// with its progress, the tuned model segmenting a box drawn with the mouse, "Download
// tuned model", and the CLI given that download (`medseg track --range K,K`) making the
// same mask on the slice (IoU ≥ 0.99). Bad input: another case's labels, labels without
// foreground, a loss that stops being a number, a run too large for the engine: each a
// clear message, the page usable and the models as they were.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { execFileSync } from "node:child_process";
import { launch, openPage, log, until, imageToClient, drawBox, firstObjectMasked, errorsText, screenshot, readNifti, putBytes, OUT, SHARED, CT_VOLUME as VOL, CT_GT as GT } from "./lib.mjs";

const BIN = process.env.MEDSEG_BIN;
if (!BIN) throw new Error("MEDSEG_BIN is not set: run the browser tests with scripts/test-browser.sh");

const SLICES = 16;
const KEY = 8;
/** @type {[number, number, number, number]} */
const BOX = [260, 226, 331, 288];
const OTHER_GT = path.join(SHARED, "data/ct-lesion/CT_Lesion_000002_03_01_035-047_gt.nii.gz");

/** A message among the page's newest three once one matches `re`; returns its text. */
async function waitMessage(page, re, timeout = 60000) {
  try {
    return await until(
      page,
      (src) => {
        const texts = Array.from(document.querySelectorAll("#messages .msg-text"), (m) => m.textContent || "").slice(0, 3);
        return texts.find((t) => new RegExp(src).test(t)) ?? false;
      },
      re.source,
      { timeout, what: `a message matching ${re}` },
    );
  } catch (err) {
    const recent = await page.evaluate(() => Array.from(document.querySelectorAll("#messages .msg-text"), (m) => m.textContent).slice(0, 4));
    throw new Error(`${err.message}; the newest messages: ${recent.join(" | ")}`);
  }
}

/** The label file of the test case with every voxel 0 (same header). */
function emptyLabels() {
  const b = zlib.gunzipSync(fs.readFileSync(GT));
  const voxOffset = Math.round(b.readFloatLE(108));
  b.fill(0, voxOffset);
  return b;
}

/** An uncompressed NIfTI-1 of uint8 voxels `data` (x fastest), 1 mm voxels. */
function nifti([nx, ny, nz], data) {
  const h = Buffer.alloc(352);
  h.writeInt32LE(348, 0);
  [3, nx, ny, nz, 1, 1, 1, 1].forEach((v, i) => h.writeInt16LE(v, 40 + 2 * i));
  h.writeInt16LE(2, 70); // uint8
  h.writeInt16LE(8, 72);
  [1, 1, 1, 1, 1, 1, 1, 1].forEach((v, i) => h.writeFloatLE(v, 76 + 4 * i));
  h.writeFloatLE(352, 108);
  h.write("n+1\0", 344, "latin1");
  return Buffer.concat([h, Buffer.from(data)]);
}

test("teach in the page from a label file, download the tuned model, the CLI gives the same mask", { timeout: 1200000 }, async () => {
  const dir = path.join(OUT, "e2e-data");
  fs.mkdirSync(dir, { recursive: true });
  const { context, close } = await launch();
  try {
    const { page, errors, requests } = await openPage(context, "?backend=cpu");
    assert.equal(await page.evaluate(() => window.medseg.architecture()), "lite-medsam");
    await page.setInputFiles("#file-input", VOL);
    await page.waitForFunction((n) => new RegExp(`${n}`).test(document.getElementById("frame-total")?.textContent || ""), SLICES, { timeout: 60000 });
    assert.equal(await page.isDisabled("#open-labels"), false, "a label file can be opened over the volume");
    assert.equal(await page.isDisabled("#teach-start"), true, "nothing to learn from yet");

    // Another case's labels (13 slices) over this volume (16): a clear message, nothing opened.
    await page.setInputFiles("#labels-input", OTHER_GT);
    const mismatch = await waitMessage(page, /label file/);
    assert.match(mismatch, /13 slices.*16 slices.*must match/);
    // Labels without foreground.
    await page.setInputFiles("#labels-input", { name: "empty_gt.nii", mimeType: "application/octet-stream", buffer: emptyLabels() });
    const empty = await waitMessage(page, /no foreground/);
    log(`refused: ${mismatch} | ${empty}`);
    assert.match(await page.textContent("#labels-info"), /^No label file/);

    // The case's own labels.
    await page.setInputFiles("#labels-input", GT);
    await until(page, () => /7 labelled slices/.test(document.getElementById("labels-info")?.textContent || ""), null, { timeout: 60000, what: "the labels' summary" });
    log(`labels: ${await page.textContent("#labels-info")}`);
    assert.doesNotMatch(await page.textContent("#notices"), /label file/, "the refusals leave the notice line once a label file opens");

    // Teach: two epochs, no flips (7 embeddings, not 28: this is a CPU in wasm), every
    // labelled slice learnt from (no hold-out: the last epoch is kept, trained heads).
    await page.uncheck("#teach-validation");
    await page.fill("#teach-epochs", "2");
    await page.uncheck("#teach-augment");
    await page.evaluate(() => {
      window.__teach = { phases: [], statuses: [] };
      window.medseg.on("finetune", ({ progress }) => {
        window.__teach.phases.push(progress.phase);
        // What the user reads on the status line after the step was shown.
        setTimeout(() => window.__teach.statuses.push(document.getElementById("teach-status")?.textContent || ""), 0);
      });
    });
    const t0 = Date.now();
    const requestsBefore = requests.length;
    await page.click("#teach-start");
    const status = await until(page, () => /^done/.test(document.getElementById("teach-status")?.textContent || "") && document.getElementById("teach-status")?.textContent, null, {
      timeout: 900000,
      what: "the run's end",
    });
    const taught = await waitMessage(page, /^Taught/);
    log(`${status} (${((Date.now() - t0) / 1000).toFixed(0)} s): ${taught}`);
    const seen = await page.evaluate(() => window.__teach);
    for (const phase of ["embedding", "training", "done"]) assert.ok(seen.phases.includes(phase), `the run went through ${phase}`);
    assert.ok(seen.statuses.some((t) => /^training · epoch 2 of 2 .*left/.test(t)), `a training status with the time left: ${seen.statuses.join(" | ")}`);
    log(`status lines: ${[...new Set(seen.statuses.map((t) => t.replace(/[\d.]+/g, "#")))].join(" | ")}`);
    assert.match(taught, /2 epochs.*Segmenting with the tuned model/);
    assert.equal(await page.isChecked("#use-tuned"), true);
    assert.match(await page.textContent("#model-state"), /tuned here/);
    const state = await page.evaluate(() => window.medseg.teachState());
    assert.equal(state.using, "tuned");
    assert.equal(state.report.epochs_run, 2);
    assert.equal(state.report.train.slices, 7);
    assert.equal(state.report.best_epoch, 2);

    // A box with the mouse on the key slice: the tuned model's mask.
    await page.fill("#frame-number", String(KEY));
    await page.dispatchEvent("#frame-number", "change");
    await page.waitForTimeout(300);
    await drawBox(page, await imageToClient(page, 512, 512, 1), BOX);
    const id = await firstObjectMasked(page, KEY);
    const inPage = await page.evaluate(async ([k, id]) => Array.from((await window.medseg.getMask(k, id)).data), [KEY, id]);
    await screenshot(page, "teach-tuned.png");

    // Download the tuned model with the button.
    const [download] = await Promise.all([page.waitForEvent("download", { timeout: 120000 }), page.click("#teach-download")]);
    assert.match(download.suggestedFilename(), /^lite_medsam-tuned\.safetensors$/);
    const tuned = path.join(dir, download.suggestedFilename());
    fs.copyFileSync(await download.path(), tuned);
    // Nothing of the run went anywhere: no request left the page from the Teach click to
    // the download but same-origin ones (none are expected), and the service worker's
    // caches hold nothing of the tuned model.
    const during = requests.slice(requestsBefore).map((r) => r.url);
    log(`requests from Teach to the download: ${during.length ? during.join(", ") : "none"}`);
    const origin = new URL(page.url()).origin;
    assert.deepEqual(during.filter((u) => !u.startsWith(origin) && !u.startsWith("blob:")), []);
    const cached = await page.evaluate(async () => (await Promise.all((await caches.keys()).map(async (k) => (await (await caches.open(k)).keys()).map((r) => r.url)))).flat());
    assert.deepEqual(cached.filter((u) => /tuned|blob:/.test(u)), [], "nothing of the tuned model in Cache Storage");
    const headerLen = Number(fs.readFileSync(tuned).readBigUInt64LE(0));
    const meta = JSON.parse(fs.readFileSync(tuned).subarray(8, 8 + headerLen).toString("utf8")).__metadata__;
    assert.ok(meta.medseg_finetune && !meta.medseg_finetune.includes("CT_Lesion"), "the record, without the file's name");

    // The CLI with the downloaded model, the same box on the same slice.
    const out = path.join(dir, "tuned-cli.nii.gz");
    execFileSync(BIN, ["track", "--model", tuned, "--input", VOL, "--frame", String(KEY), "--box", BOX.join(","), "--range", `${KEY},${KEY}`, "--out", out], { stdio: ["ignore", "pipe", "pipe"] });
    const cli = readNifti(fs.readFileSync(out));
    const plane = 512 * 512;
    const cliMask = cli.data.subarray(KEY * plane, (KEY + 1) * plane);
    let inter = 0;
    let union = 0;
    for (let i = 0; i < plane; i++) {
      const a = inPage[i] > 0;
      const b = cliMask[i] > 0;
      if (a && b) inter++;
      if (a || b) union++;
    }
    const iou = inter / Math.max(1, union);
    log(`slice ${KEY}: page (tuned) ${inPage.reduce((a, b) => a + b, 0)} px, CLI (downloaded model) ${union && cliMask.reduce((a, b) => a + (b > 0 ? 1 : 0), 0)} px, IoU ${iou.toFixed(6)}`);
    assert.ok(iou >= 0.99, `IoU ${iou}`);

    // Base ↔ tuned with the radios.
    await page.check("#use-base");
    await waitMessage(page, /^Segmenting with the base model/);
    assert.equal((await page.evaluate(() => window.medseg.teachState())).using, "base");
    await page.check("#use-tuned");
    await waitMessage(page, /^Segmenting with the tuned model/);

    // Teach again with flips (28 embeddings), cancelled with the button during the
    // embedding: the tuned model stays as it was.
    await page.check("#teach-augment");
    await page.click("#teach-start");
    await until(page, () => /^embedding [1-9]/.test(document.getElementById("teach-status")?.textContent || ""), null, { timeout: 120000, what: "the embedding under way" });
    await screenshot(page, "teach-running.png");
    await page.click("#teach-cancel");
    const cancelled = await waitMessage(page, /^Teaching cancelled/, 120000);
    log(`cancelled: ${cancelled}`);
    const kept = await page.evaluate(() => window.medseg.teachState());
    assert.equal(kept.using, "tuned");
    assert.equal(kept.tunedReport.epochs_run, 2);
    await page.uncheck("#teach-augment");

    // A loss that is not a number (a script asks for an absurd learning rate): the run
    // stops naming the step; the tuned model and the page stay.
    const nan = await page.evaluate(() =>
      window.medseg.finetune({ epochs: 2, lr: 1e30, augment: false, validation: false }).then(
        () => "resolved",
        (e) => e.message,
      ),
    );
    log(`absurd learning rate: ${nan}`);
    assert.match(nan, /not a number at step \d+/);
    const after = await page.evaluate(() => window.medseg.teachState());
    assert.equal(after.tuned, true);
    assert.equal(after.using, "tuned");
    assert.equal(after.tunedReport.epochs_run, 2, "the tuned model's record is the good run's");
    assert.equal(after.report.stopped.reason, "failed");

    // The downloaded file, opened as a model (Model ▸ Open a model file…), gives the
    // tuned mask: it is now the base of further teaching.
    await page.setInputFiles("#model-file", tuned);
    await waitMessage(page, /^Model ready: lite_medsam-tuned\.safetensors/, 120000);
    assert.equal(await page.isHidden("#teach-result"), true, "a new base: no tuned model of it yet");
    await page.fill("#frame-number", String(KEY));
    await page.dispatchEvent("#frame-number", "change");
    await page.waitForTimeout(300);
    // The box's answer: the engine's "prompt" event.
    await page.evaluate(() => {
      window.__prop = new Promise((resolve) => {
        const off = window.medseg.on("prompt", (d) => {
          off();
          resolve(d);
        });
      });
    });
    await drawBox(page, await imageToClient(page, 512, 512, 1), BOX);
    const reloaded = await page.evaluate(
      async ([k, id]) => {
        await window.__prop;
        return Array.from((await window.medseg.getMask(k, id)).data);
      },
      [KEY, id],
    );
    assert.deepEqual(reloaded, inPage, "the downloaded model, loaded in the page, gives the tuned mask bit for bit");
    log("the downloaded model, opened in the page, gives the same mask bit for bit");

    // A run too large for the browser's engine: 200 labelled slices with flips.
    const [nx, ny, nz] = [16, 16, 200];
    const img = new Uint8Array(nx * ny * nz).map((_, i) => (i * 7) % 251);
    const lab = new Uint8Array(nx * ny * nz).map((_, i) => Number(i % nx > 3 && i % nx < 12 && Math.floor(i / nx) % ny > 3 && Math.floor(i / nx) % ny < 12));
    await putBytes(page, nifti([nx, ny, nz], img), "big.nii");
    await page.evaluate(() => window.medseg.openFile(window.__files["big.nii"]));
    await page.waitForFunction(() => /200/.test(document.getElementById("frame-total")?.textContent || ""), null, { timeout: 60000 });
    await page.setInputFiles("#labels-input", { name: "big_gt.nii", mimeType: "application/octet-stream", buffer: nifti([nx, ny, nz], lab) });
    await until(page, () => /200 labelled slices/.test(document.getElementById("labels-info")?.textContent || ""), null, { timeout: 60000, what: "the big labels" });
    await page.check("#teach-augment");
    await page.click("#teach-start");
    const tooLarge = await waitMessage(page, /image embeddings/);
    log(`too large: ${tooLarge}`);
    assert.match(tooLarge, /augmentation/);
    await until(page, () => document.body.dataset.busy === "", null, { timeout: 30000, what: "the page idle again" });
    assert.equal((await page.evaluate(() => window.medseg.teachState())).running, false);
    await screenshot(page, "teach-too-large.png");
    assert.deepEqual(errors, [], `console errors:${errorsText(errors)}`);
  } finally {
    await close();
  }
});
