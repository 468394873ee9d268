// Documents: opening a file, several, a folder or a DICOM series (file pickers, drag and
// drop), the time point of a 4-D NIfTI, showing it, CT window presets.
import { medseg, fileKind, unsupportedFileText, isDicomFile, anyDicom } from '../medseg.js';
import { el, errorText, fmtBytes, fmtValue, plural } from '../ui/dom.js';
import { ui, messages, state, ask, dialogElement, hasVoxelValues } from './state.js';
import { frameCache, maskCache } from './cache.js';
import { scheduleRender, setFrame, schedulePrepare, updateControls, setToolHint, setTask, clearTask } from './view.js';
import { withBusy } from './busy.js';
import { loadModelFile } from './model.js';
import { addObject } from './objects.js';
import { exportMasks } from './export.js';
import { mayReplaceDocument } from './unsaved.js';
import { droppedFiles, chooseSeries, filePath } from './dicom.js';
import { pick } from '../ui/dialog.js';

/** What a file is for the page: by its name (strictly), else DICOM by its first bytes. */
async function pageKind(file) {
  return fileKind(file.name, '', { strict: true }) ?? ((await isDicomFile(file)) ? 'dicom' : null);
}

/**
 * Opens what the user picked or dropped: one file, or several (a folder's files, in path
 * order; `name` the folder's). DICOM files open as one series (the user picks it when
 * there are several); several files of other kinds open the first.
 * @param {File[]} files
 * @param {{ name?: string }} [opts]
 */
async function openDocuments(files, { name } = {}) {
  if (!files.length) {
    messages.warn(`Nothing to open${name ? `: ${name} holds no file` : ''}.`);
    return;
  }
  const label = name || (files.length === 1 ? files[0].name : `${files.length} files`);
  if (!state.inited) {
    messages.error(`Cannot open ${label}`, 'the engine is not running (see the notice above)');
    return;
  }
  if (files.length > 1 || name) {
    if (await anyDicom(files)) return openDicom(files, label);
    if (files.length > 1) messages.info(`Opening the first of the ${files.length} files (${files[0].name}).`);
  }
  return openDocument(files[0]);
}

async function openDocument(file) {
  const kind = await pageKind(file);
  if (kind === 'model') return loadModelFile(file);
  if (!kind) {
    messages.error(`Cannot open ${file.name}`, `${unsupportedFileText(file.name)}.`);
    return;
  }
  if (file.size === 0) {
    messages.error(`Cannot open ${file.name}`, 'the file is empty (0 bytes)');
    return;
  }
  if (kind === 'dicom') return openDicom([file], file.name);
  if (!(await mayReplaceDocument(file.name, exportMasks))) {
    messages.info(`Kept ${state.doc?.name}; ${file.name} was not opened.`);
    return;
  }
  let choice = await openWithBusy(file.name, (onProgress) => medseg.openFile(file, { onProgress }));
  // A 4-D NIfTI of several slices: the user picks the time point (the file is read again).
  while (choice?.kind === 'choose-time-point') {
    const timePoint = await chooseTimePoint(file.name, choice.timePoints, choice.dims);
    if (timePoint == null) {
      messages.info(`No time point opened${state.doc ? `; still showing ${state.doc.name}` : ''}.`);
      return;
    }
    choice = await openWithBusy(file.name, (onProgress) => medseg.openFile(file, { timePoint, onProgress }));
  }
}

/**
 * Asks which time point of a 4-D NIfTI of several slices to open (its volumes share one
 * geometry). Answers the 0-based index, or null when cancelled.
 * @param {string} label the file's name
 * @param {number} timePoints
 * @param {number[]} dims [x, y, z] of each time point
 */
