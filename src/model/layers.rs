//! Building blocks shared by every model: torch-layout layers loaded from a
//! [`WeightPath`], plus the `MLP` and `LayerNorm2d` of `sam2/modeling/sam2_utils.py`.

use burn::module::{Module, Param};
use burn::tensor::Tensor;
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::module::{conv_transpose2d, conv2d, layer_norm, linear};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};

use crate::model::cpu_kernels::gelu;
use crate::weights::{WeightError, WeightPath};

/// `nn.Linear`: torch stores `[out, in]`, burn multiplies by `[in, out]`.
#[derive(Module, Debug)]
pub struct Linear {
    pub weight: Param<Tensor<2>>,
    pub bias: Option<Param<Tensor<1>>>,
}

/// Whether a layer has a bias term (torch's `bias=` argument).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bias {
    With,
    Without,
}

impl Linear {
    pub fn load(
        weights: &WeightPath,
        d_in: usize,
        d_out: usize,
        bias: Bias,
    ) -> Result<Self, WeightError> {
        let weight =
            Self::weight_from_torch(weights.host("weight", &[d_out, d_in])?, weights.device());
        let bias = match bias {
            Bias::With => Some(Param::from_tensor(weights.tensor("bias", [d_out])?)),
            Bias::Without => None,
        };
        Ok(Self {
            weight: Param::from_tensor(weight),
            bias,
        })
    }

    /// `[d_in, d_out]` from torch's `[d_out, d_in]` host tensor. On the CPU the
    /// transpose is materialised once here: [`crate::model::cpu_kernels::linear`]
    /// reads the weight in place, and gemm multiplies a contiguous `[d_in, d_out]`
    /// right-hand side without repacking it on the calling thread (and ~3–5×
    /// faster for a few rows, as the mask decoder's prompt tokens). On a GPU the
    /// weight stays the transposed view of torch's layout.
    fn weight_from_torch(
        torch: crate::weights::HostTensor,
        device: &burn::tensor::Device,
    ) -> Tensor<2> {
        if *device != burn::tensor::Device::flex() {
            return torch.to_tensor::<2>(device).transpose();
        }
        let [d_out, d_in] = [torch.shape[0], torch.shape[1]];
        let mut t = vec![0f32; d_in * d_out];
        for (o, row) in torch.data.chunks_exact(d_in).enumerate() {
            for (i, &v) in row.iter().enumerate() {
                t[i * d_out + o] = v;
            }
        }
        Tensor::from_data(burn::tensor::TensorData::new(t, [d_in, d_out]), device)
    }

    /// All leading dimensions are folded into the rows of one 2-D matmul:
    /// burn's `linear` keeps them as a batch when the row count is a multiple
    /// of 32 or when folding makes the output less square, and the per-batch
    /// GEMMs (repacking the weight each time) measured 3–7 % slower on the CPU.
    /// On the CPU backend the product is [`crate::model::cpu_kernels::linear`].
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let bias = self.bias.as_ref().map(|b| b.val());
        let mut dims = x.dims();
        let d_in = dims[D - 1];
        let rows = dims[..D - 1].iter().product();
        dims[D - 1] = self.weight.dims()[1];
        let x = x.reshape([rows, d_in]);
        if crate::model::cpu_kernels::on_host(&x)
            && crate::model::cpu_kernels::on_host(&self.weight.val())
            && bias.as_ref().is_none_or(crate::model::cpu_kernels::on_host)
        {
            let y = crate::model::cpu_kernels::linear(x, &self.weight.val(), bias);
            return y.reshape(dims);
        }
        linear(x, self.weight.val(), bias).reshape(dims)
    }
}

/// Geometry of a 2-D convolution (square kernels, as every model here uses).
#[derive(Clone, Copy, Debug)]
pub struct Conv2dSpec {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub groups: usize,
    pub bias: Bias,
}

impl Conv2dSpec {
    pub fn new(in_channels: usize, out_channels: usize, kernel: usize) -> Self {
        Self {
            in_channels,
            out_channels,
            kernel,
            stride: 1,
            padding: 0,
            groups: 1,
            bias: Bias::With,
        }
    }
    pub fn stride(mut self, stride: usize) -> Self {
        self.stride = stride;
        self
    }
    pub fn padding(mut self, padding: usize) -> Self {
        self.padding = padding;
        self
    }
    pub fn groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }
    pub fn bias(mut self, bias: Bias) -> Self {
        self.bias = bias;
        self
    }
}

/// `nn.Conv2d` (NCHW, weight `[out, in/groups, k, k]` as in torch).
#[derive(Module, Debug)]
pub struct Conv2d {
    pub weight: Param<Tensor<4>>,
    pub bias: Option<Param<Tensor<1>>>,
    pub stride: usize,
    pub padding: usize,
    pub groups: usize,
}

impl Conv2d {
    pub fn load(weights: &WeightPath, spec: Conv2dSpec) -> Result<Self, WeightError> {
        let weight = weights.tensor(
            "weight",
            [
                spec.out_channels,
                spec.in_channels / spec.groups,
                spec.kernel,
                spec.kernel,
            ],
        )?;
        let bias = match spec.bias {
            Bias::With => Some(Param::from_tensor(
                weights.tensor("bias", [spec.out_channels])?,
            )),
            Bias::Without => None,
        };
        Ok(Self {
            weight: Param::from_tensor(weight),
            bias,
            stride: spec.stride,
            padding: spec.padding,
            groups: spec.groups,
        })
    }

