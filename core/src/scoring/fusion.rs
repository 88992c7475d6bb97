//! Fusion and selection: score every candidate with every metric, fuse the scores, and pick
//! the preferred (argmax) and dispreferred (argmin) candidates.

use super::Metric;
use crate::error::{Error, Result};
use crate::image::Image;
use crate::progress::Ticker;

/// How per-metric scores are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fusion {
    /// Mean over metrics of z-scores across candidates (population std; a metric with zero
    /// spread contributes 0), sign-flipped for lower-is-better metrics.
    #[default]
    ZScore,
    /// Entropy-weighted sum of min-shifted, column-normalised scores: metrics that separate
    /// the candidates more get more weight.
    Entropy,
}

/// Scores of every candidate and the automatic choice.
#[derive(Clone, Debug, PartialEq)]
pub struct Scores {
    /// Names of the metrics that scored (the active set).
    pub metrics: Vec<String>,
    /// Whether each active metric is higher-is-better.
    pub higher_is_better: Vec<bool>,
    /// `per_metric[candidate][metric]`.
    pub per_metric: Vec<Vec<f64>>,
    /// Fused score per candidate (higher is preferred).
    pub fused: Vec<f64>,
    /// Metrics left out, with the reason (e.g. the image is below a metric's minimum size).
    pub dropped: Vec<(String, String)>,
    /// argmax of `fused`.
    pub preferred: usize,
    /// argmin of `fused`.
    pub dispreferred: usize,
}

/// Fuses `scores[candidate][metric]`.
pub fn fuse(scores: &[Vec<f64>], higher_is_better: &[bool], fusion: Fusion) -> Vec<f64> {
    let n = scores.len();
    let m = higher_is_better.len();
    let column = |j: usize| -> Vec<f64> {
        scores
            .iter()
            .map(|row| if higher_is_better[j] { row[j] } else { -row[j] })
            .collect()
    };
    let mut fused = vec![0.0; n];
    if n == 0 || m == 0 {
        return fused;
    }
    match fusion {
        Fusion::ZScore => {
            for j in 0..m {
                let c = column(j);
                let mean = c.iter().sum::<f64>() / n as f64;
                let std = (c.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
                if std > 0.0 {
                    for (f, v) in fused.iter_mut().zip(&c) {
                        *f += (v - mean) / std / m as f64;
                    }
                }
            }
        }
        Fusion::Entropy => {
            let cols: Vec<Vec<f64>> = (0..m)
                .map(|j| {
                    let c = column(j);
                    let min = c.iter().cloned().fold(f64::INFINITY, f64::min);
                    let shifted: Vec<f64> = c.iter().map(|v| v - min + 1e-6).collect();
                    let sum: f64 = shifted.iter().sum();
                    shifted.iter().map(|v| v / sum).collect()
                })
                .collect();
            let entropy: Vec<f64> = cols
                .iter()
                .map(|p| {
                    if n < 2 {
                        1.0
                    } else {
                        -p.iter().map(|v| v * v.ln()).sum::<f64>() / (n as f64).ln()
                    }
                })
                .collect();
            let total: f64 = entropy.iter().map(|e| 1.0 - e).sum();
            let weights: Vec<f64> = entropy
                .iter()
                .map(|e| {
                    if total > 1e-15 {
                        (1.0 - e) / total
                    } else {
                        1.0 / m as f64
                    }
                })
                .collect();
            for (j, p) in cols.iter().enumerate() {
                for (f, v) in fused.iter_mut().zip(p) {
                    *f += weights[j] * v;
                }
            }
        }
    }
    fused
}

/// Index of the largest value (first on ties).
pub fn argmax(v: &[f64]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |best, (i, &x)| {
            if x > best.1 {
                (i, x)
            } else {
                best
            }
        })
        .0
}

/// Index of the smallest value (first on ties).
pub fn argmin(v: &[f64]) -> usize {
    v.iter()
        .enumerate()
        .fold(
            (0, f64::INFINITY),
            |best, (i, &x)| if x < best.1 { (i, x) } else { best },
        )
        .0
}

