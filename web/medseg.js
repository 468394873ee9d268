// MedSeg's public JavaScript API: `window.medseg` on the page, or
//   import { medseg } from "./web/medseg.js";
// Every function returns a Promise. The models run in a Web Worker (web/worker.js) that
// owns the wasm session; frames and masks cross as transferable buffers. Errors reject
// with an Error whose message names the problem and whose `kind` says what went wrong
// ("bad-input", "no-model", "no-document", "no-prompt", "too-large", "busy", "engine");
// the session keeps its earlier state.
//
//   await medseg.init({ backend: "auto" | "webgpu" | "cpu", threads })  // optional; default
//                                   // auto, or ?backend=cpu|webgpu&threads=N in the page URL;
//                                   // once per backend → {backend, threads, notice}. auto:
//                                   // WebGPU on a hardware adapter, else the CPU (a software
//                                   // WebGPU such as SwiftShader is slower than the CPU).
//                                   // threads: the CPU backend's pool, default every core up
//                                   // to 8, where the page is cross-origin isolated (COOP/COEP
//                                   // headers, or sw.js from the second load); else 1
//   await medseg.ready()            // the engine has started (calls made earlier wait too)
//   await medseg.backend()          // "webgpu" | "cpu"
//   await medseg.threads()          // threads the CPU backend computes on (1 on WebGPU)
//   await medseg.loadModel(urlOrFile, { expect: "lite-medsam" | "sam2", onProgress })
//   await medseg.openFile(file, { window, maxFrames, maxSide, fps, onProgress, name, series, timePoint })
//                                   // image (PNG/JPEG/WebP), clip (MP4/WebM/...), volume
//                                   // (.nii, .nii.gz, .npz), DICOM → {kind: "image" | "clip" |
//                                   // "volume", name, frames, width, height, [spacing, window,
//                                   // format, dicom, file_window, notices]}
//                                   // (an array of images opens as one "clip")
// 4-D NIfTI: one slice and a time axis (x, y, 1, t), as ultrasound and cine MR store
// sequences, opens as a "clip" of its time points (exported masks keep the 4-D geometry);
// several slices (x, y, z, t) open the volume of time point `timePoint` (0-based, `info.
// time_point` {index, of}); without it openFile rejects with an Error of kind
// "choose-time-point" with `timePoints` and `dims` [x, y, z]: call it again with
// {timePoint}.
// DICOM: a .dcm file (or one without extension that has "DICM" at byte 128), several (a
// folder's files: an array or FileList), or a .zip of them. The files are grouped into
// series; a CT/MR series opens as a "volume", a multi-frame cine (US, XA, endoscopy) as a
// "clip", one 2-D frame as an "image". Files of an array that are not DICOM (and DICOMDIR)
// are skipped, with a line in `notices`; a single file that is not DICOM is an error.
// `info.format` is "dicom" (volumes) and `info.dicom` is {modality, description,
// series_number, frame_time_ms} (no patient name or ID ever leaves the engine);
// `info.file_window` {level, width} is the file's first Window Center/Width (a display
// window: the model's input window stays the automatic one).
// Several series and no `series` option: openFile rejects with an Error of kind
// "choose-series" whose `series` lists them: [{uid, modality, description, number, files,
// frames, rows, columns, kind}]. Call openFile again with the same files and {series: uid}
// (the engine kept them: nothing is read again). opts.onProgress sees {task: "dicom",
// stage: "read", loaded, total} per file.
//   await medseg.openFrames([{width, height, data}], name)   // frames in memory, RGBA
//                                   // or grey (width × height bytes), as one "clip"
//   await medseg.frameCount()
//   await medseg.prepareFrame(frame) → {frame, computed, ms}   // the frame's image embedding,
//                                   // ahead of a prompt on it (the prompt then only decodes)
//   await medseg.addBox(frame, objId, [x0, y0, x1, y1])   → {frame, obj, area, iou, objectScore,
//                                   // lowConfidence: {reason} | null, prompt, mask, ms}; a box
//                                   // starts the frame's prompt afresh
//   await medseg.addPoints(frame, objId, [[x, y, label], ...])  (label 1 object, 0 background)
//                                   // adds to the frame's prompt; the model always gets the
//                                   // whole prompt (box + every point), `prompt` in the result
//   await medseg.undo()             // takes back the last action (a prompt, a whole propagation,
//                                   // a reset), whatever its object → what changed, or null:
//                                   // {action, prompts, masks, objects, canUndo, canRedo, ...}
//   await medseg.redo()             // does the last undone action again → the same, or null
//   medseg.history                  // {canUndo, canRedo, nextUndo, nextRedo} as the engine last said
//   await medseg.propagate("forward" | "backward" | "both", { range: [first, last], onFrame })
//   medseg.cancel()                 // stops a propagation after the current frame, or a
//                                   // fine-tuning run after its current step
// Teaching the model the user's structure (fine-tuning its mask decoder on this machine;
// nothing is uploaded, nothing of it is cached):
//   await medseg.openLabels(file)   // a label file over the open document: NIfTI / .npz label
//                                   // volume, PNG mask, zip of PNG masks → {name, frames,
//                                   // firstFrame, lastFrame, values}; a mismatch is an error
//   await medseg.finetune({epochs, lr, batch, augment, source, validation, onProgress})
//                                   // source: "auto" (labels, else masks) | "labels" | "masks"
//                                   // | "both" → {epochs, bestEpoch, bestValDice, baseValDice,
//                                   // stopped, using, ms}; the tuned model segments after it
//   await medseg.useModel("base" | "tuned")   // which one segments → teachState()
//   await medseg.exportModel() → Blob (.safetensors: loads in the page and the CLI)
//   await medseg.teachState() → {labels, running, tuned, using, report, tunedReport}
//   await medseg.engineMemory() → bytes of the engine's wasm memory (it only grows: the peak)
//   await medseg.getMask(frame, objId)  → {width, height, data: Uint8Array (1 = object)} | null
//   await medseg.getFrame(frame, { window })  → {width, height, data: Uint8ClampedArray RGBA}
//                                   // as the model sees it, or a volume slice through a
//                                   // display window ("soft", ..., or {level, width})
//   await medseg.getFrameValues(frame) → {width, height, data: Float32Array} (HU for CT)
//   await medseg.setWindow("soft" | "lung" | "bone" | "brain" | "mr" | "none" | "auto",
//                          { resegment })   // the model's input window → info
//   await medseg.exportNifti(objId?) → Blob (.nii.gz);  await medseg.exportPng(frame, objId?) → Blob
//   await medseg.exportPngZip(objId?) → Blob (zip of mask_00000.png, ...)
//   await medseg.exportDicomSeg(objId?, { segments: {[objId]: {label, color: "#rrggbb"}} })
//                                   // → Blob (application/dicom): a DICOM Segmentation of the
//                                   // masks over the DICOM series the document came from,
//                                   // one segment per object (label "Object N" unless named)
//   await medseg.reset(objId?);  await medseg.removeObject(objId)
//   medseg.on("progress" | "frame" | "notice" | "history" | ..., fn) → unsubscribe
// Events (medseg.on(name, fn) or addEventListener, data in event.detail):
//   "progress" {task, stage, loaded, total, fraction}   model download/load, clip decode
//   "finetune" {progress: {phase, epoch, epochs, batch, batches, loss, finished_epoch,
//              base_val_dice, best_epoch, best_val_dice, work, stopped}, ms}   each run step
//              (snake_case: the record `medseg finetune --log` writes, as in the checkpoint)
//   "labels" {labels}, "teach" {state, finished}   after openLabels / finetune (finished:
//              true) / useModel
//   "frame"    {frame, frames, objects, done, total, ms, masks}  each propagation step
//              (frames: the frame done first, then any whose masks that step changed)
//   "notice"   {message}                                 backend fallback, clip limits
//   "model" {info}, "open" {info, [size]}, "prompt" {frame, obj, box, points, area, mask, iou,
//   objectScore, lowConfidence}
//   (box and points: the frame's whole prompt after the call),
//   "window" {window, info}, "reset" {obj}, "undo" and "redo" (undo()'s result): after each
//   successful call, whoever made it (a page can mirror calls that scripts or tests make
//   through window.medseg)
//   "history" {canUndo, canRedo, nextUndo, nextRedo, op, ok}   after each call that may change
//              what can be undone (open, prompt, propagate, reset, undo, redo), done (ok) or failed
// Undo and redo put back the prompts and masks an action changed as they were, without
// running the model (a propagation's masks come back bit for bit). Actions are
// {kind: "prompt", obj, frame, box (bool), points (count)} | {kind: "propagation",
// direction, first, last} | {kind: "reset", obj (null: all)}; `prompts` lists each
// {obj, frame, prompt: {box, points} | null} whose prompt changed, `masks` each
// {obj, frame} whose mask changed (read it again with getMask), `objects` the ids now.
//
// A volume slice k is shown with x = voxel index i (columns) and y = voxel index j (rows);
// its mask is row-major (row j, column i), like imgs[k][y][x] of a MedSAM .npz.

