//! Writes a tiny diffusers-layout model folder with deterministic weights.
//!
//! `cargo run --release -p ttpo --example make_tiny_model -- <dir> [--arch sd|flux|flux-schnell|sd3|sd3.5] [--prediction epsilon|v|sd21-base-full] [--seed N]`
//!
//! `--arch flux` writes a FLUX.1-dev style folder (every FluxPipeline component),
//! `--arch flux-schnell` the schnell variant, `--arch sd3` / `sd3.5` an SD3 / SD3.5 style
//! transformer with its scheduler; `--prediction` applies to `--arch sd`.

use std::path::PathBuf;
use ttpo::diffusion::tiny::{write_tiny_model, TinyKind};

fn main() {
    let mut args = std::env::args().skip(1);
    let mut dir = None;
    let mut kind = TinyKind::Epsilon;
    let mut arch = "sd".to_string();
    let mut seed = 0u64;
    let usage = "usage: make_tiny_model <dir> [--arch sd|flux|flux-schnell|sd3|sd3.5] \
                 [--prediction epsilon|v|sd21-base-full] [--seed N]";
    while let Some(a) = args.next() {
        match a.as_str() {
            "--arch" => arch = args.next().unwrap_or_else(|| fail(usage)),
            "--prediction" => {
                kind = match args.next().as_deref() {
                    Some("epsilon") => TinyKind::Epsilon,
                    Some("v") | Some("v_prediction") => TinyKind::V,
                    Some("sd21-base-full") => TinyKind::Sd21Base,
                    other => fail(&format!("unknown prediction {other:?}; {usage}")),
                }
            }
            "--seed" => {
                seed = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| fail(usage))
            }
            "-h" | "--help" => {
                println!("{usage}");
                return;
            }
            _ if dir.is_none() && !a.starts_with('-') => dir = Some(PathBuf::from(a)),
            _ => fail(usage),
        }
    }
    let dir = dir.unwrap_or_else(|| fail(usage));
    kind = match arch.as_str() {
        "sd" => kind,
        "flux" | "flux-dev" => TinyKind::FluxDev,
        "flux-schnell" => TinyKind::FluxSchnell,
        "sd3" => TinyKind::Sd3,
        "sd3.5" | "sd35" => TinyKind::Sd35,
        other => fail(&format!("unknown arch {other:?}; {usage}")),
    };
    if let Err(e) = write_tiny_model(&dir, kind, seed) {
        fail(&e.to_string());
    }
    println!(
        "wrote tiny {kind:?} model (seed {seed}) to {}",
        dir.display()
    );
}

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(2)
}
