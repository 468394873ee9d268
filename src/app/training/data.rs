//! Labelled data → training samples, preprocessed exactly as inference and the
//! official recipes: the frame through the model's own input preprocessing (the
//! model input as `Workspace` makes it; [`DataTransform`]), the label map resized with
//! cv2's `INTER_NEAREST` to the same extent and, for LiteMedSAM, zero-padded to the
//! model's square (`export_finetune_fixtures.py`). SAM 2 / MedSAM2 take the whole
//! square: the frame and its labels are resized to it (official MedSAM2 training
//! resizes the masks with the frames to the model's resolution).
//!
//! A case is one document (volume, clip or image) with a label map over it: every
//! frame with label pixels gives one sample per label value. Cases are the unit of
//! the validation split, since slices of one scan are correlated.

use std::sync::Arc;

use crate::app::document::{DocKind, Document};
use crate::app::error::{AppError, AppResult};
use crate::app::model::LoadedModel;
use crate::io::image::{RgbImage, decode_rgb};
use crate::io::volume::{NiftiGeometry, Volume};
use crate::preprocess::{LiteMedSamTransform, Sam2ImageTransform};
use crate::session::frames::video_model_input;

use super::rng::Rng;

/// At most this many distinct label values in one case: more looks like an image
/// given as labels (and each value would make samples).
pub const MAX_LABEL_VALUES: usize = 255;

/// A label map over a document: one value per pixel of every frame, 0 = background.
#[derive(Clone, Debug, PartialEq)]
pub struct Labels {
    /// `[frames, height, width]`.
    dims: [usize; 3],
    values: Vec<u16>,
}

impl Labels {
    /// `values` row-major per frame, frames one after the other.
    pub fn new(dims: [usize; 3], values: Vec<u16>) -> AppResult<Self> {
        let expected = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if expected != Some(values.len()) || values.is_empty() {
            return Err(AppError::bad_input(format!(
                "a label map of {}×{}×{} needs {} values, got {}",
                dims[2],
                dims[1],
                dims[0],
                expected.map_or_else(|| "too many".to_string(), |n| n.to_string()),
                values.len()
            )));
        }
        Ok(Self { dims, values })
    }

    /// A label volume (NIfTI, the `gts` of a MedSAM npz): whole numbers 0..=65535.
    pub fn from_volume(volume: &Volume) -> AppResult<Self> {
        let mut values = Vec::with_capacity(volume.data.len());
        for &v in &volume.data {
            if !(0.0..=f32::from(u16::MAX)).contains(&v) || v.fract() != 0.0 {
                return Err(AppError::bad_input(format!(
                    "label value {v}: labels must be whole numbers from 0 to 65535 (is this \
                     an image rather than a label map?)"
                )));
            }
            values.push(v as u16);
        }
        Self::new([volume.depth(), volume.height(), volume.width()], values)
    }

    /// A label volume over the volume document `doc`, in the document's voxel order: a
    /// label map whose NIfTI affine places it on the document's grid with axes reversed
    /// (one made on dcm2niix's conversion of a DICOM series, whose rows run the other way
    /// than MedSeg's) is reordered to match; one without a place in space, or on the same
    /// grid, is taken as it is.
    pub fn from_volume_over(volume: &Volume, doc: &Document) -> AppResult<Self> {
        let flips = doc
            .source_volume()
            .and_then(|target| axis_flips(volume, &target.geometry));
        let labels = Self::from_volume(volume)?;
        match flips {
            Some(flip) if flip != [false; 3] => Ok(labels.flipped(flip)),
            _ => Ok(labels),
        }
    }

    /// The same labels with the x (columns), y (rows) and z (frames) axes reversed where
    /// `flip` says.
    fn flipped(&self, flip: [bool; 3]) -> Self {
        let [d, h, w] = self.dims;
        let mut values = Vec::with_capacity(self.values.len());
        for k in 0..d {
            let sk = if flip[2] { d - 1 - k } else { k };
            for j in 0..h {
                let sj = if flip[1] { h - 1 - j } else { j };
                let row = &self.values[(sk * h + sj) * w..(sk * h + sj + 1) * w];
                if flip[0] {
                    values.extend(row.iter().rev());
                } else {
                    values.extend_from_slice(row);
                }
            }
        }
        Self {
            dims: self.dims,
            values,
        }
    }

