//! A Stable Diffusion 1.x / 2.x backbone loaded from a diffusers-layout folder, exactly as
//! Hub repos ship it: `model_index.json`, `unet/`, `vae/`, `text_encoder/`, `tokenizer/`,
//! `scheduler/`, with f32 or f16 safetensors (`.fp16` variants too) or sharded indexes.

use super::clip_text::{ClipTextConfig, ClipTextModel};
use super::model_folder::{read_config, Family, ModelFolder};
use super::prompt_cache::PromptCache;
use super::sampler::Sampler;
use super::scheduler::Ddim;
use super::tokenizer::ClipTokenizer;
use super::unet::{UNet, UNetConfig};
use super::vae::{Vae, VaeConfig};
use super::weights::WeightFiles;
use super::{Backbone, TextStates};
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use std::path::{Path, PathBuf};

/// Which weight files to prefer when a folder has both f32 and `.fp16` files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Variant {
    /// The `.fp16` files when computing in f16/bf16, else the f32 ones; whichever exists.
    #[default]
    Auto,
    /// Only the plain (usually f32) files.
    Plain,
    /// Only the `.fp16` files.
    Fp16,
}

/// A loaded SD 1.x / 2.x model.
pub struct StableDiffusion {
    name: String,
    root: PathBuf,
    unet: UNet,
    vae: Vae,
    text: TextEncoder,
    tokenizer: ClipTokenizer,
    sampler: Sampler,
    device: Device,
    dtype: DType,
}

impl std::fmt::Debug for StableDiffusion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StableDiffusion")
            .field("root", &self.root)
            .field("dtype", &self.dtype)
            .finish_non_exhaustive()
    }
}

/// The weight files of one component (`base` = `diffusion_pytorch_model` or `model`).
pub fn weight_files(
    dir: &Path,
    base: &str,
    variant: Variant,
    dtype: DType,
) -> Result<Vec<PathBuf>> {
    let want_fp16 = match variant {
        Variant::Auto => dtype != DType::F32,
        Variant::Fp16 => true,
        Variant::Plain => false,
    };
    let plain = dir.join(format!("{base}.safetensors"));
    let fp16 = dir.join(format!("{base}.fp16.safetensors"));
    let mut order = if want_fp16 {
        vec![fp16, plain]
    } else {
        vec![plain, fp16]
    };
    if variant != Variant::Auto {
        order.truncate(1);
    }
    if let Some(p) = order.iter().find(|p| p.exists()) {
        return Ok(vec![p.clone()]);
    }
    // Sharded checkpoints: `<base>[.fp16].safetensors.index.json` lists the shards.
    for single in &order {
        let index = PathBuf::from(format!("{}.index.json", single.display()));
        if index.exists() {
            let j: serde_json::Value = read_config(&index)?;
            let mut files: Vec<PathBuf> = j
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| Error::InvalidFile {
                    path: index.clone(),
                    reason: "no weight_map".into(),
                })?
                .values()
                .filter_map(|v| v.as_str())
                .map(|f| dir.join(f))
                .collect();
            files.sort();
            files.dedup();
            return Ok(files);
        }
    }
    Err(Error::MissingFile {
        path: order[0].clone(),
        hint: format!(
            "no safetensors weights in {} (.bin/.ckpt checkpoints are not supported; use a diffusers repo with safetensors)",
            dir.display()
        ),
    })
}

/// How a component's weights are read: their data, or only their names and shapes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Read {
    Data,
    ShapesOnly,
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn load_component<T>(
    dir: &Path,
    component: &str,
    base: &str,
    variant: Variant,
    device: &Device,
    dtype: DType,
    read: Read,
    build: impl FnOnce(VarBuilder) -> candle_core::Result<T>,
) -> Result<T> {
    let files = weight_files(dir, base, variant, dtype)?;
    let err = |reason: String| Error::Weights {
        component: component.into(),
        path: if files.len() == 1 {
            files[0].clone()
        } else {
            dir.to_path_buf()
        },
        reason,
    };
    let weights = WeightFiles::open(&files).map_err(|e| match e {
        Error::InvalidFile { reason, .. } => err(reason),
        other => other,
    })?;
    let vb = match read {
        Read::Data => weights.var_builder(dtype, device),
        Read::ShapesOnly => weights.shapes_only(dtype),
    };
    build(vb).map_err(|e| err(e.to_string()))
}

