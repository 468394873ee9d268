// The viewer and what it draws, the frame on screen (and its embedding ahead of a prompt),
// the controls' enabled state, and the header's progress of long tasks.
import { medseg } from '../medseg.js';
import { clamp, fmtBytes, fmtValue } from '../ui/dom.js';
import { canRecordVideo } from '../ui/video-export.js';
import { Viewer } from '../ui/viewer.js';
import { ui, messages, state, frameWord, boxOnlyModel, hasVoxelValues } from './state.js';
import { getFrameCanvas, edgeFor, getOverlay, voxelValue } from './cache.js';
import { refreshAreas } from './objects.js';
import { promptBox, promptPoint, setTool } from './prompts.js';
import { updateTeachControls } from './teach.js';

let rendering = false;
let renderAgain = false;
let renderErrorGen = -1;

export const viewer = new Viewer(ui.canvas, {
  onBox: (box) => promptBox(box),
  onPoint: (x, y, label) => promptPoint(x, y, label),
  onTooSmall: () => setToolHint('Drag to draw a box (a click alone is not a box).'),
  onPromptStart: () => prepareShownFrame(),
  onHover: (p) => showCursor(p),
  onWheel: (steps) => setFrame(state.frame + steps),
  onResize: () => scheduleRender(),
});

/** The pixel under the cursor, and a volume's value there (HU for CT) as stored. */
function showCursor(p) {
  if (!p) {
    ui.cursorPos.textContent = '';
    return;
  }
  const [x, y] = [Math.floor(p.x), Math.floor(p.y)];
  const v = voxelValue(state.frame, x, y);
  const unit = state.doc?.values?.hounsfield ? ' HU' : '';
  ui.cursorPos.textContent = `x ${x}, y ${y}${v === undefined ? '' : ` · ${fmtValue(v)}${unit}`}`;
}

/** Redraws the current frame; calls made while a redraw runs are merged into one more. */
export async function scheduleRender() {
  if (rendering) {
    renderAgain = true;
    return;
  }
  rendering = true;
  try {
    do {
      renderAgain = false;
      await renderOnce();
    } while (renderAgain);
  } finally {
    rendering = false;
  }
}

async function renderOnce() {
  const doc = state.doc;
  updateHint();
  if (!doc || !state.inited || state.busy === 'open') {
    if (!doc) viewer.setFrame(null);
    viewer.draw();
    return;
  }
  const gen = state.docGen;
  const f = state.frame;
  try {
    const frameCanvas = await getFrameCanvas(f);
    if (gen !== state.docGen) return;
    const aspect = pixelAspect(doc);
    viewer.setFrame(frameCanvas, aspect);
    const edge = edgeFor(viewer.scale);
    const overlays = [];
    for (const obj of [...state.objects]) {
      if (!obj.visible || !obj.inEngine) continue;
      const ov = await getOverlay(f, obj, edge);
      if (gen !== state.docGen) return;
      if (ov) overlays.push(ov);
    }
    viewer.setOverlays(overlays);
    viewer.setPrompts(promptsOn(f));
    viewer.draw();
    refreshAreas();
  } catch (err) {
    if (renderErrorGen !== gen) {
      renderErrorGen = gen;
      messages.error(`Showing ${frameWord()} ${f}`, err);
    }
  }
}

/** Physical height/width of a pixel (volumes with anisotropic in-plane spacing). */
function pixelAspect(doc) {
  const s = doc.spacing;
  if (!s || s.length < 2) return 1;
  const a = Number(s[1]) / Number(s[0]);
  return Number.isFinite(a) && a > 0.05 && a < 20 ? a : 1;
}

function promptsOn(frame) {
  const out = [];
  for (const obj of state.objects) {
    const p = obj.prompts.get(frame);
    if (!obj.visible || !p) continue;
    out.push({ color: obj.color, selected: obj.id === state.selectedId, box: p.box, points: p.points });
  }
  return out;
}

/** Redraws prompts only (no engine calls). */
export function redrawPrompts() {
  viewer.setPrompts(promptsOn(state.frame));
  viewer.draw();
}

