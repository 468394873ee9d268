//! The application core (`medseg::app`) on the CPU, through the same calls the CLI and
//! the browser make: the prompt rule reaches the model (box then point gives the
//! predictor's box + point mask; undo brings the box-only mask back exactly, undo and
//! redo of a propagation put its masks back bit for bit without the model), every
//! propagation takes exactly the steps it plans, a SAM 2 volume follows MedSAM2's
//! two-pass recipe, `medseg track` windows a Hounsfield-unit CT automatically, and a new
//! model input window segments the prompts as a volume opened with it does (LiteMedSAM's
//! walk starting from the key slice's mask; a box over air flagged low-confidence).

mod common;

use std::sync::Arc;

use common::{
    Fixtures, dice, iou, lite_cases, lite_medsam_checkpoint, max_abs, medseg_ok, read_store,
    sam2_small_dir, shared,
};
use medseg::app::{Directions, Document, LoadedModel, Workspace};
use medseg::io::image::{RgbImage, decode_rgb};
use medseg::io::volume::{Volume, write_nifti_mask_uncompressed};
use medseg::model::sam::prompt_encoder::PointLabel;
use medseg::model::sam2::Sam2Model;
use medseg::predictor::{ImagePrompt, Sam2ImagePredictor};
use medseg::session::frames::VolumeFrames;
use medseg::session::video::{Direction, VideoSession};
use medseg::session::volume3d::largest_connected_component;
use medseg::weights::TensorStore;

fn sam2_small() -> LoadedModel {
    let store = read_store(&sam2_small_dir().join("weights.safetensors"));
    LoadedModel::load(store, None, None, &medseg::cpu_device())
        .expect("sam2-small loads")
        .0
}

fn workspace(model: &LoadedModel) -> Workspace {
    let mut ws = Workspace::new(medseg::cpu_device());
    ws.set_model(model.clone());
    ws
}

fn sam2_arc(model: &LoadedModel) -> Arc<Sam2Model> {
    match model {
        LoadedModel::Sam2(m) => m.clone(),
        LoadedModel::LiteMedSam(_) => panic!("expected SAM 2"),
    }
}

fn fixture_image() -> RgbImage {
    decode_rgb(&std::fs::read(sam2_small_dir().join("image.png")).expect("image")).expect("png")
}

fn fixture_frames() -> Vec<RgbImage> {
    (0..4)
        .map(|i| {
            let p = sam2_small_dir().join(format!("frames_png/{i:05}.png"));
            decode_rgb(&std::fs::read(p).expect("frame")).expect("png")
        })
        .collect()
}

fn point(x: f32, y: f32, label: PointLabel) -> ImagePrompt {
    ImagePrompt {
        box_xyxy: None,
        points: vec![([x, y], label)],
    }
}

