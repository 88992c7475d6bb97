//! TOPIQ-NR (Chen et al., TIP 2024): no-reference quality from a ResNet-50's five feature
//! levels, each gated and pooled, reduced to tokens and self-attended, then fused top-down
//! (coarse query attends to each finer level in turn), attention-pooled and mapped to a
//! score by an MLP. Higher is better (KonIQ checkpoint: roughly 0..1).
//!
//! This is pyiqa's `CFANet` in no-reference mode with the `resnet50` backbone (timm's
//! `resnet50` with `features_only`: act1, layer1..layer4). Checkpoints, as pyiqa's
//! `default_model_urls` names them: `cfanet_nr_koniq_res50` (pyiqa metric `topiq_nr`) and
//! `cfanet_nr_spaq_res50` (`topiq_nr-spaq`); both score the image at its own size with one
//! crop, exactly as pyiqa does. `cfanet_nr_flive_res50` has the same tensors but pyiqa
//! resizes to 384 first (`topiq_nr-flive`, `test_img_size`), which this module does not do,
//! so its scores would not match pyiqa's. Not handled: the full-reference checkpoints
//! (`cfanet_fr_*`, rejected by their tensor shapes), the AVA aesthetics heads (10 classes,
//! rejected), the face variants (`topiq_nr_*gfiqa*`, which need facexlib's alignment) and
//! the Swin/CLIP backbones. The published `.pth` nests the state dict under `params`
//! (pyiqa loads with `weight_keys='params'`); a bare state dict (and DataParallel's
//! `module.` prefix) is accepted too.
//!
//! Read from the checkpoint's shapes: the token width (`h_emb`), the feed-forward width,
//! the number of attention layers per block and the class count. The head count is not in
//! the tensors; it is width / 64, as in all of pyiqa's TOPIQ configs (256 -> 4, 512 -> 8).
//!
//! Preprocessing as pyiqa: 8-bit RGB / 255, ImageNet mean/std, no resize, no crop (the
//! `topiq_nr` config has one crop, so the score is deterministic without a crop grid).
//! BatchNorm (eval mode) is folded into the preceding convolution at load time.

use super::Metric;
use crate::error::{Error, Result};
use crate::image::Image;
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{LayerNorm, Linear, VarBuilder};
use std::collections::HashMap;
use std::path::Path;

/// ImageNet normalisation (timm's defaults, as pyiqa's IMAGENET_DEFAULT_MEAN/STD).
pub const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet normalisation std.
pub const STD: [f32; 3] = [0.229, 0.224, 0.225];
/// Smallest side scored: one cell of ResNet-50's stride-32 level.
pub const MIN_SIDE: usize = 32;
/// BatchNorm epsilon (torch's default, as timm builds ResNet-50).
const BN_EPS: f64 = 1e-5;
/// LayerNorm epsilon (torch's default).
const LN_EPS: f64 = 1e-5;
/// Attention head width in all of pyiqa's TOPIQ configs.
const HEAD_DIM: usize = 64;
/// ResNet-50: blocks per stage and bottleneck widths.
const STAGES: [(usize, usize); 4] = [(3, 64), (4, 128), (6, 256), (3, 512)];

/// A convolution with its eval-mode BatchNorm folded in (or a plain biased conv).
#[derive(Debug)]
struct Conv {
    weight: Tensor,
    bias: Tensor,
    stride: usize,
    pad: usize,
}

impl Conv {
    /// A conv `name` followed by BatchNorm `bn` (timm's ResNet convs have no bias).
    fn with_bn(
        vb: &VarBuilder,
        name: &str,
        bn: &str,
        (cin, cout, k): (usize, usize, usize),
        stride: usize,
    ) -> candle_core::Result<Self> {
        let w = vb.get((cout, cin, k, k), &format!("{name}.weight"))?;
        let g = vb.get(cout, &format!("{bn}.weight"))?;
        let b = vb.get(cout, &format!("{bn}.bias"))?;
        let m = vb.get(cout, &format!("{bn}.running_mean"))?;
        let v = vb.get(cout, &format!("{bn}.running_var"))?;
        let scale = (g / (v + BN_EPS)?.sqrt()?)?;
        Ok(Self {
            weight: w.broadcast_mul(&scale.reshape((cout, 1, 1, 1))?)?,
            bias: (b - (m * &scale)?)?,
            stride,
            pad: k / 2,
        })
    }

