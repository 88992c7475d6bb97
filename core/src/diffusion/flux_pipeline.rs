//! A FLUX.1 backbone (dev or schnell) loaded from a diffusers `FluxPipeline` folder as the
//! Hub repos ship it: `transformer/`, `vae/`, `text_encoder/` (CLIP-L) with `tokenizer/`,
//! `text_encoder_2/` (T5 v1.1 XXL) with `tokenizer_2/`, `scheduler/`.
//!
//! What it does as FluxPipeline does (diffusers 0.35.2), checked end to end by
//! `core/tests/conformance_flow.rs`:
//! - text: CLIP-L's `pooler_output` of the prompt padded to 77 tokens is the pooled
//!   embedding; T5's last states of the prompt padded to `max_sequence_length` (512) are
//!   the token states; no attention masks;
//! - the transformer sees the 2x2-packed latent with position ids (0, row, col) and the
//!   time as `t / 1000` (it multiplies by 1000 itself); FLUX.1-dev also gets the guidance
//!   scale (3.5 by default) through its guidance embedding, schnell gets none, and neither
//!   uses classifier-free guidance, so both are [`Backbone::guidance_distilled`];
//! - the VAE's latents are `(mean − shift_factor) · scaling_factor`;
//! - the schedule is FluxPipeline's custom sigmas `linspace(1, 1/N, N)`, shifted with `mu`
//!   from the image's token count on dev.
//!
//! Differences, by design: the velocity is returned on the *unpacked* (B, 16, h, w) latent
//! so the TTPO stages and the tiles see the image's geometry; the VAE encodes the posterior
//! mean, not a sample (as for SD); the text encoders are read on demand and dropped after
//! encoding (see [`super::prompt_cache`]).

use super::clip_text::{ClipTextConfig, ClipTextModel};
use super::flow_scheduler::FlowMatch;
use super::flux::{latent_image_ids, pack_latents, text_ids, unpack_latents, FluxTransformer};
use super::model_folder::{self, ModelFolder};
use super::prompt_cache::PromptCache;
use super::sampler::Sampler;
use super::sd::{load_folder, vae_dtype, Read, Variant};
use super::t5::{T5Config, T5Encoder};
use super::t5_tokenizer::{T5Tokenizer, T5_MAX_LENGTH};
use super::tokenizer::ClipTokenizer;
use super::vae::{Vae, VaeConfig};
use super::{Backbone, TextStates};
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use std::path::{Path, PathBuf};

/// FluxPipeline's default `max_sequence_length` (T5 tokens).
pub const FLUX_MAX_SEQUENCE_LENGTH: usize = 512;

/// A loaded FLUX.1 model.
pub struct Flux {
    name: String,
    root: PathBuf,
    transformer: FluxTransformer,
    vae: Vae,
    sampler: Sampler,
    clip: EncoderFolder<ClipTextConfig>,
    clip_tokenizer: ClipTokenizer,
    t5: EncoderFolder<T5Config>,
    t5_tokenizer: T5Tokenizer,
    max_sequence_length: usize,
    cache: PromptCache<TextStates>,
    device: Device,
    dtype: DType,
}

impl std::fmt::Debug for Flux {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flux")
            .field("root", &self.root)
            .field("dtype", &self.dtype)
            .finish_non_exhaustive()
    }
}

/// A text encoder kept on disk: its folder and config, read when a prompt needs it.
pub(crate) struct EncoderFolder<C> {
    pub(crate) dir: PathBuf,
    pub(crate) component: &'static str,
    pub(crate) config: C,
    pub(crate) variant: Variant,
}

impl<C: Clone> EncoderFolder<C> {
    /// Reads the encoder with `build` (`Read::ShapesOnly` checks names and shapes only).
    pub(crate) fn read_with<M>(
        &self,
        device: &Device,
        dtype: DType,
        read: Read,
        build: impl FnOnce(VarBuilder, C) -> candle_core::Result<M>,
    ) -> Result<M> {
        let config = self.config.clone();
        super::sd::load_component(
            &self.dir,
            self.component,
            "model",
            self.variant,
            device,
            dtype,
            read,
            |vb| build(vb, config),
        )
    }
}

