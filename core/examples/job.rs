//! Runs one complete TTPO job with explicit device/precision and reports what a benchmark
//! needs: per-stage wall seconds, model calls and calls per second, the choice. With
//! `--compare-cpu` it runs the same job on the CPU in f32 too and reports how far the two
//! results are apart (CUDA correctness check).
//!
//! `cargo run --release -p ttpo --example job -- <model-dir> <image> [--device cpu|cuda]
//!   [--precision f32|f16|bf16] [--steps N] [--refine-steps N] [--strengths a,b]
//!   [--seeds-per-strength N] [--max-batch N] [--size PX] [--compare-cpu] [--out FILE]`
//!
//! Prints one JSON object, with the job's time estimate (`Job::estimate`, made before the
//! run) next to the measured stage times.

use std::sync::Arc;
use std::time::Instant;
use ttpo::{DeviceChoice, Engine, EngineConfig, Image, Job, Options, Precision, Stage};

struct Run {
    image: Image,
    fused: Vec<f64>,
    choice: (usize, usize),
    seconds: serde_json::Value,
    unet_calls: usize,
}

fn run(
    model: &str,
    input: &Image,
    opts: &Options,
    device: DeviceChoice,
    precision: Option<Precision>,
) -> Result<Run, ttpo::Error> {
    let t = Instant::now();
    let engine = Arc::new(Engine::load(
        &[model],
        &EngineConfig {
            device,
            precision,
            ..Default::default()
        },
    )?);
    let load = t.elapsed().as_secs_f64();
    let mut job = Job::new(engine, input.clone(), opts.clone())?;
    // What the adapters show before a job, to compare with what it then takes.
    let est = job.estimate()?;
    let mut ticks = std::collections::HashMap::<Stage, usize>::new();
    let image = job.run(&mut |p| {
        if p.step > 0 {
            *ticks.entry(p.stage).or_default() += 1;
        }
    })?;
    let tm = job.timings();
    let n_cand = job.candidates().len() - 1;
    // Stage I ticks = 1 encode + UNet calls + one decode per candidate; Stage III ticks =
    // 2 encodes + one UNet call per step + 1 decode.
    let stage1_calls = ticks
        .get(&Stage::Candidates)
        .copied()
        .unwrap_or(0)
        .saturating_sub(1 + n_cand);
    let stage3_calls = ticks
        .get(&Stage::Refine)
        .copied()
        .unwrap_or(0)
        .saturating_sub(3);
    let scores = job.scores().expect("scored");
    Ok(Run {
        fused: scores.fused.clone(),
        choice: job.choice().expect("chosen"),
        seconds: serde_json::json!({
            "load": load, "candidates": tm.candidates, "scoring": tm.scoring, "refine": tm.refine,
            "stage1_unet_calls_per_s": stage1_calls as f64 / tm.candidates,
            "stage3_unet_calls_per_s": stage3_calls as f64 / tm.refine,
            "estimate": {
                "candidates": est.candidates, "scoring": est.scoring, "refine": est.refine,
                "total": est.total(), "probe": est.probe,
                "total_over_actual": est.total() / (tm.candidates + tm.scoring + tm.refine),
            },
        }),
        unet_calls: stage1_calls + stage3_calls,
        image,
    })
}

fn ranking(v: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[b].partial_cmp(&v[a]).expect("finite"));
    idx
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let model = args
        .next()
        .ok_or("usage: job <model-dir> <image> [options]")?;
    let image_path = args
        .next()
        .ok_or("usage: job <model-dir> <image> [options]")?;
    let mut opts = Options::default();
    let mut device = DeviceChoice::Auto;
    let mut precision = None;
    let mut compare = false;
    let mut size = None;
    let mut out = None;
    while let Some(a) = args.next() {
        if a == "--compare-cpu" {
            compare = true;
            continue;
        }
        let v = args.next().ok_or(format!("{a} needs a value"))?;
        match a.as_str() {
            "--device" => {
                device = if v == "cpu" {
                    DeviceChoice::Cpu
                } else {
                    DeviceChoice::Cuda(0)
                }
            }
            "--precision" => {
                precision = Some(match v.as_str() {
                    "f16" => Precision::F16,
                    "bf16" => Precision::Bf16,
                    _ => Precision::F32,
                })
            }
            "--steps" => opts.steps = v.parse()?,
            "--refine-steps" => opts.refine.steps = v.parse()?,
            "--seeds-per-strength" => opts.seeds_per_strength = v.parse()?,
            "--max-batch" => opts.max_batch = v.parse()?,
            "--strengths" => {
                opts.strengths = v.split(',').map(|s| s.parse()).collect::<Result<_, _>>()?
            }
            "--metrics" => opts.scoring.metrics = v.split(',').map(str::to_owned).collect(),
            "--size" => size = Some(v.parse::<usize>()?),
            "--out" => out = Some(v),
            _ => return Err(format!("unknown option {a}").into()),
        }
    }
    let mut input = Image::open(&image_path)?;
    if let Some(s) = size {
        input = input.crop(0, 0, s.min(input.width()), s.min(input.height()));
    }
    let main_run = run(&model, &input, &opts, device, precision)?;
    if let Some(o) = &out {
        main_run.image.save(o)?;
    }
    let mut report = serde_json::json!({
        "model": model, "image": image_path, "size": [input.width(), input.height()],
        "device": format!("{device:?}"), "precision": format!("{precision:?}"),
        "candidates": main_run.fused.len() - 1, "steps": opts.steps, "refine_steps": opts.refine.steps,
        "seconds": main_run.seconds, "unet_calls": main_run.unet_calls,
        "choice": [main_run.choice.0, main_run.choice.1], "ranking": ranking(&main_run.fused),
    });
    if compare {
        let cpu = run(
            &model,
            &input,
            &opts,
            DeviceChoice::Cpu,
            Some(Precision::F32),
        )?;
        let max_diff = cpu
            .image
            .data()
            .iter()
            .zip(main_run.image.data())
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let mean_diff = cpu
            .image
            .data()
            .iter()
            .zip(main_run.image.data())
            .map(|(a, b)| (a - b).abs() as f64)
            .sum::<f64>()
            / cpu.image.data().len() as f64;
        report["cpu_check"] = serde_json::json!({
            "cpu_ranking": ranking(&cpu.fused), "same_ranking": ranking(&cpu.fused) == ranking(&main_run.fused),
            "cpu_choice": [cpu.choice.0, cpu.choice.1], "same_choice": cpu.choice == main_run.choice,
            "refined_max_abs_diff": max_diff, "refined_mean_abs_diff": mean_diff,
            "cpu_seconds": cpu.seconds,
        });
    }
    println!("{report}");
    Ok(())
}