import { fileKind, magicKind, unsupportedFileText, anyDicom, MAGIC_BYTES } from "./files.js";
import { decodeClip } from "./clip-decode.js";
import { openDicom, segmentStyles, dicomNow } from "./dicom-open.js";
import { openVolume } from "./volume-open.js";
import { EngineClient } from "./engine-client.js";

export { fileKind, magicKind, unsupportedFileText, isDicomDir, isDicomFile, anyDicom, SUPPORTED_FILES, MAGIC_BYTES } from "./files.js";

/** A File, or a Blob that carries a file name. @typedef {Blob & { name?: string }} NamedBlob */

/** Where the default model (LiteMedSAM, converted by scripts/fetch-weights.sh) is, from the app's root. */
export const DEFAULT_MODEL_PATH = "weights/lite_medsam.safetensors";

/** Its URL. */
export const DEFAULT_MODEL_URL = new URL(`../${DEFAULT_MODEL_PATH}`, import.meta.url).href;

/**
 * openFile's options: the CT window of a volume, the limits of a clip, progress of its decoding.
 * `name`: the document's name (several files: default the first's folder or name);
 * `series`: the UID of the DICOM series to open when the files hold several.
 * `timePoint`: the time point (0-based) to open of a 4-D NIfTI of several slices.
 * @typedef {{ window?: string, maxFrames?: number, maxSide?: number, fps?: number,
 *   onProgress?: (progress: object) => void, name?: string, series?: string,
 *   timePoint?: number }} OpenOptions
 */

