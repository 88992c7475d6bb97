//! Tiny Stable Diffusion models for tests and examples: a complete diffusers-layout folder
//! (configs, tokenizer, safetensors) with the real architectures and tensor names, small
//! widths and deterministic pseudo-random weights, so everything runs in seconds on a CPU
//! with no download.
//!
//! The tensor list is not written down twice: the generator builds each component through
//! the same constructors the loader uses, with a VarBuilder backend that invents (and
//! records) every tensor it is asked for.

use super::clip_text::{ClipTextConfig, ClipTextModel};
use super::tokenizer::write_tiny_vocab;
use super::unet::{UNet, UNetConfig};
use super::vae::{Vae, VaeConfig};
use crate::error::{Error, Result};
use crate::noise::NoiseStream;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use serde_json::json;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// What the tiny model predicts; also selects the model family and generation it imitates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TinyKind {
    /// SD 1.x style: epsilon prediction, conv projections, QuickGELU text encoder.
    Epsilon,
    /// SD 2.x style: v prediction, linear projections, per-block heads, GELU text encoder.
    V,
    /// The FULL Stable Diffusion 2.1-base architecture (UNet, VAE, 23-layer OpenCLIP text
    /// encoder; epsilon prediction) with random weights, for benchmarks. About 5 GB; the
    /// text encoder keeps the tiny vocabulary (token count does not affect speed).
    Sd21Base,
    /// FLUX.1-dev style transformer (guidance embedding, dynamic-shift flow scheduler); see
    /// `tiny_flux.rs` for what the folder holds.
    FluxDev,
    /// FLUX.1-schnell style transformer (no guidance embedding, static shift 1).
    FluxSchnell,
    /// SD3-medium style MMDiT transformer and its scheduler (static shift 3); see
    /// `tiny_sd3.rs`.
    Sd3,
    /// SD3.5-medium style: q/k RMSNorm and dual-attention blocks.
    Sd35,
}

/// Corpus the tiny BPE merges are learned from: the default quality prompt and a few
/// common words, so real prompts tokenise into multi-character pieces.
pub(super) const CORPUS: &str =
    "Cinematic, high-contrast, photo-realistic, 8k, ultra HD, meticulous detailing, \
hyper sharpness, perfect without deformations. a photo of an astronaut riding a horse on the moon, \
a cat sitting on a sofa, the quick brown fox jumps over the lazy dog, high quality sharp photo";

/// Invents tensors deterministically from (seed, name) and records them.
pub(super) struct Inventor {
    seed: u64,
    made: Arc<Mutex<HashMap<String, Tensor>>>,
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

impl SimpleBackend for Inventor {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let dims = s.dims().to_vec();
        let stream = NoiseStream::new(self.seed, fnv1a(name));
        let n: usize = dims.iter().product();
        let (scale, offset) = if name.ends_with("embedding.weight") {
            (0.5, 0.0)
        } else if dims.len() >= 2 {
            // Fan-in scaling keeps activations O(1) through the random network.
            let fan_in: usize = dims[1..].iter().product();
            (1.0 / (fan_in as f32).sqrt(), 0.0)
        } else if name.ends_with("weight") {
            (0.1, 1.0)
        } else {
            (0.05, 0.0)
        };
        // Large (full-size) tensors are filled on all cores; values depend only on the
        // index, so the result is the same whatever the thread count.
        let mut values = vec![0f32; n];
        let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
        let chunk = n.div_ceil(threads).max(1 << 16);
        std::thread::scope(|sc| {
            for (c, part) in values.chunks_mut(chunk).enumerate() {
                sc.spawn(move || {
                    for (j, v) in part.iter_mut().enumerate() {
                        *v = offset + scale * stream.normal((c * chunk + j) as u64);
                    }
                });
            }
        });
        let t = Tensor::from_vec(values, dims, dev)?.to_dtype(dtype)?;
        self.made
            .lock()
            .expect("not poisoned")
            .insert(name.to_owned(), t.clone());
        Ok(t)
    }
    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        candle_core::bail!("tiny model generator cannot invent {name} without a shape")
    }
    fn contains_tensor(&self, _name: &str) -> bool {
        true
    }
}

