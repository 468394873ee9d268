//! `medseg`: the command-line face of MedSeg.
//!
//! ```text
//! medseg segment --model W [--config PRESET] --image IMG --box x0,y0,x1,y1
//!                [--point x,y,label]... --out MASK.png [--logits LOGITS.npy]
//! medseg convert IN OUT [--half] [--config PRESET]
//! medseg bench (--model W [--config PRESET] | --random PRESET) [--runs N]
//! medseg track --model W --input VOLUME|FRAMES_DIR --frame K --box x0,y0,x1,y1 ... --out OUT
//! medseg eval --pred P --gt G [--tolerance-mm 2]
//! medseg serve [--root DIR] [--port PORT]
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use medseg::io::image::{RgbImage, decode_rgb, encode_mask_png};
use medseg::io::volume::{Volume, write_nifti_mask};
use medseg::io::window::{CtWindow, Windowing};
use medseg::model::config::Sam2Preset;
use medseg::model::sam::prompt_encoder::PointLabel;
use medseg::model::{
    Architecture, detect_architecture, load_lite_medsam, load_sam2, sam2_expected_keys,
};
use medseg::predictor::{ImagePrompt, Sam2ImagePredictor};
use medseg::session::frames::{FolderFrames, FrameSource};
use medseg::session::lite_propagation::{LitePropagation, walk_range};
use medseg::session::video::{Direction, VideoSession};
use medseg::session::volume3d::{KeySlicePrompt, segment_volume_sam2};
use medseg::weights::safetensors_io::{StoredPrecision, write};
use medseg::weights::{HostTensor, TensorStore};

type CliResult<T = ()> = Result<T, String>;

const USAGE: &str = "usage:
  medseg segment --model WEIGHTS [--config PRESET] --image IMG --box x0,y0,x1,y1
                 [--point x,y,label]... --out MASK.png [--logits LOGITS.npy]
  medseg convert IN OUT [--half] [--config PRESET]
  medseg bench (--model WEIGHTS [--config PRESET] | --random PRESET) [--runs N]
  medseg track --model WEIGHTS [--config PRESET] --input VOLUME|FRAMES_DIR --frame K
               --box x0,y0,x1,y1 [--obj N] [--direction both|forward|backward]
               [--range FIRST,LAST] [--window soft|lung|bone|brain|mr|none] --out OUT
  medseg eval --pred P --gt G [--tolerance-mm 2]
  medseg bench-video (--model WEIGHTS | --random PRESET) --frames N [--size PX]
  medseg serve [--root DIR] [--port PORT]
presets: medsam2-t512 (MedSAM2), sam2.1-t";

/// Parsed `--flag value` pairs and positional arguments.
struct Args {
    positional: Vec<String>,
    flags: Vec<(String, Option<String>)>,
}

/// Flags that take no value.
const SWITCHES: &[&str] = &["--half"];

impl Args {
    fn parse(raw: &[String]) -> CliResult<Self> {
        let mut positional = Vec::new();
        let mut flags = Vec::new();
        let mut it = raw.iter();
        while let Some(a) = it.next() {
            if a.starts_with("--") {
                if SWITCHES.contains(&a.as_str()) {
                    flags.push((a.clone(), None));
                } else {
                    let v = it.next().ok_or_else(|| format!("{a} needs a value"))?;
                    flags.push((a.clone(), Some(v.clone())));
                }
            } else {
                positional.push(a.clone());
            }
        }
        Ok(Self { positional, flags })
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_deref())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.flags
            .iter()
            .filter(|(k, _)| k == name)
            .filter_map(|(_, v)| v.as_deref())
            .collect()
    }

    fn has(&self, name: &str) -> bool {
        self.flags.iter().any(|(k, _)| k == name)
    }

    fn require(&self, name: &str) -> CliResult<&str> {
        self.get(name).ok_or_else(|| format!("missing {name}"))
    }

    /// Fails on flags the command does not know, so typos are not ignored.
    fn only(&self, known: &[&str]) -> CliResult {
        for (k, _) in &self.flags {
            if !known.contains(&k.as_str()) {
                return Err(format!("unknown option {k}"));
            }
        }
        Ok(())
    }
}

