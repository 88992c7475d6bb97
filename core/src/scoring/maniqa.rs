//! MANIQA (Yang et al., CVPR-W 2022, winner of NTIRE 2022 NR-IQA), as pyiqa implements it
//! (`pyiqa/archs/maniqa_arch.py`, `maniqa_swin.py`): ViT-B/8 features from four blocks,
//! two stages of transposed ("channel") attention + a small Swin transformer, and a
//! dual-branch head whose per-patch scores are averaged with per-patch weights. Higher is
//! better (about 0..1 for the published checkpoints).
//!
//! Checkpoints: pyiqa's published files as `default_model_urls` names them, read as they
//! ship (a PyTorch zip pickle holding a flat state dict under pyiqa's tensor names, a
//! `module.` prefix or a `params` wrapper tolerated):
//! - `ckpt_koniq10k.pt`: pyiqa metric `maniqa` (the default);
//! - `ckpt_kadid10k.pt`: `maniqa-kadid`;
//! - `MANIQA_PIPAL-ae6d356b.pth`: `maniqa-pipal`.
//!
//! The architecture sizes (embedding width, patch size, TAB count, Swin depths, heads,
//! window, MLP width) are read from the tensor shapes. One number is not in the file: the
//! Swin residual scale, 0.8 for `maniqa` and `maniqa-kadid`, 0.13 for `maniqa-pipal`
//! (pyiqa's `default_model_configs.py`); [`Maniqa::load`] uses 0.8, [`Maniqa::with_swin_scale`]
//! sets another.
//!
//! Preprocessing, as pyiqa: the image is quantised to 8 bits (pyiqa reads files as
//! uint8 / 255), normalised with mean = std = 0.5, upscaled (bilinear, PyTorch's
//! `F.interpolate(scale_factor=225 / shorter side)`) when its shorter side is at most 224,
//! and cut into 224x224 crops. The score is the weighted mean of the per-patch scores over
//! the 784 patches of every crop (pyiqa pools all crops' patches in one sum).
//!
//! Crops ([`CropRule`]): pyiqa 0.1.16 takes `test_sample = 20` crops with its
//! `uniform_crop` (4 rows x 5 columns of a 5x5 lattice whose step is a quarter of the
//! margin, so the bottom band is never seen). Each crop costs about 100 GMAC here (ViT-B/8
//! on 785 tokens plus the 3072-channel attention), several seconds on a small CPU, so the
//! default is [`CropRule::Grid`] with 3 crops per side: 9 crops whose positions include
//! both borders and the centre on each axis, so every image up to 672 pixels a side is
//! covered completely and larger ones are sampled evenly (corners, edges, centre) — under
//! half pyiqa's cost, and fixed, so a score is the same every time. [`CropRule::Uniform`]
//! with 20 crops reproduces pyiqa's own default.
//!
//! Only ViT blocks 0-9 run (the features are the outputs of blocks 6-9; blocks 10-11, the
//! final norm and the classifier do not change them).

use super::Metric;
use crate::error::{Error, Result};
use crate::image::Image;
use candle_core::{DType, Device, IndexOp, Module, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, LayerNorm, Linear};
use std::path::{Path, PathBuf};

/// The crop side (pyiqa's `img_size`).
pub const CROP: usize = 224;
/// pyiqa's normalisation (`IMAGENET_INCEPTION_MEAN` / `_STD`).
pub const MEAN: f32 = 0.5;
/// See [`MEAN`].
pub const STD: f32 = 0.5;
/// The shorter side an image needs: pyiqa would upscale anything, but below this the
/// upscale (over 7x) only shows the network interpolation artefacts.
pub const MIN_SIDE: usize = 32;
/// The ViT blocks whose outputs MANIQA concatenates.
pub const FEATURE_BLOCKS: [usize; 4] = [6, 7, 8, 9];
/// timm's ViT-B head width (heads = width / 64).
const VIT_HEAD_DIM: usize = 64;

/// Where the 224x224 crops are taken (after pyiqa's upscale of small images).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CropRule {
    /// `k` x `k` crops, `k` positions per axis spread evenly from the first to the last
    /// possible offset (`i * margin / (k - 1)`, rounded down; the centre for `k = 1`),
    /// row by row.
    Grid(usize),
    /// pyiqa's `uniform_crop` with `crop_num = n`: step = margin / floor(sqrt(n)), the
    /// first `n` of a ceil(sqrt(n))-square lattice, row by row.
    Uniform(usize),
}

