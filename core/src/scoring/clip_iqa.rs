//! CLIP-IQA (Wang et al. 2023): a no-reference quality score from a CLIP model, as the
//! softmax probability of the positive prompt of antonym prompt pairs ("Good photo." /
//! "Bad photo.", ...), at logit scale 100, averaged over the pairs. Higher is better (0..1).
//!
//! The model is a Hugging Face `CLIPModel` folder: `config.json` (with `text_config` and
//! `vision_config`), `model.safetensors` (tensor names as transformers writes them:
//! `vision_model.*`, `text_model.*`, `visual_projection.weight`, `text_projection.weight`)
//! and the tokenizer (`vocab.json` + `merges.txt`, or `tokenizer.json`).
//!
//! Preprocessing is OpenAI CLIP's (as transformers' `CLIPImageProcessor`): the image is
//! quantised to 8 bits, resized so that its shorter side is the model's `image_size`
//! (PIL-style antialiased bicubic, 8-bit intermediate), centre-cropped to a square and
//! normalised with CLIP's mean and std.

use super::Metric;
use crate::diffusion::clip_text::{Activation, EncoderLayer};
use crate::diffusion::clip_text::{ClipTextConfig, ClipTextModel};
use crate::diffusion::tokenizer::ClipTokenizer;
use crate::error::{Error, Result};
use crate::image::Image;
use candle_core::{DType, Device, IndexOp, Module, Tensor, D};
use candle_nn::{LayerNorm, Linear, VarBuilder};
use serde::Deserialize;
use std::path::Path;

/// CLIP's image normalisation mean.
pub const CLIP_MEAN: [f64; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// CLIP's image normalisation std.
pub const CLIP_STD: [f64; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];
/// The antonym prompt pairs (positive first).
pub const PROMPT_PAIRS: [(&str, &str); 3] = [
    ("Good photo.", "Bad photo."),
    ("High quality.", "Low quality."),
    ("Sharp photo.", "Blurry photo."),
];
/// The fixed logit scale of CLIP-IQA.
pub const LOGIT_SCALE: f64 = 100.0;

fn d_act() -> String {
    "quick_gelu".into()
}
fn d_eps() -> f64 {
    1e-5
}
fn d_hidden() -> usize {
    768
}
fn d_inter() -> usize {
    3072
}
fn d_layers() -> usize {
    12
}
fn d_heads() -> usize {
    12
}
fn d_image() -> usize {
    224
}
fn d_patch() -> usize {
    32
}
fn d_channels() -> usize {
    3
}

/// The fields of `vision_config` this implementation reads (defaults: transformers'
/// `CLIPVisionConfig`, i.e. ViT-B/32).
#[derive(Clone, Debug, Deserialize)]
pub struct ClipVisionConfig {
    /// Width.
    #[serde(default = "d_hidden")]
    pub hidden_size: usize,
    /// MLP width.
    #[serde(default = "d_inter")]
    pub intermediate_size: usize,
    /// Encoder layers.
    #[serde(default = "d_layers")]
    pub num_hidden_layers: usize,
    /// Attention heads.
    #[serde(default = "d_heads")]
    pub num_attention_heads: usize,
    /// Input resolution (square).
    #[serde(default = "d_image")]
    pub image_size: usize,
    /// Patch size.
    #[serde(default = "d_patch")]
    pub patch_size: usize,
    /// Input channels.
    #[serde(default = "d_channels")]
    pub num_channels: usize,
    /// `quick_gelu` or `gelu`.
    #[serde(default = "d_act")]
    pub hidden_act: String,
    /// LayerNorm epsilon.
    #[serde(default = "d_eps")]
    pub layer_norm_eps: f64,
}

/// transformers' `CLIPVisionModel` (ViT with a class token), up to the pooled output.
#[derive(Debug)]
pub struct ClipVisionModel {
    config: ClipVisionConfig,
    class_embedding: Tensor,
    patch_embedding: Tensor,
    position_embedding: Tensor,
    pre_ln: LayerNorm,
    layers: Vec<EncoderLayer>,
    post_ln: LayerNorm,
}

impl ClipVisionModel {
    /// Builds the encoder; `vb` is rooted at the file (tensors under `vision_model.`).
    pub fn new(vb: VarBuilder, config: ClipVisionConfig) -> candle_core::Result<Self> {
        let act = Activation::from_name(&config.hidden_act)?;
        if config.hidden_size % config.num_attention_heads != 0 {
            candle_core::bail!("hidden_size not divisible by num_attention_heads");
        }
        if config.patch_size == 0 || config.image_size % config.patch_size != 0 {
            candle_core::bail!("image_size is not a multiple of patch_size");
        }
        let vb = vb.pp("vision_model");
        let (h, e) = (config.hidden_size, config.layer_norm_eps);
        let emb = vb.pp("embeddings");
        let grid = config.image_size / config.patch_size;
        let p = config.patch_size;
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                EncoderLayer::new(
                    vb.pp("encoder.layers").pp(i),
                    h,
                    config.intermediate_size,
                    config.num_attention_heads,
                    e,
                    act,
                )
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Self {
            class_embedding: emb.get(h, "class_embedding")?,
            patch_embedding: emb.get((h, config.num_channels, p, p), "patch_embedding.weight")?,
            position_embedding: emb.get((grid * grid + 1, h), "position_embedding.weight")?,
            pre_ln: candle_nn::layer_norm(h, e, vb.pp("pre_layrnorm"))?,
            post_ln: candle_nn::layer_norm(h, e, vb.pp("post_layernorm"))?,
            layers,
            config,
        })
    }

    /// The config.
    pub fn config(&self) -> &ClipVisionConfig {
        &self.config
    }

    /// `pooler_output` (B, hidden): the post-layer-normed class token, for normalised
    /// pixels (B, C, image_size, image_size).
    pub fn forward(&self, pixels: &Tensor) -> candle_core::Result<Tensor> {
        let c = &self.config;
        let b = pixels.dim(0)?;
        let h = c.hidden_size;
        let patches = pixels
            .conv2d(&self.patch_embedding, 0, c.patch_size, 1, 1)?
            .flatten_from(2)?
            .transpose(1, 2)?; // (B, N, h)
        let cls = self
            .class_embedding
            .reshape((1, 1, h))?
            .broadcast_as((b, 1, h))?
            .to_dtype(patches.dtype())?;
        let mut x = Tensor::cat(&[cls, patches], 1)?.broadcast_add(&self.position_embedding)?;
        x = self.pre_ln.forward(&x)?;
        for l in &self.layers {
            x = l.forward(&x, None)?;
        }
        self.post_ln.forward(&x.i((.., 0, ..))?)
    }
}

