//! Tiny FLUX.1 folders for tests and examples (`TinyKind::FluxDev` / `FluxSchnell`): every
//! component of a `FluxPipeline` folder, each written through the constructor its loader
//! uses (like the SD components): `transformer/`, `scheduler/`, `text_encoder/` (CLIP-L's
//! `CLIPTextModel`, legacy eos_token_id 2 as FLUX ships it) with `tokenizer/` (CLIP BPE),
//! `text_encoder_2/` (T5 v1.1 encoder) with `tokenizer_2/` (T5 unigram `tokenizer.json`), and
//! `vae/` (16-channel AutoencoderKL, no quant convs, FLUX's shift and scale). The widths
//! chain as in the real model: T5 width = `joint_attention_dim`, CLIP width =
//! `pooled_projection_dim`, VAE latent channels × 4 = the transformer's `in_channels`.

use super::clip_text::{ClipTextConfig, ClipTextModel, ClipTextModelWithProjection};
use super::flux::{FluxConfig, FluxTransformer};
use super::t5::{T5Config, T5Encoder};
use super::tiny::{invent, write_clip_tokenizer, write_json, CORPUS};
use super::vae::{Vae, VaeConfig};
use crate::error::{Error, Result};
use serde_json::json;
use std::path::Path;

/// Writes the folder; `guidance` selects the dev (true) or schnell (false) variant.
pub(super) fn write(dir: &Path, seed: u64, guidance: bool) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    write_json(
        &dir.join("model_index.json"),
        &json!({
            "_class_name": "FluxPipeline",
            "_diffusers_version": "0.35.2",
            "_ttpo_tiny": {"kind": if guidance { "FluxDev" } else { "FluxSchnell" }, "seed": seed},
            "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
            "transformer": ["diffusers", "FluxTransformer2DModel"],
            "text_encoder": ["transformers", "CLIPTextModel"],
            "text_encoder_2": ["transformers", "T5EncoderModel"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "tokenizer_2": ["transformers", "T5TokenizerFast"],
            "vae": ["diffusers", "AutoencoderKL"]
        }),
    )?;
    // The published FLUX.1-dev / -schnell scheduler configs.
    write_json(
        &dir.join("scheduler/scheduler_config.json"),
        &json!({
            "_class_name": "FlowMatchEulerDiscreteScheduler", "_diffusers_version": "0.35.2",
            "base_image_seq_len": 256, "base_shift": 0.5, "max_image_seq_len": 4096,
            "max_shift": 1.15, "num_train_timesteps": 1000,
            "shift": if guidance { 3.0 } else { 1.0 }, "use_dynamic_shifting": guidance
        }),
    )?;
    // Full FLUX layout (64 packed features = 16 latent channels, 3 RoPE axes), small widths.
    let config = json!({
        "_class_name": "FluxTransformer2DModel", "_diffusers_version": "0.35.2",
        "patch_size": 1, "in_channels": 64, "out_channels": null, "num_layers": 2,
        "num_single_layers": 2, "attention_head_dim": 16, "num_attention_heads": 2,
        "joint_attention_dim": 32, "pooled_projection_dim": 32, "guidance_embeds": guidance,
        "axes_dims_rope": [4, 6, 6]
    });
    let path = dir.join("transformer/config.json");
    write_json(&path, &config)?;
    let cfg: FluxConfig = serde_json::from_value(config).expect("valid tiny config");
    cfg.validate(&path)?;
    invent(
        seed ^ 4,
        &dir.join("transformer/diffusion_pytorch_model.safetensors"),
        |vb| FluxTransformer::new(vb, cfg),
    )?;
    write_text_encoders(dir, seed)?;
    write_vae(dir, seed, 0.3611, 0.1159)
}

/// CLIP-L (width 32 = `pooled_projection_dim`) and T5 (width 32 = `joint_attention_dim`)
/// with their tokenizers.
fn write_text_encoders(dir: &Path, seed: u64) -> Result<()> {
    write_clip(
        dir,
        "text_encoder",
        "tokenizer",
        "<|endoftext|>",
        32,
        None,
        seed ^ 5,
    )?;
    write_t5(dir, "text_encoder_2", "tokenizer_2", 32, seed ^ 6)
}