impl Default for CropRule {
    fn default() -> Self {
        CropRule::Grid(3)
    }
}

fn offsets(size: usize, k: usize) -> Vec<usize> {
    let margin = size - CROP;
    if k == 1 {
        return vec![margin / 2];
    }
    (0..k).map(|i| i * margin / (k - 1)).collect()
}

impl CropRule {
    /// The (top, left) of every crop of an image of `h` x `w` (both at least [`CROP`]).
    pub fn positions(&self, h: usize, w: usize) -> Vec<(usize, usize)> {
        match *self {
            CropRule::Grid(k) => {
                let (rows, cols) = (offsets(h, k), offsets(w, k));
                rows.iter()
                    .flat_map(|&t| cols.iter().map(move |&l| (t, l)))
                    .collect()
            }
            CropRule::Uniform(n) => {
                let floor = (1..=n).take_while(|k| k * k <= n).last().unwrap_or(1);
                let ceil = if floor * floor == n { floor } else { floor + 1 };
                let (sh, sw) = ((h - CROP) / floor, (w - CROP) / floor);
                (0..ceil)
                    .flat_map(|i| (0..ceil).map(move |j| (i * sh, j * sw)))
                    .take(n)
                    .collect()
            }
        }
    }

    fn count(&self) -> usize {
        match *self {
            CropRule::Grid(k) => k * k,
            CropRule::Uniform(n) => n,
        }
    }
}

/// The size pyiqa crops from: the image itself, or when its shorter side is at most
/// [`CROP`], PyTorch's `floor(side * (CROP + 1) / shorter)` (computed in f64 as Python does).
pub fn working_size(h: usize, w: usize) -> (usize, usize, Option<f64>) {
    let short = h.min(w);
    if short > CROP {
        return (h, w, None);
    }
    let s = (CROP + 1) as f64 / short as f64;
    (
        (h as f64 * s).floor() as usize,
        (w as f64 * s).floor() as usize,
        Some(s),
    )
}

/// PyTorch's bilinear source taps (align_corners=False, a given scale factor): per output
/// index, the two input indices and their weights, in f32 as its CPU kernel computes them.
fn linear_taps(in_size: usize, out_size: usize, scale: f64) -> Vec<(usize, usize, f32, f32)> {
    let ratio = (1.0 / scale) as f32;
    (0..out_size)
        .map(|i| {
            let src = (ratio * (i as f32 + 0.5) - 0.5).max(0.0);
            let i0 = (src.floor() as usize).min(in_size - 1);
            let l = (src - i0 as f32).clamp(0.0, 1.0);
            let i1 = if i0 < in_size - 1 { i0 + 1 } else { i0 };
            (i0, i1, 1.0 - l, l)
        })
        .collect()
}

/// The normalised crops (n, 3, 224, 224) of an image under `rule`: 8-bit quantisation,
/// (v / 255 - 0.5) / 0.5, pyiqa's upscale of small images, then the crops.
pub fn crops(image: &Image, rule: CropRule, device: &Device) -> Result<Tensor> {
    let (w, h) = (image.width(), image.height());
    if w.min(h) < MIN_SIDE {
        return Err(Error::InvalidImage(format!(
            "maniqa needs at least {MIN_SIDE} pixels on the shorter side, the image is {w}x{h}"
        )));
    }
    if rule.count() == 0 {
        return Err(Error::InvalidOption {
            name: "maniqa crops",
            reason: "at least one crop is needed".into(),
        });
    }
    // Planar, normalised exactly as torch does it: u8 -> f32 / 255, then (x - m) / s.
    let mut planar = vec![0f32; 3 * h * w];
    for (i, px) in image.data().chunks_exact(3).enumerate() {
        for c in 0..3 {
            let q = (px[c] as f64 * 255.0 + 0.5).floor().clamp(0.0, 255.0) as f32;
            planar[c * h * w + i] = (q / 255.0 - MEAN) / STD;
        }
    }
    let (hh, ww, scale) = working_size(h, w);
    if let Some(s) = scale {
        let (ty, tx) = (linear_taps(h, hh, s), linear_taps(w, ww, s));
        let mut out = vec![0f32; 3 * hh * ww];
        for c in 0..3 {
            let src = &planar[c * h * w..(c + 1) * h * w];
            for (y, &(y0, y1, wy0, wy1)) in ty.iter().enumerate() {
                for (x, &(x0, x1, wx0, wx1)) in tx.iter().enumerate() {
                    let top = src[y0 * w + x0] * wx0 + src[y0 * w + x1] * wx1;
                    let bot = src[y1 * w + x0] * wx0 + src[y1 * w + x1] * wx1;
                    out[c * hh * ww + y * ww + x] = top * wy0 + bot * wy1;
                }
            }
        }
        planar = out;
    }
    let positions = rule.positions(hh, ww);
    let mut data = Vec::with_capacity(positions.len() * 3 * CROP * CROP);
    for &(t, l) in &positions {
        for c in 0..3 {
            for y in t..t + CROP {
                let row = c * hh * ww + y * ww + l;
                data.extend_from_slice(&planar[row..row + CROP]);
            }
        }
    }
    Ok(Tensor::from_vec(
        data,
        (positions.len(), 3, CROP, CROP),
        device,
    )?)
}

