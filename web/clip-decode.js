// Clips decoded in the page: the browser's video element plays the file, a canvas takes
// frames at a fixed rate (at most `maxFrames` of at most `maxSide` px), and each frame
// goes to the engine as RGBA. Only the browser can decode MP4/WebM here, so this is the
// one part of opening a file that does not run in the worker.

/**
 * Waits for `okEvent` on `target`, failing on `errEvent` or after `timeoutMs`.
 * @param {HTMLVideoElement} target
 */
function once(target, okEvent, errEvent, timeoutMs, what) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      cleanup();
      reject(new Error(`${what}: timed out`));
    }, timeoutMs);
    const ok = () => {
      cleanup();
      resolve();
    };
    const bad = () => {
      cleanup();
      reject(new Error(`${what}: the browser cannot decode this video (${target.error?.message || "unsupported codec or damaged file"})`));
    };
    const cleanup = () => {
      clearTimeout(t);
      target.removeEventListener(okEvent, ok);
      if (errEvent) target.removeEventListener(errEvent, bad);
    };
    target.addEventListener(okEvent, ok);
    if (errEvent) target.addEventListener(errEvent, bad);
  });
}

/**
 * Decodes `file` into frames, handing each to `push({data, width, height})` (data: the
 * RGBA ArrayBuffer, transferable) in order; resolves to the notices about limits applied.
 * @param {Blob} file
 * @param {string} name
 * @param {{ maxFrames: number, maxSide: number, fps: number, onProgress?: (progress: object) => void }} opts
 * @param {(frame: { data: ArrayBuffer, width: number, height: number }) => Promise<unknown>} push
 * @returns {Promise<string[]>}
 */
export async function decodeClip(file, name, { maxFrames, maxSide, fps, onProgress }, push) {
  const url = URL.createObjectURL(file);
  const video = document.createElement("video");
  video.muted = true;
  video.playsInline = true;
  video.preload = "auto";
  const notices = [];
  try {
    video.src = url;
    await once(video, "loadedmetadata", "error", 20000, name);
    if (!Number.isFinite(video.duration)) {
      // MediaRecorder WebM has no duration until the end has been seen.
      video.currentTime = 1e7;
      await once(video, "seeked", "error", 20000, name);
    }
    const duration = Number.isFinite(video.duration) ? video.duration : 0;
    const vw = video.videoWidth;
    const vh = video.videoHeight;
    if (!vw || !vh) throw Object.assign(new Error(`${name}: the video has no picture`), { name: "MedSegError" });
    let n = Math.max(1, Math.floor(duration * fps + 1e-6));
    let step = 1 / fps;
    if (n > maxFrames) {
      notices.push(`${name}: ${n} frames at ${fps} fps exceed the limit of ${maxFrames}; sampled ${maxFrames} frames across the clip`);
      step = duration / maxFrames;
      n = maxFrames;
    }
    const scale = Math.min(1, maxSide / Math.max(vw, vh));
    const w = Math.max(1, Math.round(vw * scale));
    const h = Math.max(1, Math.round(vh * scale));
    if (scale < 1) notices.push(`${name}: ${vw}×${vh} scaled to ${w}×${h} (limit ${maxSide} px)`);
    const canvas = document.createElement("canvas");
    canvas.width = w;
    canvas.height = h;
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    for (let i = 0; i < n; i++) {
      // The middle of frame i's interval, so a seek lands inside it.
      const t = Math.min(i * step + step / 2, Math.max(0, duration - 1e-3));
      if (Math.abs(video.currentTime - t) > 1e-6) {
        video.currentTime = t;
        await once(video, "seeked", "error", 20000, name);
      }
      ctx.drawImage(video, 0, 0, w, h);
      const data = ctx.getImageData(0, 0, w, h).data.buffer;
      await push({ data, width: w, height: h });
      onProgress?.({ task: "decode", loaded: i + 1, total: n, fraction: (i + 1) / n });
    }
    return notices;
  } finally {
    video.removeAttribute("src");
    video.load();
    URL.revokeObjectURL(url);
  }
}
