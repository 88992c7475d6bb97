//! A reader for TensorFlow.js *layers* models (`model.json` + weight shards) and a candle
//! executor for the Keras layers that small super-resolution networks (idealo-style RDN,
//! as shipped by UpscalerJS) use.
//!
//! Format (learned from TensorFlow.js' documentation of its converter output):
//! `model.json` holds `modelTopology.model_config`, a Keras `Functional` config whose
//! `layers` are listed in an order where every layer follows its inputs, each with its
//! `inbound_nodes` (names of the layers feeding it), and `weightsManifest`: groups of shard
//! files whose concatenated bytes hold the listed weights back to back (`name`, `shape`,
//! `dtype`). Only unquantised float32 weights are read; a quantised or other-typed weight is
//! an error. Keras tensors are NHWC; here blobs are (1, C, H, W) and kernels are transposed
//! from HWIO to OIHW on load.
//!
//! Layers: InputLayer, Conv2D (stride 1, square odd kernel, `same` or `valid`, bias,
//! activation), Activation, Add, Concatenate (channel axis), UpSampling2D (nearest). Any
//! other class, or a layer shared between several call sites, is [`Error::Unsupported`]
//! at load time.

use crate::error::{Error, Result};
use crate::ops::Conv;
use candle_core::{Device, Module, Tensor};
use candle_nn::{Conv2d, Conv2dConfig};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Act {
    Linear,
    Relu,
    Sigmoid,
    Tanh,
}

impl Act {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "linear" => Act::Linear,
            "relu" => Act::Relu,
            "sigmoid" => Act::Sigmoid,
            "tanh" => Act::Tanh,
            _ => return None,
        })
    }
    fn apply(self, x: Tensor) -> Result<Tensor> {
        Ok(match self {
            Act::Linear => x,
            Act::Relu => x.relu()?,
            Act::Sigmoid => candle_nn::ops::sigmoid(&x)?,
            Act::Tanh => x.tanh()?,
        })
    }
}

#[derive(Debug)]
enum Op {
    Input,
    Conv(Conv, Act),
    Activation(Act),
    Add,
    Concat,
    Upsample(usize, usize),
}

struct Layer {
    name: String,
    op: Op,
    inputs: Vec<String>,
}

/// A TF.js layers model with its weights, ready to run.
pub struct LayersModel {
    layers: Vec<Layer>,
    output: String,
    last_use: Vec<Vec<String>>,
}

