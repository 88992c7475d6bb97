//! Tiny SD3 / SD3.5 folders for tests and examples (`TinyKind::Sd3` / `Sd35`): every
//! component of a `StableDiffusion3Pipeline` folder, each written through the constructor
//! its loader uses: `transformer/` (the MMDiT), `scheduler/` (SD3's static shift 3),
//! `text_encoder/` + `tokenizer/` (CLIP-L with projection, padding with its end token),
//! `text_encoder_2/` + `tokenizer_2/` (CLIP-G with projection, padding with "!"),
//! `text_encoder_3/` + `tokenizer_3/` (T5) and `vae/` (16 channels, SD3's shift and scale).
//! The widths chain as in the real model: CLIP-L + CLIP-G widths (16 + 8) zero-padded to
//! the T5 width 32 = `joint_attention_dim`; projections 24 + 24 = `pooled_projection_dim`.
//!
//! The SD3.5 variant turns on q/k RMSNorm and puts the second attention in block 0, as
//! SD3.5-medium does in its first 13 blocks. The position table `pos_embed.pos_embed` is a
//! stored buffer in diffusers and is read from the file, so here it is random like every
//! other weight.

use super::sd3::{Sd3Config, Sd3Transformer};
use super::tiny::{invent, write_json};
use super::tiny_flux::{write_clip, write_t5, write_vae};
use crate::error::{Error, Result};
use serde_json::json;
use std::path::Path;

/// Writes the folder; `sd35` selects the SD3.5-style transformer.
pub(super) fn write(dir: &Path, seed: u64, sd35: bool) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    write_json(
        &dir.join("model_index.json"),
        &json!({
            "_class_name": "StableDiffusion3Pipeline",
            "_diffusers_version": "0.35.2",
            "_ttpo_tiny": {"kind": if sd35 { "Sd35" } else { "Sd3" }, "seed": seed},
            "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
            "transformer": ["diffusers", "SD3Transformer2DModel"],
            "text_encoder": ["transformers", "CLIPTextModelWithProjection"],
            "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
            "text_encoder_3": ["transformers", "T5EncoderModel"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "tokenizer_2": ["transformers", "CLIPTokenizer"],
            "tokenizer_3": ["transformers", "T5TokenizerFast"],
            "vae": ["diffusers", "AutoencoderKL"], "image_encoder": [null, null],
            "feature_extractor": [null, null]
        }),
    )?;
    // The published SD3 / SD3.5 scheduler config.
    write_json(
        &dir.join("scheduler/scheduler_config.json"),
        &json!({
            "_class_name": "FlowMatchEulerDiscreteScheduler", "_diffusers_version": "0.35.2",
            "num_train_timesteps": 1000, "shift": 3.0
        }),
    )?;
    // SD3's layout (16 latent channels, patch 2, joint + pooled widths of their own), small
    // widths; the last block is context_pre_only.
    let config = json!({
        "_class_name": "SD3Transformer2DModel", "_diffusers_version": "0.35.2",
        "sample_size": 32, "patch_size": 2, "in_channels": 16, "num_layers": 3,
        "attention_head_dim": 16, "num_attention_heads": 2, "joint_attention_dim": 32,
        "caption_projection_dim": 32, "pooled_projection_dim": 48, "out_channels": 16,
        "pos_embed_max_size": 24,
        "dual_attention_layers": if sd35 { json!([0]) } else { json!([]) },
        "qk_norm": if sd35 { json!("rms_norm") } else { json!(null) }
    });
    let path = dir.join("transformer/config.json");
    write_json(&path, &config)?;
    let cfg: Sd3Config = serde_json::from_value(config).expect("valid tiny config");
    cfg.validate(&path)?;
    invent(
        seed ^ 8,
        &dir.join("transformer/diffusion_pytorch_model.safetensors"),
        |vb| Sd3Transformer::new(vb, cfg),
    )?;
    write_clip(
        dir,
        "text_encoder",
        "tokenizer",
        "<|endoftext|>",
        16,
        Some(24),
        seed ^ 9,
    )?;
    write_clip(
        dir,
        "text_encoder_2",
        "tokenizer_2",
        "!",
        8,
        Some(24),
        seed ^ 10,
    )?;
    write_t5(dir, "text_encoder_3", "tokenizer_3", 32, seed ^ 11)?;
    write_vae(dir, seed ^ 12, 1.5305, 0.0609)
}
