// The Teach card: a label file over the open document, a fine-tuning run in the worker
// with its progress and Cancel, the base ↔ tuned switch and the tuned model's download.
// The engine holds the labels, the run and both models; this card shows what its events
// ("labels", "finetune", "teach", and "model" / "open", which reset them) report, whoever
// made the call, so a run a script starts shows here too.
import { medseg } from '../medseg.js';
import { baseName, downloadBlob, errorText, fmtBytes, fmtDuration, plural } from '../ui/dom.js';
import { ui, messages, state, frameWord } from './state.js';
import { maskCache } from './cache.js';
import { scheduleRender, schedulePrepare } from './view.js';
import { withBusy } from './busy.js';
import { markTunedSaved } from './unsaved.js';

/** Reads the engine's teaching state again (after a model or a document changed). */
async function refreshTeachState() {
  try {
    state.teach = await medseg.teachState();
  } catch {
    state.teach = { labels: null, running: false, tuned: false, using: 'base', report: null };
  }
  renderTeach();
}

medseg.on('model', refreshTeachState);
medseg.on('open', refreshTeachState);
medseg.on('labels', ({ labels }) => {
  state.teach = { ...state.teach, labels };
  renderTeach();
});
medseg.on('teach', ({ state: s }) => {
  state.teach = s;
  renderTeach();
  showModelChoice();
});

/** Enables the card's controls for what the page is doing (view.js's updateControls calls it). */
export function updateTeachControls() {
  const idle = !state.busy;
  const doc = state.doc;
  const teaching = state.busy === 'teach';
  const hasMasks = state.objects.some((o) => o.inEngine);
  ui.openLabels.disabled = !state.inited || !doc || !idle;
  ui.teachStart.disabled = !state.inited || !doc || !state.model || !idle || !(state.teach.labels || hasMasks);
  ui.teachCancel.disabled = !teaching;
  for (const c of [ui.teachSource, ui.teachEpochs, ui.teachAugment, ui.teachValidation]) c.disabled = teaching;
  ui.teachResult.hidden = !state.teach.tuned;
  ui.useBase.disabled = !idle;
  ui.useTuned.disabled = !idle;
  ui.teachDownload.disabled = !idle;
}

function renderTeach() {
  const l = state.teach.labels;
  const word = frameWord();
  ui.labelsInfo.textContent = l
    ? `${l.name}: ${plural(l.frames, `labelled ${word}`)} (${l.firstFrame}–${l.lastFrame}), ${plural(l.values, 'label value')}.`
    : 'No label file: the masks you made and corrected are the examples.';
  ui.useBase.checked = state.teach.using === 'base';
  ui.useTuned.checked = state.teach.using === 'tuned';
  updateTeachControls();
}

/** The header says which model segments. */
function showModelChoice() {
  if (!state.model) return;
  const tuned = state.teach.using === 'tuned';
  ui.modelState.textContent = tuned ? `${state.modelShown} · tuned here` : state.modelShown;
  ui.modelState.title = ui.modelState.textContent;
}

ui.openLabels.addEventListener('click', () => ui.labelsInput.click());
ui.labelsInput.addEventListener('change', async () => {
  const file = ui.labelsInput.files?.[0];
  ui.labelsInput.value = '';
  if (!file) return;
  await withBusy('labels', `open ${file.name}`, async () => {
    try {
      const l = await medseg.openLabels(file);
      messages.notice('labels', null, null);
      messages.ok(`Labels ${l.name}: ${plural(l.frames, `labelled ${frameWord()}`)}, ${plural(l.values, 'label value')} (${fmtBytes(file.size)}).`);
    } catch (err) {
      // In view until a label file opens (the engine's message names the file).
      messages.error('Opening a label file', err, { banner: false });
      messages.notice('labels', 'error', `Opening a label file: ${errorText(err)}`);
    }
  });
});

/** Timing of the run shown, for the time left: when it started, when embedding ended. */
const clock = { start: 0, embedDone: 0, embeddings: 0 };

const PHASE_TEXT = { embedding: 'embedding', training: 'training', validating: 'validating', done: 'done' };

/** One step of a run on the bar and the status line: what it does, the loss, the time left. */
function showProgress({ progress: p, ms }) {
  const now = performance.now();
  const [embDone, embTotal] = p.work.embeddings;
  if (embDone === 0 && p.phase === 'embedding') Object.assign(clock, { start: now - (ms || 0), embedDone: 0, embeddings: 0 });
  if (p.phase !== 'embedding' && !clock.embedDone) Object.assign(clock, { embedDone: now, embeddings: embTotal });
  const passes = p.work.train_passes[0] + p.work.val_passes[0];
  const passTotal = p.work.train_passes[1] + p.work.val_passes[1];
  const perEmbedding = embDone ? ((clock.embedDone || now) - clock.start) / embDone : null;
  const perPass = clock.embedDone && passes ? (now - clock.embedDone) / passes : null;
  const left = (perEmbedding ?? 0) * (embTotal - embDone) + (perPass ?? 0) * (passTotal - passes);
  const total = (perEmbedding ?? 0) * embTotal + (perPass ?? perEmbedding ?? 0) * passTotal;
  ui.teachProgress.max = 1;
  if (total > 0) ui.teachProgress.value = Math.min(1, 1 - left / total);
  else ui.teachProgress.removeAttribute('value');
  let text;
  if (p.phase === 'embedding') {
    text = `embedding ${embDone} of ${plural(embTotal, 'image')}`;
  } else if (p.phase === 'done') {
    text = 'done';
  } else {
    const loss = p.loss ? ` · loss ${p.loss.total.toFixed(4)}` : '';
    const best = p.best_val_dice != null ? ` · best Dice ${p.best_val_dice.toFixed(3)} (epoch ${p.best_epoch})` : '';
    text = `${PHASE_TEXT[p.phase]} · epoch ${p.epoch} of ${p.epochs} · batch ${p.batch} of ${p.batches}${loss}${best}`;
  }
  // Early stopping can end a run sooner: the estimate is an upper bound.
  const eta = p.phase !== 'done' && perPass ? ` · ≤ ${fmtDuration(left)} left` : p.phase === 'embedding' && perEmbedding ? ` · embedding ~${fmtDuration(left)} left, then training` : '';
  ui.teachStatus.textContent = `${text}${eta}`;
  if (p.finished_epoch) {
    const e = p.finished_epoch;
    const val = e.val_dice != null ? `, validation Dice ${e.val_dice.toFixed(3)}` : '';
    messages.info(`Epoch ${e.epoch} of ${p.epochs}: loss ${e.loss.total.toFixed(4)}${val}.`);
  }
}

