// MedSeg page: wires the controls to the engine's public JS API (web/medseg.js).
//
// Everything the page does to images, masks and models goes through the public API
// (web/medseg.js, the same `window.medseg` other pages and scripts use); the page only
// keeps what it shows: the objects, their colours and prompt history (for undo), caches
// of frames and mask overlays, and the UI.
import { $, el, clamp, fmtBytes, errorText, baseName, downloadBlob } from './ui/dom.js';
import { Messages } from './ui/messages.js';
import { Viewer } from './ui/viewer.js';
import { colorFor, maskToOverlay, frameToCanvas } from './ui/overlay.js';
import { medseg, DEFAULT_MODEL_PATH, fileKind, unsupportedFileText } from './medseg.js';
import { KNOWN_MODELS, cachedWeights, weightsStatus, fileLabel } from './ui/models.js';
import { registerServiceWorker } from './ui/offline.js';
import { canRecordVideo, recordOverlayVideo } from './ui/video-export.js';

// ---------------------------------------------------------------------------------------
// Page elements and the message area
// ---------------------------------------------------------------------------------------

const ui = {
  modelSelect: $('model-select', HTMLSelectElement),
  modelFile: $('model-file', HTMLInputElement),
  modelState: $('model-state'),
  task: $('task'),
  taskLabel: $('task-label'),
  taskProgress: $('task-progress', HTMLProgressElement),
  backendBadge: $('backend-badge'),
  offlineBadge: $('offline-badge'),
  dropZone: $('drop-zone'),
  openFile: $('open-file', HTMLButtonElement),
  fileInput: $('file-input', HTMLInputElement),
  fileInfo: $('file-info', HTMLDListElement),
  windowRow: $('window-row'),
  windowSelect: $('window-select', HTMLSelectElement),
  tools: [.../** @type {NodeListOf<HTMLButtonElement>} */ (document.querySelectorAll('.tool[data-tool]'))],
  undo: $('undo', HTMLButtonElement),
  toolHint: $('tool-hint'),
  objectList: $('object-list', HTMLOListElement),
  addObject: $('add-object', HTMLButtonElement),
  clearAll: $('clear-all', HTMLButtonElement),
  canvas: $('view', HTMLCanvasElement),
  prevFrame: $('prev-frame', HTMLButtonElement),
  nextFrame: $('next-frame', HTMLButtonElement),
  frameSlider: $('frame-slider', HTMLInputElement),
  frameNumber: $('frame-number', HTMLInputElement),
  frameWord: $('frame-word'),
  frameTotal: $('frame-total'),
  cursorPos: $('cursor-pos'),
  rangeFrom: $('range-from', HTMLInputElement),
  rangeTo: $('range-to', HTMLInputElement),
  propForward: $('prop-forward', HTMLButtonElement),
  propBackward: $('prop-backward', HTMLButtonElement),
  propBoth: $('prop-both', HTMLButtonElement),
  propProgress: $('prop-progress', HTMLProgressElement),
  propStatus: $('prop-status'),
  propMs: $('prop-ms'),
  follow: $('follow', HTMLInputElement),
  repropagate: $('repropagate', HTMLInputElement),
  cancel: $('cancel', HTMLButtonElement),
  exportNifti: $('export-nifti', HTMLButtonElement),
  exportPng: $('export-png', HTMLButtonElement),
  exportVideo: $('export-video', HTMLButtonElement),
  videoFps: $('video-fps', HTMLInputElement),
};

const messages = new Messages($('messages'), $('notices'));

// Nothing may fail silently or only in the console: uncaught errors go to the messages.
window.addEventListener('error', (e) => {
  messages.error('Unexpected error', e.error ?? e.message);
  e.preventDefault();
});
window.addEventListener('unhandledrejection', (e) => {
  messages.error('Unexpected error', e.reason);
  e.preventDefault();
});

// ---------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------

const BUSY_TEXT = {
  engine: 'starting the engine',
  model: 'loading a model',
  open: 'opening a file',
  prompt: 'computing a mask',
  propagate: 'propagating',
  export: 'exporting',
  video: 'recording the overlay video',
  reset: 'clearing',
  window: 'changing the window',
};

const state = {
  inited: false,
  backend: null,
  backendNotice: '',
  model: null, // {architecture, imageSize, name, label}
  modelKey: '', // the picker value of the loaded model
  modelShown: '', // its description in the header
  doc: null, // {kind, frameCount, width, height, spacing, notice, name, size}
  docGen: 0, // bumped whenever the document (or its display window) changes
  frame: 0,
  tool: 'box',
  objects: [], // {id, name, color, visible, prompts: Map(frame -> {box, points}), history, inEngine}
  selectedId: null,
  nextId: 1,
  busy: null, // a key of BUSY_TEXT, or null
  cancelRequested: false,
  prefetching: false,
  videoAbort: null,
  lastPromptMs: null,
  lastPropagation: null, // {direction, range} of the last propagation the user started
  correctionFrame: null, // a box drawn on this frame waits for its re-propagation
  modelFiles: new Map(), // picker value -> File
  clearArmedUntil: 0,
};

/** The word for one frame of the open document. */
function frameWord() {
  return state.doc?.kind === 'volume' ? 'slice' : 'frame';
}

function selectedObject() {
  return state.objects.find((o) => o.id === state.selectedId) ?? null;
}

// ---------------------------------------------------------------------------------------
// Caches: frames (display RGBA as canvases, LRU by bytes) and mask overlays
// ---------------------------------------------------------------------------------------

class FrameCache {
  constructor(budgetBytes) {
    this.budget = budgetBytes;
    this.map = new Map();
    this.bytes = 0;
  }

  get(frame) {
    const c = this.map.get(frame);
    if (c) {
      this.map.delete(frame);
      this.map.set(frame, c);
    }
    return c;
  }

  set(frame, canvas) {
    this.delete(frame);
    this.map.set(frame, canvas);
    this.bytes += canvas.width * canvas.height * 4;
    for (const [f, c] of this.map) {
      if (this.bytes <= this.budget || this.map.size <= 2) break;
      this.map.delete(f);
      this.bytes -= c.width * c.height * 4;
    }
  }

  delete(frame) {
    const c = this.map.get(frame);
    if (c) {
      this.map.delete(frame);
      this.bytes -= c.width * c.height * 4;
    }
  }

  clear() {
    this.map.clear();
    this.bytes = 0;
  }
}

