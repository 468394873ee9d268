// The offline badge: whether a service worker caches the app.
import { registerServiceWorker } from '../ui/offline.js';
import { ui, messages } from './state.js';

/** What registerServiceWorker answered ({state, detail}), 'active' once a worker controls the page. */
let swState = { state: 'unsupported' };

/** Registers the service worker (web/sw.js) and shows the badge; a failure is a message. */
export async function startOffline() {
  swState = await registerServiceWorker();
  showOffline();
  if (swState.state === 'failed') {
    messages.info(`Offline cache unavailable (${swState.detail}); the app still works online.`);
  }
}

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