/** Limits for clips decoded in the page (each can be overridden per openFile call). */
export const CLIP_DEFAULTS = { maxFrames: 200, maxSide: 512, fps: 10 };

export class MedSeg extends EngineClient {
  constructor({ workerUrl = new URL("./worker.js", import.meta.url) } = {}) {
    super({ workerUrl });
    /**
     * What the engine last said can be undone and redone (its "history" event).
     * @type {{ canUndo: boolean, canRedo: boolean, nextUndo: object | null, nextRedo: object | null }}
     */
    this.history = { canUndo: false, canRedo: false, nextUndo: null, nextRedo: null };
    /** The files of the last DICOM opening that asked for a series (the engine keeps them). @type {Blob[] | null} */
    this._dicomPending = null;
    this.on("history", ({ canUndo, canRedo, nextUndo, nextRedo }) => {
      this.history = { canUndo, canRedo, nextUndo, nextRedo };
    });
  }

  _onRestart() {
    this.history = { canUndo: false, canRedo: false, nextUndo: null, nextRedo: null }; // a new engine has none
    this._dicomPending = null;
  }

  /**
   * Loads weights from a same-origin URL or a File/Blob/ArrayBuffer (default: the
   * LiteMedSAM weights served with the app). The architecture comes from the file;
   * `expect` ("lite-medsam" | "sam2") refuses any other. Earlier model and masks stay
   * when this fails.
   * @param {string | URL | NamedBlob | ArrayBuffer | null} [src]
   * @param {{ expect?: string, onProgress?: (progress: object) => void }} [opts]
   */
  async loadModel(src = DEFAULT_MODEL_URL, { expect = "", onProgress } = {}) {
    if (src == null) src = DEFAULT_MODEL_URL;
    if (src instanceof URL) src = src.href;
    if (typeof src === "string") src = new URL(src, location.href).href;
    else if (src instanceof Blob && src.size === 0) throw this._error(`${src.name || "model file"}: the file is empty`);
    const info = await this._withProgress(onProgress, "model", () => this._op("loadModel", [src, { expect }]));
    this._emit("model", { info, source: typeof src === "string" ? src : ("name" in src && src.name) || null });
    return info;
  }

