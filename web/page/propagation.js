// Propagation over a frame range, re-propagation after a correction, cancel.
import { medseg } from '../medseg.js';
import { clamp, errorText, plural, fmtDuration } from '../ui/dom.js';
import { frameToCanvas } from '../ui/overlay.js';
import { ui, messages, state, frameWord } from './state.js';
import { frameCache, maskCache, takeStepMasks } from './cache.js';
import { objectWithId, renderObjectList } from './objects.js';
import { viewer, scheduleRender, setFrame } from './view.js';
import { withBusy } from './busy.js';
import { cancelTeach } from './teach.js';

function normaliseRange() {
  const last = Math.max(0, (state.doc?.frameCount ?? 1) - 1);
  let a = clamp(Math.round(Number(ui.rangeFrom.value) || 0), 0, last);
  let b = clamp(Math.round(Number(ui.rangeTo.value)), 0, last);
  if (!Number.isFinite(b)) b = last;
  if (a > b) [a, b] = [b, a];
  ui.rangeFrom.value = String(a);
  ui.rangeTo.value = String(b);
  return [a, b];
}

ui.rangeFrom.addEventListener('change', normaliseRange);
ui.rangeTo.addEventListener('change', normaliseRange);

/**
 * Takes the masks of every propagation step, the page's own and those of scripts: they
 * replace what the cache had for their frames.
 */
function showStep(ev) {
  if (!state.doc) return;
  const fresh = takeStepMasks(ev.masks).filter((id) => !objectWithId(id).inEngine);
  for (const id of fresh) objectWithId(id).inEngine = true;
  if (fresh.length) renderObjectList();
  if (ev.frames?.includes(state.frame) ?? ev.frame === state.frame) scheduleRender();
}

medseg.on('frame', showStep);

const DIRECTION_TEXT = { forward: 'forward', backward: 'backward', both: 'both ways' };

/**
 * Propagates over the range of the controls, or over `range` for a re-propagation after
 * a correction (`correction`: the corrected frame, for the messages).
 */
export async function propagate(direction, { range = null, correction = null } = {}) {
  const doc = state.doc;
  if (!doc || doc.frameCount < 2) return;
  if (!state.model) return;
  if (!state.objects.some((o) => o.inEngine)) {
    messages.warn('Prompt an object first (draw a box), then propagate.');
    return;
  }
  if (!range) {
    range = normaliseRange();
    state.lastPropagation = { direction, range };
  }
  await withBusy('propagate', 'propagate', async () => {
    state.cancelRequested = false;
    const word = frameWord();
    // From the click on, the bar moves (indeterminate until the first step is done: the
    // first one includes the first image embedding, seconds on the CPU).
    ui.propProgress.max = 1;
    ui.propProgress.removeAttribute('value');
    ui.propStatus.textContent = `propagating ${DIRECTION_TEXT[direction]} from ${word} ${state.frame}: first ${word}…`;
    ui.propMs.textContent = '';
    if (ui.follow.checked) await prefetchFrames(range, direction);
    if (state.cancelRequested) {
      ui.propStatus.textContent = `cancelled before any ${word}`;
      ui.propProgress.value = 0;
      return;
    }
    ui.propStatus.textContent = `propagating ${DIRECTION_TEXT[direction]} from ${word} ${state.frame}: first ${word}…`;
    const t0 = performance.now();
    let frames = 0;
    let lastFrame = null;
    const cancelled = () => {
      ui.propStatus.textContent = frames ? `cancelled after ${plural(frames, word)} (at ${word} ${lastFrame})` : `cancelled before any ${word}`;
      messages.info(
        frames
          ? `Propagation cancelled after ${plural(frames, word)}; the masks made so far are kept.`
          : `Propagation cancelled before any ${word} was done; nothing changed.`,
      );
    };
    try {
      const result = await medseg.propagate(direction, {
        range,
        onFrame: (ev) => {
          frames += 1;
          lastFrame = ev.frame;
          showFrameProgress(ev, performance.now() - t0);
          if (ui.follow.checked) setFrame(ev.frame);
        },
      });
      const ms = performance.now() - t0;
      const secs = (ms / 1000).toFixed(1);
      const avg = frames ? ` (${(ms / frames).toFixed(0)} ms per ${word})` : '';
      if (state.cancelRequested || result.cancelled) {
        cancelled();
      } else {
        ui.propStatus.textContent = `done: ${plural(frames, word)} in ${secs} s`;
        ui.propMs.textContent = '';
        ui.propProgress.value = ui.propProgress.max;
        const why = correction === null ? '' : ` from the correction on ${word} ${correction}`;
        messages.ok(`Propagated ${DIRECTION_TEXT[direction]}${why} over ${plural(frames, word)} in ${secs} s${avg}.`);
      }
    } catch (err) {
      if (state.cancelRequested || /cancel|abort/i.test(errorText(err))) {
        cancelled();
      } else {
        ui.propStatus.textContent = 'failed';
        messages.error(`Propagating ${DIRECTION_TEXT[direction]}`, err);
      }
    } finally {
      maskCache.clear();
    }
  });
  scheduleRender();
}

