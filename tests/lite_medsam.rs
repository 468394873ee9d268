//! LiteMedSAM with its real weights against the official recipe's outputs
//! (`shared/reference/export_litemedsam_fixtures.py` on the CT lesion cases):
//! preprocessing, TinyViT embedding, decoder logits and IoU, the 2D masks and
//! the box-from-previous-mask 3D propagation; plus strict-loading failures.
//!
//! Needs the checkpoint (`$MEDSEG_LITE_PTH` or `weights/.cache/lite_medsam.pth`,
//! see `scripts/setup.sh`); fails, never skips, without it.

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use common::{
    Fixtures, host_of, lite_cases, lite_medsam_checkpoint, max_abs, read_npz_u8, read_store, shared,
};
use medseg::model::lite_medsam::LiteMedSam;
use medseg::model::{LoadError, load_lite_medsam};
use medseg::session::lite_propagation::{BoxSource, LitePropagation};
use medseg::weights::{TensorStore, WeightError};

/// Preprocessed input vs `.input`: max abs.
const TOL_INPUT: f32 = 1e-3;
/// Image embedding (first case) vs `.embedding`: relative L2.
const TOL_EMBEDDING_REL_L2: f64 = 1e-3;
/// Low-res logits: max abs.
const TOL_LOGITS: f32 = 1e-2;
/// Predicted IoU: abs.
const TOL_IOU: f32 = 1e-3;
/// Box sparse embedding (prompt encoder): max abs.
const TOL_SPARSE: f32 = 1e-4;
/// 2D mask IoU with the reference mask: at least.
const MIN_MASK2D_IOU: f64 = 0.99;
/// |Dice vs GT − reference Dice vs GT| on the key slice: at most.
const TOL_DICE2D_GT: f64 = 0.005;
/// 3D Dice with the reference mask over the lesion range: at least.
const MIN_DICE3D_REF: f64 = 0.98;
/// |3D Dice vs GT − reference|: at most.
const TOL_DICE3D_GT: f64 = 0.01;

/// `imgs` and `gts` of a case, with `[depth, height, width]`.
struct Volume {
    dims: [usize; 3],
    imgs: Vec<u8>,
    gts: Vec<u8>,
}

impl Volume {
    fn load(name: &str) -> Self {
        let path = shared().join(format!("data/ct-lesion/{name}.npz"));
        let (shape, imgs) = read_npz_u8(&path, "imgs");
        let (gshape, gts) = read_npz_u8(&path, "gts");
        assert_eq!(shape, gshape, "{name}: imgs and gts shapes");
        Self {
            dims: [shape[0], shape[1], shape[2]],
            imgs,
            gts,
        }
    }

    fn plane(&self) -> usize {
        self.dims[1] * self.dims[2]
    }

    fn slice<'a>(&self, data: &'a [u8], z: usize) -> &'a [u8] {
        &data[z * self.plane()..(z + 1) * self.plane()]
    }
}

fn checkpoint_bytes() -> Vec<u8> {
    let path = lite_medsam_checkpoint();
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn load_model() -> LiteMedSam {
    let t = Instant::now();
    let store = TensorStore::from_bytes(&checkpoint_bytes()).expect("reading the checkpoint");
    let model = load_lite_medsam(store, &medseg::cpu_device()).expect("loading LiteMedSAM");
    println!("checkpoint read and loaded in {:.2?}", t.elapsed());
    model
}

/// Dice of two binary masks (anything > 0 is foreground); 1 when both empty.
fn dice(a: impl Iterator<Item = bool>, b: impl Iterator<Item = bool>) -> f64 {
    let (mut inter, mut sum) = (0usize, 0usize);
    for (x, y) in a.zip(b) {
        inter += usize::from(x && y);
        sum += usize::from(x) + usize::from(y);
    }
    if sum == 0 {
        1.0
    } else {
        2.0 * inter as f64 / sum as f64
    }
}

fn iou(a: &[u8], b: &[f32]) -> f64 {
    let (mut inter, mut union) = (0usize, 0usize);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x > 0, y > 0.0);
        inter += usize::from(x && y);
        union += usize::from(x || y);
    }
    if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
    }
}

/// Collects measured figures and tolerance breaches; prints them all before failing.
#[derive(Default)]
struct Figures {
    failures: Vec<String>,
}

