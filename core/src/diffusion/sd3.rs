//! diffusers' `SD3Transformer2DModel` (the MMDiT of Stable Diffusion 3 / 3.5) under diffusers'
//! tensor names.
//!
//! The latent (B, 16, H, W) is cut into `patch_size`² patches by a strided convolution
//! (`pos_embed.proj`) and a 2-D sin-cos position table is added; the table is the
//! `pos_embed.pos_embed` buffer of the weights file (`pos_embed_max_size`² positions),
//! centre-cropped to the latent's patch grid as diffusers' `PatchEmbed.cropped_pos_embed`.
//! Text states (CLIP-L/G + T5, `context_embedder`) and image tokens run through `num_layers`
//! joint blocks: separate weights per stream, one attention over `[image, text]` (image
//! first, unlike FLUX), AdaLayerNormZero on both streams; the last block is
//! `context_pre_only` (its text stream only feeds the attention). SD3.5 adds per-head
//! RMSNorm on q/k (`qk_norm = "rms_norm"`) and, in `dual_attention_layers`, a second
//! image-only attention `attn2` with its own modulation (`SD35AdaLayerNormZeroX`). There is
//! no RoPE: positions enter only through the table. Conditioning:
//! `temb = timestep_emb(t) + text_embedder(pooled)`, `t` as the SD3 pipelines pass it
//! (0..1000, not divided).
//!
//! Numerics as FLUX (`flux.rs`): tanh-GELU (`FeedForward(activation_fn="gelu-approximate")`),
//! two-pass LayerNorms without affine (eps 1e-6), RMSNorm eps 1e-6, `norm_out` modulation
//! (scale, shift).

use super::flux::{
    gated_add, layer_norm, modulate, rms_norm, shape_error, timestep_features, FeedForward, Mlp2,
    Modulation, TIME_FEATURES,
};
use crate::error::{Error, Result};
use crate::ops::Linear;
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

fn d_sample() -> usize {
    128
}
fn d_patch() -> usize {
    2
}
fn d_in() -> usize {
    16
}
fn d_layers() -> usize {
    18
}
fn d_head_dim() -> usize {
    64
}
fn d_heads() -> usize {
    18
}
fn d_joint() -> usize {
    4096
}
fn d_caption() -> usize {
    1152
}
fn d_pooled() -> usize {
    2048
}
fn d_out() -> Option<usize> {
    Some(16)
}
fn d_max() -> Option<usize> {
    Some(96)
}

/// `transformer/config.json` (diffusers' fields and defaults). Any other field not starting
/// with `_` is refused: it would change the network in a way this port does not know.
#[derive(Clone, Debug, Deserialize)]
pub struct Sd3Config {
    /// Training latent size (only sizes diffusers' unused uncropped table).
    #[serde(default = "d_sample")]
    pub sample_size: usize,
    /// Side of the square patches.
    #[serde(default = "d_patch")]
    pub patch_size: usize,
    /// Latent channels.
    #[serde(default = "d_in")]
    pub in_channels: usize,
    /// Joint blocks.
    #[serde(default = "d_layers")]
    pub num_layers: usize,
    /// Channels per head.
    #[serde(default = "d_head_dim")]
    pub attention_head_dim: usize,
    /// Heads; the width is `heads × head dim`.
    #[serde(default = "d_heads")]
    pub num_attention_heads: usize,
    /// Width of the text states (T5-XXL: 4096).
    #[serde(default = "d_joint")]
    pub joint_attention_dim: usize,
    /// Width `context_embedder` maps the text states to (must equal the transformer width).
    #[serde(default = "d_caption")]
    pub caption_projection_dim: usize,
    /// Width of the pooled text embedding (CLIP-L ⊕ CLIG-G: 2048).
    #[serde(default = "d_pooled")]
    pub pooled_projection_dim: usize,
    /// Output latent channels (default: `in_channels` when null).
    #[serde(default = "d_out")]
    pub out_channels: Option<usize>,
    /// Side of the stored position table, in patches.
    #[serde(default = "d_max")]
    pub pos_embed_max_size: Option<usize>,
    /// Blocks with the second, image-only attention (SD3.5).
    #[serde(default)]
    pub dual_attention_layers: Vec<usize>,
    /// `"rms_norm"` (SD3.5) or none (SD3).
    #[serde(default)]
    pub qk_norm: Option<String>,
    /// Everything else; names starting with `_` are metadata.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl Sd3Config {
    /// The transformer's width.
    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    /// Output latent channels.
    pub fn out_dim(&self) -> usize {
        self.out_channels.unwrap_or(self.in_channels)
    }

