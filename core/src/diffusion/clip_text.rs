//! transformers' `CLIPTextModel` (SD's text encoder). Own implementation because SD 2.x's
//! OpenCLIP encoder uses exact GELU, which candle's CLIP text model cannot express.

use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};
use serde::Deserialize;

fn act() -> String {
    "quick_gelu".into()
}
fn eps() -> f64 {
    1e-5
}
fn positions() -> usize {
    77
}
fn eos() -> u32 {
    49407
}

/// The fields of `text_encoder/config.json` this implementation reads.
#[derive(Clone, Debug, Deserialize)]
pub struct ClipTextConfig {
    /// Token vocabulary size.
    pub vocab_size: usize,
    /// Width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Maximum sequence length (77).
    #[serde(default = "positions")]
    pub max_position_embeddings: usize,
    /// `quick_gelu` (OpenAI CLIP, SD 1.x) or `gelu` (OpenCLIP, SD 2.x).
    #[serde(default = "act")]
    pub hidden_act: String,
    /// LayerNorm epsilon.
    #[serde(default = "eps")]
    pub layer_norm_eps: f64,
    /// Where the pooled state is read: 2 (the configs written before transformers PR
    /// #24773, e.g. FLUX's / SD3's CLIP-L) means at the largest id, any other value at the
    /// first occurrence of this id.
    #[serde(default = "eos")]
    pub eos_token_id: u32,
    /// Width of `text_projection` (`CLIPTextModelWithProjection`, SD3's CLIP-L/G).
    #[serde(default)]
    pub projection_dim: Option<usize>,
}

impl ClipTextConfig {
    /// Bounds every size read from the config (see [`super::config`]).
    pub fn check_sizes(&self, path: &std::path::Path) -> crate::Result<()> {
        use super::config::{
            check_divides, check_finite, check_size, MAX_COUNT, MAX_LENGTH, MAX_WIDTH,
        };
        check_size(path, "vocab_size", self.vocab_size, MAX_LENGTH)?;
        check_size(path, "hidden_size", self.hidden_size, MAX_WIDTH)?;
        check_size(
            path,
            "intermediate_size",
            self.intermediate_size,
            4 * MAX_WIDTH,
        )?;
        check_size(path, "num_hidden_layers", self.num_hidden_layers, MAX_COUNT)?;
        check_size(
            path,
            "num_attention_heads",
            self.num_attention_heads,
            MAX_COUNT,
        )?;
        check_divides(
            path,
            "num_attention_heads",
            self.num_attention_heads,
            self.hidden_size,
        )?;
        check_size(
            path,
            "max_position_embeddings",
            self.max_position_embeddings,
            MAX_WIDTH,
        )?;
        check_finite(path, "layer_norm_eps", self.layer_norm_eps)
    }
}

/// The MLP activation of a CLIP tower.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Activation {
    QuickGelu,
    Gelu,
}

impl Activation {
    /// `quick_gelu` (OpenAI CLIP) or `gelu` (OpenCLIP: exact erf GELU).
    pub(crate) fn from_name(name: &str) -> Result<Self> {
        match name {
            "quick_gelu" => Ok(Activation::QuickGelu),
            "gelu" => Ok(Activation::Gelu),
            other => candle_core::bail!("unsupported CLIP activation {other:?}"),
        }
    }
}

/// One pre-norm transformer layer of transformers' `CLIPEncoder`, shared by the text and
/// the vision towers (`encoder.layers.N.*`).
#[derive(Debug)]
pub(crate) struct EncoderLayer {
    ln1: LayerNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    ln2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    heads: usize,
    act: Activation,
}

impl EncoderLayer {
    pub(crate) fn new(
        l: VarBuilder,
        hidden: usize,
        intermediate: usize,
        heads: usize,
        eps: f64,
        act: Activation,
    ) -> Result<Self> {
        if hidden % heads != 0 {
            candle_core::bail!("hidden_size not divisible by num_attention_heads");
        }
        Ok(Self {
            ln1: candle_nn::layer_norm(hidden, eps, l.pp("layer_norm1"))?,
            q: candle_nn::linear(hidden, hidden, l.pp("self_attn.q_proj"))?,
            k: candle_nn::linear(hidden, hidden, l.pp("self_attn.k_proj"))?,
            v: candle_nn::linear(hidden, hidden, l.pp("self_attn.v_proj"))?,
            out: candle_nn::linear(hidden, hidden, l.pp("self_attn.out_proj"))?,
            ln2: candle_nn::layer_norm(hidden, eps, l.pp("layer_norm2"))?,
            fc1: candle_nn::linear(hidden, intermediate, l.pp("mlp.fc1"))?,
            fc2: candle_nn::linear(intermediate, hidden, l.pp("mlp.fc2"))?,
            heads,
            act,
        })
    }

