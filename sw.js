// MedSeg service worker: offline app shell and cached model weights, and cross-origin
// isolation on any static host.
//
// It sits at the app's root, next to index.html, so that its scope covers the page on any
// server (a worker controls only paths under its own folder unless the server sends
// "Service-Worker-Allowed").
// - install: caches the app shell (index.html, web/*.js, web/*.css, web/page/*.js,
//   web/ui/*.js) and the engine (every file pkg/files.json lists: both modules, see
//   scripts/build-web.sh); files that are not there yet (an unbuilt engine) are skipped.
// - weights/: cache-first; a file is cached the first time the engine downloads it, so a
//   reload is instant and works offline. When online, a cached file whose size on the
//   server changed (a re-converted model) is dropped, so the next load fetches it anew.
// - index.html, web/, pkg/: network-first, the cached copy when offline. Online, the page
//   thus always runs the server's current build, its pieces from one version (a cached
//   engine next to a newer page script could not work together); the browser revalidates
//   its HTTP-cached copies (ETag, `304 Not Modified`), so this costs a round trip per file,
//   not a download of the 34 MB engine.
// - Every answer it gives carries COOP "same-origin" and COEP "require-corp", so a page it
//   controls is cross-origin isolated (SharedArrayBuffer: the multi-threaded engine) even
//   where the server sends no such headers (`python3 -m http.server`, most static hosts).
//   The page reloads once when the worker first takes control (web/page/offline-status.js).
// Other requests (other paths, other origins, non-GET, Range) are left to the network.
//
// Registered by web/ui/offline.js with the page's folder as scope.

/** `self`, typed as what it is here (lib.webworker types it as a plain worker scope). */
const sw = /** @type {ServiceWorkerGlobalScope} */ (/** @type {unknown} */ (self));

const VERSION = 'v1';
const SHELL_CACHE = `medseg-shell-${VERSION}`;
const WEIGHTS_CACHE = `medseg-weights-${VERSION}`;
const CURRENT = [SHELL_CACHE, WEIGHTS_CACHE];

/** The app's root: this file's folder. */
const ROOT = new URL('./', sw.location.href);

const SHELL = [
  'index.html',
  'web/app.js',
  'web/style.css',
  'web/medseg.js',
  'web/engine-client.js',
  'web/dicom-open.js',
  'web/volume-open.js',
  'web/files.js',
  'web/clip-decode.js',
  'web/worker.js',
  'web/page/busy.js',
  'web/page/cache.js',
  'web/page/dicom.js',
  'web/page/documents.js',
  'web/page/engine.js',
  'web/page/export.js',
  'web/page/keyboard.js',
  'web/page/mirror.js',
  'web/page/model.js',
  'web/page/objects.js',
  'web/page/offline-status.js',
  'web/page/prompts.js',
  'web/page/propagation.js',
  'web/page/state.js',
  'web/page/unsaved.js',
  'web/page/teach.js',
  'web/page/view.js',
  'web/ui/dom.js',
  'web/ui/messages.js',
  'web/ui/dialog.js',
  'web/ui/models.js',
  'web/ui/offline.js',
  'web/ui/overlay.js',
  'web/ui/video-export.js',
  'web/ui/viewer.js',
].map((p) => new URL(p, ROOT).href);

/** The engine's files (pkg/files.json, written by scripts/build-web.sh), or none. */
async function engineFiles() {
  try {
    const res = await fetch(new URL('pkg/files.json', ROOT), { cache: 'no-cache' });
    if (!res.ok) return [];
    const list = await res.json();
    return Array.isArray(list) ? list.filter((p) => typeof p === 'string' && p.startsWith('pkg/')).map((p) => new URL(p, ROOT).href) : [];
  } catch {
    return [];
  }
}

const INDEX = new URL('index.html', ROOT).href;

sw.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(SHELL_CACHE);
      const files = [...SHELL, ...(await engineFiles())];
      await Promise.all(
        files.map(async (url) => {
          try {
            // 'no-cache': fresh from the server, and kept in the HTTP cache too, so the
            // engine's own request for the same file right after is a 304, not a second
            // download of the 34 MB module.
            const res = await fetch(url, { cache: 'no-cache' });
            if (res.ok) await cache.put(url, res);
          } catch {
            // Offline or not built yet: cached on first use instead.
          }
        }),
      );
      await sw.skipWaiting();
    })(),
  );
});

sw.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name.startsWith('medseg-') && !CURRENT.includes(name)) await caches.delete(name);
      }
      await sw.clients.claim();
    })(),
  );
});

sw.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET' || req.headers.has('range')) return;
  const url = new URL(req.url);
  if (url.origin !== ROOT.origin || !url.pathname.startsWith(ROOT.pathname)) return;
  const path = url.pathname.slice(ROOT.pathname.length);
  if (req.mode === 'navigate' || path === '' || path === 'index.html') {
    if (path === '' || path === 'index.html') event.respondWith(networkFirst(req).then(isolated));
    return;
  }
  if (path.startsWith('weights/')) {
    event.respondWith(weightsCacheFirst(event, req).then(isolated));
  } else if (path.startsWith('web/') || path.startsWith('pkg/')) {
    event.respondWith(networkFirst(req, stripSearch(req.url)).then(isolated));
  }
});

/**
 * `res` with the headers that make the page cross-origin isolated (on the document) and
 * keep it so (on its scripts and workers). Everything the app loads is same-origin, which
 * "require-corp" allows.
 */
function isolated(res) {
  if (res.type === 'opaque' || res.status === 0) return res;
  const headers = new Headers(res.headers);
  headers.set('Cross-Origin-Opener-Policy', 'same-origin');
  headers.set('Cross-Origin-Embedder-Policy', 'require-corp');
  return new Response(res.body, { status: res.status, statusText: res.statusText, headers });
}

/** Only complete, same-origin, successful answers are cached. */
function cacheable(res) {
  return res && res.status === 200 && res.type === 'basic';
}

/** The network's answer (kept in the cache under `key`), or the cached one offline. */
async function networkFirst(req, key = INDEX) {
  const cache = await caches.open(SHELL_CACHE);
  try {
    const res = await fetch(req);
    if (cacheable(res)) await cache.put(key, res.clone());
    return res;
  } catch (err) {
    const hit = await cache.match(key);
    if (hit) return hit;
    throw err;
  }
}

async function weightsCacheFirst(event, req) {
  const cache = await caches.open(WEIGHTS_CACHE);
  const key = stripSearch(req.url);
  const hit = await cache.match(key);
  if (hit) {
    event.waitUntil(dropIfChanged(cache, key, hit));
    return hit;
  }
  const res = await fetch(req);
  if (cacheable(res)) {
    // Cache a copy while the engine reads the other one.
    event.waitUntil(cache.put(key, res.clone()).catch(() => {}));
  }
  return res;
}

/** Compares the cached size with the server's; a mismatch evicts the cached copy. */
async function dropIfChanged(cache, key, hit) {
  try {
    const head = await fetch(key, { method: 'HEAD', cache: 'no-store' });
    if (!head.ok) return;
    const now = head.headers.get('content-length');
    const was = hit.headers.get('content-length');
    if (now && was && now !== was) await cache.delete(key);
  } catch {
    // Offline: keep the cached copy.
  }
}

function stripSearch(href) {
  const u = new URL(href);
  u.search = '';
  u.hash = '';
  return u.href;
}
