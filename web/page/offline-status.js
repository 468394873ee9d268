// The offline badge: whether the page would work without the network, that is whether a
// service worker caches the app and the loaded model is in the offline cache too (a model
// still downloading, or opened from a file, is not).
import { medseg } from '../medseg.js';
import { registerServiceWorker } from '../ui/offline.js';
import { isCached } from '../ui/models.js';
import { ui, messages, state } from './state.js';

/** What registerServiceWorker answered ({state, detail}), 'active' once a worker controls the page. */
let swState = { state: 'unsupported' };

/** Registers the service worker (sw.js) and shows the badge; a failure is a message. */
export async function startOffline() {
  swState = await registerServiceWorker();
  showOffline();
  if (swState.state === 'failed') {
    messages.info(`Offline cache unavailable (${swState.detail}); the app still works online.`);
  }
}

/** Whether the loaded model is in the offline cache: null when no model is loaded. */
let modelCached = null;
let modelCheck = 0;

/** Finds out whether the loaded model is cached; the service worker stores it after the download, so this asks again for a while. */
async function checkModelCached() {
  const check = ++modelCheck;
  modelCached = null;
  const key = state.modelKey;
  if (!key) return showOffline();
  if (!key.startsWith('weights/')) {
    modelCached = false; // a file the user opened: not cached, they open it again offline
    return showOffline();
  }
  for (let i = 0; i < 120 && check === modelCheck; i++) {
    modelCached = await isCached(key);
    showOffline();
    if (modelCached) return;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

// After the page has taken the model as its own (showModel runs once loadModel answers).
medseg.on('model', () => setTimeout(checkModelCached, 0));

function showOffline() {
  const b = ui.offlineBadge;
  if (!navigator.onLine) {
    b.textContent = 'offline';
    b.className = swState.state === 'active' ? 'badge ok' : 'badge warn';
    b.title = swState.state === 'active' ? 'No network: running from the offline cache.' : 'No network, and no offline cache.';
    return;
  }
  if (swState.state === 'active' && modelCached === false && state.modelKey.startsWith('weights/')) {
    b.textContent = 'caching model…';
    b.className = 'badge';
    b.title = `The app is cached; ${state.modelKey} is being stored for offline use.`;
  } else if (swState.state === 'active' && !state.model) {
    b.textContent = 'offline: app only';
    b.className = 'badge';
    b.title = 'The app is cached; no model is loaded yet, so none is cached.';
  } else if (swState.state === 'active') {
    b.textContent = 'offline-ready';
    b.className = 'badge ok';
    b.title =
      modelCached === false
        ? 'The app is cached; the model you opened from a file is not: open it again when offline.'
        : 'The app and the loaded model are cached: it works without the network.';
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
  reloadIsolated();
});

/** Set for the tab's session once the page reloaded to become cross-origin isolated. */
const RELOADED_KEY = 'medseg-isolation-reload';

/**
 * Once the service worker controls a page that is not cross-origin isolated (a first visit
 * on a server that sends no COOP/COEP), a reload makes it isolated, so that the CPU backend
 * runs on every core instead of one. Only while nothing would be lost: no document open,
 * nothing under way, and not on WebGPU (which threads do not speed up); at most once per
 * tab, so a browser that does not isolate cannot loop. Otherwise the next visit gets it.
 */
function reloadIsolated() {
  if (window.crossOriginIsolated || (navigator.hardwareConcurrency || 1) < 2) return;
  if (state.backend === 'webgpu') return;
  if (sessionStorage.getItem(RELOADED_KEY)) return;
  // The page's own start (the engine, the default model) is waited for rather than cut
  // off midway; the reload then loads both again, from the cache where it can.
  if (state.busy === 'engine' || state.busy === 'model') {
    setTimeout(reloadIsolated, 500);
    return;
  }
  if (state.doc || state.busy) {
    messages.info('The offline cache is ready: from the next visit the CPU backend runs on every core of this machine.');
    return;
  }
  sessionStorage.setItem(RELOADED_KEY, '1');
  location.reload();
}
