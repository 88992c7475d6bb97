//! A diffusers model folder: what `model_index.json` says it is, its scheduler config, its
//! name; and the one loader every adapter calls, which picks the backbone by family.

use super::flux_pipeline::Flux;
use super::sd::{StableDiffusion, Variant};
use super::sd3_pipeline::StableDiffusion3;
use super::Backbone;
use crate::error::{Error, Result};
use candle_core::{DType, Device};
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// A component's `config.json` (or any JSON file of the folder); a missing file is an error
/// that says what it is for.
pub(crate) fn read_config<T: DeserializeOwned>(path: &Path) -> Result<T> {
    if !path.exists() {
        return Err(Error::MissingFile {
            path: path.into(),
            hint: "every component folder of a diffusers model has a config.json".into(),
        });
    }
    super::config::read_json(path)
}

/// The model families the engine runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Stable Diffusion 1.x / 2.x (`StableDiffusionPipeline` and its img2img/inpaint kin).
    StableDiffusion,
    /// FLUX.1 dev / schnell (`FluxPipeline`, `FluxImg2ImgPipeline`).
    Flux,
    /// SD3 / SD3.5 (`StableDiffusion3Pipeline`, `StableDiffusion3Img2ImgPipeline`).
    Sd3,
}

impl Family {
    /// The family of a pipeline class name; `None` for classes the engine does not run.
    pub fn of_class(class: &str) -> Option<Self> {
        if class.starts_with("StableDiffusion3") {
            Some(Family::Sd3)
        } else if class.starts_with("Flux") && !class.contains("Kontext") && !class.contains("Fill")
        {
            Some(Family::Flux)
        } else if class.starts_with("StableDiffusion") && !class.contains("XL") {
            Some(Family::StableDiffusion)
        } else {
            None
        }
    }

    /// A word for reports and `ttpo models`.
    pub fn label(self) -> &'static str {
        match self {
            Family::StableDiffusion => "SD 1.x/2.x",
            Family::Flux => "FLUX.1",
            Family::Sd3 => "SD3",
        }
    }
}

/// An opened model folder: it exists and has a readable `model_index.json`.
pub struct ModelFolder {
    root: PathBuf,
    class: Option<String>,
}

impl ModelFolder {
    /// Opens `root`.
    pub fn open(root: &Path) -> Result<Self> {
        if !root.is_dir() {
            return Err(Error::MissingFile {
                path: root.into(),
                hint: "the model folder does not exist".into(),
            });
        }
        let index: serde_json::Value = read_config(&root.join("model_index.json"))?;
        let class = index
            .get("_class_name")
            .and_then(|c| c.as_str())
            .map(str::to_owned);
        Ok(Self {
            root: root.into(),
            class,
        })
    }

    /// The family `model_index.json`'s `_class_name` names; folders without one (older
    /// exports) are taken as SD 1.x / 2.x, the only family that shipped without it.
    pub fn family(&self) -> Result<Family> {
        match &self.class {
            None => Ok(Family::StableDiffusion),
            Some(c) => Family::of_class(c).ok_or_else(|| Error::Unsupported {
                path: self.root.join("model_index.json"),
                reason: format!(
                    "{c}: the engine runs Stable Diffusion 1.x/2.x, SD3/SD3.5 and FLUX.1 \
                     (dev, schnell) pipelines"
                ),
            }),
        }
    }

    /// The scheduler's config file (`scheduler_config.json`, or `config.json`).
    pub fn scheduler_config(&self) -> Result<PathBuf> {
        ["scheduler/scheduler_config.json", "scheduler/config.json"]
            .iter()
            .map(|p| self.root.join(p))
            .find(|p| p.exists())
            .ok_or_else(|| Error::MissingFile {
                path: self.root.join("scheduler/scheduler_config.json"),
                hint: "the scheduler config holds the noise schedule".into(),
            })
    }

    /// The folder's name, for reports.
    pub fn name(&self) -> String {
        self.root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into())
    }
}

/// The weighted components of a family: (folder, weight base name, resident). Resident
/// parts stay loaded for the engine's life; the text encoders are read one at a time, only
/// while prompts are encoded.
fn components(family: Family) -> &'static [(&'static str, &'static str, bool)] {
    match family {
        Family::StableDiffusion => &[
            ("unet", "diffusion_pytorch_model", true),
            ("vae", "diffusion_pytorch_model", true),
            ("text_encoder", "model", false),
        ],
        Family::Flux => &[
            ("transformer", "diffusion_pytorch_model", true),
            ("vae", "diffusion_pytorch_model", true),
            ("text_encoder", "model", false),
            ("text_encoder_2", "model", false),
        ],
        Family::Sd3 => &[
            ("transformer", "diffusion_pytorch_model", true),
            ("vae", "diffusion_pytorch_model", true),
            ("text_encoder", "model", false),
            ("text_encoder_2", "model", false),
            ("text_encoder_3", "model", false),
        ],
    }
}

