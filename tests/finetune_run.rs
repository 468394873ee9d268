//! Fine-tuning from labelled data to a tuned checkpoint (issue 10): the samples are
//! the oracle's (`export_finetune_fixtures.py`: model input, ground truth at 256, the
//! jittered box), one seed gives one loss curve, the run goes one step at a time and
//! a cancel keeps the best epoch, `medseg finetune` refuses bad input with a clear
//! message, and a model tuned on two CT cases tracks the third better than the base
//! model (`medseg track`'s recipe) and loads in every command.
//!
//! Needs the LiteMedSAM checkpoint (`$MEDSEG_LITE_PTH` or
//! `weights/.cache/lite_medsam.pth`); fails, never skips, without it.

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use common::{
    Fixtures, dice, lite_cases, lite_medsam_checkpoint, medseg, medseg_ok, read_store,
    sam2_small_dir, shared,
};
use medseg::app::training::{
    Dataset, EpochRecord, FineTuneConfig, Labels, Phase, RunConfig, StopReason, TrainingRun,
    jittered_box,
};
use medseg::app::{Directions, Document, LoadedModel, Workspace};
use medseg::io::volume::{Volume, write_nifti_mask_uncompressed};
use medseg::predictor::ImagePrompt;
use medseg::preprocess::LiteMedSamTransform;
use medseg::weights::{HostTensor, TensorStore, safetensors_io};

