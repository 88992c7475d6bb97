//! Linear layers on the CPU as one gemm over all tokens that writes on top of the bias (and,
//! where the model adds a residual next, on top of the residual too), and diffusers' GEGLU
//! feed-forward input (`h * gelu(gate)`) in one pass over the projection.
//!
//! candle's `Linear` multiplies, then adds the bias as a second full-size pass into a new
//! tensor; the residual add and GEGLU's split, GELU and product are three more. In the SD
//! UNet those passes over (tokens x 2560) tensors were ~10 % of a call (perf, issue #13).

use super::{cpu_f32, cpu_tensor, simd, threads, uninit_vec, with_f32};
use candle_core::{Module, Result, Tensor, D};
use candle_nn::VarBuilder;
use rayon::prelude::*;

/// `y = x W^T + b` on the last dimension of `x`.
#[derive(Clone, Debug)]
pub struct Linear {
    inner: candle_nn::Linear,
}

impl Linear {
    /// Loads `weight` (out, in) and, with `bias`, `bias` (out).
    pub fn load(vb: VarBuilder, input: usize, output: usize, bias: bool) -> Result<Self> {
        let inner = if bias {
            candle_nn::linear(input, output, vb)?
        } else {
            candle_nn::linear_no_bias(input, output, vb)?
        };
        Ok(Self { inner })
    }

    /// From a weight (out, in) and an optional bias (out) already in hand (e.g. a
    /// patch-embedding convolution's kernel flattened to a matrix).
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self {
            inner: candle_nn::Linear::new(weight, bias),
        }
    }

    /// candle's layer (the reference).
    pub fn candle(&self) -> &candle_nn::Linear {
        &self.inner
    }

    /// `x W^T + b + residual` (`residual` shaped like the output).
    pub fn forward_add(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        if self.takes_kernel(x) && cpu_f32(residual) {
            self.forward_cpu(x, Some(residual))
        } else {
            self.inner.forward(x)? + residual
        }
    }

    /// GEGLU: the projection's first half times the exact (erf) GELU of its second half.
    pub fn forward_geglu(&self, x: &Tensor) -> Result<Tensor> {
        if !self.takes_kernel(x) {
            let y = self.inner.forward(x)?;
            let n = y.dim(D::Minus1)? / 2;
            return y.narrow(D::Minus1, 0, n)? * y.narrow(D::Minus1, n, n)?.gelu_erf()?;
        }
        let y = self.forward_cpu(x, None)?;
        let dims = y.dims().to_vec();
        let width = dims[dims.len() - 1];
        if width % 2 != 0 {
            candle_core::bail!("geglu: odd projection width {width}");
        }
        let half = width / 2;
        let rows = y.elem_count() / width;
        let mut out = uninit_vec(rows * half);
        with_f32(&y, |ys| {
            out.par_chunks_mut(half)
                .zip(ys.par_chunks(width))
                .for_each(|(o, yr)| {
                    let (h, gate) = yr.split_at(half);
                    simd(|| geglu_row(o, h, gate))
                });
        })?;
        let mut shape = dims;
        *shape.last_mut().expect("rank >= 1") = half;
        cpu_tensor(out, &shape)
    }

    fn takes_kernel(&self, x: &Tensor) -> bool {
        cpu_f32(x)
            && cpu_f32(self.inner.weight())
            && self.inner.bias().is_none_or(cpu_f32)
            && x.rank() >= 1
    }

    fn forward_cpu(&self, x: &Tensor, residual: Option<&Tensor>) -> Result<Tensor> {
        let w = self.inner.weight();
        let (out_f, in_f) = w.dims2()?;
        let dims = x.dims();
        if dims[dims.len() - 1] != in_f {
            candle_core::bail!(
                "linear: input width {} differs from the layer's {in_f}",
                dims[dims.len() - 1]
            );
        }
        let rows = x.elem_count() / in_f.max(1);
        let mut shape = dims.to_vec();
        *shape.last_mut().expect("rank >= 1") = out_f;
        if let Some(r) = residual {
            if r.dims() != shape.as_slice() {
                candle_core::bail!("linear: residual {:?} is not {:?}", r.dims(), shape);
            }
        }
        // The gemm accumulates on top of bias + residual (one pass), or writes fresh.
        let mut out = uninit_vec(rows * out_f);
        let bias = match self.inner.bias() {
            Some(b) => Some(b.to_vec1::<f32>()?),
            None => None,
        };
        let accumulate = match (residual, &bias) {
            (Some(r), _) => {
                with_f32(r, |rs| {
                    out.par_chunks_mut(out_f)
                        .zip(rs.par_chunks(out_f))
                        .for_each(|(o, r)| match &bias {
                            Some(b) => o.iter_mut().zip(r).zip(b).for_each(|((o, r), b)| {
                                *o = r + b;
                            }),
                            None => o.copy_from_slice(r),
                        })
                })?;
                true
            }
            (None, Some(b)) => {
                out.par_chunks_mut(out_f).for_each(|o| o.copy_from_slice(b));
                true
            }
            (None, None) => false,
        };
        with_f32(x, |xs| {
            with_f32(w, |ws| {
                // SAFETY: dst (rows, out_f) is `out`; lhs (rows, in_f) row-major is `xs`;
                // rhs = W^T, (in_f, out_f) read from W (out_f, in_f) with column stride in_f.
                unsafe {
                    gemm::gemm(
                        rows,
                        out_f,
                        in_f,
                        out.as_mut_ptr(),
                        1,
                        out_f as isize,
                        accumulate,
                        xs.as_ptr(),
                        1,
                        in_f as isize,
                        ws.as_ptr(),
                        in_f as isize,
                        1,
                        1.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::Rayon(threads()),
                    )
                }
            })
        })??;
        cpu_tensor(out, &shape)
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.takes_kernel(x) {
            self.forward_cpu(x, None)
        } else {
            self.inner.forward(x)
        }
    }
}

