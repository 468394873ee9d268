//! DICOM files into series, and a series into what MedSeg opens: a volume (a CT/MR series
//! of slices, or an enhanced multi-frame file with a plane position per frame), a clip
//! (a multi-frame cine: ultrasound, angiography, endoscopy) or an image (one 2-D frame:
//! radiographs, stills; but one CT/MR/PET slice opens as a one-slice volume, so that its
//! values and the CT windows stay).
//!
//! Volumes are assembled as dcm2niix and SimpleITK do: slices sorted along the slice
//! normal (the cross product of Image Orientation's row and column directions) by their
//! Image Position, the slice step from the first to the last position, and the affine of
//! the voxel grid in RAS+ (NIfTI's convention; DICOM's patient axes are LPS, so x and y
//! change sign). The voxel order is the DICOM one: column i, row j as stored (row 0 at
//! the top, as every DICOM viewer shows it, and as SimpleITK gives MedSAM's `.npz`), slice
//! k along the normal. dcm2niix writes rows in the opposite order (its NIfTI files are
//! flipped in j with the affine to match); both describe the same voxels at the same
//! places, which is what `tests/dicom_series.rs` checks.
//!
//! A series that would make a wrong volume is refused with the reason (slices of
//! different sizes or orientations, two slices at one position); one with uneven slice
//! spacing opens with a notice.

use std::collections::BTreeMap;

use serde::Serialize;

use super::meta::ImageMeta;
use super::pixels::{self, Samples};
use super::{DicomError, DicomFile, DicomSource, FrameRef};
use crate::io::image::RgbImage;
use crate::io::volume::{DataType, MAX_VOXELS, NiftiGeometry};
use crate::io::window::value_range;

/// What a series opens as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SeriesKind {
    Volume,
    Clip,
    Image,
}

/// One series among the files given: what the user picks from when there are several.
/// Nothing in it identifies the patient.
#[derive(Clone, Debug, Serialize)]
pub struct SeriesInfo {
    /// Series Instance UID (the key to open it by).
    pub uid: String,
    pub modality: Option<String>,
    pub description: Option<String>,
    pub number: Option<i64>,
    pub files: usize,
    /// Frames in all its files.
    pub frames: usize,
    pub rows: usize,
    pub columns: usize,
    pub kind: SeriesKind,
}

/// A series made ready to open.
pub enum Assembled {
    /// Values (after rescale), slice-major; `window` is the file's first Window
    /// Center/Width as (center, width).
    Volume {
        data: Vec<f32>,
        dims: [usize; 3],
        geometry: NiftiGeometry,
        dtype: DataType,
        window: Option<(f64, f64)>,
    },
    /// RGB frames of a cine; the frame time is in `source`.
    Clip(Vec<RgbImage>),
    Image(RgbImage),
}

/// An assembled series with where it came from and what the user should know about it.
pub struct Opened {
    pub assembled: Assembled,
    pub source: DicomSource,
    pub notices: Vec<String>,
}

/// Files grouped by Series Instance UID, in the order of their first file. Files without
/// pixel data are not in any series.
pub fn group(files: &[DicomFile]) -> Vec<(SeriesInfo, Vec<usize>)> {
    let mut order: Vec<String> = Vec::new();
    let mut members: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (n, f) in files.iter().enumerate() {
        if f.meta.image.is_none() {
            continue;
        }
        // A file without a series UID is a series of its own.
        let uid = f
            .meta
            .series_instance_uid
            .clone()
            .unwrap_or_else(|| format!("(no series UID: {})", f.meta.sop_instance_uid));
        if !members.contains_key(&uid) {
            order.push(uid.clone());
        }
        members.entry(uid).or_default().push(n);
    }
    order
        .into_iter()
        .filter_map(|uid| {
            let idx = members.remove(&uid)?;
            let first = &files[*idx.first()?];
            let image = first.meta.image.as_ref()?;
            let frames = idx
                .iter()
                .map(|&n| files[n].meta.image.as_ref().map_or(0, |i| i.frames))
                .sum();
            let info = SeriesInfo {
                uid,
                modality: first.meta.modality.clone(),
                description: first.meta.series_description.clone(),
                number: first.meta.series_number,
                files: idx.len(),
                frames,
                rows: image.rows,
                columns: image.columns,
                kind: kind_of(files, &idx),
            };
            Some((info, idx))
        })
        .collect()
}

