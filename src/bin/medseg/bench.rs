//! `medseg bench`: time the model on this machine (BENCHMARKS.md), with real weights or
//! random ones of a SAM 2 preset.

use std::path::{Path, PathBuf};
use std::time::Instant;

use medseg::app::LoadedModel;
use medseg::app::bench::{
    FINE_TUNE_WARM_UP, bench_finetune_step, bench_model, compare_masks, oracle_batch,
    synthetic_image,
};
use medseg::app::device::{Backend, NativeDevice, Precision, open_device};
use medseg::app::document::Document;
use medseg::app::prompts::parse_numbers;
use medseg::app::training::FineTuneConfig;
use medseg::io::image::RgbImage;
use medseg::io::volume::Volume;
use medseg::model::config::Sam2Preset;
use medseg::model::sam2_expected_keys;
use medseg::weights::{HostTensor, TensorStore};

use crate::common::{CliResult, preset, read_file, read_weights};

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

/// Where a benchmark runs: the device and the float type.
#[derive(clap::Args)]
pub struct DeviceArgs {
    /// `cpu` (burn's flex backend) or `wgpu` (Vulkan natively; needs a build with
    /// `--features wgpu`).
    #[arg(long, default_value = "cpu", value_parser = backend)]
    device: Backend,
    /// Float type of the weights and activations: `f32` or `f16` (f16 where the
    /// device computes in it).
    #[arg(long, default_value = "f32", value_parser = precision)]
    dtype: Precision,
}

fn backend(s: &str) -> Result<Backend, String> {
    Backend::parse(s).map_err(|e| e.to_string())
}

fn precision(s: &str) -> Result<Precision, String> {
    Precision::parse(s).map_err(|e| e.to_string())
}

impl DeviceArgs {
    /// Opens the device and prints what it is (the wgpu adapter).
    pub fn open(&self) -> CliResult<NativeDevice> {
        let d = open_device(self.device, self.dtype).map_err(|e| e.to_string())?;
        println!("device {} dtype {}", d.description, d.precision.name());
        Ok(d)
    }
}

impl Weights {
    /// The model on `device`.
    pub fn load(&self, device: &medseg::Device) -> CliResult<LoadedModel> {
        let (store, preset) = match (&self.source.model, self.source.random) {
            (Some(path), _) => (read_weights(path)?, self.config),
            (None, Some(p)) => {
                let keys = sam2_expected_keys(&p.config(), &medseg::cpu_device())
                    .map_err(|e| e.to_string())?;
                (random_store(keys), Some(p))
            }
            (None, None) => return Err("give --model WEIGHTS or --random PRESET".into()),
        };
        let (model, _) =
            LoadedModel::load(store, preset, None, device).map_err(|e| e.to_string())?;
        Ok(model)
    }
}

/// Time the image encoder and the prompt + mask decoder (medians after one warm-up),
/// or with --finetune LiteMedSAM's decoder training step.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    weights: Weights,
    #[command(flatten)]
    device: DeviceArgs,
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
    /// Instead of timing: compare the masks on --device/--dtype with the CPU's in f32
    /// (IoU of logits > 0, max |logit difference|) for a box on a synthetic image and
    /// one on a CT slice (--check-slice).
    #[arg(long)]
    check_masks: bool,
    /// The CT slice for --check-masks: a MedSAM .npz (`imgs`, D×H×W uint8).
    #[arg(
        long,
        value_name = "NPZ",
        default_value = "../shared/data/ct-lesion/CT_Lesion_000001_02_01_008-023.npz"
    )]
    check_slice: PathBuf,
    /// Its slice index (the lesion's key slice by default).
    #[arg(long, default_value_t = 8)]
    check_z: usize,
    /// Its box x0,y0,x1,y1 in pixels (around the lesion by default).
    #[arg(long, value_parser = parse_numbers::<4>, default_value = "260,226,331,288")]
    check_box: [f32; 4],
}

pub fn run(a: Args) -> CliResult {
    if a.check_masks {
        return run_check(&a);
    }
    let device = a.device.open()?;
    let model = a.weights.load(&device.device)?;
    if let Some(fixture) = &a.finetune {
        if device.backend != Backend::Cpu {
            return Err("--finetune runs on the CPU only (--device cpu)".into());
        }
        return run_finetune(&model, fixture, &a);
    }
    // The pool the models run on (RAYON_NUM_THREADS sets it), not the machine's cores.
    let threads = rayon::current_num_threads();
    let started = Instant::now();
    let now = || started.elapsed().as_secs_f64() * 1e3;
    let f = pollster::block_on(bench_model(&model, a.runs, &now)).map_err(|e| e.to_string())?;
    println!(
        "model {} image_size={} device={} dtype={} threads={threads} runs={} (median after 1 \
         warm-up)",
        model.kind().name(),
        f.image_size,
        device.backend.name(),
        device.precision.name(),
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
    println!(
        "first encoder run       {:9.1} ms   (warm-up; on wgpu with shader compilation)",
        f.first_encoder_ms
    );
    Ok(())
}

/// `medseg bench --check-masks`: the model on --device/--dtype against itself on the
/// CPU in f32.
fn run_check(a: &Args) -> CliResult {
    let reference = a.weights.load(&medseg::cpu_device())?;
    let device = a.device.open()?;
    let model = a.weights.load(&device.device)?;
    let s = model.image_size();
    let b = s as f32;
    let ct = ct_slice(&a.check_slice, a.check_z)?;
    let cases = [
        (
            format!("synthetic {s}x{s}"),
            synthetic_image(s),
            [b * 0.3, b * 0.3, b * 0.7, b * 0.7],
        ),
        (
            format!("{} z={}", a.check_slice.display(), a.check_z),
            ct,
            a.check_box,
        ),
    ];
    println!(
        "mask check: model {} on {} {} vs cpu f32",
        model.kind().name(),
        device.backend.name(),
        device.precision.name()
    );
    for (name, image, bx) in cases {
        let c = pollster::block_on(compare_masks(&reference, &model, &image, bx))
            .map_err(|e| format!("{name}: {e}"))?;
        println!(
            "{name}: box {bx:?}  IoU {:.4}  max |logit diff| {:.3e} (cpu f32 max |logit| \
             {:.3e})  mask px {} vs {} (cpu f32)  logits {}",
            c.iou, c.max_abs_logit, c.max_abs_reference, c.pixels, c.reference_pixels, c.logits
        );
    }
    Ok(())
}

/// Slice `z` of a MedSAM .npz volume (`imgs`) as the model's input frame, made as
/// `medseg track` makes it (the volume's automatic window: as stored for 0..255 data).
fn ct_slice(path: &Path, z: usize) -> CliResult<RgbImage> {
    let name = path.display().to_string();
    let vol =
        Volume::from_npz_bytes(&read_file(path)?, &["imgs"]).map_err(|e| format!("{name}: {e}"))?;
    Document::volume(name.clone(), vol, None)
        .and_then(|doc| doc.frame_rgb(z))
        .map_err(|e| format!("{name}: {e}"))
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
