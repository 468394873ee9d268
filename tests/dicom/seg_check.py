"""Reads a DICOM Segmentation written by MedSeg with highdicom and checks it against what
the Rust test meant to write (tests/dicom_seg.rs).

Usage: seg_check.py SEG.dcm EXPECTED.json EXPECTED.bin

EXPECTED.json: {"sources": [source file paths, document order], "kind": "volume" | "frames",
"segments": [{"label", "colour": [r, g, b]}], "frames": [{"sop_instance_uid",
"frame_number" (null for single-frame)}] one per document frame, "rows", "columns",
"geometry": true when the SEG must carry plane positions}.
EXPECTED.bin: uint8 [document frames, segments, rows, columns], 1 = inside.

Prints "ok" and exits 0 when every check passes; any failure raises. highdicom's own
warnings (a reference it cannot resolve, …) count as failures.
"""

import json
import logging
import sys

import numpy as np
import pydicom
import highdicom as hd
from highdicom.color import CIELabColor


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.records = []

    def emit(self, record):
        self.records.append(self.format(record))


def source_attr(ds, group, keyword, frame=None):
    """An attribute of a source: at the top level (a classic image), else in the frame's
    functional group, else in the shared one (an enhanced multi-frame image)."""
    if keyword in ds:
        return [float(v) for v in ds[keyword].value]
    for seq in (ds.PerFrameFunctionalGroupsSequence[frame - 1] if frame else None,
                ds.SharedFunctionalGroupsSequence[0]):
        if seq is not None and group in seq:
            return [float(v) for v in seq[group][0][keyword].value]
    raise KeyError(f"{keyword} not in the source")


