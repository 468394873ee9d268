//! `MemoryAttention` (`sam2/modeling/memory_attention.py`): the current
//! frame's tokens self-attend, then cross-attend to memory frames and object
//! pointers, both with axial RoPE (pointer tokens excluded from the rotation).

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::activation::relu;

use crate::model::config::MemoryAttentionConfig;
use crate::model::cpu_kernels::add;
use crate::model::layers::{Bias, LayerNorm, Linear};
use crate::model::sam::transformer::{AttentionSpec, RopeAttention};
use crate::weights::{WeightError, WeightPath};

fn feat_sizes(v: &[usize]) -> [usize; 2] {
    [
        v.first().copied().unwrap_or(1),
        v.get(1).copied().unwrap_or(1),
    ]
}

/// `MemoryAttentionLayer` with the SAM 2.1 settings: no position encoding at
/// self-attention, position encoding on cross-attention keys only.
#[derive(Module, Debug)]
pub struct MemoryAttentionLayer {
    self_attn: RopeAttention,
    cross_attn_image: RopeAttention,
    linear1: Linear,
    linear2: Linear,
    norm1: LayerNorm,
    norm2: LayerNorm,
    norm3: LayerNorm,
}

impl MemoryAttentionLayer {
    fn load(
        weights: &WeightPath,
        cfg: &crate::model::config::MemoryAttentionLayerConfig,
    ) -> Result<Self, WeightError> {
        let d = cfg.d_model;
        let sa = &cfg.self_attention;
        let ca = &cfg.cross_attention;
        let sa_spec = AttentionSpec::new(sa.embedding_dim, sa.num_heads, sa.downsample_rate);
        let ca_spec = AttentionSpec {
            kv_in_dim: ca.kv_in_dim.unwrap_or(ca.embedding_dim),
            ..AttentionSpec::new(ca.embedding_dim, ca.num_heads, ca.downsample_rate)
        };
        Ok(Self {
            self_attn: RopeAttention::load(
                &weights.pp("self_attn"),
                sa_spec,
                feat_sizes(&sa.feat_sizes),
                sa.rope_theta,
            )?,
            cross_attn_image: RopeAttention::load(
                &weights.pp("cross_attn_image"),
                ca_spec,
                feat_sizes(&ca.feat_sizes),
                ca.rope_theta,
            )?,
            linear1: Linear::load(&weights.pp("linear1"), d, cfg.dim_feedforward, Bias::With)?,
            linear2: Linear::load(&weights.pp("linear2"), cfg.dim_feedforward, d, Bias::With)?,
            norm1: LayerNorm::load(&weights.pp("norm1"), d, 1e-5)?,
            norm2: LayerNorm::load(&weights.pp("norm2"), d, 1e-5)?,
            norm3: LayerNorm::load(&weights.pp("norm3"), d, 1e-5)?,
        })
    }

    fn forward(
        &self,
        tgt: Tensor<3>,
        memory: &Tensor<3>,
        memory_pos: &Tensor<3>,
        num_obj_ptr_tokens: usize,
    ) -> Tensor<3> {
        let t = self.norm1.forward(tgt.clone());
        let tgt = add(tgt, self.self_attn.forward(t.clone(), t.clone(), t, 0));
        let t = self.norm2.forward(tgt.clone());
        let k = add(memory.clone(), memory_pos.clone());
        let tgt = add(
            tgt,
            self.cross_attn_image
                .forward(t, k, memory.clone(), num_obj_ptr_tokens),
        );
        let t = self.norm3.forward(tgt.clone());
        add(tgt, self.linear2.forward(relu(self.linear1.forward(t))))
    }
}

#[derive(Module, Debug)]
pub struct MemoryAttention {
    layers: Vec<MemoryAttentionLayer>,
    norm: LayerNorm,
}

impl MemoryAttention {
    pub fn load(weights: &WeightPath, cfg: &MemoryAttentionConfig) -> Result<Self, WeightError> {
        let layers = (0..cfg.num_layers)
            .map(|i| MemoryAttentionLayer::load(&weights.pp("layers").pp(i), &cfg.layer))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            layers,
            norm: LayerNorm::load(&weights.pp("norm"), cfg.d_model, 1e-5)?,
        })
    }

    /// Sequence-first inputs as in the official call: `curr`, `curr_pos`
    /// `[HW, B, C]`; `memory`, `memory_pos` `[M, B, C_mem]` whose last
    /// `num_obj_ptr_tokens` rows are object-pointer tokens. Returns `[HW, B, C]`.
    pub fn forward(
        &self,
        curr: Tensor<3>,
        curr_pos: Tensor<3>,
        memory: Tensor<3>,
        memory_pos: Tensor<3>,
        num_obj_ptr_tokens: usize,
    ) -> Tensor<3> {
        // pos_enc_at_input: add 0.1·pos once, then work batch-first.
        let mut out = (curr + curr_pos * 0.1).swap_dims(0, 1);
        let memory = memory.swap_dims(0, 1);
        let memory_pos = memory_pos.swap_dims(0, 1);
        for layer in &self.layers {
            out = layer.forward(out, &memory, &memory_pos, num_obj_ptr_tokens);
        }
        self.norm.forward(out).swap_dims(0, 1)
    }
}
