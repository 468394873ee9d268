// What a file is, for web/medseg.js's openFile and for the page: one classifier, by
// name (fileKind) and by first bytes (magicKind), and the message for a file MedSeg
// does not open.

// What a file is: one classifier, for openFile and for the page.
const FILE_KINDS = /** @type {const} */ ([
  ["volume", /\.(nii|nii\.gz|npz)$/i],
  ["dicom", /\.(dcm|dicom|zip)$/i],
  ["image", /\.(png|jpe?g|webp)$/i],
  ["video", /\.(mp4|m4v|webm)$/i],
  ["model", /\.(safetensors|pt|pth)$/i],
]);
/** Clip containers that browsers decode only sometimes. */
const OTHER_VIDEO_EXT = /\.(mkv|mov|ogv|ogg|avi)$/i;

/** The file types MedSeg opens, for the message about one it does not. */
export const SUPPORTED_FILES =
  "MedSeg opens PNG, JPEG and WebP images, MP4 and WebM clips, NIfTI volumes (.nii, .nii.gz), .npz volumes and DICOM (.dcm files, a folder of them, or a .zip)";

/** How many first bytes magicKind needs to tell every kind (DICOM's "DICM" is at 128). */
export const MAGIC_BYTES = 132;

/**
 * Whether a file of a folder is a DICOMDIR (the index of a DICOM folder, not an image:
 * the page skips it and opens the files it lists, which are in the folder).
 * @param {string} name its name or path
 */
export function isDicomDir(name) {
  return /(^|\/)DICOMDIR$/i.test(name);
}

/**
 * What a file is by its name: "image", "video", "volume", "dicom" (.dcm, or a .zip of
 * DICOM files), "model" (weights for loadModel) or null (DICOM files often have no
 * extension: magicKind tells them by their bytes). Other clip containers (.mkv, .mov, .ogv, .ogg, .avi) and a `type` of video/*
 * count as "video" too, for the browser to try, unless `strict` (the page asks for a
 * conversion instead). openFile also looks at the file's first bytes (magicKind).
 * @param {string} name
 * @param {string} [type] the MIME type
 * @param {{ strict?: boolean }} [opts]
 * @returns {"image" | "video" | "volume" | "dicom" | "model" | null}
 */
export function fileKind(name, type = "", { strict = false } = {}) {
  for (const [kind, ext] of FILE_KINDS) if (ext.test(name)) return kind;
  if (!strict && (OTHER_VIDEO_EXT.test(name) || type.startsWith("video/"))) return "video";
  return null;
}

/**
 * Why a file named `name` is not opened: "unsupported file type", what MedSeg opens, and
 * what to do for common near misses (a file without the DICOM header, other .gz, other
 * clip containers).
 * @param {string} name
 */
export function unsupportedFileText(name) {
  const n = name.toLowerCase();
  let hint = "";
  if (/^[^.]+$/.test(n)) hint = "; this file has no extension and does not start like a DICOM file (\"DICM\" at byte 128)";
  else if (/\.gz$/.test(n)) hint = "; a .gz must be a gzipped NIfTI named .nii.gz";
  else if (/\.(mov|avi|mkv)$/.test(n)) hint = "; convert the clip to MP4 (H.264) or WebM first";
  return `unsupported file type. ${SUPPORTED_FILES}${hint}`;
}

/**
 * What a file is by its first bytes (MAGIC_BYTES = 132: 16 tell all but DICOM, whose
 * Part 10 header has "DICM" after a 128-byte preamble): "image", "video", "volume",
 * "dicom" or null. A zip is "volume" (a MedSAM .npz) here: a .zip of DICOM files is told
 * by its name (fileKind).
 * @param {Uint8Array} head
 * @returns {"image" | "video" | "volume" | "dicom" | null}
 */
export function magicKind(head) {
  const b = head;
  if (b.length >= 132 && String.fromCharCode(...b.slice(128, 132)) === "DICM") return "dicom";
  if (b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) return "image";
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return "image";
  if (b.length >= 12 && String.fromCharCode(...b.slice(0, 4)) === "RIFF" && String.fromCharCode(...b.slice(8, 12)) === "WEBP") return "image";
  if (b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b) return "volume"; // .nii.gz
  if (b.length >= 4 && b[0] === 0x50 && b[1] === 0x4b) return "volume"; // .npz (zip)
  if (b.length >= 4 && b[0] === 0x1a && b[1] === 0x45 && b[2] === 0xdf && b[3] === 0xa3) return "video"; // WebM/Matroska
  if (b.length >= 8 && String.fromCharCode(...b.slice(4, 8)) === "ftyp") return "video"; // MP4/MOV
  if (b.length >= 4 && (new DataView(b.buffer, b.byteOffset).getInt32(0, true) === 348 || new DataView(b.buffer, b.byteOffset).getInt32(0, false) === 348)) return "volume"; // .nii
  return null;
}

/**
 * Whether a file is DICOM: by its name, else (no known extension) by "DICM" at byte 128.
 * @param {Blob & { name?: string }} file
 */
export async function isDicomFile(file) {
  const name = file.name || "";
  const byName = fileKind(name);
  if (byName) return byName === "dicom";
  if (file.size < MAGIC_BYTES) return false;
  return magicKind(new Uint8Array(await file.slice(0, MAGIC_BYTES).arrayBuffer())) === "dicom";
}

/**
 * Whether some of `files` are DICOM (or a DICOMDIR): then they open together as DICOM,
 * in web/medseg.js and in the page alike.
 * @param {(Blob & { name?: string })[]} files
 */
export async function anyDicom(files) {
  for (const f of files) if (isDicomDir(f.name || "") || (await isDicomFile(f))) return true;
  return false;
}
