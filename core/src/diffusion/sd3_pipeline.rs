//! An SD3 / SD3.5 backbone loaded from a diffusers `StableDiffusion3Pipeline` folder:
//! `transformer/`, `vae/`, `text_encoder/` (CLIP-L) + `tokenizer/`, `text_encoder_2/`
//! (CLIP-G) + `tokenizer_2/`, `text_encoder_3/` (T5 v1.1 XXL) + `tokenizer_3/`,
//! `scheduler/`.
//!
//! Text conditioning as `StableDiffusion3Pipeline.encode_prompt` builds it (diffusers
//! 0.35.2), checked end to end by `core/tests/conformance_flow.rs`:
//! - both CLIPs (`CLIPTextModelWithProjection`) read the prompt padded to 77 tokens by their
//!   own tokenizers (CLIP-L pads with its end token, CLIP-G with "!"); their *penultimate*
//!   states (`hidden_states[-2]`, no final LayerNorm) are concatenated along the features
//!   (L then G) and zero-padded to T5's width; T5's last states of the prompt padded to
//!   `max_sequence_length` (256) follow along the sequence: (1, 77 + 256, 4096);
//! - the pooled embedding is CLIP-L's `text_embeds` then CLIP-G's (the projections of the
//!   state at the end token): (1, 768 + 1280);
//! - a folder without `text_encoder_3` (the pipeline allows it) gets zeros for T5's part;
//! - the transformer sees the latent itself and the time as `1000 σ` (no division), with
//!   classifier-free guidance (unconditional row first).

use super::clip_text::{ClipTextConfig, ClipTextModelWithProjection};
use super::flow_scheduler::FlowMatch;
use super::flux_pipeline::{encoder_folder, load_vae, EncoderFolder};
use super::model_folder::ModelFolder;
use super::prompt_cache::PromptCache;
use super::sampler::Sampler;
use super::sd::{Read, Variant};
use super::sd3::Sd3Transformer;
use super::t5::T5Config;
use super::t5_tokenizer::T5Tokenizer;
use super::tokenizer::ClipTokenizer;
use super::vae::Vae;
use super::{Backbone, TextStates};
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use std::path::{Path, PathBuf};

/// The SD3 pipelines' default `max_sequence_length` (T5 tokens).
pub const SD3_MAX_SEQUENCE_LENGTH: usize = 256;

/// A loaded SD3 / SD3.5 model.
pub struct StableDiffusion3 {
    name: String,
    root: PathBuf,
    transformer: Sd3Transformer,
    vae: Vae,
    sampler: Sampler,
    clip_l: (EncoderFolder<ClipTextConfig>, ClipTokenizer),
    clip_g: (EncoderFolder<ClipTextConfig>, ClipTokenizer),
    t5: Option<(EncoderFolder<T5Config>, T5Tokenizer)>,
    max_sequence_length: usize,
    cache: PromptCache<TextStates>,
    device: Device,
    dtype: DType,
}

impl std::fmt::Debug for StableDiffusion3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StableDiffusion3")
            .field("root", &self.root)
            .field("dtype", &self.dtype)
            .finish_non_exhaustive()
    }
}

impl EncoderFolder<ClipTextConfig> {
    /// Reads a CLIP text encoder with its projection.
    fn clip_projected(
        &self,
        device: &Device,
        dtype: DType,
        read: Read,
    ) -> Result<ClipTextModelWithProjection> {
        self.read_with(device, dtype, read, ClipTextModelWithProjection::new)
    }
}

