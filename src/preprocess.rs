//! Image pre- and post-processing that reproduces the official Python
//! pipelines arithmetic for arithmetic, on plain host buffers (no burn, so it
//! runs the same natively and in wasm32).
//!
//! Three resampling families are reimplemented, each with the number formats
//! and rounding of the library the official code calls:
//! - torch `F.interpolate` (float32): [`resize_bilinear`] (with or without
//!   antialiasing) and [`resize_bicubic`];
//! - Pillow `Image.resize` on 8-bit images (fixed point): [`pil_resize_bicubic_rgb`];
//! - OpenCV `cv2.resize(..., interpolation=INTER_AREA)` on 8-bit images:
//!   [`cv2_resize_area_u8`].
//!
//! On top of them, [`Sam2ImageTransform`] mirrors `SAM2Transforms` /
//! `SAM2ImagePredictor` / `load_video_frames`, and [`LiteMedSamTransform`]
//! mirrors the LiteMedSAM inference recipe (`CVPR24_LiteMedSAM_infer.py`, as
//! used by `shared/reference/export_litemedsam_fixtures.py`).
//!
//! Layouts: float images are planar CHW (`[c][y][x]`), 8-bit images are
//! interleaved HWC (`[y][x][c]`), as the Python code holds them.
//!
//! The float kernels also follow torch's evaluation order, including the
//! fused multiply-adds its CPU build contracts `acc += x * w` into, so the
//! SAM 2 fixtures are matched bit for bit; the 8-bit ones reproduce Pillow's
//! and OpenCV's integer arithmetic exactly.
//!
//! The low-level resamplers take sizes the caller already knows to be
//! consistent and panic otherwise (see each `# Panics`); the transforms, which
//! take user data, check sizes first and return [`PreprocessError`].

/// ImageNet mean used by SAM 2 (`SAM2Transforms.mean`, `load_video_frames`).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet std used by SAM 2 (`SAM2Transforms.std`, `load_video_frames`).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Why an image or logits buffer could not be processed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreprocessError {
    #[error("{what} has a zero-sized dimension ({height}x{width})")]
    ZeroSize {
        what: &'static str,
        height: usize,
        width: usize,
    },
    #[error("{what} holds {found} values but its shape needs {expected}")]
    BufferLength {
        what: &'static str,
        expected: usize,
        found: usize,
    },
    #[error("{what} of {found} values is not a whole number of {height}x{width} planes")]
    PartialPlanes {
        what: &'static str,
        height: usize,
        width: usize,
        found: usize,
    },
    #[error("{what} {height}x{width} is larger than the {limit}x{limit} model input")]
    TooLarge {
        what: &'static str,
        height: usize,
        width: usize,
        limit: usize,
    },
}

fn check_nonempty(what: &'static str, height: usize, width: usize) -> Result<(), PreprocessError> {
    if height == 0 || width == 0 {
        return Err(PreprocessError::ZeroSize {
            what,
            height,
            width,
        });
    }
    Ok(())
}

fn check_len(what: &'static str, found: usize, expected: usize) -> Result<(), PreprocessError> {
    if found != expected {
        return Err(PreprocessError::BufferLength {
            what,
            expected,
            found,
        });
    }
    Ok(())
}

/// Checks an `height x width x channels` buffer: non-empty and of the right length.
fn check_image(
    what: &'static str,
    len: usize,
    channels: usize,
    height: usize,
    width: usize,
) -> Result<(), PreprocessError> {
    check_nonempty(what, height, width)?;
    check_len(what, len, channels * height * width)
}

/// Panics unless `len == channels * h * w` (the resamplers' precondition).
fn assert_buffer(len: usize, channels: usize, h: usize, w: usize) {
    assert_eq!(
        len,
        channels * h * w,
        "buffer of {len} values does not hold {channels}x{h}x{w}"
    );
}

// ============================================================================
// torch F.interpolate (float32, CPU kernels of aten/src/ATen/native/cpu/UpSampleKernel.cpp)
// ============================================================================

/// Whether [`resize_bilinear`] applies torch's antialiasing filter
/// (`F.interpolate(..., antialias=True)`), which widens the kernel when downscaling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Antialias {
    On,
    Off,
}

/// `a * b + c` with a single rounding, as torch's CPU kernels compute
/// `acc += x * w` (they are built with floating-point contraction, so such
/// expressions become FMA instructions on AVX2 and NEON). Emulated in f64,
/// where `a * b` is exact: this equals a true fused multiply-add except when
/// the f64 sum lands exactly on an f32 rounding tie (probability ~2^-29),
/// and unlike `f32::mul_add` it stays fast on wasm32, which has no FMA.
fn fused_mul_add(a: f32, b: f32, c: f32) -> f32 {
    (a as f64 * b as f64 + c as f64) as f32
}

/// `a * wa + b * wb` as torch's two-tap kernels (`Interpolate<.., 2>`)
/// evaluate it once contracted: `fma(a, wa, b * wb)`, the two-tap case of
/// [`unrolled_sum`].
fn pair_sum(a: f32, wa: f32, b: f32, wb: f32) -> f32 {
    fused_mul_add(a, wa, b * wb)
}

/// torch `area_pixel_compute_scale` for `align_corners=False` and no explicit
/// scale factor: `float(in) / out`.
fn torch_scale(in_size: usize, out_size: usize) -> f32 {
    in_size as f32 / out_size as f32
}

/// torch `area_pixel_compute_source_index` with `align_corners=False`, in f32:
/// `scale * (i + 0.5) - 0.5`, clamped at 0 except for cubic.
fn torch_source_index(scale: f32, out_index: usize, clamp_at_zero: bool) -> f32 {
    let src = scale * (out_index as f32 + 0.5) - 0.5;
    if clamp_at_zero && src < 0.0 { 0.0 } else { src }
}

/// torch `guard_index_and_lambda`: the integer tap and the fractional weight.
fn torch_index_and_lambda(real_index: f32, in_size: usize) -> (i64, f32) {
    let index = (real_index.floor() as i64).min(in_size as i64 - 1);
    let lambda = (real_index - index as f32).clamp(0.0, 1.0);
    (index, lambda)
}

/// Two source taps and weights of one output index (torch `compute_source_index_and_lambda`).
#[derive(Clone, Copy, Debug)]
struct LinearTap {
    i0: usize,
    i1: usize,
    w0: f32,
    w1: f32,
}

