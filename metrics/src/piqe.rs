//! PIQE — Perception-based Image Quality Evaluator (Venkatanath et al., 2015).

use crate::error_check::validate;
use crate::filter::{mscn, Padding};
use crate::gray::{rgb_to_gray_matlab, GrayImage};
use crate::{MetricError, RgbView};

/// PIQE block size.
pub const PIQE_BLOCK: usize = 16;
const ACTIVITY_THRESHOLD: f64 = 0.1;
const IMPAIRED_THRESHOLD: f64 = 0.1;
const SEGMENT: usize = 6;

/// PIQE score of an RGB image, in `[0, 100]` (lower is better).
///
/// Follows MATLAB's `piqe` (as re-implemented by pyiqa): MATLAB `rgb2gray` (8-bit),
/// rescale to `round(255 · I / max(I))`, MSCN (7 × 7 Gaussian, σ = 7/6, replicate padding),
/// 16 × 16 blocks; a block is *active* when its MSCN variance exceeds 0.1; active blocks
/// are scored for noticeable blocking artefacts (an edge segment of 6 samples with standard
/// deviation below 0.1) and for Gaussian noise (centre/surround deviation criterion), and
/// the score is `100 · (Σ block distortion + 1) / (N_active + 1)`.
///
/// Sizes that are not multiples of 16 are padded (symmetric reflection) up to the next
/// multiple; the minimum size is 16 × 16. A constant image (including all black) has no
/// active block and scores 100.
pub fn piqe(img: &RgbView) -> Result<f64, MetricError> {
    validate(img, "PIQE", PIQE_BLOCK)?;
    let gray = rgb_to_gray_matlab(img)?;
    piqe_gray(&gray)
}

/// PIQE of a grey-level image (any non-negative range; it is rescaled by its maximum).
pub fn piqe_gray(img: &GrayImage) -> Result<f64, MetricError> {
    img.validate()?;
    if img.width < PIQE_BLOCK || img.height < PIQE_BLOCK {
        return Err(MetricError::ImageTooSmall {
            metric: "PIQE",
            min: PIQE_BLOCK,
            width: img.width,
            height: img.height,
        });
    }
    let max = img.data.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
    if max <= 0.0 {
        // Constant black: no active block.
        return Ok(100.0);
    }
    let scaled: Vec<f64> = img
        .data
        .iter()
        .map(|v| (255.0 * (v / max)).round())
        .collect();
    let padded = pad_symmetric(
        &GrayImage {
            width: img.width,
            height: img.height,
            data: scaled,
        },
        PIQE_BLOCK,
    );
    let (norm, _) = mscn(&padded, Padding::Replicate);

    let (nbx, nby) = (norm.width / PIQE_BLOCK, norm.height / PIQE_BLOCK);
    let mut block = [0.0f64; PIQE_BLOCK * PIQE_BLOCK];
    let mut n_active = 0usize;
    let mut dist_sum = 0.0;
    for by in 0..nby {
        for bx in 0..nbx {
            for y in 0..PIQE_BLOCK {
                let row = (by * PIQE_BLOCK + y) * norm.width + bx * PIQE_BLOCK;
                block[y * PIQE_BLOCK..(y + 1) * PIQE_BLOCK]
                    .copy_from_slice(&norm.data[row..row + PIQE_BLOCK]);
            }
            let var = variance(&block);
            if var <= ACTIVITY_THRESHOLD {
                continue;
            }
            n_active += 1;
            if noticeable_distortion(&block) {
                dist_sum += 1.0 - var;
            }
            if noise_criterion(&block, var) {
                dist_sum += var;
            }
        }
    }
    Ok(100.0 * (dist_sum + 1.0) / (n_active as f64 + 1.0))
}