pub(super) fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let text = serde_json::to_string_pretty(value).expect("serialisable");
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// A tiny CLIP BPE tokenizer folder (vocab, merges, configs) padding with `pad`; returns
/// the vocabulary size.
pub(super) fn write_clip_tokenizer(dir: &Path, pad: &str) -> Result<usize> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let vocab_size = write_tiny_vocab(dir, CORPUS, 300)?;
    write_json(
        &dir.join("tokenizer_config.json"),
        &json!({
            "tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "do_lower_case": true,
            "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
            "unk_token": "<|endoftext|>", "pad_token": pad
        }),
    )?;
    write_json(
        &dir.join("special_tokens_map.json"),
        &json!({"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": pad}),
    )?;
    Ok(vocab_size)
}

pub(super) fn invent<T>(
    seed: u64,
    file: &Path,
    build: impl FnOnce(VarBuilder) -> candle_core::Result<T>,
) -> Result<()> {
    let made = Arc::new(Mutex::new(HashMap::new()));
    let backend = Inventor {
        seed,
        made: made.clone(),
    };
    build(VarBuilder::from_backend(
        Box::new(backend),
        DType::F32,
        Device::Cpu,
    ))?;
    let made = made.lock().expect("not poisoned");
    candle_core::safetensors::save(&made, file).map_err(|e| Error::Weights {
        component: "tiny".into(),
        path: file.into(),
        reason: e.to_string(),
    })
}

/// Writes a tiny SD-style model folder to `dir` (created if needed).
pub fn write_tiny_model(dir: &Path, kind: TinyKind, seed: u64) -> Result<()> {
    match kind {
        TinyKind::FluxDev => return super::tiny_flux::write(dir, seed, true),
        TinyKind::FluxSchnell => return super::tiny_flux::write(dir, seed, false),
        TinyKind::Sd3 => return super::tiny_sd3::write(dir, seed, false),
        TinyKind::Sd35 => return super::tiny_sd3::write(dir, seed, true),
        _ => {}
    }
    let v = kind == TinyKind::V;
    let full = kind == TinyKind::Sd21Base;
    write_json(
        &dir.join("model_index.json"),
        &json!({
            "_class_name": "StableDiffusionPipeline",
            "_diffusers_version": "0.36.0",
            "_ttpo_tiny": {"kind": format!("{kind:?}"), "seed": seed},
            "feature_extractor": [null, null],
            "requires_safety_checker": false,
            "safety_checker": [null, null],
            "scheduler": ["diffusers", "DDIMScheduler"],
            "text_encoder": ["transformers", "CLIPTextModel"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"]
        }),
    )?;
    write_json(
        &dir.join("scheduler/scheduler_config.json"),
        &json!({
            "_class_name": "DDIMScheduler",
            "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
            "num_train_timesteps": 1000, "steps_offset": 1, "set_alpha_to_one": false,
            "clip_sample": false, "timestep_spacing": "leading",
            "prediction_type": if v { "v_prediction" } else { "epsilon" }
        }),
    )?;
    let vocab_size = write_clip_tokenizer(
        &dir.join("tokenizer"),
        if v { "!" } else { "<|endoftext|>" },
    )?;

    let text_json = json!({
        "_name_or_path": "ttpo-tiny", "architectures": ["CLIPTextModel"], "model_type": "clip_text_model",
        "vocab_size": vocab_size, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "max_position_embeddings": 77, "layer_norm_eps": 1e-5,
        "hidden_act": if v { "gelu" } else { "quick_gelu" }, "projection_dim": 32,
        "bos_token_id": vocab_size - 2, "eos_token_id": vocab_size - 1, "pad_token_id": 1,
        "torch_dtype": "float32"
    });
    let unet_json = json!({
        "_class_name": "UNet2DConditionModel", "_diffusers_version": "0.36.0",
        "in_channels": 4, "out_channels": 4, "sample_size": 8,
        "block_out_channels": [32, 64], "layers_per_block": 1,
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
        "cross_attention_dim": 32,
        "attention_head_dim": if v { json!([2, 4]) } else { json!(2) },
        "use_linear_projection": v, "norm_num_groups": 8, "norm_eps": 1e-5,
        "flip_sin_to_cos": true, "freq_shift": 0, "act_fn": "silu", "center_input_sample": false,
        "downsample_padding": 1, "mid_block_scale_factor": 1
    });
    let vae_json = json!({
        "_class_name": "AutoencoderKL", "_diffusers_version": "0.36.0",
        "in_channels": 3, "out_channels": 3, "latent_channels": 4, "sample_size": 64,
        "block_out_channels": [16, 16, 32, 32], "layers_per_block": 1, "norm_num_groups": 8,
        "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"], "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"],
        "act_fn": "silu", "scaling_factor": 0.18215
    });
    let (text_json, unet_json, vae_json) = if full {
        sd21_base_configs(vocab_size)
    } else {
        (text_json, unet_json, vae_json)
    };
    for (sub, value) in [
        ("text_encoder/config.json", &text_json),
        ("unet/config.json", &unet_json),
        ("vae/config.json", &vae_json),
    ] {
        write_json(&dir.join(sub), value)?;
    }
    fn parse<T: serde::de::DeserializeOwned>(v: &serde_json::Value) -> T {
        serde_json::from_value(v.clone()).expect("valid tiny config")
    }
    let (tc, uc, vc): (ClipTextConfig, UNetConfig, VaeConfig) =
        (parse(&text_json), parse(&unet_json), parse(&vae_json));
    invent(
        seed ^ 1,
        &dir.join("text_encoder/model.safetensors"),
        |vb| ClipTextModel::new(vb, tc),
    )?;
    invent(
        seed ^ 2,
        &dir.join("unet/diffusion_pytorch_model.safetensors"),
        |vb| UNet::new(vb, uc),
    )?;
    invent(
        seed ^ 3,
        &dir.join("vae/diffusion_pytorch_model.safetensors"),
        |vb| Vae::new(vb, vc),
    )?;
    Ok(())
}

