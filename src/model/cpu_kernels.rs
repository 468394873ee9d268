//! Host-side kernels for burn's CPU backend (`flex`), for the operations whose
//! flex implementation dominated the encoders' run time:
//!
//! - exact GELU: flex evaluates libm `erff` one element at a time on one
//!   thread (~40 % of the LiteMedSAM TinyViT encoder, ~8 % of Hiera); here a
//!   branch-free erf the compiler vectorises, spread over the rayon pool;
//! - `k×k`, stride-`k` max pooling of NHWC maps (Hiera's query and shortcut
//!   pooling): flex pools NCHW through its 3-D pooling with indices, and the
//!   layout round trip costs two more copies;
//! - attention: matmuls on the strided head views around a vectorised
//!   softmax (flex's fused attention evaluates libm `expf` per score);
//! - depthwise convolution of NHWC maps (TinyViT), vectorised over channels,
//!   so that TinyViT can stay channels-last instead of transposing around
//!   every depthwise convolution;
//! - linear layers: one GEMM into a buffer holding the bias rows,
//!   without flex's zero-fill and realignment copy of every matmul output;
//! - rotary position encoding (memory attention) in place, where burn ops
//!   took ten passes over strided views plus copies of the repeated tables
//!   for every key of every memory frame (~5 % of a video frame).
//!
//! Each kernel takes the tensor's own buffer (no copy when the tensor is
//! contiguous and not shared). Tensors on any other device (wgpu) go through
//! burn's ops; both compute the same function up to f32
//! rounding. So do tensors that carry autodiff (fine-tuning, `app::training`):
//! a kernel here reads values and writes a fresh tensor, which records nothing
//! on the tape, so gradients would silently stop at it. GELU is the exception:
//! for those it computes values and slopes here and records them with burn's
//! ops ([`gelu_recorded`]).

use burn::tensor::module::{conv2d, max_pool2d};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use burn::tensor::{DType, Device, Tensor, TensorData, activation};

/// Whether `x` lives in host memory as f32 without autodiff, where the kernels
/// here apply. Device equality ignores autodiff (an autodiff flex device equals
/// `Device::flex()`), hence the separate check. Callers with several tensor
/// inputs check each one that may carry gradients.
pub(crate) fn on_host<const D: usize>(x: &Tensor<D>) -> bool {
    x.dtype() == DType::F32 && !x.is_autodiff() && x.device() == Device::flex()
}

/// Runs `f` over `chunk`-sized pieces of `data`, on the rayon pool (in the
/// browser: the threaded module's Web Workers, else the calling thread).
fn for_chunks(data: &mut [f32], chunk: usize, f: impl Fn(usize, &mut [f32]) + Send + Sync) {
    use rayon::prelude::*;
    data.par_chunks_mut(chunk)
        .enumerate()
        .for_each(|(i, c)| f(i, c));
}

/// Exact GELU, `x·(1 + erf(x/√2))/2` (`nn.GELU()`).
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if x.is_autodiff() && x.dtype() == DType::F32 && x.device() == Device::flex() {
        return gelu_recorded(x);
    }
    if !on_host(&x) {
        return activation::gelu(x);
    }
    let device = x.device();
    let mut data = x.into_data();
    let values = data
        .as_mut_slice::<f32>()
        .expect("an f32 tensor reads back as f32");
    // 16 K elements (64 KB) per task: enough work to amortise scheduling.
    for_chunks(values, 1 << 14, |_, c| gelu_slice(c));
    Tensor::from_data(data, &device)
}

/// GELU of a host tensor that carries autodiff, from values and slopes computed
/// here: the tape records `value + (x − x̄)·slope`, where `value = gelu(x)` and
/// `slope = gelu′(x)` are constants and `x̄` is `x` detached, so the second term is
/// exactly 0 and its derivative is the slope. flex's own GELU and its backward
/// evaluate libm `erff` one element at a time on one thread (~15 % of a LiteMedSAM
/// decoder training step, whose upscaling runs GELU on `[B, 32, 256, 256]`).
fn gelu_recorded<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let device = x.device();
    let held = x.clone().detach();
    let mut data = held.clone().into_data();
    let values = data
        .as_mut_slice::<f32>()
        .expect("an f32 tensor reads back as f32");
    let mut slopes = vec![0f32; values.len()];
    {
        use rayon::prelude::*;
        // As `for_chunks`, over both buffers.
        const CHUNK: usize = 1 << 14;
        values
            .par_chunks_mut(CHUNK)
            .zip(slopes.par_chunks_mut(CHUNK))
            .for_each(|(v, s)| gelu_and_slope_slice(v, s));
    }
    let slope = Tensor::from_data(TensorData::new(slopes, held.shape()), &device);
    Tensor::<D>::from_data(data, &device) + (x - held) * slope
}

/// The vector instruction sets the host kernels here may use, widest last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// The target's baseline (SSE2 on x86-64; anything that is not x86-64).
    Baseline,
    /// AVX2 (x86-64).
    Avx2,
    /// AVX-512F (x86-64).
    Avx512,
}

impl Isa {
    pub fn name(self) -> &'static str {
        match self {
            Isa::Baseline => "baseline",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }
}

/// The widest [`Isa`] the processor has, capped by the environment variable
/// `MEDSEG_CPU_ISA` (`avx512`, `avx2` or `baseline`), read once: so one binary
/// can run (and benchmark) the AVX2 code of these kernels on an AVX-512
/// machine. The matrix multiplies (gemm, in flex and in [`linear`]) choose
/// their own kernels: AVX-512 ones only in builds with the `avx512` feature
/// (default on), so `--no-default-features` together with
/// `MEDSEG_CPU_ISA=avx2` runs the whole AVX2 path (BENCHMARKS.md). flex's
/// element-wise ops (macerator) always take the widest.
pub fn isa() -> Isa {
    static ISA: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
    *ISA.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        let detected = if std::arch::is_x86_feature_detected!("avx512f") {
            Isa::Avx512
        } else if std::arch::is_x86_feature_detected!("avx2") {
            Isa::Avx2
        } else {
            Isa::Baseline
        };
        #[cfg(not(target_arch = "x86_64"))]
        let detected = Isa::Baseline;
        let cap = match std::env::var("MEDSEG_CPU_ISA").as_deref() {
            Ok("avx2") => Isa::Avx2,
            Ok("baseline") => Isa::Baseline,
            _ => Isa::Avx512,
        };
        detected.min(cap)
    })
}