impl Figures {
    fn at_most(&mut self, what: &str, got: f64, tol: f64) {
        let ok = got <= tol; // NaN fails
        println!(
            "  {what:<44} {got:>12.4e}  (≤ {tol:.0e}) {}",
            if ok { "ok" } else { "FAIL" }
        );
        if !ok {
            self.failures.push(format!("{what}: {got:e} > {tol:e}"));
        }
    }

    fn at_least(&mut self, what: &str, got: f64, min: f64) {
        let ok = got >= min;
        println!(
            "  {what:<44} {got:>12.6}  (≥ {min}) {}",
            if ok { "ok" } else { "FAIL" }
        );
        if !ok {
            self.failures.push(format!("{what}: {got} < {min}"));
        }
    }

    fn finish(self) {
        assert!(
            self.failures.is_empty(),
            "tolerance breaches:\n{}",
            self.failures.join("\n")
        );
    }
}

#[test]
fn lite_medsam_2d_matches_official_recipe() {
    let model = load_model();
    let fx = Fixtures::lite_medsam();
    let transform = model.transform();
    let mut figs = Figures::default();
    let mut first = true;
    for case in lite_cases() {
        println!("{} (key slice {}):", case.name, case.key_slice);
        let vol = Volume::load(&case.name);
        let [_, h, w] = vol.dims;
        let slice = vol.slice(&vol.imgs, case.key_slice);
        let gt = vol.slice(&vol.gts, case.key_slice);

        // Box to 256-space exactly as `box_to_256`.
        let box256 = transform.box_to_model(case.box_xyxy, (h, w));
        assert_eq!(box256, case.box256, "{}: box256", case.name);

        // Preprocessing. The fixture's `.input` holds the bytes of the permuted
        // (non-contiguous) HWC array under a CHW header: compare as HWC.
        let input = transform.prepare_gray(slice, h, w).unwrap();
        let s = model.image_size();
        let mut hwc = vec![0f32; 3 * s * s];
        for c in 0..3 {
            for p in 0..s * s {
                hwc[p * 3 + c] = input.data[c * s * s + p];
            }
        }
        let want_input = fx.host(&format!("{}.input", case.name));
        assert_eq!(want_input.shape, [1, 3, s, s]);
        figs.at_most(
            "input max abs",
            max_abs(&hwc, &want_input.data) as f64,
            TOL_INPUT as f64,
        );

        // Encoder.
        let t = Instant::now();
        let embedding = model.encode(model.input_tensor(&input));
        let (eshape, edata) = host_of(&embedding);
        println!("  TinyViT encode: {:.2?}", t.elapsed());
        assert_eq!(eshape, [1, 256, 64, 64]);
        let key = format!("{}.embedding", case.name);
        if fx.has(&key) {
            let want = &fx.host(&key).data;
            let (mut num, mut den) = (0f64, 0f64);
            for (a, b) in edata.iter().zip(want) {
                num += ((a - b) as f64).powi(2);
                den += (*b as f64).powi(2);
            }
            let max = max_abs(&edata, want);
            println!("  embedding max abs {max:.3e}");
            figs.at_most(
                "embedding relative L2",
                (num / den).sqrt(),
                TOL_EMBEDDING_REL_L2,
            );
        } else {
            assert!(!first, "the first case must carry the embedding");
        }
        first = false;

        // Prompt encoder: the box's sparse embedding.
        let (sparse, _) = model.sam_prompt_encoder.forward(None, Some(box256), None);
        let (sshape, sdata) = host_of(&sparse);
        let want_sparse = fx.host(&format!("{}.sparse", case.name));
        assert_eq!(sshape, want_sparse.shape);
        figs.at_most(
            "sparse (box) embedding max abs",
            max_abs(&sdata, &want_sparse.data) as f64,
            TOL_SPARSE as f64,
        );

        // Decoder.
        let t = Instant::now();
        let (low, iou_pred) = model.decode(embedding, box256);
        let (lshape, ldata) = host_of(&low);
        let (_, idata) = host_of(&iou_pred);
        println!("  prompt + decode: {:.2?}", t.elapsed());
        let want_low = fx.host(&format!("{}.low_res_logits", case.name));
        assert_eq!(lshape, want_low.shape);
        figs.at_most(
            "low-res logits max abs",
            max_abs(&ldata, &want_low.data) as f64,
            TOL_LOGITS as f64,
        );
        let want_iou = fx.host(&format!("{}.iou", case.name)).data[0];
        assert!((want_iou - case.iou_pred).abs() < 1e-6);
        figs.at_most(
            "predicted IoU abs",
            (idata[0] - want_iou).abs() as f64,
            TOL_IOU as f64,
        );

        // The full 2D pipeline.
        let pred = pollster::block_on(model.segment_gray(slice, h, w, case.box_xyxy)).unwrap();
        assert_eq!(pred.box_256, box256);
        assert!(max_abs(&pred.low_res_logits, &ldata) == 0.0);
        let want_mask = fx.host(&format!("{}.mask2d", case.name));
        assert_eq!(want_mask.shape, [h, w]);
        figs.at_least(
            "2D mask IoU vs reference mask",
            iou(&pred.mask, &want_mask.data),
            MIN_MASK2D_IOU,
        );
        let d = dice(pred.mask.iter().map(|&v| v > 0), gt.iter().map(|&v| v > 0));
        println!(
            "  2D Dice vs GT {d:.6} (reference {:.6})",
            case.dice2d_vs_gt
        );
        figs.at_most(
            "|2D Dice vs GT - reference|",
            (d - case.dice2d_vs_gt).abs(),
            TOL_DICE2D_GT,
        );
    }
    figs.finish();
}

