// Calls made through window.medseg by scripts or an embedding page.
//
// The API reports each successful call as an event ("model", "open", "prompt", "frame",
// "reset"), whoever made it. The page's own calls run while `state.busy` is set and update
// the view themselves; an event that arrives while the page is idle came from elsewhere,
// and the page mirrors it so that what it shows is what the engine holds.
import { medseg } from '../medseg.js';
import { KNOWN_MODELS, fileLabel } from '../ui/models.js';
import { messages, state, frameWord } from './state.js';
import { maskCache, forgetMasksOfObject, cacheMask, takeFrameMasks } from './cache.js';
import { scheduleRender, setFrame, updateControls } from './view.js';
import { populateModels, showModel } from './model.js';
import { showDocument, describeDoc, showWindow } from './documents.js';
import { clonePrompts, objectRecord, addObject, renderObjectList } from './objects.js';
import { showFrameProgress } from './propagation.js';

const MIRRORED_EVENTS = {
  model: mirrorModel,
  open: mirrorOpen,
  prompt: mirrorPrompt,
  frame: mirrorFrame,
  window: mirrorWindow,
  reset: mirrorReset,
};

export function watchExternalCalls() {
  for (const [name, handler] of Object.entries(MIRRORED_EVENTS)) {
    medseg.on(name, (detail) => {
      if (state.busy || !detail) return;
      try {
        handler(detail);
      } catch (err) {
        messages.error(`Showing a "${name}" call made by a script`, err);
      }
    });
  }
}

function mirrorModel({ info, source }) {
  if (!info) return;
  const known = KNOWN_MODELS.find((m) => typeof source === 'string' && new URL(m.url, location.href).href === source);
  const label = known?.label ?? (source ? fileLabel(String(source)) : 'model');
  const shown = showModel(info, { key: known?.url ?? '', label });
  // The engine drops prompts (not masks) with a model change.
  for (const obj of state.objects) obj.prompts = new Map();
  messages.ok(`Model ready: ${shown} (loaded by a script).`);
  populateModels();
  maskCache.clear();
  updateControls();
  scheduleRender();
}

function mirrorOpen({ info }) {
  showDocument(info, { name: info.name, size: undefined });
  messages.ok(`Opened ${state.doc.name}: ${describeDoc(state.doc)} (by a script).`);
  if (state.doc.notice) messages.warn(state.doc.notice);
  updateControls();
  scheduleRender();
}

/** The page's object with engine id `id`, made (with its own colour) when new. */
function objectWithId(id) {
  let obj = state.objects.find((o) => o.id === id);
  if (obj) return obj;
  // The first, still empty object of a document stands for the script's first object.
  const blank = state.objects.length === 1 && !state.objects[0].inEngine && !state.objects[0].prompts.size;
  if (blank) state.objects = [];
  obj = objectRecord(id);
  state.objects.push(obj);
  state.objects.sort((a, b) => a.id - b.id);
  state.nextId = Math.max(state.nextId, id + 1);
  state.selectedId = id;
  return obj;
}

function mirrorPrompt({ frame, obj: id, box, points = [], mask }) {
  if (!state.doc || !Number.isInteger(frame) || !Number.isInteger(id)) return;
  const obj = objectWithId(id);
  obj.history.push(clonePrompts(obj.prompts));
  const entry = obj.prompts.get(frame) ?? { box: null, points: [] };
  // As the engine does: a box starts the frame's prompt afresh, points add to it.
  obj.prompts.set(frame, box ? { box: [...box], points: points.map((p) => [...p]) } : { box: entry.box, points: [...entry.points, ...points] });
  obj.inEngine = true;
  forgetMasksOfObject(id);
  if (mask) cacheMask(frame, id, mask);
  renderObjectList();
  setFrame(frame);
  updateControls();
  scheduleRender();
}

function mirrorFrame(ev) {
  if (!state.doc) return;
  const { frame, done, total } = ev;
  const finished = done >= total;
  showFrameProgress(
    ev,
    finished
      ? `done: ${total} ${frameWord()}s (propagated by a script)`
      : `${frameWord()} ${frame} · ${done}/${total} (propagated by a script)`,
  );
  for (const id of takeFrameMasks(frame, ev.masks)) objectWithId(id).inEngine = true;
  if (frame === state.frame || finished) {
    renderObjectList();
    updateControls();
    scheduleRender();
  }
}

function mirrorWindow({ window }) {
  if (!state.doc || state.doc.kind !== 'volume') return;
  // The engine drops prompts (not masks) with a new window, as with a new model.
  for (const obj of state.objects) obj.prompts = new Map();
  showWindow(window);
  scheduleRender();
}

function mirrorReset({ obj: id }) {
  if (id === null || id === undefined) {
    state.objects = [];
    state.nextId = 1;
    maskCache.clear();
    if (state.doc) addObject();
  } else {
    state.objects = state.objects.filter((o) => o.id !== id);
    forgetMasksOfObject(id);
    if (state.selectedId === id) state.selectedId = state.objects.at(-1)?.id ?? null;
  }
  renderObjectList();
  updateControls();
  scheduleRender();
}
