//! Diffusion backbones: the [`Backbone`] trait the TTPO stages are written against, and
//! its Stable Diffusion 1.x / 2.x implementation with its parts; the rectified-flow parts
//! (FLUX.1 and SD3 transformers, flow-match scheduler) that the flow backbones are built from.

pub mod clip_text;
pub mod config;
pub mod flow_scheduler;
pub mod flux;
pub mod layers;
pub mod scheduler;
pub mod sd;
pub mod sd3;
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

use crate::error::Result;
use candle_core::{Device, Tensor};
use scheduler::Ddim;

/// What the TTPO stages need from a latent diffusion model.
pub trait Backbone: Send + Sync {
    /// A short name for reports (the model folder's name).
    fn name(&self) -> &str;
    /// Where its tensors live.
    fn device(&self) -> &Device;
    /// Image sides must be multiples of this (VAE factor x UNet downsampling).
    fn pad_multiple(&self) -> usize;
    /// Pixels per latent element along an axis.
    fn vae_factor(&self) -> usize;
    /// Latent channels.
    fn latent_channels(&self) -> usize;
    /// The resolution the model was trained at, in pixels.
    fn native_size(&self) -> usize;
    /// Estimated working memory in bytes of one VAE decode of a `side x side` pixel tile
    /// (the encoder needs less); sizes the VAE tiles, see `crate::tiling`.
    fn vae_tile_bytes(&self, side: usize) -> usize;
    /// The sampler's noise schedule.
    fn scheduler(&self) -> &Ddim;
    /// Text states (1, L, D) for a prompt (an empty prompt is valid).
    fn encode_prompt(&self, prompt: &str) -> Result<Tensor>;
    /// Text states for several prompts, in order. A backbone whose text encoder is costly to
    /// bring in (see `sd::StableDiffusion`) reads it once for the whole list.
    fn encode_prompts(&self, prompts: &[&str]) -> Result<Vec<Tensor>> {
        prompts.iter().map(|p| self.encode_prompt(p)).collect()
    }
    /// Scaled posterior-mean latents (B, C, h, w), f32, of images (B, 3, H, W) in [-1, 1].
    fn encode(&self, image: &Tensor) -> Result<Tensor>;
    /// Images in [-1, 1] (f32) from scaled latents.
    fn decode(&self, latent: &Tensor) -> Result<Tensor>;
    /// The network output (f32) for latents `x` at timestep `t`, batch-matched `context`.
    fn model_output(&self, x: &Tensor, t: i64, context: &Tensor) -> Result<Tensor>;
}

/// The text states of one job: the prompt and the negative (unconditional) prompt, each
/// (1, L, D), encoded once per job.
#[derive(Clone, Debug)]
pub struct Prompts {
    /// The prompt's states.
    pub cond: Tensor,
    /// The negative prompt's states.
    pub uncond: Tensor,
}

impl Prompts {
    /// Encodes both prompts with the backbone's own tokenizer and text encoder.
    pub fn encode(backbone: &dyn Backbone, prompt: &str, negative: &str) -> Result<Self> {
        let mut states = backbone.encode_prompts(&[prompt, negative])?.into_iter();
        match (states.next(), states.next()) {
            (Some(cond), Some(uncond)) => Ok(Self { cond, uncond }),
            _ => Err(candle_core::Error::Msg(format!(
                "{}: encode_prompts answered fewer than 2 states",
                backbone.name()
            ))
            .into()),
        }
    }
}

/// The classifier-free-guided model output for a batch of latents `x` (B, C, h, w): one
/// model call on the batch doubled (unconditional half first), combined as
/// `uncond + scale (cond - uncond)`. A scale of 1 needs only the conditional half.
pub fn cfg_output(
    backbone: &dyn Backbone,
    x: &Tensor,
    t: i64,
    prompts: &Prompts,
    scale: f64,
) -> Result<Tensor> {
    let b = x.dim(0)?;
    let rep = |s: &Tensor| -> Result<Tensor> { Ok(s.repeat((b, 1, 1))?) };
    if scale == 1.0 {
        return backbone.model_output(x, t, &rep(&prompts.cond)?);
    }
    let xx = Tensor::cat(&[x, x], 0)?;
    let ctx = Tensor::cat(&[rep(&prompts.uncond)?, rep(&prompts.cond)?], 0)?;
    let out = backbone.model_output(&xx, t, &ctx)?;
    let (u, c) = (out.narrow(0, 0, b)?, out.narrow(0, b, b)?);
    Ok((&u + ((c - &u)? * scale)?)?)
}