/// The configs of stabilityai/stable-diffusion-2-1-base (text encoder with `vocab_size`).
fn sd21_base_configs(
    vocab_size: usize,
) -> (serde_json::Value, serde_json::Value, serde_json::Value) {
    let text = json!({
        "architectures": ["CLIPTextModel"], "model_type": "clip_text_model",
        "vocab_size": vocab_size, "hidden_size": 1024, "intermediate_size": 4096,
        "num_hidden_layers": 23, "num_attention_heads": 16, "max_position_embeddings": 77,
        "layer_norm_eps": 1e-5, "hidden_act": "gelu", "projection_dim": 512,
        "bos_token_id": vocab_size - 2, "eos_token_id": vocab_size - 1, "pad_token_id": 1,
        "torch_dtype": "float32"
    });
    let unet = json!({
        "_class_name": "UNet2DConditionModel", "_diffusers_version": "0.36.0",
        "in_channels": 4, "out_channels": 4, "sample_size": 64,
        "block_out_channels": [320, 640, 1280, 1280], "layers_per_block": 2,
        "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
        "cross_attention_dim": 1024, "attention_head_dim": [5, 10, 20, 20],
        "use_linear_projection": true, "norm_num_groups": 32, "norm_eps": 1e-5,
        "flip_sin_to_cos": true, "freq_shift": 0, "act_fn": "silu", "center_input_sample": false,
        "downsample_padding": 1, "mid_block_scale_factor": 1, "upcast_attention": false
    });
    let vae = json!({
        "_class_name": "AutoencoderKL", "_diffusers_version": "0.36.0",
        "in_channels": 3, "out_channels": 3, "latent_channels": 4, "sample_size": 512,
        "block_out_channels": [128, 256, 512, 512], "layers_per_block": 2, "norm_num_groups": 32,
        "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
        "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"],
        "act_fn": "silu", "scaling_factor": 0.18215
    });
    (text, unet, vae)
}
