// A volume file (NIfTI, MedSAM .npz) through the engine, for web/medseg.js, as
// web/dicom-open.js does DICOM: a 4-D NIfTI of several slices needs a time point chosen.

/**
 * Opens a volume file. A 4-D NIfTI of several slices and no `timePoint` rejects with kind
 * "choose-time-point", `timePoints` and `dims` (the engine keeps nothing: the file is read
 * again for the call that chooses).
 * @param {import("./medseg.js").MedSeg} client
 * @param {Blob} file
 * @param {string} name
 * @param {{ window?: string, timePoint?: number | null }} opts
 */
export async function openVolume(client, file, name, { window = "", timePoint = null } = {}) {
  const res = await client._op("openVolume", [file, name, { window: window || "", timePoint: timePoint ?? null }]);
  const choice = res?.choose_time_point;
  if (!choice) return res;
  throw Object.assign(
    client._error(res.message),
    { kind: "choose-time-point", timePoints: choice.time_points, dims: choice.dims },
  );
}