impl EncoderFolder<ClipTextConfig> {
    /// Reads the CLIP text encoder.
    pub(crate) fn clip(&self, device: &Device, dtype: DType, read: Read) -> Result<ClipTextModel> {
        self.read_with(device, dtype, read, ClipTextModel::new)
    }
}

impl EncoderFolder<T5Config> {
    /// Reads the T5 encoder.
    pub(crate) fn t5(&self, device: &Device, dtype: DType, read: Read) -> Result<T5Encoder> {
        self.read_with(device, dtype, read, T5Encoder::new)
    }
}

/// A component's `config.json`, parsed and bounded by `check`.
pub(crate) fn encoder_folder<C: serde::de::DeserializeOwned>(
    root: &Path,
    component: &'static str,
    variant: Variant,
    check: impl FnOnce(&C, &Path) -> Result<()>,
) -> Result<EncoderFolder<C>> {
    let dir = root.join(component);
    let path = dir.join("config.json");
    let config: C = model_folder::read_config(&path)?;
    check(&config, &path)?;
    Ok(EncoderFolder {
        dir,
        component,
        config,
        variant,
    })
}

/// Reads a `vae/` folder onto `device` (f32 for f16, see [`vae_dtype`]).
pub(crate) fn load_vae(
    root: &Path,
    device: &Device,
    dtype: DType,
    variant: Variant,
) -> Result<Vae> {
    load_folder(
        &root.join("vae"),
        "vae",
        "diffusion_pytorch_model",
        variant,
        device,
        vae_dtype(dtype),
        Read::Data,
        |c: &VaeConfig, path| c.check_sizes(path),
        Vae::new,
    )
}

impl Flux {
    /// Loads the transformer and VAE from `root` onto `device`, computing in `dtype`, and
    /// checks the text encoders' names and shapes (they are read when first needed).
    pub fn load(root: &Path, device: &Device, dtype: DType, variant: Variant) -> Result<Self> {
        let folder = ModelFolder::open(root)?;
        let clip = encoder_folder(root, "text_encoder", variant, |c: &ClipTextConfig, p| {
            c.check_sizes(p)
        })?;
        let t5 = encoder_folder(root, "text_encoder_2", variant, |c: &T5Config, p| {
            c.check_sizes(p)
        })?;
        let clip_tokenizer = ClipTokenizer::from_folder(
            &root.join("tokenizer"),
            clip.config.max_position_embeddings,
        )?;
        let t5_tokenizer = T5Tokenizer::from_dir(&root.join("tokenizer_2"))?;
        let scheduler = FlowMatch::from_file(&folder.scheduler_config()?)?;
        let transformer = FluxTransformer::load(&root.join("transformer"), device, dtype, variant)?;
        let tc = transformer.config();
        let mismatch = |what: String| Error::Unsupported {
            path: root.join("transformer/config.json"),
            reason: what,
        };
        if tc.joint_attention_dim != t5.config.d_model {
            return Err(mismatch(format!(
                "joint_attention_dim {} differs from the T5 width {}",
                tc.joint_attention_dim, t5.config.d_model
            )));
        }
        if tc.pooled_projection_dim != clip.config.hidden_size {
            return Err(mismatch(format!(
                "pooled_projection_dim {} differs from the CLIP width {}",
                tc.pooled_projection_dim, clip.config.hidden_size
            )));
        }
        let vae = load_vae(root, device, dtype, variant)?;
        if vae.config().latent_channels * 4 != tc.in_channels {
            return Err(mismatch(format!(
                "in_channels {} is not 4 x the VAE's {} latent channels (2x2 packing)",
                tc.in_channels,
                vae.config().latent_channels
            )));
        }
        clip.clip(device, dtype, Read::ShapesOnly)?;
        t5.t5(device, dtype, Read::ShapesOnly)?;
        Ok(Self {
            name: folder.name(),
            root: root.into(),
            transformer,
            vae,
            sampler: Sampler::Flow {
                scheduler,
                flux_sigmas: true,
            },
            clip,
            clip_tokenizer,
            t5,
            t5_tokenizer,
            max_sequence_length: FLUX_MAX_SEQUENCE_LENGTH.min(T5_MAX_LENGTH),
            cache: PromptCache::new(),
            device: device.clone(),
            dtype,
        })
    }