/// Modalities whose single slices open as one-slice volumes (their values, e.g. HU, kept).
const SLICE_MODALITIES: &[&str] = &["CT", "MR", "PT", "NM"];

/// Modalities whose multi-frame files are cines (frames in time), whatever their geometry.
const CINE_MODALITIES: &[&str] = &["US", "XA", "RF", "ES", "XC", "GM", "IVUS", "OCT"];

fn kind_of(files: &[DicomFile], idx: &[usize]) -> SeriesKind {
    let first = &files[idx[0]];
    let Some(image) = first.meta.image.as_ref() else {
        return SeriesKind::Image;
    };
    let cine = first
        .meta
        .modality
        .as_deref()
        .is_some_and(|m| CINE_MODALITIES.contains(&m));
    let grey = image.samples_per_pixel == 1 && image.photometric.starts_with("MONOCHROME");
    let placed = image.orientation.is_some() && image.positions.len() == image.frames;
    if idx.len() == 1 {
        if image.frames == 1 {
            // One CT/MR/PET slice keeps its values (HU windows); other stills are images.
            let tomographic = first
                .meta
                .modality
                .as_deref()
                .is_some_and(|m| SLICE_MODALITIES.contains(&m));
            if tomographic && grey && placed {
                SeriesKind::Volume
            } else {
                SeriesKind::Image
            }
        } else if !cine && grey && placed {
            SeriesKind::Volume
        } else {
            SeriesKind::Clip
        }
    } else {
        let every_slice_placed =
            idx.iter().all(|&n| {
                files[n].meta.image.as_ref().is_some_and(|i| {
                    i.frames == 1 && i.orientation.is_some() && i.positions.len() == 1
                })
            });
        if every_slice_placed && grey && !cine {
            SeriesKind::Volume
        } else {
            SeriesKind::Clip
        }
    }
}

/// Assembles the series `idx` (indices into `files`, as [`group`] gives them).
pub fn assemble(
    files: &[DicomFile],
    info: &SeriesInfo,
    idx: &[usize],
) -> Result<Opened, DicomError> {
    let members: Vec<&DicomFile> = idx.iter().map(|&n| &files[n]).collect();
    let Some(first) = members.first() else {
        return Err(DicomError::Missing("image in the series"));
    };
    check_same_size(&members)?;
    match info.kind {
        SeriesKind::Volume => volume(&members),
        SeriesKind::Clip => clip(&members),
        SeriesKind::Image => image(first),
    }
}

fn image_meta(f: &DicomFile) -> Result<&ImageMeta, DicomError> {
    f.meta
        .image
        .as_ref()
        .ok_or_else(|| DicomError::NoPixelData(super::meta::what_it_is(&f.meta)))
}

fn check_same_size(members: &[&DicomFile]) -> Result<(), DicomError> {
    let first = image_meta(members[0])?;
    for f in &members[1..] {
        let i = image_meta(f)?;
        if (i.rows, i.columns) != (first.rows, first.columns) {
            return Err(DicomError::Inconsistent(format!(
                "its images differ in size: {}×{} and {}×{} (columns × rows)",
                first.columns, first.rows, i.columns, i.rows
            )));
        }
    }
    Ok(())
}

