// The page shows what scripts and embedding pages do through window.medseg: a model
// loaded, a clip opened, a box added, a propagation and a reset made by calls (not by the
// page's controls) appear in the page's model label, file info, scrubber, object list
// (with the mask area of the shown frame) and propagation status; frames held in memory
// open as a clip. CPU backend, the small SAM 2.1 of ../shared/fixtures/sam2-small on its
// 4 frames.
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { launch, openPage, waitReady, log, readSafetensors, until, SHARED, DATA_URL_PATH, BASE, PAGE, errorsText, openFrameFolder } from "./lib.mjs";

const FIX = path.join(SHARED, "fixtures/sam2-small");
const BOX = Array.from(readSafetensors(path.join(FIX, "fixtures.safetensors"), ["video.in.box_frame0"])["video.in.box_frame0"].data);

const text = (page, id) => page.evaluate((id) => document.getElementById(id).textContent, id);

/** The mask area the object list shows for object `id` ("" when none). */
const areaShown = (page, id) =>
  page.evaluate((id) => document.querySelector(`.obj-area[data-id="${id}"]`)?.textContent ?? null, id);

const maskSum = (page, frame, id) =>
  page.evaluate(async ([f, id]) => {
    const m = await window.medseg.getMask(f, id);
    return m ? m.data.reduce((a, b) => a + (b ? 1 : 0), 0) : 0;
  }, [frame, id]);

test("the page mirrors calls made through window.medseg", { timeout: 600000 }, async () => {
  const { context, close } = await launch();
  try {
    const { page, errors } = await openPage(context, "?backend=cpu&model=none");
    assert.equal(await text(page, "model-state"), "no model loaded");

    await page.evaluate((url) => window.medseg.loadModel(url), `${DATA_URL_PATH}/sam2-small.safetensors`);
    assert.match(await text(page, "model-state"), /SAM 2\.1/, "the model label shows the loaded SAM 2.1 model");
    assert.equal(await page.evaluate(() => /** @type {HTMLButtonElement} */ (document.querySelector('.tool[data-tool="point+"]')).disabled), false, "SAM 2 takes points");

    await openFrameFolder(page, path.join(FIX, "frames_png"));
    assert.equal(await text(page, "frame-total"), "of 4");
    assert.match(await text(page, "file-info"), /clip/);

    // A box for object 3 on frame 0: the page lists object 3 and shows its mask's area.
    await page.evaluate((b) => window.medseg.addBox(0, 3, b), BOX);
    const area0 = await maskSum(page, 0, 3);
    assert.ok(area0 > 0, "a mask on frame 0");
    await until(page, (want) => document.querySelector('.obj-area[data-id="3"]')?.textContent === want, `${area0} px`, {
      timeout: 60000,
      what: `the object list to show ${area0} px for object 3`,
    });
    const listed = await page.evaluate(() => [...document.querySelectorAll(".obj-label")].map((e) => e.textContent));
    assert.deepEqual(listed, ["1 · Object 3"], "the page's blank first object stands for the script's object");

    // Propagation: the status says done; frame 3 (chosen with the page's own scrubber)
    // shows the propagated mask's area.
    await page.evaluate(() => window.medseg.propagate("forward"));
    assert.match(await text(page, "prop-status"), /^done: 4 frames/);
    const area3 = await maskSum(page, 3, 3);
    assert.ok(area3 > 0, "a propagated mask on frame 3");
    await page.fill("#frame-number", "3");
    await page.dispatchEvent("#frame-number", "change");
    await until(page, (want) => document.querySelector('.obj-area[data-id="3"]')?.textContent === want, `${area3} px`, {
      timeout: 60000,
      what: `the object list to show ${area3} px on frame 3`,
    });
    log(`mirrored: model, 4-frame clip, box (area ${area0} px), propagation (frame 3: ${area3} px)`);

    // A reset by a script empties the list back to one blank object.
    await page.evaluate(() => window.medseg.reset());
    assert.equal(await areaShown(page, 3), null, "object 3 is gone from the list");
    assert.deepEqual(
      await page.evaluate(() => [...document.querySelectorAll(".obj-label")].map((e) => e.textContent)),
      ["1 · Object 1"],
    );

    // Grey frames held in memory (openFrames): a clip the page shows at once.
    const grey = await page.evaluate(() => {
      const frame = (v) => ({ width: 32, height: 24, data: new Uint8Array(32 * 24).fill(v) });
      return window.medseg.openFrames([frame(10), frame(200)], "grey-frames");
    });
    assert.deepEqual([grey.kind, grey.frames, grey.width, grey.height], ["clip", 2, 32, 24]);
    assert.equal(await text(page, "frame-total"), "of 2");
    assert.deepEqual(await page.evaluate(async () => Array.from((await window.medseg.getFrame(1)).data.slice(0, 4))), [200, 200, 200, 255]);
    assert.deepEqual(errors, [], `console errors:${errorsText(errors)}`);
  } finally {
    await close();
  }
});

// A script that embeds MedSeg calls it the moment window.medseg exists, before the page
// has started its engine: the call waits for the one engine (the page's start does not
// replace the worker under it), succeeds, and the page shows the file.
test("an openFile called the moment window.medseg exists succeeds", { timeout: 300000 }, async () => {
  const { context, close } = await launch();
  try {
    const page = await context.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(`console: ${m.text()}`);
    });
    await page.goto(`${BASE}${PAGE}?backend=cpu&model=none`);
    await page.waitForFunction(() => typeof window.medseg === "object" && window.medseg !== null, null, { timeout: 30000, polling: 5 });
    const early = await page.evaluate(async () => {
      const c = new OffscreenCanvas(32, 24);
      const g = c.getContext("2d");
      if (!g) throw new Error("no 2d context");
      g.fillStyle = "#888";
      g.fillRect(0, 0, 32, 24);
      const file = new File([await c.convertToBlob({ type: "image/png" })], "early.png");
      const state = document.body.dataset.state ?? "";
      try {
        const info = await window.medseg.openFile(file);
        return { state, ok: true, kind: info.kind, width: info.width, ready: await window.medseg.ready() };
      } catch (e) {
        return { state, ok: false, error: String(e) };
      }
    });
    log(`openFile at page state "${early.state}": ${early.ok ? "opened" : early.error}`);
    assert.ok(early.ok, `the early openFile failed: ${early.error}`);
    assert.deepEqual([early.kind, early.width, early.ready.backend], ["image", 32, "cpu"]);
    await waitReady(page);
    assert.match(await text(page, "file-info"), /early\.png/, "the page shows the file the script opened");
    assert.deepEqual(errors, [], `console errors:${errorsText(errors)}`);
  } finally {
    await close();
  }
});
