//! Position encodings of `sam2/modeling/position_encoding.py`: the sine
//! encoding of image feature maps, the random-Fourier encoding of the prompt
//! encoder, and the axial rotary encoding (RoPE) of memory attention.
//!
//! Grids and frequency tables depend only on shapes, so they are computed on
//! the host in f32 with the same operation order as torch and uploaded once.

use std::sync::{Arc, Mutex};

use burn::tensor::{Device, Tensor, TensorData};

use crate::model::cpu_kernels::{on_host, rotate_pairs};

/// `PositionEmbeddingSine(num_pos_feats, temperature=10000, normalize=True, scale=2π)`.
#[derive(Clone, Debug)]
pub struct PositionEmbeddingSine {
    /// Half the output channels (`num_pos_feats // 2` in the official code).
    half_feats: usize,
    temperature: f32,
    /// Encodings built so far, by map size and device: an encoding depends on
    /// nothing else, and rebuilding the neck's four every frame cost ~2 % of
    /// the CPU image encoder.
    built: Arc<Mutex<Vec<BuiltEncoding>>>,
}

/// A sine encoding already built for an `[H, W]` map.
type BuiltEncoding = ([usize; 2], Tensor<4>);

impl PositionEmbeddingSine {
    pub fn new(num_pos_feats: usize) -> Self {
        assert!(
            num_pos_feats.is_multiple_of(2),
            "sine position encoding needs an even width"
        );
        Self {
            half_feats: num_pos_feats / 2,
            temperature: 10000.0,
            built: Arc::default(),
        }
    }

    /// `dim_t = temperature ** (2 * (i // 2) / half_feats)`.
    fn dim_t(&self) -> Vec<f32> {
        (0..self.half_feats)
            .map(|i| {
                let e = (2 * (i / 2)) as f32 / self.half_feats as f32;
                self.temperature.powf(e)
            })
            .collect()
    }

    /// The encoding of an `h`×`w` map as `[C, H, W]` host data, C = 2·half_feats:
    /// channels are (y-sin/cos interleaved, then x-sin/cos interleaved).
    pub fn grid(&self, h: usize, w: usize) -> Vec<f32> {
        let scale = 2.0 * std::f32::consts::PI;
        let eps = 1e-6f32;
        let dim_t = self.dim_t();
        let c = 2 * self.half_feats;
        let mut out = vec![0f32; c * h * w];
        let encode = |v: f32, k: usize| {
            let p = v / dim_t[k];
            if k.is_multiple_of(2) {
                p.sin()
            } else {
                p.cos()
            }
        };
        for y in 0..h {
            let ye = (y + 1) as f32 / (h as f32 + eps) * scale;
            for x in 0..w {
                let xe = (x + 1) as f32 / (w as f32 + eps) * scale;
                for k in 0..self.half_feats {
                    out[(k * h + y) * w + x] = encode(ye, k);
                    out[((self.half_feats + k) * h + y) * w + x] = encode(xe, k);
                }
            }
        }
        out
    }

    /// The encoding as a `[1, C, H, W]` tensor.
    pub fn forward(&self, h: usize, w: usize, device: &Device) -> Tensor<4> {
        let mut built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, t)) = built
            .iter()
            .find(|(hw, t)| *hw == [h, w] && t.device() == *device)
        {
            return t.clone();
        }
        let c = 2 * self.half_feats;
        let t = Tensor::from_data(TensorData::new(self.grid(h, w), [1, c, h, w]), device);
        built.push(([h, w], t.clone()));
        t
    }
}

/// Axial rotary encoding (`compute_axial_cis`) for an `end_x`×`end_y` grid,
/// stored as cos/sin tables of shape `[end_x·end_y, dim/2]`.
#[derive(Clone, Debug)]
pub struct AxialRope {
    pub cos: Tensor<2>,
    pub sin: Tensor<2>,
    pub len: usize,
}

impl AxialRope {
    pub fn new(dim: usize, end_x: usize, end_y: usize, theta: f32, device: &Device) -> Self {
        let n_freq = dim / 4;
        let freqs: Vec<f32> = (0..n_freq)
            .map(|i| 1.0 / theta.powf((4 * i) as f32 / dim as f32))
            .collect();
        let len = end_x * end_y;
        let half = 2 * n_freq;
        let mut cos = Vec::with_capacity(len * half);
        let mut sin = Vec::with_capacity(len * half);
        for t in 0..len {
            let tx = (t % end_x) as f32;
            let ty = (t / end_x) as f32;
            for &pos in [tx, ty].iter() {
                for f in &freqs {
                    let a = pos * f;
                    cos.push(a.cos());
                    sin.push(a.sin());
                }
            }
        }
        Self {
            cos: Tensor::from_data(TensorData::new(cos, [len, half]), device),
            sin: Tensor::from_data(TensorData::new(sin, [len, half]), device),
            len,
        }
    }