/// Defines `fn $name(args)` running `$body` compiled for the widest vectors
/// the processor has (the baseline x86-64 target only allows SSE2; AVX-512 is
/// ~3× faster on these loops). Every version computes the same bits: the
/// kernels use plain IEEE multiplies, adds and divisions, which are never
/// contracted into FMAs.
macro_rules! simd_dispatch {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) $body:block) => {
        $(#[$doc])*
        fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn imp($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512($($arg: $ty),*) {
                    imp($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                fn avx2($($arg: $ty),*) {
                    imp($($arg),*)
                }
                let isa = $crate::model::cpu_kernels::isa();
                if isa >= $crate::model::cpu_kernels::Isa::Avx512 {
                    // SAFETY: `isa` only reports AVX-512 where the processor has AVX-512F.
                    return unsafe { avx512($($arg),*) };
                }
                if isa >= $crate::model::cpu_kernels::Isa::Avx2 {
                    // SAFETY: `isa` only reports AVX2 where the processor has AVX2.
                    return unsafe { avx2($($arg),*) };
                }
            }
            imp($($arg),*)
        }
    };
}

/// Multiply-accumulate count from which a [`linear`] GEMM runs on the rayon
/// pool (flex's threshold for its own matmuls).
const PARALLEL_GEMM: usize = 192 * 192 * 192;

/// A host tensor's flex primitive: its buffer, shared, without a copy.
pub(crate) fn flex_tensor<const D: usize>(t: Tensor<D>) -> burn_flex::FlexTensor {
    t.try_into_primitive::<burn_flex::Flex>()
        .expect("a host tensor is a flex tensor")
}

/// A 2-D f32 view of a flex tensor: the buffer from the view's first element
/// and the strides, which gemm takes as they are. Negative
/// strides (flipped views, never made here) are copied to contiguous first.
struct Strided2 {
    t: burn_flex::FlexTensor,
}

impl Strided2 {
    fn new(t: burn_flex::FlexTensor) -> Self {
        if t.layout().strides().iter().any(|&s| s < 0) {
            return Self {
                t: t.to_contiguous(),
            };
        }
        Self { t }
    }
    fn values(&self) -> &[f32] {
        &self.t.storage::<f32>()[self.t.layout().start_offset()..]
    }
    /// (column, row) strides: gemm's order, as [`Product`] takes them.
    fn strides(&self) -> (isize, isize) {
        let s = self.t.layout().strides();
        (s[1], s[0])
    }
}

/// One f32 product `dst (+)= lhs · rhs` of strided views, in gemm's terms:
/// `lhs` `m × k`, `rhs` `k × n`, `dst` `m × n`, each with its (column, row)
/// strides in elements; `read_dst` accumulates into what `dst` holds.
#[derive(Clone, Copy)]
struct Product {
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_strides: (isize, isize),
    read_dst: bool,
    lhs: *const f32,
    lhs_strides: (isize, isize),
    rhs: *const f32,
    rhs_strides: (isize, isize),
}

// SAFETY: a product's views are only read, except `dst`, and the blocks that
// run on different threads ([`Product::block`]) write disjoint parts of it.
unsafe impl Send for Product {}
unsafe impl Sync for Product {}

impl Product {
    /// The block of rows `r0..r0 + rows` and columns `c0..c0 + cols` of the product.
    fn block(self, (r0, rows): (usize, usize), (c0, cols): (usize, usize)) -> Self {
        let (r0, c0) = (r0 as isize, c0 as isize);
        Self {
            m: rows,
            n: cols,
            dst: self
                .dst
                .wrapping_offset(r0 * self.dst_strides.1 + c0 * self.dst_strides.0),
            lhs: self.lhs.wrapping_offset(r0 * self.lhs_strides.1),
            rhs: self.rhs.wrapping_offset(c0 * self.rhs_strides.0),
            ..self
        }
    }

    /// The product on the calling thread.
    ///
    /// # Safety
    /// Every view must lie inside its buffer; `dst` must be valid for writes
    /// (and reads when `read_dst`) and not overlap the inputs.
    unsafe fn run_here(self) {
        // SAFETY: by the caller.
        unsafe { self.run_with(gemm::Parallelism::None) }
    }

    /// # Safety
    /// As [`Product::run_here`].
    unsafe fn run_with(self, parallelism: gemm::Parallelism) {
        // SAFETY: by the caller. `alpha` (1) only counts where `read_dst`.
        unsafe {
            gemm::gemm(
                self.m,
                self.n,
                self.k,
                self.dst,
                self.dst_strides.0,
                self.dst_strides.1,
                self.read_dst,
                self.lhs,
                self.lhs_strides.0,
                self.lhs_strides.1,
                self.rhs,
                self.rhs_strides.0,
                self.rhs_strides.1,
                1.0,
                1.0,
                false,
                false,
                false,
                parallelism,
            )
        }
    }

    /// The product, on the rayon pool from [`PARALLEL_GEMM`] multiply-adds
    /// on: natively through gemm's own split; in the browser's threaded module
    /// as row blocks, two per thread, each one single-threaded GEMM — gemm's
    /// split ran slower on 2 Web Workers than on one (1024³: 250 vs 163 ms),
    /// row blocks 1.9× faster (83 ms). Every output keeps the same sum either
    /// way (the same kernel over the same `k`).
    ///
    /// # Safety
    /// As [`Product::run_here`].
    unsafe fn run(self) {
        let threads = rayon::current_num_threads();
        if threads == 1 || self.m * self.n * self.k < PARALLEL_GEMM {
            // SAFETY: by the caller.
            return unsafe { self.run_here() };
        }
        #[cfg(not(target_arch = "wasm32"))]
        // SAFETY: by the caller.
        unsafe {
            self.run_with(gemm::Parallelism::Rayon(0))
        }
        #[cfg(target_arch = "wasm32")]
        {
            use rayon::prelude::*;
            let block = self.m.div_ceil(2 * threads).max(1);
            (0..self.m.div_ceil(block)).into_par_iter().for_each(|b| {
                let first = b * block;
                // SAFETY: by the caller; the row blocks are disjoint.
                unsafe {
                    self.block((first, block.min(self.m - first)), (0, self.n))
                        .run_here()
                }
            });
        }
    }
}

/// `x·weight + bias` for `x` `[rows, d_in]`, `weight` `[d_in, d_out]`, on the
/// CPU backend (natively and in the browser). Both inputs are read in place
/// through their strides (no copy, even when shared or a transposed view);
/// [`crate::model::layers::Linear`] keeps its weight contiguous `[d_in, d_out]`
/// on the CPU, the layout gemm needs no
/// serial repacking for (and ~3–5× faster for few-row inputs). flex's matmul
/// zero-fills its output and then copies it into a freshly aligned buffer
/// (`FlexTensor::empty`), two single-threaded passes over every output, and
/// adds the bias in a third; here one GEMM accumulates into a buffer that
/// starts as the bias rows.
pub fn linear(x: Tensor<2>, weight: &Tensor<2>, bias: Option<Tensor<1>>) -> Tensor<2> {
    use rayon::prelude::*;
    let [m, k] = x.dims();
    let n = weight.dims()[1];
    let device = x.device();
    let w = Strided2::new(flex_tensor(weight.clone()));
    let x = Strided2::new(flex_tensor(x));
    let bias = bias.map(|b| Strided2::new(flex_tensor(b.unsqueeze::<2>())));
    let mut out: Vec<f32> = Vec::with_capacity(m * n);
    if let Some(b) = &bias {
        let (bs, _) = b.strides();
        let src = b.values();
        let fill = |row: &mut [std::mem::MaybeUninit<f32>]| {
            if bs == 1 {
                for (o, &v) in row.iter_mut().zip(&src[..n]) {
                    o.write(v);
                }
            } else {
                for (j, o) in row.iter_mut().enumerate() {
                    o.write(src[j * bs as usize]);
                }
            }
        };
        let rows = &mut out.spare_capacity_mut()[..m * n];
        if m * n >= 1 << 16 {
            rows.par_chunks_mut(n.max(1)).for_each(fill);
        } else {
            rows.chunks_mut(n.max(1)).for_each(fill);
        }
    }
    let (xv, wv) = (x.values(), w.values());
    let product = Product {
        m,
        n,
        k,
        dst: out.as_mut_ptr(),
        dst_strides: (1, n as isize),
        read_dst: bias.is_some(),
        lhs: xv.as_ptr(),
        lhs_strides: x.strides(),
        rhs: wv.as_ptr(),
        rhs_strides: w.strides(),
    };
    // Few rows (the mask decoder's prompt tokens, 9 × 256 → 2048): below
    // [`PARALLEL_GEMM`] gemm runs on one thread, while the weight streaming
    // dominates; column blocks on the pool halve it.
    let threads = rayon::current_num_threads();
    let blocks = 2 * threads;
    let macs = m * n * k;
    // SAFETY (both branches): `out` has room for the `m × n` row-major result
    // (initialised with the bias rows when `read_dst`); `x` and `w` are the
    // buffers of `m × k` and `k × n` views with these strides, from their
    // first element; column blocks write disjoint elements.
    if threads > 1 && (1 << 20..PARALLEL_GEMM).contains(&macs) && n >= 32 * blocks {
        let width = n.div_ceil(blocks).next_multiple_of(16);
        (0..n.div_ceil(width)).into_par_iter().for_each(|i| {
            let j0 = i * width;
            unsafe { product.block((0, m), (j0, width.min(n - j0))).run_here() }
        });
    } else {
        unsafe { product.run() };
    }
    // SAFETY: gemm wrote (or accumulated into) every element.
    unsafe { out.set_len(m * n) };
    Tensor::from_data(TensorData::new(out, [m, n]), &device)
}

/// A 1×1 convolution (stride 1, no padding, one group) of an NCHW tensor as
/// one GEMM per image: the input is read in place through its strides (the
/// FPN neck's inputs are NCHW views of Hiera's NHWC maps) and the output is
/// written NCHW-contiguous directly, starting from the bias. flex lowers it to
/// im2col with a contiguous copy of the input and an output transpose, all on
/// the calling thread (~5 % of the medsam2-t512 encoder). `None` where the
/// pixels of the view are not one stride apart (then use the convolution op).
pub fn conv1x1(x: &Tensor<4>, weight: &Tensor<4>, bias: Option<Tensor<1>>) -> Option<Tensor<4>> {
    use rayon::prelude::*;
    let [b, c_in, h, w] = x.dims();
    let c_out = weight.dims()[0];
    let (xf, st, pixel) = strided_pixels(x)?;
    let device = x.device();
    let wf = Strided2::new(flex_tensor(weight.clone().reshape([c_out, c_in])));
    let bias = bias.map(host_values);
    let hw = h * w;
    let mut out: Vec<f32> = Vec::with_capacity(b * c_out * hw);
    if let Some(bias) = &bias {
        out.spare_capacity_mut()[..b * c_out * hw]
            .par_chunks_mut(hw.max(1))
            .enumerate()
            .for_each(|(i, plane)| {
                for o in plane {
                    o.write(bias[i % c_out]);
                }
            });
    }
    let (w_cs, w_rs) = wf.strides();
    let values = &xf.storage::<f32>()[xf.layout().start_offset()..];
    for bi in 0..b {
        // dst `[hw, c_out]` with strides (1, hw) is image `bi`'s NCHW output;
        // lhs `[hw, c_in]` its pixels; rhs `[c_in, c_out]` the weight transposed.
        let product = Product {
            m: hw,
            n: c_out,
            k: c_in,
            dst: out.as_mut_ptr().wrapping_add(bi * c_out * hw),
            dst_strides: (hw as isize, 1),
            read_dst: bias.is_some(),
            lhs: values.as_ptr().wrapping_offset(bi as isize * st[0]),
            lhs_strides: (st[1], pixel),
            rhs: wf.values().as_ptr(),
            rhs_strides: (w_rs, w_cs),
        };
        // SAFETY: the views stay inside `out`, the input's and the weight's buffers.
        unsafe { product.run() };
    }
    // SAFETY: every element is the bias written above plus the product, or
    // (no bias) the product gemm wrote without reading.
    unsafe { out.set_len(b * c_out * hw) };
    Some(Tensor::from_data(
        TensorData::new(out, [b, c_out, h, w]),
        &device,
    ))
}

/// `ConvTranspose2d` with kernel = stride = `k` and no padding (the mask
/// decoder's upscaling) of an NCHW tensor: one GEMM of the pixels (read in
/// place through their strides, e.g. the transformer's token-major keys) by the
/// weight `[C_in, C_out·k·k]`, then each output plane gathered from it with its
/// bias, planes on the rayon pool. `None` where the pixels of the view are not
/// one stride apart.
pub fn conv_transpose_kxk(x: &Tensor<4>, weight: &Tensor<4>, bias: Tensor<1>) -> Option<Tensor<4>> {
    use rayon::prelude::*;
    let [b, c_in, h, w] = x.dims();
    let [_, c_out, k, _] = weight.dims();
    let (xf, st, pixel) = strided_pixels(x)?;
    let device = x.device();
    let n = c_out * k * k;
    let wf = Strided2::new(flex_tensor(weight.clone().reshape([c_in, n])));
    let (w_cs, w_rs) = wf.strides();
    let bias = host_values(bias);
    let hw = h * w;
    let values = &xf.storage::<f32>()[xf.layout().start_offset()..];
    let (oh, ow) = (h * k, w * k);
    let mut out: Vec<f32> = Vec::with_capacity(b * c_out * oh * ow);
    let mut tmp: Vec<f32> = Vec::with_capacity(hw * n);
    for bi in 0..b {
        let product = Product {
            m: hw,
            n,
            k: c_in,
            dst: tmp.as_mut_ptr(),
            dst_strides: (1, n as isize),
            read_dst: false,
            lhs: values.as_ptr().wrapping_offset(bi as isize * st[0]),
            lhs_strides: (st[1], pixel),
            rhs: wf.values().as_ptr(),
            rhs_strides: (w_cs, w_rs),
        };
        // SAFETY: `tmp` has room for the `hw × n` row-major product (not read:
        // `read_dst` is false); lhs is image `bi`'s `[hw, c_in]` pixels, rhs the
        // weight as `[c_in, n]`, inside their buffers.
        unsafe {
            product.run();
            tmp.set_len(hw * n);
        }
        let planes =
            &mut out.spare_capacity_mut()[bi * c_out * oh * ow..(bi + 1) * c_out * oh * ow];
        planes
            .par_chunks_mut(oh * ow)
            .enumerate()
            .for_each(|(co, plane)| {
                for (oy, row) in plane.chunks_exact_mut(ow).enumerate() {
                    let (y, ky) = (oy / k, oy % k);
                    let taps = (co * k + ky) * k;
                    for (xx, out) in row.chunks_exact_mut(k).enumerate() {
                        let at = (y * w + xx) * n + taps;
                        for (o, &t) in out.iter_mut().zip(&tmp[at..at + k]) {
                            o.write(bias[co] + t);
                        }
                    }
                }
            });
    }
    // SAFETY: every output element was written above.
    unsafe { out.set_len(b * c_out * oh * ow) };
    Some(Tensor::from_data(
        TensorData::new(out, [b, c_out, oh, ow]),
        &device,
    ))
}

/// An NCHW map read as rows of pixels: its flex tensor, its strides and the
/// stride from one pixel to the next, or `None` where the pixels are not one
/// stride apart (or a stride is negative).
fn strided_pixels(x: &Tensor<4>) -> Option<(burn_flex::FlexTensor, Vec<isize>, isize)> {
    let [_, _, h, w] = x.dims();
    let xf = flex_tensor(x.clone());
    let st = xf.layout().strides().to_vec();
    let pixel = if w > 1 { st[3] } else { st[2] * w as isize };
    if st.iter().any(|&s| s < 0) || (h > 1 && w > 1 && st[2] != st[3] * w as isize) {
        return None;
    }
    Some((xf, st, pixel))
}

/// A contiguous host tensor's values (a view from offset 0 of exactly its
/// elements), or `None` for views.
fn contiguous_values(t: &burn_flex::FlexTensor) -> Option<&[f32]> {
    t.as_slice::<f32>()
}

/// `[B, C, H, W]` as token-major `[B, H·W, C]`, contiguous: on the host a
/// tiled transpose on the rayon pool (flex copies the permuted view on the
/// calling thread, element by element along a stride of H·W), on a GPU
/// burn's permute + reshape.
pub fn tokens_from_nchw(x: Tensor<4>) -> Tensor<3> {
    let [b, c, h, w] = x.dims();
    if on_host(&x) {
        use rayon::prelude::*;
        const T: usize = 16;
        let hw = h * w;
        let fx = flex_tensor(x.clone());
        let src = fx.as_slice::<f32>();
        if let Some(src) = src {
            let mut out: Vec<f32> = Vec::with_capacity(b * hw * c);
            // One task per image and tile of 16 tokens: each channel's 16
            // values are one contiguous read, each token's row one write.
            out.spare_capacity_mut()[..b * hw * c]
                .par_chunks_mut((hw * c).max(1))
                .enumerate()
                .flat_map(|(bi, image)| {
                    image
                        .par_chunks_mut(T * c.max(1))
                        .enumerate()
                        .map(move |(t, rows)| (bi, t * T, rows))
                })
                .for_each(|(bi, p0, rows)| {
                    let n = rows.len() / c.max(1);
                    for ch in 0..c {
                        let at = (bi * c + ch) * hw + p0;
                        for (p, &v) in src[at..at + n].iter().enumerate() {
                            rows[p * c + ch].write(v);
                        }
                    }
                });
            // SAFETY: the tiles cover every token of every image.
            unsafe { out.set_len(b * hw * c) };
            return Tensor::from_data(TensorData::new(out, [b, hw, c]), &x.device());
        }
    }
    x.permute([0, 2, 3, 1]).reshape([b, h * w, c])
}

/// `a + b` for host tensors of one shape, on the rayon pool and in place in
/// whichever operand is unshared (flex's add runs on one thread into a new
/// buffer: residual and position adds were ~2–3 % of the encoder, serial).
/// Anything else (broadcasts, views, autodiff, other devices) is burn's add.
pub fn add<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> Tensor<D> {
    if a.dims() == b.dims()
        && on_host(&a)
        && on_host(&b)
        && a.dims().iter().product::<usize>() >= 1 << 14
    {
        use rayon::prelude::*;
        const CHUNK: usize = 1 << 14;
        let dims = a.dims();
        let mut fa = flex_tensor(a);
        let mut fb = flex_tensor(b);
        let both = contiguous_values(&fa).is_some() && contiguous_values(&fb).is_some();
        if both {
            let plain = |x: &burn_flex::FlexTensor| {
                x.layout().start_offset() == 0
                    && x.storage::<f32>().len() == x.layout().num_elements()
            };
            let out = if plain(&fa)
                && let Some(dst) = fa.try_storage_mut::<f32>()
            {
                let src = contiguous_values(&fb).expect("checked");
                dst.par_chunks_mut(CHUNK)
                    .zip(src.par_chunks(CHUNK))
                    .for_each(|(d, s)| add_slice(d, s));
                fa
            } else if plain(&fb)
                && let Some(dst) = fb.try_storage_mut::<f32>()
            {
                let src = contiguous_values(&fa).expect("checked");
                dst.par_chunks_mut(CHUNK)
                    .zip(src.par_chunks(CHUNK))
                    .for_each(|(d, s)| add_slice(d, s));
                fb
            } else {
                let (x, y) = (
                    contiguous_values(&fa).expect("checked"),
                    contiguous_values(&fb).expect("checked"),
                );
                let mut out: Vec<f32> = x.to_vec();
                out.par_chunks_mut(CHUNK)
                    .zip(y.par_chunks(CHUNK))
                    .for_each(|(d, s)| add_slice(d, s));
                return Tensor::from_data(TensorData::new(out, dims), &Device::flex());
            };
            return Tensor::from_primitive::<burn_flex::Flex>(out);
        }
        return Tensor::<D>::from_primitive::<burn_flex::Flex>(fa)
            + Tensor::<D>::from_primitive::<burn_flex::Flex>(fb);
    }
    a + b
}

simd_dispatch! {
    /// `d += s`, elementwise.
    fn add_slice(d: &mut [f32], s: &[f32]) {
        for (d, &s) in d.iter_mut().zip(s) {
            *d += s;
        }
    }
}

/// `nn.LayerNorm` over the last dimension of a host tensor: rows on the rayon
/// pool, output written once (flex zero-fills its output on the calling thread
/// first, ~2 % of the encoder). Same arithmetic as flex up to rounding: mean,
/// then the mean of squared deviations, `(x − mean)/√(var + eps)·γ + β`.
/// `None` for autodiff or non-host tensors.
pub(crate) fn layer_norm<const D: usize>(
    x: &Tensor<D>,
    gamma: &Tensor<1>,
    beta: &Tensor<1>,
    eps: f64,
) -> Option<Tensor<D>> {
    use rayon::prelude::*;
    if !(on_host(x) && on_host(gamma) && on_host(beta)) {
        return None;
    }
    let dims = x.dims();
    let d = dims[D - 1];
    let fx = flex_tensor(x.clone());
    let fx = if contiguous_values(&fx).is_some() {
        fx
    } else {
        fx.to_contiguous()
    };
    let src = contiguous_values(&fx).expect("contiguous");
    let g = flex_tensor(gamma.clone());
    let b = flex_tensor(beta.clone());
    let (g, b) = (contiguous_values(&g)?, contiguous_values(&b)?);
    let n = src.len();
    let mut out: Vec<f32> = Vec::with_capacity(n);
    const ROWS: usize = 64;
    out.spare_capacity_mut()[..n]
        .par_chunks_mut(ROWS * d.max(1))
        .zip(src.par_chunks(ROWS * d.max(1)))
        .for_each(|(o, s)| layer_norm_rows(o, s, g, b, eps as f32));
    // SAFETY: every element was written by `layer_norm_rows`.
    unsafe { out.set_len(n) };
    Some(Tensor::from_data(
        TensorData::new(out, dims),
        &Device::flex(),
    ))
}

simd_dispatch! {
    /// Rows of [`layer_norm`].
    fn layer_norm_rows(
        out: &mut [std::mem::MaybeUninit<f32>],
        src: &[f32],
        g: &[f32],
        b: &[f32],
        eps: f32
    ) {
        const L: usize = 16;
        let d = g.len();
        for (o, s) in out.chunks_exact_mut(d).zip(src.chunks_exact(d)) {
            let mut lanes = [0f32; L];
            let mut chunks = s.chunks_exact(L);
            for c in &mut chunks {
                for (a, &x) in lanes.iter_mut().zip(c) {
                    *a += x;
                }
            }
            let sum = chunks.remainder().iter().sum::<f32>() + lanes.iter().sum::<f32>();
            let mean = sum / d as f32;
            let mut lanes = [0f32; L];
            let mut chunks = s.chunks_exact(L);
            for c in &mut chunks {
                for (a, &x) in lanes.iter_mut().zip(c) {
                    *a += (x - mean) * (x - mean);
                }
            }
            let sq = chunks
                .remainder()
                .iter()
                .map(|&x| (x - mean) * (x - mean))
                .sum::<f32>()
                + lanes.iter().sum::<f32>();
            let inv = 1.0 / (sq / d as f32 + eps).sqrt();
            for (((o, &x), &g), &b) in o.iter_mut().zip(s).zip(g).zip(b) {
                o.write((x - mean) * inv * g + b);
            }
        }
    }
}

simd_dispatch! {
    /// [`gelu_f32`] over a slice.
    fn gelu_slice(v: &mut [f32]) {
        // A plain loop: iterator adaptors like `for_each` stay outlined calls
        // compiled for the baseline target.
        for x in v.iter_mut() {
            *x = gelu_f32(*x);
        }
    }
}

simd_dispatch! {
    /// [`gelu_f32`] in place over `v`, and its derivative
    /// `Φ(x) + x·φ(x)` into `slope`.
    fn gelu_and_slope_slice(v: &mut [f32], slope: &mut [f32]) {
        // 1/√(2π), φ's normalisation.
        const PDF: f32 = 0.398_942_3;
        for (x, d) in v.iter_mut().zip(slope.iter_mut()) {
            let a = *x;
            let cdf = 0.5 * (1.0 + erf_f32(a * std::f32::consts::FRAC_1_SQRT_2));
            *d = cdf + a * PDF * exp_f32(at_least(-0.5 * a * a, -87.0));
            *x = gelu_f32(a);
        }
    }
}

#[inline(always)]
fn gelu_f32(x: f32) -> f32 {
    0.5 * x * (1.0 + erf_f32(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// `erf` in f32 without branches or calls, so that loops over it vectorise.
/// Max abs error 9.0e-8 (≤ 2 ulp of the correctly rounded value), checked
/// against f64 `erf` on every f32 in [0, 4.5] (erf is odd, and 1 in f32 beyond).
/// Plain multiplies and adds (no FMA), so every target computes the same bits.
///
/// `|x| < 1`: `x + x·P(x²)`, a degree-6 fit of `erf(x)/x − 1`.
/// `|x| ≥ 1`: `1 − e^(−x²)·R(t)`, `R` a degree-7 fit of `erfc(x)·e^(x²)` in
/// `t = 1/(1 + x/2) − 1/2`, `|x|` clamped to 4 where `erf` rounds to 1.
#[inline(always)]
pub(crate) fn erf_f32(x: f32) -> f32 {
    const P: [f32; 7] = [
        0.12837917,
        -0.37612626,
        0.112836,
        -0.026854444,
        0.005189535,
        -8.020842e-4,
        7.889122e-5,
    ];
    const R: [f32; 8] = [
        0.25539568,
        0.8543717,
        0.96663284,
        0.631827,
        0.059716452,
        -0.2237479,
        -0.0535956,
        0.11901599,
    ];
    let ax = x.abs();
    let s = x * x;
    let mut p = P[6];
    for &c in P[..6].iter().rev() {
        p = p * s + c;
    }
    let small = x + x * p;

    // `ax.min(4.0)` by a comparison, as in [`at_least`].
    let xb = if ax < 4.0 { ax } else { 4.0 };
    let t = 1.0 / (1.0 + 0.5 * xb) - 0.5;
    let mut r = R[7];
    for &c in R[..7].iter().rev() {
        r = r * t + c;
    }
    // `copysign` by bits: wasm has no vector copysign, so LLVM would take the
    // `copysign` call out of the vector loop, one lane at a time.
    let big = 1.0 - exp_f32(-(xb * xb)) * r;
    let big = f32::from_bits((big.to_bits() & 0x7fff_ffff) | (x.to_bits() & 0x8000_0000));
    if ax < 1.0 { small } else { big }
}

/// `v`, or `lo` where `v` is below it (or NaN), as `v.max(lo)` but by a comparison:
/// `f32::max` is IEEE `maxNum`, which wasm has no instruction for, so LLVM calls
/// libm `fmaxf` once per lane inside the vector loop. The comparison is one
/// `maxps` natively and one `f32x4.pmax` in wasm.
#[inline(always)]
fn at_least(v: f32, lo: f32) -> f32 {
    if v > lo { v } else { lo }
}

/// `e^v` for `v` in [-87, 0] (callers clamp), branch-free: Cody–Waite
/// reduction to `r` in [−ln2/2, ln2/2], Cephes' `expf` polynomial, `2^n` by
/// exponent bits. Relative error ~1 ulp.
#[inline(always)]
fn exp_f32(v: f32) -> f32 {
    // Adding 1.5·2^23 rounds to an integer held in the low mantissa bits,
    // subtracting it again gives that integer as a float.
    const ROUND: f32 = 12_582_912.0;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const C: [f32; 6] = [
        1.987_569_1e-4,
        0.001_398_199_9,
        0.008_333_452,
        0.041_665_796,
        0.166_666_66,
        0.5,
    ];
    let shifted = v * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = (v - n * LN2_HI) - n * LN2_LO;
    let mut p = C[0];
    for &c in &C[1..] {
        p = p * r + c;
    }
    let p = p * r * r + r + 1.0;
    // 2^n from the integer bits directly: a float-to-int conversion would not
    // vectorise on the baseline x86-64 target.
    let biased = shifted
        .to_bits()
        .wrapping_sub(ROUND.to_bits())
        .wrapping_add(127);
    p * f32::from_bits(biased << 23)
}

/// `softmax(q·kᵀ/√d + bias)·v` for queries `[B, H, Nq, d]`, keys `[B, H, Nk, d]`
/// and values `[B, H, Nk, dv]`; `bias` `[H, Nq, Nk]` is shared by the batch.
///
/// On the CPU: [`attention_fused`] for few queries or keys, else two gemms on
/// the strided head views around a vectorised softmax ([`attention_gemm`]).
/// flex's own attention evaluates libm `expf`
/// one score at a time, which made softmax most of the attention time
/// (~20 % of the TinyViT encoder, memory attention's 100 M+ scores per layer).
pub fn attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, bias: Option<Tensor<3>>) -> Tensor<4> {
    let [b, h, nq, d] = q.dims();
    let nk = k.dims()[2];
    let host = on_host(&q) && on_host(&k) && on_host(&v) && bias.as_ref().is_none_or(on_host);
    if !host {
        let bias = bias.map(|t| t.unsqueeze::<4>().expand([b, h, nq, nk]));
        return burn::tensor::module::attention(
            q,
            k,
            v,
            None,
            bias,
            burn::tensor::ops::AttentionModuleOptions::default(),
        );
    }
    let scale = (1.0 / (d as f64).sqrt()) as f32;
    if nq.min(nk) <= FUSED_MAX_SIDE {
        return attention_fused(q, k, v, bias, scale);
    }
    attention_gemm(q, k, v, bias, scale)
}

/// Most scores per task of [`attention_gemm`] (16 MB): memory attention's
/// 1024 queries × ~7 K keys would otherwise hold 29 MB per head.
const TASK_SCORES: usize = 1 << 22;

/// [`attention`] on the CPU: per (batch, head, block of queries), one
/// gemm of the strided query and key views into a scratch score block (no
/// zero-fill, no realignment copy as flex's matmul makes), the vectorised
/// softmax in place, and one gemm of the probabilities by the values written
/// straight into a `[B, Nq, H, dv]` buffer. Returns its `[B, H, Nq, dv]` view,
/// so merging the heads back copies nothing. Tasks run on the rayon pool, each
/// gemm on one thread.
fn attention_gemm(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    bias: Option<Tensor<3>>,
    scale: f32,
) -> Tensor<4> {
    use rayon::prelude::*;
    let (q, k, v, bias, [b, h, nq, nk, d, dv], device) = host_attention(q, k, v, bias);
    // As few query blocks as keep every thread busy (each task packs its keys
    // and values for gemm once), within the score budget.
    let per_head = (4 * rayon::current_num_threads()).div_ceil(b * h).max(1);
    let block = nq
        .div_ceil(per_head)
        .min(TASK_SCORES / nk.max(1))
        .clamp(1, nq.max(1));
    let blocks = nq.div_ceil(block);
    let mut out: Vec<f32> = Vec::with_capacity(b * nq * h * dv);
    let dst = SharedOut(out.as_mut_ptr());
    let task = |t: usize| {
        let (bh, blk) = (t / blocks, t % blocks);
        let (bi, hi) = (bh / h, bh % h);
        let start = blk * block;
        let len = block.min(nq - start);
        let mut scores: Vec<f32> = Vec::with_capacity(len * nk);
        let queries = q.rows(bi, hi, nq, d);
        let keys = k.rows(bi, hi, nk, d);
        let values = v.rows(bi, hi, nk, dv);
        // SAFETY: `scores` has room for `len × nk` (written, not read); the
        // query, key and value rows are inside their views' buffers; the
        // output rows `(bi, start.., hi)` are this task's own.
        unsafe {
            Product {
                m: len,
                n: nk,
                k: d,
                dst: scores.as_mut_ptr(),
                dst_strides: (1, nk as isize),
                read_dst: false,
                lhs: queries.as_ptr().add(start * q.s[2]),
                lhs_strides: (1, q.s[2] as isize),
                rhs: keys.as_ptr(),
                rhs_strides: (k.s[2] as isize, 1),
            }
            .run_here();
            scores.set_len(len * nk);
        }
        let rows = BiasRows {
            bias: bias.as_deref().unwrap_or(&[]),
            heads: h,
            nq,
            start,
            len,
        };
        softmax_rows(&mut scores, nk, scale, &rows, bh * len);
        // SAFETY: as above.
        unsafe {
            Product {
                m: len,
                n: dv,
                k: nk,
                dst: dst.at(((bi * nq + start) * h + hi) * dv),
                dst_strides: (1, (h * dv) as isize),
                read_dst: false,
                lhs: scores.as_ptr(),
                lhs_strides: (1, nk as isize),
                rhs: values.as_ptr(),
                rhs_strides: (1, v.s[2] as isize),
            }
            .run_here();
        }
    };
    (0..b * h * blocks).into_par_iter().for_each(task);
    // SAFETY: the tasks cover every (batch, query, head) row of `out`.
    unsafe { out.set_len(b * nq * h * dv) };
    Tensor::<4>::from_data(TensorData::new(out, [b, nq, h, dv]), &device).swap_dims(1, 2)
}

/// Attentions whose query or key count is at most this go through
/// [`attention_fused`] (the mask decoder's prompt tokens, 9 or so, against
/// 1024 image tokens and back; Hiera's 4×4 windows).
const FUSED_MAX_SIDE: usize = 16;

/// A pointer that rayon tasks write disjoint parts through.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: the tasks of `attention_fused` write disjoint elements.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// The element `i` on (a method, so closures capture the whole `Sync` wrapper).
    ///
    /// # Safety
    /// `i` must be inside the buffer.
    unsafe fn at(self, i: usize) -> *mut f32 {
        // SAFETY: by the caller.
        unsafe { self.0.add(i) }
    }
}

/// What the host attention kernels read: the strided query, key and value
/// views, the bias rows on the host, the sizes `[b, h, nq, nk, d, dv]` (batch,
/// heads, queries, keys, key and value channels) and the device.
type HostAttention = (Heads, Heads, Heads, Option<Vec<f32>>, [usize; 6], Device);

fn host_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    bias: Option<Tensor<3>>,
) -> HostAttention {
    let [b, h, nq, d] = q.dims();
    let (nk, dv) = (k.dims()[2], v.dims()[3]);
    let device = q.device();
    let sizes = [b, h, nq, nk, d, dv];
    let (q, k, v) = (Heads::new(q), Heads::new(k), Heads::new(v));
    (q, k, v, bias.map(host_values), sizes, device)
}

/// An f32 tensor's values, copied to a vector.
fn host_values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .try_into_vec::<f32>()
        .expect("an f32 tensor reads back as f32")
}

