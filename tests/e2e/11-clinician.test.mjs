// The page as a first-time clinician meets it (issue 14), through the UI: mouse, keyboard,
// the file input. CPU backend, the default LiteMedSAM the page loads by itself, the real
// CT lesion volume.
// - No control the loaded model cannot serve: the point tools and their shortcuts are not
//   offered with LiteMedSAM; every model in the picker has its file there (the server's
//   /models.json), and a "Get MedSAM2…" entry says where MedSAM2 comes from.
// - A second file with masks not exported asks first: "Keep working" keeps the volume and
//   its masks; after an export no question; "Open without saving" replaces.
// - The image does not move when a notice or an error appears.
// - The display window changes what is shown at once and nothing else: masks bit-identical,
//   no model pass; the page says the volume is not in HU and shows the value under the cursor.
// - Propagation shows progress from the click on, and does not segment the key slice again.
// - A box over empty space gives a mask flagged "low confidence".
// - Screenshots at 1400×900 and 1280×720 (test-output/screenshots/): empty, a volume with
//   masks, an error, a clip in mid-propagation; a flagged mask.
import { test } from "node:test";
import assert from "node:assert/strict";
import { launch, openPage, log, screenshot, until, imageToClient, drawBox, makeSyntheticClip, blobBytes, errorsText, BASE, CT_VOLUME as VOL } from "./lib.mjs";

/** A PNG that is not one: the page refuses it with a message. */
const BAD_PNG = { name: "scan.png", mimeType: "image/png", buffer: Buffer.from("not a png at all") };

const canvasBox = (page) => page.evaluate(() => JSON.stringify(document.getElementById("view").getBoundingClientRect()));
const docName = (page) => page.evaluate(() => document.querySelector("#file-info dd")?.textContent ?? "");
/** The sum of the viewer canvas's red channel (in the page): it changes when the slice is drawn anew. */
function redSumIn() {
  const c = /** @type {HTMLCanvasElement} */ (document.getElementById("view"));
  const d = c.getContext("2d")?.getImageData(0, 0, c.width, c.height).data ?? [];
  let sum = 0;
  for (let i = 0; i < d.length; i += 4) sum += d[i];
  return sum;
}

const dialogOpen = (page) => page.evaluate(() => /** @type {HTMLDialogElement} */ (document.getElementById("dialog")).open);

