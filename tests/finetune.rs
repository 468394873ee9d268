//! Fine-tuning LiteMedSAM's heads against the official recipe run by PyTorch
//! (`shared/reference/export_finetune_fixtures.py`, the oracle
//! `shared/fixtures/finetune/lite-medsam-step.*`): the forward pass, each loss term,
//! the gradient of every mask-decoder and prompt-encoder tensor, and the decoder
//! after two AdamW steps; that micro-batches give the whole batch's update; and
//! that the loss falls.
//!
//! Needs the checkpoint (`$MEDSEG_LITE_PTH` or `weights/.cache/lite_medsam.pth`);
//! fails, never skips, without it.

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use burn::tensor::{Tensor, TensorData};
use common::{Fixtures, host_of, lite_medsam_checkpoint, max_abs_diff, read_store, shared};
use medseg::app::training::{FineTuneConfig, FineTuner, LossTerms, TrainBatch};
use medseg::model::lite_medsam::LiteMedSam;
use medseg::model::load_lite_medsam;
use medseg::weights::{HostTensor, TensorStore};

/// Low-res logits and predicted IoU of step 1: max abs.
const TOL_FORWARD: f32 = 1e-4;
/// Each loss term of both steps: relative.
const TOL_LOSS_REL: f64 = 1e-5;
/// Every gradient tensor: relative L2. The attention key biases' gradients are zero
/// in exact arithmetic (q·b_k shifts every score of a query alike, and softmax
/// ignores such a shift), so both sides hold rounding noise (‖g‖ ~1e-9, relative L2
/// ~1 between them): theirs is measured against the gradient of the same
/// projection's weight instead, at the same tolerance.
const TOL_GRAD_REL_L2: f64 = 1e-4;
/// The decoder after two AdamW steps: max abs, over the elements whose step-1
/// gradient (the oracle's) is at least [`AFTER2_MIN_GRAD`].
const TOL_AFTER2: f32 = 1e-6;
/// AdamW moves an element by lr·g/(|g| + ε) in its first step (ε = 1e-8): where
/// |g| is near ε, a rounding-level difference of the gradient (~1e-9 here, 1e-5 of
/// the tensor's gradient scale: summation order) changes the step by a fraction of
/// lr = 6e-5, whatever the implementation. Measured: the few elements over 1e-6
/// (≤ 4 per tensor outside the key biases) all have |g| ≤ 2.6e-8. Below this
/// bound an element is held to [`TOL_AFTER2_NEAR_ZERO_GRAD`] instead.
const AFTER2_MIN_GRAD: f32 = 1e-7;
/// Elements with |g| < [`AFTER2_MIN_GRAD`]: two steps differ by less than one lr.
const TOL_AFTER2_NEAR_ZERO_GRAD: f32 = 6e-5;
/// Our frozen encoder on `batch.image` vs `batch.embedding`: max abs.
const TOL_EMBEDDING: f32 = 1e-4;

fn load_model() -> LiteMedSam {
    let bytes = std::fs::read(lite_medsam_checkpoint()).expect("reading the checkpoint");
    let store = TensorStore::from_bytes(&bytes).expect("parsing the checkpoint");
    load_lite_medsam(store, &medseg::cpu_device()).expect("loading LiteMedSAM")
}

fn oracle() -> Fixtures {
    Fixtures(read_store(
        &shared().join("fixtures/finetune/lite-medsam-step.safetensors"),
    ))
}

/// The JSON `losses` of the oracle, per step.
fn oracle_losses() -> Vec<LossTerms> {
    let path = shared().join("fixtures/finetune/lite-medsam-step.json");
    let text = std::fs::read_to_string(&path).expect("reading the oracle's JSON");
    let json: serde_json::Value = serde_json::from_str(&text).expect("parsing the oracle's JSON");
    let f = |v: &serde_json::Value, k: &str| v[k].as_f64().expect("a loss value");
    json["losses"]
        .as_array()
        .expect("`losses`")
        .iter()
        .map(|l| LossTerms {
            dice: f(l, "dice"),
            bce: f(l, "bce"),
            iou_mse: f(l, "iou_mse"),
            object_score: None,
            total: f(l, "total"),
        })
        .collect()
}

fn oracle_batch(fx: &Fixtures) -> TrainBatch {
    let device = medseg::cpu_device();
    TrainBatch {
        embeddings: fx.tensor("batch.embedding", &device),
        high_res: None,
        boxes: fx.tensor("batch.box256", &device),
        gt: fx.tensor("batch.gt256", &device),
    }
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    pollster::block_on(f)
}

fn rel(got: f64, want: f64) -> f64 {
    (got - want).abs() / want.abs()
}

