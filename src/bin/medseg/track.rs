//! `medseg track`: follow a structure through a volume or a folder of frames from a box
//! on one frame, through the same workspace the browser uses (same window choice, same
//! propagation recipe, same masks).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use medseg::app::prompts::parse_numbers;
use medseg::app::propagation::{frame_range, whole_range};
use medseg::app::{Directions, DocKind, Document, VolumeOpening};
use medseg::io::window::WindowPreset;
use medseg::predictor::ImagePrompt;
use medseg::session::frames::FolderFrames;

use crate::common::{
    CliResult, ModelArgs, is_dicom_input, named_dicom_but_not, open_dicom, read_file,
    utc_date_time, write_file,
};
use medseg::app::masks::SegRequest;

/// Follow a structure through a volume (NIfTI .nii/.nii.gz, MedSAM .npz, a DICOM series
/// folder or zip, an enhanced multi-frame DICOM), a clip (a multi-frame DICOM cine, a
/// single-slice NIfTI time series (x, y, 1, t)) or a folder of PNG/JPEG frames from a box
/// on frame/slice K. A 4-D NIfTI of several slices (x, y, z, t) needs --volume T. MedSAM2
/// weights track with SAM 2 memory (volumes: MedSAM2's two-pass recipe), LiteMedSAM
/// weights with the walk that prompts each slice with the box of its neighbour's mask.
/// NIfTI and npz input give a NIfTI mask with the input's geometry (a time series': x, y,
/// 1, t), other clips a folder of PNG masks (mask_00000.png, ...); DICOM input gives a
/// DICOM Segmentation when --out ends in .dcm.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// A volume file, a DICOM file, folder or zip, or a folder of frames.
    #[arg(long)]
    input: PathBuf,
    /// The DICOM series to open (Series Instance UID) when the input holds several.
    #[arg(long)]
    series: Option<String>,
    /// The time point (0-based) of a 4-D NIfTI to open as a 3-D volume; needed when the
    /// file has several slices and several time points.
    #[arg(long, value_name = "T")]
    volume: Option<usize>,
    /// The frame (slice) the box is on.
    #[arg(long, allow_hyphen_values = true)]
    frame: usize,
    /// Box x0,y0,x1,y1 in the slice's pixel grid: x = column (NIfTI voxel index i), y =
    /// row (index j).
    #[arg(long = "box", value_name = "X0,Y0,X1,Y1", value_parser = parse_numbers::<4>, allow_hyphen_values = true)]
    box_xyxy: [f32; 4],
    /// Object id, the label value in the output (1..=255).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=255))]
    obj: u32,
    /// forward, backward or both.
    #[arg(long, default_value = "both", value_parser = |s: &str| Directions::parse(s).map_err(|e| e.to_string()))]
    direction: Directions,
    /// Frames FIRST,LAST (inclusive) to track over; default all.
    #[arg(long, value_name = "FIRST,LAST", value_parser = parse_numbers::<2>, allow_hyphen_values = true)]
    range: Option<[f32; 2]>,
    /// Volume window: soft, lung, bone, brain, mr, none, or auto (chosen from the data,
    /// as the browser does).
    #[arg(long, default_value = "auto")]
    window: String,
    /// The mask to write: a .nii.gz for NIfTI/npz input (time series included), a folder
    /// for frames, a .dcm (DICOM Segmentation) for DICOM input.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(a: Args) -> CliResult {
    let window = WindowPreset::parse(&a.window).map_err(|e| format!("--window: {e}"))?;
    let doc = open_input(&a.input, window, a.series.as_deref(), a.volume)?;
    let seg_out = a
        .out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("dcm"));
    if seg_out && doc.dicom().is_none() {
        return Err(format!(
            "--out {}: a DICOM Segmentation refers to its DICOM source; {} is not DICOM \
             (write a .nii.gz or a folder instead)",
            a.out.display(),
            a.input.display()
        ));
    }
    let depth = doc.len();
    if a.frame >= depth {
        return Err(format!(
            "--frame {}: the input has {depth} frames/slices (0..{})",
            a.frame,
            depth - 1
        ));
    }
    let range = a.range.map(whole_range).transpose();
    let (lo, hi) = range
        .and_then(|r| frame_range(r, depth))
        // Both rules' messages begin "range …": the option's name is that word.
        .map_err(|e| format!("--{e}"))?;
    if a.frame < lo || a.frame > hi {
        return Err(format!(
            "--range {lo},{hi} must contain --frame {}",
            a.frame
        ));
    }
    let (mut ws, _) = a.model.workspace()?;
    // A time series opens as a clip but keeps its NIfTI geometry: its mask goes back as
    // NIfTI over the source (x, y, 1, t), which a viewer overlays.
    let nifti_out = doc.kind() == DocKind::Volume || doc.source_volume().is_some();
    ws.open(doc);
    let started = Instant::now();
    let prompt = ImagePrompt {
        box_xyxy: Some(a.box_xyxy),
        points: Vec::new(),
    };
    let key = pollster::block_on(ws.add_prompt(a.obj, a.frame, &prompt))
        .map_err(|e| format!("--box on frame {}: {e}", a.frame))?;
    if let Some(low) = &key.low_confidence {
        eprintln!(
            "warning: low confidence in the box's mask on frame {}: {}",
            a.frame, low.reason
        );
    }
    // Progress only on a terminal: in a log or a pipe the `\r` updates are noise, and
    // stderr stays the one line of an error when tracking fails.
    let progress = std::io::stderr().is_terminal();
    let report = |done: usize, total: usize| {
        if progress {
            eprint!(
                "\rframe {done}/{total}  {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
    };
    let tracked = pollster::block_on(ws.propagate(a.direction, Some((lo, hi)), report));
    if progress {
        eprintln!();
    }
    tracked.map_err(|e| e.to_string())?;
    let segmented = ws
        .masks()
        .frames_of(a.obj)
        .into_iter()
        .filter(|&f| ws.masks().get(a.obj, f).is_some_and(|m| m.area() > 0))
        .count();
    if seg_out {
        let (date, time) = utc_date_time();
        let request = SegRequest {
            segments: Vec::new(),
            date,
            time,
        };
        let seg = ws
            .export_dicom_seg(None, &request)
            .map_err(|e| e.to_string())?;
        write_file(&a.out, &seg)?;
    } else if nifti_out {
        write_file(&a.out, &ws.export_nifti(None).map_err(|e| e.to_string())?)?;
    } else {
        std::fs::create_dir_all(&a.out)
            .map_err(|e| format!("cannot create {}: {e}", a.out.display()))?;
        let doc = ws.doc().map_err(|e| e.to_string())?;
        for entry in ws.masks().export_png_frames(&doc, None) {
            let (name, png) = entry.map_err(|e| e.to_string())?;
            write_file(&a.out.join(name), &png)?;
        }
    }
    println!(
        "{segmented} frames/slices with a mask ({lo}..={hi}), {:.1} s, out={}",
        started.elapsed().as_secs_f64(),
        a.out.display()
    );
    Ok(())
}

/// DICOM input (with `window` for a volume), a folder of frames (decoded as the model
/// reaches them) or a volume file (`time_point`: of a 4-D NIfTI).
fn open_input(
    path: &std::path::Path,
    window: Option<WindowPreset>,
    series: Option<&str>,
    time_point: Option<usize>,
) -> CliResult<Document> {
    let name = path.display().to_string();
    let dicom = is_dicom_input(path)?;
    if time_point.is_some() && (dicom || path.is_dir()) {
        return Err(format!(
            "--volume: {name} is not a NIfTI file; --volume picks a time point of a 4-D NIfTI"
        ));
    }
    if dicom {
        let doc = open_dicom(path, series)?;
        return match (doc.kind(), window) {
            (DocKind::Volume, Some(_)) => doc.rewindowed(window).map_err(|e| e.to_string()),
            _ => Ok(doc),
        };
    }
    if path.is_dir() {
        let frames = FolderFrames::open(path).map_err(|e| e.to_string())?;
        return Document::clip_from_source(name, Arc::new(frames)).map_err(|e| e.to_string());
    }
    let bytes = read_file(path)?;
    match Document::open_volume_file(name.as_str(), &bytes, window, time_point) {
        Ok(VolumeOpening::Opened(doc)) => Ok(doc),
        Ok(VolumeOpening::ChooseTimePoint(c)) => Err(c.message(&name, "--volume T")),
        Err(e) => Err(named_dicom_but_not(path).unwrap_or_else(|| e.to_string())),
    }
}