const frameCache = new FrameCache(256 * 1024 * 1024);

/** key "frame:objId" -> {mask | null, overlay: {canvas, area} | null, edge, color} */
const maskCache = new Map();

const maskKey = (frame, id) => `${frame}:${id}`;

function forgetMasksOfObject(id) {
  for (const k of [...maskCache.keys()]) if (k.endsWith(`:${id}`)) maskCache.delete(k);
}

function forgetMasksOfFrame(frame) {
  for (const k of [...maskCache.keys()]) if (k.startsWith(`${frame}:`)) maskCache.delete(k);
}

async function getFrameCanvas(frame) {
  const hit = frameCache.get(frame);
  if (hit) return hit;
  const data = await medseg.getFrame(frame);
  const canvas = frameToCanvas(data);
  frameCache.set(frame, canvas);
  return canvas;
}

/** Outline width in mask pixels for a display scale (display px per image px). */
function edgeFor(scale) {
  return scale >= 1 || !(scale > 0) ? 1 : Math.min(8, Math.ceil(1 / scale));
}

/** Keeps an engine mask ({width, height, data}, or null for none) for drawing. */
function cacheMask(frame, id, mask) {
  const entry = { mask, overlay: null, edge: 0, color: '' };
  maskCache.set(maskKey(frame, id), entry);
  return entry;
}

/**
 * Takes the masks a frame event carries ({obj, width, height, data} each) in place of
 * what the cache had for that frame; returns their object ids.
 */
function takeFrameMasks(frame, masks) {
  forgetMasksOfFrame(frame);
  for (const m of masks) cacheMask(frame, m.obj, m);
  return masks.map((m) => m.obj);
}

/** The overlay of one object on one frame ({canvas, area} or null), from the cache or the engine. */
async function getOverlay(frame, obj, edge) {
  let entry = maskCache.get(maskKey(frame, obj.id));
  if (!entry) {
    const mask = obj.inEngine ? await medseg.getMask(frame, obj.id) : null;
    entry = cacheMask(frame, obj.id, mask);
  }
  if (!entry.mask) return null;
  if (!entry.overlay || entry.edge !== edge || entry.color !== obj.color) {
    entry.overlay = maskToOverlay(entry.mask, obj.color, { edge });
    entry.edge = edge;
    entry.color = obj.color;
  }
  return entry.overlay;
}

// ---------------------------------------------------------------------------------------
// Viewer and rendering
// ---------------------------------------------------------------------------------------

let rendering = false;
let renderAgain = false;
let renderErrorGen = -1;

const viewer = new Viewer(ui.canvas, {
  onBox: (box) => promptBox(box),
  onPoint: (x, y, label) => promptPoint(x, y, label),
  onTooSmall: () => setToolHint('Drag to draw a box (a click alone is not a box).'),
  onPromptStart: () => prepareShownFrame(),
  onHover: (p) => {
    ui.cursorPos.textContent = p ? `x ${Math.floor(p.x)}, y ${Math.floor(p.y)}` : '';
  },
  onWheel: (steps) => setFrame(state.frame + steps),
  onResize: () => scheduleRender(),
});

