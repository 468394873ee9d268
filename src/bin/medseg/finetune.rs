//! `medseg finetune`: adapt the mask decoder of LiteMedSAM or of SAM 2.1 / MedSAM2 to
//! labelled scans, through the application core's stepwise run (the one the page's
//! worker drives), and write the tuned model as a complete checkpoint.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use medseg::app::LoadedModel;
use medseg::app::training::{
    AdamWConfig, Dataset, FineTuneConfig, Labels, Phase, Progress, RunConfig, TrainingRun,
    tuned_checkpoint,
};
use medseg::io::image::decode_rgb;
use medseg::io::volume::Volume;
use medseg::model::config::Sam2Preset;

use crate::common::{CliResult, is_dicom_input, open_dicom, preset, read_file, write_file};

/// Fine-tune the mask decoder of LiteMedSAM or of SAM 2.1 / MedSAM2 on labelled scans
/// (image encoder frozen; the official LiteMedSAM recipe, MedSAM2's on its model) and
/// write the best epoch as a complete .safetensors that every command and the page load
/// like the base. DATA is a MedSAM .npz (imgs, gts),
/// IMAGE:LABELS with a volume (NIfTI or npz) and its label volume, an image and its grey
/// mask PNG, or a folder of frames and a folder of masks (one per frame, same order).
/// Every slice with label pixels is a sample, one per label value. Ctrl-C writes the
/// best model so far.
#[derive(clap::Args)]
pub struct Args {
    /// Base weights: LiteMedSAM (.safetensors, .pth) or SAM 2.1 / MedSAM2 (.safetensors,
    /// .pt).
    #[arg(long)]
    model: PathBuf,
    /// SAM 2 architecture for weights that do not name it: medsam2-t512 (the default
    /// for such a file) or sam2.1-t.
    #[arg(long, value_parser = preset)]
    config: Option<Sam2Preset>,
    /// Training cases.
    #[arg(long, num_args = 1.., required = true, value_name = "DATA")]
    train: Vec<String>,
    /// Validation cases (default: --val-split of the training cases).
    #[arg(long, num_args = 1.., value_name = "DATA")]
    val: Vec<String>,
    /// Without --val, this fraction of the training cases (whole cases, at least one)
    /// validates; 0: no validation (the last epoch is kept).
    #[arg(long, default_value_t = 0.2)]
    val_split: f64,
    /// The tuned .safetensors to write.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    /// Samples per optimiser step.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Samples per forward/backward pass (bounds memory, not the result).
    #[arg(long, default_value_t = 4)]
    micro_batch: usize,
    #[arg(long, default_value_t = 6e-5)]
    lr: f64,
    #[arg(long, default_value_t = 0.01)]
    weight_decay: f64,
    /// Pixels (model space) the box is pushed outwards, 0..=N per side, at random.
    #[arg(long, default_value_t = 5)]
    box_jitter: usize,
    /// No random flips.
    #[arg(long)]
    no_augment: bool,
    /// Epochs without a better validation Dice before stopping (0: never).
    #[arg(long, default_value_t = 5)]
    patience: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also train the prompt encoder.
    #[arg(long)]
    train_prompt_encoder: bool,
    /// Write one JSON line per epoch (and a first and last line) here.
    #[arg(long)]
    log: Option<PathBuf>,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Ctrl-C sets a flag the run checks between steps (a signal handler may do no more).
fn catch_interrupt() {
    extern "C" fn on_sigint(_: i32) {
        INTERRUPTED.store(true, Ordering::SeqCst);
    }
    #[cfg(unix)]
    {
        const SIGINT: i32 = 2;
        unsafe extern "C" {
            fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
        }
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            signal(SIGINT, on_sigint);
        }
    }
}