/// The checkpoint: a lazily read PyTorch pickle, with shape-checked access by name.
struct Checkpoint {
    pth: candle_core::pickle::PthTensors,
    prefix: &'static str,
    path: PathBuf,
    device: Device,
}

impl Checkpoint {
    fn open(path: &Path, device: &Device) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::MissingFile {
                path: path.to_path_buf(),
                hint: "a MANIQA checkpoint as pyiqa publishes it (ckpt_koniq10k.pt, \
                       ckpt_kadid10k.pt or MANIQA_PIPAL-ae6d356b.pth)"
                    .into(),
            });
        }
        let err = |e: candle_core::Error| weights_error(path, e);
        let mut pth = candle_core::pickle::PthTensors::new(path, None).map_err(err)?;
        if pth.tensor_infos().is_empty() {
            // pyiqa's pretrained_model_path loading wraps the state dict in `params`.
            pth = candle_core::pickle::PthTensors::new(path, Some("params")).map_err(err)?;
        }
        let prefix = if pth.tensor_infos().contains_key("vit.pos_embed") {
            ""
        } else {
            "module."
        };
        Ok(Self {
            pth,
            prefix,
            path: path.to_path_buf(),
            device: device.clone(),
        })
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.pth
            .tensor_infos()
            .get(&format!("{}{name}", self.prefix))
            .map(|t| t.layout.dims().to_vec())
    }

    fn need_shape(&self, name: &str) -> Result<Vec<usize>> {
        self.shape(name)
            .ok_or_else(|| weights_error(&self.path, format!("tensor {name} is missing")))
    }

    fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let have = self.need_shape(name)?;
        if have != shape {
            return Err(weights_error(
                &self.path,
                format!("tensor {name} has shape {have:?}, expected {shape:?}"),
            ));
        }
        let t = self
            .pth
            .get(&format!("{}{name}", self.prefix))
            .map_err(|e| weights_error(&self.path, format!("tensor {name}: {e}")))?
            .ok_or_else(|| weights_error(&self.path, format!("tensor {name} is missing")))?;
        Ok(t.to_dtype(DType::F32)?.to_device(&self.device)?)
    }

    fn linear(&self, name: &str, out_dim: usize, in_dim: usize) -> Result<Linear> {
        Ok(Linear::new(
            self.get(&format!("{name}.weight"), &[out_dim, in_dim])?,
            Some(self.get(&format!("{name}.bias"), &[out_dim])?),
        ))
    }

    fn layer_norm(&self, name: &str, dim: usize, eps: f64) -> Result<LayerNorm> {
        Ok(LayerNorm::new(
            self.get(&format!("{name}.weight"), &[dim])?,
            self.get(&format!("{name}.bias"), &[dim])?,
            eps,
        ))
    }

    fn conv(
        &self,
        name: &str,
        out_c: usize,
        in_c: usize,
        k: usize,
        cfg: Conv2dConfig,
    ) -> Result<Conv2d> {
        Ok(Conv2d::new(
            self.get(&format!("{name}.weight"), &[out_c, in_c, k, k])?,
            Some(self.get(&format!("{name}.bias"), &[out_c])?),
            cfg,
        ))
    }

    /// How many `{prefix}{i}{suffix}` tensors exist for i = 0, 1, ...
    fn count(&self, prefix: &str, suffix: &str) -> usize {
        (0..)
            .take_while(|i| self.shape(&format!("{prefix}{i}{suffix}")).is_some())
            .count()
    }
}

