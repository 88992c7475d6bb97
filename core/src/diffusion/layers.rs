//! Building blocks shared by the UNet and the VAE, written on candle-nn primitives under
//! diffusers' tensor names (`norm1`, `conv1`, `time_emb_proj`, `to_q`, ...).

use crate::ops::{Conv, GroupNorm, Linear};
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

/// A 2-D convolution with bias and "same"-style padding for odd kernels.
pub fn conv(
    vb: VarBuilder,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
) -> Result<Conv> {
    Conv::load(vb, cin, cout, k, stride, pad)
}

/// GroupNorm with weight and bias.
pub fn group_norm(vb: VarBuilder, groups: usize, channels: usize, eps: f64) -> Result<GroupNorm> {
    GroupNorm::load(vb, groups, channels, eps)
}

/// diffusers' `ResnetBlock2D` (time-embedding projection optional: the VAE has none).
#[derive(Debug)]
pub struct ResnetBlock {
    norm1: GroupNorm,
    conv1: Conv,
    time_emb_proj: Option<Linear>,
    norm2: GroupNorm,
    conv2: Conv,
    conv_shortcut: Option<Conv>,
}

impl ResnetBlock {
    /// Loads a block mapping `cin` to `cout` channels.
    pub fn new(
        vb: VarBuilder,
        cin: usize,
        cout: usize,
        temb: Option<usize>,
        groups: usize,
        eps: f64,
    ) -> Result<Self> {
        Ok(Self {
            norm1: group_norm(vb.pp("norm1"), groups, cin, eps)?,
            conv1: conv(vb.pp("conv1"), cin, cout, 3, 1, 1)?,
            time_emb_proj: temb
                .map(|t| Linear::load(vb.pp("time_emb_proj"), t, cout, true))
                .transpose()?,
            norm2: group_norm(vb.pp("norm2"), groups, cout, eps)?,
            conv2: conv(vb.pp("conv2"), cout, cout, 3, 1, 1)?,
            conv_shortcut: (cin != cout)
                .then(|| conv(vb.pp("conv_shortcut"), cin, cout, 1, 1, 0))
                .transpose()?,
        })
    }

    /// `x`: (B, C, H, W); `temb`: (B, T) when the block has a time projection.
    pub fn forward(&self, x: &Tensor, temb: Option<&Tensor>) -> Result<Tensor> {
        // The time embedding and the skip are added inside the convolutions. Each
        // intermediate is dropped as soon as the next exists: at 512x512 one is 134 MB.
        let h = {
            let n1 = self.norm1.forward_silu(x)?;
            match (&self.time_emb_proj, temb) {
                (Some(proj), Some(t)) => {
                    let t = proj.forward(&t.silu()?)?.unsqueeze(2)?.unsqueeze(3)?;
                    self.conv1.forward_add(&n1, &t)?
                }
                _ => self.conv1.forward(&n1)?,
            }
        };
        let n2 = self.norm2.forward_silu(&h)?;
        drop(h);
        let skip = match &self.conv_shortcut {
            Some(c) => c.forward(x)?,
            None => x.clone(),
        };
        self.conv2.forward_add(&n2, &skip)
    }
}

pub use crate::ops::attention::MAX_SCORE_ELEMENTS;

/// Scaled dot-product attention on (B, N, heads*dim) inputs, returning the same layout.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize) -> Result<Tensor> {
    crate::ops::attention(q, k, v, heads)
}

/// diffusers' `Attention` as used by the UNet's transformer blocks: bias-free q/k/v,
/// `to_out.0` with bias; `context` defaults to `x` (self-attention).
#[derive(Debug)]
pub struct CrossAttention {
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
    heads: usize,
}

impl CrossAttention {
    /// `dim` query width, `context_dim` key/value width, `inner = heads * head_dim`.
    pub fn new(
        vb: VarBuilder,
        dim: usize,
        context_dim: usize,
        heads: usize,
        inner: usize,
        qkv_bias: bool,
    ) -> Result<Self> {
        let lin = |i, o, name: &str| Linear::load(vb.pp(name), i, o, qkv_bias);
        Ok(Self {
            to_q: lin(dim, inner, "to_q")?,
            to_k: lin(context_dim, inner, "to_k")?,
            to_v: lin(context_dim, inner, "to_v")?,
            to_out: Linear::load(vb.pp("to_out").pp("0"), inner, dim, true)?,
            heads,
        })
    }

    /// `residual + attention(x)`, the residual added inside the output projection.
    /// `x`: (B, N, dim); `context`: (B, M, context_dim); `residual`: (B, N, dim).
    pub fn forward_add(
        &self,
        x: &Tensor,
        context: Option<&Tensor>,
        residual: &Tensor,
    ) -> Result<Tensor> {
        let ctx = context.unwrap_or(x);
        let q = self.to_q.forward(x)?;
        let k = self.to_k.forward(ctx)?;
        let v = self.to_v.forward(ctx)?;
        self.to_out
            .forward_add(&attention(&q, &k, &v, self.heads)?, residual)
    }
}