    /// `x` (B, L, hidden); `mask` is added to the attention scores (the text tower's
    /// causal mask; the vision tower has none).
    pub(crate) fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (b, len, hidden) = x.dims3()?;
        let d = hidden / self.heads;
        let h = self.ln1.forward(x)?;
        let split = |t: Tensor| -> Result<Tensor> {
            t.reshape((b, len, self.heads, d))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split((self.q.forward(&h)? * (1.0 / (d as f64).sqrt()))?)?;
        let k = split(self.k.forward(&h)?)?;
        let v = split(self.v.forward(&h)?)?;
        let mut scores = q.matmul(&k.t()?)?;
        if let Some(m) = mask {
            scores = scores.broadcast_add(m)?;
        }
        let probs = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let a = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((b, len, hidden))?;
        let x = (self.out.forward(&a)? + x)?;
        let h = self.fc1.forward(&self.ln2.forward(&x)?)?;
        let h = match self.act {
            Activation::QuickGelu => (&h * candle_nn::ops::sigmoid(&(&h * 1.702)?)?)?,
            Activation::Gelu => h.gelu_erf()?,
        };
        self.fc2.forward(&h)? + x
    }
}

/// A tensor present in every transformers 4.x `CLIPTextModel` checkpoint; its absence means
/// the 5.x layout without the `text_model.` prefix.
const TEXT_MODEL_PROBE: &str = "text_model.embeddings.token_embedding.weight";

/// The text transformer.
#[derive(Debug)]
pub struct ClipTextModel {
    config: ClipTextConfig,
    token: Embedding,
    position: Embedding,
    layers: Vec<EncoderLayer>,
    final_ln: LayerNorm,
}

impl ClipTextModel {
    /// Builds the encoder; `vb` is rooted at the file. Both layouts of `CLIPTextModel`
    /// checkpoints load: transformers 4.x writes the tensors under `text_model.`,
    /// transformers 5.x without that prefix (`embeddings.…`, `encoder.layers.N.…`,
    /// `final_layer_norm.…`).
    pub fn new(vb: VarBuilder, config: ClipTextConfig) -> Result<Self> {
        let act = Activation::from_name(&config.hidden_act)?;
        let vb = if vb.contains_tensor(TEXT_MODEL_PROBE) {
            vb.pp("text_model")
        } else {
            vb
        };
        let (h, e) = (config.hidden_size, config.layer_norm_eps);
        let emb = vb.pp("embeddings");
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
            .collect::<Result<_>>()?;
        Ok(Self {
            token: candle_nn::embedding(config.vocab_size, h, emb.pp("token_embedding"))?,
            position: candle_nn::embedding(
                config.max_position_embeddings,
                h,
                emb.pp("position_embedding"),
            )?,
            final_ln: candle_nn::layer_norm(h, e, vb.pp("final_layer_norm"))?,
            layers,
            config,
        })
    }

    /// Reads a `text_encoder` folder (config.json + `model` safetensors).
    pub fn load(
        dir: &std::path::Path,
        device: &Device,
        dtype: DType,
        variant: super::sd::Variant,
    ) -> crate::Result<Self> {
        load_folder(dir, device, dtype, variant, Self::new)
    }

    /// The config.
    pub fn config(&self) -> &ClipTextConfig {
        &self.config
    }

