// The page as a person uses it (CPU backend, the default LiteMedSAM the page loads itself):
// open a CT volume with the file input, draw a box with the mouse on slice 8 (a second
// box, then Undo brings the first back), propagate
// both ways over a few slices with the buttons, export the NIfTI with the button; then a
// synthetic clip, propagated forward, and a correction box that propagates again.
// Screenshots: the volume with its mask overlay, and the clip mid-propagation
// (test-output/screenshots/).
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { launch, openPage, log, screenshot, blobBytes, putBytes, makeSyntheticClip, readNifti, dice, until, imageToClient, drawBox, OUT, errorsText, CT_GT as GT, CT_VOLUME as VOL } from "./lib.mjs";


async function setNumber(page, id, value) {
  await page.fill(`#${id}`, String(value));
  await page.dispatchEvent(`#${id}`, "change");
}

/** Waits until the engine has a mask on `frame` (for the page's first object). */
async function waitMask(page, frame, timeout = 300000) {
  await until(
    page,
    async (f) => {
      const ids = await window.medseg.objects();
      return ids.length > 0 && (await window.medseg.getMask(f, ids[0])) != null;
    },
    frame,
    { timeout, what: `a mask on frame ${frame}` },
  );
}

/** Waits until object `id` has masks on `n` frames and the page is no longer propagating. */
async function waitPropagated(page, n, timeout = 600000) {
  await until(
    page,
    async (n) => {
      const ids = await window.medseg.objects();
      const status = document.getElementById("prop-status")?.textContent || "";
      return ids.length > 0 && (await window.medseg.maskFrames(ids[0])).length >= n && /^(done|idle)/.test(status);
    },
    n,
    { timeout, what: `masks on ${n} frames` },
  );
}