/// Pads bottom/right by symmetric reflection (edge sample repeated) to a multiple of `m`.
fn pad_symmetric(img: &GrayImage, m: usize) -> GrayImage {
    let w = img.width.div_ceil(m) * m;
    let h = img.height.div_ceil(m) * m;
    if w == img.width && h == img.height {
        return img.clone();
    }
    let refl = |i: usize, n: usize| -> usize {
        // Period 2n: 0..n-1 then n-1..0.
        let k = i % (2 * n);
        if k < n {
            k
        } else {
            2 * n - 1 - k
        }
    };
    let mut data = Vec::with_capacity(w * h);
    for y in 0..h {
        let sy = refl(y, img.height);
        for x in 0..w {
            data.push(img.at(refl(x, img.width), sy));
        }
    }
    GrayImage {
        width: w,
        height: h,
        data,
    }
}

/// Unbiased sample variance.
fn variance(x: &[f64]) -> f64 {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0)
}

/// Noticeable-distortion criterion: any 6-sample segment along one of the four block edges
/// with (unbiased) standard deviation below the threshold.
fn noticeable_distortion(block: &[f64]) -> bool {
    let n = PIQE_BLOCK;
    let mut edge = [0.0f64; PIQE_BLOCK];
    for side in 0..4 {
        for (i, e) in edge.iter_mut().enumerate() {
            *e = match side {
                0 => block[i],               // top row
                1 => block[i * n + n - 1],   // right column
                2 => block[(n - 1) * n + i], // bottom row
                _ => block[i * n],           // left column
            };
        }
        for seg in edge.windows(SEGMENT) {
            if variance(seg).sqrt() < IMPAIRED_THRESHOLD {
                return true;
            }
        }
    }
    false
}

/// Gaussian-noise criterion: `σ > 2β` where `β = |σ − c| / max(σ, c)` and `c` is the ratio
/// of the standard deviations of the block's two centre columns and of the surround.
///
/// As in MATLAB's `piqe`, the "surround" removes column 8 and then column 9 of the
/// already-shortened block (1-based), i.e. original columns 8 and 10.
fn noise_criterion(block: &[f64], var: f64) -> bool {
    let n = PIQE_BLOCK;
    let sigma = var.sqrt();
    // center1 = ((n - 1) + 1) / 2 = 8, center2 = 9 (1-based) -> columns 7 and 8 (0-based).
    let (c1, c2) = (7usize, 8usize);
    let mut center = Vec::with_capacity(2 * n);
    for col in [c1, c2] {
        for r in 0..n {
            center.push(block[r * n + col]);
        }
    }
    let mut surround = Vec::with_capacity(n * (n - 2));
    for r in 0..n {
        for c in 0..n {
            // Original columns 7 and 9 (0-based) are removed.
            if c != 7 && c != 9 {
                surround.push(block[r * n + c]);
            }
        }
    }
    let center_std = variance(&center).sqrt();
    let surround_std = variance(&surround).sqrt();
    let mut csd = center_std / surround_std;
    if !csd.is_finite() {
        // torch.nan_to_num: NaN -> 0, +inf -> f64::MAX.
        csd = if csd.is_nan() { 0.0 } else { f64::MAX };
    }
    let beta = (sigma - csd).abs() / sigma.max(csd);
    sigma > 2.0 * beta
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_images_score_100() {
        for v in [0.0, 0.5, 1.0] {
            let d = vec![v; 32 * 20 * 3];
            let img = RgbView::new(32, 20, &d).unwrap();
            assert_eq!(piqe(&img).unwrap(), 100.0);
        }
    }

    #[test]
    fn symmetric_padding() {
        let img = GrayImage::new(3, 1, vec![1.0, 2.0, 3.0]).unwrap();
        let p = pad_symmetric(&img, 4);
        assert_eq!((p.width, p.height), (4, 4));
        assert_eq!(&p.data[..4], &[1.0, 2.0, 3.0, 3.0]);
        assert_eq!(&p.data[4..8], &[1.0, 2.0, 3.0, 3.0]);
    }

    #[test]
    fn too_small() {
        let d = vec![0.5; 15 * 40 * 3];
        let img = RgbView::new(15, 40, &d).unwrap();
        assert!(matches!(
            piqe(&img),
            Err(MetricError::ImageTooSmall { min: 16, .. })
        ));
    }
}