async function chooseTimePoint(label, timePoints, dims) {
  const [x, y, z] = dims;
  const picked = await pick(dialogElement, {
    title: 'Choose a time point',
    text: `${label} is a 4-D NIfTI: ${timePoints} time points, each a volume of ${x}×${y}×${z} voxels. Which one should open?`,
    head: ['Time point', 'Size'],
    items: Array.from({ length: timePoints }, (_, t) => ({
      value: String(t),
      cells: [String(t), `${x}×${y}×${z}`],
      label: `time point ${t} of ${timePoints}, ${x} by ${y} by ${z} voxels`,
    })),
  });
  return picked == null ? null : Number(picked);
}

/**
 * Opens DICOM files as one document (`label`: the folder's name, or the file's); when
 * they hold several series, asks which and opens that one (the engine keeps the files:
 * they are not read again).
 * @param {File[]} files
 * @param {string} label
 */
async function openDicom(files, label) {
  if (!(await mayReplaceDocument(label, exportMasks))) {
    messages.info(`Kept ${state.doc?.name}; ${label} was not opened.`);
    return;
  }
  const name = files.length > 1 ? label : undefined;
  let choice = await openWithBusy(label, (onProgress) => medseg.openFile(files, { name, onProgress }));
  while (choice?.kind === 'choose-series') {
    const uid = await chooseSeries(label, choice.series);
    if (!uid) {
      messages.info(`No series opened${state.doc ? `; still showing ${state.doc.name}` : ''}.`);
      return;
    }
    choice = await openWithBusy(label, (onProgress) => medseg.openFile(files, { name, series: uid, onProgress }));
  }
}

/**
 * Runs an opening under the busy state with its progress; messages its outcome. Answers
 * the choice the user must make, else null: the series when DICOM files hold several
 * ({kind: "choose-series", series}), the time point of a 4-D NIfTI of several slices
 * ({kind: "choose-time-point", timePoints, dims}).
 * @param {string} label
 * @param {(onProgress: (p: any) => void) => Promise<any>} open
 */
async function openWithBusy(label, open) {
  /** @type {{ kind: 'choose-series', series: any[] } | { kind: 'choose-time-point', timePoints: number, dims: number[] } | null} */
  let choose = null;
  await withBusy('open', `open ${label}`, async () => {
    state.taskTitle = `Opening ${label}`;
    setTask(`${state.taskTitle}…`, null);
    const t0 = performance.now();
    const onProgress = (p) => {
      if (p?.task !== 'dicom') return;
      if (p.stage === 'read') setTask(p.total > 1 ? `Reading ${p.loaded} of ${p.total} files…` : `Reading ${label}…`, p.total ? p.loaded / p.total : null);
      else setTask(`Decoding ${label}…`, null);
    };
    try {
      // The "open" event has shown it (showOpened below).
      await open(onProgress);
      const secs = ((performance.now() - t0) / 1000).toFixed(1);
      messages.ok(`Opened ${state.doc.name}: ${describeDoc(state.doc)} (${secs} s).`);
      // An error about an earlier file is no longer what the user needs to see.
      messages.notice('last-error', 'error', null);
      if (state.doc.notice) messages.warn(state.doc.notice);
    } catch (err) {
      if (err?.kind === 'choose-series' && Array.isArray(err.series)) {
        choose = { kind: 'choose-series', series: err.series };
        return;
      }
      if (err?.kind === 'choose-time-point' && Number.isInteger(err.timePoints)) {
        choose = { kind: 'choose-time-point', timePoints: err.timePoints, dims: err.dims };
        return;
      }
      // The engine's message names the file already ("scan.png: not a PNG ...").
      messages.error(errorText(err).startsWith(`${label}:`) ? 'Could not open' : `Could not open ${label}`, err);
      if (state.doc) messages.info(`Still showing ${state.doc.name}; its masks are kept.`);
    } finally {
      clearTask();
    }
  });
  updateControls();
  scheduleRender();
  return choose;
}

/**
 * Makes the document the engine has just opened (described by `info`) the one shown: its
 * frames, no objects but a first empty one, the scrubber, the middle slice of a volume.
 */
