//! MUSIQ (Ke et al. 2021, "Multi-scale image quality transformer"): a no-reference quality
//! score from a transformer over patches of the image at several scales, as pyiqa 0.1.16
//! implements it (`pyiqa/archs/musiq_arch.py`, `pyiqa/data/multiscale_trans_util.py`).
//! Higher is better.
//!
//! Checkpoints: pyiqa's published files as they ship (`default_model_urls` in musiq_arch.py),
//! PyTorch zip pickles holding a plain state dict (pyiqa loads them with no `weight_keys`;
//! a `module.` prefix is dropped as pyiqa's `clean_state_dict` does):
//! - `musiq_koniq_ckpt-e95806b9.pth` -> pyiqa metric `musiq` (KonIQ-10k, ~0..100),
//! - `musiq_spaq_ckpt-358bb6af.pth` -> `musiq-spaq`, `musiq_paq2piq_ckpt-364c0c84.pth` ->
//!   `musiq-paq2piq` (same layout: a one-output `head.weight` (1, 384)),
//! - `musiq_ava_ckpt-e8d3f067.pth` -> `musiq-ava` (1..10): `head.0.weight` (10, 384), whose
//!   softmax over the 10 score bins is turned into a mean score (pyiqa's `dist_to_mos`).
//!
//! The head, the width, the MLP width, the number of encoder blocks, the position grid and the
//! number of scales are read from the tensor shapes; the head count (6), the patch size (32,
//! checked against the embedding's input width) and the scales (longer side 224 and 384, plus
//! the original resolution) are pyiqa's fixed defaults, which all published files use.
//!
//! Preprocessing (pyiqa's, at test time): the image is quantised to 8 bits (pyiqa reads
//! files as uint8 / 255), mapped to -1..1, and resized (torch's bicubic, a = -0.75, no
//! antialiasing, `align_corners=False`) so that its longer side is 224 and 384 (the other
//! side `round()`ed half to even, as Python does). Each scale and the original image are cut
//! into 32x32 patches with TensorFlow's SAME zero padding; every patch carries a hashed
//! spatial position (its row and column mapped to a 10x10 grid by nearest-neighbour
//! interpolation), a scale id (0, 1, 2) and a mask. The two resized scales are padded with
//! masked zero patches to 49 and 144 tokens; the masked tokens take part in the network like
//! in pyiqa (attention logits to and from them are set to -1000, not removed).
//!
//! pyiqa's MUSIQ has no random crop at test time: the score is deterministic as it is.

use super::Metric;
use crate::error::{Error, Result};
use crate::image::Image;
use candle_core::{DType, Device, IndexOp, Module, Tensor, D};
use candle_nn::{GroupNorm, LayerNorm, Linear, VarBuilder};
use std::collections::HashMap;
use std::path::Path;

/// Patch size (pixels, square).
pub const PATCH: usize = 32;
/// Longer side of the resized scales, in scale-id order.
pub const LONGER_SIDES: [usize; 2] = [224, 384];
/// Attention heads of pyiqa's MUSIQ (not recorded in the checkpoint).
pub const NUM_HEADS: usize = 6;
/// Channels of the ResNet stem.
const STEM: usize = 64;
/// The attention logit pyiqa writes for masked token pairs.
const MASKED_LOGIT: f64 = -1e3;
/// Patches per chunk through the convolutional stem (bounds its memory).
const STEM_CHUNK: usize = 128;

/// The tokens of one image: patch pixels and their positions, scale ids and mask.
#[derive(Debug)]
pub struct MusiqInput {
    /// Patch pixels (tokens, 3, 32, 32), in -1..1 (zeros for padding tokens).
    pub pixels: Tensor,
    /// Hashed spatial position per token (row * grid + column).
    pub spatial: Vec<u32>,
    /// Scale id per token (0, 1 for the resized scales, 2 for the original).
    pub scale: Vec<u32>,
    /// Whether a token is a real patch (false for padding).
    pub mask: Vec<bool>,
}