fn torch_linear_taps(in_size: usize, out_size: usize) -> Vec<LinearTap> {
    let scale = torch_scale(in_size, out_size);
    (0..out_size)
        .map(|i| {
            if in_size == out_size {
                return LinearTap {
                    i0: i,
                    i1: i,
                    w0: 1.0,
                    w1: 0.0,
                };
            }
            let real = torch_source_index(scale, i, true);
            let (i0, w1) = torch_index_and_lambda(real, in_size);
            let i0 = i0 as usize;
            let i1 = if i0 + 1 < in_size { i0 + 1 } else { i0 };
            LinearTap {
                i0,
                i1,
                w0: 1.0 - w1,
                w1,
            }
        })
        .collect()
}

/// torch `F.interpolate(x, size=(out_h, out_w), mode="bilinear",
/// align_corners=False, antialias=...)` on a float32 CHW image.
///
/// - [`Antialias::Off`] is `upsample_bilinear2d`: half-pixel source index
///   clamped at 0, two taps per axis. Like torch it uses the generic separable
///   kernel (`upsample_generic_Nd_kernel_impl`), or the channels-last kernel's
///   four-product sum when `out_h + out_w <= 128` (`_use_vectorized_kernel_cond_2d`).
/// - [`Antialias::On`] is `_upsample_bilinear2d_aa`
///   (`separable_upsample_generic_Nd_kernel_impl`): PIL-style triangle filter
///   whose support grows by the downscale factor, weights from
///   `_compute_indices_min_size_weights_aa`, horizontal pass (width) first,
///   then vertical; an axis whose size does not change is skipped.
///
/// Sums are evaluated as torch's contracted kernels do (see `pair_sum`,
/// `sequential_sum` and `unrolled_sum` in this module).
///
/// # Panics
/// If `src.len() != channels * in_h * in_w`, or the input is empty while the output is not.
pub fn resize_bilinear(
    src: &[f32],
    channels: usize,
    in_h: usize,
    in_w: usize,
    out_h: usize,
    out_w: usize,
    antialias: Antialias,
) -> Vec<f32> {
    assert_buffer(src.len(), channels, in_h, in_w);
    if channels * out_h * out_w == 0 {
        return Vec::new();
    }
    assert!(in_h > 0 && in_w > 0, "cannot resize an empty image");
    match antialias {
        Antialias::Off if out_h + out_w <= 128 => {
            bilinear_four_products(src, channels, (in_h, in_w), (out_h, out_w))
        }
        Antialias::Off => bilinear_separable(src, channels, (in_h, in_w), (out_h, out_w)),
        Antialias::On => bilinear_antialiased(src, channels, (in_h, in_w), (out_h, out_w)),
    }
}

/// `upsample_generic_Nd_kernel_impl<2, HelperInterpLinear>`:
/// `(x00*wx0 + x01*wx1)*wy0 + (x10*wx0 + x11*wx1)*wy1`.
fn bilinear_separable(
    src: &[f32],
    channels: usize,
    (in_h, in_w): (usize, usize),
    (out_h, out_w): (usize, usize),
) -> Vec<f32> {
    let ys = torch_linear_taps(in_h, out_h);
    let xs = torch_linear_taps(in_w, out_w);
    let mut out = Vec::with_capacity(channels * out_h * out_w);
    for plane in src.chunks_exact(in_h * in_w) {
        for ty in &ys {
            let row0 = &plane[ty.i0 * in_w..][..in_w];
            let row1 = &plane[ty.i1 * in_w..][..in_w];
            for tx in &xs {
                let t0 = pair_sum(row0[tx.i0], tx.w0, row0[tx.i1], tx.w1);
                let t1 = pair_sum(row1[tx.i0], tx.w0, row1[tx.i1], tx.w1);
                out.push(pair_sum(t0, ty.w0, t1, ty.w1));
            }
        }
    }
    out
}

/// `cpu_upsample_linear_channels_last` (scalar loop):
/// `x00*(wy0*wx0) + x01*(wy0*wx1) + x10*(wy1*wx0) + x11*(wy1*wx1)`, contracted
/// like [`unrolled_sum`]. Not covered by the fixtures (no output there is
/// that small).
fn bilinear_four_products(
    src: &[f32],
    channels: usize,
    (in_h, in_w): (usize, usize),
    (out_h, out_w): (usize, usize),
) -> Vec<f32> {
    let ys = torch_linear_taps(in_h, out_h);
    let xs = torch_linear_taps(in_w, out_w);
    let mut out = Vec::with_capacity(channels * out_h * out_w);
    for plane in src.chunks_exact(in_h * in_w) {
        for ty in &ys {
            let row0 = &plane[ty.i0 * in_w..][..in_w];
            let row1 = &plane[ty.i1 * in_w..][..in_w];
            for tx in &xs {
                let (w00, w01) = (ty.w0 * tx.w0, ty.w0 * tx.w1);
                let (w10, w11) = (ty.w1 * tx.w0, ty.w1 * tx.w1);
                let taps = [row0[tx.i0], row0[tx.i1], row1[tx.i0], row1[tx.i1]];
                out.push(unrolled_sum(&[w00, w01, w10, w11], |k| taps[k]));
            }
        }
    }
    out
}

/// A run of source taps `start..start + weights.len()` with their weights.
#[derive(Clone, Debug)]
struct TapRun {
    start: usize,
    weights: Vec<f32>,
}

/// torch `HelperInterpLinear::aa_filter` (triangle).
fn triangle_filter(x: f32) -> f32 {
    let x = x.abs();
    if x < 1.0 { 1.0 - x } else { 0.0 }
}

/// torch `_compute_index_ranges_weights` + `_compute_indices_min_size_weights_aa`
/// for bilinear (`interp_size = 2`) in float32, keeping torch's mix of float
/// and double sub-expressions.
fn torch_aa_taps(in_size: usize, out_size: usize) -> Vec<TapRun> {
    let scale = torch_scale(in_size, out_size);
    let half_interp = 1.0f64; // interp_size * 0.5
    let support = if scale >= 1.0 {
        (half_interp * scale as f64) as f32
    } else {
        half_interp as f32
    };
    let max_interp = (support.ceil() as i64) * 2 + 1;
    let invscale = if scale >= 1.0 {
        (1.0 / scale as f64) as f32
    } else {
        1.0
    };
    (0..out_size)
        .map(|i| {
            let center = (scale as f64 * (i as f64 + 0.5)) as f32;
            let xmin = (((center - support) as f64 + 0.5) as i64).max(0);
            let xmax = (((center + support) as f64 + 0.5) as i64).min(in_size as i64);
            let xsize = (xmax - xmin).clamp(0, max_interp);
            let mut weights: Vec<f32> = (0..xsize)
                .map(|j| {
                    let offset = ((j + xmin) as f32 - center) as f64 + 0.5;
                    triangle_filter((offset * invscale as f64) as f32)
                })
                .collect();
            let total: f32 = weights.iter().fold(0.0, |acc, w| acc + w);
            if total != 0.0 {
                weights.iter_mut().for_each(|w| *w /= total);
            }
            TapRun {
                start: xmin as usize,
                weights,
            }
        })
        .collect()
}

