//! diffusers' `FluxTransformer2DModel` (FLUX.1-dev / -schnell) under diffusers' tensor names,
//! and FluxPipeline's latent packing and position ids.
//!
//! The network works on *packed* latents: each 2×2 patch of the 16-channel VAE latent is one
//! token of 64 features ([`pack_latents`]). Text tokens (T5 states, `context_embedder`) and
//! image tokens run through `num_layers` double-stream blocks (separate weights per stream,
//! one joint attention) and `num_single_layers` single-stream blocks (one stream, attention
//! and MLP in parallel), conditioned through adaptive LayerNorms on
//! `temb = timestep_emb(1000·t) [+ guidance_emb(1000·g)] + text_embedder(pooled CLIP)`.
//! Positions enter only through the rotary embedding of q and k: three axes
//! (`axes_dims_rope`, FLUX: 16 + 56 + 56 = head dim) with the ids (0, row, col) for image
//! tokens and (0, 0, 0) for text tokens.
//!
//! Numerics follow diffusers (see docs/ENGINE.md): GELU is the tanh approximation here
//! (diffusers' `FeedForward(activation_fn="gelu-approximate")` and the single blocks'
//! `GELU(approximate="tanh")`), LayerNorms have no affine and eps 1e-6, q/k RMSNorms per head
//! with eps 1e-6, RoPE frequencies in f64 rounded to f32, the modulation of
//! `AdaLayerNormContinuous` is (scale, shift) while `AdaLayerNormZero`'s is (shift, scale, gate).

use crate::error::{Error, Result};
use crate::ops::Linear;
use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::VarBuilder;
use serde::Deserialize;
use std::path::Path;

fn d_patch() -> usize {
    1
}
fn d_in() -> usize {
    64
}
fn d_layers() -> usize {
    19
}
fn d_single() -> usize {
    38
}
fn d_head_dim() -> usize {
    128
}
fn d_heads() -> usize {
    24
}
fn d_joint() -> usize {
    4096
}
fn d_pooled() -> usize {
    768
}
fn d_axes() -> Vec<usize> {
    vec![16, 56, 56]
}

/// `transformer/config.json` (diffusers' fields and defaults).
#[derive(Clone, Debug, Deserialize)]
pub struct FluxConfig {
    /// Must be 1 (the 2×2 patching happens in the pipeline, see [`pack_latents`]).
    #[serde(default = "d_patch")]
    pub patch_size: usize,
    /// Features per packed token (16 latent channels × 2 × 2).
    #[serde(default = "d_in")]
    pub in_channels: usize,
    /// Output features per token (default: `in_channels`).
    #[serde(default)]
    pub out_channels: Option<usize>,
    /// Double-stream blocks.
    #[serde(default = "d_layers")]
    pub num_layers: usize,
    /// Single-stream blocks.
    #[serde(default = "d_single")]
    pub num_single_layers: usize,
    /// Channels per head.
    #[serde(default = "d_head_dim")]
    pub attention_head_dim: usize,
    /// Heads; the width is `heads × head dim`.
    #[serde(default = "d_heads")]
    pub num_attention_heads: usize,
    /// Width of the text states (T5-XXL: 4096).
    #[serde(default = "d_joint")]
    pub joint_attention_dim: usize,
    /// Width of the pooled text embedding (CLIP-L: 768).
    #[serde(default = "d_pooled")]
    pub pooled_projection_dim: usize,
    /// Guidance-distilled (FLUX.1-dev): the guidance scale is an input.
    #[serde(default)]
    pub guidance_embeds: bool,
    /// Head channels per RoPE axis (sum = head dim, each even).
    #[serde(default = "d_axes")]
    pub axes_dims_rope: Vec<usize>,
}

impl FluxConfig {
    /// The transformer's width.
    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    /// Output features per token.
    pub fn out_dim(&self) -> usize {
        self.out_channels.unwrap_or(self.in_channels)
    }