    /// A biased conv (the head's), padding k / 2.
    fn plain(
        vb: &VarBuilder,
        name: &str,
        (cin, cout, k): (usize, usize, usize),
    ) -> candle_core::Result<Self> {
        Ok(Self {
            weight: vb.get((cout, cin, k, k), &format!("{name}.weight"))?,
            bias: vb.get(cout, &format!("{name}.bias"))?,
            stride: 1,
            pad: k / 2,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let c = self.bias.dim(0)?;
        x.conv2d(&self.weight, self.pad, self.stride, 1, 1)?
            .broadcast_add(&self.bias.reshape((1, c, 1, 1))?)
    }
}

/// timm's Bottleneck: 1x1, 3x3 (stride here), 1x1, plus the (downsampled) shortcut.
#[derive(Debug)]
struct Bottleneck {
    c1: Conv,
    c2: Conv,
    c3: Conv,
    down: Option<Conv>,
}

impl Bottleneck {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = self.c1.forward(x)?.relu()?;
        let y = self.c2.forward(&y)?.relu()?;
        let y = self.c3.forward(&y)?;
        let short = match &self.down {
            Some(d) => d.forward(x)?,
            None => x.clone(),
        };
        (y + short)?.relu()
    }
}

/// timm's `resnet50(features_only=True)`: act1 (stride 2), layer1..layer4.
#[derive(Debug)]
struct ResNet50 {
    stem: Conv,
    stages: Vec<Vec<Bottleneck>>,
}

impl ResNet50 {
    fn new(vb: &VarBuilder) -> candle_core::Result<Self> {
        let stem = Conv::with_bn(vb, "conv1", "bn1", (3, 64, 7), 2)?;
        let mut cin = 64;
        let mut stages = Vec::new();
        for (s, &(blocks, width)) in STAGES.iter().enumerate() {
            let cout = width * 4;
            let stage = (0..blocks)
                .map(|b| {
                    let p = format!("layer{}.{b}", s + 1);
                    let stride = if b == 0 && s > 0 { 2 } else { 1 };
                    let inp = if b == 0 { cin } else { cout };
                    let down = if b == 0 {
                        Some(Conv::with_bn(
                            vb,
                            &format!("{p}.downsample.0"),
                            &format!("{p}.downsample.1"),
                            (inp, cout, 1),
                            stride,
                        )?)
                    } else {
                        None
                    };
                    Ok(Bottleneck {
                        c1: Conv::with_bn(
                            vb,
                            &format!("{p}.conv1"),
                            &format!("{p}.bn1"),
                            (inp, width, 1),
                            1,
                        )?,
                        c2: Conv::with_bn(
                            vb,
                            &format!("{p}.conv2"),
                            &format!("{p}.bn2"),
                            (width, width, 3),
                            stride,
                        )?,
                        c3: Conv::with_bn(
                            vb,
                            &format!("{p}.conv3"),
                            &format!("{p}.bn3"),
                            (width, cout, 1),
                            1,
                        )?,
                        down,
                    })
                })
                .collect::<candle_core::Result<Vec<_>>>()?;
            stages.push(stage);
            cin = cout;
        }
        Ok(Self { stem, stages })
    }

