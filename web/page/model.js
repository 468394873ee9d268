// Models: the picker, loading one from weights/ or from a file, showing the loaded one.
import { medseg, DEFAULT_MODEL_PATH, fileKind } from '../medseg.js';
import { el } from '../ui/dom.js';
import { KNOWN_MODELS, MEDSAM2_HELP, cachedWeights, listedWeights, weightsStatus, fileLabel } from '../ui/models.js';
import { ui, messages, state, ask } from './state.js';
import { maskCache } from './cache.js';
import { scheduleRender, schedulePrepare, setTask, clearTask } from './view.js';
import { withBusy } from './busy.js';

const OPEN_MODEL_FILE = '__open_model_file__';
const GET_MEDSAM2 = '__get_medsam2__';

export async function populateModels() {
  const sel = ui.modelSelect;
  const [listed, cachedList] = await Promise.all([listedWeights(), cachedWeights()]);
  const cached = new Set(cachedList);
  // Without the server's list, the default model is offered (a pick checks it is there).
  const present = listed ?? [DEFAULT_MODEL_PATH];
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
  const label = (url) => KNOWN_MODELS.find((m) => m.url === url)?.label ?? fileLabel(url);
  // The default first, then the others by name.
  const ordered = [...new Set(present)].sort((a, b) => Number(b === DEFAULT_MODEL_PATH) - Number(a === DEFAULT_MODEL_PATH) || a.localeCompare(b));
  for (const url of ordered) group('weights/').append(el('option', { value: url }, label(url)));
  for (const url of cached) {
    if (!present.includes(url)) group('Offline cache').append(el('option', { value: url }, label(url)));
  }
  for (const [key, file] of state.modelFiles) {
    group('Your files').append(el('option', { value: key }, file.name));
  }
  const medsam2 = [...present, ...cached].some((u) => /medsam2/i.test(u)) || state.model?.architecture === 'sam2';
  if (!medsam2) sel.append(el('option', { value: GET_MEDSAM2 }, 'Get MedSAM2…'));
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
export async function loadModelUrl(url, { auto = false } = {}) {
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
export function showModel(info, { key, label }) {
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
    state.taskTitle = `Loading ${label}`;
    setTask(`${state.taskTitle}…`, null);
    ui.modelState.textContent = `loading ${label}…`;
    ui.modelState.className = 'model-state';
    const t0 = performance.now();
    try {
      const info = await medseg.loadModel(source);
      const shown = showModel(info, { key, label });
      messages.ok(`Model ready: ${shown} (${((performance.now() - t0) / 1000).toFixed(1)} s).`);
      if (state.doc && state.objects.some((o) => o.prompts.size)) {
        messages.info('Prompts and masks kept: prompt or propagate again to segment with the new model.');
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

export async function loadModelFile(file) {
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

function openModelFile() {
  ui.modelFile.value = '';
  ui.modelFile.click();
}

ui.modelSelect.addEventListener('change', () => {
  const v = ui.modelSelect.value;
  if (v === GET_MEDSAM2) {
    ui.modelSelect.value = state.modelKey;
    if (!state.modelKey) ui.modelSelect.selectedIndex = -1;
    ask({
      title: 'Get MedSAM2',
      text: MEDSAM2_HELP,
      buttons: [
        { label: 'Close', value: 'close' },
        { label: 'Open a model file…', value: 'open', primary: true },
      ],
    }).then((answer) => {
      if (answer === 'open') openModelFile();
    });
    return;
  }
  if (v === OPEN_MODEL_FILE) {
    ui.modelSelect.value = state.modelKey;
    if (!state.modelKey) ui.modelSelect.selectedIndex = -1;
    openModelFile();
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