    /// Bounds and consistency, before any size drives an allocation.
    pub fn validate(&self, path: &Path) -> Result<()> {
        use super::config::{check_size, MAX_COUNT, MAX_WIDTH};
        let unsupported = |reason: String| Error::Unsupported {
            path: path.into(),
            reason,
        };
        if self.patch_size != 1 {
            return Err(unsupported(format!(
                "patch_size = {} (FLUX uses 1)",
                self.patch_size
            )));
        }
        check_size(path, "in_channels", self.in_channels, MAX_WIDTH)?;
        check_size(path, "out_channels", self.out_dim(), MAX_WIDTH)?;
        // Zero blocks of one kind is a valid (reduced) model; the bound still applies.
        if self.num_layers > MAX_COUNT || self.num_single_layers > MAX_COUNT {
            return Err(unsupported("more than 1024 blocks".into()));
        }
        check_size(path, "attention_head_dim", self.attention_head_dim, 1024)?;
        check_size(
            path,
            "num_attention_heads",
            self.num_attention_heads,
            MAX_COUNT,
        )?;
        check_size(path, "inner dim", self.inner_dim(), MAX_WIDTH)?;
        check_size(
            path,
            "joint_attention_dim",
            self.joint_attention_dim,
            MAX_WIDTH,
        )?;
        check_size(
            path,
            "pooled_projection_dim",
            self.pooled_projection_dim,
            MAX_WIDTH,
        )?;
        let axes = &self.axes_dims_rope;
        if axes.len() != 3
            || axes.iter().any(|a| a % 2 != 0)
            || axes.iter().sum::<usize>() != self.attention_head_dim
        {
            return Err(unsupported(format!(
                "axes_dims_rope {axes:?}: want 3 even sizes summing to attention_head_dim {}",
                self.attention_head_dim
            )));
        }
        Ok(())
    }
}

/// LayerNorm without affine over the last dimension, two-pass (mean, then the variance of
/// the centred values) in f32 like torch's kernel; a one-pass `E[x²] − mean²` in f32 loses
/// the variance when FLUX's residual stream has a large mean.
pub(super) fn layer_norm(x: &Tensor, eps: f64) -> Result<Tensor> {
    let dtype = x.dtype();
    let x = x.to_dtype(DType::F32)?;
    let xc = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    Ok(xc.broadcast_div(&(var + eps)?.sqrt()?)?.to_dtype(dtype)?)
}

/// A shape error of the inputs.
pub(super) fn shape_error(msg: String) -> Error {
    candle_core::Error::Msg(msg).into()
}

/// `x·(1 + scale) + shift`, scale and shift (B, D) broadcast over tokens.
pub(super) fn modulate(x: &Tensor, shift: &Tensor, scale: &Tensor) -> Result<Tensor> {
    Ok(x.broadcast_mul(&(scale + 1.0)?.unsqueeze(1)?)?
        .broadcast_add(&shift.unsqueeze(1)?)?)
}

/// `residual + gate·x`, gate (B, D) broadcast over tokens.
pub(super) fn gated_add(residual: &Tensor, gate: &Tensor, x: &Tensor) -> Result<Tensor> {
    Ok((residual + x.broadcast_mul(&gate.unsqueeze(1)?)?)?)
}

/// `silu(temb)` through a linear layer, split into `n` (B, D) chunks (diffusers' `chunk`).
#[derive(Debug)]
pub(super) struct Modulation {
    linear: Linear,
    n: usize,
}

impl Modulation {
    pub(super) fn new(vb: VarBuilder, dim: usize, n: usize) -> candle_core::Result<Self> {
        Ok(Self {
            linear: Linear::load(vb.pp("linear"), dim, n * dim, true)?,
            n,
        })
    }
    /// `temb_silu` is `silu(temb)`, computed once per call of the model.
    pub(super) fn forward(&self, temb_silu: &Tensor) -> Result<Vec<Tensor>> {
        let e = self.linear.forward(temb_silu)?;
        let d = e.dim(1)? / self.n;
        Ok((0..self.n)
            .map(|i| e.narrow(1, i * d, d))
            .collect::<candle_core::Result<_>>()?)
    }
}

/// diffusers' `TimestepEmbedding`: linear_1, SiLU, linear_2.
#[derive(Debug)]
pub(super) struct Mlp2 {
    linear_1: Linear,
    linear_2: Linear,
}

