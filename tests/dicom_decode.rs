//! Pixel parity with pydicom on the whole conformance corpus (pydicom-data and pydicom's
//! own test files): every file is read and decoded by MedSeg and by pydicom 3
//! (`tests/dicom/pydicom_frames.py`, same conventions: rescale, MONOCHROME1, palette, YBR →
//! RGB). Where pydicom decodes, MedSeg must give the same frame count and pixels (lossless
//! transfer syntaxes exactly, lossy JPEG / JPEG 2000 within mean |diff| ≤ 1 and max ≤ 8
//! grey levels) or a named "unsupported" error for a listed file; where pydicom cannot
//! (no Pixel Data, not DICOM, truncated, broken), MedSeg must give an error.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use medseg::io::dicom::pixels::{self, Samples};
use medseg::io::dicom::{DicomError, DicomFile};

/// Files pydicom decodes (with its C/C++ plug-ins) that MedSeg reports unsupported, by name:
/// colour JPEG-LS (the pure-Rust decoder reads one component), jpeg-decoder has no 12-bit DCT.
const UNSUPPORTED: &[&str] = &[
    "test_files/JPGExtended.dcm",
    "test_files/SC_rgb_jls_lossy_line.dcm",
    "test_files/SC_rgb_jls_lossy_sample.dcm",
];

/// Files where pydicom is wrong or refuses for a reason that does not touch the pixels:
/// MedSeg is compared with pydicom's output for the twin file (the same image).
const TWINS: &[(&str, &str, &str)] = &[
    // pydicom's apply_color_lut reads OW palette data of a big-endian file as
    // little-endian words (0x0100 for 1); the pixel indices are the twin's.
    (
        "data/OBXXXX1A_expb.dcm",
        "data/OBXXXX1A.dcm",
        "pydicom reads big-endian palette tables byte-swapped",
    ),
    (
        "data/OBXXXX1A_expb_2frame.dcm",
        "data/OBXXXX1A_2frame.dcm",
        "pydicom reads big-endian palette tables byte-swapped",
    ),
    // The file ends after the last fragment's complete codestream without the
    // sequence delimiter: pydicom drops the Pixel Data, dicom-rs keeps the 10 frames.
    (
        "data/emri_small_jpeg_2k_lossless_too_short.dcm",
        "data/emri_small_jpeg_2k_lossless.dcm",
        "no sequence delimiter after the last fragment",
    ),
];

/// Files pydicom reads that dicom-rs cannot parse (a named parse error in MedSeg).
const PARSE_FAILURES: &[&str] = &[
    // Explicit VR transfer syntax, implicit VR data set: pydicom falls back to implicit.
    "test_files/SC_rgb_jpeg.dcm",
];

/// Lossy transfer syntaxes: JPEG Baseline, Extended, JPEG 2000 (lossy). JPEG-LS
/// near-lossless is not one: pure_jpegls runs CharLS's (pydicom's) algorithm, exactly.
const LOSSY: &[&str] = &[
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.91",
];

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// `data/…` or `test_files/…`: the corpus folder's name and the path inside it.
fn short_name(path: &Path, roots: &[&Path]) -> String {
    for root in roots {
        if let Ok(rel) = path.strip_prefix(root) {
            let folder = if root.ends_with("data") && !root.ends_with("pydicom/data") {
                "data"
            } else {
                "test_files"
            };
            return format!("{folder}/{}", rel.display());
        }
    }
    path.display().to_string()
}

/// Mean and max |a − b| over the samples, in `unit`s.
fn diff_stats(a: impl Iterator<Item = f64>, b: impl Iterator<Item = f64>, unit: f64) -> (f64, f64) {
    let (mut sum, mut max, mut n) = (0.0, 0.0f64, 0usize);
    for (x, y) in a.zip(b) {
        let d = (x - y).abs() / unit;
        sum += d;
        max = max.max(d);
        n += 1;
    }
    (sum / n.max(1) as f64, max)
}

