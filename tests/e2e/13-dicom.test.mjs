// DICOM in the page (issue 11), on the CPU backend with the LiteMedSAM the page loads:
// 1. An ultrasound cine (JPEG Baseline, YBR_FULL_422, 30 frames) dropped on the page opens as
//    a clip with its modality and frame time (no patient data anywhere); its frames match
//    pydicom's (lossy: mean |diff| <= 1, max <= 8); a box by mouse, propagated over
//    frames 0..5, "DICOM SEG" downloads <name>-seg.dcm; highdicom reads it back with the
//    same mask as medseg.getMask on every frame, and dciodvfy finds no error.
// 2. Bad input through the file input, the cine and its masks kept each time: a DICOM
//    without pixel data, a truncated file, an unsupported transfer syntax (12-bit JPEG
//    Extended), a zip
//    with no DICOM file; a zip with a DICOM file and others opens it and says what it skipped.
// 3. The representative set decodes as pydicom does: a JPEG 2000 CT (lossless: its
//    values exact), palette-colour US (single frame and RLE 2-frame), an RLE multi-frame MR,
//    a JPEG-LS lossless MR.
// 4. A folder with two CT series (folder picker): the series picker lists both (modality,
//    description, slices), chosen with the keyboard; the 5-slice CT opens as a volume through
//    the file's window (W400 L40) with the HU presets offered, slices in the order of
//    their positions; a box, propagation, DICOM SEG read back by highdicom, dciodvfy.
// 5. The API: several series and no choice reject with kind "choose-series"; the call that
//    chooses does not read the files again.
// Screenshots: dicom-cine.png, dicom-picker.png, dicom-volume.png.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { execFileSync, spawnSync } from "node:child_process";
import {
  launch,
  openPage,
  log,
  screenshot,
  until,
  imageToClient,
  drawBox,
  putFile,
  errorsText,
  firstObjectMasked,
  OUT,
  ROOT,
  DICOM_PYTHON,
  DICOM_TEST_FILES,
  DICOM_DATA_STORE,
} from "./lib.mjs";

const ORACLE = path.join(ROOT, "tests/e2e/dicom-oracle.py");
const WORK = path.join(OUT, "dicom");

const T = (f) => path.join(DICOM_TEST_FILES ?? "", f);
const S = (f) => path.join(DICOM_DATA_STORE ?? "", f);
const CINE = T("examples_ybr_color.dcm");
const TWO_SERIES = T("dicomdirtests/98892001");
const CT5N = T("dicomdirtests/98892001/CT5N");

/** Runs the oracle; for pixels/seg, reads back {meta, bin}. */
function oracle(cmd, out, ...args) {
  execFileSync(DICOM_PYTHON, [ORACLE, cmd, out, ...args], { stdio: ["ignore", "inherit", "inherit"] });
  if (cmd === "zip") return null;
  return { meta: JSON.parse(fs.readFileSync(`${out}.json`, "utf8")), bin: fs.readFileSync(`${out}.bin`) };
}

/** dciodvfy's verdict on a file: its exit status and its "Error" lines. */
function dciodvfy(file) {
  const r = spawnSync("dciodvfy", [file], { encoding: "utf8" });
  const text = `${r.stdout}${r.stderr}`;
  return { status: r.status, errors: text.split("\n").filter((l) => /^Error/.test(l)), text };
}

/** Frame `k` as the page gets it: RGBA bytes, or the stored values (volumes). */
async function pageFrame(page, k, values = false) {
  const b64 = await page.evaluate(
    async ([k, values]) => {
      const f = values ? await window.medseg.getFrameValues(k) : await window.medseg.getFrame(k);
      const u8 = new Uint8Array(f.data.buffer, f.data.byteOffset, f.data.byteLength);
      let s = "";
      for (let i = 0; i < u8.length; i += 0x8000) s += String.fromCharCode(...u8.subarray(i, i + 0x8000));
      return btoa(s);
    },
    [k, values],
  );
  const buf = Buffer.from(b64, "base64");
  return values ? new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4) : buf;
}