/// A 4-D f32 view whose last dimension is contiguous, with its strides.
struct Heads {
    t: burn_flex::FlexTensor,
    s: [usize; 3],
}

impl Heads {
    fn new(t: Tensor<4>) -> Self {
        let mut t = flex_tensor(t);
        let dims = t.layout().shape().to_vec();
        let ok = |st: &[isize]| st.iter().all(|&s| s >= 0) && (dims[3] <= 1 || st[3] == 1);
        if !ok(t.layout().strides()) {
            t = t.to_contiguous();
        }
        let st = t.layout().strides();
        let s = [st[0] as usize, st[1] as usize, st[2] as usize];
        Self { t, s }
    }
    /// Rows `0..n` of `(b, h)` (stride `s[2]`), the last `len` long.
    #[inline(always)]
    fn rows(&self, b: usize, h: usize, n: usize, len: usize) -> &[f32] {
        let at = self.t.layout().start_offset() + b * self.s[0] + h * self.s[1];
        let end = if n == 0 {
            at
        } else {
            at + (n - 1) * self.s[2] + len
        };
        &self.t.storage::<f32>()[at..end]
    }
}

/// [`attention`] in one pass per (batch, head): keys transposed once into a
/// scratch `[d, Nk]` block, then per query the scores (vectorised over keys),
/// the softmax and the weighted sum of values (vectorised over channels),
/// written straight into a `[B, Nq, H, dv]` buffer. Returns its `[B, H, Nq, dv]`
/// view, so that merging the heads back (`swap_dims(1, 2)` + `reshape`) copies
/// nothing. No score tensor, no zero-filled matmul outputs, no strided copies:
/// for the mask decoder's few-token attentions those cost far more than the
/// arithmetic.
fn attention_fused(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    bias: Option<Tensor<3>>,
    scale: f32,
) -> Tensor<4> {
    use rayon::prelude::*;
    let (q, k, v, bias, [b, h, nq, nk, d, dv], device) = host_attention(q, k, v, bias);
    let mut out = vec![0f32; b * nq * h * dv];
    let dst = SharedOut(out.as_mut_ptr());
    let g = ColDims {
        nq,
        nk,
        d,
        dv,
        scale,
    };
    let task = |bh: usize| {
        let (bi, hi) = (bh / h, bh % h);
        if nk <= FUSED_MAX_SIDE && nq >= 4 * FUSED_MAX_SIDE {
            let mut qt = vec![0f32; d * nq];
            transpose_rows(q.rows(bi, hi, nq, d), q.s[2], nq, d, &mut qt);
            let mut scratch = vec![0f32; (nk + 2) * nq];
            let mut ot = vec![0f32; dv * nq];
            let bias_h = bias
                .as_deref()
                .map(|bs| &bs[hi * nq * nk..(hi + 1) * nq * nk]);
            attend_cols(
                &qt,
                (k.rows(bi, hi, nk, d), k.s[2]),
                (v.rows(bi, hi, nk, dv), v.s[2]),
                bias_h,
                &g,
                &mut scratch,
                &mut ot,
            );
            // Back to rows, 16 queries at a time: each channel's 16 values are
            // one contiguous read (a walk down a column, `nq` floats apart,
            // conflicts in the cache on every element).
            for i0 in (0..nq).step_by(16) {
                let i1 = (i0 + 16).min(nq);
                for c in 0..dv {
                    for (i, &x) in (i0..i1).zip(&ot[c * nq + i0..c * nq + i1]) {
                        // SAFETY: `(bi, i, hi)` is this task's own row of `out`.
                        unsafe { *dst.at(((bi * nq + i) * h + hi) * dv + c) = x };
                    }
                }
            }
            return;
        }
        let mut kt = vec![0f32; d * nk];
        transpose_rows(k.rows(bi, hi, nk, d), k.s[2], nk, d, &mut kt);
        let (queries, qs) = (q.rows(bi, hi, nq, d), q.s[2]);
        let mut scores = vec![0f32; nk];
        let mut acc = vec![0f32; dv];
        let v_rows = v.rows(bi, hi, nk, dv);
        for i in 0..nq {
            let bias_row = bias
                .as_deref()
                .map(|bs| &bs[(hi * nq + i) * nk..(hi * nq + i + 1) * nk]);
            attend_row(
                &queries[i * qs..i * qs + d],
                &kt,
                (v_rows, v.s[2]),
                bias_row,
                scale,
                &mut scores,
                &mut acc,
            );
            // SAFETY: `(bi, i, hi)` is this task's own row of `out`, which
            // holds `b·nq·h·dv` elements.
            unsafe {
                let p = dst.at(((bi * nq + i) * h + hi) * dv);
                std::ptr::copy_nonoverlapping(acc.as_ptr(), p, dv);
            }
        }
    };
    if b * h > 1 && b * h * nq * nk * (d + dv) >= 1 << 15 {
        (0..b * h).into_par_iter().for_each(task);
    } else {
        (0..b * h).for_each(task);
    }
    Tensor::<4>::from_data(TensorData::new(out, [b, nq, h, dv]), &device).swap_dims(1, 2)
}