function updateHint() {
  let hint = '';
  if (!state.inited) hint = '';
  else if (!state.doc) hint = 'Drop an image, clip or volume here\nor use "Open file…" on the left';
  else if (!state.model && state.busy !== 'model') hint = 'Load a model (top left) to start segmenting';
  else if (state.objects.every((o) => !o.inEngine) && state.busy !== 'prompt') {
    hint = state.tool === 'box' ? 'Drag a box around the structure' : 'Click on the structure';
  }
  viewer.setHint(hint);
}

export function setFrame(f) {
  if (!state.doc) return;
  const n = state.doc.frameCount;
  const next = clamp(Math.round(Number(f) || 0), 0, Math.max(0, n - 1));
  ui.frameSlider.value = String(next);
  ui.frameNumber.value = String(next);
  if (next === state.frame) return;
  state.frame = next;
  viewer.cancelDrag();
  updateControls();
  scheduleRender();
  schedulePrepare();
}

// ---------------------------------------------------------------------------------------
// The frame on screen is embedded ahead of a prompt
// ---------------------------------------------------------------------------------------
//
// The engine computes the image embedding of the frame on screen ahead of the prompt, so
// that the box's mask needs only the decoder: the first mask comes in a fraction of the
// encoder's time. Only when the page is idle, one frame at a time. On WebGPU the work
// goes to the GPU and the page stays free, so it starts once the view has rested on a
// frame for a moment (scrubbing through slices queues nothing). On the CPU backend the
// encoder holds the worker for seconds (frames could not be fetched meanwhile, scrolling
// would stall), so it starts only when the user begins a box or point on the frame: it
// then overlaps the drag.

const PREPARE_DELAY_MS = 400;
let prepareTimer = 0;
let preparing = false;

export function schedulePrepare() {
  clearTimeout(prepareTimer);
  if (state.backend !== 'webgpu') return;
  prepareTimer = setTimeout(prepareShownFrame, PREPARE_DELAY_MS);
}

async function prepareShownFrame() {
  if (!state.inited || !state.model || !state.doc) return;
  if (preparing || state.busy) {
    schedulePrepare();
    return;
  }
  const { frame, docGen } = state;
  preparing = true;
  try {
    await medseg.prepareFrame(frame);
  } catch {
    // Only a head start: a prompt on this frame computes the embedding itself and
    // reports whatever goes wrong there.
  } finally {
    preparing = false;
  }
  if (state.frame !== frame || state.docGen !== docGen) schedulePrepare();
}

// ---------------------------------------------------------------------------------------
// Controls' enabled state
// ---------------------------------------------------------------------------------------