/**
 * Grey values as a clip or image shows them (MedSeg's rule, src/io/dicom/series.rs): 8-bit
 * data as stored, else through the file's window (DICOM's linear VOI), else the file's
 * whole range, to 0..255.
 */
function greyTo8(values, { window, bitsStored, rescaled }) {
  let lo;
  let hi;
  if (bitsStored <= 8 && !rescaled) [lo, hi] = [0, 255];
  else if (window) [lo, hi] = [window[0] - 0.5 - (window[1] - 1) / 2, window[0] - 0.5 + (window[1] - 1) / 2];
  else {
    lo = Infinity;
    hi = -Infinity;
    for (const v of values) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
  }
  const span = hi > lo ? hi - lo : 1;
  return Uint8Array.from(values, (v) => Math.min(255, Math.max(0, Math.round(((v - lo) / span) * 255))));
}

/**
 * Compares the page's frames with the oracle's: RGB (RGBA in the page), values (volumes),
 * or grey values brought to 8 bits (a grey clip or image: `grey8`).
 */
async function compareFrames(page, ref, frames, { grey8 = false } = {}) {
  const { rows, columns } = ref.meta;
  const kind = grey8 ? "rgb" : ref.meta.kind;
  const plane = rows * columns;
  if (grey8) {
    const g = greyTo8(new Float32Array(ref.bin.buffer, ref.bin.byteOffset, ref.bin.byteLength / 4), ref.meta);
    ref = { meta: ref.meta, bin: Buffer.from(Uint8Array.from({ length: g.length * 3 }, (_, i) => g[Math.floor(i / 3)])) };
  }
  let sum = 0;
  let max = 0;
  let n = 0;
  for (const k of frames) {
    if (kind === "rgb") {
      const got = await pageFrame(page, k);
      assert.equal(got.length, plane * 4, `frame ${k}: ${got.length / 4} pixels, expected ${plane}`);
      for (let p = 0; p < plane; p++) {
        for (let c = 0; c < 3; c++) {
          const d = Math.abs(got[4 * p + c] - ref.bin[(k * plane + p) * 3 + c]);
          sum += d;
          max = Math.max(max, d);
          n++;
        }
      }
    } else {
      const got = await pageFrame(page, k, true);
      const want = new Float32Array(ref.bin.buffer, ref.bin.byteOffset + k * plane * 4, plane);
      assert.equal(got.length, plane, `slice ${k}: ${got.length} values, expected ${plane}`);
      for (let p = 0; p < plane; p++) {
        const d = Math.abs(got[p] - want[p]);
        sum += d;
        max = Math.max(max, d);
        n++;
      }
    }
  }
  return { mean: sum / n, max };
}

/** Every frame's mask of object `obj` in the page (null: none) against the SEG's label map. */
async function compareSeg(page, seg, obj, segmentNumber) {
  const { frames, rows, columns } = seg.meta;
  const plane = rows * columns;
  let masked = 0;
  for (let k = 0; k < frames; k++) {
    const m = await page.evaluate(async ([k, obj]) => {
      const m = await window.medseg.getMask(k, obj);
      return m && { width: m.width, height: m.height, data: Array.from(m.data) };
    }, [k, obj]);
    let diff = 0;
    let area = 0;
    for (let p = 0; p < plane; p++) {
      const inPage = m ? m.data[p] > 0 : false;
      const inSeg = seg.bin[k * plane + p] === segmentNumber;
      if (inPage !== inSeg) diff++;
      if (inPage) area++;
    }
    assert.equal(diff, 0, `frame ${k}: ${diff} pixels differ between the SEG and getMask`);
    if (area) masked++;
  }
  return masked;
}

