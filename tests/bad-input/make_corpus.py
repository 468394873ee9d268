#!/usr/bin/env python3
"""Writes the bad-input corpus next to this script: small damaged files of every format
MedSeg reads, each the subject of a case in cases.tsv. Standard library only, and
deterministic (fixed zip timestamps, gzip mtime 0), so rerunning it reproduces the
committed bytes:

    python3 tests/bad-input/make_corpus.py

Files that must be large to make their point (a gzip bomb) are not here: tests/bad_input.rs
builds them at run time from a few bytes.
"""

import gzip
import io
import json
import os
import shutil
import struct
import zipfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "files")


def put(name, data):
    path = os.path.join(OUT, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def zip_of(entries, method=zipfile.ZIP_STORED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = method
            z.writestr(info, data)
    return buf.getvalue()


def with_declared_size(archive, name, size):
    """`archive` with the uncompressed size of entry `name` set to `size` in its local and
    central headers (APPNOTE 4.3.7 and 4.3.12: the size field, the name length, the name)."""
    out = bytearray(archive)
    for sig, size_at, name_len_at, name_at in ((b"PK\x03\x04", 22, 26, 30), (b"PK\x01\x02", 24, 28, 46)):
        i = out.find(sig)
        while i >= 0:
            n = struct.unpack_from("<H", out, i + name_len_at)[0]
            if out[i + name_at : i + name_at + n] == name:
                struct.pack_into("<I", out, i + size_at, size)
            i = out.find(sig, i + 4)
    return bytes(out)


def gz(data):
    return gzip.compress(data, mtime=0)


# --- safetensors ---------------------------------------------------------------------


def safetensors(header, data=b""):
    text = json.dumps(header).encode() if not isinstance(header, bytes) else header
    return struct.pack("<Q", len(text)) + text + data


def f32s(values):
    return struct.pack(f"<{len(values)}f", *values)


def make_safetensors():
    valid = safetensors(
        {"w": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64]}},
        f32s([float(i) for i in range(16)]),
    )
    put("safetensors/empty.safetensors", b"")
    put("safetensors/truncated.safetensors", valid[: len(valid) - 20])
    put("safetensors/short-length-prefix.safetensors", b"\x10\x00\x00")
    # The 8-byte length says 1 TiB of header; the file holds two bytes of it.
    put("safetensors/header-beyond-file.safetensors", struct.pack("<Q", 1 << 40) + b"{}")
    put("safetensors/header-not-json.safetensors", safetensors(b"this is not json"))
    put(
        "safetensors/offsets-out-of-range.safetensors",
        safetensors({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 800]}}, f32s([1, 2])),
    )
    put(
        "safetensors/offsets-overlap.safetensors",
        safetensors(
            {
                "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
            },
            f32s([1, 2, 3]),
        ),
    )
    put(
        "safetensors/unknown-dtype.safetensors",
        safetensors({"w": {"dtype": "Q7", "shape": [2], "data_offsets": [0, 8]}}, f32s([1, 2])),
    )
    put(
        "safetensors/shape-overflow.safetensors",
        safetensors(
            {"w": {"dtype": "F32", "shape": [1 << 62, 1 << 62, 16], "data_offsets": [0, 8]}},
            f32s([1, 2]),
        ),
    )
    put(
        "safetensors/data-size-mismatch.safetensors",
        safetensors({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, f32s([1, 2])),
    )
    put(
        "safetensors/terabyte-tensor.safetensors",
        safetensors(
            {"w": {"dtype": "F32", "shape": [1 << 20, 1 << 20], "data_offsets": [0, 4 << 40]}},
            f32s([1, 2]),
        ),
    )
    put(
        "safetensors/not-a-model.safetensors",
        safetensors({"weights_of_nothing": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, f32s([1, 2])),
    )


# --- PyTorch checkpoints ---------------------------------------------------------------


class Pickle:
    """Protocol-2 pickle opcodes, as torch.save writes a state dict."""

    def __init__(self):
        self.b = bytearray(b"\x80\x02")

    def op(self, code):
        self.b += code
        return self

    def glob(self, module, name):
        return self.op(b"c" + module.encode() + b"\n" + name.encode() + b"\n")

    def str(self, s):
        e = s.encode()
        return self.op(b"X" + struct.pack("<I", len(e)) + e)

    def int(self, v):
        return self.op(b"J" + struct.pack("<i", v))

    def ints(self, vs):
        self.op(b"(")
        for v in vs:
            self.int(v)
        return self.op(b"t")

    def tensor(self, storage_key, numel, size, stride):
        self.glob("torch._utils", "_rebuild_tensor_v2")
        self.op(b"((").str("storage").glob("torch", "FloatStorage").str(storage_key).str("cpu").int(numel)
        self.op(b"tQ")
        self.int(0).ints(size).ints(stride).op(b"\x89")
        self.glob("collections", "OrderedDict").op(b")R")
        return self.op(b"tR")

    def done(self):
        return bytes(self.b + b".")


def state_dict_pickle(storage_numel=6):
    p = Pickle().op(b"}").op(b"(")
    p.str("layer.weight").tensor("0", storage_numel, [2, 3], [3, 1])
    p.op(b"u")
    return p.done()


def checkpoint(pickle, storages, extra=()):
    entries = [("archive/data.pkl", pickle), ("archive/byteorder", b"little")]
    entries += [(f"archive/data/{k}", v) for k, v in storages]
    entries += [("archive/version", b"3\n")] + list(extra)
    return zip_of(entries)


def make_pytorch():
    six = f32s([0, 1, 2, 3, 4, 5])
    valid = checkpoint(state_dict_pickle(), [("0", six)])
    put("pytorch/truncated.pth", valid[: len(valid) // 2])
    put("pytorch/no-data-pkl.pth", zip_of([("archive/version", b"3\n"), ("archive/data/0", six)]))
    put("pytorch/garbage-pickle.pth", checkpoint(b"\x80\x02" + bytes(range(0x30, 0x50)) * 3, []))
    put("pytorch/unknown-opcode.pth", checkpoint(b"\x80\x02\xff\x00.", []))
    put("pytorch/storage-missing.pt", checkpoint(state_dict_pickle(), []))
    put("pytorch/storage-too-short.pt", checkpoint(state_dict_pickle(), [("0", f32s([0, 1]))]))
    put("pytorch/big-endian.pth", zip_of([("archive/data.pkl", state_dict_pickle()), ("archive/byteorder", b"big"), ("archive/data/0", six)]))
    put("pytorch/no-tensors.pth", checkpoint(Pickle().op(b"}").done(), []))
    # 300 000 nested one-element tuples: the VM is a loop, but anything that walks or
    # drops the value recursively would overflow the stack. Deflated, the pickle is ~1 KB.
    deep = b"\x80\x02)" + b"\x85" * 300_000 + b"."
    put("pytorch/deep-nesting.pth", zip_of([("archive/data.pkl", deep), ("archive/version", b"3\n")], zipfile.ZIP_DEFLATED))
    # Deflated entries whose headers lie about the inflated size: 1 MB of zeros declared
    # as 100 bytes (a zip bomb is stopped at the declared size), and ~1 KB of deflate
    # declared as 1 TB (more than deflate can expand to: refused before allocating).
    zeros = zip_of([("archive/data.pkl", bytes(1_000_000)), ("archive/version", b"3\n")], zipfile.ZIP_DEFLATED)
    put("pytorch/deflate-past-declared.pth", with_declared_size(zeros, b"archive/data.pkl", 100))
    put("pytorch/deflate-declared-terabyte.pth", with_declared_size(zeros, b"archive/data.pkl", 0xFFFF_FFF0))
    # A zip that is not a checkpoint at all (a zip of text).
    put("pytorch/zip-of-text.pt", zip_of([("readme.txt", b"hello")]))


# --- NIfTI ---------------------------------------------------------------------------------


def nifti(dims, datatype=2, bitpix=8, sizeof_hdr=348, vox_offset=352.0, data=b"", magic=b"n+1\0"):
    h = bytearray(352)
    struct.pack_into("<i", h, 0, sizeof_hdr)
    padded = list(dims) + [1] * (8 - len(dims))
    struct.pack_into("<8h", h, 40, *padded)
    struct.pack_into("<hh", h, 70, datatype, bitpix)
    struct.pack_into("<8f", h, 76, 1, 1, 1, 1, 1, 1, 1, 1)
    struct.pack_into("<f", h, 108, vox_offset)
    struct.pack_into("<f", h, 112, 1.0)  # scl_slope
    h[344:348] = magic
    return bytes(h) + data


def make_nifti():
    good = nifti([3, 8, 8, 4], data=bytes(256))
    put("nifti/truncated-header.nii", good[:100])
    put("nifti/bad-sizeof-hdr.nii", nifti([3, 8, 8, 4], sizeof_hdr=999, data=bytes(256)))
    put("nifti/dim0-out-of-range.nii", nifti([9, 8, 8, 4], data=bytes(256)))
    put("nifti/zero-dim.nii", nifti([3, 8, 0, 4]))
    put("nifti/negative-dim.nii", nifti([3, 8, -8, 4], data=bytes(256)))
    # 32767³ uint8 voxels promised, none present: refused from the header alone.
    put("nifti/huge-dims.nii", nifti([3, 32767, 32767, 32767]))
    # 64³ promised, 100 bytes present.
    put("nifti/dims-vs-little-data.nii", nifti([3, 64, 64, 64], data=bytes(100)))
    put("nifti/unknown-datatype.nii", nifti([3, 8, 8, 4], datatype=1234, bitpix=8, data=bytes(256)))
    put("nifti/vox-offset-beyond-file.nii", nifti([3, 8, 8, 4], vox_offset=1.0e9, data=bytes(256)))
    put("nifti/nan-vox-offset.nii", nifti([3, 8, 8, 4], vox_offset=float("nan"), data=bytes(256)))
    put("nifti/not-nifti-magic.nii", nifti([3, 8, 8, 4], magic=b"xyz\0", data=bytes(256)))
    whole = gz(nifti([3, 32, 32, 16], data=bytes(range(256)) * 64))
    put("nifti/truncated.nii.gz", whole[: len(whole) // 2])
    put("nifti/gzip-of-text.nii.gz", gz(b"this is text, gzipped\n"))
    put("nifti/five-d.nii", nifti([5, 4, 4, 2, 3, 2], data=bytes(4 * 4 * 2 * 3 * 2)))
    put("nifti/empty.nii.gz", b"")


# --- npz / npy -----------------------------------------------------------------------------


def npy(descr, shape, data, magic=b"\x93NUMPY", header=None):
    if header is None:
        shape_text = "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
        header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape_text)
    text = header.encode()
    pad = 64 - (10 + len(text) + 1) % 64
    text += b" " * pad + b"\n"
    return magic + b"\x01\x00" + struct.pack("<H", len(text)) + text + data


def make_npz():
    put("npz/not-a-zip.npz", b"this is not a zip archive\n")
    put("npz/no-imgs.npz", zip_of([("gts.npy", npy("|u1", [2, 4, 4], bytes(32)))]))
    put("npz/imgs-1d.npz", zip_of([("imgs.npy", npy("|u1", [16], bytes(16)))]))
    put("npz/imgs-2d.npz", zip_of([("imgs.npy", npy("|u1", [8, 8], bytes(64)))]))
    put("npz/imgs-rgb.npz", zip_of([("imgs.npy", npy("|u1", [8, 8, 3], bytes(192)))]))
    put("npz/imgs-4d.npz", zip_of([("imgs.npy", npy("|u1", [2, 2, 4, 4], bytes(64)))]))
    put("npz/bad-npy-magic.npz", zip_of([("imgs.npy", npy("|u1", [2, 4, 4], bytes(32), magic=b"\x93NUMPX"))]))
    put("npz/bad-npy-header.npz", zip_of([("imgs.npy", npy("|u1", [2, 4, 4], bytes(32), header="{'descr': '|u1', 'shape': (2, 4"))]))
    put("npz/object-dtype.npz", zip_of([("imgs.npy", npy("|O", [2, 4, 4], bytes(32)))]))
    put("npz/truncated-data.npz", zip_of([("imgs.npy", npy("|u1", [2, 64, 64], bytes(100)))]))
    put("npz/huge-shape.npz", zip_of([("imgs.npy", npy("<f4", [65536, 65536, 65536], bytes(64)))]))
    # A format-2 preamble whose header length claims 4 GB (found by fuzzing: the npy
    # reader allocated it before reading).
    put("npz/huge-npy-header.npz", zip_of([("imgs.npy", b"\x93NUMPY\x02\x00" + struct.pack("<I", 0xF0000000) + b"{'descr': '<f4'}\n")]))


# --- images --------------------------------------------------------------------------------


def png(width, height, rgb=None):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    raw = rgb if rgb is not None else b"".join(b"\x00" + bytes(3 * width) for _ in range(height))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def make_images():
    put("image/text-named.png", b"this is a text file, not an image\n")
    good = png(64, 48)
    put("image/truncated.png", good[: len(good) - 30])
    # The header claims 100000 x 100000 pixels (30 GB of RGB); the data is 16 bytes.
    put("image/huge-dimensions.png", png(100000, 100000, rgb=bytes(16)))
    put("image/zero-width.png", png(0, 48, rgb=b""))
    # SOI, a JFIF APP0 and the start of a quantisation table, then nothing.
    put("image/truncated.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xdb\x00\x43\x00" + bytes(10))
    put("image/garbage.webp", b"RIFF" + struct.pack("<I", 40) + b"WEBPVP8 " + struct.pack("<I", 28) + bytes(range(28)))
    put("image/empty.png", b"")


# --- frame folders -------------------------------------------------------------------------


def make_frames():
    put("frames/empty/.gitkeep", b"")
    put("frames/only-text/notes.txt", b"no frames here\n")
    put("frames/mixed-sizes/frame_000.png", png(64, 48))
    put("frames/mixed-sizes/frame_001.png", png(64, 48))
    put("frames/mixed-sizes/frame_002.png", png(32, 32))
    put("frames/non-image-frame/frame_000.png", png(64, 48))
    put("frames/non-image-frame/frame_001.png", png(64, 48))
    put("frames/non-image-frame/frame_002.png", b"not a png\n")
    put("frames/first-unreadable/frame_000.png", b"not a png\n")
    put("frames/first-unreadable/frame_001.png", png(64, 48))


# --- DICOM -----------------------------------------------------------------------------------

EXPLICIT_LE = "1.2.840.10008.1.2.1"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"


def element(group, elem, vr, value):
    if isinstance(value, str):
        value = value.encode()
        if len(value) % 2:
            value += b"\0" if vr == "UI" else b" "
    vr_b = vr.encode()
    if vr in ("OB", "OW", "SQ", "UN", "UT", "UC", "UR"):
        return struct.pack("<HH", group, elem) + vr_b + b"\0\0" + struct.pack("<I", len(value)) + value
    return struct.pack("<HH", group, elem) + vr_b + struct.pack("<H", len(value)) + value


def us(v):
    return struct.pack("<H", v)


def dicom(
    sop_class=CT_IMAGE, syntax=EXPLICIT_LE, rows=8, columns=8, pixels=None, with_pixels=True, extra=b"", deflate=False, fragment=None
):
    meta_body = (
        element(0x0002, 0x0001, "OB", b"\0\1")
        + element(0x0002, 0x0002, "UI", sop_class)
        + element(0x0002, 0x0003, "UI", "1.2.826.0.1.3680043.10.1.1")
        + element(0x0002, 0x0010, "UI", syntax)
    )
    meta = element(0x0002, 0x0000, "UL", struct.pack("<I", len(meta_body))) + meta_body
    body = (
        element(0x0008, 0x0016, "UI", sop_class)
        + element(0x0008, 0x0018, "UI", "1.2.826.0.1.3680043.10.1.1")
        + element(0x0008, 0x0060, "CS", "CT" if sop_class == CT_IMAGE else "SR")
        + element(0x0020, 0x000D, "UI", "1.2.826.0.1.3680043.10.1.2")
        + element(0x0020, 0x000E, "UI", "1.2.826.0.1.3680043.10.1.3")
        + extra
    )
    if sop_class == CT_IMAGE:
        body += (
            element(0x0028, 0x0002, "US", us(1))
            + element(0x0028, 0x0004, "CS", "MONOCHROME2")
            + element(0x0028, 0x0010, "US", us(rows))
            + element(0x0028, 0x0011, "US", us(columns))
            + element(0x0028, 0x0100, "US", us(16))
            + element(0x0028, 0x0101, "US", us(12))
            + element(0x0028, 0x0102, "US", us(11))
            + element(0x0028, 0x0103, "US", us(0))
        )
    if fragment is not None:  # one encapsulated frame: an empty offset table, one fragment (PS3.5 A.4)
        item = lambda data: struct.pack("<HHI", 0xFFFE, 0xE000, len(data)) + data
        body += struct.pack("<HH", 0x7FE0, 0x0010) + b"OB\0\0" + struct.pack("<I", 0xFFFFFFFF)
        body += item(b"") + item(fragment + b"\0" * (len(fragment) % 2)) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    elif with_pixels:
        data = pixels if pixels is not None else bytes(2 * rows * columns)
        body += element(0x7FE0, 0x0010, "OW", data)
    if deflate:  # Deflated Explicit VR Little Endian: the data set as raw deflate (PS3.5 A.5)
        packer = zlib.compressobj(9, zlib.DEFLATED, -15)
        body = packer.compress(body) + packer.flush()
    return bytes(128) + b"DICM" + meta + body


def make_dicom():
    put("dicom/valid-ct.dcm", dicom())  # the generator's check: this one opens
    put("dicom/not-dicom.dcm", b"this is not a DICOM file\n" * 8)
    whole = dicom()
    put("dicom/truncated.dcm", whole[: len(whole) - 60])
    put("dicom/no-pixel-data.dcm", dicom(with_pixels=False))
    put("dicom/rows-columns-huge.dcm", dicom(rows=65535, columns=65535, pixels=bytes(128)))
    # 4096 x 4096 16-bit pixels promised (32 MiB, under the limit), 128 bytes present.
    put("dicom/rows-columns-vs-little-data.dcm", dicom(rows=4096, columns=4096, pixels=bytes(128)))
    put("dicom/unsupported-transfer-syntax.dcm", dicom(syntax="1.2.840.10008.1.2.4.100", pixels=bytes(128)))
    put("dicom/structured-report.dcm", dicom(sop_class=BASIC_TEXT_SR, with_pixels=False))
    put("dicom/zero-rows.dcm", dicom(rows=0, columns=8, pixels=b""))
    # A text element (UT, 4-byte length) declaring 3 GB in a file of a few hundred bytes,
    # inside a sequence: the DICOM reader would size a buffer by it before reading.
    huge_text = struct.pack("<HH", 0x0040, 0xA160) + b"UT\0\0" + struct.pack("<I", 3_000_000_000) + b"text"
    item = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF) + huge_text
    sequence = struct.pack("<HH", 0x0040, 0xA730) + b"SQ\0\0" + struct.pack("<I", 0xFFFFFFFF) + item
    put("dicom/huge-element-length.dcm", dicom(extra=sequence))
    # The same inside a deflated data set, which the reader inflates first.
    put("dicom/deflated-huge-element-length.dcm", dicom(syntax="1.2.840.10008.1.2.1.99", extra=sequence, deflate=True))
    # In a data set, a tag of the item group that is no delimiter is a plain element to
    # dicom-rs, read by its length (found by fuzzing: (FFFE,DF0D) declaring 4.3 GB).
    odd_item_tag = struct.pack("<HHI", 0xFFFE, 0xDF0D, 3_000_000_000) + b"text"
    put("dicom/item-group-element-huge-length.dcm", dicom(extra=odd_item_tag))
    # dicom-object reads the file meta information up to its group length, in explicit VR
    # little endian, whatever the data set's encoding. Here that length covers one byte
    # more than group 0002, so it reads the big-endian data set's first element too, as
    # little endian: its length 10 (00 0A) as 2560, which puts the data set's start inside
    # the next value, on a header declaring 3 GB (found by fuzzing, in a deflated file).
    big_endian = "1.2.840.10008.1.2.2"
    meta_body = (
        element(0x0002, 0x0001, "OB", b"\0\1")
        + element(0x0002, 0x0002, "UI", CT_IMAGE)
        + element(0x0002, 0x0003, "UI", "1.2.826.0.1.3680043.10.1.1")
        + element(0x0002, 0x0010, "UI", big_endian)
    )
    meta = element(0x0002, 0x0000, "UL", struct.pack("<I", len(meta_body) + 1)) + meta_body
    creator = struct.pack(">HH", 0x0009, 0x0010) + b"LO" + struct.pack(">H", 10) + b"MEDSEG    "
    hidden = struct.pack(">HH", 0x0040, 0xA160) + b"UT\0\0" + struct.pack(">I", 3_000_000_000) + b"text"
    # dicom-object's data set starts 8 + 2560 bytes into this one; the OB value starts 30 in.
    private = bytes(8 + 2560 - 30) + hidden
    body = creator + struct.pack(">HH", 0x0009, 0x1010) + b"OB\0\0" + struct.pack(">I", len(private)) + private
    put("dicom/meta-group-length-past-group.dcm", bytes(128) + b"DICM" + meta + body)
    # A JPEG-LS (lossless) frame of 16 x 16 16-bit samples whose scan data is corrupt: its
    # decoded error values grow past anything a valid scan holds until pure_jpegls 2.0.0
    # overflowed i32 (a panic in debug builds, wrong pixels in release). Found by mutating
    # the scan of a frame pure_jpegls encoded; vendor/pure_jpegls now refuses the value.
    corrupt_scan = bytes.fromhex(
        "ffd8fff7000b100010001001011100ffda00080101000000000d0e00130000000c2200003700000063000042"
        "00182d490f000051157a000000000017000000002e002f00003c4b0056006820560000002e00000070712e00"
        "193200760000120000160000001f00493600007a0001005600185700404c7f0000386c3406000069050a000a"
        "00070000783003000000000000630000103e0000382d1a00000010660000516c7c7c12000000451d781d1b00"
        "002d58015d63006f00003a00005e00006b00ffd9"
    )
    put("dicom/jpeg-ls-corrupt-scan.dcm", dicom(syntax="1.2.840.10008.1.2.4.80", rows=16, columns=16, fragment=corrupt_scan))


# --- valid inputs the argument-only cases run against ---------------------------------------


def make_valid():
    # 32 x 32 x 4 int16 with a bright square in the middle of each slice.
    voxels = bytearray()
    for _ in range(4):
        for j in range(32):
            for i in range(32):
                voxels += struct.pack("<h", 400 if 10 <= i < 22 and 10 <= j < 22 else -100)
    put("valid/volume.nii", nifti([3, 32, 32, 4], datatype=4, bitpix=16, data=bytes(voxels)))
    mask = bytes(1 if 10 <= i < 22 and 10 <= j < 22 else 0 for _ in range(4) for j in range(32) for i in range(32))
    put("valid/mask.nii", nifti([3, 32, 32, 4], data=mask))


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    make_valid()
    make_safetensors()
    make_pytorch()
    make_nifti()
    make_npz()
    make_images()
    make_frames()
    make_dicom()
    count = sum(len(files) for _, _, files in os.walk(OUT))
    print(f"wrote {count} files under {OUT}")


if __name__ == "__main__":
    main()