fn bad(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::InvalidFile {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn unsupported(path: &Path, layer: &str, reason: impl std::fmt::Display) -> Error {
    Error::Unsupported {
        path: path.to_path_buf(),
        reason: format!("layer {layer}: {reason}"),
    }
}

/// One weight: its shape and values.
type Weight = (Vec<usize>, Vec<f32>);

/// The float32 weights of a manifest, by name.
fn read_weights(json: &Value, dir: &Path, path: &Path) -> Result<HashMap<String, Weight>> {
    let groups = json["weightsManifest"]
        .as_array()
        .ok_or_else(|| bad(path, "no weightsManifest"))?;
    let mut out = HashMap::new();
    for g in groups {
        let mut bytes = Vec::new();
        for p in g["paths"]
            .as_array()
            .ok_or_else(|| bad(path, "group without paths"))?
        {
            let p = p
                .as_str()
                .ok_or_else(|| bad(path, "shard path is not a string"))?;
            if p.contains("..") || p.starts_with('/') {
                return Err(bad(
                    path,
                    format!("shard path {p:?} leaves the model folder"),
                ));
            }
            let f = dir.join(p);
            bytes.extend(std::fs::read(&f).map_err(|e| Error::io(&f, e))?);
        }
        let mut pos = 0usize;
        for w in g["weights"]
            .as_array()
            .ok_or_else(|| bad(path, "group without weights"))?
        {
            let name = w["name"]
                .as_str()
                .ok_or_else(|| bad(path, "weight without name"))?;
            if w.get("quantization").is_some_and(|q| !q.is_null()) {
                return Err(bad(
                    path,
                    format!("weight {name} is quantised (not supported)"),
                ));
            }
            if w["dtype"].as_str() != Some("float32") {
                return Err(bad(
                    path,
                    format!(
                        "weight {name} has dtype {} (only float32 is supported)",
                        w["dtype"]
                    ),
                ));
            }
            let shape: Vec<usize> = w["shape"]
                .as_array()
                .ok_or_else(|| bad(path, format!("weight {name} without shape")))?
                .iter()
                .map(|d| d.as_u64().map(|d| d as usize))
                .collect::<Option<_>>()
                .ok_or_else(|| bad(path, format!("weight {name}: bad shape")))?;
            let end = shape
                .iter()
                .try_fold(4usize, |a, &d| a.checked_mul(d))
                .and_then(|b| b.checked_add(pos))
                .unwrap_or(usize::MAX);
            if end > bytes.len() {
                return Err(bad(
                    path,
                    format!(
                        "weight {name} runs past the end of its shards ({end} > {} bytes)",
                        bytes.len()
                    ),
                ));
            }
            let vals = bytes[pos..end]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            pos = end;
            out.insert(name.to_string(), (shape, vals));
        }
        if pos != bytes.len() {
            return Err(bad(
                path,
                format!(
                    "{} bytes of the shards are not described by the manifest",
                    bytes.len() - pos
                ),
            ));
        }
    }
    Ok(out)
}

fn pair(v: &Value) -> Option<(usize, usize)> {
    let a = v.as_array()?;
    match a[..] {
        [ref x, ref y] => Some((x.as_u64()? as usize, y.as_u64()? as usize)),
        _ => None,
    }
}

impl LayersModel {
    /// Loads `model.json` (its shards next to it) onto `device`.
    pub fn load(model_json: &Path, device: &Device) -> Result<Self> {
        let text = std::fs::read_to_string(model_json).map_err(|e| Error::io(model_json, e))?;
        let json: Value = serde_json::from_str(&text).map_err(|e| bad(model_json, e))?;
        let dir = model_json.parent().unwrap_or(Path::new("."));
        let mut weights = read_weights(&json, dir, model_json)?;
        let path = model_json;
        if json["format"].as_str() != Some("layers-model") {
            return Err(bad(
                path,
                format!("format {} is not layers-model", json["format"]),
            ));
        }
        let cfg = &json["modelTopology"]["model_config"];
        if cfg["class_name"].as_str() != Some("Functional")
            && cfg["class_name"].as_str() != Some("Model")
        {
            return Err(bad(
                path,
                format!("model class {} is not Functional", cfg["class_name"]),
            ));
        }
        let cfg = &cfg["config"];
        let mut layers = Vec::new();
        for l in cfg["layers"]
            .as_array()
            .ok_or_else(|| bad(path, "no layers"))?
        {
            let name = l["name"]
                .as_str()
                .ok_or_else(|| bad(path, "layer without name"))?
                .to_string();
            let class = l["class_name"].as_str().unwrap_or("?");
            let c = &l["config"];
            let nodes = l["inbound_nodes"].as_array().cloned().unwrap_or_default();
            if nodes.len() > 1 {
                return Err(unsupported(path, &name, "a layer called at several places"));
            }
            let inputs: Vec<String> = match nodes.first() {
                None => Vec::new(),
                Some(n) => n
                    .as_array()
                    .ok_or_else(|| bad(path, format!("layer {name}: bad inbound node")))?
                    .iter()
                    .map(|i| {
                        let src = i[0].as_str();
                        match (src, i[1].as_u64(), i[2].as_u64()) {
                            (Some(s), Some(0), Some(0)) => Ok(s.to_string()),
                            _ => Err(unsupported(
                                path,
                                &name,
                                format!("input {i} (only node 0, tensor 0)"),
                            )),
                        }
                    })
                    .collect::<Result<_>>()?,
            };
            let op = match class {
                "InputLayer" => Op::Input,
                "Conv2D" => {
                    let filters = c["filters"]
                        .as_u64()
                        .ok_or_else(|| bad(path, format!("{name}: filters")))?
                        as usize;
                    let (kh, kw) = pair(&c["kernel_size"])
                        .ok_or_else(|| bad(path, format!("{name}: kernel_size")))?;
                    if pair(&c["strides"]) != Some((1, 1))
                        || pair(&c["dilation_rate"]) != Some((1, 1))
                    {
                        return Err(unsupported(path, &name, "only stride 1, dilation 1"));
                    }
                    if c["groups"].as_u64().unwrap_or(1) != 1
                        || c["data_format"].as_str() != Some("channels_last")
                    {
                        return Err(unsupported(path, &name, "only groups 1, channels_last"));
                    }
                    if kh != kw || kh % 2 == 0 {
                        return Err(unsupported(
                            path,
                            &name,
                            format!("kernel {kh}x{kw} (square and odd only)"),
                        ));
                    }
                    let pad = match c["padding"].as_str() {
                        Some("same") => kh / 2,
                        Some("valid") => 0,
                        p => return Err(unsupported(path, &name, format!("padding {p:?}"))),
                    };
                    let act_name = c["activation"].as_str().unwrap_or("?");
                    let act = Act::parse(act_name).ok_or_else(|| {
                        unsupported(path, &name, format!("activation {act_name}"))
                    })?;
                    let (kshape, k) = weights
                        .remove(&format!("{name}/kernel"))
                        .ok_or_else(|| bad(path, format!("weight {name}/kernel missing")))?;
                    let [h, w, cin, cout] = kshape[..] else {
                        return Err(bad(path, format!("{name}/kernel has shape {kshape:?}")));
                    };
                    if (h, w, cout) != (kh, kw, filters) {
                        return Err(bad(
                            path,
                            format!("{name}/kernel shape {kshape:?} does not match the config"),
                        ));
                    }
                    let weight = Tensor::from_vec(k, (h, w, cin, cout), device)?
                        .permute((3, 2, 0, 1))?
                        .contiguous()?;
                    let bias = if c["use_bias"].as_bool().unwrap_or(true) {
                        let (bshape, b) = weights
                            .remove(&format!("{name}/bias"))
                            .ok_or_else(|| bad(path, format!("weight {name}/bias missing")))?;
                        if bshape != [cout] {
                            return Err(bad(path, format!("{name}/bias has shape {bshape:?}")));
                        }
                        Some(Tensor::from_vec(b, cout, device)?)
                    } else {
                        None
                    };
                    let cfg = Conv2dConfig {
                        padding: pad,
                        ..Default::default()
                    };
                    Op::Conv(Conv::from_candle(Conv2d::new(weight, bias, cfg))?, act)
                }
                "Activation" => {
                    let a = c["activation"].as_str().unwrap_or("?");
                    Op::Activation(
                        Act::parse(a)
                            .ok_or_else(|| unsupported(path, &name, format!("activation {a}")))?,
                    )
                }
                "Add" => Op::Add,
                "Concatenate" => {
                    let axis = c["axis"].as_i64().unwrap_or(-1);
                    if axis != -1 && axis != 3 {
                        return Err(unsupported(
                            path,
                            &name,
                            format!("concatenation on axis {axis}"),
                        ));
                    }
                    Op::Concat
                }
                "UpSampling2D" => {
                    if c["interpolation"].as_str().unwrap_or("nearest") != "nearest"
                        || c["data_format"].as_str().unwrap_or("channels_last") != "channels_last"
                    {
                        return Err(unsupported(path, &name, "only nearest, channels_last"));
                    }
                    let (sy, sx) =
                        pair(&c["size"]).ok_or_else(|| bad(path, format!("{name}: size")))?;
                    if !(1..=64).contains(&sy) || !(1..=64).contains(&sx) {
                        return Err(unsupported(path, &name, format!("upsampling by {sy}x{sx}")));
                    }
                    Op::Upsample(sy, sx)
                }
                other => {
                    return Err(unsupported(
                        path,
                        &name,
                        format!(
                            "Keras layer class {other} is not supported by TTPO's TF.js reader"
                        ),
                    ))
                }
            };
            layers.push(Layer { name, op, inputs });
        }
        if let Some(left) = weights.keys().next() {
            return Err(bad(path, format!("weight {left} is not used by any layer")));
        }
        let ins = cfg["input_layers"].as_array().map(Vec::len).unwrap_or(0);
        let outs = cfg["output_layers"].as_array().cloned().unwrap_or_default();
        let output = match (ins, &outs[..]) {
            (1, [o]) => o[0].as_str().map(str::to_string),
            _ => None,
        }
        .ok_or_else(|| Error::Unsupported {
            path: path.to_path_buf(),
            reason: "only models with one input and one output".into(),
        })?;
        let last_use = super::last_uses(layers.iter().map(|l| &l.inputs[..]), layers.len());
        Ok(Self {
            layers,
            output,
            last_use,
        })
    }

    /// Runs the model on `x` (1, C, H, W) and returns its output (1, C', H', W').
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut blobs: HashMap<&str, Tensor> = HashMap::new();
        let missing = |l: &Layer, b: &str| Error::Unsupported {
            path: PathBuf::from(format!("layer {}", l.name)),
            reason: format!("input {b} is not computed before it"),
        };
        for (i, l) in self.layers.iter().enumerate() {
            let ins = l
                .inputs
                .iter()
                .map(|b| blobs.get(b.as_str()).cloned().ok_or_else(|| missing(l, b)))
                .collect::<Result<Vec<_>>>()?;
            let need = |n: usize| -> Result<()> {
                if ins.len() == n {
                    Ok(())
                } else {
                    Err(Error::Unsupported {
                        path: PathBuf::from(format!("layer {}", l.name)),
                        reason: format!("{} inputs, want {n}", ins.len()),
                    })
                }
            };
            let y = match &l.op {
                Op::Input => x.clone(),
                Op::Conv(conv, act) => {
                    need(1)?;
                    act.apply(conv.forward(&ins[0].contiguous()?)?)?
                }
                Op::Activation(act) => {
                    need(1)?;
                    act.apply(ins[0].clone())?
                }
                Op::Add => {
                    if ins.len() < 2 {
                        need(2)?;
                    }
                    ins[1..].iter().try_fold(ins[0].clone(), |a, b| a + b)?
                }
                Op::Concat => Tensor::cat(&ins, 1)?,
                Op::Upsample(sy, sx) => {
                    need(1)?;
                    let (_, _, h, w) = ins[0].dims4()?;
                    if sy == sx {
                        ins[0].upsample_nearest2d(h * sy, w * sx)?
                    } else {
                        let dev = ins[0].device();
                        let iy: Vec<u32> = (0..h * sy).map(|i| (i / sy) as u32).collect();
                        let ix: Vec<u32> = (0..w * sx).map(|i| (i / sx) as u32).collect();
                        ins[0]
                            .index_select(&Tensor::new(ix, dev)?, 3)?
                            .index_select(&Tensor::new(iy, dev)?, 2)?
                    }
                }
            };
            for b in &self.last_use[i] {
                blobs.remove(b.as_str());
            }
            blobs.insert(&l.name, y);
        }
        blobs
            .remove(self.output.as_str())
            .ok_or_else(|| Error::InvalidState(format!("output {} missing", self.output)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a one-conv model (3x3 `same`, 1 -> 2 channels, ReLU) plus `extra` layers into
    /// a fresh folder; returns the model.json path.
    fn write_model(tag: &str, extra_layer: &str, quant: bool, extra_bytes: usize) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ttpo-tfjs-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Kernel HWIO (3, 3, 1, 2): output 0 = the centre tap, output 1 = 2 x the left tap.
        let mut k = [0f32; 18];
        k[4 * 2] = 1.0; // (1, 1, 0, 0)
        k[3 * 2 + 1] = 2.0; // (1, 0, 0, 1)
        let bias = [0.5f32, -1.0];
        let mut bytes: Vec<u8> = k
            .iter()
            .chain(&bias)
            .flat_map(|v| v.to_le_bytes())
            .collect();
        bytes.extend(vec![0u8; extra_bytes]);
        std::fs::write(dir.join("w.bin"), bytes).unwrap();
        let q = if quant {
            r#", "quantization": {"dtype": "uint8", "scale": 1, "min": 0}"#
        } else {
            ""
        };
        let json = format!(
            r#"{{"format": "layers-model", "modelTopology": {{"model_config": {{"class_name": "Functional",
              "config": {{"layers": [
                {{"class_name": "InputLayer", "name": "in", "config": {{}}, "inbound_nodes": []}},
                {{"class_name": "Conv2D", "name": "c", "config": {{"filters": 2, "kernel_size": [3, 3],
                  "strides": [1, 1], "padding": "same", "data_format": "channels_last",
                  "dilation_rate": [1, 1], "groups": 1, "activation": "relu", "use_bias": true}},
                  "inbound_nodes": [[["in", 0, 0, {{}}]]]}}{extra_layer}],
              "input_layers": [["in", 0, 0]], "output_layers": [["c", 0, 0]]}}}}}},
              "weightsManifest": [{{"paths": ["w.bin"], "weights": [
                {{"name": "c/kernel", "shape": [3, 3, 1, 2], "dtype": "float32"{q}}},
                {{"name": "c/bias", "shape": [2], "dtype": "float32"}}]}}]}}"#
        );
        std::fs::write(dir.join("model.json"), json).unwrap();
        dir.join("model.json")
    }

    #[test]
    fn conv_kernel_is_read_as_hwio() {
        let m = LayersModel::load(&write_model("ok", "", false, 0), &Device::Cpu).unwrap();
        let x = Tensor::new(&[[[[1.0f32, 2.0, 3.0]]]], &Device::Cpu).unwrap();
        let y: Vec<f32> = m
            .forward(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        // Channel 0: x + 0.5; channel 1: relu(2 * left neighbour - 1) (zero padding).
        assert_eq!(y, vec![1.5, 2.5, 3.5, 0.0, 1.0, 3.0]);
    }

    #[test]
    fn unsupported_inputs_are_errors() {
        let e = |p: PathBuf| {
            LayersModel::load(&p, &Device::Cpu)
                .err()
                .unwrap()
                .to_string()
        };
        let lambda = r#", {"class_name": "Lambda", "name": "l", "config": {},
                          "inbound_nodes": [[["c", 0, 0, {}]]]}"#;
        let msg = e(write_model("lambda", lambda, false, 0));
        assert!(
            msg.contains("Lambda") && msg.contains("not supported"),
            "{msg}"
        );
        let msg = e(write_model("quant", "", true, 0));
        assert!(msg.contains("quantised"), "{msg}");
        let msg = e(write_model("long", "", false, 4));
        assert!(msg.contains("not described"), "{msg}");
    }
}