/// PIL's bicubic kernel (a = -0.5).
fn cubic(x: f64) -> f64 {
    let a = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * a
    } else {
        0.0
    }
}

/// Per output index: first input index and normalised weights (PIL's antialiased
/// resampling: the kernel is widened by the downscale factor).
fn resample_weights(in_size: usize, out_size: usize) -> Vec<(usize, Vec<f64>)> {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = 2.0 * filterscale;
    (0..out_size)
        .map(|i| {
            let center = (i as f64 + 0.5) * scale;
            let lo = ((center - support + 0.5).floor().max(0.0)) as usize;
            let hi = ((center + support + 0.5).floor() as usize).min(in_size);
            let mut w: Vec<f64> = (lo..hi)
                .map(|j| cubic((j as f64 - center + 0.5) / filterscale))
                .collect();
            let sum: f64 = w.iter().sum();
            if sum != 0.0 {
                w.iter_mut().for_each(|v| *v /= sum);
            }
            (lo, w)
        })
        .collect()
}

fn to_u8(v: f64) -> f32 {
    (v + 0.5).floor().clamp(0.0, 255.0) as f32
}

/// PIL's fixed-point precision for 8-bit resampling.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// The weights in PIL's fixed point (rounded half away from zero).
fn fixed_weights(in_size: usize, out_size: usize) -> Vec<(usize, Vec<i64>)> {
    resample_weights(in_size, out_size)
        .into_iter()
        .map(|(lo, w)| {
            let k = w
                .iter()
                .map(|&v| {
                    let f = v * (1u64 << PRECISION_BITS) as f64;
                    (if f < 0.0 { f - 0.5 } else { f + 0.5 }) as i64
                })
                .collect();
            (lo, k)
        })
        .collect()
}

/// One 8-bit output sample from fixed-point taps.
fn tap(samples: impl Iterator<Item = f32>, k: &[i64]) -> f32 {
    let acc = samples
        .zip(k)
        .fold(1i64 << (PRECISION_BITS - 1), |a, (s, &w)| a + s as i64 * w);
    (acc >> PRECISION_BITS).clamp(0, 255) as f32
}

