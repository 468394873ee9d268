//! The 3-D workflow end to end through the CLI: `medseg track --range` with
//! LiteMedSAM on the real CT lesion volumes reproduces the official recipe's
//! 3-D masks, and `medseg eval` agrees with a Dice computed here.

mod common;

use std::path::PathBuf;

use common::{Fixtures, dice, lite_cases, lite_medsam_checkpoint, medseg, medseg_ok, shared};
use medseg::io::volume::{Volume, VolumeSeries};

#[test]
fn track_reproduces_the_lite_medsam_3d_recipe_and_eval_agrees() {
    let weights = lite_medsam_checkpoint();
    let fx = Fixtures::lite_medsam();
    let dir = std::env::temp_dir().join(format!("medseg-track-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    for case in lite_cases() {
        let input = shared().join(format!("data/ct-lesion/{}.nii.gz", case.name));
        let gt_path = shared().join(format!("data/ct-lesion/{}_gt.nii.gz", case.name));
        let out: PathBuf = dir.join(format!("{}.nii.gz", case.name));
        let (lo, hi) = case.z_range;
        let b = case.box_xyxy;
        medseg_ok(&[
            "track",
            "--model",
            weights.to_str().expect("path"),
            "--input",
            input.to_str().expect("path"),
            "--frame",
            &case.key_slice.to_string(),
            "--box",
            &format!("{},{},{},{}", b[0], b[1], b[2], b[3]),
            "--range",
            &format!("{lo},{hi}"),
            "--out",
            out.to_str().expect("path"),
        ]);

        let pred = Volume::from_bytes(&std::fs::read(&out).expect("mask")).expect("mask NIfTI");
        let gt = Volume::from_bytes(&std::fs::read(&gt_path).expect("gt")).expect("gt NIfTI");
        assert_eq!(pred.dims, gt.dims, "the mask keeps the input's geometry");
        assert_eq!(pred.spacing, gt.spacing);
        let (p, g) = (pred.to_mask(), gt.to_mask());
        let plane = pred.dims[0] * pred.dims[1];
        let reference = fx.host(&format!("{}.mask3d_lesion_range", case.name));
        let ref_mask: Vec<u8> = reference.data.iter().map(|&v| u8::from(v > 0.0)).collect();
        let vs_reference = dice(&p[lo * plane..(hi + 1) * plane], &ref_mask);
        assert!(
            p[..lo * plane]
                .iter()
                .chain(&p[(hi + 1) * plane..])
                .all(|&v| v == 0),
            "slices outside --range stay empty"
        );
        let vs_gt = dice(&p, &g);

        let eval = medseg_ok(&[
            "eval",
            "--pred",
            out.to_str().expect("path"),
            "--gt",
            gt_path.to_str().expect("path"),
        ]);
        let text = String::from_utf8_lossy(&eval.stdout).to_string();
        let dsc: f64 = text
            .split_whitespace()
            .find_map(|t| t.strip_prefix("DSC="))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no DSC in `{text}`"));
        println!(
            "{}: Dice vs reference {vs_reference:.4}, vs GT {vs_gt:.4} (reference {:.4}); medseg eval: {}",
            case.name,
            case.dice3d_vs_gt,
            text.trim()
        );
        assert!(
            vs_reference >= 0.98,
            "Dice vs the reference 3-D mask {vs_reference}"
        );
        assert!(
            (vs_gt - case.dice3d_vs_gt).abs() <= 0.01,
            "Dice vs GT {vs_gt} vs {}",
            case.dice3d_vs_gt
        );
        assert!(
            (dsc - vs_gt).abs() <= 5e-5,
            "medseg eval DSC {dsc} vs independent {vs_gt}"
        );
    }
}

fn nifti4d(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/nifti4d")
        .join(name)
}

fn track_args<'a>(
    weights: &'a str,
    input: &'a str,
    frame: &'a str,
    box_xyxy: &'a str,
    out: &'a str,
) -> Vec<&'a str> {
    vec![
        "track", "--model", weights, "--input", input, "--frame", frame, "--box", box_xyxy,
        "--out", out,
    ]
}

