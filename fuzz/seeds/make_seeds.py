"""Writes the small seed inputs of the fuzz targets (fuzz/seeds/TARGET/*), made by the
formats' own libraries: torch.save, nibabel, numpy, Pillow, and the safetensors layout
written out by hand from its spec (8-byte header length, JSON, data). Run once with the
reference environment of ../shared/reference/install.sh:
    ~/.cache/medseg/ref/venv/bin/python fuzz/seeds/make_seeds.py
The DICOM seeds are not kept here: scripts/fuzz.sh takes pydicom's small test files from
the DICOM environment scripts/setup.sh installs."""
import io, json, os, struct, zipfile
import numpy as np
import torch, nibabel as nib
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    os.makedirs(os.path.join(HERE, target), exist_ok=True)
    with open(os.path.join(HERE, target, name), "wb") as f:
        f.write(data)


def safetensors(tensors):
    header, blobs, off = {}, [], 0
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


rng = np.random.default_rng(0)
torch.manual_seed(0)
f32 = rng.standard_normal((2, 3)).astype("<f4")
put("safetensors", "f32_f16_bf16.safetensors", safetensors({
    "a.weight": ("F32", [2, 3], f32.tobytes()),
    "b.bias": ("F16", [4], np.arange(4, dtype="<f2").tobytes()),
    "c": ("BF16", [2], (np.array([1.0, -2.0], "<f4").view("<u4") >> 16).astype("<u2").tobytes()),
}))
h = json.dumps({"__metadata__": {"format": "pt"}, "x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
put("safetensors", "metadata.safetensors", struct.pack("<Q", len(h)) + h + np.float32(1).tobytes())

buf = io.BytesIO()
torch.save({"a.weight": torch.randn(2, 3), "b": torch.zeros(4, dtype=torch.float16),
            "c": torch.arange(6, dtype=torch.float64).reshape(2, 3)[:, 1]}, buf)
put("pytorch", "state_dict.pth", buf.getvalue())
buf = io.BytesIO()
torch.save({"model": {"w": torch.ones(3, 2).t()}, "epoch": 3}, buf)
put("pytorch", "nested_transposed.pt", buf.getvalue())

vol = rng.integers(-1000, 1000, size=(8, 6, 3)).astype(np.int16)
img = nib.Nifti1Image(vol, np.diag([0.8, 0.8, 2.5, 1]))
img.header.set_slope_inter(1.0, -1024.0)
put("nifti", "ct_int16.nii", img.to_bytes())
put("nifti", "ct_int16.nii.gz", __import__("gzip").compress(img.to_bytes(), mtime=0))
put("nifti", "mr_float32.nii", nib.Nifti1Image(rng.random((5, 4, 2)).astype(np.float32), np.eye(4)).to_bytes())
put("nifti", "slice_uint8.nii", nib.Nifti1Image(rng.integers(0, 255, (6, 5)).astype(np.uint8), np.eye(4)).to_bytes())

for name, kw, fn in [("ct.npz", dict(imgs=rng.integers(0, 255, (3, 8, 8)).astype(np.uint8),
                                       gts=np.zeros((3, 8, 8), np.uint8), spacing=np.array([1.0, 0.8, 0.8])),
                      np.savez_compressed),
                     ("float.npz", dict(imgs=rng.random((2, 4, 5)).astype(np.float32)), np.savez)]:
    b = io.BytesIO()
    fn(b, **kw)
    put("npz", name, b.getvalue())


def image_bytes(im, fmt, **kw):
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


rgb = Image.fromarray(rng.integers(0, 255, (12, 16, 3)).astype(np.uint8))
put("image", "rgb.png", image_bytes(rgb, "PNG"))
put("image", "grey16.png", image_bytes(Image.fromarray(rng.integers(0, 65535, (9, 7)).astype(np.uint16)), "PNG"))
put("image", "rgba.png", image_bytes(rgb.convert("RGBA"), "PNG"))
put("image", "palette.png", image_bytes(rgb.convert("P"), "PNG"))
put("image", "rgb.jpg", image_bytes(rgb, "JPEG", quality=80))
put("image", "progressive.jpg", image_bytes(rgb, "JPEG", progressive=True))
put("image", "rgb.webp", image_bytes(rgb, "WEBP", lossless=True))
put("image", "lossy.webp", image_bytes(rgb, "WEBP", quality=50))
put("frames", "three_frames", b"FRAME".join(image_bytes(rgb.rotate(a), "PNG") for a in (0, 90, 180)))
put("frames", "png_then_jpeg", image_bytes(rgb, "PNG") + b"FRAME" + image_bytes(rgb, "JPEG"))
# arguments: 3 bytes of frame size (width 1 + 4*b0, height 1 + 4*b1, 1 + b2 frames), then
# the --box, --point and --range texts a line each.
put("arguments", "typical", bytes([32, 24, 9]) + b"260,226,331,288\n40,30,1\n2,7\n")
put("arguments", "edges", bytes([0, 0, 0]) + b"-1e30,0,1e30,1\n0,0,0\n0,0\n")
print("seeds written under", HERE)