    fn channels() -> [usize; 5] {
        [64, 256, 512, 1024, 2048]
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Vec<Tensor>> {
        let act1 = self.stem.forward(x)?.relu()?;
        // Max pool 3x3 / 2 with padding 1: the input is post-ReLU (>= 0) and every window
        // holds a real pixel, so zero padding gives torch's -inf-padded result.
        let mut x = act1
            .pad_with_zeros(2, 1, 1)?
            .pad_with_zeros(3, 1, 1)?
            .max_pool2d_with_stride(3, 2)?;
        let mut feats = vec![act1];
        for stage in &self.stages {
            for block in stage {
                x = block.forward(&x)?;
            }
            feats.push(x.clone());
        }
        Ok(feats)
    }
}

/// pyiqa's GatedConv: GELU(split a) * sigmoid-gate(split b).
#[derive(Debug)]
struct GatedConv {
    split: Conv,
    gate: [Conv; 3],
}

impl GatedConv {
    fn new(vb: &VarBuilder, dim: usize) -> candle_core::Result<Self> {
        let g = |i: usize, shape| Conv::plain(vb, &format!("weight_blk.{i}"), shape);
        Ok(Self {
            split: Conv::plain(vb, "splitconv", (dim, 2 * dim, 1))?,
            gate: [g(0, (dim, 64, 1))?, g(2, (64, 64, 3))?, g(4, (64, 1, 3))?],
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let s = self.split.forward(x)?;
        let dim = s.dim(1)? / 2;
        let (a, b) = (s.narrow(1, 0, dim)?, s.narrow(1, dim, dim)?);
        let w = self.gate[0].forward(&b)?.gelu_erf()?;
        let w = self.gate[1].forward(&w)?.gelu_erf()?;
        let w = candle_nn::ops::sigmoid(&self.gate[2].forward(&w)?)?;
        a.gelu_erf()?.broadcast_mul(&w)
    }
}

/// torch's nn.MultiheadAttention (packed in-projection), on (tokens, width) matrices.
#[derive(Debug)]
struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    heads: usize,
}

impl Attention {
    fn new(vb: &VarBuilder, dim: usize, heads: usize) -> candle_core::Result<Self> {
        let w = vb.get((3 * dim, dim), "in_proj_weight")?;
        let b = vb.get(3 * dim, "in_proj_bias")?;
        let part = |i: usize| -> candle_core::Result<Linear> {
            Ok(Linear::new(
                w.narrow(0, i * dim, dim)?.contiguous()?,
                Some(b.narrow(0, i * dim, dim)?.contiguous()?),
            ))
        };
        Ok(Self {
            q: part(0)?,
            k: part(1)?,
            v: part(2)?,
            out: candle_nn::linear(dim, dim, vb.pp("out_proj"))?,
            heads,
        })
    }

    /// (heads, tokens, head width).
    fn split(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (n, d) = x.dims2()?;
        x.reshape((n, self.heads, d / self.heads))?
            .transpose(0, 1)?
            .contiguous()
    }

    fn forward(&self, query: &Tensor, memory: &Tensor) -> candle_core::Result<Tensor> {
        let (n, d) = query.dims2()?;
        let scale = 1.0 / ((d / self.heads) as f64).sqrt();
        let q = self.split(&(self.q.forward(query)? * scale)?)?;
        let k = self.split(&self.k.forward(memory)?)?;
        let v = self.split(&self.v.forward(memory)?)?;
        let att = candle_nn::ops::softmax_last_dim(&q.matmul(&k.t()?)?)?;
        let y = att.matmul(&v)?.transpose(0, 1)?.reshape((n, d))?;
        self.out.forward(&y)
    }
}

/// The feed-forward part of pyiqa's pre-norm transformer layers.
#[derive(Debug)]
struct FeedForward {
    norm: LayerNorm,
    l1: Linear,
    l2: Linear,
}

impl FeedForward {
    fn new(vb: &VarBuilder, norm: &str, dim: usize, ff: usize) -> candle_core::Result<Self> {
        Ok(Self {
            norm: candle_nn::layer_norm(dim, LN_EPS, vb.pp(norm))?,
            l1: candle_nn::linear(dim, ff, vb.pp("linear1"))?,
            l2: candle_nn::linear(ff, dim, vb.pp("linear2"))?,
        })
    }