#[test]
fn decode_matches_pydicom_on_the_corpus() {
    let (data, test_files) = common::dicom_corpus();
    let mut paths = Vec::new();
    files_under(&data, &mut paths);
    files_under(&test_files, &mut paths);
    assert!(paths.len() > 200, "corpus has only {} files", paths.len());

    let out = std::env::temp_dir().join(format!("medseg-dicom-decode-{}", std::process::id()));
    std::fs::create_dir_all(&out).expect("temp dir");
    let list = out.join("list.txt");
    let text: String = paths.iter().map(|p| format!("{}\n", p.display())).collect();
    std::fs::write(&list, text).expect("write list");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dicom/pydicom_frames.py");
    let run = std::process::Command::new(common::dicom_python())
        .arg(&script)
        .arg(&out)
        .arg(&list)
        .output()
        .expect("run pydicom_frames.py");
    assert!(
        run.status.success(),
        "pydicom_frames.py: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let manifest: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).expect("manifest.json"))
            .expect("manifest JSON");
    assert_eq!(manifest.len(), paths.len());

    let roots = [data.as_path(), test_files.as_path()];
    let (mut exact, mut lossy_ok, mut refused_ok, mut unsupported_seen) =
        (0usize, 0usize, 0usize, BTreeSet::new());
    let mut worst_lossy = (0.0f64, 0.0f64, String::new(), String::new());
    let mut failures = Vec::new();
    let mut table = String::new();

    let names: Vec<String> = paths.iter().map(|p| short_name(p, &roots)).collect();
    let index_of = |name: &str| {
        names
            .iter()
            .position(|n| n == name)
            .unwrap_or_else(|| panic!("{name} is not in the corpus"))
    };
    let mut parse_failures_seen = BTreeSet::new();
    for (i, (path, name)) in paths.iter().zip(&names).enumerate() {
        let name = name.clone();
        let twin = TWINS.iter().find(|t| t.0 == name);
        let i = twin.map_or(i, |t| index_of(t.1));
        let oracle = &manifest[i];
        let status = oracle["status"].as_str().unwrap_or("?");
        let bytes = std::fs::read(path).expect("read corpus file");
        let ours = DicomFile::read(&bytes).and_then(|f| pixels::decode(&f));
        let line = match (status, ours) {
            ("ok", Ok(frames)) => {
                let want_frames = oracle["frames"].as_u64().unwrap_or(0) as usize;
                let (rows, cols) = (
                    oracle["rows"].as_u64().unwrap_or(0) as usize,
                    oracle["columns"].as_u64().unwrap_or(0) as usize,
                );
                if (frames.frames, frames.rows, frames.columns) != (want_frames, rows, cols) {
                    failures.push(format!(
                        "{name}: {}×{}×{} frames, pydicom {want_frames}×{rows}×{cols}",
                        frames.frames, frames.rows, frames.columns
                    ));
                    format!(
                        "FAIL shape {}×{}×{}",
                        frames.frames, frames.rows, frames.columns
                    )
                } else {
                    let ts = oracle["transfer_syntax"].as_str().unwrap_or("");
                    let lossy = LOSSY.contains(&ts);
                    let want = std::fs::read(out.join(format!("{i}.bin"))).expect("oracle bin");
                    let slope = oracle["slope"].as_f64().unwrap_or(1.0).max(1e-12);
                    let (kind, mean, max, exact_match) = match &frames.samples {
                        Samples::Grey(v) => {
                            let w: Vec<f64> = want
                                .chunks_exact(8)
                                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                                .collect();
                            if w.len() != v.len() {
                                ("grey", f64::NAN, f64::NAN, false)
                            } else {
                                let (mean, max) = diff_stats(
                                    v.iter().map(|&x| f64::from(x)),
                                    w.iter().copied(),
                                    slope,
                                );
                                // f32 rounding of the rescale only: well below one grey level.
                                let exact = v.iter().zip(&w).all(|(&a, &b)| {
                                    (f64::from(a) - b).abs() <= 1e-5 * b.abs().max(1.0)
                                });
                                ("grey", mean, max, exact)
                            }
                        }
                        Samples::Rgb(v) => {
                            if want.len() != v.len() {
                                ("rgb", f64::NAN, f64::NAN, false)
                            } else {
                                let (mean, max) = diff_stats(
                                    v.iter().map(|&x| f64::from(x)),
                                    want.iter().map(|&x| f64::from(x)),
                                    1.0,
                                );
                                ("rgb", mean, max, v == &want)
                            }
                        }
                    };
                    let oracle_kind = oracle["kind"].as_str().unwrap_or("?");
                    if kind != oracle_kind {
                        failures.push(format!("{name}: MedSeg {kind}, pydicom {oracle_kind}"));
                        format!("FAIL {kind} vs {oracle_kind}")
                    } else if exact_match {
                        exact += 1;
                        format!("exact ({kind})")
                    } else if lossy && mean <= 1.0 && max <= 8.0 {
                        lossy_ok += 1;
                        if max > worst_lossy.1 || (max == worst_lossy.1 && mean > worst_lossy.0) {
                            worst_lossy = (mean, max, name.clone(), kind.to_string());
                        }
                        format!("lossy ok ({kind}): mean {mean:.4} max {max}")
                    } else {
                        failures.push(format!(
                            "{name} ({ts}{}): {kind} mean |diff| {mean:.4}, max {max}",
                            if lossy {
                                ", lossy"
                            } else {
                                ", lossless: must be exact"
                            }
                        ));
                        format!("FAIL {kind}: mean {mean:.4} max {max}")
                    }
                }
            }
            ("ok", Err(e)) => {
                let named_unsupported = matches!(
                    e,
                    DicomError::UnsupportedTransferSyntax { .. } | DicomError::Unsupported(_)
                );
                if named_unsupported && UNSUPPORTED.contains(&name.as_str()) {
                    unsupported_seen.insert(name.clone());
                    refused_ok += 1;
                    format!("unsupported (listed): {e}")
                } else if matches!(e, DicomError::Parse(_))
                    && PARSE_FAILURES.contains(&name.as_str())
                {
                    parse_failures_seen.insert(name.clone());
                    refused_ok += 1;
                    format!("parse error (listed): {e}")
                } else {
                    failures.push(format!("{name}: pydicom decodes it, MedSeg: {e}"));
                    format!("FAIL: {e}")
                }
            }
            (_, Ok(frames)) => {
                failures.push(format!(
                    "{name}: pydicom says {status} ({}), MedSeg decoded {} frames",
                    oracle["why"].as_str().unwrap_or(""),
                    frames.frames
                ));
                "FAIL: decoded what pydicom cannot".to_string()
            }
            (_, Err(e)) => {
                refused_ok += 1;
                format!("error as pydicom ({status}): {e}")
            }
        };
        let line = match twin {
            Some((_, twin, why)) => format!("{line} [against {twin}: {why}]"),
            None => line,
        };
        table.push_str(&format!("{name:<70} {line}\n"));
    }
    std::fs::remove_dir_all(&out).ok();

    println!("{table}");
    let listed: BTreeSet<String> = UNSUPPORTED.iter().map(|s| s.to_string()).collect();
    println!(
        "dicom_decode: {} files; {} compared: {exact} exact, {lossy_ok} lossy within tolerance \
         (worst: mean {:.4} max {} on {} ({})); {refused_ok} named errors ({} unsupported as \
         listed, the rest where pydicom fails too)",
        paths.len(),
        exact + lossy_ok,
        worst_lossy.0,
        worst_lossy.1,
        worst_lossy.2,
        worst_lossy.3,
        unsupported_seen.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        unsupported_seen, listed,
        "the files MedSeg reports unsupported changed"
    );
    let listed: BTreeSet<String> = PARSE_FAILURES.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        parse_failures_seen, listed,
        "the files dicom-rs cannot parse changed"
    );
    assert!(
        exact + lossy_ok >= 140,
        "only {} files compared",
        exact + lossy_ok
    );
}