/**
 * After a correction box on `frame`, propagates again over the last propagation's range:
 * forward from the frame to the range's end, and backward from it to the range's start
 * where that propagation went backward. Frames on the other side of the correction keep
 * their masks. SAM 2 propagates backward only from its earliest prompted frame, so a
 * correction after that frame is followed forward only.
 */
export async function repropagateFrom(frame) {
  const last = state.lastPropagation;
  if (!last || !state.doc) return;
  const [first, end] = last.range;
  if (frame < first || frame > end) return;
  const earliest = Math.min(...state.objects.flatMap((o) => [...o.prompts.keys()]));
  const parts = [];
  if (last.direction !== 'backward' && frame < end) parts.push(['forward', [frame, end]]);
  if (last.direction !== 'forward' && frame > first && (state.model?.architecture !== 'sam2' || frame <= earliest)) {
    parts.push(['backward', [first, frame]]);
  }
  for (const [direction, range] of parts) {
    await propagate(direction, { range, correction: frame });
    if (state.cancelRequested) break;
  }
}

/**
 * A propagated frame ({frame, done, total}) on the progress bar, after `elapsed` ms: which
 * frame, how many of how many, and the time left at the pace so far.
 */
export function showFrameProgress({ frame, done, total }, elapsed) {
  const word = frameWord();
  ui.propProgress.max = Math.max(1, total);
  ui.propProgress.value = Math.min(total, done);
  ui.propStatus.textContent = `${word} ${frame} · ${done} of ${plural(total, word)}`;
  const per = elapsed / Math.max(1, done);
  ui.propMs.textContent = done < total ? `${(per / 1000).toFixed(1)} s/${word} · ~${fmtDuration(per * (total - done))} left` : '';
}

ui.propForward.addEventListener('click', () => propagate('forward'));
ui.propBackward.addEventListener('click', () => propagate('backward'));
ui.propBoth.addEventListener('click', () => propagate('both'));

/**
 * Loads the frames a propagation will show into the frame cache first (as many as the
 * cache holds), so that the view can follow the propagation even where the engine answers
 * getFrame only between whole operations.
 */
async function prefetchFrames([first, last], direction) {
  const doc = state.doc;
  const bytes = Math.max(1, doc.width * doc.height * 4);
  const room = Math.floor((frameCache.budget * 0.75) / bytes);
  const order = [];
  if (direction !== 'backward') for (let f = state.frame; f <= last; f++) order.push(f);
  if (direction !== 'forward') for (let f = state.frame - 1; f >= first; f--) order.push(f);
  const todo = order.filter((f) => f >= first && f <= last && !frameCache.map.has(f)).slice(0, room);
  const gen = state.docGen;
  // What the status says before the loading (where the propagation starts).
  const lead = ui.propStatus.textContent.replace(/:.*$/, '');
  state.prefetching = true;
  try {
    for (let i = 0; i < todo.length && !state.cancelRequested && gen === state.docGen; i++) {
      if (i % 8 === 0) ui.propStatus.textContent = `${lead}: loading ${plural(todo.length, frameWord())} to show, ${i} done…`;
      frameCache.set(todo[i], frameToCanvas(await medseg.getFrame(todo[i])));
    }
  } catch {
    // A frame that cannot be had is reported when it is shown.
  } finally {
    state.prefetching = false;
  }
}

export async function cancelWork() {
  if (state.busy === 'teach') return cancelTeach();
  if (state.busy === 'propagate') {
    if (state.prefetching) {
      state.cancelRequested = true;
      return true;
    }
    state.cancelRequested = true;
    ui.propStatus.textContent = 'cancelling…';
    try {
      await medseg.cancel();
    } catch (err) {
      messages.error('Cancel', err);
    }
    return true;
  }
  if (state.busy === 'video' && state.videoAbort) {
    state.videoAbort.abort();
    return true;
  }
  return viewer.cancelDrag();
}

ui.cancel.addEventListener('click', () => cancelWork());
