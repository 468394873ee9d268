// Caches: frames (display RGBA as canvases, LRU by bytes) and mask overlays.
import { medseg } from '../medseg.js';
import { maskToOverlay, frameToCanvas } from '../ui/overlay.js';
import { state, hasVoxelValues } from './state.js';

class FrameCache {
  constructor(budgetBytes) {
    this.budget = budgetBytes;
    this.map = new Map();
    this.bytes = 0;
    /** Bumped by clear(): a frame fetched before it is stale. */
    this.gen = 0;
  }

  get(frame) {
    const c = this.map.get(frame);
    if (c) {
      this.map.delete(frame);
      this.map.set(frame, c);
    }
    return c;
  }

  set(frame, canvas) {
    this.delete(frame);
    this.map.set(frame, canvas);
    this.bytes += canvas.width * canvas.height * 4;
    for (const [f, c] of this.map) {
      if (this.bytes <= this.budget || this.map.size <= 2) break;
      this.map.delete(f);
      this.bytes -= c.width * c.height * 4;
    }
  }

  delete(frame) {
    const c = this.map.get(frame);
    if (c) {
      this.map.delete(frame);
      this.bytes -= c.width * c.height * 4;
    }
  }

  clear() {
    this.map.clear();
    this.bytes = 0;
    this.gen += 1;
  }
}

export const frameCache = new FrameCache(256 * 1024 * 1024);

/** key "frame:objId" -> {mask | null, overlay: {canvas, area} | null, edge, color} */
export const maskCache = new Map();

export const maskKey = (frame, id) => `${frame}:${id}`;

export function forgetMasksOfObject(id) {
  for (const k of [...maskCache.keys()]) if (k.endsWith(`:${id}`)) maskCache.delete(k);
}

function forgetMasksOfFrame(frame) {
  for (const k of [...maskCache.keys()]) if (k.startsWith(`${frame}:`)) maskCache.delete(k);
}

/**
 * Frame `frame` as shown: through the display window the page shows (a volume), else as
 * the model sees it. A frame fetched while the cache was cleared (a new display window)
 * is returned but not kept.
 */
export async function getFrameCanvas(frame) {
  const hit = frameCache.get(frame);
  if (hit) return hit;
  const gen = frameCache.gen;
  const data = await medseg.getFrame(frame, state.displayWindow ? { window: state.displayWindow } : {});
  const canvas = frameToCanvas(data);
  if (gen === frameCache.gen) frameCache.set(frame, canvas);
  return canvas;
}

/** The stored values of the volume slice on screen, for the value under the cursor. */
let shownValues = { frame: -1, docGen: -1, values: /** @type {Float32Array | null} */ (null), pending: false };

/**
 * The value of voxel (x, y) of volume slice `frame` as stored, or undefined while the
 * slice's values are being fetched (they come once per slice).
 */
export function voxelValue(frame, x, y) {
  const doc = state.doc;
  if (!hasVoxelValues(doc) || x < 0 || y < 0 || x >= doc.width || y >= doc.height) return undefined;
  if (shownValues.frame === frame && shownValues.docGen === state.docGen) return shownValues.values?.[y * doc.width + x];
  if (!shownValues.pending) {
    shownValues = { frame, docGen: state.docGen, values: null, pending: true };
    medseg
      .getFrameValues(frame)
      .then((v) => {
        if (shownValues.frame === frame) shownValues = { ...shownValues, values: v.data, pending: false };
      })
      .catch(() => {
        shownValues = { ...shownValues, pending: false };
      });
  }
  return undefined;
}

/** Outline width in mask pixels for a display scale (display px per image px). */
export function edgeFor(scale) {
  return scale >= 1 || !(scale > 0) ? 1 : Math.min(8, Math.ceil(1 / scale));
}

/** Keeps an engine mask ({width, height, data}, or null for none) for drawing. */
export function cacheMask(frame, id, mask) {
  const entry = { mask, overlay: null, edge: 0, color: '' };
  maskCache.set(maskKey(frame, id), entry);
  return entry;
}

/** Forgets the cached mask of object `id` on `frame` (the engine has none, or another). */
export function forgetMask(frame, id) {
  maskCache.delete(maskKey(frame, id));
}

/**
 * Takes the masks a propagation step carries ({frame, obj, width, height, data} each) in
 * place of what the cache had for those frames; returns their object ids.
 */
export function takeStepMasks(masks) {
  for (const f of new Set(masks.map((m) => m.frame))) forgetMasksOfFrame(f);
  for (const m of masks) cacheMask(m.frame, m.obj, m);
  return [...new Set(masks.map((m) => m.obj))];
}

/** The overlay of one object on one frame ({canvas, area} or null), from the cache or the engine. */
export async function getOverlay(frame, obj, edge) {
  let entry = maskCache.get(maskKey(frame, obj.id));
  if (!entry) {
    const mask = obj.inEngine ? await medseg.getMask(frame, obj.id) : null;
    entry = cacheMask(frame, obj.id, mask);
  }
  if (!entry.mask) return null;
  if (!entry.overlay || entry.edge !== edge || entry.color !== obj.color) {
    entry.overlay = maskToOverlay(entry.mask, obj.color, { edge });
    entry.edge = edge;
    entry.color = obj.color;
  }
  return entry.overlay;
}