    /// Mask images, one per frame, all grey (the value is the label; 0/255 masks give
    /// one label).
    pub fn from_masks(masks: &[RgbImage]) -> AppResult<Self> {
        let first = masks
            .first()
            .ok_or_else(|| AppError::bad_input("there are no mask images"))?;
        let (w, h) = (first.width, first.height);
        let mut values = Vec::with_capacity(masks.len() * w * h);
        for (i, m) in masks.iter().enumerate() {
            if (m.width, m.height) != (w, h) {
                return Err(AppError::bad_input(format!(
                    "mask {i} is {}×{}, mask 0 is {w}×{h}",
                    m.width, m.height
                )));
            }
            for p in m.data.chunks_exact(3) {
                if p[0] != p[1] || p[1] != p[2] {
                    return Err(AppError::bad_input(format!(
                        "mask {i} is in colour: a mask image must be grey, its value the label"
                    )));
                }
                values.push(u16::from(p[0]));
            }
        }
        Self::new([masks.len(), h, w], values)
    }

    /// `[frames, height, width]`.
    pub fn dims(&self) -> [usize; 3] {
        self.dims
    }

    /// Every value, frame after frame, row-major.
    pub fn values(&self) -> &[u16] {
        &self.values
    }

    fn frame(&self, k: usize) -> &[u16] {
        let plane = self.dims[1] * self.dims[2];
        &self.values[k * plane..(k + 1) * plane]
    }
}

/// What one case added.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaseSummary {
    /// Frames (slices) with label pixels.
    pub slices: usize,
    /// Samples: (slice, label value) pairs.
    pub samples: usize,
    /// Label values present in the case.
    pub labels: usize,
}

/// One frame at the model's input, shared by the samples of its label values.
pub(crate) struct Slice {
    /// The preprocessed input `3 × S × S` (CHW), dropped once every variant the run
    /// needs is embedded.
    pub(crate) input: Option<Arc<Vec<f32>>>,
    /// The frame's extent inside the padded square (rows, columns).
    pub(crate) resized_hw: (usize, usize),
    /// Its index in the document.
    pub(crate) frame: usize,
}

/// One sample: a slice and the mask of one label value on it.
pub(crate) struct Sample {
    /// Index into the dataset's slices.
    pub(crate) slice: usize,
    /// The ground truth at the model's input size, `S × S`, 0/1.
    pub(crate) gt: Vec<u8>,
}

/// One case: a document with its labels.
pub(crate) struct Case {
    pub(crate) slices: Vec<Slice>,
    pub(crate) samples: Vec<Sample>,
    pub(crate) summary: CaseSummary,
}

/// A model's input preprocessing, as inference applies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataTransform {
    /// LiteMedSAM's recipe: resized to fit the square, padded bottom and right.
    LiteMedSam(LiteMedSamTransform),
    /// SAM 2 / MedSAM2: resized to the square model input, an image as
    /// `SAM2ImagePredictor.set_image` takes it, a clip's frames and a volume's slices
    /// as the video session loads them.
    Sam2(Sam2ImageTransform),
}

impl DataTransform {
    /// The preprocessing of `model`'s inference.
    pub fn for_model(model: &LoadedModel) -> Self {
        match model {
            LoadedModel::LiteMedSam(m) => Self::LiteMedSam(m.transform()),
            LoadedModel::Sam2(m) => Self::Sam2(Sam2ImageTransform::new(m.image_size())),
        }
    }

    pub fn image_size(&self) -> usize {
        match self {
            Self::LiteMedSam(t) => t.image_size,
            Self::Sam2(t) => t.image_size,
        }
    }

    /// The model family, as the user is told.
    pub fn name(&self) -> &'static str {
        match self {
            Self::LiteMedSam(_) => "LiteMedSAM",
            Self::Sam2(_) => "SAM 2 / MedSAM2",
        }
    }

    /// Frame `k` of `doc` as the model's input (`3 × S × S`, CHW) and its extent inside
    /// the square (rows, columns).
    fn model_input(&self, doc: &Document, k: usize) -> AppResult<(Vec<f32>, (usize, usize))> {
        let (h, w) = (doc.height(), doc.width());
        let image = doc.kind() == DocKind::Image;
        match self {
            Self::LiteMedSam(t) => {
                let input = if image {
                    t.prepare_rgb(&doc.frame_rgb(0)?.data, h, w)
                } else {
                    t.prepare_gray(&doc.grey_frame(k)?, h, w)
                }?;
                Ok((input.data, (input.resized_h, input.resized_w)))
            }
            Self::Sam2(t) => {
                let s = t.image_size;
                let input = if image {
                    t.prepare(&doc.frame_rgb(0)?.data, h, w)?
                } else {
                    video_model_input(&doc.frame_rgb(k)?, s)?
                };
                Ok((input, (s, s)))
            }
        }
    }
}

