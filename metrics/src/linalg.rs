//! Small dense linear algebra: symmetric eigen-decomposition (cyclic Jacobi) and the
//! Moore–Penrose pseudo-inverse of a symmetric matrix.

/// Eigen-decomposition of a symmetric `n × n` matrix (row-major). Returns the eigenvalues
/// and the eigenvectors as the columns of a row-major matrix.
pub(crate) fn sym_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = a.to_vec();
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _sweep in 0..100 {
        let mut off = 0.0;
        for i in 0..n {
            for j in i + 1..n {
                off += a[i * n + j] * a[i * n + j];
            }
        }
        let total: f64 = a.iter().map(|x| x * x).sum();
        if off <= 1e-30 * total || off == 0.0 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let app = a[p * n + p];
                let aqq = a[q * n + q];
                let theta = (aqq - app) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                // Rotate rows/columns p and q.
                for k in 0..n {
                    let akp = a[k * n + p];
                    let akq = a[k * n + q];
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let apk = a[p * n + k];
                    let aqk = a[q * n + k];
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let vkp = v[k * n + p];
                    let vkq = v[k * n + q];
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

/// Pseudo-inverse of a symmetric matrix with MATLAB's default tolerance
/// `max(size) · ‖A‖₂ · eps` (singular values of a symmetric matrix are |eigenvalues|).
pub(crate) fn pinv_sym(a: &[f64], n: usize) -> Vec<f64> {
    let (w, v) = sym_eigen(a, n);
    let norm = w.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let tol = n as f64 * norm * f64::EPSILON;
    let mut out = vec![0.0; n * n];
    for (k, &lam) in w.iter().enumerate() {
        if lam.abs() <= tol {
            continue;
        }
        let inv = 1.0 / lam;
        for i in 0..n {
            let vik = v[i * n + k] * inv;
            for j in 0..n {
                out[i * n + j] += vik * v[j * n + k];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinv_of_invertible_is_inverse() {
        let a = [4.0, 1.0, 0.5, 1.0, 3.0, 0.2, 0.5, 0.2, 2.0];
        let p = pinv_sym(&a, 3);
        for i in 0..3 {
            for j in 0..3 {
                let s: f64 = (0..3).map(|k| a[i * 3 + k] * p[k * 3 + j]).sum();
                assert!((s - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn pinv_of_singular() {
        // [1 1; 1 1] has pinv [0.25 0.25; 0.25 0.25].
        let p = pinv_sym(&[1.0, 1.0, 1.0, 1.0], 2);
        assert!(p.iter().all(|v| (v - 0.25).abs() < 1e-12), "{p:?}");
        assert!(pinv_sym(&[0.0; 4], 2).iter().all(|v| *v == 0.0));
    }
}
