//! Memory and time of tiled processing. Prints one JSON object per measurement.
//!
//! `tiling calibrate <model-dir> <side-px>...` — peak working memory of one untiled VAE
//! decode and encode, per pixel and against `Backbone::vae_tile_bytes`'s estimate, and of
//! one UNet call at the native size with a CFG batch of 2.
//!
//! `tiling job <model-dir> <photo> <megapixels> [--unet-tile PX] [--vae-tile PX]
//!  [--budget MiB] [--steps N] [--strengths a,b] [--refine-steps N]` — a whole job on the
//! photo resized to about that many megapixels; reports the process's peak resident memory
//! (VmHWM), stage times and the tile plan. Run one size per process: the peak is per process.

use std::time::Instant;
use ttpo::diffusion::sd::{StableDiffusion, Variant};
use ttpo::diffusion::Backbone;
use ttpo::noise::NoiseStream;
use ttpo::{Engine, EngineConfig, Image, Job, Options};

type R<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// A field of /proc/self/status in bytes.
fn status_bytes(key: &str) -> R<u64> {
    let s = std::fs::read_to_string("/proc/self/status")?;
    let line = s
        .lines()
        .find(|l| l.starts_with(key))
        .ok_or("no such field")?;
    let kb: u64 = line.split_whitespace().nth(1).ok_or("bad line")?.parse()?;
    Ok(kb * 1024)
}

/// Resets VmHWM to the current RSS (Linux: clear_refs 5).
fn reset_peak() -> R<()> {
    std::fs::write("/proc/self/clear_refs", "5")?;
    Ok(())
}

/// Runs `f`; returns its value, the peak resident memory it added (bytes) and its seconds.
fn measured<T>(f: impl FnOnce() -> ttpo::Result<T>) -> R<(T, u64, f64)> {
    let base = status_bytes("VmRSS")?;
    reset_peak()?;
    let t0 = Instant::now();
    let v = f()?;
    let secs = t0.elapsed().as_secs_f64();
    Ok((v, status_bytes("VmHWM")?.saturating_sub(base), secs))
}

fn calibrate(dir: &str, sides: &[usize]) -> R<()> {
    let dev = candle_core::Device::Cpu;
    let sd = StableDiffusion::load(
        std::path::Path::new(dir),
        &dev,
        candle_core::DType::F32,
        Variant::Auto,
    )?;
    let f = sd.vae_factor();
    for &side in sides {
        let z = NoiseStream::new(1, 0).tensor(&[1, 4, side / f, side / f], &dev)?;
        let (img, dec_peak, dec_s) = measured(|| sd.decode(&z))?;
        let (_, enc_peak, enc_s) = measured(|| sd.encode(&img))?;
        let px = (side * side) as f64;
        println!(
            "{}",
            serde_json::json!({
                "side": side,
                "decode_peak_mib": dec_peak as f64 / 1048576.0,
                "decode_bytes_per_px": dec_peak as f64 / px,
                "encode_peak_mib": enc_peak as f64 / 1048576.0,
                "encode_bytes_per_px": enc_peak as f64 / px,
                "estimate_decode_mib": sd.vae_tile_bytes(side) as f64 / 1048576.0,
                "decode_s": dec_s,
                "encode_s": enc_s,
            })
        );
    }
    let n = sd.native_size() / f;
    let x = NoiseStream::new(2, 0).tensor(&[2, 4, n, n], &dev)?;
    let ctx = sd.encode_prompt("")?.repeat((2, 1, 1))?;
    let weights = status_bytes("VmRSS")?;
    let (_, peak, secs) = measured(|| sd.unet_output(&x, 500.0, &ctx))?;
    println!(
        "{}",
        serde_json::json!({
            "unet_side": n * f, "unet_batch": 2,
            "unet_peak_mib": peak as f64 / 1048576.0,
            "unet_s": secs,
            "weights_rss_mib": weights as f64 / 1048576.0,
        })
    );
    Ok(())
}

fn job(dir: &str, photo: &str, mp: f64, rest: &[String]) -> R<()> {
    let mut o = Options {
        steps: 4,
        strengths: vec![0.5],
        ..Options::default()
    };
    o.scoring.metrics = vec!["sharpness".into()];
    o.refine.steps = 4;
    o.tiling.unet_tile = 512;
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        let v = it.next().ok_or("missing value")?;
        match a.as_str() {
            "--unet-tile" => o.tiling.unet_tile = v.parse()?,
            "--vae-tile" => o.tiling.vae_tile = v.parse()?,
            "--budget" => o.tiling.memory_budget_mib = v.parse()?,
            "--steps" => o.steps = v.parse()?,
            "--refine-steps" => o.refine.steps = v.parse()?,
            "--metrics" => o.scoring.metrics = v.split(',').map(String::from).collect(),
            "--strengths" => {
                o.strengths = v.split(',').map(|s| s.parse()).collect::<Result<_, _>>()?
            }
            _ => return Err(format!("unknown option {a}").into()),
        }
    }
    let src = image::open(photo)?.to_rgb8();
    let scale = (mp * 1e6 / (src.width() as f64 * src.height() as f64)).sqrt();
    let (w, h) = (
        (src.width() as f64 * scale).round() as u32,
        (src.height() as f64 * scale).round() as u32,
    );
    let big = image::imageops::resize(&src, w, h, image::imageops::FilterType::Triangle);
    drop(src);
    let data: Vec<f32> = big.as_raw().iter().map(|&v| v as f32 / 255.0).collect();
    drop(big);
    let input = Image::from_rgb(w as usize, h as usize, data)?;
    o.max_pixels = o.max_pixels.max(input.width() * input.height());
    let engine = std::sync::Arc::new(Engine::load(&[dir], &EngineConfig::default())?);
    let t0 = Instant::now();
    let mut job = Job::new(engine, input, o)?;
    let plan = job.tile_plan();
    let mut ticks = 0usize;
    let out = job.run(&mut |_| ticks += 1)?;
    let total_s = t0.elapsed().as_secs_f64();
    let t = job.timings();
    println!(
        "{}",
        serde_json::json!({
            "width": out.width(), "height": out.height(),
            "megapixels": (out.width() * out.height()) as f64 / 1e6,
            "peak_rss_mib": status_bytes("VmHWM")? as f64 / 1048576.0,
            "seconds": {"total": total_s, "candidates": t.candidates, "scoring": t.scoring, "refine": t.refine},
            "unet_tile": plan.unet_tile, "unet_tiles": plan.unet_tiles,
            "vae_tile": plan.vae_tile, "vae_tiles": plan.vae_tiles,
            "progress_events": ticks,
        })
    );
    Ok(())
}

fn main() -> R<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("calibrate") if args.len() >= 3 => {
            let sides = args[2..]
                .iter()
                .map(|s| s.parse())
                .collect::<Result<Vec<usize>, _>>()?;
            calibrate(&args[1], &sides)
        }
        Some("job") if args.len() >= 4 => job(&args[1], &args[2], args[3].parse()?, &args[4..]),
        _ => Err("usage: tiling calibrate <model-dir> <side>... | tiling job <model-dir> <photo> <megapixels> [options]".into()),
    }
}
