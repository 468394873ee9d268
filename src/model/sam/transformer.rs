//! Attention layers and the two-way transformer of the SAM mask decoder
//! (`sam2/modeling/sam/transformer.py`), plus the rotary attention used by
//! memory attention.

use burn::module::Module;
use burn::tensor::Tensor;

use crate::model::cpu_kernels::{add, attention, tokens_from_nchw};
use crate::model::layers::{Activation, Bias, LayerNorm, Linear, Mlp, MlpOutput};
use crate::model::position_encoding::AxialRope;
use crate::weights::{WeightError, WeightPath};

/// Geometry of an [`Attention`] layer.
#[derive(Clone, Copy, Debug)]
pub struct AttentionSpec {
    pub embedding_dim: usize,
    pub num_heads: usize,
    pub downsample_rate: usize,
    /// Width of keys/values before projection (`kv_in_dim`), usually `embedding_dim`.
    pub kv_in_dim: usize,
}

impl AttentionSpec {
    pub fn new(embedding_dim: usize, num_heads: usize, downsample_rate: usize) -> Self {
        Self {
            embedding_dim,
            num_heads,
            downsample_rate,
            kv_in_dim: embedding_dim,
        }
    }
}

/// `Attention`: projections to an internal width, multi-head SDPA, output projection.
#[derive(Module, Debug)]
pub struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
    num_heads: usize,
}

fn separate_heads(x: Tensor<3>, heads: usize) -> Tensor<4> {
    let [b, n, c] = x.dims();
    x.reshape([b, n, heads, c / heads]).swap_dims(1, 2)
}

fn recombine_heads(x: Tensor<4>) -> Tensor<3> {
    let [b, h, n, c] = x.dims();
    x.swap_dims(1, 2).reshape([b, n, h * c])
}

impl Attention {
    pub fn load(weights: &WeightPath, s: AttentionSpec) -> Result<Self, WeightError> {
        let internal = s.embedding_dim / s.downsample_rate;
        Ok(Self {
            q_proj: Linear::load(&weights.pp("q_proj"), s.embedding_dim, internal, Bias::With)?,
            k_proj: Linear::load(&weights.pp("k_proj"), s.kv_in_dim, internal, Bias::With)?,
            v_proj: Linear::load(&weights.pp("v_proj"), s.kv_in_dim, internal, Bias::With)?,
            out_proj: Linear::load(
                &weights.pp("out_proj"),
                internal,
                s.embedding_dim,
                Bias::With,
            )?,
            num_heads: s.num_heads,
        })
    }

    fn project(&self, q: Tensor<3>, k: Tensor<3>, v: Tensor<3>) -> [Tensor<4>; 3] {
        [
            separate_heads(self.q_proj.forward(q), self.num_heads),
            separate_heads(self.k_proj.forward(k), self.num_heads),
            separate_heads(self.v_proj.forward(v), self.num_heads),
        ]
    }

    fn finish(&self, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<3> {
        let out = attention(q, k, v, None);
        self.out_proj.forward(recombine_heads(out))
    }

    pub fn forward(&self, q: Tensor<3>, k: Tensor<3>, v: Tensor<3>) -> Tensor<3> {
        let [q, k, v] = self.project(q, k, v);
        self.finish(q, k, v)
    }
}

/// `RoPEAttention`: [`Attention`] with axial rotary encoding of queries and
/// keys. Keys may span several memory frames (the table repeats) followed by
/// object-pointer tokens that stay unrotated.
#[derive(Module, Debug)]
pub struct RopeAttention {
    inner: Attention,
    #[module(skip)]
    rope: AxialRope,
    head_dim: usize,
    theta: f64,
}

impl RopeAttention {
    pub fn load(
        weights: &WeightPath,
        s: AttentionSpec,
        feat_sizes: [usize; 2],
        theta: f64,
    ) -> Result<Self, WeightError> {
        let head_dim = s.embedding_dim / s.downsample_rate / s.num_heads;
        Ok(Self {
            inner: Attention::load(weights, s)?,
            rope: AxialRope::new(
                head_dim,
                feat_sizes[0],
                feat_sizes[1],
                theta as f32,
                weights.device(),
            ),
            head_dim,
            theta,
        })
    }