impl Mlp2 {
    pub(super) fn new(vb: VarBuilder, input: usize, dim: usize) -> candle_core::Result<Self> {
        Ok(Self {
            linear_1: Linear::load(vb.pp("linear_1"), input, dim, true)?,
            linear_2: Linear::load(vb.pp("linear_2"), dim, dim, true)?,
        })
    }
    pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.linear_2.forward(&self.linear_1.forward(x)?.silu()?)?)
    }
}

/// diffusers' `FeedForward(activation_fn="gelu-approximate")`: `net.0.proj`, tanh-GELU,
/// `net.2`.
#[derive(Debug)]
pub(super) struct FeedForward {
    proj: Linear,
    out: Linear,
}

impl FeedForward {
    pub(super) fn new(vb: VarBuilder, dim: usize) -> candle_core::Result<Self> {
        Ok(Self {
            proj: Linear::load(vb.pp("net.0.proj"), dim, 4 * dim, true)?,
            out: Linear::load(vb.pp("net.2"), 4 * dim, dim, true)?,
        })
    }
    pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.out.forward(&self.proj.forward(x)?.gelu()?)?)
    }
}

/// The rotary tables of one call: cos and sin (T, head_dim/2) in f32, text tokens first.
#[derive(Debug)]
pub struct Rope {
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    /// diffusers' `FluxPosEmbed(theta=10000)`: per axis `a` of width `d_a`, frequencies
    /// `1 / 10000^(2j/d_a)` and angles `id_a · freq` in f64, cos/sin rounded to f32.
    /// `ids` (T, 3) as f32 (text ids first, then image ids).
    pub fn new(ids: &Tensor, axes: &[usize]) -> Result<Self> {
        let ids = ids.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        let half: usize = axes.iter().sum::<usize>() / 2;
        let mut cos = Vec::with_capacity(ids.len() * half);
        let mut sin = Vec::with_capacity(ids.len() * half);
        let freqs: Vec<Vec<f64>> = axes
            .iter()
            .map(|&d| {
                (0..d / 2)
                    .map(|j| 1.0 / 10000f64.powf((2 * j) as f64 / d as f64))
                    .collect()
            })
            .collect();
        for row in &ids {
            if row.len() != axes.len() {
                return Err(shape_error(format!(
                    "rope: ids have {} axes, config {}",
                    row.len(),
                    axes.len()
                )));
            }
            for (a, f) in freqs.iter().enumerate() {
                for &fr in f {
                    let angle = row[a] as f64 * fr;
                    cos.push(angle.cos() as f32);
                    sin.push(angle.sin() as f32);
                }
            }
        }
        let n = ids.len();
        Ok(Self {
            cos: Tensor::from_vec(cos, (n, half), &Device::Cpu)?,
            sin: Tensor::from_vec(sin, (n, half), &Device::Cpu)?,
        })
    }

    fn to_device(&self, device: &Device) -> Result<Self> {
        Ok(Self {
            cos: self.cos.to_device(device)?,
            sin: self.sin.to_device(device)?,
        })
    }

    /// Rotates the pairs (x[2j], x[2j+1]) of `x` (B, T, H, D) in f32 (diffusers'
    /// `apply_rotary_emb` with `use_real_unbind_dim=-1`); returns (B, T, H·D).
    fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, h, d) = x.dims4()?;
        let dtype = x.dtype();
        let xt = x.to_dtype(DType::F32)?.transpose(1, 2)?.contiguous()?;
        let r = candle_nn::rotary_emb::rope_i(&xt, &self.cos, &self.sin)?;
        Ok(r.transpose(1, 2)?.reshape((b, t, h * d))?.to_dtype(dtype)?)
    }
}

/// RMSNorm over the head channels of (B, T, H, D), with weight (D).
pub(super) fn rms_norm(x: &Tensor, weight: &Tensor) -> Result<Tensor> {
    Ok(candle_nn::ops::rms_norm(&x.contiguous()?, weight, 1e-6)?)
}

/// diffusers' `FluxAttention`: q/k/v with bias, per-head RMSNorm on q and k; with `added`
/// (double blocks) the text stream has its own projections and joins the image stream in
/// one attention; `to_out` is absent in the single blocks (`pre_only`).
#[derive(Debug)]
struct Attention {
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    norm_q: Tensor,
    norm_k: Tensor,
    added: Option<Added>,
    to_out: Option<Linear>,
    heads: usize,
    head_dim: usize,
}

