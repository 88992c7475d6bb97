//! Runs the whole TTPO job on an image file.
//!
//! `cargo run --release -p ttpo --example refine -- <model-dir> <input> <output> [--seed N] [--json]`
//!
//! `<model-dir>` `-` means the folder named by `TTPO_MODEL_DIR`. Further options:
//! `--steps N`, `--refine-steps N`, `--strengths a,b,c`, `--seeds-per-strength N`.

use std::path::PathBuf;
use std::sync::Arc;
use ttpo::{Engine, EngineConfig, Image, Job, Options};

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(1)
}

fn main() {
    // A process of our own: let malloc keep freed memory (see the function's docs).
    ttpo::device::keep_freed_memory();
    let usage = "usage: refine <model-dir|-> <input> <output> [--seed N] [--json] [--steps N] [--refine-steps N] [--strengths a,b] [--seeds-per-strength N]";
    let mut pos = Vec::new();
    let mut json = false;
    let mut opts = Options::default();
    let mut args = std::env::args().skip(1);
    let num = |v: Option<String>| -> u64 {
        v.and_then(|s| s.parse().ok())
            .unwrap_or_else(|| fail(usage))
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seed" => opts.seed = num(args.next()),
            "--json" => json = true,
            "--steps" => opts.steps = num(args.next()) as usize,
            "--refine-steps" => opts.refine.steps = num(args.next()) as usize,
            "--seeds-per-strength" => opts.seeds_per_strength = num(args.next()) as usize,
            "--strengths" => {
                opts.strengths = args
                    .next()
                    .unwrap_or_else(|| fail(usage))
                    .split(',')
                    .map(|s| s.trim().parse().unwrap_or_else(|_| fail("bad strength")))
                    .collect()
            }
            _ if !a.starts_with("--") || a == "-" => pos.push(a),
            _ => fail(usage),
        }
    }
    if pos.len() != 3 {
        fail(usage);
    }
    let model = if pos[0] == "-" {
        PathBuf::from(
            std::env::var("TTPO_MODEL_DIR")
                .unwrap_or_else(|_| fail("model dir '-' needs TTPO_MODEL_DIR to be set")),
        )
    } else {
        PathBuf::from(&pos[0])
    };
    let t0 = std::time::Instant::now();
    let engine = Arc::new(
        Engine::load(&[&model], &EngineConfig::default()).unwrap_or_else(|e| fail(&e.to_string())),
    );
    let load_s = t0.elapsed().as_secs_f64();
    let input = Image::open(&pos[1]).unwrap_or_else(|e| fail(&e.to_string()));
    let mut job = Job::new(engine, input, opts).unwrap_or_else(|e| fail(&e.to_string()));
    let quiet = json;
    let mut last = None;
    let mut progress = |p: &ttpo::Progress| {
        if !quiet && last != Some((p.stage, p.step)) {
            eprint!("\r{:<10} {:>4}/{:<4}", p.stage.name(), p.step, p.total);
            if p.step == p.total {
                eprintln!();
            }
            last = Some((p.stage, p.step));
        }
    };
    let out = job
        .run(&mut progress)
        .unwrap_or_else(|e| fail(&e.to_string()));
    out.save(&pos[2]).unwrap_or_else(|e| fail(&e.to_string()));
    let scores = job.scores().expect("scored");
    let t = job.timings();
    if json {
        let cands: Vec<serde_json::Value> = job
            .candidates()
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let metrics: serde_json::Map<String, serde_json::Value> = scores
                    .metrics
                    .iter()
                    .zip(&scores.per_metric[i])
                    .map(|(n, v)| (n.clone(), serde_json::json!(v)))
                    .collect();
                serde_json::json!({
                    "index": i,
                    "strength": c.spec.as_ref().map(|s| s.strength),
                    "seed": c.spec.as_ref().map(|s| s.seed),
                    "is_input": c.spec.is_none(),
                    "metrics": metrics,
                    "fused": scores.fused[i],
                })
            })
            .collect();
        let (w, l) = job.choice().expect("chosen");
        println!(
            "{}",
            serde_json::json!({
                "input": pos[1], "output": pos[2], "model": model,
                "size": [out.width(), out.height()],
                "seconds": {"load": load_s, "candidates": t.candidates, "scoring": t.scoring, "refine": t.refine},
                "metrics": scores.metrics,
                "dropped_metrics": scores.dropped.iter().map(|(n, r)| serde_json::json!({"metric": n, "reason": r})).collect::<Vec<_>>(),
                "candidates": cands,
                "preferred": w, "dispreferred": l,
            })
        );
    } else {
        eprintln!(
            "wrote {} ({}x{}); stages: candidates {:.2}s, scoring {:.2}s, refine {:.2}s",
            pos[2],
            out.width(),
            out.height(),
            t.candidates,
            t.scoring,
            t.refine
        );
    }
}
