// Objects: the list; adding, selecting, hiding, removing and clearing them.
import { medseg } from '../medseg.js';
import { el } from '../ui/dom.js';
import { colorFor } from '../ui/overlay.js';
import { ui, messages, state } from './state.js';
import { maskCache, maskKey, forgetMasksOfObject } from './cache.js';
import { scheduleRender, redrawPrompts, updateControls } from './view.js';
import { withBusy, queuePrompt } from './busy.js';

/** A new object's record: no prompts yet, the palette colour of its id. */
export function objectRecord(id) {
  return {
    id,
    name: `Object ${id}`,
    color: colorFor(id - 1),
    visible: true,
    prompts: new Map(),
    /** frame -> why the engine gives its prompt's mask little trust */
    lowConfidence: new Map(),
    inEngine: false,
  };
}

/** The page's object with engine id `id`, made (with its own colour) when new. */
export function objectWithId(id) {
  let obj = state.objects.find((o) => o.id === id);
  if (obj) return obj;
  // The first, still empty object of a document stands for a script's first object.
  const blank = state.objects.length === 1 && !state.objects[0].inEngine && !state.objects[0].prompts.size;
  if (blank) state.objects = [];
  obj = objectRecord(id);
  state.objects.push(obj);
  state.objects.sort((a, b) => a.id - b.id);
  state.nextId = Math.max(state.nextId, id + 1);
  state.selectedId = id;
  return obj;
}

export function addObject() {
  const id = state.nextId++;
  const obj = objectRecord(id);
  state.objects.push(obj);
  state.selectedId = id;
  renderObjectList();
  updateControls();
  redrawPrompts();
  return obj;
}

export function selectObject(id) {
  if (!state.objects.some((o) => o.id === id)) return;
  state.selectedId = id;
  renderObjectList();
  updateControls();
  redrawPrompts();
}

export function renderObjectList() {
  const items = state.objects.map((obj, i) => {
    const selected = obj.id === state.selectedId;
    const color = el('input', {
      type: 'color',
      value: obj.color,
      'aria-label': `Colour of ${obj.name}`,
      title: 'Colour',
      oninput: (e) => {
        obj.color = e.target.value;
        scheduleRender();
      },
    });
    const area = el('small', { class: 'obj-area', 'data-id': String(obj.id) });
    const name = el(
      'button',
      {
        type: 'button',
        class: 'obj-name',
        'aria-pressed': String(selected),
        title: `Select ${obj.name}${i < 9 ? ` (${i + 1})` : ''}`,
        onclick: () => selectObject(obj.id),
      },
      el('span', { class: 'obj-label' }, `${i < 9 ? `${i + 1} · ` : ''}${obj.name}`),
      area,
    );
    const vis = el(
      'button',
      {
        type: 'button',
        class: 'icon',
        'aria-pressed': String(!obj.visible),
        'aria-label': `${obj.visible ? 'Hide' : 'Show'} ${obj.name}`,
        title: obj.visible ? 'Hide' : 'Show',
        onclick: () => {
          obj.visible = !obj.visible;
          renderObjectList();
          scheduleRender();
        },
      },
      obj.visible ? '◉' : '○',
    );
    const remove = el(
      'button',
      {
        type: 'button',
        class: 'icon',
        'aria-label': `Remove ${obj.name}`,
        title: 'Remove',
        onclick: () => removeObjectUi(obj.id),
      },
      '×',
    );
    return el(
      'li',
      { class: `obj${selected ? ' selected' : ''}${obj.visible ? '' : ' hidden-obj'}` },
      color,
      name,
      vis,
      remove,
    );
  });
  ui.objectList.replaceChildren(...items);
  refreshAreas();
}

/** Shows each object's mask area on the current frame (mm² with spacing). */
export function refreshAreas() {
  const sp = state.doc?.spacing;
  const mm2 = Array.isArray(sp) && sp.length >= 2 ? Number(sp[0]) * Number(sp[1]) : 0;
  for (const node of /** @type {NodeListOf<HTMLElement>} */ (ui.objectList.querySelectorAll('.obj-area'))) {
    const id = Number(node.dataset.id);
    const entry = maskCache.get(maskKey(state.frame, id));
    const area = entry?.overlay?.area;
    const low = state.objects.find((o) => o.id === id)?.lowConfidence.get(state.frame);
    const size = !area ? '' : mm2 > 0 ? `${(area * mm2).toFixed(0)} mm²` : `${area} px`;
    node.textContent = low ? `${size ? `${size} · ` : ''}⚠ low confidence` : size;
    node.title = low ?? '';
    node.classList.toggle('low-confidence', !!low);
  }
}

/**
 * Forgets every object (`id` null) or one, from a "reset" event: every reset reaches the
 * page this way, its own and those of scripts.
 */
function showReset({ obj: id }) {
  if (id === null || id === undefined) {
    state.objects = [];
    state.nextId = 1;
    state.lastPropagation = null;
    maskCache.clear();
    if (state.doc) addObject();
  } else {
    state.objects = state.objects.filter((o) => o.id !== id);
    forgetMasksOfObject(id);
    if (state.selectedId === id) state.selectedId = state.objects.at(-1)?.id ?? null;
  }
  renderObjectList();
  updateControls();
  scheduleRender();
}

medseg.on('reset', showReset);

function removeObjectUi(id) {
  const obj = state.objects.find((o) => o.id === id);
  if (!obj) return;
  queuePrompt(`Removing ${obj.name}`, async () => {
    // The engine's "reset" event takes it off the page (showReset); an object the engine
    // never saw has no event, so it goes here.
    if (obj.inEngine) await medseg.removeObject(id);
    else showReset({ obj: id });
    messages.info(`${obj.name} removed.`);
  });
}

ui.addObject.addEventListener('click', () => newObject());

export function newObject() {
  if (!state.doc) return;
  const obj = addObject();
  messages.info(`${obj.name} added: draw its box.`);
}

ui.clearAll.addEventListener('click', async () => {
  if (Date.now() > state.clearArmedUntil) {
    state.clearArmedUntil = Date.now() + 4000;
    ui.clearAll.textContent = 'Confirm clear';
    setTimeout(() => {
      ui.clearAll.textContent = 'Clear all';
    }, 4000);
    return;
  }
  state.clearArmedUntil = 0;
  ui.clearAll.textContent = 'Clear all';
  await withBusy('reset', 'clear', async () => {
    try {
      await medseg.reset(); // its "reset" event clears the page (showReset)
      messages.info('All objects and masks cleared.');
    } catch (err) {
      messages.error('Clearing', err);
    }
  });
  scheduleRender();
});