#[derive(Debug)]
struct Added {
    add_q_proj: Linear,
    add_k_proj: Linear,
    add_v_proj: Linear,
    norm_added_q: Tensor,
    norm_added_k: Tensor,
    to_add_out: Linear,
}

impl Attention {
    fn new(vb: VarBuilder, cfg: &FluxConfig, joint: bool) -> candle_core::Result<Self> {
        let (dim, hd) = (cfg.inner_dim(), cfg.attention_head_dim);
        let lin = |name: &str| Linear::load(vb.pp(name), dim, dim, true);
        let added = joint
            .then(|| -> candle_core::Result<Added> {
                Ok(Added {
                    add_q_proj: lin("add_q_proj")?,
                    add_k_proj: lin("add_k_proj")?,
                    add_v_proj: lin("add_v_proj")?,
                    norm_added_q: vb.get(hd, "norm_added_q.weight")?,
                    norm_added_k: vb.get(hd, "norm_added_k.weight")?,
                    to_add_out: lin("to_add_out")?,
                })
            })
            .transpose()?;
        Ok(Self {
            to_q: lin("to_q")?,
            to_k: lin("to_k")?,
            to_v: lin("to_v")?,
            norm_q: vb.get(hd, "norm_q.weight")?,
            norm_k: vb.get(hd, "norm_k.weight")?,
            added,
            to_out: joint.then(|| lin("to_out.0")).transpose()?,
            heads: cfg.num_attention_heads,
            head_dim: hd,
        })
    }

    fn heads4(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        Ok(x.reshape((b, t, self.heads, self.head_dim))?)
    }

    /// Joint attention over `[txt, img]` (double blocks): returns the projected
    /// (img, txt) outputs.
    fn forward_joint(&self, img: &Tensor, txt: &Tensor, rope: &Rope) -> Result<(Tensor, Tensor)> {
        let (Some(added), Some(to_out)) = (&self.added, &self.to_out) else {
            return Err(shape_error(
                "joint attention without text projections".into(),
            ));
        };
        let q = rms_norm(&self.heads4(&self.to_q.forward(img)?)?, &self.norm_q)?;
        let k = rms_norm(&self.heads4(&self.to_k.forward(img)?)?, &self.norm_k)?;
        let v = self.to_v.forward(img)?;
        let cq = rms_norm(
            &self.heads4(&added.add_q_proj.forward(txt)?)?,
            &added.norm_added_q,
        )?;
        let ck = rms_norm(
            &self.heads4(&added.add_k_proj.forward(txt)?)?,
            &added.norm_added_k,
        )?;
        let cv = added.add_v_proj.forward(txt)?;
        let q = rope.apply(&Tensor::cat(&[&cq, &q], 1)?)?;
        let k = rope.apply(&Tensor::cat(&[&ck, &k], 1)?)?;
        let v = Tensor::cat(&[&cv, &v], 1)?;
        let o = crate::ops::attention(&q, &k, &v, self.heads)?;
        let lt = txt.dim(1)?;
        let li = img.dim(1)?;
        let o_img = o.narrow(1, lt, li)?;
        let o_txt = o.narrow(1, 0, lt)?;
        Ok((
            to_out.forward(&o_img.contiguous()?)?,
            added.to_add_out.forward(&o_txt.contiguous()?)?,
        ))
    }

    /// Self-attention over the joint sequence (single blocks), no output projection.
    fn forward_single(&self, x: &Tensor, rope: &Rope) -> Result<Tensor> {
        let q = rms_norm(&self.heads4(&self.to_q.forward(x)?)?, &self.norm_q)?;
        let k = rms_norm(&self.heads4(&self.to_k.forward(x)?)?, &self.norm_k)?;
        let v = self.to_v.forward(x)?;
        Ok(crate::ops::attention(
            &rope.apply(&q)?,
            &rope.apply(&k)?,
            &v,
            self.heads,
        )?)
    }
}

/// `FluxTransformerBlock` (double stream).
#[derive(Debug)]
struct DoubleBlock {
    norm1: Modulation,
    norm1_context: Modulation,
    attn: Attention,
    ff: FeedForward,
    ff_context: FeedForward,
}

