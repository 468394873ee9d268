//! `medseg bench`: time the model on this machine (BENCHMARKS.md), with real weights or
//! random ones of a SAM 2 preset.

use std::path::{Path, PathBuf};
use std::time::Instant;

use medseg::app::LoadedModel;
use medseg::app::bench::{FINE_TUNE_WARM_UP, bench_finetune_step, bench_model, oracle_batch};
use medseg::app::training::FineTuneConfig;
use medseg::model::config::Sam2Preset;
use medseg::model::sam2_expected_keys;
use medseg::weights::{HostTensor, TensorStore};

use crate::common::{CliResult, preset, read_weights};

/// Which weights a benchmark runs: a file, or random weights of a preset.
#[derive(clap::Args)]
pub struct Weights {
    #[command(flatten)]
    source: WeightSource,
    /// SAM 2 architecture for --model weights that do not name it.
    #[arg(long, value_parser = preset)]
    config: Option<Sam2Preset>,
}

#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct WeightSource {
    /// Weights file (.safetensors, .pt, .pth).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Random weights of a SAM 2 preset (medsam2-t512, sam2.1-t), for timing without a
    /// checkpoint.
    #[arg(long, value_parser = preset)]
    random: Option<Sam2Preset>,
}

impl Weights {
    /// The model on the CPU.
    pub fn load(&self) -> CliResult<LoadedModel> {
        let device = medseg::cpu_device();
        let (store, preset) = match (&self.source.model, self.source.random) {
            (Some(path), _) => (read_weights(path)?, self.config),
            (None, Some(p)) => {
                let keys = sam2_expected_keys(&p.config(), &device).map_err(|e| e.to_string())?;
                (random_store(keys), Some(p))
            }
            (None, None) => return Err("give --model WEIGHTS or --random PRESET".into()),
        };
        let (model, _) =
            LoadedModel::load(store, preset, None, &device).map_err(|e| e.to_string())?;
        Ok(model)
    }
}

/// Time the image encoder and the prompt + mask decoder (medians after one warm-up),
/// or with --finetune LiteMedSAM's decoder training step.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    weights: Weights,
    /// Timed runs.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Time a LiteMedSAM decoder training step (forward, loss, backward, AdamW) on the
    /// batch of this fine-tuning fixture
    /// (../shared/fixtures/finetune/lite-medsam-step.safetensors) instead.
    #[arg(long, value_name = "FIXTURE")]
    finetune: Option<PathBuf>,
    /// Batch sizes for --finetune: multiples of the fixture's samples.
    #[arg(long, value_delimiter = ',', default_value = "4,16")]
    batch: Vec<usize>,
    /// Samples per forward and backward pass for --finetune (default: the whole batch
    /// in one pass, as PyTorch's step; `medseg finetune` uses 4).
    #[arg(long)]
    micro_batch: Option<usize>,
}

pub fn run(a: Args) -> CliResult {
    let model = a.weights.load()?;
    if let Some(fixture) = &a.finetune {
        return run_finetune(&model, fixture, &a);
    }
    // The pool the models run on (RAYON_NUM_THREADS sets it), not the machine's cores.
    let threads = rayon::current_num_threads();
    let started = Instant::now();
    let now = || started.elapsed().as_secs_f64() * 1e3;
    let f = pollster::block_on(bench_model(&model, a.runs, &now)).map_err(|e| e.to_string())?;
    println!(
        "model {} image_size={} threads={threads} runs={} (median after 1 warm-up)",
        model.kind().name(),
        f.image_size,
        f.runs
    );
    let (what, gflop) = match (&model, f.image_size) {
        // Encoder GFLOP per image measured by ../shared/reference/flops.py for the
        // official models (only to print throughput).
        (LoadedModel::Sam2(_), 512) => ("encoder (set_image)", Some(62.9)),
        (LoadedModel::Sam2(_), _) => ("encoder (set_image)", None),
        (LoadedModel::LiteMedSam(_), _) => ("encoder (TinyViT)", Some(75.0)),
    };
    match gflop {
        Some(g) => println!(
            "{what:<24}{:9.1} ms   {:.1} GFLOP/s ({g} GFLOP)",
            f.encoder_ms,
            g / (f.encoder_ms / 1e3)
        ),
        None => println!("{what:<24}{:9.1} ms", f.encoder_ms),
    }
    println!(
        "prompt + decoder        {:9.2} ms   (box, single mask)",
        f.decoder_ms
    );
    Ok(())
}

/// `medseg bench --finetune`: the training step's medians per batch size.
fn run_finetune(model: &LoadedModel, fixture: &Path, a: &Args) -> CliResult {
    let LoadedModel::LiteMedSam(lite) = model else {
        return Err(
            "--finetune times LiteMedSAM's decoder step on its fine-tuning oracle's batch: \
             give LiteMedSAM weights"
                .to_string(),
        );
    };
    let store = read_weights(fixture)?;
    let threads = rayon::current_num_threads();
    println!(
        "LiteMedSAM decoder training step, threads={threads} runs={} (median after \
         {FINE_TUNE_WARM_UP} warm-up steps)",
        a.runs
    );
    let started = Instant::now();
    let now = || started.elapsed().as_secs_f64() * 1e3;
    for &n in &a.batch {
        let batch = oracle_batch(&store, n, &medseg::cpu_device()).map_err(|e| e.to_string())?;
        let config = FineTuneConfig {
            micro_batch: a.micro_batch.unwrap_or(n),
            ..FineTuneConfig::default()
        };
        let f = pollster::block_on(bench_finetune_step(lite, &batch, config, a.runs, &now))
            .map_err(|e| e.to_string())?;
        println!(
            "batch {:2} (micro-batch {:2}): step {:8.1} ms  (forward+loss {:.1}, AdamW {:.1})  \
             step-1 loss {:.6}",
            f.batch, f.micro_batch, f.step_ms, f.forward_ms, f.adamw_ms, f.first_loss
        );
    }
    Ok(())
}

/// Deterministic pseudo-random weights (xorshift, N(0, 0.02)-ish) for a config's
/// expected keys.
fn random_store(keys: Vec<(String, Vec<usize>)>) -> TensorStore {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.07
    };
    let tensors = keys
        .into_iter()
        .map(|(k, shape)| {
            let data = (0..shape.iter().product::<usize>())
                .map(|_| next())
                .collect();
            (k, HostTensor::new(shape, data))
        })
        .collect();
    TensorStore::new(tensors, Default::default())
}
