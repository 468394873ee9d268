// Calls made through window.medseg by scripts or an embedding page.
//
// The API reports each successful call as an event ("model", "open", "prompt", "frame",
// "reset"), whoever made it. Prompts and propagated masks are shown from those events for
// every call (prompts.js, propagation.js). For the rest, the page's own calls run while
// `state.busy` is set and update the view themselves; an event that arrives while the
// page is idle came from elsewhere, and the page mirrors it here.
import { medseg } from '../medseg.js';
import { KNOWN_MODELS, fileLabel } from '../ui/models.js';
import { messages, state, frameWord } from './state.js';
import { maskCache, forgetMasksOfObject } from './cache.js';
import { scheduleRender, setFrame, updateControls } from './view.js';
import { populateModels, showModel } from './model.js';
import { showDocument, describeDoc, showWindow } from './documents.js';
import { addObject, renderObjectList } from './objects.js';
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

/** A script prompted an object: show that frame (the prompt itself is shown by prompts.js). */
function mirrorPrompt({ frame }) {
  if (state.doc && Number.isInteger(frame)) setFrame(frame);
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
  if (finished) {
    renderObjectList();
    updateControls();
  }
}

function mirrorWindow({ window }) {
  if (!state.doc || state.doc.kind !== 'volume') return;
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