/// torch `interpolate_aa_single_dim`, a loop over a run-time number of taps:
/// `out = x0*w0; out += xj*wj`, each `+=` contracted to
/// `fma(xj, wj, out)`. `value(j)` is the j-th tap.
fn sequential_sum(weights: &[f32], value: impl Fn(usize) -> f32) -> f32 {
    let mut taps = weights.iter().enumerate();
    let Some((_, &w0)) = taps.next() else {
        return 0.0;
    };
    taps.fold(value(0) * w0, |acc, (j, &w)| {
        fused_mul_add(value(j), w, acc)
    })
}

fn bilinear_antialiased(
    src: &[f32],
    channels: usize,
    (in_h, in_w): (usize, usize),
    (out_h, out_w): (usize, usize),
) -> Vec<f32> {
    let mut data = src.to_vec();
    let mut w = in_w;
    if out_w != in_w {
        let taps = torch_aa_taps(in_w, out_w);
        data = resample_rows_f32(&data, w, &taps);
        w = out_w;
    }
    if out_h != in_h {
        let taps = torch_aa_taps(in_h, out_h);
        data = resample_columns_f32(&data, channels, in_h, w, &taps);
    }
    data
}

/// Horizontal pass: every row of `width` values becomes `taps.len()` values.
fn resample_rows_f32(src: &[f32], width: usize, taps: &[TapRun]) -> Vec<f32> {
    let mut out = Vec::with_capacity(src.len() / width * taps.len());
    for row in src.chunks_exact(width) {
        for tap in taps {
            out.push(sequential_sum(&tap.weights, |j| row[tap.start + j]));
        }
    }
    out
}

/// Vertical pass over `channels` planes of `in_h x width`.
fn resample_columns_f32(
    src: &[f32],
    channels: usize,
    in_h: usize,
    width: usize,
    taps: &[TapRun],
) -> Vec<f32> {
    let mut out = Vec::with_capacity(channels * taps.len() * width);
    for plane in src.chunks_exact(in_h * width) {
        for tap in taps {
            for x in 0..width {
                out.push(sequential_sum(&tap.weights, |j| {
                    plane[(tap.start + j) * width + x]
                }));
            }
        }
    }
    out
}

/// torch `Interpolate<.., interp_size>::eval` for a compile-time tap count,
/// whose unrolled `out = x0*w0; out += xj*wj` is contracted as
/// `fma(x_{n-1}, w_{n-1}, ... fma(x2, w2, fma(x0, w0, x1*w1)))`.
fn unrolled_sum(weights: &[f32], value: impl Fn(usize) -> f32) -> f32 {
    match weights {
        [] => 0.0,
        [w0] => value(0) * w0,
        [w0, w1, rest @ ..] => {
            let first_two = fused_mul_add(value(0), *w0, value(1) * w1);
            rest.iter().enumerate().fold(first_two, |acc, (k, &w)| {
                fused_mul_add(value(k + 2), w, acc)
            })
        }
    }
}

/// Four source taps (clamped to the border) and weights of one output index.
#[derive(Clone, Copy, Debug)]
struct CubicTap {
    index: [usize; 4],
    weight: [f32; 4],
}

/// torch `cubic_convolution1`: `((A + 2) * x - (A + 3)) * x * x + 1`, |x| <= 1.
fn cubic_convolution1(x: f32, a: f32) -> f32 {
    ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
}

/// torch `cubic_convolution2`: `((A * x - 5A) * x + 8A) * x - 4A`, 1 < |x| < 2.
fn cubic_convolution2(x: f32, a: f32) -> f32 {
    ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
}

/// torch `get_cubic_upsample_coefficients` (A = -0.75).
fn torch_cubic_coefficients(t: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let x2 = 1.0 - t;
    [
        cubic_convolution2(t + 1.0, A),
        cubic_convolution1(t, A),
        cubic_convolution1(x2, A),
        cubic_convolution2(x2 + 1.0, A),
    ]
}

/// torch `HelperInterpCubic::compute_indices_weights`.
fn torch_cubic_taps(in_size: usize, out_size: usize) -> Vec<CubicTap> {
    let scale = torch_scale(in_size, out_size);
    let last = in_size as i64 - 1;
    (0..out_size)
        .map(|i| {
            let real = torch_source_index(scale, i, false);
            let (index, lambda) = torch_index_and_lambda(real, in_size);
            let tap = |j: i64| (index - 1 + j).min(last).max(0) as usize;
            CubicTap {
                index: [tap(0), tap(1), tap(2), tap(3)],
                weight: torch_cubic_coefficients(lambda),
            }
        })
        .collect()
}

/// torch `F.interpolate(x, size=(out_h, out_w), mode="bicubic",
/// align_corners=False)` on a float32 CHW image (`upsample_bicubic2d`,
/// generic kernel): Keys cubic with A = -0.75, source index not clamped, the
/// four taps clamped to the border; rows are interpolated along x first, then
/// combined along y, each four-term sum contracted as in `unrolled_sum`.
///
/// Used for Hiera's window positional-embedding background.
///
/// # Panics
/// If `src.len() != channels * in_h * in_w`, or the input is empty while the output is not.
pub fn resize_bicubic(
    src: &[f32],
    channels: usize,
    in_h: usize,
    in_w: usize,
    out_h: usize,
    out_w: usize,
) -> Vec<f32> {
    assert_buffer(src.len(), channels, in_h, in_w);
    if channels * out_h * out_w == 0 {
        return Vec::new();
    }
    assert!(in_h > 0 && in_w > 0, "cannot resize an empty image");
    let ys = torch_cubic_taps(in_h, out_h);
    let xs = torch_cubic_taps(in_w, out_w);
    let mut out = Vec::with_capacity(channels * out_h * out_w);
    for plane in src.chunks_exact(in_h * in_w) {
        for ty in &ys {
            for tx in &xs {
                let row = |y: usize| {
                    let r = &plane[y * in_w..][..in_w];
                    unrolled_sum(&tx.weight, |k| r[tx.index[k]])
                };
                out.push(unrolled_sum(&ty.weight, |j| row(ty.index[j])));
            }
        }
    }
    out
}

// ============================================================================
// Pillow Image.resize (src/libImaging/Resample.c), 8 bits per channel
// ============================================================================

/// Pillow's fixed-point precision for 8-bit resampling (`PRECISION_BITS`).
const PIL_PRECISION_BITS: u32 = 32 - 8 - 2;

/// Pillow `bicubic_filter` (a = -0.5), support 2.
fn pil_bicubic_filter(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}
const PIL_BICUBIC_SUPPORT: f64 = 2.0;

