// The model picker's entries: what weights/ holds, plus models the offline cache holds.
//
// `medseg serve` has no directory listings, so the page cannot list weights/ itself: it
// offers the default model (scripts/fetch-weights.sh puts it there) and the file names
// weights/README.md tells users to convert MedSAM2 checkpoints to, and checks that a file
// is there only when the user picks it (so that loading the page requests nothing that may
// not exist). Models already in the offline cache are listed as such.
import { DEFAULT_MODEL_PATH } from '../medseg.js';

/** The picker's entries; `url` is relative to the page (the app's root), as in ?model=. */
export const KNOWN_MODELS = [
  { url: DEFAULT_MODEL_PATH, label: 'LiteMedSAM (default)', group: 'default' },
  { url: 'weights/medsam2_latest.safetensors', label: 'MedSAM2 latest', group: 'medsam2' },
  { url: 'weights/medsam2_latest.f16.safetensors', label: 'MedSAM2 latest, float16', group: 'medsam2' },
];

/** Cache Storage names the service worker keeps weights in (see web/sw.js). */
const WEIGHTS_CACHE_PREFIX = 'medseg-weights-';

/** URLs (relative to the page) of weights files already in the offline cache. */
export async function cachedWeights() {
  if (!('caches' in globalThis)) return [];
  try {
    const names = (await caches.keys()).filter((n) => n.startsWith(WEIGHTS_CACHE_PREFIX));
    const base = new URL('./', document.baseURI);
    const out = new Set();
    for (const name of names) {
      const cache = await caches.open(name);
      for (const req of await cache.keys()) {
        const url = new URL(req.url);
        if (url.origin !== base.origin || !url.pathname.startsWith(base.pathname)) continue;
        out.add(url.pathname.slice(base.pathname.length));
      }
    }
    return [...out];
  } catch {
    return [];
  }
}

/**
 * Whether a weights file can be had: 'cached', 'present', 'missing', or 'unknown' (no
 * network and not cached).
 */
export async function weightsStatus(url) {
  try {
    if ('caches' in globalThis && (await caches.match(new URL(url, document.baseURI).href))) {
      return 'cached';
    }
  } catch {
    // Cache Storage can be unavailable (private mode): fall through to the network.
  }
  try {
    const res = await fetch(url, { method: 'HEAD', cache: 'no-store' });
    return res.ok ? 'present' : 'missing';
  } catch {
    return 'unknown';
  }
}

/** "weights/medsam2_latest.safetensors" -> "medsam2_latest.safetensors". */
export function fileLabel(url) {
  return url.replace(/^.*\//, '');
}