impl From<LiteMedSamTransform> for DataTransform {
    fn from(t: LiteMedSamTransform) -> Self {
        Self::LiteMedSam(t)
    }
}

impl From<Sam2ImageTransform> for DataTransform {
    fn from(t: Sam2ImageTransform) -> Self {
        Self::Sam2(t)
    }
}

/// Labelled cases at the model's input size.
pub struct Dataset {
    transform: DataTransform,
    pub(crate) cases: Vec<Case>,
}

impl Dataset {
    /// An empty dataset for a model with this preprocessing (`LiteMedSam::transform`,
    /// a `Sam2ImageTransform` at the model's size).
    pub fn new(transform: impl Into<DataTransform>) -> Self {
        Self {
            transform: transform.into(),
            cases: Vec::new(),
        }
    }

    /// An empty dataset for `model`, prepared as its inference prepares its input.
    pub fn for_model(model: &LoadedModel) -> Self {
        Self::new(DataTransform::for_model(model))
    }

    pub fn image_size(&self) -> usize {
        self.transform.image_size()
    }

    pub fn transform(&self) -> DataTransform {
        self.transform
    }

    /// Number of cases.
    pub fn cases(&self) -> usize {
        self.cases.len()
    }

    /// Number of slices with labels, over every case.
    pub fn slices(&self) -> usize {
        self.cases.iter().map(|c| c.summary.slices).sum()
    }