    /// The transformer.
    pub fn transformer(&self) -> &FluxTransformer {
        &self.transformer
    }
    /// The VAE.
    pub fn vae(&self) -> &Vae {
        &self.vae
    }
    /// The folder the model was loaded from.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// T5 tokens per prompt (FluxPipeline's `max_sequence_length`, 512 by default).
    pub fn max_sequence_length(&self) -> usize {
        self.max_sequence_length
    }
    /// Sets the T5 tokens per prompt (1..=512); cached prompt states are dropped.
    pub fn set_max_sequence_length(&mut self, n: usize) -> Result<()> {
        if !(1..=T5_MAX_LENGTH).contains(&n) {
            return Err(Error::option(
                "max_sequence_length",
                format!("must be in 1..={T5_MAX_LENGTH}, got {n}"),
            ));
        }
        self.max_sequence_length = n;
        self.cache = PromptCache::new();
        Ok(())
    }

    /// The text states of `prompts`: T5 states (1, L, D) and CLIP-L pooled (1, P) each.
    fn encode_uncached(&self, prompts: &[&str]) -> Result<Vec<TextStates>> {
        let pooled: Vec<Tensor> = {
            let clip = self.clip.clip(&self.device, self.dtype, Read::Data)?;
            prompts
                .iter()
                .map(|p| {
                    let ids = self.clip_tokenizer.encode(p);
                    let ids = Tensor::new(ids.as_slice(), &self.device)?.unsqueeze(0)?;
                    Ok(clip.forward_all(&ids)?.pooled.to_dtype(self.dtype)?)
                })
                .collect::<Result<_>>()?
        };
        let t5 = self.t5.t5(&self.device, self.dtype, Read::Data)?;
        prompts
            .iter()
            .zip(pooled)
            .map(|(p, pooled)| {
                let ids = self.t5_tokenizer.encode(p, self.max_sequence_length)?;
                let ids = Tensor::new(ids.as_slice(), &self.device)?.unsqueeze(0)?;
                Ok(TextStates {
                    states: t5.forward(&ids)?.to_dtype(self.dtype)?,
                    pooled: Some(pooled),
                })
            })
            .collect()
    }
}

impl Backbone for Flux {
    fn name(&self) -> &str {
        &self.name
    }
    fn device(&self) -> &Device {
        &self.device
    }
    fn pad_multiple(&self) -> usize {
        // 2x2 token packing.
        self.vae_factor() * 2
    }
    fn vae_factor(&self) -> usize {
        self.vae.config().latent_factor()
    }
    fn latent_channels(&self) -> usize {
        self.vae.config().latent_channels
    }
    fn native_size(&self) -> usize {
        self.vae.config().sample_size.unwrap_or(1024)
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
    fn guidance_distilled(&self) -> bool {
        true
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
        let (b, _, h, w) = x.dims4()?;
        let pooled = text.pooled.as_ref().ok_or_else(|| {
            Error::InvalidState(format!("{}: FLUX needs a pooled text embedding", self.name))
        })?;
        // FluxPipeline: `timestep.expand(B).to(latents.dtype) / 1000` (the division in the
        // latents' dtype), guidance a float32 tensor; the transformer multiplies both by
        // 1000 in its dtype.
        let time = (Tensor::full(t as f32, b, &self.device)?.to_dtype(self.dtype)? / 1000.0)?;
        let guidance = match (self.transformer.config().guidance_embeds, guidance) {
            (true, Some(g)) => Some(Tensor::full(g as f32, b, &self.device)?),
            // schnell has no guidance input and FluxPipeline passes none.
            _ => None,
        };
        let img = pack_latents(&x.to_dtype(self.dtype)?)?;
        let out = self.transformer.forward(
            &img,
            &text.states,
            pooled,
            &time,
            guidance.as_ref(),
            &latent_image_ids(h, w, &self.device)?,
            &text_ids(text.states.dim(1)?, &self.device)?,
        )?;
        Ok(unpack_latents(&out, h, w)?.to_dtype(DType::F32)?)
    }
}
