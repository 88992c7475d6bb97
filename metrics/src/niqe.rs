//! NIQE — Natural Image Quality Evaluator (Mittal, Soundararajan & Bovik, 2013).

use crate::error_check::validate;
use crate::filter::{mscn, Padding};
use crate::gray::{rgb_to_gray_matlab, GrayImage};
use crate::linalg::pinv_sym;
use crate::niqe_params::{NIQE_COV_PRIS, NIQE_MU_PRIS};
use crate::nss::{fit_aggd, gamma};
use crate::resize::imresize;
use crate::{MetricError, RgbView};

/// NIQE block size at the first scale (the LIVE model was fitted on 96 × 96 patches).
pub const NIQE_BLOCK: usize = 96;
/// Minimum width and height for [`niqe`]: one whole block.
pub const NIQE_MIN_SIZE: usize = NIQE_BLOCK;

const FEATS_PER_SCALE: usize = 18;
const N_FEATS: usize = 2 * FEATS_PER_SCALE;

/// NIQE score of an RGB image (lower is better; typical photos score 2–6).
///
/// Follows the LIVE MATLAB release (`computequality.m`) with its pristine model:
/// MATLAB `rgb2gray` with 8-bit rounding, crop to whole 96 × 96 blocks, MSCN with a 7 × 7
/// Gaussian (σ = 7/6) and replicate padding, 18 AGGD features per block at full and half
/// scale (MATLAB's antialiased bicubic `imresize`), `nanmean`/`nancov` over blocks and the
/// Mahalanobis-like distance `sqrt(dμᵀ pinv((Σ_pris + Σ)/2) dμ)`.
///
/// Errors: bad input (see [`MetricError`]), images smaller than [`NIQE_MIN_SIZE`] in
/// either direction, and images without any usable block statistics (e.g. constant images),
/// reported as [`MetricError::Undefined`].
pub fn niqe(img: &RgbView) -> Result<f64, MetricError> {
    validate(img, "NIQE", NIQE_MIN_SIZE)?;
    let gray = rgb_to_gray_matlab(img)?;
    niqe_gray(&gray)
}

/// NIQE of a grey-level image with values in `[0, 255]` (no rounding is applied here).
pub fn niqe_gray(img: &GrayImage) -> Result<f64, MetricError> {
    img.validate()?;
    let nbw = img.width / NIQE_BLOCK;
    let nbh = img.height / NIQE_BLOCK;
    if nbw == 0 || nbh == 0 {
        return Err(MetricError::ImageTooSmall {
            metric: "NIQE",
            min: NIQE_MIN_SIZE,
            width: img.width,
            height: img.height,
        });
    }
    let nblocks = nbw * nbh;
    let mut feats = vec![0.0; nblocks * N_FEATS];

    let mut im = img.crop(nbw * NIQE_BLOCK, nbh * NIQE_BLOCK);
    for scale in 0..2 {
        let bs = NIQE_BLOCK >> scale;
        let (structdis, _) = mscn(&im, Padding::Replicate);
        let mut block = vec![0.0; bs * bs];
        for by in 0..nbh {
            for bx in 0..nbw {
                for y in 0..bs {
                    let row = (by * bs + y) * structdis.width + bx * bs;
                    block[y * bs..(y + 1) * bs].copy_from_slice(&structdis.data[row..row + bs]);
                }
                let b = by * nbw + bx;
                let dst = &mut feats[b * N_FEATS + scale * FEATS_PER_SCALE..][..FEATS_PER_SCALE];
                block_features(&block, bs, dst);
            }
        }
        if scale == 0 {
            im = imresize(&im, 0.5);
        }
    }

    let (mu, cov) = nan_mean_cov(&feats, nblocks, N_FEATS);
    if mu.iter().any(|v| v.is_nan()) || cov.iter().any(|v| v.is_nan()) {
        return Err(MetricError::Undefined {
            metric: "NIQE",
            reason: "no block has usable statistics (is the image constant?)".into(),
        });
    }
    let mut avg = vec![0.0; N_FEATS * N_FEATS];
    for (a, (p, c)) in avg.iter_mut().zip(NIQE_COV_PRIS.iter().zip(&cov)) {
        *a = (p + c) / 2.0;
    }
    let inv = pinv_sym(&avg, N_FEATS);
    let d: Vec<f64> = NIQE_MU_PRIS.iter().zip(&mu).map(|(p, m)| p - m).collect();
    let mut q = 0.0;
    for i in 0..N_FEATS {
        let mut s = 0.0;
        for j in 0..N_FEATS {
            s += inv[i * N_FEATS + j] * d[j];
        }
        q += d[i] * s;
    }
    let score = q.max(0.0).sqrt();
    if !score.is_finite() {
        return Err(MetricError::Undefined {
            metric: "NIQE",
            reason: "non-finite distance".into(),
        });
    }
    Ok(score)
}