    /// Number of samples, over every case.
    pub fn samples(&self) -> usize {
        self.cases.iter().map(|c| c.samples.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.samples() == 0
    }

    /// Adds the open document with a label map over it (the page: a volume or clip and
    /// the label file opened over it). The labels must have the document's frames,
    /// height and width, and some foreground. The model input is the document's, as
    /// `Workspace` segments it: a volume through its window; for LiteMedSAM a clip's
    /// frames grey and an image as RGB, for SAM 2 every frame as RGB.
    pub fn add_document(&mut self, doc: &Document, labels: &Labels) -> AppResult<CaseSummary> {
        let name = doc.name();
        let [d, h, w] = doc.dims();
        let [ld, lh, lw] = labels.dims();
        if [ld, lh, lw] != [d, h, w] {
            return Err(AppError::bad_input(format!(
                "{name}: the labels are {lw}×{lh} with {ld} {word}s, the {kind} {w}×{h} with \
                 {d}: they must match",
                word = doc.frame_word(),
                kind = match doc.kind() {
                    DocKind::Volume => "volume",
                    DocKind::Clip => "clip",
                    DocKind::Image => "image",
                },
            )));
        }
        let mut case = Case {
            slices: Vec::new(),
            samples: Vec::new(),
            summary: CaseSummary::default(),
        };
        let mut values_seen: Vec<u16> = Vec::new();
        let s = self.transform.image_size();
        for k in 0..d {
            let frame = labels.frame(k);
            let mut values: Vec<u16> = frame.iter().copied().filter(|&v| v != 0).collect();
            if values.is_empty() {
                continue;
            }
            values.sort_unstable();
            values.dedup();
            for &v in &values {
                if let Err(at) = values_seen.binary_search(&v) {
                    values_seen.insert(at, v);
                }
            }
            if values_seen.len() > MAX_LABEL_VALUES {
                return Err(AppError::bad_input(format!(
                    "{name}: more than {MAX_LABEL_VALUES} label values: is this an image \
                     rather than a label map?"
                )));
            }
            let (input, (nh, nw)) = self.transform.model_input(doc, k)?;
            let resized = resize_nearest(frame, h, w, nh, nw);
            let slice = case.slices.len();
            let mut any = false;
            for &v in &values {
                let mut gt = vec![0u8; s * s];
                for (y, row) in resized.chunks_exact(nw).enumerate() {
                    for (x, &l) in row.iter().enumerate() {
                        gt[y * s + x] = u8::from(l == v);
                    }
                }
                // A label smaller than a model pixel may vanish in the resize.
                if gt.contains(&1) {
                    case.samples.push(Sample { slice, gt });
                    any = true;
                }
            }
            if any {
                case.slices.push(Slice {
                    input: Some(Arc::new(input)),
                    resized_hw: (nh, nw),
                    frame: k,
                });
            }
        }
        if case.samples.is_empty() {
            return Err(AppError::bad_input(format!(
                "{name}: the labels have no foreground{}: every label value is 0",
                if values_seen.is_empty() {
                    ""
                } else {
                    " left at the model's input size"
                }
            )));
        }
        case.summary = CaseSummary {
            slices: case.slices.len(),
            samples: case.samples.len(),
            labels: values_seen.len(),
        };
        let summary = case.summary;
        self.cases.push(case);
        Ok(summary)
    }

    /// A MedSAM `.npz` with `imgs` and `gts`.
    pub fn add_npz(&mut self, name: &str, bytes: &[u8]) -> AppResult<CaseSummary> {
        let read = |key: &str| {
            Volume::from_npz_bytes(bytes, &[key]).map_err(|e| AppError::from(e).context(name))
        };
        let doc = Document::volume(name, read("imgs")?, None)?;
        let labels = Labels::from_volume(&read("gts")?).map_err(|e| e.context(name))?;
        self.add_document(&doc, &labels)
    }

    /// A volume (NIfTI or npz `imgs`) and its label volume (NIfTI or npz `gts`/`segs`),
    /// the volume windowed as `medseg track` and the page do (automatic window).
    pub fn add_volume_pair(
        &mut self,
        name: &str,
        image: &[u8],
        labels: &[u8],
    ) -> AppResult<CaseSummary> {
        let volume = Volume::from_bytes(image).map_err(|e| AppError::from(e).context(name))?;
        let label_volume = Volume::from_bytes_with_npz_keys(labels, &["gts", "segs"])
            .map_err(|e| AppError::from(e).context(format!("{name} (labels)")))?;
        let doc = Document::volume(name, volume, None)?;
        let labels = Labels::from_volume_over(&label_volume, &doc)
            .map_err(|e| e.context(format!("{name} (labels)")))?;
        self.add_document(&doc, &labels)
    }

    /// An image (PNG/JPEG/WebP) and its grey mask image.
    pub fn add_image_pair(
        &mut self,
        name: &str,
        image: &[u8],
        mask: &[u8],
    ) -> AppResult<CaseSummary> {
        let img = decode_rgb(image).map_err(|e| AppError::from(e).context(name))?;
        let mask =
            decode_rgb(mask).map_err(|e| AppError::from(e).context(format!("{name} (mask)")))?;
        let labels = Labels::from_masks(&[mask]).map_err(|e| e.context(name))?;
        let doc = Document::image(name, img)?;
        self.add_document(&doc, &labels)
    }

    /// Frames and a mask image per frame (a frame folder with its mask folder).
    pub fn add_frames(
        &mut self,
        name: &str,
        frames: Vec<RgbImage>,
        masks: &[RgbImage],
    ) -> AppResult<CaseSummary> {
        let labels = Labels::from_masks(masks).map_err(|e| e.context(name))?;
        let doc = Document::clip(name, frames)?;
        self.add_document(&doc, &labels)
    }

    /// Moves whole cases out as a validation set: `fraction` of them (rounded, at least
    /// one), chosen by `seed`, leaving at least one case here. `None` when there are fewer
    /// than two cases or `fraction` is 0.
    pub fn split_validation(&mut self, fraction: f64, seed: u64) -> AppResult<Option<Dataset>> {
        if !(0.0..1.0).contains(&fraction) {
            return Err(AppError::bad_input(format!(
                "validation split {fraction}: expected a fraction from 0 up to (not including) 1"
            )));
        }
        let n = self.cases.len();
        if n < 2 || fraction == 0.0 {
            return Ok(None);
        }
        let n_val = ((n as f64 * fraction).round() as usize).clamp(1, n - 1);
        let mut order: Vec<usize> = (0..n).collect();
        Rng::new(seed ^ SPLIT_STREAM).shuffle(&mut order);
        let mut val_idx: Vec<usize> = order[..n_val].to_vec();
        val_idx.sort_unstable();
        let mut val = Dataset::new(self.transform);
        for &i in val_idx.iter().rev() {
            val.cases.push(self.cases.remove(i));
        }
        val.cases.reverse();
        Ok(Some(val))
    }

    /// Every sample as prepared, in case order (the model input until it is embedded).
    pub fn sample_views(&self) -> Vec<SampleView<'_>> {
        let mut out = Vec::with_capacity(self.samples());
        for (case, c) in self.cases.iter().enumerate() {
            for smp in &c.samples {
                let sl = &c.slices[smp.slice];
                out.push(SampleView {
                    case,
                    frame: sl.frame,
                    input: sl.input.as_deref().map(Vec::as_slice),
                    gt: &smp.gt,
                    resized_hw: sl.resized_hw,
                });
            }
        }
        out
    }

