// Calls made through window.medseg by scripts or an embedding page.
//
// The API reports each successful call as an event ("model", "open", "prompt", "frame",
// "window", "reset"), whoever made it, and the page shows documents, windows, prompts,
// propagated masks and resets from those events for every call (documents.js,
// prompts.js, propagation.js, objects.js). What remains here is what only a call from
// elsewhere needs (an event while the page is idle): a message saying a script did it,
// the frame it prompted, its progress; and a model a script loaded.
import { medseg } from '../medseg.js';
import { KNOWN_MODELS, fileLabel } from '../ui/models.js';
import { ui, messages, state, frameWord } from './state.js';
import { plural } from '../ui/dom.js';
import { maskCache } from './cache.js';
import { scheduleRender, setFrame, updateControls } from './view.js';
import { populateModels, showModel } from './model.js';
import { describeDoc } from './documents.js';
import { renderObjectList } from './objects.js';
import { showFrameProgress } from './propagation.js';

const MIRRORED_EVENTS = {
  model: mirrorModel,
  open: mirrorOpen,
  prompt: mirrorPrompt,
  frame: mirrorFrame,
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

/** A script opened a file (documents.js shows it): say so. */
function mirrorOpen(_event) {
  if (!state.doc) return;
  messages.ok(`Opened ${state.doc.name}: ${describeDoc(state.doc)} (by a script).`);
  if (state.doc.notice) messages.warn(state.doc.notice);
}

/** A script prompted an object: show that frame (the prompt itself is shown by prompts.js). */
function mirrorPrompt({ frame }) {
  if (state.doc && Number.isInteger(frame)) setFrame(frame);
}

/** When a script's propagation started (its first step's answer, less that step's time). */
let scriptRunStart = 0;

function mirrorFrame(ev) {
  if (!state.doc) return;
  const { done, total } = ev;
  const finished = done >= total;
  if (done <= 1) scriptRunStart = performance.now() - (Number(ev.ms) || 0);
  showFrameProgress(ev, performance.now() - scriptRunStart);
  ui.propStatus.textContent = finished
    ? `done: ${plural(total, frameWord())} (propagated by a script)`
    : `${ui.propStatus.textContent} (propagated by a script)`;
  if (finished) {
    renderObjectList();
    updateControls();
  }
}