/// Scores `images` with every metric that can score all of them, then fuses.
pub(crate) fn score_all(
    metrics: &[Box<dyn Metric>],
    images: &[&Image],
    fusion: Fusion,
    ticker: &mut Ticker,
) -> Result<Scores> {
    let mut table: Vec<Vec<f64>> = vec![Vec::new(); images.len()];
    let mut names = Vec::new();
    let mut higher = Vec::new();
    let mut dropped = Vec::new();
    for metric in metrics {
        let mut col = Vec::with_capacity(images.len());
        let mut failure = None;
        for img in images {
            ticker.check()?;
            match metric.score(img) {
                Ok(v) if v.is_finite() => col.push(v),
                Ok(v) => {
                    failure = Some(format!("non-finite score {v}"));
                    break;
                }
                Err(e) => {
                    failure = Some(e.to_string());
                    break;
                }
            }
            ticker.tick();
        }
        match failure {
            Some(reason) => {
                // Keep the stage's progress complete: the skipped images count as done.
                for _ in col.len()..images.len() {
                    ticker.tick();
                }
                tracing::warn!(metric = metric.name(), %reason, "metric dropped");
                dropped.push((metric.name().to_owned(), reason));
            }
            None => {
                for (row, v) in table.iter_mut().zip(col) {
                    row.push(v);
                }
                names.push(metric.name().to_owned());
                higher.push(metric.higher_is_better());
            }
        }
    }
    if names.is_empty() {
        let why: Vec<String> = dropped.iter().map(|(n, r)| format!("{n}: {r}")).collect();
        return Err(Error::Metric {
            metric: "all".into(),
            reason: format!("no metric could score the candidates ({})", why.join("; ")),
        });
    }
    let fused = fuse(&table, &higher, fusion);
    Ok(Scores {
        preferred: argmax(&fused),
        dispreferred: argmin(&fused),
        metrics: names,
        higher_is_better: higher,
        per_metric: table,
        fused,
        dropped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zscore_fusion_by_hand() {
        // Two metrics, three candidates; metric 1 is lower-is-better.
        let s = vec![vec![1.0, 10.0], vec![2.0, 30.0], vec![3.0, 20.0]];
        let f = fuse(&s, &[true, false], Fusion::ZScore);
        let std0 = (2.0f64 / 3.0).sqrt();
        let std1 = (200.0f64 / 3.0).sqrt();
        let want = [
            ((1.0 - 2.0) / std0 - (10.0 - 20.0) / std1) / 2.0,
            ((2.0 - 2.0) / std0 - (30.0 - 20.0) / std1) / 2.0,
            ((3.0 - 2.0) / std0 - (20.0 - 20.0) / std1) / 2.0,
        ];
        for (a, b) in f.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
        assert_eq!(argmax(&f), 2);
        assert_eq!(argmin(&f), 1);
    }

    #[test]
    fn zero_spread_is_guarded() {
        let s = vec![vec![5.0, 1.0], vec![5.0, 2.0]];
        let f = fuse(&s, &[true, true], Fusion::ZScore);
        assert!(f.iter().all(|v| v.is_finite()));
        assert_eq!(f, vec![-0.5, 0.5]);
        let all_equal = fuse(&[vec![1.0], vec![1.0]], &[true], Fusion::ZScore);
        assert_eq!(all_equal, vec![0.0, 0.0]);
        assert_eq!(argmax(&all_equal), 0);
    }

    #[test]
    fn entropy_fusion_weights_the_discriminating_metric() {
        // Metric 0 barely varies; metric 1 separates strongly and decides the ranking.
        let s = vec![vec![1.00, 1.0], vec![1.01, 9.0], vec![1.02, 0.0]];
        let f = fuse(&s, &[false, true], Fusion::Entropy);
        assert_eq!(argmax(&f), 1);
        assert_eq!(argmin(&f), 2);
        // By hand: metric 0 flipped = [-1, -1.01, -1.02] -> shifted [0.02, 0.01, 0] + 1e-6.
        let p0 = [0.020001, 0.010001, 0.000001];
        let s0: f64 = p0.iter().sum();
        let e0 = -p0.iter().map(|v| v / s0 * (v / s0).ln()).sum::<f64>() / 3f64.ln();
        let p1 = [1.000001, 9.000001, 0.000001];
        let s1: f64 = p1.iter().sum();
        let e1 = -p1.iter().map(|v| v / s1 * (v / s1).ln()).sum::<f64>() / 3f64.ln();
        let (w0, w1) = ((1.0 - e0) / (2.0 - e0 - e1), (1.0 - e1) / (2.0 - e0 - e1));
        let want0 = w0 * p0[0] / s0 + w1 * p1[0] / s1;
        assert!((f[0] - want0).abs() < 1e-12);
    }
}