    /// Rotates the first `n_rot` positions of `x` `[B, heads, N, dim]`; the
    /// rest (object-pointer tokens) pass through. `n_rot` is a multiple of the
    /// grid length: keys of several memory frames repeat the table, as
    /// `repeat_freqs_k` does.
    pub fn apply(&self, x: Tensor<4>, n_rot: usize) -> Tensor<4> {
        if on_host(&x) {
            return rotate_pairs(x, &self.cos, &self.sin, n_rot);
        }
        let [b, h, n, d] = x.dims();
        if n_rot == n {
            return self.rotate(x);
        }
        let rotated = self.rotate(x.clone().narrow(2, 0, n_rot));
        let plain = x.slice([0..b, 0..h, n_rot..n, 0..d]);
        Tensor::cat(vec![rotated, plain], 2)
    }

    /// Rotates every position of `x` with tensor ops.
    fn rotate(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, h, n, d] = x.dims();
        let reps = n / self.len;
        let half = d / 2;
        let (cos, sin) = if reps == 1 {
            (self.cos.clone(), self.sin.clone())
        } else {
            (
                self.cos.clone().repeat_dim(0, reps),
                self.sin.clone().repeat_dim(0, reps),
            )
        };
        let cos = cos.reshape([1, 1, n, half, 1]);
        let sin = sin.reshape([1, 1, n, half, 1]);
        let pairs = x.reshape([b, h, n, half, 2]);
        let re = pairs.clone().narrow(4, 0, 1);
        let im = pairs.narrow(4, 1, 1);
        let out_re = re.clone() * cos.clone() - im.clone() * sin.clone();
        let out_im = re * sin + im * cos;
        Tensor::cat(vec![out_re, out_im], 4).reshape([b, h, n, d])
    }
}

/// `get_1d_sine_pe(pos, dim)` of `sam2_utils.py` for a list of positions:
/// `[N, dim]`, sines in the first half and cosines in the second.
pub fn sine_pe_1d(positions: &[f32], dim: usize) -> Vec<f32> {
    let pe_dim = dim / 2;
    let dim_t: Vec<f32> = (0..pe_dim)
        .map(|i| 10000f32.powf((2 * (i / 2)) as f32 / pe_dim as f32))
        .collect();
    let mut out = Vec::with_capacity(positions.len() * dim);
    for &p in positions {
        out.extend(dim_t.iter().map(|d| (p / d).sin()));
        out.extend(dim_t.iter().map(|d| (p / d).cos()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_rotation_matches_tensor_ops() {
        let device = Device::flex();
        // A 3×2 grid (6 positions) repeated for two memory frames, then three
        // unrotated pointer tokens; two heads of width 8.
        let rope = AxialRope::new(8, 3, 2, 100.0, &device);
        let n = 15;
        let values: Vec<f32> = (0..2 * n * 8).map(|i| (i as f32 * 0.37).sin()).collect();
        let x = Tensor::<4>::from_data(TensorData::new(values, [1, 2, n, 8]), &device);
        let host = rope.apply(x.clone(), 12);
        let ops = Tensor::cat(
            vec![rope.rotate(x.clone().narrow(2, 0, 12)), x.narrow(2, 12, 3)],
            2,
        );
        host.into_data()
            .assert_approx_eq::<f32>(&ops.into_data(), burn::tensor::Tolerance::absolute(1e-6));
    }

    #[test]
    fn sine_grid_matches_hand_values() {
        // 8 features: half = 4, dim_t = [1, 1, 100, 100]; a 1x1 map has
        // y = x = 1/(1+1e-6)·2π; channels are y: sin, cos, sin/100, cos/100, then x.
        let pe = PositionEmbeddingSine::new(8);
        let g = pe.grid(1, 1);
        let v = 1.0f32 / (1.0 + 1e-6) * 2.0 * std::f32::consts::PI;
        let expected = [v.sin(), v.cos(), (v / 100.0).sin(), (v / 100.0).cos()];
        for (k, e) in expected.iter().enumerate() {
            assert!((g[k] - e).abs() < 1e-6, "y channel {k}");
            assert!((g[4 + k] - e).abs() < 1e-6, "x channel {k}");
        }
    }
}
