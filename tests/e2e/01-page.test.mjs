// The page: loads with zero console errors; headless Chromium's only WebGPU adapter is
// SwiftShader (a software renderer, with --enable-unsafe-webgpu), which runs the models far
// slower than the CPU backend, so "auto" picks the CPU and says why; ?backend=webgpu still
// runs on it. Screenshot of the page.
import { test } from "node:test";
import assert from "node:assert/strict";
import { launch, openPage, screenshot, log, errorsText } from "./lib.mjs";

test("page loads without console errors; a software WebGPU adapter is not the default", { timeout: 300000 }, async () => {
  const { context, close } = await launch();
  try {
    const t0 = Date.now();
    const { page, errors } = await openPage(context);
    log(`page ready in ${Date.now() - t0} ms (state ${await page.evaluate(() => document.body.dataset.state)})`);
    const adapter = await page.evaluate(async () => {
      if (!navigator.gpu) return { error: "navigator.gpu is missing" };
      const a = await navigator.gpu.requestAdapter();
      if (!a) return { error: "requestAdapter() returned null" };
      return { vendor: a.info.vendor, architecture: a.info.architecture };
    });
    assert.ok(!adapter.error, `no WebGPU adapter in headless Chromium (flags: --enable-unsafe-webgpu): ${adapter.error}`);
    log(`WebGPU adapter: ${adapter.vendor} / ${adapter.architecture}`);
    assert.equal(await page.evaluate(() => window.medseg.backend()), "cpu", "auto with only a software adapter");
    const [threads, cores] = await page.evaluate(async () => [await window.medseg.threads(), navigator.hardwareConcurrency]);
    assert.equal(threads, Math.min(cores, 8), "the CPU pool: every core (medseg serve isolates the page)");
    const badge = await page.textContent("#backend-badge");
    assert.equal(badge, threads > 1 ? `CPU · ${threads} threads` : "CPU");
    const notice = await page.textContent("#notices");
    log(`badge ${badge}; notice: ${notice.trim()}`);
    assert.match(notice, /software renderer \(.*swiftshader.*\), slower than the CPU backend; running on the CPU/i);
    // Let the page finish what it does at start (default model, service worker).
    await page.waitForTimeout(1000);
    await screenshot(page, "01-empty-page.png");
    assert.deepEqual(errors, [], `console errors:${errorsText(errors)}`);
  } finally {
    await close();
  }
});

test("?backend=webgpu runs on the software adapter, on the single-threaded module", { timeout: 120000 }, async () => {
  const { context, close } = await launch();
  try {
    const { page, errors } = await openPage(context, "?backend=webgpu&model=none");
    assert.equal(await page.evaluate(() => window.medseg.backend()), "webgpu");
    assert.equal(await page.evaluate(() => window.medseg.threads()), 1);
    assert.equal(await page.textContent("#backend-badge"), "WebGPU");
    assert.deepEqual(errors, [], `console errors:${errorsText(errors)}`);
  } finally {
    await close();
  }
});

test("?backend=cpu runs on the CPU backend", { timeout: 120000 }, async () => {
  const { context, close } = await launch();
  try {
    const { page, errors } = await openPage(context, "?backend=cpu&model=none&threads=1");
    assert.equal(await page.evaluate(() => window.medseg.backend()), "cpu");
    assert.equal(await page.evaluate(() => window.medseg.threads()), 1, "?threads=1: the single-threaded module");
    assert.equal(await page.textContent("#backend-badge"), "CPU");
    assert.match(await page.textContent("#notices"), /CPU backend, as \?backend=cpu/);
    assert.deepEqual(errors, [], `console errors:${errorsText(errors)}`);
  } finally {
    await close();
  }
});

// A browser without WebGPU: the page falls back to the CPU backend, says so, and works.
test("without WebGPU the page runs on the CPU backend with a notice", { timeout: 300000 }, async () => {
  const { context, close } = await launch({ webgpu: false });
  try {
    const { page, errors } = await openPage(context, "?model=none");
    assert.equal(await page.evaluate(() => window.medseg.backend()), "cpu");
    assert.match(await page.textContent("#backend-badge"), /^CPU/);
    const notice = await page.textContent("#notices");
    log(`notice: ${notice.trim()}`);
    assert.match(notice, /WebGPU.*running on the CPU.*expect seconds per mask/);
    assert.deepEqual(errors, [], `console errors:${errorsText(errors)}`);
  } finally {
    await close();
  }
});
