//! What the commands share: reading and writing files with their paths in the message,
//! comma-separated number lists, and loading a model into a workspace.

use std::path::Path;

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

/// A workspace on the CPU with the weights at `path` loaded (`preset` names the SAM 2
/// architecture for files that do not).
pub fn workspace_with_model(
    path: &Path,
    preset: Option<Sam2Preset>,
) -> CliResult<(Workspace, ModelInfo)> {
    let mut ws = Workspace::new(medseg::cpu_device());
    let (model, info) = LoadedModel::load(read_weights(path)?, preset, None, ws.device())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    ws.set_model(model);
    Ok((ws, info))
}
