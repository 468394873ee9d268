"""pydicom's decoded frames, the oracle of tests/dicom_decode.rs.

Usage: python pydicom_frames.py OUT_DIR LIST_FILE   (LIST_FILE: one path a line)

For file number i of the list, writes OUT_DIR/i.bin and an entry of OUT_DIR/manifest.json:
pydicom 3's `pixel_array` (YBR already converted to RGB, its default) brought to MedSeg's
conventions (src/io/dicom/pixels.rs), computed here independently:
- grey: float64 little-endian; MONOCHROME1 inverted as (2^BitsStored - 1) - v (-1 - v when
  signed), then the Modality LUT (pydicom's apply_modality_lut) when there is one, else
  v * slope + intercept with the frame's rescale (per-frame functional groups, else the
  shared ones, else the top-level attributes);
- colour: uint8 RGB; PALETTE COLOR through pydicom's apply_color_lut, each entry
  >> (descriptor bits - 8); other colour samples >> (BitsStored - 8).
A file pydicom cannot read or decode, or without Pixel Data, gets {"status": "error"|"no
pixel data", "why": ...}.
"""

import json
import os
import sys
import warnings

import numpy as np
import pydicom
from pydicom.pixels import apply_color_lut, apply_modality_lut

warnings.simplefilter("ignore")


def rescales(ds, frames):
    def of(item):
        seq = item.get("PixelValueTransformationSequence")
        if seq:
            it = seq[0]
            if "RescaleSlope" in it or "RescaleIntercept" in it:
                return float(it.get("RescaleSlope", 1) or 1), float(it.get("RescaleIntercept", 0) or 0)
        return None

    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared and of(shared[0]):
        return [of(shared[0])] * frames
    if per_frame and all(of(f) for f in per_frame):
        return [of(f) for f in per_frame][:frames]
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    return [(slope, intercept)] * frames


def one(path, out):
    try:
        ds = pydicom.dcmread(path)
    except Exception as e:
        return {"status": "error", "why": f"read: {type(e).__name__}: {e}"}
    if "PixelData" not in ds:
        return {"status": "no pixel data", "why": "no (7FE0,0010) Pixel Data"}
    try:
        arr = ds.pixel_array
    except Exception as e:
        return {"status": "error", "why": f"decode: {type(e).__name__}: {e}".splitlines()[0]}
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    rows, cols, spp = int(ds.Rows), int(ds.Columns), int(ds.SamplesPerPixel)
    pi = str(ds.PhotometricInterpretation).strip().upper()
    bs = int(ds.BitsStored)
    arr = arr.reshape((frames, rows, cols) + ((3,) if spp == 3 else ()))
    entry = {"status": "ok", "frames": frames, "rows": rows, "columns": cols,
             "transfer_syntax": str(ds.file_meta.TransferSyntaxUID), "photometric": pi}
    if pi == "PALETTE COLOR":
        bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
        rgb = apply_color_lut(arr, ds)[..., :3].astype(np.uint32)
        data = (rgb >> max(bits - 8, 0)).astype(np.uint8)
        entry.update(kind="rgb", slope=1.0)
    elif spp == 3:
        a = arr.astype(np.uint64)
        a = a >> (bs - 8) if bs >= 8 else a << (8 - bs)
        data = np.minimum(a, 255).astype(np.uint8)
        entry.update(kind="rgb", slope=1.0)
    else:
        signed = int(ds.PixelRepresentation) == 1
        res = rescales(ds, frames)
        mlut = bool(ds.get("ModalityLUTSequence"))
        data = np.empty((frames, rows, cols), dtype=np.float64)
        for i in range(frames):
            v = arr[i].astype(np.int64)
            if pi == "MONOCHROME1":
                v = (-1 - v) if signed else ((1 << bs) - 1) - v
            if mlut:
                data[i] = apply_modality_lut(v, ds).astype(np.float64)
            else:
                slope, intercept = res[i]
                data[i] = v.astype(np.float64) * slope + intercept
        entry.update(kind="grey", slope=abs(res[0][0]) if not mlut else 1.0)
    with open(out, "wb") as f:
        f.write(np.ascontiguousarray(data).astype(data.dtype.newbyteorder("<")).tobytes())
    return entry


def main():
    out_dir, list_file = sys.argv[1], sys.argv[2]
    with open(list_file) as f:
        paths = [line.rstrip("\n") for line in f if line.strip()]
    manifest = []
    for i, path in enumerate(paths):
        entry = one(path, os.path.join(out_dir, f"{i}.bin"))
        entry["path"] = path
        manifest.append(entry)
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f)


if __name__ == "__main__":
    main()
