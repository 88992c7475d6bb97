//! 2-D convolution (NCHW, square kernel, bias) as im2col + one gemm per tile of output rows.
//!
//! candle's CPU conv2d copies the input to NHWC on one thread, re-flattens the kernel on
//! every call, fills a full-size im2col buffer element by element and scatters the result
//! back to NCHW. Here the kernel is used as stored, `(Cout, Cin*k*k)` row-major, which is
//! already the gemm's left operand; the im2col buffer holds only a tile of output rows (so
//! it stays small and is reused from call to call), is filled in parallel with contiguous
//! runs, and the gemm writes straight into the NCHW output on top of the bias. 1x1 stride-1
//! convolutions need no buffer at all: the input plane is the gemm's right operand.

use super::{cpu_f32, cpu_tensor, threads, uninit_vec, with_f32};
use candle_core::{Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, VarBuilder};
use rayon::prelude::*;
use std::cell::RefCell;

/// Output planes from this size (64x64) on take the Winograd path for 3x3 stride-1 kernels
/// with at least [`WINOGRAD_MIN_CHANNELS`] input channels. Measured (ops_bench, 2 threads):
/// faster at 256-512 channels, slower at 128 channels and 512x512, where the tile transforms
/// outweigh the saved multiplies. Smaller planes were faster with Winograd too when the
/// kernel transform was kept per layer (2026-12-01: 640 ch at 32x32 0.073 -> 0.046 s, 1280 ch
/// at 16x16 0.072 -> 0.039 s), but kept transforms cost 16/9 of the weights in memory; with
/// the transform made per call (now, see `winograd::transform_kernel`) the small planes have
/// not been re-measured, so they stay on im2col.
const WINOGRAD_MIN_PLANE: usize = 64 * 64;
const WINOGRAD_MIN_CHANNELS: usize = 256;

/// Largest im2col tile, in floats (16 MiB).
const TILE_FLOATS: usize = 1 << 22;

