// The model picker's entries: the models weights/ holds and those the offline cache holds.
//
// `medseg serve` answers /models.json with the model files in weights/ (a static server may
// ship such a file itself), so the picker lists only models that are there: a model whose
// file is absent is not offered, the page instead says where to get it. Without that list
// (another server, or offline) the picker offers the default model and the cached ones;
// a pick is then checked before it is loaded.
import { DEFAULT_MODEL_PATH } from '../medseg.js';

/**
 * Labels of the files weights/README.md names; `url` is relative to the page (the app's
 * root), as in ?model=. Other files are shown by their name.
 */
export const KNOWN_MODELS = [
  { url: DEFAULT_MODEL_PATH, label: 'LiteMedSAM (default)', group: 'default' },
  { url: 'weights/medsam2_latest.safetensors', label: 'MedSAM2 latest', group: 'medsam2' },
  { url: 'weights/medsam2_latest.f16.safetensors', label: 'MedSAM2 latest, float16', group: 'medsam2' },
];

/** Where the MedSAM2 checkpoints come from, and the two ways to use one here. */
export const MEDSAM2_HELP =
  'MedSAM2 is not in weights/. Download MedSAM2_latest.pt (or MedSAM2_CTLesion.pt, ' +
  'MedSAM2_US_Heart.pt, MedSAM2_MRI_LiverLesion.pt) from the MedSAM2 authors\' release: ' +
  'huggingface.co/wanglab/MedSAM2 (code: github.com/bowang-lab/MedSAM2; weights CC-BY-SA-4.0). ' +
  'Then choose "Open a model file…" to load the .pt here (it stays in this browser), or convert it ' +
  'once so that the picker lists it: medseg convert MedSAM2_latest.pt weights/medsam2_latest.safetensors';

/**
 * The model files the server lists (/models.json, see the top of this file) as URLs
 * relative to the page; null when there is no list (another server, or offline).
 * @returns {Promise<string[] | null>}
 */
export async function listedWeights() {
  try {
    const res = await fetch('models.json', { cache: 'no-store' });
    if (!res.ok) return null;
    const list = (await res.json())?.weights;
    if (!Array.isArray(list)) return null;
    return list.map((w) => String(w?.file ?? '')).filter((f) => /^weights\/[^/]+\.(safetensors|pt|pth)$/.test(f));
  } catch {
    return null;
  }
}

/** Cache Storage names the service worker keeps weights in (see sw.js). */
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

/** Whether the offline cache holds `url` (relative to the page); false without Cache Storage (private mode). */
export async function isCached(url) {
  try {
    return 'caches' in globalThis && !!(await caches.match(new URL(url, document.baseURI).href));
  } catch {
    return false;
  }
}

/**
 * Whether a weights file can be had: 'cached', 'present', 'missing', or 'unknown' (no
 * network and not cached).
 */
export async function weightsStatus(url) {
  if (await isCached(url)) return 'cached';
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
