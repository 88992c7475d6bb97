//! diffusers' `AutoencoderKL` (the SD VAE). Written here for two reasons: TTPO needs the
//! posterior MEAN, which candle keeps private, and the config (groups, depth) must be read
//! from the folder rather than assumed.

use super::layers::{attention, conv, group_norm, ResnetBlock};
use crate::ops::{Conv, GroupNorm, Linear};
use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

fn three() -> usize {
    3
}
fn groups32() -> usize {
    32
}
fn sf() -> f64 {
    0.18215
}
fn yes() -> bool {
    true
}

/// The fields of `vae/config.json` this implementation reads.
#[derive(Clone, Debug, Deserialize)]
pub struct VaeConfig {
    /// Image channels in.
    #[serde(default = "three")]
    pub in_channels: usize,
    /// Image channels out.
    #[serde(default = "three")]
    pub out_channels: usize,
    /// Width per level.
    pub block_out_channels: Vec<usize>,
    /// ResNets per encoder level (decoder levels have one more).
    pub layers_per_block: usize,
    /// Latent channels (4 for SD).
    pub latent_channels: usize,
    /// GroupNorm groups.
    #[serde(default = "groups32")]
    pub norm_num_groups: usize,
    /// Latents are multiplied by this after encoding (0.18215 for SD 1/2).
    #[serde(default = "sf")]
    pub scaling_factor: f64,
    /// Subtracted before scaling (absent for SD 1/2).
    #[serde(default)]
    pub shift_factor: Option<f64>,
    /// Whether the 1x1 quant convolutions exist.
    #[serde(default = "yes")]
    pub use_quant_conv: bool,
    /// Whether post_quant_conv exists.
    #[serde(default = "yes")]
    pub use_post_quant_conv: bool,
    /// Whether the mid blocks have attention.
    #[serde(default = "yes")]
    pub mid_block_add_attention: bool,
    /// Native image size.
    #[serde(default)]
    pub sample_size: Option<usize>,
}

impl VaeConfig {
    /// Bounds every size read from the config (see [`super::config`]).
    pub fn check_sizes(&self, path: &std::path::Path) -> crate::Result<()> {
        use super::config::{check_finite, check_levels, check_size, MAX_COUNT, MAX_WIDTH};
        check_size(path, "in_channels", self.in_channels, MAX_WIDTH)?;
        check_size(path, "out_channels", self.out_channels, MAX_WIDTH)?;
        check_levels(path, &self.block_out_channels, self.norm_num_groups)?;
        check_size(path, "layers_per_block", self.layers_per_block, MAX_COUNT)?;
        check_size(path, "latent_channels", self.latent_channels, MAX_WIDTH)?;
        check_finite(path, "scaling_factor", self.scaling_factor)?;
        check_finite(path, "shift_factor", self.shift_factor.unwrap_or(0.0))?;
        if let Some(s) = self.sample_size {
            // In pixels here (512/768 for SD, 1024 for FLUX); it can pad job canvases.
            check_size(path, "sample_size", s, 8192)?;
        }
        Ok(())
    }

    /// Pixels per latent element along each axis: `2^(levels - 1)`.
    pub fn latent_factor(&self) -> usize {
        1 << (self.block_out_channels.len().saturating_sub(1))
    }
}

/// The VAE's single-head self-attention over pixels, with its own GroupNorm.
#[derive(Debug)]
struct PixelAttention {
    norm: GroupNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
}

