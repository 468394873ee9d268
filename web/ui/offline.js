// Registers sw.js (at the app's root, next to index.html; scope: the page's folder) so the
// app shell and the weights come from Cache Storage, the page works offline, and it is
// cross-origin isolated on any server (the worker adds COOP/COEP to what it serves).
import { sleep } from './dom.js';

/**
 * Returns {state, detail}: state 'active' (a service worker controls the page), 'installing'
 * (registered, not yet in control), 'unsupported', or 'failed' (detail: why).
 * On a first visit it waits up to `waitMs` for the new worker to take control, so that the
 * engine's first download of the weights already goes through (and into) the cache.
 */
export async function registerServiceWorker({ waitMs = 3000 } = {}) {
  if (!('serviceWorker' in navigator)) {
    return { state: 'unsupported', detail: 'this browser has no service workers (or the page is not on http://localhost or https)' };
  }
  // Already controlled (a later visit, maybe offline): the browser checks sw.js for
  // updates on its own at each navigation, so there is nothing to fetch here.
  if (navigator.serviceWorker.controller) {
    return { state: 'active' };
  }
  const scope = new URL('./', document.baseURI).href;
  const script = new URL('../../sw.js', import.meta.url).href;
  try {
    await navigator.serviceWorker.register(script, { scope, updateViaCache: 'none' });
  } catch (err) {
    return { state: 'failed', detail: String(err?.message || err) };
  }
  if (navigator.serviceWorker.controller) return { state: 'active' };
  const controlled = new Promise((resolve) =>
    navigator.serviceWorker.addEventListener('controllerchange', () => resolve(true), { once: true }),
  );
  const got = await Promise.race([controlled, sleep(waitMs).then(() => false)]);
  return { state: got ? 'active' : 'installing' };
}
