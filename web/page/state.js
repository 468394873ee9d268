// The page's shared state: its elements (ui), the message area (messages), what it shows
// (state), and small questions about them. Every page module imports from here; this one
// imports no page module, so it is evaluated first.
import { $ } from '../ui/dom.js';
import { Messages } from '../ui/messages.js';
import { ask as askIn } from '../ui/dialog.js';

export const ui = {
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
  openFolder: $('open-folder', HTMLButtonElement),
  folderInput: $('folder-input', HTMLInputElement),
  fileWindowOption: $('file-window-option', HTMLOptionElement),
  fileInfo: $('file-info', HTMLDListElement),
  windowRow: $('window-row'),
  windowSelect: $('window-select', HTMLSelectElement),
  modelWindow: $('model-window'),
  customWindow: $('custom-window'),
  windowWidth: $('window-width', HTMLInputElement),
  windowLevel: $('window-level', HTMLInputElement),
  modelWindowChange: $('model-window-change', HTMLButtonElement),
  tools: [.../** @type {NodeListOf<HTMLButtonElement>} */ (document.querySelectorAll('.tool[data-tool]'))],
  undo: $('undo', HTMLButtonElement),
  redo: $('redo', HTMLButtonElement),
  toolHint: $('tool-hint'),
  toolNote: $('tool-note'),
  shortcuts: [.../** @type {NodeListOf<HTMLElement>} */ (document.querySelectorAll('.keys [data-needs]'))],
  keysCard: $('keys-card', HTMLDetailsElement),
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
  exportSeg: $('export-seg', HTMLButtonElement),
  videoFps: $('video-fps', HTMLInputElement),
  openLabels: $('open-labels', HTMLButtonElement),
  labelsInput: $('labels-input', HTMLInputElement),
  labelsInfo: $('labels-info'),
  teachSource: $('teach-source', HTMLSelectElement),
  teachEpochs: $('teach-epochs', HTMLInputElement),
  teachAugment: $('teach-augment', HTMLInputElement),
  teachValidation: $('teach-validation', HTMLInputElement),
  teachStart: $('teach-start', HTMLButtonElement),
  teachCancel: $('teach-cancel', HTMLButtonElement),
  teachProgress: $('teach-progress', HTMLProgressElement),
  teachStatus: $('teach-status'),
  teachResult: $('teach-result'),
  useBase: $('use-base', HTMLInputElement),
  useTuned: $('use-tuned', HTMLInputElement),
  teachDownload: $('teach-download', HTMLButtonElement),
};

export const messages = new Messages($('messages'), $('notices'));

const dialog = $('dialog', HTMLDialogElement);

/** The page's one modal dialog (web/ui/dialog.js asks its questions in it). */
export const dialogElement = dialog;

/**
 * Asks the user (a modal dialog, web/ui/dialog.js); answers the value of the button chosen.
 * @param {Parameters<typeof askIn>[1]} question
 */
export function ask(question) {
  return askIn(dialog, question);
}

// Nothing may fail silently or only in the console: uncaught errors go to the messages.
window.addEventListener('error', (e) => {
  messages.error('Unexpected error', e.error ?? e.message);
  e.preventDefault();
});
window.addEventListener('unhandledrejection', (e) => {
  messages.error('Unexpected error', e.reason);
  e.preventDefault();
});

/** What the page is busy with, for the message refusing another task meanwhile. */
export const BUSY_TEXT = {
  engine: 'starting the engine',
  model: 'loading a model',
  open: 'opening a file',
  prompt: 'computing a mask',
  propagate: 'propagating',
  export: 'exporting',
  video: 'recording the overlay video',
  reset: 'clearing',
  window: 'changing the model input window',
  teach: 'teaching the model',
  labels: 'opening a label file',
};

export const state = {
  inited: false,
  backend: null,
  /** Threads the CPU backend computes on. */
  threads: 1,
  backendNotice: '',
  model: null, // {architecture, imageSize, name, label}
  modelKey: '', // the picker value of the loaded model
  modelShown: '', // its description in the header
  doc: null, // {kind, frameCount, width, height, spacing, values, dicom, fileWindow, notice, name, size}
  docGen: 0, // bumped whenever the document (or its display window) changes
  frame: 0,
  tool: 'box',
  objects: [], // {id, name, color, visible, prompts: Map(frame -> {box, points}) as the engine holds them, inEngine}
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
  windowPreset: '', // the window the model sees (the engine's; '' until a volume is open)
  displayWindow: /** @type {string | {level: number, width: number}} */ (''), // the window the slices are shown through ('' = the model's; a preset name, or a level and width of the user's)
  taskTitle: '', // what the long task under way is (engine progress events add to it)
  teach: { labels: null, running: false, tuned: false, using: 'base', report: null }, // the engine's teachState(), from its events
};

/**
 * Whether the open document has voxel values: a volume, or a NIfTI time series opened as
 * a clip (its frames are time points). It gets the windows, the value readout and a
 * NIfTI mask export with the file's geometry.
 * @param {{ values?: object | null } | null | undefined} doc
 */
export function hasVoxelValues(doc) {
  return !!doc?.values;
}

/** The word for one frame of the open document. */
export function frameWord() {
  return state.doc?.kind === 'volume' ? 'slice' : 'frame';
}

export function selectedObject() {
  return state.objects.find((o) => o.id === state.selectedId) ?? null;
}

/** LiteMedSAM is prompted with a box only (its recipe has no points). */
export function boxOnlyModel() {
  return state.model?.architecture === 'lite-medsam';
}
