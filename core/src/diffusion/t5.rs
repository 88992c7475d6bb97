//! transformers' `T5EncoderModel` as FLUX.1 and SD3 use it (`text_encoder_2` / `_3`: T5 v1.1
//! XXL): RMS LayerNorm (no mean, no bias), unscaled q·k plus a learned relative-position bias
//! computed by the first layer and shared by all, gated-GELU feed-forward
//! (`DenseReluDense.wi_0/wi_1/wo`). Tensor names are transformers'.

use crate::ops::Linear;
use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::{Embedding, VarBuilder};
use serde::Deserialize;

fn eps() -> f64 {
    1e-6
}
fn buckets() -> usize {
    32
}
fn distance() -> usize {
    128
}
fn gated_gelu() -> String {
    "gated-gelu".into()
}

/// The fields of `text_encoder_2/config.json` this implementation reads.
#[derive(Clone, Debug, Deserialize)]
pub struct T5Config {
    /// Token vocabulary size.
    pub vocab_size: usize,
    /// Width.
    pub d_model: usize,
    /// Width of one attention head.
    pub d_kv: usize,
    /// Feed-forward width.
    pub d_ff: usize,
    /// Encoder layers.
    pub num_layers: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// Relative-position buckets (half per direction: the encoder is bidirectional).
    #[serde(default = "buckets")]
    pub relative_attention_num_buckets: usize,
    /// Distances from this on share the last bucket.
    #[serde(default = "distance")]
    pub relative_attention_max_distance: usize,
    /// RMS LayerNorm epsilon.
    #[serde(default = "eps")]
    pub layer_norm_epsilon: f64,
    /// `gated-gelu` (T5 v1.1, the only kind FLUX/SD3 ship); `relu` (T5 v1.0) is refused.
    #[serde(default = "gated_gelu")]
    pub feed_forward_proj: String,
}

impl T5Config {
    /// Bounds every size read from the config (see [`super::config`]).
    pub fn check_sizes(&self, path: &std::path::Path) -> crate::Result<()> {
        use super::config::{check_finite, check_size, MAX_COUNT, MAX_LENGTH, MAX_WIDTH};
        check_size(path, "vocab_size", self.vocab_size, MAX_LENGTH)?;
        check_size(path, "d_model", self.d_model, MAX_WIDTH)?;
        check_size(path, "d_kv", self.d_kv, MAX_WIDTH)?;
        check_size(path, "d_ff", self.d_ff, 4 * MAX_WIDTH)?;
        check_size(path, "num_layers", self.num_layers, MAX_COUNT)?;
        check_size(path, "num_heads", self.num_heads, MAX_COUNT)?;
        check_size(
            path,
            "relative_attention_num_buckets",
            self.relative_attention_num_buckets,
            MAX_COUNT,
        )?;
        check_size(
            path,
            "relative_attention_max_distance",
            self.relative_attention_max_distance,
            MAX_LENGTH,
        )?;
        if self.relative_attention_num_buckets < 4 {
            return Err(crate::Error::InvalidFile {
                path: path.to_path_buf(),
                reason: "relative_attention_num_buckets must be at least 4".into(),
            });
        }
        if self.feed_forward_proj != "gated-gelu" {
            return Err(crate::Error::InvalidFile {
                path: path.to_path_buf(),
                reason: format!(
                    "feed_forward_proj {:?}: only T5 v1.1's \"gated-gelu\" is supported",
                    self.feed_forward_proj
                ),
            });
        }
        check_finite(path, "layer_norm_epsilon", self.layer_norm_epsilon)
    }
}

/// T5's LayerNorm: scales by the root mean square (no mean subtraction, no bias), computed
/// in f32 whatever the weights' dtype, as transformers does.
#[derive(Debug)]
struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    fn new(vb: VarBuilder, dim: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: vb.get(dim, "weight")?,
            eps,
        })
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let xf = x.to_dtype(DType::F32)?;
        let var = xf.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = xf.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        normed
            .to_dtype(self.weight.dtype())?
            .broadcast_mul(&self.weight)
    }
}

/// The bidirectional relative-position bucket of `j - i` (transformers'
/// `T5Attention._relative_position_bucket`): half the buckets per direction; distances below
/// a quarter of the buckets exact, larger ones log-spaced up to `max_distance`. Computed in
/// f32 like torch, so the bucket edges fall where transformers' do.
pub fn relative_bucket(relative: i64, num_buckets: usize, max_distance: usize) -> usize {
    let half = num_buckets / 2;
    let base = if relative > 0 { half } else { 0 };
    let n = relative.unsigned_abs() as usize;
    let max_exact = half / 2;
    if n < max_exact {
        return base + n;
    }
    let scale = ((max_distance as f64) / (max_exact as f64)).ln() as f32;
    let large = ((n as f32) / (max_exact as f32)).ln() / scale * ((half - max_exact) as f32);
    base + (max_exact + large as usize).min(half - 1)
}

#[derive(Debug)]
struct Layer {
    attn_norm: RmsNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    ff_norm: RmsNorm,
    wi_0: Linear,
    wi_1: Linear,
    wo: Linear,
}