/// A component folder as diffusers / transformers save it: `config.json`, parsed and then
/// bounded by `check`, and the `base` safetensors built by `build` from that config.
#[allow(clippy::too_many_arguments)]
pub(crate) fn load_folder<C: serde::de::DeserializeOwned, T>(
    dir: &Path,
    component: &str,
    base: &str,
    variant: Variant,
    device: &Device,
    dtype: DType,
    read: Read,
    check: impl FnOnce(&C, &Path) -> Result<()>,
    build: impl FnOnce(VarBuilder, C) -> candle_core::Result<T>,
) -> Result<T> {
    let path = dir.join("config.json");
    let config: C = super::config::read_json(&path)?;
    check(&config, &path)?;
    load_component(dir, component, base, variant, device, dtype, read, |vb| {
        build(vb, config)
    })
}

/// A diffusers `transformer/` folder (FLUX.1, SD3): [`load_folder`] with its file names;
/// `on` gives the device and dtype to read the weights to, `None` checks every name and
/// shape without reading data (the result must not be run).
pub(crate) fn load_transformer<C: serde::de::DeserializeOwned, T>(
    dir: &Path,
    on: Option<(&Device, DType)>,
    variant: Variant,
    check: impl FnOnce(&C, &Path) -> Result<()>,
    build: impl FnOnce(VarBuilder, C) -> candle_core::Result<T>,
) -> Result<T> {
    let (device, dtype, read) = match on {
        Some((device, dtype)) => (device.clone(), dtype, Read::Data),
        None => (Device::Cpu, DType::F32, Read::ShapesOnly),
    };
    load_folder(
        dir,
        "transformer",
        "diffusion_pytorch_model",
        variant,
        &device,
        dtype,
        read,
        check,
        build,
    )
}

/// Where the text encoder is read from, and the prompts it has encoded.
///
/// The text encoder (1.4 GB in f32 for SD 2.x) is needed for a few calls per job, the UNet
/// for hundreds: keeping it resident made our peak memory exceed PyTorch's (issue #13). It
/// is read from disk when a prompt is not cached yet and dropped after that call; its states
/// (77 x 1024 floats per prompt) are kept, so repeated jobs with the same prompts (the
/// GIMP/OpenFX case) never read it again. Its names and shapes are checked at load, so a
/// broken text encoder still fails `load`, not the first job.
struct TextEncoder {
    dir: PathBuf,
    config: ClipTextConfig,
    variant: Variant,
    cache: PromptCache<Tensor>,
}

impl StableDiffusion {
    /// Loads every component from `root` onto `device`, computing in `dtype`.
    pub fn load(root: &Path, device: &Device, dtype: DType, variant: Variant) -> Result<Self> {
        let folder = ModelFolder::open(root)?;
        if folder.family()? != Family::StableDiffusion {
            return Err(Error::Unsupported {
                path: root.join("model_index.json"),
                reason: "not a Stable Diffusion 1.x / 2.x pipeline".into(),
            });
        }
        let unet_cfg: UNetConfig = read_config(&root.join("unet/config.json"))?;
        unet_cfg.check_sizes(&root.join("unet/config.json"))?;
        if let Some(reason) = unet_cfg.unsupported() {
            return Err(Error::Unsupported {
                path: root.join("unet/config.json"),
                reason,
            });
        }
        let vae_cfg: VaeConfig = read_config(&root.join("vae/config.json"))?;
        vae_cfg.check_sizes(&root.join("vae/config.json"))?;
        let text_cfg: ClipTextConfig = read_config(&root.join("text_encoder/config.json"))?;
        text_cfg.check_sizes(&root.join("text_encoder/config.json"))?;
        if text_cfg.hidden_size != unet_cfg.cross_attention_dim {
            return Err(Error::Unsupported {
                path: root.join("text_encoder/config.json"),
                reason: format!(
                    "text width {} differs from the UNet's cross_attention_dim {}",
                    text_cfg.hidden_size, unet_cfg.cross_attention_dim
                ),
            });
        }
        if vae_cfg.latent_channels != unet_cfg.in_channels {
            return Err(Error::Unsupported {
                path: root.join("vae/config.json"),
                reason: "VAE latent channels differ from the UNet's input channels".into(),
            });
        }
        let sched_path = folder.scheduler_config()?;
        let scheduler = Ddim::from_config_file(&sched_path)?;
        let tokenizer =
            ClipTokenizer::from_folder(&root.join("tokenizer"), text_cfg.max_position_embeddings)?;
        let unet = load_component(
            &root.join("unet"),
            "unet",
            "diffusion_pytorch_model",
            variant,
            device,
            dtype,
            Read::Data,
            |vb| UNet::new(vb, unet_cfg),
        )?;
        let vae_dtype = vae_dtype(dtype);
        let vae = load_component(
            &root.join("vae"),
            "vae",
            "diffusion_pytorch_model",
            variant,
            device,
            vae_dtype,
            Read::Data,
            |vb| Vae::new(vb, vae_cfg),
        )?;
        let text = TextEncoder {
            dir: root.join("text_encoder"),
            config: text_cfg,
            variant,
            cache: PromptCache::new(),
        };
        text.build(device, dtype, Read::ShapesOnly)?;
        let name = folder.name();
        Ok(Self {
            name,
            root: root.into(),
            unet,
            vae,
            text,
            tokenizer,
            sampler: Sampler::Ddim(scheduler),
            device: device.clone(),
            dtype,
        })
    }