test("the page shows only what works, asks before losing masks, and keeps the image still", { timeout: 900000 }, async () => {
  const { context, close } = await launch({ webgpu: false });
  try {
    const { page, errors } = await openPage(context, "?backend=cpu");
    for (const [w, h] of [[1400, 900], [1280, 720]]) {
      await page.setViewportSize({ width: w, height: h });
      await screenshot(page, `clinician-empty-${w}x${h}.png`);
    }

    // 1. The picker lists only models whose file is there, plus where to get MedSAM2.
    const options = await page.evaluate(() => [...document.querySelectorAll("#model-select option")].map((o) => [/** @type {HTMLOptionElement} */ (o).value, o.textContent]));
    log(`picker: ${options.map((o) => o[1]).join(" | ")}`);
    const files = options.map((o) => o[0]).filter((v) => v.startsWith("weights/"));
    assert.ok(files.includes("weights/lite_medsam.safetensors"), "the default model is listed");
    for (const f of files) {
      const status = await page.evaluate(async (f) => (await fetch(f, { method: "HEAD", cache: "no-store" })).status, f);
      assert.equal(status, 200, `${f} is listed, so it must be there`);
    }
    assert.ok(!options.some(([, label]) => /MedSAM2 latest/.test(label)), "no MedSAM2 entry without its file");
    await page.selectOption("#model-select", "__get_medsam2__");
    await until(page, () => /huggingface\.co\/wanglab\/MedSAM2/.test(document.getElementById("dialog").textContent ?? ""), null, { what: "the MedSAM2 help" });
    await page.click("#dialog button:text('Close')");
    assert.equal(await page.inputValue("#model-select"), "weights/lite_medsam.safetensors", "the picker still shows the loaded model");

    // The point tools and their shortcuts are not offered with LiteMedSAM, and the page says why once.
    const offered = await page.evaluate(() => ({
      tools: [...document.querySelectorAll(".tool[data-tool]")].filter((b) => !(/** @type {HTMLElement} */ (b).hidden)).map((b) => /** @type {HTMLElement} */ (b).dataset.tool),
      pointKeys: [...document.querySelectorAll('.keys [data-needs="points"]')].filter((r) => !(/** @type {HTMLElement} */ (r).hidden)).length,
      note: document.getElementById("tool-note")?.hidden === false ? document.getElementById("tool-note")?.textContent : null,
    }));
    assert.deepEqual(offered.tools, ["box"]);
    assert.equal(offered.pointKeys, 0, "no point shortcut listed");
    assert.match(offered.note ?? "", /box only/);

    // The volume, a box by mouse on slice 7.
    await page.setInputFiles("#file-input", VOL);
    await page.waitForFunction(() => /16/.test(document.getElementById("frame-total")?.textContent || ""), null, { timeout: 60000 });
    await page.fill("#frame-number", "7");
    await page.dispatchEvent("#frame-number", "change");
    const to = await imageToClient(page, 512, 512, 1);
    await drawBox(page, to, [260, 226, 331, 288]);
    await until(page, async () => (await window.medseg.getMask(7, 1)) != null && document.body.dataset.busy === "", null, { what: "the box's mask" });
    const maskBefore = await page.evaluate(async () => Array.from((await window.medseg.getMask(7, 1))?.data ?? []));
    assert.ok(maskBefore.some((v) => v), "the box gives a mask");
    await page.setViewportSize({ width: 1400, height: 900 });
    await screenshot(page, "clinician-volume-1400x900.png");
    await page.setViewportSize({ width: 1280, height: 720 });
    await screenshot(page, "clinician-volume-1280x720.png");

    // 6. An error (a broken PNG) and a notice do not move the image.
    const box0 = await canvasBox(page);
    // 2. A second file with masks not exported: the page asks; "Keep working" keeps everything.
    await page.setInputFiles("#file-input", BAD_PNG);
    await until(page, () => /** @type {HTMLDialogElement} */ (document.getElementById("dialog")).open, null, { what: "the question before replacing" });
    assert.match(await page.textContent("#dialog"), /have not been exported/);
    await page.click("#dialog button:text('Keep working')");
    assert.equal(await dialogOpen(page), false);
    assert.match(await docName(page), /CT_Lesion/, "the volume stays open");
    const maskKept = await page.evaluate(async () => Array.from((await window.medseg.getMask(7, 1))?.data ?? []));
    assert.deepEqual(maskKept, maskBefore, "and its mask");
    // Now open it anyway: it is refused with an error (no PNG), and the volume stays.
    await page.setInputFiles("#file-input", { ...BAD_PNG, name: "scan2.png" });
    await until(page, () => /** @type {HTMLDialogElement} */ (document.getElementById("dialog")).open, null, { what: "the question" });
    await page.click("#dialog button:has-text('without saving')");
    await until(page, () => /Could not open: scan2\.png/.test(document.getElementById("notices")?.textContent ?? ""), null, { what: "the error notice" });
    assert.equal(await canvasBox(page), box0, "the error notice does not move the image");
    const msgHeight = await page.evaluate(() => document.querySelector(".messages-card")?.getBoundingClientRect().height);
    await screenshot(page, "clinician-error-1280x720.png");
    await page.setViewportSize({ width: 1400, height: 900 });
    await screenshot(page, "clinician-error-1400x900.png");
    log(`canvas ${box0}; messages card ${msgHeight} px high at 1280×720`);

    // After an export there is nothing to lose: no question.
    const [download] = await Promise.all([page.waitForEvent("download", { timeout: 60000 }), page.click("#export-nifti")]);
    log(`exported ${download.suggestedFilename()}`);
    await page.setInputFiles("#file-input", { ...BAD_PNG, name: "scan3.png" });
    await until(page, () => /Could not open: scan3\.png/.test(document.getElementById("messages")?.textContent ?? ""), null, { what: "the third file's answer" });
    assert.equal(await dialogOpen(page), false, "no question after the export");

    // 3. The display window is the page's: every mask stays bit-identical, no model runs.
    // This volume is 0..255 (not HU): the page says so, and offers no CT presets.
    assert.match(await page.textContent("#file-info"), /not Hounsfield units/);
    await page.evaluate(() => {
      window.__events = [];
      for (const e of ["prompt", "frame", "window", "undo", "redo"]) window.medseg.on(e, () => window.__events.push(e));
      window.__busy = [];
      new MutationObserver(() => window.__busy.push(document.body.dataset.busy)).observe(document.body, { attributes: true, attributeFilter: ["data-busy"] });
    });
    const masks = () => page.evaluate(async () => {
      const out = [];
      for (let k = 0; k < 16; k++) out.push(Array.from((await window.medseg.getMask(k, 1))?.data ?? []).join(""));
      return out;
    });
    const masksBefore = await masks();
    const redSum = () => page.evaluate(redSumIn);
    /** Waits until the viewer shows something else than the red sum `before`. */
    const redrawn = async (before) => {
      for (const end = Date.now() + 30000; Date.now() < end; await page.waitForTimeout(50)) {
        if ((await redSum()) !== before) return;
      }
      throw new Error("the slice was not drawn anew within 30 s");
    };
    const shown = await redSum();
    const t0 = Date.now();
    await page.selectOption("#window-select", "mr");
    await redrawn(shown);
    log(`display window MR shown in ${Date.now() - t0} ms`);
    // A window of the user's own: W 60 L 100 (in the volume's units).
    const mrShown = await redSum();
    await page.selectOption("#window-select", "custom");
    await page.fill("#window-width", "60");
    await page.fill("#window-level", "100");
    await page.dispatchEvent("#window-level", "change");
    await redrawn(mrShown);
    log(`custom W 60 L 100 shown; the slice's red sum ${mrShown} → ${await redSum()}`);
    assert.deepEqual(await masks(), masksBefore, "every mask bit-identical after a display-window change");
    assert.deepEqual(await page.evaluate(() => window.__events), [], "no prompt, propagation or model-input change");
    assert.ok((await page.evaluate(() => window.__busy)).every((b) => b === ""), "the page never got busy (no model pass)");
    // The value under the cursor, as stored.
    const [cx, cy] = to(300, 250);
    await page.mouse.move(cx, cy);
    await page.waitForTimeout(300);
    await page.mouse.move(cx + 1, cy);
    await until(page, () => /· [−\d]/.test(document.getElementById("cursor-pos")?.textContent ?? ""), null, { what: "the value under the cursor", timeout: 10000 });
    log(`under the cursor: ${await page.textContent("#cursor-pos")}`);

    // 4. Progress from the click on, and the key slice (7, the box's) is not segmented again.
    await page.evaluate(() => {
      window.__propagated = [];
      window.medseg.on("frame", (e) => window.__propagated.push(e.frame));
    });
    await page.fill("#range-from", "7");
    await page.dispatchEvent("#range-from", "change");
    await page.fill("#range-to", "9");
    await page.dispatchEvent("#range-to", "change");
    const clicked = Date.now();
    await page.click("#prop-forward");
    const early = await page.evaluate(() => {
      const bar = /** @type {HTMLProgressElement} */ (document.getElementById("prop-progress"));
      return { moving: !bar.hasAttribute("value") || bar.value > 0, status: document.getElementById("prop-status")?.textContent };
    });
    log(`${Date.now() - clicked} ms after Propagate: ${JSON.stringify(early)}`);
    assert.ok(early.moving && Date.now() - clicked < 1000, "the bar moves within 1 s of Propagate");
    assert.match(early.status ?? "", /^propagating forward from slice 7/);
    await until(page, () => /^done: /.test(document.getElementById("prop-status")?.textContent ?? ""), null, { what: "the propagation" });
    assert.equal(await page.textContent("#prop-status").then((t) => t?.replace(/ in .*/, "")), "done: 2 slices");
    assert.deepEqual(await page.evaluate(() => window.__propagated), [8, 9], "slices 8 and 9 only: the key slice keeps its mask");
    await page.setViewportSize({ width: 1400, height: 900 });

    // 7. A box over empty space (the air outside the body) is flagged.
    await page.click("#add-object");
    await drawBox(page, await imageToClient(page, 512, 512, 1), [5, 5, 60, 60]);
    await until(page, () => !!document.querySelector(".obj-area.low-confidence"), null, { what: "the low-confidence flag", timeout: 120000 });
    log(`flag: ${await page.getAttribute(".obj-area.low-confidence", "title")}`);
    assert.match(await page.textContent("#messages"), /Low confidence in Object 2 on slice \d+: the model predicts an IoU of 0\.\d\d/);
    assert.equal(await page.$$eval(".obj-area.low-confidence", (n) => n.length), 1, "the lesion's mask is not flagged");
    await screenshot(page, "clinician-low-confidence-1400x900.png");

    // A clip in mid-propagation at both sizes, then Esc: what was made stays, said with its count.
    const N = 10;
    await makeSyntheticClip(page, { N, W: 320, H: 240, R: 30, centres: Array.from({ length: N }, (_, i) => [140 + 3 * i, 110]) });
    const webm = await blobBytes(await page.evaluateHandle(() => window.__clip));
    await page.setInputFiles("#file-input", { name: "synthetic.webm", mimeType: "video/webm", buffer: webm });
    await page.click("#dialog button:has-text('without saving')");
    await page.waitForFunction(() => /of\s*(9|10|11)\b/.test(document.getElementById("frame-total")?.textContent || ""), null, { timeout: 60000 });
    const clip = await page.evaluate(() => window.medseg.info());
    await drawBox(page, await imageToClient(page, clip.width, clip.height, 1), [100, 70, 182, 152]);
    await until(page, async () => (await window.medseg.getMask(0, 1)) != null && document.body.dataset.busy === "", null, { what: "the clip box's mask" });
    await page.click("#prop-forward");
    await until(page, () => /^frame \d+ · [3-9] of \d+ frames/.test(document.getElementById("prop-status")?.textContent ?? ""), null, { what: "three propagated frames" });
    await screenshot(page, "clinician-clip-propagating-1400x900.png");
    await page.setViewportSize({ width: 1280, height: 720 });
    await screenshot(page, "clinician-clip-propagating-1280x720.png");
    log(`mid-propagation: ${await page.textContent("#prop-status")} · ${await page.textContent("#prop-ms")}`);
    await page.keyboard.press("Escape");
    await until(page, () => /^cancelled after \d+ frames? \(at frame \d+\)$/.test(document.getElementById("prop-status")?.textContent ?? ""), null, { what: "the cancel" });
    log(`after Esc: ${await page.textContent("#prop-status")}`);
    assert.deepEqual(errors, [], errorsText(errors));
    log(`served from ${BASE}`);
  } finally {
    await close();
  }
});