impl MusiqInput {
    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.mask.len()
    }

    /// Whether there are no tokens.
    pub fn is_empty(&self) -> bool {
        self.mask.is_empty()
    }

    /// pyiqa's layout of `get_multiscale_patches`: (tokens, 3 * 32 * 32 + 3), pixels then
    /// spatial position, scale id and mask.
    pub fn pyiqa_layout(&self) -> Result<Tensor> {
        let n = self.len();
        let pix = self.pixels.reshape((n, 3 * PATCH * PATCH))?;
        let extra: Vec<f32> = (0..n)
            .flat_map(|i| {
                [
                    self.spatial[i] as f32,
                    self.scale[i] as f32,
                    f32::from(u8::from(self.mask[i])),
                ]
            })
            .collect();
        let extra = Tensor::from_vec(extra, (n, 3), self.pixels.device())?;
        Ok(Tensor::cat(&[pix, extra], 1)?)
    }
}

/// What [`Musiq::forward`] computes, for the conformance tests.
#[derive(Debug)]
pub struct MusiqFeatures {
    /// The patch tokens after the stem and the embedding Linear (tokens, width).
    pub embedding: Tensor,
    /// The encoder output, class token first (1 + tokens, width).
    pub encoded: Tensor,
    /// The head's output for the class token: (1,) or the AVA bin probabilities (10,).
    pub head: Tensor,
    /// The score (the head's output, or the mean of the AVA bins).
    pub score: f64,
}

/// torch's cubic convolution weights (a = -0.75) for fraction `t`.
fn cubic_weights(t: f32) -> [f32; 4] {
    let a = -0.75f32;
    let near = |x: f32| ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    let far = |x: f32| ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a;
    [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]
}

/// Per output index: four clamped input indices and their weights, as torch's
/// `upsample_bicubic2d` (align_corners=False, no antialiasing) computes them in f32.
fn bicubic_taps(in_size: usize, out_size: usize) -> Vec<([usize; 4], [f32; 4])> {
    let scale = in_size as f32 / out_size as f32;
    (0..out_size)
        .map(|i| {
            let real = scale * (i as f32 + 0.5) - 0.5;
            let idx = (real.floor() as i64).min(in_size as i64 - 1);
            let t = (real - idx as f32).clamp(0.0, 1.0);
            let ids = [0, 1, 2, 3].map(|j| (idx + j - 1).clamp(0, in_size as i64 - 1) as usize);
            (ids, cubic_weights(t))
        })
        .collect()
}

/// Resizes planar (3, h, w) data to (3, oh, ow) like torch's `F.interpolate(mode='bicubic')`:
/// per output pixel the sum over rows of the row weight times the row's horizontal sum.
fn resize_bicubic(src: &[f32], w: usize, h: usize, ow: usize, oh: usize) -> Vec<f32> {
    let (tx, ty) = (bicubic_taps(w, ow), bicubic_taps(h, oh));
    // Horizontal sums for every input row (each is the same f32 sum torch forms).
    let mut rows = vec![0f32; 3 * h * ow];
    for c in 0..3 {
        for y in 0..h {
            let line = &src[(c * h + y) * w..][..w];
            for (x, (ids, wt)) in tx.iter().enumerate() {
                let mut acc = line[ids[0]] * wt[0];
                for (&i, &wj) in ids.iter().zip(wt).skip(1) {
                    acc += line[i] * wj;
                }
                rows[(c * h + y) * ow + x] = acc;
            }
        }
    }
    let mut out = vec![0f32; 3 * oh * ow];
    for c in 0..3 {
        for (y, (ids, wt)) in ty.iter().enumerate() {
            for x in 0..ow {
                let r = |i: usize| rows[(c * h + i) * ow + x];
                let mut acc = r(ids[0]) * wt[0];
                for (&i, &wj) in ids.iter().zip(wt).skip(1) {
                    acc += r(i) * wj;
                }
                out[(c * oh + y) * ow + x] = acc;
            }
        }
    }
    out
}

/// torch's legacy `nearest` index from `out_size` cells back to `in_size` (f32 scale).
fn nearest_index(i: usize, in_size: usize, out_size: usize) -> usize {
    let scale = in_size as f32 / out_size as f32;
    ((i as f32 * scale).floor() as usize).min(in_size - 1)
}

