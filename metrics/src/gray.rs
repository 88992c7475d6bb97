//! Grey-level images and MATLAB-compatible colour conversion.

use crate::{MetricError, RgbView};

/// A single-channel image of `f64` samples, row-major.
///
/// The metrics work on grey levels in `[0, 255]` as MATLAB does with `double(uint8 image)`.
#[derive(Debug, Clone, PartialEq)]
pub struct GrayImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height` samples, row-major.
    pub data: Vec<f64>,
}

impl GrayImage {
    /// Builds an image, checking that `data.len() == width * height` and that it is not empty.
    pub fn new(width: usize, height: usize, data: Vec<f64>) -> Result<Self, MetricError> {
        let img = GrayImage {
            width,
            height,
            data,
        };
        img.validate()?;
        Ok(img)
    }

    /// Checks what [`GrayImage::new`] checks (the fields are public, so a hand-built image
    /// may be inconsistent).
    pub fn validate(&self) -> Result<(), MetricError> {
        if self.width == 0 || self.height == 0 {
            return Err(MetricError::ZeroSize {
                width: self.width,
                height: self.height,
            });
        }
        if self.width.checked_mul(self.height) != Some(self.data.len()) {
            return Err(MetricError::DataLength {
                expected: self.width.saturating_mul(self.height),
                actual: self.data.len(),
            });
        }
        if let Some(index) = self.data.iter().position(|v| !v.is_finite()) {
            return Err(MetricError::NonFinite { index });
        }
        Ok(())
    }

    /// Sample at column `x`, row `y`.
    #[inline]
    pub fn at(&self, x: usize, y: usize) -> f64 {
        self.data[y * self.width + x]
    }

    /// The top-left `width × height` part of the image.
    pub fn crop(&self, width: usize, height: usize) -> GrayImage {
        let width = width.min(self.width);
        let height = height.min(self.height);
        let mut data = Vec::with_capacity(width * height);
        for y in 0..height {
            data.extend_from_slice(&self.data[y * self.width..y * self.width + width]);
        }
        GrayImage {
            width,
            height,
            data,
        }
    }
}

/// MATLAB's `rgb2gray` luma weights (first row of the inverse NTSC YIQ matrix).
pub const MATLAB_GRAY_WEIGHTS: [f64; 3] = [
    0.298_936_021_293_775,
    0.587_043_074_451_121,
    0.114_020_904_255_103,
];

/// Converts an RGB view to grey levels exactly as MATLAB's `rgb2gray` does on a `uint8`
/// image, returning values in `0..=255` (whole numbers, stored as `f64`).
///
/// Each sample is scaled by 255; samples within `1e-3` of an 8-bit level are snapped to it
/// (so `k / 255.0f32` gives exactly level `k`); the weighted sum with
/// [`MATLAB_GRAY_WEIGHTS`] is rounded half away from zero and saturated to `[0, 255]`, as
/// `imlincomb` does for `uint8` output. Higher-precision inputs are thereby quantised to
/// 8 bits, which is what the reference implementations (and their published values) see.
///
/// Errors: zero size, wrong data length or non-finite samples.
pub fn rgb_to_gray_matlab(img: &RgbView) -> Result<GrayImage, MetricError> {
    img.validate_shape()?;
    if let Some(index) = img.data.iter().position(|v| !v.is_finite()) {
        return Err(MetricError::NonFinite { index });
    }
    let snap = |v: f32| -> f64 {
        let c = f64::from(v) * 255.0;
        let r = c.round();
        if (c - r).abs() < 1e-3 {
            r
        } else {
            c
        }
    };
    let [wr, wg, wb] = MATLAB_GRAY_WEIGHTS;
    let data = img
        .data
        .chunks_exact(3)
        .map(|p| {
            let y = wr * snap(p[0]) + wg * snap(p[1]) + wb * snap(p[2]);
            y.round().clamp(0.0, 255.0)
        })
        .collect();
    Ok(GrayImage {
        width: img.width,
        height: img.height,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gray_of(r: u8, g: u8, b: u8) -> f64 {
        let d = [r as f32 / 255.0, g as f32 / 255.0, b as f32 / 255.0];
        let v = RgbView::new(1, 1, &d).unwrap();
        rgb_to_gray_matlab(&v).unwrap().data[0]
    }

    #[test]
    fn matlab_rounding() {
        // Hand-computed with MATLAB's weights:
        // (10, 20, 30): 2.98936 + 11.74086 + 3.42063 = 18.15085 -> 18
        assert_eq!(gray_of(10, 20, 30), 18.0);
        // (255, 255, 255) -> 255 (weights sum to 1 up to rounding)
        assert_eq!(gray_of(255, 255, 255), 255.0);
        assert_eq!(gray_of(0, 0, 0), 0.0);
        // (1, 0, 0): 0.2989 -> 0 ; (2, 0, 0): 0.5979 -> 1 (round, not truncate)
        assert_eq!(gray_of(1, 0, 0), 0.0);
        assert_eq!(gray_of(2, 0, 0), 1.0);
        // (0, 255, 0): 149.696 -> 150 ; (0, 0, 255): 29.075 -> 29
        assert_eq!(gray_of(0, 255, 0), 150.0);
        assert_eq!(gray_of(0, 0, 255), 29.0);
        // (255, 0, 0): 76.2287 -> 76
        assert_eq!(gray_of(255, 0, 0), 76.0);
    }

    #[test]
    fn saturates_out_of_range() {
        let d = [2.0f32, 2.0, 2.0, -1.0, -1.0, -1.0];
        let v = RgbView::new(2, 1, &d).unwrap();
        assert_eq!(rgb_to_gray_matlab(&v).unwrap().data, vec![255.0, 0.0]);
    }

    #[test]
    fn rejects_bad_input() {
        let d = [0.0f32; 5];
        assert!(matches!(
            RgbView::new(1, 2, &d),
            Err(MetricError::DataLength {
                expected: 6,
                actual: 5
            })
        ));
        let d = [0.0f32, f32::NAN, 0.0];
        let v = RgbView {
            width: 1,
            height: 1,
            data: &d,
        };
        assert!(matches!(
            rgb_to_gray_matlab(&v),
            Err(MetricError::NonFinite { index: 1 })
        ));
        let v = RgbView {
            width: 0,
            height: 1,
            data: &[],
        };
        assert!(matches!(
            rgb_to_gray_matlab(&v),
            Err(MetricError::ZeroSize { .. })
        ));
    }
}