/// `dst[c·n + j] = src[j·stride + c]` for `j < n`, `c < d`: rows to columns in
/// tiles of 16 rows, so that both sides stay within a few cache lines (a plain
/// column walk stores with a stride of `n` floats, 4 KB for 1024 keys, and
/// every store conflicts in the cache).
fn transpose_rows(src: &[f32], stride: usize, n: usize, d: usize, dst: &mut [f32]) {
    const T: usize = 16;
    for j0 in (0..n).step_by(T) {
        let j1 = (j0 + T).min(n);
        for c in 0..d {
            let out = &mut dst[c * n + j0..c * n + j1];
            for (jj, o) in out.iter_mut().enumerate() {
                *o = src[(j0 + jj) * stride + c];
            }
        }
    }
}

simd_dispatch! {
    /// One query row of [`attention_fused`]: `acc = softmax(q·kᵀ·scale + bias)·v`,
    /// `kt` the `[d, Nk]` transposed keys, `v` the values (value `j` at `j·stride`).
    fn attend_row(
        q: &[f32],
        kt: &[f32],
        v: (&[f32], usize),
        bias: Option<&[f32]>,
        scale: f32,
        scores: &mut [f32],
        acc: &mut [f32]
    ) {
        let nk = scores.len();
        let dv = acc.len();
        let (v, v_stride) = v;
        // Plain loops throughout (see `softmax_rows`), no reductions across
        // lanes except the lane-wise max and sum, so every ISA computes the
        // same bits.
        for s in scores.iter_mut() {
            *s = 0.0;
        }
        for (c, &qc) in q.iter().enumerate() {
            let row = &kt[c * nk..(c + 1) * nk];
            for (s, &kv) in scores.iter_mut().zip(row) {
                *s += qc * kv;
            }
        }
        let inv = exp_scores(scores, scale, bias);
        for a in acc.iter_mut() {
            *a = 0.0;
        }
        for (j, &p) in scores.iter().enumerate() {
            let row = &v[j * v_stride..j * v_stride + dv];
            for (a, &x) in acc.iter_mut().zip(row) {
                *a += p * x;
            }
        }
        for a in acc.iter_mut() {
            *a *= inv;
        }
    }
}