/// Resizes 8-bit-valued interleaved RGB (values 0..255 as f32) like PIL's
/// `Image.resize(BICUBIC)`: horizontal pass, 8 bits, vertical pass, 8 bits, with PIL's
/// fixed-point arithmetic.
fn resize_bicubic_u8(data: &[f32], w: usize, h: usize, ow: usize, oh: usize) -> Vec<f32> {
    let mut cur = data.to_vec();
    let mut cw = w;
    if ow != w {
        let wts = fixed_weights(w, ow);
        let mut out = vec![0f32; ow * h * 3];
        for y in 0..h {
            for (x, (lo, k)) in wts.iter().enumerate() {
                for c in 0..3 {
                    let row = (0..k.len()).map(|j| cur[(y * cw + lo + j) * 3 + c]);
                    out[(y * ow + x) * 3 + c] = tap(row, k);
                }
            }
        }
        cur = out;
        cw = ow;
    }
    if oh != h {
        let wts = fixed_weights(h, oh);
        let mut out = vec![0f32; cw * oh * 3];
        for (y, (lo, k)) in wts.iter().enumerate() {
            for x in 0..cw {
                for c in 0..3 {
                    let col = (0..k.len()).map(|j| cur[((lo + j) * cw + x) * 3 + c]);
                    out[(y * cw + x) * 3 + c] = tap(col, k);
                }
            }
        }
        cur = out;
    }
    cur
}

/// OpenAI CLIP preprocessing: a (1, 3, size, size) normalised f32 tensor.
pub fn preprocess(image: &Image, size: usize, device: &Device) -> Result<Tensor> {
    let (w, h) = (image.width(), image.height());
    // transformers' get_resize_output_image_size(default_to_square=False): the shorter
    // side becomes `size`, the longer is truncated.
    let (rw, rh) = if w <= h {
        (size, (size as f64 * h as f64 / w as f64) as usize)
    } else {
        ((size as f64 * w as f64 / h as f64) as usize, size)
    };
    if rw < size || rh < size {
        return Err(Error::InvalidImage(format!(
            "{w}x{h} cannot be resized for CLIP"
        )));
    }
    let u8data: Vec<f32> = image
        .data()
        .iter()
        .map(|&v| to_u8(v as f64 * 255.0))
        .collect();
    let resized = if (rw, rh) == (w, h) {
        u8data
    } else {
        resize_bicubic_u8(&u8data, w, h, rw, rh)
    };
    let (top, left) = ((rh - size) / 2, (rw - size) / 2);
    let mut planar = vec![0f32; 3 * size * size];
    for y in 0..size {
        for x in 0..size {
            for c in 0..3 {
                let v = resized[((top + y) * rw + left + x) * 3 + c] / 255.0;
                planar[c * size * size + y * size + x] =
                    (v - CLIP_MEAN[c] as f32) / CLIP_STD[c] as f32;
            }
        }
    }
    Ok(Tensor::from_vec(planar, (1, 3, size, size), device)?)
}

/// The CLIP-IQA metric: a CLIP vision tower and the prompts' text embeddings.
#[derive(Debug)]
pub struct ClipIqa {
    vision: ClipVisionModel,
    visual_projection: Linear,
    /// Unit-normalised prompt embeddings (2 * pairs, projection_dim), positive/negative
    /// interleaved.
    text: Tensor,
    device: Device,
}