pub fn run(a: Args) -> CliResult {
    let base_bytes = read_file(&a.model)?;
    let (model, _) = LoadedModel::from_bytes(&base_bytes, a.config, None, &medseg::cpu_device())
        .map_err(|e| format!("{}: {e}", a.model.display()))?;
    let config = RunConfig {
        epochs: a.epochs,
        batch: a.batch,
        tune: FineTuneConfig {
            optimizer: AdamWConfig {
                lr: a.lr,
                weight_decay: a.weight_decay,
                ..AdamWConfig::default()
            },
            micro_batch: a.micro_batch,
            train_prompt_encoder: a.train_prompt_encoder,
        },
        box_jitter: a.box_jitter,
        augment: !a.no_augment,
        patience: a.patience,
        seed: a.seed,
    };
    let mut train = Dataset::for_model(&model);
    for d in &a.train {
        add_case(&mut train, d)?;
    }
    let val = if a.val.is_empty() {
        train
            .split_validation(a.val_split, a.seed)
            .map_err(|e| format!("--val-split: {e}"))?
    } else {
        let mut val = Dataset::for_model(&model);
        for d in &a.val {
            add_case(&mut val, d)?;
        }
        Some(val)
    };
    let counts = |d: &Dataset| {
        format!(
            "{}, {}, {}",
            plural(d.cases(), "case"),
            plural(d.slices(), "slice"),
            plural(d.samples(), "sample")
        )
    };
    let val_desc = match &val {
        Some(v) => counts(v),
        None => "none (the last epoch is kept)".to_string(),
    };
    eprintln!("training: {}; validation: {val_desc}", counts(&train));
    let mut log = match &a.log {
        Some(p) => Some(
            std::fs::File::create(p).map_err(|e| format!("cannot write {}: {e}", p.display()))?,
        ),
        None => None,
    };
    let mut run = TrainingRun::new(&model, train, val, config).map_err(|e| e.to_string())?;
    if let Some(f) = &mut log {
        let line = serde_json::json!({"event": "start", "report": run.report()});
        writeln!(f, "{line}").map_err(|e| format!("--log: {e}"))?;
    }
    catch_interrupt();
    let started = Instant::now();
    let mut clock = Clock::default();
    let mut failure = None;
    while !run.is_done() {
        if INTERRUPTED.load(Ordering::SeqCst) {
            eprintln!("\ninterrupted: writing the best model so far");
            run.cancel();
            break;
        }
        let phase = run.progress().phase;
        let t = Instant::now();
        let p = match pollster::block_on(run.step()) {
            Ok(p) => p,
            Err(e) => {
                failure = Some(e.to_string());
                break;
            }
        };
        clock.add(phase, t.elapsed().as_secs_f64());
        show(&p, &clock, started);
        if let (Some(f), Some(rec)) = (&mut log, p.finished_epoch) {
            let line = serde_json::json!({
                "event": "epoch",
                "epoch": rec.epoch,
                "loss": rec.loss,
                "val_dice": rec.val_dice,
                "best_epoch": p.best_epoch,
                "seconds": started.elapsed().as_secs_f64(),
            });
            writeln!(f, "{line}").map_err(|e| format!("--log: {e}"))?;
        }
    }
    eprintln!();
    let report = run.report();
    if let Some(f) = &mut log {
        let line = serde_json::json!({"event": "end", "report": report,
            "seconds": started.elapsed().as_secs_f64()});
        writeln!(f, "{line}").map_err(|e| format!("--log: {e}"))?;
    }
    if let Some(e) = &failure
        && report.history.is_empty()
    {
        return Err(format!("{e}; nothing written"));
    }
    let bytes =
        pollster::block_on(tuned_checkpoint(&base_bytes, &run)).map_err(|e| e.to_string())?;
    write_file(&a.out, &bytes)?;
    let best = match (
        report.best_epoch,
        report.best_val_dice,
        report.base_val_dice,
    ) {
        (0, Some(_), Some(b)) => format!(
            "no epoch beat the base model's validation Dice {b:.4}: the file holds the base heads"
        ),
        (e, Some(d), Some(b)) => format!("best epoch {e}: validation Dice {d:.4} (base {b:.4})"),
        (e, _, _) => format!("epoch {e} (no validation)"),
    };
    println!(
        "{} epochs in {:.0} s; {best}; wrote {}",
        report.epochs_run,
        started.elapsed().as_secs_f64(),
        a.out.display()
    );
    match failure {
        Some(e) => Err(format!("{e}; wrote the best model so far")),
        None => Ok(()),
    }
}

/// Reads one DATA argument into `data`.
fn add_case(data: &mut Dataset, arg: &str) -> CliResult {
    let summary = if Path::new(arg).is_file() {
        data.add_npz(arg, &read_file(Path::new(arg))?)
    } else {
        let (image, labels) = arg.rsplit_once(':').ok_or_else(|| {
            format!(
                "{arg}: not a file; expected a MedSAM .npz, or IMAGE:LABELS (a volume and its \
                 labels, an image and its mask, or a frame folder and its mask folder)"
            )
        })?;
        let (image, labels) = (Path::new(image), Path::new(labels));
        if is_dicom_input(image)? {
            // A DICOM series, cine or image, opened as `track` and the page open it, with
            // a label volume (NIfTI/npz) or, for a cine, a folder of mask images.
            let doc = open_dicom(image, None)?;
            let labels = if labels.is_dir() {
                Labels::from_masks(&read_folder(labels)?)
            } else {
                let volume =
                    Volume::from_bytes_with_npz_keys(&read_file(labels)?, &["gts", "segs"])
                        .map_err(|e| format!("{}: {e}", labels.display()))?;
                Labels::from_volume_over(&volume, &doc)
            };
            let labels = labels.map_err(|e| format!("{arg} (labels): {e}"))?;
            data.add_document(&doc, &labels)
        } else if image.is_dir() && labels.is_dir() {
            let frames = read_folder(image)?;
            let masks = read_folder(labels)?;
            if frames.len() != masks.len() {
                return Err(format!(
                    "{arg}: {} frames but {} masks: one mask per frame",
                    frames.len(),
                    masks.len()
                ));
            }
            data.add_frames(arg, frames, &masks)
        } else if is_image(image) {
            data.add_image_pair(arg, &read_file(image)?, &read_file(labels)?)
        } else {
            data.add_volume_pair(arg, &read_file(image)?, &read_file(labels)?)
        }
    }
    .map_err(|e| e.to_string())?;
    eprintln!(
        "{arg}: {} with labels, {} ({})",
        plural(summary.slices, "slice"),
        plural(summary.samples, "sample"),
        plural(summary.labels, "label value")
    );
    Ok(())
}