/// Fixed-point taps of one output index (Pillow `precompute_coeffs` +
/// `normalize_coeffs_8bpc`).
#[derive(Clone, Debug)]
struct PilTaps {
    start: usize,
    coeffs: Vec<i32>,
}

/// Pillow `precompute_coeffs` for the full box `(0, in_size)` followed by
/// `normalize_coeffs_8bpc` (round half away from zero to `PRECISION_BITS`).
fn pil_taps(
    in_size: usize,
    out_size: usize,
    filter: fn(f64) -> f64,
    filter_support: f64,
) -> Vec<PilTaps> {
    let scale = in_size as f32 as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter_support * filterscale;
    let ss = 1.0 / filterscale;
    let one = (1i64 << PIL_PRECISION_BITS) as f64;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) - xmin;
            let mut k: Vec<f64> = (0..xmax.max(0))
                .map(|x| filter(((x + xmin) as f64 - center + 0.5) * ss))
                .collect();
            let ww: f64 = k.iter().fold(0.0, |acc, w| acc + w);
            if ww != 0.0 {
                k.iter_mut().for_each(|w| *w /= ww);
            }
            let coeffs = k
                .iter()
                .map(|&w| {
                    if w < 0.0 {
                        (-0.5 + w * one) as i32
                    } else {
                        (0.5 + w * one) as i32
                    }
                })
                .collect();
            PilTaps {
                start: xmin as usize,
                coeffs,
            }
        })
        .collect()
}

/// Pillow `clip8`: `acc >> PRECISION_BITS` clamped to 0..=255.
fn pil_clip8(acc: i64) -> u8 {
    (acc >> PIL_PRECISION_BITS).clamp(0, 255) as u8
}

/// Pillow's rounding start value `1 << (PRECISION_BITS - 1)`.
const PIL_HALF: i64 = 1 << (PIL_PRECISION_BITS - 1);

/// Pillow `ImagingResampleHorizontal_8bpc` on an interleaved image.
fn pil_resample_horizontal(src: &[u8], channels: usize, width: usize, taps: &[PilTaps]) -> Vec<u8> {
    let rows = src.len() / (width * channels);
    let mut out = Vec::with_capacity(rows * taps.len() * channels);
    for row in src.chunks_exact(width * channels) {
        for tap in taps {
            for c in 0..channels {
                let acc = tap
                    .coeffs
                    .iter()
                    .enumerate()
                    .fold(PIL_HALF, |acc, (x, &k)| {
                        acc + row[(tap.start + x) * channels + c] as i64 * k as i64
                    });
                out.push(pil_clip8(acc));
            }
        }
    }
    out
}

/// Pillow `ImagingResampleVertical_8bpc` on an interleaved image.
fn pil_resample_vertical(src: &[u8], channels: usize, width: usize, taps: &[PilTaps]) -> Vec<u8> {
    let stride = width * channels;
    let mut out = Vec::with_capacity(taps.len() * stride);
    for tap in taps {
        for i in 0..stride {
            let acc = tap
                .coeffs
                .iter()
                .enumerate()
                .fold(PIL_HALF, |acc, (y, &k)| {
                    acc + src[(tap.start + y) * stride + i] as i64 * k as i64
                });
            out.push(pil_clip8(acc));
        }
    }
    out
}

/// Pillow `Image.resize((out_w, out_h), Image.BICUBIC)` on an 8-bit RGB image
/// (interleaved HWC), i.e. `ImagingResampleInner` with the bicubic filter:
/// separable, each pass rounded and clipped to u8 in Pillow's fixed-point
/// arithmetic; an axis whose size does not change is not resampled. BICUBIC
/// is the default filter of `Image.resize` for RGB images, which is what
/// sam2 1.1.0 `_load_img_as_tensor` calls.
///
/// The pass order follows Pillow 13 (see [`pil_vertical_first`]); Pillow 12
/// and older always ran the horizontal pass first. The two agree whenever
/// only one axis changes size, as for SAM 2 frames whose width already
/// equals the model resolution.
///
/// # Panics
/// If `rgb_hwc.len() != h * w * 3`, or the input is empty while the output is not.
pub fn pil_resize_bicubic_rgb(
    rgb_hwc: &[u8],
    h: usize,
    w: usize,
    out_h: usize,
    out_w: usize,
) -> Vec<u8> {
    pil_resize_bicubic(rgb_hwc, 3, h, w, out_h, out_w)
}

/// Pillow 13 `ImagingResampleInner` (python-pillow/Pillow#9549) runs the
/// vertical pass first when the height shrinks by more than twice as many
/// pixels as the width does: `out_h < h && h - out_h > 2 * (w - out_w)`
/// (determined and checked against Pillow 13.0.0 on 400 random size pairs).
pub fn pil_vertical_first(h: usize, w: usize, out_h: usize, out_w: usize) -> bool {
    let shrink_h = h as i64 - out_h as i64;
    let shrink_w = w as i64 - out_w as i64;
    out_h < h && shrink_h > 2 * shrink_w
}

fn pil_resize_bicubic(
    src: &[u8],
    channels: usize,
    h: usize,
    w: usize,
    out_h: usize,
    out_w: usize,
) -> Vec<u8> {
    assert_buffer(src.len(), channels, h, w);
    if channels * out_h * out_w == 0 {
        return Vec::new();
    }
    assert!(h > 0 && w > 0, "cannot resize an empty image");
    let horizontal = |data: &[u8]| {
        let taps = pil_taps(w, out_w, pil_bicubic_filter, PIL_BICUBIC_SUPPORT);
        pil_resample_horizontal(data, channels, w, &taps)
    };
    let vertical = |data: &[u8], width: usize| {
        let taps = pil_taps(h, out_h, pil_bicubic_filter, PIL_BICUBIC_SUPPORT);
        pil_resample_vertical(data, channels, width, &taps)
    };
    let (need_horizontal, need_vertical) = (out_w != w, out_h != h);
    match (need_horizontal, need_vertical) {
        (false, false) => src.to_vec(),
        (true, false) => horizontal(src),
        (false, true) => vertical(src, w),
        (true, true) if pil_vertical_first(h, w, out_h, out_w) => horizontal(&vertical(src, w)),
        (true, true) => vertical(&horizontal(src), out_w),
    }
}

// ============================================================================
// OpenCV cv2.resize(..., interpolation=INTER_AREA) on 8-bit images
// (modules/imgproc/src/resize.cpp)
// ============================================================================

/// OpenCV `saturate_cast<uchar>(float)`: round half to even, clamp.
fn cv_saturate_u8(v: f32) -> u8 {
    v.round_ties_even().clamp(0.0, 255.0) as u8
}

