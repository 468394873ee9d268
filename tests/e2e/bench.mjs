// Browser benchmark (scripts/bench-browser.sh): encoder, decoder and propagation time per
// frame of each model on each backend, in headless Chromium, and the time from a box to
// its mask (addBox through the worker) on a frame not yet embedded ("box→mask") and on a
// frame embedded ahead (prepareFrame, as the page does for the frame on screen). WebGPU
// there is SwiftShader (a CPU implementation): its numbers say nothing about a real GPU.
//   MEDSEG_BENCH_ITERS (default 3) encoder/decoder runs after a warm-up run;
//   MEDSEG_BENCH_BACKENDS (default "webgpu,cpu@1,cpu": "cpu@N" is the CPU backend on N
//   threads, 1 being the single-threaded module, plain "cpu" the page's default pool; rows
//   say the threads they ran on); MEDSEG_BENCH_MODELS ("lite,sam2-small");
//   MEDSEG_BENCH_WEBGPU_LITE=1 also times LiteMedSAM on WebGPU, which SwiftShader runs at
//   many minutes per encoder pass (skipped by default). MEDSEG_BENCH_T512=FILE (given to
//   scripts/bench-browser.sh) adds a medsam2-t512 checkpoint ("t512", CPU backend only:
//   SwiftShader would take hours), propagated over the CT volume like LiteMedSAM.
//   "finetune" in MEDSEG_BENCH_MODELS (CPU backend): LiteMedSAM taught in the page on each
//   shared CT case with its label file (MEDSEG_BENCH_FT_EPOCHS, default 3; flips on, no
//   hold-out, as BENCHMARKS.md's native run): ms per embedding, per epoch, and the
//   engine's wasm memory after each case (its peak: wasm memory never shrinks).
//   "dicom" in MEDSEG_BENCH_MODELS (CPU backend, no model): openFile of a 120-frame
//   640×480 JPEG Baseline YBR_FULL_422 ultrasound cine (pydicom-data's
//   color3d_jpeg_baseline.dcm), and of a CT series folder (MEDSEG_BENCH_CT_SLICES, default
//   300, slices of 512×512 made by tests/dicom/make_ct_series.py) until its middle slice is
//   ready to draw (getFrame through the display window, as the page draws it): ms, and the
//   engine's wasm memory before and after (its growth: the peak the opening needed).
import path from "node:path";
import fs from "node:fs";
import { execFileSync } from "node:child_process";
import { launch, openPage, putFile, SHARED, DATA_URL_PATH, LITE_URL, openCtVolume, openFrameFolder, OUT, DICOM_PYTHON, DICOM_DATA_STORE } from "./lib.mjs";

const iters = Number(process.env.MEDSEG_BENCH_ITERS || 3);
const backends = (process.env.MEDSEG_BENCH_BACKENDS || "webgpu,cpu@1,cpu").split(",");
const T512_URL = process.env.MEDSEG_BENCH_T512_URL;
const models = (process.env.MEDSEG_BENCH_MODELS || `lite,sam2-small${T512_URL ? ",t512" : ""}`).split(",");
const FIX = path.join(SHARED, "fixtures/sam2-small");

