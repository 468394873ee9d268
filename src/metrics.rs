//! Segmentation metrics: Dice similarity coefficient (DSC) and normalised surface Dice
//! (NSD), as MedSAM / MedSAM2 report them.
//!
//! What it mirrors:
//! - The DeepMind `surface-distance` package (google-deepmind/surface-distance,
//!   `surface_distance/metrics.py` + `lookup_tables.py`, Apache-2.0), which MedSAM vendors
//!   as `SurfaceDice.py`: [`compute_surface_distances_3d`] / [`compute_surface_distances_2d`]
//!   are its `compute_surface_distances` (surface elements from 2×2×2 (2×2) neighbourhood
//!   codes on the union bounding box padded by one voxel, their areas (lengths) from the
//!   marching-cubes normals scaled by the spacing, distances from an exact Euclidean
//!   distance transform in mm), [`SurfaceDistances::surface_dice_at_tolerance`] its
//!   `compute_surface_dice_at_tolerance`, [`SurfaceDistances::average_surface_distance`]
//!   its `compute_average_surface_distance`. Our own Rust, checked against values obtained
//!   by running that code (see the tests).
//! - MedSAM's `compute_metrics*.py` conventions for empty masks ([`dice`],
//!   [`normalized_surface_dice_3d`]): ground truth and prediction both empty → 1, ground
//!   truth empty but prediction not → 0. DeepMind's own functions return NaN when both
//!   are empty (0/0); [`SurfaceDistances::surface_dice_at_tolerance`] keeps that, the
//!   convenience functions use MedSAM's convention so that a correct "nothing here" scores 1.
//!
//! Axis order: the functions take arrays in C order with `shape[0]` slowest and one
//! spacing per array axis, like the Python code. A [`Volume`] is (z, y, x), so its spacing
//! (x, y, z) is passed reversed ([`eval_volumes`] does this). MedSAM's NIfTI evaluation
//! runs on nibabel's (x, y, z) arrays with (x, y, z) zooms — the same geometry, and the
//! DeepMind results do not depend on the axis order (checked with the oracle). MedSAM's
//! npz scripts pass `spacing` (x, y, z) with (z, y, x) arrays, which mixes up the axes for
//! anisotropic volumes; we do not reproduce that.

use thiserror::Error;

use crate::io::volume::{Volume, VolumeError};

/// Dice similarity coefficient of two binary masks (non-zero = foreground):
/// `2 |A ∩ B| / (|A| + |B|)`. Both empty → 1.0 (MedSAM's convention; DeepMind's
/// `compute_dice_coefficient` returns NaN there).
///
/// # Panics
/// If the masks differ in length.
pub fn dice(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len(), "dice: masks of different sizes");
    let (mut na, mut nb, mut both) = (0u64, 0u64, 0u64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x != 0, y != 0);
        na += x as u64;
        nb += y as u64;
        both += (x && y) as u64;
    }
    if na + nb == 0 {
        return 1.0;
    }
    2.0 * both as f64 / (na + nb) as f64
}

/// Surface distances of two masks, as returned by DeepMind's `compute_surface_distances`:
/// for every surface element of each mask, its distance (mm) to the other surface and its
/// area (mm², or length in mm in 2-D), sorted by (distance, area). A mask with no surface
/// (empty) has empty lists, and then every distance of the other is infinite.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SurfaceDistances {
    pub distances_gt_to_pred: Vec<f64>,
    pub distances_pred_to_gt: Vec<f64>,
    pub surfel_areas_gt: Vec<f64>,
    pub surfel_areas_pred: Vec<f64>,
}

impl SurfaceDistances {
    /// DeepMind's `compute_surface_dice_at_tolerance`: the area of surface elements within
    /// `tolerance_mm` (`<=`) of the other surface, over the total area of both. NaN when
    /// neither mask has a surface (both empty); 0 when only one has.
    pub fn surface_dice_at_tolerance(&self, tolerance_mm: f64) -> f64 {
        let within = |d: &[f64], a: &[f64]| -> f64 {
            total(
                d.iter()
                    .zip(a)
                    .filter(|(d, _)| **d <= tolerance_mm)
                    .map(|(_, a)| *a),
            )
        };
        let overlap_gt = within(&self.distances_gt_to_pred, &self.surfel_areas_gt);
        let overlap_pred = within(&self.distances_pred_to_gt, &self.surfel_areas_pred);
        let area = total(self.surfel_areas_gt.iter().copied())
            + total(self.surfel_areas_pred.iter().copied());
        (overlap_gt + overlap_pred) / area
    }

    /// DeepMind's `compute_average_surface_distance`: the area-weighted mean distance
    /// (gt → pred, pred → gt), NaN for a direction without surface elements.
    pub fn average_surface_distance(&self) -> (f64, f64) {
        let mean = |d: &[f64], a: &[f64]| -> f64 {
            total(d.iter().zip(a).map(|(d, a)| d * a)) / total(a.iter().copied())
        };
        (
            mean(&self.distances_gt_to_pred, &self.surfel_areas_gt),
            mean(&self.distances_pred_to_gt, &self.surfel_areas_pred),
        )
    }
}

/// DeepMind's `compute_surface_distances` for 3-D masks (non-zero = foreground) of
/// `shape` (C order, `shape[0]` slowest), `spacing_mm[a]` the voxel size along axis a.
///
/// # Panics
/// If a mask's length is not the product of `shape`.
pub fn compute_surface_distances_3d(
    mask_gt: &[u8],
    mask_pred: &[u8],
    shape: [usize; 3],
    spacing_mm: [f64; 3],
) -> SurfaceDistances {
    surface_distances(mask_gt, mask_pred, shape, spacing_mm)
}

/// DeepMind's `compute_surface_distances` for 2-D masks (contour elements and lengths).
///
/// # Panics
/// If a mask's length is not the product of `shape`.
pub fn compute_surface_distances_2d(
    mask_gt: &[u8],
    mask_pred: &[u8],
    shape: [usize; 2],
    spacing_mm: [f64; 2],
) -> SurfaceDistances {
    surface_distances(mask_gt, mask_pred, shape, spacing_mm)
}

/// NSD of 3-D masks at `tolerance_mm` with MedSAM's empty-mask convention: both empty →
/// 1, ground truth empty and prediction not → 0, otherwise DeepMind's surface Dice.
pub fn normalized_surface_dice_3d(
    mask_gt: &[u8],
    mask_pred: &[u8],
    shape: [usize; 3],
    spacing_mm: [f64; 3],
    tolerance_mm: f64,
) -> f64 {
    match empty_convention(mask_gt, mask_pred) {
        Some(v) => v,
        None => compute_surface_distances_3d(mask_gt, mask_pred, shape, spacing_mm)
            .surface_dice_at_tolerance(tolerance_mm),
    }
}

/// As [`normalized_surface_dice_3d`] for 2-D masks.
pub fn normalized_surface_dice_2d(
    mask_gt: &[u8],
    mask_pred: &[u8],
    shape: [usize; 2],
    spacing_mm: [f64; 2],
    tolerance_mm: f64,
) -> f64 {
    match empty_convention(mask_gt, mask_pred) {
        Some(v) => v,
        None => compute_surface_distances_2d(mask_gt, mask_pred, shape, spacing_mm)
            .surface_dice_at_tolerance(tolerance_mm),
    }
}

/// Sum from +0.0 (`Iterator::sum` of no floats is -0.0, which prints as "-0.0000").
fn total(values: impl Iterator<Item = f64>) -> f64 {
    values.fold(0.0, |acc, v| acc + v)
}

fn empty_convention(gt: &[u8], pred: &[u8]) -> Option<f64> {
    let gt_any = gt.iter().any(|&v| v != 0);
    let pred_any = pred.iter().any(|&v| v != 0);
    match (gt_any, pred_any) {
        (false, false) => Some(1.0),
        (false, true) => Some(0.0),
        // A non-empty ground truth against an empty prediction: DeepMind gives 0 itself.
        _ => None,
    }
}

/// Errors of [`eval_files`]: which input was bad, or the two do not match.
#[derive(Debug, Error)]
pub enum EvalError {
    #[error("prediction: {0}")]
    Pred(VolumeError),
    #[error("ground truth: {0}")]
    Gt(VolumeError),
    #[error("prediction and ground truth differ in shape: {pred:?} vs {gt:?} (x, y, z voxels)")]
    ShapeMismatch { pred: [usize; 3], gt: [usize; 3] },
}