#[test]
fn on_an_image_box_then_point_is_the_predictors_box_plus_point_and_undo_restores_the_box() {
    let model = sam2_small();
    let fx = Fixtures::sam2_small();
    let b = fx.host("predictor.box.in.box_xyxy_orig").data.clone();
    let b: [f32; 4] = b.try_into().expect("box");
    let (cx, cy) = ((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0);
    let img = fixture_image();
    let mut ws = workspace(&model);
    ws.open(Document::image("image.png", img.clone()).expect("doc"));

    let first = pollster::block_on(ws.add_prompt(1, 0, &ImagePrompt::boxed(b))).expect("box");
    let box_logits = ws.masks().logits(1, 0).expect("logits").to_vec();
    // The box alone is the official predictor's output (the oracle of the first call).
    let err = max_abs(&box_logits, &fx.host("predictor.box.out.masks_logits").data);
    assert!(err <= 1e-4, "box logits vs official predictor: {err}");

    let second = pollster::block_on(ws.add_prompt(1, 0, &point(cx, cy, PointLabel::Negative)))
        .expect("point");
    let whole = second.prompt.clone().expect("prompt");
    assert_eq!(whole.box_xyxy, Some(b), "the point keeps the box");
    assert_eq!(whole.points, vec![([cx, cy], PointLabel::Negative)]);
    // The model got box + point: the predictor given both at once says the same.
    let m = sam2_arc(&model);
    let predictor = Sam2ImagePredictor::new(&m);
    let encoded = predictor.set_image(&img).expect("encode");
    let both = pollster::block_on(predictor.predict(&encoded, &whole)).expect("predict");
    let got = ws.masks().logits(1, 0).expect("logits");
    assert!(max_abs(got, &both.logits) <= 1e-5, "box + point logits");
    let point_only =
        pollster::block_on(predictor.predict(&encoded, &point(cx, cy, PointLabel::Negative)))
            .expect("predict");
    assert!(
        max_abs(got, &point_only.logits) > 1e-2,
        "the box was not dropped"
    );
    assert!((second.iou - both.iou).abs() <= 1e-5);

    // Undo of the point: the box-only prompt and logits come back exactly.
    let both_logits = got.to_vec();
    let undone = ws.undo().expect("undo").expect("something");
    assert_eq!(undone.prompts.len(), 1);
    assert_eq!(undone.prompts[0].prompt, Some(ImagePrompt::boxed(b)));
    assert_eq!(ws.masks().get(1, 0).map(|m| m.area()), Some(first.area));
    assert_eq!(ws.masks().logits(1, 0), Some(&box_logits[..]));
    // Undo of the box: no prompt, no mask; then nothing left to undo.
    let undone = ws.undo().expect("undo").expect("something");
    assert_eq!(undone.prompts[0].prompt, None);
    assert!(ws.masks().get(1, 0).is_none() && ws.objects().is_empty());
    assert!(ws.undo().expect("undo").is_none());
    // Redo twice: box + point and their logits again.
    ws.redo().expect("redo").expect("something");
    let redone = ws.redo().expect("redo").expect("something");
    assert_eq!(redone.prompts[0].prompt, Some(whole));
    assert_eq!(ws.masks().logits(1, 0), Some(&both_logits[..]));
    assert!(!ws.history().can_redo);
}

#[test]
fn on_a_clip_frame_box_then_point_matches_the_image_predictor_and_undo_redo_restore_exactly() {
    let model = sam2_small();
    let frames = fixture_frames();
    let (w, h) = (frames[0].width, frames[0].height);
    let b = [
        w as f32 * 0.25,
        h as f32 * 0.3,
        w as f32 * 0.7,
        h as f32 * 0.75,
    ];
    let (px, py) = ((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0);
    let mut ws = workspace(&model);
    ws.open(Document::clip("clip", frames.clone()).expect("doc"));
    pollster::block_on(ws.add_prompt(2, 1, &ImagePrompt::boxed(b))).expect("box");
    let box_mask = ws.masks().get(2, 1).expect("mask").clone();
    let out = pollster::block_on(ws.add_prompt(2, 1, &point(px, py, PointLabel::Positive)))
        .expect("point");
    let whole = out.prompt.expect("prompt");
    assert_eq!(whole.box_xyxy, Some(b));
    // `medseg segment --box --point` on that frame: the image predictor with both.
    let m = sam2_arc(&model);
    let predictor = Sam2ImagePredictor::new(&m);
    let encoded = predictor.set_image(&frames[1]).expect("encode");
    let single = pollster::block_on(predictor.predict(&encoded, &whole)).expect("predict");
    let got = ws.masks().get(2, 1).expect("mask").decode();
    let agreement = iou(&got, &single.mask());
    println!("clip frame box+point vs image predictor: IoU {agreement:.4}");
    assert!(agreement >= 0.99, "IoU {agreement}");
    // Undo puts the box-only mask back exactly.
    ws.undo().expect("undo").expect("something");
    assert_eq!(ws.masks().get(2, 1), Some(&box_mask));

    // A propagation, undone then redone: its masks go, then come back bit for bit.
    let masks = |ws: &Workspace| -> Vec<_> {
        (0..frames.len())
            .map(|f| ws.masks().get(2, f).cloned())
            .collect()
    };
    pollster::block_on(ws.propagate(Directions::Both, None, |_, _| {})).expect("propagate");
    let propagated = masks(&ws);
    assert!(propagated.iter().all(Option::is_some));
    let undone = ws.undo().expect("undo").expect("something");
    assert_eq!(
        undone.masks.len(),
        frames.len(),
        "every frame the run visited"
    );
    let mut only_box = vec![None; frames.len()];
    only_box[1] = Some(box_mask.clone());
    assert_eq!(masks(&ws), only_box);
    ws.redo().expect("redo").expect("something");
    assert_eq!(masks(&ws), propagated);
    // The memory is rebuilt from the prompts now: the point again gives the mask it gave.
    pollster::block_on(ws.add_prompt(2, 1, &point(px, py, PointLabel::Positive))).expect("point");
    assert_eq!(ws.masks().get(2, 1).map(|m| m.decode()), Some(got));
    assert!(!ws.history().can_redo, "a new prompt drops what was undone");
}

#[test]
fn every_propagation_takes_the_steps_it_plans() {
    let model = sam2_small();
    let frames = fixture_frames();
    let (w, h) = (frames[0].width as f32, frames[0].height as f32);
    let b = [w * 0.25, h * 0.3, w * 0.7, h * 0.75];
    let cases = [
        (1, Directions::Both, None, 3 + 2),
        (1, Directions::Forward, None, 3),
        (1, Directions::Backward, None, 2),
        (0, Directions::Backward, None, 0),
        (0, Directions::Both, None, 4),
        (3, Directions::Forward, None, 1),
        (2, Directions::Both, Some((1, 2)), 1 + 2),
    ];
    for (key, dirs, range, want) in cases {
        let mut ws = workspace(&model);
        ws.open(Document::clip("clip", frames.clone()).expect("doc"));
        pollster::block_on(ws.add_prompt(1, key, &ImagePrompt::boxed(b))).expect("box");
        let total = pollster::block_on(ws.start_propagation(dirs, range)).expect("plan");
        let mut steps = 0;
        while pollster::block_on(ws.step()).expect("step").is_some() {
            steps += 1;
        }
        assert_eq!((total, steps), (want, want), "key {key} {dirs:?} {range:?}");
    }
    // Nothing to propagate from: a named error, not a panic.
    let mut ws = workspace(&model);
    ws.open(Document::clip("clip", frames).expect("doc"));
    let e = pollster::block_on(ws.start_propagation(Directions::Both, None)).unwrap_err();
    assert_eq!(e.kind, medseg::app::ErrorKind::NoPrompt);
}

/// A CT case's slices `lo..=hi` as a volume (already windowed u8, as MedSAM ships them).
fn ct_volume(name: &str) -> Volume {
    let bytes = std::fs::read(shared().join(format!("data/ct-lesion/{name}.nii.gz"))).expect("ct");
    Volume::from_bytes(&bytes).expect("nifti")
}

#[test]
fn a_sam2_volume_follows_medsam2s_two_pass_recipe() {
    let model = sam2_small();
    let case = &lite_cases()[0];
    let volume = ct_volume(&case.name);
    let (lo, hi) = case.z_range;
    let key = case.key_slice;
    let mut ws = workspace(&model);
    ws.open(Document::volume(&case.name, volume.clone(), None).expect("doc"));
    pollster::block_on(ws.add_prompt(1, key, &ImagePrompt::boxed(case.box_xyxy))).expect("box");
    let steps = pollster::block_on(ws.propagate(Directions::Both, Some((lo, hi)), |_, _| {}))
        .expect("propagate");
    assert_eq!(steps, (hi - key + 1) + (key - lo + 1));

    // The recipe written out: a fresh session per direction, union, largest component.
    let doc = ws.doc().expect("doc");
    let dims = doc.dims();
    let [d, h, w] = dims;
    let plane = h * w;
    let slices = doc.grey().expect("grey");
    let mut union = vec![0u8; d * plane];
    for dir in [Direction::Forward, Direction::Backward] {
        let frames = VolumeFrames::new(slices.clone(), dims).expect("frames");
        let mut s = VideoSession::new(sam2_arc(&model), frames).expect("session");
        pollster::block_on(s.add_prompt(key, 1, Some(case.box_xyxy), &[])).expect("prompt");
        let mut run =
            pollster::block_on(s.start_propagation(Some(key), dir, Some((lo, hi)))).expect("run");
        while let Some(out) = pollster::block_on(s.step(&mut run)).expect("step") {
            for (_, m) in &out.objects {
                for (u, v) in union[out.frame * plane..][..plane]
                    .iter_mut()
                    .zip(m.decode())
                {
                    *u |= v;
                }
            }
        }
    }
    let want = largest_connected_component(&union, dims);
    let got = ws.masks().label_map(&doc, Some(1));
    assert_eq!(got, want, "the workspace's volume masks are the recipe's");
    assert!(got.iter().any(|&v| v != 0), "the recipe found the lesion");
}

/// A NIfTI int16 copy of `volume` in Hounsfield-like units: `v * 400 / 255 - 160` (the
/// soft-tissue window's bounds) plus air (-1000) in the first voxel, so the data reads as
/// CT and the soft window maps it back close to the stored values.
fn hu_nifti(volume: &Volume) -> Vec<u8> {
    let hu: Vec<i16> = volume
        .data
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            if i == 0 {
                -1000
            } else {
                (v * 400.0 / 255.0 - 160.0).round() as i16
            }
        })
        .collect();
    let mask = vec![0u8; volume.data.len()];
    let mut bytes = write_nifti_mask_uncompressed(&volume.geometry, &mask).expect("header");
    // The uint8 writer's header with the datatype and bit depth of int16 (NIfTI-1: bytes
    // 70 and 72), and int16 voxels from vox_offset 352.
    bytes.truncate(352);
    bytes[70..72].copy_from_slice(&4i16.to_le_bytes());
    bytes[72..74].copy_from_slice(&16i16.to_le_bytes());
    for v in hu {
        bytes.extend(v.to_le_bytes());
    }
    bytes
}