medseg.on('finetune', showProgress);

/** A finished run in one sentence. */
function describeRun(result, ms) {
  const r = state.teach.report;
  const hist = r?.history ?? [];
  const losses = hist.length ? `, training loss ${hist[0].loss.total.toFixed(4)} → ${hist[hist.length - 1].loss.total.toFixed(4)}` : '';
  const val =
    result.baseValDice != null
      ? result.bestEpoch > 0
        ? `; held-out ${frameWord()} Dice ${result.baseValDice.toFixed(3)} (base) → ${result.bestValDice.toFixed(3)} (epoch ${result.bestEpoch}, kept)`
        : `; no epoch beat the base model on the held-out ${frameWord()}s (Dice ${result.baseValDice.toFixed(3)}), so the base model stays`
      : '';
  const how = { completed: 'Taught', 'early-stopped': 'Taught (stopped early: no better epoch)', cancelled: 'Cancelled; kept the best so far' }[result.stopped?.reason] ?? 'Taught';
  return `${how} in ${fmtDuration(ms)}: ${plural(result.epochs, 'epoch')}${losses}${val}.`;
}

async function teach() {
  const epochs = Math.max(1, Math.min(200, Math.round(Number(ui.teachEpochs.value)) || 10));
  ui.teachEpochs.value = String(epochs);
  await withBusy('teach', 'teach the model', async () => {
    state.cancelRequested = false;
    ui.teachProgress.removeAttribute('value');
    ui.teachStatus.textContent = 'preparing the examples…';
    const t0 = performance.now();
    try {
      const result = await medseg.finetune({ epochs, augment: ui.teachAugment.checked, source: ui.teachSource.value, validation: ui.teachValidation.checked });
      const ms = performance.now() - t0;
      ui.teachProgress.value = 1;
      if (!result.epochs) {
        ui.teachStatus.textContent = 'cancelled before an epoch finished';
        messages.info('Teaching cancelled before an epoch finished: the model is unchanged.');
        return;
      }
      ui.teachStatus.textContent = `done: ${plural(result.epochs, 'epoch')} in ${fmtDuration(ms)}`;
      if (result.using === 'tuned') messages.ok(`${describeRun(result, ms)} Segmenting with the tuned model now; switch back with "base".`);
      else messages.info(`${describeRun(result, ms)}`);
      // Masks already on screen stay as they were made; new prompts use the tuned model.
      maskCache.clear();
      schedulePrepare();
    } catch (err) {
      ui.teachStatus.textContent = 'failed';
      ui.teachProgress.value = 0;
      messages.error('Teaching the model', err);
      await refreshTeachState();
    }
  });
  scheduleRender();
}

ui.teachStart.addEventListener('click', () => teach());

/** Esc and Cancel: stop the run after its current step (the worker keeps the best epoch). */
export async function cancelTeach() {
  if (state.busy !== 'teach') return false;
  state.cancelRequested = true;
  ui.teachStatus.textContent = 'cancelling…';
  try {
    await medseg.cancel();
  } catch (err) {
    messages.error('Cancel', err);
  }
  return true;
}

ui.teachCancel.addEventListener('click', () => cancelTeach());

async function useModel(which) {
  await withBusy('model', `switch to the ${which} model`, async () => {
    try {
      await medseg.useModel(which);
      messages.ok(which === 'tuned' ? 'Segmenting with the tuned model.' : 'Segmenting with the base model.');
      schedulePrepare();
    } catch (err) {
      messages.error(`Switching to the ${which} model`, err);
      renderTeach();
    }
  });
}

ui.useBase.addEventListener('change', () => ui.useBase.checked && useModel('base'));
ui.useTuned.addEventListener('change', () => ui.useTuned.checked && useModel('tuned'));

ui.teachDownload.addEventListener('click', async () => {
  await withBusy('export', 'download the tuned model', async () => {
    try {
      const blob = await medseg.exportModel();
      const name = `${baseName(state.modelKey || state.model?.label || 'model')}-tuned.safetensors`;
      downloadBlob(blob, name);
      markTunedSaved();
      messages.ok(`Saved ${name} (${fmtBytes(blob.size)}): open it with Model ▸ Open a model file…, or give it to medseg --model.`);
    } catch (err) {
      messages.error('Downloading the tuned model', err);
    }
  });
});