/// The source description shared by every kind; `frames` is filled by the caller.
fn source_of(first: &DicomFile, frames: Vec<FrameRef>) -> Result<DicomSource, DicomError> {
    let m = &first.meta;
    let image = image_meta(first)?;
    Ok(DicomSource {
        study_instance_uid: m.study_instance_uid.clone().unwrap_or_default(),
        series_instance_uid: m.series_instance_uid.clone().unwrap_or_default(),
        frame_of_reference_uid: m.frame_of_reference_uid.clone(),
        modality: m.modality.clone(),
        series_description: m.series_description.clone(),
        series_number: m.series_number,
        patient: m.patient.clone(),
        rows: image.rows,
        columns: image.columns,
        frames,
        orientation: image.orientation,
        pixel_spacing: image.pixel_spacing,
        slice_thickness: image.slice_thickness,
        spacing_between_slices: image.spacing_between_slices,
        frame_time_ms: image.frame_time_ms,
    })
}

fn frame_ref(f: &DicomFile, frame_number: Option<u32>, position: Option<[f64; 3]>) -> FrameRef {
    FrameRef {
        sop_class_uid: f.meta.sop_class_uid.clone(),
        sop_instance_uid: f.meta.sop_instance_uid.clone(),
        frame_number,
        position,
    }
}

/// The unit normal of an orientation (row × column direction), or why there is none.
fn normal(o: &[f64; 6]) -> Result<[f64; 3], DicomError> {
    let (r, c) = ([o[0], o[1], o[2]], [o[3], o[4], o[5]]);
    let n = [
        r[1] * c[2] - r[2] * c[1],
        r[2] * c[0] - r[0] * c[2],
        r[0] * c[1] - r[1] * c[0],
    ];
    let len = dot(n, n).sqrt();
    if len.is_nan() || len <= 1e-6 || !len.is_finite() {
        return Err(DicomError::BadAttribute {
            name: "Image Orientation (Patient)",
            why: format!("{o:?} has parallel row and column directions"),
        });
    }
    Ok(n.map(|v| v / len))
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Orientations that differ by less than this (direction cosines) are the same.
const ORIENTATION_TOLERANCE: f64 = 1e-4;
/// Slice steps that differ from the mean by more than this fraction make a notice.
const SPACING_TOLERANCE: f64 = 0.01;

/// One slice of a volume: a file's frame and its position.
struct Slice<'a> {
    file: &'a DicomFile,
    /// 0-based frame within the file.
    frame: usize,
    position: [f64; 3],
    distance: f64,
}

