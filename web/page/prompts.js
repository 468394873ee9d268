// Prompts (box, points), undo and redo, and the prompt tool. The engine holds the prompts
// (a box starts a frame's prompt afresh, points add to it) and the undo history; the page
// shows what its "prompt", "undo" and "redo" events say it holds.
import { medseg } from '../medseg.js';
import { ui, messages, state, frameWord, selectedObject, boxOnlyModel } from './state.js';
import { cacheMask, forgetMask, forgetMasksOfObject } from './cache.js';
import { viewer, scheduleRender, redrawPrompts, updateControls, setToolHint, setFrame } from './view.js';
import { queuePrompt } from './busy.js';
import { addObject, objectWithId, renderObjectList } from './objects.js';

function canPrompt(what) {
  if (!state.inited) return false;
  if (!state.doc) {
    messages.warn(`Open a file before you ${what}.`);
    return false;
  }
  if (!state.model) {
    messages.warn(`Load a model before you ${what}.`);
    return false;
  }
  return true;
}

/**
 * Shows the engine's prompt of object `id` on `frame` and its mask, from a "prompt"
 * event: the frame's whole prompt after the call (box null and no points: none left).
 * Every prompt call reaches the page this way, its own and those of scripts.
 */
function showPrompt({ frame, obj: id, box, points = [], mask, lowConfidence = null }) {
  if (!state.doc || !Number.isInteger(frame) || !Number.isInteger(id)) return;
  const obj = objectWithId(id);
  if (box || points.length) obj.prompts.set(frame, { box: box && [...box], points: points.map((p) => [...p]) });
  else obj.prompts.delete(frame);
  // The engine's verdict on the mask (src/app/confidence.rs): flagged in the object list
  // while this frame is shown, and said once.
  if (lowConfidence?.reason) {
    obj.lowConfidence.set(frame, lowConfidence.reason);
    messages.warn(`Low confidence in ${obj.name} on ${frameWord()} ${frame}: ${lowConfidence.reason}. Check the mask; a box drawn tightly around the structure does better.`);
  } else {
    obj.lowConfidence.delete(frame);
  }
  obj.inEngine = true;
  if (mask) cacheMask(frame, id, mask);
  else forgetMask(frame, id);
  renderObjectList();
  updateControls();
  scheduleRender();
}

medseg.on('prompt', showPrompt);

function afterPrompt(ms) {
  setToolHint(
    boxOnlyModel()
      ? `Mask in ${ms.toFixed(0)} ms.${state.doc.frameCount > 1 ? ' Propagate it, or draw a new box to replace it.' : ' Draw a new box to replace it.'}`
      : `Mask in ${ms.toFixed(0)} ms. Refine with + / − points${state.doc.frameCount > 1 ? ', then propagate' : ''}.`,
  );
}

/**
 * Shows `prompt` on `frame` at once, runs `call` (the engine's "prompt" event then shows
 * what it holds), and puts the frame's prompt back when the call fails.
 */
function prompted(obj, frame, prompt, what, call) {
  const before = obj.prompts.get(frame);
  obj.prompts.set(frame, prompt);
  redrawPrompts();
  queuePrompt(what, async () => {
    const t0 = performance.now();
    try {
      await call();
      afterPrompt(performance.now() - t0);
    } catch (err) {
      if (before) obj.prompts.set(frame, before);
      else obj.prompts.delete(frame);
      redrawPrompts();
      throw err;
    }
  });
}

export function promptBox(box) {
  if (!canPrompt('draw a box')) return;
  const obj = selectedObject() ?? addObject();
  const f = state.frame;
  // A box for an object prompted before is a correction (a new object's first box is not).
  const correction = obj.prompts.size > 0 && state.lastPropagation && ui.repropagate.checked;
  prompted(obj, f, { box, points: [] }, `Box on ${frameWord()} ${f}`, async () => {
    await medseg.addBox(f, obj.id, box);
    if (correction) state.correctionFrame = f;
  });
}

export function promptPoint(x, y, label) {
  if (!canPrompt('add a point')) return;
  const obj = selectedObject() ?? addObject();
  const f = state.frame;
  const entry = obj.prompts.get(f) ?? { box: null, points: [] };
  const what = `${label ? 'Object' : 'Background'} point on ${frameWord()} ${f}`;
  prompted(obj, f, { box: entry.box, points: [...entry.points, [x, y, label]] }, what, () =>
    medseg.addPoints(f, obj.id, [[x, y, label]]),
  );
}

/** The page's name of object `id`. */
function objectName(id) {
  return state.objects.find((o) => o.id === id)?.name ?? `Object ${id}`;
}

