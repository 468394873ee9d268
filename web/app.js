// MedSeg page: wires the controls to the engine's public JS API (web/medseg.js).
//
// Everything the page does to images, masks and models goes through the public API
// (web/medseg.js, the same `window.medseg` other pages and scripts use); the engine
// holds the prompts (and their undo) and the masks, and the page keeps what it shows: the
// objects, their colours, the prompts as the engine's events report them, caches of
// frames and mask overlays, and the UI.
//
// This file starts the page. Its modules are in web/page/ (README.md's Layout lists them);
// importing one wires up its controls.
import { DEFAULT_MODEL_PATH } from './medseg.js';
import { ui, messages, state } from './page/state.js';
import { viewer, scheduleRender, updateControls } from './page/view.js';
import { startEngine } from './page/engine.js';
import { populateModels, loadModelUrl } from './page/model.js';
import { renderObjectList } from './page/objects.js';
import { startOffline } from './page/offline-status.js';
// Imported for the controls and listeners they wire up.
import './page/documents.js';
import './page/prompts.js';
import './page/propagation.js';
import './page/export.js';
import './page/teach.js';
import './page/keyboard.js';

/** `?model=weights/NAME.safetensors` picks the model loaded at start; `?model=none` none. */
function startModel() {
  const q = new URLSearchParams(location.search).get('model');
  if (q === null) return DEFAULT_MODEL_PATH;
  if (q === 'none' || q === '') return null;
  if (/^weights\/[\w.-]+\.(safetensors|pt|pth)$/.test(q) && !q.includes('..')) return q;
  messages.warn(`Ignoring ?model=${q}: expected weights/NAME.safetensors (or .pt) or none.`);
  return DEFAULT_MODEL_PATH;
}

/** Marks the page's start-up state on <body data-state> (starting, ready, engine-failed). */
function setPageState(value) {
  document.body.dataset.state = value;
}

async function main() {
  setPageState('starting');
  // The keyboard list starts folded where it would run below the fold.
  if (window.innerHeight < 860) ui.keysCard.open = false;
  viewer.setTool(state.tool);
  updateControls();
  renderObjectList();
  await populateModels();
  await startOffline();
  if (!(await startEngine())) {
    setPageState('engine-failed');
    scheduleRender();
    return;
  }
  await populateModels();
  scheduleRender();
  const model = startModel();
  if (model) await loadModelUrl(model, { auto: model === DEFAULT_MODEL_PATH });
  updateControls();
  setPageState('ready');
}

main().catch((err) => {
  setPageState('engine-failed');
  messages.error('Starting MedSeg', err);
});