fn parse_floats<const N: usize>(what: &str, s: &str) -> CliResult<[f32; N]> {
    let v: Vec<f32> = s
        .split(',')
        .map(|p| p.trim().parse::<f32>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("{what} `{s}`: expected {N} comma-separated numbers"))?;
    v.try_into()
        .map_err(|_| format!("{what} `{s}`: expected {N} comma-separated numbers"))
}

fn read_file(path: &Path) -> CliResult<Vec<u8>> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn write_file(path: &Path, bytes: &[u8]) -> CliResult {
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn read_weights(path: &Path) -> CliResult<TensorStore> {
    let bytes = read_file(path)?;
    TensorStore::from_bytes(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn preset_arg(args: &Args) -> CliResult<Option<Sam2Preset>> {
    args.get("--config")
        .map(Sam2Preset::parse)
        .transpose()
        .map_err(|e| e.to_string())
}

fn cmd_segment(args: &Args) -> CliResult {
    args.only(&[
        "--model", "--config", "--image", "--box", "--point", "--out", "--logits",
    ])?;
    let model_path = PathBuf::from(args.require("--model")?);
    let image_path = PathBuf::from(args.require("--image")?);
    let out = PathBuf::from(args.require("--out")?);
    let mut prompt = ImagePrompt::default();
    if let Some(b) = args.get("--box") {
        let b = parse_floats::<4>("--box", b)?;
        if !(b[2] > b[0] && b[3] > b[1]) {
            return Err(format!(
                "--box {b:?}: x1 must exceed x0 and y1 must exceed y0"
            ));
        }
        prompt.box_xyxy = Some(b);
    }
    for p in args.all("--point") {
        let [x, y, l] = parse_floats::<3>("--point", p)?;
        let label = match l as i64 {
            1 => PointLabel::Positive,
            0 => PointLabel::Negative,
            _ => {
                return Err(format!(
                    "--point {p}: label must be 1 (object) or 0 (background)"
                ));
            }
        };
        prompt.points.push(([x, y], label));
    }
    if prompt.is_empty() {
        return Err("give --box and/or --point".into());
    }
    let image = decode_rgb(&read_file(&image_path)?)
        .map_err(|e| format!("{}: {e}", image_path.display()))?;
    for (xy, _) in &prompt.points {
        check_inside(&image, *xy)?;
    }
    let store = read_weights(&model_path)?;
    let device = medseg::cpu_device();
    let in_file = |e: &dyn std::fmt::Display| format!("{}: {e}", model_path.display());
    let arch = detect_architecture(&store, preset_arg(args)?).map_err(|e| in_file(&e))?;
    let (logits, iou, object_score) = match arch {
        Architecture::Sam2(cfg) => {
            let model = load_sam2(store, &cfg, &device).map_err(|e| in_file(&e))?;
            let predictor = Sam2ImagePredictor::new(&model);
            let encoded = predictor.set_image(&image).map_err(|e| e.to_string())?;
            let pred = pollster::block_on(predictor.predict(&encoded, &prompt))
                .map_err(|e| e.to_string())?;
            (pred.logits, pred.iou, Some(pred.object_score))
        }
        Architecture::LiteMedSam => {
            let Some(b) = prompt.box_xyxy.filter(|_| prompt.points.is_empty()) else {
                return Err("LiteMedSAM is prompted with a box only (--box, no --point)".into());
            };
            let model = load_lite_medsam(store, &device).map_err(|e| in_file(&e))?;
            let pred =
                pollster::block_on(model.segment_rgb(&image.data, image.height, image.width, b))
                    .map_err(|e| e.to_string())?;
            (pred.logits, pred.iou, None)
        }
    };
    let mask: Vec<u8> = logits.iter().map(|&l| u8::from(l > 0.0)).collect();
    let png = encode_mask_png(&mask, image.width, image.height).map_err(|e| e.to_string())?;
    write_file(&out, &png)?;
    if let Some(l) = args.get("--logits") {
        write_file(
            Path::new(l),
            &medseg::io::npy::encode_f32(&[1, image.height, image.width], &logits),
        )?;
    }
    let area = mask.iter().filter(|&&m| m != 0).count();
    let score = object_score
        .map(|s| format!(" object_score={s:.4}"))
        .unwrap_or_default();
    println!(
        "iou={iou:.4}{score} mask_pixels={area} out={}",
        out.display()
    );
    Ok(())
}

fn check_inside(image: &RgbImage, [x, y]: [f32; 2]) -> CliResult {
    if x < 0.0 || y < 0.0 || x >= image.width as f32 || y >= image.height as f32 {
        return Err(format!(
            "point ({x}, {y}) lies outside the {}×{} image",
            image.width, image.height
        ));
    }
    Ok(())
}

fn cmd_convert(args: &Args) -> CliResult {
    args.only(&["--half", "--config"])?;
    let [input, output] = args.positional.as_slice() else {
        return Err("convert needs IN and OUT".into());
    };
    let store = read_weights(Path::new(input))?;
    let device = medseg::cpu_device();
    let arch =
        detect_architecture(&store, preset_arg(args)?).map_err(|e| format!("{input}: {e}"))?;
    // Training-only buffers (BatchNorm step counters) carry nothing for inference.
    let tensors: std::collections::BTreeMap<String, HostTensor> = store
        .iter()
        .filter(|(k, _)| !medseg::weights::remap::is_training_only(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // Load strictly first: a file that would not load is never written out.
    match &arch {
        Architecture::Sam2(cfg) => {
            drop(load_sam2(store, cfg, &device).map_err(|e| format!("{input}: {e}"))?)
        }
        Architecture::LiteMedSam => {
            drop(load_lite_medsam(store, &device).map_err(|e| format!("{input}: {e}"))?)
        }
    }
    let precision = if args.has("--half") {
        StoredPrecision::F16
    } else {
        StoredPrecision::F32
    };
    let bytes = write(&tensors, &arch.metadata(), precision).map_err(|e| e.to_string())?;
    write_file(Path::new(output), &bytes)?;
    println!(
        "wrote {output}: {} ({} tensors, {:.1} MB, {precision:?})",
        arch.name(),
        tensors.len(),
        bytes.len() as f64 / 1e6
    );
    Ok(())
}

/// Deterministic pseudo-random weights (xorshift, N(0, 0.02)-ish) for a
/// config's expected keys, for benchmarking without a checkpoint.
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

fn median_ms(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Encoder GFLOP per image measured by `../shared/reference/flops.py` for the
/// official model (used only to print throughput).
fn reference_encoder_gflop(image_size: usize) -> Option<f64> {
    match image_size {
        512 => Some(62.9),
        _ => None,
    }
}

fn cmd_bench(args: &Args) -> CliResult {
    args.only(&["--model", "--config", "--random", "--runs"])?;
    let runs: usize = args
        .get("--runs")
        .unwrap_or("5")
        .parse()
        .map_err(|_| "--runs: expected a count")?;
    let device = medseg::cpu_device();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    // LiteMedSAM weights get their own benchmark; everything else is SAM 2.
    let (store, cfg) = match bench_store(args, &device)? {
        (store, Architecture::LiteMedSam) => {
            let model = load_lite_medsam(store, &device).map_err(|e| e.to_string())?;
            return bench_lite(&model, runs, threads);
        }
        (store, Architecture::Sam2(cfg)) => (store, cfg),
    };
    let model = load_sam2(store, &cfg, &device).map_err(|e| e.to_string())?;
    let s = cfg.image_size;
    let image = RgbImage {
        width: s,
        height: s,
        data: (0..s * s * 3).map(|i| (i * 7919 % 251) as u8).collect(),
    };
    let predictor = Sam2ImagePredictor::new(&model);
    let prompt = ImagePrompt {
        box_xyxy: Some([
            0.25 * s as f32,
            0.3 * s as f32,
            0.7 * s as f32,
            0.75 * s as f32,
        ]),
        points: vec![],
    };
    println!("model sam2 image_size={s} threads={threads} runs={runs} (median after 1 warm-up)");
    let mut encoded = predictor.set_image(&image).map_err(|e| e.to_string())?;
    let enc = time_runs(runs, || {
        encoded = predictor.set_image(&image).map_err(|e| e.to_string())?;
        // Reading a value back waits for the backend to finish.
        let _: f32 = encoded.features.embed.clone().sum().into_scalar();
        Ok(())
    })?;
    pollster::block_on(predictor.predict(&encoded, &prompt)).map_err(|e| e.to_string())?;
    let dec = time_runs(runs.max(10), || {
        pollster::block_on(predictor.predict(&encoded, &prompt)).map_err(|e| e.to_string())?;
        Ok(())
    })?;
    match reference_encoder_gflop(s) {
        Some(g) => println!(
            "encoder (set_image)     {enc:9.1} ms   {:.1} GFLOP/s ({g} GFLOP)",
            g / (enc / 1e3)
        ),
        None => println!("encoder (set_image)     {enc:9.1} ms"),
    }
    println!("prompt + decoder        {dec:9.2} ms   (box, single mask, incl. upsampling)");
    Ok(())
}

/// Median wall time in ms of `runs` calls of `f`.
fn time_runs(runs: usize, mut f: impl FnMut() -> CliResult) -> CliResult<f64> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(median_ms(times))
}

/// LiteMedSAM: TinyViT encoder and prompt + decoder (+ postprocessing) on a 512² slice.
fn bench_lite(
    model: &medseg::model::lite_medsam::LiteMedSam,
    runs: usize,
    threads: usize,
) -> CliResult {
    let (h, w) = (512, 512);
    let gray: Vec<u8> = (0..h * w).map(|i| (i * 7919 % 251) as u8).collect();
    let input = model
        .transform()
        .prepare_gray(&gray, h, w)
        .map_err(|e| e.to_string())?;
    println!(
        "model lite-medsam image_size=256 threads={threads} runs={runs} (median after 1 warm-up)"
    );
    let encode = || {
        let e = model.encode(model.input_tensor(&input));
        let _: f32 = e.clone().sum().into_scalar();
        e
    };
    let mut embedding = encode();
    let enc = time_runs(runs, || {
        embedding = encode();
        Ok(())
    })?;
    let decode = || -> CliResult {
        let (low, _) = model.decode(embedding.clone(), [60.0, 60.0, 180.0, 170.0]);
        let _: f32 = low.sum().into_scalar();
        Ok(())
    };
    decode()?;
    let dec = time_runs(runs.max(10), decode)?;
    println!(
        "encoder (TinyViT)       {enc:9.1} ms   {:.1} GFLOP/s (75 GFLOP)",
        75.0 / (enc / 1e3)
    );
    println!("prompt + decoder        {dec:9.2} ms   (box, single mask)");
    Ok(())
}

/// Synthetic clip for propagation benchmarks: a bright disk moving over a noisy
/// background, generated on demand so the clip itself takes no memory.
struct SyntheticClip {
    frames: usize,
    size: usize,
}

impl FrameSource for SyntheticClip {
    fn len(&self) -> usize {
        self.frames
    }
    fn frame_size(&self) -> (usize, usize) {
        (self.size, self.size)
    }
    fn frame(&mut self, index: usize) -> Result<RgbImage, medseg::session::frames::FrameError> {
        let s = self.size as f32;
        let t = index as f32 / self.frames.max(1) as f32;
        let (cx, cy, r) = (s * (0.3 + 0.4 * t), s * 0.5, s * 0.12);
        let mut data = Vec::with_capacity(self.size * self.size * 3);
        for y in 0..self.size {
            for x in 0..self.size {
                let noise = ((x * 7919 + y * 104_729 + index * 31) % 61) as f32;
                let inside = (x as f32 - cx).powi(2) + (y as f32 - cy).powi(2) < r * r;
                let v = if inside { 200.0 } else { 50.0 } + noise;
                data.extend([v as u8; 3]);
            }
        }
        Ok(RgbImage {
            width: self.size,
            height: self.size,
            data,
        })
    }
}

/// Peak and current resident memory of this process in MB (Linux `/proc`).
fn rss_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn cmd_bench_video(args: &Args) -> CliResult {
    args.only(&["--model", "--config", "--random", "--frames", "--size"])?;
    let frames: usize = args
        .require("--frames")?
        .parse()
        .map_err(|_| "--frames: expected a count")?;
    let size: usize = args
        .get("--size")
        .unwrap_or("512")
        .parse()
        .map_err(|_| "--size: expected pixels")?;
    let device = medseg::cpu_device();
    let (store, Architecture::Sam2(cfg)) = bench_store(args, &device)? else {
        return Err("bench-video needs SAM 2 / MedSAM2 weights, not LiteMedSAM".into());
    };
    let model = Arc::new(load_sam2(store, &cfg, &device).map_err(|e| e.to_string())?);
    let clip = SyntheticClip { frames, size };
    let mut session = VideoSession::new(model, clip).map_err(|e| e.to_string())?;
    let s = size as f32;
    pollster::block_on(session.add_prompt(
        0,
        1,
        Some([0.15 * s, 0.35 * s, 0.45 * s, 0.65 * s]),
        &[],
    ))
    .map_err(|e| e.to_string())?;
    let mut run = pollster::block_on(session.start_propagation(Some(0), Direction::Forward, None))
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let (mut after_10, mut done) = (f64::NAN, 0);
    while pollster::block_on(session.step(&mut run))
        .map_err(|e| e.to_string())?
        .is_some()
    {
        done += 1;
        if done == 10 {
            after_10 = rss_mb().1;
        }
    }
    let (peak, now) = rss_mb();
    println!(
        "frames={frames} size={size} image_size={} propagated={done} in {:.1} s ({:.1} ms/frame)",
        cfg.image_size,
        started.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64() * 1e3 / done.max(1) as f64
    );
    println!("rss after 10 frames {after_10:.1} MB, at end {now:.1} MB, peak {peak:.1} MB");
    Ok(())
}

/// Weights for a SAM 2 benchmark: `--model FILE` or `--random PRESET`.
/// The weights a benchmark runs (`--model WEIGHTS`, read once) or random weights of a
/// SAM 2 preset (`--random PRESET`), with their architecture.
fn bench_store(args: &Args, device: &medseg::Device) -> CliResult<(TensorStore, Architecture)> {
    match (args.get("--model"), args.get("--random")) {
        (Some(path), None) => {
            let store = read_weights(Path::new(path))?;
            let arch = detect_architecture(&store, preset_arg(args)?)
                .map_err(|e| format!("{path}: {e}"))?;
            Ok((store, arch))
        }
        (None, Some(preset)) => {
            let cfg = Box::new(
                Sam2Preset::parse(preset)
                    .map_err(|e| e.to_string())?
                    .config(),
            );
            let keys = sam2_expected_keys(&cfg, device).map_err(|e| e.to_string())?;
            Ok((random_store(keys), Architecture::Sam2(cfg)))
        }
        _ => Err("give exactly one of --model WEIGHTS or --random PRESET".into()),
    }
}

/// `medseg eval`: DSC and NSD of a predicted mask against the ground truth (NIfTI
/// `.nii`/`.nii.gz` masks, or `.npz` with `segs`/`gts`; spacing from the ground truth).
fn cmd_eval(args: &Args) -> CliResult {
    args.only(&["--pred", "--gt", "--tolerance-mm"])?;
    let pred_path = PathBuf::from(args.require("--pred")?);
    let gt_path = PathBuf::from(args.require("--gt")?);
    let tolerance_mm = args
        .get("--tolerance-mm")
        .unwrap_or("2")
        .parse::<f64>()
        .ok()
        .filter(|t| t.is_finite() && *t >= 0.0)
        .ok_or("--tolerance-mm: expected a distance in mm (>= 0)")?;
    let pred = read_file(&pred_path)?;
    let gt = read_file(&gt_path)?;
    let (dsc, nsd) =
        medseg::metrics::eval_files(&pred, &gt, tolerance_mm).map_err(|e| match e {
            medseg::metrics::EvalError::Pred(e) => format!("{}: {e}", pred_path.display()),
            medseg::metrics::EvalError::Gt(e) => format!("{}: {e}", gt_path.display()),
            other => other.to_string(),
        })?;
    println!("DSC={dsc:.4} NSD={nsd:.4}");
    Ok(())
}

/// Which directions `--direction` asks for.
fn directions(arg: Option<&str>) -> CliResult<Vec<Direction>> {
    Ok(match arg.unwrap_or("both") {
        "both" => vec![Direction::Forward, Direction::Backward],
        "forward" => vec![Direction::Forward],
        "backward" => vec![Direction::Backward],
        other => {
            return Err(format!(
                "--direction {other}: expected both, forward or backward"
            ));
        }
    })
}

/// The input of `track` as grey slices (volumes) or RGB frames (clips).
enum TrackInput {
    /// `slices`: the windowed grey volume, shared with the session that tracks in it.
    Volume {
        volume: Volume,
        slices: Arc<[u8]>,
    },
    Frames(FolderFrames),
}

fn open_track_input(path: &Path, window: Option<&str>) -> CliResult<TrackInput> {
    if path.is_dir() {
        return Ok(TrackInput::Frames(
            FolderFrames::open(path).map_err(|e| e.to_string())?,
        ));
    }
    let volume =
        Volume::from_bytes(&read_file(path)?).map_err(|e| format!("{}: {e}", path.display()))?;
    let windowing = match window {
        None | Some("none") => Windowing::None,
        Some("mr") => Windowing::MrPercentile,
        Some(w) => Windowing::from(CtWindow::parse(w).map_err(|e| e.to_string())?),
    };
    let slices = windowing.apply(&volume.data).into();
    Ok(TrackInput::Volume { volume, slices })
}

fn cmd_track(args: &Args) -> CliResult {
    args.only(&[
        "--model",
        "--config",
        "--input",
        "--frame",
        "--box",
        "--obj",
        "--direction",
        "--range",
        "--window",
        "--out",
    ])?;
    let model_path = PathBuf::from(args.require("--model")?);
    let input_path = PathBuf::from(args.require("--input")?);
    let out = PathBuf::from(args.require("--out")?);
    let key: usize = args
        .require("--frame")?
        .parse()
        .map_err(|_| "--frame: expected a frame / slice index")?;
    let key_box = parse_floats::<4>("--box", args.require("--box")?)?;
    if !(key_box[2] > key_box[0] && key_box[3] > key_box[1]) {
        return Err(format!(
            "--box {key_box:?}: x1 must exceed x0 and y1 must exceed y0"
        ));
    }
    let obj: u8 = args
        .get("--obj")
        .unwrap_or("1")
        .parse()
        .map_err(|_| "--obj: expected an object id 1..255")?;
    let dirs = directions(args.get("--direction"))?;
    let range = args
        .get("--range")
        .map(|r| {
            let [a, b] = parse_floats::<2>("--range", r)?;
            if a < 0.0 || b < a {
                return Err(format!(
                    "--range {r}: expected FIRST,LAST with FIRST <= LAST"
                ));
            }
            Ok((a as usize, b as usize))
        })
        .transpose()?;
    let input = open_track_input(&input_path, args.get("--window"))?;
    let (depth, height, width) = match &input {
        TrackInput::Volume { volume, .. } => (volume.depth(), volume.height(), volume.width()),
        TrackInput::Frames(f) => (f.len(), f.frame_size().0, f.frame_size().1),
    };
    if key >= depth {
        return Err(format!(
            "--frame {key}: the input has {depth} frames/slices (0..{})",
            depth - 1
        ));
    }
    let (lo, hi) = range.unwrap_or((0, depth - 1));
    if hi >= depth || key < lo || key > hi {
        return Err(format!(
            "--range {lo},{hi} must lie within 0..{} and contain --frame {key}",
            depth - 1
        ));
    }
    let store = read_weights(&model_path)?;
    let device = medseg::cpu_device();
    let arch = detect_architecture(&store, preset_arg(args)?)
        .map_err(|e| format!("{}: {e}", model_path.display()))?;
    let started = Instant::now();
    let mut report = |done: usize, total: usize| {
        eprint!(
            "\rframe {done}/{total}  {:.1} s",
            started.elapsed().as_secs_f64()
        );
    };
    let plane = height * width;
    let masks: Vec<u8> = match (&arch, &input) {
        (Architecture::Sam2(cfg), TrackInput::Volume { slices, .. }) => {
            let model = Arc::new(load_sam2(store, cfg, &device).map_err(|e| e.to_string())?);
            pollster::block_on(segment_volume_sam2(
                &model,
                Arc::clone(slices),
                [depth, height, width],
                &KeySlicePrompt {
                    key_slice: key,
                    key_box,
                    range: Some((lo, hi)),
                },
                &dirs,
                &mut report,
            ))
            .map_err(|e| e.to_string())?
        }
        (Architecture::Sam2(cfg), TrackInput::Frames(frames)) => {
            let model = Arc::new(load_sam2(store, cfg, &device).map_err(|e| e.to_string())?);
            track_frames_sam2(
                &model,
                frames.clone(),
                key,
                key_box,
                (lo, hi),
                &dirs,
                &mut report,
            )?
        }
        (Architecture::LiteMedSam, input) => {
            let model = load_lite_medsam(store, &device).map_err(|e| e.to_string())?;
            let frames_grey;
            let slices: &[u8] = match input {
                TrackInput::Volume { slices, .. } => slices,
                TrackInput::Frames(frames) => {
                    frames_grey = grey_frames(frames.clone())?;
                    &frames_grey
                }
            };
            let mut walk = LitePropagation::new(
                &model,
                slices,
                [depth, height, width],
                key,
                key_box,
                walk_range(key, (lo, hi), &dirs),
            )
            .map_err(|e| e.to_string())?;
            let total = walk.len();
            let mut done = 0;
            while let Some(step) = pollster::block_on(walk.step()) {
                step.map_err(|e| e.to_string())?;
                done += 1;
                report(done, total);
            }
            walk.into_masks()
        }
    };
    eprintln!();
    let labelled: Vec<u8> = masks
        .iter()
        .map(|&m| if m != 0 { obj } else { 0 })
        .collect();
    let segmented = (0..depth)
        .filter(|z| labelled[z * plane..(z + 1) * plane].iter().any(|&v| v != 0))
        .count();
    match &input {
        TrackInput::Volume { volume, .. } => {
            let bytes = write_nifti_mask(&volume.geometry, &labelled).map_err(|e| e.to_string())?;
            write_file(&out, &bytes)?;
        }
        TrackInput::Frames(_) => {
            std::fs::create_dir_all(&out)
                .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
            for z in 0..depth {
                let png = encode_mask_png(&labelled[z * plane..(z + 1) * plane], width, height)
                    .map_err(|e| e.to_string())?;
                write_file(&out.join(format!("{z:05}.png")), &png)?;
            }
        }
    }
    println!(
        "{} frames/slices with a mask ({}..={}), {:.1} s, out={}",
        segmented,
        lo,
        hi,
        started.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(())
}

/// Frames as grey slices (ITU-R 601 luma) for LiteMedSAM's per-slice recipe.
fn grey_frames(mut frames: FolderFrames) -> CliResult<Vec<u8>> {
    let mut out = Vec::new();
    for i in 0..frames.len() {
        let f = frames.frame(i).map_err(|e| e.to_string())?;
        out.extend(f.grey());
    }
    Ok(out)
}

/// A clip with SAM 2 memory: one session, forward then backward from the key frame.
fn track_frames_sam2(
    model: &Arc<medseg::model::sam2::Sam2Model>,
    frames: FolderFrames,
    key: usize,
    key_box: [f32; 4],
    (lo, hi): (usize, usize),
    dirs: &[Direction],
    report: &mut impl FnMut(usize, usize),
) -> CliResult<Vec<u8>> {
    let (h, w) = frames.frame_size();
    let n = frames.len();
    let mut masks = vec![0u8; n * h * w];
    let mut session = VideoSession::new(model.clone(), frames).map_err(|e| e.to_string())?;
    pollster::block_on(session.add_prompt(key, 1, Some(key_box), &[]))
        .map_err(|e| e.to_string())?;
    let mut done = 0;
    for &d in dirs {
        let mut run = pollster::block_on(session.start_propagation(Some(key), d, Some((lo, hi))))
            .map_err(|e| e.to_string())?;
        let total = run.total;
        while let Some(out) =
            pollster::block_on(session.step(&mut run)).map_err(|e| e.to_string())?
        {
            for (_, m) in &out.objects {
                masks[out.frame * h * w..(out.frame + 1) * h * w].copy_from_slice(&m.decode());
            }
            done += 1;
            report(done, total);
        }
    }
    Ok(masks)
}

fn cmd_serve(args: &Args) -> CliResult {
    args.only(&["--root", "--port"])?;
    let root = PathBuf::from(args.get("--root").unwrap_or("."));
    let port: u16 = args
        .get("--port")
        .unwrap_or("8080")
        .parse()
        .map_err(|_| "--port: expected a port number")?;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    println!("serving {} on http://{addr}/", root.display());
    medseg::serve::serve(&root, addr).map_err(|e| format!("serve: {e}"))
}

/// Keeps freed memory in the process for reuse (glibc malloc). By default
/// glibc maps every allocation above its (at most 32 MB) threshold afresh and
/// unmaps it on free, so each large activation (LiteMedSAM's MBConv maps are
/// 67 MB) costs page faults to fault in and zero, plus TLB-shootdown
/// interrupts to unmap: 1.6 M faults and ~30 % of the LiteMedSAM encoder time
/// on a 2-core VM. Served from the heap and never trimmed, those pages are
/// reused from one tensor to the next; the peak resident size is unchanged,
/// only no longer handed back between frames.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    const M_TRIM_THRESHOLD: i32 = -1;
    const M_MMAP_MAX: i32 = -4;
    unsafe extern "C" {
        fn mallopt(param: i32, value: i32) -> i32;
    }
    // SAFETY: mallopt only adjusts allocator parameters; called before any
    // other thread exists.
    unsafe {
        mallopt(M_MMAP_MAX, 0);
        mallopt(M_TRIM_THRESHOLD, i32::MAX);
    }
}

fn main() -> ExitCode {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    keep_freed_memory();
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = raw.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = Args::parse(rest).and_then(|args| match cmd.as_str() {
        "segment" => cmd_segment(&args),
        "convert" => cmd_convert(&args),
        "bench" => cmd_bench(&args),
        "serve" => cmd_serve(&args),
        "track" => cmd_track(&args),
        "bench-video" => cmd_bench_video(&args),
        "eval" => cmd_eval(&args),
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command `{other}`\n{USAGE}")),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("medseg: error: {e}");
            ExitCode::FAILURE
        }
    }
}
