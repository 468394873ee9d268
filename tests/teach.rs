//! Teaching in the workspace, as the page's Teach panel drives it (`Workspace::
//! open_labels`, `start_finetune`, `finetune_step`, `use_model`, `export_tuned`), on a
//! real CT lesion volume with its label file and the real LiteMedSAM weights: the run
//! ends with the tuned model segmenting, the exported checkpoint loads and gives the
//! same mask, and bad input (labels of another shape or without foreground, a loss
//! that is not a number, a run too large for the browser's engine) is refused with a
//! clear message while the base model and earlier work stay.

mod common;

use std::io::Write;

use common::{disc_frame, iou, lite_cases, lite_medsam_checkpoint, sam2_small_dir, shared};
use medseg::app::workspace::{ModelChoice, TeachOptions, TeachSource};
use medseg::app::{Document, ErrorKind, Workspace};
use medseg::io::image::encode_mask_png;
use medseg::io::volume::{Volume, write_nifti_mask_uncompressed};
use medseg::predictor::ImagePrompt;
use medseg::weights::TensorStore;

fn read(p: &std::path::Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

fn ct(name: &str, suffix: &str) -> Vec<u8> {
    read(&shared().join(format!("data/ct-lesion/{name}{suffix}")))
}

/// A workspace with LiteMedSAM loaded from its file and a CT case open.
fn workspace_on(case: &str) -> Workspace {
    let mut ws = Workspace::new(medseg::cpu_device());
    ws.load_model(read(&lite_medsam_checkpoint()), None)
        .expect("LiteMedSAM loads");
    let volume = Volume::from_bytes(&ct(case, ".nii.gz")).expect("volume");
    ws.open(Document::volume(case, volume, None).expect("document"));
    ws
}

fn boxed(b: [f32; 4]) -> ImagePrompt {
    ImagePrompt {
        box_xyxy: Some(b),
        points: Vec::new(),
    }
}

/// The mask a box gives on `frame` with the model in use (object 1).
fn segment(ws: &mut Workspace, frame: usize, b: [f32; 4]) -> Vec<u8> {
    pollster::block_on(ws.add_prompt(1, frame, &boxed(b))).expect("prompt");
    ws.masks().get(1, frame).expect("mask").decode()
}

/// Runs the started run to its end; the error of a failed step, if one failed.
fn run_to_end(ws: &mut Workspace) -> Result<usize, medseg::app::AppError> {
    let mut steps = 0;
    while ws.finetuning() {
        pollster::block_on(ws.finetune_step())?;
        steps += 1;
    }
    Ok(steps)
}

#[test]
fn teach_on_a_label_file_then_export_and_reload() {
    let case = &lite_cases()[0];
    let mut ws = workspace_on(&case.name);
    let base_mask = segment(&mut ws, case.key_slice, case.box_xyxy);

    let labels = ws
        .open_labels(&ct(&case.name, "_gt.nii.gz"), "labels.nii.gz")
        .expect("the case's own labels open");
    println!(
        "labels: {} frames ({}..={}), {} value(s)",
        labels.frames, labels.first_frame, labels.last_frame, labels.values
    );
    assert!(labels.frames >= 5 && labels.values == 1);

    // With validation (every fifth labelled frame held out), a tuned model exists only
    // when an epoch beat the base on those frames.
    let opts = TeachOptions {
        epochs: 1,
        augment: false,
        ..TeachOptions::default()
    };
    let start = ws.start_finetune(&opts).expect("a run starts");
    assert_eq!(start.work.embeddings[1], labels.frames);
    run_to_end(&mut ws).expect("the run finishes");
    let report = ws.teach_state().report;
    let state = ws.teach_state();
    println!(
        "with validation: base Dice {:?}, best epoch {} → tuned: {}",
        report.as_ref().and_then(|r| r.base_val_dice),
        report.as_ref().map_or(0, |r| r.best_epoch),
        state.tuned
    );
    let report = report.expect("a report");
    assert_eq!(report.val.slices, (labels.frames + 2) / 5);
    assert_eq!(state.tuned, report.best_epoch > 0);
    assert_eq!(state.using == ModelChoice::Tuned, report.best_epoch > 0);
    ws.use_model(ModelChoice::Base).expect("the base");

    // Without validation the last epoch is kept, so the exported heads are trained ones.
    let opts = TeachOptions {
        epochs: 2,
        augment: false,
        validation: false,
        ..TeachOptions::default()
    };
    let start = ws.start_finetune(&opts).expect("a run starts");
    let steps = run_to_end(&mut ws).expect("the run finishes");
    let state = ws.teach_state();
    let report = state.report.clone().expect("a report");
    println!(
        "{steps} steps; embeddings {:?}; best epoch {}; losses {:?}",
        start.work.embeddings,
        report.best_epoch,
        report
            .history
            .iter()
            .map(|e| e.loss.total)
            .collect::<Vec<_>>()
    );
    // No flips: one embedding per labelled frame, every one training.
    assert_eq!(report.train.slices, labels.frames);
    assert_eq!(start.work.embeddings[1], labels.frames);
    assert_eq!(report.history.len(), 2, "both epochs ran");
    assert_eq!(report.best_epoch, 2);
    assert!(state.tuned && state.using == ModelChoice::Tuned && !state.running);

    // The tuned model segments now; the base comes back on request, giving its mask.
    let tuned_mask = segment(&mut ws, case.key_slice, case.box_xyxy);
    ws.use_model(ModelChoice::Base).expect("back to the base");
    assert_eq!(segment(&mut ws, case.key_slice, case.box_xyxy), base_mask);
    ws.use_model(ModelChoice::Tuned).expect("the tuned again");

    // The checkpoint: a complete model that loads like the base and gives the tuned mask.
    let bytes = pollster::block_on(ws.export_tuned()).expect("export");
    let store = TensorStore::from_bytes(&bytes).expect("a safetensors file");
    let record = store
        .metadata
        .get("medseg_finetune")
        .expect("the fine-tuning record");
    assert!(record.contains("base_sha256") && !record.contains(&case.name));
    let base = TensorStore::from_bytes(&read(&lite_medsam_checkpoint())).expect("base");
    let key = "mask_decoder.iou_prediction_head.layers.0.weight";
    let (tuned_t, base_t) = (store.get(key).expect("tuned"), base.get(key).expect("base"));
    assert_eq!(tuned_t.shape, base_t.shape);
    assert_ne!(
        tuned_t.data, base_t.data,
        "the exported decoder is the trained one"
    );
    let mut again = Workspace::new(medseg::cpu_device());
    again.load_model(bytes, None).expect("the tuned file loads");
    let volume = Volume::from_bytes(&ct(&case.name, ".nii.gz")).expect("volume");
    again.open(Document::volume(&case.name, volume, None).expect("document"));
    let reloaded = segment(&mut again, case.key_slice, case.box_xyxy);
    let agree = iou(&reloaded, &tuned_mask);
    println!("reloaded vs in-workspace tuned mask: IoU {agree:.6}");
    assert!(agree >= 0.99, "IoU {agree}");
}

#[test]
fn teach_on_the_users_masks() {
    let case = &lite_cases()[1];
    let mut ws = workspace_on(&case.name);
    let err = ws
        .start_finetune(&TeachOptions::default())
        .expect_err("nothing to learn from yet");
    assert!(err.message.contains("no masks to learn from"), "{err}");
    segment(&mut ws, case.key_slice, case.box_xyxy);

    // Cancelled before an epoch finished: no tuned model, the base stays in use.
    let flips = TeachOptions {
        source: TeachSource::Masks,
        ..TeachOptions::default()
    };
    ws.start_finetune(&flips).expect("a run starts");
    pollster::block_on(ws.finetune_step()).expect("one embedding");
    let p = ws.cancel_finetune().expect("cancel");
    assert_eq!(
        p.work.embeddings,
        [1, 4],
        "one of the frame's four flips embedded"
    );
    assert!(matches!(
        p.stopped,
        Some(medseg::app::training::StopReason::Cancelled)
    ));
    let state = ws.teach_state();
    assert!(!state.running && !state.tuned && state.using == ModelChoice::Base);
    assert!(ws.cancel_finetune().is_err(), "nothing left to cancel");

    let opts = TeachOptions {
        epochs: 1,
        augment: false,
        source: TeachSource::Masks,
        ..TeachOptions::default()
    };
    let start = ws.start_finetune(&opts).expect("the mask is a sample");
    assert_eq!(
        start.work.embeddings[1], 1,
        "one masked frame, no validation"
    );
    run_to_end(&mut ws).expect("the run finishes");
    assert_eq!(ws.teach_state().using, ModelChoice::Tuned);
}

#[test]
fn teach_refuses_bad_input_clearly() {
    let cases = lite_cases();
    let (a, b) = (&cases[0], &cases[1]);
    let mut ws = workspace_on(&a.name);
    let base_mask = segment(&mut ws, a.key_slice, a.box_xyxy);

    // Labels of another case (13 slices) over this one (16): refused, nothing opened.
    let err = ws
        .open_labels(&ct(&b.name, "_gt.nii.gz"), "other.nii.gz")
        .expect_err("another case's labels");
    println!("{err}");
    assert!(err.message.contains("must match") && err.message.contains("other.nii.gz"));
    assert!(ws.teach_state().labels.is_none());

    // A label volume without foreground.
    let volume = Volume::from_bytes(&ct(&a.name, ".nii.gz")).expect("volume");
    let zeros =
        write_nifti_mask_uncompressed(&volume.geometry, &vec![0; volume.len()]).expect("nifti");
    let err = ws
        .open_labels(&zeros, "empty.nii")
        .expect_err("no foreground");
    println!("{err}");
    assert!(err.message.contains("no foreground"));
    // Not a label file at all.
    let err = ws
        .open_labels(b"not a label file", "notes.txt")
        .expect_err("text");
    println!("{err}");
    assert!(err.message.contains("notes.txt"));

    // A learning rate that blows the heads up: the loss stops being a number, the run
    // stops naming the step, and the base model keeps segmenting as before (the one
    // mask made so far is the sample).
    let opts = TeachOptions {
        epochs: 3,
        lr: 1e30,
        augment: false,
        source: TeachSource::Masks,
        ..TeachOptions::default()
    };
    ws.start_finetune(&opts).expect("a run starts");
    let err = run_to_end(&mut ws).expect_err("the loss diverges");
    println!("{err}");
    assert!(err.message.contains("not a number at step"), "{err}");
    let state = ws.teach_state();
    assert!(!state.running && !state.tuned && state.using == ModelChoice::Base);
    assert_eq!(segment(&mut ws, a.key_slice, a.box_xyxy), base_mask);

    // More embeddings than the browser's engine holds: refused before any work.
    let (w, h, d) = (16usize, 16usize, 200usize);
    let mut big = Volume::from_bytes(&ct(&a.name, ".nii.gz")).expect("volume");
    big.dims = [w, h, d];
    big.geometry.dims = [w, h, d];
    big.data = vec![0.0; w * h * d];
    let doc = Document::volume("big", big.clone(), None).expect("document");
    ws.open(doc);
    let mut labels = vec![0u8; w * h * d];
    for k in 0..d {
        for y in 4..12 {
            for x in 4..12 {
                labels[k * w * h + y * w + x] = 1;
            }
        }
    }
    let bytes = write_nifti_mask_uncompressed(&big.geometry, &labels).expect("nifti");
    ws.open_labels(&bytes, "big_gt.nii").expect("labels");
    let err = ws
        .start_finetune(&TeachOptions::default())
        .expect_err("too large");
    println!("{err}");
    assert_eq!(err.kind, ErrorKind::TooLarge);
    assert!(err.message.contains("augmentation"));
    assert!(!ws.teach_state().running);
}

/// A SAM 2 model (the tiny SAM 2.1 fixture) taught on a clip with a zip of PNG masks,
/// one per frame as the page's PNG export writes them: the tuned model segments, and
/// its export is a SAM 2 checkpoint that loads again and gives the same mask.
#[test]
fn teach_a_sam2_model_on_a_clip_with_png_masks() {
    let (w, h, n) = (160, 144, 6);
    let mut ws = Workspace::new(medseg::cpu_device());
    let weights = read(&sam2_small_dir().join("weights.safetensors"));
    ws.load_model(weights, None).expect("sam2-small loads");
    let (frames, masks): (Vec<_>, Vec<_>) = (0..n).map(|i| disc_frame(i, w, h)).unzip();
    ws.open(Document::clip("discs", frames.clone()).expect("clip"));

    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (i, m) in masks.iter().enumerate() {
        let bytes: Vec<u8> = m.iter().map(|&v| u8::from(v != 0)).collect();
        zip.start_file(
            format!("mask_{i:05}.png"),
            zip::write::SimpleFileOptions::default(),
        )
        .expect("zip entry");
        zip.write_all(&encode_mask_png(&bytes, w, h).expect("png"))
            .expect("zip write");
    }
    let zip = zip.finish().expect("zip").into_inner();
    let labels = ws
        .open_labels(&zip, "masks.zip")
        .expect("a zip of PNG masks");
    assert_eq!((labels.frames, labels.values), (n, 1));

    let opts = TeachOptions {
        epochs: 3,
        lr: 1e-3,
        augment: false,
        validation: false,
        ..TeachOptions::default()
    };
    ws.start_finetune(&opts).expect("a SAM 2 run starts");
    run_to_end(&mut ws).expect("the run finishes");
    let state = ws.teach_state();
    let losses: Vec<f64> = state
        .report
        .as_ref()
        .expect("report")
        .history
        .iter()
        .map(|e| e.loss.total)
        .collect();
    println!("sam2-small on {n} disc frames: losses {losses:?}");
    assert!(state.using == ModelChoice::Tuned && losses.len() == 3);

    let b = [30.0, 35.0, 85.0, 90.0];
    let tuned = segment(&mut ws, 1, b);
    let bytes = pollster::block_on(ws.export_tuned()).expect("export");
    let mut again = Workspace::new(medseg::cpu_device());
    let info = again.load_model(bytes, None).expect("the tuned file loads");
    assert_eq!(info.architecture, medseg::app::ModelKind::Sam2);
    again.open(Document::clip("discs", frames).expect("clip"));
    assert_eq!(segment(&mut again, 1, b), tuned);
}
