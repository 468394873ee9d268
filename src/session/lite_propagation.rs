//! LiteMedSAM's 3D recipe (`infer_volume` of `export_litemedsam_fixtures.py`,
//! after `CVPR24_LiteMedSAM_infer.py`): segment the key slice with the user's
//! box, then walk slice by slice to the top of the z-range and afterwards from
//! the key slice down to its bottom. Each slice is prompted with the bounding
//! box of the previous slice's mask in 256-space, widened by 3 px and clipped
//! (`get_bbox256`, `bbox_shift=3`), or with the key-slice box when that mask
//! is empty.
//!
//! [`LitePropagation`] is driven one slice at a time ([`LitePropagation::step`]),
//! so a UI can show each slice as it is done; [`LitePropagation::run`] does the
//! whole range. Both are async: masks are read back from the device, which
//! WebGPU only allows asynchronously (native callers block on the future).

use std::ops::{Deref, RangeInclusive};

use crate::model::lite_medsam::{LiteMedSam, LiteMedSamError};
use crate::preprocess::{LiteMedSamTransform, PreprocessError};
use crate::session::video::Direction;

/// `bbox_shift` of the recipe: pixels (in 256-space) added around the
/// previous slice's mask.
pub const BBOX_SHIFT: usize = 3;

/// Why a propagation could not be set up or a slice not segmented.
/// The slices the recipe walks from `key` within `lo..=hi` for `directions`: to `lo` when
/// it goes backward, to `hi` when it goes forward (the key slice alone for neither).
pub fn walk_range(
    key: usize,
    (lo, hi): (usize, usize),
    directions: &[Direction],
) -> RangeInclusive<usize> {
    let first = if directions.contains(&Direction::Backward) {
        lo
    } else {
        key
    };
    let last = if directions.contains(&Direction::Forward) {
        hi
    } else {
        key
    };
    first..=last
}

#[derive(Debug, thiserror::Error)]
pub enum PropagationError {
    #[error("volume holds {found} values but {depth}x{height}x{width} needs {expected}")]
    VolumeSize {
        depth: usize,
        height: usize,
        width: usize,
        expected: usize,
        found: usize,
    },
    #[error("z-range {lo}..={hi} is empty or outside the volume's {depth} slices")]
    BadRange { lo: usize, hi: usize, depth: usize },
    #[error("key slice {key} is outside the z-range {lo}..={hi}")]
    KeyOutsideRange { key: usize, lo: usize, hi: usize },
    #[error("the key slice's mask holds {found} pixels, a slice {expected}")]
    KeyMaskSize { expected: usize, found: usize },
    #[error(transparent)]
    Preprocess(#[from] PreprocessError),
    #[error(transparent)]
    Model(#[from] LiteMedSamError),
}

/// Where a slice's box prompt came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoxSource {
    /// The key slice's own (user) box.
    Key,
    /// The bounding box of the neighbouring slice's mask.
    PreviousMask,
    /// The neighbouring mask was empty: the key-slice box again.
    KeyFallback,
}

/// One segmented slice.
#[derive(Clone, Debug)]
pub struct SliceStep {
    /// Index of the slice in the volume.
    pub z: usize,
    /// Its mask, `height × width`, 1 = object.
    pub mask: Vec<u8>,
    /// The box prompt, in 256-space.
    pub box_256: [f32; 4],
    pub box_source: BoxSource,
    /// Predicted IoU.
    pub iou: f32,
}

/// Box-from-previous-mask propagation through a `depth × height × width`
/// u8 volume (slices already windowed to u8 as the recipe's `imgs`).
///
/// Generic over how the model and the volume are held: borrowed (`&LiteMedSam`,
/// `&[u8]`) by the CLI and tests, owned (`Rc<LiteMedSam>`, `Arc<[u8]>`) by the
/// browser session, which keeps a walk alive between calls.
pub struct LitePropagation<M: Deref<Target = LiteMedSam>, V: AsRef<[u8]>> {
    model: M,
    transform: LiteMedSamTransform,
    volume: V,
    height: usize,
    width: usize,
    key_slice: usize,
    key_box_256: [f32; 4],
    /// Slices in the recipe's order: key, key+1..=hi, key-1 down to lo.
    order: Vec<usize>,
    next: usize,
    masks: Vec<u8>,
}

impl<M: Deref<Target = LiteMedSam>, V: AsRef<[u8]>> LitePropagation<M, V> {
    /// Sets up the walk. `dims` is `[depth, height, width]`; `key_box_xyxy`
    /// is the key slice's box in slice pixels (`x0, y0, x1, y1`), taken to
    /// 256-space as `box_to_256` does; `z_range` is inclusive and must
    /// contain the key slice.
    pub fn new(
        model: M,
        volume: V,
        dims: [usize; 3],
        key_slice: usize,
        key_box_xyxy: [f32; 4],
        z_range: RangeInclusive<usize>,
    ) -> Result<Self, PropagationError> {
        let [depth, height, width] = dims;
        let expected = depth * height * width;
        if volume.as_ref().len() != expected {
            return Err(PropagationError::VolumeSize {
                depth,
                height,
                width,
                expected,
                found: volume.as_ref().len(),
            });
        }
        let (lo, hi) = (*z_range.start(), *z_range.end());
        if lo > hi || hi >= depth {
            return Err(PropagationError::BadRange { lo, hi, depth });
        }
        if !(lo..=hi).contains(&key_slice) {
            return Err(PropagationError::KeyOutsideRange {
                key: key_slice,
                lo,
                hi,
            });
        }
        let transform = model.transform();
        if height == 0 || width == 0 {
            return Err(PreprocessError::ZeroSize {
                what: "volume slice",
                height,
                width,
            }
            .into());
        }
        let key_box_256 = transform.box_to_model(key_box_xyxy, (height, width));
        let order = (key_slice..=hi).chain((lo..key_slice).rev()).collect();
        Ok(Self {
            model,
            transform,
            volume,
            height,
            width,
            key_slice,
            key_box_256,
            order,
            next: 0,
            masks: vec![0; expected],
        })
    }