export function updateControls() {
  // For tests and other pages driving this one: what the page is doing now.
  document.body.dataset.busy = state.busy ?? '';
  const ready = state.inited;
  const idle = !state.busy;
  const promptOk = ready && !!state.doc && !!state.model && (idle || state.busy === 'prompt');
  const doc = state.doc;
  const multi = !!doc && doc.frameCount > 1;
  const prompted = state.objects.some((o) => o.inEngine);

  ui.modelSelect.disabled = !ready || !idle;
  ui.openFile.disabled = !ready || !idle;
  ui.openFolder.disabled = !ready || !idle;
  viewer.setEnabled(promptOk);
  // Only what the loaded model can do is offered; the tools card says once why points are not.
  const pointsOk = !boxOnlyModel();
  if (!pointsOk && state.tool !== 'box') setTool('box');
  for (const b of ui.tools) {
    b.hidden = b.dataset.tool !== 'box' && !pointsOk;
    b.disabled = !ready;
    b.setAttribute('aria-pressed', String(b.dataset.tool === state.tool));
  }
  ui.toolNote.hidden = pointsOk || !state.model;
  showShortcuts({ points: pointsOk, frames: !doc || multi, volume: doc?.kind === 'volume' });
  ui.undo.disabled = !promptOk || !medseg.history.canUndo;
  ui.redo.disabled = !promptOk || !medseg.history.canRedo;
  ui.addObject.disabled = !ready || !doc;
  ui.clearAll.disabled = !ready || !doc || !idle || state.objects.length === 0;

  for (const b of [ui.prevFrame, ui.nextFrame, ui.frameSlider, ui.frameNumber]) b.disabled = !multi;
  ui.prevFrame.disabled ||= state.frame <= 0;
  ui.nextFrame.disabled ||= !doc || state.frame >= doc.frameCount - 1;

  const propOk = ready && multi && !!state.model && idle && prompted;
  for (const b of [ui.propForward, ui.propBackward, ui.propBoth]) b.disabled = !propOk;
  ui.rangeFrom.disabled = !multi || state.busy === 'propagate';
  ui.rangeTo.disabled = !multi || state.busy === 'propagate';
  ui.cancel.disabled = !(state.busy === 'propagate' || state.busy === 'video');

  const exportOk = ready && !!doc && idle && prompted;
  ui.exportNifti.disabled = !exportOk || !hasVoxelValues(doc);
  ui.exportPng.disabled = !exportOk || doc.kind === 'volume';
  ui.exportVideo.disabled = !exportOk || doc.kind !== 'clip' || !canRecordVideo();
  ui.exportNifti.hidden = !!doc && !hasVoxelValues(doc);
  ui.exportPng.hidden = !!doc && doc.kind === 'volume';
  ui.exportVideo.hidden = !!doc && doc.kind !== 'clip';
  ui.videoFps.parentElement.hidden = ui.exportVideo.hidden;
  // A DICOM SEG refers to the series the document came from: only for DICOM documents.
  ui.exportSeg.hidden = !doc?.dicom;
  ui.exportSeg.disabled = !exportOk || !doc?.dicom;

  ui.windowRow.hidden = !hasVoxelValues(doc);
  // The display window changes any time; the model's input only between tasks.
  ui.modelWindowChange.disabled = !idle || !state.model;
  updateTeachControls();
  updateHint();
}

/** The keyboard list shows the shortcuts whose `data-needs` (points, frames, volume) holds now. */
function showShortcuts(can) {
  for (const row of ui.shortcuts) row.hidden = !can[row.dataset.needs];
}

export function setToolHint(text) {
  ui.toolHint.textContent = text;
}

// ---------------------------------------------------------------------------------------
// Progress of long tasks (header) and engine progress events
// ---------------------------------------------------------------------------------------

export function setTask(label, fraction) {
  ui.task.hidden = false;
  ui.taskLabel.textContent = label;
  ui.taskLabel.title = label;
  if (fraction === null || fraction === undefined || !Number.isFinite(fraction)) {
    ui.taskProgress.removeAttribute('value'); // indeterminate
  } else {
    ui.taskProgress.value = clamp(fraction, 0, 1);
  }
}

export function clearTask() {
  ui.task.hidden = true;
  ui.taskLabel.textContent = '';
}

export function onEngineProgress(ev) {
  const { stage, loaded, total, fraction } = ev ?? {};
  if (state.busy === 'propagate') return; // propagation reports through onFrame
  const known = Number.isFinite(total) && total > 0;
  const frac = known ? loaded / total : Number.isFinite(fraction) ? fraction : null;
  let amount = '';
  if (known && total > 100_000) amount = ` ${fmtBytes(loaded)} / ${fmtBytes(total)}`;
  else if (known) amount = ` ${loaded} / ${total}`;
  else if (Number.isFinite(loaded) && loaded > 100_000) amount = ` ${fmtBytes(loaded)}`;
  setTask(`${state.taskTitle || 'Working'}${stage ? ` · ${stage}` : ''}${amount}`, frac);
}

// The scrubber.
ui.frameSlider.addEventListener('input', () => setFrame(ui.frameSlider.value));
ui.frameNumber.addEventListener('change', () => setFrame(ui.frameNumber.value));
ui.prevFrame.addEventListener('click', () => setFrame(state.frame - 1));
ui.nextFrame.addEventListener('click', () => setFrame(state.frame + 1));