/// The weight beside a key bias (`….k_proj.bias` → `….k_proj.weight`); any other
/// key unchanged.
fn key_weight(k: &str) -> String {
    match k.strip_suffix("k_proj.bias") {
        Some(layer) => format!("{layer}k_proj.weight"),
        None => k.to_string(),
    }
}

fn l2(a: &[f32]) -> f64 {
    a.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt()
}

fn l2_diff(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// ‖a − b‖ / ‖b‖ (‖a − b‖ where `b` is all zeros, as torch's gradients of the
/// hypernetworks of the unused mask tokens are).
fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    let (d, n) = (l2_diff(a, b), l2(b));
    if n > 0.0 { d / n } else { d }
}

/// Worst error per group, printed as a table; a breach of any tolerance fails.
#[derive(Default)]
struct Worst {
    rows: BTreeMap<String, (f64, String, f64)>,
    failures: Vec<String>,
}

impl Worst {
    fn add(&mut self, group: &str, name: &str, err: f64, tol: f64) {
        let w = self
            .rows
            .entry(group.to_string())
            .or_insert((0.0, String::new(), tol));
        if err >= w.0 || err.is_nan() {
            *w = (err, name.to_string(), tol);
        }
        if err.is_nan() || err > tol {
            self.failures
                .push(format!("{group} {name}: {err:.3e} > {tol:.0e}"));
        }
    }

    fn loss(&mut self, step: usize, got: &LossTerms, want: &LossTerms) {
        let group = "loss terms (rel)";
        self.add(
            group,
            &format!("step{step}.dice"),
            rel(got.dice, want.dice),
            TOL_LOSS_REL,
        );
        self.add(
            group,
            &format!("step{step}.bce"),
            rel(got.bce, want.bce),
            TOL_LOSS_REL,
        );
        self.add(
            group,
            &format!("step{step}.iou_mse"),
            rel(got.iou_mse, want.iou_mse),
            TOL_LOSS_REL,
        );
        self.add(
            group,
            &format!("step{step}.total"),
            rel(got.total, want.total),
            TOL_LOSS_REL,
        );
    }

    /// A gradient tensor: relative L2, the key biases' against `weight`'s
    /// gradient (see [`TOL_GRAD_REL_L2`]).
    fn grad(
        &mut self,
        group: &str,
        k: &str,
        got: &HostTensor,
        want: &HostTensor,
        weight: &HostTensor,
    ) {
        if k.ends_with("k_proj.bias") {
            let err = l2_diff(&got.data, &want.data) / l2(&weight.data);
            self.add("grad key biases (L2 / weight's)", k, err, TOL_GRAD_REL_L2);
        } else {
            self.add(group, k, rel_l2(&got.data, &want.data), TOL_GRAD_REL_L2);
        }
    }

    /// Parameters after AdamW steps: max abs, split by the size of the step-1
    /// gradient `g1` (see [`AFTER2_MIN_GRAD`]).
    fn update(
        &mut self,
        group: &str,
        k: &str,
        got: &HostTensor,
        want: &HostTensor,
        g1: &HostTensor,
    ) {
        assert_eq!(got.shape, want.shape, "`{k}` shape");
        let (mut err, mut err_near_zero) = (0f32, 0f32);
        for ((a, b), g) in got.data.iter().zip(&want.data).zip(&g1.data) {
            let e = (a - b).abs();
            if g.abs() >= AFTER2_MIN_GRAD {
                err = err.max(e);
            } else {
                err_near_zero = err_near_zero.max(e);
            }
        }
        self.add(group, k, err.into(), TOL_AFTER2.into());
        self.add(
            &format!("{group}, |g| < 1e-7"),
            k,
            err_near_zero.into(),
            TOL_AFTER2_NEAR_ZERO_GRAD.into(),
        );
    }

    fn finish(self) {
        println!("{:<42} {:>10} {:>8}  worst", "group", "error", "tol");
        for (g, (e, n, tol)) in &self.rows {
            println!("{g:<42} {e:>10.3e} {tol:>8.0e}  {n}");
        }
        assert!(
            self.failures.is_empty(),
            "parity failures:\n{}",
            self.failures.join("\n")
        );
    }
}

