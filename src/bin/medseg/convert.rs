//! `medseg convert`: an official checkpoint to safetensors that records its architecture,
//! or DICOM (a series folder or zip, a multi-frame file) to NIfTI or to PNG frames.

use std::collections::BTreeMap;
use std::path::PathBuf;

use medseg::app::LoadedModel;
use medseg::model::config::Sam2Preset;
use medseg::model::detect_architecture;
use medseg::weights::HostTensor;
use medseg::weights::safetensors_io::{StoredPrecision, write};

use medseg::app::DocKind;
use medseg::io::image::encode_rgb_png;
use medseg::io::volume::{is_zip, write_nifti_volume};

use crate::common::{
    CliResult, file_head, is_dicom_input, open_dicom, preset, read_weights, write_file,
};

/// Convert an official PyTorch checkpoint (LiteMedSAM .pth, MedSAM2 .pt) or a safetensors
/// file to safetensors with the architecture in its metadata; or DICOM input (a series
/// folder or zip, a multi-frame file) to NIfTI (`OUT.nii.gz`: a volume, with the affine
/// from the DICOM geometry) or to a folder of PNG frames (`OUT/`, ending in a slash: a cine
/// or an image).
#[derive(clap::Args)]
pub struct Args {
    /// The checkpoint, or DICOM file / folder / zip, to read.
    input: PathBuf,
    /// The .safetensors file, .nii.gz file or folder/ to write.
    output: PathBuf,
    /// The DICOM series to convert (Series Instance UID) when the input holds several.
    #[arg(long)]
    series: Option<String>,
    /// Store float16 (half the size).
    #[arg(long)]
    half: bool,
    /// SAM 2 architecture for weights that do not name it: medsam2-t512 or sam2.1-t.
    #[arg(long, value_parser = preset)]
    config: Option<Sam2Preset>,
}

pub fn run(a: Args) -> CliResult {
    if is_dicom_input(&a.input)? {
        return convert_dicom(&a);
    }
    let input = a.input.display().to_string();
    let store = read_weights(&a.input).map_err(|e| {
        // A zip may have been meant as DICOM: say that it is not that either.
        if is_zip(&file_head(&a.input, 4)) {
            format!("{e}; nor does the zip hold a DICOM file")
        } else {
            e
        }
    })?;
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

fn convert_dicom(a: &Args) -> CliResult {
    let doc = open_dicom(&a.input, a.series.as_deref())?;
    let to_folder = a.output.as_os_str().to_string_lossy().ends_with('/');
    let info = doc.info();
    match (doc.source_volume(), to_folder) {
        (Some(volume), false) => {
            let bytes = write_nifti_volume(volume).map_err(|e| e.to_string())?;
            write_file(&a.output, &bytes)?;
            let [x, y, z] = volume.spacing;
            println!(
                "wrote {}: {}×{}×{} voxels of {x:.3}×{y:.3}×{z:.3} mm",
                a.output.display(),
                info.width,
                info.height,
                info.frames
            );
        }
        (None, true) => {
            std::fs::create_dir_all(&a.output)
                .map_err(|e| format!("cannot create {}: {e}", a.output.display()))?;
            for k in 0..doc.len() {
                let frame = doc.frame_rgb(k).map_err(|e| e.to_string())?;
                let png = encode_rgb_png(&frame).map_err(|e| e.to_string())?;
                write_file(&a.output.join(format!("frame_{k:05}.png")), &png)?;
            }
            println!(
                "wrote {} PNG frames of {}×{} to {}",
                doc.len(),
                info.width,
                info.height,
                a.output.display()
            );
        }
        (Some(_), true) => {
            return Err(format!(
                "{} is a volume: convert it to a .nii.gz (an output without the trailing slash)",
                a.input.display()
            ));
        }
        (None, false) => {
            let what = if doc.kind() == DocKind::Clip {
                "a cine"
            } else {
                "an image"
            };
            let stem = a.output.to_string_lossy();
            let stem = stem
                .trim_end_matches(".gz")
                .trim_end_matches(".nii")
                .to_string();
            return Err(format!(
                "{} is {what}: convert it to a folder of PNG frames (an output ending in a slash, e.g. {stem}/)",
                a.input.display()
            ));
        }
    }
    Ok(())
}