#[test]
fn lite_medsam_3d_propagation_matches_official_recipe() {
    let model = load_model();
    let fx = Fixtures::lite_medsam();
    let mut figs = Figures::default();
    let mut first = true;
    for case in lite_cases() {
        let (lo, hi) = case.z_range;
        println!(
            "{} (key slice {}, lesion z {lo}..={hi}):",
            case.name, case.key_slice
        );
        let vol = Volume::load(&case.name);
        let t = Instant::now();
        // The walk of the recipe from the case's key slice and box.
        let walk = || {
            LitePropagation::new(
                &model,
                &vol.imgs,
                vol.dims,
                case.key_slice,
                case.box_xyxy,
                lo..=hi,
            )
            .unwrap()
        };
        let mut prop = walk();
        assert_eq!(prop.key_box_256(), case.box256);
        assert_eq!(prop.len(), hi - lo + 1);
        let mut order = Vec::new();
        let mut sources: Vec<BoxSource> = Vec::new();
        while let Some(step) = pollster::block_on(prop.step()) {
            let step = step.unwrap();
            order.push(step.z);
            sources.push(step.box_source);
            assert_eq!(step.mask.len(), vol.plane());
        }
        let masks = prop.into_masks();
        let n = hi - lo + 1;
        println!(
            "  {n} slices in {:.2?} ({:.2?} per slice); order {order:?}; prompts {:?}",
            t.elapsed(),
            t.elapsed() / n as u32,
            sources
        );
        let expected_order: Vec<usize> = (case.key_slice..=hi)
            .chain((lo..case.key_slice).rev())
            .collect();
        assert_eq!(order, expected_order);

        let want = fx.host(&format!("{}.mask3d_lesion_range", case.name));
        assert_eq!(want.shape, [n, vol.dims[1], vol.dims[2]]);
        let ours = &masks[lo * vol.plane()..(hi + 1) * vol.plane()];
        figs.at_least(
            "3D Dice vs reference (lesion range)",
            dice(
                ours.iter().map(|&v| v > 0),
                want.data.iter().map(|&v| v > 0.0),
            ),
            MIN_DICE3D_REF,
        );
        // Outside the walked range the volume stays empty, as in the recipe.
        assert!(masks[..lo * vol.plane()].iter().all(|&v| v == 0));
        assert!(masks[(hi + 1) * vol.plane()..].iter().all(|&v| v == 0));
        let d = dice(masks.iter().map(|&v| v > 0), vol.gts.iter().map(|&v| v > 0));
        println!(
            "  3D Dice vs GT {d:.6} (reference {:.6})",
            case.dice3d_vs_gt
        );
        figs.at_most(
            "|3D Dice vs GT - reference|",
            (d - case.dice3d_vs_gt).abs(),
            TOL_DICE3D_GT,
        );

        // Seeded with the official key-slice mask (what the user's box already gave),
        // the walk skips the key slice and still gives the official masks (one case:
        // the walk is the same code for all).
        if first {
            let k = case.key_slice - lo;
            let key_mask: Vec<u8> = want.data[k * vol.plane()..(k + 1) * vol.plane()]
                .iter()
                .map(|&v| u8::from(v > 0.0))
                .collect();
            let mut seeded = walk().with_key_mask(&key_mask).unwrap();
            assert_eq!(seeded.len(), n - 1, "the key slice is not walked again");
            let mut seeded_order = Vec::new();
            while let Some(step) = pollster::block_on(seeded.step()) {
                seeded_order.push(step.unwrap().z);
            }
            assert_eq!(seeded_order, expected_order[1..]);
            let seeded_masks = seeded.into_masks();
            figs.at_least(
                "3D Dice vs reference, walk seeded with the key mask",
                dice(
                    seeded_masks[lo * vol.plane()..(hi + 1) * vol.plane()]
                        .iter()
                        .map(|&v| v > 0),
                    want.data.iter().map(|&v| v > 0.0),
                ),
                MIN_DICE3D_REF,
            );
            assert!(
                walk().with_key_mask(&key_mask[1..]).is_err(),
                "a key mask of the wrong size is refused"
            );
        }
        first = false;
    }
    figs.finish();
}

