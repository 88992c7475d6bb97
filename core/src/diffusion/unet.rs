//! The SD 1.x / 2.x denoiser: diffusers' `UNet2DConditionModel`, written here because
//! candle-transformers' version differs from diffusers on identical weights (it ignores
//! `norm_num_groups` in plain down/up blocks and uses tanh-GELU in the feed-forward).
//! Tensor names follow diffusers exactly, so Hub checkpoints load unchanged.

use super::layers::{conv, group_norm, CrossAttention, ResnetBlock};
use crate::ops::Linear;
use crate::ops::{Conv, GroupNorm};
use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{LayerNorm, VarBuilder};
use serde::Deserialize;

/// An int or a per-block list in a diffusers config.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum PerBlock {
    /// Same value for every block.
    One(usize),
    /// One value per down block.
    Each(Vec<usize>),
}

impl PerBlock {
    fn get(&self, i: usize) -> usize {
        match self {
            PerBlock::One(v) => *v,
            PerBlock::Each(v) => v[i.min(v.len() - 1)],
        }
    }
    fn len_ok(&self, n: usize) -> bool {
        match self {
            PerBlock::One(_) => true,
            PerBlock::Each(v) => v.len() == n,
        }
    }
}

fn one() -> PerBlock {
    PerBlock::One(1)
}
fn groups32() -> usize {
    32
}
fn eps5() -> f64 {
    1e-5
}
fn yes() -> bool {
    true
}

/// The fields of diffusers' `unet/config.json` this implementation reads.
#[derive(Clone, Debug, Deserialize)]
pub struct UNetConfig {
    /// Latent channels in.
    pub in_channels: usize,
    /// Channels out.
    pub out_channels: usize,
    /// Width of each resolution level.
    pub block_out_channels: Vec<usize>,
    /// ResNets per down block (up blocks have one more).
    pub layers_per_block: usize,
    /// `CrossAttnDownBlock2D` / `DownBlock2D` per level.
    pub down_block_types: Vec<String>,
    /// `UpBlock2D` / `CrossAttnUpBlock2D` per level (deepest first).
    pub up_block_types: Vec<String>,
    /// Width of the text states.
    pub cross_attention_dim: usize,
    /// Historically misnamed: the number of attention heads for SD 1.x / 2.x.
    pub attention_head_dim: PerBlock,
    /// When set, the real number of heads (newer configs).
    #[serde(default)]
    pub num_attention_heads: Option<PerBlock>,
    /// Transformer blocks per attention (1 for SD 1/2).
    #[serde(default = "one")]
    pub transformer_layers_per_block: PerBlock,
    /// GroupNorm groups.
    #[serde(default = "groups32")]
    pub norm_num_groups: usize,
    /// GroupNorm epsilon.
    #[serde(default = "eps5")]
    pub norm_eps: f64,
    /// Linear (SD 2.x) or 1x1-conv (SD 1.x) projections around the transformers.
    #[serde(default)]
    pub use_linear_projection: bool,
    /// Order of the sinusoidal embedding halves.
    #[serde(default = "yes")]
    pub flip_sin_to_cos: bool,
    /// Frequency shift of the sinusoidal embedding.
    #[serde(default)]
    pub freq_shift: f64,
    /// Native latent size.
    #[serde(default)]
    pub sample_size: Option<usize>,
    /// Must be null.
    #[serde(default)]
    pub class_embed_type: Option<String>,
    /// Must be null.
    #[serde(default)]
    pub addition_embed_type: Option<String>,
    /// Must be "default".
    #[serde(default)]
    pub resnet_time_scale_shift: Option<String>,
    /// Must be false.
    #[serde(default)]
    pub only_cross_attention: Option<serde_json::Value>,
    /// Must be false.
    #[serde(default)]
    pub dual_cross_attention: Option<bool>,
    /// Must be "UNetMidBlock2DCrossAttn" (or absent).
    #[serde(default)]
    pub mid_block_type: Option<String>,
    /// Must be false.
    #[serde(default)]
    pub center_input_sample: bool,
}