fn ct(name: &str, suffix: &str) -> PathBuf {
    shared().join(format!("data/ct-lesion/{name}{suffix}"))
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

fn lite_medsam() -> LoadedModel {
    LoadedModel::from_bytes(
        &read(&lite_medsam_checkpoint()),
        None,
        None,
        &medseg::cpu_device(),
    )
    .expect("LiteMedSAM loads")
    .0
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("medseg-finetune-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The oracle's batch: its model inputs, ground truths and boxes are what the data
/// pipeline makes of the same slices and jitters, from the npz and from the NIfTI pair.
#[test]
fn samples_are_the_oracles() {
    let fx = Fixtures(read_store(
        &shared().join("fixtures/finetune/lite-medsam-step.safetensors"),
    ));
    let json: serde_json::Value = serde_json::from_slice(&read(
        &shared().join("fixtures/finetune/lite-medsam-step.json"),
    ))
    .expect("oracle JSON");
    let images = fx.host("batch.image");
    let gts = fx.host("batch.gt256");
    let boxes = fx.host("batch.box256");
    let s = 256;
    let mut worst_input = 0f32;
    for (i, item) in json["batch"].as_array().expect("batch").iter().enumerate() {
        let name = item["case"].as_str().expect("case");
        let slice = item["slice"].as_u64().expect("slice") as usize;
        let jitter: Vec<usize> = item["jitter"]
            .as_array()
            .expect("jitter")
            .iter()
            .map(|v| v.as_u64().expect("px") as usize)
            .collect();
        let mut npz = Dataset::new(LiteMedSamTransform::default());
        npz.add_npz(name, &read(&ct(name, ".npz")))
            .expect("npz case");
        let mut nii = Dataset::new(LiteMedSamTransform::default());
        nii.add_volume_pair(
            name,
            &read(&ct(name, ".nii.gz")),
            &read(&ct(name, "_gt.nii.gz")),
        )
        .expect("NIfTI pair");
        let npz_views = npz.sample_views();
        let nii_views = nii.sample_views();
        let v = npz_views
            .iter()
            .find(|v| v.frame == slice)
            .unwrap_or_else(|| panic!("{name}: no sample on slice {slice}"));
        let w = nii_views
            .iter()
            .find(|v| v.frame == slice)
            .expect("the NIfTI pair's sample");
        assert_eq!(v.input, w.input, "{name}: npz and NIfTI inputs");
        assert_eq!(v.gt, w.gt, "{name}: npz and NIfTI ground truths");

        let input = v.input.expect("not embedded yet");
        let want = &images.data[i * 3 * s * s..(i + 1) * 3 * s * s];
        let err = input
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        worst_input = worst_input.max(err);
        let want_gt: Vec<u8> = gts.data[i * s * s..(i + 1) * s * s]
            .iter()
            .map(|&g| u8::from(g > 0.5))
            .collect();
        assert_eq!(
            v.gt,
            &want_gt[..],
            "{name} slice {slice}: ground truth at 256"
        );
        let j: [usize; 4] = jitter.try_into().expect("four jitters");
        let b = jittered_box(v.gt, s, j).expect("a box");
        assert_eq!(
            &b[..],
            &boxes.data[i * 4..i * 4 + 4],
            "{name} slice {slice}: box"
        );
    }
    println!("model input vs the oracle: max abs {worst_input:.2e}");
    assert!(worst_input <= 1e-6, "model input max abs {worst_input}");
}

/// A case's volume with its labels kept on `frames` only.
fn case_on(name: &str, frames: &[usize]) -> (Document, Labels) {
    let volume = Volume::from_bytes(&read(&ct(name, ".nii.gz"))).expect("volume");
    let gt = Volume::from_bytes(&read(&ct(name, "_gt.nii.gz"))).expect("labels");
    let plane = gt.width() * gt.height();
    let values: Vec<u16> = gt
        .data
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            if frames.contains(&(i / plane)) {
                v as u16
            } else {
                0
            }
        })
        .collect();
    let labels = Labels::new([gt.depth(), gt.height(), gt.width()], values).expect("label map");
    let doc = Document::volume(name, volume, None).expect("document");
    (doc, labels)
}

struct Finished {
    history: Vec<EpochRecord>,
    steps: [usize; 3],
    run: TrainingRun,
}

/// A short run on two labelled slices of one case, validated on one slice of
/// another; `cancel_after` epochs, then a cancel.
fn short_run(model: &LoadedModel, seed: u64, cancel_after: Option<usize>) -> Finished {
    let cases = lite_cases();
    let (a, b) = (&cases[2], &cases[0]);
    let mut train = Dataset::new(LiteMedSamTransform::default());
    let (doc, labels) = case_on(&a.name, &[a.key_slice - 1, a.key_slice]);
    train.add_document(&doc, &labels).expect("training case");
    let mut val = Dataset::new(LiteMedSamTransform::default());
    let (doc, labels) = case_on(&b.name, &[b.key_slice]);
    val.add_document(&doc, &labels).expect("validation case");
    let config = RunConfig {
        epochs: 2,
        batch: 2,
        tune: FineTuneConfig {
            micro_batch: 1,
            ..FineTuneConfig::default()
        },
        patience: 0,
        seed,
        ..RunConfig::default()
    };
    let mut run = TrainingRun::new(model, train, Some(val), config).expect("run");
    let mut steps = [0usize; 3];
    while !run.is_done() {
        let before = run.progress().phase;
        let p = pollster::block_on(run.step()).expect("step");
        match before {
            Phase::Embedding => steps[0] += 1,
            Phase::Training => steps[1] += 1,
            Phase::Validating => steps[2] += 1,
            Phase::Done => unreachable!(),
        }
        if let (Some(r), Some(n)) = (p.finished_epoch, cancel_after)
            && r.epoch == n
        {
            run.cancel();
        }
    }
    Finished {
        history: run.report().history,
        steps,
        run,
    }
}

/// One seed and one data set give one loss curve (another seed another); the run
/// takes one step per embedding (2 slices × 4 flips + 1), per micro-batch pass and per
/// validation pass, and a cancel keeps the best epoch so far.
#[test]
fn one_seed_gives_one_loss_curve_step_by_step() {
    let model = lite_medsam();
    let t = Instant::now();
    let a = short_run(&model, 0, None);
    println!("a run of 2 epochs: {:.1?}", t.elapsed());
    let b = short_run(&model, 0, None);
    for r in &a.history {
        println!(
            "epoch {}: loss {:.6} (Dice {:.6}, BCE {:.6}, IoU {:.6}), val Dice {:?}",
            r.epoch, r.loss.total, r.loss.dice, r.loss.bce, r.loss.iou_mse, r.val_dice
        );
    }
    assert_eq!(a.history.len(), 2);
    assert_eq!(a.history, b.history, "seed 0 twice");
    let p = a.run.progress();
    assert_eq!(p.work.embeddings, [9, 9]);
    assert_eq!(p.work.train_passes, [4, 4]);
    assert_eq!(p.work.val_passes, [3, 3]);
    // One step per unit of work.
    assert_eq!(a.steps, [9, 4, 3]);
    assert_eq!(p.stopped, Some(StopReason::Completed));

    let c = short_run(&model, 1, Some(1));
    assert_eq!(c.history.len(), 1, "cancelled after epoch 1");
    assert_ne!(
        c.history[0], a.history[0],
        "seed 1 draws other flips and boxes"
    );
    let report = c.run.report();
    assert_eq!(report.stopped, Some(StopReason::Cancelled));
    let best = report.best_epoch;
    let base = report.base_val_dice.expect("base validated");
    assert_eq!(
        best,
        usize::from(c.history[0].val_dice.expect("validated") > base),
        "the better of the base and epoch 1 is kept"
    );
}

/// A uint8 NIfTI with `volume`'s geometry and these voxels.
fn write_labels(path: &Path, volume: &Volume, voxels: &[u8]) {
    let bytes = write_nifti_mask_uncompressed(&volume.geometry, voxels).expect("nifti");
    std::fs::write(path, bytes).expect("write labels");
}

fn fails_with(args: &[&str], words: &[&str]) {
    let out = medseg(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "medseg {}: succeeded",
        args.join(" ")
    );
    for w in words {
        assert!(
            err.contains(w),
            "medseg {}: `{err}` lacks `{w}`",
            args.join(" ")
        );
    }
    println!("{}", err.lines().last().unwrap_or_default());
}

/// Labels of another shape, labels without foreground and weights of no known model:
/// each refused, saying why (SAM 2 / MedSAM2 weights are taken: tests/finetune_sam2.rs).
#[test]
fn finetune_refuses_bad_input_clearly() {
    let dir = scratch("bad");
    let cases = lite_cases();
    let (a, b) = (&cases[0].name, &cases[1].name);
    let weights = lite_medsam_checkpoint();
    let weights = weights.to_str().expect("path");
    let out = dir.join("never.safetensors");
    let out = out.to_str().expect("path");
    let image = ct(a, ".nii.gz");
    let volume = Volume::from_bytes(&read(&image)).expect("volume");

    // The labels of another case (13 slices) over this one (16).
    let pair = format!("{}:{}", image.display(), ct(b, "_gt.nii.gz").display());
    fails_with(
        &[
            "finetune", "--model", weights, "--train", &pair, "--out", out,
        ],
        &["labels are", "must match"],
    );
    // An all-zero label volume.
    let empty = dir.join("empty.nii");
    write_labels(&empty, &volume, &vec![0; volume.len()]);
    let pair = format!("{}:{}", image.display(), empty.display());
    fails_with(
        &[
            "finetune", "--model", weights, "--train", &pair, "--out", out,
        ],
        &["no foreground"],
    );
    // Weights of no model MedSeg knows.
    let mut t = std::collections::BTreeMap::new();
    t.insert(
        "layer.weight".to_string(),
        HostTensor::new(vec![2], vec![0.0; 2]),
    );
    let bytes = safetensors_io::write(
        &t,
        &Default::default(),
        safetensors_io::StoredPrecision::F32,
    )
    .expect("safetensors");
    let unknown = dir.join("unknown.safetensors");
    std::fs::write(&unknown, bytes).expect("write");
    let npz = ct(a, ".npz");
    let npz = npz.to_str().expect("path");
    fails_with(
        &[
            "finetune",
            "--model",
            unknown.to_str().expect("path"),
            "--train",
            npz,
            "--out",
            out,
        ],
        &["not a model MedSeg knows"],
    );
    assert!(!Path::new(out).exists(), "nothing written");
}

/// The 3-D Dice of `medseg track`'s recipe (key-slice box, both directions over the
/// lesion's range) against the ground truth.
fn track_dice(model: &LoadedModel, case: &common::LiteCase) -> f64 {
    let volume = Volume::from_bytes(&read(&ct(&case.name, ".nii.gz"))).expect("volume");
    let gt = Volume::from_bytes(&read(&ct(&case.name, "_gt.nii.gz"))).expect("gt");
    let mut ws = Workspace::new(medseg::cpu_device());
    ws.set_model(model.clone());
    ws.open(Document::volume(&case.name, volume, None).expect("doc"));
    pollster::block_on(ws.add_prompt(1, case.key_slice, &ImagePrompt::boxed(case.box_xyxy)))
        .expect("box");
    pollster::block_on(ws.propagate(Directions::Both, Some(case.z_range), |_, _| {}))
        .expect("propagate");
    let mask = ws.masks().label_map(&ws.doc().expect("doc"), None);
    dice(&mask, &gt.to_mask())
}

/// Fine-tuning LiteMedSAM on two CT cases with the third as validation (3 epochs of
/// the default recipe: batch 16, flips, jitter 5, seed 0) raises the third's 3-D Dice
/// above the base model's (measured: 0.8146 → 0.8156; ~3.5 min on 2 busy cores); the tuned file is a complete checkpoint
/// (architecture, base sha256, licence, history; no file names) that loads like the
/// base and that `medseg segment` runs.
#[test]
fn tuning_on_two_cases_tracks_the_third_better() {
    let dir = scratch("learns");
    let cases = lite_cases();
    let (val, train): (Vec<_>, Vec<_>) = cases
        .iter()
        .partition(|c| c.name == "CT_Lesion_000002_03_01_035-047");
    let val = val[0];
    let pair = |c: &common::LiteCase| {
        format!(
            "{}:{}",
            ct(&c.name, ".nii.gz").display(),
            ct(&c.name, "_gt.nii.gz").display()
        )
    };
    let weights = lite_medsam_checkpoint();
    let out = dir.join("tuned.safetensors");
    let log = dir.join("run.jsonl");
    let (t0, t1, v) = (pair(train[0]), pair(train[1]), pair(val));
    let t = Instant::now();
    medseg_ok(&[
        "finetune",
        "--model",
        weights.to_str().expect("path"),
        "--train",
        &t0,
        &t1,
        "--val",
        &v,
        "--epochs",
        "3",
        "--out",
        out.to_str().expect("path"),
        "--log",
        log.to_str().expect("path"),
    ]);
    let train_time = t.elapsed();
    let text = std::fs::read_to_string(&log).expect("log");
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        if v["event"] == "epoch" {
            println!(
                "epoch {}: loss {:.4}, val Dice {:.4}",
                v["epoch"],
                v["loss"]["total"].as_f64().expect("loss"),
                v["val_dice"].as_f64().expect("val Dice")
            );
        }
    }

    let bytes = read(&out);
    let store = TensorStore::from_bytes(&bytes).expect("tuned safetensors");
    let base_bytes = read(&weights);
    let meta = &store.metadata;
    assert_eq!(
        meta.get("medseg_architecture").map(String::as_str),
        Some("lite-medsam")
    );
    assert_eq!(meta.get("license").map(String::as_str), Some("Apache-2.0"));
    let record: serde_json::Value =
        serde_json::from_str(meta.get("medseg_finetune").expect("record")).expect("JSON");
    assert_eq!(
        record["base_sha256"].as_str(),
        Some(medseg::app::training::checkpoint::sha256_hex(&base_bytes).as_str())
    );
    assert_eq!(record["train"]["cases"], 2);
    assert_eq!(record["val"]["cases"], 1);
    assert!(record["epochs_run"].as_u64().expect("epochs") >= 1);
    assert!(
        !meta.values().any(|v| v.contains("CT_Lesion")),
        "no file names"
    );
    let base_store = TensorStore::from_bytes(&base_bytes).expect("base");
    let changed = base_store
        .iter()
        .filter(|(k, v)| store.get(k).is_some_and(|t| t != *v))
        .map(|(k, _)| k.clone())
        .collect::<Vec<_>>();
    assert!(
        !changed.is_empty() && changed.iter().all(|k| k.starts_with("mask_decoder.")),
        "only the mask decoder changed: {changed:?}"
    );

    let device = medseg::cpu_device();
    let (tuned, info) = LoadedModel::from_bytes(&bytes, None, None, &device).expect("tuned loads");
    assert_eq!(info.architecture, medseg::app::ModelKind::LiteMedSam);
    let base = lite_medsam();
    let t = Instant::now();
    let before = track_dice(&base, val);
    let after = track_dice(&tuned, val);
    println!(
        "{}: 3-D Dice base {before:.4}, tuned {after:.4}; fine-tuning {train_time:.1?}, \
         tracking both {:.1?}",
        val.name,
        t.elapsed()
    );
    assert!(after > before, "tuned {after:.4} vs base {before:.4}");

    // `medseg segment` runs the tuned file as it runs the base.
    let mask = dir.join("mask.png");
    medseg_ok(&[
        "segment",
        "--model",
        out.to_str().expect("path"),
        "--image",
        sam2_small_dir().join("image.png").to_str().expect("path"),
        "--box",
        "20,20,100,100",
        "--out",
        mask.to_str().expect("path"),
    ]);
    assert!(mask.is_file());
}