export function showDocument(info, { name, size }) {
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
    values: info.values ?? null,
    dicom: info.dicom ?? null, // {modality, description, series_number, frame_time_ms}: nothing about the patient
    fileWindow: info.file_window ?? null, // the DICOM file's own window {level, width}
    timePoint: info.time_point ?? null, // {index, of}: the time point opened of a 4-D NIfTI
    notice: noticeText(info),
    name,
    size,
  };
  state.objects = [];
  state.nextId = 1;
  state.selectedId = null;
  state.lastPropagation = null;
  addObject();
  state.displayWindow = '';
  ui.windowSelect.value = '';
  ui.customWindow.hidden = true;
  showWindow(info.window ?? '');
  // The CT presets are offered only for values in Hounsfield units.
  for (const o of ui.windowSelect.options) o.disabled = o.dataset.hu !== undefined && !hounsfield();
  // A DICOM volume is shown first through the file's own window (the model's input stays automatic).
  const fw = state.doc.fileWindow;
  ui.fileWindowOption.hidden = !fw;
  ui.fileWindowOption.disabled = !fw;
  ui.fileWindowOption.textContent = fw ? `File (W${fmtValue(fw.width)} L${fmtValue(fw.level)})` : "File's window";
  if (fw && hasVoxelValues(state.doc)) setDisplayWindow('file');
  // A DICOM cine's overlay video plays at its own pace (Frame Time).
  const ms = info.dicom?.frame_time_ms;
  if (Number.isFinite(ms) && ms > 0) ui.videoFps.value = String(Math.min(60, Math.max(1, Math.round(1000 / ms))));
  setupScrubber();
  state.frame = -1;
  setFrame(state.doc.kind === 'volume' ? Math.floor((frameCount - 1) / 2) : 0);
  showFileInfo();
  setToolHint(state.tool === 'box' ? 'Drag a box around the structure.' : 'Click on the structure.');
}

/** Every document the engine opens is shown from its "open" event, whoever opened it. */
function showOpened({ info, size }) {
  showDocument(info, { name: info.name, size });
  updateControls();
  scheduleRender();
}

medseg.on('open', showOpened);

/** The file's notice(s) as one text ('' if none). */
function noticeText(info) {
  const list = [info.notice, ...(Array.isArray(info.notices) ? info.notices : [])].filter(Boolean).map(String);
  return [...new Set(list)].join(' · ');
}

export function describeDoc(doc) {
  const n = doc.frameCount;
  const size = `${doc.width}×${doc.height}`;
  const t = doc.timePoint;
  if (doc.kind === 'volume') return `volume, ${size} × ${n} slices${t ? `, time point ${t.index} of ${t.of}` : ''}`;
  if (doc.kind === 'clip') return `clip, ${size}, ${n} frames`;
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

/** "−1024 … 3071 HU", or the range with what it is not. */
function valuesText({ min, max, hounsfield }) {
  const range = `${fmtValue(min)} … ${fmtValue(max)}`;
  if (hounsfield) return `${range} HU (CT)`;
  return max <= 255 && min >= 0 ? `${range}: not Hounsfield units (already 0–255), so no CT windows` : `${range}: not Hounsfield units (MR or other), so no CT windows`;
}

function showFileInfo() {
  const d = state.doc;
  const rows = [
    ['name', d.name],
    ['type', d.kind],
    ['size', `${d.width} × ${d.height}${d.kind === 'volume' ? ` × ${d.frameCount}` : ''} px`],
  ];
  if (d.kind === 'clip') rows.push(['frames', String(d.frameCount)]);
  if (d.timePoint) rows.push(['time point', `${d.timePoint.index} of ${d.timePoint.of} (0-based)`]);
  if (d.dicom) {
    // What the series is; never who the patient is (the engine does not send it).
    rows.push(['modality', d.dicom.modality || '—']);
    if (d.dicom.description) rows.push(['series', d.dicom.description]);
    const ms = d.dicom.frame_time_ms;
    if (Number.isFinite(ms) && ms > 0) rows.push(['frame time', `${fmtValue(ms)} ms (${(1000 / ms).toFixed(1)} fps)`]);
  }
  if (Array.isArray(d.spacing) && d.spacing.length) {
    rows.push(['spacing', `${d.spacing.map((v) => Number(v).toFixed(2)).join(' × ')} mm`]);
  }
  if (d.values) rows.push(['values', valuesText(d.values)]);
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
  const files = [...(ui.fileInput.files ?? [])];
  if (files.length) openDocuments(files);
});