  /**
   * Opens an image, clip or volume (a File, or a Blob with a name). Volumes are parsed
   * in the worker (Rust); clips are decoded here (video element + canvas), at most
   * `maxFrames` frames of at most `maxSide` px, sampled at `fps` (a "notice" event says
   * when a limit applied). Replaces the open file and its masks; on failure both stay.
   * @param {NamedBlob | NamedBlob[] | FileList} file
   * @param {OpenOptions} [opts]
   */
  async openFile(file, opts = {}) {
    const info = await this._openFile(file, opts);
    const files = file instanceof Blob ? [file] : Array.from(file);
    this._emit("open", { info, size: files.reduce((n, f) => n + f.size, 0) });
    return info;
  }

  /**
   * @param {NamedBlob | NamedBlob[] | FileList} file
   * @param {OpenOptions} [opts]
   */
  async _openFile(file, opts = {}) {
    if (Array.isArray(file) || (typeof FileList !== "undefined" && file instanceof FileList)) {
      return this._openFiles(Array.from(file), opts);
    }
    if (!(file instanceof Blob)) throw this._error("openFile expects a File or Blob");
    const name = file.name || "file";
    if (file.size === 0) throw this._error(`${name}: the file is empty`);
    const kind = await this._kindOf(file, name);
    if (!kind) throw this._error(`${name}: ${unsupportedFileText(name)}.`);
    if (kind === "dicom") return this._openDicom([file], opts);
    if (kind === "volume") return openVolume(this, file, name, opts);
    if (kind === "image") return this._op("openImage", [file, name]);
    return this._openVideo(file, name, opts);
  }

  /**
   * What a file is, by its name and its first bytes: "image", "video", "volume", "dicom" or null.
   * @param {Blob} file
   * @param {string} name
   */
  async _kindOf(file, name) {
    let kind = fileKind(name, file.type || "");
    if (kind === "model") kind = null; // weights go to loadModel: go by the bytes
    const head = new Uint8Array(await file.slice(0, MAGIC_BYTES).arrayBuffer());
    const sniffed = magicKind(head);
    if (sniffed === "video" && kind !== "video") kind = "video";
    if (sniffed === "dicom") kind = "dicom";
    return kind || sniffed;
  }

  /**
   * Opens several images (PNG/JPEG/WebP, decoded in the worker) as the frames of one
   * clip, in the order given (sort by name first for a folder of frames); or, when any
   * of them is DICOM (or a .zip), the DICOM files among them (see openFile).
   */
  async openFiles(files, opts = {}) {
    const info = await this._openFiles(files, opts);
    this._emit("open", { info, size: files.reduce((n, f) => n + f.size, 0) });
    return info;
  }