fn load_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Weights {
        component: "clip".into(),
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Unit-normalises the rows of a (N, D) tensor.
fn l2_normalize(t: &Tensor) -> candle_core::Result<Tensor> {
    t.broadcast_div(&t.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?)
}

/// transformers' text-config defaults for the fields [`ClipTextConfig`] requires.
fn text_config(v: Option<&serde_json::Value>, path: &Path) -> Result<ClipTextConfig> {
    let mut obj = v.and_then(|v| v.as_object().cloned()).unwrap_or_default();
    for (k, d) in [
        ("vocab_size", 49408),
        ("hidden_size", 512),
        ("intermediate_size", 2048),
        ("num_hidden_layers", 12),
        ("num_attention_heads", 8),
        ("max_position_embeddings", 77),
    ] {
        obj.entry(k).or_insert_with(|| d.into());
    }
    serde_json::from_value(serde_json::Value::Object(obj)).map_err(|e| Error::InvalidFile {
        path: path.to_path_buf(),
        reason: format!("text_config: {e}"),
    })
}

impl ClipIqa {
    /// Loads a Hugging Face `CLIPModel` folder (see the module documentation) and embeds
    /// the prompts. Computation is in f32.
    pub fn load(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = dir.as_ref();
        let cfg_path = dir.join("config.json");
        let weights = dir.join("model.safetensors");
        for (p, hint) in [
            (&cfg_path, "the CLIPModel config (Hugging Face layout)"),
            (
                &weights,
                "the CLIPModel weights (e.g. openai/clip-vit-base-patch32)",
            ),
        ] {
            if !p.is_file() {
                return Err(Error::MissingFile {
                    path: p.clone(),
                    hint: hint.into(),
                });
            }
        }
        let cfg: serde_json::Value = crate::diffusion::config::read_json(&cfg_path)?;
        let text_cfg = text_config(cfg.get("text_config"), &cfg_path)?;
        let vision_cfg: ClipVisionConfig = serde_json::from_value(
            cfg.get("vision_config")
                .cloned()
                .unwrap_or_else(|| serde_json::json!({})),
        )
        .map_err(|e| Error::InvalidFile {
            path: cfg_path.clone(),
            reason: format!("vision_config: {e}"),
        })?;
        let proj = cfg
            .get("projection_dim")
            .and_then(|v| v.as_u64())
            .unwrap_or(512) as usize;
        let tokenizer = ClipTokenizer::from_folder(dir, text_cfg.max_position_embeddings)?;
        let vb = crate::diffusion::weights::WeightFiles::open(std::slice::from_ref(&weights))
            .map_err(|e| load_error(&weights, e))?
            .var_builder(DType::F32, device);
        let (th, vh) = (text_cfg.hidden_size, vision_cfg.hidden_size);
        let text_model =
            ClipTextModel::new(vb.clone(), text_cfg).map_err(|e| load_error(&weights, e))?;
        let text_projection = candle_nn::linear_no_bias(th, proj, vb.pp("text_projection"))
            .map_err(|e| load_error(&weights, e))?;
        let vision =
            ClipVisionModel::new(vb.clone(), vision_cfg).map_err(|e| load_error(&weights, e))?;
        let visual_projection = candle_nn::linear_no_bias(vh, proj, vb.pp("visual_projection"))
            .map_err(|e| load_error(&weights, e))?;

        // Prompt embeddings: the hidden state at the first <end> token (the causal mask
        // makes it independent of the padding after it), projected and normalised.
        let max_len = tokenizer.max_len();
        let mut pooled = Vec::new();
        for (pos, neg) in PROMPT_PAIRS {
            for prompt in [pos, neg] {
                let ids = tokenizer.encode(prompt);
                let eos = tokenizer.tokenize(prompt).len().min(max_len - 2) + 1;
                let ids = Tensor::from_vec(ids, (1, max_len), device)?;
                let hidden = text_model.forward(&ids)?;
                pooled.push(hidden.i((.., eos, ..))?);
            }
        }
        let text = l2_normalize(&text_projection.forward(&Tensor::cat(&pooled, 0)?)?)?;
        Ok(Self {
            vision,
            visual_projection,
            text,
            device: device.clone(),
        })
    }

    /// The unit-normalised prompt embeddings (2 x pairs, projection_dim), in the order of
    /// [`PROMPT_PAIRS`], positive before negative.
    pub fn text_embeddings(&self) -> &Tensor {
        &self.text
    }

    /// The unit-normalised image embedding (1, projection_dim).
    pub fn image_embedding(&self, image: &Image) -> Result<Tensor> {
        let pixels = preprocess(image, self.vision.config().image_size, &self.device)?;
        let pooled = self.vision.forward(&pixels)?;
        Ok(l2_normalize(&self.visual_projection.forward(&pooled)?)?)
    }

    /// Per prompt pair, the probability of the positive prompt.
    pub fn pair_scores(&self, image: &Image) -> Result<Vec<f64>> {
        let img = self.image_embedding(image)?;
        let logits = (img.matmul(&self.text.t()?)? * LOGIT_SCALE)?
            .reshape((PROMPT_PAIRS.len(), 2))?
            .to_dtype(DType::F64)?;
        let probs = candle_nn::ops::softmax(&logits, D::Minus1)?;
        Ok(probs.i((.., 0))?.to_vec1::<f64>()?)
    }
}

impl Metric for ClipIqa {
    fn name(&self) -> &str {
        "clipiqa"
    }
    fn higher_is_better(&self) -> bool {
        true
    }
    fn score(&self, image: &Image) -> Result<f64> {
        let s = self.pair_scores(image)?;
        Ok(s.iter().sum::<f64>() / s.len() as f64)
    }
}
