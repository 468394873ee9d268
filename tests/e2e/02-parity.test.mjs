// Parity in the browser, on WebGPU and on the CPU backend (its threaded module): the
// scaled-down SAM 2.1 of ../shared/fixtures/sam2-small gives the official implementation's
// mask logits for a box on image.png (SAM2ImagePredictor, its embedding made ahead by
// prepareFrame) and through the 4-frame video trace.
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { launch, openPage, log, putFile, readSafetensors, maxAbsDiff, SHARED, DATA_URL_PATH, errorsText, openFrameFolder } from "./lib.mjs";

const FIX = path.join(SHARED, "fixtures/sam2-small");
const TOL = 1e-3;
const fx = readSafetensors(path.join(FIX, "fixtures.safetensors"), [
  "predictor.box.in.box_xyxy_orig",
  "predictor.box.out.masks_logits",
  "video.in.box_frame0",
  "video.add_box.out.video_res_masks",
  ...[0, 1, 2, 3].map((f) => `video.frame0${f}.out.video_res_masks`),
]);

for (const backend of ["webgpu", "cpu"]) {
  test(`sam2-small parity on ${backend}`, { timeout: 900000 }, async () => {
    const { context, close } = await launch();
    try {
      const { page, errors } = await openPage(context, `?backend=${backend}&model=none`);
      assert.equal(await page.evaluate(() => window.medseg.backend()), backend);
      // The CPU backend runs on the threaded module (medseg serve isolates the page): the
      // oracle parity holds there; tests/e2e/14-threads.test.mjs compares it with the
      // single-threaded module.
      const [threads, cores] = await page.evaluate(async () => [await window.medseg.threads(), navigator.hardwareConcurrency]);
      assert.equal(threads, backend === "cpu" ? Math.min(cores, 8) : 1);

      const load = await page.evaluate((url) => window.medseg.loadModel(url), `${DATA_URL_PATH}/sam2-small.safetensors`);
      assert.equal(load.architecture, "sam2");
      log(`${backend}: model loaded in ${(load.downloadMs + load.loadMs).toFixed(0)} ms`);

      // Image predictor.
      const box = Array.from(fx["predictor.box.in.box_xyxy_orig"].data);
      assert.deepEqual(box.map((v) => +v.toFixed(4)), [32, 28.8, 89.6, 76.8]);
      await putFile(page, path.join(FIX, "image.png"), "image.png");
      const info = await page.evaluate(() => window.medseg.openFile(window.__files["image.png"]));
      assert.deepEqual([info.kind, info.width, info.height, info.frames], ["image", 128, 96, 1]);
      // The embedding made ahead (as the page does for the frame on screen) is the one the
      // box then uses: the logits below must still match.
      const prep = await page.evaluate(async () => [await window.medseg.prepareFrame(0), await window.medseg.prepareFrame(0)]);
      // (On WebGPU the page itself may have embedded the frame on screen first.)
      const computedWant = backend === "cpu" ? [true, false] : [prep[0].computed, false];
      assert.deepEqual(prep.map((p) => p.computed), computedWant, "prepareFrame computes once");
      const t0 = Date.now();
      const res = await page.evaluate((box) => window.medseg.addBox(0, 1, box), box);
      const ms = Date.now() - t0;
      const logits = await page.evaluate(async () => Array.from(await window.medseg.getLogits(0, 1)));
      const want = fx["predictor.box.out.masks_logits"].data;
      assert.equal(logits.length, want.length);
      const err = maxAbsDiff(logits, want);
      log(`${backend}: image box → logits max |Δ| ${err.toExponential(2)} (tolerance ${TOL}), area ${res.area}, ${ms} ms`);
      assert.ok(err <= TOL, `image predictor logits differ by ${err}`);
      const mask = await page.evaluate(async () => {
        const m = await window.medseg.getMask(0, 1);
        return { width: m.width, height: m.height, sum: m.data.reduce((a, b) => a + b, 0) };
      });
      assert.deepEqual([mask.width, mask.height], [128, 96]);
      assert.equal(mask.sum, Array.from(want).filter((v) => v > 0).length, "mask = logits > 0");

      // Video trace: frames_png as a clip, box on frame 0, propagate forward.
      const clip = await openFrameFolder(page, path.join(FIX, "frames_png"));
      assert.deepEqual([clip.kind, clip.frames, clip.width, clip.height], ["clip", 4, 128, 96]);
      await page.evaluate(() => window.medseg.keepLogits(true));
      const vbox = Array.from(fx["video.in.box_frame0"].data);
      await page.evaluate((b) => window.medseg.addBox(0, 1, b), vbox);
      const add = await page.evaluate(async () => Array.from(await window.medseg.getLogits(0, 1)));
      let worst = maxAbsDiff(add, fx["video.add_box.out.video_res_masks"].data);
      const t1 = Date.now();
      const prop = await page.evaluate(() => window.medseg.propagate("forward"));
      log(`${backend}: video propagation ${prop.frames} frames in ${Date.now() - t1} ms (${prop.msPerFrame.toFixed(0)} ms/frame)`);
      assert.equal(prop.frames, 4);
      for (let f = 0; f < 4; f++) {
        const got = await page.evaluate(async (f) => Array.from(await window.medseg.getLogits(f, 1)), f);
        const e = maxAbsDiff(got, fx[`video.frame0${f}.out.video_res_masks`].data);
        worst = Math.max(worst, e);
        assert.ok(e <= TOL, `video frame ${f} logits differ by ${e}`);
      }
      log(`${backend}: video trace (add box + 4 frames) max |Δ| ${worst.toExponential(2)}`);
      assert.deepEqual(errors, [], `console errors:${errorsText(errors)}`);
    } finally {
      await close();
    }
  });
}
