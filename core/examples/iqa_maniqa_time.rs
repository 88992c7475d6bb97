//! Times MANIQA on one image (median of 3): `cargo run --release -p ttpo --example
//! iqa_maniqa_time -- CHECKPOINT IMAGE [CROPS_PER_SIDE]` (default: the 3x3 grid).

use std::time::Instant;
use ttpo::scoring::maniqa::{CropRule, Maniqa};
use ttpo::{Image, Metric};

fn main() -> ttpo::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: iqa_maniqa_time CHECKPOINT IMAGE [CROPS_PER_SIDE]");
        std::process::exit(2);
    }
    let k = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(3);
    let t = Instant::now();
    let m = Maniqa::load(args[1].as_ref(), &candle_core::Device::Cpu)?
        .with_crop_rule(CropRule::Grid(k));
    println!("load {:.2} s", t.elapsed().as_secs_f64());
    let img = Image::open(&args[2])?;
    let mut times = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let s = m.score(&img)?;
        times.push(t.elapsed().as_secs_f64());
        println!("score {s:.7} in {:.2} s", times.last().unwrap());
    }
    times.sort_by(f64::total_cmp);
    println!("median {:.2} s ({k}x{k} crops)", times[1]);
    Ok(())
}