fn is_image(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        matches!(
            e.to_ascii_lowercase().as_str(),
            "png" | "jpg" | "jpeg" | "webp"
        )
    })
}

/// The PNG/JPEG/WebP images of a folder in name order.
fn read_folder(dir: &Path) -> CliResult<Vec<medseg::io::image::RgbImage>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_image(p))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(format!("{} holds no PNG/JPEG/WebP images", dir.display()));
    }
    paths
        .iter()
        .map(|p| decode_rgb(&read_file(p)?).map_err(|e| format!("{}: {e}", p.display())))
        .collect()
}

/// Seconds spent per kind of step, for the time left.
#[derive(Default)]
struct Clock {
    embed: (f64, usize),
    train: (f64, usize),
    val: (f64, usize),
}

impl Clock {
    fn add(&mut self, phase: Phase, secs: f64) {
        let slot = match phase {
            Phase::Embedding => &mut self.embed,
            Phase::Training => &mut self.train,
            Phase::Validating => &mut self.val,
            Phase::Done => return,
        };
        slot.0 += secs;
        slot.1 += 1;
    }

    /// The time left at the mean time per unit so far (None until each kind with work
    /// left has been timed).
    fn eta(&self, p: &Progress) -> Option<f64> {
        let w = p.work;
        let mut left = 0.0;
        for ((secs, n), [done, total]) in [
            (self.embed, w.embeddings),
            (self.train, w.train_passes),
            (self.val, w.val_passes),
        ] {
            let todo = total.saturating_sub(done);
            if todo > 0 {
                if n == 0 {
                    return None;
                }
                left += secs / n as f64 * todo as f64;
            }
        }
        Some(left)
    }
}

/// Progress on stderr: a line that updates (on a terminal only: a log gets no run of
/// carriage returns), and one line per finished epoch.
fn show(p: &Progress, clock: &Clock, started: Instant) {
    let live = std::io::stderr().is_terminal();
    let cr = if live { "\r" } else { "" };
    let eta = clock
        .eta(p)
        .map_or_else(String::new, |s| format!(", ETA {}", minutes(s)));
    let elapsed = minutes(started.elapsed().as_secs_f64());
    if let Some(rec) = p.finished_epoch {
        let val = rec.val_dice.map_or_else(String::new, |d| {
            format!("  val Dice {d:.4} (best: epoch {})", p.best_epoch)
        });
        let object = rec
            .loss
            .object_score
            .map_or_else(String::new, |o| format!(", object score {o:.4}"));
        eprintln!(
            "{cr}epoch {}/{}  loss {:.4} (Dice {:.4}, BCE {:.4}, IoU MSE {:.4}{object}){val}  \
             {elapsed}{eta}",
            rec.epoch, p.epochs, rec.loss.total, rec.loss.dice, rec.loss.bce, rec.loss.iou_mse
        );
        return;
    }
    match p.phase {
        _ if !live => {}
        Phase::Embedding => eprint!(
            "\rembedding {}/{}  {elapsed}{eta}   ",
            p.work.embeddings[0], p.work.embeddings[1]
        ),
        Phase::Validating if p.epoch == 0 => {
            eprint!("\rvalidating the base model  {elapsed}{eta}   ")
        }
        Phase::Training | Phase::Validating => eprint!(
            "\repoch {}/{} batch {}/{}{}  {elapsed}{eta}   ",
            p.epoch,
            p.epochs,
            p.batch,
            p.batches,
            p.loss
                .map_or_else(String::new, |l| format!("  loss {:.4}", l.total))
        ),
        Phase::Done => {}
    }
    if let Some(base) = p.base_val_dice
        && p.phase == Phase::Training
        && p.epoch == 1
        && p.batch == 0
        && p.work.train_passes[0] == 0
    {
        eprintln!("{cr}base model: validation Dice {base:.4}");
    }
}

fn minutes(s: f64) -> String {
    if s < 60.0 {
        format!("{s:.0} s")
    } else {
        format!("{}:{:02} min", (s / 60.0) as u64, (s % 60.0) as u64)
    }
}

/// "1 slice", "3 slices".
fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}
