//! MATLAB-compatible `imresize` (bicubic, antialiased when shrinking).

use crate::gray::GrayImage;

/// Output length MATLAB uses for a scale factor: `ceil(len * scale)`.
pub fn imresize_len(len: usize, scale: f64) -> usize {
    ((len as f64) * scale).ceil() as usize
}

/// Keys' cubic kernel with `a = -0.5` (MATLAB's `cubic`).
fn cubic(x: f64) -> f64 {
    let ax = x.abs();
    let ax2 = ax * ax;
    let ax3 = ax2 * ax;
    if ax <= 1.0 {
        1.5 * ax3 - 2.5 * ax2 + 1.0
    } else if ax <= 2.0 {
        -0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0
    } else {
        0.0
    }
}

/// Per-output-sample source indices (0-based, mirrored at the borders) and weights, as
/// MATLAB's `contributions` computes them.
fn contributions(in_len: usize, out_len: usize, scale: f64) -> Vec<Vec<(usize, f64)>> {
    let antialias = scale < 1.0;
    let kernel_width = if antialias { 4.0 / scale } else { 4.0 };
    let p = kernel_width.ceil() as isize + 2;
    let n = in_len as isize;
    (1..=out_len)
        .map(|x| {
            // Output sample x (1-based) maps to u in input coordinates (1-based).
            let u = x as f64 / scale + 0.5 * (1.0 - 1.0 / scale);
            let left = (u - kernel_width / 2.0).floor() as isize;
            let mut taps: Vec<(usize, f64)> = Vec::with_capacity(p as usize);
            let mut sum = 0.0;
            for j in 0..p {
                let idx = left + j; // 1-based, possibly out of range
                let d = u - idx as f64;
                let w = if antialias {
                    scale * cubic(scale * d)
                } else {
                    cubic(d)
                };
                if w == 0.0 {
                    continue;
                }
                // Symmetric mirroring: aux = [1..n, n..1], index = aux(mod(idx-1, 2n) + 1).
                let m = (idx - 1).rem_euclid(2 * n);
                let src = if m < n { m } else { 2 * n - 1 - m };
                sum += w;
                taps.push((src as usize, w));
            }
            for t in &mut taps {
                t.1 /= sum;
            }
            taps
        })
        .collect()
}

/// Resizes like MATLAB's `imresize(img, scale)` with the default bicubic kernel and
/// antialiasing: output size `ceil(size * scale)`, rows resized first, then columns,
/// symmetric border handling, no rounding or clamping (as for `double` input).
///
/// `scale` must be positive and finite; the image must be non-empty.
pub fn imresize(img: &GrayImage, scale: f64) -> GrayImage {
    assert!(
        scale.is_finite() && scale > 0.0,
        "imresize: bad scale {scale}"
    );
    let (w, h) = (img.width, img.height);
    let oh = imresize_len(h, scale).max(1);
    let ow = imresize_len(w, scale).max(1);
    // Dimension 1 (rows) first.
    let rc = contributions(h, oh, scale);
    let mut tmp = vec![0.0; w * oh];
    for (y, taps) in rc.iter().enumerate() {
        let dst = &mut tmp[y * w..(y + 1) * w];
        for &(sy, wt) in taps {
            let src = &img.data[sy * w..(sy + 1) * w];
            for (o, s) in dst.iter_mut().zip(src) {
                *o += wt * s;
            }
        }
    }
    let cc = contributions(w, ow, scale);
    let mut out = vec![0.0; ow * oh];
    for y in 0..oh {
        let src = &tmp[y * w..(y + 1) * w];
        for (x, taps) in cc.iter().enumerate() {
            out[y * ow + x] = taps.iter().map(|&(sx, wt)| wt * src[sx]).sum();
        }
    }
    GrayImage {
        width: ow,
        height: oh,
        data: out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_size_hand_computed() {
        // For scale 0.5 the antialiased kernel is 0.5·cubic(0.5·d); output 1 of a
        // 4-sample row sits at u = 1.5 with taps at distances ±0.5, ±1.5, ±2.5, ±3.5:
        // weights 0.43359375, 0.11328125, -0.03515625, -0.01171875 (sum over all = 1).
        // With mirroring [a b c d] -> out1 = 0.546875a + 0.3984375b + 0.1015625c - 0.046875d.
        let img = GrayImage::new(4, 1, vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        let r = imresize(&img, 0.5);
        assert_eq!((r.width, r.height), (2, 1));
        assert!((r.data[0] - 1.460_937_5).abs() < 1e-12, "{}", r.data[0]);
        assert!((r.data[1] - 3.539_062_5).abs() < 1e-12, "{}", r.data[1]);
        let img = GrayImage::new(4, 1, vec![0.0, 0.0, 0.0, 64.0]).unwrap();
        let r = imresize(&img, 0.5);
        assert!((r.data[0] + 3.0).abs() < 1e-12);
        assert!((r.data[1] - 35.0).abs() < 1e-12);
    }

    #[test]
    fn sizes_and_constants() {
        assert_eq!(imresize_len(5, 0.5), 3);
        assert_eq!(imresize_len(96, 0.5), 48);
        let img = GrayImage::new(7, 5, vec![42.0; 35]).unwrap();
        let r = imresize(&img, 0.5);
        assert_eq!((r.width, r.height), (4, 3));
        assert!(r.data.iter().all(|v| (v - 42.0).abs() < 1e-12));
    }

    #[test]
    fn separable_in_both_directions() {
        // A column vector behaves like the row vector.
        let img = GrayImage::new(1, 4, vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        let r = imresize(&img, 0.5);
        assert_eq!((r.width, r.height), (1, 2));
        assert!((r.data[0] - 1.460_937_5).abs() < 1e-12);
    }
}