  /**
   * @param {NamedBlob[]} files
   * @param {{ name?: string }} [opts]
   */
  async _openFiles(files, opts = {}) {
    const { name } = opts;
    if (!files.length) throw this._error("openFiles: no files");
    if (files.length === 1) return this._openFile(files[0], opts);
    for (const f of files) if (!(f instanceof Blob)) throw this._error("openFiles expects Files or Blobs");
    // DICOM when any file is: by name, else (files without extension) by its bytes.
    if (await anyDicom(files)) return this._openDicom(files, opts);
    await this._ready();
    await this._call("beginClip", [name || files[0].name || "frames"]);
    for (const f of files) {
      if (!(f instanceof Blob)) throw this._error("openFiles expects Files or Blobs");
      if (f.size === 0) throw this._error(`${f.name || "frame"}: the file is empty`);
      await this._call("pushFrameImage", [f, f.name || "frame"]);
    }
    return this._call("finishClip");
  }

  /**
   * Reads DICOM files (or zips of them) into the engine and opens a series
   * (web/dicom-open.js).
   * @param {NamedBlob[]} files
   * @param {OpenOptions} opts
   */
  async _openDicom(files, opts = {}) {
    return openDicom(this, files, opts);
  }

  /**
   * Opens frames already in memory as one clip: an array of {width, height, data}, data
   * RGBA (ImageData) or grey (width × height bytes).
   */
  async openFrames(frames, name = "frames") {
    await this._ready();
    await this._call("beginClip", [name]);
    for (const f of frames) {
      const copy = new Uint8Array(f.data).slice().buffer;
      const grey = copy.byteLength === f.width * f.height;
      await this._call("pushFrame", [{ data: copy, width: f.width, height: f.height, grey }], [copy]);
    }
    const info = await this._call("finishClip");
    this._emit("open", { info });
    return info;
  }

  async _openVideo(file, name, opts) {
    await this._ready();
    await this._call("beginClip", [name]);
    const notices = await decodeClip(file, name, { ...CLIP_DEFAULTS, ...opts }, (frame) =>
      this._call("pushFrame", [frame], [frame.data]),
    );
    const info = await this._call("finishClip");
    for (const message of notices) {
      this._emit("notice", { message });
    }
    return { ...info, notices };
  }

  async info() {
    return this._op("info");
  }

  async frameCount() {
    return this._op("frameCount");
  }

  /**
   * The window the model sees a volume through (the display is getFrame's `window`).
   * With `resegment`, every prompted slice is segmented again with it (one undoable
   * action; a "prompt" event each). Resolves to the volume's info, with `resegmented`:
   * the number of prompts segmented again.
   */
  async setWindow(window, { resegment = false } = {}) {
    const { info, prompts } = await this._op("setWindow", [window, { resegment }]);
    this._emit("window", { window, info });
    for (const res of prompts) this._emitPrompt(res);
    return { ...info, resegmented: prompts.length };
  }

  /**
   * Frame (volume slice) `frame` as RGBA for display: as the model sees it, or a volume
   * slice through the display window `window` (a preset name, or {level, width} in the
   * volume's units) — display only, nothing is segmented again.
   */
  async getFrame(frame, { window = null } = {}) {
    const f = await this._op("getFrame", [frame, window]);
    return { width: f.width, height: f.height, data: new Uint8ClampedArray(f.data.buffer) };
  }

  /** The stored values of volume slice `frame` (HU for CT): {width, height, data: Float32Array}. */
  async getFrameValues(frame) {
    const f = await this._op("getFrameValues", [frame]);
    return { width: f.width, height: f.height, data: new Float32Array(f.data.buffer) };
  }

  /**
   * Computes the image embedding of `frame` ahead of a prompt on it, so that the prompt
   * only runs the decoder (the page does this for the frame on screen). `computed` is
   * false when the embedding was there already.
   */
  async prepareFrame(frame) {
    return this._op("prepareFrame", [frame]);
  }

  async addBox(frame, objId, box) {
    if (!Array.isArray(box) && !ArrayBuffer.isView(box)) throw this._error("addBox expects a box [x0, y0, x1, y1]");
    return this.addPrompt(frame, objId, { box });
  }

  async addPoints(frame, objId, points) {
    if (!Array.isArray(points)) throw this._error("addPoints expects [[x, y, label], ...]");
    return this.addPrompt(frame, objId, { points });
  }