/// Appends the 32x32 patches of planar (3, h, w) data with SAME zero padding, their hashed
/// positions on a `grid` x `grid` table, `scale_id`, and, up to `max_len` tokens (when
/// given), masked zero padding tokens.
#[allow(clippy::too_many_arguments)]
fn push_patches(
    data: &[f32],
    w: usize,
    h: usize,
    grid: usize,
    scale_id: u32,
    max_len: Option<usize>,
    pixels: &mut Vec<f32>,
    input: &mut (Vec<u32>, Vec<u32>, Vec<bool>),
) {
    let (ch, cw) = (h.div_ceil(PATCH), w.div_ceil(PATCH));
    let (top, left) = ((ch * PATCH - h) / 2, (cw * PATCH - w) / 2);
    let mut count = 0;
    for py in 0..ch {
        for px in 0..cw {
            if max_len.is_some_and(|m| count >= m) {
                return;
            }
            for c in 0..3 {
                for ky in 0..PATCH {
                    let y = (py * PATCH + ky) as i64 - top as i64;
                    for kx in 0..PATCH {
                        let x = (px * PATCH + kx) as i64 - left as i64;
                        let inside = (0..h as i64).contains(&y) && (0..w as i64).contains(&x);
                        pixels.push(if inside {
                            data[(c * h + y as usize) * w + x as usize]
                        } else {
                            0.0
                        });
                    }
                }
            }
            let pos = nearest_index(py, grid, ch) * grid + nearest_index(px, grid, cw);
            input.0.push(pos as u32);
            input.1.push(scale_id);
            input.2.push(true);
            count += 1;
        }
    }
    if let Some(m) = max_len {
        for _ in count..m {
            pixels.extend(std::iter::repeat_n(0.0, 3 * PATCH * PATCH));
            input.0.push(0);
            input.1.push(0);
            input.2.push(false);
        }
    }
}

/// The resized size for a longer side of `longer` (Python's `round`, half to even).
fn resized_size(w: usize, h: usize, longer: usize) -> (usize, usize) {
    let ratio = longer as f64 / w.max(h) as f64;
    (
        (w as f64 * ratio).round_ties_even() as usize,
        (h as f64 * ratio).round_ties_even() as usize,
    )
}

/// Checks that pyiqa's preprocessing can handle a `w` x `h` image: no resized side may
/// round to zero.
fn check_size(w: usize, h: usize) -> Result<()> {
    let (rw, rh) = resized_size(w, h, LONGER_SIDES[0]);
    if w == 0 || h == 0 || rw == 0 || rh == 0 {
        return Err(Error::Metric {
            metric: "musiq".into(),
            reason: format!(
                "cannot score a {w}x{h} image: resized to a longer side of {}, a side rounds to 0 pixels (aspect ratio 448:1 or more)",
                LONGER_SIDES[0]
            ),
        });
    }
    Ok(())
}

/// pyiqa's multi-scale tokens of an image (see the module documentation).
pub fn preprocess(image: &Image, grid: usize, device: &Device) -> Result<MusiqInput> {
    let (w, h) = (image.width(), image.height());
    check_size(w, h)?;
    // 8 bits as pyiqa reads files, then -1..1 (the same f32 steps as torch).
    let mut planar = vec![0f32; 3 * w * h];
    for (i, px) in image.data().chunks_exact(3).enumerate() {
        for c in 0..3 {
            let q = (px[c] as f64 * 255.0 + 0.5).floor().clamp(0.0, 255.0) as f32;
            planar[c * w * h + i] = (q / 255.0 - 0.5) * 2.0;
        }
    }
    let mut pixels = Vec::new();
    let mut meta = (Vec::new(), Vec::new(), Vec::new());
    for (sid, &longer) in LONGER_SIDES.iter().enumerate() {
        let (rw, rh) = resized_size(w, h, longer);
        let resized = resize_bicubic(&planar, w, h, rw, rh);
        let max_len = longer.div_ceil(PATCH).pow(2);
        push_patches(
            &resized,
            rw,
            rh,
            grid,
            sid as u32,
            Some(max_len),
            &mut pixels,
            &mut meta,
        );
    }
    let original = LONGER_SIDES.len() as u32;
    push_patches(&planar, w, h, grid, original, None, &mut pixels, &mut meta);
    let n = meta.2.len();
    Ok(MusiqInput {
        pixels: Tensor::from_vec(pixels, (n, 3, PATCH, PATCH), device)?,
        spatial: meta.0,
        scale: meta.1,
        mask: meta.2,
    })
}