/// OpenCV `cv2.resize(src, (out_w, out_h), interpolation=cv2.INTER_AREA)` on
/// an 8-bit interleaved HWC image with 1 to 4 channels, following
/// `cv::hal::resize`:
/// - integer downscale factors: `resizeAreaFast_` (2x2 blocks use the
///   `(a+b+c+d+2)>>2` kernel, other blocks a float mean rounded half-even);
/// - other downscales: `resizeArea_` with `computeResizeAreaTab` weights,
///   accumulated in float;
/// - any upscale along an axis: INTER_AREA falls back to OpenCV's fixed-point
///   bilinear with "area" coefficients (`resizeGeneric_` + `HResizeLinear` +
///   `VResizeLinear`), including the 128-bit SIMD rounding of
///   `VResizeLinearVec_32s8u` (see `cv_vresize_row`).
///
/// # Panics
/// If `channels` is not 1..=4, `src.len() != h * w * channels`, or the input
/// is empty while the output is not.
pub fn cv2_resize_area_u8(
    src: &[u8],
    h: usize,
    w: usize,
    channels: usize,
    out_h: usize,
    out_w: usize,
) -> Vec<u8> {
    assert!(
        (1..=4).contains(&channels),
        "OpenCV INTER_AREA supports 1 to 4 channels"
    );
    assert_buffer(src.len(), channels, h, w);
    if out_h * out_w == 0 {
        return Vec::new();
    }
    assert!(h > 0 && w > 0, "cannot resize an empty image");
    if (out_h, out_w) == (h, w) {
        return src.to_vec();
    }
    let inv_scale_x = out_w as f64 / w as f64;
    let inv_scale_y = out_h as f64 / h as f64;
    let scale_x = 1.0 / inv_scale_x;
    let scale_y = 1.0 / inv_scale_y;
    let iscale_x = scale_x.round_ties_even();
    let iscale_y = scale_y.round_ties_even();
    let is_area_fast =
        (scale_x - iscale_x).abs() < f64::EPSILON && (scale_y - iscale_y).abs() < f64::EPSILON;
    let image = Cv8uImage {
        data: src,
        h,
        w,
        channels,
    };
    if scale_x >= 1.0 && scale_y >= 1.0 {
        if is_area_fast {
            cv_area_fast(&image, iscale_x as usize, iscale_y as usize, out_h, out_w)
        } else {
            cv_area_weighted(&image, scale_x, scale_y, out_h, out_w)
        }
    } else {
        let x = AreaLinearAxis {
            in_size: w,
            out_size: out_w,
            scale: scale_x,
            inv_scale: inv_scale_x,
        };
        let y = AreaLinearAxis {
            in_size: h,
            out_size: out_h,
            scale: scale_y,
            inv_scale: inv_scale_y,
        };
        cv_area_upscale_linear(&image, &x, &y)
    }
}

/// An interleaved 8-bit image as OpenCV's `Mat` would hold it.
struct Cv8uImage<'a> {
    data: &'a [u8],
    h: usize,
    w: usize,
    channels: usize,
}

/// `resizeAreaFast_` for exact integer factors (the output then tiles the input).
fn cv_area_fast(image: &Cv8uImage, sx: usize, sy: usize, out_h: usize, out_w: usize) -> Vec<u8> {
    let cn = image.channels;
    let stride = image.w * cn;
    let area = sx * sy;
    let inv_area = 1.0f32 / area as f32;
    // ResizeAreaFastVec's 2x2 kernel (SIMD and scalar alike) for 1, 3 or 4 channels.
    let two_by_two = sx == 2 && sy == 2 && cn != 2;
    let mut out = Vec::with_capacity(out_h * out_w * cn);
    for dy in 0..out_h {
        for dx in 0..out_w {
            for c in 0..cn {
                let mut sum = 0u32;
                for ky in 0..sy {
                    let row = &image.data[(dy * sy + ky) * stride..][..stride];
                    for kx in 0..sx {
                        sum += row[(dx * sx + kx) * cn + c] as u32;
                    }
                }
                out.push(if two_by_two {
                    ((sum + 2) >> 2) as u8
                } else {
                    cv_saturate_u8(sum as f32 * inv_area)
                });
            }
        }
    }
    out
}

/// One `DecimateAlpha` entry: output index, source index, weight.
#[derive(Clone, Copy, Debug)]
struct AreaTerm {
    dst: usize,
    src: usize,
    alpha: f32,
}

/// OpenCV `computeResizeAreaTab` (indices in pixels, not elements).
fn cv_area_tab(ssize: usize, dsize: usize, scale: f64) -> Vec<AreaTerm> {
    let mut tab = Vec::with_capacity(ssize * 2);
    for dx in 0..dsize {
        let fsx1 = dx as f64 * scale;
        let fsx2 = fsx1 + scale;
        let cell_width = scale.min(ssize as f64 - fsx1);
        let sx2 = (fsx2.floor() as i64).min(ssize as i64 - 1);
        let sx1 = (fsx1.ceil() as i64).min(sx2);
        if sx1 as f64 - fsx1 > 1e-3 {
            let alpha = ((sx1 as f64 - fsx1) / cell_width) as f32;
            tab.push(AreaTerm {
                dst: dx,
                src: (sx1 - 1) as usize,
                alpha,
            });
        }
        for sx in sx1..sx2 {
            tab.push(AreaTerm {
                dst: dx,
                src: sx as usize,
                alpha: (1.0 / cell_width) as f32,
            });
        }
        if fsx2 - sx2 as f64 > 1e-3 {
            let alpha = ((fsx2 - sx2 as f64).min(1.0).min(cell_width) / cell_width) as f32;
            tab.push(AreaTerm {
                dst: dx,
                src: sx2 as usize,
                alpha,
            });
        }
    }
    tab
}

/// `ResizeArea_Invoker<uchar, float>`: each output row accumulates
/// `beta * (horizontally area-summed source row)` in float, rounded at the end.
fn cv_area_weighted(
    image: &Cv8uImage,
    scale_x: f64,
    scale_y: f64,
    out_h: usize,
    out_w: usize,
) -> Vec<u8> {
    let cn = image.channels;
    let xtab = cv_area_tab(image.w, out_w, scale_x);
    let ytab = cv_area_tab(image.h, out_h, scale_y);
    let width = out_w * cn;
    let mut out = vec![0u8; out_h * width];
    let mut buf = vec![0f32; width];
    let mut sum = vec![0f32; width];
    let mut current: Option<usize> = None;
    for yterm in &ytab {
        let row = &image.data[yterm.src * image.w * cn..][..image.w * cn];
        buf.iter_mut().for_each(|b| *b = 0.0);
        for xterm in &xtab {
            for c in 0..cn {
                let d = xterm.dst * cn + c;
                buf[d] += row[xterm.src * cn + c] as f32 * xterm.alpha;
            }
        }
        if current != Some(yterm.dst) {
            if let Some(prev) = current {
                flush_area_row(&mut out[prev * width..][..width], &sum);
            }
            sum.iter_mut()
                .zip(&buf)
                .for_each(|(s, b)| *s = yterm.alpha * b);
            current = Some(yterm.dst);
        } else {
            sum.iter_mut()
                .zip(&buf)
                .for_each(|(s, b)| *s += yterm.alpha * b);
        }
    }
    if let Some(prev) = current {
        flush_area_row(&mut out[prev * width..][..width], &sum);
    }
    out
}