/** The latest error message in the page's log that matches `re` (the log in the failure). */
async function errorMessage(page, re) {
  const found = await until(
    page,
    (src) => {
      const re = new RegExp(src, "i");
      return [...document.querySelectorAll("#messages .msg-error .msg-text")].map((e) => e.textContent).find((t) => re.test(t ?? "")) ?? null;
    },
    re.source,
    { timeout: 60000, what: `an error matching ${re}` },
  ).catch(() => null);
  if (found) return found;
  const log = await page.evaluate(() => [...document.querySelectorAll("#messages .msg-text")].slice(0, 5).map((e) => e.textContent));
  throw new Error(`no error matching ${re}; the latest messages: ${log.join(" | ")}`);
}

const shownName = (page) => page.evaluate(() => document.querySelector("#file-info dd")?.textContent ?? "");
const idle = (page) => until(page, () => document.body.dataset.busy === "", null, { what: "the page to be idle" });

/** Clicks an export button and saves the download under WORK; returns its path and name. */
async function download(page, button, name) {
  const [dl] = await Promise.all([page.waitForEvent("download", { timeout: 120000 }), page.click(button)]);
  const file = path.join(WORK, name);
  await dl.saveAs(file);
  return { file, suggested: dl.suggestedFilename() };
}

test("DICOM: a dropped cine to a SEG, bad input, decoding, a CT folder with two series", { timeout: 900000, skip: !DICOM_TEST_FILES && "no DICOM venv (scripts/setup.sh)" }, async () => {
  fs.mkdirSync(WORK, { recursive: true });
  const t0 = Date.now();
  const { context, close } = await launch({ webgpu: false });
  try {
    const { page, errors } = await openPage(context, "?backend=cpu");
    assert.equal(await page.evaluate(() => document.body.dataset.state), "ready");

    // 1. The cine, dropped (a DataTransfer holding the file, as a drop from the desktop).
    await putFile(page, CINE);
    await page.evaluate(() => {
      const dt = new DataTransfer();
      dt.items.add(window.__files["examples_ybr_color.dcm"]);
      window.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
    });
    await until(page, () => /of 30/.test(document.getElementById("frame-total")?.textContent ?? "") && document.body.dataset.busy === "", null, { what: "the cine" });
    const info = await page.evaluate(() => window.medseg.info());
    log(`cine: ${JSON.stringify(info)}`);
    assert.deepEqual([info.kind, info.frames, info.width, info.height], ["clip", 30, 320, 240]);
    assert.equal(info.dicom?.modality, "US");
    assert.ok(Math.abs(info.dicom.frame_time_ms - 33.333) < 1e-3, `frame time ${info.dicom.frame_time_ms}`);
    for (const k of Object.keys(info.dicom)) assert.ok(["modality", "description", "series_number", "frame_time_ms"].includes(k), `info.dicom.${k}`);
    const fileInfo = await page.textContent("#file-info");
    assert.match(fileInfo ?? "", /modality\s*US/);
    assert.match(fileInfo ?? "", /33\.3\d* ms \(30\.0 fps\)/);
    assert.equal(await page.inputValue("#video-fps"), "30", "the overlay video plays at the cine's frame rate");
    const patient = JSON.parse(execFileSync(DICOM_PYTHON, [ORACLE, "patient", CINE], { encoding: "utf8" }));
    assert.ok(!JSON.stringify(info).includes(patient.name), "no patient name in the info");
    assert.equal(await page.isVisible("#export-seg"), true, "DICOM SEG is offered for a DICOM document");

    const cineRef = oracle("pixels", path.join(WORK, "cine"), CINE);
    const cineDiff = await compareFrames(page, cineRef, [0, 15, 29]);
    log(`cine vs pydicom (JPEG Baseline YBR_FULL_422): mean |diff| ${cineDiff.mean.toFixed(3)}, max ${cineDiff.max}`);
    assert.ok(cineDiff.mean <= 1 && cineDiff.max <= 8, `cine frames differ from pydicom: ${JSON.stringify(cineDiff)}`);

    // A box by mouse on frame 0, propagated over frames 0..5 with the buttons.
    const to = await imageToClient(page, 320, 240);
    await drawBox(page, to, [110, 60, 230, 170]);
    const obj = await firstObjectMasked(page, 0);
    await idle(page);
    await page.fill("#range-to", "5");
    await page.dispatchEvent("#range-to", "change");
    await page.click("#prop-forward");
    await until(page, async () => document.body.dataset.busy === "" && (await window.medseg.maskFrames(1)).length >= 6, null, { what: "the propagation" });
    log(`cine: masks on frames ${(await page.evaluate((o) => window.medseg.maskFrames(o), obj)).join(" ")}`);
    await page.fill("#frame-number", "5");
    await page.dispatchEvent("#frame-number", "change");
    await page.waitForTimeout(500);
    await screenshot(page, "dicom-cine.png");

    const cineSeg = await download(page, "#export-seg", "cine-seg.dcm");
    assert.equal(cineSeg.suggested, "examples_ybr_color-seg.dcm");
    const seg1 = oracle("seg", path.join(WORK, "cine-seg"), cineSeg.file, CINE);
    log(`cine SEG: ${JSON.stringify(seg1.meta)}`);
    assert.equal(seg1.meta.frames, 30);
    assert.equal(seg1.meta.segments.length, 1);
    assert.equal(seg1.meta.segments[0].label, "Object 1");
    assert.equal(seg1.meta.referencedSeries, seg1.meta.sourceSeries);
    assert.equal(seg1.meta.study, seg1.meta.sourceStudy);
    const cineMasked = await compareSeg(page, seg1, obj, 1);
    assert.ok(cineMasked >= 6, `${cineMasked} frames masked in the SEG`);
    const v1 = dciodvfy(cineSeg.file);
    log(`dciodvfy cine SEG: status ${v1.status}, ${v1.errors.length} error line(s)`);
    assert.deepEqual(v1.errors, [], v1.text);
    assert.equal(v1.status, 0, v1.text);

    // 2. Bad input: a clear message each, the cine and its mask kept.
    const zipNone = path.join(WORK, "no-dicom.zip");
    const readme = path.join(WORK, "readme.txt");
    fs.writeFileSync(readme, "not an image\n");
    oracle("zip", zipNone, `readme.txt=${readme}`, `notes/more.txt=${readme}`);
    const bad = [
      { file: T("rtplan.dcm"), re: /no pixel data/ },
      { file: T("MR_truncated.dcm"), re: /truncated|corrupt|too short|missing/ },
      { file: T("JPGExtended.dcm"), re: /unsupported.*JPEG Extended with 12-bit samples/ },
      { file: zipNone, re: /no DICOM file/ },
    ];
    for (const { file, re } of bad) {
      await page.setInputFiles("#file-input", file);
      const msg = await errorMessage(page, new RegExp(`${path.basename(file).replace(/\./g, "\\.")}.*(${re.source})`));
      log(`${path.basename(file)}: ${msg}`);
      await idle(page);
      assert.equal(await shownName(page), "examples_ybr_color.dcm", `after ${path.basename(file)} the cine stays`);
      assert.ok(await page.evaluate((o) => window.medseg.getMask(0, o).then((m) => m != null), obj), "its mask stays");
    }
    // A zip with a DICOM file among others: it opens, saying what it skipped.
    const zipMixed = path.join(WORK, "mixed.zip");
    oracle("zip", zipMixed, `readme.txt=${readme}`, `images/mr.dcm=${T("MR_small.dcm")}`);
    await page.setInputFiles("#file-input", zipMixed);
    await until(page, () => /mixed\.zip/.test(document.querySelector("#file-info dd")?.textContent ?? "") && document.body.dataset.busy === "", null, { what: "the mixed zip" });
    const mixed = await page.evaluate(() => window.medseg.info());
    log(`mixed.zip: ${mixed.kind} ${mixed.width}×${mixed.height}×${mixed.frames}; notices ${JSON.stringify(mixed.notices)}`);
    assert.ok(mixed.notices?.some((n) => /skipped/.test(n) && /readme\.txt/.test(n)), "the notice names the skipped file");
    assert.match((await page.textContent("#file-info")) ?? "", /skipped/);

    // 3. The representative set decodes as pydicom does.
    const set = [
      { name: "693_J2KR.dcm", file: S("693_J2KR.dcm"), what: "JPEG 2000 lossless CT", tolerance: 0 },
      { name: "examples_palette.dcm", file: T("examples_palette.dcm"), what: "palette colour US", tolerance: 0 },
      { name: "OBXXXX1A_rle_2frame.dcm", file: S("OBXXXX1A_rle_2frame.dcm"), what: "RLE palette US, 2 frames", tolerance: 0 },
      { name: "emri_small_RLE.dcm", file: S("emri_small_RLE.dcm"), what: "RLE multi-frame MR", tolerance: 0 },
      { name: "MR_small_jpeg_ls_lossless.dcm", file: T("MR_small_jpeg_ls_lossless.dcm"), what: "JPEG-LS lossless MR", tolerance: 0 },
    ];
    for (const { name, file, what, tolerance } of set) {
      await putFile(page, file, name);
      const i = await page.evaluate((n) => window.medseg.openFile(window.__files[n]), name);
      const ref = oracle("pixels", path.join(WORK, name), file);
      assert.equal(i.frames, ref.meta.frames, `${name}: frames`);
      assert.deepEqual([i.width, i.height], [ref.meta.columns, ref.meta.rows], `${name}: size`);
      // A grey clip or image shows its values brought to 8 bits: compared after the same mapping.
      const grey8 = ref.meta.kind === "grey" && i.kind !== "volume";
      const d = await compareFrames(page, ref, Array.from({ length: i.frames }, (_, k) => k), { grey8 });
      log(`${name} (${what}): ${i.kind} ${i.width}×${i.height}×${i.frames}${grey8 ? " (grey to 8 bits)" : ""}, vs pydicom mean |diff| ${d.mean.toFixed(4)}, max ${d.max}`);
      assert.ok(d.max <= tolerance, `${name}: differs from pydicom (${JSON.stringify(d)})`);
    }

    // 4. A folder with two CT series: the picker, by keyboard.
    await page.setInputFiles("#folder-input", TWO_SERIES);
    await until(page, () => document.querySelectorAll("#dialog[open] button.pick-row").length > 0, null, { what: "the series picker" });
    const rows = await page.evaluate(() => [...document.querySelectorAll("#dialog button.pick-row")].map((b) => [...b.querySelectorAll("span")].map((s) => s.textContent)));
    log(`picker: ${JSON.stringify(rows)}`);
    assert.equal(rows.length, 2);
    assert.ok(rows.every((r) => r[0] === "CT"));
    const want = rows.findIndex((r) => /SmartScore/.test(r[1] ?? ""));
    assert.ok(want >= 0, "the 5-slice series is listed by its description");
    assert.equal(rows[want][2], "5 slices");
    assert.ok(rows.some((r) => r[1] === "Scout" && r[2] === "2 slices"), "the scout series too");
    await screenshot(page, "dicom-picker.png");
    for (let n = 0; n < want; n++) await page.keyboard.press("ArrowDown");
    await page.keyboard.press("Enter");
    await until(page, () => /of 5/.test(document.getElementById("frame-total")?.textContent ?? "") && document.body.dataset.busy === "", null, { what: "the CT volume" });
    const ct = await page.evaluate(() => window.medseg.info());
    log(`CT: ${JSON.stringify(ct)}`);
    assert.equal(ct.kind, "volume");
    assert.equal(ct.format, "dicom");
    assert.deepEqual(ct.file_window, { level: 40, width: 400 });
    assert.equal(ct.values?.hounsfield, true);
    assert.equal(await page.inputValue("#window-select"), "file", "shown through the file's window first");
    assert.match((await page.textContent("#file-window-option")) ?? "", /W400 L40/);
    assert.equal(await page.evaluate(() => /** @type {HTMLOptionElement} */ (document.querySelector('#window-select option[value="soft"]')).disabled), false, "HU presets offered");
    assert.equal(await shownName(page), "98892001");
    const ctRef = oracle("pixels", path.join(WORK, "ct5n"), ...fs.readdirSync(CT5N).map((f) => path.join(CT5N, f)));
    const ctDiff = await compareFrames(page, ctRef, [0, 1, 2, 3, 4]);
    assert.equal(ctDiff.max, 0, `CT slices (in position order) differ from pydicom: ${JSON.stringify(ctDiff)}`);

    // A box by mouse on the middle slice, propagated both ways, exported as SEG.
    await page.fill("#frame-number", "2");
    await page.dispatchEvent("#frame-number", "change");
    const toCt = await imageToClient(page, 16, 16, (ct.spacing?.[1] ?? 1) / (ct.spacing?.[0] ?? 1));
    await drawBox(page, toCt, [2, 2, 13, 13]);
    const ctObj = await firstObjectMasked(page, 2);
    await idle(page);
    await page.click("#prop-both");
    await until(page, async () => document.body.dataset.busy === "" && /done|idle|cancel/i.test(document.getElementById("prop-status")?.textContent ?? ""), null, { what: "the CT propagation" });
    log(`CT: masks on slices ${(await page.evaluate((o) => window.medseg.maskFrames(o), ctObj)).join(" ")}`);
    await screenshot(page, "dicom-volume.png");
    const ctSeg = await download(page, "#export-seg", "ct-seg.dcm");
    assert.equal(ctSeg.suggested, "98892001-seg.dcm");
    const seg2 = oracle("seg", path.join(WORK, "ct-seg"), ctSeg.file, ...fs.readdirSync(CT5N).map((f) => path.join(CT5N, f)));
    log(`CT SEG: ${JSON.stringify(seg2.meta)}`);
    assert.equal(seg2.meta.frames, 5);
    const ctMasked = await compareSeg(page, seg2, ctObj, 1);
    assert.ok(ctMasked >= 1, "the SEG holds the masks");
    const v2 = dciodvfy(ctSeg.file);
    log(`dciodvfy CT SEG: status ${v2.status}, ${v2.errors.length} error line(s)`);
    assert.deepEqual(v2.errors, [], v2.text);
    assert.equal(v2.status, 0, v2.text);

    // 5. The API: choose-series, then the choice without reading the files again.
    await putFile(page, T("CT_small.dcm"));
    await putFile(page, T("MR_small.dcm"));
    const api = await page.evaluate(async () => {
      const files = [window.__files["CT_small.dcm"], window.__files["MR_small.dcm"]];
      let reads = 0;
      const off = window.medseg.on("progress", (p) => p.task === "dicom" && p.stage === "read" && reads++);
      let err = null;
      try {
        await window.medseg.openFile(files);
      } catch (e) {
        err = { kind: e.kind, series: e.series, message: e.message };
      }
      const readsFirst = reads;
      const mr = err?.series?.find((s) => s.modality === "MR");
      const info = mr ? await window.medseg.openFile(files, { series: mr.uid }) : null;
      off();
      return { err, readsFirst, readsAfter: reads - readsFirst, info };
    });
    log(`API: ${api.err?.message}; reads ${api.readsFirst} then ${api.readsAfter}`);
    assert.equal(api.err?.kind, "choose-series");
    assert.equal(api.err.series.length, 2);
    assert.ok(api.readsFirst > 0);
    assert.equal(api.readsAfter, 0, "choosing reads no file again");
    assert.equal(api.info?.dicom?.modality, "MR");

    assert.deepEqual(errors, [], `console errors:${errorsText(errors)}`);
    log(`13-dicom: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  } finally {
    await close();
  }
});