    /// Builds a convolution from tensors computed at load time (e.g. BatchNorm folded in).
    pub fn from_tensors(weight: Tensor<4>, bias: Tensor<1>, spec: Conv2dSpec) -> Self {
        Self {
            weight: Param::from_tensor(weight),
            bias: Some(Param::from_tensor(bias)),
            stride: spec.stride,
            padding: spec.padding,
            groups: spec.groups,
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        {
            use crate::model::cpu_kernels::on_host;
            let [_, _, kh, kw] = self.weight.dims();
            let bias = self.bias.as_ref().map(|b| b.val());
            if [kh, kw, self.stride, self.groups] == [1; 4]
                && self.padding == 0
                && on_host(&x)
                && on_host(&self.weight.val())
                && bias.as_ref().is_none_or(on_host)
                && let Some(y) = crate::model::cpu_kernels::conv1x1(&x, &self.weight.val(), bias)
            {
                return y;
            }
        }
        conv2d(
            x,
            self.weight.val(),
            self.bias.as_ref().map(|b| b.val()),
            ConvOptions::new([self.stride; 2], [self.padding; 2], [1, 1], self.groups),
        )
    }
}

/// `nn.ConvTranspose2d(in, out, kernel_size=k, stride=k)` as the SAM mask decoder uses it.
#[derive(Module, Debug)]
pub struct ConvTranspose2d {
    pub weight: Param<Tensor<4>>,
    pub bias: Param<Tensor<1>>,
    pub stride: usize,
}

impl ConvTranspose2d {
    pub fn load(
        weights: &WeightPath,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
    ) -> Result<Self, WeightError> {
        Ok(Self {
            weight: Param::from_tensor(
                weights.tensor("weight", [in_channels, out_channels, kernel, kernel])?,
            ),
            bias: Param::from_tensor(weights.tensor("bias", [out_channels])?),
            stride,
        })
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        {
            use crate::model::cpu_kernels::on_host;
            let [_, _, kh, kw] = self.weight.dims();
            if kh == self.stride
                && kw == self.stride
                && on_host(&x)
                && on_host(&self.weight.val())
                && on_host(&self.bias.val())
                && let Some(y) = crate::model::cpu_kernels::conv_transpose_kxk(
                    &x,
                    &self.weight.val(),
                    self.bias.val(),
                )
            {
                return y;
            }
        }
        conv_transpose2d(
            x,
            self.weight.val(),
            Some(self.bias.val()),
            ConvTransposeOptions::new([self.stride; 2], [0, 0], [0, 0], [1, 1], 1),
        )
    }
}

/// `nn.LayerNorm` over the last dimension.
#[derive(Module, Debug)]
pub struct LayerNorm {
    pub weight: Param<Tensor<1>>,
    pub bias: Param<Tensor<1>>,
    pub eps: f64,
}

impl LayerNorm {
    pub fn load(weights: &WeightPath, dim: usize, eps: f64) -> Result<Self, WeightError> {
        Ok(Self {
            weight: Param::from_tensor(weights.tensor("weight", [dim])?),
            bias: Param::from_tensor(weights.tensor("bias", [dim])?),
            eps,
        })
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        if let Some(y) = crate::model::cpu_kernels::layer_norm(
            &x,
            &self.weight.val(),
            &self.bias.val(),
            self.eps,
        ) {
            return y;
        }
        layer_norm(x, self.weight.val(), Some(self.bias.val()), self.eps)
    }
}

/// `LayerNorm2d`: normalises over the channel axis of an NCHW tensor.
#[derive(Module, Debug)]
pub struct LayerNorm2d {
    pub weight: Param<Tensor<1>>,
    pub bias: Param<Tensor<1>>,
    pub eps: f64,
}

impl LayerNorm2d {
    pub fn load(weights: &WeightPath, channels: usize, eps: f64) -> Result<Self, WeightError> {
        Ok(Self {
            weight: Param::from_tensor(weights.tensor("weight", [channels])?),
            bias: Param::from_tensor(weights.tensor("bias", [channels])?),
            eps,
        })
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let c = self.weight.dims()[0];
        let u = x.clone().mean_dim(1);
        let xc = x - u;
        let s = xc.clone().powi_scalar(2).mean_dim(1);
        let x = xc / (s + self.eps).sqrt();
        x * self.weight.val().reshape([1, c, 1, 1]) + self.bias.val().reshape([1, c, 1, 1])
    }
}

/// The activation between MLP layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Activation {
    Relu,
    Gelu,
}

impl Activation {
    pub fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Activation::Relu => relu(x),
            Activation::Gelu => gelu(x),
        }
    }
}

/// `MLP` of `sam2_utils.py`: `num_layers` linears with the activation between them.
#[derive(Module, Debug)]
pub struct Mlp {
    pub layers: Vec<Linear>,
    #[module(skip)]
    pub activation: Activation,
    pub sigmoid_output: bool,
}

/// Whether an MLP ends with a sigmoid (`sigmoid_output=` in the official code).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MlpOutput {
    Linear,
    Sigmoid,
}

impl Mlp {
    pub fn load(
        weights: &WeightPath,
        dims: [usize; 3],
        num_layers: usize,
        activation: Activation,
        output: MlpOutput,
    ) -> Result<Self, WeightError> {
        let [input, hidden, out] = dims;
        let layers = (0..num_layers)
            .map(|i| {
                let d_in = if i == 0 { input } else { hidden };
                let d_out = if i + 1 == num_layers { out } else { hidden };
                Linear::load(&weights.pp("layers").pp(i), d_in, d_out, Bias::With)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            layers,
            activation,
            sigmoid_output: output == MlpOutput::Sigmoid,
        })
    }

    pub fn forward<const D: usize>(&self, mut x: Tensor<D>) -> Tensor<D> {
        let n = self.layers.len();
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if i + 1 < n {
                x = self.activation.apply(x);
            }
        }
        if self.sigmoid_output { sigmoid(x) } else { x }
    }
}
