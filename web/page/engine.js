// Engine start and the backend badge.
import { medseg } from '../medseg.js';
import { errorText } from '../ui/dom.js';
import { ui, messages, state } from './state.js';
import { updateControls, setTask, clearTask, onEngineProgress } from './view.js';
import { watchExternalCalls } from './mirror.js';

export async function startEngine() {
  medseg.on('progress', onEngineProgress);
  watchExternalCalls();
  state.busy = 'engine';
  state.taskTitle = 'Starting the engine';
  setTask('Starting the engine…', null);
  try {
    const res = await medseg.init();
    state.backend = res.backend;
    state.threads = res.threads ?? 1;
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
    state.taskTitle = '';
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
    ui.backendBadge.textContent = b === 'cpu' ? (state.threads > 1 ? `CPU · ${state.threads} threads` : 'CPU') : String(b);
    ui.backendBadge.className = 'badge warn';
    if (b === 'cpu' && new URLSearchParams(location.search).get('backend') === 'cpu') {
      ui.backendBadge.title = 'The CPU backend, as the page address asks (?backend=cpu).';
      const on = state.threads > 1 ? ` on ${state.threads} threads` : '';
      // A notice from the engine here says why it runs on one thread.
      const why = state.backendNotice ? ` (${state.backendNotice})` : '';
      messages.notice('backend', 'info', `Running on the CPU backend${on}, as ?backend=cpu in the address asks: expect seconds per mask${why}.`);
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
