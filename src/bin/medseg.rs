//! `medseg`: the command-line face of MedSeg.
//!
//! ```text
//! medseg segment --model W [--config PRESET] --image IMG --box x0,y0,x1,y1
//!                [--point x,y,label]... --out MASK.png [--logits LOGITS.npy]
//! medseg convert IN OUT [--half] [--config PRESET]
//! medseg bench (--model W [--config PRESET] | --random PRESET) [--runs N]
//! medseg serve [--root DIR] [--port PORT]
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use medseg::io::image::{RgbImage, decode_rgb, encode_mask_png};
use medseg::model::config::Sam2Preset;
use medseg::model::sam::prompt_encoder::PointLabel;
use medseg::model::{Architecture, detect_architecture, load_sam2, sam2_expected_keys};
use medseg::predictor::{ImagePrompt, Sam2ImagePredictor};
use medseg::weights::safetensors_io::{StoredPrecision, write};
use medseg::weights::{HostTensor, TensorStore};

type CliResult<T = ()> = Result<T, String>;

const USAGE: &str = "usage:
  medseg segment --model WEIGHTS [--config PRESET] --image IMG --box x0,y0,x1,y1
                 [--point x,y,label]... --out MASK.png [--logits LOGITS.npy]
  medseg convert IN OUT [--half] [--config PRESET]
  medseg bench (--model WEIGHTS [--config PRESET] | --random PRESET) [--runs N]
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
    let arch = detect_architecture(&store, preset_arg(args)?)
        .map_err(|e| format!("{}: {e}", model_path.display()))?;
    let Architecture::Sam2(cfg) = arch else {
        return Err(format!(
            "{}: LiteMedSAM weights are not supported by `segment` yet",
            model_path.display()
        ));
    };
    let model =
        load_sam2(store, &cfg, &device).map_err(|e| format!("{}: {e}", model_path.display()))?;
    let predictor = Sam2ImagePredictor::new(&model);
    let encoded = predictor.set_image(&image).map_err(|e| e.to_string())?;
    let pred = predictor
        .predict(&encoded, &prompt)
        .map_err(|e| e.to_string())?;
    let png = encode_mask_png(&pred.mask(), pred.width, pred.height).map_err(|e| e.to_string())?;
    write_file(&out, &png)?;
    if let Some(l) = args.get("--logits") {
        write_file(
            Path::new(l),
            &medseg::io::npy::encode_f32(&[1, pred.height, pred.width], &pred.logits),
        )?;
    }
    let area = pred.mask().iter().filter(|&&m| m != 0).count();
    println!(
        "iou={:.4} object_score={:.4} mask_pixels={area} out={}",
        pred.iou,
        pred.object_score,
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
    // Load strictly first: a file that would not load is never written out.
    let tensors: std::collections::BTreeMap<String, HostTensor> =
        store.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let n = tensors.len();
    match &arch {
        Architecture::Sam2(cfg) => {
            load_sam2(store, cfg, &device).map_err(|e| format!("{input}: {e}"))?;
        }
        Architecture::LiteMedSam => {
            return Err(format!(
                "{input}: LiteMedSAM conversion is not supported yet"
            ));
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
        "wrote {output}: {} ({n} tensors, {:.1} MB, {precision:?})",
        arch.name(),
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
    let (store, cfg) = match (args.get("--model"), args.get("--random")) {
        (Some(path), None) => {
            let store = read_weights(Path::new(path))?;
            match detect_architecture(&store, preset_arg(args)?)
                .map_err(|e| format!("{path}: {e}"))?
            {
                Architecture::Sam2(cfg) => (store, cfg),
                Architecture::LiteMedSam => {
                    return Err("LiteMedSAM benchmarking is not supported yet".into());
                }
            }
        }
        (None, Some(preset)) => {
            let cfg = Box::new(
                Sam2Preset::parse(preset)
                    .map_err(|e| e.to_string())?
                    .config(),
            );
            let keys = sam2_expected_keys(&cfg, &device).map_err(|e| e.to_string())?;
            (random_store(keys), cfg)
        }
        _ => return Err("bench needs exactly one of --model WEIGHTS or --random PRESET".into()),
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
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!("model sam2 image_size={s} threads={threads} runs={runs} (median after 1 warm-up)");
    let mut enc = Vec::new();
    let mut encoded = predictor.set_image(&image).map_err(|e| e.to_string())?;
    for _ in 0..runs {
        let t = Instant::now();
        encoded = predictor.set_image(&image).map_err(|e| e.to_string())?;
        // Reading a value back waits for the backend to finish.
        let _: f32 = encoded.features.embed.clone().sum().into_scalar();
        enc.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let mut dec = Vec::new();
    predictor
        .predict(&encoded, &prompt)
        .map_err(|e| e.to_string())?;
    for _ in 0..runs.max(10) {
        let t = Instant::now();
        predictor
            .predict(&encoded, &prompt)
            .map_err(|e| e.to_string())?;
        dec.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let e = median_ms(enc);
    let d = median_ms(dec);
    match reference_encoder_gflop(s) {
        Some(g) => println!(
            "encoder (set_image)     {e:9.1} ms   {:.1} GFLOP/s ({g} GFLOP)",
            g / (e / 1e3)
        ),
        None => println!("encoder (set_image)     {e:9.1} ms"),
    }
    println!("prompt + decoder        {d:9.2} ms   (box, single mask, incl. upsampling)");
    Ok(())
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

fn main() -> ExitCode {
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