fn weights_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Weights {
        component: "maniqa".into(),
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// One timm ViT block (pre-norm attention and GELU MLP, LayerNorm eps 1e-6).
#[derive(Debug)]
struct VitBlock {
    parts: PreNorm,
    heads: usize,
}

/// The weights a pre-norm transformer block has (ViT and Swin alike): norm, qkv and
/// projection of the attention, norm and the two layers of the MLP.
#[derive(Debug)]
struct PreNorm {
    norm1: LayerNorm,
    qkv: Linear,
    proj: Linear,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

impl PreNorm {
    /// Block `name`'s parts (timm's names: `norm1`, `attn.qkv`, `attn.proj`, `norm2`,
    /// `mlp.fc1`, `mlp.fc2`); the MLP width is read from `mlp.fc1.weight`.
    fn load(ck: &Checkpoint, name: &str, dim: usize, eps: f64) -> Result<Self> {
        let hidden = ck.need_shape(&format!("{name}.mlp.fc1.weight"))?[0];
        Ok(Self {
            norm1: ck.layer_norm(&format!("{name}.norm1"), dim, eps)?,
            qkv: ck.linear(&format!("{name}.attn.qkv"), 3 * dim, dim)?,
            proj: ck.linear(&format!("{name}.attn.proj"), dim, dim)?,
            norm2: ck.layer_norm(&format!("{name}.norm2"), dim, eps)?,
            fc1: ck.linear(&format!("{name}.mlp.fc1"), hidden, dim)?,
            fc2: ck.linear(&format!("{name}.mlp.fc2"), dim, hidden)?,
        })
    }

    /// The block's second half: `x + fc2(gelu(fc1(norm2(x))))` (exact-erf GELU, as torch).
    fn mlp_residual(&self, x: &Tensor) -> Result<Tensor> {
        let m = self.fc1.forward(&self.norm2.forward(x)?)?.gelu_erf()?;
        Ok((x + self.fc2.forward(&m)?)?)
    }
}

impl VitBlock {
    fn load(ck: &Checkpoint, name: &str, dim: usize) -> Result<Self> {
        Ok(Self {
            parts: PreNorm::load(ck, name, dim, 1e-6)?,
            heads: dim / VIT_HEAD_DIM,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, n, c) = x.dims3()?;
        let hd = c / self.heads;
        let qkv = self
            .parts
            .qkv
            .forward(&self.parts.norm1.forward(x)?)?
            .reshape((b, n, 3, self.heads, hd))?
            .permute((2, 0, 3, 1, 4))?;
        let q = (qkv.i(0)?.contiguous()? * (hd as f64).powf(-0.5))?;
        let k = qkv.i(1)?.contiguous()?;
        let v = qkv.i(2)?.contiguous()?;
        let attn = candle_nn::ops::softmax_last_dim(&q.matmul(&k.t()?)?)?;
        let a = attn.matmul(&v)?.transpose(1, 2)?.reshape((b, n, c))?;
        let x = (x + self.parts.proj.forward(&a)?)?;
        self.parts.mlp_residual(&x)
    }
}

/// pyiqa's `TABlock`: attention between channels (rows of a (B, C, N) tensor), whose
/// output is reshaped from (B, N, C) memory order back to (B, C, N) as pyiqa does.
#[derive(Debug)]
struct TaBlock {
    q: Linear,
    k: Linear,
    v: Linear,
    norm_fact: f64,
}

impl TaBlock {
    fn load(ck: &Checkpoint, name: &str, n: usize) -> Result<Self> {
        Ok(Self {
            q: ck.linear(&format!("{name}.c_q"), n, n)?,
            k: ck.linear(&format!("{name}.c_k"), n, n)?,
            v: ck.linear(&format!("{name}.c_v"), n, n)?,
            norm_fact: (n as f64).powf(-0.5),
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, n) = x.dims3()?;
        let q = self.q.forward(x)?;
        let k = self.k.forward(x)?;
        let v = self.v.forward(x)?;
        let attn = candle_nn::ops::softmax_last_dim(&(q.matmul(&k.t()?)? * self.norm_fact)?)?;
        // (attn @ v).transpose(1, 2).reshape(B, C, N): a reinterpretation, not a transpose.
        let y = attn
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, c, n))?;
        Ok((y + x)?)
    }
}

/// One Swin block (window attention with relative position bias, shifted every other block).
#[derive(Debug)]
struct SwinBlock {
    parts: PreNorm,
    heads: usize,
    window: usize,
    shift: usize,
    /// (heads, w*w, w*w).
    bias: Tensor,
    /// (windows, w*w, w*w) of 0 / -100, for shifted blocks.
    mask: Option<Tensor>,
}

/// The region label of each position of a shifted window layout (Swin's `img_mask`).
fn region(i: usize, size: usize, window: usize, shift: usize) -> usize {
    if i < size - window {
        0
    } else if i < size - shift {
        1
    } else {
        2
    }
}

impl SwinBlock {
    fn load(ck: &Checkpoint, name: &str, dim: usize, res: usize, shifted: bool) -> Result<Self> {
        let table = ck.need_shape(&format!("{name}.attn.relative_position_bias_table"))?;
        if table.len() != 2 {
            return Err(weights_error(
                &ck.path,
                format!("{name}.attn.relative_position_bias_table is not 2-D"),
            ));
        }
        let heads = table[1];
        let side = (1..=table[0]).find(|s| s * s >= table[0]).unwrap_or(1);
        if side * side != table[0] || side % 2 == 0 || heads == 0 || dim % heads != 0 {
            return Err(weights_error(
                &ck.path,
                format!(
                    "{name}.attn.relative_position_bias_table has an unexpected shape {table:?}"
                ),
            ));
        }
        let mut window = side.div_ceil(2);
        let mut shift = if shifted { window / 2 } else { 0 };
        if res <= window {
            // Swin: a window as large as the map means no partition and no shift.
            window = res;
            shift = 0;
        }
        let table = ck.get(
            &format!("{name}.attn.relative_position_bias_table"),
            &[side * side, heads],
        )?;
        let ww = window * window;
        let mut index = Vec::with_capacity(ww * ww);
        for i in 0..ww {
            for j in 0..ww {
                let dy = (i / window) as isize - (j / window) as isize + side as isize / 2;
                let dx = (i % window) as isize - (j % window) as isize + side as isize / 2;
                index.push((dy * side as isize + dx) as u32);
            }
        }
        let index = Tensor::from_vec(index, ww * ww, &ck.device)?;
        let bias = table
            .index_select(&index, 0)?
            .reshape((ww, ww, heads))?
            .permute((2, 0, 1))?
            .contiguous()?;
        let mask = if shift > 0 {
            let nw = res / window;
            let mut m = Vec::with_capacity(nw * nw * ww * ww);
            for wy in 0..nw {
                for wx in 0..nw {
                    let label = |t: usize| {
                        let (y, x) = (wy * window + t / window, wx * window + t % window);
                        region(y, res, window, shift) * 3 + region(x, res, window, shift)
                    };
                    for i in 0..ww {
                        for j in 0..ww {
                            m.push(if label(i) == label(j) { 0f32 } else { -100.0 });
                        }
                    }
                }
            }
            Some(Tensor::from_vec(m, (nw * nw, ww, ww), &ck.device)?)
        } else {
            None
        };
        Ok(Self {
            parts: PreNorm::load(ck, name, dim, 1e-5)?,
            heads,
            window,
            shift,
            bias,
            mask,
        })
    }

    /// Cyclic shift of the (B, H, W, C) map by `s` along H and W (torch.roll).
    fn roll(x: &Tensor, s: isize) -> Result<Tensor> {
        let mut x = x.clone();
        for dim in [1, 2] {
            let n = x.dim(dim)? as isize;
            let k = s.rem_euclid(n) as usize;
            if k != 0 {
                let n = n as usize;
                x = Tensor::cat(&[x.narrow(dim, n - k, k)?, x.narrow(dim, 0, n - k)?], dim)?;
            }
        }
        Ok(x)
    }

    /// (B, H*W, C) -> (B, H*W, C) on an `res` x `res` map.
    fn forward(&self, x: &Tensor, res: usize) -> Result<Tensor> {
        let (b, l, c) = x.dims3()?;
        let (w, nw) = (self.window, res / self.window);
        let mut h = self.parts.norm1.forward(x)?.reshape((b, res, res, c))?;
        if self.shift > 0 {
            h = Self::roll(&h, -(self.shift as isize))?;
        }
        let windows = h
            .reshape((b, nw, w, nw, w, c))?
            .permute((0, 1, 3, 2, 4, 5))?
            .reshape((b * nw * nw, w * w, c))?;
        let (bw, n) = (b * nw * nw, w * w);
        let hd = c / self.heads;
        let qkv = self
            .parts
            .qkv
            .forward(&windows)?
            .reshape((bw, n, 3, self.heads, hd))?
            .permute((2, 0, 3, 1, 4))?;
        let q = (qkv.i(0)?.contiguous()? * (hd as f64).powf(-0.5))?;
        let k = qkv.i(1)?.contiguous()?;
        let v = qkv.i(2)?.contiguous()?;
        let mut attn = q.matmul(&k.t()?)?.broadcast_add(&self.bias)?;
        if let Some(mask) = &self.mask {
            attn = attn
                .reshape((b, nw * nw, self.heads, n, n))?
                .broadcast_add(&mask.unsqueeze(1)?)?
                .reshape((bw, self.heads, n, n))?;
        }
        let attn = candle_nn::ops::softmax_last_dim(&attn)?;
        let a = attn.matmul(&v)?.transpose(1, 2)?.reshape((bw, n, c))?;
        let a = self.parts.proj.forward(&a)?;
        let mut h = a
            .reshape((b, nw, nw, w, w, c))?
            .permute((0, 1, 3, 2, 4, 5))?
            .reshape((b, res, res, c))?;
        if self.shift > 0 {
            h = Self::roll(&h, self.shift as isize)?;
        }
        let x = (x + h.reshape((b, l, c))?)?;
        self.parts.mlp_residual(&x)
    }
}

/// pyiqa's MANIQA `SwinTransformer`: layers of Swin blocks + a ReLU 3x3 conv, each added
/// back scaled (`x = scale * layer(x) + x`).
#[derive(Debug)]
struct Swin {
    layers: Vec<(Vec<SwinBlock>, Conv2d)>,
    res: usize,
}

impl Swin {
    fn load(ck: &Checkpoint, name: &str, dim: usize, res: usize) -> Result<Self> {
        let n = ck.count(&format!("{name}.layers."), ".conv.weight");
        if n == 0 {
            return Err(weights_error(
                &ck.path,
                format!("tensor {name}.layers.0.conv.weight is missing"),
            ));
        }
        let pad = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        let layers = (0..n)
            .map(|i| {
                let lname = format!("{name}.layers.{i}");
                let depth = ck.count(&format!("{lname}.blocks."), ".norm1.weight");
                let blocks = (0..depth)
                    .map(|j| {
                        SwinBlock::load(ck, &format!("{lname}.blocks.{j}"), dim, res, j % 2 == 1)
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok((blocks, ck.conv(&format!("{lname}.conv"), dim, dim, 3, pad)?))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { layers, res })
    }

    /// (B, C, H, W) -> (B, C, H, W).
    fn forward(&self, x: &Tensor, scale: f64) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let mut x = x.flatten_from(2)?.transpose(1, 2)?.contiguous()?;
        for (blocks, conv) in &self.layers {
            let mut y = x.clone();
            for blk in blocks {
                y = blk.forward(&y, self.res)?;
            }
            let y = y.transpose(1, 2)?.reshape((b, c, h, w))?;
            let y = conv.forward(&y)?.relu()?.flatten_from(2)?.transpose(1, 2)?;
            x = ((y * scale)? + &x)?;
        }
        Ok(x.transpose(1, 2)?.reshape((b, c, h, w))?)
    }
}

/// What one batch of crops gives: the intermediate features and the per-patch outputs.
#[derive(Debug)]
pub struct CropOutputs {
    /// ViT blocks 6-9 without the class token, concatenated: (B, 784, 4 * 768).
    pub vit: Tensor,
    /// After stage 1 (TABs, conv1, Swin): (B, 768, 28, 28).
    pub stage1: Tensor,
    /// After stage 2: (B, 384, 28, 28).
    pub stage2: Tensor,
    /// Per-patch scores (ReLU) (B, 784).
    pub patch_score: Tensor,
    /// Per-patch weights (sigmoid) (B, 784).
    pub patch_weight: Tensor,
}

/// The MANIQA metric (see the module documentation).
#[derive(Debug)]
pub struct Maniqa {
    patch_embed: Conv2d,
    cls_token: Tensor,
    pos_embed: Tensor,
    blocks: Vec<VitBlock>,
    tab1: Vec<TaBlock>,
    conv1: Conv2d,
    swin1: Swin,
    tab2: Vec<TaBlock>,
    conv2: Conv2d,
    swin2: Swin,
    score_fc: (Linear, Linear),
    weight_fc: (Linear, Linear),
    grid: usize,
    swin_scale: f64,
    rule: CropRule,
    device: Device,
}

impl Maniqa {
    /// Loads one of pyiqa's published MANIQA checkpoints (see the module documentation),
    /// with the `maniqa` / `maniqa-kadid` Swin scale (0.8) and the default crop grid.
    pub fn load(checkpoint: &Path, device: &Device) -> Result<Self> {
        let ck = Checkpoint::open(checkpoint, device)?;
        let pe = ck.need_shape("vit.patch_embed.proj.weight")?;
        if pe.len() != 4 || pe[1] != 3 || pe[2] != pe[3] || pe[2] == 0 || CROP % pe[2] != 0 {
            return Err(weights_error(
                checkpoint,
                format!("tensor vit.patch_embed.proj.weight has an unexpected shape {pe:?}"),
            ));
        }
        let (dim, patch) = (pe[0], pe[2]);
        if dim % VIT_HEAD_DIM != 0 {
            return Err(weights_error(
                checkpoint,
                format!("ViT width {dim} is not a multiple of 64"),
            ));
        }
        let grid = CROP / patch;
        let tokens = grid * grid;
        let stride = Conv2dConfig {
            stride: patch,
            ..Default::default()
        };
        let patch_embed = ck.conv("vit.patch_embed.proj", dim, 3, patch, stride)?;
        let cls_token = ck.get("vit.cls_token", &[1, 1, dim])?;
        let pos_embed = ck.get("vit.pos_embed", &[1, tokens + 1, dim])?;
        let last = *FEATURE_BLOCKS.iter().max().unwrap_or(&0);
        let blocks = (0..=last)
            .map(|i| VitBlock::load(&ck, &format!("vit.blocks.{i}"), dim))
            .collect::<Result<Vec<_>>>()?;
        let embed = ck.need_shape("conv1.weight")?[0];
        let half = embed / 2;
        let ntab = ck.count("tablock1.", ".c_q.weight");
        let tabs = |name: &str| {
            (0..ntab)
                .map(|i| TaBlock::load(&ck, &format!("{name}.{i}"), tokens))
                .collect::<Result<Vec<_>>>()
        };
        let tab1 = tabs("tablock1")?;
        let tab2 = tabs("tablock2")?;
        let one = Conv2dConfig::default();
        let conv1 = ck.conv("conv1", embed, FEATURE_BLOCKS.len() * dim, 1, one)?;
        let conv2 = ck.conv("conv2", half, embed, 1, one)?;
        let swin1 = Swin::load(&ck, "swintransformer1", embed, grid)?;
        let swin2 = Swin::load(&ck, "swintransformer2", half, grid)?;
        let outputs = ck.need_shape("fc_score.3.weight")?[0];
        if outputs != 1 {
            return Err(Error::Unsupported {
                path: checkpoint.to_path_buf(),
                reason: format!("MANIQA with {outputs} outputs (fc_score.3.weight); the published checkpoints have 1"),
            });
        }
        let score_fc = (
            ck.linear("fc_score.0", half, half)?,
            ck.linear("fc_score.3", 1, half)?,
        );
        let weight_fc = (
            ck.linear("fc_weight.0", half, half)?,
            ck.linear("fc_weight.3", 1, half)?,
        );
        Ok(Self {
            patch_embed,
            cls_token,
            pos_embed,
            blocks,
            tab1,
            conv1,
            swin1,
            tab2,
            conv2,
            swin2,
            score_fc,
            weight_fc,
            grid,
            swin_scale: 0.8,
            rule: CropRule::default(),
            device: device.clone(),
        })
    }

    /// Sets the Swin residual scale (0.13 for `maniqa-pipal`, see the module documentation).
    pub fn with_swin_scale(mut self, scale: f64) -> Self {
        self.swin_scale = scale;
        self
    }

    /// Sets the crop rule ([`CropRule::Uniform`]`(20)` is pyiqa's default).
    pub fn with_crop_rule(mut self, rule: CropRule) -> Self {
        self.rule = rule;
        self
    }

    /// Sets the crop rule in place.
    pub fn set_crop_rule(&mut self, rule: CropRule) {
        self.rule = rule;
    }

    /// The crop rule in use.
    pub fn crop_rule(&self) -> CropRule {
        self.rule
    }

    /// The device the model lives on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// ViT blocks 6-9 of normalised crops (B, 3, 224, 224): (B, 784, 4 * width).
    pub fn vit_features(&self, crops: &Tensor) -> Result<Tensor> {
        let b = crops.dim(0)?;
        let patches = self
            .patch_embed
            .forward(crops)?
            .flatten_from(2)?
            .transpose(1, 2)?;
        let dim = patches.dim(2)?;
        let cls = self.cls_token.broadcast_as((b, 1, dim))?;
        let mut x = Tensor::cat(&[&cls, &patches], 1)?.broadcast_add(&self.pos_embed)?;
        let mut feats = Vec::with_capacity(FEATURE_BLOCKS.len());
        for (i, blk) in self.blocks.iter().enumerate() {
            x = blk.forward(&x)?;
            if FEATURE_BLOCKS.contains(&i) {
                feats.push(x.narrow(1, 1, self.grid * self.grid)?);
            }
        }
        Ok(Tensor::cat(&feats, 2)?)
    }

    fn stage(&self, x: &Tensor, tabs: &[TaBlock], conv: &Conv2d, swin: &Swin) -> Result<Tensor> {
        let (b, c, _, _) = x.dims4()?;
        let g = self.grid;
        let mut x = x.reshape((b, c, g * g))?;
        for t in tabs {
            x = t.forward(&x)?;
        }
        let x = conv.forward(&x.reshape((b, c, g, g))?)?;
        swin.forward(&x, self.swin_scale)
    }

    /// Everything after the ViT, for features (B, 784, 3072).
    pub fn head(&self, vit: &Tensor) -> Result<CropOutputs> {
        let (b, n, c) = vit.dims3()?;
        let g = self.grid;
        let x = vit.transpose(1, 2)?.contiguous()?.reshape((b, c, g, g))?;
        let stage1 = self.stage(&x, &self.tab1, &self.conv1, &self.swin1)?;
        let stage2 = self.stage(&stage1, &self.tab2, &self.conv2, &self.swin2)?;
        let tokens = stage2.flatten_from(2)?.transpose(1, 2)?.contiguous()?;
        let s = self.score_fc.0.forward(&tokens)?.relu()?;
        let patch_score = self.score_fc.1.forward(&s)?.relu()?.reshape((b, n))?;
        let w = self.weight_fc.0.forward(&tokens)?.relu()?;
        let patch_weight =
            candle_nn::ops::sigmoid(&self.weight_fc.1.forward(&w)?)?.reshape((b, n))?;
        Ok(CropOutputs {
            vit: vit.clone(),
            stage1,
            stage2,
            patch_score,
            patch_weight,
        })
    }

    /// The whole network on normalised crops (B, 3, 224, 224).
    pub fn forward_crops(&self, crops: &Tensor) -> Result<CropOutputs> {
        self.head(&self.vit_features(crops)?)
    }

    /// pyiqa's pooling: sum(weight * score) / (sum(weight) + 1e-8) over every patch of
    /// every crop, from per-crop (score, weight) pairs of shape (B, 784).
    pub fn pool(parts: &[(Tensor, Tensor)]) -> Result<f64> {
        let (mut num, mut den) = (0f64, 0f64);
        for (s, w) in parts {
            let s = s.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
            let w = w.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
            num += s.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>();
            den += w.iter().sum::<f64>();
        }
        Ok(num / (den + 1e-8))
    }

    /// The score under the configured crop rule, one crop at a time (memory stays that
    /// of one 224x224 crop whatever the image size); `inspect` sees each crop's outputs.
    pub fn score_with_features(
        &self,
        image: &Image,
        mut inspect: impl FnMut(usize, &CropOutputs) -> Result<()>,
    ) -> Result<f64> {
        let crops = crops(image, self.rule, &self.device)?;
        let n = crops.dim(0)?;
        let mut parts = Vec::with_capacity(n);
        for i in 0..n {
            let out = self.forward_crops(&crops.narrow(0, i, 1)?)?;
            inspect(i, &out)?;
            parts.push((out.patch_score, out.patch_weight));
        }
        Self::pool(&parts)
    }
}

impl Metric for Maniqa {
    fn name(&self) -> &str {
        "maniqa"
    }
    fn higher_is_better(&self) -> bool {
        true
    }
    fn score(&self, image: &Image) -> Result<f64> {
        self.score_with_features(image, |_, _| Ok(()))
    }
}
