//! Natural-scene-statistics building blocks: the Gamma function and moment-matching fits
//! of the generalised Gaussian (GGD) and asymmetric generalised Gaussian (AGGD).
//!
//! Both fits follow the LIVE MATLAB code: the shape parameter is searched on the grid
//! `0.2:0.001:10` for the value whose moment ratio is nearest to the sample's.

use std::sync::OnceLock;

/// The Gamma function Γ(x) for real `x` (Lanczos approximation, g = 7, 9 terms; relative
/// error around 1e-15; reflection formula below 0.5).
pub fn gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    #[allow(clippy::excessive_precision)]
    const P: [f64; 9] = [
        0.999_999_999_999_809_93,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_13,
        -176.615_029_162_140_59,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_571_6e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        std::f64::consts::PI / ((std::f64::consts::PI * x).sin() * gamma(1.0 - x))
    } else {
        let x = x - 1.0;
        let mut a = P[0];
        for (i, &p) in P.iter().enumerate().skip(1) {
            a += p / (x + i as f64);
        }
        let t = x + G + 0.5;
        (2.0 * std::f64::consts::PI).sqrt() * t.powf(x + 0.5) * (-t).exp() * a
    }
}

/// Number of points in the shape grid `0.2:0.001:10`.
const GRID_LEN: usize = 9801;

#[inline]
fn grid(k: usize) -> f64 {
    0.2 + k as f64 * 0.001
}

/// `Γ(1/g)Γ(3/g)/Γ(2/g)²` on the grid (decreasing in g) — the GGD table.
fn ggd_table() -> &'static [f64] {
    static T: OnceLock<Vec<f64>> = OnceLock::new();
    T.get_or_init(|| {
        (0..GRID_LEN)
            .map(|k| {
                let g = grid(k);
                gamma(1.0 / g) * gamma(3.0 / g) / gamma(2.0 / g).powi(2)
            })
            .collect()
    })
}

/// `Γ(2/g)²/(Γ(1/g)Γ(3/g))` on the grid (increasing in g) — the AGGD table.
fn aggd_table() -> &'static [f64] {
    static T: OnceLock<Vec<f64>> = OnceLock::new();
    T.get_or_init(|| ggd_table().iter().map(|v| 1.0 / v).collect())
}

/// Index of the table entry nearest to `x` (first one on ties); 0 for NaN, as MATLAB's
/// `min` and torch's `argmin` give for an all-NaN difference vector. The table must be
/// monotonic (checked by a unit test), so a binary search finds the same index as a scan.
fn nearest(table: &[f64], x: f64) -> usize {
    if x.is_nan() {
        return 0;
    }
    let increasing = table[table.len() - 1] > table[0];
    // First index whose value is on the far side of x.
    let pos = if increasing {
        table.partition_point(|&v| v < x)
    } else {
        table.partition_point(|&v| v > x)
    };
    if pos == 0 {
        return 0;
    }
    if pos >= table.len() {
        return table.len() - 1;
    }
    let below = (table[pos - 1] - x).abs();
    let above = (table[pos] - x).abs();
    if below <= above {
        pos - 1
    } else {
        pos
    }
}

/// Result of a GGD fit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GgdFit {
    /// Shape parameter α (2 = Gaussian, 1 = Laplacian).
    pub alpha: f64,
    /// Standard deviation, `sqrt(mean(x²))`.
    pub sigma: f64,
}

/// Fits a zero-mean generalised Gaussian by moment matching (BRISQUE's
/// `estimateggdparam`): `ρ = mean(x²)/mean(|x|)²` is matched against
/// `Γ(1/α)Γ(3/α)/Γ(2/α)²`. An empty or all-zero input gives `alpha = 0.2` and a
/// zero or NaN `sigma`, like the reference.
pub fn fit_ggd(x: &[f64]) -> GgdFit {
    let n = x.len() as f64;
    let (mut s2, mut s1) = (0.0, 0.0);
    for &v in x {
        s2 += v * v;
        s1 += v.abs();
    }
    let sigma_sq = s2 / n;
    let e = s1 / n;
    let rho = sigma_sq / (e * e);
    GgdFit {
        alpha: grid(nearest(ggd_table(), rho)),
        sigma: sigma_sq.sqrt(),
    }
}

/// Result of an AGGD fit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AggdFit {
    /// Shape parameter α.
    pub alpha: f64,
    /// Left standard deviation `sqrt(mean(x² | x < 0))`.
    pub left_std: f64,
    /// Right standard deviation `sqrt(mean(x² | x > 0))`.
    pub right_std: f64,
}

impl AggdFit {
    /// `sqrt(Γ(1/α)/Γ(3/α))`, the factor from a standard deviation to a scale β.
    fn beta_factor(&self) -> f64 {
        (gamma(1.0 / self.alpha) / gamma(3.0 / self.alpha)).sqrt()
    }
    /// Left scale β_l.
    pub fn beta_left(&self) -> f64 {
        self.left_std * self.beta_factor()
    }
    /// Right scale β_r.
    pub fn beta_right(&self) -> f64 {
        self.right_std * self.beta_factor()
    }
}