impl UNetConfig {
    /// Reasons this config is outside what the implementation supports.
    pub fn unsupported(&self) -> Option<String> {
        let n = self.block_out_channels.len();
        if n == 0 || self.down_block_types.len() != n || self.up_block_types.len() != n {
            return Some(
                "block_out_channels / down_block_types / up_block_types lengths differ".into(),
            );
        }
        if !self.attention_head_dim.len_ok(n) || !self.transformer_layers_per_block.len_ok(n) {
            return Some("per-block lists do not match the number of blocks".into());
        }
        if let Some(c) = &self.class_embed_type {
            return Some(format!("class_embed_type {c:?}"));
        }
        if let Some(a) = &self.addition_embed_type {
            return Some(format!(
                "addition_embed_type {a:?} (SDXL-style conditioning)"
            ));
        }
        if self
            .resnet_time_scale_shift
            .as_deref()
            .is_some_and(|s| s != "default")
        {
            return Some("resnet_time_scale_shift other than default".into());
        }
        if matches!(&self.only_cross_attention, Some(v) if v != &serde_json::Value::Bool(false)) {
            return Some("only_cross_attention".into());
        }
        if self.dual_cross_attention == Some(true) || self.center_input_sample {
            return Some("dual_cross_attention / center_input_sample".into());
        }
        if self
            .mid_block_type
            .as_deref()
            .is_some_and(|m| m != "UNetMidBlock2DCrossAttn")
        {
            return Some(format!("mid_block_type {:?}", self.mid_block_type));
        }
        for t in self.down_block_types.iter().chain(&self.up_block_types) {
            if !matches!(
                t.as_str(),
                "CrossAttnDownBlock2D" | "DownBlock2D" | "CrossAttnUpBlock2D" | "UpBlock2D"
            ) {
                return Some(format!("block type {t}"));
            }
        }
        for (i, &c) in self.block_out_channels.iter().enumerate() {
            if c % self.heads(i) != 0 {
                return Some(format!(
                    "block {i}: {c} channels not divisible by {} heads",
                    self.heads(i)
                ));
            }
        }
        None
    }

    /// Bounds every size read from the config (see [`super::config`]); run before
    /// [`UNetConfig::unsupported`], whose checks divide by these numbers.
    pub fn check_sizes(&self, path: &std::path::Path) -> crate::Result<()> {
        use super::config::{check_finite, check_levels, check_size, MAX_COUNT, MAX_WIDTH};
        check_size(path, "in_channels", self.in_channels, MAX_WIDTH)?;
        check_size(path, "out_channels", self.out_channels, MAX_WIDTH)?;
        check_levels(path, &self.block_out_channels, self.norm_num_groups)?;
        check_size(path, "layers_per_block", self.layers_per_block, MAX_COUNT)?;
        check_size(
            path,
            "cross_attention_dim",
            self.cross_attention_dim,
            MAX_WIDTH,
        )?;
        check_finite(path, "norm_eps", self.norm_eps)?;
        check_finite(path, "freq_shift", self.freq_shift)?;
        if let Some(s) = self.sample_size {
            // The native size pads every job's canvas: 1024 latent rows is 8192 px for SD.
            check_size(path, "sample_size", s, 1024)?;
        }
        let lists = [
            ("attention_head_dim", Some(&self.attention_head_dim)),
            ("num_attention_heads", self.num_attention_heads.as_ref()),
            (
                "transformer_layers_per_block",
                Some(&self.transformer_layers_per_block),
            ),
        ];
        for (name, list) in lists {
            let values: &[usize] = match list {
                Some(PerBlock::One(v)) => std::slice::from_ref(v),
                Some(PerBlock::Each(v)) if v.is_empty() => {
                    return check_size(path, &format!("len({name})"), 0, MAX_COUNT)
                }
                Some(PerBlock::Each(v)) => v,
                None => &[],
            };
            for &v in values {
                check_size(path, name, v, MAX_COUNT)?;
            }
        }
        Ok(())
    }

    fn heads(&self, block: usize) -> usize {
        self.num_attention_heads
            .as_ref()
            .unwrap_or(&self.attention_head_dim)
            .get(block)
    }
}

