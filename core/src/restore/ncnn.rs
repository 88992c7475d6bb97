//! A reader for ncnn model files (`.param` text graph + `.bin` weights) and a candle
//! executor for the layer types that restoration networks exported to ncnn use.
//!
//! Formats (learned from ncnn's documentation of its param/bin files):
//! - `.param`: the magic `7767517`, then `layer_count blob_count`, then one line per layer:
//!   `Type name bottom_count top_count bottom... top... k=v...`. A value with a `.`, `e` or
//!   `E` is a float, otherwise an int; a negative key `-233xx` marks an array parameter
//!   `xx` written as `count,v1,v2,...`.
//! - `.bin`: the layers' weights back to back in layer order, no names. Each layer reads
//!   what it needs: a Convolution reads its kernel as a *tagged* blob (a 4-byte tag, then
//!   the data: tag 0 = f32, `0x01306B47` = f16 padded to 4 bytes) and then its bias as raw
//!   f32; a PReLU reads its slopes as raw f32. Other tags (int8, the quantised table
//!   forms) are refused with an error, as are trailing bytes after the last layer (which
//!   would mean the graph and the weights disagree).
//!
//! Blobs are (1, C, H, W) tensors; ncnn's channel axis 0 is tensor axis 1. A layer type
//! this module does not implement is an [`Error::Unsupported`] at load time (its weights
//! could not even be skipped), never a panic.

use crate::error::{Error, Result};
use crate::ops::Conv;
use candle_core::{Device, Module, Tensor};
use candle_nn::{Conv2d, Conv2dConfig};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The first line of every ncnn `.param` file.
pub const PARAM_MAGIC: u32 = 7767517;
/// `.bin` tag of an f16 blob.
pub const TAG_F16: u32 = 0x0130_6B47;
/// `.bin` tag of an int8 blob (not supported).
pub const TAG_INT8: u32 = 0x000D_4B38;
/// Largest side a resize may produce (guards against absurd scales in a param file).
const MAX_SIDE: usize = 1 << 17;

/// One parameter value of a layer line.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamValue {
    /// A value written without `.`/`e`.
    Int(i32),
    /// A value written with `.` or an exponent.
    Float(f32),
    /// An array parameter (`-233xx=n,...`), each element an int or a float.
    Array(Vec<ParamValue>),
}

impl ParamValue {
    fn as_f32(&self) -> Option<f32> {
        match *self {
            ParamValue::Int(i) => Some(i as f32),
            ParamValue::Float(f) => Some(f),
            ParamValue::Array(_) => None,
        }
    }
}

/// The `k=v` parameters of one layer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParamDict(pub HashMap<i32, ParamValue>);

/// One layer line of a `.param` file.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerDef {
    /// Layer type (`Convolution`, `Interp`, ...).
    pub kind: String,
    /// Layer name (unique in the graph).
    pub name: String,
    /// Input blob names.
    pub bottoms: Vec<String>,
    /// Output blob names.
    pub tops: Vec<String>,
    /// Parameters.
    pub params: ParamDict,
}

impl LayerDef {
    fn err(&self, reason: impl std::fmt::Display) -> Error {
        Error::Unsupported {
            path: PathBuf::from(format!("layer {} ({})", self.name, self.kind)),
            reason: reason.to_string(),
        }
    }

    /// Int parameter `id` that must be >= 0 (a size or count), or `default` when absent.
    pub fn size(&self, id: i32, default: usize) -> Result<usize> {
        let v = self.int(id, i32::try_from(default).unwrap_or(i32::MAX))?;
        usize::try_from(v).map_err(|_| self.err(format!("parameter {id} is negative ({v})")))
    }

    /// Int parameter `id`, or `default` when absent.
    pub fn int(&self, id: i32, default: i32) -> Result<i32> {
        match self.params.0.get(&id) {
            None => Ok(default),
            Some(ParamValue::Int(i)) => Ok(*i),
            Some(v) => Err(self.err(format!("parameter {id} should be an int, is {v:?}"))),
        }
    }

    /// Float parameter `id` (an int value is accepted), or `default` when absent.
    pub fn float(&self, id: i32, default: f32) -> Result<f32> {
        match self.params.0.get(&id) {
            None => Ok(default),
            Some(v) => v
                .as_f32()
                .ok_or_else(|| self.err(format!("parameter {id} should be a number, is {v:?}"))),
        }
    }

    /// Array parameter `id` as floats (empty when absent).
    pub fn floats(&self, id: i32) -> Result<Vec<f32>> {
        match self.params.0.get(&id) {
            None => Ok(Vec::new()),
            Some(ParamValue::Array(a)) => a
                .iter()
                .map(|v| v.as_f32().ok_or_else(|| self.err("nested array")))
                .collect(),
            Some(v) => Err(self.err(format!("parameter {id} should be an array, is {v:?}"))),
        }
    }
}