/// A single-slice NIfTI sequence (x, y, 1, t) opens as a clip of its time points: the
/// mask comes back as NIfTI over the source's grid (shape and affine as nibabel read
/// them, make_nifti4d.py), LiteMedSAM's walk segments it as it segments the same slices
/// stored as a 3-D volume, and it finds the lesion of the ground truth.
#[test]
fn track_follows_a_single_slice_time_series_and_writes_it_back_4d() {
    let weights = lite_medsam_checkpoint();
    let weights = weights.to_str().expect("path");
    let want: serde_json::Value =
        serde_json::from_slice(&std::fs::read(nifti4d("expected.json")).expect("expected.json"))
            .expect("json");
    let frames = &want["frames.nii.gz"];
    let key = frames["key_frame"].as_u64().unwrap().to_string();
    let b: Vec<String> = frames["box_xyxy"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.to_string())
        .collect();
    let box_arg = b.join(",");
    let dir = std::env::temp_dir().join(format!("medseg-track-4d-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let (out4, out3) = (
        dir.join("frames_mask.nii.gz"),
        dir.join("volume_mask.nii.gz"),
    );
    let input = nifti4d("frames.nii.gz");
    let done = medseg_ok(&track_args(
        weights,
        input.to_str().unwrap(),
        &key,
        &box_arg,
        out4.to_str().unwrap(),
    ));
    assert!(String::from_utf8_lossy(&done.stdout).contains("4 frames/slices with a mask"));
    let input3 = nifti4d("frames_as_volume.nii.gz");
    medseg_ok(&track_args(
        weights,
        input3.to_str().unwrap(),
        &key,
        &box_arg,
        out3.to_str().unwrap(),
    ));

    let mask = VolumeSeries::from_bytes(&std::fs::read(&out4).expect("mask")).expect("mask");
    assert_eq!(mask.geometry.shape(), vec![128, 128, 1, 4]);
    let affine = mask.geometry.affine();
    for (r, row) in frames["affine"].as_array().unwrap().iter().enumerate() {
        for (c, v) in row.as_array().unwrap().iter().enumerate() {
            assert_eq!(affine[r][c], v.as_f64().unwrap(), "affine[{r}][{c}]");
        }
    }
    assert_eq!(mask.geometry.pixdim[4], 0.05, "the time step is kept");
    let as_volume = Volume::from_bytes(&std::fs::read(&out3).expect("mask")).expect("mask");
    assert_eq!(
        mask.data, as_volume.data,
        "the sequence is segmented as the same slices in a volume"
    );
    let gt =
        VolumeSeries::from_bytes(&std::fs::read(nifti4d("frames_gt.nii.gz")).unwrap()).unwrap();
    let to_mask = |d: &[f32]| d.iter().map(|&v| u8::from(v != 0.0)).collect::<Vec<_>>();
    let vs_gt = dice(&to_mask(&mask.data), &to_mask(&gt.data));
    println!("time series: Dice vs GT {vs_gt:.4}");
    assert!(vs_gt >= 0.9, "Dice vs GT {vs_gt}");
}

/// A 4-D NIfTI of several slices needs `--volume T`: without it, or out of range, a
/// message that says what to pass; with it, a 3-D mask of that time point's geometry.
#[test]
fn track_volume_t_picks_a_time_point_of_a_4d_nifti() {
    let weights = lite_medsam_checkpoint();
    let weights = weights.to_str().expect("path");
    let input = nifti4d("series.nii.gz");
    let input = input.to_str().unwrap();
    let dir = std::env::temp_dir().join(format!("medseg-track-4d-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let out = dir.join("series_t1.nii.gz");
    let out_s = out.to_str().unwrap();
    // The crop starts at (240, 210) of case 000001; its lesion box on slice 8 (k = 3).
    let box_arg = "20,16,91,78";
    let args = track_args(weights, input, "3", box_arg, out_s);
    let fails = |extra: &[&str], needle: &str| {
        let mut a = args.clone();
        a.extend_from_slice(extra);
        let o = medseg(&a);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{a:?} succeeded");
        assert!(err.contains(needle), "{a:?}: `{err}` lacks `{needle}`");
    };
    fails(
        &[],
        "a 4-D NIfTI of 3 time points of 96×96×7 voxels: choose one with --volume T (0..2)",
    );
    fails(
        &["--volume", "3"],
        "time point 3 is outside the 3 time point(s) of the file (0..2)",
    );
    let frames_dir = shared().join("fixtures/sam2-small");
    let mut on_folder = track_args(weights, frames_dir.to_str().unwrap(), "0", box_arg, out_s);
    on_folder.extend_from_slice(&["--volume", "0"]);
    let o = medseg(&on_folder);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--volume picks a time point of a 4-D NIfTI")
    );

    let mut a = args.clone();
    a.extend_from_slice(&["--volume", "1"]);
    medseg_ok(&a);
    let mask = Volume::from_bytes(&std::fs::read(&out).expect("mask")).expect("a 3-D mask");
    assert_eq!(mask.dims, [96, 96, 7]);
    let series =
        VolumeSeries::from_bytes(&std::fs::read(nifti4d("series.nii.gz")).unwrap()).unwrap();
    assert_eq!(mask.geometry.affine(), series.geometry.affine());
    assert!(
        mask.to_mask().iter().any(|&v| v != 0),
        "the lesion is found"
    );
}