    /// Whether q/k get a per-head RMSNorm.
    pub fn qk_rms_norm(&self) -> bool {
        self.qk_norm.is_some()
    }

    /// Bounds, consistency and refusal of options this port does not implement, before any
    /// size drives an allocation.
    pub fn validate(&self, path: &Path) -> Result<()> {
        use super::config::{check_size, MAX_COUNT, MAX_WIDTH};
        let unsupported = |reason: String| Error::Unsupported {
            path: path.into(),
            reason,
        };
        if let Some(k) = self.other.keys().find(|k| !k.starts_with('_')) {
            return Err(unsupported(format!(
                "SD3Transformer2DModel option `{k}` is not supported"
            )));
        }
        match self.qk_norm.as_deref() {
            None | Some("rms_norm") => {}
            Some(other) => {
                return Err(unsupported(format!(
                    "qk_norm = {other:?} (SD3.5 uses \"rms_norm\")"
                )))
            }
        }
        let Some(max) = self.pos_embed_max_size else {
            return Err(unsupported(
                "pos_embed_max_size = null (every SD3/SD3.5 release crops a stored table)".into(),
            ));
        };
        check_size(path, "pos_embed_max_size", max, 1024)?;
        check_size(path, "patch_size", self.patch_size, 16)?;
        check_size(path, "in_channels", self.in_channels, MAX_WIDTH)?;
        check_size(path, "out_channels", self.out_dim(), MAX_WIDTH)?;
        check_size(path, "num_layers", self.num_layers, MAX_COUNT)?;
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
        if self.caption_projection_dim != self.inner_dim() {
            return Err(unsupported(format!(
                "caption_projection_dim {} differs from the width {} (heads x head dim)",
                self.caption_projection_dim,
                self.inner_dim()
            )));
        }
        if let Some(&i) = self
            .dual_attention_layers
            .iter()
            .find(|&&i| i >= self.num_layers)
        {
            return Err(unsupported(format!(
                "dual_attention_layers names block {i} of {}",
                self.num_layers
            )));
        }
        Ok(())
    }
}

/// diffusers' `Attention` with `JointAttnProcessor2_0`: q/k/v with bias, optional per-head
/// RMSNorm; with `added` the text stream has its own projections and joins the image stream
/// in one attention.
#[derive(Debug)]
struct Attention {
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    /// `norm_q`, `norm_k` weights (qk_norm only).
    norm_qk: Option<(Tensor, Tensor)>,
    to_out: Linear,
    added: Option<Added>,
    heads: usize,
    head_dim: usize,
}

#[derive(Debug)]
struct Added {
    add_q_proj: Linear,
    add_k_proj: Linear,
    add_v_proj: Linear,
    norm_added_qk: Option<(Tensor, Tensor)>,
    /// Absent in the `context_pre_only` block.
    to_add_out: Option<Linear>,
}