/// Bytes the model needs in memory at `dtype`: every resident part (the VAE at its own
/// dtype), plus the largest text encoder while it encodes, plus 1 GiB of working memory
/// for activations (measured peaks of SD 2.1 at 512 px: 0.6 GiB over the weights,
/// docs/BENCHMARKS.md). Counted from the safetensors headers, nothing is read.
pub fn memory_needed(root: &Path, family: Family, dtype: DType, variant: Variant) -> Result<u64> {
    let mut resident = 0u64;
    let mut transient = 0u64;
    for &(component, base, stays) in components(family) {
        let dir = root.join(component);
        if !dir.is_dir() && component == "text_encoder_3" {
            continue; // SD3 runs without T5
        }
        let files = super::sd::weight_files(&dir, base, variant, dtype)?;
        let elements = super::weights::WeightFiles::open(&files)?.elements();
        let size = if component == "vae" {
            super::sd::vae_dtype(dtype).size_in_bytes()
        } else {
            dtype.size_in_bytes()
        } as u64;
        if stays {
            resident += elements * size;
        } else {
            transient = transient.max(elements * size);
        }
    }
    Ok(resident + transient + (1 << 30))
}

/// Refuses a model the host cannot hold, before reading any weight: a clear message now
/// instead of the system's out-of-memory killer an hour into a job. On the CPU the weights
/// live in host memory; on a GPU the resident parts go to the device, whose free memory
/// the backend does not report here, so only the CPU is checked (docs/ENGINE.md).
fn check_memory(
    root: &Path,
    family: Family,
    device: &Device,
    dtype: DType,
    variant: Variant,
) -> Result<()> {
    if !device.is_cpu() {
        return Ok(());
    }
    let Some(free) = crate::device::available_host_memory() else {
        return Ok(());
    };
    // A file the count cannot read is the loader's to report, with its component named.
    let Ok(need) = memory_needed(root, family, dtype, variant) else {
        return Ok(());
    };
    refuse_if_short(root, family, dtype, need, free)
}

/// The refusal itself: `need` and `free` in bytes.
fn refuse_if_short(root: &Path, family: Family, dtype: DType, need: u64, free: u64) -> Result<()> {
    if need > free {
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        return Err(Error::OutOfMemory {
            what: format!("{} ({}, {:?})", root.display(), family.label(), dtype),
            need_gib: gib(need),
            free_gib: gib(free),
            hint: "close other programs, use a smaller model, or a GPU build (--device cuda)"
                .into(),
        });
    }
    Ok(())
}

/// Loads the backbone of any supported family from `root`, after checking that the
/// machine can hold it.
pub fn load_backbone(
    root: &Path,
    device: &Device,
    dtype: DType,
    variant: Variant,
) -> Result<Box<dyn Backbone>> {
    let family = ModelFolder::open(root)?.family()?;
    check_memory(root, family, device, dtype, variant)?;
    Ok(match family {
        Family::StableDiffusion => Box::new(StableDiffusion::load(root, device, dtype, variant)?),
        Family::Flux => Box::new(Flux::load(root, device, dtype, variant)?),
        Family::Sd3 => Box::new(StableDiffusion3::load(root, device, dtype, variant)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::tiny::{write_tiny_model, TinyKind};

    fn elements(file: &Path) -> u64 {
        let bytes = std::fs::read(file).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        st.tensors()
            .iter()
            .map(|(_, t)| t.shape().iter().product::<usize>() as u64)
            .sum()
    }

    /// The need is the resident parts plus the largest text encoder plus 1 GiB, counted
    /// here independently from the files; a host with less free is refused with both
    /// numbers, one with enough is not.
    #[test]
    fn memory_need_counts_resident_parts_and_the_largest_encoder() {
        let dir = std::env::temp_dir().join(format!("ttpo-memory-{}", std::process::id()));
        write_tiny_model(&dir, TinyKind::FluxDev, 0).unwrap();
        let w = |c: &str, f: &str| elements(&dir.join(c).join(f));
        let resident = w("transformer", "diffusion_pytorch_model.safetensors")
            + w("vae", "diffusion_pytorch_model.safetensors");
        let encoder =
            w("text_encoder", "model.safetensors").max(w("text_encoder_2", "model.safetensors"));
        let need = memory_needed(&dir, Family::Flux, DType::F32, Variant::Plain).unwrap();
        assert_eq!(need, 4 * (resident + encoder) + (1 << 30));
        let e = refuse_if_short(&dir, Family::Flux, DType::F32, need, need - 1).unwrap_err();
        match &e {
            Error::OutOfMemory {
                need_gib, free_gib, ..
            } => assert!(need_gib > free_gib),
            other => panic!("{other}"),
        }
        assert!(e.to_string().contains("FLUX"), "{e}");
        refuse_if_short(&dir, Family::Flux, DType::F32, need, need).unwrap();
        std::fs::remove_dir_all(&dir).ok();
    }
}