/// The 18 features of one MSCN block (`computefeature.m`): AGGD shape and mean scale of the
/// coefficients, then for the four neighbour products (circular shifts within the block)
/// shape, mean, left and right scale.
fn block_features(block: &[f64], bs: usize, out: &mut [f64]) {
    let f = fit_aggd(block);
    out[0] = f.alpha;
    out[1] = (f.beta_left() + f.beta_right()) / 2.0;
    let shifts: [(isize, isize); 4] = [(0, 1), (1, 0), (1, 1), (1, -1)];
    let mut pair = vec![0.0; bs * bs];
    for (k, &(dr, dc)) in shifts.iter().enumerate() {
        // circshift(block, [dr dc]): shifted(i, j) = block(i - dr, j - dc) (cyclic).
        for i in 0..bs {
            let si = (i as isize - dr).rem_euclid(bs as isize) as usize;
            for j in 0..bs {
                let sj = (j as isize - dc).rem_euclid(bs as isize) as usize;
                pair[i * bs + j] = block[i * bs + j] * block[si * bs + sj];
            }
        }
        let f = fit_aggd(&pair);
        let (bl, br) = (f.beta_left(), f.beta_right());
        let mean = (br - bl) * (gamma(2.0 / f.alpha) / gamma(1.0 / f.alpha));
        out[2 + 4 * k..6 + 4 * k].copy_from_slice(&[f.alpha, mean, bl, br]);
    }
}

/// MATLAB `nanmean` (per column, ignoring NaNs) and `nancov` (rows with any NaN dropped,
/// normalised by N − 1, or by N when a single row remains).
fn nan_mean_cov(x: &[f64], rows: usize, cols: usize) -> (Vec<f64>, Vec<f64>) {
    let mut mu = vec![0.0; cols];
    for (c, m) in mu.iter_mut().enumerate() {
        let (mut s, mut n) = (0.0, 0usize);
        for r in 0..rows {
            let v = x[r * cols + c];
            if !v.is_nan() {
                s += v;
                n += 1;
            }
        }
        *m = s / n as f64;
    }
    let complete: Vec<&[f64]> = x
        .chunks_exact(cols)
        .filter(|r| r.iter().all(|v| !v.is_nan()))
        .collect();
    let n = complete.len();
    if n == 0 {
        return (mu, vec![f64::NAN; cols * cols]);
    }
    let mut cm = vec![0.0; cols];
    for r in &complete {
        for (m, v) in cm.iter_mut().zip(r.iter()) {
            *m += v;
        }
    }
    for m in &mut cm {
        *m /= n as f64;
    }
    let mut cov = vec![0.0; cols * cols];
    for r in &complete {
        for i in 0..cols {
            let di = r[i] - cm[i];
            for j in i..cols {
                cov[i * cols + j] += di * (r[j] - cm[j]);
            }
        }
    }
    let denom = if n > 1 { (n - 1) as f64 } else { 1.0 };
    for i in 0..cols {
        for j in i..cols {
            let v = cov[i * cols + j] / denom;
            cov[i * cols + j] = v;
            cov[j * cols + i] = v;
        }
    }
    (mu, cov)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nancov_drops_incomplete_rows() {
        let x = [1.0, 2.0, f64::NAN, 5.0, 3.0, 6.0, 5.0, 10.0];
        let (mu, cov) = nan_mean_cov(&x, 4, 2);
        assert_eq!(mu, vec![3.0, 23.0 / 4.0]);
        // Complete rows: (1,2), (3,6), (5,10): var x = 4, var y = 16, cov = 8.
        assert_eq!(cov, vec![4.0, 8.0, 8.0, 16.0]);
        let (_, cov1) = nan_mean_cov(&[1.0, 2.0], 1, 2);
        assert_eq!(cov1, vec![0.0; 4]);
    }

    #[test]
    fn too_small_and_constant() {
        let img = GrayImage::new(95, 200, vec![1.0; 95 * 200]).unwrap();
        assert!(matches!(
            niqe_gray(&img),
            Err(MetricError::ImageTooSmall { min: 96, .. })
        ));
        let img = GrayImage::new(96, 96, vec![128.0; 96 * 96]).unwrap();
        assert!(matches!(
            niqe_gray(&img),
            Err(MetricError::Undefined { .. })
        ));
    }
}