ui.openFolder.addEventListener('click', () => {
  ui.folderInput.value = '';
  ui.folderInput.click();
});

// A folder (webkitdirectory): every file under it, with its path; opened as DICOM.
ui.folderInput.addEventListener('change', () => {
  const files = [...(ui.folderInput.files ?? [])].sort((a, b) => filePath(a).localeCompare(filePath(b), undefined, { numeric: true }));
  if (!files.length) return;
  openDocuments(files, { name: filePath(files[0]).split('/')[0] || 'folder' });
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
  // The folders' entries must be taken during the event; they are read after it.
  const dropped = droppedFiles(e.dataTransfer);
  dropped
    .then(({ files, name }) => (files.length || name ? openDocuments(files, { name: name ?? undefined }) : undefined))
    .catch((err) => messages.error('Reading the dropped files', err));
});

// ---------------------------------------------------------------------------------------
// Windows: what the page shows (display) apart from what the model sees (model input)
// ---------------------------------------------------------------------------------------
//
// A radiologist changes the display window all the time and expects the segmentation to
// stay: the display window is the page's alone (the engine maps the shown slice through
// it, nothing is segmented again). The model's input window is chosen once, automatically
// from the data (soft tissue for CT in HU, as MedSAM2 does; as stored for 0..255 data; MR
// percentiles otherwise); changing it is an explicit step that re-segments the prompted
// slices, after the user confirms.

/** The display presets W cycles through ('' = as the model sees it). */
const WINDOWS = ['', 'soft', 'lung', 'bone', 'brain', 'mr', 'none'];
const HU_WINDOWS = new Set(['soft', 'lung', 'bone', 'brain']);
const WINDOW_LABEL = { soft: 'soft tissue', lung: 'lung', bone: 'bone', brain: 'brain', mr: 'MR percentiles', none: '0–255 as stored' };

/** Whether the open volume's values are CT Hounsfield units (the CT presets mean something). */
function hounsfield() {
  return state.doc?.values?.hounsfield !== false;
}

/** Shows the slices through display window `preset` ('' = the model's input; 'file' = the DICOM file's own); instant. */
function setDisplayWindow(preset) {
  if (!hasVoxelValues(state.doc)) return;
  if (preset === 'custom') return setCustomWindow(customStart());
  if (preset === 'file' && state.doc.fileWindow) {
    state.displayWindow = { ...state.doc.fileWindow };
    ui.windowSelect.value = 'file';
    ui.customWindow.hidden = true;
    frameCache.clear();
    scheduleRender();
    return;
  }
  const usable = WINDOWS.includes(preset) && !(HU_WINDOWS.has(preset) && !hounsfield());
  const shown = usable ? preset : '';
  state.displayWindow = shown;
  ui.windowSelect.value = shown;
  ui.customWindow.hidden = true;
  frameCache.clear();
  scheduleRender();
}

/** Where a custom window starts: the preset shown (CT presets' W/L), else the volume's whole range. */
function customStart() {
  const ct = { soft: [400, 40], lung: [1500, -600], bone: [1800, 400], brain: [80, 40] }[String(state.displayWindow)];
  if (ct) return { width: ct[0], level: ct[1] };
  if (typeof state.displayWindow === 'object') return { ...state.displayWindow };
  const v = state.doc?.values;
  if (!v || !(v.max > v.min)) return { width: 256, level: 127.5 };
  return { width: v.max - v.min, level: (v.max + v.min) / 2 };
}