fn parse_number(s: &str) -> Option<ParamValue> {
    if s.contains(['.', 'e', 'E']) {
        s.parse::<f32>().ok().map(ParamValue::Float)
    } else {
        s.parse::<i32>().ok().map(ParamValue::Int)
    }
}

/// Parses the text of a `.param` file; `path` only names it in errors.
pub fn parse_param(text: &str, path: &Path) -> Result<Vec<LayerDef>> {
    let bad = |line: usize, reason: String| Error::InvalidFile {
        path: path.to_path_buf(),
        reason: format!("line {line}: {reason}"),
    };
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty());
    let (n, magic) = lines.next().ok_or_else(|| bad(1, "empty file".into()))?;
    if magic.parse::<u32>().ok() != Some(PARAM_MAGIC) {
        return Err(bad(
            n,
            format!("not an ncnn param file (magic {magic:?}, want {PARAM_MAGIC})"),
        ));
    }
    let (n, counts) = lines
        .next()
        .ok_or_else(|| bad(2, "missing layer/blob counts".into()))?;
    let counts: Vec<usize> = counts
        .split_whitespace()
        .map(|t| t.parse().map_err(|_| bad(n, format!("bad count {t:?}"))))
        .collect::<Result<_>>()?;
    let [layer_count, _blob_count] = counts[..] else {
        return Err(bad(n, "want `layer_count blob_count`".into()));
    };
    let mut layers = Vec::with_capacity(layer_count);
    for (n, line) in lines {
        let mut tok = line.split_whitespace();
        let mut next = |what: &str| {
            tok.next()
                .ok_or_else(|| bad(n, format!("missing {what}")))
                .map(str::to_string)
        };
        let kind = next("layer type")?;
        let name = next("layer name")?;
        let nb: usize = next("bottom count")?
            .parse()
            .map_err(|_| bad(n, "bad bottom count".into()))?;
        let nt: usize = next("top count")?
            .parse()
            .map_err(|_| bad(n, "bad top count".into()))?;
        let bottoms = (0..nb)
            .map(|_| next("bottom"))
            .collect::<Result<Vec<_>>>()?;
        let tops = (0..nt).map(|_| next("top")).collect::<Result<Vec<_>>>()?;
        let mut params = ParamDict::default();
        for kv in tok {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| bad(n, format!("parameter {kv:?} is not k=v")))?;
            let k: i32 = k
                .parse()
                .map_err(|_| bad(n, format!("parameter key {k:?}")))?;
            let value = if k <= -23300 {
                let mut items = v.split(',');
                let count: usize = items
                    .next()
                    .and_then(|c| c.parse().ok())
                    .ok_or_else(|| bad(n, format!("array parameter {kv:?}: no count")))?;
                let vals = items
                    .map(|s| parse_number(s).ok_or_else(|| bad(n, format!("number {s:?}"))))
                    .collect::<Result<Vec<_>>>()?;
                if vals.len() != count {
                    return Err(bad(
                        n,
                        format!(
                            "array parameter {kv:?}: {} values, count {count}",
                            vals.len()
                        ),
                    ));
                }
                (-k - 23300, ParamValue::Array(vals))
            } else {
                let val = parse_number(v).ok_or_else(|| bad(n, format!("number {v:?}")))?;
                (k, val)
            };
            params.0.insert(value.0, value.1);
        }
        layers.push(LayerDef {
            kind,
            name,
            bottoms,
            tops,
            params,
        });
    }
    if layers.len() != layer_count {
        return Err(Error::InvalidFile {
            path: path.to_path_buf(),
            reason: format!(
                "header says {layer_count} layers, file has {}",
                layers.len()
            ),
        });
    }
    Ok(layers)
}

