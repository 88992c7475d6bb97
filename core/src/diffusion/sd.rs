//! A Stable Diffusion 1.x / 2.x backbone loaded from a diffusers-layout folder, exactly as
//! Hub repos ship it: `model_index.json`, `unet/`, `vae/`, `text_encoder/`, `tokenizer/`,
//! `scheduler/`, with f32 or f16 safetensors (`.fp16` variants too) or sharded indexes.

use super::clip_text::{ClipTextConfig, ClipTextModel};
use super::scheduler::Ddim;
use super::tokenizer::ClipTokenizer;
use super::unet::{UNet, UNetConfig};
use super::vae::{Vae, VaeConfig};
use super::weights::WeightFiles;
use super::Backbone;
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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
    scheduler: Ddim,
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

fn read_config<T: DeserializeOwned>(path: &Path) -> Result<T> {
    if !path.exists() {
        return Err(Error::MissingFile {
            path: path.into(),
            hint: "every component folder of a diffusers model has a config.json".into(),
        });
    }
    super::config::read_json(path)
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
    cache: Mutex<Vec<(String, Tensor)>>,
}

/// Prompts whose states are kept (oldest dropped first).
const PROMPT_CACHE: usize = 16;

impl StableDiffusion {
    /// Loads every component from `root` onto `device`, computing in `dtype`.
    pub fn load(root: &Path, device: &Device, dtype: DType, variant: Variant) -> Result<Self> {
        let index = root.join("model_index.json");
        if !root.is_dir() {
            return Err(Error::MissingFile {
                path: root.into(),
                hint: "the model folder does not exist".into(),
            });
        }
        let idx: serde_json::Value = read_config(&index)?;
        if let Some(class) = idx.get("_class_name").and_then(|c| c.as_str()) {
            if class.contains("XL") || class.contains("3") || class.contains("Flux") {
                return Err(Error::Unsupported {
                    path: index,
                    reason: format!(
                        "{class}: only Stable Diffusion 1.x / 2.x pipelines are supported"
                    ),
                });
            }
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
        let sched_path = ["scheduler/scheduler_config.json", "scheduler/config.json"]
            .iter()
            .map(|p| root.join(p))
            .find(|p| p.exists())
            .ok_or_else(|| Error::MissingFile {
                path: root.join("scheduler/scheduler_config.json"),
                hint: "the scheduler config holds the noise schedule and prediction type".into(),
            })?;
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
        // The VAE runs in f32 unless bf16 was asked for: SD's VAE overflows in f16
        // (diffusers' `force_upcast`).
        let vae_dtype = if dtype == DType::F16 {
            DType::F32
        } else {
            dtype
        };
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
            cache: Mutex::new(Vec::new()),
        };
        text.build(device, dtype, Read::ShapesOnly)?;
        let name = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        Ok(Self {
            name,
            root: root.into(),
            unet,
            vae,
            text,
            tokenizer,
            scheduler,
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
        // Two terms, calibrated with `examples/tiling.rs calibrate` (docs/TILING.md):
        // - the full-resolution stage: the upsampler's convolution there works on the
        //   second-widest channel count (block_out_channels[1]) and keeps input, output and
        //   a convolution buffer alive: ~20 bytes per channel and pixel at f32 (measured
        //   19.6 on the SD 2.x VAE, 17.5 on the tiny one);
        // - the mid-block attention at latent resolution: scores and their softmax, two f32
        //   blocks of tokens^2 (capped by the attention's row blocking).
        let cfg = self.vae.config();
        let c = &cfg.block_out_channels;
        let wide = c.get(1).copied().unwrap_or(c[0]).max(c[0]);
        let elem = self.vae_dtype().size_in_bytes();
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
    fn native_size(&self) -> usize {
        let f = self.vae.config().latent_factor();
        self.unet
            .config()
            .sample_size
            .map(|s| s * f)
            .or(self.vae.config().sample_size)
            .unwrap_or(512)
    }
    fn scheduler(&self) -> &Ddim {
        &self.scheduler
    }

    fn encode_prompt(&self, prompt: &str) -> Result<Tensor> {
        Ok(self.encode_prompts(&[prompt])?.remove(0))
    }

    fn encode_prompts(&self, prompts: &[&str]) -> Result<Vec<Tensor>> {
        // A panic while the lock was held leaves at worst a missing entry: the cache stays
        // usable.
        let mut cache = self.text.cache.lock().unwrap_or_else(|p| p.into_inner());
        let cached = |cache: &[(String, Tensor)], p: &str| {
            cache.iter().find(|(q, _)| q == p).map(|(_, t)| t.clone())
        };
        let mut out: Vec<Option<Tensor>> = prompts.iter().map(|p| cached(&cache, p)).collect();
        if out.iter().any(Option::is_none) {
            let text = self.load_text_encoder()?;
            for (p, slot) in prompts.iter().zip(out.iter_mut()) {
                // A prompt repeated in the list is encoded once.
                *slot = slot.take().or_else(|| cached(&cache, p));
                if slot.is_some() {
                    continue;
                }
                let ids = self.tokenizer.encode(p);
                let ids = Tensor::new(ids.as_slice(), &self.device)?.unsqueeze(0)?;
                let states = text.forward(&ids)?.to_dtype(self.dtype)?;
                if cache.len() == PROMPT_CACHE {
                    cache.remove(0);
                }
                cache.push((p.to_string(), states.clone()));
                *slot = Some(states);
            }
            drop(text);
            crate::device::release_free_memory();
        }
        Ok(out.into_iter().flatten().collect())
    }

    fn encode(&self, image: &Tensor) -> Result<Tensor> {
        let x = image.to_device(&self.device)?.to_dtype(self.vae_dtype())?;
        let mean = self.vae.encode_mean(&x)?.to_dtype(DType::F32)?;
        Ok(self.vae.to_latents(&mean)?)
    }

    fn decode(&self, latent: &Tensor) -> Result<Tensor> {
        let z = self.vae.from_latents(latent)?;
        let img = self.vae.decode(&z.to_dtype(self.vae_dtype())?)?;
        Ok(img.to_dtype(DType::F32)?.clamp(-1f32, 1f32)?)
    }

    fn model_output(&self, x: &Tensor, t: i64, context: &Tensor) -> Result<Tensor> {
        let out = self
            .unet
            .forward(&x.to_dtype(self.dtype)?, t as f64, context)?;
        Ok(out.to_dtype(DType::F32)?)
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

impl StableDiffusion {
    fn vae_dtype(&self) -> DType {
        if self.dtype == DType::F16 {
            DType::F32
        } else {
            self.dtype
        }
    }
}