/// The oracle's tensors `<kind>.<module>.…` against ours (`<module>.…`): every key
/// the oracle has must be ours too, and no other (a gradient where torch has none
/// would be stepped).
fn compare_keys(
    fx: &Fixtures,
    kind: &str,
    module: &str,
    ours: &BTreeMap<String, HostTensor>,
) -> Vec<(String, HostTensor, HostTensor)> {
    let prefix = format!("{kind}.");
    let theirs: Vec<String> =
        fx.0.iter()
            .filter_map(|(k, _)| k.strip_prefix(&prefix).map(str::to_string))
            .filter(|k| k.starts_with(module))
            .collect();
    let mine: Vec<String> = ours
        .keys()
        .filter(|k| k.starts_with(module))
        .cloned()
        .collect();
    assert_eq!(mine, theirs, "the tensors `{prefix}{module}*`");
    theirs
        .into_iter()
        .map(|k| {
            let want = fx.host(&format!("{prefix}{k}")).clone();
            let got = ours[&k].clone();
            assert_eq!(got.shape, want.shape, "`{prefix}{k}` shape");
            (k, got, want)
        })
        .collect()
}

#[test]
fn a_training_step_matches_the_official_recipe() {
    let model = load_model();
    let fx = oracle();
    let want_losses = oracle_losses();
    let batch = oracle_batch(&fx);
    let mut worst = Worst::default();

    // The frozen encoder: our embedding of the oracle's images.
    if fx.has("batch.image") {
        let t = Instant::now();
        let emb = model.encode(fx.tensor("batch.image", &medseg::cpu_device()));
        let (shape, data) = host_of(&emb);
        let err = max_abs_diff("batch.embedding", &shape, &data, fx.host("batch.embedding"));
        println!("encoder on batch.image: {:.2?}", t.elapsed());
        worst.add(
            "encoder embedding (abs)",
            "batch.embedding",
            err.into(),
            TOL_EMBEDDING.into(),
        );
    }

    // Step 1's forward pass and gradients, with the prompt encoder's too (its
    // gradients are exported by the oracle; only the decoder is stepped there).
    let both = FineTuner::new(
        &model,
        FineTuneConfig {
            train_prompt_encoder: true,
            ..FineTuneConfig::default()
        },
    );
    let out = both.forward(&batch);
    for (name, got) in [
        ("step1.low_res_logits", host_of(&out.logits)),
        ("step1.iou_pred", host_of(&out.iou)),
    ] {
        let err = max_abs_diff(name, &got.0, &got.1, fx.host(name));
        worst.add("forward (abs)", name, err.into(), TOL_FORWARD.into());
    }
    let t = Instant::now();
    let g = block(both.gradients(&batch)).expect("gradients");
    println!("forward + backward, batch of 4: {:.2?}", t.elapsed());
    let grads = block(both.official_gradients(&g)).expect("reading gradients");
    for (group, prefix) in [
        ("grad mask_decoder (rel L2)", "mask_decoder."),
        ("grad prompt_encoder (rel L2)", "prompt_encoder."),
    ] {
        for (k, got, want) in compare_keys(&fx, "grad", prefix, &grads) {
            let weight = fx.host(&format!("grad.{}", key_weight(&k)));
            worst.grad(group, &k, &got, &want, weight);
        }
    }

    // Two AdamW steps of the decoder alone, as the oracle.
    let mut tuner = FineTuner::new(&model, FineTuneConfig::default());
    for (i, want) in want_losses.iter().enumerate() {
        let got = block(tuner.step(&batch)).expect("a training step");
        println!("step {}: ours {got:?}\n        torch {want:?}", i + 1);
        worst.loss(i + 1, &got, want);
    }
    let state = block(tuner.official_state()).expect("reading the tuned decoder");
    for (k, got, want) in compare_keys(&fx, "after2", "mask_decoder.", &state) {
        let g1 = fx.host(&format!("grad.{k}"));
        worst.update("decoder after 2 steps (abs)", &k, &got, &want, g1);
    }
    // The prompt encoder was not trained: bit for bit the base model's.
    let base = FineTuner::new(&model, FineTuneConfig::default());
    let base_state = block(base.official_state()).expect("reading the base heads");
    for (k, v) in state
        .iter()
        .filter(|(k, _)| k.starts_with("prompt_encoder."))
    {
        assert_eq!(v, &base_state[k], "{k} changed without being trained");
    }
    worst.finish();
}

/// Sixteen samples from the oracle's four: each slice four times, its box pushed
/// out by 0, 2, 4 and 6 px.
fn batch_of_16(fx: &Fixtures) -> TrainBatch {
    let b = oracle_batch(fx);
    let boxes = fx.host("batch.box256");
    let mut out = Vec::new();
    for k in 0..4 {
        for i in 0..4 {
            let r = &boxes.data[i * 4..i * 4 + 4];
            let d = 2.0 * k as f32;
            out.extend([
                (r[0] - d).max(0.0),
                (r[1] - d).max(0.0),
                (r[2] + d).min(255.0),
                (r[3] + d).min(255.0),
            ]);
        }
    }
    let device = medseg::cpu_device();
    TrainBatch {
        embeddings: Tensor::cat(vec![b.embeddings; 4], 0),
        high_res: None,
        boxes: Tensor::from_data(TensorData::new(out, [16, 4]), &device),
        gt: Tensor::cat(vec![b.gt; 4], 0),
    }
}

