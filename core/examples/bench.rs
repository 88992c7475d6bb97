//! Times the engine's components on a model folder: one UNet call, VAE encode and decode.
//! Prints one JSON object with medians (seconds).
//!
//! `cargo run --release -p ttpo --example bench -- <model-dir> [--size PX] [--batch B] [--repeat K] [--precision f32|f16|bf16] [--device cpu|cuda] [--img2img PX] [--malloc keep|system]`
//!
//! `--img2img PX` also times one small img2img run, once, after the rest: a PX x PX image
//! encoded, strength 0.3 of a 50-step DDIM schedule (15 UNet calls, CFG 7.5 as one batch-2
//! call each), decoded; the same loop as `scripts/conformance/bench_torch.py --img2img-small`.

use candle_core::{DType, Tensor};
use std::time::Instant;
use ttpo::diffusion::sd::{StableDiffusion, Variant};
use ttpo::diffusion::Backbone;
use ttpo::noise::NoiseStream;

/// CPU seconds (user + system) this process has used so far, from /proc/self/stat
/// (Linux; USER_HZ = 100). `None` elsewhere. On a shared machine this moves much less with
/// the load than wall time does.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

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
    let mut img2img = None;
    let mut keep_freed = true;
    while let Some(a) = args.next() {
        let v = args.next().ok_or("missing value")?;
        match a.as_str() {
            "--size" => size = v.parse()?,
            "--batch" => batch = v.parse()?,
            "--repeat" => repeat = v.parse()?,
            "--only" => only = v,
            "--img2img" => img2img = Some(v.parse::<usize>()?),
            // `keep` (default, what the `ttpo` CLI does) or `system` (glibc's defaults, what a
            // host process that loads libttpo has).
            "--malloc" => keep_freed = v == "keep",
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
    if keep_freed {
        ttpo::device::keep_freed_memory();
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
    // (median wall seconds, median CPU seconds) per call.
    type Timed = Option<(f64, Option<f64>)>;
    let time = |name: &str,
                f: &dyn Fn() -> ttpo::Result<Tensor>|
     -> Result<Timed, Box<dyn std::error::Error>> {
        if !only.split(',').any(|o| o == name) {
            return Ok(None);
        }
        sync(&f()?)?; // warm-up
        let (mut v, mut c) = (Vec::new(), Vec::new());
        for _ in 0..repeat {
            let (t, c0) = (Instant::now(), cpu_seconds());
            sync(&f()?)?;
            v.push(t.elapsed().as_secs_f64());
            if let (Some(a), Some(b)) = (c0, cpu_seconds()) {
                c.push(b - a);
            }
        }
        let cpu = (c.len() == repeat).then(|| median(c));
        Ok(Some((median(v), cpu)))
    };
    let unet = time("unet", &|| sd.unet_output(&x, 501.0, &ctx))?;
    let encode = time("encode", &|| sd.encode(&img))?;
    let decode = time("decode", &|| sd.decode(&x))?;
    let small = match img2img {
        Some(side) => Some(time_img2img(&sd, side)?),
        None => None,
    };
    let wall = |t: Timed| t.map(|t| t.0);
    let cpu = |t: Timed| t.and_then(|t| t.1);
    println!(
        "{}",
        serde_json::json!({
            "engine": "ttpo-candle", "model": dir, "size": size, "latent": lat, "batch": batch,
            "dtype": format!("{dtype:?}"), "device": format!("{:?}", dev.location()),
            "threads": candle_core::utils::get_num_threads(), "repeat": repeat, "load_s": load,
            "unet_s": wall(unet), "vae_encode_s": wall(encode), "vae_decode_s": wall(decode),
            "unet_cpu_s": cpu(unet), "vae_encode_cpu_s": cpu(encode),
            "vae_decode_cpu_s": cpu(decode),
            "img2img": small,
            "load_average": std::fs::read_to_string("/proc/loadavg").ok()
                .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        })
    );
    Ok(())
}

/// One img2img run at `side` px: encode, 15 CFG DDIM steps (strength 0.3 of 50), decode.
fn time_img2img(
    sd: &StableDiffusion,
    side: usize,
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    use ttpo::diffusion::{guided_output, Prompts};
    let (steps, strength, scale) = (50usize, 0.3f64, 7.5f64);
    let dev = sd.device().clone();
    let noise = NoiseStream::new(2, 0);
    let img = noise.tensor(&[1, 3, side, side], &dev)?.tanh()?;
    let prompts = Prompts::encode(sd, "a photo", "")?;
    let sched = sd.scheduler();
    let ts = sched.timesteps(steps)?;
    let ts = &ts[ttpo::diffusion::scheduler::Ddim::img2img_start(steps, strength)?..];
    let (t0, c0) = (Instant::now(), cpu_seconds());
    let z0 = sd.encode(&img)?;
    let mut lat = sched.add_noise(&z0, &noise.child(1).tensor(z0.dims(), &dev)?, ts[0])?;
    for &t in ts {
        let out = guided_output(sd, &lat, t as f64, &prompts, scale)?;
        lat = sched.step(&out, t, steps, &lat, 0.0, None)?;
    }
    let image = sd.decode(&lat)?;
    image.sum_all()?.to_scalar::<f32>()?;
    let total = t0.elapsed().as_secs_f64();
    let cpu = c0.zip(cpu_seconds()).map(|(a, b)| b - a);
    Ok(serde_json::json!({
        "side": side, "unet_calls": ts.len(), "unet_batch": 2, "steps": steps,
        "strength": strength, "guidance_scale": scale, "total_s": total, "cpu_s": cpu,
        "s_per_step": total / ts.len() as f64
    }))
}