/** @type {Record<string, any>[]} */
const rows = [];
const t00 = Date.now();
const stage = (msg) => console.error(`[bench ${((Date.now() - t00) / 1000).toFixed(0)} s] ${msg}`);
for (const spec of backends) {
  const [backend, threads] = spec.split("@");
  const query = `?backend=${backend}&model=none${threads ? `&threads=${threads}` : ""}`;
  for (const model of models) {
    if (backend === "webgpu" && model === "lite" && process.env.MEDSEG_BENCH_WEBGPU_LITE !== "1") {
      rows.push({ backend, model: "lite-medsam (lite)", skipped: "SwiftShader: minutes per encoder pass (MEDSEG_BENCH_WEBGPU_LITE=1 to run)" });
      continue;
    }
    if (backend === "webgpu" && model === "t512") {
      rows.push({ backend, model: "medsam2-t512 (t512)", skipped: "SwiftShader: hours per frame" });
      continue;
    }
    if (model === "finetune") {
      if (backend === "cpu") await benchFinetune(query);
      continue;
    }
    if (model === "dicom") {
      if (backend === "cpu") await benchDicom(query);
      continue;
    }
    stage(`${spec} / ${model}`);
    const { context, close } = await launch();
    try {
      const { page } = await openPage(context, query);
      const label = `${backend}@${await page.evaluate(() => window.medseg.threads())}`;
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
        backend: label,
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

/** LiteMedSAM taught in the page (CPU backend) on each shared CT case with its labels. */
async function benchFinetune(query) {
  const epochs = Number(process.env.MEDSEG_BENCH_FT_EPOCHS || 3);
  const dir = path.join(SHARED, "data/ct-lesion");
  const cases = fs.readdirSync(dir).filter((n) => n.endsWith("_gt.nii.gz")).map((n) => n.replace(/_gt\.nii\.gz$/, "")).sort();
  const { context, close } = await launch();
  try {
    const { page } = await openPage(context, query);
    const label = `cpu@${await page.evaluate(() => window.medseg.threads())}`;
    await page.evaluate((u) => window.medseg.loadModel(u), LITE_URL);
    for (const name of cases) {
      stage(`fine-tuning on ${name}`);
      await putFile(page, path.join(dir, `${name}.nii.gz`), "ct.nii.gz");
      await putFile(page, path.join(dir, `${name}_gt.nii.gz`), "gt.nii.gz");
      const r = await page.evaluate(async (n) => {
        await window.medseg.openFile(window.__files["ct.nii.gz"]);
        await window.medseg.openLabels(window.__files["gt.nii.gz"]);
        const marks = [];
        const off = window.medseg.on("finetune", ({ progress, ms }) => {
          if (progress.phase !== "embedding" && !marks.length) marks.push({ at: ms, what: "embedded", n: progress.work.embeddings[1] });
          if (progress.finished_epoch) marks.push({ at: ms, what: "epoch", samples: progress.batches });
        });
        const out = await window.medseg.finetune({ epochs: n, augment: true, validation: false });
        off();
        const state = await window.medseg.teachState();
        return { marks, ms: out.ms, samples: state.report.train.samples, memory: await window.medseg.engineMemory() };
      }, epochs);
      const embedded = r.marks.find((m) => m.what === "embedded");
      const epochAt = r.marks.filter((m) => m.what === "epoch").map((m) => m.at);
      const perEpoch = epochAt.map((t, i) => t - (i ? epochAt[i - 1] : embedded.at));
      rows.push({
        backend: label,
        model: `finetune ${name.replace("CT_Lesion_", "")}`,
        finetune: true,
        embeddings: embedded.n,
        embedMs: embedded.at / embedded.n,
        epochMs: perEpoch.sort((a, b) => a - b)[Math.floor(perEpoch.length / 2)],
        samples: r.samples,
        totalMs: r.ms,
        memoryMB: r.memory / 2 ** 20,
      });
      console.log(JSON.stringify(rows.at(-1)));
    }
  } finally {
    await close();
  }
}

/** DICOM opening in the page (CPU backend, no model): a cine and a CT series folder. */
async function benchDicom(query) {
  const slices = Number(process.env.MEDSEG_BENCH_CT_SLICES || 300);
  // The series is served from the test data folder (fetched into Files in the page, not
  // timed), so that hundreds of MB need not cross the DevTools protocol.
  const folder = path.join(OUT, "e2e-data", `bench-ct-${slices}`);
  if (!fs.existsSync(path.join(folder, "IM0000"))) {
    stage(`writing a ${slices}-slice 512×512 CT series`);
    fs.rmSync(folder, { recursive: true, force: true });
    execFileSync(DICOM_PYTHON, [path.join(path.dirname(new URL(import.meta.url).pathname), "../dicom/make_ct_series.py"), folder, String(slices), "1.0", "512"]);
  }
  const names = fs.readdirSync(folder).sort();
  const cine = path.join(DICOM_DATA_STORE ?? "", "color3d_jpeg_baseline.dcm");
  const { context, close } = await launch();
  try {
    const { page } = await openPage(context, query);
    const label = `cpu@${await page.evaluate(() => window.medseg.threads())}`;
    for (let run = 0; run < iters; run++) {
      stage(`cine ${run + 1}/${iters}`);
      await putFile(page, cine, "cine.dcm");
      const c = await page.evaluate(async () => {
        const before = await window.medseg.engineMemory();
        const t0 = performance.now();
        const info = await window.medseg.openFile(window.__files["cine.dcm"]);
        const ms = performance.now() - t0;
        return { ms, info: `${info.kind} ${info.frames}×${info.width}×${info.height}`, before, after: await window.medseg.engineMemory() };
      });
      rows.push({ backend: label, model: "DICOM cine", dicom: true, ...c });
      console.log(JSON.stringify(rows.at(-1)));
      stage(`CT series ${run + 1}/${iters}`);
      const s = await page.evaluate(
        async ([base, list]) => {
          const files = await Promise.all(list.map(async (n) => new File([await (await fetch(`${base}/${n}`)).arrayBuffer()], n)));
          const before = await window.medseg.engineMemory();
          const t0 = performance.now();
          const info = await window.medseg.openFile(files, { name: "ct-series" });
          const mid = Math.floor(info.frames / 2);
          await window.medseg.getFrame(mid, { window: "soft" });
          const ms = performance.now() - t0;
          return { ms, info: `${info.kind} ${info.width}×${info.height}×${info.frames}`, before, after: await window.medseg.engineMemory() };
        },
        [`${DATA_URL_PATH}/bench-ct-${slices}`, names],
      );
      rows.push({ backend: label, model: `DICOM CT series (${slices} files)`, dicom: true, ...s });
      console.log(JSON.stringify(rows.at(-1)));
    }
  } finally {
    await close();
  }
}

const f = (v) => (v == null ? "-" : v.toFixed(0).padStart(8));
console.log(`\nbrowser benchmark, headless Chromium (${iters} runs after a warm-up; ms)`);
console.log("backend  model                              load  enc(1st)  encoder  decoder box→mask  prepared  propagation/frame");
for (const r of rows) {
  if (r.skipped) {
    console.log(`${r.backend.padEnd(8)} ${r.model.padEnd(32)} skipped: ${r.skipped}`);
    continue;
  }
  if (r.dicom) {
    const mb = (b) => (b / 2 ** 20).toFixed(0);
    console.log(`${r.backend.padEnd(8)} ${r.model.padEnd(32)} ${r.info}: open ${r.ms.toFixed(0)} ms, engine memory ${mb(r.before)} → ${mb(r.after)} MB`);
    continue;
  }
  if (r.finetune) {
    console.log(
      `${r.backend.padEnd(8)} ${r.model.padEnd(32)} ${r.samples} samples, ${r.embeddings} embeddings × ${r.embedMs.toFixed(0)} ms, epoch (median) ${r.epochMs.toFixed(0)} ms, run ${(r.totalMs / 1000).toFixed(1)} s, engine memory ${r.memoryMB.toFixed(0)} MB`,
    );
    continue;
  }
  console.log(
    `${r.backend.padEnd(8)} ${r.model.padEnd(32)} ${f(r.load)} ${f(r.firstEncoder)} ${f(r.encoder)} ${f(r.decoder)} ${f(r.boxCold)}  ${f(r.boxPrepared)} ${f(r.propagation)}   (${r.what})`,
  );
}
