//! The 3-D workflow end to end through the CLI: `medseg track --range` with
//! LiteMedSAM on the real CT lesion volumes reproduces the official recipe's
//! 3-D masks, and `medseg eval` agrees with a Dice computed here.

mod common;

use std::path::PathBuf;

use common::{Fixtures, dice, lite_cases, lite_medsam_checkpoint, medseg_ok, shared};
use medseg::io::volume::Volume;

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