/// Sizes of one [`attend_cols`] call.
struct ColDims {
    nq: usize,
    nk: usize,
    d: usize,
    dv: usize,
    scale: f32,
}

simd_dispatch! {
    /// [`attention_fused`] for one (batch, head) with few keys and many
    /// queries (the mask decoder's image→token attention: 1024 queries, ~9
    /// keys): query-major throughout (`[Nk, Nq]` scores), so every loop runs
    /// along the queries and vectorises. `qt` is `[d, Nq]`; key/value row `j`
    /// at `j·stride`; `bias` `[Nq, Nk]` if any. Leaves `[dv, Nq]` in `ot`;
    /// `s` is `Nk·Nq` + `2·Nq` scratch.
    fn attend_cols(
        qt: &[f32],
        k: (&[f32], usize),
        v: (&[f32], usize),
        bias: Option<&[f32]>,
        g: &ColDims,
        s: &mut [f32],
        ot: &mut [f32]
    ) {
        let (nq, nk) = (g.nq, g.nk);
        let (k, ks) = k;
        let (v, vs) = v;
        let (scores, rest) = s.split_at_mut(nk * nq);
        let (max, sum) = rest.split_at_mut(nq);
        for (j, row) in scores.chunks_exact_mut(nq).enumerate() {
            for x in row.iter_mut() {
                *x = 0.0;
            }
            for c in 0..g.d {
                let kc = k[j * ks + c];
                for (x, &q) in row.iter_mut().zip(&qt[c * nq..(c + 1) * nq]) {
                    *x += kc * q;
                }
            }
            match bias {
                Some(b) => {
                    for (i, x) in row.iter_mut().enumerate() {
                        *x = *x * g.scale + b[i * nk + j];
                    }
                }
                None => {
                    for x in row.iter_mut() {
                        *x *= g.scale;
                    }
                }
            }
        }
        for m in max.iter_mut() {
            *m = f32::NEG_INFINITY;
        }
        for row in scores.chunks_exact(nq) {
            for (m, &x) in max.iter_mut().zip(row) {
                *m = if x > *m { x } else { *m };
            }
        }
        for t in sum.iter_mut() {
            *t = 0.0;
        }
        for row in scores.chunks_exact_mut(nq) {
            for ((x, &m), t) in row.iter_mut().zip(max.iter()).zip(sum.iter_mut()) {
                *x = exp_f32(at_least(*x - m, -87.0));
                *t += *x;
            }
        }
        for t in sum.iter_mut() {
            *t = 1.0 / *t;
        }
        for (c, orow) in ot.chunks_exact_mut(nq).enumerate().take(g.dv) {
            for o in orow.iter_mut() {
                *o = 0.0;
            }
            for (j, row) in scores.chunks_exact(nq).enumerate() {
                let vc = v[j * vs + c];
                for (o, &p) in orow.iter_mut().zip(row) {
                    *o += p * vc;
                }
            }
            for (o, &inv) in orow.iter_mut().zip(sum.iter()) {
                *o *= inv;
            }
        }
    }
}

