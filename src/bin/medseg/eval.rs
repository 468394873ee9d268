//! `medseg eval`: Dice and normalised surface Dice of a mask against the ground truth.

use std::path::PathBuf;

use medseg::metrics::{EvalError, eval_files};

use crate::common::{CliResult, read_file};

/// Dice (DSC) and normalised surface Dice (NSD, DeepMind surface-distance semantics) of a
/// predicted mask against the ground truth: NIfTI .nii/.nii.gz masks, or .npz with
/// `segs`/`gts`; the spacing comes from the ground truth.
#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    pred: PathBuf,
    #[arg(long)]
    gt: PathBuf,
    /// Surface tolerance in mm.
    #[arg(long = "tolerance-mm", default_value_t = 2.0, value_parser = tolerance)]
    tolerance_mm: f64,
}

fn tolerance(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|t| t.is_finite() && *t >= 0.0)
        .ok_or_else(|| format!("expected a distance in mm (>= 0), got `{s}`"))
}

pub fn run(a: Args) -> CliResult {
    let pred = read_file(&a.pred)?;
    let gt = read_file(&a.gt)?;
    let (dsc, nsd) = eval_files(&pred, &gt, a.tolerance_mm).map_err(|e| match e {
        EvalError::Pred(e) => format!("{}: {e}", a.pred.display()),
        EvalError::Gt(e) => format!("{}: {e}", a.gt.display()),
        other => other.to_string(),
    })?;
    println!("DSC={dsc:.4} NSD={nsd:.4}");
    Ok(())
}