/** Shows the slices through a window level and width of the user's own (any units the volume has). */
function setCustomWindow({ level, width }) {
  if (!(width > 0) || !Number.isFinite(level)) {
    messages.warn('A window needs a width above 0 and a level: the last valid one stays.');
    return;
  }
  state.displayWindow = { level, width };
  ui.windowSelect.value = 'custom';
  ui.customWindow.hidden = false;
  ui.windowWidth.value = String(width);
  ui.windowLevel.value = String(level);
  frameCache.clear();
  scheduleRender();
}

for (const input of [ui.windowWidth, ui.windowLevel]) {
  input.addEventListener('change', () => setCustomWindow({ level: Number(ui.windowLevel.value), width: Number(ui.windowWidth.value) }));
}

/** The next display window (W): the presets that fit the volume's values, in turn. */
export function nextDisplayWindow() {
  const fit = [...(state.doc?.fileWindow ? ['file'] : []), ...WINDOWS.filter((w) => !(HU_WINDOWS.has(w) && !hounsfield()))];
  const now = ui.windowSelect.value === 'file' ? 'file' : String(state.displayWindow);
  setDisplayWindow(fit[(fit.indexOf(now) + 1) % fit.length]);
}

/** The engine now segments the volume through `preset` (a "window" event). */
function showWindow(preset) {
  state.windowPreset = WINDOWS.includes(preset) ? preset : '';
  ui.modelWindow.textContent = WINDOW_LABEL[state.windowPreset] ?? 'auto';
  state.docGen += 1;
  frameCache.clear();
  schedulePrepare();
}

/** Asks which window the model should see, says what that does, and applies it. */
async function changeModelWindow() {
  if (!hasVoxelValues(state.doc) || state.busy) return;
  const choices = WINDOWS.filter((w) => w && w !== state.windowPreset && !(HU_WINDOWS.has(w) && !hounsfield()));
  const prompted = state.objects.reduce((n, o) => n + o.prompts.size, 0);
  const answer = await ask({
    title: 'Model input window',
    text: [
      `The model sees this volume through ${WINDOW_LABEL[state.windowPreset] ?? 'its automatic window'}, chosen from its values${hounsfield() ? ' (CT in Hounsfield units: soft tissue, as MedSAM2 does)' : ''}. The display window above changes only what you see.`,
      prompted
        ? `Another input window segments the ${plural(prompted, 'prompted slice')} again with it; propagated masks stay as they are until you propagate again.`
        : 'Another input window applies to the next box and propagation.',
    ],
    buttons: [{ label: 'Cancel', value: 'cancel' }, ...choices.map((w) => ({ label: WINDOW_LABEL[w], value: w }))],
  });
  if (answer === 'cancel' || !WINDOWS.includes(answer)) return;
  await withBusy('window', 'change the model input window', async () => {
    try {
      // The "window" event shows it (below); the engine re-segments the prompts.
      const res = await medseg.setWindow(answer, { resegment: true });
      const n = res?.resegmented ?? 0;
      messages.ok(`The model now sees the volume through ${WINDOW_LABEL[answer]}${n ? `; ${plural(n, 'prompted slice')} segmented again` : ''}.`);
    } catch (err) {
      messages.error(`Model input window "${answer}"`, err);
    }
  });
  scheduleRender();
}

// Every model input window change is shown from its "window" event, whoever made it.
medseg.on('window', ({ window }) => {
  if (!hasVoxelValues(state.doc)) return;
  showWindow(window);
  scheduleRender();
});

ui.windowSelect.addEventListener('change', () => setDisplayWindow(ui.windowSelect.value));
ui.modelWindowChange.addEventListener('click', () => changeModelWindow());
