//! Gaussian filtering and MSCN (mean-subtracted, contrast-normalised) coefficients.

use crate::gray::GrayImage;

/// Border handling for the Gaussian filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// Zeros outside the image (MATLAB `filter2(.., 'same')`, used by BRISQUE).
    Zero,
    /// Nearest edge sample repeated (MATLAB `imfilter(.., 'replicate')`, used by NIQE and PIQE).
    Replicate,
}

/// The normalised 1-D factor of MATLAB's `fspecial('gaussian', size, sigma)`.
///
/// The 2-D window is the outer product of this vector with itself (the 2-D Gaussian is
/// separable and the normalisation factorises). `size` must be odd.
pub fn gaussian_window(size: usize, sigma: f64) -> Vec<f64> {
    let half = (size as f64 - 1.0) / 2.0;
    let mut w: Vec<f64> = (0..size)
        .map(|i| {
            let x = i as f64 - half;
            (-(x * x) / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    let s: f64 = w.iter().sum();
    for v in &mut w {
        *v /= s;
    }
    w
}

/// Correlates `img` with the separable kernel `k ⊗ k` (odd length), same-size output.
pub(crate) fn filter_separable(img: &GrayImage, k: &[f64], pad: Padding) -> GrayImage {
    let (w, h) = (img.width, img.height);
    let r = k.len() / 2;
    let clampi = |i: isize, n: usize| -> Option<usize> {
        if i >= 0 && (i as usize) < n {
            Some(i as usize)
        } else {
            match pad {
                Padding::Zero => None,
                Padding::Replicate => Some(i.clamp(0, n as isize - 1) as usize),
            }
        }
    };
    // Vertical pass.
    let mut tmp = vec![0.0; w * h];
    for y in 0..h {
        let row = &mut tmp[y * w..(y + 1) * w];
        for (t, &kv) in k.iter().enumerate() {
            let yy = y as isize + t as isize - r as isize;
            if let Some(yy) = clampi(yy, h) {
                let src = &img.data[yy * w..(yy + 1) * w];
                for (o, s) in row.iter_mut().zip(src) {
                    *o += kv * s;
                }
            }
        }
    }
    // Horizontal pass.
    let mut out = vec![0.0; w * h];
    for y in 0..h {
        let src = &tmp[y * w..(y + 1) * w];
        let dst = &mut out[y * w..(y + 1) * w];
        for (x, o) in dst.iter_mut().enumerate() {
            let mut acc = 0.0;
            if x >= r && x + r < w {
                for (t, &kv) in k.iter().enumerate() {
                    acc += kv * src[x + t - r];
                }
            } else {
                for (t, &kv) in k.iter().enumerate() {
                    if let Some(xx) = clampi(x as isize + t as isize - r as isize, w) {
                        acc += kv * src[xx];
                    }
                }
            }
            *o = acc;
        }
    }
    GrayImage {
        width: w,
        height: h,
        data: out,
    }
}

/// MSCN coefficients `(I - μ) / (σ + 1)` with a 7×7 Gaussian window of σ = 7/6, where
/// `σ = sqrt(|G * I² − μ²|)` — the normalisation shared by NIQE, BRISQUE and PIQE.
///
/// Returns the coefficients and the local standard deviation map.
pub fn mscn(img: &GrayImage, pad: Padding) -> (GrayImage, GrayImage) {
    let k = gaussian_window(7, 7.0 / 6.0);
    let mu = filter_separable(img, &k, pad);
    let sq = GrayImage {
        width: img.width,
        height: img.height,
        data: img.data.iter().map(|v| v * v).collect(),
    };
    let mu2 = filter_separable(&sq, &k, pad);
    let mut sigma = Vec::with_capacity(img.data.len());
    let mut out = Vec::with_capacity(img.data.len());
    for ((&i, &m), &m2) in img.data.iter().zip(&mu.data).zip(&mu2.data) {
        let s = (m2 - m * m).abs().sqrt();
        sigma.push(s);
        out.push((i - m) / (s + 1.0));
    }
    (
        GrayImage {
            width: img.width,
            height: img.height,
            data: out,
        },
        GrayImage {
            width: img.width,
            height: img.height,
            data: sigma,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_matches_fspecial() {
        let k = gaussian_window(7, 7.0 / 6.0);
        assert!((k.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        // 1-D sum: 1 + 2(e^(-18/49) + e^(-72/49) + e^(-162/49)) = 2.918 64…, so the
        // 2-D centre of fspecial('gaussian', 7, 7/6) is 1 / 2.918 64² = 0.117 39….
        assert!((k[3] * k[3] - 0.117_39).abs() < 1e-4, "{}", k[3] * k[3]);
        assert!((k[0] - k[6]).abs() < 1e-18);
    }

    #[test]
    fn constant_image_filters_to_itself_with_replicate() {
        let img = GrayImage::new(5, 4, vec![3.0; 20]).unwrap();
        let k = gaussian_window(7, 7.0 / 6.0);
        let f = filter_separable(&img, &k, Padding::Replicate);
        assert!(f.data.iter().all(|v| (v - 3.0).abs() < 1e-12));
        // With zero padding the corners lose mass.
        let z = filter_separable(&img, &k, Padding::Zero);
        assert!(z.data[0] < 3.0 && z.data[0] > 0.0);
        let (m, s) = mscn(&img, Padding::Replicate);
        assert!(m.data.iter().all(|v| v.abs() < 1e-6));
        assert!(s.data.iter().all(|v| v.abs() < 1e-6));
    }
}