impl DoubleBlock {
    fn new(vb: VarBuilder, cfg: &FluxConfig) -> candle_core::Result<Self> {
        let dim = cfg.inner_dim();
        Ok(Self {
            norm1: Modulation::new(vb.pp("norm1"), dim, 6)?,
            norm1_context: Modulation::new(vb.pp("norm1_context"), dim, 6)?,
            attn: Attention::new(vb.pp("attn"), cfg, true)?,
            ff: FeedForward::new(vb.pp("ff"), dim)?,
            ff_context: FeedForward::new(vb.pp("ff_context"), dim)?,
        })
    }

    fn forward(
        &self,
        img: &Tensor,
        txt: &Tensor,
        temb_silu: &Tensor,
        rope: &Rope,
    ) -> Result<(Tensor, Tensor)> {
        // AdaLayerNormZero: (shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp).
        let m = self.norm1.forward(temb_silu)?;
        let c = self.norm1_context.forward(temb_silu)?;
        let img_n = modulate(&layer_norm(img, 1e-6)?, &m[0], &m[1])?;
        let txt_n = modulate(&layer_norm(txt, 1e-6)?, &c[0], &c[1])?;
        let (a_img, a_txt) = self.attn.forward_joint(&img_n, &txt_n, rope)?;
        let img = gated_add(img, &m[2], &a_img)?;
        let h = modulate(&layer_norm(&img, 1e-6)?, &m[3], &m[4])?;
        let img = gated_add(&img, &m[5], &self.ff.forward(&h)?)?;
        let txt = gated_add(txt, &c[2], &a_txt)?;
        let h = modulate(&layer_norm(&txt, 1e-6)?, &c[3], &c[4])?;
        let txt = gated_add(&txt, &c[5], &self.ff_context.forward(&h)?)?;
        Ok((img, txt))
    }
}

/// `FluxSingleTransformerBlock` on the joint sequence `[txt, img]`.
#[derive(Debug)]
struct SingleBlock {
    norm: Modulation,
    proj_mlp: Linear,
    proj_out: Linear,
    attn: Attention,
}

impl SingleBlock {
    fn new(vb: VarBuilder, cfg: &FluxConfig) -> candle_core::Result<Self> {
        let dim = cfg.inner_dim();
        Ok(Self {
            norm: Modulation::new(vb.pp("norm"), dim, 3)?,
            proj_mlp: Linear::load(vb.pp("proj_mlp"), dim, 4 * dim, true)?,
            proj_out: Linear::load(vb.pp("proj_out"), 5 * dim, dim, true)?,
            attn: Attention::new(vb.pp("attn"), cfg, false)?,
        })
    }

    fn forward(&self, x: &Tensor, temb_silu: &Tensor, rope: &Rope) -> Result<Tensor> {
        // AdaLayerNormZeroSingle: (shift, scale, gate).
        let m = self.norm.forward(temb_silu)?;
        let n = modulate(&layer_norm(x, 1e-6)?, &m[0], &m[1])?;
        let mlp = self.proj_mlp.forward(&n)?.gelu()?;
        let a = self.attn.forward_single(&n, rope)?;
        let h = self.proj_out.forward(&Tensor::cat(&[&a, &mlp], 2)?)?;
        gated_add(x, &m[2], &h)
    }
}

/// diffusers' `get_timestep_embedding(t, 256, flip_sin_to_cos=True, downscale_freq_shift=0)`
/// in f32: `[cos(t·f_i), sin(t·f_i)]`, `f_i = exp(−ln(10000)·i/128)`.
pub(super) fn timestep_features(t: &[f32], dim: usize) -> Vec<f32> {
    let half = dim / 2;
    // torch: f32(-ln 10000) * arange (f32), / half (f32), exp (f32).
    let c = -(10000f64.ln()) as f32;
    let freqs: Vec<f32> = (0..half)
        .map(|i| (c * i as f32 / half as f32).exp())
        .collect();
    let mut v = Vec::with_capacity(t.len() * dim);
    for &t in t {
        let args: Vec<f32> = freqs.iter().map(|f| t * f).collect();
        v.extend(args.iter().map(|a| a.cos()));
        v.extend(args.iter().map(|a| a.sin()));
    }
    v
}

/// Width of the sinusoidal timestep features.
pub(super) const TIME_FEATURES: usize = 256;

