// A synthetic clip made in the page (a bright disk moving over speckle, drawn on a canvas
// and recorded to WebM with MediaRecorder), decoded by openFile, prompted on frame 0 and
// propagated across every frame with LiteMedSAM on the CPU backend.
import { test } from "node:test";
import assert from "node:assert/strict";
import { launch, openPage, log, makeSyntheticClip, errorsText, loadLiteMedSam } from "./lib.mjs";

const N = 16; // frames drawn, 10 per second
const W = 320;
const H = 240;
const R = 28;
// LiteMedSAM prompts each frame with the previous mask's box widened by 3 px (of 256):
// the disk moves 2-3 px a frame, as a structure does between ultrasound frames.
const centre = (i) => [120 + (40 * i) / (N - 1), 120 + 6 * Math.sin(i / 3)];

/** A box around the disk where frame 0 shows it (found from the decoded pixels). */
function diskBox(page) {
  return page.evaluate(async () => {
    const f = await window.medseg.getFrame(0);
    let sx = 0, sy = 0, n = 0;
    for (let y = 0; y < f.height; y++) for (let x = 0; x < f.width; x++) {
      // Bright pixels with bright neighbours: the disk, not the speckle.
      const v = (dx, dy) => f.data[4 * ((y + dy) * f.width + x + dx)] ?? 0;
      if (v(0, 0) > 140 && v(2, 0) > 140 && v(0, 2) > 140) { sx += x; sy += y; n++; }
    }
    const cx = sx / n, cy = sy / n;
    return [Math.max(0, cx - 36), Math.max(0, cy - 36), Math.min(f.width - 1, cx + 36), Math.min(f.height - 1, cy + 36)];
  });
}

/** Area and centre of object 1's mask on frames 0..n-1 (null where there is none). */
function maskStats(page, n) {
  return page.evaluate(async (n) => {
    const out = [];
    for (let f = 0; f < n; f++) {
      const m = await window.medseg.getMask(f, 1);
      if (!m) { out.push(null); continue; }
      let a = 0, sx = 0, sy = 0;
      for (let p = 0; p < m.data.length; p++) if (m.data[p]) { a++; sx += p % m.width; sy += Math.floor(p / m.width); }
      out.push({ area: a, cx: sx / a, cy: sy / a });
    }
    return out;
  }, n);
}

