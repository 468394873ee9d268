// The page as a first-time clinician meets it (issue 14), through the UI: mouse, keyboard,
// the file input. CPU backend, the default LiteMedSAM the page loads by itself, the real
// CT lesion volume.
// - No control the loaded model cannot serve: the point tools and their shortcuts are not
//   offered with LiteMedSAM; every model in the picker has its file there (the server's
//   /models.json), and a "Get MedSAM2…" entry says where MedSAM2 comes from.
// - A second file with masks not exported asks first: "Keep working" keeps the volume and
//   its masks; after an export no question; "Open without saving" replaces.
// - The image does not move when a notice or an error appears.
// - Screenshots at 1400×900 and 1280×720 (test-output/screenshots/): empty, a volume with
//   masks, an error.
import { test } from "node:test";
import assert from "node:assert/strict";
import { launch, openPage, log, screenshot, until, imageToClient, drawBox, errorsText, BASE, CT_VOLUME as VOL } from "./lib.mjs";

/** A PNG that is not one: the page refuses it with a message. */
const BAD_PNG = { name: "scan.png", mimeType: "image/png", buffer: Buffer.from("not a png at all") };

const canvasBox = (page) => page.evaluate(() => JSON.stringify(document.getElementById("view").getBoundingClientRect()));
const docName = (page) => page.evaluate(() => document.querySelector("#file-info dd")?.textContent ?? "");
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
    await until(page, () => /Could not open scan2\.png/.test(document.getElementById("notices")?.textContent ?? ""), null, { what: "the error notice" });
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
    await until(page, () => /Could not open scan3\.png/.test(document.getElementById("messages")?.textContent ?? ""), null, { what: "the third file's answer" });
    assert.equal(await dialogOpen(page), false, "no question after the export");
    assert.deepEqual(errors, [], errorsText(errors));
    log(`served from ${BASE}`);
  } finally {
    await close();
  }
});
