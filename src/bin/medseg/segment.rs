//! `medseg segment`: one image, one box and/or points, one mask.

use std::path::{Path, PathBuf};

use medseg::app::Document;
use medseg::app::prompts::{parse_numbers, point_label};
use medseg::io::image::{decode_rgb, encode_mask_png};
use medseg::predictor::ImagePrompt;

use crate::common::{
    CliResult, ModelArgs, is_dicom_input, named_dicom_but_not, open_dicom, read_file, write_file,
};

/// Segment one image with a box and/or points (pixel coordinates of the image); writes a
/// 0/255 PNG mask and, optionally, the mask logits as .npy.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// PNG, JPEG or WebP image, or a DICOM image (one frame).
    #[arg(long)]
    image: PathBuf,
    /// Box x0,y0,x1,y1 (a leading minus sign is a coordinate, not an option).
    #[arg(long = "box", value_name = "X0,Y0,X1,Y1", value_parser = parse_numbers::<4>, allow_hyphen_values = true)]
    box_xyxy: Option<[f32; 4]>,
    /// Point x,y,label (label 1 = object, 0 = background); repeatable.
    #[arg(long = "point", value_name = "X,Y,LABEL", value_parser = parse_numbers::<3>, allow_hyphen_values = true)]
    points: Vec<[f32; 3]>,
    /// The mask PNG to write.
    #[arg(long)]
    out: PathBuf,
    /// Also write the full-resolution mask logits as .npy.
    #[arg(long)]
    logits: Option<PathBuf>,
}

pub fn run(a: Args) -> CliResult {
    if a.box_xyxy.is_none() && a.points.is_empty() {
        return Err("give --box and/or --point".into());
    }
    let prompt = ImagePrompt {
        box_xyxy: a.box_xyxy,
        points: a
            .points
            .iter()
            .map(|&[x, y, l]| Ok(([x, y], point_label(l as f64)?)))
            .collect::<Result<_, medseg::app::AppError>>()
            .map_err(|e| format!("--point: {e}"))?,
    };
    let name = a.image.display().to_string();
    let doc = if is_dicom_input(&a.image)? {
        // A DICOM image or single slice, opened as the page opens it (a CT slice keeps
        // its HU and gets the automatic window).
        let doc = open_dicom(&a.image, None)?;
        if doc.len() != 1 {
            return Err(format!(
                "{name} has {} frames: segment one with `medseg track --frame K --range K,K`",
                doc.len()
            ));
        }
        doc
    } else {
        let image = decode_rgb(&read_file(&a.image)?)
            .map_err(|e| named_dicom_but_not(&a.image).unwrap_or_else(|| format!("{name}: {e}")))?;
        Document::image(name, image).map_err(|e| e.to_string())?
    };
    let (w, h) = (doc.width(), doc.height());
    let (mut ws, _) = a.model.workspace()?;
    ws.open(doc);
    let out = pollster::block_on(ws.add_prompt(1, 0, &prompt)).map_err(|e| e.to_string())?;
    let mask = ws.masks().get(1, 0).map(|m| m.decode()).unwrap_or_default();
    write_file(
        &a.out,
        &encode_mask_png(&mask, w, h).map_err(|e| e.to_string())?,
    )?;
    if let Some(path) = &a.logits {
        let logits = ws
            .masks()
            .logits(1, 0)
            .ok_or("this model gives no logits for --logits")?;
        write_file(
            Path::new(path),
            &medseg::io::npy::encode_f32(&[1, h, w], logits),
        )?;
    }
    let score = Some(out.object_score)
        .filter(|s| s.is_finite())
        .map(|s| format!(" object_score={s:.4}"))
        .unwrap_or_default();
    println!(
        "iou={:.4}{score} mask_pixels={} out={}",
        out.iou,
        out.area,
        a.out.display()
    );
    if let Some(low) = &out.low_confidence {
        eprintln!("warning: low confidence: {}", low.reason);
    }
    Ok(())
}
