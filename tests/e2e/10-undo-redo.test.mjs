// Undo and redo through the page as a person uses them (CPU backend, the default
// LiteMedSAM): a box drawn with the mouse on a CT slice, propagated over five slices with
// the button; the Undo button takes back the whole propagation (the box's mask stays),
// the Redo button brings every propagated mask back bit for bit (no model runs), and
// Ctrl+Z twice takes back the propagation and then the box; Ctrl+Y redoes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { launch, openPage, log, until, imageToClient, drawBox, firstObjectMasked, errorsText, CT_VOLUME as VOL } from "./lib.mjs";

const SLICES = 16;
const KEY = 8;
const RANGE = [7, 11];

async function setNumber(page, id, value) {
  await page.fill(`#${id}`, String(value));
  await page.dispatchEvent(`#${id}`, "change");
}

/**
 * Every slice's mask of object `id` as the engine holds it: null, or its area and the
 * SHA-256 of its bytes (equal digests: the same mask bit for bit).
 */
function masksOf(page, id) {
  return page.evaluate(
    async ([id, n]) => {
      const out = [];
      for (let f = 0; f < n; f++) {
        const m = await window.medseg.getMask(f, id);
        if (!m) {
          out.push(null);
          continue;
        }
        const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", m.data));
        const hex = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
        out.push({ area: m.data.reduce((a, b) => a + b, 0), sha256: hex });
      }
      return out;
    },
    [id, SLICES],
  );
}

/** Waits for the newest message of the page to match `re`; returns its text. */
function waitMessage(page, re) {
  return until(
    page,
    (src) => {
      const text = document.querySelector("#messages .msg-text")?.textContent || "";
      return new RegExp(src).test(text) && text;
    },
    re.source,
    { timeout: 60000, what: `a message matching ${re}` },
  );
}

/** [Undo disabled, Redo disabled] once they agree with what the engine can undo and redo. */
function buttons(page) {
  return until(
    page,
    () => {
      const u = /** @type {HTMLButtonElement} */ (document.getElementById("undo"));
      const r = /** @type {HTMLButtonElement} */ (document.getElementById("redo"));
      const h = window.medseg.history;
      const settled = document.body.dataset.busy === "" && u.disabled === !h.canUndo && r.disabled === !h.canRedo;
      return settled && [u.disabled, r.disabled];
    },
    null,
    { timeout: 60000, what: "the Undo and Redo buttons" },
  );
}

test("undo and redo step through a box and a propagation, masks restored bit for bit", { timeout: 900000 }, async () => {
  const { context, close } = await launch();
  try {
    const { page, errors } = await openPage(context, "?backend=cpu");
    assert.equal(await page.evaluate(() => window.medseg.architecture()), "lite-medsam");
    await page.setInputFiles("#file-input", VOL);
    await page.waitForFunction((n) => new RegExp(`${n}`).test(document.getElementById("frame-total")?.textContent || ""), SLICES, { timeout: 60000 });
    assert.deepEqual(await buttons(page), [true, true], "nothing to undo or redo in a new document");

    // A box with the mouse on the key slice.
    await setNumber(page, "frame-number", KEY);
    await page.waitForTimeout(300);
    await drawBox(page, await imageToClient(page, 512, 512, 1), [260, 226, 331, 288]);
    const id = await firstObjectMasked(page, KEY);
    const boxed = await masksOf(page, id);
    assert.ok(boxed[KEY]?.area > 0, "the box gives a mask");
    assert.deepEqual(await buttons(page), [false, true], "the box can be undone");

    // Propagation over slices 7..11 with the button.
    await setNumber(page, "range-from", RANGE[0]);
    await setNumber(page, "range-to", RANGE[1]);
    await page.click("#prop-both");
    await page.waitForFunction(() => /^done/.test(document.getElementById("prop-status")?.textContent || ""), null, { timeout: 600000 });
    const propagated = await masksOf(page, id);
    const range = (f) => f >= RANGE[0] && f <= RANGE[1];
    propagated.forEach((m, f) => assert.equal(m !== null, range(f), `slice ${f} has a mask only within the range`));
    assert.ok(
      propagated.some((m, f) => f !== KEY && m?.area > 0),
      "the propagation made masks beyond the key slice",
    );
    assert.deepEqual(await buttons(page), [false, true]);
    log(`box on slice ${KEY}, propagated over ${RANGE.join("..")}: areas ${propagated.map((m) => m?.area ?? "-").join(" ")}`);

    // Undo (the button): the whole propagation goes, the box's mask stays as it was.
    await page.click("#undo");
    const undone = await waitMessage(page, /^Undone: propagation/);
    // 4 slices: the range less the key slice, whose mask the box made (and keeps).
    assert.match(undone, /^Undone: propagation of Object \d+ over 4 slices\.$/);
    assert.deepEqual(await masksOf(page, id), boxed, "after Undo: the box's mask alone, as before the propagation");
    assert.deepEqual(await buttons(page), [false, false], "the box can be undone, the propagation redone");

    // Redo (the button): every propagated mask is back, bit for bit.
    await page.click("#redo");
    await waitMessage(page, /^Redone: propagation/);
    assert.deepEqual(await masksOf(page, id), propagated, "after Redo: the propagated masks, bit for bit");
    assert.deepEqual(await buttons(page), [false, true]);
    log(`${undone} Redone: the ${propagated.filter(Boolean).length} masks are bit-identical`);

    // The keyboard: Ctrl+Z twice takes back the propagation, then the box.
    await page.evaluate(() => /** @type {HTMLElement | null} */ (document.activeElement)?.blur());
    await page.keyboard.press("Control+z");
    await waitMessage(page, /^Undone: propagation/);
    assert.deepEqual(await masksOf(page, id), boxed);
    await page.keyboard.press("Control+z");
    const gone = await waitMessage(page, /^Undone: box/);
    assert.equal(gone, `Undone: box on slice ${KEY} of Object ${id}.`);
    assert.deepEqual(await masksOf(page, id), Array(SLICES).fill(null), "no mask left");
    assert.deepEqual(await page.evaluate(() => window.medseg.objects()), []);
    assert.deepEqual(await buttons(page), [true, false], "nothing left to undo");
    // Ctrl+Y and Ctrl+Shift+Z redo: the box, then the propagation, as they were.
    await page.keyboard.press("Control+y");
    await waitMessage(page, /^Redone: box/);
    assert.deepEqual(await masksOf(page, id), boxed);
    await page.keyboard.press("Control+Shift+z");
    await waitMessage(page, /^Redone: propagation/);
    assert.deepEqual(await masksOf(page, id), propagated, "redone from the keyboard: bit for bit");
    log("Ctrl+Z twice: propagation then box taken back; Ctrl+Y, Ctrl+Shift+Z: both back");
    assert.deepEqual(errors, [], `console errors:${errorsText(errors)}`);
  } finally {
    await close();
  }
});
