// Privacy and offline: every request goes to the page's own origin, none at all once the
// shell and the model are loaded (opening, segmenting, propagating, exporting), and with
// the network off (context.setOffline) a reload still segments, from the service worker's
// cache (sw.js).
import { test } from "node:test";
import assert from "node:assert/strict";
import { launch, openPage, waitReady, log, BASE, LITE_URL, errorsText, openCtVolume, loadLiteMedSam } from "./lib.mjs";


async function ensureModel(page) {
  let arch = await page.evaluate(() => window.medseg.architecture());
  if (arch !== "lite-medsam") {
    log(`the page loaded no default model (${arch}); loading ${LITE_URL}`);
    await loadLiteMedSam(page);
    arch = await page.evaluate(() => window.medseg.architecture());
  }
  assert.equal(arch, "lite-medsam");
}

async function segmentVolume(page) {
  const info = await openCtVolume(page);
  assert.equal(info.frames, 16);
  const res = await page.evaluate(() => window.medseg.addBox(8, 1, [260, 226, 331, 288]));
  assert.ok(res.area > 1000, `mask area ${res.area}`);
  return res;
}

test("no request leaves the origin; none after load; offline reload segments", { timeout: 1200000 }, async () => {
  const { context, close } = await launch();
  try {
    const origin = new URL(BASE).origin;
    const { page, errors, requests } = await openPage(context, "?backend=cpu");
    await ensureModel(page);
    // The service worker controls the page once it has activated (first visit: claim).
    const sw = await page.evaluate(async () => {
      if (!("serviceWorker" in navigator)) return "unsupported";
      const reg = await Promise.race([navigator.serviceWorker.ready, new Promise((r) => setTimeout(() => r(null), 20000))]);
      return reg ? (navigator.serviceWorker.controller ? "controlling" : "registered") : "none";
    });
    log(`service worker: ${sw}; ${requests.length} requests while loading`);
    const foreign = requests.filter((r) => new URL(r.url).origin !== origin && !r.url.startsWith("data:") && !r.url.startsWith("blob:"));
    assert.deepEqual(foreign.map((r) => r.url), [], "requests to other hosts");

    await page.waitForTimeout(2000); // let start-up work settle (cache fills)
    const before = requests.length;
    await segmentVolume(page);
    await page.evaluate(() => window.medseg.propagate("both", { range: [7, 9] }));
    await page.evaluate(async () => (await window.medseg.exportNifti()).size);
    await page.waitForTimeout(500);
    const after = requests.slice(before).filter((r) => !r.url.startsWith("blob:") && !r.url.startsWith("data:"));
    assert.deepEqual(after.map((r) => r.url), [], "requests after shell + model were loaded");

    // Offline: reload and segment again.
    assert.equal(sw === "controlling" || sw === "registered", true, `no service worker (${sw}): the page cannot work offline`);
    await context.setOffline(true);
    const reqBefore = requests.length;
    await page.reload();
    await page.waitForFunction(() => typeof window.medseg === "object", null, { timeout: 60000 });
    await waitReady(page);
    await ensureModel(page);
    const res = await segmentVolume(page);
    log(`offline reload: segmented key slice, area ${res.area} px (${requests.length - reqBefore} requests, all answered by the service worker)`);
    await context.setOffline(false);
    assert.deepEqual(errors.filter((e) => !/ERR_INTERNET_DISCONNECTED/.test(e)), [], `console errors:${errorsText(errors)}`);
  } finally {
    await close();
  }
});