/** What an engine history action ({kind, ...}) was, for a message; `masks` as undo() lists them. */
function describeAction(action, masks) {
  switch (action.kind) {
    case 'prompt': {
      const points = action.points === 1 ? '1 point' : `${action.points} points`;
      const what = action.box ? (action.points ? `box and ${points}` : 'box') : points;
      return `${what} on ${frameWord()} ${action.frame} of ${objectName(action.obj)}`;
    }
    case 'propagation': {
      const ids = [...new Set(masks.map((m) => m.obj))];
      const frames = new Set(masks.map((m) => m.frame)).size;
      return `propagation of ${ids.map(objectName).join(', ') || 'no object'} over ${frames} ${frameWord()}${frames === 1 ? '' : 's'}`;
    }
    case 'reset':
      return action.obj === null ? 'clearing all objects' : `removing ${objectName(action.obj)}`;
    case 'resegment':
      return `segmenting the prompted ${frameWord()}s again with the new model input window`;
    default:
      return action.kind;
  }
}

/**
 * Shows what an undo or redo put back, from its "undo" / "redo" event (the page's own and
 * scripts'): the prompts it lists as the engine holds them now, and the masks of the
 * (object, frame)s it lists, read again from the engine when next drawn. Objects follow
 * the engine's: one it has again is listed again; one it has no more stays listed, empty,
 * unless the action was a reset (then it goes, as the reset took it).
 */
function showRestored(ev, op) {
  if (!state.doc) return;
  const text = describeAction(ev.action, ev.masks);
  for (const { obj: id, frame, prompt } of ev.prompts) {
    const obj = objectWithId(id);
    if (prompt) obj.prompts.set(frame, { box: prompt.box && [...prompt.box], points: prompt.points.map((p) => [...p]) });
    else obj.prompts.delete(frame);
  }
  for (const { obj, frame } of ev.masks) forgetMask(frame, obj);
  const live = new Set(ev.objects);
  for (const id of live) objectWithId(id).inEngine = true;
  for (const obj of state.objects.filter((o) => o.inEngine && !live.has(o.id))) {
    obj.inEngine = false;
    if (ev.action.kind !== 'reset') continue;
    state.objects = state.objects.filter((o) => o !== obj);
    forgetMasksOfObject(obj.id);
  }
  if (!state.objects.some((o) => o.id === state.selectedId)) state.selectedId = state.objects.at(-1)?.id ?? null;
  if (!state.objects.length) addObject();
  // A box after a propagation re-propagates it (a correction): only while it is there.
  if (ev.action.kind === 'propagation') {
    const { direction, first, last } = ev.action;
    state.lastPropagation = op === 'redo' ? { direction, range: [first, last] } : null;
  }
  if (ev.action.kind === 'prompt') setFrame(ev.action.frame);
  messages.info(`${op === 'undo' ? 'Undone' : 'Redone'}: ${text}.`);
  renderObjectList();
  updateControls();
  scheduleRender();
}

medseg.on('undo', (ev) => showRestored(ev, 'undo'));
medseg.on('redo', (ev) => showRestored(ev, 'redo'));
// The engine says what can be undone and redone after each call (the buttons follow it).
medseg.on('history', () => updateControls());

/** Undoes (`op` "undo") or redoes the engine's last action, after the prompts queued before. */
function stepHistory(op) {
  if (!state.inited || !state.doc) return;
  const what = op === 'undo' ? 'Undo' : 'Redo';
  queuePrompt(what, async () => {
    // The "undo" / "redo" event shows what changed (showRestored).
    const res = op === 'undo' ? await medseg.undo() : await medseg.redo();
    if (!res) messages.info(`Nothing to ${op}.`);
  });
}

/** Takes back the last prompt, propagation or reset, whatever its object. */
export function undo() {
  stepHistory('undo');
}

/** Does the last undone action again. */
export function redo() {
  stepHistory('redo');
}

ui.undo.addEventListener('click', () => undo());
ui.redo.addEventListener('click', () => redo());

export function setTool(tool) {
  if (tool !== 'box' && boxOnlyModel()) {
    setToolHint('LiteMedSAM takes a box only: load MedSAM2 to refine with points.');
    return;
  }
  state.tool = tool;
  viewer.setTool(tool);
  setToolHint(
    tool === 'box'
      ? 'Drag a box around the structure.'
      : tool === 'point+'
        ? 'Click on the structure to add it (right-click: background).'
        : 'Click on what is not the structure (right-click: object).',
  );
  updateControls();
  scheduleRender();
}

for (const b of ui.tools) b.addEventListener('click', () => setTool(b.dataset.tool));