/// `BasicTransformerBlock`: self-attention, cross-attention, GEGLU feed-forward.
#[derive(Debug)]
struct TransformerBlock {
    norm1: LayerNorm,
    attn1: CrossAttention,
    norm2: LayerNorm,
    attn2: CrossAttention,
    norm3: LayerNorm,
    ff_proj: Linear,
    ff_out: Linear,
}

impl TransformerBlock {
    fn new(vb: VarBuilder, dim: usize, heads: usize, context_dim: usize) -> Result<Self> {
        let ln = |name: &str| candle_nn::layer_norm(dim, 1e-5, vb.pp(name));
        let ff_inner = 4 * dim;
        Ok(Self {
            norm1: ln("norm1")?,
            attn1: CrossAttention::new(vb.pp("attn1"), dim, dim, heads, dim, false)?,
            norm2: ln("norm2")?,
            attn2: CrossAttention::new(vb.pp("attn2"), dim, context_dim, heads, dim, false)?,
            norm3: ln("norm3")?,
            ff_proj: Linear::load(vb.pp("ff.net.0.proj"), dim, 2 * ff_inner, true)?,
            ff_out: Linear::load(vb.pp("ff.net.2"), ff_inner, dim, true)?,
        })
    }

    fn forward(&self, x: &Tensor, context: &Tensor) -> Result<Tensor> {
        let x = self.attn1.forward_add(&self.norm1.forward(x)?, None, x)?;
        let x = self
            .attn2
            .forward_add(&self.norm2.forward(&x)?, Some(context), &x)?;
        // GEGLU with diffusers' exact (erf) GELU.
        let h = self.ff_proj.forward_geglu(&self.norm3.forward(&x)?)?;
        self.ff_out.forward_add(&h, &x)
    }
}

/// Input/output projection of a `Transformer2DModel`: 1x1 conv (SD 1.x) or linear (SD 2.x).
#[derive(Debug)]
enum Proj {
    Conv(Conv),
    Linear(Linear),
}

/// `Transformer2DModel`: GroupNorm, projection in, transformer blocks, projection out,
/// residual.
#[derive(Debug)]
struct SpatialTransformer {
    norm: GroupNorm,
    proj_in: Proj,
    blocks: Vec<TransformerBlock>,
    proj_out: Proj,
}

impl SpatialTransformer {
    fn new(
        vb: VarBuilder,
        ch: usize,
        heads: usize,
        layers: usize,
        cfg: &UNetConfig,
    ) -> Result<Self> {
        let proj = |name: &str| -> Result<Proj> {
            Ok(if cfg.use_linear_projection {
                Proj::Linear(Linear::load(vb.pp(name), ch, ch, true)?)
            } else {
                Proj::Conv(conv(vb.pp(name), ch, ch, 1, 1, 0)?)
            })
        };
        Ok(Self {
            norm: group_norm(vb.pp("norm"), cfg.norm_num_groups, ch, 1e-6)?,
            proj_in: proj("proj_in")?,
            blocks: (0..layers)
                .map(|i| {
                    TransformerBlock::new(
                        vb.pp("transformer_blocks").pp(i),
                        ch,
                        heads,
                        cfg.cross_attention_dim,
                    )
                })
                .collect::<Result<_>>()?,
            proj_out: proj("proj_out")?,
        })
    }

    fn forward(&self, x: &Tensor, context: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let to_tokens =
            |t: Tensor| -> Result<Tensor> { t.flatten_from(2)?.transpose(1, 2)?.contiguous() };
        let to_map = |t: Tensor| -> Result<Tensor> { t.transpose(1, 2)?.reshape((b, c, h, w)) };
        let normed = self.norm.forward(x)?;
        let mut t = match &self.proj_in {
            Proj::Conv(p) => to_tokens(p.forward(&normed)?)?,
            Proj::Linear(p) => p.forward(&to_tokens(normed)?)?,
        };
        for block in &self.blocks {
            t = block.forward(&t, context)?;
        }
        let out = match &self.proj_out {
            Proj::Conv(p) => p.forward(&to_map(t)?)?,
            Proj::Linear(p) => to_map(p.forward(&t)?)?,
        };
        out + x
    }
}