/** Redraws the current frame; calls made while a redraw runs are merged into one more. */
async function scheduleRender() {
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
function redrawPrompts() {
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

function setFrame(f) {
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

function schedulePrepare() {
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

function updateControls() {
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
  viewer.setEnabled(promptOk);
  const pointsOk = !boxOnlyModel();
  if (!pointsOk && state.tool !== 'box') setTool('box');
  for (const b of ui.tools) {
    const noPoints = b.dataset.tool !== 'box' && !pointsOk;
    b.dataset.help ??= b.title;
    b.disabled = !ready || noPoints;
    b.title = noPoints ? 'LiteMedSAM takes a box only (load MedSAM2 for points)' : b.dataset.help;
    b.setAttribute('aria-pressed', String(b.dataset.tool === state.tool));
  }
  const sel = selectedObject();
  ui.undo.disabled = !promptOk || !sel || sel.history.length === 0;
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
  ui.exportNifti.disabled = !exportOk || doc.kind !== 'volume';
  ui.exportPng.disabled = !exportOk || doc.kind === 'volume';
  ui.exportVideo.disabled = !exportOk || doc.kind !== 'video' || !canRecordVideo();
  ui.exportNifti.hidden = !!doc && doc.kind !== 'volume';
  ui.exportPng.hidden = !!doc && doc.kind === 'volume';
  ui.exportVideo.hidden = !!doc && doc.kind !== 'video';
  ui.videoFps.parentElement.hidden = ui.exportVideo.hidden;

  ui.windowRow.hidden = !doc || doc.kind !== 'volume';
  ui.windowSelect.disabled = !idle;
  updateHint();
}

function setToolHint(text) {
  ui.toolHint.textContent = text;
}

// ---------------------------------------------------------------------------------------
// Progress of long tasks (header) and engine progress events
// ---------------------------------------------------------------------------------------

function setTask(label, fraction) {
  ui.task.hidden = false;
  ui.taskLabel.textContent = label;
  ui.taskLabel.title = label;
  if (fraction === null || fraction === undefined || !Number.isFinite(fraction)) {
    ui.taskProgress.removeAttribute('value'); // indeterminate
  } else {
    ui.taskProgress.value = clamp(fraction, 0, 1);
  }
}

function clearTask() {
  ui.task.hidden = true;
  ui.taskLabel.textContent = '';
}

let taskTitle = '';

function onEngineProgress(ev) {
  const { stage, loaded, total, fraction } = ev ?? {};
  if (state.busy === 'propagate') return; // propagation reports through onFrame
  const known = Number.isFinite(total) && total > 0;
  const frac = known ? loaded / total : Number.isFinite(fraction) ? fraction : null;
  let amount = '';
  if (known && total > 100_000) amount = ` ${fmtBytes(loaded)} / ${fmtBytes(total)}`;
  else if (known) amount = ` ${loaded} / ${total}`;
  else if (Number.isFinite(loaded) && loaded > 100_000) amount = ` ${fmtBytes(loaded)}`;
  setTask(`${taskTitle || 'Working'}${stage ? ` · ${stage}` : ''}${amount}`, frac);
}

// ---------------------------------------------------------------------------------------
// Busy handling: one long engine task at a time; prompts queue in order
// ---------------------------------------------------------------------------------------

function refuseBusy(what) {
  if (!state.busy) return false;
  messages.warn(`Cannot ${what} while ${BUSY_TEXT[state.busy] ?? state.busy}${state.busy === 'propagate' || state.busy === 'video' ? ' (Esc cancels)' : ''}.`);
  return true;
}

async function withBusy(kind, what, fn) {
  if (refuseBusy(what)) return undefined;
  state.busy = kind;
  updateControls();
  try {
    return await fn();
  } finally {
    state.busy = null;
    taskTitle = '';
    updateControls();
  }
}

let promptChain = Promise.resolve();
let promptPending = 0;

function queuePrompt(what, fn) {
  if (state.busy && state.busy !== 'prompt') {
    refuseBusy(what);
    return;
  }
  promptPending += 1;
  state.busy = 'prompt';
  updateControls();
  const run = promptChain
    .then(fn)
    .catch((err) => messages.error(what, err))
    .finally(() => {
      promptPending -= 1;
      if (promptPending === 0) {
        state.busy = null;
        updateControls();
        const frame = state.correctionFrame;
        state.correctionFrame = null;
        if (frame !== null) repropagateFrom(frame);
      }
    });
  promptChain = run;
}

// ---------------------------------------------------------------------------------------
// Engine start
// ---------------------------------------------------------------------------------------

async function startEngine() {
  medseg.on('progress', onEngineProgress);
  watchExternalCalls();
  state.busy = 'engine';
  taskTitle = 'Starting the engine';
  setTask('Starting the engine…', null);
  try {
    const res = await medseg.init();
    state.backend = res.backend;
    state.backendNotice = res.notice ?? '';
    state.inited = true;
  } catch (err) {
    ui.backendBadge.textContent = 'engine failed';
    ui.backendBadge.className = 'badge error';
    messages.notice(
      'engine',
      'error',
      `The engine failed to start: ${errorText(err)}. If the wasm engine is not built yet (pkg/), run scripts/serve.sh.`,
    );
    messages.error('Starting the engine', err, { banner: false });
    return false;
  } finally {
    state.busy = null;
    taskTitle = '';
    clearTask();
    updateControls();
  }
  showBackend();
  return true;
}

function showBackend() {
  const b = state.backend;
  if (b === 'webgpu') {
    ui.backendBadge.textContent = 'WebGPU';
    ui.backendBadge.className = 'badge ok';
    ui.backendBadge.title = 'The models run on this machine’s GPU through WebGPU.';
    messages.notice('backend', null, null);
  } else {
    ui.backendBadge.textContent = b === 'cpu' ? 'CPU' : String(b);
    ui.backendBadge.className = 'badge warn';
    if (b === 'cpu' && new URLSearchParams(location.search).get('backend') === 'cpu') {
      ui.backendBadge.title = 'The CPU backend, as the page address asks (?backend=cpu).';
      messages.notice('backend', 'info', 'Running on the CPU backend, as ?backend=cpu in the address asks: expect seconds per mask.');
      return;
    }
    ui.backendBadge.title = 'WebGPU is not available: the models run on the CPU (slower).';
    // The engine's notice says why and that it runs on the CPU.
    const why = state.backendNotice || 'WebGPU is not available; running on the CPU';
    messages.notice(
      'backend',
      'warn',
      `${why[0].toUpperCase()}${why.slice(1)}: expect seconds per mask. For speed, use a current Chrome or Edge with hardware acceleration on.`,
    );
  }
}

// ---------------------------------------------------------------------------------------
// Models
// ---------------------------------------------------------------------------------------

const OPEN_MODEL_FILE = '__open_model_file__';

async function populateModels() {
  const sel = ui.modelSelect;
  sel.replaceChildren();
  const groups = new Map();
  const group = (label) => {
    if (!groups.has(label)) {
      const g = el('optgroup', { label });
      groups.set(label, g);
      sel.append(g);
    }
    return groups.get(label);
  };
  const cached = new Set(await cachedWeights());
  for (const m of KNOWN_MODELS) {
    const label = m.group === 'default' ? 'weights/ (default)' : 'MedSAM2: convert into weights/ first';
    const suffix = cached.has(m.url) ? ' · offline' : '';
    group(label).append(el('option', { value: m.url }, `${m.label}${suffix}`));
  }
  const known = new Set(KNOWN_MODELS.map((m) => m.url));
  for (const url of cached) {
    if (known.has(url)) continue;
    group('Offline cache').append(el('option', { value: url }, `${fileLabel(url)} · offline`));
  }
  for (const [key, file] of state.modelFiles) {
    group('Your files').append(el('option', { value: key }, file.name));
  }
  sel.append(el('option', { value: OPEN_MODEL_FILE }, 'Open a model file… (.safetensors, MedSAM2 .pt)'));
  sel.value = state.modelKey || '';
  if (!state.modelKey) sel.selectedIndex = -1;
}

function modelHelp(url) {
  if (url === DEFAULT_MODEL_PATH) {
    return 'run scripts/fetch-weights.sh (scripts/serve.sh does it), or open a model file';
  }
  return `convert your MedSAM2 checkpoint into it (medseg convert MedSAM2_latest.pt ${url}), or choose "Open a model file…" to load the .pt directly`;
}

/** Picks and loads a model from weights/ (checks the file is there first). */
async function loadModelUrl(url, { auto = false } = {}) {
  const label = KNOWN_MODELS.find((m) => m.url === url)?.label ?? fileLabel(url);
  const status = await weightsStatus(url);
  if (status === 'missing') {
    const text = `${url} is not there: ${modelHelp(url)}.`;
    if (auto) messages.notice('model', 'warn', `No default model yet. ${text}`);
    else messages.error(`Loading ${label}`, text);
    ui.modelSelect.value = state.modelKey;
    if (!state.modelKey) ui.modelSelect.selectedIndex = -1;
    return;
  }
  await loadModelFrom(url, { key: url, label });
}

/** Shows `info` (loadModel's answer) as the loaded model; returns its description. */
function showModel(info, { key, label }) {
  state.model = { ...info, label };
  state.modelKey = key;
  const arch = info.architecture === 'sam2' ? 'MedSAM2 (SAM 2.1)' : info.architecture === 'lite-medsam' ? 'LiteMedSAM' : String(info.architecture ?? '?');
  const name = info.name || label;
  const shown = `${name}${name.includes(arch) ? '' : ` · ${arch}`}${info.imageSize ? ` · ${info.imageSize} px` : ''}`;
  state.modelShown = shown;
  ui.modelState.textContent = shown;
  ui.modelState.title = shown;
  ui.modelState.className = 'model-state ready';
  messages.notice('model', null, null);
  schedulePrepare();
  return shown;
}

async function loadModelFrom(source, { key, label }) {
  await withBusy('model', `load ${label}`, async () => {
    taskTitle = `Loading ${label}`;
    setTask(`${taskTitle}…`, null);
    ui.modelState.textContent = `loading ${label}…`;
    ui.modelState.className = 'model-state';
    const t0 = performance.now();
    try {
      const info = await medseg.loadModel(source);
      const shown = showModel(info, { key, label });
      messages.ok(`Model ready: ${shown} (${((performance.now() - t0) / 1000).toFixed(1)} s).`);
      if (state.doc && state.objects.some((o) => o.prompts.size)) {
        setTask('Re-applying prompts with the new model…', null);
        await reapplyAll();
        messages.info('Prompts re-applied with the new model; propagate again for the other frames.');
      }
    } catch (err) {
      messages.error(`Could not load ${label}`, err);
      if (state.model) {
        messages.info(`Still using ${state.model.label}.`);
        ui.modelState.textContent = state.modelShown;
        ui.modelState.className = 'model-state ready';
      } else {
        ui.modelState.textContent = 'no model loaded';
        ui.modelState.className = 'model-state';
      }
    } finally {
      clearTask();
    }
  });
  await populateModels();
  maskCache.clear();
  scheduleRender();
}

async function loadModelFile(file) {
  if (fileKind(file.name) !== 'model') {
    messages.error(`Cannot load ${file.name}`, 'a model file is a .safetensors (converted) or a MedSAM2 .pt checkpoint');
    return;
  }
  if (file.size === 0) {
    messages.error(`Cannot load ${file.name}`, 'the file is empty');
    return;
  }
  const key = `file:${file.name}:${file.size}`;
  state.modelFiles.set(key, file);
  await loadModelFrom(file, { key, label: file.name });
  if (state.modelKey !== key) {
    // It did not load: do not offer it in the picker.
    state.modelFiles.delete(key);
    await populateModels();
  }
}

ui.modelSelect.addEventListener('change', () => {
  const v = ui.modelSelect.value;
  if (v === OPEN_MODEL_FILE) {
    ui.modelSelect.value = state.modelKey;
    if (!state.modelKey) ui.modelSelect.selectedIndex = -1;
    ui.modelFile.value = '';
    ui.modelFile.click();
    return;
  }
  if (state.modelFiles.has(v)) {
    loadModelFrom(state.modelFiles.get(v), { key: v, label: state.modelFiles.get(v).name });
  } else if (v) {
    loadModelUrl(v);
  }
});

ui.modelFile.addEventListener('change', () => {
  const file = ui.modelFile.files?.[0];
  if (file) loadModelFile(file);
});

// ---------------------------------------------------------------------------------------
// Opening files
// ---------------------------------------------------------------------------------------

async function openDocument(file) {
  if (!state.inited) {
    messages.error(`Cannot open ${file.name}`, 'the engine is not running (see the notice above)');
    return;
  }
  // Strict: the page opens only the types it promises (it asks to convert other clips).
  const kind = fileKind(file.name, '', { strict: true });
  if (kind === 'model') return loadModelFile(file);
  if (!kind) {
    messages.error(`Cannot open ${file.name}`, `${unsupportedFileText(file.name)}.`);
    return;
  }
  if (file.size === 0) {
    messages.error(`Cannot open ${file.name}`, 'the file is empty (0 bytes)');
    return;
  }
  await withBusy('open', `open ${file.name}`, async () => {
    taskTitle = `Opening ${file.name}`;
    setTask(`${taskTitle}…`, null);
    const t0 = performance.now();
    try {
      const info = await medseg.openFile(file);
      showDocument(info, { name: file.name, size: file.size });
      const secs = ((performance.now() - t0) / 1000).toFixed(1);
      messages.ok(`Opened ${file.name}: ${describeDoc(state.doc)} (${secs} s).`);
      if (state.doc.notice) messages.warn(state.doc.notice);
    } catch (err) {
      messages.error(`Could not open ${file.name}`, err);
      if (state.doc) messages.info(`Still showing ${state.doc.name}; its masks are kept.`);
    } finally {
      clearTask();
    }
  });
  updateControls();
  scheduleRender();
}

/**
 * Makes the document the engine has just opened (described by `info`) the one shown: its
 * frames, no objects but a first empty one, the scrubber, the middle slice of a volume.
 */
function showDocument(info, { name, size }) {
  state.docGen += 1;
  frameCache.clear();
  maskCache.clear();
  const frameCount = info.frames;
  state.doc = {
    kind: info.kind,
    frameCount,
    width: info.width,
    height: info.height,
    spacing: info.spacing,
    notice: noticeText(info),
    name,
    size,
  };
  state.objects = [];
  state.nextId = 1;
  state.selectedId = null;
  state.lastPropagation = null;
  addObject();
  state.windowPreset = '';
  ui.windowSelect.value = '';
  setupScrubber();
  state.frame = -1;
  setFrame(state.doc.kind === 'volume' ? Math.floor((frameCount - 1) / 2) : 0);
  showFileInfo();
  setToolHint(state.tool === 'box' ? 'Drag a box around the structure.' : 'Click on the structure.');
}

/** The file's notice(s) as one text ('' if none). */
function noticeText(info) {
  const list = [info.notice, ...(Array.isArray(info.notices) ? info.notices : [])].filter(Boolean).map(String);
  return [...new Set(list)].join(' · ');
}

function describeDoc(doc) {
  const n = doc.frameCount;
  const size = `${doc.width}×${doc.height}`;
  if (doc.kind === 'volume') return `volume, ${size} × ${n} slices`;
  if (doc.kind === 'video') return `clip, ${size}, ${n} frames`;
  return `image, ${size}`;
}

function setupScrubber() {
  const doc = state.doc;
  const last = Math.max(0, doc.frameCount - 1);
  for (const input of [ui.frameSlider, ui.frameNumber, ui.rangeFrom, ui.rangeTo]) input.max = String(last);
  ui.rangeFrom.value = '0';
  ui.rangeTo.value = String(last);
  ui.frameTotal.textContent = `of ${doc.frameCount}`;
  ui.frameWord.textContent = doc.kind === 'volume' ? 'Slice' : 'Frame';
  ui.frameSlider.setAttribute('aria-label', doc.kind === 'volume' ? 'Slice' : 'Frame');
  ui.propProgress.value = 0;
  ui.propStatus.textContent = 'idle';
  ui.propMs.textContent = '';
}

function showFileInfo() {
  const d = state.doc;
  const rows = [
    ['name', d.name],
    ['type', d.kind],
    ['size', `${d.width} × ${d.height}${d.kind === 'volume' ? ` × ${d.frameCount}` : ''} px`],
  ];
  if (d.kind === 'video') rows.push(['frames', String(d.frameCount)]);
  if (Array.isArray(d.spacing) && d.spacing.length) {
    rows.push(['spacing', `${d.spacing.map((v) => Number(v).toFixed(2)).join(' × ')} mm`]);
  }
  if (Number.isFinite(d.size)) rows.push(['file', fmtBytes(d.size)]);
  if (d.notice) rows.push(['note', String(d.notice)]);
  ui.fileInfo.replaceChildren(...rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
  ui.fileInfo.hidden = false;
}

ui.openFile.addEventListener('click', () => {
  ui.fileInput.value = '';
  ui.fileInput.click();
});

ui.fileInput.addEventListener('change', () => {
  const file = ui.fileInput.files?.[0];
  if (file) openDocument(file);
});

// Drag and drop anywhere on the page.
let dragDepth = 0;
const hasFiles = (e) => [...(e.dataTransfer?.types ?? [])].includes('Files');
window.addEventListener('dragenter', (e) => {
  if (!hasFiles(e)) return;
  e.preventDefault();
  dragDepth += 1;
  document.body.classList.add('dragging');
});
window.addEventListener('dragover', (e) => {
  if (!hasFiles(e)) return;
  e.preventDefault();
  e.dataTransfer.dropEffect = 'copy';
});
window.addEventListener('dragleave', () => {
  dragDepth = Math.max(0, dragDepth - 1);
  if (dragDepth === 0) document.body.classList.remove('dragging');
});
window.addEventListener('drop', (e) => {
  if (!hasFiles(e)) return;
  e.preventDefault();
  dragDepth = 0;
  document.body.classList.remove('dragging');
  const files = [...(e.dataTransfer.files ?? [])];
  if (!files.length) return;
  if (files.length > 1) messages.info(`Opening the first of the ${files.length} dropped files (${files[0].name}).`);
  openDocument(files[0]);
});

// CT window presets.
const WINDOWS = ['soft', 'lung', 'bone', 'brain', 'mr', 'none'];

/** The engine now shows the volume through `preset`: the frames on screen are stale. */
function showWindow(preset) {
  state.windowPreset = WINDOWS.includes(preset) ? preset : '';
  ui.windowSelect.value = state.windowPreset;
  state.docGen += 1;
  frameCache.clear();
  schedulePrepare();
}

async function applyWindow(preset) {
  if (!state.doc || state.doc.kind !== 'volume') return;
  await withBusy('window', 'change the window', async () => {
    try {
      await medseg.setWindow(preset);
      showWindow(preset);
      // The engine drops prompts with the model input (masks stay): put them back, as
      // after a model change, so that propagation goes on from them.
      if (state.objects.some((o) => o.prompts.size)) {
        setTask('Re-applying prompts with the new window…', null);
        try {
          await reapplyAll();
        } finally {
          clearTask();
        }
        messages.info(`Window "${preset}": prompts re-applied; propagate again for the other slices.`);
      }
    } catch (err) {
      messages.error(`Window "${preset}"`, err);
      ui.windowSelect.value = state.windowPreset;
    }
  });
  ui.windowSelect.value = state.windowPreset;
  scheduleRender();
}

ui.windowSelect.addEventListener('change', () => {
  if (ui.windowSelect.value) applyWindow(ui.windowSelect.value);
});

// ---------------------------------------------------------------------------------------
// Objects
// ---------------------------------------------------------------------------------------

function clonePrompts(map) {
  return new Map(
    [...map].map(([f, p]) => [f, { box: p.box ? [...p.box] : null, points: p.points.map((q) => [...q]) }]),
  );
}

/** A new object's record: no prompts yet, the palette colour of its id. */
function objectRecord(id) {
  return {
    id,
    name: `Object ${id}`,
    color: colorFor(id - 1),
    visible: true,
    prompts: new Map(),
    history: [],
    inEngine: false,
  };
}

function addObject() {
  const id = state.nextId++;
  const obj = objectRecord(id);
  state.objects.push(obj);
  state.selectedId = id;
  renderObjectList();
  updateControls();
  redrawPrompts();
  return obj;
}

function selectObject(id) {
  if (!state.objects.some((o) => o.id === id)) return;
  state.selectedId = id;
  renderObjectList();
  updateControls();
  redrawPrompts();
}

function renderObjectList() {
  const items = state.objects.map((obj, i) => {
    const selected = obj.id === state.selectedId;
    const color = el('input', {
      type: 'color',
      value: obj.color,
      'aria-label': `Colour of ${obj.name}`,
      title: 'Colour',
      oninput: (e) => {
        obj.color = e.target.value;
        scheduleRender();
      },
    });
    const area = el('small', { class: 'obj-area', 'data-id': String(obj.id) });
    const name = el(
      'button',
      {
        type: 'button',
        class: 'obj-name',
        'aria-pressed': String(selected),
        title: `Select ${obj.name}${i < 9 ? ` (${i + 1})` : ''}`,
        onclick: () => selectObject(obj.id),
      },
      el('span', { class: 'obj-label' }, `${i < 9 ? `${i + 1} · ` : ''}${obj.name}`),
      area,
    );
    const vis = el(
      'button',
      {
        type: 'button',
        class: 'icon',
        'aria-pressed': String(!obj.visible),
        'aria-label': `${obj.visible ? 'Hide' : 'Show'} ${obj.name}`,
        title: obj.visible ? 'Hide' : 'Show',
        onclick: () => {
          obj.visible = !obj.visible;
          renderObjectList();
          scheduleRender();
        },
      },
      obj.visible ? '◉' : '○',
    );
    const remove = el(
      'button',
      {
        type: 'button',
        class: 'icon',
        'aria-label': `Remove ${obj.name}`,
        title: 'Remove',
        onclick: () => removeObjectUi(obj.id),
      },
      '×',
    );
    return el(
      'li',
      { class: `obj${selected ? ' selected' : ''}${obj.visible ? '' : ' hidden-obj'}` },
      color,
      name,
      vis,
      remove,
    );
  });
  ui.objectList.replaceChildren(...items);
  refreshAreas();
}

/** Shows each object's mask area on the current frame (mm² with spacing). */
function refreshAreas() {
  const sp = state.doc?.spacing;
  const mm2 = Array.isArray(sp) && sp.length >= 2 ? Number(sp[0]) * Number(sp[1]) : 0;
  for (const node of /** @type {NodeListOf<HTMLElement>} */ (ui.objectList.querySelectorAll('.obj-area'))) {
    const entry = maskCache.get(maskKey(state.frame, Number(node.dataset.id)));
    const area = entry?.overlay?.area;
    node.textContent = !area ? '' : mm2 > 0 ? `${(area * mm2).toFixed(0)} mm²` : `${area} px`;
  }
}

function removeObjectUi(id) {
  const obj = state.objects.find((o) => o.id === id);
  if (!obj) return;
  queuePrompt(`Removing ${obj.name}`, async () => {
    if (obj.inEngine) await medseg.removeObject(id);
    state.objects = state.objects.filter((o) => o !== obj);
    forgetMasksOfObject(id);
    if (state.selectedId === id) state.selectedId = state.objects.at(-1)?.id ?? null;
    renderObjectList();
    scheduleRender();
    messages.info(`${obj.name} removed.`);
  });
}

ui.addObject.addEventListener('click', () => newObject());

function newObject() {
  if (!state.doc) return;
  const obj = addObject();
  messages.info(`${obj.name} added: draw its box.`);
}

ui.clearAll.addEventListener('click', async () => {
  if (Date.now() > state.clearArmedUntil) {
    state.clearArmedUntil = Date.now() + 4000;
    ui.clearAll.textContent = 'Confirm clear';
    setTimeout(() => {
      ui.clearAll.textContent = 'Clear all';
    }, 4000);
    return;
  }
  state.clearArmedUntil = 0;
  ui.clearAll.textContent = 'Clear all';
  await withBusy('reset', 'clear', async () => {
    try {
      await medseg.reset();
      state.objects = [];
      state.nextId = 1;
      state.lastPropagation = null;
      maskCache.clear();
      addObject();
      messages.info('All objects and masks cleared.');
    } catch (err) {
      messages.error('Clearing', err);
    }
  });
  scheduleRender();
});

// ---------------------------------------------------------------------------------------
// Prompts and undo
// ---------------------------------------------------------------------------------------

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

function promptBox(box) {
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

function promptPoint(x, y, label) {
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
async function reapplyAll() {
  for (const obj of state.objects) {
    if (obj.prompts.size) await applyPrompts(obj, obj.prompts);
  }
  maskCache.clear();
}

function undo() {
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

/** LiteMedSAM is prompted with a box only (its recipe has no points). */
function boxOnlyModel() {
  return state.model?.architecture === 'lite-medsam';
}

function setTool(tool) {
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

// ---------------------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------------------

ui.frameSlider.addEventListener('input', () => setFrame(ui.frameSlider.value));
ui.frameNumber.addEventListener('change', () => setFrame(ui.frameNumber.value));
ui.prevFrame.addEventListener('click', () => setFrame(state.frame - 1));
ui.nextFrame.addEventListener('click', () => setFrame(state.frame + 1));

function normaliseRange() {
  const last = Math.max(0, (state.doc?.frameCount ?? 1) - 1);
  let a = clamp(Math.round(Number(ui.rangeFrom.value) || 0), 0, last);
  let b = clamp(Math.round(Number(ui.rangeTo.value)), 0, last);
  if (!Number.isFinite(b)) b = last;
  if (a > b) [a, b] = [b, a];
  ui.rangeFrom.value = String(a);
  ui.rangeTo.value = String(b);
  return [a, b];
}

ui.rangeFrom.addEventListener('change', normaliseRange);
ui.rangeTo.addEventListener('change', normaliseRange);

// ---------------------------------------------------------------------------------------
// Propagation
// ---------------------------------------------------------------------------------------

const DIRECTION_TEXT = { forward: 'forward', backward: 'backward', both: 'both ways' };

/**
 * Propagates over the range of the controls, or over `range` for a re-propagation after
 * a correction (`correction`: the corrected frame, for the messages).
 */
async function propagate(direction, { range = null, correction = null } = {}) {
  const doc = state.doc;
  if (!doc || doc.frameCount < 2) return;
  if (!state.model) return;
  if (!state.objects.some((o) => o.inEngine)) {
    messages.warn('Prompt an object first (draw a box), then propagate.');
    return;
  }
  if (!range) {
    range = normaliseRange();
    state.lastPropagation = { direction, range };
  }
  await withBusy('propagate', 'propagate', async () => {
    state.cancelRequested = false;
    ui.propProgress.max = 1;
    ui.propProgress.value = 0;
    ui.propStatus.textContent = `propagating ${DIRECTION_TEXT[direction]}…`;
    ui.propMs.textContent = '';
    if (ui.follow.checked) await prefetchFrames(range, direction);
    if (state.cancelRequested) {
      ui.propStatus.textContent = 'cancelled';
      return;
    }
    ui.propStatus.textContent = `propagating ${DIRECTION_TEXT[direction]}…`;
    const t0 = performance.now();
    let frames = 0;
    let msSum = 0;
    let lastFrame = null;
    try {
      const result = await medseg.propagate(direction, {
        range,
        onFrame: (ev) => {
          frames += 1;
          msSum += ev.ms;
          lastFrame = ev.frame;
          showFrameProgress(ev, `${frameWord()} ${ev.frame} · ${ev.done}/${ev.total}`);
          takeFrameMasks(ev.frame, ev.masks);
          if (ui.follow.checked) setFrame(ev.frame);
          else if (ev.frame === state.frame) scheduleRender();
        },
      });
      const secs = ((performance.now() - t0) / 1000).toFixed(1);
      const avg = frames ? ` (${(msSum / frames).toFixed(0)} ms per ${frameWord()})` : '';
      if (state.cancelRequested || result.cancelled) {
        ui.propStatus.textContent = `cancelled at ${frameWord()} ${lastFrame ?? '?'}`;
        messages.info(`Propagation cancelled after ${frames} ${frameWord()}s; the masks made so far are kept.`);
      } else {
        ui.propStatus.textContent = `done: ${frames} ${frameWord()}s, ${secs} s`;
        if (frames) ui.propProgress.value = ui.propProgress.max;
        const why = correction === null ? '' : ` from the correction on ${frameWord()} ${correction}`;
        messages.ok(`Propagated ${DIRECTION_TEXT[direction]}${why} over ${frames} ${frameWord()}s in ${secs} s${avg}.`);
      }
    } catch (err) {
      if (state.cancelRequested || /cancel|abort/i.test(errorText(err))) {
        ui.propStatus.textContent = `cancelled at ${frameWord()} ${lastFrame ?? '?'}`;
        messages.info(`Propagation cancelled after ${frames} ${frameWord()}s; the masks made so far are kept.`);
      } else {
        ui.propStatus.textContent = 'failed';
        messages.error(`Propagating ${DIRECTION_TEXT[direction]}`, err);
      }
    } finally {
      maskCache.clear();
    }
  });
  scheduleRender();
}

/**
 * After a correction box on `frame`, propagates again over the last propagation's range:
 * forward from the frame to the range's end, and backward from it to the range's start
 * where that propagation went backward. Frames on the other side of the correction keep
 * their masks. SAM 2 propagates backward only from its earliest prompted frame, so a
 * correction after that frame is followed forward only.
 */
async function repropagateFrom(frame) {
  const last = state.lastPropagation;
  if (!last || !state.doc) return;
  const [first, end] = last.range;
  if (frame < first || frame > end) return;
  const earliest = Math.min(...state.objects.flatMap((o) => [...o.prompts.keys()]));
  const parts = [];
  if (last.direction !== 'backward' && frame < end) parts.push(['forward', [frame, end]]);
  if (last.direction !== 'forward' && frame > first && (state.model?.architecture !== 'sam2' || frame <= earliest)) {
    parts.push(['backward', [first, frame]]);
  }
  for (const [direction, range] of parts) {
    await propagate(direction, { range, correction: frame });
    if (state.cancelRequested) break;
  }
}

/** A propagated frame ({done, total, ms}) on the progress bar, with the status `text`. */
function showFrameProgress({ done, total, ms }, text) {
  ui.propProgress.max = total;
  ui.propProgress.value = Math.min(total, done);
  ui.propStatus.textContent = text;
  ui.propMs.textContent = `${ms.toFixed(0)} ms/${frameWord()}`;
}

ui.propForward.addEventListener('click', () => propagate('forward'));
ui.propBackward.addEventListener('click', () => propagate('backward'));
ui.propBoth.addEventListener('click', () => propagate('both'));

/**
 * Loads the frames a propagation will show into the frame cache first (as many as the
 * cache holds), so that the view can follow the propagation even where the engine answers
 * getFrame only between whole operations.
 */
async function prefetchFrames([first, last], direction) {
  const doc = state.doc;
  const bytes = Math.max(1, doc.width * doc.height * 4);
  const room = Math.floor((frameCache.budget * 0.75) / bytes);
  const order = [];
  if (direction !== 'backward') for (let f = state.frame; f <= last; f++) order.push(f);
  if (direction !== 'forward') for (let f = state.frame - 1; f >= first; f--) order.push(f);
  const todo = order.filter((f) => f >= first && f <= last && !frameCache.map.has(f)).slice(0, room);
  const gen = state.docGen;
  state.prefetching = true;
  try {
    for (let i = 0; i < todo.length && !state.cancelRequested && gen === state.docGen; i++) {
      if (i % 8 === 0) ui.propStatus.textContent = `preparing ${frameWord()}s ${i}/${todo.length}…`;
      frameCache.set(todo[i], frameToCanvas(await medseg.getFrame(todo[i])));
    }
  } catch {
    // A frame that cannot be had is reported when it is shown.
  } finally {
    state.prefetching = false;
  }
}

async function cancelWork() {
  if (state.busy === 'propagate') {
    if (state.prefetching) {
      state.cancelRequested = true;
      return true;
    }
    state.cancelRequested = true;
    ui.propStatus.textContent = 'cancelling…';
    try {
      await medseg.cancel();
    } catch (err) {
      messages.error('Cancel', err);
    }
    return true;
  }
  if (state.busy === 'video' && state.videoAbort) {
    state.videoAbort.abort();
    return true;
  }
  return viewer.cancelDrag();
}

ui.cancel.addEventListener('click', () => cancelWork());

// ---------------------------------------------------------------------------------------
// Export
// ---------------------------------------------------------------------------------------

async function exportBlob(what, call, name) {
  await withBusy('export', `export ${what}`, async () => {
    taskTitle = `Exporting ${what}`;
    setTask(`${taskTitle}…`, null);
    try {
      const blob = await call();
      if (blob.size === 0) throw new Error(`the ${what} export is empty`);
      const fileName = typeof name === 'function' ? await name(blob) : name;
      downloadBlob(blob, fileName);
      messages.ok(`Saved ${fileName} (${fmtBytes(blob.size)}).`);
    } catch (err) {
      messages.error(`Exporting ${what}`, err);
    } finally {
      clearTask();
    }
  });
}

async function isGzip(blob) {
  const b = new Uint8Array(await blob.slice(0, 2).arrayBuffer());
  return b[0] === 0x1f && b[1] === 0x8b;
}

ui.exportNifti.addEventListener('click', () =>
  exportBlob('NIfTI masks', () => medseg.exportNifti(), async (blob) => `${baseName(state.doc.name)}_masks.nii${(await isGzip(blob)) ? '.gz' : ''}`),
);

ui.exportPng.addEventListener('click', () =>
  exportBlob('PNG masks', () => medseg.exportPngZip(), `${baseName(state.doc?.name)}_masks.zip`),
);

ui.exportVideo.addEventListener('click', () => exportVideo());

async function exportVideo() {
  const doc = state.doc;
  if (!doc || doc.kind !== 'video') return;
  const fps = clamp(Math.round(Number(ui.videoFps.value)) || 15, 1, 60);
  ui.videoFps.value = String(fps);
  const scale = Math.min(1, 1280 / Math.max(doc.width, doc.height));
  const width = Math.round(doc.width * scale);
  const height = Math.round(doc.height * scale);
  const frames = Array.from({ length: doc.frameCount }, (_, i) => i);
  const abort = new AbortController();
  const gen = state.docGen;
  await withBusy('video', 'record the video', async () => {
    state.videoAbort = abort;
    taskTitle = 'Recording overlay video';
    setTask(`${taskTitle}…`, 0);
    messages.info(`Recording the overlay video in real time (${(frames.length / fps).toFixed(1)} s at ${fps} fps); Esc cancels.`);
    try {
      const { blob, ext } = await recordOverlayVideo({
        frames,
        fps,
        width,
        height,
        signal: abort.signal,
        onProgress: (done, total) => setTask(`Recording overlay video ${done}/${total}`, done / total),
        drawFrame: async (ctx, f, w, h) => {
          if (gen !== state.docGen) throw new Error('the document changed during the export');
          const frameCanvas = await getFrameCanvas(f);
          ctx.imageSmoothingEnabled = true;
          ctx.drawImage(frameCanvas, 0, 0, w, h);
          ctx.imageSmoothingEnabled = false;
          const edge = edgeFor(w / doc.width);
          for (const obj of state.objects) {
            if (!obj.visible || !obj.inEngine) continue;
            const ov = await getOverlay(f, obj, edge);
            if (ov) ctx.drawImage(ov.canvas, 0, 0, w, h);
          }
        },
      });
      const fileName = `${baseName(doc.name)}_overlay.${ext}`;
      downloadBlob(blob, fileName);
      messages.ok(`Saved ${fileName} (${fmtBytes(blob.size)}).`);
    } catch (err) {
      if (abort.signal.aborted) messages.info('Video export cancelled.');
      else messages.error('Recording the overlay video', err);
    } finally {
      state.videoAbort = null;
      clearTask();
    }
  });
  scheduleRender();
}

// ---------------------------------------------------------------------------------------
// Keyboard
// ---------------------------------------------------------------------------------------

function isTyping(target) {
  if (!(target instanceof HTMLElement)) return false;
  if (target.isContentEditable) return true;
  if (target instanceof HTMLTextAreaElement || target instanceof HTMLSelectElement) return true;
  if (target instanceof HTMLInputElement) return !['checkbox', 'radio', 'button', 'color', 'file'].includes(target.type);
  return false;
}

window.addEventListener('keydown', (e) => {
  if (e.key === 'Escape') {
    cancelWork();
    return;
  }
  if (isTyping(e.target) || e.altKey) return;
  const ctrl = e.ctrlKey || e.metaKey;
  const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
  if (ctrl) {
    if (key === 'z' && !e.shiftKey) {
      e.preventDefault();
      undo();
    }
    return;
  }
  let handled = true;
  switch (key) {
    case 'b':
      setTool('box');
      break;
    case 'p':
      setTool(e.shiftKey ? 'point-' : 'point+');
      break;
    case 'ArrowLeft':
      setFrame(state.frame - (e.shiftKey ? 10 : 1));
      break;
    case 'ArrowRight':
      setFrame(state.frame + (e.shiftKey ? 10 : 1));
      break;
    case 'PageUp':
      setFrame(state.frame - 10);
      break;
    case 'PageDown':
      setFrame(state.frame + 10);
      break;
    case 'Home':
      setFrame(0);
      break;
    case 'End':
      setFrame((state.doc?.frameCount ?? 1) - 1);
      break;
    case 'f':
      if (!ui.propForward.disabled) propagate('forward');
      break;
    case 'r':
      if (!ui.propBackward.disabled) propagate('backward');
      break;
    case 'a':
      if (!ui.propBoth.disabled) propagate('both');
      break;
    case 'n':
      if (!ui.addObject.disabled) newObject();
      break;
    case 'w':
      if (!ui.windowRow.hidden && !ui.windowSelect.disabled) {
        const i = WINDOWS.indexOf(state.windowPreset);
        const next = WINDOWS[(i + 1) % WINDOWS.length];
        ui.windowSelect.value = next;
        applyWindow(next);
      }
      break;
    default:
      if (/^[1-9]$/.test(key)) {
        const obj = state.objects[Number(key) - 1];
        if (obj) selectObject(obj.id);
      } else {
        handled = false;
      }
  }
  if (handled) e.preventDefault();
});

// ---------------------------------------------------------------------------------------
// Calls made through window.medseg by scripts or an embedding page
// ---------------------------------------------------------------------------------------
//
// The API reports each successful call as an event ("model", "open", "prompt", "frame",
// "reset"), whoever made it. The page's own calls run while `state.busy` is set and update
// the view themselves; an event that arrives while the page is idle came from elsewhere,
// and the page mirrors it so that what it shows is what the engine holds.

const MIRRORED_EVENTS = {
  model: mirrorModel,
  open: mirrorOpen,
  prompt: mirrorPrompt,
  frame: mirrorFrame,
  window: mirrorWindow,
  reset: mirrorReset,
};

function watchExternalCalls() {
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

// ---------------------------------------------------------------------------------------
// Offline status
// ---------------------------------------------------------------------------------------

let swState = { state: 'unsupported' };

function showOffline() {
  const b = ui.offlineBadge;
  if (!navigator.onLine) {
    b.textContent = 'offline';
    b.className = swState.state === 'active' ? 'badge ok' : 'badge warn';
    b.title = swState.state === 'active' ? 'No network: running from the offline cache.' : 'No network, and no offline cache.';
    return;
  }
  if (swState.state === 'active') {
    b.textContent = 'offline-ready';
    b.className = 'badge ok';
    b.title = 'The app and the models it loaded are cached: it works without the network.';
  } else if (swState.state === 'installing') {
    b.textContent = 'caching…';
    b.className = 'badge';
    b.title = 'The offline cache is being set up; it is used from the next load on.';
  } else {
    b.textContent = 'online only';
    b.className = 'badge warn';
    b.title = `No offline cache: ${swState.detail ?? swState.state}`;
  }
}

window.addEventListener('online', showOffline);
window.addEventListener('offline', showOffline);
navigator.serviceWorker?.addEventListener('controllerchange', () => {
  swState = { ...swState, state: 'active' };
  showOffline();
});

// ---------------------------------------------------------------------------------------
// Start
// ---------------------------------------------------------------------------------------

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
  viewer.setTool(state.tool);
  updateControls();
  renderObjectList();
  await populateModels();
  swState = await registerServiceWorker();
  showOffline();
  if (swState.state === 'failed') {
    messages.info(`Offline cache unavailable (${swState.detail}); the app still works online.`);
  }
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
