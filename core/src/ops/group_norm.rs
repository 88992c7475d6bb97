//! GroupNorm, optionally fused with the SiLU that follows it in every ResNet block.
//!
//! candle-nn's GroupNorm makes about ten full-size passes (reshape, mean, subtract, square,
//! mean, sqrt, divide, scale, shift) and SiLU adds more. Here each (batch, group) slice,
//! contiguous in NCHW, is read twice for its mean and variance (accumulated in f64) and
//! written once with the affine transform and the activation applied.

use super::{cpu_f32, cpu_tensor, exp_f32, uninit_vec, with_f32};
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

/// GroupNorm with weight and bias over (B, C, ...) inputs.
#[derive(Clone, Debug)]
pub struct GroupNorm {
    inner: candle_nn::GroupNorm,
    weight: Tensor,
    bias: Tensor,
    groups: usize,
    channels: usize,
    eps: f64,
}

impl GroupNorm {
    /// Loads `weight` and `bias` (C) under `vb`.
    pub fn load(vb: VarBuilder, groups: usize, channels: usize, eps: f64) -> Result<Self> {
        if groups == 0 || channels % groups != 0 {
            candle_core::bail!(
                "{channels} channels cannot be split into {groups} groups ({})",
                vb.prefix()
            );
        }
        let weight = vb.get_with_hints(channels, "weight", candle_nn::Init::Const(1.))?;
        let bias = vb.get_with_hints(channels, "bias", candle_nn::Init::Const(0.))?;
        Self::new(weight, bias, groups, eps)
    }

    /// From weight and bias tensors (C).
    pub fn new(weight: Tensor, bias: Tensor, groups: usize, eps: f64) -> Result<Self> {
        let channels = weight.dim(0)?;
        let inner = candle_nn::GroupNorm::new(weight.clone(), bias.clone(), channels, groups, eps)?;
        Ok(Self {
            inner,
            weight,
            bias,
            groups,
            channels,
            eps,
        })
    }

    /// candle's layer (the reference).
    pub fn candle(&self) -> &candle_nn::GroupNorm {
        &self.inner
    }

    /// `silu(group_norm(x))`.
    pub fn forward_silu(&self, x: &Tensor) -> Result<Tensor> {
        if cpu_f32(x) && cpu_f32(&self.weight) {
            self.forward_cpu(x, true)
        } else {
            self.inner.forward(x)?.silu()
        }
    }

    fn forward_cpu(&self, x: &Tensor, silu: bool) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        if dims.len() < 3 || dims[1] != self.channels {
            candle_core::bail!(
                "group norm: input {dims:?}, expected (B, {}, ...)",
                self.channels
            );
        }
        let spatial: usize = dims[2..].iter().product();
        let cpg = self.channels / self.groups;
        let len = cpg * spatial;
        let w = self.weight.to_vec1::<f32>()?;
        let b = self.bias.to_vec1::<f32>()?;
        let mut out = uninit_vec(x.elem_count());
        let eps = self.eps;
        if len > 0 {
            with_f32(x, |xs| {
                out.par_chunks_mut(len)
                    .zip(xs.par_chunks(len))
                    .enumerate()
                    .for_each(|(i, (o, src))| {
                        let g = i % self.groups;
                        super::simd(
                            #[inline(always)]
                            || {
                                let (mean, inv) = moments(src, eps);
                                for ((oc, sc), c) in o
                                    .chunks_exact_mut(spatial)
                                    .zip(src.chunks_exact(spatial))
                                    .zip(g * cpg..)
                                {
                                    normalize(oc, sc, mean, inv, w[c], b[c], silu);
                                }
                            },
                        )
                    })
            })?;
        }
        cpu_tensor(out, &dims)
    }
}

/// Mean and 1/sqrt(variance + eps) (biased variance, two passes in f64).
#[inline(always)]
fn moments(x: &[f32], eps: f64) -> (f32, f32) {
    let n = x.len() as f64;
    let sum = lanes_sum(x, |v| v as f64);
    let mean = sum / n;
    let var = lanes_sum(x, |v| {
        let d = v as f64 - mean;
        d * d
    }) / n;
    (mean as f32, (1.0 / (var + eps).sqrt()) as f32)
}

/// Sum of `f(x)` over 8 independent accumulators, so that the loop vectorises.
#[inline(always)]
fn lanes_sum(x: &[f32], f: impl Fn(f32) -> f64) -> f64 {
    let mut acc = [0f64; 8];
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v);
        }
    }
    let mut total: f64 = acc.iter().sum();
    for &v in rest {
        total += f(v);
    }
    total
}

#[inline(always)]
fn normalize(o: &mut [f32], x: &[f32], mean: f32, inv: f32, w: f32, b: f32, silu: bool) {
    if silu {
        for (o, &v) in o.iter_mut().zip(x) {
            let y = (v - mean) * inv * w + b;
            *o = y / (1.0 + exp_f32(-y));
        }
    } else {
        for (o, &v) in o.iter_mut().zip(x) {
            *o = (v - mean) * inv * w + b;
        }
    }
}

impl Module for GroupNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if cpu_f32(x) && cpu_f32(&self.weight) {
            self.forward_cpu(x, false)
        } else {
            self.inner.forward(x)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_util::{max_diff, rand, same_bits};

    #[test]
    fn matches_candle() {
        // (dims, groups): channels not a multiple of 8, odd spatial sizes, batch > 1, rank 3.
        let cases: [(&[usize], usize); 5] = [
            (&[2, 12, 5, 7], 4),
            (&[1, 6, 9, 3], 3),
            (&[3, 10, 1, 1], 5),
            (&[2, 8, 11], 2),
            (&[1, 64, 16, 16], 32),
        ];
        for (i, (dims, groups)) in cases.into_iter().enumerate() {
            let c = dims[1];
            let gn = GroupNorm::new(
                rand(100 + i as u64, &[c]),
                rand(200 + i as u64, &[c]),
                groups,
                1e-6,
            )
            .unwrap();
            // An offset mean, as real activations have.
            let x = ((rand(i as u64, dims) * 3.0).unwrap() + 2.0).unwrap();
            let want = gn.candle().forward(&x).unwrap();
            let (d, m) = max_diff(&gn.forward(&x).unwrap(), &want);
            assert!(d <= 2e-6 * m.max(1.0), "case {i}: differs by {d}");
            let want = want.silu().unwrap();
            let got = gn.forward_silu(&x).unwrap();
            let (d, m) = max_diff(&got, &want);
            assert!(d <= 2e-6 * m.max(1.0), "case {i} silu: differs by {d}");
            assert!(same_bits(&got, &gn.forward_silu(&x).unwrap()));
        }
    }

    #[test]
    fn non_contiguous_input() {
        let gn = GroupNorm::new(rand(1, &[6]), rand(2, &[6]), 2, 1e-5).unwrap();
        let x = rand(3, &[2, 5, 6, 4]).transpose(1, 2).unwrap();
        let want = gn.candle().forward(&x.contiguous().unwrap()).unwrap();
        let (d, m) = max_diff(&gn.forward_silu(&x).unwrap(), &want.silu().unwrap());
        assert!(d <= 2e-6 * m.max(1.0), "differs by {d}");
    }
}