    /// x + FFN(norm(x)).
    fn residual(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = self.l1.forward(&self.norm.forward(x)?)?.gelu_erf()?;
        x + self.l2.forward(&y)?
    }
}

/// pyiqa's TransformerEncoderLayer (pre-norm self-attention).
#[derive(Debug)]
struct EncoderLayer {
    norm1: LayerNorm,
    attn: Attention,
    ff: FeedForward,
}

impl EncoderLayer {
    fn new(vb: &VarBuilder, w: &Widths) -> candle_core::Result<Self> {
        Ok(Self {
            norm1: candle_nn::layer_norm(w.dim, LN_EPS, vb.pp("norm1"))?,
            attn: Attention::new(&vb.pp("self_attn"), w.dim, w.heads)?,
            ff: FeedForward::new(vb, "norm2", w.dim, w.ff)?,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let s = self.norm1.forward(x)?;
        let x = (x + self.attn.forward(&s, &s)?)?;
        self.ff.residual(&x)
    }
}

/// pyiqa's TransformerDecoderLayer: cross-attention only (its self_attn is unused).
#[derive(Debug)]
struct DecoderLayer {
    norm1: LayerNorm,
    norm2: LayerNorm,
    attn: Attention,
    ff: FeedForward,
}

impl DecoderLayer {
    fn new(vb: &VarBuilder, w: &Widths) -> candle_core::Result<Self> {
        Ok(Self {
            norm1: candle_nn::layer_norm(w.dim, LN_EPS, vb.pp("norm1"))?,
            norm2: candle_nn::layer_norm(w.dim, LN_EPS, vb.pp("norm2"))?,
            attn: Attention::new(&vb.pp("multihead_attn"), w.dim, w.heads)?,
            ff: FeedForward::new(vb, "norm3", w.dim, w.ff)?,
        })
    }

    fn forward(&self, tgt: &Tensor, memory: &Tensor) -> candle_core::Result<Tensor> {
        let m = self.norm2.forward(memory)?;
        let t = self.norm1.forward(tgt)?;
        let x = (tgt + self.attn.forward(&t, &m)?)?;
        self.ff.residual(&x)
    }
}

/// Head widths read from the checkpoint.
#[derive(Clone, Copy, Debug)]
struct Widths {
    dim: usize,
    ff: usize,
    heads: usize,
    layers: usize,
}

/// The score MLP: LN, Linear, GELU, LN, Linear, GELU, Linear.
#[derive(Debug)]
struct ScoreMlp {
    n1: LayerNorm,
    l1: Linear,
    n2: LayerNorm,
    l2: Linear,
    l3: Linear,
}

impl ScoreMlp {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = self.l1.forward(&self.n1.forward(x)?)?.gelu_erf()?;
        let x = self.l2.forward(&self.n2.forward(&x)?)?.gelu_erf()?;
        self.l3.forward(&x)
    }
}

/// What the network computes for one image (for conformance tests and inspection).
#[derive(Debug)]
pub struct TopiqFeatures {
    /// ResNet-50 features act1, layer1..layer4, each (1, C, h, w) (empty unless asked).
    pub backbone: Vec<Tensor>,
    /// Per level (backbone order): the dim_reduce output (1, width, h, w), after the
    /// gating and pooling, before the position embedding.
    pub reduced: Vec<Tensor>,
    /// Per level (backbone order): the self-attended tokens (h * w, width).
    pub tokens: Vec<Tensor>,
    /// The top-down queries after cross-attending layer3, layer2, layer1, act1 (tokens
    /// of layer4's grid, width).
    pub queries: Vec<Tensor>,
    /// The attention-pooled feature averaged over tokens (1, width).
    pub pooled: Tensor,
    /// The score.
    pub score: f64,
}

/// The TOPIQ-NR metric (see the module documentation).
#[derive(Debug)]
pub struct TopiqNr {
    backbone: ResNet50,
    gates: Vec<GatedConv>,
    reduce: Vec<Conv>,
    self_attn: Vec<Vec<EncoderLayer>>,
    cross_attn: Vec<Vec<DecoderLayer>>,
    pool: EncoderLayer,
    mlp: ScoreMlp,
    /// The (1, width, 32, 32) position embedding grid (h_emb and w_emb repeated).
    pos: Tensor,
    device: Device,
}

fn load_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Weights {
        component: "topiq".into(),
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// The state dict of a pyiqa checkpoint: under `params` as published, else the top level.
fn read_state_dict(path: &Path) -> Result<HashMap<String, Tensor>> {
    let tensors = match candle_core::pickle::read_all_with_key(path, Some("params")) {
        Ok(t) if !t.is_empty() => t,
        _ => candle_core::pickle::read_all(path).map_err(|e| load_error(path, e))?,
    };
    if tensors.is_empty() {
        return Err(load_error(path, "no tensors found (expected a PyTorch state dict, as pyiqa's cfanet_nr_*_res50 .pth files hold under 'params')"));
    }
    tensors
        .into_iter()
        .map(|(k, v)| {
            let k = k.strip_prefix("module.").map(str::to_owned).unwrap_or(k);
            Ok((k, v.to_dtype(DType::F32).map_err(|e| load_error(path, e))?))
        })
        .collect()
}

/// The dims of tensor `name`, or an error naming it.
fn dims_of<'a>(sd: &'a HashMap<String, Tensor>, name: &str, path: &Path) -> Result<&'a [usize]> {
    sd.get(name).map(|t| t.dims()).ok_or_else(|| {
        load_error(
            path,
            format!("missing tensor {name} (not a TOPIQ/CFANet checkpoint?)"),
        )
    })
}

/// Reads the head widths from the tensor shapes and rejects variants this module does
/// not implement.
fn widths(sd: &HashMap<String, Tensor>, path: &Path) -> Result<Widths> {
    let emb = dims_of(sd, "h_emb", path)?;
    if emb.len() != 4 || emb[0] != 1 || emb[3] != 1 {
        return Err(load_error(
            path,
            format!("h_emb has shape {emb:?}, expected (1, width/2, 32, 1)"),
        ));
    }
    let dim = emb[1] * 2;
    if dim % HEAD_DIM != 0 {
        return Err(load_error(
            path,
            format!("token width {dim} (from h_emb) is not a multiple of {HEAD_DIM}"),
        ));
    }
    if !sd.contains_key("weight_pool.0.splitconv.weight") {
        return Err(load_error(path, "missing tensor weight_pool.0.splitconv.weight: a full-reference TOPIQ checkpoint (cfanet_fr_*) or not a TOPIQ checkpoint; only the no-reference ResNet-50 ones are supported"));
    }
    if !sd.contains_key("semantic_model.layer4.2.conv3.weight") {
        return Err(load_error(path, "missing tensor semantic_model.layer4.2.conv3.weight: not a ResNet-50 TOPIQ checkpoint (Swin/CLIP backbones are not supported)"));
    }
    let classes = dims_of(sd, "score_linear.6.weight", path)?;
    if classes.first() != Some(&1) {
        return Err(load_error(path, format!("score_linear.6.weight has shape {classes:?}: a {}-class head (the AVA aesthetics model?); only single-score heads are supported", classes.first().unwrap_or(&0))));
    }
    let ff = dims_of(sd, "attn_pool.linear1.weight", path)?[0];
    let layers = (0..)
        .take_while(|i| sd.contains_key(&format!("sa_attn_blks.0.layers.{i}.linear1.weight")))
        .count();
    if layers == 0 {
        return Err(load_error(
            path,
            "missing tensor sa_attn_blks.0.layers.0.linear1.weight",
        ));
    }
    Ok(Widths {
        dim,
        ff,
        heads: dim / HEAD_DIM,
        layers,
    })
}

/// torch's bicubic kernel (A = -0.75) weights for one fractional offset t.
fn cubic_weights(t: f64) -> [f64; 4] {
    const A: f64 = -0.75;
    let near = |x: f64| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f64| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]
}

/// (out, in) matrix of `F.interpolate(mode='bicubic', align_corners=False)` along one axis
/// (taps beyond the border clamped to it, as torch does).
fn bicubic_matrix(n_in: usize, n_out: usize) -> Vec<f32> {
    let mut m = vec![0f32; n_out * n_in];
    let scale = n_in as f64 / n_out as f64;
    for o in 0..n_out {
        let src = scale * (o as f64 + 0.5) - 0.5;
        let base = src.floor();
        let w = cubic_weights(src - base);
        for (k, wk) in w.iter().enumerate() {
            let i = (base as i64 - 1 + k as i64).clamp(0, n_in as i64 - 1) as usize;
            m[o * n_in + i] += *wk as f32;
        }
    }
    m
}

/// (out, in) matrix of `F.adaptive_avg_pool2d` along one axis.
fn adaptive_pool_matrix(n_in: usize, n_out: usize) -> Vec<f32> {
    let mut m = vec![0f32; n_out * n_in];
    for o in 0..n_out {
        let start = o * n_in / n_out;
        let end = ((o + 1) * n_in).div_ceil(n_out);
        for i in start..end {
            m[o * n_in + i] = 1.0 / (end - start) as f32;
        }
    }
    m
}

/// Applies per-axis matrices to (1, C, H, W): rows (oh, H), cols (ow, W).
fn separable(
    x: &Tensor,
    rows: Vec<f32>,
    cols: Vec<f32>,
    (oh, ow): (usize, usize),
) -> candle_core::Result<Tensor> {
    let (_, c, h, w) = x.dims4()?;
    let dev = x.device();
    let r = Tensor::from_vec(rows, (oh, h), dev)?;
    let ct = Tensor::from_vec(cols, (ow, w), dev)?.t()?.contiguous()?;
    let y = x.reshape((c * h, w))?.matmul(&ct)?.reshape((c, h, ow))?;
    r.broadcast_left(c)?.matmul(&y)?.reshape((1, c, oh, ow))
}

/// 8-bit quantisation (pyiqa reads 8-bit files), / 255, ImageNet normalisation: (1, 3, H, W).
pub fn preprocess(image: &Image, device: &Device) -> Result<Tensor> {
    let (w, h) = (image.width(), image.height());
    let n = w * h;
    let mut planar = vec![0f32; 3 * n];
    for (i, px) in image.data().chunks_exact(3).enumerate() {
        for c in 0..3 {
            let q = (px[c] as f64 * 255.0 + 0.5).floor().clamp(0.0, 255.0) as f32;
            planar[c * n + i] = (q / 255.0 - MEAN[c]) / STD[c];
        }
    }
    Ok(Tensor::from_vec(planar, (1, 3, h, w), device)?)
}

impl TopiqNr {
    /// Loads a pyiqa TOPIQ-NR ResNet-50 checkpoint (`cfanet_nr_koniq_res50-*.pth`, see the
    /// module documentation). Computation is in f32.
    pub fn load(checkpoint: &Path, device: &Device) -> Result<Self> {
        if !checkpoint.is_file() {
            return Err(Error::MissingFile {
                path: checkpoint.to_path_buf(),
                hint: "pyiqa's TOPIQ-NR checkpoint (cfanet_nr_koniq_res50-9a73138b.pth)".into(),
            });
        }
        Self::from_state_dict(read_state_dict(checkpoint)?, checkpoint, device)
    }