  /** A box and/or points for one object on one frame; segments that frame. */
  async addPrompt(frame, objId, { box = null, points = [] } = {}) {
    const prompt = { box: box && Array.from(box), points: points.map((p) => [p[0], p[1], p[2] ?? 1]) };
    const res = await this._op("addPrompt", [frame, objId, prompt]);
    this._emitPrompt(res);
    return res;
  }

  /**
   * Takes back the last action, whatever its object: a prompt (the frame's prompt and
   * mask are the previous ones again), a whole propagation (or what a cancelled one
   * made), a reset. The prompts and masks it changed are put back as they were; the
   * model does not run. Resolves to {action, prompts, masks, objects, canUndo, canRedo,
   * nextUndo, nextRedo}, or null when there was nothing to undo.
   */
  async undo() {
    const res = await this._op("undo");
    if (res) this._emit("undo", res);
    return res;
  }

  /** Does the last undone action again; resolves as undo(), or null when there was nothing to redo. */
  async redo() {
    const res = await this._op("redo");
    if (res) this._emit("redo", res);
    return res;
  }

  /** The "prompt" event: the frame's whole prompt after a call (box null, points [] when none). */
  _emitPrompt(res) {
    const { frame, obj, area, mask, iou, objectScore, lowConfidence } = res;
    this._emit("prompt", { frame, obj, box: res.prompt?.box ?? null, points: res.prompt?.points ?? [], area, mask, iou, objectScore, lowConfidence: lowConfidence ?? null });
  }

  /**
   * Propagates the prompts through the frames: "forward", "backward" or "both", over
   * `range` [first, last] (inclusive; default all). `onFrame({frame, objects, done,
   * total, ms, masks})` sees each frame as it is done. Resolves when done or cancelled
   * to {frames, total, cancelled, ms, msPerFrame}.
   */
  async propagate(direction = "both", { range = null, onFrame = null } = {}) {
    await this._ready();
    const off = onFrame ? this.on("frame", onFrame) : null;
    try {
      return await this._call("propagate", [direction, { range }]);
    } finally {
      if (off) off();
    }
  }

  /** Stops a running propagation after its current frame, or a fine-tuning run after its step. */
  cancel() {
    if (!this._worker) return Promise.resolve(null);
    return this._call("cancel");
  }

  /**
   * Opens a label file over the open document (a File, or a Blob with a name): a NIfTI
   * or MedSAM .npz label volume (gts/segs) for a volume or clip, a grey PNG mask for an
   * image, or a zip of PNG masks (one per frame, in name order). Its size must be the
   * document's. → {name, frames, firstFrame, lastFrame, values}
   * @param {NamedBlob} file
   */
  async openLabels(file) {
    if (!(file instanceof Blob)) throw this._error("openLabels expects a File or Blob");
    const name = file.name || "labels";
    if (file.size === 0) throw this._error(`${name}: the file is empty`);
    const labels = await this._op("openLabels", [file, name]);
    this._emit("labels", { labels });
    return labels;
  }

  /** Forgets the label file opened over the document. */
  async closeLabels() {
    await this._op("closeLabels");
    this._emit("labels", { labels: null });
    return null;
  }

  /**
   * Fine-tunes the base model's mask decoder on the open document (its label file and/or
   * masks) in the worker, one step at a time; `onProgress(progress)` sees each step.
   * medseg.cancel() stops it keeping the best epoch so far. When it ends with a tuned
   * model, that model segments (useModel switches back).
   * @param {{ epochs?: number, lr?: number, batch?: number, augment?: boolean, source?: string,
   *   validation?: boolean, patience?: number, seed?: number,
   *   onProgress?: (progress: object) => void }} [opts]
   */
  async finetune({ onProgress, ...opts } = {}) {
    await this._ready();
    const l = onProgress ? this.on("finetune", (d) => onProgress(d.progress)) : null;
    let out;
    try {
      out = await this._call("finetune", [opts]);
    } catch (err) {
      // A failed run leaves the models as they were: say so to whoever shows them.
      const state = await this._call("teachState").catch(() => null);
      if (state) this._emit("teach", { state });
      throw err;
    } finally {
      if (l) l();
    }
    const { progress, state, ms } = out;
    this._emit("teach", { state, finished: true });
    return {
      epochs: state.report?.epochs_run ?? 0,
      bestEpoch: progress.best_epoch,
      bestValDice: progress.best_val_dice ?? null,
      baseValDice: progress.base_val_dice ?? null,
      stopped: progress.stopped,
      using: state.using,
      ms,
    };
  }

