// Busy handling: one long engine task at a time; prompts queue in order.
import { messages, BUSY_TEXT, state } from './state.js';
import { updateControls } from './view.js';
import { repropagateFrom } from './propagation.js';

function refuseBusy(what) {
  if (!state.busy) return false;
  messages.warn(`Cannot ${what} while ${BUSY_TEXT[state.busy] ?? state.busy}${state.busy === 'propagate' || state.busy === 'video' ? ' (Esc cancels)' : ''}.`);
  return true;
}

export async function withBusy(kind, what, fn) {
  if (refuseBusy(what)) return undefined;
  state.busy = kind;
  updateControls();
  try {
    return await fn();
  } finally {
    state.busy = null;
    state.taskTitle = '';
    updateControls();
  }
}

let promptChain = Promise.resolve();
let promptPending = 0;

export function queuePrompt(what, fn) {
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