/// `medseg eval`: DSC and NSD (at `tolerance_mm`) of a predicted mask against a ground
/// truth mask, each a NIfTI (`.nii` / `.nii.gz`) or an `.npz` (prediction: `segs`, else
/// `gts`; ground truth: `gts`, else `segs`). Non-zero voxels are foreground (labels are
/// not told apart). The spacing is the ground truth's. Returns `(dsc, nsd)`.
pub fn eval_files(pred: &[u8], gt: &[u8], tolerance_mm: f64) -> Result<(f64, f64), EvalError> {
    let p = Volume::from_bytes_with_npz_keys(pred, &["segs", "gts"]).map_err(EvalError::Pred)?;
    let g = Volume::from_bytes_with_npz_keys(gt, &["gts", "segs"]).map_err(EvalError::Gt)?;
    eval_volumes(&p, &g, tolerance_mm)
}

/// [`eval_files`] on volumes already read. A single-slice volume is evaluated in 2-D
/// (contours, as the DeepMind code does for 2-D arrays), otherwise in 3-D.
pub fn eval_volumes(
    pred: &Volume,
    gt: &Volume,
    tolerance_mm: f64,
) -> Result<(f64, f64), EvalError> {
    if pred.dims != gt.dims {
        return Err(EvalError::ShapeMismatch {
            pred: pred.dims,
            gt: gt.dims,
        });
    }
    let (p, g) = (pred.to_mask(), gt.to_mask());
    let dsc = dice(&p, &g);
    let [nx, ny, nz] = gt.dims;
    let [sx, sy, sz] = gt.spacing;
    let nsd = if nz == 1 {
        normalized_surface_dice_2d(&g, &p, [ny, nx], [sy, sx], tolerance_mm)
    } else {
        normalized_surface_dice_3d(&g, &p, [nz, ny, nx], [sz, sy, sx], tolerance_mm)
    };
    Ok((dsc, nsd))
}

// ---------------------------------------------------------------------------------------
// The surface-distance computation, for N = 2 or 3 dimensions.
// ---------------------------------------------------------------------------------------

/// Row-major strides of `dims`.
fn strides<const N: usize>(dims: [usize; N]) -> [usize; N] {
    let mut s = [1usize; N];
    for a in (0..N.saturating_sub(1)).rev() {
        s[a] = s[a + 1] * dims[a + 1];
    }
    s
}

/// Calls `f(flat_index, multi_index)` for every index of `dims` in C order.
fn for_each_index<const N: usize>(dims: [usize; N], mut f: impl FnMut(usize, &[usize; N])) {
    let total: usize = dims.iter().product();
    if total == 0 {
        return;
    }
    let mut idx = [0usize; N];
    for flat in 0..total {
        f(flat, &idx);
        for a in (0..N).rev() {
            idx[a] += 1;
            if idx[a] < dims[a] {
                break;
            }
            idx[a] = 0;
        }
    }
}

fn surface_distances<const N: usize>(
    mask_gt: &[u8],
    mask_pred: &[u8],
    shape: [usize; N],
    spacing: [f64; N],
) -> SurfaceDistances {
    assert!(N == 2 || N == 3, "surface distances: 2-D or 3-D only");
    let total: usize = shape.iter().product();
    assert_eq!(mask_gt.len(), total, "mask_gt does not match the shape");
    assert_eq!(mask_pred.len(), total, "mask_pred does not match the shape");

    // Bounding box of gt | pred (`_compute_bounding_box`).
    let mut lo = [usize::MAX; N];
    let mut hi = [0usize; N];
    let mut any = false;
    for_each_index(shape, |flat, idx| {
        if mask_gt[flat] != 0 || mask_pred[flat] != 0 {
            any = true;
            for a in 0..N {
                lo[a] = lo[a].min(idx[a]);
                hi[a] = hi[a].max(idx[a]);
            }
        }
    });
    if !any {
        return SurfaceDistances::default();
    }

    // `_crop_to_bounding_box` pads one zero voxel after the box, and `ndimage.correlate`
    // with the 2×2(×2) kernel (origin at index 1) reads one voxel before it (constant 0):
    // the code at grid point p looks at crop voxels p-1 and p along each axis. With the box
    // copied into a buffer padded by one zero on both sides, that is `padded[p + d]`,
    // d ∈ {0, 1}^N, for p in 0..=extent.
    let extent: [usize; N] = std::array::from_fn(|a| hi[a] - lo[a] + 1);
    let padded_dims: [usize; N] = std::array::from_fn(|a| extent[a] + 2);
    let grid: [usize; N] = std::array::from_fn(|a| extent[a] + 1);
    let src_strides = strides(shape);
    let pad_strides = strides(padded_dims);
    let pad = |mask: &[u8]| -> Vec<u8> {
        let mut out = vec![0u8; padded_dims.iter().product()];
        for_each_index(extent, |_, q| {
            let src: usize = (0..N).map(|a| (lo[a] + q[a]) * src_strides[a]).sum();
            let dst: usize = (0..N).map(|a| (q[a] + 1) * pad_strides[a]).sum();
            out[dst] = u8::from(mask[src] != 0);
        });
        out
    };
    // Kernel weights: ENCODE_NEIGHBOURHOOD_3D_KERNEL = [[[128, 64], [32, 16]], [[8, 4],
    // [2, 1]]] (2-D: [[8, 4], [2, 1]]): offset d has bit (2^N - 1) - Σ d_a 2^(N-1-a).
    let corners = 1usize << N;
    let offsets: Vec<(usize, u8)> = (0..corners)
        .map(|c| {
            // c's bits, most significant first, are d_0 .. d_{N-1}.
            let off: usize = (0..N)
                .map(|a| ((c >> (N - 1 - a)) & 1) * pad_strides[a])
                .sum();
            (off, 1u8 << (corners - 1 - c))
        })
        .collect();
    let codes = |padded: &[u8]| -> Vec<u8> {
        let mut out = vec![0u8; grid.iter().product()];
        for_each_index(grid, |flat, p| {
            let base: usize = (0..N).map(|a| p[a] * pad_strides[a]).sum();
            let mut code = 0u8;
            for &(off, w) in &offsets {
                if padded[base + off] != 0 {
                    code |= w;
                }
            }
            out[flat] = code;
        });
        out
    };
    let code_gt = codes(&pad(mask_gt));
    let code_pred = codes(&pad(mask_pred));
    let full: u8 = if N == 3 { 0xff } else { 0x0f };
    let is_border = |c: u8| c != 0 && c != full;
    let border_gt: Vec<bool> = code_gt.iter().map(|&c| is_border(c)).collect();
    let border_pred: Vec<bool> = code_pred.iter().map(|&c| is_border(c)).collect();

    let table = if N == 3 {
        surface_area_table_3d([spacing[0], spacing[1], spacing[2]])
    } else {
        contour_length_table_2d([spacing[0], spacing[1]]).to_vec()
    };

    // Distances from each mask's border points to the other mask's border, one distance
    // map alive at a time.
    let gather = |dist_to: &[bool], from: &[bool], codes: &[u8]| -> (Vec<f64>, Vec<f64>) {
        let dist = if dist_to.iter().any(|&b| b) {
            Some(squared_edt(dist_to, grid, spacing))
        } else {
            None // `np.inf * np.ones(...)`
        };
        let mut pairs: Vec<(f64, f64)> = from
            .iter()
            .enumerate()
            .filter(|(_, b)| **b)
            .map(|(i, _)| {
                let d = dist.as_ref().map_or(f64::INFINITY, |m| m[i].sqrt());
                (d, table[codes[i] as usize])
            })
            .collect();
        // `_sort_distances_surfels`: sorted by (distance, area).
        pairs.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.total_cmp(&y.1)));
        pairs.into_iter().unzip()
    };
    let (distances_gt_to_pred, surfel_areas_gt) = gather(&border_pred, &border_gt, &code_gt);
    let (distances_pred_to_gt, surfel_areas_pred) = gather(&border_gt, &border_pred, &code_pred);
    SurfaceDistances {
        distances_gt_to_pred,
        distances_pred_to_gt,
        surfel_areas_gt,
        surfel_areas_pred,
    }
}