thread_local! {
    /// The im2col tile buffer of the calling thread, kept between calls.
    static COLUMNS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// The Winograd-transformed kernel of the current call (see `winograd::transform_kernel`
    /// for why it is not kept per layer).
    static KERNEL: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// A convolution layer: candle's [`Conv2d`] (used on GPUs, for other dtypes, and as the
/// reference in tests) plus the project's CPU kernel.
#[derive(Clone, Debug)]
pub struct Conv {
    inner: Conv2d,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
    /// The Winograd kernel transform, made on first use.
    winograd_min_plane: usize,
}

impl Conv {
    /// Loads `weight` (Cout, Cin, k, k) and `bias` (Cout) under `vb`.
    pub fn load(
        vb: VarBuilder,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> Result<Self> {
        let cfg = Conv2dConfig {
            padding: pad,
            stride,
            ..Default::default()
        };
        let inner = candle_nn::conv2d(cin, cout, k, cfg, vb)?;
        Self::from_candle(inner)
    }

    /// Wraps a candle layer (dilation 1, one group, square kernel, with or without bias).
    pub fn from_candle(inner: Conv2d) -> Result<Self> {
        let cfg = *inner.config();
        let (cout, cin, kh, kw) = inner.weight().dims4()?;
        if cfg.dilation != 1 || cfg.groups != 1 || kh != kw || cfg.cudnn_fwd_algo.is_some() {
            candle_core::bail!("ops::Conv: only square, undilated, ungrouped convolutions");
        }
        // The kernel is read in place as the gemm's (Cout, Cin*k*k) operand.
        let weight = inner.weight().contiguous()?;
        let bias = inner.bias().cloned();
        Ok(Self {
            inner: Conv2d::new(weight, bias, cfg),
            cin,
            cout,
            k: kh,
            stride: cfg.stride,
            pad: cfg.padding,
            winograd_min_plane: WINOGRAD_MIN_PLANE,
        })
    }

    /// The same layer with the Winograd path taken from output planes of `min_plane`
    /// pixels on (tests use 0 to reach it on small shapes).
    pub fn with_winograd_from(mut self, min_plane: usize) -> Self {
        self.winograd_min_plane = min_plane;
        self
    }

    /// candle's layer (the reference).
    pub fn candle(&self) -> &Conv2d {
        &self.inner
    }

    /// The convolution of `x` upsampled 2x by nearest neighbour (the decoder's and the
    /// UNet's upsamplers); on the CPU the upsampled input is never materialised.
    pub fn forward_upsample2(&self, x: &Tensor) -> Result<Tensor> {
        if cpu_f32(x) && cpu_f32(self.inner.weight()) {
            self.forward_cpu(x, 2, None)
        } else {
            let (_, _, h, w) = x.dims4()?;
            self.inner.forward(&x.upsample_nearest2d(2 * h, 2 * w)?)
        }
    }

    /// The convolution plus `add`, which is either shaped like the output (a residual) or
    /// (B, Cout, 1, 1) (a per-image channel offset: the UNet's time embedding). On the CPU
    /// the gemm accumulates on top of bias + `add`, so the sum costs no pass of its own.
    pub fn forward_add(&self, x: &Tensor, add: &Tensor) -> Result<Tensor> {
        if cpu_f32(x) && cpu_f32(self.inner.weight()) && cpu_f32(add) {
            self.forward_cpu(x, 1, Some(add))
        } else {
            self.inner.forward(x)?.broadcast_add(add)
        }
    }

    /// `up`: nearest-neighbour upsampling factor applied to `x` first (1 or 2); `add`: see
    /// [`Conv::forward_add`].
    fn forward_cpu(&self, x: &Tensor, up: usize, add: Option<&Tensor>) -> Result<Tensor> {
        let (b, cin, hs, ws) = x.dims4()?;
        let (h, w) = (hs * up, ws * up);
        if cin != self.cin {
            candle_core::bail!("conv: input has {cin} channels, expected {}", self.cin);
        }
        let (k, s, p) = (self.k, self.stride, self.pad);
        if h + 2 * p < k || w + 2 * p < k {
            candle_core::bail!("conv: input {h}x{w} smaller than the kernel");
        }
        let (ho, wo) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
        let (cout, plane) = (self.cout, ho * wo);
        let mut out = uninit_vec(b * cout * plane);
        let bias = match self.inner.bias() {
            Some(t) => Some(t.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?),
            None => None,
        };
        // The bias (and `add`) first; the gemm accumulates on top of it.
        let bias_of = |i: usize| bias.as_ref().map_or(0.0, |b| b[i % cout]);
        match add {
            None => {
                if bias.is_some() {
                    out.par_chunks_mut(plane)
                        .enumerate()
                        .for_each(|(i, row)| row.fill(bias_of(i)));
                }
            }
            Some(a) if a.dims() == [b, cout, 1, 1] => {
                let a = a.flatten_all()?.to_vec1::<f32>()?;
                out.par_chunks_mut(plane)
                    .enumerate()
                    .for_each(|(i, row)| row.fill(bias_of(i) + a[i]));
            }
            Some(a) if a.dims() == [b, cout, ho, wo] => {
                with_f32(a, |a| {
                    out.par_chunks_mut(plane)
                        .zip(a.par_chunks(plane))
                        .enumerate()
                        .for_each(|(i, (row, a))| {
                            let c = bias_of(i);
                            row.iter_mut().zip(a).for_each(|(o, a)| *o = a + c);
                        })
                })?;
            }
            Some(a) => candle_core::bail!(
                "conv: cannot add {:?} to an output of {:?}",
                a.dims(),
                [b, cout, ho, wo]
            ),
        }
        let read_dst = bias.is_some() || add.is_some();
        let kk = cin * k * k;
        let par = gemm::Parallelism::Rayon(threads());
        let winograd = k == 3
            && s == 1
            && plane >= self.winograd_min_plane
            && (cin >= WINOGRAD_MIN_CHANNELS || self.winograd_min_plane == 0);
        with_f32(self.inner.weight(), |wt| {
            with_f32(x, |xs| {
                for bi in 0..b {
                    let xb = &xs[bi * cin * hs * ws..(bi + 1) * cin * hs * ws];
                    if winograd {
                        let shape = super::winograd::Shape {
                            cin,
                            cout,
                            hs,
                            ws,
                            up,
                            pad: p,
                            ho,
                            wo,
                        };
                        let ob = &mut out[bi * cout * plane..(bi + 1) * cout * plane];
                        KERNEL.with(|u| {
                            let mut u = u.borrow_mut();
                            if bi == 0 {
                                // Every element is written by the transform.
                                u.resize(16 * cout * cin, 0.0);
                                super::winograd::transform_kernel(wt, cout, cin, &mut u);
                            }
                            super::winograd::conv3x3(xb, &u, &shape, ob, read_dst);
                        });
                        continue;
                    }
                    let ob = out[bi * cout * plane..].as_mut_ptr();
                    if k == 1 && s == 1 && p == 0 && up == 1 {
                        // SAFETY: the operands are in bounds: dst (cout, plane) inside `out`,
                        // lhs (cout, cin), rhs (cin, plane) = this batch's input.
                        unsafe {
                            gemm_f32(
                                cout, plane, cin, ob, plane, wt, cin, xb, plane, read_dst, par,
                            )
                        };
                        continue;
                    }
                    let rows = (TILE_FLOATS / (kk * wo)).clamp(1, ho);
                    COLUMNS.with(|cols| {
                        let mut cols = cols.borrow_mut();
                        let need = kk * rows * wo;
                        if cols.len() < need {
                            cols.resize(need, 0.0);
                        }
                        for y0 in (0..ho).step_by(rows) {
                            let nr = rows.min(ho - y0);
                            let n = nr * wo;
                            let col = &mut cols[..kk * n];
                            col.par_chunks_mut(n).enumerate().for_each(|(r, dst)| {
                                let (ci, ky, kx) = (r / (k * k), (r / k) % k, r % k);
                                let src = &xb[ci * hs * ws..(ci + 1) * hs * ws];
                                fill_row(dst, src, (h, w, up), (y0, nr, wo), (ky, kx), s, p);
                            });
                            // SAFETY: dst is the (cout, n) block at row offset y0 of every
                            // output channel plane (row stride `plane`); lhs (cout, kk);
                            // rhs (kk, n) = the tile just filled.
                            unsafe {
                                gemm_f32(
                                    cout,
                                    n,
                                    kk,
                                    ob.add(y0 * wo),
                                    plane,
                                    wt,
                                    kk,
                                    col,
                                    n,
                                    read_dst,
                                    par,
                                )
                            };
                        }
                    });
                }
            })
        })??;
        cpu_tensor(out, &[b, cout, ho, wo])
    }
}

/// One im2col row: input channel plane `src` (h/up x w/up, upsampled `up` times to h x w)
/// shifted by kernel tap (ky, kx), for output rows y0..y0+nr of width wo, zero outside the
/// padded input.
fn fill_row(
    dst: &mut [f32],
    src: &[f32],
    (h, w, up): (usize, usize, usize),
    (y0, nr, wo): (usize, usize, usize),
    (ky, kx): (usize, usize),
    s: usize,
    p: usize,
) {
    for (oy, d) in (y0..y0 + nr).zip(dst.chunks_exact_mut(wo)) {
        let iy = (oy * s + ky) as isize - p as isize;
        if iy < 0 || iy >= h as isize {
            d.fill(0.0);
            continue;
        }
        let ws = w / up;
        let sy = iy as usize / up;
        let line = &src[sy * ws..(sy + 1) * ws];
        // Output columns whose input column ox*s + kx - p lies inside [0, w).
        let lo = p.saturating_sub(kx).div_ceil(s).min(wo);
        let hi = if w + p > kx {
            ((w + p - kx - 1) / s + 1).min(wo)
        } else {
            0
        }
        .max(lo);
        d[..lo].fill(0.0);
        d[hi..].fill(0.0);
        let first = lo * s + kx - p;
        if up != 1 {
            for (o, v) in d[lo..hi].iter_mut().zip((first..).step_by(s)) {
                *o = line[v / up];
            }
        } else if s == 1 {
            d[lo..hi].copy_from_slice(&line[first..first + (hi - lo)]);
        } else {
            for (o, v) in d[lo..hi].iter_mut().zip(line[first..].iter().step_by(s)) {
                *o = *v;
            }
        }
    }
}

/// `dst (m x n, row stride dst_rs) (+)= lhs (m x k, row-major) * rhs (k x n, row stride
/// rhs_rs)`, all with unit column stride.
///
/// # Safety
/// Every addressed element of the three operands must be in bounds, and `dst` must not
/// alias the others or be written concurrently.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_f32(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    lhs: &[f32],
    lhs_rs: usize,
    rhs: &[f32],
    rhs_rs: usize,
    accumulate: bool,
    par: gemm::Parallelism,
) {
    debug_assert!(m == 0 || lhs.len() >= (m - 1) * lhs_rs + k);
    debug_assert!(k == 0 || rhs.len() >= (k - 1) * rhs_rs + n);
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_rs as isize,
        accumulate,
        lhs.as_ptr(),
        1,
        lhs_rs as isize,
        rhs.as_ptr(),
        1,
        rhs_rs as isize,
        1.0,
        1.0,
        false,
        false,
        false,
        par,
    )
}

