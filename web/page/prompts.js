// Prompts (box, points), undo, and the prompt tool. The engine holds the prompts (a box
// starts a frame's prompt afresh, points add to it); the page shows what its "prompt"
// events say it holds.
import { medseg } from '../medseg.js';
import { ui, messages, state, frameWord, selectedObject, boxOnlyModel } from './state.js';
import { cacheMask, forgetMask } from './cache.js';
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
function showPrompt({ frame, obj: id, box, points = [], mask }) {
  if (!state.doc || !Number.isInteger(frame) || !Number.isInteger(id)) return;
  const obj = objectWithId(id);
  if (box || points.length) obj.prompts.set(frame, { box: box && [...box], points: points.map((p) => [...p]) });
  else obj.prompts.delete(frame);
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

/**
 * Takes back the selected object's last prompt in the engine: that frame's prompt and
 * mask are the previous ones again (masks that propagation made stay).
 */
export function undo() {
  const obj = selectedObject();
  if (!obj || !obj.prompts.size) {
    messages.info('Nothing to undo for the selected object.');
    return;
  }
  if (!canPrompt('undo')) return;
  queuePrompt(`Undo on ${obj.name}`, async () => {
    const res = await medseg.undo(obj.id);
    if (!res) {
      messages.info('Nothing to undo for the selected object.');
      return;
    }
    setFrame(res.frame);
    messages.info(
      res.prompt
        ? `Undone: ${obj.name} on ${frameWord()} ${res.frame} is back to its previous prompt.`
        : `Undone: ${obj.name} has no prompt on ${frameWord()} ${res.frame} any more.`,
    );
  });
}

ui.undo.addEventListener('click', () => undo());

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