    /// Builds the network from a state dict under pyiqa's tensor names (CFANet's, without
    /// `params`/`module.`); `origin` names the source in errors.
    pub fn from_state_dict(
        state_dict: HashMap<String, Tensor>,
        origin: &Path,
        device: &Device,
    ) -> Result<Self> {
        let w = widths(&state_dict, origin)?;
        let vb = VarBuilder::from_tensors(state_dict, DType::F32, device);
        Self::build(&vb, &w).map_err(|e| load_error(origin, e))
    }

    fn build(vb: &VarBuilder, w: &Widths) -> candle_core::Result<Self> {
        let backbone = ResNet50::new(&vb.pp("semantic_model"))?;
        let chans = ResNet50::channels();
        let mut gates = Vec::new();
        let mut reduce = Vec::new();
        let mut self_attn = Vec::new();
        for (i, &c) in chans.iter().enumerate() {
            gates.push(GatedConv::new(&vb.pp(format!("weight_pool.{i}")), c)?);
            reduce.push(Conv::plain(
                vb,
                &format!("dim_reduce.{i}.0"),
                (c, w.dim, 1),
            )?);
            let blk = vb.pp(format!("sa_attn_blks.{i}.layers"));
            self_attn.push(
                (0..w.layers)
                    .map(|l| EncoderLayer::new(&blk.pp(l), w))
                    .collect::<candle_core::Result<Vec<_>>>()?,
            );
        }
        let cross_attn = (0..chans.len() - 1)
            .map(|i| {
                let blk = vb.pp(format!("attn_blks.{i}.layers"));
                (0..w.layers)
                    .map(|l| DecoderLayer::new(&blk.pp(l), w))
                    .collect::<candle_core::Result<Vec<_>>>()
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let s = vb.pp("score_linear");
        let mlp = ScoreMlp {
            n1: candle_nn::layer_norm(w.dim, LN_EPS, s.pp("0"))?,
            l1: candle_nn::linear(w.dim, w.dim, s.pp("1"))?,
            n2: candle_nn::layer_norm(w.dim, LN_EPS, s.pp("3"))?,
            l2: candle_nn::linear(w.dim, w.dim, s.pp("4"))?,
            l3: candle_nn::linear(w.dim, 1, s.pp("6"))?,
        };
        let half = w.dim / 2;
        let h_emb = vb.get((1, half, 32, 1), "h_emb")?;
        let w_emb = vb.get((1, half, 1, 32), "w_emb")?;
        let pos = Tensor::cat(
            &[
                h_emb.broadcast_as((1, half, 32, 32))?,
                w_emb.broadcast_as((1, half, 32, 32))?,
            ],
            1,
        )?
        .contiguous()?;
        Ok(Self {
            backbone,
            gates,
            reduce,
            self_attn,
            cross_attn,
            pool: EncoderLayer::new(&vb.pp("attn_pool"), w)?,
            mlp,
            pos,
            device: vb.device().clone(),
        })
    }

    /// Runs the network; `keep_backbone` keeps the (large) ResNet features in the result.
    pub fn features(&self, image: &Image, keep_backbone: bool) -> Result<TopiqFeatures> {
        let (w, h) = (image.width(), image.height());
        if w < MIN_SIDE || h < MIN_SIDE {
            return Err(Error::Metric {
                metric: "topiq".into(),
                reason: format!(
                    "image {w}x{h} too small: TOPIQ-NR needs at least {MIN_SIDE}x{MIN_SIDE} pixels"
                ),
            });
        }
        let x = preprocess(image, &self.device)?;
        let feats = self.backbone.forward(&x)?;
        let (_, _, th, tw) = feats[feats.len() - 1].dims4()?;
        let mut reduced = vec![None; feats.len()];
        let mut tokens = vec![None; feats.len()];
        for i in (0..feats.len()).rev() {
            let mut t = self.gates[i].forward(&feats[i])?;
            let (_, _, fh, fw) = t.dims4()?;
            if fh > th && fw > tw {
                t = separable(
                    &t,
                    adaptive_pool_matrix(fh, th),
                    adaptive_pool_matrix(fw, tw),
                    (th, tw),
                )?;
            }
            let (_, _, fh, fw) = t.dims4()?;
            let pos = separable(
                &self.pos,
                bicubic_matrix(32, fh),
                bicubic_matrix(32, fw),
                (fh, fw),
            )?;
            let r = self.reduce[i].forward(&t)?.gelu_erf()?;
            let c = r.dim(1)?;
            let pos = pos.reshape((c, fh * fw))?.t()?;
            let mut tok = (r.reshape((c, fh * fw))?.t()? + pos)?.contiguous()?;
            for layer in &self.self_attn[i] {
                tok = layer.forward(&tok)?;
            }
            reduced[i] = Some(r);
            tokens[i] = Some(tok);
        }
        let reduced: Vec<Tensor> = reduced.into_iter().flatten().collect();
        let tokens: Vec<Tensor> = tokens.into_iter().flatten().collect();
        // Coarse to fine: layer4's tokens query layer3, then layer2, ...
        let mut query = tokens[tokens.len() - 1].clone();
        let mut queries = Vec::new();
        for (j, memory) in tokens.iter().rev().skip(1).enumerate() {
            for layer in &self.cross_attn[j] {
                query = layer.forward(&query, memory)?;
            }
            queries.push(query.clone());
        }
        let pooled = self.pool.forward(&query)?.mean_keepdim(0)?;
        let score = self
            .mlp
            .forward(&pooled)?
            .flatten_all()?
            .to_dtype(DType::F64)?
            .to_vec1::<f64>()?[0];
        if !score.is_finite() {
            return Err(Error::Metric {
                metric: "topiq".into(),
                reason: format!("non-finite score {score}"),
            });
        }
        Ok(TopiqFeatures {
            backbone: if keep_backbone { feats } else { Vec::new() },
            reduced,
            tokens,
            queries,
            pooled,
            score,
        })
    }
}

impl Metric for TopiqNr {
    fn name(&self) -> &str {
        "topiq"
    }
    fn higher_is_better(&self) -> bool {
        true
    }
    fn score(&self, image: &Image) -> Result<f64> {
        Ok(self.features(image, false)?.score)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bicubic_matrix_is_identity_at_same_size_and_rows_sum_to_one() {
        let m = bicubic_matrix(32, 32);
        for o in 0..32 {
            for i in 0..32 {
                assert_eq!(m[o * 32 + i], if o == i { 1.0 } else { 0.0 });
            }
        }
        for n in [1, 5, 16, 45] {
            let m = bicubic_matrix(32, n);
            for o in 0..n {
                let s: f32 = m[o * 32..(o + 1) * 32].iter().sum();
                assert!((s - 1.0).abs() < 1e-6, "{n}: row {o} sums to {s}");
            }
        }
        // Halving: output 0 samples at 0.5 (src = 2 * 0.5 - 0.5), taps -1..2 clamped.
        let m = bicubic_matrix(32, 16);
        let w = cubic_weights(0.5);
        assert!((m[0] - (w[0] + w[1]) as f32).abs() < 1e-7);
        assert!((m[1] - w[2] as f32).abs() < 1e-7);
    }

    #[test]
    fn adaptive_pool_bins_overlap_like_torch() {
        // 5 -> 3: bins [0, 2), [1, 4), [3, 5).
        let m = adaptive_pool_matrix(5, 3);
        let row = |o: usize| m[o * 5..o * 5 + 5].to_vec();
        assert_eq!(row(0), vec![0.5, 0.5, 0.0, 0.0, 0.0]);
        let third = 1.0 / 3.0;
        assert_eq!(row(1), vec![0.0, third, third, third, 0.0]);
        assert_eq!(row(2), vec![0.0, 0.0, 0.0, 0.5, 0.5]);
    }
}