impl Module for Conv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if cpu_f32(x) && cpu_f32(self.inner.weight()) {
            self.forward_cpu(x, 1, None)
        } else {
            self.inner.forward(x)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_util::{max_diff, rand, same_bits};

    fn layer(seed: u64, cin: usize, cout: usize, k: usize, s: usize, p: usize, bias: bool) -> Conv {
        let w = (rand(seed, &[cout, cin, k, k]) * 0.2).unwrap();
        let b = bias.then(|| rand(seed + 1, &[cout]));
        let cfg = Conv2dConfig {
            padding: p,
            stride: s,
            ..Default::default()
        };
        Conv::from_candle(Conv2d::new(w, b, cfg)).unwrap()
    }

    #[test]
    fn matches_candle_on_odd_shapes() {
        // (batch, cin, cout, h, w, k, stride, pad, bias)
        let cases = [
            (1, 3, 5, 9, 7, 3, 1, 1, true),
            (2, 13, 7, 11, 10, 3, 1, 1, true),
            (2, 13, 7, 11, 10, 3, 2, 1, true),
            (1, 6, 9, 9, 8, 3, 2, 0, false),
            (1, 5, 3, 6, 6, 3, 1, 0, true),
            (3, 17, 11, 5, 7, 1, 1, 0, true),
            (1, 4, 6, 7, 9, 1, 2, 0, false),
            (1, 3, 4, 4, 5, 1, 1, 1, true),
            (2, 2, 3, 3, 3, 3, 1, 2, true),
            (1, 8, 4, 12, 3, 5, 1, 2, true),
        ];
        for (i, &(b, cin, cout, h, w, k, s, p, bias)) in cases.iter().enumerate() {
            let conv = layer(i as u64 * 10, cin, cout, k, s, p, bias);
            let x = rand(i as u64 * 10 + 5, &[b, cin, h, w]);
            let want = conv.candle().forward(&x).unwrap();
            let got = conv.forward(&x).unwrap();
            let (d, m) = max_diff(&got, &want);
            assert!(d <= 2e-6 * m.max(1.0), "case {i}: differs by {d} (max {m})");
        }
    }

    #[test]
    fn tiles_non_contiguous_input_and_determinism() {
        // 40 channels x 9 taps x 33 columns: several row tiles when the tile is small, but
        // the default tile covers it; force many tiles through a wide input instead.
        let conv = layer(7, 40, 24, 3, 1, 1, true);
        let x = rand(8, &[2, 33, 40, 30]).transpose(1, 2).unwrap(); // (2, 40, 33, 30), strided
        assert!(!x.is_contiguous());
        let want = conv.candle().forward(&x.contiguous().unwrap()).unwrap();
        let got = conv.forward(&x).unwrap();
        let (d, m) = max_diff(&got, &want);
        assert!(d <= 2e-6 * m.max(1.0), "differs by {d}");
        assert!(same_bits(&got, &conv.forward(&x).unwrap()));
    }

    #[test]
    fn upsampled_input() {
        for (i, &(cin, cout, h, w, s, p)) in
            [(5, 6, 4, 7, 1, 1), (3, 2, 5, 3, 2, 1), (4, 3, 3, 3, 1, 0)]
                .iter()
                .enumerate()
        {
            let conv = layer(30 + i as u64, cin, cout, 3, s, p, true);
            let x = rand(40 + i as u64, &[2, cin, h, w]);
            let up = x.upsample_nearest2d(2 * h, 2 * w).unwrap();
            let want = conv.candle().forward(&up).unwrap();
            let (d, m) = max_diff(&conv.forward_upsample2(&x).unwrap(), &want);
            assert!(d <= 2e-6 * m.max(1.0), "case {i}: differs by {d}");
        }
    }

    #[test]
    fn residual_and_channel_offsets_are_added() {
        // im2col, 1x1 and Winograd paths; a residual and a (B, C, 1, 1) offset; no bias.
        for (i, &(cin, cout, k, p, winograd, bias)) in [
            (5, 7, 3, 1, false, true),
            (6, 4, 1, 0, false, false),
            (9, 11, 3, 1, true, true),
        ]
        .iter()
        .enumerate()
        {
            let mut conv = layer(90 + i as u64, cin, cout, k, 1, p, bias);
            if winograd {
                conv = conv.with_winograd_from(0);
            }
            let x = rand(95 + i as u64, &[2, cin, 10, 9]);
            let y = conv.candle().forward(&x).unwrap();
            for add in [rand(97, y.dims()), rand(98, &[2, cout, 1, 1])] {
                let want = y.broadcast_add(&add).unwrap();
                let (d, m) = max_diff(&conv.forward_add(&x, &add).unwrap(), &want);
                assert!(d <= 2e-6 * m.max(1.0), "{i}: {d} of {m}");
            }
            assert!(conv.forward_add(&x, &rand(99, &[2, cout, 1, 9])).is_err());
        }
    }

    #[test]
    fn winograd_matches_candle() {
        // (batch, cin, cout, h, w, pad, upsample): odd sizes (partial tiles), pad 0 and 1,
        // channels not a multiple of 8, batch > 1, upsampled input.
        let cases = [
            (1, 3, 5, 9, 7, 1, 1),
            (2, 13, 7, 11, 10, 1, 1),
            (1, 6, 9, 8, 9, 0, 1),
            (2, 5, 6, 4, 7, 1, 2),
            (1, 4, 3, 5, 5, 0, 2),
            (1, 2, 2, 1, 1, 1, 1),
        ];
        for (i, &(b, cin, cout, h, w, p, up)) in cases.iter().enumerate() {
            let conv = layer(50 + i as u64, cin, cout, 3, 1, p, i % 2 == 0).with_winograd_from(0);
            let x = rand(60 + i as u64, &[b, cin, h, w]);
            let (want, got) = if up == 2 {
                let xu = x.upsample_nearest2d(2 * h, 2 * w).unwrap();
                (
                    conv.candle().forward(&xu).unwrap(),
                    conv.forward_upsample2(&x).unwrap(),
                )
            } else {
                (
                    conv.candle().forward(&x).unwrap(),
                    conv.forward(&x).unwrap(),
                )
            };
            let (d, m) = max_diff(&got, &want);
            assert!(d <= 4e-6 * m.max(1.0), "case {i}: differs by {d} (max {m})");
            let again = if up == 2 {
                conv.forward_upsample2(&x)
            } else {
                conv.forward(&x)
            };
            assert!(
                same_bits(&got, &again.unwrap()),
                "case {i}: not deterministic"
            );
        }
    }

    #[test]
    fn winograd_bands_are_exact() {
        // Enough channels x tile columns that a band holds only a few tile rows.
        let conv = layer(70, 200, 64, 3, 1, 1, true).with_winograd_from(0);
        let x = rand(71, &[1, 200, 21, 700]);
        let want = conv.candle().forward(&x).unwrap();
        let (d, m) = max_diff(&conv.forward(&x).unwrap(), &want);
        assert!(d <= 4e-6 * m.max(1.0), "differs by {d}");
    }

    #[test]
    fn row_tiles_are_exact() {
        // A kernel wide enough that one tile holds only a few output rows.
        let (cin, w) = (300, 200);
        let conv = layer(9, cin, 3, 3, 1, 1, true);
        let x = rand(10, &[1, cin, 12, w]);
        assert!(TILE_FLOATS / (cin * 9 * w) < 12);
        let want = conv.candle().forward(&x).unwrap();
        let (d, m) = max_diff(&conv.forward(&x).unwrap(), &want);
        assert!(d <= 2e-6 * m.max(1.0), "differs by {d}");
    }
}