/// A batch of 16 as four micro-batches of 4 gives the whole batch's loss, gradient
/// and update, to the oracle's tolerances (the passes only sum in another order).
#[test]
fn micro_batches_give_the_whole_batch_update() {
    let model = load_model();
    let fx = oracle();
    let batch = batch_of_16(&fx);
    let run = |micro_batch: usize| {
        let cfg = FineTuneConfig {
            micro_batch,
            ..FineTuneConfig::default()
        };
        let mut tuner = FineTuner::new(&model, cfg);
        let t = Instant::now();
        let g = block(tuner.gradients(&batch)).expect("gradients");
        let grads = block(tuner.official_gradients(&g)).expect("reading gradients");
        tuner.apply(&g);
        println!(
            "batch of 16 as micro-batches of {micro_batch}: {:.2?}",
            t.elapsed()
        );
        let after = block(tuner.official_state()).expect("reading the decoder");
        (g.loss, grads, after)
    };
    let (loss16, grads16, after16) = run(16);
    let (loss4, grads4, after4) = run(4);
    let mut worst = Worst::default();
    for (name, a, b) in [
        ("dice", loss4.dice, loss16.dice),
        ("bce", loss4.bce, loss16.bce),
        ("iou_mse", loss4.iou_mse, loss16.iou_mse),
        ("total", loss4.total, loss16.total),
    ] {
        worst.add("loss 4x4 vs 16 (rel)", name, rel(a, b), TOL_LOSS_REL);
    }
    assert_eq!(
        grads4.keys().collect::<Vec<_>>(),
        grads16.keys().collect::<Vec<_>>()
    );
    for (k, g16) in &grads16 {
        worst.grad(
            "grad 4x4 vs 16 (rel L2)",
            k,
            &grads4[k],
            g16,
            &grads16[&key_weight(k)],
        );
    }
    // The untrained prompt encoder has no gradient and stays as it was.
    for (k, p16) in after16.iter().filter(|(k, _)| grads16.contains_key(*k)) {
        worst.update("params 4x4 vs 16 (abs)", k, &after4[k], p16, &grads16[k]);
    }
    worst.finish();
}

#[test]
fn twenty_steps_halve_the_training_loss() {
    let model = load_model();
    let fx = oracle();
    let batch = oracle_batch(&fx);
    let mut tuner = FineTuner::new(&model, FineTuneConfig::default());
    let t = Instant::now();
    let first = block(tuner.step(&batch)).expect("step 1");
    for step in 2..=20 {
        let l = block(tuner.step(&batch)).unwrap_or_else(|e| panic!("step {step}: {e}"));
        println!("step {step}: total {:.5}", l.total);
    }
    let last = block(tuner.gradients(&batch))
        .expect("the loss after 20 steps")
        .loss;
    println!(
        "20 steps in {:.2?}: total loss {:.5} -> {:.5} (dice {:.5} -> {:.5})",
        t.elapsed(),
        first.total,
        last.total,
        first.dice,
        last.dice
    );
    assert!(
        last.total <= 0.5 * first.total,
        "20 steps took the loss from {:.5} to {:.5}, not half",
        first.total,
        last.total
    );
    // A loss that is not a number stops the step, naming it, and changes nothing.
    let before = block(tuner.official_state()).expect("reading the heads");
    let mut bad = batch.clone();
    bad.embeddings = bad.embeddings.clone() * f32::NAN;
    let err = block(tuner.step(&bad)).expect_err("a NaN loss");
    assert!(err.to_string().contains("step 21"), "{err}");
    assert!(block(tuner.official_state()).expect("reading the heads") == before);
    // Mismatched tensors are refused before any work.
    let mut short = batch.clone();
    short.gt = short.gt.narrow(0, 0, 3);
    let err = block(tuner.step(&short)).expect_err("3 masks for 4 samples");
    assert!(err.to_string().contains("do not fit"), "{err}");

    // The tuned heads run inference like the base ones.
    let tuned = tuner.tuned(&model);
    let (low, _) = tuned.decode(batch.embeddings.narrow(0, 0, 1), [0.0, 0.0, 255.0, 255.0]);
    assert_eq!(low.dims(), [1, 1, 256, 256]);
}