fn volume(members: &[&DicomFile]) -> Result<Opened, DicomError> {
    let first = members[0];
    let first_image = image_meta(first)?;
    let orientation = first_image
        .orientation
        .ok_or(DicomError::Missing("Image Orientation (Patient)"))?;
    let n = normal(&orientation)?;
    let mut slices = Vec::new();
    for f in members {
        let i = image_meta(f)?;
        let o = i
            .orientation
            .ok_or(DicomError::Missing("Image Orientation (Patient)"))?;
        if o.iter()
            .zip(&orientation)
            .any(|(a, b)| (a - b).abs() > ORIENTATION_TOLERANCE)
        {
            return Err(DicomError::Inconsistent(format!(
                "its slices have different orientations ({orientation:?} and {o:?}): \
                 open one orientation at a time"
            )));
        }
        if i.positions.len() != i.frames {
            return Err(DicomError::Missing(
                "Image Position (Patient) of every frame",
            ));
        }
        for (frame, &position) in i.positions.iter().enumerate() {
            slices.push(Slice {
                file: f,
                frame,
                position,
                distance: dot(position, n),
            });
        }
    }
    slices.sort_by(|a, b| a.distance.total_cmp(&b.distance));
    for w in slices.windows(2) {
        if (w[1].distance - w[0].distance).abs() < 1e-3 {
            return Err(DicomError::Inconsistent(format!(
                "two slices lie at the same position ({:.3} mm along the normal: instances {} and {}); \
                 the folder may hold several acquisitions (echoes, phases) of one series",
                w[0].distance, w[0].file.meta.sop_instance_uid, w[1].file.meta.sop_instance_uid
            )));
        }
    }
    let (rows, columns, depth) = (first_image.rows, first_image.columns, slices.len());
    let voxels = (rows as u64)
        .checked_mul(columns as u64)
        .and_then(|v| v.checked_mul(depth as u64))
        .filter(|&v| v <= MAX_VOXELS)
        .ok_or_else(|| {
            DicomError::TooLarge(format!(
                "{columns}×{rows}×{depth} voxels; MedSeg opens at most {MAX_VOXELS} here"
            ))
        })? as usize;

    let mut notices = Vec::new();
    // The step between slices: first to last (as dcm2niix for even spacing).
    let step = if depth > 1 {
        let (p0, p1) = (slices[0].position, slices[depth - 1].position);
        [0, 1, 2].map(|a| (p1[a] - p0[a]) / (depth - 1) as f64)
    } else {
        let t = first_image
            .spacing_between_slices
            .or(first_image.slice_thickness)
            .filter(|t| *t > 0.0)
            .unwrap_or(1.0);
        n.map(|v| v * t)
    };
    let mean = dot(step, step).sqrt();
    if depth > 2 {
        let gaps: Vec<f64> = slices
            .windows(2)
            .map(|w| w[1].distance - w[0].distance)
            .collect();
        let (lo, hi) = gaps
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &g| {
                (lo.min(g), hi.max(g))
            });
        if (hi - lo) > SPACING_TOLERANCE * mean {
            notices.push(format!(
                "uneven slice spacing ({lo:.3}–{hi:.3} mm, {} slices): the volume uses their mean, \
                 {mean:.3} mm, so distances along the slices are approximate (missing slices?)",
                depth
            ));
        }
    }

    // Decode each file once, then place its frames.
    let mut data = vec![0f32; voxels];
    let plane = rows * columns;
    let mut decoded: BTreeMap<&str, Vec<f32>> = BTreeMap::new();
    let mut window = None;
    let mut integral = true;
    for (k, s) in slices.iter().enumerate() {
        let key = s.file.meta.sop_instance_uid.as_str();
        if !decoded.contains_key(key) {
            let frames = pixels::decode(s.file)?;
            let Samples::Grey(values) = frames.samples else {
                return Err(DicomError::Unsupported(
                    "colour slices cannot make a volume".to_string(),
                ));
            };
            decoded.insert(key, values);
        }
        let values = &decoded[key];
        let src = values
            .get(s.frame * plane..(s.frame + 1) * plane)
            .ok_or(DicomError::Decode {
                frame: s.frame,
                why: "fewer decoded samples than the header promises".to_string(),
            })?;
        integral &= src.iter().all(|v| v.fract() == 0.0);
        data[k * plane..(k + 1) * plane].copy_from_slice(src);
        // Free a single-frame file's values as soon as they are placed.
        if image_meta(s.file)?.frames == 1 {
            decoded.remove(key);
        }
        if window.is_none() {
            window = image_meta(s.file)?.window;
        }
    }
    let dtype = if !integral {
        DataType::F32
    } else if data
        .iter()
        .all(|&v| (i16::MIN as f32..=i16::MAX as f32).contains(&v))
    {
        DataType::I16
    } else if data.iter().all(|&v| (0.0..=u16::MAX as f32).contains(&v)) {
        DataType::U16
    } else {
        DataType::F32
    };

    let spacing = first_image.pixel_spacing.unwrap_or_else(|| {
        notices.push("no Pixel Spacing: 1 mm pixels assumed".to_string());
        [1.0, 1.0]
    });
    let geometry = ras_geometry(
        [columns, rows, depth],
        &orientation,
        spacing,
        slices[0].position,
        step,
    );
    let frames = slices
        .iter()
        .map(|s| {
            let multi = image_meta(s.file).is_ok_and(|i| i.frames > 1);
            frame_ref(
                s.file,
                multi.then_some(s.frame as u32 + 1),
                Some(s.position),
            )
        })
        .collect();
    let mut source = source_of(first, frames)?;
    source.spacing_between_slices = Some(mean);
    Ok(Opened {
        assembled: Assembled::Volume {
            data,
            dims: [columns, rows, depth],
            geometry,
            dtype,
            window,
        },
        source,
        notices,
    })
}