impl Layer {
    fn new(vb: VarBuilder, c: &T5Config) -> Result<Self> {
        let (a, f) = (vb.pp("layer.0"), vb.pp("layer.1"));
        let inner = c.num_heads * c.d_kv;
        let lin = |vb: VarBuilder, i, o| Linear::load(vb, i, o, false);
        let sa = a.pp("SelfAttention");
        let ff = f.pp("DenseReluDense");
        Ok(Self {
            attn_norm: RmsNorm::new(a.pp("layer_norm"), c.d_model, c.layer_norm_epsilon)?,
            q: lin(sa.pp("q"), c.d_model, inner)?,
            k: lin(sa.pp("k"), c.d_model, inner)?,
            v: lin(sa.pp("v"), c.d_model, inner)?,
            o: lin(sa.pp("o"), inner, c.d_model)?,
            ff_norm: RmsNorm::new(f.pp("layer_norm"), c.d_model, c.layer_norm_epsilon)?,
            wi_0: lin(ff.pp("wi_0"), c.d_model, c.d_ff)?,
            wi_1: lin(ff.pp("wi_1"), c.d_model, c.d_ff)?,
            wo: lin(ff.pp("wo"), c.d_ff, c.d_model)?,
        })
    }

    /// `x` (B, L, d_model); `bias` (1, heads, L, L) added to the unscaled scores.
    fn forward(&self, x: &Tensor, bias: &Tensor, heads: usize, d_kv: usize) -> Result<Tensor> {
        let (b, len, _) = x.dims3()?;
        let h = self.attn_norm.forward(x)?;
        let split = |t: Tensor| -> Result<Tensor> {
            t.reshape((b, len, heads, d_kv))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split(self.q.forward(&h)?)?;
        let k = split(self.k.forward(&h)?)?;
        let v = split(self.v.forward(&h)?)?;
        // No 1/sqrt(d) scaling: T5 folds it into the weights' initialisation.
        let scores = q.matmul(&k.t()?)?.broadcast_add(bias)?;
        // Softmax in f32 as transformers does (`softmax(scores.float())`).
        let probs =
            candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(v.dtype())?;
        let a = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((b, len, heads * d_kv))?;
        let x = self.o.forward_add(&a, x)?;
        let h = self.ff_norm.forward(&x)?;
        // gelu_new is the tanh approximation (candle's `gelu`).
        let g = (self.wi_0.forward(&h)?.gelu()? * self.wi_1.forward(&h)?)?;
        self.wo.forward_add(&g, &x)
    }
}

/// The encoder.
#[derive(Debug)]
pub struct T5Encoder {
    config: T5Config,
    shared: Embedding,
    relative_bias: Embedding,
    layers: Vec<Layer>,
    final_norm: RmsNorm,
}

impl T5Encoder {
    /// Builds the encoder; `vb` is rooted at the file (`shared.weight`, `encoder.…`).
    pub fn new(vb: VarBuilder, config: T5Config) -> Result<Self> {
        let e = vb.pp("encoder");
        let layers = (0..config.num_layers)
            .map(|i| Layer::new(e.pp("block").pp(i), &config))
            .collect::<Result<_>>()?;
        Ok(Self {
            shared: candle_nn::embedding(config.vocab_size, config.d_model, vb.pp("shared"))?,
            // Only the first layer has the table; transformers passes its bias on.
            relative_bias: candle_nn::embedding(
                config.relative_attention_num_buckets,
                config.num_heads,
                e.pp("block.0.layer.0.SelfAttention.relative_attention_bias"),
            )?,
            final_norm: RmsNorm::new(
                e.pp("final_layer_norm"),
                config.d_model,
                config.layer_norm_epsilon,
            )?,
            layers,
            config,
        })
    }

    /// Reads a `text_encoder_2` folder (config.json + `model` safetensors, one file or the
    /// shards of `model.safetensors.index.json` as the FLUX/SD3 repos ship it).
    pub fn load(
        dir: &std::path::Path,
        device: &Device,
        dtype: DType,
        variant: super::sd::Variant,
    ) -> crate::Result<Self> {
        super::sd::load_folder(
            dir,
            "text_encoder_2",
            "model",
            variant,
            device,
            dtype,
            super::sd::Read::Data,
            |c: &T5Config, path| c.check_sizes(path),
            Self::new,
        )
    }

    /// The config.
    pub fn config(&self) -> &T5Config {
        &self.config
    }

    /// The (1, heads, L, L) position bias of a sequence of `len` tokens.
    fn position_bias(&self, len: usize, dtype: DType, dev: &Device) -> Result<Tensor> {
        let c = &self.config;
        let ids: Vec<u32> = (0..len as i64)
            .flat_map(|i| {
                (0..len as i64).map(move |j| {
                    relative_bucket(
                        j - i,
                        c.relative_attention_num_buckets,
                        c.relative_attention_max_distance,
                    ) as u32
                })
            })
            .collect();
        let ids = Tensor::from_vec(ids, (len, len), dev)?;
        self.relative_bias
            .forward(&ids)?
            .permute((2, 0, 1))?
            .unsqueeze(0)?
            .to_dtype(dtype)
    }

    /// `last_hidden_state` (B, L, d_model) for token ids (B, L). No attention mask: FLUX's and
    /// SD3's pipelines encode the padded ids without one, so the padding is attended to.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let (_, len) = ids.dims2()?;
        let mut x = self.shared.forward(ids)?;
        let bias = self.position_bias(len, x.dtype(), ids.device())?;
        for l in &self.layers {
            x = l.forward(&x, &bias, self.config.num_heads, self.config.d_kv)?;
        }
        self.final_norm.forward(&x)
    }
}