/// Squared Euclidean distance (mm²) from every grid point to the nearest `feature` point,
/// with anisotropic spacing: the exact separable transform of Felzenszwalb & Huttenlocher
/// ("Distance Transforms of Sampled Functions", 2012), one pass per axis in f64, axis 0
/// first so that the terms add up in the order of scipy's `distance_transform_edt`
/// (`((Δ0·s0)² + (Δ1·s1)²) + (Δ2·s2)²`). Infinite where there is no feature at all.
fn squared_edt<const N: usize>(feature: &[bool], dims: [usize; N], spacing: [f64; N]) -> Vec<f64> {
    let mut f: Vec<f64> = feature
        .iter()
        .map(|&b| if b { 0.0 } else { f64::INFINITY })
        .collect();
    let st = strides(dims);
    let total = f.len();
    let longest = dims.iter().copied().max().unwrap_or(0);
    let mut line = vec![0f64; longest];
    let mut out = vec![0f64; longest];
    let mut v = Vec::with_capacity(longest);
    let mut z = Vec::with_capacity(longest);
    for a in 0..N {
        let n = dims[a];
        let stride = st[a];
        let block = n * stride;
        // Lines along axis a start at outer * block + inner, inner < stride.
        for outer in (0..total).step_by(block.max(1)) {
            for inner in 0..stride {
                let start = outer + inner;
                for (q, slot) in line[..n].iter_mut().enumerate() {
                    *slot = f[start + q * stride];
                }
                edt_1d(&line[..n], spacing[a], &mut out[..n], &mut v, &mut z);
                for (q, val) in out[..n].iter().enumerate() {
                    f[start + q * stride] = *val;
                }
            }
        }
    }
    f
}

/// One 1-D pass: `out[q] = min_p ((q - p)·s)² + f[p]` over the finite `f[p]` (lower
/// envelope of parabolas; `v` their sites, `z` the left end of each one's interval, in
/// grid units).
fn edt_1d(f: &[f64], s: f64, out: &mut [f64], v: &mut Vec<usize>, z: &mut Vec<f64>) {
    v.clear();
    z.clear();
    let s2 = s * s;
    for q in 0..f.len() {
        if !f[q].is_finite() {
            continue;
        }
        let fq = f[q] + (q as f64 * q as f64) * s2;
        loop {
            let Some(&p) = v.last() else {
                v.push(q);
                z.push(f64::NEG_INFINITY);
                break;
            };
            let fp = f[p] + (p as f64 * p as f64) * s2;
            let sect = (fq - fp) / (2.0 * s2 * (q - p) as f64);
            if z.last().is_some_and(|&zl| sect <= zl) {
                v.pop();
                z.pop();
            } else {
                v.push(q);
                z.push(sect);
                break;
            }
        }
    }
    if v.is_empty() {
        out.fill(f64::INFINITY);
        return;
    }
    let mut k = 0;
    for (q, o) in out.iter_mut().enumerate() {
        while k + 1 < v.len() && z[k + 1] < q as f64 {
            k += 1;
        }
        let d = (q as f64 - v[k] as f64) * s;
        *o = d * d + f[v[k]];
    }
}

/// `create_table_neighbour_code_to_surface_area`: for each of the 256 codes, the sum of
/// the lengths of its surfel normals with component a scaled by the product of the other
/// two spacings (a unit normal area becomes mm²).
pub fn surface_area_table_3d(spacing_mm: [f64; 3]) -> Vec<f64> {
    let [s0, s1, s2] = spacing_mm;
    NEIGHBOUR_CODE_TO_NORMALS
        .iter()
        .map(|normals| {
            let areas = normals.iter().map(|n| {
                let m = [n[0] * s1 * s2, n[1] * s0 * s2, n[2] * s0 * s1];
                (m[0] * m[0] + m[1] * m[1] + m[2] * m[2]).sqrt()
            });
            total(areas)
        })
        .collect()
}

/// `create_table_neighbour_code_to_contour_length`: code bits are top-left 8, top-right 4,
/// bottom-left 2, bottom-right 1 (axis 0 down, axis 1 right). One or three corners inside:
/// a half diagonal; two in the same row: a horizontal segment (spacing[1]); two in the same
/// column: a vertical one (spacing[0]); two on a diagonal (saddle): two half diagonals.
pub fn contour_length_table_2d(spacing_mm: [f64; 2]) -> [f64; 16] {
    let vertical = spacing_mm[0];
    let horizontal = spacing_mm[1];
    let diag = 0.5 * (spacing_mm[0].powi(2) + spacing_mm[1].powi(2)).sqrt();
    std::array::from_fn(|code| match code {
        0b0000 | 0b1111 => 0.0,
        0b0011 | 0b1100 => horizontal,
        0b0101 | 0b1010 => vertical,
        0b0110 | 0b1001 => 2.0 * diag,
        _ => diag, // one or three corners set
    })
}