fn flush_area_row(dst: &mut [u8], sum: &[f32]) {
    dst.iter_mut()
        .zip(sum)
        .for_each(|(d, &s)| *d = cv_saturate_u8(s));
}

/// OpenCV's fixed-point interpolation scale `INTER_RESIZE_COEF_SCALE` (11 bits).
const CV_COEF_SCALE: f32 = 2048.0;

/// One axis of the INTER_AREA upscale fallback.
struct AreaLinearAxis {
    in_size: usize,
    out_size: usize,
    scale: f64,
    inv_scale: f64,
}

/// Source tap and fixed-point weights of one output index (`xofs`/`ialpha`,
/// `yofs`/`ibeta` in `cv::hal::resize`, `area_mode` branch).
#[derive(Clone, Copy, Debug)]
struct FixedTap {
    src: usize,
    w0: i32,
    w1: i32,
}

/// `saturate_cast<short>(float)`.
fn cv_saturate_i16(v: f32) -> i32 {
    v.round_ties_even().clamp(i16::MIN as f32, i16::MAX as f32) as i32
}

fn cv_area_linear_taps(axis: &AreaLinearAxis, clamp_at_border: bool) -> Vec<FixedTap> {
    (0..axis.out_size)
        .map(|d| {
            let mut s = (d as f64 * axis.scale).floor() as i64;
            let f = ((d + 1) as f64 - (s + 1) as f64 * axis.inv_scale) as f32;
            let mut f = if f <= 0.0 { 0.0 } else { f - f.floor() };
            if clamp_at_border && s >= axis.in_size as i64 - 1 {
                f = 0.0;
                s = axis.in_size as i64 - 1;
            }
            FixedTap {
                src: s.max(0) as usize,
                w0: cv_saturate_i16((1.0 - f) * CV_COEF_SCALE),
                w1: cv_saturate_i16(f * CV_COEF_SCALE),
            }
        })
        .collect()
}

/// `HResizeLinear<uchar, int, short, 2048>` on one source row (element-wise,
/// taps past the right border use the last pixel with weight 2048).
fn cv_hresize_row(row: &[u8], cn: usize, in_w: usize, xs: &[FixedTap]) -> Vec<i32> {
    let mut out = Vec::with_capacity(xs.len() * cn);
    for tap in xs {
        for c in 0..cn {
            let s0 = row[tap.src * cn + c] as i32;
            if tap.src + 1 < in_w {
                let s1 = row[(tap.src + 1) * cn + c] as i32;
                out.push(s0 * tap.w0 + s1 * tap.w1);
            } else {
                out.push(s0 * CV_COEF_SCALE as i32);
            }
        }
    }
    out
}

/// `VResizeLinear<uchar, int, short, FixedPtCast<int, uchar, 22>, VResizeLinearVec_32s8u>`
/// as OpenCV's 128-bit SIMD kernel computes it: each row value is shifted
/// right by 4 and saturated to i16, multiplied by the weight keeping the high
/// 16 bits (`v_mul_hi`), the two products added with i16 saturation, then
/// `(sum + 2) >> 2` saturated to u8. This is not the exact fixed-point cast
/// (`(r0*b0 + r1*b1 + 2^21) >> 22`), and OpenCV 5.0 applies it to every
/// element of the row, the last few included (checked against
/// opencv-python-headless 5.0.0).
fn cv_vresize_row(r0: &[i32], r1: &[i32], b0: i32, b1: i32, dst: &mut [u8]) {
    let saturate_i16 = |v: i32| v.clamp(i16::MIN as i32, i16::MAX as i32);
    let mul_hi = |s: i32, b: i32| (saturate_i16(s >> 4) * b) >> 16;
    for ((d, &s0), &s1) in dst.iter_mut().zip(r0).zip(r1) {
        let sum = saturate_i16(mul_hi(s0, b0) + mul_hi(s1, b1));
        *d = (saturate_i16(sum + 2) >> 2).clamp(0, 255) as u8;
    }
}

/// `resizeGeneric_` for u8 with `interpolation == INTER_AREA` on an upscale
/// (OpenCV emulates "area" there with bilinear in fixed point).
fn cv_area_upscale_linear(image: &Cv8uImage, x: &AreaLinearAxis, y: &AreaLinearAxis) -> Vec<u8> {
    let cn = image.channels;
    let xs = cv_area_linear_taps(x, true);
    let ys = cv_area_linear_taps(y, false);
    let stride = image.w * cn;
    let width = x.out_size * cn;
    let last_row = image.h - 1;
    let mut out = vec![0u8; y.out_size * width];
    for (dy, tap) in ys.iter().enumerate() {
        let row = |sy: usize| &image.data[sy.min(last_row) * stride..][..stride];
        let r0 = cv_hresize_row(row(tap.src), cn, image.w, &xs);
        let r1 = cv_hresize_row(row(tap.src + 1), cn, image.w, &xs);
        cv_vresize_row(&r0, &r1, tap.w0, tap.w1, &mut out[dy * width..][..width]);
    }
    out
}

// ============================================================================
// Layout helpers
// ============================================================================

/// Interleaved HWC u8 -> planar CHW f32 through `to_float` per value.
fn hwc_u8_to_chw(src: &[u8], channels: usize, to_float: impl Fn(u8) -> f32) -> Vec<f32> {
    let pixels = src.len() / channels;
    let mut out = vec![0f32; src.len()];
    for (p, px) in src.chunks_exact(channels).enumerate() {
        for (c, &v) in px.iter().enumerate() {
            out[c * pixels + p] = to_float(v);
        }
    }
    out
}

/// torchvision `Normalize(mean, std)` on CHW planes: `(x - mean[c]) / std[c]` in f32.
fn normalize_imagenet(chw: &mut [f32]) {
    let plane = chw.len() / 3;
    for (c, values) in chw.chunks_exact_mut(plane).enumerate() {
        values
            .iter_mut()
            .for_each(|v| *v = (*v - IMAGENET_MEAN[c]) / IMAGENET_STD[c]);
    }
}

// ============================================================================
// SAM 2
// ============================================================================

