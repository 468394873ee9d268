// Overlay video export, entirely in the page: each frame and its masks are drawn on a
// canvas whose stream MediaRecorder encodes (WebM where the browser has it, else MP4).
import { sleep } from './dom.js';

const TYPES = [
  'video/webm;codecs=vp9',
  'video/webm;codecs=vp8',
  'video/webm',
  'video/mp4;codecs=avc1',
  'video/mp4',
];

/** Whether this browser can record a canvas. */
export function canRecordVideo() {
  return (
    typeof MediaRecorder === 'function' &&
    typeof HTMLCanvasElement.prototype.captureStream === 'function' &&
    TYPES.some((t) => MediaRecorder.isTypeSupported(t))
  );
}

/**
 * Records `frames` (an array of frame indices) at `fps` frames per second.
 * `drawFrame(ctx, frame, width, height)` draws one frame (async). `width`×`height` is the
 * video size (even numbers). `onProgress(done, total)`; `signal` (AbortSignal) stops it.
 * Resolves to {blob, ext}. Recording runs in real time: a 10 s clip takes 10 s.
 */
export async function recordOverlayVideo({ frames, fps, width, height, drawFrame, onProgress, signal }) {
  if (!canRecordVideo()) throw new Error('this browser cannot record video from a canvas (no MediaRecorder)');
  if (!frames.length) throw new Error('no frames to record');
  const mimeType = TYPES.find((t) => MediaRecorder.isTypeSupported(t));
  const ext = mimeType.startsWith('video/mp4') ? 'mp4' : 'webm';
  const canvas = document.createElement('canvas');
  canvas.width = Math.max(2, width & ~1);
  canvas.height = Math.max(2, height & ~1);
  const ctx = canvas.getContext('2d');
  // Each frame is composed here (drawFrame awaits the engine between the picture and its
  // masks) and then copied to the recorded canvas in one step: the browser may capture
  // the recorded canvas whenever it changes, and must never see a half-drawn frame.
  const scratch = document.createElement('canvas');
  scratch.width = canvas.width;
  scratch.height = canvas.height;
  const scratchCtx = scratch.getContext('2d');
  const stream = canvas.captureStream(0);
  // A canvas stream's track is a CanvasCaptureMediaStreamTrack where the browser has it.
  const track = /** @type {CanvasCaptureMediaStreamTrack | undefined} */ (stream.getVideoTracks()[0]);
  const manual = typeof track?.requestFrame === 'function';
  const live = manual ? null : canvas.captureStream(fps);
  const recorder = new MediaRecorder(live ?? stream, {
    mimeType,
    videoBitsPerSecond: Math.min(16e6, Math.max(2e6, canvas.width * canvas.height * fps * 0.2)),
  });
  const chunks = [];
  recorder.addEventListener('dataavailable', (e) => {
    if (e.data && e.data.size) chunks.push(e.data);
  });
  const stopped = new Promise((resolve, reject) => {
    recorder.addEventListener('stop', resolve, { once: true });
    recorder.addEventListener('error', (e) => reject(e.error || new Error('MediaRecorder failed')), { once: true });
  });
  stopped.catch(() => {}); // a failure after a cancel must not surface as unhandled
  const period = 1000 / fps;
  try {
    let next = 0;
    for (let i = 0; i < frames.length; i++) {
      if (signal?.aborted) throw new DOMException('video export cancelled', 'AbortError');
      await drawFrame(scratchCtx, frames[i], canvas.width, canvas.height);
      ctx.drawImage(scratch, 0, 0);
      if (i === 0) {
        // Recording starts with the first frame on the canvas (the recorder takes the
        // canvas as it is at the start as the video's first picture).
        recorder.start(1000);
        next = performance.now();
      }
      if (manual) track.requestFrame();
      onProgress?.(i + 1, frames.length);
      next += period;
      await sleep(Math.max(0, next - performance.now()));
    }
    // Hold the last frame for one period so that it gets its full duration.
    if (manual) track.requestFrame();
    await sleep(period);
  } finally {
    if (recorder.state !== 'inactive') recorder.stop();
    for (const t of [...stream.getTracks(), ...(live ? live.getTracks() : [])]) t.stop();
  }
  await stopped;
  if (signal?.aborted) throw new DOMException('video export cancelled', 'AbortError');
  return { blob: new Blob(chunks, { type: mimeType.split(';')[0] }), ext };
}