#[derive(Debug)]
struct Level {
    resnets: Vec<ResnetBlock>,
    attentions: Vec<SpatialTransformer>,
    resample: Option<Conv>,
}

/// The UNet.
#[derive(Debug)]
pub struct UNet {
    config: UNetConfig,
    conv_in: Conv,
    time_1: Linear,
    time_2: Linear,
    down: Vec<Level>,
    mid_res: (ResnetBlock, ResnetBlock),
    mid_attn: SpatialTransformer,
    up: Vec<Level>,
    norm_out: GroupNorm,
    conv_out: Conv,
}

impl UNet {
    /// Builds the network from `vb` (rooted at the UNet's tensors).
    pub fn new(vb: VarBuilder, config: UNetConfig) -> Result<Self> {
        if let Some(reason) = config.unsupported() {
            candle_core::bail!("unsupported UNet config: {reason}");
        }
        let cfg = &config;
        let chans = &cfg.block_out_channels;
        let n = chans.len();
        let temb = chans[0] * 4;
        let (groups, eps) = (cfg.norm_num_groups, cfg.norm_eps);
        let conv_in = conv(vb.pp("conv_in"), cfg.in_channels, chans[0], 3, 1, 1)?;
        let time_1 = Linear::load(vb.pp("time_embedding.linear_1"), chans[0], temb, true)?;
        let time_2 = Linear::load(vb.pp("time_embedding.linear_2"), temb, temb, true)?;

        let mut down = Vec::with_capacity(n);
        let mut cin = chans[0];
        for (i, kind) in cfg.down_block_types.iter().enumerate() {
            let vbb = vb.pp("down_blocks").pp(i);
            let cout = chans[i];
            let mut resnets = Vec::new();
            let mut attentions = Vec::new();
            for j in 0..cfg.layers_per_block {
                let c = if j == 0 { cin } else { cout };
                resnets.push(ResnetBlock::new(
                    vbb.pp("resnets").pp(j),
                    c,
                    cout,
                    Some(temb),
                    groups,
                    eps,
                )?);
                if kind == "CrossAttnDownBlock2D" {
                    attentions.push(SpatialTransformer::new(
                        vbb.pp("attentions").pp(j),
                        cout,
                        cfg.heads(i),
                        cfg.transformer_layers_per_block.get(i),
                        cfg,
                    )?);
                }
            }
            let resample = (i + 1 < n)
                .then(|| conv(vbb.pp("downsamplers.0.conv"), cout, cout, 3, 2, 1))
                .transpose()?;
            down.push(Level {
                resnets,
                attentions,
                resample,
            });
            cin = cout;
        }

        let top = chans[n - 1];
        let vbm = vb.pp("mid_block");
        let mid_res = (
            ResnetBlock::new(vbm.pp("resnets.0"), top, top, Some(temb), groups, eps)?,
            ResnetBlock::new(vbm.pp("resnets.1"), top, top, Some(temb), groups, eps)?,
        );
        let mid_attn = SpatialTransformer::new(
            vbm.pp("attentions.0"),
            top,
            cfg.heads(n - 1),
            cfg.transformer_layers_per_block.get(n - 1),
            cfg,
        )?;

        let mut up = Vec::with_capacity(n);
        let rev: Vec<usize> = chans.iter().rev().copied().collect();
        let mut prev_out = rev[0];
        for (i, kind) in cfg.up_block_types.iter().enumerate() {
            let vbb = vb.pp("up_blocks").pp(i);
            let cout = rev[i];
            let cin_level = rev[(i + 1).min(n - 1)];
            let level = n - 1 - i;
            let mut resnets = Vec::new();
            let mut attentions = Vec::new();
            for j in 0..=cfg.layers_per_block {
                let skip = if j == cfg.layers_per_block {
                    cin_level
                } else {
                    cout
                };
                let res_in = if j == 0 { prev_out } else { cout };
                resnets.push(ResnetBlock::new(
                    vbb.pp("resnets").pp(j),
                    res_in + skip,
                    cout,
                    Some(temb),
                    groups,
                    eps,
                )?);
                if kind == "CrossAttnUpBlock2D" {
                    attentions.push(SpatialTransformer::new(
                        vbb.pp("attentions").pp(j),
                        cout,
                        cfg.heads(level),
                        cfg.transformer_layers_per_block.get(level),
                        cfg,
                    )?);
                }
            }
            let resample = (i + 1 < n)
                .then(|| conv(vbb.pp("upsamplers.0.conv"), cout, cout, 3, 1, 1))
                .transpose()?;
            up.push(Level {
                resnets,
                attentions,
                resample,
            });
            prev_out = cout;
        }
        Ok(Self {
            norm_out: group_norm(vb.pp("conv_norm_out"), groups, chans[0], eps)?,
            conv_out: conv(vb.pp("conv_out"), chans[0], cfg.out_channels, 3, 1, 1)?,
            config,
            conv_in,
            time_1,
            time_2,
            down,
            mid_res,
            mid_attn,
            up,
        })
    }