/// SAM 2 input transforms and mask post-processing at a square model
/// resolution (`SAM2Transforms(resolution=image_size, mask_threshold=0.0,
/// max_hole_area=0, max_sprinkle_area=0)` as `SAM2ImagePredictor` builds it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sam2ImageTransform {
    pub image_size: usize,
}

impl Sam2ImageTransform {
    pub fn new(image_size: usize) -> Self {
        Self { image_size }
    }

    /// `SAM2Transforms.__call__` (`SAM2ImagePredictor.set_image`) on an RGB u8
    /// HWC image: `ToTensor` (`u8 / 255` in f32, CHW) -> torchvision
    /// `Resize((S, S))` on the float tensor (bilinear, antialias=True; skipped
    /// when the size already matches) -> `Normalize` (ImageNet). Returns `3 x S x S`.
    pub fn prepare(
        &self,
        rgb_u8_hwc: &[u8],
        h: usize,
        w: usize,
    ) -> Result<Vec<f32>, PreprocessError> {
        check_image("image", rgb_u8_hwc.len(), 3, h, w)?;
        let s = self.image_size;
        check_nonempty("model input", s, s)?;
        let chw = hwc_u8_to_chw(rgb_u8_hwc, 3, |v| v as f32 / 255.0);
        let mut resized = if (h, w) == (s, s) {
            chw
        } else {
            resize_bilinear(&chw, 3, h, w, s, s, Antialias::On)
        };
        normalize_imagenet(&mut resized);
        Ok(resized)
    }

    /// One frame as `load_video_frames` (`_load_img_as_tensor`) loads it from
    /// a JPEG folder: Pillow `Image.resize((S, S))` (bicubic) on the u8 RGB
    /// image, `/ 255.0` in float64 stored as float32, then `(x - mean) / std`
    /// in float32. Returns `3 x S x S`.
    pub fn prepare_video_frame(
        &self,
        rgb_u8_hwc: &[u8],
        h: usize,
        w: usize,
    ) -> Result<Vec<f32>, PreprocessError> {
        check_image("video frame", rgb_u8_hwc.len(), 3, h, w)?;
        let s = self.image_size;
        check_nonempty("model input", s, s)?;
        let resized = if (h, w) == (s, s) {
            rgb_u8_hwc.to_vec()
        } else {
            pil_resize_bicubic_rgb(rgb_u8_hwc, h, w, s, s)
        };
        let mut chw = hwc_u8_to_chw(&resized, 3, |v| (v as f64 / 255.0) as f32);
        normalize_imagenet(&mut chw);
        Ok(chw)
    }

    /// `SAM2Transforms.transform_coords(normalize=True)` on one `(x, y)` point
    /// in original-image pixels: `x / w * S`, `y / h * S` (f32). `orig_hw` is
    /// `(height, width)` as in `SAM2ImagePredictor._orig_hw`.
    pub fn point_to_model(&self, point_xy: [f32; 2], orig_hw: (usize, usize)) -> [f32; 2] {
        let (h, w) = orig_hw;
        let s = self.image_size as f32;
        [point_xy[0] / w as f32 * s, point_xy[1] / h as f32 * s]
    }

    /// [`Self::point_to_model`] on every point (`_prep_prompts` for `point_coords`).
    pub fn points_to_model(
        &self,
        points_xy: &[[f32; 2]],
        orig_hw: (usize, usize),
    ) -> Vec<[f32; 2]> {
        points_xy
            .iter()
            .map(|&p| self.point_to_model(p, orig_hw))
            .collect()
    }

    /// `SAM2Transforms.transform_boxes(normalize=True)` on an `x0, y0, x1, y1`
    /// box in original-image pixels (the two corners as points).
    pub fn box_to_model(&self, box_xyxy: [f32; 4], orig_hw: (usize, usize)) -> [f32; 4] {
        let [x0, y0] = self.point_to_model([box_xyxy[0], box_xyxy[1]], orig_hw);
        let [x1, y1] = self.point_to_model([box_xyxy[2], box_xyxy[3]], orig_hw);
        [x0, y0, x1, y1]
    }

    /// `SAM2Transforms.postprocess_masks` with hole/sprinkle filling disabled
    /// (`max_hole_area = max_sprinkle_area = 0`, the predictor's default):
    /// `F.interpolate(low_res, (orig_h, orig_w), mode="bilinear",
    /// align_corners=False)`. `low_res` holds one or more `low_h x low_w`
    /// logit planes; returns as many `orig_h x orig_w` planes of logits.
    pub fn postprocess_logits(
        &self,
        low_res: &[f32],
        low_h: usize,
        low_w: usize,
        orig_h: usize,
        orig_w: usize,
    ) -> Result<Vec<f32>, PreprocessError> {
        let planes = whole_planes("low-res logits", low_res.len(), low_h, low_w)?;
        check_nonempty("original image", orig_h, orig_w)?;
        Ok(resize_bilinear(
            low_res,
            planes,
            low_h,
            low_w,
            orig_h,
            orig_w,
            Antialias::Off,
        ))
    }

    /// `masks > mask_threshold` (0.0) as `SAM2ImagePredictor.predict` does
    /// when `return_logits=False`: 1 for foreground, 0 for background.
    pub fn logits_to_mask(logits: &[f32]) -> Vec<u8> {
        logits.iter().map(|&l| (l > 0.0) as u8).collect()
    }
}

/// Number of `h x w` planes in a buffer of `len` values.
fn whole_planes(
    what: &'static str,
    len: usize,
    height: usize,
    width: usize,
) -> Result<usize, PreprocessError> {
    check_nonempty(what, height, width)?;
    let plane = height * width;
    if len == 0 || !len.is_multiple_of(plane) {
        return Err(PreprocessError::PartialPlanes {
            what,
            height,
            width,
            found: len,
        });
    }
    Ok(len / plane)
}

// ============================================================================
// LiteMedSAM
// ============================================================================

/// The preprocessed LiteMedSAM input and the extent of the image inside it.
#[derive(Clone, Debug, PartialEq)]
pub struct LiteMedSamInput {
    /// `3 x S x S`, CHW: the resized image (min-max normalised to [0, 1]) at
    /// the top left, zero padding bottom and right.
    pub data: Vec<f32>,
    /// Height of the resized image inside the padded square.
    pub resized_h: usize,
    /// Width of the resized image inside the padded square.
    pub resized_w: usize,
}

/// The LiteMedSAM inference recipe (bowang-lab/MedSAM `CVPR24_LiteMedSAM_infer.py`,
/// as run by `export_litemedsam_fixtures.py`) at model resolution
/// `image_size` (256 for LiteMedSAM).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiteMedSamTransform {
    pub image_size: usize,
}