impl Attention {
    /// `joint`: with text projections; `pre_only`: without `to_add_out`.
    fn new(
        vb: VarBuilder,
        cfg: &Sd3Config,
        joint: bool,
        pre_only: bool,
    ) -> candle_core::Result<Self> {
        let (dim, hd) = (cfg.inner_dim(), cfg.attention_head_dim);
        let lin = |name: &str| Linear::load(vb.pp(name), dim, dim, true);
        let norms = |q: &str, k: &str| -> candle_core::Result<Option<(Tensor, Tensor)>> {
            cfg.qk_rms_norm()
                .then(|| Ok((vb.get(hd, q)?, vb.get(hd, k)?)))
                .transpose()
        };
        let added = joint
            .then(|| -> candle_core::Result<Added> {
                Ok(Added {
                    add_q_proj: lin("add_q_proj")?,
                    add_k_proj: lin("add_k_proj")?,
                    add_v_proj: lin("add_v_proj")?,
                    norm_added_qk: norms("norm_added_q.weight", "norm_added_k.weight")?,
                    to_add_out: (!pre_only).then(|| lin("to_add_out")).transpose()?,
                })
            })
            .transpose()?;
        Ok(Self {
            to_q: lin("to_q")?,
            to_k: lin("to_k")?,
            to_v: lin("to_v")?,
            norm_qk: norms("norm_q.weight", "norm_k.weight")?,
            to_out: lin("to_out.0")?,
            added,
            heads: cfg.num_attention_heads,
            head_dim: hd,
        })
    }

    /// q, k, v of one stream, q and k normalised per head when configured; (B, T, H·D).
    fn qkv(
        &self,
        x: &Tensor,
        proj: [&Linear; 3],
        norms: &Option<(Tensor, Tensor)>,
    ) -> Result<[Tensor; 3]> {
        let (b, t, _) = x.dims3()?;
        let mut q = proj[0].forward(x)?;
        let mut k = proj[1].forward(x)?;
        if let Some((nq, nk)) = norms {
            let per_head = |y: &Tensor, w: &Tensor| -> Result<Tensor> {
                let y = y.reshape((b, t, self.heads, self.head_dim))?;
                Ok(rms_norm(&y, w)?.reshape((b, t, self.heads * self.head_dim))?)
            };
            q = per_head(&q, nq)?;
            k = per_head(&k, nk)?;
        }
        Ok([q, k, proj[2].forward(x)?])
    }

    /// Joint attention over `[img, txt]`: the projected image output and, unless
    /// `context_pre_only`, the projected text output.
    fn forward_joint(&self, img: &Tensor, txt: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
        let Some(added) = &self.added else {
            return Err(shape_error(
                "joint attention without text projections".into(),
            ));
        };
        let [q, k, v] = self.qkv(img, [&self.to_q, &self.to_k, &self.to_v], &self.norm_qk)?;
        let [cq, ck, cv] = self.qkv(
            txt,
            [&added.add_q_proj, &added.add_k_proj, &added.add_v_proj],
            &added.norm_added_qk,
        )?;
        let o = crate::ops::attention(
            &Tensor::cat(&[&q, &cq], 1)?,
            &Tensor::cat(&[&k, &ck], 1)?,
            &Tensor::cat(&[&v, &cv], 1)?,
            self.heads,
        )?;
        let (li, lt) = (img.dim(1)?, txt.dim(1)?);
        let o_img = self.to_out.forward(&o.narrow(1, 0, li)?.contiguous()?)?;
        let o_txt = added
            .to_add_out
            .as_ref()
            .map(|l| l.forward(&o.narrow(1, li, lt)?.contiguous()?))
            .transpose()?;
        Ok((o_img, o_txt))
    }

    /// Self-attention of the image stream (SD3.5's `attn2`).
    fn forward_self(&self, x: &Tensor) -> Result<Tensor> {
        let [q, k, v] = self.qkv(x, [&self.to_q, &self.to_k, &self.to_v], &self.norm_qk)?;
        Ok(self
            .to_out
            .forward(&crate::ops::attention(&q, &k, &v, self.heads)?)?)
    }
}

/// The text stream's side of a block: AdaLayerNormZero and a feed-forward, or in the last
/// block only AdaLayerNormContinuous (the stream is not used afterwards).
#[derive(Debug)]
enum Context {
    Full {
        norm1_context: Modulation,
        ff_context: FeedForward,
    },
    PreOnly {
        norm1_context: Modulation,
    },
}

