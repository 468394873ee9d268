"""Writes a synthetic CT series folder from pydicom's CT_small.dcm: COUNT slices with
new SOP Instance UIDs, an oblique orientation (two rotations), positions stepped along
the normal by SPACING mm, distinct pixels per slice, and file names in shuffled order (so
that only the geometry can sort them). The corpus has no realistic CT series folder; this
one is real CT pixels in a real header, placed as a scanner would place them.

usage: make_ct_series.py OUT_DIR COUNT SPACING [ROWS]
"""
import math
import os
import random
import sys

import numpy as np
import pydicom
from pydicom.uid import generate_uid

out, count, spacing = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
size = int(sys.argv[4]) if len(sys.argv) > 4 else None
src = os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files", "CT_small.dcm")
base = pydicom.dcmread(src)
pixels = base.pixel_array.astype(np.int16)
if size:
    reps = (size + pixels.shape[0] - 1) // pixels.shape[0]
    pixels = np.tile(pixels, (reps, reps))[:size, :size]

a, b = math.radians(12.0), math.radians(-7.0)
row = np.array([math.cos(a), math.sin(a), 0.0])
col = np.array([-math.sin(a) * math.cos(b), math.cos(a) * math.cos(b), math.sin(b)])
normal = np.cross(row, col)
origin = np.array([-60.5, -85.25, 30.0])
series_uid = generate_uid()
names = [f"IM{n:04d}" for n in range(count)]
random.Random(7).shuffle(names)
os.makedirs(out, exist_ok=True)
for k in range(count):
    ds = base.copy()
    ds.SeriesInstanceUID = series_uid
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceNumber = k + 1
    ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*row, *col)]
    pos = origin + k * spacing * normal
    ds.ImagePositionPatient = [f"{v:.4f}" for v in pos]
    ds.SliceLocation = f"{pos @ normal:.4f}"
    ds.SliceThickness = f"{spacing}"
    ds.SeriesDescription = "synthetic oblique CT"
    slice_pixels = np.roll(pixels, 3 * k, axis=0) + np.int16(k)
    ds.Rows, ds.Columns = slice_pixels.shape
    ds.PixelData = slice_pixels.astype(np.int16).tobytes()
    ds.save_as(os.path.join(out, names[k]), enforce_file_format=True)
