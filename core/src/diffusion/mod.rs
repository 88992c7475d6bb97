//! Diffusion backbones: the [`Backbone`] trait the TTPO stages are written against and its
//! three families — Stable Diffusion 1.x / 2.x (`sd`), FLUX.1 (`flux_pipeline`) and SD3 /
//! SD3.5 (`sd3_pipeline`) — with their parts; `model_folder::load_backbone` picks the
//! family from a folder's `model_index.json`, and `sampler` gives all of them one schedule
//! interface (DDIM or flow-match Euler).

pub mod clip_text;
pub mod config;
pub mod flow_scheduler;
pub mod flux;
pub mod flux_pipeline;
pub mod layers;
pub mod model_folder;
pub mod prompt_cache;
pub mod sampler;
pub mod scheduler;
pub mod sd;
pub mod sd3;
pub mod sd3_pipeline;
pub mod t5;
pub mod t5_tokenizer;
/// Writes tiny random models with the real architectures; only tests, examples and
/// fuzzers need it (feature `testing`).
#[cfg(feature = "testing")]
pub mod tiny;
#[cfg(feature = "testing")]
mod tiny_flux;
#[cfg(feature = "testing")]
mod tiny_sd3;
pub mod tokenizer;
pub mod unet;
pub mod vae;
pub mod weights;

use crate::error::{Error, Result};
use candle_core::{Device, Tensor};
use sampler::Sampler;

/// What the TTPO stages need from a latent diffusion model, whatever its family: SD 1.x /
/// 2.x (UNet, DDIM, CFG) and the rectified-flow FLUX.1 and SD3 (transformer, flow-match
/// Euler; FLUX.1-dev guidance-distilled). Latents are always the *unpacked* spatial
/// latent (B, C, h, w): FLUX's 2x2 token packing happens inside its `model_output`, so
/// Stage III's frequency split and the tiles see the image's geometry on every family.
pub trait Backbone: Send + Sync {
    /// A short name for reports (the model folder's name).
    fn name(&self) -> &str;
    /// Where its tensors live.
    fn device(&self) -> &Device;
    /// Image sides must be multiples of this (VAE factor x the network's downsampling or
    /// patch size).
    fn pad_multiple(&self) -> usize;
    /// Pixels per latent element along an axis.
    fn vae_factor(&self) -> usize;
    /// Latent channels.
    fn latent_channels(&self) -> usize;
    /// The resolution the model was trained at, in pixels (the default network tile).
    fn native_size(&self) -> usize;
    /// The smallest canvas side a job pads its image to: SD 1.x/2.x degrade below their
    /// native size, so small images are padded up to it; the flow models work at any
    /// multiple of their patch (the reproduction runs FLUX.1 at 512 px, half its native
    /// 1024), so they only need [`Backbone::pad_multiple`].
    fn min_side(&self) -> usize {
        self.native_size()
    }
    /// Estimated working memory in bytes of one VAE decode of a `side x side` pixel tile
    /// (the encoder needs less); sizes the VAE tiles, see `crate::tiling`.
    fn vae_tile_bytes(&self, side: usize) -> usize;
    /// The sampler (scheduler config) each run's schedule is made from.
    fn sampler(&self) -> &Sampler;
    /// Guidance-distilled models (FLUX.1-dev) take the guidance scale as an input and make
    /// one row per latent; the others use classifier-free guidance (two rows).
    fn guidance_distilled(&self) -> bool {
        false
    }
    /// Text conditioning for several prompts, in order (an empty prompt is valid). A
    /// backbone whose text encoders are costly to bring in reads them once for the list.
    fn encode_text(&self, prompts: &[&str]) -> Result<Vec<TextStates>>;
    /// Scaled posterior-mean latents (B, C, h, w), f32, of images (B, 3, H, W) in [-1, 1].
    fn encode(&self, image: &Tensor) -> Result<Tensor>;
    /// Images in [-1, 1] (f32) from scaled latents.
    fn decode(&self, latent: &Tensor) -> Result<Tensor>;
    /// The network output (f32) for latents `x` at time `t` ([`sampler::Schedule::timestep`])
    /// with batch-matched `text`; `guidance` is the scale of a guidance-distilled model
    /// (`None` for the others).
    fn model_output(
        &self,
        x: &Tensor,
        t: f64,
        text: &TextStates,
        guidance: Option<f64>,
    ) -> Result<Tensor>;
}

