// Work not saved yet: masks made since the last export, and a tuned model not downloaded.
// Opening another file (or leaving the page) would lose the masks, so the page asks first;
// scripts calling window.medseg.openFile are not asked (they hold their own results).
// Leaving the page would lose a tuned model too, so the browser asks then as well.
import { medseg } from '../medseg.js';
import { state, ask } from './state.js';

/** Whether masks changed since the document was opened or last exported. */
let unsaved = false;

function hasMasks() {
  return state.objects.some((o) => o.inEngine);
}

// The worker sends "history" after every call that may change masks (a prompt, a
// propagation, an undo, a reset, a window), whoever made it, once the page has shown it.
// A call that failed (a file that could not be opened) changed nothing: an export made
// before it still counts.
medseg.on('history', ({ ok }) => {
  if (ok === false) return;
  unsaved = hasMasks();
  document.body.dataset.unsaved = String(unsaved);
});
medseg.on('open', () => {
  unsaved = false;
  document.body.dataset.unsaved = 'false';
});

/** A tuned model that exists only in the engine (made since the last download). */
let tunedUnsaved = false;
medseg.on('teach', ({ state: s, finished }) => {
  if (finished && s?.tuned) tunedUnsaved = true;
});
medseg.on('model', () => {
  tunedUnsaved = false;
});

export function markTunedSaved() {
  tunedUnsaved = false;
}

export function markExported() {
  unsaved = false;
  document.body.dataset.unsaved = 'false';
}

/**
 * Whether `next` may replace the open document: yes when nothing is unsaved; else the user
 * chooses to export the masks first, to open it anyway, or to keep working.
 * @param {string} next the file's name
 * @param {() => Promise<boolean>} exportFirst saves the masks; answers whether it did
 */
export async function mayReplaceDocument(next, exportFirst) {
  if (!unsaved || !state.doc) return true;
  const objects = state.objects.filter((o) => o.inEngine).length;
  const answer = await ask({
    title: `Replace ${state.doc.name}?`,
    text: [
      `Its masks (${objects} object${objects === 1 ? '' : 's'}) have not been exported.`,
      `Opening ${next} closes it, and the masks are lost unless you export them first.`,
    ],
    buttons: [
      { label: 'Keep working', value: 'keep' },
      { label: `Open ${next} without saving`, value: 'discard' },
      { label: 'Export masks, then open', value: 'export', primary: true },
    ],
    cancel: 'keep',
  });
  if (answer === 'discard') return true;
  if (answer === 'export') return exportFirst();
  return false;
}

// Leaving or reloading the page with unsaved masks: the browser asks.
window.addEventListener('beforeunload', (e) => {
  if (unsaved || tunedUnsaved) e.preventDefault();
});