#[inline(always)]
fn geglu_row(out: &mut [f32], h: &[f32], gate: &[f32]) {
    for ((o, &h), &g) in out.iter_mut().zip(h).zip(gate) {
        *o = h * gelu_erf(g);
    }
}

/// `x/2 (1 + erf(x/sqrt 2))` with erf from Abramowitz & Stegun 7.1.26 (absolute error below
/// 1.5e-7) on the vectorisable `exp` of this module, branch-free so the row loop
/// vectorises. The GELU's absolute error is below 1e-7 |x|.
#[inline(always)]
pub(crate) fn gelu_erf(x: f32) -> f32 {
    let z = x * std::f32::consts::FRAC_1_SQRT_2;
    let a = z.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    let erf_abs = 1.0 - poly * super::exp_f32(-a * a);
    let erf = erf_abs.copysign(z);
    0.5 * x * (1.0 + erf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_util::{max_diff, rand, same_bits};
    use candle_core::Device;

    fn layer(seed: u64, input: usize, output: usize, bias: bool) -> Linear {
        let w = (rand(seed, &[output, input]) * 0.1).unwrap();
        let b = bias.then(|| rand(seed + 1, &[output]));
        Linear {
            inner: candle_nn::Linear::new(w, b),
        }
    }

    #[test]
    fn linear_matches_candle() {
        // Odd widths, rank 2 and 3, batch > 1, with and without bias, a non-contiguous input.
        for (i, &(dims, input, output, bias)) in [
            (&[7usize, 13][..], 13, 5, true),
            (&[2, 9, 33][..], 33, 17, false),
            (&[3, 64, 40][..], 40, 96, true),
        ]
        .iter()
        .enumerate()
        {
            let l = layer(10 + i as u64, input, output, bias);
            let x = rand(20 + i as u64, dims);
            let (d, m) = max_diff(&l.forward(&x).unwrap(), &l.candle().forward(&x).unwrap());
            assert!(d <= 2e-6 * m.max(1.0), "{dims:?}: {d} of {m}");
            let r = rand(30 + i as u64, l.candle().forward(&x).unwrap().dims());
            let want = (l.candle().forward(&x).unwrap() + &r).unwrap();
            let (d, m) = max_diff(&l.forward_add(&x, &r).unwrap(), &want);
            assert!(d <= 2e-6 * m.max(1.0), "residual {dims:?}: {d} of {m}");
        }
        let l = layer(40, 24, 8, true);
        let x = rand(41, &[24, 5]).t().unwrap(); // (5, 24), not contiguous
        assert!(!x.is_contiguous());
        let (d, m) = max_diff(&l.forward(&x).unwrap(), &l.candle().forward(&x).unwrap());
        assert!(d <= 2e-6 * m.max(1.0), "{d} of {m}");
        let bad = rand(42, &[3, 23]);
        assert!(l.forward(&bad).is_err());
        assert!(l
            .forward_add(&rand(43, &[3, 24]), &rand(44, &[3, 7]))
            .is_err());
    }

    #[test]
    fn geglu_matches_candle() {
        let l = layer(50, 40, 2 * 72, true);
        let x = (rand(51, &[2, 19, 40]) * 3.0).unwrap();
        let y = l.candle().forward(&x).unwrap();
        let want = (y.narrow(D::Minus1, 0, 72).unwrap()
            * y.narrow(D::Minus1, 72, 72).unwrap().gelu_erf().unwrap())
        .unwrap();
        let got = l.forward_geglu(&x).unwrap();
        let (d, m) = max_diff(&got, &want);
        assert!(d <= 1e-6 * m.max(1.0), "{d} of {m}");
        assert!(
            same_bits(&got, &l.forward_geglu(&x).unwrap()),
            "deterministic"
        );
        assert!(layer(52, 4, 7, true)
            .forward_geglu(&rand(53, &[2, 4]))
            .is_err());
    }

    #[test]
    fn gelu_matches_erf_gelu() {
        let xs: Vec<f32> = (-4000..4000).map(|i| i as f32 * 0.005).collect();
        let t = Tensor::new(xs.as_slice(), &Device::Cpu).unwrap();
        let want: Vec<f32> = t.gelu_erf().unwrap().to_vec1().unwrap();
        for (x, w) in xs.iter().zip(want) {
            let g = gelu_erf(*x);
            assert!(
                (g - w).abs() <= 3e-7 * x.abs().max(1.0),
                "x {x}: {g} vs {w}"
            );
        }
        assert_eq!(gelu_erf(0.0), 0.0);
        assert!(gelu_erf(-30.0).abs() < 1e-30 && (gelu_erf(30.0) - 30.0).abs() < 1e-5);
    }
}