    /// Every slice, in case order.
    pub(crate) fn all_slices(&self) -> impl Iterator<Item = &Slice> {
        self.cases.iter().flat_map(|c| &c.slices)
    }

    /// Every sample with its global slice index, in case order.
    pub(crate) fn all_samples(&self) -> Vec<(usize, &Sample)> {
        let mut out = Vec::with_capacity(self.samples());
        let mut base = 0;
        for c in &self.cases {
            out.extend(c.samples.iter().map(|s| (base + s.slice, s)));
            base += c.slices.len();
        }
        out
    }

    /// Drops the slices' preprocessed inputs (once embedded).
    pub(crate) fn drop_inputs(&mut self) {
        for c in &mut self.cases {
            for s in &mut c.slices {
                s.input = None;
            }
        }
    }
}

/// A prepared sample, for inspection.
#[derive(Clone, Copy, Debug)]
pub struct SampleView<'a> {
    /// Index of its case in the dataset.
    pub case: usize,
    /// Its frame (slice) in the case's document.
    pub frame: usize,
    /// The model input, `3 × S × S` (CHW), until embedded by a run.
    pub input: Option<&'a [f32]>,
    /// The ground truth, `S × S`, 0/1.
    pub gt: &'a [u8],
    /// The frame's extent inside the padded square (rows, columns).
    pub resized_hw: (usize, usize),
}

/// Distinguishes the validation split's random stream from the run's.
const SPLIT_STREAM: u64 = 0x9e37_79b9_7f4a_7c15;

/// cv2 `resize(..., interpolation=INTER_NEAREST)` of an `h × w` map to `nh × nw`:
/// source index `min(floor(x · w / nw), w − 1)` with the scale in float64, as
/// OpenCV's `resizeNN` computes it (`1 / (nw / w)`).
pub fn resize_nearest<T: Copy>(src: &[T], h: usize, w: usize, nh: usize, nw: usize) -> Vec<T> {
    let ifx = 1.0 / (nw as f64 / w as f64);
    let ify = 1.0 / (nh as f64 / h as f64);
    let xs: Vec<usize> = (0..nw)
        .map(|x| ((x as f64 * ifx).floor() as usize).min(w - 1))
        .collect();
    let mut out = Vec::with_capacity(nh * nw);
    for y in 0..nh {
        let sy = ((y as f64 * ify).floor() as usize).min(h - 1);
        let row = &src[sy * w..(sy + 1) * w];
        out.extend(xs.iter().map(|&sx| row[sx]));
    }
    out
}

/// The recipe's box prompt for an `s × s` ground truth: its bounding box pushed
/// outwards by `jitter` (`x0, y0, x1, y1` pixels), clipped to the square; `None` for
/// an empty mask.
pub fn jittered_box(gt: &[u8], s: usize, jitter: [usize; 4]) -> Option<[f32; 4]> {
    let [x0, y0, x1, y1] = bbox(gt, s)?;
    Some([
        x0.saturating_sub(jitter[0]) as f32,
        y0.saturating_sub(jitter[1]) as f32,
        (x1 + jitter[2]).min(s - 1) as f32,
        (y1 + jitter[3]).min(s - 1) as f32,
    ])
}

/// The ground truth's bounding box `[x0, y0, x1, y1]` in an `s × s` mask, if any.
fn bbox(gt: &[u8], s: usize) -> Option<[usize; 4]> {
    let mut b: Option<[usize; 4]> = None;
    for (p, &v) in gt.iter().enumerate() {
        if v == 0 {
            continue;
        }
        let (y, x) = (p / s, p % s);
        b = Some(match b {
            None => [x, y, x, y],
            Some([x0, y0, x1, y1]) => [x0.min(x), y0.min(y), x1.max(x), y1.max(y)],
        });
    }
    b
}

/// A flip of the padded model input (`np.flip` of the official loader).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Flip {
    /// Left–right (`axis=-1`).
    pub(crate) horizontal: bool,
    /// Up–down (`axis=-2`).
    pub(crate) vertical: bool,
}

impl Flip {
    pub(crate) const NONE: Flip = Flip {
        horizontal: false,
        vertical: false,
    };

