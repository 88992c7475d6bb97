//! Tiny FLUX.1 folders for tests and examples (`TinyKind::FluxDev` / `FluxSchnell`):
//! `model_index.json` (`FluxPipeline`), `transformer/` (config + safetensors, written through
//! [`FluxTransformer::new`] like the SD components) and `scheduler/`. The text encoders
//! (CLIP-L, T5) and the 16-channel VAE are not written yet: their loaders come with the
//! FLUX backbone, so the index lists them as null.

use super::flux::{FluxConfig, FluxTransformer};
use super::tiny::{invent, write_json};
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
            "text_encoder": [null, null], "text_encoder_2": [null, null],
            "tokenizer": [null, null], "tokenizer_2": [null, null],
            "vae": [null, null]
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
    )
}