test("the page: volume and clip through the controls", { timeout: 1500000 }, async () => {
  const { context, close } = await launch();
  try {
    const { page, errors } = await openPage(context, "?backend=cpu");
    const arch = await page.evaluate(() => window.medseg.architecture());
    assert.equal(arch, "lite-medsam", "the page loads the default LiteMedSAM by itself");
    // LiteMedSAM takes boxes only: the point tools are not offered.
    assert.deepEqual(
      await page.evaluate(() => [.../** @type {NodeListOf<HTMLButtonElement>} */ (document.querySelectorAll(".tool[data-tool]"))].map((b) => [b.dataset.tool, b.disabled || b.hidden])),
      [["box", false], ["point+", true], ["point-", true]],
    );

    // Volume.
    await page.setInputFiles("#file-input", VOL);
    await page.waitForFunction(() => /16/.test(document.getElementById("frame-total")?.textContent || ""), null, { timeout: 60000 });
    await setNumber(page, "frame-number", 8);
    await page.waitForTimeout(300);
    const to = await imageToClient(page, 512, 512, 1);
    const t0 = Date.now();
    await drawBox(page, to, [260, 226, 331, 288]);
    await waitMask(page, 8);
    const ids = await page.evaluate(() => window.medseg.objects());
    log(`box drawn on slice 8 → mask in ${Date.now() - t0} ms (object ${ids[0]})`);
    // A second box replaces the first; the Undo button brings the first box's mask back.
    const maskOn8 = () => page.evaluate(async (id) => Array.from((await window.medseg.getMask(8, id))?.data ?? []), ids[0]);
    const first = await maskOn8();
    await drawBox(page, to, [240, 200, 350, 310]);
    await until(page, async ([id, n]) => (await window.medseg.getMask(8, id))?.data.reduce((a, b) => a + b, 0) !== n, [ids[0], first.reduce((a, b) => a + b, 0)], { what: "the second box's mask" });
    await page.click("#undo");
    await until(page, () => /Undone/.test(document.getElementById("messages")?.textContent || ""), null, { what: "the undo" });
    assert.deepEqual(await maskOn8(), first, "Undo brings the first box's mask back");
    log("second box on slice 8, then Undo: the first box's mask is back");
    await setNumber(page, "range-from", 7);
    await setNumber(page, "range-to", 9);
    const t1 = Date.now();
    await page.click("#prop-both");
    await waitPropagated(page, 3);
    log(`propagated over slices 7..9 with the buttons in ${Date.now() - t1} ms`);
    await setNumber(page, "frame-number", 8);
    await page.waitForTimeout(800);
    await screenshot(page, "02-volume-mask-overlay.png");

    // Export with the button: a download.
    const [download] = await Promise.all([page.waitForEvent("download", { timeout: 60000 }), page.click("#export-nifti")]);
    const file = await download.path();
    const mask = readNifti(fs.readFileSync(file));
    const gt = readNifti(fs.readFileSync(GT));
    assert.deepEqual(mask.dims, [512, 512, 16]);
    const plane = 512 * 512;
    const d = dice(mask.data.subarray(7 * plane, 10 * plane), gt.data.subarray(7 * plane, 10 * plane));
    log(`downloaded ${download.suggestedFilename()}: Dice vs ground truth on slices 7..9 ${d.toFixed(4)}`);
    assert.ok(d > 0.9, `Dice ${d} on slices 7..9`);

    // This volume is stored as 8-bit (0..255, not HU): the display select offers no CT
    // presets (11-clinician shows a display window changes nothing else). The model's
    // input is changed apart ("Change…"), which segments the prompt again.
    assert.deepEqual(
      await page.evaluate(() => [.../** @type {HTMLSelectElement} */ (document.getElementById("window-select")).options].filter((o) => !o.disabled).map((o) => o.value)),
      ["", "mr", "none", "custom"],
      "no CT presets for values that are not Hounsfield units",
    );
    await page.click("#model-window-change");
    await page.click("#dialog button:text('MR percentiles')");
    await page.waitForFunction(() => /now sees the volume through MR percentiles; 1 prompted slice segmented again/.test(document.getElementById("messages").textContent), null, { timeout: 300000 });
    await setNumber(page, "range-from", 8);
    await setNumber(page, "range-to", 9);
    await page.click("#prop-forward");
    await page.waitForFunction(
      () => /^done: /.test(document.getElementById("prop-status").textContent) || /error/.test(document.getElementById("prop-status").textContent),
      null,
      { timeout: 300000 },
    );
    // Slice 9: slice 8 keeps the mask its box (segmented again with MR) gave.
    assert.match(await page.textContent("#prop-status"), /^done: 1 slice in/, "propagation after the window change");
    log("MR model input: prompt segmented again, propagated again to slice 9");

    // Clip.
    const N = 10;
    const centres = Array.from({ length: N }, (_, i) => [140 + 3 * i, 110]);
    await makeSyntheticClip(page, { N, W: 320, H: 240, R: 30, centres });
    const webm = await blobBytes(await page.evaluateHandle(() => window.__clip));
    await page.setInputFiles("#file-input", { name: "synthetic.webm", mimeType: "video/webm", buffer: webm });
    // The volume's last propagation was not exported: the page asks first.
    await page.click("#dialog button:has-text('without saving')");
    await page.waitForFunction(() => /of\s*(9|10|11)\b/.test(document.getElementById("frame-total")?.textContent || ""), null, { timeout: 60000 });
    const info = await page.evaluate(() => window.medseg.info());
    log(`clip opened through the page: ${info.frames} frames ${info.width}×${info.height}`);
    await setNumber(page, "frame-number", 0);
    await page.waitForTimeout(300);
    const toClip = await imageToClient(page, info.width, info.height, 1);
    await drawBox(page, toClip, [100, 70, 182, 152]);
    await waitMask(page, 0);
    await page.evaluate(() => {
      window.__frames = 0;
      window.medseg.on("frame", () => window.__frames++);
    });
    await page.click("#prop-forward");
    await page.waitForFunction((n) => window.__frames >= n, Math.floor(info.frames / 2), { timeout: 600000 });
    await screenshot(page, "03-clip-mid-propagation.png");
    await waitPropagated(page, info.frames);
    log("clip propagated through every frame with the Forward button");

    // A correction box on a late frame propagates again from there to the end by itself.
    const K = info.frames - 3;
    await setNumber(page, "frame-number", K);
    await page.waitForTimeout(300);
    await page.evaluate(() => {
      window.__again = [];
      window.medseg.on("frame", (e) => window.__again.push(e.frame));
    });
    const cx = 140 + 3 * K;
    await drawBox(page, toClip, [cx - 41, 70, cx + 41, 152]);
    const said = await page.waitForFunction(
      (k) => [...document.querySelectorAll("#messages .msg-text")].find((e) => e.textContent.includes(`from the correction on frame ${k}`))?.textContent,
      K,
      { timeout: 600000 },
    );
    log(`correction on frame ${K}: ${await said.jsonValue()}`);
    const again = await page.evaluate(() => window.__again);
    // From the frame after the correction (which keeps its box's mask) to the end.
    assert.deepEqual(again, Array.from({ length: info.frames - K - 1 }, (_, i) => K + 1 + i), "re-propagated frames");

    // The clip's exports with the buttons: the PNG masks (a zip with one per frame) and the
    // overlay video (MediaRecorder: WebM, or MP4 where only that records).
    const [zipDl] = await Promise.all([page.waitForEvent("download", { timeout: 60000 }), page.click("#export-png")]);
    const zip = fs.readFileSync(await zipDl.path());
    const names = zip.toString("latin1").match(/mask_\d{5}\.png/g) ?? [];
    assert.equal(zip.subarray(0, 2).toString(), "PK", "a zip");
    assert.equal(new Set(names).size, info.frames, `one PNG per frame in ${zipDl.suggestedFilename()}`);
    const [videoDl] = await Promise.all([page.waitForEvent("download", { timeout: 120000 }), page.click("#export-video")]);
    const video = fs.readFileSync(await videoDl.path());
    fs.writeFileSync(path.join(OUT, videoDl.suggestedFilename()), video);
    const isWebm = video.subarray(0, 4).equals(Buffer.from([0x1a, 0x45, 0xdf, 0xa3]));
    const isMp4 = video.subarray(4, 8).toString() === "ftyp";
    log(`exports: ${zipDl.suggestedFilename()} (${zip.length} bytes), ${videoDl.suggestedFilename()} (${video.length} bytes)`);
    assert.ok(isWebm || isMp4, `${videoDl.suggestedFilename()} is a WebM or MP4 file`);
    // The recorded overlay opens as a clip again (the page decodes its own export).
    await putBytes(page, video, "overlay.webm");
    const reopened = await page.evaluate(() => window.medseg.openFile(window.__files["overlay.webm"]));
    assert.equal(reopened.kind, "clip");
    assert.ok(reopened.frames >= 1, `${reopened.frames} frames in the overlay video`);
    // Its first frame shows the disk under the orange mask overlay: red well above blue
    // at the disk's centre, grey (red = blue) in a corner.
    const [centre, corner] = await page.evaluate(async ([x, y]) => {
      const f = await window.medseg.getFrame(0);
      const at = (px, py) => {
        const p = 4 * (py * f.width + px);
        return f.data[p] - f.data[p + 2];
      };
      return [at(x, y), at(5, 5)];
    }, centres[0]);
    log(`overlay video frame 0: red - blue ${centre} at the disk, ${corner} in a corner`);
    assert.ok(centre > 40 && Math.abs(corner) < 20, `overlay colour in the exported video (${centre}, ${corner})`);
    assert.deepEqual(errors, [], `console errors:${errorsText(errors)}`);
  } finally {
    await close();
  }
});