/// Sequential reader of a `.bin` weight file.
pub struct BinReader<'a> {
    data: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> BinReader<'a> {
    /// Reads from the bytes of `path`.
    pub fn new(data: &'a [u8], path: &'a Path) -> Self {
        Self { data, pos: 0, path }
    }

    fn err(&self, reason: String) -> Error {
        Error::InvalidFile {
            path: self.path.to_path_buf(),
            reason: format!("at byte {}: {reason}", self.pos),
        }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if self.data.len() - self.pos < n {
            // (n may be absurd: it comes from the param file.)
            return Err(self.err(format!(
                "{what}: want {n} bytes, {} left (the weights do not match the graph)",
                self.data.len() - self.pos
            )));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// `n` raw little-endian f32 values (ncnn's untagged load).
    pub fn raw_f32(&mut self, n: usize, what: &str) -> Result<Vec<f32>> {
        let bytes = n
            .checked_mul(4)
            .ok_or_else(|| self.err(format!("{what}: {n} values")))?;
        Ok(self
            .take(bytes, what)?
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    /// `n` values of a tagged blob (f32 or f16), as f32.
    pub fn tagged(&mut self, n: usize, what: &str) -> Result<Vec<f32>> {
        let t = self.take(4, what)?;
        let tag = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
        match tag {
            0 => self.raw_f32(n, what),
            TAG_F16 => {
                let len = n
                    .checked_mul(2)
                    .and_then(|b| b.checked_next_multiple_of(4))
                    .ok_or_else(|| self.err(format!("{what}: {n} values")))?;
                let bytes = self.take(len, what)?;
                Ok(bytes[..n * 2]
                    .chunks_exact(2)
                    .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect())
            }
            TAG_INT8 => Err(self.err(format!("{what}: int8 weights are not supported"))),
            other => Err(self.err(format!(
                "{what}: unsupported weight tag {other:#010x} (supported: 0 = f32, {TAG_F16:#010x} = f16)"
            ))),
        }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }
}

/// Activation fused into a Convolution (ncnn's `activation_type`).
#[derive(Clone, Debug, PartialEq)]
enum Act {
    None,
    Relu,
    Leaky(f32),
    Clip(f32, f32),
    Sigmoid,
}

impl Act {
    fn apply(&self, x: Tensor) -> Result<Tensor> {
        Ok(match *self {
            Act::None => x,
            Act::Relu => x.relu()?,
            Act::Leaky(s) => leaky(&x, s)?,
            Act::Clip(lo, hi) => x.clamp(lo, hi)?,
            Act::Sigmoid => candle_nn::ops::sigmoid(&x)?,
        })
    }
}

/// `x` where positive, `slope * x` elsewhere (exact in both branches).
fn leaky(x: &Tensor, slope: f32) -> Result<Tensor> {
    Ok((x.relu()? + (x.minimum(0f32)? * slope as f64)?)?)
}

/// Resampling of one axis by ncnn's Interp.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Resize {
    Nearest,
    Bicubic { align_corner: bool },
}

#[derive(Debug)]
enum Op {
    Input,
    Split,
    Concat(i32),
    Conv {
        conv: ConvImpl,
        act: Act,
    },
    PRelu(Tensor),
    Relu(f32),
    Sigmoid,
    Interp {
        resize: Resize,
        scale_h: f32,
        scale_w: f32,
        out_h: usize,
        out_w: usize,
    },
    Binary {
        op: i32,
        scalar: Option<f32>,
    },
    Eltwise {
        op: i32,
        coeffs: Vec<f32>,
    },
    PixelShuffle(usize),
}

#[derive(Debug)]
enum ConvImpl {
    /// Square, undilated, symmetric padding: the project's CPU kernel.
    Fast(Conv),
    /// Anything else: candle's conv after explicit zero padding.
    General { conv: Conv2d, pad: [usize; 4] },
}

struct Layer {
    def: LayerDef,
    op: Op,
}

/// An ncnn graph with its weights, ready to run.
pub struct Graph {
    layers: Vec<Layer>,
    input: String,
    output: String,
    /// For each layer, the blobs whose last reader it is (freed after it runs).
    last_use: Vec<Vec<String>>,
}

impl Graph {
    /// Loads `param` + `bin` onto `device`.
    pub fn load(param: &Path, bin: &Path, device: &Device) -> Result<Self> {
        let text = std::fs::read_to_string(param).map_err(|e| Error::io(param, e))?;
        let bytes = std::fs::read(bin).map_err(|e| Error::io(bin, e))?;
        Self::from_parts(&text, param, &bytes, bin, device)
    }

    /// Builds a graph from the text of a param file and the bytes of its bin file (the
    /// paths only name them in errors).
    pub fn from_parts(
        text: &str,
        param_path: &Path,
        bytes: &[u8],
        bin_path: &Path,
        device: &Device,
    ) -> Result<Self> {
        let defs = parse_param(text, param_path)?;
        let mut rd = BinReader::new(bytes, bin_path);
        let mut layers = Vec::with_capacity(defs.len());
        for def in defs {
            let op = build_op(&def, &mut rd, device)?;
            layers.push(Layer { def, op });
        }
        if rd.remaining() != 0 {
            return Err(rd.err(format!(
                "{} bytes left after the last layer (the weights do not match the graph)",
                rd.remaining()
            )));
        }
        let inputs: Vec<&Layer> = layers
            .iter()
            .filter(|l| matches!(l.op, Op::Input))
            .collect();
        let [inp] = inputs[..] else {
            return Err(Error::Unsupported {
                path: param_path.to_path_buf(),
                reason: format!("want exactly one Input layer, found {}", inputs.len()),
            });
        };
        let input = inp
            .def
            .tops
            .first()
            .cloned()
            .ok_or_else(|| Error::InvalidFile {
                path: param_path.to_path_buf(),
                reason: "the Input layer has no output blob".into(),
            })?;
        // The output: the one blob produced and never consumed.
        let consumed: std::collections::HashSet<&str> = layers
            .iter()
            .flat_map(|l| l.def.bottoms.iter().map(String::as_str))
            .collect();
        let outs: Vec<&String> = layers
            .iter()
            .flat_map(|l| l.def.tops.iter())
            .filter(|t| !consumed.contains(t.as_str()))
            .collect();
        let [output] = outs[..] else {
            return Err(Error::Unsupported {
                path: param_path.to_path_buf(),
                reason: format!("want exactly one output blob, found {outs:?}"),
            });
        };
        let output = output.clone();
        let last_use = super::last_uses(layers.iter().map(|l| &l.def.bottoms[..]), layers.len());
        Ok(Self {
            layers,
            input,
            output,
            last_use,
        })
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether the graph has no layers.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Runs the graph on `x` (1, C, H, W) and returns the output blob.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut blobs: HashMap<&str, Tensor> = HashMap::new();
        for (i, layer) in self.layers.iter().enumerate() {
            let def = &layer.def;
            let ins = def
                .bottoms
                .iter()
                .map(|b| {
                    blobs.get(b.as_str()).cloned().ok_or_else(|| {
                        def.err(format!("input blob {b} is not produced before this layer"))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let outs = if matches!(layer.op, Op::Input) {
                vec![x.clone()]
            } else {
                run_op(layer, &ins)?
            };
            if outs.len() != def.tops.len() {
                return Err(def.err(format!(
                    "produces {} blobs, the graph names {}",
                    outs.len(),
                    def.tops.len()
                )));
            }
            for b in &self.last_use[i] {
                blobs.remove(b.as_str());
            }
            for (t, o) in def.tops.iter().zip(outs) {
                blobs.insert(t, o);
            }
        }
        blobs
            .remove(self.output.as_str())
            .ok_or_else(|| Error::InvalidState(format!("output blob {} missing", self.output)))
    }

    /// The input blob's name.
    pub fn input_name(&self) -> &str {
        &self.input
    }

    /// The output blob's name.
    pub fn output_name(&self) -> &str {
        &self.output
    }
}

fn build_op(def: &LayerDef, rd: &mut BinReader, device: &Device) -> Result<Op> {
    let what = |w: &str| format!("{} of layer {}", w, def.name);
    Ok(match def.kind.as_str() {
        "Input" => Op::Input,
        "Split" => Op::Split,
        "Concat" => Op::Concat(def.int(0, 0)?),
        "Convolution" => {
            let cout = def.size(0, 0)?;
            let kw = def.size(1, 0)?;
            let kh = def.size(11, kw)?;
            let dil_w = def.int(2, 1)?;
            let dil_h = def.int(12, dil_w)?;
            let stride_w = def.int(3, 1)?;
            let stride_h = def.int(13, stride_w)?;
            let pad_l = def.int(4, 0)?;
            let pad_t = def.int(14, pad_l)?;
            let pad_r = def.int(15, pad_l)?;
            let pad_b = def.int(16, pad_t)?;
            let bias_term = def.int(5, 0)? != 0;
            let wsize = def.size(6, 0)?;
            if def.int(8, 0)? != 0 {
                return Err(def.err("int8 convolutions are not supported"));
            }
            if def.float(18, 0.0)? != 0.0 {
                return Err(def.err("a non-zero pad value is not supported"));
            }
            if [pad_l, pad_t, pad_r, pad_b].iter().any(|&p| p < 0) {
                return Err(def.err("automatic (SAME) padding is not supported"));
            }
            if dil_w != dil_h || stride_w != stride_h || dil_w < 1 || stride_w < 1 {
                return Err(def.err("different strides or dilations per axis are not supported"));
            }
            let per_in = cout
                .checked_mul(kw)
                .and_then(|v| v.checked_mul(kh))
                .unwrap_or(0);
            if per_in == 0 || wsize == 0 || wsize % per_in != 0 {
                return Err(def.err(format!(
                    "weight size {wsize} is not a multiple of {cout} x {kh} x {kw}"
                )));
            }
            let cin = wsize / per_in;
            let act = match def.int(9, 0)? {
                0 => Act::None,
                1 => Act::Relu,
                2 => Act::Leaky(def.floats(10)?.first().copied().unwrap_or(0.0)),
                3 => {
                    let p = def.floats(10)?;
                    if p.len() < 2 {
                        return Err(def.err("clip activation needs two parameters"));
                    }
                    Act::Clip(p[0], p[1])
                }
                4 => Act::Sigmoid,
                a => return Err(def.err(format!("activation type {a} is not supported"))),
            };
            let w = rd.tagged(wsize, &what("weights"))?;
            let weight = Tensor::from_vec(w, (cout, cin, kh, kw), device)?;
            let bias = if bias_term {
                Some(Tensor::from_vec(
                    rd.raw_f32(cout, &what("bias"))?,
                    cout,
                    device,
                )?)
            } else {
                None
            };
            let symmetric = pad_l == pad_t && pad_l == pad_r && pad_l == pad_b;
            let cfg = Conv2dConfig {
                padding: if symmetric { pad_l as usize } else { 0 },
                stride: stride_w as usize,
                dilation: dil_w as usize,
                groups: 1,
                cudnn_fwd_algo: None,
            };
            let conv2d = Conv2d::new(weight, bias, cfg);
            let conv = if symmetric && kw == kh && dil_w == 1 {
                ConvImpl::Fast(Conv::from_candle(conv2d)?)
            } else {
                ConvImpl::General {
                    conv: conv2d,
                    pad: [pad_t, pad_b, pad_l, pad_r].map(|p| p as usize),
                }
            };
            Op::Conv { conv, act }
        }
        "PReLU" => {
            let n = def.size(0, 0)?;
            if n == 0 {
                return Err(def.err("PReLU with no slopes"));
            }
            let s = rd.raw_f32(n, &what("slopes"))?;
            Op::PRelu(Tensor::from_vec(s, (1, n, 1, 1), device)?)
        }
        "ReLU" => Op::Relu(def.float(0, 0.0)?),
        "Sigmoid" => Op::Sigmoid,
        "Interp" => {
            let resize = match def.int(0, 0)? {
                1 => Resize::Nearest,
                3 => Resize::Bicubic {
                    align_corner: def.int(6, 0)? != 0,
                },
                t => {
                    return Err(def.err(format!(
                        "resize type {t} is not supported (1 = nearest, 3 = bicubic)"
                    )))
                }
            };
            if def.int(5, 0)? != 0 {
                return Err(def.err("dynamic target size is not supported"));
            }
            Op::Interp {
                resize,
                scale_h: def.float(1, 1.0)?,
                scale_w: def.float(2, 1.0)?,
                out_h: def.int(3, 0)?.max(0) as usize,
                out_w: def.int(4, 0)?.max(0) as usize,
            }
        }
        "BinaryOp" => {
            let op = def.int(0, 0)?;
            if !matches!(op, 0..=5 | 7 | 8) {
                return Err(def.err(format!("binary op type {op} is not supported")));
            }
            let scalar = (def.int(1, 0)? != 0)
                .then(|| def.float(2, 0.0))
                .transpose()?;
            Op::Binary { op, scalar }
        }
        "Eltwise" => {
            let op = def.int(0, 1)?;
            if !(0..=2).contains(&op) {
                return Err(def.err(format!("eltwise op type {op} is not supported")));
            }
            Op::Eltwise {
                op,
                coeffs: def.floats(1)?,
            }
        }
        "PixelShuffle" => {
            if def.int(1, 0)? != 0 {
                return Err(def.err("only PixelShuffle mode 0 (PyTorch order) is supported"));
            }
            let r = def.int(0, 1)?;
            if !(1..=64).contains(&r) {
                return Err(def.err(format!("upscale factor {r} outside 1..=64")));
            }
            Op::PixelShuffle(r as usize)
        }
        other => {
            return Err(def.err(format!(
                "layer type {other} is not supported by TTPO's ncnn reader"
            )))
        }
    })
}

fn one(def: &LayerDef, ins: &[Tensor]) -> Result<Tensor> {
    match ins {
        [x] => Ok(x.clone()),
        _ => Err(def.err(format!("wants one input, has {}", ins.len()))),
    }
}

fn run_op(layer: &Layer, ins: &[Tensor]) -> Result<Vec<Tensor>> {
    let def = &layer.def;
    Ok(match &layer.op {
        Op::Input => unreachable!("handled by the caller"),
        Op::Split => {
            let x = one(def, ins)?;
            vec![x; def.tops.len()]
        }
        Op::Concat(axis) => {
            let rank = ins.first().map(|t| t.rank()).unwrap_or(4);
            // ncnn's axes exclude the batch axis.
            let a = if *axis < 0 {
                *axis + rank as i32 - 1
            } else {
                *axis
            };
            if a < 0 || a as usize + 1 >= rank {
                return Err(def.err(format!("concat axis {axis} out of range")));
            }
            vec![Tensor::cat(ins, a as usize + 1)?]
        }
        Op::Conv { conv, act } => {
            let x = one(def, ins)?.contiguous()?;
            let y = match conv {
                ConvImpl::Fast(c) => c.forward(&x)?,
                ConvImpl::General { conv, pad } => {
                    let x = x
                        .pad_with_zeros(2, pad[0], pad[1])?
                        .pad_with_zeros(3, pad[2], pad[3])?;
                    conv.forward(&x)?
                }
            };
            vec![act.apply(y)?]
        }
        Op::PRelu(s) => {
            let x = one(def, ins)?;
            let (_, c, _, _) = x.dims4()?;
            let s = if s.dim(1)? == 1 {
                s.broadcast_as((1, c, 1, 1))?
            } else {
                s.clone()
            };
            vec![(x.relu()? + x.minimum(0f32)?.broadcast_mul(&s)?)?]
        }
        Op::Relu(slope) => {
            let x = one(def, ins)?;
            vec![if *slope == 0.0 {
                x.relu()?
            } else {
                leaky(&x, *slope)?
            }]
        }
        Op::Sigmoid => vec![candle_nn::ops::sigmoid(&one(def, ins)?)?],
        Op::Interp {
            resize,
            scale_h,
            scale_w,
            out_h,
            out_w,
        } => {
            let x = one(def, ins)?;
            let (_, _, h, w) = x.dims4()?;
            let (oh, ow) = if *out_h == 0 || *out_w == 0 {
                ((h as f32 * scale_h) as usize, (w as f32 * scale_w) as usize)
            } else {
                (*out_h, *out_w)
            };
            if h == 0 || w == 0 || oh == 0 || ow == 0 || oh > MAX_SIDE || ow > MAX_SIDE {
                return Err(def.err(format!("resize of {h}x{w} to {oh}x{ow}")));
            }
            let explicit = *out_h != 0 && *out_w != 0;
            let y = match resize {
                Resize::Nearest => {
                    let iy = nearest_index(h, oh, explicit, *scale_h);
                    let ix = nearest_index(w, ow, explicit, *scale_w);
                    let dev = x.device();
                    x.index_select(&Tensor::new(ix, dev)?, 3)?
                        .index_select(&Tensor::new(iy, dev)?, 2)?
                }
                Resize::Bicubic { align_corner } => {
                    // ncnn resamples the rows first, then the columns.
                    let t = cubic_axis(&x, 3, w, ow, *align_corner)?;
                    cubic_axis(&t, 2, h, oh, *align_corner)?
                }
            };
            vec![y]
        }
        Op::Binary { op, scalar } => {
            let y = match (scalar, ins) {
                (Some(b), [a]) => {
                    let b = *b as f64;
                    match op {
                        0 => (a + b)?,
                        1 => (a - b)?,
                        2 => (a * b)?,
                        3 => (a / b)?,
                        4 => a.maximum(b as f32)?,
                        5 => a.minimum(b as f32)?,
                        7 => a.affine(-1.0, b)?,
                        8 => (a.recip()? * b)?,
                        _ => unreachable!("checked at load"),
                    }
                }
                (None, [a, b]) => match op {
                    0 => a.broadcast_add(b)?,
                    1 => a.broadcast_sub(b)?,
                    2 => a.broadcast_mul(b)?,
                    3 => a.broadcast_div(b)?,
                    4 => a.broadcast_maximum(b)?,
                    5 => a.broadcast_minimum(b)?,
                    7 => b.broadcast_sub(a)?,
                    8 => b.broadcast_div(a)?,
                    _ => unreachable!("checked at load"),
                },
                _ => {
                    return Err(def.err(format!(
                        "{} inputs for a binary op {} a scalar",
                        ins.len(),
                        if scalar.is_some() { "with" } else { "without" }
                    )))
                }
            };
            vec![y]
        }
        Op::Eltwise { op, coeffs } => {
            if ins.len() < 2 {
                return Err(def.err("eltwise with fewer than two inputs"));
            }
            if !coeffs.is_empty() && coeffs.len() != ins.len() {
                return Err(def.err(format!(
                    "{} coefficients for {} inputs",
                    coeffs.len(),
                    ins.len()
                )));
            }
            let y = match op {
                0 => ins[1..].iter().try_fold(ins[0].clone(), |a, b| a * b)?,
                1 if coeffs.is_empty() => ins[1..].iter().try_fold(ins[0].clone(), |a, b| a + b)?,
                1 => {
                    let mut acc = (&ins[0] * coeffs[0] as f64)?;
                    for (x, c) in ins[1..].iter().zip(&coeffs[1..]) {
                        acc = (acc + (x * *c as f64)?)?;
                    }
                    acc
                }
                _ => ins[1..]
                    .iter()
                    .try_fold(ins[0].clone(), |a, b| a.maximum(b))?,
            };
            vec![y]
        }
        Op::PixelShuffle(r) => {
            let x = one(def, ins)?;
            let (b, c, h, w) = x.dims4()?;
            let r = *r;
            if c % (r * r) != 0 || c == 0 {
                return Err(def.err(format!("{c} channels not divisible by {r}^2")));
            }
            let oc = c / (r * r);
            let y = x
                .reshape((b, oc, r, r, h, w))?
                .permute((0, 1, 4, 2, 5, 3))?
                .contiguous()?
                .reshape((b, oc, h * r, w * r))?;
            vec![y]
        }
    })
}

/// Source index of each output position for ncnn's nearest resize.
fn nearest_index(n: usize, out: usize, explicit: bool, scale: f32) -> Vec<u32> {
    let step = if explicit {
        n as f32 / out as f32
    } else {
        1.0 / scale
    };
    (0..out)
        .map(|i| ((i as f32 * step) as usize).min(n - 1) as u32)
        .collect()
}

/// ncnn's cubic weights (A = -0.75) at fraction `fx`.
fn cubic_weights(fx: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let fx0 = fx + 1.0;
    let fx1 = fx;
    let fx2 = 1.0 - fx;
    let c0 = A * fx0 * fx0 * fx0 - 5.0 * A * fx0 * fx0 + 8.0 * A * fx0 - 4.0 * A;
    let c1 = (A + 2.0) * fx1 * fx1 * fx1 - (A + 3.0) * fx1 * fx1 + 1.0;
    let c2 = (A + 2.0) * fx2 * fx2 * fx2 - (A + 3.0) * fx2 * fx2 + 1.0;
    [c0, c1, c2, 1.0 - c0 - c1 - c2]
}

/// Bicubic resampling of axis `dim` (length `n`) to `out`, as ncnn's Interp does it:
/// four taps per output position, borders replicated.
fn cubic_axis(x: &Tensor, dim: usize, n: usize, out: usize, align_corner: bool) -> Result<Tensor> {
    let scale = if align_corner && out > 1 {
        (n as f64 - 1.0) / (out as f64 - 1.0)
    } else {
        n as f64 / out as f64
    };
    let mut idx: [Vec<u32>; 4] = std::array::from_fn(|_| Vec::with_capacity(out));
    let mut wts: [Vec<f32>; 4] = std::array::from_fn(|_| Vec::with_capacity(out));
    for d in 0..out {
        let f = if align_corner {
            (d as f64 * scale) as f32
        } else {
            ((d as f64 + 0.5) * scale - 0.5) as f32
        };
        let s = f.floor();
        let c = cubic_weights(f - s);
        let s = s as i64;
        for k in 0..4 {
            let i = (s - 1 + k as i64).clamp(0, n as i64 - 1) as u32;
            idx[k].push(i);
            wts[k].push(c[k]);
        }
    }
    let dev = x.device();
    let mut shape = vec![1usize; x.rank()];
    shape[dim] = out;
    let mut acc: Option<Tensor> = None;
    for k in 0..4 {
        let g = x.index_select(&Tensor::new(idx[k].as_slice(), dev)?, dim)?;
        let wk = Tensor::from_slice(&wts[k], shape.as_slice(), dev)?.to_dtype(x.dtype())?;
        let term = g.broadcast_mul(&wk)?;
        acc = Some(match acc {
            None => term,
            Some(a) => (a + term)?,
        });
    }
    Ok(acc.expect("four taps"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn graph(param: &str, bin: &[u8]) -> Result<Graph> {
        Graph::from_parts(
            param,
            Path::new("test.param"),
            bin,
            Path::new("test.bin"),
            &Device::Cpu,
        )
    }

    #[test]
    fn parses_params_and_arrays() {
        let p = "7767517\n2 2\nInput in 0 1 data\nConvolution c 1 1 data out 0=4 1=3 4=1 5=1 6=108 9=2 -23310=1,2.000000e-01 2=1\n";
        let l = parse_param(p, Path::new("x")).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[1].kind, "Convolution");
        assert_eq!(l[1].bottoms, vec!["data"]);
        assert_eq!(l[1].tops, vec!["out"]);
        assert_eq!(l[1].int(0, 0).unwrap(), 4);
        assert_eq!(l[1].int(11, 9).unwrap(), 9);
        assert_eq!(l[1].floats(10).unwrap(), vec![0.2]);
        assert!(l[1].int(10, 0).is_err(), "an array is not an int");
    }

    #[test]
    fn rejects_bad_files() {
        assert!(parse_param("123\n0 0\n", Path::new("x")).is_err());
        assert!(parse_param("7767517\n2 1\nInput in 0 1 data\n", Path::new("x")).is_err());
        assert!(parse_param("7767517\n1 1\nInput in 0 1\n", Path::new("x")).is_err());
        let e = parse_param("7767517\n1 1\nX a 0 1 d -23301=3,1,2\n", Path::new("x"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("count 3"), "{e}");
    }

    #[test]
    fn absurd_sizes_are_errors_not_panics() {
        for conv in [
            "0=-1 1=3 6=9",
            "0=65536 1=65536 6=2147483647",
            "0=1 1=1 6=2147483647",
        ] {
            let p = format!("7767517\n2 2\nInput in 0 1 data\nConvolution c 1 1 data out {conv}\n");
            assert!(graph(&p, &0u32.to_le_bytes()).is_err(), "{conv}");
        }
        let p = "7767517\n2 2\nInput in 0 1 data\nInterp i 1 1 data out 0=1 1=1e30 2=1e30\n";
        let x = Tensor::zeros((1, 1, 2, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(graph(p, &[]).unwrap().forward(&x).is_err());
        let p = "7767517\n2 2\nInput in 0 1 data\nPixelShuffle s 1 1 data out 0=100000\n";
        assert!(graph(p, &[]).is_err());
    }

    #[test]
    fn unknown_layer_is_an_error() {
        let p = "7767517\n2 2\nInput in 0 1 data\nSoftmax s 1 1 data out\n";
        let e = graph(p, &[]).err().unwrap().to_string();
        assert!(e.contains("Softmax") && e.contains("not supported"), "{e}");
    }

    /// A 1x1 conv in f32 and in f16 gives the same numbers; a wrong tag and a short or
    /// long file are errors.
    #[test]
    fn conv_weight_tags() {
        let p = "7767517\n2 2\nInput in 0 1 data\nConvolution c 1 1 data out 0=2 1=1 5=1 6=6\n";
        let w = [1.0f32, 0.5, -2.0, 0.25, 0.0, 3.0];
        let bias = [0.5f32, -1.0];
        let mut f32bin = 0u32.to_le_bytes().to_vec();
        f32bin.extend(f32_bytes(&w));
        f32bin.extend(f32_bytes(&bias));
        let mut f16bin = TAG_F16.to_le_bytes().to_vec();
        for v in w {
            f16bin.extend(half::f16::from_f32(v).to_le_bytes());
        }
        f16bin.extend(f32_bytes(&bias));
        let x = Tensor::new(&[1.0f32, 2.0, 3.0], &Device::Cpu)
            .unwrap()
            .reshape((1, 3, 1, 1))
            .unwrap();
        for bin in [&f32bin, &f16bin] {
            let y = graph(p, bin).unwrap().forward(&x).unwrap();
            let y: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
            assert_eq!(y, vec![1.0 + 1.0 - 6.0 + 0.5, 0.25 + 9.0 - 1.0]);
        }
        let mut bad = f32bin.clone();
        bad[..4].copy_from_slice(&TAG_INT8.to_le_bytes());
        assert!(graph(p, &bad).err().unwrap().to_string().contains("int8"));
        bad[..4].copy_from_slice(&7u32.to_le_bytes());
        assert!(graph(p, &bad)
            .err()
            .unwrap()
            .to_string()
            .contains("unsupported weight tag 0x00000007"));
        assert!(graph(p, &f32bin[..f32bin.len() - 4]).is_err());
        let mut long = f32bin.clone();
        long.extend([0u8; 4]);
        assert!(graph(p, &long).err().unwrap().to_string().contains("left"));
    }

    #[test]
    fn pixel_shuffle_is_pytorch_order() {
        let p = "7767517\n2 2\nInput in 0 1 data\nPixelShuffle ps 1 1 data out 0=2\n";
        let x = Tensor::arange(0f32, 8.0, &Device::Cpu)
            .unwrap()
            .reshape((1, 8, 1, 1))
            .unwrap();
        let y = graph(p, &[]).unwrap().forward(&x).unwrap();
        assert_eq!(y.dims(), &[1, 2, 2, 2]);
        let y: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        // Output channel c, position (i, j) = input channel c*4 + i*2 + j.
        assert_eq!(y, vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
    }

    #[test]
    fn eltwise_binary_interp_prelu() {
        let p = "7767517\n6 7\nInput in 0 1 data\nSplit sp 1 3 data a b c\n\
                 Eltwise e 2 1 a b s 0=1 -23301=2,2.000000e-01,1.000000e+00\n\
                 BinaryOp add 2 1 s c t 0=0\n\
                 Interp up 1 1 t u 0=1 1=2.000000e+00 2=2.000000e+00\n\
                 PReLU pr 1 1 u out 0=1\n";
        let bin = f32_bytes(&[0.5]);
        let x = Tensor::new(&[[[[1.0f32, -2.0]]]], &Device::Cpu).unwrap();
        let y = graph(p, &bin).unwrap().forward(&x).unwrap();
        assert_eq!(y.dims(), &[1, 1, 2, 4]);
        let y: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        // 0.2x + x + x = 2.2x; negative values halved by the PReLU.
        let (a, b) = (2.2f32, -4.4f32 * 0.5);
        assert!(y
            .iter()
            .zip([a, a, b, b, a, a, b, b])
            .all(|(u, v)| (u - v).abs() < 1e-6));
    }

    /// Bicubic downscaling by 2 of a linear ramp reproduces the ramp's midpoints away from
    /// the borders (cubic convolution is exact for linear functions).
    #[test]
    fn bicubic_half_of_a_ramp() {
        let p = "7767517\n2 2\nInput in 0 1 data\nInterp d 1 1 data out 0=3 1=5.000000e-01 2=5.000000e-01\n";
        let x = Tensor::arange(0f32, 16.0, &Device::Cpu)
            .unwrap()
            .reshape((1, 1, 1, 16))
            .unwrap()
            .repeat((1, 1, 4, 1))
            .unwrap();
        let y = graph(p, &[]).unwrap().forward(&x).unwrap();
        assert_eq!(y.dims(), &[1, 1, 2, 8]);
        let row: Vec<f32> = y
            .get(0)
            .unwrap()
            .get(0)
            .unwrap()
            .get(0)
            .unwrap()
            .to_vec1()
            .unwrap();
        for (i, v) in row.iter().enumerate().take(7).skip(1) {
            assert!((v - (2.0 * i as f32 + 0.5)).abs() < 1e-5, "{row:?}");
        }
    }
}