impl Default for LiteMedSamTransform {
    fn default() -> Self {
        Self { image_size: 256 }
    }
}

impl LiteMedSamTransform {
    pub fn new(image_size: usize) -> Self {
        Self { image_size }
    }

    /// `resize_longest_side`'s target size: `s = S / max(h, w)`,
    /// `(int(h * s + 0.5), int(w * s + 0.5))` in float64.
    pub fn resized_hw(&self, h: usize, w: usize) -> (usize, usize) {
        let s = self.image_size as f64 / h.max(w) as f64;
        ((h as f64 * s + 0.5) as usize, (w as f64 * s + 0.5) as usize)
    }

    /// `preprocess(slice_u8)` on a grey u8 slice (`h x w`): the slice is
    /// repeated to 3 channels (`np.repeat(..., 3, axis=-1)`), then processed
    /// as [`Self::prepare_rgb`].
    pub fn prepare_gray(
        &self,
        gray: &[u8],
        h: usize,
        w: usize,
    ) -> Result<LiteMedSamInput, PreprocessError> {
        check_image("grey image", gray.len(), 1, h, w)?;
        let rgb: Vec<u8> = gray.iter().flat_map(|&v| [v, v, v]).collect();
        self.prepare_rgb(&rgb, h, w)
    }

    /// `preprocess` on a 3-channel u8 HWC image (the recipe itself only ever
    /// passes grey slices repeated to 3 channels): `resize_longest_side`
    /// (cv2 INTER_AREA to [`Self::resized_hw`]), min-max normalisation over
    /// all channels `(r - min) / clip(max - min, 1e-8, None)` in float64
    /// stored as float32, zero padding to `S x S` bottom/right, CHW.
    pub fn prepare_rgb(
        &self,
        rgb_u8_hwc: &[u8],
        h: usize,
        w: usize,
    ) -> Result<LiteMedSamInput, PreprocessError> {
        check_image("image", rgb_u8_hwc.len(), 3, h, w)?;
        let s = self.image_size;
        check_nonempty("model input", s, s)?;
        let (nh, nw) = self.resized_hw(h, w);
        check_nonempty("resized image", nh, nw)?;
        let resized = cv2_resize_area_u8(rgb_u8_hwc, h, w, 3, nh, nw);
        let min = resized.iter().copied().min().unwrap_or(0);
        let max = resized.iter().copied().max().unwrap_or(0);
        let range = ((max - min) as f64).max(1e-8);
        let mut data = vec![0f32; 3 * s * s];
        for (p, px) in resized.chunks_exact(3).enumerate() {
            let (y, x) = (p / nw, p % nw);
            for (c, &v) in px.iter().enumerate() {
                data[(c * s + y) * s + x] = ((v - min) as f64 / range) as f32;
            }
        }
        Ok(LiteMedSamInput {
            data,
            resized_h: nh,
            resized_w: nw,
        })
    }

    /// `box_to_256`: every coordinate times `S / max(h, w)` and truncated
    /// (`int(v * ratio)`, in float32 as NumPy 2 computes `np.float32 * float`).
    /// `orig_hw` is `(height, width)`.
    pub fn box_to_model(&self, box_xyxy: [f32; 4], orig_hw: (usize, usize)) -> [f32; 4] {
        let ratio = (self.image_size as f64 / orig_hw.0.max(orig_hw.1) as f64) as f32;
        box_xyxy.map(|v| (v * ratio).trunc())
    }

    /// The post-processing of `infer_slice`: crop the `S x S` low-res logits
    /// to the resized extent (`low[..., :nh, :nw]`), then `F.interpolate(...,
    /// size=(H, W), mode="bilinear", align_corners=False)`. Returns `orig_h x
    /// orig_w` logits; see [`Self::logits_to_mask`].
    pub fn postprocess_logits(
        &self,
        low_res: &[f32],
        resized_hw: (usize, usize),
        orig_hw: (usize, usize),
    ) -> Result<Vec<f32>, PreprocessError> {
        let s = self.image_size;
        check_image("low-res logits", low_res.len(), 1, s, s)?;
        let (nh, nw) = resized_hw;
        check_nonempty("resized image", nh, nw)?;
        if nh > s || nw > s {
            return Err(PreprocessError::TooLarge {
                what: "resized image",
                height: nh,
                width: nw,
                limit: s,
            });
        }
        check_nonempty("original image", orig_hw.0, orig_hw.1)?;
        let cropped: Vec<f32> = low_res
            .chunks_exact(s)
            .take(nh)
            .flat_map(|row| &row[..nw])
            .copied()
            .collect();
        Ok(resize_bilinear(
            &cropped,
            1,
            nh,
            nw,
            orig_hw.0,
            orig_hw.1,
            Antialias::Off,
        ))
    }

    /// `(torch.sigmoid(up) > 0.5)` as u8, with the sigmoid in float32
    /// (equivalent to `logit > 0` except within ~1e-7 of zero).
    pub fn logits_to_mask(logits: &[f32]) -> Vec<u8> {
        logits
            .iter()
            .map(|&l| (1.0 / (1.0 + (-l).exp()) > 0.5) as u8)
            .collect()
    }

    /// The 3D recipe's prompt for the next slice, from the previous slice's
    /// `h x w` mask: `bbox256_from_mask(pad(resize_longest_side(prev)))`, i.e.
    /// the mask resized with cv2 INTER_AREA, its bounding box in model space
    /// widened by `shift` pixels (3 in the recipe) and clipped to `[0, S]`.
    /// `None` when the resized mask is empty (the recipe then falls back to
    /// the key-slice box).
    pub fn box_from_mask(
        &self,
        mask: &[u8],
        h: usize,
        w: usize,
        shift: usize,
    ) -> Result<Option<[f32; 4]>, PreprocessError> {
        check_image("mask", mask.len(), 1, h, w)?;
        let (nh, nw) = self.resized_hw(h, w);
        check_nonempty("resized mask", nh, nw)?;
        let resized = cv2_resize_area_u8(mask, h, w, 1, nh, nw);
        let mut extent: Option<[usize; 4]> = None;
        for (p, &v) in resized.iter().enumerate() {
            if v == 0 {
                continue;
            }
            let (y, x) = (p / nw, p % nw);
            extent = Some(match extent {
                None => [x, y, x, y],
                Some([x0, y0, x1, y1]) => [x0.min(x), y0.min(y), x1.max(x), y1.max(y)],
            });
        }
        let s = self.image_size;
        Ok(extent.map(|[x0, y0, x1, y1]| {
            [
                x0.saturating_sub(shift) as f32,
                y0.saturating_sub(shift) as f32,
                (x1 + shift).min(s) as f32,
                (y1 + shift).min(s) as f32,
            ]
        }))
    }
}
