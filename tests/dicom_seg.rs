//! DICOM Segmentation writing (`medseg::io::dicom::seg`) against real readers: SEGs of
//! real sources from the conformance corpus, as MedSeg opens them (`DicomImport`) — a CT series (5 slices, the geometry path),
//! the same series without positions, an ultrasound cine (30 frames, no Frame of
//! Reference) — with two segments of known masks each, read back by highdicom
//! (tests/dicom/seg_check.py: masks per source frame equal ours on every frame, labels,
//! colours, references, copied patient/study attributes, plane positions) and verified
//! by dicom3tools' dciodvfy (no errors; its warnings are printed).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use std::collections::HashMap;

use medseg::app::dicom::{DicomImport, DicomOpening};
use medseg::io::dicom::seg::{SegOptions, Segment, write_seg};
use medseg::io::dicom::{DicomFile, DicomSource};

/// A scratch folder for one case's files, emptied first.
fn scratch(name: &str) -> PathBuf {
    common::fresh_dir("dicom-seg", name)
}

fn read(path: &Path) -> DicomFile {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    DicomFile::read(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `DicomSource` MedSeg makes of these files (the series assembly: slices sorted
/// along the normal, a multi-frame file's frames in order), and the files in the order
/// its frames refer to them.
fn product_source(paths: &[PathBuf]) -> (DicomSource, Vec<PathBuf>) {
    let mut import = DicomImport::new();
    let mut path_of = HashMap::new();
    for p in paths {
        let bytes = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        import
            .add(&p.display().to_string(), &bytes)
            .expect("a DICOM file");
        path_of.insert(read(p).meta.sop_instance_uid, p.clone());
    }
    let Ok(DicomOpening::Opened(doc)) = import.open("test", None) else {
        panic!("the files open as one document");
    };
    let source = doc.dicom().expect("opened from DICOM").clone();
    let mut sorted: Vec<PathBuf> = source
        .frames
        .iter()
        .map(|f| path_of[&f.sop_instance_uid].clone())
        .collect();
    sorted.dedup();
    (source, sorted)
}

fn rectangle(rows: usize, cols: usize, r: (usize, usize), c: (usize, usize)) -> Vec<u8> {
    let mut m = vec![0; rows * cols];
    for y in r.0..r.1.min(rows) {
        for x in c.0..c.1.min(cols) {
            m[y * cols + x] = 1;
        }
    }
    m
}

fn disc(rows: usize, cols: usize, centre: (f64, f64), radius: f64) -> Vec<u8> {
    (0..rows * cols)
        .map(|i| {
            let (y, x) = ((i / cols) as f64, (i % cols) as f64);
            u8::from((y - centre.0).powi(2) + (x - centre.1).powi(2) <= radius * radius)
        })
        .collect()
}

/// Two segments over `frames` frames: a rectangle moving down on the first 3/4 of the
/// frames (one frame `None`, one all zero), a growing disc on every other frame from the
/// second; they overlap on some frames; the last frame has no mask at all.
fn segments(frames: usize, rows: usize, cols: usize) -> Vec<Segment> {
    let unit = rows.min(cols) / 8;
    let first = (0..frames)
        .map(|f| match f {
            _ if f == 1 => None,
            _ if f == 2 => Some(vec![0; rows * cols]),
            _ if f < (3 * frames).div_ceil(4) => Some(rectangle(
                rows,
                cols,
                (unit + f, 4 * unit + f),
                (unit, 5 * unit),
            )),
            _ => None,
        })
        .collect();
    let second = (0..frames)
        .map(|f| {
            (f % 2 == 1 && f + 1 < frames).then(|| {
                disc(
                    rows,
                    cols,
                    (rows as f64 / 2.0, cols as f64 / 2.0 - 1.0),
                    unit as f64 + f as f64 * 0.5,
                )
            })
        })
        .collect();
    vec![
        Segment {
            label: "Läsion – links".into(),
            colour: [230, 25, 75],
            masks: first,
        },
        Segment {
            label: "Liver".into(),
            colour: [0, 130, 200],
            masks: second,
        },
    ]
}

/// Writes the SEG and what it should hold, runs highdicom and dciodvfy on it.
fn check(name: &str, source: &DicomSource, sources: &[PathBuf], kind: &str, geometry: bool) {
    let dir = scratch(name);
    let segs = segments(source.frames.len(), source.rows, source.columns);
    let options = SegOptions::new("MedSAM2", "20261206", "134501.250");
    let t = std::time::Instant::now();
    let bytes = write_seg(source, &segs, &options).expect("write_seg");
    eprintln!(
        "{name}: {} frames {}×{} → SEG {} bytes in {:.1} ms",
        source.frames.len(),
        source.rows,
        source.columns,
        bytes.len(),
        t.elapsed().as_secs_f64() * 1e3
    );
    let seg_path = dir.join("seg.dcm");
    std::fs::write(&seg_path, &bytes).unwrap();

    // Our own reader opens it too.
    let back = DicomFile::read(&bytes).expect("read our SEG back");
    assert_eq!(back.meta.modality.as_deref(), Some("SEG"));

    let mut expected = Vec::new();
    for f in 0..source.frames.len() {
        for s in &segs {
            match &s.masks[f] {
                Some(m) => expected.extend_from_slice(m),
                None => expected.resize(expected.len() + source.rows * source.columns, 0),
            }
        }
    }
    std::fs::write(dir.join("expected.bin"), &expected).unwrap();
    let json = serde_json::json!({
        "sources": sources,
        "kind": kind,
        "geometry": geometry,
        "rows": source.rows,
        "columns": source.columns,
        "segments": segs.iter().map(|s| serde_json::json!({"label": s.label, "colour": s.colour})).collect::<Vec<_>>(),
        "frames": source.frames.iter().map(|f| serde_json::json!({
            "sop_instance_uid": f.sop_instance_uid, "frame_number": f.frame_number,
        })).collect::<Vec<_>>(),
    });
    std::fs::write(dir.join("expected.json"), json.to_string()).unwrap();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dicom/seg_check.py");
    let out = Command::new(common::dicom_python())
        .arg(&script)
        .arg(&seg_path)
        .arg(dir.join("expected.json"))
        .arg(dir.join("expected.bin"))
        .output()
        .expect("run seg_check.py");
    assert!(
        out.status.success(),
        "{name}: highdicom check failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprint!("{name}: highdicom {}", String::from_utf8_lossy(&out.stdout));

    let out = Command::new("dciodvfy")
        .arg(&seg_path)
        .output()
        .expect("run dciodvfy (scripts/setup.sh installs dicom3tools)");
    let report =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    for line in report.lines().filter(|l| l.starts_with("Warning")) {
        eprintln!("{name}: dciodvfy {line}");
    }
    let errors: Vec<&str> = report.lines().filter(|l| l.starts_with("Error")).collect();
    assert!(
        out.status.success() && errors.is_empty(),
        "{name}: dciodvfy found errors (exit {:?}):\n{report}",
        out.status.code()
    );
    if std::env::var_os("MEDSEG_KEEP_SEG").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

fn ct_series() -> Vec<PathBuf> {
    let (_, test_files) = common::dicom_corpus();
    let dir = test_files.join("dicomdirtests/98892001/CT5N");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    assert_eq!(paths.len(), 5, "CT5N has 5 slices");
    paths
}

#[test]
fn ct_series_seg_has_plane_positions_and_reads_back() {
    let (source, sorted) = product_source(&ct_series());
    assert!(source.frame_of_reference_uid.is_some());
    check("ct", &source, &sorted, "instances", true);
}

#[test]
fn ct_series_without_positions_is_pixel_aligned() {
    let (mut source, sorted) = product_source(&ct_series());
    for f in &mut source.frames {
        f.position = None;
    }
    check("ct-nopos", &source, &sorted, "instances", false);
}

#[test]
fn ultrasound_cine_seg_references_frames() {
    let (_, test_files) = common::dicom_corpus();
    let path = test_files.join("examples_ybr_color.dcm");
    let (source, _) = product_source(std::slice::from_ref(&path));
    assert_eq!(source.frames.len(), 30);
    assert!(source.frame_of_reference_uid.is_none());
    check("cine", &source, &[path], "frames", false);
}

#[test]
fn enhanced_ct_seg_has_positions_and_frame_numbers() {
    let (data, _) = common::dicom_corpus();
    let path = data.join("eCT_Supplemental.dcm");
    let (source, _) = product_source(std::slice::from_ref(&path));
    assert_eq!(source.frames.len(), 2);
    assert!(source.frames.iter().all(|f| f.position.is_some()));
    // Two frames: the second segment has no mask on either (it stays in the Segment
    // Sequence with no frame).
    check("enhanced-ct", &source, &[path], "frames", true);
}
