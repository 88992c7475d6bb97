//! Times the engine's components on a model folder: one UNet call, VAE encode and decode.
//! Prints one JSON object with medians (seconds).
//!
//! `cargo run --release -p ttpo --example bench -- <model-dir> [--size PX] [--batch B] [--repeat K] [--precision f32|f16|bf16] [--device cpu|cuda]`

use candle_core::{DType, Tensor};
use std::time::Instant;
use ttpo::diffusion::sd::{StableDiffusion, Variant};
use ttpo::diffusion::Backbone;
use ttpo::noise::NoiseStream;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: bench <model-dir> [--size PX] [--batch B] [--repeat K] [--precision P] [--device D]")?;
    let (mut size, mut batch, mut repeat) = (512usize, 1usize, 3usize);
    let mut precision = None;
    let mut device = ttpo::DeviceChoice::Cpu;
    let mut only = String::from("unet,encode,decode");
    while let Some(a) = args.next() {
        let v = args.next().ok_or("missing value")?;
        match a.as_str() {
            "--size" => size = v.parse()?,
            "--batch" => batch = v.parse()?,
            "--repeat" => repeat = v.parse()?,
            "--only" => only = v,
            "--precision" => {
                precision = Some(match v.as_str() {
                    "f32" => ttpo::Precision::F32,
                    "f16" => ttpo::Precision::F16,
                    "bf16" => ttpo::Precision::Bf16,
                    _ => return Err("precision must be f32, f16 or bf16".into()),
                })
            }
            "--device" => {
                device = if v == "cuda" {
                    ttpo::DeviceChoice::Cuda(0)
                } else {
                    ttpo::DeviceChoice::Cpu
                }
            }
            _ => return Err(format!("unknown option {a}").into()),
        }
    }
    let dev = ttpo::device::open(device)?;
    let dtype = ttpo::device::resolve_precision(&dev, precision)?;
    let t = Instant::now();
    let sd = StableDiffusion::load(std::path::Path::new(&dir), &dev, dtype, Variant::Auto)?;
    let load = t.elapsed().as_secs_f64();
    let f = sd.vae_factor();
    let lat = size / f;
    let noise = NoiseStream::new(0, 0);
    let x = noise.tensor(&[batch, sd.latent_channels(), lat, lat], &dev)?;
    let ctx = sd.encode_prompt("a photo")?.repeat((batch, 1, 1))?;
    let img = (noise.child(1).tensor(&[batch, 3, size, size], &dev)?.tanh())?;
    let sync = |t: &Tensor| -> Result<(), Box<dyn std::error::Error>> {
        t.to_dtype(DType::F32)?.sum_all()?.to_scalar::<f32>()?;
        Ok(())
    };
    let time = |name: &str,
                f: &dyn Fn() -> ttpo::Result<Tensor>|
     -> Result<Option<f64>, Box<dyn std::error::Error>> {
        if !only.split(',').any(|o| o == name) {
            return Ok(None);
        }
        sync(&f()?)?; // warm-up
        let mut v = Vec::new();
        for _ in 0..repeat {
            let t = Instant::now();
            sync(&f()?)?;
            v.push(t.elapsed().as_secs_f64());
        }
        Ok(Some(median(v)))
    };
    let unet = time("unet", &|| sd.model_output(&x, 501, &ctx))?;
    let encode = time("encode", &|| sd.encode(&img))?;
    let decode = time("decode", &|| sd.decode(&x))?;
    println!(
        "{}",
        serde_json::json!({
            "engine": "ttpo-candle", "model": dir, "size": size, "latent": lat, "batch": batch,
            "dtype": format!("{dtype:?}"), "device": format!("{:?}", dev.location()),
            "threads": candle_core::utils::get_num_threads(), "repeat": repeat, "load_s": load,
            "unet_s": unet, "vae_encode_s": encode, "vae_decode_s": decode
        })
    );
    Ok(())
}