/// diffusers' `JointTransformerBlock`.
#[derive(Debug)]
struct JointBlock {
    /// 6 chunks, or 9 with `attn2` (SD35AdaLayerNormZeroX).
    norm1: Modulation,
    context: Context,
    attn: Attention,
    attn2: Option<Attention>,
    ff: FeedForward,
}

impl JointBlock {
    fn new(vb: VarBuilder, cfg: &Sd3Config, i: usize) -> candle_core::Result<Self> {
        let dim = cfg.inner_dim();
        let pre_only = i + 1 == cfg.num_layers;
        let dual = cfg.dual_attention_layers.contains(&i);
        let context = if pre_only {
            Context::PreOnly {
                norm1_context: Modulation::new(vb.pp("norm1_context"), dim, 2)?,
            }
        } else {
            Context::Full {
                norm1_context: Modulation::new(vb.pp("norm1_context"), dim, 6)?,
                ff_context: FeedForward::new(vb.pp("ff_context"), dim)?,
            }
        };
        Ok(Self {
            norm1: Modulation::new(vb.pp("norm1"), dim, if dual { 9 } else { 6 })?,
            context,
            attn: Attention::new(vb.pp("attn"), cfg, true, pre_only)?,
            attn2: dual
                .then(|| Attention::new(vb.pp("attn2"), cfg, false, false))
                .transpose()?,
            ff: FeedForward::new(vb.pp("ff"), dim)?,
        })
    }

    /// Returns (img, txt); txt is `None` after the `context_pre_only` block.
    fn forward(
        &self,
        img: &Tensor,
        txt: &Tensor,
        temb_silu: &Tensor,
    ) -> Result<(Tensor, Option<Tensor>)> {
        // (shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp[, shift_msa2,
        // scale_msa2, gate_msa2]); both attention inputs modulate the same LayerNorm.
        let m = self.norm1.forward(temb_silu)?;
        let img_ln = layer_norm(img, 1e-6)?;
        let img_n = modulate(&img_ln, &m[0], &m[1])?;
        let (txt_n, c) = match &self.context {
            Context::Full { norm1_context, .. } => {
                let c = norm1_context.forward(temb_silu)?;
                (modulate(&layer_norm(txt, 1e-6)?, &c[0], &c[1])?, Some(c))
            }
            // AdaLayerNormContinuous: (scale, shift).
            Context::PreOnly { norm1_context } => {
                let c = norm1_context.forward(temb_silu)?;
                (modulate(&layer_norm(txt, 1e-6)?, &c[1], &c[0])?, None)
            }
        };
        let (a_img, a_txt) = self.attn.forward_joint(&img_n, &txt_n)?;
        let mut img = gated_add(img, &m[2], &a_img)?;
        if let Some(attn2) = &self.attn2 {
            let n2 = modulate(&img_ln, &m[6], &m[7])?;
            img = gated_add(&img, &m[8], &attn2.forward_self(&n2)?)?;
        }
        let h = modulate(&layer_norm(&img, 1e-6)?, &m[3], &m[4])?;
        let img = gated_add(&img, &m[5], &self.ff.forward(&h)?)?;
        let txt = match (&self.context, c, a_txt) {
            (Context::Full { ff_context, .. }, Some(c), Some(a_txt)) => {
                let txt = gated_add(txt, &c[2], &a_txt)?;
                let h = modulate(&layer_norm(&txt, 1e-6)?, &c[3], &c[4])?;
                Some(gated_add(&txt, &c[5], &ff_context.forward(&h)?)?)
            }
            _ => None,
        };
        Ok((img, txt))
    }
}

/// The SD3 / SD3.5 transformer.
#[derive(Debug)]
pub struct Sd3Transformer {
    config: Sd3Config,
    /// `pos_embed.proj`: the p×p stride-p convolution as the linear map of each patch's
    /// (channel, dy, dx) values (the same products; candle's CPU conv has no bf16).
    patch_proj: Linear,
    /// `pos_embed.pos_embed` (max², width), f32.
    pos_table: Tensor,
    context_embedder: Linear,
    timestep_embedder: Mlp2,
    text_embedder: Mlp2,
    blocks: Vec<JointBlock>,
    norm_out: Modulation,
    proj_out: Linear,
    dtype: DType,
    device: Device,
}