    /// The config the network was built from.
    pub fn config(&self) -> &UNetConfig {
        &self.config
    }

    /// Sinusoidal timestep embedding, as diffusers' `get_timestep_embedding`.
    fn time_features(
        &self,
        t: f64,
        batch: usize,
        dtype: DType,
        device: &candle_core::Device,
    ) -> Result<Tensor> {
        let dim = self.config.block_out_channels[0];
        let half = dim / 2;
        let mut v = Vec::with_capacity(dim);
        let args: Vec<f32> = (0..half)
            .map(|i| {
                let exponent =
                    -(10000f32.ln()) * i as f32 / (half as f32 - self.config.freq_shift as f32);
                t as f32 * exponent.exp()
            })
            .collect();
        let (sin, cos): (Vec<f32>, Vec<f32>) = args.iter().map(|a| (a.sin(), a.cos())).unzip();
        if self.config.flip_sin_to_cos {
            v.extend(cos);
            v.extend(sin);
        } else {
            v.extend(sin);
            v.extend(cos);
        }
        v.resize(dim, 0.0);
        Tensor::from_vec(v, (1, dim), device)?
            .to_dtype(dtype)?
            .repeat((batch, 1))
    }

    /// The model output for latents `x` (B, C, H, W) at timestep `t` with text states
    /// `context` (B, 77, D). H and W must be multiples of `2^(levels-1)`.
    pub fn forward(&self, x: &Tensor, t: f64, context: &Tensor) -> Result<Tensor> {
        let b = x.dim(0)?;
        let temb = self.time_features(t, b, x.dtype(), x.device())?;
        let temb = self.time_2.forward(&self.time_1.forward(&temb)?.silu()?)?;
        let temb = Some(&temb);

        let mut h = self.conv_in.forward(x)?;
        let mut skips = vec![h.clone()];
        for level in &self.down {
            for (j, res) in level.resnets.iter().enumerate() {
                h = res.forward(&h, temb)?;
                if let Some(attn) = level.attentions.get(j) {
                    h = attn.forward(&h, context)?;
                }
                skips.push(h.clone());
            }
            if let Some(ds) = &level.resample {
                h = ds.forward(&h)?;
                skips.push(h.clone());
            }
        }
        h = self.mid_res.0.forward(&h, temb)?;
        h = self.mid_attn.forward(&h, context)?;
        h = self.mid_res.1.forward(&h, temb)?;
        for level in &self.up {
            for (j, res) in level.resnets.iter().enumerate() {
                let skip = skips.pop().expect("one skip per up resnet");
                h = res.forward(&Tensor::cat(&[&h, &skip], 1)?, temb)?;
                if let Some(attn) = level.attentions.get(j) {
                    h = attn.forward(&h, context)?;
                }
            }
            if let Some(us) = &level.resample {
                h = us.forward_upsample2(&h)?;
            }
        }
        self.conv_out.forward(&self.norm_out.forward_silu(&h)?)
    }
}