/// Where the bias row of a score row is: score rows run over
/// `[B, H, len]` (queries `start..start + len` of `nq`), bias rows over `[H, nq]`.
struct BiasRows<'a> {
    /// Empty when there is no bias.
    bias: &'a [f32],
    heads: usize,
    nq: usize,
    start: usize,
    len: usize,
}

impl BiasRows<'_> {
    #[inline(always)]
    fn row(&self, r: usize, n: usize) -> Option<&[f32]> {
        if self.bias.is_empty() {
            return None;
        }
        let head = (r / self.len) % self.heads;
        let at = (head * self.nq + self.start + r % self.len) * n;
        Some(&self.bias[at..at + n])
    }
}

/// In place, `s ← exp(s·scale + bias − max)` over one row of scores; returns
/// `1 / Σ`, the factor that normalises the row. Inlined into the dispatched
/// kernels that call it, so it is compiled for their instruction set; plain
/// loops and lane-wise maxima and sums, so that they vectorise and every ISA
/// computes the same bits.
#[inline(always)]
fn exp_scores(row: &mut [f32], scale: f32, bias: Option<&[f32]>) -> f32 {
    const L: usize = 16;
    match bias {
        Some(b) => {
            for (x, &b) in row.iter_mut().zip(b) {
                *x = *x * scale + b;
            }
        }
        None => {
            for x in row.iter_mut() {
                *x *= scale;
            }
        }
    }
    let mut lanes = [f32::NEG_INFINITY; L];
    let mut chunks = row.chunks_exact(L);
    for c in &mut chunks {
        for (m, &x) in lanes.iter_mut().zip(c) {
            *m = if x > *m { x } else { *m };
        }
    }
    let max = chunks
        .remainder()
        .iter()
        .chain(&lanes)
        .fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m });
    let mut sums = [0f32; L];
    let mut chunks = row.chunks_exact_mut(L);
    for c in &mut chunks {
        for (s, x) in sums.iter_mut().zip(c) {
            *x = exp_f32(at_least(*x - max, -87.0));
            *s += *x;
        }
    }
    let mut sum = 0f32;
    for x in chunks.into_remainder() {
        *x = exp_f32(at_least(*x - max, -87.0));
        sum += *x;
    }
    1.0 / (sum + sums.iter().sum::<f32>())
}

simd_dispatch! {
    /// In place, row by row: `softmax(s·scale + bias)` over rows of `n`;
    /// `first` is the index of the first row (for its bias row).
    fn softmax_rows(rows: &mut [f32], n: usize, scale: f32, bias: &BiasRows, first: usize) {
        for (i, row) in rows.chunks_exact_mut(n).enumerate() {
            // Plain loops throughout: iterator adaptors like `for_each` stay
            // outlined calls compiled for the baseline target.
            let inv = exp_scores(row, scale, bias.row(first + i, n));
            for x in row.iter_mut() {
                *x *= inv;
            }
        }
    }
}