    /// The UNet.
    pub fn unet(&self) -> &UNet {
        &self.unet
    }
    /// The VAE.
    pub fn vae(&self) -> &Vae {
        &self.vae
    }
    /// The tokenizer.
    pub fn tokenizer(&self) -> &ClipTokenizer {
        &self.tokenizer
    }
    /// Reads the text encoder from disk (it is not kept resident; see [`TextEncoder`]).
    pub fn load_text_encoder(&self) -> Result<ClipTextModel> {
        self.text.build(&self.device, self.dtype, Read::Data)
    }
    /// The folder the model was loaded from.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// The DDIM scheduler.
    pub fn scheduler(&self) -> &Ddim {
        match &self.sampler {
            Sampler::Ddim(d) => d,
            Sampler::Flow { .. } => unreachable!("an SD backbone always has a DDIM sampler"),
        }
    }

    /// The text states (1, L, D) of one prompt.
    pub fn encode_prompt(&self, prompt: &str) -> Result<Tensor> {
        Ok(self.encode_prompts(&[prompt])?.remove(0))
    }

    /// The text states of several prompts, in order. The text encoder is read from disk
    /// once for the prompts that are not cached yet (see [`super::prompt_cache`]).
    pub fn encode_prompts(&self, prompts: &[&str]) -> Result<Vec<Tensor>> {
        self.text.cache.get_or_encode(prompts, |missing| {
            let text = self.load_text_encoder()?;
            missing
                .iter()
                .map(|p| {
                    let ids = self.tokenizer.encode(p);
                    let ids = Tensor::new(ids.as_slice(), &self.device)?.unsqueeze(0)?;
                    Ok(text.forward(&ids)?.to_dtype(self.dtype)?)
                })
                .collect()
        })
    }

    /// The UNet's output (f32) for latents `x` at DDIM timestep `t` with text states
    /// `context` (B, L, D).
    pub fn unet_output(&self, x: &Tensor, t: f64, context: &Tensor) -> Result<Tensor> {
        let out = self.unet.forward(&x.to_dtype(self.dtype)?, t, context)?;
        Ok(out.to_dtype(DType::F32)?)
    }
}

impl Backbone for StableDiffusion {
    fn name(&self) -> &str {
        &self.name
    }
    fn device(&self) -> &Device {
        &self.device
    }
    fn pad_multiple(&self) -> usize {
        self.vae.config().latent_factor() * (1 << (self.unet.config().block_out_channels.len() - 1))
    }
    fn vae_factor(&self) -> usize {
        self.vae.config().latent_factor()
    }
    fn latent_channels(&self) -> usize {
        self.vae.config().latent_channels
    }
    fn vae_tile_bytes(&self, side: usize) -> usize {
        self.vae.tile_bytes(side)
    }
    fn native_size(&self) -> usize {
        let f = self.vae.config().latent_factor();
        self.unet
            .config()
            .sample_size
            .map(|s| s * f)
            .or(self.vae.config().sample_size)
            .unwrap_or(512)
    }
    fn sampler(&self) -> &Sampler {
        &self.sampler
    }

    fn encode_text(&self, prompts: &[&str]) -> Result<Vec<TextStates>> {
        Ok(self
            .encode_prompts(prompts)?
            .into_iter()
            .map(TextStates::tokens)
            .collect())
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
                "{}: an SD UNet takes no guidance input (it uses classifier-free guidance)",
                self.name
            )));
        }
        self.unet_output(x, t, &text.states)
    }
}

impl TextEncoder {
    fn build(&self, device: &Device, dtype: DType, read: Read) -> Result<ClipTextModel> {
        let config = self.config.clone();
        load_component(
            &self.dir,
            "text_encoder",
            "model",
            self.variant,
            device,
            dtype,
            read,
            |vb| ClipTextModel::new(vb, config),
        )
    }
}

/// The VAE runs in f32 unless bf16 was asked for: SD's VAE overflows in f16 (diffusers'
/// `force_upcast`), and so do FLUX.1's and SD3's.
pub(crate) fn vae_dtype(dtype: DType) -> DType {
    if dtype == DType::F16 {
        DType::F32
    } else {
        dtype
    }
}
