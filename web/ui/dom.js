// Small DOM and formatting helpers shared by the MedSeg page modules.

/**
 * document.getElementById that throws a clear error when the page and the script disagree:
 * when the element is missing, or is not a `type` (an element class, e.g. HTMLInputElement).
 * @template {HTMLElement} T
 * @param {string} id
 * @param {{ new (): T; prototype: T }} [type] default HTMLElement
 * @returns {T}
 */
export function $(id, type) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`page element #${id} is missing (index.html and web/page/state.js disagree)`);
  const want = type ?? HTMLElement;
  if (node instanceof want) return /** @type {T} */ (node);
  const tag = /** @type {HTMLElement} */ (node).localName;
  throw new Error(`page element #${id} is a <${tag}>, not a ${want.name} (index.html and web/page/state.js disagree)`);
}

/**
 * Creates an element: el('button', {class: 'x', 'aria-label': 'y', onclick: fn}, 'text', child).
 * Never uses innerHTML, so file names and engine messages are shown as text.
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      node.addEventListener(key.slice(2), value);
    } else if (key === 'class') {
      node.className = value;
    } else if (key in node && typeof value !== 'string') {
      node[key] = value;
    } else {
      node.setAttribute(key, value === true ? '' : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

/** Human-readable byte count. */
/** "1 slice", "3 slices": a count with its noun, singular or plural. */
export function plural(n, word) {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** A duration to come, rounded as a person reads it: "8 s", "2 min 5 s", "1 h 3 min". */
export function fmtDuration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** A voxel value as read: integers as they are, others to 4 significant digits. */
export function fmtValue(v) {
  if (!Number.isFinite(v)) return String(v);
  return Number.isInteger(v) ? String(v).replace('-', '−') : Number(v.toPrecision(4)).toString().replace('-', '−');
}

export function fmtBytes(n) {
  if (!Number.isFinite(n)) return '?';
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB'];
  let v = n;
  let u = -1;
  do {
    v /= 1024;
    u += 1;
  } while (v >= 1024 && u < units.length - 1);
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

/** The message of anything thrown (Error, string, engine object). */
export function errorText(err) {
  if (err === undefined || err === null) return 'unknown error';
  if (typeof err === 'string') return err;
  if (err instanceof Error || typeof err.message === 'string') {
    return err.message || err.name || String(err);
  }
  try {
    return JSON.stringify(err);
  } catch {
    return String(err);
  }
}

/** A file's name without its (possibly double) extension: "ct.nii.gz" -> "ct". */
export function baseName(name) {
  const n = String(name || 'medseg').replace(/^.*[\\/]/, '');
  return n.replace(/\.(nii\.gz|tar\.gz)$/i, '').replace(/\.[^.]+$/, '') || 'medseg';
}

/** Saves a Blob under a file name through a temporary object URL. */
export function downloadBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = el('a', { href: url, download: name, class: 'visually-hidden' });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
