//! What the commands share: reading and writing files with their paths in the message,
//! comma-separated number lists, and loading a model into a workspace.

use std::path::{Path, PathBuf};

use medseg::app::{LoadedModel, ModelInfo, Workspace};
use medseg::model::config::Sam2Preset;
use medseg::weights::TensorStore;

pub type CliResult<T = ()> = Result<T, String>;

pub fn read_file(path: &Path) -> CliResult<Vec<u8>> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

pub fn write_file(path: &Path, bytes: &[u8]) -> CliResult {
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

pub fn read_weights(path: &Path) -> CliResult<TensorStore> {
    let bytes = read_file(path)?;
    TensorStore::from_bytes(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// `N` comma-separated numbers (`--box x0,y0,x1,y1`), for clap's `value_parser`.
pub fn numbers<const N: usize>(s: &str) -> Result<[f32; N], String> {
    let v: Vec<f32> = s
        .split(',')
        .map(|p| p.trim().parse::<f32>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("expected {N} comma-separated numbers, got `{s}`"))?;
    v.try_into()
        .map_err(|_| format!("expected {N} comma-separated numbers, got `{s}`"))
}

/// A SAM 2 preset name (`--config`), for clap's `value_parser`.
pub fn preset(s: &str) -> Result<Sam2Preset, String> {
    Sam2Preset::parse(s).map_err(|e| e.to_string())
}

/// The model a command segments with.
#[derive(clap::Args)]
pub struct ModelArgs {
    /// Weights: .safetensors, or a LiteMedSAM .pth / MedSAM2 .pt checkpoint.
    #[arg(long)]
    pub model: PathBuf,
    /// SAM 2 architecture for weights that do not name it: medsam2-t512 or sam2.1-t.
    #[arg(long, value_parser = preset)]
    pub config: Option<Sam2Preset>,
}

impl ModelArgs {
    /// A workspace on the CPU with this model loaded.
    pub fn workspace(&self) -> CliResult<(Workspace, ModelInfo)> {
        let mut ws = Workspace::new(medseg::cpu_device());
        let (model, info) =
            LoadedModel::load(read_weights(&self.model)?, self.config, None, ws.device())
                .map_err(|e| format!("{}: {e}", self.model.display()))?;
        ws.set_model(model);
        Ok((ws, info))
    }
}