/// `_NEIGHBOUR_CODE_TO_NORMALS` of DeepMind's `lookup_tables.py` (Copyright 2018 Google
/// Inc., Apache-2.0): for each 2×2×2 neighbourhood code (bit 128 = corner (0,0,0) … bit
/// 1 = corner (1,1,1)), the normals of its marching-cubes triangles; a normal's length is
/// the triangle's area for unit spacing. Transcribed mechanically from the Python source
/// (`-0.0` written as `0.0`: only lengths are used).
#[rustfmt::skip]
const NEIGHBOUR_CODE_TO_NORMALS: [&[[f64; 3]]; 256] = [
    &[[0.0, 0.0, 0.0]],
    &[[0.125, 0.125, 0.125]],
    &[[-0.125, -0.125, 0.125]],
    &[[-0.25, -0.25, 0.0], [0.25, 0.25, 0.0]],
    &[[0.125, -0.125, 0.125]],
    &[[-0.25, 0.0, -0.25], [0.25, 0.0, 0.25]],
    &[[0.125, -0.125, 0.125], [-0.125, -0.125, 0.125]],
    &[[0.5, 0.0, 0.0], [0.25, 0.25, 0.25], [0.125, 0.125, 0.125]],
    &[[-0.125, 0.125, 0.125]],
    &[[0.125, 0.125, 0.125], [-0.125, 0.125, 0.125]],
    &[[-0.25, 0.0, 0.25], [-0.25, 0.0, 0.25]],
    &[[0.5, 0.0, 0.0], [-0.25, -0.25, 0.25], [-0.125, -0.125, 0.125]],
    &[[0.25, -0.25, 0.0], [0.25, -0.25, 0.0]],
    &[[0.5, 0.0, 0.0], [0.25, -0.25, 0.25], [-0.125, 0.125, -0.125]],
    &[[-0.5, 0.0, 0.0], [-0.25, 0.25, 0.25], [-0.125, 0.125, 0.125]],
    &[[0.5, 0.0, 0.0], [0.5, 0.0, 0.0]],
    &[[0.125, -0.125, -0.125]],
    &[[0.0, -0.25, -0.25], [0.0, 0.25, 0.25]],
    &[[-0.125, -0.125, 0.125], [0.125, -0.125, -0.125]],
    &[[0.0, -0.5, 0.0], [0.25, 0.25, 0.25], [0.125, 0.125, 0.125]],
    &[[0.125, -0.125, 0.125], [0.125, -0.125, -0.125]],
    &[[0.0, 0.0, -0.5], [0.25, 0.25, 0.25], [-0.125, -0.125, -0.125]],
    &[[-0.125, -0.125, 0.125], [0.125, -0.125, 0.125], [0.125, -0.125, -0.125]],
    &[[-0.125, -0.125, -0.125], [-0.25, -0.25, -0.25], [0.25, 0.25, 0.25], [0.125, 0.125, 0.125]],
    &[[-0.125, 0.125, 0.125], [0.125, -0.125, -0.125]],
    &[[0.0, -0.25, -0.25], [0.0, 0.25, 0.25], [-0.125, 0.125, 0.125]],
    &[[-0.25, 0.0, 0.25], [-0.25, 0.0, 0.25], [0.125, -0.125, -0.125]],
    &[[0.125, 0.125, 0.125], [0.375, 0.375, 0.375], [0.0, -0.25, 0.25], [-0.25, 0.0, 0.25]],
    &[[0.125, -0.125, -0.125], [0.25, -0.25, 0.0], [0.25, -0.25, 0.0]],
    &[[0.375, 0.375, 0.375], [0.0, 0.25, -0.25], [-0.125, -0.125, -0.125], [-0.25, 0.25, 0.0]],
    &[[-0.5, 0.0, 0.0], [-0.125, -0.125, -0.125], [-0.25, -0.25, -0.25], [0.125, 0.125, 0.125]],
    &[[-0.5, 0.0, 0.0], [-0.125, -0.125, -0.125], [-0.25, -0.25, -0.25]],
    &[[0.125, -0.125, 0.125]],
    &[[0.125, 0.125, 0.125], [0.125, -0.125, 0.125]],
    &[[0.0, -0.25, 0.25], [0.0, 0.25, -0.25]],
    &[[0.0, -0.5, 0.0], [0.125, 0.125, -0.125], [0.25, 0.25, -0.25]],
    &[[0.125, -0.125, 0.125], [0.125, -0.125, 0.125]],
    &[[0.125, -0.125, 0.125], [-0.25, 0.0, -0.25], [0.25, 0.0, 0.25]],
    &[[0.0, -0.25, 0.25], [0.0, 0.25, -0.25], [0.125, -0.125, 0.125]],
    &[[-0.375, -0.375, 0.375], [0.0, 0.25, 0.25], [0.125, 0.125, -0.125], [-0.25, 0.0, -0.25]],
    &[[-0.125, 0.125, 0.125], [0.125, -0.125, 0.125]],
    &[[0.125, 0.125, 0.125], [0.125, -0.125, 0.125], [-0.125, 0.125, 0.125]],
    &[[0.0, 0.0, 0.5], [-0.25, -0.25, 0.25], [-0.125, -0.125, 0.125]],
    &[[0.25, 0.25, -0.25], [0.25, 0.25, -0.25], [0.125, 0.125, -0.125], [-0.125, -0.125, 0.125]],
    &[[0.125, -0.125, 0.125], [0.25, -0.25, 0.0], [0.25, -0.25, 0.0]],
    &[[0.5, 0.0, 0.0], [0.25, -0.25, 0.25], [-0.125, 0.125, -0.125], [0.125, -0.125, 0.125]],
    &[[0.0, 0.25, -0.25], [0.375, -0.375, -0.375], [-0.125, 0.125, 0.125], [0.25, 0.25, 0.0]],
    &[[-0.5, 0.0, 0.0], [-0.25, -0.25, 0.25], [-0.125, -0.125, 0.125]],
    &[[0.25, -0.25, 0.0], [-0.25, 0.25, 0.0]],
    &[[0.0, 0.5, 0.0], [-0.25, 0.25, 0.25], [0.125, -0.125, -0.125]],
    &[[0.0, 0.5, 0.0], [0.125, -0.125, 0.125], [-0.25, 0.25, -0.25]],
    &[[0.0, 0.5, 0.0], [0.0, -0.5, 0.0]],
    &[[0.25, -0.25, 0.0], [-0.25, 0.25, 0.0], [0.125, -0.125, 0.125]],
    &[[-0.375, -0.375, -0.375], [-0.25, 0.0, 0.25], [-0.125, -0.125, -0.125], [-0.25, 0.25, 0.0]],
    &[[0.125, 0.125, 0.125], [0.0, -0.5, 0.0], [-0.25, -0.25, -0.25], [-0.125, -0.125, -0.125]],
    &[[0.0, -0.5, 0.0], [-0.25, -0.25, -0.25], [-0.125, -0.125, -0.125]],
    &[[-0.125, 0.125, 0.125], [0.25, -0.25, 0.0], [-0.25, 0.25, 0.0]],
    &[[0.0, 0.5, 0.0], [0.25, 0.25, -0.25], [-0.125, -0.125, 0.125], [-0.125, -0.125, 0.125]],
    &[[-0.375, 0.375, -0.375], [-0.25, -0.25, 0.0], [-0.125, 0.125, -0.125], [-0.25, 0.0, 0.25]],
    &[[0.0, 0.5, 0.0], [0.25, 0.25, -0.25], [-0.125, -0.125, 0.125]],
    &[[0.25, -0.25, 0.0], [-0.25, 0.25, 0.0], [0.25, -0.25, 0.0], [0.25, -0.25, 0.0]],
    &[[-0.25, -0.25, 0.0], [-0.25, -0.25, 0.0], [-0.125, -0.125, 0.125]],
    &[[0.125, 0.125, 0.125], [-0.25, -0.25, 0.0], [-0.25, -0.25, 0.0]],
    &[[-0.25, -0.25, 0.0], [-0.25, -0.25, 0.0]],
    &[[-0.125, -0.125, 0.125]],
    &[[0.125, 0.125, 0.125], [-0.125, -0.125, 0.125]],
    &[[-0.125, -0.125, 0.125], [-0.125, -0.125, 0.125]],
    &[[-0.125, -0.125, 0.125], [-0.25, -0.25, 0.0], [0.25, 0.25, 0.0]],
    &[[0.0, -0.25, 0.25], [0.0, -0.25, 0.25]],
    &[[0.0, 0.0, 0.5], [0.25, -0.25, 0.25], [0.125, -0.125, 0.125]],
    &[[0.0, -0.25, 0.25], [0.0, -0.25, 0.25], [-0.125, -0.125, 0.125]],
    &[[0.375, -0.375, 0.375], [0.0, -0.25, -0.25], [-0.125, 0.125, -0.125], [0.25, 0.25, 0.0]],
    &[[-0.125, -0.125, 0.125], [-0.125, 0.125, 0.125]],
    &[[0.125, 0.125, 0.125], [-0.125, -0.125, 0.125], [-0.125, 0.125, 0.125]],
    &[[-0.125, -0.125, 0.125], [-0.25, 0.0, 0.25], [-0.25, 0.0, 0.25]],
    &[[0.5, 0.0, 0.0], [-0.25, -0.25, 0.25], [-0.125, -0.125, 0.125], [-0.125, -0.125, 0.125]],
    &[[0.0, 0.5, 0.0], [-0.25, 0.25, -0.25], [0.125, -0.125, 0.125]],
    &[[-0.25, 0.25, -0.25], [-0.25, 0.25, -0.25], [-0.125, 0.125, -0.125], [-0.125, 0.125, -0.125]],
    &[[-0.25, 0.0, -0.25], [0.375, -0.375, -0.375], [0.0, 0.25, -0.25], [-0.125, 0.125, 0.125]],
    &[[0.5, 0.0, 0.0], [-0.25, 0.25, -0.25], [0.125, -0.125, 0.125]],
    &[[-0.25, 0.0, 0.25], [0.25, 0.0, -0.25]],
    &[[0.0, 0.0, 0.5], [-0.25, 0.25, 0.25], [-0.125, 0.125, 0.125]],
    &[[-0.125, -0.125, 0.125], [-0.25, 0.0, 0.25], [0.25, 0.0, -0.25]],
    &[[-0.25, 0.0, -0.25], [-0.375, 0.375, 0.375], [-0.25, -0.25, 0.0], [-0.125, 0.125, 0.125]],
    &[[0.0, 0.0, -0.5], [0.25, 0.25, -0.25], [-0.125, -0.125, 0.125]],
    &[[0.0, 0.0, 0.5], [0.0, 0.0, 0.5]],
    &[[0.125, 0.125, 0.125], [0.125, 0.125, 0.125], [0.25, 0.25, 0.25], [0.0, 0.0, 0.5]],
    &[[0.125, 0.125, 0.125], [0.25, 0.25, 0.25], [0.0, 0.0, 0.5]],
    &[[-0.25, 0.0, 0.25], [0.25, 0.0, -0.25], [-0.125, 0.125, 0.125]],
    &[[0.0, 0.0, 0.5], [0.25, -0.25, 0.25], [0.125, -0.125, 0.125], [0.125, -0.125, 0.125]],
    &[[-0.25, 0.0, 0.25], [-0.25, 0.0, 0.25], [-0.25, 0.0, 0.25], [0.25, 0.0, -0.25]],
    &[[0.125, -0.125, 0.125], [0.25, 0.0, 0.25], [0.25, 0.0, 0.25]],
    &[[0.25, 0.0, 0.25], [-0.375, -0.375, 0.375], [-0.25, 0.25, 0.0], [-0.125, -0.125, 0.125]],
    &[[0.0, 0.0, 0.5], [0.25, -0.25, 0.25], [0.125, -0.125, 0.125]],
    &[[0.125, 0.125, 0.125], [0.25, 0.0, 0.25], [0.25, 0.0, 0.25]],
    &[[0.25, 0.0, 0.25], [0.25, 0.0, 0.25]],
    &[[-0.125, -0.125, 0.125], [0.125, -0.125, 0.125]],
    &[[0.125, 0.125, 0.125], [-0.125, -0.125, 0.125], [0.125, -0.125, 0.125]],
    &[[-0.125, -0.125, 0.125], [0.0, -0.25, 0.25], [0.0, 0.25, -0.25]],
    &[[0.0, -0.5, 0.0], [0.125, 0.125, -0.125], [0.25, 0.25, -0.25], [-0.125, -0.125, 0.125]],
    &[[0.0, -0.25, 0.25], [0.0, -0.25, 0.25], [0.125, -0.125, 0.125]],
    &[[0.0, 0.0, 0.5], [0.25, -0.25, 0.25], [0.125, -0.125, 0.125], [0.125, -0.125, 0.125]],
    &[[0.0, -0.25, 0.25], [0.0, -0.25, 0.25], [0.0, -0.25, 0.25], [0.0, 0.25, -0.25]],
    &[[0.0, 0.25, 0.25], [0.0, 0.25, 0.25], [0.125, -0.125, -0.125]],
    &[[-0.125, 0.125, 0.125], [0.125, -0.125, 0.125], [-0.125, -0.125, 0.125]],
    &[[-0.125, 0.125, 0.125], [0.125, -0.125, 0.125], [-0.125, -0.125, 0.125], [0.125, 0.125, 0.125]],
    &[[0.0, 0.0, 0.5], [-0.25, -0.25, 0.25], [-0.125, -0.125, 0.125], [-0.125, -0.125, 0.125]],
    &[[0.125, 0.125, 0.125], [0.125, -0.125, 0.125], [0.125, -0.125, -0.125]],
    &[[0.0, 0.5, 0.0], [-0.25, 0.25, -0.25], [0.125, -0.125, 0.125], [0.125, -0.125, 0.125]],
    &[[0.125, 0.125, 0.125], [-0.125, -0.125, 0.125], [0.125, -0.125, -0.125]],
    &[[0.0, -0.25, -0.25], [0.0, 0.25, 0.25], [0.125, 0.125, 0.125]],
    &[[0.125, 0.125, 0.125], [0.125, -0.125, -0.125]],
    &[[0.5, 0.0, 0.0], [0.25, -0.25, -0.25], [0.125, -0.125, -0.125]],
    &[[-0.25, 0.25, 0.25], [-0.125, 0.125, 0.125], [-0.25, 0.25, 0.25], [0.125, -0.125, -0.125]],
    &[[0.375, -0.375, 0.375], [0.0, 0.25, 0.25], [-0.125, 0.125, -0.125], [-0.25, 0.0, 0.25]],
    &[[0.0, -0.5, 0.0], [-0.25, 0.25, 0.25], [-0.125, 0.125, 0.125]],
    &[[-0.375, -0.375, 0.375], [0.25, -0.25, 0.0], [0.0, 0.25, 0.25], [-0.125, -0.125, 0.125]],
    &[[-0.125, 0.125, 0.125], [-0.25, 0.25, 0.25], [0.0, 0.0, 0.5]],
    &[[0.125, 0.125, 0.125], [0.0, 0.25, 0.25], [0.0, 0.25, 0.25]],
    &[[0.0, 0.25, 0.25], [0.0, 0.25, 0.25]],
    &[[0.5, 0.0, 0.0], [0.25, 0.25, 0.25], [0.125, 0.125, 0.125], [0.125, 0.125, 0.125]],
    &[[0.125, -0.125, 0.125], [-0.125, -0.125, 0.125], [0.125, 0.125, 0.125]],
    &[[-0.25, 0.0, -0.25], [0.25, 0.0, 0.25], [0.125, 0.125, 0.125]],
    &[[0.125, 0.125, 0.125], [0.125, -0.125, 0.125]],
    &[[-0.25, -0.25, 0.0], [0.25, 0.25, 0.0], [0.125, 0.125, 0.125]],
    &[[0.125, 0.125, 0.125], [-0.125, -0.125, 0.125]],
    &[[0.125, 0.125, 0.125], [0.125, 0.125, 0.125]],
    &[[0.125, 0.125, 0.125]],
    &[[0.125, 0.125, 0.125]],
    &[[0.125, 0.125, 0.125], [0.125, 0.125, 0.125]],
    &[[0.125, 0.125, 0.125], [-0.125, -0.125, 0.125]],
    &[[-0.25, -0.25, 0.0], [0.25, 0.25, 0.0], [0.125, 0.125, 0.125]],
    &[[0.125, 0.125, 0.125], [0.125, -0.125, 0.125]],
    &[[-0.25, 0.0, -0.25], [0.25, 0.0, 0.25], [0.125, 0.125, 0.125]],
    &[[0.125, -0.125, 0.125], [-0.125, -0.125, 0.125], [0.125, 0.125, 0.125]],
    &[[0.5, 0.0, 0.0], [0.25, 0.25, 0.25], [0.125, 0.125, 0.125], [0.125, 0.125, 0.125]],
    &[[0.0, 0.25, 0.25], [0.0, 0.25, 0.25]],
    &[[0.125, 0.125, 0.125], [0.0, 0.25, 0.25], [0.0, 0.25, 0.25]],
    &[[-0.125, 0.125, 0.125], [-0.25, 0.25, 0.25], [0.0, 0.0, 0.5]],
    &[[-0.375, -0.375, 0.375], [0.25, -0.25, 0.0], [0.0, 0.25, 0.25], [-0.125, -0.125, 0.125]],
    &[[0.0, -0.5, 0.0], [-0.25, 0.25, 0.25], [-0.125, 0.125, 0.125]],
    &[[0.375, -0.375, 0.375], [0.0, 0.25, 0.25], [-0.125, 0.125, -0.125], [-0.25, 0.0, 0.25]],
    &[[-0.25, 0.25, 0.25], [-0.125, 0.125, 0.125], [-0.25, 0.25, 0.25], [0.125, -0.125, -0.125]],
    &[[0.5, 0.0, 0.0], [0.25, -0.25, -0.25], [0.125, -0.125, -0.125]],
    &[[0.125, 0.125, 0.125], [0.125, -0.125, -0.125]],
    &[[0.0, -0.25, -0.25], [0.0, 0.25, 0.25], [0.125, 0.125, 0.125]],
    &[[0.125, 0.125, 0.125], [-0.125, -0.125, 0.125], [0.125, -0.125, -0.125]],
    &[[0.0, 0.5, 0.0], [-0.25, 0.25, -0.25], [0.125, -0.125, 0.125], [0.125, -0.125, 0.125]],
    &[[0.125, 0.125, 0.125], [0.125, -0.125, 0.125], [0.125, -0.125, -0.125]],
    &[[0.0, 0.0, 0.5], [-0.25, -0.25, 0.25], [-0.125, -0.125, 0.125], [-0.125, -0.125, 0.125]],
    &[[-0.125, 0.125, 0.125], [0.125, -0.125, 0.125], [-0.125, -0.125, 0.125], [0.125, 0.125, 0.125]],
    &[[-0.125, 0.125, 0.125], [0.125, -0.125, 0.125], [-0.125, -0.125, 0.125]],
    &[[0.0, 0.25, 0.25], [0.0, 0.25, 0.25], [0.125, -0.125, -0.125]],
    &[[0.0, -0.25, -0.25], [0.0, 0.25, 0.25], [0.0, 0.25, 0.25], [0.0, 0.25, 0.25]],
    &[[0.0, 0.0, 0.5], [0.25, -0.25, 0.25], [0.125, -0.125, 0.125], [0.125, -0.125, 0.125]],
    &[[0.0, -0.25, 0.25], [0.0, -0.25, 0.25], [0.125, -0.125, 0.125]],
    &[[0.0, -0.5, 0.0], [0.125, 0.125, -0.125], [0.25, 0.25, -0.25], [-0.125, -0.125, 0.125]],
    &[[-0.125, -0.125, 0.125], [0.0, -0.25, 0.25], [0.0, 0.25, -0.25]],
    &[[0.125, 0.125, 0.125], [-0.125, -0.125, 0.125], [0.125, -0.125, 0.125]],
    &[[-0.125, -0.125, 0.125], [0.125, -0.125, 0.125]],
    &[[0.25, 0.0, 0.25], [0.25, 0.0, 0.25]],
    &[[0.125, 0.125, 0.125], [0.25, 0.0, 0.25], [0.25, 0.0, 0.25]],
    &[[0.0, 0.0, 0.5], [0.25, -0.25, 0.25], [0.125, -0.125, 0.125]],
    &[[0.25, 0.0, 0.25], [-0.375, -0.375, 0.375], [-0.25, 0.25, 0.0], [-0.125, -0.125, 0.125]],
    &[[0.125, -0.125, 0.125], [0.25, 0.0, 0.25], [0.25, 0.0, 0.25]],
    &[[-0.25, 0.0, -0.25], [0.25, 0.0, 0.25], [0.25, 0.0, 0.25], [0.25, 0.0, 0.25]],
    &[[0.0, 0.0, 0.5], [0.25, -0.25, 0.25], [0.125, -0.125, 0.125], [0.125, -0.125, 0.125]],
    &[[-0.25, 0.0, 0.25], [0.25, 0.0, -0.25], [-0.125, 0.125, 0.125]],
    &[[0.125, 0.125, 0.125], [0.25, 0.25, 0.25], [0.0, 0.0, 0.5]],
    &[[0.125, 0.125, 0.125], [0.125, 0.125, 0.125], [0.25, 0.25, 0.25], [0.0, 0.0, 0.5]],
    &[[0.0, 0.0, 0.5], [0.0, 0.0, 0.5]],
    &[[0.0, 0.0, -0.5], [0.25, 0.25, -0.25], [-0.125, -0.125, 0.125]],
    &[[-0.25, 0.0, -0.25], [-0.375, 0.375, 0.375], [-0.25, -0.25, 0.0], [-0.125, 0.125, 0.125]],
    &[[-0.125, -0.125, 0.125], [-0.25, 0.0, 0.25], [0.25, 0.0, -0.25]],
    &[[0.0, 0.0, 0.5], [-0.25, 0.25, 0.25], [-0.125, 0.125, 0.125]],
    &[[-0.25, 0.0, 0.25], [0.25, 0.0, -0.25]],
    &[[0.5, 0.0, 0.0], [-0.25, 0.25, -0.25], [0.125, -0.125, 0.125]],
    &[[-0.25, 0.0, -0.25], [0.375, -0.375, -0.375], [0.0, 0.25, -0.25], [-0.125, 0.125, 0.125]],
    &[[-0.25, 0.25, -0.25], [-0.25, 0.25, -0.25], [-0.125, 0.125, -0.125], [-0.125, 0.125, -0.125]],
    &[[0.0, 0.5, 0.0], [-0.25, 0.25, -0.25], [0.125, -0.125, 0.125]],
    &[[0.5, 0.0, 0.0], [-0.25, -0.25, 0.25], [-0.125, -0.125, 0.125], [-0.125, -0.125, 0.125]],
    &[[-0.125, -0.125, 0.125], [-0.25, 0.0, 0.25], [-0.25, 0.0, 0.25]],
    &[[0.125, 0.125, 0.125], [-0.125, -0.125, 0.125], [-0.125, 0.125, 0.125]],
    &[[-0.125, -0.125, 0.125], [-0.125, 0.125, 0.125]],
    &[[0.375, -0.375, 0.375], [0.0, -0.25, -0.25], [-0.125, 0.125, -0.125], [0.25, 0.25, 0.0]],
    &[[0.0, -0.25, 0.25], [0.0, -0.25, 0.25], [-0.125, -0.125, 0.125]],
    &[[0.0, 0.0, 0.5], [0.25, -0.25, 0.25], [0.125, -0.125, 0.125]],
    &[[0.0, -0.25, 0.25], [0.0, -0.25, 0.25]],
    &[[-0.125, -0.125, 0.125], [-0.25, -0.25, 0.0], [0.25, 0.25, 0.0]],
    &[[-0.125, -0.125, 0.125], [-0.125, -0.125, 0.125]],
    &[[0.125, 0.125, 0.125], [-0.125, -0.125, 0.125]],
    &[[-0.125, -0.125, 0.125]],
    &[[-0.25, -0.25, 0.0], [-0.25, -0.25, 0.0]],
    &[[0.125, 0.125, 0.125], [-0.25, -0.25, 0.0], [-0.25, -0.25, 0.0]],
    &[[-0.25, -0.25, 0.0], [-0.25, -0.25, 0.0], [-0.125, -0.125, 0.125]],
    &[[-0.25, -0.25, 0.0], [-0.25, -0.25, 0.0], [-0.25, -0.25, 0.0], [0.25, 0.25, 0.0]],
    &[[0.0, 0.5, 0.0], [0.25, 0.25, -0.25], [-0.125, -0.125, 0.125]],
    &[[-0.375, 0.375, -0.375], [-0.25, -0.25, 0.0], [-0.125, 0.125, -0.125], [-0.25, 0.0, 0.25]],
    &[[0.0, 0.5, 0.0], [0.25, 0.25, -0.25], [-0.125, -0.125, 0.125], [-0.125, -0.125, 0.125]],
    &[[-0.125, 0.125, 0.125], [0.25, -0.25, 0.0], [-0.25, 0.25, 0.0]],
    &[[0.0, -0.5, 0.0], [-0.25, -0.25, -0.25], [-0.125, -0.125, -0.125]],
    &[[0.125, 0.125, 0.125], [0.0, -0.5, 0.0], [-0.25, -0.25, -0.25], [-0.125, -0.125, -0.125]],
    &[[-0.375, -0.375, -0.375], [-0.25, 0.0, 0.25], [-0.125, -0.125, -0.125], [-0.25, 0.25, 0.0]],
    &[[0.25, -0.25, 0.0], [-0.25, 0.25, 0.0], [0.125, -0.125, 0.125]],
    &[[0.0, 0.5, 0.0], [0.0, -0.5, 0.0]],
    &[[0.0, 0.5, 0.0], [0.125, -0.125, 0.125], [-0.25, 0.25, -0.25]],
    &[[0.0, 0.5, 0.0], [-0.25, 0.25, 0.25], [0.125, -0.125, -0.125]],
    &[[0.25, -0.25, 0.0], [-0.25, 0.25, 0.0]],
    &[[-0.5, 0.0, 0.0], [-0.25, -0.25, 0.25], [-0.125, -0.125, 0.125]],
    &[[0.0, 0.25, -0.25], [0.375, -0.375, -0.375], [-0.125, 0.125, 0.125], [0.25, 0.25, 0.0]],
    &[[0.5, 0.0, 0.0], [0.25, -0.25, 0.25], [-0.125, 0.125, -0.125], [0.125, -0.125, 0.125]],
    &[[0.125, -0.125, 0.125], [0.25, -0.25, 0.0], [0.25, -0.25, 0.0]],
    &[[0.25, 0.25, -0.25], [0.25, 0.25, -0.25], [0.125, 0.125, -0.125], [-0.125, -0.125, 0.125]],
    &[[0.0, 0.0, 0.5], [-0.25, -0.25, 0.25], [-0.125, -0.125, 0.125]],
    &[[0.125, 0.125, 0.125], [0.125, -0.125, 0.125], [-0.125, 0.125, 0.125]],
    &[[-0.125, 0.125, 0.125], [0.125, -0.125, 0.125]],
    &[[-0.375, -0.375, 0.375], [0.0, 0.25, 0.25], [0.125, 0.125, -0.125], [-0.25, 0.0, -0.25]],
    &[[0.0, -0.25, 0.25], [0.0, 0.25, -0.25], [0.125, -0.125, 0.125]],
    &[[0.125, -0.125, 0.125], [-0.25, 0.0, -0.25], [0.25, 0.0, 0.25]],
    &[[0.125, -0.125, 0.125], [0.125, -0.125, 0.125]],
    &[[0.0, -0.5, 0.0], [0.125, 0.125, -0.125], [0.25, 0.25, -0.25]],
    &[[0.0, -0.25, 0.25], [0.0, 0.25, -0.25]],
    &[[0.125, 0.125, 0.125], [0.125, -0.125, 0.125]],
    &[[0.125, -0.125, 0.125]],
    &[[-0.5, 0.0, 0.0], [-0.125, -0.125, -0.125], [-0.25, -0.25, -0.25]],
    &[[-0.5, 0.0, 0.0], [-0.125, -0.125, -0.125], [-0.25, -0.25, -0.25], [0.125, 0.125, 0.125]],
    &[[0.375, 0.375, 0.375], [0.0, 0.25, -0.25], [-0.125, -0.125, -0.125], [-0.25, 0.25, 0.0]],
    &[[0.125, -0.125, -0.125], [0.25, -0.25, 0.0], [0.25, -0.25, 0.0]],
    &[[0.125, 0.125, 0.125], [0.375, 0.375, 0.375], [0.0, -0.25, 0.25], [-0.25, 0.0, 0.25]],
    &[[-0.25, 0.0, 0.25], [-0.25, 0.0, 0.25], [0.125, -0.125, -0.125]],
    &[[0.0, -0.25, -0.25], [0.0, 0.25, 0.25], [-0.125, 0.125, 0.125]],
    &[[-0.125, 0.125, 0.125], [0.125, -0.125, -0.125]],
    &[[-0.125, -0.125, -0.125], [-0.25, -0.25, -0.25], [0.25, 0.25, 0.25], [0.125, 0.125, 0.125]],
    &[[-0.125, -0.125, 0.125], [0.125, -0.125, 0.125], [0.125, -0.125, -0.125]],
    &[[0.0, 0.0, -0.5], [0.25, 0.25, 0.25], [-0.125, -0.125, -0.125]],
    &[[0.125, -0.125, 0.125], [0.125, -0.125, -0.125]],
    &[[0.0, -0.5, 0.0], [0.25, 0.25, 0.25], [0.125, 0.125, 0.125]],
    &[[-0.125, -0.125, 0.125], [0.125, -0.125, -0.125]],
    &[[0.0, -0.25, -0.25], [0.0, 0.25, 0.25]],
    &[[0.125, -0.125, -0.125]],
    &[[0.5, 0.0, 0.0], [0.5, 0.0, 0.0]],
    &[[-0.5, 0.0, 0.0], [-0.25, 0.25, 0.25], [-0.125, 0.125, 0.125]],
    &[[0.5, 0.0, 0.0], [0.25, -0.25, 0.25], [-0.125, 0.125, -0.125]],
    &[[0.25, -0.25, 0.0], [0.25, -0.25, 0.0]],
    &[[0.5, 0.0, 0.0], [-0.25, -0.25, 0.25], [-0.125, -0.125, 0.125]],
    &[[-0.25, 0.0, 0.25], [-0.25, 0.0, 0.25]],
    &[[0.125, 0.125, 0.125], [-0.125, 0.125, 0.125]],
    &[[-0.125, 0.125, 0.125]],
    &[[0.5, 0.0, 0.0], [0.25, 0.25, 0.25], [0.125, 0.125, 0.125]],
    &[[0.125, -0.125, 0.125], [-0.125, -0.125, 0.125]],
    &[[-0.25, 0.0, -0.25], [0.25, 0.0, 0.25]],
    &[[0.125, -0.125, 0.125]],
    &[[-0.25, -0.25, 0.0], [0.25, 0.25, 0.0]],
    &[[-0.125, -0.125, 0.125]],
    &[[0.125, 0.125, 0.125]],
    &[[0.0, 0.0, 0.0]],
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic shapes, generated identically by the Python script that produced the
    /// oracle values below (`splitmix64` noise and ellipsoids on the voxel grid).
    fn splitmix(x: u64) -> u64 {
        let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn noise(n: usize, seed: u64, per_mille: u64) -> Vec<u8> {
        (0..n as u64)
            .map(|i| u8::from(splitmix(seed * 1_000_003 + i) % 1000 < per_mille))
            .collect()
    }

    /// `sum_a ((idx_a - c_a) / r_a)^2 <= 1`, summed in axis order as numpy does.
    fn ellipsoid<const N: usize>(shape: [usize; N], c: [f64; N], r: [f64; N]) -> Vec<u8> {
        let mut out = vec![0u8; shape.iter().product()];
        for_each_index(shape, |flat, idx| {
            let mut s = 0.0;
            for a in 0..N {
                let t = (idx[a] as f64 - c[a]) / r[a];
                s += t * t;
            }
            out[flat] = u8::from(s <= 1.0);
        });
        out
    }

    fn boxed(shape: [usize; 3], lo: [usize; 3], hi: [usize; 3]) -> Vec<u8> {
        let mut out = vec![0u8; shape.iter().product()];
        for_each_index(shape, |flat, i| {
            out[flat] = u8::from((0..3).all(|a| i[a] >= lo[a] && i[a] < hi[a]));
        });
        out
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    /// Values from running DeepMind's surface-distance (`compute_surface_distances`,
    /// `compute_surface_dice_at_tolerance`, `compute_average_surface_distance`,
    /// `compute_dice_coefficient`; numpy 2.4, scipy 1.17) on the shapes of these tests —
    /// an oracle, not our own output.
    struct Oracle {
        dice: f64,
        area_gt: f64,
        area_pred: f64,
        nsd: &'static [(f64, f64)],
        asd: (f64, f64),
    }

    fn check(d: &SurfaceDistances, gt: &[u8], pred: &[u8], o: &Oracle) {
        assert!(
            close(dice(gt, pred), o.dice),
            "dice {} vs {}",
            dice(gt, pred),
            o.dice
        );
        let ag: f64 = d.surfel_areas_gt.iter().sum();
        let ap: f64 = d.surfel_areas_pred.iter().sum();
        assert!(close(ag, o.area_gt), "area gt {ag} vs {}", o.area_gt);
        assert!(close(ap, o.area_pred), "area pred {ap} vs {}", o.area_pred);
        for &(tol, want) in o.nsd {
            let got = d.surface_dice_at_tolerance(tol);
            assert!(close(got, want), "nsd@{tol}: {got} vs {want}");
        }
        let (a, b) = d.average_surface_distance();
        assert!(
            close(a, o.asd.0) && close(b, o.asd.1),
            "asd ({a}, {b}) vs {:?}",
            o.asd
        );
    }

    #[test]
    fn oracle_ellipsoids_3d_anisotropic() {
        let sh = [14, 17, 12];
        let gt = ellipsoid(sh, [6.3, 8.2, 5.5], [4.1, 5.7, 3.9]);
        let pred = ellipsoid(sh, [7.1, 7.4, 6.0], [3.6, 6.2, 3.3]);
        let d = compute_surface_distances_3d(&gt, &pred, sh, [2.5, 0.8, 0.6]);
        check(
            &d,
            &gt,
            &pred,
            &Oracle {
                dice: 0.7749287749287749,
                area_gt: 395.6721910865563,
                area_pred: 356.11250557126033,
                nsd: &[
                    (0.5, 0.6007863050964015),
                    (1.0, 0.9383385397949455),
                    (2.0, 0.9682804656617563),
                    (3.0, 1.0),
                ],
                asd: (0.41871769700786277, 0.2679207749592135),
            },
        );
    }

    #[test]
    fn oracle_noise_3d_every_code() {
        // Random masks hit (nearly) all 256 neighbourhood codes; tolerance 0.7 sits exactly
        // on the axis-2 spacing, so ties must be resolved as scipy computes them.
        let sh = [9, 11, 10];
        let gt = noise(990, 1, 350);
        let pred = noise(990, 2, 400);
        let d = compute_surface_distances_3d(&gt, &pred, sh, [1.0, 1.3, 0.7]);
        check(
            &d,
            &gt,
            &pred,
            &Oracle {
                dice: 0.36639118457300274,
                area_gt: 757.3238841040759,
                area_pred: 889.4997865317958,
                nsd: &[
                    (0.0, 0.9169202791803037),
                    (0.5, 0.9169202791803037),
                    (0.7, 0.9872775305887949),
                    (1.0, 0.9966194069196923),
                    (1.5, 1.0),
                ],
                asd: (0.04797308056481928, 0.07537452562448588),
            },
        );
    }

    #[test]
    fn oracle_2d() {
        let sh = [20, 23];
        let gt = ellipsoid(sh, [9.5, 11.2], [6.3, 8.1]);
        let pred = ellipsoid(sh, [10.4, 10.1], [5.8, 8.9]);
        let d = compute_surface_distances_2d(&gt, &pred, sh, [0.7, 1.2]);
        check(
            &d,
            &gt,
            &pred,
            &Oracle {
                dice: 0.8633540372670807,
                area_gt: 47.02791038311969,
                area_pred: 49.93866598417471,
                nsd: &[
                    (0.5, 0.31011647429353095),
                    (1.0, 0.7740050642960398),
                    (2.0, 0.9567970268118287),
                ],
                asd: (0.6339405360771557, 0.7172147177744383),
            },
        );
        let gt = noise(460, 3, 300);
        let pred = noise(460, 4, 500);
        let d = compute_surface_distances_2d(&gt, &pred, sh, [1.1, 0.9]);
        check(
            &d,
            &gt,
            &pred,
            &Oracle {
                dice: 0.34349030470914127,
                area_gt: 286.7049878918577,
                area_pred: 387.75566950606526,
                nsd: &[(0.5, 0.7707871818304889), (1.0, 0.9110309697208625)],
                asd: (0.12133927640843695, 0.3572624538834588),
            },
        );
    }

    #[test]
    fn identical_masks() {
        let sh = [10, 12, 9];
        let m = ellipsoid(sh, [4.5, 6.0, 4.0], [3.2, 4.1, 2.7]);
        assert_eq!(dice(&m, &m), 1.0);
        let d = compute_surface_distances_3d(&m, &m, sh, [3.0, 0.7, 0.7]);
        assert!(d.distances_gt_to_pred.iter().all(|&x| x == 0.0));
        assert_eq!(d.surface_dice_at_tolerance(0.0), 1.0);
        assert_eq!(
            normalized_surface_dice_3d(&m, &m, sh, [3.0, 0.7, 0.7], 2.0),
            1.0
        );
    }

    #[test]
    fn far_apart_cubes_score_zero() {
        let sh = [8, 8, 30];
        let a = boxed(sh, [2, 2, 1], [6, 6, 5]);
        let b = boxed(sh, [2, 2, 24], [6, 6, 28]);
        assert_eq!(dice(&a, &b), 0.0);
        let nsd = normalized_surface_dice_3d(&a, &b, sh, [1.0; 3], 5.0);
        assert_eq!(nsd, 0.0);
        assert!(nsd.is_sign_positive(), "prints as 0.0000, not -0.0000");
        // ... but within reach at a large enough tolerance.
        assert_eq!(normalized_surface_dice_3d(&a, &b, sh, [1.0; 3], 100.0), 1.0);
    }

    #[test]
    fn cube_shifted_by_one_voxel() {
        let sh = [12, 12, 12];
        let a = boxed(sh, [3, 3, 3], [8, 8, 8]);
        let b = boxed(sh, [3, 3, 4], [8, 8, 9]); // shifted along axis 2 (spacing 1.5)
        let sp = [0.8, 0.9, 1.5];
        assert!((dice(&a, &b) - 0.8).abs() < 1e-12);
        assert_eq!(normalized_surface_dice_3d(&a, &b, sh, sp, 1.5), 1.0);
        assert_eq!(normalized_surface_dice_3d(&a, &b, sh, sp, 2.0), 1.0);
        let below = normalized_surface_dice_3d(&a, &b, sh, sp, 1.49);
        assert!(below < 1.0 && below > 0.5, "{below}");
    }

    #[test]
    fn empty_mask_conventions() {
        let sh = [6, 6, 6];
        let empty = vec![0u8; 216];
        let cube = boxed(sh, [1, 1, 1], [4, 4, 4]);
        // DeepMind: no surfels at all → NaN (0/0); one side empty → 0.
        let both = compute_surface_distances_3d(&empty, &empty, sh, [1.0; 3]);
        assert!(both.surface_dice_at_tolerance(1.0).is_nan());
        let one = compute_surface_distances_3d(&cube, &empty, sh, [1.0; 3]);
        assert!(one.distances_gt_to_pred.iter().all(|d| d.is_infinite()));
        assert!(one.distances_pred_to_gt.is_empty());
        assert_eq!(one.surface_dice_at_tolerance(1.0), 0.0);
        // MedSAM: both empty → 1, gt empty / pred not → 0, gt not / pred empty → 0.
        assert_eq!(dice(&empty, &empty), 1.0);
        assert_eq!(dice(&empty, &cube), 0.0);
        assert_eq!(
            normalized_surface_dice_3d(&empty, &empty, sh, [1.0; 3], 2.0),
            1.0
        );
        assert_eq!(
            normalized_surface_dice_3d(&empty, &cube, sh, [1.0; 3], 2.0),
            0.0
        );
        assert_eq!(
            normalized_surface_dice_3d(&cube, &empty, sh, [1.0; 3], 2.0),
            0.0
        );
    }

    #[test]
    fn mask_touching_the_volume_border() {
        // The whole volume is foreground: the padding still closes the surface.
        let sh = [3, 4, 5];
        let all = vec![1u8; 60];
        let d = compute_surface_distances_3d(&all, &all, sh, [1.0; 3]);
        let area: f64 = d.surfel_areas_gt.iter().sum();
        // Marching cubes on a box: flat faces of (n-1)... plus chamfered edges/corners,
        // less than the voxel box's area 2(12+15+20) = 94 and more than the inner box's.
        assert!(area > 2.0 * (6.0 + 8.0 + 12.0) && area < 94.0, "{area}");
        assert_eq!(d.surface_dice_at_tolerance(0.0), 1.0);
    }

    #[test]
    fn area_table_properties() {
        let t = surface_area_table_3d([1.0, 1.3, 0.7]);
        assert_eq!((t[0], t[255]), (0.0, 0.0));
        // A code and its complement describe the same surface.
        for c in 0..256 {
            assert!((t[c] - t[255 - c]).abs() < 1e-12, "code {c}");
            if c != 0 && c != 255 {
                assert!(t[c] > 0.0, "code {c}");
            }
        }
        // Half the cube filled along axis 0 (bits 8, 4, 2, 1 = corners with d0 = 1): a flat
        // face normal to axis 0 of area s1 * s2.
        assert!((t[0b0000_1111] - 1.3 * 0.7).abs() < 1e-12);
        // Along axis 2 (corners with d2 = 1: bits 64, 16, 4, 1): area s0 * s1.
        assert!((t[0b0101_0101] - 1.0 * 1.3).abs() < 1e-12);
        let l = contour_length_table_2d([0.7, 1.2]);
        assert_eq!(l[0b0011], 1.2);
        assert_eq!(l[0b0101], 0.7);
        assert!((l[0b0001] - 0.5 * (0.49f64 + 1.44).sqrt()).abs() < 1e-15);
    }

    #[test]
    fn edt_matches_brute_force() {
        let dims = [7, 5, 6];
        let sp = [1.3, 0.4, 2.2];
        let feat: Vec<bool> = noise(210, 9, 60).iter().map(|&v| v != 0).collect();
        let got = squared_edt(&feat, dims, sp);
        let pts: Vec<[usize; 3]> = {
            let mut v = Vec::new();
            for_each_index(dims, |f, i| {
                if feat[f] {
                    v.push(*i)
                }
            });
            v
        };
        assert!(!pts.is_empty());
        for_each_index(dims, |f, i| {
            let want = pts
                .iter()
                .map(|p| {
                    (0..3)
                        .map(|a| ((i[a] as f64 - p[a] as f64) * sp[a]).powi(2))
                        .sum::<f64>()
                })
                .fold(f64::INFINITY, f64::min);
            assert!((got[f] - want).abs() < 1e-9, "{i:?}: {} vs {want}", got[f]);
        });
        assert!(
            squared_edt(&[false; 4], [2, 2], [1.0, 1.0])
                .iter()
                .all(|v| v.is_infinite())
        );
    }

    #[test]
    fn eval_volumes_checks_shapes_and_uses_gt_spacing() {
        let g = NiftiGeometryFixture::volume(
            [4, 4, 3],
            [1.0, 1.0, 2.0],
            boxed([3, 4, 4], [1, 1, 1], [2, 3, 3]),
        );
        let same = eval_volumes(&g, &g, 2.0).unwrap();
        assert_eq!(same, (1.0, 1.0));
        let other = NiftiGeometryFixture::volume([4, 4, 2], [1.0, 1.0, 2.0], vec![0; 32]);
        assert!(matches!(
            eval_volumes(&other, &g, 2.0),
            Err(EvalError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            eval_files(&[], &[1], 2.0),
            Err(EvalError::Pred(VolumeError::Empty))
        ));
    }

    struct NiftiGeometryFixture;
    impl NiftiGeometryFixture {
        fn volume(dims: [usize; 3], spacing: [f64; 3], mask: Vec<u8>) -> Volume {
            Volume {
                data: mask.iter().map(|&v| v as f32).collect(),
                dims,
                spacing,
                geometry: crate::io::volume::NiftiGeometry::from_spacing(dims, spacing),
                dtype: crate::io::volume::DataType::U8,
                format: crate::io::volume::SourceFormat::Npz,
            }
        }
    }
}
