// Mask overlays: one colour per object, a semi-transparent fill and an opaque outline.

/** Distinct colours that stay readable over greyscale images (colour-blind friendly first). */
export const PALETTE = [
  '#ff7f0e', // orange
  '#1f9bff', // blue
  '#2ecc71', // green
  '#e8489a', // magenta
  '#ffd21f', // yellow
  '#9b6bff', // violet
  '#19d3c5', // teal
  '#ff4d4d', // red
  '#b5e61d', // lime
];

export function colorFor(index) {
  return PALETTE[index % PALETTE.length];
}

/** "#rrggbb" -> [r, g, b]. */
export function hexToRgb(hex) {
  const m = /^#?([0-9a-f]{6})$/i.exec(hex);
  const v = m ? parseInt(m[1], 16) : 0xff7f0e;
  return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
}

/**
 * Turns an engine mask ({width, height, data: Uint8Array, non-zero = inside}) into a canvas
 * of the same size: the object's colour at `fillAlpha` inside, opaque on the outline.
 * `edge` is the outline width in mask pixels (thicker when the image is shown shrunk, so
 * that the outline survives the downscale). Returns {canvas, area} (area in pixels).
 */
export function maskToOverlay(mask, color, { fillAlpha = 0.35, edge = 1 } = {}) {
  const { width: w, height: h, data } = mask;
  if (!(w > 0 && h > 0) || !data || data.length < w * h) {
    throw new Error(`engine returned a malformed mask (${w}×${h}, ${data?.length ?? 0} values)`);
  }
  const [r, g, b] = hexToRgb(color);
  const canvas = document.createElement('canvas');
  canvas.width = w;
  canvas.height = h;
  const image = new ImageData(w, h);
  // RGBA bytes viewed as little-endian uint32: 0xAABBGGRR.
  const px = new Uint32Array(image.data.buffer);
  const fill = ((Math.round(fillAlpha * 255) << 24) | (b << 16) | (g << 8) | r) >>> 0;
  const line = ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0;
  const e = Math.max(1, Math.round(edge));
  let area = 0;
  for (let y = 0; y < h; y++) {
    const row = y * w;
    for (let x = 0; x < w; x++) {
      const i = row + x;
      if (!data[i]) continue;
      area++;
      let border = x < e || y < e || x >= w - e || y >= h - e;
      for (let d = 1; !border && d <= e; d++) {
        border = !data[i - d] || !data[i + d] || !data[i - d * w] || !data[i + d * w];
      }
      px[i] = border ? line : fill;
    }
  }
  canvas.getContext('2d').putImageData(image, 0, 0);
  return { canvas, area };
}

/** Puts an engine frame ({width, height, data: RGBA}) into a canvas of its size. */
export function frameToCanvas(frame, canvas = document.createElement('canvas')) {
  const { width: w, height: h, data } = frame;
  if (!(w > 0 && h > 0) || !data || data.length < w * h * 4) {
    throw new Error(`engine returned a malformed frame (${w}×${h}, ${data?.length ?? 0} bytes)`);
  }
  if (canvas.width !== w) canvas.width = w;
  if (canvas.height !== h) canvas.height = h;
  const n = w * h * 4;
  const shared = typeof SharedArrayBuffer !== 'undefined' && data.buffer instanceof SharedArrayBuffer;
  let rgba;
  if (shared || data.length !== n) {
    rgba = new Uint8ClampedArray(n);
    rgba.set(data.subarray(0, n));
  } else {
    rgba = data instanceof Uint8ClampedArray ? data : new Uint8ClampedArray(data.buffer, data.byteOffset, n);
  }
  canvas.getContext('2d').putImageData(new ImageData(rgba, w, h), 0, 0);
  return canvas;
}