#[test]
fn track_windows_a_hounsfield_ct_as_the_page_does() {
    let case = &lite_cases()[0];
    let volume = ct_volume(&case.name);
    let dir = std::env::temp_dir().join(format!("medseg-app-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch");
    let input = dir.join("hu.nii");
    std::fs::write(&input, hu_nifti(&volume)).expect("write");
    let hu = Volume::from_bytes(&std::fs::read(&input).expect("read")).expect("hu nifti");
    assert_eq!(hu.dims, volume.dims);
    let weights = lite_medsam_checkpoint();
    let key = case.key_slice;
    let (lo, hi) = (key.saturating_sub(1), key + 1);
    let b = case.box_xyxy;
    let track = |out: &std::path::Path, window: Option<&str>| {
        let (s_box, s_frame, s_range) = (
            format!("{},{},{},{}", b[0], b[1], b[2], b[3]),
            key.to_string(),
            format!("{lo},{hi}"),
        );
        let mut args = vec![
            "track",
            "--model",
            weights.to_str().expect("path"),
            "--input",
            input.to_str().expect("path"),
            "--frame",
            &s_frame,
            "--box",
            &s_box,
            "--range",
            &s_range,
            "--out",
            out.to_str().expect("path"),
        ];
        if let Some(w) = window {
            args.extend(["--window", w]);
        }
        medseg_ok(&args);
        Volume::from_bytes(&std::fs::read(out).expect("mask"))
            .expect("mask nifti")
            .to_mask()
    };
    let auto = track(&dir.join("auto.nii.gz"), None);
    let soft = track(&dir.join("soft.nii.gz"), Some("soft"));
    assert_eq!(
        auto, soft,
        "no --window on HU data is the soft-tissue window"
    );

    // The page's path: the workspace opening the same file with the automatic window.
    let store = TensorStore::from_bytes(&std::fs::read(&weights).expect("weights")).expect("lite");
    let model = LoadedModel::load(store, None, None, &medseg::cpu_device())
        .expect("lite")
        .0;
    let mut ws = workspace(&model);
    let info = ws.open(Document::volume("hu.nii", hu, None).expect("doc"));
    assert_eq!(info.window, Some("soft"));
    pollster::block_on(ws.add_prompt(1, key, &ImagePrompt::boxed(b))).expect("box");
    pollster::block_on(ws.propagate(Directions::Both, Some((lo, hi)), |_, _| {})).expect("run");
    let page = ws.masks().label_map(&ws.doc().expect("doc"), None);
    let d = dice(&page, &auto);
    println!("HU CT: workspace vs medseg track Dice {d:.4}");
    assert!(d >= 0.999 && auto.iter().any(|&v| v != 0), "Dice {d}");
}

fn lite_medsam() -> LoadedModel {
    let bytes = std::fs::read(lite_medsam_checkpoint()).expect("checkpoint");
    LoadedModel::from_bytes(&bytes, None, None, &medseg::cpu_device())
        .expect("LiteMedSAM loads")
        .0
}

#[test]
fn a_new_model_input_window_segments_the_prompts_as_an_open_with_it_does() {
    let model = lite_medsam();
    let case = &lite_cases()[0];
    let volume = ct_volume(&case.name);
    let key = case.key_slice;
    let mr = medseg::io::window::WindowPreset::parse("mr").unwrap();

    let mut ws = workspace(&model);
    ws.open(Document::volume(&case.name, volume.clone(), None).expect("doc"));
    let first =
        pollster::block_on(ws.add_prompt(1, key, &ImagePrompt::boxed(case.box_xyxy))).expect("box");
    assert!(
        first.low_confidence.is_none(),
        "the lesion's box: {first:?}"
    );
    // The walk starts from the key slice's mask: two steps for two more slices.
    let steps =
        pollster::block_on(ws.propagate(Directions::Forward, Some((key, key + 2)), |_, _| {}))
            .expect("propagate");
    assert_eq!(steps, 2, "the key slice is not segmented again");
    let propagated = ws.masks().get(1, key + 1).expect("slice k+1").decode();
    ws.set_window(mr).expect("window");
    let outs = pollster::block_on(ws.resegment_prompts()).expect("resegment");
    assert_eq!(outs.len(), 1);
    assert_eq!(
        ws.masks().get(1, key + 1).expect("kept").decode(),
        propagated,
        "propagated masks stay"
    );

    let mut fresh = workspace(&model);
    fresh.open(Document::volume(&case.name, volume, mr).expect("doc"));
    let want = pollster::block_on(fresh.add_prompt(1, key, &ImagePrompt::boxed(case.box_xyxy)))
        .expect("box");
    assert_eq!(outs[0].area, want.area);
    assert_eq!(
        ws.masks().get(1, key).expect("key").decode(),
        fresh.masks().get(1, key).expect("key").decode(),
        "re-segmented = segmented in a volume opened with that window"
    );
    // One action: undo puts the mask of the old window back.
    ws.undo().expect("undo").expect("something to undo");
    assert_eq!(ws.masks().get(1, key).expect("key").area(), first.area);

    // A box over the air outside the body is flagged.
    let air =
        pollster::block_on(fresh.add_prompt(2, key, &ImagePrompt::boxed([5.0, 5.0, 60.0, 60.0])))
            .expect("air box");
    assert!(air.low_confidence.is_some(), "{air:?}");
}