def main():
    seg_path, json_path, bin_path = sys.argv[1:4]
    want = json.load(open(json_path))
    n_frames, n_seg = len(want["frames"]), len(want["segments"])
    rows, cols = want["rows"], want["columns"]
    masks = np.fromfile(bin_path, dtype=np.uint8).reshape(n_frames, n_seg, rows, cols)

    warnings = Collect()
    logging.getLogger("highdicom").addHandler(warnings)

    seg = hd.seg.segread(seg_path)
    src = [pydicom.dcmread(p, stop_before_pixels=True) for p in want["sources"]]
    first = src[0]

    # Identity: a new series and instance in the source's study.
    assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4", seg.SOPClassUID
    assert seg.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert seg.Modality == "SEG"
    assert seg.SegmentationType == "BINARY"
    assert seg.StudyInstanceUID == first.StudyInstanceUID
    assert seg.SeriesInstanceUID != first.SeriesInstanceUID
    assert all(seg.SOPInstanceUID != s.SOPInstanceUID for s in src)
    for uid in (seg.SeriesInstanceUID, seg.SOPInstanceUID):
        assert uid.startswith("2.25.") and len(uid) <= 64, uid
    if "FrameOfReferenceUID" in first:
        assert seg.FrameOfReferenceUID == first.FrameOfReferenceUID
    else:
        assert "FrameOfReferenceUID" not in seg

    # Privacy: the Type 2 Patient/General Study attributes, copied, and nothing else of
    # the patient (group 0010).
    copied = ["PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
              "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName"]
    for kw in copied:
        assert kw in seg, f"{kw} missing"
        assert str(seg.get(kw, "")) == str(first.get(kw, "")), (kw, seg.get(kw), first.get(kw))
    patient = sorted(pydicom.datadict.keyword_for_tag(e.tag) for e in seg if e.tag.group == 0x0010)
    assert patient == sorted(["PatientName", "PatientID", "PatientBirthDate", "PatientSex"]), patient

    # Segments: numbers, labels, colours (RGB back from the CIELab value), codes.
    assert list(seg.segment_numbers) == list(range(1, n_seg + 1)), seg.segment_numbers
    for i, s in enumerate(want["segments"], start=1):
        d = seg.get_segment_description(i)
        assert d.segment_label == s["label"], (d.segment_label, s["label"])
        rgb = CIELabColor.from_dicom_value(d.RecommendedDisplayCIELabValue).to_rgb()
        assert all(abs(a - b) <= 1 for a, b in zip(rgb, s["colour"])), (rgb, s["colour"])
        want_lab = CIELabColor.from_rgb(*s["colour"]).value
        assert tuple(d.RecommendedDisplayCIELabValue) == tuple(want_lab)
        assert d.algorithm_type.value == "SEMIAUTOMATIC"
        assert d.SegmentAlgorithmName == "MedSAM2"
        assert d.segmented_property_category.value == "85756007"
        assert d.segmented_property_type.value == "85756007"

    # References: the source series and every instance of it.
    refs = seg.ReferencedSeriesSequence
    assert len(refs) == 1 and refs[0].SeriesInstanceUID == first.SeriesInstanceUID
    instances = {s.SOPInstanceUID for s in src}
    assert {r.ReferencedSOPInstanceUID for r in refs[0].ReferencedInstanceSequence} == instances
    assert {u[2] for u in seg.get_source_image_uids()} == instances

    # Frames: one per (segment, document frame) with a pixel set, segment-major.
    non_empty = [(s, f) for s in range(n_seg) for f in range(n_frames) if masks[f, s].any()]
    assert int(seg.NumberOfFrames) == len(non_empty), (seg.NumberOfFrames, len(non_empty))
    overlap = bool(((masks != 0).sum(axis=1) > 1).any())
    assert seg.SegmentsOverlap == ("YES" if overlap else "NO")

    # Masks, by source frame, equal ours on every document frame (empty ones all zero).
    if want["kind"] == "frames":
        sop = want["frames"][0]["sop_instance_uid"]
        assert all(f["sop_instance_uid"] == sop for f in want["frames"])
        numbers = [f["frame_number"] for f in want["frames"]]
        got = seg.get_pixels_by_source_frame(
            source_sop_instance_uid=sop,
            source_frame_numbers=numbers,
            segment_numbers=list(range(1, n_seg + 1)),
            assert_missing_frames_are_empty=True,
        )
    else:
        got = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=[f["sop_instance_uid"] for f in want["frames"]],
            segment_numbers=list(range(1, n_seg + 1)),
            assert_missing_frames_are_empty=True,
        )
    want_px = masks.transpose(0, 2, 3, 1)
    assert got.shape == want_px.shape, (got.shape, want_px.shape)
    bad = np.argwhere((got != 0) != (want_px != 0))
    assert len(bad) == 0, f"{len(bad)} pixels differ, first at (frame, row, col, segment) {bad[0]}"

    # Geometry: a volume's SEG has the source's planes; highdicom makes a volume of it.
    pffg = seg.PerFrameFunctionalGroupsSequence
    if want["geometry"]:
        by_uid = {s.SOPInstanceUID: s for s in src}
        for item in pffg:
            ref = item.DerivationImageSequence[0].SourceImageSequence[0]
            s = by_uid[ref.ReferencedSOPInstanceUID]
            frame = int(ref.ReferencedFrameNumber) if "ReferencedFrameNumber" in ref else None
            pos = [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient]
            assert np.allclose(pos, source_attr(s, "PlanePositionSequence",
                                                "ImagePositionPatient", frame), atol=1e-4)
        shared = seg.SharedFunctionalGroupsSequence[0]
        iop = [float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient]
        assert np.allclose(iop, source_attr(first, "PlaneOrientationSequence",
                                            "ImageOrientationPatient"), atol=1e-6)
        spacing = [float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing]
        assert np.allclose(spacing, source_attr(first, "PixelMeasuresSequence", "PixelSpacing"),
                           atol=1e-6)
        vol = seg.get_volume(segment_numbers=list(range(1, n_seg + 1)))
        assert int((vol.array != 0).sum()) == int((masks != 0).sum()), "volume voxel count"
    else:
        for item in pffg:
            assert "PlanePositionSequence" not in item

    if warnings.records:
        raise AssertionError("highdicom warned:\n" + "\n".join(warnings.records))
    print("ok", seg_path, f"{len(non_empty)} frames, {n_seg} segments")


if __name__ == "__main__":
    main()
