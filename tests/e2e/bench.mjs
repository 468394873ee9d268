// Browser benchmark (scripts/bench-browser.sh): encoder, decoder and propagation time per
// frame of each model on each backend, in headless Chromium, and the time from a box to
// its mask (addBox through the worker) on a frame not yet embedded ("box→mask") and on a
// frame embedded ahead (prepareFrame, as the page does for the frame on screen). WebGPU
// there is SwiftShader (a CPU implementation): its numbers say nothing about a real GPU.
//   MEDSEG_BENCH_ITERS (default 3) encoder/decoder runs after a warm-up run;
//   MEDSEG_BENCH_BACKENDS (default "webgpu,cpu"); MEDSEG_BENCH_MODELS ("lite,sam2-small");
//   MEDSEG_BENCH_WEBGPU_LITE=1 also times LiteMedSAM on WebGPU, which SwiftShader runs at
//   many minutes per encoder pass (skipped by default). MEDSEG_BENCH_T512=FILE (given to
//   scripts/bench-browser.sh) adds a medsam2-t512 checkpoint ("t512", CPU backend only:
//   SwiftShader would take hours), propagated over the CT volume like LiteMedSAM.
import path from "node:path";
import { launch, openPage, SHARED, DATA_URL_PATH, LITE_URL, openCtVolume, openFrameFolder } from "./lib.mjs";

const iters = Number(process.env.MEDSEG_BENCH_ITERS || 3);
const backends = (process.env.MEDSEG_BENCH_BACKENDS || "webgpu,cpu").split(",");
const T512_URL = process.env.MEDSEG_BENCH_T512_URL;
const models = (process.env.MEDSEG_BENCH_MODELS || `lite,sam2-small${T512_URL ? ",t512" : ""}`).split(",");
const FIX = path.join(SHARED, "fixtures/sam2-small");

const rows = [];
const t00 = Date.now();
const stage = (msg) => console.error(`[bench ${((Date.now() - t00) / 1000).toFixed(0)} s] ${msg}`);
for (const backend of backends) {
  for (const model of models) {
    if (backend === "webgpu" && model === "lite" && process.env.MEDSEG_BENCH_WEBGPU_LITE !== "1") {
      rows.push({ backend, model: "lite-medsam (lite)", skipped: "SwiftShader: minutes per encoder pass (MEDSEG_BENCH_WEBGPU_LITE=1 to run)" });
      continue;
    }
    if (backend === "webgpu" && model === "t512") {
      rows.push({ backend, model: "medsam2-t512 (t512)", skipped: "SwiftShader: hours per frame" });
      continue;
    }
    stage(`${backend} / ${model}`);
    const { context, close } = await launch();
    try {
      const { page } = await openPage(context, `?backend=${backend}&model=none`);
      const url = { lite: LITE_URL, t512: T512_URL }[model] ?? `${DATA_URL_PATH}/sam2-small.safetensors`;
      const load = await page.evaluate((u) => window.medseg.loadModel(u), url);
      stage(`loaded ${load.architecture}; encoder/decoder runs`);
      const b = await page.evaluate((n) => window.medseg.bench({ iters: n }), iters);
      stage(`encoder ${b.encoderMs.toFixed(0)} ms, decoder ${b.decoderMs.toFixed(0)} ms; propagation`);
      let prop;
      let box;
      if (model === "lite" || model === "t512") {
        // The CT case: key slice 8, both ways over z 5..11 (WebGPU: 7..9, SwiftShader is slow).
        await openCtVolume(page);
        box = await timeBox(page, 8, [260, 226, 331, 288]);
        const range = backend === "webgpu" ? [7, 9] : [5, 11];
        prop = await page.evaluate((r) => window.medseg.propagate("both", { range: r }), range);
        prop.what = `CT 512², z ${range[0]}..${range[1]}`;
      } else {
        await openFrameFolder(page, path.join(FIX, "frames_png"));
        box = await timeBox(page, 0, [30, 20, 90, 70]);
        prop = await page.evaluate(() => window.medseg.propagate("forward"));
        prop.what = "4 frames 128×96";
      }
      rows.push({
        backend,
        model: `${load.architecture} (${model}, ${load.imageSize}px)`,
        load: load.downloadMs + load.loadMs,
        firstEncoder: b.firstEncoderMs,
        encoder: b.encoderMs,
        decoder: b.decoderMs,
        boxCold: box.cold,
        boxPrepared: box.prepared,
        propagation: prop.msPerFrame,
        what: `${prop.frames} frames: ${prop.what}`,
      });
      console.log(JSON.stringify(rows.at(-1)));
    } finally {
      await close();
    }
  }
}
/**
 * Box → mask on `frame` as a page script sees it: first on a frame not embedded yet, then
 * (the same box again) with the frame's embedding already made.
 */
function timeBox(page, frame, box) {
  return page.evaluate(
    async ([k, b]) => {
      const t0 = performance.now();
      await window.medseg.addBox(k, 1, b);
      const cold = performance.now() - t0;
      const prep = await window.medseg.prepareFrame(k);
      if (prep.computed) throw new Error("the frame's embedding was not kept after its prompt");
      const t1 = performance.now();
      await window.medseg.addBox(k, 1, b);
      return { cold, prepared: performance.now() - t1 };
    },
    [frame, box],
  );
}

const f = (v) => (v == null ? "-" : v.toFixed(0).padStart(8));
console.log(`\nbrowser benchmark, headless Chromium (${iters} runs after a warm-up; ms)`);
console.log("backend  model                              load  enc(1st)  encoder  decoder box→mask  prepared  propagation/frame");
for (const r of rows) {
  if (r.skipped) {
    console.log(`${r.backend.padEnd(8)} ${r.model.padEnd(32)} skipped: ${r.skipped}`);
    continue;
  }
  console.log(
    `${r.backend.padEnd(8)} ${r.model.padEnd(32)} ${f(r.load)} ${f(r.firstEncoder)} ${f(r.encoder)} ${f(r.decoder)} ${f(r.boxCold)}  ${f(r.boxPrepared)} ${f(r.propagation)}   (${r.what})`,
  );
}