#[test]
fn lite_medsam_rejects_bad_checkpoints() {
    let bytes = checkpoint_bytes();
    let device = medseg::cpu_device();

    // A file cut short: the zip's central directory is gone.
    let err = TensorStore::from_bytes(&bytes[..bytes.len() / 2])
        .expect_err("a truncated checkpoint must not parse");
    println!("truncated file: {err}");
    assert!(
        matches!(err, WeightError::Format { .. }),
        "expected a format error, got {err:?}"
    );

    // A checkpoint missing one tensor: the error names it.
    let store = TensorStore::from_bytes(&bytes).unwrap();
    let missing = "image_encoder.layers.2.blocks.3.attn.attention_biases";
    let mut tensors = store.into_tensors();
    assert!(tensors.remove(missing).is_some());
    let err = load_lite_medsam(TensorStore::new(tensors, BTreeMap::new()), &device)
        .expect_err("a checkpoint missing a tensor must not load");
    println!("missing tensor: {err}");
    match &err {
        LoadError::Weights(WeightError::Missing { key, expected }) => {
            assert_eq!(key, missing);
            assert_eq!(expected, &[5, 196]);
        }
        other => panic!("expected a missing-tensor error, got {other:?}"),
    }
    assert!(err.to_string().contains(missing));

    // A tensor of the wrong shape.
    let mut tensors = TensorStore::from_bytes(&bytes).unwrap().into_tensors();
    let key = "mask_decoder.iou_token.weight";
    let t = tensors.get_mut(key).unwrap();
    t.shape = vec![256, 1];
    let err = load_lite_medsam(TensorStore::new(tensors, BTreeMap::new()), &device)
        .expect_err("a wrongly shaped tensor must not load");
    println!("wrong shape: {err}");
    assert!(
        err.to_string()
            .contains("sam_mask_decoder.iou_token.weight")
    );
    assert!(matches!(
        err,
        LoadError::Weights(WeightError::ShapeMismatch { .. })
    ));

    // An extra tensor is not silently ignored.
    let mut tensors = TensorStore::from_bytes(&bytes).unwrap().into_tensors();
    let extra = tensors["mask_decoder.iou_token.weight"].clone();
    tensors.insert("image_encoder.extra.weight".into(), extra);
    let err = load_lite_medsam(TensorStore::new(tensors, BTreeMap::new()), &device)
        .expect_err("an unused tensor must fail the strict load");
    println!("unused tensor: {err}");
    assert!(err.to_string().contains("image_encoder.extra.weight"));

    // A SAM 2 checkpoint.
    let sam2 = read_store(&common::sam2_small_dir().join("weights.safetensors"));
    let err = load_lite_medsam(sam2, &device).expect_err("SAM 2 weights are not LiteMedSAM");
    println!("SAM 2 checkpoint: {err}");
    assert!(
        matches!(
            err,
            LoadError::WrongArchitecture {
                expected: "lite-medsam",
                found: "sam2",
                ..
            }
        ),
        "got {err:?}"
    );
    // Without its metadata it is still recognised by its key names.
    let tensors = read_store(&common::sam2_small_dir().join("weights.safetensors")).into_tensors();
    let err = load_lite_medsam(TensorStore::new(tensors, BTreeMap::new()), &device)
        .expect_err("SAM 2 weights are not LiteMedSAM");
    println!("SAM 2 checkpoint without metadata: {err}");
    assert!(
        err.to_string()
            .contains("image_encoder.trunk.patch_embed.proj.weight")
    );
}
