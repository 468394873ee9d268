// Export: NIfTI masks, a zip of PNG masks, the overlay video, a DICOM SEG (documents opened from DICOM).
import { medseg } from '../medseg.js';
import { clamp, fmtBytes, baseName, downloadBlob } from '../ui/dom.js';
import { recordOverlayVideo } from '../ui/video-export.js';
import { ui, messages, state, hasVoxelValues } from './state.js';
import { getFrameCanvas, edgeFor, getOverlay } from './cache.js';
import { scheduleRender, setTask, clearTask } from './view.js';
import { withBusy } from './busy.js';
import { markExported } from './unsaved.js';

/** Saves an export; answers whether it was saved. */
async function exportBlob(what, call, name) {
  let saved = false;
  await withBusy('export', `export ${what}`, async () => {
    state.taskTitle = `Exporting ${what}`;
    setTask(`${state.taskTitle}…`, null);
    try {
      const blob = await call();
      if (blob.size === 0) throw new Error(`the ${what} export is empty`);
      const fileName = typeof name === 'function' ? await name(blob) : name;
      downloadBlob(blob, fileName);
      messages.ok(`Saved ${fileName} (${fmtBytes(blob.size)}).`);
      saved = true;
    } catch (err) {
      messages.error(`Exporting ${what}`, err);
    } finally {
      clearTask();
    }
  });
  if (saved) markExported();
  return saved;
}

async function isGzip(blob) {
  const b = new Uint8Array(await blob.slice(0, 2).arrayBuffer());
  return b[0] === 0x1f && b[1] === 0x8b;
}

/**
 * Saves the masks of the open document: a NIfTI label map with the file's geometry (a
 * volume, a NIfTI time series), else PNGs in a zip; `format` picks one where both apply.
 * @param {'nifti' | 'png'} [format]
 */
export function exportMasks(format = hasVoxelValues(state.doc) ? 'nifti' : 'png') {
  if (format === 'nifti') {
    return exportBlob('NIfTI masks', () => medseg.exportNifti(), async (blob) => `${baseName(state.doc.name)}_masks.nii${(await isGzip(blob)) ? '.gz' : ''}`);
  }
  return exportBlob('PNG masks', () => medseg.exportPngZip(), `${baseName(state.doc?.name)}_masks.zip`);
}

ui.exportNifti.addEventListener('click', () => exportMasks('nifti'));
ui.exportPng.addEventListener('click', () => exportMasks('png'));

ui.exportVideo.addEventListener('click', () => exportVideo());
ui.exportSeg.addEventListener('click', () => exportDicomSeg());

/** Saves the masks as a DICOM SEG over the series the document came from: one segment per object, its name and colour. */
function exportDicomSeg() {
  if (!state.doc?.dicom) return false;
  const segments = Object.fromEntries(state.objects.filter((o) => o.inEngine).map((o) => [o.id, { label: o.name, color: o.color }]));
  return exportBlob('DICOM SEG', () => medseg.exportDicomSeg(null, { segments }), `${baseName(state.doc.name)}-seg.dcm`);
}

async function exportVideo() {
  const doc = state.doc;
  if (!doc || doc.kind !== 'clip') return;
  const fps = clamp(Math.round(Number(ui.videoFps.value)) || 15, 1, 60);
  ui.videoFps.value = String(fps);
  const scale = Math.min(1, 1280 / Math.max(doc.width, doc.height));
  const width = Math.round(doc.width * scale);
  const height = Math.round(doc.height * scale);
  const frames = Array.from({ length: doc.frameCount }, (_, i) => i);
  const abort = new AbortController();
  const gen = state.docGen;
  await withBusy('video', 'record the video', async () => {
    state.videoAbort = abort;
    state.taskTitle = 'Recording overlay video';
    setTask(`${state.taskTitle}…`, 0);
    messages.info(`Recording the overlay video in real time (${(frames.length / fps).toFixed(1)} s at ${fps} fps); Esc cancels.`);
    try {
      const { blob, ext } = await recordOverlayVideo({
        frames,
        fps,
        width,
        height,
        signal: abort.signal,
        onProgress: (done, total) => setTask(`Recording overlay video ${done}/${total}`, done / total),
        drawFrame: async (ctx, f, w, h) => {
          if (gen !== state.docGen) throw new Error('the document changed during the export');
          const frameCanvas = await getFrameCanvas(f);
          ctx.imageSmoothingEnabled = true;
          ctx.drawImage(frameCanvas, 0, 0, w, h);
          ctx.imageSmoothingEnabled = false;
          const edge = edgeFor(w / doc.width);
          for (const obj of state.objects) {
            if (!obj.visible || !obj.inEngine) continue;
            const ov = await getOverlay(f, obj, edge);
            if (ov) ctx.drawImage(ov.canvas, 0, 0, w, h);
          }
        },
      });
      const fileName = `${baseName(doc.name)}_overlay.${ext}`;
      downloadBlob(blob, fileName);
      messages.ok(`Saved ${fileName} (${fmtBytes(blob.size)}).`);
    } catch (err) {
      if (abort.signal.aborted) messages.info('Video export cancelled.');
      else messages.error('Recording the overlay video', err);
    } finally {
      state.videoAbort = null;
      clearTask();
    }
  });
  scheduleRender();
}