/// The FLUX.1 transformer.
#[derive(Debug)]
pub struct FluxTransformer {
    config: FluxConfig,
    x_embedder: Linear,
    context_embedder: Linear,
    timestep_embedder: Mlp2,
    guidance_embedder: Option<Mlp2>,
    text_embedder: Mlp2,
    blocks: Vec<DoubleBlock>,
    single_blocks: Vec<SingleBlock>,
    norm_out: Modulation,
    proj_out: Linear,
    dtype: DType,
    device: Device,
}

impl FluxTransformer {
    /// Builds the network from `vb` (tensor names as diffusers' state dict). The config
    /// must have passed [`FluxConfig::validate`].
    pub fn new(vb: VarBuilder, config: FluxConfig) -> candle_core::Result<Self> {
        let dim = config.inner_dim();
        let tt = vb.pp("time_text_embed");
        let blocks = (0..config.num_layers)
            .map(|i| DoubleBlock::new(vb.pp(format!("transformer_blocks.{i}")), &config))
            .collect::<candle_core::Result<_>>()?;
        let single_blocks = (0..config.num_single_layers)
            .map(|i| SingleBlock::new(vb.pp(format!("single_transformer_blocks.{i}")), &config))
            .collect::<candle_core::Result<_>>()?;
        Ok(Self {
            x_embedder: Linear::load(vb.pp("x_embedder"), config.in_channels, dim, true)?,
            context_embedder: Linear::load(
                vb.pp("context_embedder"),
                config.joint_attention_dim,
                dim,
                true,
            )?,
            timestep_embedder: Mlp2::new(tt.pp("timestep_embedder"), TIME_FEATURES, dim)?,
            guidance_embedder: config
                .guidance_embeds
                .then(|| Mlp2::new(tt.pp("guidance_embedder"), TIME_FEATURES, dim))
                .transpose()?,
            text_embedder: Mlp2::new(tt.pp("text_embedder"), config.pooled_projection_dim, dim)?,
            blocks,
            single_blocks,
            // AdaLayerNormContinuous: (scale, shift).
            norm_out: Modulation::new(vb.pp("norm_out"), dim, 2)?,
            proj_out: Linear::load(vb.pp("proj_out"), dim, config.out_dim(), true)?,
            dtype: vb.dtype(),
            device: vb.device().clone(),
            config,
        })
    }

    /// Reads `dir/config.json` and the weights (`diffusion_pytorch_model[.fp16].safetensors`
    /// or its shards) of a diffusers `transformer` folder.
    pub fn load(
        dir: &Path,
        device: &Device,
        dtype: DType,
        variant: super::sd::Variant,
    ) -> Result<Self> {
        super::sd::load_transformer(
            dir,
            Some((device, dtype)),
            variant,
            |c: &FluxConfig, path| c.validate(path),
            Self::new,
        )
    }

    /// Checks every tensor name and shape of a `transformer` folder against its config
    /// without reading any weight data (the result must not be run).
    pub fn check_shapes(dir: &Path, variant: super::sd::Variant) -> Result<Self> {
        super::sd::load_transformer(
            dir,
            None,
            variant,
            |c: &FluxConfig, path| c.validate(path),
            Self::new,
        )
    }

    /// The config.
    pub fn config(&self) -> &FluxConfig {
        &self.config
    }