/// `k×k` max pooling with stride `k` of an NHWC map (floor mode, as
/// `F.max_pool2d(kernel_size=k, stride=k)`); NaN propagates as in torch.
pub fn max_pool_nhwc(x: Tensor<4>, k: usize) -> Tensor<4> {
    if !on_host(&x) {
        let x = x.permute([0, 3, 1, 2]);
        let x = max_pool2d(x, MaxPoolOptions::new([k, k]).with_stride([k, k]));
        return x.permute([0, 2, 3, 1]);
    }
    let [b, h, w, c] = x.dims();
    let (oh, ow) = (h / k, w / k);
    let device = x.device();
    let data = x.into_data();
    let src = data
        .as_slice::<f32>()
        .expect("an f32 tensor reads back as f32");
    let mut out = vec![0f32; b * oh * ow * c];
    if !out.is_empty() {
        // One output row per task: row `i` is image `i / oh`, output row `i % oh`.
        for_chunks(&mut out, ow * c, |i, row| {
            let (bi, oy) = (i / oh, i % oh);
            for (ox, dst) in row.chunks_exact_mut(c).enumerate() {
                let at = |y: usize, x: usize| ((bi * h + oy * k + y) * w + ox * k + x) * c;
                dst.copy_from_slice(&src[at(0, 0)..at(0, 0) + c]);
                for y in 0..k {
                    for x in 0..k {
                        let s = &src[at(y, x)..at(y, x) + c];
                        // A select rather than a conditional store, so it vectorises.
                        for (d, &v) in dst.iter_mut().zip(s) {
                            *d = if v > *d || v.is_nan() { v } else { *d };
                        }
                    }
                }
            }
        });
    }
    Tensor::from_data(TensorData::new(out, [b, oh, ow, c]), &device)
}

/// Rotary encoding on the host (see [`crate::model::position_encoding::AxialRope`]):
/// in each row `t < n_rot` of `x` `[B, H, N, D]`, the pair `(x[2i], x[2i+1])`
/// turns by the angle of `cos`/`sin` `[len, D/2]` row `t mod len`, with the
/// same arithmetic as the tensor version: `(re·c − im·s, re·s + im·c)`.
pub(crate) fn rotate_pairs(
    x: Tensor<4>,
    cos: &Tensor<2>,
    sin: &Tensor<2>,
    n_rot: usize,
) -> Tensor<4> {
    let [_, _, n, d] = x.dims();
    let [len, half] = cos.dims();
    let host = |t: &Tensor<2>| {
        t.to_data()
            .try_into_vec::<f32>()
            .expect("an f32 tensor reads back as f32")
    };
    let (cos, sin) = (host(cos), host(sin));
    let device = x.device();
    let mut data = x.into_data();
    let values = data
        .as_mut_slice::<f32>()
        .expect("an f32 tensor reads back as f32");
    const ROWS: usize = 256;
    for_chunks(values, ROWS * d, |i, rows| {
        for (r, row) in rows.chunks_exact_mut(d).enumerate() {
            let t = (i * ROWS + r) % n;
            if t >= n_rot {
                continue;
            }
            let at = (t % len) * half;
            let (c, s) = (&cos[at..at + half], &sin[at..at + half]);
            for ((pair, &c), &s) in row.chunks_exact_mut(2).zip(c).zip(s) {
                let (re, im) = (pair[0], pair[1]);
                pair[0] = re * c - im * s;
                pair[1] = re * s + im * c;
            }
        }
    });
    Tensor::from_data(data, &device)
}

/// Depthwise `k×k` convolution (`groups = C`) of an NHWC map: `weight`
/// `[C, 1, k, k]` and `bias` `[C]` as torch stores them, zero padding.
pub fn depthwise_conv_nhwc(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    stride: usize,
    padding: usize,
) -> Tensor<4> {
    let [c, _, k, _] = weight.dims();
    if !(on_host(&x) && on_host(&weight) && bias.as_ref().is_none_or(on_host)) {
        let options = ConvOptions::new([stride; 2], [padding; 2], [1, 1], c);
        return conv2d(x.permute([0, 3, 1, 2]), weight, bias, options).permute([0, 2, 3, 1]);
    }
    let [b, h, w, _] = x.dims();
    let geometry = DepthwiseGeometry {
        h,
        w,
        c,
        k,
        stride,
        padding,
        oh: (h + 2 * padding - k) / stride + 1,
        ow: (w + 2 * padding - k) / stride + 1,
    };
    let host = |t: TensorData| {
        t.try_into_vec::<f32>()
            .expect("an f32 tensor reads back as f32")
    };
    // Taps first, channels last (`[k·k, C]`), so each tap is one vector row.
    let per_channel = host(weight.into_data());
    let mut taps = vec![0f32; k * k * c];
    for (ch, w) in per_channel.chunks_exact(k * k).enumerate() {
        for (t, &v) in w.iter().enumerate() {
            taps[t * c + ch] = v;
        }
    }
    let bias = bias.map_or_else(|| vec![0f32; c], |t| host(t.into_data()));
    let device = x.device();
    let data = x.into_data();
    let src = data
        .as_slice::<f32>()
        .expect("an f32 tensor reads back as f32");
    let (oh, ow) = (geometry.oh, geometry.ow);
    let mut out = vec![0f32; b * oh * ow * c];
    if !out.is_empty() {
        // Bands of output rows per task, walked in column tiles (see
        // `depthwise_rows`).
        for_chunks(&mut out, BAND * ow * c, |i, rows| {
            depthwise_rows(rows, src, &taps, &bias, &geometry, i * BAND)
        });
    }
    Tensor::from_data(TensorData::new(out, [b, oh, ow, c]), &device)
}

/// Output rows per task of [`depthwise_conv_nhwc`], and output columns per
/// tile: a band's tile reads `(BAND + k − 1) × (TILE + k − 1)` input pixels,
/// ~180 KB at 256 channels, which stay in L2 while neighbouring output rows
/// reuse them (row by row, a 256×256×256 map re-read its input rows from
/// memory and ran 2× slower than flex's NCHW kernel).
const BAND: usize = 8;
const TILE: usize = 16;

/// Shapes of a [`depthwise_conv_nhwc`].
struct DepthwiseGeometry {
    h: usize,
    w: usize,
    c: usize,
    k: usize,
    stride: usize,
    padding: usize,
    oh: usize,
    ow: usize,
}