    /// Starts the walk from `mask` (`height × width`, 1 = object), the key slice's mask
    /// already made from the same box (the user's prompt): the key slice is not
    /// segmented again, the walk begins with its neighbours.
    pub fn with_key_mask(mut self, mask: &[u8]) -> Result<Self, PropagationError> {
        let plane = self.height * self.width;
        if mask.len() != plane {
            return Err(PropagationError::KeyMaskSize {
                expected: plane,
                found: mask.len(),
            });
        }
        let z = self.key_slice;
        self.masks[z * plane..(z + 1) * plane].copy_from_slice(mask);
        self.order.retain(|&s| s != z);
        Ok(self)
    }

    /// The key-slice box in 256-space.
    pub fn key_box_256(&self) -> [f32; 4] {
        self.key_box_256
    }

    /// Total number of slices in the walk.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    fn slice(data: &[u8], z: usize, plane: usize) -> &[u8] {
        &data[z * plane..(z + 1) * plane]
    }

    /// The prompt of slice `z`: the key box on the key slice, else the box of
    /// the neighbouring slice's mask (towards the key slice).
    fn prompt(&self, z: usize) -> Result<([f32; 4], BoxSource), PreprocessError> {
        if z == self.key_slice {
            return Ok((self.key_box_256, BoxSource::Key));
        }
        let prev = if z > self.key_slice { z - 1 } else { z + 1 };
        let plane = self.height * self.width;
        let prev_mask = Self::slice(&self.masks, prev, plane);
        Ok(
            match self
                .transform
                .box_from_mask(prev_mask, self.height, self.width, BBOX_SHIFT)?
            {
                Some(b) => (b, BoxSource::PreviousMask),
                None => (self.key_box_256, BoxSource::KeyFallback),
            },
        )
    }

    /// Segments the next slice of the walk and records its mask; `None` when
    /// every slice is done.
    pub async fn step(&mut self) -> Option<Result<SliceStep, PropagationError>> {
        let z = *self.order.get(self.next)?;
        self.next += 1;
        Some(self.segment(z).await)
    }

    async fn segment(&mut self, z: usize) -> Result<SliceStep, PropagationError> {
        let (box_256, box_source) = self.prompt(z)?;
        let plane = self.height * self.width;
        let pred = self
            .model
            .segment_gray_256(
                Self::slice(self.volume.as_ref(), z, plane),
                self.height,
                self.width,
                box_256,
            )
            .await?;
        self.masks[z * plane..(z + 1) * plane].copy_from_slice(&pred.mask);
        Ok(SliceStep {
            z,
            mask: pred.mask,
            box_256,
            box_source,
            iou: pred.iou,
        })
    }

    pub fn into_masks(self) -> Vec<u8> {
        self.masks
    }
}