    /// The network output (B, N, out) for packed latents `img` (B, N, in), text states
    /// `txt` (B, L, joint_attention_dim), pooled text embedding `pooled` (B, pooled dim),
    /// `timestep` (B) as FluxPipeline passes it (`t / 1000`, i.e. σ), `guidance` (B) for
    /// guidance-distilled models (the scale, e.g. 3.5), and position ids `img_ids` (N, 3),
    /// `txt_ids` (L, 3).
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        img: &Tensor,
        txt: &Tensor,
        pooled: &Tensor,
        timestep: &Tensor,
        guidance: Option<&Tensor>,
        img_ids: &Tensor,
        txt_ids: &Tensor,
    ) -> Result<Tensor> {
        let dt = self.dtype;
        let c = &self.config;
        let (b, n, f) = img.dims3()?;
        let (bt, l, ft) = txt.dims3()?;
        let inputs_fit = f == c.in_channels
            && (bt, ft) == (b, c.joint_attention_dim)
            && pooled.dims() == [b, c.pooled_projection_dim]
            && img_ids.dims() == [n, 3]
            && txt_ids.dims() == [l, 3];
        if !inputs_fit {
            return Err(shape_error(format!(
                "FluxTransformer: img {:?} (want (B, N, {})), txt {:?} (want (B, L, {})), \
                 pooled {:?} (want (B, {})), img_ids {:?} (want (N, 3)), txt_ids {:?} (want (L, 3))",
                img.dims(),
                c.in_channels,
                txt.dims(),
                c.joint_attention_dim,
                pooled.dims(),
                c.pooled_projection_dim,
                img_ids.dims(),
                txt_ids.dims()
            )));
        }
        let img = self.x_embedder.forward(&img.to_dtype(dt)?)?;
        // diffusers: `timestep.to(dtype) * 1000`, the sinusoid in f32, then back to dtype.
        let features = |t: &Tensor| -> Result<Tensor> {
            let t = (t.to_dtype(dt)? * 1000.0)?
                .to_dtype(DType::F32)?
                .to_vec1::<f32>()?;
            if t.len() != b {
                return Err(shape_error(format!(
                    "timestep/guidance: {} values for batch {b}",
                    t.len()
                )));
            }
            Ok(Tensor::from_vec(
                timestep_features(&t, TIME_FEATURES),
                (b, TIME_FEATURES),
                &self.device,
            )?
            .to_dtype(dt)?)
        };
        let mut temb = self.timestep_embedder.forward(&features(timestep)?)?;
        match (&self.guidance_embedder, guidance) {
            (Some(g), Some(scale)) => temb = (temb + g.forward(&features(scale)?)?)?,
            (None, None) => {}
            (Some(_), None) => {
                return Err(Error::InvalidOption {
                    name: "guidance",
                    reason: "this FLUX model is guidance-distilled and needs a guidance scale"
                        .into(),
                })
            }
            (None, Some(_)) => {
                return Err(Error::InvalidOption {
                    name: "guidance",
                    reason: "this FLUX model has no guidance embedding".into(),
                })
            }
        }
        let temb = (temb + self.text_embedder.forward(&pooled.to_dtype(dt)?)?)?;
        let temb_silu = temb.silu()?;
        let mut txt = self.context_embedder.forward(&txt.to_dtype(dt)?)?;
        let ids = Tensor::cat(
            &[
                &txt_ids.to_dtype(DType::F32)?,
                &img_ids.to_dtype(DType::F32)?,
            ],
            0,
        )?;
        let rope = Rope::new(&ids, &self.config.axes_dims_rope)?.to_device(&self.device)?;

        let mut img = img;
        for block in &self.blocks {
            (img, txt) = block.forward(&img, &txt, &temb_silu, &rope)?;
        }
        let lt = txt.dim(1)?;
        let mut x = Tensor::cat(&[&txt, &img], 1)?;
        drop((txt, img));
        for block in &self.single_blocks {
            x = block.forward(&x, &temb_silu, &rope)?;
        }
        let n = x.dim(1)? - lt;
        let x = x.narrow(1, lt, n)?;
        let m = self.norm_out.forward(&temb_silu)?;
        let x = modulate(&layer_norm(&x, 1e-6)?, &m[1], &m[0])?;
        Ok(self.proj_out.forward(&x)?)
    }
}

/// FluxPipeline's `_pack_latents`: (B, C, H, W) → (B, H/2·W/2, 4C), each 2×2 patch one token
/// with features ordered (channel, dy, dx).
pub fn pack_latents(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if h % 2 != 0 || w % 2 != 0 {
        return Err(shape_error(format!(
            "pack_latents: latent {h}x{w} is not even"
        )));
    }
    Ok(x.reshape((b, c, h / 2, 2, w / 2, 2))?
        .permute((0, 2, 4, 1, 3, 5))?
        .reshape((b, (h / 2) * (w / 2), c * 4))?)
}

