//! DICOM series folders against dcm2niix, the geometry oracle: `medseg convert FOLDER
//! OUT.nii.gz` must give the same voxels at the same places. MedSeg keeps DICOM's row
//! order where dcm2niix flips the rows (both with the affine to match), so the test maps
//! each of our voxels through our affine and the inverse of dcm2niix's: the map must be a
//! signed permutation of the axes with whole-voxel offsets (the grids coincide to 1e-3 mm),
//! and every voxel must hold the same value.
//!
//! Also the series rules through the CLI: two series in one folder need `--series`, a
//! folder with a non-DICOM file opens with a note, two slices at one place are refused.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{dicom_corpus, dicom_python, medseg, medseg_ok};
use medseg::io::volume::Volume;

fn temp_dir(name: &str) -> PathBuf {
    common::fresh_dir("dicom-series", name)
}

fn synthetic_series(dir: &Path, count: usize, spacing: f64) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dicom/make_ct_series.py");
    let out = Command::new(dicom_python())
        .arg(script)
        .arg(dir)
        .arg(count.to_string())
        .arg(spacing.to_string())
        .output()
        .expect("run make_ct_series.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn dcm2niix(input: &Path, out_dir: &Path) -> Volume {
    let out = Command::new("dcm2niix")
        .args(["-z", "y", "-f", "ref", "-o"])
        .arg(out_dir)
        .arg(input)
        .output()
        .expect("dcm2niix is installed by scripts/setup.sh");
    assert!(
        out.status.success(),
        "dcm2niix: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let bytes = std::fs::read(out_dir.join("ref.nii.gz")).expect("dcm2niix wrote ref.nii.gz");
    Volume::from_bytes(&bytes).expect("read dcm2niix's NIfTI")
}

fn ours(input: &Path, out_dir: &Path) -> Volume {
    let out = out_dir.join("medseg.nii.gz");
    medseg_ok(&["convert", input.to_str().unwrap(), out.to_str().unwrap()]);
    Volume::from_bytes(&std::fs::read(&out).unwrap()).expect("read our NIfTI")
}

fn invert(a: &[[f64; 4]; 4]) -> [[f64; 4]; 4] {
    // The affine's 3×3 part by its adjugate, then the translation.
    let m = |r: usize, c: usize| a[r][c];
    let det = m(0, 0) * (m(1, 1) * m(2, 2) - m(1, 2) * m(2, 1))
        - m(0, 1) * (m(1, 0) * m(2, 2) - m(1, 2) * m(2, 0))
        + m(0, 2) * (m(1, 0) * m(2, 1) - m(1, 1) * m(2, 0));
    assert!(det.abs() > 1e-9, "singular affine {a:?}");
    let mut inv = [[0.0; 4]; 4];
    for (r, row) in inv.iter_mut().enumerate().take(3) {
        let (c1, c2) = ((r + 1) % 3, (r + 2) % 3);
        for (c, v) in row.iter_mut().enumerate().take(3) {
            let (r1, r2) = ((c + 1) % 3, (c + 2) % 3);
            *v = (m(r1, c1) * m(r2, c2) - m(r1, c2) * m(r2, c1)) / det;
        }
    }
    for row in inv.iter_mut().take(3) {
        row[3] = -(0..3).map(|c| row[c] * a[c][3]).sum::<f64>();
    }
    inv[3][3] = 1.0;
    inv
}

fn apply(a: &[[f64; 4]; 4], p: [f64; 3]) -> [f64; 3] {
    [0, 1, 2].map(|r| a[r][0] * p[0] + a[r][1] * p[1] + a[r][2] * p[2] + a[r][3])
}

/// Checks that `got` holds `want`'s voxels at `want`'s places; returns the worst
/// distance (mm) between a voxel centre of ours and the matching one of dcm2niix.
fn same_voxels_same_places(got: &Volume, want: &Volume) -> f64 {
    let (a_got, a_want) = (got.geometry.affine(), want.geometry.affine());
    let to_want = invert(&a_want);
    let [nx, ny, nz] = got.dims;
    let mut sorted_want = want.dims;
    let mut sorted_got = got.dims;
    sorted_want.sort();
    sorted_got.sort();
    assert_eq!(
        sorted_got, sorted_want,
        "the same grid size (in some axis order)"
    );
    let mut worst_mm = 0f64;
    let mut compared = 0usize;
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                let world = apply(&a_got, [i as f64, j as f64, k as f64]);
                let idx = apply(&to_want, world);
                let rounded = idx.map(f64::round);
                let back = apply(&a_want, rounded);
                let mm = (0..3)
                    .map(|a| (back[a] - world[a]).powi(2))
                    .sum::<f64>()
                    .sqrt();
                worst_mm = worst_mm.max(mm);
                let [wi, wj, wk] = rounded;
                assert!(
                    (0.0..want.dims[0] as f64).contains(&wi)
                        && (0.0..want.dims[1] as f64).contains(&wj)
                        && (0.0..want.dims[2] as f64).contains(&wk),
                    "our voxel ({i},{j},{k}) lies outside dcm2niix's grid ({idx:?})"
                );
                let w = want.get(wk as usize, wj as usize, wi as usize);
                let g = got.get(k, j, i);
                assert_eq!(g, w, "voxel ({i},{j},{k}) = dcm2niix ({wi},{wj},{wk})");
                compared += 1;
            }
        }
    }
    assert_eq!(compared, want.len());
    worst_mm
}

