// Loads the engine (web/medseg.js, owned by the engine side) and feature-detects its API.
// The page only ever calls the documented functions below; a missing one disables the
// controls that need it and is named in a notice, nothing is emulated.

/** Every function of the public JS API the page uses. */
export const API_FUNCTIONS = [
  'init',
  'backend',
  'on',
  'loadModel',
  'openFile',
  'frameCount',
  'getFrame',
  'setWindow',
  'addBox',
  'addPoints',
  'propagate',
  'cancel',
  'getMask',
  'removeObject',
  'reset',
  'exportNifti',
  'exportPngZip',
];

/** Functions without which nothing useful works. */
export const CORE_FUNCTIONS = ['init', 'loadModel', 'openFile', 'getFrame', 'addBox', 'getMask'];

/**
 * Imports the engine module. Returns {api} or {error}. `api.has(name)` tells whether a
 * function exists; `api.missing` lists the absent ones.
 */
export async function loadEngine() {
  let mod;
  try {
    mod = await import('../medseg.js');
  } catch (error) {
    return { error };
  }
  const src = pickSource(mod);
  const api = {
    src,
    has: (name) => typeof src?.[name] === 'function',
    missing: [],
  };
  for (const name of API_FUNCTIONS) {
    if (typeof src?.[name] === 'function') {
      api[name] = (...args) => src[name](...args);
    } else {
      api.missing.push(name);
    }
  }
  return { api };
}

/** The object holding the API: the module's named exports, its default export, or window.medseg. */
function pickSource(mod) {
  if (typeof mod?.init === 'function') return mod;
  if (mod?.default && typeof mod.default.init === 'function') return mod.default;
  if (globalThis.medseg && typeof globalThis.medseg.init === 'function') return globalThis.medseg;
  return mod?.default && typeof mod.default === 'object' ? mod.default : mod;
}