/// FluxPipeline's `_unpack_latents`: (B, h/2·w/2, 4C) → (B, C, h, w) for a latent of `h`×`w`.
pub fn unpack_latents(x: &Tensor, h: usize, w: usize) -> Result<Tensor> {
    let (b, n, f) = x.dims3()?;
    if h % 2 != 0 || w % 2 != 0 || n != (h / 2) * (w / 2) || f % 4 != 0 {
        return Err(shape_error(format!(
            "unpack_latents: {n} tokens x {f} do not make a {h}x{w} latent"
        )));
    }
    Ok(x.reshape((b, h / 2, w / 2, f / 4, 2, 2))?
        .permute((0, 3, 1, 4, 2, 5))?
        .reshape((b, f / 4, h, w))?)
}

/// FluxPipeline's `_prepare_latent_image_ids(h/2, w/2)`: (h/2·w/2, 3) rows (0, row, col), f32.
pub fn latent_image_ids(h: usize, w: usize, device: &Device) -> Result<Tensor> {
    let (h2, w2) = (h / 2, w / 2);
    let mut v = Vec::with_capacity(h2 * w2 * 3);
    for r in 0..h2 {
        for c in 0..w2 {
            v.extend_from_slice(&[0.0, r as f32, c as f32]);
        }
    }
    Ok(Tensor::from_vec(v, (h2 * w2, 3), device)?)
}

/// FluxPipeline's text ids: `len` rows of zeros.
pub fn text_ids(len: usize, device: &Device) -> Result<Tensor> {
    Ok(Tensor::zeros((len, 3), DType::F32, device)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_then_unpack_is_the_identity_and_groups_2x2_patches() {
        let x = Tensor::arange(0f32, 2.0 * 3.0 * 4.0 * 6.0, &Device::Cpu)
            .unwrap()
            .reshape((2, 3, 4, 6))
            .unwrap();
        let p = pack_latents(&x).unwrap();
        assert_eq!(p.dims(), &[2, 6, 12]);
        // Token 0 of batch 0: channel 0's patch (0,0),(0,1),(1,0),(1,1) = 0, 1, 6, 7.
        let t0: Vec<f32> = p.get(0).unwrap().get(0).unwrap().to_vec1().unwrap();
        assert_eq!(&t0[..4], &[0.0, 1.0, 6.0, 7.0]);
        let back = unpack_latents(&p, 4, 6).unwrap();
        assert_eq!(
            back.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            x.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
        assert!(unpack_latents(&p, 4, 4).is_err());
    }

    #[test]
    fn image_ids_are_row_col() {
        let ids = latent_image_ids(4, 6, &Device::Cpu).unwrap();
        let v = ids.to_vec2::<f32>().unwrap();
        assert_eq!(v.len(), 6);
        assert_eq!(v[4], vec![0.0, 1.0, 1.0]);
        assert_eq!(v[2], vec![0.0, 0.0, 2.0]);
    }

    #[test]
    fn rope_at_position_zero_is_the_identity() {
        let ids = Tensor::zeros((3, 3), DType::F32, &Device::Cpu).unwrap();
        let r = Rope::new(&ids, &[2, 2, 4]).unwrap();
        let x = Tensor::arange(0f32, 1.0 * 3.0 * 2.0 * 8.0, &Device::Cpu)
            .unwrap()
            .reshape((1, 3, 2, 8))
            .unwrap();
        let y = r.apply(&x).unwrap();
        assert_eq!(
            y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            x.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
    }

    #[test]
    fn layer_norm_keeps_the_variance_under_a_large_mean() {
        // Values 4096 + {-1, 0, 1, 0}: in f32, E[x^2] - mean^2 cancels to garbage; the
        // two-pass form gives the exact normalised values (-sqrt 2, 0, sqrt 2, 0).
        let x = Tensor::new(&[[4095f32, 4096.0, 4097.0, 4096.0]], &Device::Cpu).unwrap();
        let y = layer_norm(&x, 0.0).unwrap().to_vec2::<f32>().unwrap();
        let want = [-(2f32.sqrt()), 0.0, 2f32.sqrt(), 0.0];
        for (g, w) in y[0].iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{:?}", y);
        }
    }

    #[test]
    fn config_validation_refuses_bad_rope_axes() {
        let mut c: FluxConfig = serde_json::from_str("{}").unwrap();
        assert!(c.validate(Path::new("config.json")).is_ok());
        c.axes_dims_rope = vec![16, 56, 54];
        assert!(c.validate(Path::new("config.json")).is_err());
    }
}
