// DICOM through the engine, for web/medseg.js: reading files (or zips) into the worker
// one at a time and opening a series, and the arguments of a Segmentation export.
import { isDicomDir } from "./files.js";

/** @typedef {Blob & { name?: string }} NamedBlob */

/**
 * Reads DICOM files (or zips of them) into the engine one at a time, then opens the
 * series (`opts.series`, or the only one). Several files: those that are not DICOM are
 * skipped with a notice. Several series and none chosen: rejects with kind
 * "choose-series" and `series`; the engine keeps the files for the call that chooses.
 * @param {import("./medseg.js").MedSeg} client
 * @param {NamedBlob[]} files
 * @param {{ name?: string, series?: string, onProgress?: (p: object) => void }} opts
 */
export async function openDicom(client, files, { name, series, onProgress } = {}) {
  await client._ready();
  const pathOf = (/** @type {NamedBlob} */ f) => /** @type {any} */ (f).webkitRelativePath || f.name || "file";
  const docName = name || dicomName(files.map(pathOf));
  const kept = series && client._dicomPending && sameFiles(client._dicomPending, files);
  client._dicomPending = null;
  if (!kept) {
    const lenient = files.length > 1;
    const total = files.length;
    const report = (/** @type {number} */ loaded) => {
      const p = { task: "dicom", stage: "read", loaded, total, fraction: total ? loaded / total : 1 };
      client._emit("progress", p);
      if (onProgress) onProgress(p);
    };
    await client._call("beginDicom");
    for (const [i, f] of files.entries()) {
      report(i);
      const fname = pathOf(f);
      let why = null;
      if (isDicomDir(fname)) why = "a DICOMDIR (the folder's index, not an image; the files it lists are read instead)";
      else if (f.size === 0) why = "the file is empty";
      if (why && !lenient) throw client._error(`${fname}: ${why}`);
      if (why) {
        await client._call("skipDicom", [fname, why]);
        continue;
      }
      const buf = await f.arrayBuffer();
      await client._call("pushDicom", [buf, fname, lenient], [buf]);
    }
    report(total);
  }
  if (onProgress) onProgress({ task: "dicom", stage: "decode", loaded: 0, total: 1, fraction: 0 });
  let res;
  try {
    res = await client._call("finishDicom", [docName, series || null]);
  } catch (err) {
    // The engine keeps the files: another series may still be chosen without reading them again.
    if (series) client._dicomPending = files;
    throw err;
  }
  if (res && Array.isArray(res.choose)) {
    client._dicomPending = files;
    const list = res.choose.map((s) => `${s.modality ?? "?"} ${s.description ?? "(no description)"} (${s.frames} frame${s.frames === 1 ? "" : "s"})`).join("; ");
    throw Object.assign(client._error(`${docName}: ${res.choose.length} series in the files, choose one: ${list}`), { kind: "choose-series", series: res.choose });
  }
  return res;
}

/** The name of a DICOM document from its files' paths: their common folder, else the first file's name. */
function dicomName(paths) {
  const dirs = paths.map((p) => p.split("/").slice(0, -1));
  let common = dirs[0] ?? [];
  for (const d of dirs) {
    let n = 0;
    while (n < common.length && n < d.length && common[n] === d[n]) n++;
    common = common.slice(0, n);
  }
  if (common.length) return common[common.length - 1];
  return paths[0] ?? "dicom";
}

/** Whether two lists hold the same files in the same order. */
function sameFiles(a, b) {
  return a.length === b.length && a.every((f, i) => f === b[i]);
}

/**
 * The engine's segment styles from `{[objId]: {label, color: "#rrggbb"}}`: only what the
 * caller gave (the engine names and colours the rest: "Object N", its palette).
 * @param {Record<number, { label?: string, color?: string }>} segments
 */
export function segmentStyles(segments) {
  return Object.entries(segments).map(([id, s]) => ({ obj: Number(id), label: s.label || null, colour: hexColour(s.color) }));
}

/** "#rrggbb" → [r, g, b], or null. */
function hexColour(c) {
  const m = typeof c === "string" && /^#?([0-9a-f]{6})$/i.exec(c.trim());
  if (!m) return null;
  const v = parseInt(m[1], 16);
  return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
}

/** A date as DICOM's DA (YYYYMMDD) and TM (HHMMSS), in local time. */
export function dicomNow(d) {
  const p = (n, w = 2) => String(n).padStart(w, "0");
  return { date: `${p(d.getFullYear(), 4)}${p(d.getMonth() + 1)}${p(d.getDate())}`, time: `${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}` };
}