/// A weight-standardised convolution with TensorFlow SAME padding (pyiqa's `StdConv`).
#[derive(Debug)]
struct StdConv {
    /// The standardised kernel (computed once; pyiqa recomputes it every call).
    weight: Tensor,
    kernel: usize,
    stride: usize,
}

/// The (before, after) zero padding of TensorFlow's SAME rule.
fn same_padding(size: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let out = size.div_ceil(stride);
    let total = ((out - 1) * stride + kernel).saturating_sub(size);
    (total / 2, total - total / 2)
}

impl StdConv {
    fn new(
        vb: VarBuilder,
        cin: usize,
        cout: usize,
        kernel: usize,
        stride: usize,
    ) -> candle_core::Result<Self> {
        let w = vb.get((cout, cin, kernel, kernel), "weight")?;
        let n = (cin * kernel * kernel) as f64;
        let flat = w.reshape((cout, cin * kernel * kernel))?;
        let mean = flat.mean_keepdim(1)?;
        let centred = flat.broadcast_sub(&mean)?;
        // torch's Tensor.std: the unbiased estimate.
        let std = (centred.sqr()?.sum_keepdim(1)? / (n - 1.0))?.sqrt()?;
        let weight = centred
            .broadcast_div(&(std + 1e-5)?)?
            .reshape((cout, cin, kernel, kernel))?;
        Ok(Self {
            weight,
            kernel,
            stride,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        let (t, b) = same_padding(h, self.kernel, self.stride);
        let (l, r) = same_padding(w, self.kernel, self.stride);
        let x = x.pad_with_zeros(2, t, b)?.pad_with_zeros(3, l, r)?;
        x.conv2d(&self.weight, 0, self.stride, 1, 1)
    }
}

/// pyiqa's `Bottleneck` (stride 1, with a projection shortcut).
#[derive(Debug)]
struct Bottleneck {
    conv1: StdConv,
    gn1: GroupNorm,
    conv2: StdConv,
    gn2: GroupNorm,
    conv3: StdConv,
    gn3: GroupNorm,
    conv_proj: StdConv,
    gn_proj: GroupNorm,
}

impl Bottleneck {
    fn new(vb: VarBuilder, cin: usize, cout: usize) -> candle_core::Result<Self> {
        let gn = |name: &str, c: usize| candle_nn::group_norm(32, c, 1e-4, vb.pp(name));
        Ok(Self {
            conv1: StdConv::new(vb.pp("conv1"), cin, cin, 1, 1)?,
            gn1: gn("gn1", cin)?,
            conv2: StdConv::new(vb.pp("conv2"), cin, cin, 3, 1)?,
            gn2: gn("gn2", cin)?,
            conv3: StdConv::new(vb.pp("conv3"), cin, cout, 1, 1)?,
            gn3: gn("gn3", cout)?,
            conv_proj: StdConv::new(vb.pp("conv_proj"), cin, cout, 1, 1)?,
            gn_proj: gn("gn_proj", cout)?,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let identity = self.gn_proj.forward(&self.conv_proj.forward(x)?)?;
        let y = self.gn1.forward(&self.conv1.forward(x)?)?.relu()?;
        let y = self.gn2.forward(&self.conv2.forward(&y)?)?.relu()?;
        let y = self.gn3.forward(&self.conv3.forward(&y)?)?;
        (y + identity)?.relu()
    }
}

/// One pre-norm transformer block (pyiqa's `TransformerBlock`).
#[derive(Debug)]
struct Block {
    norm1: LayerNorm,
    query: Linear,
    key: Linear,
    value: Linear,
    out: Linear,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

impl Block {
    fn new(vb: VarBuilder, width: usize, mlp: usize) -> candle_core::Result<Self> {
        let att = vb.pp("attention");
        let lin = |vb: VarBuilder, i, o| candle_nn::linear(i, o, vb);
        Ok(Self {
            norm1: candle_nn::layer_norm(width, 1e-6, vb.pp("norm1"))?,
            query: lin(att.pp("query"), width, width)?,
            key: lin(att.pp("key"), width, width)?,
            value: lin(att.pp("value"), width, width)?,
            out: lin(att.pp("out"), width, width)?,
            norm2: candle_nn::layer_norm(width, 1e-6, vb.pp("norm2"))?,
            fc1: lin(vb.pp("mlp.fc1"), width, mlp)?,
            fc2: lin(vb.pp("mlp.fc2"), mlp, width)?,
        })
    }

    /// `x` (tokens, width); `keep` (tokens, tokens) u8, 1 where both tokens are unmasked.
    fn forward(&self, x: &Tensor, keep: &Tensor, masked: &Tensor) -> candle_core::Result<Tensor> {
        let (n, c) = x.dims2()?;
        let hd = c / NUM_HEADS;
        let y = self.norm1.forward(x)?;
        let heads = |l: &Linear| -> candle_core::Result<Tensor> {
            l.forward(&y)?
                .reshape((n, NUM_HEADS, hd))?
                .transpose(0, 1)?
                .contiguous()
        };
        let (q, k, v) = (heads(&self.query)?, heads(&self.key)?, heads(&self.value)?);
        let logits = (q.matmul(&k.t()?)? * (hd as f64).powf(-0.5))?;
        let logits = keep
            .broadcast_as(logits.shape())?
            .where_cond(&logits, &masked.broadcast_as(logits.shape())?)?;
        let attn = candle_nn::ops::softmax_last_dim(&logits)?;
        let y = attn.matmul(&v)?.transpose(0, 1)?.reshape((n, c))?;
        let x = (x + self.out.forward(&y)?)?;
        let m = self
            .fc2
            .forward(&self.fc1.forward(&self.norm2.forward(&x)?)?.gelu_erf()?)?;
        x + m
    }
}

/// The output layer: one score, or a softmax over score bins averaged (AVA).
#[derive(Debug)]
enum Head {
    Score(Linear),
    Bins(Linear),
}

/// MUSIQ with a pyiqa checkpoint (see the module documentation).
#[derive(Debug)]
pub struct Musiq {
    conv_root: StdConv,
    gn_root: GroupNorm,
    block1: Bottleneck,
    embedding: Linear,
    position_emb: Tensor,
    scale_emb: Tensor,
    cls: Tensor,
    blocks: Vec<Block>,
    encoder_norm: LayerNorm,
    head: Head,
    grid: usize,
    width: usize,
    device: Device,
}

fn load_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Weights {
        component: "musiq".into(),
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

impl Musiq {
    /// Loads a pyiqa MUSIQ checkpoint (`.pth`, a plain state dict). Computation is in f32.
    pub fn load(checkpoint: &Path, device: &Device) -> Result<Self> {
        if !checkpoint.is_file() {
            return Err(Error::MissingFile {
                path: checkpoint.to_path_buf(),
                hint: "a pyiqa MUSIQ checkpoint, e.g. musiq_koniq_ckpt-e95806b9.pth".into(),
            });
        }
        let tensors: HashMap<String, Tensor> = candle_core::pickle::read_all(checkpoint)
            .map_err(|e| load_error(checkpoint, e))?
            .into_iter()
            .map(|(k, v)| (k.strip_prefix("module.").map(str::to_owned).unwrap_or(k), v))
            .collect();
        Self::from_tensors(tensors, checkpoint, device)
    }

    /// Builds the model from a state dict under pyiqa's names; `checkpoint` names the
    /// source in errors.
    pub fn from_tensors(
        tensors: HashMap<String, Tensor>,
        checkpoint: &Path,
        device: &Device,
    ) -> Result<Self> {
        let dims = |name: &str| -> Result<Vec<usize>> {
            tensors.get(name).map(|t| t.dims().to_vec()).ok_or_else(|| {
                load_error(
                    checkpoint,
                    format!("no tensor {name} (not a pyiqa MUSIQ checkpoint?)"),
                )
            })
        };
        let emb = dims("embedding.weight")?;
        let pos = dims("transformer_encoder.posembed_input.position_emb")?;
        let scales = dims("transformer_encoder.scaleembed_input.scale_emb")?;
        let mlp = dims("transformer_encoder.transformer.encoderblock_0.mlp.fc1.weight")?;
        let bad = |what: String| Err(load_error(checkpoint, what));
        if emb.len() != 2 || emb[1] != STEM * 4 * (PATCH / 4) * (PATCH / 4) {
            return bad(format!(
                "embedding.weight has shape {emb:?}, expected (width, {}) for 32x32 patches",
                STEM * 4 * (PATCH / 4) * (PATCH / 4)
            ));
        }
        let width = emb[0];
        if width % NUM_HEADS != 0 {
            return bad(format!(
                "width {width} is not a multiple of {NUM_HEADS} heads"
            ));
        }
        let grid = match pos[..] {
            [1, g2, w] if w == width => (g2 as f64).sqrt().round() as usize,
            _ => 0,
        };
        if grid == 0 || grid * grid != pos[1] {
            return bad(format!("transformer_encoder.posembed_input.position_emb has shape {pos:?}, expected (1, grid * grid, {width})"));
        }
        if scales.first().is_none_or(|&s| s <= LONGER_SIDES.len()) {
            return bad(format!("transformer_encoder.scaleembed_input.scale_emb has shape {scales:?}, expected {} scales", LONGER_SIDES.len() + 1));
        }
        let layers = (0..)
            .take_while(|i| {
                tensors.contains_key(&format!(
                    "transformer_encoder.transformer.encoderblock_{i}.norm1.weight"
                ))
            })
            .count();
        let head_kind = if tensors.contains_key("head.0.weight") {
            Some(true)
        } else if tensors.contains_key("head.weight") {
            Some(false)
        } else {
            None
        };
        let Some(bins) = head_kind else {
            return bad("no head.weight (one-score head) or head.0.weight (AVA score bins)".into());
        };
        let head_name = if bins { "head.0" } else { "head" };
        let outputs = dims(&format!("{head_name}.weight"))?[0];
        if !bins && outputs != 1 {
            return bad(format!(
                "head.weight has {outputs} outputs, expected 1 (a score)"
            ));
        }
        if bins && outputs < 2 {
            return bad(format!(
                "head.0.weight has {outputs} outputs, expected the score bins (10 for AVA)"
            ));
        }

        let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
        let build = || -> candle_core::Result<Self> {
            let te = vb.pp("transformer_encoder");
            let head = candle_nn::linear(width, outputs, vb.pp(head_name))?;
            Ok(Self {
                conv_root: StdConv::new(vb.pp("conv_root"), 3, STEM, 7, 2)?,
                gn_root: candle_nn::group_norm(32, STEM, 1e-6, vb.pp("gn_root"))?,
                block1: Bottleneck::new(vb.pp("block1"), STEM, STEM * 4)?,
                embedding: candle_nn::linear(emb[1], width, vb.pp("embedding"))?,
                position_emb: te
                    .get((1, grid * grid, width), "posembed_input.position_emb")?
                    .squeeze(0)?,
                scale_emb: te.get((scales[0], width), "scaleembed_input.scale_emb")?,
                cls: te.get((1, 1, width), "cls")?.reshape((1, width))?,
                blocks: (0..layers)
                    .map(|i| {
                        Block::new(
                            te.pp(format!("transformer.encoderblock_{i}")),
                            width,
                            mlp[0],
                        )
                    })
                    .collect::<candle_core::Result<_>>()?,
                encoder_norm: candle_nn::layer_norm(width, 1e-6, te.pp("encoder_norm"))?,
                head: if bins {
                    Head::Bins(head)
                } else {
                    Head::Score(head)
                },
                grid,
                width,
                device: device.clone(),
            })
        };
        build().map_err(|e| load_error(checkpoint, e))
    }

    /// Whether the checkpoint has the AVA head (score bins) rather than one score.
    pub fn has_score_bins(&self) -> bool {
        matches!(self.head, Head::Bins(_))
    }

    /// Number of transformer encoder blocks.
    pub fn num_layers(&self) -> usize {
        self.blocks.len()
    }

    /// The tokens of `image` (pyiqa's preprocessing).
    pub fn preprocess(&self, image: &Image) -> Result<MusiqInput> {
        preprocess(image, self.grid, &self.device)
    }

    /// The convolutional stem and the embedding: (tokens, width).
    fn embed(&self, pixels: &Tensor) -> candle_core::Result<Tensor> {
        let n = pixels.dim(0)?;
        let mut out = Vec::new();
        for start in (0..n).step_by(STEM_CHUNK) {
            let x = pixels.narrow(0, start, STEM_CHUNK.min(n - start))?;
            let x = self.gn_root.forward(&self.conv_root.forward(&x)?)?.relu()?;
            let (_, _, h, w) = x.dims4()?;
            let (t, b) = same_padding(h, 3, 2);
            let (l, r) = same_padding(w, 3, 2);
            let x = x
                .pad_with_zeros(2, t, b)?
                .pad_with_zeros(3, l, r)?
                .max_pool2d_with_stride(3, 2)?;
            let x = self.block1.forward(&x)?;
            // TensorFlow's channel order: (h, w, c) flattened per patch.
            let x = x.permute((0, 2, 3, 1))?.flatten_from(1)?;
            out.push(self.embedding.forward(&x)?);
        }
        Tensor::cat(&out, 0)
    }

    /// Runs the network on prepared tokens.
    pub fn forward(&self, input: &MusiqInput) -> Result<MusiqFeatures> {
        let n = input.len();
        let dev = &self.device;
        let embedding = self.embed(&input.pixels)?;
        let spatial = Tensor::from_slice(&input.spatial, n, dev)?;
        let scale = Tensor::from_slice(&input.scale, n, dev)?;
        let x = ((&embedding + self.position_emb.index_select(&spatial, 0)?)?
            + self.scale_emb.index_select(&scale, 0)?)?;
        let mut x = Tensor::cat(&[&self.cls, &x], 0)?;
        // The class token is never masked.
        let mask: Vec<u8> = std::iter::once(1)
            .chain(input.mask.iter().map(|&m| u8::from(m)))
            .collect();
        let m = Tensor::from_vec(mask, n + 1, dev)?;
        let keep = m
            .reshape((n + 1, 1))?
            .broadcast_mul(&m.reshape((1, n + 1))?)?
            .unsqueeze(0)?;
        let masked = Tensor::new(MASKED_LOGIT as f32, dev)?;
        for b in &self.blocks {
            x = b.forward(&x, &keep, &masked)?;
        }
        let encoded = self.encoder_norm.forward(&x)?;
        let cls = encoded.i(0..1)?;
        let (head, score) = match &self.head {
            Head::Score(l) => {
                let q = l.forward(&cls)?.flatten_all()?;
                let s = q.to_dtype(DType::F64)?.to_vec1::<f64>()?[0];
                (q, s)
            }
            Head::Bins(l) => {
                let p = candle_nn::ops::softmax(&l.forward(&cls)?, D::Minus1)?.flatten_all()?;
                // pyiqa's dist_to_mos: the mean of the bins 1..=K under p.
                let k = p.dim(0)?;
                let bins = Tensor::arange(1f32, k as f32 + 1.0, dev)?;
                let s = (&p * bins)?
                    .sum_all()?
                    .to_dtype(DType::F64)?
                    .to_scalar::<f64>()?;
                (p, s)
            }
        };
        Ok(MusiqFeatures {
            embedding,
            encoded,
            head,
            score,
        })
    }

    /// The width of the tokens.
    pub fn width(&self) -> usize {
        self.width
    }
}

impl Metric for Musiq {
    fn name(&self) -> &str {
        "musiq"
    }
    fn higher_is_better(&self) -> bool {
        true
    }
    fn score(&self, image: &Image) -> Result<f64> {
        Ok(self.forward(&self.preprocess(image)?)?.score)
    }
}