/// One prompt's conditioning (or a batch of them, stacked along dim 0).
#[derive(Clone, Debug)]
pub struct TextStates {
    /// Per-token states (B, L, D).
    pub states: Tensor,
    /// The pooled embedding (B, P) of the models that take one (FLUX.1's CLIP-L pooled
    /// output, SD3's CLIP-L ⊕ CLIP-G projections); `None` for SD 1.x / 2.x.
    pub pooled: Option<Tensor>,
}

impl TextStates {
    /// States without a pooled embedding.
    pub fn tokens(states: Tensor) -> Self {
        Self {
            states,
            pooled: None,
        }
    }

    /// This (batch 1) repeated `b` times along the batch.
    pub fn repeat(&self, b: usize) -> Result<Self> {
        Ok(Self {
            states: self.states.repeat((b, 1, 1))?,
            pooled: match &self.pooled {
                Some(p) => Some(p.repeat((b, 1))?),
                None => None,
            },
        })
    }

    /// `a` then `b` along the batch.
    pub fn cat(a: &Self, b: &Self) -> Result<Self> {
        Ok(Self {
            states: Tensor::cat(&[&a.states, &b.states], 0)?,
            pooled: match (&a.pooled, &b.pooled) {
                (Some(p), Some(q)) => Some(Tensor::cat(&[p, q], 0)?),
                _ => None,
            },
        })
    }
}

/// The text conditioning of one job: the prompt and the negative (unconditional) prompt,
/// each batch 1, encoded once per job. A guidance-distilled backbone never uses the
/// negative prompt, so it is not encoded for one (`uncond` is `None`).
#[derive(Clone, Debug)]
pub struct Prompts {
    /// The prompt's states.
    pub cond: TextStates,
    /// The negative prompt's states (CFG backbones only).
    pub uncond: Option<TextStates>,
}

impl Prompts {
    /// Encodes the prompts with the backbone's own tokenizers and text encoders.
    pub fn encode(backbone: &dyn Backbone, prompt: &str, negative: &str) -> Result<Self> {
        let list: &[&str] = if backbone.guidance_distilled() {
            &[prompt]
        } else {
            &[prompt, negative]
        };
        let mut states = backbone.encode_text(list)?.into_iter();
        let cond = states.next();
        let uncond = states.next();
        match cond {
            Some(cond) if uncond.is_some() || backbone.guidance_distilled() => {
                Ok(Self { cond, uncond })
            }
            _ => Err(Error::Backend(candle_core::Error::Msg(format!(
                "{}: encode_text answered fewer states than prompts",
                backbone.name()
            )))),
        }
    }
}

/// Network rows one latent takes at guidance `scale`: 2 with classifier-free guidance
/// (unconditional and conditional), 1 without (scale 1) or on a guidance-distilled model.
pub fn rows_per_latent(backbone: &dyn Backbone, scale: f64) -> usize {
    if backbone.guidance_distilled() || scale == 1.0 {
        1
    } else {
        2
    }
}

/// The guided network output for a batch of latents `x` (B, C, h, w) at time `t`. With
/// classifier-free guidance: one call on the batch doubled (unconditional half first),
/// combined as `uncond + scale (cond - uncond)`; a scale of 1 needs only the conditional
/// half. A guidance-distilled model gets the scale as its guidance input instead, one row
/// per latent.
pub fn guided_output(
    backbone: &dyn Backbone,
    x: &Tensor,
    t: f64,
    prompts: &Prompts,
    scale: f64,
) -> Result<Tensor> {
    let b = x.dim(0)?;
    if backbone.guidance_distilled() {
        return backbone.model_output(x, t, &prompts.cond.repeat(b)?, Some(scale));
    }
    if scale == 1.0 {
        return backbone.model_output(x, t, &prompts.cond.repeat(b)?, None);
    }
    let uncond = prompts.uncond.as_ref().ok_or_else(|| {
        Error::InvalidState(format!(
            "{}: classifier-free guidance needs the negative prompt's states",
            backbone.name()
        ))
    })?;
    let xx = Tensor::cat(&[x, x], 0)?;
    let text = TextStates::cat(&uncond.repeat(b)?, &prompts.cond.repeat(b)?)?;
    let out = backbone.model_output(&xx, t, &text, None)?;
    let (u, c) = (out.narrow(0, 0, b)?, out.narrow(0, b, b)?);
    Ok((&u + ((c - &u)? * scale)?)?)
}
