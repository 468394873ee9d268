//! `medseg convert`: an official checkpoint to safetensors that records its architecture.

use std::collections::BTreeMap;
use std::path::PathBuf;

use medseg::app::LoadedModel;
use medseg::model::config::Sam2Preset;
use medseg::model::detect_architecture;
use medseg::weights::HostTensor;
use medseg::weights::safetensors_io::{StoredPrecision, write};

use crate::common::{CliResult, preset, read_weights, write_file};

/// Convert an official PyTorch checkpoint (LiteMedSAM .pth, MedSAM2 .pt) or a safetensors
/// file to safetensors with the architecture in its metadata.
#[derive(clap::Args)]
pub struct Args {
    /// The checkpoint to read.
    input: PathBuf,
    /// The .safetensors file to write.
    output: PathBuf,
    /// Store float16 (half the size).
    #[arg(long)]
    half: bool,
    /// SAM 2 architecture for weights that do not name it: medsam2-t512 or sam2.1-t.
    #[arg(long, value_parser = preset)]
    config: Option<Sam2Preset>,
}

pub fn run(a: Args) -> CliResult {
    let input = a.input.display().to_string();
    let store = read_weights(&a.input)?;
    let arch = detect_architecture(&store, a.config).map_err(|e| format!("{input}: {e}"))?;
    // Training-only buffers (BatchNorm step counters) carry nothing for inference.
    let tensors: BTreeMap<String, HostTensor> = store
        .iter()
        .filter(|(k, _)| !medseg::weights::remap::is_training_only(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // Load strictly first: a file that would not load is never written out.
    LoadedModel::load(store, a.config, None, &medseg::cpu_device())
        .map_err(|e| format!("{input}: {e}"))?;
    let precision = if a.half {
        StoredPrecision::F16
    } else {
        StoredPrecision::F32
    };
    let bytes = write(&tensors, &arch.metadata(), precision).map_err(|e| e.to_string())?;
    write_file(&a.output, &bytes)?;
    println!(
        "wrote {}: {} ({} tensors, {:.1} MB, {precision:?})",
        a.output.display(),
        arch.name(),
        tensors.len(),
        bytes.len() as f64 / 1e6
    );
    Ok(())
}