    /// `num_k_exclude_rope`: trailing keys (object pointers) left unrotated.
    pub fn forward(
        &self,
        q: Tensor<3>,
        k: Tensor<3>,
        v: Tensor<3>,
        num_k_exclude_rope: usize,
    ) -> Tensor<3> {
        let [q, k, v] = self.inner.project(q, k, v);
        let nq = q.dims()[2];
        // Like the official code, rebuild the table when the query grid differs
        // from the configured `feat_sizes`.
        let rebuilt;
        let rope = if self.rope.len == nq {
            &self.rope
        } else {
            let side = (nq as f64).sqrt() as usize;
            rebuilt = AxialRope::new(self.head_dim, side, side, self.theta as f32, &q.device());
            &rebuilt
        };
        let q = rope.apply(q, nq);
        let nk = k.dims()[2];
        let k = rope.apply(k, nk - num_k_exclude_rope);
        self.inner.finish(q, k, v)
    }
}

/// `TwoWayAttentionBlock`.
#[derive(Module, Debug)]
pub struct TwoWayAttentionBlock {
    self_attn: Attention,
    norm1: LayerNorm,
    cross_attn_token_to_image: Attention,
    norm2: LayerNorm,
    mlp: Mlp,
    norm3: LayerNorm,
    norm4: LayerNorm,
    cross_attn_image_to_token: Attention,
    skip_first_layer_pe: bool,
}

/// Geometry of a [`TwoWayTransformer`].
#[derive(Clone, Copy, Debug)]
pub struct TwoWayTransformerSpec {
    pub depth: usize,
    pub embedding_dim: usize,
    pub num_heads: usize,
    pub mlp_dim: usize,
    pub attention_downsample_rate: usize,
}

impl TwoWayAttentionBlock {
    fn load(
        weights: &WeightPath,
        s: TwoWayTransformerSpec,
        first: bool,
    ) -> Result<Self, WeightError> {
        let d = s.embedding_dim;
        let down = AttentionSpec::new(d, s.num_heads, s.attention_downsample_rate);
        Ok(Self {
            self_attn: Attention::load(
                &weights.pp("self_attn"),
                AttentionSpec::new(d, s.num_heads, 1),
            )?,
            norm1: LayerNorm::load(&weights.pp("norm1"), d, 1e-5)?,
            cross_attn_token_to_image: Attention::load(
                &weights.pp("cross_attn_token_to_image"),
                down,
            )?,
            norm2: LayerNorm::load(&weights.pp("norm2"), d, 1e-5)?,
            mlp: Mlp::load(
                &weights.pp("mlp"),
                [d, s.mlp_dim, d],
                2,
                Activation::Relu,
                MlpOutput::Linear,
            )?,
            norm3: LayerNorm::load(&weights.pp("norm3"), d, 1e-5)?,
            norm4: LayerNorm::load(&weights.pp("norm4"), d, 1e-5)?,
            cross_attn_image_to_token: Attention::load(
                &weights.pp("cross_attn_image_to_token"),
                down,
            )?,
            skip_first_layer_pe: first,
        })
    }

    fn forward(
        &self,
        queries: Tensor<3>,
        keys: Tensor<3>,
        query_pe: &Tensor<3>,
        key_pe: &Tensor<3>,
    ) -> (Tensor<3>, Tensor<3>) {
        let queries = if self.skip_first_layer_pe {
            self.self_attn
                .forward(queries.clone(), queries.clone(), queries)
        } else {
            let q = queries.clone() + query_pe.clone();
            queries.clone() + self.self_attn.forward(q.clone(), q, queries)
        };
        let queries = self.norm1.forward(queries);

        let q = queries.clone() + query_pe.clone();
        let k = add(keys.clone(), key_pe.clone());
        let queries = self
            .norm2
            .forward(queries + self.cross_attn_token_to_image.forward(q, k, keys.clone()));

        let queries = self
            .norm3
            .forward(queries.clone() + self.mlp.forward(queries));

        let q = queries.clone() + query_pe.clone();
        let k = add(keys.clone(), key_pe.clone());
        let keys = self.norm4.forward(add(
            keys,
            self.cross_attn_image_to_token
                .forward(k, q, queries.clone()),
        ));
        (queries, keys)
    }
}

/// `TwoWayTransformer`: prompt tokens and image tokens attend to each other.
#[derive(Module, Debug)]
pub struct TwoWayTransformer {
    layers: Vec<TwoWayAttentionBlock>,
    final_attn_token_to_image: Attention,
    norm_final_attn: LayerNorm,
}

impl TwoWayTransformer {
    pub fn load(weights: &WeightPath, s: TwoWayTransformerSpec) -> Result<Self, WeightError> {
        let layers = (0..s.depth)
            .map(|i| TwoWayAttentionBlock::load(&weights.pp("layers").pp(i), s, i == 0))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            layers,
            final_attn_token_to_image: Attention::load(
                &weights.pp("final_attn_token_to_image"),
                AttentionSpec::new(s.embedding_dim, s.num_heads, s.attention_downsample_rate),
            )?,
            norm_final_attn: LayerNorm::load(
                &weights.pp("norm_final_attn"),
                s.embedding_dim,
                1e-5,
            )?,
        })
    }

    /// `image`, `image_pe`: `[B, C, h, w]`; `tokens`: `[B, N, C]`.
    /// Returns (tokens, image tokens `[B, hw, C]`).
    pub fn forward(
        &self,
        image: Tensor<4>,
        image_pe: Tensor<4>,
        tokens: Tensor<3>,
    ) -> (Tensor<3>, Tensor<3>) {
        // Token-major and contiguous, once: a transposed view would make each of the
        // five `keys + keys_pe` below walk both operands with a stride of h·w
        // (burn-flex does not reorder a strided loop nest), ~13 % of a training step.
        let flat = tokens_from_nchw;
        let keys_pe = flat(image_pe);
        let mut keys = flat(image);
        let mut queries = tokens.clone();
        for layer in &self.layers {
            (queries, keys) = layer.forward(queries, keys, &tokens, &keys_pe);
        }
        let q = queries.clone() + tokens;
        let k = add(keys.clone(), keys_pe);
        let queries = self
            .norm_final_attn
            .forward(queries + self.final_attn_token_to_image.forward(q, k, keys.clone()));
        (queries, keys)
    }
}