/// A tiny CLIP text encoder in `dir/component` (`CLIPTextModel`, or
/// `CLIPTextModelWithProjection` with a `projection` width) and its BPE tokenizer padding
/// with `pad` in `dir/tokenizer`; legacy eos_token_id 2 (pooled at the largest id), as
/// FLUX's and SD3's CLIPs ship.
pub(super) fn write_clip(
    dir: &Path,
    component: &str,
    tokenizer: &str,
    pad: &str,
    width: usize,
    projection: Option<usize>,
    seed: u64,
) -> Result<()> {
    let vocab = write_clip_tokenizer(&dir.join(tokenizer), pad)?;
    let clip = json!({
        "architectures": [if projection.is_some() { "CLIPTextModelWithProjection" } else { "CLIPTextModel" }],
        "model_type": "clip_text_model",
        "vocab_size": vocab, "hidden_size": width, "intermediate_size": 2 * width,
        "num_hidden_layers": 2, "num_attention_heads": 4, "max_position_embeddings": 77,
        "layer_norm_eps": 1e-5, "hidden_act": "quick_gelu",
        "projection_dim": projection.unwrap_or(width),
        "bos_token_id": vocab - 2, "eos_token_id": 2, "pad_token_id": 1,
        "torch_dtype": "float32"
    });
    write_json(&dir.join(component).join("config.json"), &clip)?;
    let cc: ClipTextConfig = serde_json::from_value(clip).expect("valid tiny config");
    let path = dir.join(component).join("model.safetensors");
    match projection {
        Some(_) => invent(seed, &path, |vb| ClipTextModelWithProjection::new(vb, cc)),
        None => invent(seed, &path, |vb| ClipTextModel::new(vb, cc)),
    }
}

/// A tiny T5 v1.1 encoder of width `width` in `dir/component` and its unigram tokenizer.
pub(super) fn write_t5(
    dir: &Path,
    component: &str,
    tokenizer: &str,
    width: usize,
    seed: u64,
) -> Result<()> {
    let vocab = super::t5_tokenizer::write_tiny(&dir.join(tokenizer), CORPUS)?;
    let t5 = json!({
        "architectures": ["T5EncoderModel"], "model_type": "t5", "vocab_size": vocab,
        "d_model": width, "d_kv": 8, "d_ff": 48, "num_layers": 2, "num_heads": 4,
        "relative_attention_num_buckets": 32, "relative_attention_max_distance": 128,
        "feed_forward_proj": "gated-gelu", "dense_act_fn": "gelu_new", "is_gated_act": true,
        "layer_norm_epsilon": 1e-6, "dropout_rate": 0.0, "tie_word_embeddings": false,
        "is_encoder_decoder": false, "use_cache": false, "pad_token_id": 0,
        "eos_token_id": 1, "torch_dtype": "float32"
    });
    write_json(&dir.join(component).join("config.json"), &t5)?;
    let tc: T5Config = serde_json::from_value(t5).expect("valid tiny config");
    invent(seed, &dir.join(component).join("model.safetensors"), |vb| {
        T5Encoder::new(vb, tc)
    })
}

/// The FLUX.1 / SD3 VAE layout (16 latent channels, 4 levels = factor 8, no quant convs)
/// with the family's published `scale` and `shift`, small widths.
pub(super) fn write_vae(dir: &Path, seed: u64, scale: f64, shift: f64) -> Result<()> {
    let vae = json!({
        "_class_name": "AutoencoderKL", "_diffusers_version": "0.35.2",
        "in_channels": 3, "out_channels": 3, "latent_channels": 16, "sample_size": 64,
        "block_out_channels": [16, 16, 32, 32], "layers_per_block": 1, "norm_num_groups": 8,
        "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D",
                             "DownEncoderBlock2D"],
        "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D",
                           "UpDecoderBlock2D"],
        "act_fn": "silu", "scaling_factor": scale, "shift_factor": shift,
        "use_quant_conv": false, "use_post_quant_conv": false, "mid_block_add_attention": true
    });
    write_json(&dir.join("vae/config.json"), &vae)?;
    let vc: VaeConfig = serde_json::from_value(vae).expect("valid tiny config");
    invent(
        seed ^ 7,
        &dir.join("vae/diffusion_pytorch_model.safetensors"),
        |vb| Vae::new(vb, vc),
    )
}