/// Fits an asymmetric generalised Gaussian by moment matching (`estimateaggdparam` of the
/// LIVE code). Samples equal to zero count in the overall moments but on neither side.
/// A side without samples gives a NaN standard deviation (and then `alpha = 0.2`), as in
/// the reference; callers treat NaN features accordingly.
pub fn fit_aggd(x: &[f64]) -> AggdFit {
    let (mut l2, mut nl, mut r2, mut nr, mut s1, mut s2) = (0.0, 0usize, 0.0, 0usize, 0.0, 0.0);
    for &v in x {
        let q = v * v;
        if v < 0.0 {
            l2 += q;
            nl += 1;
        } else if v > 0.0 {
            r2 += q;
            nr += 1;
        }
        s1 += v.abs();
        s2 += q;
    }
    let n = x.len() as f64;
    let left_std = (l2 / nl as f64).sqrt();
    let right_std = (r2 / nr as f64).sqrt();
    let gammahat = left_std / right_std;
    let m1 = s1 / n;
    let rhat = m1 * m1 / (s2 / n);
    let rhatnorm =
        rhat * (gammahat.powi(3) + 1.0) * (gammahat + 1.0) / (gammahat * gammahat + 1.0).powi(2);
    AggdFit {
        alpha: grid(nearest(aggd_table(), rhatnorm)),
        left_std,
        right_std,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64* — a tiny deterministic generator for the synthetic-data tests.
    struct Rng(u64);
    impl Rng {
        fn uniform(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let v = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
            ((v >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }
        fn normal(&mut self) -> f64 {
            let (u1, u2) = (self.uniform(), self.uniform());
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        }
    }

    #[test]
    fn gamma_known_values() {
        assert!((gamma(1.0) - 1.0).abs() < 1e-14);
        assert!((gamma(5.0) - 24.0).abs() < 1e-11);
        assert!((gamma(0.5) - std::f64::consts::PI.sqrt()).abs() < 1e-14);
        assert!((gamma(0.1) - 9.513_507_698_668_732).abs() < 1e-12);
        assert!((gamma(15.0) - 87_178_291_200.0).abs() / 87_178_291_200.0 < 1e-13);
    }

    #[test]
    fn tables_are_monotonic() {
        let t = aggd_table();
        assert_eq!(t.len(), GRID_LEN);
        assert!(t.windows(2).all(|w| w[1] > w[0]));
        assert!((grid(GRID_LEN - 1) - 10.0).abs() < 1e-12);
        // Binary search agrees with a linear scan.
        for &x in &[0.01, 0.3, 0.5, 0.6123, 0.7, 0.75, 0.9] {
            let scan = t
                .iter()
                .enumerate()
                .min_by(|a, b| (a.1 - x).abs().partial_cmp(&(b.1 - x).abs()).unwrap())
                .unwrap()
                .0;
            assert_eq!(nearest(t, x), scan, "x = {x}");
        }
        assert_eq!(nearest(t, f64::NAN), 0);
    }

    #[test]
    fn ggd_fit_gaussian_and_laplacian() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        let g: Vec<f64> = (0..400_000).map(|_| 3.0 * rng.normal()).collect();
        let f = fit_ggd(&g);
        assert!((f.alpha - 2.0).abs() < 0.05, "{f:?}");
        assert!((f.sigma - 3.0).abs() < 0.02, "{f:?}");
        // Laplacian with scale b: variance 2b².
        let b = 0.5;
        let l: Vec<f64> = (0..400_000)
            .map(|_| {
                let e = -rng.uniform().ln() * b;
                if rng.uniform() < 0.5 {
                    -e
                } else {
                    e
                }
            })
            .collect();
        let f = fit_ggd(&l);
        assert!((f.alpha - 1.0).abs() < 0.03, "{f:?}");
        assert!((f.sigma - (2.0f64).sqrt() * b).abs() < 0.01, "{f:?}");
    }

    #[test]
    fn aggd_fit_two_half_gaussians() {
        let mut rng = Rng(42);
        let x: Vec<f64> = (0..400_000)
            .map(|_| {
                // AGGD mass on each side is proportional to its scale: P(left) = 1/3.
                let n = rng.normal().abs();
                if rng.uniform() < 1.0 / 3.0 {
                    -n
                } else {
                    2.0 * n
                }
            })
            .collect();
        let f = fit_aggd(&x);
        assert!((f.alpha - 2.0).abs() < 0.06, "{f:?}");
        assert!((f.left_std - 1.0).abs() < 0.01, "{f:?}");
        assert!((f.right_std - 2.0).abs() < 0.02, "{f:?}");
        // For alpha = 2, beta = std * sqrt(Γ(1/2)/Γ(3/2)) = std * sqrt(2).
        let f2 = AggdFit {
            alpha: 2.0,
            left_std: 1.0,
            right_std: 2.0,
        };
        assert!((f2.beta_left() - 2f64.sqrt()).abs() < 1e-12);
        assert!((f2.beta_right() - 2.0 * 2f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn degenerate_inputs_do_not_panic() {
        let f = fit_aggd(&[0.0; 10]);
        assert_eq!(f.alpha, 0.2);
        assert!(f.left_std.is_nan());
        let f = fit_aggd(&[1.0, 2.0, 3.0]);
        assert!(f.left_std.is_nan() && f.right_std > 0.0);
        let f = fit_ggd(&[0.0; 4]);
        assert_eq!(f.alpha, 0.2);
        assert_eq!(f.sigma, 0.0);
    }
}