#[test]
fn a_ct_series_folder_converts_to_dcm2niix_voxels_and_affine() {
    let (_, test_files) = dicom_corpus();
    let synthetic = temp_dir("synthetic");
    let series = synthetic.join("series");
    synthetic_series(&series, 24, 2.5);
    let real = test_files.join("dicomdirtests/98892001/CT5N");
    for (name, input) in [
        ("oblique synthetic CT", series.as_path()),
        ("CT5N", real.as_path()),
    ] {
        let out = temp_dir(&format!("out-{}", name.len()));
        let want = dcm2niix(input, &out);
        let got = ours(input, &out);
        let worst = same_voxels_same_places(&got, &want);
        println!(
            "{name}: {:?} voxels equal dcm2niix's; worst voxel-centre distance {worst:.2e} mm; \
             spacing {:?} vs {:?}",
            got.dims, got.spacing, want.spacing
        );
        assert!(worst <= 1e-3, "{name}: voxel centres differ by {worst} mm");
        let _ = std::fs::remove_dir_all(&out);
    }
    let _ = std::fs::remove_dir_all(&synthetic);
}

#[test]
fn series_rules_through_the_cli() {
    let dir = temp_dir("rules");
    let mixed = dir.join("mixed");
    synthetic_series(&mixed.join("a"), 6, 2.0);
    synthetic_series(&mixed.join("b"), 4, 3.0);
    std::fs::write(mixed.join("README.txt"), "not DICOM").unwrap();
    let out = dir.join("o.nii.gz");
    let (o, m) = (out.to_str().unwrap(), mixed.to_str().unwrap());

    // Two series: a clear list, nothing written.
    let r = medseg(&["convert", m, o]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success());
    assert!(
        err.contains("holds 2 series") && err.contains("--series"),
        "{err}"
    );
    assert!(!out.exists());

    // Choosing one: the other series and the text file are skipped with a note.
    let uid_line = err
        .lines()
        .find(|l| l.contains(": 4 frame(s)"))
        .expect("the 4-slice series is listed");
    let uid = uid_line.split_whitespace().next().unwrap();
    let r = medseg_ok(&["convert", m, o, "--series", uid]);
    let note = String::from_utf8_lossy(&r.stderr);
    assert!(note.contains("README.txt: not a DICOM file"), "{note}");
    let v = Volume::from_bytes(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(v.dims[2], 4);
    assert!((v.spacing[2] - 3.0).abs() < 1e-4, "{:?}", v.spacing);

    // A duplicate slice (the same file twice under two names) is refused.
    let dup = dir.join("dup");
    synthetic_series(&dup, 3, 2.0);
    let first = std::fs::read_dir(&dup)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::copy(&first, dup.join("copy")).unwrap();
    let r = medseg(&["convert", dup.to_str().unwrap(), o]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        !r.status.success() && err.contains("same position"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `medseg track` on a DICOM cine writes a Segmentation (`--out .dcm`) that highdicom
/// reads back with the same masks as the PNG folder the same run writes otherwise, and
/// that dciodvfy finds no error in.
#[test]
fn track_on_a_dicom_cine_writes_a_seg_with_the_png_masks() {
    let (_, test_files) = dicom_corpus();
    let cine = test_files.join("examples_ybr_color.dcm");
    let dir = temp_dir("track");
    let (seg, pngs) = (dir.join("mask.dcm"), dir.join("masks"));
    let model = common::lite_medsam_checkpoint();
    for out in [&seg, &pngs] {
        medseg_ok(&[
            "track",
            "--model",
            model.to_str().unwrap(),
            "--input",
            cine.to_str().unwrap(),
            "--frame",
            "10",
            "--box",
            "100,80,200,160",
            "--range",
            "9,11",
            "--out",
            out.to_str().unwrap(),
        ]);
    }
    let check = r#"
import sys, numpy as np, highdicom as hd, pydicom
from PIL import Image
seg = hd.seg.segread(sys.argv[1])
src = pydicom.dcmread(sys.argv[2], stop_before_pixels=True)
assert [s.SegmentLabel for s in seg.SegmentSequence] == ["Object 1"], seg.SegmentSequence
px = seg.get_pixels_by_source_frame(source_sop_instance_uid=src.SOPInstanceUID,
    source_frame_numbers=list(range(1, int(src.NumberOfFrames) + 1)), ignore_spatial_locations=True,
    assert_missing_frames_are_empty=True)
for f in range(int(src.NumberOfFrames)):
    png = np.array(Image.open(f"{sys.argv[3]}/mask_{f:05d}.png")) > 0
    assert (px[f, :, :, 0] > 0).tolist() == png.tolist(), f"frame {f} differs"
print("frames with a mask:", [f for f in range(px.shape[0]) if px[f].any()])
"#;
    let out = Command::new(dicom_python())
        .args(["-c", check])
        .arg(&seg)
        .arg(&cine)
        .arg(&pngs)
        .output()
        .expect("run highdicom");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("[9, 10, 11]"), "{text}");
    let v = Command::new("dciodvfy")
        .arg(&seg)
        .output()
        .expect("dciodvfy");
    let report = String::from_utf8_lossy(&v.stderr);
    assert!(
        v.status.success() && !report.lines().any(|l| l.starts_with("Error")),
        "{report}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A zip of a series with other files in it opens the series with a note; a zip with no
/// DICOM in it, a DICOM without pixel data and a truncated file are errors naming why.
#[test]
fn zips_and_bad_files_are_named() {
    use std::io::Write;
    let (_, test_files) = dicom_corpus();
    let dir = temp_dir("zips");
    let series = dir.join("series");
    synthetic_series(&series, 5, 2.0);
    let zip_of = |name: &str, entries: &[(String, Vec<u8>)]| {
        let path = dir.join(name);
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        for (n, bytes) in entries {
            zip.start_file(n.as_str(), zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap();
        path
    };
    let mut entries: Vec<(String, Vec<u8>)> = std::fs::read_dir(&series)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                format!("ct/{}", p.file_name().unwrap().to_string_lossy()),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    entries.push(("ct/notes.txt".into(), b"not DICOM".to_vec()));
    let good = zip_of("series.zip", &entries);
    let out = dir.join("o.nii.gz");
    let r = medseg_ok(&["convert", good.to_str().unwrap(), out.to_str().unwrap()]);
    let note = String::from_utf8_lossy(&r.stderr);
    assert!(note.contains("ct/notes.txt: not a DICOM file"), "{note}");
    let v = Volume::from_bytes(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(v.dims, [128, 128, 5]);

    let none = zip_of("none.zip", &[("a.txt".into(), b"hello".to_vec())]);
    let rtplan = test_files.join("rtplan.dcm");
    let truncated = test_files.join("MR_truncated.dcm");
    for (input, expected) in [
        (none.as_path(), "nor does the zip hold a DICOM file"),
        (rtplan.as_path(), "no pixel data"),
        (truncated.as_path(), "MR_truncated.dcm: "),
    ] {
        let r = medseg(&["convert", input.to_str().unwrap(), out.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(
            !r.status.success() && err.contains(expected),
            "{}: {err}",
            input.display()
        );
        println!("{}: {}", input.display(), err.trim());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A label map made on dcm2niix's conversion of a series (its rows run the other way)
/// lies on the series as MedSeg opens it once its axes are matched through the affines:
/// labels drawn from the image's own values land on the same voxels. `medseg finetune`
/// then takes the series folder with those labels.
#[test]
fn labels_from_dcm2niix_align_with_the_dicom_series() {
    use medseg::app::dicom::{DicomImport, DicomOpening};
    use medseg::app::training::Labels;
    use medseg::io::volume::write_nifti_mask;

    let dir = temp_dir("labels");
    let series = dir.join("series");
    synthetic_series(&series, 6, 2.0);
    let reference = dcm2niix(&series, &dir);
    // Labels from dcm2niix's voxels: 1 where the value is high, on slices 2 and 3 only.
    let [nx, ny, _] = reference.dims;
    let mut label_data = vec![0u8; reference.len()];
    let slices = 2 * nx * ny..4 * nx * ny;
    for (label, &value) in label_data[slices.clone()]
        .iter_mut()
        .zip(&reference.data[slices])
    {
        *label = u8::from(value > 200.0);
    }
    let label_bytes = write_nifti_mask(&reference.geometry, &label_data).unwrap();
    let label_path = dir.join("labels.nii.gz");
    std::fs::write(&label_path, &label_bytes).unwrap();

    let mut import = DicomImport::new();
    for entry in std::fs::read_dir(&series).unwrap() {
        let p = entry.unwrap().path();
        import
            .add(&p.display().to_string(), &std::fs::read(&p).unwrap())
            .unwrap();
    }
    let Ok(DicomOpening::Opened(doc)) = import.open("series", None) else {
        panic!("the series opens");
    };
    let volume = doc.source_volume().expect("a volume");
    let labels =
        Labels::from_volume_over(&Volume::from_bytes(&label_bytes).unwrap(), &doc).unwrap();
    let plane = volume.width() * volume.height();
    let frame = |k: usize| &labels.values()[k * plane..(k + 1) * plane];
    let marked: Vec<usize> = (0..volume.depth())
        .filter(|&k| frame(k).iter().any(|&v| v != 0))
        .collect();
    assert_eq!(marked.len(), 2, "two labelled slices");
    for &k in &marked {
        let expected: Vec<u16> = volume
            .slice(k)
            .iter()
            .map(|&v| u16::from(v > 200.0))
            .collect();
        assert_eq!(
            frame(k),
            expected.as_slice(),
            "slice {k}: labels on the same voxels"
        );
    }

    let out = dir.join("tuned.safetensors");
    let model = common::lite_medsam_checkpoint();
    let train = format!("{}:{}", series.display(), label_path.display());
    let r = medseg_ok(&[
        "finetune",
        "--model",
        model.to_str().unwrap(),
        "--train",
        &train,
        "--val-split",
        "0",
        "--epochs",
        "1",
        "--no-augment",
        "--out",
        out.to_str().unwrap(),
    ]);
    let log = String::from_utf8_lossy(&r.stderr);
    assert!(log.contains("2 slices with labels"), "{log}");
    assert!(out.exists());
    let _ = std::fs::remove_dir_all(&dir);
}
