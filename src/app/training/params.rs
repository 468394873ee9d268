//! The trained heads' parameters under their official checkpoint names, so that
//! gradients and tuned weights can be compared with PyTorch and written as a
//! checkpoint every loader takes.

use std::collections::{BTreeMap, HashMap};

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;

use crate::readback::{ReadbackError, read_f32};
use crate::weights::HostTensor;
use crate::weights::remap::Rename;

/// One parameter tensor of a module and its place in the official state_dict.
#[derive(Clone, Debug)]
pub struct OfficialParam {
    pub id: ParamId,
    /// The official key, e.g. `mask_decoder.iou_token.weight` (LiteMedSAM),
    /// `sam_mask_decoder.iou_token.weight` (SAM 2).
    pub key: String,
    /// Our (row-major) shape.
    pub shape: Vec<usize>,
    /// `nn.Linear` weights are kept as `[in, out]` (`layers::Linear`); torch stores
    /// their transpose.
    pub transposed: bool,
}

/// Lists `module`'s float parameters with their official keys. `prefix` is the
/// module's place in our model tree (`sam_mask_decoder`, `sam_prompt_encoder`), `key`
/// maps a path inside it to the checkpoint's name (`state_dict_key`) and `rules` are
/// the family's key remap (`remap::LITE_MEDSAM_RULES`, `remap::SAM2_RULES`), undone.
pub fn official_params<M: Module>(
    module: &M,
    prefix: &str,
    key: fn(&str) -> String,
    rules: &'static [Rename],
) -> Vec<OfficialParam> {
    let mut v = PathVisitor {
        stack: Vec::new(),
        prefix,
        key,
        rules,
        out: Vec::new(),
    };
    module.visit(&mut v);
    v.out
}

struct PathVisitor<'a> {
    /// (field or index, container type) of the modules entered.
    stack: Vec<(String, String)>,
    prefix: &'a str,
    key: fn(&str) -> String,
    rules: &'static [Rename],
    out: Vec<OfficialParam>,
}

impl ModuleVisitor for PathVisitor<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.stack
            .push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let path: Vec<&str> = self.stack.iter().map(|(n, _)| n.as_str()).collect();
        let ours = format!("{}.{}", self.prefix, (self.key)(&path.join(".")));
        let transposed = self
            .stack
            .last()
            .is_some_and(|(n, c)| n == "weight" && c == "Struct:Linear");
        self.out.push(OfficialParam {
            id: param.id,
            key: unapply(self.rules, &ours),
            shape: param.shape().dims::<D>().to_vec(),
            transposed,
        });
    }
}

/// The inverse of `remap::apply`: the checkpoint key that `rules` turn into `key`.
/// Rules are undone last first, each only where its result is found and undoing
/// it gives a key in its scope.
fn unapply(rules: &[Rename], key: &str) -> String {
    let mut key = key.to_string();
    for r in rules.iter().rev() {
        if key.contains(r.to) {
            let undone = key.replacen(r.to, r.from, 1);
            if undone.starts_with(r.scope) {
                key = undone;
            }
        }
    }
    key
}

/// Per-parameter tensors (gradients, values), flattened row-major in our layout,
/// as host tensors under the official keys and in the official layout.
pub async fn to_official(
    params: &[OfficialParam],
    values: &HashMap<ParamId, Tensor<1>>,
) -> Result<BTreeMap<String, HostTensor>, ReadbackError> {
    let mut out = BTreeMap::new();
    for p in params {
        let Some(t) = values.get(&p.id) else { continue };
        let data = read_f32(t.clone()).await?;
        let host = match (p.transposed, p.shape.as_slice()) {
            (true, &[rows, cols]) => {
                let mut tr = vec![0f32; data.len()];
                for r in 0..rows {
                    for c in 0..cols {
                        tr[c * rows + r] = data[r * cols + c];
                    }
                }
                HostTensor::new(vec![cols, rows], tr)
            }
            _ => HostTensor::new(p.shape.clone(), data),
        };
        out.insert(p.key.clone(), host);
    }
    Ok(out)
}

/// Every float parameter's current value, flattened (row-major, our layout).
pub fn values<M: Module>(module: &M) -> HashMap<ParamId, Tensor<1>> {
    struct Values(HashMap<ParamId, Tensor<1>>);
    impl ModuleVisitor for Values {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let t = param.val().without_autodiff();
            let n = t.shape().num_elements();
            self.0.insert(param.id, t.reshape([n]));
        }
    }
    let mut v = Values(HashMap::new());
    module.visit(&mut v);
    v.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::remap::{LITE_MEDSAM_RULES, apply};

    #[test]
    fn unapply_inverts_the_lite_medsam_remap() {
        for official in [
            "mask_decoder.transformer.layers.1.mlp.lin2.bias",
            "mask_decoder.transformer.layers.0.mlp.lin1.weight",
            "mask_decoder.iou_token.weight",
            "prompt_encoder.point_embeddings.2.weight",
        ] {
            let ours = apply(LITE_MEDSAM_RULES, official);
            assert_eq!(unapply(LITE_MEDSAM_RULES, &ours), official);
        }
    }
}