impl StableDiffusion3 {
    /// Loads the transformer and VAE from `root` onto `device`, computing in `dtype`, and
    /// checks the text encoders' names and shapes (they are read when first needed).
    pub fn load(root: &Path, device: &Device, dtype: DType, variant: Variant) -> Result<Self> {
        let folder = ModelFolder::open(root)?;
        let clip = |component: &'static str, tokenizer: &str| -> Result<_> {
            let enc = encoder_folder(root, component, variant, |c: &ClipTextConfig, p| {
                c.check_sizes(p)?;
                if c.projection_dim.is_none() {
                    return Err(Error::Unsupported {
                        path: p.into(),
                        reason: "SD3's CLIP encoders are CLIPTextModelWithProjection: \
                                 projection_dim is missing"
                            .into(),
                    });
                }
                Ok(())
            })?;
            let tok = ClipTokenizer::from_folder(
                &root.join(tokenizer),
                enc.config.max_position_embeddings,
            )?;
            enc.clip_projected(device, dtype, Read::ShapesOnly)?;
            Ok((enc, tok))
        };
        let clip_l = clip("text_encoder", "tokenizer")?;
        let clip_g = clip("text_encoder_2", "tokenizer_2")?;
        let t5 = if root.join("text_encoder_3").is_dir() {
            let enc = encoder_folder(root, "text_encoder_3", variant, |c: &T5Config, p| {
                c.check_sizes(p)
            })?;
            enc.t5(device, dtype, Read::ShapesOnly)?;
            Some((enc, T5Tokenizer::from_dir(&root.join("tokenizer_3"))?))
        } else {
            None
        };
        let scheduler = FlowMatch::from_file(&folder.scheduler_config()?)?;
        let transformer = Sd3Transformer::load(&root.join("transformer"), device, dtype, variant)?;
        let tc = transformer.config();
        let mismatch = |what: String| Error::Unsupported {
            path: root.join("transformer/config.json"),
            reason: what,
        };
        let clip_width = clip_l.0.config.hidden_size + clip_g.0.config.hidden_size;
        if clip_width > tc.joint_attention_dim {
            return Err(mismatch(format!(
                "the CLIP widths {clip_width} exceed joint_attention_dim {}",
                tc.joint_attention_dim
            )));
        }
        if let Some((t5, _)) = &t5 {
            if t5.config.d_model != tc.joint_attention_dim {
                return Err(mismatch(format!(
                    "joint_attention_dim {} differs from the T5 width {}",
                    tc.joint_attention_dim, t5.config.d_model
                )));
            }
        }
        let pooled = clip_l.0.config.projection_dim.unwrap_or(0)
            + clip_g.0.config.projection_dim.unwrap_or(0);
        if pooled != tc.pooled_projection_dim {
            return Err(mismatch(format!(
                "pooled_projection_dim {} differs from the CLIP projections' {pooled}",
                tc.pooled_projection_dim
            )));
        }
        let vae = load_vae(root, device, dtype, variant)?;
        if vae.config().latent_channels != tc.in_channels {
            return Err(mismatch(format!(
                "in_channels {} differs from the VAE's {} latent channels",
                tc.in_channels,
                vae.config().latent_channels
            )));
        }
        Ok(Self {
            name: folder.name(),
            root: root.into(),
            transformer,
            vae,
            sampler: Sampler::Flow {
                scheduler,
                flux_sigmas: false,
            },
            clip_l,
            clip_g,
            t5,
            max_sequence_length: SD3_MAX_SEQUENCE_LENGTH,
            cache: PromptCache::new(),
            device: device.clone(),
            dtype,
        })
    }

    /// The transformer.
    pub fn transformer(&self) -> &Sd3Transformer {
        &self.transformer
    }
    /// The folder the model was loaded from.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// Sets the T5 tokens per prompt (1..=512; 256 by default); cached states are dropped.
    pub fn set_max_sequence_length(&mut self, n: usize) -> Result<()> {
        if !(1..=super::t5_tokenizer::T5_MAX_LENGTH).contains(&n) {
            return Err(Error::option(
                "max_sequence_length",
                format!("must be in 1..=512, got {n}"),
            ));
        }
        self.max_sequence_length = n;
        self.cache = PromptCache::new();
        Ok(())
    }

    /// Penultimate states and projected pooled state of one CLIP for each prompt.
    fn clip_states(
        &self,
        (enc, tok): &(EncoderFolder<ClipTextConfig>, ClipTokenizer),
        prompts: &[&str],
    ) -> Result<Vec<(Tensor, Tensor)>> {
        let model = enc.clip_projected(&self.device, self.dtype, Read::Data)?;
        prompts
            .iter()
            .map(|p| {
                let ids = tok.encode(p);
                let ids = Tensor::new(ids.as_slice(), &self.device)?.unsqueeze(0)?;
                let (out, pooled) = model.forward(&ids)?;
                Ok((out.penultimate, pooled))
            })
            .collect()
    }

    fn encode_uncached(&self, prompts: &[&str]) -> Result<Vec<TextStates>> {
        let width = self.transformer.config().joint_attention_dim;
        let l = self.clip_states(&self.clip_l, prompts)?;
        let g = self.clip_states(&self.clip_g, prompts)?;
        let t5: Vec<Tensor> = match &self.t5 {
            Some((enc, tok)) => {
                let model = enc.t5(&self.device, self.dtype, Read::Data)?;
                prompts
                    .iter()
                    .map(|p| {
                        let ids = tok.encode(p, self.max_sequence_length)?;
                        let ids = Tensor::new(ids.as_slice(), &self.device)?.unsqueeze(0)?;
                        Ok(model.forward(&ids)?)
                    })
                    .collect::<Result<_>>()?
            }
            None => {
                let zeros = Tensor::zeros(
                    (1, self.max_sequence_length, width),
                    self.dtype,
                    &self.device,
                )?;
                vec![zeros; prompts.len()]
            }
        };
        l.into_iter()
            .zip(g)
            .zip(t5)
            .map(|(((sl, pl), (sg, pg)), t5)| {
                let clip = Tensor::cat(&[&sl, &sg], 2)?;
                let pad = width - clip.dim(2)?;
                let clip = clip.pad_with_zeros(2, 0, pad)?;
                Ok(TextStates {
                    states: Tensor::cat(&[&clip, &t5.to_dtype(clip.dtype())?], 1)?
                        .to_dtype(self.dtype)?,
                    pooled: Some(Tensor::cat(&[&pl, &pg], 1)?.to_dtype(self.dtype)?),
                })
            })
            .collect()
    }
}

