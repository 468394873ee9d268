//! AdamW exactly as PyTorch's `torch.optim.AdamW` (single-tensor path), the
//! official recipe's optimiser. Written here rather than taken from burn-optim:
//! burn's defaults differ (ε, weight decay) and its update is arranged
//! differently (bias-corrected moments, f32 `powi`); here every operation follows
//! torch's order, a parameter without a gradient is left alone as torch leaves one
//! whose `.grad` is `None`, and the state is plain tensors the caller can inspect.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::tensor::Tensor;

/// AdamW hyper-parameters (the recipe's: lr 6e-5, betas 0.9/0.999, eps 1e-8,
/// weight decay 0.01).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            lr: 6e-5,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

/// First and second moments of one parameter, flattened row-major.
struct Moments {
    m: Tensor<1>,
    v: Tensor<1>,
    step: i32,
}

/// The optimiser state across steps, keyed by parameter.
pub struct AdamW {
    config: AdamWConfig,
    state: HashMap<ParamId, Moments>,
}

impl AdamW {
    pub fn new(config: AdamWConfig) -> Self {
        Self {
            config,
            state: HashMap::new(),
        }
    }

    /// One step of every parameter of `module` that has a gradient in `grads`
    /// (flattened row-major, no autodiff); the others are returned unchanged.
    pub fn step<M: Module>(&mut self, module: M, grads: &HashMap<ParamId, Tensor<1>>) -> M {
        module.map(&mut Stepper { opt: self, grads })
    }

    /// `_single_tensor_adamw` on one flattened parameter.
    fn update(&mut self, id: ParamId, p: Tensor<1>, g: Tensor<1>) -> Tensor<1> {
        let c = self.config;
        let st = self.state.entry(id).or_insert_with(|| Moments {
            m: g.zeros_like(),
            v: g.zeros_like(),
            step: 0,
        });
        st.step += 1;
        // param.mul_(1 - lr * weight_decay)
        let p = p * (1.0 - c.lr * c.weight_decay);
        // exp_avg.lerp_(grad, 1 - beta1): torch's lerp for a weight < 0.5 is
        // self + weight·(end − self).
        let m = st.m.clone() + (g.clone() - st.m.clone()) * (1.0 - c.beta1);
        // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        let v = st.v.clone() * c.beta2 + g.clone() * (1.0 - c.beta2) * g;
        // Bias corrections in f64, as torch computes them from Python floats.
        let bias1 = 1.0 - c.beta1.powi(st.step);
        let bias2_sqrt = (1.0 - c.beta2.powi(st.step)).sqrt();
        let step_size = c.lr / bias1;
        // denom = exp_avg_sq.sqrt() / bias_correction2_sqrt + eps
        let denom = v.clone().sqrt() / bias2_sqrt + c.eps;
        // param.addcdiv_(exp_avg, denom, value=-step_size): self + value·t1 / t2
        let p = p + (m.clone() * -step_size) / denom;
        st.m = m;
        st.v = v;
        p
    }
}

struct Stepper<'a> {
    opt: &'a mut AdamW,
    grads: &'a HashMap<ParamId, Tensor<1>>,
}

impl ModuleMapper for Stepper<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(g) = self.grads.get(&param.id) else {
            return param;
        };
        let (id, tensor, mapper) = param.consume();
        let require_grad = tensor.is_require_grad();
        let dims = tensor.dims();
        let n = g.dims()[0];
        // The update itself is not part of any graph.
        let flat = tensor.without_autodiff().reshape([n]);
        let updated = self.opt.update(id, flat, g.clone()).reshape(dims);
        let updated = if require_grad {
            updated.autodiff().require_grad()
        } else {
            updated
        };
        Param::from_mapped_value(id, updated, mapper)
    }
}