impl PixelAttention {
    fn new(vb: VarBuilder, ch: usize, groups: usize) -> Result<Self> {
        Ok(Self {
            norm: group_norm(vb.pp("group_norm"), groups, ch, 1e-6)?,
            q: Linear::load(vb.pp("to_q"), ch, ch, true)?,
            k: Linear::load(vb.pp("to_k"), ch, ch, true)?,
            v: Linear::load(vb.pp("to_v"), ch, ch, true)?,
            out: Linear::load(vb.pp("to_out.0"), ch, ch, true)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let t = self
            .norm
            .forward(x)?
            .flatten_from(2)?
            .transpose(1, 2)?
            .contiguous()?;
        let a = attention(
            &self.q.forward(&t)?,
            &self.k.forward(&t)?,
            &self.v.forward(&t)?,
            1,
        )?;
        let o = self
            .out
            .forward(&a)?
            .transpose(1, 2)?
            .reshape((b, c, h, w))?;
        o + x
    }
}

#[derive(Debug)]
struct Mid {
    res0: ResnetBlock,
    attn: Option<PixelAttention>,
    res1: ResnetBlock,
}

impl Mid {
    fn new(vb: VarBuilder, ch: usize, cfg: &VaeConfig) -> Result<Self> {
        let g = cfg.norm_num_groups;
        Ok(Self {
            res0: ResnetBlock::new(vb.pp("resnets.0"), ch, ch, None, g, 1e-6)?,
            attn: cfg
                .mid_block_add_attention
                .then(|| PixelAttention::new(vb.pp("attentions.0"), ch, g))
                .transpose()?,
            res1: ResnetBlock::new(vb.pp("resnets.1"), ch, ch, None, g, 1e-6)?,
        })
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = self.res0.forward(x, None)?;
        if let Some(a) = &self.attn {
            h = a.forward(&h)?;
        }
        self.res1.forward(&h, None)
    }
}

#[derive(Debug)]
struct Level {
    resnets: Vec<ResnetBlock>,
    resample: Option<Conv>,
}

/// Encoder + decoder.
#[derive(Debug)]
pub struct Vae {
    config: VaeConfig,
    enc_in: Conv,
    enc_levels: Vec<Level>,
    enc_mid: Mid,
    enc_norm: GroupNorm,
    enc_out: Conv,
    quant: Option<Conv>,
    post_quant: Option<Conv>,
    dec_in: Conv,
    dec_mid: Mid,
    dec_levels: Vec<Level>,
    dec_norm: GroupNorm,
    dec_out: Conv,
    dtype: DType,
}

impl Vae {
    /// Builds the VAE from `vb` (rooted at the VAE's tensors).
    pub fn new(vb: VarBuilder, config: VaeConfig) -> Result<Self> {
        let cfg = &config;
        let ch = &cfg.block_out_channels;
        if ch.is_empty() {
            candle_core::bail!("vae block_out_channels is empty");
        }
        let n = ch.len();
        let g = cfg.norm_num_groups;
        let lat = cfg.latent_channels;
        let e = vb.pp("encoder");
        let mut enc_levels = Vec::new();
        let mut cin = ch[0];
        for (i, &cout) in ch.iter().enumerate() {
            let vbb = e.pp("down_blocks").pp(i);
            let resnets = (0..cfg.layers_per_block)
                .map(|j| {
                    ResnetBlock::new(
                        vbb.pp("resnets").pp(j),
                        if j == 0 { cin } else { cout },
                        cout,
                        None,
                        g,
                        1e-6,
                    )
                })
                .collect::<Result<_>>()?;
            // Stride-2 conv with no padding; the (0, 1, 0, 1) padding is added in forward.
            let resample = (i + 1 < n)
                .then(|| conv(vbb.pp("downsamplers.0.conv"), cout, cout, 3, 2, 0))
                .transpose()?;
            enc_levels.push(Level { resnets, resample });
            cin = cout;
        }
        let d = vb.pp("decoder");
        let rev: Vec<usize> = ch.iter().rev().copied().collect();
        let mut dec_levels = Vec::new();
        let mut prev = rev[0];
        for (i, &cout) in rev.iter().enumerate() {
            let vbb = d.pp("up_blocks").pp(i);
            let resnets = (0..=cfg.layers_per_block)
                .map(|j| {
                    ResnetBlock::new(
                        vbb.pp("resnets").pp(j),
                        if j == 0 { prev } else { cout },
                        cout,
                        None,
                        g,
                        1e-6,
                    )
                })
                .collect::<Result<_>>()?;
            let resample = (i + 1 < n)
                .then(|| conv(vbb.pp("upsamplers.0.conv"), cout, cout, 3, 1, 1))
                .transpose()?;
            dec_levels.push(Level { resnets, resample });
            prev = cout;
        }
        Ok(Self {
            enc_in: conv(e.pp("conv_in"), cfg.in_channels, ch[0], 3, 1, 1)?,
            enc_levels,
            enc_mid: Mid::new(e.pp("mid_block"), ch[n - 1], cfg)?,
            enc_norm: group_norm(e.pp("conv_norm_out"), g, ch[n - 1], 1e-6)?,
            enc_out: conv(e.pp("conv_out"), ch[n - 1], 2 * lat, 3, 1, 1)?,
            quant: cfg
                .use_quant_conv
                .then(|| conv(vb.pp("quant_conv"), 2 * lat, 2 * lat, 1, 1, 0))
                .transpose()?,
            post_quant: cfg
                .use_post_quant_conv
                .then(|| conv(vb.pp("post_quant_conv"), lat, lat, 1, 1, 0))
                .transpose()?,
            dec_in: conv(d.pp("conv_in"), lat, rev[0], 3, 1, 1)?,
            dec_mid: Mid::new(d.pp("mid_block"), rev[0], cfg)?,
            dec_levels,
            dec_norm: group_norm(d.pp("conv_norm_out"), g, ch[0], 1e-6)?,
            dec_out: conv(d.pp("conv_out"), ch[0], cfg.out_channels, 3, 1, 1)?,
            dtype: vb.dtype(),
            config,
        })
    }

    /// The config the VAE was built from.
    pub fn config(&self) -> &VaeConfig {
        &self.config
    }

    /// The dtype it computes in.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// What every backbone's `encode` is: the pipelines' scaled posterior-mean latents
    /// (f32) of images (B, 3, H, W) in [-1, 1].
    pub fn encode_latents(&self, image: &Tensor) -> Result<Tensor> {
        let mean = self.encode_mean(&image.to_dtype(self.dtype)?)?;
        self.to_latents(&mean.to_dtype(DType::F32)?)
    }

    /// What every backbone's `decode` is: images in [-1, 1] (f32, clamped) from scaled
    /// latents.
    pub fn decode_latents(&self, latents: &Tensor) -> Result<Tensor> {
        let z = self.from_latents(latents)?;
        let img = self.decode(&z.to_dtype(self.dtype)?)?;
        img.to_dtype(DType::F32)?.clamp(-1f32, 1f32)
    }

    /// Estimated working memory in bytes of one decode of a `side x side` pixel tile (the
    /// encoder needs less); sizes the VAE tiles, see `crate::tiling`. Two terms, calibrated
    /// with `examples/tiling.rs calibrate` (docs/TILING.md):
    /// - the full-resolution stage: the upsampler's convolution there works on the
    ///   second-widest channel count (block_out_channels[1]) and keeps input, output and a
    ///   convolution buffer alive: ~20 bytes per channel and pixel at f32 (measured 19.6 on
    ///   the SD 2.x VAE, 17.5 on the tiny one);
    /// - the mid-block attention at latent resolution: scores and their softmax, two f32
    ///   blocks of tokens^2 (capped by the attention's row blocking).
    pub fn tile_bytes(&self, side: usize) -> usize {
        let cfg = &self.config;
        let c = &cfg.block_out_channels;
        let wide = c.get(1).copied().unwrap_or(c[0]).max(c[0]);
        let elem = self.dtype.size_in_bytes();
        let conv = 5 * elem * wide * side * side;
        let tokens = (side / cfg.latent_factor()).pow(2);
        let attn = if cfg.mid_block_add_attention {
            2 * 4
                * tokens
                    .saturating_mul(tokens)
                    .min(crate::diffusion::layers::MAX_SCORE_ELEMENTS)
        } else {
            0
        };
        conv + attn
    }

    /// The pipelines' latents of a posterior mean: `(z − shift_factor) · scaling_factor`
    /// (SD 1/2 have no shift; FLUX.1 and SD3 do).
    pub fn to_latents(&self, mean: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        (mean - c.shift_factor.unwrap_or(0.0))? * c.scaling_factor
    }

    /// The inverse of [`Self::to_latents`]: `latents / scaling_factor + shift_factor`, what
    /// [`Self::decode`] takes.
    #[allow(clippy::wrong_self_convention)]
    pub fn from_latents(&self, latents: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        (latents / c.scaling_factor)? + c.shift_factor.unwrap_or(0.0)
    }

    /// Reads a `vae` folder (config.json + diffusion_pytorch_model safetensors).
    pub fn load(
        dir: &std::path::Path,
        device: &candle_core::Device,
        dtype: candle_core::DType,
        variant: super::sd::Variant,
    ) -> crate::Result<Self> {
        super::sd::load_folder(
            dir,
            "vae",
            "diffusion_pytorch_model",
            variant,
            device,
            dtype,
            super::sd::Read::Data,
            |c: &VaeConfig, path| c.check_sizes(path),
            Self::new,
        )
    }

    /// The posterior mean (unscaled) of images in [-1, 1], (B, 3, H, W) with H and W
    /// multiples of the latent factor.
    pub fn encode_mean(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = self.enc_in.forward(x)?;
        for level in &self.enc_levels {
            for r in &level.resnets {
                h = r.forward(&h, None)?;
            }
            if let Some(ds) = &level.resample {
                h = ds.forward(&h.pad_with_zeros(2, 0, 1)?.pad_with_zeros(3, 0, 1)?)?;
            }
        }
        h = self.enc_mid.forward(&h)?;
        h = self.enc_out.forward(&self.enc_norm.forward_silu(&h)?)?;
        if let Some(q) = &self.quant {
            h = q.forward(&h)?;
        }
        // The first half of the moments is the mean; the log-variance half is not needed.
        h.narrow(1, 0, self.config.latent_channels)
    }

    /// Decodes unscaled latents to images in (roughly) [-1, 1].
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        let mut h = match &self.post_quant {
            Some(p) => p.forward(z)?,
            None => z.clone(),
        };
        h = self.dec_in.forward(&h)?;
        h = self.dec_mid.forward(&h)?;
        for level in &self.dec_levels {
            for r in &level.resnets {
                h = r.forward(&h, None)?;
            }
            if let Some(us) = &level.resample {
                h = us.forward_upsample2(&h)?;
            }
        }
        self.dec_out.forward(&self.dec_norm.forward_silu(&h)?)
    }
}