/// The NIfTI geometry (RAS+) of a DICOM voxel grid: column i along the row direction ×
/// column spacing, row j along the column direction × row spacing, slice k along `step`
/// (mm, LPS), voxel (0, 0, 0) at `origin` (LPS). The sform holds it exactly (code 1,
/// scanner); the qform holds the nearest rotation (what ITK reads), as dcm2niix writes.
pub fn ras_geometry(
    dims: [usize; 3],
    orientation: &[f64; 6],
    pixel_spacing: [f64; 2],
    origin: [f64; 3],
    step: [f64; 3],
) -> NiftiGeometry {
    let (dr, dc) = (pixel_spacing[0], pixel_spacing[1]);
    let lps_to_ras = [-1.0, -1.0, 1.0];
    let mut srow = [[0f32; 4]; 3];
    let mut m = [[0f64; 3]; 3];
    for a in 0..3 {
        let col_i = orientation[a] * dc;
        let col_j = orientation[3 + a] * dr;
        let col_k = step[a];
        m[a] = [col_i, col_j, col_k].map(|v| v * lps_to_ras[a]);
        srow[a] = [
            m[a][0] as f32,
            m[a][1] as f32,
            m[a][2] as f32,
            (origin[a] * lps_to_ras[a]) as f32,
        ];
    }
    let dz = dot(step, step).sqrt();
    let zooms = [dc, dr, if dz > 0.0 { dz } else { 1.0 }];
    let (quatern, qfac) = quaternion_of(&m, zooms);
    NiftiGeometry {
        ndim: 3,
        dims,
        time_points: 1,
        pixdim: [
            qfac as f32,
            zooms[0] as f32,
            zooms[1] as f32,
            zooms[2] as f32,
            1.0,
            1.0,
            1.0,
            1.0,
        ],
        dim_info: 0,
        xyzt_units: 2,
        qform_code: 1,
        sform_code: 1,
        quatern: quatern.map(|v| v as f32),
        qoffset: [0, 1, 2].map(|a| (origin[a] * lps_to_ras[a]) as f32),
        srow,
    }
}

/// NIfTI-1's `mat44_to_quatern`: the quaternion (b, c, d) and qfac of the rotation nearest
/// to the columns of `m` divided by `zooms`.
fn quaternion_of(m: &[[f64; 3]; 3], zooms: [f64; 3]) -> ([f64; 3], f64) {
    // Columns normalised.
    let mut r = [[0f64; 3]; 3];
    for c in 0..3 {
        let len = (0..3).map(|a| m[a][c] * m[a][c]).sum::<f64>().sqrt();
        let len = if len > 0.0 { len } else { zooms[c].max(1.0) };
        for a in 0..3 {
            r[a][c] = m[a][c] / len;
        }
    }
    let det = r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1])
        - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
        + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0]);
    let qfac = if det < 0.0 { -1.0 } else { 1.0 };
    if qfac < 0.0 {
        for row in r.iter_mut() {
            row[2] = -row[2];
        }
    }
    let a = r[0][0] + r[1][1] + r[2][2] + 1.0;
    let (qa, qb, qc, qd);
    if a > 0.5 {
        let a = 0.5 * a.sqrt();
        qa = a;
        qb = 0.25 * (r[2][1] - r[1][2]) / a;
        qc = 0.25 * (r[0][2] - r[2][0]) / a;
        qd = 0.25 * (r[1][0] - r[0][1]) / a;
    } else {
        let xd = 1.0 + r[0][0] - (r[1][1] + r[2][2]);
        let yd = 1.0 + r[1][1] - (r[0][0] + r[2][2]);
        let zd = 1.0 + r[2][2] - (r[0][0] + r[1][1]);
        if xd > 1.0 {
            let b = 0.5 * xd.sqrt();
            qb = b;
            qc = 0.25 * (r[0][1] + r[1][0]) / b;
            qd = 0.25 * (r[0][2] + r[2][0]) / b;
            qa = 0.25 * (r[2][1] - r[1][2]) / b;
        } else if yd > 1.0 {
            let c = 0.5 * yd.sqrt();
            qc = c;
            qb = 0.25 * (r[0][1] + r[1][0]) / c;
            qd = 0.25 * (r[1][2] + r[2][1]) / c;
            qa = 0.25 * (r[0][2] - r[2][0]) / c;
        } else {
            let d = 0.5 * zd.sqrt();
            qd = d;
            qb = 0.25 * (r[0][2] + r[2][0]) / d;
            qc = 0.25 * (r[1][2] + r[2][1]) / d;
            qa = 0.25 * (r[1][0] - r[0][1]) / d;
        }
    }
    // NIfTI keeps a ≥ 0.
    let s = if qa < 0.0 { -1.0 } else { 1.0 };
    ([qb * s, qc * s, qd * s], qfac)
}