test("synthetic WebM clip: propagation puts a mask on every frame", { timeout: 1200000 }, async () => {
  const { context, close } = await launch();
  try {
    const { page, errors } = await openPage(context, "?backend=cpu&model=none");
    await loadLiteMedSam(page);

    const size = await makeSyntheticClip(page, { N, W, H, R, centres: Array.from({ length: N }, (_, i) => centre(i)) });
    log(`recorded synthetic.webm: ${size} bytes, ${N} frames drawn`);

    // Limits: fewer frames and a smaller size than the clip has, each with a notice.
    const capped = await page.evaluate(async () => {
      const notices = [];
      const off = window.medseg.on("notice", (e) => notices.push(e.message));
      const info = await window.medseg.openFile(window.__clip, { fps: 10, maxFrames: 8, maxSide: 160 });
      off();
      return { ...info, events: notices };
    });
    log(`with limits: ${capped.frames} frames of ${capped.width}×${capped.height}; notices: ${capped.notices.join(" | ")}`);
    assert.deepEqual([capped.frames, capped.width, capped.height], [8, 160, 120]);
    assert.equal(capped.notices.length, 2);
    assert.deepEqual(capped.events, capped.notices, "notice events");

    const t0 = Date.now();
    const info = await page.evaluate(() => window.medseg.openFile(window.__clip, { fps: 10 }));
    log(`decoded ${info.frames} frames of ${info.width}×${info.height} in ${Date.now() - t0} ms`);
    assert.equal(info.kind, "clip");
    assert.deepEqual([info.width, info.height], [W, H]);
    assert.ok(info.frames >= N - 3 && info.frames <= N + 1, `${info.frames} frames decoded`);

    // Box around the disk where frame 0 shows it (found from the decoded pixels).
    const box = await diskBox(page);
    const key = await page.evaluate((b) => window.medseg.addBox(0, 1, b), box);
    assert.ok(key.area > 0.5 * Math.PI * R * R, `disk mask on frame 0: ${key.area} px`);

    // Propagate, cancel mid-way, then go on to the end.
    await page.evaluate(() => {
      window.__done = 0;
      window.__prop = window.medseg.propagate("forward", { onFrame: (e) => (window.__done = e.done) });
    });
    await page.waitForFunction(() => window.__done >= 3, null, { timeout: 600000 });
    await page.evaluate(() => window.medseg.cancel());
    const part = await page.evaluate(() => window.__prop);
    assert.equal(part.cancelled, true, "cancel() stops the propagation");
    assert.ok(part.frames >= 3 && part.frames < info.frames, `${part.frames} frames before the cancel`);
    log(`cancelled after ${part.frames} frames`);
    const prop = await page.evaluate(() => window.medseg.propagate("forward"));
    log(`propagated ${prop.frames} frames, ${prop.msPerFrame.toFixed(0)} ms/frame`);
    // LiteMedSAM's walk starts from the key frame's mask (the box made it): every other frame.
    assert.equal(await page.evaluate(() => window.medseg.architecture()), "lite-medsam");
    assert.equal(prop.frames, info.frames - 1);

    const stats = await maskStats(page, info.frames);
    for (const [f, s] of stats.entries()) {
      assert.ok(s && s.area > 0.5 * Math.PI * R * R, `frame ${f}: mask area ${s?.area}`);
      assert.ok(s.area < 2 * Math.PI * R * R, `frame ${f}: mask area ${s.area} too large`);
    }
    // The mask follows the disk: it ends right of where it started.
    assert.ok(stats.at(-1).cx - stats[0].cx > 25, `mask centre moved from ${stats[0].cx} to ${stats.at(-1).cx}`);
    log(`mask areas ${stats.map((s) => s.area).join(" ")}`);
    assert.deepEqual(errors, [], `console errors:${errorsText(errors)}`);
  } finally {
    await close();
  }
});

// The same kind of clip as MP4 (H.264, as phones and ultrasound machines export): decoded
// by the page and propagated over its first frames.
test("synthetic MP4 (H.264) clip: decoded, masks on the frames propagated", { timeout: 1200000 }, async () => {
  const { context, close } = await launch();
  try {
    const { page, errors } = await openPage(context, "?backend=cpu&model=none");
    await loadLiteMedSam(page);
    const size = await makeSyntheticClip(page, {
      N,
      W,
      H,
      R,
      centres: Array.from({ length: N }, (_, i) => centre(i)),
      mimeType: "video/mp4;codecs=avc1",
    });
    log(`recorded synthetic.mp4: ${size} bytes, ${N} frames drawn`);
    const info = await page.evaluate(() => window.medseg.openFile(window.__clip, { fps: 10 }));
    log(`decoded ${info.frames} frames of ${info.width}×${info.height}`);
    assert.equal(info.kind, "clip");
    assert.deepEqual([info.width, info.height], [W, H]);
    assert.ok(info.frames >= N - 3 && info.frames <= N + 1, `${info.frames} frames decoded`);

    const key = await page.evaluate((b) => window.medseg.addBox(0, 1, b), await diskBox(page));
    assert.ok(key.area > 0.5 * Math.PI * R * R, `disk mask on frame 0: ${key.area} px`);
    const prop = await page.evaluate(() => window.medseg.propagate("forward", { range: [0, 5] }));
    assert.equal(prop.frames, 5, "frames 1..5: the key frame keeps the box's mask");
    const stats = await maskStats(page, 6);
    for (const [f, s] of stats.entries()) {
      assert.ok(s && s.area > 0.5 * Math.PI * R * R && s.area < 2 * Math.PI * R * R, `frame ${f}: mask area ${s?.area}`);
    }
    log(`MP4 mask areas ${stats.map((s) => s.area).join(" ")}`);
    assert.deepEqual(errors, [], `console errors:${errorsText(errors)}`);
  } finally {
    await close();
  }
});