    /// 0..4, the index of this flip's cached embedding.
    pub(crate) fn index(self) -> usize {
        usize::from(self.horizontal) + 2 * usize::from(self.vertical)
    }

    pub(crate) fn all() -> [Flip; 4] {
        [0, 1, 2, 3].map(|i| Flip {
            horizontal: i & 1 != 0,
            vertical: i & 2 != 0,
        })
    }

    /// `planes` planes of `s × s`, flipped.
    pub(crate) fn apply<T: Copy>(self, data: &[T], s: usize) -> Vec<T> {
        if self == Flip::NONE {
            return data.to_vec();
        }
        let mut out = Vec::with_capacity(data.len());
        for plane in data.chunks_exact(s * s) {
            for y in 0..s {
                let sy = if self.vertical { s - 1 - y } else { y };
                let row = &plane[sy * s..(sy + 1) * s];
                if self.horizontal {
                    out.extend(row.iter().rev());
                } else {
                    out.extend_from_slice(row);
                }
            }
        }
        out
    }
}

/// Which axes of `labels` run the other way than those of the grid `target`, when both
/// NIfTI affines place voxels in space (qform or sform code above 0), the grids have the
/// same size, and reversing those axes lays every corner voxel of one on the other's
/// (within a tenth of the smallest voxel); `None` otherwise (no place in space, another
/// grid: the labels are taken as they are).
fn axis_flips(labels: &Volume, target: &NiftiGeometry) -> Option<[bool; 3]> {
    let placed = |g: &NiftiGeometry| g.sform_code > 0 || g.qform_code > 0;
    if labels.dims != target.dims || !placed(&labels.geometry) || !placed(target) {
        return None;
    }
    let (a, b) = (labels.geometry.affine(), target.affine());
    let at = |m: &[[f64; 4]; 4], p: [f64; 3]| {
        [0, 1, 2].map(|r| m[r][0] * p[0] + m[r][1] * p[1] + m[r][2] * p[2] + m[r][3])
    };
    let tolerance = 0.1
        * target
            .spacing()
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
    let last = target.dims.map(|n| n.saturating_sub(1) as f64);
    (0..8u8)
        .map(|bits| [bits & 1 != 0, bits & 2 != 0, bits & 4 != 0])
        .find(|flip| {
            (0..8u8).all(|corner| {
                let p = [0, 1, 2].map(|ax| if corner >> ax & 1 != 0 { last[ax] } else { 0.0 });
                let q = [0, 1, 2].map(|ax| if flip[ax] { last[ax] - p[ax] } else { p[ax] });
                let (x, y) = (at(&a, p), at(&b, q));
                (0..3).map(|r| (x[r] - y[r]).powi(2)).sum::<f64>().sqrt() <= tolerance
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_resize_is_opencvs() {
        // cv2.resize(np.arange(5)[None], (3, 1), interpolation=cv2.INTER_NEAREST)
        // = [[0, 1, 3]]: floor(x * 5/3).
        assert_eq!(resize_nearest(&[0, 1, 2, 3, 4], 1, 5, 1, 3), vec![0, 1, 3]);
        // Upscaling repeats: 2 → 5 is floor(x * 0.4) = 0, 0, 0, 1, 1.
        assert_eq!(resize_nearest(&[7, 9], 1, 2, 1, 5), vec![7, 7, 7, 9, 9]);
    }

    #[test]
    fn flips_are_numpys() {
        let a: Vec<u8> = (0..4).collect(); // [[0, 1], [2, 3]]
        let h = Flip {
            horizontal: true,
            vertical: false,
        };
        let v = Flip {
            horizontal: false,
            vertical: true,
        };
        assert_eq!(h.apply(&a, 2), vec![1, 0, 3, 2]);
        assert_eq!(v.apply(&a, 2), vec![2, 3, 0, 1]);
        assert_eq!(Flip::all()[3].apply(&a, 2), vec![3, 2, 1, 0]);
        assert_eq!(Flip::all().map(Flip::index), [0, 1, 2, 3]);
    }

    #[test]
    fn labels_refuse_what_is_not_a_label_map() {
        assert!(Labels::new([1, 2, 2], vec![0; 3]).is_err());
        let grey = RgbImage {
            width: 1,
            height: 1,
            data: vec![1, 2, 3],
        };
        let e = Labels::from_masks(&[grey]).unwrap_err();
        assert!(e.message.contains("colour"), "{e}");
    }
}
