// DICOM in the page: the files of a dropped folder (directory entries, read recursively),
// and the series picker when the files hold several series. Opening them goes through
// medseg.openFile (documents.js); exporting a SEG is in export.js.
import { dialogElement } from './state.js';
import { pick } from '../ui/dialog.js';

/**
 * A file's path under the folder it came from ("CT5N/IM1"), else its name.
 * @param {File} f
 */
export function filePath(f) {
  return f.webkitRelativePath || f.name;
}

/**
 * The files of a drop: the dropped files, and every file under the dropped folders (in
 * path order, each File given its path as webkitRelativePath). `name`: the folder's name
 * when one folder was dropped. Takes the entries at once (they are only there during
 * the drop event), then reads the folders.
 * @param {DataTransfer} dt
 * @returns {Promise<{ files: File[], name: string | null }>}
 */
export async function droppedFiles(dt) {
  const items = [...(dt.items ?? [])].filter((i) => i.kind === 'file');
  const entries = items.map((i) => (typeof i.webkitGetAsEntry === 'function' ? i.webkitGetAsEntry() : null));
  const plain = [...(dt.files ?? [])];
  if (!entries.some((e) => e?.isDirectory)) return { files: plain, name: null };
  /** @type {File[]} */
  const files = [];
  for (const [n, entry] of entries.entries()) {
    if (!entry) {
      if (plain[n]) files.push(plain[n]);
      continue;
    }
    await collect(entry, files);
  }
  files.sort((a, b) => filePath(a).localeCompare(filePath(b), undefined, { numeric: true }));
  const dirs = entries.filter((e) => e?.isDirectory);
  return { files, name: dirs.length === 1 && entries.length === 1 ? dirs[0].name : null };
}

/**
 * Adds the files under `entry` to `out`, each with its path.
 * @param {FileSystemEntry} entry
 * @param {File[]} out
 */
async function collect(entry, out) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => /** @type {FileSystemFileEntry} */ (entry).file(resolve, reject));
    // The path under the dropped folder, as a folder picker gives it.
    Object.defineProperty(file, 'webkitRelativePath', { value: entry.fullPath.replace(/^\//, ''), configurable: true });
    out.push(file);
    return;
  }
  if (!entry.isDirectory) return;
  const reader = /** @type {FileSystemDirectoryEntry} */ (entry).createReader();
  // readEntries answers in batches (100 in Chrome) until an empty one.
  for (;;) {
    /** @type {FileSystemEntry[]} */
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) break;
    for (const e of batch) await collect(e, out);
  }
}

/**
 * Asks which series to open: a list with each one's modality, description, frames and
 * size (nothing about the patient). Answers its UID, or null when cancelled.
 * @param {string} label the folder's or file's name
 * @param {{uid: string, modality?: string, description?: string, number?: number, files: number, frames: number, rows: number, columns: number, kind: string}[]} series
 */
export function chooseSeries(label, series) {
  return pick(dialogElement, {
    title: 'Choose a series',
    text: `${label} holds ${series.length} series. Which one should open?`,
    head: ['Modality', 'Description', 'Frames', 'Size'],
    items: series.map((s) => {
      const description = s.description || (s.number != null ? `series ${s.number}` : '(no description)');
      const frames = `${s.frames} ${s.kind === 'volume' ? 'slices' : s.frames === 1 ? 'frame' : 'frames'}`;
      return {
        value: s.uid,
        cells: [s.modality || '—', description, frames, `${s.columns}×${s.rows}`],
        label: `${s.modality || 'unknown modality'}, ${description}, ${frames}, ${s.columns} by ${s.rows}, opens as ${s.kind === 'volume' ? 'a volume' : s.kind === 'clip' ? 'a clip' : 'an image'}`,
      };
    }),
  });
}