  /** Segments with the "base" model or the "tuned" one; prompts and masks stay. */
  async useModel(which) {
    const state = await this._op("useModel", [which]);
    this._emit("teach", { state });
    return state;
  }

  /** The tuned model as a .safetensors Blob (the base's tensors with the tuned heads). */
  async exportModel() {
    const b = await this._op("exportModel");
    return new Blob([b], { type: "application/octet-stream" });
  }

  /** {labels, running, tuned, using: "base" | "tuned", report, tunedReport} */
  async teachState() {
    return this._op("teachState");
  }

  /** Bytes of the engine's wasm memory; a wasm memory never shrinks, so this is its peak. */
  async engineMemory() {
    return this._op("engineMemory");
  }

  async getMask(frame, objId) {
    return this._op("getMask", [frame, objId]);
  }

  /** Mask logits (Float32Array, row-major) of the last prompt on `frame` (SAM 2 only). */
  async getLogits(frame, objId) {
    return this._op("getLogits", [frame, objId]);
  }

  async objects() {
    return this._op("objects");
  }

  async maskFrames(objId) {
    return this._op("maskFrames", [objId]);
  }

  async reset(objId) {
    await this._op("reset", [objId ?? null]);
    this._emit("reset", { obj: objId ?? null });
    return null;
  }

  /** Removes one object: its prompts, memory and masks. */
  async removeObject(objId) {
    if (!Number.isInteger(objId)) throw this._error("removeObject expects an object id");
    return this.reset(objId);
  }

  /** Keep the logits of every propagated frame for getLogits (parity checks). */
  async keepLogits(on = true) {
    return this._op("keepLogits", [on]);
  }

  async architecture() {
    return this._op("architecture");
  }

  /** The masks as a gzipped NIfTI (.nii.gz) Blob: the volume's geometry, value = object id. */
  async exportNifti(objId) {
    const b = await this._op("exportNifti", [objId ?? null]);
    return new Blob([b], { type: "application/gzip" });
  }

  /**
   * The masks as a DICOM Segmentation (SEG) over the DICOM series the open document came
   * from: one segment per object (all, or `objId`), labelled and coloured from
   * `segments` ({[objId]: {label, color: "#rrggbb"}}; default "Object N" in the engine's
   * palette). Objects
   * without a mask pixel are left out of the frames. Fails for a document not opened
   * from DICOM, or without any mask.
   * @param {number | null} [objId]
   * @param {{ segments?: Record<number, { label?: string, color?: string }> }} [opts]
   */
  async exportDicomSeg(objId, { segments = {} } = {}) {
    const b = await this._op("exportDicomSeg", [objId ?? null, segmentStyles(segments), dicomNow(new Date())]);
    return new Blob([b], { type: "application/dicom" });
  }

  /** Every frame's mask as PNG (mask_00000.png, ...) in a zip Blob. */
  async exportPngZip(objId) {
    const b = await this._op("exportPngZip", [objId ?? null]);
    return new Blob([b], { type: "application/zip" });
  }

  /** The mask of one frame as a PNG Blob (255 = object). */
  async exportPng(frame, objId) {
    const b = await this._op("exportPng", [frame, objId ?? null]);
    return new Blob([b], { type: "image/png" });
  }

  /** Encoder / decoder time of the loaded model on this backend (ms, medians). */
  async bench({ iters = 3 } = {}) {
    return this._op("bench", [iters]);
  }
}

export const medseg = new MedSeg();
export default medseg;

if (typeof window !== "undefined" && !window.medseg) window.medseg = medseg;
