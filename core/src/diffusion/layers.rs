//! Building blocks shared by the UNet and the VAE, written on candle-nn primitives under
//! diffusers' tensor names (`norm1`, `conv1`, `time_emb_proj`, `to_q`, ...).

use candle_core::{Module, Result, Tensor, D};
use candle_nn::{Conv2d, Conv2dConfig, GroupNorm, Linear, VarBuilder};

/// A 2-D convolution with bias and "same"-style padding for odd kernels.
pub fn conv(
    vb: VarBuilder,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
) -> Result<Conv2d> {
    let cfg = Conv2dConfig {
        padding: pad,
        stride,
        ..Default::default()
    };
    candle_nn::conv2d(cin, cout, k, cfg, vb)
}

/// GroupNorm with weight and bias.
pub fn group_norm(vb: VarBuilder, groups: usize, channels: usize, eps: f64) -> Result<GroupNorm> {
    if groups == 0 || channels % groups != 0 {
        candle_core::bail!(
            "{channels} channels cannot be split into {groups} groups ({})",
            vb.prefix()
        );
    }
    candle_nn::group_norm(groups, channels, eps, vb)
}

/// diffusers' `ResnetBlock2D` (time-embedding projection optional: the VAE has none).
#[derive(Debug)]
pub struct ResnetBlock {
    norm1: GroupNorm,
    conv1: Conv2d,
    time_emb_proj: Option<Linear>,
    norm2: GroupNorm,
    conv2: Conv2d,
    conv_shortcut: Option<Conv2d>,
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
                .map(|t| candle_nn::linear(t, cout, vb.pp("time_emb_proj")))
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
        let h = self.conv1.forward(&self.norm1.forward(x)?.silu()?)?;
        let h = match (&self.time_emb_proj, temb) {
            (Some(proj), Some(t)) => {
                let t = proj.forward(&t.silu()?)?.unsqueeze(2)?.unsqueeze(3)?;
                h.broadcast_add(&t)?
            }
            _ => h,
        };
        let h = self.conv2.forward(&self.norm2.forward(&h)?.silu()?)?;
        let skip = match &self.conv_shortcut {
            Some(c) => c.forward(x)?,
            None => x.clone(),
        };
        skip + h
    }
}

/// Largest attention score matrix computed in one piece (elements).
pub const MAX_SCORE_ELEMENTS: usize = 1 << 29;

/// Scaled dot-product attention on (B, N, heads*dim) inputs, returning the same layout.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize) -> Result<Tensor> {
    attention_in_blocks(q, k, v, heads, MAX_SCORE_ELEMENTS)
}

fn attention_in_blocks(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    max_scores: usize,
) -> Result<Tensor> {
    let (b, n, c) = q.dims3()?;
    let m = k.dim(1)?;
    let d = c / heads;
    let split = |x: &Tensor, len: usize| -> Result<Tensor> {
        x.reshape((b, len, heads, d))?.transpose(1, 2)?.contiguous()
    };
    let (q, k, v) = (split(q, n)?, split(k, m)?, split(v, m)?);
    let q = (q * (1.0 / (d as f64).sqrt()))?;
    let kt = k.t()?;
    // The score matrix has b*heads*n*m elements; cuBLAS fails beyond 2^31 (seen at batch 30
    // on SD's 4096-token level) and memory grows with it, so large products are computed in
    // blocks of query rows. Softmax is per row, so the blocks are exact.
    let rows = (max_scores / (b * heads * m).max(1)).clamp(1, n);
    let mut outs = Vec::with_capacity(n.div_ceil(rows));
    for start in (0..n).step_by(rows) {
        let len = rows.min(n - start);
        let qs = if len == n {
            q.clone()
        } else {
            q.narrow(2, start, len)?
        };
        let probs = candle_nn::ops::softmax_last_dim(&qs.matmul(&kt)?)?;
        outs.push(probs.matmul(&v)?);
    }
    let out = if outs.len() == 1 {
        outs.pop().expect("one block")
    } else {
        Tensor::cat(&outs, 2)?
    };
    out.transpose(1, 2)?.reshape((b, n, c))
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
        let lin = |i, o, name: &str| {
            if qkv_bias {
                candle_nn::linear(i, o, vb.pp(name))
            } else {
                candle_nn::linear_no_bias(i, o, vb.pp(name))
            }
        };
        Ok(Self {
            to_q: lin(dim, inner, "to_q")?,
            to_k: lin(context_dim, inner, "to_k")?,
            to_v: lin(context_dim, inner, "to_v")?,
            to_out: candle_nn::linear(inner, dim, vb.pp("to_out").pp("0"))?,
            heads,
        })
    }

    /// `x`: (B, N, dim); `context`: (B, M, context_dim).
    pub fn forward(&self, x: &Tensor, context: Option<&Tensor>) -> Result<Tensor> {
        let ctx = context.unwrap_or(x);
        let q = self.to_q.forward(x)?;
        let k = self.to_k.forward(ctx)?;
        let v = self.to_v.forward(ctx)?;
        self.to_out.forward(&attention(&q, &k, &v, self.heads)?)
    }
}

/// Splits the last dimension in two halves.
pub fn chunk2_last(x: &Tensor) -> Result<(Tensor, Tensor)> {
    let n = x.dim(D::Minus1)? / 2;
    Ok((x.narrow(D::Minus1, 0, n)?, x.narrow(D::Minus1, n, n)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn blocked_attention_equals_one_piece() {
        let dev = Device::Cpu;
        let mk = |seed, n| {
            crate::noise::NoiseStream::new(seed, 0)
                .tensor(&[2, n, 12], &dev)
                .unwrap()
        };
        let (q, k, v) = (mk(1, 300), mk(2, 250), mk(3, 250));
        let whole = attention_in_blocks(&q, &k, &v, 3, usize::MAX).unwrap();
        // 2 x 3 heads x 250 keys = 1500 scores per query row: blocks of 7 rows, and of 1.
        for limit in [7 * 1500, 1] {
            let blocked = attention_in_blocks(&q, &k, &v, 3, limit).unwrap();
            let d = (blocked - &whole)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(d < 1e-6, "limit {limit}: differs by {d}");
        }
    }
}
