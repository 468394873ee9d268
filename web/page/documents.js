// Documents: opening a file (file picker, drag and drop), showing it, CT window presets.
import { medseg, fileKind, unsupportedFileText } from '../medseg.js';
import { el, fmtBytes } from '../ui/dom.js';
import { ui, messages, state } from './state.js';
import { frameCache, maskCache } from './cache.js';
import { scheduleRender, setFrame, schedulePrepare, updateControls, setToolHint, setTask, clearTask } from './view.js';
import { withBusy } from './busy.js';
import { loadModelFile } from './model.js';
import { addObject } from './objects.js';
import { exportMasks } from './export.js';
import { mayReplaceDocument } from './unsaved.js';

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
  if (!(await mayReplaceDocument(file.name, exportMasks))) {
    messages.info(`Kept ${state.doc?.name}; ${file.name} was not opened.`);
    return;
  }
  await withBusy('open', `open ${file.name}`, async () => {
    state.taskTitle = `Opening ${file.name}`;
    setTask(`${state.taskTitle}…`, null);
    const t0 = performance.now();
    try {
      // The "open" event has shown it (showOpened below).
      await medseg.openFile(file);
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
  if (doc.kind === 'volume') return `volume, ${size} × ${n} slices`;
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

function showFileInfo() {
  const d = state.doc;
  const rows = [
    ['name', d.name],
    ['type', d.kind],
    ['size', `${d.width} × ${d.height}${d.kind === 'volume' ? ` × ${d.frameCount}` : ''} px`],
  ];
  if (d.kind === 'clip') rows.push(['frames', String(d.frameCount)]);
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
export const WINDOWS = ['soft', 'lung', 'bone', 'brain', 'mr', 'none'];

/** The engine now shows the volume through `preset`: the frames on screen are stale. */
export function showWindow(preset) {
  state.windowPreset = WINDOWS.includes(preset) ? preset : '';
  ui.windowSelect.value = state.windowPreset;
  state.docGen += 1;
  frameCache.clear();
  schedulePrepare();
}

export async function applyWindow(preset) {
  if (!state.doc || state.doc.kind !== 'volume') return;
  await withBusy('window', 'change the window', async () => {
    try {
      // The "window" event shows it (below).
      await medseg.setWindow(preset);
      // The engine keeps prompts and masks; the model sees the new window from the next
      // prompt or propagation on.
      if (state.objects.some((o) => o.prompts.size)) {
        messages.info(`Window "${preset}": prompts and masks kept; propagate again to segment with it.`);
      }
    } catch (err) {
      messages.error(`Window "${preset}"`, err);
      ui.windowSelect.value = state.windowPreset;
    }
  });
  ui.windowSelect.value = state.windowPreset;
  scheduleRender();
}

// Every window change is shown from its "window" event, whoever made it.
medseg.on('window', ({ window }) => {
  if (!state.doc || state.doc.kind !== 'volume') return;
  showWindow(window);
  scheduleRender();
});

ui.windowSelect.addEventListener('change', () => {
  if (ui.windowSelect.value) applyWindow(ui.windowSelect.value);
});