impl Backbone for StableDiffusion3 {
    fn name(&self) -> &str {
        &self.name
    }
    fn device(&self) -> &Device {
        &self.device
    }
    fn pad_multiple(&self) -> usize {
        self.vae_factor() * self.transformer.config().patch_size
    }
    fn vae_factor(&self) -> usize {
        self.vae.config().latent_factor()
    }
    fn latent_channels(&self) -> usize {
        self.vae.config().latent_channels
    }
    fn native_size(&self) -> usize {
        self.transformer.config().sample_size * self.vae_factor()
    }
    fn min_side(&self) -> usize {
        self.pad_multiple()
    }
    fn vae_tile_bytes(&self, side: usize) -> usize {
        self.vae.tile_bytes(side)
    }
    fn sampler(&self) -> &Sampler {
        &self.sampler
    }
    fn encode_text(&self, prompts: &[&str]) -> Result<Vec<TextStates>> {
        self.cache
            .get_or_encode(prompts, |missing| self.encode_uncached(missing))
    }
    fn encode(&self, image: &Tensor) -> Result<Tensor> {
        Ok(self.vae.encode_latents(&image.to_device(&self.device)?)?)
    }
    fn decode(&self, latent: &Tensor) -> Result<Tensor> {
        Ok(self.vae.decode_latents(latent)?)
    }
    fn model_output(
        &self,
        x: &Tensor,
        t: f64,
        text: &TextStates,
        guidance: Option<f64>,
    ) -> Result<Tensor> {
        if guidance.is_some() {
            return Err(Error::InvalidState(format!(
                "{}: SD3 takes no guidance input (it uses classifier-free guidance)",
                self.name
            )));
        }
        let pooled = text.pooled.as_ref().ok_or_else(|| {
            Error::InvalidState(format!("{}: SD3 needs a pooled text embedding", self.name))
        })?;
        let b = x.dim(0)?;
        let time = Tensor::full(t as f32, b, &self.device)?;
        let out =
            self.transformer
                .forward(&x.to_dtype(self.dtype)?, &text.states, pooled, &time)?;
        Ok(out.to_dtype(DType::F32)?)
    }
}