/// The 8-bit grey level of value `v` through the file's window, else through `lo..hi`.
fn to_grey(values: &[f32], window: Option<(f64, f64)>) -> Vec<u8> {
    let (lo, hi) = match window {
        // DICOM's linear VOI function: centre c, width w map c − 0.5 − (w − 1)/2 .. to black.
        Some((c, w)) => (c - 0.5 - (w - 1.0) / 2.0, c - 0.5 + (w - 1.0) / 2.0),
        None => {
            let (lo, hi) = value_range(values);
            (lo as f64, hi as f64)
        }
    };
    let span = if hi > lo { hi - lo } else { 1.0 };
    values
        .iter()
        .map(|&v| (((v as f64 - lo) / span) * 255.0).round().clamp(0.0, 255.0) as u8)
        .collect()
}

/// Frames as RGB images: colour as decoded, grey through the window (8-bit data as is).
fn rgb_frames(f: &DicomFile) -> Result<Vec<RgbImage>, DicomError> {
    let image = image_meta(f)?;
    let frames = pixels::decode(f)?;
    let (w, h) = (frames.columns, frames.rows);
    let plane = w * h;
    let rgb: Vec<u8> = match frames.samples {
        Samples::Rgb(rgb) => rgb,
        Samples::Grey(values) => {
            let eight_bit =
                image.bits_stored <= 8 && image.rescale_of(0) == super::meta::Rescale::IDENTITY;
            let window = if eight_bit {
                Some((127.5 + 0.5, 256.0))
            } else {
                image.window
            };
            to_grey(&values, window)
                .iter()
                .flat_map(|&g| [g, g, g])
                .collect()
        }
    };
    rgb.chunks_exact(plane * 3)
        .map(|c| {
            Ok(RgbImage {
                width: w,
                height: h,
                data: c.to_vec(),
            })
        })
        .collect()
}

fn clip(members: &[&DicomFile]) -> Result<Opened, DicomError> {
    let mut notices = Vec::new();
    let mut ordered: Vec<&DicomFile> = members.to_vec();
    if ordered.len() > 1 {
        // Several files without a place in space: frames in Instance Number order.
        ordered.sort_by_key(|f| f.meta.instance_number.unwrap_or(i64::MAX));
        notices.push(format!(
            "{} files without slice positions: opened as a clip in Instance Number order",
            ordered.len()
        ));
    }
    let mut frames = Vec::new();
    let mut refs = Vec::new();
    for f in &ordered {
        let multi = image_meta(f)?.frames > 1;
        for (n, image) in rgb_frames(f)?.into_iter().enumerate() {
            refs.push(frame_ref(f, multi.then_some(n as u32 + 1), None));
            frames.push(image);
        }
    }
    let source = source_of(ordered[0], refs)?;
    Ok(Opened {
        assembled: Assembled::Clip(frames),
        source,
        notices,
    })
}

fn image(f: &DicomFile) -> Result<Opened, DicomError> {
    let image = rgb_frames(f)?
        .into_iter()
        .next()
        .ok_or(DicomError::Missing("frame"))?;
    let position = image_meta(f)?.positions.first().copied();
    let source = source_of(f, vec![frame_ref(f, None, position)])?;
    Ok(Opened {
        assembled: Assembled::Image(image),
        source,
        notices: Vec::new(),
    })
}