    /// `last_hidden_state` (B, L, hidden) for token ids (B, L), with the causal mask.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        Ok(self.forward_all(ids)?.last)
    }

    /// All the states the SD3 and FLUX pipelines read, for token ids (B, L).
    pub fn forward_all(&self, ids: &Tensor) -> Result<ClipTextOutput> {
        let (_, len) = ids.dims2()?;
        let dev = ids.device();
        let pos = Tensor::arange(0u32, len as u32, dev)?;
        let mut x = self
            .token
            .forward(ids)?
            .broadcast_add(&self.position.forward(&pos)?)?;
        let mask = causal_mask(len, x.dtype(), dev)?;
        // hidden_states[-2] is the input of the last layer (the embeddings for one layer).
        let mut penultimate = x.clone();
        for (i, l) in self.layers.iter().enumerate() {
            if i + 1 == self.layers.len() {
                penultimate = x.clone();
            }
            x = l.forward(&x, Some(&mask))?;
        }
        let last = self.final_ln.forward(&x)?;
        let pooled = self.pool(&last, ids)?;
        Ok(ClipTextOutput {
            last,
            penultimate,
            pooled,
        })
    }

    /// transformers' `pooler_output`: the final state at the eos position of each row.
    fn pool(&self, last: &Tensor, ids: &Tensor) -> Result<Tensor> {
        let rows = ids.to_dtype(DType::U32)?.to_vec2::<u32>()?;
        let eos = self.config.eos_token_id;
        let at: Vec<u32> = rows
            .iter()
            .map(|r| {
                let pos = if eos == 2 {
                    // torch's argmax: the first maximum.
                    let max = r.iter().copied().max().unwrap_or(0);
                    r.iter().position(|&v| v == max)
                } else {
                    r.iter().position(|&v| v == eos)
                };
                pos.unwrap_or(0) as u32
            })
            .collect();
        let (b, _, hidden) = last.dims3()?;
        let index = Tensor::from_vec(at, (b, 1, 1), last.device())?.repeat((1, 1, hidden))?;
        last.gather(&index, 1)?.squeeze(1)
    }
}

/// The outputs of [`ClipTextModel::forward_all`].
#[derive(Debug, Clone)]
pub struct ClipTextOutput {
    /// `last_hidden_state` (B, L, hidden), after the final LayerNorm (SD 1/2, FLUX unused).
    pub last: Tensor,
    /// `hidden_states[-2]` (B, L, hidden), no final LayerNorm (SD3's per-token states).
    pub penultimate: Tensor,
    /// `pooler_output` (B, hidden): FLUX's pooled CLIP-L vector.
    pub pooled: Tensor,
}

/// transformers' `CLIPTextModelWithProjection` (SD3's CLIP-L and CLIP-G): the text model and
/// `text_projection` (no bias) of the pooled state.
#[derive(Debug)]
pub struct ClipTextModelWithProjection {
    text: ClipTextModel,
    projection: Linear,
}

impl ClipTextModelWithProjection {
    /// Builds it; `vb` is rooted at the file (`text_model.…`, `text_projection.weight`).
    /// The config must have `projection_dim`.
    pub fn new(vb: VarBuilder, config: ClipTextConfig) -> Result<Self> {
        let Some(dim) = config.projection_dim else {
            candle_core::bail!("CLIPTextModelWithProjection config without projection_dim")
        };
        let hidden = config.hidden_size;
        Ok(Self {
            projection: candle_nn::linear_no_bias(hidden, dim, vb.pp("text_projection"))?,
            text: ClipTextModel::new(vb, config)?,
        })
    }

    /// Reads a `text_encoder` folder (config.json + `model` safetensors).
    pub fn load(
        dir: &std::path::Path,
        device: &Device,
        dtype: DType,
        variant: super::sd::Variant,
    ) -> crate::Result<Self> {
        load_folder(dir, device, dtype, variant, Self::new)
    }

    /// The text model.
    pub fn text_model(&self) -> &ClipTextModel {
        &self.text
    }

    /// The states, and `text_embeds` (B, projection_dim): the projected pooled state.
    pub fn forward(&self, ids: &Tensor) -> Result<(ClipTextOutput, Tensor)> {
        let out = self.text.forward_all(ids)?;
        let embeds = self.projection.forward(&out.pooled)?;
        Ok((out, embeds))
    }
}

/// A `text_encoder` folder built by `build` (with or without the projection).
fn load_folder<T>(
    dir: &std::path::Path,
    device: &Device,
    dtype: DType,
    variant: super::sd::Variant,
    build: impl FnOnce(VarBuilder, ClipTextConfig) -> Result<T>,
) -> crate::Result<T> {
    super::sd::load_folder(
        dir,
        "text_encoder",
        "model",
        variant,
        device,
        dtype,
        super::sd::Read::Data,
        |c: &ClipTextConfig, path| c.check_sizes(path),
        build,
    )
}

fn causal_mask(len: usize, dtype: DType, dev: &Device) -> Result<Tensor> {
    let v: Vec<f32> = (0..len)
        .flat_map(|i| (0..len).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_vec(v, (1, 1, len, len), dev)?.to_dtype(dtype)
}
