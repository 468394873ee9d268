// Prompts (box, points), undo, and the prompt tool.
import { medseg } from '../medseg.js';
import { ui, messages, state, frameWord, selectedObject, boxOnlyModel } from './state.js';
import { maskCache, forgetMasksOfObject, cacheMask } from './cache.js';
import { viewer, scheduleRender, redrawPrompts, updateControls, setToolHint } from './view.js';
import { queuePrompt } from './busy.js';
import { clonePrompts, addObject, renderObjectList } from './objects.js';

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

function afterPrompt(obj, frame, mask, ms) {
  forgetMasksOfObject(obj.id);
  if (mask) cacheMask(frame, obj.id, mask);
  state.lastPromptMs = ms;
  setToolHint(
    `Mask in ${ms.toFixed(0)} ms. Refine with + / − points${state.doc.frameCount > 1 ? ', then propagate' : ''}.`,
  );
  renderObjectList();
  updateControls();
  scheduleRender();
}

export function promptBox(box) {
  if (!canPrompt('draw a box')) return;
  const obj = selectedObject() ?? addObject();
  const f = state.frame;
  const before = clonePrompts(obj.prompts);
  obj.prompts.set(f, { box, points: [] });
  redrawPrompts();
  queuePrompt(`Box on ${frameWord()} ${f}`, async () => {
    const t0 = performance.now();
    try {
      const res = await medseg.addBox(f, obj.id, box);
      obj.inEngine = true;
      obj.history.push(before);
      afterPrompt(obj, f, res.mask, performance.now() - t0);
      // A box for an object prompted before is a correction (a new object's first box is not).
      if (before.size && state.lastPropagation && ui.repropagate.checked) state.correctionFrame = f;
    } catch (err) {
      obj.prompts = before;
      redrawPrompts();
      throw err;
    }
  });
}

export function promptPoint(x, y, label) {
  if (!canPrompt('add a point')) return;
  const obj = selectedObject() ?? addObject();
  const f = state.frame;
  const before = clonePrompts(obj.prompts);
  const entry = obj.prompts.get(f) ?? { box: null, points: [] };
  obj.prompts.set(f, { box: entry.box, points: [...entry.points, [x, y, label]] });
  redrawPrompts();
  queuePrompt(`${label ? 'Object' : 'Background'} point on ${frameWord()} ${f}`, async () => {
    const t0 = performance.now();
    try {
      const res = await medseg.addPoints(f, obj.id, [[x, y, label]]);
      obj.inEngine = true;
      obj.history.push(before);
      afterPrompt(obj, f, res.mask, performance.now() - t0);
    } catch (err) {
      obj.prompts = before;
      redrawPrompts();
      throw err;
    }
  });
}

/**
 * Puts an object's prompts in the engine back to `prompts` (a Map frame -> {box, points}):
 * the object is removed from the engine and its prompts are added again, frame by frame.
 * Masks that propagation had made for it are gone afterwards (propagate again).
 */
async function applyPrompts(obj, prompts) {
  if (obj.inEngine) {
    await medseg.removeObject(obj.id);
    obj.inEngine = false;
  }
  obj.prompts = clonePrompts(prompts);
  forgetMasksOfObject(obj.id);
  for (const [f, p] of [...obj.prompts].sort((a, b) => a[0] - b[0])) {
    if (p.box) {
      await medseg.addBox(f, obj.id, p.box);
      obj.inEngine = true;
    }
    if (p.points.length) {
      await medseg.addPoints(f, obj.id, p.points);
      obj.inEngine = true;
    }
  }
  forgetMasksOfObject(obj.id);
}

/** Re-creates every object's prompts in the engine (after a model change). */
export async function reapplyAll() {
  for (const obj of state.objects) {
    if (obj.prompts.size) await applyPrompts(obj, obj.prompts);
  }
  maskCache.clear();
}

export function undo() {
  const obj = selectedObject();
  if (!obj || !obj.history.length) {
    messages.info('Nothing to undo for the selected object.');
    return;
  }
  if (!canPrompt('undo')) return;
  const prev = obj.history[obj.history.length - 1];
  queuePrompt(`Undo on ${obj.name}`, async () => {
    const current = clonePrompts(obj.prompts);
    try {
      await applyPrompts(obj, prev);
      obj.history.pop();
      const left = [...prev.values()].reduce((n, p) => n + (p.box ? 1 : 0) + p.points.length, 0);
      messages.info(left ? `Undone: ${obj.name} back to its previous prompts.` : `Undone: ${obj.name} cleared.`);
    } catch (err) {
      obj.prompts = current;
      throw err;
    } finally {
      renderObjectList();
      updateControls();
      scheduleRender();
    }
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
