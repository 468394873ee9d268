// The messaging under MedSeg's public API (web/medseg.js): the Web Worker that owns the
// wasm session (web/worker.js), requests and their answers by id, the worker's
// unsolicited messages as events, and the engine's start on a backend. The API's
// operations are in web/medseg.js.

export class EngineClient extends EventTarget {
  /** @param {{ workerUrl: URL }} opts */
  constructor({ workerUrl }) {
    super();
    this._workerUrl = workerUrl;
    this._worker = null;
    this._next = 1;
    this._pending = new Map();
    this._init = null;
    /** @type {Promise<{ backend: "webgpu" | "cpu", threads: number, notice?: string }> | null} */
    this._started = null;
    /** @type {string | null} */
    this._startedBackend = null;
    this._backend = null;
    this._threads = null;
  }

  /** What a subclass resets when the engine restarts (a new engine holds nothing). */
  _onRestart() {}

  _start() {
    if (this._worker) this._worker.terminate();
    for (const p of this._pending.values()) p.reject(new Error("the worker was restarted"));
    this._pending.clear();
    this._onRestart();
    const w = new Worker(this._workerUrl, { type: "module", name: "medseg" });
    w.onmessage = (ev) => this._onMessage(ev.data);
    w.onerror = (ev) => {
      ev.preventDefault?.();
      const err = new Error(`the MedSeg worker failed: ${ev.message || "could not start (is pkg/ built?)"}`);
      for (const p of this._pending.values()) p.reject(err);
      this._pending.clear();
    };
    this._worker = w;
  }

  _onMessage(msg) {
    if (msg.event) {
      this._emit(msg.event, msg);
      return;
    }
    const p = this._pending.get(msg.id);
    if (!p) return;
    this._pending.delete(msg.id);
    if (msg.ok) p.resolve(msg.result);
    else {
      // What went wrong, for callers to act on: "bad-input", "no-model", "no-document",
      // "no-prompt", "too-large", "busy" or "engine" (null for errors of the page itself).
      const e = Object.assign(new Error(msg.error.message), { kind: msg.error.kind ?? null });
      e.name = msg.error.name === "Error" ? "MedSegError" : msg.error.name;
      p.reject(e);
    }
  }

  _call(op, args = [], transfer = []) {
    return new Promise((resolve, reject) => {
      const id = this._next++;
      this._pending.set(id, { resolve, reject });
      this._worker.postMessage({ id, op, args }, transfer);
    });
  }

  async _ready() {
    if (!this._init) await this.init();
    else await this._init;
  }

  async _op(op, args = [], transfer = []) {
    await this._ready();
    return this._call(op, args, transfer);
  }

  /**
   * Starts the worker on a backend, once: another call for the same backend (or naming
   * none) gets the same start, so a page and the scripts in it share one engine and no
   * call in flight loses its worker. Naming another backend restarts the engine,
   * dropping all state; that is refused while calls are pending.
   * @param {{ backend?: string, threads?: number | string | null }} [opts] backend: "auto" (the default),
   *   "webgpu" or "cpu"; threads: the CPU backend's pool (default every core up to 8; 1
   *   runs it on one thread). The page address's ?backend= and ?threads= give the defaults.
   * @returns {Promise<{ backend: "webgpu" | "cpu", threads: number, notice?: string }>}
   */
  init({ backend, threads } = {}) {
    const q = typeof location !== "undefined" ? new URLSearchParams(location.search) : null;
    if (!backend) backend = q?.get("backend") || "auto";
    if (threads === undefined || threads === null) threads = q?.get("threads") ?? null;
    const key = `${backend}/${threads ?? ""}`;
    if (this._started && this._startedBackend === key) return this._started;
    if (this._pending.size) {
      return Promise.reject(this._error(`cannot restart the engine on "${backend}" while ${this._pending.size} call(s) are pending`));
    }
    this._start();
    const p = this._call("init", [{ backend, threads }]).then((r) => {
      this._backend = r.backend;
      this._threads = r.threads;
      return r;
    });
    this._started = p;
    this._startedBackend = key;
    this._init = p.catch(() => {}); // a failed init is retried by the next call's init
    p.catch(() => {
      this._init = null;
      this._started = null;
    });
    return p;
  }

  /**
   * Resolves when the engine has started (starting it on the default backend if nothing
   * has): a page that embeds MedSeg may await it before its first call. Calls made
   * earlier wait for the start too, and the page's own start does not replace it.
   */
  ready() {
    return this.init();
  }

  /** "webgpu" or "cpu". */
  async backend() {
    await this._ready();
    return this._backend;
  }

  /** Threads the CPU backend computes on (1 on WebGPU or the single-threaded module). */
  async threads() {
    await this._ready();
    return this._threads;
  }

  async _withProgress(onProgress, task, fn) {
    if (!onProgress) return fn();
    const l = (ev) => ev.detail.task === task && onProgress(ev.detail);
    this.addEventListener("progress", l);
    try {
      return await fn();
    } finally {
      this.removeEventListener("progress", l);
    }
  }

  _emit(name, detail) {
    this.dispatchEvent(Object.assign(new Event(name), { detail: { event: name, ...detail } }));
  }

  _error(message) {
    const e = new Error(message);
    e.name = "MedSegError";
    return e;
  }

  /**
   * Subscribes to an event ("progress", "frame", "history", ...); `fn` gets its data. Returns
   * a function that unsubscribes.
   */
  on(name, fn) {
    const l = (ev) => fn(ev.detail);
    this.addEventListener(name, l);
    return () => this.removeEventListener(name, l);
  }
}
