"""The DICOM oracle of tests/e2e/13-dicom.test.mjs, run with the pinned venv that
scripts/setup.sh makes (~/.cache/medseg/dicom-venv: pydicom, highdicom, the pylibjpeg
codecs). Writes what pydicom and highdicom read, for the test to compare with the page.

  dicom-oracle.py pixels OUT FILE...   every frame of the files as pydicom decodes them,
        in document order (a series' slices sorted along the slice normal): OUT.json
        {frames, rows, columns, kind: "grey" | "rgb", window, files: [sop uids], bitsStored,
        rescaled} and OUT.bin
        (grey: float32 values after the modality rescale; rgb: uint8 RGB, YBR converted,
        palette colour applied and brought to 8 bits)
  dicom-oracle.py seg OUT SEG FILE...  the SEG read with highdicom, as a label map (segment
        number per pixel, 0 none) for each frame of the source FILEs in document order:
        OUT.json {frames, rows, columns, segments: [{number, label, colour}], patient:
        [name, id]} and OUT.bin (uint8)
  dicom-oracle.py zip OUT NAME=FILE... a zip holding each FILE under NAME
  dicom-oracle.py patient FILE         the file's patient name and id (JSON)
"""

import json
import sys
import zipfile

import numpy as np
import pydicom
from pydicom.pixels import apply_color_lut, apply_modality_lut


def ordered(paths):
    """The files of a series in document order: along the slice normal when placed."""
    ds = [(p, pydicom.dcmread(p)) for p in paths]
    if len(ds) > 1 and all("ImagePositionPatient" in d and "ImageOrientationPatient" in d for _, d in ds):
        o = np.array(ds[0][1].ImageOrientationPatient, dtype=float)
        normal = np.cross(o[:3], o[3:])
        ds.sort(key=lambda pd: float(np.dot(normal, np.array(pd[1].ImagePositionPatient, dtype=float))))
    return ds


def frames_of(d):
    """The frames of one data set: (frames, rows, columns[, 3]) and its kind."""
    arr = d.pixel_array
    n = int(d.get("NumberOfFrames", 1) or 1)
    pi = d.PhotometricInterpretation
    if pi == "PALETTE COLOR":
        rgb = apply_color_lut(arr, d)
        # 16-bit palette entries to 8 bits: their top byte (MedSeg's rule, src/io/dicom/pixels.rs).
        if rgb.dtype != np.uint8:
            bits = int(d.RedPaletteColorLookupTableDescriptor[2])
            rgb = (rgb.astype(np.uint32) >> (bits - 8)).astype(np.uint8)
        return (rgb if n > 1 else rgb[None]), "rgb"
    if int(d.SamplesPerPixel) == 3:
        # pydicom 3 converts YBR to RGB by default.
        return (arr if n > 1 else arr[None]).astype(np.uint8), "rgb"
    values = apply_modality_lut(arr, d).astype(np.float32)
    if pi == "MONOCHROME1":
        values = values.max() + values.min() - values
    return (values if n > 1 else values[None]), "grey"


def pixels(out, paths):
    parts = []
    kind = None
    uids = []
    window = None
    for _, d in ordered(paths):
        f, kind = frames_of(d)
        parts.append(f)
        uids.append(str(d.SOPInstanceUID))
        if window is None and "WindowCenter" in d:
            wc, ww = d.WindowCenter, d.WindowWidth
            wc = wc[0] if isinstance(wc, pydicom.multival.MultiValue) else wc
            ww = ww[0] if isinstance(ww, pydicom.multival.MultiValue) else ww
            window = [float(wc), float(ww)]
    data = np.concatenate(parts)
    data.astype(np.float32 if kind == "grey" else np.uint8).tofile(out + ".bin")
    first = ordered(paths)[0][1]
    slope, intercept = float(first.get("RescaleSlope", 1)), float(first.get("RescaleIntercept", 0))
    meta = {
        "frames": int(data.shape[0]),
        "rows": int(data.shape[1]),
        "columns": int(data.shape[2]),
        "kind": kind,
        "window": window,
        "files": uids,
        "bitsStored": int(first.get("BitsStored", 8)),
        "rescaled": slope != 1 or intercept != 0,
    }
    with open(out + ".json", "w") as fh:
        json.dump(meta, fh)


def seg(out, seg_path, paths):
    import highdicom as hd

    s = hd.seg.segread(seg_path)
    src = ordered(paths)
    rows, cols = int(s.Rows), int(s.Columns)
    numbers = [int(x.SegmentNumber) for x in s.SegmentSequence]
    if len(src) == 1 and int(src[0][1].get("NumberOfFrames", 1) or 1) > 1:
        d = src[0][1]
        n = int(d.NumberOfFrames)
        frames = list(range(1, n + 1))
        # Frames without any mask are not in the SEG: ask for those that are, one at a time.
        labels = np.zeros((n, rows, cols), np.uint8)
        for k in frames:
            try:
                px = s.get_pixels_by_source_frame(
                    source_sop_instance_uid=str(d.SOPInstanceUID), source_frame_numbers=[k], segment_numbers=numbers, combine_segments=True, skip_overlap_checks=True
                )
            except (ValueError, KeyError):
                continue
            labels[k - 1] = px[0]
    else:
        labels = np.zeros((len(src), rows, cols), np.uint8)
        for k, (_, d) in enumerate(src):
            try:
                px = s.get_pixels_by_source_instance(
                    source_sop_instance_uids=[str(d.SOPInstanceUID)], segment_numbers=numbers, combine_segments=True, skip_overlap_checks=True
                )
            except (ValueError, KeyError):
                continue
            labels[k] = px[0]
    labels.tofile(out + ".bin")
    segments = [
        {"number": int(x.SegmentNumber), "label": str(x.SegmentLabel), "lab": [int(v) for v in x.get("RecommendedDisplayCIELabValue", [])]}
        for x in s.SegmentSequence
    ]
    meta = {
        "frames": int(labels.shape[0]),
        "rows": rows,
        "columns": cols,
        "segments": segments,
        "sopClass": str(s.SOPClassUID),
        "study": str(s.StudyInstanceUID),
        "sourceStudy": str(src[0][1].StudyInstanceUID),
        "referencedSeries": str(s.ReferencedSeriesSequence[0].SeriesInstanceUID),
        "sourceSeries": str(src[0][1].SeriesInstanceUID),
    }
    with open(out + ".json", "w") as fh:
        json.dump(meta, fh)


def make_zip(out, entries):
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for e in entries:
            name, path = e.split("=", 1)
            z.write(path, name)


def patient(path):
    d = pydicom.dcmread(path, stop_before_pixels=True)
    print(json.dumps({"name": str(d.get("PatientName", "")), "id": str(d.get("PatientID", ""))}))


if __name__ == "__main__":
    cmd, *rest = sys.argv[1:]
    if cmd == "pixels":
        pixels(rest[0], rest[1:])
    elif cmd == "seg":
        seg(rest[0], rest[1], rest[2:])
    elif cmd == "zip":
        make_zip(rest[0], rest[1:])
    elif cmd == "patient":
        patient(rest[0])
    else:
        sys.exit(f"unknown command {cmd}")