impl Sd3Transformer {
    /// Builds the network from `vb` (tensor names as diffusers' state dict, including the
    /// `pos_embed.pos_embed` buffer). The config must have passed [`Sd3Config::validate`].
    pub fn new(vb: VarBuilder, config: Sd3Config) -> candle_core::Result<Self> {
        let dim = config.inner_dim();
        let p = config.patch_size;
        let max = config.pos_embed_max_size.unwrap_or(0);
        let tt = vb.pp("time_text_embed");
        let blocks = (0..config.num_layers)
            .map(|i| JointBlock::new(vb.pp(format!("transformer_blocks.{i}")), &config, i))
            .collect::<candle_core::Result<_>>()?;
        Ok(Self {
            patch_proj: {
                let vp = vb.pp("pos_embed.proj");
                let k = config.in_channels * p * p;
                let w = vp.get((dim, config.in_channels, p, p), "weight")?;
                Linear::new(w.reshape((dim, k))?, Some(vp.get(dim, "bias")?))
            },
            pos_table: vb
                .get((1, max * max, dim), "pos_embed.pos_embed")?
                .squeeze(0)?
                .to_dtype(DType::F32)?,
            context_embedder: Linear::load(
                vb.pp("context_embedder"),
                config.joint_attention_dim,
                config.caption_projection_dim,
                true,
            )?,
            timestep_embedder: Mlp2::new(tt.pp("timestep_embedder"), TIME_FEATURES, dim)?,
            // PixArtAlphaTextProjection(act_fn="silu"): the same linear, SiLU, linear.
            text_embedder: Mlp2::new(tt.pp("text_embedder"), config.pooled_projection_dim, dim)?,
            blocks,
            norm_out: Modulation::new(vb.pp("norm_out"), dim, 2)?,
            proj_out: Linear::load(vb.pp("proj_out"), dim, p * p * config.out_dim(), true)?,
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
            |c: &Sd3Config, path| c.validate(path),
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
            |c: &Sd3Config, path| c.validate(path),
            Self::new,
        )
    }

    /// The config.
    pub fn config(&self) -> &Sd3Config {
        &self.config
    }

    /// `PatchEmbed.cropped_pos_embed`: the centred `h`×`w` window of the table, (1, h·w, D).
    fn cropped_pos_embed(&self, h: usize, w: usize) -> Result<Tensor> {
        let max = self.config.pos_embed_max_size.unwrap_or(0);
        if h > max || w > max {
            return Err(shape_error(format!(
                "SD3: a {h}x{w} patch grid exceeds pos_embed_max_size {max}"
            )));
        }
        let (top, left) = ((max - h) / 2, (max - w) / 2);
        let d = self.pos_table.dim(1)?;
        Ok(self
            .pos_table
            .reshape((max, max, d))?
            .narrow(0, top, h)?
            .narrow(1, left, w)?
            .reshape((1, h * w, d))?)
    }

    /// The network output (B, out, H, W) for latents `x` (B, in, H, W), text states `txt`
    /// (B, L, joint_attention_dim), pooled text embedding `pooled` (B, pooled dim) and
    /// `timestep` (B) as the SD3 pipelines pass it (`1000·σ`).
    pub fn forward(
        &self,
        x: &Tensor,
        txt: &Tensor,
        pooled: &Tensor,
        timestep: &Tensor,
    ) -> Result<Tensor> {
        let dt = self.dtype;
        let c = &self.config;
        let p = c.patch_size;
        let (b, ch, hh, ww) = x.dims4()?;
        let (bt, _, ft) = txt.dims3()?;
        let inputs_fit = ch == c.in_channels
            && hh % p == 0
            && ww % p == 0
            && (bt, ft) == (b, c.joint_attention_dim)
            && pooled.dims() == [b, c.pooled_projection_dim];
        if !inputs_fit {
            return Err(shape_error(format!(
                "Sd3Transformer: latent {:?} (want (B, {}, H, W), sides multiples of {p}), \
                 txt {:?} (want (B, L, {})), pooled {:?} (want (B, {}))",
                x.dims(),
                c.in_channels,
                txt.dims(),
                c.joint_attention_dim,
                pooled.dims(),
                c.pooled_projection_dim
            )));
        }
        let (h, w) = (hh / p, ww / p);
        // PatchEmbed: each patch projected, (B, h·w, D) in row-major patch order, plus the
        // cropped table in f32, then the model's dtype (torch promotes, then casts back).
        let patches = x
            .to_dtype(dt)?
            .reshape((b, ch, h, p, w, p))?
            .permute((0, 2, 4, 1, 3, 5))?
            .reshape((b, h * w, ch * p * p))?;
        let img = self.patch_proj.forward(&patches)?;
        let pos = self.cropped_pos_embed(h, w)?.to_device(&self.device)?;
        let img = img
            .to_dtype(DType::F32)?
            .broadcast_add(&pos)?
            .to_dtype(dt)?;
        // Timesteps(256, flip_sin_to_cos, shift 0) in f32, cast to the model's dtype.
        let t = timestep.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        if t.len() != b {
            return Err(shape_error(format!(
                "timestep: {} values for batch {b}",
                t.len()
            )));
        }
        let features = Tensor::from_vec(
            timestep_features(&t, TIME_FEATURES),
            (b, TIME_FEATURES),
            &self.device,
        )?
        .to_dtype(dt)?;
        let temb = (self.timestep_embedder.forward(&features)?
            + self.text_embedder.forward(&pooled.to_dtype(dt)?)?)?;
        let temb_silu = temb.silu()?;
        let mut txt = Some(self.context_embedder.forward(&txt.to_dtype(dt)?)?);
        let mut img = img;
        for block in &self.blocks {
            let Some(t) = txt.take() else {
                return Err(shape_error(
                    "SD3: a block after the context_pre_only one".into(),
                ));
            };
            (img, txt) = block.forward(&img, &t, &temb_silu)?;
        }
        let m = self.norm_out.forward(&temb_silu)?;
        let y = modulate(&layer_norm(&img, 1e-6)?, &m[1], &m[0])?;
        let y = self.proj_out.forward(&y)?;
        // Unpatchify: (B, h·w, p·p·C) -> (B, h, w, p, p, C) -> "nhwpqc->nchpwq".
        let o = c.out_dim();
        Ok(y.reshape((b, h, w, p, p, o))?
            .permute((0, 5, 1, 3, 2, 4))?
            .reshape((b, o, h * p, w * p))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> Sd3Config {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn config_defaults_are_sd3_medium_and_unknown_options_are_refused() {
        let p = Path::new("config.json");
        let c = cfg(
            r#"{"_class_name": "SD3Transformer2DModel", "num_layers": 24,
                        "num_attention_heads": 24, "caption_projection_dim": 1536}"#,
        );
        assert!(c.validate(p).is_ok());
        assert_eq!(c.inner_dim(), 1536);
        let bad = cfg(r#"{"caption_projection_dim": 1152, "use_pos_embed": false}"#);
        let e = bad.validate(p).unwrap_err().to_string();
        assert!(e.contains("use_pos_embed"), "{e}");
        let bad = cfg(r#"{"caption_projection_dim": 1152, "qk_norm": "layer_norm"}"#);
        assert!(bad.validate(p).is_err());
        let bad = cfg(r#"{"caption_projection_dim": 1152, "dual_attention_layers": [18]}"#);
        assert!(bad.validate(p).is_err());
        let bad = cfg(r#"{"caption_projection_dim": 1152, "pos_embed_max_size": null}"#);
        assert!(bad.validate(p).is_err());
        let bad = cfg(r#"{"caption_projection_dim": 1000}"#);
        assert!(bad.validate(p).is_err());
    }
}