/// Decoding one frame gives that frame of the whole decode (multi-frame, per-frame rescale).
#[test]
fn decode_frame_is_a_frame_of_decode() {
    let (data, _) = common::dicom_corpus();
    for name in [
        "emri_small_RLE.dcm",
        "eCT_Supplemental.dcm",
        "examples_ybr_color.dcm",
    ] {
        let path = data.join(name);
        let path = if path.exists() {
            path
        } else {
            common::dicom_corpus().1.join(name)
        };
        let bytes = std::fs::read(&path).expect("read");
        let file = DicomFile::read(&bytes).expect("parse");
        let all = pixels::decode(&file).expect("decode");
        let last = all.frames - 1;
        let one = pixels::decode_frame(&file, last).expect("decode_frame");
        assert_eq!(one.frames, 1);
        let n = all.rows * all.columns;
        match (&all.samples, &one.samples) {
            (Samples::Grey(a), Samples::Grey(b)) => assert_eq!(&a[last * n..], &b[..], "{name}"),
            (Samples::Rgb(a), Samples::Rgb(b)) => assert_eq!(&a[last * n * 3..], &b[..], "{name}"),
            _ => panic!("{name}: sample kinds differ"),
        }
        assert!(matches!(
            pixels::decode_frame(&file, all.frames),
            Err(DicomError::Decode { .. })
        ));
    }
}
