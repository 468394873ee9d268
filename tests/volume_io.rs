//! Volume readers, the NIfTI mask writer and `eval` on the real CT lesion cases of
//! `../shared/data/ct-lesion` (each given as MedSAM `.npz` and as NIfTI-1 `.nii.gz`).

use std::path::PathBuf;

use medseg::io::volume::{
    DataType, SourceFormat, Volume, VolumeError, VolumeSeries, write_nifti_mask,
};
use medseg::metrics::{EvalError, eval_files, eval_volumes};

const CASES: [&str; 3] = [
    "CT_Lesion_000001_02_01_008-023",
    "CT_Lesion_000002_03_01_035-047",
    "CT_Lesion_000009_03_01_036-048",
];

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/ct-lesion")
}

fn read(name: &str) -> Vec<u8> {
    let p = data_dir().join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn npz_and_nifti_agree_voxel_for_voxel() {
    for case in CASES {
        let npz = read(&format!("{case}.npz"));
        let imgs = Volume::from_bytes(&npz).unwrap();
        let gts = Volume::from_npz_bytes(&npz, &["gts"]).unwrap();
        let nii = Volume::from_bytes(&read(&format!("{case}.nii.gz"))).unwrap();
        let gt_nii = Volume::from_bytes(&read(&format!("{case}_gt.nii.gz"))).unwrap();

        assert_eq!(imgs.format, SourceFormat::Npz);
        assert_eq!(nii.format, SourceFormat::NiftiGz);
        assert_eq!((imgs.dtype, nii.dtype), (DataType::U8, DataType::U8));
        assert_eq!(imgs.width(), 512);
        assert_eq!(imgs.height(), 512);
        assert_eq!(imgs.dims, nii.dims, "{case}");
        assert_eq!(gts.dims, gt_nii.dims, "{case}");
        assert!(imgs.data == nii.data, "{case}: imgs differ from .nii.gz");
        assert!(
            gts.data == gt_nii.data,
            "{case}: gts differ from _gt.nii.gz"
        );
        assert!(
            gts.data.iter().any(|&v| v != 0.0),
            "{case}: empty ground truth"
        );
        // The NIfTI stores the spacing as f32 (pixdim), the npz as f64.
        for a in 0..3 {
            for v in [&nii, &gt_nii] {
                let (x, y) = (v.spacing[a], imgs.spacing[a]);
                assert!((x - y).abs() <= 1e-6 * y, "{case} spacing {a}: {x} vs {y}");
            }
        }
        // The NIfTI affine holds the spacing (sform, diag).
        let aff = nii.geometry.affine();
        for (a, row) in aff.iter().take(3).enumerate() {
            assert!((row[a] - nii.spacing[a]).abs() < 1e-9);
        }
    }
}

#[test]
fn written_mask_keeps_geometry() {
    let case = CASES[0];
    let gt = Volume::from_bytes(&read(&format!("{case}_gt.nii.gz"))).unwrap();
    let mask = gt.to_mask();
    let bytes = write_nifti_mask(&gt.geometry, &mask).unwrap();
    let back = Volume::from_bytes(&bytes).unwrap();
    assert_eq!(back.dims, gt.dims);
    assert_eq!(back.spacing, gt.spacing);
    assert_eq!(back.geometry, gt.geometry);
    assert_eq!(back.geometry.affine(), gt.geometry.affine());
    assert_eq!(back.to_mask(), mask);

    // A mask for an npz volume gets the npz spacing, as the test data's NIfTI copies do.
    let npz = Volume::from_bytes(&read(&format!("{case}.npz"))).unwrap();
    let back = Volume::from_bytes(&write_nifti_mask(&npz.geometry, &mask).unwrap()).unwrap();
    assert_eq!(back.dims, npz.dims);
    for a in 0..3 {
        assert!((back.spacing[a] - npz.spacing[a]).abs() <= 1e-6 * npz.spacing[a]);
    }
    assert_eq!(back.geometry.affine(), gt.geometry.affine());
}

#[test]
fn eval_gt_against_itself_and_across_formats() {
    for case in CASES {
        let gt_nii = read(&format!("{case}_gt.nii.gz"));
        let npz = read(&format!("{case}.npz"));
        assert_eq!(eval_files(&gt_nii, &gt_nii, 2.0).unwrap(), (1.0, 1.0));
        // npz `gts` as prediction against the NIfTI ground truth, and the other way round.
        assert_eq!(eval_files(&npz, &gt_nii, 2.0).unwrap(), (1.0, 1.0));
        assert_eq!(eval_files(&gt_nii, &npz, 2.0).unwrap(), (1.0, 1.0));
    }
}

/// The ground truth shifted by +2 voxels in x (i) and +1 slice in z (k), zero fill.
fn shifted(gt: &Volume) -> Vec<u8> {
    let [nx, ny, nz] = gt.dims;
    let m = gt.to_mask();
    let mut out = vec![0u8; m.len()];
    for k in 1..nz {
        for j in 0..ny {
            for i in 2..nx {
                out[(k * ny + j) * nx + i] = m[((k - 1) * ny + j) * nx + i - 2];
            }
        }
    }
    out
}

/// DSC / NSD against values from running DeepMind's surface-distance code the way MedSAM
/// evaluates NIfTI masks (nibabel arrays (x, y, z), `header.get_zooms()` as spacing) on the
/// same shifted masks — an oracle, not our own output.
#[test]
fn eval_matches_deepmind_on_real_masks() {
    let oracle = [
        // (case, dice, nsd at 2 mm, nsd at 5 mm)
        (
            CASES[0],
            0.740788236299906,
            0.8017619411464504,
            0.9864098597812179,
        ),
        (
            CASES[1],
            0.6811411259782884,
            0.6645670369810446,
            0.9588301873768053,
        ),
    ];
    for (case, dsc, nsd2, nsd5) in oracle {
        let gt_bytes = read(&format!("{case}_gt.nii.gz"));
        let gt = Volume::from_bytes(&gt_bytes).unwrap();
        let pred_bytes = write_nifti_mask(&gt.geometry, &shifted(&gt)).unwrap();
        let (d, n) = eval_files(&pred_bytes, &gt_bytes, 2.0).unwrap();
        assert!((d - dsc).abs() < 1e-12, "{case}: dsc {d} vs {dsc}");
        assert!((n - nsd2).abs() < 1e-9, "{case}: nsd@2 {n} vs {nsd2}");
        let pred = Volume::from_bytes(&pred_bytes).unwrap();
        let (_, n5) = eval_volumes(&pred, &gt, 5.0).unwrap();
        assert!((n5 - nsd5).abs() < 1e-9, "{case}: nsd@5 {n5} vs {nsd5}");
    }
}

#[test]
fn broken_inputs_give_clear_errors() {
    let gz = read(&format!("{}.nii.gz", CASES[0]));
    let e = Volume::from_bytes(&gz[..gz.len() / 2]).unwrap_err();
    assert!(matches!(e, VolumeError::Gzip(_)), "{e:?}");
    assert!(e.to_string().contains("gzip"), "{e}");
    assert!(matches!(Volume::from_bytes(&[]), Err(VolumeError::Empty)));
    assert_eq!(
        Volume::from_bytes(&[]).unwrap_err().to_string(),
        "the file is empty"
    );

    let npz = read(&format!("{}.npz", CASES[0]));
    assert!(Volume::from_bytes(&npz[..npz.len() / 2]).is_err());

    // eval: which input is broken, and mismatched shapes.
    let gt = read(&format!("{}_gt.nii.gz", CASES[0]));
    assert!(matches!(
        eval_files(&gz[..100], &gt, 2.0),
        Err(EvalError::Pred(VolumeError::Gzip(_)))
    ));
    assert!(matches!(
        eval_files(&gt, &[], 2.0),
        Err(EvalError::Gt(VolumeError::Empty))
    ));
    let other = read(&format!("{}_gt.nii.gz", CASES[1]));
    let e = eval_files(&other, &gt, 2.0).unwrap_err();
    assert!(matches!(e, EvalError::ShapeMismatch { .. }), "{e:?}");
    assert!(e.to_string().contains("differ in shape"), "{e}");
}

/// A prediction covering the whole volume: the surface code runs on a full-size crop, the
/// lesion's surface is far (> 2 mm) from the volume's border, so NSD is (positive) zero.
#[test]
fn eval_whole_volume_prediction() {
    let gt_bytes = read(&format!("{}_gt.nii.gz", CASES[0]));
    let gt = Volume::from_bytes(&gt_bytes).unwrap();
    let n_gt = gt.to_mask().iter().filter(|&&v| v != 0).count() as f64;
    let all = write_nifti_mask(&gt.geometry, &vec![1u8; gt.len()]).unwrap();
    let (dsc, nsd) = eval_files(&all, &gt_bytes, 2.0).unwrap();
    assert!((dsc - 2.0 * n_gt / (n_gt + gt.len() as f64)).abs() < 1e-15);
    assert_eq!(
        format!("DSC={dsc:.4} NSD={nsd:.4}"),
        "DSC=0.0056 NSD=0.0000"
    );
}

/// The 4-D fixtures (tests/fixtures/nifti4d, made from case 000001 by make_nifti4d.py)
/// and what nibabel read from them.
fn nifti4d(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/nifti4d")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn nibabel_expected() -> serde_json::Value {
    serde_json::from_slice(&nifti4d("expected.json")).expect("expected.json")
}

/// Shape, affine, zooms and values as nibabel reads them.
fn assert_as_nibabel(series: &VolumeSeries, want: &serde_json::Value, what: &str) {
    let shape: Vec<usize> = want["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(series.geometry.shape(), shape, "{what}: shape");
    let affine = series.geometry.affine();
    for (r, row) in want["affine"].as_array().unwrap().iter().enumerate() {
        for (c, v) in row.as_array().unwrap().iter().enumerate() {
            assert_eq!(
                affine[r][c],
                v.as_f64().unwrap(),
                "{what}: affine[{r}][{c}]"
            );
        }
    }
    let zooms: Vec<f64> = want["zooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let pixdim: Vec<f64> = series.geometry.pixdim[1..=4]
        .iter()
        .map(|&p| p as f64)
        .collect();
    assert_eq!(pixdim, zooms, "{what}: zooms (pixdim[4] = the time step)");
    assert_eq!(
        series.geometry.xyzt_units as u64,
        want["xyzt_units"].as_u64().unwrap()
    );
    let [nx, ny, nz] = series.dims();
    for (t, sum) in want["sum_per_time_point"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let v = series.time_point(t).unwrap();
        let ours: f64 = v.data.iter().map(|&x| x as f64).sum();
        assert_eq!(ours, sum.as_f64().unwrap(), "{what}: sum of time point {t}");
        assert_eq!(
            v.geometry.affine(),
            affine,
            "{what}: time point {t} is placed as the file"
        );
    }
    for s in want["voxels_ijkt_value"].as_array().unwrap() {
        let s: Vec<f64> = s
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let [i, j, k, t] = [s[0], s[1], s[2], s[3]].map(|v| v as usize);
        assert_eq!(
            series.data[((t * nz + k) * ny + j) * nx + i] as f64,
            s[4],
            "{what}: voxel ({i}, {j}, {k}, {t})"
        );
    }
}

#[test]
fn four_d_nifti_reads_as_nibabel_and_masks_keep_its_geometry() {
    let want = nibabel_expected();
    for name in ["frames.nii.gz", "frames_gt.nii.gz", "series.nii.gz"] {
        let series = VolumeSeries::from_bytes(&nifti4d(name)).unwrap();
        assert_as_nibabel(&series, &want[name], name);
    }
    // A single-slice sequence: its time points as slices; a mask over them is written
    // back (x, y, 1, t), read as nibabel reads the source.
    let frames = VolumeSeries::from_bytes(&nifti4d("frames.nii.gz")).unwrap();
    let volume = frames.clone().into_time_frames().expect("one slice");
    assert_eq!(volume.dims, [128, 128, 4]);
    let gt = VolumeSeries::from_bytes(&nifti4d("frames_gt.nii.gz")).unwrap();
    let mask: Vec<u8> = gt.data.iter().map(|&v| u8::from(v != 0.0)).collect();
    let back =
        VolumeSeries::from_bytes(&write_nifti_mask(&volume.geometry, &mask).unwrap()).unwrap();
    assert_eq!(back.geometry, frames.geometry);
    assert_as_nibabel(
        &back,
        &want["frames_gt.nii.gz"],
        "mask written over frames.nii.gz",
    );
    // Where one volume is wanted, a 4-D file names its time points.
    let e = Volume::from_bytes(&nifti4d("series.nii.gz")).unwrap_err();
    assert!(
        e.to_string().contains("3 time points of 96×96×7 voxels"),
        "{e}"
    );
}
