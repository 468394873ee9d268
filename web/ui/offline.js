// Registers web/sw.js (scope: the page's folder, "/" when served by `medseg serve`) so the
// app shell and the weights come from Cache Storage and the page works offline.
import { sleep } from './dom.js';

/** What registration answers when the server does not allow the root scope. */
const SCOPE_REFUSED = {
  state: 'failed',
  detail: 'the server must send "Service-Worker-Allowed: /" with web/sw.js for it to control the page',
};

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
  // Already controlled (a later visit, maybe offline): the browser checks web/sw.js for
  // updates on its own at each navigation, so there is nothing to fetch here.
  if (navigator.serviceWorker.controller) {
    return { state: 'active' };
  }
  const scope = new URL('./', document.baseURI).href;
  const script = new URL('../sw.js', import.meta.url).href;
  // A worker may control only paths under its own folder unless the server allows a wider
  // scope with the Service-Worker-Allowed header. Ask first: a refused registration is
  // reported as an error in the browser console.
  const scriptDir = new URL('./', script).href;
  if (!scope.startsWith(scriptDir)) {
    let allowed = null;
    try {
      const head = await fetch(script, { method: 'HEAD', cache: 'no-store' });
      allowed = head.ok ? head.headers.get('Service-Worker-Allowed') : null;
    } catch {
      allowed = null;
    }
    const allowedHref = allowed ? new URL(allowed, script).href : null;
    if (!allowedHref || !scope.startsWith(allowedHref)) {
      return SCOPE_REFUSED;
    }
  }
  try {
    await navigator.serviceWorker.register(script, { scope, updateViaCache: 'none' });
  } catch (err) {
    const msg = String(err?.message || err);
    if (/scope/i.test(msg)) {
      return SCOPE_REFUSED;
    }
    return { state: 'failed', detail: msg };
  }
  if (navigator.serviceWorker.controller) return { state: 'active' };
  const controlled = new Promise((resolve) =>
    navigator.serviceWorker.addEventListener('controllerchange', () => resolve(true), { once: true }),
  );
  const got = await Promise.race([controlled, sleep(waitMs).then(() => false)]);
  return { state: got ? 'active' : 'installing' };
}