simd_dispatch! {
    /// Output rows `first..` (row `i` is image `i / oh`, row `i % oh`) of a
    /// depthwise convolution.
    fn depthwise_rows(
        rows: &mut [f32],
        src: &[f32],
        taps: &[f32],
        bias: &[f32],
        g: &DepthwiseGeometry,
        first: usize
    ) {
        const L: usize = 16;
        const P: usize = 4;
        let c = g.c;
        // Input coordinates are shifted by the padding to stay unsigned.
        let in_range = |o: usize, t: usize, n: usize| {
            let at = o * g.stride + t;
            (at >= g.padding && at - g.padding < n).then(|| at - g.padding)
        };
        let n_rows = rows.len() / (g.ow * c);
        // (input offset, tap offset) of the taps inside the image.
        let mut live = Vec::with_capacity(g.k * g.k);
        for tile in (0..g.ow).step_by(TILE) {
            for r in 0..n_rows {
                let (bi, oy) = ((first + r) / g.oh, (first + r) % g.oh);
                let end = (tile + TILE).min(g.ow);
                let mut ox = tile;
                // Four pixels at a time where every tap is inside the image:
                // each tap's weights are loaded once for the four.
                let full_rows = in_range(oy, 0, g.h).is_some() && in_range(oy, g.k - 1, g.h).is_some();
                while full_rows
                    && ox + P <= end
                    && in_range(ox, 0, g.w).is_some()
                    && in_range(ox + P - 1, g.k - 1, g.w).is_some()
                {
                    let iy0 = oy * g.stride - g.padding;
                    let ix0 = ox * g.stride - g.padding;
                    let mut c0 = 0;
                    while c0 + L <= c {
                        let mut acc = [[0f32; L]; P];
                        for a in acc.iter_mut() {
                            a.copy_from_slice(&bias[c0..c0 + L]);
                        }
                        for ky in 0..g.k {
                            for kx in 0..g.k {
                                let t = (ky * g.k + kx) * c + c0;
                                let w = &taps[t..t + L];
                                for (p, a) in acc.iter_mut().enumerate() {
                                    let at = ((bi * g.h + iy0 + ky) * g.w + ix0 + p * g.stride + kx) * c + c0;
                                    let s = &src[at..at + L];
                                    for j in 0..L {
                                        a[j] += s[j] * w[j];
                                    }
                                }
                            }
                        }
                        for (p, a) in acc.iter().enumerate() {
                            let d = (r * g.ow + ox + p) * c + c0;
                            rows[d..d + L].copy_from_slice(a);
                        }
                        c0 += L;
                    }
                    if c0 == c {
                        ox += P;
                    } else {
                        // Channels that do not fill a block: the general path below.
                        break;
                    }
                }
                for ox in ox..end {
                    live.clear();
                    for ky in 0..g.k {
                        let Some(iy) = in_range(oy, ky, g.h) else { continue };
                        for kx in 0..g.k {
                            let Some(ix) = in_range(ox, kx, g.w) else { continue };
                            live.push((((bi * g.h + iy) * g.w + ix) * c, (ky * g.k + kx) * c));
                        }
                    }
                    let dst = &mut rows[(r * g.ow + ox) * c..(r * g.ow + ox + 1) * c];
                    // Channel blocks accumulate over all taps in registers.
                    let mut c0 = 0;
                    while c0 + L <= c {
                        let mut acc: [f32; L] = bias[c0..c0 + L].try_into().expect("block");
                        for &(at, t) in &live {
                            let (s, w) = (&src[at + c0..at + c0 + L], &taps[t + c0..t + c0 + L]);
                            for j in 0..L {
                                acc[j] += s[j] * w[j];
                            }
                        }
                        dst[c0..c0 + L].copy_from_slice(&acc);
                        c0 += L;
                    }
                    for ch in c0..c {
                        let mut acc = bias[ch];
                        for &(at, t) in &live {
                            acc += src[at + ch] * taps[t + ch];
                        }
                        dst[ch] = acc;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Autodiff tensors take burn's ops, whose gradients reach the inputs: the
    /// host kernels would return fresh tensors outside the graph.
    #[test]
    fn autodiff_tensors_keep_their_gradients() {
        let device = Device::flex().autodiff();
        let x = Tensor::<4>::from_data(
            TensorData::new(
                (0..32).map(|i| i as f32 / 8.0 - 2.0).collect(),
                [1, 2, 4, 4],
            ),
            &device,
        )
        .require_grad();
        assert!(!on_host(&x));
        let q = x.clone().reshape([1, 2, 4, 4]);
        let y = attention(q.clone(), q.clone(), q, None);
        let loss = (gelu(y) + max_pool_nhwc(x.clone(), 2).sum().unsqueeze()).sum();
        let grads = loss.backward();
        let g = x.grad(&grads).expect("a gradient for x");
        let g = g.into_data().try_into_vec::<f32>().expect("f32");
        assert!(g.iter().any(|v| *v != 0.0), "all-zero gradient");
    }

    /// GELU on autodiff tensors (values and slopes from the host kernel) gives
    /// burn's values and gradients.
    #[test]
    fn gelu_gradient_matches_burn() {
        let device = Device::flex().autodiff();
        let values: Vec<f32> = (0..2000).map(|i| i as f32 / 100.0 - 10.0).collect();
        let run = |f: fn(Tensor<2>) -> Tensor<2>| {
            let x = Tensor::<2>::from_data(TensorData::new(values.clone(), [40, 50]), &device)
                .require_grad();
            let y = f(x.clone());
            // A weight per element, so that the gradient is not just the slope.
            let w = Tensor::<2>::from_data(
                TensorData::new((0..2000).map(|i| (i % 7) as f32 - 3.0).collect(), [40, 50]),
                &device,
            );
            let grads = (y.clone() * w).sum().backward();
            let g = x.grad(&grads).expect("a gradient for x").into_data();
            (y.into_data(), g)
        };
        let (ours, ours_grad) = run(gelu);
        let (burn, burn_grad) = run(activation::gelu);
        let tol = burn::tensor::Tolerance::absolute(1e-6);
        ours.assert_approx_eq::<f32>(&burn, tol);
        ours_grad.assert_approx_eq::<f32>(&burn_grad, tol);
    }

    /// f64 `erf`: Maclaurin series below 2.5, Lentz continued fraction for
    /// `erfc` above (both far more accurate than the f32 under test).
    fn erf_f64(x: f64) -> f64 {
        let ax = x.abs();
        let r = if ax < 2.5 {
            let (mut term, mut sum, mut n) = (ax, ax, 0.0);
            while term.abs() > 1e-17 {
                n += 1.0;
                term *= -ax * ax / n;
                sum += term / (2.0 * n + 1.0);
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            // erfc(x) = exp(-x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …))))
            let mut f = ax;
            for k in (1..200).rev() {
                f = ax + (k as f64 / 2.0) / f;
            }
            1.0 - (-ax * ax).exp() / (std::f64::consts::PI.sqrt() * f)
        };
        r.copysign(x)
    }

    #[test]
    fn erf_matches_f64_reference() {
        let mut max_err = 0f64;
        for i in -600_000..=600_000 {
            let x = i as f32 * 1e-5;
            let err = (erf_f32(x) as f64 - erf_f64(x as f64)).abs();
            max_err = max_err.max(err);
        }
        assert!(max_err < 1e-7, "max abs error {max_err:e}");
        assert_eq!(erf_f32(0.0), 0.0);
        assert_eq!(erf_f32(10.0), 1.0);
        assert_eq!(erf_f32(-f32::INFINITY), -1.0);
    }

    /// Every host attention path (few queries, few keys, gemm) on strided head
    /// views, with and without a bias, gives burn's attention.
    #[test]
    fn attention_paths_match_burn() {
        let device = Device::flex();
        let t = |dims: [usize; 4], seed: usize| {
            let n: usize = dims.iter().product();
            Tensor::<4>::from_data(
                TensorData::new(
                    (0..n)
                        .map(|i| (((i + seed) * 7919 % 241) as f32 - 120.0) / 60.0)
                        .collect(),
                    dims,
                ),
                &device,
            )
        };
        for (b, h, nq, nk, d) in [(2, 3, 9, 40, 8), (1, 2, 70, 5, 8), (2, 2, 37, 45, 16)] {
            // `[B, N, H, d]` buffers seen as `[B, H, N, d]`, as the models' heads are.
            let q = t([b, nq, h, d], 1).swap_dims(1, 2);
            let k = t([b, nk, h, d], 2).swap_dims(1, 2);
            let v = t([b, nk, h, d], 3).swap_dims(1, 2);
            let bias = Tensor::<3>::from_data(
                TensorData::new(
                    (0..h * nq * nk)
                        .map(|i| (i % 13) as f32 / 13.0 - 0.5)
                        .collect(),
                    [h, nq, nk],
                ),
                &device,
            );
            for bias in [None, Some(bias)] {
                let ours = attention(q.clone(), k.clone(), v.clone(), bias.clone());
                let burn = burn::tensor::module::attention(
                    q.clone(),
                    k.clone(),
                    v.clone(),
                    None,
                    bias.map(|t| t.unsqueeze::<4>().expand([b, h, nq, nk])),
                    burn::tensor::ops::AttentionModuleOptions::default(),
                );
                ours.into_data().assert_approx_eq::<f32>(
                    &burn.into_data(),
                    burn::tensor::Tolerance::absolute(1e-5),
                );
            }
        }
    }

    #[test]
    fn host_kernels_match_burn_ops() {
        let device = Device::flex();
        let values: Vec<f32> = (0..4 * 6 * 6 * 5)
            .map(|i| ((i * 7919 % 241) as f32 - 120.0) / 17.0)
            .collect();
        let x = Tensor::<4>::from_data(TensorData::new(values, [4, 6, 6, 5]), &device);

        let ours = gelu(x.clone()).into_data();
        let burn = activation::gelu(x.clone()).into_data();
        ours.assert_approx_eq::<f32>(&burn, burn::tensor::Tolerance::absolute(1e-6));

        // Token-major copies across image and tile boundaries (6·6 = 36 tokens).
        let ours = tokens_from_nchw(x.clone()).into_data();
        assert_eq!(
            ours,
            x.clone()
                .permute([0, 2, 3, 1])
                .reshape([4, 30, 6])
                .into_data()
        );
        let ours = tokens_from_nchw(x.clone().permute([0, 3, 1, 2])).into_data();
        assert_eq!(ours, x.clone().reshape([4, 36, 5]).into_data());

        let ours = max_pool_nhwc(x.clone(), 2).into_data();
        let nchw = max_pool2d(
            x.clone().permute([0, 3, 1, 2]),
            MaxPoolOptions::new([2, 2]).with_stride([2, 2]),
        );
        assert_eq!(ours, nchw.permute([0, 2, 3, 1]).into_data());

        // A linear layer's weight is the transposed view of torch's `[out, in]`.
        let rows = Tensor::<2>::from_data(
            TensorData::new((0..6 * 7).map(|i| (i as f32 * 0.7).cos()).collect(), [6, 7]),
            &device,
        );
        let weight = Tensor::<2>::from_data(
            TensorData::new((0..5 * 7).map(|i| (i as f32 * 0.3).sin()).collect(), [5, 7]),
            &device,
        )
        .transpose();
        let bias = Tensor::<1>::from_data(
            TensorData::new(vec![0.5f32, -1.0, 0.0, 2.0, 0.25], [5]),
            &device,
        );
        for b in [Some(bias), None] {
            let ours = linear(rows.clone(), &weight, b.clone());
            let burn = burn::tensor::module::linear(rows.clone(), weight.clone(), b);
            ours.into_data().assert_approx_eq::<f32>(
                &burn.into_data(),
                burn::tensor::Tolerance::absolute(1e-6),
            );
        }

        let weight = Tensor::<4>::from_data(
            TensorData::new(
                (0..45).map(|i| (i as f32 - 22.0) / 9.0).collect(),
                [5, 1, 3, 3],
            ),
            &device,
        );
        let bias = Tensor::<1>::from_data(
            TensorData::new(vec![0.5f32, -1.0, 0.0, 2.0, 0.25], [5]),
            &device,
        );
        for stride in [1, 2] {
            let ours =
                depthwise_conv_nhwc(x.clone(), weight.clone(), Some(bias.clone()), stride, 1);
            let burn = conv2d(
                x.clone().permute([0, 3, 1, 2]),
                weight.clone(),
                Some(bias.clone()),
                ConvOptions::new([stride; 2], [1, 1], [1, 1], 5),
            );
            ours.into_data().assert_approx_eq::<f32>(
                &burn.permute([0, 2, 3, 1]).into_data(),
                burn::tensor::Tolerance::absolute(1e-5),
            );
        }
    }
}
